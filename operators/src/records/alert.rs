//! The alert record: one JSON object per lifecycle event, Alertmanager-compatible fields first so
//! an alert can be posted to `POST /api/v2/alerts` unchanged (Alertmanager ignores the rest).
//!
//! Fields a stage cannot know yet are `None` and left out of the JSON rather than filled with
//! placeholders: a consumer can tell "unknown" from "zero".

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::models::shape::Shape;
use crate::series::EventTime;

/// Which lifecycle step an alert record reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertEvent {
    /// The series became anomalous.
    Opened,
    /// Still anomalous; something worth telling changed (severity, or a periodic refresh).
    Updated,
    /// An escalation policy raised the alert's level.
    Escalated,
    /// The series has been quiet for the configured period.
    Resolved,
}

/// Alertmanager's status vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertStatus {
    /// The alert is active.
    Firing,
    /// The alert has ended.
    Resolved,
}

/// How bad an alert is, from score bands in the rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Worth a look.
    Low,
    /// Worth a look soon.
    Medium,
    /// Needs attention.
    High,
    /// Needs attention now.
    Critical,
}

impl Severity {
    /// The lowercase name used in labels and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

/// What kind of anomaly, as the contract names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnomalyType {
    /// Generic slowdown of a service.
    PerformanceDegradation,
    /// A resource metric jumped.
    ResourceSpike,
    /// Memory grows steadily.
    MemoryLeak,
    /// CPU saturated.
    CpuOverload,
    /// Latency jumped.
    LatencySpike,
    /// Error rate jumped.
    ErrorRateSpike,
    /// Traffic fell.
    ThroughputDrop,
    /// Anything else.
    UnusualPattern,
}

impl AnomalyType {
    /// The snake_case name used in JSON and rules.
    pub fn as_str(self) -> &'static str {
        match self {
            AnomalyType::PerformanceDegradation => "performance_degradation",
            AnomalyType::ResourceSpike => "resource_spike",
            AnomalyType::MemoryLeak => "memory_leak",
            AnomalyType::CpuOverload => "cpu_overload",
            AnomalyType::LatencySpike => "latency_spike",
            AnomalyType::ErrorRateSpike => "error_rate_spike",
            AnomalyType::ThroughputDrop => "throughput_drop",
            AnomalyType::UnusualPattern => "unusual_pattern",
        }
    }
}

/// One alert lifecycle event (the `alerts` topic / `alerts.jsonl`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertRecord {
    /// Identifying labels (`alertname`, `metric`, the series labels) plus `severity`.
    pub labels: BTreeMap<String, String>,
    /// `summary`, `description` and, once the optimizer knows one, `recommendation`.
    pub annotations: BTreeMap<String, String>,
    /// When the anomaly started (RFC 3339).
    #[serde(rename = "startsAt")]
    pub starts_at: String,
    /// When it ended (RFC 3339); set on `resolved` only.
    #[serde(rename = "endsAt", skip_serializing_if = "Option::is_none")]
    pub ends_at: Option<String>,
    /// Link back to the source, when a base URL is configured.
    #[serde(rename = "generatorURL", skip_serializing_if = "Option::is_none")]
    pub generator_url: Option<String>,
    /// Deterministic id of this event: the same input gives the same id.
    pub id: String,
    /// Stable hash of the identifying labels.
    pub fingerprint: String,
    /// Lifecycle step.
    pub event: AlertEvent,
    /// Firing or resolved.
    pub status: AlertStatus,
    /// Kind of anomaly.
    pub anomaly_type: AnomalyType,
    /// Shape of the anomaly (spike, dip, level_shift, trend, variance_change), when examined.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub anomaly_shape: Option<Shape>,
    /// Severity band of the peak score so far.
    pub severity: Severity,
    /// Anomaly score in [0, 1] of the latest anomalous window.
    pub score: f64,
    /// Confidence in [0, 1] that the detectors' baselines are trustworthy.
    pub confidence: f64,
    /// Observed value of the watched feature.
    pub actual_value: f64,
    /// Value the baseline expected.
    pub expected_value: f64,
    /// `actual_value − expected_value`.
    pub deviation: f64,
    /// The boundary value the observation crossed (expected ± the detector's threshold).
    pub threshold: f64,
    /// Per-detector calibrated scores.
    pub detectors: BTreeMap<String, f64>,
    /// Features that were anomalous, as `<window>:<feature>`.
    pub affected_features: Vec<String>,
    /// Anomalous windows seen so far in this alert (deduplicated occurrences).
    pub count: u64,
    /// Escalation level, once the correlation stage applies policies.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub escalation_level: Option<u32>,
    /// Incident this alert belongs to, once the correlation stage assigns one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub incident_id: Option<String>,
    /// Why the alert is muted (`silence:<name>` or `inhibited:<rule>`): muted alerts are kept and
    /// marked, never dropped, and notify no one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub muted_by: Option<String>,
    /// The alert resolved and re-fired often enough to count as flapping: it stays open instead
    /// of notifying on every change.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub flapping: bool,
    /// Times the detector opened this alert (deduplicated re-fires included); set by the
    /// correlation stage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub occurrences: Option<u32>,
    /// The entity (service or host) the series belongs to.
    pub entity: String,
    /// Event time of this lifecycle event (ms since the epoch).
    pub event_time: EventTime,
}

impl AlertRecord {
    /// A plausible high-severity latency alert with the given identity, event and time (score
    /// 0.9, value 2 against an expected 1, nothing else set): the starting point of tests,
    /// benchmarks and tools that inject alerts; change other fields with struct update syntax.
    pub fn sample(
        labels: BTreeMap<String, String>,
        fingerprint: String,
        event: AlertEvent,
        entity: String,
        event_time: EventTime,
    ) -> Self {
        AlertRecord {
            labels,
            annotations: BTreeMap::new(),
            starts_at: String::new(),
            ends_at: None,
            generator_url: None,
            id: String::new(),
            fingerprint,
            event,
            status: if event == AlertEvent::Resolved {
                AlertStatus::Resolved
            } else {
                AlertStatus::Firing
            },
            anomaly_type: AnomalyType::LatencySpike,
            anomaly_shape: None,
            severity: Severity::High,
            score: 0.9,
            confidence: 1.0,
            actual_value: 2.0,
            expected_value: 1.0,
            deviation: 1.0,
            threshold: 1.5,
            detectors: BTreeMap::new(),
            affected_features: vec![],
            count: 1,
            escalation_level: None,
            incident_id: None,
            muted_by: None,
            flapping: false,
            occurrences: None,
            entity,
            event_time,
        }
    }
}
