//! Injected incidents: their kinds, a seeded schedule, and the ground truth written to
//! `truth.json` (which entities each one affects, from its kind and the call graph).

use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use super::fleet::{Fleet, Tier};

/// What goes wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentKind {
    /// A runaway process saturates a service's CPU (and contends with its host neighbours).
    CpuHog,
    /// Memory grows until the service is OOM-killed and restarts, again and again.
    MemoryLeak,
    /// Added latency in one service, felt by every caller up the graph.
    LatencyInjection,
    /// A burst of errors in one service, propagating to its callers.
    ErrorBurst,
    /// User traffic at an edge service drops, and with it the load downstream.
    TrafficDrop,
    /// A disk fills up; near full, writes fail and errors propagate to callers.
    DiskFilling,
    /// One replica of a service slows down while its peers stay healthy (only with replicas;
    /// never in the rotation of [`IncidentKind::ALL`], see `replicas`).
    ReplicaDegraded,
}

impl IncidentKind {
    /// Every kind, in rotation order.
    pub const ALL: [IncidentKind; 6] = [
        IncidentKind::LatencyInjection,
        IncidentKind::ErrorBurst,
        IncidentKind::CpuHog,
        IncidentKind::MemoryLeak,
        IncidentKind::TrafficDrop,
        IncidentKind::DiskFilling,
    ];

    /// Tiers a root cause of this kind can sit in.
    fn root_tiers(self) -> &'static [Tier] {
        match self {
            IncidentKind::TrafficDrop => &[Tier::Edge],
            IncidentKind::DiskFilling => &[Tier::Backing],
            IncidentKind::MemoryLeak => &[Tier::Business, Tier::Backing],
            _ => &[Tier::Business, Tier::Backing],
        }
    }
}

/// One injected incident.
#[derive(Debug, Clone, PartialEq)]
pub struct Incident {
    /// Id in the ground truth (`inc-001`, ...).
    pub id: String,
    /// Kind.
    pub kind: IncidentKind,
    /// Index of the root-cause service.
    pub root: usize,
    /// Start (ms since the epoch).
    pub start: u64,
    /// End (ms since the epoch): the fault is removed.
    pub end: u64,
    /// Strength in [0.5, 1.5]; 1 is typical.
    pub intensity: f64,
}

/// Ground truth of one incident, as written to `truth.json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TruthEntry {
    /// Incident id.
    pub id: String,
    /// Kind.
    #[serde(rename = "type")]
    pub kind: IncidentKind,
    /// Root-cause entity (service name).
    pub root_cause: String,
    /// Entities that show the fault: the root first, then the others by name.
    pub affected: Vec<String>,
    /// Start (ms since the epoch).
    pub start: u64,
    /// End (ms since the epoch).
    pub end: u64,
}

/// How incidents are placed.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleConfig {
    /// How many incidents.
    pub count: usize,
    /// First moment an incident may start (baselines need history first).
    pub earliest_ms: u64,
    /// Last moment an incident may end.
    pub latest_ms: u64,
    /// Shortest and longest duration.
    pub duration_ms: (u64, u64),
    /// Probability that an incident overlaps the previous one in time.
    pub overlap_probability: f64,
}

/// Places `cfg.count` incidents between `earliest_ms` and `latest_ms`: evenly spaced slots with
/// jitter, kinds in rotation (so every kind appears), roots drawn from the kind's tiers, and some
/// incidents moved to overlap their predecessor on a different service.
pub fn schedule(fleet: &Fleet, cfg: &ScheduleConfig, seed: u64) -> Vec<Incident> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x01C1_DE47);
    let span = cfg.latest_ms.saturating_sub(cfg.earliest_ms);
    if cfg.count == 0 || span < cfg.duration_ms.1 {
        return Vec::new();
    }
    let slot = span / cfg.count as u64;
    let mut out: Vec<Incident> = Vec::with_capacity(cfg.count);
    for i in 0..cfg.count {
        let kind = IncidentKind::ALL[i % IncidentKind::ALL.len()];
        let candidates: Vec<usize> = fleet
            .services
            .iter()
            .enumerate()
            .filter(|(_, s)| kind.root_tiers().contains(&s.tier))
            .map(|(i, _)| i)
            .collect();
        let Some(&root) = candidates.choose(&mut rng) else {
            continue;
        };
        let duration = rng.random_range(cfg.duration_ms.0..=cfg.duration_ms.1);
        let slot_start = cfg.earliest_ms + slot * i as u64;
        let room = slot.saturating_sub(duration);
        let mut start = slot_start
            + if room > 0 {
                rng.random_range(0..room)
            } else {
                0
            };
        let overlaps = rng.random_bool(cfg.overlap_probability.clamp(0.0, 1.0));
        if let (true, Some(prev)) = (overlaps, out.last()) {
            if prev.root != root {
                let prev_len = prev.end - prev.start;
                start = prev.start + rng.random_range(prev_len / 4..=prev_len / 2 + 1);
            }
        }
        let end = (start + duration).min(cfg.latest_ms);
        out.push(Incident {
            id: format!("inc-{:03}", i + 1),
            kind,
            root,
            start,
            end,
            intensity: rng.random_range(0.8..1.3),
        });
    }
    out.sort_by_key(|inc| (inc.start, inc.id.clone()));
    out
}

/// The services an incident visibly affects, root first.
pub fn affected(fleet: &Fleet, inc: &Incident) -> Vec<usize> {
    let mut set = vec![inc.root];
    let add_callers = |set: &mut Vec<usize>, from: usize| {
        // Upstream: everyone who (transitively) calls `from`.
        let mut frontier = vec![from];
        while let Some(x) = frontier.pop() {
            for c in fleet.callers(x) {
                if !set.contains(&c) {
                    set.push(c);
                    frontier.push(c);
                }
            }
        }
    };
    match inc.kind {
        // Restarts after OOM kills (errors) and GC pauses (latency) travel up the call graph
        // like any other error or latency (the model adds callees' errors and latency to every
        // caller), so a leak affects every transitive caller.
        IncidentKind::LatencyInjection
        | IncidentKind::ErrorBurst
        | IncidentKind::DiskFilling
        | IncidentKind::MemoryLeak => add_callers(&mut set, inc.root),
        IncidentKind::CpuHog => {
            add_callers(&mut set, inc.root);
            // Co-located services contend for the CPU and slow down, and their callers feel it.
            for n in fleet.neighbours(inc.root).collect::<Vec<_>>() {
                if !set.contains(&n) {
                    set.push(n);
                }
                add_callers(&mut set, n);
            }
        }
        // Applied by the replica layer, not the model: the service alone.
        IncidentKind::ReplicaDegraded => {}
        IncidentKind::TrafficDrop => {
            // Downstream: everyone the edge service (transitively) calls.
            let mut frontier = vec![inc.root];
            while let Some(x) = frontier.pop() {
                for &c in &fleet.services[x].calls {
                    if !set.contains(&c) {
                        set.push(c);
                        frontier.push(c);
                    }
                }
            }
        }
    }
    set
}

/// The ground-truth entry of `inc`.
pub fn truth(fleet: &Fleet, inc: &Incident) -> TruthEntry {
    let idx = affected(fleet, inc);
    let mut names: Vec<String> = idx[1..]
        .iter()
        .map(|&i| fleet.services[i].name.clone())
        .collect();
    names.sort();
    let mut affected = vec![fleet.services[inc.root].name.clone()];
    affected.extend(names);
    TruthEntry {
        id: inc.id.clone(),
        kind: inc.kind,
        root_cause: fleet.services[inc.root].name.clone(),
        affected,
        start: inc.start,
        end: inc.end,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(count: usize) -> ScheduleConfig {
        ScheduleConfig {
            count,
            earliest_ms: 3_600_000,
            latest_ms: 3_600_000 * 49,
            duration_ms: (15 * 60_000, 40 * 60_000),
            overlap_probability: 0.2,
        }
    }

    #[test]
    fn schedule_is_seeded_covers_every_kind_and_stays_in_range() {
        let fleet = Fleet::generate(12, 3);
        let a = schedule(&fleet, &cfg(60), 9);
        assert_eq!(a, schedule(&fleet, &cfg(60), 9));
        assert_eq!(a.len(), 60);
        for kind in IncidentKind::ALL {
            assert!(a.iter().any(|i| i.kind == kind), "{kind:?}");
        }
        for inc in &a {
            assert!(inc.start >= 3_600_000 && inc.end <= 3_600_000 * 49 && inc.end > inc.start);
        }
        let overlapping = a.windows(2).filter(|w| w[1].start < w[0].end).count();
        assert!(overlapping > 0, "some incidents overlap");
    }

    #[test]
    fn ground_truth_follows_the_graph() {
        let fleet = Fleet::generate(12, 3);
        for inc in schedule(&fleet, &cfg(12), 1) {
            let t = truth(&fleet, &inc);
            assert_eq!(t.affected[0], t.root_cause);
            if inc.kind == IncidentKind::LatencyInjection {
                for c in fleet.callers(inc.root) {
                    assert!(t.affected.contains(&fleet.services[c].name));
                }
            }
        }
    }
}
