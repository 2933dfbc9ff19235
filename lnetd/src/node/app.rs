//! The application API of a running node: what an embedding application
//! calls instead of the kernel's `LNetMEAttach`, `LNetMDAttach`,
//! `LNetMDBind`, `LNetMDUnlink`, `LNetPut` and `LNetGet`.
//!
//! Every method takes the node's lock, calls the engine, drains its outputs
//! and runs the LND calls after releasing the lock, like every other request
//! of the runtime; none of them waits for the network. What happens later
//! arrives as MD events ([`MdEvent`]) in the [`EqHandle`] the MD was created
//! with (upstream's event queue, later the MD's handler): the runtime routes
//! each event of an application MD to its queue by the MD's handle, so the
//! MD's `user_ptr` stays the application's own.
//!
//! The memory of an MD is the application's [`lnd_api::IoBuf`]s: keep a
//! clone to read what a PUT brought or to fill what a GET will take, and do
//! not touch it while LNet may use it (between the call and the event that
//! ends the operation); a conflicting borrow fails with
//! [`lnd_api::mem::Busy`] instead of racing (and a PUT landing in an MD
//! the application holds borrowed fails on the target with `-EBUSY`).
//!
//! An application that also wants `lnetctl` binds a
//! [`crate::ctl::CtlServer`], runs `serve` on a thread and takes the node
//! from [`crate::ctl::CtlServer::node_slot`] once `lnetctl lnet configure`
//! started it (`tests/src/bin/lnet-test-node.rs` does exactly that).
//!
//! ```
//! use std::time::Duration;
//! use lnet_core::lnd_api::{IoBuf, Nid, Payload};
//! use lnetd::node::{MatchSpec, Node, NodeConfig, Target};
//! use lnet_core::{AckReq, EventKind, MdOptions, MdSpec, Threshold, Unlink};
//!
//! let node = Node::start(NodeConfig { pid: 12345, ..NodeConfig::default() })?;
//! let eq = node.eq_alloc();
//! // The target side: 4 KiB on portal 9, match bits 7.
//! let inbox = IoBuf::zeroed(4096);
//! let spec = MdSpec::new(Payload::single(inbox.clone()), MdOptions::OP_PUT, Threshold::Count(1));
//! node.md_attach(MatchSpec::new(9, 7), spec, Unlink::Unlink, &eq)?;
//! // The initiator side: PUT 5 bytes to ourselves, with an ACK.
//! let spec = MdSpec::new(
//!     Payload::single(IoBuf::from_vec(b"hello".to_vec())),
//!     MdOptions::NONE,
//!     Threshold::Count(2),
//! );
//! let md = node.md_bind(spec, Unlink::Unlink, &eq)?;
//! node.put(md, AckReq::Ack, Target::new(Nid::LO_0, 9, 7), 0)?;
//! let mut kinds = Vec::new();
//! while kinds.len() < 3 {
//!     let ev = eq.wait(Duration::from_secs(30)).expect("an event");
//!     assert_eq!(ev.status, 0);
//!     kinds.push(ev.kind);
//! }
//! assert!(kinds.contains(&EventKind::Put) && kinds.contains(&EventKind::Ack));
//! assert_eq!(&inbox.to_vec()?[..5], b"hello");
//! node.shutdown();
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use lnd_api::Nid;

use super::{not_running, Node, NodeError};
use lnet_core::event::MdEvent;
use lnet_core::md::{ApiError, MdHandle, MdSpec, Unlink};
use lnet_core::nid::ProcessId;
use lnet_core::ptl::InsPos;
use lnet_core::send::AckReq;

/// The queue behind an [`EqHandle`].
#[derive(Debug, Default)]
struct EqShared {
    events: Mutex<VecDeque<MdEvent>>,
    ready: Condvar,
}

/// An event queue of the application (`lnet_eq`, `LNetEQAlloc`): MDs created
/// with it deliver their events here, in the order they happened for each
/// MD. Unbounded (upstream's EQ drops events when full; this one never
/// does). Cheap to clone; clones share the queue.
#[derive(Clone, Debug, Default)]
pub struct EqHandle {
    q: Arc<EqShared>,
}

impl EqHandle {
    /// Takes the next event, waiting at most `timeout` for one.
    pub fn wait(&self, timeout: Duration) -> Option<MdEvent> {
        let deadline = std::time::Instant::now() + timeout;
        let mut q = self.q.events.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(ev) = q.pop_front() {
                return Some(ev);
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return None;
            }
            q = self
                .q
                .ready
                .wait_timeout(q, left)
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        }
    }

    /// Takes the next event if there is one (`LNetEQGet`).
    pub fn poll(&self) -> Option<MdEvent> {
        self.q
            .events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop_front()
    }

    /// Number of events waiting.
    pub fn len(&self) -> usize {
        self.q
            .events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }

    /// Whether no event is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(super) fn push(&self, ev: MdEvent) {
        self.q
            .events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push_back(ev);
        self.q.ready.notify_all();
    }
}

/// Which incoming PUTs and GETs an ME accepts (`LNetMEAttach`'s arguments).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MatchSpec {
    /// Portal index, 0..63.
    pub portal: u32,
    /// Whom to accept from (`LNET_NID_ANY` / `LNET_PID_ANY` match anyone).
    pub match_id: ProcessId,
    /// Match bits.
    pub match_bits: u64,
    /// Bits of `match_bits` to ignore.
    pub ignore_bits: u64,
    /// Where on the portal's list the ME goes.
    pub pos: InsPos,
}

impl MatchSpec {
    /// Anyone, these exact match bits, at the tail of the list.
    pub fn new(portal: u32, match_bits: u64) -> Self {
        MatchSpec {
            portal,
            match_id: ProcessId::ANY,
            match_bits,
            ignore_bits: 0,
            pos: InsPos::After,
        }
    }
}

/// The far end of a PUT or GET (`LNetPut`/`LNetGet`'s target arguments).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Target {
    /// The target process.
    pub id: ProcessId,
    /// Portal index.
    pub portal: u32,
    /// Match bits.
    pub match_bits: u64,
    /// Offset in the target's MD (used when it manages remote offsets).
    pub offset: u32,
    /// The local NID to send from (`self` in `LNetPut`); `None` lets
    /// selection choose.
    pub source: Option<Nid>,
}

impl Target {
    /// `nid` with LNet's PID 12345, offset 0, any source NI.
    pub fn new(nid: Nid, portal: u32, match_bits: u64) -> Self {
        Target {
            id: ProcessId {
                nid,
                pid: lnet_core::nid::LNET_PID_LUSTRE,
            },
            portal,
            match_bits,
            offset: 0,
            source: None,
        }
    }
}

fn api_err(e: ApiError) -> NodeError {
    NodeError::failed(e.errno(), e.to_string())
}

impl Node {
    /// A new event queue for the application's MDs (`LNetEQAlloc`).
    pub fn eq_alloc(&self) -> EqHandle {
        EqHandle::default()
    }

    /// Attaches an ME with an MD on a portal (`LNetMEAttach` followed by
    /// `LNetMDAttach`): the target side of PUTs and GETs. The MD needs
    /// `OP_PUT` and/or `OP_GET`; its events go to `eq`. The ME goes away
    /// with its MD: when the MD is exhausted (with [`Unlink::Unlink`]) or
    /// unlinked with [`Node::md_unlink`].
    pub fn md_attach(
        &self,
        me: MatchSpec,
        md: MdSpec,
        unlink: Unlink,
        eq: &EqHandle,
    ) -> Result<MdHandle, NodeError> {
        self.inner.with(|st, _| {
            if st.stopping {
                return Err(not_running());
            }
            let meh = st
                .lnet
                .me_attach(
                    me.portal,
                    me.match_id,
                    me.match_bits,
                    me.ignore_bits,
                    Unlink::Unlink,
                    me.pos,
                )
                .map_err(api_err)?;
            // An invalid MD unlinks the ME (as upstream does).
            let h = st.lnet.md_attach(meh, md, unlink).map_err(api_err)?;
            st.stack.app_md_add(h, eq.clone());
            Ok(h)
        })
    }

    /// Binds a free-floating MD (`LNetMDBind`): the initiator side of a PUT
    /// (its memory is sent) or a GET (the reply lands in it). Give it a
    /// threshold of 2 for a PUT with ACK or a GET (SEND and ACK/REPLY), 1
    /// for a PUT without ACK; its events go to `eq`.
    pub fn md_bind(
        &self,
        md: MdSpec,
        unlink: Unlink,
        eq: &EqHandle,
    ) -> Result<MdHandle, NodeError> {
        self.inner.with(|st, _| {
            if st.stopping {
                return Err(not_running());
            }
            let h = st.lnet.md_bind(md, unlink).map_err(api_err)?;
            st.stack.app_md_add(h, eq.clone());
            Ok(h)
        })
    }

    /// Unlinks an MD (`LNetMDUnlink`): an idle MD reports UNLINK now, a busy
    /// one reports `unlinked` on the event of its last operation.
    pub fn md_unlink(&self, md: MdHandle) -> Result<(), NodeError> {
        self.inner
            .with(|st, _| st.lnet.md_unlink(md).map_err(api_err))
    }

    /// Sends the whole of a bound MD as a PUT (`LNetPut`). Failures to start
    /// (a bad MD or target) return here with no event; anything later (no
    /// route, timeout, the peer gone) comes as the SEND or ACK event's
    /// negative status.
    pub fn put(
        &self,
        md: MdHandle,
        ack: AckReq,
        to: Target,
        hdr_data: u64,
    ) -> Result<(), NodeError> {
        self.inner.with(|st, now| {
            if st.stopping {
                return Err(not_running());
            }
            st.lnet
                .put(
                    now,
                    to.source,
                    md,
                    ack,
                    to.id,
                    to.portal,
                    to.match_bits,
                    to.offset,
                    hdr_data,
                )
                .map_err(api_err)
        })
    }

    /// Fetches into a bound MD with a GET (`LNetGet`): SEND, then REPLY with
    /// the length that landed; failures as for [`Node::put`].
    pub fn get(&self, md: MdHandle, from: Target) -> Result<(), NodeError> {
        self.inner.with(|st, now| {
            if st.stopping {
                return Err(not_running());
            }
            st.lnet
                .get(
                    now,
                    from.source,
                    md,
                    from.id,
                    from.portal,
                    from.match_bits,
                    from.offset,
                )
                .map_err(api_err)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::NodeConfig;
    use lnd_api::{IoBuf, Payload};
    use lnet_core::event::EventKind;
    use lnet_core::md::{MdOptions, Threshold};

    const T: Duration = Duration::from_secs(30);
    const PORTAL: u32 = 9;

    fn node() -> Node {
        Node::start(NodeConfig {
            pid: lnet_core::nid::LNET_PID_LUSTRE,
            ..NodeConfig::default()
        })
        .expect("node starts")
    }

    fn pattern(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(13).wrapping_add(seed) ^ (i >> 9) as u8)
            .collect()
    }

    /// Waits for the events of one operation until each of `kinds` came
    /// (in any order: over lo the ACK or REPLY may come before the SEND) or
    /// one failed; returns them all, in arrival order.
    fn events_until(eq: &EqHandle, kinds: &[EventKind]) -> Vec<MdEvent> {
        let mut out: Vec<MdEvent> = Vec::new();
        loop {
            let ev = eq
                .wait(T)
                .unwrap_or_else(|| panic!("no event after {out:?}"));
            out.push(ev);
            if ev.status != 0 || kinds.iter().all(|k| out.iter().any(|e| e.kind == *k)) {
                return out;
            }
        }
    }

    /// (kind, status) of each event, sorted by kind; the last event is the
    /// one that unlinked the MD.
    fn summary(evs: &[MdEvent]) -> Vec<(EventKind, i32)> {
        assert!(evs.last().is_some_and(|e| e.unlinked), "{evs:?}");
        assert!(evs[..evs.len() - 1].iter().all(|e| !e.unlinked), "{evs:?}");
        let mut v: Vec<_> = evs.iter().map(|e| (e.kind, e.status)).collect();
        v.sort_by_key(|(k, _)| *k as u32);
        v
    }

    fn serve(n: &Node, mb: u64, buf: &IoBuf, eq: &EqHandle) -> MdHandle {
        let spec = MdSpec::new(
            Payload::single(buf.clone()),
            MdOptions::OP_PUT | MdOptions::OP_GET | MdOptions::MANAGE_REMOTE,
            Threshold::Infinite,
        );
        n.md_attach(MatchSpec::new(PORTAL, mb), spec, Unlink::Retain, eq)
            .expect("attach")
    }

    fn put_to(n: &Node, nid: Nid, mb: u64, data: &[u8]) -> Vec<MdEvent> {
        let eq = n.eq_alloc();
        let spec = MdSpec::new(
            Payload::single(IoBuf::from_vec(data.to_vec())),
            MdOptions::NONE,
            Threshold::Count(2),
        );
        let md = n.md_bind(spec, Unlink::Unlink, &eq).expect("bind");
        n.put(md, AckReq::Ack, Target::new(nid, PORTAL, mb), 0x77)
            .expect("put");
        events_until(&eq, &[EventKind::Send, EventKind::Ack])
    }

    #[test]
    fn put_and_get_through_lo_land_byte_for_byte() {
        let n = node();
        let srv_eq = n.eq_alloc();
        for (i, size) in [0usize, 1, 4096, 65536, 1 << 20].into_iter().enumerate() {
            let mb = 0x100 + i as u64;
            let buf = IoBuf::zeroed(size.max(1));
            let srv = serve(&n, mb, &buf, &srv_eq);
            let data = pattern(size, i as u8 + 1);
            let evs = put_to(&n, Nid::LO_0, mb, &data);
            assert_eq!(
                summary(&evs),
                [(EventKind::Ack, 0), (EventKind::Send, 0)],
                "size {size}"
            );
            let ack = evs.iter().find(|e| e.kind == EventKind::Ack).expect("ACK");
            assert_eq!(ack.mlength as usize, size);
            let ev = srv_eq.wait(T).expect("PUT event");
            assert_eq!((ev.kind, ev.status), (EventKind::Put, 0));
            assert_eq!(
                (ev.match_bits, ev.mlength, ev.hdr_data),
                (mb, size as u32, 0x77)
            );
            assert_eq!(ev.md, srv);
            assert_eq!(&buf.to_vec().expect("idle")[..size], &data[..]);

            // And back with a GET of the same bytes.
            let eq = n.eq_alloc();
            let sink = IoBuf::zeroed(size);
            let spec = MdSpec::new(
                Payload::single(sink.clone()),
                MdOptions::NONE,
                Threshold::Count(2),
            );
            let md = n.md_bind(spec, Unlink::Unlink, &eq).expect("bind");
            n.get(md, Target::new(Nid::LO_0, PORTAL, mb)).expect("get");
            let evs = events_until(&eq, &[EventKind::Send, EventKind::Reply]);
            assert_eq!(summary(&evs), [(EventKind::Reply, 0), (EventKind::Send, 0)]);
            let reply = evs
                .iter()
                .find(|e| e.kind == EventKind::Reply)
                .expect("REPLY");
            assert_eq!(reply.mlength as usize, size);
            assert_eq!(sink.to_vec().expect("idle"), data);
            let ev = srv_eq.wait(T).expect("GET event");
            assert_eq!((ev.kind, ev.mlength), (EventKind::Get, size as u32));
            n.md_unlink(srv).expect("unlink");
            let ev = srv_eq.wait(T).expect("UNLINK event");
            assert_eq!((ev.kind, ev.unlinked), (EventKind::Unlink, true));
        }
        assert!(srv_eq.is_empty());
        n.shutdown();
    }

    #[test]
    fn a_put_to_nothing_attached_is_dropped_and_the_ack_never_comes() {
        let n = node();
        let eq = n.eq_alloc();
        let spec = MdSpec::new(
            Payload::single(IoBuf::from_vec(vec![1, 2, 3])),
            MdOptions::NONE,
            Threshold::Count(2),
        );
        let md = n.md_bind(spec, Unlink::Unlink, &eq).expect("bind");
        n.put(md, AckReq::Ack, Target::new(Nid::LO_0, PORTAL, 42), 0)
            .expect("put");
        let ev = eq.wait(T).expect("SEND event");
        assert_eq!(ev.kind, EventKind::Send);
        assert_eq!(
            eq.wait(Duration::from_millis(200)),
            None,
            "no ACK for a drop"
        );
        n.md_unlink(md).expect("unlink");
        let ev = eq.wait(T).expect("UNLINK event");
        assert_eq!((ev.kind, ev.unlinked), (EventKind::Unlink, true));
        n.shutdown();
    }

    #[test]
    fn events_go_to_the_queue_of_their_md_and_user_pointers_stay_the_apps() {
        let n = node();
        let (eq_a, eq_b) = (n.eq_alloc(), n.eq_alloc());
        let (buf_a, buf_b) = (IoBuf::zeroed(8), IoBuf::zeroed(8));
        // A user pointer that looks like one of selftest's tags must still
        // reach the application.
        let selftest_like = 0x5354_0100_0000_0001;
        let mut spec = MdSpec::new(
            Payload::single(buf_a.clone()),
            MdOptions::OP_PUT,
            Threshold::Count(1),
        );
        spec.user_ptr = selftest_like;
        n.md_attach(MatchSpec::new(PORTAL, 1), spec, Unlink::Unlink, &eq_a)
            .expect("attach a");
        let spec = MdSpec::new(
            Payload::single(buf_b.clone()),
            MdOptions::OP_PUT,
            Threshold::Count(1),
        );
        n.md_attach(MatchSpec::new(PORTAL, 2), spec, Unlink::Unlink, &eq_b)
            .expect("attach b");
        put_to(&n, Nid::LO_0, 2, b"bbbbbbbb");
        put_to(&n, Nid::LO_0, 1, b"aaaaaaaa");
        let a = eq_a.wait(T).expect("a's PUT");
        let b = eq_b.wait(T).expect("b's PUT");
        assert_eq!(
            (a.match_bits, a.user_ptr, a.unlinked),
            (1, selftest_like, true)
        );
        assert_eq!((b.match_bits, b.user_ptr, b.unlinked), (2, 0, true));
        assert!(eq_a.is_empty() && eq_b.is_empty());
        assert_eq!(buf_a.to_vec().expect("idle"), b"aaaaaaaa");
        assert_eq!(buf_b.to_vec().expect("idle"), b"bbbbbbbb");
        n.shutdown();
    }

    #[test]
    fn bad_requests_fail_at_once_with_the_engine_s_message() {
        let n = node();
        let eq = n.eq_alloc();
        let spec = MdSpec::new(Payload::new(), MdOptions::OP_PUT, Threshold::Count(1));
        let e = n
            .md_attach(MatchSpec::new(64, 0), spec, Unlink::Unlink, &eq)
            .expect_err("portal 64");
        assert_eq!(e.errno(), lnd_api::errno::EINVAL);
        assert!(e.to_string().contains("portal 64"), "{e}");
        let spec = MdSpec::new(Payload::new(), MdOptions::OP_PUT, Threshold::Count(1));
        let e = n
            .md_bind(spec, Unlink::Unlink, &eq)
            .expect_err("OP_PUT bound");
        assert!(e.to_string().contains("invalid MD"), "{e}");
        let spec = MdSpec::new(Payload::new(), MdOptions::NONE, Threshold::Count(1));
        let md = n.md_bind(spec, Unlink::Unlink, &eq).expect("bind");
        n.md_unlink(md).expect("unlink");
        let e = n
            .put(md, AckReq::NoAck, Target::new(Nid::LO_0, PORTAL, 0), 0)
            .expect_err("stale MD");
        assert_eq!(e.errno(), lnd_api::errno::ENOENT);
        n.shutdown();
        let spec = MdSpec::new(Payload::new(), MdOptions::NONE, Threshold::Count(1));
        let e = n.md_bind(spec, Unlink::Unlink, &eq).expect_err("stopped");
        assert_eq!(e.errno(), lnd_api::errno::ENETDOWN);
    }
}
