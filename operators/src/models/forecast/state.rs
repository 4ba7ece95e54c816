//! The compact per-series state a streaming operator keeps instead of the history: enough to
//! forecast, and for ARIMA and seasonal naive to absorb new observations exactly.
//!
//! * ARIMA: coefficients, the Kalman state of the ARMA part, the last `d + D·m` undifferenced
//!   values and the time index (for the drift). Absorbing an observation is one Kalman step, so
//!   forecasts after `k` updates equal those of the same model refitted with fixed coefficients
//!   on the longer series. The state covariance converges to `R R'` for invertible models and is
//!   then not stored; otherwise it is kept as a packed upper triangle in `f32` (it only scales
//!   the first forecast variances).
//! * Decomposition (MSTL + ETS): the seasonal cycles and the trend forecast path made at fit
//!   time (augurs' ETS cannot be updated or serialised). An update only advances the forecast
//!   origin; the model learns nothing until it is refitted.
//! * Seasonal naive: the last season and σ².
//!
//! The covariance is dropped whenever it no longer changes a forecast standard deviation by
//! more than 1e-6 relative, which on M4 Hourly is every fitted series. Sizes
//! ([`ModelState::size_bytes`]): ARIMA(2,0,1)(2,1,0)[24] about 1 KB, the combination with
//! MSTL[24,168] + ETS about 3 KB; the worst case, a covariance kept for 53 AR lags, adds 5.6 KB.

use serde::{Deserialize, Serialize};

use super::arima::{ArimaCoefficients, ArimaOrder, ConstantKind, FittedArima};
use super::differencing::integration_coefficients;
use super::ets_mstl::{EtsKind, FittedMstlEts};
use super::interval::{Forecast, Prediction};
use super::kalman::{self, ArmaStateSpace};
use super::naive::FittedSeasonalNaive;
use crate::models::ModelError;

/// Largest difference from `R R'` at which the state covariance counts as converged (it then
/// equals `R R'` up to rounding; 1e-9 in units of σ² is far below what intervals resolve).
const CONVERGED_TOL: f64 = 1e-9;

/// Updates between the forecast-based tests of whether the stored covariance still matters
/// (a power of two, tested with a mask).
const UPDATE_RECHECK: u64 = 32;

/// Compact state of a fitted ARIMA model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArimaState {
    order: ArimaOrder,
    constant: ConstantKind,
    coefficients: ArimaCoefficients,
    sigma2: f64,
    /// 0-based time index of the next observation.
    next_t: u64,
    /// Last `d + D·m` values of the series minus the constant term, oldest first.
    tail: Vec<f64>,
    /// Predicted ARMA state for the next observation.
    state: Vec<f64>,
    /// Packed upper triangle of its covariance (σ² units); `None` when it equals `R R'`.
    state_cov: Option<Vec<f32>>,
}

fn rr(ss: &ArmaStateSpace) -> Vec<f64> {
    let r = ss.r;
    let mut p = vec![0.0; r * r];
    for i in 0..r {
        for j in 0..r {
            p[i * r + j] = ss.rvec[i] * ss.rvec[j];
        }
    }
    p
}

/// The packed covariance to keep, or `None` when `R R'` serves as well: either `p` is `R R'`,
/// or using `R R'` changes no forecast standard deviation by more than 1e-6 relative over the
/// steps the covariance can influence (a slowly converging filter, e.g. an MA root near the
/// unit circle, leaves `P` visibly different from `R R'` long after it stopped mattering).
fn pack(
    p: &[f64],
    ss: &ArmaStateSpace,
    a: &[f64],
    delta: &[f64],
    tail: &[f64],
) -> Option<Vec<f32>> {
    if kalman::is_steady(ss, p, CONVERGED_TOL) {
        return None;
    }
    let steps = ss.r + delta.len() + 1;
    let (_, full) = kalman::forecast(ss, a, p, delta, tail, steps);
    let (_, steady) = kalman::forecast_steady(ss, a, delta, tail, steps);
    // Relative change of the standard deviation that makes no difference to any interval.
    const SD_TOL: f64 = 1e-6;
    let same = full
        .iter()
        .zip(&steady)
        .all(|(f, s)| (f.sqrt() - s.sqrt()).abs() <= SD_TOL * f.sqrt().max(f64::MIN_POSITIVE));
    if same {
        return None;
    }
    Some(pack_all(p, ss.r))
}

/// The upper triangle of `p` (row-major `r × r`) in `f32`.
fn pack_all(p: &[f64], r: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(r * (r + 1) / 2);
    for i in 0..r {
        for j in i..r {
            out.push(p[i * r + j] as f32);
        }
    }
    out
}

impl ArimaState {
    fn space(&self) -> ArmaStateSpace {
        let (phi, theta) = (
            super::polynomial::expand_ar(
                &self.coefficients.ar,
                &self.coefficients.seasonal_ar,
                self.order.period,
            ),
            super::polynomial::expand_ma(
                &self.coefficients.ma,
                &self.coefficients.seasonal_ma,
                self.order.period,
            ),
        );
        ArmaStateSpace::new(&phi, &theta)
    }

    fn covariance(&self, ss: &ArmaStateSpace) -> Vec<f64> {
        let r = ss.r;
        match &self.state_cov {
            None => rr(ss),
            Some(packed) => {
                let mut p = vec![0.0; r * r];
                let mut k = 0;
                for i in 0..r {
                    for j in i..r {
                        let v = packed.get(k).copied().unwrap_or(0.0) as f64;
                        p[i * r + j] = v;
                        p[j * r + i] = v;
                        k += 1;
                    }
                }
                p
            }
        }
    }

    fn from_fitted(f: &FittedArima) -> Result<Self, ModelError> {
        if f.state.is_empty() {
            return Err(ModelError::Numerical(
                "model was fitted without a forecast state".into(),
            ));
        }
        let mut st = Self {
            order: f.order,
            constant: f.constant,
            coefficients: f.coefficients.clone(),
            sigma2: f.sigma2,
            next_t: f.n as u64,
            tail: f.tail.clone(),
            state: f.state.clone(),
            state_cov: None,
        };
        let ss = st.space();
        let o = st.order;
        let delta = integration_coefficients(o.d, o.seasonal_d, o.period);
        st.state_cov = pack(&f.state_cov, &ss, &st.state, &delta, &st.tail);
        Ok(st)
    }

    fn predict(&self, horizon: usize) -> Prediction {
        let ss = self.space();
        let o = self.order;
        let delta = integration_coefficients(o.d, o.seasonal_d, o.period);
        let (mean, var) = match &self.state_cov {
            None => kalman::forecast_steady(&ss, &self.state, &delta, &self.tail, horizon),
            Some(_) => {
                let p = self.covariance(&ss);
                kalman::forecast(&ss, &self.state, &p, &delta, &self.tail, horizon)
            }
        };
        let beta = self.coefficients.constant.unwrap_or(0.0);
        let t0 = self.next_t as usize;
        Prediction {
            point: mean
                .iter()
                .enumerate()
                .map(|(j, m)| m + beta * self.constant.value(t0 + j))
                .collect(),
            sd: var.iter().map(|v| (v * self.sigma2).sqrt()).collect(),
        }
    }

    fn update(&mut self, y: f64) -> Result<(), ModelError> {
        let beta = self.coefficients.constant.unwrap_or(0.0);
        let u = y - beta * self.constant.value(self.next_t as usize);
        let o = self.order;
        let delta = integration_coefficients(o.d, o.seasonal_d, o.period);
        let nd = delta.len();
        // w_t = u_t - Σ δ_i u_{t-i}: the differenced value the ARMA part sees.
        let w = u
            - (0..nd)
                .map(|i| delta[i] * self.tail[self.tail.len() - 1 - i])
                .sum::<f64>();
        let ss = self.space();
        let p = self.covariance(&ss);
        let st = kalman::filter_from(&ss, &[w], None, self.state.clone(), p)
            .ok_or_else(|| ModelError::Numerical("Kalman update failed".into()))?;
        self.state = st.a;
        if nd > 0 {
            self.tail.remove(0);
            self.tail.push(u);
        }
        self.next_t += 1;
        // The forecast-based test in `pack` costs a short forecast; per update only the cheap
        // entry-wise test runs, the full one every UPDATE_RECHECK steps.
        self.state_cov = if kalman::is_steady(&ss, &st.p, CONVERGED_TOL) {
            None
        } else if self.next_t & (UPDATE_RECHECK - 1) == 0 {
            pack(&st.p, &ss, &self.state, &delta, &self.tail)
        } else {
            Some(pack_all(&st.p, ss.r))
        };
        Ok(())
    }
}

/// Compact state of a fitted MSTL + ETS model: seasonal cycles and the trend forecast path.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecompositionState {
    periods: Vec<u32>,
    seasonal_tail: Vec<Vec<f32>>,
    trend_point: Vec<f64>,
    trend_sd: Vec<f32>,
    ets: EtsKind,
    /// Steps the forecast origin has advanced since the fit.
    advanced: u32,
}

impl DecompositionState {
    fn predict(&self, horizon: usize) -> Result<Prediction, ModelError> {
        let start = self.advanced as usize;
        if start + horizon > self.trend_point.len() {
            return Err(ModelError::InvalidParameter {
                name: "horizon",
                reason: format!(
                    "{} steps remain of the stored forecast; refit the model",
                    self.trend_point.len().saturating_sub(start)
                ),
            });
        }
        let point = (start..start + horizon)
            .map(|h| {
                self.trend_point[h]
                    + self
                        .seasonal_tail
                        .iter()
                        .map(|tail| tail[h % tail.len()] as f64)
                        .sum::<f64>()
            })
            .collect();
        let sd = self.trend_sd[start..start + horizon]
            .iter()
            .map(|v| *v as f64)
            .collect();
        Ok(Prediction { point, sd })
    }

    fn name(&self) -> String {
        if self.periods.is_empty() {
            format!("ETS({})", self.ets.label())
        } else {
            let p: Vec<String> = self.periods.iter().map(|p| p.to_string()).collect();
            format!("MSTL[{}]+ETS({})", p.join(","), self.ets.label())
        }
    }
}

/// The per-series state of whichever model was chosen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ModelState {
    /// A seasonal ARIMA model.
    Arima(ArimaState),
    /// MSTL seasonal cycles with an ETS trend forecast.
    Decomposition(DecompositionState),
    /// Seasonal naive.
    SeasonalNaive(FittedSeasonalNaive),
    /// Equal-weight combination of member models: the mean of their point forecasts, with the
    /// mean of their standard deviations (the error sd of an average of perfectly correlated
    /// forecasts; conservative otherwise).
    Combination {
        /// The member models.
        members: Vec<ModelState>,
    },
}

impl ModelState {
    /// The state of a fitted ARIMA model.
    ///
    /// # Errors
    /// When the model was fitted without a forecast state (internal search fits only).
    pub fn from_arima(fit: &FittedArima) -> Result<Self, ModelError> {
        Ok(Self::Arima(ArimaState::from_fitted(fit)?))
    }

    /// The state of a fitted MSTL + ETS model.
    pub fn from_mstl_ets(fit: &FittedMstlEts) -> Self {
        Self::Decomposition(DecompositionState {
            periods: fit.periods.iter().map(|p| *p as u32).collect(),
            seasonal_tail: fit
                .seasonal_tail
                .iter()
                .map(|t| t.iter().map(|v| *v as f32).collect())
                .collect(),
            trend_point: fit.trend_point.clone(),
            trend_sd: fit.trend_sd.iter().map(|v| *v as f32).collect(),
            ets: fit.ets,
            advanced: 0,
        })
    }

    /// The state of a fitted seasonal naive model.
    pub fn from_seasonal_naive(fit: &FittedSeasonalNaive) -> Self {
        Self::SeasonalNaive(fit.clone())
    }

    /// Model description, e.g. `ARIMA(1,1,1)(0,1,1)[24]`.
    pub fn name(&self) -> String {
        match self {
            Self::Arima(a) => {
                let suffix = match a.constant {
                    ConstantKind::None => "",
                    ConstantKind::Mean => " with non-zero mean",
                    ConstantKind::Drift => " with drift",
                };
                format!("{}{}", a.order, suffix)
            }
            Self::Decomposition(d) => d.name(),
            Self::SeasonalNaive(n) => n.name(),
            Self::Combination { members } => {
                let names: Vec<String> = members.iter().map(|m| m.name()).collect();
                format!("Combo({})", names.join(" | "))
            }
        }
    }

    /// Point forecasts and standard deviations for `horizon` steps from the current origin.
    ///
    /// # Errors
    /// A decomposition state asked for more steps than it stored.
    pub fn predict(&self, horizon: usize) -> Result<Prediction, ModelError> {
        match self {
            Self::Arima(a) => Ok(a.predict(horizon)),
            Self::Decomposition(d) => d.predict(horizon),
            Self::SeasonalNaive(n) => Ok(n.predict(horizon)),
            Self::Combination { members } => {
                if members.is_empty() {
                    return Err(ModelError::InvalidParameter {
                        name: "members",
                        reason: "a combination needs at least one model".into(),
                    });
                }
                let k = members.len() as f64;
                let mut point = vec![0.0; horizon];
                let mut sd = vec![0.0; horizon];
                for m in members {
                    let p = m.predict(horizon)?;
                    for h in 0..horizon {
                        point[h] += p.point[h] / k;
                        sd[h] += p.sd[h] / k;
                    }
                }
                Ok(Prediction { point, sd })
            }
        }
    }

    /// [`ModelState::predict`] with 80% and 95% intervals and the model name.
    ///
    /// # Errors
    /// As [`ModelState::predict`].
    pub fn forecast(&self, horizon: usize) -> Result<Forecast, ModelError> {
        Ok(Forecast::from_prediction(
            self.name(),
            &self.predict(horizon)?,
        ))
    }

    /// Absorbs the next observation (see the module docs for what each model does with it).
    ///
    /// # Errors
    /// A non-finite `y` (the state is left unchanged), or a numerical failure of the Kalman step.
    pub fn update(&mut self, y: f64) -> Result<(), ModelError> {
        if !y.is_finite() {
            return Err(ModelError::NonFinite { index: 0 });
        }
        match self {
            Self::Arima(a) => a.update(y),
            Self::Decomposition(d) => {
                d.advanced = d.advanced.saturating_add(1);
                Ok(())
            }
            Self::SeasonalNaive(n) => {
                n.update(y);
                Ok(())
            }
            Self::Combination { members } => members.iter_mut().try_for_each(|m| m.update(y)),
        }
    }

    /// Approximate memory footprint in bytes (the struct plus its heap buffers).
    pub fn size_bytes(&self) -> usize {
        let f64s = |v: &Vec<f64>| v.capacity() * 8;
        let heap = match self {
            Self::Arima(a) => {
                let c = &a.coefficients;
                f64s(&c.ar)
                    + f64s(&c.ma)
                    + f64s(&c.seasonal_ar)
                    + f64s(&c.seasonal_ma)
                    + f64s(&a.tail)
                    + f64s(&a.state)
                    + a.state_cov.as_ref().map_or(0, |p| p.capacity() * 4)
            }
            Self::Decomposition(d) => {
                d.periods.capacity() * 4
                    + d.seasonal_tail
                        .iter()
                        .map(|t| t.capacity() * 4 + std::mem::size_of::<Vec<f32>>())
                        .sum::<usize>()
                    + f64s(&d.trend_point)
                    + d.trend_sd.capacity() * 4
            }
            Self::SeasonalNaive(n) => f64s(&n.last),
            Self::Combination { members } => members.iter().map(|m| m.size_bytes()).sum(),
        };
        std::mem::size_of::<Self>() + heap
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::forecast::{Arima, ArimaOrder, MstlEts, SeasonalNaive};

    fn series(n: usize) -> Vec<f64> {
        // Seasonal pattern, slow trend and a deterministic pseudo-random wiggle.
        let mut s = 0x1234_5678_9abc_def0_u64;
        (0..n)
            .map(|t| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                let e = (s >> 11) as f64 / (1u64 << 53) as f64 - 0.5;
                20.0 + 0.02 * t as f64
                    + 3.0 * (2.0 * std::f64::consts::PI * t as f64 / 12.0).sin()
                    + e
            })
            .collect()
    }

    #[test]
    fn arima_state_updates_like_a_refit_with_fixed_coefficients() {
        let y = series(240);
        let order = ArimaOrder::new(1, 0, 1).seasonal(0, 1, 1, 12);
        let fit = Arima::new(order).fit(&y[..200]).expect("fit");
        let mut st = ModelState::from_arima(&fit).expect("state");
        for v in &y[200..] {
            st.update(*v).expect("finite");
        }
        // The same coefficients filtered over all 240 points.
        let full = FittedArima::fixed(&y, order, fit.coefficients().clone()).expect("fixed");
        let a = st.predict(12).expect("predict");
        let b = full.predict(12).expect("predict");
        for (x, z) in a.point.iter().zip(&b.point) {
            assert!((x - z).abs() < 1e-6, "{x} vs {z}");
        }
        assert!(st.size_bytes() < 8 * 1024, "{}", st.size_bytes());
        let json = serde_json::to_string(&st).expect("serialises");
        let back: ModelState = serde_json::from_str(&json).expect("deserialises");
        // serde_json's float parsing may differ from the original in the last bit.
        for (x, z) in back
            .predict(3)
            .expect("p")
            .point
            .iter()
            .zip(&st.predict(3).expect("p").point)
        {
            assert!((x - z).abs() < 1e-9);
        }
        assert!(st.update(f64::NAN).is_err());
    }

    #[test]
    fn naive_and_decomposition_states() {
        let y = series(120);
        let mut st = ModelState::from_seasonal_naive(&SeasonalNaive::new(12).fit(&y).expect("fit"));
        st.update(99.0).expect("finite");
        assert_eq!(st.predict(12).expect("p").point[11], 99.0);
        let fit = MstlEts {
            max_horizon: 6,
            ..MstlEts::new(vec![12])
        }
        .fit(&y)
        .expect("fit");
        let mut st = ModelState::from_mstl_ets(&fit);
        let first = st.predict(6).expect("p");
        st.update(y[0]).expect("finite");
        let next = st.predict(5).expect("p");
        assert!((first.point[1] - next.point[0]).abs() < 1e-3);
        assert!(st.predict(6).is_err());
        // A combination averages its members and serialises like any state.
        let naive = ModelState::from_seasonal_naive(&SeasonalNaive::new(12).fit(&y).expect("fit"));
        let combo = ModelState::Combination {
            members: vec![naive.clone(), st.clone()],
        };
        let (a, b, c) = (
            naive.predict(5).expect("p"),
            st.predict(5).expect("p"),
            combo.predict(5).expect("p"),
        );
        assert!((c.point[2] - 0.5 * (a.point[2] + b.point[2])).abs() < 1e-12);
        assert!((c.sd[2] - 0.5 * (a.sd[2] + b.sd[2])).abs() < 1e-12);
        let json = serde_json::to_string(&combo).expect("serialises");
        let back: ModelState = serde_json::from_str(&json).expect("deserialises");
        assert_eq!(back.name(), combo.name());
    }
}
