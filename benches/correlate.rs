//! Latency and memory of the correlation stage under an alert storm of 1,000 alert events per
//! second (event time), over a 200-service topology.
//!
//! The stream: every second, `OPENS_PER_S` new alerts open (count 1), the previous second's are
//! confirmed (count 2), those opened `LIFETIME_S` seconds ago resolve, and open alerts fill the
//! rest of the second's 1,000 events with updates (as the alert stage sends on severity
//! changes). About 2,000 alerts are open at once, spread over the services, all rising, with
//! onsets seconds apart: every one is related to its neighbours', so incidents are large and
//! merge and split every second, the expensive case for the grouping.
//!
//! Latency of an alert = wall time from sending its second into the dataflow until every output
//! of that second (alert and incident events) has come out: the stage runs time by time, so
//! this is when its incident event is out. Before criterion runs, a harness streams
//! `REPORT_SECONDS` seconds and prints p50/p99/max of that latency and the stage's state size
//! after 60 s and after the whole stream (bounded: it follows the open alerts, not the time).
//! Criterion then measures the mean time per second of stream.
//!
//! Run: `cargo bench --bench correlate`. With `HARBINGER_BENCH_OPERATORS=1` the report also
//! lists the operators that were scheduled longest (timely's own log: id, scope address, name,
//! total time), to tell which of the stage's differential operators the time goes to.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, Criterion};
use operators::correlate::{CorrelateExt, CorrelatePlan, CorrelateState};
use operators::models::topology::{ServiceSpec, Topology, TopologyEdge};
use operators::records::{AlertEvent, AlertRecord, AnomalyType};
use operators::series::EventTime;
use timely::dataflow::operators::core::Input as _;
use timely::dataflow::operators::probe::Handle as ProbeHandle;
use timely::dataflow::operators::{Inspect, Probe};

/// Alert events per second of event time: the target rate.
const RATE: usize = 1_000;
/// New alerts per second: a storm (a whole fleet failing opens a few hundred alerts in total).
const OPENS_PER_S: u64 = 100;
/// Seconds an alert stays open: with `OPENS_PER_S`, 2,000 alerts are open at once.
const LIFETIME_S: u64 = 20;
/// Services in the topology (a binary call tree, ten services per host), unless
/// `HARBINGER_BENCH_SERVICES` says otherwise.
const SERVICES: usize = 200;

fn services() -> usize {
    std::env::var("HARBINGER_BENCH_SERVICES")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n >= 10)
        .unwrap_or(SERVICES)
}
/// Seconds streamed for the latency report (`HARBINGER_BENCH_SECONDS` overrides).
const REPORT_SECONDS: u64 = 60;
/// Start of the stream (2024-01-01T00:00:00Z), ms.
const BASE_MS: u64 = 1_704_067_200_000;

fn topology() -> Vec<ServiceSpec> {
    let n = services();
    (0..n)
        .map(|i| ServiceSpec {
            name: format!("svc{i}"),
            calls: [2 * i + 1, 2 * i + 2]
                .into_iter()
                .filter(|c| *c < n)
                .map(|c| format!("svc{c}"))
                .collect(),
            runs_on: Some(format!("host{}", i % (n / 10))),
            user_facing: None,
        })
        .collect()
}

fn raw(n: u64, second: u64, event: AlertEvent, count: u64) -> AlertRecord {
    // Spread over the fleet: consecutive alerts land 37 services apart (coprime with 200).
    let service = ((n * 37) as usize) % services();
    let fp = format!("a{n}");
    let at = BASE_MS + second * 1000;
    let labels = [
        ("alertname".to_string(), "HarbingerAnomaly".to_string()),
        ("service".to_string(), format!("svc{service}")),
        ("metric".to_string(), format!("m{}", n % 7)),
        ("alert".to_string(), fp.clone()),
        ("severity".to_string(), "high".to_string()),
    ]
    .into();
    AlertRecord {
        id: format!("{fp}|{second}|{event:?}"),
        anomaly_type: if n.is_multiple_of(3) {
            AnomalyType::ResourceSpike
        } else {
            AnomalyType::LatencySpike
        },
        score: 0.5 + (n % 50) as f64 / 100.0,
        count,
        ..AlertRecord::sample(labels, fp, event, format!("svc{service}"), at)
    }
}

/// The raw alert events of `second`: exactly [`RATE`] of them.
fn second_of_events(second: u64) -> Vec<AlertRecord> {
    let per = OPENS_PER_S;
    let mut out = Vec::with_capacity(RATE);
    for k in 0..per {
        out.push(raw(second * per + k, second, AlertEvent::Opened, 1));
    }
    if second >= 1 {
        for k in 0..per {
            out.push(raw((second - 1) * per + k, second, AlertEvent::Updated, 2));
        }
    }
    if second >= LIFETIME_S {
        for k in 0..per {
            let s = second - LIFETIME_S;
            out.push(raw(s * per + k, second, AlertEvent::Resolved, 6));
        }
    }
    // Updates of the other open alerts (opened in [lo, hi)) bring every second to RATE events.
    let lo = (second + 1).saturating_sub(LIFETIME_S);
    let hi = second.saturating_sub(1);
    let pool = hi.saturating_sub(lo) * per;
    let mut k = 0;
    while out.len() < RATE && pool > 0 {
        out.push(raw(
            lo * per + k % pool,
            second,
            AlertEvent::Updated,
            3 + k / pool,
        ));
        k += 1;
    }
    out
}

/// What one streamed run measured.
struct Run {
    /// Wall time per second of stream.
    latencies: Vec<Duration>,
    /// State entries after 60 s and at the end.
    state_at_60: usize,
    state_at_end: usize,
    /// Outputs (alert and incident events) produced.
    outputs: usize,
}

/// Streams `seconds` seconds of alerts through the stage, one timely time per second.
fn stream(seconds: u64) -> Run {
    let plan = Arc::new(CorrelatePlan::default());
    let edges = Topology::from_services(&topology()).edges();
    let events: Vec<Vec<AlertRecord>> = (0..seconds).map(second_of_events).collect();
    timely::execute_directly(move |worker| {
        let operator_times = std::env::var_os("HARBINGER_BENCH_OPERATORS")
            .is_some()
            .then(|| log_operator_times(worker));
        let probe = ProbeHandle::new();
        let state = Rc::new(RefCell::new(CorrelateState::default()));
        let outputs = Rc::new(RefCell::new(0usize));
        let (mut alert_in, mut edge_in) = worker.dataflow::<EventTime, _, _>(|scope| {
            let (ai, alerts) = scope.new_input::<Vec<AlertRecord>>();
            let (ei, edges) = scope.new_input::<Vec<(TopologyEdge, EventTime, isize)>>();
            let count = outputs.clone();
            alerts
                .correlate(edges, plan.clone(), state.clone())
                .probe_with(&probe)
                .inspect(move |_| *count.borrow_mut() += 1);
            (ai, ei)
        });
        for e in &edges {
            edge_in.send((e.clone(), BASE_MS, 1));
        }
        let mut latencies = Vec::with_capacity(events.len());
        let mut state_at_60 = 0;
        for (s, batch) in events.iter().enumerate() {
            let t = BASE_MS + s as u64 * 1000;
            let start = Instant::now();
            alert_in.advance_to(t);
            edge_in.advance_to(t);
            for a in batch {
                alert_in.send(a.clone());
            }
            alert_in.advance_to(t + 1);
            edge_in.advance_to(t + 1);
            worker.step_while(|| probe.less_than(&(t + 1)));
            latencies.push(start.elapsed());
            if s == 59 {
                state_at_60 = state.borrow().state_len();
            }
            if std::env::var_os("HARBINGER_BENCH_TRACE").is_some() && s % 10 == 0 {
                eprintln!(
                    "second {s}: {:.1} ms, state {}",
                    latencies[s].as_secs_f64() * 1e3,
                    state.borrow().state_len()
                );
            }
        }
        if let Some(times) = operator_times {
            print_operator_times(&times.borrow());
        }
        let state_at_end = state.borrow().state_len();
        let produced = *outputs.borrow();
        Run {
            latencies,
            state_at_60,
            state_at_end,
            outputs: produced,
        }
    })
}

/// Operators seen in timely's log: name and scope address by id, and total scheduled time.
#[derive(Default)]
struct OperatorTimes {
    names: std::collections::BTreeMap<usize, (Vec<usize>, String)>,
    started: std::collections::BTreeMap<usize, Duration>,
    total: std::collections::BTreeMap<usize, Duration>,
}

/// Registers a timely logger that sums each operator's scheduled time.
fn log_operator_times(worker: &mut timely::worker::Worker) -> Rc<RefCell<OperatorTimes>> {
    use timely::logging::{StartStop, TimelyEvent, TimelyEventBuilder};
    let times = Rc::new(RefCell::new(OperatorTimes::default()));
    let sink = times.clone();
    if let Some(mut register) = worker.log_register() {
        register.insert::<TimelyEventBuilder, _>("timely", move |_time, data| {
            let Some(data) = data else { return };
            let mut t = sink.borrow_mut();
            for (at, event) in data.iter() {
                match event {
                    TimelyEvent::Operates(o) => {
                        t.names.insert(o.id, (o.addr.clone(), o.name.clone()));
                    }
                    TimelyEvent::Schedule(e) => match e.start_stop {
                        StartStop::Start => {
                            t.started.insert(e.id, *at);
                        }
                        StartStop::Stop => {
                            if let Some(from) = t.started.remove(&e.id) {
                                *t.total.entry(e.id).or_default() += at.saturating_sub(from);
                            }
                        }
                    },
                    _ => {}
                }
            }
        });
    }
    times
}

/// Prints the operators scheduled longest (leaf operators; scopes include their children).
fn print_operator_times(t: &OperatorTimes) {
    let mut rows: Vec<(&usize, &Duration)> = t.total.iter().collect();
    rows.sort_by(|a, b| b.1.cmp(a.1));
    for (id, total) in rows.into_iter().take(25) {
        let (addr, name) = t.names.get(id).cloned().unwrap_or_default();
        println!(
            "  {:>9.1} ms  op {id:>4} {addr:?} {name}",
            total.as_secs_f64() * 1e3
        );
    }
}

fn report() {
    let seconds = std::env::var("HARBINGER_BENCH_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(REPORT_SECONDS);
    let run = stream(seconds);
    let mut l: Vec<Duration> = run.latencies.clone();
    l.sort();
    let pct = |p: f64| l[((l.len() as f64 - 1.0) * p).round() as usize];
    println!(
        "correlate/latency at {RATE} alert events/s over {seconds} s ({} services): \
         p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; {} outputs; state entries after 60 s {}, \
         after {seconds} s {}",
        services(),
        pct(0.5).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
        l[l.len() - 1].as_secs_f64() * 1e3,
        run.outputs,
        run.state_at_60,
        run.state_at_end,
    );
}

fn bench_correlate(c: &mut Criterion) {
    let mut g = c.benchmark_group("correlate");
    g.sample_size(10);
    g.bench_function("one_second_at_1000_alerts_per_s", |b| {
        b.iter_custom(|iters| {
            // A warm stream of 5 s, then `iters` more seconds timed.
            let run = stream(5 + iters);
            run.latencies[5..].iter().sum()
        })
    });
    g.finish();
}

criterion_group!(benches, bench_correlate);

fn main() {
    report();
    benches();
    Criterion::default().configure_from_args().final_summary();
}
