//! `[[windows]]` and `[[detectors]]`: window specs, and the detectors that watch them (each must
//! name a configured window). Without any, a 1-minute tumbling window with the default set: the
//! robust detector on every series and the trend detector on memory gauges, as in the embedded
//! default config.

use std::collections::BTreeMap;

use operators::models::changepoint::ChangepointConfig;
use operators::models::contextual::ContextualConfig;
use operators::models::cusum::CusumConfig;
use operators::models::detector_set::{DetectorKind, DetectorPlan, FeatureChoice};
use operators::models::ewma::EwmaConfig;
use operators::models::forecast_residual::ForecastResidualConfig;
use operators::models::forest_detector::ForestDetectorConfig;
use operators::models::iqr::IqrConfig;
use operators::models::knn_detector::KnnDetectorConfig;
use operators::models::robust_z::RobustZConfig;
use operators::models::seasonal::SeasonalConfig;
use operators::models::svm_detector::SvmDetectorConfig;
use operators::models::trend::TrendConfig;
use operators::models::window_stats::Feature;
use operators::rules::MetricPattern;
use operators::window::WindowSpec;
use toml::Spanned;

use super::checker::Checker;
use super::raw::{DetectorType, FeatureName, RawDetector, RawWindow};

/// Compiles the window specs.
pub fn compile_windows(c: &mut Checker<'_, '_>, raw: &[Spanned<RawWindow>]) -> Vec<WindowSpec> {
    let mut windows = Vec::new();
    for w in raw {
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
            .any(|x: &WindowSpec| *x.name == **w.name.get_ref())
        {
            c.err(
                w.name.span(),
                format!("window name {:?} is used twice", w.name.get_ref()),
            );
        }
        windows.push(WindowSpec {
            name: w.name.get_ref().as_str().into(),
            size_ms,
            slide_ms,
        });
    }
    if windows.is_empty() {
        windows.push(WindowSpec::tumbling("1m", 60_000));
    }

    windows
}

/// Compiles the detectors against the compiled `windows`; a detector without a `weight` takes
/// its kind's weight from the fusion rules (`weights`, by kind name; 1 when absent).
pub fn compile_detectors(
    c: &mut Checker<'_, '_>,
    raw: &[Spanned<RawDetector>],
    windows: &[WindowSpec],
    weights: &BTreeMap<String, f64>,
) -> Vec<DetectorPlan> {
    let mut detectors: Vec<DetectorPlan> = Vec::new();
    for d in raw {
        let d = d.get_ref();
        if !windows.iter().any(|w| *w.name == **d.window.get_ref()) {
            let known: Vec<&str> = windows.iter().map(|w| &*w.name).collect();
            c.err(
                d.window.span(),
                format!(
                    "unknown window {:?} (configured: {})",
                    d.window.get_ref(),
                    known.join(", ")
                ),
            );
        }
        let kind_type = *d.kind.get_ref();
        let name = d
            .name
            .as_ref()
            .map(|n| n.get_ref().clone())
            .unwrap_or_else(|| kind_type.name().to_string());
        if detectors.iter().any(|x| x.name == name) {
            let span = d.name.as_ref().map_or(d.kind.span(), |n| n.span());
            c.err(
                span,
                format!("detector name {name:?} is used twice; give each a `name`"),
            );
        }
        if kind_type != DetectorType::RobustZ {
            for (field, present) in [
                (
                    "baseline_windows",
                    d.baseline_windows.as_ref().map(|x| x.span()),
                ),
                ("level_windows", d.level_windows.as_ref().map(|x| x.span())),
                (
                    "warmup_windows",
                    d.warmup_windows.as_ref().map(|x| x.span()),
                ),
                ("threshold", d.threshold.as_ref().map(|x| x.span())),
                (
                    "min_relative_scale",
                    d.min_relative_scale.as_ref().map(|x| x.span()),
                ),
            ] {
                if let Some(span) = present {
                    c.err(
                        span,
                        format!(
                            "`{field}` applies to robust_z only; give `{}` parameters in `params`",
                            kind_type.name()
                        ),
                    );
                }
            }
        }
        let kind = match kind_type {
            DetectorType::RobustZ => {
                let base: RobustZConfig = params(c, d, RobustZConfig::default());
                let cfg = RobustZConfig {
                    baseline_len: c.int(
                        &d.baseline_windows,
                        base.baseline_len,
                        3..100_001,
                        "baseline_windows",
                    ),
                    level_len: c.int(
                        &d.level_windows,
                        base.level_len,
                        1..100_001,
                        "level_windows",
                    ),
                    warmup_len: c.int(
                        &d.warmup_windows,
                        base.warmup_len,
                        3..100_001,
                        "warmup_windows",
                    ),
                    threshold: c.float(&d.threshold, base.threshold, 0.1, 1e6, "threshold"),
                    min_relative_scale: c.float(
                        &d.min_relative_scale,
                        base.min_relative_scale,
                        0.0,
                        1.0,
                        "min_relative_scale",
                    ),
                };
                DetectorKind::RobustZ(cfg)
            }
            DetectorType::Iqr => DetectorKind::Iqr(params(c, d, IqrConfig::default())),
            DetectorType::Ewma => DetectorKind::Ewma(params(c, d, EwmaConfig::default())),
            DetectorType::Cusum => DetectorKind::Cusum(params(c, d, CusumConfig::default())),
            DetectorType::Seasonal => {
                DetectorKind::Seasonal(params(c, d, SeasonalConfig::default()))
            }
            DetectorType::Changepoint => {
                DetectorKind::Changepoint(params(c, d, ChangepointConfig::default()))
            }
            DetectorType::IsolationForest => {
                DetectorKind::IsolationForest(params(c, d, ForestDetectorConfig::default()))
            }
            DetectorType::OneClassSvm => {
                DetectorKind::OneClassSvm(params(c, d, SvmDetectorConfig::default()))
            }
            DetectorType::Knn => DetectorKind::Knn(params(c, d, KnnDetectorConfig::default())),
            DetectorType::ForecastResidual => {
                DetectorKind::ForecastResidual(params(c, d, ForecastResidualConfig::default()))
            }
            DetectorType::Contextual => {
                DetectorKind::Contextual(params(c, d, ContextualConfig::default()))
            }
            DetectorType::Trend => DetectorKind::Trend(params(c, d, TrendConfig::default())),
        };
        if let Err(e) = kind.validate() {
            let span = d.params.as_ref().map_or(d.kind.span(), |p| p.span());
            c.err(span, e.to_string());
        }
        let metrics = d
            .metrics
            .as_ref()
            .and_then(|m| match MetricPattern::new(m.get_ref()) {
                Ok(p) => Some(p),
                Err(e) => {
                    c.err(m.span(), format!("invalid metrics pattern: {e}"));
                    None
                }
            });
        let default_weight = weights.get(kind.name()).copied().unwrap_or(1.0);
        detectors.push(DetectorPlan {
            name,
            window: d.window.get_ref().clone(),
            feature: feature_choice(d.feature.as_ref().map(|f| *f.get_ref())),
            weight: c.float(&d.weight, default_weight, 0.0, 1e6, "weight"),
            kind,
            metrics,
        });
    }
    if detectors.is_empty() {
        detectors = default_detectors(&windows[0].name, weights);
    }

    detectors
}

/// Metric names the default trend detector watches: memory gauges, whose slopes are steady
/// outside leaks (latency and error ratios ramp with every fault).
pub const MEMORY_GAUGES: &str = ".*(memory|heap|rss).*";

/// The detectors of a config that names none, on `window`: the robust detector on every series
/// (a leak's ramp it follows, so it would go unreported until the OOM kill) and the trend
/// detector on memory gauges.
fn default_detectors(window: &str, weights: &BTreeMap<String, f64>) -> Vec<DetectorPlan> {
    let plan = |kind: DetectorKind, metrics: Option<MetricPattern>| DetectorPlan {
        name: kind.name().into(),
        window: window.to_string(),
        feature: FeatureChoice::Auto,
        weight: weights.get(kind.name()).copied().unwrap_or(1.0),
        kind,
        metrics,
    };
    let memory = MetricPattern::new(MEMORY_GAUGES).expect("the memory-gauge pattern compiles");
    vec![
        plan(DetectorKind::RobustZ(RobustZConfig::default()), None),
        plan(DetectorKind::Trend(TrendConfig::default()), Some(memory)),
    ]
}

/// The detector's `params` table read as the kind's config `T` over `defaults` (fields left out
/// keep their defaults); an error is reported at the table.
fn params<T>(c: &mut Checker<'_, '_>, d: &RawDetector, defaults: T) -> T
where
    T: serde::de::DeserializeOwned + serde::Serialize,
{
    let Some(table) = &d.params else {
        return defaults;
    };
    // Overlay the given fields on the defaults, so nested tables may also be partial.
    let mut base = match toml::Table::try_from(&defaults) {
        Ok(t) => t,
        Err(e) => {
            c.err(table.span(), format!("invalid params: {e}"));
            return defaults;
        }
    };
    overlay(&mut base, table.get_ref());
    match toml::Value::Table(base).try_into::<T>() {
        Ok(v) => v,
        Err(e) => {
            c.err(
                table.span(),
                format!(
                    "invalid params for {}: {}",
                    d.kind.get_ref().name(),
                    e.message().trim()
                ),
            );
            defaults
        }
    }
}

/// Writes `over` onto `base`, recursing into tables present in both.
fn overlay(base: &mut toml::Table, over: &toml::Table) {
    for (k, v) in over {
        match (base.get_mut(k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => overlay(b, o),
            _ => {
                base.insert(k.clone(), v.clone());
            }
        }
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
