//! Season detection when none is configured: peaks of a Welch periodogram (augurs-seasons),
//! confirmed by the seasonal strength the model choice itself relies on.
//!
//! 1. Periodograms of the linearly detrended series and of its first differences: a trend leaks
//!    power into the lowest frequencies, differencing removes any trend but damps long cycles
//!    (a weekly cycle in hourly data loses a factor ~50 against the daily one), so candidates
//!    come from both and the strength test below sorts them out.
//! 2. Peaks with at least a fifth of the strongest peak's power are candidates (augurs' own
//!    default keeps only those within 90%, which drops a weekly cycle next to a daily one).
//! 3. The periodogram's frequency grid is coarse (a pure 24-step cycle can come out as 25), so
//!    each candidate is moved to the lag within ±10% where the autocorrelation of the differences
//!    is highest.
//! 4. A candidate is kept when the data hold three full cycles and the STL seasonal strength at
//!    that period exceeds 0.64 — the threshold above which the ARIMA procedure takes a seasonal
//!    difference. Harmonics fail this test (a 12-step "season" of a daily cycle has no stable
//!    pattern), so they do not crowd out the fundamental.
//!
//! Strongest first.

use augurs::seasons::PeriodogramDetector;

use super::seasonal_strength::{seasonal_strength, SEASONAL_STRENGTH_THRESHOLD};

/// Fraction of the strongest peak's power a peak needs to be a candidate.
const CANDIDATE_POWER: f64 = 0.2;

/// Up to `max_count` seasonal periods of `y`, strongest first (empty when there is no clear
/// season, the series is too short, or it holds non-finite values).
pub fn detect_seasons(y: &[f64], max_count: usize) -> Vec<usize> {
    // Fewer than ~16 points gives a periodogram with too few frequencies to have peaks.
    if y.len() < 16 || y.iter().any(|v| !v.is_finite()) {
        return Vec::new();
    }
    let dy: Vec<f64> = y.windows(2).map(|w| w[1] - w[0]).collect();
    let detector = PeriodogramDetector::builder().build();
    let mut candidates: Vec<usize> = Vec::new();
    for x in [detrend(y), dy.clone()] {
        candidates.extend(
            detector
                .periodogram(&x)
                .peaks(CANDIDATE_POWER)
                .map(|p| refine(&dy, p.period as usize))
                .filter(|&p| p >= 2 && 3 * p <= y.len()),
        );
    }
    candidates.sort_unstable();
    candidates.dedup();
    let mut scored: Vec<(f64, usize)> = candidates
        .into_iter()
        .filter_map(|p| seasonal_strength(y, p).map(|s| (s, p)))
        .filter(|(s, _)| *s > SEASONAL_STRENGTH_THRESHOLD)
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    scored.into_iter().take(max_count).map(|(_, p)| p).collect()
}

/// `y` minus its least-squares line.
fn detrend(y: &[f64]) -> Vec<f64> {
    let n = y.len() as f64;
    let tm = (n - 1.0) / 2.0;
    let ym = y.iter().sum::<f64>() / n;
    let (mut sxy, mut sxx) = (0.0, 0.0);
    for (t, v) in y.iter().enumerate() {
        let dt = t as f64 - tm;
        sxy += dt * (v - ym);
        sxx += dt * dt;
    }
    let b = if sxx > 0.0 { sxy / sxx } else { 0.0 };
    y.iter()
        .enumerate()
        .map(|(t, v)| v - ym - b * (t as f64 - tm))
        .collect()
}

/// The lag near `p` (±10%, at least ±1) with the highest autocorrelation of `x`.
fn refine(x: &[f64], p: usize) -> usize {
    let n = x.len();
    let mean = x.iter().sum::<f64>() / n.max(1) as f64;
    let var: f64 = x.iter().map(|v| (v - mean).powi(2)).sum();
    if var <= 0.0 {
        return p;
    }
    let acf = |k: usize| {
        x[k..]
            .iter()
            .zip(x)
            .map(|(a, b)| (a - mean) * (b - mean))
            .sum::<f64>()
            / var
    };
    let span = (p / 10).max(1);
    let lo = p.saturating_sub(span).max(2);
    let hi = (p + span).min(n.saturating_sub(1) / 2);
    if lo > hi {
        return p;
    }
    (lo..=hi)
        .map(|k| (acf(k), k))
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map_or(p, |(_, k)| k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_daily_and_weekly_cycles_not_trends() {
        let wave = |t: usize, p: f64| (2.0 * std::f64::consts::PI * t as f64 / p).sin();
        let hourly: Vec<f64> = (0..24 * 7 * 5)
            .map(|t| 0.05 * t as f64 + 10.0 * wave(t, 24.0) + 4.0 * wave(t, 168.0))
            .collect();
        let found = detect_seasons(&hourly, 2);
        assert!(found.contains(&24), "{found:?}");
        // A trend with noise has no season.
        let mut s = 0x2545_f491_4f6c_dd1d_u64;
        let trend: Vec<f64> = (0..500)
            .map(|t| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                t as f64 + (s >> 11) as f64 / (1u64 << 53) as f64
            })
            .collect();
        assert!(detect_seasons(&trend, 2).is_empty());
        assert!(detect_seasons(&hourly[..10], 2).is_empty());
        assert!(detect_seasons(&[f64::NAN; 100], 2).is_empty());
    }
}
