//! Health at completion, table-driven over every health status (semantics
//! §8.2–§8.4, lnetctl.md §5.6): which health value drops (local NI, peer NI,
//! both), whether the message is resent on another path, what the
//! application sees, and the counters.

mod pump;

use lnet_core::lnd_api::{HealthStatus as H, IoBuf, Nid, Payload};
use lnet_core::{
    AckReq, EventKind, HealthCounts, InsPos, MdOptions, MdSpec, ProcessId, Threshold, Unlink,
};
use pump::*;

/// Two nodes with two NIs each on one net; node 0 knows node 1 as a
/// discovered Multi-Rail peer; node 1 has a buffer on portal 3.
fn two_rails() -> Fabric {
    let mut f = Fabric::new(2);
    f.add_ni(0, Nid::new4(TCP, 0x0a00_0101));
    f.add_ni(1, Nid::new4(TCP, 0x0a00_0102));
    let me = f.nodes[1]
        .lnet
        .me_attach(3, ProcessId::ANY, 1, 0, Unlink::Retain, InsPos::After)
        .expect("me");
    f.nodes[1]
        .lnet
        .md_attach(
            me,
            MdSpec::new(
                Payload::single(IoBuf::zeroed(64)),
                MdOptions::OP_PUT,
                Threshold::Infinite,
            ),
            Unlink::Retain,
        )
        .expect("md");
    assert_eq!(f.discover(0, 1), nid(1));
    f.run();
    f.nodes[0].lnet.stats_reset();
    f
}

fn put(f: &mut Fabric) {
    put_from(f, None);
}

/// A PUT from node 0 to node 1, from `src` if given (`self` of `LNetPut`).
fn put_from(f: &mut Fabric, src: Option<Nid>) {
    let md = f.nodes[0]
        .lnet
        .md_bind(
            MdSpec::new(
                Payload::single(IoBuf::zeroed(8)),
                MdOptions::NONE,
                Threshold::Count(1),
            ),
            Unlink::Unlink,
        )
        .expect("bind");
    let now = f.now;
    f.nodes[0]
        .lnet
        .put(now, src, md, AckReq::NoAck, pid(1), 3, 1, 0, 0)
        .expect("put");
    f.run();
}

fn ni_health(f: &Fabric, n: Nid) -> u32 {
    let l = &f.nodes[0].lnet;
    l.ni(l.ni_by_nid(&n).expect("our NI"))
        .expect("ni")
        .health_value()
}

fn peer_ni_health(f: &Fabric, n: Nid) -> u32 {
    f.nodes[0]
        .lnet
        .peer(&n)
        .expect("peer")
        .peer_nis()
        .find(|x| x.nid() == n)
        .expect("peer NI")
        .health_value()
}

fn count(h: &HealthCounts, s: H) -> u64 {
    match s {
        H::LOCAL_INTERRUPT => h.local_interrupt,
        H::LOCAL_DROPPED => h.local_dropped,
        H::LOCAL_ABORTED => h.local_aborted,
        H::LOCAL_NO_ROUTE => h.local_no_route,
        H::LOCAL_TIMEOUT => h.local_timeout,
        H::LOCAL_ERROR => h.local_error,
        H::REMOTE_DROPPED => h.remote_dropped,
        H::REMOTE_ERROR => h.remote_error,
        H::REMOTE_TIMEOUT => h.remote_timeout,
        H::NETWORK_TIMEOUT => h.network_timeout,
        _ => u64::MAX,
    }
}

#[test]
fn every_health_status_does_what_the_table_says() {
    // (status, local NI loses health, peer NI loses health, resent)
    let table = [
        (H::LOCAL_INTERRUPT, true, false, true),
        (H::LOCAL_DROPPED, true, false, true),
        (H::LOCAL_ABORTED, true, false, true),
        (H::LOCAL_NO_ROUTE, true, false, true),
        (H::LOCAL_TIMEOUT, true, false, true),
        (H::LOCAL_ERROR, true, false, false),
        (H::REMOTE_DROPPED, false, true, true),
        (H::REMOTE_ERROR, false, true, false),
        (H::REMOTE_TIMEOUT, false, true, false),
        (H::NETWORK_TIMEOUT, true, true, false),
    ];
    for (status, local, remote, resent) in table {
        let mut f = two_rails();
        f.hold = true;
        put(&mut f);
        let failed = f.fail_held(5, status);
        assert_eq!(failed.len(), 1, "{status:?}");
        let (_, src, dst) = failed[0];
        let s = *f.nodes[0].lnet.stats();
        let want_local = if local { 900 } else { 1000 };
        let want_remote = if remote { 900 } else { 1000 };
        assert_eq!(ni_health(&f, src), want_local, "{status:?}: local NI");
        assert_eq!(peer_ni_health(&f, dst), want_remote, "{status:?}: peer NI");
        assert_eq!(count(&s.health, status), 1, "{status:?}: counted");
        assert_eq!(s.resend_count, u64::from(resent), "{status:?}: resend");
        // No event for the intermediate failure of a resent message.
        let evs = f.md_events(0);
        if resent {
            assert!(evs.is_empty(), "{status:?}: {evs:?}");
            assert_eq!(f.held(), 1, "{status:?}: resent");
            f.release();
            let evs = f.md_events(0);
            assert_eq!(
                evs.iter().map(|e| (e.kind, e.status)).collect::<Vec<_>>(),
                vec![(EventKind::Send, 0)],
                "{status:?}"
            );
            assert_eq!(f.nodes[0].lnet.stats().successful_resends, 1);
            assert_eq!(f.md_events(1).len(), 1, "{status:?}: delivered once");
        } else {
            assert_eq!(
                evs.iter().map(|e| (e.kind, e.status)).collect::<Vec<_>>(),
                vec![(EventKind::Send, -5)],
                "{status:?}"
            );
            assert_eq!(f.held(), 0, "{status:?}: not resent");
        }
    }
}

/// A send pinned to a source NID (a server answering from the NID the
/// request came in on, as selftest and ptlrpc do) that fails on that path is
/// resent on another: after a local failure from another local NI, after
/// REMOTE_DROPPED to another NID of the peer. Keeping the pin, as §8.4's
/// "original arguments" would, only repeats the failure (a link cut ended
/// `lst brw` units that way); the first try honours it.
#[test]
fn a_pinned_send_is_resent_off_the_path_that_failed() {
    for status in [H::LOCAL_ABORTED, H::REMOTE_DROPPED] {
        let mut f = two_rails();
        f.hold = true;
        let (src, dst) = (nid(0), nid(1));
        put_from(&mut f, Some(src));
        assert_eq!(f.fail_held(5, status), [(0, src, dst)], "{status:?}");
        let again = f.held_paths();
        assert_eq!(again.len(), 1, "{status:?}: resent");
        let (_, src2, dst2) = again[0];
        if status == H::LOCAL_ABORTED {
            assert_ne!(src2, src, "{status:?}: resent from the NI that failed");
        } else {
            assert_ne!(
                dst2, dst,
                "{status:?}: resent to the peer NI that dropped it"
            );
        }
        f.release();
        let evs = f.md_events(0);
        assert_eq!(
            evs.iter().map(|e| (e.kind, e.status)).collect::<Vec<_>>(),
            vec![(EventKind::Send, 0)],
            "{status:?}"
        );
        assert_eq!(f.md_events(1).len(), 1, "{status:?}: delivered once");
    }
    // A REMOTE_ERROR is not resent, pinned or not (§8.3).
    let mut f = two_rails();
    f.hold = true;
    put_from(&mut f, Some(nid(0)));
    f.fail_held(5, H::REMOTE_ERROR);
    assert_eq!(f.held(), 0);
    assert_eq!(f.nodes[0].lnet.stats().resend_count, 0);
}

#[test]
fn success_raises_health_back_by_the_sensitivity() {
    let mut f = two_rails();
    let first = f.nodes[0].ni;
    let second = f.nodes[0].nis[1].0;
    // The second NI at 0 is down and never chosen; telling node 1 about it
    // (a push, §9.7) is traffic of its own: let it finish first.
    f.nodes[0]
        .lnet
        .ni_set_health(f.now, second, 0)
        .expect("health");
    let now = f.now;
    f.nodes[0].lnet.handle_timeout(now);
    f.run();
    f.nodes[0]
        .lnet
        .ni_set_health(now, first, 500)
        .expect("health");
    put(&mut f);
    assert_eq!(
        f.nodes[0].lnet.ni(first).expect("ni").health_value(),
        600,
        "+ health_sensitivity (100) per success"
    );
}

#[test]
fn resends_stop_at_retry_count() {
    let mut f = two_rails();
    f.hold = true;
    put(&mut f);
    // Every attempt fails with a resendable status: 1 + retry_count (2) tries.
    let mut tries = 0;
    while f.held() > 0 {
        tries += 1;
        f.fail_held(5, H::LOCAL_DROPPED);
    }
    assert_eq!(tries, 3);
    let s = *f.nodes[0].lnet.stats();
    assert_eq!((s.resend_count, s.failed_resends), (2, 1));
    let evs = f.md_events(0);
    assert_eq!(
        evs.iter().map(|e| (e.kind, e.status)).collect::<Vec<_>>(),
        vec![(EventKind::Send, -5)]
    );
}

#[test]
fn a_single_ni_node_does_not_resend_local_failures() {
    let mut f = Fabric::new(2);
    let me = f.nodes[1]
        .lnet
        .me_attach(3, ProcessId::ANY, 1, 0, Unlink::Retain, InsPos::After)
        .expect("me");
    f.nodes[1]
        .lnet
        .md_attach(
            me,
            MdSpec::new(
                Payload::single(IoBuf::zeroed(64)),
                MdOptions::OP_PUT,
                Threshold::Infinite,
            ),
            Unlink::Retain,
        )
        .expect("md");
    f.discover(0, 1);
    f.hold = true;
    put(&mut f);
    f.fail_held(5, H::LOCAL_DROPPED);
    assert_eq!(f.held(), 0);
    assert_eq!(f.nodes[0].lnet.stats().resend_count, 0);
    // Health of the only NI still drops.
    assert_eq!(ni_health(&f, nid(0)), 900);
}

#[test]
fn health_sensitivity_zero_changes_nothing() {
    let mut f = two_rails();
    let mut t = f.nodes[0].lnet.tunables().clone();
    t.health_sensitivity = 0;
    t.retry_count = 0;
    f.nodes[0].lnet.set_tunables(t).expect("tunables");
    f.hold = true;
    put(&mut f);
    let failed = f.fail_held(5, H::NETWORK_TIMEOUT);
    let (_, src, dst) = failed[0];
    assert_eq!(ni_health(&f, src), 1000);
    assert_eq!(peer_ni_health(&f, dst), 1000);
    assert_eq!(f.nodes[0].lnet.stats().resend_count, 0);
}

/// A REPLY or ACK that fails at the LND is resent on another path, as any
/// send is (§8.4; upstream's health check runs for every message it sent):
/// a link cut aborting a REPLY on the NI its GET came in on left the GET
/// waiting for the transaction timeout, and `lst brw` units ended on it.
/// The requester gets its REPLY (with the data) or ACK once; the responder
/// sees its GET or PUT event once, when the resend went through.
#[test]
fn a_failed_reply_or_ack_is_resent_from_another_ni() {
    const GET_PORTAL: u32 = 4;
    let data: Vec<u8> = (0..64u8).map(|i| i.wrapping_mul(7) ^ 0x5a).collect();
    for (get, status) in [
        (true, H::LOCAL_ABORTED),
        (false, H::LOCAL_ABORTED),
        (true, H::REMOTE_DROPPED),
    ] {
        let what = format!("{} {status:?}", if get { "REPLY" } else { "ACK" });
        let mut f = two_rails();
        // Node 1 learns node 0's two NIDs (a remote resend needs them).
        f.discover(1, 0);
        f.run();
        let me = f.nodes[1]
            .lnet
            .me_attach(
                GET_PORTAL,
                ProcessId::ANY,
                2,
                0,
                Unlink::Retain,
                InsPos::After,
            )
            .expect("me");
        f.nodes[1]
            .lnet
            .md_attach(
                me,
                MdSpec::new(buf(data.clone()).1, MdOptions::OP_GET, Threshold::Infinite),
                Unlink::Retain,
            )
            .expect("md");
        let sink = IoBuf::zeroed(64);
        let md = f.nodes[0]
            .lnet
            .md_bind(
                MdSpec::new(
                    Payload::single(sink.clone()),
                    MdOptions::NONE,
                    Threshold::Count(2),
                ),
                Unlink::Unlink,
            )
            .expect("bind");
        f.hold = true;
        let now = f.now;
        if get {
            f.nodes[0]
                .lnet
                .get(now, None, md, pid(1), GET_PORTAL, 2, 0)
                .expect("get");
        } else {
            f.nodes[0]
                .lnet
                .put(now, None, md, AckReq::Ack, pid(1), 3, 1, 0, 0)
                .expect("put");
        }
        f.run();
        // The request arrives; its response is held, then fails.
        f.deliver_held();
        let first = f.held_paths();
        assert_eq!(first.len(), 1, "{what}: one response");
        assert_eq!(first[0].0, 1, "{what}: sent by node 1");
        // A PUT's event comes as it lands; a GET's when its REPLY is sent.
        let mut evs1: Vec<_> = f.md_events(1).iter().map(|e| (e.kind, e.status)).collect();
        assert_eq!(f.fail_held(5, status), first, "{what}");
        let again = f.held_paths();
        assert_eq!(again.len(), 1, "{what}: resent");
        let (_, src, dst) = again[0];
        if status == H::LOCAL_ABORTED {
            assert_ne!(src, first[0].1, "{what}: from the NI that failed");
        } else {
            assert_ne!(dst, first[0].2, "{what}: to the peer NI that dropped it");
        }
        assert!(
            f.md_events(1).is_empty(),
            "{what}: no event for the failure"
        );
        f.release();
        let s = f.nodes[1].lnet.stats();
        assert_eq!(
            (s.resend_count, s.successful_resends, s.msgs_alloc),
            (1, 1, 0),
            "{what}"
        );
        let want = if get {
            (EventKind::Reply, EventKind::Get)
        } else {
            (EventKind::Ack, EventKind::Put)
        };
        let evs0: Vec<_> = f
            .md_events(0)
            .iter()
            .map(|e| (e.kind, e.status))
            .filter(|(k, _)| *k != EventKind::Send)
            .collect();
        assert_eq!(evs0, vec![(want.0, 0)], "{what}: the requester");
        evs1.extend(f.md_events(1).iter().map(|e| (e.kind, e.status)));
        assert_eq!(evs1, vec![(want.1, 0)], "{what}: the responder");
        if get {
            assert_eq!(
                sink.to_vec().expect("sink idle"),
                data,
                "{what}: the REPLY's bytes"
            );
        }
        assert_eq!(f.nodes[0].lnet.stats().msgs_alloc, 0, "{what}");
    }
}

/// An NI of ours going down pushes the news to the Multi-Rail peers. A
/// request to such a peer does not wait for that push's ACK: it is sent at
/// once over the NI left, while the push is out (a push lost with the link
/// held every request to the peer for the transaction timeout).
#[test]
fn requests_do_not_wait_for_the_push_of_an_ni_going_down() {
    let mut f = two_rails();
    let now = f.now;
    let down = f.nodes[0].lnet.ni_by_nid(&nid(0)).expect("our NI");
    f.hold = true;
    f.nodes[0].lnet.handle_link_state(now, down, false);
    f.run();
    let pushes = f.held_paths();
    assert_eq!(pushes.len(), 1, "the push is out: {pushes:?}");
    put(&mut f);
    let sent = f.held_paths();
    assert_eq!(sent.len(), 2, "the PUT went out beside the push: {sent:?}");
    assert_ne!(sent[1].1, nid(0), "not from the NI that went down");
    f.release();
    let evs = f.md_events(1);
    assert_eq!(
        evs.iter().map(|e| (e.kind, e.status)).collect::<Vec<_>>(),
        vec![(EventKind::Put, 0)]
    );
}
