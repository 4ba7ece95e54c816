//! Seasonal strength of an STL decomposition (Wang, Smith & Hyndman 2006), and the number of
//! seasonal differences it calls for.
//!
//! `F_s = max(0, 1 - Var(R) / Var(S + R))`. The automatic ARIMA procedure takes one seasonal
//! difference when `F_s > 0.64` (R's `nsdiffs(test = "seas")`, statsforecast's default). The
//! decomposition is the STL of augurs' MSTL crate (stlrs) with the settings of R's
//! `forecast::mstl` for one period: seasonal window 11 (`7 + 4·1`), locally constant seasonal
//! smoothing, no robustness iterations, and every point smoothed (jumps of 1). The inner loop
//! runs 5 times, as statsmodels' STL (which statsforecast calls) does without robustness; R's
//! `stl` stops after 2, which on strongly trending series leaves trend in the seasonal
//! component and understates the strength.

use augurs::mstl::stlrs;

use super::differencing::difference;

/// Seasonal strength above which one seasonal difference is taken (Hyndman's `seas.heuristic`).
pub const SEASONAL_STRENGTH_THRESHOLD: f64 = 0.64;

/// STL seasonal window for a single period in R's `forecast::mstl` (`7 + 4·1`).
const SEASONAL_WINDOW: usize = 11;

/// Inner STL iterations (statsmodels' non-robust default).
const INNER_LOOPS: usize = 5;

fn variance(x: impl Iterator<Item = f64> + Clone) -> f64 {
    let (n, sum) = x.clone().fold((0usize, 0.0), |(n, s), v| (n + 1, s + v));
    if n < 2 {
        return 0.0;
    }
    let mean = sum / n as f64;
    x.map(|v| (v - mean).powi(2)).sum::<f64>() / (n as f64 - 1.0)
}

/// Seasonal strength in [0, 1] of `x` at `period`, or `None` when the series is shorter than two
/// full periods (STL needs them) or the decomposition fails.
pub fn seasonal_strength(x: &[f64], period: usize) -> Option<f64> {
    if period < 2 || x.len() < 2 * period || x.iter().any(|v| !v.is_finite()) {
        return None;
    }
    let mut params = stlrs::params();
    params
        .seasonal_length(SEASONAL_WINDOW)
        .seasonal_degree(0)
        .seasonal_jump(1)
        .trend_jump(1)
        .low_pass_jump(1)
        .inner_loops(INNER_LOOPS)
        .outer_loops(0)
        .robust(false);
    let fit = params.fit(x, period).ok()?;
    let rem = fit.remainder();
    let seas = fit.seasonal();
    let var_r = variance(rem.iter().copied());
    let var_sr = variance(rem.iter().zip(seas).map(|(r, s)| r + s));
    if var_sr.is_nan() || var_sr <= 0.0 {
        return Some(0.0);
    }
    Some((1.0 - var_r / var_sr).clamp(0.0, 1.0))
}

/// Number of seasonal differences (0..=`max_d`) by the seasonal-strength heuristic.
pub fn nsdiffs(x: &[f64], period: usize, max_d: usize) -> usize {
    let constant = |x: &[f64]| x.iter().all(|v| *v == x[0]);
    if period < 2 || x.len() <= period || constant(x) {
        return 0;
    }
    let strong =
        |x: &[f64]| seasonal_strength(x, period).is_some_and(|s| s > SEASONAL_STRENGTH_THRESHOLD);
    let mut d = 0;
    let mut cur = x.to_vec();
    let mut dodiff = strong(&cur);
    while dodiff && d < max_d {
        d += 1;
        cur = difference(&cur, period, 1);
        if cur.is_empty() || constant(&cur) {
            return d;
        }
        dodiff = cur.len() >= 2 * period && d < max_d && strong(&cur);
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strong_and_weak_seasonality() {
        let seasonal: Vec<f64> = (0..240)
            .map(|t| 10.0 * (2.0 * std::f64::consts::PI * t as f64 / 12.0).sin() + 0.01 * t as f64)
            .collect();
        let s = seasonal_strength(&seasonal, 12).expect("long enough");
        assert!(s > 0.9, "{s}");
        assert_eq!(nsdiffs(&seasonal, 12, 1), 1);
        // White noise from a fixed xorshift generator has no seasonal pattern.
        let mut s = 0x9e37_79b9_7f4a_7c15_u64;
        let noise: Vec<f64> = (0..240)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s >> 11) as f64 / (1u64 << 53) as f64 - 0.5
            })
            .collect();
        let s = seasonal_strength(&noise, 12).expect("long enough");
        assert!(s < SEASONAL_STRENGTH_THRESHOLD, "{s}");
        assert_eq!(nsdiffs(&noise, 12, 1), 0);
        assert!(seasonal_strength(&noise[..20], 12).is_none());
    }
}
