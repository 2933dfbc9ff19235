//! The lnd-api 1.1 data path as lnet-core drives it: `send_span` and
//! `recv_span` (with `payload` empty in the message) between two NIs over
//! TCP on loopback, with spans that are windows into larger lists of many
//! uneven fragments: a non-zero offset, fragment boundaries crossed inside
//! the window (more than 16 pieces in a frame for the large sizes), and
//! mlen < rlen. Every byte is checked, and so is every byte around the
//! receive windows (untouched).

mod support;

use std::time::Duration;

use support::*;

const T: Duration = Duration::from_secs(20);
/// Both sides of the small/bulk threshold (`min_bulk` 1024), a page, the
/// yield threshold (64 KiB) and LNET_MTU.
const SIZES: [usize; 10] = [0, 1, 17, 1000, 1023, 1024, 4097, 65_536, 70_001, 1 << 20];
/// Where the send windows start in their lists.
const TX_OFFSET: usize = 3;
/// Where the receive windows start in their lists.
const RX_OFFSET: usize = 5;
/// What the send lists hold around their windows.
const TX_AROUND: u8 = 0xA5;

/// Sends every size both ways with `send_span`, receiving with `recv_span`
/// into windows `short` bytes shorter than the payload; checks what landed.
fn round(a: &TestNi, b: &TestNi, short: usize, seed: u8) {
    for to in [a, b] {
        to.host.set_mode(RecvMode::Window {
            offset: RX_OFFSET,
            short,
        });
    }
    let before = (a.host.received().len(), b.host.received().len());
    let mut sent: [Vec<(u64, Vec<u8>)>; 2] = [Vec::new(), Vec::new()];
    for (i, &n) in SIZES.iter().enumerate() {
        for (k, (from, to)) in [(a, b), (b, a)].into_iter().enumerate() {
            let d = pattern(n, seed.wrapping_add(i as u8 * 2 + k as u8));
            let (tok, tx, span) = put_span(from, to.nid(), &d, TX_OFFSET, TX_AROUND);
            // A real window (an empty one is PayloadSpan::new()).
            assert_eq!(span.len(), n);
            assert!(n == 0 || span.offset() == TX_OFFSET);
            from.ni.send_span(tx, span).expect("send_span");
            sent[k].push((tok, d));
        }
    }
    let checks = [(a, b, &sent[0], before.1), (b, a, &sent[1], before.0)];
    for (from, to, sent, had) in checks {
        let toks: Vec<u64> = sent.iter().map(|(t, _)| *t).collect();
        for c in from.host.wait_sent(&toks, T) {
            assert!(c.is_ok(), "send: {c:?}");
        }
        let got = to.host.wait_received(had + sent.len(), T);
        for (tok, d) in sent {
            let r = got
                .iter()
                .find(|r| token_of(&r.hdr) == *tok)
                .unwrap_or_else(|| panic!("message {tok} not received"));
            let mlen = d.len() - short.min(d.len());
            assert!(
                r.status.is_ok(),
                "receive of {} bytes: {:?}",
                d.len(),
                r.status
            );
            assert_eq!(r.from, from.nid());
            assert_eq!(r.hdr.payload_length as usize, d.len());
            assert_eq!(r.data.len(), mlen);
            assert!(
                r.data == d[..mlen],
                "the {mlen}-byte window of a {}-byte payload differs",
                d.len()
            );
            assert_eq!(r.around.len(), RX_OFFSET + TAIL);
            assert!(
                r.around.iter().all(|&x| x == AROUND),
                "bytes around the window of a {}-byte payload were written",
                d.len()
            );
        }
    }
}

/// Two NIs with `extra` parameters: a round of whole windows, then one of
/// windows 9 bytes short (the rest skipped, the stream kept in step).
fn windows_both_ways(extra: &[(&str, &str)]) -> (TestNi, TestNi) {
    let mut p = params(test_port());
    // No timeout is tested here: a loaded machine may stall a send past
    // the support's short sock_timeout.
    p.retain(|(k, _)| *k != "sock_timeout");
    p.push(("sock_timeout", "60".to_string()));
    p.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
    let mode = RecvMode::Window {
        offset: RX_OFFSET,
        short: 0,
    };
    let a = start("A", config(TCP, "127.0.0.1", &p, &[]), mode).expect("start A");
    let b = start("B", config(TCP, "127.0.0.2", &p, &[]), mode).expect("start B");
    round(&a, &b, 0, 0);
    round(&a, &b, 9, 100);
    (a, b)
}

/// The sum over `ni`'s connections of `conn_list`'s `field`.
fn conn_sum(ni: &TestNi, field: &str) -> u64 {
    let list = ni.ni.ctl("conn_list", "").expect("conn_list");
    list.lines()
        .filter_map(|l| l.trim().strip_prefix(field)?.strip_prefix(": "))
        .map(|v| v.parse::<u64>().expect("a count"))
        .sum()
}

/// Messages of a round at least `min` bytes long (in one direction).
fn at_least(min: usize) -> u64 {
    SIZES.iter().filter(|&&n| n >= min).count() as u64
}

#[test]
fn span_windows_both_ways() {
    let (a, b) = windows_both_ways(&[]);
    let list = a.ni.ctl("conn_list", "").expect("conn_list");
    assert!(list.contains("protocol: 3"), "{list}");
    // No zero-copy request without zc_request.
    for n in [&a, &b] {
        for f in ["zc_requests", "zc_acked", "zc_acks_sent"] {
            assert_eq!(conn_sum(n, f), 0, "{f}");
        }
        // Two rounds of every size each way: every frame counted once as
        // written (a write may carry several, a large one may take several).
        assert_eq!(
            conn_sum(n, "tx_frames"),
            2 * SIZES.len() as u64,
            "{}",
            n.host.0.name
        );
        assert!(conn_sum(n, "tx_writes") > 0);
    }
    a.shutdown();
    b.shutdown();
}

/// V2 checksums over the pieces on send, verified over the pieces on
/// receive (for the whole windows; a short one skips the check).
#[test]
fn span_windows_with_v2_checksums() {
    let (a, b) = windows_both_ways(&[("protocol", "2"), ("enable_csum", "1")]);
    let list = a.ni.ctl("conn_list", "").expect("conn_list");
    assert!(list.contains("protocol: 2"), "{list}");
    for t in [&a, &b] {
        let logs = t.host.logs();
        assert!(
            !logs.iter().any(|(_, l)| l.contains("checksum")),
            "{logs:?}"
        );
    }
    a.shutdown();
    b.shutdown();
}

/// Zero-copy requests: a send's span waits with its guard for the ACK.
/// Every payload of at least `zc_min_payload` went with a request, the peer
/// acknowledged each one, and nothing smaller asked.
#[test]
fn span_windows_with_zero_copy_requests() {
    let (a, b) = windows_both_ways(&[("zc_request", "1"), ("zc_min_payload", "4096")]);
    // Two rounds, each sending every size both ways.
    let want = 2 * at_least(4096);
    assert_eq!(want, 8);
    for (me, peer) in [(&a, &b), (&b, &a)] {
        assert_eq!(conn_sum(me, "zc_requests"), want, "{}", me.host.0.name);
        assert_eq!(conn_sum(me, "zc_acked"), want, "{}", me.host.0.name);
        // The ACKs of the peer's requests: once each, as observed by the
        // peer. A frame carrying an ACK is counted once its write returned;
        // the peer may have read it, counted it and completed its send
        // before that (a writer preempted right after its write, on a
        // loaded machine), so the count may lag for a moment.
        lnet_tests::wait_for("the ACKs sent to match the peer's count", T, || {
            let (sent, acked) = (conn_sum(me, "zc_acks_sent"), conn_sum(peer, "zc_acked"));
            if sent == acked {
                Ok(())
            } else {
                Err(format!(
                    "{} sent {sent}, {} counted {acked}",
                    me.host.0.name, peer.host.0.name
                ))
            }
        });
    }
    a.shutdown();
    b.shutdown();
}
