//! Change points: Bayesian online change-point detection (Adams & MacKay, 2007, via augurs'
//! Normal-Gamma BOCPD) over a bounded span of recent values, to tell a level shift from a spike.
//!
//! BOCPD keeps a posterior over the current run length; augurs runs it over a slice and returns
//! the MAP change points. Its cost grows with the square of the span, so it is not run on every
//! value: the detector set calls it only when the other detectors already score a value as
//! suspicious (see `trigger` in the fusion policy), on the last `span` values and the current one.
//! The series is standardised first (median and noise σ of the span), because the prior is
//! scale-dependent (mean 0, unit precision).

use augurs::changepoint::dist::NormalGamma;
use augurs::changepoint::{Detector as _, NormalGammaDetector};
use serde::{Deserialize, Serialize};

use super::deviation::scale_floor;
use super::robust_z::{RollingRobust, MAD_TO_SIGMA};
use crate::models::ModelError;

/// Settings of the change-point detector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChangepointConfig {
    /// Recent values examined, the current one included (default 48: long enough to see a
    /// stable level before a change, short enough that BOCPD's quadratic cost stays near 0.1 ms).
    pub span: usize,
    /// Expected run length between changes, in values (BOCPD's constant hazard 1/λ; default 100).
    pub hazard_lambda: f64,
    /// A change counts when it happened at most this many values ago (default 6).
    pub recent: usize,
    /// Shift in noise σ that scores 0.5 (default 4.5, the robust detector's threshold).
    pub threshold: f64,
}

impl Default for ChangepointConfig {
    fn default() -> Self {
        ChangepointConfig {
            span: 48,
            hazard_lambda: 100.0,
            recent: 6,
            threshold: 4.5,
        }
    }
}

impl ChangepointConfig {
    /// Checks every parameter's range.
    pub fn validate(&self) -> Result<(), ModelError> {
        let span = self.span;
        ModelError::require(
            (8..=1024).contains(&span),
            "span",
            "between 8 and 1024",
            span as f64,
        )?;
        let h = self.hazard_lambda;
        ModelError::require(h.is_finite() && h > 1.0, "hazard_lambda", "above 1", h)?;
        let recent = self.recent;
        ModelError::require(
            (1..span).contains(&recent),
            "recent",
            "between 1 and span − 1",
            recent as f64,
        )?;
        let t = self.threshold;
        ModelError::require(t.is_finite() && t > 0.0, "threshold", "positive", t)
    }
}

/// A recent change of level.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ChangePoint {
    /// Values since the change, the first value of the new level included (1 = the current
    /// value is the first of the new level).
    pub age: usize,
    /// Median level before the change.
    pub before: f64,
    /// Median level after it.
    pub after: f64,
    /// Noise σ of the span.
    pub sigma: f64,
}

impl ChangePoint {
    /// Size of the shift in noise σ (signed).
    pub fn shift_sigmas(&self) -> f64 {
        (self.after - self.before) / self.sigma
    }
}

/// The most recent change point in `values` (oldest first, the current value last), if it is at
/// most `cfg.recent` values old and both sides hold at least one value.
pub fn recent_change(cfg: &ChangepointConfig, values: &[f64]) -> Option<ChangePoint> {
    let n = values.len();
    if n < 8 || values.iter().any(|v| !v.is_finite()) {
        return None;
    }
    let mut level = RollingRobust::new(n);
    let mut diffs = RollingRobust::new(n);
    for (i, v) in values.iter().enumerate() {
        level.push(*v);
        if i > 0 {
            diffs.push(v - values[i - 1]);
        }
    }
    let median = level.median()?;
    // Noise σ from successive differences (see robust_z), so a shift does not inflate it.
    let sigma =
        (diffs.mad()? * MAD_TO_SIGMA / std::f64::consts::SQRT_2).max(scale_floor(median, 1e-3));
    let standardised: Vec<f64> = values.iter().map(|v| (v - median) / sigma).collect();
    let mut detector = NormalGammaDetector::normal_gamma(
        cfg.hazard_lambda,
        // Prior: mean 0, unit precision — the standardised series' scale.
        NormalGamma::new_unchecked(0.0, 1.0, 1.0, 1.0),
    );
    let points = detector.detect_changepoints(&standardised);
    // augurs reports the index of the last value before each change (and 0 for the start).
    let first_new = points.iter().rfind(|c| **c > 0 && **c + 1 < n)? + 1;
    let age = n - first_new;
    if age > cfg.recent {
        return None;
    }
    let med = |s: &[f64]| {
        let mut r = RollingRobust::new(s.len());
        s.iter().for_each(|v| {
            r.push(*v);
        });
        r.median()
    };
    Some(ChangePoint {
        age,
        before: med(&values[..first_new])?,
        after: med(&values[first_new..])?,
        sigma,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::test_noise::noise;

    #[test]
    fn planted_level_shift_is_found_with_its_age() {
        let cfg = ChangepointConfig::default();
        let values: Vec<f64> = (0..48)
            .map(|i| if i < 44 { 10.0 } else { 20.0 } + noise(i))
            .collect();
        let cp = recent_change(&cfg, &values).expect("a change");
        assert_eq!(cp.age, 4, "{cp:?}");
        assert!(cp.shift_sigmas() > 10.0, "{cp:?}");
    }

    #[test]
    fn a_single_spike_or_noise_is_not_a_recent_level_change() {
        let cfg = ChangepointConfig::default();
        let flat: Vec<f64> = (0..48).map(|i| 10.0 + noise(i)).collect();
        assert!(recent_change(&cfg, &flat).is_none());
        assert!(recent_change(&cfg, &[1.0, f64::NAN, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]).is_none());
        assert!(recent_change(&cfg, &[1.0; 3]).is_none());
    }
}
