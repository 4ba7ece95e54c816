//! What the optimizer knows about one entity (service or host): per series the latest window's
//! features, long-horizon percentiles, the latest forecast and capacity prediction; the entity's
//! alert and incident statistics; and the configuration values declared for it in the rules.
//!
//! Plain Rust and serde, no dataflow types: the optimizer operator feeds it records in event-time
//! order and the recommenders (rules and ML models) read it through [`EntityView`]. Memory per
//! series stays small: two quantile sketches per horizon (see [`Horizon`]), a handful of numbers
//! and one forecast summary.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::models::quantile_sketch::QuantileSketch;
use crate::models::window_stats::FeatureValues;
use crate::records::WindowFeatures;
use crate::records::{AlertEvent, AlertRecord, CapacityForecast, ForecastRecord, IncidentRecord};
use crate::series::{EventTime, SeriesId, SharedKey};

/// Cap on remembered alert and incident events per entity, so a storm cannot grow state without
/// bound (10 000 is weeks of one alert a minute; statistics over more add nothing).
const MAX_EVENTS: usize = 10_000;

/// One input of the optimizer, in the form every recommender sees.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum OptimizeInput {
    /// A closed window of one series.
    Features(WindowFeatures),
    /// A forecast of one series.
    Forecast(Box<ForecastRecord>),
    /// An alert lifecycle event.
    Alert(Box<AlertRecord>),
    /// An incident lifecycle event, once per entity it touches.
    Incident(Box<IncidentRecord>),
}

/// Approximate sliding-window percentiles over a long horizon: two tumbling sketches of `span`
/// each (the current block and the one before), so the summary covers between one and two spans
/// of history. Exact sliding windows would need every value; two blocks keep memory at two
/// sketches whatever the span.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Horizon {
    span: u64,
    start: EventTime,
    current: Block,
    previous: Block,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Block {
    sketch: QuantileSketch,
    max: f64,
    sum: f64,
    count: u64,
}

impl Block {
    fn insert(&mut self, value: f64, max: f64) {
        if self.count == 0 || max > self.max {
            self.max = max;
        }
        self.sketch.insert(value);
        self.sum += value;
        self.count += 1;
    }
}

/// Percentiles and extremes of a [`Horizon`], as the rules see them (all zero when empty).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Aggregates {
    /// Median of the window means.
    pub p50: f64,
    /// 95th percentile of the window means.
    pub p95: f64,
    /// 99th percentile of the window means.
    pub p99: f64,
    /// Largest window maximum.
    pub max: f64,
    /// Mean of the window means.
    pub mean: f64,
    /// Windows summarized.
    pub count: f64,
}

impl Horizon {
    /// An empty horizon of blocks `span_ms` long.
    pub fn new(span_ms: u64) -> Self {
        Horizon {
            span: span_ms.max(1),
            ..Horizon::default()
        }
    }

    /// Adds one window's mean and maximum, ending at `time`.
    pub fn insert(&mut self, time: EventTime, mean: f64, max: f64) {
        if !(mean.is_finite() && max.is_finite()) {
            return;
        }
        let aligned = time - time % self.span;
        if aligned > self.start {
            self.previous = if aligned == self.start + self.span {
                std::mem::take(&mut self.current)
            } else {
                Block::default()
            };
            self.current = Block::default();
            self.start = aligned;
        }
        self.current.insert(mean, max);
    }

    /// The summary of both blocks.
    pub fn aggregates(&self) -> Aggregates {
        let count = self.current.count + self.previous.count;
        if count == 0 {
            return Aggregates::default();
        }
        let mut sketch = self.previous.sketch.clone();
        sketch.merge(&self.current.sketch);
        let [p50, p95, p99] = sketch.quantiles([0.5, 0.95, 0.99]).unwrap_or([0.0; 3]);
        let max = match (self.current.count, self.previous.count) {
            (0, _) => self.previous.max,
            (_, 0) => self.current.max,
            _ => self.current.max.max(self.previous.max),
        };
        Aggregates {
            p50,
            p95,
            p99,
            max,
            mean: (self.current.sum + self.previous.sum) / count as f64,
            count: count as f64,
        }
    }
}

/// The latest forecast of a series, summarized.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForecastSummary {
    /// The model that made it.
    pub model: String,
    /// When it was made (end of the last window used).
    pub time: EventTime,
    /// How far it looks (ms).
    pub horizon_ms: u64,
    /// Point forecast of the next step.
    pub next: f64,
    /// Largest point forecast over the horizon.
    pub peak: f64,
    /// Largest upper 95% bound over the horizon.
    pub peak_hi95: f64,
    /// Slope of the point forecast from the first to the last step, per hour.
    pub trend_per_hour: f64,
    /// The capacity prediction, when the series has a limit.
    pub capacity: Option<CapacityForecast>,
}

impl ForecastSummary {
    /// Summarizes `f` (None when it has no finite step).
    pub fn of(f: &ForecastRecord) -> Option<Self> {
        let steps: Vec<_> = f
            .steps
            .iter()
            .filter(|s| s.yhat.is_finite() && s.hi95.is_finite())
            .collect();
        let first = steps.first()?;
        let last = steps.last()?;
        let span_h = (steps.len().saturating_sub(1) as f64) * f.step_ms as f64 / 3_600_000.0;
        Some(ForecastSummary {
            model: f.model.clone(),
            time: f.time,
            horizon_ms: f.step_ms.saturating_mul(f.steps.len() as u64),
            next: first.yhat,
            peak: steps.iter().map(|s| s.yhat).fold(f64::MIN, f64::max),
            peak_hi95: steps.iter().map(|s| s.hi95).fold(f64::MIN, f64::max),
            trend_per_hour: if span_h > 0.0 {
                (last.yhat - first.yhat) / span_h
            } else {
                0.0
            },
            capacity: f.capacity.clone(),
        })
    }
}

/// What the optimizer keeps per series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeriesStats {
    /// The series' name and labels.
    pub key: SharedKey,
    /// End of the first window seen.
    pub first: EventTime,
    /// End of the latest window seen.
    pub last: EventTime,
    /// The latest window's features.
    pub latest: FeatureValues,
    /// Hours-long horizon of window means.
    pub short: Horizon,
    /// Days-long horizon of window means.
    pub long: Horizon,
    /// The latest forecast, if the forecast stage made one.
    pub forecast: Option<ForecastSummary>,
}

/// Alert statistics of an entity.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AlertStats {
    /// Open alerts: fingerprint → (opened at, flapping).
    open: BTreeMap<String, (EventTime, bool)>,
    /// Times alerts opened.
    opened: VecDeque<EventTime>,
    /// Resolutions: (time, duration ms, belonged to an incident).
    resolved: VecDeque<(EventTime, u64, bool)>,
}

/// Incident statistics of an entity.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IncidentStats {
    /// Open incidents: id → opened at.
    open: BTreeMap<String, EventTime>,
    /// Times incidents opened.
    opened: VecDeque<EventTime>,
    /// Resolutions: (time, duration ms).
    resolved: VecDeque<(EventTime, u64)>,
}

fn push_capped<T>(q: &mut VecDeque<T>, x: T) {
    if q.len() >= MAX_EVENTS {
        q.pop_front();
    }
    q.push_back(x);
}

/// Horizon lengths of the statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Horizons {
    /// Block length of the hours horizon (ms).
    pub short_ms: u64,
    /// Block length of the days horizon (ms); also how far back alert and incident counts look.
    pub long_ms: u64,
}

/// Everything the optimizer knows about one entity.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EntityBook {
    /// Series of the entity, by id.
    pub series: BTreeMap<SeriesId, SeriesStats>,
    /// Alert statistics.
    pub alerts: AlertStats,
    /// Incident statistics.
    pub incidents: IncidentStats,
}

impl EntityBook {
    /// Applies one input (inputs must come in event-time order, sorted within a time).
    pub fn apply(&mut self, input: &OptimizeInput, horizons: Horizons) {
        match input {
            OptimizeInput::Features(f) => {
                let v = &f.values;
                let s = self.series.entry(f.series).or_insert_with(|| SeriesStats {
                    key: f.key.clone(),
                    first: f.end,
                    last: f.end,
                    latest: *v,
                    short: Horizon::new(horizons.short_ms),
                    long: Horizon::new(horizons.long_ms),
                    forecast: None,
                });
                s.last = s.last.max(f.end);
                s.latest = *v;
                s.short.insert(f.end, v.mean, v.max);
                s.long.insert(f.end, v.mean, v.max);
            }
            OptimizeInput::Forecast(f) => {
                // A forecast of a series never seen in features still counts: the forecast
                // stage may read a window this stage does not.
                if let Some(summary) = ForecastSummary::of(f) {
                    if let Some(s) = self.series.get_mut(&f.series) {
                        if s.forecast.as_ref().is_none_or(|old| old.time <= f.time) {
                            s.forecast = Some(summary);
                        }
                    }
                }
            }
            OptimizeInput::Alert(a) => self.alerts.apply(a),
            OptimizeInput::Incident(i) => self.incidents.apply(i),
        }
    }

    /// Drops alert and incident events older than the days horizon before `now`.
    pub fn prune(&mut self, now: EventTime, horizons: Horizons) {
        let cutoff = now.saturating_sub(horizons.long_ms);
        while self.alerts.opened.front().is_some_and(|t| *t < cutoff) {
            self.alerts.opened.pop_front();
        }
        while self.alerts.resolved.front().is_some_and(|r| r.0 < cutoff) {
            self.alerts.resolved.pop_front();
        }
        while self.incidents.opened.front().is_some_and(|t| *t < cutoff) {
            self.incidents.opened.pop_front();
        }
        while self
            .incidents
            .resolved
            .front()
            .is_some_and(|r| r.0 < cutoff)
        {
            self.incidents.resolved.pop_front();
        }
    }

    /// Number of series tracked.
    pub fn series_count(&self) -> usize {
        self.series.len()
    }
}

impl AlertStats {
    fn apply(&mut self, a: &AlertRecord) {
        let t = a.event_time;
        match a.event {
            AlertEvent::Opened => {
                self.open.insert(a.fingerprint.clone(), (t, a.flapping));
                push_capped(&mut self.opened, t);
            }
            AlertEvent::Updated | AlertEvent::Escalated => {
                self.open
                    .entry(a.fingerprint.clone())
                    .or_insert((t, a.flapping))
                    .1 = a.flapping;
            }
            AlertEvent::Resolved => {
                let opened = self.open.remove(&a.fingerprint).map_or(t, |o| o.0);
                push_capped(
                    &mut self.resolved,
                    (t, t.saturating_sub(opened), a.incident_id.is_some()),
                );
            }
        }
    }

    /// The statistics as the rules see them; `quick_ms` is what counts as a quick resolution.
    pub fn view(&self, quick_ms: u64) -> AlertView {
        let resolved = self.resolved.len() as f64;
        let mttr = if self.resolved.is_empty() {
            0.0
        } else {
            self.resolved.iter().map(|r| r.1 as f64).sum::<f64>() / resolved / 60_000.0
        };
        AlertView {
            opened: self.opened.len() as f64,
            open: self.open.len() as f64,
            flapping: self.open.values().filter(|o| o.1).count() as f64,
            resolved,
            mttr_minutes: mttr,
            without_incident: self.resolved.iter().filter(|r| !r.2).count() as f64,
            quick_without_incident: self
                .resolved
                .iter()
                .filter(|r| !r.2 && r.1 <= quick_ms)
                .count() as f64,
        }
    }
}

impl IncidentStats {
    fn apply(&mut self, i: &IncidentRecord) {
        let t = i.event_time;
        match i.event {
            AlertEvent::Opened => {
                self.open.insert(i.incident_id.clone(), t);
                push_capped(&mut self.opened, t);
            }
            AlertEvent::Updated | AlertEvent::Escalated => {
                self.open.entry(i.incident_id.clone()).or_insert(t);
            }
            AlertEvent::Resolved => {
                let opened = self.open.remove(&i.incident_id).unwrap_or(t);
                push_capped(&mut self.resolved, (t, t.saturating_sub(opened)));
            }
        }
    }

    /// The statistics as the rules see them.
    pub fn view(&self) -> IncidentView {
        let resolved = self.resolved.len() as f64;
        IncidentView {
            opened: self.opened.len() as f64,
            open: self.open.len() as f64,
            resolved,
            mttr_minutes: if self.resolved.is_empty() {
                0.0
            } else {
                self.resolved.iter().map(|r| r.1 as f64).sum::<f64>() / resolved / 60_000.0
            },
        }
    }
}

/// Alert statistics of the entity over the days horizon (`alerts.*` in rules).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct AlertView {
    /// Alerts opened.
    pub opened: f64,
    /// Alerts open now.
    pub open: f64,
    /// Open alerts marked flapping.
    pub flapping: f64,
    /// Alerts resolved.
    pub resolved: f64,
    /// Mean time from opening to resolution of the resolved ones, in minutes (0 when none).
    pub mttr_minutes: f64,
    /// Resolved alerts that belonged to no incident.
    pub without_incident: f64,
    /// Of those, the ones resolved within the quick-resolution time.
    pub quick_without_incident: f64,
}

/// Incident statistics of the entity over the days horizon (`incidents.*` in rules).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct IncidentView {
    /// Incidents opened.
    pub opened: f64,
    /// Incidents open now.
    pub open: f64,
    /// Incidents resolved.
    pub resolved: f64,
    /// Mean time to resolve, in minutes (0 when none).
    pub mttr_minutes: f64,
}

/// What a recommender reads for one entity at one evaluation.
pub struct EntityView<'a> {
    /// The entity's name.
    pub entity: &'a str,
    /// Evaluation time (event time, ms).
    pub now: EventTime,
    /// Its state.
    pub book: &'a EntityBook,
    /// Configuration values declared for it in the rules (empty when none).
    pub config: &'a BTreeMap<String, f64>,
    /// Horizon lengths.
    pub horizons: Horizons,
    /// What counts as a quick alert resolution (ms).
    pub quick_ms: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn horizons_keep_the_current_and_previous_block() {
        let mut h = Horizon::new(100);
        for t in 0..100 {
            h.insert(t, 1.0, 1.0);
        }
        for t in 100..150 {
            h.insert(t, 3.0, 5.0);
        }
        let a = h.aggregates();
        assert_eq!(a.count, 150.0);
        assert_eq!(a.max, 5.0);
        assert!((a.mean - (100.0 + 150.0) / 150.0).abs() < 1e-12);
        assert_eq!(a.p50, 1.0);
        assert_eq!(a.p99, 3.0);
        // The next block drops the first; a gap of two blocks drops both.
        h.insert(200, 2.0, 2.0);
        assert_eq!(h.aggregates().count, 51.0);
        h.insert(500, 7.0, 7.0);
        let a = h.aggregates();
        assert_eq!((a.count, a.p50, a.max), (1.0, 7.0, 7.0));
        // Non-finite values are ignored.
        h.insert(501, f64::NAN, 1.0);
        assert_eq!(h.aggregates().count, 1.0);
    }

    fn alert(fp: &str, event: AlertEvent, t: EventTime, incident: bool) -> AlertRecord {
        AlertRecord {
            incident_id: incident.then(|| "i".to_string()),
            ..AlertRecord::sample(Default::default(), fp.into(), event, "svc".into(), t)
        }
    }

    #[test]
    fn alert_statistics_count_open_resolved_and_quick_noise() {
        let mut s = AlertStats::default();
        s.apply(&alert("a", AlertEvent::Opened, 0, false));
        s.apply(&alert("a", AlertEvent::Resolved, 300_000, false));
        s.apply(&alert("b", AlertEvent::Opened, 0, false));
        s.apply(&alert("b", AlertEvent::Resolved, 1_800_000, true));
        s.apply(&alert("c", AlertEvent::Opened, 2_000_000, false));
        let v = s.view(600_000);
        assert_eq!((v.opened, v.open, v.resolved), (3.0, 1.0, 2.0));
        assert_eq!(v.mttr_minutes, (5.0 + 30.0) / 2.0);
        assert_eq!((v.without_incident, v.quick_without_incident), (1.0, 1.0));
    }
}
