//! The exact Gaussian likelihood of a stationary ARMA process by the Kalman filter, and the
//! Kalman forecast of the integrated (ARIMA) process.
//!
//! State space: Harvey's form, as in Gardner, Harvey & Phillips (1980) and R's `arima`. With
//! `r = max(p, q + 1)`, `x_t = Z a_t` with `Z = e_1`, `a_{t+1} = T a_t + R ε_{t+1}`, where `T`
//! has the AR coefficients in its first column and ones on the super-diagonal, and
//! `R = (1, θ_1, …, θ_{r-1})'`. The filter starts from the stationary distribution: `a_1 = 0`
//! and `P_1` solving `P = T P T' + R R'` (everything in units of σ², which is concentrated out).
//!
//! Cost, which decides how fast seasonal models fit (r reaches 50 for m = 24):
//! * `P_1` comes from the autocovariances of the ARMA process (one `(p+1)`-square solve, then
//!   O(r²) fill-in through the Lyapunov recursion) instead of Gardner et al.'s O(r⁴) system.
//! * The likelihood used by the optimiser ([`likelihood`]) runs the Chandrasekhar recursions:
//!   from the stationary start the covariance changes by a rank-one term each step, so a step is
//!   O(r) and only the first column of `P_1` is needed. Once the filter reaches its invertible
//!   steady state (`F = 1`, gain `T R`) the innovations follow the ARMA recursion, which costs
//!   O(non-zero coefficients) per step.
//! * The full covariance recursion ([`filter`], O(r²) per step using the companion structure)
//!   runs once per fit, for the end state that forecasts and streaming updates need.
//!
//! A single regressor (the mean or the drift) is concentrated out as well: the filter is linear
//! in the data, so filtering the regressor alongside the series with the same gains gives the
//! GLS estimate of its coefficient in closed form.

use super::linalg;

/// Relative change in the state covariance below which the filter is taken as converged and
/// the gain frozen. At 1e-11 the likelihood moves by less than 1e-9 over 10⁴ steps.
const STEADY_TOL: f64 = 1e-11;

/// Distance from `F = 1`, gain `= T R` under which the steady filter is replaced by the ARMA
/// innovation recursion (they then agree to this order per step).
const STEADY_GAIN_TOL: f64 = 1e-9;

/// A zero-mean ARMA model in state-space form.
#[derive(Debug, Clone)]
pub(crate) struct ArmaStateSpace {
    /// State dimension `max(p, q + 1)`.
    pub(crate) r: usize,
    /// AR coefficients padded with zeros to `r`.
    pub(crate) phi: Vec<f64>,
    /// `R = (1, θ_1, …, θ_{r-1})`.
    pub(crate) rvec: Vec<f64>,
    /// Number of leading AR coefficients that can be non-zero (`p`).
    p: usize,
    /// Non-zero AR coefficients as (0-based index, value): seasonal polynomials are sparse.
    phi_nz: Vec<(usize, f64)>,
    /// Non-zero MA coefficients as (lag, value).
    theta_nz: Vec<(usize, f64)>,
}

impl ArmaStateSpace {
    /// `phi` and `theta` are the expanded (seasonal × non-seasonal) polynomials.
    pub(crate) fn new(phi: &[f64], theta: &[f64]) -> Self {
        let p = phi.len();
        let r = p.max(theta.len() + 1);
        let mut phi_r = vec![0.0; r];
        phi_r[..p].copy_from_slice(phi);
        let mut rvec = vec![0.0; r];
        rvec[0] = 1.0;
        rvec[1..=theta.len()].copy_from_slice(theta);
        let phi_nz = phi
            .iter()
            .enumerate()
            .filter(|(_, v)| **v != 0.0)
            .map(|(i, v)| (i, *v))
            .collect();
        let theta_nz = theta
            .iter()
            .enumerate()
            .filter(|(_, v)| **v != 0.0)
            .map(|(i, v)| (i + 1, *v))
            .collect();
        Self {
            r,
            phi: phi_r,
            rvec,
            p,
            phi_nz,
            theta_nz,
        }
    }

    /// MA coefficient θ_k (θ_0 = 1, zero beyond q).
    fn theta(&self, k: usize) -> f64 {
        if k < self.r {
            self.rvec[k]
        } else {
            0.0
        }
    }

    /// AR coefficient φ_k, 1-based (zero beyond p).
    fn phi1(&self, k: usize) -> f64 {
        if k >= 1 && k <= self.p {
            self.phi[k - 1]
        } else {
            0.0
        }
    }

    /// Autocovariances γ(0..=lags) and MA(∞) weights ψ(0..=lags) for unit innovation variance,
    /// or `None` when the AR part is (numerically) non-stationary.
    fn autocovariances(&self, lags: usize) -> Option<(Vec<f64>, Vec<f64>)> {
        let p = self.p;
        let q = self.r.saturating_sub(1);
        let upto = lags.max(p).max(q);
        let mut psi = vec![0.0; upto + 1];
        psi[0] = 1.0;
        for j in 1..=upto {
            let mut v = self.theta(j);
            for i in 1..=j.min(p) {
                v += self.phi1(i) * psi[j - i];
            }
            psi[j] = v;
        }
        // c_k = Σ_{j=k..q} θ_j ψ_{j-k}: the covariance of the MA part with the process.
        let c: Vec<f64> = (0..=upto)
            .map(|k| (k..=q).map(|j| self.theta(j) * psi[j - k]).sum())
            .collect();
        let mut gamma = vec![0.0; upto + 1];
        if p == 0 {
            gamma.copy_from_slice(&c);
        } else {
            // Yule–Walker-type system for γ(0..=p): γ(k) - Σ φ_i γ(|k-i|) = c_k.
            let n = p + 1;
            let mut a = vec![0.0; n * n];
            let mut b = c[..n].to_vec();
            for k in 0..n {
                a[k * n + k] += 1.0;
                for i in 1..=p {
                    a[k * n + k.abs_diff(i)] -= self.phi1(i);
                }
            }
            if !linalg::solve(&mut a, &mut b, n) {
                return None;
            }
            gamma[..n].copy_from_slice(&b);
            for k in n..=upto {
                let mut v = c[k];
                for i in 1..=p {
                    v += self.phi1(i) * gamma[k - i];
                }
                gamma[k] = v;
            }
        }
        if gamma[0] <= 0.0 || !gamma.iter().all(|g| g.is_finite()) {
            return None;
        }
        Some((gamma, psi))
    }

    /// First column of the stationary state covariance (unit innovation variance):
    /// `Cov(x_t, a_t[j])` with `a_t[j] = Σ_{l=1}^{r-j} (φ_{j+l} x_{t-l} + θ_{j+l-1} ε_{t-l+1})`.
    fn stationary_first_column(&self) -> Option<Vec<f64>> {
        let r = self.r;
        let (gamma, psi) = self.autocovariances(r)?;
        let mut col = vec![0.0; r];
        col[0] = gamma[0];
        for (j, c) in col.iter_mut().enumerate().skip(1) {
            let mut v = 0.0;
            for l in 1..=(r - j) {
                v += self.phi1(j + l) * gamma[l] + self.theta(j + l - 1) * psi[l - 1];
            }
            *c = v;
        }
        col.iter().all(|v| v.is_finite()).then_some(col)
    }

    /// The stationary state covariance (row-major `r × r`, unit innovation variance), or `None`
    /// when the AR part is not stationary.
    pub(crate) fn stationary_covariance(&self) -> Option<Vec<f64>> {
        let r = self.r;
        let col = self.stationary_first_column()?;
        let mut pm = vec![0.0; r * r];
        for (j, v) in col.iter().enumerate() {
            pm[j] = *v;
            pm[j * r] = *v;
        }
        // Remaining entries from P = T P T' + R R', filled from the bottom-right corner.
        let at = |pm: &[f64], i: usize, j: usize| if i < r && j < r { pm[i * r + j] } else { 0.0 };
        for i in (1..r).rev() {
            for j in (i..r).rev() {
                let v = self.phi[i] * self.phi[j] * pm[0]
                    + self.phi[j] * at(&pm, i + 1, 0)
                    + self.phi[i] * at(&pm, 0, j + 1)
                    + at(&pm, i + 1, j + 1)
                    + self.rvec[i] * self.rvec[j];
                pm[i * r + j] = v;
                pm[j * r + i] = v;
            }
        }
        if pm.iter().all(|v| v.is_finite()) {
            Some(pm)
        } else {
            None
        }
    }

    /// `P ← T P T' + R R'` using the companion structure of `T` (O(r²)).
    fn predict_cov(&self, pm: &[f64], out: &mut [f64], tmp: &mut [f64]) {
        let r = self.r;
        // tmp = T P: row i is φ_i · P[0,·] + P[i+1,·].
        for i in 0..r {
            for j in 0..r {
                let below = if i + 1 < r { pm[(i + 1) * r + j] } else { 0.0 };
                tmp[i * r + j] = self.phi[i] * pm[j] + below;
            }
        }
        // out = tmp T' + R R': column j is φ_j · tmp[·,0] + tmp[·,j+1].
        for i in 0..r {
            for j in i..r {
                let right = if j + 1 < r { tmp[i * r + j + 1] } else { 0.0 };
                let v = self.phi[j] * tmp[i * r] + right + self.rvec[i] * self.rvec[j];
                out[i * r + j] = v;
                out[j * r + i] = v;
            }
        }
    }

    /// `a ← T a`: shift up, then add the AR column times `a[0]`.
    fn predict_state(&self, a: &mut [f64]) {
        let r = self.r;
        let a0 = a[0];
        a.copy_within(1..r, 0);
        a[r - 1] = 0.0;
        for &(i, p) in &self.phi_nz {
            a[i] += p * a0;
        }
    }

    /// One-step innovation of the ARMA recursion at `t` given the series `w` and past
    /// innovations `e` (both indexed like `w`; entries before 0 count as absent).
    fn arma_innovation(&self, w: &[f64], e: &[f64], t: usize) -> f64 {
        let mut v = w[t];
        for &(i, p) in &self.phi_nz {
            if t > i {
                v -= p * w[t - i - 1];
            }
        }
        for &(lag, th) in &self.theta_nz {
            if t >= lag {
                v -= th * e[t - lag];
            }
        }
        v
    }
}

/// What one pass of the filter accumulates. Quantities are in units of σ².
#[derive(Debug, Clone)]
pub(crate) struct FilterSums {
    /// Σ v²/F for the series.
    pub(crate) s_yy: f64,
    /// Σ v·v_x/F between series and regressor.
    pub(crate) s_xy: f64,
    /// Σ v_x²/F for the regressor.
    pub(crate) s_xx: f64,
    /// Σ ln F.
    pub(crate) sumlog: f64,
    /// Number of observations used.
    pub(crate) nu: usize,
}

impl FilterSums {
    /// GLS coefficient of the regressor (0 without one).
    pub(crate) fn beta(&self) -> f64 {
        super::css::regression_beta(self.s_xy, self.s_xx)
    }

    /// Residual sum of squares at the GLS coefficient.
    pub(crate) fn ssq(&self) -> f64 {
        super::css::regression_ssq(self.s_yy, self.s_xy, self.s_xx)
    }

    /// `0.5 ln(σ̂²) + 0.5 Σ ln F / n`: minus the concentrated log-likelihood per observation,
    /// up to constants (the objective R's `arima` minimises).
    pub(crate) fn objective(&self) -> f64 {
        let nu = self.nu as f64;
        let s2 = self.ssq() / nu;
        if s2 > 0.0 {
            0.5 * s2.ln() + 0.5 * self.sumlog / nu
        } else {
            f64::NEG_INFINITY
        }
    }

    /// The exact Gaussian log-likelihood at the concentrated σ̂² = ssq / n.
    pub(crate) fn loglik(&self) -> f64 {
        let nu = self.nu as f64;
        -0.5 * (2.0 * nu * self.objective() + nu + nu * (2.0 * std::f64::consts::PI).ln())
    }
}

/// The likelihood sums of [`filter`] without the end state, by the Chandrasekhar recursions
/// (Morf, Sidhu & Kailath 1974; Harvey 1989 §3.3.4).
///
/// For a time-invariant model the change of the state covariance between steps,
/// `ΔP_t = P_{t+1} - P_t`, keeps the rank of `ΔP_1`, and from the stationary start
/// `ΔP_1 = -T P_1 Z' Z P_1 T' / F_1` has rank one. Propagating its factor `W_t M_t W_t'`
/// (a vector and a scalar here) instead of `P_t` makes each step O(r) instead of O(r²), and only
/// the first column of `P_1` is needed. With `K_t = T P_t Z' / F_t`:
/// `F_{t+1} = F_t + (Z W_t)² M_t`, `T P_{t+1} Z' = T P_t Z' + T W_t M_t (Z W_t)`,
/// `W_{t+1} = (T - K_{t+1} Z) W_t`, `M_{t+1} = M_t + M_t² (Z W_t)² / F_t`.
pub(crate) fn likelihood(ss: &ArmaStateSpace, y: &[f64], x: Option<&[f64]>) -> Option<FilterSums> {
    let r = ss.r;
    let col = ss.stationary_first_column()?;
    let mut f = col[0];
    if !(f.is_finite() && f > 0.0) {
        return None;
    }
    // kf = T P_t Z' (the gain times F).
    let mut kf = col;
    ss.predict_state(&mut kf);
    let mut w = kf.clone();
    let mut mm = -1.0 / f;
    let mut tw = vec![0.0; r];
    let mut a = vec![0.0; r];
    let mut ax = if x.is_some() {
        vec![0.0; r]
    } else {
        Vec::new()
    };
    let mut sums = FilterSums {
        s_yy: 0.0,
        s_xy: 0.0,
        s_xx: 0.0,
        sumlog: 0.0,
        nu: 0,
    };
    let n = y.len();
    // Innovations so far: once the filter has reached the invertible steady state (F = 1, gain
    // = T R) they obey the ARMA recursion, which costs O(non-zero coefficients) per step.
    let mut vs = vec![0.0; n];
    let mut vxs = if x.is_some() {
        vec![0.0; n]
    } else {
        Vec::new()
    };
    let mut steady = false;
    let mut recursion = false;
    for t in 0..n {
        if recursion {
            let v = ss.arma_innovation(y, &vs, t);
            vs[t] = v;
            sums.s_yy += v * v;
            sums.nu += 1;
            if let Some(x) = x {
                let vx = ss.arma_innovation(x, &vxs, t);
                vxs[t] = vx;
                sums.s_xy += v * vx;
                sums.s_xx += vx * vx;
            }
            continue;
        }
        let v = y[t] - a[0];
        vs[t] = v;
        sums.sumlog += f.ln();
        sums.s_yy += v * v / f;
        sums.nu += 1;
        ss.predict_state(&mut a);
        let g = v / f;
        for (ai, k) in a.iter_mut().zip(&kf) {
            *ai += k * g;
        }
        if let Some(x) = x {
            let vx = x[t] - ax[0];
            vxs[t] = vx;
            sums.s_xy += v * vx / f;
            sums.s_xx += vx * vx / f;
            ss.predict_state(&mut ax);
            let gx = vx / f;
            for (ai, k) in ax.iter_mut().zip(&kf) {
                *ai += k * gx;
            }
        }
        if steady {
            continue;
        }
        let zw = w[0];
        let dm = mm * zw;
        let f_next = f + zw * dm;
        if !(f_next.is_finite() && f_next > 0.0) {
            return None;
        }
        tw.copy_from_slice(&w);
        ss.predict_state(&mut tw);
        for (k, t) in kf.iter_mut().zip(&tw) {
            *k += t * dm;
        }
        let c = zw / f_next;
        for ((wi, t), k) in w.iter_mut().zip(&tw).zip(&kf) {
            *wi = t - k * c;
        }
        mm += dm * dm / f;
        f = f_next;
        // Once the covariance has stopped moving the gain is constant (see STEADY_TOL).
        let wmax = w.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        if (mm * wmax * wmax).abs() <= STEADY_TOL * f {
            steady = true;
            // Invertible steady state: P = R R', so F = 1 and T P Z' = T R.
            let mut tr = ss.rvec.clone();
            ss.predict_state(&mut tr);
            let gain_is_tr = kf
                .iter()
                .zip(&tr)
                .all(|(k, t)| (k - t).abs() <= STEADY_GAIN_TOL);
            recursion = (f - 1.0).abs() <= STEADY_GAIN_TOL && gain_is_tr;
        }
    }
    if !(sums.s_yy.is_finite() && sums.sumlog.is_finite()) {
        return None;
    }
    Some(sums)
}

/// Filter output with the end state, for forecasting and streaming updates.
#[derive(Debug, Clone)]
pub(crate) struct FilterState {
    /// Accumulated sums.
    pub(crate) sums: FilterSums,
    /// Predicted state `a_{n+1|n}` of the series.
    pub(crate) a: Vec<f64>,
    /// Predicted state covariance `P_{n+1|n}` (row-major `r × r`).
    pub(crate) p: Vec<f64>,
}

/// Runs the Kalman filter (full covariance recursion) over `y`, and optionally one regressor
/// `x` of the same length, from the stationary state distribution. Returns `None` when the AR
/// part is not stationary or the filter breaks down.
pub(crate) fn filter(ss: &ArmaStateSpace, y: &[f64], x: Option<&[f64]>) -> Option<FilterState> {
    let p0 = ss.stationary_covariance()?;
    filter_from(ss, y, x, vec![0.0; ss.r], p0)
}

/// [`filter`] from a given predicted state `a` and covariance `p` (the regressor's state starts
/// at 0).
pub(crate) fn filter_from(
    ss: &ArmaStateSpace,
    y: &[f64],
    x: Option<&[f64]>,
    mut a: Vec<f64>,
    mut pm: Vec<f64>,
) -> Option<FilterState> {
    let r = ss.r;
    let mut ax = if x.is_some() {
        vec![0.0; r]
    } else {
        Vec::new()
    };
    let mut next = vec![0.0; r * r];
    let mut tmp = vec![0.0; r * r];
    let mut upd = vec![0.0; r * r];
    let mut gain = vec![0.0; r];
    let mut sums = FilterSums {
        s_yy: 0.0,
        s_xy: 0.0,
        s_xx: 0.0,
        sumlog: 0.0,
        nu: 0,
    };
    let mut steady = false;
    let mut f = pm[0];
    for t in 0..y.len() {
        if !steady {
            f = pm[0];
            if !(f.is_finite() && f > 0.0) {
                return None;
            }
            for (g, pi) in gain.iter_mut().zip(pm.iter().step_by(r)) {
                *g = pi / f;
            }
        }
        let v = y[t] - a[0];
        sums.sumlog += f.ln();
        sums.s_yy += v * v / f;
        sums.nu += 1;
        for (ai, g) in a.iter_mut().zip(&gain) {
            *ai += g * v;
        }
        ss.predict_state(&mut a);
        if let Some(x) = x {
            let vx = x[t] - ax[0];
            sums.s_xy += v * vx / f;
            sums.s_xx += vx * vx / f;
            for (ai, g) in ax.iter_mut().zip(&gain) {
                *ai += g * vx;
            }
            ss.predict_state(&mut ax);
        }
        if !steady {
            // Updated covariance P - P[·,0] P[0,·] / F, then the prediction step.
            for i in 0..r {
                let ci = pm[i * r];
                for j in 0..r {
                    upd[i * r + j] = pm[i * r + j] - ci * pm[j] / f;
                }
            }
            ss.predict_cov(&upd, &mut next, &mut tmp);
            let scale = next[0].abs().max(1.0);
            let change = next
                .iter()
                .zip(&pm)
                .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
            std::mem::swap(&mut pm, &mut next);
            if change <= STEADY_TOL * scale {
                steady = true;
                f = pm[0];
                for (g, pi) in gain.iter_mut().zip(pm.iter().step_by(r)) {
                    *g = pi / f;
                }
            }
        }
    }
    if !(sums.s_yy.is_finite() && sums.sumlog.is_finite()) {
        return None;
    }
    Some(FilterState { sums, a, p: pm })
}

/// The predicted state for the step after the data, conditional on the observed series `x` and
/// its (CSS) innovations `e`: what a non-stationary fit forecasts from, where the stationary
/// filter does not exist. Only the next innovation is unknown, so the covariance is `R R'`.
pub(crate) fn conditional_state(ss: &ArmaStateSpace, x: &[f64], e: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let r = ss.r;
    let n = x.len();
    let at = |v: &[f64], idx: isize| {
        if idx >= 0 && (idx as usize) < v.len() {
            v[idx as usize]
        } else {
            0.0
        }
    };
    // a[i] = Σ_{j=1}^{r-i} φ_{i+j} x_{n+1-j} + Σ_{j=2}^{r-i} θ_{i+j-1} ε_{n+2-j} (1-based time).
    let a = (0..r)
        .map(|i| {
            let mut v = 0.0;
            for j in 1..=(r - i) {
                v += ss.phi1(i + j) * at(x, n as isize - j as isize);
                if j >= 2 {
                    v += ss.theta(i + j - 1) * at(e, n as isize + 1 - j as isize);
                }
            }
            v
        })
        .collect();
    let mut p = vec![0.0; r * r];
    for i in 0..r {
        for j in 0..r {
            p[i * r + j] = ss.rvec[i] * ss.rvec[j];
        }
    }
    (a, p)
}

/// Whether `p` equals `R R'` to within `tol` (the filter has converged).
pub(crate) fn is_steady(ss: &ArmaStateSpace, p: &[f64], tol: f64) -> bool {
    let r = ss.r;
    p.len() == r * r
        && (0..r).all(|i| (0..r).all(|j| (p[i * r + j] - ss.rvec[i] * ss.rvec[j]).abs() <= tol))
}

/// [`forecast`] when the state covariance is `R R'` (the filter has converged: only the next
/// innovation is unknown). The variance then follows from the MA(∞) weights ψ of the
/// integrated model, `Var_h = Σ_{j<h} ψ_j²` — O(h·(p + d)) instead of O(h·(r + d)²).
pub(crate) fn forecast_steady(
    ss: &ArmaStateSpace,
    a: &[f64],
    delta: &[f64],
    tail: &[f64],
    h: usize,
) -> (Vec<f64>, Vec<f64>) {
    let nd = delta.len();
    // Means: the ARMA state and the integration, stepped forward.
    let mut s = a.to_vec();
    let mut hist: Vec<f64> = tail.to_vec();
    let mut mean = Vec::with_capacity(h);
    for _ in 0..h {
        let u = s[0]
            + (0..nd)
                .map(|i| delta[i] * hist[hist.len() - 1 - i])
                .sum::<f64>();
        mean.push(u);
        hist.push(u);
        ss.predict_state(&mut s);
    }
    // AR polynomial of the integrated process: (1 - Σ φ_i B^i)(1 - Σ δ_i B^i) = 1 - Σ c_i B^i.
    let phi = &ss.phi[..ss.p];
    let mut c = vec![0.0; phi.len() + nd];
    for (i, p) in phi.iter().enumerate() {
        c[i] += p;
    }
    for (i, d) in delta.iter().enumerate() {
        c[i] += d;
    }
    for (i, p) in phi.iter().enumerate() {
        for (j, d) in delta.iter().enumerate() {
            c[i + j + 1] -= p * d;
        }
    }
    let mut psi = vec![0.0; h];
    let mut var = Vec::with_capacity(h);
    let mut acc = 0.0;
    for j in 0..h {
        let mut v = if j == 0 { 1.0 } else { ss.theta(j) };
        for (i, ci) in c.iter().enumerate().take(j) {
            v += ci * psi[j - i - 1];
        }
        psi[j] = v;
        acc += v * v;
        var.push(acc);
    }
    (mean, var)
}

/// Mean and variance (units of σ²) of `h` forecasts of the integrated process
/// `u_t = x_t + Σ δ_i u_{t-i}`, with `x` the ARMA process in predicted state (`a`, `p`) for the
/// first forecast step and `tail` the last `δ.len()` values of `u` (most recent last).
pub(crate) fn forecast(
    ss: &ArmaStateSpace,
    a: &[f64],
    p: &[f64],
    delta: &[f64],
    tail: &[f64],
    h: usize,
) -> (Vec<f64>, Vec<f64>) {
    let r = ss.r;
    let nd = delta.len();
    let k = r + nd;
    // Augmented state (a_t, u_{t-1}, …, u_{t-nd}); the lags are known exactly.
    let mut s = vec![0.0; k];
    s[..r].copy_from_slice(a);
    for i in 0..nd {
        s[r + i] = tail[tail.len() - 1 - i];
    }
    let mut pm = vec![0.0; k * k];
    for i in 0..r {
        pm[i * k..i * k + r].copy_from_slice(&p[i * r..(i + 1) * r]);
    }
    // Observation u_t = a_t[0] + Σ δ_i u_{t-i}.
    let obs = |v: &[f64]| v[0] + (0..nd).map(|i| delta[i] * v[r + i]).sum::<f64>();
    // Transition applied to one state vector (a column of P or the mean).
    let step = |v: &[f64], out: &mut [f64]| {
        let u = obs(v);
        for i in 0..r {
            let below = if i + 1 < r { v[i + 1] } else { 0.0 };
            out[i] = ss.phi[i] * v[0] + below;
        }
        if nd > 0 {
            out[r] = u;
            for i in 1..nd {
                out[r + i] = v[r + i - 1];
            }
        }
    };
    let mut mean = Vec::with_capacity(h);
    let mut var = Vec::with_capacity(h);
    let mut col = vec![0.0; k];
    let mut colout = vec![0.0; k];
    let mut tp = vec![0.0; k * k];
    for step_i in 0..h {
        mean.push(obs(&s));
        // Var(u_t) = z' P z with z the observation vector.
        let mut z = vec![0.0; k];
        z[0] = 1.0;
        z[r..r + nd].copy_from_slice(delta);
        let mut vz = 0.0;
        for i in 0..k {
            if z[i] == 0.0 {
                continue;
            }
            for j in 0..k {
                vz += z[i] * pm[i * k + j] * z[j];
            }
        }
        var.push(vz.max(0.0));
        if step_i + 1 == h {
            break;
        }
        let snap = s.clone();
        step(&snap, &mut s);
        // P ← T P T' + R R' (T applied to columns, then to rows).
        for j in 0..k {
            for i in 0..k {
                col[i] = pm[i * k + j];
            }
            step(&col, &mut colout);
            for i in 0..k {
                tp[i * k + j] = colout[i];
            }
        }
        for i in 0..k {
            step(&tp[i * k..(i + 1) * k], &mut colout);
            pm[i * k..(i + 1) * k].copy_from_slice(&colout);
        }
        for i in 0..r {
            for j in 0..r {
                pm[i * k + j] += ss.rvec[i] * ss.rvec[j];
            }
        }
    }
    (mean, var)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lyapunov_residual(ss: &ArmaStateSpace, pm: &[f64]) -> f64 {
        let r = ss.r;
        let mut out = vec![0.0; r * r];
        let mut tmp = vec![0.0; r * r];
        ss.predict_cov(pm, &mut out, &mut tmp);
        out.iter()
            .zip(pm)
            .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()))
    }

    #[test]
    fn stationary_covariance_solves_lyapunov() {
        for (phi, theta) in [
            (vec![0.5], vec![]),
            (vec![0.5, -0.3], vec![0.4]),
            (vec![], vec![0.3, 0.2, -0.1]),
            (
                vec![0.2, 0.0, 0.0, 0.5, -0.1],
                vec![0.3, 0.0, 0.0, -0.4, -0.12],
            ),
            (vec![1.2, -0.5], vec![0.6, 0.2, 0.1, 0.05]),
        ] {
            let ss = ArmaStateSpace::new(&phi, &theta);
            let pm = ss.stationary_covariance().expect("stationary");
            assert!(lyapunov_residual(&ss, &pm) < 1e-10, "{phi:?} {theta:?}");
        }
        // AR(1): Var = 1 / (1 - φ²).
        let ss = ArmaStateSpace::new(&[0.6], &[]);
        let pm = ss.stationary_covariance().expect("stationary");
        assert!((pm[0] - 1.0 / (1.0 - 0.36)).abs() < 1e-12);
        assert!(ArmaStateSpace::new(&[1.0], &[])
            .stationary_covariance()
            .is_none());
    }

    #[test]
    fn chandrasekhar_matches_riccati() {
        // A deterministic, roughly stationary input.
        let y: Vec<f64> = (0..400)
            .map(|t| ((t * 37 % 101) as f64 / 50.0 - 1.0) + (t as f64 * 0.3).sin())
            .collect();
        let x: Vec<f64> = (0..400).map(|t| 1.0 + (t % 7) as f64 * 0.1).collect();
        for (phi, theta) in [
            (vec![0.5], vec![]),
            (vec![0.5, -0.3], vec![0.4]),
            (vec![], vec![0.3, 0.2, -0.1]),
            (
                vec![0.2, 0.0, 0.0, 0.5, -0.1],
                vec![0.3, 0.0, 0.0, -0.4, -0.12],
            ),
            (vec![0.9], vec![-0.95]),
        ] {
            let ss = ArmaStateSpace::new(&phi, &theta);
            let slow = filter(&ss, &y, Some(&x)).expect("riccati").sums;
            let fast = likelihood(&ss, &y, Some(&x)).expect("chandrasekhar");
            for (a, b) in [
                (slow.s_yy, fast.s_yy),
                (slow.s_xy, fast.s_xy),
                (slow.s_xx, fast.s_xx),
                (slow.sumlog, fast.sumlog),
            ] {
                // The frozen gain and the switch to the ARMA recursion happen at ~1e-11 changes.
                assert!(
                    (a - b).abs() <= 1e-7 * a.abs().max(1.0),
                    "{phi:?} {theta:?}: {a} {b}"
                );
            }
        }
    }

    #[test]
    fn steady_forecast_matches_kalman_forecast() {
        let ss = ArmaStateSpace::new(&[0.5, 0.0, 0.0, 0.3, -0.15], &[0.4, 0.0, 0.0, -0.5, -0.2]);
        let r = ss.r;
        let a: Vec<f64> = (0..r).map(|i| 0.1 * i as f64 - 0.2).collect();
        let mut p = vec![0.0; r * r];
        for i in 0..r {
            for j in 0..r {
                p[i * r + j] = ss.rvec[i] * ss.rvec[j];
            }
        }
        let delta = [1.0, 0.0, 0.0, 1.0, -1.0]; // (1 - B)(1 - B^4)
        let tail = [3.0, 1.0, 4.0, 1.0, 5.0];
        let (m1, v1) = forecast(&ss, &a, &p, &delta, &tail, 12);
        let (m2, v2) = forecast_steady(&ss, &a, &delta, &tail, 12);
        for j in 0..12 {
            assert!((m1[j] - m2[j]).abs() < 1e-10, "mean {j}");
            assert!(
                (v1[j] - v2[j]).abs() < 1e-9 * v1[j].max(1.0),
                "var {j}: {} {}",
                v1[j],
                v2[j]
            );
        }
    }

    #[test]
    fn ar1_likelihood_matches_closed_form() {
        // Exact AR(1) likelihood: first observation with variance 1/(1-φ²), then e_t = y_t - φ y_{t-1}.
        let y = [0.3, -0.5, 1.2, 0.7, -0.1, 0.4, 0.9, -1.3];
        let phi = 0.4;
        let ss = ArmaStateSpace::new(&[phi], &[]);
        let st = filter(&ss, &y, None).expect("filter");
        let f0 = 1.0 / (1.0 - phi * phi);
        let mut ssq = y[0] * y[0] / f0;
        for t in 1..y.len() {
            ssq += (y[t] - phi * y[t - 1]).powi(2);
        }
        assert!((st.sums.s_yy - ssq).abs() < 1e-12);
        assert!((st.sums.sumlog - f0.ln()).abs() < 1e-12);
    }
}
