//! The optimizer operator: reads window features, forecasts, alerts and incidents, keeps per
//! entity what the recommenders need (see [`crate::models::rec_context`]), and at every multiple
//! of the evaluation period in event time runs the recommenders (the rules, and any ML model
//! plugged in through [`Recommender`]) and emits the recommendations that are new or changed.
//!
//! Inputs are exchanged by entity, so one worker owns each entity whole. Input at time `t` is
//! applied once the frontier has passed `t` (the stash rule), sorted within a time; the
//! evaluation at `T` sees all input at times `≤ T` and emits at `T`. Recommenders run per entity
//! in name order. So output depends on event time alone, for any number of workers.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::{Capability, Operator};
use timely::dataflow::StreamVec;

use crate::models::rec_context::{EntityBook, EntityView, OptimizeInput};
use crate::models::rec_rules::{
    select_drafts, Draft, OptimizePlan, Publication, Recommender, RuleRecommender,
};
use crate::records::RecommendationRecord;
use crate::series::{stable_hash, EventTime};
use crate::stash::{frontier_limit, Stash, Timers};

/// One input routed to its entity.
pub type Routed = (String, OptimizeInput);

/// The optimizer's state on one worker.
#[derive(Serialize, Deserialize)]
pub struct OptimizeState {
    entities: BTreeMap<String, EntityBook>,
    publication: Publication,
    /// Pending evaluation times, for checkpoints (see [`OptimizeState::prepare_snapshot`]).
    pending: Vec<EventTime>,
    /// Each plugged-in recommender's saved state, by name (filled for checkpoints).
    models: BTreeMap<String, serde_json::Value>,
    /// Evaluations between the scheduled ones, for the entities whose capacity forecast
    /// crosses its limit: a disk can fill faster than the evaluation period.
    #[serde(default)]
    urgent: BTreeMap<EventTime, BTreeSet<String>>,
    #[serde(skip)]
    timers: Timers<()>,
    #[serde(skip)]
    progress: EventTime,
    #[serde(skip)]
    plan: Arc<OptimizePlan>,
    #[serde(skip)]
    recommenders: Vec<Box<dyn Recommender>>,
}

impl OptimizeState {
    /// The state of an optimizer running the rules of `plan` and then `models` (ML recommenders).
    pub fn new(plan: Arc<OptimizePlan>, models: Vec<Box<dyn Recommender>>) -> Self {
        let mut recommenders: Vec<Box<dyn Recommender>> =
            vec![Box::new(RuleRecommender::new(plan.clone()))];
        recommenders.extend(models);
        OptimizeState {
            entities: BTreeMap::new(),
            publication: Publication::default(),
            pending: Vec::new(),
            models: BTreeMap::new(),
            urgent: BTreeMap::new(),
            timers: Timers::default(),
            progress: 0,
            plan,
            recommenders,
        }
    }

    /// Copies pending evaluations and the recommenders' states into serializable form; call
    /// before serializing.
    pub fn prepare_snapshot(&mut self) {
        self.pending = self.timers.pending().map(|(t, _)| t).collect();
        self.models = self
            .recommenders
            .iter()
            .map(|r| (r.name().to_string(), r.save()))
            .collect();
    }

    /// Takes over a restored state's data, keeping this state's plan and recommenders (which
    /// load their saved states).
    pub fn restore_from(&mut self, saved: OptimizeState) -> Result<(), String> {
        for r in &mut self.recommenders {
            if let Some(v) = saved.models.get(r.name()) {
                r.load(v.clone())?;
            }
        }
        self.entities = saved.entities;
        self.publication = saved.publication;
        self.pending = saved.pending;
        self.urgent = saved.urgent;
        Ok(())
    }

    /// Time before which all input has been applied.
    pub fn progress(&self) -> EventTime {
        self.progress
    }

    /// Whether any recommender reads the window features of series named `metric`; the
    /// dataflow routes only those to the optimizer.
    pub fn reads_features(&self, metric: &str) -> bool {
        self.recommenders.iter().any(|r| r.reads_features(metric))
    }

    /// Entities tracked.
    pub fn entity_count(&self) -> usize {
        self.entities.len()
    }

    /// Live (emitted, unexpired) recommendations.
    pub fn live_count(&self) -> usize {
        self.publication.len()
    }

    /// Applies inputs of one time `t` (sorted here) to the state and the recommenders. Returns
    /// the time of an extra evaluation when an entity needs one before the next scheduled
    /// evaluation (see [`OptimizeState::evaluate_at`]): a forecast crossing its capacity limit.
    pub fn apply(&mut self, t: EventTime, mut batch: Vec<Routed>) -> Option<EventTime> {
        batch.sort_by(|a, b| order_key(a).cmp(&order_key(b)));
        let horizons = self.plan.settings.horizons;
        let every = self.plan.settings.every_ms.max(1);
        // Just after this time, unless a scheduled evaluation falls there anyway.
        let at = t + 1;
        let mut urgent_at = None;
        for (entity, input) in &batch {
            let crosses = matches!(input, OptimizeInput::Forecast(f)
                if f.capacity.as_ref().is_some_and(|c| c.time_to_limit_ms.is_some()));
            if crosses && !at.is_multiple_of(every) {
                self.urgent.entry(at).or_default().insert(entity.clone());
                urgent_at = Some(at);
            }
            // Looked up before inserting: most inputs find their entity, and cloning its name
            // for `entry` on every window showed in profiles.
            let book = match self.entities.get_mut(entity) {
                Some(book) => book,
                None => self.entities.entry(entity.clone()).or_default(),
            };
            book.apply(input, horizons);
            for r in &mut self.recommenders {
                r.observe(entity, input);
            }
        }
        urgent_at
    }

    /// The evaluation due at `now`: every entity at a multiple of the period, else only the
    /// entities flagged urgent for `now`. Entities are evaluated alone (never "all entities of
    /// this worker"), so the output does not depend on how entities are spread over workers.
    pub fn evaluate_at(&mut self, now: EventTime) -> Vec<RecommendationRecord> {
        let urgent = self.urgent.remove(&now);
        if now.is_multiple_of(self.plan.settings.every_ms.max(1)) {
            return self.evaluate(now);
        }
        let Some(entities) = urgent else {
            return Vec::new();
        };
        self.evaluate_only(now, Some(&entities))
    }

    /// Runs every recommender on every entity at `now` and returns the records to emit.
    pub fn evaluate(&mut self, now: EventTime) -> Vec<RecommendationRecord> {
        self.evaluate_only(now, None)
    }

    /// Runs every recommender on the given entities (all when `None`) at `now`.
    fn evaluate_only(
        &mut self,
        now: EventTime,
        only: Option<&BTreeSet<String>>,
    ) -> Vec<RecommendationRecord> {
        let settings = self.plan.settings.clone();
        if only.is_none() {
            self.publication.expire(now);
        }
        let empty = BTreeMap::new();
        let mut out = Vec::new();
        let mut drafts: Vec<Draft> = Vec::new();
        for (entity, book) in &mut self.entities {
            if only.is_some_and(|o| !o.contains(entity)) {
                continue;
            }
            book.prune(now, settings.horizons);
            let view = EntityView {
                entity,
                now,
                book,
                config: self.plan.config.get(entity).unwrap_or(&empty),
                horizons: settings.horizons,
                quick_ms: settings.quick_ms,
            };
            drafts.clear();
            for r in &mut self.recommenders {
                r.recommend(&view, &mut drafts);
            }
            // One recommendation per target and category, whichever recommenders proposed it.
            for d in select_drafts(std::mem::take(&mut drafts)) {
                if let Some(rec) = self.publication.publish(d, now, &settings) {
                    out.push(rec);
                }
            }
        }
        out
    }
}

/// A total order of inputs within one time (timely does not order messages of one time). The
/// entity comes last: numbers decide almost every comparison, and entities are independent, so
/// only the order within an entity matters, which is the same.
fn order_key(r: &Routed) -> (u8, u64, EventTime, &str, u8, &str) {
    let (entity, input) = r;
    match input {
        OptimizeInput::Features(f) => (0, f.series.0, f.start, &*f.window, 0, entity),
        OptimizeInput::Forecast(f) => (1, f.series.0, f.time, f.window.as_str(), 0, entity),
        OptimizeInput::Alert(a) => (2, 0, a.event_time, a.id.as_str(), a.event as u8, entity),
        OptimizeInput::Incident(i) => (
            3,
            0,
            i.event_time,
            i.incident_id.as_str(),
            i.event as u8,
            entity,
        ),
    }
}

/// Adds the optimizer to a stream of routed inputs.
pub trait OptimizeExt<'scope> {
    /// Emits recommendations; `state` is shared for checkpoints.
    fn optimize(
        self,
        state: Rc<RefCell<OptimizeState>>,
    ) -> StreamVec<'scope, EventTime, RecommendationRecord>;
}

impl<'scope> OptimizeExt<'scope> for StreamVec<'scope, EventTime, Routed> {
    fn optimize(
        self,
        state: Rc<RefCell<OptimizeState>>,
    ) -> StreamVec<'scope, EventTime, RecommendationRecord> {
        self.unary_frontier::<CapacityContainerBuilder<Vec<RecommendationRecord>>, _, _, _>(
            Exchange::new(|r: &Routed| stable_hash(r.0.as_bytes())),
            "Optimize",
            move |initial, _info| {
                let mut initial: Option<Capability<EventTime>> = Some(initial);
                let mut stash: Stash<Routed> = Stash::default();
                move |(input, frontier), output| {
                    let mut guard = state.borrow_mut();
                    let st = &mut *guard;
                    if let Some(cap) = initial.take() {
                        for at in std::mem::take(&mut st.pending) {
                            st.timers.schedule(&cap, at, ());
                        }
                    }
                    let port = output.output_index();
                    input.for_each(|cap, data| stash.hold(&cap, data, port));
                    let limit = frontier_limit(frontier);
                    let every = st.plan.settings.every_ms.max(1);
                    for (cap, batch) in stash.take_before(limit) {
                        let t = *cap.time();
                        // Evaluations strictly before this batch see none of it.
                        while let Some((tcap, _)) = st.timers.pop_before(t) {
                            let recs = st.evaluate_at(*tcap.time());
                            output.session(&tcap).give_iterator(recs.into_iter());
                        }
                        let urgent = st.apply(t, batch);
                        let next = (t / every + 1).saturating_mul(every);
                        for at in std::iter::once(next).chain(urgent) {
                            if !st.timers.pending().any(|(p, _)| p == at) {
                                st.timers.schedule(&cap, at, ());
                            }
                        }
                    }
                    while let Some((tcap, _)) = st.timers.pop_before(limit) {
                        let recs = st.evaluate_at(*tcap.time());
                        output.session(&tcap).give_iterator(recs.into_iter());
                    }
                    st.progress = limit;
                }
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::rec_rules::{RecRule, Template};
    use crate::models::window_stats::FeatureValues;
    use crate::records::{Level, RecommendationCategory, WindowFeatures};
    use crate::series::SeriesKey;

    fn plan() -> Arc<OptimizePlan> {
        plan_when("hours.p95 > 50.0")
    }

    /// One rule on `cpu` with the condition `when`.
    fn plan_when(when: &str) -> Arc<OptimizePlan> {
        let e = |s: &str| crate::models::cel_rule::CelExpr::compile(s).unwrap();
        Arc::new(OptimizePlan {
            rules: vec![RecRule {
                name: "r".into(),
                category: RecommendationCategory::CapacityScaling,
                metric: regex::Regex::new("^cpu$").unwrap(),
                labels: BTreeMap::new(),
                when: e(when),
                current: None,
                recommended: e("hours.p95 * 2.0"),
                improvement: None,
                confidence: None,
                title: Template::parse("t {entity}").unwrap(),
                description: Template::parse("d").unwrap(),
                steps: vec![],
                effort: Level::Low,
                risk: Level::Low,
                expire_ms: None,
                config_keys: Default::default(),
            }],
            ..OptimizePlan::default()
        })
    }

    fn input(entity: &str, end: EventTime, v: f64) -> Routed {
        let key = Arc::new(SeriesKey::new("cpu", [("service".into(), entity.into())]));
        (
            entity.into(),
            OptimizeInput::Features(WindowFeatures {
                series: key.id(),
                key,
                window: "1m".into(),
                start: end - 60_000,
                end,
                values: FeatureValues::single(v),
            }),
        )
    }

    #[test]
    fn only_metrics_a_recommender_reads_are_asked_for() {
        let selected_only = OptimizeState::new(plan(), Vec::new());
        assert!(selected_only.reads_features("cpu"));
        assert!(
            !selected_only.reads_features("cpu_seconds"),
            "anchored selector"
        );
        assert!(!selected_only.reads_features("mem"));
        let named = OptimizeState::new(plan_when("metrics.mem.hours_p95 > 1.0"), Vec::new());
        assert!(named.reads_features("cpu") && named.reads_features("mem"));
        assert!(!named.reads_features("disk"));
        // Reading `metrics` as a whole names no metric: every one is read.
        let whole = OptimizeState::new(plan_when("size(metrics) > 1"), Vec::new());
        assert!(whole.reads_features("disk"));
        // A model that does not say what it reads gets everything.
        struct Silent;
        impl Recommender for Silent {
            fn name(&self) -> &str {
                "silent"
            }
            fn recommend(&mut self, _: &EntityView<'_>, _: &mut Vec<Draft>) {}
        }
        let with_model = OptimizeState::new(plan(), vec![Box::new(Silent)]);
        assert!(with_model.reads_features("disk"));
    }

    #[test]
    fn a_restored_state_continues_exactly() {
        let mut a = OptimizeState::new(plan(), Vec::new());
        let batch: Vec<Routed> = (1..=30)
            .flat_map(|i| [input("x", i * 60_000, 60.0), input("y", i * 60_000, 70.0)])
            .collect();
        a.apply(0, batch);
        let first = a.evaluate(1_800_000);
        assert_eq!(first.len(), 2);
        a.prepare_snapshot();
        let saved: OptimizeState =
            serde_json::from_str(&serde_json::to_string(&a).unwrap()).unwrap();
        let mut b = OptimizeState::new(plan(), Vec::new());
        b.restore_from(saved).unwrap();
        for s in [&mut a, &mut b] {
            s.apply(0, (31..=60).map(|i| input("x", i * 60_000, 90.0)).collect());
        }
        let (ra, rb) = (a.evaluate(3_600_000), b.evaluate(3_600_000));
        assert_eq!(ra, rb);
        // Only x changed materially (60 → 90); y is unchanged and not repeated.
        assert_eq!(ra.len(), 1);
        assert_eq!(ra[0].component, "x");
        assert_eq!(ra[0].recommendation_id, first[0].recommendation_id);
    }

    #[test]
    fn input_order_within_a_time_does_not_matter() {
        let batch: Vec<Routed> = (1..=30)
            .flat_map(|i| {
                [
                    input("x", i * 60_000, i as f64 * 3.0),
                    input("y", i * 60_000, 70.0),
                ]
            })
            .collect();
        let mut reversed = batch.clone();
        reversed.reverse();
        let mut a = OptimizeState::new(plan(), Vec::new());
        let mut b = OptimizeState::new(plan(), Vec::new());
        a.apply(0, batch);
        b.apply(0, reversed);
        assert_eq!(a.evaluate(1_800_000), b.evaluate(1_800_000));
    }
}
