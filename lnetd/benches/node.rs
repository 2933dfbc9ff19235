//! Node runtime benchmark: heap allocations per message through the
//! application API and the `lo` LND (the engine's own paths: lnet-core's
//! `benches/engine.rs`). Run with `cargo bench -p lnetd --bench node`.

#![allow(missing_docs)]

#[path = "../tests/node_paths/mod.rs"]
mod node_paths;

use std::alloc::System;

use criterion::{criterion_group, criterion_main, Criterion};
use stats_alloc::{StatsAlloc, INSTRUMENTED_SYSTEM};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Heap allocations per round trip on the node's steady-state paths (after a
/// warm-up); `tests/alloc.rs` asserts these numbers.
fn allocations_per_message(_c: &mut Criterion) {
    let (warmup, n) = (200, 2000);
    let report = |what: &str, step: &mut dyn FnMut()| {
        let s = node_paths::measure(GLOBAL, warmup, n, step);
        eprintln!(
            "{what}: allocations per message: {} ({} reallocations, {:.0} bytes)",
            s.allocations, s.reallocations, s.bytes
        );
    };
    let (node, mut step) = node_paths::node_put_ack(4096);
    report(
        "node + lo LND, PUT+ACK to 0@lo 4096 B (per round trip)",
        &mut step,
    );
    node.shutdown();
    let (node, mut step) = node_paths::node_get_reply(4096);
    report(
        "node + lo LND, GET+REPLY from 0@lo 4096 B (per round trip)",
        &mut step,
    );
    node.shutdown();
}

criterion_group!(benches, allocations_per_message);
criterion_main!(benches);
