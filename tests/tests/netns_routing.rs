//! Routing between namespaces (issue 13): `lnet-test-node` processes over the
//! TCP LND (lnd-sock), client B on `tcp1` — router A (`tcp1`, `tcp2`,
//! `forwarding=enabled`) — server C on `tcp2`; routes added with
//! `lnetctl route add`. PUTs and GETs of every size cross the router byte
//! for byte with the client's NID as the source.
//!
//! Root only (`#[ignore]`; `cargo test -p lnet-tests --test netns_routing
//! -- --ignored`); without root the test prints a skip line and passes.
//! Namespaces, links and processes are owned by guards.

use std::time::Duration;

use lnet_tests::netns::{is_root, End, NetNs, Veth};
use lnet_tests::test_node::{field, TestNode};

const EXE: &str = env!("CARGO_BIN_EXE_lnet-test-node");
const T: Duration = Duration::from_secs(20);
const SIZES: [usize; 5] = [0, 1, 4096, 65536, 1 << 20];

/// PUTs then GETs of every size from `from` to `to`, checked on `to`.
fn transfers(from: &TestNode, to: &TestNode, from_nid: &str, to_nid: &str, base: u64) {
    for (i, size) in SIZES.into_iter().enumerate() {
        let mb = base + i as u64;
        to.cmd_ok(&format!("serve 40 {mb:#x} {}", 1 << 20), T);
        let r = from.cmd_ok(&format!("put {to_nid} 40 {mb:#x} {size}"), T);
        assert_eq!(field(&r, "mlength"), Some(size.to_string().as_str()), "{r}");
        let ev = to.expect(
            |l| l.starts_with("event put") && l.contains(&format!("mb={mb:#x} ")),
            T,
        );
        assert_eq!(
            ev,
            format!(
                "event put from={from_nid} mb={mb:#x} rlength={size} mlength={size} offset=0 \
                 hdr_data={size} status=0 data=ok"
            )
        );
    }
    let mb = base + 0x100;
    to.cmd_ok(&format!("serve 41 {mb:#x} {}", 1 << 20), T);
    for size in SIZES {
        let r = from.cmd_ok(&format!("get {to_nid} 41 {mb:#x} {size}"), T);
        assert!(
            r.starts_with(&format!("ok get size={size} mlength={size} data=ok ")),
            "{r}"
        );
    }
}

#[test]
#[ignore = "needs root: creates network namespaces"]
fn client_router_server_across_two_nets() {
    if !is_root() {
        eprintln!("not root: skipped (network namespaces need root)");
        return;
    }
    let id = std::process::id() % 100_000;
    let ns_a = NetNs::new(&format!("lnr{id}a")).expect("namespace a");
    let ns_b = NetNs::new(&format!("lnr{id}b")).expect("namespace b");
    let ns_c = NetNs::new(&format!("lnr{id}c")).expect("namespace c");
    let (ab, ba, ac, ca) = (
        format!("lr{id}ab"),
        format!("lr{id}ba"),
        format!("lr{id}ac"),
        format!("lr{id}ca"),
    );
    let end = |ns, ifname, cidr| End { ns, ifname, cidr };
    let _v1 = Veth::new(
        end(&ns_a, &ab, "10.215.1.1/24"),
        end(&ns_b, &ba, "10.215.1.2/24"),
    )
    .expect("veth a-b");
    let _v2 = Veth::new(
        end(&ns_a, &ac, "10.215.2.1/24"),
        end(&ns_c, &ca, "10.215.2.2/24"),
    )
    .expect("veth a-c");
    let a = TestNode::start(EXE, &ns_a, "R", &["forwarding=enabled"]);
    let b = TestNode::start(EXE, &ns_b, "B", &[]);
    let c = TestNode::start(EXE, &ns_c, "C", &[]);
    a.configure("tcp1", &ab);
    a.lnetctl_ok(&["net", "add", "--net", "tcp2", "--if", &ac]);
    b.configure("tcp1", &ba);
    c.configure("tcp2", &ca);
    let (ra, rc) = ("10.215.1.1@tcp1", "10.215.2.1@tcp2");
    let (nb, nc) = ("10.215.1.2@tcp1", "10.215.2.2@tcp2");
    b.lnetctl_ok(&["route", "add", "--net", "tcp2", "--gateway", ra]);
    c.lnetctl_ok(&["route", "add", "--net", "tcp1", "--gateway", rc]);
    assert_eq!(
        b.lnetctl_ok(&["route", "show", "-v"]),
        format!(
            "route:\n-     net: tcp2\n      gateway: {ra}\n      hop: -1\n      priority: 0\n      \
             health_sensitivity: 100\n      state: up\n      type: single-hop\n"
        )
    );
    let routing = a.lnetctl_ok(&["routing", "show"]);
    assert!(routing.contains("    - enable: 1\n"), "{routing}");
    // Through the router both ways, every size, byte for byte; the source
    // NID is the originator's.
    transfers(&b, &c, nb, nc, 0x1000);
    transfers(&c, &b, nc, nb, 0x2000);
    // lnetctl ping through the router.
    let p = b.lnetctl_ok(&["ping", nc]);
    assert!(p.contains(&format!("primary nid: {nc}")), "{p}");
    // Every buffer and credit came back to the router's pools.
    let routing = a.lnetctl_ok(&["routing", "show"]);
    for (pool, n) in [("tiny", 2048), ("small", 16384), ("large", 1024)] {
        assert!(
            routing.contains(&format!(
                "          {pool}:\n              npages: {}\n              nbuffers: {n}\n              credits: {n}\n",
                match pool {
                    "tiny" => 0,
                    "small" => 1,
                    _ => 256,
                }
            )),
            "{routing}"
        );
    }
}
