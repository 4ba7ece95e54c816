//! Nearest-neighbour scoring as the streaming detectors do it: one row per window against each
//! series' own reference set (512 standardised rows), so every score meets a set that is cold in
//! cache. 256 detectors of 10 features, one row each per iteration.

mod common;

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use operators::models::knn_detector::{KnnDetectorConfig, StreamingKnn};

use common::SplitMix;

const WIDTH: usize = 10;
const DETECTORS: usize = 256;

/// A seeded row: per-feature centres and spreads, bell-shaped noise.
fn row(rng: &mut SplitMix) -> [f32; WIDTH] {
    std::array::from_fn(|j| {
        let bell = rng.unit_f32() + rng.unit_f32() + rng.unit_f32() - 1.5;
        10.0 * j as f32 + (1.0 + j as f32) * bell
    })
}

fn bench_knn(c: &mut Criterion) {
    let cfg = KnnDetectorConfig::default();
    let mut rng = SplitMix(7);
    let detectors: Vec<StreamingKnn> = (0..DETECTORS)
        .map(|_| {
            let mut d = StreamingKnn::default();
            // Enough normal rows to fill the 512-row reference and refresh it once.
            for _ in 0..cfg.refit.capacity + cfg.refit.refit_every {
                d.learn(&cfg, &row(&mut rng), true, None);
            }
            d
        })
        .collect();
    let rows: Vec<_> = (0..DETECTORS).map(|_| row(&mut rng)).collect();
    let mut group = c.benchmark_group("knn/one_row_per_detector");
    group.throughput(Throughput::Elements(DETECTORS as u64));
    group.bench_function("k1_width10", |b| {
        let mut detectors = detectors.clone();
        b.iter(|| {
            detectors
                .iter_mut()
                .zip(&rows)
                .filter_map(|(d, r)| d.score(&cfg, black_box(r)))
                .sum::<f64>()
        })
    });
    group.finish();
}

criterion_group!(benches, bench_knn);
criterion_main!(benches);
