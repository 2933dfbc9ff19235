//! The send path: `LNetPut`/`LNetGet`, ACK and REPLY, and the choice of local
//! NI and next hop (`lnet_send()` / `lnet_select_pathway()` in
//! `lnet/lnet/lib-move.c`, semantics §4.1, §4.3, §6).
//!
//! A request is committed (MD attached, threshold consumed, message
//! allocated), a path is selected, then it is posted for credits
//! ([`crate::credits`]). From [`Lnet::put`]/[`Lnet::get`] returning `Ok` on,
//! failures are reported only through events, as upstream does.

use lnd_api::hdr::{AckBody, GetBody, PutBody, ReplyBody};
use lnd_api::{errno, Completion, Hdr, HealthStatus, MsgType, Nid, WireHandle};

use std::cmp::Reverse;

use crate::event::EventKind;
use crate::md::{ApiError, MdHandle, MdOptions};
use crate::msg::{Dir, EvInfo, Msg, MsgId, MsgState, Span};
use crate::ni::{Lnet, NiId, NiState, Timer};
use crate::nid::{ProcessId, LNET_PID_ANY, LNET_PID_LUSTRE};
use crate::peer::PeerNiId;
use crate::time::{Duration, Instant};

/// Whether a PUT wants an ACK (`LNET_ACK_REQ` / `LNET_NOACK_REQ`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum AckReq {
    /// Send an ACK when the PUT landed.
    Ack,
    /// No ACK.
    NoAck,
}

/// The outcome of path selection.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Path {
    pub(crate) ni: NiId,
    pub(crate) peer_ni: Option<PeerNiId>,
    /// Header `src_nid`.
    pub(crate) src_nid: Nid,
    /// Header `dest_nid` (the final destination).
    pub(crate) dest_nid: Nid,
    /// The next hop.
    pub(crate) next_hop: Nid,
}

/// Why no path was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct NoPath(pub(crate) Completion);

impl NoPath {
    fn unreachable() -> NoPath {
        NoPath(Completion::failed(
            errno::EHOSTUNREACH,
            HealthStatus::REMOTE_ERROR,
        ))
    }
    fn invalid() -> NoPath {
        NoPath(Completion::failed(errno::EINVAL, HealthStatus::LOCAL_ERROR))
    }
}

impl Lnet {
    /// Starts a PUT of the whole MD (`LNetPut`). The MD must be bound (not
    /// attached to an ME) and not exhausted. Events: SEND when the LND is
    /// done with the buffer; ACK when the target acknowledged (if asked).
    #[allow(clippy::too_many_arguments)]
    pub fn put(
        &mut self,
        now: Instant,
        self_nid: Option<Nid>,
        md: MdHandle,
        ack: AckReq,
        target: ProcessId,
        portal: u32,
        match_bits: u64,
        offset: u32,
        hdr_data: u64,
    ) -> Result<(), ApiError> {
        self.check_initiator_md(md)?;
        check_target(&target)?;
        let ack_wmd = if ack == AckReq::Ack {
            self.md_wire(md)
        } else {
            WireHandle::NONE
        };
        let (len, track) = self.attach_initiator(md, ack == AckReq::Ack, 2)?;
        let body = PutBody {
            ack_wmd,
            match_bits,
            hdr_data,
            ptl_index: portal,
            offset,
        };
        let hdr = Hdr::put(target.nid, Nid::ANY, target.pid, self.cfg.pid, len, body);
        let ev = EvInfo {
            kind: EventKind::Send,
            initiator: ProcessId::ANY,
            source: ProcessId::ANY,
            sender: Nid::ANY,
            target,
            portal,
            match_bits,
            rlength: len,
            mlength: len,
            offset,
            hdr_data,
            msg_type: MsgType::PUT,
        };
        let span = Span { offset: 0, len };
        self.send_request(now, hdr, span, md, ev, self_nid, track);
        Ok(())
    }

    /// Starts a GET into the whole MD (`LNetGet`). Events: SEND when sent,
    /// REPLY when the data landed.
    #[allow(clippy::too_many_arguments)]
    pub fn get(
        &mut self,
        now: Instant,
        self_nid: Option<Nid>,
        md: MdHandle,
        target: ProcessId,
        portal: u32,
        match_bits: u64,
        offset: u32,
    ) -> Result<(), ApiError> {
        self.get_inner(now, self_nid, md, target, portal, match_bits, offset)
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn get_inner(
        &mut self,
        now: Instant,
        self_nid: Option<Nid>,
        md: MdHandle,
        target: ProcessId,
        portal: u32,
        match_bits: u64,
        offset: u32,
    ) -> Result<(), ApiError> {
        self.check_initiator_md(md)?;
        check_target(&target)?;
        let (len, track) = self.attach_initiator(md, true, 1)?;
        let body = GetBody {
            return_wmd: self.md_wire(md),
            match_bits,
            ptl_index: portal,
            src_offset: offset,
            sink_length: len,
        };
        let hdr = Hdr::get(target.nid, Nid::ANY, target.pid, self.cfg.pid, body);
        let ev = EvInfo {
            kind: EventKind::Send,
            initiator: ProcessId::ANY,
            source: ProcessId::ANY,
            sender: Nid::ANY,
            target,
            portal,
            match_bits,
            rlength: len,
            mlength: len,
            offset,
            hdr_data: 0,
            msg_type: MsgType::GET,
        };
        self.send_request(now, hdr, Span::default(), md, ev, self_nid, track);
        Ok(())
    }

    fn check_initiator_md(&self, md: MdHandle) -> Result<(), ApiError> {
        let m = self.md_live(md).ok_or(ApiError::UnusableMd {
            md,
            reason: "no such MD",
        })?;
        if m.threshold == crate::md::Threshold::Count(0) {
            return Err(ApiError::UnusableMd {
                md,
                reason: "threshold exhausted",
            });
        }
        if m.me.is_some() {
            return Err(ApiError::UnusableMd {
                md,
                reason: "attached to an ME (bind an MD with md_bind to send from it)",
            });
        }
        Ok(())
    }

    /// Attaches the request to its MD; returns the MD's length and whether
    /// the response is tracked (§8.5; `bit` is the tracking mode bit).
    fn attach_initiator(
        &mut self,
        md: MdHandle,
        wants_response: bool,
        bit: u32,
    ) -> Result<(u32, bool), ApiError> {
        let tracking = self.cfg.tunables.response_tracking;
        let m = self
            .mds
            .get_mut(md.idx, md.gen)
            .ok_or(ApiError::UnusableMd {
                md,
                reason: "no such MD",
            })?;
        m.attach_msg();
        let track = wants_response
            && !m.options.contains(MdOptions::NO_TRACK_RESPONSE)
            && (m.options.contains(MdOptions::TRACK_RESPONSE) || tracking & bit != 0);
        Ok((m.length, track))
    }

    /// Commits a request and sends it; failures complete it with an error.
    #[allow(clippy::too_many_arguments)]
    fn send_request(
        &mut self,
        now: Instant,
        hdr: Hdr,
        span: Span,
        md: MdHandle,
        ev: EvInfo,
        src: Option<Nid>,
        track: bool,
    ) {
        let dest = hdr.dest_nid;
        // Discovery first (§9.2): the message waits on a peer not up to date.
        let recovery = std::mem::take(&mut self.recovery_send);
        let park = if recovery {
            None
        } else {
            self.discovery_gate(dest, ev.portal)
        };
        let path = match park {
            Some(_) => Err(NoPath(Completion::OK)),
            None if recovery => self.select_recovery(dest, src),
            None => self.select_path(dest, src),
        };
        let ni = path.as_ref().map_or(NiId::LO, |p| p.ni);
        let msg = Msg {
            dir: Dir::Send,
            state: MsgState::New,
            msg_type: hdr.msg_type,
            hdr,
            ni,
            peer_ni: None,
            next_hop: dest,
            next_hop_pid: hdr.dest_pid,
            from: Nid::ANY,
            rx: None,
            md: Some(md),
            span,
            ev,
            ni_credit: false,
            peer_credit: false,
            txq_bytes: 0,
            deadline: self.msg_deadline(now, ni),
            ack: None,
            delayed: false,
            committed_at: now,
            retries: 0,
            orig_dest: dest,
            src_param: src,
            recovery,
        };
        let id = self.msg_alloc(msg);
        if track {
            let next_hop = path.as_ref().ok().and_then(|p| p.peer_ni);
            self.rspt_arm(now, md, next_hop);
        }
        match (park, path) {
            (Some(peer), _) => self.discovery_park(peer, id),
            (None, Ok(p)) => self.post_on_path(now, id, p),
            (None, Err(NoPath(c))) => self.finalize(now, id, c),
        }
        self.flush(now);
    }

    /// Fills in the path and posts.
    pub(crate) fn post_on_path(&mut self, now: Instant, id: MsgId, p: Path) {
        let Some(m) = self.msgs.get_mut(id.idx, id.gen) else {
            return;
        };
        m.ni = p.ni;
        m.peer_ni = p.peer_ni;
        m.hdr.src_nid = p.src_nid;
        m.hdr.dest_nid = p.dest_nid;
        m.next_hop = p.next_hop;
        let (md, at) = (m.md, m.committed_at);
        if let Some(md) = md.and_then(|h| self.mds.get_mut(h.idx, h.gen)) {
            md.sent = Some((at, p.ni));
        }
        let Some(m) = self.msgs.get_mut(id.idx, id.gen) else {
            return;
        };
        m.next_hop_pid = if p.next_hop == p.dest_nid {
            m.hdr.dest_pid
        } else {
            LNET_PID_LUSTRE
        };
        self.post_send(now, id);
    }

    /// Chooses the local NI and the next hop for a request (semantics §6.1–§6.3).
    pub(crate) fn select_path(&mut self, dest: Nid, src: Option<Nid>) -> Result<Path, NoPath> {
        if dest.is_any() {
            return Err(NoPath::invalid());
        }
        // Peer NIs created since the last call get the UDSP rules (§12).
        self.udsp_settle();
        // To ourselves: loopback, no credits.
        if dest == Nid::LO_0 || self.ni_by_nid(&dest).is_some() {
            if let Some(s) = src {
                if !self.is_local_nid(&s) {
                    return Err(NoPath::invalid());
                }
            }
            return Ok(Path {
                ni: NiId::LO,
                peer_ni: None,
                src_nid: dest,
                dest_nid: dest,
                next_hop: dest,
            });
        }
        if let Some(s) = src {
            let ni = self.ni_by_nid(&s).ok_or_else(NoPath::invalid)?;
            if s.net() != dest.net() {
                // SPEC, REMOTE: a gateway reachable from the source NI (§7.4).
                return self.select_routed(dest, Some(ni));
            }
            let pni = self.peer_ni_for(dest);
            // SPEC, LOCAL, NMR: the source becomes the preferred NI (§6.2).
            let mr = self
                .peers
                .get(pni)
                .and_then(|p| self.peers.peer(p.peer))
                .is_some_and(|p| p.multi_rail);
            if let Some(p) = self.peers.get_mut(pni) {
                if !mr && p.pref_nids.is_empty() {
                    p.pref_nids.push(s);
                }
            }
            self.bump_seq(ni, pni);
            return Ok(Path {
                ni,
                peer_ni: Some(pni),
                src_nid: s,
                dest_nid: dest,
                next_hop: dest,
            });
        }
        if self.needs_route(dest) {
            return self.select_routed(dest, None);
        }
        self.select_mr(dest)
    }

    /// The path of a recovery ping (§8.6): exactly to `dest` from `src`. A
    /// local NI's own NID is pinged through that NI (its LND carries it out
    /// and back), not through loopback, with no peer NI; a peer NI is
    /// reached as a SPEC send.
    fn select_recovery(&mut self, dest: Nid, src: Option<Nid>) -> Result<Path, NoPath> {
        let Some(s) = src else {
            return self.select_path(dest, src);
        };
        if s != dest {
            return self.select_path(dest, src);
        }
        let ni = self.ni_by_nid(&s).ok_or_else(NoPath::invalid)?;
        Ok(Path {
            ni,
            peer_ni: None,
            src_nid: s,
            dest_nid: dest,
            next_hop: dest,
        })
    }

    /// Bumps the round-robin sequences of a chosen NI and peer NI (§6.6).
    pub(crate) fn bump_seq(&mut self, ni: NiId, pni: PeerNiId) {
        self.ni_seq += 1;
        let s = self.ni_seq;
        if let Some(n) = self.ni_mut(ni) {
            n.seq = s;
        }
        let Some((peer, net)) = self.peers.get(pni).map(|p| (p.peer, Some(p.nid.net()))) else {
            return;
        };
        let Some(p) = self.peers.peers.get_mut(peer.idx, peer.gen) else {
            return;
        };
        p.seq += 1;
        let ps = p.seq;
        if let Some(pn) = p.nets.iter_mut().find(|n| Some(n.net) == net) {
            pn.seq = ps;
        }
        if let Some(x) = self.peers.get_mut(pni) {
            x.seq = ps;
        }
    }

    /// Sends the ACK of a received PUT (§4.2 step 4): from the NI that
    /// received it, to the PUT's source, via the hop it came from.
    pub(crate) fn send_ack(&mut self, now: Instant, put: &crate::msg::AckTo) {
        let body = AckBody {
            dst_wmd: put.ack.wmd,
            match_bits: put.ev.match_bits,
            mlength: put.ev.mlength,
        };
        let hdr = Hdr::ack(put.src_nid, put.dest_nid, put.src_pid, self.cfg.pid, body);
        self.send_response(
            now,
            hdr,
            Span::default(),
            None,
            put.ev,
            put.ni,
            put.peer_ni,
            put.from,
            None,
        );
    }

    /// Sends the REPLY of a matched GET (§4.4): the matched bytes `span` of
    /// the MD.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn send_reply(
        &mut self,
        now: Instant,
        get: &Hdr,
        ni: NiId,
        peer_ni: Option<PeerNiId>,
        from: Nid,
        rx: lnd_api::RxToken,
        md: MdHandle,
        span: Span,
        ev: EvInfo,
    ) {
        let body = ReplyBody {
            dst_wmd: get.body_get().return_wmd,
        };
        let hdr = Hdr::reply(
            get.src_nid,
            get.dest_nid,
            get.src_pid,
            self.cfg.pid,
            span.len,
            body,
        );
        self.send_response(now, hdr, span, Some(md), ev, ni, peer_ni, from, Some(rx));
    }

    /// A response leaves through the NI its request arrived on, to the hop
    /// it came from (§6.2, "responses").
    #[allow(clippy::too_many_arguments)]
    fn send_response(
        &mut self,
        now: Instant,
        hdr: Hdr,
        span: Span,
        md: Option<MdHandle>,
        ev: EvInfo,
        ni: NiId,
        peer_ni: Option<PeerNiId>,
        from: Nid,
        rx: Option<lnd_api::RxToken>,
    ) {
        let active = self.ni_ref(ni).is_some_and(|n| n.state == NiState::Active);
        let next_hop_pid = if from == hdr.dest_nid || ni == NiId::LO {
            hdr.dest_pid
        } else {
            LNET_PID_LUSTRE
        };
        if let Some(p) = peer_ni {
            self.bump_seq(ni, p);
        }
        let msg = Msg {
            dir: Dir::Send,
            state: MsgState::New,
            msg_type: hdr.msg_type,
            hdr,
            ni,
            peer_ni,
            next_hop: from,
            next_hop_pid,
            from: Nid::ANY,
            rx,
            md,
            span,
            ev,
            ni_credit: false,
            peer_credit: false,
            txq_bytes: 0,
            deadline: self.msg_deadline(now, ni),
            ack: None,
            delayed: false,
            committed_at: now,
            retries: 0,
            // A resend (§8.4) or a re-route selects a path to the requester
            // again, from any NI.
            orig_dest: hdr.dest_nid,
            src_param: None,
            recovery: false,
        };
        let id = self.msg_alloc(msg);
        if active {
            self.post_send(now, id);
        } else {
            self.finalize(
                now,
                id,
                Completion::failed(errno::ENETDOWN, HealthStatus::LOCAL_INTERRUPT),
            );
        }
    }

    /// Arms (or refreshes) the response tracker of an MD (§8.5).
    fn rspt_arm(&mut self, now: Instant, md: MdHandle, next_hop: Option<PeerNiId>) {
        let d = now.saturating_add(Duration::from_secs(u64::from(
            self.cfg.tunables.transaction_timeout,
        )));
        if let Some((old, _)) = self.rspt.insert(md, (d, next_hop)) {
            self.disarm(old, Timer::Md(md));
        } else {
            self.counters.rst_alloc += 1;
        }
        self.arm(d, Timer::Md(md));
    }

    /// The ACK or REPLY arrived: disarm the MD's tracker.
    pub(crate) fn rspt_disarm(&mut self, md: MdHandle) {
        if let Some((d, _)) = self.rspt.remove(&md) {
            self.counters.rst_alloc = self.counters.rst_alloc.saturating_sub(1);
            self.disarm(d, Timer::Md(md));
        }
    }

    /// A tracked response never came: unlink the MD (the user sees the final
    /// event with -ETIMEDOUT, or an UNLINK event), count it, and blame the
    /// next hop the request went to (a peer NI failure, §8.5).
    pub(crate) fn rspt_expired(&mut self, now: Instant, md: MdHandle) {
        let Some((_, next_hop)) = self.rspt.remove(&md) else {
            return;
        };
        if let Some(p) = next_hop {
            if let Some(pn) = self.peers.get_mut(p) {
                pn.stats.health.remote_timeout += 1;
            }
            self.peer_ni_failed(now, p);
        }
        self.counters.rst_alloc = self.counters.rst_alloc.saturating_sub(1);
        self.counters.response_timeout_count += 1;
        if self.md_live(md).is_some() {
            let _ = self.md_unlink(md);
        }
    }
}

/// Ranking of a (peer net, local net) pair (§6.4); greater is better.
type NetKey = (
    u32,
    Reverse<u32>,
    u32,
    Reverse<u32>,
    Reverse<u64>,
    Reverse<u64>,
);
/// Ranking of a peer NI (§6.5); greater is better.
type PeerNiKey = (u32, Reverse<u32>, bool, i32, Reverse<u64>);
/// Ranking of a local NI (§6.3); greater is better.
type NiKey = (bool, u32, Reverse<u32>, i32, Reverse<u64>);

fn check_target(t: &ProcessId) -> Result<(), ApiError> {
    if t.nid.is_any() {
        return Err(ApiError::Invalid(
            "target NID must not be LNET_NID_ANY".into(),
        ));
    }
    if t.pid == LNET_PID_ANY {
        return Err(ApiError::Invalid(
            "target PID must not be LNET_PID_ANY".into(),
        ));
    }
    Ok(())
}

impl Lnet {
    /// Source ANY: Multi-Rail or single-rail selection (semantics §6.2–§6.5).
    fn select_mr(&mut self, dest: Nid) -> Result<Path, NoPath> {
        let dest_pni = self.peer_ni_for(dest);
        let Some(peer_id) = self.peers.get(dest_pni).map(|p| p.peer) else {
            return Err(NoPath::unreachable());
        };
        let mr = self.peers.peer(peer_id).is_some_and(|p| p.multi_rail);
        if !mr {
            // ANY, LOCAL, NMR: the recorded preferred NI, else the best NI on
            // the destination's net, which becomes the preferred one.
            let net = dest.net();
            let pref = match self.peers.get(dest_pni) {
                // UDSP NID-pair rule: the best of the listed NIs (§6.3).
                Some(p) if p.pref_udsp => self
                    .best_ni_where(net, |n| p.pref_nids.contains(&n.nid))
                    .and_then(|id| self.ni_ref(id))
                    .map(|n| n.nid),
                Some(p) => p.pref_nids.first().copied(),
                None => None,
            };
            let ni = match pref
                .and_then(|n| self.ni_by_nid(&n))
                .filter(|id| self.ni_ref(*id).is_some_and(|n| n.net == net))
            {
                Some(ni) => ni,
                None => {
                    let ni = self.best_ni_on(net, None).ok_or_else(NoPath::unreachable)?;
                    let nid = self.ni_ref(ni).map(|n| n.nid);
                    if let (Some(p), Some(nid)) = (self.peers.get_mut(dest_pni), nid) {
                        if p.pref_nids.is_empty() {
                            p.pref_nids.push(nid);
                        }
                    }
                    ni
                }
            };
            self.bump_seq(ni, dest_pni);
            let src_nid = self.ni_ref(ni).map_or(Nid::ANY, |n| n.nid);
            return Ok(Path {
                ni,
                peer_ni: Some(dest_pni),
                src_nid,
                dest_nid: dest,
                next_hop: dest,
            });
        }
        // MR request: best local net among the peer's nets (§6.4).
        let Some(peer) = self.peers.peer(peer_id) else {
            return Err(NoPath::unreachable());
        };
        let mut best: Option<(usize, NetKey)> = None;
        for (i, pn) in peer.nets.iter().enumerate() {
            // The local NIs on this peer net, folded in one pass (no list is
            // built: selection runs for every message).
            let mut any_local = false;
            let mut ln_health = None;
            let mut ln_prio = u32::MAX;
            let mut ln_seq = None;
            for n in self.nis.iter().flatten().filter(|n| {
                n.net == pn.net && n.state == NiState::Active && n.net != lnd_api::NetId::LO
            }) {
                any_local = true;
                if !n.fatal {
                    ln_health = ln_health.max(Some(n.health_value));
                }
                ln_prio = ln_prio.min(n.net_priority);
                ln_seq = Some(ln_seq.map_or(n.seq, |s: u64| s.min(n.seq)));
            }
            if !any_local {
                continue;
            }
            let ln_health = ln_health.unwrap_or(0);
            let ln_seq = ln_seq.unwrap_or(0);
            let pn_health = pn
                .peer_nis
                .iter()
                .filter_map(|id| self.peers.get(*id))
                .map(|p| p.health_value)
                .max()
                .unwrap_or(0);
            let key = (
                pn_health,
                Reverse(pn.sel_priority),
                ln_health,
                Reverse(ln_prio),
                Reverse(pn.seq),
                Reverse(ln_seq),
            );
            if best.as_ref().is_none_or(|(_, k)| key > *k) {
                best = Some((i, key));
            }
        }
        let Some((net_idx, _)) = best else {
            return Err(NoPath::unreachable());
        };
        let pn_net = peer.nets[net_idx].net;
        let pnis = &peer.nets[net_idx].peer_nis;
        let ni = self
            .best_ni_on(pn_net, None)
            .ok_or_else(NoPath::unreachable)?;
        let ni_nid = self.ni_ref(ni).map_or(Nid::ANY, |n| n.nid);
        // Best peer NI on that peer net (§6.5).
        let mut chosen: Option<(PeerNiId, PeerNiKey)> = None;
        for &id in pnis {
            let Some(p) = self.peers.get(id) else {
                continue;
            };
            let key = (
                p.health_value,
                Reverse(p.sel_priority),
                p.pref_nids.contains(&ni_nid),
                p.tx_credits,
                Reverse(p.seq),
            );
            if chosen.as_ref().is_none_or(|(_, k)| key > *k) {
                chosen = Some((id, key));
            }
        }
        let Some((pni, _)) = chosen else {
            return Err(NoPath::unreachable());
        };
        self.bump_seq(ni, pni);
        let nid = self.peers.get(pni).map_or(dest, |p| p.nid);
        Ok(Path {
            ni,
            peer_ni: Some(pni),
            src_nid: ni_nid,
            dest_nid: nid,
            next_hop: nid,
        })
    }

    /// The best local NI on `net` (§6.3): not fatal, healthier, lower
    /// selection priority, more credits, lower round-robin sequence.
    pub(crate) fn best_ni_on(&self, net: lnd_api::NetId, _md: Option<MdHandle>) -> Option<NiId> {
        self.best_ni_where(net, |_| true)
    }

    /// [`Lnet::best_ni_on`] among the NIs `keep` accepts.
    pub(crate) fn best_ni_where(
        &self,
        net: lnd_api::NetId,
        keep: impl Fn(&crate::ni::Ni) -> bool,
    ) -> Option<NiId> {
        let mut best: Option<(NiId, NiKey)> = None;
        for (i, n) in self.nis.iter().enumerate() {
            let Some(n) = n else { continue };
            if n.net != net || n.state != NiState::Active || !keep(n) {
                continue;
            }
            let key = (
                !n.fatal,
                n.health_value,
                Reverse(n.sel_priority),
                n.tx_credits,
                Reverse(n.seq),
            );
            if best.as_ref().is_none_or(|(_, k)| key > *k) {
                best = Some((NiId(i as u32), key));
            }
        }
        best.map(|(id, _)| id)
    }
}
