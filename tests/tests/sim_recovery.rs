//! Local NI recovery on the simulated fabric (semantics §8.1, §8.6): a local
//! NI that failed is pinged at its own NID through its own interface, with
//! the 2^n backoff; every successful REPLY brings it `health_sensitivity`
//! closer to 1000; at 0 it is DOWN in the ping buffer until it is back at
//! 1000. Traffic meanwhile moves to the healthy NI, and nothing is lost or
//! delivered twice.

use lnet_core::lnd_api::{HealthStatus, Nid};
use lnet_core::{AckReq, Duration, EventKind, MdOptions, Threshold};
use lnet_tests::sim::{pattern, seed_from_env, Fabric, LinkParams, NiSpec, NodeSpec};

const PORTAL: u32 = 17;
const BITS: u64 = 0x7ec0;
const LEN: usize = 1024;

/// Two nodes with two tcp NIs each; node 0 has discovered node 1.
fn dual_rail(seed: u64) -> Fabric {
    let mut f = Fabric::new(seed_from_env(seed));
    f.set_default_link(LinkParams::new().latency(Duration::from_micros(30)));
    for i in 0..2u8 {
        f.add_node(
            NodeSpec::new()
                .ni(NiSpec::tcp([10, 0, 0, 1 + i]))
                .ni(NiSpec::tcp([10, 0, 0, 11 + i])),
        );
    }
    let prim = f.nid(1, 0);
    assert_eq!(f.discover(0, prim, false), Ok(prim));
    f.settle();
    f.reset_link_stats();
    f
}

fn health(f: &Fabric, node: usize, k: usize) -> u32 {
    let ni = f.ni(node, k);
    f.inspect(node, |l| l.ni(ni).expect("ni").health_value())
}

/// The status our ping buffer shows for `nid`.
fn served_up(f: &Fabric, node: usize, nid: Nid) -> bool {
    f.inspect(node, |l| {
        l.ping_info()
            .expect("ping info")
            .nis
            .iter()
            .find(|s| s.nid == nid)
            .expect("NID in the ping buffer")
            .is_up()
    })
}

fn local_queue(f: &Fabric, node: usize) -> Vec<Nid> {
    f.inspect(node, |l| {
        l.local_recovery_queue()
            .into_iter()
            .map(|(n, _)| n)
            .collect()
    })
}

#[test]
fn a_local_ni_set_to_zero_is_down_then_pinged_back_up_through_itself() {
    let mut f = dual_rail(71);
    let (a0, a1) = (f.nid(0, 0), f.nid(0, 1));
    let ni0 = f.ni(0, 0);
    f.call(0, |l, now| l.ni_set_health(now, ni0, 0))
        .expect("set");
    assert!(!served_up(&f, 0, a0), "health 0 is DOWN in the ping buffer");
    assert!(served_up(&f, 0, a1));
    assert_eq!(local_queue(&f, 0), vec![a0]);
    // The first ping goes out within a second, a0 -> a0, through the NI.
    f.run_for(Duration::from_secs(2));
    let pinged = f.link_stats(a0, a0).delivered;
    assert!(
        pinged >= 2,
        "the GET and its REPLY crossed a0 -> a0 ({pinged})"
    );
    let h = health(&f, 0, 0);
    assert!((100..1000).contains(&h), "one REPLY raised it: {h}");
    // Still DOWN: it comes back UP only at full health.
    assert!(!served_up(&f, 0, a0));
    // Ten successful pings (every ~2 s: each REPLY received on the NI resets
    // its ping count) bring it to 1000.
    f.run_for(Duration::from_secs(40));
    assert_eq!(health(&f, 0, 0), 1000);
    assert!(served_up(&f, 0, a0), "back UP at 1000");
    assert!(local_queue(&f, 0).is_empty(), "off the queue at 1000");
    // No peer object was made for our own NID, nothing hangs, and the
    // pings stop.
    assert!(f.inspect(0, |l| l.peer(&a0).is_none()));
    f.reset_link_stats();
    f.run_for(Duration::from_secs(30));
    assert_eq!(f.link_stats(a0, a0).sent, 0, "no pings once recovered");
    assert!(f.hanging().is_empty(), "{:?}", f.hanging());
}

#[test]
fn a_broken_interface_loses_nothing_stays_queued_and_recovers_when_it_returns() {
    let mut f = dual_rail(72);
    let a0 = f.nid(0, 0);
    let (b0, b1) = (f.nid(1, 0), f.nid(1, 1));
    // a0's interface drops everything it is given (a resendable local
    // failure), towards the peer and towards itself.
    let broken = LinkParams::new()
        .latency(Duration::from_micros(30))
        .loss(1.0)
        .loss_status(HealthStatus::LOCAL_DROPPED);
    for to in [a0, b0, b1] {
        f.set_link(a0, to, broken);
    }
    const N: usize = 40;
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
    f.run_for(Duration::from_secs(1));
    f.settle();
    // Every PUT ends in exactly one outcome at the sender: acknowledged, or
    // a failure event (an ACK headed for the broken a0 is lost: responses
    // are not resent, §8.4). None is delivered twice, and every
    // acknowledged PUT arrived intact.
    let evs = f.take_md_events(1);
    let mut seen: Vec<u64> = evs.iter().map(|e| e.hdr_data).collect();
    seen.sort_unstable();
    let before = seen.len();
    seen.dedup();
    assert_eq!(seen.len(), before, "a PUT was delivered twice");
    let got = buf.to_vec().expect("sink");
    for e in &evs {
        let off = e.offset as usize;
        assert_eq!(&got[off..off + LEN], &pattern(LEN, e.hdr_data as u8)[..]);
    }
    let sender = f.take_md_events(0);
    let mut acked = Vec::new();
    let mut failed = Vec::new();
    for e in &sender {
        match (e.kind, e.status) {
            (EventKind::Ack, 0) => acked.push(e.md),
            (EventKind::Send, 0) | (EventKind::Ack, _) => {}
            (EventKind::Send, _) => failed.push(e.md),
            _ => {}
        }
    }
    assert_eq!(
        acked.len() + failed.len(),
        N,
        "acked {acked:?}, failed {failed:?}"
    );
    assert!(
        failed.iter().all(|m| !acked.contains(m)),
        "a PUT both failed and was acknowledged"
    );
    assert!(seen.len() >= acked.len(), "every acknowledged PUT arrived");
    assert!(
        acked.len() * 4 >= N * 3,
        "most went through a1: {} of {N}",
        acked.len()
    );
    assert!(f.link_stats(a0, b0).sent + f.link_stats(a0, b1).sent > 0);
    // a0 failed: low health, on the recovery queue; its recovery pings fail
    // while the interface is broken.
    assert!(health(&f, 0, 0) < 1000);
    assert_eq!(health(&f, 0, 1), 1000);
    assert_eq!(local_queue(&f, 0), vec![a0]);
    f.run_for(Duration::from_secs(20));
    assert!(f.link_stats(a0, a0).sent >= 2, "pinged while broken");
    assert_eq!(local_queue(&f, 0), vec![a0], "still queued while broken");
    let ni0 = f.ni(0, 0);
    let pings = f
        .inspect(0, |l| l.local_recovery_pings(ni0))
        .expect("queued");
    assert!(pings >= 2, "backoff count grows while pings fail: {pings}");
    // The interface works again: the next pings succeed and bring it back.
    let fixed = LinkParams::new().latency(Duration::from_micros(30));
    for to in [a0, b0, b1] {
        f.set_link(a0, to, fixed);
    }
    // At most 2^pings s to the next ping, then ~2 s per ping.
    // The next ping is at most max_recovery_ping_interval (900 s) away;
    // from the first success on, one every ~2 s.
    let fixed_at = f.now();
    let mut first_ok = None;
    while health(&f, 0, 0) < 1000 && f.now().since(fixed_at) < Duration::from_secs(1000) {
        f.run_for(Duration::from_secs(1));
        if first_ok.is_none() && health(&f, 0, 0) > 0 {
            first_ok = Some(f.now());
        }
    }
    let first_ok = first_ok.expect("a recovery ping succeeded");
    assert!(
        f.now().since(first_ok) <= Duration::from_secs(30),
        "from the first good ping to 1000: {:?}",
        f.now().since(first_ok)
    );
    assert_eq!(health(&f, 0, 0), 1000);
    assert!(local_queue(&f, 0).is_empty());
    assert!(served_up(&f, 0, a0));
    assert!(f.hanging().is_empty(), "{:?}", f.hanging());
}

#[test]
fn no_recovery_ping_while_the_lnd_reports_the_link_down() {
    // A link the LND reports down (fatal): the NI stays queued but is not
    // pinged (a ping to our own address could succeed through the host's
    // local route and fake a recovery); link up: pinged back to 1000.
    let mut f = dual_rail(73);
    let a0 = f.nid(0, 0);
    let ni0 = f.ni(0, 0);
    f.set_ni_link(0, 0, false);
    f.call(0, |l, now| l.ni_set_health(now, ni0, 300))
        .expect("set");
    f.reset_link_stats();
    f.run_for(Duration::from_secs(30));
    assert_eq!(f.link_stats(a0, a0).sent, 0, "no ping on a dead link");
    assert_eq!(health(&f, 0, 0), 300);
    assert_eq!(local_queue(&f, 0), vec![a0]);
    assert!(
        !served_up(&f, 0, a0),
        "link down is DOWN in the ping buffer"
    );
    f.set_ni_link(0, 0, true);
    f.run_for(Duration::from_secs(30));
    assert_eq!(health(&f, 0, 0), 1000);
    assert!(
        f.link_stats(a0, a0).delivered >= 14,
        "seven pings and replies"
    );
    assert!(served_up(&f, 0, a0));
    assert!(f.hanging().is_empty(), "{:?}", f.hanging());
}
