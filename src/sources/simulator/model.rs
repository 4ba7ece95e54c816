//! The metric model of the simulated fleet: load with a daily and weekly season flowing from the
//! edge down the call graph, latency and errors flowing back up (with a delay per hop), resource
//! metrics driven by load, seeded noise, and the effect of each injected incident.
//!
//! Metrics per service (labels `service`, `host`): a request counter (with resets on restarts),
//! p50 and p99 latency, error ratio, CPU, memory, saturation and disk usage (the simulation adds
//! each service's memory limit as a gauge, see `MEMORY_LIMIT_METRIC`).

use std::collections::VecDeque;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::fleet::{Fleet, Tier};
use super::incidents::{Incident, IncidentKind};

/// Metric names, in emission order per service.
pub const METRICS: [&str; 8] = [
    "http_requests_total",
    "http_request_duration_p50_ms",
    "http_request_duration_p99_ms",
    "http_error_ratio",
    "cpu_utilization_percent",
    "memory_used_bytes",
    "saturation_ratio",
    "disk_used_percent",
];

/// Decimals each metric's values are rounded to, in [`METRICS`] order.
const DECIMALS: [i32; 8] = [0, 3, 3, 6, 3, 0, 4, 3];

/// Index of each metric in [`METRICS`].
#[derive(Debug, Clone, Copy)]
#[repr(usize)]
pub enum Metric {
    /// Request counter.
    Requests = 0,
    /// Median latency.
    P50 = 1,
    /// Tail latency.
    P99 = 2,
    /// Error ratio.
    Errors = 3,
    /// CPU utilisation in percent.
    Cpu = 4,
    /// Memory in bytes.
    Memory = 5,
    /// Pool/queue saturation in [0, 1].
    Saturation = 6,
    /// Disk usage in percent.
    Disk = 7,
}

impl Metric {
    /// `value` rounded as this metric's values are emitted (whole requests and bytes, latency
    /// to the microsecond, ...).
    pub fn rounded(self, value: f64) -> f64 {
        round_to(value, DECIMALS[self as usize])
    }

    /// `value` with this metric's measurement noise, from one standard normal draw `g`: ±3%
    /// on a request rate, log-normal latency (4% for p50, 8% for p99), ±20% of an error ratio,
    /// ±0.4% of memory, and additive CPU, saturation and disk noise, each kept in its range.
    /// One table for the modelled instance and its replicas, so replicas are as noisy as it.
    /// (The instance's error ratio adds a small floor term of its own; see `Model::step`.)
    pub fn with_noise(self, value: f64, g: f64) -> f64 {
        match self {
            Metric::Requests => value * (1.0 + 0.03 * g),
            Metric::P50 => value * (0.04 * g).exp(),
            Metric::P99 => value * (0.08 * g).exp(),
            Metric::Errors => (value * (1.0 + 0.2 * g)).clamp(0.0, 1.0),
            Metric::Cpu => (value + 1.5 * g).clamp(0.0, 100.0),
            Metric::Memory => value * (1.0 + 0.004 * g),
            Metric::Saturation => (value + 0.02 * g).clamp(0.0, 1.0),
            Metric::Disk => (value + 0.05 * g).clamp(0.0, 100.0),
        }
    }
}

/// Steps of delay per call-graph hop for latency and errors flowing to callers (3 × 10 s).
const HOP_DELAY_STEPS: usize = 3;

/// Fixed traits of one service, drawn once from the seed.
#[derive(Debug, Clone)]
struct Profile {
    /// Requests per second at the seasonal mean (edge services only).
    edge_rate: f64,
    /// Calls made to each callee per request received.
    fanout: Vec<f64>,
    /// Requests per second at full utilisation.
    capacity: f64,
    /// Own median latency at low load (ms).
    own_p50: f64,
    /// p99 / p50 at low load.
    tail: f64,
    /// Own error ratio.
    base_errors: f64,
    /// CPU at idle (%).
    idle_cpu: f64,
    /// Memory at idle (bytes) and its limit.
    base_memory: f64,
    /// Memory limit (bytes): reaching it means an OOM kill and a restart.
    memory_limit: f64,
    /// Disk usage at the start (%), and its growth per day (%).
    base_disk: f64,
    disk_growth_per_day: f64,
}

/// Changing state of one service.
#[derive(Debug, Clone, Default)]
struct Dynamic {
    requests_total: f64,
    /// Recent own-plus-downstream p50 and error ratio, newest last, for delayed propagation.
    p50_history: VecDeque<f64>,
    errors_history: VecDeque<f64>,
    /// Memory leaked so far (bytes).
    leaked: f64,
    /// Extra disk used by a filling incident (%).
    disk_extra: f64,
    /// Steps left of a post-restart error burst.
    restart_steps: u32,
}

/// The whole fleet's metric model.
pub struct Model {
    fleet: Fleet,
    profiles: Vec<Profile>,
    state: Vec<Dynamic>,
    incidents: Vec<Incident>,
    rng: ChaCha8Rng,
    step_ms: u64,
    start_ms: u64,
    /// Per-step scratch: load (req/s) of each service.
    load: Vec<f64>,
}

/// A standard normal sample (Box–Muller; one of the pair is enough here).
pub(super) fn gaussian(rng: &mut ChaCha8Rng) -> f64 {
    let u1: f64 = rng.random::<f64>().max(1e-300);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// 0 → 1 over the first minute of an incident, so faults build up rather than step.
fn ramp(inc: &Incident, t: u64) -> f64 {
    ((t - inc.start) as f64 / 60_000.0).min(1.0)
}

impl Model {
    /// A model of `fleet` starting at `start_ms`, sampled every `step_ms`, with `incidents`.
    pub fn new(
        fleet: Fleet,
        incidents: Vec<Incident>,
        seed: u64,
        start_ms: u64,
        step_ms: u64,
    ) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x00AB_CDEF);
        let profiles = fleet
            .services
            .iter()
            .map(|s| {
                let backing = s.tier == Tier::Backing;
                let base_memory = rng.random_range(256.0..2048.0) * 1024.0 * 1024.0;
                Profile {
                    edge_rate: if s.tier == Tier::Edge {
                        rng.random_range(150.0..600.0)
                    } else {
                        0.0
                    },
                    fanout: s.calls.iter().map(|_| rng.random_range(0.3..1.2)).collect(),
                    capacity: 0.0, // set below, once loads are known
                    own_p50: if backing {
                        rng.random_range(1.0..6.0)
                    } else {
                        rng.random_range(4.0..25.0)
                    },
                    tail: rng.random_range(2.5..4.0),
                    base_errors: rng.random_range(0.0005..0.004),
                    idle_cpu: rng.random_range(2.0..8.0),
                    base_memory,
                    memory_limit: base_memory * rng.random_range(1.8..2.6),
                    base_disk: if backing {
                        rng.random_range(35.0..65.0)
                    } else {
                        rng.random_range(10.0..30.0)
                    },
                    disk_growth_per_day: if backing {
                        rng.random_range(0.2..1.0)
                    } else {
                        rng.random_range(0.0..0.1)
                    },
                }
            })
            .collect();
        let n = fleet.services.len();
        let mut model = Model {
            fleet,
            profiles,
            state: vec![Dynamic::default(); n],
            incidents,
            rng,
            step_ms: step_ms.max(1),
            start_ms,
            load: vec![0.0; n],
        };
        // Size capacity so the seasonal peak loads a service to 45–75 %.
        model.propagate_load(1.5, &[]);
        for i in 0..n {
            let peak = model.load[i].max(1.0);
            model.profiles[i].capacity = peak / model.rng.random_range(0.45..0.75);
        }
        model
    }

    /// The fleet being simulated.
    pub fn fleet(&self) -> &Fleet {
        &self.fleet
    }

    /// The injected incidents.
    pub fn incidents(&self) -> &[Incident] {
        &self.incidents
    }

    /// Daily (peak mid-afternoon, 3:1 peak to trough) and weekly (weekends at 75 %) season.
    fn season(&self, t: u64) -> f64 {
        let hours = t as f64 / 3_600_000.0;
        let hour_of_day = hours % 24.0;
        let daily = 1.0 + 0.5 * ((hour_of_day - 10.0) / 24.0 * std::f64::consts::TAU).sin();
        // 1970-01-01 was a Thursday: day 2 and 3 of each week (mod 7) are Saturday and Sunday.
        let day = (t / 86_400_000) % 7;
        let weekly = if day == 2 || day == 3 { 0.75 } else { 1.0 };
        daily * weekly
    }

    /// Load of every service, edge first: callees receive their callers' load times fanout.
    fn propagate_load(&mut self, season: f64, drops: &[(usize, f64)]) {
        self.load.iter_mut().for_each(|l| *l = 0.0);
        for i in 0..self.fleet.services.len() {
            let mut own = if self.fleet.services[i].tier == Tier::Edge {
                self.profiles[i].edge_rate * season
            } else {
                self.load[i]
            };
            for &(root, factor) in drops {
                if root == i {
                    own *= factor;
                }
            }
            self.load[i] = own;
            for (k, &callee) in self.fleet.services[i].calls.iter().enumerate() {
                self.load[callee] += own * self.profiles[i].fanout[k];
            }
        }
    }

    /// Produces every metric of every service at time `t` through `emit(service, metric, value)`.
    pub fn step(&mut self, t: u64, mut emit: impl FnMut(usize, Metric, f64)) {
        let active: Vec<Incident> = self
            .incidents
            .iter()
            .filter(|inc| inc.start <= t && t < inc.end)
            .cloned()
            .collect();
        // Faults that ended this step are repaired (a fix deploy restarts the service).
        for inc in self
            .incidents
            .iter()
            .filter(|inc| inc.end <= t && t < inc.end + self.step_ms)
        {
            let s = &mut self.state[inc.root];
            match inc.kind {
                IncidentKind::MemoryLeak => {
                    s.leaked = 0.0;
                    s.requests_total = 0.0;
                }
                IncidentKind::DiskFilling => s.disk_extra = 0.0,
                _ => {}
            }
        }
        let drops: Vec<(usize, f64)> = active
            .iter()
            .filter(|inc| inc.kind == IncidentKind::TrafficDrop)
            .map(|inc| {
                (
                    inc.root,
                    1.0 - (0.7 * inc.intensity).min(0.9) * ramp(inc, t),
                )
            })
            .collect();
        let season = self.season(t);
        let trend = 1.0 + 0.02 * (t.saturating_sub(self.start_ms) as f64 / 86_400_000.0);
        self.propagate_load(season * trend, &drops);

        let n = self.fleet.services.len();
        let step_secs = self.step_ms as f64 / 1000.0;
        let days = t.saturating_sub(self.start_ms) as f64 / 86_400_000.0;
        // Callees before callers (reverse index order), so delayed downstream values exist.
        let mut p50_now = vec![0.0; n];
        let mut errors_now = vec![0.0; n];
        for i in (0..n).rev() {
            let p = self.profiles[i].clone();
            let load = Metric::Requests.with_noise(self.load[i], gaussian(&mut self.rng));
            let util = (load / p.capacity).clamp(0.0, 1.5);
            let mut own_p50 = p.own_p50 * (1.0 + 0.8 * util * util);
            let mut own_errors = p.base_errors;
            let mut cpu = p.idle_cpu + 85.0 * util.powf(0.9);
            let mut latency_factor = 1.0;
            for inc in &active {
                let r = ramp(inc, t);
                let is_root = inc.root == i;
                let neighbour =
                    !is_root && self.fleet.services[inc.root].host == self.fleet.services[i].host;
                match inc.kind {
                    IncidentKind::LatencyInjection if is_root => {
                        own_p50 += p.own_p50 * 4.0 * inc.intensity * r;
                    }
                    IncidentKind::ErrorBurst if is_root => {
                        own_errors += 0.15 * inc.intensity * r;
                    }
                    IncidentKind::CpuHog if is_root => {
                        cpu += (97.0 - cpu) * r;
                        latency_factor *= 1.0 + 1.5 * inc.intensity * r;
                    }
                    IncidentKind::CpuHog if neighbour => {
                        cpu += 12.0 * r;
                        latency_factor *= 1.0 + 0.25 * r;
                    }
                    IncidentKind::MemoryLeak if is_root => {
                        let duration = (inc.end - inc.start) as f64;
                        let rate =
                            (p.memory_limit - p.base_memory) / (0.6 * duration) * inc.intensity;
                        self.state[i].leaked += rate * self.step_ms as f64;
                        // GC pressure as memory fills.
                        let fill = self.state[i].leaked / (p.memory_limit - p.base_memory);
                        latency_factor *= 1.0 + 0.5 * fill * fill;
                    }
                    IncidentKind::DiskFilling if is_root => {
                        let duration = (inc.end - inc.start) as f64;
                        let start_disk = p.base_disk + p.disk_growth_per_day * days;
                        let rate = (99.0 - start_disk).max(0.0) / (0.9 * duration);
                        self.state[i].disk_extra += rate * self.step_ms as f64;
                    }
                    _ => {}
                }
            }
            let s = &mut self.state[i];
            let disk = (p.base_disk + p.disk_growth_per_day * days + s.disk_extra).min(100.0);
            if disk > 95.0 {
                own_errors += 0.2 * (disk - 95.0) / 5.0;
            }
            let mut memory = p.base_memory * (1.0 + 0.1 * util) + s.leaked;
            if memory >= p.memory_limit {
                // OOM kill: the process restarts empty, its counter resets, requests fail briefly.
                s.leaked = 0.0;
                s.requests_total = 0.0;
                s.restart_steps = 3;
                memory = p.base_memory;
            }
            if s.restart_steps > 0 {
                s.restart_steps -= 1;
                own_errors += 0.3;
                latency_factor *= 2.0;
            }
            // Downstream contributions, as they were a few hops' delay ago.
            let mut p50 = own_p50 * latency_factor;
            let mut errors = own_errors;
            for (k, &callee) in self.fleet.services[i].calls.iter().enumerate() {
                let c = &self.state[callee];
                let delayed = |h: &VecDeque<f64>| {
                    h.len()
                        .checked_sub(HOP_DELAY_STEPS)
                        .and_then(|at| h.get(at))
                        .or(h.front())
                        .copied()
                        .unwrap_or(0.0)
                };
                p50 += 0.5 * p.fanout[k].min(1.0) * delayed(&c.p50_history);
                errors += 0.6 * delayed(&c.errors_history);
            }
            errors = errors.min(1.0);
            p50_now[i] = p50;
            errors_now[i] = errors;

            let s = &mut self.state[i];
            s.requests_total += load.max(0.0) * step_secs;
            let noisy_p50 = Metric::P50.with_noise(p50, gaussian(&mut self.rng));
            let mut p99 = Metric::P99.with_noise(
                p50 * p.tail * (1.0 + 0.5 * util * util),
                gaussian(&mut self.rng),
            );
            // Rare tail spikes (a GC pause, a slow disk): real systems have them.
            if self.rng.random_bool(1.0 / 3000.0) {
                p99 *= 3.0;
            }
            // The relative noise of `Metric::with_noise` plus a floor term, clamped once: an
            // idle service still reports the odd failed request.
            let noisy_errors = (errors * (1.0 + 0.2 * gaussian(&mut self.rng))
                + 0.0005 * gaussian(&mut self.rng))
            .clamp(0.0, 1.0);
            let noisy_cpu = Metric::Cpu.with_noise(cpu, gaussian(&mut self.rng));
            let noisy_memory = Metric::Memory.with_noise(memory, gaussian(&mut self.rng));
            let saturation = Metric::Saturation
                .with_noise(util * latency_factor.sqrt(), gaussian(&mut self.rng));
            let noisy_disk = Metric::Disk.with_noise(disk, gaussian(&mut self.rng));
            for (metric, value) in [
                (Metric::Requests, s.requests_total),
                (Metric::P50, noisy_p50),
                (Metric::P99, p99),
                (Metric::Errors, noisy_errors),
                (Metric::Cpu, noisy_cpu),
                (Metric::Memory, noisy_memory),
                (Metric::Saturation, saturation),
                (Metric::Disk, noisy_disk),
            ] {
                emit(i, metric, metric.rounded(value));
            }
        }
        for i in 0..n {
            let s = &mut self.state[i];
            s.p50_history.push_back(p50_now[i]);
            s.errors_history.push_back(errors_now[i]);
            if s.p50_history.len() > HOP_DELAY_STEPS + 1 {
                s.p50_history.pop_front();
                s.errors_history.pop_front();
            }
        }
    }

    /// Each service's memory limit in bytes, for the rules of capacity recommendations.
    pub fn memory_limits(&self) -> Vec<f64> {
        self.profiles.iter().map(|p| p.memory_limit).collect()
    }
}

fn round_to(v: f64, decimals: i32) -> f64 {
    let f = 10f64.powi(decimals);
    (v * f).round() / f
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::simulator::incidents::Incident;

    fn run(incidents: Vec<Incident>, steps: u64) -> Vec<Vec<[f64; 8]>> {
        let fleet = Fleet::generate(8, 4);
        let mut m = Model::new(fleet, incidents, 4, 0, 10_000);
        let mut out = Vec::new();
        for s in 0..steps {
            let mut row = vec![[0.0; 8]; 8];
            m.step(s * 10_000, |svc, metric, v| row[svc][metric as usize] = v);
            out.push(row);
        }
        out
    }

    #[test]
    fn deterministic_and_plausible() {
        let a = run(Vec::new(), 50);
        assert_eq!(a, run(Vec::new(), 50));
        for row in &a {
            for m in row {
                assert!(m.iter().all(|v| v.is_finite() && *v >= 0.0));
                assert!(m[Metric::P99 as usize] >= m[Metric::P50 as usize] * 0.5);
                assert!(m[Metric::Cpu as usize] <= 100.0);
            }
        }
        // Counters only grow without incidents.
        for w in a.windows(2) {
            for (before, after) in w[0].iter().zip(&w[1]) {
                assert!(after[0] >= before[0]);
            }
        }
    }

    #[test]
    fn latency_injection_reaches_callers_with_a_delay() {
        let fleet = Fleet::generate(8, 4);
        let root = (0..8)
            .find(|&i| fleet.callers(i).count() > 0 && fleet.services[i].tier == Tier::Business)
            .unwrap();
        let caller = fleet.callers(root).next().unwrap();
        let inc = Incident {
            id: "x".into(),
            kind: IncidentKind::LatencyInjection,
            root,
            start: 100 * 10_000,
            end: 200 * 10_000,
            intensity: 1.0,
        };
        let base = run(Vec::new(), 160);
        let hit = run(vec![inc], 160);
        let mean = |rows: &[Vec<[f64; 8]>], s: usize| {
            rows.iter().map(|r| r[s][Metric::P50 as usize]).sum::<f64>() / rows.len() as f64
        };
        assert!(mean(&hit[120..160], root) > 2.0 * mean(&base[120..160], root));
        assert!(mean(&hit[120..160], caller) > 1.15 * mean(&base[120..160], caller));
    }
}
