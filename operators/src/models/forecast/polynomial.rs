//! Lag polynomials of ARIMA models: expanding the multiplicative seasonal form, testing where the
//! roots lie, and flipping non-invertible moving-average roots.
//!
//! Stationarity and invertibility are root conditions on `1 - Σ φ_i B^i` and `1 + Σ θ_i B^i`.
//! Whether every root lies outside a circle of radius ρ is answered without computing roots, by
//! the Schur–Cohn step-down recursion (reverse Durbin–Levinson) on the coefficients scaled by
//! ρ^i: cheaper and better conditioned than a root finder for the expanded seasonal polynomials
//! (degree up to ~50). Explicit roots are only needed to invert an MA polynomial, which has
//! degree ≤ 5 per factor, where Durand–Kerner iteration is plenty.

/// Expands `(1 - Σ φ_i B^i)(1 - Σ Φ_j B^{jm})` into `1 - Σ phi_k B^k` and returns `phi`
/// (length `p + P·m`, possibly with zeros).
pub(crate) fn expand_ar(phi: &[f64], seasonal_phi: &[f64], m: usize) -> Vec<f64> {
    let len = phi.len() + seasonal_phi.len() * m;
    let mut out = vec![0.0; len];
    out[..phi.len()].copy_from_slice(phi);
    for (j, &sp) in seasonal_phi.iter().enumerate() {
        let base = (j + 1) * m;
        out[base - 1] += sp;
        for (i, &p) in phi.iter().enumerate() {
            out[base + i] -= p * sp;
        }
    }
    out
}

/// Expands `(1 + Σ θ_i B^i)(1 + Σ Θ_j B^{jm})` into `1 + Σ theta_k B^k` and returns `theta`.
pub(crate) fn expand_ma(theta: &[f64], seasonal_theta: &[f64], m: usize) -> Vec<f64> {
    let len = theta.len() + seasonal_theta.len() * m;
    let mut out = vec![0.0; len];
    out[..theta.len()].copy_from_slice(theta);
    for (j, &st) in seasonal_theta.iter().enumerate() {
        let base = (j + 1) * m;
        out[base - 1] += st;
        for (i, &t) in theta.iter().enumerate() {
            out[base + i] += t * st;
        }
    }
    out
}

/// Whether every root of `1 - Σ c_i z^i` has modulus strictly greater than `radius`.
///
/// Step-down recursion: the reflection coefficients of a stable AR polynomial all have modulus
/// below one, and conversely (Schur–Cohn). Scaling `c_i` by `radius^i` moves the test circle.
pub(crate) fn roots_outside(c: &[f64], radius: f64) -> bool {
    let mut a: Vec<f64> = c
        .iter()
        .enumerate()
        .map(|(i, &v)| v * radius.powi(i as i32 + 1))
        .collect();
    // Trailing zeros are roots at infinity: drop them so the recursion starts at the true degree.
    while a.last().is_some_and(|v| v.abs() < 1e-12) {
        a.pop();
    }
    if a.iter().any(|v| !v.is_finite()) {
        return false;
    }
    let mut work = a.clone();
    for k in (0..a.len()).rev() {
        let kappa = a[k];
        if kappa.abs() >= 1.0 {
            return false;
        }
        let denom = 1.0 - kappa * kappa;
        for j in 0..k {
            work[j] = (a[j] + kappa * a[k - 1 - j]) / denom;
        }
        a[..k].copy_from_slice(&work[..k]);
    }
    true
}

/// Whether the AR polynomial `1 - Σ phi_i B^i` is stationary (all roots outside the unit circle).
pub(crate) fn ar_is_stationary(phi: &[f64]) -> bool {
    roots_outside(phi, 1.0)
}

/// A complex number, just enough arithmetic for polynomial roots.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Complex {
    re: f64,
    im: f64,
}

impl Complex {
    const fn new(re: f64, im: f64) -> Self {
        Self { re, im }
    }
    fn add(self, o: Self) -> Self {
        Self::new(self.re + o.re, self.im + o.im)
    }
    fn sub(self, o: Self) -> Self {
        Self::new(self.re - o.re, self.im - o.im)
    }
    fn mul(self, o: Self) -> Self {
        Self::new(
            self.re * o.re - self.im * o.im,
            self.re * o.im + self.im * o.re,
        )
    }
    fn div(self, o: Self) -> Self {
        let d = o.re * o.re + o.im * o.im;
        Self::new(
            (self.re * o.re + self.im * o.im) / d,
            (self.im * o.re - self.re * o.im) / d,
        )
    }
    fn norm(self) -> f64 {
        self.re.hypot(self.im)
    }
}

/// Roots of `Σ coef[i] z^i` (`coef[last] != 0`) by Durand–Kerner iteration.
fn poly_roots(coef: &[f64]) -> Vec<Complex> {
    let deg = coef.len() - 1;
    let lead = coef[deg];
    let monic: Vec<f64> = coef.iter().map(|c| c / lead).collect();
    let eval = |z: Complex| {
        let mut acc = Complex::new(0.0, 0.0);
        for &c in monic.iter().rev() {
            acc = acc.mul(z).add(Complex::new(c, 0.0));
        }
        acc
    };
    // Cauchy bound on the root moduli gives a sensible starting radius.
    let bound = 1.0 + monic[..deg].iter().fold(0.0f64, |a, c| a.max(c.abs()));
    // Starting points on a circle, rotated off the real axis so conjugate pairs separate.
    let mut z: Vec<Complex> = (0..deg)
        .map(|k| {
            let ang = 0.4 + 2.0 * std::f64::consts::PI * k as f64 / deg as f64;
            Complex::new(bound * 0.5 * ang.cos(), bound * 0.5 * ang.sin())
        })
        .collect();
    // 500 sweeps is far beyond what degree ≤ 10 needs (convergence is quadratic near roots).
    for _ in 0..500 {
        let mut moved = 0.0f64;
        for i in 0..deg {
            let mut denom = Complex::new(1.0, 0.0);
            for (j, zj) in z.iter().enumerate() {
                if j != i {
                    denom = denom.mul(z[i].sub(*zj));
                }
            }
            if denom.norm() == 0.0 {
                denom = Complex::new(1e-12, 0.0);
            }
            let step = eval(z[i]).div(denom);
            z[i] = z[i].sub(step);
            moved = moved.max(step.norm());
        }
        if moved < 1e-14 {
            break;
        }
    }
    z
}

/// Makes the MA polynomial `1 + Σ theta_i B^i` invertible by replacing each root inside the unit
/// circle with its reciprocal (the same autocovariances up to a rescaled innovation variance,
/// so the exact Gaussian likelihood is unchanged). Returns the input when already invertible.
pub(crate) fn invert_ma(theta: &[f64]) -> Vec<f64> {
    let q = theta.len();
    // Degree up to the last non-zero coefficient.
    let Some(q0) = theta.iter().rposition(|t| *t != 0.0) else {
        return theta.to_vec();
    };
    let deg = q0 + 1;
    let mut coef = Vec::with_capacity(deg + 1);
    coef.push(1.0);
    coef.extend_from_slice(&theta[..deg]);
    let roots = poly_roots(&coef);
    if roots.iter().all(|r| r.norm() >= 1.0) {
        return theta.to_vec();
    }
    if deg == 1 {
        let mut out = vec![0.0; q];
        out[0] = 1.0 / theta[0];
        return out;
    }
    // Rebuild Π (1 - z/r_k) from the flipped roots; the constant term stays 1.
    let mut poly = vec![Complex::new(1.0, 0.0)];
    for r in roots {
        let r = if r.norm() < 1.0 {
            Complex::new(1.0, 0.0).div(r)
        } else {
            r
        };
        let inv = Complex::new(1.0, 0.0).div(r);
        let mut next = vec![Complex::new(0.0, 0.0); poly.len() + 1];
        for (k, c) in poly.iter().enumerate() {
            next[k] = next[k].add(*c);
            next[k + 1] = next[k + 1].sub(c.mul(inv));
        }
        poly = next;
    }
    let mut out = vec![0.0; q];
    for (k, c) in poly.iter().skip(1).enumerate() {
        out[k] = c.re;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expand_seasonal_ar_matches_hand_product() {
        // (1 - 0.5B)(1 - 0.3B^4) = 1 - 0.5B - 0.3B^4 + 0.15B^5
        let phi = expand_ar(&[0.5], &[0.3], 4);
        let want = [0.5, 0.0, 0.0, 0.3, -0.15];
        for (a, b) in phi.iter().zip(want) {
            assert!((a - b).abs() < 1e-15, "{phi:?}");
        }
        // (1 + 0.4B)(1 + 0.2B^3) = 1 + 0.4B + 0.2B^3 + 0.08B^4
        let theta = expand_ma(&[0.4], &[0.2], 3);
        let want = [0.4, 0.0, 0.2, 0.08];
        for (a, b) in theta.iter().zip(want) {
            assert!((a - b).abs() < 1e-15, "{theta:?}");
        }
    }

    #[test]
    fn stationarity_region_of_ar2() {
        // AR(2) is stationary iff phi2 + phi1 < 1, phi2 - phi1 < 1, |phi2| < 1.
        assert!(ar_is_stationary(&[0.5, 0.3]));
        assert!(!ar_is_stationary(&[0.7, 0.4]));
        assert!(!ar_is_stationary(&[0.0, 1.0]));
        assert!(ar_is_stationary(&[-1.5, -0.6]));
        assert!(!ar_is_stationary(&[1.0]));
        assert!(ar_is_stationary(&[]));
        // Root at 1/0.995 = 1.005: outside the unit circle but inside radius 1.01.
        assert!(ar_is_stationary(&[0.995]));
        assert!(!roots_outside(&[0.995], 1.01));
    }

    #[test]
    fn invert_ma_flips_roots() {
        // 1 + 2B has its root at -0.5; the invertible twin is 1 + 0.5B.
        let t = invert_ma(&[2.0, 0.0]);
        assert!((t[0] - 0.5).abs() < 1e-12 && t[1] == 0.0, "{t:?}");
        // (1 + 2B)(1 + 0.5B) = 1 + 2.5B + B^2 -> (1 + 0.5B)^2 = 1 + B + 0.25B^2
        let t = invert_ma(&[2.5, 1.0]);
        assert!(
            (t[0] - 1.0).abs() < 1e-9 && (t[1] - 0.25).abs() < 1e-9,
            "{t:?}"
        );
        // Already invertible: unchanged.
        assert_eq!(invert_ma(&[0.3, -0.2]), vec![0.3, -0.2]);
    }
}
