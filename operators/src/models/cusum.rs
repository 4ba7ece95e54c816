//! Two-sided CUSUM (Page, 1954): accumulates standardised deviations from a slow reference mean,
//! so a small shift that persists adds up to a detection long before any single value looks odd.
//!
//! `S⁺ ← max(0, S⁺ + e − k)` and `S⁻ ← max(0, S⁻ − e − k)` with `e = (x − μ) / σ`; the
//! magnitude reported is `max(S⁺, S⁻) / h`, which reaches 1 at the classical decision interval
//! `h`. After crossing it, the sums restart at zero (the usual restart after an alarm) and the
//! reference mean, a slow winsorised EWMA, goes on adapting to the new level.

use serde::{Deserialize, Serialize};

use super::deviation::{check_min_relative_scale, Deviation};
use super::moments::EwmaMoments;
use crate::models::ModelError;

/// Settings of the CUSUM detector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CusumConfig {
    /// Slack per value, in σ (default 0.5: tuned to detect shifts of about 1σ, Montgomery's
    /// textbook choice).
    pub k: f64,
    /// Decision interval, in σ (default 5: an in-control run length of several hundred values
    /// for k = 0.5).
    pub h: f64,
    /// Weight of each value in the reference mean and variance (default 0.01: a memory of about
    /// 200 values, slow enough that a shift is accumulated before it is absorbed).
    pub alpha: f64,
    /// Values learned before scoring (default 30).
    pub warmup_len: usize,
    /// Floor of σ as a fraction of |mean| (default 0.001).
    pub min_relative_scale: f64,
}

impl Default for CusumConfig {
    fn default() -> Self {
        CusumConfig {
            k: 0.5,
            h: 5.0,
            alpha: 0.01,
            warmup_len: 30,
            min_relative_scale: 0.001,
        }
    }
}

impl CusumConfig {
    /// Checks every parameter's range.
    pub fn validate(&self) -> Result<(), ModelError> {
        let k = self.k;
        ModelError::require(k.is_finite() && k >= 0.0, "k", "≥ 0", k)?;
        let h = self.h;
        ModelError::require(h.is_finite() && h > 0.0, "h", "positive", h)?;
        let a = self.alpha;
        ModelError::require(a > 0.0 && a < 1.0, "alpha", "in (0, 1)", a)?;
        check_min_relative_scale(self.min_relative_scale)
    }
}

/// Running CUSUM state of one feature of one series.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Cusum {
    /// The slow reference mean and σ, winsorised at 3σ once warm.
    #[serde(flatten)]
    reference: EwmaMoments,
    pos: f64,
    neg: f64,
}

impl Cusum {
    /// Scores `value` (`None` during warm-up or for a non-finite value), then learns it.
    pub fn observe(&mut self, cfg: &CusumConfig, value: f64) -> Option<Deviation> {
        if !value.is_finite() {
            return None;
        }
        let sigma = self.reference.sigma(cfg.min_relative_scale);
        let mean = self.reference.mean();
        let mut out = None;
        if self.reference.seen() >= cfg.warmup_len as u64 {
            let e = ((value - mean) / sigma).clamp(-1e6, 1e6);
            self.pos = (self.pos + e - cfg.k).max(0.0);
            self.neg = (self.neg - e - cfg.k).max(0.0);
            let stat = self.pos.max(self.neg);
            let sign = if self.pos >= self.neg { 1.0 } else { -1.0 };
            out = Some(Deviation {
                magnitude: stat / cfg.h,
                expected: mean,
                // One unit of magnitude: the accumulated shift h·σ, shown on the moved side.
                scale: sigma * cfg.h * sign,
            });
            if stat > cfg.h {
                self.pos = 0.0;
                self.neg = 0.0;
            }
        }
        // Winsorise at 3σ once warm, so one outlier does not drag the reference.
        self.reference
            .learn(value, cfg.alpha, cfg.warmup_len, 3.0, sigma);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::test_noise::noise;

    #[test]
    fn small_persistent_shift_accumulates_to_a_detection() {
        let cfg = CusumConfig::default();
        let mut d = Cusum::default();
        let mut before: f64 = 0.0;
        for i in 0..500 {
            if let Some(x) = d.observe(&cfg, 10.0 + noise(i)) {
                before = before.max(x.magnitude);
            }
        }
        // A shift of about one σ of the noise (uniform ±0.5 has σ ≈ 0.29): no single value is
        // far off, but the sum grows.
        let mut after: f64 = 0.0;
        for i in 500..540 {
            if let Some(x) = d.observe(&cfg, 10.3 + noise(i)) {
                after = after.max(x.magnitude);
            }
        }
        assert!(before < 1.0, "in control: {before}");
        assert!(after > 1.0, "shift: {after}");
    }

    #[test]
    fn invalid_config() {
        assert!(CusumConfig {
            h: 0.0,
            ..Default::default()
        }
        .validate()
        .is_err());
        assert!(CusumConfig::default().validate().is_ok());
    }
}
