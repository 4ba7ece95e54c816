//! The shape the per-window operators share (detect, entity, peers): input is held in the
//! [`Stash`] until the frontier has passed its time, each complete time's batch goes to the
//! operator's state in time order, what the state gives leaves at that time, and the state then
//! records how far input has been applied (what a checkpoint taken there holds).
//!
//! Each operator says what it keeps, how a batch turns into output ([`PerTimeState`]) and how
//! input is distributed (the parallelization contract); the stashing, the sessions and the
//! progress are written once, here.

use std::cell::RefCell;
use std::rc::Rc;

use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::ParallelizationContract;
use timely::dataflow::operators::Operator;
use timely::dataflow::StreamVec;

use crate::series::EventTime;
use crate::stash::{frontier_limit, Stash};

/// The state of an operator that acts once per complete time.
pub trait PerTimeState: 'static {
    /// Records the operator reads.
    type Input: Clone + 'static;
    /// Records it emits.
    type Output: Clone + 'static;

    /// Whether `record` is this operator's; others are dropped on arrival, before stashing.
    fn keeps(&self, _record: &Self::Input) -> bool {
        true
    }

    /// Applies the input of one complete time (arrival order; sort it where order matters),
    /// handing each output to `give`.
    fn apply(&mut self, batch: &[Self::Input], give: &mut impl FnMut(Self::Output));

    /// Records that all input before `time` has been applied.
    fn applied_until(&mut self, time: EventTime);
}

/// Adds an operator named `name` that feeds `state` one complete time at a time, its input
/// distributed by `pact`. `state` is shared with the caller for checkpoints.
pub fn per_complete_time<'scope, S, P>(
    stream: StreamVec<'scope, EventTime, S::Input>,
    pact: P,
    name: &str,
    state: Rc<RefCell<S>>,
) -> StreamVec<'scope, EventTime, S::Output>
where
    S: PerTimeState,
    P: ParallelizationContract<EventTime, Vec<S::Input>>,
{
    stream.unary_frontier::<CapacityContainerBuilder<Vec<S::Output>>, _, _, _>(
        pact,
        name,
        move |_initial, _info| {
            let mut stash: Stash<S::Input> = Stash::default();
            move |(input, frontier), output| {
                let port = output.output_index();
                let mut state = state.borrow_mut();
                input.for_each(|cap, data| {
                    data.retain(|record| state.keeps(record));
                    stash.hold(&cap, data, port)
                });
                for (cap, batch) in stash.take_complete(frontier) {
                    let mut session = output.session(&cap);
                    state.apply(&batch, &mut |out| session.give(out));
                }
                state.applied_until(frontier_limit(frontier));
            }
        },
    )
}
