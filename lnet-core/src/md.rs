//! Memory descriptors (`struct lnet_libmd`, `lnet/lnet/lib-md.c`).
//!
//! An MD is application memory ([`Payload`]) LNet may read from or write
//! into: bound free-floating for the initiator side of PUT/GET
//! ([`crate::Lnet::md_bind`]), or attached to an ME for the target side
//! ([`crate::Lnet::md_attach`]). Each message that uses an MD holds a reference
//! on it and consumes one unit of its threshold; the MD is freed when it has
//! been unlinked (explicitly, or automatically once exhausted) and the last
//! message referencing it has completed. Its handle stops working as soon as
//! unlinking starts (semantics §2.5).

use std::fmt;
use std::ops::BitOr;

use lnd_api::{errno, PayloadSpan, WireHandle};

use crate::event::{EventKind, MdEvent};
use crate::me::MeHandle;
use crate::msg::GenSlab;
use crate::ni::Lnet;
use crate::nid::ProcessId;
use crate::ping::PingId;

/// Largest number of fragments in an MD (`LNET_MAX_IOV`).
pub const MAX_IOV: usize = 256;
/// Largest payload of one message (`LNET_MTU`).
pub const MAX_PAYLOAD: u32 = lnd_api::hdr::MAX_PAYLOAD;

/// Handle of an MD (`struct lnet_handle_md`): slab index and generation.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct MdHandle {
    pub(crate) idx: u32,
    pub(crate) gen: u32,
}

impl MdHandle {
    /// The 64-bit cookie of this handle (what goes into a wire handle).
    pub fn cookie(self) -> u64 {
        (u64::from(self.gen) << 32) | u64::from(self.idx)
    }

    /// The handle a cookie names (it may be stale).
    pub fn from_cookie(c: u64) -> MdHandle {
        MdHandle {
            idx: c as u32,
            gen: (c >> 32) as u32,
        }
    }
}

impl fmt::Display for MdHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "md {:#x}", self.cookie())
    }
}

/// MD options (`LNET_MD_*`), a bit set with upstream's values.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct MdOptions(pub u32);

impl MdOptions {
    /// No option.
    pub const NONE: MdOptions = MdOptions(0);
    /// Accept incoming PUTs (`LNET_MD_OP_PUT`).
    pub const OP_PUT: MdOptions = MdOptions(0x0001);
    /// Accept incoming GETs (`LNET_MD_OP_GET`).
    pub const OP_GET: MdOptions = MdOptions(0x0002);
    /// Use the requester's offset (`LNET_MD_MANAGE_REMOTE`).
    pub const MANAGE_REMOTE: MdOptions = MdOptions(0x0004);
    /// Deliver what fits of a too-long request (`LNET_MD_TRUNCATE`).
    pub const TRUNCATE: MdOptions = MdOptions(0x0010);
    /// Never ACK PUTs into this MD (`LNET_MD_ACK_DISABLE`).
    pub const ACK_DISABLE: MdOptions = MdOptions(0x0020);
    /// `max_size` is valid (`LNET_MD_MAX_SIZE`).
    pub const MAX_SIZE: MdOptions = MdOptions(0x0080);
    /// Always track the response (`LNET_MD_TRACK_RESPONSE`).
    pub const TRACK_RESPONSE: MdOptions = MdOptions(0x0400);
    /// Never track the response (`LNET_MD_NO_TRACK_RESPONSE`).
    pub const NO_TRACK_RESPONSE: MdOptions = MdOptions(0x0800);
    /// The payload may be discarded on receipt (`LNET_MD_DISCARD`).
    pub const DISCARD: MdOptions = MdOptions(0x4000);

    /// Whether every bit of `other` is set.
    pub const fn contains(self, other: MdOptions) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether any bit of `other` is set.
    pub const fn intersects(self, other: MdOptions) -> bool {
        self.0 & other.0 != 0
    }
}

impl BitOr for MdOptions {
    type Output = MdOptions;
    fn bitor(self, rhs: MdOptions) -> MdOptions {
        MdOptions(self.0 | rhs.0)
    }
}

/// How many more operations an MD takes part in (`md_threshold`; -1 = infinite).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Threshold {
    /// This many more operations.
    Count(u32),
    /// No limit (`LNET_MD_THRESH_INF`).
    Infinite,
}

impl Threshold {
    fn is_zero(self) -> bool {
        self == Threshold::Count(0)
    }
    fn decrement(&mut self) {
        if let Threshold::Count(n) = self {
            *n = n.saturating_sub(1);
        }
    }
}

/// What the application asks for (`struct lnet_md`).
#[derive(Clone, Debug)]
pub struct MdSpec {
    /// The memory (a window into a fragment list, ≤ 256 fragments). A
    /// [`lnd_api::Payload`] or an [`lnd_api::IoBuf`] converts into one; an
    /// application that reuses its buffers keeps the span and clones it (a
    /// reference count, no allocation).
    pub memory: PayloadSpan,
    /// `LNET_MD_*` options.
    pub options: MdOptions,
    /// Operations this MD takes part in.
    pub threshold: Threshold,
    /// With [`MdOptions::MAX_SIZE`]: the most bytes one operation may use.
    pub max_size: u32,
    /// Returned in every event of this MD.
    pub user_ptr: u64,
}

impl MdSpec {
    /// An MD over `memory` with `options` and `threshold`, no max size, user pointer 0.
    pub fn new(memory: impl Into<PayloadSpan>, options: MdOptions, threshold: Threshold) -> Self {
        MdSpec {
            memory: memory.into(),
            options,
            threshold,
            max_size: 0,
            user_ptr: 0,
        }
    }
}

/// Unlink policy (`LNET_RETAIN` / `LNET_UNLINK`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Unlink {
    /// Keep the object when it is exhausted.
    Retain,
    /// Unlink it when it is exhausted (MD) or when its MD goes (ME).
    Unlink,
}

/// Who consumes an MD's events.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum MdOwner {
    /// The application: events go to `poll_event`.
    User,
    /// The ping target on portal 0: events are dropped.
    PingTarget,
    /// The push target on portal 0 (discovery pushes land here).
    PushTarget,
    /// The sink of one of our pings.
    Ping(PingId),
    /// A discovery push to a peer.
    Push(crate::peer::PeerId),
}

/// An MD (`struct lnet_libmd`).
#[derive(Debug)]
pub(crate) struct Md {
    pub(crate) memory: PayloadSpan,
    pub(crate) length: u32,
    pub(crate) options: MdOptions,
    pub(crate) threshold: Threshold,
    pub(crate) max_size: u32,
    pub(crate) user_ptr: u64,
    /// `md_offset`: where the next non-MANAGE_REMOTE operation starts.
    pub(crate) offset: u32,
    /// Messages referencing this MD.
    pub(crate) refcount: u32,
    pub(crate) me: Option<MeHandle>,
    pub(crate) auto_unlink: bool,
    /// Unlinking has started (`LNET_MD_FLAG_ZOMBIE`): the handle is dead.
    pub(crate) zombie: bool,
    /// Unlinked explicitly while in use (`LNET_MD_FLAG_ABORTED`).
    pub(crate) aborted: bool,
    pub(crate) owner: MdOwner,
    /// When and from which NI the last request from this MD left (latency).
    pub(crate) sent: Option<(crate::time::Instant, crate::ni::NiId)>,
}

impl Md {
    /// `lnet_md_exhausted`.
    pub(crate) fn exhausted(&self) -> bool {
        self.threshold.is_zero()
            || (self.options.contains(MdOptions::MAX_SIZE)
                && u64::from(self.offset) + u64::from(self.max_size) > u64::from(self.length))
    }

    /// `lnet_md_unlinkable`: nobody uses it and it is dead or used up.
    pub(crate) fn unlinkable(&self) -> bool {
        self.refcount == 0 && (self.zombie || (self.auto_unlink && self.exhausted()))
    }

    /// Attach one message (`lnet_msg_attach_md`): consumes threshold, takes a ref.
    pub(crate) fn attach_msg(&mut self) {
        self.refcount += 1;
        self.threshold.decrement();
    }
}

/// Errors of the application API (MD, ME, PUT, GET, ping).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// Portal index out of range.
    #[error("portal {portal}: index out of range (portals are 0..63)")]
    InvalidPortal {
        /// The index given.
        portal: u32,
    },
    /// The ME's kind does not fit the portal's match type.
    #[error("portal {portal}: is a {kind} portal, cannot attach an ME of the other kind")]
    PortalTypeConflict {
        /// The portal.
        portal: u32,
        /// `unique` or `wildcard`.
        kind: &'static str,
    },
    /// No such ME (never existed, or unlinked).
    #[error("{me}: no such ME (it was unlinked or never existed)")]
    UnknownMe {
        /// The handle.
        me: MeHandle,
    },
    /// The ME already holds an MD.
    #[error("{me}: already has an MD attached (unlink it first)")]
    MeBusy {
        /// The handle.
        me: MeHandle,
    },
    /// No such MD, or one that cannot be used for this operation.
    #[error("{md}: {reason}")]
    UnusableMd {
        /// The handle.
        md: MdHandle,
        /// Why (`no such MD`, `threshold exhausted`, `attached to an ME`).
        reason: &'static str,
    },
    /// The MD description is invalid.
    #[error("invalid MD: {0}")]
    InvalidMd(String),
    /// An argument is invalid.
    #[error("invalid argument: {0}")]
    Invalid(String),
}

impl ApiError {
    /// The errno upstream returns for this error (positive).
    pub fn errno(&self) -> i32 {
        match self {
            ApiError::InvalidPortal { .. } | ApiError::InvalidMd(_) | ApiError::Invalid(_) => {
                errno::EINVAL
            }
            ApiError::PortalTypeConflict { .. } => errno::EPERM,
            ApiError::UnknownMe { .. } | ApiError::UnusableMd { .. } => errno::ENOENT,
            ApiError::MeBusy { .. } => errno::EBUSY,
        }
    }
}

/// `lnet_md_validate` plus the bind/attach specific rules.
fn validate(spec: &MdSpec, bind: bool) -> Result<u32, ApiError> {
    let frags = spec.memory.pieces().count();
    if frags > MAX_IOV {
        return Err(ApiError::InvalidMd(format!(
            "{frags} fragments, at most {MAX_IOV} allowed"
        )));
    }
    let len = u32::try_from(spec.memory.len())
        .map_err(|_| ApiError::InvalidMd(format!("length {} exceeds 4 GiB", spec.memory.len())))?;
    if spec.options.contains(MdOptions::MAX_SIZE) && spec.max_size > len {
        return Err(ApiError::InvalidMd(format!(
            "max_size {} is larger than the MD length {len}",
            spec.max_size
        )));
    }
    if bind {
        if spec
            .options
            .intersects(MdOptions::OP_PUT | MdOptions::OP_GET)
        {
            return Err(ApiError::InvalidMd(
                "OP_PUT/OP_GET are for attached MDs; a bound MD must not set them".into(),
            ));
        }
        if len > MAX_PAYLOAD {
            return Err(ApiError::InvalidMd(format!(
                "length {len} exceeds the {MAX_PAYLOAD}-byte LNet MTU"
            )));
        }
    } else if !spec
        .options
        .intersects(MdOptions::OP_PUT | MdOptions::OP_GET)
    {
        return Err(ApiError::InvalidMd(
            "an attached MD needs OP_PUT or OP_GET (or both)".into(),
        ));
    }
    Ok(len)
}

impl Lnet {
    pub(crate) fn md_new(
        &mut self,
        spec: MdSpec,
        len: u32,
        unlink: Unlink,
        owner: MdOwner,
    ) -> MdHandle {
        let md = Md {
            memory: spec.memory,
            length: len,
            options: spec.options,
            threshold: spec.threshold,
            max_size: spec.max_size,
            user_ptr: spec.user_ptr,
            offset: 0,
            refcount: 0,
            me: None,
            auto_unlink: unlink == Unlink::Unlink,
            zombie: false,
            aborted: false,
            owner,
            sent: None,
        };
        let (idx, gen) = self.mds.insert(md);
        MdHandle { idx, gen }
    }

    /// Creates a free-floating MD for the initiator side of PUT/GET (`LNetMDBind`).
    pub fn md_bind(&mut self, md: MdSpec, unlink: Unlink) -> Result<MdHandle, ApiError> {
        let len = validate(&md, true)?;
        Ok(self.md_new(md, len, unlink, MdOwner::User))
    }

    pub(crate) fn md_bind_owned(
        &mut self,
        md: MdSpec,
        unlink: Unlink,
        owner: MdOwner,
    ) -> Result<MdHandle, ApiError> {
        let len = validate(&md, true)?;
        Ok(self.md_new(md, len, unlink, owner))
    }

    /// Attaches an MD to an ME (`LNetMDAttach`). On an invalid MD the ME is
    /// unlinked, as upstream does. Messages waiting on a lazy portal are
    /// matched against the new MD at once, in arrival order.
    pub fn md_attach(
        &mut self,
        me: MeHandle,
        md: MdSpec,
        unlink: Unlink,
    ) -> Result<MdHandle, ApiError> {
        self.md_attach_owned(me, md, unlink, MdOwner::User)
    }

    pub(crate) fn md_attach_owned(
        &mut self,
        me: MeHandle,
        md: MdSpec,
        unlink: Unlink,
        owner: MdOwner,
    ) -> Result<MdHandle, ApiError> {
        let Some(m) = self.mes.get(me.idx, me.gen) else {
            return Err(ApiError::UnknownMe { me });
        };
        if m.md.is_some() {
            return Err(ApiError::MeBusy { me });
        }
        let portal = m.portal;
        let len = match validate(&md, false) {
            Ok(l) => l,
            Err(e) => {
                self.me_free(me);
                return Err(e);
            }
        };
        let h = self.md_new(md, len, unlink, owner);
        if let Some(mdr) = self.mds.get_mut(h.idx, h.gen) {
            mdr.me = Some(me);
        }
        if let Some(m) = self.mes.get_mut(me.idx, me.gen) {
            m.md = Some(h);
        }
        self.ptl_match_delayed(portal, h);
        Ok(h)
    }

    /// Unlinks an MD (`LNetMDUnlink`). If no message uses it, an UNLINK event
    /// is queued now; otherwise the last message's event reports `unlinked`,
    /// and successful completions report `-ETIMEDOUT` (the MD was aborted).
    pub fn md_unlink(&mut self, md: MdHandle) -> Result<(), ApiError> {
        match self.mds.get_mut(md.idx, md.gen) {
            Some(m) if !m.zombie => m.aborted = true,
            _ => {
                return Err(ApiError::UnusableMd {
                    md,
                    reason: "no such MD",
                })
            }
        }
        let idle = self
            .mds
            .get(md.idx, md.gen)
            .is_some_and(|m| m.refcount == 0);
        if idle {
            if let Some(ev) = self.unlink_event(md) {
                let owner = self
                    .mds
                    .get(md.idx, md.gen)
                    .map_or(MdOwner::User, |m| m.owner);
                self.deliver_event(crate::time::Instant::ZERO, owner, ev);
            }
        }
        self.md_start_unlink(md);
        Ok(())
    }

    fn unlink_event(&self, h: MdHandle) -> Option<MdEvent> {
        let m = self.mds.get(h.idx, h.gen)?;
        Some(MdEvent {
            kind: EventKind::Unlink,
            md: h,
            user_ptr: m.user_ptr,
            initiator: ProcessId::ANY,
            source: ProcessId::ANY,
            sender: lnd_api::Nid::ANY,
            target: ProcessId::ANY,
            portal: 0,
            match_bits: 0,
            rlength: 0,
            mlength: 0,
            offset: 0,
            hdr_data: 0,
            status: 0,
            unlinked: true,
            msg_type: lnd_api::MsgType::PUT,
        })
    }

    /// `lnet_md_unlink`: make the MD a zombie, detach it from its ME (and free
    /// the ME if its policy says so), free the MD if nobody references it.
    pub(crate) fn md_start_unlink(&mut self, h: MdHandle) {
        let Some(m) = self.mds.get_mut(h.idx, h.gen) else {
            return;
        };
        let me = if m.zombie {
            None
        } else {
            m.zombie = true;
            m.me.take()
        };
        let unused = m.refcount == 0;
        if let Some(me) = me {
            // Detaching the ME never touches the MD's reference count.
            self.me_detach_md(me);
        }
        if unused && self.mds.discard(h.idx, h.gen) {
            self.rspt_disarm(h);
        }
    }

    /// The MD a wire handle names, if it is ours and still live.
    pub(crate) fn md_from_wire(&self, wh: &WireHandle) -> Option<MdHandle> {
        if wh.interface_cookie != self.cfg.interface_cookie || wh.is_none() {
            return None;
        }
        let h = MdHandle::from_cookie(wh.object_cookie);
        self.mds.get(h.idx, h.gen).filter(|m| !m.zombie).map(|_| h)
    }

    pub(crate) fn md_wire(&self, h: MdHandle) -> WireHandle {
        WireHandle {
            interface_cookie: self.cfg.interface_cookie,
            object_cookie: h.cookie(),
        }
    }

    /// A live (not unlinking) MD by handle.
    pub(crate) fn md_live(&self, h: MdHandle) -> Option<&Md> {
        self.mds.get(h.idx, h.gen).filter(|m| !m.zombie)
    }

    /// Number of MDs that exist (including ones still unlinking).
    pub fn md_count(&self) -> usize {
        self.mds.len()
    }
}

/// The MD table type.
pub(crate) type MdTable = GenSlab<Md>;

#[cfg(test)]
mod tests {
    use super::*;
    use lnd_api::{IoBuf, Payload};

    fn spec(len: usize, options: MdOptions) -> MdSpec {
        MdSpec::new(
            Payload::single(IoBuf::zeroed(len)),
            options,
            Threshold::Count(1),
        )
    }

    #[test]
    fn bind_refuses_op_bits_and_oversize() {
        assert!(validate(&spec(8, MdOptions::OP_PUT), true).is_err());
        assert!(validate(&spec(MAX_PAYLOAD as usize + 1, MdOptions::NONE), true).is_err());
        assert_eq!(validate(&spec(8, MdOptions::NONE), true), Ok(8));
    }

    #[test]
    fn attach_needs_an_op_bit_and_sane_max_size() {
        assert!(validate(&spec(8, MdOptions::NONE), false).is_err());
        let mut s = spec(8, MdOptions::OP_PUT | MdOptions::MAX_SIZE);
        s.max_size = 9;
        assert!(validate(&s, false).is_err());
        s.max_size = 8;
        assert_eq!(validate(&s, false), Ok(8));
    }

    #[test]
    fn too_many_fragments_is_einval() {
        let p: Payload = (0..=MAX_IOV).map(|_| IoBuf::zeroed(1)).collect();
        let e = validate(&MdSpec::new(p, MdOptions::NONE, Threshold::Infinite), true)
            .expect_err("257 fragments");
        assert_eq!(e.errno(), errno::EINVAL);
    }
}
