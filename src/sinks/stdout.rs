//! The compact human summary on standard output: one line per alert that opens, changes or
//! resolves, readable at a glance while a run goes on.

use std::io::Write;

use operators::records::{AlertEvent, AlertRecord, IncidentRecord};
use operators::series::EventTime;

use super::RecordSink;

/// Prints alert lifecycle events as one line each.
#[derive(Default)]
pub struct StdoutSummary;

/// One alert as a summary line.
pub fn alert_line(a: &AlertRecord) -> String {
    let event = match a.event {
        AlertEvent::Opened => "OPENED  ",
        AlertEvent::Updated => "UPDATED ",
        AlertEvent::Escalated => "ESCALATE",
        AlertEvent::Resolved => "RESOLVED",
    };
    let at = operators::time_format::rfc3339_millis(a.event_time);
    let summary = a.annotations.get("summary").map_or("", String::as_str);
    format!("{at}  {event}  {:<8}  {summary}", a.severity.as_str())
}

impl RecordSink<AlertRecord> for StdoutSummary {
    fn write(&mut self, _time: EventTime, records: &[AlertRecord]) -> std::io::Result<()> {
        let mut out = std::io::stdout().lock();
        for a in records {
            writeln!(out, "{}", alert_line(a))?;
        }
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stdout().flush()
    }
}

/// One incident event as a summary line.
pub fn incident_line(i: &IncidentRecord) -> String {
    let event = match i.event {
        AlertEvent::Opened => "INCIDENT",
        AlertEvent::Updated => "INC-UPD ",
        AlertEvent::Escalated => "INC-ESC ",
        AlertEvent::Resolved => "INC-END ",
    };
    let at = operators::time_format::rfc3339_millis(i.event_time);
    let cause = i
        .root_cause_candidates
        .first()
        .map_or("unknown".to_string(), |c| {
            format!("{} ({:.2})", c.entity, c.score)
        });
    format!(
        "{at}  {event}  {:<8}  {} P{:.0} L{}: {} alert(s) on {}; root cause {cause}{}",
        i.severity.as_str(),
        &i.incident_id[..8.min(i.incident_id.len())],
        i.priority_score,
        i.escalation_level,
        i.alerts.len(),
        i.entities.join(", "),
        if i.muted { " [muted]" } else { "" }
    )
}

impl RecordSink<IncidentRecord> for StdoutSummary {
    fn write(&mut self, _time: EventTime, records: &[IncidentRecord]) -> std::io::Result<()> {
        let mut out = std::io::stdout().lock();
        for i in records {
            writeln!(out, "{}", incident_line(i))?;
        }
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stdout().flush()
    }
}
