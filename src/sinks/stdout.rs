//! The compact human summary on standard output: one line per alert that opens, changes or
//! resolves, readable at a glance while a run goes on.

use std::io::Write;

use operators::records::{AlertEvent, AlertRecord};
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
