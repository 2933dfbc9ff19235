//! The stack's rules that every driver relies on (lnetd's node runtime, the
//! simulated fabric, the pump): what happens to an LND operation whose NI
//! has no LND any more, and where an application MD's events go.

#[path = "../../lnet-core/tests/pump/mod.rs"]
mod pump;

use lnet_core::lnd_api::hdr::PutBody;
use lnet_core::lnd_api::{errno, Hdr, IoBuf, Payload, RxToken, WireHandle};
use lnet_core::{Event, EventKind, InsPos, LndOp, MdOptions, MdSpec, ProcessId, Threshold, Unlink};
use lnet_selftest::stack::{lnd_op_ni, StackEvent};
use pump::*;

const P: u32 = 5;

/// Node 0 of a one-node pump with an ME+MD for PUTs on portal `P`, bits 1;
/// a PUT from 10.0.0.6@tcp has just been parsed. Returns the MD.
fn parsed_put(f: &mut Fabric) -> lnet_core::MdHandle {
    let n = &mut f.nodes[0];
    let me = n
        .lnet
        .me_attach(P, ProcessId::ANY, 1, 0, Unlink::Retain, InsPos::After)
        .expect("me_attach");
    let md = n
        .lnet
        .md_attach(
            me,
            MdSpec::new(
                Payload::single(IoBuf::zeroed(8)),
                MdOptions::OP_PUT,
                Threshold::Infinite,
            ),
            Unlink::Retain,
        )
        .expect("md_attach");
    let hdr = Hdr::put(
        nid(0),
        nid(5),
        12345,
        12345,
        8,
        PutBody {
            ack_wmd: WireHandle {
                interface_cookie: 9,
                object_cookie: 9,
            },
            match_bits: 1,
            hdr_data: 0,
            ptl_index: P,
            offset: 0,
        },
    );
    let (now, ni) = (f.now, n.ni);
    n.lnet
        .handle_rx(now, ni, hdr, nid(5), RxToken(1), false)
        .expect("parse");
    md
}

#[test]
fn a_receive_for_a_gone_ni_is_failed_not_left_to_time_out() {
    let mut f = Fabric::new(1);
    let md = parsed_put(&mut f);
    let now = f.now;
    let n = &mut f.nodes[0];
    let op = n.stack.poll_lnd(&mut n.lnet, now).expect("an operation");
    assert!(
        matches!(&op, LndOp::Recv { rx, .. } if rx.msg.is_some()),
        "{op:?}"
    );
    assert_eq!(lnd_op_ni(&op), Some(n.ni));
    // The driver finds no LND for the NI (deleted meanwhile).
    n.stack.handle_unsent(&mut n.lnet, now, op);
    assert!(
        n.stack.poll_lnd(&mut n.lnet, now).is_none(),
        "no ACK for a receive that failed"
    );
    let Some(StackEvent::Engine(Event::Md(ev))) = n.stack.poll_event(&mut n.lnet, now) else {
        panic!("the PUT event")
    };
    assert_eq!(
        (ev.kind, ev.md, ev.status),
        (EventKind::Put, md, -errno::ENETDOWN)
    );
    assert!(n.stack.poll_event(&mut n.lnet, now).is_none());
}

#[test]
fn an_application_md_gets_its_events_with_its_tag() {
    let mut f = Fabric::new(1);
    let md = parsed_put(&mut f);
    let now = f.now;
    let n = &mut f.nodes[0];
    // A stack whose application tags its MDs (lnetd tags them with their
    // event queue).
    let mut stack = lnet_selftest::Stack::<&str>::new(now, WALL);
    stack.app_md_add(md, "inbox");
    let op = stack.poll_lnd(&mut n.lnet, now).expect("the receive");
    stack.handle_unsent(&mut n.lnet, now, op);
    match stack.poll_event(&mut n.lnet, now) {
        Some(StackEvent::App { tag, event }) => {
            assert_eq!((tag, event.kind, event.md), ("inbox", EventKind::Put, md));
        }
        other => panic!("expected the application's PUT event, got {other:?}"),
    }
    assert_eq!(stack.app_md_count(), 1, "the MD is not unlinked");
}
