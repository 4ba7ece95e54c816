//! The built-in simulator: a seeded service fleet with a call topology, realistic metrics with
//! daily seasonality and noise, and injected incidents (CPU hog, memory leak, latency injection,
//! error burst, traffic drop, disk filling) that propagate along the call graph with delays.
//! Optionally each service runs several replicas, one of which may degrade alone (`replicas`).
//!
//! It is the embedded default of `harbinger run`, the data of demos and end-to-end tests, and,
//! through `harbinger simulate`, a generator of metrics files with their ground truth.

pub mod fleet;
pub mod incidents;
pub mod model;
pub mod replicas;

use serde::Serialize;

use crate::ingest::{Batch, Interner, PartitionIngest, PositionKind, RawPoint};
use crate::sources::pacing::Pace;
use crate::sources::{Partition, ReadStatus};
use fleet::Fleet;
use incidents::{ScheduleConfig, TruthEntry};
use model::{Metric, Model, METRICS};
use replicas::{replica_host, Replicas};

/// Each service's memory limit (bytes), a constant gauge as Kubernetes exports a container's
/// spec (`container_spec_memory_limit_bytes`): the level a memory leak climbs to before the OOM
/// kill, and the sibling series `rules/capacity.toml` reads the memory limit from.
pub const MEMORY_LIMIT_METRIC: &str = "memory_limit_bytes";

/// The limit gauge is emitted once a minute rather than every step: it never changes, and a
/// sample per minute is enough for windows of a minute or more while adding ~2% to the points
/// (one per minute against eight metrics per 10-second step).
const LIMIT_EVERY_MS: u64 = 60_000;

/// 2024-01-01T00:00:00Z: the default start, so runs are reproducible to the millisecond.
pub const DEFAULT_START_MS: u64 = 1_704_067_200_000;

/// How to simulate.
#[derive(Debug, Clone, PartialEq)]
pub struct SimulatorConfig {
    /// Seed of everything random.
    pub seed: u64,
    /// Number of services (at least 3).
    pub services: usize,
    /// Simulated duration (ms).
    pub duration_ms: u64,
    /// Sampling interval (ms).
    pub step_ms: u64,
    /// Simulated start time (ms since the epoch).
    pub start_ms: u64,
    /// Number of incidents; `None` means one per 75 minutes after the first hour.
    pub incidents: Option<usize>,
    /// Probability that an incident overlaps its predecessor.
    pub overlap_probability: f64,
    /// Event time per wall-clock time when run live (0: as fast as possible).
    pub speed: f64,
    /// Replicas per service, each on its own host (1: one instance, as before replicas
    /// existed; 3 or more also schedules degraded-replica faults).
    pub replicas: usize,
}

impl Default for SimulatorConfig {
    fn default() -> Self {
        SimulatorConfig {
            seed: 42,
            services: 12,
            duration_ms: 6 * 3_600_000,
            step_ms: 10_000,
            start_ms: DEFAULT_START_MS,
            incidents: None,
            overlap_probability: 0.15,
            speed: 0.0,
            replicas: 1,
        }
    }
}

/// Baselines need this much history before the first incident.
const WARMUP_MS: u64 = 3_600_000;

/// Ground truth as written to `truth.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Truth {
    /// Injected incidents in start order.
    pub incidents: Vec<TruthEntry>,
    /// The simulated span (first sample, end), ms since the epoch.
    pub simulation: crate::evaluate::SimulationSpan,
}

/// A running simulation.
pub struct Simulation {
    model: Model,
    config: SimulatorConfig,
    step: u64,
    steps: u64,
    /// Sorted labels per service and replica.
    labels: Vec<Vec<[(String, String); 2]>>,
    replicas: Replicas,
}

impl Simulation {
    /// Builds the fleet, schedules the incidents and sets the clock to the start.
    pub fn new(config: SimulatorConfig) -> Self {
        let fleet = Fleet::generate(config.services, config.seed);
        let count = config.incidents.unwrap_or_else(|| {
            (config.duration_ms.saturating_sub(WARMUP_MS) / (75 * 60_000)) as usize
        });
        let schedule_cfg = ScheduleConfig {
            count,
            earliest_ms: config.start_ms + WARMUP_MS.min(config.duration_ms / 4),
            latest_ms: config.start_ms + config.duration_ms.saturating_sub(10 * 60_000),
            duration_ms: (15 * 60_000, 40 * 60_000),
            overlap_probability: config.overlap_probability,
        };
        let planned = incidents::schedule(&fleet, &schedule_cfg, config.seed);
        let replicas = Replicas::new(
            &fleet,
            config.replicas,
            config.seed,
            schedule_cfg.earliest_ms,
            schedule_cfg.latest_ms,
        );
        let labels = fleet
            .services
            .iter()
            .map(|s| {
                (0..replicas.count())
                    .map(|r| {
                        [
                            ("host".to_string(), replica_host(&s.host, r)),
                            ("service".to_string(), s.name.clone()),
                        ]
                    })
                    .collect()
            })
            .collect();
        let model = Model::new(fleet, planned, config.seed, config.start_ms, config.step_ms);
        let steps = config.duration_ms / config.step_ms.max(1);
        Simulation {
            model,
            config,
            step: 0,
            steps,
            labels,
            replicas,
        }
    }

    /// The fleet.
    pub fn fleet(&self) -> &Fleet {
        self.model.fleet()
    }

    /// Ground truth of the scheduled incidents.
    pub fn truth(&self) -> Truth {
        let fleet = self.model.fleet();
        let mut incidents: Vec<TruthEntry> = self
            .model
            .incidents()
            .iter()
            .map(|inc| incidents::truth(fleet, inc))
            .chain(self.replicas.truth(fleet))
            .collect();
        incidents.sort_by(|a, b| (a.start, &a.id).cmp(&(b.start, &b.id)));
        Truth {
            incidents,
            simulation: crate::evaluate::SimulationSpan {
                start: self.config.start_ms,
                end: self.config.start_ms + self.steps * self.config.step_ms,
            },
        }
    }

    /// Steps done and total.
    pub fn progress(&self) -> (u64, u64) {
        (self.step, self.steps)
    }

    /// Produces the next step's points through `emit(name, labels, time, value)`; `false` once
    /// the duration is over.
    pub fn next_step(&mut self, mut emit: impl FnMut(&str, &[(&str, &str)], u64, f64)) -> bool {
        if self.step >= self.steps {
            return false;
        }
        let t = self.config.start_ms + self.step * self.config.step_ms;
        let labels = &self.labels;
        let replicas = &mut self.replicas;
        self.model.step(t, |svc, metric: Metric, value| {
            replicas.values(t, svc, metric, value, |r, v| {
                let [(hk, hv), (sk, sv)] = &labels[svc][r];
                emit(
                    METRICS[metric as usize],
                    &[(hk.as_str(), hv.as_str()), (sk.as_str(), sv.as_str())],
                    t,
                    v,
                );
            });
        });
        // The first step of each minute (every step when steps are a minute or longer). No
        // random draw: the other metrics are the same as without the gauge.
        if (self.step * self.config.step_ms) % LIMIT_EVERY_MS < self.config.step_ms.max(1) {
            for (svc, limit) in self.model.memory_limits().into_iter().enumerate() {
                for [(hk, hv), (sk, sv)] in &labels[svc] {
                    emit(
                        MEMORY_LIMIT_METRIC,
                        &[(hk.as_str(), hv.as_str()), (sk.as_str(), sv.as_str())],
                        t,
                        limit.round(),
                    );
                }
            }
        }
        self.step += 1;
        true
    }
}

/// The simulator as a source partition.
pub struct SimulatorPartition {
    sim: Simulation,
    ingest: PartitionIngest,
    pace: Pace,
    done: bool,
}

impl SimulatorPartition {
    /// A partition running `config`, accepting points through `ingest`.
    pub fn new(config: SimulatorConfig, mut ingest: PartitionIngest) -> Self {
        ingest.position = PositionKind::Simulator;
        let pace = Pace::new(config.speed);
        SimulatorPartition {
            sim: Simulation::new(config),
            ingest,
            pace,
            done: false,
        }
    }
}

impl Partition for SimulatorPartition {
    fn name(&self) -> &str {
        "simulator"
    }

    fn read(
        &mut self,
        max_records: usize,
        interner: &mut Interner,
        batch: &mut Batch,
    ) -> ReadStatus {
        if self.done {
            return ReadStatus::Done;
        }
        if !self.pace.may_read(self.ingest.clock.max_time) {
            return ReadStatus::Idle;
        }
        let per_step = self.sim.labels.len() * self.sim.replicas.count() * METRICS.len();
        let steps = (max_records / per_step.max(1)).max(1);
        let steps = if self.pace.is_paced() { 1 } else { steps };
        for _ in 0..steps {
            let step = self.sim.step;
            let ingest = &mut self.ingest;
            let more = self.sim.next_step(|name, labels, time, value| {
                ingest.accept(
                    interner,
                    batch,
                    RawPoint {
                        name,
                        labels,
                        time,
                        value,
                    },
                    b"",
                    step,
                    0,
                    None,
                );
            });
            if !more {
                self.done = true;
                break;
            }
        }
        if self.done && batch.is_empty() {
            ReadStatus::Done
        } else {
            ReadStatus::Progress
        }
    }

    fn ingest(&self) -> &PartitionIngest {
        &self.ingest
    }

    fn ingest_mut(&mut self) -> &mut PartitionIngest {
        &mut self.ingest
    }

    fn progress(&self) -> (u64, Option<u64>) {
        let (done, total) = self.sim.progress();
        (done, Some(total))
    }
}
