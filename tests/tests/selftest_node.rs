//! LNet selftest through the node runtime: two `Node`s in one process on
//! the vendor plugin's process-local fabric, driven with `Node::lst`.

use lnd_api::{NetTunables, Nid};
use lnet_core::node::{LstReply, LstRequest, NetAdd, Node, NodeConfig};
use lnet_core::selftest::wire::{brw_check, Body};
use lnet_core::selftest::{NodeEntry, NodeState, Targets, TestSpec, TestType};
use lnet_core::ProcessId;
use lnet_tests::plugin_build::{build_vendor_plugin, Interface};

const KEY: u32 = 777;

/// The vendor plugin's directory, built once per test process (parallel
/// builds into the same scratch directory would race).
fn plugin_dir() -> std::path::PathBuf {
    static DIR: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let plugin = build_vendor_plugin("same", Interface::Same, "vendor-lnd", "vnd");
        plugin.so.parent().expect("plugin dir").to_path_buf()
    })
    .clone()
}

fn start(plugin_dir: &std::path::Path) -> (Node, Nid) {
    let node = Node::start(NodeConfig {
        plugin_path: vec![plugin_dir.to_path_buf()],
        params: vec![("rpc_timeout".into(), "10".into())],
        pid: 12345,
    })
    .expect("node starts");
    let nids = node
        .net_add(NetAdd {
            net: "vnd".into(),
            interfaces: vec!["fab0".into()],
            tunables: NetTunables::UNSET,
            lnd_tunables: Vec::new(),
        })
        .expect("net add vnd");
    (node, nids[0])
}

fn nodes(r: Result<LstReply, lnet_core::node::NodeError>) -> Vec<NodeEntry> {
    match r {
        Ok(LstReply::Nodes(n)) => n,
        other => panic!("expected node entries, got {other:?}"),
    }
}

#[test]
fn brw_write_between_two_nodes_through_the_runtime() {
    let dir = plugin_dir();
    let (a, a_nid) = start(&dir);
    let (b, b_nid) = start(&dir);
    let e = a
        .lst(LstRequest::EndSession { key: KEY })
        .expect_err("no session yet");
    assert_eq!(e.errno(), 3, "ESRCH");
    a.lst(LstRequest::NewSession {
        key: KEY,
        name: "runtime".into(),
        timeout: 0,
        force: false,
        features: 1,
    })
    .expect("new_session");
    for (g, n) in [("c", a_nid), ("s", b_nid)] {
        let e = nodes(a.lst(LstRequest::AddGroup {
            key: KEY,
            name: g.into(),
            nodes: vec![ProcessId::lustre(n)],
        }));
        assert_eq!(e[0].state, NodeState::Active, "{g}: {e:?}");
    }
    let added = nodes(a.lst(LstRequest::AddTest {
        key: KEY,
        spec: TestSpec {
            batch: "batch".into(),
            loop_count: 50,
            concurrency: 4,
            dist: 1,
            span: 1,
            from: "c".into(),
            to: "s".into(),
            test: TestType::Brw {
                write: true,
                size: 65536,
                check: brw_check::FULL,
                offset: 0,
            },
        },
    }));
    assert!(added.iter().all(NodeEntry::ok), "{added:?}");
    let before = nodes(a.lst(LstRequest::Stat {
        key: KEY,
        targets: Targets::Group("s".into()),
        timeout: 5,
    }));
    nodes(a.lst(LstRequest::Run {
        key: KEY,
        batch: "batch".into(),
        timeout: 0,
    }));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let q = nodes(a.lst(LstRequest::Query {
            key: KEY,
            batch: "batch".into(),
            test: 0,
            server: false,
            timeout: 5,
        }));
        if matches!(q[0].reply, Some(Body::BatchReply { active: 0, .. })) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "batch never finished");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let after = nodes(a.lst(LstRequest::Stat {
        key: KEY,
        targets: Targets::Group("s".into()),
        timeout: 5,
    }));
    let (_, rpc, l1) = after[0].stat().expect("server stats");
    let (_, _, l0) = before[0].stat().expect("server stats");
    assert_eq!(rpc.bulk_get, 200 * 65536, "4 units x 50 writes of 64 KiB");
    assert!(l1.recv_length - l0.recv_length >= 200 * 65536);
    let c = nodes(a.lst(LstRequest::Stat {
        key: KEY,
        targets: Targets::Group("c".into()),
        timeout: 5,
    }));
    assert_eq!(c[0].stat().expect("client").0.brw_errors, 0);
    let (srv_rpc, _) = b.selftest_counters();
    assert_eq!(srv_rpc.rpcs_dropped, 0);
    let end = nodes(a.lst(LstRequest::EndSession { key: KEY }));
    assert!(end.iter().all(NodeEntry::ok), "{end:?}");
    a.shutdown();
    b.shutdown();
}

fn query_active(a: &Node) -> u32 {
    let q = nodes(a.lst(LstRequest::Query {
        key: KEY,
        batch: "batch".into(),
        test: 0,
        server: false,
        timeout: 5,
    }));
    match q[0].reply {
        Some(Body::BatchReply { active, .. }) => active,
        _ => panic!("query failed: {q:?}"),
    }
}

#[test]
fn forever_batch_runs_until_stopped() {
    let dir = plugin_dir();
    let (a, a_nid) = start(&dir);
    let (b, b_nid) = start(&dir);
    a.lst(LstRequest::NewSession {
        key: KEY,
        name: "forever".into(),
        timeout: 0,
        force: false,
        features: 1,
    })
    .expect("new_session");
    for (g, n) in [("c", a_nid), ("s", b_nid)] {
        nodes(a.lst(LstRequest::AddGroup {
            key: KEY,
            name: g.into(),
            nodes: vec![ProcessId::lustre(n)],
        }));
    }
    for test in [
        TestType::Ping,
        TestType::Brw {
            write: false,
            size: 8192,
            check: brw_check::SIMPLE,
            offset: 64,
        },
    ] {
        let added = nodes(a.lst(LstRequest::AddTest {
            key: KEY,
            spec: TestSpec {
                batch: "batch".into(),
                loop_count: -1,
                concurrency: 2,
                dist: 1,
                span: 1,
                from: "c".into(),
                to: "s".into(),
                test,
            },
        }));
        assert!(added.iter().all(NodeEntry::ok), "{added:?}");
    }
    nodes(a.lst(LstRequest::Run {
        key: KEY,
        batch: "batch".into(),
        timeout: 0,
    }));
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(query_active(&a), 2, "both test instances run");
    let stop = nodes(a.lst(LstRequest::Stop {
        key: KEY,
        batch: "batch".into(),
        force: true,
    }));
    assert!(stop.iter().all(NodeEntry::ok), "{stop:?}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while query_active(&a) > 0 {
        assert!(std::time::Instant::now() < deadline, "batch never stopped");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let c = nodes(a.lst(LstRequest::Stat {
        key: KEY,
        targets: Targets::Group("c".into()),
        timeout: 5,
    }));
    let (fw, rpc, _) = c[0].stat().expect("client stats");
    assert_eq!(
        (fw.ping_errors, fw.brw_errors),
        (0, 0),
        "aborts are not errors"
    );
    assert!(rpc.rpcs_sent >= 4, "the tests ran: {rpc:?}");
    let (srv, _) = b.selftest_counters();
    assert!(srv.bulk_put > 0);
    nodes(a.lst(LstRequest::EndSession { key: KEY }));
    a.shutdown();
    b.shutdown();
}
