//! Sources: where points come from. A source is split into partitions (a file, standard input,
//! the simulator, a Kafka partition); each partition is read by one worker (partition `i` by
//! worker `i mod workers`), has its own event-time clock, and is read without blocking.

pub mod file;
pub mod pacing;
pub mod simulator;

use operators::series::EventTime;

use crate::ingest::{Batch, Interner, PartitionClock};

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

    /// The partition's clock (largest accepted event time).
    fn clock(&self) -> &PartitionClock;

    /// Allowed lateness of this partition (ms).
    fn lateness_ms(&self) -> u64;

    /// The partition's watermark: nothing earlier will be accepted from it.
    fn watermark(&self) -> Option<EventTime> {
        self.clock().watermark(self.lateness_ms())
    }

    /// Bytes or records read so far, for progress reporting: (done, total if known).
    fn progress(&self) -> (u64, Option<u64>) {
        (0, None)
    }
}
