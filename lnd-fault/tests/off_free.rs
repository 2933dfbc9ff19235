//! Off means free, checked without timing (issue 14 item 2): with the fault
//! filter stacked and no rule, the data path (send, receive header,
//! completion)
//!
//! * takes no lock: the rule table's lock is held by another thread while
//!   100 000 messages go through, and they all do (with a rule, the same
//!   traffic waits for the lock: the check can fail);
//! * blocks nowhere and makes no read/write system call: the thread's
//!   voluntary context switches and `syscr`/`syscw` (`/proc/thread-self`)
//!   do not move over 100 000 messages;
//! * makes no system call at all: under `strace -f -c` (when installed),
//!   this test binary making 1 000 and then 101 000 messages makes the same
//!   number of system calls, give or take the harness's few.
//!
//! Allocations per message are counted in `alloc.rs`. `bench/s1-fault-ab.sh`
//! runs this file and prints what it found (`--nocapture`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use lnd_fault::FaultFilter;

mod common;
use common::{stack, traffic, Stack};

const MESSAGES: u64 = 100_000;

/// A filter whose clock, read under the rule table's lock by every control
/// call, parks the thread named `holder` there until `release` is called:
/// the lock stays held meanwhile.
struct Holder {
    filter: FaultFilter,
    inside: Arc<Barrier>,
    release: Arc<Barrier>,
    armed: Arc<AtomicBool>,
}

impl Holder {
    fn new() -> Holder {
        let inside = Arc::new(Barrier::new(2));
        let release = Arc::new(Barrier::new(2));
        let armed = Arc::new(AtomicBool::new(false));
        let (i, r, a) = (inside.clone(), release.clone(), armed.clone());
        let clock = Arc::new(move || {
            if std::thread::current().name() == Some("holder") && a.swap(false, Ordering::AcqRel) {
                i.wait();
                r.wait();
            }
            Duration::ZERO
        });
        Holder {
            filter: FaultFilter::with_clock(1, clock, false),
            inside,
            release,
            armed,
        }
    }

    /// Holds the rule table's lock on another thread until the returned
    /// closure is called.
    fn hold(&self) -> impl FnOnce() {
        self.armed.store(true, Ordering::Release);
        let f = self.filter.clone();
        let t = std::thread::Builder::new()
            .name("holder".into())
            .spawn(move || f.control("drop_reset", "").expect("reset"))
            .expect("spawn");
        self.inside.wait();
        let release = self.release.clone();
        move || {
            release.wait();
            t.join().expect("holder");
        }
    }
}

/// Runs `n` messages on another thread; whether they finished within
/// `within`, and the thread's handle.
fn run(s: Arc<Stack>, n: u64, within: Duration) -> (bool, std::thread::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel();
    let t = std::thread::spawn(move || {
        traffic(&s, n);
        let _ = tx.send(());
    });
    (rx.recv_timeout(within).is_ok(), t)
}

#[test]
fn no_rule_no_lock() {
    let h = Holder::new();
    let s = Arc::new(stack(&h.filter));
    let unlock = h.hold();
    // Generous: 100 000 messages take milliseconds; a lock taken per
    // message would wait for the holder forever.
    let (done, t) = run(s.clone(), MESSAGES, Duration::from_secs(120));
    unlock();
    t.join().expect("traffic");
    assert!(
        done,
        "messages waited for the rule table's lock with no rule"
    );
    println!(
        "off-free: lock: {MESSAGES} messages passed while the rule table was locked (no rule)"
    );

    // The check can fail: with a rule (that never matches), each message
    // takes the lock and waits for the holder.
    h.filter
        .control("drop_add", "src=*@tcp9 dst=<?> rate=1")
        .expect("add");
    let unlock = h.hold();
    let (done, t) = run(s, 1, Duration::from_millis(300));
    assert!(!done, "with a rule, a message takes the lock");
    unlock();
    t.join().expect("traffic");
}

/// This thread's voluntary context switches and read/write system calls.
fn thread_counters() -> (u64, u64, u64) {
    let status = std::fs::read_to_string("/proc/thread-self/status").expect("status");
    let io = std::fs::read_to_string("/proc/thread-self/io").unwrap_or_default();
    let field = |text: &str, key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    (
        field(&status, "voluntary_ctxt_switches:").expect("voluntary_ctxt_switches"),
        field(&io, "syscr:").unwrap_or(0),
        field(&io, "syscw:").unwrap_or(0),
    )
}

#[test]
fn no_rule_no_blocking_and_no_read_write_syscall() {
    let filter = FaultFilter::with_clock(1, Arc::new(Duration::default), false);
    let s = stack(&filter);
    traffic(&s, 1000); // warm up
                       // What reading the counters itself costs, then the same around the
                       // traffic: the difference is the traffic's.
    let a = thread_counters();
    let b = thread_counters();
    traffic(&s, MESSAGES);
    let c = thread_counters();
    let base = (b.0 - a.0, b.1 - a.1, b.2 - a.2);
    let with = (c.0 - b.0, c.1 - b.1, c.2 - b.2);
    println!(
        "off-free: {MESSAGES} messages, no rule: {} voluntary context switches, {} read and {} \
         write system calls (net of reading the counters: {:?} around the traffic, {:?} alone)",
        with.0.saturating_sub(base.0),
        with.1.saturating_sub(base.1),
        with.2.saturating_sub(base.2),
        with,
        base
    );
    // A voluntary switch means the thread blocked (a contended lock, a
    // sleep, I/O): none of those per message. One stray switch (a page
    // fault on a loaded machine) is tolerated, not one per message.
    assert!(with.0 <= base.0 + 1, "blocked {} times", with.0);
    assert_eq!((with.1, with.2), (base.1, base.2), "read/write syscalls");
}

/// The child of `no_rule_no_syscall`: `OFF_FREE_MESSAGES` messages through
/// the filter with no rule, nothing else (ignored unless that is set).
#[test]
#[ignore = "run by no_rule_no_syscall under strace"]
fn child_traffic() {
    let Some(n) = std::env::var("OFF_FREE_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
    else {
        return;
    };
    let filter = FaultFilter::with_clock(1, Arc::new(Duration::default), false);
    let s = stack(&filter);
    traffic(&s, n);
    // Tells the parent the traffic did run.
    if let Some(done) = std::env::var_os("OFF_FREE_DONE") {
        std::fs::write(done, n.to_string()).expect("done file");
    }
}

/// System calls of this test binary running `child_traffic` with `n`
/// messages under `strace -f -c`; `None` without a working strace.
fn syscalls_with(n: u64) -> Option<u64> {
    let out = std::env::temp_dir().join(format!("off-free-strace-{}-{n}", std::process::id()));
    let done = out.with_extension("done");
    let status = std::process::Command::new("strace")
        .args(["-f", "-c", "-o"])
        .arg(&out)
        .arg(std::env::current_exe().ok()?)
        .args([
            "--exact",
            "child_traffic",
            "--ignored",
            "--test-threads",
            "1",
            "--quiet",
        ])
        .env("OFF_FREE_MESSAGES", n.to_string())
        .env("OFF_FREE_DONE", &done)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .ok()?;
    let text = std::fs::read_to_string(&out).ok();
    let ran = std::fs::read_to_string(&done).ok();
    let _ = std::fs::remove_file(&out);
    let _ = std::fs::remove_file(&done);
    if !status.success() {
        return None;
    }
    assert_eq!(
        ran.as_deref(),
        Some(n.to_string().as_str()),
        "the child under strace did not run the traffic"
    );
    // The summary's last line: "100.00 ... CALLS [ERRORS] total".
    text?
        .lines()
        .find(|l| l.trim_end().ends_with(" total"))
        .and_then(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            // % time, seconds, usecs/call, calls, [errors,] "total".
            f.get(3).and_then(|c| c.parse().ok())
        })
}

#[test]
fn no_rule_no_syscall() {
    let (Some(few), Some(many)) = (syscalls_with(1000), syscalls_with(1000 + MESSAGES)) else {
        println!("off-free: syscalls: not counted (no working strace)");
        return;
    };
    println!(
        "off-free: syscalls (strace -f -c, whole test process): {few} with 1000 messages, \
         {many} with {} ({} more for {MESSAGES} messages)",
        1000 + MESSAGES,
        many as i64 - few as i64
    );
    // The harness's own calls vary by a few; one per 1000 messages would
    // already be 100 more.
    assert!(
        many <= few + 50,
        "{} system calls more for {MESSAGES} more messages",
        many - few
    );
}
