//! Isolation forest throughput: scoring rows per second and fit time, at the shape the detectors
//! use (8,640 training rows, one month of 5-minute points, × 19 features; 4,320 rows scored per
//! iteration) and scikit-learn's defaults (100 trees, 256 rows per tree); and one row at a time
//! over many forests, as the streaming detectors score.

mod common;

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use operators::models::isolation_forest::{ForestVariant, IsolationForestConfig};

use common::SplitMix;

const N_FEATURES: usize = 19;
const FIT_ROWS: usize = 8_640;
const SCORE_ROWS: usize = 4_320;
/// Forests of the one-row-per-forest group.
const STREAM_FORESTS: usize = 256;

/// Seeded rows: uniform draws mapped to per-feature bell-shaped values (sum of three uniforms)
/// with their own centre and spread, plus a 1% sprinkle of far values so that trees see
/// outliers as they would in production.
fn rows(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = SplitMix(seed);
    let mut out = Vec::with_capacity(n * N_FEATURES);
    for _ in 0..n {
        let far = rng.unit_f32() < 0.01;
        for j in 0..N_FEATURES {
            let bell = rng.unit_f32() + rng.unit_f32() + rng.unit_f32() - 1.5;
            let spread = 1.0 + j as f32;
            let value = 10.0 * j as f32 + spread * bell;
            out.push(if far { value + 8.0 * spread } else { value });
        }
    }
    out
}

fn bench_isolation_forest(c: &mut Criterion) {
    let train = rows(FIT_ROWS, 1);
    let test = rows(SCORE_ROWS, 2);
    let variants = [
        ("standard", ForestVariant::Standard),
        (
            "extended_full",
            ForestVariant::Extended {
                extension_level: N_FEATURES - 1,
            },
        ),
    ];

    let mut score = c.benchmark_group("isolation_forest/score");
    score.throughput(Throughput::Elements(SCORE_ROWS as u64));
    for (name, variant) in variants {
        let config = IsolationForestConfig {
            variant,
            ..IsolationForestConfig::default()
        };
        let forest = config.fit(&train, N_FEATURES).expect("bench data is valid");
        let mut out = Vec::with_capacity(SCORE_ROWS);
        score.bench_function(name, |b| {
            b.iter(|| {
                forest.score_batch(black_box(&test), &mut out);
                black_box(out.last().copied())
            })
        });
    }
    score.finish();

    // Streaming: each series has its own forest and scores one row per window, so a row's walk
    // meets a forest that is cold in cache. 256 forests of the streaming detector's shape (50
    // trees of ψ = 128, 52 MB in all), one row each per iteration, in turn.
    let mut stream = c.benchmark_group("isolation_forest/one_row_per_forest");
    stream.throughput(Throughput::Elements(STREAM_FORESTS as u64));
    let streaming = IsolationForestConfig {
        n_trees: 50,
        sample_size: 128,
        ..IsolationForestConfig::default()
    };
    let forests: Vec<_> = (0..STREAM_FORESTS as u64)
        .map(|seed| {
            let config = IsolationForestConfig {
                seed,
                ..streaming.clone()
            };
            config
                .fit(&rows(512, 100 + seed), N_FEATURES)
                .expect("bench data is valid")
        })
        .collect();
    stream.bench_function("standard", |b| {
        b.iter(|| {
            forests
                .iter()
                .zip(test.chunks_exact(N_FEATURES))
                .map(|(f, row)| f.score(black_box(row)))
                .sum::<f64>()
        })
    });
    stream.finish();

    let mut fit = c.benchmark_group("isolation_forest/fit");
    fit.throughput(Throughput::Elements(FIT_ROWS as u64));
    for (name, variant) in variants {
        let config = IsolationForestConfig {
            variant,
            ..IsolationForestConfig::default()
        };
        fit.bench_function(name, |b| {
            b.iter(|| {
                config
                    .fit(black_box(&train), N_FEATURES)
                    .map(|f| f.n_trees())
            })
        });
    }
    fit.finish();
}

criterion_group!(benches, bench_isolation_forest);
criterion_main!(benches);
