//! The alert lifecycle of one worker's series, as a plain state machine.
//!
//! A series' first anomalous window opens an alert; further anomalous windows update it (an event
//! only when its severity rises to a higher band, or at the window counts the correlation stage
//! waits for, `confirm_windows` and `lone_windows`, so downstream sees changes, not repetition);
//! after `resolve_after_ms` of event time with no anomalous window it resolves. Resolution runs
//! on a deadline, not on the next window, so a series that stops reporting still resolves. An
//! open alert's severity is the highest band its windows reached: it rises, never falls.
//!
//! An alert not yet confirmed (fewer than `confirm_windows` anomalous windows) resolves after
//! [`BLIP_QUIET_WINDOWS`] quiet windows instead (when that is shorter): a one-window blip is
//! over once the next windows are normal. Held open the full `resolve_after_ms`, a blip a few
//! minutes before a fault became the start of that fault's alert, which was then dated before
//! the fault and grouped as if it had come first (`docs/design.md`, "Alerts").
//!
//! Ids are deterministic: an event's id hashes the alert's fingerprint, start time, event kind and
//! sequence number, so a replay of the same input yields the same ids (consumers drop replays by
//! id).

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::models::peers::{COMPARISON_LABEL, PEERS_DETECTOR};
use crate::records::{AlertEvent, AlertRecord, AlertStatus, AnomalyType, Detection, Severity};
use crate::rules::{AnomalyTypeRules, SeverityBands};
use crate::series::{stable_hash, EventTime, SeriesId, SeriesKey};
use crate::time_format::rfc3339_millis;

/// How alerts are named, classified and resolved.
#[derive(Debug, Clone)]
pub struct AlertPolicy {
    /// Value of the `alertname` label.
    pub alertname: String,
    /// Quiet event time after the last anomalous window before an alert resolves.
    pub resolve_after_ms: u64,
    /// Labels naming a series' entity, in order of preference.
    pub entity_labels: Vec<String>,
    /// Score bands of each severity.
    pub bands: SeverityBands,
    /// Metric-name rules naming the anomaly type.
    pub types: AnomalyTypeRules,
    /// Base of `generatorURL` (`<base>?series=<fingerprint>`); absent when not configured.
    pub generator_url: Option<String>,
    /// Anomalous windows after which an alert counts as confirmed: an `updated` event marks the
    /// moment, so the correlation stage can tell persistent anomalies from one-window blips.
    pub confirm_windows: u64,
    /// Anomalous windows after which a lone alert may open an incident (`[grouping]
    /// lone_windows` of the correlation rules): an `updated` event marks that moment too.
    pub lone_windows: u64,
}

/// Quiet windows after which an unconfirmed alert resolves (see the module notes).
pub const BLIP_QUIET_WINDOWS: u64 = 2;

/// An open alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct OpenAlert {
    fingerprint: String,
    starts_at: EventTime,
    last_end: EventTime,
    deadline: EventTime,
    count: u64,
    severity: Severity,
    anomaly_type: AnomalyType,
    /// Events emitted so far for this alert, for unique ids.
    seq: u32,
    last: Detection,
}

/// Open alerts of one worker, by series.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AlertBook {
    open: HashMap<SeriesId, OpenAlert>,
}

impl AlertBook {
    /// Number of open alerts.
    pub fn open_count(&self) -> usize {
        self.open.len()
    }

    /// Applies one detection (at event time `d.end`). Returns the event to emit, if any, and the
    /// alert's new resolution deadline (the caller schedules a timer there).
    pub fn on_detection(
        &mut self,
        policy: &AlertPolicy,
        d: &Detection,
    ) -> (Option<AlertRecord>, EventTime) {
        let severity = policy.bands.classify(d.score).unwrap_or(Severity::Low);
        // How long the alert stays open without another anomalous window, at `count` windows.
        let quiet_for = |count: u64| {
            if count < policy.confirm_windows {
                let window = d.end.saturating_sub(d.start);
                policy
                    .resolve_after_ms
                    .min(BLIP_QUIET_WINDOWS.saturating_mul(window))
            } else {
                policy.resolve_after_ms
            }
        };
        match self.open.get_mut(&d.series) {
            Some(alert) => {
                alert.count += 1;
                let deadline = d.end + quiet_for(alert.count);
                alert.last_end = alert.last_end.max(d.end);
                alert.deadline = deadline.max(alert.deadline);
                alert.last = d.clone();
                // An open alert keeps the highest band it reached: the damper halves the score
                // of repeats, and a severity label that went down and back up would resolve and
                // re-fire the alert in Alertmanager (which identifies alerts by label set).
                let severity = severity.max(alert.severity);
                let changed = severity != alert.severity
                    || alert.count == policy.confirm_windows
                    || alert.count == policy.lone_windows;
                alert.severity = severity;
                let event = changed.then(|| record(policy, alert, AlertEvent::Updated, d.end));
                (event, alert.deadline)
            }
            None => {
                let fingerprint = fingerprint(policy, &d.key);
                let deadline = d.end + quiet_for(1);
                let mut alert = OpenAlert {
                    fingerprint,
                    starts_at: d.start,
                    last_end: d.end,
                    deadline,
                    count: 1,
                    severity,
                    anomaly_type: policy.types.classify(&d.key.name, d.direction, d.shape),
                    seq: 0,
                    last: d.clone(),
                };
                let event = record(policy, &mut alert, AlertEvent::Opened, d.end);
                self.open.insert(d.series, alert);
                (Some(event), deadline)
            }
        }
    }

    /// A resolution timer for `series` fired at `now`: resolves the alert if its deadline is
    /// `now` (a later anomalous window may have moved the deadline on).
    pub fn on_deadline(
        &mut self,
        policy: &AlertPolicy,
        series: SeriesId,
        now: EventTime,
    ) -> Option<AlertRecord> {
        if self.open.get(&series)?.deadline != now {
            return None;
        }
        let mut alert = self.open.remove(&series)?;
        Some(record(policy, &mut alert, AlertEvent::Resolved, now))
    }
}

/// Identifying labels of a series' alert: `alertname`, `metric` and the series labels. A series
/// label that clashes with a reserved name is kept as `exported_<name>`, as Prometheus does.
fn identity_labels(policy: &AlertPolicy, key: &SeriesKey) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    for (k, v) in &key.labels {
        let name = if matches!(k.as_str(), "alertname" | "metric" | "severity") {
            format!("exported_{k}")
        } else {
            k.clone()
        };
        labels.insert(name, v.clone());
    }
    labels.insert("alertname".into(), policy.alertname.clone());
    labels.insert("metric".into(), key.name.clone());
    labels
}

fn fingerprint(policy: &AlertPolicy, key: &SeriesKey) -> String {
    let mut bytes = Vec::new();
    for (k, v) in identity_labels(policy, key) {
        bytes.extend_from_slice(k.as_bytes());
        bytes.push(0xFE);
        bytes.extend_from_slice(v.as_bytes());
        bytes.push(0xFF);
    }
    format!("{:016x}", stable_hash(&bytes))
}

fn record(
    policy: &AlertPolicy,
    alert: &mut OpenAlert,
    event: AlertEvent,
    at: EventTime,
) -> AlertRecord {
    let d = &alert.last;
    let entity = d.key.entity(&policy.entity_labels).to_string();
    let mut labels = identity_labels(policy, &d.key);
    labels.insert("severity".into(), alert.severity.as_str().into());
    let id_input = format!(
        "{}|{}|{:?}|{}",
        alert.fingerprint, alert.starts_at, event, alert.seq
    );
    alert.seq += 1;
    let resolved = event == AlertEvent::Resolved;
    // A peer comparison's expected value is the peers' median, not the series' own baseline;
    // its summary names the whole key, since the entity alone does not say which host.
    let apart = d.key.label(COMPARISON_LABEL) == Some(PEERS_DETECTOR);
    let (subject, expected_as, deviated): (Cow<'_, str>, _, _) = if apart {
        (
            Cow::Owned(d.key.to_string()),
            "peers' median",
            "stands apart from its peers",
        )
    } else {
        (
            Cow::Borrowed(&d.key.name),
            "expected",
            "deviated from its baseline",
        )
    };
    let mut annotations = BTreeMap::new();
    annotations.insert(
        "summary".into(),
        format!(
            "{} on {}: {} {} is {} ({expected_as} {})",
            alert.anomaly_type.as_str(),
            entity,
            subject,
            d.affected_features
                .first()
                .map(String::as_str)
                .unwrap_or(""),
            short(d.actual),
            short(d.expected)
        ),
    );
    annotations.insert(
        "description".into(),
        format!(
            "{} {deviated}{}: {} = {} against an expected {} (deviation {}, threshold {}, \
             score {:.2}; detectors {}); {} anomalous window(s) since {}{}.",
            d.key,
            d.shape
                .map(|s| format!(" ({})", s.as_str()))
                .unwrap_or_default(),
            d.affected_features.join(", "),
            short(d.actual),
            short(d.expected),
            short(d.actual - d.expected),
            short(d.threshold),
            d.score,
            d.detectors
                .iter()
                .map(|(n, s)| format!("{n} {s:.2}"))
                .collect::<Vec<_>>()
                .join(", "),
            alert.count,
            rfc3339_millis(alert.starts_at),
            if resolved {
                format!(", quiet since {}", rfc3339_millis(alert.last_end))
            } else {
                String::new()
            }
        ),
    );
    AlertRecord {
        labels,
        annotations,
        starts_at: rfc3339_millis(alert.starts_at),
        ends_at: resolved.then(|| rfc3339_millis(alert.last_end)),
        generator_url: policy
            .generator_url
            .as_ref()
            .map(|base| format!("{base}?series={}", alert.fingerprint)),
        id: format!("{:016x}", stable_hash(id_input.as_bytes())),
        fingerprint: alert.fingerprint.clone(),
        event,
        status: if resolved {
            AlertStatus::Resolved
        } else {
            AlertStatus::Firing
        },
        anomaly_type: alert.anomaly_type,
        anomaly_shape: d.shape,
        severity: alert.severity,
        score: d.score,
        confidence: d.confidence,
        actual_value: d.actual,
        expected_value: d.expected,
        deviation: d.actual - d.expected,
        threshold: d.threshold,
        detectors: d.detectors.iter().cloned().collect(),
        affected_features: d.affected_features.clone(),
        count: alert.count,
        escalation_level: None,
        incident_id: None,
        muted_by: None,
        flapping: false,
        occurrences: None,
        entity,
        event_time: at,
    }
}

/// Four significant digits: enough for a human summary.
pub(crate) fn short(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return format!("{v}");
    }
    let digits = (3 - v.abs().log10().floor() as i32).max(0) as usize;
    format!("{v:.digits$}")
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::rules::Direction;

    fn policy() -> AlertPolicy {
        AlertPolicy {
            alertname: "HarbingerAnomaly".into(),
            resolve_after_ms: 300_000,
            entity_labels: vec!["service".into(), "host".into()],
            bands: SeverityBands::default(),
            types: AnomalyTypeRules::default(),
            generator_url: None,
            confirm_windows: 0,
            lone_windows: 0,
        }
    }

    fn detection(end: u64, score: f64) -> Detection {
        let key = SeriesKey::new(
            "latency_ms",
            [
                ("service".to_string(), "carts".to_string()),
                ("severity".to_string(), "x".to_string()),
            ],
        );
        Detection {
            series: key.id(),
            key: Arc::new(key),
            start: end - 60_000,
            end,
            score,
            confidence: 1.0,
            actual: 200.0,
            expected: 100.0,
            threshold: 150.0,
            direction: Direction::Up,
            shape: None,
            detectors: vec![("robust_z".into(), score)],
            affected_features: vec!["1m:mean".into()],
        }
    }

    /// The correlation stage waits for confirmation and for a lone alert's persistence: each
    /// count is marked by an `updated` event even when the severity band stays.
    #[test]
    fn updates_mark_the_confirmation_and_lone_window_counts() {
        let p = AlertPolicy {
            confirm_windows: 2,
            lone_windows: 4,
            ..policy()
        };
        let mut book = AlertBook::default();
        let events: Vec<Option<u64>> = (1..=6)
            .map(|i| {
                let (event, _) = book.on_detection(&p, &detection(60_000 * (i + 1), 0.6));
                event.map(|e| e.count)
            })
            .collect();
        assert_eq!(events, vec![Some(1), Some(2), None, Some(4), None, None]);
    }

    #[test]
    fn open_update_on_a_higher_band_keep_the_peak_then_resolve_at_deadline() {
        let p = policy();
        let mut book = AlertBook::default();
        let (opened, deadline) = book.on_detection(&p, &detection(120_000, 0.6));
        let opened = opened.unwrap();
        assert_eq!(opened.event, AlertEvent::Opened);
        assert_eq!(opened.severity, Severity::Low);
        assert_eq!(deadline, 420_000);
        assert_eq!(opened.labels["exported_severity"], "x");
        assert_eq!(opened.labels["severity"], "low");
        assert_eq!(opened.entity, "carts");
        // Same band: counted, no event.
        let (none, _) = book.on_detection(&p, &detection(180_000, 0.6));
        assert!(none.is_none());
        // Higher band: updated.
        let (updated, _) = book.on_detection(&p, &detection(240_000, 0.96));
        let updated = updated.unwrap();
        assert_eq!(updated.event, AlertEvent::Updated);
        assert_eq!(updated.count, 3);
        assert_eq!(updated.fingerprint, opened.fingerprint);
        assert_ne!(updated.id, opened.id);
        // A damped repeat scores low again: the alert keeps its peak band, no event.
        let (none, deadline) = book.on_detection(&p, &detection(300_000, 0.52));
        assert!(none.is_none(), "{none:?}");
        // The old deadline is stale.
        assert!(book.on_deadline(&p, opened_series(), 420_000).is_none());
        let resolved = book.on_deadline(&p, opened_series(), deadline).unwrap();
        assert_eq!(resolved.event, AlertEvent::Resolved);
        assert_eq!(resolved.status, AlertStatus::Resolved);
        assert_eq!(
            resolved.ends_at.as_deref(),
            Some("1970-01-01T00:05:00.000Z")
        );
        assert_eq!(book.open_count(), 0);
    }

    #[test]
    fn an_unconfirmed_blip_resolves_after_two_quiet_windows() {
        let p = AlertPolicy {
            confirm_windows: 2,
            ..policy()
        };
        let mut book = AlertBook::default();
        // One anomalous window ending at minute 2: open until minute 4 unless another comes.
        let (_, deadline) = book.on_detection(&p, &detection(120_000, 0.6));
        assert_eq!(deadline, 240_000);
        let resolved = book.on_deadline(&p, opened_series(), deadline).unwrap();
        assert_eq!(resolved.event, AlertEvent::Resolved);
        // The anomaly a window later is an alert of its own, dated from its own start.
        let (again, _) = book.on_detection(&p, &detection(300_000, 0.9));
        let again = again.unwrap();
        assert_eq!(
            (again.event, again.starts_at.as_str()),
            (AlertEvent::Opened, "1970-01-01T00:04:00.000Z")
        );
        // Confirmed at its second window, it stays open the full resolve_after.
        let (_, deadline) = book.on_detection(&p, &detection(360_000, 0.9));
        assert_eq!(deadline, 660_000);
        // Without confirmation (every alert confirmed at once) a blip waits the full time too.
        let mut book = AlertBook::default();
        let p = AlertPolicy {
            confirm_windows: 1,
            ..policy()
        };
        assert_eq!(book.on_detection(&p, &detection(120_000, 0.6)).1, 420_000);
    }

    fn opened_series() -> SeriesId {
        detection(60_000, 0.5).series
    }

    #[test]
    fn ids_are_deterministic() {
        let p = policy();
        let run = || {
            let mut book = AlertBook::default();
            book.on_detection(&p, &detection(120_000, 0.6))
                .0
                .unwrap()
                .id
        };
        assert_eq!(run(), run());
    }

    #[test]
    fn short_keeps_four_significant_digits() {
        assert_eq!(short(1234.5678), "1235");
        assert_eq!(short(12.345678), "12.35");
        assert_eq!(short(0.0123456), "0.01235");
    }
}
