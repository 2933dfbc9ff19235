//! LNet selftest through the node runtime: two `Node`s in one process on
//! the vendor plugin's process-local fabric, driven with `Node::lst`.

use lnet_selftest::wire::brw_check;
use lnet_selftest::{NodeEntry, NodeState, Targets, TestType};
use std::time::Duration;

use lnet_tests::lst::{active, add_test, nodes, session, vnd_node, wait_idle};
use lnet_tests::{wait_for, wait_until};
use lnetd::node::{LstRequest, Node};

const KEY: u32 = 777;

fn start() -> (Node, lnet_core::lnd_api::Nid) {
    vnd_node(vec![("rpc_timeout".into(), "30".into())])
}

#[test]
fn brw_write_between_two_nodes_through_the_runtime() {
    let (a, a_nid) = start();
    let (b, b_nid) = start();
    let e = a
        .lst(LstRequest::EndSession { key: KEY })
        .expect_err("no session yet");
    assert_eq!(e.errno(), 3, "ESRCH");
    for (g, e) in ["c", "s"]
        .iter()
        .zip(session(&a, KEY, "runtime", a_nid, b_nid))
    {
        assert_eq!(e[0].state, NodeState::Active, "{g}: {e:?}");
    }
    let brw = TestType::Brw {
        write: true,
        size: 65536,
        check: brw_check::FULL,
        offset: 0,
    };
    add_test(&a, KEY, "batch", 50, 4, brw);
    let before = nodes(a.lst(LstRequest::Stat {
        key: KEY,
        targets: Targets::Group("s".into()),
        timeout: 30,
    }));
    nodes(a.lst(LstRequest::Run {
        key: KEY,
        batch: "batch".into(),
        timeout: 0,
    }));
    wait_idle(&a, KEY, "batch", Duration::from_secs(60));
    let after = nodes(a.lst(LstRequest::Stat {
        key: KEY,
        targets: Targets::Group("s".into()),
        timeout: 30,
    }));
    let (_, rpc, l1) = after[0].stat().expect("server stats");
    let (_, _, l0) = before[0].stat().expect("server stats");
    assert_eq!(rpc.bulk_get, 200 * 65536, "4 units x 50 writes of 64 KiB");
    assert!(l1.recv_length - l0.recv_length >= 200 * 65536);
    let c = nodes(a.lst(LstRequest::Stat {
        key: KEY,
        targets: Targets::Group("c".into()),
        timeout: 30,
    }));
    assert_eq!(c[0].stat().expect("client").0.brw_errors, 0);
    let (srv_rpc, _) = b.selftest_counters();
    assert_eq!(srv_rpc.rpcs_dropped, 0);
    let end = nodes(a.lst(LstRequest::EndSession { key: KEY }));
    assert!(end.iter().all(NodeEntry::ok), "{end:?}");
    a.shutdown();
    b.shutdown();
}

#[test]
fn forever_batch_runs_until_stopped() {
    let (a, a_nid) = start();
    let (b, b_nid) = start();
    session(&a, KEY, "forever", a_nid, b_nid);
    for test in [
        TestType::Ping,
        TestType::Brw {
            write: false,
            size: 8192,
            check: brw_check::SIMPLE,
            offset: 64,
        },
    ] {
        add_test(&a, KEY, "batch", -1, 2, test);
    }
    nodes(a.lst(LstRequest::Run {
        key: KEY,
        batch: "batch".into(),
        timeout: 0,
    }));
    // Both test instances run (and go on running: the batch is endless).
    wait_for(
        "both test instances to run",
        Duration::from_secs(60),
        || match active(&a, KEY, "batch") {
            2 => Ok(()),
            n => Err(format!("{n} active")),
        },
    );
    // Until both tests moved data (the counters checked below), then the
    // endless batch is still running.
    wait_until("pings and brw reads to go", Duration::from_secs(60), || {
        a.selftest_counters().0.rpcs_sent >= 4 && b.selftest_counters().0.bulk_put > 0
    });
    assert_eq!(active(&a, KEY, "batch"), 2, "both test instances run on");
    let stop = nodes(a.lst(LstRequest::Stop {
        key: KEY,
        batch: "batch".into(),
        force: true,
    }));
    assert!(stop.iter().all(NodeEntry::ok), "{stop:?}");
    wait_idle(&a, KEY, "batch", Duration::from_secs(30));
    let c = nodes(a.lst(LstRequest::Stat {
        key: KEY,
        targets: Targets::Group("c".into()),
        timeout: 30,
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
