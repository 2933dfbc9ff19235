//! The fabric's random numbers and seeds: a small, dependency-free PRNG
//! (SplitMix64) whose whole state is one `u64`, so a run is fixed by its seed.

use std::fmt;

/// Environment variable that overrides every scenario's default seed.
pub const SEED_ENV: &str = "LNET_SIM_SEED";

/// A seeded pseudo-random generator (SplitMix64). Not for cryptography; it
/// is here to make "random" faults reproducible.
#[derive(Clone, Debug)]
pub struct Rng {
    state: u64,
}

impl Rng {
    /// A generator started from `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform value in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// A uniform value in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// `true` with probability `p`. Draws nothing when `p <= 0` or `p >= 1`,
    /// so a fault-free link consumes no randomness.
    pub fn chance(&mut self, p: f64) -> bool {
        if p <= 0.0 {
            false
        } else if p >= 1.0 {
            true
        } else {
            self.unit() < p
        }
    }
}

/// The seed of a scenario: `LNET_SIM_SEED` (decimal or `0x` hex) when set,
/// else `default` (each test picks its own fixed default).
///
/// Panics with a message saying what to fix when the variable is not a number.
pub fn seed_from_env(default: u64) -> u64 {
    match std::env::var(SEED_ENV) {
        Ok(v) => parse_seed(&v).unwrap_or_else(|| {
            panic!("{SEED_ENV}={v:?} is not a seed: give a decimal or 0x-prefixed hex u64")
        }),
        Err(_) => default,
    }
}

fn parse_seed(s: &str) -> Option<u64> {
    let s = s.trim();
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

/// Prints the seed when dropped during a panic, so a failing scenario can be
/// replayed: `sim seed: N (rerun with LNET_SIM_SEED=N)`.
///
/// A [`crate::sim::Fabric`] holds one; a test that uses several fabrics or
/// derives seeds itself can hold its own.
pub struct SeedGuard {
    seed: u64,
}

impl SeedGuard {
    /// A guard for `seed`.
    pub fn new(seed: u64) -> SeedGuard {
        SeedGuard { seed }
    }

    /// The seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }
}

impl fmt::Debug for SeedGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SeedGuard({})", self.seed)
    }
}

impl Drop for SeedGuard {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("sim seed: {s} (rerun with {SEED_ENV}={s})", s = self.seed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream() {
        let mut a = Rng::new(42);
        let mut b = Rng::new(42);
        let mut c = Rng::new(43);
        let xa: Vec<u64> = (0..8).map(|_| a.next_u64()).collect();
        let xb: Vec<u64> = (0..8).map(|_| b.next_u64()).collect();
        let xc: Vec<u64> = (0..8).map(|_| c.next_u64()).collect();
        assert_eq!(xa, xb);
        assert_ne!(xa, xc);
    }

    #[test]
    fn ranges_hold() {
        let mut r = Rng::new(7);
        for _ in 0..1000 {
            assert!(r.below(10) < 10);
            let u = r.unit();
            assert!((0.0..1.0).contains(&u));
        }
        assert_eq!(r.below(0), 0);
        let before = r.clone().next_u64();
        assert!(!r.chance(0.0));
        assert!(r.chance(1.0));
        assert_eq!(r.next_u64(), before, "certain outcomes draw nothing");
        let hits = (0..10_000).filter(|_| r.chance(0.25)).count();
        assert!((2_000..3_000).contains(&hits), "{hits}");
    }

    #[test]
    fn seeds_parse() {
        assert_eq!(parse_seed("12"), Some(12));
        assert_eq!(parse_seed(" 0x1f "), Some(31));
        assert_eq!(parse_seed("x"), None);
    }
}
