//! The differential grouping (episodes and related pairs maintained by the dataflow, their
//! components named by the incidents operator's union-find) equals the plain sequential grouping
//! (the oracle) on seeded random alerts over a random topology, after every batch of insertions
//! and retractions.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use differential_dataflow::input::Input as _;
use differential_dataflow::VecCollection;
use operators::correlate::{alert_links, episode_components, AlertLinks, CorrelatePlan};
use operators::models::dedup::{AlertNode, NodeKey};
use operators::models::grouping::components;
use operators::models::topology::{ServiceSpec, Topology, TopologyEdge};
use operators::records::AnomalyType;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use timely::dataflow::operators::probe::Handle as ProbeHandle;

/// What the dataflow said, netted: each alert's episode and the related episode pairs.
#[derive(Default)]
struct Captured {
    members: BTreeMap<(NodeKey, u64), isize>,
    links: BTreeMap<(u64, u64), isize>,
}

impl Captured {
    /// Each alert's component, named as the incidents operator names it.
    fn components(&self) -> BTreeMap<NodeKey, u64> {
        for d in self.members.values().chain(self.links.values()) {
            assert!(*d == 0 || *d == 1, "multiplicity {d}");
        }
        episode_components(&self.members, &self.links)
    }
}

/// Attaches the correlation dataflow to `nodes` and `edges`, netting its outputs into `sink`.
fn capture<'scope>(
    nodes: VecCollection<'scope, u64, AlertNode>,
    edges: VecCollection<'scope, u64, TopologyEdge>,
    plan: &Arc<CorrelatePlan>,
    sink: Arc<Mutex<Captured>>,
    probe: &ProbeHandle<u64>,
) {
    let AlertLinks { members, links } = alert_links(nodes, edges, plan);
    let to_members = sink.clone();
    members
        .inspect(move |((k, e), _t, d)| {
            *to_members
                .lock()
                .unwrap()
                .members
                .entry((k.clone(), *e))
                .or_default() += d;
        })
        .probe_with(probe);
    links
        .inspect(move |((a, b), _t, d)| {
            *sink.lock().unwrap().links.entry((*a, *b)).or_default() += d;
        })
        .probe_with(probe);
}

fn random_case(seed: u64) -> (Vec<ServiceSpec>, Vec<AlertNode>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n = 8;
    let services: Vec<ServiceSpec> = (0..n)
        .map(|i| ServiceSpec {
            name: format!("s{i}"),
            // Later seeds allow call cycles, where the relation differs by the side seen from.
            calls: (0..n)
                .filter(|j| *j > i || (seed >= 4 && *j != i))
                .filter(|_| rng.random_bool(0.3))
                .map(|j| format!("s{j}"))
                .collect(),
            runs_on: Some(format!("h{}", rng.random_range(0..4))),
            user_facing: None,
        })
        .collect();
    let nodes = (0..40)
        .map(|i| {
            let entity = format!("s{}", rng.random_range(0..n + 2)); // some unknown to the topology
            AlertNode {
                key: NodeKey {
                    onset: rng.random_range(0..30u64) * 60_000,
                    fingerprint: format!("f{i:02}"),
                },
                labels: [("service".to_string(), entity.clone())].into(),
                entity,
                up: rng.random_bool(0.6),
                anomaly_type: AnomalyType::LatencySpike,
            }
        })
        .collect();
    (services, nodes)
}

#[test]
fn differential_grouping_matches_the_oracle() {
    for seed in 0..8 {
        let (services, nodes) = random_case(seed);
        let plan = Arc::new(CorrelatePlan::default());
        let topo = Topology::from_services(&services);
        let captured: Arc<Mutex<Captured>> = Arc::default();
        let sink = captured.clone();
        let edges = topo.edges();
        let nodes_in = nodes.clone();
        let plan_in = plan.clone();
        timely::execute_directly(move |worker| {
            let probe = ProbeHandle::new();
            let (mut node_input, mut edge_input) = worker.dataflow::<u64, _, _>(|scope| {
                let (ni, nodes) = scope.new_collection::<AlertNode, isize>();
                let (ei, edges) = scope.new_collection();
                capture(nodes, edges, &plan_in, sink.clone(), &probe);
                (ni, ei)
            });
            for e in &edges {
                edge_input.insert(e.clone());
            }
            // Insert the nodes in four batches, then retract every third one.
            for (round, chunk) in nodes_in.chunks(10).enumerate() {
                for n in chunk {
                    node_input.insert(n.clone());
                }
                let t = round as u64 + 1;
                node_input.advance_to(t);
                edge_input.advance_to(t);
                node_input.flush();
                edge_input.flush();
                worker.step_while(|| probe.less_than(node_input.time()));
            }
            for n in nodes_in.iter().step_by(3) {
                node_input.remove(n.clone());
            }
            node_input.advance_to(10);
            edge_input.advance_to(10);
            node_input.flush();
            edge_input.flush();
            worker.step_while(|| probe.less_than(node_input.time()));
        });
        let remaining: Vec<AlertNode> = nodes
            .iter()
            .enumerate()
            .filter(|(i, _)| i % 3 != 0)
            .map(|(_, n)| n.clone())
            .collect();
        let expected = components(&remaining, &topo, &plan.incidents.grouping);
        let mut got: BTreeMap<u64, Vec<NodeKey>> = BTreeMap::new();
        for (k, l) in captured.lock().unwrap().components() {
            got.entry(l).or_default().push(k);
        }
        let mut got: Vec<Vec<NodeKey>> = got
            .into_values()
            .map(|mut g| {
                g.sort();
                g
            })
            .collect();
        got.sort();
        assert_eq!(got, expected, "seed {seed}");
    }
}

#[test]
fn a_wide_fan_out_links_every_callee_when_alerts_arrive_after_the_edges() {
    let callees: Vec<String> = (0..8).map(|i| format!("c{i}")).collect();
    let mut services = vec![ServiceSpec {
        name: "fe".into(),
        calls: callees.clone(),
        runs_on: None,
        user_facing: None,
    }];
    services.extend(callees.iter().map(|c| ServiceSpec {
        name: c.clone(),
        ..ServiceSpec::default()
    }));
    let topo = Topology::from_services(&services);
    let nodes: Vec<AlertNode> = std::iter::once("fe".to_string())
        .chain(callees.iter().cloned())
        .enumerate()
        .map(|(i, entity)| AlertNode {
            key: NodeKey {
                onset: 60_000,
                fingerprint: format!("f{i}"),
            },
            labels: [("service".to_string(), entity.clone())].into(),
            entity,
            up: false,
            anomaly_type: AnomalyType::ThroughputDrop,
        })
        .collect();
    let plan = Arc::new(CorrelatePlan::default());
    let captured: Arc<Mutex<Captured>> = Arc::default();
    let sink = captured.clone();
    let edges = topo.edges();
    let nodes_in = nodes.clone();
    timely::execute_directly(move |worker| {
        let probe = ProbeHandle::new();
        let (mut node_input, mut edge_input) = worker.dataflow::<u64, _, _>(|scope| {
            let (ni, nodes) = scope.new_collection::<AlertNode, isize>();
            let (ei, edges) = scope.new_collection();
            capture(nodes, edges, &plan, sink.clone(), &probe);
            (ni, ei)
        });
        for e in &edges {
            edge_input.insert(e.clone());
        }
        node_input.advance_to(5);
        edge_input.advance_to(5);
        for n in &nodes_in {
            node_input.insert(n.clone());
        }
        node_input.advance_to(6);
        edge_input.advance_to(6);
        node_input.flush();
        edge_input.flush();
        worker.step_while(|| probe.less_than(node_input.time()));
    });
    let components = captured.lock().unwrap().components();
    assert_eq!(components.len(), nodes.len(), "every alert has a component");
    let labels: std::collections::BTreeSet<u64> = components.into_values().collect();
    assert_eq!(labels.len(), 1, "{labels:?}");
}
