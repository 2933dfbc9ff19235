//! Counting heap activity per step (`stats_alloc` as the binary's global
//! allocator), shared by the engine's allocation test and benchmark and the
//! node runtime's (lnetd's `tests/alloc.rs`, `benches/node.rs`).

#![allow(dead_code, unreachable_pub, missing_docs)]

use std::alloc::System;

use stats_alloc::{Region, StatsAlloc};

/// Heap activity per step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PerStep {
    pub allocations: f64,
    pub reallocations: f64,
    pub bytes: f64,
}

impl PerStep {
    /// New allocations of any kind (a reallocation may move the block).
    pub fn total(&self) -> f64 {
        self.allocations + self.reallocations
    }
}

/// Runs `step` `warmup` times (slabs, queues and maps reach their
/// capacity), then counts the heap activity of `n` more steps, three times
/// over, and keeps the quietest window. The counters are process-wide: a
/// one-off of another thread (the node's timer thread naming itself when it
/// first runs, late on a busy machine) lands in one window at most, while
/// anything done per message shows in all of them.
pub fn measure(
    alloc: &'static StatsAlloc<System>,
    warmup: usize,
    n: usize,
    step: &mut dyn FnMut(),
) -> PerStep {
    for _ in 0..warmup {
        step();
    }
    let mut best: Option<PerStep> = None;
    for _ in 0..3 {
        let region = Region::new(alloc);
        for _ in 0..n {
            step();
        }
        let s = region.change();
        let k = n as f64;
        let w = PerStep {
            allocations: s.allocations as f64 / k,
            reallocations: s.reallocations as f64 / k,
            bytes: s.bytes_allocated as f64 / k,
        };
        if best.is_none_or(|b| w.total() < b.total()) {
            best = Some(w);
        }
    }
    best.expect("three windows")
}
