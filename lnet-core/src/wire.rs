//! LNet wire formats the engine owns (`lnet/include/uapi/linux/lnet/lnet-idl.h`):
//! the message header (re-exported from `lnd-api`, where LNDs need it), the
//! protocol magic numbers, and the ping / discovery push buffer
//! (`struct lnet_ping_info`, `spec/wire.md` section 6).
//!
//! As in smoltcp's `wire` module, each format has two layers:
//! * a zero-copy view over bytes ([`HdrNid4`], [`HdrNid16`], [`PingInfoView`])
//!   built with `new_checked`, whose accessors read raw fields, and
//! * a validated representation ([`Hdr`], [`PingInfo`]) with `parse` and `emit`.
//!
//! Decoders never panic and never trust a length field: every count and size
//! read from the wire is checked against the bytes actually received.
//!
//! Byte order: the LNet header is always little-endian. The ping buffer is in
//! the **sender's** order: we always emit little-endian and accept a
//! byte-swapped (big-endian) sender, recognised by its swapped `pi_magic`.

use thiserror::Error;

pub use lnd_api::hdr::{
    AckBody, GetBody, Hdr, HdrError, HdrNid16, HdrNid4, HelloBody, MsgType, PutBody, ReplyBody,
    WireHandle, BODY_SIZE, HDR_NID16_SIZE, HDR_NID4_SIZE, LNET_PROTO_TCP_MAGIC,
    LNET_PROTO_TCP_VERSION_MAJOR, LNET_PROTO_TCP_VERSION_MINOR, MAX_PAYLOAD,
};
use lnd_api::nid::{lnd_type, Nid};

// ---------------------------------------------------------------------------
// Magic numbers and constants (spec/wire.md section 3)
// ---------------------------------------------------------------------------

/// `LNET_PROTO_MAGIC`: socklnd hello V2+ magic, and the "future unified
/// protocol" probe an acceptor answers with a version-1 connection request.
pub const LNET_PROTO_MAGIC: u32 = 0x4572_6963;
/// `LNET_PROTO_ACCEPTOR_MAGIC`: first word of an acceptor connection request.
pub const LNET_PROTO_ACCEPTOR_MAGIC: u32 = 0xACCE_7100;
/// `LNET_PROTO_ACCEPTOR_VERSION`: connection request with a classic NID (16 bytes).
pub const LNET_PROTO_ACCEPTOR_VERSION: u32 = 1;
/// `LNET_PROTO_ACCEPTOR_VERSION_16`: connection request with a large NID (28 bytes).
pub const LNET_PROTO_ACCEPTOR_VERSION_16: u32 = 2;
/// `LNET_PROTO_PING_MAGIC` ("ping"): `lnet_ping_info.pi_magic`.
pub const LNET_PROTO_PING_MAGIC: u32 = 0x7069_6E67;
/// `LNET_PROTO_GNI_MAGIC`: gnilnd.
pub const LNET_PROTO_GNI_MAGIC: u32 = 0xB00F_BABE;
/// `LNET_PROTO_KFI_MAGIC`: kfilnd.
pub const LNET_PROTO_KFI_MAGIC: u32 = 0xDEAD_BEEF;
/// `LNET_PROTO_EFA_MAGIC`: efalnd.
pub const LNET_PROTO_EFA_MAGIC: u32 = 0x2BE0_92BE;
/// `SRPC_MSG_MAGIC`: LNet selftest RPC messages.
pub const SRPC_MSG_MAGIC: u32 = 0xEEB0_F00D;

/// `LNET_NI_STATUS_UP`: `ns_status` of an NI that is up.
pub const LNET_NI_STATUS_UP: u32 = 0x15AA_C0DE;
/// `LNET_NI_STATUS_DOWN`: `ns_status` of an NI that is down.
pub const LNET_NI_STATUS_DOWN: u32 = 0xDEAD_FACE;
/// `LNET_NI_STATUS_INVALID`: no status known.
pub const LNET_NI_STATUS_INVALID: u32 = 0;

/// `LNET_PROTO_PING_MATCHBITS`: match bits of the ping GET and the discovery push PUT.
pub const LNET_PROTO_PING_MATCHBITS: u64 = 0x8000_0000_0000_0000;
/// `LNET_RESERVED_PORTAL`: the LNet-internal portal (ping target, push target).
pub const LNET_RESERVED_PORTAL: u32 = 0;
/// `LNET_PID_LUSTRE`: the well-known PID of kernel LNet; ping and push go to it.
pub const LNET_PID_LUSTRE: u32 = 12345;
/// Default `max_interfaces`: the largest `pi_nnis` a reader accepts.
pub const LNET_INTERFACES_MAX_DEFAULT: u32 = 4096;

/// `LNET_PING_FEAT_BASE`: plain ping (legacy).
pub const LNET_PING_FEAT_BASE: u32 = 1 << 0;
/// `LNET_PING_FEAT_NI_STATUS`: entries carry a status; required of every reply.
pub const LNET_PING_FEAT_NI_STATUS: u32 = 1 << 1;
/// `LNET_PING_FEAT_RTE_DISABLED`: the node does not forward (not a router).
pub const LNET_PING_FEAT_RTE_DISABLED: u32 = 1 << 2;
/// `LNET_PING_FEAT_MULTI_RAIL`: the node is Multi-Rail capable.
pub const LNET_PING_FEAT_MULTI_RAIL: u32 = 1 << 3;
/// `LNET_PING_FEAT_DISCOVERY`: the node has peer discovery enabled.
pub const LNET_PING_FEAT_DISCOVERY: u32 = 1 << 4;
/// `LNET_PING_FEAT_LARGE_ADDR`: large-NID entries follow the classic ones and
/// entry 0's `ns_msg_size` holds the total size.
pub const LNET_PING_FEAT_LARGE_ADDR: u32 = 1 << 5;
/// `LNET_PING_FEAT_PRIMARY_LARGE`: the first large NID is the primary NID.
pub const LNET_PING_FEAT_PRIMARY_LARGE: u32 = 1 << 6;
/// `LNET_PING_FEAT_METADATA`: a metadata block follows the entries.
pub const LNET_PING_FEAT_METADATA: u32 = 1 << 7;
/// `LNET_PING_FEAT_MASK`: every defined feature bit.
pub const LNET_PING_FEAT_MASK: u32 = 0xFF;

/// Size of the ping info header (`pi_magic`, `pi_features`, `pi_pid`, `pi_nnis`).
pub const PING_INFO_HDR_SIZE: usize = 16;
/// Size of one classic entry (`struct lnet_ni_status`).
pub const NI_STATUS_SIZE: usize = 16;
/// Smallest meaningful ping info: the header and the `0@lo` entry.
pub const PING_INFO_MIN_SIZE: usize = PING_INFO_HDR_SIZE + NI_STATUS_SIZE;
/// `LNET_INTERFACES_MIN`: classic entries a first ping buffer is sized for.
pub const LNET_INTERFACES_MIN: usize = 16;
/// Receive buffer of a first ping GET (`sink_length`): room for
/// [`LNET_INTERFACES_MIN`] classic entries, 272 bytes as in the kernel. A
/// larger info comes back [`PingInfoError::Truncated`] and the ping is retried
/// with [`PingInfoError::retry_size`].
pub const PING_INFO_DEFAULT_SIZE: usize = PING_INFO_HDR_SIZE + NI_STATUS_SIZE * LNET_INTERFACES_MIN;

/// The classic form of `0@lo` (`LNET_NID_LO_0`).
const NID4_LO_0: u64 = 0x0009_0000_0000_0000;

/// Byte ranges of the ping info fields (spec/wire.md 6.2).
mod field {
    pub(crate) type Field = core::ops::Range<usize>;

    pub(crate) const MAGIC: Field = 0..4;
    pub(crate) const FEATURES: Field = 4..8;
    pub(crate) const PID: Field = 8..12;
    pub(crate) const NNIS: Field = 12..16;

    // Within a classic entry.
    pub(crate) const NS_NID: Field = 0..8;
    pub(crate) const NS_STATUS: Field = 8..12;
    pub(crate) const NS_MSG_SIZE: Field = 12..16;
}

/// Byte order of a "sender's native order" structure.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum ByteOrder {
    /// Little-endian (what we send).
    Little,
    /// Big-endian: a byte-swapped sender.
    Big,
}

impl ByteOrder {
    fn u32(self, b: &[u8]) -> u32 {
        let mut a = [0u8; 4];
        a.copy_from_slice(&b[..4]);
        match self {
            ByteOrder::Little => u32::from_le_bytes(a),
            ByteOrder::Big => u32::from_be_bytes(a),
        }
    }

    fn u64(self, b: &[u8]) -> u64 {
        let mut a = [0u8; 8];
        a.copy_from_slice(&b[..8]);
        match self {
            ByteOrder::Little => u64::from_le_bytes(a),
            ByteOrder::Big => u64::from_be_bytes(a),
        }
    }
}

/// Why a ping buffer could not be parsed or emitted.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PingInfoError {
    /// Fewer bytes arrived than the info announces: retry the ping with a
    /// receive buffer of at least `needed` bytes (see [`PingInfoError::retry_size`]).
    #[error(
        "ping info truncated: received {received} bytes of {needed}; retry with a buffer of at least {needed} bytes"
    )]
    Truncated {
        /// Bytes received.
        received: usize,
        /// Bytes the info occupies (as far as could be computed).
        needed: usize,
    },
    /// `pi_magic` is not the ping magic in either byte order.
    #[error("ping info: bad pi_magic {magic:#010x} (expected 0x70696e67 in either byte order)")]
    BadMagic {
        /// The first four bytes, read little-endian.
        magic: u32,
    },
    /// The reply lacks the NI_STATUS feature, which every reader requires.
    #[error(
        "ping info: pi_features {features:#x} lacks NI_STATUS (0x2); the peer's LNet is too old"
    )]
    NoNiStatus {
        /// `pi_features` received.
        features: u32,
    },
    /// `pi_nnis` is 0 or above the reader's `max_interfaces`.
    #[error("ping info: pi_nnis {nnis} out of range 1..={max} (max_interfaces)")]
    BadNnis {
        /// `pi_nnis` received.
        nnis: u32,
        /// The reader's limit.
        max: u32,
    },
    /// Entry 0 is not `0@lo`.
    #[error("ping info: entry 0 has nid {nid:#018x}, must be 0@lo (0x0009000000000000)")]
    FirstNotLo {
        /// The classic NID found.
        nid: u64,
    },
    /// With LARGE_ADDR, entry 0's `ns_msg_size` is smaller than the classic entries.
    #[error(
        "ping info: ns_msg_size {size} of entry 0 (LARGE_ADDR) is smaller than the {min} bytes of the header and classic entries"
    )]
    BadSize {
        /// `ns_msg_size` received.
        size: u32,
        /// Header plus classic entries.
        min: usize,
    },
    /// A classic entry holds a value that is not a classic NID.
    #[error("ping info: entry {index} has invalid classic nid {value:#018x}")]
    BadNid {
        /// Index of the entry (0 is `0@lo`).
        index: usize,
        /// The 64-bit value received.
        value: u64,
    },
    /// A large entry runs past the end of the info.
    #[error("ping info: large entry at offset {offset} overruns the info size {size}")]
    BadLargeEntry {
        /// Offset of the entry within the info.
        offset: usize,
        /// Size of the info.
        size: usize,
    },
    /// Emitting into a buffer that is too small.
    #[error("ping info: output buffer of {len} bytes is too small, need {needed}")]
    BufferTooSmall {
        /// The buffer's length.
        len: usize,
        /// Bytes the info needs ([`PingInfo::buffer_len`]).
        needed: usize,
    },
    /// Emitting a classic entry whose NID has no 64-bit form.
    #[error(
        "ping info: classic entry {index} has a nid with a {addr_len}-byte address; put it in large_nis"
    )]
    NoClassicForm {
        /// Index in [`PingInfo::nis`].
        index: usize,
        /// Address length of the NID.
        addr_len: usize,
    },
    /// Emitting an info larger than a `u32` can describe.
    #[error("ping info: {size} bytes is too large to describe in ns_msg_size")]
    TooLarge {
        /// The size the info would have.
        size: usize,
    },
}

impl PingInfoError {
    /// For [`PingInfoError::Truncated`], the receive buffer size to retry with.
    pub fn retry_size(&self) -> Option<usize> {
        match *self {
            PingInfoError::Truncated { needed, .. } => Some(needed),
            _ => None,
        }
    }
}

/// A zero-copy view of a ping buffer in its sender's byte order.
///
/// [`PingInfoView::new_checked`] checks the magic (which decides the byte
/// order) and that the 16-byte header is present; entry accessors are bounds
/// checked and return `None` past the end of the buffer.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct PingInfoView<T: AsRef<[u8]>> {
    buffer: T,
    order: ByteOrder,
}

impl<T: AsRef<[u8]>> PingInfoView<T> {
    /// Wraps received bytes: the magic must be the ping magic in either byte
    /// order and the 16-byte header must be there.
    pub fn new_checked(buffer: T) -> Result<Self, PingInfoError> {
        let b = buffer.as_ref();
        let received = b.len();
        if received < 4 {
            return Err(PingInfoError::Truncated {
                received,
                needed: PING_INFO_HDR_SIZE,
            });
        }
        let order = match ByteOrder::Little.u32(&b[field::MAGIC]) {
            LNET_PROTO_PING_MAGIC => ByteOrder::Little,
            m if m.swap_bytes() == LNET_PROTO_PING_MAGIC => ByteOrder::Big,
            magic => return Err(PingInfoError::BadMagic { magic }),
        };
        if received < PING_INFO_HDR_SIZE {
            return Err(PingInfoError::Truncated {
                received,
                needed: PING_INFO_HDR_SIZE,
            });
        }
        Ok(PingInfoView { buffer, order })
    }

    /// The sender's byte order.
    pub fn order(&self) -> ByteOrder {
        self.order
    }

    /// The wrapped buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The bytes received.
    pub fn as_bytes(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    /// `pi_features`.
    pub fn features(&self) -> u32 {
        self.order.u32(&self.buffer.as_ref()[field::FEATURES])
    }

    /// `pi_pid`.
    pub fn pid(&self) -> u32 {
        self.order.u32(&self.buffer.as_ref()[field::PID])
    }

    /// `pi_nnis`: the number of classic entries announced (not validated).
    pub fn nnis(&self) -> u32 {
        self.order.u32(&self.buffer.as_ref()[field::NNIS])
    }

    /// Classic entry `i` as (`ns_nid`, `ns_status`, `ns_msg_size`), or `None`
    /// when it lies (partly) beyond the received bytes.
    pub fn entry(&self, i: usize) -> Option<(u64, u32, u32)> {
        let start = i
            .checked_mul(NI_STATUS_SIZE)?
            .checked_add(PING_INFO_HDR_SIZE)?;
        let e = self
            .buffer
            .as_ref()
            .get(start..start.checked_add(NI_STATUS_SIZE)?)?;
        Some((
            self.order.u64(&e[field::NS_NID]),
            self.order.u32(&e[field::NS_STATUS]),
            self.order.u32(&e[field::NS_MSG_SIZE]),
        ))
    }
}

/// One NI of a ping buffer: `struct lnet_ni_status` (classic entries) or
/// `struct lnet_ni_large_status` (large entries, which have no `msg_size`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct NiStatus {
    /// The NI's NID.
    pub nid: Nid,
    /// `ns_status`: [`LNET_NI_STATUS_UP`] or [`LNET_NI_STATUS_DOWN`].
    pub status: u32,
    /// `ns_msg_size`: 0 except in entry 0 (which [`PingInfo`] handles itself);
    /// always 0 for large entries.
    pub msg_size: u32,
}

impl NiStatus {
    /// An entry with the given status and no `msg_size`.
    pub const fn new(nid: Nid, status: u32) -> Self {
        NiStatus {
            nid,
            status,
            msg_size: 0,
        }
    }

    /// Whether the status is [`LNET_NI_STATUS_UP`].
    pub const fn is_up(&self) -> bool {
        self.status == LNET_NI_STATUS_UP
    }
}

/// A ping / discovery push buffer (`struct lnet_ping_info`), validated.
///
/// The `0@lo` entry that always comes first on the wire is not in [`nis`]:
/// its status field carries [`seq`](PingInfo::seq) and (with LARGE_ADDR) its
/// `ns_msg_size` the total size, both handled by [`parse`](PingInfo::parse)
/// and [`emit`](PingInfo::emit).
///
/// The optional metadata block (`LNET_PING_FEAT_METADATA`, EFA address
/// mappings) is not represented: it lies past the size readers use, so
/// [`parse`](PingInfo::parse) ignores it and [`emit`](PingInfo::emit) never
/// writes one (the feature bit itself is kept as received).
///
/// [`nis`]: PingInfo::nis
#[non_exhaustive]
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct PingInfo {
    /// `pi_features` (`LNET_PING_FEAT_*`).
    pub features: u32,
    /// `pi_pid`: the node's PID.
    pub pid: u32,
    /// Sequence number of the buffer (entry 0's `ns_status`), bumped whenever
    /// the node's NI set or an NI status changes.
    pub seq: u32,
    /// The classic entries after `0@lo`, in wire order (the first is the
    /// primary NID unless [`LNET_PING_FEAT_PRIMARY_LARGE`]).
    pub nis: Vec<NiStatus>,
    /// The large-NID entries (LARGE_ADDR), in wire order.
    pub large_nis: Vec<NiStatus>,
}

/// Bytes of a large NID on the wire: `nid_size + 8`, or the whole 20-byte
/// `struct lnet_nid` for the ANY marker (size byte 0xff).
fn large_nid_len(size_byte: u8) -> usize {
    if size_byte == 0xFF {
        20
    } else {
        usize::from(size_byte) + 8
    }
}

/// Bytes a large entry occupies: status plus NID, rounded up to 4.
fn large_entry_len(size_byte: u8) -> usize {
    (4 + large_nid_len(size_byte)).next_multiple_of(4)
}

/// A classic NID from a ping entry, refusing values with no faithful
/// [`Nid`] form (top byte set, or type 0xff other than `LNET_NID_ANY`).
fn nid_from_nid4(index: usize, value: u64) -> Result<Nid, PingInfoError> {
    if value == u64::MAX {
        return Ok(Nid::ANY);
    }
    if value >> 56 != 0 || (value >> 48) as u8 == lnd_type::ANY {
        return Err(PingInfoError::BadNid { index, value });
    }
    Ok(Nid::from_nid4(value))
}

impl PingInfo {
    /// A ping buffer for a node whose NIs are `nis` in configuration order,
    /// primary NID first, `0@lo` excluded (it is skipped if present).
    ///
    /// NIDs with a classic form become classic entries, the others large
    /// entries; NI_STATUS is always set, LARGE_ADDR when there is a large
    /// entry, PRIMARY_LARGE when the primary NID is large.
    pub fn new(pid: u32, features: u32, seq: u32, nis: &[NiStatus]) -> PingInfo {
        let mut features = (features | LNET_PING_FEAT_NI_STATUS)
            & !(LNET_PING_FEAT_LARGE_ADDR | LNET_PING_FEAT_PRIMARY_LARGE);
        let mut info = PingInfo {
            features,
            pid,
            seq,
            nis: Vec::new(),
            large_nis: Vec::new(),
        };
        for (i, ni) in nis.iter().filter(|ni| ni.nid != Nid::LO_0).enumerate() {
            if ni.nid.to_nid4().is_some() {
                info.nis.push(*ni);
            } else {
                if i == 0 {
                    features |= LNET_PING_FEAT_PRIMARY_LARGE;
                }
                info.large_nis.push(NiStatus { msg_size: 0, ..*ni });
            }
        }
        if !info.large_nis.is_empty() {
            features |= LNET_PING_FEAT_LARGE_ADDR;
        }
        info.features = features;
        info
    }

    /// The primary NID: the first large entry with PRIMARY_LARGE, else the
    /// first classic entry after `0@lo`.
    pub fn primary_nid(&self) -> Option<Nid> {
        if self.features & LNET_PING_FEAT_PRIMARY_LARGE != 0 {
            if let Some(ni) = self.large_nis.first() {
                return Some(ni.nid);
            }
        }
        self.nis.first().map(|ni| ni.nid)
    }

    /// Every NI except `0@lo`, primary first, then the others in wire order.
    pub fn all_nis(&self) -> Vec<NiStatus> {
        let mut all = Vec::with_capacity(self.nis.len() + self.large_nis.len());
        if self.features & LNET_PING_FEAT_PRIMARY_LARGE != 0 && !self.large_nis.is_empty() {
            all.push(self.large_nis[0]);
            all.extend_from_slice(&self.nis);
            all.extend_from_slice(&self.large_nis[1..]);
        } else {
            all.extend_from_slice(&self.nis);
            all.extend_from_slice(&self.large_nis);
        }
        all
    }

    /// `pi_nnis` as emitted: the classic entries including `0@lo`.
    pub fn nnis(&self) -> usize {
        1 + self.nis.len()
    }

    /// The `pi_features` that [`emit`](PingInfo::emit) writes: [`features`]
    /// plus NI_STATUS, plus LARGE_ADDR when there are large entries.
    ///
    /// [`features`]: PingInfo::features
    pub fn wire_features(&self) -> u32 {
        let mut f = self.features | LNET_PING_FEAT_NI_STATUS;
        if !self.large_nis.is_empty() {
            f |= LNET_PING_FEAT_LARGE_ADDR;
        }
        f
    }

    /// Bytes [`emit`](PingInfo::emit) writes (the size a responder's ping MD
    /// covers).
    pub fn buffer_len(&self) -> usize {
        PING_INFO_HDR_SIZE
            + NI_STATUS_SIZE * self.nnis()
            + self
                .large_nis
                .iter()
                .map(|ni| large_entry_len(ni.nid.size))
                .sum::<usize>()
    }

    /// Writes the buffer little-endian into `out` and returns its length.
    ///
    /// Fails, writing nothing, when `out` is shorter than
    /// [`buffer_len`](PingInfo::buffer_len) or a classic entry's NID has no
    /// 64-bit form.
    pub fn emit(&self, out: &mut [u8]) -> Result<usize, PingInfoError> {
        let needed = self.buffer_len();
        if out.len() < needed {
            return Err(PingInfoError::BufferTooSmall {
                len: out.len(),
                needed,
            });
        }
        let mut nid4s = Vec::with_capacity(self.nis.len());
        for (index, ni) in self.nis.iter().enumerate() {
            let v = ni.nid.to_nid4().ok_or(PingInfoError::NoClassicForm {
                index,
                addr_len: ni.nid.addr_len(),
            })?;
            nid4s.push(v);
        }
        let nnis =
            u32::try_from(self.nnis()).map_err(|_| PingInfoError::TooLarge { size: needed })?;
        let total = u32::try_from(needed).map_err(|_| PingInfoError::TooLarge { size: needed })?;
        let features = self.wire_features();

        let out = &mut out[..needed];
        out[field::MAGIC].copy_from_slice(&LNET_PROTO_PING_MAGIC.to_le_bytes());
        out[field::FEATURES].copy_from_slice(&features.to_le_bytes());
        out[field::PID].copy_from_slice(&self.pid.to_le_bytes());
        out[field::NNIS].copy_from_slice(&nnis.to_le_bytes());

        let lo_size = if features & LNET_PING_FEAT_LARGE_ADDR != 0 {
            total
        } else {
            0
        };
        let entries = core::iter::once((NID4_LO_0, self.seq, lo_size)).chain(
            nid4s
                .iter()
                .zip(&self.nis)
                .map(|(v, ni)| (*v, ni.status, ni.msg_size)),
        );
        let mut off = PING_INFO_HDR_SIZE;
        for (nid, status, msg_size) in entries {
            let e = &mut out[off..off + NI_STATUS_SIZE];
            e[field::NS_NID].copy_from_slice(&nid.to_le_bytes());
            e[field::NS_STATUS].copy_from_slice(&status.to_le_bytes());
            e[field::NS_MSG_SIZE].copy_from_slice(&msg_size.to_le_bytes());
            off += NI_STATUS_SIZE;
        }
        for ni in &self.large_nis {
            let len = large_entry_len(ni.nid.size);
            let nid_len = large_nid_len(ni.nid.size);
            let e = &mut out[off..off + len];
            e.fill(0);
            e[0..4].copy_from_slice(&ni.status.to_le_bytes());
            e[4..4 + nid_len].copy_from_slice(&ni.nid.to_bytes()[..nid_len]);
            off += len;
        }
        debug_assert_eq!(off, needed);
        Ok(needed)
    }

    /// The emitted buffer as a new vector.
    pub fn to_vec(&self) -> Result<Vec<u8>, PingInfoError> {
        let mut v = vec![0u8; self.buffer_len()];
        self.emit(&mut v)?;
        Ok(v)
    }

    /// Parses the bytes of a ping REPLY or push PUT (`buf` = exactly the bytes
    /// received), accepting either byte order.
    ///
    /// Checks, in order: magic, NI_STATUS, `1 <= pi_nnis <= max_interfaces`,
    /// entry 0 is `0@lo`, then the size: with LARGE_ADDR entry 0's
    /// `ns_msg_size` rounded down to 4 (at least header plus classic
    /// entries), else `16 + 16 * pi_nnis`. Fewer bytes than that is
    /// [`PingInfoError::Truncated`] (retry with a larger buffer); bytes past
    /// it (e.g. a metadata block) are ignored. Large entries whose NID is
    /// longer than 20 bytes, or of a size this implementation cannot
    /// represent (neither 4 nor 16 address bytes), are skipped.
    pub fn parse(buf: &[u8], max_interfaces: u32) -> Result<PingInfo, PingInfoError> {
        PingInfo::parse_view(&PingInfoView::new_checked(buf)?, max_interfaces)
    }

    /// [`parse`](PingInfo::parse) over a view.
    pub fn parse_view<T: AsRef<[u8]>>(
        v: &PingInfoView<T>,
        max_interfaces: u32,
    ) -> Result<PingInfo, PingInfoError> {
        let received = v.as_bytes().len();
        let features = v.features();
        if features & LNET_PING_FEAT_NI_STATUS == 0 {
            return Err(PingInfoError::NoNiStatus { features });
        }
        let nnis = v.nnis();
        if nnis == 0 || nnis > max_interfaces {
            return Err(PingInfoError::BadNnis {
                nnis,
                max: max_interfaces,
            });
        }
        // nnis <= u32::MAX: this cannot overflow a 64-bit usize; saturate elsewhere.
        let classic_size = (nnis as usize)
            .saturating_mul(NI_STATUS_SIZE)
            .saturating_add(PING_INFO_HDR_SIZE);
        let Some((lo_nid, seq, lo_msg_size)) = v.entry(0) else {
            return Err(PingInfoError::Truncated {
                received,
                needed: classic_size,
            });
        };
        if lo_nid != NID4_LO_0 {
            return Err(PingInfoError::FirstNotLo { nid: lo_nid });
        }
        let large = features & LNET_PING_FEAT_LARGE_ADDR != 0;
        let size = if large {
            let s = (lo_msg_size & !3) as usize;
            if s < classic_size {
                return Err(PingInfoError::BadSize {
                    size: lo_msg_size,
                    min: classic_size,
                });
            }
            s
        } else {
            classic_size
        };
        if received < size {
            return Err(PingInfoError::Truncated {
                received,
                needed: size,
            });
        }

        let mut nis = Vec::with_capacity(nnis as usize - 1);
        for index in 1..nnis as usize {
            let (nid, status, msg_size) = v.entry(index).ok_or(PingInfoError::Truncated {
                received,
                needed: size,
            })?;
            nis.push(NiStatus {
                nid: nid_from_nid4(index, nid)?,
                status,
                msg_size,
            });
        }

        let mut large_nis = Vec::new();
        if large {
            let bytes = &v.as_bytes()[..size];
            let mut off = classic_size;
            while off < size {
                let overrun = PingInfoError::BadLargeEntry { offset: off, size };
                // Status, then at least the 8-byte NID header.
                let Some(e) = bytes.get(off..off + 12) else {
                    return Err(overrun);
                };
                let size_byte = e[4];
                let len = large_entry_len(size_byte);
                let Some(e) = bytes.get(off..off + len) else {
                    return Err(overrun);
                };
                let nid_len = large_nid_len(size_byte);
                if nid_len <= 20 {
                    let mut raw = [0u8; 20];
                    raw[..nid_len].copy_from_slice(&e[4..4 + nid_len]);
                    if let Some(nid) = Nid::from_bytes(&raw) {
                        large_nis.push(NiStatus::new(nid, v.order().u32(&e[0..4])));
                    }
                }
                off += len;
            }
        }

        Ok(PingInfo {
            features,
            pid: v.pid(),
            seq,
            nis,
            large_nis,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lnd_api::nid::NetId;
    use proptest::prelude::*;

    const TCP: NetId = NetId::new(2, 0);

    fn hex(s: &str) -> Vec<u8> {
        s.split_whitespace()
            .map(|b| u8::from_str_radix(b, 16).expect("test hex"))
            .collect()
    }

    fn nid(a: u8, b: u8, c: u8, d: u8) -> Nid {
        Nid::new4(TCP, u32::from_be_bytes([a, b, c, d]))
    }

    fn v6(last: u8) -> Nid {
        let mut a = [0u8; 16];
        a[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
        a[15] = last;
        Nid::new16(NetId::new(2, 1), a)
    }

    /// spec/wire.md 6.2: single NID 192.168.1.10@tcp, discovery on, not a
    /// router, sequence 3.
    const EXAMPLE: &str = "
        67 6e 69 70 1e 00 00 00 39 30 00 00 02 00 00 00
        00 00 00 00 00 00 09 00 03 00 00 00 00 00 00 00
        0a 01 a8 c0 00 00 02 00 de c0 aa 15 00 00 00 00";

    fn example_info() -> PingInfo {
        PingInfo::new(
            LNET_PID_LUSTRE,
            LNET_PING_FEAT_NI_STATUS
                | LNET_PING_FEAT_RTE_DISABLED
                | LNET_PING_FEAT_MULTI_RAIL
                | LNET_PING_FEAT_DISCOVERY,
            3,
            &[NiStatus::new(nid(192, 168, 1, 10), LNET_NI_STATUS_UP)],
        )
    }

    #[test]
    fn spec_example_emit_and_parse() {
        let want = hex(EXAMPLE);
        assert_eq!(want.len(), 48);
        let info = example_info();
        assert_eq!(info.buffer_len(), 48);
        assert_eq!(info.to_vec().expect("emit"), want);

        let parsed = PingInfo::parse(&want, LNET_INTERFACES_MAX_DEFAULT).expect("valid");
        assert_eq!(parsed, info);
        assert_eq!(parsed.features, 0x1e);
        assert_eq!(parsed.pid, 12345);
        assert_eq!(parsed.seq, 3);
        assert_eq!(parsed.primary_nid(), Some(nid(192, 168, 1, 10)));
        assert!(parsed.nis[0].is_up());
        assert!(parsed.large_nis.is_empty());

        let view = PingInfoView::new_checked(&want[..]).expect("view");
        assert_eq!(view.order(), ByteOrder::Little);
        assert_eq!(view.nnis(), 2);
        assert_eq!(
            view.entry(1),
            Some((0x0002_0000_C0A8_010A, LNET_NI_STATUS_UP, 0))
        );
        assert_eq!(view.entry(2), None);
        assert_eq!(view.entry(usize::MAX), None);
    }

    /// Byte-swap every numeric field of a classic-only info.
    fn swapped(le: &[u8]) -> Vec<u8> {
        let mut b = le.to_vec();
        for w in b[..16].chunks_mut(4) {
            w.reverse();
        }
        for e in b[16..].chunks_mut(16) {
            e[0..8].reverse();
            e[8..12].reverse();
            e[12..16].reverse();
        }
        b
    }

    #[test]
    fn big_endian_sender_is_accepted() {
        let be = swapped(&hex(EXAMPLE));
        assert_eq!(
            &be[..32],
            &hex("70 69 6e 67 00 00 00 1e 00 00 30 39 00 00 00 02
                  00 09 00 00 00 00 00 00 00 00 00 03 00 00 00 00")[..]
        );
        let view = PingInfoView::new_checked(&be[..]).expect("view");
        assert_eq!(view.order(), ByteOrder::Big);
        let parsed = PingInfo::parse(&be, 16).expect("swapped sender");
        assert_eq!(parsed, example_info());
        // We answer in our own order.
        assert_eq!(parsed.to_vec().expect("emit"), hex(EXAMPLE));
    }

    #[test]
    fn large_nid_info() {
        let down = NiStatus::new(nid(10, 0, 0, 1), LNET_NI_STATUS_DOWN);
        let info = PingInfo::new(
            LNET_PID_LUSTRE,
            LNET_PING_FEAT_MULTI_RAIL | LNET_PING_FEAT_DISCOVERY,
            7,
            &[
                NiStatus::new(v6(1), LNET_NI_STATUS_UP),
                NiStatus::new(Nid::LO_0, 0), // skipped: emit adds it
                down,
                NiStatus::new(v6(2), LNET_NI_STATUS_DOWN),
            ],
        );
        assert_eq!(
            info.features,
            0x18 | LNET_PING_FEAT_NI_STATUS
                | LNET_PING_FEAT_LARGE_ADDR
                | LNET_PING_FEAT_PRIMARY_LARGE
        );
        assert_eq!(info.nis, vec![down]);
        assert_eq!(info.large_nis.len(), 2);
        let len = 16 + 2 * 16 + 2 * 24;
        assert_eq!(info.buffer_len(), len);

        let bytes = info.to_vec().expect("emit");
        let mut want = hex("67 6e 69 70 7a 00 00 00 39 30 00 00 02 00 00 00
             00 00 00 00 00 00 09 00 07 00 00 00 60 00 00 00
             01 00 00 0a 00 00 02 00 ce fa ad de 00 00 00 00
             de c0 aa 15 0c 02 00 01 20 01 0d b8");
        want.extend_from_slice(&[0; 11]);
        want.push(1);
        want.extend(hex("ce fa ad de 0c 02 00 01 20 01 0d b8"));
        want.extend_from_slice(&[0; 11]);
        want.push(2);
        assert_eq!(bytes, want);

        let parsed = PingInfo::parse(&bytes, 16).expect("valid");
        assert_eq!(parsed, info);
        assert_eq!(parsed.primary_nid(), Some(v6(1)));
        let all: Vec<Nid> = parsed.all_nis().iter().map(|n| n.nid).collect();
        assert_eq!(all, vec![v6(1), nid(10, 0, 0, 1), v6(2)]);

        // Extra bytes past ns_msg_size (e.g. metadata) are ignored.
        let mut longer = bytes.clone();
        longer.extend_from_slice(&[0xAB; 44]);
        assert_eq!(PingInfo::parse(&longer, 16), Ok(info.clone()));

        // A short read is a truncation asking for the whole size.
        let e = PingInfo::parse(&bytes[..len - 4], 16).expect_err("truncated");
        assert_eq!(
            e,
            PingInfoError::Truncated {
                received: len - 4,
                needed: len
            }
        );
        assert_eq!(e.retry_size(), Some(len));
        assert!(e
            .to_string()
            .contains("retry with a buffer of at least 96 bytes"));
    }

    #[test]
    fn large_entries_of_other_sizes() {
        // Entry 0 announces 16 + 16 + 12 + 24 + 268 = 336 bytes: an IPv4 large
        // entry (12 bytes), an ANY marker (24) and a 262-byte NID (skipped).
        let mut b = hex("67 6e 69 70 22 00 00 00 39 30 00 00 01 00 00 00
             00 00 00 00 00 00 09 00 01 00 00 00 53 01 00 00
             de c0 aa 15 00 02 00 03 c0 a8 01 0a");
        b.extend(hex("00 00 00 00"));
        b.extend_from_slice(&[0xFF; 20]);
        b.extend(hex("de c0 aa 15 fe 05 00 00"));
        b.resize(b.len() + 268 - 8, 0x11);
        assert_eq!(b.len(), 336);
        let p = PingInfo::parse(&b, 16).expect("valid");
        assert!(p.nis.is_empty());
        assert_eq!(
            p.large_nis,
            vec![
                NiStatus::new(Nid::new4(NetId::new(2, 3), 0xC0A8_010A), LNET_NI_STATUS_UP),
                NiStatus::new(Nid::ANY, 0),
            ]
        );
        // ns_msg_size 0x153 = 339 rounds down to 336.
        let again = PingInfo::parse(&p.to_vec().expect("emit"), 16).expect("re-parse");
        assert_eq!(again, p);

        // An entry that overruns the info.
        let e = PingInfo::parse(&b[..335], 16).expect_err("short");
        assert_eq!(
            e,
            PingInfoError::Truncated {
                received: 335,
                needed: 336
            }
        );
        let mut c = b.clone();
        c[28..32].copy_from_slice(&(336u32 - 4).to_le_bytes());
        assert_eq!(
            PingInfo::parse(&c, 16),
            Err(PingInfoError::BadLargeEntry {
                offset: 68,
                size: 332
            })
        );
        c[28..32].copy_from_slice(&(32u32 + 8).to_le_bytes());
        assert_eq!(
            PingInfo::parse(&c, 16),
            Err(PingInfoError::BadLargeEntry {
                offset: 32,
                size: 40
            })
        );
        c[28..32].copy_from_slice(&31u32.to_le_bytes());
        assert_eq!(
            PingInfo::parse(&c, 16),
            Err(PingInfoError::BadSize { size: 31, min: 32 })
        );
    }

    #[test]
    fn parse_errors() {
        let good = hex(EXAMPLE);
        let max = LNET_INTERFACES_MAX_DEFAULT;

        assert_eq!(
            PingInfo::parse(&good[..3], max),
            Err(PingInfoError::Truncated {
                received: 3,
                needed: 16
            })
        );
        assert_eq!(
            PingInfo::parse(&good[..15], max),
            Err(PingInfoError::Truncated {
                received: 15,
                needed: 16
            })
        );
        assert_eq!(
            PingInfo::parse(&good[..20], max),
            Err(PingInfoError::Truncated {
                received: 20,
                needed: 48
            })
        );
        assert_eq!(
            PingInfo::parse(&good[..40], max),
            Err(PingInfoError::Truncated {
                received: 40,
                needed: 48
            })
        );

        let mut b = good.clone();
        b[0] = 0x68;
        let e = PingInfo::parse(&b, max).expect_err("magic");
        assert_eq!(e, PingInfoError::BadMagic { magic: 0x7069_6E68 });
        assert!(e.to_string().contains("0x70696e68"));
        assert_eq!(e.retry_size(), None);
        // The socklnd magic is not a ping magic.
        assert!(matches!(
            PingInfo::parse(&LNET_PROTO_MAGIC.to_le_bytes(), max),
            Err(PingInfoError::BadMagic { .. })
        ));

        let mut b = good.clone();
        b[4] = 0x1c;
        let e = PingInfo::parse(&b, max).expect_err("no ni status");
        assert_eq!(e, PingInfoError::NoNiStatus { features: 0x1c });
        assert!(e.to_string().contains("NI_STATUS"));

        let mut b = good.clone();
        b[12] = 0;
        assert_eq!(
            PingInfo::parse(&b, max),
            Err(PingInfoError::BadNnis { nnis: 0, max })
        );
        b[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(
            PingInfo::parse(&b, u32::MAX),
            Err(PingInfoError::Truncated {
                received: 48,
                needed: 16 + 16 * u32::MAX as usize
            })
        );
        assert_eq!(
            PingInfo::parse(&good, 1),
            Err(PingInfoError::BadNnis { nnis: 2, max: 1 })
        );
        assert!(PingInfo::parse(&good, 2).is_ok());

        let mut b = good.clone();
        b[16] = 1;
        let e = PingInfo::parse(&b, max).expect_err("first not lo");
        assert_eq!(
            e,
            PingInfoError::FirstNotLo {
                nid: 0x0009_0000_0000_0001
            }
        );
        assert!(e.to_string().contains("0@lo"));

        let mut b = good.clone();
        b[39] = 0x01;
        let e = PingInfo::parse(&b, max).expect_err("bad nid");
        assert_eq!(
            e,
            PingInfoError::BadNid {
                index: 1,
                value: 0x0102_0000_C0A8_010A
            }
        );

        // Bytes past 16 + 16 * nnis are ignored without LARGE_ADDR.
        let mut b = good.clone();
        b.extend_from_slice(&[0xEE; 30]);
        assert_eq!(PingInfo::parse(&b, max), Ok(example_info()));
    }

    #[test]
    fn emit_errors() {
        let info = example_info();
        let mut small = [0u8; 47];
        assert_eq!(
            info.emit(&mut small),
            Err(PingInfoError::BufferTooSmall {
                len: 47,
                needed: 48
            })
        );
        assert_eq!(small, [0u8; 47]);
        let mut bad = info.clone();
        bad.nis.push(NiStatus::new(v6(3), LNET_NI_STATUS_UP));
        let mut out = [0u8; 64];
        let e = bad.emit(&mut out).expect_err("large nid in classic list");
        assert_eq!(
            e,
            PingInfoError::NoClassicForm {
                index: 1,
                addr_len: 16
            }
        );
        assert_eq!(out, [0u8; 64]);
    }

    #[test]
    fn constants() {
        assert_eq!(&LNET_PROTO_PING_MAGIC.to_le_bytes(), b"gnip");
        assert_eq!(LNET_PROTO_PING_MATCHBITS, 1 << 63);
        assert_eq!(LNET_RESERVED_PORTAL, 0);
        assert_eq!(LNET_PING_FEAT_METADATA, 0x80);
        assert_eq!(Nid::LO_0.to_nid4(), Some(NID4_LO_0));
        assert_eq!(LNET_PROTO_TCP_MAGIC, 0xEEBC_0DED);
        assert_eq!(PING_INFO_DEFAULT_SIZE, 272);
    }

    fn info_strategy() -> impl Strategy<Value = PingInfo> {
        let ni = (
            prop_oneof![
                (0u8..0xFF, any::<u16>(), any::<u32>())
                    .prop_map(|(t, n, a)| Nid::new4(NetId::new(t, n), a)),
                (0u8..0xFF, any::<u16>(), any::<[u8; 16]>())
                    .prop_map(|(t, n, a)| Nid::new16(NetId::new(t, n), a)),
            ],
            any::<u32>(),
        )
            .prop_map(|(nid, st)| NiStatus::new(nid, st));
        (
            any::<u32>(),
            any::<u32>(),
            any::<u32>(),
            proptest::collection::vec(ni, 0..6),
        )
            .prop_map(|(pid, f, seq, nis)| PingInfo::new(pid, f, seq, &nis))
    }

    /// Random bytes around a valid buffer: a valid one is mutated at a few
    /// positions and cut at a random length.
    fn mutated_bytes() -> impl Strategy<Value = Vec<u8>> {
        (
            info_strategy(),
            proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
            any::<prop::sample::Index>(),
            any::<bool>(),
        )
            .prop_map(|(info, muts, cut, swap)| {
                let mut b = info.to_vec().expect("emit");
                for (i, v) in muts {
                    let i = i.index(b.len());
                    b[i] = v;
                }
                if swap && info.large_nis.is_empty() {
                    b = swapped(&b);
                }
                let cut = cut.index(b.len() + 1);
                b.truncate(cut.max(b.len().saturating_sub(8)));
                b
            })
    }

    proptest! {
        #[test]
        fn emit_parse_round_trip(info in info_strategy()) {
            let b = info.to_vec().expect("emit");
            prop_assert_eq!(b.len(), info.buffer_len());
            prop_assert_eq!(PingInfo::parse(&b, 16), Ok(info));
        }

        #[test]
        fn parse_never_panics_on_random_bytes(b in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = PingInfo::parse(&b, LNET_INTERFACES_MAX_DEFAULT);
        }

        #[test]
        fn parse_is_stable_on_mutated_buffers(b in mutated_bytes()) {
            if let Ok(p) = PingInfo::parse(&b, LNET_INTERFACES_MAX_DEFAULT) {
                let e = p.to_vec().expect("parsed info re-emits");
                let p2 = PingInfo::parse(&e, LNET_INTERFACES_MAX_DEFAULT).expect("re-parse");
                prop_assert_eq!(&p2, &p);
                prop_assert_eq!(p2.to_vec().expect("emit"), e);
            }
        }
    }
}
