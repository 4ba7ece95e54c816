//! The forecast record: what the streaming forecast stage emits per series and window, and what
//! the optimizer reads (capacity predictions in particular). Written to `forecasts.jsonl` when
//! the plan asks for it; not one of the Kafka topics of the contract.

use serde::{Deserialize, Serialize};

use crate::series::{EventTime, SeriesId, SharedKey};

/// One step ahead: the point forecast and its 80% and 95% prediction intervals.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ForecastStep {
    /// Point forecast (the predictive mean).
    pub yhat: f64,
    /// Lower bound of the 80% interval.
    pub lo80: f64,
    /// Upper bound of the 80% interval.
    pub hi80: f64,
    /// Lower bound of the 95% interval.
    pub lo95: f64,
    /// Upper bound of the 95% interval.
    pub hi95: f64,
}

/// Which side of a limit is the bad one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitDirection {
    /// The limit is crossed when the series rises to it (disk full, memory limit).
    Above,
    /// The limit is crossed when the series falls to it (free space, free connections).
    Below,
}

/// For a series with a limit in the rules: when the forecast says it will be crossed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CapacityForecast {
    /// Name of the limit rule that matched the series.
    pub rule: String,
    /// The limit value, in the series' unit.
    pub limit: f64,
    /// Which side of the limit is the bad one.
    pub direction: LimitDirection,
    /// How far ahead the forecast looks (ms).
    pub horizon_ms: u64,
    /// Predicted time until the point forecast crosses the limit (ms from the record's `time`),
    /// `None` when it does not within the horizon.
    pub time_to_limit_ms: Option<u64>,
    /// Event time at which the point forecast crosses the limit, when it does.
    pub crossing_time: Option<EventTime>,
    /// Probability, under the forecast's predictive distribution, that the series is past the
    /// limit at the end of the horizon (0–1).
    pub probability: f64,
    /// The same prediction from a least-squares line through the recent history (what
    /// Prometheus' `predict_linear` does), for comparison.
    pub linear_time_to_limit_ms: Option<u64>,
}

/// One series' forecast made at the close of one window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForecastRecord {
    /// The series' stable id.
    pub series: SeriesId,
    /// The series' name and labels.
    pub key: SharedKey,
    /// Name of the window spec whose features are forecast (e.g. `1m`).
    pub window: String,
    /// Name of the forecast spec that made it (`[[forecasts]]` `name`).
    #[serde(default)]
    pub spec: String,
    /// The window feature forecast (e.g. `mean`).
    #[serde(default)]
    pub feature: String,
    /// End of the last window used (ms since the epoch); step 1 is the window after it.
    pub time: EventTime,
    /// Length of one forecast step (ms): the window's size.
    pub step_ms: u64,
    /// Which model produced it (e.g. `arima(1,1,1)(0,1,1)[24]`, `mstl_ets`, `seasonal_naive`).
    pub model: String,
    /// The forecast, one entry per step, nearest first.
    pub steps: Vec<ForecastStep>,
    /// The capacity prediction, for series with a limit in the rules.
    pub capacity: Option<CapacityForecast>,
}
