//! o2iblnd's wire formats (`spec/wire.md` §7): the `kib_msg` header and
//! every message type, the connection parameters carried in the RDMA CM
//! private data, and the reject private data (`kib_rej`).
//!
//! As in smoltcp, each format has a checked view over bytes
//! ([`Msg::new_checked`], accessors over byte ranges, in the sender's byte
//! order) and a validated representation ([`MsgRepr`], [`RejRepr`]) with
//! `parse` / `emit`. Decoders never panic and never trust a length field:
//! `ibm_nob` must lie within the received bytes and cover the fixed part of
//! its type; an RDMA descriptor's fragment count must lie in 1..=257 and its
//! fragments inside `ibm_nob`.
//!
//! We emit in the requested byte order (little-endian on this machine); a
//! byte-swapped sender is recognised by its magic and every numeric field is
//! read in its order. Completion cookies are opaque: they are read and
//! written as the raw 8 bytes (`u64::from_ne_bytes`), never flipped, as the
//! kernel's `kiblnd_unpack_msg()` leaves them.

use std::fmt;

use lnd_api::hdr::HDR_NID4_SIZE;
use lnd_api::Hdr;

/// `IBLND_MSG_MAGIC` (`LNET_PROTO_IB_MAGIC`).
pub const MAGIC: u32 = 0x0BE9_1B91;
/// `LNET_PROTO_MAGIC`: a "future unified protocol" probe; rejected FATAL.
pub const LNET_PROTO_MAGIC: u32 = 0x4572_6963;
/// `IBLND_MSG_VERSION_1`.
pub const VERSION_1: u16 = 0x11;
/// `IBLND_MSG_VERSION_2` (current).
pub const VERSION_2: u16 = 0x12;
/// `IBLND_MSG_SIZE`: the largest message (and each receive buffer).
pub const MSG_SIZE: usize = 4096;
/// `IBLND_MAX_RDMA_FRAGS`: 256 pages + 1 for misalignment.
pub const MAX_RDMA_FRAGS: u32 = 257;
/// Size of the `kib_msg` header.
pub const HDR_SIZE: usize = 48;
/// Offset of an IMMEDIATE message's inline payload.
pub const IMMEDIATE_PAYLOAD_OFFSET: usize = HDR_SIZE + HDR_NID4_SIZE;
/// The largest inline payload (4096 − 120).
pub const MAX_IMMEDIATE_PAYLOAD: usize = MSG_SIZE - IMMEDIATE_PAYLOAD_OFFSET;
/// Size of CONNREQ / CONNACK.
pub const CONN_MSG_SIZE: usize = HDR_SIZE + 8;
/// Size of a completion message (PUT_NAK, PUT_DONE, GET_DONE).
pub const COMPLETION_MSG_SIZE: usize = HDR_SIZE + 12;
/// Size of the reject private data (`kib_rej`).
pub const REJ_SIZE: usize = 24;
/// Size of one RDMA fragment (`kib_rdma_frag`: u32 nob + u64 addr, packed).
pub const FRAG_SIZE: usize = 12;
/// Classic `LNET_NID_ANY`.
pub const NID4_ANY: u64 = u64::MAX;

/// `IBLND_MSG_*` type numbers.
pub mod msg_type {
    /// `IBLND_MSG_CONNREQ`.
    pub const CONNREQ: u8 = 0xC0;
    /// `IBLND_MSG_CONNACK`.
    pub const CONNACK: u8 = 0xC1;
    /// `IBLND_MSG_NOOP`.
    pub const NOOP: u8 = 0xD0;
    /// `IBLND_MSG_IMMEDIATE`.
    pub const IMMEDIATE: u8 = 0xD1;
    /// `IBLND_MSG_PUT_REQ`.
    pub const PUT_REQ: u8 = 0xD2;
    /// `IBLND_MSG_PUT_NAK`.
    pub const PUT_NAK: u8 = 0xD3;
    /// `IBLND_MSG_PUT_ACK`.
    pub const PUT_ACK: u8 = 0xD4;
    /// `IBLND_MSG_PUT_DONE`.
    pub const PUT_DONE: u8 = 0xD5;
    /// `IBLND_MSG_GET_REQ`.
    pub const GET_REQ: u8 = 0xD6;
    /// `IBLND_MSG_GET_DONE`.
    pub const GET_DONE: u8 = 0xD7;

    /// Upstream's name of a type, for messages.
    pub const fn name(t: u8) -> &'static str {
        match t {
            CONNREQ => "CONNREQ",
            CONNACK => "CONNACK",
            NOOP => "NOOP",
            IMMEDIATE => "IMMEDIATE",
            PUT_REQ => "PUT_REQ",
            PUT_NAK => "PUT_NAK",
            PUT_ACK => "PUT_ACK",
            PUT_DONE => "PUT_DONE",
            GET_REQ => "GET_REQ",
            GET_DONE => "GET_DONE",
            _ => "unknown",
        }
    }
}

/// The byte order of a sender.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub enum Endian {
    /// Little-endian (what we send on this machine).
    Little,
    /// Big-endian: a byte-swapped peer.
    Big,
}

impl Endian {
    /// This machine's order.
    pub const NATIVE: Endian = if cfg!(target_endian = "big") {
        Endian::Big
    } else {
        Endian::Little
    };

    /// The order in which `raw` (the first 4 bytes) reads as `magic`.
    fn of_magic(raw: [u8; 4], magic: u32) -> Option<Endian> {
        if u32::from_le_bytes(raw) == magic {
            Some(Endian::Little)
        } else if u32::from_be_bytes(raw) == magic {
            Some(Endian::Big)
        } else {
            None
        }
    }

    fn u16(self, b: &[u8], off: usize) -> u16 {
        let a = [b[off], b[off + 1]];
        match self {
            Endian::Little => u16::from_le_bytes(a),
            Endian::Big => u16::from_be_bytes(a),
        }
    }

    fn u32(self, b: &[u8], off: usize) -> u32 {
        let a = [b[off], b[off + 1], b[off + 2], b[off + 3]];
        match self {
            Endian::Little => u32::from_le_bytes(a),
            Endian::Big => u32::from_be_bytes(a),
        }
    }

    fn u64(self, b: &[u8], off: usize) -> u64 {
        let a = raw8(b, off);
        match self {
            Endian::Little => u64::from_le_bytes(a),
            Endian::Big => u64::from_be_bytes(a),
        }
    }

    fn put_u16(self, b: &mut [u8], off: usize, v: u16) {
        let a = match self {
            Endian::Little => v.to_le_bytes(),
            Endian::Big => v.to_be_bytes(),
        };
        b[off..off + 2].copy_from_slice(&a);
    }

    fn put_u32(self, b: &mut [u8], off: usize, v: u32) {
        let a = match self {
            Endian::Little => v.to_le_bytes(),
            Endian::Big => v.to_be_bytes(),
        };
        b[off..off + 4].copy_from_slice(&a);
    }

    fn put_u64(self, b: &mut [u8], off: usize, v: u64) {
        let a = match self {
            Endian::Little => v.to_le_bytes(),
            Endian::Big => v.to_be_bytes(),
        };
        b[off..off + 8].copy_from_slice(&a);
    }
}

fn raw8(b: &[u8], off: usize) -> [u8; 8] {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[off..off + 8]);
    a
}

/// Why bytes are not a valid o2iblnd message.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// Fewer bytes than needed to read what the message announces.
    Truncated {
        /// What was being read.
        what: &'static str,
        /// Bytes needed.
        need: usize,
        /// Bytes there.
        have: usize,
    },
    /// The magic is neither `0x0be91b91` nor its byte-swapped form.
    BadMagic(u32),
    /// The magic is `LNET_PROTO_MAGIC` (a unified-protocol probe).
    ProtoMagic,
    /// The version is neither 0x11 nor 0x12.
    BadVersion(u16),
    /// `ibm_nob` exceeds the bytes received or the message size.
    BadNob {
        /// `ibm_nob`.
        nob: u32,
        /// Bytes received.
        have: usize,
    },
    /// The checksum does not match.
    BadChecksum {
        /// Sent.
        sent: u32,
        /// Computed.
        computed: u32,
    },
    /// `ibm_srcnid` is `LNET_NID_ANY`.
    AnySrcNid,
    /// Unknown `ibm_type`.
    UnknownType(u8),
    /// `ibm_nob` is shorter than the fixed part of its type.
    ShortForType {
        /// `ibm_type`.
        msg_type: u8,
        /// `ibm_nob`.
        nob: u32,
        /// Required.
        need: usize,
    },
    /// An RDMA descriptor with 0 or more than 257 fragments.
    BadFragCount(u32),
    /// The embedded LNet header does not decode.
    BadLnetHdr(String),
    /// An IMMEDIATE's inline payload is longer than the LNet header says.
    ImmediateLength {
        /// `payload_length` in the LNet header.
        hdr: u32,
        /// Inline bytes.
        inline: usize,
    },
    /// The output buffer is too small.
    NoRoom {
        /// Bytes needed.
        need: usize,
        /// Bytes there.
        have: usize,
    },
    /// The message to emit is invalid (a header NID without a classic form,
    /// a descriptor with a bad fragment count, a payload too large).
    Invalid(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Truncated { what, need, have } => {
                write!(
                    f,
                    "o2iblnd {what} truncated: need {need} bytes, have {have}"
                )
            }
            Error::BadMagic(m) => write!(f, "bad o2iblnd magic {m:#010x}"),
            Error::ProtoMagic => f.write_str("unified protocol probe (LNET_PROTO_MAGIC)"),
            Error::BadVersion(v) => write!(f, "unsupported o2iblnd version {v:#x}"),
            Error::BadNob { nob, have } => {
                write!(
                    f,
                    "o2iblnd message length {nob} exceeds the {have} bytes received"
                )
            }
            Error::BadChecksum { sent, computed } => {
                write!(
                    f,
                    "o2iblnd checksum mismatch: sent {sent:#x}, computed {computed:#x}"
                )
            }
            Error::AnySrcNid => f.write_str("o2iblnd message from LNET_NID_ANY"),
            Error::UnknownType(t) => write!(f, "unknown o2iblnd message type {t:#x}"),
            Error::ShortForType {
                msg_type: t,
                nob,
                need,
            } => write!(
                f,
                "o2iblnd {} of {nob} bytes is shorter than its {need}-byte fixed part",
                msg_type::name(*t)
            ),
            Error::BadFragCount(n) => {
                write!(
                    f,
                    "o2iblnd RDMA descriptor with {n} fragments (1..=257 allowed)"
                )
            }
            Error::BadLnetHdr(e) => write!(f, "bad LNet header in o2iblnd message: {e}"),
            Error::ImmediateLength { hdr, inline } => write!(
                f,
                "o2iblnd IMMEDIATE carries {inline} inline bytes but its LNet header says {hdr}"
            ),
            Error::NoRoom { need, have } => {
                write!(f, "o2iblnd message needs {need} bytes, buffer has {have}")
            }
            Error::Invalid(s) => write!(f, "cannot encode o2iblnd message: {s}"),
        }
    }
}

impl std::error::Error for Error {}

/// o2iblnd's checksum (`kiblnd_cksum()`): rotate left by one, add the byte
/// as a sign-extended `char`; a result of 0 is reported as 1. The 4 bytes at
/// `skip` (the `ibm_cksum` field) count as zero.
pub fn cksum(bytes: &[u8], skip: Option<usize>) -> u32 {
    let mut sum: u32 = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let b = match skip {
            Some(s) if (s..s + 4).contains(&i) => 0,
            _ => b,
        };
        sum = sum.rotate_left(1).wrapping_add(b as i8 as i32 as u32);
    }
    if sum == 0 {
        1
    } else {
        sum
    }
}

/// Offsets of the `kib_msg` header fields.
mod field {
    pub(super) const MAGIC: usize = 0;
    pub(super) const VERSION: usize = 4;
    pub(super) const TYPE: usize = 6;
    pub(super) const CREDITS: usize = 7;
    pub(super) const NOB: usize = 8;
    pub(super) const CKSUM: usize = 12;
    pub(super) const SRCNID: usize = 16;
    pub(super) const SRCSTAMP: usize = 24;
    pub(super) const DSTNID: usize = 32;
    pub(super) const DSTSTAMP: usize = 40;
    pub(super) const BODY: usize = 48;
}

/// Connection parameters (`kib_connparams`), carried in CONNREQ, CONNACK
/// and rejects.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub struct ConnParams {
    /// `ibcp_queue_depth`: messages in flight (peer credits).
    pub queue_depth: u16,
    /// `ibcp_max_frags`: RDMA fragments per descriptor.
    pub max_frags: u16,
    /// `ibcp_max_msg_size`: 4096.
    pub max_msg_size: u32,
}

impl ConnParams {
    fn read(e: Endian, b: &[u8], off: usize) -> Self {
        ConnParams {
            queue_depth: e.u16(b, off),
            max_frags: e.u16(b, off + 2),
            max_msg_size: e.u32(b, off + 4),
        }
    }

    fn write(&self, e: Endian, b: &mut [u8], off: usize) {
        e.put_u16(b, off, self.queue_depth);
        e.put_u16(b, off + 2, self.max_frags);
        e.put_u32(b, off + 4, self.max_msg_size);
    }
}

/// One RDMA fragment (`kib_rdma_frag`).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub struct RdmaFrag {
    /// `rf_nob`: bytes.
    pub nob: u32,
    /// `rf_addr`: remote (virtual or offset) address.
    pub addr: u64,
}

/// An RDMA buffer descriptor (`kib_rdma_desc`).
#[derive(Clone, PartialEq, Eq, Debug, Hash, Default)]
pub struct RdmaDesc {
    /// `rd_key`: the rkey covering every fragment.
    pub key: u32,
    /// `rd_frags`: 1..=257 of them.
    pub frags: Vec<RdmaFrag>,
}

impl RdmaDesc {
    /// Bytes on the wire.
    pub fn wire_len(&self) -> usize {
        8 + FRAG_SIZE * self.frags.len()
    }

    /// Total bytes described.
    pub fn total_nob(&self) -> u64 {
        self.frags.iter().map(|f| f.nob as u64).sum()
    }

    /// Reads a descriptor at `off` of `b[..nob]`.
    fn read(e: Endian, b: &[u8], off: usize, t: u8) -> Result<Self, Error> {
        let n = e.u32(b, off + 4);
        if n == 0 || n > MAX_RDMA_FRAGS {
            return Err(Error::BadFragCount(n));
        }
        let need = off + 8 + FRAG_SIZE * n as usize;
        if need > b.len() {
            return Err(Error::ShortForType {
                msg_type: t,
                nob: b.len() as u32,
                need,
            });
        }
        let frags = (0..n as usize)
            .map(|i| {
                let o = off + 8 + FRAG_SIZE * i;
                RdmaFrag {
                    nob: e.u32(b, o),
                    addr: e.u64(b, o + 4),
                }
            })
            .collect();
        Ok(RdmaDesc {
            key: e.u32(b, off),
            frags,
        })
    }

    fn write(&self, e: Endian, b: &mut [u8], off: usize) {
        e.put_u32(b, off, self.key);
        e.put_u32(b, off + 4, self.frags.len() as u32);
        for (i, f) in self.frags.iter().enumerate() {
            let o = off + 8 + FRAG_SIZE * i;
            e.put_u32(b, o, f.nob);
            e.put_u64(b, o + 4, f.addr);
        }
    }

    fn check(&self) -> Result<(), Error> {
        let n = self.frags.len();
        if n == 0 || n > MAX_RDMA_FRAGS as usize {
            return Err(Error::Invalid(format!(
                "RDMA descriptor with {n} fragments (1..=257 allowed)"
            )));
        }
        Ok(())
    }
}

/// A completion body (`kib_completion_msg`).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub struct CompletionBody {
    /// `ibcm_cookie`: opaque, echoed.
    pub cookie: u64,
    /// `ibcm_status`: bytes or success (≥ 0), or `-errno`.
    pub status: i32,
}

/// The body of a message, by type.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Body {
    /// CONNREQ (0xC0).
    ConnReq(ConnParams),
    /// CONNACK (0xC1).
    ConnAck(ConnParams),
    /// NOOP (0xD0): credits only, or keepalive.
    Noop,
    /// IMMEDIATE (0xD1): LNet header; the inline payload follows at
    /// [`IMMEDIATE_PAYLOAD_OFFSET`] and is `payload_len` bytes.
    Immediate {
        /// The LNet header.
        hdr: Hdr,
        /// Inline payload bytes (`ibm_nob - 120`).
        payload_len: usize,
    },
    /// PUT_REQ (0xD2).
    PutReq {
        /// The LNet header.
        hdr: Hdr,
        /// `ibprm_cookie`: chosen by the source, opaque.
        cookie: u64,
    },
    /// PUT_NAK (0xD3).
    PutNak(CompletionBody),
    /// PUT_ACK (0xD4).
    PutAck {
        /// `ibpam_src_cookie`: the PUT_REQ's cookie.
        src_cookie: u64,
        /// `ibpam_dst_cookie`: the sink's cookie for PUT_DONE.
        dst_cookie: u64,
        /// `ibpam_rd`: the sink buffer.
        rd: RdmaDesc,
    },
    /// PUT_DONE (0xD5).
    PutDone(CompletionBody),
    /// GET_REQ (0xD6).
    GetReq {
        /// The LNet header (a GET).
        hdr: Hdr,
        /// `ibgm_cookie`.
        cookie: u64,
        /// `ibgm_rd`: the initiator's sink buffer.
        rd: RdmaDesc,
    },
    /// GET_DONE (0xD7).
    GetDone(CompletionBody),
}

impl Body {
    /// `ibm_type` of this body.
    pub fn msg_type(&self) -> u8 {
        match self {
            Body::ConnReq(_) => msg_type::CONNREQ,
            Body::ConnAck(_) => msg_type::CONNACK,
            Body::Noop => msg_type::NOOP,
            Body::Immediate { .. } => msg_type::IMMEDIATE,
            Body::PutReq { .. } => msg_type::PUT_REQ,
            Body::PutNak(_) => msg_type::PUT_NAK,
            Body::PutAck { .. } => msg_type::PUT_ACK,
            Body::PutDone(_) => msg_type::PUT_DONE,
            Body::GetReq { .. } => msg_type::GET_REQ,
            Body::GetDone(_) => msg_type::GET_DONE,
        }
    }
}

/// The fixed size of a type (its minimum `ibm_nob`); `None` if unknown.
pub const fn fixed_size(t: u8) -> Option<usize> {
    Some(match t {
        msg_type::CONNREQ | msg_type::CONNACK => CONN_MSG_SIZE,
        msg_type::NOOP => HDR_SIZE,
        msg_type::IMMEDIATE => IMMEDIATE_PAYLOAD_OFFSET,
        msg_type::PUT_REQ => IMMEDIATE_PAYLOAD_OFFSET + 8,
        msg_type::PUT_NAK | msg_type::PUT_DONE | msg_type::GET_DONE => COMPLETION_MSG_SIZE,
        msg_type::PUT_ACK => HDR_SIZE + 16 + 8,
        msg_type::GET_REQ => IMMEDIATE_PAYLOAD_OFFSET + 8 + 8,
        _ => return None,
    })
}

/// A checked view of a `kib_msg` (header and body) in its sender's order.
#[derive(Debug, Clone)]
pub struct Msg<T: AsRef<[u8]>> {
    buffer: T,
    endian: Endian,
}

impl<T: AsRef<[u8]>> Msg<T> {
    /// Checks what `kiblnd_unpack_msg()` checks before flipping: at least
    /// 6 bytes for magic and version, the magic in either order, version
    /// 0x11 or 0x12, at least 48 bytes, `ibm_nob` within the bytes received
    /// (and at least 48). The view then covers `ibm_nob` bytes.
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        let b = buffer.as_ref();
        if b.len() < 6 {
            return Err(Error::Truncated {
                what: "message",
                need: 6,
                have: b.len(),
            });
        }
        let raw = [b[0], b[1], b[2], b[3]];
        let endian = match Endian::of_magic(raw, MAGIC) {
            Some(e) => e,
            None if Endian::of_magic(raw, LNET_PROTO_MAGIC).is_some() => {
                return Err(Error::ProtoMagic)
            }
            None => return Err(Error::BadMagic(u32::from_le_bytes(raw))),
        };
        let version = endian.u16(b, field::VERSION);
        if version != VERSION_1 && version != VERSION_2 {
            return Err(Error::BadVersion(version));
        }
        if b.len() < HDR_SIZE {
            return Err(Error::Truncated {
                what: "message header",
                need: HDR_SIZE,
                have: b.len(),
            });
        }
        let nob = endian.u32(b, field::NOB);
        if (nob as usize) > b.len() || (nob as usize) < HDR_SIZE {
            return Err(Error::BadNob { nob, have: b.len() });
        }
        Ok(Msg { buffer, endian })
    }

    /// The sender's byte order.
    pub fn endian(&self) -> Endian {
        self.endian
    }
    /// The message bytes (`ibm_nob` of them).
    pub fn bytes(&self) -> &[u8] {
        let b = self.buffer.as_ref();
        &b[..self.nob() as usize]
    }
    /// `ibm_version`.
    pub fn version(&self) -> u16 {
        self.endian.u16(self.buffer.as_ref(), field::VERSION)
    }
    /// `ibm_type`.
    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[field::TYPE]
    }
    /// `ibm_credits`.
    pub fn credits(&self) -> u8 {
        self.buffer.as_ref()[field::CREDITS]
    }
    /// `ibm_nob`.
    pub fn nob(&self) -> u32 {
        self.endian.u32(self.buffer.as_ref(), field::NOB)
    }
    /// `ibm_cksum`.
    pub fn cksum(&self) -> u32 {
        self.endian.u32(self.buffer.as_ref(), field::CKSUM)
    }
    /// `ibm_srcnid`.
    pub fn src_nid(&self) -> u64 {
        self.endian.u64(self.buffer.as_ref(), field::SRCNID)
    }
    /// `ibm_srcstamp`.
    pub fn src_stamp(&self) -> u64 {
        self.endian.u64(self.buffer.as_ref(), field::SRCSTAMP)
    }
    /// `ibm_dstnid`.
    pub fn dst_nid(&self) -> u64 {
        self.endian.u64(self.buffer.as_ref(), field::DSTNID)
    }
    /// `ibm_dststamp`.
    pub fn dst_stamp(&self) -> u64 {
        self.endian.u64(self.buffer.as_ref(), field::DSTSTAMP)
    }
    /// The body bytes (`ibm_nob - 48`).
    pub fn body(&self) -> &[u8] {
        &self.bytes()[HDR_SIZE..]
    }
    /// An IMMEDIATE's inline payload (meaningful for IMMEDIATE only).
    pub fn immediate_payload(&self) -> &[u8] {
        self.bytes().get(IMMEDIATE_PAYLOAD_OFFSET..).unwrap_or(&[])
    }
    /// Verifies `ibm_cksum` (0 = none): computed over `ibm_nob` bytes with
    /// the field counted as zero.
    pub fn verify_cksum(&self) -> Result<(), Error> {
        let sent = self.cksum();
        if sent == 0 {
            return Ok(());
        }
        let computed = cksum(self.bytes(), Some(field::CKSUM));
        if computed != sent {
            return Err(Error::BadChecksum { sent, computed });
        }
        Ok(())
    }
}

/// A validated `kib_msg`.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct MsgRepr {
    /// `ibm_version`.
    pub version: u16,
    /// `ibm_credits`: credits returned to the receiver.
    pub credits: u8,
    /// `ibm_srcnid` (classic NID).
    pub src_nid: u64,
    /// `ibm_srcstamp`: the sender's incarnation.
    pub src_stamp: u64,
    /// `ibm_dstnid`.
    pub dst_nid: u64,
    /// `ibm_dststamp`: the receiver's incarnation as known by the sender.
    pub dst_stamp: u64,
    /// Type and body.
    pub body: Body,
}

fn hdr_at(b: &[u8], off: usize) -> Result<Hdr, Error> {
    let mut a = [0u8; HDR_NID4_SIZE];
    a.copy_from_slice(&b[off..off + HDR_NID4_SIZE]);
    Hdr::decode_nid4(&a).map_err(|e| Error::BadLnetHdr(e.to_string()))
}

impl MsgRepr {
    /// Parses a checked view: verifies the checksum, the source NID, the
    /// type and its fixed size, RDMA descriptors and the embedded LNet
    /// header (an IMMEDIATE's inline bytes must not exceed its
    /// `payload_length`).
    pub fn parse<T: AsRef<[u8]>>(m: &Msg<T>) -> Result<MsgRepr, Error> {
        m.verify_cksum()?;
        let e = m.endian();
        let b = m.bytes();
        let t = m.msg_type();
        let src_nid = m.src_nid();
        if src_nid == NID4_ANY {
            return Err(Error::AnySrcNid);
        }
        let need = fixed_size(t).ok_or(Error::UnknownType(t))?;
        if b.len() < need {
            return Err(Error::ShortForType {
                msg_type: t,
                nob: b.len() as u32,
                need,
            });
        }
        let body = field::BODY;
        let completion = || CompletionBody {
            cookie: u64::from_ne_bytes(raw8(b, body)),
            status: e.u32(b, body + 8) as i32,
        };
        let body = match t {
            msg_type::CONNREQ => Body::ConnReq(ConnParams::read(e, b, body)),
            msg_type::CONNACK => Body::ConnAck(ConnParams::read(e, b, body)),
            msg_type::NOOP => Body::Noop,
            msg_type::IMMEDIATE => {
                let hdr = hdr_at(b, body)?;
                let inline = b.len() - IMMEDIATE_PAYLOAD_OFFSET;
                if inline > hdr.payload_length as usize {
                    return Err(Error::ImmediateLength {
                        hdr: hdr.payload_length,
                        inline,
                    });
                }
                Body::Immediate {
                    hdr,
                    payload_len: inline,
                }
            }
            msg_type::PUT_REQ => Body::PutReq {
                hdr: hdr_at(b, body)?,
                cookie: u64::from_ne_bytes(raw8(b, IMMEDIATE_PAYLOAD_OFFSET)),
            },
            msg_type::PUT_NAK => Body::PutNak(completion()),
            msg_type::PUT_DONE => Body::PutDone(completion()),
            msg_type::GET_DONE => Body::GetDone(completion()),
            msg_type::PUT_ACK => Body::PutAck {
                src_cookie: u64::from_ne_bytes(raw8(b, body)),
                dst_cookie: u64::from_ne_bytes(raw8(b, body + 8)),
                rd: RdmaDesc::read(e, b, body + 16, t)?,
            },
            msg_type::GET_REQ => Body::GetReq {
                hdr: hdr_at(b, body)?,
                cookie: u64::from_ne_bytes(raw8(b, IMMEDIATE_PAYLOAD_OFFSET)),
                rd: RdmaDesc::read(e, b, IMMEDIATE_PAYLOAD_OFFSET + 8, t)?,
            },
            _ => return Err(Error::UnknownType(t)),
        };
        Ok(MsgRepr {
            version: m.version(),
            credits: m.credits(),
            src_nid,
            src_stamp: m.src_stamp(),
            dst_nid: m.dst_nid(),
            dst_stamp: m.dst_stamp(),
            body,
        })
    }

    /// Checks and parses `bytes` in one go.
    pub fn decode(bytes: &[u8]) -> Result<MsgRepr, Error> {
        MsgRepr::parse(&Msg::new_checked(bytes)?)
    }

    /// Bytes of the message without an IMMEDIATE's inline payload.
    pub fn header_len(&self) -> usize {
        match &self.body {
            Body::PutAck { rd, .. } => HDR_SIZE + 16 + rd.wire_len(),
            Body::GetReq { rd, .. } => IMMEDIATE_PAYLOAD_OFFSET + 8 + rd.wire_len(),
            b => fixed_size(b.msg_type()).unwrap_or(HDR_SIZE),
        }
    }

    /// Total bytes (`ibm_nob`), inline payload included.
    pub fn buffer_len(&self) -> usize {
        match &self.body {
            Body::Immediate { payload_len, .. } => IMMEDIATE_PAYLOAD_OFFSET + payload_len,
            _ => self.header_len(),
        }
    }

    /// Writes the message into `out` in byte order `e`; for an IMMEDIATE
    /// the caller has already placed (or places afterwards, before
    /// [`seal_cksum`]) the inline payload at [`IMMEDIATE_PAYLOAD_OFFSET`].
    /// `ibm_cksum` is written as 0. Returns `ibm_nob`. Fails, writing
    /// nothing, when `out` is short or the message is invalid.
    pub fn emit(&self, e: Endian, out: &mut [u8]) -> Result<usize, Error> {
        let nob = self.buffer_len();
        if nob > MSG_SIZE {
            return Err(Error::Invalid(format!(
                "{nob} bytes exceed the {MSG_SIZE}-byte message size"
            )));
        }
        if out.len() < nob {
            return Err(Error::NoRoom {
                need: nob,
                have: out.len(),
            });
        }
        let mut lhdr = [0u8; HDR_NID4_SIZE];
        match &self.body {
            Body::Immediate { hdr, .. } | Body::PutReq { hdr, .. } | Body::GetReq { hdr, .. } => {
                hdr.encode_nid4(&mut lhdr)
                    .map_err(|err| Error::Invalid(err.to_string()))?;
            }
            _ => {}
        }
        match &self.body {
            Body::PutAck { rd, .. } | Body::GetReq { rd, .. } => rd.check()?,
            _ => {}
        }
        e.put_u32(out, field::MAGIC, MAGIC);
        e.put_u16(out, field::VERSION, self.version);
        out[field::TYPE] = self.body.msg_type();
        out[field::CREDITS] = self.credits;
        e.put_u32(out, field::NOB, nob as u32);
        e.put_u32(out, field::CKSUM, 0);
        e.put_u64(out, field::SRCNID, self.src_nid);
        e.put_u64(out, field::SRCSTAMP, self.src_stamp);
        e.put_u64(out, field::DSTNID, self.dst_nid);
        e.put_u64(out, field::DSTSTAMP, self.dst_stamp);
        let body = field::BODY;
        let completion = |out: &mut [u8], c: &CompletionBody| {
            out[body..body + 8].copy_from_slice(&c.cookie.to_ne_bytes());
            e.put_u32(out, body + 8, c.status as u32);
        };
        match &self.body {
            Body::ConnReq(cp) | Body::ConnAck(cp) => cp.write(e, out, body),
            Body::Noop => {}
            Body::Immediate { .. } => out[body..body + HDR_NID4_SIZE].copy_from_slice(&lhdr),
            Body::PutReq { cookie, .. } => {
                out[body..body + HDR_NID4_SIZE].copy_from_slice(&lhdr);
                out[IMMEDIATE_PAYLOAD_OFFSET..IMMEDIATE_PAYLOAD_OFFSET + 8]
                    .copy_from_slice(&cookie.to_ne_bytes());
            }
            Body::PutNak(c) | Body::PutDone(c) | Body::GetDone(c) => completion(out, c),
            Body::PutAck {
                src_cookie,
                dst_cookie,
                rd,
            } => {
                out[body..body + 8].copy_from_slice(&src_cookie.to_ne_bytes());
                out[body + 8..body + 16].copy_from_slice(&dst_cookie.to_ne_bytes());
                rd.write(e, out, body + 16);
            }
            Body::GetReq { cookie, rd, .. } => {
                out[body..body + HDR_NID4_SIZE].copy_from_slice(&lhdr);
                out[IMMEDIATE_PAYLOAD_OFFSET..IMMEDIATE_PAYLOAD_OFFSET + 8]
                    .copy_from_slice(&cookie.to_ne_bytes());
                rd.write(e, out, IMMEDIATE_PAYLOAD_OFFSET + 8);
            }
        }
        Ok(nob)
    }
}

/// Stamps `ibm_cksum` into an emitted message of `nob` bytes (o2iblnd's
/// `cksum=1`): computed over the message with the field zero; 0 becomes 1.
pub fn seal_cksum(e: Endian, msg: &mut [u8]) {
    if msg.len() < HDR_SIZE {
        return;
    }
    e.put_u32(msg, field::CKSUM, 0);
    let sum = cksum(msg, None);
    e.put_u32(msg, field::CKSUM, sum);
}

/// Reject reasons (`IBLND_REJECT_*`), carried in `kib_rej.ibr_why`.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub struct RejectReason(pub u8);

impl RejectReason {
    /// The peer's connection wins a race; reconnect later.
    pub const CONN_RACE: RejectReason = RejectReason(1);
    /// Out of memory.
    pub const NO_RESOURCES: RejectReason = RejectReason(2);
    /// Fatal: give up (from V1: incompatible).
    pub const FATAL: RejectReason = RejectReason(3);
    /// Incompatible version: reconnect with the rejector's.
    pub const CONN_UNCOMPAT: RejectReason = RejectReason(4);
    /// Stale incarnation: reconnect.
    pub const CONN_STALE: RejectReason = RejectReason(5);
    /// Too many fragments: reconnect with the rejector's `max_frags`.
    pub const RDMA_FRAGS: RejectReason = RejectReason(6);
    /// Queue depth too large: reconnect with the rejector's.
    pub const MSG_QUEUE_SIZE: RejectReason = RejectReason(7);
    /// Invalid service id.
    pub const INVALID_SRV_ID: RejectReason = RejectReason(8);
    /// The NI is not up yet: retry later.
    pub const EARLY: RejectReason = RejectReason(9);

    /// Upstream's name.
    pub const fn name(self) -> &'static str {
        match self.0 {
            1 => "CONN_RACE",
            2 => "NO_RESOURCES",
            3 => "FATAL",
            4 => "CONN_UNCOMPAT",
            5 => "CONN_STALE",
            6 => "RDMA_FRAGS",
            7 => "MSG_QUEUE_SIZE",
            8 => "INVALID_SRV_ID",
            9 => "EARLY",
            _ => "unknown",
        }
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.0)
    }
}

/// Reject private data (`kib_rej`).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub struct RejRepr {
    /// `ibr_version`: the version the rejector will speak.
    pub version: u16,
    /// `ibr_why`.
    pub why: RejectReason,
    /// `ibr_incarnation` (absent in a short V1 reject).
    pub incarnation: Option<u64>,
    /// `ibr_cp` (absent in a short V1 reject).
    pub cp: Option<ConnParams>,
}

impl RejRepr {
    /// Parses reject private data in either byte order. At least 8 bytes
    /// (magic, version, why); incarnation and connparams when 24 are there.
    pub fn parse(b: &[u8]) -> Result<(RejRepr, Endian), Error> {
        if b.len() < 8 {
            return Err(Error::Truncated {
                what: "reject",
                need: 8,
                have: b.len(),
            });
        }
        let raw = [b[0], b[1], b[2], b[3]];
        let e = Endian::of_magic(raw, MAGIC).ok_or(Error::BadMagic(u32::from_le_bytes(raw)))?;
        let full = b.len() >= REJ_SIZE;
        Ok((
            RejRepr {
                version: e.u16(b, 4),
                why: RejectReason(b[6]),
                incarnation: full.then(|| e.u64(b, 8)),
                cp: full.then(|| ConnParams::read(e, b, 16)),
            },
            e,
        ))
    }

    /// Writes the 24-byte reject (absent fields as zero).
    pub fn emit(&self, e: Endian, out: &mut [u8]) -> Result<usize, Error> {
        if out.len() < REJ_SIZE {
            return Err(Error::NoRoom {
                need: REJ_SIZE,
                have: out.len(),
            });
        }
        out[..REJ_SIZE].fill(0);
        e.put_u32(out, 0, MAGIC);
        e.put_u16(out, 4, self.version);
        out[6] = self.why.0;
        e.put_u64(out, 8, self.incarnation.unwrap_or(0));
        if let Some(cp) = &self.cp {
            cp.write(e, out, 16);
        }
        Ok(REJ_SIZE)
    }
}

/// o2iblnd's hash of a classic NID for connection races: the net id XOR
/// the address word read as a native integer from its big-endian storage
/// (on a little-endian host 192.168.1.10 reads as `0x0A01A8C0`).
pub fn nid_hash(nid4: u64) -> u32 {
    let net = (nid4 >> 32) as u32;
    let addr = nid4 as u32;
    net ^ u32::from_ne_bytes(addr.to_be_bytes())
}

#[cfg(test)]
mod tests;
