//! PUT/GET/ACK/REPLY lifecycles and ping between engines (semantics §3, §4, wire.md §6).

mod pump;

use lnet_core::lnd_api::{IoBuf, MsgType, Nid, Payload};
use lnet_core::{
    AckReq, Duration, Event, EventKind, InsPos, MdOptions, MdSpec, ProcessId, Threshold, Unlink,
    LNET_PID_ANY,
};
use pump::*;

const PORTAL: u32 = 4;
/// MDs and MEs the engine keeps for itself: the ping and push targets.
const OWN: usize = 2;

fn target_md(
    f: &mut Fabric,
    node: usize,
    len: usize,
    options: MdOptions,
) -> (lnet_core::MdHandle, IoBuf) {
    let me = f.nodes[node]
        .lnet
        .me_attach(
            PORTAL,
            ProcessId {
                nid: Nid::ANY,
                pid: LNET_PID_ANY,
            },
            0x1234,
            0,
            Unlink::Unlink,
            InsPos::After,
        )
        .expect("me");
    let b = IoBuf::zeroed(len);
    let md = f.nodes[node]
        .lnet
        .md_attach(
            me,
            MdSpec::new(Payload::single(b.clone()), options, Threshold::Infinite),
            Unlink::Unlink,
        )
        .expect("md");
    (md, b)
}

fn put_bytes(f: &mut Fabric, len: usize) {
    let (_, tb) = target_md(f, 1, len.max(1), MdOptions::OP_PUT);
    let data = pattern(len, len as u8);
    let (_, p) = buf(data.clone());
    let md = f.nodes[0]
        .lnet
        .md_bind(
            MdSpec::new(p, MdOptions::NONE, Threshold::Count(2)),
            Unlink::Unlink,
        )
        .expect("bind");
    let now = f.now;
    f.nodes[0]
        .lnet
        .put(now, None, md, AckReq::Ack, pid(1), PORTAL, 0x1234, 0, 77)
        .expect("put");
    f.run();
    let got = tb.to_vec().expect("free");
    assert_eq!(
        &got[..len],
        &data[..],
        "PUT of {len} bytes arrives byte for byte"
    );
    let ev0 = f.md_events(0);
    let kinds: Vec<EventKind> = ev0.iter().map(|e| e.kind).collect();
    assert!(
        kinds.contains(&EventKind::Send) && kinds.contains(&EventKind::Ack),
        "{kinds:?}"
    );
    let ack = ev0.iter().find(|e| e.kind == EventKind::Ack).expect("ack");
    assert_eq!(ack.mlength, len as u32);
    assert!(
        ack.unlinked,
        "threshold 2 used up by SEND+ACK: auto-unlinked"
    );
    assert_eq!(ack.status, 0);
    let ev1 = f.md_events(1);
    assert_eq!(ev1.len(), 1);
    let put = ev1[0];
    assert_eq!(put.kind, EventKind::Put);
    assert_eq!(
        (put.rlength, put.mlength, put.hdr_data),
        (len as u32, len as u32, 77)
    );
    assert_eq!(put.initiator, pid(0));
    assert_eq!(put.sender, nid(0));
    assert_eq!(put.target, pid(1));
    assert_eq!(
        f.nodes[0].lnet.md_count(),
        OWN,
        "only the ping target MD is left"
    );
}

fn get_bytes(f: &mut Fabric, len: usize) {
    let data = pattern(len, 3);
    let me = f.nodes[1]
        .lnet
        .me_attach(
            PORTAL,
            ProcessId::ANY,
            0x99,
            0,
            Unlink::Unlink,
            InsPos::After,
        )
        .expect("me");
    let (_, src) = buf(data.clone());
    f.nodes[1]
        .lnet
        .md_attach(
            me,
            MdSpec::new(src, MdOptions::OP_GET, Threshold::Count(1)),
            Unlink::Unlink,
        )
        .expect("md");
    let sink = IoBuf::zeroed(len);
    let md = f.nodes[0]
        .lnet
        .md_bind(
            MdSpec::new(
                Payload::single(sink.clone()),
                MdOptions::NONE,
                Threshold::Count(2),
            ),
            Unlink::Unlink,
        )
        .expect("bind");
    let now = f.now;
    f.nodes[0]
        .lnet
        .get(now, None, md, pid(1), PORTAL, 0x99, 0)
        .expect("get");
    f.run();
    assert_eq!(
        sink.to_vec().expect("free"),
        data,
        "GET of {len} bytes byte for byte"
    );
    let ev0 = f.md_events(0);
    let reply = ev0
        .iter()
        .find(|e| e.kind == EventKind::Reply)
        .expect("reply event");
    assert_eq!(
        (reply.mlength, reply.rlength, reply.status),
        (len as u32, len as u32, 0)
    );
    let send = ev0
        .iter()
        .find(|e| e.kind == EventKind::Send)
        .expect("send event");
    assert_eq!(send.msg_type, MsgType::GET);
    let ev1 = f.md_events(1);
    assert_eq!(ev1.len(), 1);
    assert_eq!(ev1[0].kind, EventKind::Get);
    assert_eq!(ev1[0].mlength, len as u32);
    assert!(
        ev1[0].unlinked,
        "threshold 1 target MD unlinked after its GET"
    );
    assert_eq!(
        f.nodes[1].lnet.me_count(),
        OWN,
        "UNLINK ME goes with its MD (the ping target ME stays)"
    );
}

#[test]
fn put_with_ack_moves_every_size_byte_for_byte() {
    for len in [0usize, 1, 7, 4095, 4096, 4097, 65536, 100_000, 1 << 20] {
        let mut f = Fabric::new(2);
        put_bytes(&mut f, len);
    }
}

#[test]
fn get_reply_moves_every_size_byte_for_byte() {
    for len in [0usize, 1, 4096, 65537, 1 << 20] {
        let mut f = Fabric::new(2);
        get_bytes(&mut f, len);
    }
}

#[test]
fn put_to_own_nid_goes_through_loopback() {
    let mut f = Fabric::new(1);
    let (_, tb) = target_md(&mut f, 0, 16, MdOptions::OP_PUT);
    let (_, p) = buf(pattern(16, 9));
    let md = f.nodes[0]
        .lnet
        .md_bind(
            MdSpec::new(p, MdOptions::NONE, Threshold::Count(2)),
            Unlink::Unlink,
        )
        .expect("bind");
    let now = f.now;
    f.nodes[0]
        .lnet
        .put(now, None, md, AckReq::Ack, pid(0), PORTAL, 0x1234, 0, 0)
        .expect("put");
    f.run();
    assert_eq!(tb.to_vec().expect("free"), pattern(16, 9));
    let kinds: Vec<EventKind> = f.md_events(0).iter().map(|e| e.kind).collect();
    assert_eq!(kinds.len(), 3, "{kinds:?}");
    assert!(
        kinds.contains(&EventKind::Put)
            && kinds.contains(&EventKind::Ack)
            && kinds.contains(&EventKind::Send)
    );
    let lo = f.nodes[0].lnet.ni(lnet_core::NiId::LO).expect("lo");
    assert_eq!(lo.stats().sent.put, 1);
    assert_eq!(lo.stats().sent.ack, 1);
}

#[test]
fn ping_returns_the_targets_nids() {
    let mut f = Fabric::new(2);
    let now = f.now;
    let id = f.nodes[0]
        .lnet
        .ping(now, pid(1), None, Duration::from_secs(5))
        .expect("ping");
    f.run();
    let evs = f.take_events(0);
    let Some(Event::PingDone { id: got, result }) = evs.into_iter().next() else {
        panic!("no ping result")
    };
    assert_eq!(got, id);
    let info = result.expect("ping ok");
    assert_eq!(info.pid, 12345);
    assert_eq!(
        info.nis.iter().map(|n| n.nid).collect::<Vec<_>>(),
        vec![nid(1)]
    );
    assert!(info.nis[0].is_up());
    assert_eq!(f.nodes[0].lnet.pings_in_flight(), 0);
    assert_eq!(
        f.nodes[0].lnet.md_count(),
        OWN,
        "ping sink MD gone, ping target left"
    );
}

#[test]
fn ping_of_ourselves_and_of_0_at_lo_answers() {
    let mut f = Fabric::new(1);
    let now = f.now;
    for target in [nid(0), Nid::LO_0] {
        f.nodes[0]
            .lnet
            .ping(
                now,
                ProcessId {
                    nid: target,
                    pid: LNET_PID_ANY,
                },
                None,
                Duration::from_secs(1),
            )
            .expect("ping");
        f.run();
        let evs = f.take_events(0);
        let Some(Event::PingDone { result, .. }) = evs.into_iter().next() else {
            panic!("no ping result")
        };
        assert_eq!(result.expect("ok").nis[0].nid, nid(0));
    }
}

#[test]
fn ping_to_a_dead_peer_fails_by_its_timeout() {
    let mut f = Fabric::new(2);
    f.dead.insert(1);
    let now = f.now;
    f.nodes[0]
        .lnet
        .ping(now, pid(1), None, Duration::from_secs(3))
        .expect("ping");
    f.run();
    assert!(f.take_events(0).is_empty());
    assert_eq!(
        f.nodes[0].lnet.poll_timeout(),
        Some(now.saturating_add(Duration::from_secs(3)))
    );
    f.advance(Duration::from_secs(2));
    assert!(f.take_events(0).is_empty(), "not yet");
    f.advance(Duration::from_secs(1));
    let evs = f.take_events(0);
    let Some(Event::PingDone { result: Err(e), .. }) = evs.into_iter().next() else {
        panic!("timeout expected")
    };
    assert!(matches!(e, lnet_core::PingError::Timeout { .. }), "{e}");
    // The LND later fails the lost GET: nothing more is reported.
    f.fail_lost();
    assert!(f.take_events(0).is_empty());
    assert_eq!(
        f.nodes[0].lnet.md_count(),
        OWN,
        "only the ping target MD is left"
    );
}

#[test]
fn ping_buffer_sequence_goes_up_when_nis_change() {
    let mut f = Fabric::new(1);
    let seq0 = f.nodes[0].lnet.ping_info().expect("info").seq;
    let now = f.now;
    let extra = f.nodes[0]
        .lnet
        .ni_add(now, TCP, &ni_info(nid(7), 8, 8))
        .expect("add");
    let info = f.nodes[0].lnet.ping_info().expect("info").clone();
    assert!(info.seq > seq0);
    assert_eq!(info.nis.len(), 2);
    f.nodes[0].lnet.ni_del(now, extra).expect("del");
    assert!(f.nodes[0].lnet.ping_info().expect("info").seq > info.seq);
}

#[test]
fn latency_statistics_sample_put_egress_put_ack_and_get_rtt() {
    let mut f = Fabric::new(2);
    let (_, _tb) = target_md(
        &mut f,
        1,
        8,
        MdOptions::OP_PUT | MdOptions::OP_GET | MdOptions::MANAGE_REMOTE,
    );
    f.discover(0, 1);
    // The discovery ping and push are samples too: start from zero.
    f.nodes[0].lnet.stats_reset();
    f.hold = true;
    let (_, p) = buf(vec![1; 8]);
    let md = f.nodes[0]
        .lnet
        .md_bind(
            MdSpec::new(p, MdOptions::NONE, Threshold::Count(2)),
            Unlink::Unlink,
        )
        .expect("bind");
    let now = f.now;
    f.nodes[0]
        .lnet
        .put(now, None, md, AckReq::Ack, pid(1), PORTAL, 0x1234, 0, 0)
        .expect("put");
    f.run();
    f.now = f.now.saturating_add(Duration::from_millis(3));
    f.release();
    let sink = IoBuf::zeroed(8);
    let md = f.nodes[0]
        .lnet
        .md_bind(
            MdSpec::new(Payload::single(sink), MdOptions::NONE, Threshold::Count(2)),
            Unlink::Unlink,
        )
        .expect("bind");
    let now = f.now;
    f.hold = true;
    f.nodes[0]
        .lnet
        .get(now, None, md, pid(1), PORTAL, 0x1234, 0)
        .expect("get");
    f.run();
    f.now = f.now.saturating_add(Duration::from_millis(5));
    f.release();
    let evs: Vec<_> = f.md_events(0).iter().map(|e| (e.kind, e.status)).collect();
    assert!(evs.contains(&(EventKind::Reply, 0)), "{evs:?}");
    let s = *f.nodes[0].lnet.ni(f.nodes[0].ni).expect("ni").stats();
    assert_eq!(
        (s.put_egress.samples, s.put_egress.min_nsec),
        (1, 3_000_000)
    );
    assert_eq!((s.put_ack.samples, s.put_ack.avg_nsec()), (1, 3_000_000));
    assert_eq!((s.get_rtt.samples, s.get_rtt.max_nsec), (1, 5_000_000));
}

#[test]
fn pushes_are_acked_recorded_on_the_peer_and_the_buffer_reposted() {
    let mut f = Fabric::new(2);
    for round in 0..2u32 {
        let info = f.nodes[0].lnet.ping_info().expect("info").clone();
        let (_, p) = buf(info.to_vec().expect("emit"));
        let md = f.nodes[0]
            .lnet
            .md_bind(
                MdSpec::new(p, MdOptions::NONE, Threshold::Count(2)),
                Unlink::Unlink,
            )
            .expect("bind");
        let now = f.now;
        f.nodes[0]
            .lnet
            .put(
                now,
                None,
                md,
                AckReq::Ack,
                pid(1),
                0,
                lnet_core::wire::LNET_PROTO_PING_MATCHBITS,
                0,
                0,
            )
            .expect("push");
        f.run();
        let ev = f.md_events(0);
        assert!(
            ev.iter().any(|e| e.kind == EventKind::Ack && e.status == 0),
            "round {round}: {ev:?}"
        );
        let peer = f.nodes[1].lnet.peer(&nid(0)).expect("peer");
        assert_eq!(peer.pushed_info(), Some(&info));
        assert!(f.md_events(1).is_empty(), "push events are internal");
    }
    assert_eq!(f.nodes[1].lnet.md_count(), OWN);
    assert_eq!(f.nodes[1].lnet.me_count(), OWN);
}

#[test]
fn a_response_that_never_comes_unlinks_the_md_and_blames_the_next_hop() {
    let mut f = Fabric::new(2);
    // Remote health is tracked for peers with more than one NID (§8.3).
    let other = Nid::new4(TCP, 0x0a00_0a0a);
    f.nodes[0]
        .lnet
        .peer_add(nid(1), &[other], true)
        .expect("peer add");
    target_md(&mut f, 1, 8, MdOptions::OP_PUT | MdOptions::ACK_DISABLE);
    let (_, p) = buf(vec![1; 8]);
    let md = f.nodes[0]
        .lnet
        .md_bind(
            MdSpec::new(p, MdOptions::NONE, Threshold::Count(2)),
            Unlink::Unlink,
        )
        .expect("bind");
    let now = f.now;
    f.nodes[0]
        .lnet
        .put(now, None, md, AckReq::Ack, pid(1), PORTAL, 0x1234, 0, 0)
        .expect("put");
    f.run();
    assert_eq!(
        f.md_events(0).iter().map(|e| e.kind).collect::<Vec<_>>(),
        vec![EventKind::Send]
    );
    assert_eq!(f.nodes[0].lnet.stats().rst_alloc, 1);
    f.advance(Duration::from_secs(150));
    let evs = f.md_events(0);
    assert_eq!(
        evs.iter().map(|e| (e.kind, e.unlinked)).collect::<Vec<_>>(),
        vec![(EventKind::Unlink, true)]
    );
    let s = f.nodes[0].lnet.stats();
    assert_eq!((s.response_timeout_count, s.rst_alloc), (1, 0));
    let peer = f.nodes[0].lnet.peer(&nid(1)).expect("peer");
    let pni = peer.peer_nis().find(|n| n.nid() == nid(1)).expect("pni");
    assert_eq!(pni.health_value(), 900);
    assert_eq!(pni.stats().health.remote_timeout, 1);
}

#[test]
fn a_truncated_ping_reply_is_retried_with_the_announced_size() {
    let mut f = Fabric::new(2);
    for i in 0..70u32 {
        f.add_ni(1, Nid::new4(TCP, 0x0b00_0000 + i));
    }
    let now = f.now;
    f.nodes[0]
        .lnet
        .ping(now, pid(1), None, Duration::from_secs(5))
        .expect("ping");
    f.run();
    let evs = f.take_events(0);
    let Some(Event::PingDone { result, .. }) = evs.into_iter().next() else {
        panic!("no ping result")
    };
    let info = result.expect("ping ok after the retry");
    assert_eq!(info.nis.len(), 71);
    assert_eq!(info.nis[0].nid, nid(1), "the primary NID first");
    assert_eq!(f.nodes[0].lnet.md_count(), OWN);
    let sent = f.nodes[0]
        .lnet
        .ni(f.nodes[0].ni)
        .expect("ni")
        .stats()
        .sent
        .get;
    assert_eq!(sent, 2, "the first reply was truncated, the retry fit");
}
