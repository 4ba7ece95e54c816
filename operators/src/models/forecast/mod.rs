//! Forecasting models in plain Rust: seasonal ARIMA with automatic order selection
//! (Hyndman & Khandakar 2008), MSTL decomposition with an ETS trend (augurs), a seasonal-naive
//! fallback, and a per-series choice between them by a holdout check.
//!
//! Entry point: [`forecast`] takes a series and a [`ForecastConfig`] and always returns a
//! [`Forecast`] (point forecasts and 80% / 95% intervals) unless the input itself is unusable.
//! The model types underneath follow the augurs shape — an unfitted configuration whose `fit`
//! returns a fitted, serialisable model that predicts:
//!
//! * [`Arima`] → [`FittedArima`]: one ARIMA(p,d,q)(P,D,Q)m with constant/drift, exact likelihood.
//! * [`AutoArima`] → [`FittedArima`]: order selection by KPSS / seasonal strength / AICc search.
//! * [`MstlEts`] → [`FittedMstlEts`]: MSTL seasonal components plus an AutoETS trend.
//! * [`SeasonalNaive`] → [`FittedSeasonalNaive`].
//!
//! [`ModelState`] is the compact per-series state a streaming operator keeps.

mod arima;
mod auto_arima;
mod css;
mod differencing;
mod ets_mstl;
mod interval;
mod kalman;
mod kpss;
mod linalg;
mod naive;
mod optimize;
mod polynomial;
mod season_detect;
mod seasonal_strength;
mod select;
mod state;
mod transform;

pub use arima::{
    exact_log_likelihood, Arima, ArimaCoefficients, ArimaOrder, FitMethod, FittedArima,
};
pub use auto_arima::AutoArima;
pub use ets_mstl::{FittedMstlEts, MstlEts};
pub use interval::{normal_quantile, Forecast, Interval, Prediction};
pub use kpss::{kpss_statistic, ndiffs, KPSS_CRITICAL_5PCT};
pub use naive::{FittedSeasonalNaive, SeasonalNaive};
pub use season_detect::detect_seasons;
pub use seasonal_strength::{nsdiffs, seasonal_strength, SEASONAL_STRENGTH_THRESHOLD};
pub use select::{fit_state, forecast, ForecastConfig, ModelChoice};
pub use state::{ArimaState, DecompositionState, ModelState};
