//! Malformed input through the whole pipeline, exactly as `harbinger replay` runs it: a JSON-lines
//! file mixing valid points with every kind of bad record must keep every valid point, dead-letter
//! each bad record (each bad array element) once with its reason, original payload and line, count
//! late points, and give byte-identical output with one and two workers.

use std::path::{Path, PathBuf};

use crate::common::cluster;
use harbinger::commands::pipeline::replay;
use harbinger::ingest::LabelLimits;
use serde_json::{json, Value};

/// First event time of the stream (2023-11-14T22:13:20Z).
const T0: u64 = 1_700_000_000_000;
/// Sampling interval of the valid series.
const STEP_MS: u64 = 10_000;
/// Steps written: 100 minutes of three series, enough for the default detector to warm up (20
/// windows of baseline, then 30 of calibration) and alert on the injected spike.
const STEPS: u64 = 600;
/// Allowed lateness of the embedded default config (`allowed_lateness_secs = 30`).
const LATENESS_MS: u64 = 30_000;
/// Services of the valid series.
const SERVICES: [&str; 3] = ["carts", "orders", "front-end"];
/// Steps during which `carts` latency spikes, so the run produces alerts to compare.
const SPIKE: std::ops::Range<u64> = 500..512;

/// How a dead letter must keep its payload.
#[derive(Debug, Clone, PartialEq)]
enum Kept {
    Text(String),
    Base64(String),
}

/// A dead letter the run must write.
#[derive(Debug, Clone, PartialEq)]
struct Expected {
    line: u64,
    offset: u64,
    element: Option<u64>,
    reason: &'static str,
    payload: Kept,
}

/// One element of a JSON array line.
enum Element {
    Good(Value),
    Bad(String, &'static str),
}

/// The input file being written, with the counts and dead letters it must produce.
#[derive(Default)]
struct Stream {
    bytes: Vec<u8>,
    lines: u64,
    valid: u64,
    late: u64,
    /// The partition clock as the engine will see it: the largest accepted event time.
    max_time: u64,
    dead: Vec<Expected>,
}

impl Stream {
    /// Appends a line; returns its (1-based line, byte offset).
    fn push(&mut self, line: &[u8]) -> (u64, u64) {
        let at = (self.lines + 1, self.bytes.len() as u64);
        self.bytes.extend_from_slice(line);
        self.bytes.push(b'\n');
        self.lines += 1;
        at
    }

    fn accept(&mut self, point: &Value) {
        let time = point["timestamp"]
            .as_u64()
            .expect("valid points have ms timestamps");
        assert!(
            time + LATENESS_MS >= self.max_time,
            "test bug: valid point at {time} would be late"
        );
        self.valid += 1;
        self.max_time = self.max_time.max(time);
    }

    fn good(&mut self, point: Value) {
        self.push(point.to_string().as_bytes());
        self.accept(&point);
    }

    fn bad(&mut self, text: &str, reason: &'static str) {
        let (line, offset) = self.push(text.as_bytes());
        self.expect(line, offset, None, reason, Kept::Text(text.to_string()));
    }

    fn bad_bytes(&mut self, bytes: &[u8], reason: &'static str) {
        let (line, offset) = self.push(bytes);
        self.expect(line, offset, None, reason, Kept::Base64(base64(bytes)));
    }

    fn array(&mut self, elements: Vec<Element>) {
        let texts: Vec<String> = elements
            .iter()
            .map(|e| match e {
                Element::Good(v) => v.to_string(),
                Element::Bad(text, _) => text.clone(),
            })
            .collect();
        let (line, offset) = self.push(format!("[{}]", texts.join(",")).as_bytes());
        // Elements are accepted in order, so the clock moves within the line.
        for (i, (element, text)) in elements.iter().zip(texts).enumerate() {
            match element {
                Element::Good(v) => self.accept(v),
                Element::Bad(_, reason) => {
                    self.expect(line, offset, Some(i as u64), reason, Kept::Text(text))
                }
            }
        }
    }

    fn expect(
        &mut self,
        line: u64,
        offset: u64,
        element: Option<u64>,
        reason: &'static str,
        payload: Kept,
    ) {
        if reason == "late" {
            self.late += 1;
        }
        self.dead.push(Expected {
            line,
            offset,
            element,
            reason,
            payload,
        });
    }
}

/// A valid point of the contract shape.
fn point(name: &str, service: &str, time: u64, value: f64) -> Value {
    json!({
        "name": name,
        "labels": {"service": service, "host": "h1"},
        "timestamp": time,
        "value": value,
    })
}

/// A point line with fields given as raw JSON text (`None` leaves the field out).
fn raw(
    name: Option<&str>,
    labels: Option<&str>,
    timestamp: Option<&str>,
    value: Option<&str>,
) -> String {
    let fields: Vec<String> = [
        ("name", name),
        ("labels", labels),
        ("timestamp", timestamp),
        ("value", value),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.map(|v| format!("\"{k}\":{v}")))
    .collect();
    format!("{{{}}}", fields.join(","))
}

/// Labels object text with `n` labels `l00`, `l01`, ...
fn many_labels(n: usize) -> String {
    let labels: Vec<String> = (0..n).map(|i| format!("\"l{i:02}\":\"v\"")).collect();
    format!("{{{}}}", labels.join(","))
}

/// Every kind of bad single-line record at event time `t`, with the reason it must get.
fn bad_records(t: u64) -> Vec<(String, &'static str)> {
    let ts = t.to_string();
    let ts = Some(ts.as_str());
    let name = Some("\"cpu\"");
    let labels = Some("{\"service\":\"carts\"}");
    let one = Some("1");
    let limits = LabelLimits::default();
    let long = "x".repeat(limits.max_len + 1);
    let long_value = format!("{{\"service\":\"{long}\"}}");
    let long_key = format!("{{\"{long}\":\"carts\"}}");
    let long_name = format!("\"{long}\"");
    let too_many = many_labels(limits.max_labels + 1);
    vec![
        // Unparsable.
        ("this is not JSON".into(), "unparsable"),
        (
            raw(name, labels, ts, one).trim_end_matches('}').into(),
            "unparsable",
        ),
        ("{\"name\":\"cpu\" \"timestamp\":1}".into(), "unparsable"),
        ("[{\"name\":\"cpu\",".into(), "unparsable"),
        // Missing fields.
        (raw(None, labels, ts, one), "missing_field"),
        (raw(name, labels, None, one), "missing_field"),
        (raw(name, labels, ts, None), "missing_field"),
        ("{}".into(), "missing_field"),
        // Wrong types.
        (raw(Some("5"), labels, ts, one), "invalid_field"),
        (
            raw(name, Some("[\"service\",\"carts\"]"), ts, one),
            "invalid_field",
        ),
        (raw(name, Some("{\"service\":7}"), ts, one), "invalid_field"),
        (raw(name, labels, Some("true"), one), "invalid_field"),
        (
            raw(name, labels, Some("\"yesterday\""), one),
            "invalid_field",
        ),
        (
            raw(name, labels, Some("1700000000000.5"), one),
            "invalid_field",
        ),
        (raw(name, labels, ts, Some("\"twelve\"")), "invalid_field"),
        (raw(name, labels, ts, Some("null")), "invalid_field"),
        (raw(name, labels, ts, Some("{\"v\":1}")), "invalid_field"),
        ("42".into(), "invalid_field"),
        // Non-finite values.
        (raw(name, labels, ts, Some("\"NaN\"")), "non_finite_value"),
        (raw(name, labels, ts, Some("\"+Inf\"")), "non_finite_value"),
        (
            raw(name, labels, ts, Some("\"-Infinity\"")),
            "non_finite_value",
        ),
        (raw(name, labels, ts, Some("\"1e400\"")), "non_finite_value"),
        // Timestamps out of range.
        (raw(name, labels, Some("-5"), one), "timestamp_out_of_range"),
        (
            raw(name, labels, Some("\"2300-01-01T00:00:00Z\""), one),
            "timestamp_out_of_range",
        ),
        (
            raw(name, labels, Some("10413792000000"), one),
            "timestamp_out_of_range",
        ),
        (
            raw(name, labels, Some("1e300"), one),
            "timestamp_out_of_range",
        ),
        (
            raw(name, labels, Some("\"1969-12-31T23:59:59Z\""), one),
            "timestamp_out_of_range",
        ),
        // Nanoseconds sent as milliseconds.
        (
            raw(name, labels, Some("1700000000000000000"), one),
            "timestamp_out_of_range",
        ),
        // Label limits.
        (raw(name, Some(&long_value), ts, one), "label_limit"),
        (raw(name, Some(&long_key), ts, one), "label_limit"),
        (raw(Some(&long_name), labels, ts, one), "label_limit"),
        (raw(name, Some(&too_many), ts, one), "label_limit"),
        (raw(Some("\"\""), labels, ts, one), "label_limit"),
    ]
}

/// Writes the stream: three valid series every step, bad records spread between them.
fn build() -> Stream {
    let mut s = Stream::default();
    let limits = LabelLimits::default();
    let kinds = bad_records(T0).len();
    let mut next_bad = 0;
    for step in 0..STEPS {
        let t = T0 + step * STEP_MS;
        for (k, service) in SERVICES.iter().enumerate() {
            let base = 20.0 + 10.0 * k as f64;
            let wiggle = ((step * 7 + k as u64 * 3) % 11) as f64 * 0.25;
            let spike = if *service == "carts" && SPIKE.contains(&step) {
                400.0
            } else {
                0.0
            };
            s.good(point(
                "http_latency_p99_ms",
                service,
                t,
                base + wiggle + spike,
            ));
        }
        // One bad single-line record every third step, timed like its neighbours.
        if step % 3 == 1 && next_bad < kinds {
            let (text, reason) = bad_records(t).swap_remove(next_bad);
            s.bad(&text, reason);
            next_bad += 1;
        }
        match step {
            20 => {
                // Latin-1 "café": not UTF-8.
                let mut line = br#"{"name":"cpu","labels":{"service":"caf"#.to_vec();
                line.push(0xe9);
                line.extend_from_slice(format!(r#""}},"timestamp":{t},"value":1}}"#).as_bytes());
                s.bad_bytes(&line, "unparsable");
            }
            30 => {
                // Blank and whitespace-only lines are skipped but still count as lines.
                s.push(b"");
                s.push(b"   ");
            }
            40 => {
                let late = t - 4 * LATENESS_MS;
                s.array(vec![
                    Element::Good(point("queue_depth", "carts", t, 3.0)),
                    Element::Bad(
                        raw(
                            Some("\"queue_depth\""),
                            Some("{\"service\":\"orders\"}"),
                            Some(&t.to_string()),
                            Some("\"NaN\""),
                        ),
                        "non_finite_value",
                    ),
                    Element::Good(point("queue_depth", "orders", t, 4.0)),
                    Element::Bad(
                        raw(Some("\"queue_depth\""), None, Some(&t.to_string()), None),
                        "missing_field",
                    ),
                    Element::Bad("\"just a string\"".into(), "invalid_field"),
                    Element::Bad(point("queue_depth", "carts", late, 5.0).to_string(), "late"),
                    Element::Bad(
                        raw(Some("\"queue_depth\""), None, Some("-1"), Some("1")),
                        "timestamp_out_of_range",
                    ),
                    Element::Bad(
                        raw(
                            Some("\"queue_depth\""),
                            Some(&many_labels(limits.max_labels + 1)),
                            Some(&t.to_string()),
                            Some("1"),
                        ),
                        "label_limit",
                    ),
                    Element::Good(point("queue_depth", "front-end", t, 5.0)),
                ]);
            }
            50 => {
                // Far behind the watermark, on a known series and on a series never seen.
                let late = t - 10 * LATENESS_MS;
                s.bad(
                    &point("http_latency_p99_ms", "carts", late, 1.0).to_string(),
                    "late",
                );
                s.bad(&point("brand_new", "carts", late, 1.0).to_string(), "late");
            }
            60 => {
                // Exactly at the watermark is in time; one millisecond behind it is late.
                let edge = s.max_time - LATENESS_MS;
                s.good(point("http_latency_p99_ms", "orders", edge, 30.0));
                s.bad(
                    &point("http_latency_p99_ms", "orders", edge - 1, 30.0).to_string(),
                    "late",
                );
            }
            70 => {
                // Limits are inclusive: exactly the maximum is valid.
                let longest = "y".repeat(limits.max_len);
                let mut p = point(&longest, "carts", t, 1.0);
                p["labels"]["z"] = Value::from(longest.as_str());
                s.good(p);
                let labels: serde_json::Map<String, Value> = (0..limits.max_labels)
                    .map(|i| (format!("l{i:02}"), Value::from("v")))
                    .collect();
                s.good(json!({"name": "wide", "labels": labels, "timestamp": t, "value": 2.0}));
            }
            80 => {
                // Adapter shape and a CRLF line are valid too.
                let adapter = json!({
                    "timestamp": operators::time_format::rfc3339_millis(t),
                    "value": "7.25",
                    "labels": {"__name__": "adapter_metric", "service": "carts"},
                });
                s.push(adapter.to_string().as_bytes());
                s.valid += 1;
                let mut crlf = point("crlf_metric", "carts", t, 1.5)
                    .to_string()
                    .into_bytes();
                crlf.push(b'\r');
                s.push(&crlf);
                s.valid += 1;
            }
            _ => {}
        }
    }
    assert_eq!(
        next_bad, kinds,
        "test bug: not every bad record was written"
    );
    s
}

/// Standard base64 (RFC 4648, padded), to predict `payload_base64`.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Runs `harbinger replay <input> --out <out> -w <workers>` through the library; returns the
/// parsed summary.json.
fn run_replay(input: &Path, out: &Path, workers: usize) -> Value {
    let cluster = cluster(workers);
    replay(
        &[input.to_path_buf()],
        None,
        None,
        None,
        None,
        false,
        out,
        &cluster,
    )
    .unwrap_or_else(|f| panic!("replay failed (exit {}): {}", f.code, f.message));
    let summary = std::fs::read_to_string(out.join("summary.json")).expect("summary.json");
    serde_json::from_str(&summary).expect("summary.json is JSON")
}

/// Writes the stream to `dir/metrics.jsonl`.
fn write_input(dir: &Path, stream: &Stream) -> PathBuf {
    let path = dir.join("metrics.jsonl");
    std::fs::write(&path, &stream.bytes).expect("write input");
    path
}

#[test]
fn malformed_records_are_dead_lettered_and_no_valid_point_is_lost() {
    let stream = build();
    let dir = tempfile::tempdir().expect("tempdir");
    let input = write_input(dir.path(), &stream);
    let out = dir.path().join("out");
    let summary = run_replay(&input, &out, 1);

    assert_eq!(
        summary["points"], stream.valid,
        "valid points accepted: {summary}"
    );
    assert_eq!(
        summary["late_points"], stream.late,
        "late points: {summary}"
    );
    assert_eq!(
        summary["dead_letters"],
        stream.dead.len() as u64,
        "dead letters: {summary}"
    );

    let text = std::fs::read_to_string(out.join("dead_letters.jsonl")).expect("dead_letters.jsonl");
    let file = input.display().to_string();
    let got: Vec<Expected> = text
        .lines()
        .map(|line| {
            let d: Value = serde_json::from_str(line).expect("dead letter is JSON");
            assert_eq!(d["source"], file.as_str(), "{line}");
            assert_eq!(d["position"]["kind"], "line", "{line}");
            assert_eq!(d["position"]["file"], file.as_str(), "{line}");
            assert!(
                d["detail"].as_str().is_some_and(|s| !s.is_empty()),
                "{line}"
            );
            let payload = match (d["payload"].as_str(), d["payload_base64"].as_str()) {
                (Some(p), None) => Kept::Text(p.to_string()),
                (None, Some(b)) => Kept::Base64(b.to_string()),
                _ => panic!("payload kept in exactly one form: {line}"),
            };
            let reasons = [
                "unparsable",
                "missing_field",
                "invalid_field",
                "non_finite_value",
                "timestamp_out_of_range",
                "label_limit",
                "late",
                "series_id_collision",
            ];
            let reason = reasons
                .into_iter()
                .find(|r| d["reason"] == *r)
                .unwrap_or_else(|| panic!("unknown reason: {line}"));
            Expected {
                line: d["position"]["line"].as_u64().expect("line"),
                offset: d["position"]["offset"].as_u64().expect("offset"),
                element: d["element"].as_u64(),
                reason,
                payload,
            }
        })
        .collect();
    for (i, (g, w)) in got.iter().zip(&stream.dead).enumerate() {
        assert_eq!(g, w, "dead letter {i}");
    }
    assert_eq!(
        got.len(),
        stream.dead.len(),
        "one dead letter per bad record"
    );
}

#[test]
fn malformed_input_gives_identical_output_with_two_workers() {
    let stream = build();
    let dir = tempfile::tempdir().expect("tempdir");
    let input = write_input(dir.path(), &stream);
    let one = dir.path().join("one");
    let two = dir.path().join("two");
    let summary_one = run_replay(&input, &one, 1);
    let summary_two = run_replay(&input, &two, 2);
    assert_eq!(summary_two["workers"], 2);
    for key in ["points", "dead_letters", "late_points", "series", "alerts"] {
        assert_eq!(summary_one[key], summary_two[key], "summary {key}");
    }
    let read = |dir: &Path, file: &str| std::fs::read(dir.join(file)).expect(file);
    let alerts = read(&one, "alerts.jsonl");
    assert!(
        !alerts.is_empty(),
        "the spike should alert, or the comparison proves little"
    );
    assert!(
        read(&one, "alerts.jsonl") == read(&two, "alerts.jsonl"),
        "alerts.jsonl differs between 1 and 2 workers"
    );
    assert!(
        read(&one, "dead_letters.jsonl") == read(&two, "dead_letters.jsonl"),
        "dead_letters.jsonl differs between 1 and 2 workers"
    );
}
