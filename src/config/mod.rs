//! Configuration: one TOML file (sources, windows, detectors, alerts, sinks, engine settings) plus
//! the rule files of a `rules/` directory.
//!
//! Loading is two steps, as in Vector: the raw serde structs of [`raw`] (types and unknown fields
//! checked by the parser), then [`compile`], which checks every value and cross-reference and
//! collects *all* errors with their file:line:col before giving up. The result is a [`Plan`]:
//! validated settings the engine can run without further checks.

pub mod error;
pub mod raw;
pub mod rules;

use std::collections::HashSet;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use operators::models::alert_lifecycle::AlertPolicy;
use operators::models::detector_set::{DetectorKind, DetectorPlan, FeatureChoice};
use operators::models::robust_z::RobustZConfig;
use operators::models::window_stats::Feature;
use operators::window::WindowSpec;
use toml::Spanned;

use crate::ingest::LabelLimits;
use crate::parse::{timestamp, Format, Precision};
use crate::sources::simulator::SimulatorConfig;
pub use error::{ConfigError, ConfigErrors, SourceText};
use raw::{DetectorType, FeatureName, RawConfig, RawSource, SinkType, SourceType};
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
    /// Detectors.
    pub detectors: Arc<[DetectorPlan]>,
    /// Alert policy (naming, lifecycle, severity, types).
    pub alerts: Arc<AlertPolicy>,
    /// Sinks.
    pub sinks: SinkPlan,
    /// The rules directory in use, if any.
    pub rules_dir: Option<PathBuf>,
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

/// Collects errors against one file.
struct Checker<'a, 'b> {
    src: &'a SourceText<'a>,
    errors: &'b mut Vec<ConfigError>,
}

impl Checker<'_, '_> {
    fn err(&mut self, span: Range<usize>, msg: impl Into<String>) {
        self.errors.push(self.src.error(span, msg));
    }

    /// A positive duration in seconds, as milliseconds.
    fn secs_to_ms(
        &mut self,
        v: &Option<Spanned<f64>>,
        default_ms: u64,
        what: &str,
        allow_zero: bool,
    ) -> u64 {
        let Some(v) = v else { return default_ms };
        let secs = *v.get_ref();
        let ok = secs.is_finite() && (secs > 0.0 || (allow_zero && secs == 0.0)) && secs < 1e9;
        if !ok {
            let bound = if allow_zero { "≥ 0" } else { "> 0" };
            self.err(
                v.span(),
                format!("{what} must be a number of seconds {bound}, got {secs}"),
            );
            return default_ms;
        }
        (secs * 1000.0).round() as u64
    }

    /// An integer within `range`.
    fn int(
        &mut self,
        v: &Option<Spanned<i64>>,
        default: usize,
        range: Range<i64>,
        what: &str,
    ) -> usize {
        let Some(v) = v else { return default };
        let x = *v.get_ref();
        if !range.contains(&x) {
            self.err(
                v.span(),
                format!(
                    "{what} must be between {} and {}, got {x}",
                    range.start,
                    range.end - 1
                ),
            );
            return default;
        }
        x as usize
    }

    /// A float within [lo, hi].
    fn float(
        &mut self,
        v: &Option<Spanned<f64>>,
        default: f64,
        lo: f64,
        hi: f64,
        what: &str,
    ) -> f64 {
        let Some(v) = v else { return default };
        let x = *v.get_ref();
        if !(x.is_finite() && x >= lo && x <= hi) {
            self.err(
                v.span(),
                format!("{what} must be between {lo} and {hi}, got {x}"),
            );
            return default;
        }
        x
    }

    /// Reports a field given for a source type it does not apply to.
    fn not_for<T>(&mut self, field: &Option<Spanned<T>>, name: &str, kind: &str) {
        if let Some(f) = field {
            self.err(
                f.span(),
                format!("`{name}` does not apply to a `{kind}` source"),
            );
        }
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
        entity_labels,
    };

    // [[sources]]
    let mut sources = Vec::new();
    let mut source_names = HashSet::new();
    for (i, s) in raw.sources.iter().enumerate() {
        let span = s.span();
        let s = s.get_ref();
        let kind = *s.kind.get_ref();
        let name = s
            .name
            .as_ref()
            .map(|n| n.get_ref().clone())
            .unwrap_or_else(|| format!("{}-{}", kind_name(kind), i + 1));
        if !source_names.insert(name.clone()) {
            c.err(span.clone(), format!("source name {name:?} is used twice"));
        }
        compile_source(&mut c, s, kind, name, span, &resolve, &mut sources);
    }

    // [[windows]]
    let mut windows = Vec::new();
    for w in &raw.windows {
        let w = w.get_ref();
        let size_ms = c.secs_to_ms(&Some(w.size_secs.clone()), 60_000, "size_secs", false);
        let slide_ms = c.secs_to_ms(&w.slide_secs, size_ms, "slide_secs", false);
        if slide_ms > size_ms || !size_ms.is_multiple_of(slide_ms.max(1)) {
            c.err(
                w.slide_secs
                    .as_ref()
                    .map_or(w.size_secs.span(), |s| s.span()),
                "slide_secs must divide size_secs (a window is a whole number of slides)",
            );
        }
        if windows
            .iter()
            .any(|x: &WindowSpec| &x.name == w.name.get_ref())
        {
            c.err(
                w.name.span(),
                format!("window name {:?} is used twice", w.name.get_ref()),
            );
        }
        windows.push(WindowSpec {
            name: w.name.get_ref().clone(),
            size_ms,
            slide_ms,
        });
    }
    if windows.is_empty() {
        windows.push(WindowSpec::tumbling("1m", 60_000));
    }

    // [[detectors]]
    let mut detectors: Vec<DetectorPlan> = Vec::new();
    for d in &raw.detectors {
        let d = d.get_ref();
        if !windows.iter().any(|w| &w.name == d.window.get_ref()) {
            let known: Vec<&str> = windows.iter().map(|w| w.name.as_str()).collect();
            c.err(
                d.window.span(),
                format!(
                    "unknown window {:?} (configured: {})",
                    d.window.get_ref(),
                    known.join(", ")
                ),
            );
        }
        let name = d
            .name
            .as_ref()
            .map(|n| n.get_ref().clone())
            .unwrap_or_else(|| match d.kind.get_ref() {
                DetectorType::RobustZ => "robust_z".to_string(),
            });
        if detectors.iter().any(|x| x.name == name) {
            let span = d.name.as_ref().map_or(d.kind.span(), |n| n.span());
            c.err(
                span,
                format!("detector name {name:?} is used twice; give each a `name`"),
            );
        }
        let kind = match d.kind.get_ref() {
            DetectorType::RobustZ => {
                let defaults = RobustZConfig::default();
                let cfg = RobustZConfig {
                    baseline_len: c.int(
                        &d.baseline_windows,
                        defaults.baseline_len,
                        3..100_001,
                        "baseline_windows",
                    ),
                    level_len: c.int(
                        &d.level_windows,
                        defaults.level_len,
                        1..100_001,
                        "level_windows",
                    ),
                    warmup_len: c.int(
                        &d.warmup_windows,
                        defaults.warmup_len,
                        3..100_001,
                        "warmup_windows",
                    ),
                    threshold: c.float(&d.threshold, defaults.threshold, 0.1, 1e6, "threshold"),
                    min_relative_scale: c.float(
                        &d.min_relative_scale,
                        defaults.min_relative_scale,
                        0.0,
                        1.0,
                        "min_relative_scale",
                    ),
                };
                if let Err(e) = cfg.validate() {
                    c.err(d.kind.span(), e.to_string());
                }
                DetectorKind::RobustZ(cfg)
            }
        };
        detectors.push(DetectorPlan {
            name,
            window: d.window.get_ref().clone(),
            feature: feature_choice(d.feature.as_ref().map(|f| *f.get_ref())),
            weight: c.float(&d.weight, 1.0, 0.0, 1e6, "weight"),
            kind,
        });
    }
    if detectors.is_empty() {
        detectors.push(DetectorPlan {
            name: "robust_z".into(),
            window: windows[0].name.clone(),
            feature: FeatureChoice::Auto,
            weight: 1.0,
            kind: DetectorKind::RobustZ(RobustZConfig::default()),
        });
    }

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
    };

    // [[sinks]]
    let mut sinks = SinkPlan::default();
    for s in &raw.sinks {
        let s = s.get_ref();
        match s.kind.get_ref() {
            SinkType::Stdout => {
                if let Some(d) = &s.dir {
                    c.err(d.span(), "`dir` does not apply to a `stdout` sink");
                }
                sinks.stdout = true;
            }
            SinkType::Jsonl => {
                sinks.jsonl_dir = Some(s.dir.as_ref().map_or_else(
                    || PathBuf::from("harbinger-out"),
                    |d| PathBuf::from(d.get_ref()),
                ));
                sinks.features = s.features.as_ref().is_some_and(|f| *f.get_ref());
            }
        }
    }

    Plan {
        engine,
        sources,
        windows: windows.into(),
        detectors: detectors.into(),
        alerts: Arc::new(alerts),
        sinks,
        rules_dir,
    }
}

fn default_entity_labels() -> Vec<String> {
    vec!["service".to_string(), "host".to_string()]
}

fn kind_name(kind: SourceType) -> &'static str {
    match kind {
        SourceType::File => "file",
        SourceType::Stdin => "stdin",
        SourceType::Simulator => "simulator",
    }
}

fn feature_choice(name: Option<FeatureName>) -> FeatureChoice {
    let fixed = |f| FeatureChoice::Fixed(f);
    match name.unwrap_or(FeatureName::Auto) {
        FeatureName::Auto => FeatureChoice::Auto,
        FeatureName::Count => fixed(Feature::Count),
        FeatureName::Mean => fixed(Feature::Mean),
        FeatureName::Min => fixed(Feature::Min),
        FeatureName::Max => fixed(Feature::Max),
        FeatureName::Std => fixed(Feature::Std),
        FeatureName::Last => fixed(Feature::Last),
        FeatureName::P50 => fixed(Feature::P50),
        FeatureName::P95 => fixed(Feature::P95),
        FeatureName::P99 => fixed(Feature::P99),
        FeatureName::RateOfChange => fixed(Feature::RateOfChange),
        FeatureName::CounterRate => fixed(Feature::CounterRate),
    }
}

fn compile_source(
    c: &mut Checker<'_, '_>,
    s: &RawSource,
    kind: SourceType,
    name: String,
    span: Range<usize>,
    resolve: &dyn Fn(&str) -> PathBuf,
    out: &mut Vec<SourcePlan>,
) {
    let kn = kind_name(kind);
    match kind {
        SourceType::File | SourceType::Stdin => {
            for (field, fname) in [
                (&s.seed, "seed"),
                (&s.services, "services"),
                (&s.incidents, "incidents"),
            ] {
                c.not_for(field, fname, kn);
            }
            c.not_for(&s.duration_secs, "duration_secs", kn);
            c.not_for(&s.step_secs, "step_secs", kn);
            c.not_for(&s.overlap_probability, "overlap_probability", kn);
            c.not_for(&s.start, "start", kn);
            let speed = c.float(&s.speed, 0.0, 0.0, 1e9, "speed");
            let precision = s
                .influx_precision
                .as_ref()
                .map_or(Precision::Ns, |p| *p.get_ref());
            let paths: Vec<PathBuf> = if kind == SourceType::Stdin {
                c.not_for(&s.path, "path", kn);
                c.not_for(&s.paths, "paths", kn);
                vec![PathBuf::from("-")]
            } else {
                let mut v: Vec<PathBuf> = s.path.iter().map(|p| resolve(p.get_ref())).collect();
                if let Some(ps) = &s.paths {
                    v.extend(ps.get_ref().iter().map(|p| resolve(p)));
                }
                if v.is_empty() {
                    c.err(span, "a `file` source needs `path` or `paths`");
                }
                v
            };
            let many = paths.len() > 1;
            for path in paths {
                let format = s.format.as_ref().map_or_else(
                    || crate::sources::file::format_from_extension(&path),
                    |f| *f.get_ref(),
                );
                out.push(SourcePlan::File {
                    name: if many {
                        format!("{name}:{}", path.display())
                    } else {
                        name.clone()
                    },
                    path,
                    format,
                    precision,
                    speed,
                });
            }
        }
        SourceType::Simulator => {
            c.not_for(&s.path, "path", kn);
            c.not_for(&s.paths, "paths", kn);
            c.not_for(&s.format, "format", kn);
            c.not_for(&s.influx_precision, "influx_precision", kn);
            let d = SimulatorConfig::default();
            let start_ms = match &s.start {
                None => d.start_ms,
                Some(t) => match timestamp::parse_text(t.get_ref()) {
                    Ok(ms) => ms,
                    Err(_) => {
                        c.err(
                            t.span(),
                            format!("start {:?} is not an RFC 3339 time", t.get_ref()),
                        );
                        d.start_ms
                    }
                },
            };
            let config = SimulatorConfig {
                seed: s.seed.as_ref().map_or(d.seed, |v| *v.get_ref() as u64),
                services: c.int(&s.services, d.services, 3..10_001, "services"),
                duration_ms: c.secs_to_ms(&s.duration_secs, d.duration_ms, "duration_secs", false),
                step_ms: c.secs_to_ms(&s.step_secs, d.step_ms, "step_secs", false),
                start_ms,
                incidents: s
                    .incidents
                    .as_ref()
                    .map(|_| c.int(&s.incidents, 0, 0..100_001, "incidents")),
                overlap_probability: c.float(
                    &s.overlap_probability,
                    d.overlap_probability,
                    0.0,
                    1.0,
                    "overlap_probability",
                ),
                speed: c.float(&s.speed, 0.0, 0.0, 1e9, "speed"),
            };
            out.push(SourcePlan::Simulator { name, config });
        }
    }
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
}
