//! Checkpoints: the engine's state at an event-time boundary `T` together with the source
//! positions it covers, written atomically to a local directory, so a restart resumes exactly
//! where the last checkpoint left off instead of re-learning from scratch.
//!
//! The protocol (see `docs/design.md`, "Checkpoints"): checkpoints fall on multiples of the
//! interval in event time. A worker about to move its input frontier past a multiple asks the
//! [`Coordinator`] for the boundary: the first worker to ask proposes the largest multiple below
//! its target (so empty stretches of event time, such as the decades before the first point, are
//! skipped), and every worker gets that same boundary until it is complete — no worker's frontier
//! is ever beyond the pending boundary. Each worker holds its input capability at `T` until every one of its
//! operators reports progress `T` — at that moment each operator's state reflects exactly the input
//! at times before `T` (the stash rule) — then serializes its operators' states and hands them to
//! the process's [`Coordinator`]. The last worker to hand in flushes the sinks (waiting for broker
//! acknowledgements), writes the file (temp file, fsync, rename, fsync of the directory), and only
//! then lets sources commit their offsets. Output produced after `T` and before a crash is produced
//! again after the restart with the same ids, which is what makes the delivery at-least-once with
//! idempotent output.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};

use operators::series::EventTime;
use serde::{Deserialize, Serialize};

use crate::ingest::PartitionClock;

/// Identifies checkpoint files; bumped when the layout changes incompatibly.
pub const FORMAT_VERSION: u32 = 1;
const FORMAT_NAME: &str = "harbinger-checkpoint";
/// How many completed checkpoints to keep (older ones are deleted).
const KEEP: usize = 3;

/// Errors reading or writing checkpoints.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The directory or a file could not be read or written.
    #[error("checkpoint I/O on {path}: {error}")]
    Io {
        /// File or directory.
        path: PathBuf,
        /// The I/O error.
        error: std::io::Error,
    },
    /// A file exists but is not a checkpoint this version can read.
    #[error("{path} is not a usable checkpoint: {reason}")]
    Invalid {
        /// File.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The checkpoint was taken with another number of workers.
    #[error(
        "the checkpoint in {path} was taken with {found} worker(s); restart with --workers {found} \
         (state is partitioned by worker) or use a fresh checkpoint directory"
    )]
    WorkerMismatch {
        /// File.
        path: PathBuf,
        /// Workers recorded in the checkpoint.
        found: usize,
    },
}

/// Where one source partition stood at the boundary: the next record to read and its clock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionPosition {
    /// Next offset to read (Kafka offset, or byte offset of the next line in a file).
    pub offset: u64,
    /// For files: number of lines already read (for dead-letter positions).
    #[serde(default)]
    pub line: u64,
    /// The partition's event-time clock at that point.
    pub clock: PartitionClock,
}

/// A complete checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Always `harbinger-checkpoint`.
    pub format: String,
    /// [`FORMAT_VERSION`] of the writer.
    pub version: u32,
    /// The event-time boundary: state covers all input before it.
    pub time: EventTime,
    /// Workers that took it (states are partitioned by worker).
    pub workers: usize,
    /// Source partitions' positions, by partition key (`kafka:<topic>/<partition>`, `file:<path>`).
    pub partitions: BTreeMap<String, PartitionPosition>,
    /// Each worker's operator states, by worker index.
    pub states: Vec<serde_json::Value>,
}

/// Reads the newest usable checkpoint in `dir` (a damaged newest one falls back to an older one,
/// with a warning). `Ok(None)` when the directory holds none.
pub fn load_latest(dir: &Path, workers: usize) -> Result<Option<Checkpoint>, CheckpointError> {
    let mut files = list(dir)?;
    while let Some((_, path)) = files.pop() {
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(error) => return Err(CheckpointError::Io { path, error }),
        };
        let parsed: Result<Checkpoint, String> =
            serde_json::from_str(&text).map_err(|e| e.to_string());
        let cp = match parsed {
            Ok(cp) if cp.format == FORMAT_NAME && cp.version == FORMAT_VERSION => cp,
            Ok(cp) => {
                return Err(CheckpointError::Invalid {
                    path,
                    reason: format!(
                        "format {} version {} (this build reads {FORMAT_NAME} version {FORMAT_VERSION})",
                        cp.format, cp.version
                    ),
                })
            }
            Err(reason) => {
                tracing::warn!(file = %path.display(), %reason, "Skipping a damaged checkpoint; trying an older one.");
                continue;
            }
        };
        if cp.workers != workers {
            return Err(CheckpointError::WorkerMismatch {
                path,
                found: cp.workers,
            });
        }
        return Ok(Some(cp));
    }
    Ok(None)
}

/// Checkpoint files in `dir`, oldest first.
fn list(dir: &Path) -> Result<Vec<(EventTime, PathBuf)>, CheckpointError> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => {
            return Err(CheckpointError::Io {
                path: dir.to_path_buf(),
                error,
            })
        }
    };
    let mut files: Vec<(EventTime, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let t = name
                .strip_prefix("checkpoint-")?
                .strip_suffix(".json")?
                .parse()
                .ok()?;
            Some((t, e.path()))
        })
        .collect();
    files.sort();
    Ok(files)
}

/// Writes `cp` atomically into `dir` and prunes old checkpoints.
pub fn write(dir: &Path, cp: &Checkpoint) -> Result<PathBuf, CheckpointError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |error| CheckpointError::Io { path, error }
    };
    fs::create_dir_all(dir).map_err(io(dir))?;
    let tmp = dir.join("checkpoint.json.tmp");
    let target = dir.join(format!("checkpoint-{}.json", cp.time));
    {
        let mut f = File::create(&tmp).map_err(io(&tmp))?;
        let bytes = serde_json::to_vec(cp).map_err(|e| CheckpointError::Invalid {
            path: tmp.clone(),
            reason: e.to_string(),
        })?;
        f.write_all(&bytes).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
    }
    fs::rename(&tmp, &target).map_err(io(&target))?;
    // The rename is durable only once the directory entry is.
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir))?;
    let files = list(dir)?;
    for (_, old) in files.iter().rev().skip(KEEP) {
        let _ = fs::remove_file(old);
    }
    Ok(target)
}

/// What one worker hands in for a checkpoint.
pub struct WorkerPart {
    /// Worker index.
    pub worker: usize,
    /// Its operators' states.
    pub state: serde_json::Value,
    /// Its partitions' positions at the boundary.
    pub partitions: BTreeMap<String, PartitionPosition>,
}

/// Actions the finalizing worker runs around the write: flush outputs before, commit source
/// offsets after.
pub trait Finalize: Send + Sync {
    /// Makes every output written so far durable (waits for broker acknowledgements).
    fn flush_outputs(&self) -> std::io::Result<()>;
    /// Commits the sources' offsets of a written checkpoint (advisory; the file is the truth).
    fn commit(&self, cp: &Checkpoint);
}

struct Pending {
    time: EventTime,
    parts: Vec<WorkerPart>,
}

/// The boundary being gathered, and the parts handed in for it.
#[derive(Default)]
struct Round {
    proposed: Option<EventTime>,
    pending: Option<Pending>,
}

/// Gathers the workers' parts of each checkpoint in one process and writes it.
pub struct Coordinator {
    dir: PathBuf,
    workers: usize,
    round: Mutex<Round>,
    /// Time of the last checkpoint written, for tests and logs.
    written: Mutex<Option<EventTime>>,
    done: Condvar,
    finalize: Arc<dyn Finalize>,
}

impl Coordinator {
    /// A coordinator writing to `dir` for `workers` workers.
    pub fn new(dir: PathBuf, workers: usize, finalize: Arc<dyn Finalize>) -> Self {
        Coordinator {
            dir,
            workers,
            round: Mutex::new(Round::default()),
            written: Mutex::new(None),
            done: Condvar::new(),
            finalize,
        }
    }

    /// The boundary to hold at: the pending one, or `candidate` (which becomes pending).
    pub fn propose(&self, candidate: EventTime) -> EventTime {
        let mut round = self.round.lock().unwrap_or_else(|p| p.into_inner());
        *round.proposed.get_or_insert(candidate)
    }

    /// Hands in one worker's part of the checkpoint at `time`. The last worker writes the file;
    /// errors there are returned to that worker (and logged).
    pub fn hand_in(&self, time: EventTime, part: WorkerPart) -> Result<(), CheckpointError> {
        let complete = {
            let mut round = self.round.lock().unwrap_or_else(|p| p.into_inner());
            let guard = &mut round.pending;
            let pending = guard.get_or_insert_with(|| Pending {
                time,
                parts: Vec::new(),
            });
            if pending.time != time {
                // Workers always agree on boundaries (multiples of the interval, taken in order),
                // so a mismatch is a bug; restart the gathering rather than write a mixed file.
                tracing::error!(
                    expected = pending.time,
                    got = time,
                    "Workers disagree on the checkpoint time; skipping it."
                );
                *pending = Pending {
                    time,
                    parts: Vec::new(),
                };
            }
            pending.parts.push(part);
            if pending.parts.len() == self.workers {
                round.proposed = None;
                round.pending.take()
            } else {
                None
            }
        };
        let Some(mut pending) = complete else {
            return Ok(());
        };
        pending.parts.sort_by_key(|p| p.worker);
        let mut partitions = BTreeMap::new();
        let mut states = Vec::with_capacity(self.workers);
        for part in pending.parts {
            partitions.extend(part.partitions);
            states.push(part.state);
        }
        let cp = Checkpoint {
            format: FORMAT_NAME.to_string(),
            version: FORMAT_VERSION,
            time,
            workers: self.workers,
            partitions,
            states,
        };
        self.finalize
            .flush_outputs()
            .map_err(|error| CheckpointError::Io {
                path: self.dir.clone(),
                error,
            })?;
        let path = write(&self.dir, &cp)?;
        tracing::debug!(time, file = %path.display(), "Checkpoint written.");
        self.finalize.commit(&cp);
        *self.written.lock().unwrap_or_else(|p| p.into_inner()) = Some(time);
        self.done.notify_all();
        Ok(())
    }

    /// The time of the last checkpoint written by this process.
    pub fn last_written(&self) -> Option<EventTime> {
        *self.written.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The checkpoint boundary after `time` for `interval_ms`: the next multiple strictly above.
pub fn next_boundary(time: EventTime, interval_ms: u64) -> EventTime {
    let i = interval_ms.max(1);
    (time / i + 1) * i
}

/// The largest multiple of `interval_ms` at or below `time`.
pub fn boundary_at_or_below(time: EventTime, interval_ms: u64) -> EventTime {
    let i = interval_ms.max(1);
    time / i * i
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Nothing;
    impl Finalize for Nothing {
        fn flush_outputs(&self) -> std::io::Result<()> {
            Ok(())
        }
        fn commit(&self, _: &Checkpoint) {}
    }

    fn part(worker: usize, key: &str) -> WorkerPart {
        WorkerPart {
            worker,
            state: serde_json::json!({ "worker": worker }),
            partitions: BTreeMap::from([(
                key.to_string(),
                PartitionPosition {
                    offset: worker as u64 * 10,
                    line: 0,
                    clock: PartitionClock { max_time: Some(5) },
                },
            )]),
        }
    }

    #[test]
    fn last_worker_writes_and_newest_is_loaded() {
        let dir = tempfile::tempdir().unwrap();
        let c = Coordinator::new(dir.path().to_path_buf(), 2, Arc::new(Nothing));
        c.hand_in(60_000, part(1, "b")).unwrap();
        assert_eq!(c.last_written(), None, "waits for every worker");
        c.hand_in(60_000, part(0, "a")).unwrap();
        assert_eq!(c.last_written(), Some(60_000));
        c.hand_in(120_000, part(0, "a")).unwrap();
        c.hand_in(120_000, part(1, "b")).unwrap();
        let cp = load_latest(dir.path(), 2).unwrap().unwrap();
        assert_eq!(cp.time, 120_000);
        assert_eq!(cp.states[0]["worker"], 0, "states are in worker order");
        assert_eq!(cp.partitions["b"].offset, 10);
        assert!(matches!(
            load_latest(dir.path(), 3),
            Err(CheckpointError::WorkerMismatch { found: 2, .. })
        ));
    }

    #[test]
    fn damaged_newest_falls_back_and_old_files_are_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let c = Coordinator::new(dir.path().to_path_buf(), 1, Arc::new(Nothing));
        for k in 1..=5 {
            c.hand_in(k * 1000, part(0, "a")).unwrap();
        }
        assert_eq!(list(dir.path()).unwrap().len(), KEEP);
        fs::write(dir.path().join("checkpoint-9000.json"), "{ torn").unwrap();
        assert_eq!(load_latest(dir.path(), 1).unwrap().unwrap().time, 5000);
        assert!(load_latest(&dir.path().join("absent"), 1)
            .unwrap()
            .is_none());
    }

    #[test]
    fn the_first_proposal_is_everyones_boundary_until_complete() {
        let dir = tempfile::tempdir().unwrap();
        let c = Coordinator::new(dir.path().to_path_buf(), 2, Arc::new(Nothing));
        assert_eq!(c.propose(600_000), 600_000);
        assert_eq!(
            c.propose(900_000),
            600_000,
            "a later proposal gets the pending one"
        );
        c.hand_in(600_000, part(0, "a")).unwrap();
        assert_eq!(
            c.propose(900_000),
            600_000,
            "still pending until every worker hands in"
        );
        c.hand_in(600_000, part(1, "b")).unwrap();
        assert_eq!(c.propose(900_000), 900_000);
    }

    #[test]
    fn boundaries_are_multiples_strictly_after() {
        assert_eq!(next_boundary(0, 60_000), 60_000);
        assert_eq!(next_boundary(59_999, 60_000), 60_000);
        assert_eq!(next_boundary(60_000, 60_000), 120_000);
        assert_eq!(boundary_at_or_below(119_999, 60_000), 60_000);
    }
}
