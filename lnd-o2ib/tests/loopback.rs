//! Two NIs of lnd-o2ib in one process over the soft verbs provider on
//! loopback addresses, each with a test-double host: delivery byte for
//! byte (IMMEDIATE and RDMA), credits, NOOPs, failures.

mod support;

use std::time::{Duration, Instant};

use lnd_api::{errno, HealthStatus};
use support::*;

const T: Duration = Duration::from_secs(30);
const SIZES: [usize; 7] = [0, 1, 3976, 3977, 4096, 65536, 1 << 20];

fn pair(mode_a: RecvMode, mode_b: RecvMode, extra: &[(&str, String)]) -> (TestNi, TestNi) {
    let port = test_port();
    // The first value of a name wins: `extra` overrides the defaults.
    let mut p: Vec<(&str, String)> = extra.to_vec();
    p.extend(params(port));
    let a = start("A", config(O2IB, "127.0.0.1", &p, &[]), mode_a).expect("start A");
    let b = start("B", config(O2IB, "127.0.0.2", &p, &[]), mode_b).expect("start B");
    (a, b)
}

fn stat(ni: &TestNi, name: &str) -> u64 {
    let s = ni.ni.ctl("stats", "").expect("stats");
    s.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {s}"))
}

/// Waits until counter `name` of `ni` reaches `want` (a count the peer's
/// side of a transfer sets once its own completion is in, which may be
/// after the other side saw the result); its value then.
fn wait_stat(ni: &TestNi, name: &str, want: u64) -> u64 {
    let deadline = Instant::now() + T;
    loop {
        let v = stat(ni, name);
        if v >= want || Instant::now() >= deadline {
            return v;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn check_delivery(to: &TestNi, sent: &[(u64, Vec<u8>)], from: &TestNi) {
    let deadline = Instant::now() + T;
    let got = loop {
        let got = to.host.received();
        if sent
            .iter()
            .all(|(t, _)| got.iter().any(|r| token_of(&r.hdr) == *t))
        {
            break got;
        }
        assert!(Instant::now() < deadline, "messages not received");
        std::thread::sleep(Duration::from_millis(2));
    };
    for (tok, data) in sent {
        let r = got
            .iter()
            .find(|r| token_of(&r.hdr) == *tok)
            .unwrap_or_else(|| panic!("message {tok} not received"));
        assert!(r.status.is_ok(), "receive of {tok}: {:?}", r.status);
        assert_eq!(r.from, from.nid());
        assert_eq!(r.hdr.payload_length as usize, data.len());
        assert!(r.data == *data, "payload of {} bytes differs", data.len());
    }
}

#[test]
fn all_sizes_both_directions_immediate_and_rdma() {
    let (a, b) = pair(
        RecvMode::Sync,
        RecvMode::Delayed(Duration::from_millis(2)),
        &[],
    );
    assert_eq!(a.nid().to_string(), "127.0.0.1@o2ib");
    let (mut ab, mut ba, mut ta, mut tb) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (i, &n) in SIZES.iter().enumerate() {
        for rep in 0..2u8 {
            let d1 = pattern(n, i as u8 * 2 + rep);
            let (t1, m1) = put(&a, b.nid(), &d1);
            a.ni.send(m1).expect("send A->B");
            ab.push((t1, d1));
            ta.push(t1);
            let d2 = pattern(n, 100 + i as u8 * 2 + rep);
            let (t2, m2) = put(&b, a.nid(), &d2);
            b.ni.send(m2).expect("send B->A");
            ba.push((t2, d2));
            tb.push(t2);
        }
    }
    for c in a.host.wait_sent(&ta, T) {
        assert!(c.is_ok(), "{c:?}");
    }
    for c in b.host.wait_sent(&tb, T) {
        assert!(c.is_ok(), "{c:?}");
    }
    check_delivery(&b, &ab, &a);
    check_delivery(&a, &ba, &b);
    // 0, 1 and 3976 bytes go IMMEDIATE; 3977 and up by RDMA.
    assert_eq!(stat(&a, "immediate_sent"), 6);
    assert_eq!(stat(&a, "rdma_puts"), 8);
    let conns = wait_conns(&a.ni, 1, T);
    assert!(conns.contains("queue_depth: 8"), "{conns}");
    assert!(conns.contains("max_frags: 257"), "{conns}");
    a.shutdown();
    b.shutdown();
}

#[test]
fn span_windows_are_moved_byte_exact() {
    let (a, b) = pair(
        RecvMode::Sync,
        RecvMode::Window {
            offset: 4097,
            short: 0,
        },
        &[],
    );
    let mut sent = Vec::new();
    let mut toks = Vec::new();
    for &n in &[10usize, 5000, 300_000] {
        let d = pattern(n, 7);
        let (t, m, span) = put_span(&a, b.nid(), &d, 123, 0x55);
        a.ni.send_span(m, span).expect("send");
        sent.push((t, d));
        toks.push(t);
    }
    for c in a.host.wait_sent(&toks, T) {
        assert!(c.is_ok(), "{c:?}");
    }
    check_delivery(&b, &sent, &a);
    for r in b.host.received() {
        assert!(
            r.around.iter().all(|x| *x == AROUND),
            "bytes around the window changed"
        );
    }
}

#[test]
fn credits_run_out_and_come_back_with_noops() {
    // B holds every receive: its buffers are not re-posted, so A's eight
    // credits run out and the rest waits.
    let (a, b) = pair(RecvMode::Sync, RecvMode::Hold, &[]);
    let mut toks = Vec::new();
    let mut sent = Vec::new();
    for i in 0..20u8 {
        let d = pattern(100, i);
        let (t, m) = put(&a, b.nid(), &d);
        a.ni.send(m).expect("send");
        toks.push(t);
        sent.push((t, d));
    }
    let deadline = Instant::now() + T;
    while b.host.held() < 8 {
        assert!(Instant::now() < deadline, "first 8 never arrived");
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(b.host.held(), 8, "more than the queue depth arrived");
    let list = a.ni.ctl("conn_list", "").expect("list");
    assert!(list.contains("credits: 0"), "{list}");
    // Release until all arrived; B has nothing to send, so it returns the
    // credits in NOOPs.
    let deadline = Instant::now() + T;
    loop {
        for r in b.host.release() {
            r.expect("recv");
        }
        if b.host.received().len() >= 20 {
            break;
        }
        assert!(Instant::now() < deadline, "credits never came back");
        std::thread::sleep(Duration::from_millis(5));
    }
    check_delivery(&b, &sent, &a);
    for c in a.host.wait_sent(&toks, T) {
        assert!(c.is_ok(), "{c:?}");
    }
    assert!(stat(&b, "noops_sent") >= 1, "no NOOP sent");
    assert!(stat(&a, "noops_received") >= 1, "no NOOP received");
}

#[test]
fn registrations_are_cached_in_steady_state() {
    let (a, b) = pair(RecvMode::Sync, RecvMode::Sync, &[]);
    let d = pattern(200_000, 3);
    let (whole, _) = filled_span(200_000, 0);
    whole.write_at(0, &d).expect("fill");
    let mut toks = Vec::new();
    for _ in 0..10 {
        let (t, m, _) = put_span(&a, b.nid(), &[], 0, 0);
        let mut m = m;
        m.hdr.payload_length = d.len() as u32;
        a.ni.send_span(m, whole.clone()).expect("send");
        toks.push(t);
        for c in a.host.wait_sent(&[t], T) {
            assert!(c.is_ok(), "{c:?}");
        }
    }
    // The source MD was registered once (plus the connection's two
    // message buffers), then found in the cache.
    assert_eq!(stat(&a, "rdma_puts"), 10);
    assert!(
        stat(&a, "cache_hits") >= 9,
        "{}",
        a.ni.ctl("stats", "").expect("s")
    );
    assert_eq!(stat(&a, "registrations"), 3);
    // When the memory goes, its registration goes too.
    drop(whole);
    let deadline = Instant::now() + T;
    while stat(&a, "cache_entries") != 0 {
        assert!(
            Instant::now() < deadline,
            "registration outlived its memory: {}",
            a.ni.ctl("stats", "").expect("s")
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn peer_killed_mid_rdma_fails_in_flight_messages() {
    let (a, b) = pair(RecvMode::Sync, RecvMode::Hold, &[]);
    // A first message brings the connection up.
    let (t0, m0) = put(&a, b.nid(), b"hi");
    a.ni.send(m0).expect("send");
    let deadline = Instant::now() + T;
    while b.host.held() < 1 {
        assert!(Instant::now() < deadline, "no first message");
        std::thread::sleep(Duration::from_millis(5));
    }
    // Two RDMA PUTs wait at B for the host (no PUT_ACK yet), one IMMEDIATE
    // is in B's hands too.
    let mut toks = Vec::new();
    for i in 0..2u8 {
        let (t, m) = put(&a, b.nid(), &pattern(500_000, i));
        a.ni.send(m).expect("send");
        toks.push(t);
    }
    while b.host.held() < 3 {
        assert!(Instant::now() < deadline, "PUT_REQs never arrived");
        std::thread::sleep(Duration::from_millis(5));
    }
    b.shutdown();
    let done = a.host.wait_sent(&toks, T);
    for c in done {
        // Reset seen as the CM event or as a failed work request first.
        assert!(
            c.errno == -errno::ECONNRESET || c.errno == -errno::EIO,
            "{c:?}"
        );
        assert_eq!(c.health, HealthStatus::REMOTE_DROPPED, "{c:?}");
    }
    let first = a.host.wait_sent(&[t0], T);
    assert!(
        first[0].is_ok(),
        "the IMMEDIATE had completed: {:?}",
        first[0]
    );
    a.host.wait_notify(b.nid(), false, T);
    // A later send finds nobody and fails instead of hanging.
    let (t, m) = put(&a, b.nid(), b"late");
    a.ni.send(m).expect("send");
    let c = a.host.wait_sent(&[t], T);
    assert!(!c[0].is_ok());
}

#[test]
fn wrong_net_and_bad_interface_are_refused() {
    let p = params(test_port());
    let e = start("X", config(TCP, "127.0.0.1", &p, &[]), RecvMode::Sync)
        .err()
        .expect("refused");
    assert!(e.message.contains("o2ib networks only"), "{e}");
    let e = start("X", config(O2IB, "ib0", &p, &[]), RecvMode::Sync)
        .err()
        .expect("refused");
    assert_eq!(e.errno, errno::ENODEV);
    let e = start(
        "X",
        config(O2IB, "127.0.0.1", &p, &[("peer_credits", "lots")]),
        RecvMode::Sync,
    )
    .err()
    .expect("refused");
    assert!(e.message.contains("peer_credits"), "{e}");
    // This host has no rdma-core (or no device, or 127.0.0.1 is no RDMA
    // port): the rdma provider says which.
    let e = start(
        "X",
        config(O2IB, "127.0.0.1", &p, &[("provider", "rdma")]),
        RecvMode::Sync,
    )
    .err()
    .expect("refused");
    assert!(
        e.message
            .contains("rdma-core is not installed (libibverbs.so.1")
            || e.message.contains("no RDMA device")
            || e.message.contains("not the address of an RDMA port"),
        "{e}"
    );
}

#[test]
fn unanswered_rdma_put_times_out_with_network_timeout() {
    let (a, b) = pair(
        RecvMode::Sync,
        RecvMode::Hold,
        &[("timeout", "2".to_string())],
    );
    let (t, m) = put(&a, b.nid(), &pattern(100_000, 1));
    a.ni.send(m).expect("send");
    let c = a.host.wait_sent(&[t], T);
    assert_eq!(c[0].errno, -errno::ETIMEDOUT, "{:?}", c[0]);
    assert_eq!(c[0].health, HealthStatus::NETWORK_TIMEOUT);
    a.host.wait_log("timed out", T);
    let _ = b;
}

#[test]
fn keepalive_noops_flow_on_an_idle_connection() {
    let (a, b) = pair(
        RecvMode::Sync,
        RecvMode::Sync,
        &[("keepalive", "1".to_string())],
    );
    let (t, m) = put(&a, b.nid(), b"x");
    a.ni.send(m).expect("send");
    assert!(a.host.wait_sent(&[t], T)[0].is_ok());
    let deadline = Instant::now() + T;
    while stat(&b, "noops_received") < 2 || stat(&a, "noops_received") < 2 {
        assert!(Instant::now() < deadline, "no keepalive NOOPs");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Still one healthy connection.
    let list = wait_conns(&a.ni, 1, T);
    assert_eq!(list.matches("- nid:").count(), 1, "{list}");
}

#[test]
fn a_restarted_peer_gets_a_new_connection() {
    let port = test_port();
    let p = params(port);
    let a = start("A", config(O2IB, "127.0.0.1", &p, &[]), RecvMode::Sync).expect("A");
    let b = start("B", config(O2IB, "127.0.0.2", &p, &[]), RecvMode::Sync).expect("B");
    let (t, m) = put(&a, b.nid(), b"one");
    a.ni.send(m).expect("send");
    assert!(a.host.wait_sent(&[t], T)[0].is_ok());
    b.shutdown();
    a.host.wait_notify(b.nid(), false, T);
    // B comes back with a new incarnation on the same address.
    let b2 = start("B2", config(O2IB, "127.0.0.2", &p, &[]), RecvMode::Sync).expect("B2");
    let (t, m) = put(&a, b2.nid(), b"two");
    a.ni.send(m).expect("send");
    assert!(a.host.wait_sent(&[t], T)[0].is_ok());
    assert_eq!(b2.host.wait_received(1, T)[0].data, b"two");
}

/// Regression (lst brw over lnetd): the NIC filling one receive buffer
/// while the LND reads another must not collide (each buffer is its own
/// allocation).
#[test]
fn many_messages_both_ways_while_receives_are_read_late() {
    let (a, b) = pair(
        RecvMode::Delayed(Duration::from_millis(1)),
        RecvMode::Delayed(Duration::from_millis(1)),
        &[],
    );
    let (mut ab, mut ba, mut ta, mut tb) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for i in 0..300u32 {
        let n = [100usize, 3000, 20_000][i as usize % 3];
        let d = pattern(n, i as u8);
        let (t, m) = put(&a, b.nid(), &d);
        a.ni.send(m).expect("send");
        ab.push((t, d));
        ta.push(t);
        let d = pattern(n, (i as u8).wrapping_add(7));
        let (t, m) = put(&b, a.nid(), &d);
        b.ni.send(m).expect("send");
        ba.push((t, d));
        tb.push(t);
    }
    for c in a
        .host
        .wait_sent(&ta, T)
        .into_iter()
        .chain(b.host.wait_sent(&tb, T))
    {
        assert!(c.is_ok(), "{c:?}");
    }
    check_delivery(&b, &ab, &a);
    check_delivery(&a, &ba, &b);
    assert!(
        a.host
            .logs()
            .iter()
            .all(|(_, l)| !l.contains("closing connection")),
        "{:?}",
        a.host.logs()
    );
}

/// The REPLY `a` received for GET `tok`, waited for.
fn reply_of(a: &TestNi, tok: u64) -> Received {
    let deadline = Instant::now() + T;
    loop {
        if let Some(r) = a
            .host
            .received()
            .into_iter()
            .find(|r| r.hdr.msg_type == lnd_api::MsgType::REPLY && reply_token(&r.hdr) == tok)
        {
            return r;
        }
        assert!(Instant::now() < deadline, "no REPLY for GET {tok}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn gets_of_all_sizes_are_byte_exact_immediate_and_optimized() {
    let (a, b) = pair(RecvMode::Sync, RecvMode::Sync, &[]);
    // (sink, bytes the target has): the last one is shorter than its sink.
    let mut cases: Vec<(usize, usize)> = SIZES.iter().map(|&n| (n, n)).collect();
    cases.push((300_000, 123_457));
    for (i, &(sink, have)) in cases.iter().enumerate() {
        let seed = 40 + i as u8;
        b.host.set_mode(RecvMode::Reply { len: have, seed });
        let (t, m) = get(&a, b.nid(), sink);
        a.ni.send(m).expect("send GET");
        let c = a.host.wait_sent(&[t], T);
        assert!(c[0].is_ok(), "GET of {sink}: {:?}", c[0]);
        let r = reply_of(&a, t);
        assert!(r.status.is_ok(), "REPLY of {sink}: {:?}", r.status);
        assert_eq!(r.from, b.nid());
        assert_eq!(r.hdr.src_nid, b.nid());
        assert_eq!(r.hdr.dest_nid, a.nid());
        assert_eq!(r.hdr.payload_length as usize, have);
        assert!(
            r.data == pattern(have, seed),
            "REPLY of {have} bytes differs"
        );
    }
    // Sinks of 0, 1 and 3976 bytes: GET and REPLY IMMEDIATE. Larger
    // ones: GET_REQ, RDMA WRITE by the target, GET_DONE.
    assert_eq!(stat(&a, "immediate_sent"), 3);
    assert_eq!(stat(&a, "rdma_gets"), 5);
    // The target's RDMA WRITEs (counted with its RDMA PUTs, once the
    // WRITE and the GET_DONE behind it are acknowledged: A may see the
    // REPLY first); no REPLY went as PUT_REQ (which A would have answered
    // with PUT_ACK, not counted).
    assert_eq!(wait_stat(&b, "rdma_puts", 5), 5);
    assert_eq!(stat(&b, "immediate_sent"), 3);
    // The staging sinks were registered once per size class.
    let regs = stat(&a, "registrations");
    let (t, m) = get(&a, b.nid(), 65536);
    b.host.set_mode(RecvMode::Reply {
        len: 65536,
        seed: 1,
    });
    a.ni.send(m).expect("send GET");
    assert!(a.host.wait_sent(&[t], T)[0].is_ok());
    assert!(reply_of(&a, t).data == pattern(65536, 1));
    assert_eq!(stat(&a, "registrations"), regs, "staging registered again");
    a.shutdown();
    b.shutdown();
}

#[test]
fn optimized_get_without_a_match_fails_with_enodata() {
    let (a, b) = pair(RecvMode::Sync, RecvMode::Discard, &[]);
    let (t, m) = get(&a, b.nid(), 100_000);
    a.ni.send(m).expect("send GET");
    let c = a.host.wait_sent(&[t], T);
    // GET_DONE carried -ENODATA: the GET fails, the network is healthy.
    assert_eq!(c[0].errno, -61, "{:?}", c[0]);
    assert_eq!(c[0].health, HealthStatus::OK);
    assert!(a
        .host
        .received()
        .iter()
        .all(|r| r.hdr.msg_type != lnd_api::MsgType::REPLY));
    // The connection is still fine for the next GET.
    b.host.set_mode(RecvMode::Reply { len: 5000, seed: 2 });
    let (t, m) = get(&a, b.nid(), 5000);
    a.ni.send(m).expect("send GET");
    assert!(a.host.wait_sent(&[t], T)[0].is_ok());
    assert!(reply_of(&a, t).data == pattern(5000, 2));
}

#[test]
fn optimized_get_in_flight_fails_when_the_peer_dies() {
    let (a, b) = pair(RecvMode::Sync, RecvMode::Hold, &[]);
    let (t, m) = get(&a, b.nid(), 500_000);
    a.ni.send(m).expect("send GET");
    let deadline = Instant::now() + T;
    while b.host.held() < 1 {
        assert!(Instant::now() < deadline, "GET_REQ never arrived");
        std::thread::sleep(Duration::from_millis(5));
    }
    b.shutdown();
    let c = a.host.wait_sent(&[t], T);
    assert!(
        c[0].errno == -errno::ECONNRESET || c[0].errno == -errno::EIO,
        "{:?}",
        c[0]
    );
    assert_eq!(c[0].health, HealthStatus::REMOTE_DROPPED);
}

#[test]
fn injected_bad_rkey_fails_the_rdma_with_remote_error_then_traffic_resumes() {
    let (a, b) = pair(RecvMode::Sync, RecvMode::Sync, &[]);
    let e = b.ni.ctl("inject_bad_rkey", "x").expect_err("refused");
    assert_eq!(e.errno, errno::EINVAL);
    assert_eq!(
        b.ni.ctl("inject_bad_rkey", "1").expect("knob"),
        "inject_bad_rkey: 1\n"
    );
    // B's PUT_ACK names a wrong key: A's RDMA WRITE fails at B's HCA.
    let (t, m) = put(&a, b.nid(), &pattern(100_000, 3));
    a.ni.send(m).expect("send");
    let c = a.host.wait_sent(&[t], T);
    assert_eq!(c[0].health, HealthStatus::REMOTE_ERROR, "{:?}", c[0]);
    a.host.wait_log("remote access error", T);
    // The knob is spent: the next PUT goes through on a new connection.
    let d = pattern(100_000, 4);
    let (t, m) = put(&a, b.nid(), &d);
    a.ni.send(m).expect("send");
    assert!(a.host.wait_sent(&[t], T)[0].is_ok());
    check_delivery(&b, &[(t, d)], &a);
}

#[test]
fn interface_names_resolve_to_their_ipv4_address() {
    let p = params(test_port());
    let a = start("A", config(O2IB, "lo", &p, &[]), RecvMode::Sync).expect("--if lo");
    assert_eq!(a.nid().to_string(), "127.0.0.1@o2ib");
    assert_eq!(
        a.info
            .interfaces
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>(),
        ["lo"]
    );
    a.shutdown();
    let e = start("X", config(O2IB, "nosuchif9", &p, &[]), RecvMode::Sync)
        .err()
        .expect("refused");
    assert_eq!(e.errno, errno::ENODEV);
    assert_eq!(
        e.message.as_str(),
        "cannot add net o2ib: interface \"nosuchif9\" does not exist or has no IPv4 address \
         (check \"ip -4 addr show nosuchif9\")"
    );
}
