//! socklnd's wire formats (`spec/wire.md` §3–§5): the acceptor connection
//! request, the hellos of protocol V1 to V4 and the 24-byte message header.
//!
//! Each format has a checked view over bytes (`new_checked`, accessors over
//! byte ranges, in the sender's byte order) and a validated `Repr` with
//! `parse`/`emit`. Formats that arrive in pieces whose lengths depend on
//! earlier bytes (the connection request and the hellos) also have a small
//! decoder state machine ([`ConnReqDecoder`], [`HelloDecoder`]): the driver
//! reads exactly [`HelloDecoder::want`] bytes and feeds them, so a decoder
//! never trusts a length it has not checked and never reads past a message.
//!
//! We emit little-endian (this machine's order); every "sender's order" item
//! is accepted in both orders, the magic deciding the flip.

use std::fmt;

use lnd_api::Nid;

/// `LNET_PROTO_TCP_MAGIC`: the first 4 bytes of a V1 hello (little-endian).
pub const LNET_PROTO_TCP_MAGIC: u32 = 0xEEBC_0DED;
/// `LNET_PROTO_MAGIC`: the magic of hellos V2 to V4.
pub const LNET_PROTO_MAGIC: u32 = 0x4572_6963;
/// `LNET_PROTO_ACCEPTOR_MAGIC`: the magic of the acceptor connection request.
pub const LNET_PROTO_ACCEPTOR_MAGIC: u32 = 0xACCE_7100;
/// `LNET_PROTO_ACCEPTOR_VERSION`: connection request with a classic NID.
pub const ACCEPTOR_VERSION: u32 = 1;
/// `LNET_PROTO_ACCEPTOR_VERSION_16`: connection request with a large NID.
pub const ACCEPTOR_VERSION_16: u32 = 2;

/// `KSOCK_PROTO_V1`.
pub const KSOCK_PROTO_V1: u32 = 1;
/// `KSOCK_PROTO_V2`.
pub const KSOCK_PROTO_V2: u32 = 2;
/// `KSOCK_PROTO_V3`: the default over IPv4.
pub const KSOCK_PROTO_V3: u32 = 3;
/// `KSOCK_PROTO_V4`: the default over IPv6 (large NIDs).
pub const KSOCK_PROTO_V4: u32 = 4;

/// `KSOCK_MSG_NOOP`.
pub const KSOCK_MSG_NOOP: u32 = 0xC0;
/// `KSOCK_MSG_LNET`.
pub const KSOCK_MSG_LNET: u32 = 0xC1;

/// Size of `ksock_msg_hdr`.
pub const MSG_HDR_SIZE: usize = 24;
/// Size of a V1 hello without its IP list (an LNet header).
pub const HELLO_V1_SIZE: usize = 72;
/// Size of `ksock_hello_msg_nid4` without its IP list.
pub const HELLO_V2_SIZE: usize = 56;
/// Size of `ksock_hello_msg` (V4).
pub const HELLO_V4_SIZE: usize = 80;
/// Most IPs a hello may list (`LNET_INTERFACES_NUM`).
pub const HELLO_MAX_IPS: u32 = 16;
/// Size of the classic connection request.
pub const CONNREQ_SIZE: usize = 16;
/// Size of the large-NID connection request.
pub const CONNREQ16_SIZE: usize = 28;
/// Zero-copy cookie reserved for keepalive NOOPs.
pub const ZC_COOKIE_KEEPALIVE: u64 = 1;
/// `LNET_MSG_HELLO`, the LNet message type of a V1 hello.
const LNET_MSG_HELLO: u32 = 4;

/// The byte order of a sender ("sender's order" items).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Endian {
    /// Little-endian: what we send.
    Little,
    /// Big-endian: a byte-swapped peer.
    Big,
}

impl Endian {
    /// Reads a u32 at `off` (the caller checked the length).
    fn u32(self, b: &[u8], off: usize) -> u32 {
        let a = [b[off], b[off + 1], b[off + 2], b[off + 3]];
        match self {
            Endian::Little => u32::from_le_bytes(a),
            Endian::Big => u32::from_be_bytes(a),
        }
    }
    /// Reads a u64 at `off`.
    fn u64(self, b: &[u8], off: usize) -> u64 {
        let mut a = [0u8; 8];
        a.copy_from_slice(&b[off..off + 8]);
        match self {
            Endian::Little => u64::from_le_bytes(a),
            Endian::Big => u64::from_be_bytes(a),
        }
    }
    /// Reads a u16 at `off`.
    fn u16(self, b: &[u8], off: usize) -> u16 {
        let a = [b[off], b[off + 1]];
        match self {
            Endian::Little => u16::from_le_bytes(a),
            Endian::Big => u16::from_be_bytes(a),
        }
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
    /// Writes the `ksh_csum` field of a socklnd header at the start of `b`.
    pub fn put_csum(self, b: &mut [u8], v: u32) {
        self.put_u32(b, 4, v)
    }
    /// Which order makes `raw` (4 bytes) read as `magic`, if any.
    fn of_magic(raw: &[u8; 4], magic: u32) -> Option<Endian> {
        if u32::from_le_bytes(*raw) == magic {
            Some(Endian::Little)
        } else if u32::from_be_bytes(*raw) == magic {
            Some(Endian::Big)
        } else {
            None
        }
    }
}

/// Why bytes from a peer were refused. Lowercase text, names the field.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum WireError {
    /// Fewer bytes than the format needs.
    Truncated {
        /// What was being read.
        what: &'static str,
        /// Bytes given.
        len: usize,
        /// Bytes needed.
        need: usize,
    },
    /// The connection request does not start with the acceptor magic.
    ConnReqMagic {
        /// The 4 bytes as a little-endian number.
        value: u32,
    },
    /// A peer probed with `LNET_PROTO_MAGIC` instead of a connection request
    /// (the "future unified protocol"): answer `{0xACCE7100, 1, 0}` and close.
    ConnReqProbe,
    /// A connection request version other than 1 or 2: answer
    /// `{0xACCE7100, 1, 0}` and close.
    ConnReqVersion {
        /// The version received.
        version: u32,
    },
    /// A hello starting with neither socklnd magic.
    HelloMagic {
        /// The 4 bytes as a little-endian number.
        value: u32,
    },
    /// A hello of a protocol version we do not speak.
    HelloVersion {
        /// The version received (for V1: major << 16 | minor).
        version: u32,
    },
    /// A V1 hello whose LNet type is not HELLO.
    HelloV1Type {
        /// The type received.
        value: u32,
    },
    /// A hello announcing too many IPs or a misaligned IP list.
    HelloIps {
        /// The count (or, for V1, the byte length) received.
        value: u32,
    },
    /// A hello listing the address 0.
    HelloZeroIp,
    /// A NID that is not valid: a large NID whose size byte is neither 0
    /// nor 12, a classic NID with a non-zero top byte or the ANY type.
    BadNid {
        /// Which field.
        field: &'static str,
    },
    /// A socklnd message type other than NOOP and LNET.
    MsgType {
        /// The type received.
        value: u32,
    },
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::Truncated { what, len, need } => {
                write!(f, "{what} truncated: {len} bytes, need {need}")
            }
            WireError::ConnReqMagic { value } => write!(
                f,
                "connection request: bad magic {value:#010x} (expected {LNET_PROTO_ACCEPTOR_MAGIC:#010x})"
            ),
            WireError::ConnReqProbe => f.write_str(
                "connection request: peer probed with the unified protocol magic; answered version 1",
            ),
            WireError::ConnReqVersion { version } => write!(
                f,
                "connection request: unsupported acceptor version {version} (we speak 1 and 2)"
            ),
            WireError::HelloMagic { value } => write!(
                f,
                "hello: bad magic {value:#010x} (expected {LNET_PROTO_MAGIC:#010x} or {LNET_PROTO_TCP_MAGIC:#010x})"
            ),
            WireError::HelloVersion { version } => {
                write!(f, "hello: unknown socklnd protocol version {version:#x}")
            }
            WireError::HelloV1Type { value } => {
                write!(f, "hello V1: LNet type {value} is not HELLO (4)")
            }
            WireError::HelloIps { value } => {
                write!(f, "hello: bad IP list ({value}; at most {HELLO_MAX_IPS} addresses)")
            }
            WireError::HelloZeroIp => f.write_str("hello: IP list holds address 0"),
            WireError::BadNid { field } => {
                write!(f, "{field}: not a valid NID (bad size, type or top byte)")
            }
            WireError::MsgType { value } => {
                write!(f, "socklnd message: unknown type {value:#x} (expected 0xc0 or 0xc1)")
            }
        }
    }
}

impl std::error::Error for WireError {}

fn need(what: &'static str, b: &[u8], n: usize) -> Result<(), WireError> {
    if b.len() < n {
        Err(WireError::Truncated {
            what,
            len: b.len(),
            need: n,
        })
    } else {
        Ok(())
    }
}

/// A classic 64-bit NID from the wire: the top byte must be 0 and the type
/// byte not the ANY marker, unless the whole value is `LNET_NID_ANY`.
fn nid4(field: &'static str, v: u64) -> Result<Nid, WireError> {
    if v == u64::MAX {
        return Ok(Nid::ANY);
    }
    if v >> 56 != 0 || (v >> 48) as u8 == lnd_api::lnd_type::ANY {
        return Err(WireError::BadNid { field });
    }
    Ok(Nid::from_nid4(v))
}

fn nid_raw(field: &'static str, b: &[u8]) -> Result<Nid, WireError> {
    let mut a = [0u8; 20];
    a.copy_from_slice(&b[..20]);
    Nid::from_bytes(&a).ok_or(WireError::BadNid { field })
}

// ---------------------------------------------------------------------------
// Connection types
// ---------------------------------------------------------------------------

/// A socklnd connection type (`SOCKLND_CONN_*`), from the sender's side.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub enum ConnType {
    /// `SOCKLND_CONN_NONE` (-1): "no connection made", a refusal.
    None,
    /// `SOCKLND_CONN_ANY` (0): untyped.
    Any,
    /// `SOCKLND_CONN_CONTROL` (1): small messages.
    Control,
    /// `SOCKLND_CONN_BULK_IN` (2): the sender receives bulk on it.
    BulkIn,
    /// `SOCKLND_CONN_BULK_OUT` (3): the sender sends bulk on it.
    BulkOut,
}

impl ConnType {
    /// The wire value.
    pub const fn to_wire(self) -> i32 {
        match self {
            ConnType::None => -1,
            ConnType::Any => 0,
            ConnType::Control => 1,
            ConnType::BulkIn => 2,
            ConnType::BulkOut => 3,
        }
    }
    /// From the wire value; `None` for anything else.
    pub const fn from_wire(v: i32) -> Option<ConnType> {
        match v {
            -1 => Some(ConnType::None),
            0 => Some(ConnType::Any),
            1 => Some(ConnType::Control),
            2 => Some(ConnType::BulkIn),
            3 => Some(ConnType::BulkOut),
            _ => None,
        }
    }
    /// The type the other end of such a connection has
    /// (CONTROL↔CONTROL, ANY↔ANY, BULK_IN↔BULK_OUT); `None` for NONE.
    pub const fn inverse(self) -> Option<ConnType> {
        match self {
            ConnType::None => None,
            ConnType::Any => Some(ConnType::Any),
            ConnType::Control => Some(ConnType::Control),
            ConnType::BulkIn => Some(ConnType::BulkOut),
            ConnType::BulkOut => Some(ConnType::BulkIn),
        }
    }
    /// Upstream's name, as `lnetctl` and the logs print it.
    pub const fn name(self) -> &'static str {
        match self {
            ConnType::None => "none",
            ConnType::Any => "any",
            ConnType::Control => "control",
            ConnType::BulkIn => "bulk_in",
            ConnType::BulkOut => "bulk_out",
        }
    }
}

// ---------------------------------------------------------------------------
// Acceptor connection request (§4)
// ---------------------------------------------------------------------------

/// Checked view of a connection request (`lnet_acceptor_connreq[_v2]`).
#[derive(Clone, Copy, Debug)]
pub struct ConnReq<'a> {
    buf: &'a [u8],
    endian: Endian,
}

impl<'a> ConnReq<'a> {
    /// Checks the magic, the version and the length.
    pub fn new_checked(buf: &'a [u8]) -> Result<Self, WireError> {
        need("connection request", buf, 8)?;
        let raw = [buf[0], buf[1], buf[2], buf[3]];
        let endian = match Endian::of_magic(&raw, LNET_PROTO_ACCEPTOR_MAGIC) {
            Some(e) => e,
            None if Endian::of_magic(&raw, LNET_PROTO_MAGIC).is_some() => {
                return Err(WireError::ConnReqProbe)
            }
            None => {
                return Err(WireError::ConnReqMagic {
                    value: u32::from_le_bytes(raw),
                })
            }
        };
        let v = ConnReq { buf, endian };
        let n = match v.version() {
            ACCEPTOR_VERSION => CONNREQ_SIZE,
            ACCEPTOR_VERSION_16 => CONNREQ16_SIZE,
            version => return Err(WireError::ConnReqVersion { version }),
        };
        need("connection request", buf, n)?;
        Ok(v)
    }
    /// The sender's byte order.
    pub fn endian(&self) -> Endian {
        self.endian
    }
    /// `acr_version`.
    pub fn version(&self) -> u32 {
        self.endian.u32(self.buf, 4)
    }
    /// `acr_nid` of a version 1 request (the classic u64).
    pub fn nid4(&self) -> u64 {
        self.endian.u64(self.buf, 8)
    }
    /// `acr_nid` of a version 2 request (raw `struct lnet_nid`).
    pub fn nid16(&self) -> &'a [u8] {
        &self.buf[8..28]
    }
}

/// A validated connection request.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ConnReqRepr {
    /// 1 (classic NID) or 2 (large NID).
    pub version: u32,
    /// The NID the connector wants to reach.
    pub nid: Nid,
}

impl ConnReqRepr {
    /// The request to reach `nid`: version 1 when it has a classic form.
    pub fn to(nid: Nid) -> Self {
        ConnReqRepr {
            version: if nid.is_nid4() {
                ACCEPTOR_VERSION
            } else {
                ACCEPTOR_VERSION_16
            },
            nid,
        }
    }
    /// The answer to a probe or an unknown version: `{magic, 1, nid 0}`.
    pub fn version_answer() -> [u8; CONNREQ_SIZE] {
        let mut b = [0u8; CONNREQ_SIZE];
        Endian::Little.put_u32(&mut b, 0, LNET_PROTO_ACCEPTOR_MAGIC);
        Endian::Little.put_u32(&mut b, 4, ACCEPTOR_VERSION);
        b
    }
    /// Parses a complete request.
    pub fn parse(v: &ConnReq<'_>) -> Result<Self, WireError> {
        let nid = match v.version() {
            ACCEPTOR_VERSION => nid4("acr_nid", v.nid4())?,
            _ => nid_raw("acr_nid", v.nid16())?,
        };
        Ok(ConnReqRepr {
            version: v.version(),
            nid,
        })
    }
    /// Bytes this request takes on the wire.
    pub fn wire_len(&self) -> usize {
        if self.version == ACCEPTOR_VERSION {
            CONNREQ_SIZE
        } else {
            CONNREQ16_SIZE
        }
    }
    /// Writes the request in `endian` into `out` (at least [`Self::wire_len`]
    /// bytes); returns the length written.
    pub fn emit(&self, endian: Endian, out: &mut [u8]) -> Result<usize, WireError> {
        let n = self.wire_len();
        need("connection request buffer", out, n)?;
        endian.put_u32(out, 0, LNET_PROTO_ACCEPTOR_MAGIC);
        endian.put_u32(out, 4, self.version);
        if self.version == ACCEPTOR_VERSION {
            endian.put_u64(out, 8, self.nid.to_nid4().unwrap_or(u64::MAX));
        } else {
            out[8..28].copy_from_slice(&self.nid.to_bytes());
        }
        Ok(n)
    }
}

/// Incremental decoder of a connection request: read [`Self::want`] bytes,
/// [`Self::feed`] them, until it yields the request.
#[derive(Debug)]
pub struct ConnReqDecoder {
    buf: [u8; CONNREQ16_SIZE],
    have: usize,
    want: usize,
}

impl Default for ConnReqDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl ConnReqDecoder {
    /// A decoder waiting for the magic.
    pub fn new() -> Self {
        ConnReqDecoder {
            buf: [0; CONNREQ16_SIZE],
            have: 0,
            want: 4,
        }
    }
    /// Bytes to read next (0 once done).
    pub fn want(&self) -> usize {
        self.want
    }
    /// Feeds exactly the bytes asked for.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Option<ConnReqRepr>, WireError> {
        if bytes.len() != self.want {
            return Err(WireError::Truncated {
                what: "connection request",
                len: bytes.len(),
                need: self.want,
            });
        }
        self.buf[self.have..self.have + bytes.len()].copy_from_slice(bytes);
        self.have += bytes.len();
        match self.have {
            4 => {
                // Check the magic before asking for more.
                let raw = [self.buf[0], self.buf[1], self.buf[2], self.buf[3]];
                if Endian::of_magic(&raw, LNET_PROTO_ACCEPTOR_MAGIC).is_none() {
                    ConnReq::new_checked(&self.buf[..8])?;
                }
                self.want = 4;
                Ok(None)
            }
            8 => {
                let v = ConnReq::new_checked(&self.buf[..CONNREQ16_SIZE])?;
                self.want = if v.version() == ACCEPTOR_VERSION {
                    CONNREQ_SIZE - 8
                } else {
                    CONNREQ16_SIZE - 8
                };
                Ok(None)
            }
            _ => {
                self.want = 0;
                let v = ConnReq::new_checked(&self.buf[..self.have])?;
                ConnReqRepr::parse(&v).map(Some)
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Hello (§5.3–§5.5)
// ---------------------------------------------------------------------------

/// A validated hello of any version.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct HelloRepr {
    /// 1 to 4.
    pub version: u32,
    /// The sender's NID.
    pub src_nid: Nid,
    /// The NID the sender believes we have (ANY in V1, which has none).
    pub dst_nid: Nid,
    /// The sender's PID.
    pub src_pid: u32,
    /// Not set by senders; ignored.
    pub dst_pid: u32,
    /// The sender NI's incarnation.
    pub src_incarnation: u64,
    /// Not set by senders; ignored.
    pub dst_incarnation: u64,
    /// The connection type as sent (signed wire value, checked by the handshake).
    pub ctype: i32,
    /// Number of (deprecated) IPs that followed; always 0 when we send.
    pub nips: u32,
}

impl HelloRepr {
    /// Fixed size of this version's hello, before the IP list.
    pub fn fixed_len(version: u32) -> usize {
        match version {
            KSOCK_PROTO_V1 => HELLO_V1_SIZE,
            KSOCK_PROTO_V4 => HELLO_V4_SIZE,
            _ => HELLO_V2_SIZE,
        }
    }

    /// Encodes this hello (IP list empty) in `endian` (ignored for V1, which
    /// is little-endian) into `out`; returns the length. Fails when a NID has
    /// no classic form and the version is not 4, or `out` is short.
    pub fn emit(&self, endian: Endian, out: &mut [u8]) -> Result<usize, WireError> {
        let n = Self::fixed_len(self.version);
        need("hello buffer", out, n)?;
        let out = &mut out[..n];
        out.fill(0);
        let nid4 = |field, nid: &Nid| nid.to_nid4().ok_or(WireError::BadNid { field });
        match self.version {
            KSOCK_PROTO_V1 => {
                let e = Endian::Little;
                e.put_u32(out, 0, LNET_PROTO_TCP_MAGIC);
                out[4..6].copy_from_slice(&1u16.to_le_bytes());
                out[6..8].copy_from_slice(&0u16.to_le_bytes());
                e.put_u64(out, 8, nid4("src_nid", &self.src_nid)?);
                e.put_u32(out, 16, 0);
                e.put_u32(out, 20, self.src_pid);
                e.put_u32(out, 24, LNET_MSG_HELLO);
                e.put_u32(out, 28, 0);
                e.put_u64(out, 32, self.src_incarnation);
                e.put_u32(out, 40, self.ctype as u32);
            }
            KSOCK_PROTO_V4 => {
                endian.put_u32(out, 0, LNET_PROTO_MAGIC);
                endian.put_u32(out, 4, KSOCK_PROTO_V4);
                out[8..28].copy_from_slice(&self.src_nid.to_bytes());
                out[28..48].copy_from_slice(&self.dst_nid.to_bytes());
                endian.put_u32(out, 48, self.src_pid);
                endian.put_u32(out, 52, self.dst_pid);
                endian.put_u64(out, 56, self.src_incarnation);
                endian.put_u64(out, 64, self.dst_incarnation);
                endian.put_u32(out, 72, self.ctype as u32);
                endian.put_u32(out, 76, 0);
            }
            v => {
                endian.put_u32(out, 0, LNET_PROTO_MAGIC);
                endian.put_u32(out, 4, v);
                endian.put_u64(out, 8, nid4("src_nid", &self.src_nid)?);
                endian.put_u64(out, 16, nid4("dst_nid", &self.dst_nid)?);
                endian.put_u32(out, 24, self.src_pid);
                endian.put_u32(out, 28, self.dst_pid);
                endian.put_u64(out, 32, self.src_incarnation);
                endian.put_u64(out, 40, self.dst_incarnation);
                endian.put_u32(out, 48, self.ctype as u32);
                endian.put_u32(out, 52, 0);
            }
        }
        Ok(n)
    }

    /// Parses a complete hello (fixed part and IP list) from one buffer.
    pub fn parse(buf: &[u8]) -> Result<(HelloRepr, Endian), WireError> {
        let mut d = HelloDecoder::new();
        let mut off = 0;
        loop {
            let w = d.want();
            need("hello", &buf[off..], w)?;
            if let Some(h) = d.feed(&buf[off..off + w])? {
                return Ok((h, d.endian()));
            }
            off += w;
        }
    }
}

/// Checked view of a V2/V3 hello (`ksock_hello_msg_nid4`).
#[derive(Clone, Copy, Debug)]
pub struct HelloV2<'a> {
    buf: &'a [u8],
    e: Endian,
}

impl<'a> HelloV2<'a> {
    /// Checks the length and the magic (either order).
    pub fn new_checked(buf: &'a [u8]) -> Result<Self, WireError> {
        need("hello", buf, HELLO_V2_SIZE)?;
        let raw = [buf[0], buf[1], buf[2], buf[3]];
        let e = Endian::of_magic(&raw, LNET_PROTO_MAGIC).ok_or(WireError::HelloMagic {
            value: u32::from_le_bytes(raw),
        })?;
        Ok(HelloV2 { buf, e })
    }
    /// `kshm_version`.
    pub fn version(&self) -> u32 {
        self.e.u32(self.buf, 4)
    }
    /// `kshm_src_nid`.
    pub fn src_nid(&self) -> u64 {
        self.e.u64(self.buf, 8)
    }
    /// `kshm_dst_nid`.
    pub fn dst_nid(&self) -> u64 {
        self.e.u64(self.buf, 16)
    }
    /// `kshm_src_pid`.
    pub fn src_pid(&self) -> u32 {
        self.e.u32(self.buf, 24)
    }
    /// `kshm_dst_pid`.
    pub fn dst_pid(&self) -> u32 {
        self.e.u32(self.buf, 28)
    }
    /// `kshm_src_incarnation`.
    pub fn src_incarnation(&self) -> u64 {
        self.e.u64(self.buf, 32)
    }
    /// `kshm_dst_incarnation`.
    pub fn dst_incarnation(&self) -> u64 {
        self.e.u64(self.buf, 40)
    }
    /// `kshm_ctype`.
    pub fn ctype(&self) -> i32 {
        self.e.u32(self.buf, 48) as i32
    }
    /// `kshm_nips`.
    pub fn nips(&self) -> u32 {
        self.e.u32(self.buf, 52)
    }
}

/// Checked view of a V4 hello (`ksock_hello_msg`).
#[derive(Clone, Copy, Debug)]
pub struct HelloV4<'a> {
    buf: &'a [u8],
    e: Endian,
}

impl<'a> HelloV4<'a> {
    /// Checks the length and the magic (either order).
    pub fn new_checked(buf: &'a [u8]) -> Result<Self, WireError> {
        need("hello", buf, HELLO_V4_SIZE)?;
        let raw = [buf[0], buf[1], buf[2], buf[3]];
        let e = Endian::of_magic(&raw, LNET_PROTO_MAGIC).ok_or(WireError::HelloMagic {
            value: u32::from_le_bytes(raw),
        })?;
        Ok(HelloV4 { buf, e })
    }
    /// `kshm_version`.
    pub fn version(&self) -> u32 {
        self.e.u32(self.buf, 4)
    }
    /// `kshm_src_nid` (raw).
    pub fn src_nid(&self) -> &'a [u8] {
        &self.buf[8..28]
    }
    /// `kshm_dst_nid` (raw).
    pub fn dst_nid(&self) -> &'a [u8] {
        &self.buf[28..48]
    }
    /// `kshm_src_pid`.
    pub fn src_pid(&self) -> u32 {
        self.e.u32(self.buf, 48)
    }
    /// `kshm_dst_pid`.
    pub fn dst_pid(&self) -> u32 {
        self.e.u32(self.buf, 52)
    }
    /// `kshm_src_incarnation`.
    pub fn src_incarnation(&self) -> u64 {
        self.e.u64(self.buf, 56)
    }
    /// `kshm_dst_incarnation`.
    pub fn dst_incarnation(&self) -> u64 {
        self.e.u64(self.buf, 64)
    }
    /// `kshm_ctype`.
    pub fn ctype(&self) -> i32 {
        self.e.u32(self.buf, 72) as i32
    }
    /// `kshm_nips`.
    pub fn nips(&self) -> u32 {
        self.e.u32(self.buf, 76)
    }
}

/// Checked view of a V1 hello (an LNet header of type HELLO, little-endian).
#[derive(Clone, Copy, Debug)]
pub struct HelloV1<'a> {
    buf: &'a [u8],
}

impl<'a> HelloV1<'a> {
    /// Checks the length, the magic, the version 1.0 and the HELLO type.
    pub fn new_checked(buf: &'a [u8]) -> Result<Self, WireError> {
        need("hello", buf, HELLO_V1_SIZE)?;
        let e = Endian::Little;
        let magic = e.u32(buf, 0);
        if magic != LNET_PROTO_TCP_MAGIC {
            return Err(WireError::HelloMagic { value: magic });
        }
        let (maj, min) = (e.u16(buf, 4), e.u16(buf, 6));
        if (maj, min) != (1, 0) {
            return Err(WireError::HelloVersion {
                version: (maj as u32) << 16 | min as u32,
            });
        }
        let v = HelloV1 { buf };
        if v.msg_type() != LNET_MSG_HELLO {
            return Err(WireError::HelloV1Type {
                value: v.msg_type(),
            });
        }
        Ok(v)
    }
    /// `src_nid` of the header.
    pub fn src_nid(&self) -> u64 {
        Endian::Little.u64(self.buf, 8)
    }
    /// `src_pid` of the header.
    pub fn src_pid(&self) -> u32 {
        Endian::Little.u32(self.buf, 20)
    }
    /// LNet message type (4).
    pub fn msg_type(&self) -> u32 {
        Endian::Little.u32(self.buf, 24)
    }
    /// `payload_length`: 4 × number of IPs.
    pub fn payload_length(&self) -> u32 {
        Endian::Little.u32(self.buf, 28)
    }
    /// `incarnation` of the HELLO body.
    pub fn incarnation(&self) -> u64 {
        Endian::Little.u64(self.buf, 32)
    }
    /// Connection type of the HELLO body.
    pub fn ctype(&self) -> i32 {
        Endian::Little.u32(self.buf, 40) as i32
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum HelloState {
    /// Waiting for the 4-byte magic.
    Magic,
    /// Waiting for the 4-byte version (V2+) or major/minor (V1).
    Version { v1: bool },
    /// Waiting for the rest of the fixed part.
    Body { version: u32 },
    /// Waiting for `n` IPs.
    Ips { n: u32 },
    /// Finished (or failed).
    Done,
}

/// Incremental hello decoder (the `ksocknal_recv_hello` reads, as a state
/// machine): magic → version → fixed body → IP list.
#[derive(Debug)]
pub struct HelloDecoder {
    state: HelloState,
    buf: [u8; HELLO_V4_SIZE],
    have: usize,
    endian: Endian,
    hello: Option<HelloRepr>,
}

impl Default for HelloDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl HelloDecoder {
    /// A decoder waiting for the magic.
    pub fn new() -> Self {
        HelloDecoder {
            state: HelloState::Magic,
            buf: [0; HELLO_V4_SIZE],
            have: 0,
            endian: Endian::Little,
            hello: None,
        }
    }

    /// The sender's byte order (valid once the magic was fed).
    pub fn endian(&self) -> Endian {
        self.endian
    }

    /// The version announced, once read (`Some` even when unsupported is
    /// refused: then the caller answers with its own hello).
    pub fn magic_seen(&self) -> bool {
        !matches!(self.state, HelloState::Magic)
    }

    /// Bytes to read next; 0 once done.
    pub fn want(&self) -> usize {
        match self.state {
            HelloState::Magic | HelloState::Version { .. } => 4,
            HelloState::Body { version } => HelloRepr::fixed_len(version) - 8,
            HelloState::Ips { n } => 4 * n as usize,
            HelloState::Done => 0,
        }
    }

    /// Feeds exactly [`Self::want`] bytes; yields the hello when complete.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Option<HelloRepr>, WireError> {
        let want = self.want();
        if bytes.len() != want || want == 0 {
            return Err(WireError::Truncated {
                what: "hello",
                len: bytes.len(),
                need: want,
            });
        }
        let r = self.step(bytes);
        if r.is_err() {
            self.state = HelloState::Done;
        }
        r
    }

    fn step(&mut self, bytes: &[u8]) -> Result<Option<HelloRepr>, WireError> {
        match self.state {
            HelloState::Magic => {
                let raw = [bytes[0], bytes[1], bytes[2], bytes[3]];
                self.buf[..4].copy_from_slice(&raw);
                self.have = 4;
                if u32::from_le_bytes(raw) == LNET_PROTO_TCP_MAGIC {
                    self.endian = Endian::Little;
                    self.state = HelloState::Version { v1: true };
                } else if let Some(e) = Endian::of_magic(&raw, LNET_PROTO_MAGIC) {
                    self.endian = e;
                    self.state = HelloState::Version { v1: false };
                } else {
                    return Err(WireError::HelloMagic {
                        value: u32::from_le_bytes(raw),
                    });
                }
                Ok(None)
            }
            HelloState::Version { v1 } => {
                self.buf[4..8].copy_from_slice(bytes);
                self.have = 8;
                let version = if v1 {
                    let (maj, min) = (
                        Endian::Little.u16(&self.buf, 4),
                        Endian::Little.u16(&self.buf, 6),
                    );
                    if (maj, min) != (1, 0) {
                        return Err(WireError::HelloVersion {
                            version: (maj as u32) << 16 | min as u32,
                        });
                    }
                    KSOCK_PROTO_V1
                } else {
                    let v = self.endian.u32(&self.buf, 4);
                    if !(KSOCK_PROTO_V2..=KSOCK_PROTO_V4).contains(&v) {
                        return Err(WireError::HelloVersion { version: v });
                    }
                    v
                };
                self.state = HelloState::Body { version };
                Ok(None)
            }
            HelloState::Body { version } => {
                let n = HelloRepr::fixed_len(version);
                self.buf[8..n].copy_from_slice(bytes);
                self.have = n;
                let b = &self.buf[..n];
                let (h, nips) = match version {
                    KSOCK_PROTO_V1 => {
                        let v = HelloV1::new_checked(b)?;
                        let len = v.payload_length();
                        if len % 4 != 0 || len / 4 > HELLO_MAX_IPS {
                            return Err(WireError::HelloIps { value: len });
                        }
                        (
                            HelloRepr {
                                version,
                                src_nid: nid4("src_nid", v.src_nid())?,
                                dst_nid: Nid::ANY,
                                src_pid: v.src_pid(),
                                dst_pid: 0,
                                src_incarnation: v.incarnation(),
                                dst_incarnation: 0,
                                ctype: v.ctype(),
                                nips: len / 4,
                            },
                            len / 4,
                        )
                    }
                    KSOCK_PROTO_V4 => {
                        let v = HelloV4::new_checked(b)?;
                        // V4 carries no IP list, whatever kshm_nips says.
                        (
                            HelloRepr {
                                version,
                                src_nid: nid_raw("kshm_src_nid", v.src_nid())?,
                                dst_nid: nid_raw("kshm_dst_nid", v.dst_nid())?,
                                src_pid: v.src_pid(),
                                dst_pid: v.dst_pid(),
                                src_incarnation: v.src_incarnation(),
                                dst_incarnation: v.dst_incarnation(),
                                ctype: v.ctype(),
                                nips: v.nips(),
                            },
                            0,
                        )
                    }
                    _ => {
                        let v = HelloV2::new_checked(b)?;
                        let nips = v.nips();
                        if nips > HELLO_MAX_IPS {
                            return Err(WireError::HelloIps { value: nips });
                        }
                        (
                            HelloRepr {
                                version,
                                src_nid: nid4("kshm_src_nid", v.src_nid())?,
                                dst_nid: nid4("kshm_dst_nid", v.dst_nid())?,
                                src_pid: v.src_pid(),
                                dst_pid: v.dst_pid(),
                                src_incarnation: v.src_incarnation(),
                                dst_incarnation: v.dst_incarnation(),
                                ctype: v.ctype(),
                                nips,
                            },
                            nips,
                        )
                    }
                };
                if nips == 0 {
                    self.state = HelloState::Done;
                    return Ok(Some(h));
                }
                self.hello = Some(h);
                self.state = HelloState::Ips { n: nips };
                Ok(None)
            }
            HelloState::Ips { .. } => {
                // V1 lists are LE; V2/V3 in the sender's order. Only zero
                // matters, which reads the same in both orders.
                if bytes.chunks_exact(4).any(|c| c == [0, 0, 0, 0]) {
                    return Err(WireError::HelloZeroIp);
                }
                self.state = HelloState::Done;
                Ok(self.hello.take())
            }
            HelloState::Done => Err(WireError::Truncated {
                what: "hello",
                len: bytes.len(),
                need: 0,
            }),
        }
    }
}

// ---------------------------------------------------------------------------
// socklnd message header (§5.7)
// ---------------------------------------------------------------------------

/// Checked view of `ksock_msg_hdr` (24 bytes, sender's order).
#[derive(Clone, Copy, Debug)]
pub struct MsgHdr<'a> {
    buf: &'a [u8],
    e: Endian,
}

impl<'a> MsgHdr<'a> {
    /// Checks the length; `e` is the connection's remembered byte order.
    pub fn new_checked(buf: &'a [u8], e: Endian) -> Result<Self, WireError> {
        need("socklnd message header", buf, MSG_HDR_SIZE)?;
        Ok(MsgHdr { buf, e })
    }
    /// `ksh_type`.
    pub fn msg_type(&self) -> u32 {
        self.e.u32(self.buf, 0)
    }
    /// `ksh_csum`.
    pub fn csum(&self) -> u32 {
        self.e.u32(self.buf, 4)
    }
    /// `ksh_zc_cookies[0]`: zero-copy request.
    pub fn zc_req(&self) -> u64 {
        self.e.u64(self.buf, 8)
    }
    /// `ksh_zc_cookies[1]`: zero-copy ACK.
    pub fn zc_ack(&self) -> u64 {
        self.e.u64(self.buf, 16)
    }
}

/// A socklnd message type.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum MsgKind {
    /// `KSOCK_MSG_NOOP`: the header is the whole message.
    Noop,
    /// `KSOCK_MSG_LNET`: an LNet header and payload follow.
    Lnet,
}

/// A validated socklnd message header.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct MsgHdrRepr {
    /// NOOP or LNET.
    pub kind: MsgKind,
    /// Checksum (0: none).
    pub csum: u32,
    /// Zero-copy request cookie (0: none).
    pub zc_req: u64,
    /// Zero-copy ACK cookie (0: none).
    pub zc_ack: u64,
}

impl MsgHdrRepr {
    /// A keepalive NOOP (`{0, 1}`).
    pub const KEEPALIVE: MsgHdrRepr = MsgHdrRepr {
        kind: MsgKind::Noop,
        csum: 0,
        zc_req: 0,
        zc_ack: ZC_COOKIE_KEEPALIVE,
    };

    /// Parses a checked view.
    pub fn parse(v: &MsgHdr<'_>) -> Result<Self, WireError> {
        let kind = match v.msg_type() {
            KSOCK_MSG_NOOP => MsgKind::Noop,
            KSOCK_MSG_LNET => MsgKind::Lnet,
            value => return Err(WireError::MsgType { value }),
        };
        Ok(MsgHdrRepr {
            kind,
            csum: v.csum(),
            zc_req: v.zc_req(),
            zc_ack: v.zc_ack(),
        })
    }
    /// Writes the 24 bytes in `e`.
    pub fn emit(&self, e: Endian, out: &mut [u8; MSG_HDR_SIZE]) {
        let t = match self.kind {
            MsgKind::Noop => KSOCK_MSG_NOOP,
            MsgKind::Lnet => KSOCK_MSG_LNET,
        };
        e.put_u32(out, 0, t);
        e.put_u32(out, 4, self.csum);
        e.put_u64(out, 8, self.zc_req);
        e.put_u64(out, 16, self.zc_ack);
    }
}

/// Which cookies a received ZC ACK acknowledges (§5.7): an LNET message's
/// `zc_ack` one cookie; a NOOP a single cookie, a range or a pair.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ZcAcked {
    /// Nothing (no ACK cookie).
    None,
    /// The keepalive cookie: nothing to acknowledge.
    Keepalive,
    /// Exactly one cookie.
    One(u64),
    /// Every cookie in `[lo, hi]`.
    Range(u64, u64),
    /// Exactly two cookies.
    Pair(u64, u64),
}

impl ZcAcked {
    /// What the header `h` acknowledges.
    pub fn of(h: &MsgHdrRepr) -> ZcAcked {
        match (h.kind, h.zc_req, h.zc_ack) {
            (_, _, 0) => ZcAcked::None,
            (MsgKind::Noop, 0, ZC_COOKIE_KEEPALIVE) => ZcAcked::Keepalive,
            (MsgKind::Lnet, _, c) | (MsgKind::Noop, 0, c) => ZcAcked::One(c),
            (MsgKind::Noop, a, b) if a < b => ZcAcked::Range(a, b),
            (MsgKind::Noop, a, b) => ZcAcked::Pair(a, b),
        }
    }
}

/// `crc32_le(0xFFFFFFFF, ..)` without the final inversion, as socklnd V2
/// checksums use it; chain calls with the previous value as `seed`.
pub fn csum_update(seed: u32, data: &[u8]) -> u32 {
    let mut c = seed;
    for &b in data {
        c ^= b as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0xEDB8_8320
            } else {
                c >> 1
            };
        }
    }
    c
}

#[cfg(test)]
mod tests;
