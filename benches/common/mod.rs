//! Seeded numbers for the benches: splitmix64 (Steele, Lea & Flood 2014), so every bench builds
//! the same inputs from its seed without an RNG dependency in the root crate.

// Each bench includes this module and uses only the draws it needs.
#![allow(dead_code)]

use operators::series::mix64;

/// A splitmix64 stream; the seed is its starting state.
pub struct SplitMix(pub u64);

impl SplitMix {
    /// The next 64 random bits: the finaliser of the state, which then steps by the golden
    /// ratio increment that `mix64` adds.
    pub fn next_u64(&mut self) -> u64 {
        let out = mix64(self.0);
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        out
    }

    /// Uniform in [0, 1) from the top 53 bits.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [0, 1) from the top 24 bits, every value exact in `f32`.
    pub fn unit_f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }

    /// Uniform in (0, 1], so its logarithm is finite.
    pub fn unit_open_at_zero(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 1.0) / (1u64 << 53) as f64
    }

    /// Standard normal by Box–Muller.
    pub fn normal(&mut self) -> f64 {
        let (u, v) = (self.unit_open_at_zero(), self.unit_open_at_zero());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
}
