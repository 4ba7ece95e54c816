//! Whether the Kafka brokers answer, for logging and for partition idleness.
//!
//! A partition that delivers nothing for the idle timeout stops holding the watermark. During a
//! broker outage *every* partition delivers nothing, and when the brokers come back the first
//! partition to deliver would race ahead of the others, turning their backlog into late data.
//! So idleness only counts time during which the brokers answered: a background thread asks for
//! the topic's metadata every second (a broker round trip — a frozen broker that keeps its TCP
//! connections open raises no client error, only silence), and the partitions' idle clocks
//! restart when the brokers answer again.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};

/// How often the probe asks the brokers.
const PROBE_PERIOD: Duration = Duration::from_secs(1);
/// How long a probe waits for its answer before the brokers count as unreachable.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Connection health: logs state changes once, and remembers since when the brokers answer.
pub struct Health {
    unreachable: AtomicBool,
    answering_since: Mutex<Instant>,
}

impl Default for Health {
    fn default() -> Self {
        Health {
            unreachable: AtomicBool::new(false),
            answering_since: Mutex::new(Instant::now()),
        }
    }
}

impl Health {
    /// The brokers failed to answer (a client error or a probe timeout).
    pub fn down(&self, reason: &str) {
        if !self.unreachable.swap(true, Ordering::Relaxed) {
            tracing::warn!(%reason, "Kafka brokers unreachable; retrying in the background.");
        }
    }

    /// The brokers answered (a message arrived or a probe succeeded).
    pub fn up(&self) {
        if self.unreachable.swap(false, Ordering::Relaxed) {
            *self
                .answering_since
                .lock()
                .unwrap_or_else(|p| p.into_inner()) = Instant::now();
            tracing::info!("Kafka brokers reachable again.");
        }
    }

    /// Since when the brokers have answered without interruption; `None` while they do not.
    pub fn answering_since(&self) -> Option<Instant> {
        if self.unreachable.load(Ordering::Relaxed) {
            return None;
        }
        Some(
            *self
                .answering_since
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
        )
    }
}

/// Starts the probe thread for `consumer`, asking for `topic`'s metadata every second until
/// `stop` is set or the consumer is dropped. `health` picks the consumer's [`Health`] out of it.
pub fn start_probe<C, F>(
    consumer: Weak<BaseConsumer<C>>,
    topic: String,
    stop: Arc<AtomicBool>,
    health: F,
) where
    C: ConsumerContext + 'static,
    F: Fn(&BaseConsumer<C>) -> &Health + Send + 'static,
{
    let spawned = std::thread::Builder::new()
        .name("kafka-probe".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let Some(consumer) = consumer.upgrade() else {
                    return;
                };
                match consumer.fetch_metadata(Some(&topic), PROBE_TIMEOUT) {
                    Ok(_) => health(&consumer).up(),
                    Err(e) => health(&consumer).down(&e.to_string()),
                }
                drop(consumer);
                std::thread::sleep(PROBE_PERIOD);
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "Cannot start the broker probe; idle partitions count outages.");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idleness_restarts_when_the_brokers_answer_again() {
        let health = Health::default();
        let start = health.answering_since().expect("answering at first");
        health.down("probe timed out");
        assert_eq!(
            health.answering_since(),
            None,
            "no idleness during an outage"
        );
        std::thread::sleep(Duration::from_millis(5));
        health.up();
        let since = health.answering_since().expect("answering again");
        assert!(since > start, "the idle clock restarts after the outage");
        health.up();
        assert_eq!(
            health.answering_since(),
            Some(since),
            "staying up keeps the instant"
        );
    }
}
