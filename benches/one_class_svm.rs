//! Throughput of the exact one-class SVM: fitting on 2,000 × 19 rows (the default
//! `max_train_rows`, a feature width typical of per-host metric vectors) and scoring 4,320 rows
//! (three days of one-minute points), counted as rows per second.

mod common;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use operators::models::one_class_svm::OneClassSvmConfig;
use std::hint::black_box;

use common::SplitMix;

const N_FEATURES: usize = 19;
const N_TRAIN: usize = 2_000;
const N_SCORE: usize = 4_320;

/// Rows with per-feature offsets and scales, plus a shared factor so features correlate as
/// metrics of one host do; `spread` widens the scored rows so both signs of f(x) occur.
fn rows(n: usize, spread: f64, seed: u64) -> Vec<f64> {
    let mut rng = SplitMix(seed);
    let mut out = Vec::with_capacity(n * N_FEATURES);
    for _ in 0..n {
        let shared = rng.normal();
        for f in 0..N_FEATURES {
            let scale = 1.0 + f as f64 / 4.0;
            out.push(f as f64 + spread * scale * (0.6 * shared + 0.8 * rng.normal()));
        }
    }
    out
}

fn bench_one_class_svm(c: &mut Criterion) {
    let train = rows(N_TRAIN, 1.0, 42);
    let score = rows(N_SCORE, 1.5, 43);
    let config = OneClassSvmConfig::default();

    let mut group = c.benchmark_group("one_class_svm");
    // A fit takes long enough that criterion's default 100 samples would cost minutes.
    group.sample_size(10);
    group.throughput(Throughput::Elements(N_TRAIN as u64));
    group.bench_function(BenchmarkId::new("fit", "2000x19"), |b| {
        b.iter(|| config.fit(black_box(&train), N_FEATURES))
    });

    let model = match config.fit(&train, N_FEATURES) {
        Ok(model) => model,
        Err(e) => panic!("bench data must fit: {e}"),
    };
    let mut out = Vec::with_capacity(N_SCORE);
    group.throughput(Throughput::Elements(N_SCORE as u64));
    group.bench_function(BenchmarkId::new("decision_batch", "4320x19"), |b| {
        b.iter(|| {
            model.decision_batch(black_box(&score), &mut out);
            black_box(out.len())
        })
    });
    group.finish();
}

criterion_group!(benches, bench_one_class_svm);
criterion_main!(benches);
