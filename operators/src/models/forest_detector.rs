//! The isolation forest as a streaming detector: fitted on the reservoir of recent normal vectors
//! (see [`super::reservoir`]), refitted on schedule or drift, scoring every vector in between.
//!
//! The magnitude reported is `c(ψ) / E[h(x)]`, the expected path length of a random row over this
//! row's: 1 for an ordinary row (score 0.5), 2 when the row isolates twice as fast. It is the same
//! ordering as scikit-learn's score, on a scale that calibration's log compression handles well.

use serde::{Deserialize, Serialize};

use super::isolation_forest::{IsolationForest, IsolationForestConfig};
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
        // s = 2^(−E[h]/c) ⇒ c/E[h] = −1 / log2(s); s = 1 (isolated at the root) is the maximum.
        let depth_ratio = -s.log2();
        Some(if depth_ratio > 1e-9 {
            (1.0 / depth_ratio).min(1e9)
        } else {
            1e9
        })
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
        if normal {
            self.reservoir.add(&cfg.refit, row);
        }
        if self
            .reservoir
            .tick(&cfg.refit, self.model.is_some(), magnitude)
        {
            let forest = IsolationForestConfig {
                seed: cfg.forest.seed ^ self.reservoir.fits(),
                ..cfg.forest.clone()
            };
            // A fit can only fail on rows the reservoir refuses (non-finite) or a bad config,
            // which validation rejects; keep the old model if it does.
            if let Ok(model) = forest.fit(self.reservoir.rows(), self.reservoir.width()) {
                self.model = Some(model);
            }
            self.reservoir.fitted();
        }
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
            let x = (i % 10) as f32;
            let row = [x, 2.0 * x + 1.0];
            let m = d.score(&row);
            d.learn(&cfg, &row, true, m);
        }
        let normal = d.score(&[5.0, 11.0]).expect("fitted");
        let outlier = d.score(&[5.0, -30.0]).expect("fitted");
        assert!(outlier > normal * 1.3, "outlier {outlier} vs normal {normal}");
        assert!(d.score(&[1.0]).is_none(), "wrong width");
    }
}
