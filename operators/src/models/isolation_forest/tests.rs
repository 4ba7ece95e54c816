//! Unit tests of the isolation forest: the c(n) formula and hand-checkable forests, determinism,
//! detection quality on seeded data with planted outliers, checkpoints, input validation and a
//! property test that no finite matrix makes fitting or scoring panic.

use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::grow::standard_normal;
use super::*;

/// Area under the ROC curve of `outliers` against `inliers` (ties count half): the probability
/// that a random outlier scores above a random inlier.
fn auc(outliers: &[f64], inliers: &[f64]) -> f64 {
    let mut wins = 0.0;
    for o in outliers {
        for i in inliers {
            wins += if o > i {
                1.0
            } else if o == i {
                0.5
            } else {
                0.0
            };
        }
    }
    wins / (outliers.len() * inliers.len()) as f64
}

/// `n` rows of `d` independent standard normals.
fn gaussian_rows(rng: &mut ChaCha8Rng, n: usize, d: usize) -> Vec<f32> {
    (0..n * d).map(|_| standard_normal(rng) as f32).collect()
}

/// `n` rows at a distance uniform in [5, 7) from the origin in uniformly random directions:
/// clearly outside a standard normal blob in any dimension used here.
fn shell_rows(rng: &mut ChaCha8Rng, n: usize, d: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(n * d);
    for _ in 0..n {
        let direction: Vec<f64> = (0..d).map(|_| standard_normal(rng)).collect();
        let norm = direction.iter().map(|v| v * v).sum::<f64>().sqrt();
        let radius = rng.random_range(5.0..7.0);
        out.extend(direction.iter().map(|v| (v / norm * radius) as f32));
    }
    out
}

fn scores(forest: &IsolationForest, rows: &[f32]) -> Vec<f64> {
    let mut out = Vec::new();
    forest.score_batch(rows, &mut out);
    out
}

fn extended(level: usize) -> ForestVariant {
    ForestVariant::Extended {
        extension_level: level,
    }
}

#[test]
fn average_path_length_matches_hand_computed_values() {
    // c(n) = 2 (ln(n − 1) + γ) − 2 (n − 1) / n with γ = 0.5772156649015329, by hand:
    // c(3) = 2 (0.6931471805599453 + γ) − 4/3; c(256) = 2 (ln 255 + γ) − 510/256.
    let cases = [
        (0, 0.0),
        (1, 0.0),
        (2, 1.0),
        (3, 1.207_392_357_589_623),
        (5, 2.327_020_052_042_847),
        (256, 10.244_770_920_119_917),
    ];
    for (n, expected) in cases {
        let got = average_path_length(n);
        assert!(
            (got - expected).abs() < 1e-12,
            "c({n}) = {got}, expected {expected}"
        );
    }
}

#[test]
fn default_depth_is_ceil_log2_of_the_sample() {
    let cases = [
        (1, 1),
        (2, 1),
        (3, 2),
        (4, 2),
        (5, 3),
        (255, 8),
        (256, 8),
        (257, 9),
    ];
    for (psi, depth) in cases {
        assert_eq!(default_max_depth(psi), depth, "ψ = {psi}");
    }
}

#[test]
fn forced_tree_gives_hand_computed_scores() {
    // Five rows at 0 and one at 1: every tree's root must cut between 0 and 1, leaving a leaf of
    // five equal rows at depth 1 (h = 1 + c(5)) and a leaf of one row at depth 1 (h = 1). With
    // ψ = 6: s(0) = 2^(−(1 + 2.327020052042847) / 2.7066404880045996), s(1) = 2^(−1 / 2.70664…).
    let rows = [0.0, 0.0, 0.0, 1.0, 0.0, 0.0];
    for variant in [ForestVariant::Standard, extended(0)] {
        let config = IsolationForestConfig {
            n_trees: 10,
            variant,
            ..IsolationForestConfig::default()
        };
        let forest = config.fit(&rows, 1).unwrap();
        assert_eq!(forest.sample_size(), 6);
        assert!((forest.score(&[0.0]) - 0.426_551_993_378_11).abs() < 1e-6);
        assert!((forest.score(&[1.0]) - 0.774_071_264_442_622_4).abs() < 1e-6);
    }
}

#[test]
fn identical_rows_make_a_single_leaf_scoring_one_half() {
    // Nothing can be cut, so every root is a leaf of ψ rows: h = c(ψ), s = 2^−1.
    let rows = vec![3.5f32; 40 * 3];
    for variant in [ForestVariant::Standard, extended(2)] {
        let config = IsolationForestConfig {
            variant,
            max_depth: Some(MAX_DEPTH_LIMIT),
            ..IsolationForestConfig::default()
        };
        let forest = config.fit(&rows, 3).unwrap();
        assert_eq!(forest.nodes.len(), forest.n_trees());
        // Leaf path lengths are stored as f32: c(40) to ~1e-7 relative, the score to ~1e-8.
        for row in [[3.5, 3.5, 3.5], [100.0, -4.0, 0.0]] {
            assert!((forest.score(&row) - 0.5).abs() < 1e-6);
        }
    }
}

#[test]
fn one_row_scores_one_half_like_scikit_learn() {
    let forest = IsolationForestConfig::default()
        .fit(&[1.0, 2.0], 2)
        .unwrap();
    assert_eq!(forest.score(&[1.0, 2.0]), 0.5);
    assert_eq!(forest.score(&[-9.0, 20.0]), 0.5);
}

#[test]
fn constant_columns_are_never_cut() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    // Column 0 varies, columns 1 and 2 are constant; many duplicate rows.
    let rows: Vec<f32> = (0..300)
        .flat_map(|_| [rng.random_range(0..4) as f32, 1.0, -2.0])
        .collect();
    for variant in [ForestVariant::Standard, extended(1), extended(2)] {
        let config = IsolationForestConfig {
            variant,
            max_depth: Some(20),
            ..IsolationForestConfig::default()
        };
        let forest = config.fit(&rows, 3).unwrap();
        // Four distinct values: a standard tree has at most 3 splits, so 7 nodes. A hyperplane can
        // leave one side empty, so only the bound on the depth applies there.
        for tree in &forest.trees {
            assert!(tree.depth <= 20);
        }
        if variant == ForestVariant::Standard {
            assert!(forest.nodes.len() <= 7 * forest.n_trees());
            assert!(forest.nodes.iter().all(|n| n.feature == 0));
        }
        let s = scores(&forest, &rows);
        assert!(s.iter().all(|v| *v > 0.0 && *v <= 1.0));
    }
}

#[test]
fn same_seed_gives_the_same_forest_and_another_seed_does_not() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let rows = gaussian_rows(&mut rng, 500, 4);
    for variant in [ForestVariant::Standard, extended(3)] {
        let config = IsolationForestConfig {
            variant,
            seed: 42,
            ..IsolationForestConfig::default()
        };
        let a = config.fit(&rows, 4).unwrap();
        let b = config.fit(&rows, 4).unwrap();
        assert_eq!(a, b);
        assert_eq!(scores(&a, &rows), scores(&b, &rows));
        let other = IsolationForestConfig { seed: 43, ..config }
            .fit(&rows, 4)
            .unwrap();
        assert_ne!(a, other);
    }
}

#[test]
fn planted_outliers_score_higher_than_a_gaussian_blob() {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let d = 4;
    let train = [
        gaussian_rows(&mut rng, 1000, d),
        shell_rows(&mut rng, 20, d),
    ]
    .concat();
    let inliers = gaussian_rows(&mut rng, 500, d);
    let outliers = shell_rows(&mut rng, 25, d);
    for variant in [ForestVariant::Standard, extended(1), extended(d - 1)] {
        let config = IsolationForestConfig {
            variant,
            ..IsolationForestConfig::default()
        };
        let forest = config.fit(&train, d).unwrap();
        let (s_out, s_in) = (scores(&forest, &outliers), scores(&forest, &inliers));
        let area = auc(&s_out, &s_in);
        assert!(area >= 0.95, "{variant:?}: AUC {area}");
        for s in s_out.iter().chain(&s_in) {
            assert!(*s > 0.0 && *s <= 1.0, "score {s} outside (0, 1]");
        }
    }
}

#[test]
fn extended_handles_a_rotated_elongated_cluster_at_least_as_well() {
    // Inliers along the diagonal y = x (spread 3 along it, 0.3 across); outliers 1.5 to 3 across
    // the diagonal, well inside both marginal ranges, where axis-parallel cuts see dense data
    // (the "ghost" regions of Hariri et al. 2021, fig. 3).
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let along = |rng: &mut ChaCha8Rng, n: usize, across: &dyn Fn(&mut ChaCha8Rng) -> f64| {
        let mut out = Vec::with_capacity(2 * n);
        for _ in 0..n {
            let t = 3.0 * standard_normal(rng);
            let a = across(rng);
            let h = std::f64::consts::FRAC_1_SQRT_2;
            out.extend([((t + a) * h) as f32, ((t - a) * h) as f32]);
        }
        out
    };
    let noise = |rng: &mut ChaCha8Rng| 0.3 * standard_normal(rng);
    let far = |rng: &mut ChaCha8Rng| {
        let sign = if rng.random::<bool>() { 1.0 } else { -1.0 };
        sign * rng.random_range(1.5..3.0)
    };
    let train = along(&mut rng, 2000, &noise);
    let inliers = along(&mut rng, 500, &noise);
    let outliers = along(&mut rng, 50, &far);
    let area = |variant| {
        let config = IsolationForestConfig {
            variant,
            n_trees: 200,
            ..IsolationForestConfig::default()
        };
        let forest = config.fit(&train, 2).unwrap();
        auc(&scores(&forest, &outliers), &scores(&forest, &inliers))
    };
    let (standard, full) = (area(ForestVariant::Standard), area(extended(1)));
    // Seeded, so the numbers are fixed: standard 0.938, extended 0.974. An extended variant that
    // degenerated into axis cuts scores ~0.94 and fails the second check.
    assert!(
        full >= standard,
        "extended AUC {full} < standard {standard}"
    );
    assert!(full >= 0.95, "extended AUC {full}");
}

#[test]
fn checkpoint_round_trip_gives_identical_scores() {
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let rows = gaussian_rows(&mut rng, 300, 3);
    let probe = [gaussian_rows(&mut rng, 50, 3), shell_rows(&mut rng, 5, 3)].concat();
    for variant in [ForestVariant::Standard, extended(2)] {
        let config = IsolationForestConfig {
            variant,
            n_trees: 20,
            ..IsolationForestConfig::default()
        };
        let forest = config.fit(&rows, 3).unwrap();
        let json = serde_json::to_string(&forest).unwrap();
        let back: IsolationForest = serde_json::from_str(&json).unwrap();
        assert_eq!(back, forest);
        assert_eq!(scores(&back, &probe), scores(&forest, &probe));
    }
}

#[test]
fn damaged_checkpoints_are_rejected() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let rows = gaussian_rows(&mut rng, 64, 2);
    let config = IsolationForestConfig {
        n_trees: 2,
        ..IsolationForestConfig::default()
    };
    let forest = config.fit(&rows, 2).unwrap();
    let good = serde_json::to_value(&forest).unwrap();
    let split = good["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .position(|n| n.get("Split").is_some())
        .unwrap();
    let n_nodes = forest.nodes.len() as u64;
    type Damage = Box<dyn Fn(&mut serde_json::Value)>;
    let damages: [(&str, Damage); 6] = [
        (
            "child past the end",
            Box::new(move |v| v["nodes"][split]["Split"][2] = (n_nodes - 1).into()),
        ),
        (
            "feature past the width",
            Box::new(move |v| v["nodes"][split]["Split"][0] = 2.into()),
        ),
        (
            "root past the end",
            Box::new(move |v| v["trees"][0]["root"] = n_nodes.into()),
        ),
        (
            "depth over the limit",
            Box::new(|v| v["trees"][0]["depth"] = 65.into()),
        ),
        ("no trees", Box::new(|v| v["trees"] = serde_json::json!([]))),
        (
            "terms on a standard forest",
            Box::new(|v| v["terms_per_node"] = 1.into()),
        ),
    ];
    for (what, damage) in damages {
        let mut bad = good.clone();
        damage(&mut bad);
        assert!(
            serde_json::from_value::<IsolationForest>(bad).is_err(),
            "accepted a checkpoint with {what}"
        );
    }
    assert!(serde_json::from_value::<IsolationForest>(good).is_ok());
}

#[test]
fn fit_rejects_bad_input_and_parameters() {
    let ok = IsolationForestConfig::default();
    assert_eq!(
        ok.fit(&[1.0, f32::NAN, 3.0, 4.0], 2),
        Err(ModelError::NonFinite { index: 1 })
    );
    assert_eq!(
        ok.fit(&[1.0, 2.0, f32::INFINITY], 1),
        Err(ModelError::NonFinite { index: 2 })
    );
    assert_eq!(
        ok.fit(&[1.0, 2.0, 3.0], 2),
        Err(ModelError::WidthMismatch {
            expected: 2,
            got: 1
        })
    );
    assert_eq!(
        ok.fit(&[], 2),
        Err(ModelError::NotEnoughData { needed: 1, got: 0 })
    );
    let invalid_name = |r: Result<IsolationForest, ModelError>| match r {
        Err(ModelError::InvalidParameter { name, .. }) => name,
        other => panic!("expected an invalid parameter, got {other:?}"),
    };
    let rows = [1.0, 2.0, 3.0, 4.0];
    assert_eq!(invalid_name(ok.fit(&rows, 0)), "n_features");
    let with = |f: &dyn Fn(&mut IsolationForestConfig)| {
        let mut c = IsolationForestConfig::default();
        f(&mut c);
        invalid_name(c.fit(&rows, 2))
    };
    assert_eq!(with(&|c| c.n_trees = 0), "n_trees");
    assert_eq!(with(&|c| c.sample_size = 0), "sample_size");
    assert_eq!(with(&|c| c.max_depth = Some(0)), "max_depth");
    assert_eq!(
        with(&|c| c.max_depth = Some(MAX_DEPTH_LIMIT + 1)),
        "max_depth"
    );
    assert_eq!(with(&|c| c.variant = extended(2)), "extension_level");
    assert!(IsolationForestConfig::default().validate().is_ok());
}

#[test]
fn sample_size_is_capped_at_the_row_count() {
    let rows: Vec<f32> = (0..50).map(|i| i as f32).collect();
    let forest = IsolationForestConfig {
        sample_size: 1000,
        ..IsolationForestConfig::default()
    }
    .fit(&rows, 1)
    .unwrap();
    assert_eq!(forest.sample_size(), 50);
    // ⌈log2 50⌉ = 6 levels at most.
    assert!(forest.trees.iter().all(|t| t.depth <= 6));
}

#[test]
fn scoring_odd_rows_follows_the_documented_rules() {
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    let rows = gaussian_rows(&mut rng, 400, 3);
    for variant in [ForestVariant::Standard, extended(2)] {
        let forest = IsolationForestConfig {
            variant,
            ..IsolationForestConfig::default()
        }
        .fit(&rows, 3)
        .unwrap();
        let odd = [
            [f32::NAN, 0.0, 0.0],
            [f32::INFINITY, f32::NEG_INFINITY, 0.0],
            [f32::NAN, f32::INFINITY, f32::NAN],
            [f32::MAX, f32::MIN, 0.0],
        ];
        for row in odd {
            let s = forest.score(&row);
            assert!(s > 0.0 && s <= 1.0, "{variant:?} {row:?}: {s}");
        }
        // Short rows are padded with NaN; extra values are ignored.
        assert_eq!(
            forest.score(&[0.5]),
            forest.score(&[0.5, f32::NAN, f32::NAN])
        );
        assert_eq!(
            forest.score(&[0.5, 1.0, 2.0, 9.0]),
            forest.score(&[0.5, 1.0, 2.0])
        );
        assert_eq!(forest.score(&[]), forest.score(&[f32::NAN; 3]));
        // A batch scores each row as `score` does, the trailing partial row included.
        let batch = [&rows[..30], &[0.5]].concat();
        let s = scores(&forest, &batch);
        assert_eq!(s.len(), 11);
        for (row, got) in batch.chunks(3).zip(&s) {
            assert_eq!(forest.score(row), *got);
        }
    }
    // Axis cuts: NaN goes left at every split, as −∞ does.
    let forest = IsolationForestConfig::default().fit(&rows, 3).unwrap();
    for row in [[f32::NAN, 0.3, -0.2], [1.0, f32::NAN, f32::NAN]] {
        let low = row.map(|v| if v.is_nan() { f32::NEG_INFINITY } else { v });
        assert_eq!(forest.score(&row), forest.score(&low));
    }
}

#[test]
fn config_reads_from_json_with_a_tagged_variant() {
    let config: IsolationForestConfig = serde_json::from_str(
        r#"{"n_trees": 50, "variant": {"type": "extended", "extension_level": 1}}"#,
    )
    .unwrap();
    assert_eq!(config.n_trees, 50);
    assert_eq!(config.sample_size, 256);
    assert_eq!(config.variant, extended(1));
    assert!(serde_json::from_str::<IsolationForestConfig>(r#"{"trees": 50}"#).is_err());
}

/// Values that exercise duplicates and constant columns (a few small integers) as well as
/// extreme magnitudes (any finite f32).
fn value() -> impl Strategy<Value = f32> {
    prop_oneof![
        3 => (-2i8..3).prop_map(f32::from),
        1 => any::<f32>().prop_filter("finite", |v| v.is_finite()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn any_finite_matrix_fits_and_scores_in_unit_interval(
        (d, matrix) in (1usize..5).prop_flat_map(|d| (Just(d), prop::collection::vec(value(), d..40 * d))),
        level in 0usize..4,
        sample_size in 1usize..64,
        max_depth in prop::option::of(1usize..12),
        seed in any::<u64>(),
    ) {
        let rows = &matrix[..matrix.len() / d * d];
        let variant = if level == 0 { ForestVariant::Standard } else { extended((level - 1).min(d - 1)) };
        let config = IsolationForestConfig { n_trees: 8, sample_size, max_depth, variant, seed };
        let forest = config.fit(rows, d).unwrap();
        let mut out = Vec::new();
        forest.score_batch(rows, &mut out);
        prop_assert_eq!(out.len(), rows.len() / d);
        for s in out.iter().chain([forest.score(&[f32::NAN]), forest.score(&[f32::INFINITY; 5])].iter()) {
            prop_assert!(*s > 0.0 && *s <= 1.0, "score {}", s);
        }
    }
}
