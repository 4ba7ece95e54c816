//! How the recommenders turn evidence into a confidence in [0, 1]: the Wilson score lower bound
//! for rates observed over a count of events, and a saturating ramp for history length.

/// One-sided 95% normal quantile: a Wilson bound at this z is exceeded by the true rate with
/// probability 0.95.
pub const Z_95_ONE_SIDED: f64 = 1.644_853_626_951_472_2;

/// Wilson score lower bound of a binomial rate: `successes` of `trials` events. The interval of
/// Wilson (1927) stays inside [0, 1] and is sensible for small counts, where the plain
/// proportion is overconfident (3 of 3 is not certainty). Returns 0 when `trials` is 0 or `z`
/// is not a positive finite number.
pub fn wilson_lower_bound(successes: u64, trials: u64, z: f64) -> f64 {
    if trials == 0 || !(z.is_finite() && z > 0.0) {
        return 0.0;
    }
    let n = trials as f64;
    let p = (successes.min(trials) as f64) / n;
    let z2 = z * z;
    let centre = p + z2 / (2.0 * n);
    let spread = z * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    ((centre - spread) / (1.0 + z2 / n)).clamp(0.0, 1.0)
}

/// Confidence from history length: `history / full`, capped at 1 (0 when `full` is not
/// positive or `history` is not a finite positive number).
pub fn history_confidence(history: f64, full: f64) -> f64 {
    if !(full > 0.0 && history.is_finite() && history > 0.0) {
        return 0.0;
    }
    (history / full).min(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wilson_matches_reference_values() {
        // Reference: Wilson interval by hand, p = 0.8, n = 10, z = 1.96 → [0.4902, 0.9433].
        let lb = wilson_lower_bound(8, 10, 1.96);
        assert!((lb - 0.4902).abs() < 1e-3, "{lb}");
        // All successes: lower bound n / (n + z²).
        let lb = wilson_lower_bound(5, 5, 1.96);
        assert!((lb - 5.0 / (5.0 + 1.96 * 1.96)).abs() < 1e-9, "{lb}");
        assert_eq!(wilson_lower_bound(0, 0, 1.96), 0.0);
        assert_eq!(wilson_lower_bound(0, 10, 1.96), 0.0);
    }

    #[test]
    fn history_confidence_saturates() {
        assert_eq!(history_confidence(3.5, 7.0), 0.5);
        assert_eq!(history_confidence(30.0, 7.0), 1.0);
        assert_eq!(history_confidence(f64::NAN, 7.0), 0.0);
        assert_eq!(history_confidence(1.0, 0.0), 0.0);
    }
}
