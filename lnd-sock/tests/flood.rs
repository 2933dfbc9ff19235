//! The acceptor under a flood of half-open and garbage connections: at most
//! `accept_max_handshakes` connections are in the handshake at once (the
//! rest are closed at once), bad connections are logged once per peer
//! address per interval with a count, and PUTs between two good NIs keep
//! flowing; the process's descriptors, threads and memory stay bounded.

mod support;

use std::collections::HashSet;
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::*;

const T: Duration = Duration::from_secs(40);
const CAP: usize = 32;
const HALF_OPEN: usize = 300;
const GARBAGE: usize = 1500;

fn from(ip: [u8; 4], port: u16) -> std::io::Result<TcpStream> {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    s.bind(&SocketAddr::from((ip, 0)).into())?;
    s.connect(&SocketAddr::from(([127, 0, 0, 2], port)).into())?;
    Ok(s.into())
}

/// Descriptors of this process that are sockets of connections accepted on
/// `port` (the listener's own excluded).
fn accepted_fds(port: u16) -> usize {
    let mut inodes = HashSet::new();
    for f in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(t) = std::fs::read_to_string(f) else {
            continue;
        };
        for l in t.lines().skip(1) {
            let c: Vec<&str> = l.split_whitespace().collect();
            if c.len() < 10 || c[3] == "0A" {
                continue;
            }
            let local_port = c[1]
                .rsplit(':')
                .next()
                .and_then(|p| u16::from_str_radix(p, 16).ok());
            if local_port == Some(port) {
                inodes.insert(format!("socket:[{}]", c[9]));
            }
        }
    }
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|l| inodes.contains(l.to_string_lossy().as_ref()))
        .count()
}

fn status(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or_else(|| panic!("{field} in /proc/self/status"))
}

fn put_ok(a: &TestNi, b: &TestNi, seed: u8) {
    let d = pattern(4096, seed);
    let (t, m) = put(a, b.nid(), &d);
    a.ni.send(m).expect("send");
    assert!(a.host.wait_sent(&[t], T)[0].is_ok(), "PUT {seed} failed");
    let deadline = Instant::now() + T;
    while !b
        .host
        .received()
        .iter()
        .any(|r| token_of(&r.hdr) == t && r.data == d)
    {
        assert!(Instant::now() < deadline, "PUT {seed} never reached B");
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn acceptor_lines(b: &TestNi) -> Vec<String> {
    b.host
        .logs()
        .into_iter()
        .map(|(_, l)| l)
        .filter(|l| l.contains("acceptor") || l.contains("hello from"))
        .collect()
}

#[test]
fn flood_of_half_open_and_garbage_connections() {
    let port = test_port();
    let mut p = params(port);
    p.retain(|(k, _)| *k != "accept");
    p.push(("accept", "all".to_string()));
    p.push(("accept_timeout", "30".to_string()));
    p.push(("accept_max_handshakes", CAP.to_string()));
    let a = start("A", config(TCP, "127.0.0.1", &p, &[]), RecvMode::Sync).expect("A");
    let b = start("B", config(TCP, "127.0.0.2", &p, &[]), RecvMode::Sync).expect("B");
    put_ok(&a, &b, 0);
    // All of A's connections (CONTROL, BULK_IN, BULK_OUT) are up before the flood.
    wait_conns(&b.ni, 3, T);
    let threads0 = status("Threads:");
    let rss0 = status("VmRSS:");

    // Half-open: connect and send nothing, or half a connection request.
    let mut half: Vec<TcpStream> = Vec::new();
    for i in 0..HALF_OPEN {
        let mut s = from([127, 0, 4, 1], port).expect("connect");
        if i % 2 == 1 {
            s.write_all(&connreq(b.nid())[..6]).expect("write");
        }
        half.push(s);
    }
    // The cap is full: one more connection is closed at once, not after
    // accept_timeout (30 s).
    let t0 = Instant::now();
    let mut extra = from([127, 0, 4, 3], port).expect("connect");
    extra.set_read_timeout(Some(T)).expect("timeout");
    assert!(read_to_close(&mut extra).is_empty());
    assert!(
        t0.elapsed() < Duration::from_secs(15),
        "a connection past the cap waited {:?}",
        t0.elapsed()
    );

    // Garbage: connect, write junk, close, as fast as possible.
    let done = Arc::new(AtomicBool::new(false));
    let flood = {
        let done = done.clone();
        std::thread::spawn(move || {
            for i in 0..GARBAGE {
                if let Ok(mut s) = from([127, 0, 4, 2], port) {
                    let _ = s.write_all(&pattern(64, i as u8));
                }
            }
            done.store(true, Ordering::SeqCst);
        })
    };
    // Meanwhile PUTs keep flowing, and the acceptor holds no more than the
    // cap (plus A's established connections).
    let mut max_fds = 0;
    let mut max_threads = 0;
    let mut seed = 1u8;
    while !done.load(Ordering::SeqCst) || seed < 20 {
        put_ok(&a, &b, seed);
        seed = seed.wrapping_add(1);
        max_fds = max_fds.max(accepted_fds(port));
        max_threads = max_threads.max(status("Threads:"));
    }
    flood.join().expect("flood thread");
    let rss1 = status("VmRSS:");
    assert!(
        max_fds <= CAP + 8,
        "the acceptor held {max_fds} connections (cap {CAP})"
    );
    // The flood thread itself is one.
    assert!(
        max_threads <= threads0 + 4,
        "threads grew from {threads0} to {max_threads}"
    );
    assert!(
        rss1 < rss0 + 32 * 1024,
        "resident memory grew from {rss0} KiB to {rss1} KiB"
    );
    // A few lines, not one per bad connection.
    let lines = acceptor_lines(&b);
    assert!(
        lines.len() <= 10,
        "{} acceptor lines for {} bad connections:\n{}",
        lines.len(),
        HALF_OPEN + GARBAGE,
        lines[..lines.len().min(20)].join("\n")
    );
    assert!(
        lines.iter().any(|l| l.contains("already in the handshake")),
        "{lines:?}"
    );
    // Once the interval has passed, the count of what was not logged.
    let count = b
        .host
        .wait_log("more bad connection(s) from 127.0.4.2 in the last", T);
    let n: u64 = count
        .split(" more bad connection(s) from 127.0.4.2")
        .next()
        .and_then(|h| h.rsplit(' ').next())
        .and_then(|n| n.trim_start_matches('(').parse().ok())
        .unwrap_or_else(|| panic!("no count in {count:?}"));
    assert!(n > 0, "{count}");

    // The flood over, the acceptor takes connections again: A reconnects.
    drop(half);
    a.ni.ctl("disconnect", "").expect("disconnect");
    put_ok(&a, &b, 200);
    a.shutdown();
    b.shutdown();
}
