//! Random workloads on random faulty fabrics, many seeds: whatever the
//! network does, every operation ends exactly once, nothing is left hanging,
//! no contract is broken, and what is reported delivered is intact.

use lnet_core::lnd_api::{HealthStatus, IoBuf, Payload};
use lnet_core::{
    AckReq, Duration, EventKind, GlobalTunables, MdHandle, MdOptions, Threshold, MAX_PAYLOAD,
};
use lnet_tests::sim::{
    pattern, seed_from_env, Fabric, LinkParams, NiSpec, NodeSpec, Rng, SeedGuard, TCP1,
};

const PORTAL: u32 = 40;
const BITS: u64 = 0xdead_beef;
/// Bytes of each node's target buffer: PUTs land in per-operation slots
/// there, GETs read from it.
const SLOT: usize = 20_000;
const SLOTS: usize = 24;

struct Op {
    from: usize,
    md: MdHandle,
    kind: Kind,
    /// The initiator's buffer.
    buf: IoBuf,
    len: usize,
}

enum Kind {
    Put {
        to: usize,
        slot: usize,
        ack: bool,
        salt: u8,
    },
    Get {
        to: usize,
        offset: usize,
    },
}

/// What one scenario saw.
#[derive(Default)]
struct Tally {
    lost: u64,
    resent: u64,
    duplicated: u64,
    corrupted: u64,
    failed_ops: usize,
    good_ops: usize,
}

fn scenario(seed: u64, tally: &mut Tally) {
    let mut rng = Rng::new(seed);
    let mut t = GlobalTunables::default();
    t.transaction_timeout = 30;
    let mut f = Fabric::new(seed);
    let base = LinkParams::new()
        .latency(Duration::from_micros(1 + rng.below(200)))
        .jitter(Duration::from_micros(rng.below(100)))
        .loss(rng.below(8) as f64 / 100.0)
        .loss_status(match rng.below(3) {
            0 => HealthStatus::NETWORK_TIMEOUT,
            1 => HealthStatus::REMOTE_DROPPED,
            _ => HealthStatus::LOCAL_DROPPED,
        })
        .duplicate(rng.below(3) as f64 / 100.0)
        .corrupt(rng.below(3) as f64 / 100.0)
        .bandwidth(1_000_000_000 + rng.below(10_000_000_000));
    f.set_default_link(if rng.chance(0.5) {
        base
    } else {
        base.unordered()
    });
    let nodes = 2 + rng.below(3) as usize;
    let mut rails = Vec::new();
    for i in 0..nodes {
        let two = rng.chance(0.5);
        let credits = 1 + rng.below(16) as i32;
        let peer_credits = 1 + rng.below(credits as u64) as i32;
        let mut spec = NodeSpec::new()
            .tunables(t.clone())
            .ni(NiSpec::tcp([10, 0, 0, 1 + i as u8])
                .credits(credits, peer_credits)
                .timeout(2 + rng.below(4) as u32));
        if two {
            spec = spec.ni(NiSpec::new(TCP1, [10, 1, 0, 1 + i as u8]).timeout(3));
        }
        f.add_node(spec);
        rails.push(two);
    }
    // Multi-Rail peers where both sides have two rails.
    for a in 0..nodes {
        for b in 0..nodes {
            if a != b && rails[a] && rails[b] && rng.chance(0.7) {
                let (p, o) = (f.nid(b, 0), f.nid(b, 1));
                f.call(a, |l, _| l.peer_add(p, &[o], true))
                    .expect("peer add");
            }
        }
    }
    // Every node's target buffer, with known content for GETs.
    let mut targets = Vec::new();
    let contents: Vec<Vec<u8>> = (0..nodes).map(|n| pattern(SLOT * SLOTS, n as u8)).collect();
    for (n, content) in contents.iter().enumerate() {
        let (_, buf) = f.post(
            n,
            PORTAL,
            BITS,
            SLOT * SLOTS,
            MdOptions::OP_PUT | MdOptions::OP_GET | MdOptions::MANAGE_REMOTE,
            Threshold::Infinite,
        );
        Payload::single(buf.clone())
            .write_at(0, content)
            .expect("free");
        targets.push(buf);
    }
    // A cut somewhere, sometimes.
    if rng.chance(0.5) {
        let a = rng.below(nodes as u64) as usize;
        let b = (a + 1) % nodes;
        let from = f
            .now()
            .saturating_add(Duration::from_micros(rng.below(3000)));
        let until = from.saturating_add(Duration::from_secs(rng.below(20)));
        f.partition(&[a], &[b], from, Some(until));
    }
    let mut ops = Vec::new();
    let mut next_slot = vec![0usize; nodes];
    // Sometimes an interface goes down for a while (between two operations).
    let flap = rng.chance(0.3).then(|| {
        let node = rng.below(nodes as u64) as usize;
        let k = if rails[node] {
            rng.below(2) as usize
        } else {
            0
        };
        let down = rng.below(40) as usize;
        (node, k, down, down + rng.below(10) as usize)
    });
    for step in 0..40 {
        if let Some((node, k, down, up)) = flap {
            if step == down {
                f.set_ni_link(node, k, false);
            }
            if step == up {
                f.set_ni_link(node, k, true);
            }
        }
        let from = rng.below(nodes as u64) as usize;
        let to = (from + 1 + rng.below(nodes as u64 - 1) as usize) % nodes;
        let len = match rng.below(4) {
            0 => 0,
            1 => rng.below(64) as usize,
            2 => rng.below(SLOT as u64) as usize,
            _ => 4096,
        };
        assert!(len as u32 <= MAX_PAYLOAD);
        let target = f.pid(to);
        if rng.chance(0.6) && next_slot[to] < SLOTS {
            let slot = next_slot[to];
            next_slot[to] += 1;
            let ack = rng.chance(0.7);
            let salt = rng.below(256) as u8;
            let (md, buf) = f.bind(
                from,
                &pattern(len, salt),
                Threshold::Count(if ack { 2 } else { 1 }),
            );
            let req = if ack { AckReq::Ack } else { AckReq::NoAck };
            let off = (slot * SLOT) as u32;
            f.call(from, |l, now| {
                l.put(now, None, md, req, target, PORTAL, BITS, off, slot as u64)
            })
            .expect("put");
            ops.push(Op {
                from,
                md,
                kind: Kind::Put {
                    to,
                    slot,
                    ack,
                    salt,
                },
                buf,
                len,
            });
        } else {
            let offset = rng.below((SLOT * SLOTS - len) as u64) as usize;
            let (md, buf) = f.bind(from, &vec![0; len], Threshold::Count(2));
            f.call(from, |l, now| {
                l.get(now, None, md, target, PORTAL, BITS, offset as u32)
            })
            .expect("get");
            ops.push(Op {
                from,
                md,
                kind: Kind::Get { to, offset },
                buf,
                len,
            });
        }
        if rng.chance(0.3) {
            f.run_for(Duration::from_micros(rng.below(500)));
        }
    }
    f.settle();
    let mut events: Vec<Vec<_>> = (0..nodes).map(|n| f.take_md_events(n)).collect();
    for (i, op) in ops.iter().enumerate() {
        let mine: Vec<_> = events[op.from]
            .iter()
            .filter(|e| e.md == op.md)
            .copied()
            .collect();
        let last = mine.iter().filter(|e| e.unlinked).count();
        assert_eq!(last, 1, "op {i}: exactly one final event: {mine:?}");
        assert!(
            mine.last().is_some_and(|e| e.unlinked),
            "op {i}: final event last: {mine:?}"
        );
        match op.kind {
            Kind::Put {
                to,
                slot,
                ack,
                salt,
            } => {
                let acked = mine
                    .iter()
                    .any(|e| e.kind == EventKind::Ack && e.status == 0);
                assert!(ack || !acked, "op {i}: an ACK nobody asked for");
                if acked {
                    let mut got = vec![0u8; op.len];
                    Payload::single(targets[to].clone())
                        .read_at(slot * SLOT, &mut got)
                        .expect("free");
                    assert_eq!(
                        got,
                        pattern(op.len, salt),
                        "op {i}: acknowledged PUT intact"
                    );
                }
            }
            Kind::Get { to, offset } => {
                if mine
                    .iter()
                    .any(|e| e.kind == EventKind::Reply && e.status == 0)
                {
                    let want = &contents[to][offset..offset + op.len];
                    // Slots written by PUTs changed the target's buffer: only
                    // compare bytes no PUT could have touched.
                    let got = op.buf.to_vec().expect("free");
                    let touched = |b: usize| next_slot[to] > b / SLOT;
                    for (k, (g, w)) in got.iter().zip(want).enumerate() {
                        if !touched(offset + k) {
                            assert_eq!(g, w, "op {i}: REPLY byte {k} intact");
                        }
                    }
                }
            }
        }
    }
    let st = f.total_link_stats();
    tally.lost += st.lost;
    tally.resent += (0..nodes)
        .map(|n| f.inspect(n, |l| l.stats().resend_count))
        .sum::<u64>();
    tally.duplicated += st.duplicated;
    tally.corrupted += st.corrupted;
    for op in &ops {
        let failed = events[op.from]
            .iter()
            .any(|e| e.md == op.md && e.status != 0);
        if failed {
            tally.failed_ops += 1;
        } else {
            tally.good_ops += 1;
        }
    }
    for evs in &mut events {
        evs.clear();
    }
}

#[test]
fn random_workloads_on_faulty_fabrics() {
    let base = seed_from_env(0x5eed_0000);
    let mut tally = Tally::default();
    for s in 0..40 {
        let seed = base.wrapping_add(s);
        let _guard = SeedGuard::new(seed);
        scenario(seed, &mut tally);
    }
    // The workloads did meet the faults they were meant to survive.
    assert!(tally.lost > 0 && tally.duplicated > 0 && tally.corrupted > 0);
    assert!(tally.resent > 0, "no drop was ever resent");
    assert!(tally.failed_ops > 0 && tally.good_ops > tally.failed_ops);
}
