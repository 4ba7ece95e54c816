//! The detect operator: runs each series' detectors on its closed windows and emits a
//! [`Detection`] for every window whose fused score reaches the alerting threshold.
//!
//! Window features arrive on the worker that owns the series (the window operator exchanged by
//! series), so this operator needs no exchange of its own.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::StreamVec;

use crate::models::detector_set::{DetectorSet, Ensemble};
use crate::per_time::{per_complete_time, PerTimeState};
use crate::records::{Detection, WindowFeatures};
use crate::series::{EventTime, SeriesId};

/// Detector state of one worker: one [`DetectorSet`] per series.
#[derive(Serialize, Deserialize)]
pub struct DetectState {
    ensemble: Arc<Ensemble>,
    /// Fused score at or above which a window is reported (the lowest severity band).
    alert_threshold: f64,
    series: HashMap<SeriesId, DetectorSet>,
    /// Everything before this time has been applied.
    #[serde(skip)]
    progress: EventTime,
}

impl DetectState {
    /// Empty state for `ensemble`, reporting windows scoring at least `alert_threshold`.
    pub fn new(ensemble: Arc<Ensemble>, alert_threshold: f64) -> Self {
        DetectState {
            ensemble,
            alert_threshold,
            series: HashMap::new(),
            progress: 0,
        }
    }

    /// Time before which all input has been applied.
    pub fn progress(&self) -> EventTime {
        self.progress
    }

    /// The ensemble this state was built for (checked when a checkpoint is restored).
    pub fn ensemble(&self) -> &Ensemble {
        &self.ensemble
    }

    /// Approximate bytes of detector state per series.
    pub fn bytes_per_series(&self) -> f64 {
        if self.series.is_empty() {
            return 0.0;
        }
        let entry = std::mem::size_of::<(SeriesId, DetectorSet)>() + 1;
        let heap: usize = self.series.values().map(DetectorSet::heap_bytes).sum();
        entry as f64 + heap as f64 / self.series.len() as f64
    }

    fn observe(&mut self, f: &WindowFeatures) -> Option<Detection> {
        let ensemble = &self.ensemble;
        let set = self
            .series
            .entry(f.series)
            .or_insert_with(|| DetectorSet::new(ensemble, &f.key.name));
        let verdict = set.observe(ensemble, &f.window, &f.values, f.end, true)?;
        // A damped score still continues an ongoing episode (so its alert stays open), but
        // cannot open a new one.
        let reported = verdict.score >= self.alert_threshold
            || (verdict.episode && verdict.fused >= self.alert_threshold);
        if !reported {
            return None;
        }
        let lead = verdict.lead.as_ref()?;
        let affected = verdict
            .findings
            .iter()
            .filter(|x| x.score >= self.alert_threshold)
            .map(|x| x.feature.clone())
            .fold(Vec::<String>::new(), |mut acc, x| {
                if !acc.contains(&x) {
                    acc.push(x);
                }
                acc
            });
        Some(Detection {
            series: f.series,
            key: f.key.clone(),
            start: f.start,
            end: f.end,
            score: verdict.score.max(verdict.fused.min(self.alert_threshold)),
            confidence: lead.confidence,
            actual: lead.actual,
            expected: lead.expected,
            threshold: lead.threshold,
            direction: verdict.direction,
            shape: verdict.shape,
            detectors: verdict
                .findings
                .iter()
                .map(|x| (x.detector.clone(), x.score))
                .collect(),
            affected_features: if affected.is_empty() {
                vec![lead.feature.clone()]
            } else {
                affected
            },
        })
    }
}

impl PerTimeState for DetectState {
    type Input = WindowFeatures;
    type Output = Detection;

    fn apply(&mut self, batch: &[WindowFeatures], give: &mut impl FnMut(Detection)) {
        for f in batch {
            if let Some(d) = self.observe(f) {
                give(d);
            }
        }
    }

    fn applied_until(&mut self, time: EventTime) {
        self.progress = time;
    }
}

/// Adds the detect operator to a stream of window features.
pub trait DetectExt<'scope> {
    /// Scores windows and emits detections; `state` is shared with the caller for checkpoints.
    fn detect(self, state: Rc<RefCell<DetectState>>) -> StreamVec<'scope, EventTime, Detection>;
}

impl<'scope> DetectExt<'scope> for StreamVec<'scope, EventTime, WindowFeatures> {
    fn detect(self, state: Rc<RefCell<DetectState>>) -> StreamVec<'scope, EventTime, Detection> {
        per_complete_time(self, Pipeline, "Detect", state)
    }
}
