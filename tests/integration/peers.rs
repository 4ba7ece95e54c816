//! Peer comparison end to end: five hosts of one service report the same latency metric; when
//! all five move together only their own detectors may speak, and when one host drifts away from
//! the others it is reported as apart from its peers (`comparison="peers"`), with the same
//! output for one and two workers.

use std::fmt::Write as _;
use std::path::Path;

use crate::common::replay_on;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::Value;

const START_MS: u64 = 1_704_067_200_000;
const MINUTE: u64 = 60_000;
/// Minutes simulated.
const MINUTES: u64 = 240;
/// Every host doubles its latency at this minute and stays there (a shared change).
const SHARED_STEP_AT: u64 = 90;
/// From this minute `h4` drifts up by 4% of its level per minute, until it is 2.5 times its peers.
const DRIFT_FROM: u64 = 170;

const CONFIG: &str = r#"
[[windows]]
name = "1m"
size_secs = 60

[[detectors]]
type = "robust_z"
window = "1m"

[peers]
window = "1m"
feature = "mean"
metrics = "http_latency_ms"
"#;

/// Latency of `host` at `minute`, before noise.
fn level(host: usize, minute: u64) -> f64 {
    let base = 80.0 + 5.0 * host as f64;
    let shared = if minute >= SHARED_STEP_AT { 2.0 } else { 1.0 };
    let drift = if host == 4 && minute >= DRIFT_FROM {
        (1.0 + 0.04 * (minute - DRIFT_FROM) as f64).min(2.5)
    } else {
        1.0
    };
    base * shared * drift
}

/// Six points per minute per host, plus a CPU gauge per host that never moves (not compared).
fn write_input(path: &Path) {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut text = String::new();
    for minute in 0..MINUTES {
        for tick in 0..6 {
            let t = START_MS + minute * MINUTE + tick * 10_000;
            for host in 1..=5 {
                let v = level(host, minute) * (1.0 + rng.random_range(-0.03..0.03));
                writeln!(
                    text,
                    r#"{{"name":"http_latency_ms","labels":{{"service":"api","host":"h{host}"}},"timestamp":{t},"value":{v:.3}}}"#
                )
                .expect("write");
                let cpu = 0.4 + rng.random_range(-0.01..0.01);
                writeln!(
                    text,
                    r#"{{"name":"cpu_usage","labels":{{"service":"api","host":"h{host}"}},"timestamp":{t},"value":{cpu:.4}}}"#
                )
                .expect("write");
            }
        }
    }
    std::fs::write(path, text).expect("input");
}

fn alerts(out: &Path) -> Vec<Value> {
    std::fs::read_to_string(out.join("alerts.jsonl"))
        .expect("alerts")
        .lines()
        .map(|l| serde_json::from_str(l).expect("alert json"))
        .collect()
}

#[test]
fn the_host_that_drifts_from_its_peers_is_reported_and_a_shared_change_is_not() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("metrics.jsonl");
    write_input(&input);
    let cfg = dir.path().join("config.toml");
    std::fs::write(&cfg, CONFIG).expect("config");
    let outs = replay_on(
        dir.path(),
        std::slice::from_ref(&input),
        &cfg,
        "out",
        [1, 2],
    );
    assert_eq!(
        std::fs::read(outs[0].join("alerts.jsonl")).expect("alerts"),
        std::fs::read(outs[1].join("alerts.jsonl")).expect("alerts"),
        "one and two workers agree"
    );

    let all = alerts(&outs[0]);
    let apart: Vec<&Value> = all
        .iter()
        .filter(|a| a["labels"]["comparison"] == "peers")
        .collect();
    assert!(!apart.is_empty(), "the drifting host is reported");
    for a in &apart {
        assert_eq!(a["labels"]["host"], "h4", "only the drifting host: {a}");
        assert_eq!(a["labels"]["alertname"], "HarbingerAnomaly");
        assert!(
            a["detectors"]["peers"].as_f64().unwrap_or(0.0) >= 0.5,
            "{a}"
        );
        assert!(
            a["actual_value"].as_f64() > a["expected_value"].as_f64(),
            "{a}"
        );
        let summary = a["annotations"]["summary"].as_str().unwrap_or("");
        assert!(
            summary.contains("host=\"h4\"") && summary.contains("peers' median"),
            "the summary names the host and what it is compared with: {summary}"
        );
        let t = a["event_time"].as_u64().expect("event_time");
        assert!(
            t > START_MS + DRIFT_FROM * MINUTE,
            "nothing apart before the drift: {a}"
        );
    }
    let first = apart
        .iter()
        .filter_map(|a| a["event_time"].as_u64())
        .min()
        .expect("time");
    // The drift reaches the peers' spread after a few minutes; three windows confirm it.
    assert!(
        first <= START_MS + (DRIFT_FROM + 20) * MINUTE,
        "reported within 20 minutes of the drift's start (at {} min)",
        (first - START_MS) / MINUTE
    );
    // The shared step moved every host's own series, and no host apart from its peers.
    let own_at_step = all
        .iter()
        .filter(|a| a["labels"].get("comparison").is_none())
        .filter(|a| {
            let t = a["event_time"].as_u64().unwrap_or(0);
            (START_MS + SHARED_STEP_AT * MINUTE..START_MS + (SHARED_STEP_AT + 10) * MINUTE)
                .contains(&t)
        })
        .count();
    assert!(
        own_at_step > 0,
        "the hosts' own detectors see the shared step"
    );
}
