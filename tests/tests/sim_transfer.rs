//! PUT and GET between two nodes of the simulated fabric, byte for byte, with
//! their events; a PUT nobody matches is dropped and counted on the target.

use lnet_core::lnd_api::MsgType;
use lnet_core::{AckReq, Duration, EventKind, MdEvent, MdOptions, Threshold, MAX_PAYLOAD};
use lnet_tests::sim::{pattern, seed_from_env, Fabric, LinkParams, NiSpec, NodeSpec};

const PORTAL: u32 = 9;
const SIZES: [usize; 5] = [0, 1, 4096, 65536, 1 << 20];

/// Two nodes, 10.0.0.1@tcp and 10.0.0.2@tcp, 100 µs apart at 10 GB/s.
fn two_nodes(seed: u64) -> Fabric {
    let mut f = Fabric::new(seed_from_env(seed));
    f.set_default_link(
        LinkParams::new()
            .latency(Duration::from_micros(100))
            .bandwidth(10_000_000_000),
    );
    f.add_node(NodeSpec::new().ni(NiSpec::tcp([10, 0, 0, 1])));
    f.add_node(NodeSpec::new().ni(NiSpec::tcp([10, 0, 0, 2])));
    // Peers discovered first (§9.2): the scenarios count their own traffic.
    f.discover_all();
    f.reset_link_stats();
    f
}

fn kinds(evs: &[MdEvent]) -> Vec<EventKind> {
    evs.iter().map(|e| e.kind).collect()
}

#[test]
fn put_of_every_size_arrives_byte_for_byte() {
    assert_eq!(
        MAX_PAYLOAD as usize,
        1 << 20,
        "1 MiB is the largest payload"
    );
    let mut f = two_nodes(11);
    // The engine's own MDs (ping and push targets).
    let own = [
        f.inspect(0, |l| l.md_count()),
        f.inspect(1, |l| l.md_count()),
    ];
    for (i, &len) in SIZES.iter().enumerate() {
        let bits = 0x100 + i as u64;
        let data = pattern(len, i as u8 + 1);
        // The sink is larger than the PUT: mlength must be exactly len.
        let (tmd, sink) = f.post(
            1,
            PORTAL,
            bits,
            len + 8,
            MdOptions::OP_PUT,
            Threshold::Count(1),
        );
        let (imd, _) = f.bind(0, &data, Threshold::Count(2));
        let t0 = f.now();
        f.put(
            0,
            imd,
            AckReq::Ack,
            f.pid(1),
            PORTAL,
            bits,
            0xabc0 + i as u64,
        )
        .expect("put accepted");
        f.settle();
        let took = f.now().since(t0);
        // Two one-way trips (PUT, ACK) at least, plus serialization.
        assert!(took >= Duration::from_micros(200), "{len} B took {took:?}");
        let got = sink.to_vec().expect("buffer free");
        assert_eq!(
            &got[..len],
            &data[..],
            "PUT of {len} B arrives byte for byte"
        );
        assert!(
            got[len..].iter().all(|b| *b == 0),
            "nothing written past {len} B"
        );

        let ini = f.take_md_events(0);
        assert_eq!(
            kinds(&ini),
            [EventKind::Send, EventKind::Ack],
            "{len} B: {ini:?}"
        );
        let (send, ack) = (ini[0], ini[1]);
        assert_eq!(send.md, imd);
        assert_eq!((send.status, send.msg_type), (0, MsgType::PUT));
        assert_eq!((send.rlength, send.mlength), (len as u32, len as u32));
        assert_eq!(send.target, f.pid(1));
        assert_eq!(
            (ack.status, ack.mlength, ack.match_bits),
            (0, len as u32, bits)
        );
        assert!(ack.unlinked, "threshold 2 (SEND + ACK) used up");

        let tgt = f.take_md_events(1);
        assert_eq!(kinds(&tgt), [EventKind::Put], "{len} B: {tgt:?}");
        let put = tgt[0];
        assert_eq!(put.md, tmd);
        assert_eq!((put.status, put.msg_type), (0, MsgType::PUT));
        assert_eq!(
            (put.rlength, put.mlength, put.offset),
            (len as u32, len as u32, 0)
        );
        assert_eq!(put.hdr_data, 0xabc0 + i as u64);
        assert_eq!(put.initiator, f.pid(0));
        assert_eq!(put.sender, f.nid(0, 0));
        assert_eq!(put.target, f.pid(1));
        assert!(put.unlinked, "threshold 1 used up");
    }
    // Only the engine's own MDs are left on either side.
    assert_eq!(f.inspect(0, |l| l.md_count()), own[0]);
    assert_eq!(f.inspect(1, |l| l.md_count()), own[1]);
    let st = f.link_stats(f.nid(0, 0), f.nid(1, 0));
    assert_eq!((st.sent, st.delivered, st.lost), (5, 5, 0));
    assert_eq!(
        f.link_stats(f.nid(1, 0), f.nid(0, 0)).delivered,
        5,
        "5 ACKs"
    );
}

#[test]
fn get_of_every_size_arrives_byte_for_byte() {
    let mut f = two_nodes(12);
    for (i, &len) in SIZES.iter().enumerate() {
        let bits = 0x200 + i as u64;
        let data = pattern(len, 0x40 + i as u8);
        let (src_md, src) = f.post(1, PORTAL, bits, len, MdOptions::OP_GET, Threshold::Count(1));
        src.to_vec().expect("free");
        // Fill the target's buffer with the data to be fetched.
        lnet_core::lnd_api::Payload::single(src.clone())
            .write_at(0, &data)
            .expect("free");
        let (imd, sink) = f.bind(0, &vec![0u8; len], Threshold::Count(2));
        f.get(0, imd, f.pid(1), PORTAL, bits).expect("get accepted");
        f.settle();
        assert_eq!(
            sink.to_vec().expect("free"),
            data,
            "GET of {len} B byte for byte"
        );

        let ini = f.take_md_events(0);
        assert_eq!(
            kinds(&ini),
            [EventKind::Send, EventKind::Reply],
            "{len} B: {ini:?}"
        );
        assert_eq!((ini[0].status, ini[0].msg_type), (0, MsgType::GET));
        let reply = ini[1];
        assert_eq!(
            (reply.status, reply.mlength, reply.rlength),
            (0, len as u32, len as u32)
        );
        assert!(reply.unlinked);

        let tgt = f.take_md_events(1);
        assert_eq!(kinds(&tgt), [EventKind::Get], "{len} B: {tgt:?}");
        let get = tgt[0];
        assert_eq!(get.md, src_md);
        assert_eq!(
            (get.status, get.mlength, get.rlength),
            (0, len as u32, len as u32)
        );
        assert_eq!(get.initiator, f.pid(0));
        assert_eq!(get.sender, f.nid(0, 0));
        assert!(get.unlinked);
    }
    let st = f.link_stats(f.nid(1, 0), f.nid(0, 0));
    assert_eq!(st.delivered, 5, "5 REPLYs");
}

#[test]
fn put_that_matches_nothing_is_dropped_and_counted_on_the_target() {
    let mut f = two_nodes(13);
    let own = f.inspect(0, |l| l.md_count());
    // A buffer on another portal, and one on this portal with other bits.
    let (_, other) = f.post(
        1,
        PORTAL + 1,
        0x77,
        64,
        MdOptions::OP_PUT,
        Threshold::Count(1),
    );
    let (_, wrong) = f.post(1, PORTAL, 0x78, 64, MdOptions::OP_PUT, Threshold::Count(1));
    let (imd, _) = f.bind(0, &pattern(64, 5), Threshold::Count(2));
    let before = f.inspect(1, |l| l.stats().drop_count);
    f.put(0, imd, AckReq::Ack, f.pid(1), PORTAL, 0x77, 0)
        .expect("put accepted");
    f.run_for(Duration::from_millis(10));

    // Target: dropped, counted globally and on the receiving NI, no event.
    assert_eq!(f.inspect(1, |l| l.stats().drop_count), before + 1);
    let ni = f.ni(1, 0);
    let dropped = f.inspect(1, |l| l.ni(ni).expect("ni").stats().dropped);
    assert_eq!(dropped.put, 1, "{dropped:?}");
    assert!(f.take_md_events(1).is_empty());
    assert_eq!(other.to_vec().expect("free"), vec![0; 64]);
    assert_eq!(wrong.to_vec().expect("free"), vec![0; 64]);

    // Initiator: the PUT left (SEND ok), but no ACK ever comes.
    let ini = f.take_md_events(0);
    assert_eq!(kinds(&ini), [EventKind::Send]);
    assert_eq!(ini[0].status, 0);
    // Nothing hangs: the response tracker gives the MD up in time.
    f.settle();
    let late = f.take_md_events(0);
    assert!(late.iter().all(|e| e.kind != EventKind::Ack), "{late:?}");
    assert_eq!(f.inspect(0, |l| l.md_count()), own, "the PUT's MD is gone");
}

#[test]
fn put_on_a_lazy_portal_waits_for_a_buffer_then_lands() {
    let mut f = two_nodes(14);
    f.call(1, |l, _| l.set_lazy_portal(PORTAL, true));
    let data = pattern(4096, 77);
    let (md, _) = f.bind(0, &data, Threshold::Count(2));
    f.put(0, md, AckReq::Ack, f.pid(1), PORTAL, 0x55, 7)
        .expect("put accepted");
    f.run_for(Duration::from_millis(50));
    // Arrived, parsed, and parked: the receiving LND still holds it.
    assert_eq!(f.link_stats(f.nid(0, 0), f.nid(1, 0)).delivered, 1);
    assert!(f.take_md_events(1).is_empty());
    assert_eq!(f.hanging().len(), 4, "{:?}", f.hanging());
    assert!(f.trace().iter().any(|l| l.contains("eager_recv")));
    // A buffer is posted: the waiting PUT is received late (delayed recv).
    let (_, sink) = f.post(
        1,
        PORTAL,
        0x55,
        4096,
        MdOptions::OP_PUT,
        Threshold::Count(1),
    );
    f.settle();
    assert_eq!(sink.to_vec().expect("free"), data);
    let tgt = f.take_md_events(1);
    assert_eq!(kinds(&tgt), [EventKind::Put]);
    assert_eq!((tgt[0].hdr_data, tgt[0].mlength), (7, 4096));
    assert_eq!(
        kinds(&f.take_md_events(0)),
        [EventKind::Send, EventKind::Ack]
    );
    assert!(f
        .trace()
        .iter()
        .any(|l| l.contains("recv 4096/4096B") && l.contains("delayed")));
}

#[test]
fn fragmented_mds_on_both_sides_move_the_bytes_in_order() {
    use lnet_core::lnd_api::{IoBuf, Payload};
    use lnet_core::{InsPos, MdSpec, ProcessId, Unlink};
    let mut f = two_nodes(15);
    let data = pattern(10_000, 42);
    // The source in 3 uneven fragments, the sink in 5 others.
    let src_cuts = [0, 1, 4097, 10_000];
    let src: Payload = src_cuts
        .windows(2)
        .map(|w| IoBuf::from_vec(data[w[0]..w[1]].to_vec()))
        .collect();
    let sink_sizes = [7, 3000, 1, 4992, 2000];
    let sinks: Vec<IoBuf> = sink_sizes.iter().map(|n| IoBuf::zeroed(*n)).collect();
    let sink: Payload = sinks.iter().cloned().collect();
    f.call(1, |l, _| {
        let me = l
            .me_attach(
                PORTAL,
                ProcessId::ANY,
                0xf4a9,
                0,
                Unlink::Unlink,
                InsPos::After,
            )
            .expect("me");
        l.md_attach(
            me,
            MdSpec::new(sink, MdOptions::OP_PUT, Threshold::Count(1)),
            Unlink::Unlink,
        )
        .expect("md")
    });
    let md = f.call(0, |l, _| {
        l.md_bind(
            MdSpec::new(src, MdOptions::NONE, Threshold::Count(2)),
            Unlink::Unlink,
        )
        .expect("bind")
    });
    f.put(0, md, AckReq::Ack, f.pid(1), PORTAL, 0xf4a9, 0)
        .expect("put");
    f.settle();
    let got: Vec<u8> = sinks
        .iter()
        .flat_map(|b| b.to_vec().expect("free"))
        .collect();
    assert_eq!(got, data);
    assert_eq!(
        kinds(&f.take_md_events(0)),
        [EventKind::Send, EventKind::Ack]
    );
    assert_eq!(f.take_md_events(1)[0].mlength, 10_000);
}
