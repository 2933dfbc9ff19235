//! # lnet-selftest: LNet selftest (`lnet/selftest/`): the test-node side and the console,
//! sans-IO over the engine (spec `selftest.md`, `wire.md` §8).
//!
//! One [`Selftest`] object lives next to the [`Lnet`] it drives. Layers:
//! * [`wire`]: the 160-byte `srpc_msg` and its bodies (`rpc.h`).
//! * `rpc` (`rpc.c`): client RPCs (reply and bulk MDs on portal 52, the
//!   request PUT to portal 50/51, completion or `rpc_timeout`) and server
//!   RPCs (request buffers on the lazy portals 50/51, bulk PUT/GET by the
//!   server, the reply), with `srpc_counters`.
//! * `framework` (`framework.c`, `brw_test.c`, `ping_test.c`): the test node:
//!   session, batches, test instances and units, the PING and BRW services
//!   and clients, `sfw_counters`.
//! * [`console`] (`console.c`, `conrpc.c`, `conctl.c`): sessions, groups,
//!   batches, tests and transactions, driven by `lst` through
//!   [`Selftest::console`].
//!
//! Call order: [`Selftest::new`] once after the engine exists (it posts the
//! request buffers); route every [`MdEvent`] to [`Selftest::handle_event`]
//! (it returns `false` for events that are not selftest's: its MDs are
//! recognised by their `user_ptr` tag); call [`Selftest::handle_timeout`] at
//! [`Selftest::poll_timeout`]; after each call drain the engine as usual and
//! collect finished console commands with [`Selftest::poll_console_done`].
//! Every input takes `now` (monotonic) and, where ids or stamps need it, the
//! wall clock as a [`Duration`] since the Unix epoch.
//!
//! Like the engine it runs on, this crate is sans-IO: it must not depend on
//! threads, clocks, sockets, serde, liblnetconfig, clap, nix or a tracing
//! subscriber (STYLE.md §2); the node runtime (`lnetd`) drives it.

#![forbid(unsafe_code)]

use std::collections::{BTreeSet, VecDeque};

use lnd_api::PayloadSpan;

use lnet_core::event::MdEvent;
use lnet_core::hash::FastMap;
use lnet_core::md::MdHandle;
use lnet_core::ni::Lnet;
use lnet_core::time::{Duration, Instant};

mod api;
mod bufs;
pub mod console;
mod framework;
mod rpc;
pub mod stack;
pub mod wire;

pub use console::{
    stat_compute, BatchInfo, ConsoleError, ConsoleReply, ConsoleRequest, GroupInfo, NodeEntry,
    NodeState, SessionInfo, Spread, StatSample, Targets, TestInfo, TestSpec, TestType, TxnId,
    UpdateAction,
};
pub use framework::{brw_check_data, brw_fill_data};
pub use stack::{Stack, StackEvent};
pub use wire::{LnetCountersCommon, SfwCounters, Sid, SrpcCounters};

/// `SRPC_REQUEST_PORTAL`: requests to test services.
pub const SRPC_REQUEST_PORTAL: u32 = 50;
/// `SRPC_FRAMEWORK_REQUEST_PORTAL`: requests to framework services.
pub const SRPC_FRAMEWORK_REQUEST_PORTAL: u32 = 51;
/// `SRPC_RDMA_PORTAL`: replies and bulk data.
pub const SRPC_RDMA_PORTAL: u32 = 52;
/// Page size the BRW test counts in (`PAGE_SIZE`).
pub const PAGE_SIZE: u32 = 4096;
/// Largest BRW transfer (`LNET_MTU`).
pub const BRW_MAX_LEN: u32 = 1 << 20;

/// Errnos selftest reports that `lnd_api::errno` lacks (Linux values).
pub mod errno {
    pub use lnd_api::errno::*;
    /// No such process / session.
    pub const ESRCH: i32 = 3;
    /// Permission denied (key mismatch).
    pub const EACCES: i32 = 13;
    /// Bad message (data check failed).
    pub const EBADMSG: i32 = 74;
    /// Session shutting down.
    pub const ESHUTDOWN: i32 = 108;
}

/// Module parameters of the test node (selftest.md §6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Params {
    /// Session expiry without framework RPCs, seconds (0 = never).
    pub session_timeout: u32,
    /// Test RPC timeout, seconds (0 = never).
    pub rpc_timeout: u32,
    /// Most concurrent BRW server RPCs (and 1 MiB server buffers).
    pub brw_srv_workitems: u32,
    /// Most concurrent PING server RPCs.
    pub ping_srv_workitems: u32,
    /// Data errors to inject into magic-pattern fills.
    pub brw_inject_errors: u32,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            session_timeout: 100,
            rpc_timeout: 64,
            brw_srv_workitems: 2048,
            ping_srv_workitems: 2048,
            brw_inject_errors: 0,
        }
    }
}

/// A module parameter that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("selftest parameter {name}={value}: {reason}")]
pub struct ParamError {
    /// The parameter.
    pub name: String,
    /// The value given.
    pub value: String,
    /// What is wrong and what to do.
    pub reason: &'static str,
}

impl Params {
    /// Picks the selftest parameters out of `NAME=VALUE` module parameters;
    /// others are ignored. Negative or non-numeric values are refused.
    pub fn from_module_params(params: &[(String, String)]) -> Result<Params, ParamError> {
        let mut p = Params::default();
        for (k, v) in params {
            let slot = match k.as_str() {
                "session_timeout" => &mut p.session_timeout,
                "rpc_timeout" => &mut p.rpc_timeout,
                "brw_srv_workitems" => &mut p.brw_srv_workitems,
                "ping_srv_workitems" => &mut p.ping_srv_workitems,
                "brw_inject_errors" => &mut p.brw_inject_errors,
                _ => continue,
            };
            let v_ = v.trim();
            let parsed = match v_.strip_prefix("0x").or_else(|| v_.strip_prefix("0X")) {
                Some(hex) => u32::from_str_radix(hex, 16),
                None => v_.parse::<u32>(),
            };
            *slot = parsed.map_err(|_| ParamError {
                name: k.clone(),
                value: v.clone(),
                reason: "expected a non-negative integer",
            })?;
        }
        if p.brw_srv_workitems == 0 || p.ping_srv_workitems == 0 {
            return Err(ParamError {
                name: "brw_srv_workitems/ping_srv_workitems".into(),
                value: "0".into(),
                reason: "a service needs at least one work item",
            });
        }
        Ok(p)
    }
}

/// Tag in the top 16 bits of every selftest MD's `user_ptr` ("ST").
const TAG: u64 = 0x5354;
const ID_MASK: u64 = (1 << 40) - 1;

/// What an MD of ours is for (bits 40..47 of `user_ptr`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum MdKind {
    /// A posted request buffer of a service.
    ReqBuf = 1,
    /// A client RPC's request (bound, PUT).
    CliReq = 2,
    /// A client RPC's reply sink (portal 52).
    CliReply = 3,
    /// A client RPC's bulk buffer (portal 52).
    CliBulk = 4,
    /// A server RPC's bulk PUT/GET MD.
    SrvBulk = 5,
    /// A server RPC's reply (bound, PUT).
    SrvReply = 6,
}

impl MdKind {
    fn from_u8(v: u8) -> Option<MdKind> {
        Some(match v {
            1 => MdKind::ReqBuf,
            2 => MdKind::CliReq,
            3 => MdKind::CliReply,
            4 => MdKind::CliBulk,
            5 => MdKind::SrvBulk,
            6 => MdKind::SrvReply,
            _ => return None,
        })
    }
}

fn tag(kind: MdKind, id: u64) -> u64 {
    (TAG << 48) | ((kind as u64) << 40) | (id & ID_MASK)
}

fn untag(user_ptr: u64) -> Option<(MdKind, u64)> {
    if user_ptr >> 48 != TAG {
        return None;
    }
    Some((MdKind::from_u8((user_ptr >> 40) as u8)?, user_ptr & ID_MASK))
}

/// Whether an MD event belongs to selftest (by its `user_ptr` tag).
pub fn is_selftest_md(user_ptr: u64) -> bool {
    untag(user_ptr).is_some()
}

/// The request buffers of one service: how many it wants posted and how
/// many are.
#[derive(Debug, Clone, Copy)]
struct SvcBufs {
    svc: u32,
    want: u32,
    posted: u32,
}

impl SvcBufs {
    fn new(svc: u32, want: u32) -> SvcBufs {
        SvcBufs {
            svc,
            want,
            posted: 0,
        }
    }
}

/// A posted request buffer.
#[derive(Debug)]
struct ReqBuf {
    service: u32,
    buf: PayloadSpan,
    md: MdHandle,
}

/// The 1 MiB server bulk buffers, allocated on first need and reused.
#[derive(Debug, Default)]
struct BulkPool {
    free: Vec<PayloadSpan>,
    allocated: u32,
}

/// Selftest on one node: test services, test clients and the console.
#[derive(Debug)]
pub struct Selftest {
    params: Params,
    /// `rpyid`/`bulkid` counter (pre-incremented).
    next_wire_id: u64,
    /// Internal ids for RPCs and buffers (40 bits in tags).
    next_id: u64,
    reqbufs: FastMap<u64, ReqBuf>,
    /// Request buffers wanted and posted per service (a handful of
    /// services: a list, looked through on every re-post without hashing).
    svc_bufs: Vec<SvcBufs>,
    /// Request buffers were taken since the last re-post (see
    /// `Selftest::on_request`): re-posted at the next server event.
    repost_due: bool,
    clients: FastMap<u64, rpc::ClientRpc>,
    servers: FastMap<u64, rpc::ServerRpc>,
    /// Server RPCs whose reply is under way and that need nothing else
    /// (a ping's): only their ids, so that the reply's completion moves
    /// no stored request (see `Selftest::on_request`).
    replying: lnet_core::hash::FastSet<u64>,
    /// Client RPC deadlines.
    deadlines: BTreeSet<(Instant, u64)>,
    counters: SrpcCounters,
    pool: BulkPool,
    /// Message buffers for requests and replies.
    msg_bufs: bufs::MsgBufs,
    /// BRW server RPCs waiting for a pool buffer.
    brw_waiting: VecDeque<u64>,
    /// Data errors still to inject.
    inject_left: u32,
    /// PING client sequence (`lst_ping_data.pnd_seq`).
    ping_seq: u32,
    fw: framework::Framework,
    console: console::Console,
    /// How this node's test RPCs ended.
    tally: TestRpcTally,
}

/// The test RPCs this node's client units started since selftest started,
/// and how each ended: every one is done, errored or aborted once it is no
/// longer in flight (issue 11: every RPC accounted).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TestRpcTally {
    /// Posted (request, reply and bulk MDs set up, the request sent).
    pub started: u64,
    /// Ended with a good reply (and, for a BRW read, good data).
    pub done: u64,
    /// Ended with an error: transport failure, `rpc_timeout`, an error
    /// status or bad data (each counted in `brw_errors`/`ping_errors`).
    pub errored: u64,
    /// Aborted by `lst stop --force` (not errors, as upstream).
    pub aborted: u64,
    /// Could not be posted at all (also counted as test errors).
    pub unposted: u64,
}

impl TestRpcTally {
    /// Started and not ended yet.
    #[must_use]
    pub fn in_flight(&self) -> u64 {
        self.started
            .saturating_sub(self.done + self.errored + self.aborted)
    }
}

impl Selftest {
    /// Starts selftest on `lnet`: makes portals 50 and 51 lazy and posts the
    /// request buffers of every service. `wall` (time since the Unix epoch)
    /// seeds the `rpyid`/`bulkid` counter with `seconds << 48`.
    pub fn new(lnet: &mut Lnet, now: Instant, wall: Duration, params: Params) -> Selftest {
        let mut st = Selftest {
            params,
            next_wire_id: wall.as_secs() << 48,
            next_id: 1,
            reqbufs: FastMap::default(),
            svc_bufs: Vec::new(),
            repost_due: false,
            clients: FastMap::default(),
            servers: FastMap::default(),
            replying: lnet_core::hash::FastSet::default(),
            deadlines: BTreeSet::new(),
            counters: SrpcCounters::default(),
            pool: BulkPool::default(),
            msg_bufs: bufs::MsgBufs::default(),
            brw_waiting: VecDeque::new(),
            inject_left: params.brw_inject_errors,
            ping_seq: 0,
            fw: framework::Framework::default(),
            console: console::Console::default(),
            tally: TestRpcTally::default(),
        };
        lnet.set_lazy_portal(SRPC_REQUEST_PORTAL, true);
        lnet.set_lazy_portal(SRPC_FRAMEWORK_REQUEST_PORTAL, true);
        use wire::service::*;
        for svc in [DEBUG, MAKE_SESSION, REMOVE_SESSION, BATCH, TEST, QUERY_STAT] {
            st.svc_bufs.push(SvcBufs::new(svc, 16));
        }
        st.svc_bufs.push(SvcBufs::new(BRW, 256));
        st.svc_bufs.push(SvcBufs::new(PING, 256));
        st.size_reqbufs();
        st.post_buffers(lnet);
        let _ = now;
        st
    }

    /// The parameters in force.
    pub fn params(&self) -> Params {
        self.params
    }

    /// Node-wide RPC counters (`srpc_counters`).
    pub fn rpc_counters(&self) -> SrpcCounters {
        self.counters
    }

    /// This node's framework counters (`sfw_counters`) at `now`.
    pub fn fw_counters(&self, now: Instant) -> SfwCounters {
        self.fw.counters(now)
    }

    /// Number of 160-byte message buffers made so far (they are reused).
    pub fn msg_buffers_made(&self) -> usize {
        self.msg_bufs.made()
    }

    /// Number of 1 MiB server bulk buffers allocated so far.
    pub fn bulk_buffers_allocated(&self) -> u32 {
        self.pool.allocated
    }

    /// Client and server RPCs in progress (diagnostics and tests).
    pub fn rpcs_in_flight(&self) -> (usize, usize) {
        (self.clients.len(), self.servers.len() + self.replying.len())
    }

    /// How this node's test RPCs ended so far.
    pub fn test_rpcs(&self) -> TestRpcTally {
        self.tally
    }

    /// The current session of this test node, if any.
    pub fn node_session(&self) -> Option<(Sid, String)> {
        self.fw.session_id()
    }

    fn alloc_id(&mut self) -> u64 {
        let id = self.next_id & ID_MASK;
        self.next_id = self.next_id.wrapping_add(1);
        if self.next_id & ID_MASK == 0 {
            self.next_id = 1;
        }
        id
    }

    /// A new `rpyid`/`bulkid`.
    fn wire_id(&mut self) -> u64 {
        self.next_wire_id = self.next_wire_id.wrapping_add(1);
        self.next_wire_id
    }

    /// Feeds an MD event. Returns `false` if the MD is not selftest's (the
    /// caller handles it); `true` when consumed.
    pub fn handle_event(
        &mut self,
        lnet: &mut Lnet,
        now: Instant,
        wall: Duration,
        ev: &MdEvent,
    ) -> bool {
        let Some((kind, id)) = untag(ev.user_ptr) else {
            return false;
        };
        match kind {
            MdKind::ReqBuf => self.on_request(lnet, now, wall, id, ev),
            MdKind::CliReq | MdKind::CliReply | MdKind::CliBulk => {
                self.on_client_event(lnet, now, wall, kind, id, ev)
            }
            MdKind::SrvBulk | MdKind::SrvReply => {
                self.on_server_event(lnet, now, wall, kind, id, ev);
                // The reply or bulk is on its way: re-post off its path.
                self.repost_if_due(lnet);
            }
        }
        true
    }

    /// Request buffers of service `svc` (`wire::service`): how many are
    /// posted now and how many the service wants. A request takes one; it
    /// is re-posted once its reply or bulk is on its way, or at once when
    /// fewer than half are left.
    pub fn request_buffers(&self, svc: u32) -> (u32, u32) {
        self.svc_bufs
            .iter()
            .find(|b| b.svc == svc)
            .map_or((0, 0), |b| (b.posted, b.want))
    }

    /// Runs the timers that are due: client RPC timeouts, the node's session
    /// expiry, console transaction timeouts and the console pinger.
    pub fn handle_timeout(&mut self, lnet: &mut Lnet, now: Instant, wall: Duration) {
        while let Some(&(t, id)) = self.deadlines.iter().next() {
            if t > now {
                break;
            }
            self.deadlines.remove(&(t, id));
            if self.clients.contains_key(&id) {
                self.counters.rpcs_expired = self.counters.rpcs_expired.wrapping_add(1);
                self.client_abort(lnet, now, wall, id, -errno::ETIMEDOUT);
            }
        }
        self.fw_timeout(lnet, now, wall);
        self.console_timeout(lnet, now, wall);
        self.repost_if_due(lnet);
    }

    /// When [`Selftest::handle_timeout`] should next be called.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut t = self.deadlines.iter().next().map(|(t, _)| *t);
        for c in [self.fw.poll_timeout(), self.console.poll_timeout()]
            .into_iter()
            .flatten()
        {
            t = Some(t.map_or(c, |x| x.min(c)));
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_round_trip_and_foreign_pointers_are_not_ours() {
        let t = tag(MdKind::CliBulk, 0x12_3456_789A);
        assert_eq!(untag(t), Some((MdKind::CliBulk, 0x12_3456_789A)));
        assert!(is_selftest_md(t));
        assert!(!is_selftest_md(0));
        assert!(!is_selftest_md(0x5354_0000_0000_0000), "kind 0 is not ours");
    }

    /// Issue #6 item 8: each request moves a posted buffer to a new id
    /// (remove + insert); the table of posted buffers must absorb that
    /// churn forever without growing (a late resize was one allocation of
    /// 133 136 bytes in the middle of a loaded brw batch).
    #[test]
    fn issue_6_item_8_request_buffer_churn_never_resizes() {
        let now = Instant::ZERO;
        let mut lnet = Lnet::new(lnet_core::Config::default(), now);
        let mut st = Selftest::new(&mut lnet, now, Duration::ZERO, Params::default());
        // What a server's add_test asks for with the default work items.
        st.want_buffers(&mut lnet, wire::service::BRW, 2048 + 64);
        st.want_buffers(&mut lnet, wire::service::PING, 2048 + 64);
        let live = st.reqbufs.len();
        assert!(live >= 2 * (2048 + 64), "{live} buffers posted");
        let cap = st.reqbufs.capacity();
        assert!(cap >= 2 * live, "capacity {cap} for {live} live buffers");
        let mut ids: VecDeque<u64> = st.reqbufs.keys().copied().collect();
        for (i, next) in (1u64 << 39..).take(200_000).enumerate() {
            let old = ids.pop_front().expect("a posted buffer");
            let rb = st.reqbufs.remove(&old).expect("posted");
            st.reqbufs.insert(next, rb);
            ids.push_back(next);
            // Removed entries leave tombstones that lower the reported
            // capacity until an in-place rehash clears them; a resize
            // would double it.
            assert!(
                st.reqbufs.capacity() <= cap,
                "the table was resized after {i} requests"
            );
        }
    }

    #[test]
    fn params_parse_and_refuse() {
        let p = Params::from_module_params(&[
            ("session_timeout".into(), "0".into()),
            ("rpc_timeout".into(), "5".into()),
            ("other".into(), "x".into()),
        ])
        .expect("valid");
        assert_eq!(p.session_timeout, 0);
        assert_eq!(p.rpc_timeout, 5);
        assert_eq!(p.brw_srv_workitems, 2048);
        let p = Params::from_module_params(&[("brw_srv_workitems".into(), "0x10".into())])
            .expect("hex");
        assert_eq!(p.brw_srv_workitems, 16);
        let e = Params::from_module_params(&[("rpc_timeout".into(), "-1".into())])
            .expect_err("negative");
        assert!(e.to_string().contains("rpc_timeout=-1"), "{e}");
    }
}
