//! Contextual novelty: how much of the current value's *context* has never been seen before.
//!
//! The deviation detectors ask "is this value far from the recent level?"; they cannot see a
//! value that is ordinary on its own but arrives in an unusual order (a taxi demand that stays
//! at the weekday level on a holiday, traffic that drops slowly instead of at rush hour's end).
//! The strong sequence detectors of the Numenta Anomaly Benchmark (the Contextual Anomaly
//! Detector, HTM) learn which *combinations* of recent values occur. This detector is a small
//! detector of that family, written for this engine:
//!
//! * after `warmup_len` values, the range seen so far fixes a quantisation step of
//!   `range / levels`; every value becomes an integer level (levels beyond the warm-up range
//!   are new levels, not clamped to the edge, so a value out of range is novel by itself);
//! * a value's *context* is the set of facts "level `a` `k` values ago, level `b` now" for
//!   `k = 1..=lags`, plus the fact "level `b` occurs";
//! * the magnitude is the share of the current facts never seen before, in [0, 1] (all of them
//!   for a level never seen, a few for a familiar level reached by an unfamiliar path), and the
//!   facts are then remembered (the first value after the warm-up is only remembered: an empty
//!   table would call it wholly new). Pairs at a lag, rather than whole ordered sequences,
//!   generalise: on noisy data a full sequence of five levels is almost always new, a pair
//!   rarely is;
//! * after a magnitude at or above `rest_above`, the next `rest_len` values report 0 while the
//!   detector keeps learning (the Contextual Anomaly Detector's rest period): one anomaly is one
//!   detection, not a run of them.
//!
//! The magnitude is already a probability-like score on a fixed scale (a share), so fusion takes
//! it as it is ([`super::detector_set::DetectorKind::fixed_score`]). Memory is bounded:
//! levels are clamped to `[-4·levels, 5·levels]`, so at most `(lags + 1) · (9·levels + 1)²` facts
//! exist (about 12,000 at the defaults), and a fact costs one `BTreeSet` entry.

use std::collections::{BTreeSet, VecDeque};

use serde::{Deserialize, Serialize};

use super::deviation::Deviation;
use crate::models::ModelError;

/// Settings of the contextual novelty detector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ContextualConfig {
    /// Quantisation levels across the warm-up range. Default 5: measured on the NAB development
    /// subset (docs/design.md, "Detection"), 5 levels beat 6, 8, 12 and 16 — coarse levels make
    /// noise familiar quickly, while a real change still crosses a level.
    pub levels: usize,
    /// Lags `k` of the "level `k` values ago, level now" facts. Default 5 (3 and 7 scored within
    /// a point on NAB; 5 was best).
    pub lags: usize,
    /// Values that fix the range before anything is scored. Default 300 (150 scored lower on
    /// NAB: a short warm-up misjudges the range; NAB's probation is up to 750 rows).
    pub warmup_len: usize,
    /// Values reported as 0 after a detection (the rest period). Default 40: on NAB, 40 scored
    /// above 20, 30, 60 and 100 (a repeat of one anomaly costs a false positive; a long rest
    /// hides the next anomaly).
    pub rest_len: usize,
    /// Magnitude that starts a rest period. Default 0.7 (most of the facts new).
    pub rest_above: f64,
}

impl Default for ContextualConfig {
    fn default() -> Self {
        ContextualConfig {
            levels: 5,
            lags: 5,
            warmup_len: 300,
            rest_len: 40,
            rest_above: 0.7,
        }
    }
}

/// Bound on `levels`: the fact table grows with its square.
const MAX_LEVELS: usize = 64;
/// Bound on `lags`: one fact per lag per value.
const MAX_LAGS: usize = 64;

impl ContextualConfig {
    /// Checks every parameter's range.
    pub fn validate(&self) -> Result<(), ModelError> {
        let l = self.levels;
        ModelError::require(
            (2..=MAX_LEVELS).contains(&l),
            "levels",
            "in [2, 64]",
            l as f64,
        )?;
        let k = self.lags;
        ModelError::require((1..=MAX_LAGS).contains(&k), "lags", "in [1, 64]", k as f64)?;
        let w = self.warmup_len;
        ModelError::require(w >= 2, "warmup_len", "≥ 2", w as f64)?;
        let r = self.rest_above;
        ModelError::require(
            r.is_finite() && r > 0.0 && r <= 1.0,
            "rest_above",
            "in (0, 1]",
            r,
        )
    }

    /// Levels are clamped to `[-4·levels, 5·levels]`: far beyond the warm-up range every value
    /// is novel anyway, and the clamp bounds the fact table.
    fn level_bounds(&self) -> (i32, i32) {
        let l = self.levels.min(MAX_LEVELS) as i32;
        (-4 * l, 5 * l)
    }
}

/// Running state of the contextual detector on one feature of one series.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Contextual {
    seen: u64,
    low: f64,
    high: f64,
    /// Quantisation step, fixed at the end of the warm-up (0 before).
    step: f64,
    /// The last `lags` levels, newest last.
    recent: VecDeque<i32>,
    /// Facts seen: `(0, 0, level)` for "level occurs", `(k, a, b)` for "level `a` `k` values
    /// before level `b`". Ordered, so a checkpoint serialises identically every time.
    facts: BTreeSet<(u8, i32, i32)>,
    /// Values still to report as 0 (rest period).
    resting: usize,
}

impl Contextual {
    /// Scores `value` (`None` during warm-up or for a non-finite value), then learns it.
    pub fn observe(&mut self, cfg: &ContextualConfig, value: f64) -> Option<Deviation> {
        if !value.is_finite() {
            return None;
        }
        if self.seen == 0 {
            (self.low, self.high) = (value, value);
        }
        self.seen += 1;
        if self.step == 0.0 {
            self.low = self.low.min(value);
            self.high = self.high.max(value);
            if self.seen < cfg.warmup_len as u64 {
                return None;
            }
            let range = self.high - self.low;
            // A flat warm-up has no range: a hundredth of the level (or 1e-9 at 0) makes any
            // later change a new level rather than a division by zero.
            let floor = (self.low.abs() * 0.01).max(1e-9);
            self.step = (range.max(floor) / cfg.levels as f64).max(f64::MIN_POSITIVE);
            // The warm-up's values were not quantised; the context starts here.
            return None;
        }
        let level = self.level(cfg, value);
        let lags = cfg.lags.min(MAX_LAGS);
        // An empty fact table cannot judge novelty: its first value would score 1 whatever it
        // is (on NAB, scoring it cost 1.8 points of the standard profile). It is learned only.
        let judge = !self.facts.is_empty();
        let mut facts = 1usize;
        let mut new = usize::from(self.facts.insert((0, 0, level)));
        for (k, &before) in self.recent.iter().rev().enumerate() {
            facts += 1;
            // k < lags ≤ 64, so the lag fits u8.
            new += usize::from(self.facts.insert(((k + 1) as u8, before, level)));
        }
        self.recent.push_back(level);
        while self.recent.len() > lags {
            self.recent.pop_front();
        }
        if !judge {
            return None;
        }
        let share = new as f64 / facts as f64;
        let magnitude = if self.resting > 0 {
            self.resting -= 1;
            0.0
        } else {
            if share >= cfg.rest_above {
                self.resting = cfg.rest_len;
            }
            share
        };
        Some(Deviation {
            magnitude,
            expected: self.low + (self.expected_level() + 0.5) * self.step,
            scale: self.step,
        })
    }

    /// The quantisation level of `value` (clamped, see [`ContextualConfig`]).
    fn level(&self, cfg: &ContextualConfig, value: f64) -> i32 {
        let (lo, hi) = cfg.level_bounds();
        let l = ((value - self.low) / self.step).floor();
        // ±inf (a value far beyond the range) clamps to the bounds; NaN (an infinite step after
        // a warm-up spanning ±1e308) casts to level 0.
        l.clamp(lo as f64, hi as f64) as i32
    }

    /// The level an explanation compares with: the previous value's level (the context the
    /// current value continued from), the lowest level before there is one.
    fn expected_level(&self) -> f64 {
        // recent already holds the current level last; the one before is the context.
        let n = self.recent.len();
        if n >= 2 {
            f64::from(self.recent[n - 2])
        } else {
            0.0
        }
    }

    /// Approximate heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        // A BTreeSet entry costs its key plus node overhead (about twice the key).
        self.facts.len() * 3 * std::mem::size_of::<(u8, i32, i32)>()
            + self.recent.capacity() * std::mem::size_of::<i32>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(cfg: &ContextualConfig, values: &[f64]) -> Vec<Option<f64>> {
        let mut d = Contextual::default();
        values
            .iter()
            .map(|&v| d.observe(cfg, v).map(|x| x.magnitude))
            .collect()
    }

    /// A square wave of period 20 between 0 and 10.
    fn square(n: usize) -> Vec<f64> {
        (0..n)
            .map(|i| if (i / 10) % 2 == 0 { 0.0 } else { 10.0 })
            .collect()
    }

    #[test]
    fn warms_up_then_scores_in_unit_range() {
        let cfg = ContextualConfig {
            warmup_len: 40,
            ..ContextualConfig::default()
        };
        let out = run(&cfg, &square(400));
        assert!(out[..40].iter().all(Option::is_none), "warm-up is silent");
        assert_eq!(out[40], None, "the first quantised value is learned only");
        assert!(out[41..]
            .iter()
            .all(|m| m.is_some_and(|m| (0.0..=1.0).contains(&m))));
    }

    #[test]
    fn a_learned_pattern_is_familiar_and_a_new_level_is_novel() {
        let cfg = ContextualConfig {
            warmup_len: 40,
            ..ContextualConfig::default()
        };
        let mut values = square(400);
        values.push(30.0); // far above the warm-up range
        let out = run(&cfg, &values);
        // Long after warm-up the square wave holds no new fact.
        assert!(out[200..400].iter().all(|m| *m == Some(0.0)), "{out:?}");
        assert_eq!(out[400], Some(1.0), "every fact of a new level is new");
    }

    #[test]
    fn a_familiar_value_in_an_unfamiliar_order_is_novel() {
        // A rising sawtooth 0, 1, .., 9; then 7 right after 9: its level is familiar, but no
        // value of the sawtooth ever came that soon after a 9 (or 8).
        let cfg = ContextualConfig {
            warmup_len: 40,
            rest_len: 0,
            ..ContextualConfig::default()
        };
        let ramp: Vec<f64> = (0..400).map(|i| (i % 10) as f64).collect();
        let mut expected = ramp.clone();
        expected.push(0.0);
        let mut odd = ramp;
        odd.push(7.0);
        assert_eq!(run(&cfg, &expected)[400], Some(0.0), "the usual next value");
        let m = run(&cfg, &odd)[400].expect("scored");
        assert!(m > 0.5, "mostly new pairs: {m}");
        assert!(m < 1.0, "but a known level: {m}");
    }

    #[test]
    fn the_rest_period_silences_the_values_after_a_detection() {
        let cfg = ContextualConfig {
            warmup_len: 40,
            rest_len: 5,
            ..ContextualConfig::default()
        };
        let mut values = square(400);
        // New levels each (step 2, all within the clamp).
        values.extend([30.0, 32.0, 34.0, 36.0, 38.0, 40.0, 42.0]);
        let out = run(&cfg, &values);
        assert_eq!(out[400], Some(1.0));
        assert!(out[401..406].iter().all(|m| *m == Some(0.0)), "{out:?}");
        assert_eq!(out[406], Some(1.0), "scores again after the rest");
    }

    #[test]
    fn flat_warm_up_and_extreme_values_stay_finite() {
        let cfg = ContextualConfig {
            warmup_len: 10,
            ..ContextualConfig::default()
        };
        let mut values = vec![0.0; 20];
        values.extend([f64::NAN, f64::INFINITY, 1e308, -1e308, 0.0, 1e-12]);
        let mut d = Contextual::default();
        for v in values {
            if let Some(x) = d.observe(&cfg, v) {
                assert!((0.0..=1.0).contains(&x.magnitude));
                assert!(x.scale > 0.0 && x.scale.is_finite());
            }
        }
    }

    #[test]
    fn the_state_round_trips_and_continues_identically() {
        let cfg = ContextualConfig {
            warmup_len: 40,
            ..ContextualConfig::default()
        };
        let values: Vec<f64> = (0..300).map(|i| ((i * 7) % 13) as f64).collect();
        let mut a = Contextual::default();
        for &v in &values[..150] {
            a.observe(&cfg, v);
        }
        let json = serde_json::to_string(&a).expect("serialize");
        let mut b: Contextual = serde_json::from_str(&json).expect("deserialize");
        for &v in &values[150..] {
            assert_eq!(a.observe(&cfg, v), b.observe(&cfg, v));
        }
    }

    #[test]
    fn validation_rejects_bad_parameters() {
        assert!(ContextualConfig::default().validate().is_ok());
        for bad in [
            ContextualConfig {
                levels: 1,
                ..ContextualConfig::default()
            },
            ContextualConfig {
                lags: 0,
                ..ContextualConfig::default()
            },
            ContextualConfig {
                warmup_len: 1,
                ..ContextualConfig::default()
            },
            ContextualConfig {
                rest_above: f64::NAN,
                ..ContextualConfig::default()
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }
}
