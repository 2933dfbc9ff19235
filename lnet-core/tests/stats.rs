//! Statistics count what was delivered (issue 11 item 6): receive bytes when
//! the payload landed, send bytes when the LND completed the send, and every
//! message that did not complete (aborted payload, no match, failed send) in
//! the drop counters — globally, per NI and per peer NI.

mod pump;

use lnet_core::lnd_api::hdr::PutBody;
use lnet_core::lnd_api::{errno, Completion, Hdr, HealthStatus, IoBuf, Payload, RxToken};
use lnet_core::lnd_api::{MsgToken, WireHandle};
use lnet_core::{
    AckReq, Config, Counters, InsPos, Instant, LndOp, Lnet, MdOptions, MdSpec, MsgStats, NiId,
    ProcessId, Threshold, Unlink,
};
use pump::*;

const MIB: u32 = 1 << 20;
const PORTAL: u32 = 9;

/// A node on `nid(0)`.
fn node() -> (Lnet, NiId, Instant) {
    let now = Instant::from_secs(1);
    let mut l = Lnet::new(Config::default(), now);
    let ni = l.ni_add(now, TCP, &ni_info(nid(0), 64, 64)).expect("ni");
    (l, ni, now)
}

/// An MD of `len` bytes on `PORTAL` for match bits `bits`.
fn sink(l: &mut Lnet, bits: u64, len: usize, opts: MdOptions) {
    let me = l
        .me_attach(
            PORTAL,
            ProcessId::ANY,
            bits,
            0,
            Unlink::Retain,
            InsPos::After,
        )
        .expect("me");
    l.md_attach(
        me,
        MdSpec::new(
            Payload::single(IoBuf::zeroed(len)),
            MdOptions::OP_PUT | MdOptions::MANAGE_REMOTE | opts,
            Threshold::Infinite,
        ),
        Unlink::Retain,
    )
    .expect("md");
}

/// A PUT header from `nid(5)` claiming `len` bytes, no ACK wanted.
fn put_hdr(bits: u64, len: u32) -> Hdr {
    let body = PutBody {
        ack_wmd: WireHandle::NONE,
        match_bits: bits,
        hdr_data: 0,
        ptl_index: PORTAL,
        offset: 0,
    };
    Hdr::put(nid(0), nid(5), 12345, 12345, len, body)
}

/// Parses a header; returns the message token the LND must complete (None
/// when the engine dropped it at once).
fn rx(l: &mut Lnet, now: Instant, ni: NiId, hdr: Hdr, tok: u64) -> Option<MsgToken> {
    l.handle_rx(now, ni, hdr, nid(5), RxToken(tok), false)
        .expect("parse");
    let mut msg = None;
    while let Some(op) = l.poll_lnd() {
        if let LndOp::Recv { rx, .. } = op {
            msg = rx.msg.into_option();
        }
    }
    msg
}

fn peer_stats(l: &Lnet) -> MsgStats {
    let p = l.peer(&nid(5)).expect("peer");
    let s = *p.peer_nis().next().expect("peer ni").stats();
    s
}

fn totals(c: &Counters) -> [u64; 6] {
    [
        c.recv_count,
        c.recv_length,
        c.send_count,
        c.send_length,
        c.drop_count,
        c.drop_length,
    ]
}

#[test]
fn aborted_truncated_and_unmatched_puts_count_what_was_delivered() {
    let (mut l, ni, now) = node();
    sink(&mut l, 1, MIB as usize, MdOptions::NONE);
    sink(&mut l, 2, 100, MdOptions::TRUNCATE);
    // Ten PUT headers claiming 1 MiB each whose payload never comes: the
    // connection goes away and the LND aborts each receive.
    for i in 0..10 {
        let tok = rx(&mut l, now, ni, put_hdr(1, MIB), i).expect("matched");
        // Nothing counted as received while the payload is outstanding.
        assert_eq!(l.stats().recv_length, 0);
        l.handle_done(
            now,
            tok,
            Completion::failed(errno::EIO, HealthStatus::REMOTE_ERROR),
        );
    }
    assert_eq!(
        totals(l.stats()),
        [0, 0, 0, 0, 10, 10 * u64::from(MIB)],
        "aborted receives are drops, not received bytes"
    );
    let s = *l.ni(ni).expect("ni").stats();
    assert_eq!((s.received.put, s.recv_length), (0, 0));
    assert_eq!((s.dropped.put, s.drop_length), (10, 10 * u64::from(MIB)));
    let p = peer_stats(&l);
    assert_eq!((p.received.put, p.dropped.put), (0, 10));

    // A complete 4 KiB PUT: received, its bytes counted.
    let tok = rx(&mut l, now, ni, put_hdr(1, 4096), 20).expect("matched");
    l.handle_done(now, tok, Completion::OK);
    // A 1000-byte PUT into a 100-byte truncating MD: 100 bytes delivered.
    let tok = rx(&mut l, now, ni, put_hdr(2, 1000), 21).expect("matched");
    l.handle_done(now, tok, Completion::OK);
    // A PUT matching nothing: dropped at once, never received.
    assert!(rx(&mut l, now, ni, put_hdr(3, 500), 22).is_none());
    assert_eq!(
        totals(l.stats()),
        [2, 4096 + 100, 0, 0, 11, 10 * u64::from(MIB) + 500]
    );
    let s = *l.ni(ni).expect("ni").stats();
    assert_eq!((s.received.put, s.recv_length), (2, 4096 + 100));
    assert_eq!(
        (s.dropped.put, s.drop_length),
        (11, 10 * u64::from(MIB) + 500)
    );
    let p = peer_stats(&l);
    assert_eq!((p.received.put, p.recv_length), (2, 4096 + 100));
}

#[test]
fn sends_count_when_the_lnd_completes_them() {
    let (mut l, ni, now) = node();
    let target = ProcessId {
        nid: nid(5),
        pid: 12345,
    };
    let send = |l: &mut Lnet, len: usize| -> MsgToken {
        let md = l
            .md_bind(
                MdSpec::new(
                    Payload::single(IoBuf::zeroed(len)),
                    MdOptions::NONE,
                    Threshold::Count(1),
                ),
                Unlink::Unlink,
            )
            .expect("bind");
        // Portal 0 (the ping portal) skips the discovery gate: the PUT goes
        // to the LND at once.
        l.put(now, None, md, AckReq::NoAck, target, 0, 1, 0, 0)
            .expect("put");
        let mut tok = None;
        while let Some(op) = l.poll_lnd() {
            if let LndOp::Send { tx, payload, .. } = op {
                assert_eq!(payload.len(), len, "the PUT itself");
                tok = Some(tx.token);
            }
        }
        tok.expect("handed to the LND")
    };
    let a = send(&mut l, 3000);
    // Handed to the LND is not sent yet.
    assert_eq!(totals(l.stats()), [0, 0, 0, 0, 0, 0]);
    assert_eq!(l.ni(ni).expect("ni").stats().sent.put, 0);
    l.handle_done(now, a, Completion::OK);
    assert_eq!(totals(l.stats()), [0, 0, 1, 3000, 0, 0]);
    // One the LND fails (a single NI and a single-NID peer: no resend).
    let b = send(&mut l, 700);
    l.handle_done(
        now,
        b,
        Completion::failed(errno::ECONNREFUSED, HealthStatus::REMOTE_DROPPED),
    );
    assert_eq!(totals(l.stats()), [0, 0, 1, 3000, 1, 700]);
    let s = *l.ni(ni).expect("ni").stats();
    assert_eq!(
        (s.sent.put, s.send_length, s.dropped.put, s.drop_length),
        (1, 3000, 1, 700)
    );
    let p = peer_stats(&l);
    assert_eq!((p.sent.put, p.dropped.put), (1, 1));
    // `stats reset` zeroes them.
    l.stats_reset();
    assert_eq!(totals(l.stats()), [0, 0, 0, 0, 0, 0]);
}
