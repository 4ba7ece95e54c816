//! Calibration: turns a detector's raw score into the probability that the recent behaviour is
//! abnormal, measured against that detector's own recent scores.
//!
//! Raw scores of different detectors, and of one detector on different series, live on different
//! scales: a |z| of 6 is rare on a quiet series and common on a bursty one. The strong detectors
//! of the Numenta Anomaly Benchmark (HTM's "anomaly likelihood", CAD OSE, ARTime) therefore judge
//! a raw score by how unusual it is *for that detector on that series*. We do the same:
//!
//! * each raw score `r ≥ 0` is compressed as `t = ln(1 + r)`, which turns the heavy right tail of
//!   deviation magnitudes into something a Gaussian describes well enough for a tail estimate;
//! * the recent distribution of `t̄` (the mean of the last `short_len` values of `t`) is tracked
//!   by exponentially weighted mean and variance with a memory of `memory` scores — O(1) time and
//!   memory per detector, where a sliding window of thousands of scores per series would not fit
//!   the engine's state budget;
//! * the tail probability of the current `t̄` is `q = Q((t̄ − μ) / σ)` (Q the standard normal
//!   survival function), and the calibrated score is its log scale, `min(1, −log10(q) / decades)`,
//!   as HTM's `computeLogLikelihood` does (with 10 decades: q = 10⁻⁵ scores 0.5).
//!
//! The score is judged against the distribution *before* it is added, so a lone spike is not
//! diluted by itself; once added it widens σ, which damps the repeats that follow a burst.

use serde::{Deserialize, Serialize};

use crate::models::ModelError;

/// Settings of the tail calibrator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CalibrationConfig {
    /// Effective number of recent scores the distribution remembers (exponential weighting with
    /// α = 1 / memory). Default 1000: about three days of 5-minute rows, 17 hours of 1-minute
    /// windows, long enough to see a daily cycle's worth of ordinary scores.
    pub memory: usize,
    /// Raw scores averaged before judging (1 = judge each score alone). Default 1: a spike is
    /// one window long, and averaging it with quiet neighbours would hide it.
    pub short_len: usize,
    /// Scores seen before the calibrator answers at all. Default 30: fewer make σ a guess.
    pub min_history: usize,
    /// Decades of tail probability mapped onto [0, 1]. Default 10 (HTM's choice): q = 10⁻⁵
    /// scores 0.5, q = 10⁻¹⁰ or less scores 1.
    pub decades: f64,
    /// Smallest σ of the compressed scores, so a detector that has only ever scored 0 does not
    /// call its first non-zero score infinitely unlikely. Default 0.05 (5% in ln(1 + r) units).
    pub min_sigma: f64,
}

impl Default for CalibrationConfig {
    fn default() -> Self {
        CalibrationConfig {
            memory: 1000,
            short_len: 1,
            min_history: 30,
            decades: 10.0,
            min_sigma: 0.05,
        }
    }
}

impl CalibrationConfig {
    /// Checks every parameter's range.
    pub fn validate(&self) -> Result<(), ModelError> {
        let bad = |name, reason: String| Err(ModelError::InvalidParameter { name, reason });
        if self.memory < 2 {
            return bad("memory", format!("must be at least 2, got {}", self.memory));
        }
        if self.short_len == 0 || self.short_len > 64 {
            return bad(
                "short_len",
                format!("must be between 1 and 64, got {}", self.short_len),
            );
        }
        if self.min_history < 2 {
            return bad(
                "min_history",
                format!("must be at least 2, got {}", self.min_history),
            );
        }
        if !(self.decades.is_finite() && self.decades > 0.0) {
            return bad("decades", format!("must be positive, got {}", self.decades));
        }
        if !(self.min_sigma.is_finite() && self.min_sigma > 0.0) {
            return bad(
                "min_sigma",
                format!("must be positive, got {}", self.min_sigma),
            );
        }
        Ok(())
    }
}

/// A calibrated score.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Calibrated {
    /// Tail probability of the recent raw scores under their own recent distribution.
    pub tail: f64,
    /// Log-scaled score in [0, 1]: `min(1, −log10(tail) / decades)`.
    pub score: f64,
}

/// The calibrator of one detector on one series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TailCalibrator {
    mean: f64,
    var: f64,
    seen: u64,
    /// The last `short_len` compressed scores, oldest first.
    short: Vec<f64>,
    short_at: usize,
}

impl TailCalibrator {
    /// An empty calibrator.
    pub fn new() -> Self {
        TailCalibrator {
            mean: 0.0,
            var: 0.0,
            seen: 0,
            short: Vec::new(),
            short_at: 0,
        }
    }

    /// Number of raw scores learned so far.
    pub fn seen(&self) -> u64 {
        self.seen
    }

    /// Judges `raw` against the distribution so far (`None` during warm-up or for a non-finite
    /// or negative raw score), then learns it.
    pub fn observe(&mut self, cfg: &CalibrationConfig, raw: f64) -> Option<Calibrated> {
        if !(raw.is_finite() && raw >= 0.0) {
            return None;
        }
        let t = raw.ln_1p();
        // The short mean including the new score.
        if self.short.len() < cfg.short_len {
            self.short.push(t);
        } else if !self.short.is_empty() {
            let at = self.short_at % self.short.len();
            self.short[at] = t;
            self.short_at = (at + 1) % self.short.len();
        }
        let short_mean = self.short.iter().sum::<f64>() / self.short.len().max(1) as f64;
        let out = (self.seen >= cfg.min_history as u64).then(|| {
            let sigma = self.var.sqrt().max(cfg.min_sigma);
            let tail = normal_tail((short_mean - self.mean) / sigma);
            Calibrated {
                tail,
                score: tail_to_score(tail, cfg.decades),
            }
        });
        // Learn the short mean: the statistic that is judged is the one whose spread is tracked.
        self.seen += 1;
        if self.seen == 1 {
            self.mean = short_mean;
            self.var = 0.0;
        } else {
            // Until `memory` scores are seen, weight them equally (α = 1/n), then exponentially.
            let alpha = 1.0 / (self.seen.min(cfg.memory as u64) as f64);
            let delta = short_mean - self.mean;
            self.mean += alpha * delta;
            self.var = (1.0 - alpha) * (self.var + alpha * delta * delta);
        }
        out
    }

    /// How much history the calibration rests on, in (0, 1]: reaches 1 at `memory` scores.
    pub fn fill(&self, cfg: &CalibrationConfig) -> f64 {
        (self.seen as f64 / cfg.memory as f64).clamp(1e-3, 1.0)
    }

    /// The raw score at which a lone score (short mean of one) would calibrate to `score`:
    /// inverts `t = ln(1 + r)`, the Gaussian tail and the log scale. `None` before any history.
    pub fn boundary(&self, cfg: &CalibrationConfig, score: f64) -> Option<f64> {
        if self.seen == 0 {
            return None;
        }
        let tail = score_to_tail(score, cfg.decades);
        let sigma = self.var.sqrt().max(cfg.min_sigma);
        let t = self.mean + sigma * super::detector_set::normal_tail_inverse(tail);
        Some(t.exp_m1().max(0.0))
    }

    /// Approximate heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.short.capacity() * std::mem::size_of::<f64>()
    }
}

impl Default for TailCalibrator {
    fn default() -> Self {
        Self::new()
    }
}

/// `min(1, −log10(tail) / decades)`, 0 for tails of 1 or more.
pub fn tail_to_score(tail: f64, decades: f64) -> f64 {
    if !(tail > 0.0) {
        return 1.0;
    }
    (-tail.log10() / decades).clamp(0.0, 1.0)
}

/// The inverse of [`tail_to_score`]: the tail probability a score stands for.
pub fn score_to_tail(score: f64, decades: f64) -> f64 {
    10f64.powf(-score.clamp(0.0, 1.0) * decades)
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
        assert!((tail_to_score(1e-5, 10.0) - 0.5).abs() < 1e-12);
        assert_eq!(tail_to_score(1e-30, 10.0), 1.0);
        assert_eq!(tail_to_score(0.0, 10.0), 1.0);
        assert_eq!(tail_to_score(1.0, 10.0), 0.0);
        assert!((score_to_tail(0.5, 10.0) - 1e-5).abs() < 1e-15);
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
                below += usize::from(x.tail < 0.01);
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

    #[test]
    fn invalid_config_is_rejected() {
        let cfg = CalibrationConfig {
            short_len: 0,
            ..CalibrationConfig::default()
        };
        assert!(cfg.validate().is_err());
        assert!(CalibrationConfig::default().validate().is_ok());
    }
}
