//! Messages in flight (`struct lnet_msg`, `lnet/lnet/lib-msg.c`) and the
//! generation-checked slab every engine object lives in.
//!
//! A message is created when a send is committed ([`crate::Lnet::put`],
//! [`crate::Lnet::get`], an ACK or a REPLY) or when a header is parsed
//! ([`crate::Lnet::handle_rx`]), and freed by `finalize` exactly once. While an
//! LND owns it the LND holds its [`MsgToken`]: index and generation into the
//! message slab, so a stale or forged token is detected and counted, never
//! trusted.

use lnd_api::{Completion, Hdr, MsgToken, MsgType, Nid, RxToken};

use crate::event::EventKind;
use crate::md::MdHandle;
use crate::ni::NiId;
use crate::nid::ProcessId;
use crate::peer::PeerNiId;
use crate::time::Instant;

/// A slab whose slots carry a generation, so that handles to freed objects
/// are recognised as stale instead of aliasing a new object.
#[derive(Debug)]
pub(crate) struct GenSlab<T> {
    slots: Vec<Slot<T>>,
    free: Vec<u32>,
    len: usize,
}

#[derive(Debug)]
struct Slot<T> {
    gen: u32,
    val: Option<T>,
}

impl<T> Default for GenSlab<T> {
    fn default() -> Self {
        GenSlab {
            slots: Vec::new(),
            free: Vec::new(),
            len: 0,
        }
    }
}

impl<T> GenSlab<T> {
    /// Stores `v`; returns its index and generation.
    #[inline]
    pub(crate) fn insert(&mut self, v: T) -> (u32, u32) {
        self.len += 1;
        if let Some(idx) = self.free.pop() {
            let slot = &mut self.slots[idx as usize];
            slot.val = Some(v);
            return (idx, slot.gen);
        }
        let idx = u32::try_from(self.slots.len()).unwrap_or(u32::MAX);
        self.slots.push(Slot {
            gen: 1,
            val: Some(v),
        });
        (idx, 1)
    }

    pub(crate) fn get(&self, idx: u32, gen: u32) -> Option<&T> {
        self.slots
            .get(idx as usize)
            .filter(|s| s.gen == gen)
            .and_then(|s| s.val.as_ref())
    }

    pub(crate) fn get_mut(&mut self, idx: u32, gen: u32) -> Option<&mut T> {
        self.slots
            .get_mut(idx as usize)
            .filter(|s| s.gen == gen)
            .and_then(|s| s.val.as_mut())
    }

    #[inline]
    pub(crate) fn remove(&mut self, idx: u32, gen: u32) -> Option<T> {
        let slot = self.slots.get_mut(idx as usize).filter(|s| s.gen == gen)?;
        let v = slot.val.take()?;
        self.vacate(idx);
        Some(v)
    }

    /// Removes and drops the entry in its slot, without moving it out
    /// (an MD or message is a few hundred bytes); whether it was there.
    pub(crate) fn discard(&mut self, idx: u32, gen: u32) -> bool {
        let Some(slot) = self.slots.get_mut(idx as usize).filter(|s| s.gen == gen) else {
            return false;
        };
        if slot.val.is_none() {
            return false;
        }
        slot.val = None;
        self.vacate(idx);
        true
    }

    /// Frees slot `idx`, just emptied: a new generation for it and onto
    /// the free list.
    #[inline]
    fn vacate(&mut self, idx: u32) {
        let slot = &mut self.slots[idx as usize];
        // Never hand out generation 0 or u32::MAX (wire cookies avoid all-ones).
        slot.gen = match slot.gen.wrapping_add(1) {
            0 | u32::MAX => 1,
            g => g,
        };
        self.free.push(idx);
        self.len -= 1;
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Live entries as `(index, generation, value)`, in slot order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u32, u32, &T)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.val.as_ref().map(|v| (i as u32, s.gen, v)))
    }
}

/// Index and generation of a message, as packed into a [`MsgToken`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub(crate) struct MsgId {
    pub(crate) idx: u32,
    pub(crate) gen: u32,
}

impl MsgId {
    pub(crate) fn token(self) -> MsgToken {
        MsgToken((u64::from(self.gen) << 32) | u64::from(self.idx))
    }
    pub(crate) fn from_token(t: MsgToken) -> MsgId {
        MsgId {
            idx: t.0 as u32,
            gen: (t.0 >> 32) as u32,
        }
    }
}

/// Which side of an operation a message is.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Dir {
    /// We transmit it (PUT, GET, ACK, REPLY).
    Send,
    /// We received its header (PUT, GET, ACK, REPLY).
    Recv,
}

/// Where a message is in its life (explicit state machine).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum MsgState {
    /// Committed, not yet posted (transient inside one call).
    New,
    /// Waiting on its peer NI's queue for a peer NI tx credit.
    WaitPeerCredit,
    /// Waiting on its NI's queue for an NI tx credit.
    WaitNiCredit,
    /// Handed to the LND by `send`; the LND finalizes it.
    AtLnd,
    /// Handed to the LND by `recv`; the LND finalizes it.
    Receiving,
    /// A PUT waiting on a lazy portal for a matching MD.
    Delayed,
}

/// A byte range of a message's MD: where its payload lies.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub(crate) struct Span {
    pub(crate) offset: u32,
    pub(crate) len: u32,
}

/// What a received PUT needs acknowledged, kept until its receive completes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct AckWanted {
    pub(crate) wmd: lnd_api::WireHandle,
}

/// The event fields a message will report when it completes (`msg_ev`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct EvInfo {
    pub(crate) kind: EventKind,
    pub(crate) initiator: ProcessId,
    pub(crate) source: ProcessId,
    pub(crate) sender: Nid,
    pub(crate) target: ProcessId,
    pub(crate) portal: u32,
    pub(crate) match_bits: u64,
    pub(crate) rlength: u32,
    pub(crate) mlength: u32,
    pub(crate) offset: u32,
    pub(crate) hdr_data: u64,
    pub(crate) msg_type: MsgType,
}

/// One message (`struct lnet_msg`).
#[derive(Debug)]
pub(crate) struct Msg {
    pub(crate) dir: Dir,
    pub(crate) state: MsgState,
    pub(crate) msg_type: MsgType,
    /// The header sent (send side) or received (receive side).
    pub(crate) hdr: Hdr,
    /// Send: the NI it leaves from; receive: the NI it arrived on.
    pub(crate) ni: NiId,
    /// Send: the next hop; receive: the previous hop. `None` for loopback.
    pub(crate) peer_ni: Option<PeerNiId>,
    /// Send: next-hop NID and PID (`msg_target`).
    pub(crate) next_hop: Nid,
    pub(crate) next_hop_pid: u32,
    /// Receive: the previous hop as the LND reported it.
    pub(crate) from: Nid,
    /// Receive: the LND's token; send of a REPLY: the GET's token.
    pub(crate) rx: Option<RxToken>,
    /// The MD this message is attached to (holds a reference on it).
    pub(crate) md: Option<MdHandle>,
    /// Send: the bytes to send, as a range of `md` (empty without an MD).
    /// The fragment list for the LND is built from it when the message is
    /// handed over, so the message itself holds no heap allocation.
    pub(crate) span: Span,
    pub(crate) ev: EvInfo,
    /// Credits held (`msg_txcredit`, `msg_peertxcredit`).
    pub(crate) ni_credit: bool,
    pub(crate) peer_credit: bool,
    /// Bytes charged to the peer NI's `txqnob`.
    pub(crate) txq_bytes: u64,
    pub(crate) deadline: Instant,
    pub(crate) ack: Option<AckWanted>,
    /// A receive that ran after `parse` returned.
    pub(crate) delayed: bool,
    /// When the message was committed (latency statistics).
    pub(crate) committed_at: Instant,
    /// Resends so far (`msg_retry_count`).
    pub(crate) retries: u32,
    /// The destination and source the request was given (for resends).
    pub(crate) orig_dest: Nid,
    pub(crate) src_param: Option<Nid>,
    /// A recovery ping's GET (§8.6): forced path, never resent.
    pub(crate) recovery: bool,
}

impl Msg {
    /// Bytes of payload carried on the wire.
    pub(crate) fn wire_len(&self) -> u32 {
        self.hdr.payload_length
    }
}

/// What a received PUT's ACK needs of the PUT (see [`Lnet::send_ack`]).
pub(crate) struct AckTo {
    pub(crate) ack: AckWanted,
    pub(crate) ev: EvInfo,
    pub(crate) src_nid: Nid,
    pub(crate) dest_nid: Nid,
    pub(crate) src_pid: u32,
    pub(crate) ni: NiId,
    pub(crate) peer_ni: Option<PeerNiId>,
    pub(crate) from: Nid,
}

impl AckTo {
    fn of(put: &Msg, ack: AckWanted) -> AckTo {
        AckTo {
            ack,
            ev: put.ev,
            src_nid: put.hdr.src_nid,
            dest_nid: put.hdr.dest_nid,
            src_pid: put.hdr.src_pid,
            ni: put.ni,
            peer_ni: put.peer_ni,
            from: put.from,
        }
    }
}

/// The latency sample of a successful completion: the NI, which
/// statistic (0 PUT egress, 1 GET round trip, 2 PUT to ACK) and the
/// nanoseconds.
fn latency_sample(mds: &crate::md::MdTable, now: Instant, m: &Msg) -> Option<(NiId, u8, u64)> {
    let sent =
        m.md.and_then(|h| mds.get(h.idx, h.gen))
            .and_then(|md| md.sent);
    let (ni, kind, since) = match (m.dir, m.msg_type) {
        (Dir::Send, MsgType::PUT) if m.ev.kind == crate::event::EventKind::Send => {
            (m.ni, 0, m.committed_at)
        }
        (Dir::Recv, MsgType::REPLY) => {
            let (t, ni) = sent?;
            (ni, 1, t)
        }
        (Dir::Recv, MsgType::ACK) => {
            let (t, ni) = sent?;
            (ni, 2, t)
        }
        _ => return None,
    };
    let ns = now.since(since).as_nanos().min(u128::from(u64::MAX)) as u64;
    Some((ni, kind, ns))
}

/// `lnet_msg_detach_md`: drops the message's reference on its MD; the
/// event to deliver, its MD's owner, and whether the MD is to be unlinked.
fn detach_md(
    mds: &mut crate::md::MdTable,
    m: &Msg,
    status: i32,
) -> Option<(MdHandle, bool, crate::md::MdOwner, crate::event::MdEvent)> {
    let h = m.md?;
    let md = mds.get_mut(h.idx, h.gen)?;
    md.refcount = md.refcount.saturating_sub(1);
    let unlink = md.unlinkable();
    let status = if md.aborted && status == 0 {
        -lnd_api::errno::ETIMEDOUT
    } else {
        status
    };
    let ev = crate::event::MdEvent {
        kind: m.ev.kind,
        md: h,
        user_ptr: md.user_ptr,
        initiator: m.ev.initiator,
        source: m.ev.source,
        sender: m.ev.sender,
        target: m.ev.target,
        portal: m.ev.portal,
        match_bits: m.ev.match_bits,
        rlength: m.ev.rlength,
        mlength: m.ev.mlength,
        offset: m.ev.offset,
        hdr_data: m.ev.hdr_data,
        status,
        unlinked: unlink,
        msg_type: m.ev.msg_type,
    };
    Some((h, unlink, md.owner, ev))
}

/// Health bookkeeping result of a completion, for counters (`lnet_health_check`).
pub(crate) fn failed_health(c: &Completion) -> Option<lnd_api::HealthStatus> {
    if c.errno != 0 && c.health != lnd_api::HealthStatus::OK {
        Some(c.health)
    } else {
        None
    }
}

impl crate::ni::Lnet {
    /// A message that did not complete: global, NI and peer NI drop counters.
    pub(crate) fn count_drop(&mut self, ni: NiId, pni: Option<PeerNiId>, t: MsgType, len: u32) {
        self.counters.drop_count += 1;
        self.counters.drop_length += u64::from(len);
        if let Some(n) = self.ni_mut(ni) {
            n.stats.dropped(t, len);
        }
        if let Some(p) = pni.and_then(|p| self.peers.get_mut(p)) {
            p.stats.dropped(t, len);
        }
    }

    /// A message that completed: sent or received, `len` bytes of payload.
    pub(crate) fn count_done(
        &mut self,
        dir: Dir,
        ni: NiId,
        pni: Option<PeerNiId>,
        t: MsgType,
        len: u32,
    ) {
        let peer = pni.and_then(|p| self.peers.get_mut(p));
        match dir {
            Dir::Send => {
                if let Some(p) = peer {
                    p.stats.sent(t, len);
                }
                if let Some(n) = self.ni_mut(ni) {
                    n.stats.sent(t, len);
                }
                self.counters.send_count += 1;
                self.counters.send_length += u64::from(len);
            }
            Dir::Recv => {
                if let Some(p) = peer {
                    p.stats.received(t, len);
                }
                if let Some(n) = self.ni_mut(ni) {
                    n.stats.received(t, len);
                }
                self.counters.recv_count += 1;
                self.counters.recv_length += u64::from(len);
            }
        }
    }

    /// Creates a message, counting it (`lnet_msg_alloc`).
    pub(crate) fn msg_alloc(&mut self, m: Msg) -> MsgId {
        self.counters.msg_alloc();
        let (idx, gen) = self.msgs.insert(m);
        MsgId { idx, gen }
    }

    /// An LND finished a message it owned (`lnet_finalize`). A stale or
    /// unknown token, or one for a message the LND does not own, is counted
    /// in [`crate::Counters::stale_tokens`] and ignored.
    pub fn handle_done(&mut self, now: Instant, msg: MsgToken, status: Completion) {
        let id = MsgId::from_token(msg);
        let owned = self
            .msgs
            .get(id.idx, id.gen)
            .is_some_and(|m| matches!(m.state, MsgState::AtLnd | MsgState::Receiving));
        if !owned {
            self.counters.stale_tokens += 1;
            tracing::debug!(token = msg.0, "finalize with a stale message token ignored");
            return;
        }
        self.finalize(now, id, status);
        self.flush(now);
    }

    /// Completes a message exactly once (`lnet_finalize` +
    /// `lnet_complete_msg_locked`): health, credits, MD detach and event, the
    /// ACK of a received PUT, free.
    pub(crate) fn finalize(&mut self, now: Instant, id: MsgId, status: Completion) {
        if self.fwd_finalize(now, id, status) {
            // A forwarded message was received and goes on (crate::router).
            return;
        }
        let Some(m) = self.msgs.get(id.idx, id.gen) else {
            return;
        };
        let (dir, ni, pni, t, len, state, deadline) = (
            m.dir,
            m.ni,
            m.peer_ni,
            m.msg_type,
            m.wire_len(),
            m.state,
            m.deadline,
        );
        // Bytes a successful receive delivered: what landed in the MD (a
        // truncated PUT or REPLY counts its matched length; ACK and GET
        // carry none).
        let delivered = match t {
            MsgType::PUT | MsgType::REPLY => m.ev.mlength,
            _ => 0,
        };
        if status.errno != 0 {
            self.counters.errors += 1;
            if let Some(h) = failed_health(&status) {
                self.counters.health.bump(h);
                if let Some(n) = self.ni_mut(ni) {
                    n.stats.health.bump(h);
                }
            }
            // A message that did not complete is a drop, whether it failed
            // before the LND, at the LND (each failed attempt), or while its
            // payload came in (issue 11 item 6).
            self.count_drop(ni, pni, t, len);
        } else {
            // Counted when the message completed, not when its header was
            // parsed or it was handed to the LND (upstream's decommit).
            self.count_done(
                dir,
                ni,
                pni,
                t,
                if dir == Dir::Recv { delivered } else { len },
            );
        }
        // A failure past the deadline changes no health and is not resent
        // (§8.3 step 1).
        let late = status.errno != 0 && now > deadline;
        if !late {
            self.health_update(now, ni, pni, dir, &status);
        }
        if dir == Dir::Send {
            self.return_credits(id);
            if !late
                && status.errno != 0
                && state == MsgState::AtLnd
                && self.resend(now, id, &status)
            {
                return;
            }
        }
        // What the completion still needs is read from the message where
        // it lies, which is then dropped in its slot: a message is a few
        // hundred bytes, moving it out cost more than all of this (issue 17).
        let Some(m) = self.msgs.get(id.idx, id.gen) else {
            return;
        };
        let retries = m.retries;
        let sample = if status.is_ok() {
            latency_sample(&self.mds, now, m)
        } else {
            None
        };
        let detached = detach_md(&mut self.mds, m, status.errno);
        let ack = match m.ack {
            Some(ack) if dir == Dir::Recv && t == MsgType::PUT && status.is_ok() => {
                Some(AckTo::of(m, ack))
            }
            _ => None,
        };
        self.msgs.discard(id.idx, id.gen);
        self.counters.msg_free();
        if retries > 0 {
            if status.is_ok() {
                self.counters.successful_resends += 1;
            } else {
                self.counters.failed_resends += 1;
            }
        }
        if let Some((ni, kind, ns)) = sample {
            if let Some(n) = self.ni_mut(ni) {
                match kind {
                    0 => n.stats.put_egress.sample(ns),
                    1 => n.stats.get_rtt.sample(ns),
                    _ => n.stats.put_ack.sample(ns),
                }
            }
        }
        if let Some((h, unlink, owner, ev)) = detached {
            if unlink {
                self.md_start_unlink(h);
            }
            self.deliver_event(now, owner, ev);
        }
        if let Some(to) = ack {
            self.send_ack(now, &to);
        }
    }

    /// Resends a send that failed at the LND, if §8.4 allows: any message
    /// type (a request, or a REPLY or ACK, as upstream's health check
    /// does), not a recovery ping, retries left, health enabled, a resendable status
    /// (local: more than one local NI; REMOTE_DROPPED: the peer has more
    /// than one NID), MD not aborted. Path selection runs again with the
    /// original arguments, so health steers it elsewhere.
    ///
    /// A response resent this way reaches the requester on another path:
    /// the requester matches a REPLY or ACK by the MD handle it carries, not
    /// by the NIDs. Without it, a REPLY aborted by a link cut was lost, and
    /// the GET behind it (an `lst brw` RPC, a Lustre bulk) timed out.
    fn resend(&mut self, now: Instant, id: MsgId, status: &Completion) -> bool {
        use lnd_api::HealthStatus as H;
        let Some(m) = self.msgs.get(id.idx, id.gen) else {
            return false;
        };
        if m.recovery {
            return false;
        }
        let t = &self.cfg.tunables;
        if m.retries >= t.retry_count || t.health_sensitivity == 0 {
            return false;
        }
        let local = matches!(
            status.health,
            H::LOCAL_INTERRUPT
                | H::LOCAL_DROPPED
                | H::LOCAL_ABORTED
                | H::LOCAL_NO_ROUTE
                | H::LOCAL_TIMEOUT
        );
        let remote = status.health == H::REMOTE_DROPPED;
        if local {
            let nis = self
                .nis
                .iter()
                .flatten()
                .filter(|n| n.net != lnd_api::NetId::LO)
                .count();
            if nis <= 1 {
                return false;
            }
        } else if remote {
            let nids = m
                .peer_ni
                .and_then(|p| self.peers.get(p))
                .and_then(|p| self.peers.peer(p.peer))
                .map_or(0, |p| {
                    p.nets.iter().map(|n| n.peer_nis.len()).sum::<usize>()
                });
            if nids <= 1 {
                return false;
            }
        } else {
            return false;
        }
        if m.md
            .and_then(|h| self.mds.get(h.idx, h.gen))
            .is_some_and(|md| md.aborted)
        {
            return false;
        }
        // A source NID given by the sender pins the first try to that NI
        // and that peer NI; after a failure on that path (a local one: its
        // link went down, its sends were aborted; a REMOTE_DROPPED: the LND
        // could not reach that peer NI from there) the pin would only make
        // the resend fail the same way, so Multi-Rail chooses among the
        // healthy local and peer NIs instead. (A server answering from the
        // NID a request arrived on, as selftest and ptlrpc do, still reaches
        // the peer: it matches on the peer.)
        let (dest, src) = (m.orig_dest, None);
        let Ok(path) = self.select_path(dest, src) else {
            return false;
        };
        if let Some(m) = self.msgs.get_mut(id.idx, id.gen) {
            m.retries += 1;
            m.state = MsgState::New;
            // A REPLY's receive token belongs to the LND of the NI its GET
            // came in on; the resend may leave through another.
            m.rx = None;
        }
        self.counters.resend_count += 1;
        self.post_on_path(now, id, path);
        true
    }

    /// Health bookkeeping at completion (semantics §8.3; resends are not done).
    fn health_update(
        &mut self,
        now: Instant,
        ni: NiId,
        pni: Option<PeerNiId>,
        dir: Dir,
        c: &Completion,
    ) {
        let sens = self.cfg.tunables.health_sensitivity;
        if ni == NiId::LO || pni.is_none() || sens == 0 {
            return;
        }
        // Inconsistent status: skip.
        if (c.errno == 0) != (c.health == lnd_api::HealthStatus::OK) {
            return;
        }
        use lnd_api::HealthStatus as H;
        let (local, remote) = match c.health {
            H::OK => {
                if let Some(v) = self.ni_ref(ni).map(|n| n.health_value) {
                    if v < 1000 {
                        self.ni_health_to(now, ni, v.saturating_add(sens));
                    }
                }
                if dir == Dir::Recv {
                    // From a gateway, or on a router: full health (§8.3).
                    let full = self.cfg.tunables.routing
                        || pni.is_some_and(|p| self.gateway_health_sensitivity(p).is_some());
                    if let Some(p) = pni.and_then(|p| self.peers.get_mut(p)) {
                        p.health_value = if full {
                            1000
                        } else {
                            (p.health_value + sens).min(1000)
                        };
                    }
                }
                return;
            }
            H::LOCAL_INTERRUPT
            | H::LOCAL_DROPPED
            | H::LOCAL_ABORTED
            | H::LOCAL_NO_ROUTE
            | H::LOCAL_TIMEOUT
            | H::LOCAL_ERROR => (true, false),
            H::REMOTE_DROPPED | H::REMOTE_ERROR | H::REMOTE_TIMEOUT => (false, true),
            H::NETWORK_TIMEOUT => (true, true),
            _ => (false, false),
        };
        if local {
            if let Some(v) = self.ni_ref(ni).map(|n| n.health_value) {
                self.ni_health_to(now, ni, v.saturating_sub(sens));
            }
        }
        if remote {
            if let Some(p) = pni {
                self.peer_ni_failed(now, p);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gen_slab_detects_stale_handles() {
        let mut s = GenSlab::default();
        let (i, g) = s.insert("a");
        assert_eq!(s.get(i, g), Some(&"a"));
        assert_eq!(s.remove(i, g), Some("a"));
        assert_eq!(s.get(i, g), None);
        assert_eq!(s.remove(i, g), None);
        let (i2, g2) = s.insert("b");
        assert_eq!(i2, i);
        assert_ne!(g2, g);
        assert_eq!(s.get(i, g), None);
        assert_eq!(s.len(), 1);
        assert_eq!(s.iter().count(), 1);
    }

    /// `discard` is `remove` without the value: the entry is dropped
    /// (once), the slot reused under a new generation, a stale or repeated
    /// discard does nothing.
    #[test]
    fn gen_slab_discard_drops_in_place() {
        let mut s = GenSlab::default();
        let v = std::rc::Rc::new(());
        let (i, g) = s.insert(v.clone());
        let (j, h) = s.insert(v.clone());
        assert_eq!(std::rc::Rc::strong_count(&v), 3);
        assert!(s.discard(i, g));
        assert_eq!(std::rc::Rc::strong_count(&v), 2);
        assert!(!s.discard(i, g));
        assert!(s.get(i, g).is_none());
        assert_eq!(s.len(), 1);
        let (i2, g2) = s.insert(v.clone());
        assert_eq!(i2, i);
        assert_ne!(g2, g);
        assert!(!s.discard(i, g), "a stale handle discards nothing");
        assert!(s.get(i2, g2).is_some());
        assert!(s.get(j, h).is_some());
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn msg_token_round_trips() {
        let id = MsgId { idx: 7, gen: 9 };
        assert_eq!(MsgId::from_token(id.token()), id);
    }
}
