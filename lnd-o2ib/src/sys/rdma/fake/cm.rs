//! Connection setup of the NI on the rdma provider, rdma_cm being the
//! fake table: address and route resolution and their failures, the
//! peer's rejections with each o2iblnd reason and what the NI does with
//! them, and the listener accepting and refusing requests. What an admin
//! sees is asserted: the log line, the message's failure and health, the
//! CONNREQ / CONNACK / `kib_rej` bytes handed to rdma_cm.

use super::*;
use crate::ni::{NiInner, O2ibNi, StartWith};
use crate::wire::{
    Body, ConnParams, Endian, Msg, MsgRepr, RejRepr, RejectReason, MSG_SIZE, VERSION_1, VERSION_2,
};
use lnd_api::abi_stable::std_types::ROption;
use lnd_api::{
    Hdr, HealthStatus, HostHandle, LndNi, LndNiHandle, MsgToken, MsgType, NetId, Nid, TxMsg,
};
use lnd_test_host::{RecvMode, TestHost};

const T: Duration = Duration::from_secs(30);
const PID: u32 = 12345;
const STAMP: u64 = 1111;
const PEER_STAMP: u64 = 2222;
const ME: u32 = 0x0a00_0001;
const PEER: u32 = 0x0a00_0002;

fn nid(a: u32) -> Nid {
    Nid::new4(NetId::new(lnd_api::lnd_type::O2IBLND, 0), a)
}
fn nid4(a: u32) -> u64 {
    nid(a).to_nid4().expect("classic NID")
}

/// Polls `cond` until it holds (at most [`T`]); `what` names it.
fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + T;
    while !cond() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// A test of the fake alone (its state is global), from a clean state,
/// with a fresh NI on it.
fn fresh() -> (std::sync::MutexGuard<'static, ()>, TestHost, O2ibNi) {
    fresh_on(BIG)
}

/// [`fresh`], the NI on a device of `limits`.
fn fresh_on(limits: DeviceLimits) -> (std::sync::MutexGuard<'static, ()>, TestHost, O2ibNi) {
    let g = lk(&SERIAL);
    reset();
    *lk(&LIMITS) = limits;
    let (host, ni) = fake_ni(&fake_lib());
    *lk(&LIMITS) = BIG;
    (g, host, ni)
}

/// Clears what the fake rdma_cm recorded and scripted.
fn reset() {
    lk(&ADDR_ANSWERS).clear();
    lk(&ROUTE_ANSWERS).clear();
    lk(&CONNECT_ANSWERS).clear();
    lk(&RESOLVED).clear();
    lk(&CONNECTS).clear();
    lk(&ACCEPTS).clear();
    lk(&REJECTS).clear();
    lk(&SENDS).clear();
    lk(&SEND_QPS).clear();
    lk(&RECVS).clear();
}

fn tunables() -> crate::params::Tunables {
    crate::params::Tunables::resolve(&[], &[], &lnd_api::NetTunables::UNSET).expect("defaults")
}

/// An NI of 10.0.0.1@o2ib started on the fake HCA as `net add` starts
/// one: its listener bound (rdma_bind_addr, rdma_listen), the device's
/// PD from it.
fn fake_ni(lib: &Arc<RdmaLib>) -> (TestHost, O2ibNi) {
    let _dev = fake_device(lib);
    let host = TestHost::new("rdma-cm", RecvMode::Sync);
    let ni = NiInner::start(
        HostHandle::new(host.clone()),
        nid(ME),
        Ipv4Addr::from(ME),
        tunables(),
        STAMP,
        StartWith::Rdma(lib.clone()),
    )
    .expect("NI on the fake HCA");
    host.set_ni(LndNiHandle::new(O2ibNi(ni.clone())));
    assert_ne!(LISTENER.load(Ordering::Relaxed), 0, "rdma_listen called");
    (host, O2ibNi(ni))
}

/// An IMMEDIATE PUT of `data` to `to`.
fn put(token: u64, to: Nid, data: &[u8]) -> TxMsg {
    let payload: lnd_api::Payload = [IoBuf::zeroed(data.len())].into_iter().collect();
    payload.write_at(0, data).expect("fresh");
    TxMsg {
        token: MsgToken(token),
        hdr: Hdr {
            dest_nid: to,
            src_nid: nid(ME),
            dest_pid: PID,
            src_pid: PID,
            msg_type: MsgType::PUT,
            payload_length: data.len() as u32,
            body: [0; 40],
        },
        target: to,
        target_pid: PID,
        payload,
        rx: ROption::RNone,
    }
}

/// A `kib_rej` of `why` with the rejector's incarnation and parameters.
fn rej(why: RejectReason, cp: ConnParams) -> Vec<u8> {
    let r = RejRepr {
        version: VERSION_2,
        why,
        incarnation: Some(PEER_STAMP),
        cp: Some(cp),
    };
    let mut b = vec![0u8; crate::wire::REJ_SIZE];
    r.emit(Endian::NATIVE, &mut b).expect("emit");
    b
}

/// The CONNREQ of the `n`th `rdma_connect` (waited for).
fn nth_connreq(n: usize) -> (MsgRepr, usize) {
    let deadline = Instant::now() + T;
    loop {
        if let Some((b, recvs)) = lk(&CONNECTS).get(n - 1) {
            let m = Msg::new_checked(&b[..]).expect("a kib_msg");
            return (MsgRepr::parse(&m).expect("parses"), *recvs);
        }
        assert!(Instant::now() < deadline, "connect {n} never made");
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn conn_params(m: &MsgRepr) -> ConnParams {
    match m.body {
        Body::ConnReq(cp) | Body::ConnAck(cp) => cp,
        ref b => panic!("not a CONNREQ/CONNACK: {b:?}"),
    }
}

/// Shuts the NI down and waits until every rdma_cm id it made (its
/// listener's, its connections') is destroyed: nothing of it runs into
/// the next test of the fake.
fn quiesce(host: &TestHost, ni: O2ibNi) {
    LndNi::shutdown(&ni);
    drop(ni);
    let deadline = Instant::now() + T;
    while IDS_MADE.load(Ordering::Relaxed) != IDS_DESTROYED.load(Ordering::Relaxed) {
        assert!(
            Instant::now() < deadline,
            "rdma_cm ids left after shutdown: {} made, {} destroyed; {} QPs made, {} \
             destroyed; the NI's log: {:#?}",
            IDS_MADE.load(Ordering::Relaxed),
            IDS_DESTROYED.load(Ordering::Relaxed),
            lk(&QP_CAPS).len(),
            DESTROYED_QP.load(Ordering::Relaxed),
            (
                host.logs(),
                threads(),
                lk(&QPS_DESTROYED).clone(),
                QP_NUM.load(Ordering::Relaxed)
            )
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn threads() -> Vec<String> {
    std::fs::read_dir("/proc/self/task")
        .map(|d| {
            d.filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("comm")).ok())
                .filter(|n| n.starts_with("o2ib"))
                .collect()
        })
        .unwrap_or_default()
}

/// Sends `token` to the peer and waits for it to fail: the completion's
/// health and the log line the NI wrote (containing `needle`).
fn fails(host: &TestHost, ni: &O2ibNi, token: u64, needle: &str) -> String {
    ni.send(put(token, nid(PEER), b"ping")).expect("queued");
    let c = host.wait_sent(&[token], T)[0];
    assert!(!c.is_ok(), "{token}: {c:?}");
    assert_eq!(c.health, HealthStatus::REMOTE_DROPPED, "{token}");
    host.wait_log(needle, T)
}

#[test]
fn active_connect_failures_name_the_cm_event_and_fail_the_message() {
    let (_g, host, ni) = fresh();
    let ids = IDS_MADE.load(Ordering::Relaxed) - IDS_DESTROYED.load(Ordering::Relaxed);

    // rdma_resolve_addr refuses at once (no RDMA device has a route from
    // the NI's address).
    lk(&ADDR_ANSWERS).push_back(Answer::Fail(99));
    let l = fails(&host, &ni, 1, "rdma_resolve_addr");
    assert!(
        l.ends_with(
            "cannot connect to 10.0.0.2@o2ib at 10.0.0.2:987: peer unreachable: \
             rdma_resolve_addr 10.0.0.1 -> 10.0.0.2:987: Cannot assign requested \
             address (os error 99)"
        ),
        "{l}"
    );
    // The peer's address is its NID's, on the `service` port, resolved
    // from the NI's own address.
    assert_eq!(
        lk(&RESOLVED)[0],
        (
            SocketAddrV4::new(Ipv4Addr::from(ME), 0),
            SocketAddrV4::new(Ipv4Addr::from(PEER), 987)
        )
    );

    // The address does not resolve (no ARP answer): ADDR_ERROR.
    lk(&ADDR_ANSWERS).push_back(Answer::Event(RDMA_CM_EVENT_ADDR_ERROR, -110, Vec::new()));
    let l = fails(&host, &ni, 2, "ADDR_ERROR");
    assert!(
        l.ends_with(
            "peer unreachable: address resolution failed: RDMA_CM_EVENT_ADDR_ERROR \
             (status -110: Connection timed out (os error 110))"
        ),
        "{l}"
    );

    // No path record (SM unreachable): ROUTE_ERROR.
    lk(&ROUTE_ANSWERS).push_back(Answer::Event(RDMA_CM_EVENT_ROUTE_ERROR, -113, Vec::new()));
    let l = fails(&host, &ni, 3, "ROUTE_ERROR");
    assert!(
        l.ends_with(
            "route resolution failed: RDMA_CM_EVENT_ROUTE_ERROR (status -113: No route \
             to host (os error 113))"
        ),
        "{l}"
    );

    // The CM request times out: UNREACHABLE (the fake's default answer).
    let l = fails(&host, &ni, 4, "UNREACHABLE");
    assert!(
        l.ends_with(
            "connect failed: RDMA_CM_EVENT_UNREACHABLE (status -110: Connection timed out \
             (os error 110))"
        ),
        "{l}"
    );
    let (req, recvs) = nth_connreq(1);
    assert_eq!((req.src_nid, req.dst_nid), (nid4(ME), nid4(PEER)));
    assert_eq!((req.src_stamp, req.dst_stamp), (STAMP, 0));
    let cp = conn_params(&req);
    let qd = tunables().queue_depth();
    assert_eq!(
        (cp.queue_depth, cp.max_msg_size),
        (qd, MSG_SIZE as u32),
        "{cp:?}"
    );
    assert_eq!(recvs, 2 * qd as usize + 2, "receives posted before connect");

    // Nothing listens on the peer's service port: the IB CM rejects with
    // reason 8 and no o2iblnd data.
    lk(&CONNECT_ANSWERS).push_back(Answer::Event(RDMA_CM_EVENT_REJECTED, 8, Vec::new()));
    let l = fails(&host, &ni, 5, "invalid service ID");
    assert!(
        l.contains("no o2ib listener on the peer's service port"),
        "{l}"
    );

    // The peer rejects for good with o2iblnd's reasons: each named.
    let mut token = 10;
    for why in [
        RejectReason::FATAL,
        RejectReason::NO_RESOURCES,
        RejectReason::CONN_UNCOMPAT,
        RejectReason::INVALID_SRV_ID,
    ] {
        lk(&CONNECT_ANSWERS).push_back(Answer::Event(RDMA_CM_EVENT_REJECTED, 28, rej(why, cp)));
        token += 1;
        let l = fails(
            &host,
            &ni,
            token,
            &format!("rejected the connection: {why}"),
        );
        assert!(
            l.ends_with(&format!("10.0.0.2@o2ib rejected the connection: {why}")),
            "{l}"
        );
    }

    // Every failed attempt's id (and the QP made before rdma_connect)
    // is gone.
    until("rdma_cm ids leaked", || {
        IDS_MADE.load(Ordering::Relaxed) - IDS_DESTROYED.load(Ordering::Relaxed) == ids
    });
    quiesce(&host, ni);
}

#[test]
fn active_connect_retries_as_the_rejection_says_then_sends() {
    let (_g, host, ni) = fresh();
    let qd = tunables().queue_depth();

    // MSG_QUEUE_SIZE: reconnect with the rejector's queue depth;
    // RDMA_FRAGS: with its max_frags; CONN_STALE: again, as a new
    // connection; then the peer accepts.
    let theirs = ConnParams {
        queue_depth: qd / 2,
        max_frags: 32,
        max_msg_size: MSG_SIZE as u32,
    };
    {
        let mut a = lk(&CONNECT_ANSWERS);
        for why in [
            RejectReason::MSG_QUEUE_SIZE,
            RejectReason::RDMA_FRAGS,
            RejectReason::CONN_STALE,
        ] {
            a.push_back(Answer::Event(RDMA_CM_EVENT_REJECTED, 28, rej(why, theirs)));
        }
        a.push_back(Answer::Accept);
    }
    ni.send(put(1, nid(PEER), b"ping")).expect("queued");
    let offered: Vec<ConnParams> = (1..=4).map(|n| conn_params(&nth_connreq(n).0)).collect();
    assert_eq!(offered[0].queue_depth, qd);
    assert_eq!(
        (offered[1].queue_depth, offered[1].max_frags),
        (qd / 2, offered[0].max_frags),
        "MSG_QUEUE_SIZE: the rejector's queue depth"
    );
    assert_eq!(
        (offered[2].queue_depth, offered[2].max_frags),
        (qd / 2, 32),
        "RDMA_FRAGS: the rejector's fragments"
    );
    assert_eq!(offered[3], offered[2], "CONN_STALE: the same again");
    host.wait_log("rejected the connection: MSG_QUEUE_SIZE (7)", T);
    host.wait_log("rejected the connection: RDMA_FRAGS (6)", T);
    host.wait_log("rejected the connection: CONN_STALE (5)", T);

    // Accepted: the message leaves on the connection as an IMMEDIATE.
    let s = nth_send(1);
    assert_eq!(s.1, IBV_WR_SEND);
    complete(s.0, IBV_WC_SEND, 0);
    assert!(host.wait_sent(&[1], T)[0].is_ok());
    assert_eq!(lk(&CONNECTS).len(), 4, "no connect after the accept");
    quiesce(&host, ni);
}

/// Delivers a CONNECT_REQUEST carrying `private` on the NI's listener;
/// the request's new id.
fn request(private: Vec<u8>) -> *mut RdmaCmId {
    let listener = LISTENER.load(Ordering::Relaxed) as *mut RdmaCmId;
    // SAFETY: the NI's listening id, alive while the NI is up.
    let ch = unsafe { (*listener).channel };
    let mut id: *mut RdmaCmId = std::ptr::null_mut();
    // SAFETY: the fake table's create_id, with a valid out-pointer; the
    // id is on the fake HCA, as a request's is.
    unsafe {
        create_id(ch, &mut id, std::ptr::null_mut(), RDMA_PS_TCP);
        (*id).verbs = DEV_CTX.load(Ordering::Relaxed) as *mut IbvContext;
        // The requester, 10.0.0.2:988, as rdma_get_peer_addr reads it.
        let sa = SockaddrIn {
            sin_family: AF_INET,
            sin_port: 988u16.to_be(),
            sin_addr: PEER.to_be(),
            sin_zero: [0; 8],
        };
        std::ptr::addr_of_mut!((*id).route)
            .cast::<u8>()
            .add(ROUTE_DST_ADDR)
            .cast::<SockaddrIn>()
            .write_unaligned(sa);
    }
    deliver(
        ch,
        FakeEvent {
            event: RDMA_CM_EVENT_CONNECT_REQUEST,
            status: 0,
            private,
            id,
            listen_id: listener,
        },
    );
    id
}

/// The peer's CONNREQ (`edit` changes it before it is emitted).
fn connreq(edit: impl FnOnce(&mut MsgRepr)) -> Vec<u8> {
    let mut m = MsgRepr {
        version: VERSION_2,
        credits: 0,
        src_nid: nid4(PEER),
        src_stamp: PEER_STAMP,
        dst_nid: nid4(ME),
        dst_stamp: 0,
        body: Body::ConnReq(ConnParams {
            queue_depth: tunables().queue_depth(),
            max_frags: 256,
            max_msg_size: MSG_SIZE as u32,
        }),
    };
    edit(&mut m);
    let mut b = vec![0u8; crate::wire::CONN_MSG_SIZE];
    let n = m.emit(Endian::NATIVE, &mut b).expect("emit");
    b.truncate(n);
    b
}

fn wait_len<T>(v: &Mutex<Vec<T>>, n: usize, what: &str) {
    until(&format!("no {what} {n}"), || lk(v).len() >= n);
}

#[test]
fn the_listener_refuses_with_o2iblnds_reasons_and_accepts() {
    let (_g, host, ni) = fresh();
    let qd = tunables().queue_depth();
    let big = |m: &mut MsgRepr, f: &dyn Fn(&mut ConnParams)| {
        if let Body::ConnReq(cp) = &mut m.body {
            f(cp)
        }
    };
    let cases: Vec<(Vec<u8>, RejectReason)> = vec![
        (
            connreq(|m| m.dst_nid = nid4(0x0a00_0009)),
            RejectReason::FATAL,
        ),
        (
            connreq(|m| m.version = VERSION_1),
            RejectReason::CONN_UNCOMPAT,
        ),
        (
            connreq(|m| big(m, &|cp| cp.queue_depth = qd + 1)),
            RejectReason::MSG_QUEUE_SIZE,
        ),
        (
            connreq(|m| big(m, &|cp| cp.max_frags = 300)),
            RejectReason::RDMA_FRAGS,
        ),
        (connreq(|m| m.dst_stamp = 999), RejectReason::CONN_STALE),
        (b"not a kib_msg at all".to_vec(), RejectReason::FATAL),
    ];
    let destroyed = IDS_DESTROYED.load(Ordering::Relaxed);
    for (i, (private, why)) in cases.iter().enumerate() {
        request(private.clone());
        wait_len(&REJECTS, i + 1, "rdma_reject");
        let b = lk(&REJECTS)[i].clone();
        assert_eq!(b.len(), crate::wire::REJ_SIZE, "case {i}");
        let (r, _) = RejRepr::parse(&b).expect("a kib_rej");
        assert_eq!(r.why, *why, "case {i}");
        assert_eq!(r.incarnation, Some(STAMP), "case {i}");
        let cp = r.cp.expect("our parameters");
        assert_eq!(
            (cp.queue_depth, cp.max_frags, cp.max_msg_size),
            (qd, crate::wire::MAX_RDMA_FRAGS as u16, MSG_SIZE as u32),
            "case {i}"
        );
        host.wait_log(
            &format!("rejecting a connection from 10.0.0.2:988: {why}"),
            T,
        );
    }
    // Each refused request's id is destroyed; nothing was accepted.
    until("refused ids not destroyed", || {
        IDS_DESTROYED.load(Ordering::Relaxed) - destroyed >= cases.len()
    });
    assert!(lk(&ACCEPTS).is_empty());
    let stats = ni.ctl("stats", "").expect("stats");
    assert!(stats.contains("conns_rejected: 6\n"), "{stats}");

    // A good request: receives posted, then rdma_accept with the CONNACK
    // granting what was asked, addressed to the requester's incarnation.
    request(connreq(|m| big(m, &|cp| cp.queue_depth = qd / 2)));
    wait_len(&ACCEPTS, 1, "rdma_accept");
    let (b, recvs) = lk(&ACCEPTS)[0].clone();
    let ack = MsgRepr::parse(&Msg::new_checked(&b[..]).expect("kib_msg")).expect("parses");
    assert_eq!((ack.src_nid, ack.dst_nid), (nid4(ME), nid4(PEER)));
    assert_eq!((ack.src_stamp, ack.dst_stamp), (STAMP, PEER_STAMP));
    let cp = conn_params(&ack);
    assert!(matches!(ack.body, Body::ConnAck(_)));
    assert_eq!(
        (cp.queue_depth, cp.max_frags, cp.max_msg_size),
        (qd / 2, 256, MSG_SIZE as u32)
    );
    assert_eq!(recvs, 2 * (qd / 2) as usize + 2, "receives before accept");

    // A message to the peer leaves on the accepted connection (once it is
    // up: the NI tells LNet the peer is alive): no rdma_connect.
    host.wait_notify(nid(PEER), true, T);
    ni.send(put(1, nid(PEER), b"ping")).expect("queued");
    let s = nth_send(1);
    assert_eq!(s.1, IBV_WR_SEND);
    complete(s.0, IBV_WC_SEND, 0);
    assert!(host.wait_sent(&[1], T)[0].is_ok());
    assert!(lk(&CONNECTS).is_empty());
    quiesce(&host, ni);
}

#[test]
fn a_small_device_clamps_queue_depth_and_sges_and_says_so() {
    // A device of 1100 work requests per queue and 4 SGEs: a connection
    // of the default queue depth (8 × 257 fragments of RDMA WRITEs, plus
    // its send slots) does not fit.
    let (_g, host, ni) = fresh_on(DeviceLimits {
        max_qp_wr: 1100,
        max_sge: 4,
        max_cqe: 65536,
        max_mr_size: 1 << 32,
    });
    let l = host.wait_log("RDMA device at 10.0.0.1", T);
    assert!(
        l.ends_with(
            "RDMA device at 10.0.0.1: max_qp_wr 1100, max_sge 4, max_cqe 65536, \
             max_mr_size 4294967296; 4 SGEs per work request"
        ),
        "{l}"
    );
    assert_eq!(
        ni.ctl("device", "").expect("device"),
        "provider: rdma\nmax_qp_wr: 1100\nmax_sge: 4\nmax_cqe: 65536\n\
         max_mr_size: 4294967296\nwr_sge: 4\n"
    );
    let qd = tunables().queue_depth();
    assert_eq!(qd, 8, "the default peer_credits");

    // Active: the CONNREQ offers the queue depth that fits, and the QP is
    // made within the device's limits.
    lk(&CONNECT_ANSWERS).push_back(Answer::Accept);
    ni.send(put(1, nid(PEER), b"ping")).expect("queued");
    let (req, recvs) = nth_connreq(1);
    let cp = conn_params(&req);
    assert_eq!(cp.queue_depth, 4, "{cp:?}");
    assert_eq!(recvs, 2 * 4 + 2);
    let l = host.wait_log("queue depth reduced", T);
    assert!(
        l.ends_with(
            "10.0.0.2@o2ib: queue depth reduced from 8 to 4 to fit the device \
             (max_qp_wr 1100, max_sge 4, max_cqe 65536, max_mr_size 4294967296)"
        ),
        "{l}"
    );
    let caps = *lk(&QP_CAPS).last().expect("a QP");
    assert!(
        caps.0 <= 1100 && caps.0 >= 4 * cp.max_frags as u32,
        "{caps:?}"
    );
    assert_eq!((caps.1, caps.2, caps.3), (2 * 4 + 2, 4, 1), "{caps:?}");
    let s = nth_send(1);
    complete(s.0, IBV_WC_SEND, 0);
    assert!(host.wait_sent(&[1], T)[0].is_ok());

    // Passive: a peer asking for 8 is granted 4 in the CONNACK.
    request(connreq(|m| m.src_nid = nid4(0x0a00_0003)));
    wait_len(&ACCEPTS, 1, "rdma_accept");
    let (b, _) = lk(&ACCEPTS)[0].clone();
    let ack = MsgRepr::parse(&Msg::new_checked(&b[..]).expect("kib_msg")).expect("parses");
    assert_eq!(conn_params(&ack).queue_depth, 4);
    host.wait_log("10.0.0.3@o2ib: queue depth reduced from 8 to 4", T);

    // Both connections' completions come through the device's one
    // completion channel to the NI's poller (no thread per connection),
    // each to its own connection by QP number.
    host.wait_notify(nid(0x0a00_0003), true, T);
    ni.send(put(2, nid(0x0a00_0003), b"to .3")).expect("queued");
    ni.send(put(3, nid(PEER), b"to .2")).expect("queued");
    let (s3, s2) = (nth_send(2), nth_send(3));
    let qps = lk(&SEND_QPS).clone();
    assert_ne!(qps[1], qps[2], "two connections, two QPs");
    assert_eq!(qps[2], qps[0], "to .2 on its connection");
    complete_on(qps[2], s2.0, IBV_WC_SEND, 0);
    complete_on(qps[1], s3.0, IBV_WC_SEND, 0);
    let c = host.wait_sent(&[2, 3], T);
    assert!(c.iter().all(|c| c.is_ok()), "{c:?}");
    quiesce(&host, ni);
}

#[test]
fn a_tiny_device_lowers_the_fragments_too() {
    // 200 work requests per queue: even a queue depth of 1 with 257
    // fragments of RDMA WRITEs does not fit; the fragments go down too,
    // and the CONNREQ offers what fits.
    let (_g, host, ni) = fresh_on(DeviceLimits {
        max_qp_wr: 200,
        ..BIG
    });
    lk(&CONNECT_ANSWERS).push_back(Answer::Accept);
    ni.send(put(1, nid(PEER), b"ping")).expect("queued");
    let cp = conn_params(&nth_connreq(1).0);
    assert_eq!(cp.queue_depth, 1, "{cp:?}");
    assert!(cp.max_frags > 100 && cp.max_frags < 200, "{cp:?}");
    let caps = *lk(&QP_CAPS).last().expect("a QP");
    assert!(caps.0 <= 200 && caps.1 <= 200, "{caps:?}");
    host.wait_log("queue depth reduced from 8 to 1", T);
    let l = host.wait_log("max frags reduced", T);
    assert!(
        l.contains(&format!(
            "10.0.0.2@o2ib: max frags reduced from 257 to {} to fit the device (max_qp_wr 200,",
            cp.max_frags
        )),
        "{l}"
    );
    let s = nth_send(1);
    complete(s.0, IBV_WC_SEND, 0);
    assert!(host.wait_sent(&[1], T)[0].is_ok());
    quiesce(&host, ni);
}
