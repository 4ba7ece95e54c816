//! When the costly detectors of a series are consulted.
//!
//! The vector models (isolation forest, one-class SVM, nearest neighbour) cost one to five
//! microseconds a window each: every series has its own forest and reference set, far more than
//! fits in a cache, so each window's walk is a chain of memory misses. Scored on every window
//! they cut the engine's throughput to a third. Most windows are plainly normal to the cheap
//! detectors (robust z, EWMA, CUSUM, the seasonal baseline, the forecast residual), and on those
//! the vector models cannot change the verdict unless they alone are very sure. So, as a
//! two-stage detector does, the costly models are consulted when the cheap detectors' fused score
//! reaches `from` (the window is suspicious), and on a systematic sample of windows.
//!
//! The sample is what keeps their calibration honest: a model's tail learns ordinary windows from
//! the sample only (every window until its calibrator first holds `memory` magnitudes, then one
//! in `sample_every`), so it describes ordinary windows, not the suspicious ones the screen lets
//! through. Anomalous windows the screen lets in still reach the calibrator, which learns from
//! them what it always did: that an anomaly is under way (its quiet period after one, and when a
//! change has persisted long enough to become the new normal). Which windows are sampled is a
//! hash of the window's position and the series, not every n-th window: a job that runs every
//! 8 or 16 minutes would otherwise always, or never, fall on a sample. Their models still learn
//! from every normal window, as before.
//!
//! After the first fill, the counts kept per learned value stretch by `sample_every` in
//! windows: the calibration's memory of 512 magnitudes spans about 4,096 windows, it re-estimates
//! its tail every 64 samples, and the models' drift means (over about 16 and 256 scored values)
//! follow the sample, so drift refits come later.
//!
//! The price: an anomaly only a vector model sees, on a window every cheap detector finds
//! ordinary, is found only on sampled windows. With `sample_every = 1` every window is sampled
//! and the screen changes nothing.

use serde::{Deserialize, Serialize};

use crate::models::ModelError;
use crate::series::mix64;

/// Settings of the screen in front of the costly detectors (from `rules/fusion.toml`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScreenPolicy {
    /// Fused score of the cheap detectors at which the costly ones are consulted (default 0.3,
    /// below the lowest alert band of 0.5: the costly detectors can still lift a window that
    /// the cheap ones find suspicious but not alarming, and they explain every alert).
    pub from: f64,
    /// One window in this many is scored by the costly detectors whatever the cheap ones say,
    /// and only those windows teach their calibration (default 8; 1 scores every window).
    pub sample_every: u64,
}

impl Default for ScreenPolicy {
    fn default() -> Self {
        ScreenPolicy {
            from: 0.3,
            sample_every: 8,
        }
    }
}

impl ScreenPolicy {
    /// Checks every parameter's range.
    pub fn validate(&self) -> Result<(), ModelError> {
        ModelError::require(
            (0.0..=1.0).contains(&self.from),
            "from",
            "in [0, 1]",
            self.from,
        )?;
        ModelError::require(
            self.sample_every >= 1,
            "sample_every",
            "at least 1",
            self.sample_every as f64,
        )
    }

    /// Whether the window is a calibration sample for a costly detector whose calibrator has
    /// learned `calibrated` magnitudes (of at most `memory`), on a track that has seen `seen`
    /// values before this one; `salt` varies the choice between series.
    pub fn samples(&self, calibrated: u64, memory: usize, seen: u64, salt: u64) -> bool {
        calibrated < memory as u64 || mix64(seen ^ salt).is_multiple_of(self.sample_every.max(1))
    }

    /// Whether the cheap detectors' fused score `cheap` lets the costly ones in (`None`: no
    /// cheap detector votes on this window, so there is nothing to screen with).
    pub fn lets_in(&self, cheap: Option<f64>) -> bool {
        cheap.is_none_or(|f| f >= self.from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_every_window_until_calibrated_then_one_in_n_with_no_period() {
        let s = ScreenPolicy::default();
        assert!((0..16).all(|seen| s.samples(10, 512, seen, 7)));
        let sampled = |salt: u64| -> Vec<u64> {
            (0..8000)
                .filter(|&seen| s.samples(512, 512, seen, salt))
                .collect()
        };
        let a = sampled(7);
        assert!((900..1100).contains(&a.len()), "{}", a.len());
        // No period: a job every 8 or 16 windows is sometimes sampled, not always or never.
        for period in [4u64, 8, 16] {
            let hits = a.iter().filter(|w| *w % period == 0).count();
            let expected = a.len() as f64 / period as f64;
            assert!(
                (hits as f64 - expected).abs() < 0.35 * expected,
                "period {period}: {hits} of {}",
                a.len()
            );
        }
        assert_ne!(a, sampled(8), "series sample different windows");
        let every = ScreenPolicy {
            sample_every: 1,
            ..s
        };
        assert!((0..16).all(|seen| every.samples(512, 512, seen, 7)));
    }

    #[test]
    fn lets_in_suspicious_windows_and_windows_nobody_screened() {
        let s = ScreenPolicy::default();
        assert!(s.lets_in(None));
        assert!(s.lets_in(Some(0.3)));
        assert!(!s.lets_in(Some(0.29)));
        assert!(ScreenPolicy {
            sample_every: 0,
            ..s
        }
        .validate()
        .is_err());
        assert!(ScreenPolicy { from: 1.5, ..s }.validate().is_err());
    }
}
