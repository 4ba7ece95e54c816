//! Dead letters: input the engine could not use, kept with the original payload, where it came
//! from and why it was refused, so nothing is lost silently.

use serde::{Deserialize, Serialize};

/// Where a record was read: enough to find it again in the source.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SourcePosition {
    /// A line of a file or of standard input (1-based), with its byte offset.
    Line {
        /// File path, or `-` for standard input.
        file: String,
        /// 1-based line number.
        line: u64,
        /// Byte offset of the line's start.
        offset: u64,
    },
    /// A Kafka message.
    Kafka {
        /// Topic name.
        topic: String,
        /// Partition number.
        partition: i32,
        /// Message offset.
        offset: i64,
    },
    /// A record made by the built-in simulator.
    Simulator {
        /// Simulated step number.
        step: u64,
    },
}

/// Why a record was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeadLetterReason {
    /// The payload is not valid in its format (JSON, Influx line protocol, CSV).
    Unparsable,
    /// A required field is absent.
    MissingField,
    /// A field has the wrong type or form.
    InvalidField,
    /// The value is NaN or infinite.
    NonFiniteValue,
    /// The timestamp is outside the supported range (1970 to 2200).
    TimestampOutOfRange,
    /// A label name or value, or the label count, exceeds the configured limits.
    LabelLimit,
    /// The point is behind its partition's watermark (later than the allowed lateness).
    Late,
    /// Two different series keys hashed to the same id (vanishingly rare with 64 bits).
    SeriesIdCollision,
}

/// One refused record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// Deterministic id (hash of source, position and element): a replay gives the same id, so
    /// consumers can drop duplicates.
    pub id: String,
    /// Which source read it (the source's name from the config).
    pub source: String,
    /// Where in that source.
    pub position: SourcePosition,
    /// Index of the element when one payload held several (a JSON array, an Influx line's fields).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub element: Option<u32>,
    /// Machine-readable reason.
    pub reason: DeadLetterReason,
    /// Human-readable detail.
    pub detail: String,
    /// The original payload, when it is valid UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload: Option<String>,
    /// The original payload, base64-encoded, when it is not valid UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload_base64: Option<String>,
}

impl DeadLetter {
    /// A dead letter for `payload` read at `position` of `source`.
    pub fn new(
        source: &str,
        position: SourcePosition,
        reason: DeadLetterReason,
        detail: impl Into<String>,
        payload: &[u8],
    ) -> Self {
        let (payload, payload_base64) = match std::str::from_utf8(payload) {
            Ok(text) => (Some(text.to_owned()), None),
            Err(_) => (None, Some(base64(payload))),
        };
        let mut d = DeadLetter {
            id: String::new(),
            source: source.to_owned(),
            position,
            element: None,
            reason,
            detail: detail.into(),
            payload,
            payload_base64,
        };
        d.id = d.identity();
        d
    }

    /// The same dead letter, marked as element `index` of its payload.
    pub fn with_element(mut self, index: usize) -> Self {
        self.element = Some(u32::try_from(index).unwrap_or(u32::MAX));
        self.id = self.identity();
        self
    }

    fn identity(&self) -> String {
        let text = format!("{}|{:?}|{:?}", self.source, self.position, self.element);
        format!("{:016x}", crate::series::stable_hash(text.as_bytes()))
    }

    /// Order key for deterministic output: source, position, element.
    pub fn order_key(&self) -> (&str, &SourcePosition, Option<u32>) {
        (&self.source, &self.position, self.element)
    }
}

/// Standard base64 (RFC 4648) with padding. Dead letters are rare, so a few lines here beat a
/// dependency.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        for (input, want) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(input.as_bytes()), want);
        }
    }

    #[test]
    fn non_utf8_payload_is_kept_as_base64() {
        let d = DeadLetter::new(
            "s",
            SourcePosition::Simulator { step: 1 },
            DeadLetterReason::Unparsable,
            "bad",
            &[0xff, 0xfe],
        );
        assert_eq!(d.payload, None);
        assert_eq!(d.payload_base64.as_deref(), Some("//4="));
        let e = d.clone().with_element(1);
        assert_ne!(d.id, e.id, "elements of one payload have their own ids");
    }
}
