//! Ping: the target that answers every node's pings on portal 0, and the
//! initiator side of `lnetctl ping` (`lnet_ping_target_*()` and `lnet_ping()`
//! in `lnet/lnet/api-ni.c`, wire.md §6).
//!
//! The target is an ME on portal 0 (any NID/PID, match bits
//! [`LNET_PROTO_PING_MATCHBITS`]) with an MD over the ping buffer (`GET |
//! TRUNCATE | MANAGE_REMOTE`, infinite threshold): a GET gets
//! `min(sink_length, size)` bytes back. The buffer lists our NIs (`0@lo`
//! first, carrying the sequence number, which is bumped whenever the NI set
//! or an NI's status changes).
//!
//! The push target (same portal and match bits, `PUT | TRUNCATE`, threshold
//! 1, re-posted after each push) takes discovery pushes; portal 0 is lazy, so
//! a push arriving while no buffer is posted waits.
//!
//! [`Lnet::ping`] binds a sink MD, sends a GET, and reports
//! [`crate::Event::PingDone`] with the parsed buffer, an error, or a timeout;
//! a reply that says it was truncated is retried once with a buffer of the
//! announced size.

use std::collections::HashMap;
use std::fmt;

use lnd_api::{errno, IoBuf, Nid, Payload};

use crate::event::{Event, EventKind, MdEvent};
use crate::md::{ApiError, MdHandle, MdOptions, MdOwner, MdSpec, Threshold, Unlink};
use crate::me::MeHandle;
use crate::ni::{Lnet, Timer};
use crate::nid::{ProcessId, LNET_PID_ANY, LNET_PID_LUSTRE};
use crate::ptl::InsPos;
use crate::time::{Duration, Instant};
pub use crate::wire::{NiStatus, PingInfo, PingInfoError};
use crate::wire::{
    LNET_NI_STATUS_DOWN, LNET_NI_STATUS_UP, LNET_PING_FEAT_DISCOVERY, LNET_PING_FEAT_MULTI_RAIL,
    LNET_PING_FEAT_NI_STATUS, LNET_PING_FEAT_RTE_DISABLED, LNET_PROTO_PING_MATCHBITS,
};

/// First sink size of a ping: room for 0@lo and 63 classic entries.
const PING_SINK_SIZE: usize = 16 + 16 * 64;

/// Size of the posted push buffer (0@lo plus 250 classic entries).
const PUSH_BUF_SIZE: usize = 16 + 16 * 251;

/// Identifies one ping issued with [`Lnet::ping`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct PingId(pub u64);

impl fmt::Display for PingId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ping {}", self.0)
    }
}

/// Why a ping failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PingError {
    /// No reply within the timeout.
    #[error("ping {target}: timed out (no reply; check the peer is up and reachable)")]
    Timeout {
        /// The target.
        target: ProcessId,
    },
    /// The GET could not be sent.
    #[error("ping {target}: send failed with errno {errno}")]
    Send {
        /// The target.
        target: ProcessId,
        /// Negative errno.
        errno: i32,
    },
    /// The reply could not be received.
    #[error("ping {target}: reply failed with errno {errno}")]
    Reply {
        /// The target.
        target: ProcessId,
        /// Negative errno.
        errno: i32,
    },
    /// The reply is not a valid ping buffer.
    #[error("ping {target}: bad reply: {error}")]
    BadReply {
        /// The target.
        target: ProcessId,
        /// What is wrong.
        error: PingInfoError,
    },
}

impl PingError {
    /// The errno `lnetctl ping` reports (negative).
    pub fn errno(&self) -> i32 {
        match self {
            PingError::Timeout { .. } => -errno::ETIMEDOUT,
            PingError::Send { errno, .. } | PingError::Reply { errno, .. } => *errno,
            PingError::BadReply { .. } => -errno::EPROTO,
        }
    }
}

#[derive(Debug)]
pub(crate) struct PingState {
    md: MdHandle,
    sink: IoBuf,
    target: ProcessId,
    source: Option<Nid>,
    deadline: Instant,
    retried: bool,
}

/// Pings in flight.
#[derive(Debug, Default)]
pub(crate) struct PingTable {
    next: u64,
    active: HashMap<PingId, PingState>,
    /// Pings the engine sent itself (recovery): no event for them.
    internal: std::collections::HashSet<PingId>,
    /// Recovery pings (§8.6): forced to exactly their NID (a local NI's
    /// leaves through that NI), never resent.
    recovery: std::collections::HashSet<PingId>,
}

/// Our ping target on portal 0.
#[derive(Debug, Default)]
pub(crate) struct PingTarget {
    me: Option<MeHandle>,
    md: Option<MdHandle>,
    seq: u32,
    info: Option<PingInfo>,
    /// The posted push buffer.
    push_buf: Option<IoBuf>,
}

impl Lnet {
    /// Posts the ping target (`lnet_ping_target_setup`).
    pub(crate) fn ping_target_setup(&mut self) {
        let me = self.me_attach(
            0,
            ProcessId::ANY,
            LNET_PROTO_PING_MATCHBITS,
            0,
            Unlink::Retain,
            InsPos::After,
        );
        let Ok(me) = me else {
            debug_assert!(false, "portal 0 accepts the ping ME");
            return;
        };
        self.ping_target.me = Some(me);
        self.ping_target.seq = 1;
        let buf = self.ping_buffer();
        let spec = MdSpec::new(
            Payload::single(IoBuf::from_vec(buf)),
            MdOptions::OP_GET | MdOptions::TRUNCATE | MdOptions::MANAGE_REMOTE,
            Threshold::Infinite,
        );
        match self.md_attach_owned(me, spec, Unlink::Retain, MdOwner::PingTarget) {
            Ok(md) => self.ping_target.md = Some(md),
            Err(e) => debug_assert!(false, "ping target MD: {e}"),
        }
    }

    /// Rebuilds the ping buffer after a change of NIs or NI status; the
    /// sequence number goes up. Replies in flight keep the old buffer.
    pub(crate) fn ping_target_update(&mut self) {
        self.ping_target.seq = self.ping_target.seq.wrapping_add(1);
        let buf = self.ping_buffer();
        let Some(h) = self.ping_target.md else { return };
        if let Some(md) = self.mds.get_mut(h.idx, h.gen) {
            md.length = u32::try_from(buf.len()).unwrap_or(u32::MAX);
            md.memory = IoBuf::from_vec(buf).into();
        }
    }

    /// Posts a push buffer on portal 0 (wire.md §6.1): `PUT | TRUNCATE`,
    /// threshold 1, re-posted after each push; portal 0 is lazy so a push
    /// arriving in between waits for it.
    pub(crate) fn push_target_post(&mut self) {
        let me = self.me_attach(
            0,
            ProcessId::ANY,
            LNET_PROTO_PING_MATCHBITS,
            0,
            Unlink::Unlink,
            InsPos::After,
        );
        let Ok(me) = me else {
            debug_assert!(false, "portal 0 accepts the push ME");
            return;
        };
        let buf = IoBuf::zeroed(PUSH_BUF_SIZE);
        let spec = MdSpec::new(
            Payload::single(buf.clone()),
            MdOptions::OP_PUT | MdOptions::TRUNCATE,
            Threshold::Count(1),
        );
        match self.md_attach_owned(me, spec, Unlink::Unlink, MdOwner::PushTarget) {
            Ok(_) => self.ping_target.push_buf = Some(buf),
            Err(e) => debug_assert!(false, "push target MD: {e}"),
        }
    }

    /// A push landed (its ACK goes out as for any PUT): hand the pushed
    /// ping buffer to discovery (§9.4) and re-post the buffer.
    pub(crate) fn push_event(&mut self, now: Instant, ev: MdEvent) {
        let _ = now;
        if ev.kind != EventKind::Put {
            return;
        }
        let buf = self.ping_target.push_buf.take();
        if ev.status == 0 {
            let bytes = buf.and_then(|b| b.to_vec().ok()).unwrap_or_default();
            let got = &bytes[..(ev.mlength as usize).min(bytes.len())];
            let parsed = match PingInfo::parse(got, self.cfg.tunables.max_interfaces) {
                Ok(info) => Some(info),
                Err(e) => {
                    tracing::debug!("push from {}: {e}", ev.source);
                    None
                }
            };
            self.discovery_push_received(ev.source.nid, ev.target.nid, parsed);
        }
        self.push_target_post();
    }

    /// Our ping info as it is served now.
    pub fn ping_info(&self) -> Option<&PingInfo> {
        self.ping_target.info.as_ref()
    }

    fn ping_buffer(&mut self) -> Vec<u8> {
        let t = &self.cfg.tunables;
        let mut features = LNET_PING_FEAT_NI_STATUS | LNET_PING_FEAT_MULTI_RAIL;
        if !t.peer_discovery_disabled {
            features |= LNET_PING_FEAT_DISCOVERY;
        }
        if !t.routing {
            features |= LNET_PING_FEAT_RTE_DISABLED;
        }
        let nis: Vec<NiStatus> = self
            .nis
            .iter()
            .flatten()
            .filter(|n| n.nid != Nid::LO_0)
            .map(|n| {
                NiStatus::new(
                    n.nid,
                    if n.is_up() {
                        LNET_NI_STATUS_UP
                    } else {
                        LNET_NI_STATUS_DOWN
                    },
                )
            })
            .collect();
        let info = PingInfo::new(self.cfg.pid, features, self.ping_target.seq, &nis);
        let buf = info.to_vec().unwrap_or_else(|e| {
            tracing::error!("cannot build the ping buffer: {e}");
            Vec::new()
        });
        self.ping_target.info = Some(info);
        buf
    }

    /// Pings a node (`lnet_ping`): a GET on portal 0 with the ping match
    /// bits. The result comes as [`Event::PingDone`]; a PID of
    /// `LNET_PID_ANY` means 12345.
    pub fn ping(
        &mut self,
        now: Instant,
        target: ProcessId,
        source: Option<Nid>,
        timeout: Duration,
    ) -> Result<PingId, ApiError> {
        if target.nid.is_any() {
            return Err(ApiError::Invalid(
                "ping target NID must not be LNET_NID_ANY".into(),
            ));
        }
        let target = ProcessId {
            nid: target.nid,
            pid: if target.pid == LNET_PID_ANY {
                LNET_PID_LUSTRE
            } else {
                target.pid
            },
        };
        if let Some(s) = source {
            if !self.is_local_nid(&s) {
                return Err(ApiError::Invalid(format!(
                    "ping source {s:?} is not a local NID (list local NIDs with \"lnetctl net show\")"
                )));
            }
        }
        self.pings.next += 1;
        let id = PingId(self.pings.next);
        let deadline = now.saturating_add(timeout);
        self.ping_send(now, id, target, source, deadline, PING_SINK_SIZE, false)?;
        self.arm(deadline, Timer::Ping(id));
        Ok(id)
    }

    #[allow(clippy::too_many_arguments)]
    fn ping_send(
        &mut self,
        now: Instant,
        id: PingId,
        target: ProcessId,
        source: Option<Nid>,
        deadline: Instant,
        size: usize,
        retried: bool,
    ) -> Result<(), ApiError> {
        let sink = IoBuf::zeroed(size);
        let spec = MdSpec::new(
            Payload::single(sink.clone()),
            MdOptions::TRUNCATE,
            Threshold::Count(2),
        );
        let md = self.md_bind_owned(spec, Unlink::Unlink, MdOwner::Ping(id))?;
        self.pings.active.insert(
            id,
            PingState {
                md,
                sink,
                target,
                source,
                deadline,
                retried,
            },
        );
        self.recovery_send = self.pings.recovery.contains(&id);
        let sent = self.get_inner(now, source, md, target, 0, LNET_PROTO_PING_MATCHBITS, 0);
        self.recovery_send = false;
        if let Err(e) = sent {
            self.pings.active.remove(&id);
            let _ = self.md_unlink(md);
            return Err(e);
        }
        Ok(())
    }

    fn ping_finish(&mut self, now: Instant, id: PingId, result: Result<PingInfo, PingError>) {
        if let Some(st) = self.pings.active.remove(&id) {
            self.disarm(st.deadline, Timer::Ping(id));
            if self.md_live(st.md).is_some() {
                let _ = self.md_unlink(st.md);
            }
            self.ping_report(now, id, result);
        }
    }

    fn ping_report(&mut self, now: Instant, id: PingId, result: Result<PingInfo, PingError>) {
        if self.pings.internal.remove(&id) {
            self.pings.recovery.remove(&id);
            if self.router_ping_done(id, &result) {
                return;
            }
            self.recovery_ping_done(now, id, result.is_ok());
        } else if self.discovery_ping_done(id, &result) {
        } else {
            self.events.push_back(Event::PingDone { id, result });
        }
    }

    /// A fresh ping id (for a ping the engine sends itself).
    pub(crate) fn ping_next_id(&mut self) -> PingId {
        self.pings.next += 1;
        PingId(self.pings.next)
    }

    /// Sends ping `id` (from [`Lnet::ping_next_id`]) to `target` with any
    /// source, timing out after `timeout`; its result goes to
    /// `ping_report` (discovery, §9.4).
    pub(crate) fn ping_start(
        &mut self,
        now: Instant,
        id: PingId,
        target: ProcessId,
        timeout: Duration,
    ) -> Result<(), ApiError> {
        let deadline = now.saturating_add(timeout);
        self.ping_send(now, id, target, None, deadline, PING_SINK_SIZE, false)?;
        if self.pings.active.contains_key(&id) {
            self.arm(deadline, Timer::Ping(id));
        }
        Ok(())
    }

    /// A recovery ping (§8.6): from `source`, to exactly `target`, timing
    /// out after `transaction_timeout`, never resent. For a local NI,
    /// `target` = `source` = its NID and the GET leaves through that NI (not
    /// loopback), so the reply proves the interface works.
    pub(crate) fn ping_recovery(
        &mut self,
        now: Instant,
        target: Nid,
        source: Nid,
    ) -> Option<PingId> {
        let timeout = Duration::from_secs(u64::from(self.cfg.tunables.transaction_timeout));
        let id = PingId(self.pings.next + 1);
        self.pings.recovery.insert(id);
        let r = self.ping_internal_timeout(now, target, source, timeout);
        if r.is_none() {
            self.pings.recovery.remove(&id);
        }
        r
    }

    /// An internal ping with its own timeout (router pings use
    /// `router_ping_timeout`).
    pub(crate) fn ping_internal_timeout(
        &mut self,
        now: Instant,
        target: Nid,
        source: Nid,
        timeout: Duration,
    ) -> Option<PingId> {
        self.pings.next += 1;
        let id = PingId(self.pings.next);
        let deadline = now.saturating_add(timeout);
        let target = ProcessId {
            nid: target,
            pid: LNET_PID_LUSTRE,
        };
        self.pings.internal.insert(id);
        if self
            .ping_send(
                now,
                id,
                target,
                Some(source),
                deadline,
                PING_SINK_SIZE,
                false,
            )
            .is_err()
        {
            self.pings.internal.remove(&id);
            return None;
        }
        if self.pings.active.contains_key(&id) {
            self.arm(deadline, Timer::Ping(id));
            Some(id)
        } else {
            // Finished already (failed synchronously).
            None
        }
    }

    /// An event of a ping's sink MD.
    pub(crate) fn ping_md_event(&mut self, now: Instant, id: PingId, ev: MdEvent) {
        let Some(st) = self.pings.active.get(&id) else {
            return;
        };
        if st.md != ev.md {
            return;
        }
        let target = st.target;
        match ev.kind {
            EventKind::Send if ev.status != 0 => self.ping_finish(
                now,
                id,
                Err(PingError::Send {
                    target,
                    errno: ev.status,
                }),
            ),
            EventKind::Reply if ev.status != 0 => self.ping_finish(
                now,
                id,
                Err(PingError::Reply {
                    target,
                    errno: ev.status,
                }),
            ),
            EventKind::Reply => {
                let bytes = st.sink.to_vec().unwrap_or_default();
                let got = &bytes[..(ev.mlength as usize).min(bytes.len())];
                match PingInfo::parse(got, self.cfg.tunables.max_interfaces) {
                    Ok(info) => self.ping_finish(now, id, Ok(info)),
                    Err(e) => {
                        let retry = e.retry_size().filter(|n| *n > bytes.len() && !st.retried);
                        match retry {
                            Some(n) if n <= crate::md::MAX_PAYLOAD as usize => {
                                let (source, deadline) = (st.source, st.deadline);
                                self.pings.active.remove(&id);
                                if let Err(e) =
                                    self.ping_send(now, id, target, source, deadline, n, true)
                                {
                                    tracing::debug!("ping retry failed: {e}");
                                    self.ping_report(
                                        now,
                                        id,
                                        Err(PingError::Send {
                                            target,
                                            errno: -e.errno(),
                                        }),
                                    );
                                    self.disarm(deadline, Timer::Ping(id));
                                }
                            }
                            _ => self.ping_finish(
                                now,
                                id,
                                Err(PingError::BadReply { target, error: e }),
                            ),
                        }
                    }
                }
            }
            _ => {}
        }
    }

    /// A ping's timeout passed.
    pub(crate) fn ping_expired(&mut self, now: Instant, id: PingId) {
        let _ = now;
        let Some(target) = self.pings.active.get(&id).map(|s| s.target) else {
            return;
        };
        self.ping_finish(now, id, Err(PingError::Timeout { target }));
    }

    /// Pings still waiting for their result.
    pub fn pings_in_flight(&self) -> usize {
        self.pings
            .active
            .keys()
            .filter(|id| !self.pings.internal.contains(id))
            .count()
    }
}
