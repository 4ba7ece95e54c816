//! The incident record: one JSON object per incident lifecycle event (the `incidents` topic /
//! `incidents.jsonl`), with the fields of the contract in `ARCHITECTURE.md` ("Incidents") first.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{AlertEvent, AlertStatus, Severity};
use crate::series::EventTime;

/// One ranked root-cause candidate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RootCauseCandidate {
    /// The entity (service or host) suspected.
    pub entity: String,
    /// Score in [0, 1]; candidates are sorted by it, best first.
    pub score: f64,
    /// Why, in words a person on call can check.
    pub evidence: Vec<String>,
}

/// What an incident touches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImpactAssessment {
    /// Entities with an alert in the incident.
    pub entities: usize,
    /// Alerts in the incident.
    pub alerts: usize,
    /// User-facing services hit (services nothing calls, or marked `user_facing` in the topology).
    pub user_facing: Vec<String>,
    /// Highest alert severity.
    pub max_severity: Severity,
    /// One sentence for humans.
    pub summary: String,
}

/// One incident lifecycle event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentRecord {
    /// Deterministic id: the hash of the alert that opened it.
    pub incident_id: String,
    /// Lifecycle step.
    pub event: AlertEvent,
    /// Firing until every alert of the incident has resolved.
    pub status: AlertStatus,
    /// Fingerprints of the incident's active alerts, sorted.
    pub alerts: Vec<String>,
    /// Entities with an active alert, sorted.
    pub entities: Vec<String>,
    /// Highest severity among its alerts.
    pub severity: Severity,
    /// 0–100: severity, breadth, user impact and escalation combined.
    pub priority_score: f64,
    /// At most five, best first.
    pub root_cause_candidates: Vec<RootCauseCandidate>,
    /// Onset of the earliest alert (RFC 3339).
    pub first_alert_time: String,
    /// Onset of the latest alert (RFC 3339).
    pub last_alert_time: String,
    /// From the first alert's onset to this event.
    pub duration_minutes: f64,
    /// Labels every alert of the incident shares (without `severity`).
    pub common_labels: BTreeMap<String, String>,
    /// How the alerts were grouped: `topology`, `labels`, `rule:<name>` or `dbscan`.
    pub cluster_type: String,
    /// Confidence in [0, 1] that the alerts share one cause.
    pub confidence: f64,
    /// Breadth and user impact.
    pub impact_assessment: ImpactAssessment,
    /// Escalation level (0: not escalated).
    pub escalation_level: u32,
    /// Every alert is muted (silenced or inhibited): the incident notifies no one.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub muted: bool,
    /// On `resolved` after a merge: the incident that absorbed this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merged_into: Option<String>,
    /// Event time of this lifecycle event (ms since the epoch).
    pub event_time: EventTime,
}
