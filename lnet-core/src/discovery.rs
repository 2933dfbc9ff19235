//! Peer discovery (`lnet_peer_discovery()` and friends in
//! `lnet/lnet/peer.c`, semantics §9).
//!
//! Discovery learns a peer's NIDs and Multi-Rail capability by pinging it
//! (a GET of its ping buffer), merges what it learnt into one peer object
//! (§9.5), and pushes our own ping buffer to Multi-Rail peers (a PUT on the
//! same portal and match bits) so they learn ours.
//!
//! It is a state machine per peer over the state bits of
//! [`crate::peer::PeerState`]; what it does next is the first applicable
//! action of §9.3, taken by `Lnet::discovery_run` for each queued peer:
//!
//! | state | action |
//! |---|---|
//! | MARK_DELETION | delete the peer and re-create it for its primary NID (discovered from scratch) |
//! | DATA_PRESENT | merge the ping or push data |
//! | PING_FAILED / PUSH_FAILED | clear it, force another try; finish with the error if there is one |
//! | FORCE_PING or not NIDS_UPTODATE | send a ping (PING_SENT) and wait |
//! | needs push | send a push (PUSH_SENT) and wait |
//! | otherwise | DISCOVERED, finish |
//!
//! Finishing clears DISCOVERING, sets REDISCOVER on error, reports to the
//! `discover` callers ([`crate::Event::DiscoverDone`]) and sends the
//! messages parked on the peer (or fails them with the error).
//!
//! Triggers (§9.2): a PUT or GET (not on portal 0) to a peer that is not up
//! to date parks the message and queues the peer, also when discovery is
//! disabled here (the first contact then performs one ping, and the peer is
//! marked NO_DISCOVERY); [`Lnet::discover`]; an incoming push; the router
//! checker (with discovery on, a gateway is checked by discovering it:
//! RTR_DISCOVERY, the ping to the gateway's NID on our net with
//! `router_ping_timeout`; the gateway's ping replies and pushes recompute its
//! routes, and its discovery's outcome is the gateway's aliveness, §7.2); a
//! change of our ping buffer (NI added, deleted, or its status changed:
//! pushed to every Multi-Rail peer that has not acknowledged it, §9.7; while
//! we have NIs a peer has not heard of, the push leaves from the NID it last
//! pushed to, so it is not ignored as coming from an unknown NID).
//!
//! The queue is worked through at the end of every engine call (from
//! `flush`), never from inside a completion, so parked messages are sent
//! with a clean stack. The up-to-date test on the message path reads state
//! bits only (no allocation).

use std::collections::HashMap;
use std::fmt;

use lnd_api::{errno, IoBuf, Nid, Payload};

use crate::event::{Event, EventKind, MdEvent};
use crate::md::{MdHandle, MdOptions, MdOwner, MdSpec, Threshold, Unlink};
use crate::msg::MsgId;
use crate::ni::{Lnet, NiState};
use crate::nid::{ProcessId, LNET_PID_LUSTRE};
use crate::peer::{PeerId, PeerState};
use crate::ping::{PingError, PingId, PingInfo};
use crate::send::AckReq;
use crate::time::Instant;
use crate::wire::{
    LNET_PING_FEAT_DISCOVERY, LNET_PING_FEAT_MULTI_RAIL, LNET_PING_FEAT_RTE_DISABLED,
    LNET_PROTO_PING_MATCHBITS,
};

/// Identifies one [`Lnet::discover`] request.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct DiscoverId(pub u64);

impl fmt::Display for DiscoverId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "discover {}", self.0)
    }
}

/// Discovery bookkeeping of one peer.
#[derive(Debug, Default)]
pub(crate) struct PeerDisc {
    /// Messages waiting for this peer's discovery, in order.
    pub(crate) parked: Vec<MsgId>,
    /// `discover` calls waiting for it.
    pub(crate) waiters: Vec<DiscoverId>,
    /// The ping in flight.
    pub(crate) ping: Option<PingId>,
    /// Where and with which timeout the next ping goes, when not to the
    /// primary NID with `transaction_timeout`: a router check pings the
    /// gateway's NID on our net with `router_ping_timeout` (§7.3).
    pub(crate) ping_to: Option<(Nid, crate::time::Duration)>,
    /// Our NID the peer last pushed to, and its NID it pushed from: our
    /// pushes go back between the same pair (§9.4), so they leave from a NID
    /// the peer knows (a push from a NID it has not heard of yet, such as a
    /// just-added NI, would be ignored).
    pub(crate) push_pair: Option<(Nid, Nid)>,
    /// The push in flight: its MD and our sequence number it carries.
    pub(crate) push: Option<(MdHandle, u32)>,
    /// Our ping-buffer sequence number the peer acknowledged (0: none).
    pub(crate) acked_seq: u32,
    /// The peer's sequence number as last recorded.
    pub(crate) peer_seq: u32,
    /// Ping reply or push data waiting to be merged (DATA_PRESENT).
    pub(crate) data: Option<PingInfo>,
    /// The error of the last failed ping or push (negative errno; 0: none).
    pub(crate) error: i32,
    /// The error the last discovery finished with (negative errno; 0: ok).
    pub(crate) last_error: i32,
}

/// Discovery tables of the engine.
#[derive(Debug, Default)]
pub(crate) struct DiscTable {
    next: u64,
    /// Pings sent for discovery, by peer.
    pings: HashMap<PingId, PeerId>,
    /// Set while the queue is being worked through.
    running: bool,
    /// Our `peer_discovery_disabled` as last seen (a change pushes to all
    /// Multi-Rail peers, §9.7).
    disabled_seen: bool,
    /// Our ping-buffer sequence number as last seen (a change pushes).
    seq_seen: u32,
}

/// How many passes over one peer a single [`Lnet::discovery_run`] takes at
/// most (each pass takes one action; a peer waiting for a ping or push
/// leaves the queue).
const MAX_STEPS: usize = 16;

impl Lnet {
    /// Discovers the peer owning `nid` (`lnetctl discover [--force] NID`):
    /// pings it unless it is up to date (always with `force`, which also
    /// forces a push), merges its NIDs and pushes ours. The result comes as
    /// [`Event::DiscoverDone`] with the peer's primary NID or a negative
    /// errno. `0@lo` and our own NIDs are done at once.
    pub fn discover(
        &mut self,
        now: Instant,
        nid: Nid,
        force: bool,
    ) -> Result<DiscoverId, crate::ApiError> {
        if nid.is_any() {
            return Err(crate::ApiError::Invalid(
                "cannot discover LNET_NID_ANY (give a peer NID)".into(),
            ));
        }
        self.disc.next += 1;
        let id = DiscoverId(self.disc.next);
        if self.is_local_nid(&nid) {
            self.events.push_back(Event::DiscoverDone {
                id,
                nid,
                result: Ok(nid),
            });
            return Ok(id);
        }
        let pni = self.peer_ni_for(nid);
        let Some(peer) = self.peers.get(pni).map(|p| p.peer) else {
            return Err(crate::ApiError::Invalid(format!("peer {nid}: not found")));
        };
        if force {
            if let Some(p) = self.peers.peers.get_mut(peer.idx, peer.gen) {
                p.state.set(PeerState::FORCE_PING | PeerState::FORCE_PUSH);
            }
        }
        if self.peer_up_to_date(peer) {
            let prim = self.peers.peer(peer).map_or(nid, |p| p.primary_nid);
            self.events.push_back(Event::DiscoverDone {
                id,
                nid,
                result: Ok(prim),
            });
            return Ok(id);
        }
        if let Some(p) = self.peers.peers.get_mut(peer.idx, peer.gen) {
            p.disc.waiters.push(id);
        }
        self.discovery_queue(peer);
        self.flush(now);
        Ok(id)
    }

    /// Whether a peer is up to date (§9.1): no discovery needed before
    /// sending to it. Bits only: this runs for every request.
    pub(crate) fn peer_up_to_date(&self, peer: PeerId) -> bool {
        let Some(p) = self.peers.peer(peer) else {
            return false;
        };
        let s = p.state;
        if s.has(
            PeerState::DISCOVERING
                | PeerState::FORCE_PING
                | PeerState::FORCE_PUSH
                | PeerState::REDISCOVER,
        ) {
            return false;
        }
        if self.needs_push(peer) {
            return false;
        }
        s.has(PeerState::DISCOVERED) && s.has(PeerState::NIDS_UPTODATE)
    }

    /// "Needs push" (§9.1).
    fn needs_push(&self, peer: PeerId) -> bool {
        let Some(p) = self.peers.peer(peer) else {
            return false;
        };
        let s = p.state;
        if !p.multi_rail || s.has(PeerState::MARK_DELETED | PeerState::PUSH_SENT) {
            return false;
        }
        if s.has(PeerState::FORCE_PUSH) {
            return true;
        }
        !self.cfg.tunables.peer_discovery_disabled
            && !s.has(PeerState::NO_DISCOVERY)
            && p.disc.acked_seq != self.ping_seq()
    }

    /// The send path's hook (`lnet_initiate_peer_discovery`): a request to
    /// `dest` on `portal` waits for discovery when its peer is not up to
    /// date. Returns the peer to park the message on. Portal 0 (pings and
    /// pushes), our own NIDs and nets we reach neither directly nor through
    /// a route do not wait. A peer behind a gateway is discovered like any
    /// other (§9.2): its ping and push cross the route.
    pub(crate) fn discovery_gate(&mut self, dest: Nid, portal: u32) -> Option<PeerId> {
        if portal == 0 || dest.is_any() || self.is_local_nid(&dest) {
            return None;
        }
        let net = dest.net();
        let reachable = self
            .nis
            .iter()
            .flatten()
            .any(|n| n.net == net && n.state == NiState::Active)
            || self.route_dist(&dest).is_some();
        if !reachable {
            return None;
        }
        let pni = self.peer_ni_for(dest);
        let peer = self.peers.get(pni)?.peer;
        if self.peer_up_to_date(peer) {
            None
        } else if self.only_push_pending(peer) {
            // Our news for the peer (a push) does not change what we know
            // of it: its traffic goes on while the push is out.
            self.discovery_queue(peer);
            None
        } else {
            Some(peer)
        }
    }

    /// A discovered peer whose NIDs are up to date and whose only pending
    /// discovery work is a push of our ping buffer (an NI of ours changed
    /// state). §9.2 parks requests behind it, as upstream does; but a push
    /// lost with the link that failed (bytes already written into a socket
    /// on it) was only noticed at the transaction timeout, and every
    /// request to the peer waited that long: a link cut stopped all
    /// `lst brw` traffic over the surviving link for 150 s.
    fn only_push_pending(&self, peer: PeerId) -> bool {
        let Some(p) = self.peers.peer(peer) else {
            return false;
        };
        let s = p.state;
        s.has(PeerState::DISCOVERED)
            && s.has(PeerState::NIDS_UPTODATE)
            && !s.has(
                PeerState::FORCE_PING
                    | PeerState::REDISCOVER
                    | PeerState::PING_SENT
                    | PeerState::PING_FAILED
                    | PeerState::DATA_PRESENT
                    | PeerState::MARK_DELETION
                    | PeerState::MARK_DELETED,
            )
            && (s.has(PeerState::PUSH_SENT | PeerState::FORCE_PUSH) || self.needs_push(peer))
    }

    /// Parks a committed request on a peer being discovered.
    pub(crate) fn discovery_park(&mut self, peer: PeerId, m: MsgId) {
        if let Some(p) = self.peers.peers.get_mut(peer.idx, peer.gen) {
            p.disc.parked.push(m);
        }
        self.discovery_queue(peer);
    }

    /// Queues a peer for discovery (DISCOVERING).
    pub(crate) fn discovery_queue(&mut self, peer: PeerId) {
        let Some(p) = self.peers.peers.get_mut(peer.idx, peer.gen) else {
            return;
        };
        p.state.set(PeerState::DISCOVERING);
        if !self.peers.disc_queue.contains(&peer) {
            self.peers.disc_queue.push_back(peer);
        }
    }

    /// Whether [`Lnet::discovery_run`] has work (and is not running).
    pub(crate) fn discovery_pending(&self) -> bool {
        !self.disc.running
            && (!self.peers.disc_queue.is_empty()
                || self.cfg.tunables.peer_discovery_disabled != self.disc.disabled_seen
                || self.disc.seq_seen != self.ping_seq())
    }

    /// Works through the discovery queue (§9.3); called at the end of every
    /// engine call. Not re-entered.
    pub(crate) fn discovery_run(&mut self, now: Instant) {
        if self.disc.running {
            return;
        }
        self.disc.running = true;
        self.discovery_our_changes();
        while let Some(peer) = self.peers.disc_queue.pop_front() {
            for _ in 0..MAX_STEPS {
                if !self.discovery_step(now, peer) {
                    break;
                }
            }
        }
        self.disc.running = false;
    }

    /// One action for a peer (§9.3); true when the peer wants another step
    /// at once.
    fn discovery_step(&mut self, now: Instant, peer: PeerId) -> bool {
        let Some(p) = self.peers.peer(peer) else {
            return false;
        };
        let s = p.state;
        if !s.has(PeerState::DISCOVERING) {
            return false;
        }
        if s.has(PeerState::MARK_DELETION) {
            return self.discovery_delete(now, peer);
        }
        if s.has(PeerState::DATA_PRESENT) {
            self.discovery_merge(now, peer);
            return true;
        }
        if s.has(PeerState::PING_FAILED | PeerState::PUSH_FAILED) {
            let ping = s.has(PeerState::PING_FAILED);
            let err = p.disc.error;
            if let Some(p) = self.peers.peers.get_mut(peer.idx, peer.gen) {
                p.state
                    .clear(PeerState::PING_FAILED | PeerState::PUSH_FAILED);
                p.state.set(if ping {
                    PeerState::FORCE_PING
                } else {
                    PeerState::FORCE_PUSH
                });
                p.disc.error = 0;
            }
            if err != 0 {
                self.discovery_finish(now, peer, err);
                return false;
            }
            return true;
        }
        if s.has(PeerState::PING_SENT | PeerState::PUSH_SENT) {
            // Waiting for the reply or the ACK.
            return false;
        }
        if s.has(PeerState::FORCE_PING) || !s.has(PeerState::NIDS_UPTODATE) {
            self.discovery_send_ping(now, peer);
            return false;
        }
        if self.needs_push(peer) {
            self.discovery_send_push(now, peer);
            return false;
        }
        if let Some(p) = self.peers.peers.get_mut(peer.idx, peer.gen) {
            p.state.set(PeerState::DISCOVERED);
            p.state.clear(PeerState::REDISCOVER | PeerState::FORCE_PUSH);
        }
        self.discovery_finish(now, peer, 0);
        false
    }

    /// Discovery of `peer` is over: report, then send (or fail) what waited.
    fn discovery_finish(&mut self, now: Instant, peer: PeerId, err: i32) {
        let Some(p) = self.peers.peers.get_mut(peer.idx, peer.gen) else {
            return;
        };
        p.state.clear(PeerState::DISCOVERING);
        if err != 0 {
            p.state.set(PeerState::REDISCOVER);
        }
        if p.state.has(PeerState::RTR_DISCOVERY) {
            p.state.clear(PeerState::RTR_DISCOVERY);
            p.state.set(PeerState::RTR_DISCOVERED);
        }
        p.disc.ping_to = None;
        p.disc.last_error = err;
        let prim = p.primary_nid;
        let waiters = std::mem::take(&mut p.disc.waiters);
        let parked = std::mem::take(&mut p.disc.parked);
        for w in waiters {
            let result = if err == 0 { Ok(prim) } else { Err(err) };
            self.discover_report(w, prim, result);
        }
        // A gateway's router bookkeeping (§9.3): dead if discovery failed.
        self.router_discovery_done(peer, err);
        for m in parked {
            self.resume_msg(now, m, -err);
        }
    }

    /// Tells a `discover` caller.
    pub(crate) fn discover_report(&mut self, id: DiscoverId, nid: Nid, result: Result<Nid, i32>) {
        self.events
            .push_back(Event::DiscoverDone { id, nid, result });
    }

    /// A peer object goes: forget its ping and push.
    pub(crate) fn discovery_forget(&mut self, d: &PeerDisc) {
        if let Some(ping) = d.ping {
            self.disc.pings.remove(&ping);
        }
        if let Some((md, _)) = d.push {
            if self.md_live(md).is_some() {
                let _ = self.md_unlink(md);
            }
        }
    }

    /// Our current ping-buffer sequence number.
    pub(crate) fn ping_seq(&self) -> u32 {
        self.ping_info().map_or(0, |i| i.seq)
    }

    // ----- ping (§9.4) -----

    fn discovery_send_ping(&mut self, now: Instant, peer: PeerId) {
        let Some(prim) = self.peers.peer(peer).map(|p| p.primary_nid) else {
            return;
        };
        let mut to = None;
        if let Some(p) = self.peers.peers.get_mut(peer.idx, peer.gen) {
            p.state.clear(PeerState::FORCE_PING);
            p.state.set(PeerState::PING_SENT);
            to = p.disc.ping_to.take();
        }
        let (nid, timeout) = to.unwrap_or_else(|| {
            (
                prim,
                crate::time::Duration::from_secs(u64::from(self.cfg.tunables.transaction_timeout)),
            )
        });
        let target = ProcessId {
            nid,
            pid: LNET_PID_LUSTRE,
        };
        let id = self.ping_next_id();
        self.disc.pings.insert(id, peer);
        if let Some(p) = self.peers.peers.get_mut(peer.idx, peer.gen) {
            p.disc.ping = Some(id);
        }
        // A ping that fails at once is reported through
        // `discovery_ping_done` before this returns.
        match self.ping_start(now, id, target, timeout) {
            Ok(()) => {}
            Err(e) => {
                self.disc.pings.remove(&id);
                if let Some(p) = self.peers.peers.get_mut(peer.idx, peer.gen) {
                    p.disc.ping = None;
                    p.state.clear(PeerState::PING_SENT);
                    p.state.set(PeerState::PING_FAILED);
                    p.disc.error = -e.errno();
                }
                self.discovery_queue(peer);
            }
        }
    }

    /// Whether a finished ping was discovery's; if so, its result is
    /// recorded on the peer (§9.4) and the peer queued.
    pub(crate) fn discovery_ping_done(
        &mut self,
        id: PingId,
        result: &Result<PingInfo, PingError>,
    ) -> bool {
        let Some(peer) = self.disc.pings.remove(&id) else {
            return false;
        };
        let disabled = self.cfg.tunables.peer_discovery_disabled;
        let Some(p) = self.peers.peers.get_mut(peer.idx, peer.gen) else {
            return true;
        };
        if p.disc.ping != Some(id) {
            return true;
        }
        p.disc.ping = None;
        p.state.clear(PeerState::PING_SENT);
        match result {
            Err(e) => {
                p.state.set(PeerState::PING_FAILED);
                p.disc.error = match e {
                    PingError::BadReply { .. } => -errno::EPROTO,
                    e => e.errno(),
                };
            }
            Ok(info) => {
                Self::record_features(p, info, disabled, false);
                if p.multi_rail && info.primary_nid() == Some(p.primary_nid) {
                    p.disc.peer_seq = info.seq;
                }
                p.disc.data = Some(info.clone());
                p.state.set(PeerState::DATA_PRESENT);
                self.router_gateway_info(peer, info, false);
            }
        }
        self.discovery_queue(peer);
        true
    }

    /// The feature bits of a ping reply or push (§9.4): NO_DISCOVERY,
    /// MULTI_RAIL, ROUTER_ENABLED.
    fn record_features(p: &mut crate::peer::Peer, info: &PingInfo, disabled: bool, push: bool) {
        let no_disc = disabled || info.features & LNET_PING_FEAT_DISCOVERY == 0;
        let configured = p.state.has(PeerState::CONFIGURED);
        // MARK_DELETION (§9.4): the peer's discovery went from on to off (a
        // push says so of a peer discovered with discovery; a ping reply of a
        // peer discovered with discovery, or a discovered Multi-Rail one),
        // so what discovery merged must go with the peer object.
        if no_disc && !configured {
            let s = p.state;
            let was_on = !s.has(PeerState::NO_DISCOVERY) && s.has(PeerState::DISCOVERED);
            let mark = if push {
                was_on && !s.has(PeerState::DISCOVERING)
            } else {
                was_on || (p.multi_rail && s.has(PeerState::DISCOVERED))
            };
            if mark {
                p.state.set(PeerState::MARK_DELETION);
            }
        }
        p.state.assign(PeerState::NO_DISCOVERY, no_disc);
        if info.features & LNET_PING_FEAT_MULTI_RAIL != 0 {
            if !configured && !no_disc {
                p.multi_rail = true;
            }
        } else if !configured && p.multi_rail {
            // Multi-Rail vanished: the NIDs merged while it was Multi-Rail
            // would be left behind by a status-only merge; start over.
            p.multi_rail = false;
            if p.state.has(PeerState::DISCOVERED) {
                p.state.set(PeerState::MARK_DELETION);
            }
        }
        p.state.assign(PeerState::MULTI_RAIL, p.multi_rail);
        p.state.assign(
            PeerState::ROUTER_ENABLED,
            info.features & LNET_PING_FEAT_RTE_DISABLED == 0,
        );
    }

    // ----- push (§9.4, §9.7) -----

    fn discovery_send_push(&mut self, now: Instant, peer: PeerId) {
        let Some((prim, pair, acked)) = self
            .peers
            .peer(peer)
            .map(|p| (p.primary_nid, p.disc.push_pair, p.disc.acked_seq))
        else {
            return;
        };
        // When we have NIs the peer has not heard of (added after the buffer
        // it acknowledged), the push goes back between the pair of its last
        // push, so that it does not leave from a NID the peer would ignore;
        // otherwise (and when either end is gone, or after a failed push)
        // the usual selection to the primary NID.
        let unknown_nis = acked != 0
            && self
                .nis
                .iter()
                .flatten()
                .any(|n| n.added_seq > acked && n.net != lnd_api::NetId::LO);
        let (src, dst) = match pair {
            Some((ours, theirs))
                if unknown_nis
                    && self.is_local_nid(&ours)
                    && self.peer_of_nid(&theirs) == Some(peer) =>
            {
                (Some(ours), theirs)
            }
            // No pair: one of the NIs it knows on the primary's net.
            _ if unknown_nis => (
                self.nis
                    .iter()
                    .flatten()
                    .find(|n| n.net == prim.net() && n.added_seq <= acked && n.is_up())
                    .map(|n| n.nid),
                prim,
            ),
            _ => (None, prim),
        };
        let seq = self.ping_seq();
        let bytes = self
            .ping_info()
            .and_then(|i| i.to_vec().ok())
            .unwrap_or_default();
        if let Some(p) = self.peers.peers.get_mut(peer.idx, peer.gen) {
            p.state.clear(PeerState::FORCE_PUSH);
            p.state.set(PeerState::PUSH_SENT);
        }
        let spec = MdSpec::new(
            Payload::single(IoBuf::from_vec(bytes)),
            MdOptions::TRACK_RESPONSE,
            Threshold::Count(2),
        );
        let target = ProcessId {
            nid: dst,
            pid: LNET_PID_LUSTRE,
        };
        let res = self
            .md_bind_owned(spec, Unlink::Unlink, MdOwner::Push(peer))
            .and_then(|md| {
                if let Some(p) = self.peers.peers.get_mut(peer.idx, peer.gen) {
                    p.disc.push = Some((md, seq));
                }
                self.put(
                    now,
                    src,
                    md,
                    AckReq::Ack,
                    target,
                    0,
                    LNET_PROTO_PING_MATCHBITS,
                    0,
                    0,
                )
                .inspect_err(|_| {
                    let _ = self.md_unlink(md);
                })
            });
        if let Err(e) = res {
            if let Some(p) = self.peers.peers.get_mut(peer.idx, peer.gen) {
                p.state.clear(PeerState::PUSH_SENT);
                p.state.set(PeerState::PUSH_FAILED);
                p.disc.push = None;
                p.disc.error = -e.errno();
            }
            self.discovery_queue(peer);
        }
    }

    /// An event of a push's MD: ACK records the acknowledged sequence
    /// number; a failed SEND or ACK, or the unlink of a push whose ACK never
    /// came, is PUSH_FAILED.
    pub(crate) fn discovery_push_event(&mut self, peer: PeerId, ev: MdEvent) {
        let Some(p) = self.peers.peers.get_mut(peer.idx, peer.gen) else {
            return;
        };
        let Some((md, seq)) = p.disc.push else {
            return;
        };
        if md != ev.md {
            return;
        }
        let failed = match ev.kind {
            EventKind::Ack if ev.status == 0 => {
                p.disc.acked_seq = seq;
                false
            }
            EventKind::Send if ev.status == 0 => return,
            EventKind::Send | EventKind::Ack => true,
            EventKind::Unlink => true,
            _ => return,
        };
        p.disc.push = None;
        p.state.clear(PeerState::PUSH_SENT);
        if failed {
            p.state.set(PeerState::PUSH_FAILED);
            // The next push takes the usual path.
            p.disc.push_pair = None;
            p.disc.error = if ev.status != 0 {
                ev.status
            } else {
                -errno::ETIMEDOUT
            };
        }
        self.discovery_queue(peer);
    }

    /// A push landed in our push buffer (§9.4, incoming): record it on the
    /// sending peer, which must be known, and queue that peer.
    pub(crate) fn discovery_push_received(&mut self, from: Nid, to: Nid, parsed: Option<PingInfo>) {
        let Some(peer) = self.peer_of_nid(&from) else {
            tracing::debug!("push from unknown peer {from} ignored");
            return;
        };
        let disabled = self.cfg.tunables.peer_discovery_disabled;
        let Some(p) = self.peers.peers.get_mut(peer.idx, peer.gen) else {
            return;
        };
        p.disc.push_pair = Some((to, from));
        match parsed {
            Some(info) if info.features & LNET_PING_FEAT_MULTI_RAIL != 0 => {
                Self::record_features(p, &info, disabled, true);
                p.disc.peer_seq = info.seq;
                p.state.clear(PeerState::NIDS_UPTODATE);
                let newer = p.disc.data.as_ref().is_none_or(|d| d.seq <= info.seq);
                if newer {
                    p.disc.data = Some(info.clone());
                }
                p.state.set(PeerState::DATA_PRESENT);
                // A gateway's routes follow its pushed buffer at once (§7.2).
                self.router_gateway_info(peer, &info, true);
                if let Some(p) = self.peers.peers.get_mut(peer.idx, peer.gen) {
                    p.pushed = Some(info);
                }
            }
            // Invalid data or a non-MR sender: look for ourselves.
            _ => p.state.set(PeerState::FORCE_PING),
        }
        self.discovery_queue(peer);
    }

    /// Our ping buffer changed (§9.7): every Multi-Rail peer that has not
    /// acknowledged it is queued for a push; toggling discovery pushes to all.
    fn discovery_our_changes(&mut self) {
        let disabled = self.cfg.tunables.peer_discovery_disabled;
        let toggled = disabled != self.disc.disabled_seen;
        self.disc.disabled_seen = disabled;
        let seq = self.ping_seq();
        if !toggled && seq == self.disc.seq_seen {
            return;
        }
        self.disc.seq_seen = seq;
        // Every Multi-Rail peer, discovered or not (one whose discovery
        // ended with a lost push is pushed too), as upstream's
        // `lnet_push_update_to_peers`; `needs_push` skips the others.
        let mr: Vec<PeerId> = self
            .peers
            .peers
            .iter()
            .filter(|(_, _, p)| p.multi_rail)
            .map(|(idx, gen, _)| PeerId { idx, gen })
            .collect();
        for peer in mr {
            if toggled {
                if let Some(p) = self.peers.peers.get_mut(peer.idx, peer.gen) {
                    p.state.set(PeerState::FORCE_PUSH);
                }
            }
            if self.needs_push(peer) {
                self.discovery_queue(peer);
            }
        }
    }

    // ----- merge (§9.5) -----

    /// Merges the ping or push data of a peer into it.
    fn discovery_merge(&mut self, now: Instant, peer: PeerId) {
        let Some(p) = self.peers.peers.get_mut(peer.idx, peer.gen) else {
            return;
        };
        p.state.clear(PeerState::DATA_PRESENT);
        let Some(info) = p.disc.data.take() else {
            return;
        };
        let no_disc = p.state.has(PeerState::NO_DISCOVERY);
        let configured = p.state.has(PeerState::CONFIGURED);
        let locked = p.state.has(PeerState::LOCK_PRIMARY);
        let reported: Vec<crate::ping::NiStatus> = info
            .all_nis()
            .into_iter()
            .filter(|n| n.nid != Nid::LO_0 && !n.nid.is_any())
            .collect();
        // Statuses of the NIDs we have.
        for st in &reported {
            if let Some(id) = self.peers.lookup(&st.nid) {
                if self.peers.get(id).map(|x| x.peer) == Some(peer) {
                    self.merge_status(now, id, st.is_up());
                }
            }
        }
        if no_disc || !p_multi_rail(self, peer) {
            // Discovery off for this peer, or a single-rail peer: statuses
            // only (§9.5 step 4).
            self.mark_uptodate(peer);
            return;
        }
        let mut peer = peer;
        // 1. The reported primary.
        if let Some(rprim) = reported.first().map(|s| s.nid) {
            let cur = self.peers.peer(peer).map_or(rprim, |p| p.primary_nid);
            if cur != rprim && !locked && !configured {
                match self.peer_of_nid(&rprim) {
                    Some(other) if other != peer => {
                        let other_cfg = self
                            .peers
                            .peer(other)
                            .is_some_and(|o| o.state.has(PeerState::CONFIGURED));
                        if other_cfg || configured {
                            // Fold ours into the configured one when we may.
                            if other_cfg && !configured {
                                self.consolidate(peer, other);
                                peer = other;
                            }
                        } else {
                            self.consolidate(other, peer);
                            self.set_primary(peer, rprim);
                        }
                    }
                    Some(_) => self.set_primary(peer, rprim),
                    None if !configured => {
                        let c = self.peer_credits_on(rprim.net());
                        self.peers.add_ni(peer, rprim, c);
                        self.set_primary(peer, rprim);
                    }
                    None => {}
                }
            }
        }
        let configured = self
            .peers
            .peer(peer)
            .is_some_and(|p| p.state.has(PeerState::CONFIGURED));
        if !configured {
            // 3. Add what is reported, drop what is not.
            for st in &reported {
                match self.peers.lookup(&st.nid) {
                    Some(id) => {
                        let owner = self.peers.get(id).map(|x| x.peer);
                        if owner == Some(peer) {
                            continue;
                        }
                        let owner_cfg = owner
                            .and_then(|o| self.peers.peer(o))
                            .is_some_and(|o| o.state.has(PeerState::CONFIGURED));
                        if owner_cfg {
                            tracing::debug!(
                                "discovery: {} belongs to a configured peer, not moved",
                                st.nid
                            );
                            continue;
                        }
                        self.move_peer_ni(id, peer);
                        self.merge_status(now, id, st.is_up());
                    }
                    None => {
                        if self.is_local_nid(&st.nid) {
                            continue;
                        }
                        let c = self.peer_credits_on(st.nid.net());
                        let id = self.peers.add_ni(peer, st.nid, c);
                        self.merge_status(now, id, st.is_up());
                    }
                }
            }
            let gone: Vec<Nid> = self
                .peer_nids(peer)
                .into_iter()
                .filter(|n| !reported.iter().any(|s| s.nid == *n))
                .collect();
            for n in gone {
                if let Some(id) = self.peers.lookup(&n) {
                    self.peer_ni_remove(now, id);
                }
            }
            // §5.2: the set and order follow the reply.
            self.order_like(peer, &reported);
        } else {
            // A configured peer keeps its NIDs; the unreported ones are down.
            for n in self.peer_nids(peer) {
                if !reported.iter().any(|s| s.nid == n) {
                    if let Some(id) = self.peers.lookup(&n) {
                        self.merge_status(now, id, false);
                    }
                }
            }
        }
        self.peers.primary_first(peer);
        self.mark_uptodate(peer);
    }

    fn mark_uptodate(&mut self, peer: PeerId) {
        if let Some(p) = self.peers.peers.get_mut(peer.idx, peer.gen) {
            p.state.set(PeerState::NIDS_UPTODATE);
        }
    }

    /// A reported status for one peer NI: UP→DOWN is a failure; the first
    /// UP of a NID never heard from sets full health.
    fn merge_status(&mut self, now: Instant, id: crate::peer::PeerNiId, up: bool) {
        let Some(x) = self.peers.get_mut(id) else {
            return;
        };
        let was = x.up;
        x.up = up;
        if up && x.last_alive.is_none() {
            x.health_value = 1000;
        }
        if was && !up {
            self.peer_ni_failed(now, id);
        }
    }

    fn set_primary(&mut self, peer: PeerId, nid: Nid) {
        if let Some(p) = self.peers.peers.get_mut(peer.idx, peer.gen) {
            p.primary_nid = nid;
        }
    }

    /// Moves every peer NI of `from` into `into` (`from` goes; its parked
    /// messages and waiters move along).
    fn consolidate(&mut self, from: PeerId, into: PeerId) {
        let ids: Vec<crate::peer::PeerNiId> = self
            .peers
            .peer(from)
            .map(|p| {
                p.nets
                    .iter()
                    .flat_map(|n| n.peer_nis.iter().copied())
                    .collect()
            })
            .unwrap_or_default();
        for id in ids {
            self.move_peer_ni(id, into);
        }
    }

    /// Reorders a peer's nets and NIs like the reported list.
    fn order_like(&mut self, peer: PeerId, reported: &[crate::ping::NiStatus]) {
        let pos = |t: &crate::peer::PeerTable, id: &crate::peer::PeerNiId| {
            t.get(*id)
                .and_then(|x| reported.iter().position(|s| s.nid == x.nid))
                .unwrap_or(usize::MAX)
        };
        let mut nets = match self.peers.peers.get_mut(peer.idx, peer.gen) {
            Some(p) => std::mem::take(&mut p.nets),
            None => return,
        };
        for n in nets.iter_mut() {
            n.peer_nis.sort_by_key(|id| pos(&self.peers, id));
        }
        nets.sort_by_key(|n| {
            n.peer_nis
                .first()
                .map_or(usize::MAX, |id| pos(&self.peers, id))
        });
        if let Some(p) = self.peers.peers.get_mut(peer.idx, peer.gen) {
            p.nets = nets;
        }
    }

    /// MARK_DELETION (§9.3 step 1): the peer object goes, with every NID
    /// discovery merged into it, and a fresh one is made for its primary
    /// NID; what waited on the old peer (parked messages, `discover`
    /// callers) waits on the fresh one, which is discovered from scratch.
    /// Messages queued on the old peer NIs select a path again. A
    /// configured peer keeps its NIDs and only starts over. Returns whether
    /// the (old) peer wants another step.
    fn discovery_delete(&mut self, now: Instant, peer: PeerId) -> bool {
        let Some(p) = self.peers.peers.get_mut(peer.idx, peer.gen) else {
            return false;
        };
        if p.state.has(PeerState::CONFIGURED) {
            self.discovery_restart(now, peer);
            return true;
        }
        p.state.clear(PeerState::MARK_DELETION);
        p.state.set(PeerState::MARK_DELETED);
        let prim = p.primary_nid;
        let parked = std::mem::take(&mut p.disc.parked);
        let waiters = std::mem::take(&mut p.disc.waiters);
        tracing::debug!("discovery: peer {prim} marked for deletion, re-created");
        let nids = self.peer_nids(peer);
        for n in nids
            .iter()
            .filter(|n| **n != prim)
            .chain(std::iter::once(&prim))
        {
            if let Some(id) = self.peers.lookup(n) {
                if self.peers.get(id).map(|x| x.peer) == Some(peer) {
                    self.peer_ni_remove(now, id);
                }
            }
        }
        // Gone with its last NI; make sure of it.
        if self.peers.peer(peer).is_some() {
            self.peer_remove(now, peer, errno::ENETDOWN);
        }
        let id = self.peer_ni_for(prim);
        let Some(fresh) = self.peers.get(id).map(|x| x.peer) else {
            return false;
        };
        if let Some(p) = self.peers.peers.get_mut(fresh.idx, fresh.gen) {
            p.disc.parked.extend(parked);
            p.disc.waiters.extend(waiters);
        }
        self.discovery_queue(fresh);
        false
    }

    /// A configured peer marked for deletion: discovery's flags start over
    /// (its NIDs are configuration's) and it is looked at again.
    fn discovery_restart(&mut self, now: Instant, peer: PeerId) {
        let Some(p) = self.peers.peers.get_mut(peer.idx, peer.gen) else {
            return;
        };
        p.state
            .clear(PeerState::MARK_DELETION | PeerState::DISCOVERED | PeerState::NIDS_UPTODATE);
        let (prim, configured) = (p.primary_nid, p.state.has(PeerState::CONFIGURED));
        if !configured {
            p.multi_rail = false;
            p.state.clear(PeerState::MULTI_RAIL);
            for n in self.peer_nids(peer) {
                if n != prim {
                    if let Some(id) = self.peers.lookup(&n) {
                        self.peer_ni_remove(now, id);
                    }
                }
            }
        }
    }
}

fn p_multi_rail(l: &Lnet, peer: PeerId) -> bool {
    l.peers.peer(peer).is_some_and(|p| p.multi_rail)
}

/// Discovery state of a peer as `peer show` and tests see it.
impl crate::peer::PeerView<'_> {
    /// The error the last discovery of this peer finished with (negative
    /// errno; 0 if it succeeded or never ran).
    pub fn discovery_error(&self) -> i32 {
        self.peer_ref().disc.last_error
    }
    /// Messages parked on the peer waiting for its discovery.
    pub fn parked(&self) -> usize {
        self.peer_ref().disc.parked.len()
    }
}

/// For [`crate::event`]: routes the events of a push MD.
pub(crate) fn push_owner_event(l: &mut Lnet, peer: PeerId, ev: MdEvent) {
    l.discovery_push_event(peer, ev);
}
