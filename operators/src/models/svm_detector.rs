//! The one-class SVM as a streaming detector: standardised with its training rows' column means
//! and deviations, fitted exactly (SMO) on the reservoir of recent normal vectors, refitted on
//! schedule or drift.
//!
//! The magnitude reported is `ln(1 + ρ / g(x))`, with `g(x) = Σ αᵢ K(xᵢ, x)` the kernel mass the
//! support vectors put on `x`: ln 2 on the learned boundary, less inside, and growing like
//! `γ · d²` (d the distance to the nearest support vectors) as `x` leaves the region, because
//! the RBF mass decays as `exp(−γ d²)`. It orders rows as scikit-learn's `decision_function`
//! (g − ρ) does, on a distance-like scale rather than the exponential one of `ρ / g`.

use serde::{Deserialize, Serialize};

use super::one_class_svm::{OneClassSvm, OneClassSvmConfig};
use super::reservoir::{RefitPolicy, Reservoir};
use crate::models::ModelError;

/// Settings of the streaming one-class SVM.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SvmDetectorConfig {
    /// The SVM (default ν = 0.1: about a tenth of the normal rows may fall outside, a novelty
    /// setting; scikit-learn's 0.5 suits outlier removal, not monitoring. γ = 'scale'.)
    pub svm: OneClassSvmConfig,
    /// When to fit and refit (default: 128 rows, refit every 256 observations — SMO grows with
    /// the square of the rows, and 128 standardised rows describe a region of ~15 features).
    pub refit: RefitPolicy,
}

impl Default for SvmDetectorConfig {
    fn default() -> Self {
        SvmDetectorConfig {
            svm: OneClassSvmConfig {
                nu: 0.1,
                ..OneClassSvmConfig::default()
            },
            refit: RefitPolicy {
                capacity: 128,
                min_rows: 64,
                ..RefitPolicy::default()
            },
        }
    }
}

impl SvmDetectorConfig {
    /// Checks every parameter's range.
    pub fn validate(&self) -> Result<(), ModelError> {
        self.svm.validate()?;
        self.refit.validate()
    }
}

/// A fitted SVM with the standardisation of its training rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Fitted {
    svm: OneClassSvm,
    mean: Vec<f64>,
    inv_std: Vec<f64>,
}

/// A streaming one-class SVM.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StreamingSvm {
    reservoir: Reservoir,
    model: Option<Fitted>,
    #[serde(skip)]
    scratch: Vec<f64>,
}

impl StreamingSvm {
    /// Scores `row` (`None` before the first fit or for a row of another width).
    pub fn score(&mut self, row: &[f32]) -> Option<f64> {
        let m = self.model.as_ref()?;
        if m.mean.len() != row.len() {
            return None;
        }
        self.scratch.clear();
        self.scratch.extend(
            row.iter()
                .zip(m.mean.iter().zip(&m.inv_std))
                .map(|(x, (mu, inv))| (f64::from(*x) - mu) * inv),
        );
        let f = m.svm.decision_function(&self.scratch);
        let rho = m.svm.rho();
        let mass = f + rho;
        if rho.is_nan() || rho <= 0.0 {
            // A degenerate fit (all rows identical): fall back to "outside" iff f < 0.
            return Some(if f < 0.0 { 2.0 } else { 0.5 });
        }
        // ln(1 + ρ/g) = ln(g + ρ) − ln(g), computed in logs so a vanishing g stays finite.
        let g = mass.max(f64::MIN_POSITIVE);
        Some(((rho / g).ln_1p()).min(1e3))
    }

    /// Learns from an observation (see [`super::forest_detector::StreamingForest::learn`]).
    pub fn learn(
        &mut self,
        cfg: &SvmDetectorConfig,
        row: &[f32],
        normal: bool,
        magnitude: Option<f64>,
    ) {
        let model = &mut self.model;
        let fitted = model.is_some();
        self.reservoir.learn(
            &cfg.refit,
            row,
            normal,
            fitted,
            magnitude,
            |rows, width, fits| {
                if let Some(new) = fit(cfg, rows, width, fits) {
                    *model = Some(new);
                }
            },
        );
    }

    /// Approximate heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.reservoir.heap_bytes()
            + self.model.as_ref().map_or(0, |m| {
                (m.svm.n_support() + 2) * m.svm.n_features() * std::mem::size_of::<f64>()
            })
    }
}

fn fit(cfg: &SvmDetectorConfig, rows: &[f32], width: usize, fits: u64) -> Option<Fitted> {
    if width == 0 || rows.is_empty() {
        return None;
    }
    let n = rows.len() / width;
    let mut mean = vec![0.0; width];
    let mut sq = vec![0.0; width];
    for row in rows.chunks_exact(width) {
        for (j, v) in row.iter().enumerate() {
            mean[j] += f64::from(*v);
            sq[j] += f64::from(*v) * f64::from(*v);
        }
    }
    let inv_std: Vec<f64> = (0..width)
        .map(|j| {
            mean[j] /= n as f64;
            let var = (sq[j] / n as f64 - mean[j] * mean[j]).max(0.0);
            let sd = var.sqrt();
            // A constant column carries no information: scale it by 1 (it stays 0).
            if sd > 1e-12 * mean[j].abs().max(1.0) {
                1.0 / sd
            } else {
                1.0
            }
        })
        .collect();
    let standardised: Vec<f64> = rows
        .chunks_exact(width)
        .flat_map(|row| {
            row.iter()
                .enumerate()
                .map(|(j, v)| (f64::from(*v) - mean[j]) * inv_std[j])
                .collect::<Vec<_>>()
        })
        .collect();
    let svm = OneClassSvmConfig {
        seed: cfg.svm.seed ^ fits,
        ..cfg.svm.clone()
    }
    .fit(&standardised, width)
    .ok()?;
    Some(Fitted { svm, mean, inv_std })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn planted_outlier_is_far_outside_the_learned_region() {
        let cfg = SvmDetectorConfig::default();
        let mut d = StreamingSvm::default();
        for i in 0..200 {
            let x = (i % 10) as f32;
            let row = [x, 2.0 * x + 1.0];
            let m = d.score(&row);
            d.learn(&cfg, &row, true, m);
        }
        let normal = d.score(&[5.0, 11.0]).expect("fitted");
        let outlier = d.score(&[5.0, -30.0]).expect("fitted");
        assert!(normal < 1.5, "{normal}");
        assert!(outlier > 4.0, "{outlier}");
    }
}
