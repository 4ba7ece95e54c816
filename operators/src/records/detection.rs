//! A detection: the detect stage's verdict that one window of one series is anomalous, with the
//! evidence the alert stage turns into an alert. Internal to the engine (not an output contract).

use serde::{Deserialize, Serialize};

use crate::models::shape::Shape;
use crate::rules::Direction;
use crate::series::{EventTime, SeriesId, SharedKey};

/// One anomalous window of one series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Detection {
    /// The series' stable id.
    pub series: SeriesId,
    /// The series' name and labels.
    pub key: SharedKey,
    /// Window start (ms since the epoch).
    pub start: EventTime,
    /// Window end (ms since the epoch).
    pub end: EventTime,
    /// Fused anomaly score in [0, 1].
    pub score: f64,
    /// Confidence in [0, 1] in the baselines behind the score.
    pub confidence: f64,
    /// Observed value of the most anomalous feature.
    pub actual: f64,
    /// Its expected value.
    pub expected: f64,
    /// The boundary value it crossed.
    pub threshold: f64,
    /// Which way it moved.
    pub direction: Direction,
    /// The anomaly's shape, when the detectors examined it.
    pub shape: Option<Shape>,
    /// Per-detector calibrated scores, by detector name.
    pub detectors: Vec<(String, f64)>,
    /// Anomalous features, as `<window>:<feature>`.
    pub affected_features: Vec<String>,
}
