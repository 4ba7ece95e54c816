//! The window operator: per-series tumbling and sliding windows over event time, emitting each
//! window's features once the frontier has passed its end.
//!
//! Points and series-key announcements must arrive already exchanged by series id (the engine
//! exchanges them upstream, where it also probes delivery for backpressure), so each worker owns
//! its series' state. A window `[end − size, end)` is the union of `size / slide` panes; every pane that
//! receives a point schedules a timer at its end, and when the frontier passes that end the window
//! ending there is emitted at timely time `end` (its points all had earlier times). Windows with no
//! points are not emitted.
//!
//! Timely does not order messages that share a timestamp (its exchange regroups them with an
//! unstable sort), so the points released at each frontier advance are sorted by (event time,
//! series, value bits) — a total order — before they are applied. Every feature, counter rates
//! included, therefore follows event time and is the same whatever the arrival order.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::{Capability, Operator};
use timely::dataflow::StreamVec;

use crate::models::window_stats::PaneStats;
use crate::records::WindowFeatures;
use crate::series::{EventTime, Point, SeriesId, SharedKey};
use crate::stash::{frontier_limit, Stash, Timers};

/// One configured window: its name, length and slide, in milliseconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowSpec {
    /// Name used in output and detector configs (e.g. `1m`); shared by every feature record
    /// of the window.
    pub name: Arc<str>,
    /// Window length (ms); a multiple of `slide_ms`.
    pub size_ms: u64,
    /// Distance between consecutive window ends (ms); equal to `size_ms` for tumbling windows.
    pub slide_ms: u64,
}

impl WindowSpec {
    /// A tumbling window of `size_ms`.
    pub fn tumbling(name: impl Into<Arc<str>>, size_ms: u64) -> Self {
        WindowSpec {
            name: name.into(),
            size_ms,
            slide_ms: size_ms,
        }
    }

    /// Number of panes per window.
    fn panes(&self) -> u64 {
        (self.size_ms / self.slide_ms.max(1)).max(1)
    }
}

/// Panes of one series under one window spec.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct SpecPanes {
    /// (pane index, stats), ascending by index.
    panes: VecDeque<(u64, PaneStats)>,
    /// Last value of the newest pane already dropped, to continue counter increases.
    counter_last: Option<f64>,
    /// Window ends with a pending timer, so a timer is never scheduled twice.
    scheduled: Vec<EventTime>,
}

/// Window state of one series.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct SeriesPanes {
    key: Option<SharedKey>,
    specs: Vec<SpecPanes>,
}

/// All window state of one worker. Serializing it (for a checkpoint) records the pending window
/// ends; the capabilities behind them are rebuilt when the operator first runs after a restore.
#[derive(Serialize, Deserialize)]
pub struct WindowState {
    specs: Arc<[WindowSpec]>,
    series: HashMap<SeriesId, SeriesPanes>,
    /// Pending window ends as plain data: filled by [`WindowState::prepare_snapshot`], consumed
    /// when a restored state first runs.
    pending: Vec<(EventTime, SeriesId, u16)>,
    #[serde(skip)]
    timers: Timers<(SeriesId, u16)>,
    /// Everything before this time has been applied (the frontier at the last activation).
    #[serde(skip)]
    progress: EventTime,
}

impl WindowState {
    /// Empty state for the given window specs.
    pub fn new(specs: Arc<[WindowSpec]>) -> Self {
        WindowState {
            specs,
            series: HashMap::new(),
            pending: Vec::new(),
            timers: Timers::default(),
            progress: 0,
        }
    }

    /// Time before which all input has been applied.
    pub fn progress(&self) -> EventTime {
        self.progress
    }

    /// The window specs this state was built for (checked when a checkpoint is restored).
    pub fn specs(&self) -> &[WindowSpec] {
        &self.specs
    }

    /// Copies the pending timers into serializable form; call before serializing.
    pub fn prepare_snapshot(&mut self) {
        self.pending = self
            .timers
            .pending()
            .map(|(t, (id, s))| (t, *id, *s))
            .collect();
    }

    /// Number of series with state.
    pub fn series_count(&self) -> usize {
        self.series.len()
    }

    /// Approximate bytes held per series (struct sizes plus heap), for the memory report.
    pub fn bytes_per_series(&self) -> f64 {
        if self.series.is_empty() {
            return 0.0;
        }
        let entry = std::mem::size_of::<(SeriesId, SeriesPanes)>() + 1; // + hashbrown control byte
        let total: usize = self
            .series
            .values()
            .map(|s| {
                entry
                    + s.specs.capacity() * std::mem::size_of::<SpecPanes>()
                    + s.specs
                        .iter()
                        .map(|p| {
                            p.panes.capacity() * std::mem::size_of::<(u64, PaneStats)>()
                                + p.panes.iter().map(|(_, st)| st.heap_bytes()).sum::<usize>()
                                + p.scheduled.capacity() * 8
                        })
                        .sum::<usize>()
            })
            .sum();
        total as f64 / self.series.len() as f64
    }

    fn announce(&mut self, id: SeriesId, key: SharedKey) {
        let n = self.specs.len();
        let entry = self.series.entry(id).or_insert_with(|| SeriesPanes {
            key: None,
            specs: vec![SpecPanes::default(); n],
        });
        entry.key.get_or_insert(key);
    }

    /// Adds a point; returns through `schedule` every (window end, spec) that now needs a timer.
    fn insert(&mut self, point: &Point, mut schedule: impl FnMut(EventTime, u16)) {
        let n = self.specs.len();
        let series = self
            .series
            .entry(point.series)
            .or_insert_with(|| SeriesPanes {
                key: None,
                specs: vec![SpecPanes::default(); n],
            });
        for (idx, spec) in self.specs.iter().enumerate() {
            let state = &mut series.specs[idx];
            let pane = point.time / spec.slide_ms;
            // Points are mostly in order: search from the newest pane backwards.
            let pos = state.panes.iter().rposition(|(p, _)| *p <= pane);
            let at = match pos {
                Some(i) if state.panes[i].0 == pane => i,
                _ => {
                    let insert_at = pos.map_or(0, |i| i + 1);
                    let before = match insert_at {
                        0 => state.counter_last,
                        i => state.panes[i - 1].1.last_value(),
                    };
                    state
                        .panes
                        .insert(insert_at, (pane, PaneStats::new(before)));
                    let end = (pane + 1) * spec.slide_ms;
                    if !state.scheduled.contains(&end) {
                        state.scheduled.push(end);
                        schedule(end, idx as u16);
                    }
                    insert_at
                }
            };
            state.panes[at].1.insert(point.time, point.value);
        }
    }

    /// Closes the window of `spec` ending at `end` for `series`: returns its features (if it had
    /// points), drops panes no later window needs, and reports whether a timer at `end + slide`
    /// is needed for the panes that remain in the sliding range.
    fn fire(
        &mut self,
        id: SeriesId,
        spec_idx: u16,
        end: EventTime,
    ) -> (Option<WindowFeatures>, Option<EventTime>) {
        let spec = &self.specs[spec_idx as usize];
        let Some(series) = self.series.get_mut(&id) else {
            return (None, None);
        };
        let state = &mut series.specs[spec_idx as usize];
        state.scheduled.retain(|e| *e != end);
        // Window ending at `end` covers panes first..=last; the next one starts at first + 1.
        // Signed: near time 0, `first` can be negative (the window reaches before the epoch).
        let last = (end / spec.slide_ms) as i64 - 1;
        let first = last + 1 - spec.panes() as i64;
        let mut merged = PaneStats::new(None);
        let mut any = false;
        for (p, stats) in &state.panes {
            let p = *p as i64;
            if p >= first && p <= last {
                merged.merge(stats);
                any = true;
            }
        }
        while let Some((p, _)) = state.panes.front() {
            if *p as i64 > first {
                break;
            }
            if let Some((_, stats)) = state.panes.pop_front() {
                if let Some(v) = stats.last_value() {
                    state.counter_last = Some(v);
                }
            }
        }
        // One batch can fill several panes of a series before its windows fire; give the memory
        // back once they have, so steady-state size does not depend on batch size.
        if state.panes.capacity() > 4 && state.panes.len() <= 1 {
            state.panes.shrink_to(2);
        }
        let next = end + spec.slide_ms;
        let needs_next =
            state.panes.iter().any(|(p, _)| *p as i64 <= last) && !state.scheduled.contains(&next);
        if needs_next {
            state.scheduled.push(next);
        }
        let features = match (&series.key, any) {
            (Some(key), true) => merged.features(spec.size_ms).map(|values| WindowFeatures {
                series: id,
                key: key.clone(),
                window: spec.name.clone(),
                start: end.saturating_sub(spec.size_ms),
                end,
                values,
            }),
            _ => None,
        };
        (features, needs_next.then_some(next))
    }
}

/// Sorts points into the total order (event time, series, value bits). The packed key makes the
/// common comparison one integer compare; equal (time, series) pairs — duplicate timestamps, as
/// NAB files have — are then ordered by value, so even they apply in a fixed order.
fn sort_points(points: &mut [Point]) {
    let key = |p: &Point| (u128::from(p.time) << 64) | u128::from(p.series.0);
    points.sort_unstable_by_key(key);
    for run in points.chunk_by_mut(|a, b| key(a) == key(b)) {
        if run.len() > 1 {
            run.sort_unstable_by_key(|p| p.value.to_bits());
        }
    }
}

/// Adds the window operator to a stream of points.
pub trait WindowFeaturesExt<'scope> {
    /// Computes window features per series. `keys` announces each series' key (at least once,
    /// at or before the time of its first point); `state` is shared with the caller so
    /// checkpoints can read and restore it.
    fn window_features(
        self,
        keys: StreamVec<'scope, EventTime, (SeriesId, SharedKey)>,
        state: Rc<RefCell<WindowState>>,
    ) -> StreamVec<'scope, EventTime, WindowFeatures>;
}

impl<'scope> WindowFeaturesExt<'scope> for StreamVec<'scope, EventTime, Point> {
    fn window_features(
        self,
        keys: StreamVec<'scope, EventTime, (SeriesId, SharedKey)>,
        state: Rc<RefCell<WindowState>>,
    ) -> StreamVec<'scope, EventTime, WindowFeatures> {
        self.binary_frontier::<_, CapacityContainerBuilder<Vec<WindowFeatures>>, _, _, _, _>(
            keys,
            Pipeline,
            Pipeline,
            "WindowFeatures",
            move |initial, _info| {
                // A restored checkpoint has pending window ends but no capabilities for them:
                // derive those from the operator's initial capability on the first run.
                let mut initial: Option<Capability<EventTime>> = Some(initial);
                let mut stash: Stash<Point> = Stash::default();
                move |(points, points_frontier), (keys, _keys_frontier), output| {
                    let mut guard = state.borrow_mut();
                    let state = &mut *guard;
                    // Timers live in the state (for snapshots) but are used beside it here.
                    let mut timers = std::mem::take(&mut state.timers);
                    if let Some(cap) = initial.take() {
                        for (end, id, spec) in std::mem::take(&mut state.pending) {
                            timers.schedule(&cap, end, (id, spec));
                        }
                    }
                    // Announcements are idempotent and produce nothing, so apply them at once.
                    keys.for_each(|_cap, data| {
                        for (id, key) in data.drain(..) {
                            state.announce(id, key);
                        }
                    });
                    let port = output.output_index();
                    points.for_each(|cap, data| stash.hold(&cap, data, port));
                    let released = stash.take_complete(points_frontier);
                    if let Some((cap, _)) = released.first() {
                        // The earliest capability (released in time order) is at or before every
                        // released point, so it can derive every timer they need.
                        let cap = cap.clone();
                        let mut points: Vec<Point> =
                            released.into_iter().flat_map(|(_, batch)| batch).collect();
                        sort_points(&mut points);
                        for point in &points {
                            state.insert(point, |end, spec| {
                                timers.schedule(&cap, end, (point.series, spec))
                            });
                        }
                    }
                    // Timers run in time order; a window may schedule the next slide, which the
                    // same frontier may already have passed, hence the loop.
                    loop {
                        let due = timers.take_due(points_frontier);
                        if due.is_empty() {
                            break;
                        }
                        for (cap, members) in due {
                            let mut session = output.session(&cap);
                            for (id, spec) in members {
                                let (features, next) = state.fire(id, spec, *cap.time());
                                if let Some(f) = features {
                                    session.give(f);
                                }
                                if let Some(next) = next {
                                    timers.schedule(&cap, next, (id, spec));
                                }
                            }
                        }
                    }
                    state.timers = timers;
                    state.progress = frontier_limit(points_frontier);
                }
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::series::SeriesKey;

    fn point(t: u64, v: f64) -> Point {
        Point {
            series: SeriesId(1),
            time: t,
            value: v,
        }
    }

    fn state(specs: Vec<WindowSpec>) -> WindowState {
        let mut st = WindowState::new(specs.into());
        st.announce(SeriesId(1), Arc::new(SeriesKey::new("m", [])));
        st
    }

    #[test]
    fn tumbling_windows_fire_once_per_pane_with_their_points() {
        let mut st = state(vec![WindowSpec::tumbling("1m", 60_000)]);
        let mut scheduled = Vec::new();
        for t in [0, 10_000, 59_999, 60_000, 130_000] {
            st.insert(&point(t, t as f64), |end, spec| scheduled.push((end, spec)));
        }
        assert_eq!(scheduled, [(60_000, 0), (120_000, 0), (180_000, 0)]);
        let (f, next) = st.fire(SeriesId(1), 0, 60_000);
        let f = f.unwrap();
        assert_eq!((f.start, f.end, f.values.count), (0, 60_000, 3));
        assert_eq!(next, None, "tumbling windows need no follow-up timer");
        let (f, _) = st.fire(SeriesId(1), 0, 120_000);
        assert_eq!(f.unwrap().values.count, 1);
    }

    #[test]
    fn sliding_windows_cover_their_panes_and_schedule_the_next_slide() {
        let spec = WindowSpec {
            name: "3m".into(),
            size_ms: 180_000,
            slide_ms: 60_000,
        };
        let mut st = state(vec![spec]);
        st.insert(&point(30_000, 1.0), |_, _| {});
        let (f, next) = st.fire(SeriesId(1), 0, 60_000);
        assert_eq!(f.unwrap().values.count, 1);
        assert_eq!(
            next,
            Some(120_000),
            "the point stays in the next two windows"
        );
        st.insert(&point(90_000, 3.0), |_, _| {});
        let (f, next) = st.fire(SeriesId(1), 0, 120_000);
        let f = f.unwrap();
        assert_eq!((f.start, f.values.count, f.values.mean), (0, 2, 2.0));
        assert_eq!(next, Some(180_000));
        let (f, _) = st.fire(SeriesId(1), 0, 180_000);
        assert_eq!(f.unwrap().values.count, 2);
        let (f, next) = st.fire(SeriesId(1), 0, 240_000);
        assert_eq!(
            f.unwrap().values.count,
            1,
            "the first pane has left the window"
        );
        assert_eq!(next, None, "no pane remains for the window ending at 300 s");
    }

    #[test]
    fn steady_state_memory_per_series_is_small() {
        let mut st = state(vec![WindowSpec::tumbling("1m", 60_000)]);
        // Twenty panes inserted before any fires (one large batch), then all fired.
        for t in 0..120u64 {
            st.insert(&point(t * 10_000, 1.0), |_, _| {});
        }
        for k in 1..=20u64 {
            st.fire(SeriesId(1), 0, k * 60_000);
        }
        assert!(st.bytes_per_series() <= 2048.0, "{}", st.bytes_per_series());
    }
}
