//! The engine: starts the timely workers, builds the dataflow on each, hands each worker its
//! partitions, drives them to the end, and reports what happened.

pub mod correlate_only;
pub mod dataflow;
pub mod driver;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::config::{Plan, SourcePlan};
use crate::ingest::{PartitionClock, PartitionIngest, PositionKind};
use crate::sinks::Outputs;
use crate::sources::file::FilePartition;
use crate::sources::simulator::SimulatorPartition;
use crate::sources::Partition;
use dataflow::Written;
use driver::{drive, Progress, ReadStats};

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
}

/// How to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Timely configuration (workers, processes).
    pub timely: timely::Config,
    /// Show a progress bar (on a terminal, for replays).
    pub progress_bar: bool,
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
}

struct WorkerResult {
    read: ReadStats,
    correlation_entries: usize,
    written: Written,
    window_bytes: f64,
    detector_bytes: f64,
    state_series: usize,
}

/// Opens the partitions of `plan` that worker `index` of `peers` reads.
fn partitions_for(
    plan: &Plan,
    index: usize,
    peers: usize,
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
                let part = FilePartition::open(
                    path,
                    *format,
                    *precision,
                    ingest(name),
                    entity_label,
                    *speed,
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
        }
    }
    Some(total)
}

/// Runs `plan` to completion (sources that end) writing to `outputs`.
pub fn run(plan: Arc<Plan>, outputs: Outputs, opts: RunOptions) -> Result<RunReport, EngineError> {
    let started = Instant::now();
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

    let worker_outputs = outputs.clone();
    let worker_plan = plan.clone();
    let worker_progress = progress.clone();
    let guards = timely::execute(
        opts.timely.clone(),
        move |worker| -> Result<WorkerResult, EngineError> {
            let index = worker.index();
            let peers = worker.peers();
            let outputs = if index == 0 {
                worker_outputs.clone()
            } else {
                Outputs::default()
            };
            let written = Rc::new(RefCell::new(Written::default()));
            let (inputs, states, probes) = worker
                .dataflow(|scope| dataflow::build(scope, &worker_plan, outputs, written.clone()));
            let partitions = partitions_for(&worker_plan, index, peers)?;
            let topology = (index == 0).then(|| driver::TopologyFeed::new(&worker_plan));
            let read = drive(
                worker,
                inputs,
                &probes,
                partitions,
                &worker_progress,
                topology,
            );
            while worker.step_or_park(Some(Duration::from_millis(1))) {}
            let windows = states.windows.borrow();
            let detect = states.detect.borrow();
            let result = WorkerResult {
                read,
                correlation_entries: states.correlate.borrow().state_len(),
                written: written.borrow().clone(),
                window_bytes: windows.bytes_per_series(),
                detector_bytes: detect.bytes_per_series(),
                state_series: windows.series_count(),
            };
            Ok(result)
        },
    )
    .map_err(EngineError::Start)?;

    let mut report = RunReport {
        workers: 0,
        ..RunReport::default()
    };
    let mut weighted_window = 0.0;
    let mut weighted_detect = 0.0;
    let mut state_series = 0usize;
    for result in guards.join() {
        let r = result.map_err(EngineError::Worker)??;
        report.workers += 1;
        report.points += r.read.points;
        report.dead_letters += r.read.dead_letters;
        report.late_points += r.read.late;
        report.series = report.series.max(r.read.series);
        report.feature_records += r.written.features;
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
    if state_series > 0 {
        report.series = state_series as u64;
        report.window_bytes_per_series = weighted_window / state_series as f64;
        report.detector_bytes_per_series = weighted_detect / state_series as f64;
    }
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    if let Some(t) = ticker {
        let _ = t.join();
    }
    outputs.flush_all()?;
    report.elapsed_secs = started.elapsed().as_secs_f64();
    report.points_per_sec = report.points as f64 / report.elapsed_secs.max(1e-9);
    Ok(report)
}
