//! Conditional sum of squares (CSS) for ARMA models: the residual recursion started from zero
//! pre-sample innovations after the first `p + P·m` observations.
//!
//! CSS is an order of magnitude cheaper than the exact likelihood (no state covariance), so it
//! gives starting values for maximum likelihood and, for long or highly seasonal series, the
//! criterion of the order search (Hyndman & Khandakar 2008, following R's `arima(method="CSS")`).
//! As in [`super::kalman`], a single regressor is concentrated out in closed form: the
//! residuals are linear in the data, so its least-squares coefficient follows from two passes
//! of the same recursion.

/// Coefficient of a single regressor from the cross sums of series and regressor residuals
/// (0 without a regressor). Shared by CSS and the Kalman filter's GLS.
pub(crate) fn regression_beta(s_xy: f64, s_xx: f64) -> f64 {
    if s_xx > 0.0 {
        s_xy / s_xx
    } else {
        0.0
    }
}

/// Residual sum of squares at [`regression_beta`]'s coefficient.
pub(crate) fn regression_ssq(s_yy: f64, s_xy: f64, s_xx: f64) -> f64 {
    if s_xx > 0.0 {
        (s_yy - s_xy * s_xy / s_xx).max(0.0)
    } else {
        s_yy
    }
}

/// Sums of one CSS pass.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CssSums {
    /// Σ e² of the series residuals.
    pub(crate) s_yy: f64,
    /// Σ e·e_x with the regressor residuals.
    pub(crate) s_xy: f64,
    /// Σ e_x².
    pub(crate) s_xx: f64,
    /// Number of residuals.
    pub(crate) nu: usize,
}

impl CssSums {
    /// Least-squares coefficient of the regressor (0 without one).
    pub(crate) fn beta(&self) -> f64 {
        regression_beta(self.s_xy, self.s_xx)
    }

    /// Residual sum of squares at that coefficient.
    pub(crate) fn ssq(&self) -> f64 {
        regression_ssq(self.s_yy, self.s_xy, self.s_xx)
    }

    /// CSS estimate of the innovation variance, ssq / n.
    pub(crate) fn sigma2(&self) -> f64 {
        if self.nu == 0 {
            f64::NAN
        } else {
            self.ssq() / self.nu as f64
        }
    }

    /// `0.5 ln σ̂²`, the objective R's `arima(method = "CSS")` minimises.
    pub(crate) fn objective(&self) -> f64 {
        let s2 = self.sigma2();
        if s2 > 0.0 {
            0.5 * s2.ln()
        } else if s2 == 0.0 {
            f64::NEG_INFINITY
        } else {
            f64::INFINITY
        }
    }
}

/// Non-zero coefficients as (lag, value): expanded seasonal polynomials are mostly zeros.
fn nonzero(c: &[f64]) -> Vec<(usize, f64)> {
    c.iter()
        .enumerate()
        .filter(|(_, v)| **v != 0.0)
        .map(|(j, v)| (j + 1, *v))
        .collect()
}

/// Writes `e_t = w_t - Σ φ_j w_{t-j} - Σ θ_j e_{t-j}` for `t ≥ ncond` into `e` (zero before;
/// pre-sample innovations are zero).
fn recurse(w: &[f64], ar: &[(usize, f64)], ma: &[(usize, f64)], ncond: usize, e: &mut [f64]) {
    let n = w.len();
    e[..ncond.min(n)].fill(0.0);
    let max_ma = ma.last().map_or(0, |&(lag, _)| lag);
    // While t - ncond < the largest MA lag some lags reach before ncond and must be skipped;
    // after that the loop runs without the check.
    let warm = (ncond + max_ma).min(n);
    for t in ncond..warm {
        let mut v = w[t];
        for &(lag, ph) in ar {
            v -= ph * w[t - lag];
        }
        for &(lag, th) in ma {
            if lag <= t - ncond {
                v -= th * e[t - lag];
            }
        }
        e[t] = v;
    }
    for t in warm.max(ncond)..n {
        let mut v = w[t];
        for &(lag, ph) in ar {
            v -= ph * w[t - lag];
        }
        for &(lag, th) in ma {
            v -= th * e[t - lag];
        }
        e[t] = v;
    }
}

/// Residuals `e_t = w_t - Σ φ_j w_{t-j} - Σ θ_j e_{t-j}` for `t ≥ ncond` (zero before).
pub(crate) fn residuals(w: &[f64], phi: &[f64], theta: &[f64], ncond: usize) -> Vec<f64> {
    let mut e = vec![0.0; w.len()];
    recurse(w, &nonzero(phi), &nonzero(theta), ncond, &mut e);
    e
}

/// One CSS pass over the differenced series `w` (and regressor `wx`); `ncond ≥ phi.len()`.
pub(crate) fn css(
    w: &[f64],
    wx: Option<&[f64]>,
    phi: &[f64],
    theta: &[f64],
    ncond: usize,
) -> CssSums {
    let ncond = ncond.max(phi.len());
    let n = w.len();
    let (ar, ma) = (nonzero(phi), nonzero(theta));
    let mut e = vec![0.0; n];
    recurse(w, &ar, &ma, ncond, &mut e);
    let lo = ncond.min(n);
    let s_yy = e[lo..].iter().map(|v| v * v).sum();
    let nu = n - lo;
    let (s_xy, s_xx) = match wx {
        Some(wx) => {
            let mut ex = vec![0.0; n];
            recurse(wx, &ar, &ma, ncond, &mut ex);
            (
                e[lo..].iter().zip(&ex[lo..]).map(|(a, b)| a * b).sum(),
                ex[lo..].iter().map(|v| v * v).sum(),
            )
        }
        None => (0.0, 0.0),
    };
    CssSums {
        s_yy,
        s_xy,
        s_xx,
        nu,
    }
}

/// The CSS objective `0.5 ln(ssq / n)` (regressor concentrated out) and, when `grad` is given,
/// its exact gradient in the coefficients `(φ, θ, Φ, Θ)` of the multiplicative seasonal model.
///
/// Differentiating the residual recursion gives, for each coefficient, a recursion of the same
/// shape driven by the lagged series (AR coefficients) or lagged residuals (MA coefficients):
/// `∂e_t = -Σ ∂φ*_l w_{t-l} - Σ ∂θ*_l e_{t-l} - Σ θ*_l ∂e_{t-l}`, where `φ*`, `θ*` are the expanded
/// polynomials. With the regressor concentrated out the envelope theorem lets the coefficient
/// stay at its optimum, and by linearity `e_y - β̂ e_x` is the recursion driven by
/// `w - β̂ w_x`. One gradient costs k + 2 recursions instead of the 2k + 1 objective evaluations
/// of central differences.
#[allow(clippy::too_many_arguments)]
pub(crate) fn objective_and_gradient(
    w: &[f64],
    wx: Option<&[f64]>,
    ar: &[f64],
    ma: &[f64],
    sar: &[f64],
    sma: &[f64],
    m: usize,
    grad: Option<&mut [f64]>,
) -> f64 {
    use super::polynomial::{expand_ar, expand_ma};
    let phi = expand_ar(ar, sar, m);
    let theta = expand_ma(ma, sma, m);
    let ncond = phi.len();
    let n = w.len();
    let (ar_nz, ma_nz) = (nonzero(&phi), nonzero(&theta));
    let mut e = vec![0.0; n];
    recurse(w, &ar_nz, &ma_nz, ncond, &mut e);
    let lo = ncond.min(n);
    let mut sums = CssSums {
        s_yy: e[lo..].iter().map(|v| v * v).sum(),
        s_xy: 0.0,
        s_xx: 0.0,
        nu: n - lo,
    };
    let mut ex = Vec::new();
    if let Some(wx) = wx {
        ex = vec![0.0; n];
        recurse(wx, &ar_nz, &ma_nz, ncond, &mut ex);
        sums.s_xy = e[lo..].iter().zip(&ex[lo..]).map(|(a, b)| a * b).sum();
        sums.s_xx = ex[lo..].iter().map(|v| v * v).sum();
    }
    let f = sums.objective();
    let Some(grad) = grad else {
        return f;
    };
    grad.fill(0.0);
    if !f.is_finite() || ncond >= n {
        return f;
    }
    // The residuals of w - β̂ w_x, by linearity.
    let beta = sums.beta();
    let wt: Vec<f64> = match wx {
        Some(wx) => {
            for (a, b) in e.iter_mut().zip(&ex) {
                *a -= beta * b;
            }
            w.iter().zip(wx).map(|(a, b)| a - beta * b).collect()
        }
        None => w.to_vec(),
    };
    let ssq = sums.ssq();
    if ssq.is_nan() || ssq <= 0.0 {
        return f;
    }
    // Inputs of each derivative recursion: (lag, coefficient) on the series (AR) or on the
    // residuals (MA), following the expansion of the seasonal product.
    let mut inputs: Vec<(bool, Vec<(usize, f64)>)> = Vec::with_capacity(grad.len());
    for i in 1..=ar.len() {
        let mut v = vec![(i, 1.0)];
        v.extend(sar.iter().enumerate().map(|(j, s)| (i + (j + 1) * m, -s)));
        inputs.push((false, v));
    }
    for i in 1..=ma.len() {
        let mut v = vec![(i, 1.0)];
        v.extend(sma.iter().enumerate().map(|(j, s)| (i + (j + 1) * m, *s)));
        inputs.push((true, v));
    }
    for j in 1..=sar.len() {
        let mut v = vec![(j * m, 1.0)];
        v.extend(ar.iter().enumerate().map(|(i, a)| (i + 1 + j * m, -a)));
        inputs.push((false, v));
    }
    for j in 1..=sma.len() {
        let mut v = vec![(j * m, 1.0)];
        v.extend(ma.iter().enumerate().map(|(i, a)| (i + 1 + j * m, *a)));
        inputs.push((true, v));
    }
    let mut d = vec![0.0; n];
    for (k, (on_resid, input)) in inputs.iter().enumerate() {
        let src: &[f64] = if *on_resid { &e } else { &wt };
        let mut acc = 0.0;
        for t in ncond..n {
            let mut v = 0.0;
            for &(lag, c) in input {
                if lag <= t {
                    v -= c * src[t - lag];
                }
            }
            for &(lag, th) in &ma_nz {
                if lag <= t - ncond {
                    v -= th * d[t - lag];
                }
            }
            d[t] = v;
            acc += e[t] * v;
        }
        grad[k] = acc / ssq;
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ma1_residual_recursion() {
        let w = [1.0, 2.0, 0.5, -1.0];
        let e = residuals(&w, &[], &[0.5], 0);
        // e0 = 1, e1 = 2 - 0.5, e2 = 0.5 - 0.75, e3 = -1 + 0.125
        let want = [1.0, 1.5, -0.25, -0.875];
        for (a, b) in e.iter().zip(want) {
            assert!((a - b).abs() < 1e-15);
        }
    }

    #[test]
    fn analytic_gradient_matches_finite_differences() {
        let w: Vec<f64> = (0..300)
            .map(|t| {
                ((t * 37 % 101) as f64 / 50.0 - 1.0) + (t as f64 * 0.3).sin() + 0.01 * t as f64
            })
            .collect();
        let wx: Vec<f64> = vec![1.0; 300];
        let (ar, ma, sar, sma) = (vec![0.3, -0.2], vec![0.25], vec![0.4], vec![-0.3]);
        let m = 7;
        let mut g = vec![0.0; 5];
        objective_and_gradient(&w, Some(&wx), &ar, &ma, &sar, &sma, m, Some(&mut g));
        let x0 = [ar[0], ar[1], ma[0], sar[0], sma[0]];
        let f = |x: &[f64]| {
            objective_and_gradient(
                &w,
                Some(&wx),
                &x[..2],
                &x[2..3],
                &x[3..4],
                &x[4..5],
                m,
                None,
            )
        };
        for k in 0..5 {
            let h = 1e-6;
            let (mut xp, mut xm) = (x0, x0);
            xp[k] += h;
            xm[k] -= h;
            let num = (f(&xp) - f(&xm)) / (2.0 * h);
            assert!(
                (num - g[k]).abs() < 1e-6 * num.abs().max(1e-3),
                "k={k}: {num} vs {}",
                g[k]
            );
        }
    }

    #[test]
    fn concentrated_mean_is_least_squares() {
        // White noise around a mean: the profiled coefficient is the sample mean.
        let w = [3.0, 5.0, 4.0, 6.0, 2.0];
        let ones = [1.0; 5];
        let s = css(&w, Some(&ones), &[], &[], 0);
        assert!((s.beta() - 4.0).abs() < 1e-12);
        assert!((s.ssq() - 10.0).abs() < 1e-12);
        assert_eq!(s.nu, 5);
    }
}
