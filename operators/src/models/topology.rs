//! The service topology: who calls whom and which host each service runs on, held as a petgraph
//! graph. It answers the two questions correlation and root-cause ranking ask: how two entities
//! are related (same entity, caller/callee within k hops, shared host) and which entities are
//! user-facing.
//!
//! The topology comes from the rules (`[[service]] name / calls / runs_on`, the format
//! `harbinger simulate` writes); it is reloadable: the engine turns the difference between two
//! versions into edge insertions and retractions (see [`Topology::edges`]).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::Direction;
use serde::{Deserialize, Serialize};

/// One `[[service]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ServiceSpec {
    /// Service name (the entity of its series).
    pub name: String,
    /// Services it calls.
    pub calls: Vec<String>,
    /// Host it runs on, if known.
    pub runs_on: Option<String>,
    /// Receives user traffic (default: nothing calls it).
    pub user_facing: Option<bool>,
}

/// An edge of the topology, as the correlation dataflow holds it in a collection.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum TopologyEdge {
    /// `caller` calls `callee`.
    Calls(String, String),
    /// `service` runs on `host`.
    RunsOn(String, String),
}

/// How entity `a` relates to entity `b`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Relation {
    /// The same entity.
    Same,
    /// `a` calls `b` (directly or through the given number of hops).
    Calls(u8),
    /// `b` calls `a` (directly or through the given number of hops).
    CalledBy(u8),
    /// Different services on the same host.
    SharedHost,
}

impl Relation {
    /// The relation seen from the other side.
    pub fn reversed(self) -> Relation {
        match self {
            Relation::Calls(d) => Relation::CalledBy(d),
            Relation::CalledBy(d) => Relation::Calls(d),
            other => other,
        }
    }
}

/// The call graph (edges caller → callee) and host placement.
#[derive(Debug, Clone, Default)]
pub struct Topology {
    graph: DiGraph<String, ()>,
    index: BTreeMap<String, NodeIndex>,
    host: BTreeMap<String, String>,
    user_facing: BTreeMap<String, bool>,
}

impl Topology {
    /// Builds the graph from service specs; a callee that has no entry of its own still becomes
    /// a node.
    pub fn from_services(services: &[ServiceSpec]) -> Self {
        let mut t = Topology::default();
        for s in services {
            t.node(&s.name);
            if let Some(h) = &s.runs_on {
                t.host.insert(s.name.clone(), h.clone());
            }
            if let Some(u) = s.user_facing {
                t.user_facing.insert(s.name.clone(), u);
            }
        }
        for s in services {
            let from = t.node(&s.name);
            for c in &s.calls {
                let to = t.node(c);
                if from != to && t.graph.find_edge(from, to).is_none() {
                    t.graph.add_edge(from, to, ());
                }
            }
        }
        t
    }

    /// Builds the graph back from its edges (what the dataflow holds).
    pub fn from_edges<'a>(edges: impl IntoIterator<Item = &'a TopologyEdge>) -> Self {
        let mut specs: BTreeMap<String, ServiceSpec> = BTreeMap::new();
        for e in edges {
            match e {
                TopologyEdge::Calls(a, b) => {
                    let s = specs.entry(a.clone()).or_default();
                    s.name = a.clone();
                    s.calls.push(b.clone());
                }
                TopologyEdge::RunsOn(s, h) => {
                    let spec = specs.entry(s.clone()).or_default();
                    spec.name = s.clone();
                    spec.runs_on = Some(h.clone());
                }
            }
        }
        let specs: Vec<ServiceSpec> = specs.into_values().collect();
        Topology::from_services(&specs)
    }

    fn node(&mut self, name: &str) -> NodeIndex {
        if let Some(&i) = self.index.get(name) {
            return i;
        }
        let i = self.graph.add_node(name.to_string());
        self.index.insert(name.to_string(), i);
        i
    }

    /// Whether the topology says nothing at all.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Whether `entity` is a service (or host) of the topology.
    pub fn contains(&self, entity: &str) -> bool {
        self.index.contains_key(entity) || self.host.values().any(|h| h == entity)
    }

    /// Every edge, sorted: the topology's content as the dataflow's edge collection.
    pub fn edges(&self) -> Vec<TopologyEdge> {
        let mut out: Vec<TopologyEdge> = self
            .graph
            .edge_indices()
            .filter_map(|e| self.graph.edge_endpoints(e))
            .map(|(a, b)| TopologyEdge::Calls(self.graph[a].clone(), self.graph[b].clone()))
            .collect();
        out.extend(
            self.host
                .iter()
                .map(|(s, h)| TopologyEdge::RunsOn(s.clone(), h.clone())),
        );
        out.sort();
        out
    }

    /// Host of `service`, if known.
    pub fn host_of(&self, service: &str) -> Option<&str> {
        self.host.get(service).map(String::as_str)
    }

    /// Services `service` calls directly.
    pub fn callees(&self, service: &str) -> Vec<&str> {
        self.neighbours(service, Direction::Outgoing)
    }

    /// Services that call `service` directly.
    pub fn callers(&self, service: &str) -> Vec<&str> {
        self.neighbours(service, Direction::Incoming)
    }

    fn neighbours(&self, service: &str, dir: Direction) -> Vec<&str> {
        let Some(&i) = self.index.get(service) else {
            return Vec::new();
        };
        let mut out: Vec<&str> = self
            .graph
            .neighbors_directed(i, dir)
            .map(|n| self.graph[n].as_str())
            .collect();
        out.sort_unstable();
        out
    }

    /// Services reachable from `service` following calls (`Outgoing`) or callers (`Incoming`),
    /// with their hop count, up to `max_hops`.
    pub fn reach(&self, service: &str, dir: Direction, max_hops: u8) -> BTreeMap<String, u8> {
        let mut out = BTreeMap::new();
        let Some(&start) = self.index.get(service) else {
            return out;
        };
        let mut queue = VecDeque::from([(start, 0u8)]);
        let mut seen = BTreeSet::from([start]);
        while let Some((n, d)) = queue.pop_front() {
            if d >= max_hops {
                continue;
            }
            for m in self.graph.neighbors_directed(n, dir) {
                if seen.insert(m) {
                    out.insert(self.graph[m].clone(), d + 1);
                    queue.push_back((m, d + 1));
                }
            }
        }
        out
    }

    /// [`Self::relation`] for every ordered pair of `entities` (index pairs, `Same` left out),
    /// with one breadth-first search per entity instead of two per pair: ranking a large
    /// incident asks for every pair.
    pub fn relations_among(
        &self,
        entities: &[&str],
        max_hops: u8,
    ) -> BTreeMap<(usize, usize), Relation> {
        let reach: Vec<BTreeMap<String, u8>> = entities
            .iter()
            .map(|e| self.reach(e, Direction::Outgoing, max_hops))
            .collect();
        let mut out = BTreeMap::new();
        for (i, a) in entities.iter().enumerate() {
            for (j, b) in entities.iter().enumerate() {
                if i == j || a == b {
                    continue;
                }
                let rel = if let Some(d) = reach[i].get(*b) {
                    Some(Relation::Calls(*d))
                } else if let Some(d) = reach[j].get(*a) {
                    Some(Relation::CalledBy(*d))
                } else {
                    let ha = self.host.get(*a).map(String::as_str).unwrap_or(a);
                    let hb = self.host.get(*b).map(String::as_str).unwrap_or(b);
                    let placed = self.host.contains_key(*a) || self.host.contains_key(*b);
                    (placed && ha == hb).then_some(Relation::SharedHost)
                };
                if let Some(r) = rel {
                    out.insert((i, j), r);
                }
            }
        }
        out
    }

    /// How `a` relates to `b` within `max_hops` call hops, if at all. A host entity relates to
    /// the services it carries as `SharedHost`.
    pub fn relation(&self, a: &str, b: &str, max_hops: u8) -> Option<Relation> {
        if a == b {
            return Some(Relation::Same);
        }
        if let Some(d) = self.reach(a, Direction::Outgoing, max_hops).get(b) {
            return Some(Relation::Calls(*d));
        }
        if let Some(d) = self.reach(b, Direction::Outgoing, max_hops).get(a) {
            return Some(Relation::CalledBy(*d));
        }
        let ha = self.host.get(a).map(String::as_str).unwrap_or(a);
        let hb = self.host.get(b).map(String::as_str).unwrap_or(b);
        let placed = self.host.contains_key(a) || self.host.contains_key(b);
        (placed && ha == hb).then_some(Relation::SharedHost)
    }

    /// Whether `service` receives user traffic: as marked, else when nothing calls it.
    pub fn is_user_facing(&self, service: &str) -> bool {
        if let Some(&u) = self.user_facing.get(service) {
            return u;
        }
        self.index.contains_key(service) && self.callers(service).is_empty()
    }

    /// Personalized PageRank over the "explains" graph (callee → caller edges reversed, so rank
    /// flows from symptoms to the services they depend on), restricted to `nodes` and started
    /// from `personalization` (weights by node). 0.85 damping and 30 iterations, as commonly
    /// used (Page et al.); the result sums to 1 over `nodes`.
    pub fn personalized_pagerank(
        &self,
        nodes: &[String],
        personalization: &BTreeMap<String, f64>,
    ) -> BTreeMap<String, f64> {
        const DAMPING: f64 = 0.85;
        const ITERATIONS: usize = 30;
        let n = nodes.len();
        let mut rank: BTreeMap<String, f64> = BTreeMap::new();
        if n == 0 {
            return rank;
        }
        let total: f64 = nodes
            .iter()
            .map(|x| personalization.get(x).copied().unwrap_or(0.0).max(0.0))
            .sum();
        let p = |x: &String| {
            if total > 0.0 {
                personalization.get(x).copied().unwrap_or(0.0).max(0.0) / total
            } else {
                1.0 / n as f64
            }
        };
        // Out-links of a symptom: the anomalous services it calls (its possible causes).
        let out: BTreeMap<&String, Vec<&String>> = nodes
            .iter()
            .map(|x| {
                let callees = self.callees(x);
                let targets = nodes
                    .iter()
                    .filter(|y| {
                        *y != x
                            && (callees.contains(&y.as_str())
                                || (self.host_of(x).is_some()
                                    && self.host_of(x) == self.host_of(y)))
                    })
                    .collect();
                (x, targets)
            })
            .collect();
        for x in nodes {
            rank.insert(x.clone(), p(x));
        }
        for _ in 0..ITERATIONS {
            let mut next: BTreeMap<String, f64> = nodes
                .iter()
                .map(|x| (x.clone(), (1.0 - DAMPING) * p(x)))
                .collect();
            // Dangling nodes teleport back by the personalization; their mass is summed once
            // per iteration (not spread node by node, which costs n² on large incidents).
            let mut dangling = 0.0;
            for x in nodes {
                let r = rank.get(x).copied().unwrap_or(0.0);
                let targets = &out[x];
                if targets.is_empty() {
                    dangling += r;
                } else {
                    let share = DAMPING * r / targets.len() as f64;
                    for y in targets {
                        *next.entry((*y).clone()).or_default() += share;
                    }
                }
            }
            if dangling > 0.0 {
                for y in nodes {
                    *next.entry(y.clone()).or_default() += DAMPING * dangling * p(y);
                }
            }
            rank = next;
        }
        rank
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shop() -> Topology {
        let s = |name: &str, calls: &[&str], host: &str| ServiceSpec {
            name: name.into(),
            calls: calls.iter().map(|c| c.to_string()).collect(),
            runs_on: Some(host.into()),
            user_facing: None,
        };
        Topology::from_services(&[
            s("front-end", &["orders", "carts"], "h1"),
            s("orders", &["orders-db"], "h2"),
            s("carts", &["carts-db"], "h3"),
            s("orders-db", &[], "h3"),
            s("carts-db", &[], "h4"),
        ])
    }

    #[test]
    fn relations_follow_calls_hops_and_hosts() {
        let t = shop();
        assert_eq!(t.relation("orders", "orders", 2), Some(Relation::Same));
        assert_eq!(
            t.relation("front-end", "orders", 2),
            Some(Relation::Calls(1))
        );
        assert_eq!(
            t.relation("orders-db", "front-end", 2),
            Some(Relation::CalledBy(2))
        );
        assert_eq!(t.relation("orders-db", "front-end", 1), None);
        assert_eq!(
            t.relation("carts", "orders-db", 1),
            Some(Relation::SharedHost)
        );
        assert_eq!(t.relation("orders", "carts", 2), None);
        assert!(t.is_user_facing("front-end"));
        assert!(!t.is_user_facing("orders"));
    }

    #[test]
    fn edges_round_trip() {
        let t = shop();
        let back = Topology::from_edges(&t.edges());
        assert_eq!(back.edges(), t.edges());
    }

    #[test]
    fn pagerank_flows_to_the_shared_dependency() {
        let t = shop();
        let nodes: Vec<String> = ["front-end", "orders", "orders-db"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let pers = nodes.iter().map(|n| (n.clone(), 1.0)).collect();
        let r = t.personalized_pagerank(&nodes, &pers);
        assert!(
            r["orders-db"] > r["orders"] && r["orders"] > r["front-end"],
            "{r:?}"
        );
        let sum: f64 = r.values().sum();
        assert!((sum - 1.0).abs() < 1e-9);
    }
}
