//! A closed window's features for one series: what the window operator emits and what the
//! detectors and the optional `features.jsonl` sink consume.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::models::window_stats::FeatureValues;
use crate::series::{EventTime, SeriesId, SharedKey};

/// Features of one series over one closed window `[start, end)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowFeatures {
    /// The series' stable id.
    pub series: SeriesId,
    /// The series' name and labels.
    pub key: SharedKey,
    /// Name of the window spec from the config (e.g. `1m`), shared: every consumer of the
    /// features stream receives its own copy of each record.
    pub window: Arc<str>,
    /// Window start, inclusive (ms since the epoch).
    pub start: EventTime,
    /// Window end, exclusive (ms since the epoch).
    pub end: EventTime,
    /// The feature values.
    pub values: FeatureValues,
}
