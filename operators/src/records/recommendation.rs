//! The recommendation record: one JSON object each time a recommendation is made or changes (the
//! `recommendations` topic / `recommendations.jsonl`), fields as in the contract in
//! `ARCHITECTURE.md` ("Recommendations").

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What kind of change a recommendation proposes (the contract's vocabulary).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecommendationCategory {
    /// A configuration value of the workload (pool sizes, timeouts, ...).
    ConfigurationTuning,
    /// Requests and limits of a workload (right-sizing).
    ResourceAllocation,
    /// How the workload performs (latency, throughput, errors).
    PerformanceTuning,
    /// More (or fewer) replicas, disks, nodes before a limit is hit.
    CapacityScaling,
    /// Thresholds and sensitivity of alerting, Harbinger's own included.
    AlertThresholds,
    /// Host or platform settings.
    SystemSettings,
}

/// How much work, or how much risk, a recommendation carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// Minutes, or nothing can go wrong.
    Low,
    /// Hours, or a rollback may be needed.
    Medium,
    /// Days, or an outage is possible.
    High,
}

/// One recommendation, as emitted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecommendationRecord {
    /// Deterministic id: a hash of the category and target, so an update of the same
    /// recommendation keeps its id, whichever recommender made it.
    pub recommendation_id: String,
    /// What kind of change.
    pub category: RecommendationCategory,
    /// One line for humans.
    pub title: String,
    /// Why, with the numbers behind it.
    pub description: String,
    /// The component changed (service, host, detector, alert rule).
    pub component: String,
    /// Labels identifying the target.
    pub target: BTreeMap<String, String>,
    /// The value in force now, when known.
    pub current_value: Option<serde_json::Value>,
    /// The value proposed.
    pub recommended_value: serde_json::Value,
    /// Expected improvement of the targeted measure, in percent.
    pub expected_improvement: f64,
    /// Confidence in [0, 1].
    pub confidence: f64,
    /// Steps to apply it.
    pub implementation_steps: Vec<String>,
    /// Effort to apply it.
    pub estimated_effort: Level,
    /// Risk of applying it.
    pub risk_level: Level,
    /// 0–100, higher first.
    pub priority: f64,
    /// When it was made (RFC 3339, event time).
    pub created_at: String,
    /// When it stops being valid unless renewed (RFC 3339, event time).
    pub expires_at: String,
    /// `rule:<name>` or `ml:<model>`.
    pub source: String,
    /// The data it rests on, in words and numbers.
    pub evidence: Vec<String>,
}
