//! The selftest console (`lnet/selftest/console.c`, `conrpc.c`, `conctl.c`;
//! selftest.md §1–§3.4, §5).
//!
//! The console holds one session (name, key, features, idle timeout), the
//! nodes enrolled in it with their state, named groups of nodes, batches
//! (`batch` exists from the start) and their tests. Commands that touch
//! nodes run as *transactions*: one framework RPC per node, all in
//! parallel, each with the transaction timeout (30 s by default, user values
//! clamped to 3..30 s); every reply refreshes the node's state. A command is
//! started with [`Selftest::console`] and its result collected later with
//! [`Selftest::poll_console_done`]; purely local commands finish at once.
//!
//! A pinger runs every 8 s: it ends an idle session (no `lst` command of
//! any kind for longer than its `--timeout`, even while a batch runs, as
//! upstream: keep it busy with `lst stat`) and sends DEBUG to ACTIVE nodes
//! whose last reply is at least half their session timeout old. After such
//! an end commands get ESRCH, saying why; while `end_session` waits for its
//! RMSN replies, other commands get ESHUTDOWN.

use std::collections::HashMap;

use lnd_api::{IoBuf, Nid};

pub use super::api::*;
use super::rpc::{CliBulk, Owner, RpcResult};
use super::wire::{
    batch_opc, brw_rw, emit_dests, service, Body, Sid, SrpcMsg, TestParams, LST_FEATS_MASK,
    LST_FEAT_BULK_LEN,
};
use super::{errno, Selftest, BRW_MAX_LEN, PAGE_SIZE};
use lnet_core::ni::Lnet;
use lnet_core::nid::ProcessId;
use lnet_core::time::{Duration, Instant};

/// Default transaction timeout, and the clamp of user timeouts (seconds).
pub const TXN_TIMEOUT_DEFAULT: u32 = 30;
const TXN_TIMEOUT_MIN: u32 = 3;
/// `LST_PING_INTERVAL`: the console pinger period (seconds).
pub const PING_INTERVAL: u64 = 8;
/// Default console idle timeout (seconds).
pub const SESSION_TIMEOUT_DEFAULT: u32 = 300;
/// Largest test concurrency.
pub const MAX_CONCURRENCY: u32 = 1024;

#[derive(Debug)]
struct ConNode {
    id: ProcessId,
    state: NodeState,
    last_heard: Option<Instant>,
    /// The node's session timeout from its last MKSN/DEBUG reply (s).
    timeout: u32,
}

#[derive(Debug)]
struct Group {
    name: String,
    nodes: Vec<ProcessId>,
}

#[derive(Debug)]
struct ConBatch {
    name: String,
    bid: u64,
    running: bool,
    tests: Vec<TestSpec>,
}

#[derive(Debug)]
struct ConSession {
    name: String,
    sid: Sid,
    key: u32,
    features: u32,
    /// Whether an MKSN reply fixed the features yet.
    feats_fixed: bool,
    timeout: u32,
    force: bool,
    /// Last console command (the idle timeout counts from it).
    last_cmd: Instant,
    /// `end_session` is waiting for its RMSN replies.
    ending: bool,
    next_ping: Instant,
    nodes: Vec<ConNode>,
    groups: Vec<Group>,
    batches: Vec<ConBatch>,
    next_bid: u64,
}

impl ConSession {
    fn node_mut(&mut self, id: &ProcessId) -> Option<&mut ConNode> {
        self.nodes.iter_mut().find(|n| n.id == *id)
    }
    fn state(&self, id: &ProcessId) -> NodeState {
        self.nodes
            .iter()
            .find(|n| n.id == *id)
            .map_or(NodeState::Unknown, |n| n.state)
    }
    fn group(&self, name: &str) -> Option<&Group> {
        self.groups.iter().find(|g| g.name == name)
    }
    fn batch(&self, name: &str) -> Option<&ConBatch> {
        self.batches.iter().find(|b| b.name == name)
    }
    fn active_in(&self, g: &Group) -> Vec<ProcessId> {
        g.nodes
            .iter()
            .filter(|n| self.state(n) == NodeState::Active)
            .copied()
            .collect()
    }
}

/// A framework request without its ids (built per RPC).
#[derive(Clone, Debug)]
enum FwReq {
    Mksn {
        force: bool,
        name: String,
    },
    Rmsn,
    Debug,
    Batch {
        bid: u64,
        opc: u32,
        testidx: u32,
        arg: u32,
    },
    Stat,
    Test {
        bid: u64,
        svc: u32,
        loop_count: u32,
        concur: u32,
        is_client: bool,
        params: TestParams,
        dests: Vec<ProcessId>,
    },
}

impl FwReq {
    fn service(&self) -> u32 {
        match self {
            FwReq::Mksn { .. } => service::MAKE_SESSION,
            FwReq::Rmsn => service::REMOVE_SESSION,
            FwReq::Debug => service::DEBUG,
            FwReq::Batch { .. } => service::BATCH,
            FwReq::Stat => service::QUERY_STAT,
            FwReq::Test { .. } => service::TEST,
        }
    }

    fn body(&self, sid: Sid, rpyid: u64, bulkid: u64) -> Body {
        match self {
            FwReq::Mksn { force, name } => Body::MksnReq {
                rpyid,
                sid,
                force: u32::from(*force),
                name: name.clone(),
            },
            FwReq::Rmsn => Body::RmsnReq { rpyid, sid },
            FwReq::Debug => Body::DebugReq {
                rpyid,
                sid,
                flags: 0,
            },
            FwReq::Batch {
                bid,
                opc,
                testidx,
                arg,
            } => Body::BatchReq {
                rpyid,
                sid,
                bid: *bid,
                opc: *opc,
                testidx: *testidx,
                arg: *arg,
            },
            FwReq::Stat => Body::StatReq {
                rpyid,
                sid,
                stype: 0,
            },
            FwReq::Test {
                bid,
                svc,
                loop_count,
                concur,
                is_client,
                params,
                dests,
            } => Body::TestReq {
                rpyid,
                bulkid,
                sid,
                bid: *bid,
                service: *svc,
                loop_count: *loop_count,
                concur: *concur,
                is_client: u8::from(*is_client),
                stop_onerr: 1,
                ndest: dests.len() as u32,
                params: *params,
            },
        }
    }
}

/// What to do when a transaction ends.
#[derive(Debug)]
enum Next {
    /// Report the entries.
    Report,
    /// `end_session`: drop the session, report.
    EndSession,
    /// `del_group`: drop the group (and nodes in no other group), report.
    DelGroup(String),
    /// `update_group --remove`: drop these nodes from the group, report.
    Remove(String, Vec<ProcessId>),
    /// `add_test`, servers done: send the client requests.
    AddTestClients {
        spec: TestSpec,
        clients: Vec<(ProcessId, FwReq)>,
        timeout: Duration,
    },
    /// `add_test`, clients done: record the test, report everything.
    AddTestDone {
        spec: TestSpec,
        servers: Vec<NodeEntry>,
    },
    /// `run`: mark the batch running.
    Run(String),
    /// `stop`: mark the batch idle.
    Stop(String),
    /// `query` of a whole batch: mark it idle when no node runs it.
    Query(String),
    /// Internal (pinger, expiry): nothing to report.
    Silent,
}

#[derive(Debug)]
struct Txn {
    entries: Vec<NodeEntry>,
    rpcs: Vec<Option<u64>>,
    pending: usize,
    next: Next,
    /// Whether replies update the session's features (MKSN).
    mksn: bool,
    /// The console session the transaction was sent for; replies update
    /// node states only while it is still the current one.
    sid: Sid,
}

/// The console's state.
#[derive(Debug, Default)]
pub(super) struct Console {
    session: Option<ConSession>,
    /// A session the pinger ended for idleness (key, name, timeout): its
    /// commands get ESRCH, as upstream's, with why, until a new session.
    expired: Option<(u32, String, u32)>,
    txns: HashMap<u64, Txn>,
    done: std::collections::VecDeque<(TxnId, Result<ConsoleReply, ConsoleError>)>,
    next_txn: u64,
}

impl Console {
    pub(super) fn poll_timeout(&self) -> Option<Instant> {
        self.session.as_ref().map(|s| s.next_ping)
    }
}

fn clamp_timeout(t: u32) -> Duration {
    let t = if t == 0 {
        TXN_TIMEOUT_DEFAULT
    } else {
        t.clamp(TXN_TIMEOUT_MIN, TXN_TIMEOUT_DEFAULT)
    };
    Duration::from_secs(u64::from(t))
}

fn ceil_div(a: u32, b: u32) -> u32 {
    a.div_ceil(b.max(1))
}

/// The destinations of the `i`-th client (selftest.md §3.4 step 3).
pub fn client_window(i: u32, dist: u32, span: u32, dests: &[ProcessId]) -> Vec<ProcessId> {
    let n = dests.len() as u32;
    if n == 0 || dist == 0 {
        return Vec::new();
    }
    let start = ((i / dist) * span) % n;
    (0..span.min(n))
        .map(|k| dests[((start + k) % n) as usize])
        .collect()
}

/// The server instance's loop hint (selftest.md §3.4 step 2).
pub fn server_loop_hint(nsrc: u32, ndst: u32, dist: u32, span: u32, concur: u32) -> u32 {
    ceil_div(ceil_div(nsrc, dist), ceil_div(ndst, span))
        .saturating_mul(dist)
        .saturating_mul(concur)
}

impl Selftest {
    /// Starts a console command; its result comes from
    /// [`Selftest::poll_console_done`] with the returned id (at once for
    /// local commands, when the transaction ends otherwise).
    pub fn console(
        &mut self,
        lnet: &mut Lnet,
        now: Instant,
        wall: Duration,
        req: ConsoleRequest,
    ) -> TxnId {
        self.console.next_txn += 1;
        let id = self.console.next_txn;
        if let Err(e) = self.console_start(lnet, now, wall, id, req) {
            self.console.done.push_back((TxnId(id), Err(e)));
        }
        TxnId(id)
    }

    /// A finished console command, if any.
    #[must_use]
    pub fn poll_console_done(&mut self) -> Option<(TxnId, Result<ConsoleReply, ConsoleError>)> {
        self.console.done.pop_front()
    }

    /// Whether [`Selftest::poll_console_done`] has a result to give.
    #[must_use]
    #[inline]
    pub fn has_console_done(&self) -> bool {
        !self.console.done.is_empty()
    }

    fn finish(&mut self, id: u64, r: Result<ConsoleReply, ConsoleError>) {
        self.console.done.push_back((TxnId(id), r));
    }

    /// The session, with the key checked. Like upstream's ioctl entry, any
    /// command counts as activity for the idle timeout (whatever its key),
    /// a session being ended answers ESHUTDOWN, and no session ESRCH.
    fn session_checked(&mut self, key: u32, now: Instant) -> Result<&mut ConSession, ConsoleError> {
        let Some(s) = self.console.session.as_mut() else {
            return Err(match &self.console.expired {
                Some((k, name, timeout)) if *k == key => ConsoleError::new(
                    errno::ESRCH,
                    format!(
                        "No session exists (session {name} was ended by the console after \
                         {timeout} s without an lst command, its --timeout: make a new one, \
                         and keep it busy with lst stat or give it a longer --timeout)"
                    ),
                ),
                _ => ConsoleError::no_session(),
            });
        };
        s.last_cmd = now;
        if s.ending {
            return Err(ConsoleError::new(
                errno::ESHUTDOWN,
                "Session is shutting down",
            ));
        }
        if s.key != key {
            return Err(ConsoleError::new(
                errno::EACCES,
                "Unmatched session key or not root",
            ));
        }
        Ok(s)
    }

    fn console_start(
        &mut self,
        lnet: &mut Lnet,
        now: Instant,
        wall: Duration,
        id: u64,
        req: ConsoleRequest,
    ) -> Result<(), ConsoleError> {
        match req {
            ConsoleRequest::NewSession {
                key,
                name,
                timeout,
                force,
                features,
            } => {
                if name.is_empty() || name.len() >= 32 || features & !LST_FEATS_MASK != 0 {
                    return Err(ConsoleError::invalid());
                }
                if let Some(s) = self.console.session.as_mut() {
                    s.last_cmd = now;
                    if s.ending {
                        return Err(ConsoleError::new(
                            errno::ESHUTDOWN,
                            "Session is shutting down",
                        ));
                    }
                    if !force {
                        return Err(ConsoleError::exists("Session"));
                    }
                    self.console_end_silently(lnet, now);
                }
                let nid = lnet
                    .nis()
                    .map(|v| v.nid())
                    .find(|n| *n != Nid::LO_0)
                    .ok_or_else(|| {
                        ConsoleError::new(
                            errno::ENETDOWN,
                            "no network interface to name the session (add a net first)",
                        )
                    })?;
                let sid = Sid {
                    nid: nid.to_nid4().unwrap_or(u64::MAX),
                    stamp: i64::try_from(wall.as_millis()).unwrap_or(i64::MAX),
                };
                let timeout = if timeout == 0 {
                    SESSION_TIMEOUT_DEFAULT
                } else {
                    timeout
                };
                let s = ConSession {
                    name,
                    sid,
                    key,
                    features,
                    feats_fixed: false,
                    timeout,
                    force,
                    last_cmd: now,
                    ending: false,
                    next_ping: now.saturating_add(Duration::from_secs(PING_INTERVAL)),
                    nodes: Vec::new(),
                    groups: Vec::new(),
                    batches: vec![ConBatch {
                        name: "batch".into(),
                        bid: 1,
                        running: false,
                        tests: Vec::new(),
                    }],
                    next_bid: 2,
                };
                let info = session_info(&s);
                self.console.session = Some(s);
                self.console.expired = None;
                self.finish(id, Ok(ConsoleReply::Session(info)));
                Ok(())
            }
            ConsoleRequest::ShowSession => {
                let s = self
                    .console
                    .session
                    .as_mut()
                    .ok_or_else(ConsoleError::no_session)?;
                s.last_cmd = now;
                let info = session_info(s);
                self.finish(id, Ok(ConsoleReply::Session(info)));
                Ok(())
            }
            ConsoleRequest::EndSession { key } => {
                let s = self.session_checked(key, now)?;
                // Until its RMSNs are answered, other commands get
                // ESHUTDOWN (upstream's `ses_shutdown`).
                s.ending = true;
                let active: Vec<(ProcessId, FwReq)> = s
                    .nodes
                    .iter()
                    .filter(|n| n.state == NodeState::Active)
                    .map(|n| (n.id, FwReq::Rmsn))
                    .collect();
                self.txn_start(lnet, now, id, active, clamp_timeout(0), Next::EndSession);
                Ok(())
            }
            ConsoleRequest::AddGroup { key, name, nodes } => {
                let s = self.session_checked(key, now)?;
                if name.is_empty() || name.len() >= 32 {
                    return Err(ConsoleError::invalid());
                }
                if nodes.is_empty() {
                    return Err(ConsoleError::invalid());
                }
                if s.group(&name).is_none() {
                    s.groups.push(Group {
                        name: name.clone(),
                        nodes: Vec::new(),
                    });
                }
                let mut targets = Vec::new();
                for n in nodes {
                    if s.node_mut(&n).is_none() {
                        s.nodes.push(ConNode {
                            id: n,
                            state: NodeState::Unknown,
                            last_heard: None,
                            timeout: 0,
                        });
                    }
                    if let Some(g) = s.groups.iter_mut().find(|g| g.name == name) {
                        if !g.nodes.contains(&n) {
                            g.nodes.push(n);
                        }
                    }
                    if s.state(&n) != NodeState::Active && !targets.iter().any(|(t, _)| *t == n) {
                        targets.push((
                            n,
                            FwReq::Mksn {
                                force: s.force,
                                name: s.name.clone(),
                            },
                        ));
                    }
                }
                self.txn_start(lnet, now, id, targets, clamp_timeout(0), Next::Report);
                Ok(())
            }
            ConsoleRequest::DelGroup { key, name } => {
                let s = self.session_checked(key, now)?;
                let g = s
                    .group(&name)
                    .ok_or_else(|| ConsoleError::not_found(&name))?;
                let used = s
                    .batches
                    .iter()
                    .any(|b| b.tests.iter().any(|t| t.from == name || t.to == name));
                if used {
                    return Err(ConsoleError::new(
                        errno::EBUSY,
                        format!("Group {name} is used by a test"),
                    ));
                }
                let lone: Vec<(ProcessId, FwReq)> = g
                    .nodes
                    .iter()
                    .filter(|n| s.state(n) == NodeState::Active)
                    .filter(|n| {
                        !s.groups
                            .iter()
                            .any(|o| o.name != name && o.nodes.contains(n))
                    })
                    .map(|n| (*n, FwReq::Rmsn))
                    .collect();
                self.txn_start(lnet, now, id, lone, clamp_timeout(0), Next::DelGroup(name));
                Ok(())
            }
            ConsoleRequest::UpdateGroup { key, name, action } => {
                let s = self.session_checked(key, now)?;
                let gi = s
                    .groups
                    .iter()
                    .position(|g| g.name == name)
                    .ok_or_else(|| ConsoleError::not_found(&name))?;
                match action {
                    UpdateAction::Refresh => {
                        let t: Vec<(ProcessId, FwReq)> = s.groups[gi]
                            .nodes
                            .iter()
                            .filter(|n| s.state(n) != NodeState::Active)
                            .map(|n| {
                                (
                                    *n,
                                    FwReq::Mksn {
                                        force: s.force,
                                        name: s.name.clone(),
                                    },
                                )
                            })
                            .collect();
                        self.txn_start(lnet, now, id, t, clamp_timeout(0), Next::Report);
                    }
                    UpdateAction::Clean(mask) => {
                        let keep: Vec<ProcessId> = s.groups[gi]
                            .nodes
                            .iter()
                            .filter(|n| s.state(n).bit() & mask == 0)
                            .copied()
                            .collect();
                        s.groups[gi].nodes = keep;
                        drop_orphans(s);
                        self.finish(id, Ok(ConsoleReply::Done));
                    }
                    UpdateAction::Remove(ids) => {
                        // RMSN to the removed ACTIVE nodes that no other
                        // group keeps in the session.
                        let t: Vec<(ProcessId, FwReq)> = s.groups[gi]
                            .nodes
                            .iter()
                            .filter(|n| ids.contains(n) && s.state(n) == NodeState::Active)
                            .filter(|n| {
                                !s.groups
                                    .iter()
                                    .any(|o| o.name != name && o.nodes.contains(n))
                            })
                            .map(|n| (*n, FwReq::Rmsn))
                            .collect();
                        self.txn_start(lnet, now, id, t, clamp_timeout(0), Next::Remove(name, ids));
                    }
                }
                Ok(())
            }
            ConsoleRequest::ListGroup { key, name } => {
                let s = self.session_checked(key, now)?;
                let groups: Vec<GroupInfo> = s
                    .groups
                    .iter()
                    .filter(|g| name.as_ref().is_none_or(|n| *n == g.name))
                    .map(|g| GroupInfo {
                        name: g.name.clone(),
                        nodes: g.nodes.iter().map(|n| (*n, s.state(n))).collect(),
                    })
                    .collect();
                if let Some(n) = &name {
                    if groups.is_empty() {
                        return Err(ConsoleError::not_found(n));
                    }
                }
                self.finish(id, Ok(ConsoleReply::Groups(groups)));
                Ok(())
            }
            ConsoleRequest::Ping {
                key,
                targets,
                timeout,
            } => {
                let s = self.session_checked(key, now)?;
                let nodes = resolve(s, &targets)?;
                let t = nodes.into_iter().map(|n| (n, FwReq::Debug)).collect();
                self.txn_start(lnet, now, id, t, clamp_timeout(timeout), Next::Report);
                Ok(())
            }
            ConsoleRequest::AddBatch { key, name } => {
                let s = self.session_checked(key, now)?;
                if name.is_empty() || name.len() >= 32 {
                    return Err(ConsoleError::invalid());
                }
                if s.batch(&name).is_some() {
                    return Err(ConsoleError::exists(&format!("Batch {name}")));
                }
                let bid = s.next_bid;
                s.next_bid += 1;
                s.batches.push(ConBatch {
                    name,
                    bid,
                    running: false,
                    tests: Vec::new(),
                });
                self.finish(id, Ok(ConsoleReply::Done));
                Ok(())
            }
            ConsoleRequest::ListBatch { key, name } => {
                let s = self.session_checked(key, now)?;
                let b: Vec<BatchInfo> = s
                    .batches
                    .iter()
                    .filter(|b| name.as_ref().is_none_or(|n| *n == b.name))
                    .map(|b| BatchInfo {
                        name: b.name.clone(),
                        running: b.running,
                        tests: b
                            .tests
                            .iter()
                            .enumerate()
                            .map(|(i, t)| TestInfo {
                                idx: i as u32 + 1,
                                spec: t.clone(),
                            })
                            .collect(),
                    })
                    .collect();
                if let Some(n) = &name {
                    if b.is_empty() {
                        return Err(ConsoleError::not_found(n));
                    }
                }
                self.finish(id, Ok(ConsoleReply::Batches(b)));
                Ok(())
            }
            ConsoleRequest::AddTest { key, spec } => self.add_test(lnet, now, id, key, spec),
            ConsoleRequest::Run {
                key,
                batch,
                timeout,
            } => {
                let _ = timeout;
                let s = self.session_checked(key, now)?;
                let b = s
                    .batch(&batch)
                    .ok_or_else(|| ConsoleError::not_found(&batch))?;
                let nodes = batch_nodes(s, b, false);
                let req = FwReq::Batch {
                    bid: b.bid,
                    opc: batch_opc::RUN,
                    testidx: 0,
                    arg: 0,
                };
                let t = nodes.into_iter().map(|n| (n, req.clone())).collect();
                self.txn_start(lnet, now, id, t, clamp_timeout(0), Next::Run(batch));
                Ok(())
            }
            ConsoleRequest::Stop { key, batch, force } => {
                let s = self.session_checked(key, now)?;
                let b = s
                    .batch(&batch)
                    .ok_or_else(|| ConsoleError::not_found(&batch))?;
                let nodes = batch_nodes(s, b, false);
                let req = FwReq::Batch {
                    bid: b.bid,
                    opc: batch_opc::STOP,
                    testidx: 0,
                    arg: u32::from(force),
                };
                let t = nodes.into_iter().map(|n| (n, req.clone())).collect();
                self.txn_start(lnet, now, id, t, clamp_timeout(0), Next::Stop(batch));
                Ok(())
            }
            ConsoleRequest::Query {
                key,
                batch,
                test,
                server,
                timeout,
            } => {
                let s = self.session_checked(key, now)?;
                let b = s
                    .batch(&batch)
                    .ok_or_else(|| ConsoleError::not_found(&batch))?;
                if test as usize > b.tests.len() {
                    return Err(ConsoleError::not_found(&format!("test {test}")));
                }
                let nodes = batch_nodes(s, b, server);
                let req = FwReq::Batch {
                    bid: b.bid,
                    opc: batch_opc::QUERY,
                    testidx: test,
                    arg: 0,
                };
                let t = nodes.into_iter().map(|n| (n, req.clone())).collect();
                let next = if test == 0 && !server {
                    Next::Query(batch)
                } else {
                    Next::Report
                };
                self.txn_start(lnet, now, id, t, clamp_timeout(timeout), next);
                Ok(())
            }
            ConsoleRequest::Stat {
                key,
                targets,
                timeout,
            } => {
                let s = self.session_checked(key, now)?;
                let nodes = resolve(s, &targets)?;
                let t = nodes.into_iter().map(|n| (n, FwReq::Stat)).collect();
                self.txn_start(lnet, now, id, t, clamp_timeout(timeout), Next::Report);
                Ok(())
            }
        }
    }

    fn add_test(
        &mut self,
        lnet: &mut Lnet,
        now: Instant,
        id: u64,
        key: u32,
        spec: TestSpec,
    ) -> Result<(), ConsoleError> {
        let s = self.session_checked(key, now)?;
        if spec.concurrency == 0
            || spec.concurrency > MAX_CONCURRENCY
            || spec.dist == 0
            || spec.span == 0
            || spec.loop_count == 0
        {
            return Err(ConsoleError::invalid());
        }
        if let TestType::Brw {
            size,
            check,
            offset,
            ..
        } = spec.test
        {
            if size == 0 || size > BRW_MAX_LEN || offset % 8 != 0 || !(1..=4).contains(&check) {
                return Err(ConsoleError::invalid());
            }
        }
        let b = s
            .batch(&spec.batch)
            .ok_or_else(|| ConsoleError::not_found(&spec.batch))?;
        if b.running {
            return Err(ConsoleError::new(
                errno::EINVAL,
                format!("Batch {} is running, stop it before adding tests", b.name),
            ));
        }
        let bid = b.bid;
        let from = s
            .group(&spec.from)
            .ok_or_else(|| ConsoleError::not_found(&spec.from))?;
        let to = s
            .group(&spec.to)
            .ok_or_else(|| ConsoleError::not_found(&spec.to))?;
        let clients = s.active_in(from);
        let servers = s.active_in(to);
        if clients.is_empty() || servers.is_empty() {
            return Err(ConsoleError::new(
                errno::EINVAL,
                "No active node in the source or destination group (refresh them with update_group --refresh)",
            ));
        }
        if spec.span as usize > servers.len() {
            return Err(ConsoleError::invalid());
        }
        let (svc, params) = match spec.test {
            TestType::Ping => (service::PING, TestParams::Ping { size: 0, flags: 0 }),
            TestType::Brw {
                write,
                size,
                check,
                offset,
            } => {
                let opc = if write { brw_rw::WRITE } else { brw_rw::READ };
                let p = if s.features & LST_FEAT_BULK_LEN != 0 {
                    TestParams::BrwV1 {
                        opc: opc as u16,
                        flags: check as u16,
                        len: size,
                        offset,
                    }
                } else {
                    TestParams::BrwV0 {
                        opc,
                        npages: size.div_ceil(PAGE_SIZE),
                        flags: check,
                    }
                };
                (service::BRW, p)
            }
        };
        let hint = server_loop_hint(
            from.nodes.len() as u32,
            to.nodes.len() as u32,
            spec.dist,
            spec.span,
            spec.concurrency,
        );
        let srv_reqs: Vec<(ProcessId, FwReq)> = servers
            .iter()
            .map(|n| {
                (
                    *n,
                    FwReq::Test {
                        bid,
                        svc,
                        loop_count: hint,
                        concur: spec.concurrency,
                        is_client: false,
                        params,
                        dests: Vec::new(),
                    },
                )
            })
            .collect();
        let cli_reqs: Vec<(ProcessId, FwReq)> = clients
            .iter()
            .enumerate()
            .map(|(i, n)| {
                (
                    *n,
                    FwReq::Test {
                        bid,
                        svc,
                        loop_count: spec.loop_count as u32,
                        concur: spec.concurrency,
                        is_client: true,
                        params,
                        dests: client_window(i as u32, spec.dist, spec.span, &servers),
                    },
                )
            })
            .collect();
        let timeout = clamp_timeout(0);
        self.txn_start(
            lnet,
            now,
            id,
            srv_reqs,
            timeout,
            Next::AddTestClients {
                spec,
                clients: cli_reqs,
                timeout,
            },
        );
        Ok(())
    }

    /// Ends the session without reporting (forced replacement, expiry):
    /// RMSN to ACTIVE nodes, fire and forget.
    fn console_end_silently(&mut self, lnet: &mut Lnet, now: Instant) {
        let Some(s) = self.console.session.as_ref() else {
            return;
        };
        let active: Vec<(ProcessId, FwReq)> = s
            .nodes
            .iter()
            .filter(|n| n.state == NodeState::Active)
            .map(|n| (n.id, FwReq::Rmsn))
            .collect();
        self.console.next_txn += 1;
        let id = self.console.next_txn;
        self.txn_start(lnet, now, id, active, clamp_timeout(0), Next::Silent);
        self.console.session = None;
    }

    /// Posts one RPC per node; finishes at once when there is none.
    fn txn_start(
        &mut self,
        lnet: &mut Lnet,
        now: Instant,
        id: u64,
        reqs: Vec<(ProcessId, FwReq)>,
        timeout: Duration,
        next: Next,
    ) {
        let (sid, feats, sname) = match &self.console.session {
            Some(s) => (s.sid, s.features, s.name.clone()),
            None => (Sid::NONE, 0, String::new()),
        };
        let _ = sname;
        let mksn = reqs.iter().any(|(_, r)| matches!(r, FwReq::Mksn { .. }));
        let n = reqs.len();
        self.console.txns.insert(
            id,
            Txn {
                entries: reqs
                    .iter()
                    .map(|(p, _)| NodeEntry {
                        id: *p,
                        state: NodeState::Unknown,
                        rpc_errno: 0,
                        sid: Sid::NONE,
                        fw_errno: 0,
                        reply: None,
                    })
                    .collect(),
                rpcs: vec![None; n],
                pending: n,
                next,
                mksn,
                sid,
            },
        );
        for (idx, (peer, req)) in reqs.into_iter().enumerate() {
            let bulk = match &req {
                FwReq::Test {
                    is_client: true,
                    dests,
                    ..
                } => CliBulk::Source {
                    buf: IoBuf::from_vec(emit_dests(dests)).into(),
                },
                _ => CliBulk::None,
            };
            let r = self.client_rpc(
                lnet,
                now,
                peer,
                req.service(),
                bulk,
                Some(timeout),
                Owner::Console { op: id, idx },
                |rpyid, bulkid| SrpcMsg::new(feats, req.body(sid, rpyid, bulkid)),
            );
            match r {
                Ok(rpc) => {
                    if let Some(t) = self.console.txns.get_mut(&id) {
                        t.rpcs[idx] = Some(rpc);
                    }
                }
                Err(e) => self.txn_entry_done(id, idx, Err(e), now),
            }
        }
        self.txn_maybe_finish(lnet, now, id);
    }

    /// Records one node's outcome and refreshes its console state.
    fn txn_entry_done(&mut self, id: u64, idx: usize, res: RpcResult, now: Instant) {
        let Some(t) = self.console.txns.get_mut(&id) else {
            return;
        };
        let Some(e) = t.entries.get_mut(idx) else {
            return;
        };
        if let Some(r) = t.rpcs.get_mut(idx) {
            *r = None;
        }
        t.pending = t.pending.saturating_sub(1);
        let mksn = t.mksn;
        let txn_sid = t.sid;
        let session = self.console.session.as_mut().filter(|s| s.sid == txn_sid);
        match res {
            Err(errno) => {
                e.rpc_errno = errno;
                e.state = NodeState::Down;
            }
            Ok((msg, _)) => {
                e.fw_errno = msg.body.status().unwrap_or(0) as i32;
                e.sid = msg.body.reply_sid().unwrap_or(Sid::NONE);
                e.state = match &session {
                    _ if e.sid.is_none() => NodeState::Unknown,
                    Some(s) if s.sid == e.sid => NodeState::Active,
                    _ => NodeState::Busy,
                };
                if let Some(s) = session {
                    if mksn && e.fw_errno == 0 && e.state == NodeState::Active {
                        if !s.feats_fixed {
                            s.features = msg.ses_feats;
                            s.feats_fixed = true;
                        } else if msg.ses_feats != s.features {
                            e.fw_errno = errno::EPROTO;
                        }
                    }
                    let timeout = match &msg.body {
                        Body::MksnReply { timeout, .. } | Body::DebugReply { timeout, .. } => {
                            Some(*timeout)
                        }
                        _ => None,
                    };
                    if let Some(n) = s.node_mut(&e.id) {
                        n.last_heard = Some(now);
                        if let Some(t) = timeout {
                            n.timeout = t;
                        }
                    }
                }
                e.reply = Some(msg.body);
            }
        }
        let state = e.state;
        let id_ = e.id;
        if let Some(s) = self.console.session.as_mut().filter(|s| s.sid == txn_sid) {
            if let Some(n) = s.node_mut(&id_) {
                n.state = state;
            }
        }
    }

    pub(super) fn console_rpc_done(
        &mut self,
        lnet: &mut Lnet,
        now: Instant,
        _wall: Duration,
        op: u64,
        idx: usize,
        res: RpcResult,
    ) {
        self.txn_entry_done(op, idx, res, now);
        self.txn_maybe_finish(lnet, now, op);
    }

    fn txn_maybe_finish(&mut self, lnet: &mut Lnet, now: Instant, id: u64) {
        if self.console.txns.get(&id).is_none_or(|t| t.pending > 0) {
            return;
        }
        let Some(t) = self.console.txns.remove(&id) else {
            return;
        };
        let entries = t.entries;
        match t.next {
            Next::Report => self.finish(id, Ok(ConsoleReply::Nodes(entries))),
            Next::Silent => {}
            Next::EndSession => {
                self.console.session = None;
                self.finish(id, Ok(ConsoleReply::Nodes(entries)));
            }
            Next::DelGroup(name) => {
                if let Some(s) = self.console.session.as_mut() {
                    s.groups.retain(|g| g.name != name);
                    drop_orphans(s);
                }
                self.finish(id, Ok(ConsoleReply::Nodes(entries)));
            }
            Next::Remove(name, ids) => {
                if let Some(s) = self.console.session.as_mut() {
                    if let Some(g) = s.groups.iter_mut().find(|g| g.name == name) {
                        g.nodes.retain(|n| !ids.contains(n));
                    }
                    drop_orphans(s);
                }
                self.finish(id, Ok(ConsoleReply::Nodes(entries)));
            }
            Next::AddTestClients {
                spec,
                clients,
                timeout,
            } => {
                self.txn_start(
                    lnet,
                    now,
                    id,
                    clients,
                    timeout,
                    Next::AddTestDone {
                        spec,
                        servers: entries,
                    },
                );
            }
            Next::AddTestDone { spec, mut servers } => {
                if let Some(s) = self.console.session.as_mut() {
                    if let Some(b) = s.batches.iter_mut().find(|b| b.name == spec.batch) {
                        b.tests.push(spec);
                    }
                }
                servers.extend(entries);
                self.finish(id, Ok(ConsoleReply::Nodes(servers)));
            }
            Next::Run(name) => {
                if entries.iter().any(NodeEntry::ok) {
                    self.set_running(&name, true);
                }
                self.finish(id, Ok(ConsoleReply::Nodes(entries)));
            }
            Next::Stop(name) => {
                self.finish(id, Ok(ConsoleReply::Nodes(entries)));
                let _ = name;
            }
            Next::Query(name) => {
                let running = entries.iter().any(|e| {
                    e.ok() && matches!(e.reply, Some(Body::BatchReply { active, .. }) if active > 0)
                });
                if !running {
                    self.set_running(&name, false);
                }
                self.finish(id, Ok(ConsoleReply::Nodes(entries)));
            }
        }
    }

    fn set_running(&mut self, batch: &str, running: bool) {
        if let Some(s) = self.console.session.as_mut() {
            if let Some(b) = s.batches.iter_mut().find(|b| b.name == batch) {
                b.running = running;
            }
        }
    }

    /// The pinger (`lstcon_rpc_pinger`).
    pub(super) fn console_timeout(&mut self, lnet: &mut Lnet, now: Instant, _wall: Duration) {
        let Some(s) = self.console.session.as_mut() else {
            return;
        };
        if now < s.next_ping {
            return;
        }
        s.next_ping = now.saturating_add(Duration::from_secs(PING_INTERVAL));
        let idle = now.since(s.last_cmd);
        if idle > Duration::from_secs(u64::from(s.timeout)) {
            tracing::warn!(
                "selftest console: no lst command for {} s (session {}, --timeout {}): \
                 ending the session on its nodes, as upstream",
                idle.as_secs(),
                s.name,
                s.timeout
            );
            let expired = (s.key, s.name.clone(), s.timeout);
            self.console_end_silently(lnet, now);
            self.console.expired = Some(expired);
            return;
        }
        let stale: Vec<(ProcessId, FwReq)> = s
            .nodes
            .iter()
            .filter(|n| n.state == NodeState::Active && n.timeout > 0)
            .filter(|n| {
                n.last_heard
                    .is_none_or(|t| now.since(t) >= Duration::from_secs(u64::from(n.timeout) / 2))
            })
            .map(|n| (n.id, FwReq::Debug))
            .collect();
        if stale.is_empty() {
            return;
        }
        self.console.next_txn += 1;
        let id = self.console.next_txn;
        self.txn_start(lnet, now, id, stale, clamp_timeout(0), Next::Silent);
    }
}

fn session_info(s: &ConSession) -> SessionInfo {
    SessionInfo {
        name: s.name.clone(),
        sid: s.sid,
        key: s.key,
        features: s.features,
        timeout: s.timeout,
        force: s.force,
        nodes: s.nodes.len() as u32,
    }
}

/// Forgets nodes that belong to no group.
fn drop_orphans(s: &mut ConSession) {
    let groups = &s.groups;
    s.nodes
        .retain(|n| groups.iter().any(|g| g.nodes.contains(&n.id)));
}

fn resolve(s: &ConSession, t: &Targets) -> Result<Vec<ProcessId>, ConsoleError> {
    Ok(match t {
        Targets::Session => s.nodes.iter().map(|n| n.id).collect(),
        Targets::Group(g) => s
            .group(g)
            .ok_or_else(|| ConsoleError::not_found(g))?
            .nodes
            .clone(),
        Targets::Batch { name, server } => {
            let b = s.batch(name).ok_or_else(|| ConsoleError::not_found(name))?;
            batch_nodes(s, b, *server)
        }
        Targets::Nodes(ids) => {
            if ids.is_empty() {
                return Err(ConsoleError::invalid());
            }
            ids.clone()
        }
    })
}

/// The client (or server) nodes of a batch: members of its tests' source
/// (or destination) groups, each once.
fn batch_nodes(s: &ConSession, b: &ConBatch, server: bool) -> Vec<ProcessId> {
    let mut out: Vec<ProcessId> = Vec::new();
    for t in &b.tests {
        let g = if server { &t.to } else { &t.from };
        if let Some(g) = s.group(g) {
            for n in &g.nodes {
                if !out.contains(n) {
                    out.push(*n);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::wire::{LnetCountersCommon, SfwCounters};
    use super::*;

    fn p(i: u64) -> ProcessId {
        ProcessId::lustre(Nid::from_nid4(0x0002_0000_0a00_0000 | i))
    }

    #[test]
    fn windows_follow_dist_and_span() {
        let d: Vec<ProcessId> = (1..=4).map(p).collect();
        // dist 2, span 2: clients 0,1 -> servers 0,1; clients 2,3 -> 2,3; 4 -> 0,1.
        assert_eq!(client_window(0, 2, 2, &d), vec![d[0], d[1]]);
        assert_eq!(client_window(1, 2, 2, &d), vec![d[0], d[1]]);
        assert_eq!(client_window(2, 2, 2, &d), vec![d[2], d[3]]);
        assert_eq!(client_window(4, 2, 2, &d), vec![d[0], d[1]]);
        // Wrapping: span 3 from start 3.
        assert_eq!(client_window(1, 1, 3, &d), vec![d[3], d[0], d[1]]);
        // The spec's example: 4 clients, --distribute 4:2 over 2 servers.
        let s: Vec<ProcessId> = (1..=2).map(p).collect();
        for i in 0..4 {
            assert_eq!(client_window(i, 4, 2, &s), s);
        }
        assert_eq!(server_loop_hint(4, 2, 4, 2, 8), 32);
        assert_eq!(server_loop_hint(3, 2, 1, 1, 1), 2);
    }

    #[test]
    fn stat_rates_and_min_skips_zero() {
        let entry = |i: u64, ms: u32, rc: u32, sl: u64| NodeEntry {
            id: p(i),
            state: NodeState::Active,
            rpc_errno: 0,
            sid: Sid::NONE,
            fw_errno: 0,
            reply: Some(Body::StatReply {
                status: 0,
                sid: Sid::NONE,
                fw: SfwCounters {
                    running_ms: ms,
                    ..Default::default()
                },
                rpc: Default::default(),
                lnet: LnetCountersCommon {
                    recv_count: rc,
                    send_length: sl,
                    ..Default::default()
                },
            }),
        };
        let prev = vec![entry(1, 1000, 0, 0), entry(2, 1000, 0, 0)];
        let cur = vec![entry(1, 3000, 200, 4 << 20), entry(2, 3000, 0, 0)];
        let s = stat_compute(&prev, &cur, false);
        assert_eq!(s.nodes, 2);
        assert_eq!(s.recv_rate.avg, 50.0);
        assert_eq!(s.recv_rate.max, 100.0);
        assert_eq!(s.recv_rate.min, 100.0, "0 is never the min");
        assert_eq!(s.send_bw.max, 2.0, "4 MiB over 2 s");
        let mut bad = cur.clone();
        bad[1].rpc_errno = -110;
        assert_eq!(stat_compute(&prev, &bad, true).failed, 1);
    }

    #[test]
    fn timeouts_clamp() {
        assert_eq!(clamp_timeout(0), Duration::from_secs(30));
        assert_eq!(clamp_timeout(1), Duration::from_secs(3));
        assert_eq!(clamp_timeout(99), Duration::from_secs(30));
        assert_eq!(clamp_timeout(5), Duration::from_secs(5));
    }
}
