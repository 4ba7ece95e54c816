//! Correlation-rule conditions written in CEL (the Common Expression Language, `cel` crate), for
//! users who want their own grouping: a rule links two alerts when its condition holds.
//!
//! The condition sees two variables, `a` and `b`, each a map with `labels` (map of strings),
//! `entity`, `anomaly_type`, `up` (bool) and `onset_ms` (int); for example
//! `a.labels.cluster == b.labels.cluster && a.anomaly_type == b.anomaly_type`. A condition that
//! fails to evaluate (a missing label, a type error) does not link.

use std::collections::BTreeMap;
use std::sync::Arc;

use cel::{Context, Env, Program, Value};

use crate::models::dedup::AlertNode;

/// A compiled condition.
pub struct CelCondition {
    env: Arc<Env>,
    program: Program,
}

impl std::fmt::Debug for CelCondition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CelCondition")
    }
}

impl CelCondition {
    /// Compiles `source`; the error says where the expression is wrong.
    pub fn compile(source: &str) -> Result<Self, String> {
        let env = Arc::new(Env::stdlib());
        let program = env.compile(source).map_err(|e| e.to_string())?;
        Ok(CelCondition { env, program })
    }

    /// Whether the condition holds for the pair (false when it cannot be evaluated or is not a
    /// boolean).
    pub fn holds(&self, a: &AlertNode, b: &AlertNode) -> bool {
        let mut ctx = Context::with_env(self.env.clone());
        if ctx.add_variable("a", view(a)).is_err() || ctx.add_variable("b", view(b)).is_err() {
            return false;
        }
        matches!(self.program.execute(&ctx), Ok(Value::Bool(true)))
    }
}

#[derive(serde::Serialize)]
struct NodeView<'a> {
    labels: &'a BTreeMap<String, String>,
    entity: &'a str,
    anomaly_type: &'static str,
    up: bool,
    onset_ms: i64,
}

fn view(n: &AlertNode) -> NodeView<'_> {
    NodeView {
        labels: &n.labels,
        entity: &n.entity,
        anomaly_type: n.anomaly_type.as_str(),
        up: n.up,
        onset_ms: n.key.onset as i64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::dedup::NodeKey;
    use crate::records::AnomalyType;

    fn node(cluster: &str, t: AnomalyType) -> AlertNode {
        AlertNode {
            key: NodeKey {
                onset: 0,
                fingerprint: "f".into(),
            },
            entity: "x".into(),
            up: true,
            anomaly_type: t,
            labels: [("cluster".to_string(), cluster.to_string())].into(),
        }
    }

    #[test]
    fn conditions_see_both_alerts() {
        let c = CelCondition::compile(
            "a.labels.cluster == b.labels.cluster && a.anomaly_type == b.anomaly_type",
        )
        .unwrap();
        let x = node("eu", AnomalyType::LatencySpike);
        assert!(c.holds(&x, &node("eu", AnomalyType::LatencySpike)));
        assert!(!c.holds(&x, &node("us", AnomalyType::LatencySpike)));
        assert!(!c.holds(&x, &node("eu", AnomalyType::CpuOverload)));
        // A missing label does not link (and does not panic).
        let missing = CelCondition::compile("a.labels.zone == b.labels.zone").unwrap();
        assert!(!missing.holds(&x, &x));
        assert!(CelCondition::compile("a.labels. ==").is_err());
    }
}
