//! lnd-sock forgets peers: an entry in an NI's peer table lives while the
//! peer has a connection, a queued send or a connect task, and is freed with
//! its last connection (as `ksocknal_close_conn_locked` unlinks the peer).
//! Thousands of handshakes with distinct NIDs leave the table, and the
//! process's resident memory, where they started.

mod support;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use lnd_api::{LndNiHandle, Nid};
use lnd_sock::wire::{ConnType, Endian, HelloRepr, HELLO_V2_SIZE, HELLO_V4_SIZE};
use support::*;

const T: Duration = Duration::from_secs(30);
/// Handshakes in flight at once, then closed.
const BATCH: usize = 100;
/// Batches (BATCH × ROUNDS handshakes, each from its own NID).
const ROUNDS: usize = 40;

/// Entries of `ni`'s peer table.
fn peers(ni: &LndNiHandle) -> usize {
    ni.ctl("peer_list", "")
        .expect("peer_list")
        .matches("- peer:")
        .count()
}

fn wait_peers(ni: &LndNiHandle, n: usize, what: &str) {
    let deadline = Instant::now() + T;
    loop {
        let got = peers(ni);
        if got == n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: the peer table holds {got} entries, expected {n}:\n{}",
            ni.ctl("peer_list", "").unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .expect("VmRSS in /proc/self/status")
}

/// Handshake `i`: from its own loopback address (127.1.x.y); as root from a
/// privileged port with a hello claiming its own NID (10.x.y.z@tcp, trusted
/// as upstream trusts it), else from an unprivileged port (a userspace peer
/// named after the socket's address).
fn handshake(to: Nid, port: u16, i: usize) -> TcpStream {
    let src = Ipv4Addr::new(127, 1, (i / 250) as u8, (i % 250) as u8 + 1);
    let s =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    if is_root() {
        // Ports in TIME_WAIT from an earlier run on this address are skipped.
        let bound = (512..=1023u16)
            .rev()
            .any(|p| s.bind(&SocketAddr::from((src, p)).into()).is_ok());
        assert!(bound, "no privileged port free on {src}");
    } else {
        s.bind(&SocketAddr::from((src, 0)).into()).expect("bind");
    }
    s.connect(&SocketAddr::from(([127, 0, 0, 2], port)).into())
        .expect("connect");
    let mut s: TcpStream = s.into();
    s.set_read_timeout(Some(T)).expect("timeout");
    let claimed = Nid::new4(TCP, u32::from_be_bytes([10, 0, 0, 0]) + i as u32 + 1);
    let h = HelloRepr {
        version: 3,
        src_nid: claimed,
        dst_nid: to,
        src_pid: PID,
        dst_pid: 0,
        src_incarnation: 7,
        dst_incarnation: 0,
        ctype: ConnType::Control.to_wire(),
        nips: 0,
    };
    let mut m = connreq(to);
    let mut b = [0u8; HELLO_V4_SIZE];
    let n = h.emit(Endian::Little, &mut b).expect("room");
    m.extend_from_slice(&b[..n]);
    s.write_all(&m).expect("write");
    let mut ans = [0u8; HELLO_V2_SIZE];
    s.read_exact(&mut ans).expect("hello answer");
    let (ans, _) = HelloRepr::parse(&ans).expect("hello");
    assert_eq!(ans.src_nid, to);
    assert_eq!(
        ans.ctype,
        ConnType::Control.to_wire(),
        "handshake {i} refused"
    );
    s
}

fn put_works(a: &TestNi, b: &TestNi, seed: u8) {
    let d = pattern(5000, seed);
    let (t, m) = put(a, b.nid(), &d);
    a.ni.send(m).expect("send");
    assert!(a.host.wait_sent(&[t], T)[0].is_ok());
    let deadline = Instant::now() + T;
    while !b
        .host
        .received()
        .iter()
        .any(|r| token_of(&r.hdr) == t && r.data == d)
    {
        assert!(Instant::now() < deadline, "A's PUT never reached B");
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn thousands_of_handshakes_leave_no_peer_behind() {
    let port = test_port();
    let mut p = params(port);
    p.retain(|(k, _)| *k != "accept");
    p.push(("accept", "all".to_string()));
    let a = start("A", config(TCP, "127.0.0.1", &p, &[]), RecvMode::Sync).expect("A");
    let b = start("B", config(TCP, "127.0.0.2", &p, &[]), RecvMode::Sync).expect("B");
    put_works(&a, &b, 1);
    // All of A's connections (CONTROL, BULK_IN, BULK_OUT) are up.
    wait_conns(&b.ni, 3, T);
    // B knows A, and nobody else: one entry (as root, A connects from
    // privileged ports), or one per connection of A (otherwise each is a
    // userspace peer named after its source port).
    let only_a = |list: &str| {
        list.lines()
            .filter(|l| l.contains("- peer:"))
            .all(|l| l.ends_with(&format!("-{}", a.nid())))
    };
    let base = peers(&b.ni);
    let list = b.ni.ctl("peer_list", "").expect("peer_list");
    assert!(base >= 1 && only_a(&list), "{list}");
    if is_root() {
        assert_eq!(base, 1, "{list}");
        assert!(
            list.contains(&format!("- peer: {PID}-{}", a.nid())),
            "{list}"
        );
    }
    let mut rss_start = 0;
    for round in 0..ROUNDS {
        let conns: Vec<TcpStream> = (0..BATCH)
            .map(|k| handshake(b.nid(), port, round * BATCH + k))
            .collect();
        // Each handshake made a peer entry...
        wait_peers(&b.ni, base + BATCH, "handshakes open");
        drop(conns);
        // ...and its last connection's close frees it.
        wait_peers(&b.ni, base, "handshakes closed");
        if round == 1 {
            // After a warm-up (allocator pools, runtime buffers).
            rss_start = rss_kib();
        }
    }
    let rss_end = rss_kib();
    assert!(
        rss_end < rss_start + 16 * 1024,
        "resident memory grew from {rss_start} KiB to {rss_end} KiB over {} handshakes",
        BATCH * (ROUNDS - 2)
    );
    // The NI still works, and what B knows is A.
    put_works(&a, &b, 2);
    let list = b.ni.ctl("peer_list", "").expect("peer_list");
    assert_eq!(peers(&b.ni), base, "{list}");
    assert!(only_a(&list), "{list}");
    a.shutdown();
    b.shutdown();
}

#[test]
fn a_peer_that_failed_is_freed_but_known_down() {
    let port = test_port();
    let p = params(port);
    let a = start("A", config(TCP, "127.0.0.1", &p, &[]), RecvMode::Sync).expect("A");
    for last in 20..30u8 {
        // Nobody listens there.
        let target = Nid::new4(TCP, u32::from_be_bytes([127, 0, 0, last]));
        let (t, m) = put(&a, target, b"x");
        a.ni.send(m).expect("accepted for sending");
        assert!(!a.host.wait_sent(&[t], T)[0].is_ok());
        assert_eq!(a.ni.query(target).alive.into_option(), Some(false));
    }
    wait_peers(&a.ni, 0, "failed peers");
    a.shutdown();
}
