//! The binary as users run it: exit codes, error positions, the files each command writes.

use std::process::Command;

fn harbinger() -> Command {
    Command::new(env!("CARGO_BIN_EXE_harbinger"))
}

#[test]
fn validate_reports_every_error_with_file_line_col_and_exit_78() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("bad.toml");
    std::fs::write(
        &config,
        "[[windows]]\nname = \"1m\"\nsize_secs = 0\n\n[[detectors]]\ntype = \"robust_z\"\nwindow = \"2m\"\n",
    )
    .expect("write");
    let out = harbinger()
        .args(["validate", "--config"])
        .arg(&config)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(78));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let shown = config.display().to_string();
    assert!(
        stderr.contains(&format!("{shown}:3:13: size_secs must be")),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("{shown}:7:10: unknown window \"2m\"")),
        "{stderr}"
    );
}

#[test]
fn validate_accepts_the_embedded_default_and_shipped_rules() {
    let rules = concat!(env!("CARGO_MANIFEST_DIR"), "/rules");
    let out = harbinger()
        .args(["validate", "--rules", rules])
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn every_shipped_example_config_validates() {
    let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/examples");
    let mut checked = 0;
    for entry in std::fs::read_dir(examples).expect("examples") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "toml") {
            let out = harbinger()
                .args(["validate", "--config"])
                .arg(&path)
                .output()
                .expect("run");
            assert!(
                out.status.success(),
                "{}: {}",
                path.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            checked += 1;
        }
    }
    assert!(checked >= 3, "the examples are there to check");
}

#[test]
fn runtime_errors_exit_1_and_usage_errors_exit_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = harbinger()
        .args(["replay", "--input", "/nonexistent/metrics.jsonl", "--out"])
        .arg(dir.path())
        .output()
        .expect("run");
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = harbinger()
        .args(["replay", "--bogus"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn simulate_then_run_with_a_config_writes_alerts_and_a_summary() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = dir.path().join("sim");
    let out = harbinger()
        .args(["simulate", "--duration", "3h", "--seed", "3", "--out"])
        .arg(&sim)
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for f in ["metrics.jsonl", "truth.json", "topology.toml"] {
        assert!(sim.join(f).exists(), "{f}");
    }
    let config = dir.path().join("run.toml");
    std::fs::write(
        &config,
        "[[sources]]\ntype = \"file\"\npath = \"sim/metrics.jsonl\"\n\n\
         [[sinks]]\ntype = \"stdout\"\n\n[[sinks]]\ntype = \"jsonl\"\ndir = \"OUT\"\n"
            .replace("OUT", &dir.path().join("out").display().to_string()),
    )
    .expect("write");
    let out = harbinger()
        .args(["run", "--config"])
        .arg(&config)
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("OPENED"), "alert lines on stdout: {stdout}");
    let summary: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("out/summary.json")).expect("summary"),
    )
    .expect("json");
    // Per hour: 12 services × 8 metrics × 360 steps, plus each service's memory-limit gauge
    // once a minute (12 × 60).
    assert_eq!(summary["points"].as_u64(), Some(3 * (34_560 + 720)));
    assert!(summary["alerts"]["opened"].as_u64().unwrap_or(0) > 0);
}
