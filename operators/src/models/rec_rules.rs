//! The optimizer's recommendation engine without the dataflow: recommendation rules (a CEL
//! condition over the documented context, a target selector and a template), the
//! [`Recommender`] interface rules and ML models share, and [`Publication`], which turns drafts
//! into records with deterministic ids, priorities, dedup and expiry, and emits a record only
//! when it is new or changed materially.
//!
//! The CEL context of one evaluation (one entity, one series a rule's selector matched) is
//! documented field by field in `docs/design.md` ("Optimizer"); [`check_paths`] rejects any other
//! field when the rules are loaded.

use std::collections::{BTreeMap, BTreeSet};

use cel::{Context, ExecutionError, Value};
use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::models::cel_rule::{shared_env, CelError, CelExpr};
use crate::models::rec_context::{Aggregates, EntityView, Horizons, OptimizeInput, SeriesStats};
use crate::records::{Level, RecommendationCategory, RecommendationRecord};
use crate::series::{stable_hash, EventTime};
use crate::time_format::rfc3339_millis;

/// How the optimizer runs (the `[settings]` table of `rules/recommendations.toml`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OptimizeSettings {
    /// Evaluation period in event time (ms): rules run at every multiple of it.
    pub every_ms: u64,
    /// The window spec whose features feed the optimizer (`None`: the first configured one).
    pub window: Option<String>,
    /// How long a recommendation stays valid unless renewed (ms).
    pub expire_ms: u64,
    /// Horizon lengths of the long-horizon aggregates and of the alert statistics.
    pub horizons: Horizons,
    /// Relative change of a numeric recommended value that counts as material (re-emitted).
    pub material_change: f64,
    /// Change of priority (points of 0–100) that counts as material.
    pub priority_change: f64,
    /// Alerts resolved within this time without an incident count as quick (ms).
    pub quick_ms: u64,
}

impl Default for OptimizeSettings {
    fn default() -> Self {
        OptimizeSettings {
            // Half an hour: capacity problems develop over hours, and evaluating more often
            // only re-confirms the same recommendations.
            every_ms: 1_800_000,
            window: None,
            // A day: a recommendation that no rule re-confirms for a day is stale.
            expire_ms: 86_400_000,
            horizons: Horizons {
                // Six hours covers a traffic phase (night, morning peak, ...).
                short_ms: 6 * 3_600_000,
                // A week covers the weekly season.
                long_ms: 7 * 86_400_000,
            },
            // 10 %: below that, re-tuning a request or threshold is churn.
            material_change: 0.1,
            priority_change: 10.0,
            // Ten minutes: an alert gone within two or three windows without an incident is noise.
            quick_ms: 600_000,
        }
    }
}

/// A piece of text with `{expression}` placeholders (CEL), `{{` and `}}` for literal braces.
#[derive(Debug)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Debug)]
enum Part {
    Text(String),
    Expr(CelExpr, usize),
}

impl Template {
    /// Parses `text`; errors carry the character offset in `text`.
    pub fn parse(text: &str) -> Result<Template, CelError> {
        let chars: Vec<char> = text.chars().collect();
        let mut parts = Vec::new();
        let mut lit = String::new();
        let mut i = 0;
        while i < chars.len() {
            match chars[i] {
                '{' if chars.get(i + 1) == Some(&'{') => {
                    lit.push('{');
                    i += 2;
                }
                '}' if chars.get(i + 1) == Some(&'}') => {
                    lit.push('}');
                    i += 2;
                }
                '{' => {
                    let start = i + 1;
                    let Some(len) = chars[start..].iter().position(|c| *c == '}') else {
                        return Err(CelError {
                            offset: i,
                            message: "unclosed `{` in template".into(),
                        });
                    };
                    let source: String = chars[start..start + len].iter().collect();
                    let expr = CelExpr::compile(&source).map_err(|e| CelError {
                        offset: start + e.offset,
                        message: e.message,
                    })?;
                    if !lit.is_empty() {
                        parts.push(Part::Text(std::mem::take(&mut lit)));
                    }
                    parts.push(Part::Expr(expr, start));
                    i = start + len + 1;
                }
                c => {
                    lit.push(c);
                    i += 1;
                }
            }
        }
        if !lit.is_empty() {
            parts.push(Part::Text(lit));
        }
        Ok(Template { parts })
    }

    /// The placeholder expressions with their offsets in the template.
    pub fn exprs(&self) -> impl Iterator<Item = (&CelExpr, usize)> {
        self.parts.iter().filter_map(|p| match p {
            Part::Expr(e, at) => Some((e, *at)),
            Part::Text(_) => None,
        })
    }

    fn render(&self, ctx: &Context<'_, '_>) -> Result<String, ExecutionError> {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Text(t) => out.push_str(t),
                Part::Expr(e, _) => out.push_str(&display(&e.eval(ctx)?)),
            }
        }
        Ok(out)
    }
}

/// A value as text: numbers with at most two decimals (trailing zeros dropped).
fn display(v: &Value) -> String {
    match v {
        Value::Float(d) => {
            let s = format!("{d:.2}");
            let s = s.trim_end_matches('0').trim_end_matches('.');
            if s == "-0" {
                "0".into()
            } else {
                s.to_string()
            }
        }
        Value::Int(i) => i.to_string(),
        Value::UInt(u) => u.to_string(),
        Value::String(s) => s.to_string(),
        Value::Bool(b) => b.to_string(),
        other => format!("{other:?}"),
    }
}

/// A CEL value as JSON: numbers rounded to three decimals so that noise in the last digits does
/// not make records differ; lists and maps of those.
fn to_json(v: &Value) -> Option<serde_json::Value> {
    Some(match v {
        Value::Float(d) if d.is_finite() => serde_json::json!((d * 1000.0).round() / 1000.0),
        Value::Int(i) => serde_json::json!(i),
        Value::UInt(u) => serde_json::json!(u),
        Value::String(s) => serde_json::json!(s.as_str()),
        Value::Bool(b) => serde_json::json!(b),
        Value::List(l) => serde_json::Value::Array(l.iter().map(to_json).collect::<Option<_>>()?),
        _ => return None,
    })
}

fn as_f64(v: &Value) -> Option<f64> {
    match v {
        Value::Float(d) => Some(*d),
        Value::Int(i) => Some(*i as f64),
        Value::UInt(u) => Some(*u as f64),
        _ => None,
    }
}

/// One compiled recommendation rule.
#[derive(Debug)]
pub struct RecRule {
    /// The rule's name (`source` is `rule:<name>`).
    pub name: String,
    /// Category of its recommendations.
    pub category: RecommendationCategory,
    /// Metric-name selector (anchored regular expression).
    pub metric: Regex,
    /// Labels the series must carry with these values.
    pub labels: BTreeMap<String, String>,
    /// The condition.
    pub when: CelExpr,
    /// The value in force now (optional).
    pub current: Option<CelExpr>,
    /// The value proposed.
    pub recommended: CelExpr,
    /// Expected improvement in percent of the targeted measure (optional; by default the
    /// relative change from current to recommended).
    pub improvement: Option<CelExpr>,
    /// Confidence in [0, 1] (optional; by default from history length and dispersion).
    pub confidence: Option<CelExpr>,
    /// Title template.
    pub title: Template,
    /// Description template.
    pub description: Template,
    /// Implementation step templates.
    pub steps: Vec<Template>,
    /// Effort.
    pub effort: Level,
    /// Risk.
    pub risk: Level,
    /// Validity of its recommendations (ms), overriding the settings'.
    pub expire_ms: Option<u64>,
    /// Config keys the rule reads: the rule applies only to entities that declare them all.
    pub config_keys: BTreeSet<String>,
}

impl RecRule {
    /// Every CEL expression of the rule, named by the TOML key it came from, with the offset of
    /// the expression inside that key's value (0 for plain expressions, the placeholder's for
    /// templates; steps are `steps` with their index).
    pub fn expressions(&self) -> Vec<(String, &CelExpr, usize)> {
        let mut out: Vec<(String, &CelExpr, usize)> = vec![("when".into(), &self.when, 0)];
        out.push(("recommended".into(), &self.recommended, 0));
        for (k, e) in [
            ("current", &self.current),
            ("improvement", &self.improvement),
            ("confidence", &self.confidence),
        ] {
            if let Some(e) = e {
                out.push((k.into(), e, 0));
            }
        }
        for (k, t) in [("title", &self.title), ("description", &self.description)] {
            out.extend(t.exprs().map(|(e, at)| (k.to_string(), e, at)));
        }
        for (i, t) in self.steps.iter().enumerate() {
            out.extend(t.exprs().map(|(e, at)| (format!("steps.{i}"), e, at)));
        }
        out
    }

    fn selects(&self, s: &SeriesStats) -> bool {
        self.metric.is_match(&s.key.name)
            && self
                .labels
                .iter()
                .all(|(k, v)| s.key.label(k) == Some(v.as_str()))
    }
}

/// Fields of `window` (the latest window of the series).
pub const WINDOW_FIELDS: &[&str] = &[
    "count",
    "mean",
    "min",
    "max",
    "std",
    "last",
    "p50",
    "p95",
    "p99",
    "rate_of_change",
    "counter_rate",
];
/// Fields of `hours` and `days` (long-horizon aggregates).
pub const AGGREGATE_FIELDS: &[&str] = &["p50", "p95", "p99", "max", "mean", "count"];
/// Fields of `forecast`.
pub const FORECAST_FIELDS: &[&str] = &[
    "available",
    "model",
    "horizon_hours",
    "age_minutes",
    "next",
    "peak",
    "peak_hi95",
    "trend_per_hour",
];
/// Fields of `capacity`.
pub const CAPACITY_FIELDS: &[&str] = &[
    "available",
    "rule",
    "limit",
    "above",
    "horizon_hours",
    "will_cross",
    "hours_to_limit",
    "probability",
    "linear_hours_to_limit",
];
/// Fields of `alerts`.
pub const ALERT_FIELDS: &[&str] = &[
    "opened",
    "open",
    "flapping",
    "resolved",
    "mttr_minutes",
    "without_incident",
    "quick_without_incident",
];
/// Fields of `incidents`.
pub const INCIDENT_FIELDS: &[&str] = &["opened", "open", "resolved", "mttr_minutes"];
/// Fields of each `metrics.<name>`.
pub const METRIC_FIELDS: &[&str] = &["mean", "max", "p95", "p99", "hours_p95", "days_p95"];
/// Top-level variables of the context.
pub const CONTEXT_FIELDS: &[&str] = &[
    "entity",
    "metric",
    "labels",
    "history_hours",
    "window",
    "hours",
    "days",
    "forecast",
    "capacity",
    "alerts",
    "incidents",
    "config",
    "metrics",
];

/// Checks every variable path `expr` reads against the context; returns the config keys it
/// reads, or the first unknown field with its offset. `config_keys` are the keys declared in
/// any `[[config]]` block.
pub fn check_paths(
    expr: &CelExpr,
    config_keys: &BTreeSet<String>,
) -> Result<BTreeSet<String>, CelError> {
    let mut used = BTreeSet::new();
    for (path, offset) in expr.paths() {
        let fields: Option<&[&str]> = match path[0].as_str() {
            "entity" | "metric" | "history_hours" => Some(&[]),
            "labels" => None,
            "window" => Some(WINDOW_FIELDS),
            "hours" | "days" => Some(AGGREGATE_FIELDS),
            "forecast" => Some(FORECAST_FIELDS),
            "capacity" => Some(CAPACITY_FIELDS),
            "alerts" => Some(ALERT_FIELDS),
            "incidents" => Some(INCIDENT_FIELDS),
            "config" => {
                if let Some(k) = path.get(1) {
                    if !config_keys.contains(k) {
                        return Err(CelError {
                            offset,
                            message: format!(
                                "unknown context field config.{k} (no [[config]] declares it)"
                            ),
                        });
                    }
                    used.insert(k.clone());
                }
                continue;
            }
            "metrics" => {
                if let Some(f) = path.get(2) {
                    if !METRIC_FIELDS.contains(&f.as_str()) {
                        return Err(CelError {
                            offset,
                            message: format!(
                                "unknown context field {} (metrics.<name> has: {})",
                                path.join("."),
                                METRIC_FIELDS.join(", ")
                            ),
                        });
                    }
                }
                continue;
            }
            other => {
                return Err(CelError {
                    offset,
                    message: format!(
                        "unknown context field {other} (known: {})",
                        CONTEXT_FIELDS.join(", ")
                    ),
                })
            }
        };
        let depth_ok = match fields {
            None => path.len() <= 2,
            Some([]) => path.len() == 1,
            Some(f) => path.get(1).is_none_or(|x| f.contains(&x.as_str())) && path.len() <= 2,
        };
        if !depth_ok {
            return Err(CelError {
                offset,
                message: format!(
                    "unknown context field {}{}",
                    path.join("."),
                    fields
                        .filter(|f| !f.is_empty())
                        .map_or(String::new(), |f| format!(
                            " ({} has: {})",
                            path[0],
                            f.join(", ")
                        ))
                ),
            });
        }
    }
    Ok(used)
}

/// A recommendation before the optimizer gives it an id, a priority and times.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Draft {
    /// `rule:<name>` or `ml:<model>`.
    pub source: String,
    /// Category.
    pub category: RecommendationCategory,
    /// One line for humans.
    pub title: String,
    /// Why, with numbers.
    pub description: String,
    /// The component changed.
    pub component: String,
    /// Labels identifying the target (with `category`, the dedup key: one recommendation per
    /// target and category, whichever recommender made it).
    pub target: BTreeMap<String, String>,
    /// Value in force now.
    pub current_value: Option<serde_json::Value>,
    /// Value proposed.
    pub recommended_value: serde_json::Value,
    /// Expected improvement (%), ≥ 0.
    pub expected_improvement: f64,
    /// Confidence in [0, 1].
    pub confidence: f64,
    /// How pressing the problem is, in [0, 1] (1: an incident is open).
    pub urgency: f64,
    /// Steps.
    pub implementation_steps: Vec<String>,
    /// Effort.
    pub estimated_effort: Level,
    /// Risk.
    pub risk_level: Level,
    /// Validity (ms from now), `None` for the settings' default.
    pub expire_ms: Option<u64>,
    /// Evidence.
    pub evidence: Vec<String>,
    /// A claim, not a recommendation: the model has enough history for this target and finds
    /// the value in force right, so a rule's draft for the same target and category is dropped
    /// and nothing is published (see [`select_drafts`]).
    pub claim_only: bool,
}

/// The plug-in interface of the optimizer: rules and ML models alike see every input of their
/// entities in event-time order and, at each evaluation, propose drafts for one entity.
///
/// An implementation must be deterministic: the same inputs in the same order give the same
/// drafts (the optimizer sorts inputs within a time before calling [`Recommender::observe`]).
pub trait Recommender {
    /// Name under which its state is saved in checkpoints (unique per optimizer).
    fn name(&self) -> &str;
    /// Sees one input of `entity` (default: nothing; models with their own state, e.g. decaying
    /// histograms, update it here).
    fn observe(&mut self, _entity: &str, _input: &OptimizeInput) {}
    /// Whether it reads the window features of series named `metric` (through the entity's
    /// book or [`Recommender::observe`]). The optimizer is sent the features only of metrics
    /// some recommender reads: routing every window of every series costs more than the rest
    /// of the stage. The default, true, is safe for a model that reads any series.
    fn reads_features(&self, _metric: &str) -> bool {
        true
    }
    /// Appends this evaluation's drafts for one entity to `out`.
    fn recommend(&mut self, view: &EntityView<'_>, out: &mut Vec<Draft>);
    /// Its state for a checkpoint (default: none).
    fn save(&self) -> serde_json::Value {
        serde_json::Value::Null
    }
    /// Restores [`Recommender::save`]'s output.
    fn load(&mut self, _state: serde_json::Value) -> Result<(), String> {
        Ok(())
    }
}

/// The compiled recommendation rules and settings.
#[derive(Debug, Default)]
pub struct OptimizePlan {
    /// Settings.
    pub settings: OptimizeSettings,
    /// Rules that compiled.
    pub rules: Vec<RecRule>,
    /// Declared configuration values per entity.
    pub config: BTreeMap<String, BTreeMap<String, f64>>,
    /// Static alert thresholds declared for tuning (`[[threshold]]`).
    pub thresholds: Vec<crate::models::optimize::threshold_tuning::StaticThreshold>,
    /// Rules left out because they do not compile, as `file:line:col: message` (reported at
    /// start; `harbinger validate` fails on them).
    pub rejected: Vec<String>,
}

/// The rules as a [`Recommender`].
pub struct RuleRecommender {
    plan: std::sync::Arc<OptimizePlan>,
    /// The metrics the rules read through `metrics.<name>` besides the series they select.
    other_metrics: OtherMetrics,
    /// Rules whose evaluation failed (reported once each).
    failed: BTreeSet<usize>,
}

/// Which metrics rules read through `metrics`, the entity's other series.
#[derive(Debug, Clone, PartialEq)]
enum OtherMetrics {
    /// Only these names (`metrics.<name>.<field>` paths).
    Named(BTreeSet<String>),
    /// Any: a rule reads `metrics` as a whole (e.g. `metrics[name]`), so no name is known.
    All,
}

impl OtherMetrics {
    /// Collects the `metrics` paths of every expression of `rules`.
    fn of(rules: &[RecRule]) -> Self {
        let mut names = BTreeSet::new();
        for path in rules
            .iter()
            .flat_map(|r| r.expressions())
            .flat_map(|(_, e, _)| e.paths())
            .map(|(path, _)| path)
            .filter(|path| path[0] == "metrics")
        {
            match path.get(1) {
                Some(name) => names.insert(name.clone()),
                None => return OtherMetrics::All,
            };
        }
        OtherMetrics::Named(names)
    }

    /// Whether rules read `metric` through `metrics`.
    fn contains(&self, metric: &str) -> bool {
        match self {
            OtherMetrics::Named(names) => names.contains(metric),
            OtherMetrics::All => true,
        }
    }
}

impl RuleRecommender {
    /// Runs the rules of `plan`.
    pub fn new(plan: std::sync::Arc<OptimizePlan>) -> Self {
        RuleRecommender {
            other_metrics: OtherMetrics::of(&plan.rules),
            plan,
            failed: BTreeSet::new(),
        }
    }

    /// Names of the rules whose evaluation failed at run time so far.
    pub fn failed_rules(&self) -> Vec<&str> {
        self.failed
            .iter()
            .filter_map(|i| self.plan.rules.get(*i).map(|r| r.name.as_str()))
            .collect()
    }

    fn report(&mut self, i: usize, what: &str, e: &dyn std::fmt::Display) {
        if self.failed.insert(i) {
            let name = self.plan.rules.get(i).map_or("?", |r| r.name.as_str());
            tracing::warn!(rule = %name, error = %e, "Recommendation rule failed to evaluate {what}; it is skipped where it fails (reported once).");
        }
    }
}

/// Feature values of a window as the rules see them.
#[derive(Serialize)]
struct WindowView {
    count: f64,
    mean: f64,
    min: f64,
    max: f64,
    std: f64,
    last: f64,
    p50: f64,
    p95: f64,
    p99: f64,
    rate_of_change: f64,
    counter_rate: f64,
}

#[derive(Serialize, Default)]
struct ForecastView {
    available: bool,
    model: String,
    horizon_hours: f64,
    age_minutes: f64,
    next: f64,
    peak: f64,
    peak_hi95: f64,
    trend_per_hour: f64,
}

#[derive(Serialize, Default)]
struct CapacityView {
    available: bool,
    rule: String,
    limit: f64,
    above: bool,
    horizon_hours: f64,
    will_cross: bool,
    hours_to_limit: f64,
    probability: f64,
    linear_hours_to_limit: f64,
}

#[derive(Serialize)]
struct MetricView {
    mean: f64,
    max: f64,
    p95: f64,
    p99: f64,
    hours_p95: f64,
    days_p95: f64,
}

const MS_PER_HOUR: f64 = 3_600_000.0;

/// Hours to a limit when the forecast does not cross it within the horizon: larger than any
/// horizon, so `capacity.hours_to_limit < 24.0` reads naturally.
const NEVER_HOURS: f64 = 1.0e9;

fn add<T: Serialize>(ctx: &mut Context<'_, '_>, name: &str, v: &T) {
    if let Ok(v) = cel::to_value(v) {
        ctx.add_variable_from_value(name, v);
    }
}

/// The context of one series of an entity (see `docs/design.md`, "Optimizer").
fn series_context(
    view: &EntityView<'_>,
    s: &SeriesStats,
    (hours, days): &(Aggregates, Aggregates),
    shared: &[(&'static str, Value)],
) -> Context<'static, 'static> {
    let mut ctx = Context::with_env(shared_env());
    for (k, v) in shared {
        ctx.add_variable_from_value(*k, v.clone());
    }
    let f = &s.latest;
    add(&mut ctx, "entity", &view.entity);
    add(&mut ctx, "metric", &s.key.name);
    let labels: BTreeMap<&str, &str> = s
        .key
        .labels
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    add(&mut ctx, "labels", &labels);
    add(
        &mut ctx,
        "history_hours",
        &(s.last.saturating_sub(s.first) as f64 / MS_PER_HOUR),
    );
    add(
        &mut ctx,
        "window",
        &WindowView {
            count: f.count as f64,
            mean: f.mean,
            min: f.min,
            max: f.max,
            std: f.std,
            last: f.last,
            p50: f.p50,
            p95: f.p95,
            p99: f.p99,
            rate_of_change: f.rate_of_change.unwrap_or(0.0),
            counter_rate: f.counter_rate,
        },
    );
    add(&mut ctx, "hours", hours);
    add(&mut ctx, "days", days);
    let (forecast, capacity) = match &s.forecast {
        None => (ForecastView::default(), CapacityView::default()),
        Some(fc) => (
            ForecastView {
                available: true,
                model: fc.model.clone(),
                horizon_hours: fc.horizon_ms as f64 / MS_PER_HOUR,
                age_minutes: view.now.saturating_sub(fc.time) as f64 / 60_000.0,
                next: fc.next,
                peak: fc.peak,
                peak_hi95: fc.peak_hi95,
                trend_per_hour: fc.trend_per_hour,
            },
            fc.capacity
                .as_ref()
                .map_or_else(CapacityView::default, |c| {
                    // Time to the limit counts from now, not from when the forecast was made.
                    let age = view.now.saturating_sub(fc.time) as f64;
                    let hours = |ms: Option<u64>| {
                        ms.map_or(NEVER_HOURS, |ms| ((ms as f64 - age) / MS_PER_HOUR).max(0.0))
                    };
                    CapacityView {
                        available: true,
                        rule: c.rule.clone(),
                        limit: c.limit,
                        above: c.direction == crate::records::LimitDirection::Above,
                        horizon_hours: c.horizon_ms as f64 / MS_PER_HOUR,
                        will_cross: c.time_to_limit_ms.is_some(),
                        hours_to_limit: hours(c.time_to_limit_ms),
                        probability: c.probability,
                        linear_hours_to_limit: hours(c.linear_time_to_limit_ms),
                    }
                }),
        ),
    };
    add(&mut ctx, "forecast", &forecast);
    add(&mut ctx, "capacity", &capacity);
    ctx
}

/// Variables shared by every series of the entity; `aggregates` are each series' (hours, days).
fn entity_context(
    view: &EntityView<'_>,
    aggregates: &[Option<(Aggregates, Aggregates)>],
    other_metrics: &OtherMetrics,
) -> Vec<(&'static str, Value)> {
    let mut metrics = BTreeMap::new();
    for (s, aggs) in view.book.series.values().zip(aggregates) {
        let Some((hours, days)) = aggs
            .as_ref()
            .filter(|_| other_metrics.contains(&s.key.name))
        else {
            continue;
        };
        // Series of the same metric with other labels: the first (by id) stands for them.
        metrics
            .entry(s.key.name.as_str())
            .or_insert_with(|| MetricView {
                mean: s.latest.mean,
                max: s.latest.max,
                p95: s.latest.p95,
                p99: s.latest.p99,
                hours_p95: hours.p95,
                days_p95: days.p95,
            });
    }
    let mut out = Vec::new();
    let mut push = |k: &'static str, v: Result<Value, _>| {
        if let Ok(v) = v {
            out.push((k, v));
        }
    };
    push(
        "alerts",
        cel::to_value(view.book.alerts.view(view.quick_ms)),
    );
    push("incidents", cel::to_value(view.book.incidents.view()));
    push("config", cel::to_value(view.config));
    push("metrics", cel::to_value(&metrics));
    out
}

/// Confidence of a rule's recommendation when the rule does not say: how much history backs it
/// (a day covers the daily season, so coverage is history/24 h capped at 1) times how steady the
/// series is (1 − half the relative spread (p99 − p50)/|p99| of the days horizon): percentiles of
/// a short or wildly spread history are less trustworthy.
pub fn default_confidence(history_hours: f64, days: &Aggregates) -> f64 {
    let coverage = (history_hours / 24.0).clamp(0.0, 1.0);
    let spread = if days.p99.abs() > 1e-12 {
        ((days.p99 - days.p50) / days.p99.abs()).clamp(0.0, 1.0)
    } else {
        0.0
    };
    coverage * (1.0 - spread / 2.0)
}

/// Urgency of a recommendation for the entity: 1 with an open incident, 0.8 when the series'
/// capacity forecast crosses its limit, 0.5 with open alerts, 0.2 otherwise (a recommendation
/// that only saves money can wait).
pub fn urgency(view: &EntityView<'_>, s: &SeriesStats) -> f64 {
    let crossing = s
        .forecast
        .as_ref()
        .and_then(|f| f.capacity.as_ref())
        .is_some_and(|c| c.time_to_limit_ms.is_some());
    if view.book.incidents.view().open > 0.0 {
        1.0
    } else if crossing {
        0.8
    } else if view.book.alerts.view(view.quick_ms).open > 0.0 {
        0.5
    } else {
        0.2
    }
}

enum Outcome<T> {
    Value(T),
    /// The rule does not apply here (a label or metric it reads is missing).
    NotApplicable,
    Failed(ExecutionError),
}

fn eval(e: &CelExpr, ctx: &Context<'_, '_>) -> Outcome<Value> {
    match e.eval(ctx) {
        Ok(v) => Outcome::Value(v),
        Err(ExecutionError::NoSuchKey(_)) => Outcome::NotApplicable,
        Err(e) => Outcome::Failed(e),
    }
}

impl Recommender for RuleRecommender {
    fn name(&self) -> &str {
        "rules"
    }

    fn reads_features(&self, metric: &str) -> bool {
        self.other_metrics.contains(metric)
            || self.plan.rules.iter().any(|r| r.metric.is_match(metric))
    }

    fn recommend(&mut self, view: &EntityView<'_>, out: &mut Vec<Draft>) {
        let plan = self.plan.clone();
        let applicable = |rule: &RecRule, s: &SeriesStats| {
            rule.selects(s) && rule.config_keys.iter().all(|k| view.config.contains_key(k))
        };
        let series = &view.book.series;
        if !series
            .values()
            .any(|s| plan.rules.iter().any(|r| applicable(r, s)))
        {
            return;
        }
        // Percentiles merge two sketches: compute them once per series and evaluation, and
        // only for the series a rule selects or reads through `metrics`.
        let aggregates: Vec<Option<(Aggregates, Aggregates)>> = series
            .values()
            .map(|s| {
                let read = self.other_metrics.contains(&s.key.name)
                    || plan.rules.iter().any(|r| applicable(r, s));
                read.then(|| (s.short.aggregates(), s.long.aggregates()))
            })
            .collect();
        let shared = entity_context(view, &aggregates, &self.other_metrics);
        for (s, aggs) in series.values().zip(&aggregates) {
            let Some(aggs) = aggs else { continue };
            let mut ctx = None;
            for (i, rule) in plan.rules.iter().enumerate() {
                if !applicable(rule, s) {
                    continue;
                }
                let ctx = ctx.get_or_insert_with(|| series_context(view, s, aggs, &shared));
                match self.draft(view, s, aggs, rule, ctx) {
                    Outcome::Value(Some(d)) => out.push(d),
                    Outcome::Value(None) | Outcome::NotApplicable => {}
                    Outcome::Failed(e) => self.report(i, "", &e),
                }
            }
        }
    }
}

impl RuleRecommender {
    fn draft(
        &mut self,
        view: &EntityView<'_>,
        s: &SeriesStats,
        (hours, days): &(Aggregates, Aggregates),
        rule: &RecRule,
        ctx: &Context<'_, '_>,
    ) -> Outcome<Option<Draft>> {
        macro_rules! get {
            ($e:expr) => {
                match $e {
                    Outcome::Value(v) => v,
                    Outcome::NotApplicable => return Outcome::NotApplicable,
                    Outcome::Failed(e) => return Outcome::Failed(e),
                }
            };
        }
        match get!(eval(&rule.when, ctx)) {
            Value::Bool(true) => {}
            Value::Bool(false) => return Outcome::Value(None),
            other => {
                return Outcome::Failed(ExecutionError::UnexpectedType {
                    got: format!("{other:?}"),
                    want: "bool (when)".into(),
                })
            }
        }
        let recommended = get!(eval(&rule.recommended, ctx));
        let Some(recommended_value) = to_json(&recommended) else {
            return Outcome::Failed(ExecutionError::UnexpectedType {
                got: format!("{recommended:?}"),
                want: "a finite number, string, bool or list (recommended)".into(),
            });
        };
        let current = match &rule.current {
            Some(c) => Some(get!(eval(c, ctx))),
            None => None,
        };
        let number = |v: Value, what: &str| match as_f64(&v) {
            Some(x) if x.is_finite() => Outcome::Value(x),
            _ => Outcome::Failed(ExecutionError::UnexpectedType {
                got: format!("{v:?}"),
                want: format!("a finite number ({what})"),
            }),
        };
        // Expected improvement: the rule's own measure when it has one, else the relative change
        // of the value itself (what moving from current to recommended changes, in percent).
        let improvement = match &rule.improvement {
            Some(e) => get!(number(get!(eval(e, ctx)), "improvement")),
            None => match (current.as_ref().and_then(as_f64), as_f64(&recommended)) {
                (Some(c), Some(r)) if c.abs() > 1e-12 => ((r - c) / c).abs() * 100.0,
                _ => 0.0,
            },
        };
        let history_hours = s.last.saturating_sub(s.first) as f64 / MS_PER_HOUR;
        let confidence = match &rule.confidence {
            Some(e) => get!(number(get!(eval(e, ctx)), "confidence")),
            None => default_confidence(history_hours, days),
        };
        let title = get!(render(&rule.title, ctx));
        let description = get!(render(&rule.description, ctx));
        let mut steps = Vec::with_capacity(rule.steps.len());
        for t in &rule.steps {
            steps.push(get!(render(t, ctx)));
        }
        let mut target: BTreeMap<String, String> = s.key.labels.iter().cloned().collect();
        target.insert("metric".into(), s.key.name.clone());
        let evidence = vec![
            format!(
                "{}: latest window mean {}, p95 {}",
                s.key.name,
                display(&Value::Float(s.latest.mean)),
                display(&Value::Float(s.latest.p95))
            ),
            format!(
                "{} windows over {:.1} h: hours p95 {}, days p50/p95/p99 {}/{}/{}",
                days.count,
                history_hours,
                display(&Value::Float(hours.p95)),
                display(&Value::Float(days.p50)),
                display(&Value::Float(days.p95)),
                display(&Value::Float(days.p99))
            ),
            format!("condition: {}", rule.when.source()),
        ];
        Outcome::Value(Some(Draft {
            source: format!("rule:{}", rule.name),
            category: rule.category,
            title,
            description,
            component: view.entity.to_string(),
            target,
            current_value: current.as_ref().and_then(to_json),
            recommended_value,
            expected_improvement: improvement.clamp(0.0, 100.0),
            confidence: confidence.clamp(0.0, 1.0),
            urgency: urgency(view, s),
            implementation_steps: steps,
            estimated_effort: rule.effort,
            risk_level: rule.risk,
            expire_ms: rule.expire_ms,
            evidence,
            claim_only: false,
        }))
    }
}

fn render(t: &Template, ctx: &Context<'_, '_>) -> Outcome<String> {
    match t.render(ctx) {
        Ok(s) => Outcome::Value(s),
        Err(ExecutionError::NoSuchKey(_)) => Outcome::NotApplicable,
        Err(e) => Outcome::Failed(e),
    }
}

/// The deterministic id of a recommendation: a hash of its category and target, so an update of
/// the same recommendation keeps its id, whichever recommender made it (one recommendation per
/// target and category; [`select_drafts`] picks the source).
pub fn recommendation_id(
    category: RecommendationCategory,
    target: &BTreeMap<String, String>,
) -> String {
    let mut bytes = Vec::new();
    bytes.extend_from_slice(format!("{category:?}").as_bytes());
    for (k, v) in target {
        bytes.push(0xFF);
        bytes.extend_from_slice(k.as_bytes());
        bytes.push(0xFE);
        bytes.extend_from_slice(v.as_bytes());
    }
    format!("{:016x}", stable_hash(&bytes))
}

/// One draft per target and category, out of one entity's drafts of one evaluation (the rules'
/// and the models'). A model's draft (`ml:*`) beats a rule's: a model recommends only once it
/// has the history its confidence floor asks for, and then it has seen more than a rule's
/// threshold test (right-sizing forecasts the coming peak that `cpu-request-rightsize` only
/// scales from the last hours; capacity scaling sizes what the forecast rules only flag). A
/// model's claim ([`Draft::claim_only`]) drops the rule's draft and publishes nothing. Among
/// drafts of the same kind the higher confidence wins, then the source name (deterministic).
/// The order of the kept drafts is their first appearance.
pub fn select_drafts(drafts: Vec<Draft>) -> Vec<Draft> {
    if drafts.len() < 2 {
        return drafts.into_iter().filter(|d| !d.claim_only).collect();
    }
    let rank = |d: &Draft| (d.source.starts_with("ml:"), d.confidence);
    let mut best: BTreeMap<String, (usize, Draft)> = BTreeMap::new();
    for (i, d) in drafts.into_iter().enumerate() {
        let id = recommendation_id(d.category, &d.target);
        match best.get_mut(&id) {
            None => {
                best.insert(id, (i, d));
            }
            Some((_, kept)) => {
                let (a, b) = (rank(&d), rank(kept));
                let wins =
                    a.0.cmp(&b.0)
                        .then(a.1.total_cmp(&b.1))
                        .then(kept.source.cmp(&d.source))
                        .is_gt();
                if wins {
                    *kept = d;
                }
            }
        }
    }
    let mut kept: Vec<(usize, Draft)> = best.into_values().filter(|(_, d)| !d.claim_only).collect();
    kept.sort_by_key(|(i, _)| *i);
    kept.into_iter().map(|(_, d)| d).collect()
}

/// Priority 0–100: confidence times the mean of the expected improvement (as a fraction) and the
/// urgency, discounted by risk (×1, ×0.85, ×0.7 for low, medium, high: a risky change must be
/// worth more to rank the same).
pub fn priority(d: &Draft) -> f64 {
    let risk = match d.risk_level {
        Level::Low => 1.0,
        Level::Medium => 0.85,
        Level::High => 0.7,
    };
    let p = 100.0 * d.confidence * (0.5 * d.expected_improvement / 100.0 + 0.5 * d.urgency) * risk;
    (p.clamp(0.0, 100.0) * 10.0).round() / 10.0
}

/// What was last emitted for one recommendation id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Emitted {
    value: serde_json::Value,
    priority: f64,
    expires_at: EventTime,
    /// Which recommender made it (another taking over the target is a change worth emitting).
    #[serde(default)]
    source: String,
}

/// The published recommendations: dedup by id, material-change detection and expiry.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Publication {
    emitted: BTreeMap<String, Emitted>,
}

impl Publication {
    /// Forgets recommendations that expired before `now` (a later draft is new again).
    pub fn expire(&mut self, now: EventTime) {
        self.emitted.retain(|_, e| e.expires_at > now);
    }

    /// Number of live recommendations.
    pub fn len(&self) -> usize {
        self.emitted.len()
    }

    /// Whether none is live.
    pub fn is_empty(&self) -> bool {
        self.emitted.is_empty()
    }

    /// Turns a draft made at `now` into a record if it is new, changed materially (recommended
    /// value by more than `material_change` relative, priority by `priority_change` points, or
    /// another recommender took the target over), or would expire before the next evaluation
    /// (renewal); `None` otherwise.
    pub fn publish(
        &mut self,
        d: Draft,
        now: EventTime,
        settings: &OptimizeSettings,
    ) -> Option<RecommendationRecord> {
        let id = recommendation_id(d.category, &d.target);
        let priority = priority(&d);
        if let Some(old) = self.emitted.get(&id) {
            let value_changed = match (old.value.as_f64(), d.recommended_value.as_f64()) {
                (Some(a), Some(b)) => (b - a).abs() > settings.material_change * a.abs().max(1e-9),
                _ => old.value != d.recommended_value,
            };
            let priority_changed = (old.priority - priority).abs() >= settings.priority_change;
            let lapsing = old.expires_at <= now.saturating_add(settings.every_ms);
            let source_changed = old.source != d.source;
            if !(value_changed || priority_changed || lapsing || source_changed) {
                return None;
            }
        }
        let expires_at = now.saturating_add(d.expire_ms.unwrap_or(settings.expire_ms));
        self.emitted.insert(
            id.clone(),
            Emitted {
                value: d.recommended_value.clone(),
                priority,
                expires_at,
                source: d.source.clone(),
            },
        );
        Some(RecommendationRecord {
            recommendation_id: id,
            category: d.category,
            title: d.title,
            description: d.description,
            component: d.component,
            target: d.target,
            current_value: d.current_value,
            recommended_value: d.recommended_value,
            expected_improvement: (d.expected_improvement * 10.0).round() / 10.0,
            confidence: (d.confidence * 1000.0).round() / 1000.0,
            implementation_steps: d.implementation_steps,
            estimated_effort: d.estimated_effort,
            risk_level: d.risk_level,
            priority,
            created_at: rfc3339_millis(now),
            expires_at: rfc3339_millis(expires_at),
            source: d.source,
            evidence: d.evidence,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(k: &[&str]) -> BTreeSet<String> {
        k.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn templates_render_placeholders_and_literal_braces() {
        let t = Template::parse("x={a * 2.0} {{lit}} {name}").unwrap();
        let mut ctx = Context::with_env(shared_env());
        ctx.add_variable_from_value("a", 1.25);
        ctx.add_variable_from_value("name", "orders");
        assert_eq!(t.render(&ctx).unwrap(), "x=2.5 {lit} orders");
        let e = Template::parse("ab {a >}").unwrap_err();
        assert!(e.offset >= 4, "{e:?}");
        assert_eq!(Template::parse("ab {a").unwrap_err().offset, 3);
    }

    #[test]
    fn paths_are_checked_against_the_context() {
        let ok = CelExpr::compile(
            "window.p95 > hours.p99 && days.count > 1.0 && labels.zone == 'a' && \
             metrics.cpu.hours_p95 > 1.0 && config.pool_size > 1.0 && entity == 'x'",
        )
        .unwrap();
        assert_eq!(
            check_paths(&ok, &keys(&["pool_size"])).unwrap(),
            keys(&["pool_size"])
        );
        for (bad, at) in [
            ("window.p96 > 1.0", 0),
            ("1.0 < hours.max.x", 6),
            ("metrics.cpu.p42 > 0.0", 0),
            ("config.nope > 1.0", 0),
            ("entity.x == 'a'", 0),
            ("foo > 1", 0),
        ] {
            let e = check_paths(&CelExpr::compile(bad).unwrap(), &keys(&["pool_size"]));
            assert_eq!(e.map_err(|e| e.offset), Err(at), "{bad}");
        }
    }

    #[test]
    fn one_draft_per_target_and_category_models_first() {
        let mk = |source: &str, confidence: f64, claim: bool| Draft {
            source: source.into(),
            confidence,
            claim_only: claim,
            ..draft(1.0, confidence)
        };
        let other = Draft {
            target: [("service".to_string(), "other".to_string())].into(),
            ..mk("rule:x", 0.9, false)
        };
        // The model wins over a more confident rule; the other target is kept, in order.
        let kept = select_drafts(vec![
            other.clone(),
            mk("rule:x", 0.9, false),
            mk("ml:m", 0.3, false),
        ]);
        let sources: Vec<&str> = kept.iter().map(|d| d.source.as_str()).collect();
        assert_eq!(sources, ["rule:x", "ml:m"]);
        assert_eq!(kept[0].target, other.target);
        // A model's claim drops the rule's draft and publishes nothing.
        assert!(select_drafts(vec![mk("rule:x", 0.9, false), mk("ml:m", 0.5, true)]).is_empty());
        assert!(select_drafts(vec![mk("ml:m", 0.5, true)]).is_empty());
        // Between rules: the higher confidence, then the name.
        let kept = select_drafts(vec![mk("rule:b", 0.5, false), mk("rule:a", 0.7, false)]);
        assert_eq!(kept[0].source, "rule:a");
        let kept = select_drafts(vec![mk("rule:b", 0.5, false), mk("rule:a", 0.5, false)]);
        assert_eq!(kept[0].source, "rule:a");
        // The id does not depend on the source: a takeover updates the same recommendation.
        let settings = OptimizeSettings::default();
        let mut p = Publication::default();
        let a = p
            .publish(mk("rule:x", 0.9, false), 0, &settings)
            .expect("new");
        assert!(p.publish(mk("rule:x", 0.9, false), 1, &settings).is_none());
        let b = p
            .publish(mk("ml:m", 0.9, false), 2, &settings)
            .expect("takeover");
        assert_eq!(a.recommendation_id, b.recommendation_id);
        assert_eq!(b.source, "ml:m");
    }

    fn draft(value: f64, confidence: f64) -> Draft {
        Draft {
            source: "rule:x".into(),
            category: RecommendationCategory::ConfigurationTuning,
            title: "t".into(),
            description: "d".into(),
            component: "c".into(),
            target: [("service".to_string(), "c".to_string())].into(),
            current_value: None,
            recommended_value: serde_json::json!(value),
            expected_improvement: 40.0,
            confidence,
            urgency: 0.2,
            implementation_steps: vec![],
            estimated_effort: Level::Low,
            risk_level: Level::Medium,
            expire_ms: None,
            evidence: vec![],
            claim_only: false,
        }
    }

    #[test]
    fn priority_weighs_improvement_urgency_confidence_and_risk() {
        // 100 × 0.5 × (0.5 × 0.4 + 0.5 × 0.2) × 0.85 = 12.75 → 12.8 (one decimal).
        assert_eq!(priority(&draft(1.0, 0.5)), 12.8);
    }

    #[test]
    fn publication_emits_new_material_and_lapsing_only() {
        let s = OptimizeSettings::default();
        let mut p = Publication::default();
        let first = p.publish(draft(10.0, 0.5), 0, &s).unwrap();
        assert_eq!(first.expires_at, rfc3339_millis(s.expire_ms));
        // 5 % change: not material.
        assert!(p.publish(draft(10.5, 0.5), s.every_ms, &s).is_none());
        // 20 % change: material, same id.
        let changed = p.publish(draft(12.0, 0.5), 2 * s.every_ms, &s).unwrap();
        assert_eq!(changed.recommendation_id, first.recommendation_id);
        // Priority up by ≥ 10 points.
        assert!(p.publish(draft(12.0, 1.0), 3 * s.every_ms, &s).is_some());
        // Close to expiry: renewed.
        let late = 3 * s.every_ms + s.expire_ms - s.every_ms;
        assert!(p.publish(draft(12.0, 1.0), late, &s).is_some());
        // After expiry it is forgotten.
        p.expire(late + s.expire_ms);
        assert!(p.is_empty());
    }
}
