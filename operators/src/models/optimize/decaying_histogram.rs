//! The decaying histogram of the Kubernetes VPA recommender: exponentially growing buckets (each
//! 5% wider than the last by default, so the relative resolution is the same for 50 mCPU and for
//! 50 CPU) holding sample weights that grow as 2^(t / half-life) — the same as letting every older
//! sample's weight halve each half-life, without touching old buckets on every insert.
//!
//! The weights are kept relative to a reference time; when the exponent of a new sample would
//! exceed [`MAX_DECAY_EXPONENT`] the reference moves forward and every bucket is rescaled once,
//! which keeps the numbers finite for any stream length (VPA does the same, with the same bound).
//! Percentiles follow VPA: the *end* of the first bucket whose cumulative weight reaches the
//! requested fraction, so a percentile errs on the high side by at most one bucket width.

use serde::{Deserialize, Serialize};

use crate::models::ModelError;
use crate::series::EventTime;

/// Largest decay exponent before the reference time moves (VPA's `maxDecayExponent`): 2^100
/// is far from f64 overflow even after summing many samples.
pub const MAX_DECAY_EXPONENT: f64 = 100.0;

/// Bucket weight below which a histogram counts as empty (VPA's `epsilon` = 0.001 × its minimal
/// sample weight 0.1).
pub const EPSILON_WEIGHT: f64 = 1e-4;

/// Bucket layout: bucket `i` starts at `first_bucket_size · (ratio^i − 1) / (ratio − 1)`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistogramOptions {
    /// Width of the first bucket (VPA: 0.01 cores for CPU, 10 MB = 1e7 bytes for memory).
    pub first_bucket_size: f64,
    /// Growth of each bucket's width over the previous one (VPA: 1.05).
    pub ratio: f64,
    /// Values at or above this land in the last bucket (VPA: 1000 cores, 1 TB = 1e12 bytes).
    pub max_value: f64,
}

impl HistogramOptions {
    /// VPA's CPU histogram, in cores (`CPUHistogramOptions` of the recommender's
    /// `aggregations_config.go`: max 1000 cores, first bucket 0.01 cores, growth 5%).
    pub fn vpa_cpu() -> Self {
        Self {
            first_bucket_size: 0.01,
            ratio: 1.05,
            max_value: 1000.0,
        }
    }

    /// VPA's memory histogram, in bytes (`MemoryHistogramOptions`: max 1 TB, first bucket 10 MB,
    /// growth 5%).
    pub fn vpa_memory() -> Self {
        Self {
            first_bucket_size: 1e7,
            ratio: 1.05,
            max_value: 1e12,
        }
    }

    /// Checks the ranges: positive finite sizes, ratio > 1, max above the first bucket, and
    /// at most 100 000 buckets.
    pub fn validate(&self) -> Result<(), ModelError> {
        let first = self.first_bucket_size;
        ModelError::require(
            first.is_finite() && first > 0.0,
            "first_bucket_size",
            "positive and finite",
            first,
        )?;
        let ratio = self.ratio;
        ModelError::require(
            ratio.is_finite() && ratio > 1.0,
            "ratio",
            "a finite number above 1",
            ratio,
        )?;
        let max = self.max_value;
        ModelError::require(
            max.is_finite() && max > first,
            "max_value",
            "finite and above first_bucket_size",
            max,
        )?;
        if self.num_buckets() > 100_000 {
            return Err(ModelError::InvalidParameter {
                name: "ratio",
                reason: "too many buckets (over 100 000) for this ratio and range".into(),
            });
        }
        Ok(())
    }

    /// Number of buckets: enough for `max_value` plus the open-ended last one.
    pub fn num_buckets(&self) -> usize {
        let n = (self.max_value * (self.ratio - 1.0) / self.first_bucket_size + 1.0).ln()
            / self.ratio.ln();
        n.ceil().max(1.0) as usize + 1
    }

    /// Start of bucket `i`.
    pub fn bucket_start(&self, i: usize) -> f64 {
        if i == 0 {
            return 0.0;
        }
        self.first_bucket_size * (self.ratio.powi(i as i32) - 1.0) / (self.ratio - 1.0)
    }

    /// The bucket holding `value` (negative and NaN values land in bucket 0).
    pub fn bucket_of(&self, value: f64) -> usize {
        let last = self.num_buckets() - 1;
        if value.is_nan() || value < self.first_bucket_size {
            return 0;
        }
        let i = ((value * (self.ratio - 1.0) / self.first_bucket_size + 1.0).ln()
            / self.ratio.ln())
        .floor();
        // Rounding in ln can put a value exactly on a boundary one bucket low or high.
        let mut i = (i.max(0.0) as usize).min(last);
        while i < last && self.bucket_start(i + 1) <= value {
            i += 1;
        }
        while i > 0 && self.bucket_start(i) > value {
            i -= 1;
        }
        i
    }
}

/// A histogram whose samples lose half their weight every `half_life_ms`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecayingHistogram {
    options: HistogramOptions,
    half_life_ms: u64,
    /// Weights are relative to this time: a sample at the reference has its own weight.
    reference_ms: EventTime,
    weights: Vec<f64>,
    total: f64,
}

impl DecayingHistogram {
    /// An empty histogram.
    ///
    /// # Errors
    /// Invalid `options`, or a zero `half_life_ms`.
    pub fn new(options: HistogramOptions, half_life_ms: u64) -> Result<Self, ModelError> {
        options.validate()?;
        if half_life_ms == 0 {
            return Err(ModelError::InvalidParameter {
                name: "half_life_ms",
                reason: "must be positive".into(),
            });
        }
        Ok(Self {
            options,
            half_life_ms,
            reference_ms: 0,
            weights: vec![0.0; options.num_buckets()],
            total: 0.0,
        })
    }

    /// The bucket layout.
    pub fn options(&self) -> &HistogramOptions {
        &self.options
    }

    /// Whether no weight is left.
    pub fn is_empty(&self) -> bool {
        self.total < EPSILON_WEIGHT
    }

    /// Adds `value` with `weight` at `time_ms`; non-finite values or weights are ignored.
    pub fn add(&mut self, value: f64, weight: f64, time_ms: EventTime) {
        if !(value.is_finite() && weight.is_finite() && weight > 0.0) {
            return;
        }
        let w = weight * self.decay_factor(time_ms);
        let b = self.options.bucket_of(value);
        self.weights[b] += w;
        self.total += w;
    }

    /// Removes `weight` of `value` added at `time_ms` (VPA replaces a memory peak this way);
    /// a bucket never goes below zero.
    pub fn subtract(&mut self, value: f64, weight: f64, time_ms: EventTime) {
        if !(value.is_finite() && weight.is_finite() && weight > 0.0) {
            return;
        }
        let w = weight * self.decay_factor(time_ms);
        let b = self.options.bucket_of(value);
        let removed = w.min(self.weights[b]);
        self.weights[b] -= removed;
        self.total = (self.total - removed).max(0.0);
    }

    /// The `p`-quantile (p in [0, 1]) as VPA computes it: the end of the first bucket whose
    /// cumulative weight reaches `p` of the total (the start of the last, open-ended bucket).
    /// `None` when empty.
    pub fn percentile(&self, p: f64) -> Option<f64> {
        if self.is_empty() || !p.is_finite() {
            return None;
        }
        let threshold = p.clamp(0.0, 1.0) * self.total;
        let last = self.weights.len() - 1;
        let mut sum = 0.0;
        let mut bucket = last;
        for (i, w) in self.weights.iter().enumerate() {
            sum += w;
            if *w > 0.0 && sum >= threshold {
                bucket = i;
                break;
            }
        }
        if bucket < last {
            Some(self.options.bucket_start(bucket + 1))
        } else {
            Some(self.options.bucket_start(last))
        }
    }

    /// The non-empty buckets as `(start, end, share of the total weight)`, lowest first (the
    /// open-ended last bucket ends at its start).
    pub fn buckets(&self) -> Vec<(f64, f64, f64)> {
        if self.is_empty() {
            return Vec::new();
        }
        let last = self.weights.len() - 1;
        self.weights
            .iter()
            .enumerate()
            .filter(|(_, w)| **w > 0.0)
            .map(|(i, w)| {
                let start = self.options.bucket_start(i);
                let end = if i < last {
                    self.options.bucket_start(i + 1)
                } else {
                    start
                };
                (start, end, w / self.total)
            })
            .collect()
    }

    /// Share of the (decayed) weight in buckets that start above `value`: roughly, how often
    /// recent samples exceeded it.
    pub fn fraction_above(&self, value: f64) -> f64 {
        if self.is_empty() {
            return 0.0;
        }
        let b = self.options.bucket_of(value);
        let above: f64 = self.weights.iter().skip(b + 1).sum();
        (above / self.total).clamp(0.0, 1.0)
    }

    /// 2^((t − reference) / half-life), moving the reference forward first when the exponent
    /// would exceed [`MAX_DECAY_EXPONENT`].
    fn decay_factor(&mut self, time_ms: EventTime) -> f64 {
        let hl = self.half_life_ms as f64;
        let exponent = (time_ms as f64 - self.reference_ms as f64) / hl;
        if exponent > MAX_DECAY_EXPONENT {
            // Rebase on a whole number of half-lives before `time_ms`, so the rescale is an
            // exact power of two and repeated shifts do not accumulate rounding.
            let new_ref = time_ms - time_ms % self.half_life_ms;
            let scale = 2f64.powf(-((new_ref - self.reference_ms) as f64) / hl);
            for w in &mut self.weights {
                *w *= scale;
            }
            self.total *= scale;
            self.reference_ms = new_ref;
        }
        2f64.powf((time_ms as f64 - self.reference_ms as f64) / hl)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: u64 = 3_600_000;

    #[test]
    fn vpa_bucket_layout() {
        let o = HistogramOptions::vpa_cpu();
        // ln(1000·0.05/0.01 + 1)/ln 1.05 = 174.6 → 175 + 1 open-ended bucket.
        assert_eq!(o.num_buckets(), 176);
        assert!((o.bucket_start(1) - 0.01).abs() < 1e-12);
        assert!((o.bucket_start(2) - 0.0205).abs() < 1e-12);
        for v in [0.0, 0.005, 0.01, 0.0205, 0.5, 3.7, 999.0, 5000.0] {
            let b = o.bucket_of(v);
            assert!(o.bucket_start(b) <= v.max(0.0));
            assert!(b == o.num_buckets() - 1 || o.bucket_start(b + 1) > v);
        }
    }

    #[test]
    fn percentile_is_bucket_end_and_decays() {
        let mut h = DecayingHistogram::new(HistogramOptions::vpa_cpu(), 24 * HOUR).unwrap();
        assert_eq!(h.percentile(0.9), None);
        for i in 0..100 {
            h.add(1.0 + i as f64 / 100.0, 1.0, 0);
        }
        let p90 = h.percentile(0.9).unwrap();
        // True p90 is 1.89; the bucket end is at most 5% above it.
        assert!((1.89..=1.89 * 1.05 + 1e-9).contains(&p90), "{p90}");
        // A day later the same amount of weight at 4.0 counts twice as much as the old samples.
        for _ in 0..100 {
            h.add(4.0, 1.0, 24 * HOUR);
        }
        assert!((h.fraction_above(3.0) - 2.0 / 3.0).abs() < 1e-9);
        // Moving far into the future rebases without overflow.
        h.add(2.0, 1.0, 200 * 24 * HOUR);
        assert!(h.total.is_finite());
        assert!((h.percentile(0.5).unwrap() - 2.0).abs() < 0.11);
    }

    #[test]
    fn subtract_replaces_a_sample() {
        let mut h = DecayingHistogram::new(HistogramOptions::vpa_cpu(), 24 * HOUR).unwrap();
        h.add(1.0, 1.0, HOUR);
        h.subtract(1.0, 1.0, HOUR);
        assert!(h.is_empty());
        h.add(2.0, 1.0, HOUR);
        assert!(h.percentile(1.0).unwrap() >= 2.0);
    }

    #[test]
    fn rejects_bad_options() {
        let bad = HistogramOptions {
            ratio: 1.0,
            ..HistogramOptions::vpa_cpu()
        };
        assert!(DecayingHistogram::new(bad, HOUR).is_err());
        assert!(DecayingHistogram::new(HistogramOptions::vpa_cpu(), 0).is_err());
    }
}
