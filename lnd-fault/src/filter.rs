//! The fault filter: one rule table per node, applied to every NI it wraps
//! (through `lnd_api::filter`), and a delay thread that releases held
//! messages when due.
//!
//! * Every rule with a local NID matches only the messages that pass
//!   through the wrapped NI of that NID (sent or received on it).
//! * Send path ([`LndNi::send_span`] of the wrapping NI): with no rule, the
//!   inner LND's `send_span` at once (one relaxed atomic load, no lock, no
//!   allocation). Else a drop rule with a health mask may fail the send: it
//!   is taken and finalized with `-EIO` and the chosen health status, so the
//!   engine's health and resend logic react as to a real failure. Else a
//!   delay rule may hold it until `now + latency`.
//! * Receive path ([`Host::parse`] of the inner LND's callbacks): a drop rule
//!   without a health mask (matching the receiving NI's NID against
//!   `local_nid`) discards the message: `parse` answers `Ok` and the inner
//!   LND is told to skip the payload. Else a delay rule may hold the header,
//!   which reaches the engine's `parse` when due (the engine's `recv` then
//!   comes `delayed`).
//! * Deleting a delay rule releases what it holds at once; shutting an NI
//!   down finalizes its held sends with `-ECANCELED` and discards its held
//!   receives.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, Weak};
use std::time::{Duration, Instant};

use lnd_api::abi_stable::std_types::ROption;
use lnd_api::{
    errno, Completion, FilterNi, FilterNiHandle, Hdr, HealthStatus, Host, HostHandle, LndError,
    LndNi, LndNiHandle, LogLevel, MsgToken, NetId, NiFilter, Nid, Payload, PayloadSpan,
    PeerAliveness, RxAction, RxToken, TxMsg,
};

use crate::ctl::{execute_with, Request};
use crate::rules::{MsgInfo, Rules, Verdict};

/// A clock: time since any fixed origin.
pub type Clock = Arc<dyn Fn() -> Duration + Send + Sync>;

/// The fault filter of one node (cheap to clone: a shared handle).
#[derive(Clone)]
pub struct FaultFilter {
    core: Arc<Core>,
}

struct Core {
    rules: Mutex<Rules<Held>>,
    /// Whether any rule exists: the data path's only check when none does.
    active: AtomicBool,
    clock: Clock,
    /// Wakes the delay thread (a new held item, a deleted rule).
    wake: Condvar,
    timer: bool,
    timer_started: AtomicBool,
    next_ni: AtomicU64,
    /// Network type names the host told (`net_types`), for NIDs in rules.
    names: Mutex<Vec<(String, u8)>>,
}

/// Held headers being handed to the engine now, on any thread: while it is
/// not zero, `recv` calls check [`RELEASING`].
static RELEASING_ANY: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// The held header this thread is handing to the engine (NI id, rx):
    /// the engine's `recv` for it, made inside `parse`, comes after the
    /// LND's own `parse` returned, so it is marked `delayed`.
    static RELEASING: Cell<Option<(u64, u64)>> = const { Cell::new(None) };
}

/// A message a delay rule holds.
enum Held {
    Tx {
        ni: Arc<NiState>,
        tx: TxMsg,
        payload: PayloadSpan,
    },
    Rx {
        ni: Arc<NiState>,
        hdr: Hdr,
        from: Nid,
        rx: RxToken,
        rdma: bool,
    },
}

impl Held {
    fn ni(&self) -> &NiState {
        match self {
            Held::Tx { ni, .. } | Held::Rx { ni, .. } => ni,
        }
    }

    /// Lets it continue, as it would have without the delay.
    fn release(self) {
        match self {
            Held::Tx { ni, tx, payload } => {
                let token = tx.token;
                let r = match ni.inner.get() {
                    Some(inner) => inner.send_span(tx, payload),
                    None => Err(LndError::new(errno::ENETDOWN, "NI not started")),
                };
                if let Err(e) = r {
                    // The engine was told the send was taken: finish it.
                    ni.engine.log(
                        LogLevel::DEBUG,
                        &format!("lnd-fault: delayed send refused by the LND: {e}"),
                    );
                    ni.engine.finalize(
                        token,
                        Completion::failed(e.errno, HealthStatus::LOCAL_ERROR),
                    );
                }
            }
            Held::Rx {
                ni,
                hdr,
                from,
                rx,
                rdma,
            } => {
                RELEASING_ANY.fetch_add(1, Ordering::AcqRel);
                let outer = RELEASING.with(|r| r.replace(Some((ni.id, rx.0))));
                let parsed = ni.engine.parse(hdr, from, rx, rdma);
                RELEASING.with(|r| r.set(outer));
                RELEASING_ANY.fetch_sub(1, Ordering::AcqRel);
                if let Err(e) = parsed {
                    // The LND was told the header was taken: it waits for a
                    // `recv` that will now never come from the engine.
                    ni.engine.log(
                        LogLevel::WARN,
                        &format!("lnd-fault: delayed header refused, payload discarded: {e}"),
                    );
                    ni.discard(rx, hdr.payload_length, true);
                }
            }
        }
    }

    /// Drops it at shutdown: `-ECANCELED`.
    fn cancel(self) {
        match self {
            Held::Tx { ni, tx, .. } => ni.engine.finalize(
                tx.token,
                Completion::failed(errno::ECANCELED, HealthStatus::LOCAL_ABORTED),
            ),
            Held::Rx { ni, hdr, rx, .. } => ni.discard(rx, hdr.payload_length, true),
        }
    }
}

/// One wrapped NI.
struct NiState {
    id: u64,
    /// The engine's callbacks.
    engine: HostHandle,
    /// The inner LND's NI, once it came up.
    inner: OnceLock<LndNiHandle>,
    /// Its NID (the local NID of receive rules).
    nid: OnceLock<Nid>,
}

impl NiState {
    /// Tells the inner LND to skip a received payload.
    fn discard(&self, rx: RxToken, rlen: u32, delayed: bool) {
        let Some(inner) = self.inner.get() else {
            return;
        };
        let action = RxAction {
            rx,
            msg: ROption::RNone,
            payload: Payload::new(),
            rlen,
            delayed,
        };
        if let Err(e) = inner.recv_span(action, PayloadSpan::new()) {
            self.engine.log(
                LogLevel::WARN,
                &format!("lnd-fault: discarding a dropped message failed: {e}"),
            );
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Default for FaultFilter {
    fn default() -> Self {
        Self::new()
    }
}

impl FaultFilter {
    /// A filter on the real monotonic clock, with its delay thread, seeded
    /// from the time of day.
    pub fn new() -> Self {
        let origin = Instant::now();
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x5EED)
            ^ u64::from(std::process::id()).rotate_left(32);
        Self::with_clock(seed, Arc::new(move || origin.elapsed()), true)
    }

    /// A filter on `clock` with a seeded generator; with `timer` false no
    /// thread is started and held messages are released by [`Self::poll`]
    /// (a simulated fabric on a virtual clock).
    pub fn with_clock(seed: u64, clock: Clock, timer: bool) -> Self {
        FaultFilter {
            core: Arc::new(Core {
                rules: Mutex::new(Rules::new(seed)),
                active: AtomicBool::new(false),
                clock,
                wake: Condvar::new(),
                timer,
                timer_started: AtomicBool::new(false),
                next_ni: AtomicU64::new(1),
                names: Mutex::new(Vec::new()),
            }),
        }
    }

    /// Releases every held message that is due now.
    pub fn poll(&self) {
        self.core.poll();
    }

    /// When the next held message is due (on the filter's clock).
    pub fn next_due(&self) -> Option<Duration> {
        lock(&self.core.rules).next_due()
    }

    /// The control call: see [`crate::ctl`].
    pub fn control(&self, cmd: &str, arg: &str) -> Result<String, LndError> {
        let names = lock(&self.core.names).clone();
        let names: Vec<(&str, u8)> = names.iter().map(|(n, t)| (n.as_str(), *t)).collect();
        let req = Request::parse_with(cmd, arg, &names)?;
        if let Request::NetTypes(types) = req {
            *lock(&self.core.names) = types;
            return Ok(String::new());
        }
        let starts_delay = matches!(req, Request::AddDelay(_));
        let mut released = Vec::new();
        let answer = {
            let mut rules = lock(&self.core.rules);
            let now = (self.core.clock)();
            let r = execute_with(&mut rules, req, now, &names, |h| released.push(h));
            self.core.active.store(!rules.is_empty(), Ordering::Release);
            r
        };
        // Outside the lock: the LND and the engine may call back.
        released.into_iter().for_each(Held::release);
        if starts_delay && answer.is_ok() {
            self.core.start_timer();
        }
        answer
    }
}

impl Core {
    fn now(&self) -> Duration {
        (self.clock)()
    }

    fn poll(&self) {
        let mut due = Vec::new();
        {
            let mut rules = lock(&self.rules);
            let now = self.now();
            rules.release_due(now, |h| due.push(h));
        }
        due.into_iter().for_each(Held::release);
    }

    fn start_timer(self: &Arc<Self>) {
        if !self.timer || self.timer_started.swap(true, Ordering::AcqRel) {
            return;
        }
        let weak = Arc::downgrade(self);
        let spawned = std::thread::Builder::new()
            .name("lnd-fault-delay".into())
            .spawn(move || delay_thread(weak));
        if spawned.is_err() {
            // Without the thread, held messages are released when their
            // rule is deleted or by `poll`.
            self.timer_started.store(false, Ordering::Release);
        }
    }
}

/// Releases held messages when due; ends when the filter is gone.
fn delay_thread(core: Weak<Core>) {
    let mut due = Vec::new();
    loop {
        let Some(c) = core.upgrade() else { return };
        {
            let mut rules = lock(&c.rules);
            let now = c.now();
            rules.release_due(now, |h| due.push(h));
            if due.is_empty() {
                // Sleep until the next item is due, a new one is held, or a
                // second passed (to notice the filter going away).
                let wait = rules
                    .next_due()
                    .map_or(Duration::from_secs(1), |d| d.saturating_sub(now))
                    .min(Duration::from_secs(1));
                drop(c.wake.wait_timeout(rules, wait));
                continue;
            }
        }
        due.drain(..).for_each(Held::release);
    }
}

impl NiFilter for FaultFilter {
    fn attach(&self, _net: NetId, host: HostHandle) -> Result<FilterNiHandle, LndError> {
        let st = Arc::new(NiState {
            id: self.core.next_ni.fetch_add(1, Ordering::Relaxed),
            engine: host,
            inner: OnceLock::new(),
            nid: OnceLock::new(),
        });
        Ok(FilterNiHandle::new(Wrap {
            core: self.core.clone(),
            st,
        }))
    }

    fn ctl(&self, cmd: &str, arg: &str) -> Result<String, LndError> {
        self.control(cmd, arg)
    }
}

/// The filter's objects for one NI: the NI the engine uses and the host the
/// inner LND uses.
#[derive(Clone)]
struct Wrap {
    core: Arc<Core>,
    st: Arc<NiState>,
}

impl FilterNi for Wrap {
    fn inner_host(&self) -> HostHandle {
        HostHandle::new(WrapHost(self.clone()))
    }

    fn bind(&self, nid: Nid, inner: LndNiHandle) -> Result<LndNiHandle, LndError> {
        self.st.nid.set(nid).ok();
        self.st
            .inner
            .set(inner)
            .map_err(|_| LndError::new(errno::EEXIST, "lnd-fault: NI bound twice"))?;
        Ok(LndNiHandle::new(self.clone()))
    }
}

impl Wrap {
    /// A `recv` for a header this filter held comes after the LND's `parse`
    /// returned: mark it `delayed`, as the contract says.
    fn mark_delayed(&self, mut rx: RxAction) -> RxAction {
        if RELEASING_ANY.load(Ordering::Acquire) != 0
            && RELEASING.with(Cell::get) == Some((self.st.id, rx.rx.0))
        {
            rx.delayed = true;
        }
        rx
    }

    fn inner(&self) -> Result<&LndNiHandle, LndError> {
        self.st
            .inner
            .get()
            .ok_or_else(|| LndError::new(errno::ENETDOWN, "lnd-fault: NI not started"))
    }
}

impl LndNi for Wrap {
    fn send(&self, tx: TxMsg) -> Result<(), LndError> {
        let (tx, payload) = tx.split_payload();
        self.send_span(tx, payload)
    }

    fn send_span(&self, tx: TxMsg, payload: PayloadSpan) -> Result<(), LndError> {
        let inner = self.inner()?;
        if !self.core.active.load(Ordering::Relaxed) {
            return inner.send_span(tx, payload);
        }
        let local = self.st.nid.get().copied().unwrap_or(Nid::ANY);
        let info = MsgInfo::of(&tx.hdr).at(local);
        let item = Held::Tx {
            ni: self.st.clone(),
            tx,
            payload,
        };
        let verdict = {
            let mut rules = lock(&self.core.rules);
            let now = self.core.now();
            rules.on_send(&info, now, item)
        };
        match verdict {
            Verdict::Pass(Held::Tx { tx, payload, .. }) => inner.send_span(tx, payload),
            Verdict::Fail(health, Held::Tx { tx, .. }) => {
                self.st
                    .engine
                    .finalize(tx.token, Completion::failed(errno::EIO, health));
                Ok(())
            }
            Verdict::Held => {
                self.core.wake.notify_all();
                Ok(())
            }
            Verdict::Pass(Held::Rx { .. }) | Verdict::Fail(_, Held::Rx { .. }) => Err(
                LndError::new(errno::EFAULT, "lnd-fault: a receive on the send path"),
            ),
        }
    }

    fn recv(&self, rx: RxAction) -> Result<(), LndError> {
        let rx = self.mark_delayed(rx);
        self.inner()?.recv(rx)
    }

    fn recv_span(&self, rx: RxAction, payload: PayloadSpan) -> Result<(), LndError> {
        let rx = self.mark_delayed(rx);
        self.inner()?.recv_span(rx, payload)
    }

    fn eager_recv(&self, rx: RxToken) -> Result<(), LndError> {
        self.inner()?.eager_recv(rx)
    }

    fn notify_peer_down(&self, peer: Nid) {
        if let Ok(i) = self.inner() {
            i.notify_peer_down(peer)
        }
    }

    fn query(&self, peer: Nid) -> PeerAliveness {
        self.inner()
            .map_or(PeerAliveness::UNKNOWN, |i| i.query(peer))
    }

    fn ctl(&self, cmd: &str, arg: &str) -> Result<String, LndError> {
        self.inner()?.ctl(cmd, arg)
    }

    fn shutdown(&self) {
        let mut mine = Vec::new();
        {
            let id = self.st.id;
            let mut rules = lock(&self.core.rules);
            rules.take_held(|h| h.ni().id == id, |h| mine.push(h));
        }
        mine.into_iter().for_each(Held::cancel);
        if let Ok(i) = self.inner() {
            i.shutdown();
        }
    }
}

/// The callbacks the inner LND gets.
struct WrapHost(Wrap);

impl Host for WrapHost {
    fn parse(&self, hdr: Hdr, from: Nid, rx: RxToken, rdma_req: bool) -> Result<(), LndError> {
        let w = &self.0;
        if !w.core.active.load(Ordering::Relaxed) || w.st.inner.get().is_none() {
            return w.st.engine.parse(hdr, from, rx, rdma_req);
        }
        let local = w.st.nid.get().copied().unwrap_or(Nid::ANY);
        let info = MsgInfo::of(&hdr).at(local);
        let item = Held::Rx {
            ni: w.st.clone(),
            hdr,
            from,
            rx,
            rdma: rdma_req,
        };
        enum Action {
            Drop,
            Held,
            Pass,
        }
        let action = {
            let mut rules = lock(&w.core.rules);
            let now = w.core.now();
            if rules.drop_on_receive(&info, local, now) {
                Action::Drop
            } else if rules.delay(&info, now, item).is_none() {
                Action::Held
            } else {
                Action::Pass
            }
        };
        match action {
            Action::Drop => {
                w.st.discard(rx, hdr.payload_length, false);
                Ok(())
            }
            Action::Held => {
                w.core.wake.notify_all();
                Ok(())
            }
            Action::Pass => w.st.engine.parse(hdr, from, rx, rdma_req),
        }
    }

    fn finalize(&self, msg: MsgToken, status: Completion) {
        self.0.st.engine.finalize(msg, status)
    }

    fn notify(&self, peer: Nid, alive: bool) {
        self.0.st.engine.notify(peer, alive)
    }

    fn link_state(&self, up: bool) {
        self.0.st.engine.link_state(up)
    }

    fn log(&self, level: LogLevel, msg: &str) {
        self.0.st.engine.log(level, msg)
    }
}
