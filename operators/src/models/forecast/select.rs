//! The one entry point the engine and the CLI call: [`forecast`] (and [`fit_state`] for the
//! streaming state), with the per-series choice between model families.
//!
//! With [`ModelChoice::Auto`] the candidates — the equal-weight combination of automatic ARIMA
//! and MSTL + ETS, each of them alone, and seasonal naive — are fitted on the series minus its
//! last `holdout` points and scored by MASE there (in-sample criteria are not comparable
//! across families). One holdout window is a noisy judge, and averaging forecasts of different
//! families is the robust choice (the lesson of the M competitions), so the combination is kept
//! unless a single candidate beats it on the holdout by the `switch_margin` (default: its
//! error is below 70% of the combination's). The choice is then refitted on the whole series.
//! If a model fails at any point the next candidate takes over, and the seasonal naive
//! (ultimately the naive) forecast is always available, so a usable series always gets one.
//!
//! Input cleaning: leading and trailing non-finite values are dropped and interior ones filled
//! by linear interpolation (streams have gaps; the models need a complete grid).

use serde::{Deserialize, Serialize};

use super::arima::{Arima, ArimaOrder};
use super::auto_arima::{AutoArima, MIN_ROOT};
use super::ets_mstl::{EtsKind, MstlEts};
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
    /// The equal-weight combination of automatic ARIMA and MSTL + ETS, without a holdout.
    Combination,
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
    /// A single model replaces the combination only when its holdout MASE is below
    /// `1 - switch_margin` times the combination's (0 = plain best-on-holdout).
    pub switch_margin: f64,
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
            // One holdout window is noisy: switching away from the robust combination needs a
            // clear (30%) advantage.
            switch_margin: 0.3,
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
        if !(0.0..1.0).contains(&self.switch_margin) {
            return Err(ModelError::InvalidParameter {
                name: "switch_margin",
                reason: "must be in [0, 1)".into(),
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
        for (k, v) in out.iter_mut().enumerate().take(next).skip(i) {
            *v = a + (b - a) * (k - prev) as f64 / span;
        }
        i = next;
    }
    out
}

/// The candidates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Combination,
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

/// What a search settled on, so the choice can be re-estimated on more data without searching
/// again ("refit the winner").
#[derive(Debug, Clone)]
enum Spec {
    Arima { order: ArimaOrder, constant: bool },
    MstlEts { ets: EtsKind },
    SeasonalNaive,
    Combination(Vec<Spec>),
}

/// Full automatic fit of one candidate.
fn search(
    fam: Family,
    y: &[f64],
    s: &Seasons,
    cfg: &ForecastConfig,
    horizon: usize,
) -> Result<(ModelState, Spec), ModelError> {
    match fam {
        Family::Arima => {
            let auto = AutoArima {
                period: s.main,
                ..cfg.arima.clone()
            };
            let fit = auto.fit(y)?;
            let spec = Spec::Arima {
                order: fit.order(),
                constant: fit.has_constant(),
            };
            Ok((ModelState::from_arima(&fit)?, spec))
        }
        Family::MstlEts => {
            let m = MstlEts {
                periods: s.mstl.clone(),
                max_horizon: horizon,
                ..MstlEts::default()
            };
            let fit = m.fit(y)?;
            Ok((
                ModelState::from_mstl_ets(&fit),
                Spec::MstlEts { ets: fit.ets() },
            ))
        }
        Family::SeasonalNaive => Ok((
            ModelState::from_seasonal_naive(&SeasonalNaive::new(s.main).fit(y)?),
            Spec::SeasonalNaive,
        )),
        Family::Combination => {
            let (a, sa) = search(Family::Arima, y, s, cfg, horizon)?;
            let (m, sm) = search(Family::MstlEts, y, s, cfg, horizon)?;
            Ok((
                ModelState::Combination {
                    members: vec![a, m],
                },
                Spec::Combination(vec![sa, sm]),
            ))
        }
    }
}

/// Re-estimates a chosen specification on `y` (one fit instead of a search); falls back to a
/// full search when the fixed specification fails or, for ARIMA, lands on the unit circle.
fn refit(
    spec: &Spec,
    y: &[f64],
    s: &Seasons,
    cfg: &ForecastConfig,
    horizon: usize,
) -> Result<ModelState, ModelError> {
    match spec {
        Spec::Arima { order, constant } => {
            let fit = Arima::new(*order)
                .with_constant(*constant)
                .with_standard_errors(cfg.arima.standard_errors)
                .fit(y)
                .ok()
                .filter(|f| f.roots_outside(MIN_ROOT));
            match fit {
                Some(f) => ModelState::from_arima(&f),
                None => search(Family::Arima, y, s, cfg, horizon).map(|r| r.0),
            }
        }
        Spec::MstlEts { ets } => {
            let m = MstlEts {
                periods: s.mstl.clone(),
                max_horizon: horizon,
                ets: Some(*ets),
                ..MstlEts::default()
            };
            match m.fit(y) {
                Ok(f) => Ok(ModelState::from_mstl_ets(&f)),
                Err(_) => search(Family::MstlEts, y, s, cfg, horizon).map(|r| r.0),
            }
        }
        Spec::SeasonalNaive => search(Family::SeasonalNaive, y, s, cfg, horizon).map(|r| r.0),
        Spec::Combination(members) => Ok(ModelState::Combination {
            members: members
                .iter()
                .map(|m| refit(m, y, s, cfg, horizon))
                .collect::<Result<Vec<_>, _>>()?,
        }),
    }
}

/// Mean absolute scaled error of `pred` against `actual`, scaled by the in-sample seasonal naive
/// error of `train` at lag `m` (lag 1 when the series is too short for `m`).
fn mase(train: &[f64], actual: &[f64], pred: &Prediction, m: usize) -> f64 {
    let lag = if train.len() > m { m } else { 1 };
    let scale = if train.len() > lag {
        train
            .windows(lag + 1)
            .map(|w| (w[lag] - w[0]).abs())
            .sum::<f64>()
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

fn usable(st: &ModelState, horizon: usize) -> bool {
    st.predict(horizon)
        .is_ok_and(|p| p.point.iter().chain(&p.sd).all(|v| v.is_finite()))
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
    let h = cfg.horizon;
    let (chosen, order): (Option<Spec>, Vec<Family>) = match cfg.model {
        ModelChoice::Combination => (
            None,
            vec![
                Family::Combination,
                Family::Arima,
                Family::MstlEts,
                Family::SeasonalNaive,
            ],
        ),
        ModelChoice::Arima => (None, vec![Family::Arima, Family::SeasonalNaive]),
        ModelChoice::MstlEts => (None, vec![Family::MstlEts, Family::SeasonalNaive]),
        ModelChoice::SeasonalNaive => (None, vec![Family::SeasonalNaive]),
        ModelChoice::Auto => holdout_choice(&y, &s, cfg),
    };
    if let Some(spec) = chosen {
        if let Ok(st) = refit(&spec, &y, &s, cfg, h) {
            if usable(&st, h) {
                return Ok(st);
            }
        }
    }
    for fam in order {
        if let Ok((st, _)) = search(fam, &y, &s, cfg, h) {
            if usable(&st, h) {
                return Ok(st);
            }
        }
    }
    // Last resort: the naive forecast exists for any non-empty finite series.
    Ok(ModelState::from_seasonal_naive(
        &SeasonalNaive::new(1).fit(&y)?,
    ))
}

/// Whether the combination stays the choice: it exists and no single candidate's holdout MASE
/// is below `1 - margin` times its own.
fn keep_combination(comb: f64, best_single: f64, margin: f64) -> bool {
    comb.is_finite() && best_single >= (1.0 - margin) * comb
}

/// The holdout choice (see the module docs) as a specification to refit, plus the remaining
/// candidates in order of holdout MASE as fallbacks. Without room for a holdout: no
/// specification, the combination first.
fn holdout_choice(y: &[f64], s: &Seasons, cfg: &ForecastConfig) -> (Option<Spec>, Vec<Family>) {
    let default = vec![
        Family::Combination,
        Family::Arima,
        Family::MstlEts,
        Family::SeasonalNaive,
    ];
    let h = cfg.holdout.unwrap_or(cfg.horizon);
    // The training part should still show two seasons and a dozen points beyond the holdout.
    let min_train = (2 * s.main).max(12);
    if y.len() < h + min_train {
        return (None, default);
    }
    let (train, test) = y.split_at(y.len() - h);
    let run = |fam| {
        search(fam, train, s, cfg, h)
            .ok()
            .and_then(|(st, spec)| st.predict(h).ok().map(|p| (p, spec)))
            .filter(|(p, _)| p.point.iter().all(|v| v.is_finite()))
    };
    let arima = run(Family::Arima);
    let mstl = run(Family::MstlEts);
    let naive = run(Family::SeasonalNaive);
    let comb = match (&arima, &mstl) {
        (Some((a, sa)), Some((m, sm))) => Some((
            Prediction {
                point: a
                    .point
                    .iter()
                    .zip(&m.point)
                    .map(|(x, z)| 0.5 * (x + z))
                    .collect(),
                sd: a.sd.iter().zip(&m.sd).map(|(x, z)| 0.5 * (x + z)).collect(),
            },
            Spec::Combination(vec![sa.clone(), sm.clone()]),
        )),
        _ => None,
    };
    let score = |c: &Option<(Prediction, Spec)>| {
        c.as_ref()
            .map(|(p, _)| mase(train, test, p, s.main))
            .filter(|v| v.is_finite())
            .unwrap_or(f64::INFINITY)
    };
    let mut singles = [
        (score(&arima), Family::Arima, arima),
        (score(&mstl), Family::MstlEts, mstl),
        (score(&naive), Family::SeasonalNaive, naive),
    ];
    singles.sort_by(|a, b| a.0.total_cmp(&b.0));
    let keep_comb = keep_combination(score(&comb), singles[0].0, cfg.switch_margin);
    let chosen = if keep_comb {
        comb.map(|c| c.1)
    } else {
        singles[0].2.as_ref().map(|c| c.1.clone())
    };
    let mut order: Vec<Family> = Vec::with_capacity(4);
    if keep_comb {
        order.push(Family::Combination);
    }
    order.extend(singles.iter().map(|(_, f, _)| *f));
    if !keep_comb {
        order.push(Family::Combination);
    }
    (chosen, order)
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
        let y = [
            f64::NAN,
            1.0,
            f64::NAN,
            3.0,
            f64::INFINITY,
            f64::NAN,
            6.0,
            f64::NAN,
        ];
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
            (0..60)
                .map(|t| (t % 4) as f64 + 0.1 * t as f64)
                .collect::<Vec<_>>(),
        ] {
            let f = forecast(&y, &cfg).expect("a forecast");
            assert_eq!(f.point.len(), 5);
            assert!(f
                .point
                .iter()
                .chain(&f.lo95)
                .chain(&f.hi95)
                .all(|v| v.is_finite()));
            assert!(f.lo95.iter().zip(&f.hi95).all(|(l, h)| l <= h));
        }
        assert!(forecast(&[f64::NAN; 4], &cfg).is_err());
        assert!(forecast(&[1.0, 2.0], &ForecastConfig::new(0, None)).is_err());
    }

    fn noisy_seasonal(n: usize) -> Vec<f64> {
        let mut s = 0x9e37_79b9_7f4a_7c15_u64;
        (0..n)
            .map(|t| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                let e = (s >> 11) as f64 / (1u64 << 53) as f64 - 0.5;
                50.0 + 0.1 * t as f64
                    + 5.0 * (2.0 * std::f64::consts::PI * t as f64 / 12.0).sin()
                    + 2.0 * e
            })
            .collect()
    }

    #[test]
    fn each_choice_gives_its_family() {
        let y = noisy_seasonal(144);
        for (choice, prefix) in [
            (ModelChoice::Arima, "ARIMA("),
            (ModelChoice::MstlEts, "MSTL[12]"),
            (ModelChoice::SeasonalNaive, "SNaive[12]"),
            (ModelChoice::Combination, "Combo(ARIMA("),
        ] {
            let cfg = ForecastConfig {
                model: choice,
                ..ForecastConfig::new(12, Some(12))
            };
            let f = forecast(&y, &cfg).expect("forecast");
            assert!(f.model.starts_with(prefix), "{choice:?}: {}", f.model);
            // The forecast continues the pattern: within the 95% band of the true mean.
            for (h, (lo, hi)) in f.lo95.iter().zip(&f.hi95).enumerate() {
                let t = (y.len() + h) as f64;
                let truth = 50.0 + 0.1 * t + 5.0 * (2.0 * std::f64::consts::PI * t / 12.0).sin();
                assert!(
                    *lo < truth && truth < *hi,
                    "{choice:?} h={h}: {lo} {truth} {hi}"
                );
            }
        }
        let auto = forecast(&y, &ForecastConfig::new(12, Some(12))).expect("auto");
        assert!(auto.point.iter().all(|v| v.is_finite()));
    }

    #[test]
    fn combination_kept_unless_clearly_beaten() {
        assert!(keep_combination(1.0, 0.8, 0.3));
        assert!(!keep_combination(1.0, 0.6, 0.3));
        assert!(!keep_combination(f64::INFINITY, 0.6, 0.3));
        assert!(!keep_combination(1.0, 0.99, 0.0));
        let bad = ForecastConfig {
            switch_margin: 1.0,
            ..ForecastConfig::new(3, None)
        };
        assert!(forecast(&[1.0, 2.0, 3.0], &bad).is_err());
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
