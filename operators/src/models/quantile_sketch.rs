//! A small mergeable quantile sketch for window percentiles (p50/p95/p99).
//!
//! Windows usually hold a handful of points per series (a 1-minute window over 10-second scrapes
//! holds six), so the sketch is exact until [`EXACT_CAPACITY`] values and costs nothing but a
//! small vector then. Beyond that it becomes a KLL-style stack of compactors (Karnin, Lang and
//! Liberty, 2016): when a level fills up it is sorted and every other item moves one level up with
//! twice the weight. Memory grows with the logarithm of the count, and sliding windows merge the
//! sketches of their panes. Compaction alternates which half it keeps, so the result is
//! deterministic (no random coin) and unbiased on average.

use serde::{Deserialize, Serialize};

/// Values kept exactly before the first compaction.
pub const EXACT_CAPACITY: usize = 64;

/// Items per level above the first; with 32 the rank error stays around 1–2 % for the window
/// sizes seen in practice, at ≈ 256 bytes per level.
const LEVEL_CAPACITY: usize = 32;

/// A quantile summary of a stream of finite values.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct QuantileSketch {
    /// `levels[h]` holds items of weight 2^h.
    levels: Vec<Vec<f64>>,
    /// Which half (even or odd positions) the next compaction keeps; flips on every compaction.
    keep_odd: bool,
}

impl QuantileSketch {
    /// An empty sketch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one value.
    pub fn insert(&mut self, value: f64) {
        if self.levels.is_empty() {
            // Most windows hold a few points and never compact: size for that.
            self.levels.reserve_exact(1);
            self.levels.push(Vec::with_capacity(8));
        }
        self.levels[0].push(value);
        if self.levels[0].len() > EXACT_CAPACITY {
            self.compact_from(0);
        }
    }

    /// Adds all values of `other`, as if they had been inserted here.
    pub fn merge(&mut self, other: &QuantileSketch) {
        for (h, items) in other.levels.iter().enumerate() {
            if self.levels.len() <= h {
                self.levels.push(Vec::new());
            }
            self.levels[h].extend_from_slice(items);
        }
        for h in 0..self.levels.len() {
            if self.levels[h].len() > capacity(h) {
                self.compact_from(h);
            }
        }
    }

    /// Total weight (number of inserted values).
    pub fn count(&self) -> u64 {
        self.levels
            .iter()
            .enumerate()
            .map(|(h, items)| (items.len() as u64) << h)
            .sum()
    }

    /// Whether nothing was inserted.
    pub fn is_empty(&self) -> bool {
        self.levels.iter().all(Vec::is_empty)
    }

    /// Removes every value, keeping allocations.
    pub fn clear(&mut self) {
        self.levels.truncate(1);
        if let Some(first) = self.levels.first_mut() {
            first.clear();
        }
    }

    /// Quantiles for each `q` in `qs` (each in [0, 1]); `None` when empty.
    ///
    /// While exact, the answer interpolates linearly between the closest ranks (numpy's default),
    /// so small windows give the figures users compute by hand. After compaction it is the
    /// weighted nearest rank.
    pub fn quantiles<const N: usize>(&self, qs: [f64; N]) -> Option<[f64; N]> {
        if self.is_empty() {
            return None;
        }
        let mut out = [0.0; N];
        if self.levels.len() == 1 {
            let mut sorted = self.levels[0].clone();
            sorted.sort_unstable_by(f64::total_cmp);
            for (slot, q) in out.iter_mut().zip(qs) {
                *slot = interpolated(&sorted, q);
            }
            return Some(out);
        }
        let mut weighted: Vec<(f64, u64)> = self
            .levels
            .iter()
            .enumerate()
            .flat_map(|(h, items)| items.iter().map(move |&v| (v, 1u64 << h)))
            .collect();
        weighted.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
        let total = self.count() as f64;
        for (slot, q) in out.iter_mut().zip(qs) {
            let target = q.clamp(0.0, 1.0) * total;
            let mut seen = 0.0;
            *slot = weighted.last().map(|w| w.0).unwrap_or_default();
            for &(v, w) in &weighted {
                seen += w as f64;
                if seen >= target {
                    *slot = v;
                    break;
                }
            }
        }
        Some(out)
    }

    /// Bytes held on the heap, for memory accounting.
    pub fn heap_bytes(&self) -> usize {
        self.levels.capacity() * std::mem::size_of::<Vec<f64>>()
            + self
                .levels
                .iter()
                .map(|l| l.capacity() * std::mem::size_of::<f64>())
                .sum::<usize>()
    }

    /// Compacts level `h` and any level above it that overflows as a result.
    fn compact_from(&mut self, mut h: usize) {
        while h < self.levels.len() && self.levels[h].len() > capacity(h) {
            let mut items = std::mem::take(&mut self.levels[h]);
            items.sort_unstable_by(f64::total_cmp);
            // An odd item out stays at this level so no weight is lost.
            let leftover = if items.len() % 2 == 1 {
                items.pop()
            } else {
                None
            };
            let offset = usize::from(self.keep_odd);
            self.keep_odd = !self.keep_odd;
            let promoted: Vec<f64> = items.iter().skip(offset).step_by(2).copied().collect();
            items.clear();
            items.extend(leftover);
            self.levels[h] = items;
            if self.levels.len() == h + 1 {
                self.levels.push(Vec::with_capacity(LEVEL_CAPACITY + 1));
            }
            self.levels[h + 1].extend(promoted);
            h += 1;
        }
    }
}

fn capacity(level: usize) -> usize {
    if level == 0 {
        EXACT_CAPACITY
    } else {
        LEVEL_CAPACITY
    }
}

/// Linear interpolation between closest ranks of a sorted, non-empty slice.
fn interpolated(sorted: &[f64], q: f64) -> f64 {
    let pos = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    let frac = pos - lo as f64;
    sorted[lo] + (sorted[hi] - sorted[lo]) * frac
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_for_small_counts_matches_numpy_linear() {
        let mut s = QuantileSketch::new();
        for v in [3.0, 1.0, 2.0, 4.0] {
            s.insert(v);
        }
        // numpy.percentile([1,2,3,4], [50, 95, 99]) = 2.5, 3.85, 3.97
        let [p50, p95, p99] = s.quantiles([0.5, 0.95, 0.99]).unwrap();
        assert!((p50 - 2.5).abs() < 1e-12);
        assert!((p95 - 3.85).abs() < 1e-12);
        assert!((p99 - 3.97).abs() < 1e-12);
    }

    #[test]
    fn empty_has_no_quantiles() {
        assert_eq!(QuantileSketch::new().quantiles([0.5]), None);
    }

    #[test]
    fn large_stream_stays_within_rank_error_and_small() {
        let mut s = QuantileSketch::new();
        // A permutation of 0..100_000 (multiplication by a unit modulo n).
        let n = 100_000u64;
        for i in 0..n {
            s.insert(((i * 7_919) % n) as f64);
        }
        assert_eq!(s.count(), n);
        let [p50, p95, p99] = s.quantiles([0.5, 0.95, 0.99]).unwrap();
        for (got, want) in [(p50, 50_000.0), (p95, 95_000.0), (p99, 99_000.0)] {
            assert!(
                (got - want).abs() < 0.03 * n as f64,
                "got {got}, want {want}"
            );
        }
        assert!(s.heap_bytes() < 8 * 1024, "{} bytes", s.heap_bytes());
    }

    #[test]
    fn merge_equals_inserting_everything_in_count() {
        let mut a = QuantileSketch::new();
        let mut b = QuantileSketch::new();
        for i in 0..500 {
            a.insert(i as f64);
            b.insert((i + 500) as f64);
        }
        a.merge(&b);
        assert_eq!(a.count(), 1_000);
        let [p50] = a.quantiles([0.5]).unwrap();
        assert!((p50 - 500.0).abs() < 40.0, "{p50}");
    }

    #[test]
    fn clear_empties() {
        let mut s = QuantileSketch::new();
        for i in 0..1_000 {
            s.insert(i as f64);
        }
        s.clear();
        assert!(s.is_empty());
        assert_eq!(s.count(), 0);
    }
}
