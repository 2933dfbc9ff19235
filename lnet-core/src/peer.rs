//! Peers, peer nets and peer NIs (`struct lnet_peer`, `lnet_peer_net`,
//! `lnet_peer_ni`, `lnet/lnet/peer.c`).
//!
//! A peer is one remote node, named by its primary NID; it owns one peer net
//! per network it is reachable on, each holding that node's NIDs (peer NIs)
//! on the net. A NID we send to or hear from becomes a peer NI of a
//! (possibly new, single-NID, non-Multi-Rail) peer. `peer_add` groups NIDs into
//! one Multi-Rail peer, as `lnetctl peer add` does.

use std::collections::{HashMap, VecDeque};
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
    pub(crate) stats: MsgStats,
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
}

impl PeerError {
    /// The errno upstream reports (positive).
    pub fn errno(&self) -> i32 {
        match self {
            PeerError::NidInUse { .. } => errno::EEXIST,
            PeerError::Unknown(_) => errno::ENOENT,
            PeerError::BadNid(_) => errno::EINVAL,
        }
    }
}

/// The peer tables.
#[derive(Debug, Default)]
pub(crate) struct PeerTable {
    pub(crate) peers: GenSlab<Peer>,
    pub(crate) nis: GenSlab<PeerNi>,
    pub(crate) by_nid: HashMap<Nid, PeerNiId>,
    /// Peers in creation order (for stable listing).
    pub(crate) order: Vec<PeerId>,
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
        self.by_nid.get(nid).copied()
    }

    /// Finds or creates the peer NI of `nid` (`lnet_peerni_by_nid_locked`);
    /// a new one gets a new single-NID non-MR peer and `credits` credits.
    pub(crate) fn find_or_create(&mut self, nid: Nid, credits: i32) -> PeerNiId {
        if let Some(id) = self.by_nid.get(&nid) {
            return *id;
        }
        let (pidx, pgen) = self.peers.insert(Peer {
            primary_nid: nid,
            multi_rail: false,
            configured: false,
            nets: Vec::new(),
            seq: 0,
            pushed: None,
        });
        let peer = PeerId {
            idx: pidx,
            gen: pgen,
        };
        self.order.push(peer);
        self.add_ni(peer, nid, credits)
    }

    fn add_ni(&mut self, peer: PeerId, nid: Nid, credits: i32) -> PeerNiId {
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
            stats: MsgStats::default(),
        });
        let id = PeerNiId { idx, gen };
        self.by_nid.insert(nid, id);
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
        self.by_nid
            .get(&nid)
            .and_then(|id| self.get(*id))
            .and_then(|pni| self.peer(pni.peer))
            .map_or(nid, |p| p.primary_nid)
    }

    /// Records news of a peer NI; returns `Some(true)` when it went down now.
    pub(crate) fn notify(&mut self, now: Instant, nid: &Nid, alive: bool) -> Option<bool> {
        let id = *self.by_nid.get(nid)?;
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
    /// The primary NID.
    pub fn primary_nid(&self) -> Nid {
        self.peer.primary_nid
    }
    /// Whether the peer is Multi-Rail.
    pub fn multi_rail(&self) -> bool {
        self.peer.multi_rail
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
            .flat_map(|n| n.peer_nis.iter())
            .filter_map(move |id| table.get(*id).map(|pni| PeerNiView { pni }))
    }
}

/// A read-only view of a peer NI for `peer show -v`.
#[derive(Clone, Copy)]
pub struct PeerNiView<'a> {
    pni: &'a PeerNi,
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

    /// Finds or creates the peer NI of `nid` with its net's credits.
    pub(crate) fn peer_ni_for(&mut self, nid: Nid) -> PeerNiId {
        let c = self.peer_credits_on(nid.net());
        self.peers.find_or_create(nid, c)
    }

    /// Adds a peer (`lnetctl peer add --prim_nid P --nid N1,N2`): groups the
    /// NIDs into one peer with `primary` as primary NID. NIDs already known as
    /// single-NID peers created by traffic are moved into it.
    pub fn peer_add(
        &mut self,
        primary: Nid,
        nids: &[Nid],
        multi_rail: bool,
    ) -> Result<(), PeerError> {
        for n in std::iter::once(&primary).chain(nids) {
            if n.is_any() || n.net() == NetId::LO || self.is_local_nid(n) {
                return Err(PeerError::BadNid(*n));
            }
        }
        // The peer that will own everything: the primary's, else a new one.
        let target = match self.peers.lookup(&primary) {
            Some(id) => self.peers.get(id).map(|p| p.peer),
            None => None,
        };
        for n in nids {
            if let Some(id) = self.peers.lookup(n) {
                let owner = self.peers.get(id).map(|p| p.peer);
                if owner != target {
                    let single = owner.and_then(|o| self.peers.peer(o)).is_some_and(|p| {
                        !p.configured && p.nets.iter().map(|n| n.peer_nis.len()).sum::<usize>() == 1
                    });
                    if !single {
                        let owner_nid = owner
                            .and_then(|o| self.peers.peer(o))
                            .map_or(*n, |p| p.primary_nid);
                        return Err(PeerError::NidInUse {
                            nid: *n,
                            owner: owner_nid,
                        });
                    }
                }
            }
        }
        let pni = self.peer_ni_for(primary);
        let Some(peer) = self.peers.get(pni).map(|p| p.peer) else {
            return Err(PeerError::Unknown(primary));
        };
        for n in nids {
            if *n == primary {
                continue;
            }
            if let Some(old) = self.peers.lookup(n) {
                let old_peer = self.peers.get(old).map(|p| p.peer);
                if old_peer == Some(peer) {
                    continue;
                }
                self.move_peer_ni(old, peer);
            } else {
                let c = self.peer_credits_on(n.net());
                self.peers.add_ni(peer, *n, c);
            }
        }
        let mut pnis = Vec::new();
        if let Some(p) = self.peers.peers.get_mut(peer.idx, peer.gen) {
            p.multi_rail = multi_rail;
            p.configured = true;
            p.primary_nid = primary;
            pnis = p
                .nets
                .iter()
                .flat_map(|n| n.peer_nis.iter().copied())
                .collect();
        }
        if multi_rail {
            // A Multi-Rail peer has no single preferred NI (§6.7).
            for id in pnis {
                if let Some(pn) = self.peers.get_mut(id) {
                    pn.pref_nids.clear();
                }
            }
        }
        Ok(())
    }

    /// Moves a single-NID peer's only peer NI into `to` (the old peer goes).
    fn move_peer_ni(&mut self, id: PeerNiId, to: PeerId) {
        let Some(old_peer) = self.peers.get(id).map(|p| p.peer) else {
            return;
        };
        let nid = match self.peers.get_mut(id) {
            Some(p) => {
                p.peer = to;
                p.nid
            }
            None => return,
        };
        if let Some(old) = self.peers.peers.remove(old_peer.idx, old_peer.gen) {
            drop(old);
            self.peers.order.retain(|p| *p != old_peer);
        }
        if let Some(p) = self.peers.peers.get_mut(to.idx, to.gen) {
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
    }

    /// Deletes a peer and its peer NIs (`lnetctl peer del --prim_nid P`);
    /// messages waiting on them are failed.
    pub fn peer_del(&mut self, now: Instant, primary: Nid) -> Result<(), PeerError> {
        let pni = self
            .peers
            .lookup(&primary)
            .ok_or(PeerError::Unknown(primary))?;
        let peer = self
            .peers
            .get(pni)
            .map(|p| p.peer)
            .ok_or(PeerError::Unknown(primary))?;
        let Some(p) = self.peers.peers.remove(peer.idx, peer.gen) else {
            return Err(PeerError::Unknown(primary));
        };
        self.peers.order.retain(|x| *x != peer);
        let fail =
            lnd_api::Completion::failed(errno::ENETDOWN, lnd_api::HealthStatus::LOCAL_ABORTED);
        for id in p.nets.iter().flat_map(|n| n.peer_nis.iter()) {
            if let Some(pn) = self.peers.nis.remove(id.idx, id.gen) {
                self.peers.by_nid.remove(&pn.nid);
                for m in pn.queue {
                    if let Some(msg) = self.msgs.get_mut(m.idx, m.gen) {
                        msg.peer_credit = false;
                        msg.peer_ni = None;
                    }
                    self.finalize(now, m, fail);
                }
            }
        }
        self.flush(now);
        Ok(())
    }
}
