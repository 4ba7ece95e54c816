//! Throughput of the engine's foundation stages, in points per second:
//! * `parse/json` — decoding contract JSON lines into points (interning, limits, lateness);
//! * `detect/robust_z`, `detect/all` — one series' detector set on closed windows (windows per
//!   second), with the robust detector alone and with every detector kind;
//! * `detect/peers` — peer comparison of a 20-host group (member windows per second);
//! * `pipeline/replay` — the whole engine on one worker over a simulator file: read, parse,
//!   exchange, windows, the default detectors, alerts, sinks; `pipeline/replay_all_detectors`
//!   the same with every detector kind and the entity detectors on.
//!
//! Run: `cargo bench --bench pipeline`. The data is the built-in simulator's (seeded), written to
//! a temporary directory once.

use std::path::PathBuf;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use harbinger::cli::ClusterArgs;
use harbinger::config::{self, SinkPlan, SourcePlan};
use harbinger::engine::{self, RunOptions};
use harbinger::ingest::{
    Batch, Interner, LabelLimits, PartitionClock, PartitionIngest, PositionKind,
};
use harbinger::parse::json::JsonDecoder;
use harbinger::parse::{DecodeCtx, Decoder, Format, Precision};
use harbinger::sinks::Outputs;
use harbinger::sources::simulator::SimulatorConfig;
use operators::models::detector_set::{
    DetectorKind, DetectorPlan, DetectorSet, Ensemble, FeatureChoice, FusionPolicy,
};
use operators::models::peers::{PeerConfig, PeerGroup};
use operators::models::robust_z::RobustZConfig;
use operators::models::window_stats::FeatureValues;

/// Every detector kind on the 1-minute window, plus the entity detectors: the "every detector
/// on" configuration the throughput target is measured with (`examples/all-detectors.toml`).
const ALL_DETECTORS: &str = include_str!("../examples/all-detectors.toml");

/// A simulator file of `hours` hours of the default fleet (12 services, 96 series: 34,560 points
/// per simulated hour).
fn simulator_file(hours: u64) -> (tempfile::TempDir, PathBuf, u64) {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = SimulatorConfig {
        duration_ms: hours * 3_600_000,
        ..SimulatorConfig::default()
    };
    harbinger::commands::simulate::simulate(config, dir.path()).expect("simulate");
    let path = dir.path().join("metrics.jsonl");
    let lines = std::fs::read_to_string(&path)
        .expect("read")
        .lines()
        .count() as u64;
    (dir, path, lines)
}

fn parse_json(c: &mut Criterion) {
    let (_dir, path, lines) = simulator_file(2);
    let text = std::fs::read(&path).expect("read");
    let payloads: Vec<&[u8]> = text
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    let mut group = c.benchmark_group("parse");
    group.throughput(Throughput::Elements(lines));
    group.bench_function("json", |b| {
        b.iter_batched(
            || {
                (
                    PartitionIngest {
                        source: Arc::from("bench"),
                        position: PositionKind::File(Arc::from("bench")),
                        clock: PartitionClock::default(),
                        lateness_ms: 30_000,
                        limits: LabelLimits::default(),
                        floor: 0,
                    },
                    Interner::default(),
                    Batch::default(),
                )
            },
            |(mut ingest, mut interner, mut batch)| {
                let mut decoder = JsonDecoder;
                for (i, p) in payloads.iter().enumerate() {
                    let mut ctx = DecodeCtx {
                        ingest: &mut ingest,
                        interner: &mut interner,
                        batch: &mut batch,
                    };
                    decoder.decode(p, (i as u64, 0), &mut ctx);
                    if batch.points.len() >= 4096 {
                        batch.clear();
                    }
                }
                batch
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

/// Synthetic closed windows: a slow wave with noise.
fn bench_windows() -> Vec<FeatureValues> {
    (0..10_000)
        .map(|i| {
            let v = 100.0 + (i as f64 * 0.1).sin() * 5.0 + ((i * 7919) % 13) as f64 * 0.1;
            FeatureValues {
                count: 6,
                mean: v,
                min: v - 1.0,
                max: v + 1.0,
                std: 0.5,
                last: v,
                p50: v,
                p95: v + 1.0,
                p99: v + 1.2,
                rate_of_change: Some(0.0),
                counter_rate: 0.0,
            }
        })
        .collect()
}

/// One detector set over the windows: `detect/<name>` in windows per second.
fn detect(c: &mut Criterion) {
    let windows = bench_windows();
    let robust = Ensemble {
        detectors: vec![DetectorPlan {
            name: "robust_z".into(),
            window: "1m".into(),
            feature: FeatureChoice::Auto,
            weight: 1.0,
            kind: DetectorKind::RobustZ(RobustZConfig::default()),
            metrics: None,
        }],
        fusion: FusionPolicy::default(),
    };
    let all = config::compile_text(std::path::Path::new("all.toml"), ALL_DETECTORS, None, None)
        .expect("all-detectors config")
        .ensemble;
    let mut group = c.benchmark_group("detect");
    group.throughput(Throughput::Elements(windows.len() as u64));
    for (name, ensemble) in [("robust_z", &robust), ("all", &*all)] {
        group.bench_function(name, |b| {
            b.iter_batched(
                || DetectorSet::new(ensemble, "latency_ms"),
                |mut set| {
                    let mut alerts = 0;
                    for (i, w) in windows.iter().enumerate() {
                        if set
                            .observe(ensemble, "1m", w, i as u64 * 60_000, true)
                            .is_some_and(|v| v.score >= 0.5)
                        {
                            alerts += 1;
                        }
                    }
                    alerts
                },
                BatchSize::SmallInput,
            )
        });
    }
    let hosts: Vec<String> = (0..20).map(|h| format!("host-{h}")).collect();
    let peers = PeerConfig::default();
    group.throughput(Throughput::Elements((windows.len() * hosts.len()) as u64));
    group.bench_function("peers", |b| {
        b.iter_batched(
            PeerGroup::default,
            |mut g| {
                let mut apart = 0;
                for (i, w) in windows.iter().enumerate() {
                    // Each host its own offset; host 3 drifts away in the second half.
                    let values: Vec<(&str, f64)> = hosts
                        .iter()
                        .enumerate()
                        .map(|(h, name)| {
                            let drift = if h == 3 && i > windows.len() / 2 {
                                40.0
                            } else {
                                0.0
                            };
                            (name.as_str(), w.mean + h as f64 * 0.3 + drift)
                        })
                        .collect();
                    apart += g.observe(&peers, i as u64 * 60_000, &values).len();
                }
                apart
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

fn pipeline_replay(c: &mut Criterion) {
    let (_dir, path, lines) = simulator_file(12);
    let plan_for = |text: Option<&str>| {
        let mut plan = match text {
            None => config::load(None, None).expect("default config"),
            Some(t) => config::compile_text(std::path::Path::new("all.toml"), t, None, None)
                .expect("all-detectors config"),
        };
        plan.sources = vec![SourcePlan::File {
            name: "bench".into(),
            path: path.clone(),
            format: Format::Json,
            precision: Precision::Ns,
            speed: 0.0,
        }];
        plan.sinks = SinkPlan::default();
        Arc::new(plan)
    };
    let cluster = ClusterArgs {
        workers: Some(1),
        processes: 1,
        process: 0,
        hostfile: None,
    };
    let mut group = c.benchmark_group("pipeline");
    group.sample_size(10);
    group.throughput(Throughput::Elements(lines));
    for (name, plan) in [
        ("replay", plan_for(None)),
        ("replay_all_detectors", plan_for(Some(ALL_DETECTORS))),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| {
                let opts = RunOptions {
                    timely: cluster.timely_config(1).expect("config"),
                    progress_bar: false,
                    stop: Default::default(),
                };
                engine::run(plan.clone(), Outputs::default(), opts).expect("run")
            })
        });
    }
    group.finish();
}

criterion_group!(benches, parse_json, detect, pipeline_replay);
criterion_main!(benches);
