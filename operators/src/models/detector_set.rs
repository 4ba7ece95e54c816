//! The detectors of one series and how their scores combine into one verdict per window.
//!
//! This is the whole per-series detection logic with no dataflow around it: the detect operator
//! keeps one [`DetectorSet`] per series and feeds it closed windows, and `harbinger score` keeps
//! one per CSV column and feeds it rows (a row is a window of one point). Benchmark scores
//! therefore measure exactly what the engine does.
//!
//! Per window, for the detectors that watch that window:
//! 1. each detector compares the watched feature's value with its own baseline and reports a
//!    [`Deviation`] (scalar detectors) or a novelty magnitude (vector detectors, on the feature
//!    vector of [`Track::vector`]); the costly vector detectors only on windows the cheap ones
//!    find suspicious and on a calibration sample ([`super::screen`]);
//! 2. each magnitude is calibrated against that detector's own recent magnitudes
//!    ([`TailCalibrator`]): a score in [0, 1] on a log scale of tail probability;
//! 3. the calibrated scores are fused: the weighted mean, but never below `lead_share` times the
//!    strongest single score, so one confident detector is not averaged away by quiet ones;
//! 4. when the fused score reaches `trigger`, the costly evidence is gathered: BOCPD change points
//!    (which also vote, with their own weight) and the anomaly's shape;
//! 5. repeated detections of one ongoing anomaly are damped ([`Damper`]);
//! 6. everything learns the value — the vector models only from windows that were not anomalous.

use serde::{Deserialize, Serialize};

use super::calibration::{CalibrationConfig, TailCalibrator};
use super::changepoint::{recent_change, ChangePoint, ChangepointConfig};
use super::contextual::{Contextual, ContextualConfig};
use super::cusum::{Cusum, CusumConfig};
use super::damping::{Damper, DampingConfig};
use super::deviation::Deviation;
use super::ewma::{Ewma, EwmaConfig};
use super::forecast_residual::{ForecastResidual, ForecastResidualConfig};
use super::forest_detector::{ForestDetectorConfig, StreamingForest};
use super::iqr::{IqrConfig, IqrFences};
use super::knn_detector::{KnnDetectorConfig, StreamingKnn};
use super::robust_z::{RobustZ, RobustZConfig};
use super::screen::ScreenPolicy;
use super::seasonal::{Seasonal, SeasonalConfig};
use super::shape::{classify, Shape};
use super::svm_detector::{StreamingSvm, SvmDetectorConfig};
use super::track::{Track, VectorSpec};
use super::trend::{Trend, TrendConfig};
use super::window_stats::{Feature, FeatureValues};
use crate::models::ModelError;
use crate::rules::{Direction, MetricPattern};
use crate::series::EventTime;

/// What kind of detector, with its parameters. One variant per kind, so adding a kind shows every
/// place that must handle it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum DetectorKind {
    /// Robust z-score against a rolling median/MAD baseline.
    RobustZ(RobustZConfig),
    /// Tukey's IQR fences on a rolling window.
    Iqr(IqrConfig),
    /// EWMA control chart.
    Ewma(EwmaConfig),
    /// Two-sided CUSUM for small persistent shifts.
    Cusum(CusumConfig),
    /// Same-phase baseline where a season is detected.
    Seasonal(SeasonalConfig),
    /// BOCPD change points over recent values (evaluated on suspicious windows only).
    Changepoint(ChangepointConfig),
    /// Streaming isolation forest on the feature vector.
    IsolationForest(ForestDetectorConfig),
    /// Streaming one-class SVM on the feature vector.
    OneClassSvm(SvmDetectorConfig),
    /// Distance to the nearest recent normal feature vectors.
    Knn(KnnDetectorConfig),
    /// Distance from a damped-trend one-step forecast, in forecast σ.
    ForecastResidual(ForecastResidualConfig),
    /// Share of never-seen (earlier level, current level) facts: contextual novelty.
    Contextual(ContextualConfig),
    /// The recent slope against the series' usual slopes: leaks and filling disks.
    Trend(TrendConfig),
}

impl DetectorKind {
    /// The kind's name in config, rules and output.
    pub fn name(&self) -> &'static str {
        match self {
            DetectorKind::RobustZ(_) => "robust_z",
            DetectorKind::Iqr(_) => "iqr",
            DetectorKind::Ewma(_) => "ewma",
            DetectorKind::Cusum(_) => "cusum",
            DetectorKind::Seasonal(_) => "seasonal",
            DetectorKind::Changepoint(_) => "changepoint",
            DetectorKind::IsolationForest(_) => "isolation_forest",
            DetectorKind::OneClassSvm(_) => "one_class_svm",
            DetectorKind::Knn(_) => "knn",
            DetectorKind::ForecastResidual(_) => "forecast_residual",
            DetectorKind::Contextual(_) => "contextual",
            DetectorKind::Trend(_) => "trend",
        }
    }

    /// Checks the parameters.
    pub fn validate(&self) -> Result<(), ModelError> {
        match self {
            DetectorKind::RobustZ(c) => c.validate(),
            DetectorKind::Iqr(c) => c.validate(),
            DetectorKind::Ewma(c) => c.validate(),
            DetectorKind::Cusum(c) => c.validate(),
            DetectorKind::Seasonal(c) => c.validate(),
            DetectorKind::Changepoint(c) => c.validate(),
            DetectorKind::IsolationForest(c) => c.validate(),
            DetectorKind::OneClassSvm(c) => c.validate(),
            DetectorKind::Knn(c) => c.validate(),
            DetectorKind::ForecastResidual(c) => c.validate(),
            DetectorKind::Contextual(c) => c.validate(),
            DetectorKind::Trend(c) => c.validate(),
        }
    }

    /// Whether the detector reads the feature vector rather than the value.
    pub fn is_vector(&self) -> bool {
        matches!(
            self,
            DetectorKind::IsolationForest(_) | DetectorKind::OneClassSvm(_) | DetectorKind::Knn(_)
        )
    }

    /// The score of `magnitude` for the kinds whose magnitude fusion takes on a fixed scale,
    /// without tail calibration; `None` for the others.
    /// * The contextual detector's share of new facts is already a score in [0, 1]:
    ///   calibrating it against its own mostly-zero history would call every partly novel
    ///   value extreme, and its fixed scale is what makes one threshold fit many series (NAB
    ///   picks one threshold for all files).
    /// * The trend detector's z is already relative to the series' own usual slopes; a tail
    ///   calibration would learn other faults' slopes and hide leaks (see [`super::trend`]).
    pub fn fixed_score(&self, magnitude: f64) -> Option<f64> {
        match self {
            DetectorKind::Contextual(_) => Some(magnitude.clamp(0.0, 1.0)),
            DetectorKind::Trend(cfg) => Some(z_to_score(magnitude, cfg.limit)),
            _ => None,
        }
    }

    /// Whether the detector watches for one kind of anomaly only and abstains from fusion while
    /// it sees none (its score below the trigger). The trend detector scores steps and spikes
    /// 0 by design; counted as a vote for "normal", it would cut the fused score of every spike
    /// on the series it watches to `lead_share` of the robust detector's (a lone detector then
    /// needs 0.67 to reach the lowest band; on the simulator, 7–8 leaks per run went unfound).
    fn is_specialist(&self) -> bool {
        matches!(self, DetectorKind::Trend(_))
    }

    /// The magnitude at which [`Self::fixed_score`] reaches `level`, for the kinds on a fixed
    /// z scale (explanations turn it into a boundary value).
    fn fixed_boundary(&self, level: f64) -> Option<f64> {
        match self {
            DetectorKind::Trend(cfg) => Some(score_to_z(level, cfg.limit)),
            _ => None,
        }
    }

    /// Values of history the shared track must hold for this detector.
    fn history_needed(&self, vector: &VectorSpec) -> usize {
        match self {
            DetectorKind::Changepoint(c) => c.span,
            DetectorKind::IsolationForest(_)
            | DetectorKind::OneClassSvm(_)
            | DetectorKind::Knn(_) => vector.history_needed(),
            _ => 0,
        }
    }
}

/// Which feature a detector watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeatureChoice {
    /// The counter rate for counters (Prometheus naming: `*_total`, `*_count`, `*_sum`,
    /// `*_bucket`), whose raw values only grow; the mean for everything else.
    Auto,
    /// Always this feature.
    Fixed(Feature),
}

impl FeatureChoice {
    /// The feature to watch on series `metric`.
    pub fn resolve(self, metric: &str) -> Feature {
        match self {
            FeatureChoice::Fixed(f) => f,
            FeatureChoice::Auto if is_counter(metric) => Feature::CounterRate,
            FeatureChoice::Auto => Feature::Mean,
        }
    }
}

/// Whether a metric name follows the Prometheus naming of cumulative counters.
pub fn is_counter(metric: &str) -> bool {
    ["_total", "_count", "_sum", "_bucket"]
        .iter()
        .any(|s| metric.ends_with(s))
}

/// One configured detector: which window and feature it watches and how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DetectorPlan {
    /// Name in output (`detectors` field), unique among the plans.
    pub name: String,
    /// Window spec name it watches.
    pub window: String,
    /// Feature of that window.
    pub feature: FeatureChoice,
    /// Weight in the fused score (relative to the other detectors of the same window).
    pub weight: f64,
    /// The detector itself.
    pub kind: DetectorKind,
    /// Metric names it watches (`None`: every series). The trend detector, for one, is meant
    /// for resource gauges, whose slopes are steady outside leaks.
    #[serde(default)]
    pub metrics: Option<MetricPattern>,
}

/// How calibrated scores become one score per window (from `rules/fusion.toml`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FusionPolicy {
    /// Calibration of every detector's raw magnitudes.
    pub calibration: CalibrationConfig,
    /// Damping of repeated detections.
    pub damping: DampingConfig,
    /// The fused score is at least this share of the strongest detector's (default 0.75). Below
    /// 1 it is an agreement requirement: a detector alone reaches the lowest band only when its
    /// own score is `1/lead_share` times that band, while detectors that agree reach it through
    /// the mean. 0.75 gave fewer false alerts than the robust detector alone in each of four
    /// simulator runs, finding as many incidents in total (docs/design.md, "Detection").
    pub lead_share: f64,
    /// Fused score at which change points and the anomaly's shape are examined (default 0.5,
    /// the lowest alert band: every alert carries them, and BOCPD's quadratic cost is paid on
    /// a tail probability of about 10⁻⁵ of windows per detector).
    pub trigger: f64,
    /// Windows fused below this are normal and may train the vector models (default 0.5).
    pub normal_below: f64,
    /// The feature vector of the vector detectors.
    pub vector: VectorSpec,
    /// Score of the lowest alert band: explanations report the value at which each detector
    /// would reach it (default 0.5, the shipped severity rules' `low`).
    pub alert_level: f64,
    /// When the costly (vector) detectors are consulted.
    pub screen: ScreenPolicy,
}

impl Default for FusionPolicy {
    fn default() -> Self {
        FusionPolicy {
            calibration: CalibrationConfig::default(),
            damping: DampingConfig::default(),
            lead_share: 0.75,
            trigger: 0.5,
            normal_below: 0.5,
            vector: VectorSpec::default(),
            alert_level: 0.5,
            screen: ScreenPolicy::default(),
        }
    }
}

impl FusionPolicy {
    /// Checks every parameter's range.
    pub fn validate(&self) -> Result<(), ModelError> {
        self.calibration.validate()?;
        self.damping.validate()?;
        self.vector.validate()?;
        self.screen.validate()?;
        for (name, v) in [
            ("lead_share", self.lead_share),
            ("trigger", self.trigger),
            ("normal_below", self.normal_below),
            ("alert_level", self.alert_level),
        ] {
            ModelError::require((0.0..=1.0).contains(&v), name, "in [0, 1]", v)?;
        }
        Ok(())
    }
}

/// Everything the per-series detection needs to know: the detectors and the fusion policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ensemble {
    /// The configured detectors, in config order.
    pub detectors: Vec<DetectorPlan>,
    /// How their scores combine.
    pub fusion: FusionPolicy,
}

impl Ensemble {
    /// The detectors of `window`, with their indices.
    fn of_window<'a>(
        &'a self,
        window: &'a str,
    ) -> impl Iterator<Item = (usize, &'a DetectorPlan)> + 'a {
        self.detectors
            .iter()
            .enumerate()
            .filter(move |(_, p)| p.window == window)
    }
}

/// A detector's running state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum DetectorState {
    RobustZ(RobustZ),
    Iqr(IqrFences),
    Ewma(Ewma),
    Cusum(Cusum),
    Seasonal(Seasonal),
    Changepoint,
    IsolationForest(StreamingForest),
    OneClassSvm(StreamingSvm),
    Knn(StreamingKnn),
    ForecastResidual(ForecastResidual),
    Contextual(Contextual),
    Trend(Trend),
    /// The plan does not watch this series (its `metrics` pattern does not match).
    Off,
}

impl DetectorState {
    /// The one place a detector kind becomes running state, for watching `feature`.
    fn new(kind: &DetectorKind, feature: Feature) -> Self {
        match kind {
            DetectorKind::RobustZ(cfg) if feature == Feature::CounterRate => {
                DetectorState::RobustZ(RobustZ::for_rate(cfg.clone()))
            }
            DetectorKind::RobustZ(cfg) => DetectorState::RobustZ(RobustZ::new(cfg.clone())),
            DetectorKind::Iqr(cfg) => DetectorState::Iqr(IqrFences::new(cfg)),
            DetectorKind::Ewma(_) => DetectorState::Ewma(Ewma::default()),
            DetectorKind::Cusum(_) => DetectorState::Cusum(Cusum::default()),
            DetectorKind::Seasonal(cfg) => DetectorState::Seasonal(Seasonal::new(cfg)),
            DetectorKind::Changepoint(_) => DetectorState::Changepoint,
            DetectorKind::IsolationForest(_) => {
                DetectorState::IsolationForest(StreamingForest::default())
            }
            DetectorKind::OneClassSvm(_) => DetectorState::OneClassSvm(StreamingSvm::default()),
            DetectorKind::Knn(_) => DetectorState::Knn(StreamingKnn::default()),
            DetectorKind::ForecastResidual(_) => {
                DetectorState::ForecastResidual(ForecastResidual::default())
            }
            DetectorKind::Contextual(_) => DetectorState::Contextual(Contextual::default()),
            DetectorKind::Trend(cfg) => DetectorState::Trend(Trend::new(cfg)),
        }
    }

    fn heap_bytes(&self) -> usize {
        match self {
            DetectorState::RobustZ(d) => d.heap_bytes(),
            DetectorState::Iqr(d) => d.heap_bytes(),
            DetectorState::Seasonal(d) => d.heap_bytes(),
            DetectorState::IsolationForest(d) => d.heap_bytes(),
            DetectorState::OneClassSvm(d) => d.heap_bytes(),
            DetectorState::Knn(d) => d.heap_bytes(),
            DetectorState::Contextual(d) => d.heap_bytes(),
            DetectorState::Trend(d) => d.heap_bytes(),
            DetectorState::Ewma(_)
            | DetectorState::Cusum(_)
            | DetectorState::Changepoint
            | DetectorState::ForecastResidual(_)
            | DetectorState::Off => 0,
        }
    }
}

/// One detector's finding on one window.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// Detector name.
    pub detector: String,
    /// `<window>:<feature>` it watched.
    pub feature: String,
    /// Calibrated score in [0, 1].
    pub score: f64,
    /// The raw magnitude before calibration.
    pub magnitude: f64,
    /// Observed value.
    pub actual: f64,
    /// Expected value.
    pub expected: f64,
    /// The value at which this detector alone would reach the lowest alert band, on the side the
    /// value moved to (NaN for the vector detectors, which have no one-dimensional boundary).
    pub threshold: f64,
    /// Confidence in (0, 1]: how much history the detector's calibration rests on.
    pub confidence: f64,
}

/// The combined verdict on one window.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// Fused and damped score in [0, 1]: what alerting and `harbinger score` use.
    pub score: f64,
    /// Fused score before damping.
    pub fused: f64,
    /// The finding that explains the score best (the highest-scoring scalar one, else the
    /// highest-scoring one); assembled when the fused score reaches `min(trigger, alert_level)`.
    pub lead: Option<Finding>,
    /// Every detector's finding, in plan order (assembled as `lead` is; empty otherwise).
    pub findings: Vec<Finding>,
    /// Which way the lead value moved.
    pub direction: Direction,
    /// Shape of the anomaly, when the fused score reached the trigger.
    pub shape: Option<Shape>,
    /// A recent change point, when one was found.
    pub change: Option<ChangePoint>,
    /// Whether an anomaly at the alert level was reported recently (the damper's memory): an
    /// ongoing episode, which a damped score continues rather than ends.
    pub episode: bool,
}

/// One detector of a series: its state, calibration and the track it reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Slot {
    track: usize,
    state: DetectorState,
    calibrator: TailCalibrator,
}

/// The recent values of one (window, feature) of a series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct TrackSlot {
    window: String,
    feature: Feature,
    track: Track,
}

/// One detector's calibrated score on the current window (before findings are assembled).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Scored {
    plan: usize,
    score: f64,
    value: f64,
    dev: Deviation,
}

/// A detector's raw magnitude on the current window, for its calibrator and model to learn.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Magnitude {
    plan: usize,
    value: f64,
    /// Whether the window is the detector's calibration sample: always for the cheap
    /// detectors; for a costly one a window the screen let in outside its sample teaches its
    /// calibration only if it is anomalous (see `screen`).
    sample: bool,
}

/// Per-window working memory, kept between windows so the hot path does not allocate.
#[derive(Debug, Clone, Default, PartialEq)]
struct Scratch {
    seen: Vec<Option<f64>>,
    built: Vec<bool>,
    vectors: Vec<Vec<f32>>,
    magnitudes: Vec<Magnitude>,
    scored: Vec<Scored>,
}

impl Scratch {
    fn reset(&mut self, tracks: usize) {
        self.seen.clear();
        self.seen.resize(tracks, None);
        self.built.clear();
        self.built.resize(tracks, false);
        self.vectors.resize_with(tracks, Vec::new);
        for v in &mut self.vectors {
            v.clear();
        }
        self.magnitudes.clear();
        self.scored.clear();
    }
}

/// Values of history kept for the anomaly-shape tests (see `shape`).
const SHAPE_HISTORY: usize = 32;

/// The detectors of one series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DetectorSet {
    tracks: Vec<TrackSlot>,
    /// One per plan, in plan order.
    slots: Vec<Slot>,
    /// One damper per window name.
    dampers: Vec<(String, Damper)>,
    /// Varies which windows are the costly detectors' calibration samples between series (a
    /// hash of the metric name; see `screen`).
    #[serde(default)]
    sample_salt: u64,
    #[serde(skip)]
    scratch: Scratch,
}

impl DetectorSet {
    /// Fresh detectors for the ensemble's plans on series `metric`.
    pub fn new(ensemble: &Ensemble, metric: &str) -> Self {
        let mut tracks: Vec<TrackSlot> = Vec::new();
        let mut slots = Vec::new();
        let mut dampers: Vec<(String, Damper)> = Vec::new();
        for plan in &ensemble.detectors {
            let feature = plan.feature.resolve(metric);
            let need = plan
                .kind
                .history_needed(&ensemble.fusion.vector)
                .max(SHAPE_HISTORY);
            let track = match tracks
                .iter()
                .position(|t| t.window == plan.window && t.feature == feature)
            {
                Some(i) => {
                    let t = &mut tracks[i].track;
                    if t.capacity() < need {
                        *t = Track::new(need);
                    }
                    i
                }
                None => {
                    tracks.push(TrackSlot {
                        window: plan.window.clone(),
                        feature,
                        track: Track::new(need),
                    });
                    tracks.len() - 1
                }
            };
            let watches = plan.metrics.as_ref().is_none_or(|m| m.matches(metric));
            slots.push(Slot {
                track,
                state: if watches {
                    DetectorState::new(&plan.kind, feature)
                } else {
                    DetectorState::Off
                },
                calibrator: TailCalibrator::new(),
            });
            if !dampers.iter().any(|(w, _)| *w == plan.window) {
                dampers.push((plan.window.clone(), Damper::default()));
            }
        }
        DetectorSet {
            tracks,
            slots,
            dampers,
            sample_salt: crate::series::stable_hash(metric.as_bytes()),
            scratch: Scratch::default(),
        }
    }

    /// Scores (then learns from) one closed window of spec `window` ending at `time`; `None`
    /// while every detector of that window is warming up. `real_time`: whether `time` is a real
    /// timestamp (time-of-day features apply) rather than a row number.
    ///
    /// Findings (names, values, boundaries) are only assembled for windows whose fused score
    /// reaches `min(trigger, alert_level)`: every other window costs no allocation.
    pub fn observe(
        &mut self,
        ensemble: &Ensemble,
        window: &str,
        values: &FeatureValues,
        time: EventTime,
        real_time: bool,
    ) -> Option<Verdict> {
        let policy = &ensemble.fusion;
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.reset(self.tracks.len());
        for (i, t) in self.tracks.iter().enumerate() {
            if t.window == window {
                scratch.seen[i] = t.feature.of(values).filter(|v| v.is_finite());
            }
        }
        // 1–2. Each detector's deviation, calibrated: the cheap detectors first, then the
        // costly ones if the screen lets them in (see `screen`).
        for costly in [false, true] {
            let screened_in = costly
                && policy
                    .screen
                    .lets_in(fuse_voting(ensemble, &scratch.scored));
            for (i, plan) in ensemble.of_window(window) {
                if plan.kind.is_vector() != costly {
                    continue;
                }
                self.score_plan(ensemble, i, time, real_time, screened_in, &mut scratch);
            }
        }
        // Plan order, as if scored in one pass (fusion sums in this order; findings keep it).
        scratch.scored.sort_by_key(|x| x.plan);

        // 3. Fusion.
        let mut fused = fuse(ensemble, scratch.scored.iter().map(|x| (x.plan, x.score)));
        let explain_from = policy.trigger.min(policy.alert_level);
        let mut findings: Vec<(usize, Finding)> = Vec::new();
        let mut shape = None;
        let mut change = None;
        if fused.is_some_and(|f| f >= explain_from) {
            findings = self.findings(ensemble, &scratch);
            // 4. Costly evidence: change points (which vote) and the shape.
            if let Some(li) = lead_of(ensemble, &findings) {
                let (lead_actual, lead_expected) = (findings[li].1.actual, findings[li].1.expected);
                let lead_track = &self.tracks[self.slots[findings[li].0].track].track;
                let history: Vec<f64> = lead_track.recent(usize::MAX).collect();
                for (i, plan) in ensemble.of_window(window) {
                    let DetectorKind::Changepoint(cfg) = &plan.kind else {
                        continue;
                    };
                    let slot = &self.slots[i];
                    let Some(value) = scratch.seen[slot.track] else {
                        continue;
                    };
                    if matches!(slot.state, DetectorState::Off) {
                        continue;
                    }
                    let t = &self.tracks[slot.track];
                    let mut span: Vec<f64> = t.track.recent(cfg.span - 1).collect();
                    span.push(value);
                    if let Some(cp) = recent_change(cfg, &span) {
                        let shift = cp.shift_sigmas().abs();
                        findings.push((
                            i,
                            Finding {
                                detector: plan.name.clone(),
                                feature: format!("{}:{}", plan.window, t.feature.name()),
                                score: z_to_score(shift, cfg.threshold),
                                magnitude: shift,
                                actual: value,
                                expected: cp.before,
                                threshold: cp.before
                                    + cfg.threshold * cp.sigma * (cp.after - cp.before).signum(),
                                confidence: (t.track.len() as f64 / cfg.span as f64).min(1.0),
                            },
                        ));
                        change = Some(cp);
                    }
                }
                findings.sort_by_key(|(i, _)| *i);
                fused = fuse(ensemble, findings.iter().map(|(i, f)| (*i, f.score)));
                shape = Some(classify(
                    &history,
                    lead_actual,
                    lead_expected,
                    noise_scale(&history),
                    change.as_ref(),
                ));
            }
        }

        // 6. Learn: calibrators (anomalous windows only up to their tail threshold), vector
        // models from normal windows only, seasonal gaps for anomalous ones, then every track.
        let normal = fused.is_none_or(|f| f < policy.normal_below);
        for m in &scratch.magnitudes {
            if m.sample || !normal {
                self.slots[m.plan]
                    .calibrator
                    .learn(&policy.calibration, m.value, !normal, time);
            }
        }
        for (i, plan) in ensemble.of_window(window) {
            let slot = &mut self.slots[i];
            // Seasonal baselines keep anomalous windows as gaps (see `seasonal`).
            if let DetectorState::Seasonal(d) = &mut slot.state {
                if !normal && scratch.seen[slot.track].is_some() {
                    d.forget_last();
                }
                continue;
            }
            let row = &scratch.vectors[slot.track];
            if row.is_empty() {
                continue;
            }
            // The drift means follow the sample, like the calibration.
            let magnitude = scratch
                .magnitudes
                .iter()
                .find(|m| m.plan == i && m.sample)
                .map(|m| m.value);
            match (&mut slot.state, &plan.kind) {
                (DetectorState::IsolationForest(d), DetectorKind::IsolationForest(cfg)) => {
                    d.learn(cfg, row, normal, magnitude)
                }
                (DetectorState::OneClassSvm(d), DetectorKind::OneClassSvm(cfg)) => {
                    d.learn(cfg, row, normal, magnitude)
                }
                (DetectorState::Knn(d), DetectorKind::Knn(cfg)) => {
                    d.learn(cfg, row, normal, magnitude)
                }
                _ => {}
            }
        }
        for (i, t) in self.tracks.iter_mut().enumerate() {
            if let Some(v) = scratch.seen[i] {
                t.track.push(v, time);
            }
        }
        self.scratch = scratch;

        // 5. Damping.
        let fused = fused?;
        let damper = self
            .dampers
            .iter_mut()
            .find(|(w, _)| w == window)
            .map(|(_, d)| d);
        let (score, episode) = match damper {
            Some(d) => {
                let s = d.damp(&policy.damping, fused);
                (s, d.in_episode(policy.alert_level))
            }
            None => (fused, false),
        };
        let lead = lead_of(ensemble, &findings).map(|i| findings[i].1.clone());
        let direction = match &lead {
            Some(l) if l.actual < l.expected => Direction::Down,
            _ => Direction::Up,
        };
        Some(Verdict {
            score,
            fused,
            lead,
            findings: findings.into_iter().map(|(_, f)| f).collect(),
            direction,
            shape,
            change,
            episode,
        })
    }

    /// Scores plan `i` on the current window into `scratch` (its raw magnitude and its calibrated
    /// score). A costly plan builds its track's feature vector (its model learns from it later
    /// either way) but is scored only when `screened_in` or on a calibration sample.
    fn score_plan(
        &mut self,
        ensemble: &Ensemble,
        i: usize,
        time: EventTime,
        real_time: bool,
        screened_in: bool,
        scratch: &mut Scratch,
    ) {
        let policy = &ensemble.fusion;
        let plan = &ensemble.detectors[i];
        let slot = &mut self.slots[i];
        let Some(value) = scratch.seen[slot.track] else {
            return;
        };
        let track = &self.tracks[slot.track].track;
        // Scalar detectors update their baselines on every window, so they always score; a
        // costly one's calibration learns ordinary windows from its samples only.
        let mut sample = true;
        if plan.kind.is_vector() {
            if !scratch.built[slot.track] {
                scratch.built[slot.track] = true;
                track.vector(
                    &policy.vector,
                    value,
                    time,
                    real_time,
                    &mut scratch.vectors[slot.track],
                );
            }
            sample = policy.screen.samples(
                slot.calibrator.seen(),
                policy.calibration.memory,
                track.seen(),
                self.sample_salt,
            );
            if !(sample || screened_in) {
                return;
            }
        }
        let row = &scratch.vectors[slot.track];
        let deviation = match (&mut slot.state, &plan.kind) {
            (DetectorState::RobustZ(d), DetectorKind::RobustZ(_)) => d
                .observe(value)
                .map(|s| Deviation::of(value, s.median, s.scale)),
            (DetectorState::Iqr(d), DetectorKind::Iqr(cfg)) => d.observe(cfg, value),
            (DetectorState::Ewma(d), DetectorKind::Ewma(cfg)) => d.observe(cfg, value),
            (DetectorState::Cusum(d), DetectorKind::Cusum(cfg)) => d.observe(cfg, value),
            (DetectorState::Seasonal(d), DetectorKind::Seasonal(cfg)) => d.observe(cfg, value),
            (DetectorState::ForecastResidual(d), DetectorKind::ForecastResidual(cfg)) => {
                d.observe(cfg, value)
            }
            (DetectorState::Contextual(d), DetectorKind::Contextual(cfg)) => d.observe(cfg, value),
            (DetectorState::Trend(d), DetectorKind::Trend(cfg)) => d.observe(cfg, value),
            (DetectorState::IsolationForest(d), DetectorKind::IsolationForest(_)) => {
                d.score(row).map(Deviation::novelty)
            }
            (DetectorState::OneClassSvm(d), DetectorKind::OneClassSvm(_)) => {
                d.score(row).map(Deviation::novelty)
            }
            (DetectorState::Knn(d), DetectorKind::Knn(cfg)) => {
                d.score(cfg, row).map(Deviation::novelty)
            }
            // Change points are examined after fusion, on suspicious windows only.
            _ => None,
        };
        let Some(dev) = deviation else {
            return;
        };
        scratch.magnitudes.push(Magnitude {
            plan: i,
            value: dev.magnitude,
            sample,
        });
        let score = match plan.kind.fixed_score(dev.magnitude) {
            Some(score) => score,
            None => {
                let Some(cal) = slot.calibrator.judge(&policy.calibration, dev.magnitude) else {
                    return;
                };
                cal.score
            }
        };
        scratch.scored.push(Scored {
            plan: i,
            score,
            value,
            dev,
        });
    }

    /// Assembles the findings of the scored detectors (names, values, boundaries).
    fn findings(&self, ensemble: &Ensemble, scratch: &Scratch) -> Vec<(usize, Finding)> {
        let policy = &ensemble.fusion;
        scratch
            .scored
            .iter()
            .map(|x| {
                let plan = &ensemble.detectors[x.plan];
                let slot = &self.slots[x.plan];
                let track = &self.tracks[slot.track];
                let (expected, scale) = if x.dev.expected.is_finite() {
                    (x.dev.expected, x.dev.scale.abs())
                } else {
                    // A vector model has no single expectation: explain it with the track's
                    // recent median and noise scale, as a reader would compare.
                    let recent: Vec<f64> = track.track.recent(32).collect();
                    (median(&recent).unwrap_or(x.value), noise_scale(&recent))
                };
                let boundary = plan
                    .kind
                    .fixed_boundary(policy.alert_level)
                    .or_else(|| {
                        slot.calibrator
                            .boundary(&policy.calibration, policy.alert_level)
                    })
                    .unwrap_or(f64::NAN);
                let mut threshold = expected + (x.value - expected).signum() * boundary * scale;
                if !threshold.is_finite() || x.dev.expected.is_nan() {
                    // Vector models: the robust detector's default boundary (4.5 noise σ).
                    threshold = expected + (x.value - expected).signum() * 4.5 * scale;
                }
                (
                    x.plan,
                    Finding {
                        detector: plan.name.clone(),
                        feature: format!("{}:{}", plan.window, track.feature.name()),
                        score: x.score,
                        magnitude: x.dev.magnitude,
                        actual: x.value,
                        expected,
                        threshold: if threshold.is_finite() {
                            threshold
                        } else {
                            expected
                        },
                        confidence: slot.calibrator.fill(&policy.calibration),
                    },
                )
            })
            .collect()
    }

    /// Approximate heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.slots.capacity() * std::mem::size_of::<Slot>()
            + self
                .slots
                .iter()
                .map(|s| s.state.heap_bytes() + s.calibrator.heap_bytes())
                .sum::<usize>()
            + self
                .tracks
                .iter()
                .map(|t| std::mem::size_of::<TrackSlot>() + t.track.heap_bytes())
                .sum::<usize>()
    }
}

/// Noise σ of `history` from its successive differences (as the robust detector measures it),
/// which sees the noise but not the level or slow trends.
fn noise_scale(history: &[f64]) -> f64 {
    let mut diffs = super::robust_z::RollingRobust::new(history.len().max(1));
    for w in history.windows(2) {
        diffs.push(w[1] - w[0]);
    }
    diffs.mad().unwrap_or(0.0) * super::robust_z::MAD_TO_SIGMA / std::f64::consts::SQRT_2
}

/// Index (into `findings`) of the finding that explains the verdict: the highest-scoring scalar
/// finding (a value, an expectation and a boundary a person can read), else the highest overall.
fn lead_of(ensemble: &Ensemble, findings: &[(usize, Finding)]) -> Option<usize> {
    let best = |scalar_only: bool| {
        findings
            .iter()
            .enumerate()
            .filter(|(_, (i, _))| !scalar_only || !ensemble.detectors[*i].kind.is_vector())
            .max_by(|a, b| a.1 .1.score.total_cmp(&b.1 .1.score))
            .map(|(k, _)| k)
    };
    let top = best(false)?;
    match best(true) {
        // A scalar finding nearly as strong as the top one explains it better.
        Some(s) if findings[s].1.score >= 0.8 * findings[top].1.score => Some(s),
        _ => Some(top),
    }
}

/// The weighted mean of the calibrated scores `(plan, score)`, but at least `lead_share` of the
/// strongest one. Specialists below the trigger abstain.
fn fuse(ensemble: &Ensemble, scores: impl Iterator<Item = (usize, f64)>) -> Option<f64> {
    let mut weighted = 0.0;
    let mut weights = 0.0;
    let mut lead: f64 = 0.0;
    let mut any = false;
    for (i, score) in scores {
        any = true;
        if abstains(ensemble, i, score) {
            continue;
        }
        let w = ensemble.detectors[i].weight;
        weighted += w * score;
        weights += w;
        if w > 0.0 {
            lead = lead.max(score);
        }
    }
    if !any {
        return None;
    }
    let mean = if weights > 0.0 {
        weighted / weights
    } else {
        0.0
    };
    Some(mean.max(ensemble.fusion.lead_share * lead).clamp(0.0, 1.0))
}

/// Whether plan `i`, scoring `score`, abstains from fusion: a specialist below the trigger.
fn abstains(ensemble: &Ensemble, i: usize, score: f64) -> bool {
    ensemble.detectors[i].kind.is_specialist() && score < ensemble.fusion.trigger
}

/// [`fuse`] over the detectors that vote on this window (a positive weight, and not a quiet
/// specialist); `None` when none does.
fn fuse_voting(ensemble: &Ensemble, scored: &[Scored]) -> Option<f64> {
    let votes = |x: &&Scored| {
        ensemble.detectors[x.plan].weight > 0.0 && !abstains(ensemble, x.plan, x.score)
    };
    fuse(
        ensemble,
        scored.iter().filter(votes).map(|x| (x.plan, x.score)),
    )
}

/// Median of a small slice.
fn median(values: &[f64]) -> Option<f64> {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    (n > 0).then(|| {
        if n % 2 == 1 {
            v[n / 2]
        } else {
            0.5 * (v[n / 2 - 1] + v[n / 2])
        }
    })
}

/// Maps a z-like magnitude to [0, 1): `1 − 2^−(|z|/limit)²`, so |z| at the limit scores 0.5,
/// twice the limit 0.94, and small deviations stay near 0.
pub fn z_to_score(z: f64, limit: f64) -> f64 {
    let r = z.abs() / limit;
    if !r.is_finite() {
        return 1.0;
    }
    1.0 - (-(r * r) * std::f64::consts::LN_2).exp()
}

/// The |z| at which [`z_to_score`] reaches `score` (in [0, 1)).
fn score_to_z(score: f64, limit: f64) -> f64 {
    limit * (-(1.0 - score).log2()).max(0.0).sqrt()
}

#[cfg(test)]
mod tests;
