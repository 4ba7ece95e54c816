//! Seasonal ARIMA(p,d,q)(P,D,Q)m with an optional constant (mean or drift): configuration,
//! fitting by CSS and exact maximum likelihood, and forecasting.
//!
//! The fit follows the published method as implemented by R's `arima` (and statsforecast's port):
//! the series is differenced, the mean (d + D = 0) or drift (d + D = 1) enters as a regressor on
//! the undifferenced scale, conditional sum of squares gives starting values, and the exact
//! Gaussian likelihood of the differenced series — Kalman filter from the stationary state
//! distribution (Gardner, Harvey & Phillips 1980) — is maximised by BFGS over the
//! partial-autocorrelation parametrisation of the AR factors (Jones 1980), so every trial point is
//! stationary. Non-invertible MA factors are flipped to their invertible twins afterwards (the
//! likelihood is the same). σ² and the regression coefficient are concentrated out of the
//! likelihood; standard errors come from a finite-difference Hessian of the full likelihood.

use serde::{Deserialize, Serialize};

use super::differencing::{difference_full, integration_coefficients};
use super::interval::Prediction;
use super::kalman::{self, ArmaStateSpace};
use super::optimize::{bfgs, bfgs_with_gradient, hessian, BfgsOptions};
use super::polynomial::{ar_is_stationary, expand_ar, expand_ma, invert_ma};
use super::transform::{ar_to_raw, raw_to_ar};
use super::{css, linalg};
use crate::models::ModelError;

/// Orders of a seasonal ARIMA model `(p, d, q)(P, D, Q)[period]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ArimaOrder {
    /// Non-seasonal AR order.
    pub p: usize,
    /// Non-seasonal differences.
    pub d: usize,
    /// Non-seasonal MA order.
    pub q: usize,
    /// Seasonal AR order.
    pub seasonal_p: usize,
    /// Seasonal differences.
    pub seasonal_d: usize,
    /// Seasonal MA order.
    pub seasonal_q: usize,
    /// Season length (1 = non-seasonal).
    pub period: usize,
}

impl ArimaOrder {
    /// Non-seasonal ARIMA(p, d, q).
    pub const fn new(p: usize, d: usize, q: usize) -> Self {
        Self {
            p,
            d,
            q,
            seasonal_p: 0,
            seasonal_d: 0,
            seasonal_q: 0,
            period: 1,
        }
    }

    /// Adds the seasonal part `(P, D, Q)[period]`.
    pub const fn seasonal(mut self, p: usize, d: usize, q: usize, period: usize) -> Self {
        self.seasonal_p = p;
        self.seasonal_d = d;
        self.seasonal_q = q;
        self.period = period;
        self
    }

    /// Whether any seasonal term is present.
    pub fn has_seasonal(&self) -> bool {
        self.period > 1 && self.seasonal_p + self.seasonal_d + self.seasonal_q > 0
    }

    /// Total differencing length `d + D·m` (observations lost to differencing).
    pub fn n_diff(&self) -> usize {
        self.d + self.seasonal_d * self.period
    }

    /// Number of ARMA coefficients `p + q + P + Q`.
    pub fn n_arma(&self) -> usize {
        self.p + self.q + self.seasonal_p + self.seasonal_q
    }

    fn validate(&self) -> Result<(), ModelError> {
        if self.period == 0 {
            return Err(ModelError::InvalidParameter {
                name: "period",
                reason: "must be at least 1".into(),
            });
        }
        if self.period == 1 && self.seasonal_p + self.seasonal_d + self.seasonal_q > 0 {
            return Err(ModelError::InvalidParameter {
                name: "period",
                reason: "seasonal terms need a period of at least 2".into(),
            });
        }
        // The PACF transform and the autocovariance solve are sized by the expanded AR order;
        // beyond a few hundred lags the exact likelihood is neither cheap nor well conditioned.
        if self.p + self.seasonal_p * self.period > 400
            || self.q + self.seasonal_q * self.period > 400
        {
            return Err(ModelError::InvalidParameter {
                name: "order",
                reason: "expanded AR or MA order above 400".into(),
            });
        }
        Ok(())
    }
}

impl std::fmt::Display for ArimaOrder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ARIMA({},{},{})", self.p, self.d, self.q)?;
        if self.has_seasonal() {
            write!(
                f,
                "({},{},{})[{}]",
                self.seasonal_p, self.seasonal_d, self.seasonal_q, self.period
            )?;
        }
        Ok(())
    }
}

/// How the parameters are estimated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum FitMethod {
    /// Conditional sum of squares only (fast; no exact likelihood, so no AIC).
    Css,
    /// CSS for starting values, then exact maximum likelihood (R's default).
    #[default]
    CssMl,
    /// Exact maximum likelihood from zero starting values.
    Ml,
}

/// Coefficients of an ARIMA model, in R's order: AR, MA, seasonal AR, seasonal MA, constant.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ArimaCoefficients {
    /// Non-seasonal AR coefficients φ (model `(1 - Σ φ_i B^i) …`).
    pub ar: Vec<f64>,
    /// Non-seasonal MA coefficients θ (model `… = (1 + Σ θ_i B^i) ε`).
    pub ma: Vec<f64>,
    /// Seasonal AR coefficients Φ.
    pub seasonal_ar: Vec<f64>,
    /// Seasonal MA coefficients Θ.
    pub seasonal_ma: Vec<f64>,
    /// The constant: the mean when `d + D = 0`, the drift per step when `d + D = 1`.
    pub constant: Option<f64>,
}

impl ArimaCoefficients {
    /// All coefficients as one vector in R's order (constant last, if present).
    pub fn to_vec(&self) -> Vec<f64> {
        let mut v = Vec::with_capacity(self.ar.len() + self.ma.len() + 5);
        v.extend_from_slice(&self.ar);
        v.extend_from_slice(&self.ma);
        v.extend_from_slice(&self.seasonal_ar);
        v.extend_from_slice(&self.seasonal_ma);
        v.extend(self.constant);
        v
    }

    fn expanded(&self, period: usize) -> (Vec<f64>, Vec<f64>) {
        (
            expand_ar(&self.ar, &self.seasonal_ar, period),
            expand_ma(&self.ma, &self.seasonal_ma, period),
        )
    }
}

/// An unfitted ARIMA model. `Default` is ARIMA(0,0,0) with a mean, fitted by CSS-ML with
/// standard errors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Arima {
    /// Model orders.
    pub order: ArimaOrder,
    /// Include a constant: a mean when `d + D = 0`, a drift when `d + D = 1`. Must be `false`
    /// when `d + D ≥ 2` (a constant would be a polynomial trend of degree ≥ 2).
    pub include_constant: bool,
    /// Estimation method.
    pub method: FitMethod,
    /// Compute standard errors from the Hessian (costs `O(k²)` likelihood evaluations).
    pub standard_errors: bool,
}

impl Default for Arima {
    fn default() -> Self {
        Self {
            order: ArimaOrder::new(0, 0, 0),
            include_constant: true,
            method: FitMethod::CssMl,
            standard_errors: true,
        }
    }
}

/// The regressor standing for the constant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum ConstantKind {
    /// No constant.
    None,
    /// Column of ones.
    Mean,
    /// Time index 1..n.
    Drift,
}

impl ConstantKind {
    fn of(order: &ArimaOrder, include: bool) -> Result<Self, ModelError> {
        match (include, order.d + order.seasonal_d) {
            (false, _) => Ok(Self::None),
            (true, 0) => Ok(Self::Mean),
            (true, 1) => Ok(Self::Drift),
            (true, _) => Err(ModelError::InvalidParameter {
                name: "include_constant",
                reason: "a constant needs d + D <= 1".into(),
            }),
        }
    }

    /// Value of the regressor at 0-based time `t`.
    pub(crate) fn value(self, t: usize) -> f64 {
        match self {
            Self::None => 0.0,
            Self::Mean => 1.0,
            Self::Drift => (t + 1) as f64,
        }
    }
}

/// Which extra work a fit does (the order search skips what it does not need).
#[derive(Debug, Clone, Copy)]
pub(crate) struct FitOptions {
    /// Compute Hessian standard errors.
    pub(crate) standard_errors: bool,
    /// Run the final filter that gives the forecast state.
    pub(crate) forecast_state: bool,
}

/// A fitted ARIMA model: coefficients, fit statistics and the filtered state needed to forecast.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FittedArima {
    pub(crate) order: ArimaOrder,
    pub(crate) constant: ConstantKind,
    pub(crate) method: FitMethod,
    pub(crate) coefficients: ArimaCoefficients,
    pub(crate) standard_errors: Option<Vec<f64>>,
    /// Innovation variance used for intervals: Σ e² / (n* - k + 1), as R's forecast package.
    pub(crate) sigma2: f64,
    /// The estimator's own σ²: ssq / n for ML, the CSS mean square for CSS.
    pub(crate) sigma2_fit: f64,
    pub(crate) loglik: f64,
    pub(crate) aic: f64,
    pub(crate) aicc: f64,
    pub(crate) bic: f64,
    /// Observations after differencing.
    pub(crate) nobs: usize,
    /// Length of the training series (the drift continues from here).
    pub(crate) n: usize,
    pub(crate) converged: bool,
    /// Last `d + D·m` values of the series minus the constant term, oldest first.
    pub(crate) tail: Vec<f64>,
    /// Predicted ARMA state for the first forecast step (empty if not computed).
    pub(crate) state: Vec<f64>,
    /// Its covariance, row-major, in units of σ².
    pub(crate) state_cov: Vec<f64>,
}

fn split_params(x: &[f64], o: &ArimaOrder) -> ArimaCoefficients {
    let (p, q, sp, sq) = (o.p, o.q, o.seasonal_p, o.seasonal_q);
    ArimaCoefficients {
        ar: x[..p].to_vec(),
        ma: x[p..p + q].to_vec(),
        seasonal_ar: x[p + q..p + q + sp].to_vec(),
        seasonal_ma: x[p + q + sp..p + q + sp + sq].to_vec(),
        constant: None,
    }
}

/// Maps raw optimiser coordinates to coefficients: AR factors through the PACF transform.
fn untransform(x: &[f64], o: &ArimaOrder) -> ArimaCoefficients {
    let mut c = split_params(x, o);
    c.ar = raw_to_ar(&c.ar);
    c.seasonal_ar = raw_to_ar(&c.seasonal_ar);
    c
}

fn check_finite(y: &[f64]) -> Result<(), ModelError> {
    match y.iter().position(|v| !v.is_finite()) {
        Some(index) => Err(ModelError::NonFinite { index }),
        None => Ok(()),
    }
}

/// Data prepared for fitting: the differenced series and differenced regressor.
struct Prepared {
    w: Vec<f64>,
    wx: Option<Vec<f64>>,
    constant: ConstantKind,
}

fn prepare(y: &[f64], order: &ArimaOrder, constant: ConstantKind) -> Prepared {
    let w = difference_full(y, order.d, order.seasonal_d, order.period);
    let wx = (constant != ConstantKind::None).then(|| {
        let x: Vec<f64> = (0..y.len()).map(|t| constant.value(t)).collect();
        difference_full(&x, order.d, order.seasonal_d, order.period)
    });
    Prepared { w, wx, constant }
}

/// A series made ready for the Kalman filter under fully given coefficients: what both a fixed
/// model and the exact likelihood of given coefficients start from.
struct GivenCoefficients {
    constant: ConstantKind,
    /// The series minus the constant's contribution.
    u: Vec<f64>,
    /// `u` differenced by the orders.
    w: Vec<f64>,
    /// The ARMA part in state-space form.
    ss: ArmaStateSpace,
}

impl GivenCoefficients {
    /// Checks the orders, the data and the coefficient counts, then removes the constant and
    /// differences.
    fn prepare(
        y: &[f64],
        order: &ArimaOrder,
        c: &ArimaCoefficients,
    ) -> Result<GivenCoefficients, ModelError> {
        order.validate()?;
        check_finite(y)?;
        if c.ar.len() != order.p
            || c.ma.len() != order.q
            || c.seasonal_ar.len() != order.seasonal_p
            || c.seasonal_ma.len() != order.seasonal_q
        {
            return Err(ModelError::InvalidParameter {
                name: "coefficients",
                reason: "lengths do not match the orders".into(),
            });
        }
        let constant = ConstantKind::of(order, c.constant.is_some())?;
        if y.len() <= order.n_diff() {
            return Err(ModelError::NotEnoughData {
                needed: order.n_diff() + 1,
                got: y.len(),
            });
        }
        let beta = c.constant.unwrap_or(0.0);
        let u: Vec<f64> = y
            .iter()
            .enumerate()
            .map(|(t, v)| v - beta * constant.value(t))
            .collect();
        let w = difference_full(&u, order.d, order.seasonal_d, order.period);
        let (phi, theta) = c.expanded(order.period);
        Ok(GivenCoefficients {
            constant,
            u,
            w,
            ss: ArmaStateSpace::new(&phi, &theta),
        })
    }
}

impl Arima {
    /// A model of the given orders with the default options (constant included when allowed).
    pub fn new(order: ArimaOrder) -> Self {
        Self {
            order,
            include_constant: order.d + order.seasonal_d <= 1,
            ..Self::default()
        }
    }

    /// Sets whether a constant (mean or drift) is included.
    pub fn with_constant(mut self, include: bool) -> Self {
        self.include_constant = include;
        self
    }

    /// Sets the estimation method.
    pub fn with_method(mut self, method: FitMethod) -> Self {
        self.method = method;
        self
    }

    /// Sets whether standard errors are computed.
    pub fn with_standard_errors(mut self, on: bool) -> Self {
        self.standard_errors = on;
        self
    }

    /// Fits the model to `y`.
    ///
    /// # Errors
    /// Invalid orders, non-finite input, too few observations, or a fit that fails numerically
    /// (e.g. a non-stationary CSS start, as in R).
    pub fn fit(&self, y: &[f64]) -> Result<FittedArima, ModelError> {
        self.fit_with(
            y,
            FitOptions {
                standard_errors: self.standard_errors,
                forecast_state: true,
            },
        )
    }

    pub(crate) fn fit_with(&self, y: &[f64], opts: FitOptions) -> Result<FittedArima, ModelError> {
        let o = self.order;
        o.validate()?;
        check_finite(y)?;
        let constant = ConstantKind::of(&o, self.include_constant)?;
        let k_arma = o.n_arma();
        let ncond = o.p + o.seasonal_p * o.period;
        let n_coef = k_arma + usize::from(constant != ConstantKind::None);
        let needed = o.n_diff() + ncond + n_coef + 2;
        if y.len() < needed {
            return Err(ModelError::NotEnoughData {
                needed,
                got: y.len(),
            });
        }
        let prep = prepare(y, &o, constant);
        let nobs = prep.w.len();
        let wx = prep.wx.as_deref();

        let css_objective = |x: &[f64], g: Option<&mut [f64]>| {
            let c = split_params(x, &o);
            css::objective_and_gradient(
                &prep.w,
                wx,
                &c.ar,
                &c.ma,
                &c.seasonal_ar,
                &c.seasonal_ma,
                o.period,
                g,
            )
        };
        let bopts = BfgsOptions::default();
        let mut coefs;
        let converged;
        let mut beta;
        let (sigma2_fit, loglik);
        match self.method {
            FitMethod::Css => {
                let m = bfgs_with_gradient(css_objective, &vec![0.0; k_arma], bopts);
                coefs = split_params(&m.x, &o);
                let (phi, theta) = coefs.expanded(o.period);
                let s = css::css(&prep.w, wx, &phi, &theta, ncond);
                beta = s.beta();
                sigma2_fit = s.sigma2();
                converged = m.converged;
                // R's definition: -2 loglik = 2 n f + n + n ln 2π with f the CSS objective.
                let nf = nobs as f64;
                loglik =
                    -0.5 * (2.0 * nf * s.objective() + nf + nf * (2.0 * std::f64::consts::PI).ln());
            }
            FitMethod::CssMl | FitMethod::Ml => {
                let mut init = vec![0.0; k_arma];
                if self.method == FitMethod::CssMl && k_arma > 0 {
                    let m = bfgs_with_gradient(css_objective, &init, bopts);
                    if m.converged {
                        init = m.x;
                    }
                    let c = split_params(&init, &o);
                    if !ar_is_stationary(&c.ar) {
                        return Err(ModelError::Numerical(
                            "non-stationary AR part from CSS".into(),
                        ));
                    }
                    if !ar_is_stationary(&c.seasonal_ar) {
                        return Err(ModelError::Numerical(
                            "non-stationary seasonal AR part from CSS".into(),
                        ));
                    }
                }
                // Move the start into the optimiser's coordinates.
                let mut c = split_params(&init, &o);
                c.ar = ar_to_raw(&c.ar);
                c.seasonal_ar = ar_to_raw(&c.seasonal_ar);
                c.ma = invert_ma(&c.ma);
                c.seasonal_ma = invert_ma(&c.seasonal_ma);
                let x0: Vec<f64> = c.to_vec();
                let ml_objective = |x: &[f64]| {
                    let c = untransform(x, &o);
                    let (phi, theta) = c.expanded(o.period);
                    let ss = ArmaStateSpace::new(&phi, &theta);
                    match kalman::likelihood(&ss, &prep.w, wx) {
                        Some(sums) => sums.objective(),
                        None => f64::INFINITY,
                    }
                };
                let m = bfgs(ml_objective, &x0, bopts);
                if !m.f.is_finite() {
                    return Err(ModelError::Numerical(
                        "exact likelihood is not finite at the start".into(),
                    ));
                }
                converged = m.converged;
                coefs = untransform(&m.x, &o);
                coefs.ma = invert_ma(&coefs.ma);
                coefs.seasonal_ma = invert_ma(&coefs.seasonal_ma);
                let (phi, theta) = coefs.expanded(o.period);
                let ss = ArmaStateSpace::new(&phi, &theta);
                let sums = kalman::likelihood(&ss, &prep.w, wx).ok_or_else(|| {
                    ModelError::Numerical("Kalman filter failed at the optimum".into())
                })?;
                beta = sums.beta();
                sigma2_fit = sums.ssq() / sums.nu as f64;
                loglik = sums.loglik();
            }
        }
        if constant == ConstantKind::None {
            beta = 0.0;
        } else {
            coefs.constant = Some(beta);
        }
        let (phi, theta) = coefs.expanded(o.period);

        // Residuals of the series with the constant removed, and the state for forecasting.
        let u: Vec<f64> = y
            .iter()
            .enumerate()
            .map(|(t, v)| v - beta * prep.constant.value(t))
            .collect();
        let wu: Vec<f64> = match wx {
            Some(wx) => prep.w.iter().zip(wx).map(|(w, x)| w - beta * x).collect(),
            None => prep.w.clone(),
        };
        let ss = ArmaStateSpace::new(&phi, &theta);
        let mut resid_ssq = f64::NAN;
        let (mut state, mut state_cov) = (Vec::new(), Vec::new());
        if opts.forecast_state {
            match kalman::filter(&ss, &wu, None) {
                Some(st) => {
                    resid_ssq = st.sums.s_yy;
                    state = st.a;
                    state_cov = st.p;
                }
                None => {
                    // Non-stationary (CSS) fit: condition on the CSS residuals instead.
                    let e = css::residuals(&wu, &phi, &theta, ncond);
                    resid_ssq = e[ncond.min(e.len())..].iter().map(|v| v * v).sum();
                    let (a, p) = kalman::conditional_state(&ss, &wu, &e);
                    state = a;
                    state_cov = p;
                }
            }
        }
        let n_params = n_coef + 1;
        let nstar = nobs as f64;
        let kf = n_params as f64;
        let (aic, aicc, bic) = if self.method == FitMethod::Css {
            (f64::NAN, f64::NAN, f64::NAN)
        } else {
            let aic = -2.0 * loglik + 2.0 * kf;
            let aicc = if nstar - kf - 1.0 > 0.0 {
                aic + 2.0 * kf * (kf + 1.0) / (nstar - kf - 1.0)
            } else {
                f64::INFINITY
            };
            (aic, aicc, aic + kf * (nstar.ln() - 2.0))
        };
        // σ² for intervals: the residual sum of squares over n* - k + 1 (R's forecast::Arima).
        let sigma2 = if resid_ssq.is_finite() && nstar - kf + 1.0 > 0.0 {
            resid_ssq / (nstar - kf + 1.0)
        } else {
            sigma2_fit
        };
        let tail = u[u.len() - o.n_diff()..].to_vec();
        let mut fitted = FittedArima {
            order: o,
            constant: prep.constant,
            method: self.method,
            coefficients: coefs,
            standard_errors: None,
            sigma2,
            sigma2_fit,
            loglik,
            aic,
            aicc,
            bic,
            nobs,
            n: y.len(),
            converged,
            tail,
            state,
            state_cov,
        };
        if opts.standard_errors && self.method != FitMethod::Css {
            fitted.standard_errors = Some(fitted.hessian_standard_errors(&prep));
        }
        Ok(fitted)
    }
}

impl FittedArima {
    /// A model with all coefficients given (nothing estimated but σ²): the degenerate fits of
    /// the order search (a series that is constant after differencing) and restored states.
    pub(crate) fn fixed(
        y: &[f64],
        order: ArimaOrder,
        coefficients: ArimaCoefficients,
    ) -> Result<FittedArima, ModelError> {
        let GivenCoefficients { constant, u, w, ss } =
            GivenCoefficients::prepare(y, &order, &coefficients)?;
        let st = kalman::filter(&ss, &w, None)
            .ok_or_else(|| ModelError::Numerical("AR part is not stationary".into()))?;
        let nobs = w.len();
        let ssq = st.sums.s_yy;
        let sigma2_fit = ssq / nobs as f64;
        // Only σ² is free (R's npar = 1 for a fully fixed model).
        let sigma2 = ssq / nobs as f64;
        let loglik = st.sums.loglik();
        let (aic, aicc, bic) = if loglik.is_finite() {
            let aic = -2.0 * loglik + 2.0;
            let nf = nobs as f64;
            (
                aic,
                aic + 4.0 / (nf - 2.0).max(f64::MIN_POSITIVE),
                aic + nf.ln() - 2.0,
            )
        } else {
            (f64::NAN, f64::NAN, f64::NAN)
        };
        Ok(FittedArima {
            order,
            constant,
            method: FitMethod::CssMl,
            coefficients,
            standard_errors: None,
            sigma2,
            sigma2_fit,
            loglik,
            aic,
            aicc,
            bic,
            nobs,
            n: y.len(),
            converged: true,
            tail: u[u.len() - order.n_diff()..].to_vec(),
            state: st.a,
            state_cov: st.p,
        })
    }

    /// Computes and stores standard errors (for fits made without them).
    pub(crate) fn attach_standard_errors(&mut self, y: &[f64]) {
        if self.method == FitMethod::Css || y.len() != self.n {
            return;
        }
        let prep = prepare(y, &self.order, self.constant);
        self.standard_errors = Some(self.hessian_standard_errors(&prep));
    }

    /// Standard errors from the finite-difference Hessian of the exact likelihood in all
    /// coefficients (constant included), as R's `arima` reports them.
    fn hessian_standard_errors(&self, prep: &Prepared) -> Vec<f64> {
        let o = self.order;
        let c = &self.coefficients;
        let x0 = c.to_vec();
        let k = x0.len();
        let k_arma = o.n_arma();
        let wx = prep.wx.as_deref();
        // Steps: 1e-3 for ARMA coefficients (R's ndeps); for the constant, 1e-2 of its OLS
        // standard error (R's parscale of 10·se times ndeps 1e-3).
        let mut steps = vec![1e-3; k];
        if let Some(wx) = wx {
            let sxx: f64 = wx.iter().map(|v| v * v).sum();
            let b = prep.w.iter().zip(wx).map(|(a, b)| a * b).sum::<f64>() / sxx;
            let rss: f64 = prep
                .w
                .iter()
                .zip(wx)
                .map(|(a, x)| (a - b * x).powi(2))
                .sum();
            let se = (rss / (prep.w.len().saturating_sub(1).max(1) as f64) / sxx).sqrt();
            steps[k - 1] = if se.is_finite() && se > 0.0 {
                1e-2 * se
            } else {
                1e-3
            };
        }
        let objective = |x: &[f64]| {
            let mut cc = split_params(&x[..k_arma], &o);
            cc.constant = None;
            let (phi, theta) = cc.expanded(o.period);
            let beta = if k > k_arma { x[k - 1] } else { 0.0 };
            let w: Vec<f64> = match wx {
                Some(wx) => prep.w.iter().zip(wx).map(|(w, x)| w - beta * x).collect(),
                None => prep.w.clone(),
            };
            let ss = ArmaStateSpace::new(&phi, &theta);
            match kalman::likelihood(&ss, &w, None) {
                Some(sums) => sums.objective(),
                None => f64::INFINITY,
            }
        };
        let nan = vec![f64::NAN; k];
        let Some(h) = hessian(objective, &x0, &steps) else {
            return nan;
        };
        let scaled: Vec<f64> = h.iter().map(|v| v * self.nobs as f64).collect();
        match linalg::invert(&scaled, k) {
            Some(inv) => (0..k)
                .map(|i| {
                    let v = inv[i * k + i];
                    if v > 0.0 {
                        v.sqrt()
                    } else {
                        f64::NAN
                    }
                })
                .collect(),
            None => nan,
        }
    }

    /// Model orders.
    pub fn order(&self) -> ArimaOrder {
        self.order
    }

    /// Estimated coefficients.
    pub fn coefficients(&self) -> &ArimaCoefficients {
        &self.coefficients
    }

    /// Standard errors in the order of [`ArimaCoefficients::to_vec`] (NaN where the Hessian is
    /// not positive definite), if computed.
    pub fn standard_errors(&self) -> Option<&[f64]> {
        self.standard_errors.as_deref()
    }

    /// Innovation variance used for prediction intervals (Σ e² / (n* - k + 1)).
    pub fn sigma2(&self) -> f64 {
        self.sigma2
    }

    /// The estimator's σ²: ssq / n* for ML, the CSS mean square for CSS.
    pub fn sigma2_fit(&self) -> f64 {
        self.sigma2_fit
    }

    /// Exact log-likelihood at the estimate (for CSS fits, R's CSS pseudo-likelihood).
    pub fn log_likelihood(&self) -> f64 {
        self.loglik
    }

    /// Akaike's information criterion (NaN for CSS fits).
    pub fn aic(&self) -> f64 {
        self.aic
    }

    /// AIC with the small-sample correction (NaN for CSS fits).
    pub fn aicc(&self) -> f64 {
        self.aicc
    }

    /// Bayesian information criterion (NaN for CSS fits).
    pub fn bic(&self) -> f64 {
        self.bic
    }

    /// Observations used after differencing.
    pub fn nobs(&self) -> usize {
        self.nobs
    }

    /// Whether the optimiser met its convergence rule.
    pub fn converged(&self) -> bool {
        self.converged
    }

    /// Whether a constant (mean or drift) is in the model.
    pub fn has_constant(&self) -> bool {
        self.constant != ConstantKind::None
    }

    /// `ARIMA(p,d,q)(P,D,Q)[m]`, with ` with drift` / ` with non-zero mean` when a constant is in.
    pub fn name(&self) -> String {
        let suffix = match self.constant {
            ConstantKind::None => "",
            ConstantKind::Mean => " with non-zero mean",
            ConstantKind::Drift => " with drift",
        };
        format!("{}{}", self.order, suffix)
    }

    /// Whether every root of the AR and MA polynomials lies outside radius `radius`
    /// (the order search rejects fits with roots within 1.01).
    pub fn roots_outside(&self, radius: f64) -> bool {
        use super::polynomial::roots_outside;
        let (phi, theta) = self.coefficients.expanded(self.order.period);
        let neg: Vec<f64> = theta.iter().map(|t| -t).collect();
        roots_outside(&phi, radius) && roots_outside(&neg, radius)
    }

    /// Forecasts `horizon` steps ahead with their standard deviations.
    ///
    /// # Errors
    /// When the model was fitted without a forecast state (internal search fits).
    pub fn predict(&self, horizon: usize) -> Result<Prediction, ModelError> {
        if self.state.is_empty() {
            return Err(ModelError::Numerical(
                "model was fitted without a forecast state".into(),
            ));
        }
        let o = self.order;
        let (phi, theta) = self.coefficients.expanded(o.period);
        let ss = ArmaStateSpace::new(&phi, &theta);
        let delta = integration_coefficients(o.d, o.seasonal_d, o.period);
        // 1e-9 in units of σ²: far below what the intervals resolve.
        let (mean, var) = if kalman::is_steady(&ss, &self.state_cov, 1e-9) {
            kalman::forecast_steady(&ss, &self.state, &delta, &self.tail, horizon)
        } else {
            kalman::forecast(
                &ss,
                &self.state,
                &self.state_cov,
                &delta,
                &self.tail,
                horizon,
            )
        };
        let beta = self.coefficients.constant.unwrap_or(0.0);
        let point = mean
            .iter()
            .enumerate()
            .map(|(j, m)| m + beta * self.constant.value(self.n + j))
            .collect();
        let sd = var.iter().map(|v| (v * self.sigma2).sqrt()).collect();
        Ok(Prediction { point, sd })
    }
}

/// Exact Gaussian log-likelihood of `y` under an ARIMA model with the given coefficients: the
/// likelihood of the differenced series from the stationary state distribution. With
/// `sigma2 = None` the innovation variance is concentrated out (σ̂² = ssq / n*).
///
/// # Errors
/// Invalid orders, coefficient counts that do not match the orders, non-finite input, or a
/// non-stationary AR part.
pub fn exact_log_likelihood(
    y: &[f64],
    order: ArimaOrder,
    coefficients: &ArimaCoefficients,
    sigma2: Option<f64>,
) -> Result<f64, ModelError> {
    let given = GivenCoefficients::prepare(y, &order, coefficients)?;
    let sums = kalman::likelihood(&given.ss, &given.w, None)
        .ok_or_else(|| ModelError::Numerical("AR part is not stationary".into()))?;
    let nu = sums.nu as f64;
    Ok(match sigma2 {
        None => sums.loglik(),
        Some(s2) => {
            -0.5 * (nu * (2.0 * std::f64::consts::PI * s2).ln() + sums.sumlog + sums.s_yy / s2)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    use rand_distr_free::normal;

    /// Box–Muller normals without pulling in rand_distr.
    mod rand_distr_free {
        use rand::Rng;
        pub(super) fn normal(rng: &mut impl Rng) -> f64 {
            let u1: f64 = rng.random::<f64>().max(1e-300);
            let u2: f64 = rng.random();
            (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
        }
    }

    fn simulate_arma(phi: &[f64], theta: &[f64], n: usize, seed: u64) -> Vec<f64> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let burn = 200;
        let mut x = vec![0.0; n + burn];
        let mut e = vec![0.0; n + burn];
        for t in 0..n + burn {
            e[t] = normal(&mut rng);
            let mut v = e[t];
            for (j, p) in phi.iter().enumerate() {
                if t > j {
                    v += p * x[t - j - 1];
                }
            }
            for (j, th) in theta.iter().enumerate() {
                if t > j {
                    v += th * e[t - j - 1];
                }
            }
            x[t] = v;
        }
        x[burn..].to_vec()
    }

    #[test]
    fn recovers_arma11() {
        let y = simulate_arma(&[0.6], &[0.3], 2000, 7);
        let fit = Arima::new(ArimaOrder::new(1, 0, 1))
            .fit(&y)
            .expect("fit succeeds");
        let c = fit.coefficients();
        assert!((c.ar[0] - 0.6).abs() < 0.06, "{c:?}");
        assert!((c.ma[0] - 0.3).abs() < 0.07, "{c:?}");
        assert!(c.constant.is_some_and(|m| m.abs() < 0.3));
        let se = fit.standard_errors().expect("requested");
        // Asymptotic se of φ in ARMA(1,1) at n = 2000 is about 0.025.
        assert!(se[0] > 0.01 && se[0] < 0.06, "{se:?}");
        assert!((fit.sigma2() - 1.0).abs() < 0.1);
        let pred = fit.predict(10).expect("state present");
        assert_eq!(pred.len(), 10);
        // Forecast error variance grows towards the process variance.
        assert!(pred.sd.windows(2).all(|w| w[1] >= w[0] - 1e-12));
    }

    #[test]
    fn random_walk_with_drift_forecasts_linearly() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut y = vec![10.0];
        for _ in 0..299 {
            let last = y[y.len() - 1];
            y.push(last + 0.5 + normal(&mut rng));
        }
        let fit = Arima::new(ArimaOrder::new(0, 1, 0)).fit(&y).expect("fit");
        let drift = fit.coefficients().constant.expect("drift");
        assert!((drift - 0.5).abs() < 0.2, "{drift}");
        let pred = fit.predict(5).expect("state");
        let last = y[y.len() - 1];
        for (h, p) in pred.point.iter().enumerate() {
            assert!((p - (last + drift * (h + 1) as f64)).abs() < 1e-8);
        }
        // Random walk: Var(h) = h σ².
        for (h, s) in pred.sd.iter().enumerate() {
            assert!((s * s - (h + 1) as f64 * fit.sigma2()).abs() < 1e-8);
        }
    }

    #[test]
    fn rejects_bad_input() {
        let y = vec![1.0, f64::NAN, 3.0];
        assert!(matches!(
            Arima::new(ArimaOrder::new(1, 0, 0)).fit(&y),
            Err(ModelError::NonFinite { index: 1 })
        ));
        assert!(matches!(
            Arima::new(ArimaOrder::new(1, 0, 0)).fit(&[1.0, 2.0]),
            Err(ModelError::NotEnoughData { .. })
        ));
        let bad = Arima::new(ArimaOrder::new(0, 2, 0)).with_constant(true);
        assert!(bad.fit(&[1.0; 50]).is_err());
        let bad = Arima::new(ArimaOrder::new(0, 0, 0).seasonal(1, 0, 0, 1));
        assert!(bad.fit(&[1.0; 50]).is_err());
    }
}
