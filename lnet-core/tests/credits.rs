//! Send credits (semantics §5.1): peer NI and NI credits, FIFO queues,
//! low-water marks, return on completion; as `net show -v` / `peer show -v` see them.

mod pump;

use lnet_core::lnd_api::{IoBuf, Nid, Payload};
use lnet_core::{AckReq, EventKind, InsPos, MdOptions, MdSpec, NiId, ProcessId, Threshold, Unlink};
use pump::*;

fn sink(f: &mut Fabric, node: usize) {
    let me = f.nodes[node]
        .lnet
        .me_attach(3, ProcessId::ANY, 1, 0, Unlink::Retain, InsPos::After)
        .expect("me");
    f.nodes[node]
        .lnet
        .md_attach(
            me,
            MdSpec::new(
                Payload::single(IoBuf::zeroed(1 << 16)),
                MdOptions::OP_PUT,
                Threshold::Infinite,
            ),
            Unlink::Retain,
        )
        .expect("md");
}

fn put(f: &mut Fabric, from: usize, to: usize, len: usize, hdr_data: u64) {
    let md = f.nodes[from]
        .lnet
        .md_bind(
            MdSpec::new(
                Payload::single(IoBuf::zeroed(len)),
                MdOptions::NONE,
                Threshold::Count(1),
            ),
            Unlink::Unlink,
        )
        .expect("bind");
    let now = f.now;
    f.nodes[from]
        .lnet
        .put(now, None, md, AckReq::NoAck, pid(to), 3, 1, 0, hdr_data)
        .expect("put");
}

#[test]
fn peer_ni_credits_queue_in_order_and_come_back() {
    let mut f = Fabric::with_credits(2, 256, 2);
    sink(&mut f, 1);
    f.discover(0, 1);
    f.hold = true;
    for i in 0..5 {
        put(&mut f, 0, 1, 8, i);
    }
    f.run();
    assert_eq!(f.held(), 2, "two peer credits: two messages on the wire");
    {
        let peer = f.nodes[0].lnet.peer(&nid(1)).expect("peer");
        let p = peer.peer_nis().next().expect("peer ni");
        assert_eq!(
            (p.tx_credits(), p.min_tx_credits(), p.max_tx_credits()),
            (-3, -3, 2)
        );
        assert_eq!(p.txqnob(), 5 * (8 + 72));
        let ni = f.nodes[0].lnet.ni(f.nodes[0].ni).expect("ni");
        assert_eq!(
            (ni.tx_credits(), ni.min_tx_credits()),
            (254, 254),
            "waiters on the peer hold no NI credit"
        );
    }
    f.release();
    let order: Vec<u64> = f
        .md_events(1)
        .iter()
        .filter(|e| e.kind == EventKind::Put)
        .map(|e| e.hdr_data)
        .collect();
    assert_eq!(order, vec![0, 1, 2, 3, 4], "FIFO");
    let peer = f.nodes[0].lnet.peer(&nid(1)).expect("peer");
    let p = peer.peer_nis().next().expect("peer ni");
    assert_eq!((p.tx_credits(), p.min_tx_credits(), p.txqnob()), (2, -3, 0));
    let ni = f.nodes[0].lnet.ni(f.nodes[0].ni).expect("ni");
    assert_eq!((ni.tx_credits(), ni.max_tx_credits()), (256, 256));
}

#[test]
fn ni_credits_are_shared_by_all_peers() {
    let mut f = Fabric::with_credits(4, 2, 8);
    for n in 1..4 {
        sink(&mut f, n);
        f.discover(0, n);
    }
    f.hold = true;
    for n in 1..4 {
        put(&mut f, 0, n, 100, n as u64);
    }
    f.run();
    assert_eq!(f.held(), 2);
    {
        let ni = f.nodes[0].lnet.ni(f.nodes[0].ni).expect("ni");
        assert_eq!((ni.tx_credits(), ni.min_tx_credits()), (-1, -1));
        let p3 = f.nodes[0].lnet.peer(&nid(3)).expect("peer 3");
        assert_eq!(
            p3.peer_nis().next().expect("pni").tx_credits(),
            7,
            "it holds its peer credit while waiting for the NI"
        );
    }
    f.release();
    for n in 1..4 {
        assert_eq!(f.md_events(n).len(), 1);
    }
    let ni = f.nodes[0].lnet.ni(f.nodes[0].ni).expect("ni");
    assert_eq!((ni.tx_credits(), ni.min_tx_credits()), (2, -1));
    for n in 1..4 {
        let p = f.nodes[0].lnet.peer(&nid(n)).expect("peer");
        assert_eq!(p.peer_nis().next().expect("pni").tx_credits(), 8);
    }
}

#[test]
fn loopback_takes_no_credits() {
    let mut f = Fabric::with_credits(1, 1, 1);
    sink(&mut f, 0);
    for i in 0..4 {
        put(&mut f, 0, 0, 8, i);
    }
    f.run();
    assert_eq!(
        f.md_events(0)
            .iter()
            .filter(|e| e.kind == EventKind::Put)
            .count(),
        4
    );
    let lo = f.nodes[0].lnet.ni(NiId::LO).expect("lo");
    assert_eq!((lo.tx_credits(), lo.min_tx_credits()), (0, 0));
    let ni = f.nodes[0].lnet.ni(f.nodes[0].ni).expect("ni");
    assert_eq!(ni.min_tx_credits(), 1);
    assert!(f.nodes[0].lnet.peer(&Nid::LO_0).is_none());
}

#[test]
fn ni_del_fails_messages_waiting_for_its_credits() {
    let mut f = Fabric::with_credits(2, 1, 8);
    sink(&mut f, 1);
    f.discover(0, 1);
    f.hold = true;
    put(&mut f, 0, 1, 8, 0);
    put(&mut f, 0, 1, 8, 1);
    f.run();
    let now = f.now;
    let ni = f.nodes[0].ni;
    f.nodes[0].lnet.ni_del(now, ni).expect("del");
    f.run();
    let evs = f.md_events(0);
    assert_eq!(
        evs.iter().map(|e| (e.kind, e.status)).collect::<Vec<_>>(),
        vec![(EventKind::Send, -100)]
    );
    let p = f.nodes[0].lnet.peer(&nid(1)).expect("peer");
    assert_eq!(
        p.peer_nis().next().expect("pni").tx_credits(),
        7,
        "only the message at the LND holds a peer credit"
    );
}
