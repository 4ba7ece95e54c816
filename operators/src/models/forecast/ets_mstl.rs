//! The decomposition family: MSTL (Bandara, Hyndman & Bergmeir 2021) splits the series into one
//! seasonal component per period plus trend and remainder; an automatically chosen
//! non-seasonal ETS model (augurs' `AutoETS`, Hyndman et al. 2002/2008) forecasts the
//! seasonally adjusted series; the last cycle of each seasonal component is repeated.
//!
//! This is the computation of augurs' `MSTLModel` with an `AutoETS` trend model, done through the
//! same crates' public pieces (augurs-mstl's `stlrs`, augurs-ets) so the fitted parts can be
//! kept: the seasonal cycles and the trend forecast. augurs' fitted ETS model is not
//! serialisable, so the trend forecast (mean and standard deviation) is computed at fit time up
//! to [`MstlEts::max_horizon`] steps and stored. Intervals reflect the trend model's
//! uncertainty (the seasonal pattern is taken as known), as in augurs and statsforecast.
//!
//! Handles several periods at once (24 and 168 for hourly data), which a seasonal ARIMA cannot.

use std::panic::{catch_unwind, AssertUnwindSafe};

use augurs::ets::model::{ErrorComponent, ModelType, SeasonalComponent, TrendComponent, Unfit};
use augurs::ets::AutoETS;
use augurs::mstl::stlrs;
use augurs::{Fit, Predict};
use serde::{Deserialize, Serialize};

use super::interval::Prediction;
use crate::models::ModelError;

/// Two-sided 95% normal quantile Φ⁻¹(0.975), to turn augurs' interval back into a standard
/// deviation.
const Z95: f64 = 1.959_963_984_540_054;

/// A non-seasonal ETS model form: the components AutoETS chooses between.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EtsKind {
    /// Multiplicative (rather than additive) errors.
    pub multiplicative_error: bool,
    /// Additive trend (rather than none).
    pub trend: bool,
    /// Damped trend.
    pub damped: bool,
}

impl EtsKind {
    /// Label in the usual notation, e.g. `A,Ad,N`.
    pub(crate) fn label(&self) -> String {
        format!(
            "{},{}{},N",
            if self.multiplicative_error { 'M' } else { 'A' },
            if self.trend { "A" } else { "N" },
            if self.damped { "d" } else { "" }
        )
    }
}

/// MSTL + AutoETS configuration. `Default`: no periods (plain AutoETS), 2 MSTL iterations
/// (R's `mstl`), forecasts stored up to 1000 steps, ETS form chosen automatically.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MstlEts {
    /// Seasonal periods. Periods with fewer than two full cycles in the data are dropped at fit
    /// time (STL needs two).
    pub periods: Vec<usize>,
    /// MSTL iterations over the seasonal components.
    pub iterations: usize,
    /// Steps of trend forecast computed and stored at fit time; `predict` serves up to this.
    pub max_horizon: usize,
    /// Fixed ETS form for the trend model; `None` lets AutoETS choose by AICc among additive
    /// and multiplicative errors, no/additive/damped trend.
    pub ets: Option<EtsKind>,
}

impl Default for MstlEts {
    fn default() -> Self {
        Self {
            periods: Vec::new(),
            iterations: 2,
            max_horizon: 1000,
            ets: None,
        }
    }
}

/// A fitted MSTL + ETS model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FittedMstlEts {
    /// Periods actually decomposed.
    pub(crate) periods: Vec<usize>,
    /// Last cycle of each seasonal component (same order as `periods`), oldest first.
    pub(crate) seasonal_tail: Vec<Vec<f64>>,
    /// Trend forecast means, one per step up to the configured horizon.
    pub(crate) trend_point: Vec<f64>,
    /// Trend forecast standard deviations.
    pub(crate) trend_sd: Vec<f64>,
    /// The ETS form that was fitted.
    pub(crate) ets: EtsKind,
}

fn numerical(what: &str, e: impl std::fmt::Display) -> ModelError {
    ModelError::Numerical(format!("{what}: {e}"))
}

impl MstlEts {
    /// MSTL with the given seasonal periods and the other defaults.
    pub fn new(periods: Vec<usize>) -> Self {
        Self {
            periods,
            ..Self::default()
        }
    }

    /// Fits to `y`.
    ///
    /// # Errors
    /// Invalid configuration, non-finite input, a series too short for ETS, or a failure
    /// inside augurs (including a panic, which is caught and reported).
    pub fn fit(&self, y: &[f64]) -> Result<FittedMstlEts, ModelError> {
        if self.max_horizon == 0 {
            return Err(ModelError::InvalidParameter {
                name: "max_horizon",
                reason: "must be at least 1".into(),
            });
        }
        if self.iterations == 0 {
            return Err(ModelError::InvalidParameter {
                name: "iterations",
                reason: "must be at least 1".into(),
            });
        }
        if let Some(index) = y.iter().position(|v| !v.is_finite()) {
            return Err(ModelError::NonFinite { index });
        }
        // ETS with trend needs a handful of points beyond its 4 parameters.
        const MIN_POINTS: usize = 10;
        if y.len() < MIN_POINTS {
            return Err(ModelError::NotEnoughData {
                needed: MIN_POINTS,
                got: y.len(),
            });
        }
        let mut periods: Vec<usize> = self
            .periods
            .iter()
            .copied()
            .filter(|&p| p >= 2 && 2 * p <= y.len())
            .collect();
        periods.sort_unstable();
        periods.dedup();
        let (seasonal, adjusted) = if periods.is_empty() {
            (Vec::new(), y.to_vec())
        } else {
            let mut params = stlrs::MstlParams::new();
            params.iterations(self.iterations);
            let fit = catch_unwind(AssertUnwindSafe(|| params.fit(y, &periods)))
                .map_err(|_| ModelError::Numerical("MSTL panicked".into()))?
                .map_err(|e| numerical("MSTL", e))?;
            let adjusted: Vec<f64> = fit
                .trend()
                .iter()
                .zip(fit.remainder())
                .map(|(t, r)| t + r)
                .collect();
            (fit.seasonal().to_vec(), adjusted)
        };
        let h = self.max_horizon;
        let (model, fc) = catch_unwind(AssertUnwindSafe(|| {
            let model = match self.ets {
                None => AutoETS::non_seasonal().fit(&adjusted)?.model().clone(),
                // A fixed form is one model fit (AutoETS cannot search a no-trend-only space).
                Some(kind) => Unfit::new(ModelType {
                    error: if kind.multiplicative_error {
                        ErrorComponent::Multiplicative
                    } else {
                        ErrorComponent::Additive
                    },
                    trend: if kind.trend {
                        TrendComponent::Additive
                    } else {
                        TrendComponent::None
                    },
                    season: SeasonalComponent::None,
                })
                .damped(kind.trend && kind.damped)
                .fit(&adjusted)?,
            };
            let fc = model.predict(h, 0.95)?;
            let mt = model.model_type();
            let kind = EtsKind {
                multiplicative_error: mt.error == ErrorComponent::Multiplicative,
                trend: mt.trend != TrendComponent::None,
                damped: model.damped(),
            };
            Ok::<_, augurs::ets::Error>((kind, fc))
        }))
        .map_err(|_| ModelError::Numerical("AutoETS panicked".into()))?
        .map_err(|e| numerical("AutoETS", e))?;
        let intervals = fc
            .intervals
            .ok_or_else(|| ModelError::Numerical("AutoETS gave no intervals".into()))?;
        let trend_sd: Vec<f64> = intervals
            .upper
            .iter()
            .zip(&fc.point)
            .map(|(u, p)| ((u - p) / Z95).max(0.0))
            .collect();
        if fc.point.len() != h || !fc.point.iter().chain(&trend_sd).all(|v| v.is_finite()) {
            return Err(ModelError::Numerical(
                "AutoETS forecast is not finite".into(),
            ));
        }
        let seasonal_tail = periods
            .iter()
            .zip(&seasonal)
            .map(|(&p, comp)| comp[comp.len() - p..].to_vec())
            .collect();
        Ok(FittedMstlEts {
            periods,
            seasonal_tail,
            trend_point: fc.point,
            trend_sd,
            ets: model,
        })
    }
}

impl FittedMstlEts {
    /// Periods that were decomposed (possibly fewer than configured).
    pub fn periods(&self) -> &[usize] {
        &self.periods
    }

    /// Longest horizon `predict` serves.
    pub fn max_horizon(&self) -> usize {
        self.trend_point.len()
    }

    /// Forecasts `horizon` steps.
    ///
    /// # Errors
    /// `horizon` beyond [`FittedMstlEts::max_horizon`].
    pub fn predict(&self, horizon: usize) -> Result<Prediction, ModelError> {
        if horizon > self.trend_point.len() {
            return Err(ModelError::InvalidParameter {
                name: "horizon",
                reason: format!(
                    "at most {} (the fitted max_horizon)",
                    self.trend_point.len()
                ),
            });
        }
        let point = (0..horizon)
            .map(|h| {
                self.trend_point[h]
                    + self
                        .seasonal_tail
                        .iter()
                        .map(|tail| tail[h % tail.len()])
                        .sum::<f64>()
            })
            .collect();
        Ok(Prediction {
            point,
            sd: self.trend_sd[..horizon].to_vec(),
        })
    }

    /// The ETS form of the trend model.
    pub fn ets(&self) -> EtsKind {
        self.ets
    }

    /// `MSTL[24,168]+ETS(A,Ad,N)`, or `ETS(…)` without seasonal periods.
    pub fn name(&self) -> String {
        if self.periods.is_empty() {
            format!("ETS({})", self.ets.label())
        } else {
            let p: Vec<String> = self.periods.iter().map(|p| p.to_string()).collect();
            format!("MSTL[{}]+ETS({})", p.join(","), self.ets.label())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_seasonalities_are_carried_forward() {
        // Daily and weekly cycles on an hourly grid, with a slow trend.
        let y: Vec<f64> = (0..24 * 7 * 4)
            .map(|t| {
                let t = t as f64;
                100.0
                    + 0.05 * t
                    + 10.0 * (2.0 * std::f64::consts::PI * t / 24.0).sin()
                    + 5.0 * (2.0 * std::f64::consts::PI * t / 168.0).cos()
            })
            .collect();
        let fit = MstlEts {
            max_horizon: 48,
            ..MstlEts::new(vec![24, 168])
        }
        .fit(&y)
        .expect("fit");
        assert_eq!(fit.periods(), &[24, 168]);
        let p = fit.predict(48).expect("within max_horizon");
        for (h, v) in p.point.iter().enumerate() {
            let t = (y.len() + h) as f64;
            let truth = 100.0
                + 0.05 * t
                + 10.0 * (2.0 * std::f64::consts::PI * t / 24.0).sin()
                + 5.0 * (2.0 * std::f64::consts::PI * t / 168.0).cos();
            // STL's end effects leave the last seasonal cycles about 1% off on this input.
            assert!((v - truth).abs() < 2.0, "h={h}: {v} vs {truth}");
        }
        assert!(fit.predict(49).is_err());
        assert!(
            fit.name().starts_with("MSTL[24,168]+ETS("),
            "{}",
            fit.name()
        );
    }

    #[test]
    fn short_or_bad_input() {
        assert!(MstlEts::new(vec![24]).fit(&[1.0; 5]).is_err());
        assert!(MstlEts::new(vec![24]).fit(&[f64::NAN; 30]).is_err());
        // Too short for the period: plain ETS.
        let y: Vec<f64> = (0..30).map(|t| t as f64).collect();
        let fit = MstlEts::new(vec![24]).fit(&y).expect("ETS only");
        assert!(fit.periods().is_empty());
        assert!(fit.name().starts_with("ETS("));
        // A fixed form, including the no-trend one AutoETS cannot search alone, is one fit.
        let kind = EtsKind {
            multiplicative_error: false,
            trend: false,
            damped: false,
        };
        let fixed = MstlEts {
            ets: Some(kind),
            ..MstlEts::default()
        }
        .fit(&y)
        .expect("fixed form");
        assert_eq!(fixed.ets(), kind);
        assert_eq!(fixed.name(), "ETS(A,N,N)");
    }
}
