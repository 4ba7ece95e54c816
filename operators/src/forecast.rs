//! The forecast operator: for every series matching a forecast spec, a bounded history of one
//! window feature, a model refitted on a schedule (and when a level shift is detected) and
//! updated in between, and a [`ForecastRecord`] per closed window with the configured horizon's
//! point forecasts, 80% / 95% intervals and, for series with a limit in the capacity rules, the
//! predicted time until the limit is crossed.
//!
//! Cost control: forecasting is expensive, so only series whose metric name matches a spec's
//! pattern are forecast, and the engine builds this operator only when specs are configured.
//! Between refits an observation is absorbed by [`ModelState::update`] (one Kalman step for
//! ARIMA), which costs microseconds; a refit ([`fit_state`]) costs milliseconds.
//!
//! Refit triggers: no model yet (or the last one failed), `refit_every` windows since the last
//! fit, a gap in the series, or an observation outside the previous forecast's 95% interval
//! when the change-point test ([`recent_change`]) on the recent standardised one-step errors
//! confirms a level shift (testing the errors rather than the values keeps a seasonal series'
//! cycle from passing for a shift). A shift at least [`MIN_SEGMENT`] windows old refits on the
//! values since the change and drops the older ones; a younger one refits on the whole history:
//! values before a shift describe a level that no longer exists.
//!
//! Window features arrive on the worker that owns the series (the window operator exchanges by
//! series), in time order through the stash, so each series' sequence and therefore every fit
//! is the same for any worker count.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::rc::Rc;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::vec::{Broadcast, Map};
use timely::dataflow::operators::Operator;
use timely::dataflow::StreamVec;

use crate::models::capacity::{linear_steps_to_limit, probability_past, steps_to_limit};
use crate::models::changepoint::{recent_change, ChangepointConfig};
use crate::models::forecast::{fit_state, ForecastConfig, ModelChoice, ModelState};
use crate::models::window_stats::Feature;
use crate::records::WindowFeatures;
use crate::records::{CapacityForecast, ForecastRecord, ForecastStep, LimitDirection};
use crate::rules::MetricPattern;
use crate::series::{series_id, EventTime, SeriesId, SeriesKey};
use crate::stash::{frontier_limit, Stash};

/// Standard-normal quantiles of the two-sided 80% and 95% intervals (z at 0.90 and 0.975).
const Z80: f64 = 1.281_551_565_544_600_5;
const Z95: f64 = 1.959_963_984_540_054;

/// Fewest values after a detected level shift that a refit uses on their own (enough for an
/// ARIMA with drift on a short segment; fewer fall back to the whole history).
pub const MIN_SEGMENT: usize = 8;

/// How old (in windows) a level shift may be and still trigger a refit: the change-point
/// default (6) is tuned for scoring, but a refit on the new segment needs [`MIN_SEGMENT`] values.
const SHIFT_RECENT: usize = 24;

/// One `[[forecasts]]` entry, validated by the config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForecastSpec {
    /// Name in output (default `<window>:<feature>`).
    pub name: String,
    /// Window spec whose features are forecast.
    pub window: String,
    /// Length of one step: the window's slide (ms).
    pub step_ms: u64,
    /// Feature forecast.
    pub feature: Feature,
    /// Anchored regular expression on the metric name selecting the series.
    pub metric: MetricPattern,
    /// Steps forecast.
    pub horizon: usize,
    /// Windows of history kept per series (the fit's input).
    pub history: usize,
    /// Values needed before the first fit.
    pub min_history: usize,
    /// Windows between scheduled refits.
    pub refit_every: usize,
    /// Main season in windows (`None`: detected from the history).
    pub season: Option<usize>,
    /// Model family.
    pub model: ModelChoice,
}

/// One `[[limit]]` of `rules/capacity.toml`.
///
/// The limit is a fixed `value`, or read from a sibling series (`limit_from`): the series named
/// `limit_from` with exactly the forecast series' labels (PromQL's default one-to-one vector
/// matching), as Kubernetes exports `container_spec_memory_limit_bytes` beside
/// `container_memory_working_set_bytes`. With `limit_on` only those labels must match (PromQL's
/// `on(...)`), and with `limit_where` the sibling must carry those label values: for limit
/// series labelled differently, such as kube-state-metrics' `kube_pod_container_resource_limits`
/// (which adds `resource` and `unit`). The sibling's latest window's `last` value is the limit
/// (the largest, when several siblings match); until one is seen, `value` applies when given,
/// else the series has no capacity prediction. An upper limit read as 0 or less means no limit
/// (cAdvisor's value for an unlimited container).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CapacityLimit {
    /// Rule name, copied into the records.
    pub name: String,
    /// Anchored regular expression on the metric name.
    pub metric: MetricPattern,
    /// The fixed limit (or the fallback of `limit_from`), in the series' unit.
    pub value: Option<f64>,
    /// Metric name of the sibling series that carries the limit.
    #[serde(default)]
    pub limit_from: Option<String>,
    /// Labels the sibling must share with the series (absent: all of them).
    #[serde(default)]
    pub limit_on: Option<Vec<String>>,
    /// Label values the sibling must carry (PromQL's `{resource="memory"}`), to pick one of
    /// several limits exported under one name.
    #[serde(default)]
    pub limit_where: BTreeMap<String, String>,
    /// Which side is bad.
    pub direction: LimitDirection,
}

/// One window's value of a series some limit reads (`limit_from`), sent to every worker: the
/// series it limits may live on any of them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LimitSample {
    /// The limit series' match id ([`limit_match`]; its series id when all labels match).
    pub series: SeriesId,
    /// End of its window.
    pub end: EventTime,
    /// Its value (the window's last value).
    pub value: f64,
}

/// Everything the operator runs: the specs and the capacity limits.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ForecastPlan {
    /// Forecast specs (at most `u16::MAX`).
    pub specs: Vec<ForecastSpec>,
    /// Capacity limits; the first matching a series applies.
    pub limits: Vec<CapacityLimit>,
}

/// Where some limit reads its value: a metric name, the labels it matches on, and the label
/// values the limit series must carry.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct LimitSource {
    /// `limit_from`.
    pub name: String,
    /// `limit_on`.
    pub on: Option<Vec<String>>,
    /// `limit_where`.
    pub select: BTreeMap<String, String>,
}

impl LimitSource {
    /// Whether `key` is a limit series of this source.
    fn covers(&self, key: &SeriesKey) -> bool {
        self.name == key.name
            && self
                .select
                .iter()
                .all(|(k, v)| key.label(k) == Some(v.as_str()))
    }
}

/// The id under which a limit value is stored and looked up: metric `from` with `labels`,
/// restricted to `on` when given. The limit series computes it from its own labels, the series
/// it limits from its labels, so the two meet when the matched labels agree.
pub fn limit_match(from: &str, labels: &[(String, String)], on: Option<&[String]>) -> SeriesId {
    let kept = labels
        .iter()
        .filter(|(k, _)| on.is_none_or(|on| on.contains(k)))
        .map(|(k, v)| (k.as_str(), v.as_str()));
    series_id(from, kept)
}

impl ForecastPlan {
    /// The sources some limit reads its value from (sorted, no repeats).
    pub fn limit_sources(&self) -> Vec<LimitSource> {
        let mut sources: Vec<LimitSource> = self
            .limits
            .iter()
            .filter_map(|l| {
                Some(LimitSource {
                    name: l.limit_from.clone()?,
                    on: l.limit_on.clone(),
                    select: l.limit_where.clone(),
                })
            })
            .collect();
        sources.sort();
        sources.dedup();
        sources
    }

    /// The limit samples in `f`, one per source that covers `f`'s series (see
    /// [`ForecastPlan::limit_sources`]), when its last value is finite.
    pub fn limit_samples(sources: &[LimitSource], f: &WindowFeatures) -> Vec<LimitSample> {
        let Some(value) = Feature::Last.of(&f.values).filter(|v| v.is_finite()) else {
            return Vec::new();
        };
        sources
            .iter()
            .filter(|source| source.covers(&f.key))
            .map(|source| LimitSample {
                series: limit_match(&source.name, &f.key.labels, source.on.as_deref()),
                end: f.end,
                value,
            })
            .collect()
    }
}

/// The forecast state of one series under one spec.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeriesForecast {
    spec: u16,
    limit: Option<u16>,
    /// The sibling series that carries the limit's value, when the limit reads one.
    #[serde(default)]
    limit_series: Option<SeriesId>,
    /// Recent values, oldest first (NaN marks a missing window).
    history: VecDeque<f64>,
    /// End of the last window seen.
    last_end: EventTime,
    model: Option<ModelState>,
    /// Windows since the last fit.
    since_fit: u32,
    /// The previous forecast's one-step mean and standard deviation.
    band: Option<(f64, f64)>,
    /// Standardised one-step errors of the consecutive forecasts up to now (the last is the
    /// current window's), at most the change-point span: the sequence the level-shift test
    /// reads. A model's errors are white noise while it fits, so a step in them is a change the
    /// model did not expect, whatever the series' season.
    #[serde(default)]
    residuals: VecDeque<f32>,
    /// A window was missing or had no value since the last fit: the model's origin is behind.
    #[serde(default)]
    stale: bool,
}

impl SeriesForecast {
    /// Empty state for spec `spec`, capacity limit `limit`.
    pub fn new(spec: u16, limit: Option<u16>) -> Self {
        SeriesForecast {
            spec,
            limit,
            limit_series: None,
            history: VecDeque::new(),
            last_end: 0,
            model: None,
            since_fit: 0,
            band: None,
            residuals: VecDeque::new(),
            stale: false,
        }
    }

    /// Bytes of model state beyond the history buffer (the 8 KB budget's subject): the
    /// struct, the error sequence and the model.
    pub fn model_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.residuals.capacity() * std::mem::size_of::<f32>()
            + self.model.as_ref().map_or(0, ModelState::size_bytes)
    }

    /// Bytes of the history buffer.
    pub fn history_bytes(&self) -> usize {
        self.history.capacity() * std::mem::size_of::<f64>()
    }

    /// The fitted model, if any.
    pub fn model(&self) -> Option<&ModelState> {
        self.model.as_ref()
    }

    /// Absorbs the value of the window ending at `end` and returns the forecast from there
    /// (`None` before the first fit or when no model fits). `value` may be non-finite (a window
    /// without the feature): it is kept as a gap, no forecast is made from it, and the next
    /// finite value refits (the model cannot absorb a missing value).
    pub fn observe(
        &mut self,
        spec: &ForecastSpec,
        end: EventTime,
        value: f64,
    ) -> Option<(String, Vec<f64>, Vec<f64>)> {
        if self.last_end != 0 && end <= self.last_end {
            // Already seen (cannot happen with the stash's time order; harmless if it does).
            return None;
        }
        let step = spec.step_ms.max(1);
        let missing = if self.last_end == 0 {
            0
        } else {
            ((end - self.last_end) / step).saturating_sub(1)
        };
        self.last_end = end;
        let cap = spec.history.max(1);
        // A gap as long as the history leaves nothing of the old series worth keeping.
        if missing as usize >= cap {
            self.model = None;
        }
        for _ in 0..(missing as usize).min(cap) {
            self.push(f64::NAN, cap);
        }
        self.push(value, cap);
        if missing > 0 || !value.is_finite() {
            self.stale = true;
        }
        if !value.is_finite() {
            self.band = None;
            return None;
        }
        let outside = match self.band.take() {
            Some((mean, sd)) => {
                let r = (value - mean) / sd.max(f64::MIN_POSITIVE);
                if self.residuals.len() >= ChangepointConfig::default().span {
                    self.residuals.pop_front();
                }
                // Clamped so one wild value stays finite for the test.
                self.residuals.push_back(r.clamp(-1e6, 1e6) as f32);
                r.abs() > Z95
            }
            None => {
                // No forecast for this window: the error sequence restarts.
                self.residuals.clear();
                false
            }
        };
        self.since_fit = self.since_fit.saturating_add(1);

        let mut refit_from: Option<usize> = None;
        let scheduled =
            self.model.is_none() || self.stale || self.since_fit as usize >= spec.refit_every;
        if scheduled {
            refit_from = Some(0);
        } else if outside {
            refit_from = self.level_shift();
        }
        let refitted = refit_from.is_some_and(|from| self.refit(spec, from));
        if refitted {
            self.stale = false;
        } else if self.stale {
            // Not enough values to refit yet; the stale model would forecast from the wrong
            // origin.
            self.model = None;
        } else if let Some(m) = &mut self.model {
            if m.update(value).is_err() {
                self.model = None;
            }
        }
        let model = self.model.as_ref()?;
        let p = model.predict(spec.horizon).ok();
        let Some(p) = p.filter(|p| {
            p.point.len() == spec.horizon && p.point.iter().chain(&p.sd).all(|v| v.is_finite())
        }) else {
            // A decomposition state whose stored path ran out, or a numerical failure: refit
            // next window.
            self.model = None;
            return None;
        };
        self.band = Some((p.point[0], p.sd[0]));
        Some((model.name(), p.point, p.sd))
    }

    fn push(&mut self, v: f64, cap: usize) {
        while self.history.len() >= cap {
            self.history.pop_front();
        }
        self.history.push_back(v);
    }

    /// Start (index into the history) of the segment after a level shift that BOCPD confirms
    /// in the recent one-step errors; 0 (refit on everything) when the shift is too recent for
    /// the segment to be fitted alone.
    fn level_shift(&mut self) -> Option<usize> {
        let cfg = ChangepointConfig {
            recent: SHIFT_RECENT,
            ..ChangepointConfig::default()
        };
        let errors: Vec<f64> = self.residuals.iter().map(|r| f64::from(*r)).collect();
        let cp = recent_change(&cfg, &errors)?;
        if cp.age < MIN_SEGMENT {
            return Some(0);
        }
        // The errors end at the current window, as the history does.
        self.residuals
            .drain(..self.residuals.len().saturating_sub(cp.age));
        Some(self.history.len().saturating_sub(cp.age))
    }

    /// Refits on the history from index `from` on; values before `from` (the level before a
    /// confirmed shift) are dropped for good, so later scheduled refits do not see them either.
    fn refit(&mut self, spec: &ForecastSpec, from: usize) -> bool {
        self.since_fit = 0;
        self.history.drain(..from.min(self.history.len()));
        let y: Vec<f64> = self.history.iter().copied().collect();
        let finite = y.iter().filter(|v| v.is_finite()).count();
        // The first fit waits for `min_history`; later ones (the series is known) and fits
        // after a shift make do with a short segment rather than keep a stale model.
        let needed = if from > 0 || self.model.is_some() {
            MIN_SEGMENT.min(spec.min_history)
        } else {
            spec.min_history.min(spec.history)
        };
        if finite < needed.max(2) {
            return false;
        }
        // The fit stores `horizon + refit_every` steps so a decomposition model (which only
        // advances its stored path between fits) lasts until the next scheduled refit.
        let cfg = ForecastConfig {
            season: spec.season,
            detect_season: spec.season.is_none(),
            model: spec.model,
            holdout: Some(spec.horizon),
            ..ForecastConfig::new(spec.horizon + spec.refit_every, spec.season)
        };
        // A failed fit keeps the previous model (if any) rather than stop forecasting.
        match fit_state(&y, &cfg) {
            Ok(m) => {
                self.model = Some(m);
                true
            }
            Err(_) => false,
        }
    }
}

/// Forecast state of one worker: per series, one [`SeriesForecast`] per matching spec.
#[derive(Serialize, Deserialize)]
pub struct ForecastState {
    plan: Arc<ForecastPlan>,
    series: HashMap<SeriesId, Vec<SeriesForecast>>,
    /// Latest value of every limit series (`limit_from`), on every worker: (window end, value).
    #[serde(default)]
    limit_values: HashMap<SeriesId, (EventTime, f64)>,
    /// Everything before this time has been applied.
    #[serde(skip)]
    progress: EventTime,
}

impl ForecastState {
    /// Empty state for `plan`.
    pub fn new(plan: Arc<ForecastPlan>) -> Self {
        ForecastState {
            plan,
            series: HashMap::new(),
            limit_values: HashMap::new(),
            progress: 0,
        }
    }

    /// Time before which all input has been applied.
    pub fn progress(&self) -> EventTime {
        self.progress
    }

    /// The plan this state runs.
    pub fn plan(&self) -> &ForecastPlan {
        &self.plan
    }

    /// Takes over a checkpoint's series states, refusing one taken with another plan.
    pub fn restore(&mut self, saved: ForecastState) -> Result<(), String> {
        if *saved.plan != *self.plan {
            return Err("the forecasts or capacity limits changed since the checkpoint".into());
        }
        self.series = saved.series;
        self.limit_values = saved.limit_values;
        Ok(())
    }

    /// Series-spec pairs forecast, and the mean bytes of model state per pair beyond the
    /// history buffer.
    pub fn model_bytes_per_series(&self) -> (usize, f64) {
        let all = self.series.values().flatten();
        let (n, bytes) = all.fold((0usize, 0usize), |(n, b), s| (n + 1, b + s.model_bytes()));
        (n, if n == 0 { 0.0 } else { bytes as f64 / n as f64 })
    }

    fn entry(&mut self, f: &WindowFeatures) -> &mut Vec<SeriesForecast> {
        let plan = &self.plan;
        self.series.entry(f.series).or_insert_with(|| {
            let name = f.key.name.as_str();
            let limit = plan
                .limits
                .iter()
                .position(|l| l.metric.matches(name))
                .map(|i| i as u16);
            // The sibling carrying the limit: the limit's metric name, the matched labels.
            let limit_series = limit
                .and_then(|l| plan.limits.get(l as usize))
                .and_then(|l| {
                    let from = l.limit_from.as_deref()?;
                    Some(limit_match(from, &f.key.labels, l.limit_on.as_deref()))
                });
            plan.specs
                .iter()
                .enumerate()
                .filter(|(_, spec)| spec.metric.matches(name))
                .map(|(i, _)| SeriesForecast {
                    limit_series,
                    ..SeriesForecast::new(i as u16, limit)
                })
                .collect()
        })
    }

    /// Records one time's limit samples (apply them before that time's windows). Several limit
    /// series may share a match id: sorted by value within a window end, the largest stays,
    /// whatever order they arrived in.
    pub fn observe_limits(&mut self, samples: &mut [LimitSample]) {
        samples.sort_by(|a, b| {
            (a.series, a.end)
                .cmp(&(b.series, b.end))
                .then(a.value.total_cmp(&b.value))
        });
        samples.iter().for_each(|x| self.observe_limit(x));
    }

    /// Records the value of a limit series (apply a time's samples before its windows).
    pub fn observe_limit(&mut self, sample: &LimitSample) {
        let slot = self
            .limit_values
            .entry(sample.series)
            .or_insert((sample.end, sample.value));
        if sample.end >= slot.0 {
            *slot = (sample.end, sample.value);
        }
    }

    /// Applies one window's features; returns the forecasts made from it.
    pub fn observe(&mut self, f: &WindowFeatures, out: &mut Vec<ForecastRecord>) {
        let plan = self.plan.clone();
        self.entry(f);
        let Self {
            series,
            limit_values,
            ..
        } = self;
        let Some(series) = series.get_mut(&f.series) else {
            return;
        };
        for s in series.iter_mut() {
            let Some(spec) = plan.specs.get(s.spec as usize) else {
                continue;
            };
            if *spec.window != *f.window {
                continue;
            }
            let value = spec.feature.of(&f.values).unwrap_or(f64::NAN);
            let Some((model, point, sd)) = s.observe(spec, f.end, value) else {
                continue;
            };
            let capacity = s
                .limit
                .and_then(|l| plan.limits.get(l as usize))
                .and_then(|l| {
                    // The sibling series' latest value, else the fixed value.
                    // An upper limit of 0 or less means "no limit" (cAdvisor exports 0 for a
                    // container without a memory limit).
                    let sibling = s
                        .limit_series
                        .and_then(|id| limit_values.get(&id))
                        .map(|(_, v)| *v)
                        .filter(|v| l.direction == LimitDirection::Below || *v > 0.0);
                    Some((l, sibling.or(l.value)?))
                })
                .map(|ll| capacity(ll, spec, f.end, value, &point, &sd, &s.history));
            out.push(ForecastRecord {
                series: f.series,
                key: f.key.clone(),
                window: f.window.to_string(),
                spec: spec.name.clone(),
                feature: spec.feature.name().to_string(),
                time: f.end,
                step_ms: spec.step_ms,
                model,
                steps: point
                    .iter()
                    .zip(&sd)
                    .map(|(y, s)| ForecastStep {
                        yhat: *y,
                        lo80: y - Z80 * s,
                        hi80: y + Z80 * s,
                        lo95: y - Z95 * s,
                        hi95: y + Z95 * s,
                    })
                    .collect(),
                capacity,
            });
        }
    }
}

/// The capacity prediction for limit `l`, whose value in force is `limit`, from a forecast made
/// at `time`.
fn capacity(
    (l, limit): (&CapacityLimit, f64),
    spec: &ForecastSpec,
    time: EventTime,
    current: f64,
    point: &[f64],
    sd: &[f64],
    history: &VecDeque<f64>,
) -> CapacityForecast {
    let to_ms = |steps: f64| (steps * spec.step_ms as f64).round() as u64;
    let ttl = steps_to_limit(current, point, limit, l.direction).map(to_ms);
    let (last_mean, last_sd) = (
        point.last().copied().unwrap_or(f64::NAN),
        sd.last().copied().unwrap_or(f64::NAN),
    );
    let hist: Vec<f64> = history.iter().copied().collect();
    CapacityForecast {
        rule: l.name.clone(),
        limit,
        direction: l.direction,
        horizon_ms: spec.horizon as u64 * spec.step_ms,
        time_to_limit_ms: ttl,
        crossing_time: ttl.map(|t| time.saturating_add(t)),
        probability: probability_past(last_mean, last_sd, limit, l.direction),
        linear_time_to_limit_ms: linear_steps_to_limit(&hist, spec.horizon, limit, l.direction)
            .map(to_ms),
    }
}

/// Adds the forecast operator to a stream of window features.
pub trait ForecastExt<'scope> {
    /// Forecasts the matching series; `state` is shared with the caller for checkpoints.
    fn forecast(
        self,
        state: Rc<RefCell<ForecastState>>,
    ) -> StreamVec<'scope, EventTime, ForecastRecord>;
}

impl<'scope> ForecastExt<'scope> for StreamVec<'scope, EventTime, WindowFeatures> {
    fn forecast(
        self,
        state: Rc<RefCell<ForecastState>>,
    ) -> StreamVec<'scope, EventTime, ForecastRecord> {
        // The windows of limit series (`limit_from`), broadcast: a forecast series and its
        // limit series hash to different workers. Without such limits the filter is never
        // built and the feed is empty. The shape depends on the plan alone.
        let sources = state.borrow().plan().limit_sources();
        let feed = if sources.is_empty() {
            self.clone().flat_map(|_| Option::<LimitSample>::None)
        } else {
            self.clone()
                .flat_map(move |f| ForecastPlan::limit_samples(&sources, &f))
                .broadcast()
        };
        self.binary_frontier::<_, CapacityContainerBuilder<Vec<ForecastRecord>>, _, _, _, _>(
            feed,
            Pipeline,
            Pipeline,
            "Forecast",
            move |_initial, _info| {
                let mut stash: Stash<WindowFeatures> = Stash::default();
                let mut limits: Stash<LimitSample> = Stash::default();
                let mut out = Vec::new();
                move |(input, frontier), (feed, feed_frontier), output| {
                    let port = output.output_index();
                    input.for_each(|cap, data| stash.hold(&cap, data, port));
                    feed.for_each(|cap, data| limits.hold(&cap, data, port));
                    let limit = frontier_limit(frontier).min(frontier_limit(feed_frontier));
                    let mut state = state.borrow_mut();
                    let mut samples = limits.take_before(limit).into_iter().peekable();
                    for (cap, mut batch) in stash.take_before(limit) {
                        // A time's limit values apply to that time's windows (and later ones).
                        while let Some((_, mut s)) =
                            samples.next_if(|(c, _)| c.time() <= cap.time())
                        {
                            state.observe_limits(&mut s);
                        }
                        // Within a time a series' windows are distinct; order them anyway so
                        // nothing depends on arrival order.
                        batch.sort_by(|a, b| (a.series, &a.window).cmp(&(b.series, &b.window)));
                        for f in &batch {
                            state.observe(f, &mut out);
                        }
                        if !out.is_empty() {
                            output.session(&cap).give_iterator(out.drain(..));
                        }
                    }
                    for (_, mut s) in samples {
                        state.observe_limits(&mut s);
                    }
                    state.progress = limit;
                }
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::window_stats::FeatureValues;

    fn spec() -> ForecastSpec {
        ForecastSpec {
            name: "1m:mean".into(),
            window: "1m".into(),
            step_ms: 60_000,
            feature: Feature::Mean,
            metric: MetricPattern::new("disk_.*").expect("pattern"),
            horizon: 10,
            history: 60,
            min_history: 20,
            refit_every: 15,
            season: Some(1),
            model: ModelChoice::Arima,
        }
    }

    fn plan() -> ForecastPlan {
        ForecastPlan {
            specs: vec![spec()],
            limits: vec![CapacityLimit {
                name: "disk-full".into(),
                metric: MetricPattern::new("disk_used_percent").expect("pattern"),
                value: Some(90.0),
                limit_from: None,
                limit_on: None,
                limit_where: BTreeMap::new(),
                direction: LimitDirection::Above,
            }],
        }
    }

    fn features(name: &str, end: EventTime, v: f64) -> WindowFeatures {
        let key = SeriesKey::new(name, Vec::new());
        WindowFeatures {
            series: SeriesId(name.len() as u64),
            key: Arc::new(key),
            window: "1m".into(),
            start: end - 60_000,
            end,
            values: FeatureValues::single(v),
        }
    }

    /// A noisy level, deterministic.
    fn noise(t: u64) -> f64 {
        ((t * 7919) % 13) as f64 / 13.0 - 0.5
    }

    #[test]
    fn forecasts_start_after_min_history_and_only_for_matching_series() {
        let mut st = ForecastState::new(Arc::new(plan()));
        let mut out = Vec::new();
        for t in 1..=40u64 {
            st.observe(
                &features("disk_used_percent", t * 60_000, 50.0 + noise(t)),
                &mut out,
            );
            st.observe(
                &features("cpu_percent", t * 60_000, 50.0 + noise(t)),
                &mut out,
            );
            if t < 20 {
                assert!(out.is_empty(), "forecast before min_history at {t}");
            }
        }
        assert_eq!(out.len(), 21, "one forecast per window from the 20th");
        assert!(out.iter().all(|r| r.key.name == "disk_used_percent"));
        let r = out.last().expect("records");
        assert_eq!(
            (r.time, r.step_ms, r.steps.len()),
            (40 * 60_000, 60_000, 10)
        );
        for s in &r.steps {
            assert!(s.lo95 <= s.lo80 && s.lo80 <= s.yhat && s.yhat <= s.hi80 && s.hi80 <= s.hi95);
            assert!((s.yhat - 50.0).abs() < 1.0, "{s:?}");
        }
        let cap = r.capacity.as_ref().expect("disk has a limit");
        assert_eq!(cap.time_to_limit_ms, None);
        assert!(cap.probability < 1e-6, "{}", cap.probability);
        let (n, bytes) = st.model_bytes_per_series();
        assert_eq!(n, 1);
        assert!(bytes > 0.0 && bytes <= 8192.0, "{bytes}");
    }

    #[test]
    fn a_ramp_is_predicted_to_cross_the_limit() {
        let mut st = ForecastState::new(Arc::new(plan()));
        let mut out = Vec::new();
        let mut caps = Vec::new();
        for t in 1..=62u64 {
            // Flat at 50, then +2 per window from window 40: 90 at window 60.
            let v = 50.0 + 2.0 * t.saturating_sub(40) as f64 + 0.1 * noise(t);
            out.clear();
            st.observe(&features("disk_used_percent", t * 60_000, v), &mut out);
            caps.push(out.first().and_then(|r| r.capacity.clone()));
        }
        let caps: Vec<CapacityForecast> = caps[19..].iter().flatten().cloned().collect();
        assert_eq!(caps.len(), 43, "a forecast per window from the 20th");
        // Five windows before the limit (window 55, value 80) the crossing is predicted about
        // five windows ahead, with a probability well above one half by the horizon's end.
        let at55 = &caps[54 - 19];
        let ttl = at55.time_to_limit_ms.expect("crossing predicted");
        assert!((180_000..=420_000).contains(&ttl), "{at55:?}");
        assert!(at55.probability > 0.9, "{at55:?}");
        assert_eq!(at55.crossing_time, Some(55 * 60_000 + ttl));
        // Past the limit: 0.
        assert_eq!(caps[61 - 19].time_to_limit_ms, Some(0));
    }

    /// A plan forecasting `mem_used` with its limit read from `mem_limit`, matched on `on`.
    fn sibling_plan(on: Option<Vec<String>>) -> ForecastPlan {
        ForecastPlan {
            specs: vec![ForecastSpec {
                metric: MetricPattern::new("mem_used").expect("pattern"),
                ..spec()
            }],
            limits: vec![CapacityLimit {
                name: "mem".into(),
                metric: MetricPattern::new("mem_used").expect("pattern"),
                value: None,
                limit_from: Some("mem_limit".into()),
                limit_on: on,
                limit_where: BTreeMap::new(),
                direction: LimitDirection::Above,
            }],
        }
    }

    fn labelled(name: &str, labels: &[(&str, &str)]) -> Arc<SeriesKey> {
        let labels = labels.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        Arc::new(SeriesKey::new(name, labels))
    }

    /// 40 windows of `used` (rising 1 per window from 50: 95 at window 45, within the 10-step
    /// horizon at 40) and, from window 10 on, of each limit series with its value (of which
    /// `samples_per_window` are selected); returns the last forecast of each used series.
    fn with_limits(
        plan: ForecastPlan,
        used: &[Arc<SeriesKey>],
        limits: &[(Arc<SeriesKey>, f64)],
        samples_per_window: usize,
    ) -> Vec<ForecastRecord> {
        let window = |k: &Arc<SeriesKey>, end: EventTime, v: f64| WindowFeatures {
            series: k.id(),
            key: k.clone(),
            window: "1m".into(),
            start: end - 60_000,
            end,
            values: FeatureValues::single(v),
        };
        let sources = plan.limit_sources();
        let mut st = ForecastState::new(Arc::new(plan));
        let mut out = Vec::new();
        for t in 1..=40u64 {
            if t >= 10 {
                let mut samples: Vec<LimitSample> = limits
                    .iter()
                    .flat_map(|(k, v)| {
                        ForecastPlan::limit_samples(&sources, &window(k, t * 60_000, *v))
                    })
                    .collect();
                assert_eq!(samples.len(), samples_per_window, "limit series selected");
                st.observe_limits(&mut samples);
            }
            for u in used {
                assert!(ForecastPlan::limit_samples(&sources, &window(u, 60_000, 1.0)).is_empty());
                st.observe(&window(u, t * 60_000, 50.0 + t as f64), &mut out);
            }
        }
        // The limit values are part of the checkpointed state.
        let json = serde_json::to_string(&st).expect("serialises");
        assert!(json.contains("limit_values"));
        used.iter()
            .map(|u| {
                out.iter()
                    .rev()
                    .find(|r| r.key == *u)
                    .expect("a forecast")
                    .clone()
            })
            .collect()
    }

    #[test]
    fn a_limit_read_from_a_sibling_series_applies_to_its_series_only() {
        let plan = sibling_plan(None);
        let sources = plan.limit_sources();
        assert_eq!(sources.len(), 1);
        assert_eq!(
            (sources[0].name.as_str(), &sources[0].on),
            ("mem_limit", &None)
        );
        let used = [("service", "a"), ("service", "b")].map(|l| labelled("mem_used", &[l]));
        // a's limit is known from window 10 on; b has none (and no fixed value).
        let limit = [(labelled("mem_limit", &[("service", "a")]), 95.0)];
        let last = with_limits(plan, &used, &limit, 1);
        let cap = last[0]
            .capacity
            .as_ref()
            .expect("a has its sibling's limit");
        assert_eq!(cap.limit, 95.0);
        let ttl = cap.time_to_limit_ms.expect("crossing within the horizon");
        assert!((3 * 60_000..=7 * 60_000).contains(&ttl), "{ttl}");
        assert!(last[1].capacity.is_none(), "no limit known for b");
    }

    /// kube-state-metrics exports memory and CPU limits under one name, labelled `resource`
    /// and `unit`, without `host`: matched on `service` and selected by `resource` the memory
    /// limit applies, whatever order the samples arrive in.
    #[test]
    fn limit_on_and_limit_where_match_a_sibling_with_other_labels() {
        let used = [labelled("mem_used", &[("host", "h1"), ("service", "a")])];
        let limit = |resource: &str, unit: &str| {
            labelled(
                "mem_limit",
                &[("resource", resource), ("service", "a"), ("unit", unit)],
            )
        };
        let both = [
            (limit("memory", "byte"), 95.0),
            (limit("cpu", "core"), 400.0),
        ];
        let plan = |on: bool, select: bool| ForecastPlan {
            limits: vec![CapacityLimit {
                limit_on: on.then(|| vec!["service".to_string()]),
                limit_where: if select {
                    BTreeMap::from([("resource".to_string(), "memory".to_string())])
                } else {
                    BTreeMap::new()
                },
                ..sibling_plan(None).limits[0].clone()
            }],
            ..sibling_plan(None)
        };
        let all_labels = with_limits(plan(false, false), &used, &both[..1], 1);
        assert!(all_labels[0].capacity.is_none(), "labels differ: no match");
        // Matched on the service alone, both limits meet: the larger stays.
        let on = with_limits(plan(true, false), &used, &both, 2);
        assert_eq!(on[0].capacity.as_ref().expect("matched").limit, 400.0);
        let selected = with_limits(plan(true, true), &used, &both, 1);
        assert_eq!(selected[0].capacity.as_ref().expect("matched").limit, 95.0);
        let swapped = [both[1].clone(), both[0].clone()];
        let again = with_limits(plan(true, false), &used, &swapped, 2);
        assert_eq!(
            again[0].capacity, on[0].capacity,
            "arrival order does not matter"
        );
    }

    #[test]
    fn updates_between_refits_and_state_roundtrip() {
        let mut st = ForecastState::new(Arc::new(plan()));
        let mut out = Vec::new();
        for t in 1..=25u64 {
            st.observe(
                &features("disk_used_percent", t * 60_000, 50.0 + noise(t)),
                &mut out,
            );
        }
        let json = serde_json::to_string(&st).expect("serialises");
        let mut back = ForecastState::new(Arc::new(plan()));
        back.restore(serde_json::from_str(&json).expect("deserialises"))
            .expect("same plan");
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for t in 26..=30u64 {
            let f = features("disk_used_percent", t * 60_000, 50.0 + noise(t));
            st.observe(&f, &mut a);
            back.observe(&f, &mut b);
        }
        assert_eq!(a.len(), 5);
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(x.model, y.model);
            assert!((x.steps[0].yhat - y.steps[0].yhat).abs() < 1e-9);
        }
        let mut other = plan();
        other.specs[0].horizon = 5;
        let mut changed = ForecastState::new(Arc::new(other));
        assert!(changed
            .restore(serde_json::from_str(&json).expect("deserialises"))
            .is_err());
    }

    #[test]
    fn gaps_and_non_finite_values_do_not_panic() {
        let s = spec();
        let mut f = SeriesForecast::new(0, None);
        for t in 1..=30u64 {
            let v = if t % 7 == 0 {
                f64::NAN
            } else {
                10.0 + noise(t)
            };
            // Windows 12..=15 are missing.
            if (12..=15).contains(&t) {
                continue;
            }
            let _ = f.observe(&s, t * 60_000, v);
        }
        assert!(
            f.observe(&s, 10 * 60_000, 1.0).is_none(),
            "old window ignored"
        );
        assert!(f.history.len() <= s.history);
        let far = f.observe(&s, 10_000 * 60_000, f64::INFINITY);
        assert!(far.is_none());
        assert!(
            f.model().is_none(),
            "a gap longer than the history drops the model"
        );
        // A window without a value gives no forecast; the next value refits from the right origin.
        let mut g = SeriesForecast::new(0, None);
        for t in 1..=25u64 {
            let _ = g.observe(&s, t * 60_000, 10.0 + noise(t));
        }
        assert!(g.observe(&s, 26 * 60_000, f64::NAN).is_none());
        assert!(g.stale);
        assert!(g.observe(&s, 27 * 60_000, 10.0).is_some());
        assert!(!g.stale);
    }
}
