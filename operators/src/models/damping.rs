//! Damping of repeated detections: one ongoing anomaly should be reported once, loudly, and then
//! stay quiet unless it gets worse.
//!
//! Detectors keep scoring high for as long as an anomaly lasts (a level shift stays shifted until
//! the baselines adapt). Downstream, every extra high score is either noise in an alert stream or,
//! in benchmarks such as NAB, a false positive once the labelled window has passed. The damper
//! keeps a *memory* `M` of recent scores that halves every `half_life` observations once they
//! fall; a score that does not rise above `M` is multiplied by `repeat_factor`. A rising score is passed
//! through, so the first, earliest crossing of any threshold is never delayed, and a much stronger
//! second anomaly is still reported. No threshold is needed, so a scorer that picks its own
//! threshold (NAB) ranks the damped scores consistently.

use serde::{Deserialize, Serialize};

use crate::models::ModelError;

/// Settings of the damper.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DampingConfig {
    /// Observations after which the memory of a reported score has halved. Default 30: half an
    /// hour of 1-minute windows, a few hours of 5-minute rows; 0 disables damping.
    pub half_life: usize,
    /// Factor applied to a score that does not exceed the memory. Default 0.5.
    pub repeat_factor: f64,
}

impl Default for DampingConfig {
    fn default() -> Self {
        DampingConfig {
            half_life: 30,
            repeat_factor: 0.5,
        }
    }
}

impl DampingConfig {
    /// Checks every parameter's range.
    pub fn validate(&self) -> Result<(), ModelError> {
        let r = self.repeat_factor;
        ModelError::require((0.0..=1.0).contains(&r), "repeat_factor", "in [0, 1]", r)
    }
}

/// The damper of one stream of fused scores.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Damper {
    memory: f64,
}

impl Damper {
    /// Damps `score` against recent outputs and returns it; then remembers it.
    pub fn damp(&mut self, cfg: &DampingConfig, score: f64) -> f64 {
        if cfg.half_life == 0 || !score.is_finite() {
            return score;
        }
        let out = if score > self.memory {
            score
        } else {
            score * cfg.repeat_factor
        };
        // The memory follows the undamped scores: while an anomaly persists it stays at its
        // level (so the plateau stays damped); once it ends the memory decays.
        self.memory = (self.memory * 0.5f64.powf(1.0 / cfg.half_life as f64)).max(score);
        out
    }

    /// The current memory: the decayed largest recent output.
    pub fn memory(&self) -> f64 {
        self.memory
    }

    /// Whether the memory is at or above `level`: an anomaly reported at that level is recent.
    pub fn in_episode(&self, level: f64) -> bool {
        self.memory >= level
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plateau_is_reported_once_and_a_stronger_anomaly_again() {
        let cfg = DampingConfig::default();
        let mut d = Damper::default();
        assert_eq!(d.damp(&cfg, 0.1), 0.1);
        assert_eq!(d.damp(&cfg, 0.8), 0.8, "the first crossing passes");
        let repeat = d.damp(&cfg, 0.8);
        assert!(repeat <= 0.4 + 1e-12, "a repeat is damped: {repeat}");
        assert_eq!(d.damp(&cfg, 0.95), 0.95, "a stronger score passes");
        // Long after, the memory has decayed and the same score passes again.
        for _ in 0..300 {
            d.damp(&cfg, 0.0);
        }
        assert_eq!(d.damp(&cfg, 0.8), 0.8);
    }

    #[test]
    fn disabled_damper_passes_everything() {
        let cfg = DampingConfig {
            half_life: 0,
            ..DampingConfig::default()
        };
        let mut d = Damper::default();
        for _ in 0..5 {
            assert_eq!(d.damp(&cfg, 0.9), 0.9);
        }
    }
}
