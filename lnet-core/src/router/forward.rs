//! Forwarding: router buffer pools (`struct lnet_rtrbufpool`), peer router
//! credits and the receive-then-send of a message for another node
//! (`lnet_post_routed_recv_locked()`, `lnet_return_rx_credits_locked()` in
//! `lnet/lnet/lib-move.c`; semantics §5.2, §7.6). See the parent module's
//! docs for the rules.

use std::collections::VecDeque;

use lnd_api::abi_stable::std_types::ROption;
use lnd_api::{
    errno, Completion, Hdr, HealthStatus, IoBuf, MsgType, Nid, Payload, PayloadSpan, RxAction,
    RxToken,
};

use super::{PoolKind, PAGE};
use crate::event::EventKind;
use crate::msg::{Dir, EvInfo, Msg, MsgId, MsgState, Span};
use crate::ni::{LndOp, Lnet, NiId};
use crate::nid::ProcessId;
use crate::peer::PeerNiId;
use crate::send::{NoPath, Path};
use crate::time::Instant;

/// A router buffer pool (`struct lnet_rtrbufpool`) of one CPU partition.
#[derive(Debug)]
pub(super) struct Pool {
    pub(super) kind: PoolKind,
    /// Configured buffers (`rbp_nbuffers`).
    pub(super) nbuffers: u32,
    /// `rbp_credits`: free buffers minus waiters.
    pub(super) credits: i32,
    /// `rbp_mincredits`.
    pub(super) min_credits: i32,
    /// Buffers not in use.
    pub(super) free: Vec<PayloadSpan>,
    /// Buffers in existence (free or in use).
    pub(super) allocated: u32,
    /// Messages waiting for a buffer (they hold their router credit).
    pub(super) queue: VecDeque<MsgId>,
}

impl Pool {
    pub(super) fn new(kind: PoolKind) -> Pool {
        Pool {
            kind,
            nbuffers: 0,
            credits: 0,
            min_credits: 0,
            free: Vec::new(),
            allocated: 0,
            queue: VecDeque::new(),
        }
    }

    /// Changes the pool size (credits follow) and makes the buffers exist
    /// now: missing ones are allocated, free ones beyond the size are
    /// freed at once, those in use when they come back. Forwarding then
    /// only takes and returns buffers (no allocation per message).
    pub(super) fn resize(&mut self, n: u32) {
        let delta = i64::from(n) - i64::from(self.nbuffers);
        let first = self.nbuffers == 0 && self.allocated == 0;
        self.nbuffers = n;
        self.credits =
            (i64::from(self.credits) + delta).clamp(i32::MIN.into(), i32::MAX.into()) as i32;
        if first {
            // First set-up: the low-water mark starts at the full pool.
            self.min_credits = self.credits;
        }
        self.min_credits = self.min_credits.min(self.credits);
        while self.allocated > self.nbuffers && self.free.pop().is_some() {
            self.allocated -= 1;
        }
        let missing = self.nbuffers.saturating_sub(self.allocated) as usize;
        self.free.reserve(missing);
        for _ in 0..missing {
            let b = self.new_buffer();
            self.free.push(b);
            self.allocated += 1;
        }
    }

    /// Routing is off: free buffers go now, those in use as they come back;
    /// the pool shows no buffers (credits count the ones still out).
    pub(super) fn release_all(&mut self) {
        self.allocated -= self.free.len() as u32;
        self.free = Vec::new();
        self.credits = (i64::from(self.credits) - i64::from(self.nbuffers))
            .clamp(i32::MIN.into(), i32::MAX.into()) as i32;
        self.nbuffers = 0;
        self.min_credits = self.credits;
    }

    fn new_buffer(&self) -> PayloadSpan {
        let bytes = (self.kind.npages() * PAGE) as usize;
        if bytes == 0 {
            PayloadSpan::new()
        } else {
            // On a page, as the kernel router's pages (see `page_aligned`).
            PayloadSpan::from(IoBuf::page_aligned(bytes, 0))
        }
    }

    /// A free buffer. The credits guarantee one exists; should the
    /// accounting ever be wrong, one is allocated rather than failing the
    /// message (and the pool shrinks back as buffers return).
    pub(super) fn take_buffer(&mut self) -> PayloadSpan {
        if let Some(b) = self.free.pop() {
            return b;
        }
        tracing::warn!(
            "router {:?} pool: no free buffer despite a credit; allocating one",
            self.kind
        );
        self.allocated += 1;
        self.new_buffer()
    }
}

/// Router credits of one peer NI (`lpni_rtrcredits`).
#[derive(Debug)]
pub(super) struct RtrCredits {
    pub(super) credits: i32,
    pub(super) min_credits: i32,
    pub(super) max_credits: i32,
    /// Messages waiting for a router credit of this peer NI.
    pub(super) queue: VecDeque<MsgId>,
}

/// Where a forwarded message is.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum FwdPhase {
    /// On its previous hop's router queue.
    WaitRtrCredit,
    /// On a pool's queue.
    WaitBuffer,
    /// The LND is receiving the payload into a router buffer.
    Receiving,
    /// Handed on to the next hop.
    Sending,
}

/// The forwarding state of a message (`msg_rtrcredit`, `msg_peerrtrcredit`,
/// `msg_kiov` of a router buffer).
#[derive(Debug)]
pub(super) struct Fwd {
    pub(super) gen: u32,
    pub(super) phase: FwdPhase,
    pub(super) prev: PeerNiId,
    pub(super) pool: PoolKind,
    pub(super) rtr_credit: bool,
    pub(super) pool_credit: bool,
    pub(super) buf: Option<PayloadSpan>,
    /// Whether the receive happens after `handle_rx` returned.
    pub(super) waited: bool,
}

impl Lnet {
    // Forwarding (§5.2, §7.6)
    // ------------------------------------------------------------------

    /// A header for another node arrived (the protocol checks passed):
    /// forward it, or drop it when routing is off.
    pub(crate) fn forward_rx(
        &mut self,
        now: Instant,
        ni: NiId,
        hdr: Hdr,
        from: Nid,
        rx: RxToken,
    ) -> bool {
        if !self.router.state.forwards() {
            return false;
        }
        let ni_nid = self.ni_ref(ni).map_or(Nid::ANY, |n| n.nid);
        let prev = self.peer_ni_for(from);
        let mr = self
            .peers
            .get(prev)
            .and_then(|x| self.peers.peer(x.peer))
            .is_some_and(|x| x.multi_rail);
        if let Some(pn) = self.peers.get_mut(prev) {
            pn.last_alive = Some(now);
            pn.up = true;
            if !mr && pn.pref_nids.is_empty() {
                pn.pref_nids.push(ni_nid);
            }
        }
        // Counted as received when the payload is in the router buffer
        // (`fwd_finalize`), not now (issue 11 item 6).
        let _ = self.rx_via_router(now, ni, &hdr, from, false);
        let kind = match hdr.msg_type {
            MsgType::PUT => EventKind::Put,
            MsgType::GET => EventKind::Get,
            MsgType::ACK => EventKind::Ack,
            _ => EventKind::Reply,
        };
        let ev = EvInfo {
            kind,
            initiator: ProcessId {
                nid: hdr.src_nid,
                pid: hdr.src_pid,
            },
            source: ProcessId {
                nid: hdr.src_nid,
                pid: hdr.src_pid,
            },
            sender: from,
            target: ProcessId {
                nid: hdr.dest_nid,
                pid: hdr.dest_pid,
            },
            portal: 0,
            match_bits: 0,
            rlength: hdr.payload_length,
            mlength: hdr.payload_length,
            offset: 0,
            hdr_data: 0,
            msg_type: hdr.msg_type,
        };
        let msg = Msg {
            dir: Dir::Recv,
            state: MsgState::New,
            msg_type: hdr.msg_type,
            hdr,
            ni,
            peer_ni: Some(prev),
            next_hop: Nid::ANY,
            next_hop_pid: 0,
            from,
            rx: Some(rx),
            md: None,
            span: Span {
                offset: 0,
                len: hdr.payload_length,
            },
            ev,
            ni_credit: false,
            peer_credit: false,
            txq_bytes: 0,
            deadline: self.msg_deadline(now, ni),
            ack: None,
            delayed: false,
            committed_at: now,
            retries: 0,
            orig_dest: hdr.dest_nid,
            src_param: None,
            recovery: false,
        };
        let id = self.msg_alloc(msg);
        let slot = id.idx as usize;
        if self.router.fwd.len() <= slot {
            self.router.fwd.resize_with(slot + 1, || None);
        }
        self.router.fwd[slot] = Some(Fwd {
            gen: id.gen,
            phase: FwdPhase::WaitRtrCredit,
            prev,
            pool: PoolKind::for_len(hdr.payload_length),
            rtr_credit: false,
            pool_credit: false,
            buf: None,
            waited: false,
        });
        // The previous hop's router credit (§5.2 step 1).
        let start = self.peer_buffer_credits_on(ni);
        let c = self
            .router
            .rtr_credits
            .entry(prev)
            .or_insert_with(|| RtrCredits {
                credits: start,
                min_credits: start,
                max_credits: start,
                queue: VecDeque::new(),
            });
        c.credits -= 1;
        c.min_credits = c.min_credits.min(c.credits);
        let wait = c.credits < 0;
        if wait {
            c.queue.push_back(id);
        }
        if let Some(f) = self.router.fwd_mut(id) {
            f.rtr_credit = true;
        }
        if wait {
            self.fwd_wait(id, ni, rx);
            return true;
        }
        self.fwd_pool_credit(now, id);
        true
    }

    /// `peer_buffer_credits` for a previous hop on `ni`.
    pub(super) fn peer_buffer_credits_on(&self, ni: NiId) -> i32 {
        let t = self.ni_ref(ni).map(|n| n.tunables);
        let net = t.map_or(0, |t| t.peer_buffer_credits);
        if net > 0 {
            return net;
        }
        if self.router.cfg.peer_buffer_credits > 0 {
            return self.router.cfg.peer_buffer_credits;
        }
        t.map_or(8, |t| t.peer_credits.max(1))
    }

    /// The message must wait: tell the LND (`eager_recv`) once.
    pub(super) fn fwd_wait(&mut self, id: MsgId, ni: NiId, rx: RxToken) {
        let Some(f) = self.router.fwd_mut(id) else {
            return;
        };
        if !f.waited {
            f.waited = true;
            self.lnd_ops.push_back(LndOp::EagerRecv { ni, rx });
        }
    }

    /// Takes the pool credit (§5.2 step 2); receives if a buffer is free.
    pub(super) fn fwd_pool_credit(&mut self, now: Instant, id: MsgId) {
        let Some(f) = self.router.fwd_mut(id) else {
            return;
        };
        let k = f.pool;
        f.pool_credit = true;
        f.phase = FwdPhase::WaitBuffer;
        let p = &mut self.router.pools[k.idx()];
        p.credits -= 1;
        p.min_credits = p.min_credits.min(p.credits);
        if p.credits < 0 {
            p.queue.push_back(id);
            let (ni, rx) = match self.msgs.get(id.idx, id.gen) {
                Some(m) => (m.ni, m.rx.unwrap_or(RxToken(0))),
                None => return,
            };
            self.fwd_wait(id, ni, rx);
            return;
        }
        self.fwd_recv(now, id);
    }

    /// Both credits held: receive the payload into a router buffer.
    pub(super) fn fwd_recv(&mut self, now: Instant, id: MsgId) {
        let _ = now;
        let Some(f) = self.router.fwd(id) else {
            return;
        };
        let (k, waited) = (f.pool, f.waited);
        let buf = self.router.pools[k.idx()].take_buffer();
        let Some(m) = self.msgs.get_mut(id.idx, id.gen) else {
            self.router.pools[k.idx()].free.push(buf);
            return;
        };
        let len = m.hdr.payload_length;
        m.state = MsgState::Receiving;
        m.delayed = waited;
        let (ni, rx) = (m.ni, m.rx.unwrap_or(RxToken(0)));
        let payload = buf.sub(0, len as usize).unwrap_or_default();
        if let Some(f) = self.router.fwd_mut(id) {
            f.buf = Some(buf);
            f.phase = FwdPhase::Receiving;
        }
        self.lnd_ops.push_back(LndOp::Recv {
            ni,
            rx: RxAction {
                rx,
                msg: ROption::RSome(id.token()),
                payload: Payload::new(),
                rlen: len,
                delayed: waited,
            },
            payload,
        });
    }

    /// The payload of a forwarded message: its router buffer's window.
    pub(crate) fn fwd_payload(&self, id: MsgId) -> Option<PayloadSpan> {
        let f = self.router.fwd(id)?;
        let len = self.msgs.get(id.idx, id.gen)?.hdr.payload_length;
        Some(
            f.buf
                .as_ref()
                .and_then(|b| b.sub(0, len as usize))
                .unwrap_or_default(),
        )
    }

    /// Called first by `finalize`: a forwarded message that was fully
    /// received is sent on (returns `true`: it lives on); otherwise its
    /// router resources go back and `finalize` goes on as usual.
    pub(crate) fn fwd_finalize(&mut self, now: Instant, id: MsgId, status: Completion) -> bool {
        let Some(f) = self.router.fwd(id) else {
            return false;
        };
        if f.phase == FwdPhase::Receiving && status.is_ok() {
            let prev = f.prev;
            if let Some((ni, t, len)) = self
                .msgs
                .get(id.idx, id.gen)
                .map(|m| (m.ni, m.msg_type, m.hdr.payload_length))
            {
                self.count_done(Dir::Recv, ni, Some(prev), t, len);
            }
            if self.router.state.forwards() {
                return self.fwd_send(now, id);
            }
            // Routing was turned off while the payload came in.
            self.fwd_release(now, id);
            self.fwd_drop(
                id,
                Completion::failed(errno::ENETDOWN, HealthStatus::LOCAL_DROPPED),
            );
            return false;
        }
        self.fwd_release(now, id);
        false
    }

    /// An NI is going away: forwarded messages it received that still wait
    /// for router credits are dropped (their LND is being shut down).
    pub(crate) fn router_ni_del(&mut self, now: Instant, ni: NiId) {
        let mut gone = Vec::new();
        for (i, f) in self.router.fwd.iter().enumerate() {
            let Some(f) = f else { continue };
            let id = MsgId {
                idx: i as u32,
                gen: f.gen,
            };
            let waiting = matches!(f.phase, FwdPhase::WaitRtrCredit | FwdPhase::WaitBuffer);
            if waiting && self.msgs.get(id.idx, id.gen).is_some_and(|m| m.ni == ni) {
                gone.push(id);
            }
        }
        for id in gone {
            self.fwd_release(now, id);
            if let Some(m) = self.msgs.remove(id.idx, id.gen) {
                self.counters.msg_free();
                self.counters.drop_count += 1;
                self.counters.drop_length += u64::from(m.hdr.payload_length);
            }
        }
    }

    /// Sends a received forwarded message on (`lnet_send` with source ANY,
    /// the header unchanged).
    pub(super) fn fwd_send(&mut self, now: Instant, id: MsgId) -> bool {
        let Some(m) = self.msgs.get(id.idx, id.gen) else {
            return false;
        };
        let (dest, src_nid) = (m.hdr.dest_nid, m.hdr.src_nid);
        let path = if self.net_is_local(dest.net()) {
            match self.best_ni_on(dest.net(), None) {
                Some(ni) => {
                    let pni = self.peer_ni_for(dest);
                    self.bump_seq(ni, pni);
                    Ok(Path {
                        ni,
                        peer_ni: Some(pni),
                        src_nid,
                        dest_nid: dest,
                        next_hop: dest,
                    })
                }
                None => Err(NoPath(Completion::failed(
                    errno::EHOSTUNREACH,
                    HealthStatus::LOCAL_NO_ROUTE,
                ))),
            }
        } else {
            self.select_routed(dest, None)
        };
        let mut path = match path {
            Ok(p) => p,
            Err(NoPath(c)) => {
                self.fwd_release(now, id);
                self.fwd_drop(id, c);
                return false;
            }
        };
        // The next hop known down on a net with peer_timeout: drop (§7.6).
        let next_down = path
            .peer_ni
            .and_then(|p| self.peers.get(p))
            .is_some_and(|p| !p.up)
            && self
                .ni_ref(path.ni)
                .is_some_and(|n| n.tunables.peer_timeout > 0);
        if next_down {
            self.fwd_release(now, id);
            self.fwd_drop(
                id,
                Completion::failed(errno::EHOSTUNREACH, HealthStatus::REMOTE_DROPPED),
            );
            return false;
        }
        path.src_nid = src_nid;
        let deadline = self.msg_deadline(now, path.ni);
        let len = {
            let Some(m) = self.msgs.get_mut(id.idx, id.gen) else {
                return false;
            };
            m.dir = Dir::Send;
            m.state = MsgState::New;
            m.rx = None;
            m.deadline = deadline;
            m.hdr.payload_length
        };
        if let Some(f) = self.router.fwd_mut(id) {
            f.phase = FwdPhase::Sending;
        }
        self.counters.route_count += 1;
        self.counters.route_length += u64::from(len);
        self.post_on_path(now, id, path);
        true
    }

    /// Marks a forwarded message that could not go on as a drop; `finalize`
    /// (which the caller continues) frees it.
    pub(super) fn fwd_drop(&mut self, id: MsgId, c: Completion) {
        let Some(m) = self.msgs.get(id.idx, id.gen) else {
            return;
        };
        tracing::debug!(
            "forwarding {} -> {}: no way on (errno {}), dropped",
            m.hdr.src_nid,
            m.hdr.dest_nid,
            c.errno
        );
        let (ni, t, len) = (m.ni, m.msg_type, m.hdr.payload_length);
        self.counters.drop_count += 1;
        self.counters.drop_length += u64::from(len);
        if let Some(n) = self.ni_mut(ni) {
            n.stats.dropped(t, len);
        }
    }

    /// Gives back a forwarded message's buffer and credits; serves waiters.
    pub(super) fn fwd_release(&mut self, now: Instant, id: MsgId) {
        let Some(f) = self
            .router
            .fwd
            .get_mut(id.idx as usize)
            .and_then(|s| s.take_if(|f| f.gen == id.gen))
        else {
            return;
        };
        let k = f.pool;
        let off = !self.router.state.forwards();
        let pool = &mut self.router.pools[k.idx()];
        if let Some(b) = f.buf {
            if pool.allocated > pool.nbuffers || off {
                pool.allocated -= 1;
                drop(b);
            } else {
                pool.free.push(b);
            }
        }
        let mut next_buf = None;
        if f.pool_credit {
            if f.phase == FwdPhase::WaitBuffer {
                // Never got its buffer: leave the queue, nobody is released.
                pool.queue.retain(|x| *x != id);
                pool.credits += 1;
            } else {
                pool.credits += 1;
                // The first waiter gets the buffer if one is free (after a
                // shrink, buffers coming back are freed instead).
                if !pool.free.is_empty() {
                    next_buf = pool.queue.pop_front();
                }
            }
        }
        let mut next_credit = None;
        if f.rtr_credit {
            if let Some(c) = self.router.rtr_credits.get_mut(&f.prev) {
                c.credits += 1;
                if f.phase == FwdPhase::WaitRtrCredit {
                    c.queue.retain(|x| *x != id);
                } else if c.credits <= 0 {
                    next_credit = c.queue.pop_front();
                }
            }
        }
        if let Some(w) = next_buf {
            self.fwd_recv(now, w);
        }
        if let Some(w) = next_credit {
            self.fwd_pool_credit(now, w);
        }
    }

    /// Routing was turned off: messages waiting for router credits are
    /// dropped (the LND discards their payload).
    pub(super) fn drop_waiting_forwards(&mut self, now: Instant) {
        let mut waiting = Vec::new();
        for (i, f) in self.router.fwd.iter().enumerate() {
            if let Some(f) = f {
                if matches!(f.phase, FwdPhase::WaitRtrCredit | FwdPhase::WaitBuffer) {
                    waiting.push(MsgId {
                        idx: i as u32,
                        gen: f.gen,
                    });
                }
            }
        }
        for id in waiting {
            self.fwd_release(now, id);
            let Some(m) = self.msgs.remove(id.idx, id.gen) else {
                continue;
            };
            self.counters.msg_free();
            let (ni, hdr, rx) = (m.ni, m.hdr, m.rx.unwrap_or(RxToken(0)));
            self.drop_rx(ni, &hdr, rx, true);
        }
    }
}
