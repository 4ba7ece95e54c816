//! `[[forecasts]]`: which series are forecast, from which window feature, how far ahead and how
//! often the model is refitted. Each entry must name a configured window; its metric pattern is
//! an anchored regular expression. Without entries nothing is forecast and the engine builds no
//! forecast operator (the default costs nothing).

use operators::forecast::{ForecastSpec, MIN_SEGMENT};
use operators::models::forecast::ModelChoice;
use operators::models::window_stats::Feature;
use operators::rules::MetricPattern;
use operators::window::WindowSpec;
use serde::Deserialize;
use toml::Spanned;

use super::checker::Checker;
use super::raw::FeatureName;

/// `[[forecasts]]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawForecast {
    /// Name in output (default `<window>:<feature>`).
    pub name: Option<Spanned<String>>,
    /// Window whose features are forecast.
    pub window: Spanned<String>,
    /// Feature forecast (default `mean`; `auto` is not allowed: say which).
    pub feature: Option<Spanned<FeatureName>>,
    /// Metric-name pattern (anchored regular expression) selecting the series.
    pub metric: Spanned<String>,
    /// Steps (windows) ahead (default 30).
    pub horizon: Option<Spanned<i64>>,
    /// Windows of history per series (default 240).
    pub history: Option<Spanned<i64>>,
    /// Windows seen before the first forecast (default 30).
    pub min_history: Option<Spanned<i64>>,
    /// Windows between scheduled refits (default 30).
    pub refit_every: Option<Spanned<i64>>,
    /// Season length in windows (default: detected per fit).
    pub season: Option<Spanned<i64>>,
    /// Model family: `arima` (default), `auto`, `combination`, `mstl_ets`, `seasonal_naive`.
    pub model: Option<Spanned<ModelChoice>>,
}

/// Largest horizon and history accepted: a day of minutes several times over, and a bound on
/// per-series memory (history × 8 bytes) and fit time.
const MAX_HORIZON: i64 = 10_000;
const MAX_HISTORY: i64 = 100_000;

fn feature(name: FeatureName) -> Option<Feature> {
    Some(match name {
        FeatureName::Auto => return None,
        FeatureName::Count => Feature::Count,
        FeatureName::Mean => Feature::Mean,
        FeatureName::Min => Feature::Min,
        FeatureName::Max => Feature::Max,
        FeatureName::Std => Feature::Std,
        FeatureName::Last => Feature::Last,
        FeatureName::P50 => Feature::P50,
        FeatureName::P95 => Feature::P95,
        FeatureName::P99 => Feature::P99,
        FeatureName::RateOfChange => Feature::RateOfChange,
        FeatureName::CounterRate => Feature::CounterRate,
    })
}

/// Compiles the forecast specs against the compiled `windows`.
pub fn compile_forecasts(
    c: &mut Checker<'_, '_>,
    raw: &[Spanned<RawForecast>],
    windows: &[WindowSpec],
) -> Vec<ForecastSpec> {
    let mut specs: Vec<ForecastSpec> = Vec::new();
    if raw.len() > usize::from(u16::MAX) {
        c.err(raw[0].span(), "too many [[forecasts]] entries");
        return specs;
    }
    for f in raw {
        let f = f.get_ref();
        let window = windows.iter().find(|w| *w.name == **f.window.get_ref());
        if window.is_none() {
            let known: Vec<&str> = windows.iter().map(|w| &*w.name).collect();
            c.err(
                f.window.span(),
                format!(
                    "unknown window {:?} (configured: {})",
                    f.window.get_ref(),
                    known.join(", ")
                ),
            );
        }
        let feat = match &f.feature {
            None => Feature::Mean,
            Some(n) => feature(*n.get_ref()).unwrap_or_else(|| {
                c.err(
                    n.span(),
                    "a forecast needs a concrete feature (e.g. \"mean\"), not \"auto\"",
                );
                Feature::Mean
            }),
        };
        let metric = MetricPattern::new(f.metric.get_ref()).map_err(|e| {
            c.err(f.metric.span(), format!("invalid regular expression: {e}"));
        });
        let horizon = c.int(&f.horizon, 30, 1..MAX_HORIZON + 1, "horizon");
        let history = c.int(
            &f.history,
            240,
            MIN_SEGMENT as i64..MAX_HISTORY + 1,
            "history",
        );
        let min_history = c.int(
            &f.min_history,
            30.min(history),
            MIN_SEGMENT as i64..history as i64 + 1,
            "min_history",
        );
        let refit_every = c.int(&f.refit_every, 30, 1..MAX_HISTORY + 1, "refit_every");
        let season = f.season.as_ref().map(|s| {
            // A season needs two full cycles in the history to be estimated.
            c.int(
                &Some(s.clone()),
                1,
                1..(history / 2).max(1) as i64 + 1,
                "season",
            )
        });
        let name = f.name.as_ref().map_or_else(
            || format!("{}:{}", f.window.get_ref(), feat.name()),
            |n| n.get_ref().clone(),
        );
        if specs.iter().any(|s| s.name == name) {
            let at = f.name.as_ref().map_or(f.window.span(), |n| n.span());
            c.err(
                at,
                format!("forecast name {name:?} is used twice (set distinct `name`s)"),
            );
        }
        // An invalid pattern was reported above; the config fails, so the spec is dropped.
        let Ok(metric) = metric else {
            continue;
        };
        specs.push(ForecastSpec {
            name,
            window: f.window.get_ref().clone(),
            step_ms: window.map_or(60_000, |w| w.slide_ms),
            feature: feat,
            metric,
            horizon,
            history,
            min_history,
            refit_every,
            season,
            model: f
                .model
                .as_ref()
                .map_or(ModelChoice::Arima, |m| *m.get_ref()),
        });
    }
    specs
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::compile_text;

    #[test]
    fn forecast_errors_point_at_the_value() {
        let text = r#"
[[windows]]
name = "1m"
size_secs = 60

[[forecasts]]
window = "5m"
metric = "disk_(.*"
horizon = 0
season = 500

[[forecasts]]
window = "1m"
metric = "disk_.*"
feature = "auto"
"#;
        let errs = compile_text(Path::new("f.toml"), text, None, None).unwrap_err();
        let lines: Vec<String> = errs.0.iter().map(|e| e.to_string()).collect();
        assert_eq!(lines.len(), 5, "{lines:?}");
        assert_eq!(
            lines[0],
            "f.toml:7:10: unknown window \"5m\" (configured: 1m)"
        );
        assert!(lines[1].starts_with("f.toml:8:10: invalid regular expression"));
        assert_eq!(
            lines[2],
            "f.toml:9:11: horizon must be between 1 and 10000, got 0"
        );
        assert_eq!(
            lines[3],
            "f.toml:10:10: season must be between 1 and 120, got 500"
        );
        assert!(lines[4].starts_with("f.toml:15:11: a forecast needs a concrete feature"));
    }

    #[test]
    fn forecasts_compile_with_defaults() {
        let text = "[[forecasts]]\nwindow = \"1m\"\nmetric = \"disk_used_percent\"\n";
        let plan = compile_text(Path::new("f.toml"), text, None, None).expect("valid");
        let f = plan.forecast.expect("forecasts configured");
        assert_eq!(f.specs.len(), 1);
        let s = &f.specs[0];
        assert_eq!(
            (s.name.as_str(), s.horizon, s.history),
            ("1m:mean", 30, 240)
        );
        assert_eq!(s.step_ms, 60_000);
        // The shipped capacity rules apply.
        assert!(f
            .limits
            .iter()
            .any(|l| l.metric.as_str() == "disk_used_percent"));
        let none = compile_text(Path::new("f.toml"), "", None, None).expect("valid");
        assert!(none.forecast.is_none());
    }
}
