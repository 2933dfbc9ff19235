//! Heap allocations per selftest RPC in steady state (issue #5: no
//! per-message heap allocation in the data path), counted with a counting
//! global allocator over a brw batch that runs from a node to itself over
//! the `lo` LND: the selftest client and server, the engine, the runtime's
//! threads and the LND, all in this process.
//!
//! `stats_alloc` counts process-wide, so this binary holds a single test.
//! The vendor plugin (loaded only to give the node a NID other than 0@lo)
//! has its own allocator and carries no traffic here.

use std::alloc::System;
use std::time::{Duration, Instant};

use lnet_selftest::wire::brw_check;
use lnet_selftest::TestType;
use lnet_tests::lst::{add_test, nodes, session, vnd_node, wait_idle};
use lnet_tests::wait_until;
use lnetd::node::{LstRequest, Node};
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const KEY: u32 = 5151;

/// A node with a `vnd` NI and one endless batch per test, from the node to
/// itself, `concurrency` at once.
fn node_with_batches(tests: &[(&str, TestType)], concurrency: u32) -> Node {
    let (node, own) = vnd_node(Vec::new());
    session(&node, KEY, "alloc", own, own);
    for (batch, test) in tests {
        node.lst(LstRequest::AddBatch {
            key: KEY,
            name: (*batch).into(),
        })
        .expect("add_batch");
        add_test(&node, KEY, batch, -1, concurrency, *test);
    }
    node
}

/// RPCs of the warm-up (buffers and pools grow to the batch's concurrency)
/// and of the counted window.
const WARM_UP: u32 = 100;
const WINDOW: u32 = 200;

/// RPCs `batch` has sent so far (reading the counters allocates nothing).
fn rpcs_sent(node: &Node) -> u32 {
    node.selftest_counters().0.rpcs_sent
}

/// Runs `batch` for a warm-up of [`WARM_UP`] RPCs, then counts allocations
/// over the next [`WINDOW`] RPCs or more; returns allocations per RPC and
/// the RPC count. Counted in RPCs, not seconds, so that a loaded machine
/// only makes it slower.
fn allocations_per_rpc(node: &Node, batch: &str) -> (f64, u32) {
    nodes(node.lst(LstRequest::Run {
        key: KEY,
        batch: batch.into(),
        timeout: 0,
    }));
    let start = rpcs_sent(node);
    wait_until(
        &format!("{batch}: {WARM_UP} RPCs of warm-up"),
        Duration::from_secs(120),
        || rpcs_sent(node) - start >= WARM_UP,
    );
    let rpcs0 = rpcs_sent(node);
    let region = Region::new(GLOBAL);
    // Polled by hand: wait_for's messages would be counted as allocations.
    let deadline = Instant::now() + Duration::from_secs(120);
    while rpcs_sent(node) - rpcs0 < WINDOW {
        assert!(
            Instant::now() < deadline,
            "{batch}: only {} RPCs in 120 s",
            rpcs_sent(node) - rpcs0
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let stats = region.change();
    let rpcs = rpcs_sent(node) - rpcs0;
    nodes(node.lst(LstRequest::Stop {
        key: KEY,
        batch: batch.into(),
        force: false,
    }));
    wait_idle(node, KEY, batch, Duration::from_secs(30));
    let allocs = stats.allocations + stats.reallocations;
    eprintln!(
        "{batch}: {rpcs} RPCs, {} allocations, {} reallocations, {} bytes",
        stats.allocations, stats.reallocations, stats.bytes_allocated
    );
    (allocs as f64 / f64::from(rpcs), rpcs)
}

#[test]
fn selftest_rpcs_allocate_nothing_in_steady_state() {
    let brw = |write, size, check| TestType::Brw {
        write,
        size,
        check,
        offset: 0,
    };
    let node = node_with_batches(
        &[
            ("write", brw(true, 1 << 20, brw_check::NONE)),
            ("read", brw(false, 4096, brw_check::SIMPLE)),
            ("ping", TestType::Ping),
        ],
        8,
    );
    for batch in ["write", "read", "ping"] {
        let (per_rpc, rpcs) = allocations_per_rpc(&node, batch);
        assert!(
            per_rpc == 0.0,
            "{batch}: {per_rpc:.3} heap allocations per RPC over {rpcs} RPCs"
        );
    }
    node.shutdown();
}
