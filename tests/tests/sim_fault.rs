//! Fault injection on the simulated fabric: lnd-fault stacked on the sim
//! LND's NIs (as lnetd stacks it on a plugin's), with rules set per node
//! through `Fabric::fault`, on the virtual clock. What LNet's health, resend
//! and recovery logic make of each injected failure (semantics §8, §11).

use lnet_core::lnd_api::Nid;
use lnet_core::{AckReq, Duration, EventKind, GlobalTunables, MdOptions, Threshold};
use lnet_tests::sim::{pattern, seed_from_env, Fabric, NiSpec, NodeSpec, TCP1};

const PORTAL: u32 = 14;
const BITS: u64 = 0x4641;
const LEN: usize = 1024;

fn ctl(f: &Fabric, node: usize, cmd: &str, arg: &str) -> String {
    f.fault(node)
        .control(cmd, arg)
        .unwrap_or_else(|e| panic!("fault {cmd} {arg}: {e}"))
}

/// Two single-rail nodes, both NIs under the fault filter, that have
/// discovered each other (§9) before any rule is installed: the first PUT
/// would otherwise wait for a discovery ping and push, which the rules (all
/// message types, any portal) would match and count too.
fn single_rail(seed: u64) -> Fabric {
    let mut f = Fabric::new(seed_from_env(seed));
    f.add_node(NodeSpec::new().ni(NiSpec::tcp([10, 0, 0, 1]).fault()));
    f.add_node(NodeSpec::new().ni(NiSpec::tcp([10, 0, 0, 2]).fault()));
    f.discover_all();
    f
}

/// Two nodes with two rails each (tcp and tcp1), node 1 known to node 0 as
/// one Multi-Rail peer; the rails of node 0 that `faulty` names are under
/// the fault filter. Both have discovered each other before any rule is
/// installed (see `single_rail`).
fn two_rails(seed: u64, faulty: [bool; 2]) -> Fabric {
    let mut f = Fabric::new(seed_from_env(seed));
    let ni = |spec: NiSpec, on: bool| if on { spec.fault() } else { spec };
    f.add_node(
        NodeSpec::new()
            .ni(ni(NiSpec::tcp([10, 0, 0, 1]), faulty[0]))
            .ni(ni(NiSpec::new(TCP1, [10, 1, 0, 1]), faulty[1])),
    );
    f.add_node(
        NodeSpec::new()
            .ni(NiSpec::tcp([10, 0, 0, 2]).fault())
            .ni(NiSpec::new(TCP1, [10, 1, 0, 2])),
    );
    let (prim, other) = (f.nid(1, 0), f.nid(1, 1));
    f.call(0, |l, _| l.peer_add(prim, &[other], true))
        .expect("peer add");
    f.discover_all();
    f
}

/// Node 0 PUTs `i`'s pattern to node 1 (portal set up by `sink`); returns
/// node 0's events (kind, status) once the fabric settled.
fn put(f: &mut Fabric, i: u8) -> Vec<(EventKind, i32)> {
    let (md, _) = f.bind(0, &pattern(LEN, i), Threshold::Count(2));
    f.put(0, md, AckReq::Ack, f.pid(1), PORTAL, BITS, u64::from(i))
        .expect("put accepted");
    f.settle();
    f.take_md_events(0)
        .iter()
        .map(|e| (e.kind, e.status))
        .collect()
}

fn sink(f: &mut Fabric) -> lnet_core::lnd_api::IoBuf {
    f.post(
        1,
        PORTAL,
        BITS,
        LEN,
        MdOptions::OP_PUT | MdOptions::MANAGE_REMOTE,
        Threshold::Infinite,
    )
    .1
}

fn ni_health(f: &Fabric, node: usize, k: usize) -> u32 {
    let ni = f.ni(node, k);
    f.inspect(node, |l| l.ni(ni).expect("ni").health_value())
}

fn peer_ni_health(f: &Fabric, node: usize, peer: Nid, peer_ni: Nid) -> u32 {
    f.inspect(node, |l| {
        l.peer(&peer)
            .expect("peer")
            .peer_nis()
            .find(|p| p.nid() == peer_ni)
            .expect("peer NI")
            .health_value()
    })
}

fn resends(f: &Fabric, node: usize) -> u64 {
    f.inspect(node, |l| l.stats().resend_count)
}

fn show_has(f: &Fabric, node: usize, kind: &str, line: &str) {
    let out = ctl(f, node, &format!("{kind}_show"), "");
    assert!(out.contains(line), "{kind} show lacks {line:?}:\n{out}");
}

#[test]
fn single_rail_local_error_fails_the_put_without_resend() {
    let mut f = single_rail(140);
    sink(&mut f);
    // local_dropped (resendable) on a node with one rail: no NI to resend on.
    ctl(&f, 0, "drop_add", "src=<?> dst=<?> rate=1 health_mask=0x4");
    let evs = put(&mut f, 1);
    assert_eq!(evs, [(EventKind::Send, -5), (EventKind::Unlink, 0)]);
    assert!(f.take_md_events(1).is_empty(), "nothing arrived");
    assert_eq!(resends(&f, 0), 0);
    assert!(ni_health(&f, 0, 0) < 1000, "local NI lost health");
    // The PUT, and the local NI's recovery pings (GETs to itself, §8.6),
    // which the rule drops too while it is in force.
    show_has(&f, 0, "drop", "      fs_put: 1\n");
    // Rule deleted: the next PUT goes through.
    assert_eq!(ctl(&f, 0, "drop_del", "all"), "1");
    assert_eq!(put(&mut f, 2), [(EventKind::Send, 0), (EventKind::Ack, 0)]);
}

#[test]
fn multi_rail_local_error_is_resent_on_the_other_ni() {
    // Only rail 0 of node 0 is under the filter, failing every send.
    let mut f = two_rails(141, [true, false]);
    let sink = sink(&mut f);
    ctl(
        &f,
        0,
        "drop_add",
        "src=<?> dst=<?> rate=1 drop_all=1 health_mask=0x4",
    );
    for i in 0..6u8 {
        let evs = put(&mut f, i);
        assert_eq!(
            evs,
            [(EventKind::Send, 0), (EventKind::Ack, 0)],
            "PUT {i}: the failure does not show"
        );
        assert_eq!(sink.to_vec().expect("free"), pattern(LEN, i));
    }
    let r = resends(&f, 0);
    assert!(r >= 1, "rail 0 was tried and the PUT resent");
    assert_eq!(f.inspect(0, |l| l.stats().successful_resends), r);
    // Each resent PUT was dropped once on rail 0; the rule also drops rail
    // 0's recovery pings (GETs to itself, §8.6).
    show_has(&f, 0, "drop", &format!("      fs_put: {r}\n"));
    assert!(ni_health(&f, 0, 0) < 1000, "rail 0 lost health");
    assert_eq!(ni_health(&f, 0, 1), 1000, "rail 1 kept it");
}

#[test]
fn a_rule_on_one_ni_by_local_nid_fails_that_ni_only() {
    // Both rails of node 0 under the filter; the rule names rail 0 by its
    // NID (`--local_nid`), so rail 1 is spared and takes the resends.
    let mut f = two_rails(148, [true, true]);
    let sink = sink(&mut f);
    let rail0 = f.nid(0, 0);
    ctl(
        &f,
        0,
        "drop_add",
        &format!("src=<?> dst=<?> rate=1 health_mask=0x4 local_nid={rail0}"),
    );
    show_has(&f, 0, "drop", &format!("      fa_local_nid: {rail0}\n"));
    for i in 0..6u8 {
        assert_eq!(
            put(&mut f, i),
            [(EventKind::Send, 0), (EventKind::Ack, 0)],
            "PUT {i}"
        );
        assert_eq!(sink.to_vec().expect("free"), pattern(LEN, i));
    }
    let r = resends(&f, 0);
    assert!(r >= 1, "rail 0 was tried and the PUT resent");
    // Every PUT the rule failed was resent (rail 0's recovery GETs, also
    // dropped by the rule, are counted apart: they are never resent).
    show_has(&f, 0, "drop", &format!("      fs_put: {r}\n"));
    assert!(ni_health(&f, 0, 0) < 1000, "rail 0 lost health");
    assert_eq!(ni_health(&f, 0, 1), 1000, "rail 1 kept it");
}

#[test]
fn remote_error_hurts_the_peer_ni_and_is_not_resent() {
    let mut f = two_rails(142, [true, true]);
    sink(&mut f);
    // remote_error: a peer NI failure, never resent (§8.3).
    ctl(&f, 0, "drop_add", "src=<?> dst=<?> rate=1 health_mask=0x80");
    let evs = put(&mut f, 1);
    assert_eq!(evs, [(EventKind::Send, -5), (EventKind::Unlink, 0)]);
    assert_eq!(resends(&f, 0), 0);
    assert_eq!(ni_health(&f, 0, 0), 1000);
    assert_eq!(ni_health(&f, 0, 1), 1000);
    let prim = f.nid(1, 0);
    let hurt = [f.nid(1, 0), f.nid(1, 1)]
        .iter()
        .filter(|&&n| peer_ni_health(&f, 0, prim, n) < 1000)
        .count();
    assert_eq!(hurt, 1, "the peer NI it was sent to lost health");
}

#[test]
fn network_timeout_hurts_both_ends_and_is_not_resent() {
    // Two rails (remote health is tracked for a Multi-Rail peer only).
    let mut f = two_rails(143, [true, true]);
    sink(&mut f);
    ctl(
        &f,
        0,
        "drop_add",
        "src=<?> dst=<?> rate=1 health_mask=0x400",
    );
    let evs = put(&mut f, 1);
    assert_eq!(evs, [(EventKind::Send, -5), (EventKind::Unlink, 0)]);
    assert_eq!(resends(&f, 0), 0);
    let local_hurt = (0..2).filter(|&k| ni_health(&f, 0, k) < 1000).count();
    let prim = f.nid(1, 0);
    let peer_hurt = [f.nid(1, 0), f.nid(1, 1)]
        .iter()
        .filter(|&&n| peer_ni_health(&f, 0, prim, n) < 1000)
        .count();
    assert_eq!((local_hurt, peer_hurt), (1, 1));
}

#[test]
fn receive_drop_discards_the_put_and_the_ack_never_comes() {
    let mut f = single_rail(144);
    sink(&mut f);
    let a = f.nid(0, 0);
    ctl(&f, 1, "drop_add", &format!("src={a} dst=<?> rate=1"));
    let evs = put(&mut f, 1);
    // The send completed on the wire; the target discarded it; the ACK is
    // waited for until the transaction timeout, then the MD goes.
    assert_eq!(evs, [(EventKind::Send, 0), (EventKind::Unlink, 0)]);
    assert!(f.now().since(lnet_tests::sim::START) >= Duration::from_secs(150));
    assert!(f.take_md_events(1).is_empty(), "nothing delivered");
    show_has(
        &f,
        1,
        "drop",
        "      ds_dropped: 1\n      fs_count: 1\n      fs_put: 1\n",
    );
}

#[test]
fn delayed_puts_arrive_after_the_latency_in_order() {
    let mut f = single_rail(145);
    let sink = sink(&mut f);
    // PUTs only (the ACK coming back would match an all-types rule too).
    ctl(
        &f,
        0,
        "delay_add",
        "src=<?> dst=<?> rate=1 latency=5 msg_mask=2",
    );
    let t0 = f.now();
    let (md, _) = f.bind(0, &pattern(LEN, 9), Threshold::Count(2));
    f.put(0, md, AckReq::Ack, f.pid(1), PORTAL, BITS, 9)
        .expect("put");
    f.run_for(Duration::from_millis(4900));
    assert!(f.take_md_events(1).is_empty(), "still held at 4.9 s");
    f.settle();
    let evs = f.take_md_events(1);
    assert_eq!(evs.len(), 1);
    assert!(f.now().since(t0) >= Duration::from_secs(5));
    assert_eq!(sink.to_vec().expect("free"), pattern(LEN, 9));
    assert_eq!(
        f.take_md_events(0)
            .iter()
            .map(|e| (e.kind, e.status))
            .collect::<Vec<_>>(),
        [(EventKind::Send, 0), (EventKind::Ack, 0)]
    );
    show_has(&f, 0, "delay", "      ls_delayed: 1\n");
    // Receive-side delays too: node 1 holds node 0's PUTs, 3 s each.
    ctl(&f, 0, "delay_del", "all");
    ctl(
        &f,
        1,
        "delay_add",
        "src=<?> dst=<?> rate=1 latency=3 msg_mask=2",
    );
    let t1 = f.now();
    assert_eq!(put(&mut f, 3), [(EventKind::Send, 0), (EventKind::Ack, 0)]);
    assert!(f.now().since(t1) >= Duration::from_secs(3));
    show_has(&f, 1, "delay", "      ls_delayed: 1\n");
}

#[test]
fn a_put_delayed_past_its_deadline_fails_at_the_initiator() {
    let mut f = Fabric::new(seed_from_env(146));
    let mut tun = GlobalTunables::default();
    tun.transaction_timeout = 10;
    f.add_node(
        NodeSpec::new()
            .tunables(tun.clone())
            .ni(NiSpec::tcp([10, 0, 0, 1]).fault()),
    );
    f.add_node(NodeSpec::new().tunables(tun).ni(NiSpec::tcp([10, 0, 0, 2])));
    // Discovery first, so that only the PUT meets the delay rule.
    f.discover_all();
    sink(&mut f);
    // The PUT is held 30 s, three times the transaction timeout.
    ctl(&f, 0, "delay_add", "src=<?> dst=<?> rate=1 latency=30");
    let t0 = f.now();
    let evs = put(&mut f, 1);
    // The initiator gives the PUT up at its deadline (-ETIMEDOUT, no ACK);
    // the target still gets it, 30 s late.
    assert_eq!(evs, [(EventKind::Send, -110)]);
    let late: Vec<_> = f
        .take_md_events(1)
        .iter()
        .map(|e| (e.kind, e.status))
        .collect();
    assert_eq!(late, [(EventKind::Put, 0)]);
    assert!(f.now().since(t0) >= Duration::from_secs(30));
}

#[test]
fn rates_and_intervals_over_many_messages() {
    let mut f = single_rail(147);
    sink(&mut f);
    // Rate 4 on receive at node 1: one PUT in every four is lost.
    ctl(&f, 1, "drop_add", "src=<?> dst=<?> rate=4 msg_mask=2");
    let n = 40u8;
    for i in 0..n {
        let (md, _) = f.bind(0, &pattern(LEN, i), Threshold::Count(2));
        f.put(0, md, AckReq::NoAck, f.pid(1), PORTAL, BITS, u64::from(i))
            .expect("put");
        f.run_for(Duration::from_millis(10));
    }
    f.settle();
    assert_eq!(f.take_md_events(1).len(), usize::from(n) * 3 / 4);
    show_has(&f, 1, "drop", "      ds_dropped: 10\n      fs_count: 40\n");
    ctl(&f, 1, "drop_del", "all");
    // Interval 5 s on send at node 0 (health): one failure per window,
    // PUTs every 0.5 s for 60 s.
    ctl(
        &f,
        0,
        "drop_add",
        "src=<?> dst=<?> interval=5 health_mask=0x20",
    );
    let mut failed = 0;
    for i in 0..120u32 {
        let (md, _) = f.bind(0, &pattern(LEN, i as u8), Threshold::Count(2));
        f.put(0, md, AckReq::NoAck, f.pid(1), PORTAL, BITS, u64::from(i))
            .expect("put");
        f.run_for(Duration::from_millis(500));
        failed += f
            .take_md_events(0)
            .iter()
            .filter(|e| e.kind == EventKind::Send && e.status < 0)
            .count();
    }
    assert!((11..=13).contains(&failed), "{failed} failures in 60 s");
}
