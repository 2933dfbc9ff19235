//! The `netns_linkcut` stall in the simulated fabric: two nodes with two
//! tcp NIs each run `lst brw write` (concurrency 8, 1 MiB, check=simple)
//! from A to B when the link between their first NIs goes: every send on it
//! (either way) fails with the status lnd-sock gives such a send
//! (`LOCAL_ABORTED` when its own link is down, `REMOTE_DROPPED` when it
//! cannot reach the peer). Every brw RPC caught by the cut is resent over
//! the other link, no brw RPC fails (a failed one would end its test unit),
//! and the units go on issuing RPCs, over several cut times and seeds
//! (`SIM_CUT_SEEDS`, 3 by default).

use lnd_api::HealthStatus;
use lnet_core::{Duration, ProcessId};
use lnet_selftest::wire::brw_check;
use lnet_selftest::{ConsoleReply, ConsoleRequest, NodeEntry, Params, TestSpec, TestType};
use lnet_tests::sim::{Fabric, LinkParams, NiSpec, NodeSpec};

const KEY: u32 = 79;
const RPC_TIMEOUT: u32 = 15;

fn entries(r: Result<ConsoleReply, lnet_selftest::ConsoleError>, what: &str) -> Vec<NodeEntry> {
    match r {
        Ok(ConsoleReply::Nodes(n)) => n,
        other => panic!("{what}: expected node entries, got {other:?}"),
    }
}

fn group(f: &mut Fabric, name: &str, node: usize) {
    let nodes: Vec<ProcessId> = vec![f.pid(node)];
    let e = entries(
        f.lst(
            0,
            ConsoleRequest::AddGroup {
                key: KEY,
                name: name.into(),
                nodes,
            },
        ),
        "add_group",
    );
    assert!(e.iter().all(NodeEntry::ok), "add_group {name}: {e:?}");
}

/// Runs the brw batch, makes link 1 lose everything `cut_after` into it
/// (sends complete with `lost`), and checks that brw RPCs go on over link 2
/// without a brw error.
fn run(seed: u64, cut_after: Duration, lost: HealthStatus) {
    let mut f = Fabric::new(seed);
    f.set_default_link(
        LinkParams::new()
            .latency(Duration::from_micros(50))
            .bandwidth(4 << 20),
    );
    for n in 0..2u8 {
        f.add_node(
            NodeSpec::new()
                .ni(NiSpec::tcp([10, 217, 1, n + 1]).timeout(1))
                .ni(NiSpec::tcp([10, 217, 2, n + 1]).timeout(1)),
        );
        f.enable_selftest(
            usize::from(n),
            Params {
                rpc_timeout: RPC_TIMEOUT,
                ..Params::default()
            },
        );
    }
    f.discover_all();
    f.lst(
        0,
        ConsoleRequest::NewSession {
            key: KEY,
            name: "cut".into(),
            timeout: 300,
            force: false,
            features: 1,
        },
    )
    .expect("new_session");
    group(&mut f, "servers", 1);
    group(&mut f, "clients", 0);
    f.lst(
        0,
        ConsoleRequest::AddBatch {
            key: KEY,
            name: "bulk".into(),
        },
    )
    .expect("add_batch");
    let added = entries(
        f.lst(
            0,
            ConsoleRequest::AddTest {
                key: KEY,
                spec: TestSpec {
                    batch: "bulk".into(),
                    loop_count: -1,
                    concurrency: 8,
                    dist: 1,
                    span: 1,
                    from: "clients".into(),
                    to: "servers".into(),
                    test: TestType::Brw {
                        write: true,
                        size: 1 << 20,
                        check: brw_check::SIMPLE,
                        offset: 0,
                    },
                },
            },
        ),
        "add_test",
    );
    assert!(added.iter().all(NodeEntry::ok), "add_test: {added:?}");
    let run = entries(
        f.lst(
            0,
            ConsoleRequest::Run {
                key: KEY,
                batch: "bulk".into(),
                timeout: 5,
            },
        ),
        "run",
    );
    assert!(run.iter().all(NodeEntry::ok), "run: {run:?}");
    f.run_for(cut_after);
    let before = f.inspect_selftest(0, |s| s.rpc_counters());
    assert!(before.rpcs_sent > 0, "seed {seed}: no RPC before the cut");
    // From now on every send on link 1 (either way) fails with `lost`.
    let (a1, b1) = (f.nid(0, 0), f.nid(1, 0));
    let dead = LinkParams::new()
        .latency(Duration::from_micros(50))
        .loss(1.0)
        .loss_status(lost);
    f.set_link(a1, b1, dead);
    f.set_link(b1, a1, dead);
    // Every RPC caught by the cut ends by rpc_timeout; then the units go on.
    f.run_for(Duration::from_secs(u64::from(RPC_TIMEOUT) + 2));
    let mid = f.inspect_selftest(0, |s| s.rpc_counters());
    f.run_for(Duration::from_secs(1));
    let after = f.inspect_selftest(0, |s| s.rpc_counters());
    let now = f.now();
    let stats = |f: &Fabric, n| f.inspect(n, |l| *l.stats());
    let fw = f.inspect_selftest(0, |s| s.fw_counters(now));
    assert!(
        after.rpcs_sent > mid.rpcs_sent && fw.brw_errors == 0,
        "seed {seed}, cut after {cut_after:?} on {lost:?}: brw stalled: \
         brw_errors {}, client RPC counters before the cut {before:?}, {}s after {mid:?}, \
         1 s later {after:?}; server {:?}; engine A {:?}, B {:?}",
        fw.brw_errors,
        RPC_TIMEOUT + 2,
        f.inspect_selftest(1, |s| s.rpc_counters()),
        stats(&f, 0),
        stats(&f, 1),
    );
}

fn seeds() -> u64 {
    std::env::var("SIM_CUT_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
}

/// lnd-sock's status for sends aborted by a link going down: resent over
/// the other rail, so no brw RPC fails.
#[test]
fn brw_goes_on_when_the_cut_aborts_sends_locally() {
    for seed in 1..=seeds() {
        for us in [30_000u64, 250_000] {
            run(
                seed,
                Duration::from_micros(us * seed),
                HealthStatus::LOCAL_ABORTED,
            );
        }
    }
}

/// The netns_linkcut stall that was open: sends lnd-sock had queued for a
/// peer on the link that went down failed when it could not connect, as
/// REMOTE_ERROR (`-EHOSTUNREACH`), which LNet does not resend (§8.3); the
/// brw RPC failed and its test unit ended (the console asks units to stop
/// on error, as upstream lstcon does), one unit per failed RPC, until the
/// batch stopped issuing RPCs. lnd-sock now classifies them as ksocklnd's
/// `ksocknal_txlist_done()` does: a peer it cannot reach is REMOTE_DROPPED
/// (resent to another NID of the peer), and a dead local link is
/// LOCAL_ABORTED (the case above). A resend after REMOTE_DROPPED leaves the
/// source NID the server answered from, as after a local failure, so B's
/// bulk GETs and replies pinned to the cut NI go over the other rail.
#[test]
fn brw_goes_on_when_the_cut_fails_queued_sends_as_remote_drops() {
    for seed in 1..=seeds() {
        for us in [30_000u64, 250_000] {
            run(
                seed,
                Duration::from_micros(us * seed),
                HealthStatus::REMOTE_DROPPED,
            );
        }
    }
}
