//! Capacity scaling: when the forecast stage predicts that a series with a limit (disk used,
//! memory, connections) will cross it, how much capacity to add and by when.
//!
//! Input: a [`ForecastRecord`] carrying a [`CapacityForecast`] and the capacity in force (disk
//! size, replicas, pool size). The limit is assumed to scale with the capacity (a "90% of the
//! disk" limit moves with the disk; a per-replica limit with the replica count).
//!
//! * How much: the series is projected to the end of `cover_factor` × the forecast horizon —
//!   the forecast's own upper 80% bound at its last step, continued beyond the horizon at the
//!   growth rate of its point forecast — and the capacity is raised so that the projection sits
//!   `headroom` below the scaled limit. Provisioning for more than one horizon keeps the next
//!   forecast from asking again at once.
//! * By when: the point forecast's crossing time minus `lead_ms` (the time a change takes to be
//!   reviewed and rolled out), never before the record's time; without a crossing inside the
//!   horizon, its end minus the lead.
//! * Confidence: the forecast's probability of being past the limit at the horizon's end.
//! * Expected improvement: the share of the horizon that would otherwise be spent past the
//!   limit, (horizon − time to limit) / horizon, in percent (0 without a crossing).

use serde::{Deserialize, Serialize};

use super::draft::RecommendationDraft;
use crate::models::ModelError;
use crate::records::forecast::{CapacityForecast, ForecastRecord, LimitDirection};
use crate::records::recommendation::RecommendationCategory;

/// Settings of the capacity-scaling recommender.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CapacityScalingConfig {
    /// Provision for this many forecast horizons of growth. Default 2.
    pub cover_factor: f64,
    /// Fraction of the scaled limit kept free at the end of the cover. Default 0.1.
    pub headroom: f64,
    /// How long before the crossing the change must be in place. Default 6 h.
    pub lead_ms: u64,
    /// Without a crossing inside the horizon, recommend only from this probability of being
    /// past the limit at the horizon's end. Default 0.2.
    pub min_probability: f64,
    /// Round the new capacity up to a whole number (replicas, nodes). Default false.
    pub whole_units: bool,
}

impl Default for CapacityScalingConfig {
    fn default() -> Self {
        Self {
            cover_factor: 2.0,
            headroom: 0.1,
            lead_ms: 6 * 3_600_000,
            min_probability: 0.2,
            whole_units: false,
        }
    }
}

impl CapacityScalingConfig {
    /// Checks every parameter's range.
    pub fn validate(&self) -> Result<(), ModelError> {
        let c = self.cover_factor;
        ModelError::require(c.is_finite() && c >= 1.0, "cover_factor", "at least 1", c)?;
        let h = self.headroom;
        ModelError::require((0.0..1.0).contains(&h), "headroom", "in [0, 1)", h)?;
        let p = self.min_probability;
        ModelError::require((0.0..=1.0).contains(&p), "min_probability", "in [0, 1]", p)
    }

    /// The scale-out draft for `forecast` at `current_capacity`, or `None` when the forecast
    /// has no capacity prediction, does not reach the limit (no crossing and probability below
    /// `min_probability`), or the capacity already suffices. Recommended values: `capacity`
    /// (the new total) and `add` (the difference); current: `capacity`.
    ///
    /// # Errors
    /// Invalid settings, a non-positive or non-finite capacity or limit, or a forecast without
    /// steps.
    pub fn recommend(
        &self,
        forecast: &ForecastRecord,
        current_capacity: f64,
    ) -> Result<Option<RecommendationDraft>, ModelError> {
        self.validate()?;
        let Some(cap) = &forecast.capacity else {
            return Ok(None);
        };
        ModelError::require(
            current_capacity.is_finite() && current_capacity > 0.0,
            "current_capacity",
            "positive and finite",
            current_capacity,
        )?;
        ModelError::require(
            cap.limit.is_finite() && (cap.direction != LimitDirection::Above || cap.limit > 0.0),
            "limit",
            "finite (and positive for an upper limit)",
            cap.limit,
        )?;
        if cap.time_to_limit_ms.is_none() && cap.probability < self.min_probability {
            return Ok(None);
        }
        let projected = project(self, forecast, cap)?;
        let new_capacity = match cap.direction {
            LimitDirection::Above => {
                let limit_per_unit = cap.limit / current_capacity;
                projected / (limit_per_unit * (1.0 - self.headroom))
            }
            // The series is what is left (free space): add what it would fall short by, plus
            // the headroom.
            LimitDirection::Below => {
                current_capacity + (cap.limit - projected).max(0.0) + self.headroom * cap.limit
            }
        };
        let new_capacity = if self.whole_units {
            new_capacity.ceil()
        } else {
            new_capacity
        };
        if !(new_capacity.is_finite() && new_capacity > current_capacity) {
            return Ok(None);
        }
        let mut d = RecommendationDraft::new(
            RecommendationCategory::CapacityScaling,
            "ml:capacity_scaling",
        );
        d.recommended.insert("capacity".into(), new_capacity);
        d.recommended
            .insert("add".into(), new_capacity - current_capacity);
        d.current.insert("capacity".into(), current_capacity);
        d.confidence = cap.probability.clamp(0.0, 1.0);
        let deadline = forecast
            .time
            .saturating_add(cap.time_to_limit_ms.unwrap_or(cap.horizon_ms));
        d.act_by = Some(deadline.saturating_sub(self.lead_ms).max(forecast.time));
        d.valid_until = Some(
            forecast
                .time
                .saturating_add((cap.horizon_ms as f64 * self.cover_factor) as u64),
        );
        d.expected_improvement_pct = match cap.time_to_limit_ms {
            Some(ttl) if cap.horizon_ms > 0 => {
                100.0 * cap.horizon_ms.saturating_sub(ttl) as f64 / cap.horizon_ms as f64
            }
            _ => 0.0,
        };
        let hours = |ms: u64| ms as f64 / 3_600_000.0;
        d.evidence.push(format!(
            "{} ({}): limit {} {:?}, crossing in {} (least-squares line: {}), P(past limit at +{:.0} h) = {:.2}",
            cap.rule,
            forecast.model,
            cap.limit,
            cap.direction,
            cap.time_to_limit_ms.map_or("none".into(), |t| format!("{:.1} h", hours(t))),
            cap.linear_time_to_limit_ms.map_or("none".into(), |t| format!("{:.1} h", hours(t))),
            hours(cap.horizon_ms),
            cap.probability
        ));
        d.evidence.push(format!(
            "projected {:.4} at +{:.0} h (upper 80% bound, extended at the forecast's growth); capacity {} → {:.4} keeps {:.0}% headroom",
            projected,
            hours(cap.horizon_ms) * self.cover_factor,
            current_capacity,
            new_capacity,
            self.headroom * 100.0
        ));
        Ok(Some(d))
    }
}

/// The series' bad-side value at `cover_factor` horizons: the last step's 80% bound on the
/// limit's side, continued at the point forecast's slope.
fn project(
    cfg: &CapacityScalingConfig,
    f: &ForecastRecord,
    cap: &CapacityForecast,
) -> Result<f64, ModelError> {
    let (Some(first), Some(last)) = (f.steps.first(), f.steps.last()) else {
        return Err(ModelError::NotEnoughData { needed: 1, got: 0 });
    };
    let n = f.steps.len();
    let span_ms = (n.saturating_sub(1) as u64 * f.step_ms) as f64;
    let slope = if span_ms > 0.0 {
        (last.yhat - first.yhat) / span_ms
    } else {
        0.0
    };
    let horizon_ms = (n as u64 * f.step_ms) as f64;
    let extra_ms = horizon_ms * (cfg.cover_factor - 1.0);
    let (edge, growth) = match cap.direction {
        // Only growth towards the limit extends the projection.
        LimitDirection::Above => (
            f.steps
                .iter()
                .map(|s| s.hi80)
                .fold(f64::NEG_INFINITY, f64::max),
            slope.max(0.0),
        ),
        LimitDirection::Below => (
            f.steps.iter().map(|s| s.lo80).fold(f64::INFINITY, f64::min),
            slope.min(0.0),
        ),
    };
    let v = edge + growth * extra_ms;
    if v.is_finite() {
        Ok(v)
    } else {
        Err(ModelError::NonFinite { index: n - 1 })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::forecast::ForecastStep;
    use crate::series::SeriesKey;

    const HOUR: u64 = 3_600_000;

    /// Disk used (GB) growing 1 GB/h from 80 GB, limit 90 GB on a 100 GB disk, 24 hourly steps
    /// with an 80% band of ±2 GB.
    fn disk_fill() -> ForecastRecord {
        let steps = (1..=24)
            .map(|h| {
                let y = 80.0 + h as f64;
                ForecastStep {
                    yhat: y,
                    lo80: y - 2.0,
                    hi80: y + 2.0,
                    lo95: y - 3.0,
                    hi95: y + 3.0,
                }
            })
            .collect();
        ForecastRecord {
            series: crate::series::SeriesId(1),
            key: std::sync::Arc::new(SeriesKey::new("disk_used_gb", Vec::new())),
            window: "1h".into(),
            time: 1_000 * HOUR,
            step_ms: HOUR,
            model: "test".into(),
            spec: "disk".into(),
            feature: "mean".into(),
            steps,
            capacity: Some(CapacityForecast {
                rule: "disk_90pct".into(),
                limit: 90.0,
                direction: LimitDirection::Above,
                horizon_ms: 24 * HOUR,
                time_to_limit_ms: Some(10 * HOUR),
                crossing_time: Some(1_010 * HOUR),
                probability: 0.97,
                linear_time_to_limit_ms: Some(11 * HOUR),
            }),
        }
    }

    #[test]
    fn disk_fill_scales_before_the_crossing() {
        let d = CapacityScalingConfig::default()
            .recommend(&disk_fill(), 100.0)
            .unwrap()
            .unwrap();
        // Projection: hi80 at +24 h = 106, plus 24 h at 1 GB/h = 130 GB; limit 0.9/GB of disk
        // with 10% headroom ⇒ 130 / (0.9 · 0.9) = 160.5 GB.
        let cap = d.value("capacity").unwrap();
        assert!((cap - 130.0 / 0.81).abs() < 1e-6, "{cap}");
        assert!((d.value("add").unwrap() - (cap - 100.0)).abs() < 1e-9);
        assert_eq!(d.act_by, Some(1_004 * HOUR));
        assert!((d.confidence - 0.97).abs() < 1e-12);
        assert!((d.expected_improvement_pct - 100.0 * 14.0 / 24.0).abs() < 1e-9);
    }

    #[test]
    fn no_crossing_no_recommendation_and_whole_units() {
        let mut f = disk_fill();
        if let Some(c) = f.capacity.as_mut() {
            c.time_to_limit_ms = None;
            c.crossing_time = None;
            c.probability = 0.05;
        }
        assert!(CapacityScalingConfig::default()
            .recommend(&f, 100.0)
            .unwrap()
            .is_none());
        let cfg = CapacityScalingConfig {
            whole_units: true,
            ..CapacityScalingConfig::default()
        };
        // Replicas: 4 replicas, limit 90 (units of load) ⇒ 22.5 per replica.
        let d = cfg.recommend(&disk_fill(), 4.0).unwrap().unwrap();
        assert_eq!(d.value("capacity"), Some((130.0_f64 / (22.5 * 0.9)).ceil()));
        assert!(cfg.recommend(&disk_fill(), f64::NAN).is_err());
    }
}
