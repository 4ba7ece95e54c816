//! File and standard-input sources: one partition per file, read line by line (JSON lines,
//! Influx lines or CSV rows), as fast as possible or paced at a multiple of real time.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::Arc;

use crate::checkpoint::PartitionPosition;
use crate::ingest::{Batch, Interner, PartitionIngest};
use crate::parse::{csv::CsvDecoder, influx::InfluxDecoder, json::JsonDecoder};
use crate::parse::{DecodeCtx, Decoder, Format, Precision};
use crate::sources::pacing::Pace;
use crate::sources::{Partition, ReadStatus};

/// Read buffer size: large reads keep system calls off the per-line path.
const READ_BUFFER_BYTES: usize = 1 << 20;

/// The decoder for `format`; CSV needs the file stem (series or entity name) and entity label.
pub fn decoder_for(
    format: Format,
    precision: Precision,
    stem: &str,
    entity_label: &str,
) -> Box<dyn Decoder> {
    match format {
        Format::Json | Format::PromJson => Box::new(JsonDecoder),
        Format::Influx => Box::new(InfluxDecoder { precision }),
        Format::Csv => Box::new(CsvDecoder::new(stem, entity_label)),
    }
}

/// The format a file name suggests: `.csv`/`.txt` → CSV, `.influx`/`.lp` → Influx, else JSON.
pub fn format_from_extension(path: &Path) -> Format {
    match path.extension().and_then(|e| e.to_str()) {
        Some("csv" | "txt") => Format::Csv,
        Some("influx" | "lp" | "line") => Format::Influx,
        _ => Format::Json,
    }
}

/// One file (or standard input) being read.
pub struct FilePartition {
    name: String,
    reader: Box<dyn BufRead>,
    decoder: Box<dyn Decoder>,
    ingest: PartitionIngest,
    pace: Pace,
    line: u64,
    offset: u64,
    size: Option<u64>,
    buf: Vec<u8>,
    done: bool,
}

impl FilePartition {
    /// Opens `path` (`-` for standard input), resuming at `start` when given (a checkpoint's
    /// position; standard input cannot resume and starts where it is).
    #[allow(clippy::too_many_arguments)]
    pub fn open(
        path: &Path,
        format: Format,
        precision: Precision,
        mut ingest: PartitionIngest,
        entity_label: &str,
        speed: f64,
        start: Option<&PartitionPosition>,
    ) -> std::io::Result<Self> {
        let display = path.display().to_string();
        let (mut line, mut offset) = (0, 0);
        let (reader, size): (Box<dyn BufRead>, Option<u64>) = if display == "-" {
            let stdin = std::io::stdin();
            (
                Box::new(BufReader::with_capacity(READ_BUFFER_BYTES, stdin)),
                None,
            )
        } else {
            let mut file = File::open(path)?;
            let size = file.metadata().ok().map(|m| m.len());
            if let Some(pos) = start {
                file.seek(SeekFrom::Start(pos.offset))?;
                (line, offset) = (pos.line, pos.offset);
                ingest.clock = pos.clock.clone();
            }
            (
                Box::new(BufReader::with_capacity(READ_BUFFER_BYTES, file)),
                size,
            )
        };
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("stdin")
            .to_string();
        ingest.position = crate::ingest::PositionKind::File(Arc::from(display.as_str()));
        Ok(FilePartition {
            name: format!("file:{display}"),
            reader,
            decoder: decoder_for(format, precision, &stem, entity_label),
            ingest,
            pace: Pace::new(speed),
            line,
            offset,
            size,
            buf: Vec::with_capacity(256),
            done: false,
        })
    }

    /// A partition over any reader (tests, stdin-like streams).
    pub fn from_reader(
        name: &str,
        reader: impl Read + 'static,
        decoder: Box<dyn Decoder>,
        ingest: PartitionIngest,
    ) -> Self {
        FilePartition {
            name: name.to_string(),
            reader: Box::new(BufReader::new(reader)),
            decoder,
            ingest,
            pace: Pace::new(0.0),
            line: 0,
            offset: 0,
            size: None,
            buf: Vec::new(),
            done: false,
        }
    }
}

impl Partition for FilePartition {
    fn name(&self) -> &str {
        &self.name
    }

    fn read(
        &mut self,
        max_records: usize,
        interner: &mut Interner,
        batch: &mut Batch,
    ) -> ReadStatus {
        if self.done {
            return ReadStatus::Done;
        }
        if !self.pace.may_read(self.ingest.clock.max_time) {
            return ReadStatus::Idle;
        }
        // Paced partitions read in small steps so they overshoot real time by little.
        let limit = if self.pace.is_paced() {
            max_records.min(64)
        } else {
            max_records
        };
        for _ in 0..limit {
            self.buf.clear();
            match self.reader.read_until(b'\n', &mut self.buf) {
                Ok(0) => {
                    self.done = true;
                    break;
                }
                Ok(n) => {
                    self.line += 1;
                    let at = (self.line, self.offset);
                    self.offset += n as u64;
                    let payload = self.buf.trim_ascii_end();
                    if payload.is_empty() {
                        continue;
                    }
                    let mut ctx = DecodeCtx {
                        ingest: &mut self.ingest,
                        interner,
                        batch,
                    };
                    self.decoder.decode(payload, at, &mut ctx);
                }
                Err(e) => {
                    // An I/O error ends the partition; the line count says how far it got.
                    tracing::error!(file = %self.name, line = self.line, error = %e, "Reading the file failed; it ends here.");
                    self.done = true;
                    break;
                }
            }
        }
        if self.done && batch.is_empty() {
            ReadStatus::Done
        } else {
            ReadStatus::Progress
        }
    }

    fn ingest(&self) -> &PartitionIngest {
        &self.ingest
    }

    fn ingest_mut(&mut self) -> &mut PartitionIngest {
        &mut self.ingest
    }

    fn progress(&self) -> (u64, Option<u64>) {
        (self.offset, self.size)
    }

    fn key(&self) -> String {
        if self.name == "file:-" {
            String::new()
        } else {
            self.name.clone()
        }
    }

    fn position(&self) -> Option<PartitionPosition> {
        Some(PartitionPosition {
            offset: self.offset,
            line: self.line,
            clock: self.ingest.clock.clone(),
        })
    }
}
