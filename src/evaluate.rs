//! Scoring a run against the simulator's ground truth (`truth.json`): was every injected incident
//! alerted on an affected entity, how fast, and how many alerts matched no incident.
//!
//! Definitions (stated once, used by tests, benchmark scripts and `harbinger evaluate`):
//! * An incident is *detected* when an alert on one of its affected entities opens (or updates)
//!   with event time between its start and `detect_windows` windows after it.
//! * A *false alert* is an opened alert whose entity no incident affects at that time; an incident
//!   covers its entities from one window before its start to `grace_ms` after its end (recovery
//!   transients, such as the restart after a memory-leak fix, belong to the incident).

use std::collections::BTreeMap;
use std::path::Path;

use operators::records::{AlertEvent, AlertRecord};
use serde::{Deserialize, Serialize};

/// One incident as read from `truth.json`.
#[derive(Debug, Clone, Deserialize)]
pub struct TruthIncident {
    /// Incident id.
    pub id: String,
    /// Kind.
    #[serde(rename = "type")]
    pub kind: String,
    /// Root-cause entity.
    pub root_cause: String,
    /// Affected entities.
    pub affected: Vec<String>,
    /// Start (ms).
    pub start: u64,
    /// End (ms).
    pub end: u64,
}

/// `truth.json`.
#[derive(Debug, Clone, Deserialize)]
pub struct TruthFile {
    /// Injected incidents.
    pub incidents: Vec<TruthIncident>,
    /// The simulated span, when recorded.
    #[serde(default)]
    pub simulation: Option<SimulationSpan>,
}

/// The simulated time span.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct SimulationSpan {
    /// First sample (ms).
    pub start: u64,
    /// End of the simulation (ms).
    pub end: u64,
}

/// Evaluation settings.
#[derive(Debug, Clone, Copy)]
pub struct EvalConfig {
    /// Window length (ms).
    pub window_ms: u64,
    /// Windows after an incident's start within which it must be alerted.
    pub detect_windows: u64,
    /// How long after an incident's end its entities' alerts still belong to it.
    pub grace_ms: u64,
}

impl Default for EvalConfig {
    fn default() -> Self {
        EvalConfig {
            window_ms: 60_000,
            detect_windows: 5,
            grace_ms: 15 * 60_000,
        }
    }
}

/// Per-incident outcome.
#[derive(Debug, Clone, Serialize)]
pub struct IncidentOutcome {
    /// Incident id.
    pub id: String,
    /// Kind.
    pub kind: String,
    /// Detected in time.
    pub detected: bool,
    /// Delay from start to the first alert in time (ms).
    pub delay_ms: Option<u64>,
}

/// The evaluation.
#[derive(Debug, Clone, Serialize)]
pub struct Evaluation {
    /// Incidents injected.
    pub incidents: usize,
    /// Incidents detected in time.
    pub detected: usize,
    /// Mean detection delay over detected incidents (s).
    pub mean_delay_secs: f64,
    /// Opened alerts.
    pub opened_alerts: usize,
    /// Opened alerts that match no incident.
    pub false_alerts: usize,
    /// Simulated hours the alerts cover.
    pub hours: f64,
    /// False alerts per simulated hour.
    pub false_alerts_per_hour: f64,
    /// Per incident.
    pub outcomes: Vec<IncidentOutcome>,
    /// False alerts by metric (where the noise comes from).
    pub false_by_metric: BTreeMap<String, usize>,
}

/// Scores `alerts` against `truth`.
pub fn evaluate(truth: &TruthFile, alerts: &[AlertRecord], cfg: EvalConfig) -> Evaluation {
    let active = |a: &AlertRecord| a.event == AlertEvent::Opened || a.event == AlertEvent::Updated;
    let mut outcomes = Vec::new();
    for inc in &truth.incidents {
        let deadline = inc.start + cfg.detect_windows * cfg.window_ms;
        let first = alerts
            .iter()
            .filter(|a| active(a) && inc.affected.contains(&a.entity))
            .filter(|a| a.event_time >= inc.start && a.event_time <= deadline)
            .map(|a| a.event_time)
            .min();
        outcomes.push(IncidentOutcome {
            id: inc.id.clone(),
            kind: inc.kind.clone(),
            detected: first.is_some(),
            delay_ms: first.map(|t| t - inc.start),
        });
    }
    let mut false_alerts = 0;
    let mut false_by_metric = BTreeMap::new();
    let opened: Vec<&AlertRecord> = alerts
        .iter()
        .filter(|a| a.event == AlertEvent::Opened)
        .collect();
    for a in &opened {
        let explained = truth.incidents.iter().any(|inc| {
            inc.affected.contains(&a.entity)
                && a.event_time + cfg.window_ms >= inc.start
                && a.event_time <= inc.end + cfg.grace_ms
        });
        if !explained {
            false_alerts += 1;
            let metric = a.labels.get("metric").cloned().unwrap_or_default();
            *false_by_metric.entry(metric).or_insert(0) += 1;
        }
    }
    let span = truth
        .simulation
        .map(|s| (s.start, s.end))
        .unwrap_or_else(|| {
            let times = alerts.iter().map(|a| a.event_time);
            (times.clone().min().unwrap_or(0), times.max().unwrap_or(0))
        });
    let hours = (span.1.saturating_sub(span.0)) as f64 / 3_600_000.0;
    let delays: Vec<u64> = outcomes.iter().filter_map(|o| o.delay_ms).collect();
    Evaluation {
        incidents: outcomes.len(),
        detected: delays.len(),
        mean_delay_secs: if delays.is_empty() {
            0.0
        } else {
            delays.iter().sum::<u64>() as f64 / delays.len() as f64 / 1000.0
        },
        opened_alerts: opened.len(),
        false_alerts,
        hours,
        false_alerts_per_hour: if hours > 0.0 {
            false_alerts as f64 / hours
        } else {
            0.0
        },
        outcomes,
        false_by_metric,
    }
}

/// Reads `truth.json` and an `alerts.jsonl`.
pub fn load(truth: &Path, alerts: &Path) -> Result<(TruthFile, Vec<AlertRecord>), String> {
    let t = std::fs::read_to_string(truth).map_err(|e| format!("{}: {e}", truth.display()))?;
    let truth: TruthFile =
        serde_json::from_str(&t).map_err(|e| format!("{}: {e}", truth.display()))?;
    let text = std::fs::read_to_string(alerts).map_err(|e| format!("{}: {e}", alerts.display()))?;
    let mut records = Vec::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        records.push(
            serde_json::from_str(line)
                .map_err(|e| format!("{}:{}: {e}", alerts.display(), i + 1))?,
        );
    }
    Ok((truth, records))
}
