//! The config file as written: serde structs that mirror the TOML, reject unknown fields, and keep
//! each value's position so validation can point at it. Nothing here is checked beyond types; see
//! `compile` in the parent module for the rules.

use serde::Deserialize;
use toml::Spanned;

use crate::parse::{Format, Precision};

/// The whole config file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Engine-wide settings.
    #[serde(default)]
    pub engine: RawEngine,
    /// Where points come from.
    #[serde(default)]
    pub sources: Vec<Spanned<RawSource>>,
    /// Windows computed per series.
    #[serde(default)]
    pub windows: Vec<Spanned<RawWindow>>,
    /// Detectors run on window features.
    #[serde(default)]
    pub detectors: Vec<Spanned<RawDetector>>,
    /// Alert naming and lifecycle.
    #[serde(default)]
    pub alerts: RawAlerts,
    /// Forecast specs (absent: nothing is forecast).
    #[serde(default)]
    pub forecasts: Vec<Spanned<super::forecasts::RawForecast>>,
    /// Entity-level detectors over the joint vector of an entity's series (absent: off).
    pub entity: Option<Spanned<operators::models::entity_set::EntityPlan>>,
    /// Peer comparison: each series against the same series on other hosts (absent: off).
    pub peers: Option<Spanned<operators::models::peers::PeerConfig>>,
    /// Where results go.
    #[serde(default)]
    pub sinks: Vec<Spanned<RawSink>>,
    /// Directory of rule files, relative to the config file.
    pub rules_dir: Option<Spanned<String>>,
}

/// `[engine]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEngine {
    /// How far behind its partition's newest point a point may be (seconds; default 30).
    pub allowed_lateness_secs: Option<Spanned<f64>>,
    /// Labels naming an entity, in order of preference (default `["service", "host"]`).
    pub entity_labels: Option<Spanned<Vec<String>>>,
    /// Most labels a series may carry (default 32).
    pub max_labels: Option<Spanned<i64>>,
    /// Longest metric name, label name or label value in bytes (default 512).
    pub max_label_len: Option<Spanned<i64>>,
    /// Worker threads (default 1; `--workers` overrides).
    pub workers: Option<Spanned<i64>>,
    /// Directory for state checkpoints (default: none; `--checkpoint-dir` overrides).
    pub checkpoint_dir: Option<Spanned<String>>,
    /// Event time between checkpoints (seconds; default 60).
    pub checkpoint_interval_secs: Option<Spanned<f64>>,
}

/// The kinds of source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceType {
    /// Files, one partition each.
    File,
    /// Standard input.
    Stdin,
    /// The built-in simulator.
    Simulator,
    /// Kafka topics, through a consumer group.
    Kafka,
}

/// One topic of a Kafka source.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTopic {
    /// Topic name.
    pub name: Spanned<String>,
    /// Payload format (default: the source's `format`, else json).
    pub format: Option<Spanned<Format>>,
    /// Influx timestamp unit (default: the source's, else ns).
    pub influx_precision: Option<Spanned<Precision>>,
}

/// `[[sources]]`: one struct for every type; fields that do not apply to the type are errors.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSource {
    /// Source kind.
    #[serde(rename = "type")]
    pub kind: Spanned<SourceType>,
    /// Name used in dead letters and logs (default: the type and position).
    pub name: Option<Spanned<String>>,
    /// file: one path.
    pub path: Option<Spanned<String>>,
    /// file: several paths.
    pub paths: Option<Spanned<Vec<String>>>,
    /// file/stdin: input format (default from the extension; stdin: json).
    pub format: Option<Spanned<Format>>,
    /// file/stdin with `influx`: timestamp unit (default ns).
    pub influx_precision: Option<Spanned<Precision>>,
    /// file/simulator: event time per wall-clock time (0 = as fast as possible).
    pub speed: Option<Spanned<f64>>,
    /// simulator: seed (default 42).
    pub seed: Option<Spanned<i64>>,
    /// simulator: number of services (default 12).
    pub services: Option<Spanned<i64>>,
    /// simulator: replicas per service, each on its own host (default 1; 3 or more also
    /// injects degraded replicas).
    pub replicas: Option<Spanned<i64>>,
    /// simulator: simulated duration in seconds (default 6 h).
    pub duration_secs: Option<Spanned<f64>>,
    /// simulator: sampling interval in seconds (default 10).
    pub step_secs: Option<Spanned<f64>>,
    /// simulator: start time, RFC 3339 (default 2024-01-01T00:00:00Z).
    pub start: Option<Spanned<String>>,
    /// simulator: number of incidents (default: one per 75 minutes after the first hour).
    pub incidents: Option<Spanned<i64>>,
    /// simulator: probability that an incident overlaps the previous one (default 0.15).
    pub overlap_probability: Option<Spanned<f64>>,
    /// kafka: `bootstrap.servers`.
    pub brokers: Option<Spanned<String>>,
    /// kafka: one topic (with the source's `format`).
    pub topic: Option<Spanned<String>>,
    /// kafka: several topics, each with its format.
    pub topics: Option<Spanned<Vec<RawTopic>>>,
    /// kafka: consumer group (default `harbinger`).
    pub group_id: Option<Spanned<String>>,
    /// kafka: wall-clock seconds without messages before a partition stops holding the watermark
    /// (default 10).
    pub idle_partition_timeout_secs: Option<Spanned<f64>>,
    /// kafka: librdkafka properties passed through (security, tuning).
    pub properties: Option<Spanned<std::collections::BTreeMap<String, String>>>,
    /// kafka: `auto` (default: manual for one process, group for a cluster), `group` or `manual`.
    pub partition_assignment: Option<Spanned<crate::sources::kafka::Assignment>>,
}

/// `[[windows]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWindow {
    /// Name referenced by detectors and shown in output.
    pub name: Spanned<String>,
    /// Length in seconds.
    pub size_secs: Spanned<f64>,
    /// Slide in seconds (default: the size, a tumbling window).
    pub slide_secs: Option<Spanned<f64>>,
}

/// The kinds of detector (see `operators::models::detector_set::DetectorKind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DetectorType {
    /// Robust z-score on a rolling median/MAD baseline.
    RobustZ,
    /// Tukey's IQR fences on a rolling window.
    Iqr,
    /// EWMA control chart.
    Ewma,
    /// Two-sided CUSUM.
    Cusum,
    /// Same-phase seasonal baseline (periodogram-detected season).
    Seasonal,
    /// BOCPD change points on suspicious windows.
    Changepoint,
    /// Streaming isolation forest on the feature vector.
    IsolationForest,
    /// Streaming one-class SVM on the feature vector.
    OneClassSvm,
    /// Distance to the nearest recent normal feature vectors.
    Knn,
    /// Distance from a damped-trend one-step forecast (outside its 95% interval scores high).
    ForecastResidual,
    /// Share of never-seen (earlier level, current level) facts: contextual novelty.
    Contextual,
    /// The recent slope against the series' usual slopes (leaks, filling disks).
    Trend,
}

impl DetectorType {
    /// The type's name as written in the config.
    pub fn name(self) -> &'static str {
        match self {
            DetectorType::RobustZ => "robust_z",
            DetectorType::Iqr => "iqr",
            DetectorType::Ewma => "ewma",
            DetectorType::Cusum => "cusum",
            DetectorType::Seasonal => "seasonal",
            DetectorType::Changepoint => "changepoint",
            DetectorType::IsolationForest => "isolation_forest",
            DetectorType::OneClassSvm => "one_class_svm",
            DetectorType::Knn => "knn",
            DetectorType::ForecastResidual => "forecast_residual",
            DetectorType::Contextual => "contextual",
            DetectorType::Trend => "trend",
        }
    }
}

/// Feature names as written in the config, plus `auto`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeatureName {
    /// `counter_rate` for counters (`*_total`, `*_count`, `*_sum`, `*_bucket`), else `mean`.
    Auto,
    /// Window point count.
    Count,
    /// Mean.
    Mean,
    /// Minimum.
    Min,
    /// Maximum.
    Max,
    /// Standard deviation.
    Std,
    /// Last value.
    Last,
    /// Median.
    P50,
    /// 95th percentile.
    P95,
    /// 99th percentile.
    P99,
    /// Slope within the window.
    RateOfChange,
    /// Counter-reset-aware rate.
    CounterRate,
}

/// `[[detectors]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDetector {
    /// Detector kind.
    #[serde(rename = "type")]
    pub kind: Spanned<DetectorType>,
    /// Name in output (default: the type).
    pub name: Option<Spanned<String>>,
    /// Window it watches.
    pub window: Spanned<String>,
    /// Feature it watches (default `auto`).
    pub feature: Option<Spanned<FeatureName>>,
    /// Weight in the fused score (default: the detector kind's weight in `rules/fusion.toml`).
    pub weight: Option<Spanned<f64>>,
    /// Metric names it watches: a regular expression over the whole name (default: every
    /// series).
    pub metrics: Option<Spanned<String>>,
    /// Parameters of the detector kind, as a table (every kind; each field documented on the
    /// kind's config struct, unknown fields are errors).
    pub params: Option<Spanned<toml::Table>>,
    /// robust_z: windows in the baseline (default 60).
    pub baseline_windows: Option<Spanned<i64>>,
    /// robust_z: recent windows whose median is the expected level (default 10).
    pub level_windows: Option<Spanned<i64>>,
    /// robust_z: windows before scoring starts (default 20).
    pub warmup_windows: Option<Spanned<i64>>,
    /// robust_z: |z| that scores 0.5 (default 4.5).
    pub threshold: Option<Spanned<f64>>,
    /// robust_z: scale floor as a fraction of |median| (default 0.01).
    pub min_relative_scale: Option<Spanned<f64>>,
}

/// `[alerts]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAlerts {
    /// The `alertname` label (default `HarbingerAnomaly`).
    pub alertname: Option<Spanned<String>>,
    /// Quiet event time before an alert resolves (seconds; default 300).
    pub resolve_after_secs: Option<Spanned<f64>>,
    /// Base URL for `generatorURL` (default: none, the field is left out).
    pub generator_url: Option<Spanned<String>>,
    /// Anomalous windows that confirm an alert for correlation (default 2).
    pub confirm_windows: Option<Spanned<i64>>,
}

/// The kinds of sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SinkType {
    /// A compact human summary on standard output.
    Stdout,
    /// JSON-lines files in a directory.
    Jsonl,
    /// Kafka topics.
    Kafka,
    /// Alertmanager's `POST /api/v2/alerts`.
    Alertmanager,
}

/// `[[sinks]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSink {
    /// Sink kind.
    #[serde(rename = "type")]
    pub kind: Spanned<SinkType>,
    /// jsonl: output directory (default `harbinger-out`).
    pub dir: Option<Spanned<String>>,
    /// jsonl: also write `features.jsonl` with every closed window (default false).
    pub features: Option<Spanned<bool>>,
    /// kafka: `bootstrap.servers`.
    pub brokers: Option<Spanned<String>>,
    /// kafka: topic of alert events (default `alerts`).
    pub alerts_topic: Option<Spanned<String>>,
    /// kafka: topic of incident events (default `incidents`).
    pub incidents_topic: Option<Spanned<String>>,
    /// kafka: topic of recommendations (default `recommendations`).
    pub recommendations_topic: Option<Spanned<String>>,
    /// kafka: topic of dead letters (default `dead-letters`).
    pub dead_letters_topic: Option<Spanned<String>>,
    /// kafka: librdkafka properties passed through.
    pub properties: Option<Spanned<std::collections::BTreeMap<String, String>>>,
    /// alertmanager: base URL (`http://host:9093`).
    pub url: Option<Spanned<String>>,
    /// alertmanager: also send alerts that belong to no incident (default false).
    pub uncorrelated: Option<Spanned<bool>>,
    /// alertmanager: re-send firing alerts this often (default 60 s).
    pub resend_secs: Option<Spanned<i64>>,
}
