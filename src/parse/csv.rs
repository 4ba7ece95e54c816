//! CSV in the two layouts benchmarks and exports use:
//! * NAB: `timestamp,value` — one series named after the file.
//! * wide: `timestamp,<col>,<col>...` — one series per column (named after the column), all of
//!   one entity named after the file (label `<entity label>=<file stem>`).
//!
//! The first line is a header when its first field is not a timestamp. Without a header, columns
//! are named `c1, c2, ...`. Fields are comma-separated; surrounding double quotes are removed
//! (quoted fields containing commas or newlines are not supported: metric exports do not write
//! them). An empty value field is a missing observation, not an error.

use operators::records::DeadLetterReason;

use super::timestamp::{parse_text, TimestampError};
use super::{parse_value, DecodeCtx, Decoder};
use crate::ingest::RawPoint;

/// Decoder of one CSV file.
#[derive(Debug)]
pub struct CsvDecoder {
    /// Series name of a single-value-column file (NAB): the file stem.
    stem: String,
    /// Label naming the entity of a wide file's series.
    entity_label: String,
    /// Value column names, once known.
    columns: Option<Vec<String>>,
}

impl CsvDecoder {
    /// A decoder for a file with stem `stem`; wide files label their series `entity_label=stem`.
    pub fn new(stem: impl Into<String>, entity_label: impl Into<String>) -> Self {
        CsvDecoder {
            stem: stem.into(),
            entity_label: entity_label.into(),
            columns: None,
        }
    }
}

fn unquote(field: &str) -> &str {
    let f = field.trim();
    f.strip_prefix('"')
        .and_then(|x| x.strip_suffix('"'))
        .unwrap_or(f)
}

impl Decoder for CsvDecoder {
    fn decode(&mut self, payload: &[u8], pos: (u64, u64), ctx: &mut DecodeCtx<'_>) {
        let Ok(text) = std::str::from_utf8(payload) else {
            return ctx.refuse(
                payload,
                pos,
                None,
                DeadLetterReason::Unparsable,
                "not valid UTF-8",
            );
        };
        let text = text.trim_end_matches(['\r', '\n']);
        if text.trim().is_empty() {
            return;
        }
        let fields: Vec<&str> = text.split(',').map(unquote).collect();
        let first_is_time = parse_text(fields[0]).is_ok();
        let columns = match &self.columns {
            Some(c) => c,
            None => {
                let names: Vec<String> = if first_is_time {
                    (1..fields.len()).map(|i| format!("c{i}")).collect()
                } else {
                    fields[1..].iter().map(|s| s.to_string()).collect()
                };
                if names.is_empty() {
                    return ctx.refuse(
                        payload,
                        pos,
                        None,
                        DeadLetterReason::Unparsable,
                        "a CSV needs a timestamp column and at least one value column",
                    );
                }
                let columns = self.columns.insert(names);
                if !first_is_time {
                    return; // that was the header
                }
                columns
            }
        };
        if fields.len() != columns.len() + 1 {
            return ctx.refuse(
                payload,
                pos,
                None,
                DeadLetterReason::Unparsable,
                format!(
                    "expected {} fields, found {}",
                    columns.len() + 1,
                    fields.len()
                ),
            );
        }
        let time = match parse_text(fields[0]) {
            Ok(t) => t,
            Err(TimestampError::Malformed(m)) => {
                return ctx.refuse(payload, pos, None, DeadLetterReason::InvalidField, m)
            }
            Err(TimestampError::OutOfRange(m)) => {
                return ctx.refuse(payload, pos, None, DeadLetterReason::TimestampOutOfRange, m)
            }
        };
        let wide = columns.len() > 1;
        let entity = [(self.entity_label.as_str(), self.stem.as_str())];
        for (i, (raw, column)) in fields[1..].iter().zip(columns.iter()).enumerate() {
            if raw.is_empty() {
                continue;
            }
            let (name, labels): (&str, &[(&str, &str)]) = if wide {
                (column, &entity)
            } else {
                (&self.stem, &[])
            };
            match parse_value(raw) {
                Ok(value) => ctx.point(
                    RawPoint {
                        name,
                        labels,
                        time,
                        value,
                    },
                    payload,
                    pos,
                    wide.then_some(i),
                ),
                Err((reason, detail)) => {
                    ctx.refuse(payload, pos, wide.then_some(i), reason, detail)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::Batch;
    use crate::parse::harness::decode_payloads;

    fn decode(dec: &mut CsvDecoder, lines: &[&str]) -> Batch {
        decode_payloads(dec, lines)
    }

    #[test]
    fn nab_layout_keeps_every_row_including_repeats_and_backward_times() {
        let mut dec = CsvDecoder::new("nyc_taxi", "service");
        let b = decode(
            &mut dec,
            &[
                "timestamp,value",
                "2014-07-01 00:00:00,10844",
                "2014-07-01 00:30:00,8127",
                "2014-07-01 00:30:00,8128",
                "2014-07-01 00:00:00,1",
            ],
        );
        assert!(b.dead.is_empty(), "{:?}", b.dead);
        assert_eq!(b.points.len(), 4);
        assert_eq!(b.keys[0].1.to_string(), "nyc_taxi");
    }

    #[test]
    fn wide_layout_names_columns_and_labels_the_entity() {
        let mut dec = CsvDecoder::new("omi-1", "host");
        let b = decode(
            &mut dec,
            &[
                "timestamp,cpu,mem",
                "1700000000000,0.5,",
                "1700000060000,x,0.7",
            ],
        );
        assert_eq!(b.points.len(), 2);
        assert_eq!(b.dead.len(), 1);
        assert_eq!(b.dead[0].element, Some(0));
        let names: Vec<String> = b.keys.iter().map(|(_, k)| k.to_string()).collect();
        assert_eq!(names, [r#"cpu{host="omi-1"}"#, r#"mem{host="omi-1"}"#]);
    }

    #[test]
    fn headerless_files_and_bad_rows() {
        let mut dec = CsvDecoder::new("s", "host");
        let b = decode(
            &mut dec,
            &[
                "1700000000000,1",
                "1700000000000,1,2",
                "later,3",
                "-1,4",
                "\"1700000000001\",\"5\"",
            ],
        );
        assert_eq!(b.points.len(), 2);
        let reasons: Vec<_> = b.dead.iter().map(|d| d.reason).collect();
        assert_eq!(
            reasons,
            [
                DeadLetterReason::Unparsable,
                DeadLetterReason::InvalidField,
                DeadLetterReason::TimestampOutOfRange
            ]
        );
    }
}
