//! The control-socket protocol: JSON lines over a Unix stream socket.
//!
//! Each request is one line holding a [`Request`] (a protocol version and an
//! [`Op`]); the daemon answers each with one line holding a [`Reply`]. A
//! request whose version differs from [`PROTOCOL_VERSION`] is answered with an
//! error that names both versions. [`decode_request`] never panics, whatever
//! the bytes.

use lnd_api::Nid;
use serde::{Deserialize, Serialize};

use crate::errno;
use crate::serde_ids::serde_nid;

/// The protocol version spoken by this build; bumped on any incompatible change.
pub const PROTOCOL_VERSION: u32 = 1;

/// Longest request line the daemon accepts (bytes, newline excluded).
pub const MAX_REQUEST_LEN: usize = 1 << 20;

/// One request: the protocol version and what to do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// The sender's [`PROTOCOL_VERSION`].
    pub version: u32,
    /// The operation.
    pub op: Op,
}

impl Request {
    /// A request of this build's protocol version.
    pub fn new(op: Op) -> Self {
        Request {
            version: PROTOCOL_VERSION,
            op,
        }
    }
}

/// What a request asks the daemon to do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Op {
    /// Is anybody there? Answered with [`ReplyBody::Hello`].
    Hello,
    /// `lnet configure [--all]`.
    Configure {
        /// Also bring up the start-up networks (`networks=`, `ip2nets=`, `routes=`).
        all: bool,
    },
    /// `lnet unconfigure`: shut every NI down; the daemon stays, unconfigured.
    Unconfigure,
    /// `net add`.
    NetAdd(NetAddRequest),
    /// `net del --net NET`.
    NetDel {
        /// The network name (`tcp1`, or a plugin's own type).
        net: String,
    },
    /// `net show [--net NET]`: every net, or one.
    NetShow {
        /// Only the net of this name.
        #[serde(default)]
        net: Option<String>,
    },
    /// `plugin load PATH|NAME`: an absolute path, or a bare name looked up in
    /// the daemon's plugin path.
    PluginLoad {
        /// Absolute path or bare name.
        path: String,
    },
    /// `plugin unload NAME`.
    PluginUnload {
        /// The plugin's name.
        name: String,
        /// First delete the nets whose NIs use it (`--force`).
        #[serde(default)]
        force: bool,
    },
    /// `plugin show`.
    PluginShow,
    /// `ping NID...`.
    Ping(PingRequest),
    /// `stats show`.
    StatsShow,
    /// A selftest console command (`lst`).
    Lst(crate::lst::LstRequest),
    // --- issue 13 (routing): crate::route ---
    /// `route add`.
    RouteAdd(crate::route::RouteAddRequest),
    /// `route del`.
    RouteDel(crate::route::RouteDelRequest),
    /// `route show` (filters are applied by the client).
    RouteShow,
    /// `routing show`.
    RoutingShow,
    /// `set routing 0|1`.
    RoutingSet {
        /// Enable or disable forwarding.
        enable: bool,
    },
    /// `set tiny_buffers|small_buffers|large_buffers N`.
    RouterBuffersSet {
        /// `tiny`, `small` or `large`.
        pool: String,
        /// Total over all CPTs (0 = default).
        value: i64,
    },
    /// Peers, discovery, recovery queues (`crate::peer`).
    Peer(crate::peer::PeerRequest),
    /// `fault drop|delay add|del|show|reset`, for the fault plugin.
    Fault(crate::fault::FaultRequest),
    // --- issue 16 (lnetctl complete): one line per request kind ---
    /// `global show` (also the `global:` part of `export`).
    GlobalShow,
    /// `set <tunable> <value>` for a global tunable (lnetctl.md §2.8).
    GlobalSet(GlobalSetRequest),
    /// `stats reset`: zero the global, per-NI and per-peer-NI counters.
    StatsReset,
    /// `net del --nid NID` / `net del --net NET --if IF[,IF]`.
    NiDel(NiDelRequest),
    /// `net set --net N --lnd-timeout S` / `--conns-per-peer N --all|--nid NID`.
    NetSet(NetSetRequest),
    /// `udsp add`: insert a rule at `idx` (append when `None`).
    UdspAdd {
        /// The rule.
        rule: UdspRule,
        /// Insert position.
        #[serde(default)]
        idx: Option<u32>,
    },
    /// `udsp del --idx N` (`None`: `--all`).
    UdspDel {
        /// The rule to delete; every rule when `None`.
        idx: Option<u32>,
    },
    /// `udsp show [--idx N]`.
    UdspShow {
        /// Only this rule.
        #[serde(default)]
        idx: Option<u32>,
    },
    /// `debug nidlist NIDLIST [NID]`: parse a server-style NID range list
    /// (semantics.md §14.2) and match `nid` against it. Answered whether or
    /// not LNet is configured.
    DebugNidlist {
        /// The list as typed.
        list: String,
        /// A NID to match, as typed.
        #[serde(default)]
        nid: Option<String>,
    },
    /// `cpt-of-nid NID...`: the CPU partition of each NID.
    CptOfNid {
        /// The NIDs, as typed (the daemon parses them with its net types).
        nids: Vec<String>,
    },
    /// `service-id`: the o2ib LND's service port.
    ServicePort,
    /// `lctl get_param`: the module parameters lnetd was started with and
    /// those of its loaded plugins, with the values in use.
    ParamShow,
    /// `debug peer --nid NID`: write the peer's state to lnetd's log.
    DebugPeer {
        /// A NID of the peer.
        #[serde(with = "serde_nid")]
        nid: Nid,
    },
}

/// A User Defined Selection Policy rule (semantics.md §12), its descriptors
/// in canonical text (`tcp`, `10.1.1.*@tcp`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UdspRule {
    /// Local net/NIs.
    #[serde(default)]
    pub src: Option<String>,
    /// Peer net/NIs.
    #[serde(default)]
    pub dst: Option<String>,
    /// Routers.
    #[serde(default)]
    pub rte: Option<String>,
    /// PRIORITY action (0 = highest); `None` for preference rules (src+dst, dst+rte).
    #[serde(default)]
    pub priority: Option<u32>,
}

/// `set <tunable> <value>`: the tunable by its lnetctl name and the value as
/// parsed (strtol); the daemon validates it (lnetctl.md §2.8).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GlobalSetRequest {
    /// The `set` sub-command (`retry_count`, `discovery`...).
    pub name: String,
    /// The value.
    pub value: i64,
}

/// Deleting NIs rather than a whole net.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NiDelRequest {
    /// The net of `--if` (`None` with `--nid`).
    #[serde(default)]
    pub net: Option<String>,
    /// Interfaces of that net whose NIs go.
    #[serde(default)]
    pub interfaces: Vec<String>,
    /// NIs to delete, by NID.
    #[serde(with = "serde_nid::vec", default)]
    pub nids: Vec<Nid>,
}

/// `net set`: the LND timeout of a net's LND, or `conns_per_peer` or the
/// health value of some NIs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetSetRequest {
    /// `--net` (with `--lnd-timeout`).
    #[serde(default)]
    pub net: Option<String>,
    /// `--lnd-timeout`, seconds (0 = follow the global `lnd_timeout`).
    #[serde(default)]
    pub lnd_timeout: Option<u32>,
    /// `--nid`: the NI to change.
    #[serde(with = "serde_nid::opt", default)]
    pub nid: Option<Nid>,
    /// `--all`: every NI.
    #[serde(default)]
    pub all: bool,
    /// `--conns-per-peer` (0..=127).
    #[serde(default)]
    pub conns_per_peer: Option<u32>,
    /// `--health` (0..=1000, with `--nid` or `--all`).
    #[serde(default)]
    pub health: Option<u32>,
}

/// A `net add` request, validated by the client.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetAddRequest {
    /// The network name (`tcp1`, or a plugin's own type such as `vnd2`):
    /// only the daemon knows the types its plugins provide.
    pub net: String,
    /// Interfaces, one NI each (at least one).
    pub interfaces: Vec<String>,
    /// `peer_timeout` (given only when ≥ 0).
    pub peer_timeout: Option<i32>,
    /// `peer_credits` (given only when > 0).
    pub peer_credits: Option<i32>,
    /// `peer_buffer_credits` (given only when > 0).
    pub peer_buffer_credits: Option<i32>,
    /// `credits` (given only when > 0).
    pub credits: Option<i32>,
    /// `conns_per_peer` (given only when > 0).
    pub conns_per_peer: Option<i32>,
    /// `tos` (given only when ≥ 0).
    pub tos: Option<i32>,
    /// `--nid`: NIs given by NID (the net is `net`; the daemon binds each to
    /// the interface owning its address).
    #[serde(with = "serde_nid::vec", default)]
    pub nids: Vec<Nid>,
    /// `--cpt`: CPTs of every NI without its own (`eth0[0,1]`) list.
    #[serde(default)]
    pub cpts: Option<Vec<u32>>,
    /// Per-interface CPT lists (`eth0[0,1]`), parallel to `interfaces`.
    #[serde(default)]
    pub interface_cpts: Vec<Option<Vec<u32>>>,
    /// ip2nets rules (`--ip2net`, an `ip2nets:` section): the daemon
    /// resolves them against its interfaces; `net` and `interfaces` are
    /// then unused.
    #[serde(default)]
    pub ip2nets: Vec<Ip2NetsRule>,
}

/// One ip2nets rule (lnetctl.md §4.3): a net, optional interfaces and
/// optional address patterns (`192.168.0.[2,4]`, `10.0.*.*`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ip2NetsRule {
    /// The net (`tcp1`).
    pub net: String,
    /// Interfaces (each must exist, be up and match a range if any).
    #[serde(default)]
    pub interfaces: Vec<String>,
    /// Address patterns.
    #[serde(default)]
    pub ip_ranges: Vec<String>,
}

/// A `ping` request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PingRequest {
    /// The targets, in order.
    #[serde(with = "serde_nid::vec")]
    pub targets: Vec<Nid>,
    /// Force this local NI.
    #[serde(with = "serde_nid::opt", default)]
    pub source: Option<Nid>,
    /// Timeout in milliseconds; `None` lets the daemon use its default.
    pub timeout_ms: Option<u64>,
}

/// One reply: the daemon's protocol version and the outcome.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    /// The daemon's [`PROTOCOL_VERSION`].
    pub version: u32,
    /// What happened.
    pub result: Result<ReplyBody, ErrorReply>,
}

impl Reply {
    /// A success.
    pub fn ok(body: ReplyBody) -> Self {
        Reply {
            version: PROTOCOL_VERSION,
            result: Ok(body),
        }
    }

    /// A failure with a positive errno and a message.
    pub fn err(errno: i32, message: impl Into<String>) -> Self {
        Reply {
            version: PROTOCOL_VERSION,
            result: Err(ErrorReply {
                errno,
                message: message.into(),
            }),
        }
    }
}

/// A failed request: a positive errno and a message for the user.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorReply {
    /// Positive errno (Linux numbering).
    pub errno: i32,
    /// Lowercase, names the object, says what to do.
    pub message: String,
}

/// What a successful request returns.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ReplyBody {
    /// Nothing to report.
    Done,
    /// Answer to [`Op::Hello`].
    Hello(DaemonInfo),
    /// The NIDs of the NIs a `net add` created.
    NetAdded(#[serde(with = "serde_nid::vec")] Vec<Nid>),
    /// `net show`.
    Nets(Vec<NetInfo>),
    /// A plugin that was loaded or unloaded.
    Plugin(PluginInfo),
    /// `plugin show`.
    Plugins(Vec<PluginInfo>),
    /// `ping`: one outcome per target, in request order.
    Ping(Vec<PingOutcome>),
    /// `stats show`.
    Stats(StatsInfo),
    /// The result of a selftest console command.
    Lst(crate::lst::LstReply),
    // --- issue 13 (routing) ---
    /// `route show`.
    Routes(Vec<crate::route::RouteInfo>),
    /// `routing show` (`None`: no pools yet).
    Routing(Option<crate::route::RoutingInfo>),
    /// The answer to an [`Op::Peer`] request.
    Peer(crate::peer::PeerReply),
    /// The fault plugin's answer (`fault … show` prints it as is).
    Fault(String),
    // --- issue 16 ---
    /// `global show`.
    Global(GlobalInfo),
    /// `udsp show`: (index, rule) in index order.
    Udsp(Vec<(u32, UdspRule)>),
    /// `debug nidlist`: the canonical form of the list, and whether the
    /// NID matched (when one was given).
    Nidlist {
        /// The list as `cfs_print_nidlist()` prints it.
        canonical: String,
        /// The NID as printed and whether it matched.
        #[serde(default)]
        matched: Option<(String, bool)>,
    },
    /// `cpt-of-nid`: (NID as printed, CPT) in request order.
    Cpts(Vec<(String, u32)>),
    /// `service-id`: the o2ib service port.
    ServicePort(u16),
    /// `ParamShow`: one entry per parameter.
    Params(Vec<ParamValue>),
}

/// A module parameter and the value lnetd uses (`lctl get_param`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParamValue {
    /// The module (`lnet`, `libcfs`, `ksocklnd`, `ko2iblnd`, a vendor's).
    pub module: String,
    /// The parameter (`accept_port`, `sock_timeout`).
    pub name: String,
    /// Its value, as text.
    pub value: String,
    /// Given at start-up (`false`: the declared default).
    pub given: bool,
}

/// The global tunables as `global show` prints them (lnetctl.md §2.9), in
/// its key order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)] // field names are upstream's keys, documented in lnetctl.md §2.9
pub struct GlobalInfo {
    pub numa_range: i64,
    pub max_interfaces: i64,
    pub discovery: i64,
    pub drop_asym_route: i64,
    pub retry_count: i64,
    pub transaction_timeout: i64,
    pub health_sensitivity: i64,
    pub recovery_interval: i64,
    pub router_sensitivity: i64,
    pub lnd_timeout: i64,
    pub response_tracking: i64,
    pub recovery_limit: i64,
    pub max_recovery_ping_interval: i64,
}

impl Default for GlobalInfo {
    /// Upstream's defaults.
    fn default() -> Self {
        GlobalInfo {
            numa_range: 0,
            max_interfaces: 4096,
            discovery: 1,
            drop_asym_route: 0,
            retry_count: 2,
            transaction_timeout: 150,
            health_sensitivity: 100,
            recovery_interval: 1,
            router_sensitivity: 100,
            lnd_timeout: 49,
            response_tracking: 3,
            recovery_limit: 0,
            max_recovery_ping_interval: 900,
        }
    }
}

/// Who answers on the socket.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaemonInfo {
    /// The daemon's process id.
    pub pid: u32,
    /// The daemon's package version.
    pub version: String,
    /// Whether LNet is configured (`lnet configure` was run).
    pub configured: bool,
    /// Network types that loaded plugins provide beyond lnd-api's name table
    /// (name, LND type), to print and parse their NIDs (`1@vnd`).
    #[serde(default)]
    pub net_types: Vec<(String, u8)>,
}

/// One net as `net show` reports it (lnet-core's `NetShow`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetInfo {
    /// The network's name as printed (`tcp1`).
    pub name: String,
    /// Its NIs in creation order.
    pub nis: Vec<NiInfo>,
}

/// Latency samples of one kind, nanoseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LatencyInfo {
    /// Number of samples.
    pub samples: u64,
    /// Minimum.
    pub min_nsec: u64,
    /// Maximum.
    pub max_nsec: u64,
    /// Average.
    pub avg_nsec: u64,
}

/// Message counts by type.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MsgCounts {
    /// PUTs.
    pub put: u64,
    /// GETs.
    pub get: u64,
    /// REPLYs.
    pub reply: u64,
    /// ACKs.
    pub ack: u64,
    /// HELLOs.
    pub hello: u64,
}

/// NI health (`health stats`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthInfo {
    /// `fatal_error`.
    pub fatal_error: u64,
    /// `health value`, 0..=1000.
    pub value: u32,
    /// `interrupts`.
    pub interrupts: u64,
    /// `dropped`.
    pub dropped: u64,
    /// `aborted`.
    pub aborted: u64,
    /// `no route`.
    pub no_route: u64,
    /// `timeouts`.
    pub timeouts: u64,
    /// `error`.
    pub error: u64,
    /// `ping_count`.
    pub ping_count: u64,
    /// `next_ping`, seconds.
    pub next_ping: u64,
}

/// Net tunables in force.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TunablesInfo {
    /// `peer_timeout`, seconds.
    pub peer_timeout: i32,
    /// `peer_credits`.
    pub peer_credits: i32,
    /// `peer_buffer_credits`.
    pub peer_buffer_credits: i32,
    /// `credits`.
    pub credits: i32,
}

/// One NI as `net show` reports it (lnet-core's `NiShow`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NiInfo {
    /// Its NID.
    #[serde(with = "serde_nid")]
    pub nid: Nid,
    /// `up` or `down`.
    pub up: bool,
    /// Interfaces (empty for lo).
    pub interfaces: Vec<String>,
    /// Messages sent.
    pub send_count: u64,
    /// Messages received.
    pub recv_count: u64,
    /// Messages dropped.
    pub drop_count: u64,
    /// PUT egress latency.
    pub put_egress: LatencyInfo,
    /// GET round trips.
    pub get_rtt: LatencyInfo,
    /// PUT to ACK round trips.
    pub put_ack: LatencyInfo,
    /// Sent by type.
    pub sent: MsgCounts,
    /// Received by type.
    pub received: MsgCounts,
    /// Dropped by type.
    pub dropped: MsgCounts,
    /// Health.
    pub health: HealthInfo,
    /// UDSP net priority (-1: no rule).
    pub net_priority: i32,
    /// UDSP NID priority (-1: no rule).
    pub nid_priority: i32,
    /// Net tunables in force.
    pub tunables: TunablesInfo,
    /// LND tunables in force, in the LND's order.
    pub lnd_tunables: Vec<(String, String)>,
    /// Device CPT, -1 if unknown.
    pub dev_cpt: i32,
    /// CPTs the NI is bound to.
    pub cpts: Vec<u32>,
    /// Tx credits now.
    pub tx_credits: i64,
    /// Lowest tx credits seen.
    pub min_tx_credits: i64,
}

/// A plugin as `plugin show` reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginInfo {
    /// Its name.
    pub name: String,
    /// Its own version.
    pub version: String,
    /// The lnd-api version it was built against.
    pub abi_version: String,
    /// Network types it provides (`tcp`).
    pub net_types: Vec<String>,
    /// The file it was loaded from (`None` for built-ins).
    pub path: Option<String>,
    /// Whether it is compiled into lnetd.
    pub builtin: bool,
    /// `active` or `inactive` (unloaded; its code stays mapped).
    pub state: String,
    /// NIs started through it.
    #[serde(with = "serde_nid::vec")]
    pub nis: Vec<Nid>,
}

/// The outcome of pinging one target.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PingOutcome {
    /// The target as requested.
    #[serde(with = "serde_nid")]
    pub target: Nid,
    /// The peer's answer, or why there was none.
    pub result: Result<PingInfo, ErrorReply>,
}

/// A peer's ping answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PingInfo {
    /// The peer's primary NID.
    #[serde(with = "serde_nid")]
    pub primary_nid: Nid,
    /// The peer's LNet PID.
    pub pid: u32,
    /// Whether the peer is Multi-Rail capable.
    pub multi_rail: bool,
    /// The NIDs the peer advertised (0@lo excluded), in reply order.
    #[serde(with = "serde_nid::vec")]
    pub nids: Vec<Nid>,
}

/// Global LNet counters (`stats show`, `struct lnet_counters`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)] // field names are upstream's keys, documented in lnetctl.md §2.10
pub struct StatsInfo {
    pub msgs_alloc: u64,
    pub msgs_max: u64,
    pub rst_alloc: u64,
    pub errors: u64,
    pub send_count: u64,
    pub resend_count: u64,
    pub response_timeout_count: u64,
    pub local_interrupt_count: u64,
    pub local_dropped_count: u64,
    pub local_aborted_count: u64,
    pub local_no_route_count: u64,
    pub local_timeout_count: u64,
    pub local_error_count: u64,
    pub remote_dropped_count: u64,
    pub remote_error_count: u64,
    pub remote_timeout_count: u64,
    pub network_timeout_count: u64,
    pub failed_resends: u64,
    pub successful_resends: u64,
    pub recv_count: u64,
    pub route_count: u64,
    pub drop_count: u64,
    pub send_length: u64,
    pub recv_length: u64,
    pub route_length: u64,
    pub drop_length: u64,
}

/// Why a request line could not be decoded; answered as an error reply.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// Not a JSON object with a numeric `version`.
    #[error("malformed request: {0}; lnetctl and lnetd must come from the same build")]
    Malformed(String),
    /// A request of another protocol version.
    #[error(
        "protocol version mismatch: the client speaks version {client}, lnetd speaks version \
         {daemon}; use lnetctl and lnetd from the same build"
    )]
    VersionMismatch {
        /// The version in the request.
        client: u64,
        /// This build's version.
        daemon: u32,
    },
    /// Longer than [`MAX_REQUEST_LEN`].
    #[error("request too long ({0} bytes, at most {MAX_REQUEST_LEN})")]
    TooLong(usize),
}

impl DecodeError {
    /// The errno of the error reply.
    pub fn errno(&self) -> i32 {
        match self {
            DecodeError::Malformed(_) | DecodeError::TooLong(_) => errno::EINVAL,
            DecodeError::VersionMismatch { .. } => errno::EPROTO,
        }
    }

    /// The error reply to send back.
    pub fn to_reply(&self) -> Reply {
        Reply::err(self.errno(), self.to_string())
    }
}

/// Decodes one request line (without its newline). Checks the length, then
/// the version, then the operation; never panics.
pub fn decode_request(line: &[u8]) -> Result<Request, DecodeError> {
    if line.len() > MAX_REQUEST_LEN {
        return Err(DecodeError::TooLong(line.len()));
    }
    let value: serde_json::Value =
        serde_json::from_slice(line).map_err(|e| DecodeError::Malformed(e.to_string()))?;
    let version = value
        .get("version")
        .and_then(serde_json::Value::as_u64)
        .ok_or_else(|| DecodeError::Malformed("no protocol version".to_string()))?;
    if version != u64::from(PROTOCOL_VERSION) {
        return Err(DecodeError::VersionMismatch {
            client: version,
            daemon: PROTOCOL_VERSION,
        });
    }
    serde_json::from_value(value).map_err(|e| DecodeError::Malformed(e.to_string()))
}

/// One request as a line, newline included.
pub fn encode_request(req: &Request) -> Vec<u8> {
    encode_line(req)
}

/// One reply as a line, newline included.
pub fn encode_reply(reply: &Reply) -> Vec<u8> {
    encode_line(reply)
}

fn encode_line<T: Serialize>(v: &T) -> Vec<u8> {
    // Our types serialize infallibly (string keys, no maps with non-string keys).
    let mut out = serde_json::to_vec(v).unwrap_or_else(|e| {
        format!(
            "{{\"version\":{PROTOCOL_VERSION},\"result\":{{\"Err\":{{\"errno\":{},\"message\":{:?}}}}}}}",
            errno::EIO,
            format!("cannot encode message: {e}")
        )
        .into_bytes()
    });
    out.push(b'\n');
    out
}

/// Decodes one reply line; a reply of another version is an error naming both.
pub fn decode_reply(line: &[u8]) -> Result<Reply, DecodeError> {
    let value: serde_json::Value =
        serde_json::from_slice(line).map_err(|e| DecodeError::Malformed(e.to_string()))?;
    let version = value
        .get("version")
        .and_then(serde_json::Value::as_u64)
        .ok_or_else(|| DecodeError::Malformed("no protocol version in reply".to_string()))?;
    if version != u64::from(PROTOCOL_VERSION) {
        return Err(DecodeError::VersionMismatch {
            client: u64::from(PROTOCOL_VERSION),
            daemon: u32::try_from(version).unwrap_or(u32::MAX),
        });
    }
    serde_json::from_value(value).map_err(|e| DecodeError::Malformed(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use lnd_api::{lnd_type, NetId};

    fn tcp(n: u16) -> NetId {
        NetId::new(lnd_type::SOCKLND, n)
    }

    #[test]
    fn requests_round_trip() {
        let ops = vec![
            Op::Hello,
            Op::Configure { all: true },
            Op::Unconfigure,
            Op::NetAdd(NetAddRequest {
                net: "tcp1".into(),
                interfaces: vec!["eth0".into(), "eth1".into()],
                peer_timeout: Some(0),
                peer_credits: None,
                peer_buffer_credits: None,
                credits: Some(512),
                conns_per_peer: Some(2),
                tos: None,
                nids: vec![Nid::new4(tcp(1), 0x0a00_0001)],
                cpts: Some(vec![0]),
                interface_cpts: vec![None, Some(vec![0, 1])],
                ip2nets: vec![Ip2NetsRule {
                    net: "tcp".into(),
                    interfaces: vec![],
                    ip_ranges: vec!["10.0.0.*".into()],
                }],
            }),
            Op::NetDel { net: "tcp1".into() },
            Op::GlobalShow,
            Op::GlobalSet(GlobalSetRequest {
                name: "retry_count".into(),
                value: -1,
            }),
            Op::StatsReset,
            Op::NiDel(NiDelRequest {
                net: Some("tcp".into()),
                interfaces: vec!["eth0".into()],
                nids: vec![],
            }),
            Op::UdspAdd {
                rule: UdspRule {
                    src: Some("tcp".into()),
                    dst: None,
                    rte: None,
                    priority: Some(1),
                },
                idx: Some(0),
            },
            Op::UdspDel { idx: None },
            Op::UdspShow { idx: Some(2) },
            Op::NetSet(NetSetRequest {
                net: None,
                lnd_timeout: None,
                nid: Some(Nid::new4(tcp(0), 1)),
                all: false,
                conns_per_peer: Some(3),
                health: Some(0),
            }),
            Op::DebugNidlist {
                list: "10.[1,3].0.*@o2ib1".into(),
                nid: Some("10.1.0.7@o2ib1".into()),
            },
            Op::CptOfNid {
                nids: vec!["1.2.3.4@tcp".into()],
            },
            Op::ServicePort,
            Op::DebugPeer {
                nid: Nid::new4(tcp(0), 9),
            },
            Op::NetShow { net: None },
            Op::NetShow {
                net: Some("vnd2".into()),
            },
            Op::PluginLoad {
                path: "/x/liblnd_sock.so".into(),
            },
            Op::PluginUnload {
                name: "sock".into(),
                force: true,
            },
            Op::PluginShow,
            Op::Ping(PingRequest {
                targets: vec![Nid::LO_0, Nid::new4(tcp(0), 0x0a00_0001)],
                source: Some(Nid::LO_0),
                timeout_ms: Some(5000),
            }),
            Op::StatsShow,
        ];
        for op in ops {
            let req = Request::new(op);
            let line = encode_request(&req);
            assert_eq!(line.last(), Some(&b'\n'));
            let back = decode_request(&line[..line.len() - 1]).expect("decodes");
            assert_eq!(back, req);
        }
    }

    #[test]
    fn replies_round_trip() {
        let r = Reply::ok(ReplyBody::Ping(vec![
            PingOutcome {
                target: Nid::LO_0,
                result: Ok(PingInfo {
                    primary_nid: Nid::LO_0,
                    pid: 12345,
                    multi_rail: true,
                    nids: vec![],
                }),
            },
            PingOutcome {
                target: Nid::LO_0,
                result: Err(ErrorReply {
                    errno: 110,
                    message: "x".into(),
                }),
            },
        ]));
        let line = encode_reply(&r);
        assert_eq!(decode_reply(&line).expect("decodes"), r);
    }

    #[test]
    fn version_mismatch_is_named() {
        let e = decode_request(br#"{"version":7,"op":"hello"}"#).expect_err("refused");
        assert_eq!(e.errno(), errno::EPROTO);
        let text = e.to_string();
        assert!(
            text.contains("version 7") && text.contains("version 1"),
            "{text}"
        );
        let e = decode_request(br#"{"op":"hello"}"#).expect_err("refused");
        assert!(matches!(e, DecodeError::Malformed(_)));
        let e = decode_reply(br#"{"version":2,"result":{"Ok":"done"}}"#).expect_err("refused");
        assert!(matches!(e, DecodeError::VersionMismatch { daemon: 2, .. }));
    }

    #[test]
    fn bad_nid_in_request_is_malformed() {
        let e = decode_request(
            br#"{"version":1,"op":{"ping":{"targets":["1.2.3@tcp"],"timeout_ms":null}}}"#,
        )
        .expect_err("refused");
        assert!(e.to_string().contains("invalid NID"), "{e}");
    }

    #[test]
    fn garbage_never_panics() {
        // A small xorshift generator: deterministic, no extra dependency.
        let mut s: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        let seeds: [&[u8]; 4] = [
            br#"{"version":1,"op":{"net_add":{"net":"tcp","interfaces":["eth0"]}}}"#,
            br#"{"version":1,"op":{"ping":{"targets":["0@lo"]}}}"#,
            br#"{"version":1,"op":"hello"}"#,
            b"",
        ];
        for i in 0..20_000 {
            let len = (next() % 200) as usize;
            let mut buf: Vec<u8> = if i % 2 == 0 {
                (0..len).map(|_| next() as u8).collect()
            } else {
                // Mutate a valid request: keeps the decoder busy past the JSON layer.
                let mut b = seeds[(next() % 4) as usize].to_vec();
                for _ in 0..(next() % 4) {
                    if !b.is_empty() {
                        let at = (next() as usize) % b.len();
                        b[at] = next() as u8;
                    }
                }
                b
            };
            let _ = decode_request(&buf);
            buf.truncate(len / 2);
            let _ = decode_request(&buf);
            let _ = decode_reply(&buf);
        }
        let big = vec![b' '; MAX_REQUEST_LEN + 1];
        assert!(matches!(decode_request(&big), Err(DecodeError::TooLong(_))));
    }
}
