//! Faults on the simulated fabric: ping across it, partitions (a dead peer),
//! loss with a fixed seed (deterministic traces), duplicates, damaged
//! payloads, the MTU.

use lnet_core::lnd_api::errno;
use lnet_core::{
    AckReq, Duration, Event, EventKind, GlobalTunables, Instant, MdEvent, MdOptions, PingError,
    Threshold,
};
use lnet_tests::sim::{pattern, seed_from_env, Fabric, LinkParams, NiSpec, NodeSpec, TCP1};

const PORTAL: u32 = 21;
const BITS: u64 = 0xfa17;

fn kinds(evs: &[MdEvent]) -> Vec<EventKind> {
    evs.iter().map(|e| e.kind).collect()
}

/// Nodes 10.0.0.<i+1>@tcp, 200 µs apart; LND timeout `lnd_timeout` seconds.
/// How the trace prints a time, with the space after it.
fn trace_time(t: Instant) -> String {
    format!("{}.{:09} ", t.0 / 1_000_000_000, t.0 % 1_000_000_000)
}

fn nodes(seed: u64, n: usize, lnd_timeout: u32) -> Fabric {
    let mut f = Fabric::new(seed);
    f.set_default_link(LinkParams::new().latency(Duration::from_micros(200)));
    for i in 0..n {
        f.add_node(NodeSpec::new().ni(NiSpec::tcp([10, 0, 0, 1 + i as u8]).timeout(lnd_timeout)));
    }
    // Peers discovered first (§9.2): the scenarios count their own traffic.
    f.discover_all();
    f.reset_link_stats();
    f
}

fn ping_results(f: &mut Fabric, node: usize) -> Vec<Event> {
    f.take_events(node)
        .into_iter()
        .filter(|e| matches!(e, Event::PingDone { .. }))
        .collect()
}

#[test]
fn ping_across_the_fabric_lists_the_targets_nids() {
    let mut f = Fabric::new(seed_from_env(41));
    f.set_default_link(LinkParams::new().latency(Duration::from_micros(250)));
    f.add_node(NodeSpec::new().ni(NiSpec::tcp([10, 0, 0, 1])));
    f.add_node(
        NodeSpec::new()
            .ni(NiSpec::tcp([10, 0, 0, 2]))
            .ni(NiSpec::new(TCP1, [10, 1, 0, 2])),
    );
    let t0 = f.now();
    let target = f.pid(1);
    let id = f
        .call(0, |l, now| {
            l.ping(now, target, None, Duration::from_secs(5))
        })
        .expect("ping accepted");
    f.settle();
    let done = ping_results(&mut f, 0);
    let [Event::PingDone { id: got, result }] = &done[..] else {
        panic!("one ping result expected: {done:?}");
    };
    assert_eq!(*got, id);
    let info = result.as_ref().expect("ping answered");
    let nids: Vec<_> = info.nis.iter().map(|n| n.nid).collect();
    assert_eq!(nids, [f.nid(1, 0), f.nid(1, 1)]);
    assert_eq!(info.pid, 12345);
    // A round trip: GET out, REPLY back, nothing else.
    let rtt = f.now().since(t0);
    assert!(
        rtt >= Duration::from_micros(500) && rtt < Duration::from_millis(1),
        "{rtt:?}"
    );
    assert_eq!(f.link_stats(f.nid(0, 0), f.nid(1, 0)).delivered, 1);
    assert_eq!(f.link_stats(f.nid(1, 0), f.nid(0, 0)).delivered, 1);
}

#[test]
fn ping_into_a_partition_times_out() {
    let mut f = nodes(seed_from_env(42), 2, 5);
    f.partition(&[0], &[1], f.now(), None);
    let target = f.pid(1);
    let t0 = f.now();
    f.call(0, |l, now| {
        l.ping(now, target, None, Duration::from_secs(3))
    })
    .expect("ping accepted");
    f.settle();
    let done = ping_results(&mut f, 0);
    let [Event::PingDone { result: Err(e), .. }] = &done[..] else {
        panic!("a failed ping expected: {done:?}");
    };
    assert!(matches!(e, PingError::Timeout { .. }), "{e}");
    assert_eq!(e.errno(), -errno::ETIMEDOUT);
    assert!(f.link_stats(f.nid(0, 0), f.nid(1, 0)).lost == 1);
    // The ping gave up at its own timeout; the LND let go of the GET later.
    assert!(f.now().since(t0) >= Duration::from_secs(5));
}

#[test]
fn put_to_a_partitioned_peer_fails_within_the_transaction_timeout() {
    let seed = seed_from_env(43);
    let mut f = nodes(seed, 2, 10);
    let own = f.inspect(0, |l| l.md_count());
    let txn = f.inspect(0, |l| l.tunables().transaction_timeout);
    let cut = f.partition(&[0], &[1], f.now(), None);
    let (_, sink) = f.post(
        1,
        PORTAL,
        BITS,
        4096,
        MdOptions::OP_PUT,
        Threshold::Count(1),
    );
    let (md, _) = f.bind(0, &pattern(4096, 1), Threshold::Count(2));
    let t0 = f.now();
    f.put(0, md, AckReq::Ack, f.pid(1), PORTAL, BITS, 1)
        .expect("put accepted");

    // The failure shows within the transaction timeout...
    f.run_until(t0.saturating_add(Duration::from_secs(u64::from(txn))));
    let evs = f.take_md_events(0);
    let fail = evs
        .iter()
        .find(|e| e.status != 0)
        .unwrap_or_else(|| panic!("no failure event within {txn} s: {evs:?}"));
    assert_eq!(fail.kind, EventKind::Send);
    assert_eq!(fail.status, -errno::ETIMEDOUT);
    // ... and came from the LND's timeout (10 s), as for a dead peer.
    let ni = f.ni(0, 0);
    let health = f.inspect(0, |l| l.ni(ni).expect("ni").stats().health);
    assert_eq!(health.network_timeout, 1, "{health:?}");
    assert!(f.inspect(0, |l| l.stats().errors) >= 1);

    // Nothing hangs: the MD is released, no message is left anywhere.
    f.settle();
    assert!(evs.iter().chain(&f.take_md_events(0)).any(|e| e.unlinked));
    assert_eq!(f.inspect(0, |l| l.md_count()), own);
    assert!(f.take_md_events(1).is_empty());
    assert_eq!(sink.to_vec().expect("free"), vec![0; 4096]);

    // Healed, the same peer is reachable again.
    let now = f.now();
    f.heal(cut, now);
    let (md, _) = f.bind(0, &pattern(4096, 2), Threshold::Count(2));
    f.put(0, md, AckReq::Ack, f.pid(1), PORTAL, BITS, 2)
        .expect("put accepted");
    f.settle();
    assert_eq!(sink.to_vec().expect("free"), pattern(4096, 2));
    assert_eq!(kinds(&f.take_md_events(1)), [EventKind::Put]);
}

#[test]
fn a_cut_during_flight_loses_the_message() {
    let mut f = nodes(seed_from_env(44), 2, 2);
    let (md, _) = f.bind(0, &pattern(100, 1), Threshold::Count(1));
    f.post(1, PORTAL, BITS, 100, MdOptions::OP_PUT, Threshold::Count(1));
    let t0 = f.now();
    // Sent at t0, would arrive at t0 + 200 µs; the cut starts in between.
    f.partition(
        &[1],
        &[0],
        t0.saturating_add(Duration::from_micros(100)),
        None,
    );
    f.put(0, md, AckReq::NoAck, f.pid(1), PORTAL, BITS, 0)
        .expect("put accepted");
    f.settle();
    let st = f.link_stats(f.nid(0, 0), f.nid(1, 0));
    assert_eq!((st.sent, st.delivered, st.lost), (1, 0, 1));
    let evs = f.take_md_events(0);
    assert_eq!(kinds(&evs), [EventKind::Send]);
    assert_eq!(evs[0].status, -errno::ETIMEDOUT);
    assert!(
        f.now().since(t0) >= Duration::from_secs(2),
        "after the LND timeout"
    );
    assert!(f.take_md_events(1).is_empty());
}

/// Three nodes on lossy, jittery links (that also duplicate and damage a
/// few messages) exchange PUTs and GETs; returns the trace and a summary of
/// the outcome.
fn lossy_run(seed: u64) -> (Vec<String>, Vec<String>) {
    let mut t = GlobalTunables::default();
    t.transaction_timeout = 20;
    let mut f = Fabric::new(seed);
    f.set_default_link(
        LinkParams::new()
            .latency(Duration::from_micros(100))
            .jitter(Duration::from_micros(80))
            .loss(0.2)
            .duplicate(0.05)
            .corrupt(0.05)
            .unordered(),
    );
    for i in 0..3u8 {
        f.add_node(
            NodeSpec::new()
                .tunables(t.clone())
                .ni(NiSpec::tcp([10, 0, 0, 1 + i]).timeout(3)),
        );
    }
    for n in 0..3 {
        f.post(
            n,
            PORTAL,
            BITS,
            1024,
            MdOptions::OP_PUT | MdOptions::OP_GET,
            Threshold::Infinite,
        );
    }
    for round in 0..10u8 {
        for from in 0..3 {
            let to = (from + 1 + usize::from(round) % 2) % 3;
            let (md, _) = f.bind(from, &pattern(1024, round), Threshold::Count(2));
            if round % 3 == 2 {
                f.get(from, md, f.pid(to), PORTAL, BITS).expect("get");
            } else {
                f.put(
                    from,
                    md,
                    AckReq::Ack,
                    f.pid(to),
                    PORTAL,
                    BITS,
                    u64::from(round),
                )
                .expect("put");
            }
        }
        f.run_for(Duration::from_micros(150));
    }
    f.settle();
    let mut summary = Vec::new();
    for n in 0..3 {
        let evs = f.take_md_events(n);
        let finished = evs.iter().filter(|e| e.unlinked).count();
        let failed = evs.iter().filter(|e| e.status != 0).count();
        summary.push(format!("n{n}: {finished} finished, {failed} failed"));
        // Every operation this node started came to an end (its MD's last
        // event), whatever the network did to it.
        assert_eq!(finished, 10, "n{n}: {evs:?}");
    }
    (f.trace(), summary)
}

#[test]
fn loss_is_deterministic_for_a_seed() {
    let seed = seed_from_env(45);
    let _guard = lnet_tests::sim::SeedGuard::new(seed);
    let (a, sa) = lossy_run(seed);
    let (b, sb) = lossy_run(seed);
    assert_eq!(sa, sb);
    assert_eq!(a.len(), b.len(), "same number of trace lines");
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        assert_eq!(x, y, "traces differ first at line {i}");
    }
    // Loss happened and was survived (lossy_run checks every operation ended).
    assert!(
        a.iter().any(|l| l.contains("lost")),
        "20% loss lost nothing"
    );
    // The seed matters: another one gives another run.
    let (c, _) = lossy_run(seed.wrapping_add(1));
    assert_ne!(a, c);
}

#[test]
fn duplicates_are_delivered_twice_and_the_extra_copy_is_dropped() {
    let mut f = nodes(seed_from_env(46), 2, 5);
    f.set_link(f.nid(0, 0), f.nid(1, 0), LinkParams::new().duplicate(1.0));
    let (_, sink) = f.post(1, PORTAL, BITS, 256, MdOptions::OP_PUT, Threshold::Count(1));
    let (md, _) = f.bind(0, &pattern(256, 9), Threshold::Count(1));
    f.put(0, md, AckReq::NoAck, f.pid(1), PORTAL, BITS, 0)
        .expect("put accepted");
    f.settle();
    let st = f.link_stats(f.nid(0, 0), f.nid(1, 0));
    assert_eq!((st.sent, st.delivered, st.duplicated), (1, 2, 1));
    assert_eq!(sink.to_vec().expect("free"), pattern(256, 9));
    // The first copy used the MD up; the second matched nothing.
    assert_eq!(kinds(&f.take_md_events(1)), [EventKind::Put]);
    assert_eq!(f.inspect(1, |l| l.stats().drop_count), 1);
    assert_eq!(kinds(&f.take_md_events(0)), [EventKind::Send]);
}

#[test]
fn a_damaged_payload_fails_the_receive_and_no_ack_is_sent() {
    let mut f = nodes(seed_from_env(47), 2, 5);
    f.set_link(f.nid(0, 0), f.nid(1, 0), LinkParams::new().corrupt(1.0));
    f.post(1, PORTAL, BITS, 512, MdOptions::OP_PUT, Threshold::Count(1));
    let (md, _) = f.bind(0, &pattern(512, 3), Threshold::Count(2));
    f.put(0, md, AckReq::Ack, f.pid(1), PORTAL, BITS, 0)
        .expect("put accepted");
    f.settle();
    let tgt = f.take_md_events(1);
    assert_eq!(kinds(&tgt), [EventKind::Put]);
    assert_eq!(tgt[0].status, -errno::EIO);
    assert_eq!(f.link_stats(f.nid(1, 0), f.nid(0, 0)).sent, 0, "no ACK");
    let ini = f.take_md_events(0);
    assert!(ini.iter().all(|e| e.kind != EventKind::Ack), "{ini:?}");
    assert_eq!(f.link_stats(f.nid(0, 0), f.nid(1, 0)).corrupted, 1);
}

#[test]
fn a_send_over_the_mtu_is_refused_at_once() {
    let mut f = nodes(seed_from_env(48), 2, 5);
    f.set_link(f.nid(0, 0), f.nid(1, 0), LinkParams::new().mtu(65536));
    f.post(
        1,
        PORTAL,
        BITS,
        1 << 20,
        MdOptions::OP_PUT,
        Threshold::Infinite,
    );
    let (small, _) = f.bind(0, &pattern(65536, 1), Threshold::Count(1));
    let (big, _) = f.bind(0, &pattern(65537, 1), Threshold::Count(1));
    let t0 = f.now();
    f.put(0, big, AckReq::NoAck, f.pid(1), PORTAL, BITS, 1)
        .expect("put accepted");
    // Refused synchronously: the failure is there before any time passes.
    let evs = f.take_md_events(0);
    assert_eq!(kinds(&evs), [EventKind::Send]);
    assert_eq!(evs[0].status, -errno::EMSGSIZE);
    assert_eq!(f.now(), t0);
    f.put(0, small, AckReq::NoAck, f.pid(1), PORTAL, BITS, 2)
        .expect("put accepted");
    f.settle();
    let st = f.link_stats(f.nid(0, 0), f.nid(1, 0));
    assert_eq!((st.refused, st.sent, st.delivered), (1, 1, 1));
    let tgt = f.take_md_events(1);
    assert_eq!(tgt.len(), 1);
    assert_eq!((tgt[0].hdr_data, tgt[0].mlength), (2, 65536));
}

#[test]
fn the_virtual_clock_follows_the_earliest_deadline() {
    // Nothing to do: no time passes. One ping in a partition: the clock
    // jumps straight to the deadlines instead of ticking.
    let mut f = nodes(seed_from_env(49), 2, 7);
    let t0: Instant = f.now();
    f.settle();
    assert_eq!(f.now(), t0);
    f.partition(&[0], &[1], t0, None);
    let target = f.pid(1);
    f.call(0, |l, now| {
        l.ping(now, target, None, Duration::from_secs(4))
    })
    .expect("ping");
    let mut times = Vec::new();
    while f.step() {
        times.push(f.now().since(t0));
    }
    assert_eq!(
        &times[..2],
        [Duration::from_secs(4), Duration::from_secs(7)],
        "ping timeout, then the LND gives the GET up"
    );
    // At most one more stop (the engine may keep the GET's response
    // tracker armed until transaction_timeout), and it changes nothing.
    // The GET's NETWORK_TIMEOUT also cost node 0's NI health, so after the
    // LND timeout the only traffic is that NI's recovery ping to itself
    // (§8.6) until it is back at 1000; nothing crosses the partition.
    let after: Vec<String> = f
        .trace()
        .into_iter()
        .filter(|l| l.as_str() > trace_time(t0.saturating_add(Duration::from_secs(7))).as_str())
        .collect();
    assert!(times.len() <= 8, "{times:?}");
    let peer = f.nid(1, 0).to_string();
    assert!(
        after.iter().all(|l| !l.contains(&peer)),
        "nothing towards the partitioned peer after the LND timeout: {after:#?}"
    );
    let me = f.nid(0, 0).to_string();
    assert!(
        after
            .iter()
            .any(|l| l.contains(&format!("{me} > {me} GET"))),
        "the recovery ping left through the NI: {after:#?}"
    );
    let ni = f.ni(0, 0);
    assert_eq!(f.inspect(0, |l| l.ni(ni).expect("ni").health_value()), 1000);
}

#[test]
fn the_lnd_reports_a_dead_peer_and_traffic_revives_it() {
    let mut f = Fabric::new(seed_from_env(50));
    for i in 0..2u8 {
        f.add_node(
            NodeSpec::new().ni(NiSpec::tcp([10, 0, 0, 1 + i])
                .timeout(3)
                .notify_dead_peers()),
        );
    }
    let peer = f.nid(1, 0);
    let up = |f: &Fabric| {
        f.inspect(0, |l| {
            let p = l.peer(&peer).expect("peer");
            let pni = p.peer_nis().next().expect("peer NI");
            pni.is_up()
        })
    };
    f.post(
        1,
        PORTAL,
        BITS,
        64,
        MdOptions::OP_PUT | MdOptions::MANAGE_REMOTE,
        Threshold::Infinite,
    );
    f.post(
        0,
        PORTAL,
        BITS,
        64,
        MdOptions::OP_PUT | MdOptions::MANAGE_REMOTE,
        Threshold::Infinite,
    );
    let cut = f.partition(&[0], &[1], f.now(), None);
    let (md, _) = f.bind(0, &[1; 64], Threshold::Count(1));
    f.put(0, md, AckReq::NoAck, f.pid(1), PORTAL, BITS, 0)
        .expect("put");
    f.settle();
    assert!(!up(&f), "the LND's notify marked the peer NI down");
    let trace = f.trace();
    assert!(trace
        .iter()
        .any(|l| l.contains("notifies 10.0.0.2@tcp dead")));
    assert!(
        trace
            .iter()
            .any(|l| l.contains("told 10.0.0.2@tcp is down")),
        "the engine told the LND back (notify_peer_down): {trace:#?}"
    );
    // Healed: the peer talks to us, so it is alive again.
    let now = f.now();
    f.heal(cut, now);
    let (md, _) = f.bind(1, &[2; 64], Threshold::Count(1));
    f.put(1, md, AckReq::NoAck, f.pid(0), PORTAL, BITS, 0)
        .expect("put");
    f.settle();
    assert!(up(&f), "received traffic revives the peer NI");
}

#[test]
fn behind_a_dead_peer_queued_messages_meet_their_deadline_in_the_engine() {
    // peer_credits 1 and a dead peer: each send waits for the previous one
    // to be given up by the LND (10 s). The engine's deadline for all of
    // them is 10 s x (retry_count 2 + 1) + 1 s = 31 s after they were
    // committed: what is still queued then is dropped without being sent.
    let mut f = Fabric::new(seed_from_env(59));
    for i in 0..2u8 {
        f.add_node(NodeSpec::new().ni(NiSpec::tcp([10, 0, 0, 1 + i]).credits(8, 1).timeout(10)));
    }
    // Discovered before the partition (an undiscovered dead peer fails
    // every parked message with its discovery error instead).
    f.discover_all();
    f.reset_link_stats();
    f.call(0, |l, _| l.stats_reset());
    f.partition(&[0], &[1], f.now(), None);
    let t0 = f.now();
    let mds: Vec<_> = (0..5)
        .map(|i| {
            let (md, _) = f.bind(0, &[i; 16], Threshold::Count(1));
            f.put(0, md, AckReq::NoAck, f.pid(1), PORTAL, BITS, u64::from(i))
                .expect("put");
            md
        })
        .collect();
    f.settle();
    let evs = f.take_md_events(0);
    assert_eq!(evs.len(), 5);
    assert!(evs.iter().all(|e| e.status == -errno::ETIMEDOUT), "{evs:?}");
    // The fifth is dropped by the engine at its deadline (32 s), before the
    // LND gives the fourth up (41 s).
    let order: Vec<usize> = evs
        .iter()
        .map(|e| mds.iter().position(|m| *m == e.md).expect("one of ours"))
        .collect();
    assert_eq!(order, [0, 1, 2, 4, 3]);
    let trace = f.trace();
    assert!(
        trace.iter().any(|l| l.starts_with(&format!(
            "{}n0 event Send",
            trace_time(t0.saturating_add(Duration::from_secs(31)))
        )) && l.contains("status=-110")),
        "{trace:#?}"
    );
    // Four reached the LND (launched at 0, 10, 20, 30 s, before the
    // deadline); the fifth never left the engine.
    let st = f.link_stats(f.nid(0, 0), f.nid(1, 0));
    assert_eq!((st.sent, st.lost, st.max_in_flight), (4, 4, 1));
    let ni = f.ni(0, 0);
    // None was delivered: all five are drops (the four the LND gave up and
    // the queued one), none counts as sent (issue 11 item 6).
    let s = f.inspect(0, |l| *l.ni(ni).expect("ni").stats());
    assert_eq!((s.dropped.put, s.sent.put), (5, 0));
    let g = f.inspect(0, |l| *l.stats());
    assert_eq!((g.drop_count, g.drop_length), (5, 5 * 16));
    // What the node did send are its NI's recovery pings to itself (the
    // timeouts blamed the local NI too, §8.6): GETs and their REPLYs only.
    assert_eq!(s.sent.get, s.sent.reply, "{s:?}");
    assert_eq!(g.send_count, s.sent.get + s.sent.reply, "{g:?}");
    assert_eq!(g.send_length, s.send_length, "{g:?}");
    assert!(f.now().since(t0) >= Duration::from_secs(40));
}
