//! Automatic ARIMA order selection as Hyndman & Khandakar (2008) define it (R's
//! `forecast::auto.arima`, statsforecast's `AutoARIMA`).
//!
//! 1. Seasonal differences D ≤ 1 by the seasonal strength of an STL decomposition (> 0.64);
//!    ordinary differences d ≤ 2 by repeated KPSS tests at 5% on the seasonally differenced series.
//! 2. A stepwise search over (p, q, P, Q, constant) minimising AICc: start from (2,d,2)(1,D,1),
//!    (0,d,0)(0,D,0), (1,d,0)(1,D,0), (0,d,1)(0,D,1) and the null model without constant, then
//!    move to the first neighbour (±1 in P, Q, p, q, jointly in pairs, or the constant toggled)
//!    that improves, until none does or 94 models have been fitted.
//! 3. Fits whose AR or MA roots lie within 1.01 of the unit circle are rejected.
//! 4. For long series (n > 150) or long seasons (m > 12) the search ranks models by CSS with the
//!    published AIC offset (so CSS AICs are on the scale of exact ones), then refits the best
//!    candidates by exact maximum likelihood, in order, until one is acceptable.

use serde::{Deserialize, Serialize};

use super::arima::{Arima, ArimaCoefficients, ArimaOrder, FitMethod, FitOptions, FittedArima};
use super::differencing::difference;
use super::kpss::ndiffs;
use super::seasonal_strength::nsdiffs;
use crate::models::ModelError;

/// Roots closer to the unit circle than this are rejected (R: `minroot < 1 + 1e-2`).
pub(crate) const MIN_ROOT: f64 = 1.01;

/// Automatic ARIMA configuration. `Default` is the published method with a period of 1; use
/// [`AutoArima::new`] for seasonal data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AutoArima {
    /// Season length (1 = non-seasonal).
    pub period: usize,
    /// Largest non-seasonal AR order (default 5).
    pub max_p: usize,
    /// Largest non-seasonal MA order (default 5).
    pub max_q: usize,
    /// Largest seasonal AR order (default 2).
    pub max_seasonal_p: usize,
    /// Largest seasonal MA order (default 2).
    pub max_seasonal_q: usize,
    /// Largest p + q + P + Q in the exhaustive (non-stepwise) search (default 5).
    pub max_order: usize,
    /// Largest number of ordinary differences (default 2).
    pub max_d: usize,
    /// Largest number of seasonal differences (default 1).
    pub max_seasonal_d: usize,
    /// Fixed number of differences instead of the KPSS choice.
    pub d: Option<usize>,
    /// Fixed number of seasonal differences instead of the seasonal-strength choice.
    pub seasonal_d: Option<usize>,
    /// Significance level of the KPSS tests (default 0.05).
    pub kpss_alpha: f64,
    /// Stepwise search (default); `false` fits every model with p + q + P + Q ≤ `max_order`.
    pub stepwise: bool,
    /// Rank candidates by CSS and refit the winner by ML; `None` (default) applies the
    /// published rule: `n > 150 || period > 12`.
    pub approximation: Option<bool>,
    /// Allow a drift term when d + D = 1 (default true).
    pub allow_drift: bool,
    /// Allow a mean when d + D = 0 (default true).
    pub allow_mean: bool,
    /// Most models the stepwise search fits (default 94, as R).
    pub max_models: usize,
    /// Compute standard errors of the chosen model (default true).
    pub standard_errors: bool,
}

impl Default for AutoArima {
    fn default() -> Self {
        Self {
            period: 1,
            max_p: 5,
            max_q: 5,
            max_seasonal_p: 2,
            max_seasonal_q: 2,
            max_order: 5,
            max_d: 2,
            max_seasonal_d: 1,
            d: None,
            seasonal_d: None,
            kpss_alpha: 0.05,
            stepwise: true,
            approximation: None,
            allow_drift: true,
            allow_mean: true,
            max_models: 94,
            standard_errors: true,
        }
    }
}

/// One entry of the search table.
#[derive(Debug, Clone, Copy)]
struct Tried {
    p: usize,
    q: usize,
    sp: usize,
    sq: usize,
    constant: bool,
    ic: f64,
}

/// State shared by the candidate fits of one search.
struct Search<'a> {
    y: &'a [f64],
    d: usize,
    sd: usize,
    m: usize,
    approximation: bool,
    offset: f64,
    tried: Vec<Tried>,
}

impl Search<'_> {
    fn order(&self, p: usize, q: usize, sp: usize, sq: usize) -> ArimaOrder {
        ArimaOrder::new(p, self.d, q).seasonal(sp, self.sd, sq, if self.m > 1 { self.m } else { 1 })
    }

    fn is_new(&self, p: usize, q: usize, sp: usize, sq: usize, constant: bool) -> bool {
        !self
            .tried
            .iter()
            .any(|t| (t.p, t.q, t.sp, t.sq, t.constant) == (p, q, sp, sq, constant))
    }

    /// Fits one candidate and returns its information criterion (∞ when rejected).
    fn fit(
        &self,
        p: usize,
        q: usize,
        sp: usize,
        sq: usize,
        constant: bool,
        approximation: bool,
    ) -> (f64, Option<FittedArima>) {
        let order = self.order(p, q, sp, sq);
        let method = if approximation {
            FitMethod::Css
        } else {
            FitMethod::CssMl
        };
        let model = Arima {
            order,
            include_constant: constant,
            method,
            standard_errors: false,
        };
        let opts = FitOptions {
            standard_errors: false,
            forecast_state: !approximation,
        };
        let Ok(fit) = model.fit_with(self.y, opts) else {
            return (f64::INFINITY, None);
        };
        let nstar = fit.nobs() as f64;
        let npar = (order.n_arma() + usize::from(fit.has_constant()) + 1) as f64;
        let ic = if approximation {
            let s2 = fit.sigma2_fit();
            let aic = if s2 > 0.0 {
                self.offset + nstar * s2.ln() + 2.0 * npar
            } else {
                f64::NEG_INFINITY
            };
            if nstar - npar - 1.0 != 0.0 {
                aic + 2.0 * npar * (npar + 1.0) / (nstar - npar - 1.0)
            } else {
                f64::INFINITY
            }
        } else {
            fit.aicc()
        };
        let ic = if ic.is_nan() || !fit.roots_outside(MIN_ROOT) {
            f64::INFINITY
        } else {
            ic
        };
        (ic, Some(fit))
    }

    /// Fits a candidate, records it, and reports whether it beats `best`.
    fn try_model(
        &mut self,
        cand: (usize, usize, usize, usize, bool),
        best: &mut (f64, Option<FittedArima>),
    ) -> bool {
        let (p, q, sp, sq, constant) = cand;
        let (ic, fit) = self.fit(p, q, sp, sq, constant, self.approximation);
        self.tried.push(Tried {
            p,
            q,
            sp,
            sq,
            constant,
            ic,
        });
        if ic < best.0 {
            *best = (ic, fit);
            true
        } else {
            false
        }
    }
}

fn is_constant(x: &[f64]) -> bool {
    x.iter().all(|v| *v == x[0])
}

impl AutoArima {
    /// The published defaults for a season length of `period` (1 = non-seasonal).
    pub fn new(period: usize) -> Self {
        Self {
            period,
            ..Self::default()
        }
    }

    fn validate(&self) -> Result<(), ModelError> {
        let bad = |name: &'static str, reason: &str| {
            Err(ModelError::InvalidParameter {
                name,
                reason: reason.into(),
            })
        };
        if self.period == 0 {
            return bad("period", "must be at least 1");
        }
        if !(self.kpss_alpha > 0.0 && self.kpss_alpha < 1.0) {
            return bad("kpss_alpha", "must be in (0, 1)");
        }
        if self.d.is_some_and(|d| d > 2) || self.max_d > 2 {
            return bad("d", "at most 2 ordinary differences");
        }
        if self.seasonal_d.is_some_and(|d| d > 1) || self.max_seasonal_d > 1 {
            return bad("seasonal_d", "at most 1 seasonal difference");
        }
        Ok(())
    }

    /// Selects and fits a model for `y`.
    ///
    /// # Errors
    /// Invalid configuration, non-finite or empty input, or no acceptable model (every
    /// candidate failed or had roots on the unit circle).
    pub fn fit(&self, y: &[f64]) -> Result<FittedArima, ModelError> {
        self.validate()?;
        if let Some(index) = y.iter().position(|v| !v.is_finite()) {
            return Err(ModelError::NonFinite { index });
        }
        if y.len() < 3 {
            return Err(ModelError::NotEnoughData {
                needed: 3,
                got: y.len(),
            });
        }
        let n = y.len();
        if is_constant(y) {
            return FittedArima::fixed(
                y,
                ArimaOrder::new(0, 0, 0),
                ArimaCoefficients {
                    constant: Some(y[0]),
                    ..ArimaCoefficients::default()
                },
            );
        }
        let m = self.period;
        let mut max_p = self.max_p.min(n / 3);
        let mut max_q = self.max_q.min(n / 3);
        let (max_sp, max_sq) = if m > 1 {
            (
                self.max_seasonal_p.min(n / 3 / m),
                self.max_seasonal_q.min(n / 3 / m),
            )
        } else {
            (0, 0)
        };
        let sd = if m == 1 {
            0
        } else if let Some(sd) = self.seasonal_d {
            sd
        } else if n <= 2 * m {
            0
        } else {
            nsdiffs(y, m, self.max_seasonal_d)
        };
        let dx = if sd > 0 {
            difference(y, m, sd)
        } else {
            y.to_vec()
        };
        let d = self
            .d
            .unwrap_or_else(|| ndiffs(&dx, self.kpss_alpha, self.max_d));
        let dx = difference(&dx, 1, d);
        if dx.is_empty() {
            return Err(ModelError::NotEnoughData {
                needed: d + sd * m + 1,
                got: n,
            });
        }
        let period = if m > 1 { m } else { 1 };
        if is_constant(&dx) {
            // The differenced series is constant: a deterministic polynomial/seasonal pattern.
            let order = ArimaOrder::new(0, d, 0).seasonal(0, sd, 0, period);
            let constant = if d + sd == 1 {
                // Drift per step: a constant seasonal difference is m steps of drift.
                let per = if sd > 0 { m as f64 } else { 1.0 };
                Some(dx[0] / per)
            } else if d + sd == 0 {
                Some(dx[0])
            } else {
                None
            };
            return FittedArima::fixed(
                y,
                order,
                ArimaCoefficients {
                    constant,
                    ..ArimaCoefficients::default()
                },
            );
        }
        if m > 1 {
            if max_sp > 0 {
                max_p = max_p.min(m - 1);
            }
            if max_sq > 0 {
                max_q = max_q.min(m - 1);
            }
        }
        let approximation = self.approximation.unwrap_or(n > 150 || m > 12);
        let mut search = Search {
            y,
            d,
            sd,
            m,
            approximation,
            offset: 0.0,
            tried: Vec::new(),
        };
        if approximation {
            // AIC offset: -2 loglik - n ln σ̂² of the (0,d,0)(0,D,0) model fitted by ML, which
            // puts the CSS-based AICs on the scale of exact ones.
            let base = Arima {
                order: search.order(0, 0, 0, 0),
                include_constant: d + sd == 0,
                method: FitMethod::CssMl,
                standard_errors: false,
            };
            let opts = FitOptions {
                standard_errors: false,
                forecast_state: false,
            };
            search.offset = match base.fit_with(y, opts) {
                Ok(f) if f.sigma2_fit() > 0.0 => {
                    -2.0 * f.log_likelihood() - n as f64 * f.sigma2_fit().ln()
                }
                _ => 0.0,
            };
        }
        let allow_drift = self.allow_drift && d + sd == 1;
        let allow_mean = self.allow_mean && d + sd == 0;
        let constant = allow_drift || allow_mean;
        let limits = Limits {
            max_p,
            max_q,
            max_sp,
            max_sq,
            max_order: self.max_order,
            toggle_constant: constant,
        };
        let best = if self.stepwise {
            self.stepwise(&mut search, limits, constant, n)
        } else {
            exhaustive(&mut search, limits)
        };
        let mut best = best;
        if approximation {
            // Refit by exact ML, best CSS candidates first, until one is acceptable.
            let mut order: Vec<Tried> = search.tried.to_vec();
            order.sort_by(|a, b| a.ic.total_cmp(&b.ic));
            best = (f64::INFINITY, None);
            for t in order {
                let (ic, fit) = search.fit(t.p, t.q, t.sp, t.sq, t.constant, false);
                if ic < f64::INFINITY {
                    best = (ic, fit);
                    break;
                }
            }
        }
        match best {
            (ic, Some(mut fit)) if ic < f64::INFINITY => {
                if self.standard_errors {
                    fit.attach_standard_errors(y);
                }
                Ok(fit)
            }
            _ => Err(ModelError::Numerical(
                "no suitable ARIMA model found".into(),
            )),
        }
    }

    fn stepwise(
        &self,
        s: &mut Search<'_>,
        lim: Limits,
        mut constant: bool,
        n: usize,
    ) -> (f64, Option<FittedArima>) {
        let m = s.m;
        let (mut sp_start, mut sq_start) = (1usize, 1usize);
        let (mut p_start, mut q_start) = (2usize, 2usize);
        // Short series start small (statsforecast: fewer than 10 observations).
        if n < 10 {
            p_start = p_start.min(1);
            q_start = q_start.min(1);
            sp_start = 0;
            sq_start = 0;
        }
        let mut p = p_start.min(lim.max_p);
        let mut q = q_start.min(lim.max_q);
        let mut sp = sp_start.min(lim.max_sp);
        let mut sq = sq_start.min(lim.max_sq);
        let mut best: (f64, Option<FittedArima>) = (f64::INFINITY, None);
        s.try_model((p, q, sp, sq, constant), &mut best);
        if s.try_model((0, 0, 0, 0, constant), &mut best) {
            (p, q, sp, sq) = (0, 0, 0, 0);
        }
        if lim.max_p > 0 || lim.max_sp > 0 {
            let p1 = usize::from(lim.max_p > 0);
            let sp1 = usize::from(m > 1 && lim.max_sp > 0);
            if s.try_model((p1, 0, sp1, 0, constant), &mut best) {
                (p, q, sp, sq) = (p1, 0, sp1, 0);
            }
        }
        if lim.max_q > 0 || lim.max_sq > 0 {
            let q1 = usize::from(lim.max_q > 0);
            let sq1 = usize::from(m > 1 && lim.max_sq > 0);
            if s.try_model((0, q1, 0, sq1, constant), &mut best) {
                (p, q, sp, sq) = (0, q1, 0, sq1);
            }
        }
        if constant && s.try_model((0, 0, 0, 0, false), &mut best) {
            (p, q, sp, sq) = (0, 0, 0, 0);
            constant = false;
        }
        let mut startk = 0;
        while startk < s.tried.len() && s.tried.len() < self.max_models {
            startk = s.tried.len();
            // Neighbours in the published order; the first improvement restarts the scan.
            let (ip, iq, isp, isq) = (p as isize, q as isize, sp as isize, sq as isize);
            let moves: [(isize, isize, isize, isize); 16] = [
                (ip, iq, isp - 1, isq),
                (ip, iq, isp, isq - 1),
                (ip, iq, isp + 1, isq),
                (ip, iq, isp, isq + 1),
                (ip, iq, isp - 1, isq - 1),
                (ip, iq, isp - 1, isq + 1),
                (ip, iq, isp + 1, isq - 1),
                (ip, iq, isp + 1, isq + 1),
                (ip - 1, iq, isp, isq),
                (ip, iq - 1, isp, isq),
                (ip + 1, iq, isp, isq),
                (ip, iq + 1, isp, isq),
                (ip - 1, iq - 1, isp, isq),
                (ip - 1, iq + 1, isp, isq),
                (ip + 1, iq - 1, isp, isq),
                (ip + 1, iq + 1, isp, isq),
            ];
            let mut improved = false;
            for (np, nq, nsp, nsq) in moves {
                if s.tried.len() >= self.max_models {
                    break;
                }
                if np < 0 || nq < 0 || nsp < 0 || nsq < 0 {
                    continue;
                }
                let cand = (np as usize, nq as usize, nsp as usize, nsq as usize);
                if cand.0 > lim.max_p
                    || cand.1 > lim.max_q
                    || cand.2 > lim.max_sp
                    || cand.3 > lim.max_sq
                    || !s.is_new(cand.0, cand.1, cand.2, cand.3, constant)
                {
                    continue;
                }
                if s.try_model((cand.0, cand.1, cand.2, cand.3, constant), &mut best) {
                    (p, q, sp, sq) = cand;
                    improved = true;
                    break;
                }
            }
            if improved {
                continue;
            }
            if lim.toggle_constant
                && s.tried.len() < self.max_models
                && s.is_new(p, q, sp, sq, !constant)
                && s.try_model((p, q, sp, sq, !constant), &mut best)
            {
                constant = !constant;
            }
        }
        best
    }
}

/// Search bounds after the data-dependent reductions.
#[derive(Debug, Clone, Copy)]
struct Limits {
    max_p: usize,
    max_q: usize,
    max_sp: usize,
    max_sq: usize,
    max_order: usize,
    toggle_constant: bool,
}

/// Every model with p + q + P + Q ≤ `max_order` (R's `stepwise = FALSE`).
fn exhaustive(s: &mut Search<'_>, lim: Limits) -> (f64, Option<FittedArima>) {
    let mut best: (f64, Option<FittedArima>) = (f64::INFINITY, None);
    let constants: &[bool] = if lim.toggle_constant {
        &[true, false]
    } else {
        &[false]
    };
    for p in 0..=lim.max_p {
        for q in 0..=lim.max_q {
            for sp in 0..=lim.max_sp {
                for sq in 0..=lim.max_sq {
                    if p + q + sp + sq > lim.max_order {
                        continue;
                    }
                    for &c in constants {
                        s.try_model((p, q, sp, sq, c), &mut best);
                    }
                }
            }
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_and_deterministic_series() {
        let fit = AutoArima::default()
            .fit(&[4.0; 20])
            .expect("constant series");
        let p = fit.predict(3).expect("state");
        assert!(p.point.iter().all(|v| (v - 4.0).abs() < 1e-12));
        assert!(p.sd.iter().all(|v| *v == 0.0));
        // A straight line: one difference leaves a constant, so drift = slope.
        let line: Vec<f64> = (0..30).map(|t| 2.0 + 0.5 * t as f64).collect();
        let fit = AutoArima::default().fit(&line).expect("line");
        let p = fit.predict(2).expect("state");
        assert!((p.point[0] - (2.0 + 0.5 * 30.0)).abs() < 1e-9, "{p:?}");
    }

    #[test]
    fn rejects_bad_config_and_input() {
        let bad = AutoArima {
            kpss_alpha: 2.0,
            ..AutoArima::default()
        };
        assert!(bad.fit(&[1.0, 2.0, 3.0, 4.0]).is_err());
        assert!(AutoArima::default()
            .fit(&[1.0, f64::INFINITY, 2.0])
            .is_err());
        assert!(AutoArima::default().fit(&[1.0]).is_err());
    }
}
