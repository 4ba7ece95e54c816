//! A whole CSV table, as `harbinger score` reads it: every row kept, in file order, with its
//! original text (the output repeats it), its time and one value per column.
//!
//! Accepted layouts:
//! * NAB: a header `timestamp,value`, then `YYYY-MM-DD HH:MM:SS,<number>` rows;
//! * wide with a header: `timestamp,<col>,<col>...` (the first column is the timestamp when its
//!   header is `timestamp`/`time`/`ts`/`date`/`datetime` or its first value is a date-time);
//! * wide with a header and no timestamp column (every header names a value column);
//! * headerless wide (SMD/ASD): every field numeric, no timestamp. Columns are named `c1, c2, ...`
//!   and row `i` gets the synthetic time `i · row_step` (epoch-based), so windows and counts work;
//!   time-of-day features are then off, because row numbers say nothing about the hour.
//!
//! Timestamps are parsed as everywhere else (epoch ms, RFC 3339, NAB's form); a row whose
//! timestamp cannot be read keeps the previous row's time. Empty or unparsable values are missing
//! (`None`), never an error: the row is still scored and written.

use std::path::Path;

use operators::series::EventTime;

use super::timestamp::{parse_datetime, parse_text};

/// One row.
#[derive(Debug, Clone, PartialEq)]
pub struct TableRow {
    /// The row's text as read (without the line ending).
    pub line: String,
    /// Event time (real or synthetic).
    pub time: EventTime,
    /// One value per value column.
    pub values: Vec<Option<f64>>,
}

/// A table read for scoring.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// The header's text, when the file has one.
    pub header: Option<String>,
    /// Whether the first column is a timestamp.
    pub has_time: bool,
    /// Whether times are real (from the file) rather than row numbers.
    pub real_time: bool,
    /// Names of the value columns.
    pub columns: Vec<String>,
    /// The rows.
    pub rows: Vec<TableRow>,
}

const TIME_HEADERS: [&str; 5] = ["timestamp", "time", "ts", "date", "datetime"];

fn is_number(s: &str) -> bool {
    s.trim().parse::<f64>().is_ok()
}

impl Table {
    /// Reads `path`; `row_step_ms` spaces synthetic times.
    pub fn read(path: &Path, row_step_ms: u64) -> Result<Table, String> {
        let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
        Table::parse(&text, row_step_ms)
    }

    /// Parses a table from text.
    pub fn parse(text: &str, row_step_ms: u64) -> Result<Table, String> {
        let mut lines = text
            .lines()
            .map(|l| l.trim_end_matches('\r'))
            .filter(|l| !l.trim().is_empty())
            .peekable();
        let first = *lines.peek().ok_or("the file has no rows")?;
        let fields: Vec<&str> = first.split(',').map(unquote).collect();
        let header = fields
            .iter()
            .any(|f| !is_number(f) && parse_datetime(f).is_err());
        let (header_line, names) = if header {
            lines.next();
            (
                Some(first.to_string()),
                fields.iter().map(|s| s.to_string()).collect(),
            )
        } else {
            (None, Vec::new())
        };
        let sample: Vec<&str> = match lines.peek() {
            Some(l) => l.split(',').map(unquote).collect(),
            None => fields.clone(),
        };
        let first_is_time = match names.first() {
            Some(n) if TIME_HEADERS.contains(&n.trim().to_ascii_lowercase().as_str()) => true,
            _ => sample
                .first()
                .is_some_and(|f| !is_number(f) && parse_datetime(f).is_ok()),
        };
        let width = if header { names.len() } else { sample.len() };
        let columns: Vec<String> = if header {
            names[usize::from(first_is_time)..].to_vec()
        } else {
            (1..=width - usize::from(first_is_time))
                .map(|i| format!("c{i}"))
                .collect()
        };
        if columns.is_empty() {
            return Err("a table needs at least one value column".into());
        }
        let mut rows = Vec::new();
        let mut last_time = 0;
        for (i, line) in lines.enumerate() {
            let fields: Vec<&str> = line.split(',').map(unquote).collect();
            let time = if first_is_time {
                match fields.first().map(|f| parse_text(f)) {
                    Some(Ok(t)) => t,
                    _ => last_time,
                }
            } else {
                i as u64 * row_step_ms
            };
            last_time = time;
            let values = (0..columns.len())
                .map(|j| {
                    fields
                        .get(j + usize::from(first_is_time))
                        .and_then(|f| f.trim().parse::<f64>().ok())
                        .filter(|v| v.is_finite())
                })
                .collect();
            rows.push(TableRow {
                line: line.to_string(),
                time,
                values,
            });
        }
        Ok(Table {
            header: header_line,
            has_time: first_is_time,
            real_time: first_is_time,
            columns,
            rows,
        })
    }

    /// The header line to write: the file's own, or `c1,c2,...` for a headerless file.
    pub fn header_line(&self) -> String {
        match &self.header {
            Some(h) => h.clone(),
            None => self.columns.join(","),
        }
    }
}

fn unquote(field: &str) -> &str {
    let f = field.trim();
    f.strip_prefix('"')
        .and_then(|x| x.strip_suffix('"'))
        .unwrap_or(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nab_layout() {
        let t = Table::parse(
            "timestamp,value\n2014-04-01 00:00:00,1.5\n2014-04-01 00:05:00,\n",
            60_000,
        )
        .unwrap();
        assert!(t.has_time && t.real_time);
        assert_eq!(t.columns, ["value"]);
        assert_eq!(t.rows[0].values, [Some(1.5)]);
        assert_eq!(t.rows[1].values, [None], "an empty value is missing");
        assert_eq!(t.rows[1].time - t.rows[0].time, 300_000);
        assert_eq!(t.header_line(), "timestamp,value");
    }

    #[test]
    fn headerless_wide_gets_row_times() {
        let t = Table::parse("0.1,0.2,0.3\n0.4,0.5,0.6\n", 300_000).unwrap();
        assert!(!t.has_time && !t.real_time);
        assert_eq!(t.columns, ["c1", "c2", "c3"]);
        assert_eq!((t.rows[0].time, t.rows[1].time), (0, 300_000));
        assert_eq!(t.header_line(), "c1,c2,c3");
        assert_eq!(t.rows[1].line, "0.4,0.5,0.6");
    }

    #[test]
    fn wide_with_header_and_epoch_ms() {
        let t = Table::parse("timestamp,cpu,mem\n1700000000000,1,2\n", 60_000).unwrap();
        assert!(t.has_time);
        assert_eq!(t.columns, ["cpu", "mem"]);
        assert_eq!(t.rows[0].time, 1_700_000_000_000);
        assert!(Table::parse("", 1).is_err());
    }
}
