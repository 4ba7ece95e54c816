//! The per-worker driver loop: read partitions, send batches at their partition's event time,
//! advance the input capabilities to the worker's low watermark, take checkpoints, and step the
//! dataflow.
//!
//! * Reading always picks the partition with the lowest watermark (one that has read nothing yet
//!   first), so partitions advance together and the frontier moves steadily.
//! * A batch is sent at the smallest event time in it, never above any point it carries. The
//!   inputs' capabilities sit at the worker's low watermark: the minimum over its partitions that
//!   are not idle. A worker without partitions follows the other workers of its process.
//! * With checkpoints on, before moving its capabilities past a multiple of the interval a worker
//!   asks the coordinator for the boundary `T` (see `crate::checkpoint`), stops there until all of
//!   its operators report progress `T`, hands in its states and its partitions' positions at `T`,
//!   and moves on once every worker has. Each partition records its position before the first
//!   batch it sends past a boundary.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use operators::models::topology::{Topology, TopologyEdge};
use operators::series::EventTime;
use timely::worker::Worker;

use super::dataflow::{Inputs, Probes, States};
use crate::checkpoint::{
    boundary_at_or_below, next_boundary, Coordinator, PartitionPosition, WorkerPart,
};
use crate::ingest::{Batch, Interner};
use crate::sources::{Partition, PartitionProvider, ReadStatus};

/// Records read per partition per turn when unpaced.
pub const BATCH_RECORDS: usize = 4096;

/// How many capability advances the readers may run ahead of delivery to the owning workers
/// before the driver stops reading and lets the dataflow catch up (bounds queued memory).
const MAX_LEAD_ADVANCES: usize = 32;

/// Counts from one worker's reading.
#[derive(Debug, Default, Clone)]
pub struct ReadStats {
    /// Points accepted.
    pub points: u64,
    /// Records refused (late ones included).
    pub dead_letters: u64,
    /// Late points (also dead letters).
    pub late: u64,
    /// Distinct series seen by this worker's readers.
    pub series: u64,
    /// Checkpoints this worker took part in.
    pub checkpoints: u64,
}

struct PartitionSlot {
    partition: Box<dyn Partition>,
    done: bool,
    idle_until: Option<Instant>,
    /// `(b, position)`: the position before the first batch sent at or after every boundary in
    /// (previous entry's b, b]; one entry covers a whole stretch the partition jumped over.
    boundaries: VecDeque<(EventTime, PartitionPosition)>,
    /// The largest boundary already covered.
    last_mark: EventTime,
}

/// Shared progress counters for the progress bar (worker-agnostic).
#[derive(Default)]
pub struct Progress {
    /// Units done (bytes or steps) summed over partitions.
    pub done: AtomicU64,
}

/// Wall-clock time between checks of the topology file for changes.
const TOPOLOGY_POLL: Duration = Duration::from_secs(2);

/// Feeds the topology into the dataflow on worker 0: its edges at start, then, when the watched
/// file changes and still parses, the difference as insertions and retractions. An invalid new
/// version is reported and the old one kept (as Vector does with config reloads).
pub struct TopologyFeed {
    edges: BTreeSet<TopologyEdge>,
    path: Option<PathBuf>,
    modified: Option<std::time::SystemTime>,
    checked: Instant,
    sent: bool,
}

impl TopologyFeed {
    /// The plan's topology, watching its file if it came from one.
    pub fn new(plan: &crate::config::Plan) -> Self {
        let path = plan.topology_path.clone();
        let modified = path
            .as_ref()
            .and_then(|p| std::fs::metadata(p).ok())
            .and_then(|m| m.modified().ok());
        TopologyFeed {
            edges: Topology::from_services(&plan.topology)
                .edges()
                .into_iter()
                .collect(),
            path,
            modified,
            checked: Instant::now(),
            sent: false,
        }
    }

    /// Updates to send now: every edge the first time, then the changes of a reloaded file.
    fn updates(&mut self) -> Vec<(TopologyEdge, isize)> {
        if !self.sent {
            self.sent = true;
            return self.edges.iter().map(|e| (e.clone(), 1)).collect();
        }
        if self.checked.elapsed() < TOPOLOGY_POLL {
            return Vec::new();
        }
        self.checked = Instant::now();
        let Some(path) = &self.path else {
            return Vec::new();
        };
        let modified = std::fs::metadata(path).ok().and_then(|m| m.modified().ok());
        if modified == self.modified {
            return Vec::new();
        }
        self.modified = modified;
        match crate::config::intel::topology_file(path) {
            Ok(services) => {
                let next: BTreeSet<TopologyEdge> = Topology::from_services(&services)
                    .edges()
                    .into_iter()
                    .collect();
                let mut out: Vec<(TopologyEdge, isize)> = self
                    .edges
                    .difference(&next)
                    .map(|e| (e.clone(), -1))
                    .collect();
                out.extend(next.difference(&self.edges).map(|e| (e.clone(), 1)));
                tracing::info!(
                    changes = out.len(),
                    path = %path.display(),
                    "Reloaded the topology."
                );
                self.edges = next;
                out
            }
            Err(e) => {
                tracing::warn!(error = %e, "The new topology is invalid; keeping the old one.");
                Vec::new()
            }
        }
    }
}

/// Each local worker's low watermark (`u64::MAX`: no partitions), so partition-less workers can
/// follow the others instead of holding the frontier back.
pub type SharedLows = Arc<Vec<AtomicU64>>;

/// Checkpointing, for one worker.
pub struct CheckpointCtx {
    /// The process's coordinator.
    pub coordinator: Arc<Coordinator>,
    /// Interval in event time (ms).
    pub interval_ms: u64,
}

/// Everything the loop needs besides the partitions.
pub struct DriveCtx<'a> {
    /// This worker's index among the process's workers.
    pub worker: usize,
    /// Probes.
    pub probes: &'a Probes,
    /// Operator states (progress and snapshots).
    pub states: &'a States,
    /// Progress-bar counters.
    pub progress: &'a Progress,
    /// Other workers' low watermarks.
    pub lows: SharedLows,
    /// Checkpointing, when on.
    pub checkpoint: Option<CheckpointCtx>,
    /// Partitions arriving while running (Kafka).
    pub provider: Option<Box<dyn PartitionProvider>>,
    /// The topology feed (worker 0 only).
    pub topology: Option<TopologyFeed>,
}

/// What the loop ended with.
pub enum Ending {
    /// Every source ended: the caller closes the inputs and lets the dataflow drain.
    Drained(Inputs),
    /// A live source was stopped: the caller abandons the dataflow without draining it, so
    /// windows are not closed early (the last checkpoint covers the restart).
    Stopped(Inputs),
}

/// The worker's low watermark over its partitions.
enum Low {
    /// All non-idle partitions have clocks: the minimum watermark.
    At(EventTime),
    /// A non-idle partition has read nothing yet: hold.
    Unknown,
    /// No partition, or all idle.
    Nothing,
}

fn low_watermark(slots: &[PartitionSlot]) -> Low {
    let mut low: Option<EventTime> = None;
    for s in slots.iter().filter(|s| !s.done && !s.partition.is_idle()) {
        match s.partition.watermark() {
            Some(w) => low = Some(low.map_or(w, |l| l.min(w))),
            None => return Low::Unknown,
        }
    }
    low.map_or(Low::Nothing, Low::At)
}

/// Runs the read loop until every partition of this worker is done (or a live source stops).
pub fn drive(
    worker: &mut Worker,
    mut inputs: Inputs,
    partitions: Vec<Box<dyn Partition>>,
    mut ctx: DriveCtx<'_>,
    start: EventTime,
) -> (ReadStats, Ending) {
    let interval = ctx.checkpoint.as_ref().map(|c| c.interval_ms);
    let slot = |partition: Box<dyn Partition>, cap: EventTime| PartitionSlot {
        partition,
        done: false,
        idle_until: None,
        boundaries: VecDeque::new(),
        last_mark: interval.map_or(EventTime::MAX, |i| boundary_at_or_below(cap, i)),
    };
    if start > *inputs.points.1.time() {
        downgrade(&mut inputs, start);
    }
    let mut slots: Vec<PartitionSlot> = partitions.into_iter().map(|p| slot(p, start)).collect();
    let mut interner = Interner::default();
    let mut batch = Batch::default();
    let mut stats = ReadStats::default();
    let mut advances: VecDeque<EventTime> = VecDeque::new();
    let mut reported: Vec<u64> = vec![0; slots.len()];
    let mut hold: Option<EventTime> = None;
    let mut handed_in: Option<EventTime> = None;

    let stopped = loop {
        if let Some(feed) = ctx.topology.as_mut() {
            let updates = feed.updates();
            if !updates.is_empty() {
                let cap = inputs.topology.1.clone();
                let t = *cap.time();
                let mut data: Vec<(TopologyEdge, EventTime, isize)> =
                    updates.into_iter().map(|(e, d)| (e, t, d)).collect();
                inputs
                    .topology
                    .0
                    .activate()
                    .session(&cap)
                    .give_container(&mut data);
            }
        }
        if let Some(provider) = ctx.provider.as_mut() {
            if provider.finished() {
                break true;
            }
            for p in provider.poll() {
                let cap = *inputs.points.1.time();
                slots.push(slot(p, cap));
                reported.push(0);
            }
        }
        let now = Instant::now();
        let pick = slots
            .iter()
            .enumerate()
            .filter(|(_, s)| !s.done && s.idle_until.is_none_or(|t| t <= now))
            .min_by_key(|(i, s)| (s.partition.watermark(), *i))
            .map(|(i, _)| i);
        match pick {
            Some(i) => {
                let slot = &mut slots[i];
                let watermark_before = slot.partition.watermark();
                let position_before = interval.and_then(|_| slot.partition.position());
                slot.partition.set_floor(*inputs.points.1.time());
                let status = slot
                    .partition
                    .read(BATCH_RECORDS, &mut interner, &mut batch);
                match status {
                    ReadStatus::Done => slot.done = true,
                    ReadStatus::Idle => slot.idle_until = Some(now + Duration::from_millis(2)),
                    ReadStatus::Progress => slot.idle_until = None,
                }
                let (done_units, _) = slot.partition.progress();
                ctx.progress
                    .done
                    .fetch_add(done_units.saturating_sub(reported[i]), Ordering::Relaxed);
                reported[i] = done_units;
                if !batch.is_empty() {
                    let floor = *inputs.points.1.time();
                    stats.late += batch.late;
                    stats.points += batch.points.len() as u64;
                    stats.dead_letters += batch.dead.len() as u64;
                    let time = batch_time(&batch, watermark_before, floor);
                    if let (Some(i), Some(pos)) = (interval, position_before) {
                        let b = boundary_at_or_below(time, i);
                        if b > slot.last_mark {
                            slot.boundaries.push_back((b, pos));
                            slot.last_mark = b;
                        }
                    }
                    send(&mut inputs, &mut batch, watermark_before, floor);
                }
                batch.clear();
            }
            None => {
                if ctx.provider.is_none() && slots.iter().all(|s| s.done) {
                    break false;
                }
                // Everyone is paced, idle or waiting: let the dataflow work, then look again.
                worker.step_or_park(Some(Duration::from_millis(1)));
            }
        }

        // Advance the capabilities: to the low watermark, stopping at checkpoint boundaries.
        let low = low_watermark(&slots);
        ctx.lows[ctx.worker].store(
            match low {
                Low::At(t) => t,
                Low::Unknown => *inputs.points.1.time(),
                Low::Nothing => EventTime::MAX,
            },
            Ordering::Relaxed,
        );
        let complete = ctx.provider.as_ref().is_none_or(|p| p.complete());
        let target = match low {
            _ if !complete => None,
            Low::At(t) => Some(t),
            Low::Unknown => None,
            // Follow the process's other workers: they hold the frontier where it must be.
            Low::Nothing if slots.iter().all(|s| s.done || s.partition.is_idle()) => {
                let others = ctx
                    .lows
                    .iter()
                    .enumerate()
                    .filter(|(w, _)| *w != ctx.worker)
                    .map(|(_, l)| l.load(Ordering::Relaxed))
                    .min()
                    .unwrap_or(EventTime::MAX);
                let settled = ctx.provider.as_ref().is_some_and(|p| p.settled());
                (others != EventTime::MAX && settled).then_some(others)
            }
            Low::Nothing => None,
        };
        if let (Some(mut target), None) = (target, hold) {
            let cap = *inputs.points.1.time();
            if let Some(cp) = ctx.checkpoint.as_ref() {
                if target >= next_boundary(cap, cp.interval_ms) {
                    let boundary = cp
                        .coordinator
                        .propose(boundary_at_or_below(target, cp.interval_ms));
                    if handed_in == Some(boundary) {
                        // Handed in; the others have not yet: stay until the round completes.
                        target = cap;
                    } else if target >= boundary {
                        target = boundary;
                        hold = Some(boundary);
                    }
                }
            }
            if target > cap {
                downgrade(&mut inputs, target);
                advances.push_back(target);
            }
        }
        worker.step();

        // Hand in the checkpoint once every local operator has applied all input before it.
        if let (Some(t), Some(cp)) = (hold, ctx.checkpoint.as_ref()) {
            if ctx.states.progress() >= t {
                let mut positions = BTreeMap::new();
                for s in &mut slots {
                    let key = s.partition.key();
                    while s.boundaries.front().is_some_and(|(b, _)| *b < t) {
                        s.boundaries.pop_front();
                    }
                    // The entry covering t, else the partition has sent nothing past t yet.
                    let pos = match s.boundaries.front() {
                        Some((_, p)) => Some(p.clone()),
                        None => s.partition.position(),
                    };
                    if s.boundaries.front().is_some_and(|(b, _)| *b == t) {
                        s.boundaries.pop_front();
                    }
                    s.last_mark = s.last_mark.max(t);
                    if let (false, Some(pos)) = (key.is_empty(), pos) {
                        positions.insert(key, pos);
                    }
                }
                let part = WorkerPart {
                    worker: ctx.worker,
                    state: ctx.states.snapshot(),
                    partitions: positions,
                };
                if let Err(e) = cp.coordinator.hand_in(t, part) {
                    tracing::error!(error = %e, "Writing the checkpoint failed; the previous one stays in use.");
                }
                stats.checkpoints += 1;
                handed_in = Some(t);
                hold = None;
            }
        }

        // Backpressure: keep at most MAX_LEAD_ADVANCES undelivered advances in flight. Sources
        // are simply not read meanwhile (a Kafka consumer's prefetch queue is bounded).
        if advances.len() > MAX_LEAD_ADVANCES {
            while advances.len() > MAX_LEAD_ADVANCES {
                if let Some(t) = advances.pop_front() {
                    while ctx.probes.exchanged.less_than(&t) {
                        worker.step();
                    }
                }
            }
        }
    };
    stats.series = interner.len() as u64;
    let ending = if stopped {
        Ending::Stopped(inputs)
    } else {
        Ending::Drained(inputs)
    };
    (stats, ending)
}

fn downgrade(inputs: &mut Inputs, to: EventTime) {
    inputs.points.1.downgrade(&to);
    inputs.keys.1.downgrade(&to);
    inputs.dead.1.downgrade(&to);
    inputs.topology.1.downgrade(&to);
}

/// The timely time of a batch: its smallest point time, else (dead letters only) the partition's
/// watermark before it; never below `floor`.
fn batch_time(batch: &Batch, watermark_before: Option<EventTime>, floor: EventTime) -> EventTime {
    batch
        .min_time
        .or(watermark_before)
        .unwrap_or(floor)
        .max(floor)
}

/// Sends a batch: points and keys at the batch's smallest event time; dead letters at the
/// partition's watermark before the batch (deterministic per partition), never below `floor`.
fn send(
    inputs: &mut Inputs,
    batch: &mut Batch,
    watermark_before: Option<EventTime>,
    floor: EventTime,
) {
    if let Some(t) = batch.min_time {
        let t = t.max(floor);
        if !batch.keys.is_empty() {
            let cap = inputs.keys.1.delayed(&t);
            inputs
                .keys
                .0
                .activate()
                .session(&cap)
                .give_container(&mut batch.keys);
        }
        let cap = inputs.points.1.delayed(&t);
        inputs
            .points
            .0
            .activate()
            .session(&cap)
            .give_container(&mut batch.points);
    }
    if !batch.dead.is_empty() {
        let t = watermark_before
            .or(batch.min_time)
            .unwrap_or(floor)
            .max(floor);
        let cap = inputs.dead.1.delayed(&t);
        inputs
            .dead
            .0
            .activate()
            .session(&cap)
            .give_container(&mut batch.dead);
    }
}
