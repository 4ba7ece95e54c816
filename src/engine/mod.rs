//! The engine: starts the timely workers, builds the dataflow on each, hands each worker its
//! partitions, restores and takes checkpoints, drives the sources, and reports what happened.

pub mod correlate_only;
pub mod dataflow;
pub mod driver;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::checkpoint::{self, Checkpoint, Coordinator, Finalize, PartitionPosition};
use crate::config::{Plan, SourcePlan};
use crate::ingest::{PartitionClock, PartitionIngest, PositionKind};
use crate::sinks::Outputs;
use crate::sources::file::FilePartition;
use crate::sources::kafka::{KafkaSource, Membership};
use crate::sources::simulator::SimulatorPartition;
use crate::sources::{Partition, PartitionProvider};
use dataflow::Written;
use driver::{drive, CheckpointCtx, DriveCtx, Ending, Progress, ReadStats, SharedLows};

/// Errors that stop a run.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// Timely could not start (bad cluster flags, network).
    #[error("cannot start the workers: {0}")]
    Start(String),
    /// A worker panicked (a bug: input never causes one).
    #[error("a worker failed: {0}")]
    Worker(String),
    /// A source could not be opened.
    #[error("cannot open source {source_name}: {error}")]
    Source {
        /// Source name.
        source_name: String,
        /// What went wrong.
        error: String,
    },
    /// Writing output failed.
    #[error("writing output failed: {0}")]
    Output(#[from] std::io::Error),
    /// Checkpoints cannot be read or are unusable here.
    #[error("{0}")]
    Checkpoint(String),
}

/// How to run.
#[derive(Clone)]
pub struct RunOptions {
    /// Timely configuration (workers, processes).
    pub timely: timely::Config,
    /// Show a progress bar (on a terminal, for replays).
    pub progress_bar: bool,
    /// Set to stop live sources (SIGINT/SIGTERM); finite sources end by themselves.
    pub stop: Arc<AtomicBool>,
}

/// What a run did, summed over workers.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RunReport {
    /// Points accepted.
    pub points: u64,
    /// Records refused.
    pub dead_letters: u64,
    /// Late points (included in `dead_letters`).
    pub late_points: u64,
    /// Distinct series.
    pub series: u64,
    /// Alert events by kind.
    pub alerts: BTreeMap<String, u64>,
    /// Incident events by kind.
    pub incidents: BTreeMap<String, u64>,
    /// Entries held by the correlation stage at the end (open alerts and incidents).
    pub correlation_state_entries: u64,
    /// Feature records written.
    pub feature_records: u64,
    /// Recommendation records written (new or changed recommendations).
    pub recommendations: u64,
    /// Forecast records written.
    pub forecast_records: u64,
    /// Wall-clock seconds.
    pub elapsed_secs: f64,
    /// Points per second of wall-clock time.
    pub points_per_sec: f64,
    /// Approximate bytes of window state per series (at the end of the run).
    pub window_bytes_per_series: f64,
    /// Approximate bytes of detector state per series (at the end of the run).
    pub detector_bytes_per_series: f64,
    /// Workers used.
    pub workers: usize,
    /// Event time of the checkpoint the run resumed from, if any.
    pub resumed_from: Option<u64>,
    /// Event time of the last checkpoint written, if any.
    pub last_checkpoint: Option<u64>,
}

struct WorkerResult {
    read: ReadStats,
    correlation_entries: usize,
    written: Written,
    window_bytes: f64,
    detector_bytes: f64,
    state_series: usize,
}

/// Opens the finite partitions of `plan` that worker `index` of `peers` reads.
fn partitions_for(
    plan: &Plan,
    index: usize,
    peers: usize,
    restore: &BTreeMap<String, PartitionPosition>,
) -> Result<Vec<Box<dyn Partition>>, EngineError> {
    let mut out: Vec<Box<dyn Partition>> = Vec::new();
    for (i, source) in plan.sources.iter().enumerate() {
        if i % peers != index {
            continue;
        }
        let ingest = |name: &str| PartitionIngest {
            source: Arc::from(name),
            position: PositionKind::Simulator,
            clock: PartitionClock::default(),
            lateness_ms: plan.engine.lateness_ms,
            limits: plan.engine.limits,
            floor: 0,
        };
        match source {
            SourcePlan::File {
                name,
                path,
                format,
                precision,
                speed,
            } => {
                let entity_label = plan.engine.entity_labels[0].as_str();
                let start = restore.get(&format!("file:{}", path.display()));
                let part = FilePartition::open(
                    path,
                    *format,
                    *precision,
                    ingest(name),
                    entity_label,
                    *speed,
                    start,
                )
                .map_err(|e| EngineError::Source {
                    source_name: name.clone(),
                    error: format!("{}: {e}", path.display()),
                })?;
                out.push(Box::new(part));
            }
            SourcePlan::Simulator { name, config } => {
                out.push(Box::new(SimulatorPartition::new(
                    config.clone(),
                    ingest(name),
                )));
            }
            // Kafka partitions arrive through the provider.
            SourcePlan::Kafka(_) => {}
        }
    }
    Ok(out)
}

/// Total units (bytes, steps) of all partitions, for the progress bar; `None` if unknown.
fn progress_total(plan: &Plan) -> Option<u64> {
    let mut total = 0;
    for s in &plan.sources {
        match s {
            SourcePlan::File { path, .. } => total += std::fs::metadata(path).ok()?.len(),
            SourcePlan::Simulator { config, .. } => {
                total += config.duration_ms / config.step_ms.max(1)
            }
            SourcePlan::Kafka(_) => return None,
        }
    }
    Some(total)
}

/// Flushes outputs before a checkpoint is written and commits source offsets after.
struct EngineFinalize {
    outputs: Outputs,
    kafka: Option<Arc<KafkaSource>>,
}

impl Finalize for EngineFinalize {
    fn flush_outputs(&self) -> std::io::Result<()> {
        self.outputs.flush_all()
    }

    fn commit(&self, cp: &Checkpoint) {
        if let Some(k) = &self.kafka {
            k.commit(&cp.partitions);
        }
    }
}

/// Runs `plan` writing to `outputs`: until every finite source ends, or until `opts.stop` is
/// set for live (Kafka) sources.
pub fn run(plan: Arc<Plan>, outputs: Outputs, opts: RunOptions) -> Result<RunReport, EngineError> {
    let started = Instant::now();
    // Recommendation rules that do not compile are skipped; the others run (`validate` fails on
    // them instead).
    for rejected in &plan.optimize.rejected {
        tracing::warn!(rule = %rejected, "Recommendation rule skipped: it does not compile.");
    }
    let workers = match &opts.timely.communication {
        timely::CommunicationConfig::Thread => 1,
        timely::CommunicationConfig::Process(n) | timely::CommunicationConfig::ProcessBinary(n) => {
            *n
        }
        timely::CommunicationConfig::Cluster { threads, .. } => {
            if plan.engine.checkpoint_dir.is_some() {
                return Err(EngineError::Checkpoint(
                    "checkpoints need a single process (state files are local); drop --checkpoint-dir or run one process".into(),
                ));
            }
            *threads
        }
    };

    // Resume from the newest checkpoint, if any.
    let restored: Option<Checkpoint> = match &plan.engine.checkpoint_dir {
        Some(dir) => checkpoint::load_latest(dir, workers)
            .map_err(|e| EngineError::Checkpoint(e.to_string()))?,
        None => None,
    };
    let restore_positions: BTreeMap<String, PartitionPosition> = restored
        .as_ref()
        .map(|c| c.partitions.clone())
        .unwrap_or_default();
    if let Some(cp) = &restored {
        tracing::info!(
            time = cp.time,
            partitions = cp.partitions.len(),
            "Resuming from a checkpoint."
        );
    }

    // Live sources: one consumer per process.
    let mut kafka: Option<Arc<KafkaSource>> = None;
    for s in &plan.sources {
        if let SourcePlan::Kafka(spec) = s {
            if kafka.is_some() {
                return Err(EngineError::Source {
                    source_name: spec.name.clone(),
                    error: "only one kafka source per run (list several topics in it instead)"
                        .into(),
                });
            }
            let membership = match &opts.timely.communication {
                timely::CommunicationConfig::Cluster {
                    process, addresses, ..
                } => Membership {
                    process: *process,
                    processes: addresses.len(),
                },
                _ => Membership {
                    process: 0,
                    processes: 1,
                },
            };
            let source = KafkaSource::start(
                spec.clone(),
                restore_positions.clone(),
                opts.stop.clone(),
                membership,
            )
            .map_err(|e| EngineError::Source {
                source_name: spec.name.clone(),
                error: e.to_string(),
            })?;
            kafka = Some(source);
        }
    }

    let coordinator = plan.engine.checkpoint_dir.as_ref().map(|dir| {
        Arc::new(Coordinator::new(
            dir.clone(),
            workers,
            Arc::new(EngineFinalize {
                outputs: outputs.clone(),
                kafka: kafka.clone(),
            }),
        ))
    });

    let progress = Arc::new(Progress::default());
    let bar = opts
        .progress_bar
        .then(|| progress_total(&plan))
        .flatten()
        .map(|total| {
            let bar = indicatif::ProgressBar::new(total);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {wide_bar} {percent}% (eta {eta})",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            bar
        });
    let ticker = bar.clone().map(|bar| {
        let progress = progress.clone();
        std::thread::spawn(move || {
            while !bar.is_finished() {
                bar.set_position(progress.done.load(std::sync::atomic::Ordering::Relaxed));
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    });

    let lows: SharedLows = Arc::new((0..workers).map(|_| AtomicU64::new(0)).collect());
    let worker_outputs = outputs.clone();
    let worker_plan = plan.clone();
    let worker_progress = progress.clone();
    let worker_restored = Arc::new(restored.clone());
    let worker_restore_positions = Arc::new(restore_positions);
    let worker_kafka = kafka.clone();
    let worker_coordinator = coordinator.clone();
    let guards = timely::execute(
        opts.timely.clone(),
        move |worker| -> Result<WorkerResult, EngineError> {
            let index = worker.index();
            let peers = worker.peers();
            let local = index % workers;
            let outputs = if index == 0 {
                worker_outputs.clone()
            } else {
                Outputs::default()
            };
            let written = Rc::new(RefCell::new(Written::default()));
            let dataflow_index = worker.next_dataflow_index();
            let (inputs, states, probes) = worker
                .dataflow(|scope| dataflow::build(scope, &worker_plan, outputs, written.clone()));
            let mut start = 0;
            if let Some(cp) = worker_restored.as_ref() {
                let state = cp.states.get(local).cloned().unwrap_or_default();
                states.restore(state).map_err(|e| {
                    EngineError::Checkpoint(format!(
                        "cannot resume: {e}; use a fresh checkpoint directory"
                    ))
                })?;
                start = cp.time;
            }
            let partitions = partitions_for(&worker_plan, index, peers, &worker_restore_positions)?;
            let provider: Option<Box<dyn PartitionProvider>> = worker_kafka.as_ref().map(|k| {
                Box::new(k.provider(
                    local,
                    workers,
                    worker_plan.engine.lateness_ms,
                    worker_plan.engine.limits,
                    worker_plan.engine.entity_labels[0].clone(),
                )) as Box<dyn PartitionProvider>
            });
            let ctx = DriveCtx {
                worker: local,
                probes: &probes,
                states: &states,
                progress: &worker_progress,
                lows: lows.clone(),
                checkpoint: worker_coordinator.as_ref().map(|c| CheckpointCtx {
                    coordinator: c.clone(),
                    interval_ms: worker_plan.engine.checkpoint_interval_ms,
                }),
                provider,
                topology: (index == 0).then(|| driver::TopologyFeed::new(&worker_plan)),
            };
            let (read, ending) = drive(worker, inputs, partitions, ctx, start);
            match ending {
                Ending::Drained(inputs) => {
                    // Closing the inputs lets every window close and every alert resolve.
                    drop(inputs);
                    while worker.step_or_park(Some(Duration::from_millis(1))) {}
                }
                Ending::Stopped(inputs) => {
                    // A stopped live run must not close its windows early: abandon the dataflow;
                    // the last checkpoint and the deterministic ids cover the restart.
                    drop(inputs);
                    worker.drop_dataflow(dataflow_index);
                }
            }
            let windows = states.windows.borrow();
            let detect = states.detect.borrow();
            let written = written.borrow().clone();
            let correlation_entries = states.correlate.borrow().state_len();
            Ok(WorkerResult {
                read,
                correlation_entries,
                written,
                window_bytes: windows.bytes_per_series(),
                detector_bytes: detect.bytes_per_series(),
                state_series: windows.series_count(),
            })
        },
    )
    .map_err(EngineError::Start)?;

    let mut report = RunReport {
        resumed_from: restored.as_ref().map(|c| c.time),
        ..RunReport::default()
    };
    let mut weighted_window = 0.0;
    let mut weighted_detect = 0.0;
    let mut state_series = 0usize;
    let mut first_error = None;
    for result in guards.join() {
        let r = match result.map_err(EngineError::Worker).and_then(|r| r) {
            Ok(r) => r,
            Err(e) => {
                first_error.get_or_insert(e);
                continue;
            }
        };
        report.workers += 1;
        report.points += r.read.points;
        report.dead_letters += r.read.dead_letters;
        report.late_points += r.read.late;
        report.series = report.series.max(r.read.series);
        report.feature_records += r.written.features;
        report.recommendations += r.written.recommendations;
        report.forecast_records += r.written.forecasts;
        report.correlation_state_entries += r.correlation_entries as u64;
        for (i, name) in ["opened", "updated", "escalated", "resolved"]
            .iter()
            .enumerate()
        {
            *report.alerts.entry(name.to_string()).or_default() += r.written.alerts[i];
            *report.incidents.entry(name.to_string()).or_default() += r.written.incidents[i];
        }
        weighted_window += r.window_bytes * r.state_series as f64;
        weighted_detect += r.detector_bytes * r.state_series as f64;
        state_series += r.state_series;
    }
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    if let Some(t) = ticker {
        let _ = t.join();
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    if state_series > 0 {
        report.series = state_series as u64;
        report.window_bytes_per_series = weighted_window / state_series as f64;
        report.detector_bytes_per_series = weighted_detect / state_series as f64;
    }
    outputs.flush_all()?;
    report.last_checkpoint = coordinator.as_ref().and_then(|c| c.last_written());
    report.elapsed_secs = started.elapsed().as_secs_f64();
    report.points_per_sec = report.points as f64 / report.elapsed_secs.max(1e-9);
    Ok(report)
}
