//! The one entry point the engine and the CLI call: [`forecast`] (and [`fit_state`] for the
//! streaming state), with the per-series choice between model families.
//!
//! With [`ModelChoice::Auto`] each family — automatic ARIMA, MSTL + ETS, seasonal naive — is fitted
//! on the series minus its last `holdout` points and scored by MASE on them (a cheap
//! out-of-sample check, as forecast-combination studies recommend over in-sample criteria that
//! are not comparable across families); the winner is refitted on the whole series. If a model
//! fails at any point the next best takes over, and the seasonal naive (ultimately the naive)
//! forecast is always available, so a usable series always gets a forecast.
//!
//! Input cleaning: leading and trailing non-finite values are dropped and interior ones filled
//! by linear interpolation (streams have gaps; the models need a complete grid).

use serde::{Deserialize, Serialize};

use super::auto_arima::AutoArima;
use super::ets_mstl::MstlEts;
use super::interval::{Forecast, Prediction};
use super::naive::SeasonalNaive;
use super::season_detect::detect_seasons;
use super::state::ModelState;
use crate::models::ModelError;

/// Which model family to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelChoice {
    /// Choose per series by the holdout check (default).
    #[default]
    Auto,
    /// Automatic ARIMA only.
    Arima,
    /// MSTL + AutoETS only.
    MstlEts,
    /// Seasonal naive only.
    SeasonalNaive,
}

/// Configuration of [`forecast`]. `Default`: horizon 1, no season configured (detected),
/// automatic family choice with a holdout of one horizon.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ForecastConfig {
    /// Steps to forecast.
    pub horizon: usize,
    /// Main season length (ARIMA's and seasonal naive's period); `None` detects one with the
    /// periodogram when `detect_season` is set, else 1.
    pub season: Option<usize>,
    /// Further seasonal periods for MSTL (e.g. 168 beside 24 for hourly data).
    pub extra_seasons: Vec<usize>,
    /// Detect seasons when `season` is `None`.
    pub detect_season: bool,
    /// Model family.
    pub model: ModelChoice,
    /// Points held out for the family choice; `None` uses `horizon`.
    pub holdout: Option<usize>,
    /// Settings of the ARIMA search (its `period` is replaced by the main season).
    pub arima: AutoArima,
}

impl Default for ForecastConfig {
    fn default() -> Self {
        Self {
            horizon: 1,
            season: None,
            extra_seasons: Vec::new(),
            detect_season: true,
            model: ModelChoice::Auto,
            holdout: None,
            arima: AutoArima {
                standard_errors: false,
                ..AutoArima::default()
            },
        }
    }
}

impl ForecastConfig {
    /// `horizon` steps, season `season` (None = detect), other defaults.
    pub fn new(horizon: usize, season: Option<usize>) -> Self {
        Self {
            horizon,
            season,
            ..Self::default()
        }
    }

    fn validate(&self) -> Result<(), ModelError> {
        if self.horizon == 0 {
            return Err(ModelError::InvalidParameter {
                name: "horizon",
                reason: "must be at least 1".into(),
            });
        }
        if self.season == Some(0) || self.extra_seasons.contains(&0) {
            return Err(ModelError::InvalidParameter {
                name: "season",
                reason: "season lengths must be at least 1".into(),
            });
        }
        if self.holdout == Some(0) {
            return Err(ModelError::InvalidParameter {
                name: "holdout",
                reason: "must be at least 1".into(),
            });
        }
        Ok(())
    }
}

/// Drops leading/trailing non-finite values and interpolates interior gaps linearly.
fn clean(y: &[f64]) -> Vec<f64> {
    let Some(first) = y.iter().position(|v| v.is_finite()) else {
        return Vec::new();
    };
    let last = y.iter().rposition(|v| v.is_finite()).unwrap_or(first);
    let mut out = y[first..=last].to_vec();
    let mut prev = 0;
    let mut i = 1;
    while i < out.len() {
        if out[i].is_finite() {
            prev = i;
            i += 1;
            continue;
        }
        let next = (i..out.len()).find(|&k| out[k].is_finite()).unwrap_or(prev);
        let (a, b) = (out[prev], out[next]);
        let span = (next - prev) as f64;
        for k in i..next {
            out[k] = a + (b - a) * (k - prev) as f64 / span;
        }
        i = next;
    }
    out
}

/// The model families, in the order tried when scores tie.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Arima,
    MstlEts,
    SeasonalNaive,
}

/// Seasons for the run: the main period and the MSTL periods.
struct Seasons {
    main: usize,
    mstl: Vec<usize>,
}

fn seasons(y: &[f64], cfg: &ForecastConfig) -> Seasons {
    let (main, mut mstl) = match cfg.season {
        Some(m) => (m, vec![m]),
        None if cfg.detect_season => {
            let found = detect_seasons(y, 2);
            (found.first().copied().unwrap_or(1), found)
        }
        None => (1, Vec::new()),
    };
    mstl.extend(cfg.extra_seasons.iter().copied());
    mstl.retain(|&p| p > 1);
    mstl.sort_unstable();
    mstl.dedup();
    Seasons { main, mstl }
}

fn fit_family(
    fam: Family,
    y: &[f64],
    s: &Seasons,
    cfg: &ForecastConfig,
    horizon: usize,
) -> Result<ModelState, ModelError> {
    match fam {
        Family::Arima => {
            let auto = AutoArima {
                period: s.main,
                ..cfg.arima.clone()
            };
            ModelState::from_arima(&auto.fit(y)?)
        }
        Family::MstlEts => {
            let m = MstlEts {
                periods: s.mstl.clone(),
                max_horizon: horizon,
                ..MstlEts::default()
            };
            Ok(ModelState::from_mstl_ets(&m.fit(y)?))
        }
        Family::SeasonalNaive => Ok(ModelState::from_seasonal_naive(
            &SeasonalNaive::new(s.main).fit(y)?,
        )),
    }
}

/// Mean absolute scaled error of `pred` against `actual`, scaled by the in-sample seasonal naive
/// error of `train` at lag `m` (lag 1 when the series is too short for `m`).
fn mase(train: &[f64], actual: &[f64], pred: &Prediction, m: usize) -> f64 {
    let lag = if train.len() > m { m } else { 1 };
    let scale = if train.len() > lag {
        train.windows(lag + 1).map(|w| (w[lag] - w[0]).abs()).sum::<f64>()
            / (train.len() - lag) as f64
    } else {
        0.0
    };
    let err = actual
        .iter()
        .zip(&pred.point)
        .map(|(a, p)| (a - p).abs())
        .sum::<f64>()
        / actual.len().max(1) as f64;
    if scale > 0.0 {
        err / scale
    } else {
        err
    }
}

/// Fits the configured model (or the holdout winner) to `y` and returns its compact state.
///
/// # Errors
/// Invalid configuration, or a series with no finite value.
pub fn fit_state(y: &[f64], cfg: &ForecastConfig) -> Result<ModelState, ModelError> {
    cfg.validate()?;
    let y = clean(y);
    if y.is_empty() {
        return Err(ModelError::NotEnoughData { needed: 1, got: 0 });
    }
    let s = seasons(&y, cfg);
    let order: Vec<Family> = match cfg.model {
        ModelChoice::Arima => vec![Family::Arima, Family::SeasonalNaive],
        ModelChoice::MstlEts => vec![Family::MstlEts, Family::SeasonalNaive],
        ModelChoice::SeasonalNaive => vec![Family::SeasonalNaive],
        ModelChoice::Auto => rank_by_holdout(&y, &s, cfg),
    };
    for fam in order {
        if let Ok(st) = fit_family(fam, &y, &s, cfg, cfg.horizon) {
            if st
                .predict(cfg.horizon)
                .is_ok_and(|p| p.point.iter().chain(&p.sd).all(|v| v.is_finite()))
            {
                return Ok(st);
            }
        }
    }
    // Last resort: the naive forecast exists for any non-empty finite series.
    Ok(ModelState::from_seasonal_naive(&SeasonalNaive::new(1).fit(&y)?))
}

/// Families ordered by holdout MASE (failures last); ARIMA first when the series is too short
/// to hold anything out.
fn rank_by_holdout(y: &[f64], s: &Seasons, cfg: &ForecastConfig) -> Vec<Family> {
    let all = [Family::Arima, Family::MstlEts, Family::SeasonalNaive];
    let h = cfg.holdout.unwrap_or(cfg.horizon);
    // The training part should still show two seasons and a dozen points beyond the holdout.
    let min_train = (2 * s.main).max(12);
    if y.len() < h + min_train {
        return all.to_vec();
    }
    let (train, test) = y.split_at(y.len() - h);
    let mut scored: Vec<(f64, Family)> = all
        .iter()
        .map(|&fam| {
            let score = fit_family(fam, train, s, cfg, h)
                .and_then(|st| st.predict(h))
                .map(|p| mase(train, test, &p, s.main))
                .ok()
                .filter(|v| v.is_finite())
                .unwrap_or(f64::INFINITY);
            (score, fam)
        })
        .collect();
    scored.sort_by(|a, b| a.0.total_cmp(&b.0));
    scored.into_iter().map(|(_, f)| f).collect()
}

/// Forecasts `cfg.horizon` steps of `y` with 80% / 95% intervals.
///
/// # Errors
/// Invalid configuration, or a series with no finite value. Any usable series gets a forecast.
pub fn forecast(y: &[f64], cfg: &ForecastConfig) -> Result<Forecast, ModelError> {
    fit_state(y, cfg)?.forecast(cfg.horizon)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleaning_interpolates_and_trims() {
        let y = [f64::NAN, 1.0, f64::NAN, 3.0, f64::INFINITY, f64::NAN, 6.0, f64::NAN];
        assert_eq!(clean(&y), vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        assert!(clean(&[f64::NAN; 3]).is_empty());
    }

    #[test]
    fn always_forecasts_usable_series() {
        let cfg = ForecastConfig::new(5, Some(4));
        for y in [
            vec![3.0],
            vec![1.0, 2.0],
            vec![7.0; 40],
            (0..60).map(|t| (t % 4) as f64 + 0.1 * t as f64).collect::<Vec<_>>(),
        ] {
            let f = forecast(&y, &cfg).expect("a forecast");
            assert_eq!(f.point.len(), 5);
            assert!(f.point.iter().chain(&f.lo95).chain(&f.hi95).all(|v| v.is_finite()));
            assert!(f.lo95.iter().zip(&f.hi95).all(|(l, h)| l <= h));
        }
        assert!(forecast(&[f64::NAN; 4], &cfg).is_err());
        assert!(forecast(&[1.0, 2.0], &ForecastConfig::new(0, None)).is_err());
    }

    #[test]
    fn mase_scaling() {
        let train = [1.0, 2.0, 3.0, 4.0];
        let p = Prediction {
            point: vec![5.0, 5.0],
            sd: vec![1.0, 1.0],
        };
        // Scale: mean |Δ| = 1; errors 0 and 1.
        assert!((mase(&train, &[5.0, 6.0], &p, 1) - 0.5).abs() < 1e-12);
    }
}
