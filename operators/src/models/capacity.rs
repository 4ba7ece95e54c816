//! Capacity arithmetic: when a forecast path crosses a limit, how likely the series is to be past
//! the limit at the end of the horizon, and the same question answered by a least-squares line
//! (what Prometheus' `predict_linear` does), for comparison.
//!
//! Everything is in forecast steps; the operator converts to milliseconds. A series already past
//! its limit is 0 steps from it (the limit is reached; the question is answered).

use statrs::distribution::{ContinuousCDF, Normal};

use crate::records::LimitDirection;

/// Whether `value` is at or past `limit` on the bad side.
pub fn is_past(value: f64, limit: f64, direction: LimitDirection) -> bool {
    match direction {
        LimitDirection::Above => value >= limit,
        LimitDirection::Below => value <= limit,
    }
}

/// Fractional steps until the path `current, path[0], path[1], …` (step 0, 1, 2, …) first
/// reaches `limit`, interpolating linearly between steps; `None` when it stays on the safe side.
/// Non-finite values never count as a crossing.
pub fn steps_to_limit(
    current: f64,
    path: &[f64],
    limit: f64,
    direction: LimitDirection,
) -> Option<f64> {
    if current.is_finite() && is_past(current, limit, direction) {
        return Some(0.0);
    }
    let mut prev = current;
    for (i, v) in path.iter().enumerate() {
        if v.is_finite() && is_past(*v, limit, direction) {
            // prev is on the safe side and v past the limit, so they differ (no division by 0);
            // a non-finite prev (no current value) puts the crossing at the step itself.
            let frac = if prev.is_finite() {
                ((limit - prev) / (v - prev)).clamp(0.0, 1.0)
            } else {
                1.0
            };
            return Some(i as f64 + frac);
        }
        prev = *v;
    }
    None
}

/// Probability that a normal `N(mean, sd²)` value is past `limit`; a degenerate (zero, negative
/// or non-finite) `sd` gives 0 or 1 by the mean alone, a non-finite mean gives 0.
pub fn probability_past(mean: f64, sd: f64, limit: f64, direction: LimitDirection) -> f64 {
    if !mean.is_finite() {
        return 0.0;
    }
    let degenerate = || f64::from(u8::from(is_past(mean, limit, direction)));
    if !(sd.is_finite() && sd > 0.0) {
        return degenerate();
    }
    let Ok(n) = Normal::new(mean, sd) else {
        return degenerate();
    };
    let below = n.cdf(limit);
    match direction {
        LimitDirection::Above => 1.0 - below,
        LimitDirection::Below => below,
    }
}

/// Least-squares line through `y` against its index (non-finite values skipped): `(intercept,
/// slope)`, the intercept at index 0. `None` with fewer than two finite values.
pub fn least_squares(y: &[f64]) -> Option<(f64, f64)> {
    let (mut n, mut sx, mut sy) = (0.0, 0.0, 0.0);
    for (i, v) in y.iter().enumerate() {
        if v.is_finite() {
            n += 1.0;
            sx += i as f64;
            sy += v;
        }
    }
    if n < 2.0 {
        return None;
    }
    let (mx, my) = (sx / n, sy / n);
    let (mut sxy, mut sxx) = (0.0, 0.0);
    for (i, v) in y.iter().enumerate() {
        if v.is_finite() {
            let dx = i as f64 - mx;
            sxy += dx * (v - my);
            sxx += dx * dx;
        }
    }
    // Two distinct finite indices make sxx > 0.
    let slope = sxy / sxx;
    Some((my - slope * mx, slope))
}

/// `predict_linear`'s answer: fractional steps after the last value of `y` until the
/// least-squares line through `y` reaches `limit`, when that is within `horizon` steps
/// (0 when the line is already past it at the last value).
pub fn linear_steps_to_limit(
    y: &[f64],
    horizon: usize,
    limit: f64,
    direction: LimitDirection,
) -> Option<f64> {
    let (a, b) = least_squares(y)?;
    let now = a + b * (y.len() as f64 - 1.0);
    if !now.is_finite() {
        return None;
    }
    if is_past(now, limit, direction) {
        return Some(0.0);
    }
    if b == 0.0 {
        return None;
    }
    let t = (limit - now) / b;
    (t > 0.0 && t <= horizon as f64).then_some(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use LimitDirection::{Above, Below};

    #[test]
    fn crossing_is_interpolated_between_steps() {
        // 80 now, then 85, 90, 95: 92 is reached 2/5 of the way from step 2 to step 3.
        let t = steps_to_limit(80.0, &[85.0, 90.0, 95.0], 92.0, Above).expect("crosses");
        assert!((t - 2.4).abs() < 1e-12, "{t}");
        assert_eq!(steps_to_limit(93.0, &[85.0], 92.0, Above), Some(0.0));
        assert_eq!(steps_to_limit(80.0, &[85.0, 90.0], 92.0, Above), None);
        // Falling to a floor of 10 from 20: 15, 5 -> 1.5 steps.
        let t = steps_to_limit(20.0, &[15.0, 5.0], 10.0, Below).expect("crosses");
        assert!((t - 1.5).abs() < 1e-12, "{t}");
        assert_eq!(
            steps_to_limit(f64::NAN, &[f64::NAN, 99.0], 92.0, Above),
            Some(2.0)
        );
    }

    #[test]
    fn probability_is_the_normal_tail() {
        // Mean at the limit: one half either way.
        assert!((probability_past(90.0, 2.0, 90.0, Above) - 0.5).abs() < 1e-12);
        // Limit 1.959964 sd above the mean: the 2.5% upper tail.
        let p = probability_past(90.0, 1.0, 91.959_963_984_540_05, Above);
        assert!((p - 0.025).abs() < 1e-9, "{p}");
        let p = probability_past(90.0, 1.0, 88.040_036_015_459_95, Below);
        assert!((p - 0.025).abs() < 1e-9, "{p}");
        assert_eq!(probability_past(95.0, 0.0, 90.0, Above), 1.0);
        assert_eq!(probability_past(85.0, f64::NAN, 90.0, Above), 0.0);
        assert_eq!(probability_past(f64::NAN, 1.0, 90.0, Above), 0.0);
    }

    #[test]
    fn least_squares_line_and_predict_linear() {
        let y: Vec<f64> = (0..10).map(|i| 3.0 + 0.5 * i as f64).collect();
        let (a, b) = least_squares(&y).expect("line");
        assert!((a - 3.0).abs() < 1e-12 && (b - 0.5).abs() < 1e-12);
        // Last value 7.5; 10 is 5 steps ahead.
        let t = linear_steps_to_limit(&y, 10, 10.0, Above).expect("within horizon");
        assert!((t - 5.0).abs() < 1e-9, "{t}");
        assert_eq!(linear_steps_to_limit(&y, 4, 10.0, Above), None);
        assert_eq!(linear_steps_to_limit(&y, 4, 7.0, Above), Some(0.0));
        assert_eq!(linear_steps_to_limit(&y, 100, 1.0, Below), None);
        assert_eq!(least_squares(&[1.0, f64::NAN]), None);
        assert_eq!(linear_steps_to_limit(&[5.0; 8], 10, 9.0, Above), None);
    }
}
