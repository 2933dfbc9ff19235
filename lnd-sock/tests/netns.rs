//! Two nodes in two network namespaces joined by a veth pair, each node a
//! child process (this test binary re-run inside `ip netns exec`) with one
//! NI of lnd-sock on its veth interface, with the real defaults: port 988,
//! `accept=secure`, privileged source ports. Root only: `#[ignore]`d, run
//! with `cargo test -p lnd-sock --test netns -- --ignored`.
//!
//! [`NetNs`] and [`Veth`] (lnet-tests' shared guards) remove namespaces and
//! links on drop, also when the test fails.

mod support;

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use lnet_tests::netns::{NetNs, Veth};
use support::*;

fn wait_child(mut c: Child, t: Duration, who: &str) -> Result<String, String> {
    let deadline = Instant::now() + t;
    loop {
        match c.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            _ => {
                let _ = c.kill();
                break;
            }
        }
    }
    let out = c.wait_with_output().map_err(|e| format!("{who}: {e}"))?;
    let text = format!(
        "{who} stdout:\n{}\n{who} stderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() && text.contains("NODE-OK") {
        Ok(text)
    } else {
        Err(text)
    }
}

#[test]
#[ignore = "needs root: creates network namespaces"]
fn two_nodes_in_namespaces() {
    if std::env::var_os("LNDSOCK_NODE").is_some() {
        // This binary re-run inside a namespace: one of the two nodes.
        return netns_node();
    }
    // Asked to run (`--ignored`), it runs or fails: never a silent pass.
    assert!(
        is_root(),
        "two_nodes_in_namespaces needs root (it creates network namespaces): run it as \
         root, as scripts/test.sh does"
    );
    let tag = std::process::id() % 100_000;
    let na = NetNs::new(&format!("lsk{tag}a")).expect("namespace a");
    let nb = NetNs::new(&format!("lsk{tag}b")).expect("namespace b");
    let (ia, ib) = (format!("lsa{tag}"), format!("lsb{tag}"));
    let _veth =
        Veth::new((&na, &ia, "10.213.7.1/24"), (&nb, &ib, "10.213.7.2/24")).expect("veth pair");
    let exe = std::env::current_exe().expect("test binary");
    let node = |ns: &NetNs, role: &str, ifname: &str, peer: &str| {
        ns.spawn(
            Command::new(&exe)
                .args([
                    "--exact",
                    "two_nodes_in_namespaces",
                    "--ignored",
                    "--nocapture",
                ])
                .env("LNDSOCK_NODE", role)
                .env("LNDSOCK_IF", ifname)
                .env("LNDSOCK_PEER", peer),
        )
        .expect("spawn node")
    };
    let b = node(&nb, "B", &ib, "10.213.7.1@tcp");
    std::thread::sleep(Duration::from_millis(300));
    let a = node(&na, "A", &ia, "10.213.7.2@tcp");
    let ra = wait_child(a, Duration::from_secs(60), "node A");
    let rb = wait_child(b, Duration::from_secs(60), "node B");
    if let Err(e) = &ra {
        panic!("node A failed:\n{e}\n{}", rb.as_ref().unwrap_or_else(|e| e));
    }
    if let Err(e) = &rb {
        panic!("node B failed:\n{e}");
    }
}

/// One node: `two_nodes_in_namespaces` re-run inside a namespace with
/// `LNDSOCK_NODE`, `LNDSOCK_IF` and `LNDSOCK_PEER` set.
fn netns_node() {
    let var = |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("{k} is not set"));
    let (role, ifname, peer) = (var("LNDSOCK_NODE"), var("LNDSOCK_IF"), var("LNDSOCK_PEER"));
    let peer: lnd_api::Nid = peer.parse().expect("peer NID");
    let me = start(&role, config(TCP, &ifname, &[], &[]), RecvMode::Sync).expect("NI up");
    println!("{role}: {} on {ifname}", me.nid());
    let t = Duration::from_secs(30);
    let sizes = [0usize, 4096, 1 << 20];
    if role == "A" {
        let mut toks = Vec::new();
        for (i, n) in sizes.iter().enumerate() {
            let (tok, m) = put(&me, peer, &pattern(*n, i as u8));
            me.ni.send(m).expect("send");
            toks.push(tok);
        }
        let done = me.host.wait_sent(&toks, t);
        assert!(done.iter().all(|c| c.is_ok()), "{done:?}");
        let got = me.host.wait_received(1, t);
        assert_eq!(got[0].data, pattern(777, 9));
        assert_eq!(got[0].from, peer);
    } else {
        let got = me.host.wait_received(sizes.len(), t);
        for (i, n) in sizes.iter().enumerate() {
            assert!(
                got.iter()
                    .any(|r| r.data == pattern(*n, i as u8) && r.from == peer),
                "message of {n} bytes"
            );
        }
        let (tok, m) = put(&me, peer, &pattern(777, 9));
        me.ni.send(m).expect("send");
        assert!(me.host.wait_sent(&[tok], t)[0].is_ok());
        // Let A read it before going away.
        std::thread::sleep(Duration::from_millis(500));
    }
    let list = me.ni.ctl("conn_list", "").expect("conn_list");
    println!("{list}");
    me.shutdown();
    println!("NODE-OK");
}
