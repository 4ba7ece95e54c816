//! Streaming forecasts over the simulator: per-window forecasts with nested intervals for every
//! configured series, a disk-filling incident predicted before the disk reaches its limit (the
//! lead time is printed, ours and the least-squares line's), and `forecasts.jsonl` byte-identical
//! for one and three workers.
//!
//! Run with `cargo test --test integration forecast_stream -- --nocapture` to see the figures
//! (a simulated day, three disk-filling incidents).

use std::collections::BTreeMap;
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};

use crate::common::{injected_faults, replay_on};
use harbinger::commands::simulate::simulate;
use harbinger::parse::timestamp::parse_text;
use harbinger::sources::simulator::SimulatorConfig;
use serde_json::Value;

/// The limit of the shipped `rules/capacity.toml` for `disk_used_percent`.
const LIMIT: f64 = 90.0;
const HORIZON: usize = 30;
const HOURS: u64 = 24;

const CONFIG: &str = r#"
[[windows]]
name = "1m"
size_secs = 60

[[detectors]]
type = "robust_z"
window = "1m"

[[detectors]]
type = "forecast_residual"
window = "1m"

[[forecasts]]
name = "disk"
window = "1m"
metric = "disk_used_percent"
horizon = 30
history = 120
min_history = 30
refit_every = 30
season = 1
"#;

fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect()
}

/// Simulates a day (seed 5, eighteen incidents in rotation, none overlapping) under `dir` and
/// replays it with the configuration `config` on 1 and on 3 workers; returns the simulation's
/// directory and the two output directories.
fn simulate_and_replay(dir: &Path, config: &str) -> (PathBuf, [PathBuf; 2]) {
    let sim = dir.join("sim");
    let sim_config = SimulatorConfig {
        duration_ms: HOURS * 3_600_000,
        seed: 5,
        incidents: Some(18),
        overlap_probability: 0.0,
        ..SimulatorConfig::default()
    };
    simulate(sim_config, &sim).expect("simulate");
    let cfg_path = dir.join("config.toml");
    std::fs::write(&cfg_path, config).expect("config");
    let input = vec![sim.join("metrics.jsonl")];
    let outs = replay_on(dir, &input, &cfg_path, "out", [1, 3]);
    (sim, outs)
}

fn service(v: &Value) -> &str {
    v["labels"]["service"].as_str().unwrap_or("")
}

/// The first forecast record of `root`'s series at a time in `span` whose capacity block has
/// `field`, as (lead before `limit_at`, the predicted time to the limit), both in ms.
fn first_warning(
    records: &[Value],
    root: &str,
    span: impl RangeBounds<u64>,
    limit_at: u64,
    field: &str,
) -> Option<(u64, u64)> {
    records
        .iter()
        .filter(|r| service(&r["key"]) == root)
        .filter(|r| span.contains(&r["time"].as_u64().unwrap_or(0)))
        .find(|r| r["capacity"][field].is_u64())
        .map(|r| {
            let t = r["time"].as_u64().unwrap_or(0);
            (limit_at - t, r["capacity"][field].as_u64().unwrap_or(0))
        })
}

/// A warning from [`first_warning`] in words.
fn describe_warning(warning: Option<(u64, u64)>) -> String {
    warning.map_or("never".to_string(), |(lead, ttl)| {
        format!(
            "{:.1} min before the limit (predicted time to limit {:.1} min)",
            lead as f64 / 60_000.0,
            ttl as f64 / 60_000.0
        )
    })
}

/// Prints the forecast's first warning beside the least-squares line's.
fn print_warnings(ours: Option<(u64, u64)>, linear: Option<(u64, u64)>) {
    println!(
        "  forecast: first capacity warning {}",
        describe_warning(ours)
    );
    println!(
        "  least-squares line (predict_linear): {}",
        describe_warning(linear)
    );
}

/// `root`'s capacity recommendations created in `span`, as (time, source), in file order.
fn capacity_recommendations(
    recommendations: &[Value],
    root: &str,
    span: impl RangeBounds<u64>,
) -> Vec<(u64, String)> {
    recommendations
        .iter()
        .filter(|r| r["category"] == "capacity_scaling" && r["component"] == root)
        .filter_map(|r| {
            let t = parse_text(r["created_at"].as_str()?).ok()?;
            span.contains(&t).then(|| (t, r["source"].to_string()))
        })
        .collect()
}

/// Prints how long before `limit_at` the optimizer first recommended capacity.
fn print_recommendation_lead(first: Option<&(u64, String)>, limit_at: u64) {
    match first {
        Some((t, source)) => println!(
            "  optimizer: capacity recommendation ({source}) {:.1} min before the limit",
            (limit_at - t) as f64 / 60_000.0
        ),
        None => println!("  optimizer: no capacity recommendation before the limit"),
    }
}

/// Forecast records with `field` set outside every incident span `(service, start, end)`:
/// false alarms.
fn warnings_outside(records: &[Value], spans: &[(String, u64, u64)], field: &str) -> usize {
    records
        .iter()
        .filter(|r| r["capacity"][field].is_u64())
        .filter(|r| {
            let t = r["time"].as_u64().unwrap_or(0);
            !spans
                .iter()
                .any(|(root, start, end)| service(&r["key"]) == root && t >= *start && t <= *end)
        })
        .count()
}

#[test]
fn forecasts_per_window_and_a_filling_disk_predicted_before_it_is_full() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Eighteen incidents in rotation: every sixth is a disk filling (IncidentKind::ALL's order).
    let (sim, outs) = simulate_and_replay(dir.path(), CONFIG);
    let one = std::fs::read(outs[0].join("forecasts.jsonl")).expect("forecasts");
    let three = std::fs::read(outs[1].join("forecasts.jsonl")).expect("forecasts");
    assert!(
        one == three,
        "forecasts.jsonl differs between 1 and 3 workers"
    );

    let records = lines(&outs[0].join("forecasts.jsonl"));
    // Per series: one forecast per window once the history is long enough, all disk series.
    let mut per_series: BTreeMap<String, usize> = BTreeMap::new();
    for r in &records {
        assert_eq!(r["key"]["name"], "disk_used_percent");
        assert_eq!(r["window"], "1m");
        let steps = r["steps"].as_array().expect("steps");
        assert_eq!(steps.len(), HORIZON);
        for s in steps {
            let f = |k: &str| s[k].as_f64().expect("number");
            assert!(
                f("lo95") <= f("lo80")
                    && f("lo80") <= f("yhat")
                    && f("yhat") <= f("hi80")
                    && f("hi80") <= f("hi95"),
                "{s}"
            );
        }
        assert!(
            r["capacity"].is_object(),
            "disk series carry a capacity forecast"
        );
        *per_series
            .entry(service(&r["key"]).to_string())
            .or_default() += 1;
    }
    // 1-minute windows, the first forecast after 30 windows.
    let windows = HOURS as usize * 60;
    assert!(per_series.len() >= 3, "{per_series:?}");
    for (s, n) in &per_series {
        assert!(
            *n >= windows - 40 && *n <= windows - 29,
            "{s}: {n} forecasts"
        );
    }

    // Each disk-filling incident: when did the disk really reach the limit, and when did each
    // method first warn (a forecast made during the incident, before the crossing, whose
    // predicted crossing is within the horizon)?
    let incidents = injected_faults(&sim, &["disk_filling"]);
    assert_eq!(incidents.len(), 3, "three disk-filling incidents");
    let metrics = lines(&sim.join("metrics.jsonl"));
    let recommendations = lines(&outs[0].join("recommendations.jsonl"));
    let mut spans = Vec::new();
    let mut leads = Vec::new();
    let mut rec_leads = Vec::new();
    for incident in &incidents {
        let root = incident["root_cause"].as_str().expect("root").to_string();
        let start = incident["start"].as_u64().expect("start");
        let end = incident["end"].as_u64().expect("end");
        spans.push((root.clone(), start, end));
        let Some(reached) = metrics
            .iter()
            .filter(|m| m["name"] == "disk_used_percent" && service(m) == root)
            .filter(|m| m["value"].as_f64().is_some_and(|v| v >= LIMIT))
            .filter_map(|m| m["timestamp"].as_u64())
            .filter(|t| *t >= start && *t <= end)
            .min()
        else {
            println!("disk filling on {root}: the limit was not reached before the fix");
            continue;
        };
        let first = |field| first_warning(&records, &root, start..=reached, reached, field);
        let ours = first("time_to_limit_ms");
        let linear = first("linear_time_to_limit_ms");
        println!(
            "disk filling on {root}: reaches {LIMIT}% {:.1} min after the incident starts",
            (reached - start) as f64 / 60_000.0
        );
        print_warnings(ours, linear);
        // The optimizer's first capacity recommendation for the service during the incident.
        let recommended = capacity_recommendations(&recommendations, &root, start..=reached)
            .into_iter()
            .min();
        print_recommendation_lead(recommended.as_ref(), reached);
        rec_leads.push((root.clone(), recommended.map(|(t, _)| reached - t)));
        leads.push((root, ours.map(|x| x.0)));
    }
    // Predictions of a crossing for any disk series outside the incidents: false alarms.
    let false_alarms = |field| warnings_outside(&records, &spans, field);
    println!(
        "warnings outside the incidents: forecast {}, least squares {} (of {} records)",
        false_alarms("time_to_limit_ms"),
        false_alarms("linear_time_to_limit_ms"),
        records.len()
    );
    assert!(!leads.is_empty(), "a disk reached the limit");
    for (root, lead) in rec_leads {
        assert!(
            lead.is_some_and(|l| l > 0),
            "{root}: no capacity recommendation before the disk reached {LIMIT}%"
        );
    }
    for (root, lead) in leads {
        let lead = lead.unwrap_or_else(|| panic!("{root}: the crossing was not predicted"));
        assert!(lead > 0, "{root}: lead time {lead} ms");
    }
}

const MEMORY_CONFIG: &str = r#"
[[windows]]
name = "1m"
size_secs = 60

[[detectors]]
type = "robust_z"
window = "1m"

[[forecasts]]
name = "memory"
window = "1m"
metric = "memory_used_bytes"
horizon = 30
history = 120
min_history = 30
refit_every = 30
season = 1
"#;

/// Memory leaks against a limit read from a sibling series: the simulator exports each
/// service's limit as `memory_limit_bytes`, and the shipped `rules/capacity.toml` reads it
/// (`limit_from`). A leak ends in an OOM kill when memory reaches the limit (the sample drops
/// back to the service's base); the forecast's warning, the optimizer's capacity
/// recommendation and a least-squares line over the same history are timed against that kill.
///
/// Run with `cargo test --test integration memory_leak -- --nocapture` for the figures.
#[test]
fn memory_leaks_are_predicted_before_the_limit_read_from_a_sibling_series() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Eighteen incidents in rotation: every sixth is a memory leak (IncidentKind::ALL's order).
    let (sim, outs) = simulate_and_replay(dir.path(), MEMORY_CONFIG);
    // The limit travels between workers (broadcast): the output must not depend on their count.
    for file in ["forecasts.jsonl", "recommendations.jsonl"] {
        let one = std::fs::read(outs[0].join(file)).expect("one worker");
        let three = std::fs::read(outs[1].join(file)).expect("three workers");
        assert!(one == three, "{file} differs between 1 and 3 workers");
    }

    let metrics = lines(&sim.join("metrics.jsonl"));
    let limits: BTreeMap<String, f64> = metrics
        .iter()
        .filter(|m| m["name"] == "memory_limit_bytes")
        .map(|m| (service(m).to_string(), m["value"].as_f64().expect("limit")))
        .collect();
    assert_eq!(limits.len(), 12, "one memory limit per service");
    let records = lines(&outs[0].join("forecasts.jsonl"));
    assert!(!records.is_empty());
    for r in &records {
        assert_eq!(r["key"]["name"], "memory_used_bytes");
        let limit = r["capacity"]["limit"]
            .as_f64()
            .expect("a capacity prediction");
        assert_eq!(r["capacity"]["rule"], "memory-limit");
        assert_eq!(Some(limit), limits.get(service(&r["key"])).copied());
    }

    let leaks = injected_faults(&sim, &["memory_leak"]);
    assert_eq!(leaks.len(), 3, "three memory leaks");
    let recommendations = lines(&outs[0].join("recommendations.jsonl"));
    let mut spans = Vec::new();
    let mut measured = 0;
    for leak in &leaks {
        let root = leak["root_cause"].as_str().expect("root").to_string();
        let start = leak["start"].as_u64().expect("start");
        let end = leak["end"].as_u64().expect("end");
        spans.push((root.clone(), start, end));
        // The OOM kill: the first sample in the incident at the limit, or where memory falls
        // back by more than a fifth (the sample after the kill is the restarted process).
        let samples: Vec<(u64, f64)> = metrics
            .iter()
            .filter(|m| m["name"] == "memory_used_bytes" && service(m) == root)
            .filter_map(|m| Some((m["timestamp"].as_u64()?, m["value"].as_f64()?)))
            .collect();
        let limit = limits[&root];
        let Some(killed) = samples
            .windows(2)
            .find(|w| w[1].0 >= start && (w[1].1 >= limit || w[1].1 < 0.8 * w[0].1))
            .map(|w| w[1].0)
        else {
            println!("memory leak on {root}: the limit was not reached");
            continue;
        };
        measured += 1;
        let first = |field| first_warning(&records, &root, start..killed, killed, field);
        let ours = first("time_to_limit_ms");
        let linear = first("linear_time_to_limit_ms");
        println!(
            "memory leak on {root}: reaches its {:.0} MiB limit (OOM kill) {:.1} min after the \
             incident starts",
            limit / 1_048_576.0,
            (killed - start) as f64 / 60_000.0
        );
        print_warnings(ours, linear);
        let recommended = capacity_recommendations(&recommendations, &root, start..killed);
        print_recommendation_lead(recommended.first(), killed);
        let ml = recommended
            .iter()
            .find(|(_, s)| s.contains("ml:capacity_scaling"));
        assert!(
            ml.is_some(),
            "{root}: no ml:capacity_scaling recommendation before the OOM kill"
        );
        let (lead, _) = ours.unwrap_or_else(|| panic!("{root}: the crossing was not predicted"));
        assert!(lead > 0);
    }
    assert!(measured >= 2, "at least two leaks reached the limit");
    let false_alarms = |field| warnings_outside(&records, &spans, field);
    println!(
        "warnings outside the leaks: forecast {}, least squares {} (of {} records)",
        false_alarms("time_to_limit_ms"),
        false_alarms("linear_time_to_limit_ms"),
        records.len()
    );
}
