//! LNet selftest (`lst`) over the control socket (selftest.md §2–§5).
//!
//! The console lives in lnetd (`lnet_selftest`); `lst` is a thin front
//! end. This module holds what both sides share and what `lst` needs
//! without the daemon:
//! * the protocol types ([`LstRequest`], [`LstReply`] and their parts),
//!   carried by [`crate::proto::Op::Lst`] / [`crate::proto::ReplyBody::Lst`];
//! * [`ids`]: `lst`'s own ID-list expansion (`192.168.[1-2].[10-11]@tcp`);
//! * [`args`]: `add_test` parameters (`brw write size=1M check=simple`),
//!   `--distribute D:S`, `LST_SESSION` / `LST_FEATURES`;
//! * [`stat`]: the `lst stat` computation over two STAT samples;
//! * [`render`]: every line `lst` prints, in upstream's formats.

use lnd_api::Nid;
use serde::{Deserialize, Serialize};

use crate::serde_ids::serde_nid;

pub mod args;
pub mod ids;
pub mod render;
pub mod stat;

/// `LNET_PID_LUSTRE`: the PID of every selftest node.
pub const LST_PID: u32 = 12345;
/// `LST_NAME_SIZE`: names (session, group, batch) are shorter than this.
pub const LST_NAME_SIZE: usize = 32;
/// `LST_FEAT_BULK_LEN`, the only feature bit.
pub const LST_FEAT_BULK_LEN: u32 = 1;
/// `LST_FEATS_MASK`: every feature this build knows.
pub const LST_FEATS_MASK: u32 = LST_FEAT_BULK_LEN;
/// `LST_MAX_CONCUR`.
pub const LST_MAX_CONCUR: u32 = 1024;
/// `LNET_MTU`: the largest BRW transfer.
pub const LST_BRW_MAX: u32 = 1 << 20;
/// The batch every session starts with.
pub const LST_DEFAULT_BATCH: &str = "batch";
/// `LST_BATCH_IDLE`, printed by `list_batch`.
pub const LST_BATCH_IDLE: u32 = 0xB0;
/// `LST_BATCH_RUNNING`.
pub const LST_BATCH_RUNNING: u32 = 0xB1;

/// A console command; `key` is the caller's `LST_SESSION`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
#[allow(missing_docs)] // the fields are the command's options (selftest.md §2)
pub enum LstRequest {
    /// `new_session`; `timeout` in seconds (> 0).
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
    /// Adds nodes to a group (creating it): one `add_group` ID list.
    AddGroup {
        key: u32,
        name: String,
        #[serde(with = "serde_nid::vec")]
        nodes: Vec<Nid>,
    },
    /// `del_group`.
    DelGroup { key: u32, name: String },
    /// `update_group`.
    UpdateGroup {
        key: u32,
        name: String,
        action: LstUpdate,
    },
    /// `list_group`: one group with its nodes, or all.
    ListGroup { key: u32, name: Option<String> },
    /// `ping` (DEBUG RPCs); `timeout` seconds.
    Ping {
        key: u32,
        targets: LstTargets,
        timeout: u32,
    },
    /// `add_batch`.
    AddBatch { key: u32, name: String },
    /// `list_batch`: one batch, or all.
    ListBatch { key: u32, name: Option<String> },
    /// `add_test`.
    AddTest { key: u32, test: LstTestSpec },
    /// `run`.
    Run {
        key: u32,
        batch: String,
        timeout: u32,
    },
    /// One STOP transaction (`lst stop` then polls with [`LstRequest::Query`]).
    Stop {
        key: u32,
        batch: String,
        force: bool,
    },
    /// One BATCH QUERY transaction; `test` 0 = the whole batch.
    Query {
        key: u32,
        batch: String,
        test: u32,
        server: bool,
        timeout: u32,
    },
    /// One STAT transaction (`stat`, `show_error`): raw counters per node.
    Stat {
        key: u32,
        targets: LstTargets,
        timeout: u32,
    },
}

/// Which nodes a `ping` or `stat` is about.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum LstTargets {
    /// Every node of the session.
    Session,
    /// The nodes of a group.
    Group(String),
    /// The client (or server) nodes of a batch.
    Batch {
        /// Batch name.
        name: String,
        /// Its server nodes.
        server: bool,
    },
    /// These nodes.
    Nodes(#[serde(with = "serde_nid::vec")] Vec<Nid>),
}

/// `update_group` actions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum LstUpdate {
    /// `--refresh`.
    Refresh,
    /// `--clean STATE`: drop the nodes whose state bit is in the mask.
    Clean(u32),
    /// `--remove IDS`.
    Remove(#[serde(with = "serde_nid::vec")] Vec<Nid>),
}

/// The test of `add_test`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum LstTestKind {
    /// `ping`.
    Ping,
    /// `brw`.
    Brw {
        /// `write` (else read).
        write: bool,
        /// Bytes per RPC, 1 .. 1 MiB.
        size: u32,
        /// `LST_BRW_CHECK_*`: 1 none, 2 simple, 3 full, 4 discard.
        check: u32,
        /// Offset in the client's first page (multiple of 8).
        offset: u32,
    },
}

impl LstTestKind {
    /// `ping` or `brw`, as `list_batch` prints it.
    pub fn name(&self) -> &'static str {
        match self {
            LstTestKind::Ping => "ping",
            LstTestKind::Brw { .. } => "brw",
        }
    }
}

/// `add_test` arguments.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LstTestSpec {
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
    pub kind: LstTestKind,
}

/// A node's state as the console sees it (`LST_NODE_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LstNodeState {
    /// In this session (0x1).
    Active,
    /// In another session (0x2).
    Busy,
    /// The last RPC to it failed (0x4).
    Down,
    /// Not in a session, or never contacted (0x8).
    Unknown,
}

impl LstNodeState {
    /// The `LST_NODE_*` bit.
    pub fn bit(self) -> u32 {
        match self {
            LstNodeState::Active => 0x1,
            LstNodeState::Busy => 0x2,
            LstNodeState::Down => 0x4,
            LstNodeState::Unknown => 0x8,
        }
    }

    /// `Active`, `Busy`, `Down`, `Unknown`.
    pub fn name(self) -> &'static str {
        match self {
            LstNodeState::Active => "Active",
            LstNodeState::Busy => "Busy",
            LstNodeState::Down => "Down",
            LstNodeState::Unknown => "Unknown",
        }
    }
}

/// A session id: the console's NID (classic 64-bit form) and its creation
/// stamp in ms.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LstSid {
    /// `ses_nid` (`u64::MAX` = `LNET_NID_ANY`, no session).
    pub nid: u64,
    /// `ses_stamp`.
    pub stamp: i64,
}

impl LstSid {
    /// `LST_INVALID_SID`.
    pub const NONE: LstSid = LstSid {
        nid: u64::MAX,
        stamp: -1,
    };

    /// The console NID (`<?>` for no session).
    pub fn console_nid(&self) -> Nid {
        Nid::from_nid4(self.nid)
    }
}

/// `sfw_counters`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)] // upstream's names, selftest.md §4
pub struct LstFwCounters {
    pub running_ms: u32,
    pub active_batches: u32,
    pub zombie_sessions: u32,
    pub brw_errors: u32,
    pub ping_errors: u32,
}

/// `srpc_counters`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)] // upstream's names, selftest.md §4
pub struct LstRpcCounters {
    pub errors: u32,
    pub rpcs_sent: u32,
    pub rpcs_rcvd: u32,
    pub rpcs_dropped: u32,
    pub rpcs_expired: u32,
    pub bulk_get: u64,
    pub bulk_put: u64,
}

/// `lnet_counters_common`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)] // upstream's names, selftest.md §4
pub struct LstLnetCounters {
    pub msgs_alloc: u32,
    pub msgs_max: u32,
    pub errors: u32,
    pub send_count: u32,
    pub recv_count: u32,
    pub route_count: u32,
    pub drop_count: u32,
    pub send_length: u64,
    pub recv_length: u64,
    pub route_length: u64,
    pub drop_length: u64,
}

/// A STAT reply's three blocks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LstCounters {
    /// Framework counters of the node's session.
    pub fw: LstFwCounters,
    /// Node-wide RPC counters.
    pub rpc: LstRpcCounters,
    /// Node-wide LNet counters.
    pub lnet: LstLnetCounters,
}

/// What a node's reply carried beyond its status, by RPC kind.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum LstDetail {
    /// No reply body (RPC failed) or nothing of interest.
    #[default]
    None,
    /// MKSN / DEBUG reply: the node's session name and session timeout.
    Session {
        /// Name of the session the node is in.
        name: String,
        /// Its session timeout (s).
        timeout: u32,
    },
    /// BATCH reply: active instances (or units of one test).
    Batch {
        /// `bar_active`.
        active: u32,
    },
    /// STAT reply.
    Stat(LstCounters),
}

/// One node's part of a transaction (`lstcon_rpc_ent`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LstNode {
    /// The node's NID (its PID is [`LST_PID`]).
    #[serde(with = "serde_nid")]
    pub nid: Nid,
    /// Its state after the transaction.
    pub state: LstNodeState,
    /// 0, or the positive errno of the RPC (transport failure, timeout).
    pub rpc_errno: i32,
    /// The framework status of the reply (positive errno, 0 = OK).
    pub fw_errno: i32,
    /// The node's session id from the reply.
    pub sid: LstSid,
    /// The reply's content.
    pub detail: LstDetail,
}

impl LstNode {
    /// Whether both the RPC and the framework call succeeded.
    pub fn ok(&self) -> bool {
        self.rpc_errno == 0 && self.fw_errno == 0
    }

    /// STAT counters of a successful STAT reply.
    pub fn counters(&self) -> Option<&LstCounters> {
        match (&self.detail, self.ok()) {
            (LstDetail::Stat(c), true) => Some(c),
            _ => None,
        }
    }

    /// `12345-<nid>` (`libcfs_id2str`).
    pub fn id_text(&self) -> String {
        format!("{LST_PID}-{}", self.nid)
    }
}

/// The console session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LstSession {
    /// Name.
    pub name: String,
    /// Session id.
    pub sid: LstSid,
    /// Key.
    pub key: u32,
    /// Features.
    pub features: u32,
    /// Console idle timeout (s).
    pub timeout: u32,
    /// Created with `--force`.
    pub force: bool,
    /// Nodes enrolled.
    pub nodes: u32,
}

/// A group with its nodes in order of addition.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LstGroup {
    /// Name.
    pub name: String,
    /// Nodes and their states.
    pub nodes: Vec<LstGroupNode>,
}

/// A node of a group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LstGroupNode {
    /// Its NID.
    #[serde(with = "serde_nid")]
    pub nid: Nid,
    /// Its state.
    pub state: LstNodeState,
}

/// A batch with its tests.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LstBatch {
    /// Name.
    pub name: String,
    /// Running.
    pub running: bool,
    /// Tests, in order (test `i` is `tests[i - 1]`).
    pub tests: Vec<LstTestSpec>,
}

/// What a finished console command returns.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum LstReply {
    /// `new_session`, `show_session`.
    Session(LstSession),
    /// A local command with nothing to report.
    Done,
    /// Per-node results of a transaction (`add_test`: servers, then clients).
    Nodes(Vec<LstNode>),
    /// `list_group`.
    Groups(Vec<LstGroup>),
    /// `list_batch`.
    Batches(Vec<LstBatch>),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{decode_reply, decode_request, encode_reply, encode_request};
    use crate::proto::{Op, Reply, ReplyBody, Request};

    fn nid(s: &str) -> Nid {
        s.parse().expect("nid")
    }

    #[test]
    fn requests_and_replies_round_trip() {
        let reqs = vec![
            LstRequest::NewSession {
                key: 42,
                name: "rw".into(),
                timeout: 300,
                force: true,
                features: 1,
            },
            LstRequest::ShowSession,
            LstRequest::AddGroup {
                key: 42,
                name: "c".into(),
                nodes: vec![nid("192.168.1.10@tcp"), nid("0@lo")],
            },
            LstRequest::UpdateGroup {
                key: 42,
                name: "c".into(),
                action: LstUpdate::Remove(vec![nid("10.0.0.1@tcp")]),
            },
            LstRequest::Ping {
                key: 42,
                targets: LstTargets::Batch {
                    name: "b".into(),
                    server: true,
                },
                timeout: 5,
            },
            LstRequest::AddTest {
                key: 42,
                test: LstTestSpec {
                    batch: "b".into(),
                    loop_count: -1,
                    concurrency: 8,
                    dist: 4,
                    span: 2,
                    from: "c".into(),
                    to: "s".into(),
                    kind: LstTestKind::Brw {
                        write: true,
                        size: 1 << 20,
                        check: 2,
                        offset: 0,
                    },
                },
            },
            LstRequest::Stat {
                key: 42,
                targets: LstTargets::Nodes(vec![nid("10.0.0.2@tcp")]),
                timeout: 5,
            },
        ];
        for r in reqs {
            let req = Request::new(Op::Lst(r));
            let line = encode_request(&req);
            assert_eq!(
                decode_request(&line[..line.len() - 1]).expect("decodes"),
                req
            );
        }
        let reply = Reply::ok(ReplyBody::Lst(LstReply::Nodes(vec![LstNode {
            nid: nid("10.0.0.2@tcp"),
            state: LstNodeState::Active,
            rpc_errno: 0,
            fw_errno: 0,
            sid: LstSid {
                nid: nid("10.0.0.1@tcp").to_nid4().expect("nid4"),
                stamp: 1234,
            },
            detail: LstDetail::Stat(LstCounters::default()),
        }])));
        assert_eq!(decode_reply(&encode_reply(&reply)).expect("decodes"), reply);
    }

    #[test]
    fn states_and_ids() {
        assert_eq!(LstNodeState::Busy.bit(), 2);
        assert_eq!(LstNodeState::Unknown.name(), "Unknown");
        assert_eq!(LstSid::NONE.console_nid().to_string(), "<?>");
        let n = LstNode {
            nid: nid("192.168.1.10@tcp"),
            state: LstNodeState::Down,
            rpc_errno: 110,
            fw_errno: 0,
            sid: LstSid::NONE,
            detail: LstDetail::None,
        };
        assert_eq!(n.id_text(), "12345-192.168.1.10@tcp");
        assert!(!n.ok());
        assert!(n.counters().is_none());
    }
}
