//! Conditional sum of squares (CSS) for ARMA models: the residual recursion started from zero
//! pre-sample innovations after the first `p + P·m` observations.
//!
//! CSS is an order of magnitude cheaper than the exact likelihood (no state covariance), so it
//! gives starting values for maximum likelihood and, for long or highly seasonal series, the
//! criterion of the order search (Hyndman & Khandakar 2008, following R's `arima(method="CSS")`).
//! As in [`super::kalman`], a single regressor is concentrated out in closed form: the
//! residuals are linear in the data, so its least-squares coefficient follows from two passes
//! of the same recursion.

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
        if self.s_xx > 0.0 {
            self.s_xy / self.s_xx
        } else {
            0.0
        }
    }

    /// Residual sum of squares at that coefficient.
    pub(crate) fn ssq(&self) -> f64 {
        if self.s_xx > 0.0 {
            (self.s_yy - self.s_xy * self.s_xy / self.s_xx).max(0.0)
        } else {
            self.s_yy
        }
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

/// Residuals `e_t = w_t - Σ φ_j w_{t-j} - Σ θ_j e_{t-j}` for `t ≥ ncond` (zero before).
pub(crate) fn residuals(w: &[f64], phi: &[f64], theta: &[f64], ncond: usize) -> Vec<f64> {
    let n = w.len();
    let mut e = vec![0.0; n];
    for t in ncond..n {
        let mut v = w[t];
        for (j, ph) in phi.iter().enumerate() {
            v -= ph * w[t - j - 1];
        }
        for (j, th) in theta.iter().enumerate().take(t - ncond) {
            v -= th * e[t - j - 1];
        }
        e[t] = v;
    }
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
    let e = residuals(w, phi, theta, ncond);
    let s_yy = e[ncond.min(e.len())..].iter().map(|v| v * v).sum();
    let nu = w.len().saturating_sub(ncond);
    let (s_xy, s_xx) = match wx {
        Some(wx) => {
            let ex = residuals(wx, phi, theta, ncond);
            let lo = ncond.min(e.len());
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
