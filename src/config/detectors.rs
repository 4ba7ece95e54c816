//! `[[windows]]` and `[[detectors]]`: window specs, and the detectors that watch them (each must
//! name a configured window). Without any, a 1-minute tumbling window with the robust detector.

use operators::models::detector_set::{DetectorKind, DetectorPlan, FeatureChoice};
use operators::models::robust_z::RobustZConfig;
use operators::models::window_stats::Feature;
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

    windows
}

/// Compiles the detectors against the compiled `windows`.
pub fn compile_detectors(
    c: &mut Checker<'_, '_>,
    raw: &[Spanned<RawDetector>],
    windows: &[WindowSpec],
) -> Vec<DetectorPlan> {
    let mut detectors: Vec<DetectorPlan> = Vec::new();
    for d in raw {
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

    detectors
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
