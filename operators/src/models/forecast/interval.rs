//! Forecast outputs: point forecasts with Gaussian standard deviations, and prediction intervals
//! derived from them at any level.
//!
//! Every model here produces, per step, a mean and the standard deviation of the forecast error;
//! intervals are `mean ± z_{(1+level)/2} · sd`, the normal-theory intervals the ARIMA and ETS
//! literature (and R / statsforecast) report.

use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, Normal};

use crate::models::ModelError;

/// Point forecasts and the standard deviation of their errors, one per step ahead.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    /// Point forecasts (the conditional means).
    pub point: Vec<f64>,
    /// Standard deviation of the forecast error at each step.
    pub sd: Vec<f64>,
}

/// A prediction interval at one level.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    /// Nominal coverage in (0, 1), e.g. 0.95.
    pub level: f64,
    /// Lower bounds, one per step.
    pub lower: Vec<f64>,
    /// Upper bounds, one per step.
    pub upper: Vec<f64>,
}

/// Two-sided standard-normal quantile for a coverage `level` in (0, 1).
pub fn normal_quantile(level: f64) -> Result<f64, ModelError> {
    ModelError::require(level > 0.0 && level < 1.0, "level", "in (0, 1)", level)?;
    // Normal::new(0, 1) cannot fail; the error arm is unreachable but handled without a panic.
    let std = Normal::new(0.0, 1.0).map_err(|e| ModelError::Numerical(e.to_string()))?;
    Ok(std.inverse_cdf(0.5 + level / 2.0))
}

impl Prediction {
    /// The interval `point ± z · sd` at `level`.
    pub fn interval(&self, level: f64) -> Result<Interval, ModelError> {
        let z = normal_quantile(level)?;
        let (lower, upper) = self
            .point
            .iter()
            .zip(&self.sd)
            .map(|(p, s)| (p - z * s, p + z * s))
            .unzip();
        Ok(Interval {
            level,
            lower,
            upper,
        })
    }

    /// Number of steps.
    pub fn len(&self) -> usize {
        self.point.len()
    }

    /// Whether there are no steps.
    pub fn is_empty(&self) -> bool {
        self.point.is_empty()
    }
}

/// What [`crate::models::forecast::forecast`] returns: the chosen model's name, point forecasts
/// and 80% / 95% prediction intervals.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Forecast {
    /// Model description, e.g. `ARIMA(1,1,1)(0,1,1)[24]` or `MSTL[24,168]+ETS(A,Ad,N)`.
    pub model: String,
    /// Point forecasts, one per step ahead.
    pub point: Vec<f64>,
    /// Lower bounds of the 80% intervals.
    pub lo80: Vec<f64>,
    /// Upper bounds of the 80% intervals.
    pub hi80: Vec<f64>,
    /// Lower bounds of the 95% intervals.
    pub lo95: Vec<f64>,
    /// Upper bounds of the 95% intervals.
    pub hi95: Vec<f64>,
}

impl Forecast {
    /// Builds the 80% and 95% intervals of `prediction`.
    pub fn from_prediction(model: String, prediction: &Prediction) -> Self {
        // Two-sided normal quantiles: Φ⁻¹(0.90) and Φ⁻¹(0.975).
        const Z80: f64 = 1.281_551_565_544_600_4;
        const Z95: f64 = 1.959_963_984_540_054;
        let band = |z: f64, sign: f64| -> Vec<f64> {
            prediction
                .point
                .iter()
                .zip(&prediction.sd)
                .map(|(p, s)| p + sign * z * s)
                .collect()
        };
        Self {
            model,
            point: prediction.point.clone(),
            lo80: band(Z80, -1.0),
            hi80: band(Z80, 1.0),
            lo95: band(Z95, -1.0),
            hi95: band(Z95, 1.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_and_intervals() {
        assert!((normal_quantile(0.95).unwrap_or(f64::NAN) - 1.959_964).abs() < 1e-6);
        assert!((normal_quantile(0.80).unwrap_or(f64::NAN) - 1.281_552).abs() < 1e-6);
        assert!(normal_quantile(1.0).is_err());
        let p = Prediction {
            point: vec![10.0, 20.0],
            sd: vec![1.0, 2.0],
        };
        let i = p.interval(0.95).expect("valid level");
        assert!((i.upper[1] - (20.0 + 2.0 * 1.959_964)).abs() < 1e-5);
        let f = Forecast::from_prediction("x".into(), &p);
        assert!((f.lo80[0] - (10.0 - 1.281_552)).abs() < 1e-6);
        assert!((f.hi95[0] - i.upper[0]).abs() < 1e-9);
    }
}
