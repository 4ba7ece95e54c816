//! Decoders for every input format in `ARCHITECTURE.md`: JSON (object, array, lines, and the
//! prometheus-kafka-adapter shape), Influx line protocol, and CSV (NAB and wide layouts).
//!
//! A decoder turns one payload (a line of a file or one Kafka message) into points, which it hands
//! to the partition's [`PartitionIngest`] for limits and lateness, or into dead letters with the
//! payload, its position and a reason. No input makes a decoder panic (property-tested).

pub mod csv;
pub mod influx;
pub mod json;
pub mod table;
pub mod timestamp;

use operators::records::DeadLetterReason;

use crate::ingest::{Batch, Interner, PartitionIngest, RawPoint};

/// The input formats.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize, clap::ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// JSON points (object, array of objects; one per line in files).
    Json,
    /// The prometheus-kafka-adapter JSON shape (accepted by `json` too; kept as a name users know).
    PromJson,
    /// Influx line protocol.
    Influx,
    /// CSV: `timestamp,value` (NAB) or wide `timestamp,<col>,...`.
    Csv,
}

/// Influx timestamp precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// Nanoseconds (Influx's default).
    #[default]
    Ns,
    /// Microseconds.
    Us,
    /// Milliseconds.
    Ms,
    /// Seconds.
    S,
}

/// Everything a decoder writes into while decoding one payload.
pub struct DecodeCtx<'x> {
    /// The partition's acceptance rules and clock.
    pub ingest: &'x mut PartitionIngest,
    /// The worker's series interner.
    pub interner: &'x mut Interner,
    /// Output of this read.
    pub batch: &'x mut Batch,
}

impl DecodeCtx<'_> {
    /// Offers a parsed point for acceptance.
    pub fn point(
        &mut self,
        p: RawPoint<'_>,
        payload: &[u8],
        pos: (u64, u64),
        element: Option<usize>,
    ) {
        self.ingest
            .accept(self.interner, self.batch, p, payload, pos.0, pos.1, element);
    }

    /// Dead-letters a payload (or one element of it).
    pub fn refuse(
        &mut self,
        payload: &[u8],
        pos: (u64, u64),
        element: Option<usize>,
        reason: DeadLetterReason,
        detail: impl Into<String>,
    ) {
        let d = self
            .ingest
            .dead_letter(pos.0, pos.1, reason, detail, payload);
        self.batch.dead.push(match element {
            Some(i) => d.with_element(i),
            None => d,
        });
    }
}

/// A stateful decoder of one partition's payloads.
pub trait Decoder {
    /// Decodes one payload found at `pos` ((line, offset) for files, (offset, 0) for Kafka).
    fn decode(&mut self, payload: &[u8], pos: (u64, u64), ctx: &mut DecodeCtx<'_>);
}

/// Sorts borrowed labels by name and keeps the last value of a repeated name.
pub fn normalize_labels<'a>(labels: &mut Vec<(&'a str, &'a str)>) {
    labels.sort_by(|a, b| a.0.cmp(b.0));
    // After a stable sort equal names keep input order; keep the last of each run.
    let mut write = 0;
    for read in 0..labels.len() {
        if read + 1 < labels.len() && labels[read + 1].0 == labels[read].0 {
            continue;
        }
        labels[write] = labels[read];
        write += 1;
    }
    labels.truncate(write);
}

/// Parses a finite float from text; the error says why.
pub fn parse_value(text: &str) -> Result<f64, (DeadLetterReason, String)> {
    match text.trim().parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        Ok(v) => Err((
            DeadLetterReason::NonFiniteValue,
            format!("value {v} is not finite"),
        )),
        Err(_) => Err((
            DeadLetterReason::InvalidField,
            format!("value {text:?} is not a number"),
        )),
    }
}

/// Test harness of the decoders: feeds payloads through a decoder as one partition would.
#[cfg(test)]
pub(crate) mod harness {
    use super::{DecodeCtx, Decoder};
    use crate::ingest::{
        Batch, Interner, LabelLimits, PartitionClock, PartitionIngest, PositionKind,
    };

    /// Decodes `payloads` in order (payload `i` at position `(i + 1, 0)`, as a file's lines)
    /// with no lateness limit, and returns what they produced.
    pub(crate) fn decode_payloads<D: Decoder>(dec: &mut D, payloads: &[&str]) -> Batch {
        let mut ingest = PartitionIngest {
            source: "t".into(),
            position: PositionKind::File("f".into()),
            clock: PartitionClock::default(),
            lateness_ms: u64::MAX,
            limits: LabelLimits::default(),
            floor: 0,
        };
        let mut interner = Interner::default();
        let mut batch = Batch::default();
        for (i, p) in payloads.iter().enumerate() {
            let mut ctx = DecodeCtx {
                ingest: &mut ingest,
                interner: &mut interner,
                batch: &mut batch,
            };
            dec.decode(p.as_bytes(), (i as u64 + 1, 0), &mut ctx);
        }
        batch
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_sorts_and_keeps_last_duplicate() {
        let mut l = vec![("b", "1"), ("a", "x"), ("b", "2"), ("a", "y")];
        normalize_labels(&mut l);
        assert_eq!(l, vec![("a", "y"), ("b", "2")]);
    }

    #[test]
    fn parse_value_reasons() {
        assert_eq!(parse_value(" 1.5 "), Ok(1.5));
        assert_eq!(
            parse_value("NaN").unwrap_err().0,
            DeadLetterReason::NonFiniteValue
        );
        assert_eq!(
            parse_value("+Inf").unwrap_err().0,
            DeadLetterReason::NonFiniteValue
        );
        assert_eq!(
            parse_value("abc").unwrap_err().0,
            DeadLetterReason::InvalidField
        );
    }
}
