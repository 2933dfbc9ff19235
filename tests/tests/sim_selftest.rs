//! LNet selftest in the simulated fabric (issue #6, "one driver"): every
//! node's engine and selftest run in the same sans-IO stack as in lnetd
//! (`lnet_selftest::stack`), so an `lst` session runs under the virtual clock
//! with seeded loss, and replays exactly from its seed.

use lnet_core::{Duration, ProcessId};
use lnet_selftest::wire::{brw_check, Body};
use lnet_selftest::{
    ConsoleReply, ConsoleRequest, NodeEntry, NodeState, Params, SfwCounters, SrpcCounters, Targets,
    TestSpec, TestType,
};
use lnet_tests::sim::{seed_from_env, Fabric, LinkParams, NiSpec, NodeSpec};

const KEY: u32 = 77;
const NODES: usize = 64;
/// Nodes 1..=32 are clients, 33..=63 servers; node 0 runs the console.
const CLIENTS: std::ops::Range<usize> = 1..33;
const SERVERS: std::ops::Range<usize> = 33..NODES;
const PING_LOOPS: i32 = 20;
const BRW_LOOPS: i32 = 10;
const CONCURRENCY: u32 = 2;
const LOSS: f64 = 0.01;

fn entries(r: Result<ConsoleReply, lnet_selftest::ConsoleError>, what: &str) -> Vec<NodeEntry> {
    match r {
        Ok(ConsoleReply::Nodes(n)) => n,
        other => panic!("{what}: expected node entries, got {other:?}"),
    }
}

/// What one run of the session produced: everything compared between two
/// runs of one seed, and checked for plausibility.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    /// Messages the links dropped (seeded loss).
    dropped: u64,
    /// Messages the links carried.
    sent: u64,
    /// Per node: selftest's RPC and framework counters.
    rpc: Vec<SrpcCounters>,
    fw: Vec<SfwCounters>,
    /// Nodes the console saw ACTIVE in each group.
    active_clients: usize,
    active_servers: usize,
    /// Virtual time the batch took, in milliseconds.
    batch_ms: u64,
    /// The fabric's whole trace, hashed (any difference in order or timing
    /// of any message changes it).
    trace_digest: u64,
    trace_lines: usize,
}

fn fnv1a(lines: &[String]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for l in lines {
        for b in l.bytes().chain(std::iter::once(b'\n')) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

fn group(f: &mut Fabric, name: &str, members: std::ops::Range<usize>) -> Vec<NodeEntry> {
    let nodes: Vec<ProcessId> = members.map(|i| f.pid(i)).collect();
    entries(
        f.lst(
            0,
            ConsoleRequest::AddGroup {
                key: KEY,
                name: name.into(),
                nodes,
            },
        ),
        "add_group",
    )
}

fn add_test(f: &mut Fabric, loop_count: i32, test: TestType) {
    let added = entries(
        f.lst(
            0,
            ConsoleRequest::AddTest {
                key: KEY,
                spec: TestSpec {
                    batch: "b".into(),
                    loop_count,
                    concurrency: CONCURRENCY,
                    dist: 1,
                    span: 1,
                    from: "clients".into(),
                    to: "servers".into(),
                    test,
                },
            },
        ),
        "add_test",
    );
    assert!(added.iter().all(NodeEntry::ok), "add_test: {added:?}");
}

/// Clients of the batch still running a test, per the console's query
/// (a query lost on the way counts as still running).
fn active(f: &mut Fabric) -> u32 {
    let q = entries(
        f.lst(
            0,
            ConsoleRequest::Query {
                key: KEY,
                batch: "b".into(),
                test: 0,
                server: false,
                timeout: 5,
            },
        ),
        "query",
    );
    q.iter()
        .map(|e| match (&e.reply, e.ok()) {
            (Some(Body::BatchReply { active, .. }), true) => (*active).min(1),
            _ => 1,
        })
        .sum()
}

fn run_session(seed: u64) -> Outcome {
    let mut f = Fabric::new(seed);
    f.set_default_link(LinkParams::new().latency(Duration::from_micros(50)));
    for i in 0..NODES {
        let a = [10, 1, (i / 250) as u8, (i % 250 + 1) as u8];
        f.add_node(NodeSpec::new().ni(NiSpec::tcp(a)));
        f.enable_selftest(i, Params::default());
    }
    f.lst(
        0,
        ConsoleRequest::NewSession {
            key: KEY,
            name: "sim64".into(),
            timeout: 0,
            force: false,
            features: 1,
        },
    )
    .expect("new_session");
    // The session is set up on a clean fabric; the batch runs with loss.
    let clients = group(&mut f, "clients", CLIENTS);
    let servers = group(&mut f, "servers", SERVERS);
    let active_clients = clients
        .iter()
        .filter(|e| e.state == NodeState::Active)
        .count();
    let active_servers = servers
        .iter()
        .filter(|e| e.state == NodeState::Active)
        .count();
    f.lst(
        0,
        ConsoleRequest::AddBatch {
            key: KEY,
            name: "b".into(),
        },
    )
    .expect("add_batch");
    add_test(&mut f, PING_LOOPS, TestType::Ping);
    add_test(
        &mut f,
        BRW_LOOPS,
        TestType::Brw {
            write: true,
            size: 64 << 10,
            check: brw_check::SIMPLE,
            offset: 0,
        },
    );
    f.set_default_link(
        LinkParams::new()
            .latency(Duration::from_micros(50))
            .loss(LOSS),
    );
    let start = f.now();
    let run = entries(
        f.lst(
            0,
            ConsoleRequest::Run {
                key: KEY,
                batch: "b".into(),
                timeout: 5,
            },
        ),
        "run",
    );
    assert!(
        run.iter().filter(|e| e.ok()).count() >= CLIENTS.len() / 2,
        "run: {run:?}"
    );
    // Poll the batch every 5 s of virtual time until no client runs it.
    let mut idle_at = None;
    for _ in 0..400 {
        f.run_for(Duration::from_secs(5));
        if active(&mut f) == 0 {
            idle_at = Some(f.now());
            break;
        }
    }
    let idle_at = idle_at.expect("the batch ends within 2000 s of virtual time");
    // Per node counters, then the console's view of them (lst stat).
    let rpc: Vec<SrpcCounters> = (0..NODES)
        .map(|i| f.inspect_selftest(i, |s| s.rpc_counters()))
        .collect();
    let now = f.now();
    let fw: Vec<SfwCounters> = (0..NODES)
        .map(|i| f.inspect_selftest(i, |s| s.fw_counters(now)))
        .collect();
    let stat = entries(
        f.lst(
            0,
            ConsoleRequest::Stat {
                key: KEY,
                targets: Targets::Group("servers".into()),
                timeout: 5,
            },
        ),
        "stat",
    );
    assert_eq!(stat.len(), SERVERS.len());
    f.set_default_link(LinkParams::new().latency(Duration::from_micros(50)));
    f.lst(0, ConsoleRequest::EndSession { key: KEY })
        .expect("end_session");
    let links = f.total_link_stats();
    let trace = f.trace();
    Outcome {
        dropped: links.lost,
        sent: links.sent,
        rpc,
        fw,
        active_clients,
        active_servers,
        batch_ms: idle_at.since(start).as_millis() as u64,
        trace_digest: fnv1a(&trace),
        trace_lines: trace.len(),
    }
}

#[test]
fn lst_session_on_64_nodes_with_loss_replays_from_its_seed() {
    let seed = seed_from_env(0x5e1f_7e57);
    let a = run_session(seed);
    let b = run_session(seed);
    assert_eq!(a, b, "two runs of seed {seed} differ");
    let sum = |f: &dyn Fn(&SrpcCounters) -> u64| a.rpc.iter().map(f).sum::<u64>();
    eprintln!(
        "seed {seed}: {} messages, {} lost; RPCs sent {} received {} expired {} dropped {}; \
         bulk {} B; test errors {}; batch {} ms of virtual time; trace {} lines",
        a.sent,
        a.dropped,
        sum(&|c| u64::from(c.rpcs_sent)),
        sum(&|c| u64::from(c.rpcs_rcvd)),
        sum(&|c| u64::from(c.rpcs_expired)),
        sum(&|c| u64::from(c.rpcs_dropped)),
        sum(&|c| c.bulk_get + c.bulk_put),
        a.fw.iter()
            .map(|c| u64::from(c.ping_errors) + u64::from(c.brw_errors))
            .sum::<u64>(),
        a.batch_ms,
        a.trace_lines
    );

    // Plausible counts. The whole session was set up before the loss.
    assert_eq!(a.active_clients, CLIENTS.len());
    assert_eq!(a.active_servers, SERVERS.len());
    // The links lost about LOSS of what they carried.
    assert!(a.sent > 1000, "{a:?}");
    let rate = a.dropped as f64 / a.sent as f64;
    assert!(
        a.dropped > 0 && rate < 4.0 * LOSS,
        "dropped {} of {}",
        a.dropped,
        a.sent
    );
    // Each client runs both tests, each of its CONCURRENCY units for the
    // loop count (a unit that fails stops early): at most that many test
    // RPCs, and most of them; the servers received about as many.
    let sent: u64 = CLIENTS.map(|i| u64::from(a.rpc[i].rpcs_sent)).sum();
    let rcvd: u64 = SERVERS.map(|i| u64::from(a.rpc[i].rpcs_rcvd)).sum();
    let min_test_rpcs = (CLIENTS.len() as u64) * (PING_LOOPS + BRW_LOOPS) as u64;
    let max_test_rpcs = min_test_rpcs * u64::from(CONCURRENCY);
    assert!(
        (min_test_rpcs..=max_test_rpcs).contains(&sent),
        "clients sent {sent} RPCs, want {min_test_rpcs}..={max_test_rpcs}"
    );
    assert!(
        rcvd <= sent + SERVERS.len() as u64 * 8,
        "servers received {rcvd} of {sent}"
    );
    assert!(rcvd * 10 >= sent * 8, "servers received {rcvd} of {sent}");
    // Lost messages show as failed or expired RPCs and test errors, far
    // fewer than the RPCs sent.
    let errors: u64 =
        a.fw.iter()
            .map(|c| u64::from(c.ping_errors) + u64::from(c.brw_errors))
            .sum();
    let expired: u64 = a.rpc.iter().map(|c| u64::from(c.rpcs_expired)).sum();
    assert!(errors + expired > 0, "loss left no trace: {a:?}");
    assert!(errors < sent / 4, "{errors} test errors in {sent} RPCs");
    // Bulk data moved: 64 KiB per brw write that completed.
    let bulk: u64 = SERVERS.map(|i| a.rpc[i].bulk_get + a.rpc[i].bulk_put).sum();
    assert!(bulk >= (64 << 10) * CLIENTS.len() as u64, "bulk {bulk}");
    assert!(a.batch_ms > 0);
}
