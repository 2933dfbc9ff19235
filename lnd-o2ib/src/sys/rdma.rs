//! The `rdma` verbs provider: rdma-core's libibverbs and librdmacm, opened
//! at run time, through the bindings of [`super::ffi`].
//!
//! Connections are set up as the kernel o2iblnd does (`kiblnd_active_connect`,
//! `kiblnd_passive_connect`): an rdma_cm id in the TCP port space resolves the
//! peer's address and route, a CQ and an RC QP are made on the id's device
//! (on the device's one PD, [`RdmaDevice`], which the NI's registrations
//! share), and `rdma_connect` carries the CONNREQ `kib_msg` as private data
//! with o2iblnd's connection parameters ([`conn_param`]); the passive side
//! finds the CONNREQ in the CONNECT_REQUEST event, answers the CONNACK in
//! `rdma_accept`'s private data or a `kib_rej` in `rdma_reject`'s. Work
//! requests, memory registration and completions are the verbs of the
//! [`crate::verbs`] interface, as the `soft` provider has them
//! ([`crate::verbs::VerbsQp`], [`crate::verbs::VerbsCq`]).
//!
//! Not run here (no RDMA device on the build hosts): what is tested is the
//! layout of every struct crossed ([`super::ffi`]), the connection
//! parameters and private-data bytes handed to `rdma_connect`, and the
//! errors on a host without rdma-core or a device.

use std::collections::{HashMap, VecDeque};
use std::ffi::c_int;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use libloading::Library;

use super::ffi::*;
use super::{open, sym, ProbeError, LIBIBVERBS, LIBRDMACM};
use crate::verbs::{
    Access, CmEvent, RecvWr, SendOp, SendWr, VerbsCq, VerbsError, VerbsQp, Wc, WcOpcode, WcStatus,
    MAX_REJ_PRIVATE_DATA, MAX_REP_PRIVATE_DATA, MAX_REQ_PRIVATE_DATA,
};
use lnd_api::PayloadSpan;

/// The entry points used, looked up once; valid while the libraries are
/// open (they are kept in the struct).
pub struct RdmaLib {
    alloc_pd: IbvAllocPd,
    dealloc_pd: IbvDeallocPd,
    create_cq: IbvCreateCq,
    destroy_cq: IbvDestroyCq,
    create_comp_channel: IbvCreateCompChannel,
    destroy_comp_channel: IbvDestroyCompChannel,
    get_cq_event: IbvGetCqEvent,
    ack_cq_events: IbvAckCqEvents,
    reg_mr: IbvRegMr,
    dereg_mr: IbvDeregMr,
    query_device: IbvQueryDevice,
    create_channel: RdmaCreateEventChannel,
    destroy_channel: RdmaDestroyEventChannel,
    create_id: RdmaCreateId,
    destroy_id: RdmaDestroyId,
    bind_addr: RdmaBindAddr,
    resolve_addr: RdmaResolveAddr,
    resolve_route: RdmaResolveRoute,
    listen: RdmaListen,
    connect: RdmaConnect,
    accept: RdmaAccept,
    reject: RdmaReject,
    disconnect: RdmaDisconnect,
    get_dst_port: RdmaGetDstPort,
    get_cm_event: RdmaGetCmEvent,
    ack_cm_event: RdmaAckCmEvent,
    create_qp: RdmaCreateQp,
    migrate_id: RdmaMigrateId,
    destroy_qp: RdmaDestroyQp,
    /// The libraries (`None` only for the tests' fake table).
    _verbs: Option<Library>,
    _cm: Option<Library>,
}

impl RdmaLib {
    /// Opens libibverbs and librdmacm; names what is missing.
    pub fn open() -> Result<Arc<RdmaLib>, ProbeError> {
        let verbs = open(LIBIBVERBS)?;
        let cm = open(LIBRDMACM)?;
        macro_rules! f {
            ($l:expr, $t:ty, $n:literal) => {
                *sym::<$t>(&$l, $n)?
            };
        }
        Ok(Arc::new(RdmaLib {
            alloc_pd: f!(verbs, IbvAllocPd, "ibv_alloc_pd"),
            dealloc_pd: f!(verbs, IbvDeallocPd, "ibv_dealloc_pd"),
            create_cq: f!(verbs, IbvCreateCq, "ibv_create_cq"),
            destroy_cq: f!(verbs, IbvDestroyCq, "ibv_destroy_cq"),
            create_comp_channel: f!(verbs, IbvCreateCompChannel, "ibv_create_comp_channel"),
            destroy_comp_channel: f!(verbs, IbvDestroyCompChannel, "ibv_destroy_comp_channel"),
            get_cq_event: f!(verbs, IbvGetCqEvent, "ibv_get_cq_event"),
            ack_cq_events: f!(verbs, IbvAckCqEvents, "ibv_ack_cq_events"),
            reg_mr: f!(verbs, IbvRegMr, "ibv_reg_mr"),
            dereg_mr: f!(verbs, IbvDeregMr, "ibv_dereg_mr"),
            query_device: f!(verbs, IbvQueryDevice, "ibv_query_device"),
            create_channel: f!(cm, RdmaCreateEventChannel, "rdma_create_event_channel"),
            destroy_channel: f!(cm, RdmaDestroyEventChannel, "rdma_destroy_event_channel"),
            create_id: f!(cm, RdmaCreateId, "rdma_create_id"),
            destroy_id: f!(cm, RdmaDestroyId, "rdma_destroy_id"),
            bind_addr: f!(cm, RdmaBindAddr, "rdma_bind_addr"),
            resolve_addr: f!(cm, RdmaResolveAddr, "rdma_resolve_addr"),
            resolve_route: f!(cm, RdmaResolveRoute, "rdma_resolve_route"),
            listen: f!(cm, RdmaListen, "rdma_listen"),
            connect: f!(cm, RdmaConnect, "rdma_connect"),
            accept: f!(cm, RdmaAccept, "rdma_accept"),
            reject: f!(cm, RdmaReject, "rdma_reject"),
            disconnect: f!(cm, RdmaDisconnect, "rdma_disconnect"),
            get_dst_port: f!(cm, RdmaGetDstPort, "rdma_get_dst_port"),
            get_cm_event: f!(cm, RdmaGetCmEvent, "rdma_get_cm_event"),
            ack_cm_event: f!(cm, RdmaAckCmEvent, "rdma_ack_cm_event"),
            create_qp: f!(cm, RdmaCreateQp, "rdma_create_qp"),
            migrate_id: f!(cm, RdmaMigrateId, "rdma_migrate_id"),
            destroy_qp: f!(cm, RdmaDestroyQp, "rdma_destroy_qp"),
            _verbs: Some(verbs),
            _cm: Some(cm),
        }))
    }
}

/// o2iblnd's connection parameters for `rdma_connect` / `rdma_accept`
/// (`kiblnd_active_connect`): `private` (CONNREQ or CONNACK), no RDMA READ
/// resources (o2iblnd moves bulk by RDMA WRITE), flow control on, and the
/// `retry_count` / `rnr_retry_count` tunables. `private` must outlive the
/// call the result is passed to.
pub fn conn_param(private: &[u8], retry_count: u8, rnr_retry_count: u8) -> RdmaConnParam {
    RdmaConnParam {
        private_data: private.as_ptr().cast(),
        private_data_len: private.len().min(u8::MAX as usize) as u8,
        responder_resources: 0,
        initiator_depth: 0,
        flow_control: 1,
        retry_count,
        rnr_retry_count,
        srq: 0,
        qp_num: 0,
    }
}

/// The sizes of one connection's queues.
#[derive(Clone, Copy, Debug)]
pub struct QueueSizes {
    /// Send work requests (o2iblnd: queue depth × (1 + max frags) for the
    /// RDMA fragments, as `kiblnd_send_wrs()`).
    pub send_wr: u32,
    /// Receive work requests (the queue depth's receive buffers).
    pub recv_wr: u32,
    /// SGEs per work request.
    pub sge: u32,
}

/// The most SGEs the NI puts in one work request (an RDMA WRITE gathers
/// up to this many local pieces into one remote fragment; o2iblnd's
/// `wrq_sge` is 2 by default), clamped further to the device's `max_sge`.
pub const MAX_WR_SGE: u32 = 16;

/// The queue depth and RDMA fragments a connection asking for `qd` and
/// `frags` gets on a device of `limits`, `sizes(qd, frags)` being its
/// queues (o2iblnd's `kiblnd_send_wrs()` rule): the queue depth is lowered
/// until the send and receive queues fit `max_qp_wr` and the CQ (both)
/// fits `max_cqe`; if a depth of 1 is still too much, the fragments are
/// lowered too. Never below 1 each (what still does not fit is refused
/// when the QP is made, saying why).
pub fn fit_queues(
    qd: u32,
    frags: u32,
    limits: &DeviceLimits,
    sizes: impl Fn(u32, u32) -> QueueSizes,
) -> (u32, u32) {
    let fits = |q: QueueSizes| {
        q.send_wr <= limits.max_qp_wr
            && q.recv_wr <= limits.max_qp_wr
            && q.send_wr as u64 + q.recv_wr as u64 <= limits.max_cqe as u64
    };
    let (qd, frags) = (qd.max(1), frags.max(1));
    if let Some(d) = (1..=qd).rev().find(|&d| fits(sizes(d, frags))) {
        return (d, frags);
    }
    let f = (1..=frags).rev().find(|&f| fits(sizes(1, f))).unwrap_or(1);
    (1, f)
}

/// ko2iblnd's `retry_count` and `rnr_retry_count` for a connection.
#[derive(Clone, Copy, Debug)]
pub struct Retries {
    /// Transport retries (`retry_count`, default 5).
    pub retry_count: u8,
    /// Receiver-not-ready retries (`rnr_retry_count`, default 6).
    pub rnr_retry_count: u8,
}

/// Private data longer than the CM message carries is refused.
fn check_private(private: &[u8], max: usize, what: &str) -> Result<(), VerbsError> {
    if private.len() > max {
        return Err(VerbsError::Invalid(format!(
            "{} bytes of private data in {what} (at most {max})",
            private.len()
        )));
    }
    Ok(())
}

fn os_err(what: &str) -> VerbsError {
    VerbsError::Device(format!("{what}: {}", std::io::Error::last_os_error()))
}

fn sockaddr(a: SocketAddrV4) -> SockaddrIn {
    SockaddrIn {
        sin_family: AF_INET,
        sin_port: a.port().to_be(),
        sin_addr: u32::from(*a.ip()).to_be(),
        sin_zero: [0; 8],
    }
}

/// An rdma_cm id with its own event channel, destroyed on drop.
struct CmId {
    lib: Arc<RdmaLib>,
    ch: *mut RdmaEventChannel,
    id: *mut RdmaCmId,
}

// SAFETY: the id and channel are only used through rdma_cm calls, which
// are thread-safe; the pointers are owned by this value alone.
unsafe impl Send for CmId {}
// SAFETY: as above; no field is written after creation.
unsafe impl Sync for CmId {}

impl CmId {
    fn new(lib: &Arc<RdmaLib>) -> Result<CmId, VerbsError> {
        // SAFETY: no arguments; the channel is destroyed in drop.
        let ch = unsafe { (lib.create_channel)() };
        if ch.is_null() {
            return Err(os_err("rdma_create_event_channel"));
        }
        let mut id: *mut RdmaCmId = std::ptr::null_mut();
        // SAFETY: `ch` is live, `id` a valid out-pointer.
        if unsafe { (lib.create_id)(ch, &mut id, std::ptr::null_mut(), RDMA_PS_TCP) } != 0 {
            let e = os_err("rdma_create_id");
            // SAFETY: `ch` was created above and has no id.
            unsafe { (lib.destroy_channel)(ch) };
            return Err(e);
        }
        Ok(CmId {
            lib: lib.clone(),
            ch,
            id,
        })
    }

    /// Waits for the next event on the id's channel; returns its type,
    /// status and private data, and for a CONNECT_REQUEST the new id.
    fn next_event(&self) -> Result<CmEv, VerbsError> {
        get_event(&self.lib, self.ch)
    }

    /// The next event must be `want`; a REJECTED carrying o2iblnd's
    /// reject data is [`VerbsError::Rejected`], any other event says what
    /// failed ([`cm_failure`]).
    fn expect(&self, want: u32, what: &str) -> Result<Vec<u8>, VerbsError> {
        let (ev, status, private, _) = self.next_event()?;
        match ev {
            e if e == want => Ok(private),
            RDMA_CM_EVENT_REJECTED if !private.is_empty() => Err(VerbsError::Rejected(private)),
            e => Err(VerbsError::Unreachable(cm_failure(what, e, status))),
        }
    }
}

/// An rdma_cm event: type, status, private data, and the id it is for
/// (a CONNECT_REQUEST's new id).
type CmEv = (u32, c_int, Vec<u8>, *mut RdmaCmId);

/// The next event of channel `ch` (acknowledged once read).
fn get_event(lib: &RdmaLib, ch: *mut RdmaEventChannel) -> Result<CmEv, VerbsError> {
    let mut ev: *mut RdmaCmEvent = std::ptr::null_mut();
    // SAFETY: `ch` is live; `ev` a valid out-pointer, acked below.
    if unsafe { (lib.get_cm_event)(ch, &mut ev) } != 0 || ev.is_null() {
        return Err(os_err("rdma_get_cm_event"));
    }
    // SAFETY: rdma_get_cm_event returned a valid event, read before
    // it is acknowledged; its private data has `private_data_len`
    // bytes when not null.
    let out = unsafe {
        let e = &*ev;
        let p = &e.conn;
        let private = if p.private_data.is_null() {
            Vec::new()
        } else {
            std::slice::from_raw_parts(p.private_data.cast::<u8>(), p.private_data_len as usize)
                .to_vec()
        };
        (e.event, e.status, private, e.id)
    };
    // SAFETY: `ev` came from rdma_get_cm_event and is acked once.
    unsafe { (lib.ack_cm_event)(ev) };
    Ok(out)
}

impl Drop for CmId {
    fn drop(&mut self) {
        // SAFETY: both were created by `new` (or the channel is null: the
        // id was the listener's and moved to the device's) and are
        // destroyed once, the id first (its QP is destroyed by the owner
        // before).
        unsafe {
            (self.lib.destroy_id)(self.id);
            if !self.ch.is_null() {
                (self.lib.destroy_channel)(self.ch);
            }
        }
    }
}

/// One RDMA device as the NI uses it (o2iblnd's `kib_hca_dev`): its
/// context and the protection domain every connection's QP and every
/// memory registration of the NI belong to.
#[derive(Clone)]
pub struct RdmaDevice(Arc<DevInner>);

struct DevInner {
    lib: Arc<RdmaLib>,
    ctx: *mut IbvContext,
    pd: *mut IbvPd,
    /// What `ibv_query_device` said the device can do.
    limits: DeviceLimits,
    /// Every connection's completions and CM events.
    sched: Sched,
    /// The implicit on-demand-paging MR over the whole address space (one
    /// key for every fragment of a multi-fragment MD), made at first need;
    /// `Err` says why the HCA has none.
    implicit: Mutex<Option<Result<ImplicitMr, String>>>,
}

/// The limits of a device (`ibv_query_device`) a connection's queues and
/// registrations are clamped to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceLimits {
    /// Work requests per queue (`max_qp_wr`).
    pub max_qp_wr: u32,
    /// SGEs per work request (`max_sge`).
    pub max_sge: u32,
    /// Entries per CQ (`max_cqe`).
    pub max_cqe: u32,
    /// Bytes per memory region (`max_mr_size`).
    pub max_mr_size: u64,
}

impl DeviceLimits {
    /// From the device's attributes (a negative count read as 0).
    pub fn from_attr(a: &IbvDeviceAttr) -> Self {
        DeviceLimits {
            max_qp_wr: a.max_qp_wr.max(0) as u32,
            max_sge: a.max_sge.max(0) as u32,
            max_cqe: a.max_cqe.max(0) as u32,
            max_mr_size: a.max_mr_size,
        }
    }
}

impl std::fmt::Display for DeviceLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "max_qp_wr {}, max_sge {}, max_cqe {}, max_mr_size {}",
            self.max_qp_wr, self.max_sge, self.max_cqe, self.max_mr_size
        )
    }
}

/// The completions and CM events of every connection of a device (of an
/// NI), served by one thread as o2iblnd's schedulers serve all their
/// connections: each connection has its CQ, all on one completion channel
/// (`ibv_get_cq_event` says which CQ has completions), and each
/// established connection's rdma_cm id is moved to one event channel;
/// completions name their QP, events are mapped to it.
struct Sched {
    chan: *mut IbvCompChannel,
    cm: *mut RdmaEventChannel,
    /// The connections' CQs by address (their verbs while alive).
    cqs: Mutex<HashMap<usize, Weak<Verbs>>>,
    /// The connections' rdma_cm ids by address: their QP numbers.
    ids: Mutex<HashMap<usize, u32>>,
    /// CQs with an event (or just attached): to drain and re-arm.
    fired: Mutex<Vec<usize>>,
    /// Completions and CM events taken and not returned yet.
    wcs: Mutex<VecDeque<Wc>>,
    evs: Mutex<VecDeque<CmEvent>>,
    /// Wakes the wait (a connection attached, or [`RdmaDevice::wake`]):
    /// the end written, the end waited on with the channels.
    wake: (UnixStream, UnixStream),
}

impl DevInner {
    /// The device of context `ctx` with protection domain `pd`: its
    /// completion and CM channels are made (non-blocking).
    fn new(
        lib: Arc<RdmaLib>,
        ctx: *mut IbvContext,
        pd: *mut IbvPd,
        limits: DeviceLimits,
    ) -> Result<DevInner, VerbsError> {
        // SAFETY: `ctx` is a live device context.
        let chan = unsafe { (lib.create_comp_channel)(ctx) };
        if chan.is_null() {
            let e = os_err("ibv_create_comp_channel");
            // SAFETY: `pd` is unused yet, freed once.
            unsafe { (lib.dealloc_pd)(pd) };
            return Err(e);
        }
        // SAFETY: no arguments.
        let cm = unsafe { (lib.create_channel)() };
        if cm.is_null() {
            let e = os_err("rdma_create_event_channel");
            // SAFETY: both unused yet, freed once.
            unsafe {
                (lib.destroy_comp_channel)(chan);
                (lib.dealloc_pd)(pd);
            }
            return Err(e);
        }
        let wake = match UnixStream::pair() {
            Ok((w, r)) if w.set_nonblocking(true).is_ok() && r.set_nonblocking(true).is_ok() => {
                (w, r)
            }
            r => {
                // SAFETY: all unused yet, freed once.
                unsafe {
                    (lib.destroy_channel)(cm);
                    (lib.destroy_comp_channel)(chan);
                    (lib.dealloc_pd)(pd);
                }
                return Err(VerbsError::Device(format!(
                    "the NI's wake-up socket pair: {}",
                    r.err()
                        .map_or_else(|| "not non-blocking".to_string(), |e| e.to_string())
                )));
            }
        };
        // SAFETY: both channels are live (checked above).
        unsafe {
            set_nonblocking((*chan).fd);
            set_nonblocking((*cm).fd);
        }
        Ok(DevInner {
            lib,
            ctx,
            pd,
            limits,
            sched: Sched {
                chan,
                cm,
                cqs: Mutex::new(HashMap::new()),
                ids: Mutex::new(HashMap::new()),
                fired: Mutex::new(Vec::new()),
                wcs: Mutex::new(VecDeque::new()),
                evs: Mutex::new(VecDeque::new()),
                wake,
            },
            implicit: Mutex::new(None),
        })
    }
}

/// The raw implicit MR (deregistered with the device).
#[derive(Clone, Copy)]
struct ImplicitMr {
    mr: *mut IbvMr,
    lkey: u32,
    rkey: u32,
}

// SAFETY: the context and PD are used through libibverbs calls, which are
// thread-safe; the PD and channels are owned by this value, the
// scheduler's tables are behind mutexes.
unsafe impl Send for DevInner {}
// SAFETY: as above; nothing is written after creation.
unsafe impl Sync for DevInner {}

impl Drop for DevInner {
    fn drop(&mut self) {
        let implicit = self.implicit.get_mut().unwrap_or_else(|p| p.into_inner());
        if let Some(Ok(m)) = implicit.take() {
            // SAFETY: registered by `RdmaDevice::implicit_mr` on this PD,
            // deregistered once, before the PD.
            unsafe { (self.lib.dereg_mr)(m.mr) };
        }
        // SAFETY: allocated by `RdmaListener::device`, freed once, after
        // every QP, CQ and MR holding this device is gone (they hold the
        // Arc); the channels have no CQ or id left.
        unsafe {
            (self.lib.dealloc_pd)(self.pd);
            (self.lib.destroy_comp_channel)(self.sched.chan);
            (self.lib.destroy_channel)(self.sched.cm);
        }
    }
}

/// The RDMA descriptor (`kib_rdma_desc`) of memory whose pieces lie at
/// `pieces` (virtual address, bytes): o2iblnd's one `rd_key` for every
/// fragment. One piece goes under its own MR's key (`piece_key`); several
/// need one key over all of them, the implicit on-demand-paging MR's
/// (`implicit_key`: o2iblnd's global MR, or its FMR/FastReg mapping, in
/// user space), and are refused with the reason when the HCA has none.
/// More pieces than `max_frags` (the connection's) are refused too.
pub fn rdma_desc(
    pieces: &[(u64, u32)],
    piece_key: Option<u32>,
    implicit_key: Result<u32, String>,
    max_frags: usize,
) -> Result<crate::wire::RdmaDesc, VerbsError> {
    if pieces.len() > max_frags {
        return Err(VerbsError::Invalid(format!(
            "memory of {} fragments, more than the connection's {max_frags}",
            pieces.len()
        )));
    }
    let key = match (pieces.len(), piece_key) {
        (0 | 1, Some(k)) => k,
        (0 | 1, None) => {
            return Err(VerbsError::Invalid(
                "memory of one fragment without its registration".into(),
            ))
        }
        (n, _) => implicit_key.map_err(|why| {
            VerbsError::Device(format!(
                "memory of {n} fragments needs one key over all of them (an \
                 on-demand-paging MR), and {why}"
            ))
        })?,
    };
    Ok(crate::wire::RdmaDesc {
        key,
        frags: pieces
            .iter()
            .map(|&(addr, nob)| crate::wire::RdmaFrag { nob, addr })
            .collect(),
    })
}

impl RdmaDevice {
    /// What the device can do (`ibv_query_device`).
    pub fn limits(&self) -> DeviceLimits {
        self.0.limits
    }

    /// The device's implicit on-demand-paging MR (`ibv_reg_mr(pd, NULL,
    /// SIZE_MAX, IBV_ACCESS_ON_DEMAND | ...)`), registered once: `(lkey,
    /// rkey)` valid for any address of the process, or why the HCA has
    /// none. Like o2iblnd's global MR, its rkey opens the whole address
    /// space to the connected peers for as long as the device lives.
    pub fn implicit_mr(&self) -> Result<(u32, u32), String> {
        let mut g = self.0.implicit.lock().unwrap_or_else(|p| p.into_inner());
        let r = g.get_or_insert_with(|| {
            let access = IBV_ACCESS_LOCAL_WRITE
                | IBV_ACCESS_REMOTE_WRITE
                | IBV_ACCESS_REMOTE_READ
                | IBV_ACCESS_ON_DEMAND;
            // SAFETY: the PD is live; a null address with SIZE_MAX is the
            // implicit ODP form verbs.h documents, which pins nothing.
            let mr =
                unsafe { (self.0.lib.reg_mr)(self.0.pd, std::ptr::null_mut(), usize::MAX, access) };
            if mr.is_null() {
                return Err(format!(
                    "the HCA gives no implicit on-demand-paging MR ({})",
                    std::io::Error::last_os_error()
                ));
            }
            // SAFETY: a registered MR, read once.
            let (lkey, rkey) = unsafe { ((*mr).lkey, (*mr).rkey) };
            Ok(ImplicitMr { mr, lkey, rkey })
        });
        r.as_ref().map(|m| (m.lkey, m.rkey)).map_err(Clone::clone)
    }

    /// The registration and RDMA descriptor of `mem` (see [`rdma_desc`]):
    /// one MR when it is one piece, else the implicit MR's key over every
    /// piece at its own address. The MRs returned keep `mem` alive.
    pub fn register(
        &self,
        mem: &PayloadSpan,
        access: Access,
        max_frags: usize,
    ) -> Result<(Vec<RdmaMr>, crate::wire::RdmaDesc), VerbsError> {
        let pieces: Vec<(u64, u32)> = mem
            .pieces()
            .map(|p| {
                let b = p
                    .borrow()
                    .map_err(|e| VerbsError::Invalid(format!("memory busy: {e}")))?;
                Ok((b.as_ptr() as u64, p.len() as u32))
            })
            .collect::<Result<_, VerbsError>>()?;
        if pieces.len() <= 1 {
            let mrs = self.reg_mr(mem, access)?;
            let key = mrs.first().map(RdmaMr::rkey);
            let desc = rdma_desc(&pieces, key, Err(String::new()), max_frags)?;
            return Ok((mrs, desc));
        }
        let desc = rdma_desc(&pieces, None, self.implicit_mr().map(|k| k.1), max_frags)?;
        Ok((Vec::new(), desc))
    }
    /// Registers each contiguous piece of `mem` with `access` on the
    /// device's PD: one MR per piece (a fragment of an RDMA descriptor);
    /// the HCA reads and writes the MD's own memory, no staging copy.
    pub fn reg_mr(&self, mem: &PayloadSpan, access: Access) -> Result<Vec<RdmaMr>, VerbsError> {
        let mut out = Vec::new();
        let keep = Arc::new(mem.clone());
        for p in mem.pieces() {
            if p.len() as u64 > self.0.limits.max_mr_size {
                return Err(VerbsError::Device(format!(
                    "a piece of {} bytes is larger than the device's max_mr_size {}",
                    p.len(),
                    self.0.limits.max_mr_size
                )));
            }
            let ptr = {
                let mut b = p
                    .borrow_mut()
                    .map_err(|e| VerbsError::Invalid(format!("memory busy: {e}")))?;
                b.as_mut_ptr()
            };
            // SAFETY: `ptr` addresses `p.len()` bytes of an allocation kept
            // alive by the MR (it holds `mem`); the HCA accesses it outside
            // Rust's borrows only while the LND has handed the keys out,
            // which is while the message owns the memory (the contract the
            // kernel has with an MD's pages).
            let mr =
                unsafe { (self.0.lib.reg_mr)(self.0.pd, ptr.cast(), p.len(), ibv_access(access)) };
            if mr.is_null() {
                return Err(os_err("ibv_reg_mr"));
            }
            out.push(RdmaMr {
                dev: self.clone(),
                mr,
                mem: keep.clone(),
            });
        }
        Ok(out)
    }
}

/// The verbs objects of one connection: its CQ (on the device's
/// completion channel) and RC QP (on the device's PD), on an rdma_cm id.
struct Verbs {
    lib: Arc<RdmaLib>,
    cq: *mut IbvCq,
    cm: CmId,
    dev: RdmaDevice,
}

// SAFETY: verbs objects may be used from any thread (libibverbs is
// thread-safe); the pointers are owned by this value.
unsafe impl Send for Verbs {}
// SAFETY: as above.
unsafe impl Sync for Verbs {}

impl Verbs {
    /// A CQ and a QP on `cm` (after route resolution, or a CONNECT_REQUEST's
    /// id), which must be on `dev`.
    fn create(cm: CmId, dev: &RdmaDevice, q: QueueSizes) -> Result<Verbs, VerbsError> {
        let lib = cm.lib.clone();
        // SAFETY: `cm.id` is live; `verbs` is set once the route (or the
        // request) is resolved.
        let ctx = unsafe { (*cm.id).verbs };
        if ctx.is_null() {
            return Err(VerbsError::Device("rdma_cm id has no device".into()));
        }
        if ctx != dev.0.ctx {
            return Err(VerbsError::Device(
                "the peer is reached through another RDMA device than the NI's".into(),
            ));
        }
        let l = dev.0.limits;
        if q.send_wr > l.max_qp_wr
            || q.recv_wr > l.max_qp_wr
            || q.sge > l.max_sge
            || q.send_wr as u64 + q.recv_wr as u64 > l.max_cqe as u64
        {
            return Err(VerbsError::Invalid(format!(
                "queues of {} sends, {} receives, {} SGEs exceed the device's {l}",
                q.send_wr, q.recv_wr, q.sge
            )));
        }
        let cqe = (q.send_wr + q.recv_wr) as c_int;
        // SAFETY: `ctx` and the device's channel are live; vector 0.
        let cq =
            unsafe { (lib.create_cq)(ctx, cqe, std::ptr::null_mut(), dev.0.sched.chan.cast(), 0) };
        if cq.is_null() {
            return Err(os_err("ibv_create_cq"));
        }
        let mut attr = IbvQpInitAttr {
            qp_context: std::ptr::null_mut(),
            send_cq: cq,
            recv_cq: cq,
            srq: std::ptr::null_mut(),
            cap: IbvQpCap {
                max_send_wr: q.send_wr,
                max_recv_wr: q.recv_wr,
                max_send_sge: q.sge,
                max_recv_sge: 1,
                max_inline_data: 0,
            },
            qp_type: IBV_QPT_RC,
            sq_sig_all: 0,
        };
        // SAFETY: `cm.id`, the device's PD and `cq` are live; `attr` is
        // valid for the call.
        if unsafe { (lib.create_qp)(cm.id, dev.0.pd, &mut attr) } != 0 {
            let e = os_err("rdma_create_qp");
            // SAFETY: created above, unused.
            unsafe { (lib.destroy_cq)(cq) };
            return Err(e);
        }
        Ok(Verbs {
            lib,
            cq,
            cm,
            dev: dev.clone(),
        })
    }

    /// Hands the connection to the device's scheduler: its id moves to
    /// the device's CM channel, its CQ is drained and armed by the NI's
    /// poller from now on.
    fn attach(v: &Arc<Verbs>) -> Result<(), VerbsError> {
        let s = &v.dev.0.sched;
        // SAFETY: the id is live; the device's channel outlives it.
        if unsafe { (v.lib.migrate_id)(v.cm.id, s.cm) } != 0 {
            return Err(os_err("rdma_migrate_id"));
        }
        // SAFETY: the id holds its QP.
        let qpn = unsafe { (*v.qp()).qp_num };
        lock(&s.ids).insert(v.cm.id as usize, qpn);
        lock(&s.cqs).insert(v.cq as usize, Arc::downgrade(v));
        lock(&s.fired).push(v.cq as usize);
        v.dev.wake();
        Ok(())
    }

    fn qp(&self) -> *mut IbvQp {
        // SAFETY: the id holds the QP made by `create` until drop.
        unsafe { (*self.cm.id).qp }
    }
}

impl Drop for Verbs {
    fn drop(&mut self) {
        let s = &self.dev.0.sched;
        lock(&s.cqs).remove(&(self.cq as usize));
        lock(&s.ids).remove(&(self.cm.id as usize));
        // SAFETY: the QP and CQ were made by `create` and are destroyed
        // once, QP first (the scheduler no longer finds the CQ; an event
        // it took for it is acknowledged, which ibv_destroy_cq waits
        // for); the id goes after, the device last (field order).
        unsafe {
            (self.lib.destroy_qp)(self.cm.id);
            (self.lib.destroy_cq)(self.cq);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A connected RC queue pair of the rdma provider.
#[derive(Clone)]
pub struct RdmaQp(Arc<Verbs>);

/// `enum rdma_cm_event_type`'s name of `ev` (as `ibv_event_type_str`
/// and the kernel's logs spell it).
pub fn cm_event_name(ev: u32) -> &'static str {
    match ev {
        RDMA_CM_EVENT_ADDR_RESOLVED => "ADDR_RESOLVED",
        RDMA_CM_EVENT_ADDR_ERROR => "ADDR_ERROR",
        RDMA_CM_EVENT_ROUTE_RESOLVED => "ROUTE_RESOLVED",
        RDMA_CM_EVENT_ROUTE_ERROR => "ROUTE_ERROR",
        RDMA_CM_EVENT_CONNECT_REQUEST => "CONNECT_REQUEST",
        5 => "CONNECT_RESPONSE",
        RDMA_CM_EVENT_CONNECT_ERROR => "CONNECT_ERROR",
        RDMA_CM_EVENT_UNREACHABLE => "UNREACHABLE",
        RDMA_CM_EVENT_REJECTED => "REJECTED",
        RDMA_CM_EVENT_ESTABLISHED => "ESTABLISHED",
        RDMA_CM_EVENT_DISCONNECTED => "DISCONNECTED",
        RDMA_CM_EVENT_DEVICE_REMOVAL => "DEVICE_REMOVAL",
        12 => "MULTICAST_JOIN",
        13 => "MULTICAST_ERROR",
        14 => "ADDR_CHANGE",
        RDMA_CM_EVENT_TIMEWAIT_EXIT => "TIMEWAIT_EXIT",
        _ => "unknown event",
    }
}

/// What an admin reads when a connection step (`what`: address
/// resolution, route resolution, connect) ends with event `ev` instead of
/// success: the event's name and its status (a negative errno for the
/// resolution and UNREACHABLE events; for a REJECTED without o2iblnd's
/// reject data, the IB CM's reject reason, 8 meaning that nothing listens
/// on the service port).
pub fn cm_failure(what: &str, ev: u32, status: c_int) -> String {
    let name = cm_event_name(ev);
    let why = match ev {
        RDMA_CM_EVENT_REJECTED if status == 8 => {
            "IB CM reject reason 8, invalid service ID: no o2ib listener on the peer's \
             service port (is ko2iblnd or lnetd up there, with the same \"service\"?)"
                .to_string()
        }
        RDMA_CM_EVENT_REJECTED => {
            format!("IB CM reject reason {status}, without o2iblnd's reject data")
        }
        _ if status < 0 => format!(
            "status {status}: {}",
            std::io::Error::from_raw_os_error(-status)
        ),
        _ => format!("status {status}"),
    };
    format!("{what} failed: RDMA_CM_EVENT_{name} ({why})")
}

/// The [`CmEvent`] an rdma_cm event of an established connection (on QP
/// `qp_num`) is for the NI; `None` for the others (ignored).
pub fn cm_event(ev: u32, qp_num: u32) -> Option<CmEvent> {
    match ev {
        RDMA_CM_EVENT_DISCONNECTED => Some(CmEvent::Disconnected { qp_num }),
        RDMA_CM_EVENT_TIMEWAIT_EXIT => Some(CmEvent::TimewaitExit { qp_num }),
        RDMA_CM_EVENT_DEVICE_REMOVAL => Some(CmEvent::DeviceRemoved { qp_num }),
        _ => None,
    }
}

/// `fcntl(fd, F_SETFL, flags | O_NONBLOCK)` (a closed `fd` only fails
/// with EBADF).
fn set_nonblocking(fd: c_int) {
    // SAFETY: fcntl with F_GETFL/F_SETFL takes an int and touches no
    // memory of ours, whatever `fd` is.
    unsafe {
        let fl = fcntl(fd, F_GETFL, 0);
        if fl >= 0 {
            fcntl(fd, F_SETFL, fl | O_NONBLOCK);
        }
    }
}

/// poll(2) for input on `fds` for at most `ms` milliseconds; which of them
/// are readable (or hung up / in error: a read then says what).
fn readable<const N: usize>(fds: [c_int; N], ms: c_int) -> [bool; N] {
    let mut p = fds.map(|fd| PollFd {
        fd,
        events: POLLIN,
        revents: 0,
    });
    // SAFETY: `p` is valid for its N entries during the call.
    let n = unsafe { poll(p.as_mut_ptr(), N as _, ms) };
    if n <= 0 {
        return [false; N];
    }
    p.map(|x| x.revents != 0)
}

extern "C" {
    fn fcntl(fd: c_int, cmd: c_int, arg: c_int) -> c_int;
    fn poll(fds: *mut PollFd, nfds: std::ffi::c_ulong, timeout_ms: c_int) -> c_int;
}

impl RdmaDevice {
    /// Ends the NI poller's wait on the device now (shutdown; a new
    /// connection to drain).
    pub fn wake(&self) {
        let _ = (&self.0.sched.wake.0).write(&[1]);
    }

    /// Takes the completion channel's events (non-blocking): each names a
    /// CQ to drain, and is acknowledged.
    fn take_cq_events(&self) {
        let s = &self.0.sched;
        loop {
            let mut cq: *mut IbvCq = std::ptr::null_mut();
            let mut ctx: *mut std::ffi::c_void = std::ptr::null_mut();
            // SAFETY: the channel is live and non-blocking; both
            // out-pointers are valid; an event taken is acknowledged once,
            // on its CQ (alive: ibv_destroy_cq waits for the ack).
            let got = unsafe {
                if (self.0.lib.get_cq_event)(s.chan, &mut cq, &mut ctx) != 0 || cq.is_null() {
                    false
                } else {
                    (self.0.lib.ack_cq_events)(cq, 1);
                    true
                }
            };
            if !got {
                return;
            }
            lock(&s.fired).push(cq as usize);
        }
    }

    /// Reads the pending rdma_cm events of the established connections
    /// (non-blocking channel) into the event queue, by QP number.
    fn take_cm_events(&self) {
        let s = &self.0.sched;
        while let Ok((ev, _, _, id)) = get_event(&self.0.lib, s.cm) {
            let qpn = lock(&s.ids).get(&(id as usize)).copied();
            if let Some(e) = qpn.and_then(|q| cm_event(ev, q)) {
                lock(&s.evs).push_back(e);
            }
        }
    }

    /// Drains every CQ that had an event (or was just attached): polled
    /// empty, armed, polled again (a completion that came before arming
    /// raises no event); whether any completion came.
    fn drain_fired(&self) -> bool {
        let s = &self.0.sched;
        let fired = std::mem::take(&mut *lock(&s.fired));
        let mut any = false;
        for cq in fired {
            let Some(v) = lock(&s.cqs).get(&cq).and_then(Weak::upgrade) else {
                continue;
            };
            let mut got = drain(&v);
            arm(&v);
            got.extend(drain(&v));
            any |= !got.is_empty();
            lock(&s.wcs).extend(got);
        }
        any
    }
}

/// Every completion of `v`'s CQ now.
fn drain(v: &Verbs) -> Vec<Wc> {
    let mut out = Vec::new();
    loop {
        let got = poll_hw(v, 64);
        let n = got.len();
        out.extend(got);
        if n < 64 {
            return out;
        }
    }
}

/// Arms `v`'s CQ: its next completion raises an event on the device's
/// channel (verbs.h's inline `ibv_req_notify_cq`, all completions).
fn arm(v: &Verbs) -> bool {
    let cq = v.cq;
    // SAFETY: `cq` is live; the context's ops' req_notify_cq is what
    // verbs.h's inline calls.
    unsafe {
        match (*(*cq).context).ops.req_notify_cq {
            Some(f) => f(cq, 0) == 0,
            None => false,
        }
    }
}

/// Up to `max` completions from `v`'s CQ.
fn poll_hw(v: &Verbs, max: usize) -> Vec<Wc> {
    let mut wcs = vec![IbvWc::default(); max.clamp(1, 64)];
    let cq = v.cq;
    // SAFETY: `cq` is live; its context's ops' poll_cq is what verbs.h's
    // inline ibv_poll_cq calls; `wcs` has room for the count.
    let n = unsafe {
        match (*(*cq).context).ops.poll_cq {
            Some(f) => f(cq, wcs.len() as c_int, wcs.as_mut_ptr()),
            None => -1,
        }
    };
    wcs.truncate(n.max(0) as usize);
    wcs.iter()
        .map(|w| Wc {
            wr_id: w.wr_id,
            status: wc_status(w.status),
            opcode: wc_opcode(w.opcode),
            byte_len: w.byte_len,
            qp_num: w.qp_num,
        })
        .collect()
}

/// Connects to `dst` from `src` (`(src, dst)`; o2iblnd's active side): resolves address
/// and route within `timeout`, makes the QP, and sends `private` (the
/// CONNREQ) in `rdma_connect`, `prepare` having seen the QP before (post
/// receives there). Returns the QP (its completions and later CM events
/// come through the device, [`VerbsCq`] of [`RdmaDevice`]) and the
/// CONNACK's bytes, or [`VerbsError::Rejected`] with the `kib_rej`.
pub fn connect(
    dev: &RdmaDevice,
    (src, dst): (Ipv4Addr, SocketAddrV4),
    private: &[u8],
    q: QueueSizes,
    retries: Retries,
    timeout: Duration,
    prepare: &mut dyn FnMut(&RdmaQp) -> Result<(), VerbsError>,
) -> Result<(RdmaQp, Vec<u8>), VerbsError> {
    check_private(private, MAX_REQ_PRIVATE_DATA, "a connect request")?;
    let lib = &dev.0.lib;
    let cm = CmId::new(lib)?;
    let ms = timeout.as_millis().min(i32::MAX as u128) as c_int;
    let mut s = sockaddr(SocketAddrV4::new(src, 0));
    let mut d = sockaddr(dst);
    // SAFETY: `cm.id` is live; both addresses are valid sockaddr_in.
    if unsafe { (lib.resolve_addr)(cm.id, &mut s, &mut d, ms) } != 0 {
        return Err(VerbsError::Unreachable(format!(
            "rdma_resolve_addr {src} -> {dst}: {}",
            std::io::Error::last_os_error()
        )));
    }
    cm.expect(RDMA_CM_EVENT_ADDR_RESOLVED, "address resolution")?;
    // SAFETY: the address is resolved.
    if unsafe { (lib.resolve_route)(cm.id, ms) } != 0 {
        return Err(VerbsError::Unreachable(format!(
            "rdma_resolve_route {dst}: {}",
            std::io::Error::last_os_error()
        )));
    }
    cm.expect(RDMA_CM_EVENT_ROUTE_RESOLVED, "route resolution")?;
    let v = Arc::new(Verbs::create(cm, dev, q)?);
    // Receives are posted before the request goes (kiblnd_create_conn
    // before rdma_connect): the peer may send as soon as it accepts.
    prepare(&RdmaQp(v.clone()))?;
    let mut cp = conn_param(private, retries.retry_count, retries.rnr_retry_count);
    // SAFETY: the id has its QP; `cp` points into `private`, alive for
    // the call (rdma_connect copies the private data).
    if unsafe { (lib.connect)(v.cm.id, &mut cp) } != 0 {
        return Err(os_err("rdma_connect"));
    }
    let ack = v.cm.expect(RDMA_CM_EVENT_ESTABLISHED, "connect")?;
    Verbs::attach(&v)?;
    Ok((RdmaQp(v), ack))
}

/// A listening rdma_cm id (o2iblnd's `kiblnd_dev_failover` listener).
pub struct RdmaListener {
    cm: CmId,
}

/// A connection request: the peer's CONNREQ bytes, answered by
/// [`RdmaRequest::accept`] or [`RdmaRequest::reject`].
pub struct RdmaRequest {
    lib: Arc<RdmaLib>,
    id: *mut RdmaCmId,
    /// The CONNREQ.
    pub private_data: Vec<u8>,
    /// The requester's port (`require_privileged_port`).
    pub peer_port: u16,
    /// The requester's address (`rdma_get_peer_addr`), when IPv4.
    pub peer_addr: Option<SocketAddrV4>,
}

// SAFETY: the request's id is used by one thread at a time (accept or
// reject consume the value).
unsafe impl Send for RdmaRequest {}

impl RdmaListener {
    /// Binds to `addr` and listens (`backlog` pending requests).
    pub fn bind(lib: &Arc<RdmaLib>, addr: SocketAddrV4, backlog: i32) -> Result<Self, VerbsError> {
        let cm = CmId::new(lib)?;
        let mut a = sockaddr(addr);
        // SAFETY: `cm.id` is live, `a` a valid sockaddr_in.
        if unsafe { (lib.bind_addr)(cm.id, &mut a) } != 0 {
            return Err(os_err(&format!("rdma_bind_addr {addr}")));
        }
        // SAFETY: bound above.
        if unsafe { (lib.listen)(cm.id, backlog) } != 0 {
            return Err(os_err("rdma_listen"));
        }
        Ok(RdmaListener { cm })
    }

    /// The device the listener is bound on (its address is an RDMA port),
    /// with a new protection domain: the NI's device.
    pub fn device(&self) -> Result<RdmaDevice, VerbsError> {
        // SAFETY: the id is live and bound; `verbs` is its device's
        // context (null when the address is on no RDMA device).
        let ctx = unsafe { (*self.cm.id).verbs };
        if ctx.is_null() {
            return Err(VerbsError::Device(
                "the listener's address is on no RDMA device".into(),
            ));
        }
        let mut attr = IbvDeviceAttr::default();
        // SAFETY: `ctx` is a live device context, `attr` a valid out-struct.
        let rc = unsafe { (self.cm.lib.query_device)(ctx, &mut attr) };
        if rc != 0 {
            return Err(VerbsError::Device(format!(
                "ibv_query_device: {}",
                std::io::Error::from_raw_os_error(rc.abs())
            )));
        }
        let limits = DeviceLimits::from_attr(&attr);
        if limits.max_qp_wr < 2 || limits.max_sge == 0 || limits.max_cqe < 4 {
            return Err(VerbsError::Device(format!(
                "the RDMA device cannot hold an o2ib connection ({limits})"
            )));
        }
        // SAFETY: `ctx` is a live device context.
        let pd = unsafe { (self.cm.lib.alloc_pd)(ctx) };
        if pd.is_null() {
            return Err(os_err("ibv_alloc_pd"));
        }
        Ok(RdmaDevice(Arc::new(DevInner::new(
            self.cm.lib.clone(),
            ctx,
            pd,
            limits,
        )?)))
    }

    /// The next connection request if one comes within `wait` (poll(2)
    /// on the listener's channel; `Ok(None)` when none came).
    pub fn poll_request(&self, wait: Duration) -> Result<Option<RdmaRequest>, VerbsError> {
        // SAFETY: the listener's channel lives as long as `self`.
        let fd = unsafe { (*self.cm.ch).fd };
        let ms = wait.as_millis().clamp(1, i32::MAX as u128) as c_int;
        if !readable([fd], ms)[0] {
            return Ok(None);
        }
        self.get_request().map(Some)
    }

    /// Blocks for the next connection request.
    pub fn get_request(&self) -> Result<RdmaRequest, VerbsError> {
        loop {
            let (ev, _, private, id) = self.cm.next_event()?;
            if ev == RDMA_CM_EVENT_CONNECT_REQUEST {
                // SAFETY: `id` is the request's new id, live until it is
                // accepted or rejected.
                let port = unsafe { (self.cm.lib.get_dst_port)(id) };
                // SAFETY: as above; the route's destination address lies
                // inside the id (verbs.h's inline rdma_get_peer_addr), a
                // sockaddr_in when its family says AF_INET; read unaligned.
                let sa = unsafe {
                    std::ptr::addr_of!((*id).route)
                        .cast::<u8>()
                        .add(ROUTE_DST_ADDR)
                        .cast::<SockaddrIn>()
                        .read_unaligned()
                };
                let peer_addr = (sa.sin_family == AF_INET).then(|| {
                    SocketAddrV4::new(
                        Ipv4Addr::from(u32::from_be(sa.sin_addr)),
                        u16::from_be(sa.sin_port),
                    )
                });
                return Ok(RdmaRequest {
                    lib: self.cm.lib.clone(),
                    id,
                    private_data: private,
                    peer_port: u16::from_be(port),
                    peer_addr,
                });
            }
        }
    }
}

impl RdmaRequest {
    /// Makes the QP and accepts with `private` (the CONNACK); the
    /// connection's completions and later CM events come through the
    /// device ([`VerbsCq`] of [`RdmaDevice`]).
    pub fn accept(
        self,
        dev: &RdmaDevice,
        private: &[u8],
        q: QueueSizes,
        rnr_retry_count: u8,
        prepare: &mut dyn FnMut(&RdmaQp),
    ) -> Result<RdmaQp, VerbsError> {
        check_private(private, MAX_REP_PRIVATE_DATA, "an accept")?;
        // The request's id delivers its events on the listener's channel
        // until `Verbs::attach` moves it to the device's.
        let cm = CmId {
            lib: self.lib.clone(),
            ch: std::ptr::null_mut(),
            id: self.id,
        };
        let v = Arc::new(Verbs::create(cm, dev, q)?);
        // Receives are posted before the accept goes, so the requester
        // never finds none.
        prepare(&RdmaQp(v.clone()));
        let mut cp = conn_param(private, 0, rnr_retry_count);
        // Its ESTABLISHED and later events go to the device's channel.
        // SAFETY: the id is live; the device's channel outlives it.
        if unsafe { (self.lib.migrate_id)(v.cm.id, v.dev.0.sched.cm) } != 0 {
            return Err(os_err("rdma_migrate_id"));
        }
        // SAFETY: the id has its QP; `cp` points into `private`.
        if unsafe { (self.lib.accept)(v.cm.id, &mut cp) } != 0 {
            return Err(os_err("rdma_accept"));
        }
        Verbs::attach(&v)?;
        Ok(RdmaQp(v))
    }

    /// Rejects with `private` (a `kib_rej`).
    pub fn reject(self, private: &[u8]) -> Result<(), VerbsError> {
        let n = private.len().min(MAX_REJ_PRIVATE_DATA);
        // SAFETY: `id` is the request's; `private` is valid for `n` bytes.
        let rc = unsafe { (self.lib.reject)(self.id, private.as_ptr().cast(), n as u8) };
        // SAFETY: a rejected request's id is destroyed by us, once.
        unsafe { (self.lib.destroy_id)(self.id) };
        if rc != 0 {
            return Err(os_err("rdma_reject"));
        }
        Ok(())
    }
}

/// A registered memory region of the rdma provider (`ibv_mr`), covering
/// one contiguous piece of an MD; deregistered on drop.
pub struct RdmaMr {
    dev: RdmaDevice,
    mr: *mut IbvMr,
    /// Keeps the memory alive while registered (one copy shared by the
    /// MRs of one `reg_mr`).
    mem: Arc<PayloadSpan>,
}

// SAFETY: an MR is only read (keys) and deregistered once, in drop.
unsafe impl Send for RdmaMr {}
// SAFETY: as above.
unsafe impl Sync for RdmaMr {}

impl RdmaMr {
    /// Local key.
    pub fn lkey(&self) -> u32 {
        // SAFETY: `mr` is live until drop.
        unsafe { (*self.mr).lkey }
    }
    /// Remote key.
    pub fn rkey(&self) -> u32 {
        // SAFETY: as above.
        unsafe { (*self.mr).rkey }
    }
    /// The registered address (what an RDMA descriptor carries).
    pub fn addr(&self) -> u64 {
        // SAFETY: as above.
        unsafe { (*self.mr).addr as u64 }
    }
    /// The memory registered (the copy the MRs of one `reg_mr` share: it
    /// is unique when the MD let its memory go).
    pub fn memory(&self) -> &PayloadSpan {
        &self.mem
    }
}

impl Drop for RdmaMr {
    fn drop(&mut self) {
        // SAFETY: registered by `reg_mr`, deregistered once.
        unsafe { (self.dev.0.lib.dereg_mr)(self.mr) };
    }
}

fn ibv_access(a: Access) -> c_int {
    let mut f = 0;
    if a.contains(Access::LOCAL_WRITE) {
        f |= IBV_ACCESS_LOCAL_WRITE;
    }
    if a.contains(Access::REMOTE_WRITE) {
        f |= IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_LOCAL_WRITE;
    }
    if a.contains(Access::REMOTE_READ) {
        f |= IBV_ACCESS_REMOTE_READ;
    }
    f
}

impl VerbsQp for RdmaQp {
    fn qp_num(&self) -> u32 {
        // SAFETY: the QP lives as long as `self.0`.
        unsafe { (*self.0.qp()).qp_num }
    }

    fn post_send(&self, wr: SendWr) -> Result<(), VerbsError> {
        if wr.sge.is_empty() {
            return Err(VerbsError::Invalid("a send with no SGE".into()));
        }
        let mut sges: Vec<IbvSge> = wr
            .sge
            .iter()
            .map(|s| IbvSge {
                addr: s.addr,
                length: s.length,
                lkey: s.lkey,
            })
            .collect();
        let mut w = IbvSendWr {
            wr_id: wr.wr_id,
            sg_list: sges.as_mut_ptr(),
            num_sge: sges.len() as c_int,
            send_flags: IBV_SEND_SIGNALED,
            ..IbvSendWr::default()
        };
        match wr.op {
            SendOp::Send => w.opcode = IBV_WR_SEND,
            SendOp::Write { remote_addr, rkey } => {
                w.opcode = IBV_WR_RDMA_WRITE;
                w.wr.remote_addr = remote_addr;
                w.wr.rkey = rkey;
            }
            SendOp::Read { remote_addr, rkey } => {
                w.opcode = IBV_WR_RDMA_READ;
                w.wr.remote_addr = remote_addr;
                w.wr.rkey = rkey;
            }
        }
        let qp = self.0.qp();
        let mut bad: *mut IbvSendWr = std::ptr::null_mut();
        // SAFETY: `qp` is live; its context's ops table is the provider's
        // (what verbs.h's inline ibv_post_send calls); `w` and `sges` are
        // valid for the call (the HCA copies the request).
        let rc = unsafe {
            match (*(*qp).context).ops.post_send {
                Some(f) => f(qp, &mut w, &mut bad),
                None => -1,
            }
        };
        if rc != 0 {
            return Err(VerbsError::Device(format!(
                "ibv_post_send: {}",
                std::io::Error::from_raw_os_error(rc.abs())
            )));
        }
        Ok(())
    }

    fn post_recv(&self, wr: RecvWr) -> Result<(), VerbsError> {
        let mut sge = IbvSge {
            addr: wr.sge.addr,
            length: wr.sge.length,
            lkey: wr.sge.lkey,
        };
        let mut w = IbvRecvWr {
            wr_id: wr.wr_id,
            next: std::ptr::null_mut(),
            sg_list: &mut sge,
            num_sge: 1,
        };
        let qp = self.0.qp();
        let mut bad: *mut IbvRecvWr = std::ptr::null_mut();
        // SAFETY: as in `post_send`, with the ops' post_recv.
        let rc = unsafe {
            match (*(*qp).context).ops.post_recv {
                Some(f) => f(qp, &mut w, &mut bad),
                None => -1,
            }
        };
        if rc != 0 {
            return Err(VerbsError::Device(format!(
                "ibv_post_recv: {}",
                std::io::Error::from_raw_os_error(rc.abs())
            )));
        }
        Ok(())
    }

    fn disconnect(&self) {
        // SAFETY: the id is live; disconnecting twice is harmless.
        unsafe { (self.0.lib.disconnect)(self.0.cm.id) };
    }
}

/// `enum ibv_wc_status` to the interface's statuses (the ones o2iblnd
/// tells apart; the rest count as the peer gone).
pub fn wc_status(s: u32) -> WcStatus {
    match s {
        0 => WcStatus::Success,
        1 => WcStatus::LocLenErr,
        4 => WcStatus::LocProtErr,
        5 => WcStatus::WrFlushErr,
        9 => WcStatus::RemInvReqErr,
        10 => WcStatus::RemAccessErr,
        11 => WcStatus::RemOpErr,
        13 => WcStatus::RnrRetryExcErr,
        _ => WcStatus::RetryExcErr,
    }
}

/// `enum ibv_wc_opcode` to the interface's opcodes.
pub fn wc_opcode(o: u32) -> WcOpcode {
    match o {
        IBV_WC_RDMA_WRITE => WcOpcode::RdmaWrite,
        IBV_WC_RDMA_READ => WcOpcode::RdmaRead,
        o if o & IBV_WC_RECV != 0 => WcOpcode::Recv,
        _ => WcOpcode::Send,
    }
}

/// The completions and CM events of all the device's connections, for
/// the NI's poller (one thread, as o2iblnd's schedulers serve their
/// connections' CQs).
impl VerbsCq for RdmaDevice {
    fn poll(&self, max: usize) -> Vec<Wc> {
        let s = &self.0.sched;
        if lock(&s.wcs).is_empty() {
            self.drain_fired();
        }
        let mut q = lock(&s.wcs);
        let n = q.len().min(max);
        q.drain(..n).collect()
    }

    fn wait(&self, t: Duration) -> bool {
        // Sleeps in poll(2) on the completion channel and the CM channel
        // until an armed CQ has a completion, a CM event comes, or `t`
        // passes: no timed polling.
        let s = &self.0.sched;
        let deadline = Instant::now() + t;
        loop {
            if !lock(&s.wcs).is_empty() || !lock(&s.evs).is_empty() {
                return true;
            }
            if self.drain_fired() {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            let ms = left.as_millis().clamp(1, i32::MAX as u128) as c_int;
            // SAFETY: both channels live as long as the device.
            let fds = unsafe { [(*s.chan).fd, (*s.cm).fd, s.wake.1.as_raw_fd()] };
            let [comp, cm, wake] = readable(fds, ms);
            if comp {
                self.take_cq_events();
            }
            if cm {
                self.take_cm_events();
            }
            if wake {
                let mut b = [0u8; 64];
                while matches!((&s.wake.1).read(&mut b), Ok(n) if n > 0) {}
            }
        }
    }

    fn poll_event(&self) -> Option<CmEvent> {
        lock(&self.0.sched.evs).pop_front()
    }
}

#[cfg(test)]
mod fake;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Body, ConnParams, Endian, MsgRepr, VERSION_2};

    #[test]
    fn one_key_per_descriptor_one_mr_or_the_implicit_one() {
        // One piece: its own MR's key, its own address.
        let d = rdma_desc(&[(0x1000, 4096)], Some(0x11), Err("none".into()), 257).expect("one");
        assert_eq!(d.key, 0x11);
        assert_eq!(d.frags.len(), 1);
        assert_eq!((d.frags[0].addr, d.frags[0].nob), (0x1000, 4096));
        // Several pieces (an MD of several allocations): the implicit MR's
        // one key, each piece at its own virtual address.
        let pieces = [(0x7f00_0000_1000, 100), (0x5500_0000_0000, 4096), (0x10, 1)];
        let d = rdma_desc(&pieces, None, Ok(0x22), 257).expect("implicit");
        assert_eq!(d.key, 0x22);
        let got: Vec<(u64, u32)> = d.frags.iter().map(|f| (f.addr, f.nob)).collect();
        assert_eq!(got, pieces);
        // Without on-demand paging: refused, saying why.
        let e = rdma_desc(&pieces, None, Err("the HCA gives none".into()), 257)
            .expect_err("no implicit MR");
        assert_eq!(
            e.to_string(),
            "memory of 3 fragments needs one key over all of them (an on-demand-paging \
             MR), and the HCA gives none"
        );
        // More fragments than the connection takes.
        let e = rdma_desc(&pieces, None, Ok(1), 2).expect_err("too many");
        assert!(
            e.to_string()
                .contains("3 fragments, more than the connection's 2"),
            "{e}"
        );
    }

    #[test]
    fn queue_depth_is_lowered_until_the_queues_fit_the_device() {
        let l = DeviceLimits {
            max_qp_wr: 1000,
            max_sge: 1,
            max_cqe: 1500,
            max_mr_size: u64::MAX,
        };
        // A WR per fragment and per unit of depth, 10 receives per unit.
        let sizes = |d: u32, f: u32| QueueSizes {
            send_wr: f * d,
            recv_wr: 10 * d,
            sge: 1,
        };
        assert_eq!(fit_queues(8, 100, &l, sizes), (8, 100));
        assert_eq!(fit_queues(20, 100, &l, sizes), (10, 100), "max_qp_wr");
        let small_cq = DeviceLimits { max_cqe: 550, ..l };
        assert_eq!(fit_queues(20, 100, &small_cq, sizes), (5, 100), "max_cqe");
        let tiny = DeviceLimits { max_qp_wr: 10, ..l };
        // Depth 1 does not fit: the fragments go down too.
        assert_eq!(fit_queues(8, 100, &tiny, sizes), (1, 10), "fragments");
        let none = DeviceLimits { max_qp_wr: 0, ..l };
        assert_eq!(fit_queues(8, 100, &none, sizes), (1, 1), "never below 1");
    }

    #[test]
    fn cm_failures_name_the_event_and_its_status() {
        assert_eq!(
            cm_failure("address resolution", RDMA_CM_EVENT_ADDR_ERROR, -110),
            "address resolution failed: RDMA_CM_EVENT_ADDR_ERROR (status -110: \
             Connection timed out (os error 110))"
        );
        assert_eq!(
            cm_failure("connect", RDMA_CM_EVENT_REJECTED, 28),
            "connect failed: RDMA_CM_EVENT_REJECTED (IB CM reject reason 28, without \
             o2iblnd's reject data)"
        );
        assert_eq!(cm_event_name(RDMA_CM_EVENT_CONNECT_ERROR), "CONNECT_ERROR");
        assert_eq!(cm_event_name(99), "unknown event");
    }

    #[test]
    fn cm_events_after_set_up_map_to_what_the_ni_handles() {
        assert_eq!(
            cm_event(RDMA_CM_EVENT_DISCONNECTED, 7),
            Some(CmEvent::Disconnected { qp_num: 7 })
        );
        assert_eq!(
            cm_event(RDMA_CM_EVENT_TIMEWAIT_EXIT, 7),
            Some(CmEvent::TimewaitExit { qp_num: 7 })
        );
        assert_eq!(
            cm_event(RDMA_CM_EVENT_DEVICE_REMOVAL, 7),
            Some(CmEvent::DeviceRemoved { qp_num: 7 })
        );
        // An accepted id's ESTABLISHED, and anything else, is ignored.
        assert_eq!(cm_event(RDMA_CM_EVENT_ESTABLISHED, 7), None);
        assert_eq!(cm_event(RDMA_CM_EVENT_REJECTED, 7), None);
    }

    /// The fd plumbing of the completion and CM channels (fcntl, poll(2)),
    /// on a socket pair: what the device's wait (`impl VerbsCq for RdmaDevice`) does with the channels' fds.
    #[test]
    fn channel_fds_are_made_non_blocking_and_waited_on_with_poll() {
        use std::io::{Read, Write};
        use std::os::fd::AsRawFd;
        let (mut a, mut b) = std::os::unix::net::UnixStream::pair().expect("socketpair");
        set_nonblocking(b.as_raw_fd());
        let mut buf = [0u8; 4];
        let e = b.read(&mut buf).expect_err("nothing to read");
        assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock, "non-blocking");
        let t0 = Instant::now();
        assert_eq!(readable([b.as_raw_fd(), a.as_raw_fd()], 30), [false, false]);
        assert!(t0.elapsed() >= Duration::from_millis(25), "slept in poll");
        a.write_all(b"x").expect("write");
        assert_eq!(
            readable([a.as_raw_fd(), b.as_raw_fd()], 5000),
            [false, true]
        );
        assert_eq!(b.read(&mut buf).expect("read"), 1);
    }

    #[test]
    fn the_channel_entry_points_resolve_where_rdma_core_is_installed() {
        match RdmaLib::open() {
            Ok(lib) => {
                // Looked up by name at open: present in rdma-core's libraries.
                let _ = (lib.create_comp_channel, lib.get_cq_event, lib.ack_cq_events);
            }
            Err(e) => eprintln!("rdma-core not installed here ({e}): nothing to resolve"),
        }
    }

    #[test]
    fn connreq_goes_to_rdma_connect_byte_for_byte_with_o2iblnds_parameters() {
        let req = MsgRepr {
            version: VERSION_2,
            credits: 0,
            src_nid: 0x0005_0000_0a00_0001,
            src_stamp: 0x1122_3344_5566_7788,
            dst_nid: 0x0005_0000_0a00_0002,
            dst_stamp: 0,
            body: Body::ConnReq(ConnParams {
                queue_depth: 8,
                max_frags: 257,
                max_msg_size: 4096,
            }),
        };
        let mut buf = [0u8; 56];
        let n = req.emit(Endian::NATIVE, &mut buf).expect("emit");
        assert_eq!(
            n, MAX_REQ_PRIVATE_DATA,
            "a CONNREQ fills the CM REQ's 56 bytes"
        );
        let cp = conn_param(&buf[..n], 5, 6);
        // SAFETY: `cp.private_data` points into `buf`, alive here.
        let handed = unsafe {
            std::slice::from_raw_parts(cp.private_data.cast::<u8>(), cp.private_data_len as usize)
        };
        assert_eq!(handed, &buf[..n]);
        assert_eq!(MsgRepr::decode(handed).expect("decode"), req);
        assert_eq!(cp.private_data_len, 56);
        assert_eq!(
            (
                cp.responder_resources,
                cp.initiator_depth,
                cp.flow_control,
                cp.retry_count,
                cp.rnr_retry_count,
                cp.srq,
                cp.qp_num
            ),
            (0, 0, 1, 5, 6, 0, 0)
        );
    }

    #[test]
    fn statuses_and_opcodes_map_as_the_headers_number_them() {
        assert_eq!(wc_status(0), WcStatus::Success);
        assert_eq!(wc_status(5), WcStatus::WrFlushErr);
        assert_eq!(wc_status(10), WcStatus::RemAccessErr);
        assert_eq!(wc_status(12), WcStatus::RetryExcErr);
        assert_eq!(wc_status(13), WcStatus::RnrRetryExcErr);
        assert_eq!(wc_opcode(IBV_WC_SEND), WcOpcode::Send);
        assert_eq!(wc_opcode(IBV_WC_RDMA_WRITE), WcOpcode::RdmaWrite);
        assert_eq!(wc_opcode(IBV_WC_RDMA_READ), WcOpcode::RdmaRead);
        assert_eq!(wc_opcode(IBV_WC_RECV), WcOpcode::Recv);
        assert_eq!(
            ibv_access(Access::REMOTE_WRITE),
            IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_LOCAL_WRITE
        );
    }

    #[test]
    fn without_a_device_connect_and_listen_fail_with_a_reason() {
        let lib = match RdmaLib::open() {
            Ok(l) => l,
            Err(e) => {
                // No rdma-core: named.
                assert!(e.to_string().contains("rdma-core"), "{e}");
                return;
            }
        };
        if super::super::devices().is_ok() {
            eprintln!("an RDMA device exists: not checking the no-device errors");
            return;
        }
        let e = RdmaListener::bind(&lib, SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0), 8)
            .err()
            .expect("no device: bind fails");
        assert!(e.to_string().contains("rdma_"), "{e}");
    }

    #[test]
    fn private_data_longer_than_the_cm_message_is_refused() {
        assert!(check_private(&[0u8; 56], MAX_REQ_PRIVATE_DATA, "a connect request").is_ok());
        let e = check_private(&[0u8; 57], MAX_REQ_PRIVATE_DATA, "a connect request")
            .expect_err("too long");
        assert_eq!(
            e.to_string(),
            "invalid verbs request: 57 bytes of private data in a connect request (at most 56)"
        );
        assert!(check_private(&[0u8; 196], MAX_REP_PRIVATE_DATA, "an accept").is_ok());
        let e = check_private(&[0u8; 197], MAX_REP_PRIVATE_DATA, "an accept").expect_err("long");
        assert!(matches!(e, VerbsError::Invalid(_)), "{e}");
    }
}
