//! `harbinger forecast`: long-format CSV in, per-series forecasts with nested 80% / 95% intervals
//! out, in input series order; seasonal series forecast far better than their mean; malformed
//! rows are errors naming their line.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Output};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const SEASON: usize = 12;
const HORIZON: usize = 12;
const TRAIN: usize = 120;

fn harbinger_forecast(input: &Path, output: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_harbinger"))
        .arg("forecast")
        .arg("--input")
        .arg(input)
        .arg("--output")
        .arg(output)
        .args(["--horizon", &HORIZON.to_string()])
        .args(["--season", &SEASON.to_string()])
        .args(extra)
        .output()
        .expect("run harbinger")
}

/// Full series (train + the `HORIZON` future points): three noisy seasonal series of different
/// level, amplitude and phase, and a noisy linear trend. Seeded, so the file is the same each run.
fn series() -> Vec<(String, Vec<f64>)> {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut out = Vec::new();
    for (k, (level, amp)) in [(100.0, 20.0), (50.0, 8.0), (500.0, 60.0)]
        .into_iter()
        .enumerate()
    {
        let values = (0..TRAIN + HORIZON)
            .map(|t| {
                let phase = (t + 3 * k) as f64 * std::f64::consts::TAU / SEASON as f64;
                level + amp * phase.sin() + rng.random_range(-1.0..1.0) * amp * 0.05
            })
            .collect();
        out.push((format!("seasonal_{k}"), values));
    }
    let trend = (0..TRAIN + HORIZON)
        .map(|t| 10.0 + 0.5 * t as f64 + rng.random_range(-1.0..1.0))
        .collect();
    out.push(("trend".to_string(), trend));
    out
}

/// The training part as long-format CSV; the trend's rows are written newest first, so the
/// command must sort by `ds`.
fn training_csv(series: &[(String, Vec<f64>)]) -> String {
    let mut csv = String::from("unique_id,ds,y\n");
    for (id, values) in series {
        let mut rows: Vec<usize> = (0..TRAIN).collect();
        if id == "trend" {
            rows.reverse();
        }
        for t in rows {
            csv.push_str(&format!("{id},{},{:.4}\n", t + 1, values[t]));
        }
    }
    csv
}

/// Output rows per id, in file order: (id order, id → [yhat, lo80, hi80, lo95, hi95] per step).
type Parsed = (Vec<String>, HashMap<String, Vec<[f64; 5]>>);

fn parse_output(text: &str) -> Parsed {
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("unique_id,step,yhat,lo80,hi80,lo95,hi95")
    );
    let mut order = Vec::new();
    let mut rows: HashMap<String, Vec<[f64; 5]>> = HashMap::new();
    for line in lines {
        let f: Vec<&str> = line.split(',').collect();
        assert_eq!(f.len(), 7, "row {line}");
        let id = f[0].to_string();
        if order.last() != Some(&id) {
            assert!(!order.contains(&id), "{id}'s rows are not contiguous");
            order.push(id.clone());
        }
        let entry = rows.entry(id).or_default();
        let step: usize = f[1].parse().expect("step");
        assert_eq!(step, entry.len() + 1, "steps count from 1 in order");
        let v: Vec<f64> = f[2..].iter().map(|x| x.parse().expect("number")).collect();
        entry.push([v[0], v[1], v[2], v[3], v[4]]);
    }
    (order, rows)
}

fn mean_abs_error(actual: &[f64], predicted: impl Iterator<Item = f64>) -> f64 {
    actual
        .iter()
        .zip(predicted)
        .map(|(a, p)| (a - p).abs())
        .sum::<f64>()
        / actual.len() as f64
}

#[test]
fn forecasts_have_shape_nested_intervals_and_beat_the_mean() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("train.csv");
    let output = dir.path().join("forecast.csv");
    let data = series();
    std::fs::write(&input, training_csv(&data)).expect("write input");

    let run = harbinger_forecast(&input, &output, &["--threads", "2"]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let text = std::fs::read_to_string(&output).expect("output");
    let (order, rows) = parse_output(&text);

    let ids: Vec<String> = data.iter().map(|(id, _)| id.clone()).collect();
    assert_eq!(order, ids, "series in input order");
    for (id, values) in &data {
        let steps = &rows[id];
        assert_eq!(steps.len(), HORIZON, "{id}: one row per step");
        for (h, [yhat, lo80, hi80, lo95, hi95]) in steps.iter().copied().enumerate() {
            assert!(
                [yhat, lo80, hi80, lo95, hi95].iter().all(|v| v.is_finite()),
                "{id} step {h}: non-finite"
            );
            assert!(
                lo95 <= lo80 && lo80 <= yhat && yhat <= hi80 && hi80 <= hi95,
                "{id} step {}: intervals do not nest: {lo95} {lo80} {yhat} {hi80} {hi95}",
                h + 1
            );
            assert!(hi95 > lo95, "{id} step {}: empty 95% interval", h + 1);
        }
        let future = &values[TRAIN..];
        let train_mean = values[..TRAIN].iter().sum::<f64>() / TRAIN as f64;
        let model_mae = mean_abs_error(future, steps.iter().map(|s| s[0]));
        let mean_mae = mean_abs_error(future, std::iter::repeat(train_mean));
        // The seasonal swings (and the trend's drift) dwarf the noise: a model that captures
        // them is several times better than the flat mean.
        assert!(
            model_mae < 0.25 * mean_mae,
            "{id}: forecast MAE {model_mae:.3} vs flat mean {mean_mae:.3}"
        );
    }

    // The output does not depend on the thread count.
    let single = dir.path().join("single.csv");
    let run = harbinger_forecast(&input, &single, &["--threads", "1"]);
    assert!(run.status.success());
    assert_eq!(std::fs::read_to_string(&single).expect("output"), text);
}

#[test]
fn malformed_row_is_an_error_naming_its_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let output = dir.path().join("forecast.csv");
    let cases = [
        (
            "unique_id,ds,y\na,1,1.5\na,2,2.5\na,3,abc\na,4,1\n",
            "line 4",
        ),
        ("unique_id,ds,y\na,1,1.5\na,2\n", "line 3"),
        ("unique_id,ds,y\na,1,1.5\na,1,2.5\n", "line 3"),
        ("series,ds,y\na,1,1.5\n", "line 1"),
    ];
    for (csv, line) in cases {
        let input = dir.path().join("bad.csv");
        std::fs::write(&input, csv).expect("write input");
        let run = harbinger_forecast(&input, &output, &[]);
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert_eq!(run.status.code(), Some(1), "{csv:?}: {stderr}");
        assert!(
            stderr.contains(line),
            "{csv:?}: expected {line} in {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}
