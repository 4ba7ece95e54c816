//! The entity operator: gathers, per window end, the window features of all of an entity's series
//! and runs the entity detectors ([`EntityDetector`]) on their joint vector.
//!
//! Window features are exchanged by a stable hash of the series' entity (the value of the first
//! configured entity label it carries), so one worker owns each entity. Features of one window end
//! share one timely time (the window end), and the stash releases a time only once the frontier
//! has passed it, so every member of the entity has arrived; members are then put in a fixed order
//! (series key) before the vector is built, whatever the arrival order.
//!
//! An anomalous entity window becomes a [`Detection`] of a pseudo-series named
//! `entity_anomaly` labelled with the entity (`<entity label>=<entity>`), so the alert stage
//! handles it like any series: one alert per entity, opened, updated and resolved.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::StreamVec;

use crate::models::detector_set::FusionPolicy;
use crate::models::entity_set::{EntityDetector, EntityPlan};
use crate::models::window_stats::FeatureValues;
use crate::per_time::{per_complete_time, PerTimeState};
use crate::records::{Detection, WindowFeatures};
use crate::rules::Direction;
use crate::series::{stable_hash, EventTime, SeriesKey};

/// Metric name of the pseudo-series entity detections are reported on.
pub const ENTITY_METRIC: &str = "entity_anomaly";

/// Entity detector state of one worker.
#[derive(Serialize, Deserialize)]
pub struct EntityState {
    plan: Arc<EntityPlan>,
    fusion: FusionPolicy,
    entity_labels: Vec<String>,
    alert_threshold: f64,
    entities: HashMap<String, EntityDetector>,
    /// Everything before this time has been applied.
    #[serde(skip)]
    progress: EventTime,
}

impl EntityState {
    /// Empty state.
    pub fn new(
        plan: Arc<EntityPlan>,
        fusion: FusionPolicy,
        entity_labels: Vec<String>,
        alert_threshold: f64,
    ) -> Self {
        EntityState {
            plan,
            fusion,
            entity_labels,
            alert_threshold,
            entities: HashMap::new(),
            progress: 0,
        }
    }

    /// Time before which all input has been applied.
    pub fn progress(&self) -> EventTime {
        self.progress
    }

    /// The entity plan this state was built for (a checkpoint must match it).
    pub fn plan(&self) -> &EntityPlan {
        &self.plan
    }

    /// Number of entities with state.
    pub fn entity_count(&self) -> usize {
        self.entities.len()
    }

    /// Scores one entity's window end; `members` sorted by series key.
    fn observe(
        &mut self,
        entity: &str,
        end: EventTime,
        members: &[&WindowFeatures],
    ) -> Option<Detection> {
        let names: Vec<String> = members.iter().map(|f| f.key.to_string()).collect();
        let joint: Vec<(&str, &FeatureValues)> = names
            .iter()
            .zip(members)
            .map(|(n, f)| (n.as_str(), &f.values))
            .collect();
        let detector = self.entities.entry(entity.to_string()).or_default();
        let v = detector.observe(&self.plan, &self.fusion, &joint, end)?;
        let reported =
            v.score >= self.alert_threshold || (v.episode && v.fused >= self.alert_threshold);
        if !reported {
            return None;
        }
        let top = v.members.first()?;
        let label = self
            .entity_labels
            .first()
            .cloned()
            .unwrap_or_else(|| "entity".into());
        let key = SeriesKey::new(ENTITY_METRIC, [(label, entity.to_string())]);
        let start = members.iter().map(|f| f.start).min().unwrap_or(end);
        Some(Detection {
            series: key.id(),
            key: Arc::new(key),
            start,
            end,
            score: v.score.max(v.fused.min(self.alert_threshold)),
            confidence: 1.0,
            actual: top.actual,
            expected: top.expected,
            // The joint vector has no one-dimensional boundary; report the member's value at
            // the robust detector's default distance (4.5 of its recent σ).
            threshold: top.expected
                + 4.5 * (top.actual - top.expected).signum() * {
                    let z = top.z.abs().max(1e-9);
                    (top.actual - top.expected).abs() / z
                },
            direction: if top.actual >= top.expected {
                Direction::Up
            } else {
                Direction::Down
            },
            shape: None,
            detectors: v.detectors,
            affected_features: v.members.iter().map(|m| m.feature.clone()).collect(),
        })
    }
}

impl PerTimeState for EntityState {
    type Input = WindowFeatures;
    type Output = Detection;

    fn keeps(&self, f: &WindowFeatures) -> bool {
        *f.window == *self.plan.window
    }

    fn apply(&mut self, batch: &[WindowFeatures], give: &mut impl FnMut(Detection)) {
        // Group by (entity, window end), members in series-key order.
        let mut groups: BTreeMap<(&str, EventTime), Vec<&WindowFeatures>> = BTreeMap::new();
        for f in batch {
            groups
                .entry((f.key.entity(&self.entity_labels), f.end))
                .or_default()
                .push(f);
        }
        for ((entity, end), mut members) in groups {
            members.sort_by(|a, b| a.key.cmp(&b.key));
            if let Some(d) = self.observe(entity, end, &members) {
                give(d);
            }
        }
    }

    fn applied_until(&mut self, time: EventTime) {
        self.progress = time;
    }
}

/// Adds the entity operator to a stream of window features.
pub trait EntityDetectExt<'scope> {
    /// Runs the entity detectors on each entity's window ends; `state` is shared for checkpoints.
    fn entity_detect(
        self,
        state: Rc<RefCell<EntityState>>,
    ) -> StreamVec<'scope, EventTime, Detection>;
}

impl<'scope> EntityDetectExt<'scope> for StreamVec<'scope, EventTime, WindowFeatures> {
    fn entity_detect(
        self,
        state: Rc<RefCell<EntityState>>,
    ) -> StreamVec<'scope, EventTime, Detection> {
        let labels = state.borrow().entity_labels.clone();
        let route = move |f: &WindowFeatures| stable_hash(f.key.entity(&labels).as_bytes());
        per_complete_time(self, Exchange::new(route), "EntityDetect", state)
    }
}
