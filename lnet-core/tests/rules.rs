//! One test per rule of semantics.md §2–§4 (and the header checks of §7.6),
//! engines driven against each other by the in-memory pump.

mod pump;

use lnet_core::lnd_api::hdr::{AckBody, GetBody, PutBody, ReplyBody};
use lnet_core::lnd_api::{
    errno, Completion, Hdr, HealthStatus, IoBuf, MsgType, Nid, Payload, RxToken, WireHandle,
};
use lnet_core::{
    AckReq, ApiError, EventKind, InsPos, LndOp, MdEvent, MdHandle, MdOptions, MdSpec, MeHandle,
    NiId, ProcessId, Threshold, Unlink, LNET_PID_ANY,
};
use pump::*;

const P: u32 = 5;

fn any() -> ProcessId {
    ProcessId {
        nid: Nid::ANY,
        pid: LNET_PID_ANY,
    }
}

struct Target {
    me: MeHandle,
    md: MdHandle,
    buf: IoBuf,
}

#[allow(clippy::too_many_arguments)]
fn attach(
    f: &mut Fabric,
    node: usize,
    id: ProcessId,
    bits: u64,
    ignore: u64,
    pos: InsPos,
    len: usize,
    options: MdOptions,
    threshold: Threshold,
    unlink: Unlink,
) -> Target {
    let me = f.nodes[node]
        .lnet
        .me_attach(P, id, bits, ignore, unlink, pos)
        .expect("me_attach");
    let buf = IoBuf::zeroed(len);
    let md = f.nodes[node]
        .lnet
        .md_attach(
            me,
            MdSpec::new(Payload::single(buf.clone()), options, threshold),
            unlink,
        )
        .expect("md_attach");
    Target { me, md, buf }
}

fn simple(f: &mut Fabric, node: usize, bits: u64, len: usize, options: MdOptions) -> Target {
    attach(
        f,
        node,
        any(),
        bits,
        0,
        InsPos::After,
        len,
        options,
        Threshold::Infinite,
        Unlink::Retain,
    )
}

fn bind(f: &mut Fabric, node: usize, data: Vec<u8>, threshold: u32) -> MdHandle {
    f.nodes[node]
        .lnet
        .md_bind(
            MdSpec::new(
                Payload::single(IoBuf::from_vec(data)),
                MdOptions::NONE,
                Threshold::Count(threshold),
            ),
            Unlink::Unlink,
        )
        .expect("md_bind")
}

/// PUT `data` from node 0 to node 1 on portal P; returns the initiator MD.
fn put(
    f: &mut Fabric,
    data: Vec<u8>,
    bits: u64,
    ack: AckReq,
    offset: u32,
    hdr_data: u64,
) -> MdHandle {
    let md = bind(f, 0, data, 2);
    ready(f);
    let now = f.now;
    f.nodes[0]
        .lnet
        .put(now, None, md, ack, pid(1), P, bits, offset, hdr_data)
        .expect("put");
    f.run();
    md
}

fn get(f: &mut Fabric, sink: usize, bits: u64, offset: u32, options: MdOptions) -> IoBuf {
    let b = IoBuf::zeroed(sink);
    let md = f.nodes[0]
        .lnet
        .md_bind(
            MdSpec::new(Payload::single(b.clone()), options, Threshold::Count(2)),
            Unlink::Unlink,
        )
        .expect("bind");
    ready(f);
    let now = f.now;
    f.nodes[0]
        .lnet
        .get(now, None, md, pid(1), P, bits, offset)
        .expect("get");
    f.run();
    b
}

/// Node 0 discovers node 1 before the first message (§9.2), and both forget
/// the counts of that exchange: the rules below are about the message.
fn ready(f: &mut Fabric) {
    let known = f.nodes[0]
        .lnet
        .peer(&nid(1))
        .is_some_and(|p| p.discovered());
    if !known {
        f.discover(0, 1);
        f.nodes[0].lnet.stats_reset();
        f.nodes[1].lnet.stats_reset();
    }
}

fn kinds(evs: &[MdEvent]) -> Vec<EventKind> {
    evs.iter().map(|e| e.kind).collect()
}

fn one(evs: &[MdEvent], k: EventKind) -> MdEvent {
    let v: Vec<&MdEvent> = evs.iter().filter(|e| e.kind == k).collect();
    assert_eq!(v.len(), 1, "exactly one {k:?} in {:?}", kinds(evs));
    *v[0]
}

// ---- §2.1 portals -------------------------------------------------------

#[test]
fn rule_2_1_first_me_fixes_portal_type_unique_then_wildcard_is_eperm() {
    let mut f = Fabric::new(1);
    let l = &mut f.nodes[0].lnet;
    l.me_attach(P, pid(1), 1, 0, Unlink::Retain, InsPos::After)
        .expect("unique ME");
    let e = l
        .me_attach(P, any(), 1, 0, Unlink::Retain, InsPos::After)
        .expect_err("wildcard on unique");
    assert_eq!(e.errno(), errno::EPERM);
    let e = l
        .me_attach(P, pid(1), 1, 0xff, Unlink::Retain, InsPos::After)
        .expect_err("ignore bits make it wildcard");
    assert!(
        matches!(e, ApiError::PortalTypeConflict { kind: "unique", .. }),
        "{e}"
    );
}

#[test]
fn rule_2_1_wildcard_portal_refuses_unique_me() {
    let mut f = Fabric::new(1);
    let l = &mut f.nodes[0].lnet;
    l.me_attach(
        P,
        ProcessId {
            nid: nid(1),
            pid: LNET_PID_ANY,
        },
        1,
        0,
        Unlink::Retain,
        InsPos::After,
    )
    .expect("wildcard");
    assert_eq!(
        l.me_attach(P, pid(1), 1, 0, Unlink::Retain, InsPos::After)
            .expect_err("unique")
            .errno(),
        errno::EPERM
    );
}

#[test]
fn rule_2_1_put_matching_nothing_on_non_lazy_portal_is_dropped_and_counted() {
    let mut f = Fabric::new(2);
    simple(&mut f, 1, 0x10, 64, MdOptions::OP_PUT);
    put(&mut f, vec![1; 32], 0x11, AckReq::Ack, 0, 0);
    assert!(f.md_events(1).is_empty());
    let ev0 = f.md_events(0);
    assert_eq!(
        kinds(&ev0),
        vec![EventKind::Send],
        "no ACK, no NAK for a dropped PUT"
    );
    let s = f.nodes[1].lnet.stats();
    assert_eq!((s.drop_count, s.drop_length), (1, 32));
    let ni = f.nodes[1].lnet.ni(f.nodes[1].ni).expect("ni");
    assert_eq!(ni.stats().dropped.put, 1);
    // A dropped PUT was not received (counted when a message completes,
    // issue 11 item 6).
    assert_eq!(ni.stats().received.put, 0);
    assert_eq!((s.recv_count, s.recv_length), (0, 0));
}

#[test]
fn rule_2_1_put_on_lazy_portal_waits_for_a_matching_md() {
    let mut f = Fabric::new(2);
    f.nodes[1].lnet.set_lazy_portal(P, true);
    put(&mut f, vec![7; 10], 0x42, AckReq::Ack, 0, 5);
    assert!(f.md_events(1).is_empty());
    // (The pump completes a send when the receiver takes the data, as lo does.)
    assert!(f.md_events(0).is_empty());
    // An MD that does not match leaves it waiting; a matching one takes it.
    simple(&mut f, 1, 0x43, 16, MdOptions::OP_PUT);
    f.run();
    assert!(f.md_events(1).is_empty());
    let t = simple(&mut f, 1, 0x42, 16, MdOptions::OP_PUT);
    f.run();
    let ev = one(&f.md_events(1), EventKind::Put);
    assert_eq!((ev.mlength, ev.hdr_data), (10, 5));
    assert_eq!(&t.buf.to_vec().expect("free")[..10], &[7; 10]);
    let mut k = kinds(&f.md_events(0));
    k.sort_by_key(|k| *k as u32);
    assert_eq!(k, vec![EventKind::Ack, EventKind::Send]);
}

#[test]
fn rule_2_1_clearing_lazy_flag_drops_waiting_puts() {
    let mut f = Fabric::new(2);
    f.nodes[1].lnet.set_lazy_portal(P, true);
    put(&mut f, vec![7; 10], 0x42, AckReq::Ack, 0, 0);
    f.nodes[1].lnet.set_lazy_portal(P, false);
    f.run();
    assert_eq!(f.nodes[1].lnet.stats().drop_count, 1);
    assert_eq!(f.nodes[1].lnet.stats().msgs_alloc, 0);
    simple(&mut f, 1, 0x42, 16, MdOptions::OP_PUT);
    f.run();
    assert!(f.md_events(1).is_empty());
}

#[test]
fn rule_2_1_get_matching_nothing_is_dropped_even_on_lazy_portal() {
    let mut f = Fabric::new(2);
    f.nodes[1].lnet.set_lazy_portal(P, true);
    get(&mut f, 8, 0x42, 0, MdOptions::NONE);
    assert_eq!(f.nodes[1].lnet.stats().drop_count, 1);
    assert_eq!(f.nodes[1].lnet.stats().msgs_alloc, 0);
    assert_eq!(kinds(&f.md_events(0)), vec![EventKind::Send]);
}

// ---- §2.2 MEs -----------------------------------------------------------

#[test]
fn rule_2_2_portal_out_of_range_is_einval() {
    let mut f = Fabric::new(1);
    let e = f.nodes[0]
        .lnet
        .me_attach(64, any(), 0, 0, Unlink::Retain, InsPos::After)
        .expect_err("64");
    assert_eq!(e.errno(), errno::EINVAL);
}

#[test]
fn rule_2_2_ins_before_puts_the_me_at_the_head() {
    let mut f = Fabric::new(2);
    let a = simple(&mut f, 1, 1, 8, MdOptions::OP_PUT);
    let b = attach(
        &mut f,
        1,
        any(),
        1,
        0,
        InsPos::Before,
        8,
        MdOptions::OP_PUT,
        Threshold::Infinite,
        Unlink::Retain,
    );
    put(&mut f, vec![9; 8], 1, AckReq::NoAck, 0, 0);
    assert_eq!(one(&f.md_events(1), EventKind::Put).md, b.md);
    assert_eq!(a.buf.to_vec().expect("free"), vec![0; 8]);
}

#[test]
fn rule_2_2_ins_after_appends_at_the_tail() {
    let mut f = Fabric::new(2);
    let a = simple(&mut f, 1, 1, 8, MdOptions::OP_PUT);
    simple(&mut f, 1, 1, 8, MdOptions::OP_PUT);
    put(&mut f, vec![9; 8], 1, AckReq::NoAck, 0, 0);
    assert_eq!(one(&f.md_events(1), EventKind::Put).md, a.md);
}

#[test]
fn rule_2_2_ignore_bits_list_is_searched_before_the_exact_list() {
    let mut f = Fabric::new(2);
    simple(&mut f, 1, 0x1234, 8, MdOptions::OP_PUT);
    let wild = attach(
        &mut f,
        1,
        any(),
        0x1200,
        0xff,
        InsPos::After,
        8,
        MdOptions::OP_PUT,
        Threshold::Infinite,
        Unlink::Retain,
    );
    put(&mut f, vec![1; 8], 0x1234, AckReq::NoAck, 0, 0);
    assert_eq!(one(&f.md_events(1), EventKind::Put).md, wild.md);
}

#[test]
fn rule_2_2_me_without_md_never_matches() {
    let mut f = Fabric::new(2);
    f.nodes[1]
        .lnet
        .me_attach(P, any(), 1, 0, Unlink::Retain, InsPos::After)
        .expect("me");
    put(&mut f, vec![1; 8], 1, AckReq::Ack, 0, 0);
    assert_eq!(f.nodes[1].lnet.stats().drop_count, 1);
}

#[test]
fn rule_2_2_unlink_policy_decides_whether_the_me_outlives_its_md() {
    let mut f = Fabric::new(2);
    let base = f.nodes[1].lnet.me_count();
    let retain = attach(
        &mut f,
        1,
        any(),
        1,
        0,
        InsPos::After,
        8,
        MdOptions::OP_PUT,
        Threshold::Count(1),
        Unlink::Retain,
    );
    f.nodes[1].lnet.md_unlink(retain.md).expect("unlink");
    assert_eq!(
        f.nodes[1].lnet.me_count(),
        base + 1,
        "RETAIN keeps the empty ME"
    );
    // The retained ME takes a new MD.
    f.nodes[1]
        .lnet
        .md_attach(
            retain.me,
            MdSpec::new(
                Payload::single(IoBuf::zeroed(8)),
                MdOptions::OP_PUT,
                Threshold::Count(1),
            ),
            Unlink::Unlink,
        )
        .expect("re-attach");
    let gone = attach(
        &mut f,
        1,
        any(),
        2,
        0,
        InsPos::After,
        8,
        MdOptions::OP_PUT,
        Threshold::Count(1),
        Unlink::Unlink,
    );
    f.nodes[1].lnet.md_unlink(gone.md).expect("unlink");
    assert_eq!(
        f.nodes[1].lnet.me_count(),
        base + 1,
        "UNLINK frees the ME with its MD"
    );
    assert!(f.nodes[1].lnet.me_unlink(gone.me).is_err());
}

// ---- §2.3 MDs -----------------------------------------------------------

#[test]
fn rule_2_3_attach_without_op_bits_is_einval_and_unlinks_the_me() {
    let mut f = Fabric::new(1);
    let l = &mut f.nodes[0].lnet;
    let me = l
        .me_attach(P, any(), 1, 0, Unlink::Retain, InsPos::After)
        .expect("me");
    let e = l
        .md_attach(
            me,
            MdSpec::new(
                Payload::single(IoBuf::zeroed(4)),
                MdOptions::TRUNCATE,
                Threshold::Infinite,
            ),
            Unlink::Retain,
        )
        .expect_err("no OP bit");
    assert_eq!(e.errno(), errno::EINVAL);
    assert!(matches!(l.me_unlink(me), Err(ApiError::UnknownMe { .. })));
}

#[test]
fn rule_2_3_bind_with_op_bits_or_over_1mib_is_einval() {
    let mut f = Fabric::new(1);
    let l = &mut f.nodes[0].lnet;
    let e = l
        .md_bind(
            MdSpec::new(
                Payload::single(IoBuf::zeroed(4)),
                MdOptions::OP_GET,
                Threshold::Infinite,
            ),
            Unlink::Retain,
        )
        .expect_err("OP bit on bind");
    assert_eq!(e.errno(), errno::EINVAL);
    let e = l
        .md_bind(
            MdSpec::new(
                Payload::single(IoBuf::zeroed((1 << 20) + 1)),
                MdOptions::NONE,
                Threshold::Infinite,
            ),
            Unlink::Retain,
        )
        .expect_err("over 1 MiB");
    assert_eq!(e.errno(), errno::EINVAL);
}

#[test]
fn rule_2_3_md_refuses_an_operation_it_lacks() {
    let mut f = Fabric::new(2);
    simple(&mut f, 1, 1, 8, MdOptions::OP_GET);
    put(&mut f, vec![1; 8], 1, AckReq::Ack, 0, 0);
    assert_eq!(f.nodes[1].lnet.stats().drop_count, 1);
    simple(&mut f, 1, 2, 8, MdOptions::OP_PUT);
    get(&mut f, 8, 2, 0, MdOptions::NONE);
    assert_eq!(f.nodes[1].lnet.stats().drop_count, 2);
}

#[test]
fn rule_2_3_threshold_counts_operations_then_the_md_is_exhausted() {
    let mut f = Fabric::new(2);
    let t = attach(
        &mut f,
        1,
        any(),
        1,
        0,
        InsPos::After,
        64,
        MdOptions::OP_PUT,
        Threshold::Count(2),
        Unlink::Unlink,
    );
    for _ in 0..3 {
        put(&mut f, vec![3; 8], 1, AckReq::NoAck, 0, 0);
    }
    let evs = f.md_events(1);
    assert_eq!(kinds(&evs), vec![EventKind::Put, EventKind::Put]);
    assert!(
        !evs[0].unlinked && evs[1].unlinked,
        "the last event says unlinked"
    );
    assert_eq!(
        f.nodes[1].lnet.stats().drop_count,
        1,
        "the third PUT finds no MD"
    );
    assert!(
        f.nodes[1].lnet.md_unlink(t.md).is_err(),
        "the handle is dead"
    );
}

#[test]
fn rule_2_3_retain_md_is_not_unlinked_when_exhausted() {
    let mut f = Fabric::new(2);
    let t = attach(
        &mut f,
        1,
        any(),
        1,
        0,
        InsPos::After,
        64,
        MdOptions::OP_PUT,
        Threshold::Count(1),
        Unlink::Retain,
    );
    put(&mut f, vec![3; 8], 1, AckReq::NoAck, 0, 0);
    put(&mut f, vec![3; 8], 1, AckReq::NoAck, 0, 0);
    let evs = f.md_events(1);
    assert_eq!(evs.len(), 1);
    assert!(!evs[0].unlinked);
    assert_eq!(f.nodes[1].lnet.stats().drop_count, 1);
    f.nodes[1]
        .lnet
        .md_unlink(t.md)
        .expect("still a valid handle");
    f.run();
    assert_eq!(kinds(&f.md_events(1)), vec![EventKind::Unlink]);
}

#[test]
fn rule_2_3_max_size_limits_each_operation_and_exhausts_the_md() {
    let mut f = Fabric::new(2);
    let me = f.nodes[1]
        .lnet
        .me_attach(P, any(), 1, 0, Unlink::Unlink, InsPos::After)
        .expect("me");
    let buf = IoBuf::zeroed(100);
    let mut spec = MdSpec::new(
        Payload::single(buf.clone()),
        MdOptions::OP_PUT | MdOptions::MAX_SIZE | MdOptions::TRUNCATE,
        Threshold::Infinite,
    );
    spec.max_size = 40;
    f.nodes[1]
        .lnet
        .md_attach(me, spec, Unlink::Unlink)
        .expect("md");
    put(&mut f, vec![1; 30], 1, AckReq::NoAck, 0, 0); // at 0, 30 bytes
    put(&mut f, vec![2; 50], 1, AckReq::NoAck, 0, 0); // at 30, truncated to 40
    put(&mut f, vec![3; 5], 1, AckReq::NoAck, 0, 0); // 70 + 40 > 100: exhausted
    let evs = f.md_events(1);
    assert_eq!(
        evs.iter()
            .map(|e| (e.offset, e.mlength, e.rlength))
            .collect::<Vec<_>>(),
        vec![(0, 30, 30), (30, 40, 50)]
    );
    assert!(evs[1].unlinked, "exhausted by max_size: auto-unlinked");
    assert_eq!(f.nodes[1].lnet.stats().drop_count, 1);
    let b = buf.to_vec().expect("free");
    assert_eq!(&b[..30], &[1; 30]);
    assert_eq!(&b[30..70], &[2; 40]);
    assert_eq!(&b[70..], &[0; 30]);
}

// ---- §2.4 matching ------------------------------------------------------

#[test]
fn rule_2_4_match_bits_are_compared_outside_the_ignore_bits() {
    let mut f = Fabric::new(2);
    attach(
        &mut f,
        1,
        any(),
        0xAB00,
        0x00FF,
        InsPos::After,
        8,
        MdOptions::OP_PUT,
        Threshold::Infinite,
        Unlink::Retain,
    );
    put(&mut f, vec![1; 8], 0xAB42, AckReq::NoAck, 0, 0);
    put(&mut f, vec![1; 8], 0xAC42, AckReq::NoAck, 0, 0);
    let evs = f.md_events(1);
    assert_eq!(evs.len(), 1);
    assert_eq!(
        evs[0].match_bits, 0xAB42,
        "the event carries the incoming bits"
    );
    assert_eq!(f.nodes[1].lnet.stats().drop_count, 1);
}

#[test]
fn rule_2_4_match_id_filters_on_pid_and_nid() {
    let mut f = Fabric::new(3);
    let wrong_pid = ProcessId {
        nid: Nid::ANY,
        pid: 999,
    };
    attach(
        &mut f,
        1,
        wrong_pid,
        1,
        0,
        InsPos::After,
        8,
        MdOptions::OP_PUT,
        Threshold::Infinite,
        Unlink::Retain,
    );
    let other_nid = ProcessId {
        nid: nid(2),
        pid: LNET_PID_ANY,
    };
    attach(
        &mut f,
        1,
        other_nid,
        1,
        0,
        InsPos::After,
        8,
        MdOptions::OP_PUT,
        Threshold::Infinite,
        Unlink::Retain,
    );
    put(&mut f, vec![1; 8], 1, AckReq::NoAck, 0, 0);
    assert!(f.md_events(1).is_empty());
    let right = attach(
        &mut f,
        1,
        ProcessId {
            nid: nid(0),
            pid: 12345,
        }
        .with_any_pid(),
        1,
        0,
        InsPos::After,
        8,
        MdOptions::OP_PUT,
        Threshold::Infinite,
        Unlink::Retain,
    );
    put(&mut f, vec![1; 8], 1, AckReq::NoAck, 0, 0);
    assert_eq!(one(&f.md_events(1), EventKind::Put).md, right.md);
}

trait AnyPid {
    fn with_any_pid(self) -> ProcessId;
}
impl AnyPid for ProcessId {
    fn with_any_pid(self) -> ProcessId {
        ProcessId {
            nid: self.nid,
            pid: LNET_PID_ANY,
        }
    }
}

#[test]
fn rule_2_4_too_long_without_truncate_is_dropped_and_the_search_stops() {
    let mut f = Fabric::new(2);
    let small = simple(&mut f, 1, 1, 4, MdOptions::OP_PUT);
    let big = simple(&mut f, 1, 1, 64, MdOptions::OP_PUT);
    put(&mut f, vec![5; 8], 1, AckReq::Ack, 0, 0);
    assert!(f.md_events(1).is_empty());
    assert_eq!(f.nodes[1].lnet.stats().drop_count, 1);
    assert_eq!(
        big.buf.to_vec().expect("free"),
        vec![0; 64],
        "not delivered to the next ME"
    );
    assert_eq!(small.buf.to_vec().expect("free"), vec![0; 4]);
}

#[test]
fn rule_2_4_truncate_delivers_what_fits() {
    let mut f = Fabric::new(2);
    let t = simple(&mut f, 1, 1, 4, MdOptions::OP_PUT | MdOptions::TRUNCATE);
    put(&mut f, pattern(10, 1), 1, AckReq::Ack, 0, 0);
    let ev = one(&f.md_events(1), EventKind::Put);
    assert_eq!((ev.rlength, ev.mlength), (10, 4));
    assert_eq!(t.buf.to_vec().expect("free"), pattern(10, 1)[..4].to_vec());
    assert_eq!(
        one(&f.md_events(0), EventKind::Ack).mlength,
        4,
        "the ACK reports what was accepted"
    );
}

#[test]
fn rule_2_4_local_offset_advances_by_mlength() {
    let mut f = Fabric::new(2);
    let t = simple(&mut f, 1, 1, 16, MdOptions::OP_PUT);
    put(&mut f, vec![1; 5], 1, AckReq::NoAck, 9, 0);
    put(&mut f, vec![2; 5], 1, AckReq::NoAck, 0, 0);
    let evs = f.md_events(1);
    assert_eq!(
        evs.iter().map(|e| e.offset).collect::<Vec<_>>(),
        vec![0, 5],
        "the requested offset is ignored"
    );
    assert_eq!(
        t.buf.to_vec().expect("free"),
        [vec![1; 5], vec![2; 5], vec![0; 6]].concat()
    );
}

#[test]
fn rule_2_4_manage_remote_uses_the_requested_offset() {
    let mut f = Fabric::new(2);
    let t = simple(
        &mut f,
        1,
        1,
        16,
        MdOptions::OP_PUT | MdOptions::OP_GET | MdOptions::MANAGE_REMOTE,
    );
    put(&mut f, vec![1; 4], 1, AckReq::NoAck, 10, 0);
    put(&mut f, vec![2; 4], 1, AckReq::NoAck, 2, 0);
    let evs = f.md_events(1);
    assert_eq!(
        evs.iter().map(|e| e.offset).collect::<Vec<_>>(),
        vec![10, 2]
    );
    let b = t.buf.to_vec().expect("free");
    assert_eq!(&b[10..14], &[1; 4]);
    assert_eq!(&b[2..6], &[2; 4]);
    // GET with a source offset reads from there.
    let sink = get(&mut f, 4, 1, 10, MdOptions::NONE);
    assert_eq!(sink.to_vec().expect("free"), vec![1; 4]);
}

#[test]
fn rule_2_4_manage_remote_offset_beyond_the_md_never_writes_outside_it() {
    let mut f = Fabric::new(2);
    let t = simple(
        &mut f,
        1,
        1,
        16,
        MdOptions::OP_PUT | MdOptions::MANAGE_REMOTE | MdOptions::TRUNCATE,
    );
    put(&mut f, vec![1; 4], 1, AckReq::NoAck, 14, 0);
    put(&mut f, vec![1; 4], 1, AckReq::NoAck, 4000, 0);
    let evs = f.md_events(1);
    assert_eq!(
        evs.iter()
            .map(|e| (e.offset, e.mlength))
            .collect::<Vec<_>>(),
        vec![(14, 2), (16, 0)]
    );
    assert_eq!(&t.buf.to_vec().expect("free")[14..], &[1, 1]);
}

#[test]
fn rule_2_4_initiator_is_the_primary_nid_of_the_source_peer() {
    let mut f = Fabric::new(2);
    let primary = Nid::new4(TCP, 0x0a00_00fe);
    f.nodes[1]
        .lnet
        .peer_add(primary, &[nid(0)], true)
        .expect("peer add");
    // An ME naming the primary NID matches a PUT sent from another NID of the peer.
    let t = attach(
        &mut f,
        1,
        ProcessId {
            nid: primary,
            pid: LNET_PID_ANY,
        },
        1,
        0,
        InsPos::After,
        8,
        MdOptions::OP_PUT,
        Threshold::Infinite,
        Unlink::Retain,
    );
    put(&mut f, vec![1; 8], 1, AckReq::NoAck, 0, 0);
    let ev = one(&f.md_events(1), EventKind::Put);
    assert_eq!(ev.md, t.md);
    assert_eq!(ev.initiator.nid, primary);
    assert_eq!(ev.source.nid, nid(0));
    // An ME naming the non-primary NID of the same peer still matches.
    let t2 = attach(
        &mut f,
        1,
        ProcessId {
            nid: nid(0),
            pid: LNET_PID_ANY,
        },
        2,
        0,
        InsPos::After,
        8,
        MdOptions::OP_PUT,
        Threshold::Infinite,
        Unlink::Retain,
    );
    put(&mut f, vec![1; 8], 2, AckReq::NoAck, 0, 0);
    assert_eq!(one(&f.md_events(1), EventKind::Put).md, t2.md);
}

// ---- §2.5 unlinking -----------------------------------------------------

#[test]
fn rule_2_5_unlink_of_an_idle_md_gives_an_unlink_event() {
    let mut f = Fabric::new(1);
    let t = simple(&mut f, 0, 1, 8, MdOptions::OP_PUT);
    f.nodes[0].lnet.md_unlink(t.md).expect("unlink");
    f.run();
    let ev = one(&f.md_events(0), EventKind::Unlink);
    assert!(ev.unlinked);
    assert_eq!(ev.status, 0);
}

#[test]
fn rule_2_5_unlink_of_an_unknown_handle_is_enoent_and_the_handle_dies_at_once() {
    let mut f = Fabric::new(1);
    let md = bind(&mut f, 0, vec![0; 8], 1);
    f.nodes[0].lnet.md_unlink(md).expect("unlink");
    let e = f.nodes[0].lnet.md_unlink(md).expect_err("second unlink");
    assert_eq!(e.errno(), errno::ENOENT);
    let now = f.now;
    let e = f.nodes[0]
        .lnet
        .put(now, None, md, AckReq::NoAck, pid(0), P, 0, 0, 0)
        .expect_err("put from dead MD");
    assert_eq!(e.errno(), errno::ENOENT);
}

#[test]
fn rule_2_5_unlink_of_a_busy_md_reports_etimedout_on_its_last_event() {
    let mut f = Fabric::new(2);
    simple(&mut f, 1, 1, 8, MdOptions::OP_PUT);
    ready(&mut f);
    f.hold = true;
    let md = bind(&mut f, 0, vec![1; 8], 2);
    let now = f.now;
    f.nodes[0]
        .lnet
        .put(now, None, md, AckReq::Ack, pid(1), P, 1, 0, 0)
        .expect("put");
    f.run();
    f.nodes[0].lnet.md_unlink(md).expect("unlink while sending");
    f.run();
    assert!(
        f.md_events(0).is_empty(),
        "no UNLINK event while a message uses it"
    );
    f.release();
    let evs = f.md_events(0);
    let send = one(&evs, EventKind::Send);
    assert_eq!(send.status, -errno::ETIMEDOUT);
    assert!(send.unlinked);
    assert_eq!(evs.len(), 1, "the ACK finds no MD and is dropped");
    assert_eq!(f.nodes[0].lnet.stats().drop_count, 1);
}

#[test]
fn rule_2_5_a_message_not_yet_handed_to_the_lnd_is_cancelled() {
    let mut f = Fabric::with_credits(2, 256, 1);
    simple(&mut f, 1, 1, 64, MdOptions::OP_PUT);
    f.hold = true;
    let now = f.now;
    let a = bind(&mut f, 0, vec![1; 8], 1);
    let b = bind(&mut f, 0, vec![2; 8], 1);
    f.nodes[0]
        .lnet
        .put(now, None, a, AckReq::NoAck, pid(1), P, 1, 0, 0)
        .expect("put a");
    f.nodes[0]
        .lnet
        .put(now, None, b, AckReq::NoAck, pid(1), P, 1, 0, 0)
        .expect("put b waits for a peer credit");
    f.run();
    f.nodes[0].lnet.md_unlink(b).expect("unlink b");
    f.release();
    let evs = f.md_events(0);
    let sends: Vec<(MdHandle, i32)> = evs
        .iter()
        .filter(|e| e.kind == EventKind::Send)
        .map(|e| (e.md, e.status))
        .collect();
    assert_eq!(sends, vec![(a, 0), (b, -errno::ECANCELED)]);
    assert_eq!(f.md_events(1).len(), 1, "only a arrived");
}

// ---- §2.6 handles -------------------------------------------------------

#[test]
fn rule_2_6_a_wire_handle_of_another_instance_is_dropped() {
    let mut f = Fabric::new(1);
    let md = bind(&mut f, 0, vec![0; 8], 2);
    let _ = md;
    let now = f.now;
    let foreign = WireHandle {
        interface_cookie: 0xdead,
        object_cookie: md.cookie(),
    };
    let hdr = Hdr::ack(
        nid(0),
        nid(5),
        12345,
        12345,
        AckBody {
            dst_wmd: foreign,
            match_bits: 0,
            mlength: 8,
        },
    );
    let ni = f.nodes[0].ni;
    f.nodes[0]
        .lnet
        .handle_rx(now, ni, hdr, nid(5), RxToken(1), false)
        .expect("parse ok");
    let op = f.nodes[0].lnet.poll_lnd().expect("recv");
    assert!(
        matches!(op, LndOp::Recv { rx, .. } if rx.msg.is_none()),
        "discarded"
    );
    assert_eq!(f.nodes[0].lnet.stats().drop_count, 1);
    assert!(f.nodes[0].lnet.poll_event().is_none());
}

// ---- §3 events ----------------------------------------------------------

#[test]
fn rule_3_send_event_reports_the_request() {
    let mut f = Fabric::new(2);
    simple(&mut f, 1, 1, 64, MdOptions::OP_PUT);
    let md = put(&mut f, vec![1; 33], 1, AckReq::NoAck, 3, 0xfeed);
    let ev = one(&f.md_events(0), EventKind::Send);
    assert_eq!(ev.md, md);
    assert_eq!(
        (
            ev.rlength,
            ev.mlength,
            ev.offset,
            ev.hdr_data,
            ev.portal,
            ev.match_bits
        ),
        (33, 33, 3, 0xfeed, P, 1)
    );
    assert_eq!(ev.msg_type, MsgType::PUT);
    assert_eq!(ev.initiator, ProcessId::ANY);
    assert_eq!(ev.target, pid(1));
    assert!(
        !ev.unlinked,
        "a threshold-2 MD keeps one operation after a NOACK PUT"
    );
}

#[test]
fn rule_3_an_event_with_an_error_still_consumes_the_threshold() {
    let mut f = Fabric::new(2);
    f.dead.insert(1);
    let md = bind(&mut f, 0, vec![1; 8], 1);
    let now = f.now;
    f.nodes[0]
        .lnet
        .put(now, None, md, AckReq::NoAck, pid(1), P, 1, 0, 0)
        .expect("put");
    f.run();
    f.fail_lost();
    let ev = one(&f.md_events(0), EventKind::Send);
    assert_eq!(ev.status, -110);
    assert!(ev.unlinked);
    let e = f.nodes[0]
        .lnet
        .put(now, None, md, AckReq::NoAck, pid(1), P, 1, 0, 0)
        .expect_err("used up");
    assert_eq!(e.errno(), errno::ENOENT);
}

// ---- §4 lifecycles ------------------------------------------------------

#[test]
fn rule_4_1_put_from_an_unusable_md_is_enoent_without_events() {
    let mut f = Fabric::new(2);
    let t = simple(&mut f, 0, 1, 8, MdOptions::OP_PUT);
    let now = f.now;
    let l = &mut f.nodes[0].lnet;
    let e = l
        .put(now, None, t.md, AckReq::NoAck, pid(1), P, 1, 0, 0)
        .expect_err("attached MD");
    assert_eq!(e.errno(), errno::ENOENT);
    let md = l
        .md_bind(
            MdSpec::new(Payload::new(), MdOptions::NONE, Threshold::Count(0)),
            Unlink::Retain,
        )
        .expect("bind");
    let e = l
        .put(now, None, md, AckReq::NoAck, pid(1), P, 1, 0, 0)
        .expect_err("threshold 0");
    assert!(
        matches!(
            e,
            ApiError::UnusableMd {
                reason: "threshold exhausted",
                ..
            }
        ),
        "{e}"
    );
    assert!(l.poll_event().is_none());
    assert!(l.poll_lnd().is_none());
}

#[test]
fn rule_4_2_ack_disable_suppresses_the_ack() {
    let mut f = Fabric::new(2);
    simple(&mut f, 1, 1, 8, MdOptions::OP_PUT | MdOptions::ACK_DISABLE);
    put(&mut f, vec![1; 8], 1, AckReq::Ack, 0, 0);
    assert_eq!(kinds(&f.md_events(0)), vec![EventKind::Send]);
    assert_eq!(
        f.nodes[1]
            .lnet
            .ni(f.nodes[1].ni)
            .expect("ni")
            .stats()
            .sent
            .ack,
        0
    );
}

#[test]
fn rule_4_2_noack_request_gets_no_ack() {
    let mut f = Fabric::new(2);
    simple(&mut f, 1, 1, 8, MdOptions::OP_PUT);
    put(&mut f, vec![1; 8], 1, AckReq::NoAck, 0, 0);
    assert_eq!(kinds(&f.md_events(0)), vec![EventKind::Send]);
    assert_eq!(
        f.nodes[1]
            .lnet
            .ni(f.nodes[1].ni)
            .expect("ni")
            .stats()
            .sent
            .ack,
        0
    );
}

#[test]
fn rule_4_2_a_failed_receive_sends_no_ack() {
    let mut f = Fabric::new(1);
    simple(&mut f, 0, 1, 8, MdOptions::OP_PUT);
    let now = f.now;
    let ni = f.nodes[0].ni;
    let wmd = WireHandle {
        interface_cookie: 9,
        object_cookie: 9,
    };
    let hdr = Hdr::put(
        nid(0),
        nid(5),
        12345,
        12345,
        8,
        PutBody {
            ack_wmd: wmd,
            match_bits: 1,
            hdr_data: 0,
            ptl_index: P,
            offset: 0,
        },
    );
    let l = &mut f.nodes[0].lnet;
    l.handle_rx(now, ni, hdr, nid(5), RxToken(1), false)
        .expect("parse");
    let Some(LndOp::Recv { rx, .. }) = l.poll_lnd() else {
        panic!("recv expected")
    };
    let m = rx.msg.into_option().expect("deliver");
    l.handle_done(
        now,
        m,
        Completion::failed(errno::EIO, HealthStatus::REMOTE_DROPPED),
    );
    assert!(l.poll_lnd().is_none(), "no ACK after a failed receive");
    let Some(lnet_core::Event::Md(ev)) = l.poll_event() else {
        panic!("PUT event")
    };
    assert_eq!((ev.kind, ev.status), (EventKind::Put, -errno::EIO));
}

#[test]
fn rule_4_3_reply_longer_than_the_md_without_truncate_is_dropped() {
    let mut f = Fabric::new(1);
    let sink = IoBuf::zeroed(4);
    let now = f.now;
    let l = &mut f.nodes[0].lnet;
    let md = l
        .md_bind(
            MdSpec::new(
                Payload::single(sink.clone()),
                MdOptions::NONE,
                Threshold::Count(2),
            ),
            Unlink::Unlink,
        )
        .expect("bind");
    let wmd = WireHandle {
        interface_cookie: l.interface_cookie(),
        object_cookie: md.cookie(),
    };
    let ni = f.nodes[0].ni;
    let l = &mut f.nodes[0].lnet;
    let hdr = Hdr::reply(nid(0), nid(5), 12345, 12345, 8, ReplyBody { dst_wmd: wmd });
    l.handle_rx(now, ni, hdr, nid(5), RxToken(1), false)
        .expect("parse");
    assert!(
        matches!(l.poll_lnd(), Some(LndOp::Recv { rx, .. }) if rx.msg.is_none() && rx.rlen == 8)
    );
    assert_eq!(l.stats().drop_count, 1);
    // With TRUNCATE the first bytes land.
    let md2 = l
        .md_bind(
            MdSpec::new(
                Payload::single(sink.clone()),
                MdOptions::TRUNCATE,
                Threshold::Count(2),
            ),
            Unlink::Unlink,
        )
        .expect("bind");
    let wmd2 = WireHandle {
        interface_cookie: l.interface_cookie(),
        object_cookie: md2.cookie(),
    };
    let hdr = Hdr::reply(nid(0), nid(5), 12345, 12345, 8, ReplyBody { dst_wmd: wmd2 });
    l.handle_rx(now, ni, hdr, nid(5), RxToken(2), false)
        .expect("parse");
    let Some(LndOp::Recv { rx, payload, .. }) = l.poll_lnd() else {
        panic!("recv")
    };
    assert_eq!((payload.len(), rx.rlen), (4, 8));
}

#[test]
fn rule_4_4_reply_carries_min_of_sink_length_and_md_space() {
    let mut f = Fabric::new(2);
    let me = f.nodes[1]
        .lnet
        .me_attach(P, any(), 1, 0, Unlink::Retain, InsPos::After)
        .expect("me");
    let (_, src) = buf(pattern(100, 4));
    f.nodes[1]
        .lnet
        .md_attach(
            me,
            MdSpec::new(
                src,
                MdOptions::OP_GET | MdOptions::TRUNCATE | MdOptions::MANAGE_REMOTE,
                Threshold::Infinite,
            ),
            Unlink::Retain,
        )
        .expect("md");
    let sink = get(&mut f, 200, 1, 0, MdOptions::TRUNCATE);
    let evs = f.md_events(0);
    let r = one(&evs, EventKind::Reply);
    assert_eq!((r.rlength, r.mlength), (100, 100));
    assert_eq!(&sink.to_vec().expect("free")[..100], &pattern(100, 4)[..]);
    let sink = get(&mut f, 30, 1, 50, MdOptions::NONE);
    assert_eq!(
        sink.to_vec().expect("free"),
        pattern(100, 4)[50..80].to_vec()
    );
    let g = f.md_events(1);
    assert_eq!(
        g.iter()
            .map(|e| (e.kind, e.rlength, e.mlength, e.offset))
            .collect::<Vec<_>>(),
        vec![(EventKind::Get, 200, 100, 0), (EventKind::Get, 30, 30, 50)]
    );
}

#[test]
fn rule_4_6_a_message_waiting_for_credits_past_its_deadline_is_dropped() {
    let mut f = Fabric::with_credits(2, 256, 1);
    simple(&mut f, 1, 1, 64, MdOptions::OP_PUT);
    ready(&mut f);
    f.dead.insert(1);
    let now = f.now;
    let a = bind(&mut f, 0, vec![1; 8], 1);
    let b = bind(&mut f, 0, vec![2; 8], 1);
    f.nodes[0]
        .lnet
        .put(now, None, a, AckReq::NoAck, pid(1), P, 1, 0, 0)
        .expect("put a");
    f.nodes[0]
        .lnet
        .put(now, None, b, AckReq::NoAck, pid(1), P, 1, 0, 0)
        .expect("put b");
    f.run();
    f.advance(lnet_core::Duration::from_secs(149));
    assert!(f.md_events(0).is_empty());
    f.advance(lnet_core::Duration::from_secs(2));
    let ev = one(&f.md_events(0), EventKind::Send);
    assert_eq!((ev.md, ev.status), (b, -errno::ETIMEDOUT));
    let s = f.nodes[0].lnet.stats();
    assert_eq!(s.health.network_timeout, 1);
    let peer = f.nodes[0].lnet.peer(&nid(1)).expect("peer");
    let pni = peer.peer_nis().next().expect("peer ni");
    assert_eq!(
        pni.health_value(),
        1000,
        "a late failure changes no health (§8.3)"
    );
    let ni = f.nodes[0].lnet.ni(f.nodes[0].ni).expect("ni");
    assert_eq!(ni.health_value(), 1000);
    assert_eq!(
        pni.tx_credits(),
        0,
        "a still holds the only credit; b's was given back"
    );
}

// ---- §7.6 header checks -------------------------------------------------

#[test]
fn rule_7_6_malformed_headers_are_protocol_errors() {
    let mut f = Fabric::new(1);
    let now = f.now;
    let ni = f.nodes[0].ni;
    let l = &mut f.nodes[0].lnet;
    let get = GetBody {
        return_wmd: WireHandle::NONE,
        match_bits: 0,
        ptl_index: 0,
        src_offset: 0,
        sink_length: 0,
    };
    let mut bad_get = Hdr::get(nid(0), nid(5), 12345, 12345, get);
    bad_get.payload_length = 1;
    let mut hello = bad_get;
    hello.msg_type = MsgType::HELLO;
    hello.payload_length = 0;
    let mut unknown = hello;
    unknown.msg_type = MsgType(9);
    let huge = Hdr::put(
        nid(0),
        nid(5),
        12345,
        12345,
        (1 << 20) + 1,
        PutBody {
            ack_wmd: WireHandle::NONE,
            match_bits: 0,
            hdr_data: 0,
            ptl_index: 0,
            offset: 0,
        },
    );
    for h in [bad_get, hello, unknown, huge] {
        let e = l
            .handle_rx(now, ni, h, nid(5), RxToken(1), false)
            .expect_err("protocol error");
        assert_eq!(e.errno(), errno::EPROTO);
    }
    assert!(l.poll_lnd().is_none(), "no recv after a protocol error");
    assert_eq!(l.stats().msgs_alloc, 0);
}

#[test]
fn rule_7_6_a_message_for_another_node_on_the_receiving_net_is_a_protocol_error() {
    let mut f = Fabric::new(1);
    let now = f.now;
    let ni = f.nodes[0].ni;
    let l = &mut f.nodes[0].lnet;
    let body = PutBody {
        ack_wmd: WireHandle::NONE,
        match_bits: 0,
        hdr_data: 0,
        ptl_index: 0,
        offset: 0,
    };
    let h = Hdr::put(nid(9), nid(5), 12345, 12345, 0, body);
    assert!(l.handle_rx(now, ni, h, nid(5), RxToken(1), false).is_err());
    // For a remote net while not routing: dropped, the LND discards it.
    let remote = Nid::new4(lnet_core::lnd_api::NetId::new(2, 7), 1);
    let h = Hdr::put(remote, nid(5), 12345, 12345, 10, body);
    l.handle_rx(now, ni, h, nid(5), RxToken(2), false)
        .expect("dropped, not an error");
    assert!(
        matches!(l.poll_lnd(), Some(LndOp::Recv { rx, .. }) if rx.msg.is_none() && rx.rlen == 10)
    );
    assert_eq!(l.stats().drop_count, 1);
}

#[test]
fn stale_or_unknown_tokens_are_counted_not_trusted() {
    let mut f = Fabric::new(2);
    simple(&mut f, 1, 1, 8, MdOptions::OP_PUT);
    ready(&mut f);
    f.hold = true;
    let md = bind(&mut f, 0, vec![1; 8], 1);
    let now = f.now;
    f.nodes[0]
        .lnet
        .put(now, None, md, AckReq::NoAck, pid(1), P, 1, 0, 0)
        .expect("put");
    let Some(LndOp::Send { tx, .. }) = f.nodes[0].lnet.poll_lnd() else {
        panic!("send")
    };
    let l = &mut f.nodes[0].lnet;
    l.handle_done(now, tx.token, Completion::OK);
    l.handle_done(now, tx.token, Completion::OK);
    l.handle_done(now, lnet_core::lnd_api::MsgToken(u64::MAX), Completion::OK);
    assert_eq!(l.stats().stale_tokens, 2);
    let sends = std::iter::from_fn(|| l.poll_event()).count();
    assert_eq!(sends, 1, "completed exactly once");
    let _ = NiId::LO;
}
