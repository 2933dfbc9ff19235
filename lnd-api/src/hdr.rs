//! The LNet message header (`lnet_hdr_nid4` / `lnet_hdr_nid16`) as it crosses
//! the plugin boundary.
//!
//! [`Hdr`] holds the common fields decoded and the 40-byte per-type body in its
//! wire form (little-endian numbers, opaque handles), so an LND can frame a
//! message (it needs [`Hdr::payload_length`]) without understanding the body,
//! and the host reads the body through typed accessors. [`Hdr::encode_nid4`],
//! [`Hdr::encode_nid16`] and the decoders produce and check the exact bytes of
//! `spec/wire.md` section 2.

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
