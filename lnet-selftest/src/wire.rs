//! The selftest RPC message (`struct srpc_msg`, `lnet/selftest/rpc.h`,
//! spec `wire.md` §8): a 160-byte message, a 24-byte header and a body union.
//!
//! Two layers, as in [`lnet_core::wire`]: [`SrpcMsgView`] is a checked view over
//! the received bytes (exactly 160 of them, a known magic) with header
//! accessors, and [`SrpcMsg`] is the validated representation with
//! [`SrpcMsg::parse`] / [`SrpcMsg::emit`].
//!
//! Byte order: every field is in the **sender's** order. We emit
//! little-endian ([`ByteOrder::Little`]); a receiver recognises a big-endian
//! sender by its byte-swapped `msg_magic` and swaps every numeric field.
//! Names (`char[32]`) are raw bytes. Decoders never panic: the only length
//! they depend on is the fixed 160 bytes, checked up front.

use lnd_api::Nid;
use thiserror::Error;

use lnet_core::nid::ProcessId;
pub use lnet_core::wire::SRPC_MSG_MAGIC;

/// Size of every request and reply (`sizeof(struct srpc_msg)`).
pub const SRPC_MSG_SIZE: usize = 160;
/// Offset of the body union.
pub const SRPC_BODY_OFFSET: usize = 24;
/// `SRPC_MSG_VERSION`.
pub const SRPC_MSG_VERSION: u32 = 1;
/// Length of a session or group name on the wire (`LST_NAME_SIZE`).
pub const LST_NAME_SIZE: usize = 32;
/// Size of one destination in a TEST bulk (`struct lnet_process_id_packed`).
pub const PROCESS_ID_PACKED_SIZE: usize = 12;
/// `LST_FEAT_BULK_LEN`: BRW sizes in bytes plus an offset.
pub const LST_FEAT_BULK_LEN: u32 = 1;
/// Every feature we know (`LST_FEATS_MASK`).
pub const LST_FEATS_MASK: u32 = LST_FEAT_BULK_LEN;
/// `LST_PING_TEST_MAGIC`: PING request/reply magic.
pub const LST_PING_TEST_MAGIC: u32 = 0xBABE_FACE;
/// `BRW_MAGIC`: the 64-bit data pattern word.
pub const BRW_MAGIC: u64 = 0xEEB0_EEB1_EEB2_EEB3;
/// `BRW_POISON`: what a sink is filled with before a checked transfer.
pub const BRW_POISON: u64 = 0xBEEF_BEEF_BEEF_BEEF;

/// Service ids (`enum srpc_service_type` values; the request match bits).
pub mod service {
    /// DEBUG (console ping / keep-alive).
    pub const DEBUG: u32 = 0;
    /// MAKE_SESSION.
    pub const MAKE_SESSION: u32 = 1;
    /// REMOVE_SESSION.
    pub const REMOVE_SESSION: u32 = 2;
    /// BATCH (run/stop/query).
    pub const BATCH: u32 = 3;
    /// TEST (add a test instance).
    pub const TEST: u32 = 4;
    /// QUERY_STAT.
    pub const QUERY_STAT: u32 = 5;
    /// JOIN (unused by the console).
    pub const JOIN: u32 = 6;
    /// Framework services are below this id.
    pub const MAX_FRAMEWORK: u32 = 10;
    /// BRW test service.
    pub const BRW: u32 = 11;
    /// PING test service.
    pub const PING: u32 = 12;
}

/// Message types (`enum srpc_msg_type`; reply = request + 1).
pub mod msg_type {
    /// MKSN request.
    pub const MKSN_REQST: u32 = 0;
    /// MKSN reply.
    pub const MKSN_REPLY: u32 = 1;
    /// RMSN request.
    pub const RMSN_REQST: u32 = 2;
    /// RMSN reply.
    pub const RMSN_REPLY: u32 = 3;
    /// BATCH request.
    pub const BATCH_REQST: u32 = 4;
    /// BATCH reply.
    pub const BATCH_REPLY: u32 = 5;
    /// STAT request.
    pub const STAT_REQST: u32 = 6;
    /// STAT reply.
    pub const STAT_REPLY: u32 = 7;
    /// TEST request.
    pub const TEST_REQST: u32 = 8;
    /// TEST reply.
    pub const TEST_REPLY: u32 = 9;
    /// DEBUG request.
    pub const DEBUG_REQST: u32 = 10;
    /// DEBUG reply.
    pub const DEBUG_REPLY: u32 = 11;
    /// BRW request.
    pub const BRW_REQST: u32 = 12;
    /// BRW reply.
    pub const BRW_REPLY: u32 = 13;
    /// PING request.
    pub const PING_REQST: u32 = 14;
    /// PING reply.
    pub const PING_REPLY: u32 = 15;
    /// JOIN request.
    pub const JOIN_REQST: u32 = 16;
    /// JOIN reply.
    pub const JOIN_REPLY: u32 = 17;
}

/// The request message type of a service (`srpc_service2request`).
pub fn service_request_type(svc: u32) -> Option<u32> {
    use msg_type::*;
    Some(match svc {
        service::DEBUG => DEBUG_REQST,
        service::MAKE_SESSION => MKSN_REQST,
        service::REMOVE_SESSION => RMSN_REQST,
        service::BATCH => BATCH_REQST,
        service::TEST => TEST_REQST,
        service::QUERY_STAT => STAT_REQST,
        service::JOIN => JOIN_REQST,
        service::BRW => BRW_REQST,
        service::PING => PING_REQST,
        _ => return None,
    })
}

/// BATCH opcodes (`LST_BRW_*`/`SRPC_BATCH_OPC_*`).
pub mod batch_opc {
    /// Start the batch.
    pub const RUN: u32 = 1;
    /// Stop it (`arg` = force).
    pub const STOP: u32 = 2;
    /// How many instances/units are active.
    pub const QUERY: u32 = 3;
}

/// BRW direction (`LST_BRW_READ` / `LST_BRW_WRITE`).
pub mod brw_rw {
    /// The client reads: the server PUTs.
    pub const READ: u32 = 1;
    /// The client writes: the server GETs.
    pub const WRITE: u32 = 2;
}

/// BRW data checks (`LST_BRW_CHECK_*`).
pub mod brw_check {
    /// No pattern.
    pub const NONE: u32 = 1;
    /// Magic in the first and last word of each page fragment.
    pub const SIMPLE: u32 = 2;
    /// Magic in every word.
    pub const FULL: u32 = 3;
    /// No pattern, and the sink may drop the data.
    pub const DISCARD: u32 = 4;
}

/// The order a sender wrote its fields in.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum ByteOrder {
    /// Little-endian (what we emit).
    #[default]
    Little,
    /// Big-endian (a byte-swapped peer on our little-endian view).
    Big,
}

/// A session id (`struct lst_sid`): the console's classic NID and its
/// creation stamp in milliseconds.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Sid {
    /// `ses_nid` (classic 64-bit NID; `LNET_NID_ANY` = no session).
    pub nid: u64,
    /// `ses_stamp` (ms).
    pub stamp: i64,
}

impl Sid {
    /// `LST_INVALID_SID`: no session.
    pub const NONE: Sid = Sid {
        nid: u64::MAX,
        stamp: -1,
    };

    /// Whether this is no session (`ses_nid == LNET_NID_ANY`).
    pub fn is_none(&self) -> bool {
        self.nid == u64::MAX
    }

    /// The console NID as a [`Nid`].
    pub fn console_nid(&self) -> Nid {
        Nid::from_nid4(self.nid)
    }
}

impl std::fmt::Display for Sid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.stamp, self.console_nid())
    }
}

/// `struct sfw_counters` (20 bytes).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct SfwCounters {
    /// ms since the node's session started.
    pub running_ms: u32,
    /// Batches with active instances.
    pub active_batches: u32,
    /// Sessions still winding down.
    pub zombie_sessions: u32,
    /// BRW errors in the session.
    pub brw_errors: u32,
    /// PING errors in the session.
    pub ping_errors: u32,
}

/// `struct srpc_counters` (36 bytes).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct SrpcCounters {
    /// LNet events with error status (cancellation excluded).
    pub errors: u32,
    /// Requests whose send completed OK.
    pub rpcs_sent: u32,
    /// Requests received by any service.
    pub rpcs_rcvd: u32,
    /// Server RPCs that ended with an error.
    pub rpcs_dropped: u32,
    /// Client RPCs that timed out.
    pub rpcs_expired: u32,
    /// Bytes moved by server-side bulk GETs.
    pub bulk_get: u64,
    /// Bytes moved by server-side bulk PUTs.
    pub bulk_put: u64,
}

/// `struct lnet_counters_common` (60 bytes).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct LnetCountersCommon {
    /// Messages in flight.
    pub msgs_alloc: u32,
    /// High-water mark.
    pub msgs_max: u32,
    /// Errors.
    pub errors: u32,
    /// Messages sent.
    pub send_count: u32,
    /// Messages received.
    pub recv_count: u32,
    /// Messages routed.
    pub route_count: u32,
    /// Messages dropped.
    pub drop_count: u32,
    /// Bytes sent.
    pub send_length: u64,
    /// Bytes received.
    pub recv_length: u64,
    /// Bytes routed.
    pub route_length: u64,
    /// Bytes dropped.
    pub drop_length: u64,
}

/// Test parameters of a TEST request (`tsr_u`, 12 bytes), decoded by service
/// and features.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum TestParams {
    /// PING: `{u32 size, u32 flags}`.
    Ping {
        /// Unused size.
        size: u32,
        /// Unused flags.
        flags: u32,
    },
    /// BRW without BULK_LEN: `{u32 opc, u32 npages, u32 flags}`.
    BrwV0 {
        /// READ/WRITE.
        opc: u32,
        /// Pages per RPC.
        npages: u32,
        /// Check mode.
        flags: u32,
    },
    /// BRW with BULK_LEN: `{u16 opc, u16 flags, u32 len, u32 offset}`.
    BrwV1 {
        /// READ/WRITE.
        opc: u16,
        /// Check mode.
        flags: u16,
        /// Bytes per RPC.
        len: u32,
        /// Offset in the client's first page.
        offset: u32,
    },
    /// Another service: the raw bytes.
    Raw([u8; 12]),
}

/// A message body (`msg_body` union member).
#[derive(Clone, PartialEq, Eq, Debug)]
#[allow(missing_docs)]
pub enum Body {
    /// `srpc_mksn_reqst`.
    MksnReq {
        rpyid: u64,
        sid: Sid,
        force: u32,
        name: String,
    },
    /// `srpc_mksn_reply`.
    MksnReply {
        status: u32,
        sid: Sid,
        timeout: u32,
        name: String,
    },
    /// `srpc_rmsn_reqst`.
    RmsnReq { rpyid: u64, sid: Sid },
    /// `srpc_rmsn_reply`.
    RmsnReply { status: u32, sid: Sid },
    /// `srpc_join_reqst`.
    JoinReq { rpyid: u64, sid: Sid, group: String },
    /// `srpc_join_reply`.
    JoinReply {
        status: u32,
        sid: Sid,
        timeout: u32,
        session: String,
    },
    /// `srpc_debug_reqst`.
    DebugReq { rpyid: u64, sid: Sid, flags: u32 },
    /// `srpc_debug_reply`.
    DebugReply {
        status: u32,
        sid: Sid,
        timeout: u32,
        nbatch: u32,
        name: String,
    },
    /// `srpc_batch_reqst`.
    BatchReq {
        rpyid: u64,
        sid: Sid,
        bid: u64,
        opc: u32,
        testidx: u32,
        arg: u32,
    },
    /// `srpc_batch_reply`.
    BatchReply {
        status: u32,
        sid: Sid,
        active: u32,
        time: u32,
    },
    /// `srpc_stat_reqst`.
    StatReq { rpyid: u64, sid: Sid, stype: u32 },
    /// `srpc_stat_reply`.
    StatReply {
        status: u32,
        sid: Sid,
        fw: SfwCounters,
        rpc: SrpcCounters,
        lnet: LnetCountersCommon,
    },
    /// `srpc_test_reqst`.
    TestReq {
        rpyid: u64,
        bulkid: u64,
        sid: Sid,
        bid: u64,
        service: u32,
        loop_count: u32,
        concur: u32,
        is_client: u8,
        stop_onerr: u8,
        ndest: u32,
        params: TestParams,
    },
    /// `srpc_test_reply`.
    TestReply { status: u32, sid: Sid },
    /// `srpc_ping_reqst`.
    PingReq {
        rpyid: u64,
        magic: u32,
        seq: u32,
        time_sec: u64,
        time_nsec: u64,
    },
    /// `srpc_ping_reply`.
    PingReply { status: u32, magic: u32, seq: u32 },
    /// `srpc_brw_reqst`.
    BrwReq {
        rpyid: u64,
        bulkid: u64,
        rw: u32,
        len: u32,
        flags: u32,
    },
    /// `srpc_brw_reply`.
    BrwReply { status: u32 },
}

impl Body {
    /// The `msg_type` of this body.
    pub fn msg_type(&self) -> u32 {
        use msg_type::*;
        match self {
            Body::MksnReq { .. } => MKSN_REQST,
            Body::MksnReply { .. } => MKSN_REPLY,
            Body::RmsnReq { .. } => RMSN_REQST,
            Body::RmsnReply { .. } => RMSN_REPLY,
            Body::JoinReq { .. } => JOIN_REQST,
            Body::JoinReply { .. } => JOIN_REPLY,
            Body::DebugReq { .. } => DEBUG_REQST,
            Body::DebugReply { .. } => DEBUG_REPLY,
            Body::BatchReq { .. } => BATCH_REQST,
            Body::BatchReply { .. } => BATCH_REPLY,
            Body::StatReq { .. } => STAT_REQST,
            Body::StatReply { .. } => STAT_REPLY,
            Body::TestReq { .. } => TEST_REQST,
            Body::TestReply { .. } => TEST_REPLY,
            Body::PingReq { .. } => PING_REQST,
            Body::PingReply { .. } => PING_REPLY,
            Body::BrwReq { .. } => BRW_REQST,
            Body::BrwReply { .. } => BRW_REPLY,
        }
    }

    /// The request's `rpyid` (where the reply goes); `None` for replies.
    pub fn rpyid(&self) -> Option<u64> {
        match self {
            Body::MksnReq { rpyid, .. }
            | Body::RmsnReq { rpyid, .. }
            | Body::JoinReq { rpyid, .. }
            | Body::DebugReq { rpyid, .. }
            | Body::BatchReq { rpyid, .. }
            | Body::StatReq { rpyid, .. }
            | Body::TestReq { rpyid, .. }
            | Body::PingReq { rpyid, .. }
            | Body::BrwReq { rpyid, .. } => Some(*rpyid),
            _ => None,
        }
    }

    /// A reply's `status` (a positive errno or 0); `None` for requests.
    pub fn status(&self) -> Option<u32> {
        match self {
            Body::MksnReply { status, .. }
            | Body::RmsnReply { status, .. }
            | Body::JoinReply { status, .. }
            | Body::DebugReply { status, .. }
            | Body::BatchReply { status, .. }
            | Body::StatReply { status, .. }
            | Body::TestReply { status, .. }
            | Body::PingReply { status, .. }
            | Body::BrwReply { status } => Some(*status),
            _ => None,
        }
    }

    /// A framework reply's session id.
    pub fn reply_sid(&self) -> Option<Sid> {
        match self {
            Body::MksnReply { sid, .. }
            | Body::RmsnReply { sid, .. }
            | Body::JoinReply { sid, .. }
            | Body::DebugReply { sid, .. }
            | Body::BatchReply { sid, .. }
            | Body::StatReply { sid, .. }
            | Body::TestReply { sid, .. } => Some(*sid),
            _ => None,
        }
    }
}

/// Why bytes are not a selftest message.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum SrpcWireError {
    /// Not exactly 160 bytes.
    #[error("srpc message: {0} bytes, expected exactly 160")]
    Length(usize),
    /// Neither the magic nor its byte swap.
    #[error("srpc message: bad magic {0:#010x}")]
    Magic(u32),
    /// A message type we do not know.
    #[error("srpc message: unknown type {0}")]
    Type(u32),
}

/// A checked view over a received `srpc_msg` (exactly 160 bytes, a known
/// magic in either byte order).
#[derive(Clone, Copy, Debug)]
pub struct SrpcMsgView<'a> {
    buf: &'a [u8],
    order: ByteOrder,
}

impl<'a> SrpcMsgView<'a> {
    /// Checks the length and the magic.
    pub fn new_checked(buf: &'a [u8]) -> Result<Self, SrpcWireError> {
        if buf.len() != SRPC_MSG_SIZE {
            return Err(SrpcWireError::Length(buf.len()));
        }
        let le = Reader::new(buf, ByteOrder::Little).u32(0);
        let order = if le == SRPC_MSG_MAGIC {
            ByteOrder::Little
        } else if le.swap_bytes() == SRPC_MSG_MAGIC {
            ByteOrder::Big
        } else {
            return Err(SrpcWireError::Magic(le));
        };
        Ok(SrpcMsgView { buf, order })
    }

    /// The sender's byte order.
    pub fn order(&self) -> ByteOrder {
        self.order
    }

    fn r(&self) -> Reader<'a> {
        Reader::new(self.buf, self.order)
    }

    /// `msg_version`.
    pub fn version(&self) -> u32 {
        self.r().u32(4)
    }

    /// `msg_type`.
    pub fn msg_type(&self) -> u32 {
        self.r().u32(8)
    }

    /// `msg_ses_feats`.
    pub fn ses_feats(&self) -> u32 {
        self.r().u32(20)
    }
}

/// A validated selftest message.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct SrpcMsg {
    /// `msg_version` (1).
    pub version: u32,
    /// `msg_ses_feats`.
    pub ses_feats: u32,
    /// The body; it determines `msg_type`.
    pub body: Body,
}

/// Field reader over a fixed buffer in a given byte order; reads outside the
/// buffer give zeros (callers check the length first, so this never happens).
#[derive(Clone, Copy)]
struct Reader<'a> {
    b: &'a [u8],
    o: ByteOrder,
}

impl<'a> Reader<'a> {
    fn new(b: &'a [u8], o: ByteOrder) -> Self {
        Reader { b, o }
    }
    fn arr<const N: usize>(&self, off: usize) -> [u8; N] {
        let mut a = [0u8; N];
        if let Some(s) = self.b.get(off..off + N) {
            a.copy_from_slice(s);
        }
        a
    }
    fn u8(&self, off: usize) -> u8 {
        self.b.get(off).copied().unwrap_or(0)
    }
    fn u16(&self, off: usize) -> u16 {
        let a = self.arr::<2>(off);
        match self.o {
            ByteOrder::Little => u16::from_le_bytes(a),
            ByteOrder::Big => u16::from_be_bytes(a),
        }
    }
    fn u32(&self, off: usize) -> u32 {
        let a = self.arr::<4>(off);
        match self.o {
            ByteOrder::Little => u32::from_le_bytes(a),
            ByteOrder::Big => u32::from_be_bytes(a),
        }
    }
    fn u64(&self, off: usize) -> u64 {
        let a = self.arr::<8>(off);
        match self.o {
            ByteOrder::Little => u64::from_le_bytes(a),
            ByteOrder::Big => u64::from_be_bytes(a),
        }
    }
    fn sid(&self, off: usize) -> Sid {
        Sid {
            nid: self.u64(off),
            stamp: self.u64(off + 8) as i64,
        }
    }
    fn name(&self, off: usize) -> String {
        let a = self.arr::<LST_NAME_SIZE>(off);
        let end = a.iter().position(|&c| c == 0).unwrap_or(LST_NAME_SIZE);
        String::from_utf8_lossy(&a[..end]).into_owned()
    }
}

/// Field writer over a fixed buffer; writes outside it are ignored.
struct Writer<'a> {
    b: &'a mut [u8],
    o: ByteOrder,
}

impl Writer<'_> {
    fn put(&mut self, off: usize, v: &[u8]) {
        if let Some(d) = self.b.get_mut(off..off + v.len()) {
            d.copy_from_slice(v);
        }
    }
    fn u8(&mut self, off: usize, v: u8) {
        self.put(off, &[v]);
    }
    fn u16(&mut self, off: usize, v: u16) {
        match self.o {
            ByteOrder::Little => self.put(off, &v.to_le_bytes()),
            ByteOrder::Big => self.put(off, &v.to_be_bytes()),
        }
    }
    fn u32(&mut self, off: usize, v: u32) {
        match self.o {
            ByteOrder::Little => self.put(off, &v.to_le_bytes()),
            ByteOrder::Big => self.put(off, &v.to_be_bytes()),
        }
    }
    fn u64(&mut self, off: usize, v: u64) {
        match self.o {
            ByteOrder::Little => self.put(off, &v.to_le_bytes()),
            ByteOrder::Big => self.put(off, &v.to_be_bytes()),
        }
    }
    fn sid(&mut self, off: usize, s: Sid) {
        self.u64(off, s.nid);
        self.u64(off + 8, s.stamp as u64);
    }
    fn name(&mut self, off: usize, s: &str) {
        // At most 31 bytes, NUL-terminated (cut on a char boundary).
        let mut end = s.len().min(LST_NAME_SIZE - 1);
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        let mut a = [0u8; LST_NAME_SIZE];
        a[..end].copy_from_slice(&s.as_bytes()[..end]);
        self.put(off, &a);
    }
}

fn read_params(r: &Reader<'_>, off: usize, service: u32, feats: u32) -> TestParams {
    match service {
        service::PING => TestParams::Ping {
            size: r.u32(off),
            flags: r.u32(off + 4),
        },
        service::BRW if feats & LST_FEAT_BULK_LEN != 0 => TestParams::BrwV1 {
            opc: r.u16(off),
            flags: r.u16(off + 2),
            len: r.u32(off + 4),
            offset: r.u32(off + 8),
        },
        service::BRW => TestParams::BrwV0 {
            opc: r.u32(off),
            npages: r.u32(off + 4),
            flags: r.u32(off + 8),
        },
        _ => TestParams::Raw(r.arr::<12>(off)),
    }
}

fn write_params(w: &mut Writer<'_>, off: usize, p: &TestParams) {
    match *p {
        TestParams::Ping { size, flags } => {
            w.u32(off, size);
            w.u32(off + 4, flags);
        }
        TestParams::BrwV0 { opc, npages, flags } => {
            w.u32(off, opc);
            w.u32(off + 4, npages);
            w.u32(off + 8, flags);
        }
        TestParams::BrwV1 {
            opc,
            flags,
            len,
            offset,
        } => {
            w.u16(off, opc);
            w.u16(off + 2, flags);
            w.u32(off + 4, len);
            w.u32(off + 8, offset);
        }
        TestParams::Raw(a) => w.put(off, &a),
    }
}

fn read_counters(r: &Reader<'_>, b: usize) -> (SfwCounters, SrpcCounters, LnetCountersCommon) {
    let f = b + 20;
    let fw = SfwCounters {
        running_ms: r.u32(f),
        active_batches: r.u32(f + 4),
        zombie_sessions: r.u32(f + 8),
        brw_errors: r.u32(f + 12),
        ping_errors: r.u32(f + 16),
    };
    let s = b + 40;
    let rpc = SrpcCounters {
        errors: r.u32(s),
        rpcs_sent: r.u32(s + 4),
        rpcs_rcvd: r.u32(s + 8),
        rpcs_dropped: r.u32(s + 12),
        rpcs_expired: r.u32(s + 16),
        bulk_get: r.u64(s + 20),
        bulk_put: r.u64(s + 28),
    };
    let l = b + 76;
    let lnet = LnetCountersCommon {
        msgs_alloc: r.u32(l),
        msgs_max: r.u32(l + 4),
        errors: r.u32(l + 8),
        send_count: r.u32(l + 12),
        recv_count: r.u32(l + 16),
        route_count: r.u32(l + 20),
        drop_count: r.u32(l + 24),
        send_length: r.u64(l + 28),
        recv_length: r.u64(l + 36),
        route_length: r.u64(l + 44),
        drop_length: r.u64(l + 52),
    };
    (fw, rpc, lnet)
}

fn write_counters(
    w: &mut Writer<'_>,
    b: usize,
    fw: &SfwCounters,
    rpc: &SrpcCounters,
    lnet: &LnetCountersCommon,
) {
    let f = b + 20;
    w.u32(f, fw.running_ms);
    w.u32(f + 4, fw.active_batches);
    w.u32(f + 8, fw.zombie_sessions);
    w.u32(f + 12, fw.brw_errors);
    w.u32(f + 16, fw.ping_errors);
    let s = b + 40;
    w.u32(s, rpc.errors);
    w.u32(s + 4, rpc.rpcs_sent);
    w.u32(s + 8, rpc.rpcs_rcvd);
    w.u32(s + 12, rpc.rpcs_dropped);
    w.u32(s + 16, rpc.rpcs_expired);
    w.u64(s + 20, rpc.bulk_get);
    w.u64(s + 28, rpc.bulk_put);
    let l = b + 76;
    w.u32(l, lnet.msgs_alloc);
    w.u32(l + 4, lnet.msgs_max);
    w.u32(l + 8, lnet.errors);
    w.u32(l + 12, lnet.send_count);
    w.u32(l + 16, lnet.recv_count);
    w.u32(l + 20, lnet.route_count);
    w.u32(l + 24, lnet.drop_count);
    w.u64(l + 28, lnet.send_length);
    w.u64(l + 36, lnet.recv_length);
    w.u64(l + 44, lnet.route_length);
    w.u64(l + 52, lnet.drop_length);
}

impl SrpcMsg {
    /// A version-1 message.
    pub fn new(ses_feats: u32, body: Body) -> Self {
        SrpcMsg {
            version: SRPC_MSG_VERSION,
            ses_feats,
            body,
        }
    }

    /// Parses 160 received bytes; returns the message and the sender's order.
    pub fn parse(buf: &[u8]) -> Result<(SrpcMsg, ByteOrder), SrpcWireError> {
        let v = SrpcMsgView::new_checked(buf)?;
        let r = v.r();
        let feats = v.ses_feats();
        let b = SRPC_BODY_OFFSET;
        use msg_type::*;
        let body = match v.msg_type() {
            MKSN_REQST => Body::MksnReq {
                rpyid: r.u64(b),
                sid: r.sid(b + 8),
                force: r.u32(b + 24),
                name: r.name(b + 28),
            },
            MKSN_REPLY => Body::MksnReply {
                status: r.u32(b),
                sid: r.sid(b + 4),
                timeout: r.u32(b + 20),
                name: r.name(b + 24),
            },
            RMSN_REQST => Body::RmsnReq {
                rpyid: r.u64(b),
                sid: r.sid(b + 8),
            },
            RMSN_REPLY => Body::RmsnReply {
                status: r.u32(b),
                sid: r.sid(b + 4),
            },
            JOIN_REQST => Body::JoinReq {
                rpyid: r.u64(b),
                sid: r.sid(b + 8),
                group: r.name(b + 24),
            },
            JOIN_REPLY => Body::JoinReply {
                status: r.u32(b),
                sid: r.sid(b + 4),
                timeout: r.u32(b + 20),
                session: r.name(b + 24),
            },
            DEBUG_REQST => Body::DebugReq {
                rpyid: r.u64(b),
                sid: r.sid(b + 8),
                flags: r.u32(b + 24),
            },
            DEBUG_REPLY => Body::DebugReply {
                status: r.u32(b),
                sid: r.sid(b + 4),
                timeout: r.u32(b + 20),
                nbatch: r.u32(b + 24),
                name: r.name(b + 28),
            },
            BATCH_REQST => Body::BatchReq {
                rpyid: r.u64(b),
                sid: r.sid(b + 8),
                bid: r.u64(b + 24),
                opc: r.u32(b + 32),
                testidx: r.u32(b + 36),
                arg: r.u32(b + 40),
            },
            BATCH_REPLY => Body::BatchReply {
                status: r.u32(b),
                sid: r.sid(b + 4),
                active: r.u32(b + 20),
                time: r.u32(b + 24),
            },
            STAT_REQST => Body::StatReq {
                rpyid: r.u64(b),
                sid: r.sid(b + 8),
                stype: r.u32(b + 24),
            },
            STAT_REPLY => {
                let (fw, rpc, lnet) = read_counters(&r, b);
                Body::StatReply {
                    status: r.u32(b),
                    sid: r.sid(b + 4),
                    fw,
                    rpc,
                    lnet,
                }
            }
            TEST_REQST => {
                let service = r.u32(b + 40);
                Body::TestReq {
                    rpyid: r.u64(b),
                    bulkid: r.u64(b + 8),
                    sid: r.sid(b + 16),
                    bid: r.u64(b + 32),
                    service,
                    loop_count: r.u32(b + 44),
                    concur: r.u32(b + 48),
                    is_client: r.u8(b + 52),
                    stop_onerr: r.u8(b + 53),
                    ndest: r.u32(b + 54),
                    params: read_params(&r, b + 58, service, feats),
                }
            }
            TEST_REPLY => Body::TestReply {
                status: r.u32(b),
                sid: r.sid(b + 4),
            },
            PING_REQST => Body::PingReq {
                rpyid: r.u64(b),
                magic: r.u32(b + 8),
                seq: r.u32(b + 12),
                time_sec: r.u64(b + 16),
                time_nsec: r.u64(b + 24),
            },
            PING_REPLY => Body::PingReply {
                status: r.u32(b),
                magic: r.u32(b + 4),
                seq: r.u32(b + 8),
            },
            BRW_REQST => Body::BrwReq {
                rpyid: r.u64(b),
                bulkid: r.u64(b + 8),
                rw: r.u32(b + 16),
                len: r.u32(b + 20),
                flags: r.u32(b + 24),
            },
            BRW_REPLY => Body::BrwReply { status: r.u32(b) },
            t => return Err(SrpcWireError::Type(t)),
        };
        Ok((
            SrpcMsg {
                version: v.version(),
                ses_feats: feats,
                body,
            },
            v.order(),
        ))
    }

    /// The 160 bytes in little-endian (our native order on the wire).
    pub fn emit(&self) -> [u8; SRPC_MSG_SIZE] {
        self.emit_in(ByteOrder::Little)
    }

    /// The 160 bytes in `order` (big-endian emulates a byte-swapped peer).
    pub fn emit_in(&self, order: ByteOrder) -> [u8; SRPC_MSG_SIZE] {
        let mut buf = [0u8; SRPC_MSG_SIZE];
        self.emit_into(order, &mut buf);
        buf
    }

    /// The 160 bytes in `order`, written over `buf` (every byte: what a
    /// field does not cover is zeroed), e.g. straight into a message buffer.
    pub fn emit_into(&self, order: ByteOrder, buf: &mut [u8; SRPC_MSG_SIZE]) {
        buf.fill(0);
        let mut w = Writer { b: buf, o: order };
        w.u32(0, SRPC_MSG_MAGIC);
        w.u32(4, self.version);
        w.u32(8, self.body.msg_type());
        w.u32(20, self.ses_feats);
        let b = SRPC_BODY_OFFSET;
        match &self.body {
            Body::MksnReq {
                rpyid,
                sid,
                force,
                name,
            } => {
                w.u64(b, *rpyid);
                w.sid(b + 8, *sid);
                w.u32(b + 24, *force);
                w.name(b + 28, name);
            }
            Body::MksnReply {
                status,
                sid,
                timeout,
                name,
            } => {
                w.u32(b, *status);
                w.sid(b + 4, *sid);
                w.u32(b + 20, *timeout);
                w.name(b + 24, name);
            }
            Body::RmsnReq { rpyid, sid } => {
                w.u64(b, *rpyid);
                w.sid(b + 8, *sid);
            }
            Body::RmsnReply { status, sid } | Body::TestReply { status, sid } => {
                w.u32(b, *status);
                w.sid(b + 4, *sid);
            }
            Body::JoinReq { rpyid, sid, group } => {
                w.u64(b, *rpyid);
                w.sid(b + 8, *sid);
                w.name(b + 24, group);
            }
            Body::JoinReply {
                status,
                sid,
                timeout,
                session,
            } => {
                w.u32(b, *status);
                w.sid(b + 4, *sid);
                w.u32(b + 20, *timeout);
                w.name(b + 24, session);
            }
            Body::DebugReq { rpyid, sid, flags } => {
                w.u64(b, *rpyid);
                w.sid(b + 8, *sid);
                w.u32(b + 24, *flags);
            }
            Body::DebugReply {
                status,
                sid,
                timeout,
                nbatch,
                name,
            } => {
                w.u32(b, *status);
                w.sid(b + 4, *sid);
                w.u32(b + 20, *timeout);
                w.u32(b + 24, *nbatch);
                w.name(b + 28, name);
            }
            Body::BatchReq {
                rpyid,
                sid,
                bid,
                opc,
                testidx,
                arg,
            } => {
                w.u64(b, *rpyid);
                w.sid(b + 8, *sid);
                w.u64(b + 24, *bid);
                w.u32(b + 32, *opc);
                w.u32(b + 36, *testidx);
                w.u32(b + 40, *arg);
            }
            Body::BatchReply {
                status,
                sid,
                active,
                time,
            } => {
                w.u32(b, *status);
                w.sid(b + 4, *sid);
                w.u32(b + 20, *active);
                w.u32(b + 24, *time);
            }
            Body::StatReq { rpyid, sid, stype } => {
                w.u64(b, *rpyid);
                w.sid(b + 8, *sid);
                w.u32(b + 24, *stype);
            }
            Body::StatReply {
                status,
                sid,
                fw,
                rpc,
                lnet,
            } => {
                w.u32(b, *status);
                w.sid(b + 4, *sid);
                write_counters(&mut w, b, fw, rpc, lnet);
            }
            Body::TestReq {
                rpyid,
                bulkid,
                sid,
                bid,
                service,
                loop_count,
                concur,
                is_client,
                stop_onerr,
                ndest,
                params,
            } => {
                w.u64(b, *rpyid);
                w.u64(b + 8, *bulkid);
                w.sid(b + 16, *sid);
                w.u64(b + 32, *bid);
                w.u32(b + 40, *service);
                w.u32(b + 44, *loop_count);
                w.u32(b + 48, *concur);
                w.u8(b + 52, *is_client);
                w.u8(b + 53, *stop_onerr);
                w.u32(b + 54, *ndest);
                write_params(&mut w, b + 58, params);
            }
            Body::PingReq {
                rpyid,
                magic,
                seq,
                time_sec,
                time_nsec,
            } => {
                w.u64(b, *rpyid);
                w.u32(b + 8, *magic);
                w.u32(b + 12, *seq);
                w.u64(b + 16, *time_sec);
                w.u64(b + 24, *time_nsec);
            }
            Body::PingReply { status, magic, seq } => {
                w.u32(b, *status);
                w.u32(b + 4, *magic);
                w.u32(b + 8, *seq);
            }
            Body::BrwReq {
                rpyid,
                bulkid,
                rw,
                len,
                flags,
            } => {
                w.u64(b, *rpyid);
                w.u64(b + 8, *bulkid);
                w.u32(b + 16, *rw);
                w.u32(b + 20, *len);
                w.u32(b + 24, *flags);
            }
            Body::BrwReply { status } => w.u32(b, *status),
        }
    }
}

/// Encodes a destination list for a TEST bulk (`lnet_process_id_packed`
/// entries: u64 classic NID, u32 PID); NIDs without a classic form are sent
/// as `LNET_NID_ANY`.
pub fn emit_dests(dests: &[ProcessId]) -> Vec<u8> {
    let mut out = Vec::with_capacity(dests.len() * PROCESS_ID_PACKED_SIZE);
    for d in dests {
        out.extend_from_slice(&d.nid.to_nid4().unwrap_or(u64::MAX).to_le_bytes());
        out.extend_from_slice(&d.pid.to_le_bytes());
    }
    out
}

/// Decodes `n` destinations from a TEST bulk in the sender's `order`;
/// `None` if the buffer is too short.
pub fn parse_dests(buf: &[u8], n: usize, order: ByteOrder) -> Option<Vec<ProcessId>> {
    let need = n.checked_mul(PROCESS_ID_PACKED_SIZE)?;
    let b = buf.get(..need)?;
    let r = Reader::new(b, order);
    Some(
        (0..n)
            .map(|i| {
                let o = i * PROCESS_ID_PACKED_SIZE;
                ProcessId {
                    nid: Nid::from_nid4(r.u64(o)),
                    pid: r.u32(o + 8),
                }
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sid() -> Sid {
        Sid {
            nid: 0x0002_0000_0a00_0001,
            stamp: 0x0102_0304_0506_0708,
        }
    }

    fn le32(b: &[u8], o: usize) -> u32 {
        u32::from_le_bytes(b[o..o + 4].try_into().expect("4 bytes"))
    }
    fn le64(b: &[u8], o: usize) -> u64 {
        u64::from_le_bytes(b[o..o + 8].try_into().expect("8 bytes"))
    }

    #[test]
    fn header_golden_bytes() {
        let m = SrpcMsg::new(1, Body::BrwReply { status: 74 });
        let b = m.emit();
        assert_eq!(&b[0..4], &[0x0D, 0xF0, 0xB0, 0xEE], "magic LE");
        assert_eq!(le32(&b, 4), 1, "version");
        assert_eq!(le32(&b, 8), 13, "BRW reply type");
        assert_eq!(&b[12..20], &[0; 8], "reserved");
        assert_eq!(le32(&b, 20), 1, "features");
        assert_eq!(le32(&b, 24), 74, "status at body 0");
        let be = m.emit_in(ByteOrder::Big);
        assert_eq!(&be[0..4], &[0xEE, 0xB0, 0xF0, 0x0D]);
        assert_eq!(&be[24..28], &[0, 0, 0, 74]);
    }

    #[test]
    fn mksn_golden_offsets() {
        let m = SrpcMsg::new(
            1,
            Body::MksnReq {
                rpyid: 0x1122_3344_5566_7788,
                sid: sid(),
                force: 1,
                name: "rw_test".into(),
            },
        );
        let b = m.emit();
        let o = SRPC_BODY_OFFSET;
        assert_eq!(le64(&b, o), 0x1122_3344_5566_7788);
        assert_eq!(le64(&b, o + 8), sid().nid);
        assert_eq!(le64(&b, o + 16), sid().stamp as u64);
        assert_eq!(le32(&b, o + 24), 1);
        assert_eq!(&b[o + 28..o + 35], b"rw_test");
        assert_eq!(b[o + 35], 0);
        let r = SrpcMsg::new(
            1,
            Body::MksnReply {
                status: 16,
                sid: sid(),
                timeout: 100,
                name: "other".into(),
            },
        )
        .emit();
        assert_eq!(le32(&r, o), 16);
        assert_eq!(le64(&r, o + 4), sid().nid);
        assert_eq!(le32(&r, o + 20), 100);
        assert_eq!(&r[o + 24..o + 29], b"other");
    }

    #[test]
    fn test_req_golden_offsets() {
        let m = SrpcMsg::new(
            1,
            Body::TestReq {
                rpyid: 7,
                bulkid: 8,
                sid: sid(),
                bid: 9,
                service: service::BRW,
                loop_count: u32::MAX,
                concur: 4,
                is_client: 1,
                stop_onerr: 1,
                ndest: 2,
                params: TestParams::BrwV1 {
                    opc: 2,
                    flags: 3,
                    len: 1 << 20,
                    offset: 8,
                },
            },
        );
        let b = m.emit();
        let o = SRPC_BODY_OFFSET;
        assert_eq!(le64(&b, o), 7);
        assert_eq!(le64(&b, o + 8), 8);
        assert_eq!(le64(&b, o + 16), sid().nid);
        assert_eq!(le64(&b, o + 32), 9);
        assert_eq!(le32(&b, o + 40), 11);
        assert_eq!(le32(&b, o + 44), u32::MAX);
        assert_eq!(le32(&b, o + 48), 4);
        assert_eq!(b[o + 52], 1);
        assert_eq!(b[o + 53], 1);
        assert_eq!(le32(&b, o + 54), 2);
        assert_eq!(&b[o + 58..o + 62], &[2, 0, 3, 0]);
        assert_eq!(le32(&b, o + 62), 1 << 20);
        assert_eq!(le32(&b, o + 66), 8);
        // Without BULK_LEN the same service decodes as v0.
        let mut v0 = m.clone();
        v0.ses_feats = 0;
        if let Body::TestReq { params, .. } = &mut v0.body {
            *params = TestParams::BrwV0 {
                opc: 1,
                npages: 256,
                flags: 1,
            };
        }
        let (p, _) = SrpcMsg::parse(&v0.emit()).expect("parses");
        assert_eq!(p, v0);
    }

    #[test]
    fn batch_stat_ping_brw_golden_offsets() {
        let o = SRPC_BODY_OFFSET;
        let b = SrpcMsg::new(
            1,
            Body::BatchReq {
                rpyid: 1,
                sid: sid(),
                bid: 5,
                opc: batch_opc::QUERY,
                testidx: 2,
                arg: 1,
            },
        )
        .emit();
        assert_eq!(le64(&b, o + 24), 5);
        assert_eq!(le32(&b, o + 32), 3);
        assert_eq!(le32(&b, o + 36), 2);
        assert_eq!(le32(&b, o + 40), 1);
        let b = SrpcMsg::new(
            1,
            Body::BatchReply {
                status: 0,
                sid: sid(),
                active: 3,
                time: 4,
            },
        )
        .emit();
        assert_eq!((le32(&b, o + 20), le32(&b, o + 24)), (3, 4));
        let stat = Body::StatReply {
            status: 0,
            sid: sid(),
            fw: SfwCounters {
                running_ms: 1,
                active_batches: 2,
                zombie_sessions: 3,
                brw_errors: 4,
                ping_errors: 5,
            },
            rpc: SrpcCounters {
                errors: 6,
                rpcs_sent: 7,
                rpcs_rcvd: 8,
                rpcs_dropped: 9,
                rpcs_expired: 10,
                bulk_get: 11,
                bulk_put: 12,
            },
            lnet: LnetCountersCommon {
                msgs_alloc: 13,
                msgs_max: 14,
                errors: 15,
                send_count: 16,
                recv_count: 17,
                route_count: 18,
                drop_count: 19,
                send_length: 20,
                recv_length: 21,
                route_length: 22,
                drop_length: 23,
            },
        };
        let b = SrpcMsg::new(1, stat.clone()).emit();
        assert_eq!(le32(&b, o + 20), 1);
        assert_eq!(le32(&b, o + 36), 5);
        assert_eq!(le32(&b, o + 40), 6);
        assert_eq!(le32(&b, o + 56), 10);
        assert_eq!(le64(&b, o + 60), 11);
        assert_eq!(le64(&b, o + 68), 12);
        assert_eq!(le32(&b, o + 76), 13);
        assert_eq!(le32(&b, o + 100), 19);
        assert_eq!(le64(&b, o + 104), 20);
        assert_eq!(le64(&b, o + 128), 23);
        assert_eq!(o + 136, SRPC_MSG_SIZE, "STAT reply fills the message");
        let b = SrpcMsg::new(
            0,
            Body::PingReq {
                rpyid: 1,
                magic: LST_PING_TEST_MAGIC,
                seq: 9,
                time_sec: 10,
                time_nsec: 11,
            },
        )
        .emit();
        assert_eq!(le32(&b, 8), msg_type::PING_REQST);
        assert_eq!(le32(&b, o + 8), 0xBABE_FACE);
        assert_eq!(le32(&b, o + 12), 9);
        assert_eq!(le64(&b, o + 16), 10);
        assert_eq!(le64(&b, o + 24), 11);
        let b = SrpcMsg::new(
            1,
            Body::BrwReq {
                rpyid: 1,
                bulkid: 2,
                rw: brw_rw::WRITE,
                len: 4096,
                flags: brw_check::FULL,
            },
        )
        .emit();
        assert_eq!(le64(&b, o + 8), 2);
        assert_eq!(le32(&b, o + 16), 2);
        assert_eq!(le32(&b, o + 20), 4096);
        assert_eq!(le32(&b, o + 24), 3);
    }

    #[test]
    fn swapped_peer_is_understood() {
        let bodies = vec![
            Body::DebugReply {
                status: 0,
                sid: sid(),
                timeout: 100,
                nbatch: 2,
                name: "s".into(),
            },
            Body::TestReq {
                rpyid: 7,
                bulkid: 8,
                sid: sid(),
                bid: 9,
                service: service::PING,
                loop_count: 5,
                concur: 4,
                is_client: 1,
                stop_onerr: 1,
                ndest: 2,
                params: TestParams::Ping { size: 0, flags: 0 },
            },
            Body::JoinReply {
                status: 1,
                sid: sid(),
                timeout: 3,
                session: "x".into(),
            },
        ];
        for body in bodies {
            let m = SrpcMsg::new(1, body);
            let (p, o) = SrpcMsg::parse(&m.emit_in(ByteOrder::Big)).expect("parses");
            assert_eq!(o, ByteOrder::Big);
            assert_eq!(p, m);
        }
    }

    #[test]
    fn bad_messages_are_refused() {
        assert_eq!(
            SrpcMsg::parse(&[0u8; 159]).err(),
            Some(SrpcWireError::Length(159))
        );
        assert!(matches!(
            SrpcMsg::parse(&[0u8; 160]).err(),
            Some(SrpcWireError::Magic(0))
        ));
        let mut b = SrpcMsg::new(1, Body::BrwReply { status: 0 }).emit();
        b[8] = 99;
        assert_eq!(SrpcMsg::parse(&b).err(), Some(SrpcWireError::Type(99)));
    }

    #[test]
    fn dests_round_trip_both_orders() {
        let n = |i: u32| ProcessId::lustre(Nid::from_nid4(0x0002_0000_0a00_0000 | u64::from(i)));
        let d = vec![n(1), n(2), n(3)];
        let b = emit_dests(&d);
        assert_eq!(b.len(), 36);
        assert_eq!(parse_dests(&b, 3, ByteOrder::Little), Some(d.clone()));
        assert_eq!(parse_dests(&b, 4, ByteOrder::Little), None);
        let mut be = Vec::new();
        for p in &d {
            be.extend_from_slice(&p.nid.to_nid4().expect("nid4").to_be_bytes());
            be.extend_from_slice(&p.pid.to_be_bytes());
        }
        assert_eq!(parse_dests(&be, 3, ByteOrder::Big), Some(d));
    }

    proptest! {
        #[test]
        fn parse_never_panics(mut b in proptest::collection::vec(any::<u8>(), 160..=160),
                              t in 0u32..20, swap in any::<bool>()) {
            let magic = if swap { SRPC_MSG_MAGIC.to_be_bytes() } else { SRPC_MSG_MAGIC.to_le_bytes() };
            b[..4].copy_from_slice(&magic);
            let tb = if swap { t.to_be_bytes() } else { t.to_le_bytes() };
            b[8..12].copy_from_slice(&tb);
            if let Ok((m, o)) = SrpcMsg::parse(&b) {
                // Re-emitting in the same order and parsing again is stable.
                let again = SrpcMsg::parse(&m.emit_in(o)).expect("re-parses");
                prop_assert_eq!(again.0.body.msg_type(), m.body.msg_type());
            }
        }

        #[test]
        fn parse_never_panics_any_len(b in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = SrpcMsg::parse(&b);
            let _ = parse_dests(&b, b.len() / 7, ByteOrder::Big);
        }
    }
}
