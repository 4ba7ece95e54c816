//! The service topology: who calls whom and which host each service runs on, held as a petgraph
//! graph. It answers the two questions correlation and root-cause ranking ask: how two entities
//! are related (same entity, caller/callee within k hops, shared host) and which entities are
//! user-facing.
//!
//! The topology comes from the rules (`[[service]] name / calls / runs_on`, the format
//! `harbinger simulate` writes); it is reloadable: the engine turns the difference between two
//! versions into edge insertions and retractions (see [`Topology::edges`]).

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

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
        self.reach_nodes(service, dir, max_hops)
            .into_iter()
            .map(|(m, d)| (self.graph[m].clone(), d))
            .collect()
    }

    /// [`Self::reach`] as graph nodes, in breadth-first order.
    fn reach_nodes(&self, service: &str, dir: Direction, max_hops: u8) -> Vec<(NodeIndex, u8)> {
        let mut out = Vec::new();
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
                    out.push((m, d + 1));
                    queue.push_back((m, d + 1));
                }
            }
        }
        out
    }

    /// [`Self::relation`] for every ordered pair of the distinct `entities` (index pairs,
    /// `Same` left out), with one breadth-first search per entity and pairs visited only where
    /// a path or a host joins them: ranking a large incident asks for every pair.
    pub fn relations_among(
        &self,
        entities: &[&str],
        max_hops: u8,
    ) -> BTreeMap<(usize, usize), Relation> {
        let position: HashMap<NodeIndex, usize> = entities
            .iter()
            .enumerate()
            .filter_map(|(i, e)| self.index.get(*e).map(|&n| (n, i)))
            .collect();
        let mut out = BTreeMap::new();
        // Calling comes first, then being called, then sharing a host (as `relation` asks).
        let mut called_by = Vec::new();
        for (i, e) in entities.iter().enumerate() {
            for (m, d) in self.reach_nodes(e, Direction::Outgoing, max_hops) {
                if let Some(&j) = position.get(&m).filter(|j| **j != i) {
                    out.insert((i, j), Relation::Calls(d));
                    called_by.push(((j, i), d));
                }
            }
        }
        for (pair, d) in called_by {
            out.entry(pair).or_insert(Relation::CalledBy(d));
        }
        let mut by_host: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for (i, e) in entities.iter().enumerate() {
            by_host.entry(self.host_key(e)).or_default().push(i);
        }
        let placed = |i: usize| self.host.contains_key(entities[i]);
        for group in by_host.values().filter(|g| g.len() > 1) {
            for &i in group {
                for &j in group {
                    if i != j && (placed(i) || placed(j)) {
                        out.entry((i, j)).or_insert(Relation::SharedHost);
                    }
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
        let placed = self.host.contains_key(a) || self.host.contains_key(b);
        (placed && self.host_key(a) == self.host_key(b)).then_some(Relation::SharedHost)
    }

    /// The host `entity` runs on; an entity without a host stands for itself, so a host entity
    /// shares a host with its services.
    fn host_key<'a>(&'a self, entity: &'a str) -> &'a str {
        self.host.get(entity).map_or(entity, String::as_str)
    }

    /// Whether `service` receives user traffic: as marked, else when nothing calls it.
    pub fn is_user_facing(&self, service: &str) -> bool {
        if let Some(&u) = self.user_facing.get(service) {
            return u;
        }
        self.index.contains_key(service) && self.callers(service).is_empty()
    }

    /// Personalized PageRank over the "explains" graph (callee → caller edges reversed, so rank
    /// flows from symptoms to the services they depend on), restricted to the distinct `nodes`
    /// and started from `personalization` (weights by node). 0.85 damping and 30 iterations, as
    /// commonly used (Page et al.); the result sums to 1 over `nodes`.
    pub fn personalized_pagerank(
        &self,
        nodes: &[String],
        personalization: &BTreeMap<String, f64>,
    ) -> BTreeMap<String, f64> {
        const DAMPING: f64 = 0.85;
        const ITERATIONS: usize = 30;
        let n = nodes.len();
        if n == 0 {
            return BTreeMap::new();
        }
        let weight: Vec<f64> = nodes
            .iter()
            .map(|x| personalization.get(x).copied().unwrap_or(0.0).max(0.0))
            .collect();
        let total: f64 = weight.iter().sum();
        let p: Vec<f64> = weight
            .iter()
            .map(|w| {
                if total > 0.0 {
                    w / total
                } else {
                    1.0 / n as f64
                }
            })
            .collect();
        let out = self.explanation_links(nodes);
        let mut rank = p.clone();
        for _ in 0..ITERATIONS {
            let mut next: Vec<f64> = p.iter().map(|p| (1.0 - DAMPING) * p).collect();
            // Dangling nodes teleport back by the personalization; their mass is summed once
            // per iteration (not spread node by node, which costs n² on large incidents).
            let mut dangling = 0.0;
            for (r, targets) in rank.iter().zip(&out) {
                if targets.is_empty() {
                    dangling += r;
                } else {
                    let share = DAMPING * r / targets.len() as f64;
                    for &y in targets {
                        next[y] += share;
                    }
                }
            }
            if dangling > 0.0 {
                for (next, p) in next.iter_mut().zip(&p) {
                    *next += DAMPING * dangling * p;
                }
            }
            rank = next;
        }
        nodes.iter().cloned().zip(rank).collect()
    }

    /// Out-links of each of the distinct `nodes` in the explanation graph, as indices into
    /// `nodes`: a symptom links to the anomalous services it calls directly and to those on
    /// its host (its possible causes).
    fn explanation_links(&self, nodes: &[String]) -> Vec<Vec<usize>> {
        let position: HashMap<&str, usize> = nodes
            .iter()
            .enumerate()
            .map(|(i, x)| (x.as_str(), i))
            .collect();
        let mut on_host: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for (i, x) in nodes.iter().enumerate() {
            if let Some(h) = self.host_of(x) {
                on_host.entry(h).or_default().push(i);
            }
        }
        nodes
            .iter()
            .enumerate()
            .map(|(i, x)| {
                let mut targets: Vec<usize> = self
                    .callees(x)
                    .into_iter()
                    .filter_map(|c| position.get(c).copied())
                    .collect();
                if let Some(h) = self.host_of(x) {
                    targets.extend(&on_host[h]);
                }
                targets.retain(|&j| j != i);
                targets.sort_unstable();
                targets.dedup();
                targets
            })
            .collect()
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

    proptest::proptest! {
        /// The all-pairs shortcut answers what `relation` answers pair by pair, on random call
        /// graphs with cycles, shared hosts, host entities and entities the topology lacks.
        #[test]
        fn relations_among_agrees_with_relation(
            calls in proptest::collection::vec((0usize..12, 0usize..12), 0..30),
            hosts in proptest::collection::vec(proptest::option::of(0usize..4), 12),
            picked in proptest::collection::btree_set(0usize..18, 0..14),
            max_hops in 1u8..4,
        ) {
            let specs: Vec<ServiceSpec> = (0..12)
                .map(|i| ServiceSpec {
                    name: format!("s{i}"),
                    calls: calls
                        .iter()
                        .filter(|(a, _)| *a == i)
                        .map(|(_, b)| format!("s{b}"))
                        .collect(),
                    runs_on: hosts[i].map(|h| format!("h{h}")),
                    user_facing: None,
                })
                .collect();
            let t = Topology::from_services(&specs);
            // 0..12 services, 12..16 hosts, 16..18 unknown entities.
            let names: Vec<String> = picked
                .iter()
                .map(|&i| match i {
                    0..12 => format!("s{i}"),
                    12..16 => format!("h{}", i - 12),
                    _ => format!("x{i}"),
                })
                .collect();
            let entities: Vec<&str> = names.iter().map(String::as_str).collect();
            let all = t.relations_among(&entities, max_hops);
            for (i, a) in entities.iter().enumerate() {
                for (j, b) in entities.iter().enumerate() {
                    if i != j {
                        proptest::prop_assert_eq!(
                            all.get(&(i, j)).copied(),
                            t.relation(a, b, max_hops),
                            "{} -> {}",
                            a,
                            b
                        );
                    }
                }
            }
        }
    }
}
