//! The Kafka source: one consumer per process, its partitions spread over the workers, each
//! partition read without blocking from its own queue with its own event-time clock.
//!
//! * **Assignment mode.** With the group protocol (the default for a cluster of processes) Kafka
//!   spreads partitions over the processes. A single process (the default otherwise) assigns itself
//!   every partition of its topics directly: a restart then resumes at once, where the group
//!   protocol would make it wait for its dead predecessor's session to expire while partitions are
//!   reshuffled — and with event-time watermarks, a partition that arrives late brings late data.
//!   Either way offsets are committed to the consumer group, so lag tools see the engine.
//! * **Positions.** Each partition starts at its checkpointed offset when the checkpoint knows it,
//!   else at the group's committed offset (else `auto.offset.reset`, earliest by default). It is
//!   split into its own queue, and belongs to worker `hash(topic, partition) mod workers`, which
//!   polls that queue with a zero timeout from its driver loop.
//! * **Rebalances** (group mode). Membership is static (`group.instance.id` = group id and process
//!   index, unless set). A partition taken away and given back resumes exactly where its worker had
//!   read; while it is away it keeps holding the watermark. A single process holds its frontier
//!   until it has every partition of its topics.
//! * **Events.** Worker 0 polls the consumer's main queue, which serves the rebalance and error
//!   callbacks; every message arrives on a partition queue.
//! * **Idle partitions.** A partition with no message for `idle_timeout_ms` of wall-clock time stops
//!   holding the worker's watermark back (an empty partition would otherwise stall every window);
//!   it rejoins when data arrives, and points it brings that are already behind the worker's
//!   frontier are dead-lettered as late.
//!   Silence only counts while the brokers answer, so an outage makes no partition idle.
//! * **Backpressure.** When the dataflow falls behind, the driver stops polling; librdkafka's
//!   prefetch queue is bounded (`queued.max.messages.kbytes`), so fetching stops by itself.
//!   Partitions are not paused: pausing drops the prefetched messages and fetches them again
//!   from the middle of a record batch, which costs bandwidth and which tansu 0.6 (the test
//!   broker) answers with the *next* batch, losing messages.
//! * **Outages.** librdkafka reconnects by itself; the source logs once when the brokers become
//!   unreachable and once when they are back, not on every retry.
//! * **Secrets.** Properties pass through to librdkafka unchanged; logs show them only through
//!   [`redacted`], which masks every property whose name suggests a secret.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use crate::sources::broker_health::{start_probe, Health};
use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::base_consumer::PartitionQueue;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::{RDKafkaErrorCode, RDKafkaRespErr};

use crate::checkpoint::PartitionPosition;
use crate::ingest::{Batch, Interner, LabelLimits, PartitionIngest, PositionKind};
use crate::parse::{DecodeCtx, Decoder, Format, Precision};
use crate::sources::file::decoder_for;
use crate::sources::{Partition, PartitionProvider, ReadStatus};

/// One subscribed topic and how its messages are encoded.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicSpec {
    /// Topic name.
    pub name: String,
    /// Payload format.
    pub format: Format,
    /// Influx timestamp precision (for `influx`).
    pub precision: Precision,
}

/// How partitions reach the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Assignment {
    /// `manual` for a single process, `group` for a cluster.
    #[default]
    Auto,
    /// The consumer-group protocol (subscribe; Kafka spreads partitions over the members).
    Group,
    /// Assign partitions directly: all of them, or this process's share in a cluster.
    Manual,
}

/// A Kafka source as configured.
#[derive(Debug, Clone, PartialEq)]
pub struct KafkaSourceSpec {
    /// Source name (dead letters, logs).
    pub name: String,
    /// `bootstrap.servers`.
    pub brokers: String,
    /// Topics to read.
    pub topics: Vec<TopicSpec>,
    /// Consumer group.
    pub group_id: String,
    /// librdkafka properties passed through (security, tuning); they override the defaults.
    pub properties: BTreeMap<String, String>,
    /// Wall-clock time without messages after which a partition no longer holds the watermark.
    pub idle_timeout_ms: u64,
    /// How partitions are assigned to this process.
    pub assignment: Assignment,
}

/// Which part of the cluster this process is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Membership {
    /// This process's index in the cluster.
    pub process: usize,
    /// Processes in the cluster.
    pub processes: usize,
}

/// The key a checkpoint uses for a Kafka partition.
pub fn partition_key(topic: &str, partition: i32) -> String {
    format!("kafka:{topic}/{partition}")
}

fn parse_key(key: &str) -> Option<(&str, i32)> {
    let rest = key.strip_prefix("kafka:")?;
    let (topic, partition) = rest.rsplit_once('/')?;
    Some((topic, partition.parse().ok()?))
}

/// Which of `n` owners (workers, or processes) a partition belongs to: stable for a given `n`.
fn owner(key: &str, n: usize) -> usize {
    (operators::series::stable_hash(key.as_bytes()) % n.max(1) as u64) as usize
}

/// Whether a librdkafka property holds a secret (passwords, keys, tokens).
pub fn is_secret(property: &str) -> bool {
    let p = property.to_ascii_lowercase();
    [
        "password",
        "secret",
        "token",
        "key",
        "credential",
        "sasl.jaas.config",
    ]
    .iter()
    .any(|s| p.contains(s))
        && !p.ends_with(".location")
}

/// Properties as they may appear in logs: secrets masked.
pub fn redacted(properties: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    properties
        .iter()
        .map(|(k, v)| {
            let shown = if is_secret(k) {
                "******".to_string()
            } else {
                v.clone()
            };
            (k.clone(), shown)
        })
        .collect()
}

/// A partition's link to the consumer: its current queue (none while the group has it revoked)
/// and how far its worker has read, so a rebalance that gives it back resumes exactly there.
#[derive(Default)]
struct Handle {
    queue: Option<PartitionQueue<KafkaContext>>,
    next_offset: Option<u64>,
}

type SharedHandle = Arc<Mutex<Handle>>;

/// A partition this process reads for the first time, waiting for its worker.
struct Assigned {
    topic: String,
    partition: i32,
    handle: SharedHandle,
    start: Option<PartitionPosition>,
}

/// What the consumer's callbacks share with the workers.
#[derive(Default)]
struct Assignments {
    waiting: Vec<Assigned>,
    /// Assignments received so far (0: nothing assigned yet).
    generation: u64,
    /// Partitions currently assigned to this process.
    assigned: HashSet<String>,
    /// Every partition this process has read, by key.
    handles: HashMap<String, SharedHandle>,
}

/// Callbacks of the consumer: logging, errors, rebalances.
pub struct KafkaContext {
    assignments: Mutex<Assignments>,
    restore: BTreeMap<String, PartitionPosition>,
    consumer: OnceLock<Weak<BaseConsumer<KafkaContext>>>,
    health: Health,
}

impl KafkaContext {
    fn assignments(&self) -> std::sync::MutexGuard<'_, Assignments> {
        self.assignments.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes partitions `tpl` over: positions each (the worker's own progress after a rebalance,
    /// else the checkpoint, else the group's committed offset) and splits it into its own queue
    /// before the caller assigns them, so no message reaches the main queue.
    fn take(&self, tpl: &mut TopicPartitionList) {
        let consumer = self.consumer.get().and_then(Weak::upgrade);
        let mut assignments = self.assignments();
        let elements: Vec<(String, i32)> = tpl
            .elements()
            .iter()
            .map(|e| (e.topic().to_string(), e.partition()))
            .collect();
        for (topic, partition) in elements {
            let key = partition_key(&topic, partition);
            let existing = assignments.handles.get(&key).cloned();
            let resume = existing
                .as_ref()
                .and_then(|h| h.lock().unwrap_or_else(|p| p.into_inner()).next_offset)
                .or_else(|| self.restore.get(&key).map(|p| p.offset));
            if let Some(offset) = resume {
                if let Err(e) =
                    tpl.set_partition_offset(&topic, partition, Offset::Offset(offset as i64))
                {
                    tracing::error!(%key, error = %e, "Cannot position the partition.");
                }
            }
            let Some(queue) = consumer
                .as_ref()
                .and_then(|c| c.split_partition_queue(&topic, partition))
            else {
                tracing::error!(%key, "Cannot open the partition's queue.");
                continue;
            };
            assignments.assigned.insert(key.clone());
            match existing {
                Some(handle) => {
                    handle.lock().unwrap_or_else(|p| p.into_inner()).queue = Some(queue)
                }
                None => {
                    let handle = Arc::new(Mutex::new(Handle {
                        queue: Some(queue),
                        next_offset: None,
                    }));
                    assignments.handles.insert(key.clone(), handle.clone());
                    assignments.waiting.push(Assigned {
                        start: self.restore.get(&key).cloned(),
                        topic,
                        partition,
                        handle,
                    });
                }
            }
        }
        assignments.generation += 1;
    }

    /// Partitions `tpl` leave this process: their queues close, their clocks stay.
    fn release(&self, tpl: &TopicPartitionList) {
        let mut assignments = self.assignments();
        for e in tpl.elements() {
            let key = partition_key(e.topic(), e.partition());
            assignments.assigned.remove(&key);
            if let Some(h) = assignments.handles.get(&key) {
                h.lock().unwrap_or_else(|p| p.into_inner()).queue = None;
            }
        }
    }
}

impl ClientContext for KafkaContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error
            | RDKafkaLogLevel::Warning => tracing::debug!(fac, message, "librdkafka"),
            _ => tracing::trace!(fac, message, "librdkafka"),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        match error.rdkafka_error_code() {
            Some(
                RDKafkaErrorCode::BrokerTransportFailure
                | RDKafkaErrorCode::AllBrokersDown
                | RDKafkaErrorCode::Resolve
                | RDKafkaErrorCode::OperationTimedOut,
            ) => self.health.down(reason),
            _ => tracing::warn!(%error, reason, "Kafka client error."),
        }
    }
}

impl ConsumerContext for KafkaContext {
    fn rebalance(
        &self,
        base_consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                self.take(tpl);
                if let Err(e) = base_consumer.assign(tpl) {
                    tracing::error!(error = %e, "Assigning partitions failed.");
                }
                tracing::info!(partitions = tpl.count(), "Kafka partitions assigned.");
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                self.release(tpl);
                if let Err(e) = base_consumer.unassign() {
                    tracing::error!(error = %e, "Unassigning partitions failed.");
                }
                tracing::info!(partitions = tpl.count(), "Kafka partitions revoked.");
            }
            other => tracing::error!(?other, "Kafka rebalance failed."),
        }
    }
}

/// The process's consumer, shared by its workers.
pub struct KafkaSource {
    spec: KafkaSourceSpec,
    consumer: Arc<BaseConsumer<KafkaContext>>,
    formats: HashMap<String, (Format, Precision)>,
    stop: Arc<AtomicBool>,
    /// This process's partitions, when it can know them in advance.
    expected: Option<HashSet<String>>,
}

impl KafkaSource {
    /// Creates the consumer and takes or subscribes to the partitions. `restore` positions
    /// partitions at a checkpoint's offsets.
    pub fn start(
        spec: KafkaSourceSpec,
        restore: BTreeMap<String, PartitionPosition>,
        stop: Arc<AtomicBool>,
        membership: Membership,
    ) -> Result<Arc<KafkaSource>, KafkaError> {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &spec.brokers)
            .set("group.id", &spec.group_id)
            .set(
                "group.instance.id",
                format!("{}-{}", spec.group_id, membership.process),
            )
            // Offsets are committed by the checkpoint protocol, after outputs are acknowledged.
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("enable.partition.eof", "false");
        for (k, v) in &spec.properties {
            config.set(k, v);
        }
        let manual = match spec.assignment {
            Assignment::Manual => true,
            Assignment::Group => false,
            Assignment::Auto => membership.processes == 1,
        };
        tracing::info!(
            brokers = %spec.brokers,
            group = %spec.group_id,
            topics = ?spec.topics.iter().map(|t| &t.name).collect::<Vec<_>>(),
            assignment = if manual { "manual" } else { "group" },
            properties = ?redacted(&spec.properties),
            "Starting the Kafka consumer."
        );
        let context = KafkaContext {
            assignments: Mutex::new(Assignments::default()),
            restore,
            consumer: OnceLock::new(),
            health: Health::default(),
        };
        let consumer: Arc<BaseConsumer<KafkaContext>> =
            Arc::new(config.create_with_context(context)?);
        let _ = consumer.context().consumer.set(Arc::downgrade(&consumer));
        if let Some(first) = spec.topics.first() {
            start_probe(
                Arc::downgrade(&consumer),
                first.name.clone(),
                stop.clone(),
                |c: &BaseConsumer<KafkaContext>| &c.context().health,
            );
        }
        // This process's partitions, when it can know them: all of them for a single process,
        // its share when it assigns them itself.
        let expected = if manual || membership.processes == 1 {
            let mut mine = TopicPartitionList::new();
            let mut keys = HashSet::new();
            for t in &spec.topics {
                let metadata = consumer.fetch_metadata(Some(&t.name), Duration::from_secs(30))?;
                for topic in metadata.topics() {
                    for p in topic.partitions() {
                        let key = partition_key(topic.name(), p.id());
                        if !manual || owner(&key, membership.processes) == membership.process {
                            mine.add_partition(topic.name(), p.id());
                            keys.insert(key);
                        }
                    }
                }
            }
            if manual {
                consumer.context().take(&mut mine);
                consumer.assign(&mine)?;
                tracing::info!(partitions = mine.count(), "Kafka partitions assigned.");
            }
            Some(keys)
        } else {
            None
        };
        if !manual {
            let topics: Vec<&str> = spec.topics.iter().map(|t| t.name.as_str()).collect();
            consumer.subscribe(&topics)?;
        }
        let formats = spec
            .topics
            .iter()
            .map(|t| (t.name.clone(), (t.format, t.precision)))
            .collect();
        Ok(Arc::new(KafkaSource {
            spec,
            consumer,
            formats,
            stop,
            expected,
        }))
    }

    /// Commits the Kafka partitions' offsets of a written checkpoint (asynchronously: the
    /// checkpoint file is the source of truth; committed offsets serve lag monitoring and restarts
    /// without a checkpoint).
    pub fn commit(&self, partitions: &BTreeMap<String, PartitionPosition>) {
        let mut tpl = TopicPartitionList::new();
        for (key, pos) in partitions {
            let Some((topic, partition)) = parse_key(key) else {
                continue;
            };
            if self.formats.contains_key(topic) {
                let _ =
                    tpl.add_partition_offset(topic, partition, Offset::Offset(pos.offset as i64));
            }
        }
        if tpl.count() > 0 {
            if let Err(e) = self.consumer.commit(&tpl, CommitMode::Async) {
                tracing::warn!(error = %e, "Committing offsets failed; the next checkpoint retries.");
            }
        }
    }

    /// The provider of worker `worker` of `workers` (this process's workers).
    pub fn provider(
        self: &Arc<Self>,
        worker: usize,
        workers: usize,
        lateness_ms: u64,
        limits: LabelLimits,
        entity_label: String,
    ) -> KafkaProvider {
        KafkaProvider {
            source: self.clone(),
            worker,
            workers,
            lateness_ms,
            limits,
            entity_label,
            settled: false,
            complete: false,
        }
    }
}

/// Hands a worker the Kafka partitions it owns as they are assigned.
pub struct KafkaProvider {
    source: Arc<KafkaSource>,
    worker: usize,
    workers: usize,
    lateness_ms: u64,
    limits: LabelLimits,
    entity_label: String,
    /// Whether an assignment had been handed out at the last poll.
    settled: bool,
    /// Whether the process held every partition it must at the last poll.
    complete: bool,
}

impl PartitionProvider for KafkaProvider {
    fn poll(&mut self) -> Vec<Box<dyn Partition>> {
        if self.worker == 0 {
            // Serves rebalance and error callbacks; all messages go to partition queues.
            if let Some(Ok(m)) = self.source.consumer.poll(Duration::ZERO) {
                tracing::error!(
                    topic = m.topic(),
                    partition = m.partition(),
                    offset = m.offset(),
                    "A message reached the main queue; it is skipped and read again after a restart."
                );
            }
        }
        let mut assignments = self.source.consumer.context().assignments();
        self.settled = assignments.generation > 0;
        self.complete = match &self.source.expected {
            Some(all) => all.iter().all(|k| assignments.assigned.contains(k)),
            None => self.settled,
        };
        let mut mine = Vec::new();
        let mut i = 0;
        while i < assignments.waiting.len() {
            let w = &assignments.waiting[i];
            if owner(&partition_key(&w.topic, w.partition), self.workers) == self.worker {
                mine.push(assignments.waiting.swap_remove(i));
            } else {
                i += 1;
            }
        }
        drop(assignments);
        mine.into_iter().map(|a| self.partition(a)).collect()
    }

    fn finished(&self) -> bool {
        self.source.stop.load(Ordering::Relaxed)
    }

    fn settled(&self) -> bool {
        self.settled && self.complete
    }

    fn complete(&self) -> bool {
        self.complete
    }
}

impl KafkaProvider {
    fn partition(&self, a: Assigned) -> Box<dyn Partition> {
        let (format, precision) = self
            .source
            .formats
            .get(&a.topic)
            .copied()
            .unwrap_or((Format::Json, Precision::Ns));
        let key = partition_key(&a.topic, a.partition);
        tracing::debug!(%key, worker = self.worker, "Reading Kafka partition.");
        Box::new(KafkaPartition {
            decoder: decoder_for(format, precision, &a.topic, &self.entity_label),
            ingest: PartitionIngest {
                source: Arc::from(self.source.spec.name.as_str()),
                position: PositionKind::Kafka {
                    topic: Arc::from(a.topic.as_str()),
                    partition: a.partition,
                },
                clock: a
                    .start
                    .as_ref()
                    .map(|p| p.clock.clone())
                    .unwrap_or_default(),
                lateness_ms: self.lateness_ms,
                limits: self.limits,
                floor: 0,
            },
            name: key.clone(),
            key,
            next_offset: a.start.as_ref().map(|p| p.offset),
            handle: a.handle,
            last_message: Instant::now(),
            idle_after: Duration::from_millis(self.source.spec.idle_timeout_ms),
            source: self.source.clone(),
        })
    }
}

/// One Kafka partition, read by its owning worker.
pub struct KafkaPartition {
    key: String,
    name: String,
    handle: SharedHandle,
    decoder: Box<dyn Decoder>,
    ingest: PartitionIngest,
    next_offset: Option<u64>,
    last_message: Instant,
    idle_after: Duration,
    source: Arc<KafkaSource>,
}

impl Partition for KafkaPartition {
    fn name(&self) -> &str {
        &self.name
    }

    fn read(
        &mut self,
        max_records: usize,
        interner: &mut Interner,
        batch: &mut Batch,
    ) -> ReadStatus {
        if self.source.stop.load(Ordering::Relaxed) {
            return ReadStatus::Done;
        }
        let mut handle = self.handle.lock().unwrap_or_else(|p| p.into_inner());
        // Revoked: keep the clock (the watermark stays held) until the group gives it back.
        let Some(queue) = handle.queue.as_ref() else {
            return ReadStatus::Idle;
        };
        let mut read = 0;
        while read < max_records {
            match queue.poll(Duration::ZERO) {
                None => break,
                Some(Err(e)) => {
                    self.source.consumer.context().health.down(&e.to_string());
                    break;
                }
                Some(Ok(m)) => {
                    read += 1;
                    self.source.consumer.context().health.up();
                    let offset = m.offset().max(0) as u64;
                    if let Some(expected) = self.next_offset.filter(|&e| e != offset) {
                        tracing::warn!(key = %self.key, expected, offset, "Kafka skipped or repeated offsets.");
                    }
                    self.next_offset = Some(offset + 1);
                    let mut ctx = DecodeCtx {
                        ingest: &mut self.ingest,
                        interner,
                        batch,
                    };
                    match m.payload() {
                        Some(payload) => self.decoder.decode(payload, (offset, 0), &mut ctx),
                        None => ctx.refuse(
                            b"",
                            (offset, 0),
                            None,
                            operators::records::DeadLetterReason::Unparsable,
                            "message without a payload",
                        ),
                    }
                }
            }
        }
        handle.next_offset = self.next_offset;
        if read > 0 {
            self.last_message = Instant::now();
            ReadStatus::Progress
        } else {
            ReadStatus::Idle
        }
    }

    fn ingest(&self) -> &PartitionIngest {
        &self.ingest
    }

    fn ingest_mut(&mut self) -> &mut PartitionIngest {
        &mut self.ingest
    }

    fn is_idle(&self) -> bool {
        // Silence only counts while the brokers answer (see `broker_health`).
        match self.source.consumer.context().health.answering_since() {
            Some(since) => self.last_message.max(since).elapsed() >= self.idle_after,
            None => false,
        }
    }

    fn key(&self) -> String {
        self.key.clone()
    }

    fn position(&self) -> Option<PartitionPosition> {
        Some(PartitionPosition {
            offset: self.next_offset?,
            line: 0,
            clock: self.ingest.clock.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_masked() {
        let props = BTreeMap::from([
            ("sasl.password".to_string(), "hunter2".to_string()),
            ("ssl.key.password".to_string(), "k".to_string()),
            ("ssl.key.location".to_string(), "/etc/k.pem".to_string()),
            ("security.protocol".to_string(), "SASL_SSL".to_string()),
            (
                "sasl.oauthbearer.client.secret".to_string(),
                "s".to_string(),
            ),
        ]);
        let shown = redacted(&props);
        assert_eq!(shown["sasl.password"], "******");
        assert_eq!(shown["ssl.key.password"], "******");
        assert_eq!(shown["sasl.oauthbearer.client.secret"], "******");
        assert_eq!(shown["ssl.key.location"], "/etc/k.pem");
        assert_eq!(shown["security.protocol"], "SASL_SSL");
        assert!(!format!("{shown:?}").contains("hunter2"));
    }

    #[test]
    fn partition_keys_round_trip_and_owners_spread() {
        assert_eq!(parse_key(&partition_key("a/b", 3)), Some(("a/b", 3)));
        assert_eq!(parse_key("file:x"), None);
        let owners: HashSet<usize> = (0..16).map(|p| owner(&partition_key("m", p), 2)).collect();
        assert_eq!(owners.len(), 2);
    }
}
