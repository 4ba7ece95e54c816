//! The training memory of the streaming vector models: the most recent *normal* vectors, and the
//! policy that decides when a model is refitted on them.
//!
//! Isolation forests and one-class SVMs are batch models. To follow a series whose normal slowly
//! changes, they are refitted on a ring of recent vectors that the ensemble did not find
//! anomalous (so an incident does not teach the model that the incident is normal):
//! * while the ring fills, each time it has doubled since the last fit;
//! * then on a schedule, every `refit_every` observations;
//! * earlier when drift is seen: the short-term mean of the model's own novelty magnitudes has
//!   stayed above `drift_ratio` times its long-term mean — the model is persistently surprised,
//!   which happens when the normal moved (a deploy, a new traffic level), not for a lone spike.

use serde::{Deserialize, Serialize};

use crate::models::ModelError;

/// When the streaming vector models fit and refit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RefitPolicy {
    /// Most recent normal vectors kept for training (default 256, the isolation forest's ψ).
    pub capacity: usize,
    /// Vectors needed before the first fit (default 64).
    pub min_rows: usize,
    /// Observations between scheduled refits (default 1024: a refit costs milliseconds, and the
    /// engine runs one model per watched series).
    pub refit_every: usize,
    /// Short/long novelty ratio that counts as drift (default 2; 0 disables drift refits).
    pub drift_ratio: f64,
}

impl Default for RefitPolicy {
    fn default() -> Self {
        RefitPolicy {
            capacity: 256,
            min_rows: 64,
            refit_every: 1024,
            drift_ratio: 2.0,
        }
    }
}

impl RefitPolicy {
    /// Checks every parameter's range.
    pub fn validate(&self) -> Result<(), ModelError> {
        let bad = |name, reason: String| Err(ModelError::InvalidParameter { name, reason });
        let capacity = self.capacity;
        ModelError::require(
            (8..=65_536).contains(&capacity),
            "capacity",
            "between 8 and 65536",
            capacity as f64,
        )?;
        ModelError::require(
            (8..=capacity).contains(&self.min_rows),
            "min_rows",
            &format!("between 8 and capacity ({capacity})"),
            self.min_rows as f64,
        )?;
        if self.refit_every == 0 {
            return bad("refit_every", "must be at least 1".into());
        }
        let d = self.drift_ratio;
        ModelError::require(d.is_finite() && d >= 0.0, "drift_ratio", "≥ 0", d)
    }
}

/// Memory of the fast novelty mean: about 16 observations.
const DRIFT_FAST: f64 = 1.0 / 16.0;
/// Memory of the slow novelty mean: about 256 observations.
const DRIFT_SLOW: f64 = 1.0 / 256.0;

/// A ring of recent normal vectors and the bookkeeping of the refit policy.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Reservoir {
    width: usize,
    /// Row-major ring of `len` rows; `next` is where the next row goes.
    rows: Vec<f32>,
    len: usize,
    next: usize,
    since_fit: usize,
    fits: u64,
    fast: f64,
    slow: f64,
    /// Magnitudes seen since the last fit.
    scored: u64,
    /// Rows held at the last fit.
    fitted_len: usize,
}

impl Reservoir {
    /// Number of vectors held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no vector is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of fits so far (also used to derive each fit's seed).
    pub fn fits(&self) -> u64 {
        self.fits
    }

    /// Width of the vectors held (0 before the first).
    pub fn width(&self) -> usize {
        self.width
    }

    /// Adds a vector judged normal; a vector of another width restarts the ring.
    fn add(&mut self, policy: &RefitPolicy, row: &[f32]) {
        if row.is_empty() || row.iter().any(|v| !v.is_finite()) {
            return;
        }
        if row.len() != self.width {
            *self = Reservoir {
                width: row.len(),
                fits: self.fits,
                ..Reservoir::default()
            };
        }
        let at = self.next * self.width;
        if self.len < policy.capacity {
            self.rows.extend_from_slice(row);
            self.len += 1;
        } else {
            self.rows[at..at + self.width].copy_from_slice(row);
        }
        self.next = (self.next + 1) % policy.capacity;
    }

    /// One observation of a streaming model: `row` joins the ring when `normal`, then, when the
    /// policy says the model (`fitted` or not yet) is due, `refit` is called with the rows, their
    /// width and the number of fits so far (the seed of the new fit), and the fit is recorded.
    /// `magnitude` is what the model scored the row (`None` when it did not, or when the window is
    /// not the model's calibration sample: see `screen`).
    pub fn learn(
        &mut self,
        policy: &RefitPolicy,
        row: &[f32],
        normal: bool,
        fitted: bool,
        magnitude: Option<f64>,
        refit: impl FnOnce(&[f32], usize, u64),
    ) {
        if normal {
            self.add(policy, row);
        }
        if self.tick(policy, fitted, magnitude) {
            refit(&self.rows, self.width, self.fits);
            self.fitted();
        }
    }

    /// Records one observation and its novelty magnitude (if the model scored it); returns
    /// whether the model should be (re)fitted now.
    fn tick(&mut self, policy: &RefitPolicy, fitted: bool, magnitude: Option<f64>) -> bool {
        self.since_fit += 1;
        if let Some(m) = magnitude.filter(|m| m.is_finite()) {
            // Plain means until each has its memory's worth of values, so both start level.
            self.scored += 1;
            let n = self.scored as f64;
            self.fast += DRIFT_FAST.max(1.0 / n) * (m - self.fast);
            self.slow += DRIFT_SLOW.max(1.0 / n) * (m - self.slow);
        }
        if self.len < policy.min_rows {
            return false;
        }
        // While the ring fills, refit each time it has doubled since the last fit: the first
        // model rests on `min_rows` rows and would otherwise stand for `refit_every` windows.
        if !fitted || self.since_fit >= policy.refit_every || self.len >= 2 * self.fitted_len {
            return true;
        }
        // Drift: only once the slow mean has had time to settle after the last fit, and at most
        // four times per scheduled period.
        policy.drift_ratio > 0.0
            && self.since_fit >= (policy.refit_every / 4).max(32)
            && self.slow > 0.0
            && self.fast > policy.drift_ratio * self.slow
    }

    /// The vectors held, row-major.
    pub fn rows(&self) -> &[f32] {
        &self.rows
    }

    /// Records that a fit happened.
    fn fitted(&mut self) {
        self.since_fit = 0;
        self.fits += 1;
        self.fitted_len = self.len;
        // A new model starts a new novelty history.
        self.fast = 0.0;
        self.slow = 0.0;
        self.scored = 0;
    }

    /// Approximate heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.rows.capacity() * std::mem::size_of::<f32>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_keeps_the_latest_rows_and_schedules_fits() {
        let policy = RefitPolicy {
            capacity: 8,
            min_rows: 8,
            refit_every: 5,
            drift_ratio: 0.0,
        };
        let mut r = Reservoir::default();
        for i in 0..10 {
            r.add(&policy, &[i as f32, 0.0]);
        }
        assert_eq!(r.len(), 8);
        let firsts: Vec<f32> = r.rows().chunks(2).map(|c| c[0]).collect();
        assert_eq!(firsts, [8.0, 9.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]);
        assert!(r.tick(&policy, false, None), "unfitted with enough rows");
        r.fitted();
        let due: Vec<bool> = (0..5).map(|_| r.tick(&policy, true, Some(1.0))).collect();
        assert_eq!(due, [false, false, false, false, true]);
        r.add(&policy, &[1.0]);
        assert_eq!(
            (r.len(), r.width()),
            (1, 1),
            "a new width restarts the ring"
        );
        r.add(&policy, &[f32::NAN]);
        assert_eq!(r.len(), 1, "non-finite rows are refused");
    }

    #[test]
    fn persistent_surprise_triggers_a_refit() {
        let policy = RefitPolicy {
            capacity: 8,
            min_rows: 8,
            refit_every: 1_000,
            drift_ratio: 2.0,
        };
        let mut r = Reservoir::default();
        for _ in 0..8 {
            r.add(&policy, &[0.0]);
        }
        r.fitted();
        for _ in 0..300 {
            assert!(!r.tick(&policy, true, Some(1.0)));
        }
        let refit = (0..64).any(|_| r.tick(&policy, true, Some(4.0)));
        assert!(refit);
    }
}
