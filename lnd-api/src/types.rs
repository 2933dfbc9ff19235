//! Plain FFI-safe values exchanged between the host and an LND.

use std::fmt;

use abi_stable::std_types::{ROption, RStr, RString, RVec};
use abi_stable::StableAbi;

use crate::hdr::Hdr;
use crate::mem::{Payload, PayloadSpan};
use crate::nid::{NetId, Nid};

/// Identifies one message while an LND owns it; chosen by the host and handed
/// back unchanged in [`crate::HostHandle::finalize`] (the kernel's `lnet_msg *`).
#[repr(transparent)]
#[derive(StableAbi, Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct MsgToken(pub u64);

/// Identifies one received message inside an LND (the kernel's `private`
/// argument of `lnet_parse`); chosen by the LND and handed back unchanged in
/// [`RxAction::rx`] and [`TxMsg::rx`].
#[repr(transparent)]
#[derive(StableAbi, Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct RxToken(pub u64);

/// LNet health status of a finished message (`enum lnet_msg_hstatus`).
///
/// An open set: values this version does not name are carried unchanged.
#[repr(transparent)]
#[derive(StableAbi, Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct HealthStatus(pub u32);

impl HealthStatus {
    /// No error.
    pub const OK: HealthStatus = HealthStatus(0);
    /// Interrupted locally (NI shut down, aborted by the host).
    pub const LOCAL_INTERRUPT: HealthStatus = HealthStatus(1);
    /// Dropped locally (no resources, fault injection).
    pub const LOCAL_DROPPED: HealthStatus = HealthStatus(2);
    /// Aborted locally.
    pub const LOCAL_ABORTED: HealthStatus = HealthStatus(3);
    /// No route to the peer from this NI.
    pub const LOCAL_NO_ROUTE: HealthStatus = HealthStatus(4);
    /// Any other local error.
    pub const LOCAL_ERROR: HealthStatus = HealthStatus(5);
    /// Timed out before it left this node.
    pub const LOCAL_TIMEOUT: HealthStatus = HealthStatus(6);
    /// The peer reported an error.
    pub const REMOTE_ERROR: HealthStatus = HealthStatus(7);
    /// The peer dropped it.
    pub const REMOTE_DROPPED: HealthStatus = HealthStatus(8);
    /// Sent, but the peer did not answer in time.
    pub const REMOTE_TIMEOUT: HealthStatus = HealthStatus(9);
    /// Lost in the network.
    pub const NETWORK_TIMEOUT: HealthStatus = HealthStatus(10);

    /// Upstream's name (`"local_timeout"`), as `lnetctl` prints it.
    pub const fn name(self) -> &'static str {
        match self.0 {
            0 => "ok",
            1 => "local_interrupt",
            2 => "local_dropped",
            3 => "local_aborted",
            4 => "local_no_route",
            5 => "local_error",
            6 => "local_timeout",
            7 => "remote_error",
            8 => "remote_dropped",
            9 => "remote_timeout",
            10 => "network_timeout",
            _ => "unknown",
        }
    }
}

/// How a message finished: an errno (0 or negative, as `lnet_finalize`'s
/// status) and the health status LNet's health logic acts on.
#[repr(C)]
#[derive(StableAbi, Clone, Copy, PartialEq, Eq, Debug)]
pub struct Completion {
    /// 0 on success, else a negative errno (`-EIO`, `-ETIMEDOUT`, ...).
    pub errno: i32,
    /// Health status; [`HealthStatus::OK`] exactly when `errno == 0`.
    pub health: HealthStatus,
}

impl Completion {
    /// Success.
    pub const OK: Completion = Completion {
        errno: 0,
        health: HealthStatus::OK,
    };

    /// A failure with a negative errno and a health status.
    pub const fn failed(errno: i32, health: HealthStatus) -> Self {
        Completion {
            errno: if errno > 0 { -errno } else { errno },
            health,
        }
    }

    /// Whether the message succeeded.
    pub const fn is_ok(&self) -> bool {
        self.errno == 0
    }
}

/// An error reported across the boundary: a positive errno and a message that
/// says what went wrong and, where it can, what to do.
#[repr(C)]
#[derive(StableAbi, Clone, PartialEq, Eq, Debug)]
pub struct LndError {
    /// Positive errno (`EINVAL`, `ENODEV`, ...).
    pub errno: i32,
    /// Lower-case text without a final period, naming the object concerned.
    pub message: RString,
}

impl LndError {
    /// An error with an errno and a message.
    pub fn new(errno: i32, message: impl Into<String>) -> Self {
        LndError {
            errno: errno.abs(),
            message: RString::from(message.into()),
        }
    }

    /// The operation is not provided by this LND (`EOPNOTSUPP`).
    pub fn unsupported(what: &str) -> Self {
        LndError::new(
            errno::EOPNOTSUPP,
            format!("{what} is not supported by this LND"),
        )
    }

    /// A panic was caught at the boundary.
    pub fn panicked(what: &str, payload: &(dyn std::any::Any + Send)) -> Self {
        let msg = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "non-string panic payload".to_string());
        LndError::new(errno::EFAULT, format!("{what} panicked: {msg}"))
    }
}

impl fmt::Display for LndError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for LndError {}

/// The errno values this crate names (Linux numbering, which LNet reports).
pub mod errno {
    /// Operation not permitted.
    pub const EPERM: i32 = 1;
    /// No such file or directory.
    pub const ENOENT: i32 = 2;
    /// Interrupted.
    pub const EINTR: i32 = 4;
    /// I/O error.
    pub const EIO: i32 = 5;
    /// Out of memory.
    pub const ENOMEM: i32 = 12;
    /// Bad address (used for a caught panic).
    pub const EFAULT: i32 = 14;
    /// Busy.
    pub const EBUSY: i32 = 16;
    /// Already exists.
    pub const EEXIST: i32 = 17;
    /// No such device.
    pub const ENODEV: i32 = 19;
    /// Invalid argument.
    pub const EINVAL: i32 = 22;
    /// Protocol error.
    pub const EPROTO: i32 = 71;
    /// Message too long.
    pub const EMSGSIZE: i32 = 90;
    /// Operation not supported.
    pub const EOPNOTSUPP: i32 = 95;
    /// Network is down.
    pub const ENETDOWN: i32 = 100;
    /// Network unreachable.
    pub const ENETUNREACH: i32 = 101;
    /// Connection aborted.
    pub const ECONNABORTED: i32 = 103;
    /// Connection reset.
    pub const ECONNRESET: i32 = 104;
    /// Timed out.
    pub const ETIMEDOUT: i32 = 110;
    /// Connection refused.
    pub const ECONNREFUSED: i32 = 111;
    /// Host unreachable.
    pub const EHOSTUNREACH: i32 = 113;
    /// Stale (peer restarted).
    pub const ESTALE: i32 = 116;
    /// Canceled.
    pub const ECANCELED: i32 = 125;
}

/// A named string value: an LND tunable (`conns_per_peer`) or a module
/// parameter (`accept_port`).
#[repr(C)]
#[derive(StableAbi, Clone, PartialEq, Eq, Debug)]
pub struct Tunable {
    /// The upstream name.
    pub name: RString,
    /// The value as text.
    pub value: RString,
}

impl Tunable {
    /// A tunable from a name and a value.
    pub fn new(name: impl Into<String>, value: impl ToString) -> Self {
        Tunable {
            name: RString::from(name.into()),
            value: RString::from(value.to_string()),
        }
    }
}

/// Looks a name up in a list of tunables.
pub fn tunable<'a>(list: &'a [Tunable], name: &str) -> Option<&'a str> {
    list.iter()
        .find(|t| t.name.as_str() == name)
        .map(|t| t.value.as_str())
}

/// The per-net tunables of `lnetctl net add` (`struct lnet_ioctl_config_lnd_cmn_tunables`);
/// -1 means "not set, use the LND's default".
#[repr(C)]
#[derive(StableAbi, Clone, Copy, PartialEq, Eq, Debug)]
pub struct NetTunables {
    /// `peer_timeout`, seconds.
    pub peer_timeout: i32,
    /// `peer_credits`: concurrent sends to one peer NI.
    pub peer_credits: i32,
    /// `peer_buffer_credits`: router buffers one peer may hold.
    pub peer_buffer_credits: i32,
    /// `credits`: concurrent sends on the NI.
    pub credits: i32,
}

impl NetTunables {
    /// All unset.
    pub const UNSET: NetTunables = NetTunables {
        peer_timeout: -1,
        peer_credits: -1,
        peer_buffer_credits: -1,
        credits: -1,
    };
}

impl Default for NetTunables {
    fn default() -> Self {
        Self::UNSET
    }
}

/// What the host asks an LND to bring up (`lnd_startup(ni)`).
#[repr(C)]
#[derive(StableAbi, Clone, Debug)]
pub struct NiConfig {
    /// The network of the NI (`tcp1`).
    pub net: NetId,
    /// Interfaces named by the user (`--if`), maybe empty.
    pub interfaces: RVec<RString>,
    /// Net tunables; unset ones are filled by the LND.
    pub tunables: NetTunables,
    /// LND tunables given by the user (`conns_per_peer`, `tos`, ...).
    pub lnd_tunables: RVec<Tunable>,
    /// Module parameters of the node (`accept_port`, `sock_timeout`, ...).
    pub params: RVec<Tunable>,
    /// This node's LNet PID (12345).
    pub pid: u32,
}

/// What an LND reports about an NI it brought up.
#[repr(C)]
#[derive(StableAbi, Clone, Debug)]
pub struct NiInfo {
    /// The NI's NID.
    pub nid: Nid,
    /// Interfaces in use.
    pub interfaces: RVec<RString>,
    /// Net tunables with every value set.
    pub tunables: NetTunables,
    /// LND tunables in effect, for `net show -v`.
    pub lnd_tunables: RVec<Tunable>,
    /// LND timeout in seconds (`get_timeout`), enters message deadlines.
    pub timeout_secs: u32,
}

/// A message to transmit (`lnd_send`).
#[repr(C)]
#[derive(StableAbi, Clone, Debug)]
pub struct TxMsg {
    /// Hand back in `finalize`.
    pub token: MsgToken,
    /// The header to send.
    pub hdr: Hdr,
    /// The next hop (the peer NI the LND sends to; may differ from `hdr.dest_nid`).
    pub target: Nid,
    /// The next hop's PID.
    pub target_pid: u32,
    /// `hdr.payload_length` bytes, valid until `finalize`.
    pub payload: Payload,
    /// For a REPLY to a GET parsed with `rdma_req`: that GET's receive token.
    pub rx: ROption<RxToken>,
}

impl TxMsg {
    /// The message without its `payload`, and the payload as a span (one
    /// allocation, to share the fragment list; none when it is empty): what
    /// an LND's `send` does to hand a 1.0-style message to its `send_span`.
    pub fn split_payload(mut self) -> (TxMsg, PayloadSpan) {
        let payload = PayloadSpan::from(std::mem::take(&mut self.payload));
        (self, payload)
    }
}

/// What to do with a received message's payload (`lnd_recv`).
#[repr(C)]
#[derive(StableAbi, Clone, Debug)]
pub struct RxAction {
    /// The token the LND gave in `parse`.
    pub rx: RxToken,
    /// `Some`: deliver into `payload`, then `finalize` this token.
    /// `None`: discard all `rlen` bytes, no completion.
    pub msg: ROption<MsgToken>,
    /// Where the first `payload.len()` bytes (mlen) go.
    pub payload: Payload,
    /// Bytes of payload on the wire (the rest after mlen are skipped).
    pub rlen: u32,
    /// The call comes after `parse` returned (the message had to wait).
    pub delayed: bool,
}

impl RxAction {
    /// The action without its `payload`, and the payload as a span: see
    /// [`TxMsg::split_payload`].
    pub fn split_payload(mut self) -> (RxAction, PayloadSpan) {
        let payload = PayloadSpan::from(std::mem::take(&mut self.payload));
        (self, payload)
    }
}

/// A network type a plugin provides.
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug)]
pub struct NetTypeDesc {
    /// The name in NIDs (`tcp`).
    pub name: RStr<'static>,
    /// The LND type number (`SOCKLND` = 2).
    pub lnd_type: u8,
}

/// Log levels of [`crate::HostHandle::log`].
#[repr(transparent)]
#[derive(StableAbi, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub struct LogLevel(pub u8);

impl LogLevel {
    /// Something failed.
    pub const ERROR: LogLevel = LogLevel(1);
    /// Something is wrong but work goes on.
    pub const WARN: LogLevel = LogLevel(2);
    /// Notable events (connections).
    pub const INFO: LogLevel = LogLevel(3);
    /// Details.
    pub const DEBUG: LogLevel = LogLevel(4);
    /// Per-message traces.
    pub const TRACE: LogLevel = LogLevel(5);
}

/// What an LND knows of a peer's aliveness (`query`).
#[repr(C)]
#[derive(StableAbi, Clone, Copy, PartialEq, Eq, Debug)]
pub struct PeerAliveness {
    /// `Some(true)` connected/alive, `Some(false)` known dead, `None` unknown.
    pub alive: ROption<bool>,
    /// Seconds since traffic was last received from it, if ever.
    pub last_alive_secs_ago: ROption<u64>,
}

impl PeerAliveness {
    /// Nothing known.
    pub const UNKNOWN: PeerAliveness = PeerAliveness {
        alive: ROption::RNone,
        last_alive_secs_ago: ROption::RNone,
    };
}
