//! Calibration: turns a detector's raw score into the probability that the recent behaviour is
//! abnormal, measured against that detector's own recent scores.
//!
//! Raw magnitudes of different detectors, and of one detector on different series, live on
//! different scales: a |z| of 6 is rare on a quiet series and common on a bursty one, and an IQR
//! fence excess is zero most of the time. The strong detectors of the Numenta Anomaly Benchmark
//! (HTM's "anomaly likelihood", CAD OSE, ARTime) therefore judge a raw score by how unusual it is
//! *for that detector on that series*. We do the same, with the peaks-over-threshold model of
//! extreme value theory (as SPOT, Siffer et al., KDD 2017, uses for streaming thresholds):
//!
//! * the last `memory` magnitudes are kept in a ring (f32);
//! * every `refresh_every` values, the tail threshold `u` (the `1 − tail_fraction` quantile), the
//!   share `φ` of magnitudes above it and a generalized Pareto distribution of the excesses over
//!   it (scale σ, shape ξ by probability-weighted moments) are re-estimated, with the median;
//! * the tail probability of a magnitude `r` above `u` is `φ · (1 + ξ (r − u) / σ)^(−1/ξ)`
//!   (`φ · exp(−(r − u) / σ)` when ξ = 0). Light-tailed deviations (a quiet gauge) keep an
//!   exponential tail and stay sensitive; heavy-tailed ones (bursty traffic, latency tails,
//!   error ratios) get a Pareto tail that does not call every burst impossible. Below `u` the
//!   probability is interpolated between the median (½) and `u` (φ). A detector whose magnitude is usually zero (IQR fences)
//!   thus judges its first non-zero value by the few it has seen, not by a Gaussian around 0;
//! * the calibrated score is a log scale of `q`, as HTM's `computeLogLikelihood` maps its
//!   likelihood: `L / (L + decades)` with `L = −log10 q`, so q = 10⁻⁵ scores 0.5 at the default
//!   5 decades, and rarer events keep ranking higher instead of all tying at 1.
//!
//! A magnitude is judged against the distribution *before* it joins it, so a lone spike is not
//! diluted by itself. The cost is a ring write per value and a linear-time selection every
//! `refresh_every` values; the state is `memory` f32 values per detector.

use serde::{Deserialize, Serialize};

use crate::models::ModelError;

/// Settings of the tail calibrator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CalibrationConfig {
    /// Recent magnitudes the distribution is estimated from. Default 512: about two days of
    /// 5-minute rows, eight hours of 1-minute windows; 2 KB per detector and series.
    pub memory: usize,
    /// Magnitudes seen before the calibrator answers at all. Default 30: fewer make the tail a
    /// guess.
    pub min_history: usize,
    /// Values between re-estimates of the tail (and at every power of two before). Default 64:
    /// a re-estimate costs a linear selection over `memory` values, and the tail of a detector's
    /// magnitudes moves slowly.
    pub refresh_every: usize,
    /// Share of magnitudes above the tail threshold. Default 0.1: the top decile, enough values
    /// (50 of 512) for a stable mean excess.
    pub tail_fraction: f64,
    /// Smallest scale σ of the excess distribution, in magnitude units, so a detector that has
    /// only ever reported zero does not call its first non-zero magnitude infinitely unlikely.
    /// Default 0.1 (a tenth of a σ for the scalar detectors).
    pub min_excess: f64,
    /// Decades of tail probability that score 0.5 (see [`tail_to_score`]). Default 5: a tail
    /// of 10⁻⁵ scores 0.5, where HTM's log-likelihood map (10 decades over [0, 1]) also puts it.
    pub decades: f64,
    /// How long after a window the ensemble found anomalous the calibrator learns nothing, in
    /// seconds of event time (default 600). An incident's magnitudes stay high for a while
    /// after its first anomalous window, partly below the alert level (the detector's own
    /// baseline moving through the change, the recovery); learned as normal, they teach the
    /// tail that incidents are ordinary and the next incident of the same kind on that series
    /// scores lower (on the simulator, front-end traffic drops every 7 h scored 0.91, then
    /// 0.68, then 0.39, then missed). 0 learns every window that is not itself anomalous.
    pub quiet_secs: u64,
}

impl Default for CalibrationConfig {
    fn default() -> Self {
        CalibrationConfig {
            memory: 512,
            min_history: 30,
            refresh_every: 64,
            tail_fraction: 0.1,
            min_excess: 0.1,
            decades: 5.0,
            quiet_secs: 600,
        }
    }
}

impl CalibrationConfig {
    /// Checks every parameter's range.
    pub fn validate(&self) -> Result<(), ModelError> {
        let bad = |name, reason: String| Err(ModelError::InvalidParameter { name, reason });
        let memory = self.memory;
        ModelError::require(
            (16..=65_536).contains(&memory),
            "memory",
            "between 16 and 65536",
            memory as f64,
        )?;
        ModelError::require(
            (4..=memory).contains(&self.min_history),
            "min_history",
            &format!("between 4 and memory ({memory})"),
            self.min_history as f64,
        )?;
        if self.refresh_every == 0 {
            return bad("refresh_every", "must be at least 1".into());
        }
        let f = self.tail_fraction;
        ModelError::require(f > 0.0 && f < 0.5, "tail_fraction", "in (0, 0.5)", f)?;
        let positive =
            |name, v: f64| ModelError::require(v.is_finite() && v > 0.0, name, "positive", v);
        positive("min_excess", self.min_excess)?;
        positive("decades", self.decades)
    }
}

/// A calibrated score.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Calibrated {
    /// `−log10` of the tail probability of the recent magnitude under the detector's recent
    /// distribution (decades of rarity).
    pub rarity: f64,
    /// Log-scaled score in [0, 1] (see [`tail_to_score`]).
    pub score: f64,
}

/// The fitted tail model of the recent magnitudes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
struct TailModel {
    median: f64,
    /// Tail threshold u.
    threshold: f64,
    /// Share φ of magnitudes above u.
    share: f64,
    /// Scale σ of the generalized Pareto excess distribution.
    excess: f64,
    /// Shape ξ ≥ 0 of the excess distribution (0: exponential; > 0: heavy, Pareto-like).
    shape: f64,
}

impl TailModel {
    /// `−log10` of the tail probability of `r > u`.
    fn decades_above(&self, r: f64) -> f64 {
        let y = (r - self.threshold) / self.excess;
        let excess_decades = if self.shape > 1e-6 {
            (self.shape * y).ln_1p() / (self.shape * std::f64::consts::LN_10)
        } else {
            y / std::f64::consts::LN_10
        };
        -self.share.log10() + excess_decades
    }

    fn tail(&self, r: f64) -> f64 {
        if r > self.threshold {
            10f64.powf(-self.decades_above(r))
        } else if r > self.median && self.threshold > self.median {
            let f = (r - self.median) / (self.threshold - self.median);
            0.5 + f * (self.share - 0.5)
        } else {
            // At or below the median: as ordinary as it gets.
            0.5_f64.max(self.share)
        }
    }

    /// The magnitude whose tail is `q` (for `q` below the share), else the threshold.
    fn inverse(&self, q: f64) -> f64 {
        if q < self.share {
            let e = (self.share / q).ln();
            let y = if self.shape > 1e-6 {
                (self.shape * e).exp_m1() / self.shape
            } else {
                e
            };
            self.threshold + self.excess * y
        } else {
            self.threshold
        }
    }
}

/// The calibrator of one detector on one series.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TailCalibrator {
    /// Ring of recent magnitudes.
    ring: Vec<f32>,
    next: usize,
    seen: u64,
    model: Option<TailModel>,
    /// Anomalous windows net of normal ones (each normal window takes one off): how long an
    /// anomaly has persisted.
    #[serde(default)]
    anomalous_run: u32,
    /// Event time until which nothing is learned (the quiet period after an anomalous window).
    #[serde(default)]
    quiet_until: u64,
}

impl TailCalibrator {
    /// An empty calibrator.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of magnitudes learned so far.
    pub fn seen(&self) -> u64 {
        self.seen
    }

    /// Judges `raw` against the distribution learned so far (`None` during warm-up or for a
    /// non-finite or negative magnitude).
    pub fn judge(&self, cfg: &CalibrationConfig, raw: f64) -> Option<Calibrated> {
        if !(raw.is_finite() && raw >= 0.0) {
            return None;
        }
        let m = self.model?;
        // In the modelled tail, −log10 q has a closed form: no exp on the hot path, and no
        // underflow for extreme magnitudes.
        let rarity = if raw > m.threshold {
            m.decades_above(raw)
        } else {
            -m.tail(raw).log10()
        }
        .max(0.0);
        Some(Calibrated {
            rarity,
            score: rarity / (rarity + cfg.decades),
        })
    }

    /// Learns the magnitude of the window at event time `time`. The tail must describe
    /// *normal* behaviour, or frequent incidents teach it that incidents are ordinary: as in
    /// SPOT (Siffer et al., 2017), which keeps alarms out of its peaks, a window the ensemble
    /// found anomalous is not learned, nor one this detector alone finds clearly rare (1.25 ×
    /// `decades` past the median; the reasons are at the constant `RARE_ALONE`), nor anything
    /// in the `quiet_secs` after either (the rest of the incident and its recovery). A change
    /// that persists must still become the new ordinary: once anomalous windows outnumber
    /// normal ones by `tail_fraction` of `memory`, they are learned as they are, so the top of
    /// the ring fills with the new level and the detector stops repeating it. (Learning them
    /// clipped instead, say two decades past the tail threshold, stacks equal values at the top
    /// of the ring: a tail of zero width that calls the new level rarer with every refit.)
    pub fn learn(&mut self, cfg: &CalibrationConfig, raw: f64, anomalous: bool, time: u64) {
        if !(raw.is_finite() && raw >= 0.0) {
            return;
        }
        // What this detector alone finds clearly rare is kept out too (see `RARE_ALONE`); a
        // window the ensemble already found anomalous needs no second look.
        let anomalous = anomalous
            || self
                .judge(cfg, raw)
                .is_some_and(|c| c.rarity >= RARE_ALONE * cfg.decades);
        if anomalous && self.model.is_some() {
            self.anomalous_run = self.anomalous_run.saturating_add(1);
            let persisting = f64::from(self.anomalous_run) >= cfg.tail_fraction * cfg.memory as f64;
            if !persisting {
                self.quiet_until = time.saturating_add(cfg.quiet_secs.saturating_mul(1000));
                return;
            }
        } else {
            self.anomalous_run = self.anomalous_run.saturating_sub(1);
            if time < self.quiet_until {
                return;
            }
        }
        let r32 = (raw as f32).min(f32::MAX);
        if self.ring.len() < cfg.memory {
            self.ring.push(r32);
        } else {
            let at = self.next % self.ring.len();
            self.ring[at] = r32;
        }
        self.next = (self.next + 1) % cfg.memory;
        self.seen += 1;
        // Refit when the history doubles (early estimates firm up fast), then on schedule.
        let due = self.seen.is_power_of_two() || self.seen.is_multiple_of(cfg.refresh_every as u64);
        if self.ring.len() >= cfg.min_history && (self.model.is_none() || due) {
            self.model = Some(fit_tail(&self.ring, cfg));
        }
    }

    /// Judges, then learns (as normal) `raw`: for callers without an ensemble verdict or a
    /// clock.
    pub fn observe(&mut self, cfg: &CalibrationConfig, raw: f64) -> Option<Calibrated> {
        let out = self.judge(cfg, raw);
        self.learn(cfg, raw, false, 0);
        out
    }

    /// How much history the calibration rests on, in (0, 1]: reaches 1 at `memory` magnitudes.
    pub fn fill(&self, cfg: &CalibrationConfig) -> f64 {
        (self.ring.len() as f64 / cfg.memory as f64).clamp(1e-3, 1.0)
    }

    /// The magnitude at which a lone value would calibrate to `score` (`None` before the tail is
    /// fitted): inverts the score map and the tail model.
    pub fn boundary(&self, cfg: &CalibrationConfig, score: f64) -> Option<f64> {
        let m = self.model?;
        Some(m.inverse(score_to_tail(score, cfg.decades)).max(0.0))
    }

    /// Approximate heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.ring.capacity() * std::mem::size_of::<f32>()
    }
}

/// A magnitude at least this many times `decades` rare by the detector's own tail (a score of
/// 0.556 or more) is not learned as ordinary, even in a window the ensemble calls normal. With
/// every detector on, the ensemble asks for agreement, so a fault only the robust detector saw
/// (|z| 68 on a fleet-wide traffic drop) was called normal, its magnitudes were learned, and
/// later drops scored 0.28: a 72 h run missed three of them. Measured on the 72 h runs with
/// every detector (seeds 42 / 7 / 1234) and NAB: without this rule 56 / 56 / 52 found, 24 / 22 /
/// 23 false alerts, NAB 71.8; at 1.5, 56 / 56 / 55, 24 / 23 / 27; at 1.25, 56 / 56 / 56,
/// 25 / 26 / 32, NAB 71.9; at 1 (the alert level itself), 56 / 56 / 56, 27 / 27 / 34, but NAB
/// fell to 69.1 (its robust detector kept repeating level shifts it no longer learned).
const RARE_ALONE: f64 = 1.25;

/// Fewest excesses over the tail threshold from which the tail's shape ξ is estimated; with
/// fewer it is taken as 0 (an exponential tail), which holds for about the first hundred learned
/// values. A young calibrator holds a handful of excesses (4 of its first 45 values), and one
/// stray value among them fitted ξ ≈ 0.5: a tail so heavy that a fault's windows, 100 noise σ
/// out, scored just under the alert level, were learned as ordinary, and made the series' later
/// faults look ordinary too (a 72 h run missed a tripled latency that way). 20 excesses kept
/// the tails exponential longer and cost more early false alerts on bursty latency (24 h
/// runs: 12 / 31 / 22 against 11 / 30 / 22 at 10).
const MIN_SHAPE_EXCESSES: usize = 10;

/// Fits the tail model to the ring: quantiles by selection (linear time), then the mean excess.
fn fit_tail(ring: &[f32], cfg: &CalibrationConfig) -> TailModel {
    let mut v: Vec<f32> = ring.to_vec();
    let n = v.len();
    let k = ((n as f64) * (1.0 - cfg.tail_fraction)).floor() as usize;
    let k = k.min(n - 1);
    let (_, u, upper) = v.select_nth_unstable_by(k, f32::total_cmp);
    let u = f64::from(*u);
    let above: Vec<f64> = upper
        .iter()
        .map(|x| f64::from(*x))
        .filter(|x| *x > u)
        .collect();
    // φ counts the values strictly above u (ties at a point mass stay below), at least one
    // pseudo-count so an empty tail still has a finite probability.
    let share = (above.len().max(1) as f64) / (n as f64 + 1.0);
    // Generalized Pareto fit of the excesses by probability-weighted moments (Hosking & Wallis,
    // Technometrics 1987): with a0 the mean excess and a1 = mean of (1 − p_i) y_(i) over the
    // sorted excesses (plotting positions p_i = (i − 0.35)/n), ξ = 2 − a0/(a0 − 2 a1). Unlike the
    // plain method of moments, which needs a finite variance and so cannot see ξ ≥ ½, it holds
    // for ξ < 1: the heavy tails of bursty counters and latency are not squeezed into a lighter
    // tail that calls their ordinary bursts 10⁻⁵ events. ξ is kept in [0, 0.9]: a fitted ξ < 0
    // claims a finite upper end, which a monitor must not believe, and near 1 the mean excess
    // the scale rests on stops existing.
    let (excess, shape) = if above.len() < 2 {
        (cfg.min_excess, 0.0)
    } else if above.len() < MIN_SHAPE_EXCESSES {
        // Too few excesses to tell a heavy tail from one stray value: an exponential tail.
        let mean = above.iter().map(|x| x - u).sum::<f64>() / above.len() as f64;
        (mean.max(cfg.min_excess), 0.0)
    } else {
        let mut y: Vec<f64> = above.iter().map(|x| x - u).collect();
        y.sort_by(f64::total_cmp);
        let len = y.len() as f64;
        let a0 = y.iter().sum::<f64>() / len;
        let a1 = y
            .iter()
            .enumerate()
            .map(|(i, v)| (1.0 - (i as f64 + 0.65) / len) * v)
            .sum::<f64>()
            / len;
        let denominator = a0 - 2.0 * a1;
        if a0 > 0.0 && denominator > 0.0 {
            let shape = (2.0 - a0 / denominator).clamp(0.0, 0.9);
            // With ξ clamped, keep the mean excess: σ = a0 (1 − ξ).
            ((a0 * (1.0 - shape)).max(cfg.min_excess), shape)
        } else {
            (a0.max(cfg.min_excess), 0.0)
        }
    };
    let (_, median, _) = v[..=k].select_nth_unstable_by(k / 2, f32::total_cmp);
    TailModel {
        median: f64::from(*median).min(u),
        threshold: u,
        share: share.min(0.5),
        excess,
        shape,
    }
}

/// The score of a tail probability: `L / (L + decades)` with `L = −log10(tail)`, so a tail of
/// `10^−decades` scores 0.5. The map is strictly increasing with no ceiling short of 1: ever rarer
/// events keep ranking above rarer ones (a clamp would tie every extreme at 1, and benchmarks
/// that pick one threshold over many series need that ranking).
pub fn tail_to_score(tail: f64, decades: f64) -> f64 {
    if tail.is_nan() || tail <= 0.0 {
        return 1.0;
    }
    let l = (-tail.log10()).max(0.0);
    (l / (l + decades)).clamp(0.0, 1.0)
}

/// The inverse of [`tail_to_score`]: the tail probability a score stands for.
pub fn score_to_tail(score: f64, decades: f64) -> f64 {
    let s = score.clamp(0.0, 1.0 - 1e-12);
    10f64.powf(-decades * s / (1.0 - s))
}

/// Standard normal survival function Q(x) = P(Z > x), accurate to ~1e-7 relative over the whole
/// range (complementary error function after Numerical Recipes' Chebyshev fit `erfcc`, §6.2).
pub fn normal_tail(x: f64) -> f64 {
    if x.is_nan() {
        return 1.0;
    }
    0.5 * erfc(x / std::f64::consts::SQRT_2)
}

/// Complementary error function with fractional error below 1.2e-7 everywhere (Numerical
/// Recipes, 2nd ed., `erfcc`).
pub fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let r = t * poly.exp();
    if x >= 0.0 {
        r
    } else {
        2.0 - r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_tail_matches_tables() {
        // Reference values of Q(x) from standard normal tables.
        for (x, q) in [
            (0.0, 0.5),
            (1.0, 0.158_655_25),
            (2.0, 0.022_750_13),
            (3.0, 0.001_349_898),
            (5.0, 2.866_515_7e-7),
            (-1.0, 0.841_344_75),
        ] {
            let got = normal_tail(x);
            assert!((got - q).abs() / q < 1e-6, "Q({x}) = {got}, want {q}");
        }
    }

    #[test]
    fn score_scale_round_trips() {
        assert!((tail_to_score(1e-5, 5.0) - 0.5).abs() < 1e-12);
        assert!(
            tail_to_score(1e-30, 5.0) > tail_to_score(1e-20, 5.0),
            "no ceiling"
        );
        assert_eq!(tail_to_score(0.0, 5.0), 1.0);
        assert_eq!(tail_to_score(1.0, 5.0), 0.0);
        assert!((score_to_tail(0.5, 5.0) - 1e-5).abs() < 1e-15);
    }

    /// A deterministic stream of |N(0,1)|-like magnitudes.
    fn magnitudes(n: usize, seed: u64) -> Vec<f64> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                // Sum of 12 uniforms − 6 ≈ N(0, 1).
                let mut acc = 0.0;
                for _ in 0..12 {
                    s = s
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    acc += (s >> 11) as f64 / (1u64 << 53) as f64;
                }
                (acc - 6.0).abs()
            })
            .collect()
    }

    #[test]
    fn calibrated_tails_are_roughly_uniform_on_ordinary_scores() {
        // On scores from the distribution it learned, a calibrated tail below 1% should occur
        // about 1% of the time — not 0% (useless) and not 10% (over-alerting).
        let cfg = CalibrationConfig::default();
        let mut c = TailCalibrator::new();
        let mut below = 0usize;
        let mut judged = 0usize;
        for r in magnitudes(20_000, 3) {
            if let Some(x) = c.observe(&cfg, r) {
                judged += 1;
                below += usize::from(x.rarity > 2.0);
            }
        }
        let rate = below as f64 / judged as f64;
        assert!((0.002..0.03).contains(&rate), "rate of tails < 1%: {rate}");
    }

    #[test]
    fn a_spike_scores_high_and_the_same_spike_on_a_noisier_series_lower() {
        let cfg = CalibrationConfig::default();
        let mut quiet = TailCalibrator::new();
        let mut noisy = TailCalibrator::new();
        for r in magnitudes(2_000, 9) {
            quiet.observe(&cfg, r);
            noisy.observe(&cfg, 4.0 * r);
        }
        let q = quiet.observe(&cfg, 12.0).unwrap();
        let n = noisy.observe(&cfg, 12.0).unwrap();
        assert!(q.score > 0.5, "{q:?}");
        assert!(n.score < q.score, "{n:?} vs {q:?}");
    }

    #[test]
    fn warm_up_and_bad_input_give_nothing() {
        let cfg = CalibrationConfig::default();
        let mut c = TailCalibrator::new();
        for _ in 0..cfg.min_history {
            assert!(c.observe(&cfg, 1.0).is_none());
        }
        assert!(c.observe(&cfg, f64::NAN).is_none());
        assert!(c.observe(&cfg, -1.0).is_none());
        assert!(c.observe(&cfg, 1.0).is_some());
    }

    /// Feeds `n` 1-minute windows of seeded magnitudes, an incident every 100th window: a
    /// flagged window of magnitude 1,000 followed by `aftermath` unflagged windows of
    /// magnitude 30 (the detector's baseline moving through the change).
    fn with_incidents(cfg: &CalibrationConfig, aftermath: usize) -> TailCalibrator {
        let mut c = TailCalibrator::new();
        for (i, r) in magnitudes(2_000, 5).into_iter().enumerate() {
            let (r, incident) = match i % 100 {
                0 => (1_000.0, true),
                k if k <= aftermath => (30.0, false),
                _ => (r, false),
            };
            c.learn(cfg, r, incident, i as u64 * 60_000);
        }
        c
    }

    #[test]
    fn incidents_and_their_aftermath_do_not_stretch_the_tail() {
        // Flagged windows are never learned, and with a quiet period neither are the windows
        // just after them: a value in between judges as rare as on a series with no incidents.
        let quiet = CalibrationConfig::default();
        let learns_aftermath = CalibrationConfig {
            quiet_secs: 0,
            ..CalibrationConfig::default()
        };
        let mut clean = TailCalibrator::new();
        for (i, r) in magnitudes(2_000, 5).into_iter().enumerate() {
            clean.learn(&quiet, r, false, i as u64 * 60_000);
        }
        let clean = clean.judge(&quiet, 8.0).unwrap();
        let with_quiet = with_incidents(&quiet, 5).judge(&quiet, 8.0).unwrap();
        let without = with_incidents(&learns_aftermath, 5)
            .judge(&learns_aftermath, 8.0)
            .unwrap();
        assert!(
            (with_quiet.rarity - clean.rarity).abs() < 0.5,
            "{clean:?} vs {with_quiet:?}"
        );
        assert!(
            with_quiet.rarity > without.rarity + 0.3,
            "{without:?} vs {with_quiet:?}"
        );
    }

    #[test]
    fn a_persistent_change_becomes_ordinary() {
        // A series whose every window is flagged from some point on (a new level the detector
        // keeps reporting) must stop looking extreme once the change has lasted a while.
        let cfg = CalibrationConfig::default();
        let mut c = TailCalibrator::new();
        let mut t = 0;
        for r in magnitudes(1_000, 9) {
            c.learn(&cfg, r, false, t);
            t += 60_000;
        }
        let before = c.judge(&cfg, 12.0).unwrap();
        for _ in 0..cfg.memory {
            c.learn(&cfg, 12.0, true, t);
            t += 60_000;
        }
        let after = c.judge(&cfg, 12.0).unwrap();
        assert!(
            before.score >= 0.5 && after.score < 0.5,
            "{before:?} then {after:?}"
        );
    }

    #[test]
    fn heavy_tails_beyond_a_half_are_fitted() {
        // Generalized Pareto draws with ξ = 0.7 (infinite variance), by inverting the CDF of an
        // evenly spread, shuffled sequence of probabilities: the plain method of moments cannot
        // see ξ ≥ ½; probability-weighted moments can.
        let cfg = CalibrationConfig::default();
        let mut c = TailCalibrator::new();
        let xi = 0.7;
        let n = 512u64;
        for i in 0..n {
            // 383 is coprime with 512: i ↦ 383 i mod 512 visits every slot once, in mixed order.
            let p = ((i * 383) % n) as f64 / n as f64 + 0.5 / n as f64;
            c.learn(&cfg, ((1.0 - p).powf(-xi) - 1.0) / xi, false, 0);
        }
        let m = c.model.expect("fitted");
        assert!(
            m.shape > 0.5 && m.shape <= 0.9 && (m.shape - xi).abs() < 0.2,
            "{m:?}"
        );
    }

    #[test]
    fn a_stray_value_in_a_young_calibrator_does_not_make_the_tail_heavy() {
        // 44 ordinary |z| values and one stray 9.4, as a series' first hour can hold: four or
        // five excesses cannot tell a heavy tail from the stray value, so the tail stays
        // exponential and a window 120 noise σ out is far past the alert level (with the shape
        // fitted from those excesses it scored 0.52, was learned, and the next faults of the
        // series looked ordinary).
        let cfg = CalibrationConfig::default();
        let mut c = TailCalibrator::new();
        for (i, r) in magnitudes(44, 11).into_iter().enumerate() {
            c.learn(&cfg, r, false, 0);
            if i == 20 {
                c.learn(&cfg, 9.4, false, 0);
            }
        }
        let m = c.model.expect("fitted");
        assert_eq!(m.shape, 0.0, "{m:?}");
        let far = c.judge(&cfg, 120.0).unwrap();
        assert!(far.score > 0.7, "{far:?}");
    }

    #[test]
    fn a_fault_the_ensemble_calls_normal_does_not_teach_the_tail() {
        // Thirty windows of |z| 40 that the ensemble called normal (the other detectors were
        // quiet): the detector itself finds them far past the alert level, so they are not
        // learned, and the next fault of that size is still rare (learned, it would score 0.26).
        let cfg = CalibrationConfig::default();
        let mut c = TailCalibrator::new();
        for (i, r) in magnitudes(600, 5).into_iter().enumerate() {
            c.learn(&cfg, r, false, i as u64 * 60_000);
        }
        let before = c.judge(&cfg, 40.0).unwrap();
        for i in 0..30u64 {
            c.learn(&cfg, 40.0, false, (600 + i) * 60_000);
        }
        for (i, r) in magnitudes(200, 6).into_iter().enumerate() {
            c.learn(&cfg, r, false, (630 + i as u64) * 60_000);
        }
        let after = c.judge(&cfg, 40.0).unwrap();
        assert!(before.score > 0.8, "{before:?}");
        assert!(after.score > 0.7, "{before:?} then {after:?}");
    }

    #[test]
    fn heavy_tails_are_judged_less_extreme_than_light_ones() {
        let cfg = CalibrationConfig::default();
        let mut light = TailCalibrator::new();
        let mut heavy = TailCalibrator::new();
        for r in magnitudes(2_000, 7) {
            light.learn(&cfg, r, false, 0);
            // A Pareto-like transform of the same draws: occasional large values.
            heavy.learn(&cfg, (r * r * r) / 3.0, false, 0);
        }
        let l = light.judge(&cfg, 20.0).unwrap();
        let h = heavy.judge(&cfg, 20.0).unwrap();
        assert!(l.score > h.score, "light {l:?} heavy {h:?}");
    }

    #[test]
    fn invalid_config_is_rejected() {
        let cfg = CalibrationConfig {
            tail_fraction: 0.0,
            ..CalibrationConfig::default()
        };
        assert!(cfg.validate().is_err());
        assert!(CalibrationConfig::default().validate().is_ok());
    }
}
