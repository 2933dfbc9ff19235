//! The test node (`lnet/selftest/framework.c`, `brw_test.c`, `ping_test.c`;
//! selftest.md §3.2, §3.4–§3.6).
//!
//! A node holds at most one session (MKSN/RMSN, with a reference count, a
//! `session_timeout` re-armed by every framework RPC); a replaced or expired
//! session stops its batches and lingers as a zombie until its units have
//! wound down. A session has batches (by `bid`), a batch has test instances
//! in order of addition (1, 2, …), a client instance has `concur` units per
//! destination, each keeping one RPC in flight until its loop count is used
//! up, the batch is stopped, or an RPC fails (`stop_onerr`).

use lnd_api::{IoBuf, PayloadSpan};

use super::bufs::{self, bytes, bytes_mut};

use super::rpc::{Action, After, CliBulk, Owner, RpcResult, ServerCtx};
use super::wire::{
    batch_opc, brw_check, brw_rw, parse_dests, service, Body, ByteOrder, SfwCounters, Sid, SrpcMsg,
    TestParams, BRW_MAGIC, BRW_POISON, LST_FEATS_MASK, LST_FEAT_BULK_LEN, LST_PING_TEST_MAGIC,
    PROCESS_ID_PACKED_SIZE,
};
use super::{errno, Selftest, BRW_MAX_LEN, PAGE_SIZE};
use lnet_core::ni::Lnet;
use lnet_core::nid::ProcessId;
use lnet_core::time::{Duration, Instant};

/// Largest `concur` of a test (`SFW_MAX_CONCUR`).
const MAX_CONCUR: u32 = 1024;
/// Largest destination count a TEST bulk may carry (1 MiB of entries).
const MAX_NDEST: u32 = BRW_MAX_LEN / PROCESS_ID_PACKED_SIZE as u32;

/// Names one unit: session generation, batch id, test and unit index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct UnitKey {
    gen: u64,
    bid: u64,
    test: usize,
    unit: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TestKind {
    Ping,
    Brw {
        rw: u32,
        len: u32,
        off: u32,
        flags: u32,
    },
}

#[derive(Debug)]
struct Unit {
    dest: ProcessId,
    /// RPCs left; `None` = forever.
    loop_left: Option<u32>,
    rpc: Option<u64>,
    active: bool,
    /// BRW: `off + len` bytes, the data at `off`.
    bulk: Option<PayloadSpan>,
    /// PING: the sequence number sent.
    seq: u32,
}

#[derive(Debug)]
struct TestInst {
    is_client: bool,
    loop_count: u32,
    stop_onerr: bool,
    kind: TestKind,
    units: Vec<Unit>,
    stopping: bool,
}

impl TestInst {
    fn active_units(&self) -> u32 {
        self.units.iter().filter(|u| u.active).count() as u32
    }
}

#[derive(Debug)]
struct Batch {
    bid: u64,
    tests: Vec<TestInst>,
}

impl Batch {
    fn active(&self) -> bool {
        self.tests.iter().any(|t| t.active_units() > 0)
    }
}

#[derive(Debug)]
struct Session {
    gen: u64,
    sid: Sid,
    name: String,
    features: u32,
    refs: u32,
    started: Instant,
    expires: Option<Instant>,
    batches: Vec<Batch>,
    brw_errors: u32,
    ping_errors: u32,
}

/// The test node's state.
#[derive(Debug, Default)]
pub(super) struct Framework {
    current: Option<Session>,
    zombies: Vec<Session>,
    next_gen: u64,
}

impl Framework {
    pub(super) fn counters(&self, now: Instant) -> SfwCounters {
        let mut c = SfwCounters {
            zombie_sessions: self.zombies.len() as u32,
            ..SfwCounters::default()
        };
        if let Some(s) = &self.current {
            c.running_ms = u32::try_from(now.since(s.started).as_millis()).unwrap_or(u32::MAX);
            c.active_batches = s.batches.iter().filter(|b| b.active()).count() as u32;
            c.brw_errors = s.brw_errors;
            c.ping_errors = s.ping_errors;
        }
        c
    }

    /// The current session's id, or `Sid::NONE` (what error replies carry
    /// so the console can tell a busy node from an idle one).
    fn current_sid(&self) -> Sid {
        self.current.as_ref().map_or(Sid::NONE, |s| s.sid)
    }

    pub(super) fn session_id(&self) -> Option<(Sid, String)> {
        self.current.as_ref().map(|s| (s.sid, s.name.clone()))
    }

    pub(super) fn poll_timeout(&self) -> Option<Instant> {
        self.current.as_ref().and_then(|s| s.expires)
    }

    fn session_mut(&mut self, gen: u64) -> Option<&mut Session> {
        if let Some(s) = self.current.as_mut().filter(|s| s.gen == gen) {
            return Some(s);
        }
        self.zombies.iter_mut().find(|s| s.gen == gen)
    }

    fn unit_mut(&mut self, k: UnitKey) -> Option<(&mut TestInst, usize)> {
        let s = self.session_mut(k.gen)?;
        let b = s.batches.iter_mut().find(|b| b.bid == k.bid)?;
        let t = b.tests.get_mut(k.test)?;
        (k.unit < t.units.len()).then_some((t, k.unit))
    }

    fn reap_zombies(&mut self) {
        self.zombies
            .retain(|s| s.batches.iter().any(|b| b.active()));
    }
}

/// Fills a BRW data region with the magic pattern for `flags` (SIMPLE: the
/// first and last word of each page-sized piece; FULL: every word), written
/// in `order`. While `inject` is non-zero one word per fill is corrupted and
/// `inject` decremented (`brw_inject_errors`).
pub fn brw_fill_data(data: &mut [u8], flags: u32, order: ByteOrder, inject: &mut u32) {
    let word = word_bytes(BRW_MAGIC, order);
    let touched = for_each_word(data.len(), flags, |o| {
        if let Some(w) = data.get_mut(o..o + 8) {
            w.copy_from_slice(&word);
        }
    });
    if touched && *inject > 0 {
        *inject -= 1;
        if let Some(w) = data.get_mut(0..8) {
            w.copy_from_slice(&word_bytes(BRW_POISON, order));
        }
    }
}

/// Checks a BRW data region written by a peer in `order`; true when every
/// word `flags` asks for holds the magic.
pub fn brw_check_data(data: &[u8], flags: u32, order: ByteOrder) -> bool {
    let word = word_bytes(BRW_MAGIC, order);
    let mut ok = true;
    for_each_word(data.len(), flags, |o| {
        if data.get(o..o + 8) != Some(&word[..]) {
            ok = false;
        }
    });
    ok
}

/// Fills with the poison (before receiving checked data).
fn poison(data: &mut [u8]) {
    for c in data.chunks_exact_mut(8) {
        c.copy_from_slice(&BRW_POISON.to_le_bytes());
    }
}

fn word_bytes(v: u64, order: ByteOrder) -> [u8; 8] {
    match order {
        ByteOrder::Little => v.to_le_bytes(),
        ByteOrder::Big => v.to_be_bytes(),
    }
}

/// Calls `f` with the offset of every word the check mode covers; returns
/// whether it covers any.
fn for_each_word(len: usize, flags: u32, mut f: impl FnMut(usize)) -> bool {
    let page = PAGE_SIZE as usize;
    match flags {
        brw_check::FULL => {
            let mut o = 0;
            while o + 8 <= len {
                f(o);
                o += 8;
            }
            len >= 8
        }
        brw_check::SIMPLE => {
            let mut start = 0;
            while start < len {
                let end = (start + page).min(len);
                if end - start >= 8 {
                    f(start);
                    let last = start + ((end - start - 8) & !7);
                    if last != start {
                        f(last);
                    }
                }
                start = end;
            }
            len >= 8
        }
        _ => false,
    }
}

fn needs_pattern(flags: u32) -> bool {
    flags == brw_check::SIMPLE || flags == brw_check::FULL
}

impl Selftest {
    /// Re-arms the node's session timer (every framework RPC does).
    fn fw_touch(&mut self, now: Instant) {
        let t = self.params.session_timeout;
        if let Some(s) = self.fw.current.as_mut() {
            s.expires = (t > 0).then(|| now.saturating_add(Duration::from_secs(u64::from(t))));
        }
    }

    /// `sfw_deactivate_session`: stops the batches and keeps the session as
    /// a zombie while units wind down.
    fn fw_deactivate(&mut self, lnet: &mut Lnet, now: Instant, wall: Duration) {
        let Some(s) = self.fw.current.take() else {
            return;
        };
        let gen = s.gen;
        let bids: Vec<u64> = s.batches.iter().map(|b| b.bid).collect();
        self.fw.zombies.push(s);
        for bid in bids {
            self.batch_stop(lnet, now, wall, gen, bid, false);
        }
        self.fw.reap_zombies();
    }

    pub(super) fn fw_timeout(&mut self, lnet: &mut Lnet, now: Instant, wall: Duration) {
        let expired = self
            .fw
            .current
            .as_ref()
            .and_then(|s| s.expires)
            .is_some_and(|t| t <= now);
        if expired {
            if let Some(s) = &self.fw.current {
                tracing::info!("selftest: session {} ({}) expired", s.name, s.sid);
            }
            self.fw_deactivate(lnet, now, wall);
        }
        self.fw.reap_zombies();
    }

    /// Handles a framework request (`sfw_handle_server_rpc`).
    pub(super) fn fw_serve(
        &mut self,
        lnet: &mut Lnet,
        now: Instant,
        wall: Duration,
        ctx: &ServerCtx,
        req: &SrpcMsg,
    ) -> Action {
        self.fw_touch(now);
        let feats = self
            .fw
            .current
            .as_ref()
            .map_or(req.ses_feats, |s| s.features);
        if !matches!(req.body, Body::MksnReq { .. }) {
            let bad = match &self.fw.current {
                Some(s) => s.features != req.ses_feats,
                None => req.ses_feats & !LST_FEATS_MASK != 0,
            };
            if bad {
                let body = super::rpc::error_reply(ctx.service, errno::EPROTO as u32);
                return Action::Reply(body, feats);
            }
        }
        let a = match &req.body {
            Body::MksnReq {
                sid, force, name, ..
            } => self.fw_make_session(lnet, now, wall, req.ses_feats, *sid, *force != 0, name),
            Body::RmsnReq { sid, .. } => self.fw_remove_session(lnet, now, wall, *sid),
            Body::DebugReq { .. } => {
                let (sid, name, nbatch) = match &self.fw.current {
                    Some(s) => (s.sid, s.name.clone(), s.batches.len() as u32),
                    None => (Sid::NONE, String::new(), 0),
                };
                Action::Reply(
                    Body::DebugReply {
                        status: 0,
                        sid,
                        timeout: self.params.session_timeout,
                        nbatch,
                        name,
                    },
                    feats,
                )
            }
            Body::BatchReq {
                sid,
                bid,
                opc,
                testidx,
                arg,
                ..
            } => self.fw_batch(lnet, now, wall, *sid, *bid, *opc, *testidx, *arg),
            Body::StatReq { sid, .. } => self.fw_stat(lnet, now, *sid),
            Body::TestReq { .. } => self.fw_test(lnet, ctx, req),
            _ => Action::Reply(
                super::rpc::error_reply(ctx.service, errno::EOPNOTSUPP as u32),
                feats,
            ),
        };
        self.fw_touch(now);
        a
    }

    #[allow(clippy::too_many_arguments)]
    fn fw_make_session(
        &mut self,
        lnet: &mut Lnet,
        now: Instant,
        wall: Duration,
        feats: u32,
        sid: Sid,
        force: bool,
        name: &str,
    ) -> Action {
        let timeout = self.params.session_timeout;
        let reply = |status: i32, s: Sid, n: String| Body::MksnReply {
            status: status as u32,
            sid: s,
            timeout,
            name: n,
        };
        if feats & !LST_FEATS_MASK != 0 {
            return Action::Reply(
                reply(errno::EPROTO, Sid::NONE, String::new()),
                LST_FEATS_MASK,
            );
        }
        if sid.is_none() {
            return Action::Reply(reply(errno::EINVAL, Sid::NONE, String::new()), feats);
        }
        if let Some(s) = self.fw.current.as_mut() {
            if s.sid == sid {
                if s.features != feats {
                    let f = s.features;
                    return Action::Reply(reply(errno::EPROTO, sid, s.name.clone()), f);
                }
                s.refs += 1;
                return Action::Reply(reply(0, sid, s.name.clone()), feats);
            }
            if !force {
                let f = s.features;
                return Action::Reply(reply(errno::EBUSY, s.sid, s.name.clone()), f);
            }
            tracing::info!(
                "selftest: session {} ({}) taken over by {name} ({sid})",
                s.name,
                s.sid
            );
            self.fw_deactivate(lnet, now, wall);
        }
        self.fw.next_gen += 1;
        let t = self.params.session_timeout;
        self.fw.current = Some(Session {
            gen: self.fw.next_gen,
            sid,
            name: name.to_string(),
            features: feats,
            refs: 1,
            started: now,
            expires: (t > 0).then(|| now.saturating_add(Duration::from_secs(u64::from(t)))),
            batches: Vec::new(),
            brw_errors: 0,
            ping_errors: 0,
        });
        Action::Reply(reply(0, sid, name.to_string()), feats)
    }

    fn fw_remove_session(
        &mut self,
        lnet: &mut Lnet,
        now: Instant,
        wall: Duration,
        sid: Sid,
    ) -> Action {
        let body = |status: i32, sid: Sid| Body::RmsnReply {
            status: status as u32,
            sid,
        };
        let Some(s) = self.fw.current.as_mut() else {
            return Action::Reply(body(errno::ESRCH, Sid::NONE), 0);
        };
        let feats = s.features;
        if s.sid != sid {
            return Action::Reply(body(errno::EBUSY, s.sid), feats);
        }
        s.refs = s.refs.saturating_sub(1);
        if s.refs > 0 {
            return Action::Reply(body(0, sid), feats);
        }
        self.fw_deactivate(lnet, now, wall);
        Action::Reply(body(0, Sid::NONE), feats)
    }

    fn fw_stat(&mut self, lnet: &mut Lnet, now: Instant, sid: Sid) -> Action {
        let cur = self.fw.current_sid();
        let err = |status: i32| Body::StatReply {
            status: status as u32,
            sid: cur,
            fw: SfwCounters::default(),
            rpc: Default::default(),
            lnet: Default::default(),
        };
        if sid.is_none() {
            return Action::Reply(err(errno::EINVAL), 0);
        }
        let Some(s) = self.fw.current.as_ref().filter(|s| s.sid == sid) else {
            return Action::Reply(err(errno::ESRCH), 0);
        };
        let feats = s.features;
        Action::Reply(
            Body::StatReply {
                status: 0,
                sid,
                fw: self.fw.counters(now),
                rpc: self.counters,
                lnet: lnet_counters(lnet),
            },
            feats,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn fw_batch(
        &mut self,
        lnet: &mut Lnet,
        now: Instant,
        wall: Duration,
        sid: Sid,
        bid: u64,
        opc: u32,
        testidx: u32,
        arg: u32,
    ) -> Action {
        let body = |status: i32, sid: Sid, active: u32| Body::BatchReply {
            status: status as u32,
            sid,
            active,
            time: 0,
        };
        let Some(s) = self.fw.current.as_ref().filter(|s| s.sid == sid) else {
            return Action::Reply(body(errno::ESRCH, self.fw.current_sid(), 0), 0);
        };
        let (gen, feats) = (s.gen, s.features);
        let Some(b) = s.batches.iter().find(|b| b.bid == bid) else {
            return Action::Reply(body(errno::ENOENT, sid, 0), feats);
        };
        match opc {
            batch_opc::RUN => {
                self.batch_run(lnet, now, wall, gen, bid);
                Action::Reply(body(0, sid, 0), feats)
            }
            batch_opc::STOP => {
                self.batch_stop(lnet, now, wall, gen, bid, arg != 0);
                Action::Reply(body(0, sid, 0), feats)
            }
            batch_opc::QUERY => {
                let active = if testidx == 0 {
                    b.tests.iter().filter(|t| t.active_units() > 0).count() as u32
                } else {
                    match b.tests.get(testidx as usize - 1) {
                        Some(t) => t.active_units(),
                        None => return Action::Reply(body(errno::ENOENT, sid, 0), feats),
                    }
                };
                Action::Reply(body(0, sid, active), feats)
            }
            _ => Action::Reply(body(errno::EINVAL, sid, 0), feats),
        }
    }

    /// TEST request: validates, then adds a server instance at once or
    /// fetches a client's destination list first (`sfw_add_test`).
    fn fw_test(&mut self, lnet: &mut Lnet, ctx: &ServerCtx, req: &SrpcMsg) -> Action {
        let Body::TestReq {
            sid,
            bid,
            service: svc,
            loop_count,
            concur,
            is_client,
            ndest,
            ..
        } = req.body
        else {
            return Action::Drop;
        };
        let reply = |status: i32, sid: Sid| Body::TestReply {
            status: status as u32,
            sid,
        };
        let Some(s) = self.fw.current.as_ref().filter(|s| s.sid == sid) else {
            return Action::Reply(reply(errno::ENOENT, self.fw.current_sid()), 0);
        };
        let feats = s.features;
        if super::wire::service_request_type(svc).is_none() {
            return Action::Reply(reply(errno::ENOENT, sid), feats);
        }
        if loop_count == 0
            || concur == 0
            || concur > MAX_CONCUR
            || ndest > MAX_NDEST
            || (is_client != 0 && ndest == 0)
            || !(svc == service::BRW || svc == service::PING)
        {
            return Action::Reply(reply(errno::EINVAL, sid), feats);
        }
        if s.batches.iter().any(|b| b.bid == bid && b.active()) {
            return Action::Reply(reply(errno::EBUSY, sid), feats);
        }
        if is_client != 0 {
            let len = ndest as usize * PROCESS_ID_PACKED_SIZE;
            return Action::Bulk {
                put: false,
                buf: IoBuf::zeroed(len).into(),
                len,
                discard: false,
                pooled: false,
                after: After::TestDests,
            };
        }
        // Server: size the request buffers from the loop hint.
        let work = if svc == service::BRW {
            self.params.brw_srv_workitems
        } else {
            self.params.ping_srv_workitems
        };
        let want = 256.max(work.min(loop_count).saturating_add(64));
        self.want_buffers(lnet, svc, want);
        let status = self.fw_add_instance(ctx, req, Vec::new());
        Action::Reply(reply(status, sid), feats)
    }

    /// Adds a test instance to the current session; returns a status.
    fn fw_add_instance(&mut self, ctx: &ServerCtx, req: &SrpcMsg, dests: Vec<ProcessId>) -> i32 {
        let Body::TestReq {
            sid,
            bid,
            service: svc,
            loop_count,
            concur,
            is_client,
            stop_onerr,
            params,
            ..
        } = req.body
        else {
            return errno::EINVAL;
        };
        let _ = ctx;
        let kind = match (svc, params) {
            (service::PING, _) => TestKind::Ping,
            (
                service::BRW,
                TestParams::BrwV1 {
                    opc,
                    flags,
                    len,
                    offset,
                },
            ) => TestKind::Brw {
                rw: u32::from(opc),
                len,
                off: offset,
                flags: u32::from(flags),
            },
            (service::BRW, TestParams::BrwV0 { opc, npages, flags }) => TestKind::Brw {
                rw: opc,
                len: npages.saturating_mul(PAGE_SIZE),
                off: 0,
                flags,
            },
            _ => return errno::EINVAL,
        };
        if let TestKind::Brw {
            rw,
            len,
            off,
            flags,
        } = kind
        {
            if is_client != 0
                && (!(rw == brw_rw::READ || rw == brw_rw::WRITE)
                    || len == 0
                    || len > BRW_MAX_LEN
                    || off % 8 != 0
                    || off >= PAGE_SIZE
                    || !(brw_check::NONE..=brw_check::DISCARD).contains(&flags))
            {
                return errno::EINVAL;
            }
        }
        let Some(s) = self.fw.current.as_mut().filter(|s| s.sid == sid) else {
            return errno::ENOENT;
        };
        let mut units = Vec::new();
        if is_client != 0 {
            for d in &dests {
                for _ in 0..concur {
                    let bulk = match kind {
                        TestKind::Brw { len, off, .. } => {
                            Some(bufs::bulk_buf((off + len) as usize).into())
                        }
                        TestKind::Ping => None,
                    };
                    units.push(Unit {
                        dest: *d,
                        loop_left: None,
                        rpc: None,
                        active: false,
                        bulk,
                        seq: 0,
                    });
                }
            }
        }
        let inst = TestInst {
            is_client: is_client != 0,
            loop_count,
            stop_onerr: stop_onerr != 0,
            kind,
            units,
            stopping: false,
        };
        match s.batches.iter_mut().find(|b| b.bid == bid) {
            Some(b) => b.tests.push(inst),
            None => s.batches.push(Batch {
                bid,
                tests: vec![inst],
            }),
        }
        0
    }

    /// Continues a server RPC after its bulk moved.
    pub(super) fn fw_after_bulk(
        &mut self,
        _lnet: &mut Lnet,
        _now: Instant,
        ctx: &ServerCtx,
        req: &SrpcMsg,
        after: After,
        data: &PayloadSpan,
    ) -> Action {
        match after {
            After::BrwRead => Action::Reply(Body::BrwReply { status: 0 }, req.ses_feats),
            After::BrwWrite { flags } => {
                let ok = !needs_pattern(flags)
                    || bytes(data).is_some_and(|d| brw_check_data(&d, flags, ctx.order));
                let status = if ok { 0 } else { errno::EBADMSG as u32 };
                if !ok {
                    tracing::warn!("selftest: bad BRW data from {}", ctx.peer);
                }
                Action::Reply(Body::BrwReply { status }, req.ses_feats)
            }
            After::TestDests => {
                let Body::TestReq { sid, ndest, .. } = req.body else {
                    return Action::Drop;
                };
                let feats = self
                    .fw
                    .current
                    .as_ref()
                    .map_or(req.ses_feats, |s| s.features);
                let dests = bytes(data).and_then(|b| parse_dests(&b, ndest as usize, ctx.order));
                let status = match dests {
                    Some(d) => self.fw_add_instance(ctx, req, d),
                    None => errno::EINVAL,
                };
                Action::Reply(
                    Body::TestReply {
                        status: status as u32,
                        sid,
                    },
                    feats,
                )
            }
        }
    }

    /// BRW server handler (`brw_server_handle`).
    pub(super) fn brw_serve(&mut self, _ctx: &ServerCtx, req: &SrpcMsg) -> Action {
        let Body::BrwReq { rw, len, flags, .. } = req.body else {
            return Action::Drop;
        };
        let feats = req.ses_feats;
        let reply = |status: i32, f: u32| {
            Action::Reply(
                Body::BrwReply {
                    status: status as u32,
                },
                f,
            )
        };
        if feats & !LST_FEATS_MASK != 0 {
            return reply(errno::EPROTO, LST_FEATS_MASK);
        }
        if !(rw == brw_rw::READ || rw == brw_rw::WRITE)
            || !(brw_check::NONE..=brw_check::DISCARD).contains(&flags)
        {
            return reply(errno::EINVAL, feats);
        }
        if (feats & LST_FEAT_BULK_LEN == 0 && len % PAGE_SIZE != 0) || len == 0 || len > BRW_MAX_LEN
        {
            return reply(errno::EINVAL, feats);
        }
        let Some(buf) = self.pool_take() else {
            return Action::Wait;
        };
        let n = len as usize;
        if needs_pattern(flags) {
            if let Some(mut d) = bytes_mut(&buf) {
                if let Some(d) = d.get_mut(..n) {
                    if rw == brw_rw::READ {
                        brw_fill_data(d, flags, ByteOrder::Little, &mut self.inject_left);
                    } else {
                        poison(d);
                    }
                }
            }
        }
        Action::Bulk {
            put: rw == brw_rw::READ,
            buf,
            len: n,
            discard: rw == brw_rw::WRITE && flags == brw_check::DISCARD,
            pooled: true,
            after: if rw == brw_rw::READ {
                After::BrwRead
            } else {
                After::BrwWrite { flags }
            },
        }
    }

    /// PING server handler (`ping_server_handle`).
    pub(super) fn ping_serve(&mut self, _ctx: &ServerCtx, req: &SrpcMsg) -> Action {
        let Body::PingReq { magic, seq, .. } = req.body else {
            return Action::Drop;
        };
        if magic != LST_PING_TEST_MAGIC {
            return Action::Drop;
        }
        let status = if req.ses_feats & !LST_FEATS_MASK != 0 {
            errno::EPROTO as u32
        } else {
            0
        };
        Action::Reply(
            Body::PingReply {
                status,
                magic: LST_PING_TEST_MAGIC,
                seq,
            },
            req.ses_feats & LST_FEATS_MASK,
        )
    }

    /// Starts every client unit of a batch (`sfw_run_batch`); a batch that
    /// is already active is left alone.
    fn batch_run(&mut self, lnet: &mut Lnet, now: Instant, wall: Duration, gen: u64, bid: u64) {
        let mut keys = Vec::new();
        {
            let Some(s) = self.fw.session_mut(gen) else {
                return;
            };
            let Some(b) = s.batches.iter_mut().find(|b| b.bid == bid) else {
                return;
            };
            if b.active() {
                return;
            }
            for (ti, t) in b.tests.iter_mut().enumerate() {
                if !t.is_client {
                    continue;
                }
                t.stopping = false;
                let lp = (t.loop_count != u32::MAX && (t.loop_count as i32) >= 0)
                    .then_some(t.loop_count);
                for (ui, u) in t.units.iter_mut().enumerate() {
                    u.loop_left = lp;
                    u.active = true;
                    keys.push(UnitKey {
                        gen,
                        bid,
                        test: ti,
                        unit: ui,
                    });
                }
            }
        }
        for k in keys {
            self.unit_step(lnet, now, wall, k);
        }
    }

    /// Stops a batch (`sfw_stop_batch`): units end after their current RPC;
    /// `force` aborts the RPCs in flight with `-EINTR`.
    fn batch_stop(
        &mut self,
        lnet: &mut Lnet,
        now: Instant,
        wall: Duration,
        gen: u64,
        bid: u64,
        force: bool,
    ) {
        let mut abort = Vec::new();
        let was_active;
        {
            let Some(s) = self.fw.session_mut(gen) else {
                return;
            };
            let Some(b) = s.batches.iter_mut().find(|b| b.bid == bid) else {
                return;
            };
            was_active = b.active();
            for t in b.tests.iter_mut().filter(|t| t.is_client) {
                t.stopping = true;
                for u in &mut t.units {
                    if u.active && u.rpc.is_none() {
                        u.active = false;
                    }
                    if force {
                        abort.extend(u.rpc);
                    }
                }
            }
        }
        if was_active && abort.is_empty() {
            // Units without an RPC in flight ended at once.
            self.batch_ended(gen, bid);
        }
        for id in abort {
            self.client_abort(lnet, now, wall, id, -errno::EINTR);
        }
        self.fw.reap_zombies();
    }

    /// Posts a unit's next RPC, or ends the unit.
    fn unit_step(&mut self, lnet: &mut Lnet, now: Instant, wall: Duration, k: UnitKey) {
        let feats = self.fw.session_mut(k.gen).map_or(0, |s| s.features);
        let seq = self.ping_seq.wrapping_add(1);
        let Some((t, ui)) = self.fw.unit_mut(k) else {
            return;
        };
        let kind = t.kind;
        let u = &mut t.units[ui];
        if t.stopping || u.loop_left == Some(0) {
            u.active = false;
            self.unit_ended(k);
            return;
        }
        if let Some(n) = u.loop_left.as_mut() {
            *n -= 1;
        }
        let dest = u.dest;
        let timeout = (self.params.rpc_timeout > 0)
            .then(|| Duration::from_secs(u64::from(self.params.rpc_timeout)));
        let r = match kind {
            TestKind::Ping => {
                u.seq = seq;
                self.ping_seq = seq;
                let (sec, nsec) = (wall.as_secs(), u64::from(wall.subsec_nanos()));
                self.client_rpc(
                    lnet,
                    now,
                    dest,
                    service::PING,
                    CliBulk::None,
                    timeout,
                    Owner::Unit(k),
                    |rpyid, _| {
                        SrpcMsg::new(
                            feats,
                            Body::PingReq {
                                rpyid,
                                magic: LST_PING_TEST_MAGIC,
                                seq,
                                time_sec: sec,
                                time_nsec: nsec,
                            },
                        )
                    },
                )
            }
            TestKind::Brw {
                rw,
                len,
                off,
                flags,
            } => {
                let Some(whole) = u.bulk.clone() else {
                    u.active = false;
                    return;
                };
                let data = whole.sub(off as usize, len as usize).unwrap_or(whole);
                if needs_pattern(flags) {
                    if let Some(mut d) = bytes_mut(&data) {
                        if rw == brw_rw::READ {
                            poison(&mut d);
                        } else {
                            brw_fill_data(&mut d, flags, ByteOrder::Little, &mut self.inject_left);
                        }
                    }
                }
                let bulk = if rw == brw_rw::READ {
                    CliBulk::Sink {
                        buf: data,
                        discard: flags == brw_check::DISCARD,
                    }
                } else {
                    CliBulk::Source { buf: data }
                };
                self.client_rpc(
                    lnet,
                    now,
                    dest,
                    service::BRW,
                    bulk,
                    timeout,
                    Owner::Unit(k),
                    |rpyid, bulkid| {
                        SrpcMsg::new(
                            feats,
                            Body::BrwReq {
                                rpyid,
                                bulkid,
                                rw,
                                len,
                                flags,
                            },
                        )
                    },
                )
            }
        };
        match r {
            Ok(id) => {
                self.tally.started += 1;
                if let Some((t, ui)) = self.fw.unit_mut(k) {
                    t.units[ui].rpc = Some(id);
                }
            }
            Err(e) => {
                tracing::debug!("selftest: cannot post a test RPC to {dest}: errno {e}");
                self.tally.unposted += 1;
                self.unit_error(k, kind);
                if let Some((t, ui)) = self.fw.unit_mut(k) {
                    t.units[ui].active = false;
                }
                self.unit_ended(k);
            }
        }
    }

    /// A unit ended: reaps a zombie session whose units are all done and,
    /// when it was the last active unit of its batch, logs the tally of
    /// the node's test RPCs (every one done, errored or aborted).
    fn unit_ended(&mut self, k: UnitKey) {
        self.batch_ended(k.gen, k.bid);
    }

    /// See [`Self::unit_ended`]; also after a stop ended units at once.
    fn batch_ended(&mut self, gen: u64, bid: u64) {
        let batch_idle = self.fw.session_mut(gen).is_some_and(|s| {
            s.batches
                .iter()
                .find(|b| b.bid == bid)
                .is_some_and(|b| !b.active())
        });
        if batch_idle {
            let t = self.tally;
            tracing::info!(
                "selftest: batch {} idle on this node; test RPCs since start: {} started, \
                 {} done, {} errored, {} aborted, {} in flight; {} could not be posted",
                bid,
                t.started,
                t.done,
                t.errored,
                t.aborted,
                t.in_flight(),
                t.unposted
            );
        }
        self.fw.reap_zombies();
    }

    fn unit_error(&mut self, k: UnitKey, kind: TestKind) {
        if let Some(s) = self.fw.session_mut(k.gen) {
            match kind {
                TestKind::Ping => s.ping_errors = s.ping_errors.wrapping_add(1),
                TestKind::Brw { .. } => s.brw_errors = s.brw_errors.wrapping_add(1),
            }
        }
    }

    /// A unit's RPC finished: check it (`brw_client_done_rpc`,
    /// `ping_client_done_rpc`), then go on or end the unit.
    pub(super) fn unit_rpc_done(
        &mut self,
        lnet: &mut Lnet,
        now: Instant,
        wall: Duration,
        k: UnitKey,
        res: RpcResult,
    ) {
        let Some((t, ui)) = self.fw.unit_mut(k) else {
            // Its session is gone (cannot happen while the unit is active;
            // counted so that no RPC goes unaccounted).
            self.tally.aborted += 1;
            return;
        };
        let (kind, stopping, stop_onerr) = (t.kind, t.stopping, t.stop_onerr);
        let u = &mut t.units[ui];
        u.rpc = None;
        if res.is_err() {
            // An aborted RPC's bulk MD may still be in the engine's hands
            // (a transfer in flight); never reuse its memory.
            if let Some(b) = u.bulk.as_mut() {
                *b = bufs::bulk_buf(b.len()).into();
            }
        }
        let ok = match &res {
            Err(_) => false,
            Ok((m, order)) => match (&m.body, kind) {
                (Body::PingReply { status, magic, seq }, TestKind::Ping) => {
                    *status == 0 && *magic == LST_PING_TEST_MAGIC && *seq == u.seq
                }
                (
                    Body::BrwReply { status },
                    TestKind::Brw {
                        rw,
                        len,
                        off,
                        flags,
                    },
                ) => {
                    *status == 0
                        && (rw != brw_rw::READ
                            || !needs_pattern(flags)
                            || u.bulk.as_ref().is_some_and(|b| {
                                bytes(b)
                                    .and_then(|d| {
                                        d.get(off as usize..(off + len) as usize)
                                            .map(|d| brw_check_data(d, flags, *order))
                                    })
                                    .unwrap_or(false)
                            }))
                }
                _ => false,
            },
        };
        if ok {
            self.tally.done += 1;
        } else {
            let aborted = stopping && res == Err(-errno::EINTR);
            if aborted {
                self.tally.aborted += 1;
            } else {
                self.tally.errored += 1;
                tracing::debug!("selftest: test RPC to {} failed: {res:?}", u.dest);
                self.unit_error(k, kind);
            }
            if stop_onerr || aborted {
                if let Some((t, ui)) = self.fw.unit_mut(k) {
                    t.units[ui].active = false;
                }
                self.unit_ended(k);
                return;
            }
        }
        self.unit_step(lnet, now, wall, k);
    }
}

/// The engine's counters as `lnet_counters_common` (32-bit counts).
pub(super) fn lnet_counters(lnet: &Lnet) -> super::wire::LnetCountersCommon {
    let c = lnet.stats();
    let t = |v: u64| v as u32;
    super::wire::LnetCountersCommon {
        msgs_alloc: t(c.msgs_alloc),
        msgs_max: t(c.msgs_max),
        errors: t(c.errors),
        send_count: t(c.send_count),
        recv_count: t(c.recv_count),
        route_count: t(c.route_count),
        drop_count: t(c.drop_count),
        send_length: c.send_length,
        recv_length: c.recv_length,
        route_length: c.route_length,
        drop_length: c.drop_length,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_and_simple_patterns() {
        let mut inject = 0;
        let mut d = vec![0u8; 8192 + 16];
        brw_fill_data(&mut d, brw_check::FULL, ByteOrder::Little, &mut inject);
        assert!(brw_check_data(&d, brw_check::FULL, ByteOrder::Little));
        assert!(!brw_check_data(&d, brw_check::FULL, ByteOrder::Big));
        d[100] ^= 1;
        assert!(!brw_check_data(&d, brw_check::FULL, ByteOrder::Little));
        let mut s = vec![0u8; 8192 + 16];
        brw_fill_data(&mut s, brw_check::SIMPLE, ByteOrder::Big, &mut inject);
        assert!(brw_check_data(&s, brw_check::SIMPLE, ByteOrder::Big));
        assert_eq!(
            &s[4088..4096],
            &BRW_MAGIC.to_be_bytes(),
            "last word of page 0"
        );
        assert_eq!(
            &s[8192..8200],
            &BRW_MAGIC.to_be_bytes(),
            "first of the tail"
        );
        assert_eq!(&s[8..16], &[0; 8], "middle words untouched");
        s[4090] = 0;
        assert!(!brw_check_data(&s, brw_check::SIMPLE, ByteOrder::Big));
        assert!(brw_check_data(
            &[0u8; 64],
            brw_check::NONE,
            ByteOrder::Little
        ));
    }

    #[test]
    fn injected_errors_are_counted_down() {
        let mut inject = 2;
        for expect_ok in [false, false, true] {
            let mut d = vec![0u8; 64];
            brw_fill_data(&mut d, brw_check::FULL, ByteOrder::Little, &mut inject);
            assert_eq!(
                brw_check_data(&d, brw_check::FULL, ByteOrder::Little),
                expect_ok
            );
        }
        assert_eq!(inject, 0);
    }
}
