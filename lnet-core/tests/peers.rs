//! Configured peers (`lnetctl peer add|del|set`, lnetctl.md §2.6, semantics
//! §9.6): creation, modification, the refusals and their errnos, deletion of
//! NIDs or of the whole peer, locked primaries, the state bits of `peer show
//! -v 3` (lnetctl.md §5.4).

mod pump;

use lnet_core::lnd_api::{errno, NetId, Nid};
use lnet_core::{PeerError, PeerState};
use pump::*;

fn n(last: u8) -> Nid {
    Nid::new4(TCP, 0x0400_0000 | u32::from(last))
}

fn o2ib(last: u8) -> Nid {
    Nid::new4(NetId::new(5, 0), 0x0d00_0000 | u32::from(last))
}

fn listing(f: &Fabric) -> Vec<(Nid, bool, Vec<Nid>)> {
    f.nodes[0]
        .lnet
        .peers()
        .map(|p| {
            (
                p.primary_nid(),
                p.multi_rail(),
                p.peer_nis().map(|x| x.nid()).collect(),
            )
        })
        .collect()
}

#[test]
fn add_with_lock_prim_sets_configured_multi_rail_and_lock_bits() {
    let mut f = Fabric::new(1);
    let l = &mut f.nodes[0].lnet;
    l.peer_add_nids(n(1), &[], true, true).expect("add");
    let p = l.peer(&n(1)).expect("peer");
    assert_eq!(
        p.state(),
        1_048_585,
        "MULTI_RAIL | CONFIGURED | LOCK_PRIMARY"
    );
    assert!(p.lock_prim() && p.configured());
    // Without --lock_prim: MULTI_RAIL | CONFIGURED.
    l.peer_add_nids(n(2), &[], true, false).expect("add");
    assert_eq!(l.peer(&n(2)).expect("peer").state(), 9);
    // --non_mr: CONFIGURED only.
    l.peer_add_nids(n(3), &[], false, false).expect("add");
    assert_eq!(l.peer(&n(3)).expect("peer").state(), 8);
}

#[test]
fn a_second_add_modifies_the_peer_and_keeps_the_nid_order() {
    let mut f = Fabric::new(1);
    let l = &mut f.nodes[0].lnet;
    // Primary 4.4.4.4, then a range that includes it: accepted silently.
    l.peer_add_nids(n(4), &[], true, false).expect("add");
    l.peer_add_nids(n(4), &[n(1), n(2), n(3), n(4)], true, false)
        .expect("modify");
    // Another net: the primary's net stays first (lnetctl.md §5.2).
    l.peer_add_nids(n(4), &[o2ib(13), n(9)], true, false)
        .expect("modify");
    assert_eq!(
        listing(&f),
        vec![(n(4), true, vec![n(4), n(1), n(2), n(3), n(9), o2ib(13)])]
    );
}

#[test]
fn refusals_name_the_conflict_and_change_nothing() {
    let mut f = Fabric::new(1);
    let l = &mut f.nodes[0].lnet;
    l.peer_add_nids(n(1), &[n(2)], true, false).expect("add");
    let before = listing(&f);
    let l = &mut f.nodes[0].lnet;
    // The primary is a secondary NID of a configured peer.
    let e = l
        .peer_add_nids(n(2), &[], true, false)
        .expect_err("n2 taken");
    assert_eq!(
        e,
        PeerError::NidInUse {
            nid: n(2),
            owner: n(1)
        }
    );
    assert_eq!(e.errno(), errno::EEXIST);
    // A NID configured in another peer; the new primary is not left behind.
    let e = l
        .peer_add_nids(n(5), &[n(6), n(2)], true, false)
        .expect_err("n2 taken");
    assert_eq!(e.errno(), errno::EEXIST);
    assert!(l.peer(&n(5)).is_none() && l.peer(&n(6)).is_none());
    // Multi-Rail flag mismatch.
    let e = l
        .peer_add_nids(n(1), &[n(7)], false, false)
        .expect_err("mr");
    assert_eq!(e.errno(), errno::EPERM);
    // A single-rail peer takes only its primary.
    let e = l
        .peer_add_nids(n(8), &[n(9)], false, false)
        .expect_err("non-mr");
    assert_eq!(e.errno(), errno::EPERM);
    // Our own NID, 0@lo, LNET_NID_ANY.
    for bad in [nid(0), Nid::LO_0, Nid::ANY] {
        let e = l.peer_add_nids(bad, &[], true, false).expect_err("bad");
        assert_eq!(e, PeerError::BadNid(bad));
        assert_eq!(e.errno(), errno::EINVAL);
    }
    assert!(e_text_names_the_fix());
    assert_eq!(listing(&f), before);
}

fn e_text_names_the_fix() -> bool {
    let e = PeerError::MultiRail {
        primary: n(1),
        multi_rail: true,
    };
    e.to_string().contains("delete it first")
}

#[test]
fn a_nid_of_a_peer_made_by_traffic_moves_into_the_configured_peer() {
    let mut f = Fabric::new(2);
    // Node 1 hears from node 0: a single-NID peer nid(0) exists there.
    let now = f.now;
    f.nodes[0]
        .lnet
        .ping(now, pid(1), None, lnet_core::Duration::from_secs(5))
        .expect("ping");
    f.run();
    assert_eq!(f.nodes[1].lnet.peers().count(), 1);
    f.nodes[1]
        .lnet
        .peer_add_nids(n(50), &[nid(0)], true, false)
        .expect("absorb");
    let peers: Vec<Nid> = f.nodes[1].lnet.peers().map(|p| p.primary_nid()).collect();
    assert_eq!(peers, vec![n(50)], "the traffic peer went");
    assert_eq!(
        f.nodes[1].lnet.peer(&nid(0)).expect("peer").primary_nid(),
        n(50)
    );
}

#[test]
fn del_by_nid_by_peer_and_the_errors() {
    let mut f = Fabric::new(1);
    let now = f.now;
    let l = &mut f.nodes[0].lnet;
    l.peer_add_nids(n(1), &[n(2), n(3), n(4)], true, false)
        .expect("add");
    // Not the primary: ENODEV; unknown: ENOENT.
    let e = l
        .peer_del_nids(now, n(2), &[], false)
        .expect_err("not prim");
    assert_eq!(
        e,
        PeerError::NotPrimary {
            nid: n(2),
            primary: n(1)
        }
    );
    assert_eq!(e.errno(), errno::ENODEV);
    let e = l
        .peer_del_nids(now, n(99), &[], false)
        .expect_err("unknown");
    assert_eq!(e.errno(), errno::ENOENT);
    // A NID that is not in the peer.
    let e = l
        .peer_del_nids(now, n(1), &[n(98)], false)
        .expect_err("not in peer");
    assert_eq!(e, PeerError::Unknown(n(98)));
    // Some NIDs.
    l.peer_del_nids(now, n(1), &[n(3)], false).expect("del n3");
    assert_eq!(listing(&f), vec![(n(1), true, vec![n(1), n(2), n(4)])]);
    // The primary in the list: the whole peer, later NIDs not processed.
    let l = &mut f.nodes[0].lnet;
    l.peer_del_nids(now, n(1), &[n(2), n(1), n(4)], false)
        .expect("del all");
    assert!(listing(&f).is_empty());
}

#[test]
fn a_locked_primary_survives_del_without_force() {
    let mut f = Fabric::new(1);
    let now = f.now;
    let l = &mut f.nodes[0].lnet;
    l.peer_add_nids(n(1), &[n(2), n(3)], true, true)
        .expect("add");
    l.peer_del_nids(now, n(1), &[], false).expect("del");
    assert_eq!(listing(&f), vec![(n(1), true, vec![n(1)])]);
    let l = &mut f.nodes[0].lnet;
    l.peer_del_nids(now, n(1), &[], true).expect("del --force");
    assert!(listing(&f).is_empty());
}

#[test]
fn messages_waiting_on_a_deleted_peer_ni_take_another_nid() {
    let mut f = Fabric::with_credits(2, 256, 1);
    let other = Nid::new4(TCP, 0x0a00_0102);
    f.add_ni(1, other);
    f.nodes[0]
        .lnet
        .peer_add_nids(nid(1), &[other], true, false)
        .expect("add");
    f.discover(0, 1);
    let me = f.nodes[1]
        .lnet
        .me_attach(
            3,
            lnet_core::ProcessId::ANY,
            1,
            0,
            lnet_core::Unlink::Retain,
            lnet_core::InsPos::After,
        )
        .expect("me");
    f.nodes[1]
        .lnet
        .md_attach(
            me,
            lnet_core::MdSpec::new(
                lnet_core::lnd_api::Payload::single(lnet_core::lnd_api::IoBuf::zeroed(64)),
                lnet_core::MdOptions::OP_PUT,
                lnet_core::Threshold::Infinite,
            ),
            lnet_core::Unlink::Retain,
        )
        .expect("md");
    f.hold = true;
    for _ in 0..4 {
        let md = f.nodes[0]
            .lnet
            .md_bind(
                lnet_core::MdSpec::new(
                    lnet_core::lnd_api::Payload::single(lnet_core::lnd_api::IoBuf::zeroed(8)),
                    lnet_core::MdOptions::NONE,
                    lnet_core::Threshold::Count(1),
                ),
                lnet_core::Unlink::Unlink,
            )
            .expect("bind");
        let now = f.now;
        f.nodes[0]
            .lnet
            .put(now, None, md, lnet_core::AckReq::NoAck, pid(1), 3, 1, 0, 0)
            .expect("put");
    }
    f.run();
    // One credit per peer NI: two at the LND, two waiting.
    assert_eq!(f.held(), 2);
    let now = f.now;
    f.nodes[0]
        .lnet
        .peer_del_nids(now, nid(1), &[other], false)
        .expect("del other");
    f.release();
    let evs = f.md_events(0);
    assert_eq!(evs.len(), 4, "{evs:?}");
    assert!(evs.iter().all(|e| e.status == 0), "{evs:?}");
    assert_eq!(f.md_events(1).len(), 4, "all four landed");
}

#[test]
fn peer_set_health_and_state() {
    let mut f = Fabric::new(1);
    let now = f.now;
    let l = &mut f.nodes[0].lnet;
    l.peer_add_nids(n(1), &[n(2)], true, false).expect("add");
    l.peer_add_nids(n(5), &[], true, false).expect("add");
    l.peer_set_health_all(now, 300);
    assert!(l
        .peers()
        .flat_map(|p| p.peer_nis().map(|x| x.health_value()).collect::<Vec<_>>())
        .all(|h| h == 300));
    assert_eq!(l.peer_recovery_queue().len(), 3);
    l.peer_set_state(&n(2), 1_048_577).expect("state");
    let p = l.peer(&n(1)).expect("peer");
    assert_eq!(p.state(), 1_048_577);
    assert!(p.lock_prim() && p.multi_rail() && !p.configured());
    assert_eq!(l.peer_set_state(&n(77), 1), Err(PeerError::Unknown(n(77))));
    let p = l.peer(&n(1)).expect("peer");
    assert_ne!(p.state() & PeerState::LOCK_PRIMARY, 0);
}
