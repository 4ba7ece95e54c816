//! Replicas: each service running on several hosts, and faults that hit one replica only.
//!
//! The model computes one instance per service. With one replica that instance is all there is
//! (same host label, same values: a run with one replica is unchanged). With more, replica 0
//! keeps the instance's host and each further replica runs on a host of its own (`host-3` →
//! `host-3-2`, `host-3-3`); every replica reports the instance's values with noise of its own,
//! on the model's scale for each metric, so replicas are alike and independent around the
//! service's behaviour, and the service's faults show on all of them. (Each replica reports the
//! instance's level, traffic included: the service serves the replica count times the modelled
//! traffic.) The replicas' noise comes from a generator of its own, so the model's draws are the
//! same as without replicas.
//!
//! A *degraded replica* (`replica_degraded` in the ground truth) is the fault peer comparison
//! exists for: one replica's latency climbs steadily to `1 + 2 × intensity` times its peers' over
//! the fault, and a little of its traffic fails, while the other replicas stay healthy (a noisy
//! neighbour, a failing disk, a bad deploy on one host). Such faults are scheduled only with at
//! least three replicas (a peer group needs three members), one per six simulated hours.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::fleet::Fleet;
use super::incidents::{IncidentKind, TruthEntry};
use super::model::{gaussian, Metric};

/// Simulated time between two degraded-replica faults.
const FAULT_EVERY_MS: u64 = 6 * 3_600_000;

/// One degraded replica.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplicaFault {
    /// Id in the ground truth (`rep-001`, ...).
    pub id: String,
    /// Index of the service.
    pub service: usize,
    /// Which of its replicas.
    pub replica: usize,
    /// Start (ms since the epoch).
    pub start: u64,
    /// End (ms since the epoch).
    pub end: u64,
    /// Strength in [0.5, 1).
    pub intensity: f64,
}

impl ReplicaFault {
    /// 0 → 1 over the whole fault: a steady climb, not a step.
    fn progress(&self, t: u64) -> f64 {
        (t.saturating_sub(self.start) as f64 / (self.end - self.start).max(1) as f64).min(1.0)
    }
}

/// The host label of replica `replica` of a service whose instance runs on `host`: the
/// instance's own for replica 0, else `<host>-<replica + 1>`.
pub fn replica_host(host: &str, replica: usize) -> String {
    match replica {
        0 => host.to_string(),
        _ => format!("{host}-{}", replica + 1),
    }
}

/// The replicas of every service: their counters and faults.
pub struct Replicas {
    count: usize,
    rng: ChaCha8Rng,
    /// The instance's last request counter per service, to follow its increments and resets.
    last_counter: Vec<Option<f64>>,
    /// Request counter of each (service, replica).
    counters: Vec<Vec<f64>>,
    faults: Vec<ReplicaFault>,
}

impl Replicas {
    /// `count` replicas (at least 1) of every service of `fleet`, with degraded-replica faults
    /// between `earliest_ms` and `latest_ms` when there are at least three.
    pub fn new(fleet: &Fleet, count: usize, seed: u64, earliest_ms: u64, latest_ms: u64) -> Self {
        let count = count.max(1);
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5E9_11CA);
        let n = fleet.services.len();
        let mut faults = Vec::new();
        let span = latest_ms.saturating_sub(earliest_ms);
        if count >= 3 && span > 40 * 60_000 {
            let how_many = (span / FAULT_EVERY_MS).max(1);
            let slot = span / how_many;
            for i in 0..how_many {
                let duration = rng.random_range(15 * 60_000..=40 * 60_000u64);
                let room = slot.saturating_sub(duration).max(1);
                let start = earliest_ms + slot * i + rng.random_range(0..room);
                faults.push(ReplicaFault {
                    id: format!("rep-{:03}", i + 1),
                    service: rng.random_range(0..n),
                    replica: rng.random_range(0..count),
                    start,
                    end: (start + duration).min(latest_ms),
                    intensity: rng.random_range(0.5..1.0),
                });
            }
        }
        Replicas {
            count,
            rng,
            last_counter: vec![None; n],
            counters: vec![vec![0.0; count]; n],
            faults,
        }
    }

    /// Number of replicas per service.
    pub fn count(&self) -> usize {
        self.count
    }

    /// Ground truth of the degraded-replica faults: the service is the root cause and the only
    /// entity affected (entities are services).
    pub fn truth(&self, fleet: &Fleet) -> Vec<TruthEntry> {
        self.faults
            .iter()
            .map(|f| TruthEntry {
                id: f.id.clone(),
                kind: IncidentKind::ReplicaDegraded,
                root_cause: fleet.services[f.service].name.clone(),
                affected: vec![fleet.services[f.service].name.clone()],
                start: f.start,
                end: f.end,
            })
            .collect()
    }

    /// The values of every replica of `service` at `t`, given the instance's `value` of
    /// `metric`: `emit(replica, value)` in replica order, rounded as the model rounds. With one
    /// replica that is the instance's value.
    pub fn values(
        &mut self,
        t: u64,
        service: usize,
        metric: Metric,
        value: f64,
        mut emit: impl FnMut(usize, f64),
    ) {
        if self.count == 1 {
            emit(0, value);
            return;
        }
        // The instance's increment since the last step, and whether its counter restarted (it
        // fell, or this is its first value): then every replica's counter starts from 0.
        let increment = match metric {
            Metric::Requests => Some(match self.last_counter[service].replace(value) {
                Some(last) if value >= last => (value - last, false),
                _ => (value, true),
            }),
            _ => None,
        };
        for replica in 0..self.count {
            let mut v = match increment {
                Some((inc, restarted)) => {
                    let c = &mut self.counters[service][replica];
                    if restarted {
                        *c = 0.0;
                    }
                    *c += Metric::Requests
                        .with_noise(inc, gaussian(&mut self.rng))
                        .max(0.0);
                    *c
                }
                None => metric.with_noise(value, gaussian(&mut self.rng)),
            };
            let degraded = self
                .faults
                .iter()
                .filter(|f| f.service == service && f.replica == replica)
                .find(|f| f.start <= t && t < f.end);
            if let Some(f) = degraded {
                let p = f.progress(t);
                v = match metric {
                    Metric::P50 | Metric::P99 => v * (1.0 + 2.0 * f.intensity * p),
                    Metric::Errors => (v + 0.02 * f.intensity * p).min(1.0),
                    _ => v,
                };
            }
            emit(replica, metric.rounded(v));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replicas(count: usize) -> (Fleet, Replicas) {
        let fleet = Fleet::generate(8, 3);
        let r = Replicas::new(&fleet, count, 3, 3_600_000, 30 * 3_600_000);
        (fleet, r)
    }

    #[test]
    fn one_replica_passes_the_instance_through() {
        let (fleet, mut r) = replicas(1);
        assert!(r.truth(&fleet).is_empty());
        let mut out = Vec::new();
        r.values(0, 2, Metric::P50, 12.5, |i, v| out.push((i, v)));
        assert_eq!(out, vec![(0, 12.5)]);
        assert_eq!(
            replica_host(&fleet.services[2].host, 0),
            fleet.services[2].host
        );
    }

    #[test]
    fn replicas_report_alike_and_one_degrades_during_its_fault() {
        let (fleet, mut r) = replicas(3);
        let truth = r.truth(&fleet);
        assert_eq!(
            truth.len(),
            4,
            "one fault per six hours of the 29 scheduled"
        );
        let f = r.faults[0].clone();
        assert_eq!(truth[0].root_cause, fleet.services[f.service].name);
        let host = &fleet.services[f.service].host;
        assert_ne!(replica_host(host, 1), replica_host(host, 2));
        // Near the fault's end the degraded replica's latency is well above its peers'; before
        // the fault every replica is within noise of the instance.
        let at = |r: &mut Replicas, t: u64| {
            let mut out = vec![0.0; 3];
            r.values(t, f.service, Metric::P50, 100.0, |i, v| out[i] = v);
            out
        };
        let before = at(&mut r, f.start - 60_000);
        assert!(
            before.iter().all(|v| (v / 100.0 - 1.0).abs() < 0.25),
            "{before:?}"
        );
        let late = at(&mut r, f.end - 10_000);
        let factor = 1.0 + 2.0 * f.intensity * r.faults[0].progress(f.end - 10_000);
        for (i, v) in late.iter().enumerate() {
            if i == f.replica {
                assert!(
                    *v > 100.0 * factor * 0.85,
                    "degraded replica {v}, factor {factor}"
                );
            } else {
                assert!((v / 100.0 - 1.0).abs() < 0.25, "healthy replica {i}: {v}");
            }
        }
    }

    #[test]
    fn replica_counters_grow_and_restart_with_the_instance() {
        let (_, mut r) = replicas(3);
        let mut seen = Vec::new();
        for (t, instance) in [(0, 600.0), (10, 1200.0), (20, 1800.0), (30, 300.0)] {
            let mut row = vec![0.0; 3];
            r.values(t, 1, Metric::Requests, instance, |i, v| row[i] = v);
            seen.push(row);
        }
        let of = |rep: usize| seen.iter().map(|row| row[rep]).collect::<Vec<f64>>();
        for counter in [of(1), of(2)] {
            assert!(
                counter[1] > counter[0] && counter[2] > counter[1],
                "{counter:?}"
            );
            assert!(
                counter[3] < counter[2],
                "a restart resets every counter: {counter:?}"
            );
        }
    }
}
