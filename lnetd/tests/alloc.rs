//! No heap allocation per message in steady state through the node runtime
//! (issues #3 and #5): its application API and the `lo` LND, counted with a
//! counting global allocator (the engine's own paths: lnet-core's
//! `tests/alloc.rs`).
//!
//! `stats_alloc` counts process-wide, so this binary holds a single test
//! (run alone, nothing else allocates meanwhile; the node's timer and
//! executor threads are part of what is measured).

#[path = "node_paths/mod.rs"]
mod node_paths;

use std::alloc::System;

use node_paths::{check, measure, node_get_reply, node_put_ack};
use stats_alloc::{StatsAlloc, INSTRUMENTED_SYSTEM};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const WARMUP: usize = 200;
const STEPS: usize = 1000;

#[test]
fn steady_state_node_paths_allocate_nothing() {
    // Through the node runtime's application API and the lo LND, to our own
    // NID, waiting for the events: nothing added by the runtime (work lists,
    // executor thread, event queues).
    let (node, mut step) = node_put_ack(4096);
    check(
        "node (lo) PUT+ACK round trip, 4096 B",
        measure(GLOBAL, WARMUP, STEPS, &mut step),
        0.0,
    );
    node.shutdown();
    // 1 MiB: the copy goes to the lo LND's copy threads (started during
    // the warm-up), which finalize it.
    let (node, mut step) = node_put_ack(1 << 20);
    check(
        "node (lo) PUT+ACK round trip, 1 MiB, copy threads",
        measure(GLOBAL, WARMUP, STEPS, &mut step),
        0.0,
    );
    node.shutdown();
    let (node, mut step) = node_get_reply(4096);
    check(
        "node (lo) GET+REPLY round trip, 4096 B",
        measure(GLOBAL, WARMUP, STEPS, &mut step),
        0.0,
    );
    node.shutdown();
}
