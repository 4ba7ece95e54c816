//! The ML models of this module as optimizer plug-ins: each implements the [`Recommender`]
//! interface the rules use, so the optimizer feeds them the same inputs in the same order and
//! publishes their drafts with the same ids, priorities, dedup and expiry.
//!
//! * [`RightSizingRecommender`] (`ml:right_sizing`): the CPU request of every service that
//!   declares `cpu_request_cores` in the rules' `[[config]]`, from its CPU use in cores
//!   (`cpu_utilization_percent` × the request), forecast-aware (see [`right_sizing`]).
//! * [`CapacityRecommender`] (`ml:capacity_scaling`): the scale-out of a series whose forecast
//!   crosses its capacity limit (see [`capacity_scaling`]).
//! * [`DetectorTuningRecommender`] (`ml:detector_tuning`): a higher alert threshold for an entity
//!   whose alerts keep resolving quickly without an incident (see [`detector_tuning`]).
//! * [`ThresholdTuningRecommender`] (`ml:threshold_tuning`): the static thresholds declared in
//!   the rules, replayed against the resolved incidents (see [`threshold_tuning`]).
//!
//! [`right_sizing`]: super::right_sizing
//! [`capacity_scaling`]: super::capacity_scaling
//! [`detector_tuning`]: super::detector_tuning
//! [`threshold_tuning`]: super::threshold_tuning

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::capacity_scaling::CapacityScalingConfig;
use super::detector_tuning::{AlertStats, DetectorTuningConfig};
use super::right_sizing::{RightSizing, RightSizingConfig};
use super::threshold_tuning::{IncidentWindow, StaticThreshold, ThresholdTuningConfig};
use super::RecommendationDraft;
use crate::models::rec_context::{EntityView, OptimizeInput};
use crate::models::rec_rules::{Draft, OptimizePlan, Recommender};
use crate::records::{AlertEvent, ForecastRecord, Level, LimitDirection};
use crate::series::EventTime;

/// The metric whose window means give CPU use, as a percentage of the request.
const CPU_METRIC: &str = "cpu_utilization_percent";
/// The declared configuration value right-sizing reads and recommends.
const CPU_REQUEST: &str = "cpu_request_cores";

/// How far ahead a request must hold: a day, so it covers the daily peak whenever it is applied
/// (requests are not changed several times a day).
const RIGHT_SIZING_HORIZON_MS: u64 = 24 * 3_600_000;

/// Right-sizing recommendations below this confidence are not made (see its use).
const MIN_CONFIDENCE: f64 = 0.2;

/// Rounds for display: recommendations are read by people.
fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// The model of `entity`, started by `start` on first use (`None` when it cannot start).
fn model_of<'a, M, E>(
    models: &'a mut BTreeMap<String, M>,
    entity: &str,
    start: impl FnOnce() -> Result<M, E>,
) -> Option<&'a mut M> {
    if !models.contains_key(entity) {
        models.insert(entity.to_string(), start().ok()?);
    }
    models.get_mut(entity)
}

/// A recommender's state for a checkpoint ([`Recommender::save`]).
fn save_state<T: Serialize>(state: &T) -> serde_json::Value {
    serde_json::to_value(state).unwrap_or(serde_json::Value::Null)
}

/// What [`save_state`] wrote, or `None` for a checkpoint without it ([`Recommender::load`]).
fn load_state<T: DeserializeOwned>(
    name: &str,
    state: serde_json::Value,
) -> Result<Option<T>, String> {
    if state.is_null() {
        return Ok(None);
    }
    serde_json::from_value(state)
        .map(Some)
        .map_err(|e| format!("{name}: {e}"))
}

/// Replaces `slot` with what [`save_state`] wrote of it (a checkpoint without it leaves it as
/// it is): the [`Recommender::load`] of recommenders whose whole state is their checkpoint.
fn load_whole<T: Recommender + DeserializeOwned>(
    slot: &mut T,
    state: serde_json::Value,
) -> Result<(), String> {
    if let Some(saved) = load_state(slot.name(), state)? {
        *slot = saved;
    }
    Ok(())
}

/// The common part of turning a model's draft into the optimizer's.
fn base_draft(d: &RecommendationDraft, entity: &str, value: &str) -> Draft {
    Draft {
        source: d.source.clone(),
        category: d.category,
        title: String::new(),
        description: String::new(),
        component: entity.to_string(),
        target: BTreeMap::from([("service".to_string(), entity.to_string())]),
        current_value: d.current.get(value).map(|v| serde_json::json!(round3(*v))),
        recommended_value: serde_json::json!(round3(d.value(value).unwrap_or(f64::NAN))),
        expected_improvement: d.expected_improvement_pct.max(0.0),
        confidence: d.confidence.clamp(0.0, 1.0),
        urgency: 0.0,
        implementation_steps: Vec::new(),
        estimated_effort: Level::Low,
        risk_level: Level::Low,
        expire_ms: None,
        evidence: d.evidence.clone(),
        claim_only: false,
    }
}

/// The target of a recommendation about the entity's series named `metric`: its labels and the
/// metric, as a rule on that series names it (so [`crate::models::rec_rules::select_drafts`]
/// sees the same target); `{service, metric}` when the series is not in the book.
fn series_target(view: &EntityView<'_>, metric: &str) -> BTreeMap<String, String> {
    let mut target: BTreeMap<String, String> = view
        .book
        .series
        .values()
        .find(|s| s.key.name == metric)
        .map(|s| s.key.labels.iter().cloned().collect())
        .unwrap_or_else(|| BTreeMap::from([("service".to_string(), view.entity.to_string())]));
    target.insert("metric".into(), metric.to_string());
    target
}

/// Forecast-aware right-sizing of CPU requests.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RightSizingRecommender {
    cfg: RightSizingConfig,
    /// Per entity: its model, fed with CPU utilization in percent of the request. Inputs carry
    /// no configuration, so the model learns in percent and the recommendation scales by the
    /// declared request (a constant factor: percentiles and forecasts scale with it).
    models: BTreeMap<String, RightSizing>,
}

impl RightSizingRecommender {
    /// A recommender with the model's default settings.
    pub fn new(cfg: RightSizingConfig) -> Self {
        RightSizingRecommender {
            cfg,
            ..Default::default()
        }
    }
}

impl Recommender for RightSizingRecommender {
    fn name(&self) -> &str {
        "ml:right_sizing"
    }

    fn reads_features(&self, metric: &str) -> bool {
        metric == CPU_METRIC
    }

    fn observe(&mut self, entity: &str, input: &OptimizeInput) {
        let OptimizeInput::Features(f) = input else {
            return;
        };
        if f.key.name != CPU_METRIC || !f.values.mean.is_finite() {
            return;
        }
        if let Some(m) = model_of(&mut self.models, entity, || self.cfg.start()) {
            // A sample the model rejects (out of order) teaches nothing; nothing else to do.
            let _ = m.observe(f.end, f.values.mean);
        }
    }

    fn recommend(&mut self, view: &EntityView<'_>, out: &mut Vec<Draft>) {
        let Some(request) = view.config.get(CPU_REQUEST).copied() else {
            return;
        };
        if !(request.is_finite() && request > 0.0) {
            return;
        }
        let Some(model) = self.models.get_mut(view.entity) else {
            return;
        };
        model.advance_to(view.now);
        let horizon = RIGHT_SIZING_HORIZON_MS;
        // In percent of the current request: the current request is 100 %.
        let Some(mut d) = model.recommend(view.now, horizon, Some(100.0)) else {
            return;
        };
        for v in d.recommended.values_mut().chain(d.current.values_mut()) {
            *v *= request / 100.0;
        }
        let Some(new) = d.value("request") else {
            return;
        };
        // Confidence grows with days of history (a week for full confidence): below a fifth,
        // about a day and a half, the daily season has not been seen often enough to act on.
        if d.confidence < MIN_CONFIDENCE {
            return;
        }
        let mut draft = base_draft(&d, view.entity, "request");
        draft.target = series_target(view, CPU_METRIC);
        // Within 10 % of the current request: not worth a change. The model still claims the
        // target, so the `cpu-request-rightsize` rule does not recommend against it.
        if (new - request).abs() < 0.1 * request {
            draft.claim_only = true;
            out.push(draft);
            return;
        }
        draft.title = format!(
            "Set the CPU request of {} to {} cores (now {})",
            view.entity,
            round3(new),
            round3(request)
        );
        draft.description = format!(
            "Forecast-aware right-sizing: CPU use over the next {} h, trend and daily season \
             included, peaks at about {} cores with the observed forecast errors; limit {} \
             cores.",
            horizon / 3_600_000,
            round3(new),
            round3(d.value("limit").unwrap_or(new)),
        );
        draft.implementation_steps = vec![
            format!(
                "Change resources.requests.cpu of {} to {}",
                view.entity,
                round3(new)
            ),
            "Roll out and watch cpu_utilization_percent through a daily peak".to_string(),
        ];
        draft.risk_level = if new < request {
            Level::Medium
        } else {
            Level::Low
        };
        draft.expire_ms = Some(horizon);
        out.push(draft);
    }

    fn save(&self) -> serde_json::Value {
        save_state(self)
    }

    fn load(&mut self, state: serde_json::Value) -> Result<(), String> {
        load_whole(self, state)
    }
}

/// Scale-out when a capacity forecast crosses its limit.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CapacityRecommender {
    cfg: CapacityScalingConfig,
    /// Per entity: the latest forecast with a capacity prediction, per series name.
    latest: BTreeMap<String, BTreeMap<String, ForecastRecord>>,
}

impl CapacityRecommender {
    /// A recommender with the given settings.
    pub fn new(cfg: CapacityScalingConfig) -> Self {
        CapacityRecommender {
            cfg,
            ..Default::default()
        }
    }
}

impl Recommender for CapacityRecommender {
    fn name(&self) -> &str {
        "ml:capacity_scaling"
    }

    /// Capacity reads forecasts only.
    fn reads_features(&self, _metric: &str) -> bool {
        false
    }

    fn observe(&mut self, entity: &str, input: &OptimizeInput) {
        if let OptimizeInput::Forecast(f) = input {
            if f.capacity.is_some() {
                self.latest
                    .entry(entity.to_string())
                    .or_default()
                    .insert(f.key.name.clone(), (**f).clone());
            }
        }
    }

    fn recommend(&mut self, view: &EntityView<'_>, out: &mut Vec<Draft>) {
        let Some(series) = self.latest.get(view.entity) else {
            return;
        };
        for (metric, f) in series {
            let Some(cap) = &f.capacity else { continue };
            // The limit is the capacity in force, in the series' unit.
            let Ok(Some(d)) = self.cfg.recommend(f, cap.limit) else {
                continue;
            };
            let Some(new) = d.value("capacity") else {
                continue;
            };
            let mut draft = base_draft(&d, view.entity, "capacity");
            draft.target = f.key.labels.iter().cloned().collect();
            draft.target.insert("metric".into(), metric.clone());
            let by = d
                .act_by
                .map(crate::time_format::rfc3339_millis)
                .unwrap_or_else(|| "now".into());
            let hours = cap
                .time_to_limit_ms
                .map_or("beyond the horizon".to_string(), |ms| {
                    format!("in {:.1} h", ms as f64 / 3_600_000.0)
                });
            draft.title = format!(
                "Grow {metric} capacity of {} from {} to {} by {by}",
                view.entity,
                round3(cap.limit),
                round3(new)
            );
            draft.description = format!(
                "The forecast ({}) reaches the {} limit of {} {hours} (probability {:.2}); a \
                 straight line through the same history says {}.",
                f.model,
                round3(cap.limit),
                metric,
                cap.probability,
                cap.linear_time_to_limit_ms
                    .map_or("never".to_string(), |ms| format!(
                        "{:.1} h",
                        ms as f64 / 3_600_000.0
                    )),
            );
            draft.implementation_steps = vec![
                format!("Add capacity to {} for {metric} before {by}", view.entity),
                "Or remove the growth (clean-up, leak fix) and watch the forecast".to_string(),
            ];
            draft.estimated_effort = Level::Medium;
            draft.urgency = cap.probability.clamp(0.0, 1.0);
            out.push(draft);
        }
    }

    fn save(&self) -> serde_json::Value {
        save_state(self)
    }

    fn load(&mut self, state: serde_json::Value) -> Result<(), String> {
        load_whole(self, state)
    }
}

/// One alert the detector-tuning recommender follows until it resolves.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct OpenAlert {
    opened: EventTime,
    peak: f64,
    in_incident: bool,
}

/// Higher alert thresholds for entities whose alerts are mostly quick noise.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DetectorTuningRecommender {
    cfg: DetectorTuningConfig,
    /// The alert threshold in force (the low severity band's score).
    current: f64,
    open: BTreeMap<String, OpenAlert>,
    stats: BTreeMap<String, AlertStats>,
}

impl DetectorTuningRecommender {
    /// A recommender for alerts that open at score `current`.
    pub fn new(cfg: DetectorTuningConfig, current: f64) -> Self {
        DetectorTuningRecommender {
            cfg,
            current,
            ..Default::default()
        }
    }
}

impl Recommender for DetectorTuningRecommender {
    fn name(&self) -> &str {
        "ml:detector_tuning"
    }

    /// Tuning reads alerts only.
    fn reads_features(&self, _metric: &str) -> bool {
        false
    }

    fn observe(&mut self, entity: &str, input: &OptimizeInput) {
        let OptimizeInput::Alert(a) = input else {
            return;
        };
        let o = self.open.entry(a.fingerprint.clone()).or_insert(OpenAlert {
            opened: a.event_time,
            peak: a.score,
            in_incident: false,
        });
        o.peak = o.peak.max(a.score);
        o.in_incident |= a.incident_id.is_some();
        if a.event != AlertEvent::Resolved {
            return;
        }
        let Some(o) = self.open.remove(&a.fingerprint) else {
            return;
        };
        if let Some(s) = model_of(&mut self.stats, entity, || self.cfg.start()) {
            let _ = s.record(o.peak, a.event_time.saturating_sub(o.opened), o.in_incident);
        }
    }

    fn recommend(&mut self, view: &EntityView<'_>, out: &mut Vec<Draft>) {
        let Some(d) = self
            .stats
            .get(view.entity)
            .and_then(|s| s.recommend(self.current))
        else {
            return;
        };
        let Some(new) = d.value("threshold") else {
            return;
        };
        let (alerts, noise, _) = self.stats[view.entity].counts();
        let mut draft = base_draft(&d, view.entity, "threshold");
        draft.title = format!(
            "Raise the anomaly score threshold of {} from {} to {}",
            view.entity,
            round3(self.current),
            round3(new)
        );
        draft.description = format!(
            "{noise} of {alerts} alerts on {} resolved within minutes without joining an \
             incident; a threshold of {} would have kept the alerts that did.",
            view.entity,
            round3(new)
        );
        draft.implementation_steps = vec![
            format!(
                "Add a [[band]] override or a per-service detector threshold for {} at {}",
                view.entity,
                round3(new)
            ),
            "Replay last week's data (harbinger replay) and compare the alerts".to_string(),
        ];
        out.push(draft);
    }

    fn save(&self) -> serde_json::Value {
        save_state(self)
    }

    fn load(&mut self, state: serde_json::Value) -> Result<(), String> {
        load_whole(self, state)
    }
}

/// Settings of [`ThresholdTuningRecommender`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ThresholdRecommenderConfig {
    /// Window values kept per thresholded series, as event time: the replay's span. Default
    /// 7 days (the optimizer's days horizon): a week of one-minute windows is 10,080 values,
    /// 160 KB per thresholded series (only series with a declared threshold are kept).
    pub history_ms: u64,
    /// History needed before recommending. Default 1 day: the replay must have seen the daily
    /// season's peak once, or it counts the false alerts of a quiet night only.
    pub min_history_ms: u64,
    /// Labelled incidents kept per entity (oldest dropped). Default 64.
    pub max_incidents: usize,
}

impl Default for ThresholdRecommenderConfig {
    fn default() -> Self {
        Self {
            history_ms: 7 * 24 * 3_600_000,
            min_history_ms: 24 * 3_600_000,
            max_incidents: 64,
        }
    }
}

/// Alert fingerprints remembered per entity to label incidents (oldest dropped): far more than
/// the alerts of the thresholded metrics open within an incident's lifetime.
const MAX_FINGERPRINTS: usize = 1024;

/// The window values of one thresholded series.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct ThresholdTrack {
    /// The series' labels and metric: the recommendation's target (as a rule's on the series).
    target: BTreeMap<String, String>,
    /// `(window end, value)`, time order, at most `history_ms` old.
    values: VecDeque<(EventTime, f64)>,
}

/// A resolved incident whose alerts include one on a thresholded metric of the entity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct LabelledIncident {
    window: IncidentWindow,
    /// Thresholded metrics of the entity that alerted in it.
    metrics: BTreeSet<String>,
}

/// Per entity: recent alert fingerprints on thresholded metrics, and labelled incidents.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct IncidentLabels {
    fingerprints: VecDeque<(String, String)>,
    incidents: VecDeque<LabelledIncident>,
}

/// Tuning of the static thresholds declared in the rules (`[[threshold]]`): per entity that
/// declares one, a bounded history of the thresholded series' window values, replayed against
/// the entity's resolved incidents in which that metric alerted (the labels), with
/// [`ThresholdTuningConfig`]: the threshold that still fires on every such incident with the
/// fewest false alerts. A recommendation is made only when it catches more incidents or fires
/// fewer false alerts than the threshold in force.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ThresholdTuningRecommender {
    #[serde(skip)]
    plan: Arc<OptimizePlan>,
    #[serde(skip)]
    cfg: ThresholdRecommenderConfig,
    /// Entity → declaration name → track.
    tracks: BTreeMap<String, BTreeMap<String, ThresholdTrack>>,
    labels: BTreeMap<String, IncidentLabels>,
}

impl ThresholdTuningRecommender {
    /// Tunes the thresholds `plan` declares.
    pub fn new(plan: Arc<OptimizePlan>, cfg: ThresholdRecommenderConfig) -> Self {
        ThresholdTuningRecommender {
            plan,
            cfg,
            ..Default::default()
        }
    }

    fn declared(&self, entity: &str, t: &StaticThreshold) -> bool {
        self.plan
            .config
            .get(entity)
            .is_some_and(|c| c.contains_key(&t.config))
    }
}

impl Recommender for ThresholdTuningRecommender {
    fn name(&self) -> &str {
        "ml:threshold_tuning"
    }

    fn reads_features(&self, metric: &str) -> bool {
        self.plan.thresholds.iter().any(|t| t.metric == metric)
    }

    fn observe(&mut self, entity: &str, input: &OptimizeInput) {
        if self.plan.thresholds.is_empty() {
            return;
        }
        match input {
            OptimizeInput::Features(f) => {
                for t in &self.plan.thresholds {
                    if t.metric != f.key.name || !self.declared(entity, t) {
                        continue;
                    }
                    let Some(v) = t.feature.of(&f.values).filter(|v| v.is_finite()) else {
                        continue;
                    };
                    let track = self
                        .tracks
                        .entry(entity.to_string())
                        .or_default()
                        .entry(t.name.clone())
                        .or_default();
                    if track.target.is_empty() {
                        track.target = f.key.labels.iter().cloned().collect();
                        track.target.insert("metric".into(), f.key.name.clone());
                    }
                    if track.values.back().is_some_and(|(last, _)| *last >= f.end) {
                        continue;
                    }
                    track.values.push_back((f.end, v));
                    let cutoff = f.end.saturating_sub(self.cfg.history_ms);
                    while track.values.front().is_some_and(|(t, _)| *t < cutoff) {
                        track.values.pop_front();
                    }
                }
            }
            OptimizeInput::Alert(a) => {
                let Some(metric) = a.labels.get("metric") else {
                    return;
                };
                if !self.plan.thresholds.iter().any(|t| &t.metric == metric) {
                    return;
                }
                let l = self.labels.entry(entity.to_string()).or_default();
                if l.fingerprints.iter().any(|(f, _)| *f == a.fingerprint) {
                    return;
                }
                if l.fingerprints.len() >= MAX_FINGERPRINTS {
                    l.fingerprints.pop_front();
                }
                l.fingerprints
                    .push_back((a.fingerprint.clone(), metric.clone()));
            }
            OptimizeInput::Incident(i) if i.event == AlertEvent::Resolved => {
                let Some(l) = self.labels.get_mut(entity) else {
                    return;
                };
                let metrics: BTreeSet<String> = l
                    .fingerprints
                    .iter()
                    .filter(|(f, _)| i.alerts.contains(f))
                    .map(|(_, m)| m.clone())
                    .collect();
                if metrics.is_empty() {
                    return;
                }
                // The incident ran from its first alert to its resolution (its duration when
                // the time does not parse; it ends before the 10-minute wait for late alerts).
                let span = (i.duration_minutes.max(0.0) * 60_000.0).round() as u64;
                let start = crate::time_format::parse_rfc3339_millis(&i.first_alert_time)
                    .filter(|t| *t <= i.event_time)
                    .unwrap_or(i.event_time.saturating_sub(span));
                if l.incidents.len() >= self.cfg.max_incidents.max(1) {
                    l.incidents.pop_front();
                }
                l.incidents.push_back(LabelledIncident {
                    window: IncidentWindow {
                        start_ms: start,
                        end_ms: i.event_time,
                    },
                    metrics,
                });
            }
            _ => {}
        }
    }

    fn recommend(&mut self, view: &EntityView<'_>, out: &mut Vec<Draft>) {
        let Some(tracks) = self.tracks.get(view.entity) else {
            return;
        };
        let labels = self.labels.get(view.entity);
        for t in &self.plan.thresholds {
            let (Some(track), Some(&current)) = (tracks.get(&t.name), view.config.get(&t.config))
            else {
                continue;
            };
            let (Some(first), Some(last)) = (track.values.front(), track.values.back()) else {
                continue;
            };
            if last.0 - first.0 < self.cfg.min_history_ms {
                continue;
            }
            let series: Vec<(EventTime, f64)> = track.values.iter().copied().collect();
            let cfg = ThresholdTuningConfig {
                direction: t.direction,
                for_ms: t.for_ms,
                ..ThresholdTuningConfig::default()
            };
            // An incident is a label when the metric alerted in it and the history covers it
            // with at least one `for`-long run (else no threshold could have fired in it).
            let never = match t.direction {
                LimitDirection::Above => f64::NEG_INFINITY,
                LimitDirection::Below => f64::INFINITY,
            };
            let incidents: Vec<IncidentWindow> = labels
                .into_iter()
                .flat_map(|l| &l.incidents)
                .filter(|i| i.metrics.contains(&t.metric) && i.window.end_ms <= view.now)
                .map(|i| i.window)
                .filter(|w| {
                    // Replayed alone, the window's own samples at a threshold always passed.
                    let from = w.start_ms.saturating_sub(cfg.incident_lead_ms);
                    let inside: Vec<(EventTime, f64)> = series
                        .iter()
                        .filter(|(t, _)| *t >= from && *t <= w.end_ms)
                        .copied()
                        .collect();
                    cfg.replay(&inside, std::slice::from_ref(w), never)
                        .incidents_caught
                        == 1
                })
                .collect();
            if incidents.is_empty() {
                continue;
            }
            let Ok(tuned) = cfg.recommend(&series, &incidents, current) else {
                continue;
            };
            let gains = tuned.after.incidents_caught > tuned.before.incidents_caught
                || tuned.after.false_alerts < tuned.before.false_alerts;
            if !gains {
                continue;
            }
            let d = tuned.draft();
            let mut draft = base_draft(&d, view.entity, "threshold");
            draft.target = track.target.clone();
            let hours = (last.0 - first.0) as f64 / 3_600_000.0;
            draft.title = format!(
                "Set the {} alert threshold of {} to {} (now {})",
                t.metric,
                view.entity,
                round3(tuned.threshold),
                round3(current)
            );
            draft.description = format!(
                "Replaying the last {hours:.0} h of {} ({} of the 1-window values, for {} min) \
                 against the {} resolved incidents in which it alerted: {} fires on all of \
                 them with {} false alerts instead of {} ({} caught); alert volume {:+.0}%.",
                t.metric,
                t.feature.name(),
                t.for_ms / 60_000,
                tuned.incidents,
                round3(tuned.threshold),
                tuned.after.false_alerts,
                tuned.before.false_alerts,
                tuned.before.incidents_caught,
                tuned.alert_volume_change_pct()
            );
            draft.implementation_steps = vec![
                format!(
                    "Change {} of {} from {} to {}",
                    t.config,
                    view.entity,
                    round3(current),
                    round3(tuned.threshold)
                ),
                "Keep Harbinger's anomaly alert for regressions the static rule cannot see"
                    .to_string(),
            ];
            // Raising a threshold can only lose alerts the replay did not label.
            draft.risk_level = Level::Low;
            out.push(draft);
        }
    }

    fn save(&self) -> serde_json::Value {
        save_state(self)
    }

    fn load(&mut self, state: serde_json::Value) -> Result<(), String> {
        if let Some(saved) = load_state::<Self>(self.name(), state)? {
            self.tracks = saved.tracks;
            self.labels = saved.labels;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::models::rec_context::{EntityBook, Horizons};
    use crate::models::window_stats::FeatureValues;
    use crate::records::{
        AlertRecord, CapacityForecast, ForecastStep, LimitDirection, RecommendationCategory,
        WindowFeatures,
    };
    use crate::series::{SeriesId, SeriesKey};

    const HOUR: u64 = 3_600_000;
    const HORIZONS: Horizons = Horizons {
        short_ms: 6 * HOUR,
        long_ms: 7 * 24 * HOUR,
    };

    fn recommend(
        r: &mut dyn Recommender,
        entity: &str,
        now: EventTime,
        config: &BTreeMap<String, f64>,
    ) -> Vec<Draft> {
        let book = EntityBook::default();
        let view = EntityView {
            entity,
            now,
            book: &book,
            config,
            horizons: HORIZONS,
            quick_ms: 600_000,
        };
        let mut out = Vec::new();
        r.recommend(&view, &mut out);
        out
    }

    fn cpu_window(end: EventTime, mean: f64) -> OptimizeInput {
        OptimizeInput::Features(WindowFeatures {
            series: SeriesId(1),
            key: Arc::new(SeriesKey::new(
                CPU_METRIC,
                [("service".to_string(), "orders".to_string())],
            )),
            window: "1m".into(),
            start: end - 60_000,
            end,
            values: FeatureValues {
                count: 6,
                mean,
                min: mean,
                max: mean,
                std: 0.0,
                last: mean,
                p50: mean,
                p95: mean,
                p99: mean,
                rate_of_change: None,
                counter_rate: 0.0,
            },
        })
    }

    #[test]
    fn right_sizing_scales_the_request_to_the_daily_peak() {
        let mut r = RightSizingRecommender::new(RightSizingConfig::default());
        // Four days at 10 % of a 2-core request, 30 % in the daily peak hour: the request
        // should shrink to well under 2 cores yet cover the peak's 0.6 cores.
        for minute in 0..4 * 24 * 60u64 {
            let t = (minute + 1) * 60_000;
            let util = if (minute / 60) % 24 == 12 { 30.0 } else { 10.0 };
            r.observe("orders", &cpu_window(t, util));
        }
        let config = BTreeMap::from([(CPU_REQUEST.to_string(), 2.0)]);
        let out = recommend(&mut r, "orders", 4 * 24 * HOUR, &config);
        assert_eq!(out.len(), 1, "{out:?}");
        let d = &out[0];
        assert_eq!(d.source, "ml:right_sizing");
        assert_eq!(d.category, RecommendationCategory::ResourceAllocation);
        assert_eq!(d.current_value, Some(serde_json::json!(2.0)));
        let new = d.recommended_value.as_f64().expect("number");
        assert!((0.6..1.5).contains(&new), "request {new}");
        // No declared request: nothing to recommend.
        assert!(recommend(&mut r, "orders", 4 * 24 * HOUR, &BTreeMap::new()).is_empty());
    }

    #[test]
    fn capacity_recommends_growth_before_the_crossing() {
        let mut r = CapacityRecommender::new(CapacityScalingConfig::default());
        let now = 100 * HOUR;
        // Disk at 80 % growing 1 %/h: crosses 100 % in 20 h.
        let steps: Vec<ForecastStep> = (1..=48)
            .map(|h| {
                let y = 80.0 + h as f64;
                ForecastStep {
                    yhat: y,
                    lo80: y - 1.0,
                    hi80: y + 1.0,
                    lo95: y - 2.0,
                    hi95: y + 2.0,
                }
            })
            .collect();
        let f = ForecastRecord {
            series: SeriesId(2),
            key: Arc::new(SeriesKey::new(
                "disk_used_percent",
                [("service".to_string(), "orders-db".to_string())],
            )),
            window: "1h".into(),
            time: now,
            step_ms: HOUR,
            model: "arima".into(),
            spec: "test".into(),
            feature: "mean".into(),
            steps,
            capacity: Some(CapacityForecast {
                rule: "disk".into(),
                limit: 100.0,
                direction: LimitDirection::Above,
                horizon_ms: 48 * HOUR,
                time_to_limit_ms: Some(20 * HOUR),
                crossing_time: Some(now + 20 * HOUR),
                probability: 0.9,
                linear_time_to_limit_ms: Some(22 * HOUR),
            }),
        };
        r.observe("orders-db", &OptimizeInput::Forecast(Box::new(f)));
        let out = recommend(&mut r, "orders-db", now, &BTreeMap::new());
        assert_eq!(out.len(), 1, "{out:?}");
        let d = &out[0];
        assert_eq!(d.category, RecommendationCategory::CapacityScaling);
        assert_eq!(
            d.target.get("metric").map(String::as_str),
            Some("disk_used_percent")
        );
        assert!(d.recommended_value.as_f64().expect("number") > 100.0);
        assert!(d.title.contains("orders-db"), "{}", d.title);
    }

    fn alert(
        fp: &str,
        event: AlertEvent,
        t: EventTime,
        score: f64,
        incident: bool,
    ) -> OptimizeInput {
        let mut a = AlertRecord::sample(
            BTreeMap::new(),
            fp.to_string(),
            event,
            "carts".to_string(),
            t,
        );
        a.score = score;
        a.incident_id = incident.then(|| "i1".to_string());
        OptimizeInput::Alert(Box::new(a))
    }

    #[test]
    fn detector_tuning_raises_the_threshold_of_quick_noise_only() {
        let mut r = DetectorTuningRecommender::new(DetectorTuningConfig::default(), 0.5);
        // Forty alerts that resolve within two minutes in no incident, scores 0.5–0.7.
        for i in 0..40u64 {
            let t = i * HOUR;
            let fp = format!("n{i}");
            let score = 0.5 + 0.005 * i as f64;
            r.observe("carts", &alert(&fp, AlertEvent::Opened, t, score, false));
            r.observe(
                "carts",
                &alert(&fp, AlertEvent::Resolved, t + 120_000, score, false),
            );
        }
        let out = recommend(&mut r, "carts", 40 * HOUR, &BTreeMap::new());
        assert_eq!(out.len(), 1, "{out:?}");
        let new = out[0].recommended_value.as_f64().expect("number");
        assert!(new > 0.5, "threshold {new}");
        assert_eq!(out[0].category, RecommendationCategory::AlertThresholds);
        // An entity whose alerts all join incidents keeps its threshold.
        let mut r = DetectorTuningRecommender::new(DetectorTuningConfig::default(), 0.5);
        for i in 0..40u64 {
            let fp = format!("i{i}");
            r.observe(
                "carts",
                &alert(&fp, AlertEvent::Opened, i * HOUR, 0.6, true),
            );
            r.observe(
                "carts",
                &alert(&fp, AlertEvent::Resolved, i * HOUR + 60_000, 0.6, true),
            );
        }
        assert!(recommend(&mut r, "carts", 40 * HOUR, &BTreeMap::new()).is_empty());
    }
}
