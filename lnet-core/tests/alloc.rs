//! No heap allocation per message in steady state (issues #3 and #5): the
//! engine's PUT, PUT+ACK and GET+REPLY paths and forwarding through a
//! router, counted with a counting global allocator (the node runtime with
//! the `lo` LND: lnetd's `tests/alloc.rs`).
//!
//! `stats_alloc` counts process-wide, so this binary holds a single test
//! (run alone, nothing else allocates meanwhile).
//!
//! Nothing allocates per message, with or without a payload: the LND gets
//! its payload as an `lnd_api::PayloadSpan` (lnd-api 1.1), a window into the
//! MD's shared fragment list, which costs a reference count. (Before 1.1 the
//! LND got a fragment list of its own: one allocation per hand-over.)

#[path = "pump/mod.rs"]
mod pump;

#[path = "alloc_paths/mod.rs"]
mod alloc_paths;

use std::alloc::System;

use alloc_paths::{
    check, engine_get_reply, engine_put_ack, engine_put_ack_mr, engine_put_ack_routed,
    engine_put_ack_use_once_me, engine_put_ack_window, engine_put_receive, measure,
};
use stats_alloc::{StatsAlloc, INSTRUMENTED_SYSTEM};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const WARMUP: usize = 200;
const STEPS: usize = 1000;

#[test]
fn steady_state_message_paths_allocate_nothing() {
    // One engine receiving a PUT.
    check(
        "engine PUT receive, 4096 B",
        measure(GLOBAL, WARMUP, STEPS, &mut engine_put_receive(4096)),
        0.0,
    );
    check(
        "engine PUT receive, 0 B",
        measure(GLOBAL, WARMUP, STEPS, &mut engine_put_receive(0)),
        0.0,
    );
    // PUT + ACK between two engines (pump included).
    check(
        "engine PUT+ACK round trip, 4096 B",
        measure(GLOBAL, WARMUP, STEPS, &mut engine_put_ack(4096)),
        0.0,
    );
    check(
        "engine PUT+ACK round trip, 0 B",
        measure(GLOBAL, WARMUP, STEPS, &mut engine_put_ack(0)),
        0.0,
    );
    // A Multi-Rail peer (selection ranks its nets and NIs) and MDs of 16
    // fragments.
    check(
        "engine PUT+ACK round trip to a Multi-Rail peer, 16 x 4096 B",
        measure(GLOBAL, WARMUP, STEPS, &mut engine_put_ack_mr(16 * 4096, 16)),
        0.0,
    );
    // A use-once ME and MD per PUT on the target, over a buffer the
    // application keeps as a span.
    check(
        "engine PUT+ACK round trip into a use-once ME+MD, 4096 B",
        measure(GLOBAL, WARMUP, STEPS, &mut engine_put_ack_use_once_me(4096)),
        0.0,
    );
    // 64 PUTs in flight at once (64 response trackers armed together).
    check(
        "engine 64 PUT+ACK round trips in flight, 4096 B",
        measure(GLOBAL, 20, 100, &mut engine_put_ack_window(4096, 64)),
        0.0,
    );
    // GET + REPLY.
    check(
        "engine GET+REPLY round trip, 4096 B",
        measure(GLOBAL, WARMUP, STEPS, &mut engine_get_reply(4096)),
        0.0,
    );
    // Through a router (issue 13): the PUT and its ACK are received into
    // router buffers (tiny, small, large pools) and forwarded from them.
    for len in [0, 4096, 65536] {
        check(
            &format!("engine PUT+ACK through a router, {len} B"),
            measure(GLOBAL, WARMUP, STEPS, &mut engine_put_ack_routed(len)),
            0.0,
        );
    }
}
