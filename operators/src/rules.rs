//! Compiled alert rules the operators apply: severity bands over the anomaly score and the
//! metric-name rules that name an anomaly's type (and the metric-name patterns both they and
//! detector plans select series with). The application parses them from the TOML
//! files under `rules/` (reporting errors with file:line:col) and hands the compiled form here.

use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::models::shape::Shape;
use crate::records::{AnomalyType, Severity};

/// Score thresholds of each severity band; a score below `low` raises no alert.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeverityBands {
    /// Lowest score that alerts at all.
    pub low: f64,
    /// Lowest score of the `medium` band.
    pub medium: f64,
    /// Lowest score of the `high` band.
    pub high: f64,
    /// Lowest score of the `critical` band.
    pub critical: f64,
}

impl Default for SeverityBands {
    fn default() -> Self {
        SeverityBands {
            low: 0.5,
            medium: 0.7,
            high: 0.85,
            critical: 0.95,
        }
    }
}

impl SeverityBands {
    /// The band of `score`, or `None` below `low`.
    pub fn classify(&self, score: f64) -> Option<Severity> {
        if score >= self.critical {
            Some(Severity::Critical)
        } else if score >= self.high {
            Some(Severity::High)
        } else if score >= self.medium {
            Some(Severity::Medium)
        } else if score >= self.low {
            Some(Severity::Low)
        } else {
            None
        }
    }

    /// Checks that the bands lie in [0, 1] and increase; returns what is wrong otherwise.
    pub fn check(&self) -> Result<(), String> {
        let b = [self.low, self.medium, self.high, self.critical];
        if b.iter().any(|v| !(0.0..=1.0).contains(v)) {
            return Err("severity thresholds must lie in [0, 1]".into());
        }
        if b.windows(2).any(|w| w[0] > w[1]) {
            return Err("severity thresholds must not decrease from low to critical".into());
        }
        Ok(())
    }
}

/// Which way a value moved away from its expectation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Above the expected value.
    Up,
    /// Below the expected value.
    Down,
    /// Either way (rules only).
    Any,
}

/// One rule: a metric whose name matches `metric`, that moved in `direction` and (if the rule
/// names one) with anomaly shape `shape`, is `anomaly_type`.
#[derive(Debug, Clone)]
pub struct AnomalyTypeRule {
    /// Fully anchored regular expression over the metric name (Prometheus matcher semantics).
    pub metric: Regex,
    /// Which deviations the rule covers.
    pub direction: Direction,
    /// The shape the rule covers; `None` covers every shape (and anomalies whose shape is
    /// unknown).
    pub shape: Option<Shape>,
    /// The resulting type.
    pub anomaly_type: AnomalyType,
}

/// Ordered rules; the first match wins, `unusual_pattern` when none matches.
#[derive(Debug, Clone, Default)]
pub struct AnomalyTypeRules {
    /// Rules in file order.
    pub rules: Vec<AnomalyTypeRule>,
}

impl AnomalyTypeRules {
    /// The type of a deviation of `metric` in `direction` with shape `shape`.
    pub fn classify(
        &self,
        metric: &str,
        direction: Direction,
        shape: Option<Shape>,
    ) -> AnomalyType {
        self.rules
            .iter()
            .find(|r| {
                (r.direction == Direction::Any || r.direction == direction)
                    && (r.shape.is_none() || r.shape == shape)
                    && r.metric.is_match(metric)
            })
            .map_or(AnomalyType::UnusualPattern, |r| r.anomaly_type)
    }
}

/// Compiles `pattern` as a fully anchored regex, as Prometheus and Alertmanager matchers are.
pub fn anchored_regex(pattern: &str) -> Result<Regex, regex::Error> {
    Regex::new(&format!("^(?:{pattern})$"))
}

/// A fully anchored regular expression over metric names that keeps its source text: plans
/// holding one compare, print and persist (checkpoints) as that text.
#[derive(Debug, Clone)]
pub struct MetricPattern {
    text: String,
    regex: Regex,
}

impl MetricPattern {
    /// Compiles `text` (anchored, see [`anchored_regex`]).
    pub fn new(text: &str) -> Result<Self, regex::Error> {
        Ok(MetricPattern {
            text: text.to_string(),
            regex: anchored_regex(text)?,
        })
    }

    /// Whether the whole of `metric` matches.
    pub fn matches(&self, metric: &str) -> bool {
        self.regex.is_match(metric)
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl PartialEq for MetricPattern {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Serialize for MetricPattern {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for MetricPattern {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        MetricPattern::new(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_metric_pattern_matches_whole_names_and_persists_as_text() {
        let p = MetricPattern::new("memory|.*_heap_bytes").unwrap();
        assert!(p.matches("memory"));
        assert!(p.matches("jvm_heap_bytes"));
        assert!(!p.matches("memory_limit"), "anchored at both ends");
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(json, "\"memory|.*_heap_bytes\"");
        let back: MetricPattern = serde_json::from_str(&json).unwrap();
        assert_eq!(back, p);
        assert!(back.matches("jvm_heap_bytes"));
        assert!(serde_json::from_str::<MetricPattern>("\"(\"").is_err());
    }

    #[test]
    fn bands_classify_at_boundaries() {
        let b = SeverityBands::default();
        assert_eq!(b.classify(0.49), None);
        assert_eq!(b.classify(0.5), Some(Severity::Low));
        assert_eq!(b.classify(0.7), Some(Severity::Medium));
        assert_eq!(b.classify(0.9), Some(Severity::High));
        assert_eq!(b.classify(1.0), Some(Severity::Critical));
        assert!(b.check().is_ok());
        assert!(SeverityBands { low: 0.9, ..b }.check().is_err());
    }

    #[test]
    fn first_matching_rule_wins_and_regex_is_anchored() {
        let rules = AnomalyTypeRules {
            rules: vec![
                AnomalyTypeRule {
                    metric: anchored_regex(".*latency.*").unwrap(),
                    direction: Direction::Up,
                    shape: None,
                    anomaly_type: AnomalyType::LatencySpike,
                },
                AnomalyTypeRule {
                    metric: anchored_regex("cpu").unwrap(),
                    direction: Direction::Any,
                    shape: None,
                    anomaly_type: AnomalyType::CpuOverload,
                },
            ],
        };
        assert_eq!(
            rules.classify("http_latency_p99_ms", Direction::Up, None),
            AnomalyType::LatencySpike
        );
        assert_eq!(
            rules.classify("http_latency_p99_ms", Direction::Down, None),
            AnomalyType::UnusualPattern
        );
        assert_eq!(
            rules.classify("cpu", Direction::Down, None),
            AnomalyType::CpuOverload
        );
        // Anchored: "cpu" does not match "cpu_seconds".
        assert_eq!(
            rules.classify("cpu_seconds", Direction::Up, None),
            AnomalyType::UnusualPattern
        );
    }
}
