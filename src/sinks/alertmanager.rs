//! The Alertmanager sink: posts Harbinger's alerts to Alertmanager's `POST /api/v2/alerts`, so
//! existing routes, receivers, silences and inhibitions keep working.
//!
//! What Alertmanager receives, and why:
//! * Each alert keeps its labels and gains the label `incident_id`: Alertmanager identifies an
//!   alert by its label set and groups by labels only, so a route with
//!   `group_by: [incident_id]` sends one notification per Harbinger incident.
//! * The incident's root cause travels as annotations (`root_cause`, `root_cause_score`,
//!   `root_cause_evidence`, `incident_priority`): annotations may change without changing the
//!   alert's identity, and root causes are re-ranked as evidence arrives.
//! * By default only alerts that belong to an incident are sent (`uncorrelated = true` sends
//!   the others too): the incident is the unit people are paged for.
//! * Muted alerts (silenced or inhibited by Harbinger's rules) are not sent as firing; one that
//!   was firing is sent as resolved.
//! * When an alert moves to another incident its label set changes, so the old label set is
//!   resolved and the new one fires.
//! * Alertmanager resolves a firing alert nobody re-sends within its `resolve_timeout`, so a
//!   background thread re-posts every firing alert each `resend` interval, as Prometheus does.
//!
//! The sink consumes the correlation stage's combined output (alerts and incidents of one time
//! together), so an alert is always sent with the root cause of the incident as of its own time.
//! Memory: one entry per firing alert and per open incident.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use operators::correlate::CorrelateOut;
use operators::records::{AlertEvent, AlertRecord, IncidentRecord};
use operators::series::EventTime;
use operators::time_format::rfc3339_millis;
use serde::Serialize;

use super::RecordSink;

/// How long one HTTP request may take before the post counts as failed. Alertmanager answers
/// on its own; five seconds covers a busy server without stalling the worker for long.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Settings of the sink (from `[[sinks]] type = "alertmanager"`).
#[derive(Debug, Clone, PartialEq)]
pub struct AlertmanagerSettings {
    /// Base URL, e.g. `http://127.0.0.1:9093` (the sink appends `/api/v2/alerts`).
    pub url: String,
    /// Also send alerts that belong to no incident.
    pub uncorrelated: bool,
    /// Re-post firing alerts this often (must be below Alertmanager's `resolve_timeout`, 5 min
    /// by default).
    pub resend: Duration,
}

/// One alert in Alertmanager's v2 API shape (`postableAlert`).
#[derive(Debug, Clone, PartialEq, Serialize)]
struct PostableAlert {
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
    #[serde(rename = "startsAt", skip_serializing_if = "String::is_empty")]
    starts_at: String,
    #[serde(rename = "endsAt", skip_serializing_if = "Option::is_none")]
    ends_at: Option<String>,
    #[serde(rename = "generatorURL", skip_serializing_if = "Option::is_none")]
    generator_url: Option<String>,
}

/// The top-ranked cause of an open incident, as annotations show it.
#[derive(Debug, Clone, PartialEq)]
struct Cause {
    entity: String,
    score: f64,
    evidence: String,
    priority: f64,
}

/// What the sink remembers: enough to re-send firing alerts and to re-annotate them.
struct Book {
    agent: ureq::Agent,
    endpoint: String,
    uncorrelated: bool,
    causes: BTreeMap<String, Cause>,
    /// Firing alerts as last sent, by fingerprint, with their latest record.
    firing: BTreeMap<String, (PostableAlert, AlertRecord)>,
}

impl Book {
    fn post(&self, alerts: &[PostableAlert]) -> std::io::Result<()> {
        if alerts.is_empty() {
            return Ok(());
        }
        let body = serde_json::to_vec(alerts)?;
        self.agent
            .post(&self.endpoint)
            .header("Content-Type", "application/json")
            .send(&body[..])
            .map(|_| ())
            .map_err(|e| std::io::Error::other(format!("POST {}: {e}", self.endpoint)))
    }

    /// The Alertmanager form of `a`, or `None` when it must not fire there.
    fn postable(&self, a: &AlertRecord) -> Option<PostableAlert> {
        if a.muted_by.is_some() || (a.incident_id.is_none() && !self.uncorrelated) {
            return None;
        }
        let mut labels = a.labels.clone();
        let mut annotations = a.annotations.clone();
        if let Some(id) = &a.incident_id {
            labels.insert("incident_id".into(), id.clone());
            if let Some(c) = self.causes.get(id) {
                annotations.insert("root_cause".into(), c.entity.clone());
                annotations.insert("root_cause_score".into(), format!("{:.2}", c.score));
                annotations.insert("root_cause_evidence".into(), c.evidence.clone());
                annotations.insert("incident_priority".into(), format!("{:.0}", c.priority));
            }
        }
        Some(PostableAlert {
            labels,
            annotations,
            starts_at: a.starts_at.clone(),
            ends_at: (a.status == operators::records::AlertStatus::Resolved).then(|| {
                a.ends_at
                    .clone()
                    .unwrap_or_else(|| rfc3339_millis(a.event_time))
            }),
            generator_url: a.generator_url.clone(),
        })
    }

    /// Applies one time's output; returns what to post.
    fn apply(&mut self, time: EventTime, records: &[CorrelateOut]) -> Vec<PostableAlert> {
        let mut recaused: BTreeSet<String> = BTreeSet::new();
        let mut ended: Vec<String> = Vec::new();
        for r in records {
            if let CorrelateOut::Incident(i) = r {
                if i.event == AlertEvent::Resolved {
                    ended.push(i.incident_id.clone());
                }
                if let Some(c) = cause_of(i) {
                    if self.causes.get(&i.incident_id) != Some(&c) {
                        recaused.insert(i.incident_id.clone());
                        self.causes.insert(i.incident_id.clone(), c);
                    }
                }
            }
        }
        let mut out = Vec::new();
        let mut sent: BTreeSet<String> = BTreeSet::new();
        for r in records {
            let CorrelateOut::Alert(a) = r else { continue };
            sent.insert(a.fingerprint.clone());
            let next = self.postable(a);
            let before = self.firing.remove(&a.fingerprint);
            if let Some((old, _)) = before {
                // A changed identity (new incident) or a mute ends what Alertmanager holds.
                if next.as_ref().is_none_or(|n| n.labels != old.labels) {
                    out.push(PostableAlert {
                        ends_at: Some(rfc3339_millis(time)),
                        ..old
                    });
                }
            }
            if let Some(n) = next {
                if n.ends_at.is_none() {
                    self.firing
                        .insert(a.fingerprint.clone(), (n.clone(), a.clone()));
                }
                out.push(n);
            }
        }
        // Re-annotate the firing alerts of incidents whose root cause changed.
        let stale: Vec<AlertRecord> = self
            .firing
            .iter()
            .filter(|(fp, (_, a))| {
                !sent.contains(*fp) && a.incident_id.as_ref().is_some_and(|i| recaused.contains(i))
            })
            .map(|(_, (_, a))| a.clone())
            .collect();
        for a in stale {
            if let Some(n) = self.postable(&a) {
                self.firing.insert(a.fingerprint.clone(), (n.clone(), a));
                out.push(n);
            }
        }
        for id in ended {
            self.causes.remove(&id);
        }
        out
    }
}

fn cause_of(i: &IncidentRecord) -> Option<Cause> {
    i.root_cause_candidates.first().map(|c| Cause {
        entity: c.entity.clone(),
        score: c.score,
        evidence: c.evidence.join("; "),
        priority: i.priority_score,
    })
}

/// Posts alerts, annotated with their incident, to Alertmanager.
pub struct AlertmanagerSink {
    book: Arc<Mutex<Book>>,
    stop: Option<mpsc::Sender<()>>,
    resender: Option<JoinHandle<()>>,
}

impl AlertmanagerSink {
    /// A sink posting to `settings.url`; starts the re-send thread.
    pub fn new(settings: &AlertmanagerSettings) -> Self {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(REQUEST_TIMEOUT))
            .build()
            .into();
        let book = Arc::new(Mutex::new(Book {
            agent,
            endpoint: format!("{}/api/v2/alerts", settings.url.trim_end_matches('/')),
            uncorrelated: settings.uncorrelated,
            causes: BTreeMap::new(),
            firing: BTreeMap::new(),
        }));
        let (stop, stopped) = mpsc::channel::<()>();
        let shared = book.clone();
        let every = settings.resend;
        let resender = std::thread::Builder::new()
            .name("alertmanager-resend".into())
            .spawn(move || loop {
                match stopped.recv_timeout(every) {
                    Err(RecvTimeoutError::Timeout) => {}
                    Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
                }
                let Ok(book) = shared.lock() else { return };
                let alerts: Vec<PostableAlert> =
                    book.firing.values().map(|(p, _)| p.clone()).collect();
                if let Err(e) = book.post(&alerts) {
                    tracing::warn!(error = %e, "Re-sending firing alerts to Alertmanager failed.");
                }
            })
            .ok();
        if resender.is_none() {
            tracing::warn!(
                "Could not start the Alertmanager re-send thread; alerts are sent once."
            );
        }
        AlertmanagerSink {
            book,
            stop: Some(stop),
            resender,
        }
    }

    /// Alerts currently firing in Alertmanager on Harbinger's behalf.
    pub fn firing(&self) -> usize {
        self.book.lock().map_or(0, |b| b.firing.len())
    }
}

impl RecordSink<CorrelateOut> for AlertmanagerSink {
    fn write(&mut self, time: EventTime, records: &[CorrelateOut]) -> std::io::Result<()> {
        let mut book = self
            .book
            .lock()
            .map_err(|_| std::io::Error::other("the Alertmanager sink's lock was poisoned"))?;
        let alerts = book.apply(time, records);
        book.post(&alerts)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for AlertmanagerSink {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(h) = self.resender.take() {
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use operators::records::{AlertStatus, RootCauseCandidate, Severity};

    fn book(uncorrelated: bool) -> Book {
        Book {
            agent: ureq::Agent::new_with_defaults(),
            endpoint: "http://127.0.0.1:9/api/v2/alerts".into(),
            uncorrelated,
            causes: BTreeMap::new(),
            firing: BTreeMap::new(),
        }
    }

    fn alert(fp: &str, incident: Option<&str>, resolved: bool) -> AlertRecord {
        let labels = [
            ("alertname".to_string(), "A".to_string()),
            ("fp".into(), fp.into()),
        ]
        .into();
        let event = if resolved {
            AlertEvent::Resolved
        } else {
            AlertEvent::Updated
        };
        AlertRecord {
            starts_at: "2024-01-01T00:00:00.000Z".into(),
            id: fp.into(),
            count: 2,
            incident_id: incident.map(str::to_string),
            ..AlertRecord::sample(labels, fp.into(), event, "svc".into(), 60_000)
        }
    }

    fn incident(id: &str, cause: &str) -> IncidentRecord {
        IncidentRecord {
            incident_id: id.into(),
            event: AlertEvent::Opened,
            status: AlertStatus::Firing,
            alerts: vec![],
            entities: vec![],
            severity: Severity::High,
            priority_score: 50.0,
            root_cause_candidates: vec![RootCauseCandidate {
                entity: cause.into(),
                score: 0.8,
                evidence: vec!["first".into()],
            }],
            first_alert_time: String::new(),
            last_alert_time: String::new(),
            duration_minutes: 0.0,
            common_labels: BTreeMap::new(),
            cluster_type: "topology".into(),
            confidence: 1.0,
            impact_assessment: operators::records::ImpactAssessment {
                entities: 1,
                alerts: 1,
                user_facing: vec![],
                max_severity: Severity::High,
                summary: String::new(),
            },
            escalation_level: 0,
            muted: false,
            merged_into: None,
            event_time: 60_000,
        }
    }

    #[test]
    fn uncorrelated_alerts_wait_for_an_incident() {
        let mut b = book(false);
        assert!(b
            .apply(1, &[CorrelateOut::Alert(alert("x", None, false))])
            .is_empty());
        let sent = b.apply(
            2,
            &[
                CorrelateOut::Alert(alert("x", Some("i1"), false)),
                CorrelateOut::Incident(incident("i1", "db")),
            ],
        );
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].labels["incident_id"], "i1");
        assert_eq!(sent[0].annotations["root_cause"], "db");
        assert_eq!(sent[0].ends_at, None);
        assert_eq!(b.firing.len(), 1);
    }

    #[test]
    fn moving_to_another_incident_resolves_the_old_label_set() {
        let mut b = book(true);
        b.apply(1, &[CorrelateOut::Alert(alert("x", Some("i1"), false))]);
        let sent = b.apply(2, &[CorrelateOut::Alert(alert("x", Some("i2"), false))]);
        assert_eq!(sent.len(), 2);
        assert_eq!(sent[0].labels["incident_id"], "i1");
        assert!(sent[0].ends_at.is_some());
        assert_eq!(sent[1].labels["incident_id"], "i2");
        assert!(sent[1].ends_at.is_none());
    }

    #[test]
    fn a_new_root_cause_re_annotates_firing_alerts_and_resolution_clears_them() {
        let mut b = book(false);
        b.apply(
            1,
            &[
                CorrelateOut::Alert(alert("x", Some("i1"), false)),
                CorrelateOut::Incident(incident("i1", "db")),
            ],
        );
        let sent = b.apply(2, &[CorrelateOut::Incident(incident("i1", "cache"))]);
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].annotations["root_cause"], "cache");
        let sent = b.apply(3, &[CorrelateOut::Alert(alert("x", Some("i1"), true))]);
        assert_eq!(sent.len(), 1);
        assert!(sent[0].ends_at.is_some());
        assert!(b.firing.is_empty());
    }

    #[test]
    fn a_muted_alert_is_withdrawn() {
        let mut b = book(false);
        b.apply(1, &[CorrelateOut::Alert(alert("x", Some("i1"), false))]);
        let mut muted = alert("x", Some("i1"), false);
        muted.muted_by = Some("silence:s".into());
        let sent = b.apply(2, &[CorrelateOut::Alert(muted)]);
        assert_eq!(sent.len(), 1);
        assert!(sent[0].ends_at.is_some());
        assert!(b.firing.is_empty());
    }
}
