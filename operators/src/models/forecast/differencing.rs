//! Ordinary and seasonal differencing, and the inverse used to turn forecasts of the differenced
//! series back into levels.
//!
//! The ARIMA models here difference the data before fitting (as the published exact-likelihood
//! methods do: the d + D·m first observations carry no information about the ARMA part), so
//! `(1 - B)^d (1 - B^m)^D y_t` is the series whose stationary ARMA likelihood is maximised.

/// Applies `(1 - B^lag)` `times` times. The result is `lag · times` shorter.
pub(crate) fn difference(x: &[f64], lag: usize, times: usize) -> Vec<f64> {
    let mut out = x.to_vec();
    for _ in 0..times {
        if out.len() <= lag {
            return Vec::new();
        }
        out = out.windows(lag + 1).map(|w| w[lag] - w[0]).collect();
    }
    out
}

/// Applies `(1 - B)^d (1 - B^m)^D`.
pub(crate) fn difference_full(x: &[f64], d: usize, seasonal_d: usize, m: usize) -> Vec<f64> {
    let s = if seasonal_d > 0 && m > 1 {
        difference(x, m, seasonal_d)
    } else {
        x.to_vec()
    };
    difference(&s, 1, d)
}

/// Coefficients `δ` with `y_t = w_t + Σ_i δ_i y_{t-i}` where `w = (1 - B)^d (1 - B^m)^D y`:
/// the expansion of `1 - (1 - B)^d (1 - B^m)^D`, length `d + D·m`.
pub(crate) fn integration_coefficients(d: usize, seasonal_d: usize, m: usize) -> Vec<f64> {
    let mut poly = vec![1.0];
    let mut mul = |factor: &[f64]| {
        let mut next = vec![0.0; poly.len() + factor.len() - 1];
        for (i, a) in poly.iter().enumerate() {
            for (j, b) in factor.iter().enumerate() {
                next[i + j] += a * b;
            }
        }
        poly = next;
    };
    for _ in 0..d {
        mul(&[1.0, -1.0]);
    }
    if m > 1 {
        let mut seasonal = vec![0.0; m + 1];
        seasonal[0] = 1.0;
        seasonal[m] = -1.0;
        for _ in 0..seasonal_d {
            mul(&seasonal);
        }
    }
    poly.iter().skip(1).map(|c| -c).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differencing_and_its_inverse_agree() {
        let y: Vec<f64> = (0..30)
            .map(|t| (t as f64 * 0.7).sin() * 5.0 + t as f64)
            .collect();
        let (d, sd, m) = (1, 1, 4);
        let w = difference_full(&y, d, sd, m);
        assert_eq!(w.len(), y.len() - d - sd * m);
        let delta = integration_coefficients(d, sd, m);
        assert_eq!(delta.len(), d + sd * m);
        // Rebuild every y_t from w_t and the previous levels.
        let k = delta.len();
        for t in k..y.len() {
            let rebuilt = w[t - k] + (0..k).map(|i| delta[i] * y[t - 1 - i]).sum::<f64>();
            assert!((rebuilt - y[t]).abs() < 1e-9, "t={t}");
        }
        assert_eq!(difference(&[1.0, 4.0, 9.0, 16.0], 1, 2), vec![2.0, 2.0]);
        assert!(difference(&[1.0], 1, 1).is_empty());
    }
}
