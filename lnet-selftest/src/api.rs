//! The console's command and result types (what `lst` sends and gets
//! back; the CLI maps them to and from its own wire format), and the pure
//! `lst stat` rate computation (selftest.md §5).

use super::errno;
use super::wire::{Body, LnetCountersCommon, SfwCounters, Sid, SrpcCounters};
use lnet_core::nid::ProcessId;

/// Names a console command; its result comes back with the same id.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct TxnId(pub u64);

/// A node's state as the console sees it (`LST_NODE_*`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u32)]
pub enum NodeState {
    /// In this session.
    Active = 0x1,
    /// In another session.
    Busy = 0x2,
    /// The last RPC to it failed.
    Down = 0x4,
    /// Not in a session, or never contacted.
    Unknown = 0x8,
}

impl NodeState {
    /// The `LST_NODE_*` bit.
    pub fn bit(self) -> u32 {
        self as u32
    }

    /// `Active`, `Busy`, `Down`, `Unknown` as `lst` prints them.
    pub fn name(self) -> &'static str {
        match self {
            NodeState::Active => "Active",
            NodeState::Busy => "Busy",
            NodeState::Down => "Down",
            NodeState::Unknown => "Unknown",
        }
    }
}

/// Which nodes a command is about.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Targets {
    /// Every node of the session.
    Session,
    /// The nodes of a group.
    Group(String),
    /// The client (or server) nodes of a batch.
    Batch {
        /// Batch name.
        name: String,
        /// Its server nodes instead of its clients.
        server: bool,
    },
    /// These nodes.
    Nodes(Vec<ProcessId>),
}

/// `update_group` actions.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum UpdateAction {
    /// Re-send MKSN to the group's nodes that are not ACTIVE.
    Refresh,
    /// Drop the nodes whose state bit is in this mask.
    Clean(u32),
    /// Drop these nodes.
    Remove(Vec<ProcessId>),
}

/// The test of `add_test`. Exhaustive on purpose: lnetd translates every
/// variant into the control protocol, and a new one must not slip past it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TestType {
    /// `ping`.
    Ping,
    /// `brw`.
    Brw {
        /// `write` (else read).
        write: bool,
        /// Bytes per RPC (1..1 MiB).
        size: u32,
        /// `LST_BRW_CHECK_*` (1 none, 2 simple, 3 full, 4 discard).
        check: u32,
        /// Offset in the client's first page (multiple of 8).
        offset: u32,
    },
}

/// `add_test` arguments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TestSpec {
    /// Batch name.
    pub batch: String,
    /// `--loop` (-1 = forever).
    pub loop_count: i32,
    /// `--concurrency` (1..1024).
    pub concurrency: u32,
    /// `--distribute D:S`: D.
    pub dist: u32,
    /// `--distribute D:S`: S.
    pub span: u32,
    /// Source (client) group.
    pub from: String,
    /// Destination (server) group.
    pub to: String,
    /// The test.
    pub test: TestType,
}

/// A console command (the `lst` commands of selftest.md §2). `key` is the
/// caller's `LST_SESSION`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
#[allow(missing_docs)]
pub enum ConsoleRequest {
    /// `new_session`: `timeout` seconds (0 = default 300); `features` the
    /// session's feature mask.
    NewSession {
        key: u32,
        name: String,
        timeout: u32,
        force: bool,
        features: u32,
    },
    /// `end_session`.
    EndSession { key: u32 },
    /// `show_session` (no key needed).
    ShowSession,
    /// `add_group NAME NODES…` (the caller expands ID lists).
    AddGroup {
        key: u32,
        name: String,
        nodes: Vec<ProcessId>,
    },
    /// `del_group`.
    DelGroup { key: u32, name: String },
    /// `update_group`.
    UpdateGroup {
        key: u32,
        name: String,
        action: UpdateAction,
    },
    /// `list_group` (one group, or all).
    ListGroup { key: u32, name: Option<String> },
    /// `ping` (DEBUG RPC); `timeout` in seconds, 0 = default.
    Ping {
        key: u32,
        targets: Targets,
        timeout: u32,
    },
    /// `add_batch`.
    AddBatch { key: u32, name: String },
    /// `list_batch` (one batch, or all).
    ListBatch { key: u32, name: Option<String> },
    /// `add_test`.
    AddTest { key: u32, spec: TestSpec },
    /// `run`.
    Run {
        key: u32,
        batch: String,
        timeout: u32,
    },
    /// `stop` (one STOP transaction; the caller polls with `Query`).
    Stop {
        key: u32,
        batch: String,
        force: bool,
    },
    /// `query`: test 0 = whole batch.
    Query {
        key: u32,
        batch: String,
        test: u32,
        server: bool,
        timeout: u32,
    },
    /// `stat` / `show_error`: one STAT transaction; raw counters per node.
    Stat {
        key: u32,
        targets: Targets,
        timeout: u32,
    },
}

/// One node's part of a transaction (`lstcon_rpc_ent`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeEntry {
    /// The node.
    pub id: ProcessId,
    /// Its state after the transaction.
    pub state: NodeState,
    /// 0, or the negative errno of the RPC (transport failure, timeout).
    pub rpc_errno: i32,
    /// The node's session id from the reply.
    pub sid: Sid,
    /// The framework status from the reply (positive errno, 0 = OK).
    pub fw_errno: i32,
    /// The reply body.
    pub reply: Option<Body>,
}

impl NodeEntry {
    /// Whether both the RPC and the framework call succeeded.
    pub fn ok(&self) -> bool {
        self.rpc_errno == 0 && self.fw_errno == 0
    }

    /// STAT counters, when this is a successful STAT reply.
    pub fn stat(&self) -> Option<(SfwCounters, SrpcCounters, LnetCountersCommon)> {
        match (&self.reply, self.ok()) {
            (Some(Body::StatReply { fw, rpc, lnet, .. }), true) => Some((*fw, *rpc, *lnet)),
            _ => None,
        }
    }
}

/// A group with its nodes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupInfo {
    /// Name.
    pub name: String,
    /// Nodes in order of addition, with their state.
    pub nodes: Vec<(ProcessId, NodeState)>,
}

/// A test as `list_batch` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TestInfo {
    /// 1-based index in the batch.
    pub idx: u32,
    /// The test as added.
    pub spec: TestSpec,
}

/// A batch as `list_batch` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchInfo {
    /// Name.
    pub name: String,
    /// Whether it is running (`LST_BATCH_RUNNING`).
    pub running: bool,
    /// Its tests.
    pub tests: Vec<TestInfo>,
}

/// The console session as `show_session` / `new_session` report it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionInfo {
    /// Name.
    pub name: String,
    /// Session id.
    pub sid: Sid,
    /// Key.
    pub key: u32,
    /// Features.
    pub features: u32,
    /// Idle timeout (s).
    pub timeout: u32,
    /// `--force`.
    pub force: bool,
    /// Nodes enrolled.
    pub nodes: u32,
}

/// What a finished console command returns. Exhaustive on purpose, as
/// [`TestType`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConsoleReply {
    /// `new_session`, `show_session`.
    Session(SessionInfo),
    /// A local command with nothing to report.
    Done,
    /// Per-node results of a transaction (two lists for `add_test`:
    /// servers then clients, concatenated).
    Nodes(Vec<NodeEntry>),
    /// `list_group`.
    Groups(Vec<GroupInfo>),
    /// `list_batch`.
    Batches(Vec<BatchInfo>),
}

/// A console command that failed as a whole.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ConsoleError {
    /// Positive errno.
    pub errno: i32,
    /// Upstream's message.
    pub message: String,
}

impl ConsoleError {
    pub(super) fn new(errno: i32, message: impl Into<String>) -> Self {
        ConsoleError {
            errno,
            message: message.into(),
        }
    }
    pub(super) fn no_session() -> Self {
        Self::new(errno::ESRCH, "No session exists")
    }
    pub(super) fn not_found(what: &str) -> Self {
        Self::new(
            errno::ENOENT,
            format!("Can't find {what} in current session"),
        )
    }
    pub(super) fn invalid() -> Self {
        Self::new(errno::EINVAL, "Invalid parameters list in command line")
    }
    pub(super) fn exists(what: &str) -> Self {
        Self::new(errno::EEXIST, format!("{what} already exists"))
    }
}

/// Average, minimum and maximum of one figure over the nodes.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Spread {
    /// Mean over the nodes.
    pub avg: f64,
    /// Smallest non-zero value (0 if all are 0).
    pub min: f64,
    /// Largest value.
    pub max: f64,
}

/// The figures `lst stat` prints for one group and sample (§5).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StatSample {
    /// Receive rate, LNet messages per second.
    pub recv_rate: Spread,
    /// Send rate.
    pub send_rate: Spread,
    /// Receive bandwidth in MiB/s (MB/s with `mbs`).
    pub recv_bw: Spread,
    /// Send bandwidth.
    pub send_bw: Spread,
    /// Nodes that failed in either sample.
    pub failed: u32,
    /// Nodes that contributed.
    pub nodes: u32,
}

/// Computes `lst stat` figures from two STAT transactions over the same
/// nodes (pure; the CLI calls it). Nodes are matched by id.
pub fn stat_compute(prev: &[NodeEntry], cur: &[NodeEntry], mbs: bool) -> StatSample {
    let unit = if mbs { 1_000_000.0 } else { 1_048_576.0 };
    let mut out = StatSample::default();
    let mut vals: [Vec<f64>; 4] = Default::default();
    for c in cur {
        let p = prev.iter().find(|p| p.id == c.id);
        let (Some((fw1, _, l1)), Some((fw0, _, l0))) = (c.stat(), p.and_then(|p| p.stat())) else {
            out.failed += 1;
            continue;
        };
        let dt = f64::from(fw1.running_ms.wrapping_sub(fw0.running_ms)) / 1000.0;
        if dt <= 0.0 {
            out.failed += 1;
            continue;
        }
        out.nodes += 1;
        vals[0].push(f64::from(l1.recv_count.wrapping_sub(l0.recv_count)) / dt);
        vals[1].push(f64::from(l1.send_count.wrapping_sub(l0.send_count)) / dt);
        vals[2].push(l1.recv_length.wrapping_sub(l0.recv_length) as f64 / unit / dt);
        vals[3].push(l1.send_length.wrapping_sub(l0.send_length) as f64 / unit / dt);
    }
    let spread = |v: &[f64]| {
        if v.is_empty() {
            return Spread::default();
        }
        Spread {
            avg: v.iter().sum::<f64>() / v.len() as f64,
            min: v.iter().copied().filter(|x| *x != 0.0).fold(0.0, |m, x| {
                if m == 0.0 || x < m {
                    x
                } else {
                    m
                }
            }),
            max: v.iter().copied().fold(0.0, f64::max),
        }
    };
    out.recv_rate = spread(&vals[0]);
    out.send_rate = spread(&vals[1]);
    out.recv_bw = spread(&vals[2]);
    out.send_bw = spread(&vals[3]);
    out
}
