//! Sinks: where results go. Every sink receives, on worker 0, each timely time's records in a
//! fixed order (see `operators::sink`), so files are byte-identical for any worker count.

pub mod alertmanager;
pub mod jsonl;
pub mod kafka;
pub mod stdout;

use std::sync::{Arc, Mutex};

use operators::correlate::CorrelateOut;
use operators::records::{
    AlertRecord, DeadLetter, ForecastRecord, IncidentRecord, RecommendationRecord, WindowFeatures,
};
use operators::series::EventTime;

pub use alertmanager::{AlertmanagerSettings, AlertmanagerSink};
pub use jsonl::JsonlWriter;
pub use stdout::StdoutSummary;

/// Consumes one kind of record, time by time.
pub trait RecordSink<R>: Send {
    /// Writes the records of one timely time, already in output order.
    fn write(&mut self, time: EventTime, records: &[R]) -> std::io::Result<()>;
    /// Pushes buffered output to its destination.
    fn flush(&mut self) -> std::io::Result<()>;
}

/// A sink shared between the worker thread that feeds it and the code that flushes it at the end.
pub type Shared<R> = Arc<Mutex<dyn RecordSink<R>>>;

/// Every sink of a run, by record kind. Empty lists are fine: that output is not kept.
#[derive(Default, Clone)]
pub struct Outputs {
    /// Alert lifecycle events.
    pub alerts: Vec<Shared<AlertRecord>>,
    /// Incident lifecycle events.
    pub incidents: Vec<Shared<IncidentRecord>>,
    /// Refused records.
    pub dead_letters: Vec<Shared<DeadLetter>>,
    /// Closed windows' features.
    pub features: Vec<Shared<WindowFeatures>>,
    /// Recommendations made or changed.
    pub recommendations: Vec<Shared<RecommendationRecord>>,
    /// Forecasts (with capacity predictions).
    pub forecasts: Vec<Shared<ForecastRecord>>,
    /// Alerts and incidents of each time together (sinks that need both, e.g. Alertmanager).
    pub correlated: Vec<Shared<CorrelateOut>>,
}

impl Outputs {
    /// Flushes every sink, returning the first error.
    pub fn flush_all(&self) -> std::io::Result<()> {
        fn flush<R>(sinks: &[Shared<R>]) -> std::io::Result<()> {
            for s in sinks {
                s.lock()
                    .map_err(|_| std::io::Error::other("a sink's lock was poisoned"))?
                    .flush()?;
            }
            Ok(())
        }
        flush(&self.alerts)?;
        flush(&self.incidents)?;
        flush(&self.dead_letters)?;
        flush(&self.features)?;
        flush(&self.recommendations)?;
        flush(&self.forecasts)?;
        flush(&self.correlated)
    }
}

/// Feeds `records` of `time` to every sink in `sinks`, logging (once per sink) a failed write.
pub fn deliver<R>(sinks: &[Shared<R>], time: EventTime, records: &[R]) {
    for s in sinks {
        match s.lock() {
            Ok(mut sink) => {
                if let Err(e) = sink.write(time, records) {
                    tracing::error!(error = %e, "Writing output failed; records of this time are lost for this sink.");
                }
            }
            Err(_) => tracing::error!("A sink's lock was poisoned; its output stops."),
        }
    }
}
