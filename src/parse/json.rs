//! JSON points: `{"name", "labels", "timestamp", "value"}`, one object or an array of them per
//! payload. The prometheus-kafka-adapter shape is the same object with `value` as a string,
//! `timestamp` as RFC 3339 and the name (also) in `labels.__name__`; both are accepted.
//!
//! Deserialization borrows strings from the payload (no allocation for unescaped text) through
//! hand-written visitors; unknown fields are ignored so producers can add their own.

use std::borrow::Cow;
use std::fmt;

use operators::records::DeadLetterReason;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use super::timestamp::{check_range, parse_text, TimestampError};
use super::{normalize_labels, parse_value, DecodeCtx, Decoder};
use crate::ingest::RawPoint;

/// Decoder of JSON payloads.
#[derive(Debug, Default)]
pub struct JsonDecoder;

impl Decoder for JsonDecoder {
    fn decode(&mut self, payload: &[u8], pos: (u64, u64), ctx: &mut DecodeCtx<'_>) {
        let trimmed = payload.trim_ascii();
        if trimmed.first() == Some(&b'[') {
            match serde_json::from_slice::<Vec<&serde_json::value::RawValue>>(trimmed) {
                Ok(elements) => {
                    for (i, element) in elements.iter().enumerate() {
                        decode_object(element.get().as_bytes(), pos, Some(i), ctx);
                    }
                }
                Err(e) => ctx.refuse(
                    payload,
                    pos,
                    None,
                    DeadLetterReason::Unparsable,
                    format!("invalid JSON array: {e}"),
                ),
            }
        } else {
            decode_object(trimmed, pos, None, ctx);
        }
    }
}

fn decode_object(bytes: &[u8], pos: (u64, u64), element: Option<usize>, ctx: &mut DecodeCtx<'_>) {
    let parsed = match serde_json::from_slice::<JsonPoint<'_>>(bytes) {
        Ok(p) => p,
        Err(e) => {
            let reason = if e.is_data() {
                DeadLetterReason::InvalidField
            } else {
                DeadLetterReason::Unparsable
            };
            ctx.refuse(
                bytes,
                pos,
                element,
                reason,
                format!("invalid JSON point: {e}"),
            );
            return;
        }
    };
    match parsed.validate() {
        Ok((name, mut labels, time, value)) => {
            normalize_labels(&mut labels);
            ctx.point(
                RawPoint {
                    name,
                    labels: &labels,
                    time,
                    value,
                },
                bytes,
                pos,
                element,
            );
        }
        Err((reason, detail)) => ctx.refuse(bytes, pos, element, reason, detail),
    }
}

/// A JSON string, borrowed from the payload when it has no escapes.
struct CowStr<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for CowStr<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = CowStr<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(V)
    }
}

/// A scalar field (timestamp or value) in any JSON type, judged later with a precise reason.
enum Scalar<'a> {
    Unsigned(u64),
    Signed(i64),
    Float(f64),
    Text(Cow<'a, str>),
    Other(&'static str),
}

impl<'de> Deserialize<'de> for Scalar<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Scalar<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number or a string")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(Scalar::Unsigned(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(Scalar::Signed(v))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                Ok(Scalar::Float(v))
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Scalar::Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Scalar::Text(Cow::Owned(v.to_owned())))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(Scalar::Other("a boolean"))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Scalar::Other("null"))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Scalar::Other("an object"))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Scalar::Other("an array"))
            }
        }
        d.deserialize_any(V)
    }
}

/// Labels object: string keys to string values, in payload order.
struct Labels<'a>(Vec<(Cow<'a, str>, Cow<'a, str>)>);

impl<'de> Deserialize<'de> for Labels<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Labels<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object of string label values")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::with_capacity(map.size_hint().unwrap_or(4));
                while let Some((k, v)) = map.next_entry::<CowStr<'de>, CowStr<'de>>()? {
                    out.push((k.0, v.0));
                }
                Ok(Labels(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// The fields of one JSON point as found, before validation.
#[derive(Default)]
struct JsonPoint<'a> {
    name: Option<Cow<'a, str>>,
    labels: Vec<(Cow<'a, str>, Cow<'a, str>)>,
    timestamp: Option<Scalar<'a>>,
    value: Option<Scalar<'a>>,
}

impl<'de> Deserialize<'de> for JsonPoint<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = JsonPoint<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object with name, labels, timestamp and value")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut p = JsonPoint::default();
                while let Some(key) = map.next_key::<CowStr<'de>>()? {
                    match key.0.as_ref() {
                        "name" => p.name = Some(map.next_value::<CowStr<'de>>()?.0),
                        "labels" => p.labels = map.next_value::<Labels<'de>>()?.0,
                        "timestamp" => p.timestamp = Some(map.next_value()?),
                        "value" => p.value = Some(map.next_value()?),
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(p)
            }
        }
        d.deserialize_map(V)
    }
}

type Validated<'s> = (&'s str, Vec<(&'s str, &'s str)>, u64, f64);

impl<'a> JsonPoint<'a> {
    /// Checks presence and form of every field; borrows the strings for acceptance.
    fn validate(&self) -> Result<Validated<'_>, (DeadLetterReason, String)> {
        let adapter_name = self
            .labels
            .iter()
            .rev()
            .find(|(k, _)| k == "__name__")
            .map(|(_, v)| v.as_ref());
        let name = self.name.as_deref().or(adapter_name).ok_or((
            DeadLetterReason::MissingField,
            "missing field `name`".to_string(),
        ))?;
        let labels: Vec<(&str, &str)> = self
            .labels
            .iter()
            .filter(|(k, _)| k != "__name__")
            .map(|(k, v)| (k.as_ref(), v.as_ref()))
            .collect();
        let time = match &self.timestamp {
            None => {
                return Err((
                    DeadLetterReason::MissingField,
                    "missing field `timestamp`".into(),
                ))
            }
            Some(ts) => timestamp(ts)?,
        };
        let value = match &self.value {
            None => {
                return Err((
                    DeadLetterReason::MissingField,
                    "missing field `value`".into(),
                ))
            }
            Some(Scalar::Unsigned(v)) => *v as f64,
            Some(Scalar::Signed(v)) => *v as f64,
            Some(Scalar::Float(v)) => *v,
            Some(Scalar::Text(t)) => parse_value(t)?,
            Some(Scalar::Other(what)) => {
                return Err((
                    DeadLetterReason::InvalidField,
                    format!("`value` is {what}, not a number"),
                ))
            }
        };
        if !value.is_finite() {
            return Err((
                DeadLetterReason::NonFiniteValue,
                format!("value {value} is not finite"),
            ));
        }
        Ok((name, labels, time, value))
    }
}

fn timestamp(ts: &Scalar<'_>) -> Result<u64, (DeadLetterReason, String)> {
    let ranged = |r: Result<u64, TimestampError>| {
        r.map_err(|e| match e {
            TimestampError::Malformed(m) => (DeadLetterReason::InvalidField, m),
            TimestampError::OutOfRange(m) => (DeadLetterReason::TimestampOutOfRange, m),
        })
    };
    match ts {
        Scalar::Unsigned(v) => ranged(check_range(i128::from(*v))),
        Scalar::Signed(v) => ranged(check_range(i128::from(*v))),
        // Clamping keeps the cast exact-or-saturated; anything that large is out of range anyway.
        Scalar::Float(v) if v.is_finite() && v.fract() == 0.0 => {
            ranged(check_range(v.clamp(-1e30, 1e30) as i128))
        }
        Scalar::Float(v) => Err((
            DeadLetterReason::InvalidField,
            format!("timestamp {v} is not integer milliseconds"),
        )),
        Scalar::Text(t) => ranged(parse_text(t)),
        Scalar::Other(what) => Err((
            DeadLetterReason::InvalidField,
            format!("`timestamp` is {what}, not a number or string"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::Batch;
    use crate::parse::harness::decode_payloads;

    fn decode_all(lines: &[&str]) -> Batch {
        decode_payloads(&mut JsonDecoder, lines)
    }

    #[test]
    fn contract_example_and_adapter_shape_give_the_same_series() {
        let b = decode_all(&[
            r#"{"name": "http_latency_p99_ms", "labels": {"service": "carts", "host": "h1"}, "timestamp": 1700000000000, "value": 12.5}"#,
            r#"{"timestamp":"2023-11-14T22:13:20Z","value":"13.5","name":"http_latency_p99_ms","labels":{"__name__":"http_latency_p99_ms","host":"h1","service":"carts"}}"#,
        ]);
        assert!(b.dead.is_empty(), "{:?}", b.dead);
        assert_eq!(b.points.len(), 2);
        assert_eq!(b.points[0].series, b.points[1].series);
        assert_eq!(b.points[1].time, 1_700_000_000_000);
        assert_eq!(b.points[1].value, 13.5);
        assert_eq!(b.keys.len(), 1);
        assert_eq!(
            b.keys[0].1.to_string(),
            r#"http_latency_p99_ms{host="h1",service="carts"}"#
        );
    }

    #[test]
    fn arrays_split_into_elements_and_bad_elements_are_dead_lettered_alone() {
        let b = decode_all(&[
            r#"[{"name":"a","timestamp":1,"value":1},{"name":"a","timestamp":2,"value":"NaN"},{"name":"b","timestamp":3,"value":2}]"#,
        ]);
        assert_eq!(b.points.len(), 2);
        assert_eq!(b.dead.len(), 1);
        assert_eq!(b.dead[0].element, Some(1));
        assert_eq!(b.dead[0].reason, DeadLetterReason::NonFiniteValue);
        assert_eq!(
            b.dead[0].payload.as_deref(),
            Some(r#"{"name":"a","timestamp":2,"value":"NaN"}"#)
        );
    }

    #[test]
    fn every_kind_of_bad_record_has_its_reason() {
        let cases = [
            ("not json", DeadLetterReason::Unparsable),
            (
                r#"{"name":"a","timestamp":1}"#,
                DeadLetterReason::MissingField,
            ),
            (
                r#"{"timestamp":1,"value":1}"#,
                DeadLetterReason::MissingField,
            ),
            (r#"{"name":"a","value":1}"#, DeadLetterReason::MissingField),
            (
                r#"{"name":"a","timestamp":1,"value":true}"#,
                DeadLetterReason::InvalidField,
            ),
            (
                r#"{"name":"a","timestamp":1.5,"value":1}"#,
                DeadLetterReason::InvalidField,
            ),
            (
                r#"{"name":"a","timestamp":"soon","value":1}"#,
                DeadLetterReason::InvalidField,
            ),
            (
                r#"{"name":"a","timestamp":-5,"value":1}"#,
                DeadLetterReason::TimestampOutOfRange,
            ),
            (
                r#"{"name":"a","timestamp":1e300,"value":1}"#,
                DeadLetterReason::TimestampOutOfRange,
            ),
            (
                r#"{"name":"a","timestamp":1,"value":"+Inf"}"#,
                DeadLetterReason::NonFiniteValue,
            ),
            (
                r#"{"name":"a","timestamp":1,"value":"twelve"}"#,
                DeadLetterReason::InvalidField,
            ),
            (
                r#"{"name":"a","labels":{"k":5},"timestamp":1,"value":1}"#,
                DeadLetterReason::InvalidField,
            ),
            (
                r#"{"name":"a","timestamp":1,"value":1"#,
                DeadLetterReason::Unparsable,
            ),
            (r#"[{"name":"a""#, DeadLetterReason::Unparsable),
        ];
        for (line, reason) in cases {
            let b = decode_all(&[line]);
            assert!(b.points.is_empty(), "{line}");
            assert_eq!(b.dead.len(), 1, "{line}");
            assert_eq!(b.dead[0].reason, reason, "{line}: {}", b.dead[0].detail);
            assert_eq!(b.dead[0].payload.as_deref(), Some(line.trim()));
        }
    }

    #[test]
    fn escaped_strings_and_unknown_fields_are_fine() {
        let b = decode_all(&[
            r#"{"name":"a\"b","labels":{"k\n":"v\u00e9"},"extra":[1,{"x":2}],"timestamp":1,"value":-0.5}"#,
        ]);
        assert_eq!(b.points.len(), 1, "{:?}", b.dead);
        assert_eq!(b.keys[0].1.name, "a\"b");
        assert_eq!(b.keys[0].1.labels[0], ("k\n".into(), "vé".into()));
    }
}
