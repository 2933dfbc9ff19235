//! lnd-api 1.3's GET_SINK: a GET sent on an NI whose LND asked for sinks
//! carries its MD (from offset 0, `sink_length` bytes) as the send's
//! payload; smaller GETs, and GETs on other NIs, carry nothing.

mod pump;

use lnet_core::lnd_api::{Completion, IoBuf, MsgType, Payload, PayloadSpan};
use lnet_core::{MdOptions, MdSpec, Threshold, Unlink};
use pump::*;

/// Sends a GET for a sink of `len` bytes (in two fragments) from node 0 to
/// the dead node 1; returns the sink and what went to the LND.
fn send_get(f: &mut Fabric, len: usize) -> (PayloadSpan, PayloadSpan, u32) {
    let a = IoBuf::zeroed(len / 2);
    let b = IoBuf::zeroed(len - len / 2);
    let p: Payload = [a, b].into_iter().collect();
    let sink = PayloadSpan::from(p.clone());
    let md = f.nodes[0]
        .lnet
        .md_bind(
            MdSpec::new(p, MdOptions::NONE, Threshold::Count(2)),
            Unlink::Unlink,
        )
        .expect("bind");
    let now = f.now;
    f.nodes[0]
        .lnet
        .get(now, None, md, pid(1), 4, 0x99, 0)
        .expect("get");
    f.run();
    let (from, tx, payload) = f
        .lost
        .pop()
        .unwrap_or_else(|| panic!("the GET of {len} did not go to the LND"));
    assert_eq!((from, tx.hdr.msg_type), (0, MsgType::GET));
    // Sent, as far as the LND is concerned (the REPLY never comes).
    let now = f.now;
    f.nodes[0].lnet.handle_done(now, tx.token, Completion::OK);
    f.run();
    (sink, payload, tx.hdr.payload_length)
}

#[test]
fn a_get_carries_its_sink_to_an_lnd_that_asked() {
    let mut f = Fabric::new(2);
    // Discovered first, then gone: the GETs themselves go to the LND.
    f.discover(0, 1);
    f.dead.insert(1);
    // Without the extension: GETs carry nothing.
    let (_, payload, plen) = send_get(&mut f, 8000);
    assert!(payload.is_empty());
    assert_eq!(plen, 0);
    let (_, payload, _) = send_get(&mut f, 8000);
    assert!(payload.is_empty());

    let ni = f.nodes[0].ni;
    f.nodes[0]
        .lnet
        .ni_set_get_sink(ni, Some(3977))
        .expect("a known NI");
    let (sink, payload, plen) = send_get(&mut f, 8000);
    assert_eq!(plen, 0, "nothing of the sink is sent");
    assert_eq!(payload.len(), 8000);
    assert!(payload.same_memory(&sink), "the MD itself, not a copy");
    // Below the LND's minimum: as before.
    let (_, payload, _) = send_get(&mut f, 3976);
    assert!(payload.is_empty());
    let (sink, payload, _) = send_get(&mut f, 3977);
    assert!(payload.same_memory(&sink));
    // Switched off again.
    f.nodes[0].lnet.ni_set_get_sink(ni, None).expect("known");
    let (_, payload, _) = send_get(&mut f, 8000);
    assert!(payload.is_empty());
}
