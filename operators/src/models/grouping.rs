//! When two confirmed alerts belong together: the pairwise relation the correlation dataflow
//! evaluates on candidate pairs, a plain sequential version of the whole grouping (the oracle
//! the dataflow is tested against), and the DBSCAN pass for alerts the topology does not know.
//!
//! The relation (measured on simulator runs, see `docs/design.md`, "Alert intelligence"):
//! * on the same entity or a shared host: onsets within `near_ms`, same direction;
//! * along calls within `max_hops`: symptoms that rise (latency, errors, saturation) travel
//!   from callee to caller, so the callee's alert may lead by up to `causal_ms` and trail by at
//!   most `near_ms`; symptoms that fall (traffic, load) travel from caller to callee, the other
//!   way round; alerts moving in opposite directions are not linked across services;
//! * optionally, alerts sharing the values of `group_by` labels within `near_ms`.
//!
//! Single linkage over this relation is what chains a whole propagation path into one incident;
//! the tight onset windows and the direction rule are what keep a second, overlapping fault out.

use std::collections::BTreeMap;

use augurs::clustering::DbscanClusterer;
use augurs::DistanceMatrix;
use serde::{Deserialize, Serialize};

use crate::models::dedup::{AlertNode, NodeKey};
use crate::models::topology::{Relation, Topology};
use crate::models::ModelError;

/// Grouping settings (from `rules/correlation.toml`, `[grouping]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupingConfig {
    /// Call hops within which services are related (default 2).
    pub max_hops: u8,
    /// Onsets this close group related alerts (default 2 min: one window either side of the
    /// propagation delay).
    pub near_ms: u64,
    /// How far a callee's alert may precede its caller's (default 3 min).
    pub causal_ms: u64,
    /// Direction rule on (default true).
    pub directional: bool,
    /// Labels whose shared values group alerts without topology (default none).
    pub group_by: Vec<String>,
    /// Related alerts an incident needs before it opens (default 1: the calibrated detectors
    /// raise few false alerts, and an alert in no incident reaches nobody).
    pub min_alerts: usize,
    /// DBSCAN neighbourhood radius in the mixed distance (default 1.0; see [`mixed_distance`]).
    pub dbscan_eps: f64,
    /// How long an incident whose alerts all resolved waits for related alerts before it
    /// resolves (default 10 min; see `IncidentPolicy::reopen_ms`).
    #[serde(default)]
    pub reopen_ms: u64,
    /// Call hops within which a new alert counts as related to a waiting incident (default 0,
    /// the same entity only: the wait spans minutes, and neighbours' alerts that late belong
    /// to other faults more often than not — measured in docs/design.md).
    #[serde(default)]
    pub reopen_hops: u8,
}

impl Default for GroupingConfig {
    fn default() -> Self {
        GroupingConfig {
            max_hops: 2,
            near_ms: 120_000,
            causal_ms: 180_000,
            directional: true,
            group_by: Vec::new(),
            min_alerts: 1,
            dbscan_eps: 1.0,
            reopen_ms: 600_000,
            reopen_hops: 0,
        }
    }
}

impl GroupingConfig {
    /// Checks the parameters.
    pub fn validate(&self) -> Result<(), ModelError> {
        if self.min_alerts == 0 {
            return Err(ModelError::InvalidParameter {
                name: "min_alerts",
                reason: "must be at least 1".into(),
            });
        }
        if !(self.dbscan_eps.is_finite() && self.dbscan_eps > 0.0) {
            return Err(ModelError::InvalidParameter {
                name: "dbscan_eps",
                reason: "must be a positive number".into(),
            });
        }
        Ok(())
    }
}

/// Whether `a` and `b` (whose entities relate as `rel`, seen from `a`) belong together.
pub fn related(a: &AlertNode, b: &AlertNode, rel: Relation, cfg: &GroupingConfig) -> bool {
    let (ta, tb) = (a.key.onset as i64, b.key.onset as i64);
    let near = cfg.near_ms as i64;
    let causal = cfg.causal_ms as i64;
    match rel {
        Relation::Same | Relation::SharedHost => a.up == b.up && (ta - tb).abs() <= near,
        Relation::CalledBy(d) => related(b, a, Relation::Calls(d), cfg),
        Relation::Calls(_) => {
            if !cfg.directional {
                return (ta - tb).abs() <= near;
            }
            // `a` calls `b`.
            match (a.up, b.up) {
                // Rising symptoms flow up: the callee `b` may lead.
                (true, true) => (-near..=causal).contains(&(ta - tb)),
                // Falling load flows down: the caller `a` may lead.
                (false, false) => (-near..=causal).contains(&(tb - ta)),
                _ => false,
            }
        }
    }
}

/// Whether `a` and `b` share every `group_by` label value (and all are present) within
/// `near_ms`.
pub fn label_related(a: &AlertNode, b: &AlertNode, cfg: &GroupingConfig) -> bool {
    !cfg.group_by.is_empty()
        && (a.key.onset as i64 - b.key.onset as i64).abs() <= cfg.near_ms as i64
        && cfg
            .group_by
            .iter()
            .all(|l| a.labels.get(l).is_some_and(|v| b.labels.get(l) == Some(v)))
}

/// The grouping as a plain computation: connected components of `related` (plus
/// `label_related`) over every pair, each sorted, ordered by their smallest key.
pub fn components(nodes: &[AlertNode], topo: &Topology, cfg: &GroupingConfig) -> Vec<Vec<NodeKey>> {
    let mut parent: Vec<usize> = (0..nodes.len()).collect();
    fn find(p: &mut [usize], mut x: usize) -> usize {
        while p[x] != x {
            p[x] = p[p[x]];
            x = p[x];
        }
        x
    }
    for i in 0..nodes.len() {
        for j in i + 1..nodes.len() {
            let (a, b) = (&nodes[i], &nodes[j]);
            let linked = topo
                .relation(&a.entity, &b.entity, cfg.max_hops)
                .or_else(|| (a.entity == b.entity).then_some(Relation::Same))
                .is_some_and(|rel| related(a, b, rel, cfg))
                || label_related(a, b, cfg);
            if linked {
                let (x, y) = (find(&mut parent, i), find(&mut parent, j));
                parent[x.max(y)] = x.min(y);
            }
        }
    }
    let mut groups: BTreeMap<usize, Vec<NodeKey>> = BTreeMap::new();
    for (i, n) in nodes.iter().enumerate() {
        let r = find(&mut parent, i);
        groups.entry(r).or_default().push(n.key.clone());
    }
    let mut out: Vec<Vec<NodeKey>> = groups
        .into_values()
        .map(|mut g| {
            g.sort();
            g
        })
        .collect();
    out.sort();
    out
}

/// The distance DBSCAN uses: half the onset gap in units of `near_ms` (capped at 2), plus half
/// the Jaccard distance of the identifying labels other than `alertname` and `metric`, plus 1
/// when the alerts move in opposite directions. With `eps` = 1, alerts on different entities
/// group when their onsets are within `near_ms`; on the same entity, within about twice that.
pub fn mixed_distance(a: &AlertNode, b: &AlertNode, cfg: &GroupingConfig) -> f64 {
    let gap = (a.key.onset as f64 - b.key.onset as f64).abs() / cfg.near_ms.max(1) as f64;
    let skip = |k: &String| k == "alertname" || k == "metric";
    let la: Vec<(&String, &String)> = a.labels.iter().filter(|(k, _)| !skip(k)).collect();
    let lb: Vec<(&String, &String)> = b.labels.iter().filter(|(k, _)| !skip(k)).collect();
    let inter = la.iter().filter(|x| lb.contains(x)).count();
    let union = la.len() + lb.len() - inter;
    let jaccard = if union == 0 {
        1.0
    } else {
        inter as f64 / union as f64
    };
    0.5 * gap.min(2.0) + 0.5 * (1.0 - jaccard) + if a.up == b.up { 0.0 } else { 1.0 }
}

/// Groups `nodes` with augurs' DBSCAN over [`mixed_distance`]; returns groups of indices
/// (noise points are left out), each sorted, in order of their first index.
pub fn dbscan_groups(nodes: &[&AlertNode], cfg: &GroupingConfig) -> Vec<Vec<usize>> {
    if nodes.len() < 2 {
        return Vec::new();
    }
    let matrix: Vec<Vec<f64>> = nodes
        .iter()
        .map(|a| nodes.iter().map(|b| mixed_distance(a, b, cfg)).collect())
        .collect();
    let Ok(matrix) = DistanceMatrix::try_from_square(matrix) else {
        return Vec::new();
    };
    // min_cluster_size counts the point itself: 2 makes DBSCAN single linkage within eps.
    let labels = DbscanClusterer::new(cfg.dbscan_eps, 2).fit(&matrix);
    let mut groups: BTreeMap<i32, Vec<usize>> = BTreeMap::new();
    for (i, l) in labels.iter().enumerate() {
        if l.is_cluster() {
            groups.entry(l.as_i32()).or_default().push(i);
        }
    }
    let mut out: Vec<Vec<usize>> = groups.into_values().collect();
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::topology::ServiceSpec;
    use crate::records::AnomalyType;

    pub(crate) fn node(fp: &str, entity: &str, onset_min: u64, up: bool) -> AlertNode {
        AlertNode {
            key: NodeKey {
                onset: onset_min * 60_000,
                fingerprint: fp.into(),
            },
            entity: entity.into(),
            up,
            anomaly_type: AnomalyType::LatencySpike,
            labels: [("service".to_string(), entity.to_string())].into(),
        }
    }

    fn topo() -> Topology {
        let s = |n: &str, c: &[&str]| ServiceSpec {
            name: n.into(),
            calls: c.iter().map(|x| x.to_string()).collect(),
            runs_on: None,
            user_facing: None,
        };
        Topology::from_services(&[s("fe", &["orders"]), s("orders", &["db"]), s("db", &[])])
    }

    #[test]
    fn rising_symptoms_follow_callers_and_falling_load_follows_callees() {
        let cfg = GroupingConfig::default();
        let db = node("a", "db", 10, true);
        let fe_late = node("b", "fe", 13, true);
        // fe calls db (2 hops): the callee led by 3 minutes: linked.
        assert!(related(&fe_late, &db, Relation::Calls(2), &cfg));
        // The caller leading by 3 minutes does not explain a rising callee.
        let db_late = node("c", "db", 13, true);
        let fe = node("d", "fe", 10, true);
        assert!(!related(&fe, &db_late, Relation::Calls(2), &cfg));
        // Falling load: the caller leads.
        let fe_down = node("e", "fe", 10, false);
        let db_down = node("f", "db", 13, false);
        assert!(related(&fe_down, &db_down, Relation::Calls(2), &cfg));
        // Opposite directions never link across services.
        assert!(!related(&fe_down, &db, Relation::Calls(2), &cfg));
    }

    #[test]
    fn components_chain_a_propagation_path_and_leave_noise_out() {
        let cfg = GroupingConfig::default();
        let nodes = vec![
            node("db", "db", 10, true),
            node("orders", "orders", 11, true),
            node("fe", "fe", 12, true),
            node("noise", "fe", 40, true),
        ];
        let groups = components(&nodes, &topo(), &cfg);
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].len(), 3);
        assert_eq!(groups[1][0].fingerprint, "noise");
    }

    #[test]
    fn dbscan_groups_by_time_and_labels() {
        let cfg = GroupingConfig::default();
        let a = node("a", "x", 10, true);
        let b = node("b", "y", 11, true);
        let c = node("c", "z", 30, true);
        let groups = dbscan_groups(&[&a, &b, &c], &cfg);
        assert_eq!(groups, vec![vec![0, 1]]);
    }
}
