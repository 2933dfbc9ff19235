//! The receive path: `lnet_parse()` and its per-type handlers
//! (`lnet_parse_put/get/ack/reply()` in `lnet/lnet/lib-move.c`, semantics
//! §2.4, §4.2–§4.4, §7.6).
//!
//! [`Lnet::handle_rx`] checks a header, matches it and answers with exactly
//! one [`crate::LndOp::Recv`] for the LND's receive token (now, or later for a
//! PUT delayed on a lazy portal), unless it returns an error: then the header
//! was a protocol error, the LND closes the connection and no `recv` comes.
//! Dropped messages get a `Recv` with no message token (discard `rlen`
//! bytes) and are counted.

use lnd_api::abi_stable::std_types::ROption;
use lnd_api::{errno, Hdr, MsgType, Nid, Payload, PayloadSpan, RxAction, RxToken};

use crate::event::EventKind;
use crate::md::{MdHandle, MdOptions, Threshold};
use crate::msg::{AckWanted, Dir, EvInfo, Msg, MsgId, MsgState, Span};
use crate::ni::{LndOp, Lnet, NiId, NiState};
use crate::nid::ProcessId;
use crate::peer::PeerNiId;
use crate::ptl::{MatchInfo, MatchOp, MatchResult, MAX_PORTALS};
use crate::time::Instant;

/// A header the LND must treat as a protocol error (it closes the connection).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// The NI is not (or no longer) registered.
    #[error("{0}: no such NI (message from a stopped NI)")]
    UnknownNi(NiId),
    /// Bad type or payload length.
    #[error("message from {from:?}: {what}")]
    Malformed {
        /// The previous hop.
        from: Nid,
        /// What is wrong.
        what: String,
    },
    /// A message not for us that must not come here.
    #[error("message from {from:?} for {dest:?}: {what}")]
    NotForMe {
        /// The previous hop.
        from: Nid,
        /// The header's destination.
        dest: Nid,
        /// Why it is refused.
        what: &'static str,
    },
}

impl ParseError {
    /// The errno upstream's `lnet_parse` returns (positive).
    pub fn errno(&self) -> i32 {
        match self {
            ParseError::UnknownNi(_) => errno::ENODEV,
            ParseError::Malformed { .. } | ParseError::NotForMe { .. } => errno::EPROTO,
        }
    }
}

/// What the receive path knows about an arriving header.
struct Rx {
    ni: NiId,
    hdr: Hdr,
    from: Nid,
    rx: RxToken,
    rdma_req: bool,
    peer_ni: Option<PeerNiId>,
    initiator: ProcessId,
}

impl Lnet {
    /// A header arrived on `ni` from the previous hop `from` (`lnet_parse`).
    pub fn handle_rx(
        &mut self,
        now: Instant,
        ni: NiId,
        hdr: Hdr,
        from: Nid,
        rx: RxToken,
        rdma_req: bool,
    ) -> Result<(), ParseError> {
        let Some(n) = self.ni_ref(ni) else {
            return Err(ParseError::UnknownNi(ni));
        };
        if n.state == NiState::Deleting {
            return Err(ParseError::UnknownNi(ni));
        }
        let (ni_nid, ni_net) = (n.nid, n.net);
        if let Err(e) = hdr.check() {
            return Err(ParseError::Malformed {
                from,
                what: e.to_string(),
            });
        }
        let dest = hdr.dest_nid;
        let for_me = dest == ni_nid || (ni == NiId::LO && self.is_local_nid(&dest));
        if !for_me {
            if dest.net() == ni_net {
                return Err(ParseError::NotForMe {
                    from,
                    dest,
                    what: "destination is on the receiving net (should have gone direct)",
                });
            }
            if self.is_local_nid(&dest) {
                return Err(ParseError::NotForMe {
                    from,
                    dest,
                    what: "destination is another of our NIDs",
                });
            }
            if rdma_req {
                return Err(ParseError::NotForMe {
                    from,
                    dest,
                    what: "an optimized GET must not be forwarded",
                });
            }
            if !self.forward_rx(now, ni, hdr, from, rx) {
                // Routing is not enabled on this node.
                self.drop_rx(ni, &hdr, rx, false);
            }
            self.flush(now);
            return Ok(());
        }
        if ni != NiId::LO && self.rx_via_router(now, ni, &hdr, from, true) {
            // drop_asym_route: not through a gateway we would use.
            self.drop_rx(ni, &hdr, rx, false);
            return Ok(());
        }
        // A recovery ping of one of our NIs comes back to us through that
        // NI (§8.6): no peer object for our own NIDs.
        let peer_ni = if ni == NiId::LO || self.ni_by_nid(&from).is_some() {
            None
        } else {
            let p = self.peer_ni_for(from);
            // Heard from: its recovery ping count starts over (§8.6).
            if let Some(rec) = self.peers.recovery.get_mut(&p) {
                rec.ping_count = 0;
            }
            let mr = self
                .peers
                .get(p)
                .and_then(|x| self.peers.peer(x.peer))
                .is_some_and(|x| x.multi_rail);
            if let Some(pn) = self.peers.get_mut(p) {
                pn.last_alive = Some(now);
                pn.up = true;
                if !mr && pn.pref_nids.is_empty() {
                    // A new non-MR peer prefers the NI it first talked to (§6.7).
                    pn.pref_nids.push(ni_nid);
                }
            }
            Some(p)
        };
        // Received counters move when the message completes (`finalize`):
        // a header claiming a payload that never comes counts as a drop.
        // Heard on this NI: its recovery ping count starts over (§8.6).
        if let Some(rec) = self.peers.local_recovery.get_mut(&ni) {
            rec.ping_count = 0;
        }
        let initiator = ProcessId {
            nid: self.peers.primary_of(hdr.src_nid),
            pid: hdr.src_pid,
        };
        let r = Rx {
            ni,
            hdr,
            from,
            rx,
            rdma_req,
            peer_ni,
            initiator,
        };
        match hdr.msg_type {
            MsgType::PUT => self.parse_put(now, r),
            MsgType::GET => self.parse_get(now, r),
            MsgType::ACK => self.parse_ack(now, r),
            _ => self.parse_reply(now, r),
        }
        self.flush(now);
        Ok(())
    }

    /// Tells the LND to discard a message we keep no state for, and counts it.
    pub(crate) fn drop_rx(&mut self, ni: NiId, hdr: &Hdr, rx: RxToken, delayed: bool) {
        let len = hdr.payload_length;
        self.counters.drop_count += 1;
        self.counters.drop_length += u64::from(len);
        if let Some(n) = self.ni_mut(ni) {
            n.stats.dropped(hdr.msg_type, len);
        }
        let action = RxAction {
            rx,
            msg: ROption::RNone,
            payload: Payload::new(),
            rlen: len,
            delayed,
        };
        self.lnd_ops.push_back(LndOp::Recv {
            ni,
            rx: action,
            payload: PayloadSpan::new(),
        });
    }

    fn ev_for(&self, r: &Rx, kind: EventKind) -> EvInfo {
        EvInfo {
            kind,
            initiator: r.initiator,
            source: ProcessId {
                nid: r.hdr.src_nid,
                pid: r.hdr.src_pid,
            },
            sender: r.from,
            target: ProcessId {
                nid: r.hdr.dest_nid,
                pid: r.hdr.dest_pid,
            },
            portal: 0,
            match_bits: 0,
            rlength: r.hdr.payload_length,
            mlength: 0,
            offset: 0,
            hdr_data: 0,
            msg_type: r.hdr.msg_type,
        }
    }

    fn rx_msg(&mut self, now: Instant, r: &Rx, ev: EvInfo, md: Option<MdHandle>) -> MsgId {
        let msg = Msg {
            dir: Dir::Recv,
            state: MsgState::New,
            msg_type: r.hdr.msg_type,
            hdr: r.hdr,
            ni: r.ni,
            peer_ni: r.peer_ni,
            next_hop: Nid::ANY,
            next_hop_pid: 0,
            from: r.from,
            rx: Some(r.rx),
            md,
            span: Span::default(),
            ev,
            ni_credit: false,
            peer_credit: false,
            txq_bytes: 0,
            deadline: self.msg_deadline(now, r.ni),
            ack: None,
            delayed: false,
            committed_at: now,
            retries: 0,
            orig_dest: Nid::ANY,
            src_param: None,
            recovery: false,
        };
        self.msg_alloc(msg)
    }

    fn parse_put(&mut self, now: Instant, r: Rx) {
        let body = r.hdr.body_put();
        let info = MatchInfo {
            op: MatchOp::Put,
            initiator: r.initiator,
            portal: body.ptl_index,
            match_bits: body.match_bits,
            rlength: r.hdr.payload_length,
            roffset: body.offset,
        };
        if body.ptl_index >= MAX_PORTALS {
            self.drop_rx(r.ni, &r.hdr, r.rx, false);
            return;
        }
        let mut ev = self.ev_for(&r, EventKind::Put);
        ev.portal = body.ptl_index;
        ev.match_bits = body.match_bits;
        ev.hdr_data = body.hdr_data;
        ev.offset = body.offset;
        match self.match_md(&info) {
            MatchResult::Matched {
                md,
                offset,
                mlength,
            } => {
                let id = self.rx_msg(now, &r, ev, None);
                if !body.ack_wmd.is_none() {
                    if let Some(m) = self.msgs.get_mut(id.idx, id.gen) {
                        m.ack = Some(AckWanted { wmd: body.ack_wmd });
                    }
                }
                self.deliver(id, md, offset, mlength, false);
            }
            MatchResult::None if self.portals[body.ptl_index as usize].lazy => {
                let id = self.rx_msg(now, &r, ev, None);
                if !body.ack_wmd.is_none() {
                    if let Some(m) = self.msgs.get_mut(id.idx, id.gen) {
                        m.ack = Some(AckWanted { wmd: body.ack_wmd });
                    }
                }
                if let Some(m) = self.msgs.get_mut(id.idx, id.gen) {
                    m.state = MsgState::Delayed;
                }
                self.portals[body.ptl_index as usize].delayed.push_back(id);
                self.lnd_ops
                    .push_back(LndOp::EagerRecv { ni: r.ni, rx: r.rx });
            }
            MatchResult::None | MatchResult::Drop => self.drop_rx(r.ni, &r.hdr, r.rx, false),
        }
    }

    /// Hands a matched PUT's payload destination to the LND.
    fn deliver(&mut self, id: MsgId, md: MdHandle, offset: u32, mlength: u32, delayed: bool) {
        let (payload, ack_disabled) = match self.mds.get(md.idx, md.gen) {
            Some(m) => (
                m.memory.sub(offset as usize, mlength as usize),
                m.options.contains(MdOptions::ACK_DISABLE),
            ),
            None => (None, true),
        };
        let Some(m) = self.msgs.get_mut(id.idx, id.gen) else {
            return;
        };
        m.md = Some(md);
        m.ev.offset = offset;
        m.ev.mlength = mlength;
        m.delayed = delayed;
        if ack_disabled {
            m.ack = None;
        }
        let Some(payload) = payload else {
            // Our own invariant broke (the match stays within the MD).
            debug_assert!(false, "matched range outside the MD");
            m.state = MsgState::Receiving;
            let c = lnd_api::Completion::failed(errno::EFAULT, lnd_api::HealthStatus::LOCAL_ERROR);
            let rx = RxAction {
                rx: m.rx.unwrap_or(RxToken(0)),
                msg: ROption::RNone,
                payload: Payload::new(),
                rlen: m.hdr.payload_length,
                delayed,
            };
            let ni = m.ni;
            self.lnd_ops.push_back(LndOp::Recv {
                ni,
                rx,
                payload: PayloadSpan::new(),
            });
            self.finalize(Instant::ZERO, id, c);
            return;
        };
        m.state = MsgState::Receiving;
        // The payload is a window into the MD's shared fragment list: no
        // allocation.
        let action = RxAction {
            rx: m.rx.unwrap_or(RxToken(0)),
            msg: ROption::RSome(id.token()),
            payload: Payload::new(),
            rlen: m.hdr.payload_length,
            delayed,
        };
        let ni = m.ni;
        self.lnd_ops.push_back(LndOp::Recv {
            ni,
            rx: action,
            payload,
        });
    }

    pub(crate) fn delayed_match_info(&self, id: MsgId) -> Option<MatchInfo> {
        let m = self.msgs.get(id.idx, id.gen)?;
        let body = m.hdr.body_put();
        Some(MatchInfo {
            op: MatchOp::Put,
            initiator: m.ev.initiator,
            portal: body.ptl_index,
            match_bits: body.match_bits,
            rlength: m.hdr.payload_length,
            roffset: body.offset,
        })
    }

    pub(crate) fn deliver_delayed(&mut self, id: MsgId, md: MdHandle, offset: u32, mlength: u32) {
        self.deliver(id, md, offset, mlength, true);
    }

    /// Drops a PUT that waited on a lazy portal.
    pub(crate) fn drop_delayed(&mut self, id: MsgId) {
        let Some(m) = self.msgs.remove(id.idx, id.gen) else {
            return;
        };
        self.counters.msg_free();
        self.drop_rx(m.ni, &m.hdr, m.rx.unwrap_or(RxToken(0)), true);
    }

    fn parse_get(&mut self, now: Instant, r: Rx) {
        let body = r.hdr.body_get();
        if body.ptl_index >= MAX_PORTALS {
            self.drop_rx(r.ni, &r.hdr, r.rx, false);
            return;
        }
        let info = MatchInfo {
            op: MatchOp::Get,
            initiator: r.initiator,
            portal: body.ptl_index,
            match_bits: body.match_bits,
            rlength: body.sink_length,
            roffset: body.src_offset,
        };
        let MatchResult::Matched {
            md,
            offset,
            mlength,
        } = self.match_md(&info)
        else {
            self.drop_rx(r.ni, &r.hdr, r.rx, false);
            return;
        };
        // A matched GET is all there: received (its REPLY is a send).
        self.count_done(Dir::Recv, r.ni, r.peer_ni, MsgType::GET, 0);
        let mut ev = self.ev_for(&r, EventKind::Get);
        ev.portal = body.ptl_index;
        ev.match_bits = body.match_bits;
        ev.rlength = body.sink_length;
        ev.mlength = mlength;
        ev.offset = offset;
        let span = Span {
            offset,
            len: mlength,
        };
        if r.rdma_req {
            let payload = self
                .mds
                .get(md.idx, md.gen)
                .and_then(|m| m.memory.sub(offset as usize, mlength as usize))
                .unwrap_or_default();
            // Optimized GET: the LND moves the data itself and completes the
            // REPLY through its receive call (§4.4 step 4).
            let body_r = lnd_api::hdr::ReplyBody {
                dst_wmd: body.return_wmd,
            };
            let hdr = Hdr::reply(
                r.hdr.src_nid,
                r.hdr.dest_nid,
                r.hdr.src_pid,
                self.cfg.pid,
                mlength,
                body_r,
            );
            let id = self.rx_msg(now, &r, ev, Some(md));
            if let Some(m) = self.msgs.get_mut(id.idx, id.gen) {
                m.dir = Dir::Send;
                m.msg_type = MsgType::REPLY;
                m.hdr = hdr;
                m.state = MsgState::Receiving;
                m.span = span;
            }
            let action = RxAction {
                rx: r.rx,
                msg: ROption::RSome(id.token()),
                payload: Payload::new(),
                rlen: mlength,
                delayed: false,
            };
            self.lnd_ops.push_back(LndOp::Recv {
                ni: r.ni,
                rx: action,
                payload,
            });
            return;
        }
        // The (empty) GET has been received; then the REPLY goes out.
        let action = RxAction {
            rx: r.rx,
            msg: ROption::RNone,
            payload: Payload::new(),
            rlen: 0,
            delayed: false,
        };
        self.lnd_ops.push_back(LndOp::Recv {
            ni: r.ni,
            rx: action,
            payload: PayloadSpan::new(),
        });
        self.send_reply(now, &r.hdr, r.ni, r.peer_ni, r.from, r.rx, md, span, ev);
    }

    /// The initiator's MD for an ACK/REPLY: live, not exhausted, not on an ME.
    fn response_md(&self, wmd: &lnd_api::WireHandle) -> Option<MdHandle> {
        let h = self.md_from_wire(wmd)?;
        let m = self.mds.get(h.idx, h.gen)?;
        if m.threshold == Threshold::Count(0) || m.me.is_some() {
            return None;
        }
        Some(h)
    }

    fn parse_ack(&mut self, now: Instant, r: Rx) {
        let body = r.hdr.body_ack();
        let Some(md) = self.response_md(&body.dst_wmd) else {
            self.drop_rx(r.ni, &r.hdr, r.rx, false);
            return;
        };
        self.rspt_disarm(md);
        if let Some(m) = self.mds.get_mut(md.idx, md.gen) {
            m.attach_msg();
        }
        let mut ev = self.ev_for(&r, EventKind::Ack);
        ev.match_bits = body.match_bits;
        ev.mlength = body.mlength;
        ev.rlength = body.mlength;
        let id = self.rx_msg(now, &r, ev, Some(md));
        if let Some(m) = self.msgs.get_mut(id.idx, id.gen) {
            m.state = MsgState::Receiving;
        }
        let action = RxAction {
            rx: r.rx,
            msg: ROption::RSome(id.token()),
            payload: Payload::new(),
            rlen: 0,
            delayed: false,
        };
        self.lnd_ops.push_back(LndOp::Recv {
            ni: r.ni,
            rx: action,
            payload: PayloadSpan::new(),
        });
    }

    fn parse_reply(&mut self, now: Instant, r: Rx) {
        let body = r.hdr.body_reply();
        let Some(md) = self.response_md(&body.dst_wmd) else {
            self.drop_rx(r.ni, &r.hdr, r.rx, false);
            return;
        };
        let rlength = r.hdr.payload_length;
        let (len, truncate) = match self.mds.get(md.idx, md.gen) {
            Some(m) => (m.length, m.options.contains(MdOptions::TRUNCATE)),
            None => (0, false),
        };
        if rlength > len && !truncate {
            self.drop_rx(r.ni, &r.hdr, r.rx, false);
            return;
        }
        let mlength = rlength.min(len);
        self.rspt_disarm(md);
        let payload = match self.mds.get_mut(md.idx, md.gen) {
            Some(m) => {
                m.attach_msg();
                m.memory.sub(0, mlength as usize).unwrap_or_default()
            }
            None => PayloadSpan::new(),
        };
        let mut ev = self.ev_for(&r, EventKind::Reply);
        ev.rlength = rlength;
        ev.mlength = mlength;
        let id = self.rx_msg(now, &r, ev, Some(md));
        if let Some(m) = self.msgs.get_mut(id.idx, id.gen) {
            m.state = MsgState::Receiving;
        }
        let action = RxAction {
            rx: r.rx,
            msg: ROption::RSome(id.token()),
            payload: Payload::new(),
            rlen: rlength,
            delayed: false,
        };
        self.lnd_ops.push_back(LndOp::Recv {
            ni: r.ni,
            rx: action,
            payload,
        });
    }
}
