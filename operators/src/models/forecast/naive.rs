//! Seasonal naive forecasts: each step repeats the value one season earlier. The benchmark every
//! seasonal method must beat, and the fallback that always produces a forecast.
//!
//! Error variance after `h` steps is `σ²·(⌊(h-1)/m⌋ + 1)` with σ² the mean square of the
//! in-sample seasonal differences (Hyndman & Athanasopoulos, *Forecasting: Principles and
//! Practice*, §5.5), giving the usual normal intervals.

use serde::{Deserialize, Serialize};

use super::interval::Prediction;
use crate::models::ModelError;

/// Seasonal naive configuration. `Default` is period 1 (the random-walk forecast).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeasonalNaive {
    /// Season length; 1 repeats the last value.
    pub period: usize,
}

impl Default for SeasonalNaive {
    fn default() -> Self {
        Self { period: 1 }
    }
}

/// A fitted seasonal naive model: the last season and the residual variance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FittedSeasonalNaive {
    /// The season length actually used (falls back to 1 when the series is shorter than two
    /// seasons).
    pub(crate) period: usize,
    /// The last `period` observations, oldest first.
    pub(crate) last: Vec<f64>,
    /// Mean square of the in-sample seasonal differences.
    pub(crate) sigma2: f64,
}

impl SeasonalNaive {
    /// A seasonal naive model with season length `period`.
    pub fn new(period: usize) -> Self {
        Self { period }
    }

    /// Fits to `y`: needs one finite observation; series shorter than `period + 1` use the
    /// non-seasonal naive forecast.
    ///
    /// # Errors
    /// `period == 0`, an empty series, or a non-finite value.
    pub fn fit(&self, y: &[f64]) -> Result<FittedSeasonalNaive, ModelError> {
        if self.period == 0 {
            return Err(ModelError::InvalidParameter {
                name: "period",
                reason: "must be at least 1".into(),
            });
        }
        if y.is_empty() {
            return Err(ModelError::NotEnoughData { needed: 1, got: 0 });
        }
        if let Some(index) = y.iter().position(|v| !v.is_finite()) {
            return Err(ModelError::NonFinite { index });
        }
        let m = if y.len() > self.period {
            self.period
        } else {
            1
        };
        let diffs: Vec<f64> = y.windows(m + 1).map(|w| w[m] - w[0]).collect();
        let sigma2 = if diffs.is_empty() {
            0.0
        } else {
            diffs.iter().map(|d| d * d).sum::<f64>() / diffs.len() as f64
        };
        Ok(FittedSeasonalNaive {
            period: m,
            last: y[y.len() - m.min(y.len())..].to_vec(),
            sigma2,
        })
    }
}

impl FittedSeasonalNaive {
    /// Season length used.
    pub fn period(&self) -> usize {
        self.period
    }

    /// Forecasts `horizon` steps.
    pub fn predict(&self, horizon: usize) -> Prediction {
        let m = self.last.len().max(1);
        let point = (0..horizon)
            .map(|h| self.last.get(h % m).copied().unwrap_or(0.0))
            .collect();
        let sd = (0..horizon)
            .map(|h| (self.sigma2 * ((h / m) + 1) as f64).sqrt())
            .collect();
        Prediction { point, sd }
    }

    /// Absorbs one new observation (the season window slides).
    pub fn update(&mut self, y: f64) {
        if y.is_finite() && !self.last.is_empty() {
            self.last.remove(0);
            self.last.push(y);
        }
    }

    /// `SNaive[m]` or `Naive`.
    pub fn name(&self) -> String {
        if self.period > 1 {
            format!("SNaive[{}]", self.period)
        } else {
            "Naive".to_string()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_last_season_with_growing_intervals() {
        let y = [1.0, 2.0, 3.0, 2.0, 3.0, 4.0];
        let fit = SeasonalNaive::new(3).fit(&y).expect("fit");
        let p = fit.predict(5);
        assert_eq!(p.point, vec![2.0, 3.0, 4.0, 2.0, 3.0]);
        // Seasonal differences are all 1, so σ² = 1: sd 1 for a season, then √2.
        assert!((p.sd[0] - 1.0).abs() < 1e-12 && (p.sd[3] - 2f64.sqrt()).abs() < 1e-12);
        // Too short for the season: naive.
        let fit = SeasonalNaive::new(24).fit(&y).expect("fit");
        assert_eq!(fit.period(), 1);
        assert_eq!(fit.predict(2).point, vec![4.0, 4.0]);
        assert!(SeasonalNaive::new(0).fit(&y).is_err());
        assert!(SeasonalNaive::new(1).fit(&[]).is_err());
        let one = SeasonalNaive::new(1).fit(&[5.0]).expect("one point");
        assert_eq!(one.predict(1).sd, vec![0.0]);
    }
}
