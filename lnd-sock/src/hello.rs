//! The socklnd handshake (`spec/wire.md` §5.6) as an explicit state machine,
//! plus the async driver that runs it over any byte stream (the socket seam).
//!
//! The machine ([`Handshake`]) is sans-IO: it says what to send
//! ([`Handshake::poll_transmit`]) and judges the hello received
//! ([`Handshake::handle_hello`]); illegal transitions are errors, never
//! panics. The decisions that need the peer table (connection races,
//! duplicates, a rebooted peer) are the NI's: the passive side asks it
//! between [`Handshake::handle_hello`] and [`Handshake::answer`], as
//! `ksocknal_create_conn()` in `socklnd.c` does under its global lock.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use lnd_api::{NetId, Nid};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::wire::{
    ConnReqRepr, ConnType, Endian, HelloDecoder, HelloRepr, WireError, CONNREQ16_SIZE,
    HELLO_V4_SIZE, KSOCK_PROTO_V1, KSOCK_PROTO_V3, KSOCK_PROTO_V4,
};

/// `LNET_PID_USERFLAG`: marks a peer that connected from an unprivileged port.
pub const LNET_PID_USERFLAG: u32 = 0x8000_0000;

/// Who we are on a connection: the NI's NID, our PID and the NI's incarnation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LocalId {
    /// The NI's NID.
    pub nid: Nid,
    /// Our LNet PID (12345).
    pub pid: u32,
    /// The NI's incarnation (wall-clock ns at start-up).
    pub incarnation: u64,
}

/// A peer as identified by a handshake (`lnet_processid` + incarnation).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PeerId {
    /// The peer NI's NID.
    pub nid: Nid,
    /// The peer's PID (with [`LNET_PID_USERFLAG`] for a userspace peer).
    pub pid: u32,
}

impl fmt::Display for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.pid & LNET_PID_USERFLAG != 0 {
            write!(f, "U{}-{}", self.pid & !LNET_PID_USERFLAG, self.nid)
        } else {
            write!(f, "{}-{}", self.pid, self.nid)
        }
    }
}

/// The default protocol for a socket's address family (§5.1).
pub fn default_version(addr: &SocketAddr) -> u32 {
    if addr.is_ipv6() {
        KSOCK_PROTO_V4
    } else {
        KSOCK_PROTO_V3
    }
}

/// Why a handshake failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum HsError {
    /// Socket I/O failed.
    Io(io::Error),
    /// The peer did not answer within the timeout.
    Timeout(Duration),
    /// The peer's bytes were malformed.
    Wire(WireError),
    /// The active side reached somebody else.
    Impostor {
        /// Whom we meant to reach.
        expected: PeerId,
        /// Who answered.
        got: PeerId,
    },
    /// The peer refused: it won a connection race or has that connection
    /// already (`ctype` NONE in our version). Retry later.
    LostRace,
    /// The peer refused and answered in another protocol version: retry in it.
    WantsVersion(u32),
    /// A connection type that is not valid here.
    BadConnType(i32),
    /// A hello whose NIDs do not fit this NI (wrong net, not addressed to us,
    /// ANY).
    BadNid(String),
    /// The passive side refused the hello (answered NONE).
    Refused(&'static str),
    /// A method was called in a state that does not allow it (a bug).
    Illegal(&'static str),
}

impl fmt::Display for HsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HsError::Io(e) => write!(f, "socket error: {e}"),
            HsError::Timeout(d) => write!(f, "no hello within {} s", d.as_secs()),
            HsError::Wire(e) => e.fmt(f),
            HsError::Impostor { expected, got } => write!(
                f,
                "connected to {expected} but it claims to be {got}; check the peer's NID"
            ),
            HsError::LostRace => {
                f.write_str("peer refused the connection (connection race or duplicate)")
            }
            HsError::WantsVersion(v) => write!(f, "peer wants socklnd protocol V{v}"),
            HsError::BadConnType(t) => write!(f, "hello: invalid connection type {t}"),
            HsError::BadNid(s) => f.write_str(s),
            HsError::Refused(why) => write!(f, "refused: {why}"),
            HsError::Illegal(what) => write!(f, "handshake state machine: illegal {what} (bug)"),
        }
    }
}

impl std::error::Error for HsError {}

impl From<WireError> for HsError {
    fn from(e: WireError) -> Self {
        HsError::Wire(e)
    }
}

impl From<io::Error> for HsError {
    fn from(e: io::Error) -> Self {
        HsError::Io(e)
    }
}

/// What the passive side learned from a hello.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerHello {
    /// The peer's identity (overridden for a userspace peer).
    pub peer: PeerId,
    /// Whether the peer connected from an unprivileged port (§5.6 step 2).
    pub userspace: bool,
    /// The peer's incarnation.
    pub incarnation: u64,
    /// The protocol version to speak on this connection.
    pub version: u32,
    /// Our type for this connection (the inverse of the peer's).
    pub ctype: ConnType,
    /// The peer's byte order.
    pub endian: Endian,
}

/// A handshake's states (`Expect*` style).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Active: the connection request and our hello are to be sent.
    SendHello,
    /// Waiting for the peer's hello.
    ExpectHello,
    /// Passive: the hello was judged; waiting for the NI's decision.
    Decide,
    /// Passive: our answer is to be sent; `accept` tells whether the
    /// connection lives afterwards.
    SendAnswer { accept: bool },
    /// The connection carries messages.
    Established,
    /// Refused or failed; close the socket.
    Closed,
}

/// One connection's handshake.
#[derive(Debug)]
pub struct Handshake {
    local: LocalId,
    state: State,
    /// Active: the peer we want, our type and the version we offer.
    active: Option<(PeerId, ConnType)>,
    version: u32,
    /// Passive: the socket's peer address.
    peer_addr: Option<SocketAddr>,
    /// Set once the peer's hello was judged.
    peer: Option<PeerHello>,
}

impl Handshake {
    /// An active handshake to `peer`, creating a connection of type `ctype`
    /// and offering `version`.
    pub fn active(local: LocalId, peer: PeerId, ctype: ConnType, version: u32) -> Self {
        Handshake {
            local,
            state: State::SendHello,
            active: Some((peer, ctype)),
            version,
            peer_addr: None,
            peer: None,
        }
    }

    /// A passive handshake on a socket accepted from `peer_addr`, whose
    /// default version follows the address family.
    pub fn passive(local: LocalId, peer_addr: SocketAddr) -> Self {
        Handshake {
            local,
            state: State::ExpectHello,
            active: None,
            version: default_version(&peer_addr),
            peer_addr: Some(peer_addr),
            peer: None,
        }
    }

    /// Whether the connection is established.
    pub fn is_established(&self) -> bool {
        self.state == State::Established
    }

    /// Whether the handshake ended without a connection.
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// What the peer said, once judged.
    pub fn peer(&self) -> Option<&PeerHello> {
        self.peer.as_ref()
    }

    fn our_hello(&self, dst: Nid, ctype: ConnType) -> HelloRepr {
        HelloRepr {
            version: self.version,
            src_nid: self.local.nid,
            dst_nid: dst,
            src_pid: self.local.pid,
            dst_pid: 0,
            src_incarnation: self.local.incarnation,
            dst_incarnation: 0,
            ctype: ctype.to_wire(),
            nips: 0,
        }
    }

    /// Writes what is to be sent now into `out` (at least
    /// [`MAX_TRANSMIT`] bytes) and returns its length; 0 when nothing is due.
    pub fn poll_transmit(&mut self, out: &mut [u8]) -> Result<usize, HsError> {
        match self.state {
            State::SendHello => {
                let (peer, ctype) = self.active.ok_or(HsError::Illegal("active send"))?;
                let n = ConnReqRepr::to(peer.nid).emit(Endian::Little, out)?;
                let h = self.our_hello(peer.nid, ctype);
                let m = h.emit(Endian::Little, &mut out[n..])?;
                self.state = State::ExpectHello;
                Ok(n + m)
            }
            State::SendAnswer { accept } => {
                let (dst, ctype) = match (&self.peer, accept) {
                    (Some(p), true) => (p.peer.nid, p.ctype),
                    (Some(p), false) => (p.peer.nid, ConnType::None),
                    (None, _) => (Nid::ANY, ConnType::None),
                };
                let h = self.our_hello(dst, ctype);
                let n = h.emit(Endian::Little, out)?;
                self.state = if accept {
                    State::Established
                } else {
                    State::Closed
                };
                Ok(n)
            }
            _ => Ok(0),
        }
    }

    /// Judges the peer's hello. Active side: `Ok` means established.
    /// Passive side: `Ok` gives what the NI needs to decide; then call
    /// [`Handshake::answer`].
    pub fn handle_hello(&mut self, h: &HelloRepr, endian: Endian) -> Result<PeerHello, HsError> {
        if self.state != State::ExpectHello {
            return Err(HsError::Illegal("hello received"));
        }
        let r = match self.active {
            Some((peer, ctype)) => self.judge_active(h, endian, peer, ctype),
            None => self.judge_passive(h, endian),
        };
        match &r {
            Ok(p) => {
                self.peer = Some(*p);
                self.state = if self.active.is_some() {
                    State::Established
                } else {
                    State::Decide
                };
            }
            Err(_) if self.active.is_none() => {
                // The passive side still answers NONE so the peer learns why.
                self.state = State::SendAnswer { accept: false };
            }
            Err(_) => self.state = State::Closed,
        }
        r
    }

    /// Passive: the peer's magic or version was not understood; answer with
    /// our own hello (our default version, type NONE) and close (§5.6
    /// passive step 1).
    pub fn refuse_unknown(&mut self) -> Result<(), HsError> {
        if self.active.is_some() || self.state != State::ExpectHello {
            return Err(HsError::Illegal("refusal of an unknown hello"));
        }
        self.state = State::SendAnswer { accept: false };
        Ok(())
    }

    /// Passive: the NI's decision on a judged hello.
    pub fn answer(&mut self, accept: bool) -> Result<(), HsError> {
        if self.state != State::Decide {
            return Err(HsError::Illegal("answer"));
        }
        self.state = State::SendAnswer { accept };
        Ok(())
    }

    fn judge_active(
        &self,
        h: &HelloRepr,
        endian: Endian,
        want: PeerId,
        ctype: ConnType,
    ) -> Result<PeerHello, HsError> {
        if h.src_nid.is_any() {
            return Err(HsError::BadNid("hello: peer sent NID ANY".into()));
        }
        let got = PeerId {
            nid: h.src_nid,
            pid: h.src_pid,
        };
        let t = ConnType::from_wire(h.ctype).ok_or(HsError::BadConnType(h.ctype))?;
        if t == ConnType::None {
            return Err(if h.version == self.version {
                HsError::LostRace
            } else {
                HsError::WantsVersion(h.version)
            });
        }
        if got != want {
            return Err(HsError::Impostor {
                expected: want,
                got,
            });
        }
        if h.version != self.version {
            return Err(HsError::Wire(WireError::HelloVersion {
                version: h.version,
            }));
        }
        if t.inverse() != Some(ctype) {
            return Err(HsError::BadConnType(h.ctype));
        }
        Ok(PeerHello {
            peer: got,
            userspace: false,
            incarnation: h.src_incarnation,
            version: h.version,
            ctype,
            endian,
        })
    }

    fn judge_passive(&mut self, h: &HelloRepr, endian: Endian) -> Result<PeerHello, HsError> {
        // Answer in the peer's version from now on (V1 included).
        self.version = h.version;
        if h.src_nid.is_any() {
            return Err(HsError::BadNid(
                "hello: peer sent NID ANY; expecting a hello with a NID".into(),
            ));
        }
        let net: NetId = self.local.nid.net();
        if h.src_nid.net() != net {
            return Err(HsError::BadNid(format!(
                "hello: peer NID {} is not on our net {net}",
                h.src_nid
            )));
        }
        if h.version != KSOCK_PROTO_V1 && h.dst_nid != self.local.nid {
            return Err(HsError::BadNid(format!(
                "hello: addressed to {} but this NI is {}",
                h.dst_nid, self.local.nid
            )));
        }
        let t = ConnType::from_wire(h.ctype).ok_or(HsError::BadConnType(h.ctype))?;
        let ctype = t.inverse().ok_or(HsError::BadConnType(h.ctype))?;
        let addr = self
            .peer_addr
            .ok_or(HsError::Illegal("passive without address"))?;
        let userspace = addr.port() > 1023;
        let peer = if userspace {
            PeerId {
                nid: nid_of_addr(net, &addr).ok_or_else(|| {
                    HsError::BadNid(format!("userspace peer {addr}: no NID for this address"))
                })?,
                pid: addr.port() as u32 | LNET_PID_USERFLAG,
            }
        } else {
            PeerId {
                nid: h.src_nid,
                pid: h.src_pid,
            }
        };
        Ok(PeerHello {
            peer,
            userspace,
            incarnation: h.src_incarnation,
            version: h.version,
            ctype,
            endian,
        })
    }
}

/// Room [`Handshake::poll_transmit`] may need.
pub const MAX_TRANSMIT: usize = CONNREQ16_SIZE + HELLO_V4_SIZE;

/// The NID of an IP address on `net`.
pub fn nid_of_addr(net: NetId, addr: &SocketAddr) -> Option<Nid> {
    match addr.ip() {
        std::net::IpAddr::V4(a) => Some(Nid::new4(net, u32::from(a))),
        std::net::IpAddr::V6(a) => match a.to_ipv4_mapped() {
            Some(v4) => Some(Nid::new4(net, u32::from(v4))),
            None => Some(Nid::new16(net, a.octets())),
        },
    }
}

// ---------------------------------------------------------------------------
// Async drivers over the socket seam
// ---------------------------------------------------------------------------

/// Reads one hello with [`HelloDecoder`], all of it within `timeout`.
/// `Err(Wire)` after the magic was seen means "not understood".
pub async fn read_hello<S: AsyncRead + Unpin>(
    s: &mut S,
    timeout: Duration,
) -> Result<(HelloRepr, Endian), HsError> {
    let fut = async {
        let mut d = HelloDecoder::new();
        // Large enough for the biggest step: the V4 body (72) or 16 IPs (64).
        let mut buf = [0u8; HELLO_V4_SIZE];
        loop {
            let w = d.want();
            s.read_exact(&mut buf[..w]).await?;
            if let Some(h) = d.feed(&buf[..w])? {
                return Ok((h, d.endian()));
            }
        }
    };
    match tokio::time::timeout(timeout, fut).await {
        Ok(r) => r,
        Err(_) => Err(HsError::Timeout(timeout)),
    }
}

async fn transmit<S: AsyncWrite + Unpin>(
    s: &mut S,
    hs: &mut Handshake,
    timeout: Duration,
) -> Result<(), HsError> {
    let mut out = [0u8; MAX_TRANSMIT];
    let n = hs.poll_transmit(&mut out)?;
    if n == 0 {
        return Ok(());
    }
    let fut = async {
        s.write_all(&out[..n]).await?;
        s.flush().await
    };
    match tokio::time::timeout(timeout, fut).await {
        Ok(r) => r.map_err(HsError::Io),
        Err(_) => Err(HsError::Timeout(timeout)),
    }
}

/// Runs the active side to the end: sends the connection request and our
/// hello, reads and judges the answer.
pub async fn run_active<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    hs: &mut Handshake,
    timeout: Duration,
) -> Result<PeerHello, HsError> {
    transmit(s, hs, timeout).await?;
    let (h, e) = read_hello(s, timeout).await?;
    hs.handle_hello(&h, e)
}

/// Passive side, first half: reads and judges the peer's hello. On a hello
/// that is not understood or not acceptable, answers NONE itself and
/// returns the error.
pub async fn passive_hello<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    hs: &mut Handshake,
    timeout: Duration,
) -> Result<PeerHello, HsError> {
    let (h, e) = match read_hello(s, timeout).await {
        Ok(v) => v,
        Err(HsError::Wire(w)) => {
            // Tell the peer what we speak (best effort), then fail.
            if hs.refuse_unknown().is_ok() {
                let _ = transmit(s, hs, timeout).await;
            }
            return Err(HsError::Wire(w));
        }
        Err(e) => return Err(e),
    };
    match hs.handle_hello(&h, e) {
        Ok(p) => Ok(p),
        Err(err) => {
            let _ = transmit(s, hs, timeout).await;
            Err(err)
        }
    }
}

/// Passive side, second half: sends the answer the NI decided.
pub async fn passive_answer<S: AsyncWrite + Unpin>(
    s: &mut S,
    hs: &mut Handshake,
    accept: bool,
    timeout: Duration,
) -> Result<(), HsError> {
    hs.answer(accept)?;
    transmit(s, hs, timeout).await
}

#[cfg(test)]
mod tests;
