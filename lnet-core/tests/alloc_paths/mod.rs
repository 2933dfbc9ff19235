//! The engine's steady-state message paths whose heap allocations are
//! counted, shared by the allocation test (`tests/alloc.rs`) and the engine
//! benchmark (`benches/engine.rs`); the node runtime's are in lnetd
//! (`lnetd/tests/node_paths`): each scenario is set up once, then `step` moves
//! one message (or one round trip) and checks that it really happened.
//!
//! Counting needs `stats_alloc` as the binary's global allocator; its
//! counters are process-wide, so a binary measuring with it runs nothing else
//! at the same time.

#![allow(dead_code, unused_imports, unreachable_pub, missing_docs)]

use lnet_core::lnd_api::hdr::PutBody;
use lnet_core::lnd_api::{Completion, Hdr, IoBuf, Nid, Payload, PayloadSpan, RxToken, WireHandle};
use lnet_core::{
    AckReq, Config, Event, EventKind, InsPos, Instant, LndOp, Lnet, MdHandle, MdOptions, MdSpec,
    ProcessId, Threshold, Unlink, LNET_PID_LUSTRE,
};

use crate::pump::{ni_info, nid, pid, Fabric, TCP};

mod measure;
pub use measure::{check, measure, target_spec, PerStep, BITS, PORTAL};

fn attach_target(l: &mut Lnet, len: usize, options: MdOptions) -> MdHandle {
    let me = l
        .me_attach(
            PORTAL,
            ProcessId::ANY,
            BITS,
            0,
            Unlink::Retain,
            InsPos::After,
        )
        .expect("me_attach");
    l.md_attach(me, target_spec(len, options), Unlink::Retain)
        .expect("md_attach")
}

/// An initiator MD used for every message (bound once, never exhausted).
fn bind_source(l: &mut Lnet, len: usize) -> MdHandle {
    let spec = MdSpec::new(
        Payload::single(IoBuf::from_vec(vec![0xa5; len])),
        MdOptions::NONE,
        Threshold::Infinite,
    );
    l.md_bind(spec, Unlink::Retain).expect("md_bind")
}

/// One engine alone receiving PUTs of `len` bytes on an exact-bits ME: the
/// header is parsed and matched, the receive handed to the "LND", which
/// completes it at once; the PUT event is polled.
pub fn engine_put_receive(len: usize) -> impl FnMut() {
    let now = Instant::from_secs(1);
    let mut l = Lnet::new(Config::new(LNET_PID_LUSTRE, 1, 0), now);
    let ni = l.ni_add(now, TCP, &ni_info(nid(0), 256, 8)).expect("ni");
    attach_target(&mut l, len.max(1), MdOptions::OP_PUT);
    let body = PutBody {
        ack_wmd: WireHandle::NONE,
        match_bits: BITS,
        hdr_data: 0,
        ptl_index: PORTAL,
        offset: 0,
    };
    let hdr = Hdr::put(
        nid(0),
        nid(1),
        LNET_PID_LUSTRE,
        LNET_PID_LUSTRE,
        len as u32,
        body,
    );
    move || {
        l.handle_rx(now, ni, hdr, nid(1), RxToken(1), false)
            .expect("parse");
        let mut received = 0;
        while let Some(op) = l.poll_lnd() {
            if let LndOp::Recv { rx, payload, .. } = op {
                assert_eq!(payload.len(), len, "the whole PUT is received");
                if let Some(m) = rx.msg.into_option() {
                    l.handle_done(now, m, Completion::OK);
                    received += 1;
                }
            }
        }
        let mut puts = 0;
        while let Some(ev) = l.poll_event() {
            if let Event::Md(e) = &ev {
                assert_eq!(
                    (e.kind, e.status, e.mlength),
                    (EventKind::Put, 0, len as u32)
                );
                puts += 1;
            }
        }
        assert_eq!(
            (received, puts),
            (1, 1),
            "every PUT is received and reported"
        );
    }
}

/// Checks the MD events of one round trip on both nodes, then forgets them.
fn expect_events(f: &mut Fabric, initiator: &[EventKind], target: &[EventKind]) {
    for (i, want) in [(0, initiator), (1, target)] {
        let evs = &f.nodes[i].events;
        assert_eq!(evs.len(), want.len(), "node {i}: {evs:?}");
        for (ev, kind) in evs.iter().zip(want) {
            match ev {
                Event::Md(e) => assert_eq!((e.kind, e.status), (*kind, 0), "node {i}: {e:?}"),
                other => panic!("node {i}: unexpected {other:?}"),
            }
        }
        f.nodes[i].events.clear();
    }
}

/// Two engines and the in-memory pump: node 0 PUTs `len` bytes with an ACK
/// to node 1 (SEND and ACK on node 0, PUT on node 1).
pub fn engine_put_ack(len: usize) -> impl FnMut() {
    let mut f = Fabric::new(2);
    attach_target(&mut f.nodes[1].lnet, len.max(1), MdOptions::OP_PUT);
    let md = bind_source(&mut f.nodes[0].lnet, len);
    move || {
        let now = f.now;
        f.nodes[0]
            .lnet
            .put(now, None, md, AckReq::Ack, pid(1), PORTAL, BITS, 0, 0)
            .expect("put");
        f.run();
        expect_events(
            &mut f,
            &[EventKind::Send, EventKind::Ack],
            &[EventKind::Put],
        );
    }
}

/// As [`engine_put_ack`], with node 1 a Multi-Rail peer of two NIDs on the
/// net (path selection ranks peer nets and peer NIs for every message) and
/// MDs of `frags` fragments.
pub fn engine_put_ack_mr(len: usize, frags: usize) -> impl FnMut() {
    let mut f = Fabric::new(2);
    let second = Nid::new4(TCP, 0x0a00_0101);
    f.add_ni(1, second);
    f.nodes[0]
        .lnet
        .peer_add(nid(1), &[second], true)
        .expect("peer_add");
    let target: Payload = (0..frags).map(|_| IoBuf::zeroed(len / frags)).collect();
    let me = f.nodes[1]
        .lnet
        .me_attach(
            PORTAL,
            ProcessId::ANY,
            BITS,
            0,
            Unlink::Retain,
            InsPos::After,
        )
        .expect("me_attach");
    let spec = MdSpec::new(
        target,
        MdOptions::OP_PUT | MdOptions::MANAGE_REMOTE,
        Threshold::Infinite,
    );
    f.nodes[1]
        .lnet
        .md_attach(me, spec, Unlink::Retain)
        .expect("md_attach");
    let source: Payload = (0..frags)
        .map(|_| IoBuf::from_vec(vec![0x5a; len / frags]))
        .collect();
    let spec = MdSpec::new(source, MdOptions::NONE, Threshold::Infinite);
    let md = f.nodes[0]
        .lnet
        .md_bind(spec, Unlink::Retain)
        .expect("md_bind");
    move || {
        let now = f.now;
        f.nodes[0]
            .lnet
            .put(now, None, md, AckReq::Ack, pid(1), PORTAL, BITS, 0, 0)
            .expect("put");
        f.run();
        expect_events(
            &mut f,
            &[EventKind::Send, EventKind::Ack],
            &[EventKind::Put],
        );
    }
}

/// As [`engine_put_ack`] with `window` PUTs in flight at once, each from its
/// own MD (so `window` response trackers are armed together); one step is
/// the whole window.
pub fn engine_put_ack_window(len: usize, window: usize) -> impl FnMut() {
    let mut f = Fabric::new(2);
    attach_target(&mut f.nodes[1].lnet, len.max(1), MdOptions::OP_PUT);
    let mds: Vec<MdHandle> = (0..window)
        .map(|_| bind_source(&mut f.nodes[0].lnet, len))
        .collect();
    move || {
        let now = f.now;
        for &md in &mds {
            f.nodes[0]
                .lnet
                .put(now, None, md, AckReq::Ack, pid(1), PORTAL, BITS, 0, 0)
                .expect("put");
        }
        f.run();
        let acks = f.nodes[0]
            .events
            .iter()
            .filter(|e| matches!(e, Event::Md(m) if m.kind == EventKind::Ack && m.status == 0))
            .count();
        assert_eq!(acks, mds.len(), "every PUT of the window is acknowledged");
        f.nodes[0].events.clear();
        f.nodes[1].events.clear();
    }
}

/// As [`engine_put_ack`], the target posting a use-once ME and MD for each
/// PUT (new match bits each time, both unlinked by the PUT), as a Lustre
/// server does per bulk. The application's `MdSpec` brings its own
/// `Payload` (a clone of one fragment list): one allocation of the
/// application per step, on top of the message path's.
pub fn engine_put_ack_use_once_me(len: usize) -> impl FnMut() {
    let mut f = Fabric::new(2);
    let md = bind_source(&mut f.nodes[0].lnet, len);
    // The application keeps its buffer as a span and clones it per MD (a
    // reference count).
    let memory = PayloadSpan::from(IoBuf::zeroed(len.max(1)));
    let mut bits = 0u64;
    let mes = f.nodes[1].lnet.me_count();
    move || {
        bits += 1;
        let me = f.nodes[1]
            .lnet
            .me_attach(
                PORTAL,
                ProcessId::ANY,
                bits,
                0,
                Unlink::Unlink,
                InsPos::After,
            )
            .expect("me_attach");
        let spec = MdSpec::new(
            memory.clone(),
            MdOptions::OP_PUT | MdOptions::MANAGE_REMOTE,
            Threshold::Count(1),
        );
        f.nodes[1]
            .lnet
            .md_attach(me, spec, Unlink::Unlink)
            .expect("md_attach");
        let now = f.now;
        f.nodes[0]
            .lnet
            .put(now, None, md, AckReq::Ack, pid(1), PORTAL, bits, 0, 0)
            .expect("put");
        f.run();
        expect_events(
            &mut f,
            &[EventKind::Send, EventKind::Ack],
            &[EventKind::Put],
        );
        assert_eq!(f.nodes[1].lnet.me_count(), mes, "the ME went with its MD");
    }
}

/// Two engines and the pump: node 0 GETs `len` bytes from node 1 (SEND and
/// REPLY on node 0, GET on node 1).
pub fn engine_get_reply(len: usize) -> impl FnMut() {
    let mut f = Fabric::new(2);
    attach_target(&mut f.nodes[1].lnet, len.max(1), MdOptions::OP_GET);
    let md = bind_source(&mut f.nodes[0].lnet, len);
    move || {
        let now = f.now;
        f.nodes[0]
            .lnet
            .get(now, None, md, pid(1), PORTAL, BITS, 0)
            .expect("get");
        f.run();
        expect_events(
            &mut f,
            &[EventKind::Send, EventKind::Reply],
            &[EventKind::Get],
        );
    }
}
/// Routed: node 0 (10.0.0.1@tcp) PUTs `len` bytes with an ACK to node 1
/// (10.1.0.3@tcp1) through node 2, a router on both nets: the PUT and the
/// ACK are each received into a router buffer and forwarded from it.
pub fn engine_put_ack_routed(len: usize) -> impl FnMut() {
    let tcp1 = lnet_core::lnd_api::NetId::new(2, 1);
    let mut f = Fabric::with_credits(0, 256, 8);
    let (c_nid, s_nid) = (nid(0), Nid::new4(tcp1, 0x0a01_0003));
    let (r_tcp, r_tcp1) = (Nid::new4(TCP, 0x0a00_0002), Nid::new4(tcp1, 0x0a01_0002));
    f.add_node(&[c_nid]);
    f.add_node(&[s_nid]);
    f.add_node(&[r_tcp, r_tcp1]);
    let now = f.now;
    let mut cfg = lnet_core::RouterConfig::default();
    cfg.alive_router_check_interval = 0;
    for n in &mut f.nodes {
        n.lnet.set_router_config(now, cfg.clone());
    }
    f.nodes[2].lnet.set_routing(now, true, true);
    f.nodes[0]
        .lnet
        .route_add(now, tcp1, r_tcp, None, 0, None)
        .expect("client route");
    f.nodes[1]
        .lnet
        .route_add(now, TCP, r_tcp1, None, 0, None)
        .expect("server route");
    attach_target(&mut f.nodes[1].lnet, len.max(1), MdOptions::OP_PUT);
    let md = bind_source(&mut f.nodes[0].lnet, len);
    let target = ProcessId {
        nid: s_nid,
        pid: LNET_PID_LUSTRE,
    };
    move || {
        let now = f.now;
        f.nodes[0]
            .lnet
            .put(now, None, md, AckReq::Ack, target, PORTAL, BITS, 0, 0)
            .expect("put");
        f.run();
        expect_events(
            &mut f,
            &[EventKind::Send, EventKind::Ack],
            &[EventKind::Put],
        );
        assert!(f.nodes[2].events.is_empty());
    }
}
