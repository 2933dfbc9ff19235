//! Randomized traffic between three engines through the pump, with held
//! deliveries and failing links: afterwards every message is finalized, every
//! credit is back, every delivered payload is intact, and every initiator MD
//! saw exactly one SEND and at most one ACK/REPLY.

mod pump;

use std::collections::HashMap;

use lnet_core::lnd_api::{HealthStatus, IoBuf, Payload};
use lnet_core::{
    AckReq, EventKind, InsPos, MdHandle, MdOptions, MdSpec, NiId, ProcessId, Threshold, Unlink,
};
use proptest::prelude::*;
use pump::*;

#[derive(Clone, Debug)]
enum Op {
    Put {
        from: usize,
        to: usize,
        len: usize,
        ack: bool,
    },
    Get {
        from: usize,
        to: usize,
        len: usize,
    },
    Hold,
    Release,
    Break(usize),
    Heal(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0usize..3, 0usize..3, 0usize..9000, any::<bool>()).prop_map(|(from, to, len, ack)| Op::Put { from, to, len, ack }),
        3 => (0usize..3, 0usize..3, 0usize..9000).prop_map(|(from, to, len)| Op::Get { from, to, len }),
        1 => Just(Op::Hold),
        2 => Just(Op::Release),
        1 => (0usize..3).prop_map(Op::Break),
        1 => (0usize..3).prop_map(Op::Heal),
    ]
}

/// Kind, status, unlinked of one event.
type Seen = (EventKind, i32, bool);

struct Expect {
    node: usize,
    kind: EventKind,
    target: IoBuf,
    data: Vec<u8>,
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]
    #[test]
    fn random_traffic_leaves_no_message_credit_or_byte_behind(ops in proptest::collection::vec(op(), 1..40)) {
        let mut f = Fabric::with_credits(3, 3, 2);
        // Everyone knows everyone first: discovery (§9) of a broken peer
        // would park messages until its transaction timeout.
        for a in 0..3 {
            for b in 0..3 {
                if a != b {
                    f.discover(a, b);
                }
            }
        }
        let mut expects: HashMap<(usize, MdHandle), Expect> = HashMap::new();
        for (bits, op) in (1u64..).zip(ops) {
            let now = f.now;
            match op {
                Op::Put { from, to, len, ack } => {
                    let data = pattern(len, bits as u8);
                    let tb = IoBuf::zeroed(len);
                    let me = f.nodes[to].lnet.me_attach(6, ProcessId::ANY, bits, 0, Unlink::Unlink, InsPos::After).expect("me");
                    f.nodes[to].lnet.md_attach(me, MdSpec::new(Payload::single(tb.clone()), MdOptions::OP_PUT, Threshold::Count(1)), Unlink::Unlink).expect("md");
                    let md = f.nodes[from].lnet.md_bind(MdSpec::new(Payload::single(IoBuf::from_vec(data.clone())), MdOptions::NONE, Threshold::Count(if ack { 2 } else { 1 })), Unlink::Unlink).expect("bind");
                    let a = if ack { AckReq::Ack } else { AckReq::NoAck };
                    f.nodes[from].lnet.put(now, None, md, a, pid(to), 6, bits, 0, bits).expect("put");
                    expects.insert((from, md), Expect { node: to, kind: if ack { EventKind::Ack } else { EventKind::Send }, target: tb, data });
                }
                Op::Get { from, to, len } => {
                    let data = pattern(len, bits as u8);
                    let me = f.nodes[to].lnet.me_attach(6, ProcessId::ANY, bits, 0, Unlink::Unlink, InsPos::After).expect("me");
                    f.nodes[to].lnet.md_attach(me, MdSpec::new(Payload::single(IoBuf::from_vec(data.clone())), MdOptions::OP_GET, Threshold::Count(1)), Unlink::Unlink).expect("md");
                    let sink = IoBuf::zeroed(len);
                    let md = f.nodes[from].lnet.md_bind(MdSpec::new(Payload::single(sink.clone()), MdOptions::NONE, Threshold::Count(2)), Unlink::Unlink).expect("bind");
                    f.nodes[from].lnet.get(now, None, md, pid(to), 6, bits, 0).expect("get");
                    expects.insert((from, md), Expect { node: from, kind: EventKind::Reply, target: sink, data });
                }
                Op::Hold => f.hold = true,
                Op::Release => f.release(),
                Op::Break(n) => { f.fail_to.insert(nid(n), HealthStatus::REMOTE_DROPPED); }
                Op::Heal(n) => { f.fail_to.remove(&nid(n)); }
            }
            f.run();
        }
        f.fail_to.clear();
        f.release();
        // Nothing waits any more: every message finished without timers.
        for i in 0..3 {
            prop_assert_eq!(f.nodes[i].lnet.stats().msgs_alloc, 0, "node {} stalled", i);
        }
        // Give every waiting message its deadline, then drain.
        f.advance(lnet_core::Duration::from_secs(1000));
        for i in 0..3 {
            let l = &f.nodes[i].lnet;
            prop_assert_eq!(l.stats().msgs_alloc, 0, "node {} has messages left", i);
            prop_assert_eq!(l.stats().stale_tokens, 0);
            let ni = l.ni(f.nodes[i].ni).expect("ni");
            prop_assert_eq!(ni.tx_credits(), ni.max_tx_credits());
            for p in l.peers() {
                for pni in p.peer_nis() {
                    prop_assert_eq!(pni.tx_credits(), pni.max_tx_credits());
                    prop_assert_eq!(pni.txqnob(), 0);
                }
            }
            prop_assert_eq!(l.ni(NiId::LO).expect("lo").tx_credits(), 0);
        }
        let mut seen: HashMap<(usize, MdHandle), Vec<Seen>> = HashMap::new();
        for i in 0..3 {
            for e in f.md_events(i) {
                seen.entry((i, e.md)).or_default().push((e.kind, e.status, e.unlinked));
            }
        }
        for (key, exp) in &expects {
            let evs = seen.get(key).cloned().unwrap_or_default();
            let sends = evs.iter().filter(|e| e.0 == EventKind::Send).count();
            prop_assert_eq!(sends, 1, "one SEND per request: {:?}", evs);
            prop_assert_eq!(evs.iter().filter(|e| e.2).count(), 1, "one final event: {:?}", evs);
            let ok = evs.iter().any(|e| e.0 == exp.kind && e.1 == 0) && evs.iter().all(|e| e.1 == 0);
            if ok {
                prop_assert_eq!(exp.target.to_vec().expect("free"), exp.data.clone(), "payload intact (node {})", exp.node);
            }
        }
    }
}
