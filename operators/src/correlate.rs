//! The correlation stage: turns the alert stream into deduplicated, muted-or-not alerts and few
//! incidents with ranked root causes.
//!
//! Shape (alerts are rare next to points, so the stage runs where their volume is: every alert
//! is exchanged to worker 0):
//! ```text
//! raw alerts ─► Dedup (dedup, flapping, mutes) ─┬─ alert events ───────────────┐
//!                                              └─ confirmed nodes (±1) ─┐     ▼
//! topology edges (±1) ─────────────────────────► differential dataflow:   Incidents ─► alerts
//!                                                 episodes and related       (components,  (annotated)
//!                                                 episode pairs ───────────►  lifecycle,    incidents
//!                                                                              DBSCAN pass,
//!                                                                              root causes,
//!                                                                              escalation)
//! ```
//! Active confirmed alerts and topology edges are differential collections: a resolved alert is
//! retracted, a reloaded topology inserts and retracts edges, and the related pairs follow
//! incrementally. The incidents operator keeps the pairs and names the connected components by
//! union-find at each time, so incidents merge and split as the pairs change. (Differential's
//! label propagation did the same inside the dataflow; its iterative reduce replaying label
//! histories was two thirds of the stage's time at 5,000 services.) Every operator acts on time
//! `t` only once its inputs' frontier has passed `t`, and sorts what it handles at one time by a
//! total order, so the output is the same for any number of workers.

use std::cell::RefCell;
use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::sync::Arc;

use differential_dataflow::{AsCollection, VecCollection};
use serde::{Deserialize, Serialize};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::{Exchange as ExchangePact, Pipeline};
use timely::dataflow::operators::vec::Map;
use timely::dataflow::operators::{Capability, Concat, Operator};
use timely::dataflow::StreamVec;

use crate::models::alert_lifecycle::short;
use crate::models::cel_rule::CelCondition;
use crate::models::dedup::{AlertNode, DedupBook, DedupConfig, DedupOutput, NodeKey};
use crate::models::grouping::{
    dbscan_groups, entity_id, episode_id, episode_starts, label_related, spans_related, Episode,
};
use crate::models::incidents::{
    settled_at_new_level, Group, IncidentBook, IncidentPolicy, MemberInfo,
};
use crate::models::matchers::MuteRules;
use crate::models::topology::{Relation, Topology, TopologyEdge};
use crate::records::{AlertEvent, AlertRecord, IncidentRecord};
use crate::series::{stable_hash, EventTime};
use crate::stash::{frontier_limit, Stash, Timers};

/// A user link rule: alerts satisfying a CEL condition, with onsets within `within_ms`, group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkRule {
    /// Name (`cluster_type` shows `rule:<name>`).
    pub name: String,
    /// CEL source over `a` and `b` (validated when the rules load).
    pub condition: String,
    /// Largest onset gap.
    pub within_ms: u64,
}

/// Everything the stage is configured with.
#[derive(Debug, Clone, Default)]
pub struct CorrelatePlan {
    /// Deduplication and flapping.
    pub dedup: DedupConfig,
    /// When alerts group (`incidents.grouping`), incident lifecycle, root causes, escalation.
    pub incidents: IncidentPolicy,
    /// Silences and inhibition.
    pub mutes: MuteRules,
    /// CEL link rules.
    pub links: Vec<LinkRule>,
}

/// What the dedup operator sends on.
// Alerts are most of the messages: boxing them would cost an allocation each to shrink the
// rarer node messages.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum DedupMsg {
    /// A deduplicated alert event.
    Alert(AlertRecord),
    /// A confirmed alert enters (+1) or leaves (−1) correlation.
    Node(AlertNode, isize),
}

/// What the incidents operator receives besides the dedup messages.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum CorrelationMsg {
    /// An alert's episode inserted (+1) or retracted (−1).
    Member(NodeKey, u64, isize),
    /// A related pair of episodes (smaller id first) inserted (+1) or retracted (−1).
    Link(u64, u64, isize),
    /// A topology edge inserted (+1) or retracted (−1).
    Edge(TopologyEdge, isize),
}

/// The stage's outputs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum CorrelateOut {
    /// An alert event, annotated with its incident.
    Alert(AlertRecord),
    /// An incident event.
    Incident(IncidentRecord),
}

/// The alert an incident operator last saw for a fingerprint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct AlertView {
    last: AlertRecord,
    max_score: f64,
    /// The expected value and the boundary crossed at its first event, to tell at resolution
    /// whether the detectors accepted a shifted level (see [`settled_at_new_level`]).
    #[serde(default)]
    onset_expected: f64,
    #[serde(default)]
    onset_threshold: f64,
}

/// State of the correlation stage on worker 0 (empty elsewhere).
#[derive(Default, Serialize, Deserialize)]
pub struct CorrelateState {
    dedup: DedupBook,
    book: IncidentBook,
    alerts: BTreeMap<String, AlertView>,
    nodes: BTreeMap<NodeKey, AlertNode>,
    key_of: BTreeMap<String, NodeKey>,
    /// Each alert's episode, counted from the dataflow's updates.
    #[serde(default)]
    episode_counts: BTreeMap<(NodeKey, u64), isize>,
    /// Related episode pairs, counted from the dataflow's updates.
    #[serde(default)]
    link_counts: BTreeMap<(u64, u64), isize>,
    /// Each alert's component: the smallest episode id connected to its episode.
    component: BTreeMap<NodeKey, u64>,
    edges: BTreeMap<TopologyEdge, isize>,
    #[serde(skip)]
    topology: Topology,
    /// Pending flapping deadlines, for checkpoints.
    pending: Vec<(EventTime, String)>,
    #[serde(skip)]
    flap_timers: Timers<String>,
    #[serde(skip)]
    escalation_timers: Timers<()>,
}

impl CorrelateState {
    /// Copies pending deadlines into serializable form; call before serializing.
    pub fn prepare_snapshot(&mut self) {
        self.pending = self
            .flap_timers
            .pending()
            .map(|(t, k)| (t, k.clone()))
            .collect();
    }

    /// Entries held by the stage: open alerts, correlation nodes, their episodes and related
    /// episode pairs, incidents. Bounded by the active alerts (plus fingerprints resolved within
    /// the flap window); the pairs by the related episodes among them.
    pub fn state_len(&self) -> usize {
        self.dedup.state_len()
            + self.book.state_len()
            + self.alerts.len()
            + self.nodes.len()
            + self.episode_counts.len()
            + self.link_counts.len()
            + self.component.len()
    }

    /// Open incidents.
    pub fn open_incidents(&self) -> usize {
        self.book.open_count()
    }
}

/// Adds the correlation stage to a stream of raw alert events.
pub trait CorrelateExt<'scope> {
    /// Correlates alerts with the topology edges `edges` (as `(edge, time, ±1)` updates).
    fn correlate(
        self,
        edges: StreamVec<'scope, EventTime, (TopologyEdge, EventTime, isize)>,
        plan: Arc<CorrelatePlan>,
        state: Rc<RefCell<CorrelateState>>,
    ) -> StreamVec<'scope, EventTime, CorrelateOut>;
}

impl<'scope> CorrelateExt<'scope> for StreamVec<'scope, EventTime, AlertRecord> {
    fn correlate(
        self,
        edges: StreamVec<'scope, EventTime, (TopologyEdge, EventTime, isize)>,
        plan: Arc<CorrelatePlan>,
        state: Rc<RefCell<CorrelateState>>,
    ) -> StreamVec<'scope, EventTime, CorrelateOut> {
        let msgs = dedup(self, plan.clone(), state.clone());
        let nodes: VecCollection<'scope, EventTime, AlertNode> = msgs
            .clone()
            .flat_map(|m| match m {
                DedupMsg::Node(n, d) => Some((n.clone(), n.key.onset, d)),
                DedupMsg::Alert(_) => None,
            })
            .as_collection();
        // Nodes enter at their onset time; re-time them to the message's timely time, which is
        // never earlier (the dedup operator emits at the time it handles).
        let nodes = retime(nodes);
        let edge_collection = edges.clone().as_collection();
        let AlertLinks { members, links } = alert_links(nodes, edge_collection, &plan);
        // Updates keep their own times: a differential batch's timestamp is only a lower bound.
        let mut inputs = members
            .inner
            .map(|((k, e), t, d)| (CorrelationMsg::Member(k, e, d), t));
        inputs = inputs.concat(
            links
                .inner
                .map(|((a, b), t, d)| (CorrelationMsg::Link(a, b, d), t)),
        );
        inputs = inputs.concat(edges.map(|(e, t, d)| (CorrelationMsg::Edge(e, d), t)));
        incidents(msgs, inputs, plan, state)
    }
}

/// Moves every update to the timely time it travels at (the dedup operator emits nodes stamped
/// with their onset, which can be earlier than the time they are confirmed).
fn retime<'scope>(
    c: VecCollection<'scope, EventTime, AlertNode>,
) -> VecCollection<'scope, EventTime, AlertNode> {
    c.inner
        .unary::<CapacityContainerBuilder<Vec<(AlertNode, EventTime, isize)>>, _, _, _>(
            Pipeline,
            "Retime",
            |_cap, _info| {
                move |input, output| {
                    input.for_each(|cap, data| {
                        let t = cap.least().copied().unwrap_or_default();
                        let mut session = output.session(&cap);
                        for (n, _, d) in data.drain(..) {
                            session.give((n, t, d));
                        }
                    });
                }
            },
        )
        .as_collection()
}

/// The dedup operator: gathers raw alerts on worker 0 and runs the [`DedupBook`] in time order.
fn dedup<'scope>(
    raw: StreamVec<'scope, EventTime, AlertRecord>,
    plan: Arc<CorrelatePlan>,
    state: Rc<RefCell<CorrelateState>>,
) -> StreamVec<'scope, EventTime, DedupMsg> {
    raw.unary_frontier::<CapacityContainerBuilder<Vec<DedupMsg>>, _, _, _>(
        ExchangePact::new(|_: &AlertRecord| 0u64),
        "Dedup",
        move |initial, _info| {
            let mut initial: Option<Capability<EventTime>> = Some(initial);
            let mut stash: Stash<AlertRecord> = Stash::default();
            let mut boundaries: Timers<()> = Timers::default();
            move |(input, frontier), output| {
                let mut guard = state.borrow_mut();
                let st = &mut *guard;
                if let Some(cap) = initial.take() {
                    for (at, fp) in std::mem::take(&mut st.pending) {
                        st.flap_timers.schedule(&cap, at, fp);
                    }
                    for t in plan.mutes.boundaries() {
                        if t >= *cap.time() {
                            boundaries.schedule(&cap, t, ());
                        }
                    }
                }
                let port = output.output_index();
                input.for_each(|cap, data| stash.hold(&cap, data, port));
                let limit = frontier_limit(frontier);
                let mut out = Vec::new();
                // Handle batches, deadlines and silence boundaries in time order.
                let mut batches = stash.take_before(limit).into_iter().peekable();
                loop {
                    let next_batch = batches.peek().map(|(c, _)| *c.time());
                    let next_flap = st.flap_timers.next_time().filter(|t| *t < limit);
                    let next_bound = boundaries.next_time().filter(|t| *t < limit);
                    let Some(now) = [next_batch, next_flap, next_bound]
                        .into_iter()
                        .flatten()
                        .min()
                    else {
                        break;
                    };
                    let mut cap_for_now: Option<Capability<EventTime>> = None;
                    if next_flap == Some(now) {
                        if let Some((cap, fps)) = st.flap_timers.pop_before(now + 1) {
                            let mut fps = fps;
                            fps.sort();
                            for fp in fps {
                                st.dedup.on_deadline(&fp, now, &mut out);
                            }
                            cap_for_now = Some(cap);
                        }
                    }
                    if next_bound == Some(now) {
                        if let Some((cap, _)) = boundaries.pop_before(now + 1) {
                            cap_for_now.get_or_insert(cap);
                        }
                    }
                    if next_batch == Some(now) {
                        if let Some((cap, mut batch)) = batches.next() {
                            batch.sort_by(|a, b| {
                                (&a.fingerprint, a.event, &a.id).cmp(&(
                                    &b.fingerprint,
                                    b.event,
                                    &b.id,
                                ))
                            });
                            for r in &batch {
                                if let Some((fp, at)) =
                                    st.dedup.on_raw(&plan.dedup, r, now, &mut out)
                                {
                                    st.flap_timers.schedule(&cap, at, fp);
                                }
                            }
                            cap_for_now = Some(cap);
                        }
                    }
                    st.dedup.refresh_mutes(&plan.mutes, now, &mut out);
                    if let Some(cap) = cap_for_now {
                        let mut session = output.session(&cap);
                        for o in out.drain(..) {
                            session.give(match o {
                                DedupOutput::Alert(a) => DedupMsg::Alert(a),
                                DedupOutput::Node(n, d) => DedupMsg::Node(n, d),
                            });
                        }
                    }
                    out.clear();
                }
            }
        },
    )
}

/// What the correlation dataflow maintains: each active alert's episode, and the related
/// pairs of episodes.
pub struct AlertLinks<'scope> {
    /// `(alert, episode id)`.
    pub members: VecCollection<'scope, EventTime, (NodeKey, u64)>,
    /// `(episode, episode)`, the smaller id first, each pair once.
    pub links: VecCollection<'scope, EventTime, (u64, u64)>,
}

/// Related pairs of active alerts' episodes, maintained incrementally; their connected
/// components are [`episode_components`].
///
/// The records are small and the pairs few: entities are interned as `u64` ids, the alerts of
/// an entity moving one way are gathered into episodes (onsets chained within `near_ms`, all in
/// one group anyway), and episodes, not alerts, are paired along the topology
/// ([`spans_related`] decides exactly from their spans). Episode ids are stable while their
/// oldest alerts resolve, so a storm's steady turnover leaves the components' names alone.
/// Label and CEL links are between alerts and join whole nodes, as before.
pub fn alert_links<'scope>(
    nodes: VecCollection<'scope, EventTime, AlertNode>,
    edges: VecCollection<'scope, EventTime, TopologyEdge>,
    plan: &Arc<CorrelatePlan>,
) -> AlertLinks<'scope> {
    let cfg = plan.incidents.grouping.clone();
    let near = cfg.near_ms;
    // Entity relations within k hops: calls, callers, shared host.
    let calls = edges.clone().flat_map(|e| match e {
        TopologyEdge::Calls(a, b) => Some((entity_id(&a), entity_id(&b))),
        TopologyEdge::RunsOn(..) => None,
    });
    let mut reach = calls.clone().map(|(a, b)| ((a, b), 1u8));
    let mut last = reach.clone();
    for hop in 2..=cfg.max_hops.max(1) {
        let next = last
            .map(|((a, m), _)| (m, a))
            .join_map(calls.clone(), move |_m, a, c| ((*a, *c), hop))
            .filter(|((a, c), _)| a != c);
        reach = reach.concat(next.clone());
        last = next;
    }
    let by_host = edges.flat_map(|e| match e {
        TopologyEdge::RunsOn(s, h) => Some((entity_id(&h), entity_id(&s))),
        TopologyEdge::Calls(..) => None,
    });
    let shared = by_host
        .clone()
        .join_map(by_host, |_h, a, b| (*a, *b))
        .filter(|(a, b)| a != b)
        .map(|(a, b)| ((a, b), Relation::SharedHost));
    let relations = reach
        .clone()
        .map(|((a, b), d)| ((a, b), Relation::Calls(d)))
        .concat(reach.map(|((a, b), d)| ((b, a), Relation::CalledBy(d))))
        .concat(shared)
        .reduce(|_pair, input, output| output.push((*input[0].0, 1)))
        .map(|((a, b), r)| (a, (b, r)));

    // Episodes: per entity and direction, each alert's episode and each episode's span.
    let runs = nodes.clone().map(|n| ((entity_id(&n.entity), n.up), n.key));
    let members = runs
        .clone()
        .reduce(move |&(entity, up), input, output| {
            let onsets: Vec<u64> = input.iter().map(|(k, _)| k.onset).collect();
            for ((k, _), start) in input.iter().zip(episode_starts(&onsets, near)) {
                output.push((((*k).clone(), episode_id(entity, up, start, near)), 1isize));
            }
        })
        .map(|(_, (k, e))| (k, e));
    let spans = runs
        .reduce(move |&(entity, up), input, output| {
            let onsets: Vec<u64> = input.iter().map(|(k, _)| k.onset).collect();
            let starts = episode_starts(&onsets, near);
            for (i, (&t, &start)) in onsets.iter().zip(&starts).enumerate() {
                if starts.get(i + 1) != Some(&start) {
                    let id = episode_id(entity, up, start, near);
                    output.push((
                        Episode {
                            id,
                            up,
                            start,
                            end: t,
                        },
                        1isize,
                    ));
                }
            }
        })
        .map(|((entity, _), e)| (entity, e));
    let cfg1 = cfg.clone();
    // Seen from either episode (in a call cycle the two views differ); same-entity alerts of
    // one direction are already one episode.
    let mut links = spans
        .clone()
        .join_map(relations, |_a, ea, (b, r)| (*b, (*ea, *r)))
        .join_map(spans, |_b, (ea, r), eb| (*ea, *eb, *r))
        .filter(move |(ea, eb, r)| ea.id != eb.id && spans_related(ea, eb, *r, &cfg1))
        .map(|(ea, eb, _)| (ea.id.min(eb.id), ea.id.max(eb.id)));
    let mut alert_links: Option<VecCollection<'scope, EventTime, (NodeKey, NodeKey)>> = None;
    if !cfg.group_by.is_empty() {
        let cfg3 = cfg.clone();
        let by_labels = nodes.clone().flat_map(move |n| {
            let values: Option<Vec<String>> = cfg3
                .group_by
                .iter()
                .map(|l| n.labels.get(l).cloned())
                .collect();
            values.map(|v| (v, n))
        });
        let cfg4 = cfg.clone();
        let found = by_labels
            .clone()
            .join_map(by_labels, |_v, a, b| (a.clone(), b.clone()))
            .filter(move |(a, b)| a.key < b.key && label_related(a, b, &cfg4))
            .map(|(a, b)| (a.key, b.key));
        alert_links = Some(found);
    }
    for rule in &plan.links {
        let Ok(condition) = CelCondition::compile(&rule.condition) else {
            continue; // validated when the rules load
        };
        let within = rule.within_ms as i64;
        let all = nodes.clone().map(|n| ((), n));
        let found = all
            .clone()
            .join_map(all, |_, a, b| (a.clone(), b.clone()))
            .filter(move |(a, b)| {
                a.key < b.key
                    && (a.key.onset as i64 - b.key.onset as i64).abs() <= within
                    && condition.holds(a, b)
            })
            .map(|(a, b)| (a.key, b.key));
        alert_links = Some(match alert_links {
            Some(l) => l.concat(found),
            None => found,
        });
    }
    if let Some(found) = alert_links {
        // Alert links become links between the alerts' episodes.
        links = links.concat(
            found
                .join_map(members.clone(), |_a, b, ea| (b.clone(), *ea))
                .join_map(members.clone(), |_b, ea, eb| (*ea.min(eb), *ea.max(eb)))
                .filter(|(a, b)| a != b),
        );
    }
    AlertLinks {
        members,
        links: links.distinct(),
    }
}

/// The connected components of the episodes over the related pairs, for each alert: its
/// component is named by the smallest episode id in it. Both inputs are counted updates (as
/// differential sends them); entries with a positive count are present. Union-find: ids are
/// indexed in ascending order and unions keep the smaller root, so a component's root is its
/// smallest id.
pub fn episode_components(
    members: &BTreeMap<(NodeKey, u64), isize>,
    links: &BTreeMap<(u64, u64), isize>,
) -> BTreeMap<NodeKey, u64> {
    let members: Vec<(&NodeKey, u64)> = members
        .iter()
        .filter(|(_, c)| **c > 0)
        .map(|((k, e), _)| (k, *e))
        .collect();
    let links: Vec<(u64, u64)> = links
        .iter()
        .filter(|(_, c)| **c > 0)
        .map(|(pair, _)| *pair)
        .collect();
    let mut ids: Vec<u64> = members
        .iter()
        .map(|(_, e)| *e)
        .chain(links.iter().flat_map(|(a, b)| [*a, *b]))
        .collect();
    ids.sort_unstable();
    ids.dedup();
    let at = |e: u64| ids.binary_search(&e).unwrap_or_default();
    let mut parent: Vec<usize> = (0..ids.len()).collect();
    for (a, b) in &links {
        union_find::union(&mut parent, at(*a), at(*b));
    }
    members
        .iter()
        .map(|(k, e)| ((*k).clone(), ids[union_find::root(&mut parent, at(*e))]))
        .collect()
}

/// Union-find over indices, the root of a set being its smallest index.
mod union_find {
    /// The root of `x`'s set (halving the path on the way).
    pub fn root(parent: &mut [usize], mut x: usize) -> usize {
        while parent[x] != x {
            parent[x] = parent[parent[x]];
            x = parent[x];
        }
        x
    }

    /// Joins the sets of `a` and `b` under the smaller root.
    pub fn union(parent: &mut [usize], a: usize, b: usize) {
        let (x, y) = (root(parent, a), root(parent, b));
        parent[x.max(y)] = x.min(y);
    }
}

/// One time's inputs of the incidents operator: a capability for it and both inputs' messages.
type TimeInputs = (
    Option<Capability<EventTime>>,
    Vec<DedupMsg>,
    Vec<CorrelationMsg>,
);

/// The incidents operator: applies node, component and topology changes in time order, adds the
/// DBSCAN pass for alerts the topology does not know, runs the incident lifecycle, and annotates
/// alerts with their incident.
fn incidents<'scope>(
    msgs: StreamVec<'scope, EventTime, DedupMsg>,
    corr: StreamVec<'scope, EventTime, (CorrelationMsg, EventTime)>,
    plan: Arc<CorrelatePlan>,
    state: Rc<RefCell<CorrelateState>>,
) -> StreamVec<'scope, EventTime, CorrelateOut> {
    msgs.binary_frontier::<_, CapacityContainerBuilder<Vec<CorrelateOut>>, _, _, _, _>(
        corr,
        Pipeline,
        ExchangePact::new(|_: &(CorrelationMsg, EventTime)| 0u64),
        "Incidents",
        move |_initial, _info| {
            let mut left: Stash<DedupMsg> = Stash::default();
            let mut right: Stash<CorrelationMsg> = Stash::default();
            move |(in1, f1), (in2, f2), output| {
                let port = output.output_index();
                in1.for_each(|cap, data| left.hold(&cap, data, port));
                in2.for_each(|cap, data| right.hold_at(&cap, data.drain(..), port));
                let limit = frontier_limit(f1).min(frontier_limit(f2));
                let mut guard = state.borrow_mut();
                let st = &mut *guard;
                let mut times: BTreeMap<EventTime, TimeInputs> = BTreeMap::new();
                for (cap, batch) in left.take_before(limit) {
                    let e = times.entry(*cap.time()).or_default();
                    e.0 = Some(cap);
                    e.1 = batch;
                }
                for (cap, batch) in right.take_before(limit) {
                    let e = times.entry(*cap.time()).or_default();
                    e.0.get_or_insert(cap);
                    e.2 = batch;
                }
                loop {
                    let next_batch = times.keys().next().copied();
                    let next_tick = st.escalation_timers.next_time().filter(|t| *t < limit);
                    let Some(now) = [next_batch, next_tick].into_iter().flatten().min() else {
                        break;
                    };
                    if next_tick == Some(now) && next_batch != Some(now) {
                        if let Some((cap, _)) = st.escalation_timers.pop_before(now + 1) {
                            let records = st.book.tick(now, &plan.incidents);
                            let mut session = output.session(&cap);
                            for r in records {
                                session.give(CorrelateOut::Incident(r));
                            }
                            if let Some(next) = st.book.next_deadline(now, &plan.incidents) {
                                st.escalation_timers.schedule(&cap, next, ());
                            }
                        }
                        continue;
                    }
                    let Some((cap, msgs, corr)) = times.remove(&now) else {
                        break;
                    };
                    let _ = st.escalation_timers.pop_before(now + 1);
                    let Some(cap) = cap else { continue };
                    let out = handle_time(st, &plan, now, msgs, corr);
                    let mut session = output.session(&cap);
                    for o in out {
                        session.give(o);
                    }
                    if let Some(next) = st.book.next_deadline(now, &plan.incidents) {
                        if st.escalation_timers.next_time() != Some(next) {
                            st.escalation_timers.schedule(&cap, next, ());
                        }
                    }
                }
            }
        },
    )
}

/// Everything the incidents operator does at one time.
fn handle_time(
    st: &mut CorrelateState,
    plan: &CorrelatePlan,
    now: EventTime,
    mut msgs: Vec<DedupMsg>,
    mut corr: Vec<CorrelationMsg>,
) -> Vec<CorrelateOut> {
    // A total order within the time: timely does not order messages that share it.
    corr.sort();
    let mut topology_changed = false;
    let mut pairs_changed = false;
    for m in corr {
        match m {
            CorrelationMsg::Edge(e, d) => {
                add_count(&mut st.edges, e, d);
                topology_changed = true;
            }
            CorrelationMsg::Member(k, e, d) => {
                add_count(&mut st.episode_counts, (k, e), d);
                pairs_changed = true;
            }
            CorrelationMsg::Link(a, b, d) => {
                add_count(&mut st.link_counts, (a, b), d);
                pairs_changed = true;
            }
        }
    }
    if pairs_changed {
        st.component = episode_components(&st.episode_counts, &st.link_counts);
    }
    if topology_changed {
        // A count is only negative while a retraction waits for its insertion.
        st.topology =
            Topology::from_edges(st.edges.iter().filter(|(_, c)| **c > 0).map(|(e, _)| e));
    }
    // Node retractions before insertions, then alert events in a fixed order.
    // (Compared by reference: a sort key would clone both strings at every comparison.)
    fn order(m: &DedupMsg) -> (u8, isize, &str, &str) {
        match m {
            DedupMsg::Node(n, d) => (0, *d, n.key.fingerprint.as_str(), ""),
            DedupMsg::Alert(a) => (1, 0, a.fingerprint.as_str(), a.id.as_str()),
        }
    }
    msgs.sort_by(|a, b| order(a).cmp(&order(b)));
    let mut own_events: Vec<AlertRecord> = Vec::new();
    // The incident each alert was in before this time (a resolving alert keeps it in its event).
    let mut prior: BTreeMap<String, (String, u32)> = BTreeMap::new();
    // The correlation node of each resolving alert (its retraction, sorted first, forgets it).
    let mut resolving: BTreeMap<String, NodeKey> = BTreeMap::new();
    for m in &msgs {
        if let DedupMsg::Alert(a) = m {
            let Some(key) = st.key_of.get(&a.fingerprint) else {
                continue;
            };
            if let Some((id, l)) = st.book.incident_of(key) {
                prior.insert(a.fingerprint.clone(), (id.to_string(), l));
            }
            if a.event == AlertEvent::Resolved {
                resolving.insert(a.fingerprint.clone(), key.clone());
            }
        }
    }
    for m in msgs {
        match m {
            DedupMsg::Node(n, d) => {
                if d > 0 {
                    st.key_of.insert(n.key.fingerprint.clone(), n.key.clone());
                    st.nodes.insert(n.key.clone(), n);
                } else {
                    if st.key_of.get(&n.key.fingerprint) == Some(&n.key) {
                        st.key_of.remove(&n.key.fingerprint);
                    }
                    st.nodes.remove(&n.key);
                    // The component entry goes with the dataflow's own retraction: a node
                    // re-sent under the same key at this time keeps its component, which the
                    // dataflow (its output unchanged) does not send again.
                }
            }
            DedupMsg::Alert(mut a) => {
                if a.event == AlertEvent::Resolved {
                    let settled = st.alerts.remove(&a.fingerprint).filter(|v| {
                        settled_at_new_level(v.onset_expected, v.onset_threshold, a.expected_value)
                    });
                    if let Some(v) = settled {
                        // Say so: the alert ended because the detectors took the new level for
                        // normal, not because the value came back.
                        a.annotations.insert(
                            "resolution".into(),
                            format!(
                                "resolved at a shifted level: the detectors now expect {}, \
                                 against {} at onset; the value has not come back",
                                short(a.expected_value),
                                short(v.onset_expected)
                            ),
                        );
                        if let Some(key) = resolving.get(&a.fingerprint) {
                            st.book.note_settled(key);
                        }
                    }
                } else {
                    let view =
                        st.alerts
                            .entry(a.fingerprint.clone())
                            .or_insert_with(|| AlertView {
                                last: a.clone(),
                                max_score: 0.0,
                                onset_expected: a.expected_value,
                                onset_threshold: a.threshold,
                            });
                    view.max_score = view.max_score.max(a.score);
                    view.last = a.clone();
                }
                own_events.push(a);
            }
        }
    }
    // Groups: the dataflow's components, plus DBSCAN over alerts the topology does not know.
    let info: BTreeMap<NodeKey, MemberInfo> = st
        .nodes
        .iter()
        .map(|(k, n)| {
            let view = st.alerts.get(&k.fingerprint);
            (
                k.clone(),
                MemberInfo {
                    node: n.clone(),
                    score: view.map_or(0.0, |v| v.max_score),
                    severity: view.map_or(crate::records::Severity::Low, |v| v.last.severity),
                    metric: n.labels.get("metric").cloned().unwrap_or_default(),
                    muted: view.is_some_and(|v| v.last.muted_by.is_some()),
                    count: view.map_or(0, |v| v.last.count),
                },
            )
        })
        .collect();
    let groups = groups(st, plan, &info);
    let changes = st
        .book
        .update(now, groups, &info, &st.topology, &plan.incidents);

    let mut out = Vec::new();
    let mut annotated: BTreeSet<String> = BTreeSet::new();
    for mut a in own_events {
        let current = st
            .key_of
            .get(&a.fingerprint)
            .and_then(|k| st.book.incident_of(k))
            .map(|(id, l)| (id.to_string(), l));
        if let Some((id, level)) = current.or_else(|| prior.get(&a.fingerprint).cloned()) {
            a.incident_id = Some(id);
            a.escalation_level = Some(level);
        }
        annotated.insert(a.fingerprint.clone());
        out.push(CorrelateOut::Alert(a));
    }
    for (key, incident) in changes.moved {
        if annotated.contains(&key.fingerprint) {
            continue;
        }
        let Some(view) = st.alerts.get(&key.fingerprint) else {
            continue;
        };
        let mut a = view.last.clone();
        a.event = AlertEvent::Updated;
        a.event_time = now;
        a.incident_id = incident.clone();
        a.escalation_level = incident
            .as_ref()
            .and_then(|_| st.book.incident_of(&key))
            .map(|(_, l)| l);
        a.id = format!(
            "{:016x}",
            stable_hash(
                format!(
                    "{}|{}|moved|{}|{now}",
                    key.fingerprint,
                    key.onset,
                    incident.as_deref().unwrap_or("-")
                )
                .as_bytes()
            )
        );
        out.push(CorrelateOut::Alert(a));
    }
    for r in changes.records {
        out.push(CorrelateOut::Incident(r));
    }
    out
}

/// Adds `d` to the count of `key`, dropping it at zero.
fn add_count<K: Ord>(counts: &mut BTreeMap<K, isize>, key: K, d: isize) {
    match counts.entry(key) {
        Entry::Occupied(mut o) => {
            *o.get_mut() += d;
            if *o.get() == 0 {
                o.remove();
            }
        }
        Entry::Vacant(v) => {
            if d != 0 {
                v.insert(d);
            }
        }
    }
}

/// Union of the dataflow's components and the DBSCAN groups.
fn groups(
    st: &CorrelateState,
    plan: &CorrelatePlan,
    info: &BTreeMap<NodeKey, MemberInfo>,
) -> Vec<Group> {
    let keys: Vec<&NodeKey> = info.keys().collect();
    let mut parent: Vec<usize> = (0..keys.len()).collect();
    use union_find::{root, union};
    // Alerts sharing a component name are one group.
    let mut first_of: BTreeMap<u64, usize> = BTreeMap::new();
    for (i, k) in keys.iter().enumerate() {
        if let Some(l) = st.component.get(*k) {
            let j = *first_of.entry(*l).or_insert(i);
            union(&mut parent, i, j);
        }
    }
    let unknown: Vec<usize> = (0..keys.len())
        .filter(|i| !st.topology.contains(&info[keys[*i]].node.entity))
        .collect();
    let mut dbscan: BTreeSet<usize> = BTreeSet::new();
    if !unknown.is_empty() {
        let nodes: Vec<&AlertNode> = unknown.iter().map(|i| &info[keys[*i]].node).collect();
        for g in dbscan_groups(&nodes, &plan.incidents.grouping) {
            for w in g.windows(2) {
                union(&mut parent, unknown[w[0]], unknown[w[1]]);
            }
            dbscan.extend(g.iter().map(|i| unknown[*i]));
        }
    }
    let mut by_root: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for i in 0..keys.len() {
        let r = root(&mut parent, i);
        by_root.entry(r).or_default().push(i);
    }
    by_root
        .into_values()
        .map(|members| {
            let known = members
                .iter()
                .any(|i| st.topology.contains(&info[keys[*i]].node.entity));
            let cluster_type = if known {
                "topology"
            } else if members.iter().any(|i| dbscan.contains(i)) {
                "dbscan"
            } else {
                "labels"
            };
            Group {
                nodes: members.iter().map(|i| keys[*i].clone()).collect(),
                cluster_type: cluster_type.to_string(),
            }
        })
        .collect()
}
