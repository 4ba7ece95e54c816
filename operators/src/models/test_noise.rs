//! Seeded noise for the models' unit tests: the same small pseudo-random sequence everywhere, so
//! a planted anomaly stands out from a background every test shares.

/// A value in [−0.5, 0.5) for step `i`, from a 64-bit linear congruential generator (Knuth's
/// MMIX constants); the same `i` always gives the same value.
pub fn noise(i: usize) -> f64 {
    let s = (i as u64)
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    ((s >> 33) as f64 / (1u64 << 31) as f64) - 0.5
}
