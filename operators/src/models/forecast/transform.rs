//! The unconstrained parametrisation of stationary AR polynomials used while maximising the
//! likelihood (Jones 1980; the scheme of R's `arima(transform.pars = TRUE)`).
//!
//! Each raw value is mapped by `tanh` to a partial autocorrelation in (-1, 1), and the
//! Durbin–Levinson recursion turns the partial autocorrelations into AR coefficients. Every raw
//! vector therefore gives a stationary polynomial, so the optimiser can move freely. The
//! non-seasonal and the seasonal AR factors are transformed separately.

/// Largest partial autocorrelation produced by the inverse map. `atanh(1)` is infinite; values at
/// the boundary (a CSS start on the unit circle) are pulled just inside so the optimiser starts
/// from a finite point.
const MAX_PACF: f64 = 0.999_999;

/// Raw (unconstrained) values → stationary AR coefficients.
pub(crate) fn raw_to_ar(raw: &[f64]) -> Vec<f64> {
    let p = raw.len();
    let mut coef: Vec<f64> = raw.iter().map(|r| r.tanh()).collect();
    let mut work = coef.clone();
    for j in 1..p {
        let kappa = coef[j];
        for k in 0..j {
            work[k] -= kappa * coef[j - k - 1];
        }
        coef[..j].copy_from_slice(&work[..j]);
    }
    coef
}

/// Stationary AR coefficients → raw values; the inverse of [`raw_to_ar`].
///
/// Partial autocorrelations at or beyond ±1 (a non-stationary input) are clamped to
/// ±[`MAX_PACF`].
pub(crate) fn ar_to_raw(ar: &[f64]) -> Vec<f64> {
    let p = ar.len();
    let mut coef = ar.to_vec();
    let mut work = coef.clone();
    for j in (1..p).rev() {
        let kappa = coef[j].clamp(-MAX_PACF, MAX_PACF);
        let denom = 1.0 - kappa * kappa;
        for k in 0..j {
            work[k] = (coef[k] + kappa * coef[j - k - 1]) / denom;
        }
        coef[..j].copy_from_slice(&work[..j]);
    }
    coef.iter()
        .map(|c| c.clamp(-MAX_PACF, MAX_PACF).atanh())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::forecast::polynomial::ar_is_stationary;

    #[test]
    fn round_trip_and_stationary_image() {
        let ar = [0.6, -0.2, 0.1];
        let raw = ar_to_raw(&ar);
        let back = raw_to_ar(&raw);
        for (a, b) in ar.iter().zip(&back) {
            assert!((a - b).abs() < 1e-12, "{back:?}");
        }
        // Arbitrary raw vectors, even huge ones, map into the stationary region.
        for raw in [[3.0, -2.0, 1.5], [-0.3, 0.9, 2.2], [10.0, 10.0, -10.0]] {
            let ar = raw_to_ar(&raw);
            assert!(ar.iter().all(|v| v.is_finite()));
            // tanh(10) rounds to 1 - 4e-9; allow the step-down test to sit on the boundary.
            if raw.iter().all(|r| r.abs() < 5.0) {
                assert!(ar_is_stationary(&ar), "{ar:?}");
            }
        }
        // AR(1): the coefficient is the partial autocorrelation itself.
        assert!((raw_to_ar(&[0.5f64.atanh()])[0] - 0.5).abs() < 1e-15);
    }
}
