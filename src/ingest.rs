//! From parsed records to dataflow input: interning series keys, per-partition event-time
//! watermarks, lateness, label limits and dead letters.
//!
//! Every source partition (a file, standard input, the simulator, a Kafka partition) has its own
//! [`PartitionClock`]: its watermark is its largest event time minus the allowed lateness, and a
//! point behind it is late. Because the clock belongs to the partition, whether a point is late
//! depends only on that partition's own order, never on how partitions interleave or how many
//! workers read them; this is what lets one and many workers give identical output.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use operators::records::{DeadLetter, DeadLetterReason, SourcePosition};
use operators::series::{series_id, EventTime, Point, SeriesId, SeriesKey, SharedKey};

/// Limits on labels, so one bad producer cannot blow up memory or cardinality.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LabelLimits {
    /// Maximum labels per series.
    pub max_labels: usize,
    /// Maximum bytes of a metric name, label name or label value.
    pub max_len: usize,
}

impl Default for LabelLimits {
    fn default() -> Self {
        LabelLimits {
            max_labels: 32,
            max_len: 512,
        }
    }
}

/// Series ids are already xxh3 hashes: use them as the hash directly.
#[derive(Default)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used for `SeriesId`; fold anything else in for safety.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// Hash map keyed by series id without re-hashing.
pub type IdMap<V> = HashMap<SeriesId, V, BuildHasherDefault<IdHasher>>;

/// The worker's series keys, each stored once and shared.
#[derive(Default)]
pub struct Interner {
    keys: IdMap<SharedKey>,
}

/// Outcome of interning a borrowed key.
pub enum Interned {
    /// Seen before.
    Known(SeriesId),
    /// First sighting: the caller announces it downstream.
    New(SeriesId, SharedKey),
    /// Another key already has this id (a 64-bit hash collision).
    Collision(SeriesId),
}

impl Interner {
    /// Interns a key given as borrowed parts; `labels` must be sorted by name with unique names.
    pub fn intern(&mut self, name: &str, labels: &[(&str, &str)]) -> Interned {
        let id = series_id(name, labels.iter().copied());
        match self.keys.get(&id) {
            Some(key) => {
                let same = key.name == name
                    && key.labels.len() == labels.len()
                    && key
                        .labels
                        .iter()
                        .zip(labels)
                        .all(|((k1, v1), (k2, v2))| k1 == k2 && v1 == v2);
                if same {
                    Interned::Known(id)
                } else {
                    Interned::Collision(id)
                }
            }
            None => {
                let key = Arc::new(SeriesKey {
                    name: name.to_owned(),
                    labels: labels
                        .iter()
                        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                        .collect(),
                });
                self.keys.insert(id, key.clone());
                Interned::New(id, key)
            }
        }
    }

    /// Number of distinct series seen.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no series was seen.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// Event-time clock of one partition.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PartitionClock {
    /// Largest event time accepted so far.
    pub max_time: Option<EventTime>,
}

impl PartitionClock {
    /// The partition's watermark under `lateness_ms`: nothing behind it is accepted.
    pub fn watermark(&self, lateness_ms: u64) -> Option<EventTime> {
        self.max_time.map(|t| t.saturating_sub(lateness_ms))
    }
}

/// What one read of a partition produced, ready for the dataflow inputs.
#[derive(Debug, Default)]
pub struct Batch {
    /// Accepted points.
    pub points: Vec<Point>,
    /// Keys of series seen for the first time on this worker.
    pub keys: Vec<(SeriesId, SharedKey)>,
    /// Refused records.
    pub dead: Vec<DeadLetter>,
    /// Smallest event time among `points` (the batch's timely time when points exist).
    pub min_time: Option<EventTime>,
    /// How many of `dead` are late points.
    pub late: u64,
}

impl Batch {
    /// Whether nothing at all was produced.
    pub fn is_empty(&self) -> bool {
        self.points.is_empty() && self.dead.is_empty()
    }

    /// Empties the batch, keeping allocations where the vectors were not handed away.
    pub fn clear(&mut self) {
        self.points.clear();
        self.keys.clear();
        self.dead.clear();
        self.min_time = None;
        self.late = 0;
    }
}

/// Where the current record of a partition sits, to build a [`SourcePosition`] only when needed.
#[derive(Debug, Clone)]
pub enum PositionKind {
    /// Lines of a file (`-` for standard input).
    File(Arc<str>),
    /// Messages of a Kafka partition.
    Kafka {
        /// Topic.
        topic: Arc<str>,
        /// Partition number.
        partition: i32,
    },
    /// Steps of the simulator.
    Simulator,
}

impl PositionKind {
    /// The position of record (`a`, `b`): (line, byte offset), (offset, unused) or (step, unused).
    pub fn at(&self, a: u64, b: u64) -> SourcePosition {
        match self {
            PositionKind::File(file) => SourcePosition::Line {
                file: file.to_string(),
                line: a,
                offset: b,
            },
            PositionKind::Kafka { topic, partition } => SourcePosition::Kafka {
                topic: topic.to_string(),
                partition: *partition,
                offset: a as i64,
            },
            PositionKind::Simulator => SourcePosition::Simulator { step: a },
        }
    }
}

/// Accepts parsed points of one partition into a [`Batch`], applying limits and lateness.
pub struct PartitionIngest {
    /// Source name, for dead letters.
    pub source: Arc<str>,
    /// How positions are written.
    pub position: PositionKind,
    /// The partition's clock.
    pub clock: PartitionClock,
    /// Allowed lateness in milliseconds.
    pub lateness_ms: u64,
    /// Label limits.
    pub limits: LabelLimits,
    /// The worker's frontier: a point before it can no longer be placed (its windows may have
    /// closed) and is late whatever its partition's watermark. It only bites for a partition that
    /// was idle or empty while the others moved on; for one that keeps up it is never above the
    /// partition's own watermark.
    pub floor: EventTime,
}

/// A parsed point before acceptance: borrowed name and labels (sorted by the caller).
pub struct RawPoint<'a> {
    /// Metric name.
    pub name: &'a str,
    /// Labels sorted by name, names unique.
    pub labels: &'a [(&'a str, &'a str)],
    /// Event time (ms).
    pub time: EventTime,
    /// Value (checked finite by the parser).
    pub value: f64,
}

impl PartitionIngest {
    /// A dead letter for the record at (`a`, `b`) of this partition.
    pub fn dead_letter(
        &self,
        a: u64,
        b: u64,
        reason: DeadLetterReason,
        detail: impl Into<String>,
        payload: &[u8],
    ) -> DeadLetter {
        DeadLetter::new(
            &self.source,
            self.position.at(a, b),
            reason,
            detail,
            payload,
        )
    }

    /// Accepts one point into `batch`, or dead-letters it (late, over limits, id collision).
    /// `payload` and (`a`, `b`) locate the record for the dead letter; `element` is its index
    /// within a multi-point payload.
    #[allow(clippy::too_many_arguments)]
    pub fn accept(
        &mut self,
        interner: &mut Interner,
        batch: &mut Batch,
        p: RawPoint<'_>,
        payload: &[u8],
        a: u64,
        b: u64,
        element: Option<usize>,
    ) {
        let refuse = |this: &Self, batch: &mut Batch, reason, detail: String| {
            let d = this.dead_letter(a, b, reason, detail, payload);
            batch
                .dead
                .push(element.map_or(d.clone(), |i| d.with_element(i)));
        };
        if let Some(detail) = self.limit_violation(&p) {
            refuse(self, batch, DeadLetterReason::LabelLimit, detail);
            return;
        }
        let watermark = self
            .clock
            .watermark(self.lateness_ms)
            .unwrap_or(0)
            .max(self.floor);
        if watermark > 0 {
            let wm = watermark;
            if p.time < wm {
                batch.late += 1;
                refuse(
                    self,
                    batch,
                    DeadLetterReason::Late,
                    format!(
                        "event time {} ms is {} ms behind the partition watermark {} ms",
                        p.time,
                        wm - p.time,
                        wm
                    ),
                );
                return;
            }
        }
        let id = match interner.intern(p.name, p.labels) {
            Interned::Known(id) => id,
            Interned::New(id, key) => {
                batch.keys.push((id, key));
                id
            }
            Interned::Collision(id) => {
                refuse(
                    self,
                    batch,
                    DeadLetterReason::SeriesIdCollision,
                    format!("series id {id} already belongs to another series"),
                );
                return;
            }
        };
        self.clock.max_time = Some(self.clock.max_time.map_or(p.time, |m| m.max(p.time)));
        batch.min_time = Some(batch.min_time.map_or(p.time, |m| m.min(p.time)));
        batch.points.push(Point {
            series: id,
            time: p.time,
            value: p.value,
        });
    }

    fn limit_violation(&self, p: &RawPoint<'_>) -> Option<String> {
        let max = self.limits.max_len;
        if p.labels.len() > self.limits.max_labels {
            return Some(format!(
                "{} labels exceed the limit of {}",
                p.labels.len(),
                self.limits.max_labels
            ));
        }
        if p.name.is_empty() {
            return Some("empty metric name".into());
        }
        if p.name.len() > max {
            return Some(format!("metric name longer than {max} bytes"));
        }
        for (k, v) in p.labels {
            if k.is_empty() {
                return Some("empty label name".into());
            }
            if k.len() > max || v.len() > max {
                return Some(format!("label {k:?} longer than {max} bytes"));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ingest() -> PartitionIngest {
        PartitionIngest {
            source: "test".into(),
            position: PositionKind::File("f".into()),
            clock: PartitionClock::default(),
            lateness_ms: 1_000,
            limits: LabelLimits::default(),
            floor: 0,
        }
    }

    fn raw<'a>(labels: &'a [(&'a str, &'a str)], time: u64) -> RawPoint<'a> {
        RawPoint {
            name: "m",
            labels,
            time,
            value: 1.0,
        }
    }

    #[test]
    fn late_points_are_dead_lettered_against_the_partition_watermark() {
        let mut ing = ingest();
        let mut interner = Interner::default();
        let mut batch = Batch::default();
        ing.accept(
            &mut interner,
            &mut batch,
            raw(&[], 10_000),
            b"a",
            1,
            0,
            None,
        );
        // 9_500 is within the 1 s lateness: accepted.
        ing.accept(&mut interner, &mut batch, raw(&[], 9_500), b"b", 2, 2, None);
        // 8_999 is behind the watermark 9_000.
        ing.accept(&mut interner, &mut batch, raw(&[], 8_999), b"c", 3, 4, None);
        assert_eq!(batch.points.len(), 2);
        assert_eq!(batch.late, 1);
        assert_eq!(batch.dead[0].reason, DeadLetterReason::Late);
        assert_eq!(batch.dead[0].payload.as_deref(), Some("c"));
        assert_eq!(batch.min_time, Some(9_500));
        assert_eq!(batch.keys.len(), 1, "one new series announced once");
    }

    #[test]
    fn label_limits_are_enforced() {
        let mut ing = ingest();
        ing.limits.max_len = 4;
        let mut interner = Interner::default();
        let mut batch = Batch::default();
        ing.accept(
            &mut interner,
            &mut batch,
            raw(&[("k", "toolong")], 1),
            b"x",
            1,
            0,
            Some(3),
        );
        assert!(batch.points.is_empty());
        assert_eq!(batch.dead[0].reason, DeadLetterReason::LabelLimit);
        assert_eq!(batch.dead[0].element, Some(3));
    }

    #[test]
    fn interner_shares_keys_and_checks_content() {
        let mut interner = Interner::default();
        assert!(matches!(
            interner.intern("m", &[("a", "1")]),
            Interned::New(..)
        ));
        assert!(matches!(
            interner.intern("m", &[("a", "1")]),
            Interned::Known(..)
        ));
        assert_eq!(interner.len(), 1);
    }
}
