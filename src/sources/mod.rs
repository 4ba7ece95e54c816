//! Sources: where points come from. A source is split into partitions (a file, standard input,
//! the simulator, a Kafka partition); each partition is read by one worker (partition `i` by
//! worker `i mod workers`), has its own event-time clock, and is read without blocking.

pub mod broker_health;
pub mod file;
pub mod kafka;
pub mod pacing;
pub mod simulator;

use operators::series::EventTime;

use crate::checkpoint::PartitionPosition;
use crate::ingest::{Batch, Interner, PartitionIngest};

/// What a read produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadStatus {
    /// Records were read (the batch may still be empty if all were blank lines).
    Progress,
    /// Nothing available right now (paced, or waiting on a broker); try again later.
    Idle,
    /// The partition has ended.
    Done,
}

/// One readable partition of a source.
pub trait Partition {
    /// Human-readable name for logs (`file:metrics.jsonl`, `simulator`, ...).
    fn name(&self) -> &str;

    /// Reads up to `max_records` records into `batch`, interning new series in `interner`.
    fn read(
        &mut self,
        max_records: usize,
        interner: &mut Interner,
        batch: &mut Batch,
    ) -> ReadStatus;

    /// The partition's ingest state: its event-time clock, lateness and floor.
    fn ingest(&self) -> &PartitionIngest;

    /// The same, to change.
    fn ingest_mut(&mut self) -> &mut PartitionIngest;

    /// The partition's watermark: nothing earlier will be accepted from it.
    fn watermark(&self) -> Option<EventTime> {
        let ingest = self.ingest();
        ingest.clock.watermark(ingest.lateness_ms)
    }

    /// Bytes or records read so far, for progress reporting: (done, total if known).
    fn progress(&self) -> (u64, Option<u64>) {
        (0, None)
    }

    /// Whether the partition has had no data for a while and should not hold the watermark back
    /// (live sources only; a file is never idle).
    fn is_idle(&self) -> bool {
        false
    }

    /// Stable identity in checkpoints (`file:<path>`, `kafka:<topic>/<partition>`); empty for
    /// partitions that cannot be resumed (the simulator restarts from its seed).
    fn key(&self) -> String {
        String::new()
    }

    /// Where the next read starts, with the clock at that point; `None` if unknown yet.
    fn position(&self) -> Option<PartitionPosition> {
        None
    }

    /// Tells the partition the worker's frontier: points before it are late (see
    /// `PartitionIngest::floor`).
    fn set_floor(&mut self, floor: EventTime) {
        self.ingest_mut().floor = floor;
    }
}

/// Partitions that appear while the engine runs (Kafka assignments).
pub trait PartitionProvider {
    /// Partitions newly available to this worker.
    fn poll(&mut self) -> Vec<Box<dyn Partition>>;
    /// Whether no more partitions will come and the current ones should end (shutdown).
    fn finished(&self) -> bool;
    /// Whether the partitions are handed out: a worker without partitions then owns none and may
    /// follow the other workers' frontier (before that, partitions may still be on their way).
    fn settled(&self) -> bool;
    /// Whether this process holds all the partitions it should; until then no worker may move its
    /// frontier (the missing partitions' data would become late).
    fn complete(&self) -> bool;
}
