//! Row-by-row scoring for `harbinger score`: the streaming detection path over a table, with no
//! look-ahead.
//!
//! Each column is a series with its own [`DetectorSet`], fed one row at a time as a window of one
//! point; a wide table (several columns, one entity) also feeds the joint row to an
//! [`EntityDetector`]. A row's score is the highest of its columns' (times the entity plan's
//! `series_share`) and the entity's scores: any one of them being abnormal makes the row
//! abnormal. Nothing here looks at a later row, so
//! the score of row `i` depends on rows `0..=i` only (a test checks it).

use serde::{Deserialize, Serialize};

use super::detector_set::{DetectorSet, Ensemble};
use super::entity_set::{EntityDetector, EntityPlan};
use super::window_stats::FeatureValues;
use crate::series::EventTime;

/// Scores the rows of one table.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RowScorer {
    window: String,
    columns: Vec<(String, DetectorSet)>,
    entity: Option<(EntityPlan, EntityDetector)>,
    real_time: bool,
}

impl RowScorer {
    /// A scorer for columns named `columns`, running the detectors `ensemble` configures on
    /// `window`. `entity`: the entity detectors for wide tables (ignored for one column).
    /// `real_time`: whether row timestamps are real (time-of-day features apply).
    pub fn new(
        ensemble: &Ensemble,
        window: &str,
        columns: &[String],
        entity: Option<EntityPlan>,
        real_time: bool,
    ) -> Self {
        RowScorer {
            window: window.to_string(),
            columns: columns
                .iter()
                .map(|c| (c.clone(), DetectorSet::new(ensemble, c)))
                .collect(),
            entity: entity
                .filter(|_| columns.len() > 1)
                .map(|p| (p, EntityDetector::default())),
            real_time,
        }
    }

    /// Scores one row (one value per column; `None` for a missing one) at `time`, then learns it.
    /// Returns a score in [0, 1]; 0 while every detector warms up.
    pub fn observe(&mut self, ensemble: &Ensemble, time: EventTime, row: &[Option<f64>]) -> f64 {
        let mut score: f64 = 0.0;
        let mut joint: Vec<(&str, FeatureValues)> = Vec::with_capacity(row.len());
        for ((name, set), value) in self.columns.iter_mut().zip(row) {
            let Some(v) = value.filter(|v| v.is_finite()) else {
                continue;
            };
            let values = FeatureValues::single(v);
            if let Some(verdict) =
                set.observe(ensemble, &self.window, &values, time, self.real_time)
            {
                score = score.max(verdict.score);
            }
            joint.push((name.as_str(), values));
        }
        if let Some((plan, detector)) = &mut self.entity {
            score *= plan.series_share;
            let refs: Vec<(&str, &FeatureValues)> = joint.iter().map(|(n, v)| (*n, v)).collect();
            if let Some(v) = detector.observe(plan, &ensemble.fusion, &refs, time) {
                score = score.max(v.score);
            }
        }
        score.clamp(0.0, 1.0)
    }
}
