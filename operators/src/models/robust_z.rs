//! Robust z-score against a rolling median/MAD baseline.
//!
//! Operations metrics drift with the time of day, so a long median lags behind them and a MAD of
//! the raw values mistakes that drift for noise. The baseline therefore splits in two robust
//! parts:
//! * the expected value is the median of the last `level_len` values, moved forward by a robust
//!   slope (the change between the medians of the last `level_len` values and of the
//!   `level_len` before them) over the distance to the present; medians of whole spans are not
//!   fooled by short periodic patterns the way a median of successive differences is;
//! * the scale is the MAD of the last `baseline_len` successive differences, which sees the noise
//!   but not the level or slow trends: for white noise of deviation σ the differences have
//!   deviation σ√2, so σ ≈ 1.4826 · MAD(diffs) / √2 (1.4826 makes the MAD consistent for Gaussian
//!   data; Rousseeuw and Croux, 1993).
//!
//! The z-score is `(x − expected) / scale`. Medians ignore a minority of outliers, so a spike does
//! not drag the baseline along the way a mean and standard deviation would.
//!
//! Values are kept in arrival order (to expire the oldest) and in sorted order (for the median and
//! the MAD), so each update is a binary search and a short memmove instead of a sort.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::models::ModelError;

/// MAD → standard deviation for Gaussian data: 1 / Φ⁻¹(3/4).
pub const MAD_TO_SIGMA: f64 = 1.482_602_218_505_602;

/// The share of a rate's relative scale that counts (see [`RobustZ::for_rate`]).
pub const RATE_SCALE_SHARE: f64 = 0.5;

/// Mean absolute deviation → standard deviation for Gaussian data: √(π/2).
const MEAN_ABS_TO_SIGMA: f64 = 1.253_314_137_315_500_3;

/// Settings of the robust z-score detector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RobustZConfig {
    /// How many recent successive differences estimate the noise scale (default 60: an hour of
    /// 1-minute windows).
    pub baseline_len: usize,
    /// How many recent values give the expected level (default 10).
    pub level_len: usize,
    /// Values needed before anything is scored (default 20); earlier values only teach.
    pub warmup_len: usize,
    /// |z| at or above which a value is anomalous (default 4.5).
    pub threshold: f64,
    /// Floor of the scale, as a fraction of |expected| (default 0.001): a series whose recent
    /// values were all identical would otherwise call any change, however small, infinitely
    /// anomalous.
    pub min_relative_scale: f64,
}

impl Default for RobustZConfig {
    fn default() -> Self {
        RobustZConfig {
            baseline_len: 60,
            level_len: 10,
            warmup_len: 20,
            threshold: 4.5,
            min_relative_scale: 0.001,
        }
    }
}

impl RobustZConfig {
    /// Checks every parameter's range.
    pub fn validate(&self) -> Result<(), ModelError> {
        let baseline = self.baseline_len;
        ModelError::require(baseline >= 3, "baseline_len", "at least 3", baseline as f64)?;
        ModelError::require(
            (1..=baseline).contains(&self.level_len),
            "level_len",
            &format!("between 1 and baseline_len ({baseline})"),
            self.level_len as f64,
        )?;
        ModelError::require(
            (3..=baseline).contains(&self.warmup_len),
            "warmup_len",
            &format!("between 3 and baseline_len ({baseline})"),
            self.warmup_len as f64,
        )?;
        let t = self.threshold;
        ModelError::require(
            t.is_finite() && t > 0.0,
            "threshold",
            "a positive number",
            t,
        )?;
        super::deviation::check_min_relative_scale(self.min_relative_scale)?;
        Ok(())
    }
}

/// How one value compares with the baseline.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RobustScore {
    /// Signed robust z-score.
    pub z: f64,
    /// Baseline median: the expected value.
    pub median: f64,
    /// Baseline scale (σ estimate) the z-score divides by.
    pub scale: f64,
    /// How full the baseline is, in (0, 1]: the detector's confidence in its own baseline.
    pub fill: f64,
}

/// Rolling median/MAD baseline of one feature of one series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RollingRobust {
    capacity: usize,
    arrival: VecDeque<f64>,
    sorted: Vec<f64>,
}

impl RollingRobust {
    /// An empty baseline holding at most `capacity` values (at least 1).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        RollingRobust {
            capacity,
            arrival: VecDeque::with_capacity(capacity),
            sorted: Vec::with_capacity(capacity),
        }
    }

    /// Number of values held.
    pub fn len(&self) -> usize {
        self.sorted.len()
    }

    /// Whether no value is held.
    pub fn is_empty(&self) -> bool {
        self.sorted.is_empty()
    }

    /// Adds a finite value, expiring the oldest when full; returns the expired value. Non-finite
    /// values are ignored.
    pub fn push(&mut self, value: f64) -> Option<f64> {
        if !value.is_finite() {
            return None;
        }
        let expired = if self.arrival.len() == self.capacity {
            self.arrival.pop_front()
        } else {
            None
        };
        self.arrival.push_back(value);
        let to = self.sorted.partition_point(|v| *v < value);
        // `old` is present: it was inserted and only ever removed once.
        let from = expired.map(|old| self.sorted.partition_point(|v| *v < old));
        match from {
            // Replace in one move: only the values between the two positions shift, where
            // a remove and an insert would each shift half the window on average.
            Some(from) if from < to => {
                self.sorted.copy_within(from + 1..to, from);
                self.sorted[to - 1] = value;
            }
            Some(from) if from < self.sorted.len() => {
                self.sorted.copy_within(to..from, to + 1);
                self.sorted[to] = value;
            }
            _ => self.sorted.insert(to, value),
        }
        expired
    }

    /// Median of the held values; `None` when empty.
    pub fn median(&self) -> Option<f64> {
        median_of_sorted(&self.sorted)
    }

    /// Quantile `p` in [0, 1] of the held values, interpolating linearly between ranks (numpy's
    /// default); `None` when empty.
    pub fn quantile(&self, p: f64) -> Option<f64> {
        let s = &self.sorted;
        if s.is_empty() {
            return None;
        }
        let pos = p.clamp(0.0, 1.0) * (s.len() - 1) as f64;
        let lo = pos.floor() as usize;
        let hi = (lo + 1).min(s.len() - 1);
        let frac = pos - lo as f64;
        Some(s[lo] + (s[hi] - s[lo]) * frac)
    }

    /// Median absolute deviation from the median; `None` when empty.
    ///
    /// Deviations left of the median grow leftwards and those right of it grow rightwards: two
    /// sorted runs, so their k-th smallest is found by bisection in O(log n) (as for the median
    /// of two sorted arrays) instead of by merging them. The trend detector takes the MAD of
    /// 720 slopes on every window.
    pub fn mad(&self) -> Option<f64> {
        let med = self.median()?;
        let s = &self.sorted;
        let n = s.len();
        // Values left of `split` are below the median; the left run walks down from it.
        let split = s.partition_point(|v| *v < med);
        let left = |i: usize| med - s[split - 1 - i];
        let right = |j: usize| s[split + j] - med;
        let (left_len, right_len) = (split, n - split);
        // The k-th smallest deviation (0-based): the fewest values taken from the left run
        // whose next one is not below the right run's last one taken.
        let kth = |k: usize| {
            let (mut lo, mut hi) = ((k + 1).saturating_sub(right_len), (k + 1).min(left_len));
            while lo < hi {
                let i = (lo + hi) / 2;
                let j = k + 1 - i;
                if j > 0 && left(i) < right(j - 1) {
                    lo = i + 1;
                } else {
                    hi = i;
                }
            }
            let j = k + 1 - lo;
            let from_left = if lo > 0 { left(lo - 1) } else { 0.0 };
            let from_right = if j > 0 { right(j - 1) } else { 0.0 };
            from_left.max(from_right)
        };
        Some(0.5 * (kth((n - 1) / 2) + kth(n / 2)))
    }

    /// Mean absolute deviation from the median; `None` when empty.
    pub fn mean_abs_dev(&self) -> Option<f64> {
        let med = self.median()?;
        Some(self.sorted.iter().map(|v| (v - med).abs()).sum::<f64>() / self.sorted.len() as f64)
    }

    /// Approximate heap bytes held, for memory accounting.
    pub fn heap_bytes(&self) -> usize {
        (self.arrival.capacity() + self.sorted.capacity()) * std::mem::size_of::<f64>()
    }
}

fn median_of_sorted(s: &[f64]) -> Option<f64> {
    let n = s.len();
    if n == 0 {
        return None;
    }
    Some(if n % 2 == 1 {
        s[n / 2]
    } else {
        0.5 * (s[n / 2 - 1] + s[n / 2])
    })
}

/// The robust z-score detector of one feature of one series: score, then learn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RobustZ {
    config: RobustZConfig,
    /// The last `level_len` values, for the expected level.
    level: RollingRobust,
    /// The `level_len` values before those, for the slope.
    older: RollingRobust,
    /// Recent successive differences, for the noise scale.
    diffs: RollingRobust,
    /// For a counter rate, the same differences relative to the value before each (see
    /// [`RobustZ::for_rate`]); `None` for other features (and in older checkpoints).
    #[serde(default)]
    relative_diffs: Option<RollingRobust>,
    /// Previous value, to form the next difference.
    last: Option<f64>,
    /// Values seen (saturating), for the warm-up.
    seen: u32,
}

impl RobustZ {
    /// A detector with an empty baseline. Call [`RobustZConfig::validate`] first.
    pub fn new(config: RobustZConfig) -> Self {
        RobustZ {
            level: RollingRobust::new(config.level_len),
            older: RollingRobust::new(config.level_len),
            diffs: RollingRobust::new(config.baseline_len),
            relative_diffs: None,
            config,
            last: None,
            seen: 0,
        }
    }

    /// A detector for a rate of events (a counter's rate), whose noise grows with the rate: the
    /// scale is also estimated relative to the level and applied at the expected level, the
    /// larger of the two used. When traffic is cut, a counter's noise shrinks with it; after
    /// the return, the absolute differences of the hour before still hold mostly the quiet
    /// period's, and ordinary noise at full traffic scored as anomalous for up to an hour
    /// (`docs/design.md`, "Alert intelligence").
    pub fn for_rate(config: RobustZConfig) -> Self {
        let capacity = config.baseline_len;
        RobustZ {
            relative_diffs: Some(RollingRobust::new(capacity)),
            ..RobustZ::new(config)
        }
    }

    /// The settings in use.
    pub fn config(&self) -> &RobustZConfig {
        &self.config
    }

    /// Scores `value` against the baseline (`None` during warm-up or for a non-finite value),
    /// then adds it to the baseline.
    pub fn observe(&mut self, value: f64) -> Option<RobustScore> {
        let score = self.score(value);
        if value.is_finite() {
            if let Some(prev) = self.last {
                self.diffs.push(value - prev);
                if let (Some(relative), true) = (&mut self.relative_diffs, prev != 0.0) {
                    relative.push((value - prev) / prev.abs());
                }
            }
            if let Some(expired) = self.level.push(value) {
                self.older.push(expired);
            }
            self.last = Some(value);
            self.seen = self.seen.saturating_add(1);
        }
        score
    }

    /// Scores `value` without learning from it.
    pub fn score(&self, value: f64) -> Option<RobustScore> {
        if !value.is_finite() || (self.seen as usize) < self.config.warmup_len {
            return None;
        }
        let median = self.level.median()?;
        let len = self.level.len() as f64;
        // The two medians are `len` steps apart; until the older span is full there is no slope.
        let slope = match self.older.median() {
            Some(older) if self.older.len() == self.level.len() => (median - older) / len,
            _ => 0.0,
        };
        // The level median sits (len + 1) / 2 steps behind the value being scored.
        let expected = median + slope * (len + 1.0) / 2.0;
        let scale = self.scale(expected)?;
        Some(RobustScore {
            z: (value - expected) / scale,
            median: expected,
            scale,
            fill: (self.diffs.len() as f64 / self.config.baseline_len as f64).min(1.0),
        })
    }

    /// σ of the noise from the differences: MAD, else mean absolute deviation (when over half
    /// the differences tie), else the relative floor; never zero, so z is always finite.
    fn scale(&self, expected: f64) -> Option<f64> {
        let mad = self.diffs.mad()? * MAD_TO_SIGMA / std::f64::consts::SQRT_2;
        let mean_abs = self.diffs.mean_abs_dev()? * MEAN_ABS_TO_SIGMA / std::f64::consts::SQRT_2;
        let floor = (expected.abs() * self.config.min_relative_scale).max(f64::MIN_POSITIVE);
        let relative = self
            .relative_diffs
            .as_ref()
            .and_then(RollingRobust::mad)
            .map_or(0.0, |m| {
                RATE_SCALE_SHARE * m * expected.abs() * MAD_TO_SIGMA / std::f64::consts::SQRT_2
            });
        Some(
            if mad > 0.0 { mad } else { mean_abs }
                .max(relative)
                .max(floor),
        )
    }

    /// Approximate heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.level.heap_bytes()
            + self.older.heap_bytes()
            + self.diffs.heap_bytes()
            + self
                .relative_diffs
                .as_ref()
                .map_or(0, RollingRobust::heap_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive_mad(values: &[f64]) -> f64 {
        let mut s = values.to_vec();
        s.sort_by(f64::total_cmp);
        let med = median_of_sorted(&s).unwrap();
        let mut d: Vec<f64> = s.iter().map(|v| (v - med).abs()).collect();
        d.sort_by(f64::total_cmp);
        median_of_sorted(&d).unwrap()
    }

    #[test]
    fn mad_matches_naive_definition() {
        // A deterministic pseudo-random walk with ties and outliers, through windows of odd
        // and even sizes up to the trend detector's 720.
        for capacity in [1, 2, 31, 60, 720] {
            let mut state = 12345u64;
            let mut values = Vec::new();
            let mut r = RollingRobust::new(capacity);
            for n in 1..900 {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let v = ((state >> 33) % 50) as f64 + if n % 17 == 0 { 1000.0 } else { 0.0 };
                values.push(v);
                r.push(v);
                let window = &values[values.len().saturating_sub(capacity)..];
                let mut sorted = window.to_vec();
                sorted.sort_by(f64::total_cmp);
                assert_eq!(r.sorted, sorted, "capacity {capacity}, after {n} values");
                assert_eq!(
                    r.mad(),
                    Some(naive_mad(window)),
                    "capacity {capacity}, after {n} values"
                );
            }
        }
    }

    #[test]
    fn known_mad_value() {
        let mut r = RollingRobust::new(10);
        for v in [1.0, 1.0, 2.0, 2.0, 4.0, 6.0, 9.0] {
            r.push(v);
        }
        // Median 2; deviations 1,1,0,0,2,4,7 → median 1.
        assert_eq!(r.median(), Some(2.0));
        assert_eq!(r.mad(), Some(1.0));
    }

    #[test]
    fn warmup_then_spike_scores_high() {
        let mut d = RobustZ::new(RobustZConfig::default());
        for i in 0..30 {
            let v = 100.0 + (i % 5) as f64;
            let s = d.observe(v);
            assert_eq!(s.is_some(), i >= 20, "warm-up ends after 20 values");
        }
        let s = d.score(160.0).unwrap();
        assert!(s.z > 10.0, "{s:?}");
        // Both spans of ten hold 100..104 twice: median 102 each, so no slope (a median of the
        // successive differences, +1 four times in five, would wrongly see one).
        assert!((s.median - 102.0).abs() < 1e-9, "{s:?}");
        assert!(d.score(103.0).unwrap().z.abs() < 2.0);
    }

    #[test]
    fn steady_trend_is_not_anomalous_but_a_jump_is() {
        let mut d = RobustZ::new(RobustZConfig::default());
        let mut state = 7u64;
        let mut noise = || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
            ((state >> 33) as f64 / (1u64 << 31) as f64) - 0.5
        };
        let mut worst: f64 = 0.0;
        for i in 0..200 {
            // Climbing 2 per step with noise of ±0.5: a morning ramp.
            if let Some(s) = d.observe(1000.0 + 2.0 * i as f64 + noise()) {
                worst = worst.max(s.z.abs());
            }
        }
        assert!(worst < 4.5, "the trend alone scored {worst}");
        let s = d.score(1000.0 + 2.0 * 200.0 + 20.0).unwrap();
        assert!(s.z > 10.0, "{s:?}");
    }

    #[test]
    fn flat_line_uses_relative_floor() {
        let mut d = RobustZ::new(RobustZConfig::default());
        for _ in 0..30 {
            d.observe(50.0);
        }
        let s = d.score(51.0).unwrap();
        // floor = 0.1 % of 50 = 0.05 → z = 20.
        assert!((s.z - 20.0).abs() < 1e-9, "{s:?}");
        let zero = {
            let mut d = RobustZ::new(RobustZConfig::default());
            for _ in 0..30 {
                d.observe(0.0);
            }
            d.score(1.0).unwrap()
        };
        assert!(zero.z.is_finite() && zero.z > 1e6);
    }

    #[test]
    fn invalid_config_is_rejected() {
        let bad = RobustZConfig {
            warmup_len: 100,
            ..RobustZConfig::default()
        };
        assert!(matches!(
            bad.validate(),
            Err(ModelError::InvalidParameter {
                name: "warmup_len",
                ..
            })
        ));
        assert!(RobustZConfig::default().validate().is_ok());
    }

    #[test]
    fn non_finite_values_are_ignored() {
        let mut d = RobustZ::new(RobustZConfig::default());
        for _ in 0..30 {
            assert!(d.observe(f64::NAN).is_none());
        }
        assert!(d.level.is_empty() && d.diffs.is_empty());
    }

    #[test]
    fn a_rate_after_a_cut_is_judged_at_its_own_level() {
        // A request rate whose noise is about 3% of it (a sum of three uniform draws): 400/s
        // for two hours, cut to 80/s for 40 minutes, back to 400/s for an hour.
        let level = |i: usize| if (120..160).contains(&i) { 80.0 } else { 400.0 };
        let run = |mut d: RobustZ| {
            let mut state = 11u64;
            let mut uniform = || {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
                ((state >> 33) as f64 / (1u64 << 31) as f64) - 0.5
            };
            let mut flagged_after_return = 0;
            let (mut cut, mut back) = (0.0, 0.0);
            for i in 0..220 {
                let noise = 0.06 * (uniform() + uniform() + uniform());
                let z = d.observe(level(i) * (1.0 + noise)).map_or(0.0, |s| s.z);
                match i {
                    120 => cut = z,
                    160 => back = z,
                    // Once both spans of the expectation hold the returned level.
                    181.. if z.abs() >= 4.5 => flagged_after_return += 1,
                    _ => {}
                }
            }
            (cut, back, flagged_after_return)
        };
        let (cut, back, flagged) = run(RobustZ::for_rate(RobustZConfig::default()));
        assert!(cut < -10.0 && back > 10.0, "cut {cut}, return {back}");
        assert_eq!(flagged, 0, "ordinary noise at the returned level");
        // Judged on the quiet hour's absolute differences, the same noise is anomalous.
        let (_, _, flagged) = run(RobustZ::new(RobustZConfig::default()));
        assert!(
            flagged > 0,
            "the plain scale flagged nothing: the test shows nothing"
        );
    }
}
