//! The engine ([`Lnet`], the kernel's `the_lnet`) and its local NIs
//! (`struct lnet_ni`, `lnet/lnet/api-ni.c`, `config.c`).
//!
//! # Call order
//!
//! The runtime creates the engine with [`Lnet::new`] (which registers `0@lo`
//! as [`NiId::LO`] and posts the ping target on portal 0), starts an LND for
//! each NI and registers it with [`Lnet::ni_add`]. Then, in any order:
//! inputs from LNDs ([`Lnet::handle_rx`], [`Lnet::handle_done`],
//! [`Lnet::handle_notify`]), timer expiries ([`Lnet::handle_timeout`]) and
//! application commands ([`Lnet::put`], [`Lnet::get`], [`Lnet::ping`], MD/ME
//! calls). After **every** call the runtime drains [`Lnet::poll_lnd`] (and
//! executes what it returns, outside its lock), [`Lnet::poll_event`], and
//! re-arms its timer at [`Lnet::poll_timeout`].

use std::collections::VecDeque;
use std::fmt;

use lnd_api::{
    errno, NetId, NetTunables, NiInfo, Nid, PayloadSpan, RxAction, RxToken, Tunable, TxMsg,
};

use crate::event::Event;
use crate::md::{MdHandle, MdTable};
use crate::me::Me;
use crate::msg::{GenSlab, Msg, MsgId};
use crate::nid::LNET_PID_LUSTRE;
use crate::peer::PeerTable;
use crate::ping::{PingId, PingTable, PingTarget};
use crate::ptl::{Portal, MAX_PORTALS};
use crate::stats::{Counters, MsgStats};
use crate::time::{Duration, Instant, TimerQueue};

/// Identifies a local NI; ids are never reused within one engine.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct NiId(pub u32);

impl NiId {
    /// The loopback NI `0@lo`, always present.
    pub const LO: NiId = NiId(0);
}

impl fmt::Display for NiId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ni {}", self.0)
    }
}

/// Global tunables (semantics §13.1), with lnetctl's names and units.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct GlobalTunables {
    /// `lnet_transaction_timeout`, seconds (150).
    pub transaction_timeout: u32,
    /// `lnet_retry_count` (2).
    pub retry_count: u32,
    /// `lnet_health_sensitivity` (100; 0 disables health).
    pub health_sensitivity: u32,
    /// `lnet_recovery_limit`, seconds (0 = forever).
    pub recovery_limit: u32,
    /// `lnet_max_recovery_ping_interval`, seconds (900).
    pub max_recovery_ping_interval: u32,
    /// `lnet_response_tracking` (3 = GETs and PUTs with ACK).
    pub response_tracking: u32,
    /// `lnet_peer_discovery_disabled`.
    pub peer_discovery_disabled: bool,
    /// `lnet_drop_asym_route`.
    pub drop_asym_route: bool,
    /// `lnet_numa_range`.
    pub numa_range: u32,
    /// `lnet_interfaces_max` (4096): most NIs per node and ping entries accepted.
    pub max_interfaces: u32,
    /// `lock_prim_nid`.
    pub lock_prim_nid: bool,
    /// Whether this node forwards (`routing`); RTE_DISABLED is set in the ping buffer otherwise.
    pub routing: bool,
    /// `router_sensitivity_percentage` (100; 0..=100, deprecated upstream, no effect).
    pub router_sensitivity: u32,
}

impl Default for GlobalTunables {
    fn default() -> Self {
        GlobalTunables {
            transaction_timeout: 150,
            retry_count: 2,
            health_sensitivity: 100,
            recovery_limit: 0,
            max_recovery_ping_interval: 900,
            response_tracking: 3,
            peer_discovery_disabled: false,
            drop_asym_route: false,
            numa_range: 0,
            max_interfaces: 4096,
            lock_prim_nid: true,
            routing: false,
            router_sensitivity: 100,
        }
    }
}

impl GlobalTunables {
    /// Checks the cross-field rules of §8.1/§8.7/§13.1.
    pub fn validate(&self) -> Result<(), NiError> {
        if self.transaction_timeout == 0 || self.transaction_timeout <= self.retry_count {
            return Err(NiError::Tunable(format!(
                "transaction_timeout {} must be > 0 and > retry_count {}",
                self.transaction_timeout, self.retry_count
            )));
        }
        if self.health_sensitivity > 1000 {
            return Err(NiError::Tunable(format!(
                "health_sensitivity {} is out of range 0..1000",
                self.health_sensitivity
            )));
        }
        if self.health_sensitivity == 0 && self.retry_count > 0 {
            return Err(NiError::Tunable(
                "retry_count must be 0 while health_sensitivity is 0".into(),
            ));
        }
        if self.response_tracking > 3 {
            return Err(NiError::Tunable(format!(
                "response_tracking {} is out of range 0..3",
                self.response_tracking
            )));
        }
        Ok(())
    }

    /// `lnd_timeout` derived from the transaction timeout (§8.7), seconds.
    pub fn lnd_timeout(&self) -> u32 {
        ((self.transaction_timeout.saturating_sub(1)) / (self.retry_count + 1)).max(1)
    }
}

/// How an engine starts.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// This node's PID (12345).
    pub pid: u32,
    /// Epoch of this instance, in every wire handle we create.
    pub interface_cookie: u64,
    /// Seed of the engine's RNG (selection tie-breaks).
    pub seed: u64,
    /// Global tunables.
    pub tunables: GlobalTunables,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            pid: LNET_PID_LUSTRE,
            interface_cookie: 1,
            seed: 0,
            tunables: GlobalTunables::default(),
        }
    }
}

impl Config {
    /// A configuration with the given PID, interface cookie and seed, default tunables.
    pub fn new(pid: u32, interface_cookie: u64, seed: u64) -> Self {
        Config {
            pid,
            interface_cookie,
            seed,
            tunables: GlobalTunables::default(),
        }
    }
}

/// What the runtime must do on an NI's LND (executed outside its lock).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum LndOp {
    /// Call `LndNiHandle::send_span`; on `Err` call `handle_done(tx.token, failed)`.
    Send {
        /// The NI.
        ni: NiId,
        /// The message (its `payload` field is empty).
        tx: TxMsg,
        /// The payload: a window into the MD's memory (for a GET on an NI
        /// whose LND takes sinks, `Lnet::ni_set_get_sink`, the GET's sink).
        payload: PayloadSpan,
    },
    /// Call `LndNiHandle::recv_span`; on `Err` call `handle_done` if `rx.msg` is `Some`.
    Recv {
        /// The NI.
        ni: NiId,
        /// The receive (its `payload` field is empty).
        rx: RxAction,
        /// Where the first mlen bytes go (mlen is its length).
        payload: PayloadSpan,
    },
    /// Call `LndNiHandle::eager_recv` (advisory: errors are only logged).
    EagerRecv {
        /// The NI.
        ni: NiId,
        /// The received message that is made to wait.
        rx: RxToken,
    },
    /// Call `LndNiHandle::notify_peer_down`.
    NotifyPeerDown {
        /// The NI.
        ni: NiId,
        /// The peer NI marked down.
        peer: Nid,
    },
}

/// NI state (`enum lnet_ni_state`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum NiState {
    /// Being set up.
    Init,
    /// In service.
    Active,
    /// Being removed.
    Deleting,
}

/// A local NI (`struct lnet_ni`).
#[derive(Debug)]
pub(crate) struct Ni {
    pub(crate) nid: Nid,
    pub(crate) net: NetId,
    pub(crate) state: NiState,
    pub(crate) interfaces: Vec<String>,
    pub(crate) tunables: NetTunables,
    pub(crate) lnd_tunables: Vec<Tunable>,
    pub(crate) timeout_secs: u32,
    /// `tq_credits` / `tq_credits_min` / `tq_credits_max`.
    pub(crate) tx_credits: i32,
    pub(crate) min_tx_credits: i32,
    pub(crate) max_tx_credits: i32,
    /// Messages waiting for an NI credit, FIFO.
    pub(crate) queue: VecDeque<MsgId>,
    /// `ni_healthv`, 0..=1000.
    pub(crate) health_value: u32,
    /// Health reached 0 and has not yet come back to 1000: the ping buffer
    /// says DOWN (§8.1).
    pub(crate) health_down: bool,
    /// Link down reported by the LND (`ni_fatal_error_on`).
    pub(crate) fatal: bool,
    /// Marked down by the routing switch: this node routes and the net
    /// heard no ping for `router_ping_timeout + alive_router_check_interval`
    /// (semantics §7.7).
    pub(crate) rtr_down: bool,
    /// Our ping-buffer sequence number that first listed this NI (a peer
    /// that acknowledged an older one has not heard of it).
    pub(crate) added_seq: u32,
    /// Round-robin sequence (`ni_seq`).
    pub(crate) seq: u64,
    /// Selection priority (UDSP NID rule; lower is better).
    pub(crate) sel_priority: u32,
    /// Its local net's selection priority (UDSP net rule; the same on every
    /// NI of the net).
    pub(crate) net_priority: u32,
    pub(crate) stats: MsgStats,
    /// The LND takes a GET's sink MD with the GET when it is at least this
    /// long (lnd-api's GET_SINK; `None`: GETs go payload-less).
    pub(crate) get_sink_min: Option<u32>,
}

/// A read-only view of a local NI for `net show`.
#[derive(Clone, Copy)]
pub struct NiView<'a> {
    id: NiId,
    ni: &'a Ni,
}

impl<'a> NiView<'a> {
    /// The NI's id.
    pub fn id(&self) -> NiId {
        self.id
    }
    /// The NID.
    pub fn nid(&self) -> Nid {
        self.ni.nid
    }
    /// The network.
    pub fn net(&self) -> NetId {
        self.ni.net
    }
    /// The state.
    pub fn state(&self) -> NiState {
        self.ni.state
    }
    /// `up` unless the link is down or health reached 0 and has not yet
    /// come back to 1000 (the ping-buffer status, §8.1).
    pub fn is_up(&self) -> bool {
        self.ni.is_up()
    }
    /// Interfaces in use.
    pub fn interfaces(&self) -> &'a [String] {
        &self.ni.interfaces
    }
    /// Net tunables in effect (`peer_timeout`, `peer_credits`, `peer_buffer_credits`, `credits`).
    pub fn tunables(&self) -> NetTunables {
        self.ni.tunables
    }
    /// LND tunables in effect.
    pub fn lnd_tunables(&self) -> &'a [Tunable] {
        &self.ni.lnd_tunables
    }
    /// LND timeout, seconds (0 = none reported).
    pub fn timeout_secs(&self) -> u32 {
        self.ni.timeout_secs
    }
    /// Tx credits available now (negative = messages waiting).
    pub fn tx_credits(&self) -> i32 {
        self.ni.tx_credits
    }
    /// Low-water mark of `tx_credits`.
    pub fn min_tx_credits(&self) -> i32 {
        self.ni.min_tx_credits
    }
    /// The NI's `credits` tunable.
    pub fn max_tx_credits(&self) -> i32 {
        self.ni.max_tx_credits
    }
    /// Health value, 0..=1000.
    pub fn health_value(&self) -> u32 {
        self.ni.health_value
    }
    /// Whether the LND reported the link down.
    pub fn fatal(&self) -> bool {
        self.ni.fatal
    }
    /// Message statistics.
    pub fn stats(&self) -> &'a MsgStats {
        &self.ni.stats
    }
    /// UDSP NID priority (`nid priority`; `u32::MAX` when no rule sets it).
    pub fn sel_priority(&self) -> u32 {
        self.ni.sel_priority
    }
    /// UDSP priority of its net (`net priority`; `u32::MAX` when no rule sets it).
    pub fn net_priority(&self) -> u32 {
        self.ni.net_priority
    }
}

impl Ni {
    pub(crate) fn is_up(&self) -> bool {
        !self.fatal && !self.health_down && !self.rtr_down
    }
}

/// Errors of NI management.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NiError {
    /// The loopback network is managed by the engine.
    #[error("setting @lo not allowed: the loopback NI 0@lo always exists")]
    Loopback,
    /// The NID is already one of ours.
    #[error("NI {nid:?}: already configured (delete it first)")]
    Exists {
        /// The NID.
        nid: Nid,
    },
    /// The NID does not belong to the given net.
    #[error("NI {nid:?}: NID is not on net {net:?}")]
    WrongNet {
        /// The NID.
        nid: Nid,
        /// The net asked for.
        net: NetId,
    },
    /// The LND returned unusable credits.
    #[error("NI {nid:?}: {what} must be > 0 (the LND reported {value})")]
    NoCredits {
        /// The NID.
        nid: Nid,
        /// `credits` or `peer_credits`.
        what: &'static str,
        /// The value.
        value: i32,
    },
    /// Too many NIs.
    #[error("too many NIs, check lnet_interfaces_max ({max})")]
    TooMany {
        /// The limit.
        max: u32,
    },
    /// No such NI.
    #[error("{0}: no such NI")]
    Unknown(NiId),
    /// A tunable is out of range.
    #[error("invalid tunable: {0}")]
    Tunable(String),
}

impl NiError {
    /// The errno upstream reports (positive).
    pub fn errno(&self) -> i32 {
        match self {
            NiError::Loopback | NiError::Unknown(_) => errno::ENODEV,
            NiError::Exists { .. } => errno::EEXIST,
            NiError::TooMany { .. } => 28, // ENOSPC
            NiError::WrongNet { .. } | NiError::NoCredits { .. } | NiError::Tunable(_) => {
                errno::EINVAL
            }
        }
    }
}

/// Something that will need attention at a time.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub(crate) enum Timer {
    /// A message waiting for credits reaches its deadline.
    Msg(MsgId),
    /// A ping reaches its timeout.
    Ping(PingId),
    /// An MD's response tracker expires.
    Md(MdHandle),
    /// The monitor's pass over the recovery queue (every second while it is
    /// not empty).
    Monitor,
    /// The router checker and routing switch (every second while needed).
    Router,
}

/// The LNet engine: a deterministic state machine (see the module docs for
/// the call order).
pub struct Lnet {
    pub(crate) cfg: Config,
    /// Local NIs by id (`None` once deleted); index 0 is `0@lo`.
    pub(crate) nis: Vec<Option<Ni>>,
    /// Global net round-robin sequence (`ln_net_seq` equivalent for NIs).
    pub(crate) ni_seq: u64,
    pub(crate) peers: PeerTable,
    pub(crate) mds: MdTable,
    pub(crate) mes: GenSlab<Me>,
    pub(crate) portals: Vec<Portal>,
    pub(crate) msgs: GenSlab<Msg>,
    pub(crate) lnd_ops: VecDeque<LndOp>,
    pub(crate) events: VecDeque<Event>,
    pub(crate) timers: TimerQueue<Timer>,
    /// Messages whose credit just arrived, to post (avoids recursion).
    pub(crate) to_post: VecDeque<MsgId>,
    pub(crate) pings: PingTable,
    pub(crate) ping_target: PingTarget,
    pub(crate) counters: Counters,
    /// Response trackers: MD -> deadline (§8.5).
    pub(crate) rspt: crate::hash::FastMap<MdHandle, (Instant, Option<crate::peer::PeerNiId>)>,
    /// Discovery's tables (§9).
    pub(crate) disc: crate::discovery::DiscTable,
    /// Routes, gateways, router buffers and forwarding ([`crate::router`]).
    pub(crate) router: crate::router::Router,
    /// UDSP rules in index order ([`crate::udsp`]).
    pub(crate) udsp: Vec<crate::udsp::Stored>,
    /// Set while a recovery ping's GET is being committed (§8.6).
    pub(crate) recovery_send: bool,
}

impl fmt::Debug for Lnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lnet")
            .field("pid", &self.cfg.pid)
            .field(
                "nis",
                &self.nis.iter().flatten().map(|n| n.nid).collect::<Vec<_>>(),
            )
            .field("msgs", &self.msgs.len())
            .field("mds", &self.mds.len())
            .field("timers", &self.timers.len())
            .finish_non_exhaustive()
    }
}

impl Lnet {
    /// Creates an engine with `0@lo` ([`NiId::LO`]) and the ping target on
    /// portal 0 (lazy). The runtime must start the `lo` LND for [`NiId::LO`].
    pub fn new(cfg: Config, now: Instant) -> Lnet {
        let _ = now;
        let cfg_seed = cfg.seed;
        let lo = Ni {
            nid: Nid::LO_0,
            net: NetId::LO,
            state: NiState::Active,
            interfaces: Vec::new(),
            tunables: NetTunables {
                peer_timeout: 0,
                peer_credits: 0,
                peer_buffer_credits: 0,
                credits: 0,
            },
            lnd_tunables: Vec::new(),
            timeout_secs: 0,
            tx_credits: 0,
            min_tx_credits: 0,
            max_tx_credits: 0,
            queue: VecDeque::new(),
            health_value: 1000,
            health_down: false,
            fatal: false,
            rtr_down: false,
            added_seq: 0,
            seq: 0,
            sel_priority: u32::MAX,
            net_priority: u32::MAX,
            stats: MsgStats::default(),
            get_sink_min: None,
        };
        let mut l = Lnet {
            cfg,
            nis: vec![Some(lo)],
            ni_seq: 0,
            peers: PeerTable::default(),
            mds: MdTable::default(),
            mes: GenSlab::default(),
            portals: (0..MAX_PORTALS).map(|_| Portal::default()).collect(),
            msgs: GenSlab::default(),
            lnd_ops: VecDeque::new(),
            events: VecDeque::new(),
            timers: TimerQueue::default(),
            to_post: VecDeque::new(),
            pings: PingTable::default(),
            ping_target: PingTarget::default(),
            counters: Counters::default(),
            rspt: crate::hash::FastMap::default(),
            disc: Default::default(),
            router: crate::router::Router::new(cfg_seed),
            udsp: Vec::new(),
            recovery_send: false,
        };
        l.portals[0].lazy = true;
        l.ping_target_setup();
        l.push_target_post();
        l
    }

    /// This node's PID.
    pub fn pid(&self) -> u32 {
        self.cfg.pid
    }

    /// The interface cookie of this instance.
    pub fn interface_cookie(&self) -> u64 {
        self.cfg.interface_cookie
    }

    /// The global tunables in force.
    pub fn tunables(&self) -> &GlobalTunables {
        &self.cfg.tunables
    }

    /// Replaces the global tunables (`lnetctl set ...`) after checking them.
    /// What a change sets going (the pushes of a discovery toggle, §9.7)
    /// leaves at the next engine call: call [`Lnet::handle_timeout`] to
    /// send it now.
    pub fn set_tunables(&mut self, t: GlobalTunables) -> Result<(), NiError> {
        t.validate()?;
        let routing_changed = t.routing != self.cfg.tunables.routing
            || t.peer_discovery_disabled != self.cfg.tunables.peer_discovery_disabled;
        self.cfg.tunables = t;
        if routing_changed {
            self.ping_target_update();
        }
        Ok(())
    }

    /// Registers an NI an LND brought up (`lnet_startup_lndni`).
    pub fn ni_add(&mut self, now: Instant, net: NetId, info: &NiInfo) -> Result<NiId, NiError> {
        if net == NetId::LO || info.nid.net() == NetId::LO {
            return Err(NiError::Loopback);
        }
        if info.nid.net() != net {
            return Err(NiError::WrongNet { nid: info.nid, net });
        }
        if self.ni_by_nid(&info.nid).is_some() {
            return Err(NiError::Exists { nid: info.nid });
        }
        let count = self.nis.iter().flatten().count() as u32;
        if count >= self.cfg.tunables.max_interfaces {
            return Err(NiError::TooMany {
                max: self.cfg.tunables.max_interfaces,
            });
        }
        let t = info.tunables;
        if t.credits <= 0 {
            return Err(NiError::NoCredits {
                nid: info.nid,
                what: "credits",
                value: t.credits,
            });
        }
        if t.peer_credits <= 0 {
            return Err(NiError::NoCredits {
                nid: info.nid,
                what: "peer_credits",
                value: t.peer_credits,
            });
        }
        let ni = Ni {
            nid: info.nid,
            net,
            state: NiState::Active,
            interfaces: info.interfaces.iter().map(|s| s.to_string()).collect(),
            tunables: t,
            lnd_tunables: info.lnd_tunables.to_vec(),
            timeout_secs: info.timeout_secs,
            tx_credits: t.credits,
            min_tx_credits: t.credits,
            max_tx_credits: t.credits,
            queue: VecDeque::new(),
            health_value: 1000,
            health_down: false,
            fatal: false,
            rtr_down: false,
            added_seq: 0,
            seq: 0,
            sel_priority: u32::MAX,
            net_priority: u32::MAX,
            stats: MsgStats::default(),
            get_sink_min: None,
        };
        let id = NiId(self.nis.len() as u32);
        self.nis.push(Some(ni));
        if !self.udsp.is_empty() {
            // Its priorities, and NID-pair rules that may name it (§12).
            self.udsp_apply_all();
        }
        self.ping_target_update();
        let seq = self.ping_seq();
        if let Some(n) = self.nis[id.0 as usize].as_mut() {
            n.added_seq = seq;
        }
        // Multi-Rail peers are pushed the new buffer now (§9.7).
        self.flush(now);
        Ok(id)
    }

    /// Records that the NI's LND takes a GET's sink MD with the GET
    /// (lnd-api 1.3's GET_SINK, `LndHandle::get_sink_min`): from now on a
    /// GET of at least `min` bytes sent on it carries its MD (from offset
    /// 0, `sink_length` bytes) as the send's payload, so that the LND can
    /// have the REPLY's data put straight into it.
    pub fn ni_set_get_sink(&mut self, ni: NiId, min: Option<u32>) -> Result<(), NiError> {
        let n = self
            .nis
            .get_mut(ni.0 as usize)
            .and_then(|n| n.as_mut())
            .ok_or(NiError::Unknown(ni))?;
        n.get_sink_min = min;
        Ok(())
    }

    /// Removes an NI (`lnet_shutdown_lndni`). Messages waiting for its
    /// credits are failed (`-ENETDOWN`); messages the LND owns are finalized
    /// by the LND's shutdown, which the runtime calls.
    pub fn ni_del(&mut self, now: Instant, ni: NiId) -> Result<(), NiError> {
        if ni == NiId::LO {
            return Err(NiError::Loopback);
        }
        let Some(n) = self.nis.get_mut(ni.0 as usize).and_then(|n| n.as_mut()) else {
            return Err(NiError::Unknown(ni));
        };
        n.state = NiState::Deleting;
        // Messages waiting for this NI's credits, or on peer NIs' queues to
        // leave through it, fail now.
        let mut waiting: Vec<MsgId> = n.queue.iter().copied().collect();
        for (idx, gen, m) in self.msgs.iter() {
            if m.ni == ni && m.state == crate::msg::MsgState::WaitPeerCredit {
                waiting.push(MsgId { idx, gen });
            }
        }
        let fail =
            lnd_api::Completion::failed(errno::ENETDOWN, lnd_api::HealthStatus::LOCAL_INTERRUPT);
        for id in waiting {
            self.unqueue_waiting(id);
            self.finalize(now, id, fail);
        }
        self.router_ni_del(now, ni);
        // PUTs from this NI waiting on lazy portals: their LND is going away.
        for p in 0..self.portals.len() {
            let gone: Vec<MsgId> = self.portals[p]
                .delayed
                .iter()
                .copied()
                .filter(|id| self.msgs.get(id.idx, id.gen).is_some_and(|m| m.ni == ni))
                .collect();
            for id in gone {
                self.portals[p].delayed.retain(|x| *x != id);
                if let Some(m) = self.msgs.remove(id.idx, id.gen) {
                    self.counters.msg_free();
                    self.counters.drop_count += 1;
                    self.counters.drop_length += u64::from(m.hdr.payload_length);
                }
            }
        }
        self.nis[ni.0 as usize] = None;
        self.ping_target_update();
        self.flush(now);
        Ok(())
    }

    /// A local NI by id.
    pub fn ni(&self, ni: NiId) -> Option<NiView<'_>> {
        self.nis
            .get(ni.0 as usize)?
            .as_ref()
            .map(|n| NiView { id: ni, ni: n })
    }

    /// All local NIs in configuration order, `0@lo` first.
    pub fn nis(&self) -> impl Iterator<Item = NiView<'_>> {
        self.nis.iter().enumerate().filter_map(|(i, n)| {
            n.as_ref().map(|n| NiView {
                id: NiId(i as u32),
                ni: n,
            })
        })
    }

    /// The NI owning a NID.
    pub fn ni_by_nid(&self, nid: &Nid) -> Option<NiId> {
        self.nis
            .iter()
            .position(|n| {
                n.as_ref()
                    .is_some_and(|n| n.nid == *nid && n.state == NiState::Active)
            })
            .map(|i| NiId(i as u32))
    }

    pub(crate) fn ni_ref(&self, ni: NiId) -> Option<&Ni> {
        self.nis.get(ni.0 as usize)?.as_ref()
    }

    pub(crate) fn ni_mut(&mut self, ni: NiId) -> Option<&mut Ni> {
        self.nis.get_mut(ni.0 as usize)?.as_mut()
    }

    /// Whether `nid` is one of ours (`0@lo` included).
    pub fn is_local_nid(&self, nid: &Nid) -> bool {
        *nid == Nid::LO_0 || self.ni_by_nid(nid).is_some()
    }

    /// The distance to a NID (`LNetDist`, §6.8): `Ok((0, 0))` for one of our
    /// NIDs, `Ok((1, order))` for a NID on a local net (`order` = 2 + the index
    /// of the NI among the local NIs), `Ok((hops + 1, 0))` through a route, else `EHOSTUNREACH`.
    pub fn dist(&self, nid: &Nid) -> Result<(u32, u32), i32> {
        if self.is_local_nid(nid) {
            return Ok((0, 0));
        }
        self.nis
            .iter()
            .flatten()
            .filter(|n| n.net != NetId::LO)
            .position(|n| n.net == nid.net() && n.state == NiState::Active)
            .map(|i| (1, 2 + i as u32))
            .or_else(|| self.route_dist(nid))
            .ok_or(-errno::EHOSTUNREACH)
    }

    /// Sets an NI's health value (`lnetctl net set --health`), clamped to
    /// 0..=1000; below 1000 the NI joins the local recovery queue (§8.6).
    pub fn ni_set_health(&mut self, now: Instant, ni: NiId, value: u32) -> Result<(), NiError> {
        if ni == NiId::LO {
            return Err(NiError::Loopback);
        }
        if self.ni_ref(ni).is_none_or(|n| n.state != NiState::Active) {
            return Err(NiError::Unknown(ni));
        }
        self.ni_health_to(now, ni, value.min(1000));
        self.flush(now);
        Ok(())
    }

    /// Sets every local NI's health value (`lnetctl net set --health V --all`).
    pub fn ni_set_health_all(&mut self, now: Instant, value: u32) {
        let ids: Vec<NiId> = self
            .nis()
            .map(|n| n.id())
            .filter(|i| *i != NiId::LO)
            .collect();
        for ni in ids {
            self.ni_health_to(now, ni, value.min(1000));
        }
        self.flush(now);
    }

    /// Moves a local NI's health to `value` (§8.1): reaching 0 marks it DOWN
    /// in the ping buffer, coming back to 1000 marks it UP again (a new
    /// sequence number and pushes follow); below 1000 it is queued for
    /// recovery pings (§8.6).
    pub(crate) fn ni_health_to(&mut self, now: Instant, ni: NiId, value: u32) {
        if ni == NiId::LO {
            return;
        }
        let Some(n) = self.ni_mut(ni) else { return };
        let was_up = n.is_up();
        n.health_value = value.min(1000);
        if n.health_value == 0 {
            n.health_down = true;
        } else if n.health_value == 1000 {
            n.health_down = false;
        }
        let (changed, below) = (n.is_up() != was_up, n.health_value < 1000);
        if changed {
            self.ping_target_update();
        }
        if below {
            self.local_recovery_enqueue(now, ni);
        }
    }

    /// Local NIs on the recovery queue, in NI order, with their health
    /// values (`lnetctl debug recovery --local`).
    pub fn local_recovery_queue(&self) -> Vec<(Nid, u32)> {
        self.peers
            .local_recovery
            .keys()
            .filter_map(|id| self.ni_ref(*id).map(|n| (n.nid, n.health_value)))
            .collect()
    }

    /// Recovery pings sent so far to a local NI on the recovery queue (reset
    /// when a message arrives on it, §8.6).
    pub fn local_recovery_pings(&self, ni: NiId) -> Option<u32> {
        self.peers.local_recovery.get(&ni).map(|r| r.ping_count)
    }

    /// The LND reported the NI's link up or down (`lnet_set_link_fatal_state`).
    pub fn handle_link_state(&mut self, now: Instant, ni: NiId, up: bool) {
        let Some(n) = self.ni_mut(ni) else { return };
        let was_up = n.is_up();
        n.fatal = !up;
        if n.is_up() != was_up {
            self.ping_target_update();
            // Multi-Rail peers hear of it now (a push, semantics §9.7).
            self.flush(now);
        }
    }

    /// Global counters.
    pub fn stats(&self) -> &Counters {
        &self.counters
    }

    /// Zeroes global, per-NI and per-peer-NI statistics (`lnetctl stats reset`).
    pub fn stats_reset(&mut self) {
        let (alloc, max) = (self.counters.msgs_alloc, self.counters.msgs_alloc);
        self.counters = Counters::default();
        self.counters.msgs_alloc = alloc;
        self.counters.msgs_max = max;
        for n in self.nis.iter_mut().flatten() {
            n.stats = MsgStats::default();
        }
        self.peers.reset_stats();
    }

    /// The deadline of a message committed now on `ni` (§4.6).
    pub(crate) fn msg_deadline(&self, now: Instant, ni: NiId) -> Instant {
        let t = &self.cfg.tunables;
        let lnd_t = self.ni_ref(ni).map_or(0, |n| n.timeout_secs);
        if lnd_t > 0 {
            let secs = u64::from(lnd_t) * u64::from(t.retry_count + 1) + 1;
            now.saturating_add(Duration::from_secs(secs))
        } else {
            now.saturating_add(Duration::from_secs(u64::from(t.transaction_timeout)))
        }
    }

    /// Next LND operation to execute, in order.
    #[must_use]
    #[inline]
    pub fn poll_lnd(&mut self) -> Option<LndOp> {
        self.lnd_ops.pop_front()
    }

    /// Next event (MD events and ping results), in order.
    #[must_use]
    #[inline]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Whether [`Lnet::poll_event`] has an event to give (a driver that
    /// polls after every call skips its routing when there is none).
    #[must_use]
    #[inline]
    pub fn has_events(&self) -> bool {
        !self.events.is_empty()
    }

    /// When [`Lnet::handle_timeout`] must be called next (may be early: a
    /// call with nothing due does nothing).
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.first().map(|(t, _)| t)
    }

    /// Runs what is due at `now`: credit-waiting messages past their
    /// deadline are dropped (`-ETIMEDOUT`, NETWORK_TIMEOUT), pings time out,
    /// response trackers expire.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some((t, timer)) = self.timers.first() {
            if t > now {
                break;
            }
            self.timers.pop_first();
            match timer {
                Timer::Msg(id) => self.expire_waiting_msg(now, id),
                Timer::Ping(id) => self.ping_expired(now, id),
                Timer::Md(md) => self.rspt_expired(now, md),
                Timer::Monitor => self.monitor(now),
                Timer::Router => self.router_tick(now),
            }
        }
        self.flush(now);
    }

    /// The LND reports a peer alive or dead (`lnet_notify`, §7.8).
    pub fn handle_notify(&mut self, now: Instant, ni: NiId, peer: Nid, alive: bool) {
        let Some(n) = self.ni_ref(ni) else { return };
        if peer.net() != n.net {
            return;
        }
        self.router_notify(peer, alive);
        if let Some(changed_down) = self.peers.notify(now, &peer, alive) {
            if changed_down {
                self.lnd_ops.push_back(LndOp::NotifyPeerDown { ni, peer });
            }
        }
    }

    pub(crate) fn arm(&mut self, at: Instant, t: Timer) {
        self.timers.insert(at, t);
    }

    pub(crate) fn disarm(&mut self, at: Instant, t: Timer) {
        self.timers.remove(at, t);
    }
}
