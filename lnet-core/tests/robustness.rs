//! NI management errors, optimized GETs, LND notifications, and random
//! headers from peers: the engine never panics and every message completes.

mod pump;

use lnet_core::lnd_api::hdr::{GetBody, PutBody};
use lnet_core::lnd_api::{
    errno, Completion, Hdr, HealthStatus, IoBuf, MsgType, NetId, Nid, Payload, RxToken, WireHandle,
};
use lnet_core::{
    Config, Event, EventKind, InsPos, Instant, LndOp, Lnet, MdOptions, MdSpec, NiError, NiId,
    ProcessId, Threshold, Unlink,
};
use proptest::prelude::*;
use pump::*;

#[test]
fn ni_add_refuses_bad_nis() {
    let now = Instant::from_secs(1);
    let mut l = Lnet::new(Config::default(), now);
    assert_eq!(
        l.nis().map(|n| n.nid()).collect::<Vec<_>>(),
        vec![Nid::LO_0],
        "0@lo first and alone"
    );
    assert!(matches!(
        l.ni_add(now, NetId::LO, &ni_info(Nid::LO_0, 8, 8)),
        Err(NiError::Loopback)
    ));
    assert!(matches!(
        l.ni_add(now, NetId::new(2, 1), &ni_info(nid(0), 8, 8)),
        Err(NiError::WrongNet { .. })
    ));
    assert!(matches!(
        l.ni_add(now, TCP, &ni_info(nid(0), 0, 8)),
        Err(NiError::NoCredits {
            what: "credits",
            ..
        })
    ));
    assert!(matches!(
        l.ni_add(now, TCP, &ni_info(nid(0), 8, 0)),
        Err(NiError::NoCredits {
            what: "peer_credits",
            ..
        })
    ));
    let id = l.ni_add(now, TCP, &ni_info(nid(0), 8, 4)).expect("add");
    let e = l
        .ni_add(now, TCP, &ni_info(nid(0), 8, 4))
        .expect_err("twice");
    assert_eq!(e.errno(), errno::EEXIST);
    let v = l.ni(id).expect("view");
    assert_eq!(
        (
            v.nid(),
            v.tx_credits(),
            v.max_tx_credits(),
            v.tunables().peer_credits
        ),
        (nid(0), 8, 8, 4)
    );
    assert!(v.is_up());
    assert!(matches!(l.ni_del(now, NiId::LO), Err(NiError::Loopback)));
    l.ni_del(now, id).expect("del");
    assert!(l.ni(id).is_none());
    assert!(matches!(l.ni_del(now, id), Err(NiError::Unknown(_))));
    let id2 = l.ni_add(now, TCP, &ni_info(nid(0), 8, 4)).expect("re-add");
    assert_ne!(id, id2, "ids are not reused");
}

#[test]
fn an_ni_reported_down_is_down_in_the_ping_buffer() {
    let mut f = Fabric::new(1);
    let now = f.now;
    let ni = f.nodes[0].ni;
    let seq = f.nodes[0].lnet.ping_info().expect("info").seq;
    f.nodes[0].lnet.handle_link_state(now, ni, false);
    let info = f.nodes[0].lnet.ping_info().expect("info");
    assert!(!info.nis[0].is_up());
    assert!(info.seq > seq);
    f.nodes[0].lnet.ni_set_health(now, ni, 0).expect("health");
    f.nodes[0].lnet.handle_link_state(now, ni, true);
    assert!(
        !f.nodes[0].lnet.ping_info().expect("info").nis[0].is_up(),
        "health 0 keeps it down"
    );
    f.nodes[0]
        .lnet
        .ni_set_health(now, ni, 1000)
        .expect("health");
    assert!(f.nodes[0].lnet.ping_info().expect("info").nis[0].is_up());
}

#[test]
fn optimized_get_hands_the_reply_to_the_lnds_receive() {
    let mut f = Fabric::new(1);
    let me = f.nodes[0]
        .lnet
        .me_attach(4, ProcessId::ANY, 1, 0, Unlink::Retain, InsPos::After)
        .expect("me");
    let src = IoBuf::from_vec(pattern(100, 2));
    f.nodes[0]
        .lnet
        .md_attach(
            me,
            MdSpec::new(Payload::single(src), MdOptions::OP_GET, Threshold::Infinite),
            Unlink::Retain,
        )
        .expect("md");
    let now = f.now;
    let ni = f.nodes[0].ni;
    let wmd = WireHandle {
        interface_cookie: 3,
        object_cookie: 4,
    };
    let body = GetBody {
        return_wmd: wmd,
        match_bits: 1,
        ptl_index: 4,
        src_offset: 0,
        sink_length: 64,
    };
    let hdr = Hdr::get(nid(0), nid(5), 12345, 12345, body);
    let l = &mut f.nodes[0].lnet;
    l.handle_rx(now, ni, hdr, nid(5), RxToken(42), true)
        .expect("parse");
    let Some(LndOp::Recv { rx, payload, .. }) = l.poll_lnd() else {
        panic!("recv with the REPLY")
    };
    assert_eq!(rx.rx, RxToken(42));
    assert!(rx.payload.is_empty(), "the payload goes as a span");
    assert_eq!(payload.len(), 64);
    let mut got = vec![0; 64];
    payload.read_at(0, &mut got).expect("read");
    assert_eq!(got, pattern(100, 2)[..64].to_vec());
    assert!(l.poll_lnd().is_none(), "no REPLY header is sent");
    l.handle_done(
        now,
        rx.msg.into_option().expect("reply token"),
        Completion::OK,
    );
    let Some(Event::Md(ev)) = l.poll_event() else {
        panic!("GET event")
    };
    assert_eq!((ev.kind, ev.mlength, ev.status), (EventKind::Get, 64, 0));
    // An optimized GET for another node is a protocol error.
    let hdr = Hdr::get(Nid::new4(NetId::new(2, 9), 1), nid(5), 12345, 12345, body);
    assert!(l
        .handle_rx(now, ni, hdr, nid(5), RxToken(43), true)
        .is_err());
    assert_eq!(l.stats().msgs_alloc, 0);
}

#[test]
fn lnd_notifications_mark_peer_nis_and_notify_down() {
    let mut f = Fabric::new(2);
    let now = f.now;
    let ni = f.nodes[0].ni;
    let l = &mut f.nodes[0].lnet;
    // Unknown peers and other nets are ignored.
    l.handle_notify(now, ni, nid(1), false);
    assert!(l.poll_lnd().is_none());
    l.peer_add(nid(1), &[], false).expect("peer");
    l.handle_notify(now, ni, nid(1), false);
    assert!(matches!(l.poll_lnd(), Some(LndOp::NotifyPeerDown { peer, .. }) if peer == nid(1)));
    l.handle_notify(now, ni, nid(1), false);
    assert!(l.poll_lnd().is_none(), "repeated news ignored");
    assert!(!l
        .peer(&nid(1))
        .expect("peer")
        .peer_nis()
        .next()
        .expect("pni")
        .is_up());
    l.handle_notify(now, ni, nid(1), true);
    assert!(l
        .peer(&nid(1))
        .expect("peer")
        .peer_nis()
        .next()
        .expect("pni")
        .is_up());
}

fn fuzz_engine() -> (Lnet, NiId) {
    let now = Instant::from_secs(1);
    let mut l = Lnet::new(Config::new(12345, 77, 1), now);
    let ni = l.ni_add(now, TCP, &ni_info(nid(0), 4, 2)).expect("ni");
    l.set_lazy_portal(3, true);
    for (portal, opts) in [
        (3, MdOptions::OP_PUT),
        (
            4,
            MdOptions::OP_GET | MdOptions::MANAGE_REMOTE | MdOptions::TRUNCATE,
        ),
        (5, MdOptions::OP_PUT | MdOptions::MAX_SIZE),
    ] {
        let me = l
            .me_attach(
                portal,
                ProcessId::ANY,
                1,
                0x3,
                Unlink::Unlink,
                InsPos::After,
            )
            .expect("me");
        let mut spec = MdSpec::new(
            Payload::single(IoBuf::zeroed(4096)),
            opts,
            Threshold::Count(3),
        );
        spec.max_size = 100;
        l.md_attach(me, spec, Unlink::Unlink).expect("md");
    }
    let md = l
        .md_bind(
            MdSpec::new(
                Payload::single(IoBuf::zeroed(512)),
                MdOptions::NONE,
                Threshold::Count(2),
            ),
            Unlink::Unlink,
        )
        .expect("bind");
    l.get(
        now,
        None,
        md,
        ProcessId {
            nid: nid(1),
            pid: 12345,
        },
        4,
        1,
        0,
    )
    .expect("get");
    (l, ni)
}

fn arb_hdr(l: &Lnet) -> impl Strategy<Value = Hdr> {
    let cookie = l.interface_cookie();
    (
        0u32..6,
        prop_oneof![Just(0u32), 0u32..5000, Just(1 << 20), any::<u32>()],
        any::<[u8; 40]>(),
        0usize..4,
        any::<u64>(),
        0u32..70,
        any::<u32>(),
        0u64..4,
    )
        .prop_map(move |(t, len, mut body, dest, bits, portal, off, obj)| {
            let dests = [nid(0), nid(1), Nid::new4(NetId::new(2, 3), 1), Nid::LO_0];
            // Half the time make the body a plausible PUT/GET/ACK/REPLY.
            match t {
                1 => {
                    body = PutBody {
                        ack_wmd: WireHandle {
                            interface_cookie: cookie,
                            object_cookie: obj,
                        },
                        match_bits: bits & 0x7,
                        hdr_data: 0,
                        ptl_index: portal,
                        offset: off,
                    }
                    .to_body()
                }
                2 => {
                    body = GetBody {
                        return_wmd: WireHandle::NONE,
                        match_bits: bits & 0x7,
                        ptl_index: portal,
                        src_offset: off,
                        sink_length: off % 9000,
                    }
                    .to_body()
                }
                _ => {
                    // ACK/REPLY naming our own MDs by small cookies.
                    body[..8].copy_from_slice(&cookie.to_le_bytes());
                    body[8..16].copy_from_slice(&((1u64 << 32) | obj).to_le_bytes());
                }
            }
            Hdr {
                dest_nid: dests[dest],
                src_nid: nid(1),
                dest_pid: 12345,
                src_pid: 12345,
                msg_type: MsgType(t),
                payload_length: len,
                body,
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]
    #[test]
    fn random_headers_never_panic_and_every_message_completes(
        seq in proptest::collection::vec((0usize..1, any::<bool>(), any::<bool>()), 1..30),
        hdrs in proptest::collection::vec(arb_hdr(&fuzz_engine().0), 1..30),
    ) {
        let (mut l, ni) = fuzz_engine();
        let now = Instant::from_secs(2);
        let mut owned = Vec::new();
        for (i, h) in hdrs.into_iter().enumerate() {
            let _ = l.handle_rx(now, ni, h, nid(1), RxToken(i as u64), seq[i % seq.len()].1);
            while let Some(op) = l.poll_lnd() {
                match op {
                    LndOp::Send { tx, .. } => owned.push(tx.token),
                    LndOp::Recv { rx, payload, .. } => {
                        prop_assert!(payload.len() <= rx.rlen as usize || rx.msg.is_some());
                        if let Some(m) = rx.msg.into_option() { owned.push(m) }
                    }
                    _ => {}
                }
            }
            // Complete some of what the LND owns, in a scrambled order.
            if seq[i % seq.len()].2 {
                while let Some(t) = owned.pop() {
                    let c = if i % 3 == 0 { Completion::failed(errno::EIO, HealthStatus::REMOTE_ERROR) } else { Completion::OK };
                    l.handle_done(now, t, c);
                    while let Some(op) = l.poll_lnd() {
                        match op {
                            LndOp::Send { tx, .. } => owned.push(tx.token),
                            LndOp::Recv { rx, .. } => if let Some(m) = rx.msg.into_option() { owned.push(m) },
                            _ => {}
                        }
                    }
                }
            }
            while l.poll_event().is_some() {}
        }
        // Drain everything; lazy-portal waiters are dropped by clearing the flag.
        l.set_lazy_portal(3, false);
        l.set_lazy_portal(0, false);
        loop {
            while let Some(op) = l.poll_lnd() {
                match op {
                    LndOp::Send { tx, .. } => owned.push(tx.token),
                    LndOp::Recv { rx, .. } => if let Some(m) = rx.msg.into_option() { owned.push(m) },
                    _ => {}
                }
            }
            let Some(t) = owned.pop() else { break };
            l.handle_done(now, t, Completion::OK);
        }
        l.handle_timeout(Instant::from_secs(10_000));
        while let Some(op) = l.poll_lnd() {
            if let LndOp::Send { tx, .. } = op { l.handle_done(now, tx.token, Completion::OK) }
        }
        prop_assert_eq!(l.stats().msgs_alloc, 0);
    }
}

#[test]
fn the_engine_can_live_behind_a_mutex_shared_by_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Lnet>();
    send_sync::<LndOp>();
    send_sync::<Event>();
}
