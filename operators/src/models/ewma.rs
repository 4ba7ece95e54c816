//! EWMA control chart: an exponentially weighted mean and variance, and the distance of each new
//! value from that mean in standard deviations.
//!
//! Cheaper and quicker to adapt than a rolling median, it answers "is this value far from where
//! the series has been lately". Outliers are winsorised before they are learned (an innovation
//! beyond `clamp_sigmas` σ counts as exactly that many), so one spike moves neither the mean nor
//! the variance much — the robust-filter idea of Huber's M-estimators applied to an EWMA.

use serde::{Deserialize, Serialize};

use super::deviation::{check_clamp_sigmas, check_min_relative_scale, Deviation};
use super::moments::EwmaMoments;
use crate::models::ModelError;

/// Settings of the EWMA detector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EwmaConfig {
    /// Weight of each new value, in (0, 1). Default 0.1: an effective memory of about 19 values
    /// ((2 − α) / α), short enough to follow a daily cycle sampled every few minutes.
    pub alpha: f64,
    /// Values learned before scoring (default 20).
    pub warmup_len: usize,
    /// Innovations are clamped to ± this many σ when learned (default 3).
    pub clamp_sigmas: f64,
    /// Floor of σ as a fraction of |mean| (default 0.001, as the robust detector).
    pub min_relative_scale: f64,
}

impl Default for EwmaConfig {
    fn default() -> Self {
        EwmaConfig {
            alpha: 0.1,
            warmup_len: 20,
            clamp_sigmas: 3.0,
            min_relative_scale: 0.001,
        }
    }
}

impl EwmaConfig {
    /// Checks every parameter's range.
    pub fn validate(&self) -> Result<(), ModelError> {
        let a = self.alpha;
        ModelError::require(a > 0.0 && a < 1.0, "alpha", "in (0, 1)", a)?;
        check_clamp_sigmas(self.clamp_sigmas)?;
        check_min_relative_scale(self.min_relative_scale)
    }
}

/// Running EWMA state of one feature of one series.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Ewma {
    #[serde(flatten)]
    moments: EwmaMoments,
}

impl Ewma {
    /// Scores `value` (`None` during warm-up or for a non-finite value), then learns it.
    pub fn observe(&mut self, cfg: &EwmaConfig, value: f64) -> Option<Deviation> {
        if !value.is_finite() {
            return None;
        }
        let m = &mut self.moments;
        let sigma = m.sigma(cfg.min_relative_scale);
        let out =
            (m.seen() >= cfg.warmup_len as u64).then(|| Deviation::of(value, m.mean(), sigma));
        m.learn(value, cfg.alpha, cfg.warmup_len, cfg.clamp_sigmas, sigma);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn planted_spike_scores_far_above_ordinary_values() {
        let cfg = EwmaConfig::default();
        let mut d = Ewma::default();
        let mut worst: f64 = 0.0;
        for i in 0..200 {
            let v = 50.0 + ((i * 7) % 5) as f64;
            if let Some(x) = d.observe(&cfg, v) {
                worst = worst.max(x.magnitude);
            }
        }
        let spike = d.observe(&cfg, 80.0).unwrap();
        assert!(worst < 3.0, "ordinary values scored up to {worst}");
        assert!(spike.magnitude > 10.0, "{spike:?}");
        // The clamped spike barely moved the mean.
        let after = d.observe(&cfg, 52.0).unwrap();
        assert!((after.expected - 52.0).abs() < 2.0, "{after:?}");
    }

    #[test]
    fn warm_up_and_non_finite() {
        let cfg = EwmaConfig::default();
        let mut d = Ewma::default();
        for _ in 0..cfg.warmup_len {
            assert!(d.observe(&cfg, 1.0).is_none());
        }
        assert!(d.observe(&cfg, f64::INFINITY).is_none());
        assert!(d.observe(&cfg, 1.0).is_some());
        assert!(EwmaConfig { alpha: 1.0, ..cfg }.validate().is_err());
    }
}
