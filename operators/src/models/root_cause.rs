//! Root-cause ranking of one incident: up to five entities with a score in [0, 1] and evidence a
//! person can check.
//!
//! Simple robust signals first (published fault-injection benchmarks find that onset and
//! robust-deviation methods beat graph-walk methods, which often score near random):
//! * **onset**: which entity changed first (`exp(−Δ/τ)` of its earliest alert's onset after
//!   the incident's first);
//! * **call-graph position**: the share of the other anomalous entities this one explains.
//!   Symptoms (latency, errors, saturation) travel up the call graph, so an anomalous callee
//!   explains callers whose symptoms rose; load travels down it, so a caller explains callees
//!   whose traffic changed either way (a drop and the surge when it ends) or whose metrics fell;
//!   a co-located service half-explains its host neighbours;
//! * **strength**: the highest anomaly score of its alerts;
//! * **type**: resource saturation (CPU, memory, disk) is a cause more often than a symptom;
//! * **personalized PageRank** over the explanation graph, as one signal among these (its
//!   default weight is small; the measurement is in `docs/design.md`).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::models::topology::{Relation, Topology};
use crate::models::ModelError;
use crate::records::{AnomalyType, RootCauseCandidate};
use crate::series::EventTime;
use crate::time_format::rfc3339_millis;

/// Weights of the signals (from `rules/correlation.toml`, `[root_cause]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RootCauseConfig {
    /// Onset weight (default 1).
    pub w_onset: f64,
    /// Call-graph position weight (default 1).
    pub w_graph: f64,
    /// Anomaly strength weight (default 0.3).
    pub w_strength: f64,
    /// Resource-saturation type weight (default 0.5).
    pub w_type: f64,
    /// Personalized PageRank weight (default 0.2).
    pub w_pagerank: f64,
    /// Onset decay (default 2 min: about two windows of propagation).
    pub onset_tau_ms: u64,
    /// Call hops considered (default 2).
    pub max_hops: u8,
    /// Fragments of metric names that measure traffic (request rates), whose changes flow from
    /// callers to callees (default: the shipped anomaly-type rules' throughput fragments).
    pub traffic_metrics: Vec<String>,
}

impl Default for RootCauseConfig {
    fn default() -> Self {
        RootCauseConfig {
            w_onset: 1.0,
            w_graph: 1.0,
            w_strength: 0.3,
            w_type: 0.5,
            w_pagerank: 0.2,
            onset_tau_ms: 120_000,
            max_hops: 2,
            traffic_metrics: [
                "requests_total",
                "requests_per_second",
                "throughput",
                "traffic",
                "rps",
                "qps",
            ]
            .map(String::from)
            .to_vec(),
        }
    }
}

impl RootCauseConfig {
    /// Checks the parameters.
    pub fn validate(&self) -> Result<(), ModelError> {
        let w = [
            self.w_onset,
            self.w_graph,
            self.w_strength,
            self.w_type,
            self.w_pagerank,
        ];
        if w.iter().any(|x| !x.is_finite() || *x < 0.0) || w.iter().sum::<f64>() <= 0.0 {
            return Err(ModelError::InvalidParameter {
                name: "root_cause weights",
                reason: "must be finite, ≥ 0 and not all 0".into(),
            });
        }
        Ok(())
    }
}

/// One alert of an incident, as ranking sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// Entity.
    pub entity: String,
    /// Onset.
    pub onset: EventTime,
    /// Moved up.
    pub up: bool,
    /// Type.
    pub anomaly_type: AnomalyType,
    /// Highest score.
    pub score: f64,
    /// Metric name.
    pub metric: String,
}

/// Whether `t` saturates a resource (a cause more often than a symptom).
pub(crate) fn is_resource(t: AnomalyType) -> bool {
    matches!(
        t,
        AnomalyType::CpuOverload | AnomalyType::MemoryLeak | AnomalyType::ResourceSpike
    )
}

/// Whether `t` is what a saturated resource raises on its service and the services calling it:
/// errors and slowness.
pub(crate) fn is_symptom(t: AnomalyType) -> bool {
    matches!(
        t,
        AnomalyType::ErrorRateSpike
            | AnomalyType::LatencySpike
            | AnomalyType::PerformanceDegradation
    )
}

/// Ranks the entities of `alerts`; at most five candidates, best first (ties by name).
///
/// Every entity is scored, but evidence text is written for the five kept only: a large
/// incident has hundreds of entities, and ranking runs each time it changes.
pub fn rank(
    alerts: &[Evidence],
    topo: &Topology,
    cfg: &RootCauseConfig,
) -> Vec<RootCauseCandidate> {
    let entities: BTreeSet<&str> = alerts.iter().map(|a| a.entity.as_str()).collect();
    let Some(t0) = alerts.iter().map(|a| a.onset).min() else {
        return Vec::new();
    };
    let list: Vec<&str> = entities.iter().copied().collect();
    // Per entity: its alerts, and whether a symptom rose, load moved (a fall, or traffic either
    // way) or its own traffic moved; each alert's metric is tested against the traffic
    // fragments once.
    let is_traffic = |a: &Evidence| cfg.traffic_metrics.iter().any(|f| a.metric.contains(f));
    let mut grouped: Vec<Vec<&Evidence>> = vec![Vec::new(); list.len()];
    let mut symptom_rose = vec![false; list.len()];
    let mut load_moved = vec![false; list.len()];
    let mut traffic_moved = vec![false; list.len()];
    let position: BTreeMap<&str, usize> = list.iter().enumerate().map(|(i, e)| (*e, i)).collect();
    for a in alerts {
        if let Some(&i) = position.get(a.entity.as_str()) {
            grouped[i].push(a);
            let traffic = is_traffic(a);
            symptom_rose[i] |= a.up && !traffic;
            load_moved[i] |= !a.up || traffic;
            traffic_moved[i] |= traffic;
        }
    }
    let ppr = if cfg.w_pagerank > 0.0 && !topo.is_empty() {
        let names: Vec<String> = list.iter().map(|e| e.to_string()).collect();
        let pers: BTreeMap<String, f64> = names
            .iter()
            .zip(&grouped)
            .map(|(e, mine)| (e.clone(), mine.iter().map(|a| a.score).fold(0.0, f64::max)))
            .collect();
        topo.personalized_pagerank(&names, &pers)
    } else {
        BTreeMap::new()
    };
    let ppr_max = ppr.values().copied().fold(0.0, f64::max);
    let total_w = cfg.w_onset + cfg.w_graph + cfg.w_strength + cfg.w_type + cfg.w_pagerank;
    let relations = topo.relations_among(&list, cfg.max_hops);
    let others = entities.len().saturating_sub(1);
    let mut scored: Vec<Scored> = list
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let mine: &Vec<&Evidence> = &grouped[i];
            let onset = mine.iter().map(|a| a.onset).min().unwrap_or(t0);
            let lag = onset.saturating_sub(t0) as f64;
            let s_onset = (-lag / cfg.onset_tau_ms.max(1) as f64).exp();
            // The entities this one explains, in name order (`relations` is keyed by pair).
            let explains: Vec<(usize, f64)> = relations
                .range((i, 0)..(i + 1, 0))
                .filter_map(|(&(_, j), rel)| {
                    let w = match rel {
                        Relation::CalledBy(_) if symptom_rose[j] => 1.0,
                        Relation::Calls(_) if load_moved[j] => 1.0,
                        Relation::SharedHost => 0.5,
                        _ => 0.0,
                    };
                    (w > 0.0).then_some((j, w))
                })
                .collect();
            let explained = explains.iter().fold(0.0, |sum, (_, w)| sum + w);
            let s_graph = if others == 0 {
                1.0
            } else {
                explained / others as f64
            };
            let strongest = mine
                .iter()
                .max_by(|a, b| a.score.total_cmp(&b.score))
                .copied();
            let s_strength = strongest.map_or(0.0, |a| a.score.clamp(0.0, 1.0));
            // Resource use that rose on an entity whose own traffic moved is load, not a
            // cause: when traffic returns after a drop every service's CPU and memory climb
            // with it (the type signal named a database, and the trend detector calls the
            // climb a leak), and the return's own traffic alert often comes later or not at
            // all, as the detectors adapted to the lowered level.
            let resource = mine
                .iter()
                .find(|a| is_resource(a.anomaly_type) && !(a.up && traffic_moved[i]))
                .copied();
            let s_type = if resource.is_some() { 1.0 } else { 0.0 };
            let s_ppr = if ppr_max > 0.0 {
                ppr.get(*e).copied().unwrap_or(0.0) / ppr_max
            } else {
                0.0
            };
            let score = (cfg.w_onset * s_onset
                + cfg.w_graph * s_graph
                + cfg.w_strength * s_strength
                + cfg.w_type * s_type
                + cfg.w_pagerank * s_ppr)
                / total_w;
            Scored {
                entity: e,
                score: (score * 1000.0).round() / 1000.0,
                onset,
                lag,
                explains: explains.into_iter().map(|(j, _)| list[j]).collect(),
                strongest,
                resource,
                s_ppr,
            }
        })
        .collect();
    scored.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.entity.cmp(b.entity)));
    scored.truncate(5);
    scored
        .into_iter()
        .map(|c| c.into_candidate(others))
        .collect()
}

/// One entity's signals, before its evidence is written down.
struct Scored<'a> {
    entity: &'a str,
    /// Weighted score, rounded to 3 decimals (what the output shows and ranks by).
    score: f64,
    onset: EventTime,
    /// Time after the incident's first alert, ms.
    lag: f64,
    /// Other anomalous entities it explains.
    explains: Vec<&'a str>,
    strongest: Option<&'a Evidence>,
    resource: Option<&'a Evidence>,
    s_ppr: f64,
}

impl Scored<'_> {
    /// The candidate with its evidence; `others` is the number of other anomalous entities.
    fn into_candidate(self, others: usize) -> RootCauseCandidate {
        let mut evidence = Vec::new();
        if self.lag == 0.0 {
            evidence.push(format!(
                "first to change: anomalous since {}",
                rfc3339_millis(self.onset)
            ));
        } else {
            evidence.push(format!(
                "anomalous since {}, {:.0} s after the first alert",
                rfc3339_millis(self.onset),
                self.lag / 1000.0
            ));
        }
        if !self.explains.is_empty() {
            evidence.push(format!(
                "explains {} of {} other anomalous entities through the call graph or host ({})",
                self.explains.len(),
                others,
                self.explains.join(", ")
            ));
        }
        if let Some(a) = self.strongest {
            evidence.push(format!(
                "strongest anomaly: {} {} (score {:.2})",
                a.metric,
                a.anomaly_type.as_str(),
                a.score
            ));
        }
        if let Some(a) = self.resource {
            evidence.push(format!(
                "resource saturation ({}) is a likely cause rather than a symptom",
                a.anomaly_type.as_str()
            ));
        }
        if self.s_ppr > 0.0 {
            evidence.push(format!(
                "personalized PageRank {:.2} of the top",
                self.s_ppr
            ));
        }
        RootCauseCandidate {
            entity: self.entity.to_string(),
            score: self.score,
            evidence,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::topology::ServiceSpec;

    fn ev(entity: &str, onset_s: u64, t: AnomalyType, up: bool) -> Evidence {
        Evidence {
            entity: entity.into(),
            onset: onset_s * 1000,
            up,
            anomaly_type: t,
            score: 0.9,
            metric: "m".into(),
        }
    }

    #[test]
    fn the_first_anomalous_callee_ranks_first() {
        let s = |n: &str, c: &[&str]| ServiceSpec {
            name: n.into(),
            calls: c.iter().map(|x| x.to_string()).collect(),
            runs_on: None,
            user_facing: None,
        };
        let topo = Topology::from_services(&[
            s("fe", &["orders", "carts"]),
            s("orders", &["db"]),
            s("carts", &[]),
            s("db", &[]),
        ]);
        let alerts = [
            ev("fe", 120, AnomalyType::LatencySpike, true),
            ev("orders", 60, AnomalyType::LatencySpike, true),
            ev("db", 0, AnomalyType::CpuOverload, true),
        ];
        let r = rank(&alerts, &topo, &RootCauseConfig::default());
        assert_eq!(r[0].entity, "db");
        assert!(r[0].score > r[1].score);
        assert!(r[0].evidence.iter().any(|e| e.contains("explains 2 of 2")));
        // A traffic drop starts at the caller and flows down.
        let drop = [
            ev("fe", 0, AnomalyType::ThroughputDrop, false),
            ev("orders", 0, AnomalyType::ThroughputDrop, false),
            ev("carts", 60, AnomalyType::ThroughputDrop, false),
        ];
        let r = rank(&drop, &topo, &RootCauseConfig::default());
        assert_eq!(r[0].entity, "fe");
        // When the drop ends, traffic surges back down the same path: still the caller's doing,
        // though every metric rose.
        let surge = |e: &str, s: u64| Evidence {
            metric: "http_requests_total".into(),
            ..ev(e, s, AnomalyType::UnusualPattern, true)
        };
        let r = rank(
            &[surge("fe", 0), surge("orders", 0), surge("db", 60)],
            &topo,
            &RootCauseConfig::default(),
        );
        assert_eq!(r[0].entity, "fe");
        // Callees whose CPU rose with their own traffic are busy, not broken.
        let busy = |e: &str| Evidence {
            metric: "cpu".into(),
            ..ev(e, 0, AnomalyType::CpuOverload, true)
        };
        let r = rank(
            &[
                surge("fe", 0),
                surge("orders", 0),
                busy("orders"),
                surge("db", 0),
                busy("db"),
            ],
            &topo,
            &RootCauseConfig::default(),
        );
        assert_eq!(r[0].entity, "fe");
        assert!(!names_saturation(&r), "{r:?}");
        // The return's own traffic alert may never come (the detectors adapted to the lowered
        // level) while memory climbs back with the load: still load, not a leak's cause.
        let drop = |e: &str| Evidence {
            metric: "http_requests_total".into(),
            ..ev(e, 0, AnomalyType::ThroughputDrop, false)
        };
        let climb = Evidence {
            metric: "memory".into(),
            ..ev("db", 600, AnomalyType::MemoryLeak, true)
        };
        let r = rank(
            &[drop("fe"), drop("orders"), drop("db"), climb],
            &topo,
            &RootCauseConfig::default(),
        );
        assert_eq!(r[0].entity, "fe");
        assert!(!names_saturation(&r), "{r:?}");
    }

    /// Whether any candidate's evidence calls its resource use a cause.
    fn names_saturation(r: &[RootCauseCandidate]) -> bool {
        r.iter()
            .any(|c| c.evidence.iter().any(|e| e.contains("saturation")))
    }

    #[test]
    fn without_topology_onset_and_type_decide() {
        let alerts = [
            ev("a", 60, AnomalyType::LatencySpike, true),
            ev("b", 0, AnomalyType::MemoryLeak, true),
        ];
        let r = rank(&alerts, &Topology::default(), &RootCauseConfig::default());
        assert_eq!(r[0].entity, "b");
        assert!(r.len() == 2 && r.iter().all(|c| (0.0..=1.0).contains(&c.score)));
    }
}
