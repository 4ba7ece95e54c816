//! Builds the dataflow on one worker: three inputs (points, series keys, dead letters), the
//! windows → detect → alerts → correlate chain, the optimizer fed by all of them, and the
//! ordered sinks on worker 0.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use operators::alerting::{AlertState, AlertingExt};
use operators::correlate::{CorrelateExt, CorrelateOut, CorrelateState};
use operators::detect::{DetectExt, DetectState};
use operators::entity::{EntityDetectExt, EntityState};
use operators::forecast::{ForecastExt, ForecastState};
use operators::models::optimize::recommenders::{
    CapacityRecommender, DetectorTuningRecommender, RightSizingRecommender,
    ThresholdTuningRecommender,
};
use operators::models::rec_context::OptimizeInput;
use operators::models::rec_rules::Recommender;
use operators::models::topology::TopologyEdge;
use operators::optimize::{OptimizeExt, OptimizeState, Routed};
use operators::peer_compare::{PeerCompareExt, PeerState};
use operators::records::{
    AlertRecord, DeadLetter, ForecastRecord, IncidentRecord, RecommendationRecord, WindowFeatures,
};
use operators::series::{EventTime, Point, SeriesId, SharedKey};
use operators::sink::OrderedSinkExt;
use operators::window::{WindowFeaturesExt, WindowState};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::operators::core::UnorderedHandle;
use timely::dataflow::operators::core::{Concat, Exchange, Probe, UnorderedInput};
use timely::dataflow::operators::vec::Map;
use timely::dataflow::operators::ActivateCapability;
use timely::dataflow::{ProbeHandle, Scope};

use crate::config::Plan;
use crate::sinks::{deliver, Outputs};

type Handle<D> = UnorderedHandle<EventTime, CapacityContainerBuilder<Vec<D>>>;

/// The worker's handles into its dataflow.
pub struct Inputs {
    /// Points input and its capability.
    pub points: (Handle<Point>, ActivateCapability<EventTime>),
    /// Series-key announcements.
    pub keys: (Handle<(SeriesId, SharedKey)>, ActivateCapability<EventTime>),
    /// Dead letters.
    pub dead: (Handle<DeadLetter>, ActivateCapability<EventTime>),
    /// Topology edge insertions and retractions (fed by worker 0).
    pub topology: (
        Handle<(TopologyEdge, EventTime, isize)>,
        ActivateCapability<EventTime>,
    ),
}

/// Operator states shared with the driver (for memory reports and checkpoints).
pub struct States {
    /// Window state.
    pub windows: Rc<RefCell<WindowState>>,
    /// Detector state.
    pub detect: Rc<RefCell<DetectState>>,
    /// Alert state.
    pub alerts: Rc<RefCell<AlertState>>,
    /// Entity detector state, when entity detectors are configured.
    pub entity: Option<Rc<RefCell<EntityState>>>,
    /// Peer-comparison state, when `[peers]` is configured.
    pub peers: Option<Rc<RefCell<PeerState>>>,
    /// Forecast state, when forecasts are configured.
    pub forecast: Option<Rc<RefCell<ForecastState>>>,
    /// Correlation state (worker 0 holds it all). Not part of checkpoints: see docs/design.md.
    pub correlate: Rc<RefCell<CorrelateState>>,
    /// Optimizer state (the entities this worker owns).
    pub optimize: Rc<RefCell<OptimizeState>>,
    /// Each sink's progress: everything before it has been written.
    pub sinks: Vec<Rc<Cell<EventTime>>>,
}

/// The serialized form of one worker's states in a checkpoint.
#[derive(serde::Serialize, serde::Deserialize)]
struct Snapshot {
    windows: WindowState,
    detect: DetectState,
    alerts: AlertState,
    entity: Option<EntityState>,
    /// Absent in checkpoints written before the optimizer existed.
    #[serde(default)]
    optimize: Option<OptimizeState>,
    /// Absent in checkpoints written before forecasts existed.
    #[serde(default)]
    forecast: Option<ForecastState>,
    /// Absent in checkpoints written before peer comparison existed.
    #[serde(default)]
    peers: Option<PeerState>,
}

impl States {
    /// The time before which every local operator has acted on all its input.
    pub fn progress(&self) -> EventTime {
        let operators = [
            self.windows.borrow().progress(),
            self.detect.borrow().progress(),
            self.alerts.borrow().progress(),
            self.optimize.borrow().progress(),
        ];
        operators
            .into_iter()
            .chain(self.entity.iter().map(|e| e.borrow().progress()))
            .chain(self.peers.iter().map(|p| p.borrow().progress()))
            .chain(self.forecast.iter().map(|f| f.borrow().progress()))
            .chain(self.sinks.iter().map(|s| s.get()))
            .min()
            .unwrap_or(0)
    }

    /// Serializes every operator's state (call when [`States::progress`] has reached the
    /// checkpoint time).
    pub fn snapshot(&self) -> serde_json::Value {
        self.windows.borrow_mut().prepare_snapshot();
        self.alerts.borrow_mut().prepare_snapshot();
        self.optimize.borrow_mut().prepare_snapshot();
        serde_json::json!({
            "optimize": &*self.optimize.borrow(),
            "windows": &*self.windows.borrow(),
            "detect": &*self.detect.borrow(),
            "alerts": &*self.alerts.borrow(),
            "entity": self.entity.as_ref().map(|e| e.borrow()).as_deref(),
            "forecast": self.forecast.as_ref().map(|f| f.borrow()).as_deref(),
            "peers": self.peers.as_ref().map(|p| p.borrow()).as_deref(),
        })
    }

    /// Replaces the states with a checkpoint's, refusing one taken with other windows or
    /// detectors (its state would not fit them).
    pub fn restore(&self, value: serde_json::Value) -> Result<(), String> {
        let snapshot: Snapshot =
            serde_json::from_value(value).map_err(|e| format!("unreadable operator state: {e}"))?;
        if snapshot.windows.specs() != self.windows.borrow().specs() {
            return Err("the windows changed since the checkpoint".into());
        }
        if snapshot.detect.ensemble() != self.detect.borrow().ensemble() {
            return Err("the detectors changed since the checkpoint".into());
        }
        match (&self.entity, snapshot.entity) {
            (None, None) => {}
            (Some(current), Some(saved)) if saved.plan() == current.borrow().plan() => {
                *current.borrow_mut() = saved;
            }
            _ => return Err("the entity detectors changed since the checkpoint".into()),
        }
        match (&self.peers, snapshot.peers) {
            (None, None) => {}
            (Some(current), Some(saved)) if saved.config() == current.borrow().config() => {
                *current.borrow_mut() = saved;
            }
            _ => return Err("the peer comparison changed since the checkpoint".into()),
        }
        if let Some(saved) = snapshot.optimize {
            self.optimize.borrow_mut().restore_from(saved)?;
        }
        match (&self.forecast, snapshot.forecast) {
            (None, None) => {}
            (Some(current), Some(saved)) => current.borrow_mut().restore(saved)?,
            _ => return Err("the forecasts changed since the checkpoint".into()),
        }
        *self.windows.borrow_mut() = snapshot.windows;
        *self.detect.borrow_mut() = snapshot.detect;
        *self.alerts.borrow_mut() = snapshot.alerts;
        Ok(())
    }
}

/// The optimizer's ML models (see `operators::models::optimize::recommenders`), with their
/// documented defaults; detector tuning starts from the alert threshold (the low band);
/// threshold tuning reviews the rules' `[[threshold]]` declarations.
fn ml_recommenders(plan: &Plan) -> Vec<Box<dyn Recommender>> {
    vec![
        Box::new(RightSizingRecommender::new(Default::default())),
        Box::new(CapacityRecommender::new(Default::default())),
        Box::new(DetectorTuningRecommender::new(
            Default::default(),
            plan.alerts.bands.low,
        )),
        Box::new(ThresholdTuningRecommender::new(
            plan.optimize.clone(),
            Default::default(),
        )),
    ]
}

/// Probes the driver watches.
pub struct Probes {
    /// Points delivered to their owning worker (for backpressure).
    pub exchanged: ProbeHandle<EventTime>,
    /// Everything written (for completion).
    pub output: ProbeHandle<EventTime>,
}

/// Counts of what worker 0's sinks wrote.
#[derive(Debug, Default, Clone)]
pub struct Written {
    /// Alert events by kind: opened, updated, escalated, resolved.
    pub alerts: [u64; 4],
    /// Incident events by kind: opened, updated, escalated, resolved.
    pub incidents: [u64; 4],
    /// Dead letters written.
    pub dead_letters: u64,
    /// Feature records written.
    pub features: u64,
    /// Recommendation records written.
    pub recommendations: u64,
    /// Forecast records written.
    pub forecasts: u64,
}

/// Builds the dataflow; `outputs` are only fed on worker 0. The dataflow's shape must depend on
/// the plan alone: every worker builds the same graph (timely matches channels by position), so
/// whether an output exists is read from the plan, never from `outputs`.
pub fn build(
    scope: Scope<'_, EventTime>,
    plan: &Plan,
    outputs: Outputs,
    written: Rc<RefCell<Written>>,
) -> (Inputs, States, Probes) {
    let ((points_in, points_cap), points) =
        scope.new_unordered_input::<CapacityContainerBuilder<Vec<Point>>>();
    let ((keys_in, keys_cap), keys) =
        scope.new_unordered_input::<CapacityContainerBuilder<Vec<(SeriesId, SharedKey)>>>();
    let ((dead_in, dead_cap), dead) =
        scope.new_unordered_input::<CapacityContainerBuilder<Vec<DeadLetter>>>();
    let ((topo_in, topo_cap), topology) = scope
        .new_unordered_input::<CapacityContainerBuilder<Vec<(TopologyEdge, EventTime, isize)>>>();

    let states = States {
        windows: Rc::new(RefCell::new(WindowState::new(plan.windows.clone()))),
        detect: Rc::new(RefCell::new(DetectState::new(
            plan.ensemble.clone(),
            plan.alerts.bands.low,
        ))),
        alerts: Rc::new(RefCell::new(AlertState::default())),
        // Alerts (0), dead letters (1), incidents (2) and recommendations (3) always; then
        // features (4), the alert+incident stream and forecasts when the plan has them.
        sinks: (0..4
            + usize::from(plan.sinks.features)
            + usize::from(plan.sinks.alertmanager.is_some())
            + usize::from(plan.forecast.is_some()))
            .map(|_| Rc::new(Cell::new(0)))
            .collect(),
        entity: plan.entity.as_ref().map(|p| {
            Rc::new(RefCell::new(EntityState::new(
                p.clone(),
                plan.ensemble.fusion.clone(),
                plan.engine.entity_labels.clone(),
                plan.alerts.bands.low,
            )))
        }),
        peers: plan
            .peers
            .as_ref()
            .map(|p| Rc::new(RefCell::new(PeerState::new(p.clone())))),
        forecast: plan
            .forecast
            .as_ref()
            .map(|p| Rc::new(RefCell::new(ForecastState::new(p.clone())))),
        correlate: Rc::new(RefCell::new(CorrelateState::default())),
        // The ML recommenders run after the rules, in this order.
        optimize: Rc::new(RefCell::new(OptimizeState::new(
            plan.optimize.clone(),
            ml_recommenders(plan),
        ))),
    };
    let probes = Probes {
        exchanged: ProbeHandle::new(),
        output: ProbeHandle::new(),
    };

    let points = points
        .exchange(|p: &Point| p.series.0)
        .probe_with(&probes.exchanged);
    let keys = keys.exchange(|k: &(SeriesId, SharedKey)| k.0 .0);
    let features = points.window_features(keys, states.windows.clone());
    let features = if !plan.sinks.features {
        features
    } else {
        let w = written.clone();
        let sinks = outputs.features.clone();
        features.clone().probe_with(&probes.output).ordered_sink(
            "FeatureSink",
            states.sinks[4].clone(),
            |f: &WindowFeatures| (f.series, f.window.clone()),
            move |time, records| {
                w.borrow_mut().features += records.len() as u64;
                deliver(&sinks, time, &records);
            },
        );
        features
    };
    // Forecasts only when configured: the default plan builds no forecast operator at all.
    let forecasts = states.forecast.as_ref().map(|state| {
        let w = written.clone();
        let sinks = outputs.forecasts.clone();
        let slot =
            4 + usize::from(plan.sinks.features) + usize::from(plan.sinks.alertmanager.is_some());
        let forecasts = features
            .clone()
            .forecast(state.clone())
            .probe_with(&probes.output);
        forecasts.clone().ordered_sink(
            "ForecastSink",
            states.sinks[slot].clone(),
            |r: &ForecastRecord| (r.series, r.window.clone(), r.spec.clone()),
            move |time, records| {
                w.borrow_mut().forecasts += records.len() as u64;
                deliver(&sinks, time, &records);
            },
        );
        forecasts
    });
    let detections = features.clone().detect(states.detect.clone());
    // Entity detections join the series' (the graph's shape depends on the plan only).
    let detections = match &states.entity {
        Some(entity) => {
            let by_entity = features.clone().entity_detect(entity.clone());
            detections.concat(by_entity)
        }
        None => detections,
    };
    let detections = match &states.peers {
        Some(peers) => {
            let apart = features.clone().peer_compare(peers.clone());
            detections.concat(apart)
        }
        None => detections,
    };
    let correlated = detections
        .alerts(plan.alerts.clone(), states.alerts.clone())
        .correlate(topology, plan.correlate.clone(), states.correlate.clone())
        .probe_with(&probes.output);
    if plan.sinks.alertmanager.is_some() {
        let sinks = outputs.correlated.clone();
        correlated.clone().ordered_sink(
            "CorrelatedSink",
            states.sinks[4 + usize::from(plan.sinks.features)].clone(),
            |o: &CorrelateOut| match o {
                CorrelateOut::Alert(a) => (0u8, a.fingerprint.clone(), a.event, a.id.clone()),
                CorrelateOut::Incident(i) => (1u8, i.incident_id.clone(), i.event, String::new()),
            },
            move |time, records| deliver(&sinks, time, &records),
        );
    }
    let alerts = correlated.clone().flat_map(|o| match o {
        CorrelateOut::Alert(a) => Some(a),
        CorrelateOut::Incident(_) => None,
    });
    let incidents = correlated.flat_map(|o| match o {
        CorrelateOut::Incident(i) => Some(i),
        CorrelateOut::Alert(_) => None,
    });

    // The optimizer: features of its window, forecasts, alerts and incidents, routed by entity.
    let opt_window = plan
        .optimize
        .settings
        .window
        .clone()
        .or_else(|| plan.windows.first().map(|w| w.name.to_string()))
        .unwrap_or_default();
    let labels = plan.engine.entity_labels.clone();
    // Only the series some recommender reads (asked once per series): routing every window of
    // every series cost a third of the pipeline's throughput.
    let optimizer = states.optimize.clone();
    let mut wanted: HashMap<SeriesId, bool> = HashMap::new();
    let routed_features = features.flat_map(move |f: WindowFeatures| {
        let read = *f.window == *opt_window
            && *wanted
                .entry(f.series)
                .or_insert_with(|| optimizer.borrow().reads_features(&f.key.name));
        read.then(|| {
            let entity = f.key.entity(&labels).to_string();
            (entity, OptimizeInput::Features(f))
        })
    });
    // Without forecasts configured the optimizer's forecast input is an empty stream.
    let forecasts = match forecasts {
        Some(f) => f,
        None => routed_features
            .clone()
            .flat_map(|_| Option::<ForecastRecord>::None),
    };
    let labels = plan.engine.entity_labels.clone();
    let routed_forecasts = forecasts.map(move |f: ForecastRecord| {
        let entity = f.key.entity(&labels).to_string();
        (entity, OptimizeInput::Forecast(Box::new(f)))
    });
    let routed_alerts = alerts
        .clone()
        .map(|a: AlertRecord| (a.entity.clone(), OptimizeInput::Alert(Box::new(a))));
    let routed_incidents = incidents.clone().flat_map(|i: IncidentRecord| {
        i.entities
            .clone()
            .into_iter()
            .map(move |e| (e, OptimizeInput::Incident(Box::new(i.clone()))))
            .collect::<Vec<Routed>>()
    });
    let recommendations = routed_features
        .concat(routed_forecasts)
        .concat(routed_alerts)
        .concat(routed_incidents)
        .optimize(states.optimize.clone())
        .probe_with(&probes.output);
    let w = written.clone();
    let sinks = outputs.recommendations.clone();
    recommendations.ordered_sink(
        "RecommendationSink",
        states.sinks[3].clone(),
        |r: &RecommendationRecord| (r.recommendation_id.clone(), r.created_at.clone()),
        move |time, records| {
            w.borrow_mut().recommendations += records.len() as u64;
            deliver(&sinks, time, &records);
        },
    );

    let w = written.clone();
    let sinks = outputs.alerts.clone();
    alerts.ordered_sink(
        "AlertSink",
        states.sinks[0].clone(),
        |a: &AlertRecord| (a.fingerprint.clone(), a.event, a.id.clone()),
        move |time, records| {
            for a in &records {
                w.borrow_mut().alerts[a.event as usize] += 1;
            }
            deliver(&sinks, time, &records);
        },
    );
    let w = written.clone();
    let sinks = outputs.incidents.clone();
    incidents.ordered_sink(
        "IncidentSink",
        states.sinks[2].clone(),
        |i: &IncidentRecord| (i.incident_id.clone(), i.event),
        move |time, records| {
            for i in &records {
                w.borrow_mut().incidents[i.event as usize] += 1;
            }
            deliver(&sinks, time, &records);
        },
    );

    let sinks = outputs.dead_letters.clone();
    dead.probe_with(&probes.output).ordered_sink(
        "DeadLetterSink",
        states.sinks[1].clone(),
        |d: &DeadLetter| (d.source.clone(), d.position.clone(), d.element),
        move |time, records| {
            written.borrow_mut().dead_letters += records.len() as u64;
            deliver(&sinks, time, &records);
        },
    );

    let inputs = Inputs {
        points: (points_in, points_cap),
        keys: (keys_in, keys_cap),
        dead: (dead_in, dead_cap),
        topology: (topo_in, topo_cap),
    };
    (inputs, states, probes)
}
