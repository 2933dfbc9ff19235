//! Peer discovery on the simulated fabric (semantics §9, lnetctl.md §5.5):
//! the first message to a peer pings it, its NIDs merge into one
//! Multi-Rail peer, our NIDs are pushed back; configured peers and locked
//! primaries keep their NIDs; discovery disabled leaves peers single-rail;
//! a node whose NI set changes pushes the change; an unreachable peer fails
//! the messages parked on it with the discovery error.

use lnet_core::lnd_api::{errno, Nid};
use lnet_core::{AckReq, Duration, Event, EventKind, MdOptions, PeerState, Threshold};
use lnet_tests::sim::{pattern, seed_from_env, Fabric, LinkParams, NiSpec, NodeSpec, TCP1};

const PORTAL: u32 = 21;
const BITS: u64 = 0xd15c;

/// Two nodes with a tcp and a tcp1 NI each.
fn two_dual_rail(seed: u64) -> Fabric {
    let mut f = Fabric::new(seed_from_env(seed));
    f.set_default_link(LinkParams::new().latency(Duration::from_micros(30)));
    for i in 0..2u8 {
        f.add_node(
            NodeSpec::new()
                .ni(NiSpec::tcp([10, 0, 0, 1 + i]))
                .ni(NiSpec::new(TCP1, [10, 1, 0, 1 + i])),
        );
    }
    f
}

fn peer_nids(f: &Fabric, node: usize, nid: Nid) -> Option<(Nid, bool, Vec<Nid>, u32)> {
    f.inspect(node, |l| {
        l.peer(&nid).map(|p| {
            (
                p.primary_nid(),
                p.multi_rail(),
                p.peer_nis().map(|x| x.nid()).collect(),
                p.state(),
            )
        })
    })
}

fn put_one(f: &mut Fabric, from: usize, to: Nid, salt: u8) {
    let (md, _) = f.bind(from, &pattern(64, salt), Threshold::Count(2));
    let target = lnet_core::ProcessId {
        nid: to,
        pid: lnet_core::LNET_PID_LUSTRE,
    };
    f.put(from, md, AckReq::Ack, target, PORTAL, BITS, u64::from(salt))
        .expect("put accepted");
}

fn sink(f: &mut Fabric, node: usize) {
    f.post(
        node,
        PORTAL,
        BITS,
        64,
        MdOptions::OP_PUT | MdOptions::MANAGE_REMOTE,
        Threshold::Infinite,
    );
}

#[test]
fn the_first_put_discovers_the_peer_and_both_sides_learn_both_nids() {
    let mut f = two_dual_rail(61);
    sink(&mut f, 1);
    let (a0, a1, b0, b1) = (f.nid(0, 0), f.nid(0, 1), f.nid(1, 0), f.nid(1, 1));
    put_one(&mut f, 0, b0, 1);
    // Parked on the peer while its ping is out.
    assert_eq!(f.inspect(0, |l| l.peer(&b0).expect("peer").parked()), 1);
    f.settle();
    let acks: Vec<_> = f
        .take_md_events(0)
        .iter()
        .map(|e| (e.kind, e.status))
        .collect();
    assert!(acks.contains(&(EventKind::Ack, 0)), "{acks:?}");
    assert_eq!(f.take_md_events(1).len(), 1);
    let (prim, mr, nids, state) = peer_nids(&f, 0, b1).expect("peer by its other NID");
    assert_eq!((prim, mr, nids), (b0, true, vec![b0, b1]));
    let want = PeerState::MULTI_RAIL | PeerState::DISCOVERED | PeerState::NIDS_UPTODATE;
    assert_eq!(state & want, want, "state {state}");
    assert_eq!(state & PeerState::DISCOVERING, 0);
    // Node 1 learnt node 0 from its push.
    let (prim, mr, nids, _) = peer_nids(&f, 1, a0).expect("node 0 known");
    assert_eq!((prim, mr, nids), (a0, true, vec![a0, a1]));
    // The next PUT leaves at once: no second ping.
    let gets0 = f.link_stats(a0, b0).sent + f.link_stats(a1, b1).sent;
    put_one(&mut f, 0, b0, 2);
    f.settle();
    let gets1 = f.link_stats(a0, b0).sent + f.link_stats(a1, b1).sent;
    assert_eq!(gets1 - gets0, 1, "only the PUT");
}

#[test]
fn discovering_a_second_nid_merges_two_peers_into_one() {
    // lnetctl test 219: pings of nid1 and nid2 of one host make two peers;
    // discovering nid2 merges them.
    let mut f = two_dual_rail(62);
    let (b0, b1) = (f.nid(1, 0), f.nid(1, 1));
    for t in [b0, b1] {
        let target = lnet_core::ProcessId {
            nid: t,
            pid: lnet_core::LNET_PID_LUSTRE,
        };
        f.call(0, |l, now| {
            l.ping(now, target, None, Duration::from_secs(5))
        })
        .expect("ping");
    }
    f.settle();
    assert_eq!(f.inspect(0, |l| l.peers().count()), 2);
    assert_eq!(f.discover(0, b1, false), Ok(b0));
    assert_eq!(f.inspect(0, |l| l.peers().count()), 1);
    let (prim, mr, nids, _) = peer_nids(&f, 0, b0).expect("peer");
    assert_eq!((prim, mr, nids), (b0, true, vec![b0, b1]));
    // Discover again: up to date, answered at once; --force pings again.
    let sent0 = f.total_link_stats().sent;
    assert_eq!(f.discover(0, b0, false), Ok(b0));
    assert_eq!(f.total_link_stats().sent, sent0);
    assert_eq!(f.discover(0, b0, true), Ok(b0));
    assert!(f.total_link_stats().sent >= sent0 + 2, "a ping and a push");
}

#[test]
fn a_configured_peer_keeps_its_nids_and_a_locked_primary_stays() {
    let mut f = two_dual_rail(63);
    let (b0, b1) = (f.nid(1, 0), f.nid(1, 1));
    // Configured with only the tcp1 NID, locked: discovery may not add b0
    // nor make it primary.
    f.call(0, |l, _| l.peer_add_nids(b1, &[], true, true))
        .expect("peer add");
    assert_eq!(f.discover(0, b1, false), Ok(b1));
    let (prim, mr, nids, state) = peer_nids(&f, 0, b1).expect("peer");
    assert_eq!((prim, mr, nids), (b1, true, vec![b1]));
    assert_ne!(state & PeerState::LOCK_PRIMARY, 0);
    assert_ne!(state & PeerState::CONFIGURED, 0);
    // b0 (heard from when node 1 pushes back) is another peer: a NID the
    // configured peer was not given does not join it (§9.5 step 3).
    f.settle();
    let (prim, _, nids, _) = peer_nids(&f, 0, b1).expect("peer");
    assert_eq!((prim, nids), (b1, vec![b1]));
    if let Some((prim, _, _, state)) = peer_nids(&f, 0, b0) {
        assert_eq!(prim, b0);
        assert_eq!(state & PeerState::CONFIGURED, 0);
    }
}

#[test]
fn with_discovery_disabled_one_ping_and_the_peer_stays_single_rail() {
    let mut f = two_dual_rail(64);
    f.call(0, |l, _| {
        let mut t = l.tunables().clone();
        t.peer_discovery_disabled = true;
        l.set_tunables(t)
    })
    .expect("tunables");
    sink(&mut f, 1);
    let (a0, b0) = (f.nid(0, 0), f.nid(1, 0));
    put_one(&mut f, 0, b0, 1);
    f.settle();
    assert_eq!(f.take_md_events(1).len(), 1, "the PUT went after one ping");
    let (_, mr, nids, state) = peer_nids(&f, 0, b0).expect("peer");
    assert_eq!((mr, nids), (false, vec![b0]));
    assert_ne!(state & PeerState::NO_DISCOVERY, 0);
    // Node 1 discovers node 0: node 0 advertises no discovery, so it is
    // not Multi-Rail there (lnetctl.md §5.5).
    assert_eq!(f.discover(1, a0, false), Ok(a0));
    let (_, mr, nids, _) = peer_nids(&f, 1, a0).expect("peer");
    assert_eq!((mr, nids), (false, vec![a0]));
}

#[test]
fn a_node_that_loses_an_ni_pushes_the_change_to_its_peers() {
    let mut f = two_dual_rail(65);
    let (b0, b1) = (f.nid(1, 0), f.nid(1, 1));
    assert_eq!(f.discover(0, b0, false), Ok(b0));
    f.settle();
    assert_eq!(peer_nids(&f, 0, b0).expect("peer").2, vec![b0, b1]);
    // lnetctl net del on node 1: its ping buffer changes, node 0 is told.
    f.del_ni(1, 1).expect("del ni");
    f.settle();
    assert_eq!(peer_nids(&f, 0, b0).expect("peer").2, vec![b0]);
    assert!(peer_nids(&f, 0, b1).is_none());
}

#[test]
fn a_node_that_adds_an_ni_pushes_the_change_to_its_peers() {
    let mut f = Fabric::new(seed_from_env(69));
    f.set_default_link(LinkParams::new().latency(Duration::from_micros(30)));
    f.add_node(
        NodeSpec::new()
            .ni(NiSpec::tcp([10, 0, 0, 1]))
            .ni(NiSpec::new(TCP1, [10, 1, 0, 1])),
    );
    f.add_node(NodeSpec::new().ni(NiSpec::tcp([10, 0, 0, 2])));
    let b0 = f.nid(1, 0);
    assert_eq!(f.discover(0, b0, false), Ok(b0));
    f.settle();
    assert_eq!(peer_nids(&f, 0, b0).expect("peer").2, vec![b0]);
    let seq0 = f.inspect(1, |l| l.ping_info().expect("ping buffer").seq);
    // lnetctl net add on node 1: its ping buffer gets a new sequence
    // number and node 0 is pushed it at once, without asking (the push
    // leaves from the NID node 0 knows, not from the new one).
    let t0 = f.now();
    let sent0 = f.total_link_stats().sent;
    let k = f
        .add_ni(1, NiSpec::new(TCP1, [10, 1, 0, 2]))
        .expect("net add");
    let b1 = f.nid(1, k);
    f.settle();
    assert!(f.inspect(1, |l| l.ping_info().expect("ping buffer").seq) > seq0);
    assert!(f.total_link_stats().sent > sent0, "a push went out");
    let (prim, mr, nids, _) = peer_nids(&f, 0, b0).expect("peer");
    assert_eq!((prim, mr, nids), (b0, true, vec![b0, b1]));
    assert_eq!(peer_nids(&f, 0, b1).expect("same peer").0, b0);
    assert!(
        f.now().since(t0) < Duration::from_secs(5),
        "no timeout on the way"
    );
}

#[test]
fn an_unreachable_peer_fails_its_parked_messages_with_the_discovery_error() {
    let mut f = Fabric::new(seed_from_env(66));
    for i in 0..2u8 {
        f.add_node(NodeSpec::new().ni(NiSpec::tcp([10, 0, 0, 1 + i]).timeout(5)));
    }
    f.partition(&[0], &[1], f.now(), None);
    let t0 = f.now();
    let b0 = f.nid(1, 0);
    put_one(&mut f, 0, b0, 1);
    put_one(&mut f, 0, b0, 2);
    f.settle();
    let evs = f.take_md_events(0);
    let sends: Vec<_> = evs
        .iter()
        .filter(|e| e.kind == EventKind::Send)
        .map(|e| (e.hdr_data, e.status))
        .collect();
    assert_eq!(
        sends,
        vec![(1, -errno::ETIMEDOUT), (2, -errno::ETIMEDOUT)],
        "{evs:?}"
    );
    // Then the MDs waiting for their ACKs are unlinked.
    assert_eq!(evs.len(), 4, "{evs:?}");
    let (_, _, _, state) = peer_nids(&f, 0, b0).expect("peer");
    assert_ne!(state & PeerState::REDISCOVER, 0, "state {state}");
    assert_eq!(state & PeerState::DISCOVERING, 0);
    let err = f.inspect(0, |l| l.peer(&b0).expect("peer").discovery_error());
    assert_eq!(err, -errno::ETIMEDOUT);
    assert!(f.now().since(t0) <= Duration::from_secs(151));
    // `discover` reports the same error.
    assert_eq!(f.discover(0, b0, false), Err(-errno::ETIMEDOUT));
    let evs = f.take_events(0);
    assert!(
        !evs.iter().any(|e| matches!(e, Event::PingDone { .. })),
        "discovery pings are not the application's"
    );
}

fn set_discovery(f: &mut Fabric, node: usize, disabled: bool) {
    f.call(node, |l, now| {
        let mut t = l.tunables().clone();
        t.peer_discovery_disabled = disabled;
        l.set_tunables(t)?;
        // The toggle's pushes leave now.
        l.handle_timeout(now);
        Ok::<_, lnet_core::NiError>(())
    })
    .expect("tunables");
}

#[test]
fn a_peer_that_disables_discovery_is_deleted_and_recreated_single_rail() {
    // MARK_DELETION (§9.3, §9.4): node 1 was discovered Multi-Rail with both
    // NIDs; it turns discovery off and pushes that to node 0, which drops
    // the peer and every NID discovery merged into it, and makes a fresh
    // peer for the primary. Nothing waiting is lost.
    let mut f = two_dual_rail(67);
    sink(&mut f, 1);
    let (b0, b1) = (f.nid(1, 0), f.nid(1, 1));
    assert_eq!(f.discover(0, b0, false), Ok(b0));
    f.settle();
    let (prim, mr, nids, _) = peer_nids(&f, 0, b0).expect("peer");
    assert_eq!((prim, mr, nids), (b0, true, vec![b0, b1]));
    set_discovery(&mut f, 1, true);
    f.settle();
    let (prim, mr, nids, state) = peer_nids(&f, 0, b0).expect("re-created peer");
    assert_eq!((prim, mr, nids), (b0, false, vec![b0]), "state {state:#x}");
    assert_ne!(state & PeerState::NO_DISCOVERY, 0);
    assert_eq!(
        state & (PeerState::MARK_DELETION | PeerState::MARK_DELETED),
        0
    );
    assert!(peer_nids(&f, 0, b1).is_none(), "{b1} was not left behind");
    assert_eq!(f.inspect(0, |l| l.peers().count()), 1);
    // Traffic to it still flows, once, on the single-rail peer.
    put_one(&mut f, 0, b0, 3);
    f.settle();
    assert_eq!(f.take_md_events(1).len(), 1);
    // And it stays stable: no deletion loop.
    let sent = f.total_link_stats().sent;
    f.run_for(Duration::from_secs(30));
    assert_eq!(f.total_link_stats().sent, sent);
    assert!(f.hanging().is_empty(), "{:?}", f.hanging());
}

#[test]
fn a_discovered_peer_pinged_after_discovery_is_disabled_here_loses_its_merged_nids() {
    // The ping-reply side of MARK_DELETION (§9.4): discovery turned off
    // locally; a forced discover of the Multi-Rail peer deletes it and the
    // fresh peer is single-rail, its other NID gone, and the discover
    // caller gets its answer.
    let mut f = two_dual_rail(68);
    let (b0, b1) = (f.nid(1, 0), f.nid(1, 1));
    assert_eq!(f.discover(0, b0, false), Ok(b0));
    f.settle();
    assert_eq!(peer_nids(&f, 0, b0).expect("peer").2, vec![b0, b1]);
    set_discovery(&mut f, 0, true);
    f.settle();
    assert_eq!(f.discover(0, b0, true), Ok(b0));
    f.settle();
    let (prim, mr, nids, state) = peer_nids(&f, 0, b0).expect("peer");
    assert_eq!((prim, mr, nids), (b0, false, vec![b0]), "state {state:#x}");
    assert!(peer_nids(&f, 0, b1).is_none());
}

#[test]
fn a_peer_behind_a_router_is_discovered_through_the_route() {
    // client 10.0.0.1@tcp — router (tcp, tcp1) — server with two tcp1 NIDs.
    // The first PUT to the server parks on it while its ping crosses the
    // router (§9.2); the reply's NIDs merge into one Multi-Rail peer, and
    // the push goes back the same way.
    let mut f = Fabric::new(seed_from_env(69));
    f.set_default_link(LinkParams::new().latency(Duration::from_micros(30)));
    let c = f.add_node(NodeSpec::new().ni(NiSpec::tcp([10, 0, 0, 1])));
    let r = f.add_node(
        NodeSpec::new()
            .ni(NiSpec::tcp([10, 0, 0, 2]))
            .ni(NiSpec::new(TCP1, [10, 1, 0, 2])),
    );
    let s = f.add_node(
        NodeSpec::new()
            .ni(NiSpec::new(TCP1, [10, 1, 0, 3]))
            .ni(NiSpec::new(TCP1, [10, 1, 0, 4])),
    );
    let mut cfg = lnet_core::RouterConfig::default();
    cfg.alive_router_check_interval = 0;
    for n in [c, r, s] {
        let cfg = cfg.clone();
        f.call(n, |l, now| l.set_router_config(now, cfg));
    }
    f.call(r, |l, now| l.set_routing(now, true, true));
    let (rc, rs) = (f.nid(r, 0), f.nid(r, 1));
    let tcp = f.nid(c, 0).net();
    let (s1, s2, a) = (f.nid(s, 0), f.nid(s, 1), f.nid(c, 0));
    f.call(c, |l, now| l.route_add(now, s1.net(), rc, None, 0, None))
        .expect("route");
    f.call(s, |l, now| l.route_add(now, tcp, rs, None, 0, None))
        .expect("route");
    sink(&mut f, s);
    put_one(&mut f, c, s1, 1);
    assert_eq!(f.inspect(c, |l| l.peer(&s1).expect("peer").parked()), 1);
    f.settle();
    assert_eq!(f.take_md_events(s).len(), 1, "the PUT arrived once");
    let (prim, mr, nids, state) = peer_nids(&f, c, s2).expect("peer by its other NID");
    assert_eq!((prim, mr, nids), (s1, true, vec![s1, s2]));
    let want = PeerState::MULTI_RAIL | PeerState::DISCOVERED | PeerState::NIDS_UPTODATE;
    assert_eq!(state & want, want, "state {state:#x}");
    // The push crossed the router too; the server takes a push only from
    // a peer it knows (§9.4), and a routed initiator is not one until the
    // server sends to it, so it was acknowledged and dropped.
    assert!(peer_nids(&f, s, a).is_none());
    // Ping, reply, push and ACK crossed the router, then the PUT and ACK.
    assert!(f.inspect(r, |l| l.stats().route_count) >= 6);
    // Later PUTs go without discovery.
    let routed = f.inspect(r, |l| l.stats().route_count);
    put_one(&mut f, c, s1, 2);
    f.settle();
    assert_eq!(
        f.inspect(r, |l| l.stats().route_count) - routed,
        2,
        "PUT and ACK only"
    );
}

/// §9.7: a change of our NIs is pushed to every Multi-Rail peer whose
/// acknowledged sequence number is behind, including one that never
/// acknowledged a push (its first push, at discovery, was lost).
#[test]
fn a_peer_that_lost_our_first_push_still_gets_the_next_change() {
    let mut f = Fabric::new(seed_from_env(71));
    f.set_default_link(LinkParams::new().latency(Duration::from_micros(30)));
    f.add_node(NodeSpec::new().ni(NiSpec::tcp([10, 0, 0, 1])));
    f.add_node(NodeSpec::new().ni(NiSpec::tcp([10, 0, 0, 2]).fault()));
    let (a0, b0) = (f.nid(0, 0), f.nid(1, 0));
    // Node 1 drops every PUT to the reserved portal: node 0's push.
    f.fault(1)
        .control(
            "drop_add",
            "src=<?> dst=<?> rate=1 msg_mask=2 portal_mask=1",
        )
        .expect("drop rule");
    let _ = f.discover(0, b0, false);
    f.settle();
    let dropped = f.fault(1).control("drop_show", "").expect("list");
    assert!(dropped.contains("ds_dropped: 1\n"), "{dropped}");
    assert!(
        peer_nids(&f, 1, a0).is_none_or(|(_, _, nids, _)| nids == vec![a0]),
        "node 1 has heard nothing of node 0's NIs yet"
    );
    f.fault(1).control("drop_del", "all").expect("del");
    // lnetctl net add on node 0: node 1 is pushed the new buffer.
    let k = f
        .add_ni(0, NiSpec::new(TCP1, [10, 1, 0, 1]))
        .expect("net add");
    let a1 = f.nid(0, k);
    f.settle();
    let (prim, mr, nids, _) = peer_nids(&f, 1, a0).expect("node 1 knows node 0");
    assert_eq!((prim, mr, nids), (a0, true, vec![a0, a1]));
}
