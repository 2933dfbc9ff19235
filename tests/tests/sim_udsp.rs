//! UDSP rules steering traffic on the simulated fabric (issue 16 item 5,
//! semantics §12): local NI and local net priority, peer NI and peer net
//! priority, NID-pair preferences, preferred gateways; rule order (the
//! lowest index wins), insertion at an index, rules given before the peer
//! exists, and deletion bringing back the default spread. Each scenario
//! sends PUTs and counts, per NI or per link, what carried them.

use lnet_core::lnd_api::{NetId, Nid};
use lnet_core::nid::NidDescr;
use lnet_core::{
    AckReq, Duration, EventKind, MdOptions, RouterConfig, Threshold, UdspAdded, UdspError, UdspRule,
};
use lnet_tests::sim::{pattern, seed_from_env, Fabric, LinkParams, NiSpec, NodeSpec, TCP, TCP1};

const PORTAL: u32 = 21;
const BITS: u64 = 0x7d5;
const N: usize = 16;
const LEN: usize = 1024;

fn d(s: &str) -> Option<NidDescr> {
    Some(NidDescr::parse(s).unwrap_or_else(|e| panic!("{s}: {e}")))
}

fn rule(src: &str, dst: &str, rte: &str, prio: Option<u32>) -> UdspRule {
    let o = |s: &str| if s.is_empty() { None } else { d(s) };
    UdspRule::new(o(src), o(dst), o(rte), prio)
}

fn add(f: &mut Fabric, node: usize, r: UdspRule, idx: Option<u32>) -> UdspAdded {
    f.call(node, |l, _| l.udsp_add(r, idx)).expect("udsp add")
}

fn del(f: &mut Fabric, node: usize, idx: Option<u32>) {
    f.call(node, |l, _| l.udsp_del(idx)).expect("udsp del");
}

/// Two nodes with two NIs each: on one net (`tcp`, .1/.3 and .2/.4) or on
/// two (`tcp` and `tcp1`). Node 0 knows node 1 as one Multi-Rail peer.
fn pair(seed: u64, two_nets: bool) -> Fabric {
    let mut f = Fabric::new(seed_from_env(seed));
    f.set_default_link(LinkParams::new().latency(Duration::from_micros(20)));
    let second = |a: [u8; 4]| {
        if two_nets {
            NiSpec::new(TCP1, [a[0], 1, a[2], a[3]])
        } else {
            NiSpec::tcp([a[0], a[1], a[2], a[3] + 2])
        }
    };
    for host in [1u8, 2] {
        f.add_node(
            NodeSpec::new()
                .ni(NiSpec::tcp([10, 0, 0, host]))
                .ni(second([10, 0, 0, host])),
        );
    }
    f
}

/// Makes node 1 a Multi-Rail peer of node 0 with both its NIDs, discovered,
/// then zeroes the counters so the scenarios count their own PUTs.
fn know_peer(f: &mut Fabric) {
    let (prim, other) = (f.nid(1, 0), f.nid(1, 1));
    f.call(0, |l, _| l.peer_add(prim, &[other], true))
        .expect("peer add");
    assert_eq!(f.discover(0, prim, false), Ok(prim));
    f.settle();
    reset(f);
}

fn reset(f: &mut Fabric) {
    for n in 0..f.node_count() {
        f.call(n, |l, _| l.stats_reset());
    }
    f.reset_link_stats();
}

/// Node `from` sends `N` PUTs to `to`; all land, intact, acknowledged.
fn send(f: &mut Fabric, from: usize, to: usize) {
    let (_, sink) = f.post(
        to,
        PORTAL,
        BITS,
        N * LEN,
        MdOptions::OP_PUT,
        Threshold::Count(N as u32),
    );
    for i in 0..N {
        let (md, _) = f.bind(from, &pattern(LEN, i as u8), Threshold::Count(2));
        f.put(from, md, AckReq::Ack, f.pid(to), PORTAL, BITS, i as u64)
            .expect("put accepted");
    }
    f.settle();
    let evs = f.take_md_events(to);
    assert_eq!(evs.len(), N, "every PUT landed");
    let got = sink.to_vec().expect("free");
    for e in &evs {
        assert_eq!(e.status, 0);
        let off = e.offset as usize;
        assert_eq!(&got[off..off + LEN], &pattern(LEN, e.hdr_data as u8)[..]);
    }
    let acks = f
        .take_md_events(from)
        .iter()
        .filter(|e| e.kind == EventKind::Ack && e.status == 0)
        .count();
    assert_eq!(acks, N, "every PUT acknowledged");
}

/// PUTs sent by each of node `n`'s two NIs.
fn sent(f: &Fabric, n: usize) -> [u64; 2] {
    [0, 1].map(|k| {
        let ni = f.ni(n, k);
        f.inspect(n, |l| l.ni(ni).expect("ni").stats().sent.put)
    })
}

/// PUTs received by each of node `n`'s two NIs.
fn received(f: &Fabric, n: usize) -> [u64; 2] {
    [0, 1].map(|k| {
        let ni = f.ni(n, k);
        f.inspect(n, |l| l.ni(ni).expect("ni").stats().received.put)
    })
}

fn spread(c: [u64; 2]) -> bool {
    c[0] > 0 && c[1] > 0 && c[0] + c[1] == N as u64
}

#[test]
fn local_ni_priority_picks_the_sending_ni_and_deletion_restores_round_robin() {
    let mut f = pair(1601, false);
    know_peer(&mut f);
    send(&mut f, 0, 1);
    assert!(spread(sent(&f, 0)), "default: both NIs, {:?}", sent(&f, 0));
    // `udsp add --src 10.0.0.3@tcp --priority 0`
    assert_eq!(
        add(&mut f, 0, rule("10.0.0.3@tcp", "", "", Some(0)), None),
        UdspAdded::Inserted(0)
    );
    let ni1 = f.ni(0, 1);
    assert_eq!(
        f.inspect(0, |l| l
            .ni(ni1)
            .map(|n| (n.sel_priority(), n.net_priority()))),
        Some((0, u32::MAX))
    );
    reset(&mut f);
    send(&mut f, 0, 1);
    assert_eq!(sent(&f, 0), [0, N as u64], "only 10.0.0.3@tcp sends");
    // The peer still spreads what it receives over both of its NIs.
    assert!(spread(received(&f, 1)), "{:?}", received(&f, 1));
    del(&mut f, 0, Some(0));
    assert_eq!(
        f.inspect(0, |l| l.ni(ni1).map(|n| n.sel_priority())),
        Some(u32::MAX)
    );
    reset(&mut f);
    send(&mut f, 0, 1);
    assert!(spread(sent(&f, 0)), "after del: {:?}", sent(&f, 0));
}

#[test]
fn the_lowest_index_wins_and_idx_inserts_before() {
    let mut f = pair(1602, false);
    know_peer(&mut f);
    // 0: 10.0.0.1 gets 1; 1: every 10.0.0.* gets 0 — rule 0 wins for .1,
    // so .3 (priority 0) carries everything.
    add(&mut f, 0, rule("10.0.0.1@tcp", "", "", Some(1)), None);
    add(&mut f, 0, rule("10.0.0.*@tcp", "", "", Some(0)), None);
    send(&mut f, 0, 1);
    assert_eq!(sent(&f, 0), [0, N as u64]);
    // Inserted at index 0: .3 gets 7, worse than .1's 1.
    assert_eq!(
        add(&mut f, 0, rule("10.0.0.3@tcp", "", "", Some(7)), Some(0)),
        UdspAdded::Inserted(0)
    );
    let order: Vec<Option<u32>> = f.inspect(0, |l| l.udsp_rules().map(|r| r.priority).collect());
    assert_eq!(order, [Some(7), Some(1), Some(0)]);
    reset(&mut f);
    send(&mut f, 0, 1);
    assert_eq!(sent(&f, 0), [N as u64, 0]);
    // The same descriptors again: a new priority updates the rule in place,
    // the same one is refused (EALREADY).
    assert_eq!(
        add(&mut f, 0, rule("10.0.0.3@tcp", "", "", Some(0)), None),
        UdspAdded::Updated(0)
    );
    let again = f.call(0, |l, _| {
        l.udsp_add(rule("10.0.0.3@tcp", "", "", Some(0)), None)
    });
    assert_eq!(again, Err(UdspError::Exists(0)));
    assert_eq!(again.map_err(|e| e.errno()), Err(114));
    reset(&mut f);
    send(&mut f, 0, 1);
    assert_eq!(sent(&f, 0), [0, N as u64]);
    // `udsp del --all`: back to both.
    del(&mut f, 0, None);
    assert_eq!(f.inspect(0, |l| l.udsp_rules().count()), 0);
    reset(&mut f);
    send(&mut f, 0, 1);
    assert!(spread(sent(&f, 0)), "{:?}", sent(&f, 0));
}

#[test]
fn local_net_priority_picks_the_net() {
    let mut f = pair(1603, true);
    know_peer(&mut f);
    send(&mut f, 0, 1);
    assert!(spread(sent(&f, 0)), "default: both nets, {:?}", sent(&f, 0));
    // `udsp add --src tcp1 --priority 0`: a net rule.
    add(&mut f, 0, rule("tcp1", "", "", Some(0)), None);
    let ni1 = f.ni(0, 1);
    assert_eq!(
        f.inspect(0, |l| l
            .ni(ni1)
            .map(|n| (n.net_priority(), n.sel_priority()))),
        Some((0, u32::MAX)),
        "a net rule sets the net's priority, not the NI's"
    );
    reset(&mut f);
    send(&mut f, 0, 1);
    assert_eq!(sent(&f, 0), [0, N as u64], "only tcp1 sends");
    assert_eq!(received(&f, 1), [0, N as u64]);
    del(&mut f, 0, Some(0));
    reset(&mut f);
    send(&mut f, 0, 1);
    assert!(spread(sent(&f, 0)), "after del: {:?}", sent(&f, 0));
}

#[test]
fn peer_ni_priority_given_before_the_peer_exists_picks_the_target_nid() {
    let mut f = pair(1604, false);
    // The rule comes first; the peer NIs are created by `peer add` after.
    add(&mut f, 0, rule("", "10.0.0.4@tcp", "", Some(0)), None);
    know_peer(&mut f);
    let b1 = f.nid(1, 1);
    let prio = f.inspect(0, |l| {
        l.peer(&b1)
            .and_then(|p| p.peer_nis().find(|n| n.nid() == b1))
            .map(|n| (n.sel_priority(), n.net_priority()))
    });
    assert_eq!(prio, Some((0, u32::MAX)));
    send(&mut f, 0, 1);
    assert_eq!(received(&f, 1), [0, N as u64], "all to 10.0.0.4@tcp");
    assert!(spread(sent(&f, 0)), "both local NIs still send");
    del(&mut f, 0, Some(0));
    reset(&mut f);
    send(&mut f, 0, 1);
    assert!(spread(received(&f, 1)), "after del: {:?}", received(&f, 1));
}

#[test]
fn peer_net_priority_picks_the_peer_net() {
    let mut f = pair(1605, true);
    know_peer(&mut f);
    // `udsp add --dst tcp1 --priority 0`.
    add(&mut f, 0, rule("", "tcp1", "", Some(0)), None);
    let b1 = f.nid(1, 1);
    let prio = f.inspect(0, |l| {
        l.peer(&b1)
            .and_then(|p| p.peer_nis().find(|n| n.nid() == b1))
            .map(|n| (n.net_priority(), n.sel_priority()))
    });
    assert_eq!(prio, Some((0, u32::MAX)));
    send(&mut f, 0, 1);
    assert_eq!(received(&f, 1), [0, N as u64], "all over tcp1");
    assert_eq!(sent(&f, 0), [0, N as u64]);
    del(&mut f, 0, Some(0));
    reset(&mut f);
    send(&mut f, 0, 1);
    assert!(spread(received(&f, 1)), "after del: {:?}", received(&f, 1));
}

#[test]
fn nid_pair_rules_cross_the_rails() {
    let mut f = pair(1606, false);
    know_peer(&mut f);
    let (a0, a1, b0, b1) = (f.nid(0, 0), f.nid(0, 1), f.nid(1, 0), f.nid(1, 1));
    let delivered = |f: &Fabric, a: Nid, b: Nid| f.link_stats(a, b).delivered;
    send(&mut f, 0, 1);
    // Default pairing (round robin on both sides): straight.
    assert_eq!(delivered(&f, a0, b1) + delivered(&f, a1, b0), 0);
    // `udsp add --dst 10.0.0.2@tcp --src 10.0.0.3@tcp` and the mirror.
    add(
        &mut f,
        0,
        rule("10.0.0.3@tcp", "10.0.0.2@tcp", "", None),
        None,
    );
    add(
        &mut f,
        0,
        rule("10.0.0.1@tcp", "10.0.0.4@tcp", "", None),
        None,
    );
    let prefs = f.inspect(0, |l| {
        l.peer(&b0)
            .map(|p| {
                p.peer_nis()
                    .map(|n| (n.nid(), n.pref_nids().to_vec(), n.pref_nids_from_udsp()))
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default()
    });
    assert_eq!(prefs, [(b0, vec![a1], true), (b1, vec![a0], true)]);
    reset(&mut f);
    send(&mut f, 0, 1);
    assert_eq!(delivered(&f, a0, b0) + delivered(&f, a1, b1), 0, "crossed");
    assert_eq!(delivered(&f, a0, b1) + delivered(&f, a1, b0), N as u64);
    assert!(delivered(&f, a0, b1) > 0 && delivered(&f, a1, b0) > 0);
    del(&mut f, 0, None);
    let cleared = f.inspect(0, |l| {
        l.peer(&b0)
            .map(|p| p.peer_nis().all(|n| n.pref_nids().is_empty()))
            .unwrap_or(false)
    });
    assert!(cleared, "deleting the rules clears the lists");
    // Without preferences the pairing is round robin's again (in whatever
    // phase the sequences are): both local NIs send, every PUT lands.
    reset(&mut f);
    send(&mut f, 0, 1);
    assert!(spread(sent(&f, 0)), "{:?}", sent(&f, 0));
    let all: u64 = [(a0, b0), (a0, b1), (a1, b0), (a1, b1)]
        .iter()
        .map(|(a, b)| delivered(&f, *a, *b))
        .sum();
    assert_eq!(all, N as u64);
}

#[test]
fn nid_pair_rule_pins_the_source_of_a_single_rail_peer() {
    // Node 1 without discovery: a plain peer reached by its primary NID.
    let mut t = lnet_core::GlobalTunables::default();
    t.peer_discovery_disabled = true;
    let mut f = Fabric::new(seed_from_env(1607));
    f.add_node(
        NodeSpec::new()
            .tunables(t)
            .ni(NiSpec::tcp([10, 0, 0, 1]))
            .ni(NiSpec::tcp([10, 0, 0, 3])),
    );
    f.add_node(NodeSpec::new().ni(NiSpec::tcp([10, 0, 0, 2])));
    add(
        &mut f,
        0,
        rule("10.0.0.3@tcp", "10.0.0.2@tcp", "", None),
        None,
    );
    send(&mut f, 0, 1);
    assert_eq!(sent(&f, 0), [0, N as u64], "the pair rule's source");
    // The rule goes: the peer gets a single-rail preference of its own again.
    del(&mut f, 0, Some(0));
    reset(&mut f);
    send(&mut f, 0, 1);
    let s = sent(&f, 0);
    assert!(s[0] == 0 || s[1] == 0, "one rail: {s:?}");
    assert_eq!(s[0] + s[1], N as u64);
}

/// client(0) 10.0.0.1@tcp — routers r1(1) 10.0.0.2@tcp/10.1.0.2@tcp1 and
/// r2(2) 10.0.0.3@tcp/10.1.0.3@tcp1 — server(3) 10.1.0.4@tcp1; routes to the
/// far net through both routers, same priority.
fn two_routers(seed: u64) -> Fabric {
    let mut f = Fabric::new(seed_from_env(seed));
    f.set_default_link(LinkParams::new().latency(Duration::from_micros(20)));
    let mut cfg = RouterConfig::default();
    cfg.alive_router_check_interval = 0;
    f.add_node(NodeSpec::new().ni(NiSpec::tcp([10, 0, 0, 1])));
    for h in [2u8, 3] {
        f.add_node(
            NodeSpec::new()
                .ni(NiSpec::tcp([10, 0, 0, h]))
                .ni(NiSpec::new(TCP1, [10, 1, 0, h])),
        );
    }
    f.add_node(NodeSpec::new().ni(NiSpec::new(TCP1, [10, 1, 0, 4])));
    for r in [1, 2] {
        f.call(r, |l, now| {
            l.set_router_config(now, cfg.clone());
            l.set_routing(now, true, true);
        });
    }
    let route = |f: &mut Fabric, n: usize, net: NetId, gw: Nid| {
        f.call(n, |l, now| {
            l.set_router_config(now, cfg.clone());
            l.route_add(now, net, gw, None, 0, None)
        })
        .expect("route add");
    };
    for r in [1, 2] {
        let (near, far) = (f.nid(r, 0), f.nid(r, 1));
        route(&mut f, 0, TCP1, near);
        route(&mut f, 3, TCP, far);
    }
    f
}

#[test]
fn router_rule_picks_the_gateway() {
    let mut f = two_routers(1608);
    let c = f.nid(0, 0);
    let (g1, g2) = (f.nid(1, 0), f.nid(2, 0));
    // The server is discovered through a router first (semantics §9.2);
    // the counters start after it, so they see the PUTs and ACKs only.
    let server = f.nid(3, 0);
    f.discover(0, server, false)
        .expect("the server is discovered through a route");
    f.run_for(Duration::from_secs(1));
    for n in 0..f.node_count() {
        f.call(n, |l, _| l.stats_reset());
    }
    f.reset_link_stats();
    let via = |f: &Fabric, g: Nid| f.link_stats(c, g).delivered;
    send(&mut f, 0, 3);
    assert!(via(&f, g1) > 0 && via(&f, g2) > 0, "default: both gateways");
    // The routers count what they received when its payload was in: every
    // forwarded message (PUTs one way, ACKs back) once, nothing dropped.
    let mut routed = 0;
    for r in [1, 2] {
        let s = f.inspect(r, |l| *l.stats());
        assert_eq!(
            (s.recv_count, s.recv_length, s.drop_count),
            (s.route_count, s.route_length, 0),
            "router {r}: {s:?}"
        );
        routed += s.route_length;
    }
    assert_eq!(routed, (N * LEN) as u64, "the PUTs' bytes, once");
    // `udsp add --dst 10.1.0.4@tcp1 --rte 10.0.0.3@tcp`.
    add(
        &mut f,
        0,
        rule("", "10.1.0.4@tcp1", "10.0.0.3@tcp", None),
        None,
    );
    let server = f.nid(3, 0);
    assert_eq!(f.inspect(0, |l| l.peer_ni_pref_gateways(&server)), vec![g2]);
    reset(&mut f);
    send(&mut f, 0, 3);
    assert_eq!((via(&f, g1), via(&f, g2)), (0, N as u64), "all through r2");
    // A lower route priority on r1 does not beat the preference (§7.4: the
    // preference is criterion 1).
    f.call(0, |l, _| l.route_del(Some(TCP1), Some(g1)))
        .expect("route del");
    f.call(0, |l, now| l.route_add(now, TCP1, g1, None, 0, None))
        .expect("route add");
    reset(&mut f);
    send(&mut f, 0, 3);
    assert_eq!((via(&f, g1), via(&f, g2)), (0, N as u64));
    del(&mut f, 0, Some(0));
    assert!(f
        .inspect(0, |l| l.peer_ni_pref_gateways(&server))
        .is_empty());
    reset(&mut f);
    send(&mut f, 0, 3);
    assert!(via(&f, g1) > 0 && via(&f, g2) > 0, "after del: both");
}

#[test]
fn bad_rules_are_refused_and_change_nothing() {
    let mut f = pair(1609, false);
    add(&mut f, 0, rule("tcp", "", "", Some(3)), None);
    for (r, what) in [
        (
            rule("tcp", "tcp", "tcp", None),
            "combination of src, dst and rte",
        ),
        (
            rule("tcp", "", "tcp", None),
            "src and rte cannot be combined",
        ),
        (rule("", "", "tcp", None), "needs a destination"),
        (rule("", "", "", Some(1)), "at least one"),
    ] {
        let e = f.call(0, |l, _| l.udsp_add(r, None)).expect_err("refused");
        assert!(e.to_string().contains(what), "{e}");
        assert_eq!(e.errno(), 22);
    }
    assert_eq!(
        f.call(0, |l, _| l.udsp_del(Some(5))),
        Err(UdspError::NoSuchRule(5))
    );
    assert_eq!(f.inspect(0, |l| l.udsp_rules().count()), 1);
    let ni0 = f.ni(0, 0);
    assert_eq!(
        f.inspect(0, |l| l.ni(ni0).map(|n| n.net_priority())),
        Some(3)
    );
}

#[test]
fn rules_reach_peer_nis_that_discovery_creates() {
    let mut f = pair(1610, false);
    // `udsp add --dst 10.0.0.4@tcp --priority 1` before node 0 knows node 1.
    add(&mut f, 0, rule("", "10.0.0.4@tcp", "", Some(1)), None);
    let (prim, b1) = (f.nid(1, 0), f.nid(1, 1));
    assert_eq!(f.discover(0, prim, false), Ok(prim));
    f.settle();
    // Discovery merged 10.0.0.4@tcp into the peer: it has the rule's
    // priority before any message was sent to it.
    let prio = f.inspect(0, |l| {
        l.peer(&prim).and_then(|p| {
            p.peer_nis()
                .map(|n| (n.nid(), n.sel_priority()))
                .find(|(n, _)| *n == b1)
        })
    });
    assert_eq!(prio, Some((b1, 1)));
    reset(&mut f);
    send(&mut f, 0, 1);
    assert_eq!(received(&f, 1), [0, N as u64], "all to 10.0.0.4@tcp");
}
