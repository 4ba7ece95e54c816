//! What a scalar detector reports about one value: how far it is from what the detector expected,
//! in the detector's own units. Calibration (see [`super::calibration`]) later judges the
//! magnitude against the detector's history, so detectors need not agree on scale.

use serde::{Deserialize, Serialize};

use crate::models::ModelError;

/// One value compared with a detector's expectation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Deviation {
    /// How anomalous, ≥ 0: for the scalar detectors the distance from the expectation in units
    /// of `scale`; for the vector detectors a unitless novelty measure.
    pub magnitude: f64,
    /// The value the detector expected.
    pub expected: f64,
    /// The detector's noise scale (σ-like, > 0): one unit of `magnitude` in value units, used to
    /// turn a magnitude back into a boundary value for explanations.
    pub scale: f64,
}

impl Deviation {
    /// A vector model's novelty `magnitude`, which has no expected value or scale.
    pub fn novelty(magnitude: f64) -> Self {
        Deviation {
            magnitude,
            expected: f64::NAN,
            scale: f64::NAN,
        }
    }

    /// A deviation of `value` from `expected` measured in `scale` (floored to stay finite).
    pub fn of(value: f64, expected: f64, scale: f64) -> Self {
        let scale = if scale > 0.0 && scale.is_finite() {
            scale
        } else {
            f64::MIN_POSITIVE
        };
        let magnitude = ((value - expected) / scale).abs();
        Deviation {
            magnitude: if magnitude.is_finite() {
                magnitude
            } else {
                f64::MAX
            },
            expected,
            scale,
        }
    }
}

/// σ floor for a baseline around `level`: `relative · |level|`, never zero, so a series whose
/// recent values were all identical does not call the smallest change infinitely anomalous.
pub fn scale_floor(level: f64, relative: f64) -> f64 {
    (level.abs() * relative).max(1e-9)
}

/// The check of `clamp_sigmas`, shared with the forecast-residual detector.
pub(crate) fn check_clamp_sigmas(v: f64) -> Result<(), ModelError> {
    ModelError::require(v.is_finite() && v > 0.0, "clamp_sigmas", "positive", v)
}

/// The check of `min_relative_scale`, shared by the detectors that floor their scale with it.
pub(crate) fn check_min_relative_scale(v: f64) -> Result<(), ModelError> {
    ModelError::require(v.is_finite() && v >= 0.0, "min_relative_scale", "≥ 0", v)
}
