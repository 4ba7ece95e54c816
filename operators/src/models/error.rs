//! The one error type of the plain-Rust models: what can go wrong when a model is configured or
//! fitted. Scoring a fitted model never fails (bad rows give NaN-free defaults, documented per model).

use thiserror::Error;

/// Why a model could not be configured or fitted.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum ModelError {
    /// A parameter is outside its documented range.
    #[error("invalid parameter `{name}`: {reason}")]
    InvalidParameter {
        /// The parameter's name as it appears in the model's config.
        name: &'static str,
        /// What the valid range is.
        reason: String,
    },
    /// Too few observations to fit the model.
    #[error("not enough data: need at least {needed} observations, got {got}")]
    NotEnoughData {
        /// Minimum number of observations the model needs.
        needed: usize,
        /// Number of observations given.
        got: usize,
    },
    /// Rows of a feature matrix disagree on their width, or the width differs from the fitted one.
    #[error("feature width mismatch: expected {expected}, got {got}")]
    WidthMismatch {
        /// Width the model expects.
        expected: usize,
        /// Width that was given.
        got: usize,
    },
    /// The input holds a NaN or infinite value.
    #[error("non-finite value in input at index {index}")]
    NonFinite {
        /// Position of the first non-finite value.
        index: usize,
    },
    /// The numerical procedure failed (singular system, no convergence, ...).
    #[error("numerical failure: {0}")]
    Numerical(String),
}

impl ModelError {
    /// `Ok(())` when `ok`, else [`ModelError::InvalidParameter`] for `name`, saying it must be
    /// `rule` (e.g. "in (0, 1)") and what it was: the range check every config's `validate`
    /// makes.
    pub fn require(ok: bool, name: &'static str, rule: &str, value: f64) -> Result<(), ModelError> {
        if ok {
            Ok(())
        } else {
            Err(ModelError::InvalidParameter {
                name,
                reason: format!("must be {rule}, got {value}"),
            })
        }
    }
}
