//! A variable-metric (BFGS) minimiser with finite-difference gradients, and a finite-difference
//! Hessian for standard errors.
//!
//! Written here rather than taken from `argmin`: the objectives have at most ~15 parameters, a
//! hand-written BFGS is ~150 lines with no new dependency, and its semantics can follow the
//! optimiser the reference ARIMA implementations use (R's `optim(method = "BFGS")`: inverse-
//! Hessian updates, backtracking line search with a sufficient-decrease test, central
//! differences with step 1e-3, relative tolerance 1e-8, 100 iterations), so fits land where
//! theirs do. Objectives that know their gradient (CSS) supply it instead of the differences. Non-finite objective values are treated as "too far": the line search backs off,
//! which keeps the search inside the region where the likelihood is defined.

/// Options of [`bfgs`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct BfgsOptions {
    /// Maximum number of gradient evaluations (iterations).
    pub(crate) max_iter: usize,
    /// Stop when the objective improves by less than this relative amount.
    pub(crate) rel_tol: f64,
    /// Finite-difference step for the gradient.
    pub(crate) grad_step: f64,
}

impl Default for BfgsOptions {
    fn default() -> Self {
        // R's optim defaults for method "BFGS" (maxit 100, reltol ≈ 1.5e-8, ndeps 1e-3); the
        // reference ARIMA fits use these.
        Self {
            max_iter: 100,
            rel_tol: 1e-8,
            grad_step: 1e-3,
        }
    }
}

/// Result of a minimisation.
#[derive(Debug, Clone)]
pub(crate) struct Minimum {
    /// Location of the best point found.
    pub(crate) x: Vec<f64>,
    /// Objective there.
    pub(crate) f: f64,
    /// Whether the stopping rule was met (rather than the iteration limit).
    pub(crate) converged: bool,
}

/// Sufficient-decrease constant of the Armijo test (Nash's variable-metric method uses 1e-4).
const ACCEPT_TOL: f64 = 1e-4;
/// Step-length reduction factor when a trial step is rejected.
const STEP_SHRINK: f64 = 0.2;

/// Central-difference gradient; one-sided where a side is not finite.
fn gradient(f: &mut impl FnMut(&[f64]) -> f64, x: &[f64], fx: f64, h: f64, g: &mut [f64]) {
    let mut xt = x.to_vec();
    for i in 0..x.len() {
        xt[i] = x[i] + h;
        let fp = f(&xt);
        xt[i] = x[i] - h;
        let fm = f(&xt);
        xt[i] = x[i];
        g[i] = match (fp.is_finite(), fm.is_finite()) {
            (true, true) => (fp - fm) / (2.0 * h),
            (true, false) => (fp - fx) / h,
            (false, true) => (fx - fm) / h,
            // Both sides undefined: no information, so no movement along this axis.
            (false, false) => 0.0,
        };
    }
}

/// Minimises `f` from `x0` by BFGS with central-difference gradients.
pub(crate) fn bfgs(f: impl Fn(&[f64]) -> f64, x0: &[f64], opts: BfgsOptions) -> Minimum {
    let grad = |x: &[f64], fx: f64, g: &mut [f64]| {
        let mut ff = |x: &[f64]| f(x);
        gradient(&mut ff, x, fx, opts.grad_step, g)
    };
    minimize(&f, grad, x0, opts)
}

/// Minimises `f` from `x0` by BFGS with the exact gradient: `fg(x, None)` is the objective,
/// `fg(x, Some(g))` also writes the gradient.
pub(crate) fn bfgs_with_gradient(
    fg: impl Fn(&[f64], Option<&mut [f64]>) -> f64,
    x0: &[f64],
    opts: BfgsOptions,
) -> Minimum {
    let f = |x: &[f64]| fg(x, None);
    let grad = |x: &[f64], _fx: f64, g: &mut [f64]| {
        fg(x, Some(g));
    };
    minimize(f, grad, x0, opts)
}

fn minimize(
    f: impl Fn(&[f64]) -> f64,
    grad: impl Fn(&[f64], f64, &mut [f64]),
    x0: &[f64],
    opts: BfgsOptions,
) -> Minimum {
    let n = x0.len();
    let mut x = x0.to_vec();
    let mut fx = f(&x);
    if n == 0 || !fx.is_finite() {
        return Minimum {
            x,
            f: fx,
            converged: n == 0 && fx.is_finite(),
        };
    }
    let mut g = vec![0.0; n];
    grad(&x, fx, &mut g);
    let mut b = identity(n);
    let mut just_reset = true;
    let mut converged = false;
    let mut dir = vec![0.0; n];
    let mut xn = vec![0.0; n];
    let mut gn = vec![0.0; n];
    for _ in 0..opts.max_iter {
        for i in 0..n {
            dir[i] = -(0..n).map(|j| b[i * n + j] * g[j]).sum::<f64>();
        }
        let slope: f64 = dir.iter().zip(&g).map(|(d, gi)| d * gi).sum();
        let mut accepted = None;
        if slope < 0.0 {
            let mut t = 1.0;
            loop {
                let mut moved = false;
                for i in 0..n {
                    xn[i] = x[i] + t * dir[i];
                    moved |= xn[i] != x[i];
                }
                if !moved {
                    break;
                }
                let fnew = f(&xn);
                if fnew.is_finite() && fnew <= fx + ACCEPT_TOL * t * slope {
                    accepted = Some(fnew);
                    break;
                }
                t *= STEP_SHRINK;
            }
        }
        let Some(fnew) = accepted else {
            // No descent along the current metric: restart from steepest descent once, then stop.
            if just_reset {
                converged = true;
                break;
            }
            b = identity(n);
            just_reset = true;
            continue;
        };
        let small = (fx - fnew).abs() <= opts.rel_tol * (fx.abs() + opts.rel_tol);
        grad(&xn, fnew, &mut gn);
        let s: Vec<f64> = xn.iter().zip(&x).map(|(a, b)| a - b).collect();
        let y: Vec<f64> = gn.iter().zip(&g).map(|(a, b)| a - b).collect();
        let sy: f64 = s.iter().zip(&y).map(|(a, b)| a * b).sum();
        if sy > 0.0 {
            let by: Vec<f64> = (0..n)
                .map(|i| (0..n).map(|j| b[i * n + j] * y[j]).sum())
                .collect();
            let yby: f64 = y.iter().zip(&by).map(|(a, b)| a * b).sum();
            let c1 = (1.0 + yby / sy) / sy;
            for i in 0..n {
                for j in 0..n {
                    b[i * n + j] += c1 * s[i] * s[j] - (by[i] * s[j] + s[i] * by[j]) / sy;
                }
            }
            just_reset = false;
        } else {
            b = identity(n);
            just_reset = true;
        }
        x.copy_from_slice(&xn);
        g.copy_from_slice(&gn);
        fx = fnew;
        if small {
            converged = true;
            break;
        }
    }
    Minimum {
        x,
        f: fx,
        converged,
    }
}

fn identity(n: usize) -> Vec<f64> {
    let mut b = vec![0.0; n * n];
    for i in 0..n {
        b[i * n + i] = 1.0;
    }
    b
}

/// Finite-difference Hessian of `f` at `x` with per-coordinate steps `h` (row-major), or `None`
/// when the objective is not finite around `x`.
pub(crate) fn hessian(mut f: impl FnMut(&[f64]) -> f64, x: &[f64], h: &[f64]) -> Option<Vec<f64>> {
    let n = x.len();
    let f0 = f(x);
    if !f0.is_finite() {
        return None;
    }
    let mut out = vec![0.0; n * n];
    let mut xt = x.to_vec();
    let mut eval = |xt: &[f64]| {
        let v = f(xt);
        v.is_finite().then_some(v)
    };
    for i in 0..n {
        xt[i] = x[i] + h[i];
        let fp = eval(&xt)?;
        xt[i] = x[i] - h[i];
        let fm = eval(&xt)?;
        xt[i] = x[i];
        out[i * n + i] = (fp - 2.0 * f0 + fm) / (h[i] * h[i]);
        for j in 0..i {
            xt[i] = x[i] + h[i];
            xt[j] = x[j] + h[j];
            let fpp = eval(&xt)?;
            xt[j] = x[j] - h[j];
            let fpm = eval(&xt)?;
            xt[i] = x[i] - h[i];
            let fmm = eval(&xt)?;
            xt[j] = x[j] + h[j];
            let fmp = eval(&xt)?;
            xt[i] = x[i];
            xt[j] = x[j];
            let v = (fpp - fpm - fmp + fmm) / (4.0 * h[i] * h[j]);
            out[i * n + j] = v;
            out[j * n + i] = v;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimises_rosenbrock_and_quadratic() {
        let rosen = |x: &[f64]| (1.0 - x[0]).powi(2) + 100.0 * (x[1] - x[0] * x[0]).powi(2);
        let opts = BfgsOptions {
            max_iter: 500,
            rel_tol: 1e-12,
            grad_step: 1e-6,
        };
        let m = bfgs(rosen, &[-1.2, 1.0], opts);
        assert!(
            (m.x[0] - 1.0).abs() < 1e-3 && (m.x[1] - 1.0).abs() < 2e-3,
            "{m:?}"
        );
        let quad = |x: &[f64]| 3.0 * (x[0] - 2.0).powi(2) + (x[1] + 1.0).powi(2) + x[0] * x[1];
        let m = bfgs(quad, &[0.0, 0.0], BfgsOptions::default());
        // Stationary point of the quadratic: 6(x0-2) + x1 = 0, 2(x1+1) + x0 = 0.
        let (x0, x1) = (26.0 / 11.0, -24.0 / 11.0);
        assert!(
            (m.x[0] - x0).abs() < 1e-4 && (m.x[1] - x1).abs() < 1e-4,
            "{m:?}"
        );
    }

    #[test]
    fn backs_off_from_undefined_region() {
        // ln is undefined for x <= 0; the minimum of x - 2 ln x is at x = 2.
        let f = |x: &[f64]| {
            if x[0] > 0.0 {
                x[0] - 2.0 * x[0].ln()
            } else {
                f64::NAN
            }
        };
        let m = bfgs(f, &[0.1], BfgsOptions::default());
        assert!((m.x[0] - 2.0).abs() < 1e-3, "{m:?}");
    }

    #[test]
    fn hessian_of_quadratic() {
        let f = |x: &[f64]| 2.0 * x[0] * x[0] + x[0] * x[1] + 3.0 * x[1] * x[1];
        let h = hessian(f, &[0.3, -0.2], &[1e-3, 1e-3]).expect("finite");
        let want = [4.0, 1.0, 1.0, 6.0];
        for (a, b) in h.iter().zip(want) {
            assert!((a - b).abs() < 1e-6, "{h:?}");
        }
    }
}
