//! The `rdma` provider's bookkeeping against a fake verbs table: every
//! entry point of [`RdmaLib`] is a function of this module acting on
//! in-memory objects (each CQ, QP, rdma_cm id and channel its own), the
//! completion and CM channels' fds are socket pairs, and rdma_cm's
//! answers (resolution, connect) are scripted per call. What runs: a
//! connection's CQ on the device's completion channel and its QP, the
//! device's wait (arm, poll(2), take and acknowledge the event, no timed
//! polling), CM events after set-up, device limits, one key per RDMA
//! descriptor (own MR, implicit ODP MR, none), the teardown order, the NI
//! on it ([`the_ni_on_the_rdma_provider`]), and connection set-up through
//! rdma_cm with its failures ([`cm`]). What a real HCA does behind these
//! calls is not modelled.

use std::ffi::{c_uint, c_void};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use super::*;
use crate::verbs::{WcOpcode, WcStatus};
use lnd_api::{IoBuf, Payload};

/// Calls counted per entry point.
static POLL_CQ: AtomicUsize = AtomicUsize::new(0);
static ARMS: AtomicUsize = AtomicUsize::new(0);
static CQ_EVENTS_ACKED: AtomicUsize = AtomicUsize::new(0);
static DESTROYED_QP: AtomicUsize = AtomicUsize::new(0);
static DESTROYED_CQ: AtomicUsize = AtomicUsize::new(0);
static DESTROYED_CHAN: AtomicUsize = AtomicUsize::new(0);
static DEREG: AtomicUsize = AtomicUsize::new(0);
static REG_PIECES: AtomicUsize = AtomicUsize::new(0);
static REG_IMPLICIT: AtomicUsize = AtomicUsize::new(0);
/// Whether the fake HCA has on-demand paging.
static ODP: AtomicBool = AtomicBool::new(true);
/// The number of the latest QP made (each QP has its own, from 77 on).
static QP_NUM: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(76);
/// The QP each send was posted on (as `SENDS`).
static SEND_QPS: Mutex<Vec<u32>> = Mutex::new(Vec::new());
/// Each QP's CQ (by QP number).
static QP_CQ: Mutex<Vec<(u32, usize)>> = Mutex::new(Vec::new());
/// The latest CQ made (where `complete` puts a completion).
static CQ: AtomicUsize = AtomicUsize::new(0);
/// A posted send: wr_id, opcode, SGEs (addr, length, lkey), remote
/// address and rkey.
type Posted = (u64, u32, Vec<(u64, u32, u32)>, u64, u32);
/// Sends and receives posted, in order.
static SENDS: Mutex<Vec<Posted>> = Mutex::new(Vec::new());
static RECVS: Mutex<Vec<(u64, u64, u32, u32)>> = Mutex::new(Vec::new());

unsafe extern "C" fn post_send(
    qp: *mut IbvQp,
    wr: *mut IbvSendWr,
    _bad: *mut *mut IbvSendWr,
) -> c_int {
    // SAFETY: the caller's work request and its `num_sge` SGEs are valid
    // for the call.
    let p = unsafe {
        let w = &*wr;
        let sges = (0..w.num_sge.max(0) as usize)
            .map(|i| {
                let s = &*w.sg_list.add(i);
                (s.addr, s.length, s.lkey)
            })
            .collect();
        (w.wr_id, w.opcode, sges, w.wr.remote_addr, w.wr.rkey)
    };
    // SAFETY: the provider's live QP.
    let qpn = unsafe { (*qp).qp_num };
    let mut g = lk(&SENDS);
    lk(&SEND_QPS).push(qpn);
    g.push(p);
    0
}
unsafe extern "C" fn post_recv(
    _qp: *mut IbvQp,
    wr: *mut IbvRecvWr,
    _bad: *mut *mut IbvRecvWr,
) -> c_int {
    // SAFETY: the caller's work request and its one SGE are valid.
    let p = unsafe {
        let w = &*wr;
        let s = &*w.sg_list;
        (w.wr_id, s.addr, s.length, s.lkey)
    };
    lk(&RECVS).push(p);
    0
}

/// How much `c` grew since it was `base`.
fn since(c: &AtomicUsize, base: usize) -> usize {
    c.load(Ordering::Relaxed) - base
}

fn lk<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A fake CQ: the provider sees `cq`; the completions it holds.
#[repr(C)]
struct FakeCq {
    cq: IbvCq,
    wcs: Mutex<VecDeque<IbvWc>>,
}

/// A fake completion channel: the provider sees `ch`, whose fd is the
/// provider's end of a socket pair; an event is the CQ queued in `fired`
/// and one byte written on the "kernel" end.
#[repr(C)]
struct FakeCompChannel {
    ch: IbvCompChannel,
    prov: UnixStream,
    kernel: UnixStream,
    fired: Mutex<VecDeque<usize>>,
}

fn fake_cq<'a>(cq: *mut IbvCq) -> &'a FakeCq {
    // SAFETY: every CQ the provider holds was made by `create_cq` (a
    // FakeCq, `cq` its first field) and lives until `destroy_cq`.
    unsafe { &*cq.cast::<FakeCq>() }
}

unsafe extern "C" fn poll_cq(cq: *mut IbvCq, n: c_int, wc: *mut IbvWc) -> c_int {
    POLL_CQ.fetch_add(1, Ordering::Relaxed);
    let mut q = lk(&fake_cq(cq).wcs);
    let k = q.len().min(n.max(0) as usize);
    for (i, w) in q.drain(..k).enumerate() {
        // SAFETY: the caller gives room for `n` >= `k` completions.
        unsafe { *wc.add(i) = w };
    }
    k as c_int
}
unsafe extern "C" fn req_notify_cq(_cq: *mut IbvCq, _solicited: c_int) -> c_int {
    ARMS.fetch_add(1, Ordering::Relaxed);
    0
}
unsafe extern "C" fn alloc_pd(ctx: *mut IbvContext) -> *mut IbvPd {
    Box::into_raw(Box::new(IbvPd {
        context: ctx,
        handle: 1,
    }))
}
unsafe extern "C" fn dealloc_pd(pd: *mut IbvPd) -> c_int {
    // SAFETY: made by `alloc_pd`, freed once.
    drop(unsafe { Box::from_raw(pd) });
    0
}
unsafe extern "C" fn create_cq(
    ctx: *mut IbvContext,
    cqe: c_int,
    _: *mut c_void,
    channel: *mut c_void,
    _: c_int,
) -> *mut IbvCq {
    let cq = Box::into_raw(Box::new(FakeCq {
        cq: IbvCq {
            context: ctx,
            channel,
            cq_context: std::ptr::null_mut(),
            handle: 1,
            cqe,
            _rest: [0; 12],
        },
        wcs: Mutex::new(VecDeque::new()),
    }))
    .cast::<IbvCq>();
    CQ.store(cq as usize, Ordering::Relaxed);
    cq
}
unsafe extern "C" fn destroy_cq(cq: *mut IbvCq) -> c_int {
    DESTROYED_CQ.fetch_add(1, Ordering::Relaxed);
    // SAFETY: made by `create_cq` with Box::into_raw, destroyed once.
    drop(unsafe { Box::from_raw(cq.cast::<FakeCq>()) });
    0
}
unsafe extern "C" fn create_comp_channel(ctx: *mut IbvContext) -> *mut IbvCompChannel {
    let (prov, kernel) = UnixStream::pair().expect("socketpair");
    let c = Box::new(FakeCompChannel {
        ch: IbvCompChannel {
            context: ctx,
            fd: prov.as_raw_fd(),
            refcnt: 0,
        },
        prov,
        kernel,
        fired: Mutex::new(VecDeque::new()),
    });
    Box::into_raw(c).cast()
}
unsafe extern "C" fn destroy_comp_channel(ch: *mut IbvCompChannel) -> c_int {
    DESTROYED_CHAN.fetch_add(1, Ordering::Relaxed);
    // SAFETY: made by `create_comp_channel`, destroyed once.
    drop(unsafe { Box::from_raw(ch.cast::<FakeCompChannel>()) });
    0
}
unsafe extern "C" fn get_cq_event(
    ch: *mut IbvCompChannel,
    cq: *mut *mut IbvCq,
    ctx: *mut *mut c_void,
) -> c_int {
    // SAFETY: made by `create_comp_channel`, alive while its CQs are.
    let c = unsafe { &*ch.cast::<FakeCompChannel>() };
    // The provider made the fd non-blocking: no event, no wait.
    let mut b = [0u8; 1];
    if !matches!((&c.prov).read(&mut b), Ok(1)) {
        return -1;
    }
    let Some(fired) = lk(&c.fired).pop_front() else {
        return -1;
    };
    // SAFETY: valid out-pointers from the caller.
    unsafe {
        *cq = fired as *mut IbvCq;
        *ctx = std::ptr::null_mut();
    }
    0
}
unsafe extern "C" fn ack_cq_events(_cq: *mut IbvCq, n: c_uint) {
    CQ_EVENTS_ACKED.fetch_add(n as usize, Ordering::Relaxed);
}
unsafe extern "C" fn reg_mr(
    _pd: *mut IbvPd,
    addr: *mut c_void,
    len: usize,
    access: c_int,
) -> *mut IbvMr {
    let implicit = addr.is_null() && len == usize::MAX;
    if implicit && (!ODP.load(Ordering::Relaxed) || access & IBV_ACCESS_ON_DEMAND == 0) {
        return std::ptr::null_mut();
    }
    if implicit {
        REG_IMPLICIT.fetch_add(1, Ordering::Relaxed);
    } else {
        REG_PIECES.fetch_add(1, Ordering::Relaxed);
    }
    let key = if implicit { 0x200 } else { 0x300 };
    Box::into_raw(Box::new(IbvMr {
        context: std::ptr::null_mut(),
        pd: std::ptr::null_mut(),
        addr,
        length: len,
        handle: 1,
        lkey: key - 0x100,
        rkey: key,
    }))
}
/// The limits the fake device reports (`ibv_query_device`).
static LIMITS: Mutex<DeviceLimits> = Mutex::new(BIG);
/// Limits no test reaches.
const BIG: DeviceLimits = DeviceLimits {
    max_qp_wr: 32768,
    max_sge: 30,
    max_cqe: 4_194_303,
    max_mr_size: u64::MAX,
};
/// The numbers of the QPs destroyed, in order.
static QPS_DESTROYED: Mutex<Vec<u32>> = Mutex::new(Vec::new());
/// The capabilities of the QPs made, in order.
static QP_CAPS: Mutex<Vec<(u32, u32, u32, u32)>> = Mutex::new(Vec::new());

unsafe extern "C" fn query_device(_: *mut IbvContext, attr: *mut IbvDeviceAttr) -> c_int {
    let l = *lk(&LIMITS);
    // SAFETY: a valid out-struct from the caller.
    let a = unsafe { &mut *attr };
    a.max_qp_wr = l.max_qp_wr as c_int;
    a.max_sge = l.max_sge as c_int;
    a.max_cqe = l.max_cqe as c_int;
    a.max_mr_size = l.max_mr_size;
    0
}
unsafe extern "C" fn dereg_mr(mr: *mut IbvMr) -> c_int {
    DEREG.fetch_add(1, Ordering::Relaxed);
    // SAFETY: made by `reg_mr`, deregistered once.
    drop(unsafe { Box::from_raw(mr) });
    0
}
/// A fake rdma_cm event channel: the provider sees `ch`, whose fd is the
/// provider's end of a socket pair; the "kernel" queues an event and
/// writes one byte on its end, which the fake `rdma_get_cm_event` reads
/// (blocking or not, as the provider set the fd).
#[repr(C)]
struct FakeChannel {
    ch: RdmaEventChannel,
    prov: UnixStream,
    kernel: UnixStream,
    events: Mutex<VecDeque<FakeEvent>>,
}

/// An rdma_cm event the fake "kernel" delivers.
struct FakeEvent {
    event: u32,
    status: c_int,
    private: Vec<u8>,
    id: *mut RdmaCmId,
    listen_id: *mut RdmaCmId,
}

/// What a scripted rdma_cm call does: fail at once with an errno, or
/// return 0 and deliver an event on the id's channel.
#[derive(Clone, Debug)]
enum Answer {
    Fail(c_int),
    Event(u32, c_int, Vec<u8>),
    /// `rdma_connect` only: the peer's o2iblnd accepts what the CONNREQ
    /// asks (ESTABLISHED with its CONNACK).
    Accept,
}

/// The fake's state is global: one test at a time uses it.
static SERIAL: Mutex<()> = Mutex::new(());

/// The CONNACK of a peer o2iblnd (incarnation 2222) granting what the
/// CONNREQ `req` asks.
fn connack_for(req: &[u8]) -> Vec<u8> {
    use crate::wire::{Body, Endian, Msg, MsgRepr, CONN_MSG_SIZE, VERSION_2};
    let req = MsgRepr::parse(&Msg::new_checked(req).expect("a kib_msg")).expect("a CONNREQ");
    let Body::ConnReq(cp) = req.body else {
        panic!("not a CONNREQ: {req:?}");
    };
    let ack = MsgRepr {
        version: VERSION_2,
        credits: 0,
        src_nid: req.dst_nid,
        src_stamp: 2222,
        dst_nid: req.src_nid,
        dst_stamp: req.src_stamp,
        body: Body::ConnAck(cp),
    };
    let mut b = vec![0u8; CONN_MSG_SIZE];
    let n = ack.emit(Endian::NATIVE, &mut b).expect("emit");
    b.truncate(n);
    b
}

/// The answers of `rdma_resolve_addr`, `rdma_resolve_route` and
/// `rdma_connect`, one per call, in order; with none left, resolution
/// succeeds and a connect is UNREACHABLE (ETIMEDOUT).
static ADDR_ANSWERS: Mutex<VecDeque<Answer>> = Mutex::new(VecDeque::new());
static ROUTE_ANSWERS: Mutex<VecDeque<Answer>> = Mutex::new(VecDeque::new());
static CONNECT_ANSWERS: Mutex<VecDeque<Answer>> = Mutex::new(VecDeque::new());
/// The fake HCA's context (what a resolved or bound id's `verbs` is).
static DEV_CTX: AtomicUsize = AtomicUsize::new(0);
/// The listening id (`rdma_listen`).
static LISTENER: AtomicUsize = AtomicUsize::new(0);
/// The addresses `rdma_resolve_addr` was given: (source, destination).
static RESOLVED: Mutex<Vec<(SocketAddrV4, SocketAddrV4)>> = Mutex::new(Vec::new());
/// The private data of each `rdma_connect` / `rdma_accept` /
/// `rdma_reject`, with the receives posted by then (connect, accept).
static CONNECTS: Mutex<Vec<(Vec<u8>, usize)>> = Mutex::new(Vec::new());
static ACCEPTS: Mutex<Vec<(Vec<u8>, usize)>> = Mutex::new(Vec::new());
static REJECTS: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());
/// rdma_cm ids made and destroyed.
static IDS_MADE: AtomicUsize = AtomicUsize::new(0);
static IDS_DESTROYED: AtomicUsize = AtomicUsize::new(0);
/// The requester's port `rdma_get_dst_port` reports.
static REQ_PORT: AtomicUsize = AtomicUsize::new(988);

extern "C" {
    fn __errno_location() -> *mut c_int;
}

fn set_errno(e: c_int) {
    // SAFETY: glibc's thread-local errno, always a valid pointer.
    unsafe { *__errno_location() = e };
}

/// The fake channel behind a provider's channel pointer.
fn fake_ch<'a>(ch: *mut RdmaEventChannel) -> &'a FakeChannel {
    // SAFETY: every channel the provider holds was made by
    // `create_channel` (a FakeChannel, `ch` its first field) and is alive
    // while its ids are.
    unsafe { &*ch.cast::<FakeChannel>() }
}

/// Delivers `ev` on channel `ch`.
fn deliver(ch: *mut RdmaEventChannel, ev: FakeEvent) {
    let c = fake_ch(ch);
    lk(&c.events).push_back(ev);
    (&c.kernel).write_all(&[1]).expect("cm event");
}

/// Delivers event `event` (status 0, no private data) for `id`.
fn deliver_to(id: *mut RdmaCmId, event: u32) {
    // SAFETY: a live id made by `create_id`.
    let ch = unsafe { (*id).channel };
    deliver(
        ch,
        FakeEvent {
            event,
            status: 0,
            private: Vec::new(),
            id,
            listen_id: std::ptr::null_mut(),
        },
    );
}

/// Plays the next scripted answer of `q` for `id` (`ok`: the event of
/// success, which also puts the id on the fake HCA).
fn answer(q: &Mutex<VecDeque<Answer>>, id: *mut RdmaCmId, ok: Answer) -> c_int {
    let a = lk(q).pop_front().unwrap_or(ok.clone());
    match a {
        Answer::Fail(e) => {
            set_errno(e);
            -1
        }
        Answer::Accept => panic!("Accept answers rdma_connect only"),
        Answer::Event(event, status, private) => {
            // SAFETY: a live id made by `create_id`.
            let ch = unsafe {
                if matches!(ok, Answer::Event(e, ..) if e == event) {
                    (*id).verbs = DEV_CTX.load(Ordering::Relaxed) as *mut IbvContext;
                }
                (*id).channel
            };
            deliver(
                ch,
                FakeEvent {
                    event,
                    status,
                    private,
                    id,
                    listen_id: std::ptr::null_mut(),
                },
            );
            0
        }
    }
}

fn to_v4(a: *const SockaddrIn) -> SocketAddrV4 {
    // SAFETY: the provider passes a valid sockaddr_in.
    let a = unsafe { &*a };
    SocketAddrV4::new(
        Ipv4Addr::from(u32::from_be(a.sin_addr)),
        u16::from_be(a.sin_port),
    )
}

/// The private data a connection parameter carries.
fn private_of(p: *const RdmaConnParam) -> Vec<u8> {
    // SAFETY: the provider's parameters, pointing at `private_data_len`
    // bytes.
    unsafe {
        let p = &*p;
        if p.private_data.is_null() {
            return Vec::new();
        }
        std::slice::from_raw_parts(p.private_data.cast::<u8>(), p.private_data_len as usize)
            .to_vec()
    }
}

unsafe extern "C" fn create_channel() -> *mut RdmaEventChannel {
    let (prov, kernel) = UnixStream::pair().expect("socketpair");
    let c = Box::new(FakeChannel {
        ch: RdmaEventChannel {
            fd: prov.as_raw_fd(),
        },
        prov,
        kernel,
        events: Mutex::new(VecDeque::new()),
    });
    Box::into_raw(c).cast()
}
unsafe extern "C" fn destroy_channel(ch: *mut RdmaEventChannel) {
    // SAFETY: made by `create_channel`, destroyed once.
    drop(unsafe { Box::from_raw(ch.cast::<FakeChannel>()) });
}
unsafe extern "C" fn create_id(
    ch: *mut RdmaEventChannel,
    out: *mut *mut RdmaCmId,
    ctx: *mut c_void,
    ps: c_int,
) -> c_int {
    // SAFETY: an all-zero rdma_cm_id is valid (null pointers, zero numbers).
    let mut id: RdmaCmId = unsafe { std::mem::zeroed() };
    id.channel = ch;
    id.context = ctx;
    id.ps = ps as u32;
    IDS_MADE.fetch_add(1, Ordering::Relaxed);
    // SAFETY: a valid out-pointer from the caller.
    unsafe { *out = Box::into_raw(Box::new(id)) };
    0
}
unsafe extern "C" fn destroy_id(id: *mut RdmaCmId) -> c_int {
    IDS_DESTROYED.fetch_add(1, Ordering::Relaxed);
    // SAFETY: made by `create_id` (or a request's), destroyed once.
    drop(unsafe { Box::from_raw(id) });
    0
}
unsafe extern "C" fn bind_addr(id: *mut RdmaCmId, _: *mut SockaddrIn) -> c_int {
    // The fake HCA owns every address.
    // SAFETY: a live id.
    unsafe { (*id).verbs = DEV_CTX.load(Ordering::Relaxed) as *mut IbvContext };
    0
}
unsafe extern "C" fn resolve_addr(
    id: *mut RdmaCmId,
    src: *mut SockaddrIn,
    dst: *mut SockaddrIn,
    _: c_int,
) -> c_int {
    lk(&RESOLVED).push((to_v4(src), to_v4(dst)));
    let ok = Answer::Event(RDMA_CM_EVENT_ADDR_RESOLVED, 0, Vec::new());
    answer(&ADDR_ANSWERS, id, ok)
}
unsafe extern "C" fn resolve_route(id: *mut RdmaCmId, _: c_int) -> c_int {
    let ok = Answer::Event(RDMA_CM_EVENT_ROUTE_RESOLVED, 0, Vec::new());
    answer(&ROUTE_ANSWERS, id, ok)
}
unsafe extern "C" fn listen(id: *mut RdmaCmId, _: c_int) -> c_int {
    LISTENER.store(id as usize, Ordering::Relaxed);
    0
}
unsafe extern "C" fn connect(id: *mut RdmaCmId, p: *mut RdmaConnParam) -> c_int {
    let private = private_of(p);
    lk(&CONNECTS).push((private.clone(), lk(&RECVS).len()));
    {
        let mut q = lk(&CONNECT_ANSWERS);
        if let Some(a @ Answer::Accept) = q.front_mut() {
            *a = Answer::Event(RDMA_CM_EVENT_ESTABLISHED, 0, connack_for(&private));
        }
    }
    let timeout = Answer::Event(RDMA_CM_EVENT_UNREACHABLE, -110, Vec::new());
    answer(&CONNECT_ANSWERS, id, timeout)
}
unsafe extern "C" fn accept(id: *mut RdmaCmId, p: *mut RdmaConnParam) -> c_int {
    lk(&ACCEPTS).push((private_of(p), lk(&RECVS).len()));
    deliver_to(id, RDMA_CM_EVENT_ESTABLISHED);
    0
}
unsafe extern "C" fn reject(_: *mut RdmaCmId, p: *const c_void, len: u8) -> c_int {
    // SAFETY: the provider's `len` bytes.
    let b = unsafe { std::slice::from_raw_parts(p.cast::<u8>(), len as usize) };
    lk(&REJECTS).push(b.to_vec());
    0
}
unsafe extern "C" fn disconnect(_: *mut RdmaCmId) -> c_int {
    0
}
unsafe extern "C" fn get_dst_port(_: *mut RdmaCmId) -> u16 {
    (REQ_PORT.load(Ordering::Relaxed) as u16).to_be()
}
unsafe extern "C" fn get_cm_event(ch: *mut RdmaEventChannel, ev: *mut *mut RdmaCmEvent) -> c_int {
    let c = fake_ch(ch);
    let mut b = [0u8; 1];
    if !matches!((&c.prov).read(&mut b), Ok(1)) {
        set_errno(11); // EAGAIN: a non-blocking channel with nothing
        return -1;
    }
    let Some(f) = lk(&c.events).pop_front() else {
        set_errno(11);
        return -1;
    };
    // SAFETY: an all-zero event is valid (pointers null, numbers 0).
    let mut e: RdmaCmEvent = unsafe { std::mem::zeroed() };
    e.event = f.event;
    e.status = f.status;
    e.id = f.id;
    e.listen_id = f.listen_id;
    if !f.private.is_empty() {
        e.conn.private_data_len = f.private.len() as u8;
        e.conn.private_data = Box::into_raw(f.private.into_boxed_slice()).cast::<c_void>();
    }
    // SAFETY: a valid out-pointer from the caller.
    unsafe { *ev = Box::into_raw(Box::new(e)) };
    0
}
unsafe extern "C" fn ack_cm_event(ev: *mut RdmaCmEvent) -> c_int {
    // SAFETY: made by `get_cm_event`, acknowledged once; its private data
    // is the boxed slice of `private_data_len` bytes made there.
    unsafe {
        let e = Box::from_raw(ev);
        if !e.conn.private_data.is_null() {
            let n = e.conn.private_data_len as usize;
            let p = std::ptr::slice_from_raw_parts_mut(e.conn.private_data as *mut u8, n);
            drop(Box::from_raw(p));
        }
    }
    0
}
unsafe extern "C" fn create_qp(id: *mut RdmaCmId, pd: *mut IbvPd, a: *mut IbvQpInitAttr) -> c_int {
    // SAFETY: the caller's id and attributes are valid.
    unsafe {
        let c = &(*a).cap;
        lk(&QP_CAPS).push((c.max_send_wr, c.max_recv_wr, c.max_send_sge, c.max_recv_sge));
        let qp = Box::into_raw(Box::new(IbvQp {
            context: (*id).verbs,
            qp_context: std::ptr::null_mut(),
            pd,
            send_cq: (*a).send_cq,
            recv_cq: (*a).recv_cq,
            srq: std::ptr::null_mut(),
            handle: 1,
            qp_num: {
                let n = QP_NUM.fetch_add(1, Ordering::Relaxed) + 1;
                lk(&QP_CQ).push((n, (*a).send_cq as usize));
                n
            },
            state: 0,
            qp_type: (*a).qp_type,
            _rest: [0; 12],
        }));
        (*id).qp = qp;
    }
    0
}
unsafe extern "C" fn migrate_id(id: *mut RdmaCmId, ch: *mut RdmaEventChannel) -> c_int {
    // SAFETY: a live id; its later events go to `ch`.
    unsafe { (*id).channel = ch };
    0
}
unsafe extern "C" fn destroy_qp(id: *mut RdmaCmId) {
    DESTROYED_QP.fetch_add(1, Ordering::Relaxed);
    // SAFETY: the QP was made by `create_qp`, destroyed once.
    let qp = unsafe { Box::from_raw((*id).qp) };
    lk(&QPS_DESTROYED).push(qp.qp_num);
}

fn fake_lib() -> Arc<RdmaLib> {
    Arc::new(RdmaLib {
        alloc_pd,
        dealloc_pd,
        create_cq,
        destroy_cq,
        create_comp_channel,
        destroy_comp_channel,
        get_cq_event,
        ack_cq_events,
        reg_mr,
        dereg_mr,
        query_device,
        create_channel,
        destroy_channel,
        create_id,
        destroy_id,
        bind_addr,
        resolve_addr,
        resolve_route,
        listen,
        connect,
        accept,
        reject,
        disconnect,
        get_dst_port,
        get_cm_event,
        ack_cm_event,
        create_qp,
        migrate_id,
        destroy_qp,
        _verbs: None,
        _cm: None,
    })
}

/// A device of the fake HCA: its context (with `poll_cq` and
/// `req_notify_cq` in its ops, as a provider library fills them).
fn fake_device(lib: &Arc<RdmaLib>) -> RdmaDevice {
    let null = std::ptr::null_mut::<c_void>();
    let ctx = Box::into_raw(Box::new(IbvContext {
        device: null,
        ops: IbvContextOps {
            _before_poll_cq: [null; 11],
            poll_cq: Some(poll_cq),
            req_notify_cq: Some(req_notify_cq),
            _before_post_send: [null; 12],
            post_send: Some(post_send),
            post_recv: Some(post_recv),
            _after: [null; 5],
        },
        cmd_fd: -1,
        async_fd: -1,
        num_comp_vectors: 1,
        _pad: 0,
        mutex: [0; 5],
        abi_compat: null,
    }));
    DEV_CTX.store(ctx as usize, Ordering::Relaxed);
    // SAFETY: the fake table's alloc_pd.
    let pd = unsafe { alloc_pd(ctx) };
    RdmaDevice(Arc::new(
        DevInner::new(lib.clone(), ctx, pd, *lk(&LIMITS)).expect("the fake device"),
    ))
}

mod cm;

#[test]
fn the_rdma_provider_against_a_fake_verbs_table() {
    let _g = lk(&SERIAL);
    // Counters from here (other tests of the fake ran before).
    let b_cq_events_acked = CQ_EVENTS_ACKED.load(Ordering::Relaxed);
    let b_reg_implicit = REG_IMPLICIT.load(Ordering::Relaxed);
    let b_reg_pieces = REG_PIECES.load(Ordering::Relaxed);
    let b_dereg = DEREG.load(Ordering::Relaxed);
    let b_destroyed_qp = DESTROYED_QP.load(Ordering::Relaxed);
    let b_destroyed_cq = DESTROYED_CQ.load(Ordering::Relaxed);
    let b_destroyed_chan = DESTROYED_CHAN.load(Ordering::Relaxed);
    let lib = fake_lib();
    let dev = fake_device(&lib);
    let q = QueueSizes {
        send_wr: 8,
        recv_wr: 8,
        sge: 1,
    };
    let (v, id) = fake_conn(&lib, &dev, q);
    // The connection's CQ and id served through the device, with every
    // other connection's.
    Verbs::attach(&v).expect("attach");
    let cq = dev.clone();
    let qp = RdmaQp(v);
    let qpn = qp.qp_num();
    assert_eq!(qpn, QP_NUM.load(Ordering::Relaxed), "the QP made last");

    // Nothing comes: the wait sleeps in poll(2) on the device's channels,
    // polling the CQ only around arming it (a timed poll every 50 us would have
    // polled it thousands of times).
    let p0 = POLL_CQ.load(Ordering::Relaxed);
    let t0 = Instant::now();
    assert!(!cq.wait(Duration::from_millis(150)));
    assert!(t0.elapsed() >= Duration::from_millis(140), "returned early");
    let polls = POLL_CQ.load(Ordering::Relaxed) - p0;
    assert!(polls <= 8, "{polls} polls of the CQ in one wait");
    assert!(ARMS.load(Ordering::Relaxed) >= 1, "CQ armed");

    // A completion comes 100 ms into a wait: the channel's event wakes it,
    // is taken and acknowledged, and the completion is there.
    let kernel = std::thread::spawn(|| {
        std::thread::sleep(Duration::from_millis(100));
        complete(5, IBV_WC_RDMA_WRITE, 4096);
    });
    assert!(cq.wait(Duration::from_secs(30)), "woken by the channel");
    kernel.join().expect("kernel thread");
    assert_eq!(since(&CQ_EVENTS_ACKED, b_cq_events_acked), 1);
    let wcs = cq.poll(16);
    assert_eq!(
        wcs,
        vec![Wc {
            wr_id: 5,
            status: WcStatus::Success,
            opcode: WcOpcode::RdmaWrite,
            byte_len: 4096,
            qp_num: qpn,
        }]
    );

    // DISCONNECTED after set-up, on the device's CM channel (the
    // connection's id was moved there), mapped to the connection's QP.
    deliver_to(id, RDMA_CM_EVENT_DISCONNECTED);
    assert!(cq.wait(Duration::from_secs(30)), "woken by the CM channel");
    assert_eq!(cq.poll_event(), Some(CmEvent::Disconnected { qp_num: qpn }));
    assert_eq!(cq.poll_event(), None);

    // One key per descriptor: a one-piece MD under its own MR ...
    let one = PayloadSpan::from(IoBuf::zeroed(4096));
    let (mrs, d) = dev
        .register(&one, Access::REMOTE_WRITE, 257)
        .expect("one piece");
    assert_eq!((mrs.len(), d.key, d.frags.len()), (1, 0x300, 1));
    // ... several pieces under the implicit ODP MR, registered once.
    let three = PayloadSpan::from(
        [IoBuf::zeroed(10), IoBuf::zeroed(20), IoBuf::zeroed(30)]
            .into_iter()
            .collect::<Payload>(),
    );
    let addrs: Vec<(u64, u32)> = three
        .pieces()
        .map(|p| {
            let b = p.borrow().expect("free");
            (b.as_ptr() as u64, p.len() as u32)
        })
        .collect();
    for _ in 0..2 {
        let (mrs3, d3) = dev
            .register(&three, Access::REMOTE_WRITE, 257)
            .expect("implicit MR");
        assert!(mrs3.is_empty());
        assert_eq!(d3.key, 0x200);
        let got: Vec<(u64, u32)> = d3.frags.iter().map(|f| (f.addr, f.nob)).collect();
        assert_eq!(got, addrs);
    }
    assert_eq!(
        since(&REG_IMPLICIT, b_reg_implicit),
        1,
        "implicit MR made once"
    );
    assert_eq!(since(&REG_PIECES, b_reg_pieces), 1);

    // Teardown: the piece MR with its holder; QP and CQ with the
    // connection; the completion channel and the implicit MR with the
    // device.
    drop(mrs);
    assert_eq!(since(&DEREG, b_dereg), 1);
    drop(qp);
    assert_eq!(since(&DESTROYED_QP, b_destroyed_qp), 1);
    assert_eq!(since(&DESTROYED_CQ, b_destroyed_cq), 1);
    assert_eq!(since(&DESTROYED_CHAN, b_destroyed_chan), 0);
    drop((cq, dev));
    assert_eq!(since(&DESTROYED_CHAN, b_destroyed_chan), 1);
    assert_eq!(since(&DEREG, b_dereg), 2, "implicit MR deregistered");

    // An HCA without on-demand paging: a multi-piece MD is refused, saying
    // why; one piece still goes under its own MR.
    ODP.store(false, Ordering::Relaxed);
    let dev = fake_device(&lib);
    let Err(e) = dev.register(&three, Access::REMOTE_WRITE, 257) else {
        panic!("a multi-piece MD registered without ODP");
    };
    assert!(
        e.to_string()
            .contains("memory of 3 fragments needs one key over all of them"),
        "{e}"
    );
    assert!(
        e.to_string().contains("no implicit on-demand-paging MR"),
        "{e}"
    );
    assert!(dev.register(&one, Access::REMOTE_WRITE, 257).is_ok());
    drop(dev);

    // The fake statics serve one scenario at a time: the NI's follows.
    the_ni_on_the_rdma_provider(&lib);
}

/// A connection's verbs on the fake HCA, on an rdma_cm id with a channel
/// of its own (returned: the id, for the "kernel" to deliver its events).
fn fake_conn(lib: &Arc<RdmaLib>, dev: &RdmaDevice, q: QueueSizes) -> (Arc<Verbs>, *mut RdmaCmId) {
    let cm = CmId::new(lib).expect("fake rdma_cm id");
    // SAFETY: a live id of the fake table: on the device, as after
    // route resolution.
    unsafe { (*cm.id).verbs = dev.0.ctx };
    let id = cm.id;
    let v = Arc::new(Verbs::create(cm, dev, q).expect("verbs on the fake HCA"));
    (v, id)
}

/// A completion of the latest QP on the latest CQ the fake HCA made (and
/// the channel event with it).
fn complete(wr_id: u64, opcode: u32, byte_len: u32) {
    complete_on(QP_NUM.load(Ordering::Relaxed), wr_id, opcode, byte_len);
}

/// A completion of QP `qpn` on its CQ (and the channel event with it).
fn complete_on(qpn: u32, wr_id: u64, opcode: u32, byte_len: u32) {
    let cq = lk(&QP_CQ)
        .iter()
        .rev()
        .find(|q| q.0 == qpn)
        .map(|q| q.1 as *mut IbvCq)
        .expect("a QP of the fake");
    lk(&fake_cq(cq).wcs).push_back(IbvWc {
        wr_id,
        status: 0,
        opcode,
        byte_len,
        qp_num: qpn,
        ..IbvWc::default()
    });
    // SAFETY: the CQ's channel, made by `create_comp_channel`.
    let ch = unsafe { &*fake_cq(cq).cq.channel.cast::<FakeCompChannel>() };
    lk(&ch.fired).push_back(cq as usize);
    (&ch.kernel).write_all(&[1]).expect("event");
}

/// Waits until `n` sends were posted; the `n`th.
fn nth_send(n: usize) -> Posted {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(p) = lk(&SENDS).get(n - 1) {
            return p.clone();
        }
        assert!(Instant::now() < deadline, "send {n} never posted");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// The message a SEND carried, read from the send slot it names.
fn sent_msg(tx: &PayloadSpan, p: &Posted) -> (crate::wire::MsgRepr, Vec<u8>) {
    assert_eq!(p.1, IBV_WR_SEND, "{p:?}");
    let (addr, len, lkey) = p.2[0];
    assert_eq!(lkey, 0x200, "the send slot's own MR");
    let slot = tx
        .pieces()
        .position(|pc| pc.borrow().expect("free").as_ptr() as u64 == addr)
        .expect("a send slot's address");
    let mut b = vec![0u8; len as usize];
    tx.read_at(slot * crate::wire::MSG_SIZE, &mut b)
        .expect("slot");
    let m = crate::wire::Msg::new_checked(&b[..]).expect("a kib_msg");
    (crate::wire::MsgRepr::parse(&m).expect("parses"), b)
}

/// The NI's own code on the rdma provider, the HCA being the fake table:
/// receives posted into the connection's MRs, an IMMEDIATE received and
/// one sent, an RDMA PUT (PUT_REQ, the peer's PUT_ACK, RDMA WRITEs from
/// the payload's own memory to the descriptor, PUT_DONE), a PUT_ACK for
/// a multi-piece sink under the implicit MR's key, and DISCONNECTED
/// failing what is in flight with `remote_dropped`.
fn the_ni_on_the_rdma_provider(lib: &Arc<RdmaLib>) {
    use crate::ni::provider::Provider;
    use crate::ni::{NiInner, O2ibNi};
    use crate::wire::{
        Body, CompletionBody, ConnParams, Endian, MsgRepr, RdmaDesc, RdmaFrag,
        IMMEDIATE_PAYLOAD_OFFSET, MSG_SIZE, VERSION_2,
    };
    use lnd_api::abi_stable::std_types::ROption;
    use lnd_api::{
        Hdr, HealthStatus, HostHandle, LndNi, LndNiHandle, MsgToken, MsgType, NetId, Nid, TxMsg,
    };
    use lnd_test_host::{RecvMode, TestHost};
    const T: Duration = Duration::from_secs(30);
    const WR_RX: u64 = 1 << 56;
    const PID: u32 = 12345;

    lk(&SENDS).clear();
    lk(&SEND_QPS).clear();
    lk(&RECVS).clear();
    // A device taking 2 SGEs per work request.
    *lk(&LIMITS) = DeviceLimits { max_sge: 2, ..BIG };
    let dev = fake_device(lib);
    *lk(&LIMITS) = BIG;
    let host = TestHost::new("rdma", RecvMode::Sync);
    let tun =
        crate::params::Tunables::resolve(&[], &[], &lnd_api::NetTunables::UNSET).expect("defaults");
    let net = NetId::new(lnd_api::lnd_type::O2IBLND, 0);
    let (me, peer) = (Nid::new4(net, 0x0a00_0001), Nid::new4(net, 0x0a00_0002));
    let (me4, peer4) = (me.to_nid4().expect("4"), peer.to_nid4().expect("4"));
    let (stamp, peer_stamp) = (1111, 2222);
    let prov = Provider::Rdma {
        dev: dev.clone(),
        regs: std::sync::atomic::AtomicU64::new(0),
    };
    let ni = NiInner::run_on(HostHandle::new(host.clone()), me, tun, stamp, prov, None)
        .expect("NI on the fake HCA");
    let lnd_ni = O2ibNi(ni.clone());
    host.set_ni(LndNiHandle::new(O2ibNi(ni.clone())));
    let q = QueueSizes {
        send_wr: 64,
        recv_wr: 64,
        sge: 2,
    };
    let (v, id) = fake_conn(lib, &dev, q);
    let cp = ConnParams {
        queue_depth: 8,
        max_frags: 256,
        max_msg_size: MSG_SIZE as u32,
    };
    let destroyed = DESTROYED_QP.load(Ordering::Relaxed);
    let (rx, tx) = ni.attach_for_test(Arc::new(RdmaQp(v.clone())), peer4, peer_stamp, cp);
    Verbs::attach(&v).expect("attach");
    drop(v);

    // Receives: 2 × queue depth + 2, each a whole message buffer at its
    // own MR's address.
    let rx_addrs: Vec<u64> = rx
        .pieces()
        .map(|p| p.borrow().expect("free").as_ptr() as u64)
        .collect();
    let recvs = lk(&RECVS).clone();
    assert_eq!(recvs.len(), 18);
    for (i, r) in recvs.iter().enumerate() {
        assert_eq!(*r, (WR_RX | i as u64, rx_addrs[i], MSG_SIZE as u32, 0x200));
    }

    // The `n`th send is the PUT_DONE of `cookie` with `status`: completed.
    let put_done = |n: usize, cookie: u64, status: i32| {
        let s = nth_send(n);
        let (m, _) = sent_msg(&tx, &s);
        assert_eq!(m.body, Body::PutDone(CompletionBody { cookie, status }));
        complete(s.0, IBV_WC_SEND, 0);
    };

    // An IMMEDIATE from the peer lands in receive buffer 0.
    let hdr = |from: Nid, to: Nid, len: usize| Hdr {
        dest_nid: to,
        src_nid: from,
        dest_pid: PID,
        src_pid: PID,
        msg_type: MsgType::PUT,
        payload_length: len as u32,
        body: [0; 40],
    };
    let msg = |credits: u8, body: Body| MsgRepr {
        version: VERSION_2,
        credits,
        src_nid: peer4,
        src_stamp: peer_stamp,
        dst_nid: me4,
        dst_stamp: stamp,
        body,
    };
    let mut b = vec![0u8; MSG_SIZE];
    let n = msg(
        0,
        Body::Immediate {
            hdr: hdr(peer, me, 5),
            payload_len: 5,
        },
    )
    .emit(Endian::NATIVE, &mut b)
    .expect("emit");
    b[IMMEDIATE_PAYLOAD_OFFSET..IMMEDIATE_PAYLOAD_OFFSET + 5].copy_from_slice(b"hello");
    rx.write_at(0, &b[..n]).expect("rx buffer");
    complete(WR_RX, IBV_WC_RECV, n as u32);
    let got = host.wait_received(1, T);
    assert_eq!((got[0].from, &got[0].data[..]), (peer, &b"hello"[..]));

    // An IMMEDIATE to the peer: a SEND from a send slot's MR.
    let txmsg = |token: u64, data: &[u8]| {
        let payload: lnd_api::Payload = [IoBuf::zeroed(data.len())].into_iter().collect();
        payload.write_at(0, data).expect("fresh");
        TxMsg {
            token: MsgToken(token),
            hdr: hdr(me, peer, data.len()),
            target: peer,
            target_pid: PID,
            payload,
            rx: ROption::RNone,
        }
    };
    lnd_ni.send(txmsg(7, b"ping")).expect("send");
    let s1 = nth_send(1);
    let (m, bytes) = sent_msg(&tx, &s1);
    let Body::Immediate { payload_len: 4, .. } = m.body else {
        panic!("{m:?}");
    };
    assert_eq!(
        &bytes[IMMEDIATE_PAYLOAD_OFFSET..IMMEDIATE_PAYLOAD_OFFSET + 4],
        b"ping"
    );
    complete(s1.0, IBV_WC_SEND, 0);
    assert!(host.wait_sent(&[7], T)[0].is_ok());

    // An RDMA PUT: PUT_REQ; the peer's PUT_ACK (receive buffer 1) names
    // two fragments under its key; one RDMA WRITE per fragment from the
    // payload's own memory; then PUT_DONE.
    let data = lnd_test_host::pattern(8000, 9);
    let put = txmsg(8, &data);
    let src = put.payload.clone();
    lnd_ni.send(put).expect("send");
    let s2 = nth_send(2);
    let (m, _) = sent_msg(&tx, &s2);
    let Body::PutReq { cookie, .. } = m.body else {
        panic!("{m:?}");
    };
    complete(s2.0, IBV_WC_SEND, 0);
    let rd = RdmaDesc {
        key: 0x4242,
        frags: vec![
            RdmaFrag {
                nob: 4096,
                addr: 0x10_0000,
            },
            RdmaFrag {
                nob: 8192,
                addr: 0x20_0000,
            },
        ],
    };
    let n = msg(
        0,
        Body::PutAck {
            src_cookie: cookie,
            dst_cookie: 99,
            rd,
        },
    )
    .emit(Endian::NATIVE, &mut b)
    .expect("emit");
    rx.write_at(MSG_SIZE, &b[..n]).expect("rx buffer");
    complete(WR_RX | 1, IBV_WC_RECV, n as u32);
    let (w1, w2) = (nth_send(3), nth_send(4));
    let base = PayloadSpan::from(src)
        .pieces()
        .map(|p| p.borrow().expect("free").as_ptr() as u64)
        .next()
        .expect("one piece");
    assert_eq!(
        (w1.1, &w1.2[..], w1.3, w1.4),
        (
            IBV_WR_RDMA_WRITE,
            &[(base, 4096, 0x200)][..],
            0x10_0000,
            0x4242
        )
    );
    assert_eq!(
        (w2.1, &w2.2[..], w2.3, w2.4),
        (
            IBV_WR_RDMA_WRITE,
            &[(base + 4096, 8000 - 4096, 0x200)][..],
            0x20_0000,
            0x4242
        )
    );
    complete(w1.0, IBV_WC_RDMA_WRITE, 4096);
    complete(w2.0, IBV_WC_RDMA_WRITE, 8000 - 4096);
    put_done(5, 99, 8000);
    assert!(host.wait_sent(&[8], T)[0].is_ok());

    // Registrations: one MR per receive buffer (18) and send slot (28),
    // and the PUT's source once (found in the cache from now on).
    let stats = lnd_ni.ctl("stats", "").expect("stats");
    assert!(stats.contains("registrations: 47\n"), "{stats}");

    // A PUT_REQ from the peer whose sink is a window over several pieces
    // of the host's memory: the PUT_ACK names each piece at its own
    // address under the one key of the implicit ODP MR.
    ODP.store(true, Ordering::Relaxed);
    host.set_mode(RecvMode::Window {
        offset: 3,
        short: 0,
    });
    let n = msg(
        0,
        Body::PutReq {
            hdr: hdr(peer, me, 6000),
            cookie: 55,
        },
    )
    .emit(Endian::NATIVE, &mut b)
    .expect("emit");
    rx.write_at(2 * MSG_SIZE, &b[..n]).expect("rx buffer");
    complete(WR_RX | 2, IBV_WC_RECV, n as u32);
    let s6 = nth_send(6);
    let (m, _) = sent_msg(&tx, &s6);
    let Body::PutAck { src_cookie, rd, .. } = m.body else {
        panic!("{m:?}");
    };
    assert_eq!(src_cookie, 55);
    assert_eq!(rd.key, 0x200, "the implicit MR's rkey");
    // many_fragments: pieces of 1, 13, 4096, 2, 30000 ... bytes; the
    // window starts 3 bytes in.
    let nobs: Vec<u32> = rd.frags.iter().map(|f| f.nob).collect();
    assert_eq!(nobs, vec![11, 4096, 2, 6000 - 11 - 4096 - 2]);
    assert!(rd.frags.windows(2).all(|w| w[0].addr != w[1].addr));
    complete(s6.0, IBV_WC_SEND, 0);

    // A PUT from 5 pieces into one remote fragment: WRITEs gathering the
    // pieces 2 SGEs at a time (the device's max_sge), each at its offset
    // in the fragment.
    let pieces: Vec<IoBuf> = (0..5).map(|_| IoBuf::zeroed(1000)).collect();
    let payload: lnd_api::Payload = pieces.into_iter().collect();
    payload
        .write_at(0, &lnd_test_host::pattern(5000, 3))
        .expect("fresh");
    let src = PayloadSpan::from(payload.clone());
    lnd_ni
        .send(TxMsg {
            payload,
            hdr: hdr(me, peer, 5000),
            ..txmsg(10, b"")
        })
        .expect("send");
    let s7 = nth_send(7);
    let (m, _) = sent_msg(&tx, &s7);
    let Body::PutReq { cookie, .. } = m.body else {
        panic!("{m:?}");
    };
    complete(s7.0, IBV_WC_SEND, 0);
    let n = msg(
        0,
        Body::PutAck {
            src_cookie: cookie,
            dst_cookie: 77,
            rd: RdmaDesc {
                key: 0x4343,
                frags: vec![RdmaFrag {
                    nob: 8192,
                    addr: 0x30_0000,
                }],
            },
        },
    )
    .emit(Endian::NATIVE, &mut b)
    .expect("emit");
    rx.write_at(3 * MSG_SIZE, &b[..n]).expect("rx buffer");
    complete(WR_RX | 3, IBV_WC_RECV, n as u32);
    let addrs: Vec<u64> = src
        .pieces()
        .map(|p| p.borrow().expect("free").as_ptr() as u64)
        .collect();
    let writes: Vec<Posted> = (8..=10).map(nth_send).collect();
    let got: Vec<(u32, Vec<u64>, u64, u32)> = writes
        .iter()
        .map(|w| (w.1, w.2.iter().map(|s| s.0).collect(), w.3, w.4))
        .collect();
    assert_eq!(
        got,
        vec![
            (
                IBV_WR_RDMA_WRITE,
                vec![addrs[0], addrs[1]],
                0x30_0000,
                0x4343
            ),
            (
                IBV_WR_RDMA_WRITE,
                vec![addrs[2], addrs[3]],
                0x30_0000 + 2000,
                0x4343
            ),
            (IBV_WR_RDMA_WRITE, vec![addrs[4]], 0x30_0000 + 4000, 0x4343),
        ]
    );
    assert!(writes.iter().all(|w| w.2.iter().all(|s| s.1 == 1000)));
    for w in &writes {
        complete(w.0, IBV_WC_RDMA_WRITE, 0);
    }
    put_done(11, 77, 5000);
    assert!(host.wait_sent(&[10], T)[0].is_ok());

    // DISCONNECTED with an IMMEDIATE in flight: the connection closes,
    // the message fails with remote_dropped, the QP goes.
    lnd_ni.send(txmsg(9, b"lost")).expect("send");
    nth_send(12);
    deliver_to(id, RDMA_CM_EVENT_DISCONNECTED);
    let c = host.wait_sent(&[9], T)[0];
    assert!(!c.is_ok());
    assert_eq!(c.health, HealthStatus::REMOTE_DROPPED);
    let deadline = Instant::now() + T;
    while DESTROYED_QP.load(Ordering::Relaxed) == destroyed {
        assert!(Instant::now() < deadline, "QP never destroyed");
        std::thread::sleep(Duration::from_millis(5));
    }
    LndNi::shutdown(&lnd_ni);
}
