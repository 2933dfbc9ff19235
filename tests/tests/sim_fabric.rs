//! The simulated fabric's own mechanics: event order, jitter and FIFO
//! links, bandwidth, scheduled cuts, NI removal, contract checks, and the
//! seed printed on failure.

use lnet_core::lnd_api::hdr::PutBody;
use lnet_core::lnd_api::{errno, Hdr, RxToken, WireHandle};
use lnet_core::{AckReq, Duration, EventKind, MdOptions, Threshold};
use lnet_tests::sim::{pattern, seed_from_env, Fabric, LinkParams, NiSpec, NodeSpec};

const PORTAL: u32 = 30;
const BITS: u64 = 0x5151;

fn nodes(seed: u64, n: usize, link: LinkParams) -> Fabric {
    let mut f = Fabric::new(seed);
    f.set_default_link(link);
    for i in 0..n {
        f.add_node(NodeSpec::new().ni(NiSpec::tcp([10, 0, 0, 1 + i as u8]).timeout(4)));
    }
    // Peers discovered first (§9.2): the scenarios count their own traffic.
    f.discover_all();
    f.reset_link_stats();
    f
}

/// Sends `n` small PUTs from node 0 to node 1 at the same instant and
/// returns the order (hdr_data) in which node 1 saw them.
fn arrival_order(f: &mut Fabric, n: u64) -> Vec<u64> {
    f.post(
        1,
        PORTAL,
        BITS,
        8,
        MdOptions::OP_PUT | MdOptions::MANAGE_REMOTE,
        Threshold::Infinite,
    );
    for i in 0..n {
        let (md, _) = f.bind(0, &[i as u8; 8], Threshold::Count(1));
        f.put(0, md, AckReq::NoAck, f.pid(1), PORTAL, BITS, i)
            .expect("put");
    }
    f.settle();
    f.take_md_events(1).iter().map(|e| e.hdr_data).collect()
}

#[test]
fn simultaneous_arrivals_keep_the_order_they_were_sent_in() {
    // Two senders, same latency, same instant: ties go by scheduling order.
    let mut f = nodes(seed_from_env(51), 3, LinkParams::new());
    f.post(
        2,
        PORTAL,
        BITS,
        8,
        MdOptions::OP_PUT | MdOptions::MANAGE_REMOTE,
        Threshold::Infinite,
    );
    for round in 0..3u64 {
        for from in [1usize, 0] {
            let (md, _) = f.bind(from, &[0; 8], Threshold::Count(1));
            f.put(
                from,
                md,
                AckReq::NoAck,
                f.pid(2),
                PORTAL,
                BITS,
                round * 10 + from as u64,
            )
            .expect("put");
        }
    }
    f.settle();
    let order: Vec<u64> = f.take_md_events(2).iter().map(|e| e.hdr_data).collect();
    assert_eq!(order, [1, 0, 11, 10, 21, 20]);
}

#[test]
fn jitter_reorders_only_unordered_links() {
    let jittery = LinkParams::new()
        .latency(Duration::from_micros(10))
        .jitter(Duration::from_micros(50));
    let base = seed_from_env(52);
    let mut reordered = false;
    for s in 0..20 {
        let fifo = arrival_order(&mut nodes(base + s, 2, jittery), 16);
        assert_eq!(
            fifo,
            (0..16).collect::<Vec<_>>(),
            "a FIFO link keeps order (seed {})",
            base + s
        );
        let any = arrival_order(&mut nodes(base + s, 2, jittery.unordered()), 16);
        let mut sorted = any.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..16).collect::<Vec<_>>(), "all arrive once");
        reordered |= any != sorted;
    }
    assert!(
        reordered,
        "50 µs of jitter on 16 back-to-back messages never reordered"
    );
}

#[test]
fn bandwidth_serializes_payloads() {
    // 1 MiB at 1 GB/s takes 1 048 576 ns on the wire, plus 10 µs latency.
    let link = LinkParams::new()
        .latency(Duration::from_micros(10))
        .bandwidth(1_000_000_000);
    let mut f = nodes(seed_from_env(53), 2, link);
    f.post(
        1,
        PORTAL,
        BITS,
        1 << 20,
        MdOptions::OP_PUT | MdOptions::MANAGE_REMOTE,
        Threshold::Infinite,
    );
    let t0 = f.now();
    for i in 0..2 {
        let (md, _) = f.bind(0, &pattern(1 << 20, i), Threshold::Count(1));
        f.put(0, md, AckReq::NoAck, f.pid(1), PORTAL, BITS, u64::from(i))
            .expect("put");
    }
    assert!(f.step(), "the first PUT arrives");
    assert_eq!(f.now().since(t0), Duration::from_nanos(1_048_576 + 10_000));
    while f.take_md_events(1).is_empty() {
        assert!(f.step());
    }
    // The second waited for the first to leave the link.
    while f.take_md_events(1).is_empty() {
        assert!(f.step());
    }
    assert_eq!(
        f.now().since(t0),
        Duration::from_nanos(2 * 1_048_576 + 10_000)
    );
}

#[test]
fn a_scheduled_cut_loses_messages_only_while_it_lasts() {
    let mut f = nodes(seed_from_env(54), 2, LinkParams::new());
    let t0 = f.now();
    let (a, b) = (f.nid(0, 0), f.nid(1, 0));
    f.cut_link(
        a,
        b,
        t0.saturating_add(Duration::from_secs(1)),
        Some(t0.saturating_add(Duration::from_secs(2))),
    );
    f.post(
        1,
        PORTAL,
        BITS,
        8,
        MdOptions::OP_PUT | MdOptions::MANAGE_REMOTE,
        Threshold::Infinite,
    );
    let mut statuses = Vec::new();
    for at in [0u64, 1500, 2500] {
        f.run_until(t0.saturating_add(Duration::from_millis(at)));
        let (md, _) = f.bind(0, &[1; 8], Threshold::Count(1));
        f.put(0, md, AckReq::NoAck, f.pid(1), PORTAL, BITS, at)
            .expect("put");
        f.settle();
        let evs = f.take_md_events(0);
        assert_eq!(evs.len(), 1);
        statuses.push(evs[0].status);
    }
    assert_eq!(
        statuses,
        [0, -errno::ETIMEDOUT, 0],
        "before, during, after the cut"
    );
    let st = f.link_stats(a, b);
    assert_eq!((st.sent, st.delivered, st.lost), (3, 2, 1));
    let got: Vec<u64> = f.take_md_events(1).iter().map(|e| e.hdr_data).collect();
    assert_eq!(got, [0, 2500]);
}

#[test]
fn deleting_an_ni_finalizes_what_its_lnd_owned() {
    // A slow link: the PUT is still on the wire when its NI goes away.
    let mut f = nodes(
        seed_from_env(55),
        2,
        LinkParams::new().latency(Duration::from_millis(5)),
    );
    f.post(
        1,
        PORTAL,
        BITS,
        64,
        MdOptions::OP_PUT | MdOptions::MANAGE_REMOTE,
        Threshold::Infinite,
    );
    let (md, _) = f.bind(0, &pattern(64, 1), Threshold::Count(2));
    f.put(0, md, AckReq::Ack, f.pid(1), PORTAL, BITS, 0)
        .expect("put");
    f.del_ni(0, 0).expect("net del");
    // The LND gave the send back at once, failed.
    let evs = f.take_md_events(0);
    assert_eq!(evs.len(), 1, "{evs:?}");
    assert_eq!(
        (evs[0].kind, evs[0].status),
        (EventKind::Send, -errno::ENETDOWN)
    );
    assert_eq!(f.inspect(0, |l| l.nis().count()), 1, "only 0@lo is left");
    f.settle();
    // The bytes already on the wire still arrived; the ACK found nobody.
    assert_eq!(f.take_md_events(1).len(), 1);
    let back = f.link_stats(f.nid(1, 0), f.nid(0, 0));
    assert_eq!((back.sent, back.lost), (1, 1));
    // And messages to the deleted address are lost.
    let (md, _) = f.bind(1, &[0; 8], Threshold::Count(1));
    f.put(1, md, AckReq::NoAck, f.pid(0), PORTAL, BITS, 0)
        .expect("put");
    f.settle();
    assert_eq!(f.take_md_events(1)[0].status, -errno::ETIMEDOUT);
}

#[test]
#[should_panic(expected = "contract violated")]
fn a_broken_contract_fails_the_test() {
    // Feed the engine a header behind the LND's back: the recv it then asks
    // for names a receive token the LND never handed out.
    let mut f = nodes(seed_from_env(56), 2, LinkParams::new());
    f.post(
        1,
        PORTAL,
        BITS,
        8,
        MdOptions::OP_PUT | MdOptions::MANAGE_REMOTE,
        Threshold::Infinite,
    );
    let (from, to, ni) = (f.nid(0, 0), f.nid(1, 0), f.ni(1, 0));
    let body = PutBody {
        ack_wmd: WireHandle::NONE,
        match_bits: BITS,
        hdr_data: 0,
        ptl_index: PORTAL,
        offset: 0,
    };
    let hdr = Hdr::put(to, from, 12345, 12345, 0, body);
    let _ = f.call(1, |l, now| {
        l.handle_rx(now, ni, hdr, from, RxToken(999_999), false)
    });
}

/// Fails on purpose when `LNET_SIM_SELFTEST_FAIL` is set (run by the next
/// test in a child process); passes otherwise.
#[test]
fn selftest_failing_scenario() {
    if std::env::var_os("LNET_SIM_SELFTEST_FAIL").is_none() {
        return;
    }
    let f = nodes(seed_from_env(1), 2, LinkParams::new());
    assert_eq!(f.node_count(), 3, "deliberate failure");
}

#[test]
fn a_failing_scenario_prints_its_seed() {
    let out = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "selftest_failing_scenario",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("LNET_SIM_SELFTEST_FAIL", "1")
        .env("LNET_SIM_SEED", "0x4d")
        .env_remove("LNET_SIM_TRACE")
        .output()
        .expect("run the test binary");
    let err = String::from_utf8_lossy(&out.stderr);
    let all = format!("{err}{}", String::from_utf8_lossy(&out.stdout));
    assert!(!out.status.success(), "the scenario must fail:\n{all}");
    assert!(all.contains("deliberate failure"), "{all}");
    assert!(
        all.contains("sim seed: 77 (rerun with LNET_SIM_SEED=77)"),
        "{all}"
    );
}

#[test]
fn eight_nodes_all_to_all() {
    const NODES: usize = 8;
    const ROUNDS: usize = 4;
    const LEN: usize = 4096;
    let link = LinkParams::new()
        .latency(Duration::from_micros(20))
        .jitter(Duration::from_micros(20))
        .bandwidth(12_500_000_000);
    let mut f = nodes(seed_from_env(57), NODES, link);
    let slots = NODES * ROUNDS;
    let sinks: Vec<_> = (0..NODES)
        .map(|n| {
            f.post(
                n,
                PORTAL,
                BITS,
                slots * LEN,
                MdOptions::OP_PUT | MdOptions::MANAGE_REMOTE,
                Threshold::Infinite,
            )
            .1
        })
        .collect();
    for r in 0..ROUNDS {
        for from in 0..NODES {
            for to in (0..NODES).filter(|t| *t != from) {
                let slot = from * ROUNDS + r;
                let (md, _) = f.bind(from, &pattern(LEN, slot as u8), Threshold::Count(2));
                let target = f.pid(to);
                // Each sender writes its own slots of the target's buffer.
                f.call(from, |l, now| {
                    l.put(
                        now,
                        None,
                        md,
                        AckReq::Ack,
                        target,
                        PORTAL,
                        BITS,
                        (slot * LEN) as u32,
                        slot as u64,
                    )
                })
                .expect("put");
            }
        }
        f.run_for(Duration::from_micros(10));
    }
    f.settle();
    for (n, sink) in sinks.iter().enumerate() {
        let got = sink.to_vec().expect("free");
        let evs = f.take_md_events(n);
        let puts = evs.iter().filter(|e| e.kind == EventKind::Put).count();
        let acks = evs.iter().filter(|e| e.kind == EventKind::Ack).count();
        assert_eq!(
            (puts, acks),
            ((NODES - 1) * ROUNDS, (NODES - 1) * ROUNDS),
            "n{n}"
        );
        for from in (0..NODES).filter(|f| *f != n) {
            for r in 0..ROUNDS {
                let slot = from * ROUNDS + r;
                assert_eq!(
                    &got[slot * LEN..(slot + 1) * LEN],
                    &pattern(LEN, slot as u8)[..],
                    "n{n} slot {slot}"
                );
            }
        }
    }
}

#[test]
fn a_node_that_cannot_come_up_is_refused_with_the_reason() {
    let mut f = nodes(seed_from_env(58), 2, LinkParams::new());
    // An address another node has.
    let e = f
        .try_add_node(
            NodeSpec::new()
                .ni(NiSpec::tcp([10, 0, 0, 9]))
                .ni(NiSpec::tcp([10, 0, 0, 2])),
        )
        .expect_err("duplicate address");
    assert!(
        e.to_string()
            .contains("10.0.0.2@tcp is already used by node 1"),
        "{e}"
    );
    // No credits: the engine refuses the NI the LND brought up.
    let e = f
        .try_add_node(NodeSpec::new().ni(NiSpec::tcp([10, 0, 0, 3]).credits(0, 0)))
        .expect_err("no credits");
    assert!(e.to_string().contains("credits must be > 0"), "{e}");
    // A bad LND tunable.
    let mut bad = NiSpec::tcp([10, 0, 0, 3]);
    bad.lnd_tunables.push(("timeout".into(), "soon".into()));
    let e = f
        .try_add_node(NodeSpec::new().ni(bad))
        .expect_err("bad timeout");
    assert!(e.to_string().contains("timeout=\"soon\""), "{e}");
    // Nothing of the refused nodes is left: their addresses are free and
    // the fabric works as before.
    assert_eq!(f.node_count(), 2);
    let n = f.add_node(NodeSpec::new().ni(NiSpec::tcp([10, 0, 0, 9])));
    assert_eq!(n, 2);
    assert_eq!(f.nid(2, 0).to_string(), "10.0.0.9@tcp");
    f.post(2, PORTAL, BITS, 8, MdOptions::OP_PUT, Threshold::Count(1));
    let (md, _) = f.bind(0, &[5; 8], Threshold::Count(2));
    f.put(0, md, AckReq::Ack, f.pid(2), PORTAL, BITS, 0)
        .expect("put");
    f.settle();
    assert_eq!(f.take_md_events(2).len(), 1);
}
