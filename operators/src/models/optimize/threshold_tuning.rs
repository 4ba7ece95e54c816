//! Threshold tuning for static alert rules: from a replayed series and the incidents that were
//! resolved on it, the threshold that would still have fired on every incident while firing as
//! few false alerts as possible, with the change in alert volume.
//!
//! Alert semantics are Prometheus': the condition (value above the threshold, or below for
//! [`LimitDirection::Below`]) must hold on consecutive samples for `for_ms` before the alert
//! fires (a pending alert that breaks off never fires), and one firing episode is one alert
//! until the condition stops holding. An alert is *true* when it fires inside an incident's
//! window, widened by `incident_lead_ms` before its start (alerts lead the incidents people
//! open); an incident is *caught* when at least one alert fires in its window; every other
//! firing is a false alert.
//!
//! Search: for each incident, the highest threshold that still catches it is the best value
//! of `min(values over a for-long run)` ending inside its window; the lowest of those over all
//! incidents bounds the threshold. Every distinct sample value below that bound is a candidate
//! (thinned to at most `max_candidates` by quantile), and the threshold with the fewest false
//! alerts wins; ties go to the most sensitive one (furthest from missing an incident).
//!
//! The candidates are not replayed one by one (O(n) each). A firing episode is decided by where
//! its run of holding samples starts: a run starting at sample `a` fires at the first sample
//! `f(a)` at least `for` later, which does not depend on the threshold, and it exists exactly
//! for the thresholds at or past the sample before `a` and short of the extreme of
//! `a..=f(a)`. So one pass lists every episode any threshold could fire, with its range of
//! thresholds, and a sweep over the sorted candidates counts them all: O(n·(log c + k) + c·k)
//! for c candidates and k incidents, instead of O(n·c·k). The replay of one threshold stays the
//! reference, and a test holds the two equal.
//!
//! Confidence is the Wilson lower bound (one-sided 95%) of the caught share of incidents: few
//! incidents, little evidence that the threshold generalises.

use serde::{Deserialize, Serialize};

use super::confidence::{wilson_lower_bound, Z_95_ONE_SIDED};
use super::draft::RecommendationDraft;
use crate::models::ModelError;
use crate::records::forecast::LimitDirection;
use crate::records::recommendation::RecommendationCategory;
use crate::series::EventTime;

/// A static alert threshold declared in the rules (`[[threshold]]` in
/// `rules/recommendations.toml`): for every entity whose `[[config]]` declares `config`, an
/// alert fires when the window `feature` of its series named `metric` stays past
/// `config.<config>` (on the `direction` side) for `for_ms`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StaticThreshold {
    /// Name of the declaration (for messages).
    pub name: String,
    /// The `[[config]]` key holding each entity's threshold.
    pub config: String,
    /// Metric name of the thresholded series (exact).
    pub metric: String,
    /// The window feature compared with the threshold.
    pub feature: crate::models::window_stats::Feature,
    /// Which side fires.
    pub direction: LimitDirection,
    /// The rule's `for` clause (ms).
    pub for_ms: u64,
}

/// A resolved incident's interval, inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncidentWindow {
    /// When it started.
    pub start_ms: EventTime,
    /// When it was resolved.
    pub end_ms: EventTime,
}

/// Settings of the tuner.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ThresholdTuningConfig {
    /// Which side of the threshold fires.
    pub direction: LimitDirection,
    /// The rule's `for` clause. Default 5 min.
    pub for_ms: u64,
    /// Alerts up to this long before an incident's start count for it. Default 15 min.
    pub incident_lead_ms: u64,
    /// Candidate thresholds tried at most. Default 512.
    pub max_candidates: usize,
}

impl Default for ThresholdTuningConfig {
    fn default() -> Self {
        Self {
            direction: LimitDirection::Above,
            for_ms: 5 * 60_000,
            incident_lead_ms: 15 * 60_000,
            max_candidates: 512,
        }
    }
}

/// What a threshold does on the replay.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct AlertCounts {
    /// Firing episodes.
    pub alerts: usize,
    /// Episodes outside every incident window.
    pub false_alerts: usize,
    /// Incidents with at least one alert in their window.
    pub incidents_caught: usize,
}

/// What the sweep knows of one candidate threshold.
#[derive(Debug, Clone, Copy, PartialEq)]
struct SweepVerdict {
    false_alerts: usize,
    catches_all: bool,
}

/// The tuner's answer.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ThresholdTuning {
    /// The recommended threshold.
    pub threshold: f64,
    /// The threshold in force.
    pub current: f64,
    /// Replay at the current threshold.
    pub before: AlertCounts,
    /// Replay at the recommended threshold.
    pub after: AlertCounts,
    /// Incidents labelled.
    pub incidents: usize,
}

impl ThresholdTuning {
    /// Change in alert volume, percent (negative: fewer alerts).
    pub fn alert_volume_change_pct(&self) -> f64 {
        change_pct(self.before.alerts, self.after.alerts)
    }

    /// Change in false alerts, percent (negative: fewer).
    pub fn false_alert_change_pct(&self) -> f64 {
        change_pct(self.before.false_alerts, self.after.false_alerts)
    }

    /// As a draft: `threshold`; expected improvement = false alerts avoided, percent of the
    /// current false alerts; confidence as in the module docs.
    pub fn draft(&self) -> RecommendationDraft {
        let mut d = RecommendationDraft::new(
            RecommendationCategory::AlertThresholds,
            "ml:threshold_tuning",
        );
        d.recommended.insert("threshold".into(), self.threshold);
        d.current.insert("threshold".into(), self.current);
        d.expected_improvement_pct = -self.false_alert_change_pct();
        d.confidence = wilson_lower_bound(
            self.after.incidents_caught as u64,
            self.incidents as u64,
            Z_95_ONE_SIDED,
        );
        d.evidence.push(format!(
            "replay: at {:.4} {} alerts ({} false), {}/{} incidents caught; at {:.4} {} alerts ({} false), {}/{} caught",
            self.current,
            self.before.alerts,
            self.before.false_alerts,
            self.before.incidents_caught,
            self.incidents,
            self.threshold,
            self.after.alerts,
            self.after.false_alerts,
            self.after.incidents_caught,
            self.incidents
        ));
        d.evidence.push(format!(
            "alert volume {:+.0}%, false alerts {:+.0}%",
            self.alert_volume_change_pct(),
            self.false_alert_change_pct()
        ));
        d
    }
}

fn change_pct(before: usize, after: usize) -> f64 {
    if before == 0 {
        0.0
    } else {
        100.0 * (after as f64 - before as f64) / before as f64
    }
}

impl ThresholdTuningConfig {
    /// Replays `series` (time-sorted `(ms, value)`) at `threshold`.
    pub fn replay(
        &self,
        series: &[(EventTime, f64)],
        incidents: &[IncidentWindow],
        threshold: f64,
    ) -> AlertCounts {
        let mut counts = AlertCounts::default();
        let mut caught = vec![false; incidents.len()];
        let mut pending: Option<EventTime> = None;
        let mut firing = false;
        for &(t, v) in series {
            if !self.holds(v, threshold) {
                pending = None;
                firing = false;
                continue;
            }
            let since = *pending.get_or_insert(t);
            if !firing && t - since >= self.for_ms {
                firing = true;
                counts.alerts += 1;
                let mut true_alert = false;
                for (i, w) in incidents.iter().enumerate() {
                    if self.in_window(t, w) {
                        caught[i] = true;
                        true_alert = true;
                    }
                }
                if !true_alert {
                    counts.false_alerts += 1;
                }
            }
        }
        counts.incidents_caught = caught.iter().filter(|c| **c).count();
        counts
    }

    /// Recommends a threshold; see the module docs.
    ///
    /// # Errors
    /// An empty series or no incidents ([`ModelError::NotEnoughData`]), a non-finite value or
    /// current threshold, an unsorted series, or an incident that no threshold can catch.
    pub fn recommend(
        &self,
        series: &[(EventTime, f64)],
        incidents: &[IncidentWindow],
        current: f64,
    ) -> Result<ThresholdTuning, ModelError> {
        if series.is_empty() || incidents.is_empty() {
            return Err(ModelError::NotEnoughData {
                needed: 1,
                got: series.len().min(incidents.len()),
            });
        }
        if let Some(i) = series.iter().position(|(_, v)| !v.is_finite()) {
            return Err(ModelError::NonFinite { index: i });
        }
        if !current.is_finite() {
            return Err(ModelError::InvalidParameter {
                name: "current",
                reason: "the current threshold must be finite".into(),
            });
        }
        if series.windows(2).any(|w| w[1].0 < w[0].0) {
            return Err(ModelError::InvalidParameter {
                name: "series",
                reason: "must be sorted by time".into(),
            });
        }
        // Work in "above" terms: for a below-threshold rule, negate values and thresholds.
        let sign = match self.direction {
            LimitDirection::Above => 1.0,
            LimitDirection::Below => -1.0,
        };
        let mut bound = f64::INFINITY;
        for (k, w) in incidents.iter().enumerate() {
            let best = self.best_catch(series, w, sign).ok_or_else(|| {
                ModelError::InvalidParameter {
                    name: "incidents",
                    reason: format!(
                        "incident {k} has no for-long run of samples in its window; no threshold catches it"
                    ),
                }
            })?;
            bound = bound.min(best);
        }
        // Candidates: distinct (signed) values strictly below the bound, thinned by quantile.
        let mut values: Vec<f64> = series
            .iter()
            .map(|(_, v)| sign * v)
            .filter(|v| *v < bound)
            .collect();
        values.sort_by(f64::total_cmp);
        values.dedup();
        let step = (values.len() / self.max_candidates.max(1)).max(1);
        let mut candidates: Vec<f64> = values.iter().step_by(step).copied().collect();
        if let Some(last) = values.last() {
            candidates.push(*last);
        }
        if candidates.is_empty() {
            // Every sample is at or above the bound: just below it is the only choice.
            candidates.push(bound - bound.abs().max(1.0) * 1e-9);
        }
        candidates.sort_by(f64::total_cmp);
        let verdicts = self.sweep(series, incidents, sign, &candidates);
        let mut best: Option<(f64, usize)> = None;
        for (c, v) in candidates.iter().zip(&verdicts) {
            if !v.catches_all {
                continue;
            }
            if best.is_none_or(|(_, fewest)| v.false_alerts < fewest) {
                best = Some((sign * c, v.false_alerts));
            }
        }
        let (threshold, _) = best.ok_or_else(|| {
            ModelError::Numerical("no candidate threshold catches every incident".into())
        })?;
        Ok(ThresholdTuning {
            threshold,
            current,
            before: self.replay(series, incidents, current),
            after: self.replay(series, incidents, threshold),
            incidents: incidents.len(),
        })
    }

    /// For every signed threshold of `candidates` (sorted ascending): its false alerts and
    /// whether it catches every incident, as [`Self::replay`] would count them (see the module
    /// docs for how).
    fn sweep(
        &self,
        series: &[(EventTime, f64)],
        incidents: &[IncidentWindow],
        sign: f64,
        candidates: &[f64],
    ) -> Vec<SweepVerdict> {
        let n = candidates.len();
        // Difference arrays over candidate indices: false alerts, and alerts per incident.
        let mut false_diff = vec![0i64; n + 1];
        let mut caught_diff = vec![vec![0i64; n + 1]; incidents.len()];
        // The index range of candidates c with from <= c < to.
        let range = |from: f64, to: f64| {
            (
                candidates.partition_point(|c| *c < from),
                candidates.partition_point(|c| *c < to),
            )
        };
        let signed = |i: usize| sign * series[i].1;
        // The run starting at `a` fires at `fire`; `low` keeps the indices of a..=fire in
        // increasing signed value (a sliding minimum).
        let mut fire = 0;
        let mut low: std::collections::VecDeque<usize> = std::collections::VecDeque::new();
        for a in 0..series.len() {
            fire = fire.max(a);
            while fire < series.len() && series[fire].0 - series[a].0 < self.for_ms {
                fire += 1;
            }
            if fire == series.len() {
                // No later start reaches `for` either: times only grow.
                break;
            }
            let next = low.back().map_or(a, |&b| b + 1).max(a);
            for i in next..=fire {
                while low.back().is_some_and(|&b| signed(b) >= signed(i)) {
                    low.pop_back();
                }
                low.push_back(i);
            }
            while low.front().is_some_and(|&b| b < a) {
                low.pop_front();
            }
            let to = low.front().map_or(f64::NEG_INFINITY, |&b| signed(b));
            let from = if a == 0 {
                f64::NEG_INFINITY
            } else {
                signed(a - 1)
            };
            let (lo, hi) = range(from, to);
            if lo >= hi {
                continue;
            }
            let t = series[fire].0;
            let mut inside = false;
            for (k, w) in incidents.iter().enumerate() {
                if self.in_window(t, w) {
                    inside = true;
                    caught_diff[k][lo] += 1;
                    caught_diff[k][hi] -= 1;
                }
            }
            if !inside {
                false_diff[lo] += 1;
                false_diff[hi] -= 1;
            }
        }
        let mut false_alerts = 0i64;
        let mut caught = vec![0i64; incidents.len()];
        (0..n)
            .map(|j| {
                false_alerts += false_diff[j];
                for (c, d) in caught.iter_mut().zip(&caught_diff) {
                    *c += d[j];
                }
                SweepVerdict {
                    false_alerts: false_alerts.max(0) as usize,
                    catches_all: caught.iter().all(|c| *c > 0),
                }
            })
            .collect()
    }

    fn holds(&self, v: f64, threshold: f64) -> bool {
        match self.direction {
            LimitDirection::Above => v > threshold,
            LimitDirection::Below => v < threshold,
        }
    }

    fn in_window(&self, t: EventTime, w: &IncidentWindow) -> bool {
        t >= w.start_ms.saturating_sub(self.incident_lead_ms) && t <= w.end_ms
    }

    /// Highest signed threshold that still fires inside `w`: the best, over firing times in the
    /// window, of the minimum signed value over the `for`-long run ending there.
    fn best_catch(
        &self,
        series: &[(EventTime, f64)],
        w: &IncidentWindow,
        sign: f64,
    ) -> Option<f64> {
        let mut best: Option<f64> = None;
        for (i, &(t, _)) in series.iter().enumerate() {
            if !self.in_window(t, w) {
                continue;
            }
            // The run must reach back at least `for_ms`: walk back to the first sample at or
            // before t − for_ms.
            let mut low = f64::INFINITY;
            let mut reached = false;
            for &(tj, vj) in series[..=i].iter().rev() {
                low = low.min(sign * vj);
                if t - tj >= self.for_ms {
                    reached = true;
                    break;
                }
            }
            if reached {
                best = Some(best.map_or(low, |b: f64| b.max(low)));
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    const MIN: u64 = 60_000;

    /// A week of minutes: baseline 50 ± noise, 40 short noise spikes (2–8 min, +15..35),
    /// and 8 incidents (20–60 min, +20..40 plateau) — seeded.
    fn replay(seed: u64) -> (Vec<(u64, f64)>, Vec<IncidentWindow>) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let n = 7 * 1440;
        let mut v: Vec<f64> = (0..n).map(|_| 50.0 + rng.random_range(-5.0..5.0)).collect();
        for _ in 0..40 {
            let at = rng.random_range(0..n - 10);
            let len = rng.random_range(2..=8);
            let h = rng.random_range(15.0..35.0);
            for x in v.iter_mut().skip(at).take(len) {
                *x += h;
            }
        }
        let mut incidents = Vec::new();
        for k in 0..8u64 {
            let at = (k as usize * n / 8) + rng.random_range(60..600);
            let len = rng.random_range(20..=60);
            let h = rng.random_range(20.0..40.0);
            for x in v.iter_mut().skip(at).take(len) {
                *x += h;
            }
            incidents.push(IncidentWindow {
                start_ms: (at as u64 + 3) * MIN,
                end_ms: (at + len) as u64 * MIN,
            });
        }
        let series = v
            .into_iter()
            .enumerate()
            .map(|(i, x)| (i as u64 * MIN, x))
            .collect();
        (series, incidents)
    }

    #[test]
    fn keeps_every_incident_and_cuts_false_alerts() {
        let cfg = ThresholdTuningConfig::default();
        for seed in [11, 12, 13] {
            let (series, incidents) = replay(seed);
            // A noisy rule: 58 fires on the spikes and on noise runs.
            let t = cfg.recommend(&series, &incidents, 58.0).unwrap();
            println!(
                "seed {seed}: threshold 58.0 → {:.2}: alerts {} → {} ({:+.0}%), false {} → {} ({:+.0}%), incidents caught {}/{} → {}/{}",
                t.threshold,
                t.before.alerts,
                t.after.alerts,
                t.alert_volume_change_pct(),
                t.before.false_alerts,
                t.after.false_alerts,
                t.false_alert_change_pct(),
                t.before.incidents_caught,
                t.incidents,
                t.after.incidents_caught,
                t.incidents
            );
            assert_eq!(t.after.incidents_caught, incidents.len());
            assert!(t.after.false_alerts < t.before.false_alerts);
            assert!(t.false_alert_change_pct() <= -25.0, "{t:?}");
            let d = t.draft();
            assert!(d.confidence > 0.5 && d.confidence < 1.0);
            assert_eq!(d.value("threshold"), Some(t.threshold));
        }
    }

    #[test]
    fn below_direction_mirrors_above() {
        let (series, incidents) = replay(5);
        let neg: Vec<(u64, f64)> = series.iter().map(|(t, v)| (*t, -v)).collect();
        let up = ThresholdTuningConfig::default()
            .recommend(&series, &incidents, 58.0)
            .unwrap();
        let down = ThresholdTuningConfig {
            direction: LimitDirection::Below,
            ..ThresholdTuningConfig::default()
        }
        .recommend(&neg, &incidents, -58.0)
        .unwrap();
        assert!((up.threshold + down.threshold).abs() < 1e-9);
        assert_eq!(up.after, down.after);
    }

    /// The sweep counts what replaying each candidate one by one counts: irregular sampling,
    /// ties, both directions, `for` of zero and of several samples.
    #[test]
    fn the_sweep_agrees_with_replaying_each_candidate() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for case in 0..40 {
            let n = rng.random_range(1..300);
            let mut t = 0u64;
            let series: Vec<(u64, f64)> = (0..n)
                .map(|_| {
                    t += rng.random_range(1..4) * MIN;
                    (t, f64::from(rng.random_range(0..12u8)))
                })
                .collect();
            let incidents: Vec<IncidentWindow> = (0..rng.random_range(1..4))
                .map(|_| {
                    let start = rng.random_range(0..=t);
                    IncidentWindow {
                        start_ms: start,
                        end_ms: start + rng.random_range(0..40) * MIN,
                    }
                })
                .collect();
            let cfg = ThresholdTuningConfig {
                direction: if case % 2 == 0 {
                    LimitDirection::Above
                } else {
                    LimitDirection::Below
                },
                for_ms: [0, MIN, 5 * MIN][case % 3],
                ..ThresholdTuningConfig::default()
            };
            let sign = if case % 2 == 0 { 1.0 } else { -1.0 };
            let mut candidates: Vec<f64> = (-1..13).map(|v| sign * f64::from(v) + 0.5).collect();
            candidates.extend((0..12).map(|v| sign * f64::from(v)));
            candidates.sort_by(f64::total_cmp);
            let swept = cfg.sweep(&series, &incidents, sign, &candidates);
            for (c, v) in candidates.iter().zip(&swept) {
                let r = cfg.replay(&series, &incidents, sign * c);
                assert_eq!(v.false_alerts, r.false_alerts, "case {case}, threshold {c}");
                assert_eq!(
                    v.catches_all,
                    r.incidents_caught == incidents.len(),
                    "case {case}, threshold {c}"
                );
            }
        }
    }

    #[test]
    fn rejects_bad_input() {
        let cfg = ThresholdTuningConfig::default();
        let w = [IncidentWindow {
            start_ms: 0,
            end_ms: 10,
        }];
        assert!(cfg.recommend(&[], &w, 1.0).is_err());
        assert!(cfg.recommend(&[(0, f64::NAN)], &w, 1.0).is_err());
        assert!(cfg.recommend(&[(5, 1.0), (0, 1.0)], &w, 1.0).is_err());
    }
}
