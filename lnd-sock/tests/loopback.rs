//! Two or more NIs of lnd-sock in one process on loopback addresses, each
//! with a test-double host: delivery byte for byte, connection types,
//! failures, restarts.

mod support;

use std::time::Duration;

use lnd_api::{errno, HealthStatus, NetId};
use support::*;

const T: Duration = Duration::from_secs(20);
const SIZES: [usize; 5] = [0, 1, 4096, 65536, 1 << 20];

fn pair(mode_a: RecvMode, mode_b: RecvMode, extra: &[(&str, String)]) -> (TestNi, TestNi) {
    let port = test_port();
    let mut p = params(port);
    p.extend(extra.iter().cloned());
    let a = start("A", config(TCP, "127.0.0.1", &p, &[]), mode_a).expect("start A");
    let b = start("B", config(TCP, "127.0.0.2", &p, &[]), mode_b).expect("start B");
    (a, b)
}

fn check_delivery(to: &TestNi, sent: &[(u64, Vec<u8>)], from: &TestNi) {
    let deadline = std::time::Instant::now() + T;
    let got = loop {
        let got = to.host.received();
        if sent
            .iter()
            .all(|(t, _)| got.iter().any(|r| token_of(&r.hdr) == *t))
        {
            break got;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "messages not received"
        );
        std::thread::sleep(Duration::from_millis(2));
    };
    for (tok, data) in sent {
        let r = got
            .iter()
            .find(|r| token_of(&r.hdr) == *tok)
            .unwrap_or_else(|| panic!("message {tok} not received"));
        assert!(r.status.is_ok(), "receive of {tok}: {:?}", r.status);
        assert_eq!(r.from, from.nid());
        assert_eq!(r.hdr.src_nid, from.nid());
        assert_eq!(r.hdr.payload_length as usize, data.len());
        assert!(r.data == *data, "payload of {} bytes differs", data.len());
    }
}

#[test]
fn all_sizes_both_directions_concurrently() {
    let (a, b) = pair(
        RecvMode::Sync,
        RecvMode::Delayed(Duration::from_millis(2)),
        &[],
    );
    assert_eq!(a.nid().to_string(), "127.0.0.1@tcp");
    assert_eq!(b.nid().to_string(), "127.0.0.2@tcp");
    let mut ab = Vec::new();
    let mut ba = Vec::new();
    let mut toks_a = Vec::new();
    let mut toks_b = Vec::new();
    for (i, &n) in SIZES.iter().enumerate() {
        for rep in 0..2u8 {
            let d1 = pattern(n, i as u8 * 2 + rep);
            let (t1, m1) = put(&a, b.nid(), &d1);
            a.ni.send(m1).expect("send A->B");
            ab.push((t1, d1));
            toks_a.push(t1);
            let d2 = pattern(n, 100 + i as u8 * 2 + rep);
            let (t2, m2) = put(&b, a.nid(), &d2);
            b.ni.send(m2).expect("send B->A");
            ba.push((t2, d2));
            toks_b.push(t2);
        }
    }
    for c in a.host.wait_sent(&toks_a, T) {
        assert_eq!(c, lnd_api::Completion::OK);
    }
    for c in b.host.wait_sent(&toks_b, T) {
        assert_eq!(c, lnd_api::Completion::OK);
    }
    check_delivery(&b, &ab, &a);
    check_delivery(&a, &ba, &b);
    for t in &toks_a {
        assert_eq!(a.host.sent_count(*t), 1, "finalized exactly once");
    }
    // Typed connections: one CONTROL, conns_per_peer (1 on lo) of each bulk
    // type, with B (not root, B's own connections to A come from a userspace
    // peer, U<port>-B, listed besides).
    let list = wait_conns(&a.ni, 3, T);
    let to_b: Vec<&str> = list
        .split("    - peer: ")
        .filter(|e| e.starts_with(&format!("{PID}-{}\n", b.nid())))
        .collect();
    for t in ["control", "bulk_in", "bulk_out"] {
        assert_eq!(
            to_b.iter()
                .filter(|e| e.contains(&format!("type: {t}\n")))
                .count(),
            1,
            "{t} in\n{list}"
        );
    }
    assert!(list.contains("protocol: 3"), "{list}");
    assert!(a.ni.query(b.nid()).alive.into_option() == Some(true));
    a.shutdown();
    b.shutdown();
}

#[test]
fn conns_per_peer_and_lnd_tunables() {
    let port = test_port();
    let p = params(port);
    let a = start(
        "A",
        config(
            TCP,
            "127.0.0.1",
            &p,
            &[("conns_per_peer", "2"), ("tos", "16")],
        ),
        RecvMode::Sync,
    )
    .expect("start A");
    let b = start(
        "B",
        config(TCP, "127.0.0.2", &p, &[("conns_per_peer", "2")]),
        RecvMode::Sync,
    )
    .expect("start B");
    let names: Vec<(String, String)> = a
        .info
        .lnd_tunables
        .iter()
        .map(|t| (t.name.to_string(), t.value.to_string()))
        .collect();
    assert_eq!(
        names,
        [
            ("conns_per_peer".to_string(), "2".to_string()),
            ("timeout".to_string(), "5".to_string()),
            ("tos".to_string(), "16".to_string())
        ]
    );
    assert_eq!(a.info.tunables.peer_credits, 8);
    assert_eq!(a.info.tunables.credits, 256);
    assert_eq!(a.info.tunables.peer_timeout, 180);
    assert_eq!(a.info.timeout_secs, 5);
    let mut toks = Vec::new();
    let mut sent = Vec::new();
    for i in 0..8u8 {
        let d = pattern(if i % 2 == 0 { 100 } else { 200_000 }, i);
        let (t, m) = put(&a, b.nid(), &d);
        a.ni.send(m).expect("send");
        toks.push(t);
        sent.push((t, d));
    }
    assert!(a.host.wait_sent(&toks, T).iter().all(|c| c.is_ok()));
    check_delivery(&b, &sent, &a);
    let list = wait_conns(&a.ni, 5, T);
    assert_eq!(list.matches("type: control\n").count(), 1, "{list}");
    assert_eq!(list.matches("type: bulk_in\n").count(), 2, "{list}");
    assert_eq!(list.matches("type: bulk_out\n").count(), 2, "{list}");
    // B sees the inverse types, as passive connections.
    let lb = wait_conns(&b.ni, 5, T);
    assert_eq!(lb.matches("active: false").count(), 5, "{lb}");
    a.shutdown();
    b.shutdown();
}

#[test]
fn discard_and_delayed_receives() {
    let (a, b) = pair(RecvMode::Sync, RecvMode::Discard, &[]);
    let (t, m) = put(&a, b.nid(), &pattern(70_000, 3));
    a.ni.send(m).expect("send");
    let (t2, m2) = put(&a, b.nid(), &pattern(10, 4));
    a.ni.send(m2).expect("send");
    assert!(a.host.wait_sent(&[t, t2], T).iter().all(|c| c.is_ok()));
    let got = b.host.wait_received(2, T);
    assert!(got.iter().all(|r| r.data.is_empty()));
    // Held receives: nothing moves until released, then all arrive.
    b.host.set_mode(RecvMode::Hold);
    let d = pattern(5000, 9);
    let (t3, m3) = put(&a, b.nid(), &d);
    a.ni.send(m3).expect("send");
    let deadline = std::time::Instant::now() + T;
    while b.host.held() == 0 {
        assert!(std::time::Instant::now() < deadline, "parse never came");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(b.host.received().len(), 2);
    assert!(b.host.release().iter().all(|r| r.is_ok()));
    check_delivery(&b, &[(t3, d)], &a);
    a.shutdown();
    b.shutdown();
}

#[test]
fn peer_shutdown_mid_transfer_fails_the_sends() {
    // B never answers recv: A's 1 MiB sends back up, then B goes away.
    let (a, b) = pair(RecvMode::Sync, RecvMode::Hold, &[]);
    let mut toks = Vec::new();
    for i in 0..24u8 {
        let (t, m) = put(&a, b.nid(), &pattern(1 << 20, i));
        a.ni.send(m).expect("send");
        toks.push(t);
    }
    let deadline = std::time::Instant::now() + T;
    while b.host.held() == 0 {
        assert!(std::time::Instant::now() < deadline, "no message reached B");
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(200));
    let t0 = std::time::Instant::now();
    b.shutdown();
    // B's held receive is refused after shutdown (the host completes it).
    assert!(b.host.release().iter().all(|r| r.is_err()));
    // Within sock_timeout (5 s) and a loaded machine's slack: far below
    // the default timeouts (50 s).
    let done = a.host.wait_sent(&toks, T);
    assert!(t0.elapsed() < T, "{:?}", t0.elapsed());
    let failed: Vec<_> = done.iter().filter(|c| !c.is_ok()).collect();
    assert!(!failed.is_empty(), "some sends must fail: {done:?}");
    for c in failed {
        assert!(
            matches!(
                c.health,
                HealthStatus::REMOTE_DROPPED
                    | HealthStatus::REMOTE_ERROR
                    | HealthStatus::NETWORK_TIMEOUT
            ),
            "{c:?}"
        );
        assert!(c.errno < 0);
    }
    for t in &toks {
        assert_eq!(a.host.sent_count(*t), 1, "finalized exactly once");
    }
    a.host.wait_notify(b.nid(), false, T);
    a.shutdown();
}

#[test]
fn shutdown_fails_everything_outstanding() {
    let (a, b) = pair(RecvMode::Sync, RecvMode::Hold, &[]);
    let mut toks = Vec::new();
    for i in 0..16u8 {
        let (t, m) = put(&a, b.nid(), &pattern(1 << 20, i));
        a.ni.send(m).expect("send");
        toks.push(t);
    }
    std::thread::sleep(Duration::from_millis(200));
    a.shutdown();
    // Everything was finalized by the time shutdown returned.
    let done = a.host.wait_sent(&toks, Duration::from_millis(1));
    assert!(done.iter().any(|c| !c.is_ok()));
    // And sends after shutdown are refused without taking ownership.
    let (t, m) = put(&a, b.nid(), b"late");
    let e = a.ni.send(m).expect_err("after shutdown");
    assert_eq!(e.errno, 108);
    assert_eq!(a.host.sent_count(t), 0);
    b.shutdown();
}

#[test]
fn reconnect_after_restart() {
    let port = test_port();
    let p = params(port);
    let a = start("A", config(TCP, "127.0.0.1", &p, &[]), RecvMode::Sync).expect("A");
    let b = start("B", config(TCP, "127.0.0.2", &p, &[]), RecvMode::Sync).expect("B");
    let d = pattern(3000, 1);
    let (t, m) = put(&a, b.nid(), &d);
    a.ni.send(m).expect("send");
    assert!(a.host.wait_sent(&[t], T)[0].is_ok());
    check_delivery(&b, &[(t, d)], &a);
    b.shutdown();
    // A restarted B on the same address: A reconnects (new incarnation).
    let b2 = start("B2", config(TCP, "127.0.0.2", &p, &[]), RecvMode::Sync).expect("B2");
    std::thread::sleep(Duration::from_millis(100));
    let mut ok = false;
    for i in 0..20u8 {
        let d = pattern(5000, i);
        let (t, m) = put(&a, b2.nid(), &d);
        a.ni.send(m).expect("send");
        if a.host.wait_sent(&[t], T)[0].is_ok() {
            check_delivery(&b2, &[(t, d)], &a);
            ok = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(ok, "A never got through to the restarted B");
    // B2 sends back over the connections it accepted.
    let d = pattern(10, 7);
    let (t, m) = put(&b2, a.nid(), &d);
    b2.ni.send(m).expect("send");
    assert!(b2.host.wait_sent(&[t], T)[0].is_ok());
    check_delivery(&a, &[(t, d)], &b2);
    a.shutdown();
    b2.shutdown();
}

#[test]
fn connection_race_both_sides_connect_at_once() {
    for round in 0..3 {
        let (a, b) = pair(RecvMode::Sync, RecvMode::Sync, &[]);
        let mut ta = Vec::new();
        let mut tb = Vec::new();
        let mut sa = Vec::new();
        let mut sb = Vec::new();
        for i in 0..4u8 {
            let d = pattern(2000 * i as usize, i + round);
            let (t, m) = put(&a, b.nid(), &d);
            let d2 = pattern(3000 * i as usize, i + 50);
            let (t2, m2) = put(&b, a.nid(), &d2);
            a.ni.send(m).expect("send");
            b.ni.send(m2).expect("send");
            ta.push(t);
            tb.push(t2);
            sa.push((t, d));
            sb.push((t2, d2));
        }
        assert!(a.host.wait_sent(&ta, T).iter().all(|c| c.is_ok()));
        assert!(b.host.wait_sent(&tb, T).iter().all(|c| c.is_ok()));
        check_delivery(&b, &sa, &a);
        check_delivery(&a, &sb, &b);
        a.shutdown();
        b.shutdown();
    }
}

#[test]
fn nis_of_two_nets_share_one_acceptor_port() {
    let port = test_port();
    let p = params(port);
    let tcp1 = NetId::new(2, 1);
    let a0 = start("A0", config(TCP, "127.0.0.1", &p, &[]), RecvMode::Sync).expect("A0");
    let a1 = start("A1", config(tcp1, "127.0.0.1", &p, &[]), RecvMode::Sync).expect("A1");
    let b0 = start("B0", config(TCP, "127.0.0.2", &p, &[]), RecvMode::Sync).expect("B0");
    let b1 = start("B1", config(tcp1, "127.0.0.2", &p, &[]), RecvMode::Sync).expect("B1");
    assert_eq!(a1.nid().to_string(), "127.0.0.1@tcp1");
    let d0 = pattern(100, 1);
    let d1 = pattern(200, 2);
    let (t0, m0) = put(&b0, a0.nid(), &d0);
    let (t1, m1) = put(&b1, a1.nid(), &d1);
    b0.ni.send(m0).expect("send");
    b1.ni.send(m1).expect("send");
    assert!(b0.host.wait_sent(&[t0], T)[0].is_ok());
    assert!(b1.host.wait_sent(&[t1], T)[0].is_ok());
    check_delivery(&a0, &[(t0, d0)], &b0);
    check_delivery(&a1, &[(t1, d1)], &b1);
    assert!(a0.host.received().len() == 1 && a1.host.received().len() == 1);
    // The same NID twice on one port is refused.
    let dup = start("dup", config(TCP, "127.0.0.1", &p, &[]), RecvMode::Sync);
    assert_eq!(dup.err().map(|e| e.errno), Some(errno::EEXIST));
    for n in [a0, a1, b0, b1] {
        n.shutdown();
    }
}

#[test]
fn unreachable_peer_fails_as_remote_dropped() {
    let port = test_port();
    let p = params(port);
    let a = start("A", config(TCP, "127.0.0.1", &p, &[]), RecvMode::Sync).expect("A");
    // Nobody listens on 127.0.0.9.
    let target = lnd_api::Nid::new4(TCP, u32::from_be_bytes([127, 0, 0, 9]));
    let (t, m) = put(&a, target, b"x");
    a.ni.send(m).expect("accepted for sending");
    let c = a.host.wait_sent(&[t], T)[0];
    // The connect error as it came, classified as ksocklnd does for the
    // sends a failed connect leaves behind: the peer dropped it, so LNet
    // may resend it to another NID of that peer.
    assert_eq!(c.errno, -errno::ECONNREFUSED);
    assert_eq!(c.health, HealthStatus::REMOTE_DROPPED);
    assert_eq!(a.ni.query(target).alive.into_option(), Some(false));
    // Another net is refused at once, without ownership.
    let other = lnd_api::Nid::new4(NetId::new(2, 5), 1);
    let (t2, m2) = put(&a, other, b"x");
    assert_eq!(
        a.ni.send(m2).expect_err("wrong net").errno,
        errno::ENETUNREACH
    );
    assert_eq!(a.host.sent_count(t2), 0);
    a.shutdown();
}

#[test]
fn startup_errors_are_clear() {
    let p = params(test_port());
    let e = start("X", config(TCP, "eth9", &p, &[]), RecvMode::Sync)
        .err()
        .expect("no such interface");
    assert_eq!(e.errno, errno::ENODEV);
    assert_eq!(
        e.message.as_str(),
        "cannot add net tcp: interface eth9 does not exist (list interfaces with \"ip -br link\")"
    );
    let mut bad = p.clone();
    bad.push(("accept", "sometimes".to_string()));
    let e = start("X", config(TCP, "127.0.0.1", &bad, &[]), RecvMode::Sync)
        .err()
        .expect("bad parameter");
    assert_eq!(e.errno, errno::EINVAL);
    assert!(e.message.contains("accept"), "{}", e.message);
    let e = start(
        "X",
        config(TCP, "127.0.0.1", &p, &[("conns_per_peer", "300")]),
        RecvMode::Sync,
    )
    .err()
    .expect("bad tunable");
    assert_eq!(e.errno, errno::EINVAL);
}

#[test]
fn bulk_port_and_accept_none() {
    let (port, bulk) = (test_port(), test_port());
    let mut p = params(port);
    p.push(("accept_port_bulk", bulk.to_string()));
    let b = start("B", config(TCP, "127.0.0.2", &p, &[]), RecvMode::Sync).expect("B");
    // A runs no acceptor at all: it can still connect out.
    let mut pa = p.clone();
    pa.retain(|(k, _)| *k != "accept");
    pa.push(("accept", "none".to_string()));
    let a = start("A", config(TCP, "127.0.0.1", &pa, &[]), RecvMode::Sync).expect("A");
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
    let mut toks = Vec::new();
    let mut sent = Vec::new();
    for (i, n) in [10usize, 200_000].into_iter().enumerate() {
        let d = pattern(n, i as u8);
        let (t, m) = put(&a, b.nid(), &d);
        a.ni.send(m).expect("send");
        toks.push(t);
        sent.push((t, d));
    }
    assert!(a.host.wait_sent(&toks, T).iter().all(|c| c.is_ok()));
    check_delivery(&b, &sent, &a);
    // CONTROL went to accept_port, the bulk connections to accept_port_bulk.
    let list = wait_conns(&a.ni, 3, T);
    assert_eq!(
        list.matches(&format!("remote: 127.0.0.2:{port}\n")).count(),
        1,
        "{list}"
    );
    assert_eq!(
        list.matches(&format!("remote: 127.0.0.2:{bulk}\n")).count(),
        2,
        "{list}"
    );
    a.shutdown();
    b.shutdown();
}

#[test]
fn a_header_lnet_never_receives_times_out_and_closes() {
    // B's host takes the header and never calls recv.
    let (a, b) = pair(
        RecvMode::Sync,
        RecvMode::Hold,
        &[("sock_timeout", "2".to_string())],
    );
    let d = pattern(3000, 7);
    let (t, m) = put(&a, b.nid(), &d);
    a.ni.send(m).expect("send");
    assert!(a.host.wait_sent(&[t], T)[0].is_ok());
    let line = b.host.wait_log("not received by LNet within 2 s", T);
    // A is a userspace peer of B's when not root (U<port>-A).
    assert!(line.contains("PUT from "), "{line}");
    assert!(
        line.contains(&format!("-{} (3000 bytes", a.nid())),
        "{line}"
    );
    // The connection is closed (logged once removed), so a late recv is refused.
    let closing = b.host.wait_log("waiting for LNet to receive a message", T);
    assert!(
        closing.starts_with("lnd-sock 127.0.0.2@tcp: closing"),
        "{closing}"
    );
    assert_eq!(b.host.held(), 1);
    let late = b.host.release();
    assert_eq!(late.len(), 1);
    assert_eq!(
        late[0].as_ref().map_err(|e| e.errno),
        Err(errno::ECONNABORTED)
    );
    // A host that answers again gets the next PUT over a new connection.
    b.host.set_mode(RecvMode::Sync);
    let d2 = pattern(3000, 8);
    let (t2, m2) = put(&a, b.nid(), &d2);
    a.ni.send(m2).expect("send");
    assert!(a.host.wait_sent(&[t2], T)[0].is_ok());
    check_delivery(&b, &[(t2, d2)], &a);
    a.shutdown();
    b.shutdown();
}
