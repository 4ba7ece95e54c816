//! Season detection when none is configured: peaks of a Welch periodogram (augurs-seasons).
//!
//! augurs' detector keeps periods whose power is at least 90% of the strongest peak's; only
//! periods with two full cycles in the data are useful to the models here, so the rest are
//! dropped. Strongest first. The periodogram's frequency grid is coarse (a pure 24-step cycle
//! can come out as 25), so each peak is refined to the lag within ±10% where the
//! autocorrelation of the differenced series is highest.

use augurs::seasons::PeriodogramDetector;

/// Up to `max_count` seasonal periods of `y`, strongest first (empty when there is no clear
/// peak, the series is too short, or it holds non-finite values).
pub fn detect_seasons(y: &[f64], max_count: usize) -> Vec<usize> {
    // Fewer than ~16 points gives a periodogram with too few frequencies to have peaks.
    if y.len() < 16 || y.iter().any(|v| !v.is_finite()) {
        return Vec::new();
    }
    let detector = PeriodogramDetector::builder().build();
    let periodogram = detector.periodogram(y);
    // augurs' default relative threshold for a peak.
    const THRESHOLD: f64 = 0.9;
    let mut peaks: Vec<(f64, usize)> = periodogram
        .peaks(THRESHOLD)
        .map(|p| (p.power, p.period as usize))
        .filter(|&(_, p)| p >= 2 && 2 * p <= y.len())
        .collect();
    peaks.sort_by(|a, b| b.0.total_cmp(&a.0));
    let dy: Vec<f64> = y.windows(2).map(|w| w[1] - w[0]).collect();
    let mut out: Vec<usize> = Vec::new();
    for (_, p) in peaks {
        let p = refine(&dy, p);
        if !out.contains(&p) && out.len() < max_count && 2 * p <= y.len() {
            out.push(p);
        }
    }
    out
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
    (lo..=hi)
        .map(|k| (acf(k), k))
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map_or(p, |(_, k)| k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_clear_period() {
        let y: Vec<f64> = (0..480)
            .map(|t| (2.0 * std::f64::consts::PI * t as f64 / 24.0).sin())
            .collect();
        let found = detect_seasons(&y, 2);
        assert_eq!(found.first(), Some(&24), "{found:?}");
        assert!(detect_seasons(&y[..10], 2).is_empty());
        assert!(detect_seasons(&[f64::NAN; 100], 2).is_empty());
    }
}
