//! lnd-sock's schedulers (`nscheds`): by default as many as ksocklnd
//! starts; with two, a node's peers are spread over both threads, each
//! connection staying on its own. Three lnetd on loopback (127.0.0.1, .2,
//! .3, the TCP LND); A runs `nscheds=2` and pings B and C in turn. Both of
//! A's `lnd-sock` threads must have served: each one sleeps and is woken
//! for the pings of its peer. With every connection on one thread, the
//! other would sleep once and never wake.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Output;

use lnet_tests::daemon::Daemon;
use lnet_tests::{ok, TempDir};

const PINGS: usize = 20;

fn lnetctl(socket: &Path, args: &[&str]) -> Output {
    lnet_tests::lnetctl_on(lnet_tests::bins::lnetctl(), socket, args)
}

fn node(dir: &TempDir, name: &str, addr: &str, port: u16, extra: &[&str]) -> Daemon {
    lnet_tests::bins::sock_plugin();
    let port = format!("accept_port={port}");
    let mut args = vec!["--param", &port];
    args.extend_from_slice(extra);
    let d = Daemon::start(dir.join(format!("{name}.sock")), &args);
    ok(&lnetctl(d.socket(), &["lnet", "configure"]));
    ok(&lnetctl(
        d.socket(),
        &["net", "add", "--net", "tcp", "--if", addr],
    ));
    d
}

/// The voluntary context switches of each of `pid`'s threads named
/// `name`, by thread id.
fn thread_sleeps(pid: u32, name: &str) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for t in std::fs::read_dir(format!("/proc/{pid}/task")).expect("task dir") {
        let Ok(t) = t else { continue };
        let Ok(status) = std::fs::read_to_string(t.path().join("status")) else {
            continue;
        };
        let field = |f: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(f))
                .map(str::trim)
                .map(str::to_owned)
        };
        if field("Name:").as_deref() == Some(name) {
            let n = field("voluntary_ctxt_switches:")
                .and_then(|v| v.parse().ok())
                .expect("voluntary_ctxt_switches");
            out.insert(t.file_name().to_string_lossy().into_owned(), n);
        }
    }
    out
}

#[test]
fn two_schedulers_serve_two_peers_each_on_its_own_thread() {
    let dir = TempDir::new("sock-scheds");
    let port = lnet_tests::free_port();
    let a = node(&dir, "a", "127.0.0.1", port, &["--param", "nscheds=2"]);
    let b = node(&dir, "b", "127.0.0.2", port, &[]);
    let _c = node(&dir, "c", "127.0.0.3", port, &[]);
    // nscheds 0 (B's): ksocklnd's count, half the CPUs, at least three,
    // at most all, and at most the parameter's maximum (64,
    // `lnd_sock::params::NSCHEDS_MAX`, which this binary cannot link beside
    // lnd-fault's plugin root).
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert_eq!(
        thread_sleeps(b.pid(), "lnd-sock").len(),
        (cpus / 2).max(3).min(cpus).min(64),
        "{cpus} CPUs"
    );
    // Both peers connected first: B's connections go to the first
    // scheduler (both empty), C's to the second (fewer connections).
    for nid in ["127.0.0.2@tcp", "127.0.0.3@tcp"] {
        ok(&lnetctl(a.socket(), &["ping", nid, "--timeout", "30"]));
    }
    let before = thread_sleeps(a.pid(), "lnd-sock");
    assert_eq!(before.len(), 2, "nscheds=2 starts two lnd-sock threads");
    for _ in 0..PINGS {
        for nid in ["127.0.0.2@tcp", "127.0.0.3@tcp"] {
            ok(&lnetctl(a.socket(), &["ping", nid, "--timeout", "30"]));
        }
    }
    let after = thread_sleeps(a.pid(), "lnd-sock");
    assert_eq!(after.len(), 2);
    // Each ping's reply wakes the reader of its peer's connection; the
    // runs of lnetctl between them are far longer than the idle poll, so
    // the reader sleeps in between. Half of them is a wide margin.
    let woken: Vec<u64> = after
        .iter()
        .map(|(tid, n)| n - before.get(tid).expect("the same threads"))
        .collect();
    assert!(
        woken.iter().all(|&w| w >= (PINGS / 2) as u64),
        "each scheduler serves one peer: woken {woken:?} times over {PINGS} pings of each"
    );
}
