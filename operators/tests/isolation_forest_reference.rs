//! The standard isolation forest against scikit-learn on one fixture
//! (`tests/fixtures/iforest_reference.json`, written by `tests/fixtures/make_iforest_fixture.py`).
//!
//! Forests are random, so the check is statistical: the reference averages the path lengths of
//! ten 100-tree scikit-learn forests (one 1,000-tree forest in expectation) and is compared with
//! one 1,000-tree forest of ours on rank agreement, on the mean score and row by row with a loose
//! bound. A different path length (depth counting, c(n) of the leaf, the normaliser) or a
//! different cut distribution would move the scores by more than the tolerances allow.

use operators::models::isolation_forest::IsolationForestConfig;
use serde::Deserialize;

#[derive(Deserialize)]
struct Fixture {
    n_features: usize,
    n_trees: usize,
    sample_size: usize,
    /// f32 values written as the f64 numbers they equal, so the cast below is exact.
    train: Vec<f64>,
    probe: Vec<f64>,
    reference_scores: Vec<f64>,
}

fn load() -> Fixture {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/iforest_reference.json"
    );
    let text = std::fs::read_to_string(path).expect("fixture is committed");
    serde_json::from_str(&text).expect("fixture parses")
}

fn to_f32(values: &[f64]) -> Vec<f32> {
    values.iter().map(|&v| v as f32).collect()
}

/// Ranks from 1, ties sharing their mean rank.
fn ranks(values: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let mut out = vec![0.0; values.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && values[order[j + 1]] == values[order[i]] {
            j += 1;
        }
        let mean_rank = (i + j) as f64 / 2.0 + 1.0;
        for &k in &order[i..=j] {
            out[k] = mean_rank;
        }
        i = j + 1;
    }
    out
}

fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let cov: f64 = a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let va: f64 = a.iter().map(|x| (x - ma).powi(2)).sum();
    let vb: f64 = b.iter().map(|y| (y - mb).powi(2)).sum();
    cov / (va * vb).sqrt()
}

fn spearman(a: &[f64], b: &[f64]) -> f64 {
    pearson(&ranks(a), &ranks(b))
}

#[test]
fn spearman_of_a_known_ranking() {
    // Guards the helper: reversed order is −1, a monotone transform is +1, and one swap of
    // neighbours among five gives 1 − 6·2/(5·24) = 0.9.
    assert!((spearman(&[1.0, 2.0, 3.0], &[3.0, 2.0, 1.0]) + 1.0).abs() < 1e-12);
    assert!((spearman(&[1.0, 2.0, 3.0, 4.0], &[1.0, 4.0, 9.0, 16.0]) - 1.0).abs() < 1e-12);
    let swapped = spearman(&[1.0, 2.0, 3.0, 4.0, 5.0], &[2.0, 1.0, 3.0, 4.0, 5.0]);
    assert!((swapped - 0.9).abs() < 1e-12);
}

#[test]
fn scores_agree_with_scikit_learn() {
    let fixture = load();
    let d = fixture.n_features;
    assert_eq!(fixture.probe.len(), fixture.reference_scores.len() * d);
    let config = IsolationForestConfig {
        n_trees: fixture.n_trees,
        ..IsolationForestConfig::default()
    };
    let forest = config
        .fit(&to_f32(&fixture.train), d)
        .expect("fixture data is valid");
    assert_eq!(forest.sample_size(), fixture.sample_size);

    let mut ours = Vec::new();
    forest.score_batch(&to_f32(&fixture.probe), &mut ours);
    let reference = &fixture.reference_scores;

    let rho = spearman(&ours, reference);
    assert!(rho >= 0.9, "Spearman rank correlation {rho:.4} < 0.9");

    let n = reference.len() as f64;
    let mean_ours = ours.iter().sum::<f64>() / n;
    let mean_reference = reference.iter().sum::<f64>() / n;
    assert!(
        (mean_ours - mean_reference).abs() <= 0.03,
        "mean score {mean_ours:.4} vs scikit-learn {mean_reference:.4}"
    );

    // Row by row, two 1,000-tree scikit-learn forests with different seeds differ by up to ~0.02
    // on this fixture; 0.05 leaves room for that noise but not for a systematic difference.
    for (i, (a, b)) in ours.iter().zip(reference).enumerate() {
        assert!(
            (a - b).abs() <= 0.05,
            "probe row {i}: {a:.4} vs scikit-learn {b:.4}"
        );
    }
}
