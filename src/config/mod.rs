//! Configuration: one TOML file (sources, windows, detectors, alerts, sinks, engine settings) plus
//! the rule files of a `rules/` directory.
//!
//! Loading is two steps, as in Vector: the raw serde structs of [`raw`] (types and unknown fields
//! checked by the parser), then `compile`, which checks every value and cross-reference and
//! collects *all* errors with their file:line:col before giving up. The result is a [`Plan`]:
//! validated settings the engine can run without further checks.

pub mod checker;
pub mod detectors;
pub mod error;
pub mod forecasts;
pub mod intel;
pub mod raw;
pub mod recommend;
pub mod rules;
pub mod sinks;
pub mod sources;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use operators::correlate::CorrelatePlan;
use operators::forecast::ForecastPlan;
use operators::models::alert_lifecycle::AlertPolicy;
use operators::models::detector_set::Ensemble;
use operators::models::entity_set::EntityPlan;
use operators::models::incidents::IncidentPolicy;
use operators::models::peers::PeerConfig;
use operators::models::topology::ServiceSpec;
use operators::window::WindowSpec;

use crate::ingest::LabelLimits;
use crate::parse::{Format, Precision};
use crate::sources::kafka::KafkaSourceSpec;
use crate::sources::simulator::SimulatorConfig;
use checker::Checker;
pub use error::{ConfigError, ConfigErrors, SourceText};
use raw::RawConfig;
pub use rules::Rules;

/// The embedded default: the simulator, accelerated, with results on stdout and in
/// `./harbinger-out/`.
pub const DEFAULT_CONFIG: &str = include_str!("default.toml");

/// Engine-wide settings.
#[derive(Debug, Clone)]
pub struct EngineSettings {
    /// Allowed lateness (ms).
    pub lateness_ms: u64,
    /// Labels naming an entity, in order of preference.
    pub entity_labels: Vec<String>,
    /// Label limits.
    pub limits: LabelLimits,
    /// Worker threads.
    pub workers: usize,
    /// Where checkpoints go (none: no checkpoints).
    pub checkpoint_dir: Option<PathBuf>,
    /// Event time between checkpoints (ms).
    pub checkpoint_interval_ms: u64,
}

/// One configured source.
#[derive(Debug, Clone)]
pub enum SourcePlan {
    /// A file (or `-` for standard input).
    File {
        /// Source name.
        name: String,
        /// Path.
        path: PathBuf,
        /// Format.
        format: Format,
        /// Influx precision.
        precision: Precision,
        /// Pacing (0 = as fast as possible).
        speed: f64,
    },
    /// The simulator.
    Simulator {
        /// Source name.
        name: String,
        /// Settings.
        config: SimulatorConfig,
    },
    /// Kafka topics.
    Kafka(KafkaSourceSpec),
}

/// Kafka output topics.
#[derive(Debug, Clone, PartialEq)]
pub struct KafkaSinkPlan {
    /// `bootstrap.servers`.
    pub brokers: String,
    /// librdkafka properties passed through.
    pub properties: BTreeMap<String, String>,
    /// Topic of alert events.
    pub alerts_topic: String,
    /// Topic of incident events.
    pub incidents_topic: String,
    /// Topic of recommendations.
    pub recommendations_topic: String,
    /// Topic of dead letters.
    pub dead_letters_topic: String,
}

/// Where results go.
#[derive(Debug, Clone, Default)]
pub struct SinkPlan {
    /// Print the human summary on stdout.
    pub stdout: bool,
    /// Write JSONL files here.
    pub jsonl_dir: Option<PathBuf>,
    /// Also write `features.jsonl`.
    pub features: bool,
    /// Kafka output topics.
    pub kafka: Option<KafkaSinkPlan>,
    /// Post alerts to Alertmanager.
    pub alertmanager: Option<crate::sinks::AlertmanagerSettings>,
}

/// A validated configuration, ready to run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Engine settings.
    pub engine: EngineSettings,
    /// Sources.
    pub sources: Vec<SourcePlan>,
    /// Window specs.
    pub windows: Arc<[WindowSpec]>,
    /// Detectors and how their scores combine.
    pub ensemble: Arc<Ensemble>,
    /// Entity-level detectors, when configured.
    pub entity: Option<Arc<EntityPlan>>,
    /// Peer comparison, when configured.
    pub peers: Option<Arc<PeerConfig>>,
    /// Forecast specs and capacity limits, when forecasts are configured.
    pub forecast: Option<Arc<ForecastPlan>>,
    /// Alert policy (naming, lifecycle, severity, types).
    pub alerts: Arc<AlertPolicy>,
    /// Sinks.
    pub sinks: SinkPlan,
    /// The rules directory in use, if any.
    pub rules_dir: Option<PathBuf>,
    /// The correlation stage's settings.
    pub correlate: Arc<CorrelatePlan>,
    /// The topology at start.
    pub topology: Vec<ServiceSpec>,
    /// The topology file to watch for reloads, if any.
    pub topology_path: Option<PathBuf>,
    /// The optimizer's rules and settings.
    pub optimize: Arc<operators::models::rec_rules::OptimizePlan>,
}

/// Reads and compiles `path` (the embedded default when `None`); `rules_dir` overrides the file's
/// `rules_dir`.
pub fn load(path: Option<&Path>, rules_dir: Option<&Path>) -> Result<Plan, ConfigErrors> {
    let (shown, text) = match path {
        Some(p) => match std::fs::read_to_string(p) {
            Ok(t) => (p.to_path_buf(), t),
            Err(e) => {
                return Err(ConfigErrors(vec![ConfigError {
                    file: p.to_path_buf(),
                    line: 1,
                    col: 1,
                    message: format!("cannot read: {e}"),
                }]))
            }
        },
        None => (
            PathBuf::from("<embedded default config>"),
            DEFAULT_CONFIG.to_string(),
        ),
    };
    let base = path.and_then(Path::parent).map(Path::to_path_buf);
    compile_text(&shown, &text, base.as_deref(), rules_dir)
}

/// Compiles config `text` shown as `shown`; relative paths resolve against `base`.
pub fn compile_text(
    shown: &Path,
    text: &str,
    base: Option<&Path>,
    rules_dir: Option<&Path>,
) -> Result<Plan, ConfigErrors> {
    let src = SourceText { path: shown, text };
    let raw: RawConfig =
        toml::from_str(text).map_err(|e| ConfigErrors(vec![src.toml_error(&e)]))?;
    let mut errors = Vec::new();
    let plan = compile(&src, raw, base, rules_dir, &mut errors);
    if errors.is_empty() {
        Ok(plan)
    } else {
        Err(ConfigErrors(errors))
    }
}

fn compile(
    src: &SourceText<'_>,
    raw: RawConfig,
    base: Option<&Path>,
    rules_dir: Option<&Path>,
    errors: &mut Vec<ConfigError>,
) -> Plan {
    let mut c = Checker { src, errors };
    let resolve = |p: &str| -> PathBuf {
        let p = PathBuf::from(p);
        match base {
            Some(b) if p.is_relative() && p.as_os_str() != "-" => b.join(p),
            _ => p,
        }
    };

    // [engine]
    let e = &raw.engine;
    let entity_labels = match &e.entity_labels {
        Some(l) if l.get_ref().is_empty() => {
            c.err(l.span(), "entity_labels needs at least one label");
            default_entity_labels()
        }
        Some(l) => l.get_ref().clone(),
        None => default_entity_labels(),
    };
    let engine = EngineSettings {
        lateness_ms: c.secs_to_ms(
            &e.allowed_lateness_secs,
            30_000,
            "allowed_lateness_secs",
            true,
        ),
        limits: LabelLimits {
            max_labels: c.int(&e.max_labels, 32, 1..1025, "max_labels"),
            max_len: c.int(&e.max_label_len, 512, 1..65_537, "max_label_len"),
        },
        workers: c.int(&e.workers, 1, 1..257, "workers"),
        checkpoint_dir: e.checkpoint_dir.as_ref().map(|d| resolve(d.get_ref())),
        checkpoint_interval_ms: c.secs_to_ms(
            &e.checkpoint_interval_secs,
            60_000,
            "checkpoint_interval_secs",
            false,
        ),
        entity_labels,
    };

    let sources = sources::compile_sources(&mut c, &raw.sources, &resolve);
    let windows = detectors::compile_windows(&mut c, &raw.windows);
    // rules
    let rules_dir = rules_dir
        .map(Path::to_path_buf)
        .or_else(|| raw.rules_dir.as_ref().map(|r| resolve(r.get_ref())));
    if let (Some(dir), Some(span)) = (&rules_dir, raw.rules_dir.as_ref().map(|r| r.span())) {
        if !dir.is_dir() {
            c.err(
                span,
                format!("rules_dir {} is not a directory", dir.display()),
            );
        }
    }
    let rules = rules::load_rules(rules_dir.as_deref(), c.errors);
    let detectors = detectors::compile_detectors(&mut c, &raw.detectors, &windows, &rules.weights);
    let forecast_specs = forecasts::compile_forecasts(&mut c, &raw.forecasts, &windows);
    let forecast = (!forecast_specs.is_empty()).then(|| {
        Arc::new(ForecastPlan {
            specs: forecast_specs,
            limits: rules.limits.clone(),
        })
    });
    let mut fusion = rules.fusion.clone();
    fusion.alert_level = rules.severity.low;
    let entity = windowed_section(&mut c, raw.entity.as_ref(), "entity", &windows, |p| {
        p.validate().map(|()| p.window.as_str())
    });
    let peers = windowed_section(&mut c, raw.peers.as_ref(), "peers", &windows, |p| {
        p.validate().map(|()| p.window.as_str())
    });

    // [alerts]
    let a = &raw.alerts;
    let alerts = AlertPolicy {
        alertname: a
            .alertname
            .as_ref()
            .map_or_else(|| "HarbingerAnomaly".to_string(), |n| n.get_ref().clone()),
        resolve_after_ms: c.secs_to_ms(&a.resolve_after_secs, 300_000, "resolve_after_secs", false),
        entity_labels: engine.entity_labels.clone(),
        bands: rules.severity,
        types: rules.anomaly_types.clone(),
        generator_url: a.generator_url.as_ref().map(|u| u.get_ref().clone()),
        confirm_windows: c.int(&a.confirm_windows, 2, 1..1_000_001, "confirm_windows") as u64,
        lone_windows: rules.correlation.grouping.lone_windows,
    };

    let sinks = sinks::compile_sinks(&mut c, &raw.sinks);
    let corr = rules.correlation.clone();
    let correlate = CorrelatePlan {
        dedup: operators::models::dedup::DedupConfig {
            confirm_windows: alerts.confirm_windows,
            ..corr.dedup
        },
        incidents: IncidentPolicy {
            grouping: corr.grouping,
            root_cause: corr.root_cause,
            escalation: rules.escalation.clone(),
        },
        mutes: rules.mutes.clone(),
        links: corr.links,
    };
    if let Some(w) = &rules.recommendations.settings.window {
        if !windows.iter().any(|s| *s.name == **w) {
            c.err(
                0..0,
                format!("recommendations.toml: window {w:?} is not a configured window"),
            );
        }
    }
    Plan {
        optimize: rules.recommendations.clone(),
        correlate: Arc::new(correlate),
        topology: rules.topology.clone(),
        topology_path: rules.topology_path.clone(),
        engine,
        sources,
        windows: windows.into(),
        ensemble: Arc::new(Ensemble { detectors, fusion }),
        entity,
        peers,
        forecast,
        alerts: Arc::new(alerts),
        sinks,
        rules_dir,
    }
}

/// An optional section that checks its own parameters and names a window (`[entity]`,
/// `[peers]`): `check` validates it and returns that window's name. `None` when the section is
/// absent or wrong; every error is reported at the section.
fn windowed_section<T: Clone>(
    c: &mut Checker<'_, '_>,
    section: Option<&toml::Spanned<T>>,
    what: &str,
    windows: &[WindowSpec],
    check: impl Fn(&T) -> Result<&str, operators::models::ModelError>,
) -> Option<Arc<T>> {
    let section = section?;
    let window = match check(section.get_ref()) {
        Ok(window) => window,
        Err(err) => {
            c.err(section.span(), err.to_string());
            return None;
        }
    };
    if !windows.iter().any(|w| *w.name == *window) {
        c.err(
            section.span(),
            format!("{what} window {window:?} is not a configured window"),
        );
        return None;
    }
    Some(Arc::new(section.get_ref().clone()))
}

fn default_entity_labels() -> Vec<String> {
    vec!["service".to_string(), "host".to_string()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compile_str(text: &str) -> Result<Plan, ConfigErrors> {
        compile_text(Path::new("h.toml"), text, None, None)
    }

    #[test]
    fn embedded_default_compiles() {
        let plan = load(None, None).unwrap();
        assert!(matches!(plan.sources[0], SourcePlan::Simulator { .. }));
        assert!(plan.sinks.stdout);
        assert_eq!(
            plan.sinks.jsonl_dir.as_deref(),
            Some(Path::new("harbinger-out"))
        );
    }

    /// A config that names no detectors gets the embedded default's (a Kafka deployment
    /// without `[[detectors]]` alerts as the demo and `replay` without `--config` do).
    #[test]
    fn no_detectors_means_the_embedded_defaults() {
        let embedded = load(None, None).unwrap();
        let bare = compile_str("[engine]\nallowed_lateness_secs = 30\n").unwrap();
        assert_eq!(bare.ensemble.detectors, embedded.ensemble.detectors);
        let names: Vec<&str> = bare
            .ensemble
            .detectors
            .iter()
            .map(|d| d.name.as_str())
            .collect();
        assert_eq!(names, ["robust_z", "trend"]);
    }

    #[test]
    fn every_error_is_reported_with_its_position() {
        let text = r#"
[engine]
allowed_lateness_secs = -1

[[sources]]
type = "file"
path = "m.jsonl"
seed = 3

[[windows]]
name = "1m"
size_secs = 60
slide_secs = 25

[[detectors]]
type = "robust_z"
window = "5m"
threshold = 0
"#;
        let errs = compile_str(text).unwrap_err();
        let lines: Vec<String> = errs.0.iter().map(|e| e.to_string()).collect();
        assert_eq!(
            lines,
            [
                "h.toml:3:25: allowed_lateness_secs must be a number of seconds ≥ 0, got -1",
                "h.toml:8:8: `seed` does not apply to a `file` source",
                "h.toml:13:14: slide_secs must divide size_secs (a window is a whole number of slides)",
                "h.toml:17:10: unknown window \"5m\" (configured: 1m)",
                "h.toml:18:13: threshold must be between 0.1 and 1000000, got 0",
            ]
        );
    }

    #[test]
    fn unknown_fields_and_bad_types_point_at_the_key() {
        let errs = compile_str("[engine]\nlatenes = 3\n").unwrap_err();
        assert_eq!(errs.0.len(), 1);
        assert_eq!((errs.0[0].line, errs.0[0].col), (2, 1));
        assert!(
            errs.0[0].message.contains("unknown field `latenes`"),
            "{}",
            errs.0[0]
        );
        let errs = compile_str("[[sources]]\ntype = \"ftp\"\n").unwrap_err();
        assert_eq!((errs.0[0].line, errs.0[0].col), (2, 8));
    }

    #[test]
    fn simulator_replicas_are_read_checked_and_only_for_the_simulator() {
        let plan = compile_str("[[sources]]\ntype = \"simulator\"\nreplicas = 3\n").expect("valid");
        let SourcePlan::Simulator { config, .. } = &plan.sources[0] else {
            panic!("a simulator source: {:?}", plan.sources[0]);
        };
        assert_eq!(config.replicas, 3);
        // Each refused source names `replicas` at its line.
        for (text, line) in [
            ("[[sources]]\ntype = \"simulator\"\nreplicas = 0\n", 3),
            (
                "[[sources]]\ntype = \"file\"\npath = \"m.jsonl\"\nreplicas = 3\n",
                4,
            ),
        ] {
            let error = compile_str(text).expect_err(text).to_string();
            assert!(
                error.contains(&format!("h.toml:{line}:")) && error.contains("replicas"),
                "{error}"
            );
        }
    }

    #[test]
    fn peer_comparison_is_off_unless_configured_and_checked_when_it_is() {
        assert!(load(None, None).unwrap().peers.is_none());
        let ok = compile_str("[peers]\nmetrics = \"http_.*\"\nspan = 5\n").unwrap();
        let peers = ok.peers.expect("configured");
        assert_eq!((peers.span, peers.peer_label.as_str()), (5, "host"));
        let errs = compile_str("\n[peers]\nwindow = \"5m\"\n").unwrap_err();
        assert_eq!(errs.0.len(), 1);
        assert_eq!(errs.0[0].line, 2);
        assert!(
            errs.0[0].message.contains("peers window \"5m\""),
            "{}",
            errs.0[0]
        );
        let errs = compile_str("[peers]\nthreshold = 0\n").unwrap_err();
        assert!(errs.0[0].message.contains("threshold"), "{}", errs.0[0]);
        let errs = compile_str("[peers]\nlabel = \"pod\"\n").unwrap_err();
        assert!(
            errs.0[0].message.contains("unknown field `label`"),
            "{}",
            errs.0[0]
        );
    }
}
