//! The plain output of every recommender: what to change, to what, how sure we are and why. The
//! optimizer operator turns a draft into a `RecommendationRecord` (id, title, description, steps,
//! priority, dedup and expiry), so the models stay free of presentation and dataflow concerns.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::records::recommendation::RecommendationCategory;
use crate::series::EventTime;

/// One recommendation as a model computes it, before it becomes a record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecommendationDraft {
    /// What kind of change.
    pub category: RecommendationCategory,
    /// The model that made it, as the record's `source` (`ml:<model>`).
    pub source: String,
    /// The proposed values by name (`request`, `limit`, `capacity`, `threshold`, ...), in the
    /// unit of the observed series.
    pub recommended: BTreeMap<String, f64>,
    /// The values in force now, by the same names, when the caller gave them.
    pub current: BTreeMap<String, f64>,
    /// Expected improvement of the targeted measure, in percent; each recommender documents
    /// which measure and how it is computed.
    pub expected_improvement_pct: f64,
    /// Confidence in [0, 1]; each recommender documents how it is computed.
    pub confidence: f64,
    /// Latest event time at which the change should be in place, when there is a deadline.
    pub act_by: Option<EventTime>,
    /// Event time until which the recommendation covers the forecast (its validity).
    pub valid_until: Option<EventTime>,
    /// The data it rests on, in words and numbers.
    pub evidence: Vec<String>,
}

impl RecommendationDraft {
    /// A draft with no values, no deadline and no evidence yet.
    pub fn new(category: RecommendationCategory, source: &str) -> Self {
        Self {
            category,
            source: source.to_string(),
            recommended: BTreeMap::new(),
            current: BTreeMap::new(),
            expected_improvement_pct: 0.0,
            confidence: 0.0,
            act_by: None,
            valid_until: None,
            evidence: Vec::new(),
        }
    }

    /// A recommended value by name.
    pub fn value(&self, name: &str) -> Option<f64> {
        self.recommended.get(name).copied()
    }
}
