//! Entity-level detection: the joint vector of all of an entity's series at one window end, so
//! the isolation forest and the one-class SVM see correlations no per-series detector can — CPU
//! high *while* traffic is low, latency up with no load to explain it.
//!
//! The vector has one slot per member series and configured feature, members in a stable
//! (sorted) order. A member missing from a window repeats its last value, so the vector stays
//! complete; a new member widens the vector, which restarts the models' training (their
//! reservoirs refuse rows of another width). Each model's novelty is calibrated and fused as in
//! [`super::detector_set`], then damped. Explanations name the members that deviate most from
//! their own recent mean (in σ), with their expected values.

use serde::{Deserialize, Serialize};

use super::calibration::TailCalibrator;
use super::damping::Damper;
use super::detector_set::FusionPolicy;
use super::forest_detector::{ForestDetectorConfig, StreamingForest};
use super::knn_detector::{KnnDetectorConfig, StreamingKnn};
use super::svm_detector::{StreamingSvm, SvmDetectorConfig};
use super::window_stats::{Feature, FeatureValues};
use crate::models::ModelError;

/// Settings of the entity detectors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EntityPlan {
    /// Window spec whose closed windows are joined (default `1m`).
    pub window: String,
    /// Features of each member series in the joint vector (default the mean).
    pub features: Vec<Feature>,
    /// Most members an entity's vector holds; further series are left out (default 64).
    pub max_members: usize,
    /// The isolation forest, if enabled (default on).
    pub isolation_forest: Option<ForestDetectorConfig>,
    /// The one-class SVM, if enabled (default on).
    pub one_class_svm: Option<SvmDetectorConfig>,
    /// The nearest-neighbour detector, if enabled (default on).
    pub knn: Option<KnnDetectorConfig>,
    /// Weights of the three (forest, SVM, nearest neighbour) in the fused entity score
    /// (default 1 each).
    pub weights: [f64; 3],
    /// Windows over which each model's novelty is averaged before calibration (default 3).
    /// An entity-level incident is an episode across several windows; averaging (as HTM's
    /// anomaly likelihood averages its raw scores) lets one-window glitches of a joint vector
    /// pass and ranks sustained departures first.
    pub smooth_windows: usize,
    /// For `harbinger score` on a wide table: share of the strongest per-column score a row's
    /// score keeps beside the entity score (`max(entity, share × columns)`; default 1).
    pub series_share: f64,
}

impl Default for EntityPlan {
    fn default() -> Self {
        EntityPlan {
            window: "1m".into(),
            features: vec![Feature::Mean],
            max_members: 64,
            isolation_forest: Some(ForestDetectorConfig::default()),
            one_class_svm: Some(SvmDetectorConfig::default()),
            knn: Some(KnnDetectorConfig::default()),
            weights: [1.0, 1.0, 1.0],
            smooth_windows: 3,
            series_share: 1.0,
        }
    }
}

impl EntityPlan {
    /// Checks every parameter's range.
    pub fn validate(&self) -> Result<(), ModelError> {
        if self.features.is_empty() {
            return Err(ModelError::InvalidParameter {
                name: "features",
                reason: "needs at least one feature".into(),
            });
        }
        let m = self.max_members;
        ModelError::require(
            (1..=4096).contains(&m),
            "max_members",
            "between 1 and 4096",
            m as f64,
        )?;
        if let Some(c) = &self.isolation_forest {
            c.validate()?;
        }
        if let Some(c) = &self.one_class_svm {
            c.validate()?;
        }
        if let Some(c) = &self.knn {
            c.validate()?;
        }
        let w = self.smooth_windows;
        ModelError::require(
            (1..=64).contains(&w),
            "smooth_windows",
            "between 1 and 64",
            w as f64,
        )?;
        let share = self.series_share;
        ModelError::require(
            (0.0..=1.0).contains(&share),
            "series_share",
            "in [0, 1]",
            share,
        )?;
        if self.weights.iter().any(|w| !(w.is_finite() && *w >= 0.0)) {
            return Err(ModelError::InvalidParameter {
                name: "weights",
                reason: "every weight must be a number ≥ 0".into(),
            });
        }
        Ok(())
    }
}

/// A member that stands out in an entity-level anomaly.
#[derive(Debug, Clone, PartialEq)]
pub struct MemberDeviation {
    /// The member's name (series key or column name) and feature, as `<member>:<feature>`.
    pub feature: String,
    /// Its value.
    pub actual: f64,
    /// Its recent mean.
    pub expected: f64,
    /// Deviation from the recent mean in recent σ.
    pub z: f64,
}

/// The verdict on one entity's window.
#[derive(Debug, Clone, PartialEq)]
pub struct EntityVerdict {
    /// Fused, damped score in [0, 1].
    pub score: f64,
    /// Fused score before damping.
    pub fused: f64,
    /// Calibrated score per model (`isolation_forest`, `one_class_svm`, `knn`).
    pub detectors: Vec<(String, f64)>,
    /// Members that deviate most, strongest first (at most three).
    pub members: Vec<MemberDeviation>,
    /// Whether an anomaly at the alert level was reported recently (see the damper).
    pub episode: bool,
}

/// Memory of the per-slot mean and variance used for explanations (about 100 windows).
const SLOT_ALPHA: f64 = 0.01;

/// Detection state of one entity.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EntityDetector {
    /// Member names, sorted; the vector's layout.
    members: Vec<String>,
    /// Last value of each slot (member × feature).
    last: Vec<f32>,
    /// Running mean and variance of each slot.
    stats: Vec<(f64, f64)>,
    forest: StreamingForest,
    svm: StreamingSvm,
    knn: StreamingKnn,
    calibrators: [TailCalibrator; 3],
    /// Recent raw novelty of each model, for the average over `smooth_windows`.
    recent: [Vec<f64>; 3],
    damper: Damper,
    seen: u64,
}

impl EntityDetector {
    /// Number of member series.
    pub fn members(&self) -> usize {
        self.members.len()
    }

    /// Scores the joint vector of the window ending at event time `time` (members may come in
    /// any order), then learns it. `None` while the models warm up.
    pub fn observe(
        &mut self,
        plan: &EntityPlan,
        policy: &FusionPolicy,
        window: &[(&str, &FeatureValues)],
        time: u64,
    ) -> Option<EntityVerdict> {
        let k = plan.features.len();
        // Admit new members (sorted layout, bounded).
        let mut widened = false;
        for (name, _) in window {
            if let Err(at) = self.members.binary_search_by(|m| m.as_str().cmp(name)) {
                if self.members.len() < plan.max_members {
                    self.members.insert(at, (*name).to_string());
                    self.last
                        .splice(at * k..at * k, std::iter::repeat_n(f32::NAN, k));
                    self.stats
                        .splice(at * k..at * k, std::iter::repeat_n((0.0, 0.0), k));
                    widened = true;
                }
            }
        }
        if widened {
            // Models and explanations of the old layout do not apply to the new one.
            self.seen = 0;
        }
        for (name, values) in window {
            if let Ok(m) = self.members.binary_search_by(|x| x.as_str().cmp(name)) {
                for (j, f) in plan.features.iter().enumerate() {
                    if let Some(v) = f.of(values).filter(|v| v.is_finite()) {
                        self.last[m * k + j] = v as f32;
                    }
                }
            }
        }
        if self.last.iter().any(|v| !v.is_finite()) {
            return None; // some member has not reported yet
        }
        let row = self.last.clone();
        let mut detectors = Vec::new();
        let mut magnitudes = [None, None, None];
        let mut weighted = 0.0;
        let mut weights = 0.0;
        let mut lead: f64 = 0.0;
        if plan.isolation_forest.is_some() {
            magnitudes[0] = self.forest.score(&row);
        }
        if plan.one_class_svm.is_some() {
            magnitudes[1] = self.svm.score(&row);
        }
        if let Some(cfg) = &plan.knn {
            magnitudes[2] = self.knn.score(cfg, &row);
        }
        let raw = magnitudes;
        for (i, m) in magnitudes.iter_mut().enumerate() {
            if let Some(v) = m {
                let recent = &mut self.recent[i];
                if recent.len() == plan.smooth_windows {
                    recent.remove(0);
                }
                recent.push(*v);
                *v = recent.iter().sum::<f64>() / recent.len() as f64;
            }
        }
        for (i, name) in ["isolation_forest", "one_class_svm", "knn"]
            .iter()
            .enumerate()
        {
            let Some(m) = magnitudes[i] else { continue };
            if let Some(c) = self.calibrators[i].judge(&policy.calibration, m) {
                detectors.push((name.to_string(), c.score));
                weighted += plan.weights[i] * c.score;
                weights += plan.weights[i];
                if plan.weights[i] > 0.0 {
                    lead = lead.max(c.score);
                }
            }
        }
        let fused = (weights > 0.0).then(|| {
            (weighted / weights)
                .max(policy.lead_share * lead)
                .clamp(0.0, 1.0)
        });
        let members = self.explain(plan, &row);
        // Learn.
        let normal = fused.is_none_or(|f| f < policy.normal_below);
        for (i, m) in magnitudes.iter().enumerate() {
            if let Some(m) = m {
                self.calibrators[i].learn(&policy.calibration, *m, !normal, time);
            }
        }
        if let Some(cfg) = &plan.isolation_forest {
            self.forest.learn(cfg, &row, normal, raw[0]);
        }
        if let Some(cfg) = &plan.one_class_svm {
            self.svm.learn(cfg, &row, normal, raw[1]);
        }
        if let Some(cfg) = &plan.knn {
            self.knn.learn(cfg, &row, normal, raw[2]);
        }
        self.seen += 1;
        let alpha = SLOT_ALPHA.max(1.0 / self.seen as f64);
        for (v, (mean, var)) in row.iter().zip(self.stats.iter_mut()) {
            let d = f64::from(*v) - *mean;
            *mean += alpha * d;
            *var = (1.0 - alpha) * (*var + alpha * d * d);
        }
        let fused = fused?;
        let score = self.damper.damp(&policy.damping, fused);
        Some(EntityVerdict {
            score,
            fused,
            detectors,
            members,
            episode: self.damper.in_episode(policy.alert_level),
        })
    }

    /// The (at most three) slots furthest from their recent mean.
    fn explain(&self, plan: &EntityPlan, row: &[f32]) -> Vec<MemberDeviation> {
        let k = plan.features.len();
        let mut all: Vec<MemberDeviation> = row
            .iter()
            .zip(&self.stats)
            .enumerate()
            .map(|(slot, (v, (mean, var)))| {
                let sd = var.sqrt().max(1e-9 * mean.abs().max(1.0));
                MemberDeviation {
                    feature: format!(
                        "{}:{}",
                        self.members[slot / k],
                        plan.features[slot % k].name()
                    ),
                    actual: f64::from(*v),
                    expected: *mean,
                    z: (f64::from(*v) - mean) / sd,
                }
            })
            .collect();
        all.sort_by(|a, b| b.z.abs().total_cmp(&a.z.abs()));
        all.truncate(3);
        all
    }

    /// Approximate heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.members
            .iter()
            .map(|m| m.capacity() + 24)
            .sum::<usize>()
            + self.last.capacity() * 4
            + self.stats.capacity() * 16
            + self.forest.heap_bytes()
            + self.svm.heap_bytes()
            + self.knn.heap_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fv(v: f64) -> FeatureValues {
        FeatureValues::single(v)
    }

    #[test]
    fn broken_correlation_scores_high_and_names_the_member() {
        let plan = EntityPlan::default();
        let policy = FusionPolicy::default();
        let mut e = EntityDetector::default();
        let mut worst: f64 = 0.0;
        for i in 0..600 {
            // cpu follows load: a correlated pair; each alone varies widely.
            let load = 100.0 + 50.0 * ((i as f64) * 0.05).sin();
            let cpu = 0.4 * load + ((i * 7) % 3) as f64 * 0.3;
            let v = e.observe(
                &plan,
                &policy,
                &[("load", &fv(load)), ("cpu", &fv(cpu))],
                i as u64 * 60_000,
            );
            if i >= 400 {
                worst = worst.max(v.expect("warm").fused);
            }
        }
        // Load at its maximum, cpu at its minimum: each value is ordinary alone.
        let v = e
            .observe(
                &plan,
                &policy,
                &[("cpu", &fv(20.0)), ("load", &fv(150.0))],
                0,
            )
            .expect("warm");
        // It ranks above every ordinary window of the last 200.
        assert!(v.fused > worst, "{v:?} vs worst ordinary {worst}");
        assert_eq!(v.members.len(), 2, "{v:?}");
    }

    #[test]
    fn missing_members_wait_and_new_members_widen_the_vector() {
        let plan = EntityPlan::default();
        let policy = FusionPolicy::default();
        let mut e = EntityDetector::default();
        assert!(e.observe(&plan, &policy, &[("a", &fv(1.0))], 0).is_none());
        e.observe(&plan, &policy, &[("b", &fv(1.0))], 0);
        assert_eq!(e.members(), 2);
        assert_eq!(e.last, vec![1.0, 1.0]);
    }
}
