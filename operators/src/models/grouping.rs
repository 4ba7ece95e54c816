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
//! Across entities the relation holds when it holds seen from either alert (the two views only
//! differ in call cycles). The dataflow evaluates it on episodes (an entity's alerts of one
//! direction chained within `near_ms`) rather than on alerts; [`spans_related`] gives the same
//! answer as trying every pair of their alerts.

use std::collections::BTreeMap;

use augurs::clustering::DbscanClusterer;
use augurs::DistanceMatrix;
use serde::{Deserialize, Serialize};

use crate::models::dedup::{AlertNode, NodeKey};
use crate::models::topology::{Relation, Topology};
use crate::models::ModelError;
use crate::series::stable_hash;

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
    /// Anomalous windows a lone alert needs before it opens an incident of its own (default 4;
    /// 1: at confirmation), counted over the deduplicated alert (its re-fires included). An
    /// alert that related alerts join, or that joins an open incident, does not wait. On five
    /// 72-hour simulator runs the one-alert incidents of at most three windows (16) were all
    /// false alerts or stray fragments of faults whose other alerts were in another incident
    /// (docs/design.md, "Alert intelligence").
    #[serde(default = "default_lone_windows")]
    pub lone_windows: u64,
    /// DBSCAN neighbourhood radius in the mixed distance (default 1.0; see [`mixed_distance`]).
    pub dbscan_eps: f64,
    /// How long an incident whose alerts all resolved waits for related alerts before it
    /// resolves (default 5 min; 0: it resolves at once). A fault's end and its late symptoms
    /// raise a second wave of alerts minutes after the first resolves; they belong to the same
    /// incident.
    #[serde(default)]
    pub reopen_ms: u64,
    /// Call hops within which a new alert counts as related to a waiting incident (default 0,
    /// the same entity only: the wait spans minutes, and neighbours' alerts that late belong
    /// to other faults more often than not — measured in docs/design.md).
    #[serde(default)]
    pub reopen_hops: u8,
    /// How long a resolved incident may be reopened by alerts that reverse its anomalies
    /// (default 1 h; 0: never). A fault that moves a metric away and back (traffic drops, then
    /// returns) raises a second wave in the opposite direction when it ends, often long after
    /// the first wave's alerts resolved (the detectors adapt to the lowered level).
    #[serde(default)]
    pub recovery_ms: u64,
    /// Whether an incident whose alerts resolved at a shifted level waits for the shift's
    /// return (default true). The detectors accept a level that stays shifted within about 17
    /// windows, so a long fault's alerts resolve while it still runs; resolving the incident
    /// then, and reopening it when the metric comes back, told people twice about one fault.
    /// On, an incident holding such an alert (its detectors' expectation ended beyond the
    /// boundary it crossed at onset, and no alert of the incident moved that metric back)
    /// stays open, with no active alerts, for up to `recovery_ms`; in that time only a group
    /// that reverses its moves joins it (as for a recovery), with an `updated` event.
    #[serde(default = "default_await_return")]
    pub await_return: bool,
    /// Whether an incident splits when the alert that linked its parts resolves (default
    /// false). Off, alerts stay in the incident they joined while they are active: its people
    /// were told once, and a part announced again as a new incident minutes later is noise
    /// (on the alert-intelligence benchmark, 9–16 more incidents per 72 h for the same purity
    /// and root-cause accuracy; docs/design.md).
    #[serde(default)]
    pub split: bool,
    /// Whether an open incident takes the consequences of its cause (default true). When the
    /// top-ranked cause of an incident (firing, or waiting for related alerts) had an alert
    /// that saturates a resource (memory, CPU, disk), the errors and slowness that saturation
    /// raises later (an OOM kill's error wave, a full disk's failed writes) come minutes after
    /// the incident's own alerts, too late to group with them. A new group joins the incident
    /// when it holds an alert on the cause, and every one of its alerts is an error or latency
    /// rise on the cause or on a service calling it within `max_hops`; or, while the cause's
    /// saturation alert still fires, when all of its alerts are error rises on the cause's
    /// direct callers (the killed service's own short error wave often goes unconfirmed). A
    /// traffic drop, which a saturated service does not cause, never joins this way
    /// (docs/design.md, "Alert intelligence").
    #[serde(default)]
    pub consequences: bool,
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
            lone_windows: default_lone_windows(),
            dbscan_eps: 1.0,
            reopen_ms: 300_000,
            reopen_hops: 0,
            recovery_ms: 3_600_000,
            await_return: default_await_return(),
            split: false,
            consequences: true,
        }
    }
}

fn default_lone_windows() -> u64 {
    4
}

fn default_await_return() -> bool {
    true
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

/// The range of onset gaps `a.onset − b.onset` (ms, inclusive) within which alerts moving
/// up (`up_a`, `up_b`) on entities related as `rel` (seen from `a`) belong together; `None`
/// when they never do. Every range is at least `near_ms` wide, which is what lets
/// [`spans_related`] decide for whole episodes exactly.
pub fn onset_window(
    up_a: bool,
    up_b: bool,
    rel: Relation,
    cfg: &GroupingConfig,
) -> Option<(i64, i64)> {
    let near = cfg.near_ms.min(i64::MAX as u64) as i64;
    let causal = cfg.causal_ms.min(i64::MAX as u64) as i64;
    match rel {
        Relation::Same | Relation::SharedHost => (up_a == up_b).then_some((-near, near)),
        Relation::CalledBy(d) => {
            onset_window(up_b, up_a, Relation::Calls(d), cfg).map(|(lo, hi)| (-hi, -lo))
        }
        Relation::Calls(_) => {
            if !cfg.directional {
                return Some((-near, near));
            }
            // `a` calls `b`.
            match (up_a, up_b) {
                // Rising symptoms flow up: the callee `b` may lead.
                (true, true) => Some((-near, causal)),
                // Falling load flows down: the caller `a` may lead.
                (false, false) => Some((-causal, near)),
                _ => None,
            }
        }
    }
}

/// Whether `a` and `b` (whose entities relate as `rel`, seen from `a`) belong together.
pub fn related(a: &AlertNode, b: &AlertNode, rel: Relation, cfg: &GroupingConfig) -> bool {
    let gap = a.key.onset as i64 - b.key.onset as i64;
    onset_window(a.up, b.up, rel, cfg).is_some_and(|(lo, hi)| (lo..=hi).contains(&gap))
}

/// An episode: the alerts of one entity moving one way whose onsets follow each other within
/// `near_ms`. Single linkage puts all of them in one group (the same-entity rule links each to
/// the next), so correlation links episodes instead of alerts: the pairs grow with related
/// entities, not with alerts squared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Episode {
    /// Identity ([`episode_id`]).
    pub id: u64,
    /// Direction of its alerts.
    pub up: bool,
    /// Earliest onset (ms).
    pub start: u64,
    /// Latest onset (ms).
    pub end: u64,
}

/// The interned id of an entity name (a 64-bit hash: the dataflow joins on it instead of on
/// the string).
pub fn entity_id(entity: &str) -> u64 {
    stable_hash(entity.as_bytes())
}

/// The id of the episode of entity `entity` moving `up` that starts at `start`. It names the
/// start's `near_ms` bucket, not the start itself, so it stays put while the episode's oldest
/// alerts resolve (the start only moves within the bucket most of the time); it is still
/// unique, since two episodes of one entity and direction start more than `near_ms` apart.
pub fn episode_id(entity: u64, up: bool, start: u64, near_ms: u64) -> u64 {
    let bucket = start.checked_div(near_ms).unwrap_or(start);
    let mut bytes = [0u8; 17];
    bytes[..8].copy_from_slice(&entity.to_le_bytes());
    bytes[8] = u8::from(up);
    bytes[9..].copy_from_slice(&bucket.to_le_bytes());
    stable_hash(&bytes)
}

/// Splits the sorted onsets of one entity and direction into episodes: for each onset, the
/// start of its episode (a new episode starts after a gap over `near_ms`).
pub fn episode_starts(sorted_onsets: &[u64], near_ms: u64) -> Vec<u64> {
    let mut out = Vec::with_capacity(sorted_onsets.len());
    let mut start = 0;
    let mut prev: Option<u64> = None;
    for &t in sorted_onsets {
        if prev.is_none_or(|p| t.saturating_sub(p) > near_ms) {
            start = t;
        }
        prev = Some(t);
        out.push(start);
    }
    out
}

/// Whether some alert of episode `a` and some alert of episode `b` (entities related as `rel`,
/// seen from `a`) are [`related`]. Exact from the spans alone: within an episode onsets are at
/// most `near_ms` apart, so the gaps `a.onset − b.onset` over all pairs leave no hole wider than
/// `near_ms`, and every [`onset_window`] is at least that wide: the window holds a gap exactly
/// when it overlaps the range of gaps.
pub fn spans_related(a: &Episode, b: &Episode, rel: Relation, cfg: &GroupingConfig) -> bool {
    let lowest = a.start as i64 - b.end as i64;
    let highest = a.end as i64 - b.start as i64;
    onset_window(a.up, b.up, rel, cfg).is_some_and(|(lo, hi)| lowest <= hi && highest >= lo)
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

/// The grouping as a plain computation: connected components of `related`, seen from either
/// alert (plus
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
            // Seen from either side: in a call cycle the two views differ.
            let view = |x: &AlertNode, y: &AlertNode| {
                topo.relation(&x.entity, &y.entity, cfg.max_hops)
                    .or_else(|| (x.entity == y.entity).then_some(Relation::Same))
                    .is_some_and(|rel| related(x, y, rel, cfg))
            };
            let linked = view(a, b) || view(b, a) || label_related(a, b, cfg);
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
    /// One episode of `count` onsets starting at `start`, each at most `near` after the last.
    fn episode_onsets(
        rng: &mut rand_chacha::ChaCha8Rng,
        start: u64,
        count: usize,
        near: u64,
    ) -> Vec<u64> {
        use rand::Rng;
        let mut t = start;
        (0..count)
            .map(|_| {
                let now = t;
                t += rng.random_range(0..=near);
                now
            })
            .collect()
    }

    #[test]
    fn spans_decide_exactly_what_some_pair_of_alerts_would() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let rels = [
            Relation::Same,
            Relation::SharedHost,
            Relation::Calls(1),
            Relation::Calls(2),
            Relation::CalledBy(1),
        ];
        let mut linked = 0;
        for case in 0..400 {
            let cfg = GroupingConfig {
                directional: case % 4 != 0,
                near_ms: [120_000, 60_000, 0][case % 3],
                causal_ms: [180_000, 0, 30_000][case % 3],
                ..GroupingConfig::default()
            };
            let (up_a, up_b) = (rng.random_bool(0.6), rng.random_bool(0.6));
            let (na, nb) = (rng.random_range(1..5), rng.random_range(1..5));
            let tb_start = rng.random_range(500_000..1_500_000u64);
            let ta = episode_onsets(&mut rng, 1_000_000, na, cfg.near_ms);
            let tb = episode_onsets(&mut rng, tb_start, nb, cfg.near_ms);
            let alerts = |ts: &[u64], up: bool, p: &str| -> Vec<AlertNode> {
                ts.iter()
                    .enumerate()
                    .map(|(i, t)| AlertNode {
                        key: NodeKey {
                            onset: *t,
                            fingerprint: format!("{p}{i}"),
                        },
                        ..node("x", "e", 0, up)
                    })
                    .collect()
            };
            let (aa, bb) = (alerts(&ta, up_a, "a"), alerts(&tb, up_b, "b"));
            let span = |ts: &[u64], up: bool| Episode {
                id: 0,
                up,
                start: ts[0],
                end: ts[ts.len() - 1],
            };
            for rel in rels {
                let brute = aa
                    .iter()
                    .any(|a| bb.iter().any(|b| related(a, b, rel, &cfg)));
                let by_span = spans_related(&span(&ta, up_a), &span(&tb, up_b), rel, &cfg);
                assert_eq!(brute, by_span, "case {case} {rel:?} {ta:?} {tb:?}");
                linked += usize::from(brute);
            }
        }
        // The cases must exercise both answers.
        assert!(linked > 100 && linked < 1_900, "{linked}");
    }

    #[test]
    fn episodes_split_at_gaps_over_near_and_keep_their_id_while_the_start_moves() {
        assert_eq!(
            episode_starts(&[0, 100, 250, 260, 500], 150),
            vec![0, 0, 0, 0, 500]
        );
        assert_eq!(episode_starts(&[0, 100, 251], 150), vec![0, 0, 251]);
        let e = entity_id("db");
        // The oldest alert resolves: the start moves within its bucket, the id stays.
        assert_eq!(
            episode_id(e, true, 120_000, 120_000),
            episode_id(e, true, 200_000, 120_000)
        );
        assert_ne!(
            episode_id(e, true, 120_000, 120_000),
            episode_id(e, false, 120_000, 120_000)
        );
        assert_ne!(
            episode_id(e, true, 0, 120_000),
            episode_id(e, true, 120_001, 120_000)
        );
        assert_ne!(episode_id(e, true, 5, 0), episode_id(e, true, 6, 0));
    }
}
