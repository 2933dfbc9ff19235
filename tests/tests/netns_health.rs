//! Real failures between namespaces (issue 12 item 4): two `lnet-test-node`
//! processes over the TCP LND, each with two tcp NIs on two veth links; an
//! `lst brw write` runs from A to B when B's process is killed. A's messages
//! to the dead peer end (failure events) within the transaction timeout,
//! `lst stop` and `end_session` return, nothing stays allocated, and the dead
//! peer's NIs lost health.
//!
//! Root only (`#[ignore]`; `cargo test -p lnet-tests --test netns_health --
//! --ignored`, which scripts/test.sh runs as root); asked to run without
//! root, it fails saying so.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use lnet_tests::netns::{need_root, End, NetNs, Veth};
use lnet_tests::test_node::TestNode;

const EXE: &str = env!("CARGO_BIN_EXE_lnet-test-node");
const TX_TIMEOUT: u64 = 10;
/// Selftest's RPC timeout (module parameter `rpc_timeout`, 64 by default):
/// an RPC whose request went out before the kill waits that long for the
/// reply that never comes.
const RPC_TIMEOUT: u64 = 15;

/// The selftest session key of this file's `lst` calls.
const SESSION: u32 = 78;

fn lst(n: &TestNode, args: &[&str]) -> Output {
    n.lst(SESSION, args)
}

#[track_caller]
fn lst_ok(n: &TestNode, args: &[&str]) -> String {
    n.lst_ok(SESSION, args)
}

fn stat(n: &TestNode, key: &str) -> u64 {
    n.stat(key)
}

/// The health values of a peer's NIs as `peer show -v 2` prints them.
fn peer_healths(n: &TestNode, nid: &str) -> Vec<u32> {
    let s = n.lnetctl_ok(&["peer", "show", "--nid", nid, "-v", "2"]);
    s.lines()
        .filter_map(|l| l.trim().strip_prefix("health value: "))
        .filter_map(|v| v.trim().parse().ok())
        .collect()
}

#[test]
#[ignore = "needs root: creates network namespaces"]
fn a_peer_killed_mid_brw_fails_its_messages_within_the_transaction_timeout() {
    need_root();
    let id = std::process::id() % 100_000;
    let ns_a = NetNs::new(&format!("lnh{id}a")).expect("namespace a");
    let ns_b = NetNs::new(&format!("lnh{id}b")).expect("namespace b");
    let ifs: Vec<String> = ["a1", "b1", "a2", "b2"]
        .iter()
        .map(|s| format!("lh{id}{s}"))
        .collect();
    let end = |ns, ifname, cidr| End { ns, ifname, cidr };
    let _l1 = Veth::new(
        end(&ns_a, &ifs[0], "10.216.1.1/24"),
        end(&ns_b, &ifs[1], "10.216.1.2/24"),
    )
    .expect("link 1");
    let _l2 = Veth::new(
        end(&ns_a, &ifs[2], "10.216.2.1/24"),
        end(&ns_b, &ifs[3], "10.216.2.2/24"),
    )
    .expect("link 2");
    let rpc = format!("rpc_timeout={RPC_TIMEOUT}");
    let a = TestNode::start(EXE, &ns_a, "A", &[&rpc]);
    let mut b = Some(TestNode::start(EXE, &ns_b, "B", &[&rpc]));
    let bn = b.as_ref().expect("B");
    a.configure("tcp", &ifs[0]);
    a.lnetctl_ok(&["net", "add", "--net", "tcp", "--if", &ifs[2]]);
    bn.configure("tcp", &ifs[1]);
    bn.lnetctl_ok(&["net", "add", "--net", "tcp", "--if", &ifs[3]]);
    let t = TX_TIMEOUT.to_string();
    a.lnetctl_ok(&["set", "transaction_timeout", &t]);
    let (na, nb) = ("10.216.1.1@tcp", "10.216.1.2@tcp");
    // B is a Multi-Rail peer with both NIDs.
    let d = a.lnetctl_ok(&["discover", nb]);
    assert!(d.contains("10.216.2.2@tcp"), "{d}");

    a.lst_run_brw_write_1m(SESSION, "kill", na, nb, 8);
    let st = lst_ok(&a, &["stat", "--count", "1", "--delay", "2", "servers"]);
    assert!(st.contains("[LNet Bandwidth of servers]"), "{st}");

    // B dies (SIGKILL, by its PID) in the middle of the run.
    let pid = bn.pid().expect("B runs").to_string();
    let killed = Command::new("kill")
        .args(["-9", &pid])
        .status()
        .expect("kill");
    assert!(killed.success());
    let t_kill = Instant::now();
    drop(b.take());

    // Nothing hangs: stopping the batch returns once the RPCs waiting for
    // B's replies reach the selftest RPC timeout, and every message A had
    // for B ends within the transaction timeout (plus the LND's teardown
    // and a loaded machine's slack).
    let limit = Duration::from_secs(RPC_TIMEOUT + TX_TIMEOUT * 3 + 30);
    lst_ok(&a, &["stop", "bulk"]);
    assert!(
        t_kill.elapsed() < limit,
        "lst stop took {:?}",
        t_kill.elapsed()
    );
    let drained = loop {
        let n = stat(&a, "msgs_alloc");
        if n == 0 {
            break t_kill.elapsed();
        }
        assert!(
            t_kill.elapsed() < limit,
            "{n} messages still allocated {:?} after the peer died",
            t_kill.elapsed()
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    eprintln!("A's messages to the dead peer all ended {drained:?} after the kill");
    // Ending the session reaches A, not the dead B: it says so, promptly.
    let t_end = Instant::now();
    let end = lst(&a, &["end_session"]);
    let err = String::from_utf8_lossy(&end.stderr);
    assert!(
        err.contains("Failed to send 1 session RPCs"),
        "{:?}: {err}",
        end.status
    );
    assert!(
        t_end.elapsed() < limit,
        "end_session took {:?}",
        t_end.elapsed()
    );
    // The failures were seen: B's NIs lost health, A still answers.
    let h = peer_healths(&a, nb);
    assert!(!h.is_empty() && h.iter().any(|v| *v < 1000), "{h:?}");
    let show = a.lnetctl_ok(&["net", "show"]);
    assert!(show.contains(na), "{show}");
}
