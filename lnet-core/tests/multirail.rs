//! Peers and Multi-Rail selection (semantics §6): local NI and peer NI choice
//! by health, credits and round robin; single-rail peers keep their preferred
//! NI; peer tables as `peer show` sees them.

mod pump;

use lnet_core::lnd_api::{IoBuf, Nid, Payload};
use lnet_core::{AckReq, InsPos, MdOptions, MdSpec, PeerError, ProcessId, Threshold, Unlink};
use pump::*;

fn sink(f: &mut Fabric, node: usize) {
    let me = f.nodes[node]
        .lnet
        .me_attach(3, ProcessId::ANY, 1, 0, Unlink::Retain, InsPos::After)
        .expect("me");
    f.nodes[node]
        .lnet
        .md_attach(
            me,
            MdSpec::new(
                Payload::single(IoBuf::zeroed(64)),
                MdOptions::OP_PUT,
                Threshold::Infinite,
            ),
            Unlink::Retain,
        )
        .expect("md");
}

fn puts(f: &mut Fabric, n: usize) {
    for _ in 0..n {
        let md = f.nodes[0]
            .lnet
            .md_bind(
                MdSpec::new(
                    Payload::single(IoBuf::zeroed(8)),
                    MdOptions::NONE,
                    Threshold::Count(2),
                ),
                Unlink::Unlink,
            )
            .expect("bind");
        let now = f.now;
        f.nodes[0]
            .lnet
            .put(now, None, md, AckReq::Ack, pid(1), 3, 1, 0, 0)
            .expect("put");
        f.run();
    }
}

fn sent_puts(f: &Fabric, node: usize) -> Vec<u64> {
    f.nodes[node]
        .nis
        .iter()
        .map(|(ni, _)| f.nodes[node].lnet.ni(*ni).expect("ni").stats().sent.put)
        .collect()
}

fn received_puts(f: &Fabric, node: usize) -> Vec<u64> {
    f.nodes[node]
        .nis
        .iter()
        .map(|(ni, _)| f.nodes[node].lnet.ni(*ni).expect("ni").stats().received.put)
        .collect()
}

/// Node 0 discovers node 1, then both forget the counts of that exchange.
fn discovered(f: &mut Fabric) {
    f.discover(0, 1);
    f.nodes[0].lnet.stats_reset();
    f.nodes[1].lnet.stats_reset();
}

/// Discovery off on a node: its peers stay single-rail (§9.4).
fn no_discovery(f: &mut Fabric, node: usize) {
    let mut t = f.nodes[node].lnet.tunables().clone();
    t.peer_discovery_disabled = true;
    f.nodes[node].lnet.set_tunables(t).expect("tunables");
}

fn two_rails() -> Fabric {
    let mut f = Fabric::new(2);
    f.add_ni(0, Nid::new4(TCP, 0x0a00_0101));
    f.add_ni(1, Nid::new4(TCP, 0x0a00_0102));
    sink(&mut f, 1);
    f
}

#[test]
fn mr_peer_round_robins_over_local_nis_and_peer_nis() {
    let mut f = two_rails();
    f.nodes[0]
        .lnet
        .peer_add(nid(1), &[Nid::new4(TCP, 0x0a00_0102)], true)
        .expect("peer add");
    discovered(&mut f);
    puts(&mut f, 6);
    assert_eq!(sent_puts(&f, 0), vec![3, 3], "local NIs alternate");
    assert_eq!(received_puts(&f, 1), vec![3, 3], "peer NIs alternate");
    // Responses leave through the NI their request came in on.
    let acks: u64 = f.nodes[1]
        .nis
        .iter()
        .map(|(ni, _)| f.nodes[1].lnet.ni(*ni).expect("ni").stats().sent.ack)
        .sum();
    assert_eq!(acks, 6);
    assert_eq!(
        f.nodes[1]
            .lnet
            .ni(f.nodes[1].nis[1].0)
            .expect("ni")
            .stats()
            .sent
            .ack,
        3
    );
}

#[test]
fn non_mr_peer_keeps_the_preferred_ni() {
    let mut f = two_rails();
    no_discovery(&mut f, 0);
    puts(&mut f, 6);
    assert_eq!(
        sent_puts(&f, 0),
        vec![6, 0],
        "a single-rail peer always sees the same source NID"
    );
    let peer = f.nodes[0].lnet.peer(&nid(1)).expect("peer");
    assert!(!peer.multi_rail());
    assert_eq!(peer.peer_nis().next().expect("pni").pref_nids(), &[nid(0)]);
}

#[test]
fn healthier_local_ni_wins() {
    let mut f = two_rails();
    f.nodes[0]
        .lnet
        .peer_add(nid(1), &[Nid::new4(TCP, 0x0a00_0102)], true)
        .expect("peer add");
    discovered(&mut f);
    let first = f.nodes[0].nis[0].0;
    f.nodes[0]
        .lnet
        .ni_set_health(f.now, first, 500)
        .expect("health");
    puts(&mut f, 4);
    assert_eq!(sent_puts(&f, 0), vec![0, 4]);
    assert_eq!(f.nodes[0].lnet.ni(first).expect("ni").health_value(), 500);
}

#[test]
fn ni_with_more_credits_wins_over_round_robin() {
    let mut f = two_rails();
    f.nodes[0]
        .lnet
        .peer_add(nid(1), &[Nid::new4(TCP, 0x0a00_0102)], true)
        .expect("peer add");
    discovered(&mut f);
    f.hold = true;
    puts(&mut f, 2);
    // Both NIs hold one message: equal credits, round robin alternates.
    assert_eq!(f.held(), 2);
    f.release();
    assert_eq!(sent_puts(&f, 0), vec![1, 1]);
}

#[test]
fn peer_add_groups_nids_and_refuses_conflicts() {
    let mut f = Fabric::new(1);
    let a = Nid::new4(TCP, 0x0a00_0a01);
    let b = Nid::new4(TCP, 0x0a00_0a02);
    let c = Nid::new4(TCP, 0x0a00_0a03);
    let l = &mut f.nodes[0].lnet;
    l.peer_add(a, &[b], true).expect("add");
    let e = l.peer_add(c, &[b], true).expect_err("b belongs to a");
    assert!(
        matches!(e, PeerError::NidInUse { owner, .. } if owner == a),
        "{e}"
    );
    assert!(matches!(
        l.peer_add(nid(0), &[], true),
        Err(PeerError::BadNid(_))
    ));
    let peers: Vec<_> = l
        .peers()
        .map(|p| {
            (
                p.primary_nid(),
                p.multi_rail(),
                p.peer_nis().map(|n| n.nid()).collect::<Vec<_>>(),
            )
        })
        .collect();
    assert_eq!(peers, vec![(a, true, vec![a, b])]);
    let now = f.now;
    f.nodes[0].lnet.peer_del(now, a).expect("del");
    assert_eq!(f.nodes[0].lnet.peers().count(), 0);
}

#[test]
fn traffic_creates_single_nid_peers_that_peer_add_absorbs() {
    let mut f = Fabric::new(2);
    sink(&mut f, 1);
    puts(&mut f, 1);
    let other = Nid::new4(TCP, 0x0a00_0777);
    assert_eq!(
        f.nodes[1].lnet.peers().count(),
        1,
        "the sender became a peer"
    );
    f.nodes[1]
        .lnet
        .peer_add(other, &[nid(0)], true)
        .expect("absorb");
    let peers: Vec<_> = f.nodes[1].lnet.peers().map(|p| p.primary_nid()).collect();
    assert_eq!(peers, vec![other]);
    let p = f.nodes[1].lnet.peer(&nid(0)).expect("same peer");
    assert_eq!(p.primary_nid(), other);
    assert_eq!(p.peer_nis().count(), 2);
}

#[test]
fn a_specified_source_becomes_the_preferred_ni_of_a_single_rail_peer() {
    let mut f = two_rails();
    no_discovery(&mut f, 0);
    let second = Nid::new4(TCP, 0x0a00_0101);
    // The first message to the peer is a ping from a specified source (a
    // PUT would wait for discovery, whose own ping would be first).
    let now = f.now;
    f.nodes[0]
        .lnet
        .ping(now, pid(1), Some(second), lnet_core::Duration::from_secs(5))
        .expect("ping");
    f.run();
    puts(&mut f, 3);
    assert_eq!(
        sent_puts(&f, 0),
        vec![0, 3],
        "later sends keep the source first used"
    );
}

#[test]
fn becoming_multi_rail_clears_the_preferred_ni() {
    let mut f = two_rails();
    puts(&mut f, 1);
    assert!(!f.nodes[0]
        .lnet
        .peer(&nid(1))
        .expect("peer")
        .peer_nis()
        .next()
        .expect("pni")
        .pref_nids()
        .is_empty());
    f.nodes[0]
        .lnet
        .peer_add(nid(1), &[Nid::new4(TCP, 0x0a00_0102)], true)
        .expect("peer add");
    let p = f.nodes[0].lnet.peer(&nid(1)).expect("peer");
    assert!(p.peer_nis().all(|n| n.pref_nids().is_empty()));
}

#[test]
fn distance_is_zero_for_our_nids_one_on_a_local_net() {
    let f = two_rails();
    let l = &f.nodes[0].lnet;
    assert_eq!(l.dist(&nid(0)), Ok((0, 0)));
    assert_eq!(l.dist(&Nid::LO_0), Ok((0, 0)));
    assert_eq!(l.dist(&nid(9)), Ok((1, 2)));
    assert_eq!(
        l.dist(&Nid::new4(lnet_core::lnd_api::NetId::new(5, 0), 1)),
        Err(-113)
    );
}

#[test]
fn a_put_dropped_by_one_peer_ni_is_resent_to_another() {
    let mut f = two_rails();
    let b = Nid::new4(TCP, 0x0a00_0102);
    f.nodes[0]
        .lnet
        .peer_add(nid(1), &[b], true)
        .expect("peer add");
    discovered(&mut f);
    f.fail_to
        .insert(b, lnet_core::lnd_api::HealthStatus::REMOTE_DROPPED);
    puts(&mut f, 4);
    let evs = f.md_events(0);
    assert_eq!(
        evs.iter().filter(|e| e.status == 0).count(),
        evs.len(),
        "every event succeeded: {evs:?}"
    );
    assert_eq!(received_puts(&f, 1), vec![4, 0]);
    let s = f.nodes[0].lnet.stats();
    assert!(s.resend_count >= 1);
    assert_eq!(s.resend_count, s.successful_resends);
    assert_eq!(s.health.remote_dropped, s.resend_count);
    let p = f.nodes[0].lnet.peer(&b).expect("peer");
    let bad = p.peer_nis().find(|n| n.nid() == b).expect("b");
    assert!(bad.health_value() < 1000);
}

#[test]
fn a_single_nid_peer_is_not_resent_to() {
    let mut f = Fabric::new(2);
    sink(&mut f, 1);
    f.fail_to
        .insert(nid(1), lnet_core::lnd_api::HealthStatus::REMOTE_DROPPED);
    puts(&mut f, 1);
    let evs = f.md_events(0);
    assert_eq!(evs.len(), 1);
    assert_eq!(evs[0].status, -5);
    assert_eq!(f.nodes[0].lnet.stats().resend_count, 0);
}

#[test]
fn resends_stop_at_retry_count() {
    let mut f = two_rails();
    let b = Nid::new4(TCP, 0x0a00_0102);
    f.nodes[0]
        .lnet
        .peer_add(nid(1), &[b], true)
        .expect("peer add");
    f.fail_to
        .insert(b, lnet_core::lnd_api::HealthStatus::REMOTE_DROPPED);
    f.fail_to
        .insert(nid(1), lnet_core::lnd_api::HealthStatus::REMOTE_DROPPED);
    puts(&mut f, 1);
    let s = f.nodes[0].lnet.stats();
    assert_eq!((s.resend_count, s.failed_resends), (2, 1), "retry_count 2");
    let evs = f.md_events(0);
    assert_eq!(evs.len(), 1);
    assert!(evs[0].status < 0);
}

#[test]
fn a_failed_peer_ni_is_pinged_back_to_health_and_used_again() {
    let mut f = two_rails();
    let b = Nid::new4(TCP, 0x0a00_0102);
    f.nodes[0]
        .lnet
        .peer_add(nid(1), &[b], true)
        .expect("peer add");
    puts(&mut f, 2); // both peer NIs heard from (ACKs come back from each)
    f.fail_to
        .insert(b, lnet_core::lnd_api::HealthStatus::REMOTE_DROPPED);
    puts(&mut f, 4);
    let health = |f: &Fabric| {
        let p = f.nodes[0].lnet.peer(&b).expect("peer");
        let v = p
            .peer_nis()
            .find(|n| n.nid() == b)
            .expect("b")
            .health_value();
        v
    };
    assert!(health(&f) < 1000);
    assert_eq!(
        f.nodes[0]
            .lnet
            .peer_recovery_queue()
            .iter()
            .map(|(n, _)| *n)
            .collect::<Vec<_>>(),
        vec![b]
    );
    // While b still fails, recovery pings fail too and back off.
    f.advance(lnet_core::Duration::from_secs(1));
    let (_, count) = f.nodes[0].lnet.peer_recovery_queue()[0];
    assert_eq!(count, 1);
    f.fail_to.clear();
    for _ in 0..40 {
        f.advance(lnet_core::Duration::from_secs(1));
    }
    assert_eq!(health(&f), 1000, "recovery pings raised it back");
    assert!(f.nodes[0].lnet.peer_recovery_queue().is_empty());
    assert!(
        f.take_events(0)
            .iter()
            .all(|e| !matches!(e, lnet_core::Event::PingDone { .. })),
        "internal pings are not reported"
    );
    assert_eq!(f.nodes[0].lnet.pings_in_flight(), 0);
    let before = received_puts(&f, 1);
    puts(&mut f, 4);
    let after = received_puts(&f, 1);
    assert!(
        after[1] > before[1],
        "b carries traffic again: {before:?} -> {after:?}"
    );
}

#[test]
fn remote_health_is_not_tracked_for_a_single_nid_peer() {
    let mut f = Fabric::new(2);
    sink(&mut f, 1);
    puts(&mut f, 1);
    f.fail_to
        .insert(nid(1), lnet_core::lnd_api::HealthStatus::REMOTE_DROPPED);
    puts(&mut f, 3);
    let p = f.nodes[0].lnet.peer(&nid(1)).expect("peer");
    assert_eq!(p.peer_nis().next().expect("pni").health_value(), 1000);
    assert!(f.nodes[0].lnet.peer_recovery_queue().is_empty());
}

#[test]
fn peer_set_health_queues_the_peer_ni_for_recovery() {
    let mut f = two_rails();
    let b = Nid::new4(TCP, 0x0a00_0102);
    f.nodes[0]
        .lnet
        .peer_add(nid(1), &[b], true)
        .expect("peer add");
    let now = f.now;
    f.nodes[0]
        .lnet
        .peer_ni_set_health(now, &b, 400)
        .expect("set");
    assert_eq!(f.nodes[0].lnet.peer_recovery_queue(), vec![(b, 0)]);
    assert!(f.nodes[0]
        .lnet
        .peer_ni_set_health(now, &Nid::new4(TCP, 99), 1)
        .is_err());
    for _ in 0..60 {
        f.advance(lnet_core::Duration::from_secs(1));
    }
    assert!(
        f.nodes[0].lnet.peer_recovery_queue().is_empty(),
        "pinged back to 1000"
    );
    let first = f.nodes[0].nis[0].0;
    f.nodes[0].lnet.ni_set_health(now, first, 10).expect("set");
    assert_eq!(f.nodes[0].lnet.local_recovery_queue(), vec![(nid(0), 10)]);
}

/// UDSP rules reach NIs added after them (semantics §12): a NID rule, a net
/// rule, and a NID-pair rule whose source names the new NI.
#[test]
fn udsp_rules_apply_to_nis_added_later() {
    use lnet_core::nid::NidDescr;
    use lnet_core::UdspRule;
    let mut f = Fabric::new(2);
    let d = |s: &str| Some(NidDescr::parse(s).expect("descr"));
    let (n7, n9) = (nid(7), nid(9));
    let peer = nid(1);
    let l = &mut f.nodes[0].lnet;
    l.udsp_add(UdspRule::new(d(&n7.to_string()), None, None, Some(4)), None)
        .expect("nid rule");
    l.udsp_add(UdspRule::new(d("tcp"), None, None, Some(2)), None)
        .expect("net rule");
    l.udsp_add(
        UdspRule::new(d(&n7.to_string()), d(&peer.to_string()), None, None),
        None,
    )
    .expect("pair rule");
    let now = f.now;
    // The peer NI exists before the NI the pair rule names: no list yet.
    sink(&mut f, 1);
    puts(&mut f, 1);
    let prefs = |f: &Fabric| {
        f.nodes[0]
            .lnet
            .peer(&peer)
            .and_then(|p| p.peer_nis().next().map(|n| n.pref_nids().to_vec()))
    };
    assert_ne!(prefs(&f), Some(vec![n7]));
    let l = &mut f.nodes[0].lnet;
    let a = l.ni_add(now, TCP, &ni_info(n7, 8, 8)).expect("add");
    let b = l.ni_add(now, TCP, &ni_info(n9, 8, 8)).expect("add");
    let pr = |id| l.ni(id).map(|v| (v.sel_priority(), v.net_priority()));
    assert_eq!(pr(a), Some((4, 2)));
    assert_eq!(pr(b), Some((u32::MAX, 2)));
    assert_eq!(prefs(&f), Some(vec![n7]), "the new NI joined the pair list");
    let l = &mut f.nodes[0].lnet;
    l.udsp_del(None).expect("del all");
    assert_eq!(
        l.ni(a).map(|v| (v.sel_priority(), v.net_priority())),
        Some((u32::MAX, u32::MAX))
    );
}
