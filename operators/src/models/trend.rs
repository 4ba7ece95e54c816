//! Trend detector: is the series climbing (or falling) faster than it usually does?
//!
//! A memory leak or a filling disk is a ramp. The robust z-score follows a steady slope within a
//! few windows (that is what keeps it quiet on daily cycles), so a ramp never looks far from its
//! expected value, and a slow leak goes unreported until the OOM kill. This detector judges the
//! slope itself against the series' own usual slopes:
//! * the steady slope over the last `span` values comes from the medians of its first, middle
//!   and last thirds: each half's slope, and the smaller of the two when they agree in sign,
//!   else 0. Medians, so a spike inside the span does not tilt it the way it tilts a
//!   least-squares fit; both halves, so a step (which one half sees) is not a trend;
//! * every `stride`-th end-to-end slope (last third against first, noise and all) is kept,
//!   `history_len` of them (a day of 1-minute windows by default), and the steady slope is
//!   scored as a robust z-score against their median and MAD. Daily ramps are part of that
//!   history, so only a slope well outside the series' usual range scores high. (Steady slopes
//!   are 0 half the time on noise, so their own MAD would be 0 and call any slope extreme.)
//!
//! The z-score is already relative to the series' own history, so fusion maps it to a score on a
//! fixed scale (`limit`) instead of the tail calibration the other detectors get. Calibrated,
//! a leak scored only 0.5–0.77: the calibration learns the 18–22 σ slopes that other faults
//! (a traffic drop moves memory too) leave on the series, fits a heavy tail to them, and then
//! finds a 300 σ leak unremarkable. On the simulator's memory series (slopes over 20 windows)
//! the leaks' slopes lie 300–700 σ from the usual ones, while no slope outside a fault exceeds 7
//! (docs/design.md, "Detection"). Latency and error ratios have far heavier slope tails, which
//! is why the shipped configuration points this detector at memory gauges only (a plan's
//! `metrics`).

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::deviation::{check_min_relative_scale, scale_floor, Deviation};
use super::robust_z::{RollingRobust, MAD_TO_SIGMA};
use crate::models::ModelError;

/// Largest `span`: a third of it is sorted on the stack every window.
const MAX_SPAN: usize = 192;

/// Settings of the trend detector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrendConfig {
    /// Values the slope is measured over (default 6: six 1-minute windows, so a leak that
    /// fills memory within the hour is reported within five minutes of its start; on the
    /// simulator, spans of 12 and 20 reported leaks only after 6–9 minutes, with the same
    /// false alerts).
    pub span: usize,
    /// Slopes kept as the series' usual behaviour (default 720).
    pub history_len: usize,
    /// Windows between two kept slopes (default 2: with 720 kept, a day of 1-minute windows).
    /// Successive slopes share most of their values, so keeping every one would add memory, not
    /// information.
    pub stride: usize,
    /// Slopes kept before anything is scored (default 30).
    pub warmup_len: usize,
    /// Floor of the slope's σ, as a fraction of |level| per `span` (default 0.001, as the robust
    /// detector): a series whose slope was always exactly zero would otherwise call any change
    /// infinitely anomalous.
    pub min_relative_scale: f64,
    /// |z| of the slope that scores 0.5 (default 40; scores follow
    /// [`z_to_score`](super::detector_set::z_to_score), so the detector alone reaches the
    /// lowest alert band at about 50). On the alert-intelligence benchmark every one of the 27
    /// leaks crossed it within 5 minutes; on six 24-hour simulator runs a limit as low as 12
    /// raised no false alert, so 40 leaves a wide margin for noisier gauges.
    pub limit: f64,
}

impl Default for TrendConfig {
    fn default() -> Self {
        TrendConfig {
            span: 6,
            history_len: 720,
            stride: 2,
            warmup_len: 30,
            min_relative_scale: 0.001,
            limit: 40.0,
        }
    }
}

impl TrendConfig {
    /// Checks every parameter's range.
    pub fn validate(&self) -> Result<(), ModelError> {
        let span = self.span as f64;
        ModelError::require(
            (6..=MAX_SPAN).contains(&self.span),
            "span",
            "between 6 and 192",
            span,
        )?;
        let n = self.history_len as f64;
        ModelError::require(self.history_len >= 3, "history_len", "at least 3", n)?;
        ModelError::require(self.stride >= 1, "stride", "at least 1", self.stride as f64)?;
        let w = self.warmup_len as f64;
        ModelError::require(
            self.warmup_len >= 3 && self.warmup_len <= self.history_len,
            "warmup_len",
            "between 3 and history_len",
            w,
        )?;
        ModelError::require(
            self.limit.is_finite() && self.limit > 0.0,
            "limit",
            "positive",
            self.limit,
        )?;
        check_min_relative_scale(self.min_relative_scale)
    }

    /// Values in each of the span's three "thirds": at least 3, so that a median sets one
    /// spike aside and no single step can move two of them (on short spans the thirds
    /// overlap: the middle one shares values with both ends).
    fn third(&self) -> usize {
        self.span.div_ceil(3).max(3)
    }

    /// Distance, in values, between the centres of the first and last thirds.
    fn distance(&self) -> f64 {
        (self.span - self.third()) as f64
    }

    /// The slope the span held throughout (value units per window): the medians of its first,
    /// middle and last thirds give the slope of each half; a ramp moves both halves the same
    /// way, so the one that moved less, or 0 when they disagree. A step inside the span moves
    /// one half only (every third lies wholly before or after it, or holds it in a minority
    /// its median sets aside) and scores nothing here: the robust detector reports steps, and
    /// a step scored as a slope would teach the slope history that slopes are common.
    ///
    /// Also gives the slope from the first third to the last, which is what the history keeps
    /// (noise and all, so its spread is the series' usual wander), and the last third's median
    /// (the level the scale floor is relative to).
    fn slopes(&self, recent: &VecDeque<f64>) -> SpanSlopes {
        let third = self.third();
        let middle_start = (self.span - third) / 2;
        let last_start = self.span - third;
        let first = median_of(recent.iter().take(third).copied());
        let middle = median_of(recent.iter().skip(middle_start).take(third).copied());
        let last = median_of(recent.iter().skip(last_start).copied());
        // Centres differ by the starts' distances (every third has the same length).
        let (a, b) = (
            (middle - first) / middle_start as f64,
            (last - middle) / (last_start - middle_start) as f64,
        );
        let steady = if a * b <= 0.0 || !a.is_finite() || !b.is_finite() {
            0.0
        } else if a.abs() < b.abs() {
            a
        } else {
            b
        };
        SpanSlopes {
            steady,
            end_to_end: (last - first) / last_start as f64,
            level: last,
        }
    }
}

/// What [`TrendConfig::slopes`] reads from one span.
struct SpanSlopes {
    /// The slope both halves held (0 when they disagree): what is scored.
    steady: f64,
    /// First third to last: what the history keeps.
    end_to_end: f64,
    /// Median of the last third.
    level: f64,
}

/// Running trend state of one feature of one series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trend {
    /// The last `span` values, oldest first.
    recent: VecDeque<f64>,
    /// Kept end-to-end slopes (value units per window).
    slopes: RollingRobust,
    /// Full spans seen, to keep every `stride`-th slope.
    spans_seen: u64,
}

impl Trend {
    /// An empty detector.
    pub fn new(cfg: &TrendConfig) -> Self {
        Trend {
            recent: VecDeque::with_capacity(cfg.span),
            slopes: RollingRobust::new(cfg.history_len),
            spans_seen: 0,
        }
    }

    /// Scores the slope ending at `value` (`None` during warm-up or for a non-finite value), then
    /// learns it. The deviation's expected value is where the recent values would be had they
    /// moved at the usual slope; its scale is one σ of the usual slopes over the span.
    pub fn observe(&mut self, cfg: &TrendConfig, value: f64) -> Option<Deviation> {
        if !value.is_finite() {
            return None;
        }
        if self.recent.len() == cfg.span {
            self.recent.pop_front();
        }
        self.recent.push_back(value);
        if self.recent.len() < cfg.span {
            return None;
        }
        let span = cfg.slopes(&self.recent);
        let slope = span.steady;
        let out = if self.slopes.len() >= cfg.warmup_len {
            let usual = self.slopes.median().unwrap_or(0.0);
            let floor = scale_floor(span.level, cfg.min_relative_scale) / cfg.span as f64;
            let sigma = (MAD_TO_SIGMA * self.slopes.mad().unwrap_or(0.0)).max(floor);
            let excess = (slope - usual) * cfg.distance();
            Some(Deviation {
                magnitude: ((slope - usual) / sigma).abs().min(f64::MAX),
                expected: value - excess,
                scale: sigma * cfg.distance(),
            })
        } else {
            None
        };
        if self.spans_seen.is_multiple_of(cfg.stride as u64) {
            self.slopes.push(span.end_to_end);
        }
        self.spans_seen += 1;
        out
    }

    /// Approximate heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.recent.capacity() * std::mem::size_of::<f64>() + self.slopes.heap_bytes()
    }
}

/// Median of at most `MAX_SPAN / 3 + 1` values, sorted on the stack (no allocation per window).
fn median_of(values: impl Iterator<Item = f64>) -> f64 {
    let mut buf = [0.0f64; MAX_SPAN / 3 + 1];
    let mut n = 0;
    for v in values.take(buf.len()) {
        buf[n] = v;
        n += 1;
    }
    let s = &mut buf[..n];
    s.sort_unstable_by(f64::total_cmp);
    if n % 2 == 1 {
        s[n / 2]
    } else {
        0.5 * (s[n / 2 - 1] + s[n / 2])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::series::mix64;

    /// Deterministic noise in [−0.5, 0.5).
    /// (A full mix, splitmix64's finaliser: a bare multiply-add of `i` gives an evenly spaced
    /// sequence whose successive differences repeat, which a slope test would read as a
    /// pattern.)
    fn noise(i: u64) -> f64 {
        (mix64(i) >> 11) as f64 / (1u64 << 53) as f64 - 0.5
    }

    /// Feeds `n` values of `f(i)` from index `from`; returns the largest magnitude scored.
    fn feed(d: &mut Trend, cfg: &TrendConfig, from: u64, n: u64, f: impl Fn(u64) -> f64) -> f64 {
        (from..from + n)
            .filter_map(|i| d.observe(cfg, f(i)))
            .map(|x| x.magnitude)
            .fold(0.0, f64::max)
    }

    #[test]
    fn a_ramp_steeper_than_usual_scores_high_and_a_usual_one_does_not() {
        let cfg = TrendConfig::default();
        let mut d = Trend::new(&cfg);
        // A slow daily-like drift with noise: the usual slopes.
        let drift = |i: u64| 100.0 + 0.01 * i as f64 + noise(i);
        let quiet = feed(&mut d, &cfg, 0, 1500, drift);
        assert!(quiet < 6.0, "usual drift scored {quiet}");
        // A leak: ten units per window on top of it (about 35 noise σ per window; the slope of
        // a 6-value span carries about a third of a value's noise σ).
        let leak = feed(&mut d, &cfg, 1500, 20, |i| {
            drift(i) + 10.0 * (i - 1500) as f64
        });
        assert!(leak > cfg.limit, "leak scored {leak}");
    }

    #[test]
    fn a_spike_inside_the_span_does_not_tilt_the_slope() {
        let cfg = TrendConfig::default();
        let mut d = Trend::new(&cfg);
        let flat = |i: u64| 50.0 + noise(i);
        feed(&mut d, &cfg, 0, 500, flat);
        let spiked = feed(&mut d, &cfg, 500, 30, |i| {
            if i == 510 {
                500.0
            } else {
                flat(i)
            }
        });
        assert!(spiked < 6.0, "a single spike scored {spiked}");
    }

    #[test]
    fn a_step_is_not_a_trend() {
        let cfg = TrendConfig::default();
        let mut d = Trend::new(&cfg);
        feed(&mut d, &cfg, 0, 500, |i| 20.0 + noise(i));
        let step = feed(&mut d, &cfg, 500, 40, |i| 40.0 + noise(i));
        assert!(step < 6.0, "a step scored {step}");
    }

    #[test]
    fn the_expected_value_is_the_level_at_the_usual_slope() {
        let cfg = TrendConfig::default();
        let mut d = Trend::new(&cfg);
        feed(&mut d, &cfg, 0, 500, |i| 10.0 + 0.1 * noise(i));
        let mut last = None;
        for i in 500..520u64 {
            last = d.observe(&cfg, 10.0 + (i - 499) as f64);
        }
        let dev = last.expect("warm");
        // The ramp reached 30 (one unit per window); at the usual (flat) slope the values would
        // have stayed where they were one span-distance (3 windows) ago.
        let back = 30.0 - cfg.distance();
        assert!(
            (dev.expected - back).abs() < 0.5,
            "expected {}",
            dev.expected
        );
        assert!(dev.scale > 0.0);
    }

    #[test]
    fn warm_up_and_non_finite_values_score_nothing() {
        let cfg = TrendConfig::default();
        let mut d = Trend::new(&cfg);
        let needed = cfg.span + (cfg.warmup_len - 1) * cfg.stride;
        for i in 0..needed as u64 {
            assert!(d.observe(&cfg, noise(i)).is_none(), "scored at {i}");
        }
        assert!(d.observe(&cfg, f64::NAN).is_none());
        assert!(d.observe(&cfg, noise(1)).is_some());
    }

    #[test]
    fn a_constant_series_gets_a_finite_score() {
        let cfg = TrendConfig::default();
        let mut d = Trend::new(&cfg);
        feed(&mut d, &cfg, 0, 300, |_| 7.0);
        let ramp = feed(&mut d, &cfg, 300, 20, |i| 7.0 + 0.01 * (i - 300) as f64);
        assert!(ramp.is_finite() && ramp > 0.0, "{ramp}");
    }

    #[test]
    fn invalid_config() {
        for bad in [
            TrendConfig {
                span: 3,
                ..Default::default()
            },
            TrendConfig {
                stride: 0,
                ..Default::default()
            },
            TrendConfig {
                warmup_len: 1000,
                ..Default::default()
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
        assert!(TrendConfig::default().validate().is_ok());
    }
}
