//! Events (`struct lnet_event`, semantics §3) and the engine's output queue.
//!
//! MD events are what an MD's handler would receive in the kernel; here they
//! are queued and drained with [`crate::Lnet::poll_event`]. Events for one MD
//! are queued in the order they happen, the final one (with `unlinked`) last.
//! Ping results come through the same queue as [`Event::PingDone`].

use lnd_api::{MsgType, Nid};

use crate::md::MdHandle;
use crate::nid::ProcessId;
use crate::ping::{PingError, PingId, PingInfo};

/// Kind of an MD event (`enum lnet_event_kind`, upstream's values).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[repr(u32)]
pub enum EventKind {
    /// Target: an incoming GET matched and its REPLY was sent.
    Get = 1,
    /// Target: an incoming PUT's payload is in the MD.
    Put = 2,
    /// Initiator: the REPLY of our GET landed.
    Reply = 3,
    /// Initiator: the ACK of our PUT arrived.
    Ack = 4,
    /// Initiator: our PUT/GET was handed off; the buffer may be reused.
    Send = 5,
    /// Either: an idle MD was unlinked.
    Unlink = 6,
}

/// One MD event (`struct lnet_event`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct MdEvent {
    /// What happened.
    pub kind: EventKind,
    /// The MD.
    pub md: MdHandle,
    /// The MD's user pointer.
    pub user_ptr: u64,
    /// Passive side: {primary NID of the source peer, source PID}; SEND: ANY.
    pub initiator: ProcessId,
    /// Passive side: {header `src_nid`, source PID}; SEND: ANY.
    pub source: ProcessId,
    /// The last hop the message came from (`sender`); SEND: ANY.
    pub sender: Nid,
    /// {header `dest_nid`, `dest_pid`}.
    pub target: ProcessId,
    /// Portal index.
    pub portal: u32,
    /// Match bits.
    pub match_bits: u64,
    /// Requested length.
    pub rlength: u32,
    /// Length actually moved.
    pub mlength: u32,
    /// Offset in the MD.
    pub offset: u32,
    /// PUT's 64 bits of user data.
    pub hdr_data: u64,
    /// 0 or a negative errno.
    pub status: i32,
    /// The last event of this MD: it is gone.
    pub unlinked: bool,
    /// For SEND: PUT or GET; else the message type that caused the event.
    pub msg_type: MsgType,
}

/// An output of the engine for the application or the runtime.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// An MD event.
    Md(MdEvent),
    /// A ping issued with [`crate::Lnet::ping`] finished.
    PingDone {
        /// The ping.
        id: PingId,
        /// The target's ping buffer, or why there is none.
        result: Result<PingInfo, PingError>,
    },
    /// A discovery started with [`crate::Lnet::discover`] finished.
    DiscoverDone {
        /// The request.
        id: crate::discovery::DiscoverId,
        /// The NID it was asked for.
        nid: lnd_api::Nid,
        /// The peer's primary NID, or a negative errno.
        result: Result<lnd_api::Nid, i32>,
    },
}

impl crate::ni::Lnet {
    /// Routes an MD event to whoever consumes it.
    pub(crate) fn deliver_event(
        &mut self,
        now: crate::time::Instant,
        owner: crate::md::MdOwner,
        ev: MdEvent,
    ) {
        use crate::md::MdOwner;
        match owner {
            MdOwner::User => self.events.push_back(Event::Md(ev)),
            MdOwner::PingTarget => {}
            MdOwner::PushTarget => self.push_event(now, ev),
            MdOwner::Ping(id) => self.ping_md_event(now, id, ev),
            MdOwner::Push(peer) => crate::discovery::push_owner_event(self, peer, ev),
        }
    }
}
