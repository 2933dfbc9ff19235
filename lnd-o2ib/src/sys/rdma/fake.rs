//! The `rdma` provider's bookkeeping against a fake verbs table: every
//! entry point of [`RdmaLib`] is a function of this module acting on
//! in-memory objects, the completion and CM channels' fds are socket
//! pairs. What runs: making a connection's verbs (completion channel, CQ
//! on it, QP), waiting on the channel (arm, poll(2), take and acknowledge
//! the event, no timed polling), CM events after set-up, one key per RDMA
//! descriptor (own MR, implicit ODP MR, none), and the teardown order.
//! What a real HCA does behind these calls is not modelled.

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
/// Completions the fake CQ holds.
static WCS: Mutex<Vec<IbvWc>> = Mutex::new(Vec::new());
/// The completion and CM channels: the provider's ends (whose fds the
/// channels carry, read by the fake `ibv_get_cq_event` and
/// `rdma_get_cm_event`) and the "kernel" ends, where the test writes one
/// byte per event.
static PROV_COMP: Mutex<Option<UnixStream>> = Mutex::new(None);
static KERNEL_COMP: Mutex<Option<UnixStream>> = Mutex::new(None);
static PROV_CM: Mutex<Option<UnixStream>> = Mutex::new(None);
/// The fake CQ and QP (one connection).
static CQ: AtomicUsize = AtomicUsize::new(0);
/// A posted send: wr_id, opcode, SGEs (addr, length, lkey), remote
/// address and rkey.
type Posted = (u64, u32, Vec<(u64, u32, u32)>, u64, u32);
/// Sends and receives posted, in order.
static SENDS: Mutex<Vec<Posted>> = Mutex::new(Vec::new());
static RECVS: Mutex<Vec<(u64, u64, u32, u32)>> = Mutex::new(Vec::new());

unsafe extern "C" fn post_send(
    _qp: *mut IbvQp,
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
    lk(&SENDS).push(p);
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

fn lk<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Reads one byte of a fake channel, as the kernel's event read does.
fn take_byte(s: &Mutex<Option<UnixStream>>) -> bool {
    let mut g = lk(s);
    let Some(s) = g.as_mut() else { return false };
    let mut b = [0u8; 1];
    matches!(s.read(&mut b), Ok(1))
}

unsafe extern "C" fn poll_cq(_cq: *mut IbvCq, n: c_int, wc: *mut IbvWc) -> c_int {
    POLL_CQ.fetch_add(1, Ordering::Relaxed);
    let mut q = lk(&WCS);
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
unsafe extern "C" fn alloc_pd(_: *mut IbvContext) -> *mut IbvPd {
    std::ptr::null_mut()
}
unsafe extern "C" fn dealloc_pd(_: *mut IbvPd) -> c_int {
    0
}
unsafe extern "C" fn create_cq(
    ctx: *mut IbvContext,
    cqe: c_int,
    _: *mut c_void,
    channel: *mut c_void,
    _: c_int,
) -> *mut IbvCq {
    let cq = Box::into_raw(Box::new(IbvCq {
        context: ctx,
        channel,
        cq_context: std::ptr::null_mut(),
        handle: 1,
        cqe,
        _rest: [0; 12],
    }));
    CQ.store(cq as usize, Ordering::Relaxed);
    cq
}
unsafe extern "C" fn destroy_cq(cq: *mut IbvCq) -> c_int {
    DESTROYED_CQ.fetch_add(1, Ordering::Relaxed);
    // SAFETY: made by `create_cq` with Box::into_raw, destroyed once.
    drop(unsafe { Box::from_raw(cq) });
    0
}
unsafe extern "C" fn create_comp_channel(ctx: *mut IbvContext) -> *mut IbvCompChannel {
    let (ours, kernel) = UnixStream::pair().expect("socketpair");
    let fd = ours.as_raw_fd();
    *lk(&PROV_COMP) = Some(ours);
    *lk(&KERNEL_COMP) = Some(kernel);
    Box::into_raw(Box::new(IbvCompChannel {
        context: ctx,
        fd,
        refcnt: 0,
    }))
}
unsafe extern "C" fn destroy_comp_channel(ch: *mut IbvCompChannel) -> c_int {
    DESTROYED_CHAN.fetch_add(1, Ordering::Relaxed);
    // SAFETY: made by `create_comp_channel`, destroyed once.
    drop(unsafe { Box::from_raw(ch) });
    0
}
unsafe extern "C" fn get_cq_event(
    _ch: *mut IbvCompChannel,
    cq: *mut *mut IbvCq,
    ctx: *mut *mut c_void,
) -> c_int {
    // The provider made the fd non-blocking: no event, no wait.
    if !take_byte(&PROV_COMP) {
        return -1;
    }
    // SAFETY: valid out-pointers from the caller.
    unsafe {
        *cq = CQ.load(Ordering::Relaxed) as *mut IbvCq;
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
unsafe extern "C" fn dereg_mr(mr: *mut IbvMr) -> c_int {
    DEREG.fetch_add(1, Ordering::Relaxed);
    // SAFETY: made by `reg_mr`, deregistered once.
    drop(unsafe { Box::from_raw(mr) });
    0
}
unsafe extern "C" fn create_channel() -> *mut RdmaEventChannel {
    std::ptr::null_mut()
}
unsafe extern "C" fn destroy_channel(_: *mut RdmaEventChannel) {}
unsafe extern "C" fn create_id(
    _: *mut RdmaEventChannel,
    _: *mut *mut RdmaCmId,
    _: *mut c_void,
    _: c_int,
) -> c_int {
    -1
}
unsafe extern "C" fn destroy_id(_: *mut RdmaCmId) -> c_int {
    0
}
unsafe extern "C" fn bind_addr(_: *mut RdmaCmId, _: *mut SockaddrIn) -> c_int {
    -1
}
unsafe extern "C" fn resolve_addr(
    _: *mut RdmaCmId,
    _: *mut SockaddrIn,
    _: *mut SockaddrIn,
    _: c_int,
) -> c_int {
    -1
}
unsafe extern "C" fn resolve_route(_: *mut RdmaCmId, _: c_int) -> c_int {
    -1
}
unsafe extern "C" fn listen(_: *mut RdmaCmId, _: c_int) -> c_int {
    -1
}
unsafe extern "C" fn connect_accept(_: *mut RdmaCmId, _: *mut RdmaConnParam) -> c_int {
    -1
}
unsafe extern "C" fn reject(_: *mut RdmaCmId, _: *const c_void, _: u8) -> c_int {
    -1
}
unsafe extern "C" fn disconnect(_: *mut RdmaCmId) -> c_int {
    0
}
unsafe extern "C" fn get_dst_port(_: *mut RdmaCmId) -> u16 {
    988u16.to_be()
}
unsafe extern "C" fn get_cm_event(_ch: *mut RdmaEventChannel, ev: *mut *mut RdmaCmEvent) -> c_int {
    if !take_byte(&PROV_CM) {
        return -1;
    }
    // SAFETY: an all-zero event is valid (pointers null, numbers 0).
    let mut e: RdmaCmEvent = unsafe { std::mem::zeroed() };
    e.event = RDMA_CM_EVENT_DISCONNECTED;
    // SAFETY: a valid out-pointer from the caller.
    unsafe { *ev = Box::into_raw(Box::new(e)) };
    0
}
unsafe extern "C" fn ack_cm_event(ev: *mut RdmaCmEvent) -> c_int {
    // SAFETY: made by `get_cm_event`, acknowledged once.
    drop(unsafe { Box::from_raw(ev) });
    0
}
unsafe extern "C" fn create_qp(id: *mut RdmaCmId, pd: *mut IbvPd, a: *mut IbvQpInitAttr) -> c_int {
    // SAFETY: the caller's id and attributes are valid.
    unsafe {
        let qp = Box::into_raw(Box::new(IbvQp {
            context: (*id).verbs,
            qp_context: std::ptr::null_mut(),
            pd,
            send_cq: (*a).send_cq,
            recv_cq: (*a).recv_cq,
            srq: std::ptr::null_mut(),
            handle: 1,
            qp_num: 77,
            state: 0,
            qp_type: (*a).qp_type,
            _rest: [0; 12],
        }));
        (*id).qp = qp;
    }
    0
}
unsafe extern "C" fn migrate_id(_: *mut RdmaCmId, _: *mut RdmaEventChannel) -> c_int {
    -1
}
unsafe extern "C" fn destroy_qp(id: *mut RdmaCmId) {
    DESTROYED_QP.fetch_add(1, Ordering::Relaxed);
    // SAFETY: the QP was made by `create_qp`, destroyed once.
    unsafe { drop(Box::from_raw((*id).qp)) };
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
        create_channel,
        destroy_channel,
        create_id,
        destroy_id,
        bind_addr,
        resolve_addr,
        resolve_route,
        listen,
        connect: connect_accept,
        accept: connect_accept,
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
    RdmaDevice(Arc::new(DevInner {
        lib: lib.clone(),
        ctx,
        // Never dereferenced by the fake table.
        pd: std::ptr::NonNull::<IbvPd>::dangling().as_ptr(),
        implicit: Mutex::new(None),
    }))
}

#[test]
fn the_rdma_provider_against_a_fake_verbs_table() {
    let lib = fake_lib();
    let dev = fake_device(&lib);
    // The connection's rdma_cm id, on a channel of its own.
    let (prov_cm, mut kernel_cm) = UnixStream::pair().expect("socketpair");
    let ch = Box::into_raw(Box::new(RdmaEventChannel {
        fd: prov_cm.as_raw_fd(),
    }));
    *lk(&PROV_CM) = Some(prov_cm);
    // SAFETY: an all-zero rdma_cm_id is valid (null pointers, zero numbers).
    let mut id: RdmaCmId = unsafe { std::mem::zeroed() };
    id.verbs = dev.0.ctx;
    id.channel = ch;
    let cm = CmId {
        lib: lib.clone(),
        ch,
        id: Box::into_raw(Box::new(id)),
    };
    let q = QueueSizes {
        send_wr: 8,
        recv_wr: 8,
        sge: 1,
    };
    let v = Arc::new(Verbs::create(cm, &dev, q).expect("verbs on the fake HCA"));
    let cq = RdmaCq::new(v.clone());
    let qp = RdmaQp(v);
    assert_eq!(qp.qp_num(), 77);

    // Nothing comes: the wait sleeps in poll(2) on the channels, polling
    // the CQ only around arming it (a timed poll every 50 us would have
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
        lk(&WCS).push(IbvWc {
            wr_id: 5,
            status: 0,
            opcode: IBV_WC_RDMA_WRITE,
            byte_len: 4096,
            qp_num: 77,
            ..IbvWc::default()
        });
        if let Some(k) = lk(&KERNEL_COMP).as_mut() {
            k.write_all(&[1]).expect("event");
        }
    });
    assert!(cq.wait(Duration::from_secs(30)), "woken by the channel");
    kernel.join().expect("kernel thread");
    assert_eq!(CQ_EVENTS_ACKED.load(Ordering::Relaxed), 1);
    let wcs = cq.poll(16);
    assert_eq!(
        wcs,
        vec![Wc {
            wr_id: 5,
            status: WcStatus::Success,
            opcode: WcOpcode::RdmaWrite,
            byte_len: 4096,
            qp_num: 77,
        }]
    );

    // DISCONNECTED after set-up, on the connection's CM channel.
    kernel_cm.write_all(&[1]).expect("cm event");
    assert!(cq.wait(Duration::from_secs(30)), "woken by the CM channel");
    assert_eq!(cq.poll_event(), Some(CmEvent::Disconnected { qp_num: 77 }));
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
        REG_IMPLICIT.load(Ordering::Relaxed),
        1,
        "implicit MR made once"
    );
    assert_eq!(REG_PIECES.load(Ordering::Relaxed), 1);

    // Teardown: the piece MR with its holder; QP, CQ, then the channel
    // with the connection; the implicit MR with the device.
    drop(mrs);
    assert_eq!(DEREG.load(Ordering::Relaxed), 1);
    drop((cq, qp));
    assert_eq!(DESTROYED_QP.load(Ordering::Relaxed), 1);
    assert_eq!(DESTROYED_CQ.load(Ordering::Relaxed), 1);
    assert_eq!(DESTROYED_CHAN.load(Ordering::Relaxed), 1);
    drop(dev);
    assert_eq!(DEREG.load(Ordering::Relaxed), 2, "implicit MR deregistered");

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

/// The connection of the NI on the fake HCA, on a CM channel of its own
/// (returned: the "kernel" end, where a byte is a DISCONNECTED).
fn fake_conn(lib: &Arc<RdmaLib>, dev: &RdmaDevice, q: QueueSizes) -> (Arc<Verbs>, UnixStream) {
    let (prov_cm, kernel_cm) = UnixStream::pair().expect("socketpair");
    let ch = Box::into_raw(Box::new(RdmaEventChannel {
        fd: prov_cm.as_raw_fd(),
    }));
    *lk(&PROV_CM) = Some(prov_cm);
    // SAFETY: an all-zero rdma_cm_id is valid (null pointers, zero numbers).
    let mut id: RdmaCmId = unsafe { std::mem::zeroed() };
    id.verbs = dev.0.ctx;
    id.channel = ch;
    let cm = CmId {
        lib: lib.clone(),
        ch,
        id: Box::into_raw(Box::new(id)),
    };
    let v = Arc::new(Verbs::create(cm, dev, q).expect("verbs on the fake HCA"));
    (v, kernel_cm)
}

/// A completion the fake HCA reports (and the channel event with it).
fn complete(wr_id: u64, opcode: u32, byte_len: u32) {
    lk(&WCS).push(IbvWc {
        wr_id,
        status: 0,
        opcode,
        byte_len,
        qp_num: 77,
        ..IbvWc::default()
    });
    if let Some(k) = lk(&KERNEL_COMP).as_mut() {
        k.write_all(&[1]).expect("event");
    }
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
    lk(&RECVS).clear();
    let dev = fake_device(lib);
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
        sge: 1,
    };
    let (v, mut kernel_cm) = fake_conn(lib, &dev, q);
    let cp = ConnParams {
        queue_depth: 8,
        max_frags: 256,
        max_msg_size: MSG_SIZE as u32,
    };
    let destroyed = DESTROYED_QP.load(Ordering::Relaxed);
    let (rx, tx) = ni.attach_for_test(
        Arc::new(RdmaQp(v.clone())),
        Box::new(RdmaCq::new(v)),
        peer4,
        peer_stamp,
        cp,
    );

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
    let s5 = nth_send(5);
    let (m, _) = sent_msg(&tx, &s5);
    assert_eq!(
        m.body,
        Body::PutDone(CompletionBody {
            cookie: 99,
            status: 8000
        })
    );
    complete(s5.0, IBV_WC_SEND, 0);
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

    // DISCONNECTED with an IMMEDIATE in flight: the connection closes,
    // the message fails with remote_dropped, the QP goes.
    lnd_ni.send(txmsg(9, b"lost")).expect("send");
    nth_send(7);
    kernel_cm.write_all(&[1]).expect("cm event");
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
