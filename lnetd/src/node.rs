//! The node runtime: one LNet instance driven by real threads.
//!
//! [`Node`] owns the engine behind a mutex, the plugin host, and the LND
//! objects of its NIs. LND callbacks ([`lnd_api::Host`]) lock the engine, feed
//! it (`handle_*`), drain its outputs, release the lock and only then call the
//! LNDs, so an LND may call back into the host from inside any LND call. A
//! timer thread calls `handle_timeout` at the engine's `poll_timeout`.
//! Control requests (from lnetd's socket or an embedding application) are
//! plain methods. An embedding application moves data with the methods of
//! `app` ([`Node::md_attach`], [`Node::md_bind`], [`Node::put`],
//! [`Node::get`], [`Node::md_unlink`]) and takes the MD events from the
//! [`EqHandle`] each MD was created with; [`crate::ctl::CtlServer::node_slot`]
//! gives it the node that `lnetctl lnet configure` started.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lnd_api::{
    errno, Completion, Hdr, HealthStatus, Host, HostHandle, LndError, LndHandle, LndNiHandle,
    LogLevel, MsgToken, NetId, NetTunables, NiConfig, Nid, RxToken, Tunable,
};

use crate::host::{HostError, PluginHost, PluginInfo};
use lnet_core::event::Event;
use lnet_core::ni::{Config, LndOp, NiId};
use lnet_core::nid::ProcessId;
use lnet_core::ping::{PingError, PingId};
use lnet_core::time::Instant;
use lnet_core::wire::{PingInfo, LNET_NI_STATUS_UP, LNET_PING_FEAT_MULTI_RAIL};
use lnet_core::Lnet;
use lnet_selftest::stack::{lnd_op_ni, Stack, StackEvent};
use lnet_selftest::{ConsoleError, TxnId};

mod app;
pub(crate) mod config;
mod fault;
mod peer;

pub use app::{EqHandle, MatchSpec, Target};

/// The result of a selftest console command, see [`Node::lst`].
pub use lnet_selftest::ConsoleReply as LstReply;
/// A selftest console command (`lst`), see [`Node::lst`].
pub use lnet_selftest::ConsoleRequest as LstRequest;

/// How a node starts.
#[derive(Clone, Debug, Default)]
pub struct NodeConfig {
    /// Directories searched for a plugin when `net add` names a network type
    /// no loaded plugin provides.
    pub plugin_path: Vec<PathBuf>,
    /// Module parameters (`--param NAME=VALUE`), validated by the caller.
    pub params: Vec<(String, String)>,
    /// Values for parameters that plugins declare (lnd-api's parameter
    /// extension), checked by the caller against the declarations; each
    /// plugin gets its own at load and at NI start-up, after `params`.
    pub plugin_params: Vec<crate::host::PluginParam>,
    /// Global tunables carried over from an earlier configuration of the
    /// same daemon (`lnet unconfigure` keeps them, lnetctl.md §2.1); they
    /// win over `params`.
    pub tunables: Option<lnet_core::ni::GlobalTunables>,
    /// The node's LNet PID (12345 unless testing).
    pub pid: u32,
}

/// A `net add` request: one NI per interface (at least one interface).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetAdd {
    /// The network name (`tcp1`, or a plugin's own type such as `vnd2`); the
    /// node resolves it, since only it knows the types its plugins provide.
    pub net: String,
    /// Interfaces, one NI each.
    pub interfaces: Vec<String>,
    /// Net tunables (-1 = LND default).
    pub tunables: NetTunables,
    /// LND tunables given (`conns_per_peer`, `tos`).
    pub lnd_tunables: Vec<(String, String)>,
}

/// Latency samples of one kind (`put_egress`, `get_rtt`, `put_ack`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LatencyStats {
    /// Number of samples.
    pub samples: u64,
    /// Minimum, ns (0 without samples).
    pub min_nsec: u64,
    /// Maximum, ns.
    pub max_nsec: u64,
    /// Average, ns.
    pub avg_nsec: u64,
}

pub use lnet_core::stats::TypeCounts;

/// Health of an NI (`health stats` of `net show -v 2`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NiHealth {
    /// Link fatal state.
    pub fatal_error: u64,
    /// 0..=1000.
    pub value: u32,
    /// Counters by health status.
    pub interrupts: u64,
    /// Local drops.
    pub dropped: u64,
    /// Aborts.
    pub aborted: u64,
    /// No route.
    pub no_route: u64,
    /// Timeouts.
    pub timeouts: u64,
    /// Other errors.
    pub error: u64,
    /// Recovery pings sent.
    pub ping_count: u64,
    /// Next recovery ping (seconds), 0 when none.
    pub next_ping: u64,
}

/// One NI as `net show` reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NiShow {
    /// Its NID.
    pub nid: Nid,
    /// `up` or `down`.
    pub up: bool,
    /// Interfaces (empty for lo).
    pub interfaces: Vec<String>,
    /// Messages sent.
    pub send_count: u64,
    /// Messages received.
    pub recv_count: u64,
    /// Messages dropped.
    pub drop_count: u64,
    /// PUT egress latency.
    pub put_egress: LatencyStats,
    /// GET round trips.
    pub get_rtt: LatencyStats,
    /// PUT to ACK round trips.
    pub put_ack: LatencyStats,
    /// Sent by type.
    pub sent: TypeCounts,
    /// Received by type.
    pub received: TypeCounts,
    /// Dropped by type.
    pub dropped: TypeCounts,
    /// Health.
    pub health: NiHealth,
    /// Net tunables in force.
    pub tunables: NetTunables,
    /// LND tunables in force, in the LND's order.
    pub lnd_tunables: Vec<(String, String)>,
    /// Device CPT, -1 if unknown.
    pub dev_cpt: i32,
    /// CPTs the NI is bound to.
    pub cpts: Vec<u32>,
    /// NI tx credits now (`ni_tx_credits`), for `-v`.
    pub tx_credits: i64,
    /// Lowest tx credits seen.
    pub min_tx_credits: i64,
    /// UDSP net priority, as upstream prints it (-1: no rule).
    pub net_priority: i32,
    /// UDSP NID priority (-1: no rule).
    pub nid_priority: i32,
}

/// One net as `net show` reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetShow {
    /// The network.
    pub net: NetId,
    /// Its name as printed (`tcp1`).
    pub name: String,
    /// Its NIs in creation order.
    pub nis: Vec<NiShow>,
}

/// A plugin with the NIDs of the NIs it serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PluginShow {
    /// The plugin.
    pub info: PluginInfo,
    /// NIs started through it.
    pub nis: Vec<Nid>,
}

/// A successful ping.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PingReply {
    /// The peer's primary NID.
    pub primary_nid: Nid,
    /// The peer's PID.
    pub pid: u32,
    /// Whether the peer is Multi-Rail capable.
    pub multi_rail: bool,
    /// The peer's NIDs (without 0@lo), with their status (`up`).
    pub nids: Vec<(Nid, bool)>,
}

/// Why a control request failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// A plugin host refusal.
    #[error("{0}")]
    Host(#[from] HostError),
    /// A request that cannot be satisfied, with an errno (positive) and a message.
    #[error("{message}")]
    Failed {
        /// Positive errno.
        errno: i32,
        /// What went wrong, lowercase, naming the object.
        message: String,
    },
}

impl NodeError {
    /// A failure with an errno and a message.
    pub fn failed(errno: i32, message: impl Into<String>) -> Self {
        NodeError::Failed {
            errno,
            message: message.into(),
        }
    }

    /// The positive errno a control client sees.
    pub fn errno(&self) -> i32 {
        match self {
            NodeError::Host(h) => h.errno(),
            NodeError::Failed { errno, .. } => *errno,
        }
    }
}

/// An NI of the runtime: the LND object serving it and what `net show` needs
/// beyond the engine's view.
struct NiRt {
    lnd: LndNiHandle,
    plugin: String,
    net_name: String,
    /// Where the LND's callbacks go instead of the engine once a filter
    /// plugin (lnd-fault) is stacked on the NI (see `node/fault.rs`).
    stack: Arc<std::sync::OnceLock<HostHandle>>,
    /// The LND's own NI object when `lnd` is a filter's: shut down after it.
    inner: Option<LndNiHandle>,
    /// A filter is being stacked on the running NI (its calls run without
    /// the node's lock; see `node/fault.rs`).
    stacking: bool,
}

/// Everything behind the node's lock.
struct State {
    lnet: Lnet,
    host: PluginHost,
    nis: lnet_core::hash::FastMap<NiId, NiRt>,
    /// One LND object per network type name, made on first use (shared, so
    /// it is called without the lock held).
    lnds: HashMap<String, (String, Arc<LndHandle>)>,
    /// NIs whose LND `startup` runs (without the lock): net and interface,
    /// reserved so a second `net add` of the same one is refused meanwhile.
    starting: Vec<(NetId, String)>,
    /// Finished pings waiting for their caller.
    pings: HashMap<PingId, Result<PingInfo, PingError>>,
    /// Selftest and the routing of the engine's outputs (the one loop the
    /// simulated fabric and the engine tests run too); the application's
    /// MDs are tagged with their event queue.
    stack: Stack<EqHandle>,
    /// Finished `discover` requests (`node/peer.rs`).
    discovers: HashMap<lnet_core::DiscoverId, Result<Nid, i32>>,
    /// Finished selftest console commands waiting for their caller.
    lst_done: HashMap<TxnId, Result<LstReply, ConsoleError>>,
    /// Module parameters handed to every LND.
    params: Vec<Tunable>,
    pid: u32,
    stopping: bool,
    /// The time the timer thread sleeps until (`None` while it is awake):
    /// it is woken only when a timeout moves before that.
    timer_sleep_until: Option<Instant>,
    /// A ping or console result arrived since the waiters were last woken.
    results: bool,
    /// UDSP rules in index order (`udsp add|del|show`).
    udsp: Vec<liblnetconfig::proto::UdspRule>,
    /// The loaded filter plugin (lnd-fault), stacked on every NI but lo.
    filter: Option<Arc<lnd_api::FilterHandle>>,
}

struct Inner {
    state: Mutex<State>,
    /// Signalled when a ping or console result arrives, or the node stops.
    changed: Condvar,
    /// Signalled when the next timeout moves before the timer's wake-up
    /// time, or the node stops. (Waking the timer for every message would
    /// cost a context switch per message.)
    timer_cv: Condvar,
    /// The monotonic clock at start (`lnd_api::clock::monotonic_ns`): the
    /// engine's time is the time since.
    origin: u64,
    timer: Mutex<Option<JoinHandle<()>>>,
    /// LND work handed over by threads past their run budget (see
    /// [`Inner::execute`]), run by the executor thread.
    deferred: DeferredQueue<Work>,
    executor: Mutex<Option<JoinHandle<()>>>,
    /// Emptied work lists kept for reuse, so that a call carrying a message
    /// allocates no list (issue #3: no heap allocation per message). Lists
    /// move between threads (a callback's list runs on the executor), so
    /// the pool is the node's; its lock is never held while taking another.
    spare_work: Mutex<Vec<Work>>,
}

/// One running LNet instance (the kernel module's role). Cheap to clone.
#[derive(Clone)]
pub struct Node {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node").finish_non_exhaustive()
    }
}

/// What to do after the lock is released.
type Work = Vec<(LndNiHandle, LndOp)>;

/// Most emptied work lists a node keeps for reuse.
const SPARE_WORK_MAX: usize = 16;

impl Inner {
    /// The engine's time: read on every call into the node (several per
    /// message), with one clock read and a subtraction.
    fn now(&self) -> Instant {
        Instant(lnd_api::clock::monotonic_ns().saturating_sub(self.origin))
    }

    /// An empty work list, with capacity when one was given back before.
    fn take_work(&self) -> Work {
        self.spare_work
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop()
            .unwrap_or_default()
    }

    /// Keeps an executed (emptied) work list for a later call.
    fn give_back_work(&self, mut work: Work) {
        work.clear();
        let mut spare = self.spare_work.lock().unwrap_or_else(|p| p.into_inner());
        if spare.len() < SPARE_WORK_MAX {
            spare.push(work);
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A poisoned lock means a thread panicked while holding it; the
        // engine's state is still the last consistent one it reached.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` on the state, drains the engine's outputs, releases the lock
    /// and executes them; LND failures are fed back until nothing is left.
    fn with<R>(self: &Arc<Self>, f: impl FnOnce(&mut State, Instant) -> R) -> R {
        let mut st = self.lock();
        let now = self.now();
        let r = f(&mut st, now);
        let mut work = self.take_work();
        drain_into(&mut st, now, &mut work);
        let wake = wakeups(&mut st);
        drop(st);
        self.wake(wake);
        self.execute(work);
        r
    }

    /// Wakes what [`wakeups`] found to wake.
    fn wake(&self, (timer, results): (bool, bool)) {
        if timer {
            self.timer_cv.notify_one();
        }
        if results {
            self.changed.notify_all();
        }
    }

    /// Wakes every sleeper (a new NI, shutdown).
    fn wake_all(&self) {
        self.timer_cv.notify_all();
        self.changed.notify_all();
    }

    /// Executes LND work on this thread (run to completion). A host
    /// callback made from inside an LND call on this thread (the lo LND's
    /// `send` parses at once; lnd-sock completes a send it wrote directly;
    /// a completion starts the next selftest RPC) does not recurse: its work
    /// goes to this thread's own queue, which the outermost call runs once
    /// its list is done, so a received message's reply and the next send are
    /// written by the thread that read it, without waking another thread.
    /// A chain longer than [`RUN_BUDGET`] lists (the lo LND's endless
    /// ping-pong) is handed to the node's executor thread, so the caller (a
    /// control request, an LND's reader) is not kept running forever.
    fn execute(self: &Arc<Self>, work: Work) {
        if work.is_empty() {
            self.give_back_work(work);
            return;
        }
        if IN_LND_CALL.with(Cell::get) {
            let over = LOCAL_WORK.with(|l| {
                let mut l = l.borrow_mut();
                if l.len() < LOCAL_MAX {
                    l.push_back((Arc::clone(self), work));
                    None
                } else {
                    Some(work)
                }
            });
            if let Some(work) = over {
                if IS_EXECUTOR.with(Cell::get) {
                    // The executor cannot wait for itself: one level deeper.
                    self.deferred
                        .inline_runs
                        .fetch_add(1, AtomicOrdering::Relaxed);
                    self.run(work);
                } else {
                    self.deferred.push(work, || self.is_stopping());
                }
            }
            return;
        }
        let _inside = InLndCall::enter();
        self.run(work);
        run_local_work(Some(RUN_BUDGET));
    }

    fn is_stopping(&self) -> bool {
        self.lock().stopping
    }

    fn run(self: &Arc<Self>, mut work: Work) {
        while !work.is_empty() {
            let mut failed: Vec<(MsgToken, Completion)> = Vec::new();
            for (lnd, op) in work.drain(..) {
                match op {
                    LndOp::Send { tx, payload, .. } => {
                        let token = tx.token;
                        if let Err(e) = lnd.send_span(tx, payload) {
                            tracing::debug!("lnd send failed: {e}");
                            failed.push((
                                token,
                                Completion::failed(e.errno, HealthStatus::LOCAL_ERROR),
                            ));
                        }
                    }
                    LndOp::Recv { rx, payload, .. } => {
                        let msg = rx.msg;
                        if let Err(e) = lnd.recv_span(rx, payload) {
                            tracing::debug!("lnd recv failed: {e}");
                            if let lnd_api::abi_stable::std_types::ROption::RSome(m) = msg {
                                failed.push((
                                    m,
                                    Completion::failed(e.errno, HealthStatus::LOCAL_ERROR),
                                ));
                            }
                        }
                    }
                    LndOp::EagerRecv { rx, .. } => {
                        if let Err(e) = lnd.eager_recv(rx) {
                            tracing::trace!("lnd eager_recv: {e}");
                        }
                    }
                    LndOp::NotifyPeerDown { peer, .. } => lnd.notify_peer_down(peer),
                    // Filtered out by `drain_once`.
                    #[allow(unreachable_patterns)]
                    _ => {}
                }
            }
            if failed.is_empty() {
                break;
            }
            let mut st = self.lock();
            let now = self.now();
            for (t, c) in failed {
                st.lnet.handle_done(now, t, c);
            }
            drain_into(&mut st, now, &mut work);
            let wake = wakeups(&mut st);
            drop(st);
            self.wake(wake);
        }
        self.give_back_work(work);
    }
}

/// Most work lists one outermost call runs on its thread (its own list
/// included) before handing the rest to the executor.
const RUN_BUDGET: usize = 64;
/// Bound of a thread's own queue of work deferred by nested callbacks.
const LOCAL_MAX: usize = 256;
/// Bound of the executor's queue (lists): a thread handing work over to a
/// full queue waits until the executor makes room (back-pressure: the LND
/// thread that produced it stops reading its sockets meanwhile).
const DEFERRED_MAX: usize = 1024;

thread_local! {
    /// Whether this thread is executing LND work for a node's runtime.
    static IN_LND_CALL: Cell<bool> = const { Cell::new(false) };
    /// Whether this thread is a node's executor.
    static IS_EXECUTOR: Cell<bool> = const { Cell::new(false) };
    /// Work that host callbacks made from inside an LND call on this thread,
    /// run by the outermost call when its own list is done (see
    /// [`Inner::execute`]). It keeps its capacity: no allocation per message.
    static LOCAL_WORK: RefCell<VecDeque<(Arc<Inner>, Work)>> = const { RefCell::new(VecDeque::new()) };
}

/// Runs this thread's deferred work in order, new work included; past
/// `budget` lists, hands what is left to the nodes' executors.
fn run_local_work(budget: Option<usize>) {
    let mut ran = 0;
    while let Some((node, work)) = LOCAL_WORK.with(|l| l.borrow_mut().pop_front()) {
        if budget.is_some_and(|b| ran >= b) {
            node.deferred.push(work, || node.is_stopping());
        } else {
            node.run(work);
            ran += 1;
        }
    }
}

/// Marks this thread as executing LND work until dropped (also when
/// unwinding).
struct InLndCall;

impl InLndCall {
    fn enter() -> Self {
        IN_LND_CALL.with(|c| c.set(true));
        InLndCall
    }
}

impl Drop for InLndCall {
    fn drop(&mut self) {
        IN_LND_CALL.with(|c| c.set(false));
    }
}

/// The executor's queue of work lists: bounded, FIFO; a producer waits for
/// room (back-pressure), the executor never waits for itself.
struct DeferredQueue<T> {
    q: Mutex<VecDeque<T>>,
    /// Signalled when work arrives or the node stops.
    ready: Condvar,
    /// Signalled when the executor takes work (room for a waiting producer).
    room: Condvar,
    max: usize,
    /// Times a producer found the queue full and waited.
    waits: AtomicU64,
    /// Lists the executor ran one level deeper because its own queue was full.
    inline_runs: AtomicU64,
}

impl<T> DeferredQueue<T> {
    fn new(max: usize) -> Self {
        DeferredQueue {
            q: Mutex::new(VecDeque::new()),
            ready: Condvar::new(),
            room: Condvar::new(),
            max,
            waits: AtomicU64::new(0),
            inline_runs: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, VecDeque<T>> {
        self.q.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `w`, waiting while the queue is full, unless `stopping()`
    /// (a stopping node's executor drains everything anyway).
    fn push(&self, w: T, stopping: impl Fn() -> bool) {
        let mut q = self.lock();
        if q.len() >= self.max {
            self.waits.fetch_add(1, AtomicOrdering::Relaxed);
            while q.len() >= self.max {
                drop(q);
                if stopping() {
                    q = self.lock();
                    break;
                }
                q = self.lock();
                if q.len() < self.max {
                    break;
                }
                q = self
                    .room
                    .wait_timeout(q, Duration::from_millis(100))
                    .map(|(g, _)| g)
                    .unwrap_or_else(|p| p.into_inner().0);
            }
        }
        q.push_back(w);
        drop(q);
        self.ready.notify_one();
    }

    /// Takes the oldest list, waiting up to `wait` for one.
    fn pop(&self, wait: Duration) -> Option<T> {
        let mut q = self.lock();
        if q.is_empty() {
            q = self
                .ready
                .wait_timeout(q, wait)
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        }
        let w = q.pop_front();
        drop(q);
        if w.is_some() {
            self.room.notify_all();
        }
        w
    }

    fn len(&self) -> usize {
        self.lock().len()
    }
}

/// The executor thread: runs the work that threads handed over, in order
/// (and the work its own callbacks defer), until the node stops and
/// nothing is left.
fn executor_loop(node: Weak<Inner>) {
    let _inside = InLndCall::enter();
    IS_EXECUTOR.with(|c| c.set(true));
    loop {
        let Some(inner) = node.upgrade() else { return };
        match inner.deferred.pop(Duration::from_secs(1)) {
            Some(w) => {
                inner.run(w);
                drop(inner);
                run_local_work(None);
            }
            None => {
                if inner.is_stopping() && inner.deferred.len() == 0 {
                    return;
                }
            }
        }
    }
}

/// Drains the stack's LND operations (paired with the NI's LND object) into
/// `work`, and its events: ping and console results are kept for their
/// waiters, application MD events go to their queues.
fn drain_into(st: &mut State, now: Instant, work: &mut Work) {
    let State {
        lnet,
        stack,
        nis,
        pings,
        discovers,
        lst_done,
        results,
        ..
    } = st;
    while let Some(op) = stack.poll_lnd(lnet, now) {
        match lnd_op_ni(&op).and_then(|ni| nis.get(&ni)) {
            Some(rt) => work.push((rt.lnd.clone(), op)),
            // The NI is gone (deleted between the engine's decision and
            // now): the stack fails what would have gone to it.
            None => stack.handle_unsent(lnet, now, op),
        }
    }
    while let Some(ev) = stack.poll_event(lnet, now) {
        match ev {
            StackEvent::App { tag, event } => tag.push(event),
            StackEvent::Console { txn, result } => {
                lst_done.insert(txn, result);
                *results = true;
            }
            StackEvent::Engine(Event::PingDone { id, result }) => {
                pings.insert(id, result);
                *results = true;
            }
            StackEvent::Engine(Event::DiscoverDone { id, result, .. }) => {
                discovers.insert(id, result);
                *results = true;
            }
            StackEvent::Engine(e) => tracing::trace!(?e, "event"),
            _ => {}
        }
    }
}

/// The earliest timeout of the engine and of selftest.
fn next_due(st: &State) -> Option<Instant> {
    st.stack.poll_timeout(&st.lnet)
}

/// What to wake once the lock is released: the timer when the next timeout
/// moved before the time it sleeps until, the waiters when a result arrived.
fn wakeups(st: &mut State) -> (bool, bool) {
    let timer = match (st.timer_sleep_until, next_due(st)) {
        (Some(until), Some(due)) => due < until,
        _ => false,
    };
    if timer {
        // Once told, the timer re-reads the timeouts itself.
        st.timer_sleep_until = None;
    }
    (timer, std::mem::take(&mut st.results))
}

/// `MemTotal` from `/proc/meminfo`, in bytes.
fn total_ram_bytes() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = s.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// Wall-clock time since the Unix epoch (selftest ids and stamps).
fn wall_now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

/// The host callbacks of one NI.
struct NiHost {
    node: Weak<Inner>,
    ni: Arc<std::sync::OnceLock<NiId>>,
    name: String,
    /// Set when a filter is stacked on the NI: the LND's callbacks go there.
    stack: Arc<std::sync::OnceLock<HostHandle>>,
}

impl NiHost {
    fn ni(&self) -> Option<(Arc<Inner>, NiId)> {
        Some((self.node.upgrade()?, *self.ni.get()?))
    }
}

impl Host for NiHost {
    fn parse(&self, hdr: Hdr, from: Nid, rx: RxToken, rdma_req: bool) -> Result<(), LndError> {
        if let Some(f) = self.stack.get() {
            return f.parse(hdr, from, rx, rdma_req);
        }
        let (node, ni) = self.ni().ok_or_else(|| {
            LndError::new(errno::ENETDOWN, format!("NI {} is not running", self.name))
        })?;
        node.with(|st, now| st.lnet.handle_rx(now, ni, hdr, from, rx, rdma_req))
            .map_err(|e| LndError::new(errno::EPROTO, e.to_string()))
    }

    fn finalize(&self, msg: MsgToken, status: Completion) {
        if let Some(f) = self.stack.get() {
            return f.finalize(msg, status);
        }
        if let Some(node) = self.node.upgrade() {
            node.with(|st, now| st.lnet.handle_done(now, msg, status));
        }
    }

    fn notify(&self, peer: Nid, alive: bool) {
        if let Some(f) = self.stack.get() {
            return f.notify(peer, alive);
        }
        if let Some((node, ni)) = self.ni() {
            node.with(|st, now| st.lnet.handle_notify(now, ni, peer, alive));
        }
    }

    fn link_state(&self, up: bool) {
        if let Some(f) = self.stack.get() {
            return f.link_state(up);
        }
        if let Some((node, ni)) = self.ni() {
            node.with(|st, now| st.lnet.handle_link_state(now, ni, up));
        }
    }

    fn log(&self, level: LogLevel, msg: &str) {
        let ni = &self.name;
        match level {
            LogLevel::ERROR => tracing::error!(ni, "{msg}"),
            LogLevel::WARN => tracing::warn!(ni, "{msg}"),
            LogLevel::INFO => tracing::info!(ni, "{msg}"),
            LogLevel::DEBUG => tracing::debug!(ni, "{msg}"),
            _ => tracing::trace!(ni, "{msg}"),
        }
    }
}

fn not_running() -> NodeError {
    NodeError::failed(errno::ENETDOWN, "LNet is shutting down")
}

impl Node {
    /// Starts a node: the engine with `0@lo` served by the built-in lo LND,
    /// the ping target, and the timer thread.
    pub fn start(cfg: NodeConfig) -> Result<Node, NodeError> {
        let origin = lnd_api::clock::monotonic_ns();
        let cookie = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1);
        let mut lcfg = Config::default();
        lcfg.pid = cfg.pid;
        lcfg.interface_cookie = cookie;
        lcfg.seed = cookie;
        apply_params(&mut lcfg, &cfg.params)?;
        if let Some(t) = &cfg.tunables {
            lcfg.tunables = t.clone();
        }
        let mut st_params = lnet_selftest::Params::from_module_params(&cfg.params)
            .map_err(|e| NodeError::failed(errno::EINVAL, e.to_string()))?;
        // The BRW server's 1 MiB buffers may use at most ~1/16 of the RAM.
        if let Some(ram) = total_ram_bytes() {
            let cap = u32::try_from((ram / 16) >> 20).unwrap_or(u32::MAX).max(1);
            st_params.brw_srv_workitems = st_params.brw_srv_workitems.min(cap);
        }
        let mut lnet = Lnet::new(lcfg, Instant(0));
        lnet.router_params(Instant(0), &cfg.params)
            .map_err(|e| NodeError::failed(errno::EINVAL, e))?;
        let mut stack = Stack::new(Instant(0), wall_now());
        stack.enable_selftest(&mut lnet, Instant(0), st_params);
        let inner = Arc::new(Inner {
            state: Mutex::new(State {
                lnet,
                stack,
                lst_done: HashMap::new(),
                host: {
                    let mut h = PluginHost::new(cfg.plugin_path.clone());
                    h.set_plugin_params(cfg.plugin_params.clone());
                    h
                },
                nis: lnet_core::hash::FastMap::default(),
                lnds: HashMap::new(),
                starting: Vec::new(),
                pings: HashMap::new(),
                discovers: HashMap::new(),
                params: cfg
                    .params
                    .iter()
                    .map(|(k, v)| Tunable::new(k.clone(), v))
                    .collect(),
                pid: cfg.pid,
                stopping: false,
                timer_sleep_until: None,
                results: false,
                udsp: Vec::new(),
                filter: None,
            }),
            changed: Condvar::new(),
            timer_cv: Condvar::new(),
            origin,
            timer: Mutex::new(None),
            deferred: DeferredQueue::new(DEFERRED_MAX),
            executor: Mutex::new(None),
            spare_work: Mutex::new(Vec::new()),
        });
        let node = Node { inner };
        // 0@lo: served by the built-in lo LND like any other NI.
        {
            let mut st = node.inner.lock();
            let lnd = st.host.lnd_for("lo")?;
            let plugin = lnd.0.clone();
            let slot = Arc::new(std::sync::OnceLock::new());
            let _ = slot.set(NiId::LO);
            let stack = Arc::new(std::sync::OnceLock::new());
            let host = HostHandle::new(NiHost {
                node: Arc::downgrade(&node.inner),
                ni: slot,
                name: "0@lo".into(),
                stack: Arc::clone(&stack),
            });
            let cfg = NiConfig {
                net: NetId::LO,
                interfaces: Vec::new().into(),
                tunables: NetTunables::UNSET,
                lnd_tunables: Vec::new().into(),
                params: st.params.clone().into(),
                pid: st.pid,
            };
            let started = lnd.1.startup(cfg, host).map_err(HostError::Lnd)?;
            st.host.account_ni(&plugin, true);
            st.lnds.insert("lo".into(), (lnd.0, Arc::new(lnd.1)));
            st.nis.insert(
                NiId::LO,
                NiRt {
                    lnd: started.ni,
                    plugin,
                    net_name: "lo".into(),
                    stack,
                    inner: None,
                    stacking: false,
                },
            );
        }
        let weak = Arc::downgrade(&node.inner);
        let timer = std::thread::Builder::new()
            .name("lnet-timer".into())
            .spawn(move || timer_loop(weak))
            .map_err(|e| {
                NodeError::failed(errno::ENOMEM, format!("cannot start the timer thread: {e}"))
            })?;
        *node.inner.timer.lock().unwrap_or_else(|p| p.into_inner()) = Some(timer);
        let weak = Arc::downgrade(&node.inner);
        let executor = std::thread::Builder::new()
            .name("lnet-exec".into())
            .spawn(move || executor_loop(weak))
            .map_err(|e| {
                NodeError::failed(
                    errno::ENOMEM,
                    format!("cannot start the executor thread: {e}"),
                )
            })?;
        *node
            .inner
            .executor
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(executor);
        Ok(node)
    }

    /// `plugin load PATH`: the file is opened (and the plugin given its
    /// parameters) without the node's lock, then registered under it.
    pub fn plugin_load(&self, path: &Path) -> Result<PluginInfo, NodeError> {
        let params = {
            let st = self.inner.lock();
            if st.stopping {
                return Err(not_running());
            }
            st.host.check_not_loaded(path)?;
            st.host.plugin_params().to_vec()
        };
        let prepared = PluginHost::prepare(path, &params)?;
        let mut st = self.inner.lock();
        if st.stopping {
            return Err(not_running());
        }
        Ok(st.host.register_prepared(prepared)?)
    }

    /// Makes sure the LND object of network type `ty` exists: loads its
    /// plugin from the plugin path if no registered plugin provides it, and
    /// calls the plugin's constructor, both without the node's lock.
    fn ensure_lnd(&self, ty: &str) -> Result<(), NodeError> {
        let (candidates, params) = {
            let st = self.inner.lock();
            if st.lnds.contains_key(ty) {
                return Ok(());
            }
            if st.host.provides(ty) {
                (Vec::new(), Vec::new())
            } else {
                (st.host.candidates(ty), st.host.plugin_params().to_vec())
            }
        };
        if !candidates.is_empty() {
            let mut found = None;
            for f in candidates {
                let prepared = PluginHost::prepare(&f, &params)?;
                if prepared.provides(ty) {
                    found = Some(prepared);
                    break;
                }
                tracing::warn!(
                    file = %f.display(),
                    "plugin search: named for network type {ty} but does not provide it"
                );
            }
            let mut st = self.inner.lock();
            // Another request may have registered a provider meanwhile.
            if !st.host.provides(ty) {
                match found {
                    Some(p) => {
                        st.host.register_prepared(p)?;
                    }
                    None => return Err(st.host.no_provider(ty).into()),
                }
            }
        }
        let maker = {
            let st = self.inner.lock();
            if st.lnds.contains_key(ty) {
                return Ok(());
            }
            st.host.lnd_maker(ty)?
        };
        let made = Arc::new(maker.make(ty)?);
        let mut st = self.inner.lock();
        // A racing request's object wins; ours is dropped after the lock.
        let _ours = match st.lnds.entry(ty.to_string()) {
            std::collections::hash_map::Entry::Occupied(_) => Some(made),
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert((maker.plugin().to_string(), made));
                None
            }
        };
        drop(st);
        Ok(())
    }

    /// `plugin unload NAME`: deactivates a plugin that serves no NI.
    pub fn plugin_unload(&self, name: &str) -> Result<PluginInfo, NodeError> {
        let mut st = self.inner.lock();
        let info = st.host.unload(name)?;
        // Its LND objects are dropped; a later load makes new ones.
        let types = info.net_types.clone();
        st.lnds.retain(|t, _| !types.contains(t));
        Ok(info)
    }

    /// A parameter of the active plugin serving `net_type` (see
    /// [`PluginHost::param_of_type`]).
    pub fn plugin_param_of_type(&self, net_type: &str, name: &str) -> Option<String> {
        self.inner.lock().host.param_of_type(net_type, name)
    }

    /// The parameters of the loaded plugins and their values (see
    /// [`crate::host::PluginHost::param_values`]).
    pub fn plugin_param_values(&self) -> Vec<(String, String, String, bool)> {
        self.inner.lock().host.param_values()
    }

    /// `plugin show`: every plugin with the NIs it serves.
    pub fn plugins(&self) -> Vec<PluginShow> {
        let st = self.inner.lock();
        st.host
            .list()
            .into_iter()
            .map(|info| {
                let mut nis: Vec<(NiId, Nid)> = st
                    .nis
                    .iter()
                    .filter(|(_, rt)| rt.plugin == info.name)
                    .filter_map(|(id, _)| st.lnet.ni(*id).map(|v| (*id, v.nid())))
                    .collect();
                nis.sort_by_key(|(id, _)| *id);
                PluginShow {
                    info,
                    nis: nis.into_iter().map(|(_, n)| n).collect(),
                }
            })
            .collect()
    }

    /// `net add`: one NI per interface; on any failure the NIs this request
    /// added are removed again (nothing half-added).
    pub fn net_add(&self, req: NetAdd) -> Result<Vec<Nid>, NodeError> {
        if req.interfaces.is_empty() {
            return Err(NodeError::failed(
                errno::EINVAL,
                "creating a local NI needs at least one interface",
            ));
        }
        self.check_new_interfaces(&req)?;
        let mut added: Vec<NiId> = Vec::new();
        let mut nids = Vec::new();
        for iface in &req.interfaces {
            match self.ni_start(&req, iface) {
                Ok((id, nid)) => {
                    added.push(id);
                    nids.push(nid);
                }
                Err(e) => {
                    for id in added.into_iter().rev() {
                        self.ni_stop(id);
                    }
                    return Err(e);
                }
            }
        }
        Ok(nids)
    }

    fn resolve_net(st: &State, name: &str) -> Result<NetId, NodeError> {
        let (ty, num) = split_net_name(name).ok_or_else(|| {
            NodeError::failed(errno::EINVAL, format!("cannot parse net {name:?}"))
        })?;
        let lnd_type = st
            .host
            .lnd_type_of(ty)
            .or_else(|| lnd_api::nid::LndInfo::by_name(ty).map(|i| i.lnd_type));
        let lnd_type = lnd_type.ok_or_else(|| {
            NodeError::failed(
                errno::EINVAL,
                format!("cannot parse net {name:?}: unknown network type {ty}"),
            )
        })?;
        Ok(NetId::new(lnd_type, num))
    }

    /// Starts one NI: its LND's `startup` runs without the node's lock (a
    /// slow plugin stalls only this request; a plugin may call the host from
    /// it). The net and interface are reserved first, so nothing else can
    /// add them meanwhile, and the plugin is counted in use so it cannot be
    /// unloaded; the engine learns the NI once `startup` returned, or the
    /// reservation is rolled back.
    fn ni_start(&self, req: &NetAdd, iface: &str) -> Result<(NiId, Nid), NodeError> {
        let (ty, _) = split_net_name(&req.net).ok_or_else(|| {
            NodeError::failed(errno::EINVAL, format!("cannot parse net {:?}", req.net))
        })?;
        if ty == "lo" {
            return Err(NodeError::failed(errno::ENODEV, "setting @lo not allowed"));
        }
        if self.inner.lock().stopping {
            return Err(not_running());
        }
        // The first NI of a type makes its LND object, loading the plugin
        // from the plugin path if no loaded plugin provides the type.
        self.ensure_lnd(ty)?;
        let mut st = self.inner.lock();
        if st.stopping {
            return Err(not_running());
        }
        let net = Self::resolve_net(&st, &req.net)?;
        let taken = st.starting.iter().any(|(n, i)| *n == net && i == iface)
            || st
                .lnet
                .nis()
                .any(|v| v.net() == net && v.interfaces().iter().any(|i| i == iface));
        if taken {
            return Err(NodeError::failed(
                errno::EEXIST,
                format!(
                    "cannot add LNet NI: {} already has an NI on {iface}",
                    req.net
                ),
            ));
        }
        let (plugin, lnd) = st
            .lnds
            .get(ty)
            .map(|(p, l)| (p.clone(), Arc::clone(l)))
            .ok_or_else(|| NodeError::failed(errno::ENODEV, "LND type not supported"))?;
        let slot = Arc::new(std::sync::OnceLock::new());
        let stack = Arc::new(std::sync::OnceLock::new());
        let host = HostHandle::new(NiHost {
            node: Arc::downgrade(&self.inner),
            ni: Arc::clone(&slot),
            name: format!("{}({iface})", req.net),
            stack: Arc::clone(&stack),
        });
        // The node's module parameters, then the plugin's own.
        let mut params = st.params.clone();
        params.extend(st.host.params_of(&plugin));
        let cfg = NiConfig {
            net,
            interfaces: vec![lnd_api::abi_stable::std_types::RString::from(iface)].into(),
            tunables: req.tunables,
            lnd_tunables: req
                .lnd_tunables
                .iter()
                .map(|(k, v)| Tunable::new(k.clone(), v))
                .collect::<Vec<_>>()
                .into(),
            params: params.into(),
            pid: st.pid,
        };
        st.starting.push((net, iface.to_string()));
        st.host.account_ni(&plugin, true);
        let filter = st.filter.clone();
        drop(st);
        // Until the engine knows the NI, its callbacks find no NI (`parse`
        // is refused with ENETDOWN, a `notify` is dropped).
        let started = lnd.startup(cfg, host).map(|s| {
            // A loaded filter (lnd-fault) wraps the NI before the engine
            // knows it, still without the lock.
            let (ni, own) = match &filter {
                Some(f) => fault::wrap_new_ni(&self.inner, f, s.info.nid, &slot, &stack, s.ni),
                None => (s.ni, None),
            };
            (s.info, ni, own)
        });
        let mut st = self.inner.lock();
        if let Some(i) = st
            .starting
            .iter()
            .position(|(n, i)| *n == net && i == iface)
        {
            st.starting.swap_remove(i);
        }
        let (info, ni, own) = match started {
            Ok(s) => s,
            Err(e) => {
                st.host.account_ni(&plugin, false);
                return Err(NodeError::failed(
                    e.errno,
                    format!("cannot add LNet NI: {e}"),
                ));
            }
        };
        let shutdown = |ni: LndNiHandle, own: Option<LndNiHandle>| {
            ni.shutdown();
            if let Some(own) = own {
                own.shutdown();
            }
        };
        if st.stopping {
            st.host.account_ni(&plugin, false);
            drop(st);
            shutdown(ni, own);
            return Err(not_running());
        }
        let now = self.inner.now();
        match st.lnet.ni_add(now, net, &info) {
            Ok(id) => {
                let _ = slot.set(id);
                // An LND that takes GET sinks (lnd-api 1.3, o2ib) gets the
                // MD with each GET: the REPLY's data lands in it directly.
                let _ = st.lnet.ni_set_get_sink(id, lnd.get_sink_min());
                // A filter loaded while the LND started this NI.
                let late_filter = filter.is_none() && st.filter.is_some();
                st.nis.insert(
                    id,
                    NiRt {
                        lnd: ni,
                        plugin,
                        net_name: req.net.clone(),
                        stack,
                        inner: own,
                        stacking: false,
                    },
                );
                drop(st);
                self.inner.wake_all();
                if late_filter {
                    fault::stack_new_ni(&self.inner, id);
                }
                Ok((id, info.nid))
            }
            Err(e) => {
                st.host.account_ni(&plugin, false);
                drop(st);
                shutdown(ni, own);
                Err(NodeError::failed(
                    e.errno(),
                    format!("cannot add LNet NI: {e}"),
                ))
            }
        }
    }

    /// Stops one NI: the engine forgets it (failing what waits for it), then
    /// the LND shuts it down and finalizes what it owned.
    fn ni_stop(&self, id: NiId) {
        let rt = self.inner.with(|st, now| {
            let rt = st.nis.remove(&id);
            if let Some(rt) = &rt {
                st.host.account_ni(&rt.plugin, false);
                if id != NiId::LO {
                    if let Err(e) = st.lnet.ni_del(now, id) {
                        tracing::warn!("ni_del: {e}");
                    }
                }
            }
            rt
        });
        if let Some(rt) = rt {
            rt.lnd.shutdown();
            if let Some(inner) = rt.inner {
                inner.shutdown();
            }
        }
    }

    /// `net del --net NET`: removes every NI of the net.
    pub fn net_del(&self, net: &str) -> Result<(), NodeError> {
        let ids: Vec<NiId> = {
            let st = self.inner.lock();
            let netid = Self::resolve_net(&st, net)?;
            if netid == NetId::LO {
                return Err(NodeError::failed(
                    errno::EINVAL,
                    "deleting lo is not allowed",
                ));
            }
            let mut ids: Vec<NiId> = st
                .lnet
                .nis()
                .filter(|v| v.net() == netid)
                .map(|v| v.id())
                .collect();
            ids.sort();
            ids
        };
        if ids.is_empty() {
            return Err(NodeError::failed(errno::ENOENT, "LNet net doesn't exist"));
        }
        for id in ids {
            self.ni_stop(id);
        }
        Ok(())
    }

    /// `net show`: every net, lo first, in creation order.
    pub fn nets(&self) -> Vec<NetShow> {
        let st = self.inner.lock();
        let mut out: Vec<NetShow> = Vec::new();
        for v in st.lnet.nis() {
            let name = st
                .nis
                .get(&v.id())
                .map(|r| r.net_name.clone())
                .unwrap_or_else(|| v.net().to_string());
            let s = v.stats();
            let ni = NiShow {
                nid: v.nid(),
                up: v.is_up(),
                interfaces: v.interfaces().to_vec(),
                send_count: s.sent.total(),
                recv_count: s.received.total(),
                drop_count: s.dropped.total(),
                put_egress: latency(&s.put_egress),
                get_rtt: latency(&s.get_rtt),
                put_ack: latency(&s.put_ack),
                sent: s.sent,
                received: s.received,
                dropped: s.dropped,
                health: NiHealth {
                    fatal_error: u64::from(v.fatal()),
                    value: v.health_value(),
                    interrupts: s.health.local_interrupt,
                    dropped: s.health.local_dropped,
                    aborted: s.health.local_aborted,
                    no_route: s.health.local_no_route,
                    timeouts: s.health.local_timeout,
                    error: s.health.local_error,
                    ping_count: 0,
                    next_ping: 0,
                },
                tunables: v.tunables(),
                lnd_tunables: v
                    .lnd_tunables()
                    .iter()
                    .map(|t| (t.name.to_string(), t.value.to_string()))
                    .collect(),
                dev_cpt: -1,
                cpts: vec![0],
                tx_credits: v.tx_credits() as i64,
                min_tx_credits: v.min_tx_credits() as i64,
                // The u32 priorities cast to int, as upstream prints them.
                net_priority: v.net_priority() as i32,
                nid_priority: v.sel_priority() as i32,
            };
            match out.iter_mut().find(|n| n.net == v.net()) {
                Some(n) => n.nis.push(ni),
                None => out.push(NetShow {
                    net: v.net(),
                    name,
                    nis: vec![ni],
                }),
            }
        }
        out
    }

    /// `ping NID`: a GET on the ping portal, answered by the target's ping
    /// service; waits at most `timeout`.
    pub fn ping(
        &self,
        target: Nid,
        pid: Option<u32>,
        source: Option<Nid>,
        timeout: Duration,
    ) -> Result<PingReply, NodeError> {
        let pid = pid.unwrap_or(lnet_core::nid::LNET_PID_LUSTRE);
        let id = self.inner.with(|st, now| {
            if st.stopping {
                return Err(not_running());
            }
            st.lnet
                .ping(now, ProcessId { nid: target, pid }, source, timeout)
                .map_err(|e| NodeError::failed(e.errno(), e.to_string()))
        })?;
        let mut st = self.inner.lock();
        // The engine's own deadline ends the ping; this guard only protects
        // against a runtime bug, with a margin over the engine's timeout.
        let guard = std::time::Instant::now() + timeout + Duration::from_secs(5);
        loop {
            if let Some(r) = st.pings.remove(&id) {
                return r
                    .map(|info| ping_reply(&info, target))
                    .map_err(|e| NodeError::failed(e.errno(), e.to_string()));
            }
            let left = guard.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return Err(NodeError::failed(
                    errno::ETIMEDOUT,
                    format!("ping {target}: no answer"),
                ));
            }
            st = self
                .inner
                .changed
                .wait_timeout(st, left)
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        }
    }

    /// Runs one LNet selftest console command (`lst …`, selftest.md §2) and
    /// waits for its result: local commands answer at once, commands that
    /// talk to nodes after their transaction (at most the transaction
    /// timeout, 30 s, twice for `add_test`). Failures of the command as a
    /// whole come back as [`NodeError::Failed`] with upstream's errno and
    /// message (`No session exists`, `Unmatched session key or not root`…);
    /// per-node failures are in the [`LstReply::Nodes`] entries.
    ///
    /// `lst stat` is one [`LstRequest::Stat`] per sample; the rates of §5
    /// come from [`lnet_selftest::stat_compute`] over two samples.
    pub fn lst(&self, req: LstRequest) -> Result<LstReply, NodeError> {
        let id = self.inner.with(|st, now| {
            if st.stopping {
                return Err(not_running());
            }
            let State { lnet, stack, .. } = st;
            Ok(stack.console(lnet, now, req))
        })?;
        let mut st = self.inner.lock();
        // The transactions end by their own timeouts; this guard only
        // protects against a runtime bug.
        let guard = std::time::Instant::now() + Duration::from_secs(2 * 30 + 15);
        loop {
            if let Some(r) = st.lst_done.remove(&id) {
                return r.map_err(|e| NodeError::failed(e.errno, e.message));
            }
            if st.stopping {
                return Err(not_running());
            }
            let left = guard.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return Err(NodeError::failed(
                    errno::ETIMEDOUT,
                    "selftest console: command did not finish",
                ));
            }
            st = self
                .inner
                .changed
                .wait_timeout(st, left.min(Duration::from_secs(1)))
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        }
    }

    /// Selftest counters of this node (`srpc_counters`, `sfw_counters`).
    pub fn selftest_counters(&self) -> (lnet_selftest::SrpcCounters, lnet_selftest::SfwCounters) {
        let st = self.inner.lock();
        let now = self.inner.now();
        st.stack
            .selftest()
            .map(|s| (s.rpc_counters(), s.fw_counters(now)))
            .unwrap_or_default()
    }

    /// The network types that plugins provide beyond lnd-api's built-in
    /// table, for parsing and printing their NIDs
    /// (`Nid::display_with`, `Nid::parse_with`).
    pub fn extra_net_types(&self) -> Vec<(String, u8)> {
        let st = self.inner.lock();
        st.host
            .list()
            .into_iter()
            .flat_map(|p| p.net_types)
            .filter(|t| lnd_api::nid::LndInfo::by_name(t).is_none())
            .filter_map(|t| st.host.lnd_type_of(&t).map(|n| (t, n)))
            .collect()
    }

    /// Runs `f` on the engine at the node's clock, then executes what it
    /// asked of the LNDs (routes, routing, router buffers: `ctl::route`).
    pub fn with_engine<R>(&self, f: impl FnOnce(&mut Lnet, Instant) -> R) -> R {
        self.inner.with(|st, now| f(&mut st.lnet, now))
    }

    /// Applies `routes=` (semantics.md §15.3) once the start-up nets are up;
    /// a route through one of our own NIDs enables forwarding when
    /// `forwarding=` was not given (`auto`).
    pub fn apply_routes_param(&self, text: &str, auto: bool) -> Result<(), NodeError> {
        let routes = lnet_core::nid::Routes::parse(text)
            .map_err(|e| NodeError::failed(errno::EINVAL, format!("routes=: {e}")))?;
        self.with_engine(|l, now| {
            let router = l.routes_apply(now, &routes)?;
            if router && auto {
                l.set_routing(now, true, true);
            }
            Ok(())
        })
        .map_err(|e: lnet_core::router::RouteError| {
            NodeError::failed(e.errno(), format!("routes=: {e}"))
        })
    }

    /// Global counters (`stats show`).
    pub fn stats(&self) -> lnet_core::stats::Counters {
        *self.inner.lock().lnet.stats()
    }

    /// Shuts every NI down in order (lo last) and stops the timer.
    pub fn shutdown(&self) {
        let ids: Vec<NiId> = {
            let mut st = self.inner.lock();
            if st.stopping {
                return;
            }
            st.stopping = true;
            let mut ids: Vec<NiId> = st.nis.keys().copied().collect();
            ids.sort();
            ids.reverse();
            ids
        };
        for id in ids {
            self.ni_stop(id);
        }
        self.inner.wake_all();
        let t = self
            .inner
            .timer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(t) = t {
            let _ = t.join();
        }
        self.inner.deferred.ready.notify_all();
        let x = self
            .inner
            .executor
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(x) = x {
            let _ = x.join();
        }
    }
}

/// The engine's latency samples as `net show` reports them.
fn latency(l: &lnet_core::stats::LatencyStats) -> LatencyStats {
    LatencyStats {
        samples: l.samples,
        min_nsec: l.min_nsec,
        max_nsec: l.max_nsec,
        avg_nsec: l.avg_nsec(),
    }
}

/// `tcp1` -> (`tcp`, 1); `tcp` -> (`tcp`, 0).
fn split_net_name(name: &str) -> Option<(&str, u16)> {
    let digits = name.len() - name.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    let (ty, num) = name.split_at(name.len() - digits);
    if ty.is_empty() || !ty.chars().all(|c| c.is_ascii_alphanumeric()) {
        return None;
    }
    let num = if num.is_empty() { 0 } else { num.parse().ok()? };
    Some((ty, num))
}

/// The answer to `ping`; a node with no NI but `0@lo` is its own primary NID.
fn ping_reply(info: &PingInfo, target: Nid) -> PingReply {
    PingReply {
        primary_nid: info.primary_nid().unwrap_or(target),
        pid: info.pid,
        multi_rail: info.features & LNET_PING_FEAT_MULTI_RAIL != 0,
        nids: info
            .all_nis()
            .into_iter()
            .filter(|n| n.nid != Nid::LO_0)
            .map(|n| (n.nid, n.status == LNET_NI_STATUS_UP))
            .collect(),
    }
}

/// Applies the module parameters that set the engine's global tunables
/// (semantics.md §13.1); the others are for LNDs (handed over in
/// `NiConfig::params`) or for the daemon. lnetd validates every name first;
/// the checks here cover an embedding application that skips lnetd.
fn apply_params(cfg: &mut Config, params: &[(String, String)]) -> Result<(), NodeError> {
    let t = &mut cfg.tunables;
    for (name, value) in params {
        let int = || -> Result<i64, NodeError> {
            value.trim().parse::<i64>().map_err(|_| {
                NodeError::failed(
                    errno::EINVAL,
                    format!("bad value for parameter {name}: {value:?} is not an integer"),
                )
            })
        };
        let uint = |min: i64, max: i64| -> Result<u32, NodeError> {
            let v = int()?;
            if v < min || v > max {
                return Err(NodeError::failed(
                    errno::EINVAL,
                    format!("bad value for parameter {name}: {v} is not in {min}..={max}"),
                ));
            }
            Ok(v as u32)
        };
        match name.as_str() {
            "lnet_transaction_timeout" => t.transaction_timeout = uint(1, i32::MAX as i64)?,
            "lnet_retry_count" => t.retry_count = uint(0, i32::MAX as i64)?,
            "lnet_health_sensitivity" => t.health_sensitivity = uint(0, 1000)?,
            "lnet_recovery_limit" => t.recovery_limit = uint(0, i32::MAX as i64)?,
            "lnet_max_recovery_ping_interval" => {
                t.max_recovery_ping_interval = uint(1, i32::MAX as i64)?
            }
            "lnet_response_tracking" => t.response_tracking = uint(0, 3)?,
            "lnet_peer_discovery_disabled" => t.peer_discovery_disabled = int()? != 0,
            "lnet_drop_asym_route" => t.drop_asym_route = uint(0, 1)? == 1,
            "lnet_numa_range" => t.numa_range = uint(0, i32::MAX as i64)?,
            // Upstream clamps a too-small value up to its minimum of 16.
            "lnet_interfaces_max" => t.max_interfaces = int()?.clamp(16, i32::MAX as i64) as u32,
            "lock_prim_nid" => t.lock_prim_nid = uint(0, 1)? == 1,
            "router_sensitivity_percentage" => t.router_sensitivity = uint(0, 100)?,
            "forwarding" => t.routing = value == "enabled",
            _ => {}
        }
    }
    let retry_given = params.iter().any(|(k, _)| k == "lnet_retry_count");
    if retry_given && t.retry_count >= t.transaction_timeout {
        return Err(NodeError::failed(
            errno::EINVAL,
            format!(
                "bad value for parameter lnet_retry_count: {} must be less than lnet_transaction_timeout ({})",
                t.retry_count, t.transaction_timeout
            ),
        ));
    }
    Ok(())
}

fn timer_loop(node: Weak<Inner>) {
    loop {
        let Some(inner) = node.upgrade() else { return };
        let mut st = inner.lock();
        if st.stopping {
            return;
        }
        let now = inner.now();
        match next_due(&st) {
            Some(t) if t <= now => {
                let State { lnet, stack, .. } = &mut *st;
                stack.handle_timeout(lnet, now);
                let mut work = inner.take_work();
                drain_into(&mut st, now, &mut work);
                let (_, results) = wakeups(&mut st);
                drop(st);
                inner.wake((false, results));
                inner.execute(work);
            }
            due => {
                // At most a second, so that a stop is noticed.
                let until = due.map_or(now.saturating_add(Duration::from_secs(1)), |t| {
                    t.min(now.saturating_add(Duration::from_secs(1)))
                });
                st.timer_sleep_until = Some(until);
                let wait = Duration::from_nanos(until.0.saturating_sub(now.0));
                let (mut st, _) = inner
                    .timer_cv
                    .wait_timeout(st, wait)
                    .unwrap_or_else(|p| p.into_inner());
                st.timer_sleep_until = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn module_parameters_set_the_engine_tunables() {
        let mut cfg = Config::default();
        apply_params(
            &mut cfg,
            &p(&[
                ("lnet_transaction_timeout", "10"),
                ("lnet_retry_count", "0"),
                ("lnet_health_sensitivity", "0"),
                ("lnet_peer_discovery_disabled", "1"),
                ("forwarding", "enabled"),
                ("lnet_interfaces_max", "3"),
                ("accept_port", "7988"),
            ]),
        )
        .expect("valid");
        let t = &cfg.tunables;
        assert_eq!(
            (t.transaction_timeout, t.retry_count, t.health_sensitivity),
            (10, 0, 0)
        );
        assert!(t.peer_discovery_disabled && t.routing);
        assert_eq!(t.max_interfaces, 16);
    }

    /// Tunables kept from an earlier configuration win over the start-up
    /// parameters, and are what the node reports.
    #[test]
    fn kept_tunables_win_over_parameters() {
        let params = p(&[("lnet_transaction_timeout", "10")]);
        let node = Node::start(NodeConfig {
            params: params.clone(),
            ..NodeConfig::default()
        })
        .expect("starts");
        let mut t = node.global_tunables();
        assert_eq!(t.transaction_timeout, 10);
        node.shutdown();
        t.transaction_timeout = 77;
        let node = Node::start(NodeConfig {
            params,
            tunables: Some(t.clone()),
            ..NodeConfig::default()
        })
        .expect("starts");
        assert_eq!(node.global_tunables(), t);
        node.shutdown();
    }

    #[test]
    fn bad_module_parameters_name_themselves() {
        let mut cfg = Config::default();
        let e =
            apply_params(&mut cfg, &p(&[("lnet_health_sensitivity", "1001")])).expect_err("range");
        assert_eq!(
            e.to_string(),
            "bad value for parameter lnet_health_sensitivity: 1001 is not in 0..=1000"
        );
        let e = apply_params(&mut cfg, &p(&[("lnet_retry_count", "x")])).expect_err("integer");
        assert!(
            e.to_string()
                .contains("lnet_retry_count: \"x\" is not an integer"),
            "{e}"
        );
        let e = apply_params(
            &mut Config::default(),
            &p(&[("lnet_transaction_timeout", "2"), ("lnet_retry_count", "2")]),
        )
        .expect_err("retry < timeout");
        assert!(
            e.to_string()
                .contains("must be less than lnet_transaction_timeout (2)"),
            "{e}"
        );
    }

    #[test]
    fn net_names_split_into_type_and_number() {
        assert_eq!(split_net_name("tcp"), Some(("tcp", 0)));
        assert_eq!(split_net_name("o2ib12"), Some(("o2ib", 12)));
        assert_eq!(split_net_name("vnd2"), Some(("vnd", 2)));
        assert_eq!(split_net_name("12"), None);
        assert_eq!(split_net_name("tcp99999"), None);
        assert_eq!(split_net_name("tc-p"), None);
    }

    /// The executor's queue is bounded: a producer finding it full waits
    /// (counted) until the executor takes a list, then queues; order is kept
    /// and nothing is dropped. A stopping node does not make it wait.
    #[test]
    fn deferred_queue_applies_back_pressure_at_its_bound() {
        let q = Arc::new(DeferredQueue::new(2));
        q.push(1, || false);
        q.push(2, || false);
        let producer = {
            let q = Arc::clone(&q);
            std::thread::spawn(move || q.push(3, || false))
        };
        // The third waits: nothing can make room but a pop.
        let t0 = std::time::Instant::now();
        while q.waits.load(AtomicOrdering::Relaxed) == 0 {
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "producer never waited"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(q.len(), 2, "queue grew past its bound");
        assert!(!producer.is_finished());
        assert_eq!(q.pop(Duration::from_secs(30)), Some(1));
        producer.join().expect("producer");
        assert_eq!(q.pop(Duration::ZERO), Some(2));
        assert_eq!(q.pop(Duration::ZERO), Some(3));
        assert_eq!(q.pop(Duration::ZERO), None);
        // Stopping: no wait, the executor drains whatever is there.
        q.push(4, || false);
        q.push(5, || false);
        q.push(6, || true);
        assert_eq!(q.len(), 3);
        assert_eq!(q.waits.load(AtomicOrdering::Relaxed), 2);
    }
}
