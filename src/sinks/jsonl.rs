//! JSON-lines files: one JSON object per line, the format of `alerts.jsonl`,
//! `dead_letters.jsonl` and `features.jsonl`.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use serde::Serialize;

use super::RecordSink;
use operators::series::EventTime;

/// Writes records as JSON lines to a file.
pub struct JsonlWriter {
    out: BufWriter<File>,
    /// Flush after every write (for low-volume, watched outputs such as alerts).
    eager: bool,
}

impl JsonlWriter {
    /// Creates (truncates) `path`; with `eager`, every write reaches the file at once.
    pub fn create(path: &Path, eager: bool) -> std::io::Result<Self> {
        Ok(JsonlWriter {
            out: BufWriter::with_capacity(1 << 16, File::create(path)?),
            eager,
        })
    }
}

impl<R: Serialize> RecordSink<R> for JsonlWriter {
    fn write(&mut self, _time: EventTime, records: &[R]) -> std::io::Result<()> {
        for r in records {
            serde_json::to_writer(&mut self.out, r)?;
            self.out.write_all(b"\n")?;
        }
        if self.eager {
            self.out.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}
