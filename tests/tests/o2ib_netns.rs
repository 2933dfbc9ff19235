//! lnd-o2ib between namespaces (issue 15): `lnet-test-node` processes in
//! network namespaces joined by veth pairs load `liblnd_o2ib.so` by name at
//! `lnetctl net add --net o2ib`, and talk over the soft verbs provider
//! (reliable connections over TCP on the veth addresses, o2iblnd's
//! protocol): ping; PUTs and GETs of 0 B to 1 MiB byte for byte both ways;
//! credits run out and come back with NOOPs; a bad rkey injected; a peer
//! killed in the middle of RDMA; o2ib and tcp NIs on one node (Multi-Rail
//! across LNDs); `lst brw` read and write with data checks.
//!
//! Root only (`#[ignore]`; `cargo test -p lnet-tests --test o2ib_netns --
//! --ignored`); asked to run without root, each test fails saying so.
//! Namespaces, links and processes are owned by guards; every name carries
//! the process id.

use std::time::{Duration, Instant};

use lnet_tests::netns::{need_root, End, NetNs, Veth};
use lnet_tests::test_node::{self, field, TestNode};

/// Progress on standard error (seen with --nocapture): where the time goes.
fn log(t0: Instant, what: &str) {
    eprintln!("[{:>6.1}s] {what}", t0.elapsed().as_secs_f64());
}

const EXE: &str = env!("CARGO_BIN_EXE_lnet-test-node");
const T: Duration = Duration::from_secs(30);
const SIZES: [usize; 7] = [0, 1, 3976, 3977, 4096, 65536, 1 << 20];

/// Two namespaces joined by one veth pair (10.219.1.1 / .2), a node in
/// each with an o2ib NI on its end.
struct Pair {
    a: TestNode,
    b: TestNode,
    _v: Veth,
    _ns: (NetNs, NetNs),
}

const NA: &str = "10.219.1.1@o2ib";
const NB: &str = "10.219.1.2@o2ib";

fn pair(tag: &str, params: &[&str]) -> Pair {
    // Built next to lnetctl, where the nodes look for plugins.
    lnet_tests::bins::o2ib_plugin();
    let id = std::process::id() % 100_000;
    let ns_a = NetNs::new(&format!("lo2{tag}{id}a")).expect("namespace a");
    let ns_b = NetNs::new(&format!("lo2{tag}{id}b")).expect("namespace b");
    let (ia, ib) = (format!("o{tag}{id}a"), format!("o{tag}{id}b"));
    let v = Veth::new(
        End {
            ns: &ns_a,
            ifname: &ia,
            cidr: "10.219.1.1/24",
        },
        End {
            ns: &ns_b,
            ifname: &ib,
            cidr: "10.219.1.2/24",
        },
    )
    .expect("veth");
    let a = TestNode::start(EXE, &ns_a, "A", params);
    let b = TestNode::start(EXE, &ns_b, "B", params);
    // By interface name, as for the kernel o2iblnd (`--if ib0`).
    a.configure("o2ib", &ia);
    b.configure("o2ib", &ib);
    Pair {
        a,
        b,
        _v: v,
        _ns: (ns_a, ns_b),
    }
}

/// A counter of lnd-o2ib's `stats` on a node's NI.
fn stat(n: &TestNode, nid: &str, name: &str) -> u64 {
    let r = n.cmd_ok(&format!("lnd {nid} stats"), T);
    r.trim_start_matches("ok lnd ")
        .split(';')
        .find_map(|kv| kv.trim().strip_prefix(&format!("{name}: ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {r}"))
}

/// PUTs then GETs of every size in [`SIZES`] from `from` to `to`.
fn transfers(from: &TestNode, to: &TestNode, from_nid: &str, to_nid: &str, base: u64) {
    test_node::transfers(from, to, from_nid, to_nid, base, &SIZES, T);
}

#[test]
#[ignore = "needs root: creates network namespaces"]
fn ping_put_get_every_size_both_ways() {
    need_root();
    let t0 = Instant::now();
    let p = pair("p", &[]);
    log(t0, "configured");
    for (n, peer) in [(&p.a, NB), (&p.b, NA)] {
        let out = n.lnetctl_ok(&["ping", peer]);
        assert!(
            out.starts_with(&format!("ping:\n- primary nid: {peer}\n")),
            "{out}"
        );
    }
    let show = p.a.lnetctl_ok(&["net", "show", "-v", "--net", "o2ib"]);
    assert!(
        show.contains("                  provider: soft\n"),
        "{show}"
    );
    let ia = format!("op{}a", std::process::id() % 100_000);
    assert!(
        show.contains(&format!(
            "      -     nid: {NA}\n            status: up\n            interfaces:\n                  0: {ia}\n"
        )),
        "{show}"
    );
    log(t0, "pinged");
    transfers(&p.a, &p.b, NA, NB, 0x1000);
    log(t0, "A to B");
    transfers(&p.b, &p.a, NB, NA, 0x2000);
    log(t0, "B to A");
    // GETs with sinks over 3976 bytes went as GET_REQ (4 sizes, each way).
    assert_eq!(stat(&p.a, NA, "rdma_gets"), 4);
    assert_eq!(stat(&p.b, NB, "rdma_gets"), 4);
    // LNet handed each GET's MD to the LND (lnd-api GET_SINK): the peer
    // RDMA-wrote the REPLY's data into it, nothing was copied at `recv`.
    for (n, nid) in [(&p.a, NA), (&p.b, NB)] {
        assert_eq!(stat(n, nid, "rdma_gets_direct"), 4);
        assert_eq!(stat(n, nid, "rdma_gets_copied"), 0);
    }
    // A GET_REQ that matches nothing at B: GET_DONE with -ENODATA fails the
    // GET at once (no waiting for a response timeout), health untouched.
    let r = p.a.cmd(&format!("get {NB} 49 0x99 100000"), T);
    assert!(r.starts_with("fail get status=-61 event=send "), "{r}");
    assert_eq!(stat(&p.a, NA, "rdma_gets"), 4);
    let s = p.a.lnetctl_ok(&["stats", "show"]);
    assert!(s.contains("    remote_error_count: 0\n"), "{s}");
    let conns = p.a.cmd_ok(&format!("lnd {NA} conn_list"), T);
    let conns: Vec<&str> = conns.split(';').map(str::trim).collect();
    for kv in [
        format!("- nid: {NB}"),
        "queue_depth: 8".into(),
        "max_frags: 257".into(),
    ] {
        assert!(conns.contains(&kv.as_str()), "{kv} not in {conns:?}");
    }
}

#[test]
#[ignore = "needs root: creates network namespaces"]
fn credits_run_out_and_noops_bring_them_back() {
    need_root();
    let p = pair("c", &[]);
    // 100 PUTs without ACK: B sends nothing back but NOOPs, so A's 8
    // credits (queue depth) can only come back that way.
    let n = 100;
    p.b.cmd_ok(&format!("post 42 0x77 3000 {n}"), T);
    for _ in 0..n {
        p.a.cmd_ok(&format!("put {NB} 42 0x77 3000 noack"), T);
    }
    for _ in 0..n {
        let ev = p.b.expect(|l| l.starts_with("event put"), T);
        assert!(ev.contains(" status=0 data=ok"), "{ev}");
    }
    let sent = stat(&p.b, NB, "noops_sent");
    assert!(
        sent >= (n as u64 - 8) / 4,
        "B returned credits in {sent} NOOPs"
    );
    // Every NOOP B sent reaches A (the last may still be on its way).
    let deadline = Instant::now() + T;
    loop {
        let (sent, got) = (
            stat(&p.b, NB, "noops_sent"),
            stat(&p.a, NA, "noops_received"),
        );
        if got == sent {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "B sent {sent} NOOPs, A got {got}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(stat(&p.a, NA, "immediate_sent") >= n as u64);
    // All credits back with A once B's last NOOP arrived.
    let deadline = Instant::now() + T;
    loop {
        let c = p.a.cmd_ok(&format!("lnd {NA} conn_list"), T);
        let credits: u32 = c
            .split(';')
            .find_map(|kv| kv.trim().strip_prefix("credits: "))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no credits in {c}"));
        // B keeps fewer than peer_credits_hiw (4) to return.
        if credits > 8 - 4 {
            break;
        }
        assert!(Instant::now() < deadline, "credits did not come back: {c}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
#[ignore = "needs root: creates network namespaces"]
fn injected_bad_rkey_fails_the_put_with_remote_error() {
    need_root();
    let p = pair("k", &[]);
    p.b.cmd_ok("serve 43 0x5 1048576", T);
    p.a.cmd_ok(&format!("put {NB} 43 0x5 1"), T);
    // B's next PUT_ACK names a wrong rkey: A's RDMA WRITE is refused.
    p.b.cmd_ok(&format!("lnd {NB} inject_bad_rkey 1"), T);
    let r = p.a.cmd(&format!("put {NB} 43 0x5 100000"), T);
    assert!(r.starts_with("fail put"), "{r}");
    let health = p.a.lnetctl_ok(&["stats", "show"]);
    assert!(health.contains("    remote_error_count: 1\n"), "{health}");
    // B's side of the RDMA failed too (its sink saw the connection go);
    // the next PUT goes through on a new connection.
    let ev = p.b.expect(|l| l.contains("rlength=100000"), T);
    assert!(ev.contains(" status=-"), "{ev}");
    let r = p.a.cmd_ok(&format!("put {NB} 43 0x5 100000"), T);
    assert_eq!(field(&r, "mlength"), Some("100000"), "{r}");
    let ev = p.b.expect(|l| l.contains("rlength=100000"), T);
    assert!(ev.ends_with("status=0 data=ok"), "{ev}");
}

#[test]
#[ignore = "needs root: creates network namespaces"]
fn peer_killed_mid_rdma_fails_what_was_in_flight() {
    need_root();
    let mut p = pair("d", &[]);
    p.b.cmd_ok("sink 44 0x9 1048576", T);
    p.a.cmd_ok(&format!("put {NB} 44 0x9 1048576"), T);
    // A stream of 1 MiB PUTs, 8 in flight; B dies under it.
    p.a.send(&format!("stream {NB} 44 0x9 1048576 100000 8"));
    p.a.expect(|l| l.starts_with("stream 20 ok"), T);
    p.b.kill();
    let t0 = Instant::now();
    let end = p.a.expect(
        |l| l.starts_with("ok stream") || l.starts_with("fail stream"),
        T * 4,
    );
    assert!(end.starts_with("fail stream"), "{end}");
    let failed = p.a.expect(|l| l.contains(" fail status="), T);
    assert!(failed.contains("status=-"), "{failed}");
    assert!(t0.elapsed() < T * 4, "the stream hung");
    let s = p.a.lnetctl_ok(&["stats", "show"]);
    assert!(
        !s.contains("    remote_dropped_count: 0\n"),
        "the in-flight PUTs were dropped by the dead peer: {s}"
    );
    // Nothing is left hanging: a later PUT fails in bounded time.
    let r = p.a.cmd(&format!("put {NB} 44 0x9 100"), T * 4);
    assert!(r.starts_with("fail put"), "{r}");
}

/// What both nodes know, for a failure message.
fn diag(p: &Pair) -> String {
    let mut out = String::new();
    for (n, nid) in [(&p.a, NA), (&p.b, NB)] {
        out.push_str(&format!("---- {}\n", n.name()));
        out.push_str(&String::from_utf8_lossy(
            &n.lnetctl(&["net", "show", "-v"]).stdout,
        ));
        out.push_str(&String::from_utf8_lossy(
            &n.lnetctl(&["peer", "show", "-v"]).stdout,
        ));
        out.push_str(&n.cmd(&format!("lnd {nid} stats"), T));
        out.push('\n');
        out.push_str(&n.cmd(&format!("lnd {nid} conn_list"), T));
        out.push('\n');
        out.push_str(&n.stderr());
    }
    out
}

#[test]
#[ignore = "needs root: creates network namespaces"]
fn o2ib_and_tcp_on_one_node_multi_rail_across_lnds() {
    need_root();
    let p = pair("m", &[]);
    // A second link for tcp.
    let id = std::process::id() % 100_000;
    let (ta, tb) = (format!("t{id}a"), format!("t{id}b"));
    let _v2 = Veth::new(
        End {
            ns: &p._ns.0,
            ifname: &ta,
            cidr: "10.219.2.1/24",
        },
        End {
            ns: &p._ns.1,
            ifname: &tb,
            cidr: "10.219.2.2/24",
        },
    )
    .expect("veth tcp");
    p.a.lnetctl_ok(&["net", "add", "--net", "tcp", "--if", &ta]);
    p.b.lnetctl_ok(&["net", "add", "--net", "tcp", "--if", &tb]);
    let out = p.a.lnetctl_ok(&["discover", NB]);
    assert!(out.contains("10.219.2.2@tcp"), "{out}");
    let sends = |net: &str| -> u64 {
        let s = p.a.lnetctl_ok(&["net", "show", "-v", "--net", net]);
        s.lines()
            .find_map(|l| l.trim().strip_prefix("send_count: "))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no send_count in {s}"))
    };
    let (o0, t0) = (sends("o2ib"), sends("tcp"));
    // One MD per PUT: PUTs landing in one MD at the same time over two
    // LNDs would collide on its memory (the MD contract: EBUSY).
    p.b.cmd_ok("post 45 0x3 65536 600", T);
    let r = p.a.cmd(&format!("stream {NB} 45 0x3 65536 400 16"), T * 4);
    assert!(r.starts_with("ok stream"), "{r}\n{}", diag(&p));
    let (o1, t1) = (sends("o2ib"), sends("tcp"));
    assert!(
        o1 > o0 + 10 && t1 > t0 + 10,
        "o2ib {o0}->{o1}, tcp {t0}->{t1}"
    );
    // o2ib goes away: the traffic keeps flowing over tcp.
    p.a.lnetctl_ok(&["net", "del", "--net", "o2ib"]);
    p.a.cmd_ok(&format!("stream {NB} 45 0x3 65536 200 16"), T * 4);
    assert!(sends("tcp") >= t1 + 200, "tcp carried the rest");
}

#[test]
#[ignore = "needs root: creates network namespaces"]
fn streams_of_puts_with_acks_complete() {
    need_root();
    let p = pair("s", &[]);
    p.b.cmd_ok("sink 46 0x4 1048576", T);
    let r =
        p.a.cmd_ok(&format!("stream {NB} 46 0x4 65536 400 16"), T * 4);
    assert!(r.starts_with("ok stream sent=400 ok=400 failed=0 "), "{r}");
    // Every PUT by RDMA (PUT_REQ, PUT_ACK, RDMA WRITE, PUT_DONE). The
    // stream ends on the last ACK from B, which may come before A's own
    // completion of that PUT's RDMA (which counts it): wait for the count.
    lnet_tests::wait_for("400 PUTs by RDMA", T, || {
        match stat(&p.a, NA, "rdma_puts") {
            n if n >= 400 => Ok(()),
            n => Err(format!("{n} so far")),
        }
    });
    let s = p.a.lnetctl_ok(&["stats", "show"]);
    assert!(s.contains("    errors: 0\n"), "{s}");
}

/// Runs this build's `lst` against a node's control socket, session key 77.
fn lst(n: &TestNode, args: &[&str]) -> String {
    let out = std::process::Command::new(lnet_tests::bins::lst())
        .arg("--socket")
        .arg(n.socket())
        .args(args)
        .env("LST_SESSION", "77")
        .env_remove("LST_FEATURES")
        .env_remove("LNET_SOCKET")
        .output()
        .expect("run lst");
    let (o, e) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(
        out.status.success(),
        "lst {args:?}: {:?}\n{o}\n{e}",
        out.status
    );
    o
}

#[test]
#[ignore = "needs root: creates network namespaces"]
fn lst_brw_write_and_read_with_check_as_over_tcp() {
    need_root();
    let p = pair("l", &[]);
    lst(&p.a, &["new_session", "--timeout", "120", "o2ib"]);
    assert_eq!(
        lst(&p.a, &["add_group", "servers", NB]),
        format!("{NB} are added to session\n")
    );
    lst(&p.a, &["add_group", "clients", NA]);
    assert_eq!(
        lst(&p.a, &["ping", "--group", "servers"]),
        format!("\t12345-{NB}: Active [session: o2ib id: {NA}]\n")
    );
    lst(&p.a, &["add_batch", "bulk"]);
    for t in [
        &["brw", "write", "size=1M", "check=simple"][..],
        &["brw", "read", "size=1M", "check=simple"][..],
        &["brw", "write", "size=4k", "check=full"][..],
    ] {
        let mut args = vec![
            "add_test", "--batch", "bulk", "--from", "clients", "--to", "servers",
        ];
        args.extend_from_slice(t);
        lst(&p.a, &args);
    }
    lst(&p.a, &["run", "bulk"]);
    let st = lst(&p.a, &["stat", "--count", "2", "--delay", "1", "servers"]);
    let bw = |dir: &str| -> f64 {
        st[st.find("[LNet Bandwidth").expect("bandwidth")..]
            .split(&format!("[{dir}] Avg: "))
            .nth(1)
            .and_then(|t| t.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no [{dir}] bandwidth in {st}"))
    };
    assert!(bw("R") > 0.0 && bw("W") > 0.0, "{st}");
    lst(&p.a, &["stop", "bulk"]);
    assert_eq!(
        lst(&p.a, &["show_error", "clients", "servers"]),
        "clients:\nTotal 0 error nodes in clients\nservers:\nTotal 0 error nodes in servers\n"
    );
    assert_eq!(lst(&p.a, &["end_session"]), "session is ended\n");
    // Bulk moved by RDMA: the server GETs a write's pages from the client
    // (optimized GET, GET_REQ) and PUTs a read's pages to it.
    assert!(stat(&p.b, NB, "rdma_gets") > 0);
    assert!(stat(&p.b, NB, "rdma_puts") > 0);
    // Into the bulk MD itself, with no staging copy.
    assert_eq!(
        stat(&p.b, NB, "rdma_gets_direct"),
        stat(&p.b, NB, "rdma_gets")
    );
    assert_eq!(stat(&p.b, NB, "rdma_gets_copied"), 0);
}
