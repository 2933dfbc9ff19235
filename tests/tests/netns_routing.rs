//! Routing between namespaces (issue 13): `lnet-test-node` processes over the
//! TCP LND (lnd-sock), client B on `tcp1` — router A (`tcp1`, `tcp2`,
//! `forwarding=enabled`) — server C on `tcp2`; routes added with
//! `lnetctl route add`. PUTs and GETs of every size cross the router byte
//! for byte with the client's NID as the source.
//!
//! Root only (`#[ignore]`; `cargo test -p lnet-tests --test netns_routing
//! -- --ignored`, as scripts/test.sh runs them as root); asked to run
//! without root, each test fails saying so, never a silent pass.
//! Namespaces, links and processes are owned by guards.

use std::time::Duration;

use lnet_tests::netns::{need_root, End, NetNs, Veth};
use lnet_tests::test_node::{self, field, TestNode};
use lnet_tests::wait_for;

const EXE: &str = env!("CARGO_BIN_EXE_lnet-test-node");
const T: Duration = Duration::from_secs(20);
const SIZES: [usize; 5] = [0, 1, 4096, 65536, 1 << 20];

/// PUTs then GETs of every size in [`SIZES`] from `from` to `to`.
fn transfers(from: &TestNode, to: &TestNode, from_nid: &str, to_nid: &str, base: u64) {
    test_node::transfers(from, to, from_nid, to_nid, base, &SIZES, T);
}

/// The selftest session key of these tests (`LST_SESSION`).
const KEY: u32 = 77;

#[test]
#[ignore = "needs root: creates network namespaces"]
fn client_router_server_across_two_nets() {
    need_root();
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
             state: up\n      type: single-hop\n"
        )
    );
    let routing = a.lnetctl_ok(&["routing", "show"]);
    assert!(routing.contains("    - enable: 1\n"), "{routing}");
    // Through the router both ways, every size, byte for byte; the source
    // NID is the originator's.
    transfers(&b, &c, nb, nc, 0x1000);
    transfers(&c, &b, nc, nb, 0x2000);
    // lst ping and brw write 1M through the router.
    b.lst_ok(KEY, &["new_session", "--timeout", "120", "rt"]);
    assert_eq!(
        b.lst_ok(KEY, &["add_group", "servers", nc]),
        format!("{nc} are added to session\n")
    );
    b.lst_ok(KEY, &["add_group", "clients", nb]);
    assert_eq!(
        b.lst_ok(KEY, &["ping", "--group", "servers"]),
        format!("\t12345-{nc}: Active [session: rt id: {nb}]\n")
    );
    b.lst_ok(KEY, &["add_batch", "bulk"]);
    for t in [
        &["brw", "write", "size=1M", "check=simple"][..],
        &["ping"][..],
    ] {
        let mut args = vec![
            "add_test", "--batch", "bulk", "--from", "clients", "--to", "servers",
        ];
        args.extend_from_slice(t);
        b.lst_ok(KEY, &args);
    }
    let before = a.stat("route_count");
    b.lst_ok(KEY, &["run", "bulk"]);
    // Sampled until the writes flow (the first second of a batch, or of a
    // loaded machine, may move little).
    wait_for(
        "servers to receive the writes through the router",
        T * 6,
        || {
            let st = b.lst_ok(KEY, &["stat", "--count", "2", "--delay", "1", "servers"]);
            assert!(
                st.contains("[LNet Bandwidth of servers]\n[R] Avg: "),
                "{st}"
            );
            let bw: f64 = st[st.find("[LNet Bandwidth").expect("bw")..]
                .split("[R] Avg: ")
                .nth(1)
                .and_then(|t| t.split_whitespace().next())
                .and_then(|v| v.parse().ok())
                .expect("a bandwidth figure");
            if bw > 1.0 {
                Ok(())
            } else {
                Err(st)
            }
        },
    );
    b.lst_ok(KEY, &["stop", "bulk"]);
    assert_eq!(
        b.lst_ok(KEY, &["show_error", "clients", "servers"]),
        "clients:\nTotal 0 error nodes in clients\nservers:\nTotal 0 error nodes in servers\n"
    );
    assert_eq!(b.lst_ok(KEY, &["end_session"]), "session is ended\n");
    assert!(
        a.stat("route_count") > before + 2,
        "brw went through the router"
    );
    // lnetctl ping through the router.
    let p = b.lnetctl_ok(&["ping", nc]);
    assert!(p.contains(&format!("primary nid: {nc}")), "{p}");
    // Every buffer and credit comes back to the router's pools (the last
    // forwarded messages may still be on their way out).
    wait_for("the router's buffers and credits to come back", T, || {
        let routing = a.lnetctl_ok(&["routing", "show"]);
        let full = [("tiny", 0, 2048), ("small", 1, 16384), ("large", 256, 1024)]
            .iter()
            .all(|(pool, npages, n)| {
                routing.contains(&format!(
                    "          {pool}:\n              npages: {npages}\n              \
                     nbuffers: {n}\n              credits: {n}\n"
                ))
            });
        if full {
            Ok(())
        } else {
            Err(routing)
        }
    });
}

/// A "switch" namespace with one bridge per net, and a node's veth into it.
struct Switch {
    ns: NetNs,
    links: Vec<Veth>,
    k: u32,
}

impl Switch {
    fn new(name: &str) -> Switch {
        let ns = NetNs::new(name).expect("switch namespace");
        Switch {
            ns,
            links: Vec::new(),
            k: 0,
        }
    }

    fn bridge(&self, br: &str) {
        self.ns
            .ip(&["link", "add", br, "type", "bridge"])
            .expect("bridge");
        self.ns.ip(&["link", "set", br, "up"]).expect("bridge up");
    }

    /// Connects `ifname` (address `cidr`) in `ns` to bridge `br`.
    fn plug(&mut self, ns: &NetNs, ifname: &str, cidr: &str, br: &str) {
        self.k += 1;
        let port = format!("{ifname}p");
        let dummy = format!("192.0.2.{}/32", self.k);
        let v = Veth::new(
            End { ns, ifname, cidr },
            End {
                ns: &self.ns,
                ifname: &port,
                cidr: &dummy,
            },
        )
        .expect("veth into the switch");
        self.ns
            .ip(&["link", "set", &port, "master", br])
            .expect("bridge port");
        self.links.push(v);
    }
}

/// Streams `count` PUTs B -> C; returns (sent, ok, failed).
fn stream(b: &TestNode, nc: &str, mb: u64, count: u32) -> (u32, u32, u32) {
    b.send(&format!("stream {nc} 45 {mb:#x} 65536 {count} 4"));
    let r = b.expect(
        |l| l.starts_with("ok stream") || l.starts_with("fail stream"),
        Duration::from_secs(60),
    );
    let n = |k: &str| -> u32 {
        field(&r, k)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {k} in {r}"))
    };
    (n("sent"), n("ok"), n("failed"))
}

#[test]
#[ignore = "needs root: creates network namespaces"]
fn two_routers_one_killed_traffic_continues_and_it_rejoins() {
    need_root();
    let id = std::process::id() % 100_000;
    let mut sw = Switch::new(&format!("lnr{id}s"));
    let (br1, br2) = (format!("lb{id}1"), format!("lb{id}2"));
    sw.bridge(&br1);
    sw.bridge(&br2);
    let ns_b = NetNs::new(&format!("lnr{id}B")).expect("ns");
    let ns_c = NetNs::new(&format!("lnr{id}C")).expect("ns");
    let ns_r1 = NetNs::new(&format!("lnr{id}1")).expect("ns");
    let ns_r2 = NetNs::new(&format!("lnr{id}2")).expect("ns");
    let ifs = |n: &str| format!("lr{id}{n}");
    sw.plug(&ns_b, &ifs("b"), "10.216.1.9/24", &br1);
    sw.plug(&ns_r1, &ifs("1a"), "10.216.1.1/24", &br1);
    sw.plug(&ns_r2, &ifs("2a"), "10.216.1.2/24", &br1);
    sw.plug(&ns_r1, &ifs("1b"), "10.216.2.1/24", &br2);
    sw.plug(&ns_r2, &ifs("2b"), "10.216.2.2/24", &br2);
    sw.plug(&ns_c, &ifs("c"), "10.216.2.9/24", &br2);
    let fast = [
        "alive_router_check_interval=1",
        "router_ping_timeout=1",
        "lnet_transaction_timeout=10",
        "lnet_retry_count=0",
    ];
    let router = |ns: &NetNs, name: &str, a: &str, b: &str| {
        let r = TestNode::start(EXE, ns, name, &["forwarding=enabled"]);
        r.configure("tcp1", a);
        r.lnetctl_ok(&["net", "add", "--net", "tcp2", "--if", b]);
        r
    };
    let mut r1 = router(&ns_r1, "R1", &ifs("1a"), &ifs("1b"));
    let r2 = router(&ns_r2, "R2", &ifs("2a"), &ifs("2b"));
    let b = TestNode::start(EXE, &ns_b, "B", &fast);
    let c = TestNode::start(EXE, &ns_c, "C", &fast);
    b.configure("tcp1", &ifs("b"));
    c.configure("tcp2", &ifs("c"));
    let nc = "10.216.2.9@tcp2";
    for g in ["10.216.1.1@tcp1", "10.216.1.2@tcp1"] {
        b.lnetctl_ok(&["route", "add", "--net", "tcp2", "--gateway", g]);
    }
    for g in ["10.216.2.1@tcp2", "10.216.2.2@tcp2"] {
        c.lnetctl_ok(&["route", "add", "--net", "tcp1", "--gateway", g]);
    }
    // C takes every PUT (checked) in one-use MDs.
    c.cmd_ok("post 45 0x7 65536 1000", T);
    let delivered = |c: &TestNode, want: u32| {
        for _ in 0..want {
            let ev = c.expect(|l| l.starts_with("event put"), T);
            assert!(ev.contains(" data=ok"), "{ev}");
        }
    };
    // 1. Both routers carry traffic.
    let (sent, ok, failed) = stream(&b, nc, 0x7, 40);
    assert_eq!((sent, ok, failed), (40, 40, 0));
    delivered(&c, 40);
    assert!(r1.stat("route_count") > 0 && r2.stat("route_count") > 0);

    // 2. R1 dies: streams go on; each one's PUTs are all accounted; once
    //    B's checker noticed, nothing fails.
    r1.kill();
    let mut total_ok = 0;
    let mut clean = false;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while std::time::Instant::now() < deadline {
        let (sent, ok, failed) = stream(&b, nc, 0x7, 40);
        assert_eq!(sent, ok + failed, "every PUT accounted");
        total_ok += ok;
        if failed == 0 && ok == 40 {
            clean = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(clean, "traffic continues through R2");
    // Every acknowledged PUT landed on C, checked.
    delivered(&c, total_ok);
    let show = b.lnetctl_ok(&["route", "show", "-v"]);
    assert!(
        show.contains(
            "gateway: 10.216.1.1@tcp1\n      hop: -1\n      priority: 0\n      state: down"
        ),
        "{show}"
    );

    // 3. R1 restarted rejoins: its route comes back up and carries traffic.
    r1 = router(&ns_r1, "R1'", &ifs("1a"), &ifs("1b"));
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let show = b.lnetctl_ok(&["route", "show", "-v"]);
        if !show.contains("state: down") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "R1's route did not come back: {show}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // C's route back through R1 too (ACKs may use it).
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while c
        .lnetctl_ok(&["route", "show", "-v"])
        .contains("state: down")
    {
        assert!(std::time::Instant::now() < deadline, "C's route through R1");
        std::thread::sleep(Duration::from_millis(200));
    }
    let (sent, ok, failed) = stream(&b, nc, 0x7, 40);
    assert_eq!((sent, ok, failed), (40, 40, 0));
    delivered(&c, 40);
    assert!(
        r1.stat("route_count") > 0,
        "the restarted R1 forwards again"
    );
    let _ = (&sw, &ns_b, &ns_c, &ns_r2);
}

#[test]
#[ignore = "needs root: creates network namespaces"]
fn two_hops_client_r1_r2_server() {
    need_root();
    // B (tcp1) — R1 (tcp1, tcp2) — R2 (tcp2, tcp3) — C (tcp3).
    let id = std::process::id() % 100_000;
    let ns_all: Vec<NetNs> = ["B", "1", "2", "C"]
        .iter()
        .map(|n| NetNs::new(&format!("lnh{id}{n}")).expect("namespace"))
        .collect();
    let ifs = |n: &str| format!("lh{id}{n}");
    let names: Vec<String> = ["b", "1a", "1b", "2a", "2b", "c"]
        .iter()
        .map(|n| ifs(n))
        .collect();
    let end = |ns: usize, k: usize, cidr: &'static str| End {
        ns: &ns_all[ns],
        ifname: &names[k],
        cidr,
    };
    let _v1 = Veth::new(end(0, 0, "10.217.1.9/24"), end(1, 1, "10.217.1.1/24")).expect("veth");
    let _v2 = Veth::new(end(1, 2, "10.217.2.1/24"), end(2, 3, "10.217.2.2/24")).expect("veth");
    let _v3 = Veth::new(end(2, 4, "10.217.3.2/24"), end(3, 5, "10.217.3.9/24")).expect("veth");
    let b = TestNode::start(EXE, &ns_all[0], "B", &[]);
    let r1 = TestNode::start(EXE, &ns_all[1], "R1", &["forwarding=enabled"]);
    let r2 = TestNode::start(EXE, &ns_all[2], "R2", &["forwarding=enabled"]);
    let c = TestNode::start(EXE, &ns_all[3], "C", &[]);
    b.configure("tcp1", &ifs("b"));
    r1.configure("tcp1", &ifs("1a"));
    r1.lnetctl_ok(&["net", "add", "--net", "tcp2", "--if", &ifs("1b")]);
    r2.configure("tcp2", &ifs("2a"));
    r2.lnetctl_ok(&["net", "add", "--net", "tcp3", "--if", &ifs("2b")]);
    c.configure("tcp3", &ifs("c"));
    let route = |n: &TestNode, net: &str, gw: &str, hop: &str| {
        n.lnetctl_ok(&["route", "add", "--net", net, "--gateway", gw, "--hop", hop]);
    };
    route(&b, "tcp3", "10.217.1.1@tcp1", "2");
    route(&r1, "tcp3", "10.217.2.2@tcp2", "1");
    route(&r2, "tcp1", "10.217.2.1@tcp2", "1");
    route(&c, "tcp1", "10.217.3.2@tcp3", "2");
    let (nb, nc) = ("10.217.1.9@tcp1", "10.217.3.9@tcp3");
    transfers(&b, &c, nb, nc, 0x5000);
    transfers(&c, &b, nc, nb, 0x6000);
    // B's route is multi-hop (R1 has no NI on tcp3), R1's single-hop.
    let show = b.lnetctl_ok(&["route", "show", "-v"]);
    assert!(
        show.contains("      state: up\n      type: multi-hop\n"),
        "{show}"
    );
    let show = r1.lnetctl_ok(&["route", "show", "-v"]);
    assert!(
        show.contains("      state: up\n      type: single-hop\n"),
        "{show}"
    );
    assert!(r1.stat("route_count") > 0 && r2.stat("route_count") > 0);
}
