//! Forecast-residual detector: each value is compared with the one-step forecast made before it
//! arrived, in units of that forecast's standard deviation; a value outside the 95% prediction
//! interval has a magnitude above 1.96. Calibration (see [`super::calibration`]) then turns
//! magnitudes into tail probabilities like every other detector's.
//!
//! The forecaster is Holt's linear method with a damped trend (Gardner & McKenzie 1985) and the
//! forecast error variance an exponentially weighted mean of squared one-step errors: five
//! numbers of state per series, microseconds per value, so it can run in the detection ensemble
//! on every series. Unlike a level-only baseline (EWMA, robust z) it expects a trend to go on, so
//! a steady climb (a disk filling) is not anomalous in itself, while a break from the trend is.
//! The streaming ARIMA forecasts (`operators::forecast`) are far costlier and only run for
//! configured series; this detector is the cheap member of the same idea. As in the EWMA
//! detector, errors beyond `clamp_sigmas` are winsorised before they are learned, so one spike
//! does not bend the level, trend or variance.

use serde::{Deserialize, Serialize};

use super::deviation::{check_clamp_sigmas, check_min_relative_scale, scale_floor, Deviation};
use crate::models::ModelError;

/// Settings of the forecast-residual detector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ForecastResidualConfig {
    /// Level smoothing in (0, 1) (default 0.3: follows level changes within a few windows).
    pub alpha: f64,
    /// Trend smoothing in (0, 1) (default 0.1: a trend needs about ten windows to be believed).
    pub beta: f64,
    /// Trend damping in (0, 1] (default 0.98, the upper end of Gardner & McKenzie's range:
    /// nearly linear over a few steps, flat in the long run).
    pub phi: f64,
    /// Weight of each squared error in the variance, in (0, 1) (default 0.05: about 40 windows).
    pub variance_alpha: f64,
    /// Values learned before scoring (default 20).
    pub warmup_len: usize,
    /// Errors are clamped to ± this many σ when learned (default 3).
    pub clamp_sigmas: f64,
    /// Floor of σ as a fraction of |level| (default 0.001, as the EWMA detector).
    pub min_relative_scale: f64,
}

impl Default for ForecastResidualConfig {
    fn default() -> Self {
        ForecastResidualConfig {
            alpha: 0.3,
            beta: 0.1,
            phi: 0.98,
            variance_alpha: 0.05,
            warmup_len: 20,
            clamp_sigmas: 3.0,
            min_relative_scale: 0.001,
        }
    }
}

impl ForecastResidualConfig {
    /// Checks every parameter's range.
    pub fn validate(&self) -> Result<(), ModelError> {
        let open = |name, v: f64| ModelError::require(v > 0.0 && v < 1.0, name, "in (0, 1)", v);
        open("alpha", self.alpha)?;
        open("beta", self.beta)?;
        open("variance_alpha", self.variance_alpha)?;
        let phi = self.phi;
        ModelError::require(phi > 0.0 && phi <= 1.0, "phi", "in (0, 1]", phi)?;
        check_clamp_sigmas(self.clamp_sigmas)?;
        check_min_relative_scale(self.min_relative_scale)
    }
}

/// Running state of one series: level, trend, error variance and count.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ForecastResidual {
    level: f64,
    trend: f64,
    var: f64,
    seen: u64,
}

impl ForecastResidual {
    /// The one-step forecast for the next value (`None` before the first value).
    pub fn forecast(&self, cfg: &ForecastResidualConfig) -> Option<f64> {
        (self.seen > 0).then_some(self.level + cfg.phi * self.trend)
    }

    /// Scores `value` against the forecast made before it (`None` during warm-up or for a
    /// non-finite value), then learns it.
    pub fn observe(&mut self, cfg: &ForecastResidualConfig, value: f64) -> Option<Deviation> {
        if !value.is_finite() {
            return None;
        }
        if self.seen == 0 {
            self.level = value;
            self.seen = 1;
            return None;
        }
        let yhat = self.level + cfg.phi * self.trend;
        let sigma = self
            .var
            .sqrt()
            .max(scale_floor(self.level, cfg.min_relative_scale));
        let out = (self.seen >= cfg.warmup_len as u64).then(|| Deviation::of(value, yhat, sigma));
        let mut err = value - yhat;
        if self.seen > cfg.warmup_len as u64 {
            let limit = cfg.clamp_sigmas * sigma;
            err = err.clamp(-limit, limit);
        }
        self.seen += 1;
        // Error-correction form of damped Holt: level and trend move by shares of the error.
        let level = yhat + cfg.alpha * err;
        self.trend = cfg.phi * self.trend + cfg.alpha * cfg.beta * err;
        self.level = level;
        // Equal weights during warm-up, so the first variance estimate is a plain mean.
        let w = cfg.variance_alpha.max(1.0 / self.seen as f64);
        self.var = (1.0 - w) * self.var + w * err * err;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wiggle(i: u64) -> f64 {
        ((i * 7) % 5) as f64 - 2.0
    }

    #[test]
    fn a_trend_is_expected_but_a_break_from_it_scores() {
        let cfg = ForecastResidualConfig::default();
        let mut d = ForecastResidual::default();
        let mut worst: f64 = 0.0;
        for i in 0..200u64 {
            // Climbing 1 per value with noise of ±2.
            if let Some(x) = d.observe(&cfg, 10.0 + i as f64 + wiggle(i)) {
                worst = worst.max(x.magnitude);
            }
        }
        // Along the trend nothing leaves the 99.99% band...
        assert!(worst < 3.9, "ordinary values scored up to {worst}");
        // ...and the next forecast continues it.
        let next = d.forecast(&cfg).expect("forecast");
        assert!((next - 210.0).abs() < 3.0, "{next}");
        let jump = d.observe(&cfg, 240.0).expect("scored");
        assert!(jump.magnitude > 10.0, "{jump:?}");
        // The clamped jump barely moved the level.
        let after = d.forecast(&cfg).expect("forecast");
        assert!((after - 212.0).abs() < 6.0, "{after}");
    }

    #[test]
    fn warm_up_non_finite_and_validation() {
        let cfg = ForecastResidualConfig::default();
        let mut d = ForecastResidual::default();
        for _ in 0..cfg.warmup_len {
            assert!(d.observe(&cfg, 1.0).is_none());
        }
        assert!(d.observe(&cfg, f64::NAN).is_none());
        assert!(d.observe(&cfg, 1.0).is_some());
        assert!(ForecastResidualConfig {
            phi: 0.0,
            ..cfg.clone()
        }
        .validate()
        .is_err());
        assert!(ForecastResidualConfig {
            alpha: 1.0,
            ..cfg.clone()
        }
        .validate()
        .is_err());
        assert!(cfg.validate().is_ok());
        let json = serde_json::to_string(&d).expect("serialises");
        assert_eq!(
            serde_json::from_str::<ForecastResidual>(&json).expect("back"),
            d
        );
    }
}
