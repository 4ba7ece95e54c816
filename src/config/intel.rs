//! The alert-intelligence rule files: `correlation.toml` (dedup, grouping, root-cause weights,
//! CEL link rules), `escalation.toml`, `inhibition.toml`, `silences.toml` and `topology.toml`.
//! Each is parsed into raw serde structs that keep positions, then checked; every error carries
//! file:line:col.

use std::path::Path;

use operators::correlate::LinkRule;
use operators::models::cel_rule::CelCondition;
use operators::models::dedup::DedupConfig;
use operators::models::escalation::{EscalationPolicy, EscalationRule};
use operators::models::grouping::GroupingConfig;
use operators::models::matchers::{InhibitRule, Matcher, MuteRules, Silence};
use operators::models::root_cause::RootCauseConfig;
use operators::models::topology::ServiceSpec;
use operators::records::Severity;
use serde::Deserialize;
use toml::Spanned;

use super::error::{ConfigError, SourceText};

/// Compiled `correlation.toml`.
#[derive(Debug, Clone, Default)]
pub struct CorrelationRules {
    /// Dedup settings (`confirm_windows` comes from `[alerts]` of the config).
    pub dedup: DedupConfig,
    /// Grouping.
    pub grouping: GroupingConfig,
    /// Root-cause weights.
    pub root_cause: RootCauseConfig,
    /// CEL link rules.
    pub links: Vec<LinkRule>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawCorrelation {
    #[serde(default)]
    dedup: RawDedup,
    #[serde(default)]
    grouping: RawGrouping,
    #[serde(default)]
    root_cause: RawRootCause,
    #[serde(default)]
    link: Vec<RawLink>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawDedup {
    identify_by: Option<Vec<String>>,
    ignore_labels: Option<Vec<String>>,
    flap_count: Option<Spanned<i64>>,
    flap_window_secs: Option<Spanned<f64>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawGrouping {
    max_hops: Option<Spanned<i64>>,
    near_secs: Option<Spanned<f64>>,
    causal_secs: Option<Spanned<f64>>,
    directional: Option<bool>,
    group_by: Option<Vec<String>>,
    min_alerts: Option<Spanned<i64>>,
    lone_windows: Option<Spanned<i64>>,
    dbscan_eps: Option<Spanned<f64>>,
    reopen_secs: Option<Spanned<f64>>,
    reopen_hops: Option<Spanned<i64>>,
    recovery_secs: Option<Spanned<f64>>,
    await_return: Option<bool>,
    split: Option<bool>,
    consequences: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawRootCause {
    w_onset: Option<Spanned<f64>>,
    w_graph: Option<Spanned<f64>>,
    w_strength: Option<Spanned<f64>>,
    w_type: Option<Spanned<f64>>,
    w_pagerank: Option<Spanned<f64>>,
    onset_tau_secs: Option<Spanned<f64>>,
    traffic_metrics: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLink {
    name: String,
    when: Spanned<String>,
    within_secs: Option<Spanned<f64>>,
}

/// Checks values against one file.
struct Check<'a, 'b> {
    src: &'a SourceText<'a>,
    errors: &'b mut Vec<ConfigError>,
}

impl Check<'_, '_> {
    fn int(&mut self, v: &Option<Spanned<i64>>, default: i64, lo: i64, hi: i64, what: &str) -> i64 {
        match v {
            None => default,
            Some(x) if (lo..=hi).contains(x.get_ref()) => *x.get_ref(),
            Some(x) => {
                self.errors.push(self.src.error(
                    x.span(),
                    format!("{what} must be between {lo} and {hi}, got {}", x.get_ref()),
                ));
                default
            }
        }
    }

    fn float(
        &mut self,
        v: &Option<Spanned<f64>>,
        default: f64,
        lo: f64,
        hi: f64,
        what: &str,
    ) -> f64 {
        match v {
            None => default,
            Some(x) if x.get_ref().is_finite() && (lo..=hi).contains(x.get_ref()) => *x.get_ref(),
            Some(x) => {
                self.errors.push(self.src.error(
                    x.span(),
                    format!("{what} must be between {lo} and {hi}, got {}", x.get_ref()),
                ));
                default
            }
        }
    }

    /// A duration in seconds (at least a millisecond), as milliseconds.
    fn secs(&mut self, v: &Option<Spanned<f64>>, default_ms: u64, what: &str) -> u64 {
        self.secs_from(v, default_ms, 0.001, what)
    }

    /// A duration in seconds of at least `min` (0 where 0 turns something off), as
    /// milliseconds.
    fn secs_from(
        &mut self,
        v: &Option<Spanned<f64>>,
        default_ms: u64,
        min: f64,
        what: &str,
    ) -> u64 {
        let secs = self.float(v, default_ms as f64 / 1000.0, min, 1e9, what);
        (secs * 1000.0).round() as u64
    }

    fn matchers(&mut self, list: &[Spanned<String>]) -> Vec<Matcher> {
        let mut out = Vec::new();
        for m in list {
            match Matcher::parse(m.get_ref()) {
                Ok(x) => out.push(x),
                Err(e) => self.errors.push(self.src.error(m.span(), e)),
            }
        }
        out
    }
}

/// Compiles `correlation.toml`.
pub fn correlation(src: &SourceText<'_>, errors: &mut Vec<ConfigError>) -> CorrelationRules {
    let raw: RawCorrelation = match toml::from_str(src.text) {
        Ok(r) => r,
        Err(e) => {
            errors.push(src.toml_error(&e));
            return CorrelationRules::default();
        }
    };
    let mut c = Check { src, errors };
    let d = DedupConfig::default();
    let g = GroupingConfig::default();
    let r = RootCauseConfig::default();
    let dedup = DedupConfig {
        identify_by: raw.dedup.identify_by.unwrap_or_default(),
        ignore_labels: raw.dedup.ignore_labels.unwrap_or_default(),
        flap_count: c.int(
            &raw.dedup.flap_count,
            d.flap_count as i64,
            1,
            1000,
            "flap_count",
        ) as u32,
        flap_window_ms: c.secs(
            &raw.dedup.flap_window_secs,
            d.flap_window_ms,
            "flap_window_secs",
        ),
        confirm_windows: d.confirm_windows,
    };
    let grouping = GroupingConfig {
        max_hops: c.int(&raw.grouping.max_hops, g.max_hops as i64, 1, 5, "max_hops") as u8,
        near_ms: c.secs(&raw.grouping.near_secs, g.near_ms, "near_secs"),
        causal_ms: c.secs(&raw.grouping.causal_secs, g.causal_ms, "causal_secs"),
        directional: raw.grouping.directional.unwrap_or(g.directional),
        group_by: raw.grouping.group_by.unwrap_or_default(),
        min_alerts: c.int(
            &raw.grouping.min_alerts,
            g.min_alerts as i64,
            1,
            10_000,
            "min_alerts",
        ) as usize,
        lone_windows: c.int(
            &raw.grouping.lone_windows,
            g.lone_windows as i64,
            1,
            1_000_000,
            "lone_windows",
        ) as u64,
        dbscan_eps: c.float(
            &raw.grouping.dbscan_eps,
            g.dbscan_eps,
            1e-6,
            100.0,
            "dbscan_eps",
        ),
        // 0 turns the wait off: an incident resolves with its last alert.
        reopen_ms: c.secs_from(&raw.grouping.reopen_secs, g.reopen_ms, 0.0, "reopen_secs"),
        reopen_hops: c.int(
            &raw.grouping.reopen_hops,
            g.reopen_hops as i64,
            0,
            5,
            "reopen_hops",
        ) as u8,
        // 0 turns recovery off: a resolved incident is never reopened.
        recovery_ms: c.secs_from(
            &raw.grouping.recovery_secs,
            g.recovery_ms,
            0.0,
            "recovery_secs",
        ),
        await_return: raw.grouping.await_return.unwrap_or(g.await_return),
        split: raw.grouping.split.unwrap_or(g.split),
        consequences: raw.grouping.consequences.unwrap_or(g.consequences),
    };
    let w = |c: &mut Check<'_, '_>, v: &Option<Spanned<f64>>, d: f64, what: &str| {
        c.float(v, d, 0.0, 100.0, what)
    };
    let root_cause = RootCauseConfig {
        w_onset: w(&mut c, &raw.root_cause.w_onset, r.w_onset, "w_onset"),
        w_graph: w(&mut c, &raw.root_cause.w_graph, r.w_graph, "w_graph"),
        w_strength: w(
            &mut c,
            &raw.root_cause.w_strength,
            r.w_strength,
            "w_strength",
        ),
        w_type: w(&mut c, &raw.root_cause.w_type, r.w_type, "w_type"),
        w_pagerank: w(
            &mut c,
            &raw.root_cause.w_pagerank,
            r.w_pagerank,
            "w_pagerank",
        ),
        onset_tau_ms: c.secs(
            &raw.root_cause.onset_tau_secs,
            r.onset_tau_ms,
            "onset_tau_secs",
        ),
        max_hops: grouping.max_hops,
        traffic_metrics: raw
            .root_cause
            .traffic_metrics
            .clone()
            .unwrap_or_else(|| r.traffic_metrics.clone()),
    };
    if root_cause.validate().is_err() {
        c.errors
            .push(src.error(0..0, "root_cause weights must not all be 0"));
    }
    let mut links = Vec::new();
    for l in raw.link {
        if let Err(e) = CelCondition::compile(l.when.get_ref()) {
            c.errors.push(src.error(
                l.when.span(),
                format!("link {:?}: invalid CEL condition: {e}", l.name),
            ));
            continue;
        }
        links.push(LinkRule {
            name: l.name,
            condition: l.when.into_inner(),
            within_ms: c.secs(&l.within_secs, 300_000, "within_secs"),
        });
    }
    CorrelationRules {
        dedup,
        grouping,
        root_cause,
        links,
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEscalation {
    repeat_intervals_secs: Option<Spanned<Vec<f64>>>,
    #[serde(default)]
    rule: Vec<RawEscalationRule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEscalationRule {
    name: String,
    level: Spanned<i64>,
    min_severity: Option<Severity>,
    min_alerts: Option<Spanned<i64>>,
    after_secs: Option<Spanned<f64>>,
}

/// Compiles `escalation.toml`.
pub fn escalation(src: &SourceText<'_>, errors: &mut Vec<ConfigError>) -> EscalationPolicy {
    let raw: RawEscalation = match toml::from_str(src.text) {
        Ok(r) => r,
        Err(e) => {
            errors.push(src.toml_error(&e));
            return EscalationPolicy::default();
        }
    };
    let mut c = Check { src, errors };
    let mut policy = EscalationPolicy::default();
    if let Some(iv) = &raw.repeat_intervals_secs {
        if iv.get_ref().iter().any(|s| !(s.is_finite() && *s > 0.0)) {
            c.errors
                .push(src.error(iv.span(), "repeat intervals must be positive seconds"));
        } else {
            policy.repeat_intervals_ms = iv.get_ref().iter().map(|s| (s * 1000.0) as u64).collect();
        }
    }
    for r in raw.rule {
        let level = c.int(&Some(r.level), 1, 0, 32, "level") as u32;
        policy.rules.push(EscalationRule {
            name: r.name,
            level,
            min_severity: r.min_severity,
            min_alerts: r
                .min_alerts
                .as_ref()
                .map(|_| c.int(&r.min_alerts, 1, 1, 1_000_000, "min_alerts") as usize),
            after_ms: r
                .after_secs
                .as_ref()
                .map(|_| c.secs(&r.after_secs, 0, "after_secs")),
        });
    }
    policy
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInhibition {
    #[serde(default)]
    inhibit: Vec<RawInhibit>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInhibit {
    name: String,
    source: Vec<Spanned<String>>,
    target: Vec<Spanned<String>>,
    #[serde(default)]
    equal: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSilences {
    #[serde(default)]
    silence: Vec<RawSilence>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSilence {
    name: String,
    matchers: Vec<Spanned<String>>,
    starts_at: Spanned<String>,
    ends_at: Spanned<String>,
}

/// Compiles `inhibition.toml` into `rules`.
pub fn inhibition(src: &SourceText<'_>, errors: &mut Vec<ConfigError>, rules: &mut MuteRules) {
    let raw: RawInhibition = match toml::from_str(src.text) {
        Ok(r) => r,
        Err(e) => return errors.push(src.toml_error(&e)),
    };
    let mut c = Check { src, errors };
    for r in raw.inhibit {
        let source = c.matchers(&r.source);
        let target = c.matchers(&r.target);
        rules.inhibit.push(InhibitRule {
            name: r.name,
            source,
            target,
            equal: r.equal,
        });
    }
}

/// Compiles `silences.toml` into `rules`.
pub fn silences(src: &SourceText<'_>, errors: &mut Vec<ConfigError>, rules: &mut MuteRules) {
    let raw: RawSilences = match toml::from_str(src.text) {
        Ok(r) => r,
        Err(e) => return errors.push(src.toml_error(&e)),
    };
    let mut c = Check { src, errors };
    for s in raw.silence {
        let matchers = c.matchers(&s.matchers);
        let mut time = |v: &Spanned<String>| match crate::parse::timestamp::parse_text(v.get_ref())
        {
            Ok(t) => Some(t),
            Err(e) => {
                c.errors
                    .push(src.error(v.span(), format!("not an RFC 3339 time: {e:?}")));
                None
            }
        };
        let (Some(starts_at), Some(ends_at)) = (time(&s.starts_at), time(&s.ends_at)) else {
            continue;
        };
        if ends_at <= starts_at {
            c.errors
                .push(src.error(s.ends_at.span(), "ends_at must be after starts_at"));
            continue;
        }
        rules.silences.push(Silence {
            name: s.name,
            matchers,
            starts_at,
            ends_at,
        });
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTopology {
    #[serde(default)]
    service: Vec<RawService>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawService {
    name: Spanned<String>,
    #[serde(default)]
    calls: Vec<String>,
    runs_on: Option<String>,
    user_facing: Option<bool>,
}

/// Compiles a topology file (`[[service]] name / calls / runs_on / user_facing`).
pub fn topology(src: &SourceText<'_>, errors: &mut Vec<ConfigError>) -> Vec<ServiceSpec> {
    let raw: RawTopology = match toml::from_str(src.text) {
        Ok(r) => r,
        Err(e) => {
            errors.push(src.toml_error(&e));
            return Vec::new();
        }
    };
    let mut seen = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    for s in raw.service {
        if s.name.get_ref().is_empty() || !seen.insert(s.name.get_ref().clone()) {
            errors.push(src.error(
                s.name.span(),
                format!("service {:?} is empty or declared twice", s.name.get_ref()),
            ));
            continue;
        }
        out.push(ServiceSpec {
            name: s.name.into_inner(),
            calls: s.calls,
            runs_on: s.runs_on,
            user_facing: s.user_facing,
        });
    }
    out
}

/// Reads and compiles a topology file given on the command line.
pub fn topology_file(path: &Path) -> Result<Vec<ServiceSpec>, super::ConfigErrors> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        super::ConfigErrors(vec![ConfigError {
            file: path.to_path_buf(),
            line: 1,
            col: 1,
            message: format!("cannot read: {e}"),
        }])
    })?;
    let src = SourceText { path, text: &text };
    let mut errors = Vec::new();
    let services = topology(&src, &mut errors);
    if errors.is_empty() {
        Ok(services)
    } else {
        Err(super::ConfigErrors(errors))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors_of(f: fn(&SourceText<'_>, &mut Vec<ConfigError>), text: &str) -> Vec<String> {
        let src = SourceText {
            path: Path::new("r.toml"),
            text,
        };
        let mut errors = Vec::new();
        f(&src, &mut errors);
        errors.iter().map(|e| e.to_string()).collect()
    }

    #[test]
    fn the_lifecycle_switches_are_read() {
        let read = |text: &str| {
            let src = SourceText {
                path: Path::new("r.toml"),
                text,
            };
            let mut errors = Vec::new();
            let rules = correlation(&src, &mut errors);
            assert!(errors.is_empty(), "{errors:?}");
            rules.grouping
        };
        let shipped = read("");
        assert!(shipped.await_return && shipped.consequences && !shipped.split);
        let g = read("[grouping]\nawait_return = false\nrecovery_secs = 600\n");
        assert_eq!((g.await_return, g.recovery_ms), (false, 600_000));
    }

    #[test]
    fn errors_point_at_the_value() {
        let e = errors_of(
            |s, e| {
                correlation(s, e);
            },
            "[grouping]\nmin_alerts = 0\n\n[[link]]\nname = \"x\"\nwhen = \"a.labels. ==\"\n",
        );
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(
            e[0].starts_with("r.toml:2:14: min_alerts must be between 1"),
            "{e:?}"
        );
        assert!(
            e[1].starts_with("r.toml:6:8: link \"x\": invalid CEL condition"),
            "{e:?}"
        );
        let e = errors_of(
            |s, e| silences(s, e, &mut MuteRules::default()),
            "[[silence]]\nname = \"m\"\nmatchers = ['service=~\"(\"']\nstarts_at = \"2024-01-01T00:00:00Z\"\nends_at = \"yesterday\"\n",
        );
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(e[0].starts_with("r.toml:3:13: matcher"), "{e:?}");
        assert!(
            e[1].starts_with("r.toml:5:11: not an RFC 3339 time"),
            "{e:?}"
        );
        let e = errors_of(
            |s, e| {
                topology(s, e);
            },
            "[[service]]\nname = \"a\"\n[[service]]\nname = \"a\"\n",
        );
        assert_eq!(e, ["r.toml:4:8: service \"a\" is empty or declared twice"]);
    }
}
