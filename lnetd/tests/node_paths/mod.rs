//! The node runtime's steady-state message paths whose heap allocations are
//! counted (the engine's are in lnet-core's `tests/alloc_paths`), shared by
//! the allocation test (`tests/alloc.rs`) and the node benchmark
//! (`benches/node.rs`): each scenario is set up once, then `step` moves one
//! round trip through [`Node`]'s application API and the `lo` LND and waits
//! for its events.

#![allow(dead_code, unused_imports, unreachable_pub, missing_docs)]

use std::time::Duration;

use lnet_core::lnd_api::{IoBuf, Nid, Payload};
use lnet_core::{
    AckReq, EventKind, MdHandle, MdOptions, MdSpec, Threshold, Unlink, LNET_PID_LUSTRE,
};
use lnetd::node::{EqHandle, MatchSpec, Node, NodeConfig, Target};

#[path = "../../../lnet-core/tests/alloc_paths/measure.rs"]
mod measure;
pub use measure::{check, measure, target_spec, PerStep, BITS, PORTAL};

/// A started node (the built-in `lo` LND serves `0@lo`) with a target MD
/// on `PORTAL`/`BITS` and a source MD of `len` bytes, both never exhausted,
/// their events in one queue.
fn node_with_mds(len: usize, options: MdOptions) -> (Node, MdHandle, EqHandle) {
    let cfg = NodeConfig {
        pid: LNET_PID_LUSTRE,
        ..NodeConfig::default()
    };
    let node = Node::start(cfg).expect("node starts");
    let eq = node.eq_alloc();
    node.md_attach(
        MatchSpec::new(PORTAL, BITS),
        target_spec(len.max(1), options),
        Unlink::Retain,
        &eq,
    )
    .expect("md_attach");
    let spec = MdSpec::new(
        Payload::single(IoBuf::from_vec(vec![0xa5; len])),
        MdOptions::NONE,
        Threshold::Infinite,
    );
    let md = node.md_bind(spec, Unlink::Retain, &eq).expect("md_bind");
    (node, md, eq)
}

/// Waits for one event of each of `kinds` (in any order: over lo an ACK or
/// REPLY may come before the SEND), all successful.
fn wait_events(eq: &EqHandle, kinds: &[EventKind]) {
    let mut seen = [false; 8];
    for _ in 0..kinds.len() {
        let ev = eq
            .wait(Duration::from_secs(60))
            .expect("the round trip completes");
        assert_eq!(ev.status, 0, "{ev:?}");
        assert!(kinds.contains(&ev.kind), "{ev:?}");
        let k = ev.kind as usize;
        assert!(!seen[k], "twice: {ev:?}");
        seen[k] = true;
    }
}

/// Through [`Node`]'s application API and the `lo` LND: a PUT with an ACK
/// to our own NID, waiting for its SEND, PUT and ACK events. Returns the
/// node (shut it down when done) and the step.
pub fn node_put_ack(len: usize) -> (Node, impl FnMut()) {
    let (node, md, eq) = node_with_mds(len, MdOptions::OP_PUT);
    let n = node.clone();
    let step = move || {
        n.put(md, AckReq::Ack, Target::new(Nid::LO_0, PORTAL, BITS), 0)
            .expect("put");
        wait_events(&eq, &[EventKind::Send, EventKind::Put, EventKind::Ack]);
    };
    (node, step)
}

/// Through [`Node`] and the `lo` LND: a GET from our own NID, waiting for
/// its SEND, GET and REPLY events.
pub fn node_get_reply(len: usize) -> (Node, impl FnMut()) {
    let (node, md, eq) = node_with_mds(len, MdOptions::OP_GET);
    let n = node.clone();
    let step = move || {
        n.get(md, Target::new(Nid::LO_0, PORTAL, BITS))
            .expect("get");
        wait_events(&eq, &[EventKind::Send, EventKind::Get, EventKind::Reply]);
    };
    (node, step)
}
