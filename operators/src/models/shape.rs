//! The shape of an anomaly — spike, dip, level shift, trend or variance change — read from the
//! recent values around it. Rules (`rules/anomaly_types.toml`) map a shape on a metric to the
//! contract's `anomaly_type`: a memory metric that *trends* up is a leak, one that *spikes* is a
//! resource spike.
//!
//! The tests are deliberately simple and ordered from the most specific evidence to the least:
//! 1. a change point found by BOCPD that is at least two values old → level shift;
//! 2. at least three quarters of the last `TREND_LEN` steps go the same way and the climb exceeds
//!    three noise σ → trend;
//! 3. the last three values before this one all sit on its side of the expectation, beyond three
//!    noise σ → level shift (BOCPD may not have run or may be unsure);
//! 4. the spread of the last values before this one (standard deviation against the older
//!    ones) grew or shrank by `VARIANCE_RATIO` while the level stayed → variance change;
//! 5. otherwise a spike (above) or dip (below).

use serde::{Deserialize, Serialize};

use super::changepoint::ChangePoint;

/// Standard deviation ratio (recent / older) that counts as a variance change: a doubling of σ
/// is what a human reading a chart calls "noisier"; 2.5 leaves room for ordinary fluctuation.
const VARIANCE_RATIO: f64 = 2.5;
/// Steps examined for a trend.
const TREND_LEN: usize = 12;
/// Recent values examined for variance and sustained shifts.
const RECENT_LEN: usize = 6;

/// Shape of an anomaly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Shape {
    /// A short excursion above the expectation.
    Spike,
    /// A short excursion below it.
    Dip,
    /// A sustained move to another level.
    LevelShift,
    /// A steady climb or fall (a memory leak, a filling disk).
    Trend,
    /// Noisier (or quieter) than before, around the same level.
    VarianceChange,
}

impl Shape {
    /// The snake_case name used in output and rules.
    pub fn as_str(self) -> &'static str {
        match self {
            Shape::Spike => "spike",
            Shape::Dip => "dip",
            Shape::LevelShift => "level_shift",
            Shape::Trend => "trend",
            Shape::VarianceChange => "variance_change",
        }
    }
}

/// Classifies the anomaly of `value` given the values before it (`history`, oldest first), the
/// expectation, the noise scale and a recent change point, if one was found.
pub fn classify(
    history: &[f64],
    value: f64,
    expected: f64,
    scale: f64,
    change: Option<&ChangePoint>,
) -> Shape {
    let scale = scale.abs().max(1e-12);
    let up = value >= expected;
    if change.is_some_and(|c| c.age >= 2 && c.shift_sigmas().abs() >= 3.0) {
        return Shape::LevelShift;
    }
    let n = history.len();
    if n >= TREND_LEN {
        let tail: Vec<f64> = history[n - (TREND_LEN - 1)..]
            .iter()
            .copied()
            .chain(std::iter::once(value))
            .collect();
        let steps = tail.windows(2).filter(|w| w[1] != w[0]).count().max(1);
        let rising = tail.windows(2).filter(|w| w[1] > w[0]).count();
        let falling = tail.windows(2).filter(|w| w[1] < w[0]).count();
        let climb = tail[tail.len() - 1] - tail[0];
        let monotone =
            4 * rising >= 3 * steps && climb > 0.0 || 4 * falling >= 3 * steps && climb < 0.0;
        if monotone && climb.abs() >= 3.0 * scale && (climb > 0.0) == up {
            return Shape::Trend;
        }
    }
    if n >= 3 {
        let sustained = history[n - 3..].iter().all(|v| {
            if up {
                *v - expected > 3.0 * scale
            } else {
                expected - *v > 3.0 * scale
            }
        });
        if sustained {
            return Shape::LevelShift;
        }
    }
    // Variance is judged on the values before this one: a lone spike is not a noisier series.
    if n >= 5 * RECENT_LEN {
        let recent = &history[n - RECENT_LEN..];
        let older = &history[n - 5 * RECENT_LEN..n - RECENT_LEN];
        let (m_new, s_new) = mean_std(recent);
        let (m_old, s_old) = mean_std(older);
        let s_old = s_old.max(1e-12);
        let ratio = s_new / s_old;
        if (ratio >= VARIANCE_RATIO || ratio <= 1.0 / VARIANCE_RATIO)
            && (m_new - m_old).abs() < 1.5 * s_old.max(s_new)
        {
            return Shape::VarianceChange;
        }
    }
    if up {
        Shape::Spike
    } else {
        Shape::Dip
    }
}

fn mean_std(x: &[f64]) -> (f64, f64) {
    let n = x.len().max(1) as f64;
    let mean = x.iter().sum::<f64>() / n;
    let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
    (mean, var.sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::test_noise::noise;

    fn flat(n: usize) -> Vec<f64> {
        (0..n).map(|i| 10.0 + noise(i)).collect()
    }

    #[test]
    fn spike_and_dip() {
        let h = flat(40);
        assert_eq!(classify(&h, 20.0, 10.0, 0.3, None), Shape::Spike);
        assert_eq!(classify(&h, 0.0, 10.0, 0.3, None), Shape::Dip);
    }

    #[test]
    fn trend() {
        let h: Vec<f64> = (0..40)
            .map(|i| 10.0 + 0.5 * i as f64 + 0.2 * noise(i))
            .collect();
        assert_eq!(classify(&h, 30.5, 25.0, 0.3, None), Shape::Trend);
    }

    #[test]
    fn level_shift_from_change_point_or_sustained_values() {
        let mut h = flat(40);
        h.extend([15.0, 15.2, 14.9]);
        let cp = ChangePoint {
            age: 4,
            before: 10.0,
            after: 15.0,
            sigma: 0.3,
        };
        assert_eq!(classify(&h, 15.1, 10.0, 0.3, Some(&cp)), Shape::LevelShift);
        assert_eq!(classify(&h, 15.1, 10.0, 0.3, None), Shape::LevelShift);
    }

    #[test]
    fn variance_change() {
        let mut h = flat(40);
        h.extend([14.0, 6.0, 13.5, 6.5, 14.0]);
        assert_eq!(classify(&h, 6.0, 10.0, 0.3, None), Shape::VarianceChange);
    }
}
