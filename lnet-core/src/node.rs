//! The node runtime: one LNet instance driven by real threads.
//!
//! [`Node`] owns the engine behind a mutex, the plugin host, and the LND
//! objects of its NIs. LND callbacks ([`lnd_api::Host`]) lock the engine, feed
//! it (`handle_*`), drain its outputs, release the lock and only then call the
//! LNDs, so an LND may call back into the host from inside any LND call. A
//! timer thread calls `handle_timeout` at the engine's `poll_timeout`.
//! Control requests (from lnetd's socket or an embedding application) are
//! plain methods.

use std::path::{Path, PathBuf};
use std::time::Duration;

use lnd_api::{NetId, NetTunables, Nid};

use crate::host::{HostError, PluginInfo};

/// How a node starts.
#[derive(Clone, Debug, Default)]
pub struct NodeConfig {
    /// Directories searched for a plugin when `net add` names a network type
    /// no loaded plugin provides.
    pub plugin_path: Vec<PathBuf>,
    /// Module parameters (`--param NAME=VALUE`), validated by the caller.
    pub params: Vec<(String, String)>,
    /// The node's LNet PID (12345 unless testing).
    pub pid: u32,
}

/// A `net add` request: one NI per interface (at least one interface).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetAdd {
    /// The network name (`tcp1`, or a plugin's own type such as `vnd2`); the
    /// node resolves it, since only it knows the types its plugins provide.
    pub net: String,
    /// Interfaces, one NI each.
    pub interfaces: Vec<String>,
    /// Net tunables (-1 = LND default).
    pub tunables: NetTunables,
    /// LND tunables given (`conns_per_peer`, `tos`).
    pub lnd_tunables: Vec<(String, String)>,
}

/// Latency samples of one kind (`put_egress`, `get_rtt`, `put_ack`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LatencyStats {
    /// Number of samples.
    pub samples: u64,
    /// Minimum, ns (0 without samples).
    pub min_nsec: u64,
    /// Maximum, ns.
    pub max_nsec: u64,
    /// Average, ns.
    pub avg_nsec: u64,
}

/// Message counts by type.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TypeCounts {
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

/// Health of an NI (`health stats` of `net show -v 2`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NiHealth {
    /// Link fatal state.
    pub fatal_error: u64,
    /// 0..=1000.
    pub value: u32,
    /// Counters by health status.
    pub interrupts: u64,
    /// Local drops.
    pub dropped: u64,
    /// Aborts.
    pub aborted: u64,
    /// No route.
    pub no_route: u64,
    /// Timeouts.
    pub timeouts: u64,
    /// Other errors.
    pub error: u64,
    /// Recovery pings sent.
    pub ping_count: u64,
    /// Next recovery ping (seconds), 0 when none.
    pub next_ping: u64,
}

/// One NI as `net show` reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NiShow {
    /// Its NID.
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
    pub put_egress: LatencyStats,
    /// GET round trips.
    pub get_rtt: LatencyStats,
    /// PUT to ACK round trips.
    pub put_ack: LatencyStats,
    /// Sent by type.
    pub sent: TypeCounts,
    /// Received by type.
    pub received: TypeCounts,
    /// Dropped by type.
    pub dropped: TypeCounts,
    /// Health.
    pub health: NiHealth,
    /// Net tunables in force.
    pub tunables: NetTunables,
    /// LND tunables in force, in the LND's order.
    pub lnd_tunables: Vec<(String, String)>,
    /// Device CPT, -1 if unknown.
    pub dev_cpt: i32,
    /// CPTs the NI is bound to.
    pub cpts: Vec<u32>,
    /// NI tx credits now (`ni_tx_credits`), for `-v`.
    pub tx_credits: i64,
    /// Lowest tx credits seen.
    pub min_tx_credits: i64,
}

/// One net as `net show` reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetShow {
    /// The network.
    pub net: NetId,
    /// Its name as printed (`tcp1`).
    pub name: String,
    /// Its NIs in creation order.
    pub nis: Vec<NiShow>,
}

/// A plugin with the NIDs of the NIs it serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PluginShow {
    /// The plugin.
    pub info: PluginInfo,
    /// NIs started through it.
    pub nis: Vec<Nid>,
}

/// A successful ping.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PingReply {
    /// The peer's primary NID.
    pub primary_nid: Nid,
    /// The peer's PID.
    pub pid: u32,
    /// Whether the peer is Multi-Rail capable.
    pub multi_rail: bool,
    /// The peer's NIDs (without 0@lo), with their status (`up`).
    pub nids: Vec<(Nid, bool)>,
}

/// Why a control request failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// A plugin host refusal.
    #[error("{0}")]
    Host(#[from] HostError),
    /// A request that cannot be satisfied, with an errno (positive) and a message.
    #[error("{message}")]
    Failed {
        /// Positive errno.
        errno: i32,
        /// What went wrong, lowercase, naming the object.
        message: String,
    },
}

impl NodeError {
    /// A failure with an errno and a message.
    pub fn failed(errno: i32, message: impl Into<String>) -> Self {
        NodeError::Failed {
            errno,
            message: message.into(),
        }
    }

    /// The positive errno a control client sees.
    pub fn errno(&self) -> i32 {
        match self {
            NodeError::Host(h) => h.errno(),
            NodeError::Failed { errno, .. } => *errno,
        }
    }
}

/// Placeholder for the fields of the running node; the runtime fills it.
pub struct Node {
    _private: (),
}

impl Node {
    /// Starts a node: the engine with `0@lo`, the ping target, the timer.
    pub fn start(cfg: NodeConfig) -> Result<Node, NodeError> {
        let _ = cfg;
        Err(NodeError::failed(
            lnd_api::errno::ENODEV,
            "the node runtime is not built yet",
        ))
    }
    /// `plugin load PATH`.
    pub fn plugin_load(&self, path: &Path) -> Result<PluginInfo, NodeError> {
        let _ = path;
        Err(NodeError::failed(
            lnd_api::errno::ENODEV,
            "the node runtime is not built yet",
        ))
    }
    /// `plugin unload NAME`.
    pub fn plugin_unload(&self, name: &str) -> Result<PluginInfo, NodeError> {
        let _ = name;
        Err(NodeError::failed(
            lnd_api::errno::ENODEV,
            "the node runtime is not built yet",
        ))
    }
    /// `plugin show`.
    pub fn plugins(&self) -> Vec<PluginShow> {
        Vec::new()
    }
    /// `net add`: returns the NIDs of the new NIs.
    pub fn net_add(&self, req: NetAdd) -> Result<Vec<Nid>, NodeError> {
        let _ = req;
        Err(NodeError::failed(
            lnd_api::errno::ENODEV,
            "the node runtime is not built yet",
        ))
    }
    /// `net del --net NET` (by name, as `net add`).
    pub fn net_del(&self, net: &str) -> Result<(), NodeError> {
        let _ = net;
        Err(NodeError::failed(
            lnd_api::errno::ENODEV,
            "the node runtime is not built yet",
        ))
    }
    /// `net show`: every net, lo first, in creation order.
    pub fn nets(&self) -> Vec<NetShow> {
        Vec::new()
    }
    /// `ping NID`: a GET on the ping portal, answered by the peer's ping service.
    pub fn ping(
        &self,
        target: Nid,
        pid: Option<u32>,
        source: Option<Nid>,
        timeout: Duration,
    ) -> Result<PingReply, NodeError> {
        let _ = (target, pid, source, timeout);
        Err(NodeError::failed(
            lnd_api::errno::ENODEV,
            "the node runtime is not built yet",
        ))
    }
    /// Shuts every NI down in order (lo last) and stops the timer.
    pub fn shutdown(&self) {}
}
