//! The monotonic clock read the cheap way: one `clock_gettime(2)`
//! (`CLOCK_MONOTONIC`, the clock of `std::time::Instant` on Linux) made
//! into nanoseconds with one multiply-add. `Instant::now()` followed by
//! `duration_since` costs a checked subtraction and a `Duration` on top
//! (about 60 instructions); a host reads the clock on every LND call, so
//! several times per message (issue 17). Plain Rust for the host's and a
//! plugin's own code: nothing here crosses the ABI.

/// Nanoseconds of the monotonic clock (since an arbitrary point before
/// the process started; never goes back).
#[cfg(all(target_os = "linux", target_pointer_width = "64"))]
#[must_use]
#[inline]
pub fn monotonic_ns() -> u64 {
    /// `struct timespec` of 64-bit Linux.
    #[repr(C)]
    struct Timespec {
        tv_sec: i64,
        tv_nsec: i64,
    }
    extern "C" {
        // libc's clock_gettime(2) wrapper (std links libc; the vDSO
        // answers it without entering the kernel).
        fn clock_gettime(clock: i32, tp: *mut Timespec) -> i32;
    }
    /// `CLOCK_MONOTONIC` on Linux.
    const CLOCK_MONOTONIC: i32 = 1;
    let mut ts = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable `struct timespec` for the whole
    // call; the clock id is valid, so the call cannot fail (it would leave
    // `ts` zero, still a valid time).
    unsafe { clock_gettime(CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64)
        .wrapping_mul(1_000_000_000)
        .wrapping_add(ts.tv_nsec as u64)
}

/// Nanoseconds of the monotonic clock (elsewhere: since the first call).
#[cfg(not(all(target_os = "linux", target_pointer_width = "64")))]
#[must_use]
pub fn monotonic_ns() -> u64 {
    static ORIGIN: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    ORIGIN
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_nanos() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    /// It never goes back and is `std::time::Instant`'s clock: read
    /// between two `Instant`s, an interval lies within theirs (nested
    /// reads, so no slack is needed however loaded the machine).
    #[test]
    fn monotonic_and_in_step_with_std() {
        use std::time::Instant;
        let pre = Instant::now();
        let a = monotonic_ns();
        let in_a = Instant::now();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let in_b = Instant::now();
        let b = monotonic_ns();
        let post = Instant::now();
        assert!(b >= a);
        let ours = u128::from(b - a);
        assert!(ours >= 20_000_000, "{ours} ns for a 20 ms sleep");
        assert!(ours >= (in_b - in_a).as_nanos(), "{ours} ns");
        assert!(ours <= (post - pre).as_nanos(), "{ours} ns");
        let mut last = monotonic_ns();
        for _ in 0..1000 {
            let t = monotonic_ns();
            assert!(t >= last);
            last = t;
        }
    }
}
