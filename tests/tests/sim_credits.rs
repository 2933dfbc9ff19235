//! Send credits on the simulated fabric (semantics §5.1): many sends to one
//! peer with small `peer_credits` / `credits` queue, the network never
//! carries more than the credits allow, and the queue drains in order.

use lnet_core::{AckReq, Duration, EventKind, MdOptions, Threshold};
use lnet_tests::sim::{pattern, seed_from_env, Fabric, LinkParams, NiSpec, NodeSpec};

const PORTAL: u32 = 12;
const BITS: u64 = 0xc0ffee;

fn fabric(seed: u64, credits: i32, peer_credits: i32, targets: usize) -> Fabric {
    let mut f = Fabric::new(seed_from_env(seed));
    f.set_default_link(
        LinkParams::new()
            .latency(Duration::from_micros(50))
            .jitter(Duration::from_micros(30))
            .bandwidth(1_000_000_000),
    );
    f.add_node(NodeSpec::new().ni(NiSpec::tcp([10, 0, 0, 1]).credits(credits, peer_credits)));
    for i in 0..targets {
        f.add_node(NodeSpec::new().ni(NiSpec::tcp([10, 0, 0, 2 + i as u8])));
    }
    // Peers discovered first (§9.2): the scenarios count their own traffic.
    f.discover_all();
    f.reset_link_stats();
    f
}

/// Posts an MD on `node` that takes `n` PUTs of `len` bytes (one slot each,
/// managed locally), so arrival order shows in the offsets too.
fn sink(f: &mut Fabric, node: usize, n: usize, len: usize) -> lnet_core::lnd_api::IoBuf {
    let (_, buf) = f.post(
        node,
        PORTAL,
        BITS,
        n * len,
        MdOptions::OP_PUT,
        Threshold::Count(n as u32),
    );
    buf
}

fn peer_credits(f: &Fabric, node: usize, peer: lnet_core::lnd_api::Nid) -> (i32, i32, i32) {
    f.inspect(node, |l| {
        let p = l.peer(&peer).expect("peer known");
        let pni = p.peer_nis().find(|n| n.nid() == peer).expect("peer NI");
        (pni.tx_credits(), pni.min_tx_credits(), pni.max_tx_credits())
    })
}

#[test]
fn sends_beyond_peer_credits_queue_and_drain_in_order() {
    const N: usize = 20;
    const LEN: usize = 1000;
    let mut f = fabric(21, 8, 2, 1);
    let buf = sink(&mut f, 1, N, LEN);
    let target = f.nid(1, 0);
    for i in 0..N {
        let (md, _) = f.bind(0, &pattern(LEN, i as u8), Threshold::Count(1));
        f.put(0, md, AckReq::NoAck, f.pid(1), PORTAL, BITS, i as u64)
            .expect("put accepted");
    }
    // Before any time passes: 2 sends at the LND, 18 waiting for a peer credit.
    assert_eq!(peer_credits(&f, 0, target), (2 - N as i32, 2 - N as i32, 2));
    let ni = f.ni(0, 0);
    assert_eq!(f.inspect(0, |l| l.ni(ni).expect("ni").tx_credits()), 8 - 2);
    assert_eq!(f.link_stats(f.nid(0, 0), target).sent, 2);

    f.settle();

    // Never more than peer_credits on the wire; everything arrived.
    let st = f.link_stats(f.nid(0, 0), target);
    assert_eq!(st.max_in_flight, 2, "{st:?}");
    assert_eq!(f.max_in_flight(0, 0), 2);
    assert_eq!((st.sent, st.delivered, st.lost), (N as u64, N as u64, 0));
    // Credits are all back; the low-water marks remember the queue.
    assert_eq!(peer_credits(&f, 0, target), (2, 2 - N as i32, 2));
    let (ni_now, ni_min) = f.inspect(0, |l| {
        let v = l.ni(ni).expect("ni");
        (v.tx_credits(), v.min_tx_credits())
    });
    assert_eq!(
        (ni_now, ni_min),
        (8, 6),
        "the NI never held more than the peer allowed"
    );

    // Arrival order = send order: hdr_data counts up, offsets follow, and
    // each slot holds its own PUT's bytes.
    let evs = f.take_md_events(1);
    assert_eq!(evs.len(), N);
    for (i, e) in evs.iter().enumerate() {
        assert_eq!(e.kind, EventKind::Put);
        assert_eq!(
            (e.hdr_data, e.offset, e.mlength),
            (i as u64, (i * LEN) as u32, LEN as u32)
        );
    }
    let got = buf.to_vec().expect("free");
    for i in 0..N {
        assert_eq!(
            &got[i * LEN..(i + 1) * LEN],
            &pattern(LEN, i as u8)[..],
            "slot {i}"
        );
    }
    let sends = f.take_md_events(0);
    assert_eq!(sends.len(), N);
    assert!(sends
        .iter()
        .all(|e| e.kind == EventKind::Send && e.status == 0));
}

#[test]
fn ni_credits_are_shared_by_all_peers_and_drain_in_order() {
    const PER_PEER: usize = 10;
    const LEN: usize = 512;
    // credits 2 < 2 peers x peer_credits 2: the NI is the bottleneck.
    let mut f = fabric(22, 2, 2, 2);
    let bufs = [
        sink(&mut f, 1, PER_PEER, LEN),
        sink(&mut f, 2, PER_PEER, LEN),
    ];
    for i in 0..PER_PEER {
        for t in [1, 2] {
            let salt = (i * 2 + t) as u8;
            let (md, _) = f.bind(0, &pattern(LEN, salt), Threshold::Count(1));
            f.put(0, md, AckReq::NoAck, f.pid(t), PORTAL, BITS, i as u64)
                .expect("put accepted");
        }
    }
    let ni = f.ni(0, 0);
    // 2 at the LND; 2 more hold a peer credit and wait for the NI.
    assert_eq!(f.inspect(0, |l| l.ni(ni).expect("ni").tx_credits()), -2);
    f.settle();
    let (now, min) = f.inspect(0, |l| {
        let v = l.ni(ni).expect("ni");
        (v.tx_credits(), v.min_tx_credits())
    });
    assert_eq!((now, min), (2, -2));
    let me = f.nid(0, 0);
    assert_eq!(
        f.max_in_flight(0, 0),
        2,
        "never more than credits at the LND"
    );
    for t in [1usize, 2] {
        let st = f.link_stats(me, f.nid(t, 0));
        assert!(st.max_in_flight <= 2, "{st:?}");
        assert_eq!(st.delivered, PER_PEER as u64);
        let evs = f.take_md_events(t);
        let order: Vec<u64> = evs.iter().map(|e| e.hdr_data).collect();
        assert_eq!(order, (0..PER_PEER as u64).collect::<Vec<_>>(), "node {t}");
        let got = bufs[t - 1].to_vec().expect("free");
        for i in 0..PER_PEER {
            let salt = (i * 2 + t) as u8;
            assert_eq!(&got[i * LEN..(i + 1) * LEN], &pattern(LEN, salt)[..]);
        }
    }
}
