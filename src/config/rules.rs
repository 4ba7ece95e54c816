//! Rule files under `rules/`: what users edit to tune Harbinger. Each file is optional in a rules
//! directory; a missing one falls back to the shipped default (embedded in the binary), so a
//! directory only needs the files a user changed.
//!
//! * `severity.toml` — score bands of each severity.
//! * `anomaly_types.toml` — metric-name (and shape) rules naming an anomaly's type.
//! * `fusion.toml` — how detector scores are calibrated, fused and damped, and each detector
//!   kind's weight.
//! * `recommendations.toml` — the optimizer's rules (see `super::recommend`).
//! * `capacity.toml` — limits (disk full, memory limit, pool size) that forecast series are
//!   checked against.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use operators::forecast::CapacityLimit;
use operators::models::detector_set::FusionPolicy;
use operators::models::shape::Shape;
use operators::records::AnomalyType;
use operators::records::LimitDirection;
use operators::rules::{
    anchored_regex, AnomalyTypeRule, AnomalyTypeRules, Direction, MetricPattern, SeverityBands,
};
use serde::Deserialize;
use toml::Spanned;

use super::error::{ConfigError, SourceText};

/// A rules file: its name in the rules directory and its shipped default.
pub struct RuleFile {
    /// File name inside the rules directory.
    pub name: &'static str,
    /// The shipped default text.
    pub default: &'static str,
}

/// Every rule file Harbinger reads, with its shipped default.
pub const RULE_FILES: &[RuleFile] = &[
    RuleFile {
        name: "severity.toml",
        default: include_str!("../../rules/severity.toml"),
    },
    RuleFile {
        name: "anomaly_types.toml",
        default: include_str!("../../rules/anomaly_types.toml"),
    },
    RuleFile {
        name: "fusion.toml",
        default: include_str!("../../rules/fusion.toml"),
    },
    RuleFile {
        name: "correlation.toml",
        default: include_str!("../../rules/correlation.toml"),
    },
    RuleFile {
        name: "escalation.toml",
        default: include_str!("../../rules/escalation.toml"),
    },
    RuleFile {
        name: "inhibition.toml",
        default: include_str!("../../rules/inhibition.toml"),
    },
    RuleFile {
        name: "silences.toml",
        default: include_str!("../../rules/silences.toml"),
    },
    RuleFile {
        name: "topology.toml",
        default: include_str!("../../rules/topology.toml"),
    },
    RuleFile {
        name: "recommendations.toml",
        default: include_str!("../../rules/recommendations.toml"),
    },
    RuleFile {
        name: "capacity.toml",
        default: include_str!("../../rules/capacity.toml"),
    },
];

/// Detector kinds a weight may name.
const KNOWN_KINDS: &[&str] = &[
    "robust_z",
    "iqr",
    "ewma",
    "cusum",
    "seasonal",
    "changepoint",
    "isolation_forest",
    "one_class_svm",
    "knn",
    "forecast_residual",
    "contextual",
    "trend",
];

/// The compiled rules.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    /// Severity bands.
    pub severity: SeverityBands,
    /// Anomaly type rules.
    pub anomaly_types: AnomalyTypeRules,
    /// Calibration, fusion and damping.
    pub fusion: FusionPolicy,
    /// Weight of each detector kind in the fused score, by kind name.
    pub weights: BTreeMap<String, f64>,
    /// Dedup, grouping, root-cause weights and link rules.
    pub correlation: super::intel::CorrelationRules,
    /// Escalation policy.
    pub escalation: operators::models::escalation::EscalationPolicy,
    /// Silences and inhibition rules.
    pub mutes: operators::models::matchers::MuteRules,
    /// The topology.
    pub topology: Vec<operators::models::topology::ServiceSpec>,
    /// Where `topology.toml` was read from, when it is a real file (for reloads).
    pub topology_path: Option<PathBuf>,
    /// The optimizer's settings, declared config values and recommendation rules.
    pub recommendations: std::sync::Arc<operators::models::rec_rules::OptimizePlan>,
    /// Capacity limits for forecast series.
    pub limits: Vec<CapacityLimit>,
}

/// Reads `name` from `dir` if it exists there, else the embedded default; returns (path shown in
/// errors, text).
fn read_rule_file(dir: Option<&Path>, file: &RuleFile) -> Result<(PathBuf, String), ConfigError> {
    if let Some(dir) = dir {
        let path = dir.join(file.name);
        if path.exists() {
            return std::fs::read_to_string(&path)
                .map(|text| (path.clone(), text))
                .map_err(|e| ConfigError {
                    file: path,
                    line: 1,
                    col: 1,
                    message: format!("cannot read: {e}"),
                });
        }
    }
    Ok((
        PathBuf::from(format!("<embedded rules/{}>", file.name)),
        file.default.to_string(),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSeverityFile {
    severity: Spanned<SeverityBands>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTypeRule {
    metric: Spanned<String>,
    #[serde(default)]
    direction: Option<Direction>,
    #[serde(default)]
    shape: Option<Shape>,
    #[serde(rename = "type")]
    anomaly_type: AnomalyType,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFusionFile {
    #[serde(default)]
    fusion: Option<Spanned<FusionPolicy>>,
    #[serde(default)]
    weights: BTreeMap<String, Spanned<f64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAnomalyTypesFile {
    #[serde(default)]
    anomaly_type: Vec<RawTypeRule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimit {
    name: Spanned<String>,
    metric: Spanned<String>,
    #[serde(default)]
    value: Option<Spanned<f64>>,
    #[serde(default)]
    limit_from: Option<Spanned<String>>,
    #[serde(default)]
    limit_on: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    limit_where: Option<Spanned<BTreeMap<String, String>>>,
    direction: LimitDirection,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCapacityFile {
    #[serde(default)]
    limit: Vec<RawLimit>,
}

/// `capacity.toml`: every limit needs a unique name, a valid pattern, and a finite `value`, a
/// `limit_from` metric name, or both (the value is then the fallback).
fn capacity(src: &SourceText<'_>, errors: &mut Vec<ConfigError>) -> Vec<CapacityLimit> {
    let raw = match toml::from_str::<RawCapacityFile>(src.text) {
        Ok(raw) => raw,
        Err(e) => {
            errors.push(src.toml_error(&e));
            return Vec::new();
        }
    };
    let mut limits: Vec<CapacityLimit> = Vec::new();
    let mut names: Vec<String> = Vec::new();
    for l in raw.limit {
        let metric = MetricPattern::new(l.metric.get_ref()).map_err(|e| {
            errors.push(src.error(l.metric.span(), format!("invalid regular expression: {e}")));
        });
        let mut ok = metric.is_ok();
        if let Some(v) = &l.value {
            if !v.get_ref().is_finite() {
                errors.push(src.error(v.span(), "value must be a finite number"));
                ok = false;
            }
        }
        if let Some(from) = &l.limit_from {
            // A metric name, matched exactly (any name the parsers accept).
            if from.get_ref().trim().is_empty() {
                errors.push(src.error(from.span(), "limit_from must name a metric"));
                ok = false;
            }
        }
        if let Some(on) = &l.limit_on {
            if l.limit_from.is_none() {
                errors.push(src.error(on.span(), "limit_on needs limit_from"));
                ok = false;
            } else if on.get_ref().is_empty() || on.get_ref().iter().any(|x| x.trim().is_empty()) {
                errors.push(src.error(on.span(), "limit_on must list label names"));
                ok = false;
            }
        }
        if let (Some(select), None) = (&l.limit_where, &l.limit_from) {
            errors.push(src.error(select.span(), "limit_where needs limit_from"));
            ok = false;
        }
        if l.value.is_none() && l.limit_from.is_none() {
            errors.push(src.error(
                l.name.span(),
                "a limit needs a value, a limit_from series, or both",
            ));
            ok = false;
        }
        if names.contains(l.name.get_ref()) {
            errors.push(src.error(
                l.name.span(),
                format!("limit name {:?} is used twice", l.name.get_ref()),
            ));
            ok = false;
        }
        names.push(l.name.get_ref().clone());
        if let (true, Ok(metric)) = (ok, metric) {
            limits.push(CapacityLimit {
                name: l.name.into_inner(),
                metric,
                value: l.value.map(Spanned::into_inner),
                limit_from: l.limit_from.map(Spanned::into_inner),
                limit_on: l.limit_on.map(Spanned::into_inner),
                limit_where: l.limit_where.map(Spanned::into_inner).unwrap_or_default(),
                direction: l.direction,
            });
        }
    }
    limits
}

/// Loads and compiles every rule file, collecting all errors.
pub fn load_rules(dir: Option<&Path>, errors: &mut Vec<ConfigError>) -> Rules {
    let mut rules = Rules::default();
    for file in RULE_FILES {
        let (path, text) = match read_rule_file(dir, file) {
            Ok(x) => x,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        let src = SourceText {
            path: &path,
            text: &text,
        };
        match file.name {
            "severity.toml" => match toml::from_str::<RawSeverityFile>(&text) {
                Ok(raw) => {
                    if let Err(msg) = raw.severity.get_ref().check() {
                        errors.push(src.error(raw.severity.span(), msg));
                    } else {
                        rules.severity = raw.severity.into_inner();
                    }
                }
                Err(e) => errors.push(src.toml_error(&e)),
            },
            "anomaly_types.toml" => match toml::from_str::<RawAnomalyTypesFile>(&text) {
                Ok(raw) => {
                    for r in raw.anomaly_type {
                        match anchored_regex(r.metric.get_ref()) {
                            Ok(metric) => rules.anomaly_types.rules.push(AnomalyTypeRule {
                                metric,
                                direction: r.direction.unwrap_or(Direction::Any),
                                shape: r.shape,
                                anomaly_type: r.anomaly_type,
                            }),
                            Err(e) => errors.push(src.error(
                                r.metric.span(),
                                format!("invalid regular expression: {e}"),
                            )),
                        }
                    }
                }
                Err(e) => errors.push(src.toml_error(&e)),
            },
            "fusion.toml" => {
                match toml::from_str::<RawFusionFile>(&text) {
                    Ok(raw) => {
                        if let Some(f) = raw.fusion {
                            match f.get_ref().validate() {
                                Ok(()) => rules.fusion = f.into_inner(),
                                Err(e) => errors.push(src.error(f.span(), e.to_string())),
                            }
                        }
                        for (kind, w) in raw.weights {
                            let v = *w.get_ref();
                            if !KNOWN_KINDS.contains(&kind.as_str()) {
                                errors.push(src.error(
                                    w.span(),
                                    format!(
                                        "unknown detector kind {kind:?} (known: {})",
                                        KNOWN_KINDS.join(", ")
                                    ),
                                ));
                            } else if !(v.is_finite() && v >= 0.0) {
                                errors.push(src.error(
                                    w.span(),
                                    format!("weight must be a number ≥ 0, got {v}"),
                                ));
                            } else {
                                rules.weights.insert(kind, v);
                            }
                        }
                    }
                    Err(e) => errors.push(src.toml_error(&e)),
                }
            }
            "correlation.toml" => rules.correlation = super::intel::correlation(&src, errors),
            "escalation.toml" => rules.escalation = super::intel::escalation(&src, errors),
            "inhibition.toml" => super::intel::inhibition(&src, errors, &mut rules.mutes),
            "silences.toml" => super::intel::silences(&src, errors, &mut rules.mutes),
            "topology.toml" => {
                rules.topology = super::intel::topology(&src, errors);
                rules.topology_path = path.exists().then(|| path.clone());
            }
            "recommendations.toml" => {
                rules.recommendations =
                    std::sync::Arc::new(super::recommend::recommendations(&src, errors));
            }
            "capacity.toml" => rules.limits = capacity(&src, errors),
            other => unreachable!("rule file {other} has no loader"),
        }
    }
    rules
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_rules_parse() {
        let mut errors = Vec::new();
        let rules = load_rules(None, &mut errors);
        assert!(errors.is_empty(), "{errors:?}");
        assert!(!rules.anomaly_types.rules.is_empty());
        assert_eq!(
            rules
                .anomaly_types
                .classify("http_request_duration_p99_ms", Direction::Up, None),
            AnomalyType::LatencySpike
        );
    }

    #[test]
    fn capacity_limits_are_validated_with_positions() {
        let dir = tempfile::tempdir().unwrap();
        // Loads `text` as the rules dir's capacity.toml: the limits and the errors as text.
        let load = |text: &str| {
            std::fs::write(dir.path().join("capacity.toml"), text).unwrap();
            let mut errors = Vec::new();
            let rules = load_rules(Some(dir.path()), &mut errors);
            let errors: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
            (rules.limits, errors)
        };
        let at =
            |pos: &str, msg: &str| format!("{}/capacity.toml:{pos}: {msg}", dir.path().display());
        let (limits, errors) = load(
            "[[limit]]\nname = \"a\"\nmetric = \"disk_(\"\nvalue = 90\ndirection = \"above\"\n\n\
             [[limit]]\nname = \"a\"\nmetric = \"mem\"\nvalue = nan\ndirection = \"below\"\n",
        );
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert!(errors[0].starts_with(&at("3:10", "invalid regular")));
        assert_eq!(errors[1], at("10:9", "value must be a finite number"));
        assert_eq!(errors[2], at("8:8", "limit name \"a\" is used twice"));
        assert!(limits.is_empty());
        // limit_from alone is a limit; neither value nor limit_from is an error.
        let (limits, errors) = load(
            "[[limit]]\nname = \"m\"\nmetric = \"mem_used\"\nlimit_from = \"mem_limit\"\n\
             direction = \"above\"\n[[limit]]\nname = \"n\"\nmetric = \"x\"\ndirection = \"above\"\n",
        );
        assert_eq!(
            errors,
            [at(
                "7:8",
                "a limit needs a value, a limit_from series, or both"
            )]
        );
        assert_eq!(limits.len(), 1);
        assert_eq!(limits[0].limit_from.as_deref(), Some("mem_limit"));
        assert_eq!(limits[0].value, None);
        // limit_on names labels, limit_where label values, and only beside limit_from.
        let (limits, errors) = load(
            "[[limit]]\nname = \"m\"\nmetric = \"mem_used\"\nlimit_from = \"mem_limit\"\n\
             limit_on = [\"pod\"]\ndirection = \"above\"\n[[limit]]\nname = \"n\"\n\
             metric = \"x\"\nvalue = 1\nlimit_on = []\ndirection = \"above\"\n\
             [[limit]]\nname = \"o\"\nmetric = \"y\"\nlimit_from = \"l\"\n\
             limit_where = { resource = \"memory\" }\ndirection = \"above\"\n",
        );
        assert_eq!(errors, [at("11:12", "limit_on needs limit_from")]);
        assert_eq!(limits[0].limit_on, Some(vec!["pod".to_string()]));
        assert_eq!(limits[1].limit_where["resource"], "memory");
        let (_, errors) =
            load("[[limit]]\nname = \"x\"\nmetric = \"m\"\nvalue = 1\ndirection = \"sideways\"\n");
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].contains("capacity.toml:5:"), "{errors:?}");
    }

    #[test]
    fn a_bad_rules_dir_reports_file_line_col() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("anomaly_types.toml"),
            "[[anomaly_type]]\nmetric = \"(unclosed\"\ntype = \"latency_spike\"\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("severity.toml"),
            "[severity]\nlow = 0.9\nmedium = 0.5\nhigh = 0.9\ncritical = 1.0\n",
        )
        .unwrap();
        let mut errors = Vec::new();
        load_rules(Some(dir.path()), &mut errors);
        let text: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        assert_eq!(errors.len(), 2, "{text:?}");
        let dir = dir.path().display();
        assert_eq!(
            text[0],
            format!("{dir}/severity.toml:1:1: severity thresholds must not decrease from low to critical")
        );
        assert!(
            text[1].starts_with(&format!(
                "{dir}/anomaly_types.toml:2:10: invalid regular expression"
            )),
            "{text:?}"
        );
    }
}
