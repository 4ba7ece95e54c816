//! Kafka sinks: alerts, incidents, recommendations and dead letters as JSON messages on their
//! topics, keyed so that one consumer sees an entity's events in order (alerts by fingerprint,
//! dead letters by their id).
//!
//! One producer per process serves every topic. Messages never time out in the client
//! (`message.timeout.ms = 0`): during a broker outage they wait in librdkafka's queue and go out
//! when the broker is back. [`RecordSink::flush`] blocks until every message produced so far is
//! acknowledged, and fails if any delivery failed permanently (unknown topic, authorization): the
//! checkpoint protocol flushes before it records offsets, so nothing it commits can be lost.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::util::Timeout;
use serde::Serialize;

use super::RecordSink;
use crate::sources::kafka::redacted;
use operators::series::EventTime;

/// Records the first permanent delivery failure.
#[derive(Default)]
pub struct DeliveryTracker {
    failure: Mutex<Option<String>>,
}

impl ClientContext for DeliveryTracker {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        match level {
            RDKafkaLogLevel::Debug | RDKafkaLogLevel::Info | RDKafkaLogLevel::Notice => {
                tracing::trace!(fac, message, "librdkafka")
            }
            _ => tracing::debug!(fac, message, "librdkafka"),
        }
    }
}

impl ProducerContext for DeliveryTracker {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: Self::DeliveryOpaque) {
        if let Err((e, _)) = result {
            let mut f = self.failure.lock().unwrap_or_else(|p| p.into_inner());
            if f.is_none() {
                tracing::error!(error = %e, "A Kafka message could not be delivered; output is incomplete.");
                *f = Some(e.to_string());
            }
        }
    }
}

/// The process's producer.
pub struct KafkaOutput {
    producer: ThreadedProducer<DeliveryTracker>,
}

impl KafkaOutput {
    /// Connects to `brokers` with `properties` passed through.
    pub fn connect(
        brokers: &str,
        properties: &BTreeMap<String, String>,
    ) -> Result<Arc<Self>, KafkaError> {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", brokers)
            // Never give up on a message: outages delay output instead of losing it.
            .set("message.timeout.ms", "0")
            .set("linger.ms", "5");
        for (k, v) in properties {
            config.set(k, v);
        }
        tracing::info!(brokers, properties = ?redacted(properties), "Starting the Kafka producer.");
        let producer = config.create_with_context(DeliveryTracker::default())?;
        Ok(Arc::new(KafkaOutput { producer }))
    }

    fn send(&self, topic: &str, key: &str, payload: &[u8]) -> std::io::Result<()> {
        let mut record = BaseRecord::to(topic).key(key).payload(payload);
        loop {
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    // The local queue is full (a slow or absent broker): wait for room.
                    record = back;
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err((e, _)) => {
                    return Err(std::io::Error::other(format!("producing to {topic}: {e}")))
                }
            }
        }
    }

    fn flush(&self) -> std::io::Result<()> {
        self.producer
            .flush(Timeout::Never)
            .map_err(|e| std::io::Error::other(format!("flushing Kafka output: {e}")))?;
        match self
            .producer
            .context()
            .failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
        {
            Some(f) => Err(std::io::Error::other(format!(
                "a Kafka delivery failed: {f}"
            ))),
            None => Ok(()),
        }
    }
}

/// Creates every topic of `topics` that does not exist yet (`partitions` partitions, replication 1
/// unless the broker default applies), so output never waits on a missing topic. An existing
/// topic is left as it is.
pub fn ensure_topics(
    brokers: &str,
    properties: &BTreeMap<String, String>,
    topics: &[&str],
    partitions: i32,
) -> Result<(), String> {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", brokers);
    for (k, v) in properties {
        config.set(k, v);
    }
    let admin: AdminClient<DefaultClientContext> = config
        .create()
        .map_err(|e| format!("cannot reach Kafka at {brokers}: {e}"))?;
    let metadata = admin
        .inner()
        .fetch_metadata(None, Duration::from_secs(30))
        .map_err(|e| format!("cannot read Kafka metadata from {brokers}: {e}"))?;
    let existing: Vec<&str> = metadata.topics().iter().map(|t| t.name()).collect();
    let missing: Vec<NewTopic<'_>> = topics
        .iter()
        .filter(|t| !existing.contains(t))
        .map(|t| NewTopic::new(t, partitions, TopicReplication::Fixed(1)))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = futures_executor::block_on(admin.create_topics(&missing, &options))
        .map_err(|e| format!("creating topics failed: {e}"))?;
    for r in results {
        match r {
            Ok(name) => tracing::info!(topic = %name, "Created Kafka topic."),
            Err((name, RDKafkaErrorCode::TopicAlreadyExists)) => {
                tracing::debug!(topic = %name, "Topic already exists.")
            }
            Err((name, code)) => return Err(format!("creating topic {name} failed: {code}")),
        }
    }
    Ok(())
}

/// How a record type is keyed on its topic.
pub trait KafkaKey {
    /// The message key.
    fn kafka_key(&self) -> String;
}

impl KafkaKey for operators::records::AlertRecord {
    fn kafka_key(&self) -> String {
        self.fingerprint.clone()
    }
}

impl KafkaKey for operators::records::IncidentRecord {
    fn kafka_key(&self) -> String {
        self.incident_id.clone()
    }
}

impl KafkaKey for operators::records::DeadLetter {
    fn kafka_key(&self) -> String {
        self.id.clone()
    }
}

impl KafkaKey for operators::records::RecommendationRecord {
    fn kafka_key(&self) -> String {
        self.recommendation_id.clone()
    }
}

impl KafkaKey for operators::records::WindowFeatures {
    fn kafka_key(&self) -> String {
        self.series.to_string()
    }
}

/// One output topic.
pub struct KafkaSink {
    output: Arc<KafkaOutput>,
    topic: String,
}

impl KafkaSink {
    /// Writes to `topic` through `output`.
    pub fn new(output: Arc<KafkaOutput>, topic: impl Into<String>) -> Self {
        KafkaSink {
            output,
            topic: topic.into(),
        }
    }
}

impl<R: Serialize + KafkaKey> RecordSink<R> for KafkaSink {
    fn write(&mut self, _time: EventTime, records: &[R]) -> std::io::Result<()> {
        for r in records {
            let payload = serde_json::to_vec(r)?;
            self.output.send(&self.topic, &r.kafka_key(), &payload)?;
        }
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.output.flush()
    }
}
