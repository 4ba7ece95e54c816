//! Tukey's IQR fences on a rolling window: values beyond `Q1 − k·IQR` or `Q3 + k·IQR` are outliers,
//! and how far beyond (in IQR) is the magnitude.
//!
//! The quartiles of a window ignore up to a quarter of outliers on each side and, unlike a
//! mean ± σ band, follow skewed distributions (latency, error ratios), whose upper fence sits
//! further from the median than the lower one.

use serde::{Deserialize, Serialize};

use super::deviation::{scale_floor, Deviation};
use super::robust_z::RollingRobust;
use crate::models::ModelError;

/// IQR of a Gaussian in units of σ (2 · Φ⁻¹(3/4)), to report the scale as a σ.
const IQR_TO_SIGMA: f64 = 1.348_979_500_392_163_4;

/// Settings of the IQR fence detector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IqrConfig {
    /// Values in the rolling window (default 60: an hour of 1-minute windows).
    pub window: usize,
    /// Fence distance in IQRs (default 1.5, Tukey's).
    pub k: f64,
    /// Values learned before scoring (default 20).
    pub warmup_len: usize,
    /// Floor of the IQR as a fraction of |median| (default 0.001).
    pub min_relative_scale: f64,
}

impl Default for IqrConfig {
    fn default() -> Self {
        IqrConfig {
            window: 60,
            k: 1.5,
            warmup_len: 20,
            min_relative_scale: 0.001,
        }
    }
}

impl IqrConfig {
    /// Checks every parameter's range.
    pub fn validate(&self) -> Result<(), ModelError> {
        let w = self.window;
        ModelError::require(w >= 4, "window", "at least 4", w as f64)?;
        let k = self.k;
        ModelError::require(k.is_finite() && k >= 0.0, "k", "≥ 0", k)
    }
}

/// Rolling window state of one feature of one series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IqrFences {
    values: RollingRobust,
    seen: u64,
}

impl IqrFences {
    /// An empty window.
    pub fn new(cfg: &IqrConfig) -> Self {
        IqrFences {
            values: RollingRobust::new(cfg.window),
            seen: 0,
        }
    }

    /// Scores `value` (`None` during warm-up or for a non-finite value), then learns it.
    pub fn observe(&mut self, cfg: &IqrConfig, value: f64) -> Option<Deviation> {
        if !value.is_finite() {
            return None;
        }
        let out = if self.seen >= cfg.warmup_len as u64 {
            self.score(cfg, value)
        } else {
            None
        };
        self.values.push(value);
        self.seen += 1;
        out
    }

    fn score(&self, cfg: &IqrConfig, value: f64) -> Option<Deviation> {
        let q1 = self.values.quantile(0.25)?;
        let q3 = self.values.quantile(0.75)?;
        let median = self.values.median()?;
        let iqr = (q3 - q1).max(scale_floor(median, cfg.min_relative_scale));
        let excess = (value - (q3 + cfg.k * iqr))
            .max((q1 - cfg.k * iqr) - value)
            .max(0.0);
        Some(Deviation {
            magnitude: excess / iqr,
            expected: median,
            scale: iqr / IQR_TO_SIGMA,
        })
    }

    /// Approximate heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.values.heap_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inside_the_fences_is_zero_beyond_is_distance_in_iqrs() {
        let cfg = IqrConfig::default();
        let mut d = IqrFences::new(&cfg);
        for i in 0..60 {
            d.observe(&cfg, (i % 4) as f64); // values 0,1,2,3: Q1 0.75, Q3 2.25, IQR 1.5
        }
        let inside = d.observe(&cfg, 4.0).unwrap();
        assert_eq!(inside.magnitude, 0.0, "4 < 2.25 + 2.25");
        let mut d2 = IqrFences::new(&cfg);
        for i in 0..60 {
            d2.observe(&cfg, (i % 4) as f64);
        }
        // Upper fence 2.25 + 1.5·1.5 = 4.5; 7.5 is 3 beyond: 2 IQRs.
        let out = d2.observe(&cfg, 7.5).unwrap();
        assert!((out.magnitude - 2.0).abs() < 1e-9, "{out:?}");
        let low = d2.observe(&cfg, -7.0).unwrap();
        assert!(low.magnitude > 2.0, "{low:?}");
    }
}
