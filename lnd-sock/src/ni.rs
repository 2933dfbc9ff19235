//! One NI of the socket LND (`ksock_net` plus its peers, `ksock_peer_ni`):
//! the peer table, connection setup in both directions, send dispatch over
//! typed connections, receive tokens, and shutdown.
//!
//! Locking: one mutex per NI (its state) guards the peer table; it is
//! held only for table updates, never across a socket call or a host
//! callback. Order: NI lock, then a connection's queue lock.

use lnd_api::hash::FastMap;
use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::Duration;

use lnd_api::hdr::MAX_PAYLOAD;
use lnd_api::{
    errno, Completion, Hdr, HealthStatus, HostHandle, LndError, LndNi, LogLevel, Nid, PayloadSpan,
    PeerAliveness, RxAction, RxToken, TxMsg,
};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::conn::{self, lock, CloseReason, Conn, ConnCfg, ConnOwner, TxGuard, ESHUTDOWN};
use crate::hello::{self, Handshake, HsError, LocalId, PeerHello, PeerId};
use crate::net;
use crate::params::{NiTunables, Params};
use crate::wire::{ConnType, KSOCK_PROTO_V3, KSOCK_PROTO_V4};

/// A peer NI as this NI knows it (`ksock_peer_ni`).
struct Peer {
    /// Last incarnation seen in a hello.
    incarnation: Option<u64>,
    /// Protocol version that worked (or that the peer asked for).
    version: Option<u32>,
    /// Established connections.
    conns: Vec<Arc<Conn>>,
    /// A connect task is running.
    connecting: bool,
    /// Sends waiting for a first connection.
    pending: VecDeque<TxGuard>,
    /// Connected from an unprivileged port: never connected to.
    userspace: bool,
    /// The last connection attempt failed and nothing is connected.
    failed: bool,
    /// The scheduler its connections run on (see [`NiInner::start_conn`]).
    sched: Option<usize>,
}

impl Peer {
    fn new() -> Self {
        Peer {
            incarnation: None,
            version: None,
            conns: Vec::new(),
            connecting: false,
            pending: VecDeque::new(),
            userspace: false,
            failed: false,
            sched: None,
        }
    }

    fn count(&self, t: ConnType) -> usize {
        self.conns
            .iter()
            .filter(|c| c.ctype == t && !c.is_closed())
            .count()
    }
}

/// How many peers whose last connection attempt failed an NI remembers
/// for [`LndNi::query`] once their entries are freed (the oldest goes first).
const DOWN_MEMORY: usize = 1024;

/// The mutable state of an NI.
struct NiState {
    shutdown: bool,
    /// Keyed fold-multiply hashing (`lnd_api::hash`): a send looks its
    /// peer up here per message, and SipHash cost ~550 instructions of it.
    peers: FastMap<PeerId, Peer>,
    conns: FastMap<u32, Arc<Conn>>,
    next_conn: u32,
    /// Peers whose last connection attempt failed, with when, after their
    /// entries were freed (bounded by [`DOWN_MEMORY`]).
    down: HashMap<PeerId, Instant>,
}

impl NiState {
    /// Frees `id`'s entry when it has no connection, no queued send and no
    /// connect task (as `ksocknal_close_conn_locked` unlinks a peer whose last
    /// connection goes): a peer table never holds more than the peers this
    /// NI talks to, whatever NIDs the hellos it accepted claimed.
    fn forget_if_idle(&mut self, id: &PeerId) {
        let idle = self
            .peers
            .get(id)
            .is_some_and(|p| p.conns.is_empty() && p.pending.is_empty() && !p.connecting);
        if !idle {
            return;
        }
        if let Some(p) = self.peers.remove(id) {
            if p.failed {
                self.remember_down(*id);
            }
        }
        if self.peers.capacity() > 64 && self.peers.len() < self.peers.capacity() / 4 {
            self.peers.shrink_to(self.peers.len() * 2);
        }
    }

    /// Remembers that the last attempt to connect to `id` failed.
    fn remember_down(&mut self, id: PeerId) {
        if self.down.len() >= DOWN_MEMORY && !self.down.contains_key(&id) {
            if let Some(oldest) = self.down.iter().min_by_key(|(_, t)| **t).map(|(k, _)| *k) {
                self.down.remove(&oldest);
            }
        }
        self.down.insert(id, Instant::now());
    }
}

/// The shared core of one NI.
pub struct NiInner {
    /// The host's callbacks for this NI.
    pub host: HostHandle,
    /// Our identity.
    pub local: LocalId,
    /// The NI's address.
    pub addr: IpAddr,
    /// The interface name.
    pub ifname: String,
    /// Parameters in force.
    pub params: Params,
    /// LND tunables in force.
    pub tun: NiTunables,
    /// The net's name (`tcp1`), for messages.
    pub net_name: String,
    cfg: ConnCfg,
    /// The link watcher last saw the NI's link down ([`crate::link`]).
    link_down: AtomicBool,
    /// How many times the link went down: a handshake that began before
    /// the last time is not registered, even once the link is back.
    link_epoch: AtomicU64,
    st: Mutex<NiState>,
    tasks: Mutex<usize>,
    tasks_cv: Condvar,
    shut_tx: watch::Sender<bool>,
    rt: tokio::runtime::Handle,
    me: Weak<NiInner>,
}

/// Rank of a connection type for an LNET message (lower is better; `None`
/// never), from the kernel's V3 table (`spec/wire.md` §5.7). A receiver
/// accepts anything anywhere, so BULK_IN is a last resort rather than never.
fn rank(t: ConnType, small: bool) -> Option<u8> {
    match (t, small) {
        (ConnType::Any, _) => Some(0),
        (ConnType::Control, true) | (ConnType::BulkOut, false) => Some(0),
        (ConnType::BulkOut, true) | (ConnType::Control, false) => Some(1),
        (ConnType::BulkIn, _) => Some(2),
        (ConnType::None, _) => None,
    }
}

/// Picks the connection for a message of `size` wire bytes: best type, then
/// fewest queued bytes.
fn pick(conns: &[Arc<Conn>], size: usize, min_bulk: usize) -> Option<&Arc<Conn>> {
    let small = size < min_bulk;
    // The first of the least (type rank, queued bytes); a connection of a
    // worse type than the best so far costs no lock (per message: a peer
    // has a connection of each type).
    let mut best: Option<(u8, usize, &Arc<Conn>)> = None;
    for c in conns {
        let Some(r) = rank(c.ctype, small) else {
            continue;
        };
        if best.is_some_and(|(br, _, _)| r > br) || c.is_closed() {
            continue;
        }
        let b = c.queued_bytes();
        if best.is_none_or(|(br, bb, _)| (r, b) < (br, bb)) {
            best = Some((r, b, c));
        }
    }
    best.map(|(_, _, c)| c)
}

/// Queues `g` on the best connection of `conns` for its writer task (no
/// direct write: callers hold the NI lock); gives it back if none takes it.
// Giving the guard back by value is the point (boxing would allocate per message).
#[allow(clippy::result_large_err)]
fn dispatch(conns: &[Arc<Conn>], g: TxGuard, min_bulk: usize) -> Result<(), TxGuard> {
    let mut g = g;
    if conns.is_empty() {
        return Err(g);
    }
    for _ in 0..conns.len() {
        let size = g.wire_len(0);
        let Some(c) = pick(conns, size + conns[0].hdr_len(), min_bulk) else {
            return Err(g);
        };
        match c.enqueue_queued(g) {
            Ok(()) => return Ok(()),
            Err(back) => g = back,
        }
    }
    Err(g)
}

/// Why a connection whose handshake began before the NI's link last went
/// down is not registered.
const LINK_WENT_DOWN: &str = "the NI's link went down during the handshake";

fn peer_ip(nid: &Nid) -> Option<IpAddr> {
    if let Some(a) = nid.addr4() {
        return Some(IpAddr::V4(a.into()));
    }
    (nid.addr_len() == 16).then(|| IpAddr::V6(nid.addr.into()))
}

/// What the sends waiting for a connection become when it cannot be made
/// with error `errno` (positive), as `ksocknal_txlist_done()` classifies the
/// connect error of the sends it zombies: a peer that cannot be reached
/// (`ENETDOWN`, `EHOSTUNREACH`, `ENETUNREACH`, `ECONNREFUSED`,
/// `ECONNRESET`) is `REMOTE_DROPPED`, which LNet resends through another
/// peer NI; no answer within `sock_timeout` (`ETIMEDOUT`) is
/// `NETWORK_TIMEOUT`; anything else (a failed handshake) is `LOCAL_ERROR`.
/// Neither of the last two is resent.
///
/// When the NI's own link is down (`local_link_down`) the failure is ours:
/// `-ENETDOWN` / `LOCAL_ABORTED`, as for the sends the link watcher aborts
/// when the link goes (upstream does not close them; see [`crate::link`]),
/// so LNet lowers the NI's health and resends them through another local NI
/// even when the sender gave this NI's NID as its source.
pub fn unreachable_status(errno: i32, local_link_down: bool) -> Completion {
    use HealthStatus as H;
    if local_link_down {
        return Completion::failed(errno::ENETDOWN, H::LOCAL_ABORTED);
    }
    let errno = errno.abs();
    let health = match errno {
        errno::ETIMEDOUT => H::NETWORK_TIMEOUT,
        errno::ENETDOWN
        | errno::EHOSTUNREACH
        | errno::ENETUNREACH
        | errno::ECONNREFUSED
        | errno::ECONNRESET => H::REMOTE_DROPPED,
        _ => H::LOCAL_ERROR,
    };
    Completion::failed(errno, health)
}

/// Whether a connect error can come from this side's link being down (no
/// route, interface or address gone, no neighbour answering, nothing sent):
/// then [`NiInner::link_is_down`] looks at the interface before blaming the
/// peer.
fn may_be_local(errno: i32) -> bool {
    matches!(
        errno.abs(),
        errno::ENETDOWN | errno::ENETUNREACH | errno::EHOSTUNREACH | errno::ETIMEDOUT
    ) || errno.abs() == nix::libc::EADDRNOTAVAIL
}

/// The positive errno of a failed connect or handshake.
fn hs_errno(e: &HsError) -> i32 {
    match e {
        HsError::Io(io) => io.raw_os_error().unwrap_or(match io.kind() {
            std::io::ErrorKind::TimedOut => errno::ETIMEDOUT,
            std::io::ErrorKind::ConnectionRefused => errno::ECONNREFUSED,
            std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::UnexpectedEof => {
                errno::ECONNRESET
            }
            std::io::ErrorKind::ConnectionAborted | std::io::ErrorKind::BrokenPipe => {
                errno::ECONNABORTED
            }
            std::io::ErrorKind::AddrNotAvailable => nix::libc::EADDRNOTAVAIL,
            _ => errno::EIO,
        }),
        HsError::Timeout(_) => errno::ETIMEDOUT,
        _ => errno::EPROTO,
    }
}

/// Outcome of one connect round.
enum Round {
    /// Nothing (more) to connect, or connected.
    Done,
    /// The peer refused: it is connecting to us.
    LostRace,
    /// Failed: fail the pending sends with this reason.
    Failed(CloseReason),
}

impl NiInner {
    /// Builds the NI core; `rt` is the plugin's runtime.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        host: HostHandle,
        local: LocalId,
        addr: IpAddr,
        ifname: String,
        net_name: String,
        params: Params,
        tun: NiTunables,
        rt: tokio::runtime::Handle,
    ) -> Arc<NiInner> {
        let cfg = ConnCfg {
            sock_timeout: params.sock_timeout(),
            keepalive: Duration::from_secs(params.keepalive as u64),
            zc_min_payload: params.zc_request.then_some(params.zc_min_payload),
            csum: params.enable_csum,
            rx_spin: Duration::from_micros(params.rx_spin_us.into()),
            rx_poll: Duration::from_micros(params.rx_poll_us.into()),
            rx_lowat: params.rx_lowat,
        };
        let (shut_tx, _) = watch::channel(false);
        Arc::new_cyclic(|me| NiInner {
            host,
            local,
            addr,
            ifname,
            params,
            tun,
            net_name,
            cfg,
            link_down: AtomicBool::new(false),
            link_epoch: AtomicU64::new(0),
            st: Mutex::new(NiState {
                shutdown: false,
                peers: FastMap::default(),
                conns: FastMap::default(),
                next_conn: 1,
                down: HashMap::new(),
            }),
            tasks: Mutex::new(0),
            tasks_cv: Condvar::new(),
            shut_tx,
            rt,
            me: me.clone(),
        })
    }

    fn arc(&self) -> Option<Arc<NiInner>> {
        self.me.upgrade()
    }

    /// Logs with the NI's NID as prefix.
    pub fn log_ni(&self, level: LogLevel, msg: &str) {
        self.host
            .log(level, &format!("lnd-sock {}: {msg}", self.local.nid));
    }

    /// Whether this NI's own link is down: the link watcher said so, or, for
    /// a connect that failed with `errno` (positive) in a way a dead local
    /// link explains, the interface is not usable right now (the watcher may
    /// not have seen the change yet).
    fn link_is_down(&self, errno: Option<i32>) -> bool {
        if self.link_down.load(Ordering::Acquire) {
            return true;
        }
        if self.addr.is_loopback() || !errno.is_some_and(may_be_local) {
            return false;
        }
        crate::iface::snapshot()
            .is_ok_and(|list| !crate::link::link_up(&list, &self.ifname, self.addr))
    }

    /// Why sends waiting for a connection fail when it cannot be made with
    /// error `errno` (positive): see [`unreachable_status`].
    fn unreachable(&self, text: impl Into<String>, errno: i32) -> CloseReason {
        let down = self.link_is_down(Some(errno));
        let mut text = text.into();
        if down {
            text.push_str(if text.is_empty() {
                "the NI's link is down"
            } else {
                " (the NI's link is down)"
            });
        }
        CloseReason {
            text,
            status: unreachable_status(errno, down),
        }
    }

    /// The link watcher saw the link come back.
    pub(crate) fn link_is_up_again(&self) {
        self.link_down.store(false, Ordering::Release);
    }

    /// The link watcher saw the link go: from now on no connection is
    /// attempted from this NI until the link returns; LNet is told
    /// (`link_state`), then every send the NI holds (on a connection or
    /// waiting for one) finishes with `why`, at once rather than when a
    /// connect attempt through the dead link gives up, so that LNet resends
    /// them through another NI. Returns how many connections were closed.
    pub(crate) fn link_went_down(&self, why: &CloseReason) -> usize {
        self.link_epoch.fetch_add(1, Ordering::AcqRel);
        self.link_down.store(true, Ordering::Release);
        self.host.link_state(false);
        let n = self.close_conns(why);
        let waiting: Vec<TxGuard> = {
            let mut st = lock(&self.st);
            let ids: Vec<PeerId> = st.peers.keys().copied().collect();
            let mut out = Vec::new();
            for id in ids {
                if let Some(p) = st.peers.get_mut(&id) {
                    out.extend(p.pending.drain(..));
                }
            }
            out
        };
        if !waiting.is_empty() {
            self.log_ni(
                LogLevel::WARN,
                &format!(
                    "{}: failing {} message(s) waiting for a connection",
                    why.text,
                    waiting.len()
                ),
            );
        }
        for g in waiting {
            g.complete(why.status);
        }
        n
    }

    fn task_start(&self) {
        *lock(&self.tasks) += 1;
    }

    /// Spawns a counted task on the plugin runtime that stops at shutdown.
    pub(crate) fn spawn<F>(&self, f: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        self.task_start();
        let me = self.arc();
        let mut shut = self.shut_tx.subscribe();
        self.rt.spawn(async move {
            tokio::select! {
                _ = f => {}
                _ = shut.wait_for(|s| *s) => {}
            }
            if let Some(me) = me {
                me.task_done();
            }
        });
    }

    // -----------------------------------------------------------------------
    // Sending
    // -----------------------------------------------------------------------

    /// Sends `tx` with `payload` as its payload (`tx.payload` is not used).
    fn send_msg(&self, tx: TxMsg, payload: PayloadSpan) -> Result<(), LndError> {
        let target = PeerId {
            nid: tx.target,
            pid: tx.target_pid,
        };
        if tx.target.net() != self.local.nid.net() {
            return Err(LndError::new(
                errno::ENETUNREACH,
                format!(
                    "cannot send to {}: not on this NI's net {}",
                    tx.target,
                    self.local.nid.net()
                ),
            ));
        }
        let plen = payload.len();
        if plen as u64 > MAX_PAYLOAD as u64 || plen != tx.hdr.payload_length as usize {
            return Err(LndError::new(
                errno::EMSGSIZE,
                format!(
                    "cannot send to {}: payload of {plen} bytes for a header announcing {} \
                     (at most {MAX_PAYLOAD})",
                    tx.target, tx.hdr.payload_length
                ),
            ));
        }
        let Some(ip) = peer_ip(&tx.target) else {
            return Err(LndError::new(
                errno::EHOSTUNREACH,
                format!("cannot send to {}: no IP address in that NID", tx.target),
            ));
        };
        let mut g = TxGuard::new(tx, payload, self.host.clone());
        // The usual case: a live connection, picked under the lock and
        // written to after it (the direct path may write and finalize on
        // this thread, which must hold no lock of ours).
        let min_bulk = self.params.min_bulk;
        for _ in 0..4 {
            let conn = {
                let st = lock(&self.st);
                if st.shutdown {
                    break;
                }
                st.peers.get(&target).and_then(|p| {
                    let size = g.wire_len(0);
                    let hlen = p.conns.first().map_or(0, |c| c.hdr_len());
                    pick(&p.conns, size + hlen, min_bulk).cloned()
                })
            };
            let Some(conn) = conn else { break };
            match conn.enqueue(g) {
                Ok(()) => return Ok(()),
                // Closed meanwhile: pick again.
                Err(back) => g = back,
            }
        }
        let mut st = lock(&self.st);
        if st.shutdown {
            drop(st);
            // A failed send owns nothing: give the message back untouched.
            let _ = g.disarm();
            return Err(LndError::new(
                ESHUTDOWN,
                format!("cannot send to {}: NI is shutting down", target.nid),
            ));
        }
        if target.pid & hello::LNET_PID_USERFLAG != 0 && !st.peers.contains_key(&target) {
            drop(st);
            let _ = g.disarm();
            return Err(LndError::new(
                errno::EHOSTUNREACH,
                format!("cannot send to {target}: a userspace peer that is not connected"),
            ));
        }
        let peer = st.peers.entry(target).or_insert_with(Peer::new);
        let g = match dispatch(&peer.conns, g, min_bulk) {
            Ok(()) => return Ok(()),
            Err(g) => g,
        };
        if peer.userspace {
            drop(st);
            let _ = g.disarm();
            return Err(LndError::new(
                errno::EHOSTUNREACH,
                format!("cannot send to {target}: a userspace peer that is not connected"),
            ));
        }
        if self.link_down.load(Ordering::Acquire) {
            // No connection can be made through a dead link: fail it as the
            // link watcher failed the sends it found, from a task rather
            // than inside the caller's send.
            st.forget_if_idle(&target);
            drop(st);
            let status = unreachable_status(errno::ENETDOWN, true);
            if let Some(me) = self.arc() {
                self.spawn(async move {
                    me.log_ni(
                        LogLevel::DEBUG,
                        &format!("cannot send to {}: the NI's link is down", target.nid),
                    );
                    g.complete(status);
                });
            }
            return Ok(());
        }
        peer.pending.push_back(g);
        let start = !peer.connecting;
        peer.connecting = true;
        drop(st);
        if start {
            if let Some(me) = self.arc() {
                self.spawn(async move { me.connect_peer(target, ip).await });
            }
        }
        Ok(())
    }

    /// The connect daemon for one peer (`ksocknal_connect()`): creates the
    /// missing connections, retries after a lost race until the peer's own
    /// connections arrive or `sock_timeout` passes, fails the waiting sends
    /// otherwise.
    async fn connect_peer(self: Arc<Self>, id: PeerId, ip: IpAddr) {
        let started = Instant::now();
        let mut backoff = self.params.min_reconnect;
        loop {
            let round = self.connect_round(id, ip).await;
            let mut fail: Vec<TxGuard> = Vec::new();
            let mut why: Option<CloseReason> = None;
            let mut no_conn = false;
            let retry = {
                let mut st = lock(&self.st);
                let shutdown = st.shutdown;
                let min_bulk = self.params.min_bulk;
                let Some(peer) = st.peers.get_mut(&id) else {
                    return;
                };
                let retry = if shutdown {
                    peer.connecting = false;
                    fail.extend(peer.pending.drain(..));
                    why = Some(CloseReason::shutdown());
                    false
                } else if peer.conns.iter().any(|c| !c.is_closed()) {
                    peer.failed = false;
                    while let Some(g) = peer.pending.pop_front() {
                        if let Err(g) = dispatch(&peer.conns, g, min_bulk) {
                            fail.push(g);
                        }
                    }
                    peer.connecting = false;
                    false
                } else {
                    match round {
                        Round::LostRace
                            if started.elapsed() < self.cfg.sock_timeout
                                && !peer.pending.is_empty() =>
                        {
                            true
                        }
                        Round::LostRace => {
                            why = Some(CloseReason::timeout(
                                "waiting for the peer's connections after a race",
                                self.cfg.sock_timeout,
                            ));
                            peer.connecting = false;
                            peer.failed = true;
                            fail.extend(peer.pending.drain(..));
                            false
                        }
                        Round::Failed(w) => {
                            why = Some(w);
                            peer.connecting = false;
                            peer.failed = true;
                            fail.extend(peer.pending.drain(..));
                            false
                        }
                        Round::Done => {
                            // Classified below, without the lock (it may
                            // look at the interface).
                            no_conn = true;
                            peer.connecting = false;
                            fail.extend(peer.pending.drain(..));
                            false
                        }
                    }
                };
                if !retry && !shutdown {
                    st.forget_if_idle(&id);
                }
                retry
            };
            if no_conn {
                why = Some(self.unreachable("no connection", errno::EHOSTUNREACH));
            }
            if let Some(w) = &why {
                let status = w.status;
                if !fail.is_empty() {
                    self.log_ni(
                        LogLevel::WARN,
                        &format!(
                            "cannot connect to {id}: {}; failing {} queued message(s)",
                            w.text,
                            fail.len()
                        ),
                    );
                }
                for g in fail.drain(..) {
                    g.complete(status);
                }
                if status.health != HealthStatus::LOCAL_INTERRUPT {
                    self.host.notify(id.nid, false);
                }
            }
            if !fail.is_empty() {
                let status = self.unreachable("", errno::EHOSTUNREACH).status;
                for g in fail {
                    g.complete(status);
                }
            }
            if !retry {
                return;
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(self.params.max_reconnect);
        }
    }

    /// Which connection type the peer still lacks, if any.
    fn missing(&self, peer: &Peer) -> Option<ConnType> {
        if !self.params.typed_conns {
            return (peer.count(ConnType::Any) == 0).then_some(ConnType::Any);
        }
        let cpp = self.tun.conns_per_peer as usize;
        if peer.count(ConnType::Control) == 0 {
            return Some(ConnType::Control);
        }
        let (bi, bo) = (peer.count(ConnType::BulkIn), peer.count(ConnType::BulkOut));
        if bi < cpp && bi <= bo {
            return Some(ConnType::BulkIn);
        }
        if bo < cpp {
            return Some(ConnType::BulkOut);
        }
        None
    }

    async fn connect_round(&self, id: PeerId, ip: IpAddr) -> Round {
        let mut version_retries = 0;
        loop {
            let (ctype, version) = {
                let st = lock(&self.st);
                if st.shutdown {
                    return Round::Done;
                }
                let Some(peer) = st.peers.get(&id) else {
                    return Round::Done;
                };
                match self.missing(peer) {
                    None => return Round::Done,
                    Some(t) => (t, peer.version),
                }
            };
            let version = version.unwrap_or(if ip.is_ipv6() {
                KSOCK_PROTO_V4
            } else {
                self.params.protocol.min(KSOCK_PROTO_V3)
            });
            match self.connect_one(id, ip, ctype, version).await {
                Ok(()) => {}
                Err(HsError::WantsVersion(v)) if version_retries < 2 => {
                    version_retries += 1;
                    self.log_ni(
                        LogLevel::INFO,
                        &format!("{id} asks for socklnd protocol V{v}; retrying"),
                    );
                    if let Some(p) = lock(&self.st).peers.get_mut(&id) {
                        p.version = Some(v);
                    }
                }
                Err(HsError::LostRace) => {
                    self.log_ni(
                        LogLevel::DEBUG,
                        &format!("{id} refused a {} connection (race)", ctype.name()),
                    );
                    return Round::LostRace;
                }
                Err(e) => {
                    let text = match &e {
                        HsError::Io(io) => format!("connect: {io}"),
                        HsError::Timeout(t) => format!(
                            "handshake: no progress for {} s (sock_timeout)",
                            t.as_secs()
                        ),
                        other => other.to_string(),
                    };
                    let why = self.unreachable(text, hs_errno(&e));
                    self.log_ni(
                        LogLevel::WARN,
                        &format!("{} connection to {id} failed: {e}", ctype.name()),
                    );
                    return Round::Failed(why);
                }
            }
        }
    }

    async fn connect_one(
        &self,
        id: PeerId,
        ip: IpAddr,
        ctype: ConnType,
        version: u32,
    ) -> Result<(), HsError> {
        let port = match ctype {
            ConnType::BulkIn | ConnType::BulkOut => self.params.accept_port_bulk,
            _ => self.params.accept_port,
        };
        let to = SocketAddr::new(ip, port);
        let t = self.cfg.sock_timeout;
        loop {
            let epoch = self.link_epoch.load(Ordering::Acquire);
            let mut s = net::connect(self.addr, to, true, t).await?;
            let mut hs = Handshake::active(self.local, id, ctype, version);
            let p = hello::run_active(&mut s, &mut hs, t).await?;
            let addrs = match (s.local_addr(), s.peer_addr()) {
                (Ok(l), Ok(r)) => Some((l, r)),
                _ => None,
            };
            match self.register_checked(&p, true, addrs, false, epoch) {
                Ok(conn) => {
                    self.start_conn(conn, s);
                    return Ok(());
                }
                // The link went and came back while this handshake ran:
                // dropping the socket closes it; a new one is made over the
                // link as it is now.
                Err(LINK_WENT_DOWN) if !self.link_down.load(Ordering::Acquire) => {
                    self.log_ni(
                        LogLevel::DEBUG,
                        &format!(
                            "{} connection to {id}: {LINK_WENT_DOWN}; connecting again",
                            ctype.name()
                        ),
                    );
                }
                Err(e) => return Err(HsError::Io(std::io::Error::other(e))),
            }
        }
    }

    /// Applies the socket options and starts a registered connection's
    /// reader and writer.
    fn start_conn(&self, conn: Arc<Conn>, s: TcpStream) {
        if let Err(e) = net::setup(&s, &self.params, &self.tun) {
            self.log_ni(
                LogLevel::WARN,
                &format!("socket options for {}: {e}", conn.peer),
            );
        }
        let Some(me) = self.arc() else {
            conn.close(CloseReason::shutdown());
            return;
        };
        // The connection moves to its scheduler's thread: its socket is
        // registered with that runtime's poller, and its reader and writer
        // run there for as long as it lives. All of a peer's connections
        // share one scheduler, since an RPC's messages cross them (a request
        // on one, its bulk on another): LNet then runs on one thread for
        // that peer. New peers spread over the schedulers.
        // Chosen and recorded in one critical section, so that two
        // connections of a new peer cannot land on different schedulers.
        let chosen = {
            let mut st = lock(&self.st);
            let peer = st.peers.get_mut(&conn.peer);
            let slot = crate::scheduler_for_conn(peer.as_ref().and_then(|p| p.sched));
            if let (Some(p), Ok(slot)) = (peer, &slot) {
                p.sched = Some(slot.index());
            }
            slot
        };
        let slot = match chosen {
            Ok(slot) => slot,
            Err(e) => {
                let why = CloseReason::new(e.message.as_str(), e.errno, HealthStatus::LOCAL_ERROR);
                me.conn_failed(&conn, why);
                return;
            }
        };
        let sock = match s.into_std() {
            Ok(sock) => sock,
            Err(e) => {
                me.conn_failed(&conn, CloseReason::io("take the socket", &e));
                return;
            }
        };
        *lock(&self.tasks) += 2;
        let rt = slot.runtime().clone();
        rt.spawn(async move {
            match TcpStream::from_std(sock) {
                Ok(s) => conn::start(
                    conn,
                    s,
                    Arc::new(OnSched {
                        ni: me,
                        _slot: slot,
                    }),
                ),
                Err(e) => {
                    let why = CloseReason::io("register the socket", &e);
                    me.conn_failed(&conn, why);
                    me.task_done();
                    me.task_done();
                }
            }
        });
    }

    /// [`NiInner::register_checked`] for a handshake that began now, without
    /// the passive side's refusals (unit tests).
    #[cfg(test)]
    fn register(
        &self,
        p: &PeerHello,
        active: bool,
        addrs: Option<(SocketAddr, SocketAddr)>,
    ) -> Result<Arc<Conn>, String> {
        let epoch = self.link_epoch.load(Ordering::Acquire);
        self.register_checked(p, active, addrs, false, epoch)
            .map_err(str::to_string)
    }

    /// Adds a connection to its peer (closing the peer's stale connections
    /// when its incarnation changed) and moves waiting sends onto it, for a
    /// handshake that began at link epoch `epoch` (refused when the link
    /// went down since, or is down). With `passive_checks`, the passive
    /// side's refusals are checked in the same critical section (so that a
    /// second connection racing in cannot slip past the duplicate check).
    fn register_checked(
        &self,
        p: &PeerHello,
        active: bool,
        addrs: Option<(SocketAddr, SocketAddr)>,
        passive_checks: bool,
        epoch: u64,
    ) -> Result<Arc<Conn>, &'static str> {
        let (conn, stale, fail) = {
            let mut st = lock(&self.st);
            if st.shutdown {
                return Err("NI is shutting down");
            }
            // A handshake that finished after the link went (the sweep of
            // `link_went_down` closed what was registered before, under this
            // lock) would leave a connection over a dead link behind.
            if self.link_down.load(Ordering::Acquire) {
                return Err("the NI's link is down");
            }
            // One that began before the link went and finished after it
            // came back: the peer closed its end of this TCP connection in
            // its own sweep (or will, once it sees the reset), so a send
            // put on it would be lost or fail.
            if self.link_epoch.load(Ordering::Acquire) != epoch {
                return Err(LINK_WENT_DOWN);
            }
            if passive_checks {
                Self::refusal(&st, p, &self.local, &self.tun)?;
            }
            let id = st.next_conn;
            st.next_conn = st.next_conn.wrapping_add(1).max(1);
            let conn = Conn::new(id, p, active, addrs, self.cfg, self.host.clone());
            let peer = st.peers.entry(p.peer).or_insert_with(Peer::new);
            let mut stale = Vec::new();
            if peer.incarnation.is_some_and(|i| i != p.incarnation) {
                stale = std::mem::take(&mut peer.conns);
            }
            peer.incarnation = Some(p.incarnation);
            peer.version = Some(p.version);
            peer.userspace = p.userspace;
            peer.failed = false;
            peer.conns.push(conn.clone());
            let mut fail = Vec::new();
            let min_bulk = self.params.min_bulk;
            // Sends waiting for a first connection go now, even while a
            // connect task still runs (e.g. after a lost race, the peer's
            // own connections are what we were waiting for).
            while let Some(g) = peer.pending.pop_front() {
                if let Err(g) = dispatch(&peer.conns, g, min_bulk) {
                    fail.push(g);
                }
            }
            for c in &stale {
                st.conns.remove(&c.id);
            }
            st.conns.insert(id, conn.clone());
            if !st.down.is_empty() {
                st.down.remove(&p.peer);
            }
            (conn, stale, fail)
        };
        if !stale.is_empty() {
            self.log_ni(
                LogLevel::INFO,
                &format!(
                    "{} restarted (new incarnation); closing {} old connection(s)",
                    p.peer,
                    stale.len()
                ),
            );
        }
        for c in stale {
            c.close(CloseReason::new(
                "peer restarted",
                errno::ESTALE,
                HealthStatus::REMOTE_ERROR,
            ));
        }
        if !fail.is_empty() {
            let status = self.unreachable("", errno::EHOSTUNREACH).status;
            for g in fail {
                g.complete(status);
            }
        }
        self.log_ni(
            LogLevel::DEBUG,
            &format!(
                "{} {} connection {} with {} (V{})",
                if active { "active" } else { "passive" },
                conn.ctype.name(),
                conn.id,
                conn.peer,
                conn.version
            ),
        );
        Ok(conn)
    }

    // -----------------------------------------------------------------------
    // Accepting
    // -----------------------------------------------------------------------

    /// Takes over a socket the acceptor validated for this NI (`lnd_accept`);
    /// `slot` counts it among the listener's handshakes until it is answered.
    pub fn accept(&self, mut s: TcpStream, from: SocketAddr, slot: crate::acceptor::HandshakeSlot) {
        let Some(me) = self.arc() else { return };
        let epoch = self.link_epoch.load(Ordering::Acquire);
        self.spawn(async move {
            let t = me.params.accept_timeout;
            let mut hs = Handshake::passive(me.local, from);
            let p = match hello::passive_hello(&mut s, &mut hs, t).await {
                Ok(p) => p,
                Err(e) => {
                    slot.log_bad(&me, from.ip(), &format!("hello from {from}: {e}; closing"));
                    return;
                }
            };
            let addrs = match (s.local_addr(), s.peer_addr()) {
                (Ok(l), Ok(r)) => Some((l, r)),
                _ => None,
            };
            // Registered before the answer goes out: the next connection
            // from this peer already counts as a duplicate.
            let verdict = me.register_checked(&p, false, addrs, true, epoch);
            if let Err(why) = &verdict {
                me.log_ni(
                    LogLevel::DEBUG,
                    &format!(
                        "refusing {} connection from {}: {why}",
                        p.ctype.name(),
                        p.peer
                    ),
                );
            }
            let answered = hello::passive_answer(&mut s, &mut hs, verdict.is_ok(), t).await;
            match (verdict, answered) {
                (Ok(conn), Ok(())) => me.start_conn(conn, s),
                (Ok(conn), Err(e)) => {
                    me.log_ni(LogLevel::WARN, &format!("answer to {from}: {e}; closing"));
                    me.conn_failed(
                        &conn,
                        CloseReason::new(
                            format!("answer failed: {e}"),
                            errno::ECONNRESET,
                            HealthStatus::REMOTE_ERROR,
                        ),
                    );
                }
                (Err(_), Err(e)) => {
                    me.log_ni(LogLevel::DEBUG, &format!("answer to {from}: {e}"));
                }
                (Err(_), Ok(())) => {}
            }
        });
    }

    /// The passive side's refusals (§5.6 step 4): a connection race we win,
    /// a duplicate connection.
    #[cfg(test)]
    fn decide(&self, p: &PeerHello) -> Result<(), &'static str> {
        let st = lock(&self.st);
        if st.shutdown {
            return Err("NI is shutting down");
        }
        Self::refusal(&st, p, &self.local, &self.tun)
    }

    fn refusal(
        st: &NiState,
        p: &PeerHello,
        local: &LocalId,
        tun: &NiTunables,
    ) -> Result<(), &'static str> {
        let Some(peer) = st.peers.get(&p.peer) else {
            return Ok(());
        };
        if peer.connecting && p.peer.nid < local.nid {
            return Err("connection race: our NID is higher, our connections win");
        }
        let same_inc = peer.incarnation == Some(p.incarnation);
        let limit = match p.ctype {
            ConnType::BulkIn | ConnType::BulkOut => tun.conns_per_peer as usize,
            _ => 1,
        };
        if same_inc && peer.count(p.ctype) >= limit {
            return Err("duplicate connection");
        }
        Ok(())
    }

    // -----------------------------------------------------------------------
    // Shutdown and queries
    // -----------------------------------------------------------------------

    fn shutdown_ni(&self) {
        let (conns, pending) = {
            let mut st = lock(&self.st);
            if st.shutdown {
                return;
            }
            st.shutdown = true;
            let conns: Vec<Arc<Conn>> = st.conns.drain().map(|(_, c)| c).collect();
            let mut pending = Vec::new();
            for (_, mut p) in st.peers.drain() {
                pending.extend(p.pending.drain(..));
            }
            st.down.clear();
            (conns, pending)
        };
        crate::acceptor::unregister(self);
        self.shut_tx.send_replace(true);
        for c in conns {
            c.close(CloseReason::shutdown());
        }
        drop(pending); // each guard finalizes with LOCAL_INTERRUPT
        let wait = || {
            let deadline = std::time::Instant::now() + Duration::from_secs(30);
            let mut n = lock(&self.tasks);
            while *n > 0 {
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                if left.is_zero() {
                    break;
                }
                n = self
                    .tasks_cv
                    .wait_timeout(n, left)
                    .map(|(g, _)| g)
                    .unwrap_or_else(|p| p.into_inner().0);
            }
            *n
        };
        let left = match tokio::runtime::Handle::try_current() {
            Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(wait)
            }
            _ => wait(),
        };
        if left > 0 {
            self.log_ni(
                LogLevel::ERROR,
                &format!("shutdown: {left} task(s) still running after 30 s"),
            );
        }
    }

    /// Closes every connection of this NI (to `peer` only if given): their
    /// queued and in-flight sends finish with `why`. Returns how many.
    pub(crate) fn close_conns_of(&self, peer: Option<Nid>, why: &CloseReason) -> usize {
        let victims: Vec<Arc<Conn>> = lock(&self.st)
            .conns
            .values()
            .filter(|c| peer.is_none_or(|n| c.peer.nid == n))
            .cloned()
            .collect();
        let n = victims.len();
        for c in victims {
            self.conn_failed(&c, why.clone());
        }
        n
    }

    /// Closes every connection of this NI (the link went down).
    pub(crate) fn close_conns(&self, why: &CloseReason) -> usize {
        self.close_conns_of(None, why)
    }

    /// The peer table (`lctl peer_list`): one entry per peer this NI has a
    /// connection to, a send queued for, or a connect task running for.
    fn peer_list(&self) -> String {
        let st = lock(&self.st);
        let mut out = String::from("peers:\n");
        let mut ids: Vec<&PeerId> = st.peers.keys().collect();
        ids.sort_by_key(|id| (id.nid, id.pid));
        for id in ids {
            let p = &st.peers[id];
            let _ = writeln!(out, "    - peer: {id}");
            let _ = writeln!(out, "      conns: {}", p.conns.len());
            let _ = writeln!(out, "      queued: {}", p.pending.len());
            let _ = writeln!(out, "      connecting: {}", p.connecting);
            let _ = writeln!(out, "      userspace: {}", p.userspace);
        }
        out
    }

    fn conn_list(&self) -> String {
        let st = lock(&self.st);
        let mut out = String::from("conns:\n");
        let mut ids: Vec<&u32> = st.conns.keys().collect();
        ids.sort();
        for id in ids {
            let c = &st.conns[id];
            let _ = writeln!(out, "    - peer: {}", c.peer);
            let _ = writeln!(out, "      type: {}", c.ctype.name());
            let _ = writeln!(out, "      protocol: {}", c.version);
            let _ = writeln!(out, "      active: {}", c.active);
            if let Some((l, r)) = c.addrs {
                let _ = writeln!(out, "      local: {l}");
                let _ = writeln!(out, "      remote: {r}");
            }
            let _ = writeln!(out, "      tx_queued_bytes: {}", c.queued_bytes());
            let zc = c.zc_counts();
            let _ = writeln!(out, "      zc_requests: {}", zc.requests);
            let _ = writeln!(out, "      zc_acked: {}", zc.acked);
            let _ = writeln!(out, "      zc_acks_sent: {}", zc.acks_sent);
            let _ = writeln!(out, "      zc_acks_queued: {}", c.queued_acks());
            let _ = writeln!(out, "      tx_direct_frames: {}", c.direct_frames());
            let (frames, writes) = c.tx_writes();
            let _ = writeln!(out, "      tx_frames: {frames}");
            let _ = writeln!(out, "      tx_writes: {writes}");
        }
        out
    }
}

impl ConnOwner for NiInner {
    fn parse(&self, conn: &Arc<Conn>, hdr: Hdr, rx: RxToken) -> Result<(), String> {
        self.host
            .parse(hdr, conn.peer.nid, rx, false)
            .map_err(|e| e.to_string())
    }

    fn conn_failed(&self, conn: &Arc<Conn>, why: CloseReason) {
        let first = conn.close(why.clone());
        let last = {
            let mut st = lock(&self.st);
            st.conns.remove(&conn.id);
            let last = match st.peers.get_mut(&conn.peer) {
                Some(p) => {
                    p.conns.retain(|c| c.id != conn.id);
                    p.conns.is_empty() && !st.shutdown
                }
                None => false,
            };
            if last {
                st.forget_if_idle(&conn.peer);
            }
            last
        };
        if first {
            let level = if why.status.errno.abs() == errno::EPROTO {
                LogLevel::ERROR
            } else {
                LogLevel::INFO
            };
            self.log_ni(
                level,
                &format!(
                    "closing {} connection {} with {}: {}",
                    conn.ctype.name(),
                    conn.id,
                    conn.peer,
                    why.text
                ),
            );
        }
        if last && why.status.health != HealthStatus::LOCAL_INTERRUPT {
            self.host.notify(conn.peer.nid, false);
        }
    }

    fn task_done(&self) {
        let mut n = lock(&self.tasks);
        *n = n.saturating_sub(1);
        if *n == 0 {
            self.tasks_cv.notify_all();
        }
    }

    fn log(&self, level: LogLevel, msg: &str) {
        self.log_ni(level, msg);
    }
}

/// A connection's owner on its scheduler: the NI, and the connection's
/// place in its scheduler's count, given back when both of its tasks end.
struct OnSched {
    ni: Arc<NiInner>,
    _slot: crate::SchedSlot,
}

impl ConnOwner for OnSched {
    fn parse(&self, conn: &Arc<Conn>, hdr: Hdr, rx: RxToken) -> Result<(), String> {
        self.ni.parse(conn, hdr, rx)
    }

    fn conn_failed(&self, conn: &Arc<Conn>, why: CloseReason) {
        self.ni.conn_failed(conn, why);
    }

    fn task_done(&self) {
        self.ni.task_done();
    }

    fn log(&self, level: LogLevel, msg: &str) {
        self.ni.log(level, msg);
    }
}

/// The [`LndNi`] object of one NI.
pub struct SockNi(pub Arc<NiInner>);

/// The data path is `send_span` and `recv_span` (lnd-api 1.1, what the host
/// calls): the message keeps the host's span, so the payload costs no heap
/// allocation. `send` and `recv` serve lnd-api 1.0 callers: they share the
/// `Payload`'s fragment list as a span (one allocation) and go the same way.
impl LndNi for SockNi {
    fn send(&self, tx: TxMsg) -> Result<(), LndError> {
        let (tx, payload) = tx.split_payload();
        self.send_span(tx, payload)
    }

    fn recv(&self, rx: RxAction) -> Result<(), LndError> {
        let (rx, payload) = rx.split_payload();
        self.recv_span(rx, payload)
    }

    fn send_span(&self, tx: TxMsg, payload: PayloadSpan) -> Result<(), LndError> {
        self.0.send_msg(tx, payload)
    }

    fn recv_span(&self, rx: RxAction, payload: PayloadSpan) -> Result<(), LndError> {
        // Made inside the reader's `parse`, on its thread: handed over there.
        let (rx, payload) = match conn::deliver_inline(conn::owner_addr(&self.0), rx, payload) {
            Ok(()) => return Ok(()),
            Err(back) => back,
        };
        let id = (rx.rx.0 >> 32) as u32;
        let seq = rx.rx.0 & 0xFFFF_FFFF;
        let conn = lock(&self.0.st).conns.get(&id).cloned();
        let Some(conn) = conn else {
            return Err(LndError::new(
                errno::ECONNABORTED,
                format!("receive token {:#x}: its connection is closed", rx.rx.0),
            ));
        };
        conn.deliver(seq, rx, payload).map_err(|a| {
            LndError::new(
                errno::EINVAL,
                format!("receive token {:#x} is not awaiting recv", a.rx.0),
            )
        })
    }

    fn notify_peer_down(&self, _peer: Nid) {}

    fn query(&self, peer: Nid) -> PeerAliveness {
        use lnd_api::abi_stable::std_types::ROption;
        let st = lock(&self.0.st);
        let mut best: Option<Duration> = None;
        let mut known = false;
        let mut failed = false;
        for (id, p) in &st.peers {
            if id.nid != peer {
                continue;
            }
            known = true;
            failed |= p.failed;
            for c in p.conns.iter().filter(|c| !c.is_closed()) {
                let idle = c.idle();
                best = Some(best.map_or(idle, |b| b.min(idle)));
            }
        }
        if !known {
            failed = st.down.keys().any(|id| id.nid == peer);
            known = failed;
        }
        match (known, best) {
            (_, Some(idle)) => PeerAliveness {
                alive: ROption::RSome(true),
                last_alive_secs_ago: ROption::RSome(idle.as_secs()),
            },
            (true, None) if failed => PeerAliveness {
                alive: ROption::RSome(false),
                last_alive_secs_ago: ROption::RNone,
            },
            _ => PeerAliveness::UNKNOWN,
        }
    }

    fn ctl(&self, cmd: &str, arg: &str) -> Result<String, LndError> {
        match cmd {
            "conn_list" => Ok(self.0.conn_list()),
            "peer_list" => Ok(self.0.peer_list()),
            "disconnect" => {
                let target: Option<Nid> = if arg.trim().is_empty() {
                    None
                } else {
                    Some(arg.trim().parse().map_err(|e| {
                        LndError::new(errno::EINVAL, format!("disconnect: bad NID {arg:?}: {e}"))
                    })?)
                };
                let n = self.0.close_conns_of(
                    target,
                    &CloseReason::new(
                        "closed by request",
                        errno::ECONNABORTED,
                        HealthStatus::LOCAL_ERROR,
                    ),
                );
                Ok(format!("disconnect:\n    closed: {n}\n"))
            }
            _ => Err(LndError::unsupported(&format!("control command {cmd:?}"))),
        }
    }

    fn shutdown(&self) {
        self.0.shutdown_ni();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Endian;
    use lnd_api::{Completion, Host, MsgToken, NetId};

    struct Quiet;
    impl Host for Quiet {
        fn parse(&self, _: Hdr, _: Nid, _: RxToken, _: bool) -> Result<(), LndError> {
            Ok(())
        }
        fn finalize(&self, _: MsgToken, _: Completion) {}
        fn notify(&self, _: Nid, _: bool) {}
        fn link_state(&self, _: bool) {}
        fn log(&self, _: LogLevel, _: &str) {}
    }

    const NET: NetId = NetId::new(2, 0);

    fn nid(last: u8) -> Nid {
        Nid::new4(NET, u32::from_be_bytes([10, 0, 0, last]))
    }

    fn ni(me: u8) -> Arc<NiInner> {
        NiInner::new(
            HostHandle::new(Quiet),
            LocalId {
                nid: nid(me),
                pid: 12345,
                incarnation: 1,
            },
            IpAddr::from([10, 0, 0, me]),
            "eth0".into(),
            "tcp".into(),
            Params::default(),
            NiTunables {
                conns_per_peer: 2,
                tos: -1,
            },
            crate::runtime().expect("runtime"),
        )
    }

    fn hello_from(peer: u8, ctype: ConnType, inc: u64) -> PeerHello {
        PeerHello {
            peer: PeerId {
                nid: nid(peer),
                pid: 12345,
            },
            userspace: false,
            incarnation: inc,
            version: 3,
            ctype,
            endian: Endian::Little,
        }
    }

    #[test]
    fn race_is_won_by_the_higher_nid() {
        let n = ni(5);
        for p in [3u8, 7] {
            lock(&n.st)
                .peers
                .entry(hello_from(p, ConnType::Control, 1).peer)
                .or_insert_with(Peer::new)
                .connecting = true;
        }
        // 10.0.0.3 < 10.0.0.5: we are connecting too and win, so refuse.
        assert!(n.decide(&hello_from(3, ConnType::Control, 9)).is_err());
        // 10.0.0.7 > us: it wins, accept.
        assert!(n.decide(&hello_from(7, ConnType::Control, 9)).is_ok());
        // Not connecting: accept anybody.
        assert!(n.decide(&hello_from(9, ConnType::Control, 9)).is_ok());
    }

    /// A handshake that began before the link went down and ended after it
    /// came back is not registered: the peer closed its end meanwhile. One
    /// that began after the link came back is.
    #[test]
    fn a_handshake_across_a_link_flap_is_not_registered() {
        let n = ni(5);
        let h = hello_from(7, ConnType::Control, 4);
        let before = n.link_epoch.load(Ordering::Acquire);
        n.link_went_down(&CloseReason::new(
            "link down (interface eth0 is down)",
            errno::ENETDOWN,
            HealthStatus::LOCAL_ABORTED,
        ));
        assert_eq!(
            n.register_checked(&h, true, None, false, before).err(),
            Some("the NI's link is down")
        );
        n.link_is_up_again();
        assert_eq!(
            n.register_checked(&h, true, None, false, before).err(),
            Some(LINK_WENT_DOWN)
        );
        assert!(lock(&n.st).conns.is_empty());
        let now = n.link_epoch.load(Ordering::Acquire);
        n.register_checked(&h, true, None, false, now)
            .expect("a handshake begun with the link up");
        assert_eq!(lock(&n.st).conns.len(), 1);
        n.shutdown_ni();
    }

    #[test]
    fn duplicates_are_refused_per_type_limit() {
        let n = ni(5);
        let h = hello_from(7, ConnType::BulkIn, 4);
        for i in 0..2 {
            assert!(n.decide(&h).is_ok(), "bulk connection {i}");
            n.register(&h, false, None).expect("registered");
        }
        assert_eq!(n.decide(&h), Err("duplicate connection"));
        let c = hello_from(7, ConnType::Control, 4);
        assert!(n.decide(&c).is_ok());
        n.register(&c, false, None).expect("registered");
        assert_eq!(n.decide(&c), Err("duplicate connection"));
        // A new incarnation is not a duplicate: it replaces the old ones.
        let c2 = hello_from(7, ConnType::Control, 5);
        assert!(n.decide(&c2).is_ok());
        n.register(&c2, false, None).expect("registered");
        let st = lock(&n.st);
        let p = &st.peers[&c2.peer];
        assert_eq!(p.conns.len(), 1);
        assert_eq!(p.incarnation, Some(5));
        drop(st);
        n.shutdown_ni();
    }

    #[test]
    fn missing_types_follow_conns_per_peer() {
        let n = ni(5);
        let mut p = Peer::new();
        let mk = |t| Conn::new(1, &hello_from(7, t, 1), true, None, n.cfg, n.host.clone());
        assert_eq!(n.missing(&p), Some(ConnType::Control));
        p.conns.push(mk(ConnType::Control));
        assert_eq!(n.missing(&p), Some(ConnType::BulkIn));
        p.conns.push(mk(ConnType::BulkIn));
        assert_eq!(n.missing(&p), Some(ConnType::BulkOut));
        p.conns.push(mk(ConnType::BulkOut));
        assert_eq!(n.missing(&p), Some(ConnType::BulkIn));
        p.conns.push(mk(ConnType::BulkIn));
        p.conns.push(mk(ConnType::BulkOut));
        assert_eq!(n.missing(&p), None);
    }

    #[test]
    fn a_failed_connect_is_classified_as_ksocknal_txlist_done_does() {
        use HealthStatus as H;
        let no = nix::libc::EADDRNOTAVAIL;
        let cases = [
            (errno::ECONNREFUSED, H::REMOTE_DROPPED),
            (errno::EHOSTUNREACH, H::REMOTE_DROPPED),
            (errno::ENETUNREACH, H::REMOTE_DROPPED),
            (errno::ENETDOWN, H::REMOTE_DROPPED),
            (errno::ECONNRESET, H::REMOTE_DROPPED),
            (errno::ETIMEDOUT, H::NETWORK_TIMEOUT),
            (errno::EPROTO, H::LOCAL_ERROR),
            (errno::EIO, H::LOCAL_ERROR),
            (no, H::LOCAL_ERROR),
        ];
        for (e, h) in cases {
            assert_eq!(
                unreachable_status(e, false),
                Completion::failed(e, h),
                "{e}"
            );
            assert_eq!(
                unreachable_status(-e, false),
                Completion::failed(e, h),
                "-{e}"
            );
            // With the NI's own link down, the failure is local, whatever
            // the errno: aborted, resent through another NI.
            assert_eq!(
                unreachable_status(e, true),
                Completion::failed(errno::ENETDOWN, H::LOCAL_ABORTED),
                "{e}"
            );
        }
        for e in [errno::ENETDOWN, errno::ENETUNREACH, errno::EHOSTUNREACH] {
            assert!(may_be_local(e) && may_be_local(-e));
        }
        assert!(may_be_local(errno::ETIMEDOUT) && may_be_local(no));
        assert!(!may_be_local(errno::ECONNREFUSED) && !may_be_local(errno::EPROTO));
    }

    /// A PUT without payload from `n` to `to`.
    fn empty_put(n: &NiInner, to: Nid) -> (u64, TxMsg) {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let token = NEXT.fetch_add(1, Ordering::Relaxed);
        let hdr = Hdr {
            dest_nid: to,
            src_nid: n.local.nid,
            dest_pid: 12345,
            src_pid: 12345,
            msg_type: lnd_api::MsgType::PUT,
            payload_length: 0,
            body: [0u8; 40],
        };
        let tx = TxMsg {
            token: MsgToken(token),
            hdr,
            target: to,
            target_pid: 12345,
            payload: lnd_api::Payload::new(),
            rx: lnd_api::abi_stable::std_types::ROption::RNone,
        };
        (token, tx)
    }

    /// The link watcher's "down" fails the sends waiting for a connection at
    /// once (not when the connect through the dead link gives up) and every
    /// later send without a live connection, all as LOCAL_ABORTED (resent by
    /// LNet through another NI); back up, a connect failure is the peer's
    /// (REMOTE_DROPPED, resent through another peer NI).
    #[test]
    fn link_down_fails_waiting_and_new_sends_locally() {
        use lnd_test_host::{RecvMode, TestHost};
        let t = Duration::from_secs(20);
        // A peer that takes the TCP connection and never answers the hello:
        // a send to it waits for its connection (sock_timeout is 50 s).
        let mute = std::net::TcpListener::bind("127.0.0.1:0").expect("listener");
        let port = mute.local_addr().expect("port").port();
        let host = TestHost::new("A", RecvMode::Sync);
        let params = Params {
            accept_port: port,
            ..Params::default()
        };
        let lo = |last: u8| Nid::new4(NET, u32::from_be_bytes([127, 0, 0, last]));
        let n = NiInner::new(
            HostHandle::new(host.clone()),
            LocalId {
                nid: lo(3),
                pid: 12345,
                incarnation: 1,
            },
            IpAddr::from([127, 0, 0, 3]),
            "lo".into(),
            "tcp".into(),
            params,
            NiTunables {
                conns_per_peer: 1,
                tos: -1,
            },
            crate::runtime().expect("runtime"),
        );
        let (waiting, m) = empty_put(&n, lo(1));
        n.send_msg(m, PayloadSpan::new()).expect("queued");
        let t0 = std::time::Instant::now();
        while !n.peer_list().contains("queued: 1") {
            assert!(t0.elapsed() < t, "{}", n.peer_list());
            std::thread::sleep(Duration::from_millis(10));
        }
        let t0 = std::time::Instant::now();
        n.link_went_down(&CloseReason::new(
            "link down (interface lo is down)",
            errno::ENETDOWN,
            HealthStatus::LOCAL_ABORTED,
        ));
        let aborted = Completion::failed(errno::ENETDOWN, HealthStatus::LOCAL_ABORTED);
        assert_eq!(host.wait_sent(&[waiting], t), [aborted]);
        assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
        assert_eq!(host.wait_links(1, t), [false]);
        // Nobody listens on 127.0.0.2: no connect is even tried while down.
        let (later, m) = empty_put(&n, lo(2));
        n.send_msg(m, PayloadSpan::new()).expect("accepted");
        assert_eq!(host.wait_sent(&[later], t), [aborted]);
        assert!(!n.peer_list().contains("127.0.0.2"), "{}", n.peer_list());
        n.link_is_up_again();
        let (refused, m) = empty_put(&n, lo(2));
        n.send_msg(m, PayloadSpan::new()).expect("accepted");
        assert_eq!(
            host.wait_sent(&[refused], t),
            [Completion::failed(
                errno::ECONNREFUSED,
                HealthStatus::REMOTE_DROPPED
            )]
        );
        for tok in [waiting, later, refused] {
            assert_eq!(host.sent_count(tok), 1, "finalized once");
        }
        n.shutdown_ni();
        drop(mute);
    }

    #[test]
    fn selection_prefers_the_kernels_types() {
        assert_eq!(rank(ConnType::Control, true), Some(0));
        assert_eq!(rank(ConnType::BulkOut, true), Some(1));
        assert_eq!(rank(ConnType::BulkOut, false), Some(0));
        assert_eq!(rank(ConnType::Control, false), Some(1));
        assert_eq!(rank(ConnType::BulkIn, false), Some(2));
        assert_eq!(rank(ConnType::None, true), None);
    }
}
