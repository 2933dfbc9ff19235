//! Long streams of messages over the `lo` LND through the node runtime. The
//! lo LND parses inside `send` and finalizes inside `recv`, so a completion
//! that starts the next send used to nest one level deeper on the stack for
//! every message (a selftest batch over lo overflowed it), and a control
//! request that started such a chain would have run it forever. The runtime
//! hands that nested work to its executor thread.

use std::time::{Duration, Instant};

use lnet_selftest::wire::brw_check;
use lnet_selftest::{Targets, TestType};
use lnet_tests::lst::{add_test, nodes, session, vnd_node, wait_idle};
use lnet_tests::wait_until;
use lnetd::node::{LstRequest, Node};

const KEY: u32 = 4242;

/// A node with one `vnd` NI (a session needs a NID other than 0@lo; messages
/// to the node's own NID take the lo LND), and a brw write test from the
/// node to itself. Loading the plugin checks its layout with abi_stable's
/// recursive checker: the caller does this on the test's ordinary stack.
fn node_with_test(loop_count: i32) -> Node {
    let (node, own) = vnd_node(Vec::new());
    session(&node, KEY, "lo", own, own);
    let brw = TestType::Brw {
        write: true,
        size: 4096,
        check: brw_check::SIMPLE,
        offset: 0,
    };
    add_test(&node, KEY, "batch", loop_count, 1, brw);
    node
}

/// Runs `f` on a thread with a small stack: recursion per message would
/// overflow it within a few hundred messages.
fn on_small_stack(f: impl FnOnce() + Send + 'static) {
    let t = std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(f)
        .expect("spawn");
    t.join().expect("the stream ran to completion");
}

#[test]
fn a_selftest_stream_over_lo_does_not_nest() {
    let node = node_with_test(2000);
    on_small_stack(move || {
        nodes(node.lst(LstRequest::Run {
            key: KEY,
            batch: "batch".into(),
            timeout: 0,
        }));
        wait_idle(&node, KEY, "batch", Duration::from_secs(120));
        let (srv, _) = node.selftest_counters();
        // 2000 writes of 4 KiB, plus the 12-byte destination list of the TEST
        // request (this node is also the client, and fetches it by bulk GET).
        assert_eq!(srv.bulk_get, 2000 * 4096 + 12);
        let c = nodes(node.lst(LstRequest::Stat {
            key: KEY,
            targets: Targets::Group("c".into()),
            timeout: 30,
        }));
        assert_eq!(c[0].stat().expect("client").0.brw_errors, 0);
        node.shutdown();
    });
}

#[test]
fn an_endless_batch_over_lo_leaves_the_caller_free() {
    let node = node_with_test(-1);
    on_small_stack(move || {
        let t0 = Instant::now();
        nodes(node.lst(LstRequest::Run {
            key: KEY,
            batch: "batch".into(),
            timeout: 0,
        }));
        // (A generous bound: run must return while the batch runs on, not
        // fast; a loaded machine may take seconds.)
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "run returned while the batch runs on"
        );
        let first = node.selftest_counters().0.bulk_get;
        wait_until(
            "the batch to make progress",
            Duration::from_secs(60),
            || node.selftest_counters().0.bulk_get > first,
        );
        nodes(node.lst(LstRequest::Stop {
            key: KEY,
            batch: "batch".into(),
            force: true,
        }));
        wait_idle(&node, KEY, "batch", Duration::from_secs(30));
        node.shutdown();
    });
}
