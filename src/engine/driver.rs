//! The per-worker driver loop: read partitions, send batches at their partition's event time,
//! advance the input capabilities to the worker's low watermark, and step the dataflow.
//!
//! Reading always picks the partition with the lowest watermark (one that has read nothing yet
//! first), so partitions advance together and the frontier moves steadily. A point is sent at
//! timely time = the smallest event time of its batch, never above any point it carries, and the
//! inputs' capabilities sit at the minimum watermark of the worker's partitions.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use std::collections::BTreeSet;
use std::path::PathBuf;

use operators::models::topology::{Topology, TopologyEdge};
use operators::series::EventTime;
use timely::worker::Worker;

use super::dataflow::{Inputs, Probes};
use crate::ingest::{Batch, Interner};
use crate::sources::{Partition, ReadStatus};

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
}

struct PartitionSlot {
    partition: Box<dyn Partition>,
    done: bool,
    idle_until: Option<Instant>,
}

/// Shared progress counters for the progress bar (worker-agnostic).
#[derive(Default)]
pub struct Progress {
    /// Units done (bytes or steps) summed over partitions.
    pub done: std::sync::atomic::AtomicU64,
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

/// Runs the read loop until every partition of this worker is done, then closes the inputs.
pub fn drive(
    worker: &mut Worker,
    mut inputs: Inputs,
    probes: &Probes,
    partitions: Vec<Box<dyn Partition>>,
    progress: &Progress,
    mut topology: Option<TopologyFeed>,
) -> ReadStats {
    let mut slots: Vec<PartitionSlot> = partitions
        .into_iter()
        .map(|partition| PartitionSlot {
            partition,
            done: false,
            idle_until: None,
        })
        .collect();
    let mut interner = Interner::default();
    let mut batch = Batch::default();
    let mut stats = ReadStats::default();
    let mut advances: VecDeque<EventTime> = VecDeque::new();
    let mut reported: Vec<u64> = vec![0; slots.len()];

    loop {
        if let Some(feed) = topology.as_mut() {
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
        let now = Instant::now();
        let pick = slots
            .iter()
            .enumerate()
            .filter(|(_, s)| !s.done && s.idle_until.is_none_or(|t| t <= now))
            .min_by_key(|(i, s)| (s.partition.watermark(), *i))
            .map(|(i, _)| i);
        let Some(i) = pick else {
            if slots.iter().all(|s| s.done) {
                break;
            }
            // Everyone is paced or waiting: let the dataflow work, then look again shortly.
            worker.step_or_park(Some(Duration::from_millis(1)));
            continue;
        };

        let slot = &mut slots[i];
        let watermark_before = slot.partition.watermark();
        let status = slot
            .partition
            .read(BATCH_RECORDS, &mut interner, &mut batch);
        match status {
            ReadStatus::Done => slot.done = true,
            ReadStatus::Idle => slot.idle_until = Some(now + Duration::from_millis(2)),
            ReadStatus::Progress => slot.idle_until = None,
        }
        let (done_units, _) = slot.partition.progress();
        progress.done.fetch_add(
            done_units.saturating_sub(reported[i]),
            std::sync::atomic::Ordering::Relaxed,
        );
        reported[i] = done_units;

        if !batch.is_empty() {
            stats.points += batch.points.len() as u64;
            stats.dead_letters += batch.dead.len() as u64;
            stats.late += batch.late;
            let floor = *inputs.points.1.time();
            send(&mut inputs, &mut batch, watermark_before, floor);
        }
        batch.clear();

        // The worker's low watermark: a partition that has read nothing yet holds it back.
        let mut low: Option<EventTime> = Some(EventTime::MAX);
        for s in slots.iter().filter(|s| !s.done) {
            low = match (low, s.partition.watermark()) {
                (Some(l), Some(w)) => Some(l.min(w)),
                _ => None,
            };
        }
        if let Some(low) = low.filter(|l| *l != EventTime::MAX) {
            if low > *inputs.points.1.time() {
                inputs.points.1.downgrade(&low);
                inputs.keys.1.downgrade(&low);
                inputs.dead.1.downgrade(&low);
                inputs.topology.1.downgrade(&low);
                advances.push_back(low);
            }
        }
        worker.step();
        // Backpressure: keep at most MAX_LEAD_ADVANCES undelivered advances in flight.
        while advances.len() > MAX_LEAD_ADVANCES {
            if let Some(t) = advances.pop_front() {
                while probes.exchanged.less_than(&t) {
                    worker.step();
                }
            }
        }
    }
    stats.series = interner.len() as u64;
    // Dropping the capabilities closes the inputs; the caller steps the dataflow to completion.
    drop(inputs);
    stats
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
