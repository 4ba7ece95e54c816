//! The exact solver behind [`super::OneClassSvm`]: SMO with second-order working-set selection
//! (Fan, Chen & Lin 2005) on the one-class dual, over kernel rows held in an LRU cache.
//!
//! Kept apart from the model so the optimisation's invariants can be read in one place.

use super::rbf;

/// Marks an empty slot or an uncached row.
const NONE: usize = usize::MAX;

/// Rows of the kernel matrix Q, computed on demand and kept in a least-recently-used cache.
pub(super) struct KernelRows<'a> {
    x: &'a [f64],
    d: usize,
    l: usize,
    gamma: f64,
    /// `capacity` rows of `l` values.
    data: Vec<f64>,
    capacity: usize,
    used: usize,
    slot_of_row: Vec<usize>,
    row_of_slot: Vec<usize>,
    last_use: Vec<u64>,
    clock: u64,
    scratch: Vec<f64>,
}

impl<'a> KernelRows<'a> {
    pub(super) fn new(x: &'a [f64], d: usize, gamma: f64, budget_bytes: usize) -> Self {
        let l = x.len() / d;
        let row_bytes = l.max(1) * std::mem::size_of::<f64>();
        // Two rows are the least SMO needs at once (the pair it updates).
        let capacity = (budget_bytes / row_bytes).clamp(2, l.max(2));
        Self {
            x,
            d,
            l,
            gamma,
            data: vec![0.0; capacity * l],
            capacity,
            used: 0,
            slot_of_row: vec![NONE; l],
            row_of_slot: vec![NONE; capacity],
            last_use: vec![0; capacity],
            clock: 0,
            scratch: vec![0.0; l],
        }
    }

    /// Caches row `i` and returns its slot. The slot returned by the previous call is never
    /// evicted, since it is the most recently used and there are at least two slots.
    pub(super) fn load(&mut self, i: usize) -> usize {
        self.clock += 1;
        let cached = self.slot_of_row[i];
        if cached != NONE {
            self.last_use[cached] = self.clock;
            return cached;
        }
        let slot = if self.used < self.capacity {
            self.used += 1;
            self.used - 1
        } else {
            let mut lru = 0;
            for s in 1..self.capacity {
                if self.last_use[s] < self.last_use[lru] {
                    lru = s;
                }
            }
            lru
        };
        let evicted = self.row_of_slot[slot];
        if evicted != NONE {
            self.slot_of_row[evicted] = NONE;
        }
        let (l, d) = (self.l, self.d);
        let xi = &self.x[i * d..(i + 1) * d];
        for t in 0..l {
            // Q is symmetric (the squared differences are exactly so), so a cached row t already
            // holds Q_ti.
            let st = self.slot_of_row[t];
            self.scratch[t] = if st != NONE {
                self.data[st * l + i]
            } else {
                rbf(xi, &self.x[t * d..(t + 1) * d], self.gamma)
            };
        }
        self.data[slot * l..(slot + 1) * l].copy_from_slice(&self.scratch);
        self.row_of_slot[slot] = i;
        self.slot_of_row[i] = slot;
        self.last_use[slot] = self.clock;
        slot
    }

    pub(super) fn slot(&self, slot: usize) -> &[f64] {
        &self.data[slot * self.l..(slot + 1) * self.l]
    }
}

/// What SMO returns: the dual solution and the offset.
pub(super) struct Solution {
    pub(super) alpha: Vec<f64>,
    pub(super) rho: f64,
    pub(super) iterations: usize,
    pub(super) converged: bool,
}

/// Fan, Chen & Lin (2005) use τ = 1e-12 in place of a non-positive curvature `a_ij`, which here
/// happens only for duplicate rows (K_ij = 1).
const TAU: f64 = 1e-12;

/// SMO on the one-class dual. All labels are +1, so with G = Qα (the gradient; there is no linear
/// term) the "up" set is {αₜ < 1}, the "low" set is {αₜ > 0}, and KKT optimality is
/// `max_low G ≤ ρ ≤ min_up G`.
pub(super) fn solve(kernel: &mut KernelRows<'_>, nu: f64, tol: f64, max_iter: usize) -> Solution {
    let l = kernel.l;
    let total = nu * l as f64;
    // A feasible start: the first ⌊νl⌋ coefficients at 1 and the remainder on the next one
    // (LIBSVM's start, which also makes the choice among equal optima match scikit-learn's).
    let mut alpha = vec![0.0; l];
    let n_full = (total.floor() as usize).min(l);
    alpha[..n_full].fill(1.0);
    if n_full < l {
        alpha[n_full] = total - n_full as f64;
    }
    let mut grad = vec![0.0; l];
    for (i, &a) in alpha.iter().enumerate() {
        if a > 0.0 {
            let s = kernel.load(i);
            for (g, q) in grad.iter_mut().zip(kernel.slot(s)) {
                *g += a * q;
            }
        }
    }

    let mut iterations = 0;
    let mut converged = false;
    while iterations < max_iter {
        // i: the most violating "up" index, argmin G over αₜ < 1 (ties go to the last index).
        let mut i = NONE;
        let mut g_up = f64::INFINITY;
        for (t, (&a, &g)) in alpha.iter().zip(&grad).enumerate() {
            if a < 1.0 && g <= g_up {
                g_up = g;
                i = t;
            }
        }
        if i == NONE {
            // ν = 1: every αₜ is at its upper bound, the only feasible point.
            converged = true;
            break;
        }
        let si = kernel.load(i);
        let qi = kernel.slot(si);
        // j: among "low" indices that violate KKT together with i (G_t > G_i), the one whose
        // two-variable step decreases the objective most, by the second-order estimate b²/a.
        let mut j = NONE;
        let mut g_low = f64::NEG_INFINITY;
        let mut best = f64::INFINITY;
        for (t, (&a, &g)) in alpha.iter().zip(&grad).enumerate() {
            if a > 0.0 {
                g_low = g_low.max(g);
                let b = g - g_up;
                if b > 0.0 {
                    // K_ii = K_tt = 1 for the RBF kernel.
                    let curvature = 2.0 * (1.0 - qi[t]);
                    let gain = -(b * b) / if curvature > 0.0 { curvature } else { TAU };
                    if gain <= best {
                        best = gain;
                        j = t;
                    }
                }
            }
        }
        if g_low - g_up < tol || j == NONE {
            converged = true;
            break;
        }
        let q_ij = qi[j];
        // Move δ from α_j to α_i: the unconstrained minimiser along that direction is b / a,
        // clipped so both stay in [0, 1]. A clipped coordinate is set to its bound exactly so the
        // bound tests above stay exact.
        let curvature = 2.0 * (1.0 - q_ij);
        let step = (grad[j] - grad[i]) / if curvature > 0.0 { curvature } else { TAU };
        let (room_i, room_j) = (1.0 - alpha[i], alpha[j]);
        let (new_i, new_j) = if step < room_i.min(room_j) {
            (alpha[i] + step, alpha[j] - step)
        } else if room_i <= room_j {
            (1.0, (alpha[j] - room_i).max(0.0))
        } else {
            ((alpha[i] + room_j).min(1.0), 0.0)
        };
        let (di, dj) = (new_i - alpha[i], new_j - alpha[j]);
        alpha[i] = new_i;
        alpha[j] = new_j;
        let si = kernel.load(i);
        let sj = kernel.load(j);
        let (qi, qj) = (kernel.slot(si), kernel.slot(sj));
        for ((g, a), b) in grad.iter_mut().zip(qi).zip(qj) {
            *g += a * di + b * dj;
        }
        iterations += 1;
    }

    let rho = offset(&alpha, &grad);
    Solution {
        alpha,
        rho,
        iterations,
        converged,
    }
}

/// ρ from the KKT conditions: the mean gradient of the free coefficients (each equals ρ at the
/// optimum); without free ones, the middle of `[max G over α=1, min G over α=0]`. When one side
/// of that interval is empty (only at ν = 1, where scikit-learn fails with an infinite offset)
/// the finite end is used, the smallest ρ the conditions allow.
fn offset(alpha: &[f64], grad: &[f64]) -> f64 {
    let (mut upper, mut lower) = (f64::INFINITY, f64::NEG_INFINITY);
    let (mut sum, mut n_free) = (0.0, 0usize);
    for (&a, &g) in alpha.iter().zip(grad) {
        if a >= 1.0 {
            lower = lower.max(g);
        } else if a <= 0.0 {
            upper = upper.min(g);
        } else {
            sum += g;
            n_free += 1;
        }
    }
    if n_free > 0 {
        sum / n_free as f64
    } else if upper.is_finite() && lower.is_finite() {
        (upper + lower) / 2.0
    } else if lower.is_finite() {
        lower
    } else {
        upper
    }
}
