//! Golden tests of the correlation stage: one directory per behaviour under `tests/golden/`,
//! each with its rules (`rules/`, only the files that differ from the shipped defaults),
//! optional `topology.toml`, the raw alert events `input.jsonl`, and `expected.txt`: the alert
//! and incident events the stage must emit, one line each, with ids replaced by their order of
//! appearance so the file reads. Regenerate after a deliberate change with
//! `UPDATE_GOLDEN=1 cargo test --test integration golden`.
//!
//! Input lines: `{"t": <secs>, "event": "opened|updated|resolved", "service": "...",
//! "metric": "...", "count": n, "up": bool, "severity": "...", "type": "..."}` (optional
//! `"labels": {...}` added to the series labels, and `"expected": x`, the detectors' expected
//! value, default 1.0: the value lies 1 above it, or 0.5 below, past a boundary half as far).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use harbinger::config;
use harbinger::engine::correlate_only::correlate_alerts;
use operators::records::{AlertEvent, AlertRecord, AlertStatus, AnomalyType, Severity};
use serde::Deserialize;

/// One line of a case's `input.jsonl`.
#[derive(Deserialize)]
pub struct InputAlert {
    t: u64,
    event: AlertEvent,
    service: String,
    metric: String,
    count: u64,
    #[serde(default = "yes")]
    up: bool,
    #[serde(default = "high")]
    severity: Severity,
    #[serde(default = "latency", rename = "type")]
    anomaly_type: AnomalyType,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default = "one")]
    expected: f64,
}

fn one() -> f64 {
    1.0
}

fn yes() -> bool {
    true
}
fn high() -> Severity {
    Severity::High
}
fn latency() -> AnomalyType {
    AnomalyType::LatencySpike
}

/// 2024-01-01T00:00:00Z, so times in the files are small numbers of seconds.
pub const BASE_MS: u64 = 1_704_067_200_000;

/// The raw alert event an input line stands for.
pub fn record(a: InputAlert) -> AlertRecord {
    let mut labels = a.labels;
    labels.insert("alertname".into(), "HarbingerAnomaly".into());
    labels.insert("service".into(), a.service.clone());
    labels.insert("metric".into(), a.metric.clone());
    // The raw alert's fingerprint, as the alert stage makes it: one per series.
    let extra: Vec<String> = labels
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "alertname" | "service" | "metric"))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let fp = if extra.is_empty() {
        format!("{}/{}", a.service, a.metric)
    } else {
        format!("{}/{}{{{}}}", a.service, a.metric, extra.join(","))
    };
    labels.insert("severity".into(), a.severity.as_str().into());
    let at = BASE_MS + a.t * 1000;
    AlertRecord {
        labels,
        annotations: BTreeMap::new(),
        starts_at: String::new(),
        ends_at: (a.event == AlertEvent::Resolved)
            .then(|| operators::time_format::rfc3339_millis(at)),
        generator_url: None,
        id: format!("{fp}|{}|{:?}", a.t, a.event),
        fingerprint: fp,
        event: a.event,
        status: if a.event == AlertEvent::Resolved {
            AlertStatus::Resolved
        } else {
            AlertStatus::Firing
        },
        anomaly_type: a.anomaly_type,
        anomaly_shape: None,
        severity: a.severity,
        score: 0.9,
        confidence: 1.0,
        actual_value: a.expected + if a.up { 1.0 } else { -0.5 },
        expected_value: a.expected,
        deviation: if a.up { 1.0 } else { -0.5 },
        threshold: a.expected + if a.up { 0.5 } else { -0.25 },
        detectors: BTreeMap::new(),
        affected_features: vec![],
        count: a.count,
        escalation_level: None,
        incident_id: None,
        muted_by: None,
        flapping: false,
        occurrences: None,
        entity: a.service,
        event_time: at,
    }
}

/// Short names in order of first appearance.
#[derive(Default)]
struct Names(BTreeMap<String, usize>, &'static str);

impl Names {
    fn of(&mut self, id: &str) -> String {
        let n = self.0.len() + 1;
        format!("{}{}", self.1, *self.0.entry(id.to_string()).or_insert(n))
    }
}

fn run_case(dir: &Path) -> String {
    let plan = config::load(None, Some(&dir.join("rules"))).expect("rules load");
    let topology = match dir.join("topology.toml") {
        p if p.exists() => config::intel::topology_file(&p).expect("topology"),
        _ => Vec::new(),
    };
    let input: Vec<AlertRecord> = std::fs::read_to_string(dir.join("input.jsonl"))
        .expect("input.jsonl")
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| record(serde_json::from_str(l).expect("input line")))
        .collect();
    let (alerts, incidents) = correlate_alerts(Arc::clone(&plan.correlate), &topology, input);
    let mut incident_names = Names(BTreeMap::new(), "I");
    let mut lines: Vec<(u64, u8, String)> = Vec::new();
    for a in &alerts {
        let mut line = format!(
            "alert    {:<8} {:<28} count={}",
            format!("{:?}", a.event).to_lowercase(),
            a.labels.get("service").cloned().unwrap_or_default() + "/" + &a.labels["metric"],
            a.count
        );
        if a.flapping {
            line.push_str(" flapping");
        }
        if a.annotations.contains_key("resolution") {
            line.push_str(" settled");
        }
        if let Some(m) = &a.muted_by {
            line.push_str(&format!(" muted_by={m}"));
        }
        if let Some(i) = &a.incident_id {
            line.push_str(&format!(" incident={}", incident_names.of(i)));
        }
        if let Some(l) = a.escalation_level.filter(|l| *l > 0) {
            line.push_str(&format!(" level={l}"));
        }
        lines.push((a.event_time, 0, line));
    }
    for i in &incidents {
        let mut line = format!(
            "incident {:<8} {} alerts={} entities={} cause={} level={}",
            format!("{:?}", i.event).to_lowercase(),
            incident_names.of(&i.incident_id),
            i.alerts.len(),
            i.entities.join(","),
            i.root_cause_candidates
                .first()
                .map_or("-".to_string(), |c| c.entity.clone()),
            i.escalation_level
        );
        if i.muted {
            line.push_str(" muted");
        }
        if let Some(m) = &i.merged_into {
            line.push_str(&format!(" merged_into={}", incident_names.of(m)));
        }
        lines.push((i.event_time, 1, line));
    }
    lines.sort_by_key(|a| (a.0, a.1));
    lines
        .into_iter()
        .map(|(t, _, l)| format!("t={:<6} {l}\n", (t - BASE_MS) / 1000))
        .collect()
}

#[test]
fn golden_correlation_cases() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut cases: Vec<_> = std::fs::read_dir(&root)
        .expect("tests/golden")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    cases.sort();
    assert!(!cases.is_empty(), "golden cases");
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut failures = Vec::new();
    for case in cases {
        let got = run_case(&case);
        let path = case.join("expected.txt");
        if update {
            std::fs::write(&path, &got).expect("write expected");
            continue;
        }
        let want = std::fs::read_to_string(&path).unwrap_or_default();
        if got != want {
            failures.push(format!(
                "{}:\n--- expected\n{want}--- got\n{got}",
                case.display()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
