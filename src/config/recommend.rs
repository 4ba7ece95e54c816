//! `rules/recommendations.toml`: the optimizer's settings, the configuration values declared per
//! service, the recommendation rules (CEL condition, target selector, template), and the static
//! alert thresholds the threshold-tuning model reviews (`[[threshold]]`).
//!
//! Structural errors (unknown keys, wrong types, a bad regular expression, bad settings) fail
//! the load like any config error. A rule whose CEL does not compile or reads an unknown context
//! field is *rejected*: listed with file:line:col in [`OptimizePlan::rejected`], which
//! `harbinger validate` reports as an error and `run`/`replay` report as a warning while the other
//! rules keep running.

use std::collections::{BTreeMap, BTreeSet};

use operators::models::cel_rule::{CelError, CelExpr};
use operators::models::optimize::threshold_tuning::StaticThreshold;
use operators::models::rec_context::Horizons;
use operators::models::rec_rules::{
    check_paths, OptimizePlan, OptimizeSettings, RecRule, Template,
};
use operators::models::window_stats::Feature;
use operators::records::{Level, LimitDirection, RecommendationCategory};
use operators::rules::anchored_regex;
use serde::Deserialize;
use toml::Spanned;

use super::error::{ConfigError, SourceText};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    settings: Option<Spanned<RawSettings>>,
    #[serde(default)]
    config: Vec<Spanned<BTreeMap<String, Spanned<toml::Value>>>>,
    #[serde(default)]
    recommendation: Vec<RawRule>,
    #[serde(default)]
    threshold: Vec<RawThreshold>,
}

/// A `[[threshold]]`: a static alert threshold whose per-entity value is a `[[config]]` key.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawThreshold {
    name: Spanned<String>,
    config: Spanned<String>,
    metric: Spanned<String>,
    #[serde(default)]
    feature: Option<Feature>,
    #[serde(default)]
    direction: Option<LimitDirection>,
    #[serde(default)]
    for_minutes: Option<Spanned<f64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSettings {
    every_minutes: Option<f64>,
    window: Option<String>,
    expire_hours: Option<f64>,
    short_horizon_hours: Option<f64>,
    long_horizon_days: Option<f64>,
    material_change: Option<f64>,
    priority_change: Option<f64>,
    quick_resolve_minutes: Option<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    name: Spanned<String>,
    category: RecommendationCategory,
    metric: Spanned<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    when: Spanned<String>,
    #[serde(default)]
    current: Option<Spanned<String>>,
    recommended: Spanned<String>,
    #[serde(default)]
    improvement: Option<Spanned<String>>,
    #[serde(default)]
    confidence: Option<Spanned<String>>,
    title: Spanned<String>,
    description: Spanned<String>,
    #[serde(default)]
    steps: Vec<Spanned<String>>,
    effort: Level,
    risk: Level,
    #[serde(default)]
    expire_hours: Option<f64>,
}

/// Byte offset in the file of character `offset` of a string value written at `span` (after its
/// opening quotes; a multi-line string's first newline is not part of the value). Escapes inside
/// basic strings shift the column slightly; rules rarely need them.
fn value_offset(text: &str, span: &std::ops::Range<usize>, offset: usize) -> usize {
    let raw = text.get(span.start..span.end).unwrap_or("");
    let mut skip = if raw.starts_with("'''") || raw.starts_with("\"\"\"") {
        3
    } else if raw.starts_with('\'') || raw.starts_with('"') {
        1
    } else {
        0
    };
    let rest = &raw[skip..];
    if skip == 3 {
        if rest.starts_with("\r\n") {
            skip += 2;
        } else if rest.starts_with('\n') {
            skip += 1;
        }
    }
    let body = &raw[skip..];
    let inner = body
        .char_indices()
        .nth(offset)
        .map_or(body.len(), |(i, _)| i);
    span.start + skip + inner
}

fn hours_ms(h: f64) -> Option<u64> {
    (h.is_finite() && h > 0.0).then(|| (h * 3_600_000.0).round() as u64)
}

type Compiled<T> = Result<(T, BTreeSet<String>), CelError>;

/// Compiles one expression and checks its fields; returns it with the config keys it reads.
fn compile_expr(value: &Spanned<String>, config_keys: &BTreeSet<String>) -> Compiled<CelExpr> {
    let e = CelExpr::compile(value.get_ref())?;
    let used = check_paths(&e, config_keys)?;
    Ok((e, used))
}

/// Parses a template and checks the fields of its placeholders.
fn compile_template(value: &Spanned<String>, config_keys: &BTreeSet<String>) -> Compiled<Template> {
    let t = Template::parse(value.get_ref())?;
    let mut used = BTreeSet::new();
    for (e, at) in t.exprs() {
        used.extend(check_paths(e, config_keys).map_err(|err| CelError {
            offset: at + err.offset,
            message: err.message,
        })?);
    }
    Ok((t, used))
}

/// Loads the file at `src`.
pub fn recommendations(src: &SourceText<'_>, errors: &mut Vec<ConfigError>) -> OptimizePlan {
    let raw: RawFile = match toml::from_str(src.text) {
        Ok(r) => r,
        Err(e) => {
            errors.push(src.toml_error(&e));
            return OptimizePlan::default();
        }
    };
    let mut settings = OptimizeSettings::default();
    if let Some(s) = &raw.settings {
        let span = s.span();
        let r = s.get_ref();
        let mut positive = |v: Option<f64>, scale: f64, what: &str, into: &mut u64| {
            if let Some(v) = v {
                match hours_ms(v * scale) {
                    Some(ms) => *into = ms,
                    None => {
                        errors.push(src.error(span.clone(), format!("{what} must be a number > 0")))
                    }
                }
            }
        };
        positive(
            r.every_minutes,
            1.0 / 60.0,
            "every_minutes",
            &mut settings.every_ms,
        );
        positive(r.expire_hours, 1.0, "expire_hours", &mut settings.expire_ms);
        let mut h: Horizons = settings.horizons;
        positive(
            r.short_horizon_hours,
            1.0,
            "short_horizon_hours",
            &mut h.short_ms,
        );
        positive(
            r.long_horizon_days,
            24.0,
            "long_horizon_days",
            &mut h.long_ms,
        );
        positive(
            r.quick_resolve_minutes,
            1.0 / 60.0,
            "quick_resolve_minutes",
            &mut settings.quick_ms,
        );
        settings.horizons = h;
        for (v, what, into) in [
            (
                r.material_change,
                "material_change",
                &mut settings.material_change,
            ),
            (
                r.priority_change,
                "priority_change",
                &mut settings.priority_change,
            ),
        ] {
            if let Some(v) = v {
                if v.is_finite() && v >= 0.0 {
                    *into = v;
                } else {
                    errors.push(src.error(span.clone(), format!("{what} must be a number ≥ 0")));
                }
            }
        }
        settings.window = r.window.clone();
    }

    let mut config: BTreeMap<String, BTreeMap<String, f64>> = BTreeMap::new();
    for block in &raw.config {
        let table = block.get_ref();
        let Some(service) = table.get("service").and_then(|v| v.get_ref().as_str()) else {
            errors.push(src.error(block.span(), "[[config]] needs service = \"<entity>\""));
            continue;
        };
        let values = config.entry(service.to_string()).or_default();
        for (k, v) in table {
            if k == "service" {
                continue;
            }
            match v.get_ref() {
                toml::Value::Float(f) if f.is_finite() => {
                    values.insert(k.clone(), *f);
                }
                toml::Value::Integer(i) => {
                    values.insert(k.clone(), *i as f64);
                }
                _ => {
                    errors.push(src.error(v.span(), format!("config value {k:?} must be a number")))
                }
            }
        }
    }
    let config_keys: BTreeSet<String> = config.values().flat_map(|m| m.keys().cloned()).collect();

    let mut rules = Vec::new();
    let mut rejected = Vec::new();
    let mut names = BTreeSet::new();
    for r in raw.recommendation {
        if !names.insert(r.name.get_ref().clone()) {
            errors.push(src.error(
                r.name.span(),
                format!("duplicate rule name {:?}", r.name.get_ref()),
            ));
            continue;
        }
        let metric = match anchored_regex(r.metric.get_ref()) {
            Ok(m) => m,
            Err(e) => {
                errors.push(src.error(r.metric.span(), format!("invalid regular expression: {e}")));
                continue;
            }
        };
        let name = r.name.get_ref().clone();
        // Every CEL error of the rule, located in the file.
        let mut cel_errors: Vec<ConfigError> = Vec::new();
        let mut used = BTreeSet::new();
        macro_rules! take {
            ($value:expr, $result:expr) => {
                match $result {
                    Ok((x, u)) => {
                        used.extend(u);
                        Some(x)
                    }
                    Err(e) => {
                        let value: &Spanned<String> = $value;
                        let at = value_offset(src.text, &value.span(), e.offset);
                        cel_errors.push(src.error(at..at, format!("rule {name:?}: {}", e.message)));
                        None
                    }
                }
            };
        }
        let when = take!(&r.when, compile_expr(&r.when, &config_keys));
        let recommended = take!(&r.recommended, compile_expr(&r.recommended, &config_keys));
        let mut optional = |v: &Option<Spanned<String>>| match v {
            Some(v) => take!(v, compile_expr(v, &config_keys)),
            None => None,
        };
        let current = optional(&r.current);
        let improvement = optional(&r.improvement);
        let confidence = optional(&r.confidence);
        let title = take!(&r.title, compile_template(&r.title, &config_keys));
        let description = take!(
            &r.description,
            compile_template(&r.description, &config_keys)
        );
        let mut steps = Vec::new();
        for st in &r.steps {
            steps.extend(take!(st, compile_template(st, &config_keys)));
        }
        let expire_ms = match r.expire_hours {
            None => None,
            Some(h) => match hours_ms(h) {
                Some(ms) => Some(ms),
                None => {
                    errors.push(src.error(r.name.span(), "expire_hours must be a number > 0"));
                    continue;
                }
            },
        };
        if !cel_errors.is_empty() {
            rejected.extend(cel_errors.iter().map(|e| e.to_string()));
            continue;
        }
        let (Some(when), Some(recommended), Some(title), Some(description)) =
            (when, recommended, title, description)
        else {
            continue;
        };
        rules.push(RecRule {
            name: r.name.into_inner(),
            category: r.category,
            metric,
            labels: r.labels,
            when,
            current,
            recommended,
            improvement,
            confidence,
            title,
            description,
            steps,
            effort: r.effort,
            risk: r.risk,
            expire_ms,
            config_keys: used,
        });
    }
    let thresholds = thresholds(src, &raw.threshold, &config_keys, errors);
    OptimizePlan {
        settings,
        rules,
        config,
        thresholds,
        rejected,
    }
}

/// The `[[threshold]]` declarations: unique names, a `config` key some `[[config]]` declares,
/// a `for` of zero or more minutes. Defaults: feature `mean` (as the rules' aggregates),
/// direction `above`, `for` 5 minutes (a common Prometheus alerting-rule `for`).
fn thresholds(
    src: &SourceText<'_>,
    raw: &[RawThreshold],
    config_keys: &BTreeSet<String>,
    errors: &mut Vec<ConfigError>,
) -> Vec<StaticThreshold> {
    let mut out: Vec<StaticThreshold> = Vec::new();
    for t in raw {
        let name = t.name.get_ref();
        if out.iter().any(|o| o.name == *name) {
            errors.push(src.error(t.name.span(), format!("duplicate threshold name {name:?}")));
            continue;
        }
        if !config_keys.contains(t.config.get_ref()) {
            errors.push(src.error(
                t.config.span(),
                format!(
                    "threshold {name:?}: no [[config]] declares {:?}",
                    t.config.get_ref()
                ),
            ));
            continue;
        }
        if t.metric.get_ref().trim().is_empty() {
            errors.push(src.error(t.metric.span(), "metric must name a metric"));
            continue;
        }
        let for_minutes = t.for_minutes.as_ref().map_or(5.0, |f| *f.get_ref());
        if !(for_minutes.is_finite() && (0.0..=10_080.0).contains(&for_minutes)) {
            let span = t.for_minutes.as_ref().map_or(t.name.span(), |f| f.span());
            errors.push(src.error(span, "for_minutes must be between 0 and 10080 (a week)"));
            continue;
        }
        out.push(StaticThreshold {
            name: name.clone(),
            config: t.config.get_ref().clone(),
            metric: t.metric.get_ref().clone(),
            feature: t.feature.unwrap_or(Feature::Mean),
            direction: t.direction.unwrap_or(LimitDirection::Above),
            for_ms: (for_minutes * 60_000.0).round() as u64,
        });
    }
    out
}
