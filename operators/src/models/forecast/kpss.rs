//! The KPSS test of level stationarity (Kwiatkowski, Phillips, Schmidt & Shin 1992) and the
//! number of first differences it calls for.
//!
//! The automatic ARIMA procedure (Hyndman & Khandakar 2008) differences while the test rejects
//! level stationarity at 5%, up to twice. The long-run variance uses Bartlett weights with
//! `⌊3√n / 13⌋` lags — the truncation R's `forecast::ndiffs` and statsforecast use.

use super::differencing::difference;

/// KPSS level-stationarity critical values at 10%, 5%, 2.5% and 1% (KPSS 1992, Table 1, η_μ).
const CRITICAL: [(f64, f64); 4] = [(0.10, 0.347), (0.05, 0.463), (0.025, 0.574), (0.01, 0.739)];

/// The 5% critical value of the level-stationarity statistic.
pub const KPSS_CRITICAL_5PCT: f64 = 0.463;

/// The lag truncation `⌊3√n / 13⌋`.
fn lags_for(n: usize) -> usize {
    (3.0 * (n as f64).sqrt() / 13.0).floor() as usize
}

/// KPSS statistic for level stationarity with `lags` Bartlett lags (default `⌊3√n / 13⌋`).
/// Returns `None` for fewer than two observations, `lags ≥ n`, or a constant series.
pub fn kpss_statistic(x: &[f64], lags: Option<usize>) -> Option<f64> {
    let n = x.len();
    let lags = lags.unwrap_or_else(|| lags_for(n));
    if n < 2 || lags >= n {
        return None;
    }
    let nf = n as f64;
    let mean = x.iter().sum::<f64>() / nf;
    let e: Vec<f64> = x.iter().map(|v| v - mean).collect();
    let mut cum = 0.0;
    let mut eta = 0.0;
    for v in &e {
        cum += v;
        eta += cum * cum;
    }
    eta /= nf * nf;
    let mut s2: f64 = e.iter().map(|v| v * v).sum();
    for i in 1..=lags {
        let cov: f64 = e[i..].iter().zip(&e[..n - i]).map(|(a, b)| a * b).sum();
        s2 += 2.0 * (1.0 - i as f64 / (lags as f64 + 1.0)) * cov;
    }
    s2 /= nf;
    (s2 > 0.0).then_some(eta / s2)
}

/// Critical value at significance `alpha` (clamped to the tabulated 1%–10%), interpolating the
/// table linearly as statsmodels' p-values do.
fn critical_value(alpha: f64) -> f64 {
    let alpha = alpha.clamp(0.01, 0.10);
    for w in CRITICAL.windows(2) {
        let ((a0, c0), (a1, c1)) = (w[0], w[1]);
        if alpha <= a0 && alpha >= a1 {
            return c0 + (alpha - a0) / (a1 - a0) * (c1 - c0);
        }
    }
    KPSS_CRITICAL_5PCT
}

fn is_constant(x: &[f64]) -> bool {
    x.iter().all(|v| *v == x[0])
}

/// Number of first differences (0..=`max_d`) after which KPSS no longer rejects level
/// stationarity at `alpha`.
pub fn ndiffs(x: &[f64], alpha: f64, max_d: usize) -> usize {
    if x.is_empty() || is_constant(x) {
        return 0;
    }
    let crit = critical_value(alpha);
    let rejects = |x: &[f64]| kpss_statistic(x, None).is_some_and(|s| s > crit);
    let mut d = 0;
    let mut cur = x.to_vec();
    let mut dodiff = rejects(&cur);
    while dodiff && d < max_d {
        d += 1;
        cur = difference(&cur, 1, 1);
        if cur.is_empty() || is_constant(&cur) {
            return d;
        }
        dodiff = rejects(&cur);
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statistic_by_hand() {
        // n = 5, lags = 0: e = x - 3 = (-2,-1,0,1,2), partial sums (-2,-3,-3,-2,0),
        // eta = 26/25, s2 = 10/5 = 2, stat = 0.52.
        let s = kpss_statistic(&[1.0, 2.0, 3.0, 4.0, 5.0], Some(0)).expect("defined");
        assert!((s - 0.52).abs() < 1e-12);
        assert!(kpss_statistic(&[1.0; 10], None).is_none());
        assert!((critical_value(0.05) - 0.463).abs() < 1e-12);
        assert!((critical_value(0.075) - (0.347 + 0.463) / 2.0).abs() < 1e-12);
    }

    #[test]
    fn trend_needs_differencing_noise_does_not() {
        let trend: Vec<f64> = (0..200)
            .map(|t| t as f64 + ((t * 7919) % 13) as f64)
            .collect();
        assert!(ndiffs(&trend, 0.05, 2) >= 1);
        // White noise from a fixed xorshift generator is level stationary.
        let mut s = 0x2545_f491_4f6c_dd1d_u64;
        let noise: Vec<f64> = (0..200)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s >> 11) as f64 / (1u64 << 53) as f64 - 0.5
            })
            .collect();
        assert_eq!(ndiffs(&noise, 0.05, 2), 0);
        assert_eq!(ndiffs(&[2.0; 30], 0.05, 2), 0);
    }
}
