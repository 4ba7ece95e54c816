//! Scoring incidents against the simulator's ground truth: noise reduction, purity and
//! root-cause accuracy. Definitions (used by `harbinger evaluate --incidents`, tests and the
//! closing notes):
//! * An alert *occurrence* is one `(fingerprint, startsAt)` of `alerts.jsonl`; its onset is the
//!   event time of its first record, its members are the incidents its records name.
//! * An occurrence *belongs to* a fault when its entity is one the fault affects and its onset
//!   lies between one window before the fault's start and `grace_ms` after its end (the same
//!   rule as the alert evaluation). It may belong to several overlapping faults.
//! * Noise reduction: `1 − incidents / alerts`, where alerts counts every opening the detector
//!   raised (deduplicated re-fires included, from `occurrences`). Notifications saved:
//!   `1 − notifications / alerts`, a notification being an incident `opened` or `escalated`
//!   event that is not muted.
//! * An incident is *pure* when one fault owns all its alerts.
//! * Root cause: faults and incidents are matched one to one, greedily by weight, where an
//!   alert owned by k faults adds 1/k to the weight of each (so an incident counts for the
//!   fault its evidence is specific to). AC@k is the share of faults whose root cause is among
//!   the top k candidates of their incident's last event (a fault with no incident counts as a
//!   miss); Avg@5 is the mean of AC@1..AC@5.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use operators::records::{AlertEvent, AlertRecord, IncidentRecord};
use serde::Serialize;

use crate::evaluate::{EvalConfig, TruthFile};

/// Incident metrics.
#[derive(Debug, Clone, Serialize)]
pub struct IncidentEvaluation {
    /// Faults injected.
    pub faults: usize,
    /// Alert openings the detector raised.
    pub alerts: usize,
    /// Incidents opened.
    pub incidents: usize,
    /// Alerts per incident.
    pub alerts_per_incident: f64,
    /// 1 − incidents / alerts.
    pub noise_reduction: f64,
    /// Notifications (unmuted incident openings and escalations).
    pub notifications: usize,
    /// 1 − notifications / alerts.
    pub notifications_saved: f64,
    /// Share of incidents whose alerts one fault owns.
    pub purity: f64,
    /// Incidents no fault owns entirely.
    pub impure_incidents: Vec<String>,
    /// Share of faults with their root cause first.
    pub ac_at_1: f64,
    /// … within the top 3.
    pub ac_at_3: f64,
    /// Mean of AC@1..AC@5.
    pub avg_at_5: f64,
    /// Faults whose root cause was not first: (fault, kind, position or null).
    pub misses: Vec<(String, String, Option<usize>)>,
}

struct Occurrence {
    entity: String,
    onset: u64,
    occurrences: u32,
    incidents: BTreeSet<String>,
}

/// Scores `incidents` (and the alerts they annotate) against `truth`.
pub fn evaluate_incidents(
    truth: &TruthFile,
    alerts: &[AlertRecord],
    incidents: &[IncidentRecord],
    cfg: EvalConfig,
) -> IncidentEvaluation {
    let mut occ: BTreeMap<(String, String), Occurrence> = BTreeMap::new();
    for a in alerts {
        let o = occ
            .entry((a.fingerprint.clone(), a.starts_at.clone()))
            .or_insert_with(|| Occurrence {
                entity: a.entity.clone(),
                onset: a.event_time,
                occurrences: 1,
                incidents: BTreeSet::new(),
            });
        o.onset = o.onset.min(a.event_time);
        o.occurrences = o.occurrences.max(a.occurrences.unwrap_or(1));
        if let Some(id) = &a.incident_id {
            o.incidents.insert(id.clone());
        }
    }
    let owners = |o: &Occurrence| -> BTreeSet<usize> {
        truth
            .incidents
            .iter()
            .enumerate()
            .filter(|(_, f)| {
                f.affected.contains(&o.entity)
                    && o.onset + cfg.window_ms >= f.start
                    && o.onset <= f.end + cfg.grace_ms
            })
            .map(|(i, _)| i)
            .collect()
    };
    let owned: Vec<(BTreeSet<usize>, &Occurrence)> = occ.values().map(|o| (owners(o), o)).collect();
    let raw_alerts: usize = occ.values().map(|o| o.occurrences as usize).sum();

    let mut last: BTreeMap<&str, &IncidentRecord> = BTreeMap::new();
    let mut notifications = 0;
    for i in incidents {
        if matches!(i.event, AlertEvent::Opened | AlertEvent::Escalated) && !i.muted {
            notifications += 1;
        }
        if i.event != AlertEvent::Resolved || !last.contains_key(i.incident_id.as_str()) {
            last.insert(&i.incident_id, i);
        }
    }
    let ids: Vec<&str> = last.keys().copied().collect();
    let mut pure = 0;
    let mut impure = Vec::new();
    let mut weight: BTreeMap<(usize, &str), f64> = BTreeMap::new();
    for id in &ids {
        let members: Vec<&(BTreeSet<usize>, &Occurrence)> = owned
            .iter()
            .filter(|(_, o)| o.incidents.contains(*id))
            .collect();
        let mut common: Option<BTreeSet<usize>> = None;
        for (own, _) in &members {
            common = Some(match common {
                None => own.clone(),
                Some(c) => c.intersection(own).copied().collect(),
            });
            for f in own {
                *weight.entry((*f, id)).or_default() += 1.0 / own.len() as f64;
            }
        }
        if common.is_some_and(|c| !c.is_empty()) {
            pure += 1;
        } else {
            impure.push(id.to_string());
        }
    }
    let mut cand: Vec<(f64, usize, &str)> =
        weight.iter().map(|((f, id), w)| (*w, *f, *id)).collect();
    cand.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(b.2)));
    let mut matched: BTreeMap<usize, &str> = BTreeMap::new();
    let mut used: BTreeSet<&str> = BTreeSet::new();
    for (_, f, id) in cand {
        if matched.contains_key(&f) || used.contains(id) {
            continue;
        }
        matched.insert(f, id);
        used.insert(id);
    }
    let mut ac = [0usize; 5];
    let mut misses = Vec::new();
    for (i, f) in truth.incidents.iter().enumerate() {
        let pos = matched.get(&i).and_then(|id| {
            last[id]
                .root_cause_candidates
                .iter()
                .position(|c| c.entity == f.root_cause)
        });
        for (k, slot) in ac.iter_mut().enumerate() {
            if pos.is_some_and(|p| p <= k) {
                *slot += 1;
            }
        }
        if pos != Some(0) {
            misses.push((f.id.clone(), f.kind.clone(), pos));
        }
    }
    let n = truth.incidents.len().max(1) as f64;
    let alerts_n = raw_alerts.max(1) as f64;
    IncidentEvaluation {
        faults: truth.incidents.len(),
        alerts: raw_alerts,
        incidents: ids.len(),
        alerts_per_incident: raw_alerts as f64 / ids.len().max(1) as f64,
        noise_reduction: 1.0 - ids.len() as f64 / alerts_n,
        notifications,
        notifications_saved: 1.0 - notifications as f64 / alerts_n,
        purity: pure as f64 / ids.len().max(1) as f64,
        impure_incidents: impure,
        ac_at_1: ac[0] as f64 / n,
        ac_at_3: ac[2] as f64 / n,
        avg_at_5: ac.iter().sum::<usize>() as f64 / 5.0 / n,
        misses,
    }
}

/// Reads an `incidents.jsonl`.
pub fn load_incidents(path: &Path) -> Result<Vec<IncidentRecord>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| format!("{}:{}: {e}", path.display(), i + 1))
        })
        .collect()
}
