//! Contextual novelty detector throughput: values scored (and learned) per second on one series
//! after its warm-up, at the defaults (5 levels, 5 lags: six fact look-ups per value), on a noisy
//! daily cycle of 5-minute points like NAB's. Compare with the robust detector's share of the
//! engine's 1 M points/s budget before putting it in the shipped detector set.

mod common;

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use operators::models::contextual::{Contextual, ContextualConfig};

use common::SplitMix;

const N: usize = 10_000;

/// A daily cycle (288 five-minute points) with seeded noise and a 1% sprinkle of spikes, so the
/// fact table keeps meeting new facts.
fn series(n: usize, seed: u64) -> Vec<f64> {
    let mut rng = SplitMix(seed);
    (0..n)
        .map(|i| {
            let day = (i as f64 / 288.0 * std::f64::consts::TAU).sin();
            let spike = if rng.unit() < 0.01 { 5.0 } else { 0.0 };
            10.0 + 3.0 * day + rng.unit() + spike
        })
        .collect()
}

fn bench_contextual(c: &mut Criterion) {
    let cfg = ContextualConfig::default();
    let warm = series(cfg.warmup_len + 2_000, 1);
    let mut warmed = Contextual::default();
    for &v in &warm {
        warmed.observe(&cfg, v);
    }
    let values = series(N, 2);
    let mut g = c.benchmark_group("contextual");
    g.throughput(Throughput::Elements(N as u64));
    g.bench_function("observe_10k", |b| {
        b.iter_batched(
            || warmed.clone(),
            |mut d| {
                for &v in &values {
                    black_box(d.observe(&cfg, v));
                }
                d
            },
            criterion::BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(benches, bench_contextual);
criterion_main!(benches);
