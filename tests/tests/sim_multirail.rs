//! Multi-Rail on the simulated fabric (semantics §6): two NIs per node share
//! the load to a Multi-Rail peer, on two nets or on one.

use lnet_core::lnd_api::Nid;
use lnet_core::{AckReq, Duration, EventKind, MdOptions, Threshold};
use lnet_tests::sim::{pattern, seed_from_env, Fabric, LinkParams, NiSpec, NodeSpec, TCP1};

const PORTAL: u32 = 14;
const BITS: u64 = 0x4d52;
const N: usize = 24;
const LEN: usize = 2048;

/// Node 0 discovers node 1 (§9: a ping and a push), then both nodes and the
/// links forget that traffic: the scenarios count their own PUTs.
fn discovered(f: &mut Fabric, prim: Nid) {
    assert_eq!(f.discover(0, prim, false), Ok(prim));
    // Node 1 learnt of node 0 by its push and pushes back.
    f.settle();
    f.call(0, |l, _| l.stats_reset());
    f.call(1, |l, _| l.stats_reset());
    f.reset_link_stats();
}

fn sent_puts(f: &Fabric, node: usize, k: usize) -> u64 {
    let ni = f.ni(node, k);
    f.inspect(node, |l| l.ni(ni).expect("ni").stats().sent.put)
}

fn received_puts(f: &Fabric, node: usize, k: usize) -> u64 {
    let ni = f.ni(node, k);
    f.inspect(node, |l| l.ni(ni).expect("ni").stats().received.put)
}

/// Node 0 sends N PUTs to node 1, which it knows as one Multi-Rail peer
/// with both NIDs (`lnetctl peer add --prim_nid A --nid B`).
fn run_load(f: &mut Fabric) {
    let (prim, other) = (f.nid(1, 0), f.nid(1, 1));
    f.call(0, |l, _| l.peer_add(prim, &[other], true))
        .expect("peer add");
    discovered(f, prim);
    assert!(f.inspect(0, |l| l.peer(&prim).expect("peer").multi_rail()));
    let (_, buf) = f.post(
        1,
        PORTAL,
        BITS,
        N * LEN,
        MdOptions::OP_PUT,
        Threshold::Count(N as u32),
    );
    for i in 0..N {
        let (md, _) = f.bind(0, &pattern(LEN, i as u8), Threshold::Count(2));
        f.put(0, md, AckReq::Ack, f.pid(1), PORTAL, BITS, i as u64)
            .expect("put accepted");
    }
    f.settle();
    // Everything arrived once, intact, and was acknowledged.
    let evs = f.take_md_events(1);
    assert_eq!(evs.len(), N);
    let mut seen: Vec<u64> = evs.iter().map(|e| e.hdr_data).collect();
    seen.sort_unstable();
    assert_eq!(seen, (0..N as u64).collect::<Vec<_>>());
    let got = buf.to_vec().expect("free");
    for e in &evs {
        let off = e.offset as usize;
        assert_eq!(&got[off..off + LEN], &pattern(LEN, e.hdr_data as u8)[..]);
    }
    let acks = f
        .take_md_events(0)
        .iter()
        .filter(|e| e.kind == EventKind::Ack && e.status == 0)
        .count();
    assert_eq!(acks, N);
    // Both rails carried PUTs, on both sides.
    let (s0, s1) = (sent_puts(f, 0, 0), sent_puts(f, 0, 1));
    let (r0, r1) = (received_puts(f, 1, 0), received_puts(f, 1, 1));
    assert!(s0 > 0 && s1 > 0, "sender NIs sent {s0} and {s1} PUTs");
    assert_eq!(s0 + s1, N as u64);
    assert!(r0 > 0 && r1 > 0, "target NIs received {r0} and {r1} PUTs");
    assert_eq!(r0 + r1, N as u64);
    // And the wire agrees with the engine's counters.
    let mut wire = 0;
    for a in [f.nid(0, 0), f.nid(0, 1)] {
        for b in [f.nid(1, 0), f.nid(1, 1)] {
            wire += f.link_stats(a, b).delivered;
        }
    }
    assert_eq!(wire, N as u64);
}

fn link(f: &mut Fabric, a: Nid, b: Nid) {
    f.set_link(a, b, LinkParams::new().latency(Duration::from_micros(30)));
}

#[test]
fn two_nets_share_the_load() {
    let mut f = Fabric::new(seed_from_env(31));
    f.add_node(
        NodeSpec::new()
            .ni(NiSpec::tcp([10, 0, 0, 1]))
            .ni(NiSpec::new(TCP1, [10, 1, 0, 1])),
    );
    f.add_node(
        NodeSpec::new()
            .ni(NiSpec::tcp([10, 0, 0, 2]))
            .ni(NiSpec::new(TCP1, [10, 1, 0, 2])),
    );
    let (a0, a1, b0, b1) = (f.nid(0, 0), f.nid(0, 1), f.nid(1, 0), f.nid(1, 1));
    link(&mut f, a0, b0);
    link(&mut f, a1, b1);
    run_load(&mut f);
}

#[test]
fn two_nis_on_one_net_share_the_load() {
    let mut f = Fabric::new(seed_from_env(32));
    f.add_node(
        NodeSpec::new()
            .ni(NiSpec::tcp([10, 0, 0, 1]))
            .ni(NiSpec::tcp([10, 0, 0, 3])),
    );
    f.add_node(
        NodeSpec::new()
            .ni(NiSpec::tcp([10, 0, 0, 2]))
            .ni(NiSpec::tcp([10, 0, 0, 4])),
    );
    run_load(&mut f);
}

#[test]
fn without_multi_rail_one_rail_carries_everything() {
    // The control experiment: a plain (non-MR) peer is reached through the
    // one NI it was first reached by (§6.7).
    let mut t = lnet_core::GlobalTunables::default();
    t.peer_discovery_disabled = true;
    let mut f = Fabric::new(seed_from_env(33));
    f.add_node(
        NodeSpec::new()
            .tunables(t)
            .ni(NiSpec::tcp([10, 0, 0, 1]))
            .ni(NiSpec::tcp([10, 0, 0, 3])),
    );
    f.add_node(
        NodeSpec::new()
            .ni(NiSpec::tcp([10, 0, 0, 2]))
            .ni(NiSpec::tcp([10, 0, 0, 4])),
    );
    f.post(
        1,
        PORTAL,
        BITS,
        LEN,
        MdOptions::OP_PUT | MdOptions::MANAGE_REMOTE,
        Threshold::Infinite,
    );
    for i in 0..8 {
        let (md, _) = f.bind(0, &pattern(LEN, i), Threshold::Count(2));
        f.put(0, md, AckReq::Ack, f.pid(1), PORTAL, BITS, 0)
            .expect("put accepted");
    }
    f.settle();
    let (s0, s1) = (sent_puts(&f, 0, 0), sent_puts(&f, 0, 1));
    assert_eq!(s0 + s1, 8);
    assert!(s0 == 0 || s1 == 0, "one rail only: {s0} and {s1}");
    assert_eq!(received_puts(&f, 1, 0), 8, "all to the peer NID named");
}

#[test]
fn a_failed_rail_loses_health_and_traffic_moves_to_the_other() {
    let mut f = Fabric::new(seed_from_env(34));
    f.add_node(
        NodeSpec::new()
            .ni(NiSpec::tcp([10, 0, 0, 1]).timeout(5))
            .ni(NiSpec::new(TCP1, [10, 1, 0, 1]).timeout(5)),
    );
    f.add_node(
        NodeSpec::new()
            .ni(NiSpec::tcp([10, 0, 0, 2]).timeout(5))
            .ni(NiSpec::new(TCP1, [10, 1, 0, 2]).timeout(5)),
    );
    let (a1, b1) = (f.nid(0, 1), f.nid(1, 1));
    let (prim, other) = (f.nid(1, 0), f.nid(1, 1));
    f.call(0, |l, _| l.peer_add(prim, &[other], true))
        .expect("peer add");
    discovered(&mut f, prim);
    // The tcp1 rail is dead from the start.
    f.cut_link(a1, b1, f.now(), None);
    f.post(
        1,
        PORTAL,
        BITS,
        LEN,
        MdOptions::OP_PUT | MdOptions::MANAGE_REMOTE,
        Threshold::Infinite,
    );
    let mut failed = 0;
    for i in 0..10u8 {
        let (md, _) = f.bind(0, &pattern(LEN, i), Threshold::Count(2));
        f.put(0, md, AckReq::Ack, f.pid(1), PORTAL, BITS, u64::from(i))
            .expect("put accepted");
        f.settle();
        failed += f
            .take_md_events(0)
            .iter()
            .filter(|e| e.kind == EventKind::Send && e.status != 0)
            .count();
    }
    // Only what went to the dead rail before its health dropped failed.
    assert!((1..=2).contains(&failed), "{failed} PUTs failed");
    assert_eq!(f.take_md_events(1).len(), 10 - failed);
    // The dead rail's peer NI lost health and stays low (its recovery pings
    // cross the cut); our own NI on that rail was blamed too (NETWORK_TIMEOUT)
    // but its recovery pings to itself succeed, so it is back at 1000 (§8.6).
    let health = f.inspect(0, |l| {
        l.peer(&prim)
            .expect("peer")
            .peer_nis()
            .find(|p| p.nid() == b1)
            .expect("peer NI")
            .health_value()
    });
    assert!(
        health < 1000,
        "the dead rail's peer NI lost health: {health}"
    );
    let ni1 = f.ni(0, 1);
    assert_eq!(
        f.inspect(0, |l| l.ni(ni1).expect("ni").health_value()),
        1000
    );
    // What the dead rail took failed: counted as dropped, not sent (issue
    // 11 item 6); nothing went there after.
    let dropped = f.inspect(0, |l| l.ni(ni1).expect("ni").stats().dropped.put);
    assert_eq!(
        (sent_puts(&f, 0, 1), dropped),
        (0, failed as u64),
        "the dead rail was avoided after"
    );
    // Plus, once failed recovery pings (NETWORK_TIMEOUT blames the local NI
    // too) bring the dead rail's NI to 0 (down), the push telling node 1
    // (§9.7): a PUT on portal 0, on the live rail.
    let pushes = sent_puts(&f, 0, 0) - (10 - failed as u64);
    assert!(pushes <= 1, "{pushes} pushes");
}

#[test]
fn a_dropped_put_is_resent_to_the_peers_other_nid() {
    // The peer's tcp rail drops everything as "remote dropped" (a resendable
    // status): the engine resends through the tcp1 rail and the PUT lands.
    let mut f = Fabric::new(seed_from_env(35));
    f.add_node(
        NodeSpec::new()
            .ni(NiSpec::tcp([10, 0, 0, 1]).timeout(2))
            .ni(NiSpec::new(TCP1, [10, 1, 0, 1]).timeout(2)),
    );
    f.add_node(
        NodeSpec::new()
            .ni(NiSpec::tcp([10, 0, 0, 2]).timeout(2))
            .ni(NiSpec::new(TCP1, [10, 1, 0, 2]).timeout(2)),
    );
    let (a0, b0) = (f.nid(0, 0), f.nid(1, 0));
    f.set_link(
        a0,
        b0,
        LinkParams::new()
            .loss(1.0)
            .loss_status(lnet_core::lnd_api::HealthStatus::REMOTE_DROPPED),
    );
    let (prim, other) = (f.nid(1, 0), f.nid(1, 1));
    f.call(0, |l, _| l.peer_add(prim, &[other], true))
        .expect("peer add");
    discovered(&mut f, prim);
    let (_, sink) = f.post(
        1,
        PORTAL,
        BITS,
        LEN,
        MdOptions::OP_PUT | MdOptions::MANAGE_REMOTE,
        Threshold::Infinite,
    );
    let mut resent = 0;
    for i in 0..4u8 {
        let data = pattern(LEN, i);
        let (md, _) = f.bind(0, &data, Threshold::Count(2));
        f.put(0, md, AckReq::Ack, f.pid(1), PORTAL, BITS, u64::from(i))
            .expect("put accepted");
        f.settle();
        let evs = f.take_md_events(0);
        assert_eq!(
            evs.iter().map(|e| (e.kind, e.status)).collect::<Vec<_>>(),
            [(EventKind::Send, 0), (EventKind::Ack, 0)],
            "PUT {i}: no failure shows"
        );
        assert_eq!(sink.to_vec().expect("free"), data);
        resent = f.inspect(0, |l| l.stats().resend_count);
    }
    let lost = f.link_stats(a0, b0).lost;
    assert!(lost >= 1, "the bad rail was tried");
    assert_eq!(resent, lost, "every drop was resent");
    assert_eq!(f.inspect(0, |l| l.stats().successful_resends), lost);
}

#[test]
fn an_ni_whose_link_goes_down_is_avoided_and_pinged_as_down() {
    use lnet_core::wire::{LNET_NI_STATUS_DOWN, LNET_NI_STATUS_UP};
    let mut f = Fabric::new(seed_from_env(36));
    for i in 0..2u8 {
        f.add_node(
            NodeSpec::new()
                .ni(NiSpec::tcp([10, 0, 0, 1 + i]))
                .ni(NiSpec::tcp([10, 0, 0, 11 + i])),
        );
    }
    let (prim, other) = (f.nid(1, 0), f.nid(1, 1));
    f.call(0, |l, _| l.peer_add(prim, &[other], true))
        .expect("peer add");
    discovered(&mut f, prim);
    f.post(
        1,
        PORTAL,
        BITS,
        LEN,
        MdOptions::OP_PUT | MdOptions::MANAGE_REMOTE,
        Threshold::Infinite,
    );
    // Node 0's second NI loses its link.
    f.set_ni_link(0, 1, false);
    let ni1 = f.ni(0, 1);
    assert!(f.inspect(0, |l| l.ni(ni1).expect("ni").fatal()));
    for i in 0..8u8 {
        let (md, _) = f.bind(0, &pattern(LEN, i), Threshold::Count(2));
        f.put(0, md, AckReq::Ack, f.pid(1), PORTAL, BITS, 0)
            .expect("put");
    }
    f.settle();
    // 8 PUTs and the push telling node 1 that an NI went down (§9.7).
    assert_eq!(
        (sent_puts(&f, 0, 0), sent_puts(&f, 0, 1)),
        (9, 0),
        "the down NI is not chosen"
    );
    assert!(f.take_md_events(0).iter().all(|e| e.status == 0));
    // Node 1 pings node 0: the NI is listed down.
    let target = f.pid(0);
    f.call(1, |l, now| {
        l.ping(now, target, None, Duration::from_secs(5))
    })
    .expect("ping");
    f.settle();
    let status = |f: &mut Fabric| {
        let evs = f.take_events(1);
        let Some(lnet_core::Event::PingDone {
            result: Ok(info), ..
        }) = evs.last()
        else {
            panic!("ping failed: {evs:?}");
        };
        info.nis.iter().map(|n| n.status).collect::<Vec<_>>()
    };
    assert_eq!(status(&mut f), [LNET_NI_STATUS_UP, LNET_NI_STATUS_DOWN]);
    // Back up: used again, pinged up.
    f.set_ni_link(0, 1, true);
    assert!(!f.inspect(0, |l| l.ni(ni1).expect("ni").fatal()));
    for i in 0..8u8 {
        let (md, _) = f.bind(0, &pattern(LEN, i), Threshold::Count(2));
        f.put(0, md, AckReq::Ack, f.pid(1), PORTAL, BITS, 0)
            .expect("put");
    }
    f.settle();
    assert!(sent_puts(&f, 0, 1) > 0, "the NI carries traffic again");
    f.call(1, |l, now| {
        l.ping(now, target, None, Duration::from_secs(5))
    })
    .expect("ping");
    f.settle();
    assert_eq!(status(&mut f), [LNET_NI_STATUS_UP, LNET_NI_STATUS_UP]);
}
