//! Per-window summary statistics of one series, mergeable across panes.
//!
//! A sliding window of size `W` sliding by `S` is the union of `W / S` panes of length `S`; each
//! pane keeps a [`PaneStats`] and a window's [`FeatureValues`] come from merging its panes. Mean
//! and variance use Welford's update and Chan et al.'s merge, which stay exact for values as large
//! as byte counters where a sum of squares would cancel catastrophically.

use serde::{Deserialize, Serialize};

use super::quantile_sketch::QuantileSketch;
use crate::series::EventTime;

/// Running statistics of the points of one pane.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PaneStats {
    count: u64,
    mean: f64,
    /// Sum of squared deviations from the mean (Welford's M2).
    m2: f64,
    min: f64,
    max: f64,
    /// Earliest point (time, value); ties keep the first arrival.
    first: (EventTime, f64),
    /// Latest point (time, value); ties keep the last arrival.
    last: (EventTime, f64),
    /// Counter increase inside the pane, treating a drop as a reset to zero (Prometheus rules).
    counter_increase: f64,
    /// Value before this pane's first point, when the series continued from an earlier pane.
    counter_before: Option<f64>,
    /// Value of the most recently inserted point (arrival order), for counter deltas.
    last_arrival: f64,
    sketch: QuantileSketch,
}

impl PaneStats {
    /// An empty pane; `counter_before` is the last value of the series before it, if known.
    pub fn new(counter_before: Option<f64>) -> Self {
        PaneStats {
            counter_before,
            ..Self::default()
        }
    }

    /// Number of points.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The latest point's value, for carrying a counter into the next pane.
    pub fn last_value(&self) -> Option<f64> {
        (self.count > 0).then_some(self.last.1)
    }

    /// Adds a point. Counter increases follow arrival order, which is time order for a series
    /// read from one partition (the supported case; see the window operator).
    pub fn insert(&mut self, time: EventTime, value: f64) {
        if self.count == 0 {
            self.min = value;
            self.max = value;
            self.first = (time, value);
            self.last = (time, value);
            if let Some(prev) = self.counter_before {
                self.counter_increase += counter_delta(prev, value);
            }
        } else {
            self.min = self.min.min(value);
            self.max = self.max.max(value);
            if time < self.first.0 {
                self.first = (time, value);
            }
            self.counter_increase += counter_delta(self.last_arrival, value);
            if time >= self.last.0 {
                self.last = (time, value);
            }
        }
        self.last_arrival = value;
        self.count += 1;
        let delta = value - self.mean;
        self.mean += delta / self.count as f64;
        self.m2 += delta * (value - self.mean);
        self.sketch.insert(value);
    }

    /// Folds `other` (a later pane) into `self`.
    pub fn merge(&mut self, other: &PaneStats) {
        if other.count == 0 {
            return;
        }
        if self.count == 0 {
            *self = other.clone();
            return;
        }
        let n_a = self.count as f64;
        let n_b = other.count as f64;
        let n = n_a + n_b;
        let delta = other.mean - self.mean;
        self.mean += delta * n_b / n;
        self.m2 += other.m2 + delta * delta * n_a * n_b / n;
        self.count += other.count;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        if other.first.0 < self.first.0 {
            self.first = other.first;
        }
        if other.last.0 >= self.last.0 {
            self.last = other.last;
        }
        // `other` measured its increase from the value before it, which is this pane's last.
        self.counter_increase += other.counter_increase;
        self.last_arrival = other.last_arrival;
        self.sketch.merge(&other.sketch);
    }

    /// The features of this pane (or merged window) spanning `span_ms` of event time.
    pub fn features(&self, span_ms: u64) -> Option<FeatureValues> {
        if self.count == 0 {
            return None;
        }
        let [p50, p95, p99] = self.sketch.quantiles([0.5, 0.95, 0.99])?;
        let std = if self.count > 1 {
            (self.m2 / (self.count - 1) as f64).max(0.0).sqrt()
        } else {
            0.0
        };
        let elapsed_ms = self.last.0.saturating_sub(self.first.0);
        let rate_of_change =
            (elapsed_ms > 0).then(|| (self.last.1 - self.first.1) / (elapsed_ms as f64 / 1000.0));
        Some(FeatureValues {
            count: self.count,
            mean: self.mean,
            min: self.min,
            max: self.max,
            std,
            last: self.last.1,
            p50,
            p95,
            p99,
            rate_of_change,
            counter_rate: self.counter_increase / (span_ms.max(1) as f64 / 1000.0),
        })
    }

    /// Approximate heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.sketch.heap_bytes()
    }
}

/// Counter increase from `prev` to `next`: a drop means the counter restarted from zero.
fn counter_delta(prev: f64, next: f64) -> f64 {
    if next >= prev {
        next - prev
    } else {
        next
    }
}

/// The feature set of one closed window.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FeatureValues {
    /// Number of points.
    pub count: u64,
    /// Arithmetic mean.
    pub mean: f64,
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
    /// Sample standard deviation (0 for a single point).
    pub std: f64,
    /// Value of the latest point.
    pub last: f64,
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
    /// (last − first) / elapsed seconds between them; absent with one timestamp only.
    pub rate_of_change: Option<f64>,
    /// Counter-reset-aware increase per second over the window (meaningful for counters only).
    pub counter_rate: f64,
}

impl FeatureValues {
    /// The features of a window holding one point: how `harbinger score` presents a CSV row to
    /// the same detectors the engine feeds with windows.
    pub fn single(value: f64) -> Self {
        FeatureValues {
            count: 1,
            mean: value,
            min: value,
            max: value,
            std: 0.0,
            last: value,
            p50: value,
            p95: value,
            p99: value,
            rate_of_change: None,
            counter_rate: 0.0,
        }
    }
}

/// Names of the features a detector can watch, as written in config and output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Feature {
    /// [`FeatureValues::count`]
    Count,
    /// [`FeatureValues::mean`]
    Mean,
    /// [`FeatureValues::min`]
    Min,
    /// [`FeatureValues::max`]
    Max,
    /// [`FeatureValues::std`]
    Std,
    /// [`FeatureValues::last`]
    Last,
    /// [`FeatureValues::p50`]
    P50,
    /// [`FeatureValues::p95`]
    P95,
    /// [`FeatureValues::p99`]
    P99,
    /// [`FeatureValues::rate_of_change`]
    RateOfChange,
    /// [`FeatureValues::counter_rate`]
    CounterRate,
}

impl Feature {
    /// Every feature, in output order.
    pub const ALL: [Feature; 11] = [
        Feature::Count,
        Feature::Mean,
        Feature::Min,
        Feature::Max,
        Feature::Std,
        Feature::Last,
        Feature::P50,
        Feature::P95,
        Feature::P99,
        Feature::RateOfChange,
        Feature::CounterRate,
    ];

    /// The name used in config files and output.
    pub fn name(self) -> &'static str {
        match self {
            Feature::Count => "count",
            Feature::Mean => "mean",
            Feature::Min => "min",
            Feature::Max => "max",
            Feature::Std => "std",
            Feature::Last => "last",
            Feature::P50 => "p50",
            Feature::P95 => "p95",
            Feature::P99 => "p99",
            Feature::RateOfChange => "rate_of_change",
            Feature::CounterRate => "counter_rate",
        }
    }

    /// This feature's value in `values`; `None` when it is undefined for the window.
    pub fn of(self, values: &FeatureValues) -> Option<f64> {
        match self {
            Feature::Count => Some(values.count as f64),
            Feature::Mean => Some(values.mean),
            Feature::Min => Some(values.min),
            Feature::Max => Some(values.max),
            Feature::Std => Some(values.std),
            Feature::Last => Some(values.last),
            Feature::P50 => Some(values.p50),
            Feature::P95 => Some(values.p95),
            Feature::P99 => Some(values.p99),
            Feature::RateOfChange => values.rate_of_change,
            Feature::CounterRate => Some(values.counter_rate),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pane(points: &[(u64, f64)], before: Option<f64>) -> PaneStats {
        let mut p = PaneStats::new(before);
        for &(t, v) in points {
            p.insert(t, v);
        }
        p
    }

    #[test]
    fn basic_features() {
        let f = pane(
            &[(0, 2.0), (10_000, 4.0), (20_000, 6.0), (30_000, 8.0)],
            None,
        )
        .features(60_000)
        .unwrap();
        assert_eq!(f.count, 4);
        assert_eq!(f.mean, 5.0);
        assert_eq!((f.min, f.max, f.last), (2.0, 8.0, 8.0));
        // Sample std of 2,4,6,8 = sqrt(20/3).
        assert!((f.std - (20.0f64 / 3.0).sqrt()).abs() < 1e-12);
        assert_eq!(f.p50, 5.0);
        // (8 − 2) / 30 s
        assert!((f.rate_of_change.unwrap() - 0.2).abs() < 1e-12);
    }

    #[test]
    fn out_of_order_points_keep_time_order_for_first_and_last() {
        let f = pane(
            &[(20_000, 6.0), (0, 2.0), (30_000, 8.0), (10_000, 4.0)],
            None,
        )
        .features(60_000)
        .unwrap();
        assert_eq!(f.last, 8.0);
        assert!((f.rate_of_change.unwrap() - 0.2).abs() < 1e-12);
    }

    #[test]
    fn counter_rate_handles_reset_and_previous_pane() {
        // Previous pane ended at 90; 100 → 130, reset to 5, then 25: increase 10+30+5+20 = 65.
        let f = pane(&[(0, 100.0), (1, 130.0), (2, 5.0), (3, 25.0)], Some(90.0))
            .features(10_000)
            .unwrap();
        assert!((f.counter_rate - 6.5).abs() < 1e-12, "{}", f.counter_rate);
    }

    #[test]
    fn merge_equals_single_pane() {
        let points: Vec<(u64, f64)> = (0..40)
            .map(|i| (i * 1_000, 1e9 + (i * 37 % 11) as f64))
            .collect();
        let whole = pane(&points, Some(1e9)).features(40_000).unwrap();
        let mut a = pane(&points[..15], Some(1e9));
        let b = pane(&points[15..], a.last_value());
        a.merge(&b);
        let merged = a.features(40_000).unwrap();
        assert_eq!(whole.count, merged.count);
        assert!((whole.mean - merged.mean).abs() < 1e-6);
        assert!(
            (whole.std - merged.std).abs() < 1e-6,
            "{} {}",
            whole.std,
            merged.std
        );
        assert_eq!(whole.last, merged.last);
        assert_eq!(whole.p50, merged.p50);
        assert!((whole.counter_rate - merged.counter_rate).abs() < 1e-9);
    }

    #[test]
    fn empty_pane_has_no_features() {
        assert!(PaneStats::new(None).features(1_000).is_none());
    }
}
