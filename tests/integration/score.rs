//! `harbinger score`: per-row scores in [0, 1], one per input row in order, computed without
//! look-ahead, for NAB-style and headerless wide (ASD-style) CSVs.

use std::path::Path;
use std::process::Command;

fn harbinger() -> Command {
    Command::new(env!("CARGO_BIN_EXE_harbinger"))
}

/// A NAB-style file: a daily-ish wave with noise, one planted spike at row `spike`.
fn nab_csv(rows: usize, spike: usize, tail_shift: f64) -> String {
    let mut out = String::from("timestamp,value\n");
    let t0 = 1_396_310_400u64; // 2014-04-01 00:00:00 UTC
    for i in 0..rows {
        let t = t0 + 300 * i as u64;
        let (days, secs) = (t / 86_400, t % 86_400);
        // Civil date of `days` since the epoch is 2014-04-01 + (days − 16161).
        let day = 1 + (days - 16_161);
        let noise = ((i * 7919) % 17) as f64 * 0.1;
        let mut v = 50.0 + 10.0 * (i as f64 * std::f64::consts::TAU / 288.0).sin() + noise;
        if i == spike {
            v += 60.0;
        }
        if i >= rows - 20 {
            v += tail_shift;
        }
        out.push_str(&format!(
            "2014-04-{day:02} {:02}:{:02}:{:02},{v:.3}\n",
            secs / 3600,
            secs % 3600 / 60,
            secs % 60
        ));
    }
    out
}

fn scores(path: &Path) -> Vec<f64> {
    let text = std::fs::read_to_string(path).expect("output");
    let mut lines = text.lines();
    let header = lines.next().expect("header");
    assert!(header.ends_with(",anomaly_score"), "{header}");
    lines
        .map(|l| l.rsplit(',').next().unwrap().parse::<f64>().expect("score"))
        .collect()
}

fn run_score(dir: &Path, name: &str, csv: &str, extra: &[&str]) -> Vec<f64> {
    let input = dir.join(format!("{name}.csv"));
    let output = dir.join(format!("{name}.out.csv"));
    std::fs::write(&input, csv).expect("write");
    let out = harbinger()
        .arg("score")
        .arg("--input")
        .arg(&input)
        .arg("--output")
        .arg(&output)
        .args(extra)
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    scores(&output)
}

#[test]
fn one_score_per_row_in_range_and_the_planted_spike_ranks_first() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rows = 1500;
    let s = run_score(dir.path(), "nab", &nab_csv(rows, 1200, 0.0), &[]);
    assert_eq!(s.len(), rows);
    assert!(s.iter().all(|x| (0.0..=1.0).contains(x)));
    let best = s
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map(|(i, _)| i)
        .unwrap();
    assert_eq!(best, 1200, "the spike scores highest: {}", s[1200]);
    // The input's columns are kept verbatim.
    let text = std::fs::read_to_string(dir.path().join("nab.out.csv")).unwrap();
    assert!(text.starts_with("timestamp,value,anomaly_score\n2014-04-01 00:00:00,"));
}

#[test]
fn scores_have_no_look_ahead() {
    // Two inputs equal in their first rows and different after: the first rows' scores must be
    // identical, whatever comes later.
    let dir = tempfile::tempdir().expect("tempdir");
    let rows = 1200;
    let a = run_score(dir.path(), "a", &nab_csv(rows, 900, 0.0), &[]);
    let b = run_score(dir.path(), "b", &nab_csv(rows, 900, 500.0), &[]);
    let k = rows - 20;
    assert_eq!(
        a[..k],
        b[..k],
        "scores before the change must not depend on it"
    );
    assert_ne!(a[k..], b[k..], "the change itself is seen");
}

#[test]
fn headerless_wide_files_with_training_history() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wide = |rows: usize, planted: Option<usize>| {
        let mut out = String::new();
        for i in 0..rows {
            let a = 0.5 + 0.2 * (i as f64 * 0.07).sin();
            let mut b = 0.8 * a + ((i * 31) % 7) as f64 * 0.005;
            if Some(i) == planted {
                b = 0.05; // breaks the a–b correlation while staying in b's range
            }
            out.push_str(&format!(
                "{a:.4},{b:.4},{:.4}\n",
                ((i * 13) % 5) as f64 * 0.01
            ));
        }
        out
    };
    let train = dir.path().join("train.txt");
    std::fs::write(&train, wide(800, None)).expect("write");
    let s = run_score(
        dir.path(),
        "test",
        &wide(300, Some(200)),
        &["--train", train.to_str().unwrap(), "--row-step", "5m"],
    );
    assert_eq!(s.len(), 300);
    let text = std::fs::read_to_string(dir.path().join("test.out.csv")).unwrap();
    assert!(
        text.starts_with("c1,c2,c3,anomaly_score\n"),
        "{}",
        &text[..40]
    );
    let planted = s[200];
    let ordinary = s[150..200].iter().cloned().fold(0.0, f64::max);
    assert!(
        planted > ordinary,
        "planted {planted} vs ordinary max {ordinary}"
    );
}
