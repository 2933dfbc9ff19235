//! Time as the engine sees it: a monotonic [`Instant`] the caller supplies.
//!
//! The engine never reads a clock (STYLE §1); every input carries `now`. An
//! [`Instant`] counts nanoseconds since an arbitrary origin chosen by the
//! runtime (or by the simulated clock of a test).

pub use std::time::Duration;

/// Monotonic nanoseconds since an arbitrary origin; the caller supplies it.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default)]
pub struct Instant(pub u64);

impl Instant {
    /// The origin.
    pub const ZERO: Instant = Instant(0);

    /// An instant `secs` seconds after the origin.
    pub const fn from_secs(secs: u64) -> Instant {
        Instant(secs.saturating_mul(1_000_000_000))
    }

    /// An instant `ms` milliseconds after the origin.
    pub const fn from_millis(ms: u64) -> Instant {
        Instant(ms.saturating_mul(1_000_000))
    }

    /// Nanoseconds since the origin.
    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    /// `self + d`, saturating at the far future.
    pub fn saturating_add(self, d: Duration) -> Instant {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        Instant(self.0.saturating_add(ns))
    }

    /// Time elapsed from `earlier` to `self`; zero if `earlier` is later.
    pub fn since(self, earlier: Instant) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates() {
        let t = Instant::from_secs(2);
        assert_eq!(
            t.saturating_add(Duration::from_millis(500)),
            Instant(2_500_000_000)
        );
        assert_eq!(
            Instant(u64::MAX - 1).saturating_add(Duration::from_secs(1)),
            Instant(u64::MAX)
        );
        assert_eq!(t.since(Instant::from_secs(1)), Duration::from_secs(1));
        assert_eq!(Instant::from_secs(1).since(t), Duration::ZERO);
        assert_eq!(Instant::from_millis(3).as_nanos(), 3_000_000);
    }
}
