//! Issue 11 item 2 at the daemon level: two lnetd on loopback (127.0.0.1
//! and 127.0.0.2, the TCP LND, `accept=all` so that every connection reaches
//! the handshake parser) run an `lst brw` while B's acceptor takes a flood
//! of half-open connections (nothing sent, or half a connection request)
//! and garbage connections. Meanwhile `lnetctl ping` from A keeps
//! answering; after it the brw still moves data; B's threads stay flat, its
//! descriptors within the acceptor's cap (lnd-sock's
//! `accept_max_handshakes`, 256) and back to where they were once the
//! flood is over, its resident memory bounded.

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lnet_tests::daemon::Daemon;
use lnet_tests::{ok, wait_for, TempDir};

/// lnd-sock's default `accept_max_handshakes`.
const CAP: usize = 256;
const HALF_OPEN: usize = 320;
const GARBAGE: usize = 3000;
const KEY: &str = "4711";

fn lnetctl(socket: &Path, args: &[&str]) -> Output {
    lnet_tests::lnetctl_on(lnet_tests::bins::lnetctl(), socket, args)
}

fn lst(socket: &Path, args: &[&str]) -> String {
    ok(&Command::new(lnet_tests::bins::lst())
        .arg("--socket")
        .arg(socket)
        .args(args)
        .env_remove("LST_FEATURES")
        .env_remove("LNET_SOCKET")
        .env("LST_SESSION", KEY)
        .output()
        .expect("run lst"))
}

fn node(dir: &TempDir, name: &str, addr: &str, port: u16) -> Daemon {
    lnet_tests::bins::sock_plugin();
    let port = format!("accept_port={port}");
    let d = Daemon::start(
        dir.join(format!("{name}.sock")),
        &["--param", &port, "--param", "accept=all"],
    );
    ok(&lnetctl(d.socket(), &["lnet", "configure"]));
    ok(&lnetctl(
        d.socket(),
        &["net", "add", "--net", "tcp", "--if", addr],
    ));
    d
}

/// A field of /proc/PID/status (kB for memory).
fn status(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or_else(|| panic!("{field} in /proc/{pid}/status"))
}

fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("fd dir")
        .count()
}

fn from(ip: [u8; 4], port: u16) -> std::io::Result<TcpStream> {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    s.bind(&SocketAddr::from((ip, 0)).into())?;
    s.connect(&SocketAddr::from(([127, 0, 0, 2], port)).into())?;
    Ok(s.into())
}

/// The connection request's first bytes (the acceptor's magic 0xacce7100,
/// half its version), as a client that stalls in the middle sends them.
const HALF_REQUEST: [u8; 6] = [0x00, 0x71, 0xce, 0xac, 0x01, 0x00];

fn ping_b(a: &Daemon) {
    let t0 = Instant::now();
    let out = lnetctl(a.socket(), &["ping", "127.0.0.2@tcp", "--timeout", "30"]);
    let yaml = ok(&out);
    assert!(
        yaml.starts_with("ping:\n- primary nid: 127.0.0.2@tcp\n"),
        "ping of B: {yaml}"
    );
    assert!(
        t0.elapsed() < Duration::from_secs(30),
        "ping took {:?}",
        t0.elapsed()
    );
}

/// `[R] Avg:` of the bandwidth report of `lst stat servers`, MiB/s.
fn servers_bandwidth(a: &Daemon) -> f64 {
    let st = lst(
        a.socket(),
        &["stat", "--count", "1", "--delay", "2", "--bw", "servers"],
    );
    let line = st
        .lines()
        .find(|l| l.starts_with("[R] Avg:"))
        .unwrap_or_else(|| panic!("no [R] line in\n{st}"));
    line.split_whitespace()
        .nth(2)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no figure in {line}"))
}

/// Waits until a 2-second sample of the servers' bandwidth is above 0 (one
/// sample can fall in a pause of a loaded machine).
fn wait_moving(a: &Daemon, what: &str) {
    wait_for(what, Duration::from_secs(120), || {
        let bw = servers_bandwidth(a);
        if bw > 0.0 {
            Ok(())
        } else {
            Err(format!("{bw} MiB/s"))
        }
    });
}

#[test]
fn lnetd_under_a_connection_flood_keeps_ping_and_brw_going() {
    let dir = TempDir::new("lnetd-flood");
    let port = lnet_tests::free_port();
    let a = node(&dir, "a", "127.0.0.1", port);
    let b = node(&dir, "b", "127.0.0.2", port);
    ping_b(&a);
    let s = a.socket();
    lst(s, &["new_session", "--timeout", "300", "flood"]);
    lst(s, &["add_group", "servers", "127.0.0.2@tcp"]);
    lst(s, &["add_group", "clients", "127.0.0.1@tcp"]);
    lst(s, &["add_batch", "bulk"]);
    lst(
        s,
        &[
            "add_test",
            "--batch",
            "bulk",
            "--concurrency",
            "2",
            "--from",
            "clients",
            "--to",
            "servers",
            "brw",
            "write",
            "size=64K",
            "check=simple",
        ],
    );
    lst(s, &["run", "bulk"]);
    wait_moving(&a, "brw to move data before the flood");
    let pid = b.pid();
    let threads0 = status(pid, "Threads:");
    let fds0 = fds(pid);
    let rss0 = status(pid, "VmRSS:");

    // Half-open connections, held.
    let mut half = Vec::new();
    for i in 0..HALF_OPEN {
        match from([127, 0, 4, 1], port) {
            Ok(mut c) => {
                if i % 2 == 1 {
                    let _ = c.write_all(&HALF_REQUEST);
                }
                half.push(c);
            }
            Err(e) => panic!("connect {i}: {e}"),
        }
    }
    // Garbage connections as fast as they go.
    let done = Arc::new(AtomicBool::new(false));
    let flood = {
        let done = Arc::clone(&done);
        std::thread::spawn(move || {
            for i in 0..GARBAGE {
                if let Ok(mut c) = from([127, 0, 4, 2], port) {
                    let junk: Vec<u8> = (0..64).map(|k| (i * 31 + k * 7) as u8).collect();
                    let _ = c.write_all(&junk);
                }
            }
            done.store(true, Ordering::SeqCst);
        })
    };
    let (mut max_threads, mut max_fds, mut pings) = (0, 0, 0);
    while !done.load(Ordering::SeqCst) || pings < 3 {
        ping_b(&a);
        pings += 1;
        max_threads = max_threads.max(status(pid, "Threads:"));
        max_fds = max_fds.max(fds(pid));
    }
    flood.join().expect("flood thread");
    eprintln!(
        "B under the flood: threads {threads0} -> max {max_threads}, fds {fds0} -> max \
         {max_fds}, {pings} pings answered"
    );
    assert!(
        max_threads <= threads0 + 4,
        "B's threads grew from {threads0} to {max_threads} under the flood"
    );
    assert!(
        max_fds <= fds0 + CAP + 16,
        "B held {max_fds} descriptors under the flood ({fds0} before, cap {CAP})"
    );
    // The brw still moves data with the half-open connections held.
    wait_moving(&a, "brw to move data after the flood");
    drop(half);
    ping_b(&a);
    // Back to where it was: descriptors, threads, memory.
    wait_for(
        "B's threads and descriptors to go back",
        Duration::from_secs(90),
        || {
            let (t, f) = (status(pid, "Threads:"), fds(pid));
            if t <= threads0 + 2 && f <= fds0 + 4 {
                Ok(())
            } else {
                Err(format!(
                    "{t} threads and {f} descriptors ({threads0} and {fds0} before)"
                ))
            }
        },
    );
    let rss1 = status(pid, "VmRSS:");
    assert!(
        rss1 < rss0 + 32 * 1024,
        "B's resident memory grew from {rss0} KiB to {rss1} KiB"
    );
    let q = lst(s, &["query", "bulk"]);
    assert_eq!(q, "bulk [0] is running\n", "the batch runs on");
    lst(s, &["stop", "bulk"]);
    lst(s, &["end_session"]);
}
