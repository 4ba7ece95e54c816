//! Influx line protocol, as Telegraf writes it to Kafka:
//! `measurement[,tag=v...] field=v[,field=v...] [timestamp]`.
//!
//! Each numeric field becomes its own series named `<measurement>_<field>` with the tags as labels.
//! Integers (`5i`, `5u`), floats and booleans (as 1/0) are metrics; string fields carry no metric
//! and are skipped without a dead letter (they are valid input). A malformed field is dead-lettered
//! alone (its index is the element), the line's other fields still count. A line without a
//! timestamp is refused: the engine runs on event time and will not invent one.

use std::borrow::Cow;

use operators::records::DeadLetterReason;

use super::timestamp::check_range;
use super::{normalize_labels, DecodeCtx, Decoder, Precision};
use crate::ingest::RawPoint;

/// Decoder of Influx line protocol.
#[derive(Debug, Default)]
pub struct InfluxDecoder {
    /// Unit of the timestamps.
    pub precision: Precision,
}

impl Decoder for InfluxDecoder {
    fn decode(&mut self, payload: &[u8], pos: (u64, u64), ctx: &mut DecodeCtx<'_>) {
        // A Kafka message may carry several lines.
        for line in payload.split(|&b| b == b'\n') {
            let line = line.trim_ascii();
            if line.is_empty() || line.first() == Some(&b'#') {
                continue;
            }
            self.decode_line(line, pos, ctx);
        }
    }
}

/// Splits at the first occurrence of `sep` that is not escaped by a backslash (and, when
/// `quotes`, not inside a double-quoted string value: a quote opens one only right after `=`).
fn split_unescaped(s: &[u8], sep: u8, quotes: bool) -> (&[u8], Option<&[u8]>) {
    let mut i = 0;
    let mut in_quotes = false;
    // Whether the previous byte was an unescaped `=` (a quote there opens a string value).
    let mut after_equals = false;
    while i < s.len() {
        let c = s[i];
        match c {
            b'\\' => i += 1,
            b'"' if quotes && (in_quotes || after_equals) => in_quotes = !in_quotes,
            _ if c == sep && !in_quotes => return (&s[..i], Some(&s[i + 1..])),
            _ => {}
        }
        after_equals = c == b'=' && !in_quotes;
        i += 1;
    }
    (s, None)
}

/// Every piece between unescaped separators.
fn split_all(s: &[u8], sep: u8, quotes: bool) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = Some(s);
    while let Some(r) = rest {
        let (head, tail) = split_unescaped(r, sep, quotes);
        out.push(head);
        rest = tail;
    }
    out
}

/// Removes the escapes of names and tag values (`\,`, `\=`, `\ `); any other backslash is
/// literal, as in InfluxDB. Borrows when there is nothing to unescape.
fn unescape(s: &[u8]) -> Result<Cow<'_, str>, String> {
    let text = std::str::from_utf8(s).map_err(|_| "not valid UTF-8".to_string())?;
    if !text.contains('\\') {
        return Ok(Cow::Borrowed(text));
    }
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' && matches!(chars.peek(), Some(',' | '=' | ' ')) {
            continue;
        }
        out.push(c);
    }
    Ok(Cow::Owned(out))
}

/// A field value: a number, or a string/other that carries no metric.
enum FieldValue {
    Number(f64),
    Text,
}

fn field_value(raw: &[u8]) -> Result<FieldValue, (DeadLetterReason, String)> {
    let text = std::str::from_utf8(raw).map_err(|_| {
        (
            DeadLetterReason::Unparsable,
            "field value is not UTF-8".to_string(),
        )
    })?;
    if text.starts_with('"') {
        return if text.len() >= 2 && text.ends_with('"') {
            Ok(FieldValue::Text)
        } else {
            Err((
                DeadLetterReason::Unparsable,
                "unterminated string field".into(),
            ))
        };
    }
    let invalid = || {
        (
            DeadLetterReason::InvalidField,
            format!("field value {text:?} is not a number"),
        )
    };
    let number = match text {
        "t" | "T" | "true" | "True" | "TRUE" => 1.0,
        "f" | "F" | "false" | "False" | "FALSE" => 0.0,
        _ => match text.as_bytes().last() {
            Some(b'i') => text[..text.len() - 1]
                .parse::<i64>()
                .map_err(|_| invalid())? as f64,
            Some(b'u') => text[..text.len() - 1]
                .parse::<u64>()
                .map_err(|_| invalid())? as f64,
            _ => {
                // Influx floats are plain decimals; words like "inf" or "nan" are not allowed.
                if !text
                    .bytes()
                    .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'+' | b'e' | b'E'))
                {
                    return Err(invalid());
                }
                text.parse::<f64>().map_err(|_| invalid())?
            }
        },
    };
    if number.is_finite() {
        Ok(FieldValue::Number(number))
    } else {
        Err((
            DeadLetterReason::NonFiniteValue,
            format!("field value {text} is not finite"),
        ))
    }
}

impl InfluxDecoder {
    fn timestamp_ms(&self, raw: &[u8]) -> Result<u64, (DeadLetterReason, String)> {
        let text = std::str::from_utf8(raw).map_err(|_| {
            (
                DeadLetterReason::Unparsable,
                "timestamp is not UTF-8".to_string(),
            )
        })?;
        let t: i128 = text.parse().map_err(|_| {
            (
                DeadLetterReason::InvalidField,
                format!("timestamp {text:?} is not an integer"),
            )
        })?;
        let ms = match self.precision {
            Precision::Ns => t.div_euclid(1_000_000),
            Precision::Us => t.div_euclid(1_000),
            Precision::Ms => t,
            Precision::S => t.saturating_mul(1_000),
        };
        check_range(ms).map_err(|_| {
            (
                DeadLetterReason::TimestampOutOfRange,
                format!(
                    "timestamp {text} ({:?} precision) is outside 1970..2200",
                    self.precision
                ),
            )
        })
    }

    fn decode_line(&self, line: &[u8], pos: (u64, u64), ctx: &mut DecodeCtx<'_>) {
        let refuse_line = |ctx: &mut DecodeCtx<'_>, reason, detail: String| {
            ctx.refuse(line, pos, None, reason, detail)
        };
        let (series_part, rest) = split_unescaped(line, b' ', false);
        let Some(rest) = rest else {
            return refuse_line(ctx, DeadLetterReason::Unparsable, "no fields".into());
        };
        let (fields_part, ts_part) = split_unescaped(rest.trim_ascii_start(), b' ', true);
        let Some(ts_part) = ts_part.map(<[u8]>::trim_ascii).filter(|t| !t.is_empty()) else {
            return refuse_line(
                ctx,
                DeadLetterReason::MissingField,
                "missing timestamp".into(),
            );
        };
        let time = match self.timestamp_ms(ts_part) {
            Ok(t) => t,
            Err((reason, detail)) => return refuse_line(ctx, reason, detail),
        };
        let pieces = split_all(series_part, b',', false);
        let measurement = match unescape(pieces[0]) {
            Ok(m) if !m.is_empty() => m,
            Ok(_) => {
                return refuse_line(
                    ctx,
                    DeadLetterReason::Unparsable,
                    "empty measurement".into(),
                )
            }
            Err(e) => return refuse_line(ctx, DeadLetterReason::Unparsable, e),
        };
        let mut tags: Vec<(Cow<'_, str>, Cow<'_, str>)> = Vec::with_capacity(pieces.len() - 1);
        for tag in &pieces[1..] {
            let (k, v) = split_unescaped(tag, b'=', false);
            let parsed = v
                .ok_or_else(|| format!("tag {:?} has no value", String::from_utf8_lossy(tag)))
                .and_then(|v| Ok((unescape(k)?, unescape(v)?)));
            match parsed {
                Ok(kv) => tags.push(kv),
                Err(e) => return refuse_line(ctx, DeadLetterReason::Unparsable, e),
            }
        }
        let mut labels: Vec<(&str, &str)> =
            tags.iter().map(|(k, v)| (k.as_ref(), v.as_ref())).collect();
        normalize_labels(&mut labels);
        let fields = split_all(fields_part, b',', true);
        if fields.iter().all(|f| f.is_empty()) {
            return refuse_line(ctx, DeadLetterReason::Unparsable, "no fields".into());
        }
        let mut name = String::new();
        for (i, field) in fields.iter().enumerate() {
            let (k, v) = split_unescaped(field, b'=', false);
            let parsed = match (unescape(k), v) {
                (Ok(k), Some(v)) if !k.is_empty() => field_value(v).map(|fv| (k, fv)),
                (Err(e), _) => Err((DeadLetterReason::Unparsable, e)),
                _ => Err((
                    DeadLetterReason::Unparsable,
                    format!(
                        "field {:?} is not key=value",
                        String::from_utf8_lossy(field)
                    ),
                )),
            };
            match parsed {
                Ok((_, FieldValue::Text)) => {}
                Ok((key, FieldValue::Number(value))) => {
                    name.clear();
                    name.push_str(&measurement);
                    name.push('_');
                    name.push_str(&key);
                    ctx.point(
                        RawPoint {
                            name: &name,
                            labels: &labels,
                            time,
                            value,
                        },
                        line,
                        pos,
                        Some(i),
                    );
                }
                Err((reason, detail)) => ctx.refuse(line, pos, Some(i), reason, detail),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::Batch;
    use crate::parse::harness::decode_payloads;

    fn decode(precision: Precision, text: &str) -> Batch {
        decode_payloads(&mut InfluxDecoder { precision }, &[text])
    }

    #[test]
    fn telegraf_line_gives_one_series_per_field() {
        let b = decode(
            Precision::Ns,
            "cpu,host=a usage_user=0.5,usage_idle=99 1700000000000000000",
        );
        assert!(b.dead.is_empty(), "{:?}", b.dead);
        assert_eq!(b.points.len(), 2);
        assert!(b.points.iter().all(|p| p.time == 1_700_000_000_000));
        let names: Vec<String> = b.keys.iter().map(|(_, k)| k.to_string()).collect();
        assert_eq!(
            names,
            [r#"cpu_usage_user{host="a"}"#, r#"cpu_usage_idle{host="a"}"#]
        );
    }

    #[test]
    fn escapes_types_and_precisions() {
        let b = decode(
            Precision::S,
            r#"my\ meas,tag\,k=v\ 1 a=1i,b=2u,c=true,d="text, with space",e=-1.5e3 1700000000"#,
        );
        assert!(b.dead.is_empty(), "{:?}", b.dead);
        let vals: Vec<f64> = b.points.iter().map(|p| p.value).collect();
        assert_eq!(vals, [1.0, 2.0, 1.0, -1500.0]);
        assert_eq!(b.points[0].time, 1_700_000_000_000);
        assert_eq!(b.keys[0].1.name, "my meas_a");
        assert_eq!(
            b.keys[0].1.labels,
            [("tag,k".to_string(), "v 1".to_string())]
        );
        let ms = decode(Precision::Ms, "m v=1 1700000000000");
        assert_eq!(ms.points[0].time, 1_700_000_000_000);
        let us = decode(Precision::Us, "m v=1 1700000000000000");
        assert_eq!(us.points[0].time, 1_700_000_000_000);
    }

    #[test]
    fn quotes_open_strings_only_as_values_and_other_backslashes_are_literal() {
        let b = decode(Precision::S, r#"m,t=a\b,u=c\,d a"b=1,s="x y" 1700000000"#);
        assert!(b.dead.is_empty(), "{:?}", b.dead);
        assert_eq!(b.points.len(), 1);
        let key = &b.keys[0].1;
        assert_eq!(key.name, "m_a\"b");
        assert_eq!(key.label("t"), Some("a\\b"));
        assert_eq!(key.label("u"), Some("c,d"));
    }

    #[test]
    fn bad_fields_are_dead_lettered_alone() {
        let b = decode(Precision::Ns, "m a=1,b=oops,c=nan,d=2 1700000000000000000");
        assert_eq!(b.points.len(), 2);
        let elems: Vec<_> = b.dead.iter().map(|d| (d.element, d.reason)).collect();
        assert_eq!(
            elems,
            [
                (Some(1), DeadLetterReason::InvalidField),
                (Some(2), DeadLetterReason::InvalidField)
            ]
        );
    }

    #[test]
    fn bad_lines_have_reasons() {
        for (line, reason) in [
            ("m", DeadLetterReason::Unparsable),
            ("m a=1", DeadLetterReason::MissingField),
            ("m a=1 soon", DeadLetterReason::InvalidField),
            ("m a=1 -5", DeadLetterReason::TimestampOutOfRange),
            (",t=1 a=1 1", DeadLetterReason::Unparsable),
            ("m,t a=1 1", DeadLetterReason::Unparsable),
            ("m a=\"open 1", DeadLetterReason::MissingField),
        ] {
            let b = decode(Precision::Ns, line);
            assert!(b.points.is_empty(), "{line}");
            assert_eq!(b.dead.len(), 1, "{line}");
            assert_eq!(b.dead[0].reason, reason, "{line}: {}", b.dead[0].detail);
        }
    }
}
