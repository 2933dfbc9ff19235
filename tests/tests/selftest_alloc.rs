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

use lnd_api::{NetTunables, Nid};
use lnet_core::node::{LstReply, LstRequest, NetAdd, Node, NodeConfig};
use lnet_core::selftest::wire::{brw_check, Body};
use lnet_core::selftest::{NodeEntry, TestSpec, TestType};
use lnet_core::ProcessId;
use lnet_tests::plugin_build::{build_vendor_plugin, Interface};
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const KEY: u32 = 5151;

fn nodes(r: Result<LstReply, lnet_core::node::NodeError>) -> Vec<NodeEntry> {
    match r {
        Ok(LstReply::Nodes(n)) => n,
        other => panic!("expected node entries, got {other:?}"),
    }
}

/// A node with a `vnd` NI and batch `b<n>` of brw tests from the node to
/// itself, endless, `concurrency` at once.
fn node_with_batches(tests: &[(&str, TestType)], concurrency: u32) -> Node {
    let plugin = build_vendor_plugin("same", Interface::Same, "vendor-lnd", "vnd");
    let node = Node::start(NodeConfig {
        plugin_path: vec![plugin.so.parent().expect("plugin dir").to_path_buf()],
        params: Vec::new(),
        pid: 12345,
    })
    .expect("node starts");
    let own: Nid = node
        .net_add(NetAdd {
            net: "vnd".into(),
            interfaces: vec!["fab0".into()],
            tunables: NetTunables::UNSET,
            lnd_tunables: Vec::new(),
        })
        .expect("net add vnd")[0];
    node.lst(LstRequest::NewSession {
        key: KEY,
        name: "alloc".into(),
        timeout: 0,
        force: false,
        features: 1,
    })
    .expect("new_session");
    for g in ["c", "s"] {
        nodes(node.lst(LstRequest::AddGroup {
            key: KEY,
            name: g.into(),
            nodes: vec![ProcessId::lustre(own)],
        }));
    }
    for (batch, test) in tests {
        node.lst(LstRequest::AddBatch {
            key: KEY,
            name: (*batch).into(),
        })
        .expect("add_batch");
        let added = nodes(node.lst(LstRequest::AddTest {
            key: KEY,
            spec: TestSpec {
                batch: (*batch).into(),
                loop_count: -1,
                concurrency,
                dist: 1,
                span: 1,
                from: "c".into(),
                to: "s".into(),
                test: *test,
            },
        }));
        assert!(added.iter().all(NodeEntry::ok), "{added:?}");
    }
    node
}

fn wait_idle(node: &Node, batch: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let q = nodes(node.lst(LstRequest::Query {
            key: KEY,
            batch: batch.into(),
            test: 0,
            server: false,
            timeout: 5,
        }));
        if matches!(q[0].reply, Some(Body::BatchReply { active: 0, .. })) {
            return;
        }
        assert!(Instant::now() < deadline, "batch {batch} never stopped");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `batch` for a warm-up, then counts allocations and RPCs over
/// `window`; returns allocations per RPC and the RPC count.
fn allocations_per_rpc(node: &Node, batch: &str, window: Duration) -> (f64, u32) {
    nodes(node.lst(LstRequest::Run {
        key: KEY,
        batch: batch.into(),
        timeout: 0,
    }));
    std::thread::sleep(Duration::from_millis(500));
    let rpcs0 = node.selftest_counters().0.rpcs_sent;
    let region = Region::new(GLOBAL);
    std::thread::sleep(window);
    let stats = region.change();
    let rpcs = node.selftest_counters().0.rpcs_sent - rpcs0;
    nodes(node.lst(LstRequest::Stop {
        key: KEY,
        batch: batch.into(),
        force: false,
    }));
    wait_idle(node, batch);
    let allocs = stats.allocations + stats.reallocations;
    eprintln!(
        "{batch}: {rpcs} RPCs, {} allocations, {} reallocations, {} bytes",
        stats.allocations, stats.reallocations, stats.bytes_allocated
    );
    assert!(rpcs > 100, "{batch}: the batch made progress ({rpcs} RPCs)");
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
        let (per_rpc, rpcs) = allocations_per_rpc(&node, batch, Duration::from_secs(1));
        assert!(
            per_rpc == 0.0,
            "{batch}: {per_rpc:.3} heap allocations per RPC over {rpcs} RPCs"
        );
    }
    node.shutdown();
}
