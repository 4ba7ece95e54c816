//! One-class SVM novelty detector: the ν-formulation of Schölkopf et al. (2001) with an RBF
//! kernel, trained exactly by SMO.
//!
//! Why: it learns the support of "normal" multivariate metric vectors without assuming a
//! distribution, and its score is the one scikit-learn's `OneClassSVM.decision_function` returns,
//! so thresholds people tuned in Python carry over.
//!
//! The dual, as LIBSVM states it for one-class problems (Chang & Lin 2011, §2.3), is
//!
//! ```text
//! minimise ½ αᵀQα   subject to 0 ≤ αᵢ ≤ 1,  Σ αᵢ = ν·l,   Q_ij = K(x_i, x_j) = exp(−γ‖x_i − x_j‖²)
//! ```
//!
//! and is solved by SMO with the second-order working-set selection of Fan, Chen & Lin (2005,
//! "WSS 2"). The offset ρ comes from the KKT conditions: the mean gradient of the free support
//! vectors, or the middle of the feasible interval when none is free. The decision function is
//! `f(x) = Σ αᵢ K(xᵢ, x) − ρ`: positive inside the learned region, negative outside.
//!
//! Training cost grows with the square of the number of rows, so training uses at most
//! `max_train_rows` rows (a seeded subsample when more are given), and kernel rows are kept in an
//! LRU cache bounded by `kernel_cache_mb` (at the default sizes the whole matrix fits).

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::models::ModelError;

mod smo;

use smo::{solve, KernelRows};

/// How the RBF kernel width γ in `K(x, y) = exp(−γ‖x − y‖²)` is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Gamma {
    /// `1 / (n_features · Var(X))`, the variance taken over all entries of the training matrix
    /// (after subsampling); 1.0 when that variance is zero (scikit-learn's `gamma='scale'`, its
    /// default).
    Scale,
    /// `1 / n_features` (scikit-learn's `gamma='auto'`).
    Auto,
    /// A fixed γ; must be finite and positive.
    Value(f64),
}

/// Unfitted one-class SVM: parameters named and defaulted as in scikit-learn's `OneClassSVM`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OneClassSvmConfig {
    /// Upper bound on the fraction of training rows outside the learned region and lower bound on
    /// the fraction of support vectors; in (0, 1]. Default 0.5 (scikit-learn's).
    pub nu: f64,
    /// Kernel width rule. Default [`Gamma::Scale`] (scikit-learn's).
    pub gamma: Gamma,
    /// Stop when the maximal KKT violation `max_{αᵢ>0} Gᵢ − min_{αⱼ<1} Gⱼ` (G = Qα) is below this;
    /// finite and positive. Default 1e-3 (scikit-learn's and LIBSVM's).
    pub tol: f64,
    /// Most SMO iterations; at least 1. A fit that reaches it keeps the feasible solution it has
    /// and reports [`OneClassSvm::converged`] = false. Default 1,000,000: one iteration costs O(l),
    /// so at the default 2,000 rows the cap bounds a fit to a few seconds, while converged fits of
    /// 2,000 × 19 rows took 500–9,000 iterations in our measurements.
    pub max_iter: usize,
    /// Most rows used for training; at least 1. More rows are subsampled without replacement with
    /// `seed`. Default 2,000: training time grows at least as l², and 2,000 rows of 19 features fit
    /// in 40–170 ms here while describing the normal region of a few dozen features.
    pub max_train_rows: usize,
    /// Memory for cached kernel rows, in MiB. Default 200 (scikit-learn's `cache_size`), which
    /// holds the whole 2,000 × 2,000 matrix. At least two rows are cached whatever the value.
    pub kernel_cache_mb: usize,
    /// Seed of the subsample drawn when there are more than `max_train_rows` rows. Default 0.
    pub seed: u64,
}

impl Default for OneClassSvmConfig {
    fn default() -> Self {
        Self {
            nu: 0.5,
            gamma: Gamma::Scale,
            tol: 1e-3,
            max_iter: 1_000_000,
            max_train_rows: 2_000,
            kernel_cache_mb: 200,
            seed: 0,
        }
    }
}

/// A fitted one-class SVM: the support vectors, their coefficients αᵢ and the offset ρ.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OneClassSvm {
    n_features: usize,
    gamma: f64,
    rho: f64,
    /// Row-major, `coef.len()` rows of `n_features`.
    support_vectors: Vec<f64>,
    coef: Vec<f64>,
    n_train: usize,
    iterations: usize,
    converged: bool,
}

impl OneClassSvmConfig {
    /// Checks every parameter against its documented range.
    pub fn validate(&self) -> Result<(), ModelError> {
        let invalid = |name, reason: &str| {
            Err(ModelError::InvalidParameter {
                name,
                reason: reason.to_string(),
            })
        };
        if !(self.nu > 0.0 && self.nu <= 1.0) {
            return invalid("nu", "must be in (0, 1]");
        }
        if let Gamma::Value(g) = self.gamma {
            if !(g.is_finite() && g > 0.0) {
                return invalid("gamma", "a fixed gamma must be finite and > 0");
            }
        }
        if !(self.tol.is_finite() && self.tol > 0.0) {
            return invalid("tol", "must be finite and > 0");
        }
        if self.max_iter == 0 {
            return invalid("max_iter", "must be >= 1");
        }
        if self.max_train_rows == 0 {
            return invalid("max_train_rows", "must be >= 1");
        }
        Ok(())
    }

    /// Fits the model to `rows`, a row-major matrix of `rows.len() / n_features` rows.
    ///
    /// Errors: invalid parameters or `n_features == 0` ([`ModelError::InvalidParameter`]); no rows
    /// ([`ModelError::NotEnoughData`]); a length that is not a multiple of `n_features`
    /// ([`ModelError::WidthMismatch`], `got` = the length of the incomplete last row); a NaN or
    /// infinite entry ([`ModelError::NonFinite`], its index in `rows`); `Gamma::Scale` on data
    /// whose variance overflows or underflows γ ([`ModelError::Numerical`]).
    pub fn fit(&self, rows: &[f64], n_features: usize) -> Result<OneClassSvm, ModelError> {
        self.validate()?;
        if n_features == 0 {
            return Err(ModelError::InvalidParameter {
                name: "n_features",
                reason: "must be >= 1".to_string(),
            });
        }
        if !rows.len().is_multiple_of(n_features) {
            return Err(ModelError::WidthMismatch {
                expected: n_features,
                got: rows.len() % n_features,
            });
        }
        let n_rows = rows.len() / n_features;
        if n_rows == 0 {
            return Err(ModelError::NotEnoughData { needed: 1, got: 0 });
        }
        if let Some(index) = rows.iter().position(|v| !v.is_finite()) {
            return Err(ModelError::NonFinite { index });
        }

        let x = self.training_rows(rows, n_features, n_rows);
        let l = x.len() / n_features;
        let gamma = self.gamma_value(&x, n_features)?;
        let budget = self.kernel_cache_mb.saturating_mul(1 << 20);
        let mut kernel = KernelRows::new(&x, n_features, gamma, budget);
        let solution = solve(&mut kernel, self.nu, self.tol, self.max_iter);

        let mut support_vectors = Vec::new();
        let mut coef = Vec::new();
        for (row, &a) in x.chunks_exact(n_features).zip(&solution.alpha) {
            if a > 0.0 {
                support_vectors.extend_from_slice(row);
                coef.push(a);
            }
        }
        Ok(OneClassSvm {
            n_features,
            gamma,
            rho: solution.rho,
            support_vectors,
            coef,
            n_train: l,
            iterations: solution.iterations,
            converged: solution.converged,
        })
    }

    /// The rows training uses: all of them, or a seeded subsample kept in input order.
    fn training_rows(&self, rows: &[f64], d: usize, n_rows: usize) -> Vec<f64> {
        if n_rows <= self.max_train_rows {
            return rows.to_vec();
        }
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        let mut picked = rand::seq::index::sample(&mut rng, n_rows, self.max_train_rows).into_vec();
        picked.sort_unstable();
        let mut x = Vec::with_capacity(picked.len() * d);
        for i in picked {
            x.extend_from_slice(&rows[i * d..(i + 1) * d]);
        }
        x
    }

    /// γ for the training matrix `x` (already checked finite and non-empty).
    fn gamma_value(&self, x: &[f64], d: usize) -> Result<f64, ModelError> {
        match self.gamma {
            Gamma::Value(g) => Ok(g),
            Gamma::Auto => Ok(1.0 / d as f64),
            Gamma::Scale => {
                // Two passes: the one-pass E[x²] − E[x]² loses every digit on large offsets.
                let n = x.len() as f64;
                let mean = x.iter().sum::<f64>() / n;
                let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
                if var == 0.0 {
                    // scikit-learn's choice for constant data.
                    return Ok(1.0);
                }
                let g = 1.0 / (d as f64 * var);
                if g.is_finite() && g > 0.0 {
                    Ok(g)
                } else {
                    Err(ModelError::Numerical(format!(
                        "gamma='scale' is undefined: the variance of the data is {var:e}"
                    )))
                }
            }
        }
    }
}

impl OneClassSvm {
    /// `f(x) = Σ αᵢ K(xᵢ, x) − ρ`, scikit-learn's `decision_function`: positive inside the
    /// learned region, negative outside.
    ///
    /// A row that cannot be scored (wrong width, or a NaN or infinite entry) gets `−ρ`, the value
    /// of a point infinitely far from every support vector, the most outlying score there is.
    pub fn decision_function(&self, row: &[f64]) -> f64 {
        if self.n_features == 0
            || row.len() != self.n_features
            || row.iter().any(|v| !v.is_finite())
        {
            return -self.rho;
        }
        let mut sum = 0.0;
        for (sv, &a) in self
            .support_vectors
            .chunks_exact(self.n_features)
            .zip(&self.coef)
        {
            sum += a * rbf(sv, row, self.gamma);
        }
        sum - self.rho
    }

    /// Scores each `n_features`-wide row of the row-major `rows` into `out` (cleared first), as
    /// [`Self::decision_function`] does; an incomplete last row gets the same fallback.
    pub fn decision_batch(&self, rows: &[f64], out: &mut Vec<f64>) {
        out.clear();
        if self.n_features == 0 {
            return;
        }
        out.extend(
            rows.chunks(self.n_features)
                .map(|row| self.decision_function(row)),
        );
    }

    /// Number of support vectors (training rows with αᵢ > 0).
    pub fn n_support(&self) -> usize {
        self.coef.len()
    }

    /// The offset ρ; scikit-learn's `offset_`.
    pub fn rho(&self) -> f64 {
        self.rho
    }

    /// The kernel width γ the model was fitted with (after resolving `Scale` / `Auto`).
    pub fn gamma(&self) -> f64 {
        self.gamma
    }

    /// Width of the rows the model scores.
    pub fn n_features(&self) -> usize {
        self.n_features
    }

    /// Number of rows training used (at most `max_train_rows`).
    pub fn n_train(&self) -> usize {
        self.n_train
    }

    /// SMO iterations the fit took.
    pub fn iterations(&self) -> usize {
        self.iterations
    }

    /// Whether SMO met `tol` before `max_iter`.
    pub fn converged(&self) -> bool {
        self.converged
    }
}

/// `exp(−γ‖a − b‖²)`. Differences are squared directly rather than expanded through norms, which
/// would cancel catastrophically for close points far from the origin.
/// Four partial sums let the compiler vectorise the loop (one running sum fixes the order of the
/// additions and forbids it); the result is still exactly symmetric in `a` and `b`.
fn rbf(a: &[f64], b: &[f64], gamma: f64) -> f64 {
    let mut acc = [0.0f64; 4];
    let (a4, b4) = (a.chunks_exact(4), b.chunks_exact(4));
    let (a_rest, b_rest) = (a4.remainder(), b4.remainder());
    for (x, y) in a4.zip(b4) {
        for k in 0..4 {
            let diff = x[k] - y[k];
            acc[k] += diff * diff;
        }
    }
    let mut d2 = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    for (x, y) in a_rest.iter().zip(b_rest) {
        d2 += (x - y) * (x - y);
    }
    (-gamma * d2).exp()
}

#[cfg(test)]
mod tests;
