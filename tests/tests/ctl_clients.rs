//! Issue 11 item 3: a flood of control clients against a running lnetd.
//! Hundreds of idle clients and a score of clients that send half a request
//! line and wait: `lnetctl net show` still answers (the same YAML as
//! before the flood), every half-line client is answered with an error and
//! closed, and lnetd's threads and file descriptors stay within the cap
//! (`--max-clients`) instead of one thread per client.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::process::Command;
use std::time::{Duration, Instant};

use lnet_tests::daemon::Daemon;
use lnet_tests::{text, wait_for, TempDir};

const MAX_CLIENTS: usize = 16;
const IDLE: usize = 300;
const HALF: usize = 12;

fn lnetctl(d: &Daemon, args: &[&str]) -> String {
    let out = Command::new(lnet_tests::bins::lnetctl())
        .arg("--socket")
        .arg(d.socket())
        .args(args)
        .output()
        .expect("run lnetctl");
    assert!(
        out.status.success(),
        "lnetctl {args:?}: {}",
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// `Threads:` of /proc/PID/status and the number of open descriptors.
fn threads_and_fds(pid: u32) -> (usize, usize) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let threads = status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("Threads:");
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("fd dir")
        .count();
    (threads, fds)
}

#[test]
fn idle_and_half_line_clients_do_not_starve_lnetctl() {
    let dir = TempDir::new("ctl-clients");
    let d = Daemon::start(
        dir.socket(),
        &[
            "--max-clients",
            &MAX_CLIENTS.to_string(),
            "--client-timeout",
            "2",
        ],
    );
    lnetctl(&d, &["lnet", "configure"]);
    let before = lnetctl(&d, &["net", "show"]);
    let (threads0, fds0) = threads_and_fds(d.pid());

    // Idle clients beyond the cap: each newcomer closes the longest-idle
    // one, so the daemon never serves more than the cap.
    let mut idle = Vec::new();
    for _ in 0..IDLE {
        match UnixStream::connect(d.socket()) {
            Ok(s) => idle.push(s),
            Err(e) => panic!("connect failed with {} idle clients: {e}", idle.len()),
        }
    }
    // Then the half-line clients: newer than every idle one, so the
    // newcomers after them (lnetctl's) close idle clients first, while a
    // half-line client has its line timeout. (Connected before the idle
    // ones, a half-line client whose first bytes the daemon had not read yet
    // would itself count as the longest idle: a race on a loaded machine.)
    let half: Vec<UnixStream> = (0..HALF)
        .map(|_| {
            let mut s = UnixStream::connect(d.socket()).expect("connect");
            s.write_all(br#"{"version":1,"op":"#).expect("write");
            s
        })
        .collect();
    // A thread that has given up its slot may still be on its way out
    // (descheduled on a loaded machine): the bound holds once they are gone.
    let bound = |(threads, fds): (usize, usize)| {
        threads <= threads0 + MAX_CLIENTS + 2 && fds <= fds0 + 2 * MAX_CLIENTS + 4
    };
    let t0 = Instant::now();
    let mut now = threads_and_fds(d.pid());
    while !bound(now) && t0.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(lnet_tests::POLL);
        now = threads_and_fds(d.pid());
    }
    let (threads, fds) = now;
    assert!(
        threads <= threads0 + MAX_CLIENTS + 2,
        "{threads} threads with {IDLE} idle clients (cap {MAX_CLIENTS}, {threads0} before)"
    );
    assert!(
        fds <= fds0 + 2 * MAX_CLIENTS + 4,
        "{fds} descriptors with {IDLE} idle clients (cap {MAX_CLIENTS}, {fds0} before)"
    );

    // lnetctl still answers, with what it said before, in time.
    let t0 = Instant::now();
    assert_eq!(lnetctl(&d, &["net", "show"]), before);
    assert!(
        t0.elapsed() < Duration::from_secs(30),
        "net show took {:?}",
        t0.elapsed()
    );

    // Every half-line client is answered with ETIMEDOUT (or was closed to
    // make room while still idle) and closed, within the line timeout.
    let mut timed_out = 0;
    for s in &half {
        s.set_read_timeout(Some(Duration::from_secs(60)))
            .expect("timeout");
        let mut r = BufReader::new(s);
        let mut line = String::new();
        r.read_line(&mut line).expect("read");
        if !line.is_empty() {
            assert!(line.contains("\"errno\":110"), "{line}");
            assert!(line.contains("not complete within 2 s"), "{line}");
            timed_out += 1;
            line.clear();
            r.read_line(&mut line).expect("read");
        }
        assert!(line.is_empty(), "closed after the timeout: {line}");
    }
    assert!(timed_out > 0, "no half-line client got its timeout reply");

    drop(idle);
    drop(half);
    // Back to where it was once the clients are gone.
    wait_for(
        "the clients' threads and descriptors to go",
        Duration::from_secs(60),
        || {
            let (threads, fds) = threads_and_fds(d.pid());
            if threads <= threads0 && fds <= fds0 {
                Ok(())
            } else {
                Err(format!(
                "{threads} threads, {fds} fds after the clients left ({threads0}, {fds0} before)"
            ))
            }
        },
    );
    assert_eq!(lnetctl(&d, &["net", "show"]), before);
}
