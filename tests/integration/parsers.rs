//! Property tests of the decoders (JSON, Influx line protocol, CSV) and of timestamp parsing.
//!
//! Two kinds of property, as `ARCHITECTURE.md` ("Formats") promises them:
//! * robustness: no input makes a decoder panic, and every payload is accounted for as points or
//!   dead letters (one outcome per JSON object or array element; nothing silent except what the
//!   formats define as carrying no metric: blank lines, comments, CSV headers and empty cells,
//!   Influx string fields);
//! * fidelity: valid points written in every accepted shape come back with exactly the same
//!   series key, event time and value bits.

use std::collections::{BTreeMap, BTreeSet};

use harbinger::ingest::Batch;
use harbinger::parse::csv::CsvDecoder;
use harbinger::parse::influx::InfluxDecoder;
use harbinger::parse::json::JsonDecoder;
use harbinger::parse::timestamp::{parse_text, MAX_TIMESTAMP_MS};
use harbinger::parse::{Decoder, Precision};
use operators::records::DeadLetterReason;
use operators::time_format::rfc3339_millis;
use proptest::collection::{btree_map, btree_set, vec};
use proptest::prelude::*;
use proptest::sample::select;
use serde_json::value::RawValue;
use serde_json::{json, Map, Value};

use crate::common::{Harness, Observed};

/// Every Influx timestamp precision.
const PRECISIONS: [Precision; 4] = [Precision::Ns, Precision::Us, Precision::Ms, Precision::S];

/// Largest accepted event time: the millisecond before 2200-01-01T00:00:00Z.
const MAX_MS: u64 = MAX_TIMESTAMP_MS as u64 - 1;

/// Entity label given to wide CSV series (the engine's default entity label).
const ENTITY_LABEL: &str = "service";

// ---------------------------------------------------------------------------------------------
// Checks shared by the robustness properties.
// ---------------------------------------------------------------------------------------------

fn outcomes(batch: &Batch) -> usize {
    batch.points.len() + batch.dead.len()
}

/// Every dead letter keeps its payload in exactly one form, and nothing is late (lateness is
/// unbounded in the harness).
fn check_dead_letters(batch: &Batch) -> Result<(), TestCaseError> {
    for d in &batch.dead {
        prop_assert!(
            d.payload.is_some() != d.payload_base64.is_some(),
            "payload kept in exactly one form: {:?}",
            d
        );
        prop_assert_ne!(d.reason, DeadLetterReason::Late);
    }
    Ok(())
}

/// JSON: a payload that is a JSON array yields one outcome per element (dead letters name their
/// element, each once); anything else yields exactly one outcome.
fn check_json(payload: &[u8], batch: &Batch) -> Result<(), TestCaseError> {
    check_dead_letters(batch)?;
    let trimmed = payload.trim_ascii();
    let elements = if trimmed.first() == Some(&b'[') {
        serde_json::from_slice::<Vec<&RawValue>>(trimmed)
            .ok()
            .map(|e| e.len())
    } else {
        None
    };
    match elements {
        Some(n) => {
            prop_assert_eq!(outcomes(batch), n, "one outcome per array element");
            let mut seen = BTreeSet::new();
            for d in &batch.dead {
                let i = d.element.map(|i| i as usize);
                prop_assert!(matches!(i, Some(i) if i < n), "element {:?} of {}", i, n);
                prop_assert!(seen.insert(i), "element {:?} dead-lettered twice", i);
            }
        }
        None => {
            prop_assert_eq!(outcomes(batch), 1, "one outcome per object");
            for d in &batch.dead {
                prop_assert_eq!(d.element, None);
            }
        }
    }
    Ok(())
}

/// Influx: a line-level refusal is per line; without any `"` (so no string field, which carries
/// no metric) every non-blank, non-comment line yields at least one outcome.
fn check_influx(payload: &[u8], batch: &Batch) -> Result<(), TestCaseError> {
    check_dead_letters(batch)?;
    let lines = payload
        .split(|&b| b == b'\n')
        .map(<[u8]>::trim_ascii)
        .filter(|l| !l.is_empty() && l[0] != b'#')
        .count();
    let whole_line = batch.dead.iter().filter(|d| d.element.is_none()).count();
    prop_assert!(
        whole_line <= lines,
        "{} line refusals for {} lines",
        whole_line,
        lines
    );
    if lines == 0 {
        prop_assert_eq!(outcomes(batch), 0);
    }
    if !payload.contains(&b'"') {
        prop_assert!(
            outcomes(batch) >= lines,
            "{} outcomes for {} lines",
            outcomes(batch),
            lines
        );
    }
    Ok(())
}

/// CSV after a header naming `columns` value columns: a row gives one outcome per non-empty cell,
/// or one row-level dead letter; blank rows give nothing; non-UTF-8 rows are refused.
fn check_csv_row(payload: &[u8], batch: &Batch, columns: usize) -> Result<(), TestCaseError> {
    check_dead_letters(batch)?;
    let n = outcomes(batch);
    prop_assert!(n <= columns, "{} outcomes for {} columns", n, columns);
    let Ok(text) = std::str::from_utf8(payload) else {
        prop_assert_eq!(batch.dead.len(), 1);
        prop_assert_eq!(batch.dead[0].reason, DeadLetterReason::Unparsable);
        prop_assert!(batch.dead[0].payload_base64.is_some());
        return Ok(());
    };
    let text = text.trim_end_matches(['\r', '\n']);
    if text.trim().is_empty() {
        prop_assert_eq!(n, 0);
        return Ok(());
    }
    let fields: Vec<&str> = text.split(',').collect();
    let row_refused = columns > 1 && batch.dead.iter().any(|d| d.element.is_none());
    if row_refused {
        prop_assert_eq!(n, 1, "a row-level dead letter is the row's only outcome");
    }
    if fields.len() != columns + 1 {
        prop_assert_eq!(n, 1, "a row of the wrong width is refused whole");
        prop_assert!(batch.points.is_empty());
    } else if fields[1..].iter().all(|f| !unquote(f).is_empty()) && !row_refused {
        prop_assert_eq!(n, columns, "one outcome per non-empty cell");
    }
    Ok(())
}

/// A CSV cell as the format defines it: trimmed, one pair of surrounding quotes removed.
fn unquote(field: &str) -> &str {
    let f = field.trim();
    f.strip_prefix('"')
        .and_then(|x| x.strip_suffix('"'))
        .unwrap_or(f)
}

// ---------------------------------------------------------------------------------------------
// Generators.
// ---------------------------------------------------------------------------------------------

/// Pieces of JSON (and of near-JSON) that reach deep into the point decoder when concatenated.
fn json_fragment() -> impl Strategy<Value = &'static str> {
    select(vec![
        "{",
        "}",
        "[",
        "]",
        ":",
        ",",
        "\"",
        " ",
        "\t",
        "\n",
        "\\",
        "\\\"",
        "\\u00e9",
        "\\ud800",
        "\\n",
        "é",
        "😀",
        "\u{0}",
        "\"name\"",
        "\"labels\"",
        "\"timestamp\"",
        "\"value\"",
        "\"__name__\"",
        "\"service\"",
        "\"carts\"",
        "\"\"",
        "0",
        "1",
        "-5",
        "1.5",
        "-0.0",
        "1e300",
        "-1e-300",
        "1e400",
        "1700000000000",
        "18446744073709551616",
        "-9223372036854775809",
        "\"NaN\"",
        "\"+Inf\"",
        "\"12.5\"",
        "\"2023-11-14T22:13:20Z\"",
        "\"2300-01-01T00:00:00Z\"",
        "\"2023-11-14 22:13:20\"",
        "null",
        "true",
        "false",
    ])
}

/// Strings built from JSON fragments.
fn jsonish() -> impl Strategy<Value = String> {
    vec(json_fragment(), 0..40).prop_map(|v| v.concat())
}

/// A value slot of a point-shaped object: well-formed values of every type, or junk.
fn json_slot() -> impl Strategy<Value = String> {
    prop_oneof![
        select(vec![
            "\"cpu\"",
            "\"\"",
            "\"a\\\"b\\u00e9\"",
            "1700000000000",
            "-1",
            "1.5",
            "1e300",
            "1e400",
            "\"NaN\"",
            "\"-inf\"",
            "\"12.5\"",
            "\"2023-11-14T22:13:20.5Z\"",
            "\"2300-01-01T00:00:00Z\"",
            "null",
            "true",
            "[1,2]",
            "{\"k\":\"v\"}",
            "{\"k\":1}",
            "{\"__name__\":\"up\"}",
        ])
        .prop_map(str::to_owned),
        jsonish(),
    ]
}

/// Objects shaped like points, with every field present, absent or junk.
fn point_shaped() -> impl Strategy<Value = String> {
    let field = |key: &'static str| {
        prop::option::of(json_slot()).prop_map(move |v| v.map(|v| format!("\"{key}\":{v}")))
    };
    (
        field("name"),
        field("labels"),
        field("timestamp"),
        field("value"),
        field("extra"),
    )
        .prop_map(|(a, b, c, d, e)| {
            let parts: Vec<String> = [a, b, c, d, e].into_iter().flatten().collect();
            format!("{{{}}}", parts.join(","))
        })
}

/// Arrays of point-shaped objects and junk.
fn array_shaped() -> impl Strategy<Value = String> {
    vec(prop_oneof![point_shaped(), json_slot()], 0..6)
        .prop_map(|elements| format!("[{}]", elements.join(",")))
}

/// Metric or label names from the Prometheus alphabet.
fn safe_name() -> impl Strategy<Value = String> {
    "[a-zA-Z_:][a-zA-Z0-9_:]{0,24}"
}

/// Characters JSON must (or may) escape, and multi-byte ones.
const ESCAPED_CHARS: [char; 12] = [
    '"', '\\', '/', '\u{0}', '\n', '\t', '\u{1f}', '\u{7f}', 'é', '😀', '\u{2028}', 'a',
];

/// Non-empty text for JSON names and labels: safe names, printable ASCII (quotes, backslashes),
/// characters JSON must escape, and arbitrary Unicode.
fn json_text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => safe_name(),
        1 => "[ -~]{1,16}",
        1 => vec(select(ESCAPED_CHARS.to_vec()), 1..8).prop_map(String::from_iter),
        1 => vec(any::<char>(), 1..12).prop_map(String::from_iter),
    ]
}

/// Label sets for JSON points (`__name__` is the adapter's name carrier, not a label).
fn json_labels() -> impl Strategy<Value = BTreeMap<String, String>> {
    btree_map(
        json_text().prop_filter("__name__ carries the name", |k| k != "__name__"),
        prop_oneof![4 => json_text(), 1 => Just(String::new())],
        0..5,
    )
}

/// Finite values, weighted towards the awkward: signed zeros, extremes, subnormals, integers.
fn finite() -> impl Strategy<Value = f64> {
    use prop::num::f64 as f;
    prop_oneof![
        4 => f::POSITIVE | f::NEGATIVE | f::NORMAL | f::SUBNORMAL | f::ZERO,
        2 => -1e6..1e6f64,
        1 => any::<i64>().prop_map(|i| i as f64),
        2 => select(vec![
            0.0,
            -0.0,
            f64::MAX,
            f64::MIN,
            f64::MIN_POSITIVE,
            -f64::MIN_POSITIVE,
            5e-324,
            -5e-324,
            1e300,
            -1e-300,
            0.1,
            1.0 / 3.0,
            9_007_199_254_740_993.0,
        ]),
    ]
}

/// A valid point for the JSON shapes.
#[derive(Debug, Clone)]
struct JsonPoint {
    name: String,
    labels: BTreeMap<String, String>,
    time: u64,
    value: f64,
}

impl JsonPoint {
    fn expected(&self) -> Observed {
        (
            self.name.clone(),
            self.labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            self.time,
            self.value.to_bits(),
        )
    }

    /// The contract shape: `{"name", "labels", "timestamp" (ms), "value" (number)}`.
    fn contract(&self) -> Value {
        json!({
            "name": self.name,
            "labels": self.labels,
            "timestamp": self.time,
            "value": self.value,
        })
    }

    /// The prometheus-kafka-adapter shape: value as a string, RFC 3339 time with milliseconds,
    /// the name in `labels.__name__` (and, as the adapter also writes it, optionally in `name`).
    fn adapter(&self, with_name: bool, exponent: bool) -> Value {
        let mut labels: Map<String, Value> = self
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
            .collect();
        labels.insert("__name__".into(), Value::from(self.name.as_str()));
        let mut object = Map::new();
        object.insert("timestamp".into(), rfc3339_millis(self.time).into());
        object.insert("value".into(), float_text(self.value, exponent).into());
        if with_name {
            object.insert("name".into(), self.name.as_str().into());
        }
        object.insert("labels".into(), Value::Object(labels));
        Value::Object(object)
    }
}

fn json_point() -> impl Strategy<Value = JsonPoint> {
    (json_text(), json_labels(), 0..=MAX_MS, finite()).prop_map(|(name, labels, time, value)| {
        JsonPoint {
            name,
            labels,
            time,
            value,
        }
    })
}

/// Shortest round-trip decimal text of `v`, plain or in scientific notation.
fn float_text(v: f64, exponent: bool) -> String {
    if exponent {
        format!("{v:e}")
    } else {
        format!("{v}")
    }
}

/// Text for Influx names and tags: no control characters (line protocol cannot carry newlines),
/// but spaces, commas, equals signs, quotes and any other Unicode. No backslashes: line protocol
/// keeps a backslash literal unless it escapes `,`, `=` or a space, so a literal backslash before
/// one of those cannot be written at all (InfluxDB has the same ambiguity).
fn influx_text() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => safe_name(),
        1 => "[ -~]{1,12}",
        1 => "\\PC{1,8}",
    ]
    .prop_filter("no backslash", |s| !s.contains('\\'))
}

/// Escapes a measurement for line protocol (commas and spaces).
fn influx_measurement(s: &str) -> String {
    influx_escape(s, &[',', ' '])
}

/// Escapes a tag key, tag value or field key (commas, spaces and equals signs).
fn influx_key(s: &str) -> String {
    influx_escape(s, &[',', ' ', '='])
}

fn influx_escape(s: &str, special: &[char]) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if special.contains(&c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A valid Influx line and what it must decode to.
#[derive(Debug, Clone)]
struct InfluxLine {
    measurement: String,
    tags: BTreeMap<String, String>,
    fields: BTreeMap<String, f64>,
    time: u64,
    /// Sub-unit noise added to ns/us timestamps (truncated away by the decoder).
    noise: u64,
    exponent: bool,
}

impl InfluxLine {
    /// The line at `precision` and the event time (ms) it stands for.
    fn render(&self, precision: Precision) -> (String, u64) {
        let (stamp, time) = match precision {
            Precision::Ns => (
                u128::from(self.time) * 1_000_000 + u128::from(self.noise % 1_000_000),
                self.time,
            ),
            Precision::Us => (
                u128::from(self.time) * 1_000 + u128::from(self.noise % 1_000),
                self.time,
            ),
            Precision::Ms => (u128::from(self.time), self.time),
            Precision::S => (u128::from(self.time / 1_000), self.time / 1_000 * 1_000),
        };
        let mut line = influx_measurement(&self.measurement);
        for (k, v) in &self.tags {
            line.push(',');
            line.push_str(&influx_key(k));
            line.push('=');
            line.push_str(&influx_key(v));
        }
        let fields: Vec<String> = self
            .fields
            .iter()
            .map(|(k, v)| format!("{}={}", influx_key(k), float_text(*v, self.exponent)))
            .collect();
        line.push(' ');
        line.push_str(&fields.join(","));
        line.push(' ');
        line.push_str(&stamp.to_string());
        (line, time)
    }

    fn expected(&self, time: u64) -> Vec<Observed> {
        let labels: Vec<(String, String)> = self
            .tags
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        self.fields
            .iter()
            .map(|(f, v)| {
                (
                    format!("{}_{f}", self.measurement),
                    labels.clone(),
                    time,
                    v.to_bits(),
                )
            })
            .collect()
    }
}

fn influx_line() -> impl Strategy<Value = InfluxLine> {
    (
        influx_text().prop_filter("a leading # makes a comment", |m| !m.starts_with('#')),
        btree_map(influx_text(), influx_text(), 0..4),
        // Field keys avoid `"`: the decoder reads quotes in the field set as string delimiters.
        btree_map(safe_name(), finite(), 1..4),
        0..=MAX_MS,
        any::<u64>(),
        any::<bool>(),
    )
        .prop_map(
            |(measurement, tags, fields, time, noise, exponent)| InfluxLine {
                measurement,
                tags,
                fields,
                time,
                noise,
                exponent,
            },
        )
}

/// An accepted CSV timestamp form for `ms`: epoch ms, RFC 3339 (ms), or NAB's
/// `YYYY-MM-DD HH:MM:SS.fff`.
fn csv_time(ms: u64, form: u8) -> String {
    match form % 3 {
        0 => ms.to_string(),
        1 => rfc3339_millis(ms),
        _ => rfc3339_millis(ms)
            .replace('T', " ")
            .trim_end_matches('Z')
            .to_string(),
    }
}

/// A CSV cell, optionally quoted.
fn csv_cell(text: String, quoted: bool) -> String {
    if quoted {
        format!("\"{text}\"")
    } else {
        text
    }
}

/// One CSV row: time, timestamp form, quoting, exponent notation, and a value per column
/// (`None` writes an empty cell: a missing observation).
type CsvRow = (u64, u8, bool, bool, Vec<Option<f64>>);

fn csv_rows(columns: usize) -> impl Strategy<Value = Vec<CsvRow>> {
    vec(
        (
            0..=MAX_MS,
            any::<u8>(),
            any::<bool>(),
            any::<bool>(),
            vec(prop::option::weighted(0.9, finite()), columns),
        ),
        1..20,
    )
}

/// Renders rows; returns the lines and the (column index, time, value) of every non-empty cell.
fn render_csv(rows: &[CsvRow]) -> (Vec<String>, Vec<(usize, u64, f64)>) {
    let mut lines = Vec::new();
    let mut cells = Vec::new();
    for (time, form, quoted, exponent, values) in rows {
        let mut line = csv_cell(csv_time(*time, *form), *quoted);
        for (c, v) in values.iter().enumerate() {
            line.push(',');
            if let Some(v) = v {
                line.push_str(&csv_cell(float_text(*v, *exponent), *quoted));
                cells.push((c, *time, *v));
            }
        }
        lines.push(line);
    }
    (lines, cells)
}

/// Feeds lines 1, 2, ... to one decoder and collects every point; dead letters fail the case.
fn decode_valid(
    decoder: &mut dyn Decoder,
    lines: &[String],
) -> Result<Vec<Observed>, TestCaseError> {
    let mut harness = Harness::default();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let batch = harness.feed(decoder, line.as_bytes(), i as u64 + 1);
        prop_assert!(
            batch.dead.is_empty(),
            "{:?} refused: {:?}",
            line,
            batch.dead
        );
        out.extend(harness.observed(&batch));
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Robustness.
// ---------------------------------------------------------------------------------------------

proptest! {
    #[test]
    fn json_decoder_accounts_for_arbitrary_bytes(payload in vec(any::<u8>(), 0..256)) {
        let batch = Harness::default().feed(&mut JsonDecoder, &payload, 1);
        check_json(&payload, &batch)?;
    }

    #[test]
    fn json_decoder_accounts_for_arbitrary_strings(payload in any::<String>()) {
        let batch = Harness::default().feed(&mut JsonDecoder, payload.as_bytes(), 1);
        check_json(payload.as_bytes(), &batch)?;
    }

    #[test]
    fn json_decoder_accounts_for_jsonish_strings(
        payload in prop_oneof![jsonish(), point_shaped(), array_shaped()]
    ) {
        let batch = Harness::default().feed(&mut JsonDecoder, payload.as_bytes(), 1);
        check_json(payload.as_bytes(), &batch)?;
    }

    #[test]
    fn influx_decoder_accounts_for_arbitrary_bytes(payload in vec(any::<u8>(), 0..256)) {
        for precision in PRECISIONS {
            let batch = Harness::default().feed(&mut InfluxDecoder { precision }, &payload, 1);
            check_influx(&payload, &batch)?;
        }
    }

    #[test]
    fn influx_decoder_accounts_for_arbitrary_strings(payload in any::<String>()) {
        for precision in PRECISIONS {
            let batch =
                Harness::default().feed(&mut InfluxDecoder { precision }, payload.as_bytes(), 1);
            check_influx(payload.as_bytes(), &batch)?;
        }
    }

    #[test]
    fn influx_decoder_accounts_for_lineish_strings(
        pieces in vec(
            prop_oneof![
                select(vec![
                    "m", "cpu", ",", " ", "=", "\\", "\"", "#", "\n", "a=1", "b=2i", "c=3u",
                    "d=t", "e=\"s p\"", "f=nan", "g=-1.5e3", "1700000000000000000", "-5",
                    "99999999999999999999999999", "é", "\u{0}",
                ])
                .prop_map(str::to_owned),
                "[ -~]{0,4}",
            ],
            0..24,
        )
    ) {
        let payload = pieces.concat();
        for precision in PRECISIONS {
            let batch =
                Harness::default().feed(&mut InfluxDecoder { precision }, payload.as_bytes(), 1);
            check_influx(payload.as_bytes(), &batch)?;
        }
    }

    #[test]
    fn csv_decoder_survives_arbitrary_first_and_second_lines(
        first in vec(any::<u8>(), 0..128),
        second in vec(any::<u8>(), 0..128),
    ) {
        let mut decoder = CsvDecoder::new("stem", ENTITY_LABEL);
        let mut harness = Harness::default();
        let batch = harness.feed(&mut decoder, &first, 1);
        check_dead_letters(&batch)?;
        let width = String::from_utf8_lossy(&first).split(',').count();
        prop_assert!(outcomes(&batch) <= width.max(1));
        let batch = harness.feed(&mut decoder, &second, 2);
        check_dead_letters(&batch)?;
        let width = String::from_utf8_lossy(&second).split(',').count();
        prop_assert!(outcomes(&batch) <= width.max(1));
    }

    #[test]
    fn csv_decoder_accounts_for_arbitrary_rows_after_a_header(
        row in prop_oneof![
            vec(any::<u8>(), 0..128),
            any::<String>().prop_map(String::into_bytes),
            vec(
                select(vec![
                    ",", "\"", " ", "\r", "1700000000000", "2014-07-01 00:00:00",
                    "2023-11-14T22:13:20Z", "-1", "1.5", "NaN", "inf", "x", "",
                ]),
                0..8,
            )
            .prop_map(|v| v.concat().into_bytes()),
        ]
    ) {
        for (header, columns) in [("timestamp,value", 1), ("timestamp,cpu,mem", 2)] {
            let mut decoder = CsvDecoder::new("stem", ENTITY_LABEL);
            let mut harness = Harness::default();
            let batch = harness.feed(&mut decoder, header.as_bytes(), 1);
            prop_assert!(batch.is_empty(), "the header is not data");
            let batch = harness.feed(&mut decoder, &row, 2);
            check_csv_row(&row, &batch, columns)?;
        }
    }

    #[test]
    fn parse_text_never_panics_and_stays_in_range(s in any::<String>()) {
        if let Ok(ms) = parse_text(&s) {
            prop_assert!(ms <= MAX_MS);
        }
    }

    #[test]
    fn parse_text_never_panics_on_datetime_like_text(
        date in (0..10_000u32, 0..20u32, 0..40u32, 0..30u32, 0..70u32, 0..70u32),
        separator in select(vec!["T", "t", " ", "x", "", "é"]),
        fraction in select(vec!["", ".", ".5", ".123456789", ".1é", ".x"]),
        zone in select(vec![
            "", "Z", "z", "+02:00", "-23:59", "+24:00", "+0200", "-00:60", "Zjunk", " ", "+é:00", "+",
        ]),
    ) {
        let (y, mo, d, h, mi, s) = date;
        let text = format!("{y:04}-{mo:02}-{d:02}{separator}{h:02}:{mi:02}:{s:02}{fraction}{zone}");
        if let Ok(ms) = parse_text(&text) {
            prop_assert!(ms <= MAX_MS);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Fidelity.
// ---------------------------------------------------------------------------------------------

proptest! {
    #[test]
    fn contract_json_round_trips(points in vec(json_point(), 1..6)) {
        let lines: Vec<String> = points.iter().map(|p| p.contract().to_string()).collect();
        let got = decode_valid(&mut JsonDecoder, &lines)?;
        let want: Vec<Observed> = points.iter().map(JsonPoint::expected).collect();
        prop_assert_eq!(got, want);
    }

    #[test]
    fn contract_json_array_round_trips(points in vec(json_point(), 0..6)) {
        let array = Value::Array(points.iter().map(JsonPoint::contract).collect());
        let got = decode_valid(&mut JsonDecoder, &[array.to_string()])?;
        let want: Vec<Observed> = points.iter().map(JsonPoint::expected).collect();
        prop_assert_eq!(got, want);
    }

    #[test]
    fn adapter_json_round_trips(
        points in vec((json_point(), any::<bool>(), any::<bool>()), 1..6)
    ) {
        let lines: Vec<String> = points
            .iter()
            .map(|(p, with_name, exponent)| p.adapter(*with_name, *exponent).to_string())
            .collect();
        let got = decode_valid(&mut JsonDecoder, &lines)?;
        let want: Vec<Observed> = points.iter().map(|(p, _, _)| p.expected()).collect();
        prop_assert_eq!(got, want);
    }

    #[test]
    fn influx_lines_round_trip_at_every_precision(lines in vec(influx_line(), 1..6)) {
        for precision in PRECISIONS {
            let mut text = Vec::new();
            let mut want = Vec::new();
            for line in &lines {
                let (rendered, time) = line.render(precision);
                text.push(rendered);
                want.extend(line.expected(time));
            }
            let got = decode_valid(&mut InfluxDecoder { precision }, &text)?;
            prop_assert_eq!(got, want, "{:?} precision: {:?}", precision, text);
        }
    }

    #[test]
    fn influx_payload_with_several_lines_round_trips(lines in vec(influx_line(), 1..6)) {
        let mut text = Vec::new();
        let mut want = Vec::new();
        for line in &lines {
            let (rendered, time) = line.render(Precision::Ns);
            text.push(rendered);
            want.extend(line.expected(time));
        }
        // One Kafka message may carry many lines.
        let got = decode_valid(&mut InfluxDecoder::default(), &[text.join("\n")])?;
        prop_assert_eq!(got, want);
    }

    #[test]
    fn nab_csv_round_trips(
        stem in safe_name(),
        header in any::<bool>(),
        rows in csv_rows(1),
    ) {
        let (mut lines, cells) = render_csv(&rows);
        if header {
            lines.insert(0, "timestamp,value".into());
        }
        let got = decode_valid(&mut CsvDecoder::new(stem.as_str(), ENTITY_LABEL), &lines)?;
        let want: Vec<Observed> = cells
            .iter()
            .map(|(_, t, v)| (stem.clone(), vec![], *t, v.to_bits()))
            .collect();
        prop_assert_eq!(got, want);
    }

    #[test]
    fn wide_csv_round_trips(
        (stem, columns, rows) in (safe_name(), btree_set(safe_name(), 2..5))
            .prop_flat_map(|(stem, columns)| {
                let n = columns.len();
                (Just(stem), Just(columns), csv_rows(n))
            })
    ) {
        let columns: Vec<String> = columns.into_iter().collect();
        let (mut lines, cells) = render_csv(&rows);
        lines.insert(0, format!("timestamp,{}", columns.join(",")));
        let got = decode_valid(&mut CsvDecoder::new(stem.as_str(), ENTITY_LABEL), &lines)?;
        let entity = vec![(ENTITY_LABEL.to_string(), stem.clone())];
        let want: Vec<Observed> = cells
            .iter()
            .map(|(c, t, v)| (columns[*c].clone(), entity.clone(), *t, v.to_bits()))
            .collect();
        prop_assert_eq!(got, want);
    }

    #[test]
    fn rfc3339_millis_round_trips_through_parse_text(ms in 0..=MAX_MS) {
        let text = rfc3339_millis(ms);
        prop_assert_eq!(parse_text(&text), Ok(ms), "{}", text);
        let nab = text.replace('T', " ");
        let nab = nab.trim_end_matches('Z');
        prop_assert_eq!(parse_text(nab), Ok(ms), "{}", nab);
        prop_assert_eq!(parse_text(&ms.to_string()), Ok(ms));
    }
}

/// The range edges, which random sampling rarely hits.
#[test]
fn timestamp_range_edges() {
    assert_eq!(parse_text(&rfc3339_millis(0)), Ok(0));
    assert_eq!(parse_text(&rfc3339_millis(MAX_MS)), Ok(MAX_MS));
    assert_eq!(rfc3339_millis(MAX_MS), "2199-12-31T23:59:59.999Z");
    assert!(parse_text("2200-01-01T00:00:00.000Z").is_err());
    assert!(parse_text(&(MAX_MS + 1).to_string()).is_err());
}
