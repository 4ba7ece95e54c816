//! The Kubernetes Vertical Pod Autoscaler recommender (autoscaler/vertical-pod-autoscaler,
//! `pkg/recommender`), implemented from its documented defaults as the baseline our right-sizing
//! is measured against. Facts used (flags and constants of the recommender, and its design
//! proposal "Vertical Pod Autoscaler", kubernetes/community):
//!
//! * Usage goes into a [`DecayingHistogram`] with exponential buckets (CPU: first bucket 0.01
//!   cores, max 1000 cores; memory: first bucket 10 MB, max 1 TB; each bucket 5% wider —
//!   `DefaultHistogramBucketSizeGrowth = 0.05`) and a 24 h half-life
//!   (`DefaultCPUHistogramDecayHalfLife`, `DefaultMemoryHistogramDecayHalfLife`).
//! * CPU: every usage sample is added. Memory: one sample per aggregation interval — its peak
//!   (`DefaultMemoryAggregationInterval = 24h`, `DefaultMemoryAggregationIntervalCount = 8`); a
//!   higher sample in the same interval replaces the interval's peak.
//! * Target = 90th percentile (`--target-cpu-percentile`, `--target-memory-percentile`), lower
//!   bound = 50th, upper bound = 95th; every estimate is raised by the safety margin of 15%
//!   (`--recommendation-margin-fraction = 0.15`).
//! * Bounds widen while the history is short: with confidence `c` = min(history span in days,
//!   sample count / 1440) (one sample a minute makes a day), the upper bound is multiplied by
//!   (1 + 1/c)^1 and the lower bound by (1 + 0.001/c)^−2 (`WithConfidenceMultiplier(1.0, 1.0)`
//!   and `(0.001, −2.0)` in `logic/recommender.go`).
//! * Floors: 25 mCPU (`--pod-recommendation-min-cpu-millicores`) and 250 MB
//!   (`--pod-recommendation-min-memory-mb`).
//!
//! Simplification: VPA weighs CPU samples by the container's request at the time (at least 0.1
//! core); the stream has no request, so every sample weighs 1 (the percentile of usage time).
//! OOM-driven memory bumps are not modelled (the stream carries no OOM events).

use serde::{Deserialize, Serialize};

use super::confidence::history_confidence;
use super::decaying_histogram::{DecayingHistogram, HistogramOptions};
use super::draft::RecommendationDraft;
use crate::models::ModelError;
use crate::records::recommendation::RecommendationCategory;
use crate::series::EventTime;

/// One day in milliseconds.
pub const DAY_MS: u64 = 86_400_000;

/// Which resource the recommender sizes: it decides the histogram layout, the floor and whether
/// samples or per-interval peaks are counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VpaResource {
    /// CPU in cores: every sample counts.
    Cpu,
    /// Memory in bytes: the peak of each aggregation interval counts.
    Memory,
}

/// Settings of the VPA baseline. `Default` is VPA's CPU configuration; [`VpaConfig::memory`]
/// its memory configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VpaConfig {
    /// CPU or memory.
    pub resource: VpaResource,
    /// Histogram bucket layout (see [`HistogramOptions::vpa_cpu`], [`HistogramOptions::vpa_memory`]).
    pub histogram: HistogramOptions,
    /// Half-life of a sample's weight. Default 24 h (VPA's default for both resources).
    pub half_life_ms: u64,
    /// Percentile of the target. Default 0.9.
    pub target_percentile: f64,
    /// Percentile of the lower bound. Default 0.5.
    pub lower_bound_percentile: f64,
    /// Percentile of the upper bound. Default 0.95.
    pub upper_bound_percentile: f64,
    /// Fraction added to every estimate. Default 0.15.
    pub safety_margin: f64,
    /// Smallest recommendation: 0.025 cores or 250 MB (2.5e8 bytes; VPA's "MB" is 10^6 bytes).
    pub min_value: f64,
    /// Memory peaks are taken per interval of this length. Default 24 h.
    pub memory_aggregation_interval_ms: u64,
    /// Samples that make one "day" of confidence. Default 1440 (VPA assumes one a minute).
    pub samples_per_day: f64,
}

impl Default for VpaConfig {
    fn default() -> Self {
        Self::cpu()
    }
}

impl VpaConfig {
    /// VPA's CPU defaults.
    pub fn cpu() -> Self {
        Self {
            resource: VpaResource::Cpu,
            histogram: HistogramOptions::vpa_cpu(),
            half_life_ms: DAY_MS,
            target_percentile: 0.9,
            lower_bound_percentile: 0.5,
            upper_bound_percentile: 0.95,
            safety_margin: 0.15,
            min_value: 0.025,
            memory_aggregation_interval_ms: DAY_MS,
            samples_per_day: 1440.0,
        }
    }

    /// VPA's memory defaults (bytes).
    pub fn memory() -> Self {
        Self {
            resource: VpaResource::Memory,
            histogram: HistogramOptions::vpa_memory(),
            min_value: 2.5e8,
            ..Self::cpu()
        }
    }

    /// Checks every parameter's range.
    pub fn validate(&self) -> Result<(), ModelError> {
        self.histogram.validate()?;
        for (name, p) in [
            ("target_percentile", self.target_percentile),
            ("lower_bound_percentile", self.lower_bound_percentile),
            ("upper_bound_percentile", self.upper_bound_percentile),
        ] {
            ModelError::require((0.0..=1.0).contains(&p), name, "in [0, 1]", p)?;
        }
        let non_negative = |name, v: f64| {
            ModelError::require(
                v.is_finite() && v >= 0.0,
                name,
                "finite and non-negative",
                v,
            )
        };
        non_negative("safety_margin", self.safety_margin)?;
        non_negative("min_value", self.min_value)?;
        if self.half_life_ms == 0 || self.memory_aggregation_interval_ms == 0 {
            return Err(ModelError::InvalidParameter {
                name: "half_life_ms",
                reason: "half-life and aggregation interval must be positive".into(),
            });
        }
        let s = self.samples_per_day;
        ModelError::require(s.is_finite() && s > 0.0, "samples_per_day", "positive", s)
    }

    /// Validates and starts an empty recommender.
    pub fn start(&self) -> Result<Vpa, ModelError> {
        self.validate()?;
        Ok(Vpa {
            histogram: DecayingHistogram::new(self.histogram, self.half_life_ms)?,
            cfg: self.clone(),
            first_ms: None,
            last_ms: 0,
            samples: 0,
            peak: None,
        })
    }
}

/// The memory peak of the current aggregation interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct IntervalPeak {
    start_ms: EventTime,
    value: f64,
}

/// VPA's three estimates.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct VpaEstimate {
    /// Recommended request: P90 × (1 + margin), at least the floor.
    pub target: f64,
    /// Lowest request VPA leaves alone: P50 × (1 + margin) × (1 + 0.001/c)^−2.
    pub lower_bound: f64,
    /// Highest request VPA leaves alone: P95 × (1 + margin) × (1 + 1/c).
    pub upper_bound: f64,
    /// VPA's confidence `c`, in days of history.
    pub confidence_days: f64,
}

/// The running VPA recommender of one container (serde state: checkpointable).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Vpa {
    cfg: VpaConfig,
    histogram: DecayingHistogram,
    first_ms: Option<EventTime>,
    last_ms: EventTime,
    samples: u64,
    peak: Option<IntervalPeak>,
}

impl Vpa {
    /// The configuration it runs with.
    pub fn config(&self) -> &VpaConfig {
        &self.cfg
    }

    /// Absorbs one usage sample; negative usage counts as 0.
    ///
    /// # Errors
    /// A non-finite value (the state is left unchanged).
    pub fn observe(&mut self, time_ms: EventTime, value: f64) -> Result<(), ModelError> {
        if !value.is_finite() {
            return Err(ModelError::NonFinite { index: 0 });
        }
        let value = value.max(0.0);
        self.first_ms = Some(self.first_ms.map_or(time_ms, |f| f.min(time_ms)));
        self.last_ms = self.last_ms.max(time_ms);
        self.samples += 1;
        match self.cfg.resource {
            VpaResource::Cpu => self.histogram.add(value, 1.0, time_ms),
            VpaResource::Memory => {
                let interval = self.cfg.memory_aggregation_interval_ms;
                let start = time_ms - time_ms % interval;
                match self.peak {
                    Some(p) if p.start_ms == start => {
                        if value > p.value {
                            self.histogram.subtract(p.value, 1.0, p.start_ms);
                            self.histogram.add(value, 1.0, start);
                            self.peak = Some(IntervalPeak {
                                start_ms: start,
                                value,
                            });
                        }
                    }
                    // Late samples of an earlier interval are dropped: its peak is settled.
                    Some(p) if start < p.start_ms => {}
                    _ => {
                        self.histogram.add(value, 1.0, start);
                        self.peak = Some(IntervalPeak {
                            start_ms: start,
                            value,
                        });
                    }
                }
            }
        }
        Ok(())
    }

    /// VPA's confidence in days: min(history span, samples / samples-per-day).
    pub fn confidence_days(&self) -> f64 {
        let Some(first) = self.first_ms else {
            return 0.0;
        };
        let span = (self.last_ms - first) as f64 / DAY_MS as f64;
        span.min(self.samples as f64 / self.cfg.samples_per_day)
    }

    /// Target and bounds, `None` before the first sample.
    pub fn estimate(&self) -> Option<VpaEstimate> {
        let margin = 1.0 + self.cfg.safety_margin;
        let target = self.histogram.percentile(self.cfg.target_percentile)? * margin;
        let lower = self.histogram.percentile(self.cfg.lower_bound_percentile)? * margin;
        let upper = self.histogram.percentile(self.cfg.upper_bound_percentile)? * margin;
        let c = self.confidence_days();
        // VPA divides by c; with a single sample c is 0 and its upper bound infinite. One minute
        // of history is the least we admit, so the bound stays finite (and huge).
        let c_eff = c.max(1.0 / 1440.0);
        let upper = upper * (1.0 + 1.0 / c_eff);
        let lower = lower * (1.0 + 0.001 / c_eff).powf(-2.0);
        let floor = self.cfg.min_value;
        Some(VpaEstimate {
            target: target.max(floor),
            lower_bound: lower.max(floor),
            upper_bound: upper.max(floor),
            confidence_days: c,
        })
    }

    /// The recommendation as a draft: `request` (the target), `lower_bound` and `upper_bound`.
    ///
    /// Expected improvement: with `current_request` above the target, the share of the current
    /// request that is freed ((current − target) / current); below it, the decayed share of
    /// recent usage (or peaks) above the current request, which the target brings back under.
    /// Confidence: VPA's confidence in days over 8 days (its memory history window,
    /// 8 × 24 h), capped at 1. `None` before the first sample.
    pub fn recommend(&self, current_request: Option<f64>) -> Option<RecommendationDraft> {
        let e = self.estimate()?;
        let mut d = RecommendationDraft::new(RecommendationCategory::ResourceAllocation, "ml:vpa");
        d.recommended.insert("request".into(), e.target);
        d.recommended.insert("lower_bound".into(), e.lower_bound);
        d.recommended.insert("upper_bound".into(), e.upper_bound);
        d.confidence = history_confidence(e.confidence_days, 8.0);
        if let Some(cur) = current_request.filter(|c| c.is_finite() && *c > 0.0) {
            d.current.insert("request".into(), cur);
            d.expected_improvement_pct = if cur > e.target {
                100.0 * (cur - e.target) / cur
            } else {
                100.0 * self.histogram.fraction_above(cur)
            };
        }
        d.evidence.push(format!(
            "P{:.0} of decayed usage × {:.2} = {:.4}; bounds {:.4}..{:.4}",
            self.cfg.target_percentile * 100.0,
            1.0 + self.cfg.safety_margin,
            e.target,
            e.lower_bound,
            e.upper_bound
        ));
        d.evidence.push(format!(
            "{} samples over {:.1} days (half-life {} h)",
            self.samples,
            e.confidence_days,
            self.cfg.half_life_ms / 3_600_000
        ));
        Some(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: u64 = 60_000;

    #[test]
    fn cpu_target_is_p90_plus_margin() {
        let mut v = VpaConfig::cpu().start().unwrap();
        // A week of one-minute samples cycling 0.5..1.49 evenly: P90 ≈ 1.40.
        for i in 0..7 * 1440u64 {
            v.observe(i * MIN, 0.5 + (i % 100) as f64 / 100.0).unwrap();
        }
        let e = v.estimate().unwrap();
        let p90 = e.target / 1.15;
        assert!((1.39..=1.40 * 1.05 + 1e-9).contains(&p90), "{p90}");
        assert!(e.lower_bound < e.target && e.target < e.upper_bound);
        // 7 days of history: upper bound × (1 + 1/7).
        assert!((e.confidence_days - 7.0).abs() < 0.01);
        let d = v.recommend(Some(4.0)).unwrap();
        assert!(d.expected_improvement_pct > 50.0);
        assert!((d.confidence - 7.0 / 8.0).abs() < 0.01);
    }

    #[test]
    fn memory_counts_one_peak_per_day() {
        let mut v = VpaConfig::memory().start().unwrap();
        // Each day: many small samples and one peak of 2 GB; the P90 of peaks is ≈ 2 GB even
        // though almost every sample is 1 GB.
        for day in 0..8u64 {
            for m in 0..1440u64 {
                let t = day * DAY_MS + m * MIN;
                let val = if m == 700 { 2e9 } else { 1e9 };
                v.observe(t, val).unwrap();
            }
        }
        let e = v.estimate().unwrap();
        assert!(
            e.target >= 2e9 * 1.15 && e.target <= 2e9 * 1.15 * 1.05 + 1.0,
            "{}",
            e.target
        );
    }

    #[test]
    fn short_history_widens_bounds_and_floor_applies() {
        let mut v = VpaConfig::cpu().start().unwrap();
        assert!(v.estimate().is_none());
        v.observe(0, 0.001).unwrap();
        v.observe(MIN, 0.001).unwrap();
        let e = v.estimate().unwrap();
        assert_eq!(e.target, 0.025);
        assert!(e.upper_bound.is_finite());
        assert!(v.observe(2 * MIN, f64::NAN).is_err());
    }

    #[test]
    fn state_roundtrips_through_serde() {
        let mut v = VpaConfig::cpu().start().unwrap();
        for i in 0..100u64 {
            v.observe(i * MIN, 1.0 + (i % 7) as f64).unwrap();
        }
        let json = serde_json::to_string(&v).unwrap();
        let back: Vpa = serde_json::from_str(&json).unwrap();
        assert_eq!(back, v);
    }
}
