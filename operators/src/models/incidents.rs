//! The incident lifecycle over the groups correlation finds, as a plain state machine.
//!
//! Every time the groups of active alerts change, [`IncidentBook::update`] maps them to
//! incidents with stable ids:
//! * a group whose alerts belong to no incident opens one once it holds `min_alerts` alerts (a
//!   lone alert once it has persisted `lone_windows` anomalous windows); its id is the hash of
//!   its earliest alert, so a replay gives the same ids;
//! * groups that merge keep the oldest incident; the others resolve with `merged_into`;
//! * when a group splits (the alert that linked its parts resolved), its alerts stay in the
//!   incident they belong to, which then holds both parts; with `split` on, the incident keeps
//!   only the part holding its oldest incident's earliest alert and the other parts open new
//!   incidents if they are big enough;
//! * a new group joins an open incident (firing, or waiting as below) instead of opening one
//!   when it only undoes that incident's anomalies (every alert is a metric of an entity the
//!   incident held, moving back), or when it is what the incident's saturated cause raises
//!   later (errors and slowness on the cause and its callers; see `consequences`);
//! * an incident whose alerts have all resolved waits `reopen_ms` for related alerts, then
//!   resolves;
//! * an incident whose alerts resolved at a shifted level (the detectors accepted the new
//!   level while the fault still ran) waits up to `recovery_ms` for the shift's return, which
//!   joins it with an `updated` event (`await_return`);
//! * a resolved incident is remembered for `recovery_ms`: a group that mostly reverses its
//!   anomalies (the same metrics on the same entities moving the other way: traffic coming back
//!   after a drop) reopens it instead of opening a second incident.
//!
//! Events: `opened` (also when a recovery reopens an incident), `updated` (alerts, severity or
//! top root cause changed), `escalated` (level rose, see [`EscalationPolicy`]) and `resolved`.
//! Memory holds incidents with active alerts, and those waiting or remembered for the two
//! periods above.
//!
//! Root causes are ranked over every alert the incident has held while open, not only the
//! active ones: a cause often recovers before its symptoms, and ranking only the survivors would
//! name a symptom. At most [`MAX_EVIDENCE`] alerts are remembered per incident (the earliest,
//! which carry the onset signal).

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::models::dedup::{AlertNode, NodeKey};
use crate::models::escalation::EscalationPolicy;
use crate::models::grouping::GroupingConfig;
use crate::models::root_cause::{is_resource, is_symptom, rank, Evidence, RootCauseConfig};
use crate::models::topology::{Relation, Topology};
use crate::records::{
    AlertEvent, AlertStatus, AnomalyType, ImpactAssessment, IncidentRecord, RootCauseCandidate,
    Severity,
};
use crate::series::{stable_hash, EventTime};
use crate::time_format::rfc3339_millis;

/// What the incident book knows of one active, confirmed alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberInfo {
    /// The correlation node.
    pub node: AlertNode,
    /// Highest score so far.
    pub score: f64,
    /// Current severity.
    pub severity: Severity,
    /// Metric name.
    pub metric: String,
    /// Muted (silenced or inhibited).
    pub muted: bool,
    /// Anomalous windows so far.
    #[serde(default)]
    pub count: u64,
}

/// A group of related alerts and how it was grouped.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Group {
    /// Its alerts, sorted.
    pub nodes: Vec<NodeKey>,
    /// `topology`, `labels`, `rule:<name>` or `dbscan`.
    pub cluster_type: String,
}

/// Settings the book needs.
#[derive(Debug, Clone, Default)]
pub struct IncidentPolicy {
    /// The grouping settings (`[grouping]`), of which the book reads the lifecycle ones:
    /// `min_alerts`, `lone_windows`, `split`, `reopen_ms`, `reopen_hops`, `recovery_ms` and
    /// `consequences` (within `max_hops`).
    pub grouping: GroupingConfig,
    /// Root-cause weights.
    pub root_cause: RootCauseConfig,
    /// Escalation.
    pub escalation: EscalationPolicy,
}

/// Alerts whose evidence an incident keeps for ranking. Incidents of more alerts are rare and
/// their cause is among the earliest alerts, which are the ones kept.
pub const MAX_EVIDENCE: usize = 256;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Incident {
    opened: EventTime,
    first: EventTime,
    members: BTreeSet<NodeKey>,
    level: u32,
    last: IncidentRecord,
    /// Evidence of every alert held while open (keys sort by onset), for ranking.
    #[serde(default)]
    evidence: BTreeMap<NodeKey, Evidence>,
    /// When its last alert resolved, while it waits for related alerts (see
    /// [`GroupingConfig::reopen_ms`]); `None` while it has active alerts.
    #[serde(default)]
    emptied: Option<EventTime>,
    /// Reopened once by a recovery already (see [`GroupingConfig::recovery_ms`]); a fault
    /// moves its metrics away and back once, so it is not remembered again.
    #[serde(default)]
    recovered: bool,
    /// Alerts that resolved at a shifted level (see [`IncidentBook::note_settled`]).
    #[serde(default)]
    settled: BTreeSet<NodeKey>,
    /// Waiting, with no active alerts, for the return of a shifted level (see
    /// [`GroupingConfig::await_return`]); set when its last alert resolves.
    #[serde(default)]
    awaits_return: bool,
}

impl Incident {
    /// Whether the incident, waiting with no active alerts, may take a new group of `moves`.
    /// Within the same entity, only a metric the incident already holds counts: a different
    /// metric of the same service minutes later is as often the start of another fault
    /// (measured in `docs/design.md`, "Alert intelligence"). And such metrics must make at
    /// least half of the group's moves: a fleet-wide wave that touches one of them is another
    /// fault passing by, not this one's late symptom.
    fn takes(&self, moves: &BTreeSet<Move<'_>>, topo: &Topology, hops: u8) -> bool {
        if hops == 0 {
            let held: BTreeSet<(&str, &str)> = self
                .evidence
                .values()
                .map(|e| (e.entity.as_str(), e.metric.as_str()))
                .collect();
            let again = moves
                .iter()
                .filter(|(e, m, _)| held.contains(&(*e, *m)))
                .count();
            return again > 0 && 2 * again >= moves.len();
        }
        // Evidence repeats entities (one entry per alert): ask the topology once per entity.
        let held: BTreeSet<&str> = self.evidence.values().map(|e| e.entity.as_str()).collect();
        let entities: BTreeSet<&str> = moves.iter().map(|m| m.0).collect();
        held.iter()
            .any(|h| entities.iter().any(|n| topo.relation(h, n, hops).is_some()))
    }

    /// Whether a new group of `moves` reverses this incident's anomalies: at least half of its
    /// (entity, metric, direction) moves are the opposite of one the incident held, and those
    /// make at least a quarter of the incident's moves.
    fn reversed_by(&self, moves: &BTreeSet<Move<'_>>) -> bool {
        let (back, held) = self.reversals(moves);
        // Both ways: most of the group is a reversal, and it reverses a fair part of the
        // incident (a storm's evidence holds so many moves that one stray alert would reverse
        // one of them).
        back > 0 && 2 * back >= moves.len() && 4 * back >= held
    }

    /// Whether a new group of `moves` only undoes this incident's anomalies: every move is the
    /// opposite of one the incident held (the return to baseline of a fault whose incident is
    /// still open).
    fn undone_by(&self, moves: &BTreeSet<Move<'_>>) -> bool {
        let (back, _) = self.reversals(moves);
        back > 0 && back == moves.len()
    }

    /// How many of `moves` are the opposite of a move the incident held, and how many distinct
    /// moves it held.
    fn reversals(&self, moves: &BTreeSet<Move<'_>>) -> (usize, usize) {
        let held: BTreeSet<Move<'_>> = self.evidence.values().map(|e| move_of(e, e.up)).collect();
        let back = moves
            .iter()
            .filter(|(e, m, up)| held.contains(&(e, m, !up)))
            .count();
        (back, held.len())
    }

    /// Whether the incident is open at `now`: firing, or waiting for related alerts within
    /// `reopen_ms` of its last alert's end.
    fn is_open(&self, now: EventTime, reopen_ms: u64) -> bool {
        self.emptied.is_none_or(|e| now < e + reopen_ms)
    }

    /// Whether a metric the incident moved still stands at a level its detectors accepted: an
    /// alert resolved at a shifted level, and no alert of the incident moved that metric the
    /// other way. A metric that moved both ways has come back, and the alerts of a return
    /// settle too (the detectors accept the old level again): they wait for nothing.
    fn shifted(&self) -> bool {
        self.settled
            .iter()
            .filter_map(|k| self.evidence.get(k))
            .any(|s| {
                !self
                    .evidence
                    .values()
                    .any(|e| e.entity == s.entity && e.metric == s.metric && e.up != s.up)
            })
    }

    /// When a waiting incident's wait ends: `reopen_ms` after its last alert resolved, or
    /// `recovery_ms` when it awaits a return; `None` while it has active alerts.
    fn wait_end(&self, grouping: &GroupingConfig) -> Option<EventTime> {
        let wait = if self.awaits_return {
            grouping.recovery_ms.max(grouping.reopen_ms)
        } else {
            grouping.reopen_ms
        };
        self.emptied.map(|e| e.saturating_add(wait))
    }
}

/// Whether an alert resolved at a shifted level rather than on the value's return: its
/// detectors' last expectation (`last_expected`) lies beyond the boundary it crossed at onset
/// (`onset_threshold`, on the side of `onset_expected` the value moved to). The detectors then
/// stopped flagging because they took the new level for normal, while the fault may still run.
pub fn settled_at_new_level(onset_expected: f64, onset_threshold: f64, last_expected: f64) -> bool {
    let reach = onset_threshold - onset_expected;
    reach.is_finite()
        && reach != 0.0
        && last_expected.is_finite()
        && (last_expected - onset_expected) / reach >= 1.0
}

/// Whether group `g`, which joins no incident, opens one: it holds `min_alerts` alerts, and a
/// lone alert has persisted `lone_windows` anomalous windows.
fn opens(g: &Group, info: &BTreeMap<NodeKey, MemberInfo>, grouping: &GroupingConfig) -> bool {
    match g.nodes.as_slice() {
        [] => false,
        [lone] => {
            grouping.min_alerts <= 1
                && info
                    .get(lone)
                    .is_some_and(|m| m.count >= grouping.lone_windows)
        }
        nodes => nodes.len() >= grouping.min_alerts,
    }
}

/// What an alert changed: (entity, metric, moved up).
type Move<'a> = (&'a str, &'a str, bool);

/// The move of an alert's evidence `e`, in direction `up`.
fn move_of(e: &Evidence, up: bool) -> Move<'_> {
    (e.entity.as_str(), e.metric.as_str(), up)
}

/// Open incidents and which alert belongs to which.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct IncidentBook {
    incidents: BTreeMap<String, Incident>,
    of: BTreeMap<NodeKey, String>,
    /// Resolved incidents a recovery may reopen, with when they resolved (see
    /// [`GroupingConfig::recovery_ms`]).
    #[serde(default)]
    resolved: BTreeMap<String, (EventTime, Incident)>,
}

/// What an update produced.
#[derive(Debug, Default)]
pub struct Changes {
    /// Incident events, in id order.
    pub records: Vec<IncidentRecord>,
    /// Alerts whose incident changed: (alert, new incident or none).
    pub moved: Vec<(NodeKey, Option<String>)>,
}

impl IncidentBook {
    /// Open incidents.
    pub fn open_count(&self) -> usize {
        self.incidents.len()
    }

    /// Entries held (incidents plus alert assignments), for memory checks.
    pub fn state_len(&self) -> usize {
        self.incidents.len() + self.of.len() + self.resolved.len()
    }

    /// The incident of an alert, and its escalation level.
    pub fn incident_of(&self, key: &NodeKey) -> Option<(&str, u32)> {
        let id = self.of.get(key)?;
        self.incidents.get(id).map(|i| (id.as_str(), i.level))
    }

    /// Records that the alert `key`, resolving, did so at a shifted level (see
    /// [`settled_at_new_level`]); call before the [`IncidentBook::update`] that drops it.
    pub fn note_settled(&mut self, key: &NodeKey) {
        if let Some(inc) = self.of.get(key).and_then(|id| self.incidents.get_mut(id)) {
            inc.settled.insert(key.clone());
        }
    }

    /// Applies the current `groups` (over the active alerts `info`) at `now`.
    pub fn update(
        &mut self,
        now: EventTime,
        mut groups: Vec<Group>,
        info: &BTreeMap<NodeKey, MemberInfo>,
        topo: &Topology,
        policy: &IncidentPolicy,
    ) -> Changes {
        groups.sort();
        self.forget_resolved(now, policy);
        let mut claimed: BTreeMap<String, Group> = BTreeMap::new();
        let mut unassigned: Vec<Group> = Vec::new();
        for g in groups {
            let mut ids: Vec<&String> = g.nodes.iter().filter_map(|k| self.of.get(k)).collect();
            ids.sort_by_key(|id| (self.incidents.get(*id).map(|i| i.opened), (*id).clone()));
            ids.dedup();
            if let Some(id) = ids.iter().find(|id| !claimed.contains_key(**id)) {
                claimed.insert((*id).clone(), g);
            } else if let (false, Some(id)) = (policy.grouping.split, ids.first()) {
                // Every incident its alerts belong to is taken by another part: they stay in
                // their incident rather than open a new one.
                if let Some(into) = claimed.get_mut(*id) {
                    absorb(into, g);
                }
            } else {
                unassigned.push(g);
            }
        }
        for g in unassigned {
            let moves = moves_of(&g, info);
            let follows = self
                .consequence_of(now, &g, info, topo, policy)
                .or_else(|| self.undone_in(now, &moves, policy));
            if let Some(id) = follows {
                match claimed.entry(id) {
                    Entry::Occupied(mut into) => absorb(into.get_mut(), g),
                    Entry::Vacant(slot) => {
                        slot.insert(g);
                    }
                }
            } else if let Some(id) = self.waiting_for(now, &moves, topo, policy, &claimed) {
                claimed.insert(id, g);
            } else if let Some(id) = self.return_of(now, &moves, policy, &claimed) {
                if let Some(inc) = self.incidents.get_mut(&id) {
                    // As a recovery: it took its return, and is not reopened by another.
                    inc.recovered = true;
                }
                claimed.insert(id, g);
            } else if let Some(id) = self.recovery_of(&moves) {
                if let Some((at, mut inc)) = self.resolved.remove(&id) {
                    // Its last record stays the `resolved` one: the reopening is an `opened`.
                    inc.emptied = Some(at);
                    inc.recovered = true;
                    self.incidents.insert(id.clone(), inc);
                }
                claimed.insert(id, g);
            } else if opens(&g, info, &policy.grouping) {
                let first = &g.nodes[0];
                let id = format!(
                    "{:016x}",
                    stable_hash(
                        format!("incident|{}|{}", first.fingerprint, first.onset).as_bytes()
                    )
                );
                claimed.insert(id, g);
            }
        }
        let mut changes = Changes::default();
        let mut new_of: BTreeMap<NodeKey, String> = BTreeMap::new();
        for (id, g) in &claimed {
            for k in &g.nodes {
                new_of.insert(k.clone(), id.clone());
            }
        }
        // Incidents no group claimed resolve (merged, when their alerts live on elsewhere).
        let gone: Vec<String> = self
            .incidents
            .keys()
            .filter(|id| !claimed.contains_key(*id))
            .cloned()
            .collect();
        let mut inherited: BTreeMap<String, BTreeMap<NodeKey, Evidence>> = BTreeMap::new();
        for id in gone {
            let Some(mut inc) = self.incidents.remove(&id) else {
                continue;
            };
            let merged_into = inc.members.iter().find_map(|k| new_of.get(k)).cloned();
            if merged_into.is_none() && inc.emptied.is_none() {
                // Its alerts all resolved: it waits for related alerts before resolving, or
                // for a shifted level's return (`tick` resolves it when the wait is over).
                inc.awaits_return = policy.grouping.await_return
                    && policy.grouping.recovery_ms > 0
                    && inc.shifted();
                inc.emptied = Some(now);
            }
            if merged_into.is_none() && (policy.grouping.reopen_ms > 0 || inc.awaits_return) {
                inc.members.clear();
                self.incidents.insert(id, inc);
                continue;
            }
            if let Some(into) = &merged_into {
                inherited
                    .entry(into.clone())
                    .or_default()
                    .extend(inc.evidence.clone());
            }
            let mut rec = inc.last.clone();
            rec.event = AlertEvent::Resolved;
            rec.status = AlertStatus::Resolved;
            rec.event_time = now;
            rec.duration_minutes = minutes(now, inc.first);
            let merged = merged_into.is_some();
            rec.merged_into = merged_into;
            if !merged {
                self.remember(id, now, inc, &rec, policy);
            }
            changes.records.push(rec);
        }
        for (id, g) in claimed {
            let members: BTreeSet<NodeKey> = g.nodes.iter().cloned().collect();
            let old = self.incidents.get(&id);
            let (opened, old_level, previous) = match old {
                Some(inc) => (inc.opened, inc.level, Some(inc.last.clone())),
                None => (now, 0, None),
            };
            let mut evidence = old.map(|i| i.evidence.clone()).unwrap_or_default();
            let mut settled = old.map(|i| i.settled.clone()).unwrap_or_default();
            let recovered = old.is_some_and(|i| i.recovered);
            // Waiting with no active alerts until now: it fires again.
            let woke = old.is_some_and(|i| i.emptied.is_some());
            evidence.extend(inherited.remove(&id).unwrap_or_default());
            // Alerts that moved to another incident are its evidence now, not ours.
            evidence.retain(|k, _| new_of.get(k).is_none_or(|owner| *owner == id));
            for k in &g.nodes {
                if let Some(m) = info.get(k) {
                    evidence.insert(k.clone(), evidence_of(m));
                }
            }
            while evidence.len() > MAX_EVIDENCE {
                evidence.pop_last();
            }
            settled.retain(|k| evidence.contains_key(k));
            let mut rec = build(&id, now, opened, &g, info, &evidence, topo, policy);
            let (level, _) = policy
                .escalation
                .level(opened, now, rec.severity, rec.alerts.len());
            let level = level.max(old_level);
            rec.escalation_level = level;
            rec.priority_score = priority(&rec);
            let event = match &previous {
                None => Some(AlertEvent::Opened),
                // A resolved incident a recovery reopened.
                Some(p) if p.event == AlertEvent::Resolved => Some(AlertEvent::Opened),
                Some(_) if level > old_level => Some(AlertEvent::Escalated),
                Some(p)
                    if woke
                        || p.alerts != rec.alerts
                        || p.severity != rec.severity
                        || top(p) != top(&rec)
                        || p.muted != rec.muted =>
                {
                    Some(AlertEvent::Updated)
                }
                Some(_) => None,
            };
            if let Some(e) = event {
                rec.event = e;
                changes.records.push(rec.clone());
            }
            let last = if event.is_some() {
                rec
            } else {
                previous.unwrap_or(rec)
            };
            let first = members.iter().map(|k| k.onset).min().unwrap_or(now);
            self.incidents.insert(
                id,
                Incident {
                    opened,
                    first,
                    members,
                    level,
                    last,
                    evidence,
                    emptied: None,
                    recovered,
                    settled,
                    awaits_return: false,
                },
            );
        }
        for (k, id) in &new_of {
            if self.of.get(k) != Some(id) {
                changes.moved.push((k.clone(), Some(id.clone())));
            }
        }
        for k in self.of.keys() {
            if !new_of.contains_key(k) && info.contains_key(k) {
                changes.moved.push((k.clone(), None));
            }
        }
        self.of = new_of;
        changes.records.sort_by(|a, b| {
            a.incident_id
                .cmp(&b.incident_id)
                .then(a.event.cmp(&b.event))
        });
        changes
    }

    /// The open incident (firing, or waiting within `reopen_ms`) whose cause's saturation
    /// explains a new group `g` with no incident of its own (see
    /// [`GroupingConfig::consequences`]), the earliest opened first.
    fn consequence_of(
        &self,
        now: EventTime,
        g: &Group,
        info: &BTreeMap<NodeKey, MemberInfo>,
        topo: &Topology,
        policy: &IncidentPolicy,
    ) -> Option<String> {
        if !policy.grouping.consequences {
            return None;
        }
        let hops = policy.grouping.max_hops;
        let members: Vec<&MemberInfo> = g.nodes.iter().filter_map(|k| info.get(k)).collect();
        if members.is_empty()
            || !members
                .iter()
                .all(|m| m.node.up && is_symptom(m.node.anomaly_type))
        {
            return None;
        }
        // Without the cause's own alert, only errors on its direct callers while its saturation
        // alert still fires: an OOM kill's error wave is often too short to be confirmed on the
        // killed service itself, while each caller's errors are (and, being no relatives of
        // each other, each would open an incident). Latency is left out: a latency injection
        // on a caller of a filling disk joined the disk's incident when any symptom could.
        let errors_of_direct_callers = |inc: &Incident, cause: &str| {
            inc.emptied.is_none()
                && inc.members.iter().filter_map(|k| info.get(k)).any(|m| {
                    m.node.entity == cause && m.node.up && is_resource(m.node.anomaly_type)
                })
                && members.iter().all(|m| {
                    m.node.anomaly_type == AnomalyType::ErrorRateSpike
                        && matches!(
                            topo.relation(&m.node.entity, cause, 1),
                            Some(Relation::Calls(1))
                        )
                })
        };
        // With it, any error or latency rise on the cause and its callers within `max_hops`.
        let explains = |cause: &str| {
            members.iter().any(|m| m.node.entity == cause)
                && members.iter().all(|m| {
                    m.node.entity == cause
                        || matches!(
                            topo.relation(&m.node.entity, cause, hops),
                            Some(Relation::Calls(_))
                        )
                })
        };
        // The saturation is judged from every alert the incident held: a ramp's own alert
        // often resolves (the detector adapts to it) before the ramp does its damage.
        let saturated = |inc: &Incident, cause: &str| {
            inc.evidence
                .values()
                .any(|e| e.entity == cause && e.up && is_resource(e.anomaly_type))
        };
        self.earliest_open(now, policy, |inc| {
            top(&inc.last).is_some_and(|cause| {
                saturated(inc, cause) && (explains(cause) || errors_of_direct_callers(inc, cause))
            })
        })
    }

    /// The open incident (firing, or waiting within `reopen_ms`) a new group of `moves` only
    /// undoes (see [`Incident::undone_by`]), the earliest opened first.
    fn undone_in(
        &self,
        now: EventTime,
        moves: &BTreeSet<Move<'_>>,
        policy: &IncidentPolicy,
    ) -> Option<String> {
        self.earliest_open(now, policy, |inc| inc.undone_by(moves))
    }

    /// The earliest opened (ties by id) of the open incidents that `fits`.
    fn earliest_open(
        &self,
        now: EventTime,
        policy: &IncidentPolicy,
        fits: impl Fn(&Incident) -> bool,
    ) -> Option<String> {
        self.incidents
            .iter()
            .filter(|(_, inc)| inc.is_open(now, policy.grouping.reopen_ms) && fits(inc))
            .min_by(|a, b| a.1.opened.cmp(&b.1.opened).then(a.0.cmp(b.0)))
            .map(|(id, _)| id.clone())
    }

    /// The waiting incident (see [`GroupingConfig::reopen_ms`]) a new group of `moves` with no
    /// incident of its own joins: one related to the group's entities, the most recently
    /// emptied first.
    fn waiting_for(
        &self,
        now: EventTime,
        moves: &BTreeSet<Move<'_>>,
        topo: &Topology,
        policy: &IncidentPolicy,
        claimed: &BTreeMap<String, Group>,
    ) -> Option<String> {
        self.incidents
            .iter()
            .filter(|(id, _)| !claimed.contains_key(*id))
            .filter(|(_, inc)| inc.emptied.is_some() && inc.is_open(now, policy.grouping.reopen_ms))
            .filter(|(_, inc)| inc.takes(moves, topo, policy.grouping.reopen_hops))
            .max_by(|a, b| a.1.emptied.cmp(&b.1.emptied).then(b.0.cmp(a.0)))
            .map(|(id, _)| id.clone())
    }

    /// The incident awaiting a return (see [`GroupingConfig::await_return`]) that a new group of
    /// `moves` with no incident of its own reverses, the most recently emptied first.
    fn return_of(
        &self,
        now: EventTime,
        moves: &BTreeSet<Move<'_>>,
        policy: &IncidentPolicy,
        claimed: &BTreeMap<String, Group>,
    ) -> Option<String> {
        self.incidents
            .iter()
            .filter(|(id, inc)| inc.awaits_return && !claimed.contains_key(*id))
            .filter(|(_, inc)| inc.wait_end(&policy.grouping).is_some_and(|end| now < end))
            .filter(|(_, inc)| inc.reversed_by(moves))
            .max_by(|a, b| a.1.emptied.cmp(&b.1.emptied).then(b.0.cmp(a.0)))
            .map(|(id, _)| id.clone())
    }

    /// The resolved incident a new group of `moves` with no incident of its own reverses (see
    /// [`GroupingConfig::recovery_ms`]), the most recently resolved first.
    fn recovery_of(&self, moves: &BTreeSet<Move<'_>>) -> Option<String> {
        self.resolved
            .iter()
            .filter(|(_, (_, inc))| inc.reversed_by(moves))
            .max_by(|a, b| a.1 .0.cmp(&b.1 .0).then(b.0.cmp(a.0)))
            .map(|(id, _)| id.clone())
    }

    /// Keeps a resolved incident (its last record `rec`) for a recovery to reopen.
    fn remember(
        &mut self,
        id: String,
        now: EventTime,
        mut inc: Incident,
        rec: &IncidentRecord,
        policy: &IncidentPolicy,
    ) {
        // An incident that awaited its return for the whole memory is not remembered again.
        if policy.grouping.recovery_ms > 0 && !inc.recovered && !inc.awaits_return {
            inc.last = rec.clone();
            inc.members.clear();
            self.resolved.insert(id, (now, inc));
        }
    }

    /// Drops resolved incidents no recovery may reopen any more.
    fn forget_resolved(&mut self, now: EventTime, policy: &IncidentPolicy) {
        self.resolved
            .retain(|_, (at, _)| now < at.saturating_add(policy.grouping.recovery_ms));
    }

    /// Timers fired at `now`: incidents whose escalation level rose emit `escalated`; incidents
    /// whose wait with no active alerts is over resolve.
    pub fn tick(&mut self, now: EventTime, policy: &IncidentPolicy) -> Vec<IncidentRecord> {
        self.forget_resolved(now, policy);
        let mut out = Vec::new();
        let expired: Vec<String> = self
            .incidents
            .iter()
            .filter(|(_, i)| i.wait_end(&policy.grouping).is_some_and(|end| now >= end))
            .map(|(id, _)| id.clone())
            .collect();
        for id in expired {
            let Some(inc) = self.incidents.remove(&id) else {
                continue;
            };
            let mut rec = inc.last.clone();
            rec.event = AlertEvent::Resolved;
            rec.status = AlertStatus::Resolved;
            rec.event_time = now;
            // Its duration ends with its last alert, not with the wait.
            rec.duration_minutes = minutes(inc.emptied.unwrap_or(now), inc.first);
            self.remember(id, now, inc, &rec, policy);
            out.push(rec);
        }
        for inc in self.incidents.values_mut().filter(|i| i.emptied.is_none()) {
            let (level, _) =
                policy
                    .escalation
                    .level(inc.opened, now, inc.last.severity, inc.last.alerts.len());
            if level > inc.level {
                inc.level = level;
                let mut rec = inc.last.clone();
                rec.event = AlertEvent::Escalated;
                rec.escalation_level = level;
                rec.event_time = now;
                rec.duration_minutes = minutes(now, inc.first);
                rec.priority_score = priority(&rec);
                inc.last = rec.clone();
                out.push(rec);
            }
        }
        out
    }

    /// The next escalation deadline of any open incident after `now`.
    pub fn next_deadline(&self, now: EventTime, policy: &IncidentPolicy) -> Option<EventTime> {
        self.incidents
            .values()
            .filter_map(|i| match i.wait_end(&policy.grouping) {
                Some(end) => Some(end.max(now + 1)),
                None => policy.escalation.next_deadline(i.opened, now),
            })
            .min()
    }
}

/// Adds group `g`'s alerts to the group `into` (the one an incident claimed).
fn absorb(into: &mut Group, g: Group) {
    into.nodes.extend(g.nodes);
    into.nodes.sort();
    into.nodes.dedup();
}

/// The distinct (entity, metric, direction) moves of a group's alerts.
fn moves_of<'a>(g: &Group, info: &'a BTreeMap<NodeKey, MemberInfo>) -> BTreeSet<Move<'a>> {
    g.nodes
        .iter()
        .filter_map(|k| info.get(k))
        .map(|m| (m.node.entity.as_str(), m.metric.as_str(), m.node.up))
        .collect()
}

fn top(r: &IncidentRecord) -> Option<&str> {
    r.root_cause_candidates.first().map(|c| c.entity.as_str())
}

fn minutes(now: EventTime, since: EventTime) -> f64 {
    (now.saturating_sub(since) as f64 / 60_000.0 * 10.0).round() / 10.0
}

fn evidence_of(m: &MemberInfo) -> Evidence {
    Evidence {
        entity: m.node.entity.clone(),
        onset: m.node.key.onset,
        up: m.node.up,
        anomaly_type: m.node.anomaly_type,
        score: m.score,
        metric: m.metric.clone(),
    }
}

#[allow(clippy::too_many_arguments)]
fn build(
    id: &str,
    now: EventTime,
    opened: EventTime,
    g: &Group,
    info: &BTreeMap<NodeKey, MemberInfo>,
    past: &BTreeMap<NodeKey, Evidence>,
    topo: &Topology,
    policy: &IncidentPolicy,
) -> IncidentRecord {
    let members: Vec<&MemberInfo> = g.nodes.iter().filter_map(|k| info.get(k)).collect();
    let mut alerts: Vec<String> = members
        .iter()
        .map(|m| m.node.key.fingerprint.clone())
        .collect();
    alerts.sort();
    alerts.dedup();
    let entities: Vec<String> = members
        .iter()
        .map(|m| m.node.entity.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let severity = members
        .iter()
        .map(|m| m.severity)
        .max()
        .unwrap_or(Severity::Low);
    let first = members
        .iter()
        .map(|m| m.node.key.onset)
        .min()
        .unwrap_or(now);
    let last = members
        .iter()
        .map(|m| m.node.key.onset)
        .max()
        .unwrap_or(now);
    // Current members' evidence is in `past` too (the caller adds it before building).
    let evidence: Vec<Evidence> = if past.is_empty() {
        members.iter().map(|m| evidence_of(m)).collect()
    } else {
        past.values().cloned().collect()
    };
    let candidates: Vec<RootCauseCandidate> = rank(&evidence, topo, &policy.root_cause);
    let mut common: Option<BTreeMap<String, String>> = None;
    for m in &members {
        common = Some(match common {
            None => m.node.labels.clone(),
            Some(c) => c
                .into_iter()
                .filter(|(k, v)| m.node.labels.get(k) == Some(v))
                .collect(),
        });
    }
    let user_facing: Vec<String> = entities
        .iter()
        .filter(|e| topo.is_user_facing(e))
        .cloned()
        .collect();
    let summary = format!(
        "{} alert(s) on {} entit{}{}; most likely cause: {}",
        alerts.len(),
        entities.len(),
        if entities.len() == 1 { "y" } else { "ies" },
        if user_facing.is_empty() {
            String::new()
        } else {
            format!(", user-facing: {}", user_facing.join(", "))
        },
        candidates
            .first()
            .map_or("unknown".to_string(), |c| c.entity.clone())
    );
    // Confidence that one cause explains the group: more corroborating alerts and a clear
    // leader raise it; groups found without topology count for less.
    let margin = match (candidates.first(), candidates.get(1)) {
        (Some(a), Some(b)) => (a.score - b.score).clamp(0.0, 1.0),
        (Some(_), None) => 1.0,
        _ => 0.0,
    };
    let breadth = 1.0 - 1.0 / (alerts.len().max(1) as f64);
    let base = if g.cluster_type == "topology" {
        1.0
    } else {
        0.8
    };
    let confidence = ((0.5 * breadth + 0.5 * margin) * base * 1000.0).round() / 1000.0;
    let _ = opened;
    IncidentRecord {
        incident_id: id.to_string(),
        event: AlertEvent::Updated,
        status: AlertStatus::Firing,
        impact_assessment: ImpactAssessment {
            entities: entities.len(),
            alerts: alerts.len(),
            user_facing,
            max_severity: severity,
            summary,
        },
        alerts,
        entities,
        severity,
        priority_score: 0.0,
        root_cause_candidates: candidates,
        first_alert_time: rfc3339_millis(first),
        last_alert_time: rfc3339_millis(last),
        duration_minutes: minutes(now, first),
        common_labels: common.unwrap_or_default(),
        cluster_type: g.cluster_type.clone(),
        confidence,
        escalation_level: 0,
        muted: !members.is_empty() && members.iter().all(|m| m.muted),
        merged_into: None,
        event_time: now,
    }
}

/// 0–100: severity (up to 50), breadth (up to 25 at five entities), user-facing impact (15) and
/// escalation (up to 10 at level 3). Muted incidents score a tenth.
pub fn priority(r: &IncidentRecord) -> f64 {
    let sev = match r.severity {
        Severity::Low => 0.25,
        Severity::Medium => 0.5,
        Severity::High => 0.75,
        Severity::Critical => 1.0,
    };
    let breadth = (r.entities.len() as f64 / 5.0).min(1.0);
    let user = if r.impact_assessment.user_facing.is_empty() {
        0.0
    } else {
        1.0
    };
    let esc = (r.escalation_level as f64 / 3.0).min(1.0);
    let p = 50.0 * sev + 25.0 * breadth + 15.0 * user + 10.0 * esc;
    let p = if r.muted { p / 10.0 } else { p };
    (p * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::AnomalyType;

    /// The book's settings with every lifecycle rule off (one confirmed alert opens an
    /// incident, which resolves with its last alert and is forgotten), then `set` applied.
    fn policy(set: impl FnOnce(&mut GroupingConfig)) -> IncidentPolicy {
        let mut grouping = GroupingConfig {
            min_alerts: 1,
            lone_windows: 1,
            reopen_ms: 0,
            reopen_hops: 0,
            recovery_ms: 0,
            await_return: false,
            split: false,
            consequences: false,
            ..GroupingConfig::default()
        };
        set(&mut grouping);
        IncidentPolicy {
            grouping,
            ..IncidentPolicy::default()
        }
    }

    fn member(fp: &str, entity: &str, onset: u64) -> (NodeKey, MemberInfo) {
        let key = NodeKey {
            onset,
            fingerprint: fp.into(),
        };
        let node = AlertNode {
            key: key.clone(),
            entity: entity.into(),
            up: true,
            anomaly_type: AnomalyType::LatencySpike,
            labels: [("service".to_string(), entity.to_string())].into(),
        };
        (
            key,
            MemberInfo {
                node,
                score: 0.9,
                severity: Severity::High,
                metric: "latency".into(),
                muted: false,
                count: 2,
            },
        )
    }

    /// An alert on `metric` moving up or down.
    fn moved(fp: &str, entity: &str, onset: u64, metric: &str, up: bool) -> (NodeKey, MemberInfo) {
        let (k, mut m) = member(fp, entity, onset);
        m.node.up = up;
        m.metric = metric.into();
        (k, m)
    }

    fn group(keys: &[&NodeKey]) -> Group {
        Group {
            nodes: keys.iter().map(|k| (*k).clone()).collect(),
            cluster_type: "topology".into(),
        }
    }

    /// A lone alert opens its incident once it has persisted `lone_windows` windows; one that
    /// a related alert joins opens at once, and one that resolves sooner opens nothing.
    #[test]
    fn a_lone_alert_waits_for_persistence() {
        let policy = policy(|g| g.lone_windows = 6);
        let topo = Topology::default();
        let mut book = IncidentBook::default();
        let (ka, mut a) = member("a", "x", 0);
        a.count = 2;
        let mut info = BTreeMap::from([(ka.clone(), a)]);
        let ch = book.update(10, vec![group(&[&ka])], &info, &topo, &policy);
        assert!(ch.records.is_empty(), "{:?}", ch.records);
        info.get_mut(&ka).expect("held").count = 6;
        let ch = book.update(20, vec![group(&[&ka])], &info, &topo, &policy);
        assert_eq!(ch.records.len(), 1);
        assert_eq!(ch.records[0].event, AlertEvent::Opened);

        // Two related alerts of two windows each: no wait.
        let mut book = IncidentBook::default();
        let (kb, b) = member("b", "y", 1);
        let (kc, c) = member("c", "z", 2);
        let info = BTreeMap::from([(kb.clone(), b), (kc.clone(), c)]);
        let ch = book.update(10, vec![group(&[&kb, &kc])], &info, &topo, &policy);
        assert_eq!(ch.records.len(), 1);

        // A short lone alert resolves unseen.
        let mut book = IncidentBook::default();
        let (kd, d) = member("d", "w", 3);
        let info = BTreeMap::from([(kd.clone(), d)]);
        assert!(book
            .update(10, vec![group(&[&kd])], &info, &topo, &policy)
            .records
            .is_empty());
        let ch = book.update(20, vec![], &BTreeMap::new(), &topo, &policy);
        assert!(ch.records.is_empty() && book.open_count() == 0);
    }

    #[test]
    fn opens_at_n_alerts_merges_and_resolves() {
        let policy = policy(|g| {
            g.min_alerts = 2;
        });
        let topo = Topology::default();
        let mut book = IncidentBook::default();
        let (ka, a) = member("a", "x", 0);
        let (kb, b) = member("b", "y", 1);
        let (kc, c) = member("c", "z", 2);
        let (kd, d) = member("d", "w", 3);
        let mut info = BTreeMap::from([(ka.clone(), a)]);
        // One alert: below the threshold.
        let ch = book.update(10, vec![group(&[&ka])], &info, &topo, &policy);
        assert!(ch.records.is_empty());
        info.insert(kb.clone(), b);
        let ch = book.update(20, vec![group(&[&ka, &kb])], &info, &topo, &policy);
        assert_eq!(ch.records.len(), 1);
        assert_eq!(ch.records[0].event, AlertEvent::Opened);
        let first = ch.records[0].incident_id.clone();
        info.insert(kc.clone(), c);
        info.insert(kd.clone(), d);
        let ch = book.update(
            30,
            vec![group(&[&ka, &kb]), group(&[&kc, &kd])],
            &info,
            &topo,
            &policy,
        );
        let second = ch.records[0].incident_id.clone();
        assert_ne!(first, second);
        // The groups merge: the older incident keeps its id, the younger resolves into it.
        let ch = book.update(
            40,
            vec![group(&[&ka, &kb, &kc, &kd])],
            &info,
            &topo,
            &policy,
        );
        let events: Vec<(String, AlertEvent, Option<String>)> = ch
            .records
            .iter()
            .map(|r| (r.incident_id.clone(), r.event, r.merged_into.clone()))
            .collect();
        assert!(events.contains(&(first.clone(), AlertEvent::Updated, None)));
        assert!(events.contains(&(second.clone(), AlertEvent::Resolved, Some(first.clone()))));
        assert_eq!(book.open_count(), 1);
        // Everything resolves.
        let ch = book.update(50, vec![], &BTreeMap::new(), &topo, &policy);
        assert_eq!(ch.records[0].event, AlertEvent::Resolved);
        assert_eq!(book.state_len(), 0);
    }

    #[test]
    fn a_split_group_stays_in_its_incident_unless_split_is_on() {
        let topo = Topology::default();
        let (ka, a) = member("a", "x", 0);
        let (kb, b) = member("b", "y", 1);
        let (kc, c) = member("c", "z", 2);
        let info = BTreeMap::from([(ka.clone(), a), (kb.clone(), b), (kc.clone(), c)]);
        for split in [false, true] {
            let policy = policy(|g| {
                g.split = split;
            });
            let mut book = IncidentBook::default();
            let ch = book.update(10, vec![group(&[&ka, &kb, &kc])], &info, &topo, &policy);
            let id = ch.records[0].incident_id.clone();
            // The link between {a} and {b, c} is gone: two groups.
            let ch = book.update(
                20,
                vec![group(&[&ka]), group(&[&kb, &kc])],
                &info,
                &topo,
                &policy,
            );
            let opened = ch
                .records
                .iter()
                .filter(|r| r.event == AlertEvent::Opened)
                .count();
            if split {
                assert_eq!(opened, 1, "the second part opens an incident");
                assert_eq!(book.open_count(), 2);
                assert_ne!(book.incident_of(&kb).map(|(i, _)| i), Some(id.as_str()));
            } else {
                assert_eq!(opened, 0, "{:?}", ch.records);
                assert_eq!(book.open_count(), 1);
                for k in [&ka, &kb, &kc] {
                    assert_eq!(book.incident_of(k).map(|(i, _)| i), Some(id.as_str()));
                }
            }
        }
    }

    #[test]
    fn waits_for_related_alerts_before_resolving() {
        let policy = policy(|g| {
            g.min_alerts = 2;
            g.reopen_ms = 100;
            g.reopen_hops = 1;
        });
        let topo = Topology::from_services(&[
            crate::models::topology::ServiceSpec {
                name: "x".into(),
                calls: vec!["y".into()],
                ..Default::default()
            },
            crate::models::topology::ServiceSpec {
                name: "y".into(),
                ..Default::default()
            },
        ]);
        let mut book = IncidentBook::default();
        let (ka, a) = member("a", "x", 0);
        let (kb, b) = member("b", "y", 1);
        let info = BTreeMap::from([(ka.clone(), a), (kb.clone(), b)]);
        let ch = book.update(10, vec![group(&[&ka, &kb])], &info, &topo, &policy);
        let id = ch.records[0].incident_id.clone();
        // Every alert resolves: no event yet, a timer for the end of the wait.
        let ch = book.update(20, vec![], &BTreeMap::new(), &topo, &policy);
        assert!(ch.records.is_empty());
        assert_eq!(book.next_deadline(20, &policy), Some(120));
        // A lone alert on a related service joins the waiting incident (below min_alerts).
        let (kc, c) = member("c", "y", 50);
        let info = BTreeMap::from([(kc.clone(), c)]);
        let ch = book.update(60, vec![group(&[&kc])], &info, &topo, &policy);
        assert_eq!(ch.records.len(), 1);
        assert_eq!(
            (ch.records[0].incident_id.as_str(), ch.records[0].event),
            (id.as_str(), AlertEvent::Updated)
        );
        // It resolves; an unrelated alert later does not join, and the wait ends in `tick`.
        book.update(70, vec![], &BTreeMap::new(), &topo, &policy);
        let (kd, d) = member("d", "elsewhere", 80);
        let info = BTreeMap::from([(kd.clone(), d)]);
        let ch = book.update(80, vec![group(&[&kd])], &info, &topo, &policy);
        assert!(ch.records.is_empty());
        assert!(book.tick(169, &policy).is_empty());
        let ch = book.tick(170, &policy);
        assert_eq!(
            (ch[0].incident_id.as_str(), ch[0].event),
            (id.as_str(), AlertEvent::Resolved)
        );
        assert_eq!(book.open_count(), 0);
    }

    /// A book whose one incident (an alert on `x`'s `metric`, moving up) has resolved its
    /// alert at 20 and waits 100 ms; with its id, policy and (empty) topology.
    fn waiting_on(metric: &str) -> (IncidentBook, String, IncidentPolicy, Topology) {
        let policy = policy(|g| {
            g.reopen_ms = 100;
        });
        let topo = Topology::default();
        let mut book = IncidentBook::default();
        let (ka, a) = moved("a", "x", 0, metric, true);
        let info = BTreeMap::from([(ka.clone(), a)]);
        let id = book
            .update(10, vec![group(&[&ka])], &info, &topo, &policy)
            .records[0]
            .incident_id
            .clone();
        book.update(20, vec![], &BTreeMap::new(), &topo, &policy);
        (book, id, policy, topo)
    }

    #[test]
    fn the_wait_takes_only_metrics_the_incident_holds() {
        let (mut book, id, policy, topo) = waiting_on("disk");
        // Another metric of the same entity during the wait: a fault of its own.
        let (kb, b) = moved("b", "x", 30, "errors", true);
        let info = BTreeMap::from([(kb.clone(), b)]);
        let ch = book.update(30, vec![group(&[&kb])], &info, &topo, &policy);
        assert_eq!(ch.records[0].event, AlertEvent::Opened);
        assert_ne!(ch.records[0].incident_id, id);
        // The metric it holds joins it.
        let (kc, c) = moved("c", "x", 40, "disk", true);
        let info = BTreeMap::from([(kb.clone(), info[&kb].clone()), (kc.clone(), c)]);
        let ch = book.update(
            40,
            vec![group(&[&kb]), group(&[&kc])],
            &info,
            &topo,
            &policy,
        );
        assert!(ch
            .records
            .iter()
            .any(|r| r.incident_id == id && r.event == AlertEvent::Updated));
    }

    #[test]
    fn the_wait_is_not_taken_by_a_wave_that_touches_one_of_its_metrics() {
        let (mut book, id, policy, topo) = waiting_on("saturation");
        // A wave over three entities touches the held metric once: another fault.
        let wave = [
            moved("b", "x", 30, "saturation", false),
            moved("c", "y", 30, "requests", false),
            moved("d", "z", 30, "requests", false),
        ];
        let keys: Vec<&NodeKey> = wave.iter().map(|(k, _)| k).collect();
        let info: BTreeMap<NodeKey, MemberInfo> = wave.iter().cloned().collect();
        let ch = book.update(30, vec![group(&keys)], &info, &topo, &policy);
        let opened: Vec<&IncidentRecord> = ch
            .records
            .iter()
            .filter(|r| r.event == AlertEvent::Opened)
            .collect();
        assert_eq!(opened.len(), 1, "{:?}", ch.records);
        assert_ne!(opened[0].incident_id, id);
    }

    /// `db` leaks memory and `api` calls it; the OOM's error wave on both comes long after the
    /// leak's alert.
    fn saturated_db() -> (
        Topology,
        IncidentBook,
        String,
        BTreeMap<NodeKey, MemberInfo>,
    ) {
        let topo = Topology::from_services(&[
            crate::models::topology::ServiceSpec {
                name: "api".into(),
                calls: vec!["db".into()],
                ..Default::default()
            },
            crate::models::topology::ServiceSpec {
                name: "db".into(),
                ..Default::default()
            },
        ]);
        let (kl, mut leak) = moved("leak", "db", 0, "memory", true);
        leak.node.anomaly_type = AnomalyType::MemoryLeak;
        let info = BTreeMap::from([(kl.clone(), leak)]);
        let mut book = IncidentBook::default();
        let policy = policy(|_| {});
        let id = book
            .update(10, vec![group(&[&kl])], &info, &topo, &policy)
            .records[0]
            .incident_id
            .clone();
        (topo, book, id, info)
    }

    /// The later wave `alerts` (entity, type, up) beside the leak, as its own group.
    fn wave_after_leak(
        leak: &BTreeMap<NodeKey, MemberInfo>,
        alerts: &[(&str, AnomalyType, bool)],
    ) -> (Vec<Group>, BTreeMap<NodeKey, MemberInfo>) {
        let mut info = leak.clone();
        let mut keys = Vec::new();
        for (n, (entity, kind, up)) in alerts.iter().enumerate() {
            let (k, mut m) = moved(&format!("w{n}"), entity, 900, "errors", *up);
            m.node.anomaly_type = *kind;
            info.insert(k.clone(), m);
            keys.push(k);
        }
        let leak_keys: Vec<&NodeKey> = leak.keys().collect();
        let wave_keys: Vec<&NodeKey> = keys.iter().collect();
        (vec![group(&leak_keys), group(&wave_keys)], info)
    }

    #[test]
    fn a_saturated_cause_takes_the_symptoms_it_raises_later() {
        let on = policy(|g| g.consequences = true);
        let errors = [
            ("db", AnomalyType::ErrorRateSpike, true),
            ("api", AnomalyType::ErrorRateSpike, true),
        ];
        let (topo, mut book, id, leak) = saturated_db();
        let (groups, info) = wave_after_leak(&leak, &errors);
        let ch = book.update(900, groups, &info, &topo, &on);
        assert_eq!(book.open_count(), 1, "{:?}", ch.records);
        assert_eq!(ch.records[0].incident_id, id);
        assert_eq!(ch.records[0].alerts.len(), 3);

        // Off, the same wave opens a second incident.
        let off = policy(|g| g.consequences = false);
        let (topo, mut book, _, leak) = saturated_db();
        let (groups, info) = wave_after_leak(&leak, &errors);
        book.update(900, groups, &info, &topo, &off);
        assert_eq!(book.open_count(), 2);

        // While the leak's alert fires, errors on a direct caller join even without the
        // cause's own alert (the OOM's short error wave on the cause went unconfirmed).
        let (topo, mut book, id, leak) = saturated_db();
        let (groups, info) = wave_after_leak(&leak, &[("api", AnomalyType::ErrorRateSpike, true)]);
        let ch = book.update(900, groups, &info, &topo, &on);
        assert_eq!(book.open_count(), 1, "{:?}", ch.records);
        assert_eq!(ch.records[0].incident_id, id);

        // What the saturation does not explain opens its own incident: a traffic drop, a
        // caller's latency without the cause itself, and a type that is not a symptom.
        for other in [
            vec![("db", AnomalyType::ThroughputDrop, false)],
            vec![("api", AnomalyType::LatencySpike, true)],
            vec![
                ("db", AnomalyType::ErrorRateSpike, true),
                ("api", AnomalyType::CpuOverload, true),
            ],
        ] {
            let (topo, mut book, _, leak) = saturated_db();
            let (groups, info) = wave_after_leak(&leak, &other);
            book.update(900, groups, &info, &topo, &on);
            assert_eq!(book.open_count(), 2, "{other:?}");
        }

        // The leak's own alert resolved (the detector adapted to the ramp) and the incident
        // waits: the wave still joins it.
        let waiting = policy(|g| {
            g.consequences = true;
            g.reopen_ms = 1_000;
        });
        let (topo, mut book, id, leak) = saturated_db();
        book.update(500, vec![], &BTreeMap::new(), &topo, &waiting);
        let (mut groups, mut info) = wave_after_leak(&leak, &errors);
        groups.remove(0);
        info.retain(|k, _| !leak.contains_key(k));
        let ch = book.update(900, groups, &info, &topo, &waiting);
        assert_eq!(book.open_count(), 1, "{:?}", ch.records);
        assert_eq!(ch.records[0].incident_id, id);
    }

    #[test]
    fn a_group_that_only_undoes_an_open_incident_joins_it() {
        let policy = policy(|_| {});
        let topo = Topology::default();
        let (ka, a) = moved("a", "x", 0, "requests", false);
        let (kb, b) = moved("b", "y", 0, "cpu", true);
        let start = |book: &mut IncidentBook| {
            let info = BTreeMap::from([(ka.clone(), a.clone()), (kb.clone(), b.clone())]);
            book.update(10, vec![group(&[&ka, &kb])], &info, &topo, &policy)
                .records[0]
                .incident_id
                .clone()
        };
        // x's traffic comes back while y's CPU alert still fires: the same incident.
        let mut book = IncidentBook::default();
        let id = start(&mut book);
        let (kc, c) = moved("c", "x", 500, "requests", true);
        let info = BTreeMap::from([(kb.clone(), b.clone()), (kc.clone(), c.clone())]);
        let ch = book.update(
            500,
            vec![group(&[&kb]), group(&[&kc])],
            &info,
            &topo,
            &policy,
        );
        assert_eq!(book.open_count(), 1, "{:?}", ch.records);
        assert_eq!(book.incident_of(&kc).map(|(i, _)| i), Some(id.as_str()));
        // A group with anything else in it is not a return to baseline.
        let mut book = IncidentBook::default();
        start(&mut book);
        let (kd, d) = moved("d", "z", 500, "errors", true);
        let info = BTreeMap::from([(kb.clone(), b.clone()), (kc.clone(), c), (kd.clone(), d)]);
        book.update(
            500,
            vec![group(&[&kb]), group(&[&kc, &kd])],
            &info,
            &topo,
            &policy,
        );
        assert_eq!(book.open_count(), 2);
    }

    #[test]
    fn a_recovery_reopens_its_incident_once() {
        let policy = policy(|g| {
            g.reopen_ms = 100;
            g.recovery_ms = 10_000;
        });
        let topo = Topology::default();
        let mut book = IncidentBook::default();
        // Traffic falls on x and y, the alerts resolve (the detectors adapt), the wait ends.
        let (ka, a) = moved("a", "x", 0, "requests", false);
        let (kb, b) = moved("b", "y", 0, "requests", false);
        let info = BTreeMap::from([(ka.clone(), a), (kb.clone(), b)]);
        let id = book
            .update(10, vec![group(&[&ka, &kb])], &info, &topo, &policy)
            .records[0]
            .incident_id
            .clone();
        book.update(20, vec![], &BTreeMap::new(), &topo, &policy);
        assert_eq!(book.tick(120, &policy)[0].event, AlertEvent::Resolved);
        let mut too_late = book.clone();
        // Traffic comes back: the same incident opens again, ranked over both waves.
        let back = |t: u64| {
            let (kc, c) = moved("c", "x", t, "requests", true);
            let (kd, d) = moved("d", "y", t, "requests", true);
            (vec![group(&[&kc, &kd])], BTreeMap::from([(kc, c), (kd, d)]))
        };
        let (groups, info) = back(2_000);
        let ch = book.update(2_000, groups, &info, &topo, &policy);
        assert_eq!(
            (ch.records[0].incident_id.as_str(), ch.records[0].event),
            (id.as_str(), AlertEvent::Opened)
        );
        // Once only: traffic falling again after that is news.
        book.update(2_100, vec![], &BTreeMap::new(), &topo, &policy);
        book.tick(2_200, &policy);
        let (ke, e) = moved("e", "x", 3_000, "requests", false);
        let (kf, f) = moved("f", "y", 3_000, "requests", false);
        let info = BTreeMap::from([(ke.clone(), e), (kf.clone(), f)]);
        let ch = book.update(3_000, vec![group(&[&ke, &kf])], &info, &topo, &policy);
        assert_eq!(ch.records[0].event, AlertEvent::Opened);
        assert_ne!(ch.records[0].incident_id, id);
        // After the memory, the recovery is an incident of its own, and nothing is held.
        let (groups, info) = back(20_000);
        let ch = too_late.update(20_000, groups, &info, &topo, &policy);
        assert_ne!(ch.records[0].incident_id, id);
        too_late.update(20_100, vec![], &BTreeMap::new(), &topo, &policy);
        too_late.tick(20_200, &policy);
        assert_eq!(too_late.state_len(), 1);
        too_late.tick(30_200, &policy);
        assert_eq!(too_late.state_len(), 0);
    }

    #[test]
    fn a_shifted_level_keeps_its_incident_open_for_the_return() {
        let policy = policy(|g| {
            g.reopen_ms = 100;
            g.recovery_ms = 10_000;
            g.await_return = true;
        });
        let topo = Topology::default();
        // Traffic falls on x and y; x's alert resolves at the lowered level (the detectors
        // accepted it), y's does not.
        let dropped = || {
            let mut book = IncidentBook::default();
            let (kx, x) = moved("a", "x", 0, "requests", false);
            let (ky, y) = moved("b", "y", 0, "requests", false);
            let info = BTreeMap::from([(kx.clone(), x), (ky.clone(), y)]);
            let ch = book.update(10, vec![group(&[&kx, &ky])], &info, &topo, &policy);
            (book, ch.records[0].incident_id.clone(), kx)
        };
        let back = |book: &mut IncidentBook, t: u64| {
            let (kc, c) = moved("c", "x", t, "requests", true);
            let (kd, d) = moved("d", "y", t, "requests", true);
            let info = BTreeMap::from([(kc.clone(), c), (kd.clone(), d)]);
            let ch = book.update(t, vec![group(&[&kc, &kd])], &info, &topo, &policy);
            (ch, kc)
        };
        let (mut book, id, kx) = dropped();
        book.note_settled(&kx);
        book.update(20, vec![], &BTreeMap::new(), &topo, &policy);
        let mut never_back = book.clone();
        // Past the related-alert wait it stays open, and traffic coming back joins it as an
        // update: nobody is told "resolved" and then "opened" about the same drop.
        assert!(book.tick(120, &policy).is_empty());
        assert_eq!(book.next_deadline(120, &policy), Some(10_020));
        let (ch, kc) = back(&mut book, 2_000);
        assert_eq!(
            (ch.records[0].incident_id.as_str(), ch.records[0].event),
            (id.as_str(), AlertEvent::Updated)
        );
        // The return's own alerts settle too (the old level is accepted again); with the metric
        // moved both ways there is nothing left to wait for.
        book.note_settled(&kc);
        book.update(2_100, vec![], &BTreeMap::new(), &topo, &policy);
        assert_eq!(book.tick(2_200, &policy)[0].event, AlertEvent::Resolved);
        assert_eq!(book.state_len(), 0);
        // A level that never comes back resolves at the end of the memory, its duration ending
        // with its last alert, and is not remembered for another hour.
        assert!(never_back.tick(10_019, &policy).is_empty());
        let done = never_back.tick(10_020, &policy);
        assert_eq!(
            (done[0].event, done[0].duration_minutes),
            (AlertEvent::Resolved, 0.0)
        );
        assert_eq!(never_back.state_len(), 0);
        // Without a settled alert (or with the rule off) the wait is the usual one, and the
        // return reopens the resolved incident.
        for settle in [false, true] {
            let (mut book, id, kx) = dropped();
            let mut policy = policy.clone();
            if settle {
                book.note_settled(&kx);
                policy.grouping.await_return = false;
            }
            book.update(20, vec![], &BTreeMap::new(), &topo, &policy);
            assert_eq!(book.tick(120, &policy)[0].event, AlertEvent::Resolved);
            let (ch, _) = back(&mut book, 2_000);
            assert_eq!(
                (ch.records[0].incident_id.as_str(), ch.records[0].event),
                (id.as_str(), AlertEvent::Opened)
            );
        }
    }

    #[test]
    fn settling_needs_the_expectation_past_the_onset_boundary() {
        // Up: expected 100, boundary 110.
        assert!(settled_at_new_level(100.0, 110.0, 110.0));
        assert!(settled_at_new_level(100.0, 110.0, 180.0));
        assert!(!settled_at_new_level(100.0, 110.0, 109.0));
        assert!(!settled_at_new_level(100.0, 110.0, 90.0));
        // Down: expected 100, boundary 90.
        assert!(settled_at_new_level(100.0, 90.0, 40.0));
        assert!(!settled_at_new_level(100.0, 90.0, 95.0));
        // Degenerate boundaries never settle.
        assert!(!settled_at_new_level(100.0, 100.0, 180.0));
        assert!(!settled_at_new_level(100.0, f64::NAN, 180.0));
        assert!(!settled_at_new_level(100.0, 110.0, f64::INFINITY));
    }
}
