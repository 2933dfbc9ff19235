//! The data path allocates nothing per message in steady state.
//!
//! Two NIs of lnd-sock on loopback, in this process, with a host double
//! whose own per-message work is allocation-free: it sends PUTs with
//! `send_span` from one reused span (a window of a preallocated list of
//! 4 KiB pages), answers `parse` with `recv_span` into one of a few
//! preallocated receive spans, and counts completions in atomics (waking
//! the test thread through a mutex and condvar, which allocate nothing).
//! A counting global allocator then sees every allocation of the process:
//! lnd-sock's, tokio's, the host's and the test's. After a warm-up (the
//! connections, the queues' capacity, the runtime's buffers), it counts
//! the allocations over many messages and asserts none.
//!
//! One test only: the allocator is process-wide, so no other test may run
//! beside it.

mod support;

use std::alloc::System;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use lnd_api::abi_stable::std_types::ROption;
use lnd_api::{
    Completion, Hdr, Host, HostHandle, IoBuf, Lnd, LndError, LndNiHandle, LogLevel, MsgToken,
    MsgType, Nid, Payload, PayloadSpan, RxAction, RxToken, TxMsg,
};
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};
use support::{config, params, test_port, PID, TCP};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// The largest payload (LNET_MTU).
const MAX: usize = 1 << 20;
/// The page size of the spans' fragment lists (an MD's kiov).
const PAGE: usize = 4096;
/// Receive spans, used in turn (more than the messages in flight, so
/// the next message never finds its span still borrowed).
const RX_SPANS: usize = 8;
/// Marks the receiving host's message tokens.
const RX_MARK: u64 = 1 << 63;
/// How long a batch of messages may take before the test fails.
const T: Duration = Duration::from_secs(30);

/// Completions, counted by both hosts; the test thread waits on `cv`.
#[derive(Default)]
struct Counts {
    /// Send completions (the sender's `finalize`).
    sent: AtomicU64,
    /// Receive completions (the receiver's `finalize`).
    received: AtomicU64,
    /// Completions with an error status, either side.
    failed: AtomicU64,
    /// `recv_span` calls refused inside `parse`.
    refused: AtomicU64,
    /// Log lines (none is expected in steady state; each allocates).
    logs: AtomicU64,
    m: Mutex<()>,
    cv: Condvar,
}

impl Counts {
    fn bump(&self, c: &AtomicU64) {
        c.fetch_add(1, Ordering::Release);
        let _g = self.m.lock().unwrap_or_else(|p| p.into_inner());
        self.cv.notify_all();
    }

    /// Waits until `f` holds; panics after [`T`].
    fn wait(&self, what: &str, f: impl Fn(&Counts) -> bool) {
        let deadline = Instant::now() + T;
        let mut g = self.m.lock().unwrap_or_else(|p| p.into_inner());
        while !f(self) {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "timed out waiting for {what}");
            g = self
                .cv
                .wait_timeout(g, left.min(Duration::from_millis(100)))
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        }
    }
}

/// One side's host: its NI, its receive spans, the shared counts.
struct Side {
    ni: OnceLock<LndNiHandle>,
    rx: Vec<PayloadSpan>,
    next_rx: AtomicUsize,
    next_msg: AtomicU64,
    counts: Arc<Counts>,
}

#[derive(Clone)]
struct H(Arc<Side>);

impl Host for H {
    fn parse(&self, hdr: Hdr, _from: Nid, rx: RxToken, _rdma: bool) -> Result<(), LndError> {
        let s = &self.0;
        let rlen = hdr.payload_length;
        let i = s.next_rx.fetch_add(1, Ordering::Relaxed) % RX_SPANS;
        let window = s.rx[i].sub(0, rlen as usize).unwrap_or_default();
        let msg = RX_MARK | s.next_msg.fetch_add(1, Ordering::Relaxed);
        let a = RxAction {
            rx,
            msg: ROption::RSome(MsgToken(msg)),
            payload: Payload::new(),
            rlen,
            delayed: false,
        };
        let ni = s.ni.get().expect("NI handle set before any message");
        if ni.recv_span(a, window).is_err() {
            s.counts.bump(&s.counts.refused);
        }
        Ok(())
    }

    fn finalize(&self, msg: MsgToken, status: Completion) {
        let c = &self.0.counts;
        if !status.is_ok() {
            c.failed.fetch_add(1, Ordering::Relaxed);
        }
        if msg.0 & RX_MARK != 0 {
            c.bump(&c.received);
        } else {
            c.bump(&c.sent);
        }
    }

    fn notify(&self, _peer: Nid, _alive: bool) {}

    fn link_state(&self, _up: bool) {}

    fn log(&self, _level: LogLevel, msg: &str) {
        if std::env::var_os("LND_SOCK_TEST_LOG").is_some() {
            eprintln!("{msg}");
        }
        self.0.counts.logs.fetch_add(1, Ordering::Relaxed);
    }
}

/// A span of `len` bytes over a list of 4 KiB pages, filled with `fill`.
fn pages(len: usize, fill: u8) -> PayloadSpan {
    let p: Payload = (0..len / PAGE)
        .map(|_| IoBuf::from_vec(vec![fill; PAGE]))
        .collect();
    PayloadSpan::from(p)
}

/// A started NI and its host.
struct Ni {
    host: Arc<Side>,
    ni: LndNiHandle,
    nid: Nid,
}

fn start(addr: &str, port: u16, counts: &Arc<Counts>) -> Ni {
    let host = Arc::new(Side {
        ni: OnceLock::new(),
        rx: (0..RX_SPANS).map(|_| pages(MAX, 0)).collect(),
        next_rx: AtomicUsize::new(0),
        next_msg: AtomicU64::new(1),
        counts: counts.clone(),
    });
    let s = lnd_sock::SockLnd
        .startup(
            config(TCP, addr, &params(port), &[]),
            HostHandle::new(H(host.clone())),
        )
        .expect("startup");
    host.ni.set(s.ni.clone()).ok().expect("set once");
    Ni {
        host,
        ni: s.ni,
        nid: s.info.nid,
    }
}

/// Sends `n` PUTs of `len` bytes from `a` to `b`, keeping up to `inflight`
/// unfinished (sent but not both sent and received), then waits for all.
fn run(a: &Ni, b: &Ni, span: &PayloadSpan, len: usize, inflight: u64, n: u64) {
    let c = &a.host.counts;
    let (sent0, recv0) = (
        c.sent.load(Ordering::Acquire),
        c.received.load(Ordering::Acquire),
    );
    let done = |c: &Counts| {
        let s = c.sent.load(Ordering::Acquire) - sent0;
        let r = c.received.load(Ordering::Acquire) - recv0;
        s.min(r)
    };
    let payload = span.sub(0, len).expect("inside the span");
    for i in 0..n {
        if i >= inflight {
            c.wait("a message to finish", |c| done(c) > i - inflight);
        }
        let token = a.host.next_msg.fetch_add(1, Ordering::Relaxed);
        let tx = TxMsg {
            token: MsgToken(token),
            hdr: Hdr {
                dest_nid: b.nid,
                src_nid: a.nid,
                dest_pid: PID,
                src_pid: PID,
                msg_type: MsgType::PUT,
                payload_length: len as u32,
                body: [0; 40],
            },
            target: b.nid,
            target_pid: PID,
            payload: Payload::new(),
            rx: ROption::RNone,
        };
        a.ni.send_span(tx, payload.clone()).expect("send_span");
    }
    c.wait("the last messages to finish", |c| done(c) == n);
}

/// Gives every scheduler of lnd-sock its one lazy allocation of the data
/// path's kind: tokio wakes a task that ran out of its cooperative budget
/// (128 polls of its resources without yielding; the writer gets there
/// with several frames queued) through the scheduler's list of deferred
/// wakers (`scheduler::defer::Defer`, a `Vec<Waker>` that keeps its
/// capacity), whose first push allocates 64 bytes. A scheduler may first
/// run out of budget long after the warm-up (one did in about one run of
/// five), so a task that exhausts its budget runs on each scheduler here.
fn prime_schedulers() {
    for rt in lnd_sock::schedulers().expect("schedulers") {
        let done = rt.spawn(async {
            for _ in 0..1024 {
                tokio::task::consume_budget().await;
            }
        });
        rt.block_on(done).expect("priming task");
    }
}

/// One case's result: what the allocator saw over `n` messages.
struct Measured {
    len: usize,
    inflight: u64,
    n: u64,
    stats: stats_alloc::Stats,
    elapsed: Duration,
    /// Log lines the hosts got meanwhile (connection setup logs before).
    logs: u64,
}

#[test]
fn steady_state_puts_allocate_nothing_per_message() {
    let started = Instant::now();
    let counts = Arc::new(Counts::default());
    let port = test_port();
    let a = start("127.0.0.1", port, &counts);
    let b = start("127.0.0.2", port, &counts);
    let span = pages(MAX, 0x5A);
    prime_schedulers();

    // (payload bytes, messages in flight, warm-up messages, measured messages)
    let cases: [(usize, u64, u64, u64); 6] = [
        (0, 1, 2000, 5000),
        (0, 8, 2000, 5000),
        (4096, 1, 2000, 5000),
        (4096, 8, 2000, 5000),
        (MAX, 1, 200, 1000),
        (MAX, 4, 200, 1000),
    ];
    let mut results = Vec::with_capacity(cases.len());
    for (len, inflight, warm, n) in cases {
        run(&a, &b, &span, len, inflight, warm);
        // A loaded machine can let queues grow past what the warm-up made
        // them once (a new high-water mark, a few allocations): measured
        // again then. An allocation per message shows on every attempt.
        let mut attempt = 0;
        let (stats, logs, t0) = loop {
            attempt += 1;
            let logs0 = counts.logs.load(Ordering::Relaxed);
            let t0 = Instant::now();
            let region = Region::new(GLOBAL);
            run(&a, &b, &span, len, inflight, n);
            let stats = region.change();
            let logs = counts.logs.load(Ordering::Relaxed) - logs0;
            if (stats.allocations, stats.reallocations) == (0, 0) || attempt == 3 {
                break (stats, logs, t0);
            }
            println!(
                "PUT {len} B, {inflight} in flight: {} allocations, {} reallocations \
                 (attempt {attempt}); measuring again",
                stats.allocations, stats.reallocations
            );
        };
        results.push(Measured {
            len,
            inflight,
            n,
            stats,
            elapsed: t0.elapsed(),
            logs,
        });
    }

    // The data landed whole (the last receive span written holds the
    // sender's bytes).
    let last = (b.host.next_rx.load(Ordering::Relaxed) + RX_SPANS - 1) % RX_SPANS;
    let mut got = vec![0u8; MAX];
    assert_eq!(b.host.rx[last].read_at(0, &mut got), Ok(MAX));
    assert!(got.iter().all(|&x| x == 0x5A), "payload bytes differ");

    for m in &results {
        let s = &m.stats;
        println!(
            "PUT {:>7} B, {} in flight: {:>5} messages in {:>6.1} ms: \
             {} allocations ({:.4}/message), {} reallocations, {} deallocations, \
             {} bytes allocated",
            m.len,
            m.inflight,
            m.n,
            m.elapsed.as_secs_f64() * 1e3,
            s.allocations,
            s.allocations as f64 / m.n as f64,
            s.reallocations,
            s.deallocations,
            s.bytes_allocated,
        );
    }
    assert_eq!(counts.failed.load(Ordering::Relaxed), 0, "failed messages");
    assert_eq!(
        counts.refused.load(Ordering::Relaxed),
        0,
        "refused recv_span"
    );
    for m in &results {
        assert_eq!(m.logs, 0, "log lines while measuring");
        assert_eq!(
            (m.stats.allocations, m.stats.reallocations),
            (0, 0),
            "PUT of {} B with {} in flight allocated over {} messages",
            m.len,
            m.inflight,
            m.n
        );
    }
    a.ni.shutdown();
    b.ni.shutdown();
    println!("total {:.2} s", started.elapsed().as_secs_f64());
}
