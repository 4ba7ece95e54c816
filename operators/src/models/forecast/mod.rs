//! Forecasting models in plain Rust: seasonal ARIMA with automatic order selection
//! (Hyndman & Khandakar 2008), MSTL decomposition with an ETS trend (augurs), their
//! combination, and seasonal naive, with a per-series choice between them by a holdout check.
//!
//! Entry points: [`forecast`] takes a series and a [`ForecastConfig`] and returns a [`Forecast`]
//! (point forecasts and 80% / 95% intervals) for any series with a finite value;
//! [`fit_state`] returns the chosen model as a compact, serialisable [`ModelState`] that a
//! streaming operator keeps per series (forecast from it, feed it new observations).
//!
//! The model types underneath follow the augurs shape — an unfitted configuration with
//! documented defaults whose `fit` returns a fitted, serialisable model that predicts
//! (`predict(horizon)` gives means and standard deviations; [`Prediction::interval`] any level):
//!
//! * [`Arima`] → [`FittedArima`]: one ARIMA(p,d,q)(P,D,Q)m with constant/drift, exact likelihood.
//! * [`AutoArima`] → [`FittedArima`]: orders by KPSS / seasonal strength / stepwise AICc search.
//! * [`MstlEts`] → [`FittedMstlEts`]: MSTL seasonal components plus an AutoETS trend.
//! * [`SeasonalNaive`] → [`FittedSeasonalNaive`].
//!
//! Files: `arima` (model, fit, forecast), `kalman` (state space, exact likelihood, Kalman
//! forecast), `css` (conditional sum of squares and its gradient), `optimize` (BFGS, Hessian),
//! `transform` (stationary AR parametrisation), `polynomial` (lag polynomials, root tests),
//! `differencing`, `kpss`, `seasonal_strength`, `auto_arima` (order search), `ets_mstl`,
//! `naive`, `season_detect`, `select` (entry point and per-series choice), `state` (compact
//! state), `interval` (outputs), `linalg`.

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
pub use ets_mstl::{EtsKind, FittedMstlEts, MstlEts};
pub use interval::{normal_quantile, Forecast, Interval, Prediction};
pub use kpss::{kpss_statistic, ndiffs, KPSS_CRITICAL_5PCT};
pub use naive::{FittedSeasonalNaive, SeasonalNaive};
pub use season_detect::detect_seasons;
pub use seasonal_strength::{nsdiffs, seasonal_strength, SEASONAL_STRENGTH_THRESHOLD};
pub use select::{fit_state, forecast, ForecastConfig, ModelChoice};
pub use state::{ArimaState, DecompositionState, ModelState};
