//! Seasonal baseline: where a series repeats itself (a daily cycle, a weekly one), the best guess
//! for now is what happened at the same phase of the last few seasons.
//!
//! Season detection runs on the detector's own history, once enough of it is held and then every
//! `detect_every` values:
//! 1. augurs' Welch periodogram proposes candidate periods (its peaks);
//! 2. a periodogram bin is coarse (periods are `fft_size / k`), so each candidate is refined in the
//!    time domain to the lag in its bin that minimises the variance of `x_t − x_{t−P}`;
//! 3. a candidate is accepted only if it is a real season: its *strength*
//!    `1 − Var(x_t − x_{t−P}) / Var(x_t − x_{t−P/2})` must reach `min_strength` (half a season
//!    away, a seasonal series is at the opposite phase and differs most; a random walk differs
//!    more at lag P than at P/2 and scores below zero).
//!
//! Scoring: the expected value is the median of the values at lags `kP − 1, kP, kP + 1` for
//! `k = 1..=seasons` (the neighbours absorb a little phase jitter), and the scale is the MAD of
//! recent seasonal residuals. Without a season the detector abstains.
//!
//! Anomalies are not remembered as the pattern: a window the ensemble judged anomalous is held as
//! a gap ([`Seasonal::forget_last`]), skipped by the expected value and filled from its
//! predecessor for season detection. Otherwise a 20-minute error burst on day one becomes the
//! expected value at the same time on day two (while one season is held the median is of three
//! values, all from the burst), and the ordinary value then scores as a break of the pattern.

use std::collections::VecDeque;

use augurs::seasons::PeriodogramDetector;
use serde::{Deserialize, Serialize};

use super::deviation::{scale_floor, Deviation};
use super::robust_z::{RollingRobust, MAD_TO_SIGMA};
use crate::models::ModelError;

/// Settings of the seasonal detector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SeasonalConfig {
    /// Shortest period considered, in values (default 4, augurs' default).
    pub min_period: usize,
    /// Longest period considered, in values (default 1440: a day of 1-minute windows, five days
    /// of 5-minute rows). Memory is `seasons · max_period` values per watched feature.
    pub max_period: usize,
    /// Past seasons the expected value is taken from (default 3).
    pub seasons: usize,
    /// Most values between two season detections (default 1440); earlier, detections run each
    /// time the history has doubled.
    pub detect_every: usize,
    /// Smallest seasonal strength accepted (default 0.3).
    pub min_strength: f64,
    /// Recent residuals whose MAD is the scale (default 120).
    pub residual_window: usize,
    /// Floor of the scale as a fraction of |expected| (default 0.001).
    pub min_relative_scale: f64,
}

impl Default for SeasonalConfig {
    fn default() -> Self {
        SeasonalConfig {
            min_period: 4,
            max_period: 1440,
            seasons: 3,
            detect_every: 1440,
            min_strength: 0.3,
            residual_window: 120,
            min_relative_scale: 0.001,
        }
    }
}

impl SeasonalConfig {
    /// Checks every parameter's range.
    pub fn validate(&self) -> Result<(), ModelError> {
        let bad = |name, reason: String| Err(ModelError::InvalidParameter { name, reason });
        let (min_period, max_period) = (self.min_period, self.max_period);
        ModelError::require(
            (2..max_period).contains(&min_period),
            "min_period",
            &format!("at least 2 and below max_period ({max_period})"),
            min_period as f64,
        )?;
        ModelError::require(
            max_period <= 100_000,
            "max_period",
            "at most 100000",
            max_period as f64,
        )?;
        let seasons = self.seasons;
        ModelError::require(
            (1..=16).contains(&seasons),
            "seasons",
            "between 1 and 16",
            seasons as f64,
        )?;
        if self.detect_every == 0 {
            return bad("detect_every", "must be at least 1".into());
        }
        let s = self.min_strength;
        ModelError::require(s.is_finite() && s < 1.0, "min_strength", "below 1", s)?;
        let w = self.residual_window;
        ModelError::require(w >= 8, "residual_window", "at least 8", w as f64)
    }

    /// History held: enough for the expected value of the longest period (plus a neighbour).
    fn capacity(&self) -> usize {
        self.seasons.max(3) * self.max_period + 2
    }
}

/// Seasonal state of one feature of one series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Seasonal {
    /// Recent values, oldest first (f32: the baseline needs no more precision than the noise);
    /// NaN marks a gap, written as `null` in checkpoints.
    #[serde(with = "gaps_as_null")]
    history: VecDeque<f32>,
    period: Option<usize>,
    strength: f64,
    residuals: RollingRobust,
    seen: u64,
    next_detection: u64,
}

impl Seasonal {
    /// An empty detector.
    pub fn new(cfg: &SeasonalConfig) -> Self {
        Seasonal {
            history: VecDeque::new(),
            period: None,
            strength: 0.0,
            residuals: RollingRobust::new(cfg.residual_window),
            seen: 0,
            // The first detection needs three of the shortest seasons; later ones follow the
            // schedule.
            next_detection: (3 * cfg.min_period.max(8)) as u64,
        }
    }

    /// The detected period, if any.
    pub fn period(&self) -> Option<usize> {
        self.period
    }

    /// Scores `value` (`None` without a season or for a non-finite value), then learns it.
    pub fn observe(&mut self, cfg: &SeasonalConfig, value: f64) -> Option<Deviation> {
        if !value.is_finite() {
            return None;
        }
        let out = self.expected(cfg).map(|expected| {
            let residual = value - expected;
            let mad = self.residuals.mad().unwrap_or(0.0) * MAD_TO_SIGMA;
            let scale = mad.max(scale_floor(expected, cfg.min_relative_scale));
            self.residuals.push(residual);
            Deviation::of(value, expected, scale)
        });
        if self.history.len() == cfg.capacity() {
            self.history.pop_front();
        }
        self.history.push_back(value as f32);
        self.seen += 1;
        if self.seen >= self.next_detection {
            self.detect(cfg);
            // Geometric schedule while history is short (a season shows up as soon as two or
            // three cycles are held), then every `detect_every` values: O(1) amortised.
            self.next_detection = self.seen + self.seen.min(cfg.detect_every as u64).max(8);
        }
        // Scores are only meaningful once enough residuals give a scale.
        out.filter(|_| self.residuals.len() >= 8)
    }

    /// Holds the last value learned as a gap: the ensemble judged its window anomalous, so it
    /// says nothing about the pattern (see the module docs).
    pub fn forget_last(&mut self) {
        if let Some(last) = self.history.back_mut() {
            *last = f32::NAN;
        }
    }

    /// Median of the same phase in the last seasons (gaps skipped).
    fn expected(&self, cfg: &SeasonalConfig) -> Option<f64> {
        let p = self.period?;
        let n = self.history.len();
        let mut same_phase = [0f64; 48];
        let mut k = 0;
        for season in 1..=cfg.seasons {
            for lag in [season * p - 1, season * p, season * p + 1] {
                if lag >= 1 && lag <= n && k < same_phase.len() {
                    let held = self.history[n - lag];
                    if held.is_finite() {
                        same_phase[k] = f64::from(held);
                        k += 1;
                    }
                }
            }
        }
        if k == 0 {
            return None;
        }
        let vals = &mut same_phase[..k];
        vals.sort_by(f64::total_cmp);
        Some(if k % 2 == 1 {
            vals[k / 2]
        } else {
            0.5 * (vals[k / 2 - 1] + vals[k / 2])
        })
    }

    /// Re-detects the season on the held history.
    fn detect(&mut self, cfg: &SeasonalConfig) {
        // Gaps take their predecessor's value (leading gaps the first value held).
        let first = self.history.iter().copied().find(|v| v.is_finite());
        let mut previous = first.unwrap_or(0.0);
        let data: Vec<f64> = self
            .history
            .iter()
            .map(|v| {
                if v.is_finite() {
                    previous = *v;
                }
                f64::from(previous)
            })
            .collect();
        let found = detect_period(&data, cfg);
        let changed = found.map(|(p, _)| p) != self.period;
        self.period = found.map(|(p, _)| p);
        self.strength = found.map_or(0.0, |(_, s)| s);
        if changed {
            // Residuals of another period (or none) say nothing about this one.
            self.residuals = RollingRobust::new(cfg.residual_window);
        }
    }

    /// Approximate heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.history.capacity() * std::mem::size_of::<f32>() + self.residuals.heap_bytes()
    }
}

/// Serde for a history with gaps: JSON has no NaN, so a gap travels as `null`.
mod gaps_as_null {
    use std::collections::VecDeque;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(history: &VecDeque<f32>, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(history.iter().map(|v| v.is_finite().then_some(*v)))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<VecDeque<f32>, D::Error> {
        let held: Vec<Option<f32>> = Vec::deserialize(d)?;
        Ok(held.into_iter().map(|v| v.unwrap_or(f32::NAN)).collect())
    }
}

/// The strongest real season of `data` and its strength, if any (see the module docs).
pub fn detect_period(data: &[f64], cfg: &SeasonalConfig) -> Option<(usize, f64)> {
    let n = data.len();
    // augurs' Welch estimate needs a few segments; below 16 values it cannot work (and panics
    // under 4), and a season needs at least two full cycles to be checked at all.
    if n < 16 {
        return None;
    }
    let mean = data.iter().sum::<f64>() / n as f64;
    let var = data.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n as f64;
    if !(var.is_finite() && var > 0.0) {
        return None;
    }
    let max_period = cfg.max_period.min(n / 2);
    if max_period <= cfg.min_period {
        return None;
    }
    let pg = PeriodogramDetector::builder()
        .min_period(cfg.min_period as u32)
        .max_period(max_period as u32 + 1)
        .threshold(0.5)
        .build()
        .periodogram(data);
    let mut best: Option<(usize, f64)> = None;
    // `peaks` ascends by power; try the strongest first, at most a handful.
    let peaks: Vec<_> = pg.peaks(0.5).collect();
    for peak in peaks.iter().rev().take(5) {
        let period = peak.period as usize;
        // A Hann-windowed bin leaks into its neighbours, so the true period lies anywhere
        // between the neighbouring bins' periods (`prev` is the longer one, 0 at the edge).
        let lo = (peak.next_period as usize).max(cfg.min_period).max(2);
        let longer = if peak.prev_period == 0 {
            period
        } else {
            peak.prev_period as usize
        };
        let hi = longer.min(max_period);
        if lo > hi {
            continue;
        }
        let p = refine_lag(data, lo, hi);
        let strength = 1.0 - lag_diff_var(data, p) / lag_diff_var(data, (p / 2).max(1));
        if strength >= cfg.min_strength && best.is_none_or(|(_, s)| strength > s) {
            best = Some((p, strength));
        }
    }
    best
}

/// The lag in `lo..=hi` minimising [`lag_diff_var`]: a coarse pass over at most 64 lags, then
/// every lag around the best, so a wide bin costs about a hundred evaluations.
fn refine_lag(data: &[f64], lo: usize, hi: usize) -> usize {
    let step = ((hi - lo) / 64).max(1);
    let best_of = |lags: &mut dyn Iterator<Item = usize>| {
        lags.min_by(|a, b| lag_diff_var(data, *a).total_cmp(&lag_diff_var(data, *b)))
            .unwrap_or(lo)
    };
    let coarse = best_of(&mut (lo..=hi).step_by(step));
    best_of(&mut (coarse.saturating_sub(step).max(lo)..=(coarse + step).min(hi)))
}

/// Variance (mean square) of `x_t − x_{t−lag}`; infinite when the lag leaves nothing.
fn lag_diff_var(data: &[f64], lag: usize) -> f64 {
    if lag == 0 || lag >= data.len() {
        return f64::INFINITY;
    }
    // At most ~512 evenly spaced terms: plenty for a variance, and it bounds the cost.
    let terms = data.len() - lag;
    let stride = terms.div_ceil(512).max(1);
    let (mut sum, mut count) = (0.0, 0usize);
    for t in (lag..data.len()).step_by(stride) {
        let d = data[t] - data[t - lag];
        sum += d * d;
        count += 1;
    }
    sum / count.max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wave(i: usize, period: usize) -> f64 {
        100.0 + 20.0 * (std::f64::consts::TAU * i as f64 / period as f64).sin()
    }

    fn jitter(i: usize) -> f64 {
        let s = (i as u64)
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((s >> 33) as f64 / (1u64 << 31) as f64) - 0.5
    }

    #[test]
    fn finds_a_daily_period_that_is_not_a_power_of_two() {
        let cfg = SeasonalConfig::default();
        let data: Vec<f64> = (0..2016).map(|i| wave(i, 288) + jitter(i)).collect();
        let (p, strength) = detect_period(&data, &cfg).expect("a season");
        assert!((286..=290).contains(&p), "period {p}");
        assert!(strength > 0.9, "{strength}");
    }

    #[test]
    fn random_walk_has_no_season() {
        let cfg = SeasonalConfig::default();
        let mut x = 0.0;
        let data: Vec<f64> = (0..3000)
            .map(|i| {
                x += jitter(i);
                x
            })
            .collect();
        assert_eq!(detect_period(&data, &cfg), None);
        assert_eq!(detect_period(&[1.0; 100], &cfg), None, "constant");
        assert_eq!(detect_period(&[1.0, 2.0], &cfg), None, "too short");
    }

    #[test]
    fn planted_break_of_the_pattern_scores_high() {
        let cfg = SeasonalConfig {
            max_period: 100,
            detect_every: 200,
            ..SeasonalConfig::default()
        };
        let mut d = Seasonal::new(&cfg);
        let mut worst: f64 = 0.0;
        for i in 0..1200 {
            if let Some(x) = d.observe(&cfg, wave(i, 50) + jitter(i)) {
                if i > 900 {
                    worst = worst.max(x.magnitude);
                }
            }
        }
        assert_eq!(d.period(), Some(50));
        // The value at the trough of the cycle is normal for a peak, not for a trough: only the
        // seasonal baseline can tell.
        // 1200 is a whole number of cycles; 37 steps in is the trough (sin(2π·37.5/50) ≈ −1).
        let trough_phase = 1200 + 37;
        for i in 1200..trough_phase {
            d.observe(&cfg, wave(i, 50) + jitter(i));
        }
        let planted = d.observe(&cfg, 120.0).unwrap();
        assert!(worst < 6.0, "ordinary values scored up to {worst}");
        assert!(planted.magnitude > 15.0, "{planted:?}");
    }

    /// A burst the ensemble flagged does not return as the expected value one season later, and
    /// the gaps survive a checkpoint.
    #[test]
    fn a_forgotten_burst_is_not_expected_again_next_season() {
        let cfg = SeasonalConfig {
            max_period: 100,
            detect_every: 200,
            seasons: 2,
            ..SeasonalConfig::default()
        };
        let (mut forgetting, mut remembering) = (Seasonal::new(&cfg), Seasonal::new(&cfg));
        for i in 0..1000 {
            forgetting.observe(&cfg, wave(i, 50) + jitter(i));
            remembering.observe(&cfg, wave(i, 50) + jitter(i));
        }
        assert_eq!(forgetting.period(), Some(50));
        for _ in 1000..1003 {
            forgetting.observe(&cfg, 300.0);
            forgetting.forget_last();
            remembering.observe(&cfg, 300.0);
        }
        let json = serde_json::to_string(&forgetting).expect("serialises");
        let mut restored: Seasonal = serde_json::from_str(&json).expect("deserialises");
        assert!(json.contains("null"), "gaps are written as null");
        for i in 1003..1051 {
            restored.observe(&cfg, wave(i, 50) + jitter(i));
            remembering.observe(&cfg, wave(i, 50) + jitter(i));
        }
        // One season after the middle of the burst: its own lag and both neighbours are gaps.
        let ordinary = wave(1051, 50) + jitter(1051);
        let remembered = remembering.observe(&cfg, ordinary).unwrap();
        let forgotten = restored.observe(&cfg, ordinary).unwrap();
        assert!(remembered.magnitude > 15.0, "control: {remembered:?}");
        assert!(forgotten.magnitude < 4.0, "{forgotten:?}");
    }
}
