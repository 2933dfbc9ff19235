//! Peers, peer nets and peer NIs (`struct lnet_peer`, `lnet_peer_net`,
//! `lnet_peer_ni`, `lnet/lnet/peer.c`).
//!
//! A peer is one remote node, named by its primary NID; it owns one peer net
//! per network it is reachable on, each holding that node's NIDs (peer NIs)
//! on the net. A NID we send to or hear from becomes a peer NI of a
//! (possibly new, single-NID, non-Multi-Rail) peer. `peer_add` groups NIDs into
//! one Multi-Rail peer, as `lnetctl peer add` does.
//!
//! Health (§8.1, §8.6): a peer NI blamed for a failure loses
//! `health_sensitivity`; if it belongs to a peer with more than one NID and was
//! ever heard from, it joins the recovery queue, which a monitor timer walks
//! every second, pinging each member (backoff 2^n s) until its health is full.

use std::collections::VecDeque;
use std::fmt;

use lnd_api::{errno, NetId, Nid};

use crate::msg::{GenSlab, MsgId};
use crate::ni::Lnet;
use crate::stats::MsgStats;
use crate::time::Instant;

/// Identifies a peer NI: slab index and generation.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct PeerNiId {
    pub(crate) idx: u32,
    pub(crate) gen: u32,
}

/// Identifies a peer: slab index and generation.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct PeerId {
    pub(crate) idx: u32,
    pub(crate) gen: u32,
}

/// A peer net (`struct lnet_peer_net`).
#[derive(Debug)]
pub(crate) struct PeerNet {
    pub(crate) net: NetId,
    pub(crate) peer_nis: Vec<PeerNiId>,
    pub(crate) seq: u64,
    pub(crate) sel_priority: u32,
}

/// A peer (`struct lnet_peer`).
#[derive(Debug)]
pub(crate) struct Peer {
    pub(crate) primary_nid: Nid,
    pub(crate) multi_rail: bool,
    /// Created by `peer add` (not discovered or implied by traffic).
    pub(crate) configured: bool,
    pub(crate) nets: Vec<PeerNet>,
    pub(crate) seq: u64,
    /// The last ping buffer this peer pushed to us (discovery push).
    pub(crate) pushed: Option<crate::ping::PingInfo>,
    /// `lp_state` (lnetctl.md §5.4); MULTI_RAIL and CONFIGURED mirror
    /// `multi_rail` and `configured`.
    pub(crate) state: PeerState,
    /// Order in which the primary NID was locked (0: not locked); an
    /// earlier lock wins a conflict (§9.6).
    pub(crate) lock_seq: u64,
    /// Discovery bookkeeping (§9).
    pub(crate) disc: crate::discovery::PeerDisc,
}

/// The peer state bitmask (`lp_state`, semantics §9.1, lnetctl.md §5.4).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct PeerState(pub u32);

#[allow(missing_docs)]
impl PeerState {
    pub const MULTI_RAIL: u32 = 1 << 0;
    pub const NO_DISCOVERY: u32 = 1 << 1;
    pub const ROUTER_ENABLED: u32 = 1 << 2;
    pub const CONFIGURED: u32 = 1 << 3;
    pub const DISCOVERED: u32 = 1 << 4;
    pub const REDISCOVER: u32 = 1 << 5;
    pub const DISCOVERING: u32 = 1 << 6;
    pub const DATA_PRESENT: u32 = 1 << 7;
    pub const NIDS_UPTODATE: u32 = 1 << 8;
    pub const PING_SENT: u32 = 1 << 9;
    pub const PUSH_SENT: u32 = 1 << 10;
    pub const PING_FAILED: u32 = 1 << 11;
    pub const PUSH_FAILED: u32 = 1 << 12;
    pub const FORCE_PING: u32 = 1 << 13;
    pub const FORCE_PUSH: u32 = 1 << 14;
    pub const RTR_NI_FORCE_DEL: u32 = 1 << 15;
    pub const RTR_DISCOVERY: u32 = 1 << 16;
    pub const RTR_DISCOVERED: u32 = 1 << 17;
    pub const MARK_DELETION: u32 = 1 << 18;
    pub const MARK_DELETED: u32 = 1 << 19;
    pub const LOCK_PRIMARY: u32 = 1 << 20;
    pub const BAD_CONFIG: u32 = 1 << 21;
}

impl PeerState {
    /// Whether any of `bits` is set.
    pub fn has(self, bits: u32) -> bool {
        self.0 & bits != 0
    }
    pub(crate) fn set(&mut self, bits: u32) {
        self.0 |= bits;
    }
    pub(crate) fn clear(&mut self, bits: u32) {
        self.0 &= !bits;
    }
    pub(crate) fn assign(&mut self, bits: u32, on: bool) {
        if on {
            self.set(bits)
        } else {
            self.clear(bits)
        }
    }
}

/// A peer NI (`struct lnet_peer_ni`).
#[derive(Debug)]
pub(crate) struct PeerNi {
    pub(crate) nid: Nid,
    pub(crate) peer: PeerId,
    /// `lpni_txcredits`: negative = messages waiting.
    pub(crate) tx_credits: i32,
    /// `lpni_mintxcredits`.
    pub(crate) min_tx_credits: i32,
    /// The net's `peer_credits` when the peer NI was created.
    pub(crate) max_tx_credits: i32,
    /// `lpni_txqnob`: bytes queued or in flight (payload + 72 per message).
    pub(crate) txqnob: u64,
    /// Messages waiting for a credit, FIFO.
    pub(crate) queue: VecDeque<MsgId>,
    /// `lpni_healthv`, 0..=1000.
    pub(crate) health_value: u32,
    /// `ns_status` as last reported or inferred.
    pub(crate) up: bool,
    pub(crate) last_alive: Option<Instant>,
    pub(crate) seq: u64,
    pub(crate) sel_priority: u32,
    /// Preferred local NIDs (`lpni_pref`).
    pub(crate) pref_nids: Vec<Nid>,
    /// `pref_nids` was set by a UDSP NID-pair rule (not the single-rail
    /// preference of §6.7).
    pub(crate) pref_udsp: bool,
    /// The router descriptor of the UDSP router rule that applies, if any.
    pub(crate) pref_rte: Option<std::sync::Arc<crate::nid::NidDescr>>,
    pub(crate) stats: MsgStats,
}

/// Recovery state of a peer NI (`lpni_ping_count`, `lpni_next_ping`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Recovery {
    pub(crate) ping_count: u32,
    pub(crate) next_ping: Instant,
    pub(crate) outstanding: Option<crate::ping::PingId>,
}

/// Errors of peer management.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PeerError {
    /// A NID already belongs to another peer.
    #[error("peer NI {nid:?}: already belongs to peer {owner:?}")]
    NidInUse {
        /// The NID.
        nid: Nid,
        /// Its peer's primary NID.
        owner: Nid,
    },
    /// No such peer.
    #[error("peer {0:?}: no such peer")]
    Unknown(Nid),
    /// A NID is not usable for a peer.
    #[error("peer NI {0:?}: not a usable peer NID (any NID, 0@lo, or one of our own)")]
    BadNid(Nid),
    /// The Multi-Rail setting conflicts with the configured peer's, or a
    /// non-Multi-Rail peer was given more than its primary NID.
    #[error("peer {primary:?}: is configured with Multi-Rail {multi_rail} (delete it first to change that; a non-Multi-Rail peer has only its primary NID)")]
    MultiRail {
        /// The peer's primary NID.
        primary: Nid,
        /// Its Multi-Rail setting.
        multi_rail: bool,
    },
    /// The NID given as primary is not the peer's primary NID.
    #[error("peer NI {nid:?}: is not the primary NID of its peer (the primary is {primary:?})")]
    NotPrimary {
        /// The NID given.
        nid: Nid,
        /// The peer's primary NID.
        primary: Nid,
    },
}

impl PeerError {
    /// The errno upstream reports (positive).
    pub fn errno(&self) -> i32 {
        match self {
            PeerError::NidInUse { .. } => errno::EEXIST,
            PeerError::Unknown(_) => errno::ENOENT,
            PeerError::BadNid(_) => errno::EINVAL,
            PeerError::MultiRail { .. } => errno::EPERM,
            PeerError::NotPrimary { .. } => errno::ENODEV,
        }
    }
}

/// The peer tables.
#[derive(Debug, Default)]
pub(crate) struct PeerTable {
    pub(crate) peers: GenSlab<Peer>,
    pub(crate) nis: GenSlab<PeerNi>,
    pub(crate) by_nid: crate::hash::FastMap<Nid, PeerNiId>,
    /// Peers in creation order (for stable listing).
    pub(crate) order: Vec<PeerId>,
    /// The peer NI recovery queue (§8.6).
    pub(crate) recovery: std::collections::BTreeMap<PeerNiId, Recovery>,
    /// The local NI recovery queue (§8.6).
    pub(crate) local_recovery: std::collections::BTreeMap<crate::ni::NiId, Recovery>,
    /// When the monitor is armed, if it is.
    pub(crate) monitor_at: Option<Instant>,
    /// Counter giving each lock of a primary NID its order.
    pub(crate) lock_seq: u64,
    /// Peers queued for discovery (§9.2), in order.
    pub(crate) disc_queue: VecDeque<PeerId>,
    /// UDSP rules exist: new peer NIs are noted in `udsp_fresh`.
    pub(crate) udsp_on: bool,
    /// Peer NIs created since the rules were last applied ([`crate::udsp`]).
    pub(crate) udsp_fresh: Vec<PeerNiId>,
    /// The peer NI last found by NID (see [`PeerTable::by_nid_cached`]).
    /// Set by the `&mut` lookups only (the engine stays `Sync`).
    last_found: Option<(Nid, PeerNiId)>,
}

impl PeerTable {
    pub(crate) fn get(&self, id: PeerNiId) -> Option<&PeerNi> {
        self.nis.get(id.idx, id.gen)
    }

    pub(crate) fn get_mut(&mut self, id: PeerNiId) -> Option<&mut PeerNi> {
        self.nis.get_mut(id.idx, id.gen)
    }

    pub(crate) fn peer(&self, id: PeerId) -> Option<&Peer> {
        self.peers.get(id.idx, id.gen)
    }

    pub(crate) fn lookup(&self, nid: &Nid) -> Option<PeerNiId> {
        self.by_nid_cached(nid)
    }

    /// `by_nid[nid]`, through a one-entry cache: a message's peer NI is
    /// looked up several times (the receive, the peer's primary NID, the
    /// reply's send), each a hash of a 20-byte NID otherwise. The entry is
    /// checked, not invalidated: it holds only if its peer NI is still live
    /// with that NID, and a live peer NI is always `by_nid`'s entry for its
    /// NID (both are removed together), so a stale entry is never used.
    pub(crate) fn by_nid_cached(&self, nid: &Nid) -> Option<PeerNiId> {
        if let Some((n, id)) = self.last_found {
            if n == *nid && self.get(id).is_some_and(|p| p.nid == n) {
                return Some(id);
            }
        }
        self.by_nid.get(nid).copied()
    }

    /// [`PeerTable::by_nid_cached`], keeping what it found for the next.
    fn by_nid_remember(&mut self, nid: &Nid) -> Option<PeerNiId> {
        let id = self.by_nid_cached(nid)?;
        self.last_found = Some((*nid, id));
        Some(id)
    }

    /// Finds or creates the peer NI of `nid` (`lnet_peerni_by_nid_locked`);
    /// a new one gets a new single-NID non-MR peer and `credits` credits.
    pub(crate) fn find_or_create(&mut self, nid: Nid, credits: i32) -> PeerNiId {
        if let Some(id) = self.by_nid_remember(&nid) {
            return id;
        }
        let (pidx, pgen) = self.peers.insert(Peer {
            primary_nid: nid,
            multi_rail: false,
            configured: false,
            nets: Vec::new(),
            seq: 0,
            pushed: None,
            state: PeerState::default(),
            lock_seq: 0,
            disc: Default::default(),
        });
        let peer = PeerId {
            idx: pidx,
            gen: pgen,
        };
        self.order.push(peer);
        self.add_ni(peer, nid, credits)
    }

    pub(crate) fn add_ni(&mut self, peer: PeerId, nid: Nid, credits: i32) -> PeerNiId {
        let (idx, gen) = self.nis.insert(PeerNi {
            nid,
            peer,
            tx_credits: credits,
            min_tx_credits: credits,
            max_tx_credits: credits,
            txqnob: 0,
            queue: VecDeque::new(),
            health_value: 1000,
            up: true,
            last_alive: None,
            seq: 0,
            sel_priority: u32::MAX,
            pref_nids: Vec::new(),
            pref_udsp: false,
            pref_rte: None,
            stats: MsgStats::default(),
        });
        let id = PeerNiId { idx, gen };
        self.by_nid.insert(nid, id);
        if self.udsp_on {
            self.udsp_fresh.push(id);
        }
        if let Some(p) = self.peers.get_mut(peer.idx, peer.gen) {
            let net = nid.net();
            match p.nets.iter_mut().find(|n| n.net == net) {
                Some(pn) => pn.peer_nis.push(id),
                None => p.nets.push(PeerNet {
                    net,
                    peer_nis: vec![id],
                    seq: 0,
                    sel_priority: u32::MAX,
                }),
            }
        }
        id
    }

    /// Whether two NIDs belong to the same peer object.
    pub(crate) fn same_peer(&self, a: Nid, b: Nid) -> bool {
        match (self.by_nid.get(&a), self.by_nid.get(&b)) {
            (Some(x), Some(y)) => {
                let px = self.get(*x).map(|p| p.peer);
                px.is_some() && px == self.get(*y).map(|p| p.peer)
            }
            _ => false,
        }
    }

    /// The primary NID of the peer owning `nid`, or `nid` itself.
    pub(crate) fn primary_of(&self, nid: Nid) -> Nid {
        self.by_nid_cached(&nid)
            .and_then(|id| self.get(id))
            .and_then(|pni| self.peer(pni.peer))
            .map_or(nid, |p| p.primary_nid)
    }

    /// Records news of a peer NI; returns `Some(true)` when it went down now.
    pub(crate) fn notify(&mut self, now: Instant, nid: &Nid, alive: bool) -> Option<bool> {
        let id = self.by_nid_remember(nid)?;
        let p = self.get_mut(id)?;
        if alive {
            p.last_alive = Some(now);
        }
        if p.up == alive {
            return Some(false);
        }
        p.up = alive;
        if alive {
            p.health_value = 1000;
        }
        Some(!alive)
    }

    pub(crate) fn reset_stats(&mut self) {
        let ids: Vec<(u32, u32)> = self.nis.iter().map(|(i, g, _)| (i, g)).collect();
        for (i, g) in ids {
            if let Some(p) = self.nis.get_mut(i, g) {
                p.stats = MsgStats::default();
            }
        }
    }
}

/// A read-only view of a peer for `peer show`.
#[derive(Clone, Copy)]
pub struct PeerView<'a> {
    table: &'a PeerTable,
    peer: &'a Peer,
}

impl fmt::Debug for PeerView<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PeerView")
            .field("primary_nid", &self.peer.primary_nid)
            .finish()
    }
}

impl<'a> PeerView<'a> {
    pub(crate) fn peer_ref(&self) -> &'a Peer {
        self.peer
    }
    /// The primary NID.
    pub fn primary_nid(&self) -> Nid {
        self.peer.primary_nid
    }
    /// Whether the peer is Multi-Rail.
    pub fn multi_rail(&self) -> bool {
        self.peer.multi_rail
    }
    /// The state bitmask `peer show -v 3` prints as `peer state`
    /// (lnetctl.md §5.4).
    pub fn state(&self) -> u32 {
        let mut s = self.peer.state;
        s.assign(PeerState::MULTI_RAIL, self.peer.multi_rail);
        s.assign(PeerState::CONFIGURED, self.peer.configured);
        s.0
    }
    /// Whether the primary NID is locked (`--lock_prim`, §9.6).
    pub fn lock_prim(&self) -> bool {
        self.peer.state.has(PeerState::LOCK_PRIMARY)
    }
    /// Whether discovery completed at least once and the NID list is
    /// current.
    pub fn discovered(&self) -> bool {
        self.peer.state.has(PeerState::DISCOVERED) && self.peer.state.has(PeerState::NIDS_UPTODATE)
    }
    /// The last ping buffer the peer pushed to us, if any.
    pub fn pushed_info(&self) -> Option<&'a crate::ping::PingInfo> {
        self.peer.pushed.as_ref()
    }
    /// Whether the peer was configured with `peer add`.
    pub fn configured(&self) -> bool {
        self.peer.configured
    }
    /// The peer's NIs, net by net.
    pub fn peer_nis(&self) -> impl Iterator<Item = PeerNiView<'a>> + 'a {
        let table = self.table;
        self.peer
            .nets
            .iter()
            .flat_map(|n| n.peer_nis.iter().map(move |id| (id, n.sel_priority)))
            .filter_map(move |(id, net_prio)| {
                table.get(*id).map(|pni| PeerNiView {
                    pni,
                    rec: table.recovery.get(id).copied(),
                    net_prio,
                })
            })
    }
}

/// A read-only view of a peer NI for `peer show -v`.
#[derive(Clone, Copy)]
pub struct PeerNiView<'a> {
    pni: &'a PeerNi,
    rec: Option<Recovery>,
    net_prio: u32,
}

impl<'a> PeerNiView<'a> {
    /// The NID.
    pub fn nid(&self) -> Nid {
        self.pni.nid
    }
    /// `up` or `down` as last reported or inferred.
    pub fn is_up(&self) -> bool {
        self.pni.up
    }
    /// Tx credits available (negative = messages waiting).
    pub fn tx_credits(&self) -> i32 {
        self.pni.tx_credits
    }
    /// Low-water mark of `tx_credits`.
    pub fn min_tx_credits(&self) -> i32 {
        self.pni.min_tx_credits
    }
    /// The `peer_credits` it started with.
    pub fn max_tx_credits(&self) -> i32 {
        self.pni.max_tx_credits
    }
    /// Bytes queued or in flight.
    pub fn txqnob(&self) -> u64 {
        self.pni.txqnob
    }
    /// Health value, 0..=1000.
    pub fn health_value(&self) -> u32 {
        self.pni.health_value
    }
    /// Preferred local NIDs.
    pub fn pref_nids(&self) -> &'a [Nid] {
        &self.pni.pref_nids
    }
    /// Message statistics.
    pub fn stats(&self) -> &'a MsgStats {
        &self.pni.stats
    }
    /// Recovery pings sent since it was last heard from (`ping_count`;
    /// 0 when not in recovery).
    pub fn ping_count(&self) -> u32 {
        self.rec.map_or(0, |r| r.ping_count)
    }
    /// When the next recovery ping is due, if it is in recovery.
    pub fn next_ping(&self) -> Option<Instant> {
        self.rec.map(|r| r.next_ping)
    }
    /// When it was last heard from.
    pub fn last_alive(&self) -> Option<Instant> {
        self.pni.last_alive
    }
    /// Selection priority (UDSP `nid priority`; `u32::MAX` when unset).
    pub fn sel_priority(&self) -> u32 {
        self.pni.sel_priority
    }
    /// Selection priority of its peer net (UDSP `net priority`; `u32::MAX`
    /// when unset).
    pub fn net_priority(&self) -> u32 {
        self.net_prio
    }
    /// Whether [`PeerNiView::pref_nids`] was set by a UDSP NID-pair rule.
    pub fn pref_nids_from_udsp(&self) -> bool {
        self.pni.pref_udsp
    }
    /// Messages waiting for a credit on it.
    pub fn queued(&self) -> usize {
        self.pni.queue.len()
    }
}

impl Lnet {
    /// All peers, in creation order.
    pub fn peers(&self) -> impl Iterator<Item = PeerView<'_>> {
        let t = &self.peers;
        t.order
            .iter()
            .filter_map(move |id| t.peer(*id).map(|peer| PeerView { table: t, peer }))
    }

    /// The peer owning `nid`.
    pub fn peer(&self, nid: &Nid) -> Option<PeerView<'_>> {
        let t = &self.peers;
        let pni = t.get(t.lookup(nid)?)?;
        t.peer(pni.peer).map(|peer| PeerView { table: t, peer })
    }

    /// The `peer_credits` of the first NI on `net`, for a new peer NI there.
    pub(crate) fn peer_credits_on(&self, net: NetId) -> i32 {
        self.nis
            .iter()
            .flatten()
            .find(|n| n.net == net)
            .map_or(8, |n| n.tunables.peer_credits.max(1))
    }

    /// A failure blamed on a peer NI: health down by the sensitivity, and the
    /// peer NI goes on the recovery queue if it was ever heard from and
    /// `recovery_limit` allows (§8.1, §8.6). Remote health is not tracked
    /// for a single-NID peer (this node does not route) nor for our own NIDs
    /// (§8.3 step 3).
    pub(crate) fn peer_ni_failed(&mut self, now: Instant, id: PeerNiId) {
        let t = &self.cfg.tunables;
        let (sens, limit, routing) = (t.health_sensitivity, t.recovery_limit, t.routing);
        // A gateway's failures count with its routes' sensitivity (§7).
        let gateway = self.gateway_health_sensitivity(id);
        let sens = gateway.unwrap_or(sens);
        let Some(p) = self.peers.get(id) else {
            return;
        };
        let nids = self.peers.peer(p.peer).map_or(0, |peer| {
            peer.nets.iter().map(|n| n.peer_nis.len()).sum::<usize>()
        });
        // A single-NID peer is tracked only if it is a gateway or this node
        // routes (§8.3 step 3).
        if (nids <= 1 && gateway.is_none() && !routing) || self.is_local_nid(&p.nid) {
            return;
        }
        let Some(p) = self.peers.get_mut(id) else {
            return;
        };
        p.health_value = p.health_value.saturating_sub(sens);
        let Some(last) = p.last_alive else { return };
        let within = limit == 0
            || now <= last.saturating_add(crate::time::Duration::from_secs(u64::from(limit)));
        if within && p.health_value < 1000 {
            self.peers.recovery.entry(id).or_insert(Recovery {
                ping_count: 0,
                next_ping: now,
                outstanding: None,
            });
            self.arm_monitor(now);
        }
    }

    fn arm_monitor(&mut self, now: Instant) {
        if self.peers.monitor_at.is_none() {
            let at = now.saturating_add(crate::time::Duration::from_secs(1));
            self.peers.monitor_at = Some(at);
            self.arm(at, crate::ni::Timer::Monitor);
        }
    }

    /// Queues a local NI below full health for recovery pings (§8.6).
    pub(crate) fn local_recovery_enqueue(&mut self, now: Instant, ni: crate::ni::NiId) {
        self.peers.local_recovery.entry(ni).or_insert(Recovery {
            ping_count: 0,
            next_ping: now,
            outstanding: None,
        });
        self.arm_monitor(now);
    }

    /// `next_ping` after the `count`-th ping: 2^count seconds while the
    /// count is at most floor(log2(max_recovery_ping_interval)), then that
    /// interval (§8.6).
    fn next_ping_wait(&self, count: u32) -> u64 {
        let max_interval = u64::from(self.cfg.tunables.max_recovery_ping_interval.max(1));
        let max_count = 63 - max_interval.leading_zeros();
        if count <= max_count {
            1u64 << count
        } else {
            max_interval
        }
    }

    /// The monitor's pass (`lnet_recover_local_nis`, then
    /// `lnet_recover_peer_nis`): drop recovered or vanished NIs and peer
    /// NIs, ping the others when their time has come. A local NI is pinged
    /// at its own NID through itself; a peer NI at exactly that NID from the
    /// best local NI on its net, and its REPLY, received from that peer NI,
    /// raises its health.
    pub(crate) fn monitor(&mut self, now: Instant) {
        self.peers.monitor_at = None;
        let locals: Vec<crate::ni::NiId> = self.peers.local_recovery.keys().copied().collect();
        for ni in locals {
            let Some(n) = self
                .ni_ref(ni)
                .filter(|n| n.state == crate::ni::NiState::Active)
            else {
                self.peers.local_recovery.remove(&ni);
                continue;
            };
            if n.health_value >= 1000 {
                self.peers.local_recovery.remove(&ni);
                continue;
            }
            if n.fatal {
                // The LND says the link is down: a ping to our own address
                // could still succeed through the host's local route and
                // raise the health of a dead interface. Wait for link up.
                continue;
            }
            let nid = n.nid;
            let Some(r) = self.peers.local_recovery.get(&ni).copied() else {
                continue;
            };
            if r.outstanding.is_some() || now < r.next_ping {
                continue;
            }
            let ping = self.ping_recovery(now, nid, nid);
            let count = r.ping_count + 1;
            let wait = self.next_ping_wait(count);
            if let Some(r) = self.peers.local_recovery.get_mut(&ni) {
                r.outstanding = ping;
                r.ping_count = count;
                r.next_ping = now.saturating_add(crate::time::Duration::from_secs(wait));
            }
        }
        let limit = self.cfg.tunables.recovery_limit;
        let ids: Vec<PeerNiId> = self.peers.recovery.keys().copied().collect();
        for id in ids {
            let Some(p) = self.peers.get(id) else {
                self.peers.recovery.remove(&id);
                continue;
            };
            let expired = limit > 0
                && p.last_alive.is_some_and(|l| {
                    now > l.saturating_add(crate::time::Duration::from_secs(u64::from(limit)))
                });
            if p.health_value >= 1000 || expired {
                self.peers.recovery.remove(&id);
                continue;
            }
            let nid = p.nid;
            let Some(r) = self.peers.recovery.get(&id).copied() else {
                continue;
            };
            if r.outstanding.is_some() || now < r.next_ping {
                continue;
            }
            let Some(src) = self
                .best_ni_on(nid.net(), None)
                .and_then(|n| self.ni_ref(n))
                .map(|n| n.nid)
            else {
                continue;
            };
            let ping = self.ping_recovery(now, nid, src);
            let count = r.ping_count + 1;
            let wait = self.next_ping_wait(count);
            if let Some(r) = self.peers.recovery.get_mut(&id) {
                r.outstanding = ping;
                r.ping_count = count;
                r.next_ping = now.saturating_add(crate::time::Duration::from_secs(wait));
            }
        }
        if !self.peers.recovery.is_empty() || !self.peers.local_recovery.is_empty() {
            self.arm_monitor(now);
        }
    }

    /// A recovery ping finished. A peer NI's outcome already acted on its
    /// health (the REPLY came from it); a local NI's success adds
    /// `health_sensitivity` to it, a failure leaves it queued (pinging
    /// continues at the next interval).
    pub(crate) fn recovery_ping_done(&mut self, now: Instant, ping: crate::ping::PingId, ok: bool) {
        // A success re-arms the next ping at the interval of the reset
        // count (the REPLY was received: ping count 0), so an interface
        // that came back climbs to 1000 in about ten pings, not in one
        // `max_recovery_ping_interval` per step.
        let soon = now.saturating_add(crate::time::Duration::from_secs(1));
        let mut healed = None;
        for r in self.peers.recovery.values_mut() {
            if r.outstanding == Some(ping) {
                r.outstanding = None;
                if ok && r.ping_count == 0 {
                    r.next_ping = r.next_ping.min(soon);
                }
            }
        }
        for (ni, r) in self.peers.local_recovery.iter_mut() {
            if r.outstanding == Some(ping) {
                r.outstanding = None;
                healed = Some(*ni);
                if ok && r.ping_count == 0 {
                    r.next_ping = r.next_ping.min(soon);
                }
            }
        }
        if let (Some(ni), true) = (healed, ok) {
            let sens = self.cfg.tunables.health_sensitivity;
            if let Some(v) = self.ni_ref(ni).map(|n| n.health_value) {
                self.ni_health_to(now, ni, v.saturating_add(sens));
            }
        }
    }

    /// Sets a peer NI's health value (`lnetctl peer set --health`), clamped
    /// to 0..=1000; below 1000 it joins the recovery queue.
    pub fn peer_ni_set_health(
        &mut self,
        now: Instant,
        nid: &Nid,
        value: u32,
    ) -> Result<(), PeerError> {
        let id = self.peers.lookup(nid).ok_or(PeerError::Unknown(*nid))?;
        let p = self.peers.get_mut(id).ok_or(PeerError::Unknown(*nid))?;
        p.health_value = value.min(1000);
        if p.health_value < 1000 {
            self.peers.recovery.entry(id).or_insert(Recovery {
                ping_count: 0,
                next_ping: now,
                outstanding: None,
            });
            self.arm_monitor(now);
        }
        Ok(())
    }

    /// Peer NIs waiting for recovery, with their ping counts (`lnetctl debug recovery --peer`).
    pub fn peer_recovery_queue(&self) -> Vec<(Nid, u32)> {
        self.peers
            .recovery
            .iter()
            .filter_map(|(id, r)| self.peers.get(*id).map(|p| (p.nid, r.ping_count)))
            .collect()
    }

    /// Finds or creates the peer NI of `nid` with its net's credits.
    pub(crate) fn peer_ni_for(&mut self, nid: Nid) -> PeerNiId {
        let c = self.peer_credits_on(nid.net());
        let id = self.peers.find_or_create(nid, c);
        self.udsp_settle();
        id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The one-entry cache of NID lookups answers only for a live peer NI
    /// with that NID: after the peer NI goes (and a new one comes for the
    /// same NID, or another NID is looked up) the table's answer is the
    /// current one, never the remembered one.
    #[test]
    fn nid_lookups_never_answer_a_removed_peer_ni() {
        let net = NetId::new(2, 0);
        let (x, y) = (Nid::new4(net, 1), Nid::new4(net, 2));
        let mut t = PeerTable::default();
        let a = t.find_or_create(x, 8);
        assert_eq!(t.find_or_create(x, 8), a);
        assert_eq!(t.lookup(&x), Some(a));
        // Removed as peer_cfg removes a peer NI: its slot and its NID.
        let gone = t.nis.remove(a.idx, a.gen).expect("live");
        t.by_nid.remove(&gone.nid);
        assert_eq!(t.lookup(&x), None);
        assert_eq!(t.primary_of(x), x);
        let b = t.find_or_create(x, 8);
        assert_ne!(a, b);
        assert_eq!(t.lookup(&x), Some(b));
        let c = t.find_or_create(y, 8);
        assert_ne!(b, c);
        assert_eq!(t.lookup(&x), Some(b));
        assert_eq!(t.lookup(&y), Some(c));
        assert_eq!(t.get(b).map(|p| p.nid), Some(x));
    }
}
