//! Unit tests of the one-class SVM: parameter validation, degenerate data, fallbacks, the cache,
//! KKT optimality independent of scikit-learn, determinism, serde, and a no-panic property test.
//! Agreement with scikit-learn itself is `tests/one_class_svm_reference.rs`.

use super::*;
use proptest::prelude::*;
use rand::Rng;

fn blob(n: usize, d: usize, seed: u64) -> Vec<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n * d).map(|_| rng.random_range(-1.0..1.0)).collect()
}

fn fit(config: &OneClassSvmConfig, rows: &[f64], d: usize) -> OneClassSvm {
    match config.fit(rows, d) {
        Ok(model) => model,
        Err(e) => panic!("fit failed: {e}"),
    }
}

#[test]
fn invalid_parameters_are_rejected() {
    let rows = blob(10, 2, 1);
    let bad = [
        (
            "nu",
            OneClassSvmConfig {
                nu: 0.0,
                ..Default::default()
            },
        ),
        (
            "nu",
            OneClassSvmConfig {
                nu: 1.5,
                ..Default::default()
            },
        ),
        (
            "nu",
            OneClassSvmConfig {
                nu: f64::NAN,
                ..Default::default()
            },
        ),
        (
            "gamma",
            OneClassSvmConfig {
                gamma: Gamma::Value(0.0),
                ..Default::default()
            },
        ),
        (
            "gamma",
            OneClassSvmConfig {
                gamma: Gamma::Value(f64::INFINITY),
                ..Default::default()
            },
        ),
        (
            "tol",
            OneClassSvmConfig {
                tol: 0.0,
                ..Default::default()
            },
        ),
        (
            "tol",
            OneClassSvmConfig {
                tol: f64::NAN,
                ..Default::default()
            },
        ),
        (
            "max_iter",
            OneClassSvmConfig {
                max_iter: 0,
                ..Default::default()
            },
        ),
        (
            "max_train_rows",
            OneClassSvmConfig {
                max_train_rows: 0,
                ..Default::default()
            },
        ),
    ];
    for (name, config) in bad {
        match config.fit(&rows, 2) {
            Err(ModelError::InvalidParameter { name: got, .. }) => assert_eq!(got, name),
            other => panic!("{name}: expected InvalidParameter, got {other:?}"),
        }
    }
    let config = OneClassSvmConfig::default();
    assert!(matches!(
        config.fit(&rows, 0),
        Err(ModelError::InvalidParameter {
            name: "n_features",
            ..
        })
    ));
    assert_eq!(
        config.fit(&rows[..5], 2),
        Err(ModelError::WidthMismatch {
            expected: 2,
            got: 1
        })
    );
    assert_eq!(
        config.fit(&[], 2),
        Err(ModelError::NotEnoughData { needed: 1, got: 0 })
    );
}

#[test]
fn non_finite_input_is_reported_with_its_index() {
    let mut rows = blob(10, 3, 2);
    rows[7] = f64::NAN;
    assert_eq!(
        OneClassSvmConfig::default().fit(&rows, 3),
        Err(ModelError::NonFinite { index: 7 })
    );
    rows[7] = 0.0;
    rows[4] = f64::NEG_INFINITY;
    assert_eq!(
        OneClassSvmConfig::default().fit(&rows, 3),
        Err(ModelError::NonFinite { index: 4 })
    );
}

#[test]
fn constant_data_and_a_single_row_fit() {
    // scikit-learn gives γ = 1, ρ = νl and f ≡ 0 on the training point for both.
    let config = OneClassSvmConfig::default();
    let model = fit(&config, &[3.0; 10], 2);
    assert_eq!(model.gamma(), 1.0);
    assert!((model.rho() - 2.5).abs() < 1e-12);
    assert!(model.decision_function(&[3.0, 3.0]).abs() < 1e-12);
    let single = fit(&config, &[1.0, -2.0], 2);
    assert_eq!(single.n_support(), 1);
    assert!(single.decision_function(&[1.0, -2.0]).abs() < 1e-12);
    assert!(single.decision_function(&[5.0, 5.0]) < 0.0);
}

#[test]
fn nu_one_gives_a_finite_offset() {
    // All coefficients sit at 1; the offset is the largest gradient, so no training row is
    // scored inside the region.
    let rows = blob(40, 2, 3);
    let model = fit(
        &OneClassSvmConfig {
            nu: 1.0,
            ..Default::default()
        },
        &rows,
        2,
    );
    assert_eq!(model.n_support(), 40);
    assert!(model.rho().is_finite());
    let mut out = Vec::new();
    model.decision_batch(&rows, &mut out);
    let top = out.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    assert!(top.abs() < 1e-9, "max training decision {top}");
}

#[test]
fn unscorable_rows_get_the_documented_fallback() {
    let model = fit(&OneClassSvmConfig::default(), &blob(30, 2, 4), 2);
    let floor = -model.rho();
    assert_eq!(model.decision_function(&[0.0]), floor);
    assert_eq!(model.decision_function(&[0.0, f64::NAN]), floor);
    assert_eq!(model.decision_function(&[1e300, -1e300]), floor);
    let mut out = Vec::new();
    model.decision_batch(&[0.0, 0.0, 1.0], &mut out);
    assert_eq!(out.len(), 2);
    assert_eq!(out[0], model.decision_function(&[0.0, 0.0]));
    assert_eq!(out[1], floor);
}

#[test]
fn a_two_row_cache_gives_the_same_model_as_the_full_matrix() {
    // The cache path that evicts rows must not change a single value.
    let rows = blob(300, 3, 5);
    let full = fit(
        &OneClassSvmConfig {
            tol: 1e-6,
            ..Default::default()
        },
        &rows,
        3,
    );
    let tiny = OneClassSvmConfig {
        tol: 1e-6,
        kernel_cache_mb: 0,
        ..Default::default()
    };
    assert_eq!(fit(&tiny, &rows, 3), full);
}

#[test]
fn subsampling_is_seeded_and_bounded() {
    let rows = blob(500, 2, 6);
    let config = OneClassSvmConfig {
        max_train_rows: 100,
        seed: 9,
        ..Default::default()
    };
    let a = fit(&config, &rows, 2);
    assert_eq!(a.n_train(), 100);
    assert_eq!(fit(&config, &rows, 2), a);
    let other = fit(&OneClassSvmConfig { seed: 10, ..config }, &rows, 2);
    assert_ne!(other, a);
}

#[test]
fn the_solution_is_feasible_and_meets_kkt() {
    // Independent of scikit-learn: Σα = νl, and every training row's decision value has the
    // sign its coefficient demands (α = 0 ⇒ f ≥ 0, α = 1 ⇒ f ≤ 0, free ⇒ f = 0) within tol.
    let rows = blob(200, 4, 7);
    let config = OneClassSvmConfig {
        nu: 0.3,
        tol: 1e-8,
        ..Default::default()
    };
    let model = fit(&config, &rows, 4);
    assert!(model.converged());
    let total: f64 = model.coef.iter().sum();
    assert!((total - 0.3 * 200.0).abs() < 1e-9, "sum of alpha {total}");
    for row in rows.chunks_exact(4) {
        let f = model.decision_function(row);
        let alpha = model
            .support_vectors
            .chunks_exact(4)
            .zip(&model.coef)
            .find(|(sv, _)| *sv == row)
            .map_or(0.0, |(_, &a)| a);
        if alpha == 0.0 {
            assert!(f >= -1e-7, "α = 0 but f = {f}");
        } else if alpha == 1.0 {
            assert!(f <= 1e-7, "α = 1 but f = {f}");
        } else {
            assert!(f.abs() <= 1e-7, "free α = {alpha} but f = {f}");
        }
    }
}

#[test]
fn serde_round_trip_keeps_every_decision() {
    let rows = blob(120, 3, 8);
    let model = fit(&OneClassSvmConfig::default(), &rows, 3);
    let json = match serde_json::to_string(&model) {
        Ok(json) => json,
        Err(e) => panic!("serialize: {e}"),
    };
    let back: OneClassSvm = match serde_json::from_str(&json) {
        Ok(back) => back,
        Err(e) => panic!("deserialize: {e}"),
    };
    let probe = blob(50, 3, 9);
    let (mut a, mut b) = (Vec::new(), Vec::new());
    model.decision_batch(&probe, &mut a);
    back.decision_batch(&probe, &mut b);
    assert_eq!(a, b);
    assert_eq!(back, model);
}

#[test]
fn config_reads_from_json_with_defaults() {
    let config: OneClassSvmConfig =
        match serde_json::from_str(r#"{"nu":0.1,"gamma":{"value":0.5}}"#) {
            Ok(c) => c,
            Err(e) => panic!("parse: {e}"),
        };
    assert_eq!(config.nu, 0.1);
    assert_eq!(config.gamma, Gamma::Value(0.5));
    assert_eq!(config.max_train_rows, 2_000);
    assert!(serde_json::from_str::<OneClassSvmConfig>(r#"{"nus":0.1}"#).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn arbitrary_finite_matrices_never_panic(
        d in 1usize..4,
        cells in prop::collection::vec(
            prop_oneof![-1e3..1e3f64, Just(0.0), Just(1e300), Just(-1e300), Just(f64::MIN_POSITIVE)],
            0..40,
        ),
        nu in 0.01..=1.0f64,
        gamma in prop_oneof![Just(Gamma::Scale), Just(Gamma::Auto), (1e-6..1e3f64).prop_map(Gamma::Value)],
    ) {
        let rows = &cells[..cells.len() - cells.len() % d];
        let config = OneClassSvmConfig { nu, gamma, max_iter: 10_000, ..Default::default() };
        if let Ok(model) = config.fit(rows, d) {
            let mut out = Vec::new();
            model.decision_batch(rows, &mut out);
            prop_assert!(out.iter().all(|v| v.is_finite()));
            prop_assert!(model.n_support() >= 1);
        }
    }
}
