//! An exponentially weighted mean and variance that one outlier cannot drag: the reference of
//! the EWMA chart ([`super::ewma`]) and of CUSUM ([`super::cusum`]).
//!
//! Each new value weighs `max(α, 1/n)`, so until `1/α` values are seen the estimate is a plain
//! mean and variance (no bias towards the first value). Once past the warm-up, the step towards
//! a value is clamped to a number of σ: an outlier counts as a value that far out, not as itself
//! (the robust-filter idea of Huber's M-estimators applied to an EWMA).

use serde::{Deserialize, Serialize};

use super::deviation::scale_floor;

/// Running moments of one feature of one series.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EwmaMoments {
    mean: f64,
    var: f64,
    seen: u64,
}

impl EwmaMoments {
    /// The weighted mean so far (0 before any value).
    pub fn mean(&self) -> f64 {
        self.mean
    }

    /// Values learned so far.
    pub fn seen(&self) -> u64 {
        self.seen
    }

    /// The weighted standard deviation, at least `min_relative_scale` of the mean's size (see
    /// [`scale_floor`]), so a flat series does not call every wobble infinitely far.
    pub fn sigma(&self, min_relative_scale: f64) -> f64 {
        self.var
            .sqrt()
            .max(scale_floor(self.mean, min_relative_scale))
    }

    /// Learns `value` with weight `max(alpha, 1/n)`; once more than `warmup_len` values are
    /// seen, the step is clamped to `clamp_sigmas` times `sigma` (the σ the value was judged
    /// against).
    pub fn learn(
        &mut self,
        value: f64,
        alpha: f64,
        warmup_len: usize,
        clamp_sigmas: f64,
        sigma: f64,
    ) {
        self.seen += 1;
        if self.seen == 1 {
            self.mean = value;
            return;
        }
        let alpha = alpha.max(1.0 / self.seen as f64);
        let mut delta = value - self.mean;
        if self.seen > warmup_len as u64 {
            let limit = clamp_sigmas * sigma;
            delta = delta.clamp(-limit, limit);
        }
        self.mean += alpha * delta;
        self.var = (1.0 - alpha) * (self.var + alpha * delta * delta);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_mean_while_warming_then_outliers_are_clamped() {
        let mut m = EwmaMoments::default();
        for v in [1.0, 2.0, 3.0] {
            let s = m.sigma(0.0);
            m.learn(v, 0.1, 10, 3.0, s);
        }
        assert!((m.mean() - 2.0).abs() < 1e-12, "{}", m.mean());
        for i in 0..200 {
            let v = 10.0 + if i % 2 == 0 { 0.5 } else { -0.5 };
            let s = m.sigma(0.0);
            m.learn(v, 0.1, 10, 3.0, s);
        }
        let (before, s) = (m.mean(), m.sigma(0.0));
        m.learn(1e6, 0.1, 10, 3.0, s);
        assert!((m.mean() - before).abs() <= 0.1 * 3.0 * s + 1e-9);
        assert_eq!(m.seen(), 204);
    }
}
