//! Kafka end to end, against the real Kafka-protocol broker `scripts/test.sh` starts (tansu on
//! loopback; its address in `HARBINGER_TEST_BROKERS`, its process id in `HARBINGER_BROKER_PID`).
//! Each test uses fresh topics and its own consumer group. Compiled only with the `kafka-tests`
//! feature; with it, a missing broker fails the tests loudly.
//!
//! The reference for every check is `harbinger replay` over the same metrics file: the Kafka path
//! must produce exactly the same alert ids, whatever happens to the engine or the broker.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use crate::common::cluster;
use harbinger::commands::pipeline::replay;
use harbinger::commands::produce::{produce, BatchBy};
use harbinger::commands::simulate::simulate;
use harbinger::sources::simulator::SimulatorConfig;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::TopicPartitionList;
use serde_json::Value;

fn brokers() -> String {
    std::env::var("HARBINGER_TEST_BROKERS").unwrap_or_else(|_| {
        panic!("HARBINGER_TEST_BROKERS is not set: run the Kafka tests through scripts/test.sh, which starts a broker")
    })
}

/// The broker is shared: tests that only use it hold it shared; the outage test, which freezes
/// it, holds it alone.
static BROKER: RwLock<()> = RwLock::new(());

fn share_broker() -> RwLockReadGuard<'static, ()> {
    BROKER.read().unwrap_or_else(|p| p.into_inner())
}

fn own_broker() -> RwLockWriteGuard<'static, ()> {
    BROKER.write().unwrap_or_else(|p| p.into_inner())
}

/// A running engine, killed if the test ends (or fails) without stopping it.
struct Engine(Child);

impl Engine {
    /// SIGKILL, as a crash.
    fn crash(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.crash();
    }
}

/// A name no other test (or earlier run against the same broker) uses.
fn fresh(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}-{}-{}",
        nanos % 1_000_000_000_000,
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Topics and group of one test.
struct Names {
    metrics: String,
    alerts: String,
    incidents: String,
    dead: String,
    group: String,
}

impl Names {
    fn new() -> Self {
        Names {
            metrics: fresh("metrics"),
            alerts: fresh("alerts"),
            incidents: fresh("incidents"),
            dead: fresh("dead"),
            group: fresh("group"),
        }
    }
}

/// Simulates `hours` hours, appends bad records and an end marker, and returns the file.
///
/// The end marker is one point per service a day after the data: it moves every partition's
/// watermark past the data, so every window closes and every alert resolves.
fn input(dir: &Path, hours: u64, services: usize, seed: u64) -> PathBuf {
    let sim = dir.join("sim");
    let config = SimulatorConfig {
        duration_ms: hours * 3_600_000,
        services,
        seed,
        ..SimulatorConfig::default()
    };
    simulate(config.clone(), &sim).expect("simulate");
    let path = sim.join("metrics.jsonl");
    let mut text = std::fs::read_to_string(&path).expect("read");
    text.push_str("{\"name\": \"broken\"\n");
    text.push_str("{\"name\":\"x\",\"labels\":{\"service\":\"front-end\"},\"timestamp\":1,\"value\":\"NaN\"}\n");
    let end = config.start_ms + config.duration_ms + 86_400_000;
    let services: BTreeSet<String> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| v["labels"]["service"].as_str().map(str::to_string))
        .collect();
    for s in services {
        text.push_str(&format!(
            "{{\"name\":\"end_marker\",\"labels\":{{\"service\":\"{s}\"}},\"timestamp\":{end},\"value\":0}}\n"
        ));
    }
    std::fs::write(&path, text).expect("write");
    path
}

/// Alert ids `harbinger replay` gives for `file`: what Kafka must reproduce.
fn reference_alerts(file: &Path, dir: &Path) -> BTreeSet<String> {
    let out = dir.join("reference");
    let cluster = cluster(1);
    replay(
        &[file.to_path_buf()],
        None,
        None,
        None,
        None,
        false,
        &out,
        &cluster,
    )
    .expect("replay");
    std::fs::read_to_string(out.join("alerts.jsonl"))
        .expect("alerts")
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).expect("json")["id"]
                .as_str()
                .expect("id")
                .to_string()
        })
        .collect()
}

/// Writes the engine's config for this test.
fn config(dir: &Path, names: &Names, checkpoints: bool, workers: usize) -> PathBuf {
    let path = dir.join("kafka.toml");
    let checkpoint = if checkpoints {
        format!(
            "checkpoint_dir = {:?}\ncheckpoint_interval_secs = 300\n",
            dir.join("checkpoints").display().to_string()
        )
    } else {
        String::new()
    };
    std::fs::write(
        &path,
        format!(
            r#"[engine]
workers = {workers}
{checkpoint}
[[sources]]
type = "kafka"
brokers = "{b}"
topic = "{m}"
group_id = "{g}"
idle_partition_timeout_secs = 20

[sources.properties]
"session.timeout.ms" = "6000"
"heartbeat.interval.ms" = "1000"

[[sinks]]
type = "kafka"
brokers = "{b}"
alerts_topic = "{a}"
incidents_topic = "{i}"
dead_letters_topic = "{d}"
"#,
            i = names.incidents,
            b = brokers(),
            m = names.metrics,
            g = names.group,
            a = names.alerts,
            d = names.dead,
        ),
    )
    .expect("write config");
    path
}

fn start_engine(config: &Path) -> Engine {
    start_engine_logging(config, None)
}

/// Starts the engine, its log going to `log` (else inherited).
fn start_engine_logging(config: &Path, log: Option<&Path>) -> Engine {
    let stderr = match log {
        Some(path) => Stdio::from(std::fs::File::create(path).expect("log file")),
        None => Stdio::inherit(),
    };
    Command::new(env!("CARGO_BIN_EXE_harbinger"))
        .args(["run", "--config"])
        .arg(config)
        .env("RUST_LOG", "harbinger=info")
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .map(Engine)
        .expect("start harbinger")
}

/// Checkpoint files written so far.
fn checkpoints(dir: &Path) -> usize {
    std::fs::read_dir(dir.join("checkpoints")).map_or(0, |d| {
        d.filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().starts_with("checkpoint-"))
            .count()
    })
}

fn stop_engine(mut engine: Engine) {
    let child = &mut engine.0;
    // SIGTERM: a clean stop.
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Every message of `topic` so far, as (key, payload), from the beginning: read until the topic
/// has been silent for two seconds. (tansu 0.6 reports high watermarks that lag the records it
/// serves, so "read up to the end offsets" would stop early.)
fn read_topic(topic: &str) -> Vec<(String, String)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("group.id", fresh("reader"))
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata");
    let mut tpl = TopicPartitionList::new();
    for t in metadata.topics() {
        for p in t.partitions() {
            tpl.add_partition_offset(topic, p.id(), rdkafka::Offset::Beginning)
                .expect("tpl");
        }
    }
    consumer.assign(&tpl).expect("assign");
    let mut out = Vec::new();
    let mut last = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(60);
    while last.elapsed() < Duration::from_secs(2) && Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            last = Instant::now();
            out.push((
                String::from_utf8_lossy(m.key().unwrap_or_default()).to_string(),
                String::from_utf8_lossy(m.payload().unwrap_or_default()).to_string(),
            ));
        }
    }
    out
}

/// Alert ids on the alerts topic; panics if one id carries two different payloads (duplicates
/// are allowed only as identical ids).
fn alert_ids(topic: &str) -> BTreeSet<String> {
    let mut by_id: BTreeMap<String, String> = BTreeMap::new();
    for (key, payload) in read_topic(topic) {
        let v: Value = serde_json::from_str(&payload).expect("alert JSON");
        assert_eq!(
            v["fingerprint"].as_str(),
            Some(key.as_str()),
            "alerts are keyed by fingerprint"
        );
        let id = v["id"].as_str().expect("id").to_string();
        if let Some(previous) = by_id.insert(id.clone(), payload.clone()) {
            assert_eq!(
                previous, payload,
                "a duplicate of {id} differs from the original"
            );
        }
    }
    by_id.into_keys().collect()
}

/// Waits until the alerts topic holds every `expected` id (or the deadline passes).
fn wait_for_alerts(
    topic: &str,
    expected: &BTreeSet<String>,
    timeout: Duration,
) -> BTreeSet<String> {
    let deadline = Instant::now() + timeout;
    loop {
        let got = alert_ids(topic);
        if got.is_superset(expected) || Instant::now() >= deadline {
            return got;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Writes simulator data to a fresh topic; `restarts` makes every message its own record batch.
///
/// tansu 0.6 answers a fetch from the middle of a record batch with the *next* batch (Kafka
/// returns the batch holding the offset), so a restart from a checkpoint offset would skip
/// messages on the test broker only; one message per batch keeps every offset a batch start.
fn setup(
    hours: u64,
    services: usize,
    seed: u64,
    restarts: bool,
) -> (tempfile::TempDir, Names, BTreeSet<String>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let names = Names::new();
    let file = input(dir.path(), hours, services, seed);
    let expected = reference_alerts(&file, dir.path());
    assert!(expected.len() > 20, "the data raises alerts to compare");
    let properties = if restarts {
        vec![("batch.num.messages".to_string(), "1".to_string())]
    } else {
        Vec::new()
    };
    produce(
        &brokers(),
        &names.metrics,
        &file,
        50,
        BatchBy::Entity,
        &properties,
    )
    .expect("produce");
    (dir, names, expected)
}

#[test]
fn kafka_in_and_out_gives_the_alerts_of_a_file_replay() {
    let _broker = share_broker();
    let (dir, names, expected) = setup(6, 12, 21, false);
    let engine = start_engine(&config(dir.path(), &names, false, 2));
    let got = wait_for_alerts(&names.alerts, &expected, Duration::from_secs(120));
    stop_engine(engine);
    let dead = read_topic(&names.dead);
    assert_eq!(
        got, expected,
        "alerts through Kafka equal the file replay's"
    );
    // Incidents: the same lifecycle events, keyed by incident id.
    let reference =
        std::fs::read_to_string(dir.path().join("reference/incidents.jsonl")).expect("incidents");
    let mut want: Vec<Value> = reference
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    let mut incidents: Vec<Value> = read_topic(&names.incidents)
        .into_iter()
        .map(|(key, payload)| {
            let v: Value = serde_json::from_str(&payload).expect("incident JSON");
            assert_eq!(v["incident_id"].as_str(), Some(key.as_str()));
            v
        })
        .collect();
    assert!(!want.is_empty(), "the data opens incidents to compare");
    want.sort_by_key(|v| v.to_string());
    incidents.sort_by_key(|v| v.to_string());
    assert_eq!(
        incidents, want,
        "incident events through Kafka equal the file replay's"
    );
    assert_eq!(
        dead.len(),
        2,
        "both bad records reach the dead-letter topic"
    );
    for (key, payload) in dead {
        let v: Value = serde_json::from_str(&payload).expect("dead letter JSON");
        assert_eq!(v["id"].as_str(), Some(key.as_str()));
        assert_eq!(v["position"]["kind"], "kafka");
        assert_eq!(v["position"]["topic"], names.metrics.as_str());
        assert!(v["reason"].is_string() && v["payload"].is_string(), "{v}");
    }
}

#[test]
fn sigkill_at_random_points_loses_no_alert() {
    let _broker = share_broker();
    let (dir, names, expected) = setup(24, 20, 22, true);
    let cfg = config(dir.path(), &names, true, 1);
    // Kill the engine three times at pseudo-random moments (seeded for reproducibility) after it
    // has written a new checkpoint, each time restarting from its checkpoint directory.
    let mut state = 0x5eed_u64;
    for round in 0..3 {
        let log = dir.path().join(format!("engine-{round}.log"));
        let before = checkpoints(dir.path());
        let mut engine = start_engine_logging(&cfg, Some(&log));
        let deadline = Instant::now() + Duration::from_secs(60);
        while checkpoints(dir.path()) <= before.min(2) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let wait_ms = (state >> 33) % 1_500;
        std::thread::sleep(Duration::from_millis(wait_ms));
        engine.crash();
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if round > 0 {
            assert!(
                text.contains("Resuming from a checkpoint"),
                "round {round} did not resume: {text}"
            );
        }
        eprintln!("round {round}: killed {wait_ms} ms after a checkpoint");
    }
    let engine = start_engine_logging(&cfg, Some(&dir.path().join("engine-final.log")));
    let got = wait_for_alerts(&names.alerts, &expected, Duration::from_secs(240));
    stop_engine(engine);
    let missing: Vec<_> = expected.difference(&got).collect();
    let extra: Vec<_> = got.difference(&expected).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{} alerts missing (first: {:?}), {} extra (first: {:?})",
        missing.len(),
        missing.iter().take(5).collect::<Vec<_>>(),
        extra.len(),
        extra.iter().take(5).collect::<Vec<_>>()
    );
    assert!(
        std::fs::read_dir(dir.path().join("checkpoints"))
            .expect("checkpoints")
            .count()
            > 0,
        "checkpoints were written"
    );
}

#[test]
fn a_30_second_broker_outage_loses_no_alert() {
    let _broker = own_broker();
    let pid: u32 = std::env::var("HARBINGER_BROKER_PID")
        .expect("HARBINGER_BROKER_PID is set by scripts/test.sh")
        .parse()
        .expect("pid");
    let (dir, names, expected) = setup(24, 20, 23, false);
    let engine = start_engine(&config(dir.path(), &names, true, 1));
    std::thread::sleep(Duration::from_millis(2_500));
    // The broker stops answering for 30 s (frozen: tansu's memory storage does not survive a
    // process restart, so an outage is a stopped process, not a killed one), then resumes.
    assert!(Command::new("kill")
        .args(["-STOP", &pid.to_string()])
        .status()
        .expect("kill")
        .success());
    std::thread::sleep(Duration::from_secs(30));
    assert!(Command::new("kill")
        .args(["-CONT", &pid.to_string()])
        .status()
        .expect("kill")
        .success());
    let got = wait_for_alerts(&names.alerts, &expected, Duration::from_secs(240));
    stop_engine(engine);
    assert_eq!(got, expected, "no alert lost across the outage");
}
