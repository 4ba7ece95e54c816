//! The detectors of one series and how their scores combine into one verdict per window.
//!
//! This is the whole per-series detection logic with no dataflow around it: the detect operator
//! keeps one [`DetectorSet`] per series, and `harbinger score` runs the same code row by row, so
//! the benchmark scores measure exactly what the engine does.

use serde::{Deserialize, Serialize};

use super::robust_z::{RobustZ, RobustZConfig};
use super::window_stats::{Feature, FeatureValues};
use crate::rules::Direction;

/// What kind of detector, with its parameters. One variant per kind, so adding a kind shows every
/// place that must handle it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum DetectorKind {
    /// Robust z-score against a rolling median/MAD baseline.
    RobustZ(RobustZConfig),
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
}

/// A detector's running state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum DetectorState {
    RobustZ(RobustZ),
}

impl DetectorState {
    fn new(kind: &DetectorKind) -> Self {
        match kind {
            DetectorKind::RobustZ(cfg) => DetectorState::RobustZ(RobustZ::new(cfg.clone())),
        }
    }

    fn heap_bytes(&self) -> usize {
        match self {
            DetectorState::RobustZ(d) => d.heap_bytes(),
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
    /// Observed value.
    pub actual: f64,
    /// Expected value.
    pub expected: f64,
    /// Boundary value of the decision threshold on the side the value moved to.
    pub threshold: f64,
    /// Baseline fill in (0, 1].
    pub confidence: f64,
}

/// The combined verdict on one window.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// Fused score in [0, 1].
    pub score: f64,
    /// The finding that explains the score best (the highest-scoring one).
    pub lead: Finding,
    /// Every detector's finding, in plan order.
    pub findings: Vec<Finding>,
    /// Which way the lead value moved.
    pub direction: Direction,
}

/// The detectors of one series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DetectorSet {
    /// Per plan: the feature resolved for this series, and the detector's state.
    states: Vec<(Feature, DetectorState)>,
}

impl DetectorSet {
    /// Fresh detectors for `plans` on series `metric`.
    pub fn new(plans: &[DetectorPlan], metric: &str) -> Self {
        DetectorSet {
            states: plans
                .iter()
                .map(|p| (p.feature.resolve(metric), DetectorState::new(&p.kind)))
                .collect(),
        }
    }

    /// Scores (then learns from) one closed window of spec `window`; `None` while every
    /// detector of that window is warming up.
    pub fn observe(
        &mut self,
        plans: &[DetectorPlan],
        window: &str,
        values: &FeatureValues,
    ) -> Option<Verdict> {
        let mut findings = Vec::new();
        let mut weighted = 0.0;
        let mut weights = 0.0;
        for (plan, (feature, state)) in plans.iter().zip(self.states.iter_mut()) {
            if plan.window != window {
                continue;
            }
            let Some(value) = feature.of(values) else {
                continue;
            };
            let finding = match state {
                DetectorState::RobustZ(d) => d.observe(value).map(|s| {
                    let limit = d.config().threshold;
                    Finding {
                        detector: plan.name.clone(),
                        feature: format!("{}:{}", plan.window, feature.name()),
                        score: z_to_score(s.z, limit),
                        actual: value,
                        expected: s.median,
                        threshold: s.median + limit * s.scale * s.z.signum(),
                        confidence: s.fill,
                    }
                }),
            };
            if let Some(f) = finding {
                weighted += plan.weight * f.score;
                weights += plan.weight;
                findings.push(f);
            }
        }
        let lead = findings
            .iter()
            .max_by(|a, b| a.score.total_cmp(&b.score))?
            .clone();
        // Fusion: the weighted mean, but never below the strongest single detector's score
        // discounted by its weight share, so one confident detector is not averaged away.
        let mean = if weights > 0.0 {
            weighted / weights
        } else {
            0.0
        };
        let score = mean.max(lead.score * 0.9).clamp(0.0, 1.0);
        let direction = if lead.actual >= lead.expected {
            Direction::Up
        } else {
            Direction::Down
        };
        Some(Verdict {
            score,
            lead,
            findings,
            direction,
        })
    }

    /// Approximate heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.states.capacity() * std::mem::size_of::<(Feature, DetectorState)>()
            + self
                .states
                .iter()
                .map(|(_, s)| s.heap_bytes())
                .sum::<usize>()
    }
}

/// Maps a robust z-score to [0, 1): `1 − 2^−(|z|/limit)²`, so |z| at the threshold scores 0.5,
/// twice the threshold 0.94, and small deviations stay near 0.
pub fn z_to_score(z: f64, limit: f64) -> f64 {
    let r = z.abs() / limit;
    if !r.is_finite() {
        return 1.0;
    }
    1.0 - (-(r * r) * std::f64::consts::LN_2).exp()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(mean: f64) -> FeatureValues {
        FeatureValues {
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
        }
    }

    fn plans() -> Vec<DetectorPlan> {
        vec![DetectorPlan {
            name: "robust_z".into(),
            window: "1m".into(),
            feature: FeatureChoice::Auto,
            weight: 1.0,
            kind: DetectorKind::RobustZ(RobustZConfig::default()),
        }]
    }

    #[test]
    fn auto_feature_uses_counter_rate_for_counters() {
        assert_eq!(
            FeatureChoice::Auto.resolve("http_requests_total"),
            Feature::CounterRate
        );
        assert_eq!(FeatureChoice::Auto.resolve("latency_ms"), Feature::Mean);
        assert_eq!(
            FeatureChoice::Fixed(Feature::P99).resolve("x_total"),
            Feature::P99
        );
    }

    #[test]
    fn score_mapping_anchors() {
        assert!((z_to_score(4.5, 4.5) - 0.5).abs() < 1e-12);
        assert!((z_to_score(-9.0, 4.5) - 0.9375).abs() < 1e-12);
        assert_eq!(z_to_score(f64::INFINITY, 4.5), 1.0);
        assert!(z_to_score(0.0, 4.5).abs() < 1e-12);
    }

    #[test]
    fn spike_after_warmup_gives_verdict_with_evidence() {
        let plans = plans();
        let mut set = DetectorSet::new(&plans, "latency_ms");
        for i in 0..30 {
            set.observe(&plans, "1m", &values(10.0 + (i % 3) as f64));
        }
        // Other windows are ignored.
        assert!(set.observe(&plans, "5m", &values(1e6)).is_none());
        let v = set.observe(&plans, "1m", &values(40.0)).unwrap();
        assert!(v.score > 0.99);
        assert_eq!(v.direction, Direction::Up);
        assert_eq!(v.lead.feature, "1m:mean");
        assert_eq!(v.lead.expected, 11.0);
        assert!(v.lead.threshold > 11.0 && v.lead.threshold < 40.0);
    }
}
