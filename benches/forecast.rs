//! Forecasting cost: fitting by series length (100, 1,000 and 10,000 points of a seeded synthetic
//! hourly-like series with a daily cycle), and forecasting / updating from a fitted state.
//!
//! The streaming operator's per-series state (`operators::forecast::SeriesForecast`): the cost
//! of a window (amortised over a refit interval, one refit included) and its memory, printed
//! before the timings (model state beyond the history buffer, the history buffer, and the
//! serialised checkpoint size).
//!
//! Run: `cargo bench --bench forecast`. Throughput is in points of input per second for fits and
//! in forecast steps (or updates) per second for the state operations.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use operators::forecast::{ForecastSpec, SeriesForecast};
use operators::models::forecast::{
    fit_state, Arima, ArimaOrder, AutoArima, ForecastConfig, ModelChoice, ModelState, MstlEts,
};
use operators::models::window_stats::Feature;
use operators::rules::MetricPattern;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::hint::black_box;

/// A daily cycle (period 24) whose shape drifts slowly, a slow trend and AR(1) noise; the seed
/// fixes the series. A drifting (stochastic) seasonal pattern is what seasonal ARIMA models; a
/// fixed sine is deterministic seasonality that drives a seasonal MA to the unit circle. (The
/// automatic search still meets such fits among its seasonal-MA candidates and rejects them
/// after exact refits, which is most of its time on this series.)
fn synthetic(n: usize, seed: u64) -> Vec<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    // Sum of uniforms: roughly normal noise without another dependency.
    let mut normal = move || (0..4).map(|_| rng.random::<f64>() - 0.5).sum::<f64>();
    let mut profile: Vec<f64> = (0..24)
        .map(|h| 10.0 * (2.0 * std::f64::consts::PI * h as f64 / 24.0).sin())
        .collect();
    let mut noise = 0.0;
    (0..n)
        .map(|t| {
            profile[t % 24] += 0.3 * normal();
            noise = 0.6 * noise + normal();
            100.0 + 0.01 * t as f64 + profile[t % 24] + noise
        })
        .collect()
}

const LENGTHS: [usize; 3] = [100, 1_000, 10_000];

fn fit_benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("forecast_fit");
    g.sample_size(10);
    for &n in &LENGTHS {
        let y = synthetic(n, 42);
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::new("auto_arima_m24", n), &y, |b, y| {
            let auto = AutoArima {
                standard_errors: false,
                ..AutoArima::new(24)
            };
            b.iter(|| black_box(auto.fit(y).ok()))
        });
        g.bench_with_input(BenchmarkId::new("arima_211_011_24", n), &y, |b, y| {
            let m = Arima::new(ArimaOrder::new(2, 0, 1).seasonal(0, 1, 1, 24))
                .with_standard_errors(false);
            b.iter(|| black_box(m.fit(y).ok()))
        });
        g.bench_with_input(BenchmarkId::new("mstl_ets_24", n), &y, |b, y| {
            let m = MstlEts {
                max_horizon: 48,
                ..MstlEts::new(vec![24])
            };
            b.iter(|| black_box(m.fit(y).ok()))
        });
        g.bench_with_input(BenchmarkId::new("forecast_auto_choice", n), &y, |b, y| {
            let cfg = ForecastConfig {
                model: ModelChoice::Auto,
                ..ForecastConfig::new(48, Some(24))
            };
            b.iter(|| black_box(fit_state(y, &cfg).ok()))
        });
    }
    g.finish();
}

fn state_benches(c: &mut Criterion) {
    let y = synthetic(1_000, 7);
    let fit = Arima::new(ArimaOrder::new(2, 0, 1).seasonal(0, 1, 1, 24))
        .with_standard_errors(false)
        .fit(&y)
        .expect("synthetic series fits");
    let state = ModelState::from_arima(&fit).expect("fit has a forecast state");
    let mut g = c.benchmark_group("forecast_state");
    g.throughput(Throughput::Elements(48));
    g.bench_function("arima_predict_48", |b| {
        b.iter(|| black_box(state.predict(48).ok()))
    });
    let more = synthetic(1_048, 7);
    g.bench_function("arima_update_48", |b| {
        b.iter(|| {
            let mut s = state.clone();
            for v in &more[1_000..] {
                let _ = s.update(*v);
            }
            black_box(s)
        })
    });
    g.finish();
}

/// Streaming specs: a 1-minute disk-like series (ARIMA, no season) and an hourly-like one with a
/// daily cycle (automatic family choice, season 24), both with 240 windows of history.
fn streaming_specs() -> Vec<(&'static str, ForecastSpec)> {
    let base = ForecastSpec {
        name: "bench".into(),
        window: "1m".into(),
        step_ms: 60_000,
        feature: Feature::Mean,
        metric: MetricPattern::new(".*").expect("pattern"),
        horizon: 30,
        history: 240,
        min_history: 30,
        refit_every: 30,
        season: Some(1),
        model: ModelChoice::Arima,
    };
    vec![
        ("arima_h30", base.clone()),
        (
            "auto_m24_h48",
            ForecastSpec {
                horizon: 48,
                season: Some(24),
                model: ModelChoice::Auto,
                ..base
            },
        ),
    ]
}

fn warmed(spec: &ForecastSpec, y: &[f64]) -> SeriesForecast {
    let mut s = SeriesForecast::new(0, None);
    for (i, v) in y.iter().enumerate() {
        let _ = s.observe(spec, (i as u64 + 1) * 60_000, *v);
    }
    s
}

fn streaming_benches(c: &mut Criterion) {
    let y = synthetic(600, 11);
    let mut g = c.benchmark_group("forecast_streaming");
    g.sample_size(10);
    for (label, spec) in streaming_specs() {
        let state = warmed(&spec, &y[..300]);
        let json = serde_json::to_vec(&state).map_or(0, |v| v.len());
        println!(
            "streaming state {label}: model {} B beyond the history buffer ({} B of history), \
             {json} B serialised with the history; model {}",
            state.model_bytes(),
            state.history_bytes(),
            state.model().map_or("none".into(), |m| m.name()),
        );
        let window = spec.refit_every as u64;
        g.throughput(Throughput::Elements(window));
        g.bench_function(BenchmarkId::new("observe_refit_interval", label), |b| {
            b.iter(|| {
                let mut s = state.clone();
                for (i, v) in y[300..300 + window as usize].iter().enumerate() {
                    black_box(s.observe(&spec, (301 + i as u64) * 60_000, *v));
                }
                black_box(s)
            })
        });
    }
    g.finish();
}

criterion_group!(benches, fit_benches, state_benches, streaming_benches);
criterion_main!(benches);
