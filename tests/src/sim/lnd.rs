//! The simulated LND: [`SimLnd`] and its NIs ([`SimNi`]) implement the same
//! [`Lnd`]/[`LndNi`] traits a plugin does and reach the engine only through
//! the [`HostHandle`] the runtime gave them. Transmissions become events on
//! the fabric's queue (the "wire"), delivered after the link's delay.

use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeMap, BinaryHeap};
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex, MutexGuard};

use lnet_core::lnd_api::{
    errno, lnd_type, Completion, Hdr, HealthStatus, HostHandle, IoBuf, Lnd, LndError, LndNi,
    LndNiHandle, MsgToken, NetId, NetTunables, NiConfig, NiInfo, NiStarted, Nid, Payload,
    PeerAliveness, RxAction, RxToken, Tunable, TxMsg,
};
use lnet_core::{Duration, Instant};

use super::link::{Cut, LinkParams, LinkRun};
use super::rng::Rng;

/// The sim LND's timeout when the NI does not set `timeout` (socklnd's
/// `sock_timeout` default), seconds.
pub const DEFAULT_LND_TIMEOUT: u32 = 50;

/// Locks a mutex, ignoring poisoning: a panic elsewhere already fails the test.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// `t` as seconds with nanoseconds, for traces.
pub(crate) fn fmt_time(t: Instant) -> String {
    let ns = t.as_nanos();
    format!("{}.{:09}", ns / 1_000_000_000, ns % 1_000_000_000)
}

/// State shared by the fabric, its LNDs and its runtime glue.
pub(crate) struct Shared {
    now: AtomicU64,
    pub(crate) wire: Mutex<Wire>,
    trace: Mutex<Vec<String>>,
    violations: Mutex<Vec<String>>,
}

impl Shared {
    pub(crate) fn new(seed: u64, start: Instant) -> Shared {
        Shared {
            now: AtomicU64::new(start.as_nanos()),
            wire: Mutex::new(Wire::new(seed)),
            trace: Mutex::new(Vec::new()),
            violations: Mutex::new(Vec::new()),
        }
    }

    /// The virtual clock.
    pub(crate) fn now(&self) -> Instant {
        Instant(self.now.load(AtomicOrdering::SeqCst))
    }

    pub(crate) fn set_now(&self, t: Instant) {
        self.now.store(t.as_nanos(), AtomicOrdering::SeqCst);
    }

    /// Appends a line to the event trace, stamped with the virtual time.
    pub(crate) fn trace(&self, line: String) {
        let t = fmt_time(self.now());
        lock(&self.trace).push(format!("{t} {line}"));
    }

    pub(crate) fn trace_len(&self) -> usize {
        lock(&self.trace).len()
    }

    pub(crate) fn trace_lines(&self) -> Vec<String> {
        lock(&self.trace).clone()
    }

    /// Records a broken contract; the fabric fails the test at its next step
    /// (panics inside LND or host callbacks would be caught by the ABI shims).
    pub(crate) fn violation(&self, what: String) {
        self.trace(format!("VIOLATION {what}"));
        lock(&self.violations).push(what);
    }

    pub(crate) fn take_violations(&self) -> Vec<String> {
        std::mem::take(&mut *lock(&self.violations))
    }
}

/// Index of an endpoint (one sim NI) in [`Wire::eps`].
pub(crate) type EpId = usize;

/// One sim NI as the wire sees it.
pub(crate) struct Endpoint {
    pub(crate) node: usize,
    pub(crate) nid: Nid,
    host: HostHandle,
    timeout: Duration,
    up: bool,
    /// The interface's link is up (see [`set_link_up`]).
    link_up: bool,
    /// Tell the host a peer is dead when a send to it is given up
    /// (socklnd's `lnet_notify` after its connections failed).
    notify: bool,
    /// Received headers waiting for `recv`, by receive token.
    pending: BTreeMap<u64, InFlight>,
    /// Sends this LND owns until it finalizes them: token -> next hop.
    owned: BTreeMap<u64, Nid>,
    /// Most sends owned at the same time.
    pub(crate) max_owned: usize,
}

/// A parsed message whose payload the receiving LND still holds.
struct InFlight {
    payload: Payload,
    rlen: u32,
    /// The sending endpoint and its token, to complete once received.
    sender: Option<(EpId, MsgToken)>,
    corrupt: bool,
    /// `parse` has not returned yet (a `recv` now must not say `delayed`).
    parsing: bool,
}

/// A message on its way.
pub(crate) struct Arrival {
    from_ep: EpId,
    to: Nid,
    hdr: Hdr,
    payload: Payload,
    /// The sender's token (`None` for a duplicate copy).
    sender: Option<MsgToken>,
    sent_at: Instant,
    corrupt: bool,
}

/// Something the wire does at a time.
pub(crate) enum NetEv {
    /// A message reaches the receiving NI.
    Arrive(Box<Arrival>),
    /// The sending LND finalizes a send.
    TxDone {
        ep: EpId,
        token: MsgToken,
        status: Completion,
    },
}

struct Sched {
    at: Instant,
    seq: u64,
    ev: NetEv,
}

impl PartialEq for Sched {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Sched {}
impl PartialOrd for Sched {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Sched {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

/// The network: links, cuts, the event queue ordered by (time, insertion
/// order), and the endpoints.
pub(crate) struct Wire {
    pub(crate) rng: Rng,
    queue: BinaryHeap<Reverse<Sched>>,
    seq: u64,
    pub(crate) default_link: LinkParams,
    pub(crate) links: BTreeMap<(Nid, Nid), LinkParams>,
    pub(crate) runs: BTreeMap<(Nid, Nid), LinkRun>,
    pub(crate) cuts: Vec<Cut>,
    /// Interface name -> (node, IPv4 address).
    pub(crate) ifaces: BTreeMap<String, (usize, u32)>,
    pub(crate) eps: Vec<Endpoint>,
    by_nid: BTreeMap<Nid, EpId>,
    next_rx: u64,
}

impl Wire {
    fn new(seed: u64) -> Wire {
        Wire {
            rng: Rng::new(seed),
            queue: BinaryHeap::new(),
            seq: 0,
            default_link: LinkParams::default(),
            links: BTreeMap::new(),
            runs: BTreeMap::new(),
            cuts: Vec::new(),
            ifaces: BTreeMap::new(),
            eps: Vec::new(),
            by_nid: BTreeMap::new(),
            next_rx: 1,
        }
    }

    pub(crate) fn schedule(&mut self, at: Instant, ev: NetEv) {
        self.seq += 1;
        self.queue.push(Reverse(Sched {
            at,
            seq: self.seq,
            ev,
        }));
    }

    /// When the next wire event is due.
    pub(crate) fn next_at(&self) -> Option<Instant> {
        self.queue.peek().map(|Reverse(s)| s.at)
    }

    /// Takes the next event if it is due at or before `t`.
    pub(crate) fn pop_due(&mut self, t: Instant) -> Option<NetEv> {
        if self.next_at()? > t {
            return None;
        }
        self.queue.pop().map(|Reverse(s)| s.ev)
    }

    pub(crate) fn link(&self, from: Nid, to: Nid) -> LinkParams {
        self.links
            .get(&(from, to))
            .copied()
            .unwrap_or(self.default_link)
    }

    fn run(&mut self, from: Nid, to: Nid) -> &mut LinkRun {
        self.runs.entry((from, to)).or_default()
    }

    fn cut_between(&self, t: Instant, a: (usize, Nid), b: (usize, Nid)) -> bool {
        self.cuts.iter().any(|c| c.blocks(t, a, b))
    }

    /// The live endpoint serving `nid` (running, its link up).
    fn ep_of(&self, nid: &Nid) -> Option<EpId> {
        self.by_nid
            .get(nid)
            .copied()
            .filter(|e| self.eps[*e].up && self.eps[*e].link_up)
    }

    /// The endpoint serving `nid`, live or not.
    pub(crate) fn ep_by_nid(&self, nid: &Nid) -> Option<&Endpoint> {
        self.by_nid.get(nid).map(|e| &self.eps[*e])
    }

    /// Sends owned by LNDs now, over all endpoints.
    pub(crate) fn owned_sends(&self) -> usize {
        self.eps.iter().map(|e| e.owned.len()).sum()
    }

    /// Received headers still waiting for `recv`, over all endpoints.
    pub(crate) fn pending_recvs(&self) -> usize {
        self.eps.iter().map(|e| e.pending.len()).sum()
    }

    fn lost_completion() -> Completion {
        Completion::failed(errno::ETIMEDOUT, HealthStatus::NETWORK_TIMEOUT)
    }
}

/// The simulated LND of one node: serves every non-`lo` net type; each NI
/// is bound to a fabric interface named in its [`NiConfig`].
pub(crate) struct SimLnd {
    pub(crate) shared: Arc<Shared>,
    pub(crate) node: usize,
}

fn tunable_default(v: i32, d: i32) -> i32 {
    if v < 0 {
        d
    } else {
        v
    }
}

impl Lnd for SimLnd {
    fn startup(&self, cfg: NiConfig, host: HostHandle) -> Result<NiStarted, LndError> {
        if cfg.net == NetId::LO || cfg.net.lnd_type == lnd_type::LOLND {
            return Err(LndError::new(
                errno::EINVAL,
                "sim LND cannot serve lo (the engine's lo LND does)",
            ));
        }
        let Some(iface) = cfg.interfaces.first().map(|s| s.to_string()) else {
            return Err(LndError::new(
                errno::EINVAL,
                "sim LND: no interface given (name a fabric interface, e.g. sim0.0)",
            ));
        };
        let timeout = match lnet_core::lnd_api::tunable(&cfg.lnd_tunables, "timeout") {
            Some(v) => v.parse::<u32>().ok().filter(|t| *t > 0).ok_or_else(|| {
                LndError::new(
                    errno::EINVAL,
                    format!("sim LND: timeout={v:?} is not a positive number of seconds"),
                )
            })?,
            None => DEFAULT_LND_TIMEOUT,
        };
        let notify = match lnet_core::lnd_api::tunable(&cfg.lnd_tunables, "sim_notify") {
            None | Some("0") => false,
            Some("1") => true,
            Some(v) => {
                return Err(LndError::new(
                    errno::EINVAL,
                    format!("sim LND: sim_notify={v:?} must be 0 or 1"),
                ))
            }
        };
        let mut w = lock(&self.shared.wire);
        let Some(&(node, addr)) = w.ifaces.get(&iface) else {
            return Err(LndError::new(
                errno::ENODEV,
                format!("sim LND: node {} has no interface {iface:?}", self.node),
            ));
        };
        if node != self.node {
            return Err(LndError::new(
                errno::ENODEV,
                format!(
                    "sim LND: interface {iface:?} belongs to node {node}, not node {}",
                    self.node
                ),
            ));
        }
        let nid = Nid::new4(cfg.net, addr);
        if let Some(&e) = w.by_nid.get(&nid).filter(|e| w.eps[**e].up) {
            return Err(LndError::new(
                errno::EEXIST,
                format!(
                    "sim LND: address {nid} is already used by node {} (pick another address)",
                    w.eps[e].node
                ),
            ));
        }
        let t = cfg.tunables;
        let credits = tunable_default(t.credits, 256);
        let tunables = NetTunables {
            peer_timeout: tunable_default(t.peer_timeout, 180),
            peer_credits: tunable_default(t.peer_credits, 8).min(credits.max(1)),
            peer_buffer_credits: tunable_default(t.peer_buffer_credits, 0),
            credits,
        };
        let ep = w.eps.len();
        w.eps.push(Endpoint {
            node,
            nid,
            host: host.clone(),
            timeout: Duration::from_secs(u64::from(timeout)),
            up: true,
            link_up: true,
            notify,
            pending: BTreeMap::new(),
            owned: BTreeMap::new(),
            max_owned: 0,
        });
        w.by_nid.insert(nid, ep);
        drop(w);
        let info = NiInfo {
            nid,
            interfaces: vec![iface.as_str().into()].into(),
            tunables,
            lnd_tunables: vec![
                Tunable::new("timeout", timeout),
                Tunable::new("sim_notify", u8::from(notify)),
            ]
            .into(),
            timeout_secs: timeout,
        };
        Ok(NiStarted {
            info,
            ni: LndNiHandle::new(SimNi {
                shared: Arc::clone(&self.shared),
                ep,
                host,
            }),
        })
    }
}

/// One NI of the sim LND.
pub(crate) struct SimNi {
    shared: Arc<Shared>,
    ep: EpId,
    host: HostHandle,
}

impl SimNi {
    fn who(w: &Wire, ep: EpId) -> String {
        format!("n{} {}", w.eps[ep].node, w.eps[ep].nid)
    }
}

/// Copies as an LND would: fragment to fragment, through a buffer if the two
/// payloads share memory.
fn copy_payload(src: &Payload, dst: &Payload) -> Result<usize, lnet_core::lnd_api::Busy> {
    match src.copy_to(dst) {
        Ok(n) => Ok(n),
        Err(_) => {
            let n = src.len().min(dst.len());
            let mut tmp = vec![0u8; n];
            src.read_at(0, &mut tmp)?;
            dst.write_at(0, &tmp)
        }
    }
}

/// A private copy of a payload's bytes (for a duplicate on the wire).
fn snapshot(p: &Payload) -> Payload {
    let mut v = vec![0u8; p.len()];
    match p.read_at(0, &mut v) {
        Ok(_) => Payload::single(IoBuf::from_vec(v)),
        Err(_) => Payload::new(),
    }
}

impl LndNi for SimNi {
    fn send(&self, tx: TxMsg) -> Result<(), LndError> {
        let now = self.shared.now();
        let mut w = lock(&self.shared.wire);
        let me = self.ep;
        if !w.eps[me].up {
            return Err(LndError::new(
                errno::ENETDOWN,
                format!("sim LND: {} is shut down", w.eps[me].nid),
            ));
        }
        let (from, node) = (w.eps[me].nid, w.eps[me].node);
        let who = Self::who(&w, me);
        if !w.eps[me].link_up {
            drop(w);
            self.shared.trace(format!(
                "{who} > {} {} refused: link down",
                tx.target,
                tx.hdr.msg_type.name()
            ));
            return Err(LndError::new(
                errno::ENETDOWN,
                format!("sim LND: {from}: link is down"),
            ));
        }
        let len = tx.payload.len();
        let kind = tx.hdr.msg_type.name();
        if len != tx.hdr.payload_length as usize {
            drop(w);
            self.shared.violation(format!(
                "{who}: send of {kind} with {len} payload bytes but payload_length {}",
                tx.hdr.payload_length
            ));
            return Err(LndError::new(errno::EINVAL, "payload length mismatch"));
        }
        if tx.target.net() != from.net() {
            drop(w);
            self.shared.violation(format!(
                "{who}: asked to send {kind} to {} which is not on this NI's net",
                tx.target
            ));
            return Err(LndError::new(errno::EINVAL, "next hop on another net"));
        }
        if w.eps[me].owned.contains_key(&tx.token.0) {
            drop(w);
            self.shared.violation(format!(
                "{who}: send with token {:#x} the LND already owns",
                tx.token.0
            ));
            return Err(LndError::new(errno::EINVAL, "token in use"));
        }
        let target = tx.target;
        let params = w.link(from, target);
        if params.mtu.is_some_and(|m| len > m as usize) {
            w.run(from, target).stats.refused += 1;
            drop(w);
            self.shared.trace(format!(
                "{who} > {target} {kind} {len}B refused: over the link MTU"
            ));
            return Err(LndError::new(
                errno::EMSGSIZE,
                format!(
                    "sim LND: {len}-byte payload exceeds the MTU {} of link {from} -> {target}",
                    params.mtu.unwrap_or(0)
                ),
            ));
        }
        let timeout = w.eps[me].timeout;
        w.eps[me].owned.insert(tx.token.0, target);
        w.eps[me].max_owned = w.eps[me].max_owned.max(w.eps[me].owned.len());
        {
            let run = w.run(from, target);
            run.stats.sent += 1;
            run.in_flight += 1;
            run.stats.max_in_flight = run.stats.max_in_flight.max(run.in_flight);
        }
        let to_ep = w.ep_of(&target);
        let lost = match to_ep {
            None => Some(("nobody at that address", Wire::lost_completion())),
            Some(e) => {
                let dest = (w.eps[e].node, target);
                if w.cut_between(now, (node, from), dest) {
                    Some(("link cut", Wire::lost_completion()))
                } else if w.rng.chance(params.loss) {
                    let h = params.loss_status;
                    let timed_out = matches!(
                        h,
                        HealthStatus::NETWORK_TIMEOUT
                            | HealthStatus::LOCAL_TIMEOUT
                            | HealthStatus::REMOTE_TIMEOUT
                    );
                    let e = if timed_out {
                        errno::ETIMEDOUT
                    } else {
                        errno::EIO
                    };
                    Some(("random loss", Completion::failed(e, h)))
                } else {
                    None
                }
            }
        };
        if let Some((why, status)) = lost {
            w.run(from, target).stats.lost += 1;
            w.schedule(
                now.saturating_add(timeout),
                NetEv::TxDone {
                    ep: me,
                    token: tx.token,
                    status,
                },
            );
            drop(w);
            self.shared.trace(format!(
                "{who} > {target} {kind} {len}B tok={:#x}: lost ({why})",
                tx.token.0
            ));
            return Ok(());
        }
        // Serialization, then propagation.
        let ser = params.bandwidth.map_or(Duration::ZERO, |bw| {
            Duration::from_nanos(
                u64::try_from(len as u128 * 1_000_000_000 / u128::from(bw.max(1)))
                    .unwrap_or(u64::MAX),
            )
        });
        let jitter = if params.jitter.is_zero() {
            Duration::ZERO
        } else {
            let j = u64::try_from(params.jitter.as_nanos()).unwrap_or(u64::MAX);
            Duration::from_nanos(w.rng.below(j.saturating_add(1)))
        };
        let corrupt = len > 0 && w.rng.chance(params.corrupt);
        let dup = w.rng.chance(params.duplicate);
        let run = w.run(from, target);
        let start = now.max(run.busy_until);
        run.busy_until = start.saturating_add(ser);
        let mut at = run
            .busy_until
            .saturating_add(params.latency)
            .saturating_add(jitter);
        if params.fifo {
            at = at.max(run.last_arrival);
        }
        run.last_arrival = run.last_arrival.max(at);
        if corrupt {
            run.stats.corrupted += 1;
        }
        let copy = dup.then(|| snapshot(&tx.payload));
        w.schedule(
            at,
            NetEv::Arrive(Box::new(Arrival {
                from_ep: me,
                to: target,
                hdr: tx.hdr,
                payload: tx.payload,
                sender: Some(tx.token),
                sent_at: now,
                corrupt,
            })),
        );
        if let Some(payload) = copy {
            w.run(from, target).stats.duplicated += 1;
            let again = at.saturating_add(params.latency.max(Duration::from_micros(1)));
            w.schedule(
                again,
                NetEv::Arrive(Box::new(Arrival {
                    from_ep: me,
                    to: target,
                    hdr: tx.hdr,
                    payload,
                    sender: None,
                    sent_at: now,
                    corrupt: false,
                })),
            );
        }
        drop(w);
        self.shared.trace(format!(
            "{who} > {target} {kind} {len}B tok={:#x}: arrives at {}{}{}",
            tx.token.0,
            fmt_time(at),
            if corrupt { " damaged" } else { "" },
            if dup { " (duplicated)" } else { "" },
        ));
        Ok(())
    }

    fn recv(&self, rx: RxAction) -> Result<(), LndError> {
        let now = self.shared.now();
        let mut w = lock(&self.shared.wire);
        let who = Self::who(&w, self.ep);
        let Some(inf) = w.eps[self.ep].pending.remove(&rx.rx.0) else {
            drop(w);
            self.shared.violation(format!(
                "{who}: recv for rx token {} that is not waiting (never parsed, or recv twice)",
                rx.rx.0
            ));
            return Err(LndError::new(
                errno::EINVAL,
                format!("sim LND: unknown rx token {}", rx.rx.0),
            ));
        };
        // The sender's bytes have all been taken off the wire: its send is done.
        if let Some((sep, token)) = inf.sender {
            w.schedule(
                now,
                NetEv::TxDone {
                    ep: sep,
                    token,
                    status: Completion::OK,
                },
            );
        }
        drop(w);
        let mlen = rx.payload.len();
        if inf.parsing == rx.delayed {
            self.shared.violation(format!(
                "{who}: recv for rx {} says delayed={} but parse {}",
                rx.rx.0,
                rx.delayed,
                if inf.parsing {
                    "has not returned yet"
                } else {
                    "returned before"
                }
            ));
        }
        if rx.rlen != inf.rlen || mlen > rx.rlen as usize {
            self.shared.violation(format!(
                "{who}: recv with rlen {} mlen {mlen} for a message of {} bytes",
                rx.rlen, inf.rlen
            ));
        }
        let Some(msg) = rx.msg.into_option() else {
            self.shared.trace(format!(
                "{who} discards {}B (rx {}){}",
                rx.rlen,
                rx.rx.0,
                if rx.delayed { " delayed" } else { "" }
            ));
            return Ok(());
        };
        let status = match copy_payload(&inf.payload, &rx.payload) {
            Ok(n) if n == mlen => {
                if inf.corrupt && mlen > 0 {
                    // The data landed damaged; the checksum catches it.
                    let mut b = [0u8; 1];
                    if rx.payload.read_at(0, &mut b).is_ok() {
                        let _ = rx.payload.write_at(0, &[b[0] ^ 0xFF]);
                    }
                    Completion::failed(errno::EIO, HealthStatus::REMOTE_ERROR)
                } else {
                    Completion::OK
                }
            }
            Ok(n) => {
                self.shared.violation(format!(
                    "{who}: recv wanted {mlen} bytes but the message carries only {n}"
                ));
                Completion::failed(errno::EIO, HealthStatus::LOCAL_ERROR)
            }
            Err(_) => Completion::failed(errno::EIO, HealthStatus::LOCAL_ERROR),
        };
        self.shared.trace(format!(
            "{who} recv {mlen}/{}B (rx {}){}{}",
            rx.rlen,
            rx.rx.0,
            if rx.delayed { " delayed" } else { "" },
            if status.is_ok() { "" } else { " failed: -EIO" }
        ));
        self.host.finalize(msg, status);
        Ok(())
    }

    fn eager_recv(&self, rx: RxToken) -> Result<(), LndError> {
        // The payload is held on the wire, not in scarce buffers: keep it.
        let w = lock(&self.shared.wire);
        let known = w.eps[self.ep].pending.contains_key(&rx.0);
        let who = Self::who(&w, self.ep);
        drop(w);
        if !known {
            self.shared.violation(format!(
                "{who}: eager_recv for rx {} that is not waiting for recv",
                rx.0
            ));
            return Err(LndError::new(
                errno::EINVAL,
                format!("sim LND: unknown rx token {}", rx.0),
            ));
        }
        self.shared.trace(format!("{who} eager_recv (rx {})", rx.0));
        Ok(())
    }

    fn notify_peer_down(&self, peer: Nid) {
        let w = lock(&self.shared.wire);
        let who = Self::who(&w, self.ep);
        drop(w);
        self.shared
            .trace(format!("{who} told {peer} is down (notify_peer_down)"));
    }

    fn query(&self, peer: Nid) -> PeerAliveness {
        let now = self.shared.now();
        let w = lock(&self.shared.wire);
        let me = &w.eps[self.ep];
        let reachable = w
            .ep_of(&peer)
            .is_some_and(|e| !w.cut_between(now, (me.node, me.nid), (w.eps[e].node, peer)));
        if reachable {
            PeerAliveness {
                alive: Some(true).into(),
                last_alive_secs_ago: None.into(),
            }
        } else {
            PeerAliveness::UNKNOWN
        }
    }

    fn shutdown(&self) {
        let now = self.shared.now();
        let mut w = lock(&self.shared.wire);
        let me = self.ep;
        w.eps[me].up = false;
        let nid = w.eps[me].nid;
        if w.by_nid.get(&nid) == Some(&me) {
            w.by_nid.remove(&nid);
        }
        let owned = std::mem::take(&mut w.eps[me].owned);
        let pending = std::mem::take(&mut w.eps[me].pending);
        for target in owned.values() {
            let run = w.run(nid, *target);
            run.in_flight = run.in_flight.saturating_sub(1);
        }
        // Senders of messages we had parsed but not received: connection reset.
        for inf in pending.values() {
            if let Some((sep, token)) = inf.sender {
                w.schedule(
                    now,
                    NetEv::TxDone {
                        ep: sep,
                        token,
                        status: Completion::failed(errno::ECONNRESET, HealthStatus::REMOTE_ERROR),
                    },
                );
            }
        }
        drop(w);
        for token in owned.keys() {
            self.host.finalize(
                MsgToken(*token),
                Completion::failed(errno::ENETDOWN, HealthStatus::LOCAL_INTERRUPT),
            );
        }
        self.shared.trace(format!("{nid}: shut down"));
    }
}

/// The interface under a NID goes up or down: the LND tells its host (as a
/// real LND watching its device would); while down it refuses sends and
/// hears nothing. Returns `false` if no running NI has that NID.
pub(crate) fn set_link_up(shared: &Shared, nid: Nid, up: bool) -> bool {
    let mut w = lock(&shared.wire);
    let Some(&e) = w.by_nid.get(&nid).filter(|e| w.eps[**e].up) else {
        return false;
    };
    let changed = w.eps[e].link_up != up;
    w.eps[e].link_up = up;
    let host = w.eps[e].host.clone();
    let who = SimNi::who(&w, e);
    drop(w);
    if changed {
        shared.trace(format!("{who} link {}", if up { "up" } else { "down" }));
        host.link_state(up);
    }
    true
}

/// Executes one wire event (called by the fabric with no lock held).
pub(crate) fn process(shared: &Shared, ev: NetEv) {
    match ev {
        NetEv::TxDone { ep, token, status } => {
            let mut w = lock(&shared.wire);
            let Some(target) = w.eps[ep].owned.remove(&token.0) else {
                // Already finalized (by shutdown).
                return;
            };
            let nid = w.eps[ep].nid;
            let run = w.run(nid, target);
            run.in_flight = run.in_flight.saturating_sub(1);
            let host = w.eps[ep].host.clone();
            let who = SimNi::who(&w, ep);
            let gave_up = w.eps[ep].notify && status.health == HealthStatus::NETWORK_TIMEOUT;
            drop(w);
            shared.trace(format!(
                "{who} send tok={:#x} done: {}",
                token.0,
                if status.is_ok() {
                    "ok".to_string()
                } else {
                    format!("errno {} {}", status.errno, status.health.name())
                }
            ));
            host.finalize(token, status);
            if gave_up {
                shared.trace(format!("{who} notifies {target} dead"));
                host.notify(target, false);
            }
        }
        NetEv::Arrive(a) => arrive(shared, *a),
    }
}

fn arrive(shared: &Shared, a: Arrival) {
    let now = shared.now();
    let mut w = lock(&shared.wire);
    let from_nid = w.eps[a.from_ep].nid;
    let from = (w.eps[a.from_ep].node, from_nid);
    let kind = a.hdr.msg_type.name();
    let to_ep = w.ep_of(&a.to);
    let blocked = match to_ep {
        None => Some("nobody at that address"),
        Some(e) if w.cut_between(now, from, (w.eps[e].node, a.to)) => Some("link cut"),
        Some(_) => None,
    };
    let (Some(to_ep), None) = (to_ep, blocked) else {
        w.run(from_nid, a.to).stats.lost += 1;
        if let Some(token) = a.sender {
            let timeout = w.eps[a.from_ep].timeout;
            w.schedule(
                now.max(a.sent_at.saturating_add(timeout)),
                NetEv::TxDone {
                    ep: a.from_ep,
                    token,
                    status: Wire::lost_completion(),
                },
            );
        }
        drop(w);
        shared.trace(format!(
            "{} > {} {kind}: lost in flight ({})",
            from_nid,
            a.to,
            blocked.unwrap_or("")
        ));
        return;
    };
    let rx = w.next_rx;
    w.next_rx += 1;
    w.run(from_nid, a.to).stats.delivered += 1;
    let sender = a.sender.map(|t| (a.from_ep, t));
    w.eps[to_ep].pending.insert(
        rx,
        InFlight {
            payload: a.payload,
            rlen: a.hdr.payload_length,
            sender,
            corrupt: a.corrupt,
            parsing: true,
        },
    );
    let host = w.eps[to_ep].host.clone();
    let who = SimNi::who(&w, to_ep);
    drop(w);
    shared.trace(format!(
        "{who} < {from_nid} {kind} {}B{} (rx {rx})",
        a.hdr.payload_length,
        if sender.is_none() { " copy" } else { "" }
    ));
    let parsed = host.parse(a.hdr, from_nid, RxToken(rx), false);
    if let Some(inf) = lock(&shared.wire).eps[to_ep].pending.get_mut(&rx) {
        inf.parsing = false;
    }
    if let Err(e) = parsed {
        let mut w = lock(&shared.wire);
        let had = w.eps[to_ep].pending.remove(&rx);
        if let Some((sep, token)) = had.as_ref().and_then(|i| i.sender) {
            w.schedule(
                now,
                NetEv::TxDone {
                    ep: sep,
                    token,
                    status: Completion::failed(errno::ECONNRESET, HealthStatus::REMOTE_ERROR),
                },
            );
        }
        drop(w);
        if had.is_none() {
            shared.violation(format!(
                "{who}: parse returned an error ({e}) after recv was called for rx {rx}"
            ));
        }
        shared.trace(format!("{who} parse refused rx {rx}: {e}"));
    }
}
