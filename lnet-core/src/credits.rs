//! Send credits (semantics §5.1; `lnet_post_send_locked()` and
//! `lnet_return_tx_credits_locked()` in `lnet/lnet/lib-move.c`).
//!
//! Every message handed to an LND other than loopback holds two credits: one
//! of its next-hop peer NI (`PeerNi::tx_credits`, taken first) and one of its
//! NI (`Ni::tx_credits`). Taking a credit decrements the counter even when it
//! goes negative; a negative counter is the number of messages waiting on
//! that object's FIFO queue. When a message completes it gives its NI credit
//! back (the first message waiting on the NI, which already holds its peer
//! credit, goes out), then its peer NI credit (the first message waiting on
//! the peer NI then tries for an NI credit). `min_tx_credits` are low-water
//! marks for monitoring. Waiters released by a completion are posted from
//! `Lnet::flush`, iteratively, never recursively.

use lnd_api::hdr::GetBody;
use lnd_api::{errno, Completion, HealthStatus, MsgType, Payload, PayloadSpan, TxMsg};

use crate::msg::{MsgId, MsgState};
use crate::ni::{LndOp, Lnet, NiId, Timer};
use crate::time::Instant;

/// Bytes a message occupies in a peer NI's `txqnob`: payload plus the header.
const HDR_BYTES: u64 = 72;

impl Lnet {
    /// Takes the credits a message needs and hands it to its LND, or queues it.
    pub(crate) fn post_send(&mut self, now: Instant, id: MsgId) {
        let Some(m) = self.msgs.get_mut(id.idx, id.gen) else {
            return;
        };
        if m.ni != NiId::LO {
            if !m.peer_credit {
                if let Some(p) = m.peer_ni.and_then(|p| self.peers.get_mut(p)) {
                    let bytes = u64::from(m.hdr.payload_length) + HDR_BYTES;
                    m.peer_credit = true;
                    m.txq_bytes = bytes;
                    p.tx_credits -= 1;
                    p.txqnob += bytes;
                    p.min_tx_credits = p.min_tx_credits.min(p.tx_credits);
                    if p.tx_credits < 0 {
                        p.queue.push_back(id);
                        m.state = MsgState::WaitPeerCredit;
                        let d = m.deadline;
                        self.arm(d, Timer::Msg(id));
                        return;
                    }
                }
            }
            if !m.ni_credit {
                let Some(ni) = self.nis.get_mut(m.ni.0 as usize).and_then(|n| n.as_mut()) else {
                    self.finalize(
                        now,
                        id,
                        Completion::failed(errno::ENETDOWN, HealthStatus::LOCAL_INTERRUPT),
                    );
                    return;
                };
                m.ni_credit = true;
                ni.tx_credits -= 1;
                ni.min_tx_credits = ni.min_tx_credits.min(ni.tx_credits);
                if ni.tx_credits < 0 {
                    ni.queue.push_back(id);
                    m.state = MsgState::WaitNiCredit;
                    let d = m.deadline;
                    self.arm(d, Timer::Msg(id));
                    return;
                }
            }
        }
        self.launch(now, id);
    }

    /// Final checks, then the LND gets the message (`lnet_ni_send`).
    fn launch(&mut self, now: Instant, id: MsgId) {
        let Some(m) = self.msgs.get(id.idx, id.gen) else {
            return;
        };
        if now > m.deadline {
            self.finalize(
                now,
                id,
                Completion::failed(errno::ETIMEDOUT, HealthStatus::NETWORK_TIMEOUT),
            );
            return;
        }
        if let Some(h) = m.md {
            if self.mds.get(h.idx, h.gen).is_none_or(|md| md.aborted) {
                self.finalize(
                    now,
                    id,
                    Completion::failed(errno::ECANCELED, HealthStatus::LOCAL_ABORTED),
                );
                return;
            }
        }
        // A window into the MD's shared fragment list: no allocation. A
        // GET carries its sink MD instead to an LND that asked for it.
        let payload = match self.get_sink(id) {
            Some(sink) => sink,
            None => self.msg_payload(id),
        };
        let Some(m) = self.msgs.get_mut(id.idx, id.gen) else {
            return;
        };
        m.state = MsgState::AtLnd;
        let ni = m.ni;
        let tx = TxMsg {
            token: id.token(),
            hdr: m.hdr,
            target: m.next_hop,
            target_pid: m.next_hop_pid,
            payload: Payload::new(),
            rx: m.rx.into(),
        };
        // Sent counters move when the LND completes it (`finalize`).
        self.lnd_ops.push_back(LndOp::Send { ni, tx, payload });
    }

    /// A GET's sink, when its NI's LND takes it (lnd-api's GET_SINK): the
    /// MD the REPLY will land in, from offset 0, `sink_length` bytes.
    fn get_sink(&self, id: MsgId) -> Option<PayloadSpan> {
        let m = self.msgs.get(id.idx, id.gen)?;
        if m.hdr.msg_type != MsgType::GET {
            return None;
        }
        let min = self.nis.get(m.ni.0 as usize)?.as_ref()?.get_sink_min?;
        let sink = GetBody::from_body(&m.hdr.body).sink_length;
        if sink < min {
            return None;
        }
        let md = m.md.and_then(|h| self.mds.get(h.idx, h.gen))?;
        md.memory.sub(0, sink as usize)
    }

    /// A message's span of its MD (empty without either).
    fn msg_payload(&self, id: MsgId) -> PayloadSpan {
        if let Some(p) = self.fwd_payload(id) {
            // A forwarded message goes out of its router buffer.
            return p;
        }
        let Some(m) = self.msgs.get(id.idx, id.gen) else {
            return PayloadSpan::new();
        };
        if m.span.len == 0 {
            return PayloadSpan::new();
        }
        let sub =
            m.md.and_then(|h| self.mds.get(h.idx, h.gen))
                .and_then(|md| md.memory.sub(m.span.offset as usize, m.span.len as usize));
        // The span was checked against the MD when the message was made, and
        // an MD's memory never changes.
        debug_assert!(sub.is_some(), "message span outside its MD");
        sub.unwrap_or_default()
    }

    /// Gives back the credits a completing message holds; waiters released
    /// go to `to_post` (`lnet_return_tx_credits_locked`).
    pub(crate) fn return_credits(&mut self, id: MsgId) {
        let Some(m) = self.msgs.get_mut(id.idx, id.gen) else {
            return;
        };
        if m.ni_credit {
            m.ni_credit = false;
            if let Some(ni) = self.nis.get_mut(m.ni.0 as usize).and_then(|n| n.as_mut()) {
                ni.tx_credits += 1;
                if ni.tx_credits <= 0 {
                    if let Some(w) = ni.queue.pop_front() {
                        self.to_post.push_back(w);
                    }
                }
            }
        }
        if m.peer_credit {
            m.peer_credit = false;
            if let Some(p) = m.peer_ni.and_then(|p| self.peers.get_mut(p)) {
                p.tx_credits += 1;
                p.txqnob = p.txqnob.saturating_sub(m.txq_bytes);
                if p.tx_credits <= 0 {
                    if let Some(w) = p.queue.pop_front() {
                        self.to_post.push_back(w);
                    }
                }
            }
        }
    }

    /// Takes a waiting message off its queue and undoes the credit it was
    /// waiting for (it never held it, so nobody else is released).
    pub(crate) fn unqueue_waiting(&mut self, id: MsgId) {
        let Some(m) = self.msgs.get_mut(id.idx, id.gen) else {
            return;
        };
        match m.state {
            MsgState::WaitNiCredit => {
                m.ni_credit = false;
                if let Some(ni) = self.nis.get_mut(m.ni.0 as usize).and_then(|n| n.as_mut()) {
                    ni.queue.retain(|x| *x != id);
                    ni.tx_credits += 1;
                }
            }
            MsgState::WaitPeerCredit => {
                m.peer_credit = false;
                if let Some(p) = m.peer_ni.and_then(|p| self.peers.get_mut(p)) {
                    p.queue.retain(|x| *x != id);
                    p.tx_credits += 1;
                    p.txqnob = p.txqnob.saturating_sub(m.txq_bytes);
                }
            }
            _ => return,
        }
        let d = m.deadline;
        m.state = MsgState::New;
        self.disarm(d, Timer::Msg(id));
    }

    /// A waiting message reached its deadline: drop it (§4.6).
    pub(crate) fn expire_waiting_msg(&mut self, now: Instant, id: MsgId) {
        let waiting = self
            .msgs
            .get(id.idx, id.gen)
            .is_some_and(|m| matches!(m.state, MsgState::WaitNiCredit | MsgState::WaitPeerCredit));
        if !waiting {
            return;
        }
        self.unqueue_waiting(id);
        self.finalize(
            now,
            id,
            Completion::failed(errno::ETIMEDOUT, HealthStatus::NETWORK_TIMEOUT),
        );
    }

    /// Posts every message whose credit was just returned.
    pub(crate) fn flush(&mut self, now: Instant) {
        // Peer NIs made by this call (discovery, `peer add`) get the UDSP
        // rules before anyone looks (cheap when there are none).
        self.udsp_settle();
        loop {
            while let Some(id) = self.to_post.pop_front() {
                if let Some(m) = self.msgs.get(id.idx, id.gen) {
                    let d = m.deadline;
                    self.disarm(d, Timer::Msg(id));
                    self.post_send(now, id);
                }
            }
            // Discovery (§9.3) runs here, outside any completion.
            if !self.discovery_pending() {
                break;
            }
            self.discovery_run(now);
        }
    }
}
