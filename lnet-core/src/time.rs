//! Time as the engine sees it: a monotonic [`Instant`] the caller supplies.
//!
//! The engine never reads a clock (STYLE §1); every input carries `now`. An
//! [`Instant`] counts nanoseconds since an arbitrary origin chosen by the
//! runtime (or by the simulated clock of a test). The engine's pending
//! timers live in a [`TimerQueue`].

use std::hash::Hash;

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

/// The set of armed timers, `(deadline, what)` pairs, earliest first (ties
/// in the order of `what`), as a binary heap with an index of each pair's
/// place. Arming, disarming any pair and taking the earliest are O(log n);
/// once the heap and the index have grown to the largest number of timers
/// armed at once, nothing allocates (a `BTreeSet` allocates and frees
/// nodes as it grows and shrinks, i.e. per message when many are in
/// flight).
#[derive(Debug)]
pub(crate) struct TimerQueue<T> {
    heap: Vec<(Instant, T)>,
    place: crate::hash::FastMap<(Instant, T), usize>,
}

impl<T> Default for TimerQueue<T> {
    fn default() -> Self {
        TimerQueue {
            heap: Vec::new(),
            place: crate::hash::FastMap::default(),
        }
    }
}

impl<T: Copy + Ord + Hash> TimerQueue<T> {
    /// Arms `what` at `at`; arming a pair already armed does nothing.
    pub(crate) fn insert(&mut self, at: Instant, what: T) {
        let key = (at, what);
        if self.place.contains_key(&key) {
            return;
        }
        let i = self.heap.len();
        self.heap.push(key);
        self.place.insert(key, i);
        self.sift_up(i);
    }

    /// Disarms the pair; returns whether it was armed.
    pub(crate) fn remove(&mut self, at: Instant, what: T) -> bool {
        let Some(i) = self.place.remove(&(at, what)) else {
            return false;
        };
        let last = self.heap.len() - 1;
        self.heap.swap(i, last);
        self.heap.pop();
        if i < last {
            // The former last entry fills the hole: move it where it belongs.
            self.set_place(i);
            let i = self.sift_up(i);
            self.sift_down(i);
        }
        true
    }

    /// The earliest pair.
    pub(crate) fn first(&self) -> Option<(Instant, T)> {
        self.heap.first().copied()
    }

    /// Takes the earliest pair.
    pub(crate) fn pop_first(&mut self) -> Option<(Instant, T)> {
        let first = self.first()?;
        self.remove(first.0, first.1);
        Some(first)
    }

    /// Number of armed timers.
    pub(crate) fn len(&self) -> usize {
        self.heap.len()
    }

    fn set_place(&mut self, i: usize) {
        if let Some(p) = self.place.get_mut(&self.heap[i]) {
            *p = i;
        }
    }

    fn swap(&mut self, a: usize, b: usize) {
        self.heap.swap(a, b);
        self.set_place(a);
        self.set_place(b);
    }

    fn sift_up(&mut self, mut i: usize) -> usize {
        while i > 0 {
            let parent = (i - 1) / 2;
            if self.heap[i] >= self.heap[parent] {
                break;
            }
            self.swap(i, parent);
            i = parent;
        }
        i
    }

    fn sift_down(&mut self, mut i: usize) {
        loop {
            let (l, r) = (2 * i + 1, 2 * i + 2);
            let mut least = i;
            if l < self.heap.len() && self.heap[l] < self.heap[least] {
                least = l;
            }
            if r < self.heap.len() && self.heap[r] < self.heap[least] {
                least = r;
            }
            if least == i {
                return;
            }
            self.swap(i, least);
            i = least;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    proptest! {
        /// The queue behaves as the ordered set it replaces.
        #[test]
        fn timer_queue_is_an_ordered_set(
            ops in proptest::collection::vec((0u8..4, 0u64..20, 0u32..6), 0..300)
        ) {
            let mut q = TimerQueue::default();
            let mut model = BTreeSet::new();
            for (op, at, what) in ops {
                let at = Instant(at);
                match op {
                    0 | 1 => {
                        q.insert(at, what);
                        model.insert((at, what));
                    }
                    2 => prop_assert_eq!(q.remove(at, what), model.remove(&(at, what))),
                    _ => prop_assert_eq!(q.pop_first(), model.pop_first()),
                }
                prop_assert_eq!(q.first(), model.first().copied());
                prop_assert_eq!(q.len(), model.len());
            }
            while let Some(x) = model.pop_first() {
                prop_assert_eq!(q.pop_first(), Some(x));
            }
            prop_assert_eq!(q.pop_first(), None);
        }
    }

    #[test]
    fn timer_queue_orders_ties_by_key_and_ignores_duplicates() {
        let mut q = TimerQueue::default();
        q.insert(Instant(5), 2u32);
        q.insert(Instant(5), 1);
        q.insert(Instant(3), 9);
        q.insert(Instant(5), 1);
        assert_eq!(q.len(), 3);
        assert!(!q.remove(Instant(4), 9));
        assert_eq!(q.pop_first(), Some((Instant(3), 9)));
        assert_eq!(q.pop_first(), Some((Instant(5), 1)));
        assert_eq!(q.pop_first(), Some((Instant(5), 2)));
        assert_eq!(q.pop_first(), None);
    }

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
