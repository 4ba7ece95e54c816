//! The isolation forest as a streaming detector: fitted on the reservoir of recent normal vectors
//! (see [`super::reservoir`]), refitted on schedule or drift, scoring every vector in between.
//!
//! The magnitude reported is `c(ψ) / E[h(x)]`, the expected path length of a random row over this
//! row's: 1 for an ordinary row (score 0.5), 2 when the row isolates twice as fast. It is the same
//! ordering as scikit-learn's score, on a scale that calibration's log compression handles well.
//!
//! A forest only cuts within the range of its training rows, so a row beyond that range lands in
//! the same leaf as the most extreme training rows and looks no more anomalous than they do — a
//! blind spot for a monitor, where "higher than ever seen" is the commonest anomaly. As in a
//! Random Cut Forest, where a cut is drawn over the bounding box *including* the new point, the
//! row is isolated at the root with probability `p`, the share of the extended box's range that
//! lies outside the training box (averaged over features, as an axis cut picks a feature
//! uniformly), and `E[h] ← (1 − p) · E[h] + p · 1`.

use serde::{Deserialize, Serialize};

use super::isolation_forest::{average_path_length, IsolationForest, IsolationForestConfig};
use super::reservoir::{RefitPolicy, Reservoir};
use crate::models::ModelError;

/// Settings of the streaming isolation forest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ForestDetectorConfig {
    /// The forest (default: 50 trees of ψ = 128 — half scikit-learn's, since a streaming model
    /// is refitted often and scored on every window; the ranking of rows barely changes).
    pub forest: IsolationForestConfig,
    /// When to fit and refit.
    pub refit: RefitPolicy,
}

impl Default for ForestDetectorConfig {
    fn default() -> Self {
        ForestDetectorConfig {
            forest: IsolationForestConfig {
                n_trees: 50,
                sample_size: 128,
                ..IsolationForestConfig::default()
            },
            refit: RefitPolicy::default(),
        }
    }
}

impl ForestDetectorConfig {
    /// Checks every parameter's range.
    pub fn validate(&self) -> Result<(), ModelError> {
        self.forest.validate()?;
        self.refit.validate()
    }
}

/// A streaming isolation forest.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StreamingForest {
    reservoir: Reservoir,
    model: Option<IsolationForest>,
    /// Per feature, the (min, max) of the rows the model was fitted on.
    bounds: Vec<(f32, f32)>,
}

impl StreamingForest {
    /// Scores `row` with the current model (`None` before the first fit or for a row of another
    /// width).
    pub fn score(&self, row: &[f32]) -> Option<f64> {
        let model = self.model.as_ref()?;
        if model.n_features() != row.len() {
            return None;
        }
        let s = model.score(row);
        // s = 2^(−E[h]/c) ⇒ E[h]/c = −log2(s); s = 1 (isolated at the root) is the maximum.
        let c = average_path_length(model.sample_size()).max(1.0);
        let p = self.outside_share(row);
        let depth_ratio = (1.0 - p) * -s.log2() + p / c;
        Some(if depth_ratio > 1e-9 {
            (1.0 / depth_ratio).min(1e9)
        } else {
            1e9
        })
    }

    /// The chance that a random axis cut over the box extended to `row` separates `row` from
    /// every training row: the mean over features of the extension's share of the range.
    fn outside_share(&self, row: &[f32]) -> f64 {
        if self.bounds.len() != row.len() || row.is_empty() {
            return 0.0;
        }
        let mut sum = 0.0;
        for (x, (lo, hi)) in row.iter().zip(&self.bounds) {
            let (x, lo, hi) = (f64::from(*x), f64::from(*lo), f64::from(*hi));
            let ext = (lo - x).max(x - hi).max(0.0);
            if ext > 0.0 {
                sum += ext / (hi - lo + ext);
            }
        }
        if sum.is_finite() {
            sum / row.len() as f64
        } else {
            1.0
        }
    }

    /// Learns from an observation: `row` joins the reservoir when `normal`, and the model is
    /// refitted when the policy says so. `magnitude` is what [`StreamingForest::score`] returned.
    pub fn learn(
        &mut self,
        cfg: &ForestDetectorConfig,
        row: &[f32],
        normal: bool,
        magnitude: Option<f64>,
    ) {
        let (model, bounds) = (&mut self.model, &mut self.bounds);
        let fitted = model.is_some();
        self.reservoir.learn(
            &cfg.refit,
            row,
            normal,
            fitted,
            magnitude,
            |rows, width, fits| {
                let forest = IsolationForestConfig {
                    seed: cfg.forest.seed ^ fits,
                    ..cfg.forest.clone()
                };
                // A fit can only fail on rows the reservoir refuses (non-finite) or a bad
                // config, which validation rejects; keep the old model if it does.
                if let Ok(new) = forest.fit(rows, width) {
                    *model = Some(new);
                    *bounds = vec![(f32::INFINITY, f32::NEG_INFINITY); width];
                    for r in rows.chunks_exact(width) {
                        for (b, x) in bounds.iter_mut().zip(r) {
                            *b = (b.0.min(*x), b.1.max(*x));
                        }
                    }
                }
            },
        );
    }

    /// Approximate heap bytes held (the model's node arrays are estimated from its size).
    pub fn heap_bytes(&self) -> usize {
        self.reservoir.heap_bytes()
            + self
                .model
                .as_ref()
                .map_or(0, |m| m.n_trees() * (2 * m.sample_size()) * 16)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fits_after_enough_normal_rows_and_flags_a_planted_outlier() {
        let cfg = ForestDetectorConfig::default();
        let mut d = StreamingForest::default();
        for i in 0..200 {
            let x = (i as f32 * 0.37) % 10.0;
            let row = [x, 2.0 * x + 1.0];
            let m = d.score(&row);
            d.learn(&cfg, &row, true, m);
        }
        // Off the line but inside each feature's range: a forest only isolates within the
        // range its cuts were drawn from (values beyond it land with the extremes).
        let normal = d.score(&[5.0, 11.0]).expect("fitted");
        let outlier = d.score(&[5.0, 3.0]).expect("fitted");
        assert!(
            outlier > normal * 1.1,
            "outlier {outlier} vs normal {normal}"
        );
        assert!(d.score(&[1.0]).is_none(), "wrong width");
        // Far beyond the training range: isolated at the root almost surely.
        let beyond = d.score(&[5.0, 500.0]).expect("fitted");
        assert!(beyond > 2.0 * normal, "beyond {beyond} vs normal {normal}");
    }
}
