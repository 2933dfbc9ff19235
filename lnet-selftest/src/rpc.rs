//! Selftest RPCs over the engine (`lnet/selftest/rpc.c`, wire.md §8.1).
//!
//! **Client RPC** (`srpc_client_rpc`): the reply sink (and bulk buffer, if
//! any) are posted on portal 52 with match bits `rpyid` / `bulkid`, matching
//! only the destination process, threshold 1, auto-unlink; then the 160-byte
//! request is PUT (no ACK) to portal 50 (test services) or 51 (framework)
//! with match bits = service id. It completes when the request was sent,
//! the reply landed and the bulk (if any) moved, or fails at the first error
//! event or at its deadline (`-ETIMEDOUT`, `rpcs_expired`); outstanding MDs
//! are then unlinked and their later events ignored.
//!
//! **Server RPC** (`srpc_server_rpc`): a request buffer on the lazy portal
//! matched; it is re-posted at once, the request validated (160 bytes,
//! magic, type of the service; version 1 else `EPROTO`), the service handler
//! runs and may ask for a bulk transfer, which the server starts (PUT for
//! BRW READ, GET for BRW WRITE and for a TEST's destination list) towards
//! the client's `bulkid`; then the reply is PUT to `rpyid`. A failed bulk
//! means no reply (`rpcs_dropped`).

use lnd_api::{Nid, PayloadSpan};

use super::bufs::bytes;
use super::framework::UnitKey;
use super::wire::{self, service, Body, ByteOrder, SrpcMsg, SRPC_MSG_SIZE};
use super::{
    errno, tag, MdKind, ReqBuf, Selftest, BRW_MAX_LEN, SRPC_FRAMEWORK_REQUEST_PORTAL,
    SRPC_RDMA_PORTAL, SRPC_REQUEST_PORTAL,
};
use lnet_core::event::{EventKind, MdEvent};
use lnet_core::md::{MdHandle, MdOptions, MdSpec, Threshold, Unlink};
use lnet_core::ni::Lnet;
use lnet_core::nid::{ProcessId, LNET_PID_ANY};
use lnet_core::ptl::InsPos;
use lnet_core::send::AckReq;
use lnet_core::time::{Duration, Instant};

/// What a finished client RPC gives its owner: the reply and the server's
/// byte order, or a negative errno.
pub(super) type RpcResult = Result<(SrpcMsg, ByteOrder), i32>;

/// Who waits for a client RPC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Owner {
    /// A test unit on this node.
    Unit(UnitKey),
    /// Entry `idx` of console operation `op`.
    Console { op: u64, idx: usize },
}

/// The bulk side of a client RPC: the client's buffer the server moves data
/// into (sink, BRW READ) or out of (source, BRW WRITE, TEST destinations).
#[derive(Debug)]
pub(super) enum CliBulk {
    /// No bulk.
    None,
    /// The server PUTs into it.
    Sink { buf: PayloadSpan, discard: bool },
    /// The server GETs from it.
    Source { buf: PayloadSpan },
}

/// A client RPC in flight.
#[derive(Debug)]
pub(super) struct ClientRpc {
    owner: Owner,
    reply_buf: PayloadSpan,
    reply_md: Option<MdHandle>,
    bulk_md: Option<MdHandle>,
    sent: bool,
    replied: bool,
    bulk_done: bool,
    deadline: Option<Instant>,
}

/// Where a request came from and arrived.
#[derive(Clone, Copy, Debug)]
pub(super) struct ServerCtx {
    pub(super) service: u32,
    /// The requester (header source NID and PID).
    pub(super) peer: ProcessId,
    /// Our NID the request arrived on (replies go from it).
    pub(super) self_nid: Nid,
    /// The requester's byte order.
    pub(super) order: ByteOrder,
}

/// What a service handler decided.
#[derive(Debug)]
pub(super) enum Action {
    /// Send this reply body with these session features.
    Reply(Body, u32),
    /// No reply at all.
    Drop,
    /// Move `buf` (its whole length) to/from the client's bulk buffer, then
    /// run [`After`].
    Bulk {
        put: bool,
        buf: PayloadSpan,
        len: usize,
        discard: bool,
        pooled: bool,
        after: After,
    },
    /// A BRW RPC waits for a pool buffer.
    Wait,
}

/// The rest of a server RPC after its bulk transfer.
#[derive(Debug, Clone, Copy)]
pub(super) enum After {
    /// BRW READ: data was sent; reply OK.
    BrwRead,
    /// BRW WRITE: check the received data with these flags.
    BrwWrite { flags: u32 },
    /// TEST: the destination list arrived.
    TestDests,
}

#[derive(Debug)]
enum SrvStage {
    /// Waiting for the handler (or a pool buffer).
    Handle,
    /// Bulk in progress.
    Bulk {
        buf: PayloadSpan,
        len: usize,
        pooled: bool,
        after: After,
        put: bool,
    },
    /// Reply being sent.
    Reply,
}

/// A server RPC in progress.
#[derive(Debug)]
pub(super) struct ServerRpc {
    ctx: ServerCtx,
    req: SrpcMsg,
    stage: SrvStage,
}

impl Selftest {
    /// Posts request buffers until every service has what it wants.
    pub(super) fn post_buffers(&mut self, lnet: &mut Lnet) {
        for i in 0..self.svc_bufs.len() {
            while self.svc_bufs[i].posted < self.svc_bufs[i].want {
                if !self.post_one(lnet, i) {
                    break;
                }
            }
        }
    }

    /// Whether `svc` has fewer than half the request buffers it wants posted.
    fn low_on_buffers(&self, svc: u32) -> bool {
        self.svc_bufs
            .iter()
            .find(|b| b.svc == svc)
            .is_some_and(|b| b.posted < b.want.div_ceil(2))
    }

    /// Re-posts the request buffers taken since the last time, if any.
    pub(super) fn repost_if_due(&mut self, lnet: &mut Lnet) {
        if self.repost_due {
            self.repost_due = false;
            self.post_buffers(lnet);
        }
    }

    /// Asks for at least `n` request buffers for `svc`.
    pub(super) fn want_buffers(&mut self, lnet: &mut Lnet, svc: u32, n: u32) {
        let k = match self.svc_bufs.iter().position(|b| b.svc == svc) {
            Some(k) => k,
            None => {
                self.svc_bufs.push(crate::SvcBufs::new(svc, 0));
                self.svc_bufs.len() - 1
            }
        };
        if self.svc_bufs[k].want < n {
            self.svc_bufs[k].want = n;
            self.size_reqbufs();
            self.post_buffers(lnet);
        }
    }

    /// Sizes the table of posted request buffers for what the services
    /// want, now rather than in steady state. Every request takes a buffer
    /// out and posts one under a new id, and a hash table reclaims the
    /// slots of removed entries only when it rehashes: in place (no
    /// allocation) while at most half its capacity is live, into a table
    /// twice as large otherwise. Keeping the capacity at twice the wanted
    /// count makes every such rehash happen in place, however late it
    /// comes (issue #6 item 8: a brw batch on a loaded machine hit it after
    /// its warm-up, 1 allocation of 133 136 bytes in 6 752 RPCs).
    pub(super) fn size_reqbufs(&mut self) {
        let wanted: usize = self.svc_bufs.iter().map(|b| b.want as usize).sum();
        let need = 2 * wanted + 16;
        if self.reqbufs.capacity() < need {
            self.reqbufs.reserve(need - self.reqbufs.len());
        }
    }

    /// Posts one request buffer for the service at `k` in `svc_bufs`.
    fn post_one(&mut self, lnet: &mut Lnet, k: usize) -> bool {
        let svc = self.svc_bufs[k].svc;
        let portal = if svc < service::MAX_FRAMEWORK {
            SRPC_FRAMEWORK_REQUEST_PORTAL
        } else {
            SRPC_REQUEST_PORTAL
        };
        let id = self.alloc_id();
        let me = match lnet.me_attach(
            portal,
            ProcessId::new(Nid::ANY, LNET_PID_ANY),
            u64::from(svc),
            0,
            Unlink::Unlink,
            InsPos::After,
        ) {
            Ok(me) => me,
            Err(e) => {
                tracing::error!("selftest: cannot post a request buffer for service {svc}: {e}");
                return false;
            }
        };
        let buf = self.msg_bufs.take();
        let mut spec = MdSpec::new(buf.clone(), MdOptions::OP_PUT, Threshold::Count(1));
        spec.user_ptr = tag(MdKind::ReqBuf, id);
        match lnet.md_attach(me, spec, Unlink::Unlink) {
            Ok(md) => {
                self.reqbufs.insert(
                    id,
                    ReqBuf {
                        service: svc,
                        buf,
                        md,
                    },
                );
                self.svc_bufs[k].posted += 1;
                true
            }
            Err(e) => {
                tracing::error!("selftest: cannot attach a request buffer MD: {e}");
                false
            }
        }
    }

    /// Starts a client RPC to `peer` (`srpc_create_client_rpc` +
    /// `srpc_post_rpc`). `build` gets `(rpyid, bulkid)` and returns the
    /// request. Returns the RPC id, or a negative errno if nothing could be
    /// posted (the owner is not called back then).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn client_rpc(
        &mut self,
        lnet: &mut Lnet,
        now: Instant,
        peer: ProcessId,
        svc: u32,
        bulk: CliBulk,
        timeout: Option<Duration>,
        owner: Owner,
        build: impl FnOnce(u64, u64) -> SrpcMsg,
    ) -> Result<u64, i32> {
        let id = self.alloc_id();
        let rpyid = self.wire_id();
        let bulkid = match bulk {
            CliBulk::None => 0,
            _ => self.wire_id(),
        };
        let reply_buf = self.msg_bufs.take();
        let reply_md = match attach(
            lnet,
            peer,
            rpyid,
            reply_buf.clone(),
            MdOptions::OP_PUT,
            tag(MdKind::CliReply, id),
        ) {
            Ok(md) => md,
            Err(e) => {
                self.msg_bufs.give(reply_buf);
                return Err(e);
            }
        };
        let mut bulk_md = None;
        let has_bulk = !matches!(bulk, CliBulk::None);
        match bulk {
            CliBulk::None => {}
            CliBulk::Sink { buf, discard } => {
                let mut o = MdOptions::OP_PUT;
                if discard {
                    o = o | MdOptions::DISCARD;
                }
                match attach(lnet, peer, bulkid, buf, o, tag(MdKind::CliBulk, id)) {
                    Ok(md) => bulk_md = Some(md),
                    Err(e) => {
                        let _ = lnet.md_unlink(reply_md);
                        self.msg_bufs.give(reply_buf);
                        return Err(e);
                    }
                }
            }
            CliBulk::Source { buf } => {
                match attach(
                    lnet,
                    peer,
                    bulkid,
                    buf,
                    MdOptions::OP_GET,
                    tag(MdKind::CliBulk, id),
                ) {
                    Ok(md) => bulk_md = Some(md),
                    Err(e) => {
                        let _ = lnet.md_unlink(reply_md);
                        self.msg_bufs.give(reply_buf);
                        return Err(e);
                    }
                }
            }
        }
        let msg = build(rpyid, bulkid);
        let req = self.msg_bufs.emit(&msg);
        let mut spec = MdSpec::new(req.clone(), MdOptions::NONE, Threshold::Count(1));
        // Reused once the MD and the LND are done with it.
        self.msg_bufs.give(req);
        spec.user_ptr = tag(MdKind::CliReq, id);
        let portal = if svc < service::MAX_FRAMEWORK {
            SRPC_FRAMEWORK_REQUEST_PORTAL
        } else {
            SRPC_REQUEST_PORTAL
        };
        let sent = lnet
            .md_bind(spec, Unlink::Unlink)
            .and_then(|md| {
                lnet.put(
                    now,
                    None,
                    md,
                    AckReq::NoAck,
                    peer,
                    portal,
                    u64::from(svc),
                    0,
                    0,
                )
            })
            .map_err(|e| -e.errno());
        if let Err(e) = sent {
            let _ = lnet.md_unlink(reply_md);
            if let Some(b) = bulk_md {
                let _ = lnet.md_unlink(b);
            }
            self.msg_bufs.give(reply_buf);
            return Err(e);
        }
        let deadline = timeout.map(|t| now.saturating_add(t));
        if let Some(d) = deadline {
            self.deadlines.insert((d, id));
        }
        self.clients.insert(
            id,
            ClientRpc {
                owner,
                reply_buf,
                reply_md: Some(reply_md),
                bulk_md,
                sent: false,
                replied: false,
                bulk_done: !has_bulk,
                deadline,
            },
        );
        Ok(id)
    }

    pub(super) fn on_client_event(
        &mut self,
        lnet: &mut Lnet,
        now: Instant,
        wall: Duration,
        kind: MdKind,
        id: u64,
        ev: &MdEvent,
    ) {
        if kind == MdKind::CliReq && ev.kind == EventKind::Send && ev.status == 0 {
            self.counters.rpcs_sent = self.counters.rpcs_sent.wrapping_add(1);
        }
        let Some(rpc) = self.clients.get_mut(&id) else {
            // An RPC already finished (aborted): its late events are ours
            // but mean nothing now.
            return;
        };
        if ev.kind == EventKind::Unlink {
            // An MD went without delivering: only possible when we unlinked
            // it, which happens when the RPC is already gone.
            return;
        }
        if ev.status != 0 {
            self.counters.errors = self.counters.errors.wrapping_add(1);
            self.client_abort(lnet, now, wall, id, ev.status);
            return;
        }
        match kind {
            MdKind::CliReq => rpc.sent = true,
            MdKind::CliReply => {
                rpc.replied = true;
                rpc.reply_md = None;
            }
            MdKind::CliBulk => {
                rpc.bulk_done = true;
                rpc.bulk_md = None;
            }
            _ => {}
        }
        if rpc.sent && rpc.replied && rpc.bulk_done {
            let Some(rpc) = self.clients.remove(&id) else {
                return;
            };
            if let Some(d) = rpc.deadline {
                self.deadlines.remove(&(d, id));
            }
            // Parsed where it lies (no copy out).
            let res = match bytes(&rpc.reply_buf) {
                Some(b) => SrpcMsg::parse(&b).map_err(|e| {
                    tracing::debug!("selftest: bad reply: {e}");
                    -errno::EPROTO
                }),
                None => Err(-errno::EBUSY),
            };
            self.msg_bufs.give(rpc.reply_buf);
            self.client_done(lnet, now, wall, rpc.owner, res);
        }
    }

    /// Ends a client RPC with `status` (negative errno): unlinks what is
    /// still posted and tells the owner.
    pub(super) fn client_abort(
        &mut self,
        lnet: &mut Lnet,
        now: Instant,
        wall: Duration,
        id: u64,
        status: i32,
    ) {
        let Some(rpc) = self.clients.remove(&id) else {
            return;
        };
        if let Some(d) = rpc.deadline {
            self.deadlines.remove(&(d, id));
        }
        for md in [rpc.reply_md, rpc.bulk_md].into_iter().flatten() {
            let _ = lnet.md_unlink(md);
        }
        self.msg_bufs.give(rpc.reply_buf);
        self.client_done(lnet, now, wall, rpc.owner, Err(status.min(-1)));
    }

    fn client_done(
        &mut self,
        lnet: &mut Lnet,
        now: Instant,
        wall: Duration,
        owner: Owner,
        res: RpcResult,
    ) {
        match owner {
            Owner::Unit(k) => self.unit_rpc_done(lnet, now, wall, k, res),
            Owner::Console { op, idx } => self.console_rpc_done(lnet, now, wall, op, idx, res),
        }
    }

    /// A request buffer got a request (or was unlinked).
    pub(super) fn on_request(
        &mut self,
        lnet: &mut Lnet,
        now: Instant,
        wall: Duration,
        bufid: u64,
        ev: &MdEvent,
    ) {
        if ev.kind != EventKind::Put {
            return;
        }
        let Some(rb) = self.reqbufs.remove(&bufid) else {
            return;
        };
        let _ = rb.md;
        let svc = rb.service;
        if let Some(b) = self.svc_bufs.iter_mut().find(|b| b.svc == svc) {
            b.posted = b.posted.saturating_sub(1);
        }
        self.counters.rpcs_rcvd = self.counters.rpcs_rcvd.wrapping_add(1);
        // Re-posting costs about as much as the reply itself and the
        // requester waits for the reply, so it waits until the reply (or
        // bulk) is on its way: the next server event re-posts (as upstream
        // recycles a request buffer when its RPC is done). A service down
        // to half of the buffers it wants (a burst, requests that get no
        // reply) re-posts at once, so the lazy portal is always fed.
        self.repost_due = true;
        if self.low_on_buffers(svc) {
            self.repost_if_due(lnet);
        }
        if ev.status != 0 {
            self.counters.errors = self.counters.errors.wrapping_add(1);
            return;
        }
        if ev.mlength as usize != SRPC_MSG_SIZE || ev.rlength as usize != SRPC_MSG_SIZE {
            tracing::debug!(
                "selftest: dropping a {}-byte request from {}",
                ev.rlength,
                ev.source
            );
            return;
        }
        // Parsed where it lies (no copy out), before the buffer goes back.
        let parsed = bytes(&rb.buf).and_then(|b| parse_request(&b, svc, ev));
        self.msg_bufs.give(rb.buf);
        let Some((req, order, version, ses_feats)) = parsed else {
            return;
        };
        let ctx = ServerCtx {
            service: svc,
            peer: ev.source,
            self_nid: ev.target.nid,
            order,
        };
        let id = self.alloc_id();
        // The test services' handlers read nothing of the server RPCs in
        // progress: their request is handled before it is stored, and a
        // reply (every ping) is started from it, with no lookup or copy of
        // the stored request (issue 17).
        let handled = (version == wire::SRPC_MSG_VERSION
            && matches!(svc, service::PING | service::BRW))
        .then(|| match svc {
            service::PING => self.ping_serve(&ctx, &req),
            _ => self.brw_serve(&ctx, &req),
        });
        if let Some(Action::Reply(body, feats)) = handled {
            match req.body.rpyid() {
                Some(rpyid) if self.start_reply(lnet, now, id, &ctx, rpyid, body, feats) => {
                    // Only its end is left to see: the id is enough.
                    self.replying.insert(id);
                }
                _ => self.counters.rpcs_dropped = self.counters.rpcs_dropped.wrapping_add(1),
            }
            return;
        }
        self.servers.insert(
            id,
            ServerRpc {
                ctx,
                req,
                stage: SrvStage::Handle,
            },
        );
        if let Some(action) = handled {
            self.server_act(lnet, now, id, action);
            return;
        }
        if version != wire::SRPC_MSG_VERSION {
            let body = error_reply(svc, errno::EPROTO as u32);
            self.server_reply(lnet, now, id, body, ses_feats);
            return;
        }
        self.server_run(lnet, now, wall, id);
    }

    /// Runs the handler of a server RPC and carries out its decision.
    fn server_run(&mut self, lnet: &mut Lnet, now: Instant, wall: Duration, id: u64) {
        let Some(s) = self.servers.get(&id) else {
            return;
        };
        let (ctx, req) = (s.ctx, s.req.clone());
        let action = match ctx.service {
            service::BRW => self.brw_serve(&ctx, &req),
            service::PING => self.ping_serve(&ctx, &req),
            _ => self.fw_serve(lnet, now, wall, &ctx, &req),
        };
        self.server_act(lnet, now, id, action);
    }

    fn server_act(&mut self, lnet: &mut Lnet, now: Instant, id: u64, action: Action) {
        match action {
            Action::Reply(body, feats) => self.server_reply(lnet, now, id, body, feats),
            Action::Drop => {
                self.server_finish(id, false);
            }
            Action::Wait => self.brw_waiting.push_back(id),
            Action::Bulk {
                put,
                buf,
                len,
                discard,
                pooled,
                after,
            } => {
                let Some(s) = self.servers.get_mut(&id) else {
                    return;
                };
                let bulkid = match s.req.body {
                    Body::BrwReq { bulkid, .. } | Body::TestReq { bulkid, .. } => bulkid,
                    _ => 0,
                };
                let (peer, self_nid) = (s.ctx.peer, s.ctx.self_nid);
                let mut opts = MdOptions::NONE;
                if discard {
                    opts = MdOptions::DISCARD;
                }
                let Some(data) = buf.sub(0, len) else {
                    if pooled {
                        self.pool_put(buf);
                    }
                    self.server_finish(id, false);
                    return;
                };
                let mut spec = MdSpec::new(data, opts, Threshold::Count(if put { 1 } else { 2 }));
                spec.user_ptr = tag(MdKind::SrvBulk, id);
                let r = lnet.md_bind(spec, Unlink::Unlink).and_then(|md| {
                    if put {
                        lnet.put(
                            now,
                            Some(self_nid),
                            md,
                            AckReq::NoAck,
                            peer,
                            SRPC_RDMA_PORTAL,
                            bulkid,
                            0,
                            0,
                        )?;
                    } else {
                        lnet.get(now, Some(self_nid), md, peer, SRPC_RDMA_PORTAL, bulkid, 0)?;
                    }
                    Ok(md)
                });
                match r {
                    Ok(_) => {
                        s.stage = SrvStage::Bulk {
                            buf,
                            len,
                            pooled,
                            after,
                            put,
                        };
                    }
                    Err(e) => {
                        tracing::debug!("selftest: bulk to {peer} failed to start: {e}");
                        let _ = len;
                        if pooled {
                            self.pool_put(buf);
                        }
                        self.server_finish(id, false);
                    }
                }
            }
        }
    }

    fn server_reply(&mut self, lnet: &mut Lnet, now: Instant, id: u64, body: Body, feats: u32) {
        let Some(s) = self.servers.get_mut(&id) else {
            return;
        };
        let Some(rpyid) = s.req.body.rpyid() else {
            self.server_finish(id, false);
            return;
        };
        s.stage = SrvStage::Reply;
        let ctx = s.ctx;
        if !self.start_reply(lnet, now, id, &ctx, rpyid, body, feats) {
            self.server_finish(id, false);
        }
    }

    /// Starts the reply of server RPC `id` (a PUT of the reply message to
    /// the requester's `rpyid`); false when it could not start.
    #[allow(clippy::too_many_arguments)]
    fn start_reply(
        &mut self,
        lnet: &mut Lnet,
        now: Instant,
        id: u64,
        ctx: &ServerCtx,
        rpyid: u64,
        body: Body,
        feats: u32,
    ) -> bool {
        let (peer, self_nid) = (ctx.peer, ctx.self_nid);
        let msg = SrpcMsg::new(feats, body);
        let reply = self.msg_bufs.emit(&msg);
        let mut spec = MdSpec::new(reply.clone(), MdOptions::NONE, Threshold::Count(1));
        // Reused once the MD and the LND are done with it.
        self.msg_bufs.give(reply);
        spec.user_ptr = tag(MdKind::SrvReply, id);
        let r = lnet.md_bind(spec, Unlink::Unlink).and_then(|md| {
            lnet.put(
                now,
                Some(self_nid),
                md,
                AckReq::NoAck,
                peer,
                SRPC_RDMA_PORTAL,
                rpyid,
                0,
                0,
            )
        });
        if let Err(e) = r {
            tracing::debug!("selftest: reply to {peer} failed to start: {e}");
            return false;
        }
        true
    }

    /// A server RPC is over; `ok` = it ended without error.
    fn server_finish(&mut self, id: u64, ok: bool) {
        let known = self.servers.remove(&id).is_some() || self.replying.remove(&id);
        if known && !ok {
            self.counters.rpcs_dropped = self.counters.rpcs_dropped.wrapping_add(1);
        }
    }

    pub(super) fn on_server_event(
        &mut self,
        lnet: &mut Lnet,
        now: Instant,
        wall: Duration,
        kind: MdKind,
        id: u64,
        ev: &MdEvent,
    ) {
        if ev.kind == EventKind::Unlink {
            return;
        }
        if ev.status != 0 {
            self.counters.errors = self.counters.errors.wrapping_add(1);
        }
        match kind {
            MdKind::SrvReply if ev.kind == EventKind::Send => {
                self.server_finish(id, ev.status == 0);
            }
            MdKind::SrvBulk => {
                let Some(s) = self.servers.get(&id) else {
                    return;
                };
                let SrvStage::Bulk { put, .. } = &s.stage else {
                    return;
                };
                // A PUT is done at SEND; a GET at REPLY (or a failed SEND).
                let done = *put || ev.kind == EventKind::Reply || ev.status != 0;
                if !done {
                    return;
                }
                let Some(s) = self.servers.get_mut(&id) else {
                    return;
                };
                let SrvStage::Bulk {
                    buf,
                    len,
                    pooled,
                    after,
                    put,
                } = std::mem::replace(&mut s.stage, SrvStage::Handle)
                else {
                    return;
                };
                if ev.status != 0 {
                    if pooled {
                        self.pool_put(buf);
                    }
                    self.server_finish(id, false);
                    self.run_waiting(lnet, now, wall);
                    return;
                }
                let moved = u64::from(ev.mlength);
                if put {
                    self.counters.bulk_put = self.counters.bulk_put.wrapping_add(moved);
                } else {
                    self.counters.bulk_get = self.counters.bulk_get.wrapping_add(moved);
                }
                let (ctx, req) = (s.ctx, s.req.clone());
                let data = buf.sub(0, len).unwrap_or_else(|| buf.clone());
                let action = self.fw_after_bulk(lnet, now, &ctx, &req, after, &data);
                drop(data);
                if pooled {
                    self.pool_put(buf);
                }
                self.server_act(lnet, now, id, action);
                self.run_waiting(lnet, now, wall);
            }
            _ => {}
        }
    }

    /// A whole 1 MiB server buffer; `None` when all
    /// `brw_srv_workitems` buffers are in use.
    pub(super) fn pool_take(&mut self) -> Option<PayloadSpan> {
        if let Some(b) = self.pool.free.pop() {
            return Some(b);
        }
        if self.pool.allocated >= self.params.brw_srv_workitems {
            return None;
        }
        self.pool.allocated += 1;
        Some(PayloadSpan::from(super::bufs::bulk_buf(
            BRW_MAX_LEN as usize,
        )))
    }

    /// Returns a whole pool buffer; see [`Selftest::run_waiting`].
    pub(super) fn pool_put(&mut self, buf: PayloadSpan) {
        self.pool.free.push(buf);
    }

    /// Restarts BRW RPCs that waited for a buffer.
    pub(super) fn run_waiting(&mut self, lnet: &mut Lnet, now: Instant, wall: Duration) {
        while !self.pool.free.is_empty() || self.pool.allocated < self.params.brw_srv_workitems {
            let Some(id) = self.brw_waiting.pop_front() else {
                return;
            };
            self.server_run(lnet, now, wall, id);
        }
    }
}

/// Posts an ME + MD on portal 52 matching only `peer` and `bits`.
fn attach(
    lnet: &mut Lnet,
    peer: ProcessId,
    bits: u64,
    memory: PayloadSpan,
    options: MdOptions,
    user_ptr: u64,
) -> Result<MdHandle, i32> {
    let me = lnet
        .me_attach(
            SRPC_RDMA_PORTAL,
            peer,
            bits,
            0,
            Unlink::Unlink,
            InsPos::After,
        )
        .map_err(|e| -e.errno())?;
    let mut spec = MdSpec::new(memory, options, Threshold::Count(1));
    spec.user_ptr = user_ptr;
    lnet.md_attach(me, spec, Unlink::Unlink)
        .map_err(|e| -e.errno())
}

/// A reply of the right type for `svc` carrying only `status`.
pub(super) fn error_reply(svc: u32, status: u32) -> Body {
    let sid = wire::Sid::NONE;
    match svc {
        service::MAKE_SESSION => Body::MksnReply {
            status,
            sid,
            timeout: 0,
            name: String::new(),
        },
        service::REMOVE_SESSION => Body::RmsnReply { status, sid },
        service::JOIN => Body::JoinReply {
            status,
            sid,
            timeout: 0,
            session: String::new(),
        },
        service::DEBUG => Body::DebugReply {
            status,
            sid,
            timeout: 0,
            nbatch: 0,
            name: String::new(),
        },
        service::BATCH => Body::BatchReply {
            status,
            sid,
            active: 0,
            time: 0,
        },
        service::QUERY_STAT => Body::StatReply {
            status,
            sid,
            fw: Default::default(),
            rpc: Default::default(),
            lnet: Default::default(),
        },
        service::TEST => Body::TestReply { status, sid },
        service::PING => Body::PingReply {
            status,
            magic: 0,
            seq: 0,
        },
        _ => Body::BrwReply { status },
    }
}

/// A request's 160 bytes checked for service `svc` and parsed: the
/// message, the sender's byte order, its version and session features;
/// `None` (logged) when it is to be dropped.
fn parse_request(bytes: &[u8], svc: u32, ev: &MdEvent) -> Option<(SrpcMsg, ByteOrder, u32, u32)> {
    let view = match wire::SrpcMsgView::new_checked(bytes) {
        Ok(v) => v,
        Err(e) => {
            tracing::debug!("selftest: dropping a request from {}: {e}", ev.source);
            return None;
        }
    };
    if Some(view.msg_type()) != wire::service_request_type(svc) {
        tracing::debug!(
            "selftest: dropping a type {} request to service {svc} from {}",
            view.msg_type(),
            ev.source
        );
        return None;
    }
    let (order, version, ses_feats) = (view.order(), view.version(), view.ses_feats());
    match SrpcMsg::parse(bytes) {
        Ok((req, _)) => Some((req, order, version, ses_feats)),
        Err(e) => {
            tracing::debug!("selftest: dropping a request from {}: {e}", ev.source);
            None
        }
    }
}
