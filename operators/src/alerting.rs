//! The alert operator: turns detections into alert lifecycle events (opened, updated, resolved)
//! and fires resolution deadlines as the frontier passes them.
//!
//! Detections arrive on the worker owning their series. Detections and deadlines are handled in
//! event-time order, so a quiet period that ends before a new anomaly resolves the old alert first.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::{Capability, Operator};
use timely::dataflow::StreamVec;

use crate::models::alert_lifecycle::{AlertBook, AlertPolicy};
use crate::records::{AlertRecord, Detection};
use crate::series::{EventTime, SeriesId};
use crate::stash::{frontier_limit, Stash, Timers};

/// Alert state of one worker.
#[derive(Default, Serialize, Deserialize)]
pub struct AlertState {
    book: AlertBook,
    /// Pending deadlines as plain data, for checkpoints (see [`AlertState::prepare_snapshot`]).
    pending: Vec<(EventTime, SeriesId)>,
    #[serde(skip)]
    timers: Timers<SeriesId>,
    /// Everything before this time has been applied.
    #[serde(skip)]
    progress: EventTime,
}

impl AlertState {
    /// Copies pending deadlines into serializable form; call before serializing.
    pub fn prepare_snapshot(&mut self) {
        self.pending = self.timers.pending().map(|(t, s)| (t, *s)).collect();
    }

    /// Number of open alerts.
    pub fn open_count(&self) -> usize {
        self.book.open_count()
    }

    /// Time before which all input has been applied.
    pub fn progress(&self) -> EventTime {
        self.progress
    }
}

/// Adds the alert operator to a stream of detections.
pub trait AlertingExt<'scope> {
    /// Emits alert lifecycle events under `policy`; `state` is shared for checkpoints.
    fn alerts(
        self,
        policy: Arc<AlertPolicy>,
        state: Rc<RefCell<AlertState>>,
    ) -> StreamVec<'scope, EventTime, AlertRecord>;
}

impl<'scope> AlertingExt<'scope> for StreamVec<'scope, EventTime, Detection> {
    fn alerts(
        self,
        policy: Arc<AlertPolicy>,
        state: Rc<RefCell<AlertState>>,
    ) -> StreamVec<'scope, EventTime, AlertRecord> {
        self.unary_frontier::<CapacityContainerBuilder<Vec<AlertRecord>>, _, _, _>(
            Pipeline,
            "Alerts",
            move |initial, _info| {
                let mut initial: Option<Capability<EventTime>> = Some(initial);
                let mut stash: Stash<Detection> = Stash::default();
                move |(input, frontier), output| {
                    let mut guard = state.borrow_mut();
                    let AlertState {
                        book,
                        pending,
                        timers,
                        progress,
                    } = &mut *guard;
                    if let Some(cap) = initial.take() {
                        for (at, series) in std::mem::take(pending) {
                            timers.schedule(&cap, at, series);
                        }
                    }
                    let port = output.output_index();
                    input.for_each(|cap, data| stash.hold(&cap, data, port));
                    for (cap, batch) in stash.take_complete(frontier) {
                        let now = *cap.time();
                        // Deadlines strictly before this batch's time resolve first.
                        fire_deadlines(book, timers, &policy, now, output);
                        let mut session = output.session(&cap);
                        for d in &batch {
                            let (event, deadline) = book.on_detection(&policy, d);
                            if let Some(e) = event {
                                session.give(e);
                            }
                            timers.schedule(&cap, deadline, d.series);
                        }
                    }
                    // Remaining deadlines the frontier has passed.
                    fire_deadlines(book, timers, &policy, frontier_limit(frontier), output);
                    *progress = frontier_limit(frontier);
                }
            },
        )
    }
}

/// Fires the deadlines earlier than `before`, in time order.
fn fire_deadlines(
    book: &mut AlertBook,
    timers: &mut Timers<SeriesId>,
    policy: &AlertPolicy,
    before: EventTime,
    output: &mut timely::dataflow::operators::generic::OutputBuilderSession<
        '_,
        EventTime,
        CapacityContainerBuilder<Vec<AlertRecord>>,
    >,
) {
    while let Some((cap, series)) = timers.pop_before(before) {
        let now = *cap.time();
        let mut session = output.session(&cap);
        for s in series {
            if let Some(e) = book.on_deadline(policy, s, now) {
                session.give(e);
            }
        }
    }
}
