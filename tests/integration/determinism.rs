//! Determinism and correctness of the dataflow: the same input gives byte-identical JSONL with 1,
//! 2 and 3 workers, and the window features equal a plain sequential computation (the oracle).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::common::{cluster, replay_on};
use harbinger::commands::pipeline::replay;
use harbinger::commands::simulate::simulate;
use harbinger::sources::simulator::SimulatorConfig;
use serde_json::Value;

/// Simulates 4 hours and splits the metrics into three files by service (each series stays in
/// one partition), adding a few bad and late records to each so dead letters flow too.
fn partitioned_input(dir: &Path) -> Vec<PathBuf> {
    let sim = dir.join("sim");
    let config = SimulatorConfig {
        duration_ms: 4 * 3_600_000,
        seed: 11,
        incidents: Some(3),
        ..SimulatorConfig::default()
    };
    simulate(config, &sim).expect("simulate");
    let text = std::fs::read_to_string(sim.join("metrics.jsonl")).expect("metrics");
    let paths: Vec<PathBuf> = (0..3)
        .map(|i| dir.join(format!("part-{i}.jsonl")))
        .collect();
    let mut files: Vec<std::fs::File> = paths
        .iter()
        .map(|p| std::fs::File::create(p).expect("create"))
        .collect();
    for (n, line) in text.lines().enumerate() {
        let v: Value = serde_json::from_str(line).expect("json");
        let service = v["labels"]["service"].as_str().expect("service");
        let part = service.bytes().map(usize::from).sum::<usize>() % 3;
        writeln!(files[part], "{line}").expect("write");
        if n % 5_000 == 17 {
            writeln!(files[part], "{{\"name\": \"broken\", \"value\": 1}}").expect("write");
            // Late: an hour before the start of the simulation's data.
            writeln!(
                files[part],
                r#"{{"name":"late_metric","labels":{{"service":"{service}"}},"timestamp":1704060000000,"value":1}}"#
            )
            .expect("write");
        }
    }
    paths
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn output_is_byte_identical_for_one_two_and_three_workers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let inputs = partitioned_input(dir.path());
    let mut outputs = Vec::new();
    for workers in [1, 2, 3] {
        let out = dir.path().join(format!("out-{workers}"));
        replay(
            &inputs,
            None,
            None,
            None,
            None,
            true,
            &out,
            &cluster(workers),
        )
        .expect("replay");
        outputs.push(out);
    }
    let first = &outputs[0];
    let alerts = read(&first.join("alerts.jsonl"));
    assert!(alerts.len() > 1000, "the run produced alerts to compare");
    let dead = read(&first.join("dead_letters.jsonl"));
    assert!(!dead.is_empty(), "the run produced dead letters to compare");
    let recommendations = read(&first.join("recommendations.jsonl"));
    assert!(
        !recommendations.is_empty(),
        "the run produced recommendations to compare"
    );
    for other in &outputs[1..] {
        for file in [
            "alerts.jsonl",
            "dead_letters.jsonl",
            "features.jsonl",
            "incidents.jsonl",
            "recommendations.jsonl",
        ] {
            assert!(
                read(&first.join(file)) == read(&other.join(file)),
                "{file} differs between {} and {}",
                first.display(),
                other.display()
            );
        }
    }
}

/// Replays `inputs` with `examples/<example>.toml` on 1 and on 3 workers; the output dirs.
fn replay_example(dir: &Path, inputs: &[PathBuf], example: &str) -> [PathBuf; 2] {
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("examples/{example}.toml"));
    replay_on(dir, inputs, &config, example, [1, 3])
}

#[test]
fn every_detector_output_is_byte_identical_for_one_and_three_workers() {
    // The ensemble (every detector kind, calibration, fusion, damping) and the entity operator,
    // which joins series owned by different workers, must not depend on the worker count either.
    let dir = tempfile::tempdir().expect("tempdir");
    let inputs = partitioned_input(dir.path());
    let outputs: Vec<Vec<u8>> = replay_example(dir.path(), &inputs, "all-detectors")
        .iter()
        .map(|out| read(&out.join("alerts.jsonl")))
        .collect();
    let text = String::from_utf8_lossy(&outputs[0]);
    assert!(
        text.contains("\"one_class_svm\"") && text.contains("\"isolation_forest\""),
        "alerts carry every detector's score"
    );
    assert!(
        text.contains("entity_anomaly"),
        "the entity operator produced alerts to compare"
    );
    assert!(
        outputs[0] == outputs[1],
        "alerts.jsonl differs between 1 and 3 workers"
    );
}

#[test]
fn contextual_detector_output_is_byte_identical_for_one_and_three_workers() {
    // The contextual novelty detector (a fact table per series, its rest period) runs in the
    // dataflow like every kind. The NAB example's detectors, with a warm-up short enough for
    // the 4-hour simulation's 1-minute windows.
    let dir = tempfile::tempdir().expect("tempdir");
    let inputs = partitioned_input(dir.path());
    let example =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/nab.toml"))
            .expect("examples/nab.toml");
    let config = dir.path().join("contextual.toml");
    std::fs::write(
        &config,
        example.replace(
            "type = \"contextual\"\n",
            "type = \"contextual\"\nparams = { warmup_len = 30 }\n",
        ),
    )
    .expect("write config");
    let outputs: Vec<Vec<u8>> = replay_on(dir.path(), &inputs, &config, "contextual", [1, 3])
        .iter()
        .map(|out| read(&out.join("alerts.jsonl")))
        .collect();
    assert!(
        String::from_utf8_lossy(&outputs[0]).contains("\"contextual\""),
        "alerts carry the contextual detector's score"
    );
    assert!(
        outputs[0] == outputs[1],
        "alerts.jsonl differs between 1 and 3 workers"
    );
}

#[test]
fn forecasts_are_byte_identical_for_one_and_three_workers() {
    // The forecast operator (refits, level-shift refits, state updates, capacity predictions)
    // and the forecast-residual detector, with the shipped example config.
    let dir = tempfile::tempdir().expect("tempdir");
    let inputs = partitioned_input(dir.path());
    let outputs = replay_example(dir.path(), &inputs, "forecast");
    let forecasts = read(&outputs[0].join("forecasts.jsonl"));
    let text = String::from_utf8_lossy(&forecasts);
    assert!(
        text.contains("\"disk_used_percent\"") && text.contains("\"memory_used_bytes\""),
        "both specs produced forecasts to compare"
    );
    assert!(
        text.contains("\"capacity\":{"),
        "capacity predictions to compare"
    );
    let alerts = read(&outputs[0].join("alerts.jsonl"));
    assert!(
        String::from_utf8_lossy(&alerts).contains("\"forecast_residual\""),
        "alerts carry the forecast-residual detector's score"
    );
    for file in ["forecasts.jsonl", "alerts.jsonl"] {
        assert!(
            read(&outputs[0].join(file)) == read(&outputs[1].join(file)),
            "{file} differs between 1 and 3 workers"
        );
    }
}

/// A plain sequential computation of the 1-minute tumbling features.
#[derive(Default)]
struct OracleWindow {
    count: u64,
    sum: f64,
    min: f64,
    max: f64,
    last: (u64, f64),
}

#[test]
fn window_features_match_a_sequential_oracle() {
    let dir = tempfile::tempdir().expect("tempdir");
    let inputs = partitioned_input(dir.path());
    let out = dir.path().join("out");
    replay(&inputs, None, None, None, None, true, &out, &cluster(2)).expect("replay");

    // Oracle: every valid, on-time point, grouped by (series, minute).
    let mut oracle: BTreeMap<(String, u64), OracleWindow> = BTreeMap::new();
    for path in &inputs {
        for line in std::fs::read_to_string(path).expect("read").lines() {
            let v: Value = serde_json::from_str(line).expect("json");
            let (Some(ts), Some(value)) = (v["timestamp"].as_u64(), v["value"].as_f64()) else {
                continue;
            };
            if ts < 1_704_067_200_000 {
                continue; // the deliberately late points
            }
            let labels = v["labels"].as_object().expect("labels");
            let key = format!(
                "{}|{}|{}",
                v["name"].as_str().expect("name"),
                labels["host"].as_str().unwrap_or(""),
                labels["service"].as_str().unwrap_or("")
            );
            let w = oracle.entry((key, ts / 60_000)).or_insert(OracleWindow {
                min: f64::INFINITY,
                max: f64::NEG_INFINITY,
                ..OracleWindow::default()
            });
            w.count += 1;
            w.sum += value;
            w.min = w.min.min(value);
            w.max = w.max.max(value);
            if ts >= w.last.0 {
                w.last = (ts, value);
            }
        }
    }

    let mut seen = 0;
    for line in std::fs::read_to_string(out.join("features.jsonl"))
        .expect("features")
        .lines()
    {
        let f: Value = serde_json::from_str(line).expect("json");
        let labels: BTreeMap<String, String> =
            serde_json::from_value(f["key"]["labels"].clone()).expect("labels object");
        let key = format!(
            "{}|{}|{}",
            f["key"]["name"].as_str().expect("name"),
            labels.get("host").map_or("", String::as_str),
            labels.get("service").map_or("", String::as_str)
        );
        let end = f["end"].as_u64().expect("end");
        let w = oracle
            .get(&(key.clone(), end / 60_000 - 1))
            .unwrap_or_else(|| panic!("engine emitted a window the oracle lacks: {key} {end}"));
        let values = &f["values"];
        assert_eq!(values["count"].as_u64(), Some(w.count), "{key} {end}");
        let mean = values["mean"].as_f64().expect("mean");
        assert!(
            (mean - w.sum / w.count as f64).abs() <= 1e-9 * mean.abs().max(1.0),
            "{key} {end}"
        );
        assert_eq!(values["min"].as_f64(), Some(w.min), "{key} {end}");
        assert_eq!(values["max"].as_f64(), Some(w.max), "{key} {end}");
        assert_eq!(values["last"].as_f64(), Some(w.last.1), "{key} {end}");
        seen += 1;
    }
    assert_eq!(
        seen,
        oracle.len(),
        "every oracle window was emitted exactly once"
    );
}
