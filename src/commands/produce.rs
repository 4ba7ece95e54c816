//! `harbinger produce`: load a JSON-lines metrics file (such as `harbinger simulate`'s) into a
//! Kafka topic, several points per message as a JSON array — how producers batch in practice, and
//! what the Kafka benchmark and demos use.
//!
//! A message holds consecutive points of one entity (the `service` label, else `host`, else the
//! name) that share a timestamp, up to `per_message`; it is keyed by the entity, so an entity's
//! series stay in one partition. Grouping by timestamp keeps each partition in event-time order:
//! batching a series' points across time would put the next series' points behind it.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::util::Timeout;
use serde_json::Value;

use crate::commands::{Failure, Outcome};

/// What `produce` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Produced {
    /// Points sent.
    pub points: u64,
    /// Messages sent.
    pub messages: u64,
}

/// How points share messages (always within one timestamp).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum BatchBy {
    /// One entity's points per message, keyed by the entity (as a per-host agent sends them).
    #[default]
    Entity,
    /// Every point bound for one partition per message (entities still map to fixed partitions,
    /// by a hash of the entity): fewer, larger messages, as a collector that batches per
    /// partition sends them.
    Partition,
}

/// Sends every line of `input` to `topic`, up to `per_message` points per message, batched as
/// `batch_by` says. `properties` are librdkafka producer properties; they override the defaults.
pub fn produce(
    brokers: &str,
    topic: &str,
    input: &Path,
    per_message: usize,
    batch_by: BatchBy,
    properties: &[(String, String)],
) -> Result<Produced, String> {
    crate::sinks::kafka::ensure_topics(brokers, &Default::default(), &[topic], 3)?;
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", brokers)
        .set("message.timeout.ms", "0")
        .set("linger.ms", "20")
        .set("batch.size", "1000000");
    for (key, value) in properties {
        config.set(key, value);
    }
    let producer: ThreadedProducer<DefaultProducerContext> = config
        .create()
        .map_err(|e| format!("cannot create a producer: {e}"))?;
    let partitions = match batch_by {
        BatchBy::Entity => 0,
        BatchBy::Partition => producer
            .client()
            .fetch_metadata(Some(topic), Duration::from_secs(30))
            .map_err(|e| format!("reading the partitions of {topic}: {e}"))?
            .topics()
            .iter()
            .map(|t| t.partitions().len())
            .sum::<usize>()
            .max(1),
    };
    let reader =
        BufReader::new(File::open(input).map_err(|e| format!("{}: {e}", input.display()))?);
    let per_message = per_message.max(1);
    // Pending points of the current timestamp, by entity (or by partition number).
    let mut pending: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut current: Option<Value> = None;
    let mut stats = Produced {
        points: 0,
        messages: 0,
    };
    let send = |key: &str, lines: &mut Vec<String>, stats: &mut Produced| -> Result<(), String> {
        if lines.is_empty() {
            return Ok(());
        }
        let payload = format!("[{}]", lines.join(","));
        let mut record = BaseRecord::to(topic).key(key).payload(&payload);
        if partitions > 0 {
            record = record.partition(key.parse().unwrap_or(0));
        }
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    std::thread::sleep(Duration::from_millis(2));
                }
                Err((e, _)) => return Err(format!("producing: {e}")),
            }
        }
        stats.points += lines.len() as u64;
        stats.messages += 1;
        lines.clear();
        Ok(())
    };
    for line in reader.lines() {
        let line = line.map_err(|e| format!("{}: {e}", input.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let parsed: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
        let timestamp = parsed["timestamp"].clone();
        if current.as_ref() != Some(&timestamp) {
            for (key, lines) in pending.iter_mut() {
                send(key, lines, &mut stats)?;
            }
            current = Some(timestamp);
        }
        let labels = &parsed["labels"];
        let key = labels["service"]
            .as_str()
            .or(labels["host"].as_str())
            .or(parsed["name"].as_str())
            .unwrap_or("unparsable")
            .to_string();
        let key = match batch_by {
            BatchBy::Entity => key,
            BatchBy::Partition => {
                (operators::series::stable_hash(key.as_bytes()) % partitions as u64).to_string()
            }
        };
        let lines = pending.entry(key.clone()).or_default();
        lines.push(line);
        if lines.len() >= per_message {
            send(&key, lines, &mut stats)?;
        }
    }
    for (key, lines) in pending.iter_mut() {
        send(key, lines, &mut stats)?;
    }
    producer
        .flush(Timeout::Never)
        .map_err(|e| format!("flushing: {e}"))?;
    Ok(stats)
}

/// The `produce` subcommand; `properties` are `KEY=VALUE` librdkafka producer properties.
pub fn produce_command(
    brokers: &str,
    topic: &str,
    input: &Path,
    per_message: usize,
    batch_by: BatchBy,
    properties: &[String],
) -> Outcome {
    let properties = properties
        .iter()
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
            _ => Err(Failure::usage(format!(
                "--property {kv:?}: expected KEY=VALUE"
            ))),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let started = std::time::Instant::now();
    let p = produce(brokers, topic, input, per_message, batch_by, &properties)
        .map_err(Failure::runtime)?;
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "Produced {} points in {} messages to {topic} in {secs:.1} s ({:.0} points/s).",
        p.points,
        p.messages,
        p.points as f64 / secs.max(1e-9)
    );
    Ok(())
}
