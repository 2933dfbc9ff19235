//! Long streams of messages over the `lo` LND through the node runtime. The
//! lo LND parses inside `send` and finalizes inside `recv`, so a completion
//! that starts the next send used to nest one level deeper on the stack for
//! every message (a selftest batch over lo overflowed it), and a control
//! request that started such a chain would have run it forever. The runtime
//! hands that nested work to its executor thread.

use std::time::{Duration, Instant};

use lnd_api::{NetTunables, Nid};
use lnet_core::node::{LstReply, LstRequest, NetAdd, Node, NodeConfig};
use lnet_core::selftest::wire::{brw_check, Body};
use lnet_core::selftest::{NodeEntry, Targets, TestSpec, TestType};
use lnet_core::ProcessId;
use lnet_tests::plugin_build::{build_vendor_plugin, Interface};

const KEY: u32 = 4242;

fn nodes(r: Result<LstReply, lnet_core::node::NodeError>) -> Vec<NodeEntry> {
    match r {
        Ok(LstReply::Nodes(n)) => n,
        other => panic!("expected node entries, got {other:?}"),
    }
}

/// A node with one `vnd` NI (a session needs a NID other than 0@lo; messages
/// to the node's own NID take the lo LND), and a brw write test from the
/// node to itself. Loading the plugin checks its layout with abi_stable's
/// recursive checker: the caller does this on the test's ordinary stack.
fn node_with_test(loop_count: i32) -> Node {
    static DIR: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    let dir = DIR
        .get_or_init(|| {
            let plugin = build_vendor_plugin("same", Interface::Same, "vendor-lnd", "vnd");
            plugin.so.parent().expect("plugin dir").to_path_buf()
        })
        .clone();
    let node = Node::start(NodeConfig {
        plugin_path: vec![dir],
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
        name: "lo".into(),
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
    let added = nodes(node.lst(LstRequest::AddTest {
        key: KEY,
        spec: TestSpec {
            batch: "batch".into(),
            loop_count,
            concurrency: 1,
            dist: 1,
            span: 1,
            from: "c".into(),
            to: "s".into(),
            test: TestType::Brw {
                write: true,
                size: 4096,
                check: brw_check::SIMPLE,
                offset: 0,
            },
        },
    }));
    assert!(added.iter().all(NodeEntry::ok), "{added:?}");
    node
}

fn wait_idle(node: &Node, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let q = nodes(node.lst(LstRequest::Query {
            key: KEY,
            batch: "batch".into(),
            test: 0,
            server: false,
            timeout: 5,
        }));
        if matches!(q[0].reply, Some(Body::BatchReply { active: 0, .. })) {
            return;
        }
        assert!(Instant::now() < deadline, "batch never finished");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `f` on a thread with a small stack: recursion per message would
/// overflow it within a few hundred messages.
fn on_small_stack(f: impl FnOnce() + Send + 'static) {
    let t = std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(f)
        .expect("spawn");
    t.join().expect("the stream ran to completion");
}

#[test]
fn a_selftest_stream_over_lo_does_not_nest() {
    let node = node_with_test(2000);
    on_small_stack(move || {
        nodes(node.lst(LstRequest::Run {
            key: KEY,
            batch: "batch".into(),
            timeout: 0,
        }));
        wait_idle(&node, Duration::from_secs(120));
        let (srv, _) = node.selftest_counters();
        // 2000 writes of 4 KiB, plus the 12-byte destination list of the TEST
        // request (this node is also the client, and fetches it by bulk GET).
        assert_eq!(srv.bulk_get, 2000 * 4096 + 12);
        let c = nodes(node.lst(LstRequest::Stat {
            key: KEY,
            targets: Targets::Group("c".into()),
            timeout: 5,
        }));
        assert_eq!(c[0].stat().expect("client").0.brw_errors, 0);
        node.shutdown();
    });
}

#[test]
fn an_endless_batch_over_lo_leaves_the_caller_free() {
    let node = node_with_test(-1);
    on_small_stack(move || {
        let t0 = Instant::now();
        nodes(node.lst(LstRequest::Run {
            key: KEY,
            batch: "batch".into(),
            timeout: 0,
        }));
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "run returned while the batch runs on"
        );
        let first = node.selftest_counters().0.bulk_get;
        std::thread::sleep(Duration::from_millis(500));
        assert!(
            node.selftest_counters().0.bulk_get > first,
            "the batch makes progress"
        );
        nodes(node.lst(LstRequest::Stop {
            key: KEY,
            batch: "batch".into(),
            force: true,
        }));
        wait_idle(&node, Duration::from_secs(30));
        node.shutdown();
    });
}
