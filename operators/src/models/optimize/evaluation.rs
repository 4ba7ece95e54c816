//! Issue 6's right-sizing benchmark: seeded workloads with a known true demand, and a rolling
//! comparison of [`RightSizing`](super::right_sizing::RightSizing) with the
//! [`Vpa`](super::vpa::Vpa) baseline on the same samples.
//!
//! **Workloads.** One sample a minute (VPA's own sampling assumption) for `days` days. The true
//! demand is `level(t) · season(t) · (1 + noise(t)) + bursts(t)`: a linear trend, a daily
//! season (a sinusoid or a business-hours plateau), AR(1) noise (φ = 0.9 per minute: usage
//! wanders for minutes rather than flickering) and bursts arriving as a Poisson process, each a
//! plateau of 5–45 minutes. The samples *are* the true demand (usage is demand while the
//! container is not throttled, the usual assumption of right-sizing studies), so every
//! algorithm sees exactly what it is scored against. [`WorkloadShape`] lists the shapes.
//!
//! **Rolling protocol.** At every interval boundary (default each hour) after a warm-up day,
//! both recommenders give a request using only the samples before the boundary; the request
//! is applied to the next interval; then that interval's samples are fed to both. An interval
//! is *under-provisioned* when the true demand exceeds the request at any minute of it.
//! *Slack* is the mean over minutes of (request − demand) where positive: the capacity paid for
//! and unused. Over-provisioning reduction = 1 − slack(ours) / slack(VPA).
//!
//! Entry points: [`generate`], [`evaluate`], [`evaluate_suite`], [`Totals`], [`report`]. The
//! right-sizing defaults were chosen with the ignored `sweep` test on seeds 1–5; the unit test
//! `ours_beats_vpa_on_the_suite` runs seeds 101–105, prints the table and asserts issue 6's
//! target on the whole suite and on the trend + season workload.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::right_sizing::RightSizingConfig;
use super::vpa::{VpaConfig, VpaResource, DAY_MS};
use crate::models::ModelError;
use crate::series::EventTime;

/// One minute in ms: the sampling interval of the generated workloads.
pub const SAMPLE_MS: u64 = 60_000;

/// Start of every generated workload: 2023-11-14 00:00 UTC (a midnight, so phases are hours
/// of the day).
pub const START_MS: EventTime = 1_699_920_000_000;

/// The simulated workload families.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkloadShape {
    /// CPU, flat trend, sinusoidal daily season ±50%, light noise, a burst a day.
    SteadyDaily,
    /// CPU growing 5% of the initial level per day, daily season ±50%.
    GrowingDaily,
    /// CPU business hours: 30% at night, 150% from 09:00 to 18:00 with one-hour ramps,
    /// growing 2% per day.
    BusinessHours,
    /// CPU with a mild season (±30%), more noise and four bursts a day of +50..150%.
    Bursty,
    /// CPU shrinking 3% of the initial level per day, daily season ±40%.
    Declining,
    /// Memory (bytes) leaking 4% per day with a ±20% daily season; VPA runs its memory mode.
    MemoryLeak,
}

impl WorkloadShape {
    /// Every shape, in the order of the report.
    pub const ALL: [WorkloadShape; 6] = [
        WorkloadShape::SteadyDaily,
        WorkloadShape::GrowingDaily,
        WorkloadShape::BusinessHours,
        WorkloadShape::Bursty,
        WorkloadShape::Declining,
        WorkloadShape::MemoryLeak,
    ];

    /// Short name for reports.
    pub fn name(self) -> &'static str {
        match self {
            WorkloadShape::SteadyDaily => "steady_daily",
            WorkloadShape::GrowingDaily => "growing_daily",
            WorkloadShape::BusinessHours => "business_hours",
            WorkloadShape::Bursty => "bursty",
            WorkloadShape::Declining => "declining",
            WorkloadShape::MemoryLeak => "memory_leak",
        }
    }

    /// CPU or memory.
    pub fn resource(self) -> VpaResource {
        match self {
            WorkloadShape::MemoryLeak => VpaResource::Memory,
            _ => VpaResource::Cpu,
        }
    }
}

/// Parameters of one shape (see [`WorkloadShape`]).
struct ShapeParams {
    base: f64,
    /// Trend per day, as a fraction of `base`.
    growth: f64,
    /// Sinusoid amplitude, or `None` for the business-hours plateau.
    amplitude: Option<f64>,
    /// Standard deviation of the AR(1) noise (fraction of the level).
    noise: f64,
    bursts_per_day: f64,
    /// Burst height range, as a fraction of the current level.
    burst_height: (f64, f64),
}

fn params(shape: WorkloadShape) -> ShapeParams {
    let cpu = |growth, amplitude, noise, bursts_per_day, burst_height| ShapeParams {
        base: 1.0,
        growth,
        amplitude,
        noise,
        bursts_per_day,
        burst_height,
    };
    match shape {
        WorkloadShape::SteadyDaily => cpu(0.0, Some(0.5), 0.05, 1.0, (0.2, 0.6)),
        WorkloadShape::GrowingDaily => cpu(0.05, Some(0.5), 0.05, 1.0, (0.2, 0.6)),
        WorkloadShape::BusinessHours => cpu(0.02, None, 0.06, 1.0, (0.2, 0.6)),
        WorkloadShape::Bursty => cpu(0.01, Some(0.3), 0.08, 4.0, (0.5, 1.5)),
        WorkloadShape::Declining => cpu(-0.03, Some(0.4), 0.05, 1.0, (0.2, 0.6)),
        WorkloadShape::MemoryLeak => ShapeParams {
            base: 2e9,
            growth: 0.04,
            amplitude: Some(0.2),
            noise: 0.01,
            bursts_per_day: 0.5,
            burst_height: (0.05, 0.15),
        },
    }
}

/// A generated workload: one true-demand value per minute from [`START_MS`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Workload {
    /// The shape it was drawn from.
    pub shape: WorkloadShape,
    /// The seed it was drawn with.
    pub seed: u64,
    /// Time of the first sample.
    pub start_ms: EventTime,
    /// Time between samples.
    pub sample_ms: u64,
    /// True demand per sample (cores or bytes).
    pub demand: Vec<f64>,
}

/// Daily season factor at `hour` of the day (0..24).
fn season(amplitude: Option<f64>, hour: f64) -> f64 {
    match amplitude {
        // Crest at 14:00, trough at 02:00.
        Some(a) => 1.0 + a * (2.0 * std::f64::consts::PI * (hour - 8.0) / 24.0).sin(),
        None => {
            // 0.3 at night, 1.5 from 09:00 to 18:00, linear ramps 08–09 and 18–19.
            let up = (hour - 8.0).clamp(0.0, 1.0);
            let down = (19.0 - hour).clamp(0.0, 1.0);
            0.3 + 1.2 * up.min(down)
        }
    }
}

/// Draws a workload of `days` days from `shape` with `seed` (deterministic).
pub fn generate(shape: WorkloadShape, seed: u64, days: u32) -> Workload {
    let p = params(shape);
    // Distinct streams per shape, so seed 1 of two shapes are not the same noise.
    let mut rng = ChaCha8Rng::seed_from_u64(seed.wrapping_mul(31).wrapping_add(shape as u64));
    let n = days as usize * (DAY_MS / SAMPLE_MS) as usize;
    let mut demand = Vec::with_capacity(n);
    let phi: f64 = 0.9;
    // Innovation sd so the stationary sd of the AR(1) is `noise`.
    let innov = p.noise * (1.0 - phi * phi).sqrt();
    let mut ar = 0.0;
    let per_minute = p.bursts_per_day / 1440.0;
    let mut burst_left = 0u32;
    let mut burst_height = 0.0;
    for i in 0..n {
        let minutes = i as f64;
        let day = minutes / 1440.0;
        let hour = (minutes % 1440.0) / 60.0;
        let level = p.base * (1.0 + p.growth * day);
        ar = phi * ar + innov * normal(&mut rng);
        if burst_left == 0 && rng.random::<f64>() < per_minute {
            burst_left = rng.random_range(5..=45);
            burst_height = rng.random_range(p.burst_height.0..=p.burst_height.1);
        }
        let burst = if burst_left > 0 {
            burst_left -= 1;
            burst_height * level
        } else {
            0.0
        };
        let d = level * season(p.amplitude, hour) * (1.0 + ar) + burst;
        demand.push(d.max(0.0));
    }
    Workload {
        shape,
        seed,
        start_ms: START_MS,
        sample_ms: SAMPLE_MS,
        demand,
    }
}

/// A standard normal draw (Box–Muller).
fn normal(rng: &mut ChaCha8Rng) -> f64 {
    let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// Settings of the rolling comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvalConfig {
    /// How often the recommendations are refreshed and applied. Default 1 h.
    pub interval_ms: u64,
    /// Intervals before this much history are not scored. Default 1 day (both recommenders
    /// need some history; VPA's own confidence is below one day until then).
    pub warmup_ms: u64,
    /// Our recommender's settings (its `fallback` is replaced by the VPA settings of the
    /// workload's resource).
    pub right_sizing: RightSizingConfig,
}

impl Default for EvalConfig {
    fn default() -> Self {
        Self {
            interval_ms: 3_600_000,
            warmup_ms: DAY_MS,
            right_sizing: RightSizingConfig::default(),
        }
    }
}

/// How one recommender did on one workload.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Score {
    /// Intervals scored.
    pub intervals: usize,
    /// Intervals where the true demand exceeded the request at some minute.
    pub under_provisioned: usize,
    /// Mean over minutes of (request − demand) where positive.
    pub mean_slack: f64,
    /// Mean request over the scored minutes.
    pub mean_request: f64,
    /// Mean true demand over the scored minutes.
    pub mean_demand: f64,
}

impl Score {
    /// Slack as a percentage of the mean demand.
    pub fn slack_pct(&self) -> f64 {
        if self.mean_demand > 0.0 {
            100.0 * self.mean_slack / self.mean_demand
        } else {
            0.0
        }
    }
}

/// Both recommenders on one workload.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// The workload's shape.
    pub shape: WorkloadShape,
    /// The workload's seed.
    pub seed: u64,
    /// The VPA baseline.
    pub vpa: Score,
    /// Our recommender.
    pub ours: Score,
}

impl Comparison {
    /// 1 − slack(ours) / slack(VPA), in percent (positive: ours over-provisions less).
    pub fn slack_reduction_pct(&self) -> f64 {
        reduction_pct(self.ours.mean_slack, self.vpa.mean_slack)
    }
}

fn reduction_pct(ours: f64, base: f64) -> f64 {
    if base > 0.0 {
        100.0 * (1.0 - ours / base)
    } else {
        0.0
    }
}

/// Accumulates one interval's minutes into a score.
#[derive(Default)]
struct Acc {
    intervals: usize,
    under: usize,
    slack: f64,
    request: f64,
    demand: f64,
    minutes: usize,
}

impl Acc {
    fn interval(&mut self, request: f64, demand: &[f64]) {
        self.intervals += 1;
        if demand.iter().any(|d| *d > request) {
            self.under += 1;
        }
        for d in demand {
            self.slack += (request - d).max(0.0);
            self.request += request;
            self.demand += d;
        }
        self.minutes += demand.len();
    }

    fn score(&self) -> Score {
        let m = self.minutes.max(1) as f64;
        Score {
            intervals: self.intervals,
            under_provisioned: self.under,
            mean_slack: self.slack / m,
            mean_request: self.request / m,
            mean_demand: self.demand / m,
        }
    }
}

/// Runs both recommenders over `w` with the rolling protocol of the module docs.
///
/// # Errors
/// Invalid settings, or an interval that is not a whole number of samples.
pub fn evaluate(w: &Workload, cfg: &EvalConfig) -> Result<Comparison, ModelError> {
    if cfg.interval_ms == 0 || w.sample_ms == 0 || !cfg.interval_ms.is_multiple_of(w.sample_ms) {
        return Err(ModelError::InvalidParameter {
            name: "interval_ms",
            reason: "must be a positive multiple of the sampling interval".into(),
        });
    }
    let vpa_cfg = match w.shape.resource() {
        VpaResource::Cpu => VpaConfig::cpu(),
        VpaResource::Memory => VpaConfig::memory(),
    };
    let mut vpa = vpa_cfg.start()?;
    let mut ours = RightSizingConfig {
        fallback: vpa_cfg,
        ..cfg.right_sizing.clone()
    }
    .start()?;
    let per_interval = (cfg.interval_ms / w.sample_ms) as usize;
    let (mut acc_vpa, mut acc_ours) = (Acc::default(), Acc::default());
    for (i, chunk) in w.demand.chunks(per_interval).enumerate() {
        let t0 = w.start_ms + i as u64 * cfg.interval_ms;
        if t0 >= w.start_ms + cfg.warmup_ms {
            ours.advance_to(t0);
            let rv = vpa.estimate().map(|e| e.target);
            let ro = ours.estimate(t0, cfg.interval_ms).map(|e| e.request);
            if let (Some(rv), Some(ro)) = (rv, ro) {
                acc_vpa.interval(rv, chunk);
                acc_ours.interval(ro, chunk);
            }
        }
        for (k, d) in chunk.iter().enumerate() {
            let t = t0 + k as u64 * w.sample_ms;
            vpa.observe(t, *d)?;
            ours.observe(t, *d)?;
        }
    }
    Ok(Comparison {
        shape: w.shape,
        seed: w.seed,
        vpa: acc_vpa.score(),
        ours: acc_ours.score(),
    })
}

/// [`evaluate`] over every shape × seed, `days` days each, in that order.
///
/// # Errors
/// As [`evaluate`].
pub fn evaluate_suite(
    shapes: &[WorkloadShape],
    seeds: &[u64],
    days: u32,
    cfg: &EvalConfig,
) -> Result<Vec<Comparison>, ModelError> {
    let mut out = Vec::with_capacity(shapes.len() * seeds.len());
    for shape in shapes {
        for seed in seeds {
            out.push(evaluate(&generate(*shape, *seed, days), cfg)?);
        }
    }
    Ok(out)
}

/// Totals over a suite: under-provisioned intervals summed, slack as the mean of each run's
/// slack relative to its own VPA slack (so bytes and cores can be pooled).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Totals {
    /// Intervals scored per recommender.
    pub intervals: usize,
    /// VPA's under-provisioned intervals.
    pub vpa_under: usize,
    /// Our under-provisioned intervals.
    pub ours_under: usize,
    /// Mean over runs of 1 − slack(ours)/slack(VPA), percent.
    pub mean_slack_reduction_pct: f64,
    /// Smallest per-run slack reduction, percent.
    pub min_slack_reduction_pct: f64,
}

impl Totals {
    /// Sums `runs`.
    pub fn of(runs: &[Comparison]) -> Totals {
        let mut t = Totals {
            min_slack_reduction_pct: f64::INFINITY,
            ..Totals::default()
        };
        for r in runs {
            t.intervals += r.vpa.intervals;
            t.vpa_under += r.vpa.under_provisioned;
            t.ours_under += r.ours.under_provisioned;
            t.mean_slack_reduction_pct += r.slack_reduction_pct();
            t.min_slack_reduction_pct = t.min_slack_reduction_pct.min(r.slack_reduction_pct());
        }
        if !runs.is_empty() {
            t.mean_slack_reduction_pct /= runs.len() as f64;
        } else {
            t.min_slack_reduction_pct = 0.0;
        }
        t
    }
}

/// The suite as a plain-text table (one row per run, then the totals).
pub fn report(runs: &[Comparison]) -> String {
    let mut s = String::from(
        "shape           seed  intervals  under(vpa)  under(ours)  slack%(vpa)  slack%(ours)  slack_reduction%\n",
    );
    for r in runs {
        s.push_str(&format!(
            "{:<15} {:>4}  {:>9}  {:>10}  {:>11}  {:>11.1}  {:>12.1}  {:>16.1}\n",
            r.shape.name(),
            r.seed,
            r.vpa.intervals,
            r.vpa.under_provisioned,
            r.ours.under_provisioned,
            r.vpa.slack_pct(),
            r.ours.slack_pct(),
            r.slack_reduction_pct()
        ));
    }
    let t = Totals::of(runs);
    s.push_str(&format!(
        "TOTAL: {} intervals; under-provisioned vpa {} / ours {}; slack reduction mean {:.1}% (min {:.1}%)\n",
        t.intervals, t.vpa_under, t.ours_under, t.mean_slack_reduction_pct, t.min_slack_reduction_pct
    ));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Seeds the defaults were chosen on (the `sweep`).
    const SEEDS: [u64; 5] = [1, 2, 3, 4, 5];
    /// Held-out seeds the assertion runs on.
    const HELD_OUT: [u64; 5] = [101, 102, 103, 104, 105];

    #[test]
    fn generator_is_deterministic_and_shaped() {
        let a = generate(WorkloadShape::GrowingDaily, 7, 3);
        let b = generate(WorkloadShape::GrowingDaily, 7, 3);
        assert_eq!(a, b);
        assert_eq!(a.demand.len(), 3 * 1440);
        let c = generate(WorkloadShape::GrowingDaily, 8, 3);
        assert_ne!(a.demand, c.demand);
        // Crest (14:00) well above trough (02:00) on day one.
        let mean = |from: usize| a.demand[from..from + 60].iter().sum::<f64>() / 60.0;
        assert!(mean(14 * 60) > 2.0 * mean(2 * 60));
        assert!(a.demand.iter().all(|d| d.is_finite() && *d >= 0.0));
    }

    /// Issue 6's "Done when", on seeds the defaults were not chosen on: over every shape and
    /// five seeds, fewer under-provisioned intervals than VPA and at least 20% less
    /// over-provisioning; and on the trend + daily season workload both hold on their own.
    #[test]
    fn ours_beats_vpa_on_the_suite() {
        let runs =
            evaluate_suite(&WorkloadShape::ALL, &HELD_OUT, 14, &EvalConfig::default()).unwrap();
        println!("{}", report(&runs));
        let t = Totals::of(&runs);
        assert!(t.ours_under < t.vpa_under, "{t:?}");
        assert!(t.mean_slack_reduction_pct >= 20.0, "{t:?}");
        let growing: Vec<Comparison> = runs
            .iter()
            .filter(|r| r.shape == WorkloadShape::GrowingDaily)
            .copied()
            .collect();
        let g = Totals::of(&growing);
        assert!(g.ours_under < g.vpa_under, "{g:?}");
        assert!(g.mean_slack_reduction_pct >= 20.0, "{g:?}");
    }

    /// Parameter sweep on the tuning seeds (`cargo test -p operators sweep -- --ignored
    /// --nocapture`): totals and per-shape `vpa/ours under-provisioned/slack reduction`.
    #[test]
    #[ignore]
    fn sweep() {
        for q in [0.8] {
            for cap in [2.0, 4.0] {
                for m in [0, 10 * 60_000, 20 * 60_000] {
                    let cfg = EvalConfig {
                        right_sizing: RightSizingConfig {
                            min_request_percentile: q,
                            miss_cost: cap,
                            carry_recent_ms: m,
                            ..RightSizingConfig::default()
                        },
                        ..EvalConfig::default()
                    };
                    let runs = evaluate_suite(&WorkloadShape::ALL, &SEEDS, 14, &cfg).unwrap();
                    let t = Totals::of(&runs);
                    let mut per_shape = String::new();
                    for (k, shape) in WorkloadShape::ALL.iter().enumerate() {
                        let r = &runs[k * SEEDS.len()..(k + 1) * SEEDS.len()];
                        let tt = Totals::of(r);
                        per_shape.push_str(&format!(
                            " {}:{}/{}/{:.0}%",
                            shape.name(),
                            tt.vpa_under,
                            tt.ours_under,
                            tt.mean_slack_reduction_pct
                        ));
                    }
                    println!(
                        "q={q} cap={cap:?} m={m}: under vpa {} ours {}; slack red mean {:.1} min {:.1} |{per_shape}",
                        t.vpa_under, t.ours_under, t.mean_slack_reduction_pct, t.min_slack_reduction_pct
                    );
                }
            }
        }
    }
}
