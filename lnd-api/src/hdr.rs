//! The LNet message header (`lnet_hdr_nid4` / `lnet_hdr_nid16`) as it crosses
//! the plugin boundary.
//!
//! [`Hdr`] holds the common fields decoded and the 40-byte per-type body in its
//! wire form (little-endian numbers, opaque handles), so an LND can frame a
//! message (it needs [`Hdr::payload_length`]) without understanding the body,
//! and the host reads the body through typed accessors. [`Hdr::encode_nid4`],
//! [`Hdr::encode_nid16`] and the decoders produce and check the exact bytes of
//! `spec/wire.md` section 2.
//!
//! Two layers, as in smoltcp's `wire` module:
//! * [`HdrNid4`] / [`HdrNid16`]: zero-copy views over a byte buffer, built
//!   with `new_checked` (length checked once), with raw field accessors and
//!   setters. They validate nothing else.
//! * [`Hdr`] is the validated representation: [`Hdr::parse_nid4`] /
//!   [`Hdr::parse_nid16`] read a view and reject what a receiver must reject
//!   ([`Hdr::check`]); [`Hdr::emit_nid4`] / [`Hdr::emit_nid16`] write one.
//!   [`Hdr::decode_nid4`] and friends are the same over fixed-size arrays.
//!
//! Byte order: every number is little-endian; wire handles and `hdr_data` are
//! opaque to the receiver and written little-endian by this sender (a
//! handle only ever returns to its creator, which reads it back the same
//! way). Large NIDs are raw `struct lnet_nid` bytes.
//!
//! The typed bodies ([`PutBody`], [`GetBody`], [`AckBody`], [`ReplyBody`],
//! [`HelloBody`]) convert to and from the 40-byte `msg` union; constructors
//! such as [`Hdr::put`] build a whole header.

use core::fmt;

use abi_stable::StableAbi;

use crate::nid::Nid;

/// Size of the classic header (`lnet_hdr_nid4`).
pub const HDR_NID4_SIZE: usize = 72;
/// Size of the large-NID header (`lnet_hdr_nid16`).
pub const HDR_NID16_SIZE: usize = 96;
/// Size of the per-type body.
pub const BODY_SIZE: usize = 40;
/// `LNET_MTU`: the largest payload of one message.
pub const MAX_PAYLOAD: u32 = 1 << 20;

/// Message type (`enum lnet_msg_type`), an open set: unknown values are kept.
#[repr(transparent)]
#[derive(StableAbi, Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct MsgType(pub u32);

impl MsgType {
    /// Acknowledgement of a PUT.
    pub const ACK: MsgType = MsgType(0);
    /// Data sent to a target MD.
    pub const PUT: MsgType = MsgType(1);
    /// Request for data from a target MD.
    pub const GET: MsgType = MsgType(2);
    /// Data answering a GET.
    pub const REPLY: MsgType = MsgType(3);
    /// socklnd protocol V1 hello; never a valid LNet message.
    pub const HELLO: MsgType = MsgType(4);

    /// Upstream's name of the type (`"PUT"`), `"UNKNOWN"` otherwise.
    pub const fn name(self) -> &'static str {
        match self.0 {
            0 => "ACK",
            1 => "PUT",
            2 => "GET",
            3 => "REPLY",
            4 => "HELLO",
            _ => "UNKNOWN",
        }
    }
}

/// A wire handle (`lnet_handle_wire`): opaque to everyone but its creator.
#[repr(C)]
#[derive(StableAbi, Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct WireHandle {
    /// `wh_interface_cookie`: the creating LNet instance.
    pub interface_cookie: u64,
    /// `wh_object_cookie`: the MD inside that instance.
    pub object_cookie: u64,
}

impl WireHandle {
    /// "No handle": both cookies all-ones.
    pub const NONE: WireHandle = WireHandle {
        interface_cookie: u64::MAX,
        object_cookie: u64::MAX,
    };

    /// Whether this is [`WireHandle::NONE`].
    pub const fn is_none(&self) -> bool {
        self.interface_cookie == u64::MAX && self.object_cookie == u64::MAX
    }
}

/// An LNet header, common fields decoded, body in wire form.
#[repr(C)]
#[derive(StableAbi, Clone, Copy, PartialEq, Eq, Debug)]
pub struct Hdr {
    /// Final destination NID (not the next hop).
    pub dest_nid: Nid,
    /// Originator's NID; routers do not change it.
    pub src_nid: Nid,
    /// Destination process ID.
    pub dest_pid: u32,
    /// Source process ID.
    pub src_pid: u32,
    /// Message type.
    pub msg_type: MsgType,
    /// Bytes of payload that follow the header on the wire.
    pub payload_length: u32,
    /// The per-type body exactly as on the wire (`msg` union, 40 bytes).
    pub body: [u8; BODY_SIZE],
}

/// `LNET_PROTO_TCP_MAGIC`: first 4 bytes (LE) of a socklnd protocol V1 hello.
pub const LNET_PROTO_TCP_MAGIC: u32 = 0xEEBC_0DED;
/// `LNET_PROTO_TCP_VERSION_MAJOR`: socklnd V1 hello major version.
pub const LNET_PROTO_TCP_VERSION_MAJOR: u16 = 1;
/// `LNET_PROTO_TCP_VERSION_MINOR`: socklnd V1 hello minor version.
pub const LNET_PROTO_TCP_VERSION_MINOR: u16 = 0;

/// The first 8 bytes of a V1 hello (magic, major, minor, all LE) read as the
/// little-endian `dest_nid` of the header they overlay.
const HELLO_V1_DEST_NID4: u64 = LNET_PROTO_TCP_MAGIC as u64
    | (LNET_PROTO_TCP_VERSION_MAJOR as u64) << 32
    | (LNET_PROTO_TCP_VERSION_MINOR as u64) << 48;

/// Largest V1 hello IP list: 16 IPv4 addresses.
const HELLO_V1_MAX_IPS_BYTES: u32 = 16 * 4;

/// Byte ranges of the header fields (`spec/wire.md` 2.3, 2.4).
mod field {
    pub(crate) type Field = core::ops::Range<usize>;

    // lnet_hdr_nid4
    pub(crate) const NID4_DEST_NID: Field = 0..8;
    pub(crate) const NID4_SRC_NID: Field = 8..16;
    pub(crate) const NID4_DEST_PID: Field = 16..20;
    pub(crate) const NID4_SRC_PID: Field = 20..24;
    pub(crate) const NID4_TYPE: Field = 24..28;
    pub(crate) const NID4_PAYLOAD_LENGTH: Field = 28..32;
    pub(crate) const NID4_BODY: Field = 32..72;

    // lnet_hdr_nid16
    pub(crate) const NID16_DEST_NID: Field = 0..20;
    pub(crate) const NID16_SRC_NID: Field = 20..40;
    pub(crate) const NID16_DEST_PID: Field = 40..44;
    pub(crate) const NID16_SRC_PID: Field = 44..48;
    pub(crate) const NID16_TYPE: Field = 48..52;
    pub(crate) const NID16_PAYLOAD_LENGTH: Field = 52..56;
    pub(crate) const NID16_BODY: Field = 56..96;

    // Body offsets, relative to the start of the 40-byte `msg` union.
    pub(crate) const WMD: Field = 0..16;
    pub(crate) const MATCH_BITS: Field = 16..24;
    pub(crate) const ACK_MLENGTH: Field = 24..28;
    pub(crate) const PUT_HDR_DATA: Field = 24..32;
    pub(crate) const PUT_PTL_INDEX: Field = 32..36;
    pub(crate) const PUT_OFFSET: Field = 36..40;
    pub(crate) const GET_PTL_INDEX: Field = 24..28;
    pub(crate) const GET_SRC_OFFSET: Field = 28..32;
    pub(crate) const GET_SINK_LENGTH: Field = 32..36;
    pub(crate) const HELLO_INCARNATION: Field = 0..8;
    pub(crate) const HELLO_TYPE: Field = 8..12;
}

fn rd_u32(b: &[u8], f: field::Field) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[f]);
    u32::from_le_bytes(a)
}

fn rd_u64(b: &[u8], f: field::Field) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[f]);
    u64::from_le_bytes(a)
}

fn rd_nid(b: &[u8], f: field::Field) -> [u8; 20] {
    let mut a = [0u8; 20];
    a.copy_from_slice(&b[f]);
    a
}

fn rd_handle(b: &[u8], f: field::Field) -> WireHandle {
    let s = &b[f.clone()];
    WireHandle {
        interface_cookie: rd_u64(s, 0..8),
        object_cookie: rd_u64(s, 8..16),
    }
}

fn wr_handle(b: &mut [u8], f: field::Field, h: WireHandle) {
    let s = &mut b[f];
    s[0..8].copy_from_slice(&h.interface_cookie.to_le_bytes());
    s[8..16].copy_from_slice(&h.object_cookie.to_le_bytes());
}

/// Why a header could not be decoded or encoded.
///
/// Decoding errors mean the peer sent a malformed header: the LND should drop
/// the connection (kernel socklnd closes it when `lnet_parse()` fails).
#[non_exhaustive]
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum HdrError {
    /// The buffer is shorter than the header.
    Truncated {
        /// Bytes available.
        len: usize,
        /// Bytes needed (72 or 96).
        need: usize,
    },
    /// `payload_length` exceeds [`MAX_PAYLOAD`].
    PayloadTooLong {
        /// The message type.
        msg_type: MsgType,
        /// The announced payload length.
        length: u32,
    },
    /// An ACK or GET announces a payload.
    UnexpectedPayload {
        /// The message type.
        msg_type: MsgType,
        /// The announced payload length.
        length: u32,
    },
    /// A socklnd V1 HELLO where an LNet message was expected.
    HelloAsMessage,
    /// The type is none of ACK, PUT, GET, REPLY (nor HELLO).
    UnknownType {
        /// The type value received.
        value: u32,
    },
    /// A large NID whose size byte is neither 0, 12, nor the ANY marker.
    NidSize {
        /// `"dest_nid"` or `"src_nid"`.
        field: &'static str,
        /// The size byte received.
        size: u8,
    },
    /// A classic NID that is neither `LNET_NID_ANY` nor a valid
    /// `type << 48 | net << 32 | addr` value (top byte set, or type 0xff).
    BadNid4 {
        /// `"dest_nid"` or `"src_nid"`.
        field: &'static str,
        /// The 64-bit value received.
        value: u64,
    },
    /// Encoding a classic header with a NID that has no 64-bit form.
    NoClassicForm {
        /// `"dest_nid"` or `"src_nid"`.
        field: &'static str,
        /// The offending NID.
        nid: Nid,
    },
    /// A message decoded as a V1 hello is not of type HELLO.
    NotHello {
        /// The type received.
        msg_type: MsgType,
    },
    /// A V1 hello whose magic or version is not `0xeebc0ded` 1.0.
    HelloMagic {
        /// Bytes 0..8 read as a little-endian u64 (magic, major, minor).
        value: u64,
    },
    /// A V1 hello whose IP list length is not a multiple of 4 up to 64.
    HelloIpList {
        /// The announced payload length.
        length: u32,
    },
}

impl fmt::Display for HdrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            HdrError::Truncated { len, need } => {
                write!(f, "lnet header truncated: {len} bytes, need {need}")
            }
            HdrError::PayloadTooLong { msg_type, length } => write!(
                f,
                "lnet header: payload_length {length} of {} message exceeds the maximum {MAX_PAYLOAD}",
                msg_type.name()
            ),
            HdrError::UnexpectedPayload { msg_type, length } => write!(
                f,
                "lnet header: {} message has payload_length {length}, must be 0",
                msg_type.name()
            ),
            HdrError::HelloAsMessage => write!(
                f,
                "lnet header: type 4 (HELLO) is only valid in a socklnd V1 handshake, not as a message"
            ),
            HdrError::UnknownType { value } => {
                write!(f, "lnet header: unknown message type {value}")
            }
            HdrError::NidSize { field, size } => write!(
                f,
                "lnet header: {field} has invalid nid_size {size} (expected 0, 12 or 255)"
            ),
            HdrError::BadNid4 { field, value } => {
                write!(f, "lnet header: {field} {value:#018x} is not a valid classic nid")
            }
            HdrError::NoClassicForm { field, nid } => write!(
                f,
                "cannot encode {field} in a classic (nid4) header: its {}-byte address has no 64-bit form; use the large (nid16) header",
                nid.addr_len()
            ),
            HdrError::NotHello { msg_type } => write!(
                f,
                "socklnd V1 hello: type {} ({}), expected 4 (HELLO)",
                msg_type.0,
                msg_type.name()
            ),
            HdrError::HelloMagic { value } => write!(
                f,
                "socklnd V1 hello: magic/version bytes {value:#018x}, expected magic {LNET_PROTO_TCP_MAGIC:#x} version 1.0"
            ),
            HdrError::HelloIpList { length } => write!(
                f,
                "socklnd V1 hello: payload_length {length} is not a list of at most 16 IPv4 addresses"
            ),
        }
    }
}

impl std::error::Error for HdrError {}

/// A read/write view of a classic header (`lnet_hdr_nid4`, 72 bytes) over a
/// buffer, numbers little-endian.
///
/// Build it with [`HdrNid4::new_checked`]: accessors on a view made with
/// [`HdrNid4::new_unchecked`] over a short buffer panic.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct HdrNid4<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> HdrNid4<T> {
    /// Wraps a buffer without checking its length.
    pub const fn new_unchecked(buffer: T) -> Self {
        HdrNid4 { buffer }
    }

    /// Wraps a buffer of at least [`HDR_NID4_SIZE`] bytes.
    pub fn new_checked(buffer: T) -> Result<Self, HdrError> {
        let v = Self::new_unchecked(buffer);
        v.check_len()?;
        Ok(v)
    }

    /// Checks that the buffer holds a whole header.
    pub fn check_len(&self) -> Result<(), HdrError> {
        let len = self.buffer.as_ref().len();
        if len < HDR_NID4_SIZE {
            return Err(HdrError::Truncated {
                len,
                need: HDR_NID4_SIZE,
            });
        }
        Ok(())
    }

    /// The wrapped buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// `dest_nid` as its raw 64-bit value.
    pub fn dest_nid(&self) -> u64 {
        rd_u64(self.buffer.as_ref(), field::NID4_DEST_NID)
    }

    /// `src_nid` as its raw 64-bit value.
    pub fn src_nid(&self) -> u64 {
        rd_u64(self.buffer.as_ref(), field::NID4_SRC_NID)
    }

    /// `dest_pid`.
    pub fn dest_pid(&self) -> u32 {
        rd_u32(self.buffer.as_ref(), field::NID4_DEST_PID)
    }

    /// `src_pid`.
    pub fn src_pid(&self) -> u32 {
        rd_u32(self.buffer.as_ref(), field::NID4_SRC_PID)
    }

    /// `type`.
    pub fn msg_type(&self) -> MsgType {
        MsgType(rd_u32(self.buffer.as_ref(), field::NID4_TYPE))
    }

    /// `payload_length` (not validated).
    pub fn payload_length(&self) -> u32 {
        rd_u32(self.buffer.as_ref(), field::NID4_PAYLOAD_LENGTH)
    }

    /// The 40-byte per-type body.
    pub fn body(&self) -> &[u8] {
        &self.buffer.as_ref()[field::NID4_BODY]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> HdrNid4<T> {
    /// Sets `dest_nid` (raw 64-bit value).
    pub fn set_dest_nid(&mut self, v: u64) {
        self.buffer.as_mut()[field::NID4_DEST_NID].copy_from_slice(&v.to_le_bytes());
    }

    /// Sets `src_nid` (raw 64-bit value).
    pub fn set_src_nid(&mut self, v: u64) {
        self.buffer.as_mut()[field::NID4_SRC_NID].copy_from_slice(&v.to_le_bytes());
    }

    /// Sets `dest_pid`.
    pub fn set_dest_pid(&mut self, v: u32) {
        self.buffer.as_mut()[field::NID4_DEST_PID].copy_from_slice(&v.to_le_bytes());
    }

    /// Sets `src_pid`.
    pub fn set_src_pid(&mut self, v: u32) {
        self.buffer.as_mut()[field::NID4_SRC_PID].copy_from_slice(&v.to_le_bytes());
    }

    /// Sets `type`.
    pub fn set_msg_type(&mut self, v: MsgType) {
        self.buffer.as_mut()[field::NID4_TYPE].copy_from_slice(&v.0.to_le_bytes());
    }

    /// Sets `payload_length`.
    pub fn set_payload_length(&mut self, v: u32) {
        self.buffer.as_mut()[field::NID4_PAYLOAD_LENGTH].copy_from_slice(&v.to_le_bytes());
    }

    /// The 40-byte per-type body, writable.
    pub fn body_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::NID4_BODY]
    }
}

/// A read/write view of a large-NID header (`lnet_hdr_nid16`, 96 bytes) over
/// a buffer: NIDs as raw `struct lnet_nid` bytes, numbers little-endian.
///
/// Build it with [`HdrNid16::new_checked`]: accessors on a view made with
/// [`HdrNid16::new_unchecked`] over a short buffer panic.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct HdrNid16<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> HdrNid16<T> {
    /// Wraps a buffer without checking its length.
    pub const fn new_unchecked(buffer: T) -> Self {
        HdrNid16 { buffer }
    }

    /// Wraps a buffer of at least [`HDR_NID16_SIZE`] bytes.
    pub fn new_checked(buffer: T) -> Result<Self, HdrError> {
        let v = Self::new_unchecked(buffer);
        v.check_len()?;
        Ok(v)
    }

    /// Checks that the buffer holds a whole header.
    pub fn check_len(&self) -> Result<(), HdrError> {
        let len = self.buffer.as_ref().len();
        if len < HDR_NID16_SIZE {
            return Err(HdrError::Truncated {
                len,
                need: HDR_NID16_SIZE,
            });
        }
        Ok(())
    }

    /// The wrapped buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// `dest_nid`: the raw 20 bytes of `struct lnet_nid`.
    pub fn dest_nid(&self) -> [u8; 20] {
        rd_nid(self.buffer.as_ref(), field::NID16_DEST_NID)
    }

    /// `src_nid`: the raw 20 bytes of `struct lnet_nid`.
    pub fn src_nid(&self) -> [u8; 20] {
        rd_nid(self.buffer.as_ref(), field::NID16_SRC_NID)
    }

    /// `dest_pid`.
    pub fn dest_pid(&self) -> u32 {
        rd_u32(self.buffer.as_ref(), field::NID16_DEST_PID)
    }

    /// `src_pid`.
    pub fn src_pid(&self) -> u32 {
        rd_u32(self.buffer.as_ref(), field::NID16_SRC_PID)
    }

    /// `type`.
    pub fn msg_type(&self) -> MsgType {
        MsgType(rd_u32(self.buffer.as_ref(), field::NID16_TYPE))
    }

    /// `payload_length` (not validated).
    pub fn payload_length(&self) -> u32 {
        rd_u32(self.buffer.as_ref(), field::NID16_PAYLOAD_LENGTH)
    }

    /// The 40-byte per-type body.
    pub fn body(&self) -> &[u8] {
        &self.buffer.as_ref()[field::NID16_BODY]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> HdrNid16<T> {
    /// Sets `dest_nid` (raw `struct lnet_nid` bytes).
    pub fn set_dest_nid(&mut self, v: &[u8; 20]) {
        self.buffer.as_mut()[field::NID16_DEST_NID].copy_from_slice(v);
    }

    /// Sets `src_nid` (raw `struct lnet_nid` bytes).
    pub fn set_src_nid(&mut self, v: &[u8; 20]) {
        self.buffer.as_mut()[field::NID16_SRC_NID].copy_from_slice(v);
    }

    /// Sets `dest_pid`.
    pub fn set_dest_pid(&mut self, v: u32) {
        self.buffer.as_mut()[field::NID16_DEST_PID].copy_from_slice(&v.to_le_bytes());
    }

    /// Sets `src_pid`.
    pub fn set_src_pid(&mut self, v: u32) {
        self.buffer.as_mut()[field::NID16_SRC_PID].copy_from_slice(&v.to_le_bytes());
    }

    /// Sets `type`.
    pub fn set_msg_type(&mut self, v: MsgType) {
        self.buffer.as_mut()[field::NID16_TYPE].copy_from_slice(&v.0.to_le_bytes());
    }

    /// Sets `payload_length`.
    pub fn set_payload_length(&mut self, v: u32) {
        self.buffer.as_mut()[field::NID16_PAYLOAD_LENGTH].copy_from_slice(&v.to_le_bytes());
    }

    /// The 40-byte per-type body, writable.
    pub fn body_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::NID16_BODY]
    }
}

/// Body of an ACK (`struct lnet_ack`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct AckBody {
    /// `dst_wmd`: the `ack_wmd` of the PUT being acknowledged.
    pub dst_wmd: WireHandle,
    /// `match_bits` copied from the PUT.
    pub match_bits: u64,
    /// `mlength`: bytes actually deposited at the target.
    pub mlength: u32,
}

/// Body of a PUT (`struct lnet_put`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct PutBody {
    /// `ack_wmd`: the sender's MD if an ACK is wanted, else [`WireHandle::NONE`].
    pub ack_wmd: WireHandle,
    /// `match_bits`.
    pub match_bits: u64,
    /// `hdr_data`: 64 bits of user data for the PUT event (opaque; sent LE).
    pub hdr_data: u64,
    /// `ptl_index`: portal index at the target.
    pub ptl_index: u32,
    /// `offset`: remote offset (MDs with MANAGE_REMOTE only).
    pub offset: u32,
}

/// Body of a GET (`struct lnet_get`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct GetBody {
    /// `return_wmd`: the initiator's sink MD, the REPLY's target.
    pub return_wmd: WireHandle,
    /// `match_bits`.
    pub match_bits: u64,
    /// `ptl_index`: portal index at the target.
    pub ptl_index: u32,
    /// `src_offset`: offset in the target MD (MANAGE_REMOTE only).
    pub src_offset: u32,
    /// `sink_length`: bytes the initiator can accept.
    pub sink_length: u32,
}

/// Body of a REPLY (`struct lnet_reply`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct ReplyBody {
    /// `dst_wmd`: the GET's `return_wmd`.
    pub dst_wmd: WireHandle,
}

/// Body of a socklnd protocol V1 HELLO (`struct lnet_hello`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct HelloBody {
    /// The sender NI's incarnation.
    pub incarnation: u64,
    /// socklnd connection type (`SOCKLND_CONN_*`; NONE is `0xffff_ffff`).
    pub conn_type: u32,
}

impl AckBody {
    /// Reads an ACK body from its wire bytes.
    pub fn from_body(b: &[u8; BODY_SIZE]) -> Self {
        AckBody {
            dst_wmd: rd_handle(b, field::WMD),
            match_bits: rd_u64(b, field::MATCH_BITS),
            mlength: rd_u32(b, field::ACK_MLENGTH),
        }
    }

    /// The wire bytes of this body (unused bytes zero).
    pub fn to_body(&self) -> [u8; BODY_SIZE] {
        let mut b = [0u8; BODY_SIZE];
        wr_handle(&mut b, field::WMD, self.dst_wmd);
        b[field::MATCH_BITS].copy_from_slice(&self.match_bits.to_le_bytes());
        b[field::ACK_MLENGTH].copy_from_slice(&self.mlength.to_le_bytes());
        b
    }
}

impl PutBody {
    /// Reads a PUT body from its wire bytes.
    pub fn from_body(b: &[u8; BODY_SIZE]) -> Self {
        PutBody {
            ack_wmd: rd_handle(b, field::WMD),
            match_bits: rd_u64(b, field::MATCH_BITS),
            hdr_data: rd_u64(b, field::PUT_HDR_DATA),
            ptl_index: rd_u32(b, field::PUT_PTL_INDEX),
            offset: rd_u32(b, field::PUT_OFFSET),
        }
    }

    /// The wire bytes of this body.
    pub fn to_body(&self) -> [u8; BODY_SIZE] {
        let mut b = [0u8; BODY_SIZE];
        wr_handle(&mut b, field::WMD, self.ack_wmd);
        b[field::MATCH_BITS].copy_from_slice(&self.match_bits.to_le_bytes());
        b[field::PUT_HDR_DATA].copy_from_slice(&self.hdr_data.to_le_bytes());
        b[field::PUT_PTL_INDEX].copy_from_slice(&self.ptl_index.to_le_bytes());
        b[field::PUT_OFFSET].copy_from_slice(&self.offset.to_le_bytes());
        b
    }
}

impl GetBody {
    /// Reads a GET body from its wire bytes.
    pub fn from_body(b: &[u8; BODY_SIZE]) -> Self {
        GetBody {
            return_wmd: rd_handle(b, field::WMD),
            match_bits: rd_u64(b, field::MATCH_BITS),
            ptl_index: rd_u32(b, field::GET_PTL_INDEX),
            src_offset: rd_u32(b, field::GET_SRC_OFFSET),
            sink_length: rd_u32(b, field::GET_SINK_LENGTH),
        }
    }

    /// The wire bytes of this body (unused bytes zero).
    pub fn to_body(&self) -> [u8; BODY_SIZE] {
        let mut b = [0u8; BODY_SIZE];
        wr_handle(&mut b, field::WMD, self.return_wmd);
        b[field::MATCH_BITS].copy_from_slice(&self.match_bits.to_le_bytes());
        b[field::GET_PTL_INDEX].copy_from_slice(&self.ptl_index.to_le_bytes());
        b[field::GET_SRC_OFFSET].copy_from_slice(&self.src_offset.to_le_bytes());
        b[field::GET_SINK_LENGTH].copy_from_slice(&self.sink_length.to_le_bytes());
        b
    }
}

impl ReplyBody {
    /// Reads a REPLY body from its wire bytes.
    pub fn from_body(b: &[u8; BODY_SIZE]) -> Self {
        ReplyBody {
            dst_wmd: rd_handle(b, field::WMD),
        }
    }

    /// The wire bytes of this body (unused bytes zero).
    pub fn to_body(&self) -> [u8; BODY_SIZE] {
        let mut b = [0u8; BODY_SIZE];
        wr_handle(&mut b, field::WMD, self.dst_wmd);
        b
    }
}

impl HelloBody {
    /// Reads a HELLO body from its wire bytes.
    pub fn from_body(b: &[u8; BODY_SIZE]) -> Self {
        HelloBody {
            incarnation: rd_u64(b, field::HELLO_INCARNATION),
            conn_type: rd_u32(b, field::HELLO_TYPE),
        }
    }

    /// The wire bytes of this body (unused bytes zero).
    pub fn to_body(&self) -> [u8; BODY_SIZE] {
        let mut b = [0u8; BODY_SIZE];
        b[field::HELLO_INCARNATION].copy_from_slice(&self.incarnation.to_le_bytes());
        b[field::HELLO_TYPE].copy_from_slice(&self.conn_type.to_le_bytes());
        b
    }
}

/// A classic NID from its wire value, refusing values that have no faithful
/// [`Nid`] form (so that decoding then encoding gives the same bytes).
fn nid_from_nid4(field: &'static str, value: u64) -> Result<Nid, HdrError> {
    if value == u64::MAX {
        return Ok(Nid::ANY);
    }
    if value >> 56 != 0 || (value >> 48) as u8 == crate::nid::lnd_type::ANY {
        return Err(HdrError::BadNid4 { field, value });
    }
    Ok(Nid::from_nid4(value))
}

fn nid_to_nid4(field: &'static str, nid: &Nid) -> Result<u64, HdrError> {
    nid.to_nid4()
        .ok_or(HdrError::NoClassicForm { field, nid: *nid })
}

/// A large NID from its raw bytes. The ANY marker is normalised to
/// [`Nid::ANY`] and the unused address words of a 4-byte address are
/// cleared (they must be zero on the wire; a peer that leaves garbage there
/// still means the NID its first 8 bytes name).
fn nid_from_raw(field: &'static str, raw: &[u8; 20]) -> Result<Nid, HdrError> {
    let mut nid = Nid::from_bytes(raw).ok_or(HdrError::NidSize {
        field,
        size: raw[0],
    })?;
    if !nid.is_any() {
        let used = nid.addr_len();
        nid.addr[used..].fill(0);
    }
    Ok(nid)
}

fn body_array(b: &[u8]) -> [u8; BODY_SIZE] {
    let mut a = [0u8; BODY_SIZE];
    a.copy_from_slice(b);
    a
}

impl Hdr {
    /// A header with the given common fields and body bytes.
    const fn with(
        msg_type: MsgType,
        dest_nid: Nid,
        src_nid: Nid,
        dest_pid: u32,
        src_pid: u32,
        payload_length: u32,
        body: [u8; BODY_SIZE],
    ) -> Hdr {
        Hdr {
            dest_nid,
            src_nid,
            dest_pid,
            src_pid,
            msg_type,
            payload_length,
            body,
        }
    }

    /// A PUT header carrying `payload_length` bytes.
    pub fn put(
        dest_nid: Nid,
        src_nid: Nid,
        dest_pid: u32,
        src_pid: u32,
        payload_length: u32,
        body: PutBody,
    ) -> Hdr {
        Hdr::with(
            MsgType::PUT,
            dest_nid,
            src_nid,
            dest_pid,
            src_pid,
            payload_length,
            body.to_body(),
        )
    }

    /// A GET header (no payload).
    pub fn get(dest_nid: Nid, src_nid: Nid, dest_pid: u32, src_pid: u32, body: GetBody) -> Hdr {
        Hdr::with(
            MsgType::GET,
            dest_nid,
            src_nid,
            dest_pid,
            src_pid,
            0,
            body.to_body(),
        )
    }

    /// An ACK header (no payload).
    pub fn ack(dest_nid: Nid, src_nid: Nid, dest_pid: u32, src_pid: u32, body: AckBody) -> Hdr {
        Hdr::with(
            MsgType::ACK,
            dest_nid,
            src_nid,
            dest_pid,
            src_pid,
            0,
            body.to_body(),
        )
    }

    /// A REPLY header carrying `payload_length` bytes.
    pub fn reply(
        dest_nid: Nid,
        src_nid: Nid,
        dest_pid: u32,
        src_pid: u32,
        payload_length: u32,
        body: ReplyBody,
    ) -> Hdr {
        Hdr::with(
            MsgType::REPLY,
            dest_nid,
            src_nid,
            dest_pid,
            src_pid,
            payload_length,
            body.to_body(),
        )
    }

    /// A socklnd protocol V1 hello (`spec/wire.md` 5.3): `dest_nid` holds the
    /// magic and version, `dest_pid` is 0, `ips_len` is 4 × the number of
    /// IPv4 addresses that follow the header. Encode it with
    /// [`Hdr::encode_nid4`]; read one with [`Hdr::decode_hello_v1`].
    pub fn hello_v1(src_nid: Nid, src_pid: u32, ips_len: u32, body: HelloBody) -> Hdr {
        Hdr::with(
            MsgType::HELLO,
            Nid::from_nid4(HELLO_V1_DEST_NID4),
            src_nid,
            0,
            src_pid,
            ips_len,
            body.to_body(),
        )
    }

    /// The body read as an ACK (meaningful when `msg_type` is ACK).
    pub fn body_ack(&self) -> AckBody {
        AckBody::from_body(&self.body)
    }

    /// The body read as a PUT (meaningful when `msg_type` is PUT).
    pub fn body_put(&self) -> PutBody {
        PutBody::from_body(&self.body)
    }

    /// The body read as a GET (meaningful when `msg_type` is GET).
    pub fn body_get(&self) -> GetBody {
        GetBody::from_body(&self.body)
    }

    /// The body read as a REPLY (meaningful when `msg_type` is REPLY).
    pub fn body_reply(&self) -> ReplyBody {
        ReplyBody::from_body(&self.body)
    }

    /// The body read as a socklnd V1 HELLO (meaningful when `msg_type` is HELLO).
    pub fn body_hello(&self) -> HelloBody {
        HelloBody::from_body(&self.body)
    }

    /// Checks the type and payload length as a receiver must (the checks of
    /// `lnet_parse()` in `lnet/lnet/lib-move.c` that need no state): type is
    /// ACK, PUT, GET or REPLY; `payload_length` at most [`MAX_PAYLOAD`], and 0
    /// for ACK and GET.
    pub fn check(&self) -> Result<(), HdrError> {
        let (t, length) = (self.msg_type, self.payload_length);
        match t {
            MsgType::ACK | MsgType::GET if length != 0 => Err(HdrError::UnexpectedPayload {
                msg_type: t,
                length,
            }),
            MsgType::PUT | MsgType::REPLY if length > MAX_PAYLOAD => {
                Err(HdrError::PayloadTooLong {
                    msg_type: t,
                    length,
                })
            }
            MsgType::ACK | MsgType::GET | MsgType::PUT | MsgType::REPLY => Ok(()),
            MsgType::HELLO => Err(HdrError::HelloAsMessage),
            MsgType(value) => Err(HdrError::UnknownType { value }),
        }
    }

    /// Reads and validates a classic header from a checked view.
    pub fn parse_nid4<T: AsRef<[u8]>>(v: &HdrNid4<T>) -> Result<Hdr, HdrError> {
        v.check_len()?;
        let hdr = Hdr {
            dest_nid: nid_from_nid4("dest_nid", v.dest_nid())?,
            src_nid: nid_from_nid4("src_nid", v.src_nid())?,
            dest_pid: v.dest_pid(),
            src_pid: v.src_pid(),
            msg_type: v.msg_type(),
            payload_length: v.payload_length(),
            body: body_array(v.body()),
        };
        hdr.check()?;
        Ok(hdr)
    }

    /// Writes this header into a classic view. Fails, writing nothing, when
    /// a NID has no 64-bit form or the buffer is short.
    pub fn emit_nid4<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        v: &mut HdrNid4<T>,
    ) -> Result<(), HdrError> {
        v.check_len()?;
        let dest = nid_to_nid4("dest_nid", &self.dest_nid)?;
        let src = nid_to_nid4("src_nid", &self.src_nid)?;
        v.set_dest_nid(dest);
        v.set_src_nid(src);
        v.set_dest_pid(self.dest_pid);
        v.set_src_pid(self.src_pid);
        v.set_msg_type(self.msg_type);
        v.set_payload_length(self.payload_length);
        v.body_mut().copy_from_slice(&self.body);
        Ok(())
    }

    /// Reads and validates a large-NID header from a checked view.
    pub fn parse_nid16<T: AsRef<[u8]>>(v: &HdrNid16<T>) -> Result<Hdr, HdrError> {
        v.check_len()?;
        let hdr = Hdr {
            dest_nid: nid_from_raw("dest_nid", &v.dest_nid())?,
            src_nid: nid_from_raw("src_nid", &v.src_nid())?,
            dest_pid: v.dest_pid(),
            src_pid: v.src_pid(),
            msg_type: v.msg_type(),
            payload_length: v.payload_length(),
            body: body_array(v.body()),
        };
        hdr.check()?;
        Ok(hdr)
    }

    /// Writes this header into a large-NID view (fails only on a short buffer).
    pub fn emit_nid16<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        v: &mut HdrNid16<T>,
    ) -> Result<(), HdrError> {
        v.check_len()?;
        v.set_dest_nid(&self.dest_nid.to_bytes());
        v.set_src_nid(&self.src_nid.to_bytes());
        v.set_dest_pid(self.dest_pid);
        v.set_src_pid(self.src_pid);
        v.set_msg_type(self.msg_type);
        v.set_payload_length(self.payload_length);
        v.body_mut().copy_from_slice(&self.body);
        Ok(())
    }

    /// Encodes the classic 72-byte header (`lnet_hdr_nid4`). Fails, writing
    /// nothing, when a NID has a 16-byte address (use [`Hdr::encode_nid16`]).
    pub fn encode_nid4(&self, out: &mut [u8; HDR_NID4_SIZE]) -> Result<(), HdrError> {
        self.emit_nid4(&mut HdrNid4::new_unchecked(&mut out[..]))
    }

    /// Decodes and validates a classic 72-byte header.
    pub fn decode_nid4(buf: &[u8; HDR_NID4_SIZE]) -> Result<Hdr, HdrError> {
        Hdr::parse_nid4(&HdrNid4::new_unchecked(&buf[..]))
    }

    /// Encodes the large 96-byte header (`lnet_hdr_nid16`).
    pub fn encode_nid16(&self, out: &mut [u8; HDR_NID16_SIZE]) {
        let mut v = HdrNid16::new_unchecked(&mut out[..]);
        // The array has exactly the header size: emit cannot fail.
        let r = self.emit_nid16(&mut v);
        debug_assert!(r.is_ok());
    }

    /// Decodes and validates a large 96-byte header.
    pub fn decode_nid16(buf: &[u8; HDR_NID16_SIZE]) -> Result<Hdr, HdrError> {
        Hdr::parse_nid16(&HdrNid16::new_unchecked(&buf[..]))
    }

    /// Decodes a socklnd protocol V1 hello (`spec/wire.md` 5.3): type HELLO,
    /// magic `0xeebc0ded` version 1.0 in the first 8 bytes, IP list of at
    /// most 16 addresses announced in `payload_length`. The returned header's
    /// `dest_nid` holds the magic; read the body with [`Hdr::body_hello`].
    pub fn decode_hello_v1(buf: &[u8; HDR_NID4_SIZE]) -> Result<Hdr, HdrError> {
        let v = HdrNid4::new_unchecked(&buf[..]);
        let magic = v.dest_nid();
        if magic != HELLO_V1_DEST_NID4 {
            return Err(HdrError::HelloMagic { value: magic });
        }
        if v.msg_type() != MsgType::HELLO {
            return Err(HdrError::NotHello {
                msg_type: v.msg_type(),
            });
        }
        let length = v.payload_length();
        if length % 4 != 0 || length > HELLO_V1_MAX_IPS_BYTES {
            return Err(HdrError::HelloIpList { length });
        }
        Ok(Hdr {
            dest_nid: Nid::from_nid4(magic),
            src_nid: nid_from_nid4("src_nid", v.src_nid())?,
            dest_pid: v.dest_pid(),
            src_pid: v.src_pid(),
            msg_type: MsgType::HELLO,
            payload_length: length,
            body: body_array(v.body()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nid::NetId;
    use proptest::prelude::*;

    const TCP: NetId = NetId::new(2, 0);
    const I: u64 = 0x1122_3344_5566_7788;
    const O: u64 = 0x99aa_bbcc_ddee_ff00;

    fn ip(a: u8, b: u8, c: u8, d: u8) -> u32 {
        u32::from_be_bytes([a, b, c, d])
    }

    fn hex(s: &str) -> Vec<u8> {
        s.split_whitespace()
            .map(|b| u8::from_str_radix(b, 16).expect("test hex"))
            .collect()
    }

    fn worked_example() -> Hdr {
        Hdr::put(
            Nid::new4(TCP, ip(192, 168, 1, 20)),
            Nid::new4(TCP, ip(192, 168, 1, 10)),
            12345,
            12345,
            4096,
            PutBody {
                ack_wmd: WireHandle {
                    interface_cookie: I,
                    object_cookie: O,
                },
                match_bits: 0x1234,
                hdr_data: 0,
                ptl_index: 4,
                offset: 0,
            },
        )
    }

    /// spec/wire.md 2.5, byte for byte (cookies I and O written LE).
    #[test]
    fn put_worked_example_nid4() {
        let mut want = hex("14 01 a8 c0 00 00 02 00  0a 01 a8 c0 00 00 02 00
             39 30 00 00 39 30 00 00  01 00 00 00 00 10 00 00");
        want.extend_from_slice(&I.to_le_bytes());
        want.extend_from_slice(&O.to_le_bytes());
        want.extend(hex("34 12 00 00 00 00 00 00  00 00 00 00 00 00 00 00
             04 00 00 00 00 00 00 00"));
        assert_eq!(want.len(), HDR_NID4_SIZE);
        assert_eq!(
            &want[0x20..0x28],
            &[0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11]
        );

        let h = worked_example();
        let mut out = [0xAAu8; HDR_NID4_SIZE];
        h.encode_nid4(&mut out).expect("classic nids");
        assert_eq!(&out[..], &want[..]);

        let back = Hdr::decode_nid4(&out).expect("valid header");
        assert_eq!(back, h);
        let put = back.body_put();
        assert_eq!(put.match_bits, 0x1234);
        assert_eq!(put.ptl_index, 4);
        assert_eq!(
            put.ack_wmd,
            WireHandle {
                interface_cookie: I,
                object_cookie: O
            }
        );
        assert_eq!(back.payload_length, 4096);
        assert_eq!(back.dest_nid.to_nid4(), Some(0x0002_0000_C0A8_0114));
    }

    #[test]
    fn view_reads_fields() {
        let mut out = [0u8; HDR_NID4_SIZE];
        worked_example()
            .encode_nid4(&mut out)
            .expect("classic nids");
        let v = HdrNid4::new_checked(&out[..]).expect("72 bytes");
        assert_eq!(v.dest_nid(), 0x0002_0000_C0A8_0114);
        assert_eq!(v.src_nid(), 0x0002_0000_C0A8_010A);
        assert_eq!(v.dest_pid(), 12345);
        assert_eq!(v.src_pid(), 12345);
        assert_eq!(v.msg_type(), MsgType::PUT);
        assert_eq!(v.payload_length(), 4096);
        assert_eq!(v.body(), &worked_example().body[..]);
        assert_eq!(
            HdrNid4::new_checked(&out[..71]),
            Err(HdrError::Truncated { len: 71, need: 72 })
        );
        assert_eq!(
            HdrNid16::new_checked(&out[..]),
            Err(HdrError::Truncated { len: 72, need: 96 })
        );
    }

    /// spec/wire.md 2.4: large header offsets, with an IPv6 NID and the PUT
    /// body shifted by 24.
    #[test]
    fn put_nid16_offsets() {
        let v6 = {
            let mut a = [0u8; 16];
            a[0] = 0x20;
            a[1] = 0x01;
            a[2] = 0x0d;
            a[3] = 0xb8;
            a[15] = 1;
            Nid::new16(NetId::new(2, 1), a)
        };
        let mut h = worked_example();
        h.dest_nid = v6;
        h.body = PutBody {
            ack_wmd: WireHandle {
                interface_cookie: I,
                object_cookie: O,
            },
            match_bits: 0x0102_0304_0506_0708,
            hdr_data: 0xdead_beef_0000_0001,
            ptl_index: 17,
            offset: 0x1000,
        }
        .to_body();
        let mut out = [0u8; HDR_NID16_SIZE];
        h.encode_nid16(&mut out);

        let mut want_dest = hex("0c 02 00 01 20 01 0d b8");
        want_dest.extend_from_slice(&[0; 11]);
        want_dest.push(1);
        assert_eq!(&out[0..20], &want_dest[..]);
        let mut want_src = hex("00 02 00 00 c0 a8 01 0a");
        want_src.extend_from_slice(&[0; 12]);
        assert_eq!(&out[20..40], &want_src[..]);
        assert_eq!(&out[40..44], &12345u32.to_le_bytes());
        assert_eq!(&out[44..48], &12345u32.to_le_bytes());
        assert_eq!(&out[48..52], &[1, 0, 0, 0]);
        assert_eq!(&out[52..56], &[0, 0x10, 0, 0]);
        assert_eq!(&out[56..64], &I.to_le_bytes());
        assert_eq!(&out[64..72], &O.to_le_bytes());
        assert_eq!(&out[72..80], &hex("08 07 06 05 04 03 02 01")[..]);
        assert_eq!(&out[80..88], &hex("01 00 00 00 ef be ad de")[..]);
        assert_eq!(&out[88..92], &[17, 0, 0, 0]);
        assert_eq!(&out[92..96], &[0, 0x10, 0, 0]);

        let back = Hdr::decode_nid16(&out).expect("valid");
        assert_eq!(back, h);
        assert_eq!(back.body_put().hdr_data, 0xdead_beef_0000_0001);

        // The classic encoder refuses the IPv6 NID and writes nothing.
        let mut c = [0x55u8; HDR_NID4_SIZE];
        let err = h.encode_nid4(&mut c).expect_err("no classic form");
        assert_eq!(
            err,
            HdrError::NoClassicForm {
                field: "dest_nid",
                nid: v6
            }
        );
        assert_eq!(c, [0x55u8; HDR_NID4_SIZE]);
        assert!(err.to_string().contains("dest_nid"));
        assert!(err.to_string().contains("16-byte"));
    }

    #[test]
    fn get_ack_reply_layouts() {
        let a = Nid::new4(TCP, ip(10, 0, 0, 1));
        let b = Nid::new4(NetId::new(5, 1), ip(10, 0, 0, 2));
        let wmd = WireHandle {
            interface_cookie: I,
            object_cookie: O,
        };

        // GET: return_wmd @32, match_bits @48, ptl_index @56, src_offset @60,
        // sink_length @64, unused @68.
        let g = GetBody {
            return_wmd: wmd,
            match_bits: 0x8000_0000_0000_0000,
            ptl_index: 0,
            src_offset: 8,
            sink_length: 272,
        };
        let h = Hdr::get(a, b, 12345, 12345, g);
        let mut out = [0xFFu8; HDR_NID4_SIZE];
        h.encode_nid4(&mut out).expect("classic");
        assert_eq!(&out[0..8], &hex("01 00 00 0a 00 00 02 00")[..]);
        assert_eq!(&out[8..16], &hex("02 00 00 0a 01 00 05 00")[..]);
        assert_eq!(&out[24..32], &[2, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&out[32..40], &I.to_le_bytes());
        assert_eq!(&out[48..56], &hex("00 00 00 00 00 00 00 80")[..]);
        assert_eq!(&out[56..60], &[0, 0, 0, 0]);
        assert_eq!(&out[60..64], &[8, 0, 0, 0]);
        assert_eq!(&out[64..68], &hex("10 01 00 00")[..]);
        assert_eq!(&out[68..72], &[0, 0, 0, 0]);
        let back = Hdr::decode_nid4(&out).expect("valid");
        assert_eq!(back.body_get(), g);

        // ACK: dst_wmd @32, match_bits @48, mlength @56, zero @60..72.
        let k = AckBody {
            dst_wmd: wmd,
            match_bits: 0x1234,
            mlength: 4000,
        };
        let h = Hdr::ack(b, a, 12345, 12345, k);
        h.encode_nid4(&mut out).expect("classic");
        assert_eq!(&out[24..32], &[0; 8]);
        assert_eq!(&out[40..48], &O.to_le_bytes());
        assert_eq!(&out[48..56], &hex("34 12 00 00 00 00 00 00")[..]);
        assert_eq!(&out[56..60], &hex("a0 0f 00 00")[..]);
        assert_eq!(&out[60..72], &[0; 12]);
        assert_eq!(Hdr::decode_nid4(&out).expect("valid").body_ack(), k);

        // REPLY: dst_wmd @32, 24 unused bytes.
        let r = ReplyBody { dst_wmd: wmd };
        let h = Hdr::reply(b, a, 12345, 12345, 272, r);
        h.encode_nid4(&mut out).expect("classic");
        assert_eq!(&out[24..32], &hex("03 00 00 00 10 01 00 00")[..]);
        assert_eq!(&out[48..72], &[0; 24]);
        assert_eq!(Hdr::decode_nid4(&out).expect("valid").body_reply(), r);
    }

    /// spec/wire.md 5.3: the socklnd V1 hello is an LNet header.
    #[test]
    fn hello_v1_layout() {
        let src = Nid::new4(TCP, ip(192, 168, 1, 10));
        let body = HelloBody {
            incarnation: 0x0102_0304_0506_0708,
            conn_type: 1,
        };
        let h = Hdr::hello_v1(src, 12345, 8, body);
        let mut out = [0xEEu8; HDR_NID4_SIZE];
        h.encode_nid4(&mut out).expect("classic");
        let mut want = hex("ed 0d bc ee 01 00 00 00  0a 01 a8 c0 00 00 02 00
             00 00 00 00 39 30 00 00  04 00 00 00 08 00 00 00
             08 07 06 05 04 03 02 01  01 00 00 00");
        want.extend_from_slice(&[0; 28]);
        assert_eq!(&out[..], &want[..]);

        let back = Hdr::decode_hello_v1(&out).expect("valid hello");
        assert_eq!(back, h);
        assert_eq!(back.body_hello(), body);
        // ... but it is not an LNet message.
        assert_eq!(Hdr::decode_nid4(&out), Err(HdrError::HelloAsMessage));

        let mut bad = out;
        bad[4] = 2;
        assert!(matches!(
            Hdr::decode_hello_v1(&bad),
            Err(HdrError::HelloMagic { .. })
        ));
        let mut bad = out;
        bad[28] = 6;
        assert_eq!(
            Hdr::decode_hello_v1(&bad),
            Err(HdrError::HelloIpList { length: 6 })
        );
        bad[28] = 68;
        assert_eq!(
            Hdr::decode_hello_v1(&bad),
            Err(HdrError::HelloIpList { length: 68 })
        );
        let mut bad = out;
        bad[24] = 1;
        assert_eq!(
            Hdr::decode_hello_v1(&bad),
            Err(HdrError::NotHello {
                msg_type: MsgType::PUT
            })
        );
    }

    fn encoded(h: &Hdr) -> [u8; HDR_NID4_SIZE] {
        let mut out = [0u8; HDR_NID4_SIZE];
        h.encode_nid4(&mut out).expect("classic");
        out
    }

    #[test]
    fn decode_rejects_bad_headers() {
        let h = worked_example();
        let good = encoded(&h);

        let mut b = good;
        b[28..32].copy_from_slice(&(MAX_PAYLOAD + 1).to_le_bytes());
        let e = Hdr::decode_nid4(&b).expect_err("too long");
        assert_eq!(
            e,
            HdrError::PayloadTooLong {
                msg_type: MsgType::PUT,
                length: MAX_PAYLOAD + 1
            }
        );
        assert!(e.to_string().contains("payload_length 1048577"));
        b[28..32].copy_from_slice(&MAX_PAYLOAD.to_le_bytes());
        assert!(Hdr::decode_nid4(&b).is_ok());
        b[24] = 3; // REPLY, same limit
        assert!(Hdr::decode_nid4(&b).is_ok());
        b[28..32].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            Hdr::decode_nid4(&b),
            Err(HdrError::PayloadTooLong { .. })
        ));

        for t in [0u8, 2] {
            let mut b = good;
            b[24] = t;
            let e = Hdr::decode_nid4(&b).expect_err("payload on ack/get");
            assert_eq!(
                e,
                HdrError::UnexpectedPayload {
                    msg_type: MsgType(t.into()),
                    length: 4096
                }
            );
            assert!(e.to_string().contains("must be 0"));
            b[28..32].copy_from_slice(&[0; 4]);
            assert!(Hdr::decode_nid4(&b).is_ok());
        }

        let mut b = good;
        b[24] = 4;
        assert_eq!(Hdr::decode_nid4(&b), Err(HdrError::HelloAsMessage));
        b[24] = 5;
        let e = Hdr::decode_nid4(&b).expect_err("unknown");
        assert_eq!(e, HdrError::UnknownType { value: 5 });
        assert_eq!(e.to_string(), "lnet header: unknown message type 5");
        b[24] = 1;
        b[27] = 1;
        assert_eq!(
            Hdr::decode_nid4(&b),
            Err(HdrError::UnknownType { value: 0x0100_0001 })
        );

        // Classic NIDs that do not fit the large form.
        let mut b = good;
        b[7] = 1;
        let e = Hdr::decode_nid4(&b).expect_err("top byte");
        assert_eq!(
            e,
            HdrError::BadNid4 {
                field: "dest_nid",
                value: 0x0102_0000_C0A8_0114
            }
        );
        assert!(e.to_string().contains("dest_nid 0x0102"));
        let mut b = good;
        b[14] = 0xFF;
        assert!(matches!(
            Hdr::decode_nid4(&b),
            Err(HdrError::BadNid4 {
                field: "src_nid",
                ..
            })
        ));
        // LNET_NID_ANY is fine.
        let mut b = good;
        b[8..16].copy_from_slice(&[0xFF; 8]);
        assert_eq!(Hdr::decode_nid4(&b).expect("any").src_nid, Nid::ANY);
    }

    #[test]
    fn decode_nid16_rejects_bad_size_byte() {
        let h = worked_example();
        let mut out = [0u8; HDR_NID16_SIZE];
        h.encode_nid16(&mut out);
        assert_eq!(Hdr::decode_nid16(&out), Ok(h));
        for size in [1u8, 4, 11, 13, 0xFE] {
            let mut b = out;
            b[20] = size;
            let e = Hdr::decode_nid16(&b).expect_err("bad size");
            assert_eq!(
                e,
                HdrError::NidSize {
                    field: "src_nid",
                    size
                }
            );
            assert!(e
                .to_string()
                .contains(&format!("src_nid has invalid nid_size {size}")));
        }
        let mut b = out;
        b[0] = 12;
        assert!(Hdr::decode_nid16(&b).is_ok());
        b[48] = 4;
        assert_eq!(Hdr::decode_nid16(&b), Err(HdrError::HelloAsMessage));
        b[48] = 2;
        assert!(matches!(
            Hdr::decode_nid16(&b),
            Err(HdrError::UnexpectedPayload { .. })
        ));
    }

    #[test]
    fn emit_into_short_view_fails() {
        let mut small = [0u8; 50];
        let h = worked_example();
        assert_eq!(
            h.emit_nid4(&mut HdrNid4::new_unchecked(&mut small[..])),
            Err(HdrError::Truncated { len: 50, need: 72 })
        );
        assert_eq!(
            h.emit_nid16(&mut HdrNid16::new_unchecked(&mut small[..])),
            Err(HdrError::Truncated { len: 50, need: 96 })
        );
        assert_eq!(
            Hdr::parse_nid4(&HdrNid4::new_unchecked(&small[..])),
            Err(HdrError::Truncated { len: 50, need: 72 })
        );
    }

    /// Random bytes with the type and length fields biased toward valid values.
    fn header_bytes<const N: usize>(type_off: usize) -> impl Strategy<Value = [u8; N]> {
        (
            proptest::collection::vec(any::<u8>(), N),
            prop_oneof![Just(None), (0u32..6).prop_map(Some)],
            prop_oneof![
                Just(None),
                Just(Some(0u32)),
                Just(Some(MAX_PAYLOAD)),
                Just(Some(MAX_PAYLOAD + 1)),
                (0u32..5000).prop_map(Some)
            ],
            prop_oneof![
                Just(None),
                Just(Some(0u8)),
                Just(Some(12u8)),
                Just(Some(0xFFu8))
            ],
        )
            .prop_map(move |(v, t, len, size)| {
                let mut a = [0u8; N];
                a.copy_from_slice(&v);
                if let Some(t) = t {
                    a[type_off..type_off + 4].copy_from_slice(&t.to_le_bytes());
                }
                if let Some(l) = len {
                    a[type_off + 4..type_off + 8].copy_from_slice(&l.to_le_bytes());
                }
                if let Some(s) = size {
                    if N == HDR_NID16_SIZE {
                        a[0] = s;
                        a[20] = s;
                    } else {
                        a[7] = 0;
                        a[15] = 0;
                    }
                }
                a
            })
    }

    fn nid_strategy() -> impl Strategy<Value = Nid> {
        prop_oneof![
            (any::<u8>(), any::<u16>(), any::<u32>())
                .prop_filter("not any", |(t, _, _)| *t != 0xFF)
                .prop_map(|(t, n, a)| Nid::new4(NetId::new(t, n), a)),
            (any::<u8>(), any::<u16>(), any::<[u8; 16]>())
                .prop_filter("not any", |(t, _, _)| *t != 0xFF)
                .prop_map(|(t, n, a)| Nid::new16(NetId::new(t, n), a)),
            Just(Nid::ANY),
        ]
    }

    /// Whether raw NID bytes are in the form the decoder keeps verbatim.
    fn canonical_nid(raw: &[u8]) -> bool {
        raw[1] != 0xFF && (raw[0] != 0 || raw[8..20].iter().all(|&x| x == 0))
    }

    #[test]
    fn nid16_unused_address_words_are_cleared() {
        let mut out = [0u8; HDR_NID16_SIZE];
        worked_example().encode_nid16(&mut out);
        out[12] = 10; // dest_nid addr[8]
        out[39] = 1; // src_nid addr[15]
        let h = Hdr::decode_nid16(&out).expect("valid");
        assert_eq!(h, worked_example());
    }

    proptest! {
        #[test]
        fn nid4_decode_never_panics_and_round_trips(b in header_bytes::<HDR_NID4_SIZE>(24)) {
            if let Ok(h) = Hdr::decode_nid4(&b) {
                prop_assert!(h.msg_type.0 <= 3);
                prop_assert!(h.payload_length <= MAX_PAYLOAD);
                let mut out = [0u8; HDR_NID4_SIZE];
                h.encode_nid4(&mut out).expect("decoded classic nids re-encode");
                prop_assert_eq!(out, b);
            }
            let _ = Hdr::decode_hello_v1(&b);
        }

        #[test]
        fn nid16_decode_never_panics_and_round_trips(b in header_bytes::<HDR_NID16_SIZE>(48)) {
            if let Ok(h) = Hdr::decode_nid16(&b) {
                let mut out = [0u8; HDR_NID16_SIZE];
                h.encode_nid16(&mut out);
                prop_assert_eq!(Hdr::decode_nid16(&out), Ok(h));
                // Bytes are kept verbatim except the normalised ANY marker
                // and unused address words.
                if canonical_nid(&b[0..20]) && canonical_nid(&b[20..40]) {
                    prop_assert_eq!(out, b);
                }
                let mut c = [0u8; HDR_NID4_SIZE];
                if h.encode_nid4(&mut c).is_ok() {
                    prop_assert_eq!(Hdr::decode_nid4(&c), Ok(h));
                }
            }
        }

        #[test]
        fn valid_headers_round_trip(
            dest in nid_strategy(),
            src in nid_strategy(),
            pids in any::<(u32, u32)>(),
            t in 0u32..4,
            len in 0..=MAX_PAYLOAD,
            body in any::<[u8; BODY_SIZE]>(),
        ) {
            let len = if t == 0 || t == 2 { 0 } else { len };
            let h = Hdr {
                dest_nid: dest,
                src_nid: src,
                dest_pid: pids.0,
                src_pid: pids.1,
                msg_type: MsgType(t),
                payload_length: len,
                body,
            };
            let mut o16 = [0u8; HDR_NID16_SIZE];
            h.encode_nid16(&mut o16);
            prop_assert_eq!(Hdr::decode_nid16(&o16), Ok(h));
            let mut o4 = [0u8; HDR_NID4_SIZE];
            match h.encode_nid4(&mut o4) {
                Ok(()) => prop_assert_eq!(Hdr::decode_nid4(&o4), Ok(h)),
                Err(e) => {
                    prop_assert!(!dest.is_nid4() || !src.is_nid4());
                    let is_classic_err = matches!(e, HdrError::NoClassicForm { .. });
                    prop_assert!(is_classic_err);
                }
            }
        }

        #[test]
        fn typed_bodies_round_trip(b in any::<[u8; BODY_SIZE]>()) {
            let put = PutBody::from_body(&b);
            prop_assert_eq!(put.to_body(), b);
            prop_assert_eq!(PutBody::from_body(&put.to_body()), put);
            let get = GetBody::from_body(&b);
            prop_assert_eq!(GetBody::from_body(&get.to_body()), get);
            prop_assert_eq!(&get.to_body()[..36], &b[..36]);
            let ack = AckBody::from_body(&b);
            prop_assert_eq!(AckBody::from_body(&ack.to_body()), ack);
            let rep = ReplyBody::from_body(&b);
            prop_assert_eq!(ReplyBody::from_body(&rep.to_body()), rep);
            let hel = HelloBody::from_body(&b);
            prop_assert_eq!(HelloBody::from_body(&hel.to_body()), hel);
        }
    }
}
