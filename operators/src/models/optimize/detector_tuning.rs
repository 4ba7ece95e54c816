//! Detector tuning: per entity, when its alerts keep resolving quickly without ever joining an
//! incident, recommend a less sensitive alert threshold (score band) — by how much, computed from
//! the peak scores of those noise alerts.
//!
//! The tracker is fed each alert when it resolves ([`AlertStats::record`]): its peak score, how
//! long it was open and whether it joined an incident. Alerts shorter than `quick_ms` that never
//! joined an incident are *noise*. A recommendation is made once at least `min_alerts` alerts
//! were seen and the Wilson lower bound (one-sided 95%) of the noise share reaches
//! `noise_share_trigger` — "consistently", not by luck of a few alerts. That bound is also the
//! confidence.
//!
//! The new threshold is the `suppress_quantile` of the noise alerts' peak scores (it silences
//! that share of them), capped at `1 − incident_margin` of the way from the current threshold to
//! the lowest peak of any alert that joined an incident, and only ever above the current one. Expected improvement: the share
//! of all recorded alerts whose peak lies at or below the new threshold — the alert volume
//! removed (none of them joined an incident, by construction of the cap).
//!
//! Peaks are kept in bounded, oldest-first buffers (`max_kept`), so the state stays small and
//! follows the detector as it changes.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::confidence::{wilson_lower_bound, Z_95_ONE_SIDED};
use super::draft::RecommendationDraft;
use crate::models::ModelError;
use crate::records::recommendation::RecommendationCategory;

/// Settings of the detector tuner.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DetectorTuningConfig {
    /// An alert resolved within this time without an incident is noise. Default 10 min.
    pub quick_ms: u64,
    /// Alerts needed before recommending. Default 10.
    pub min_alerts: u64,
    /// Lower bound of the noise share that triggers a recommendation. Default 0.6.
    pub noise_share_trigger: f64,
    /// Quantile of noise peaks the new threshold sits at. Default 0.8.
    pub suppress_quantile: f64,
    /// Share of the gap between the current threshold and the lowest incident alert peak that
    /// is kept free. Default 0.5 (the threshold moves at most half-way to that peak).
    pub incident_margin: f64,
    /// Peaks kept per kind. Default 256.
    pub max_kept: usize,
}

impl Default for DetectorTuningConfig {
    fn default() -> Self {
        Self {
            quick_ms: 10 * 60_000,
            min_alerts: 10,
            noise_share_trigger: 0.6,
            suppress_quantile: 0.8,
            incident_margin: 0.5,
            max_kept: 256,
        }
    }
}

impl DetectorTuningConfig {
    /// Checks every parameter's range.
    pub fn validate(&self) -> Result<(), ModelError> {
        for (name, p) in [
            ("noise_share_trigger", self.noise_share_trigger),
            ("suppress_quantile", self.suppress_quantile),
            ("incident_margin", self.incident_margin),
        ] {
            ModelError::require((0.0..=1.0).contains(&p), name, "in [0, 1]", p)?;
        }
        if self.max_kept == 0 {
            return Err(ModelError::InvalidParameter {
                name: "max_kept",
                reason: "must be at least 1".into(),
            });
        }
        Ok(())
    }

    /// Validates and starts an empty tracker.
    pub fn start(&self) -> Result<AlertStats, ModelError> {
        self.validate()?;
        Ok(AlertStats {
            cfg: self.clone(),
            alerts: 0,
            noise: 0,
            incident: 0,
            noise_peaks: VecDeque::new(),
            incident_peaks: VecDeque::new(),
        })
    }
}

/// Alert statistics of one entity (serde state: checkpointable).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertStats {
    cfg: DetectorTuningConfig,
    alerts: u64,
    noise: u64,
    incident: u64,
    noise_peaks: VecDeque<f64>,
    incident_peaks: VecDeque<f64>,
}

impl AlertStats {
    /// Records one resolved alert.
    ///
    /// # Errors
    /// A non-finite peak score (nothing is recorded).
    pub fn record(
        &mut self,
        peak_score: f64,
        open_ms: u64,
        joined_incident: bool,
    ) -> Result<(), ModelError> {
        if !peak_score.is_finite() {
            return Err(ModelError::NonFinite { index: 0 });
        }
        self.alerts += 1;
        let kept = if joined_incident {
            self.incident += 1;
            &mut self.incident_peaks
        } else if open_ms <= self.cfg.quick_ms {
            self.noise += 1;
            &mut self.noise_peaks
        } else {
            return Ok(());
        };
        kept.push_back(peak_score);
        while kept.len() > self.cfg.max_kept {
            kept.pop_front();
        }
        Ok(())
    }

    /// Alerts recorded, quick noise among them, and those that joined an incident.
    pub fn counts(&self) -> (u64, u64, u64) {
        (self.alerts, self.noise, self.incident)
    }

    /// The sensitivity change for the alert threshold `current`, or `None` when the noise is not
    /// consistent enough or no higher threshold is safe (see the module docs). Recommended
    /// value: `threshold`.
    pub fn recommend(&self, current: f64) -> Option<RecommendationDraft> {
        if self.alerts < self.cfg.min_alerts || !current.is_finite() {
            return None;
        }
        let lb = wilson_lower_bound(self.noise, self.alerts, Z_95_ONE_SIDED);
        if lb < self.cfg.noise_share_trigger {
            return None;
        }
        let mut peaks: Vec<f64> = self.noise_peaks.iter().copied().collect();
        peaks.sort_by(f64::total_cmp);
        let q = quantile_sorted(&peaks, self.cfg.suppress_quantile)?;
        let lowest_incident = self
            .incident_peaks
            .iter()
            .copied()
            .fold(f64::INFINITY, f64::min);
        // Never past the lowest incident alert: at most (1 − margin) of the way to it.
        let cap = if lowest_incident.is_finite() {
            current + (lowest_incident - current) * (1.0 - self.cfg.incident_margin)
        } else {
            f64::INFINITY
        };
        let threshold = q.min(cap);
        if !(threshold.is_finite() && threshold > current) {
            return None;
        }
        let silenced = peaks.iter().filter(|p| **p <= threshold).count();
        let mut d = RecommendationDraft::new(
            RecommendationCategory::AlertThresholds,
            "ml:detector_tuning",
        );
        d.recommended.insert("threshold".into(), threshold);
        d.current.insert("threshold".into(), current);
        d.confidence = lb;
        d.expected_improvement_pct = 100.0 * silenced as f64 / self.alerts as f64;
        d.evidence.push(format!(
            "{} of {} alerts resolved within {} min without an incident (Wilson lower bound {:.2})",
            self.noise,
            self.alerts,
            self.cfg.quick_ms / 60_000,
            lb
        ));
        d.evidence.push(format!(
            "P{:.0} of noise peak scores {:.4}; lowest incident alert peak {}; threshold {:.4} → {:.4} silences {} alerts",
            self.cfg.suppress_quantile * 100.0,
            q,
            if lowest_incident.is_finite() { format!("{lowest_incident:.4}") } else { "none".into() },
            current,
            threshold,
            silenced
        ));
        Some(d)
    }
}

/// Linear-interpolation quantile of sorted finite values; `None` when empty.
fn quantile_sorted(v: &[f64], p: f64) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let pos = p.clamp(0.0, 1.0) * (v.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    Some(v[lo] + (v[hi] - v[lo]) * (pos - lo as f64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn noisy_entity_gets_a_higher_threshold_below_its_incidents() {
        let mut s = DetectorTuningConfig::default().start().unwrap();
        // 30 quick noise alerts peaking 3.0..3.9, 2 incident alerts peaking at 6 and 7.
        for i in 0..30 {
            s.record(3.0 + (i % 10) as f64 / 10.0, 120_000, false)
                .unwrap();
        }
        s.record(6.0, 3_600_000, true).unwrap();
        s.record(7.0, 3_600_000, true).unwrap();
        let d = s.recommend(3.0).unwrap();
        let thr = d.value("threshold").unwrap();
        // P80 of the noise peaks (3.0..3.9 three times each) is 3.72.
        assert!((thr - 3.72).abs() < 1e-9, "{thr}");
        assert!(thr < 6.0);
        // Wilson lower bound of 30/32 at z = 1.645.
        assert!((d.confidence - wilson_lower_bound(30, 32, Z_95_ONE_SIDED)).abs() < 1e-12);
        assert!(d.expected_improvement_pct > 70.0 && d.expected_improvement_pct < 80.0);
    }

    #[test]
    fn few_or_mixed_alerts_give_nothing() {
        let mut s = DetectorTuningConfig::default().start().unwrap();
        for _ in 0..5 {
            s.record(3.0, 60_000, false).unwrap();
        }
        assert!(s.recommend(2.0).is_none());
        for _ in 0..10 {
            s.record(5.0, 3_600_000, true).unwrap();
        }
        assert!(s.recommend(2.0).is_none());
        assert!(s.record(f64::NAN, 0, false).is_err());
    }

    #[test]
    fn cap_keeps_incident_alerts_firing() {
        let mut s = DetectorTuningConfig::default().start().unwrap();
        for _ in 0..40 {
            s.record(5.0, 60_000, false).unwrap();
        }
        s.record(4.0, 3_600_000, true).unwrap();
        let d = s.recommend(3.0).unwrap();
        let thr = d.value("threshold").unwrap();
        assert!(thr > 3.0 && thr < 4.0, "{thr}");
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<AlertStats>(&json).unwrap(), s);
    }
}
