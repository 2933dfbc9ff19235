//! LNet selftest between engines on the in-memory pump: console sessions,
//! groups, tests, run/stop/query/stat, and the BRW/PING data paths
//! (selftest.md §2–§5, wire.md §8).

#[path = "../../lnet-core/tests/pump/mod.rs"]
mod pump;

use lnet_core::lnd_api::{IoBuf, Nid, Payload};
use lnet_core::{
    AckReq, Duration, EventKind, InsPos, MdOptions, MdSpec, ProcessId, Threshold, Unlink,
};
use lnet_selftest::wire::{
    self, brw_check, service, Body, ByteOrder, SrpcMsg, LST_PING_TEST_MAGIC, SRPC_MSG_SIZE,
};
use lnet_selftest::{
    errno, ConsoleError, ConsoleReply, ConsoleRequest, NodeEntry, NodeState, Params, Selftest,
    Targets, TestSpec, TestType, UpdateAction,
};
use pump::*;

const KEY: u32 = 4242;

struct Bed {
    f: Fabric,
    /// Non-selftest MD events seen, per node.
    other: Vec<Vec<lnet_core::MdEvent>>,
}

impl Bed {
    fn new(n: usize) -> Bed {
        Bed::with_params(n, Params::default())
    }

    fn with_params(n: usize, p: Params) -> Bed {
        let mut f = Fabric::new(n);
        for i in 0..n {
            f.enable_selftest(i, p);
        }
        Bed {
            f,
            other: vec![Vec::new(); n],
        }
    }

    /// Selftest of node `i`.
    fn st(&self, i: usize) -> &Selftest {
        self.f.nodes[i].stack.selftest().expect("selftest enabled")
    }

    /// Runs engines and selftest until nothing moves (the pump drives each
    /// node's stack); keeps the MD events that were not selftest's.
    fn run(&mut self) {
        self.f.run();
        for i in 0..self.other.len() {
            let evs = self.f.md_events(i);
            self.other[i].extend(evs);
        }
    }

    /// Moves time by `d` in 1 s steps, running every timer due.
    fn advance(&mut self, d: Duration) {
        let end = self.f.now.saturating_add(d);
        while self.f.now < end {
            self.f
                .advance(Duration::from_secs(1).min(end.since(self.f.now)));
            self.run();
        }
    }

    /// A console command on node `i`, waiting (in simulated time) for it.
    fn lst(&mut self, i: usize, req: ConsoleRequest) -> Result<ConsoleReply, ConsoleError> {
        let now = self.f.now;
        let n = &mut self.f.nodes[i];
        let id = n.stack.console(&mut n.lnet, now, req);
        self.run();
        // add_test is two transactions of at most 30 s each.
        for _ in 0..70 {
            let done = &mut self.f.nodes[i].console_done;
            if let Some(k) = done.iter().position(|(t, _)| *t == id) {
                return done.remove(k).1;
            }
            self.advance(Duration::from_secs(1));
        }
        panic!("console command never finished");
    }

    fn nodes(&mut self, i: usize, req: ConsoleRequest) -> Vec<NodeEntry> {
        match self.lst(i, req) {
            Ok(ConsoleReply::Nodes(n)) => n,
            other => panic!("expected node entries, got {other:?}"),
        }
    }

    /// `add_test` of `spec` from console `i`.
    fn add_test(&mut self, i: usize, spec: TestSpec) -> Vec<NodeEntry> {
        self.nodes(i, ConsoleRequest::AddTest { key: KEY, spec })
    }

    /// `run BATCH` from console `i`.
    fn run_batch(&mut self, i: usize, batch: &str) -> Vec<NodeEntry> {
        self.nodes(
            i,
            ConsoleRequest::Run {
                key: KEY,
                batch: batch.into(),
                timeout: 0,
            },
        )
    }

    fn session(&mut self, i: usize, name: &str, force: bool) {
        self.lst(
            i,
            ConsoleRequest::NewSession {
                key: KEY,
                name: name.into(),
                timeout: 0,
                force,
                features: 1,
            },
        )
        .expect("new_session");
    }

    fn group(&mut self, i: usize, name: &str, members: &[usize]) -> Vec<NodeEntry> {
        self.nodes(
            i,
            ConsoleRequest::AddGroup {
                key: KEY,
                name: name.into(),
                nodes: members.iter().map(|m| pid(*m)).collect(),
            },
        )
    }

    fn stat(&mut self, i: usize, group: &str) -> Vec<NodeEntry> {
        self.nodes(
            i,
            ConsoleRequest::Stat {
                key: KEY,
                targets: Targets::Group(group.into()),
                timeout: 5,
            },
        )
    }
}

fn spec(test: TestType, loop_count: i32, concurrency: u32) -> TestSpec {
    TestSpec {
        batch: "batch".into(),
        loop_count,
        concurrency,
        dist: 1,
        span: 1,
        from: "c".into(),
        to: "s".into(),
        test,
    }
}

fn brw(write: bool, size: u32, check: u32) -> TestType {
    TestType::Brw {
        write,
        size,
        check,
        offset: 0,
    }
}

/// Console on node 0, clients = node 1, servers = node 2; runs `t` and
/// returns the stat entries of clients and servers.
fn run_test(b: &mut Bed, t: TestType, loops: i32, concur: u32) -> (NodeEntry, NodeEntry) {
    b.session(0, "rw_test", false);
    let c = b.group(0, "c", &[1]);
    assert!(
        c.iter().all(|e| e.ok() && e.state == NodeState::Active),
        "{c:?}"
    );
    let s = b.group(0, "s", &[2]);
    assert!(s.iter().all(NodeEntry::ok), "{s:?}");
    let added = b.add_test(0, spec(t, loops, concur));
    assert_eq!(added.len(), 2, "one server and one client TEST RPC");
    assert!(added.iter().all(NodeEntry::ok), "{added:?}");
    let run = b.run_batch(0, "batch");
    assert!(run.iter().all(NodeEntry::ok), "{run:?}");
    let q = b.nodes(
        0,
        ConsoleRequest::Query {
            key: KEY,
            batch: "batch".into(),
            test: 0,
            server: false,
            timeout: 5,
        },
    );
    assert!(
        matches!(q[0].reply, Some(Body::BatchReply { active: 0, .. })),
        "finite loops are done: {q:?}"
    );
    let cs = b.stat(0, "c").remove(0);
    let ss = b.stat(0, "s").remove(0);
    (cs, ss)
}

#[test]
fn brw_write_and_read_with_full_check() {
    for (write, size) in [
        (true, 4096),
        (false, 4096),
        (true, 1 << 20),
        (false, 1 << 20),
    ] {
        let mut b = Bed::new(3);
        let (c, s) = run_test(&mut b, brw(write, size, brw_check::FULL), 5, 2);
        let (cfw, crpc, clnet) = c.stat().expect("client stats");
        let (_, srpc, slnet) = s.stat().expect("server stats");
        assert_eq!(cfw.brw_errors, 0, "write={write} size={size}");
        assert_eq!(crpc.rpcs_sent, 2 * 5, "2 units x 5 loops: {crpc:?}");
        let moved = 10 * u64::from(size);
        if write {
            assert_eq!(srpc.bulk_get, moved);
            assert!(slnet.recv_length >= moved);
        } else {
            assert_eq!(srpc.bulk_put, moved);
            assert!(clnet.recv_length >= moved);
        }
        // One server buffer per concurrent RPC at most, reused.
        assert!(b.st(2).bulk_buffers_allocated() <= 2);
        assert!(b.st(2).bulk_buffers_allocated() >= 1);
    }
}

#[test]
fn ping_test_and_counters() {
    let mut b = Bed::new(3);
    let (c, s) = run_test(&mut b, TestType::Ping, 7, 3);
    let (cfw, _, _) = c.stat().expect("client");
    let (_, srpc, _) = s.stat().expect("server");
    assert_eq!(cfw.ping_errors, 0);
    assert!(
        srpc.rpcs_rcvd >= 21,
        "21 pings reached the server: {srpc:?}"
    );
    assert_eq!(srpc.rpcs_dropped, 0);
}

/// Issue 17: a request's buffer is re-posted after its reply is on its way
/// (off the requester's critical path), never forgotten: once the RPCs are
/// done every service has all the buffers it wants.
#[test]
fn request_buffers_are_reposted_after_the_reply() {
    let mut b = Bed::new(3);
    let (_, s) = run_test(&mut b, TestType::Ping, 40, 8);
    let (_, srpc, _) = s.stat().expect("server");
    assert!(srpc.rpcs_rcvd >= 320, "{srpc:?}");
    assert_eq!(srpc.rpcs_dropped, 0);
    for svc in [
        service::PING,
        service::BRW,
        service::TEST,
        service::QUERY_STAT,
    ] {
        let (posted, want) = b.st(2).request_buffers(svc);
        assert!(want > 0, "service {svc} wants buffers");
        assert_eq!(posted, want, "service {svc}: all re-posted");
    }
}

#[test]
fn injected_errors_are_counted_as_brw_errors() {
    let p = Params {
        brw_inject_errors: 2,
        ..Params::default()
    };
    let mut b = Bed::with_params(3, p);
    // Client 1 writes with a full check; its fills corrupt 2 RPCs, the
    // server answers EBADMSG and (stop_onerr) those units end.
    let (c, _) = run_test(&mut b, brw(true, 8192, brw_check::FULL), 4, 3);
    let (fw, _, _) = c.stat().expect("client");
    assert_eq!(fw.brw_errors, 2, "{fw:?}");
}

#[test]
fn silent_node_goes_down() {
    let mut b = Bed::new(3);
    b.session(0, "s", false);
    b.f.dead.insert(2);
    let e = b.group(0, "g", &[1, 2]);
    let by = |i: usize| e.iter().find(|x| x.id == pid(i)).expect("entry").clone();
    assert_eq!(by(1).state, NodeState::Active);
    assert_eq!(by(2).state, NodeState::Down);
    assert_eq!(by(2).rpc_errno, -110, "timed out");
    let Ok(ConsoleReply::Groups(g)) = b.lst(
        0,
        ConsoleRequest::ListGroup {
            key: KEY,
            name: Some("g".into()),
        },
    ) else {
        panic!("list_group");
    };
    assert_eq!(
        g[0].nodes,
        vec![(pid(1), NodeState::Active), (pid(2), NodeState::Down)]
    );
    let stats = b.stat(0, "g");
    assert!(stats.iter().any(|e| e.id == pid(2) && !e.ok()));
    // Clean the down node away.
    b.lst(
        0,
        ConsoleRequest::UpdateGroup {
            key: KEY,
            name: "g".into(),
            action: UpdateAction::Clean(NodeState::Down.bit()),
        },
    )
    .expect("clean");
    let Ok(ConsoleReply::Groups(g)) = b.lst(
        0,
        ConsoleRequest::ListGroup {
            key: KEY,
            name: None,
        },
    ) else {
        panic!("list_group");
    };
    assert_eq!(g[0].nodes, vec![(pid(1), NodeState::Active)]);
    // Removing node 1 ends its session there.
    let r = b.nodes(
        0,
        ConsoleRequest::UpdateGroup {
            key: KEY,
            name: "g".into(),
            action: UpdateAction::Remove(vec![pid(1)]),
        },
    );
    assert_eq!(r.len(), 1);
    assert!(r[0].ok(), "{r:?}");
    assert!(b.st(1).node_session().is_none());
    let Ok(ConsoleReply::Session(info)) = b.lst(0, ConsoleRequest::ShowSession) else {
        panic!("show_session");
    };
    assert_eq!(info.nodes, 0);
}

#[test]
fn busy_node_needs_force() {
    let mut b = Bed::new(3);
    b.session(0, "first", false);
    b.group(0, "g", &[2]);
    b.session(1, "second", false);
    let e = b.group(1, "g", &[2]);
    assert_eq!(e[0].state, NodeState::Busy);
    assert_eq!(e[0].fw_errno, errno::EBUSY);
    let first = b.st(2).node_session().expect("session").0;
    assert_eq!(e[0].sid, first, "the reply names the other session");
    // A forced session takes the node over.
    b.session(1, "third", true);
    let e = b.group(1, "g", &[2]);
    assert_eq!(e[0].state, NodeState::Active, "{e:?}");
    assert_eq!(b.st(2).node_session().expect("session").1, "third");
    // The first console now sees the node busy.
    let p = b.nodes(
        0,
        ConsoleRequest::Ping {
            key: KEY,
            targets: Targets::Group("g".into()),
            timeout: 0,
        },
    );
    assert_eq!(p[0].state, NodeState::Busy);
}

#[test]
fn key_mismatch_and_missing_session() {
    let mut b = Bed::new(2);
    let e = b
        .lst(0, ConsoleRequest::EndSession { key: KEY })
        .expect_err("no session");
    assert_eq!(
        (e.errno, e.message.as_str()),
        (errno::ESRCH, "No session exists")
    );
    b.session(0, "s", false);
    let e = b
        .lst(
            0,
            ConsoleRequest::AddBatch {
                key: KEY + 1,
                name: "b".into(),
            },
        )
        .expect_err("wrong key");
    assert_eq!(e.errno, errno::EACCES);
    assert_eq!(e.message, "Unmatched session key or not root");
    let e = b
        .lst(
            0,
            ConsoleRequest::NewSession {
                key: KEY,
                name: "again".into(),
                timeout: 0,
                force: false,
                features: 1,
            },
        )
        .expect_err("exists");
    assert_eq!(e.errno, errno::EEXIST);
    b.lst(
        0,
        ConsoleRequest::AddBatch {
            key: KEY,
            name: "b".into(),
        },
    )
    .expect("add_batch");
    let e = b
        .lst(
            0,
            ConsoleRequest::AddBatch {
                key: KEY,
                name: "b".into(),
            },
        )
        .expect_err("dup");
    assert_eq!(e.errno, errno::EEXIST);
    let e = b
        .lst(
            0,
            ConsoleRequest::DelGroup {
                key: KEY,
                name: "nope".into(),
            },
        )
        .expect_err("no group");
    assert_eq!(e.errno, errno::ENOENT);
    assert_eq!(e.message, "Can't find nope in current session");
    let Ok(ConsoleReply::Session(info)) = b.lst(0, ConsoleRequest::ShowSession) else {
        panic!("show_session");
    };
    assert_eq!(info.name, "s");
    assert_eq!(info.key, KEY);
    assert_eq!(info.sid.console_nid(), nid(0));
}

#[test]
fn end_session_removes_nodes_sessions() {
    let mut b = Bed::new(3);
    b.session(0, "s", false);
    b.group(0, "a", &[1, 2]);
    b.group(0, "b", &[2]);
    assert!(b.st(1).node_session().is_some());
    // Deleting "b" keeps node 2 enrolled (it is also in "a").
    let d = b.nodes(
        0,
        ConsoleRequest::DelGroup {
            key: KEY,
            name: "b".into(),
        },
    );
    assert!(d.is_empty(), "no RMSN for nodes still in a group: {d:?}");
    let e = b.nodes(0, ConsoleRequest::EndSession { key: KEY });
    assert_eq!(e.len(), 2);
    assert!(e.iter().all(NodeEntry::ok), "{e:?}");
    assert!(b.st(1).node_session().is_none());
    assert!(b.st(2).node_session().is_none());
    assert!(b.lst(0, ConsoleRequest::ShowSession).is_err());
}

#[test]
fn node_session_expires_without_keepalive_and_pinger_keeps_it() {
    let p = Params {
        session_timeout: 20,
        ..Params::default()
    };
    let mut b = Bed::with_params(2, p);
    b.session(0, "s", false);
    b.group(0, "g", &[1]);
    // The console pings every 8 s once 10 s (half of 20) passed: alive.
    b.advance(Duration::from_secs(60));
    assert!(b.st(1).node_session().is_some(), "kept alive by the pinger");
    // A node whose console went away expires.
    b.f.frozen.insert(0);
    b.advance(Duration::from_secs(25));
    assert!(b.st(1).node_session().is_none(), "expired");
}

#[test]
fn idle_console_ends_its_session() {
    let mut b = Bed::new(2);
    b.lst(
        0,
        ConsoleRequest::NewSession {
            key: KEY,
            name: "short".into(),
            timeout: 10,
            force: false,
            features: 1,
        },
    )
    .expect("new");
    b.group(0, "g", &[1]);
    b.advance(Duration::from_secs(20));
    assert!(b.lst(0, ConsoleRequest::ShowSession).is_err());
    // As upstream (the next command ends the expired session, then finds
    // none): ESRCH, here saying why.
    let e = b
        .lst(0, ConsoleRequest::EndSession { key: KEY })
        .expect_err("expired");
    assert_eq!(e.errno, errno::ESRCH);
    assert_eq!(
        e.message,
        "No session exists (session short was ended by the console after 10 s without an lst \
         command, its --timeout: make a new one, and keep it busy with lst stat or give it a \
         longer --timeout)"
    );
    let e = b
        .lst(0, ConsoleRequest::EndSession { key: KEY + 1 })
        .expect_err("other key");
    assert_eq!(
        (e.errno, e.message.as_str()),
        (errno::ESRCH, "No session exists")
    );
    assert!(b.st(1).node_session().is_none(), "RMSN sent on expiry");
    // A new session clears it.
    b.session(0, "again", false);
    b.lst(0, ConsoleRequest::EndSession { key: KEY })
        .expect("ended");
    let e = b
        .lst(0, ConsoleRequest::EndSession { key: KEY })
        .expect_err("none");
    assert_eq!(e.message, "No session exists");
}

/// What the 30-minute soak ran into: a batch left running with no `lst`
/// command for longer than the console's `--timeout`. As upstream, the
/// console ends the session on its nodes (their batches stop) and the
/// next command says there is no session, and why.
#[test]
fn an_idle_console_ends_its_session_under_a_running_batch() {
    // Test RPCs wait for their reply for ever (rpc_timeout 0).
    let p = Params {
        rpc_timeout: 0,
        ..Params::default()
    };
    let mut b = Bed::with_params(3, p);
    b.lst(
        0,
        ConsoleRequest::NewSession {
            key: KEY,
            name: "soak".into(),
            timeout: 300,
            force: false,
            features: 1,
        },
    )
    .expect("new");
    b.group(0, "c", &[1]);
    b.group(0, "s", &[2]);
    let added = b.add_test(0, spec(TestType::Ping, -1, 2));
    assert!(added.iter().all(NodeEntry::ok));
    // Node 2 answers nothing from now on, so the forever units stay busy
    // (waiting for their replies) without the simulated fabric spinning.
    b.f.discover(1, 2);
    b.f.dead.insert(2);
    b.run_batch(0, "batch");
    assert!(b.st(1).node_session().is_some());
    b.advance(Duration::from_secs(290));
    assert!(b.st(1).node_session().is_some(), "not idle for 300 s yet");
    assert_eq!(b.st(1).fw_counters(b.f.now).active_batches, 1, "running");
    b.advance(Duration::from_secs(20));
    assert!(
        b.st(1).node_session().is_none(),
        "the console ended the session on node 1"
    );
    // Its units end after their RPC (a stop that is not forced): the
    // session lingers as a zombie meanwhile.
    assert_eq!(b.st(1).fw_counters(b.f.now).zombie_sessions, 1);
    let e = b
        .lst(
            0,
            ConsoleRequest::Query {
                key: KEY,
                batch: "batch".into(),
                test: 0,
                server: false,
                timeout: 5,
            },
        )
        .expect_err("no session");
    assert_eq!(e.errno, errno::ESRCH);
    assert!(
        e.message
            .starts_with("No session exists (session soak was ended by the console after 300 s"),
        "{}",
        e.message
    );
}

#[test]
fn any_command_keeps_the_console_session_alive() {
    let mut b = Bed::new(2);
    b.lst(
        0,
        ConsoleRequest::NewSession {
            key: KEY,
            name: "kept".into(),
            timeout: 20,
            force: false,
            features: 1,
        },
    )
    .expect("new");
    b.group(0, "g", &[1]);
    // Upstream stamps every ioctl: show_session, or a command with another
    // key, counts as activity as much as stat does.
    for i in 0..6 {
        b.advance(Duration::from_secs(15));
        if i % 2 == 0 {
            b.lst(0, ConsoleRequest::ShowSession).expect("alive");
        } else {
            let e = b
                .lst(0, ConsoleRequest::EndSession { key: KEY + 1 })
                .expect_err("wrong key");
            assert_eq!(e.errno, errno::EACCES);
        }
    }
    assert!(b.st(1).node_session().is_some(), "90 s, never 20 s idle");
    b.advance(Duration::from_secs(40));
    assert!(
        b.lst(0, ConsoleRequest::ShowSession).is_err(),
        "idle: ended"
    );
}

#[test]
fn commands_during_end_session_get_eshutdown() {
    let mut b = Bed::new(3);
    b.session(0, "s", false);
    b.group(0, "g", &[1, 2]);
    // Node 2 does not answer: end_session waits for its RMSN (up to 30 s).
    b.f.dead.insert(2);
    let now = b.f.now;
    let n = &mut b.f.nodes[0];
    let end = n
        .stack
        .console(&mut n.lnet, now, ConsoleRequest::EndSession { key: KEY });
    b.run();
    let e = b
        .lst(
            0,
            ConsoleRequest::AddBatch {
                key: KEY,
                name: "late".into(),
            },
        )
        .expect_err("ending");
    assert_eq!(
        (e.errno, e.message.as_str()),
        (errno::ESHUTDOWN, "Session is shutting down")
    );
    b.advance(Duration::from_secs(31));
    let done = b.f.nodes[0]
        .console_done
        .iter()
        .position(|(t, _)| *t == end)
        .expect("end_session finished");
    let Ok(ConsoleReply::Nodes(entries)) = b.f.nodes[0].console_done.remove(done).1 else {
        panic!("end_session entries");
    };
    assert_eq!(entries.len(), 2);
    assert!(entries
        .iter()
        .any(|e| e.id == pid(2) && e.rpc_errno == -110));
    let e = b.lst(0, ConsoleRequest::ShowSession).expect_err("ended");
    assert_eq!(e.errno, errno::ESRCH);
}

/// Replaces node `i` by a fresh process with the same NID (killed and
/// started again): a new engine and a new selftest, which know nothing of
/// the old one's session, MDs or messages.
fn restart(b: &mut Bed, i: usize, seed: u64) {
    let now = b.f.now;
    let mut lnet = lnet_core::Lnet::new(lnet_core::Config::new(12345, 0x9000 + seed, seed), now);
    let ni = lnet
        .ni_add(now, TCP, &ni_info(nid(i), 256, 8))
        .expect("ni_add");
    b.f.nodes[i] = Node {
        lnet,
        stack: lnet_selftest::Stack::new(now, WALL),
        ni,
        nid: nid(i),
        nis: vec![(ni, nid(i))],
        events: Vec::new(),
        console_done: Vec::new(),
    };
    b.other[i].clear();
    b.f.enable_selftest(i, Params::default());
}

fn query(b: &mut Bed, batch: &str) -> Vec<NodeEntry> {
    b.nodes(
        0,
        ConsoleRequest::Query {
            key: KEY,
            batch: batch.into(),
            test: 0,
            server: false,
            timeout: 5,
        },
    )
}

fn active(e: &NodeEntry) -> u32 {
    match e.reply {
        Some(Body::BatchReply { active, .. }) => active,
        _ => panic!("not a batch reply: {e:?}"),
    }
}

/// The soak's sequence (bench/soak.sh, issue 11 item 10) in simulated time:
/// a forever brw and ping batch from node 1 to node 2, node 2 killed and
/// started again mid-batch, `stop --force`, `query`, `end_session`, the
/// session made again on the new node 2; then half an hour of running with
/// an `lst stat` a minute (as lnet-selftest.sh keeps it), and `stop`,
/// `query`, `end_session` answer at the end. Every test RPC of node 1 is
/// done, errored or aborted, none left in flight.
#[test]
fn a_test_node_killed_and_restarted_mid_batch() {
    let mut b = Bed::new(3);
    let console = |b: &mut Bed, name: &str| {
        b.session(0, name, false);
        assert!(b.group(0, "s", &[2]).iter().all(NodeEntry::ok));
        assert!(b.group(0, "c", &[1]).iter().all(NodeEntry::ok));
        b.lst(
            0,
            ConsoleRequest::AddBatch {
                key: KEY,
                name: "bulk".into(),
            },
        )
        .expect("add_batch");
    };
    let add = |b: &mut Bed, t: TestType, loops: i32, concur: u32| {
        let mut sp = spec(t, loops, concur);
        sp.batch = "bulk".into();
        let e = b.add_test(0, sp);
        assert!(e.iter().all(NodeEntry::ok), "{e:?}");
    };
    let run = |b: &mut Bed| {
        let e = b.run_batch(0, "bulk");
        assert!(e.iter().all(NodeEntry::ok), "{e:?}");
    };
    let stop = |b: &mut Bed, force: bool| {
        let e = b.nodes(
            0,
            ConsoleRequest::Stop {
                key: KEY,
                batch: "bulk".into(),
                force,
            },
        );
        assert!(e.iter().all(NodeEntry::ok), "{e:?}");
    };
    console(&mut b, "soak");
    add(&mut b, brw(true, 65536, brw_check::SIMPLE), -1, 4);
    add(&mut b, TestType::Ping, -1, 1);
    // Node 1 knows node 2 (discovered, as after the soak's first minutes);
    // then node 2 dies with the batch running: the requests units 1 sends
    // it from now on are lost (the old process took them, then was killed).
    b.f.discover(1, 2);
    b.f.dead.insert(2);
    run(&mut b);
    b.advance(Duration::from_secs(5));
    assert_eq!(active(&query(&mut b, "bulk")[0]), 2, "both tests active");
    let t = b.st(1).test_rpcs();
    assert_eq!(
        (t.started, t.in_flight()),
        (5, 5),
        "4 brw + 1 ping units: {t:?}"
    );
    // Started again: a new process with the same NID. The old one's
    // connections had taken the requests (their sends completed).
    b.f.dead.remove(&2);
    restart(&mut b, 2, 77);
    let now = b.f.now;
    for (i, tx, _) in std::mem::take(&mut b.f.lost) {
        b.f.nodes[i]
            .lnet
            .handle_done(now, tx.token, lnet_core::lnd_api::Completion::OK);
    }
    b.run();
    assert!(
        b.st(2).node_session().is_none(),
        "the new node 2 knows no session"
    );
    // No reply will come for those RPCs: a plain stop would wait for
    // rpc_timeout (64 s); --force aborts them at once.
    stop(&mut b, true);
    assert_eq!(active(&query(&mut b, "bulk")[0]), 0, "stopped at once");
    let t = b.st(1).test_rpcs();
    assert_eq!(t.aborted, 5, "{t:?}");
    assert_eq!(t.in_flight(), 0, "{t:?}");
    assert_eq!(b.st(1).rpcs_in_flight().0, 0, "no client RPC left");
    assert_eq!(
        b.f.nodes[1].lnet.stats().msgs_alloc,
        0,
        "no LNet message left"
    );
    let (fw, _, _) = b.stat(0, "c").remove(0).stat().expect("client stat");
    assert_eq!(
        (fw.brw_errors, fw.ping_errors),
        (0, 0),
        "aborts are not errors"
    );
    // end_session: node 1 ends its session; the new node 2 has none (ESRCH
    // from it), and the console's session is gone all the same.
    let e = b.nodes(0, ConsoleRequest::EndSession { key: KEY });
    assert_eq!(e.len(), 2, "{e:?}");
    let by = |i: usize| e.iter().find(|x| x.id == pid(i)).expect("entry").clone();
    assert!(by(1).ok(), "{e:?}");
    assert_eq!(by(2).fw_errno, errno::ESRCH, "{e:?}");
    assert!(b.st(1).node_session().is_none());
    assert_eq!(
        b.lst(0, ConsoleRequest::ShowSession)
            .expect_err("ended")
            .errno,
        errno::ESRCH
    );

    // The session made again, with the new node 2: finite loops so the
    // simulated fabric (which delivers at once) comes to rest.
    console(&mut b, "soak2");
    add(&mut b, brw(true, 65536, brw_check::SIMPLE), 200, 4);
    add(&mut b, TestType::Ping, 100, 1);
    run(&mut b);
    // Half an hour, with `lst stat` every minute: the console session
    // (timeout 300 s) stays, and so do the nodes' (pinged by the console).
    for _ in 0..30 {
        b.advance(Duration::from_secs(60));
        let st = b.stat(0, "s");
        assert!(st.iter().all(NodeEntry::ok), "{st:?}");
    }
    assert!(b.st(1).node_session().is_some());
    assert!(b.st(2).node_session().is_some());
    let (fw, _, _) = b.stat(0, "c").remove(0).stat().expect("client stat");
    assert_eq!((fw.brw_errors, fw.ping_errors), (0, 0));
    stop(&mut b, false);
    assert_eq!(active(&query(&mut b, "bulk")[0]), 0);
    let t = b.st(1).test_rpcs();
    assert_eq!(t.done, 4 * 200 + 100, "{t:?}");
    assert_eq!((t.started, t.errored, t.aborted), (5 + 900, 0, 5), "{t:?}");
    assert_eq!(t.in_flight(), 0);
    assert_eq!(b.st(1).rpcs_in_flight().0, 0, "no client RPC left");
    let e = b.nodes(0, ConsoleRequest::EndSession { key: KEY });
    assert!(e.iter().all(NodeEntry::ok), "{e:?}");
    assert!(b.st(2).node_session().is_none());
}

#[test]
fn stop_ends_a_forever_batch_and_distribution_spreads_clients() {
    let mut b = Bed::new(5);
    b.session(0, "s", false);
    b.group(0, "c", &[1, 2]);
    b.group(0, "s", &[3, 4]);
    let mut t = spec(brw(false, 4096, brw_check::SIMPLE), 3, 1);
    t.dist = 1;
    t.span = 1;
    let added = b.add_test(0, t);
    assert!(added.iter().all(NodeEntry::ok), "{added:?}");
    b.run_batch(0, "batch");
    // dist 1, span 1: client 0 -> server 0, client 1 -> server 1.
    let s = b.stat(0, "s");
    for e in &s {
        let (_, rpc, _) = e.stat().expect("stat");
        assert_eq!(rpc.bulk_put, 3 * 4096, "each server served one client");
    }
    let stop = b.nodes(
        0,
        ConsoleRequest::Stop {
            key: KEY,
            batch: "batch".into(),
            force: true,
        },
    );
    assert!(stop.iter().all(NodeEntry::ok));
    let Ok(ConsoleReply::Batches(l)) = b.lst(
        0,
        ConsoleRequest::ListBatch {
            key: KEY,
            name: None,
        },
    ) else {
        panic!("list_batch");
    };
    assert_eq!(l[0].name, "batch");
    assert_eq!(l[0].tests.len(), 1);
    assert_eq!(l[0].tests[0].idx, 1);
}

/// A byte-swapped (big-endian) PING request gets an answer, and a request
/// with a wrong magic none.
#[test]
fn swapped_ping_request_is_answered() {
    let mut b = Bed::new(2);
    let me = b.f.nodes[0]
        .lnet
        .me_attach(52, pid(1), 0x77, 0, Unlink::Unlink, InsPos::After)
        .expect("me");
    let reply = IoBuf::zeroed(SRPC_MSG_SIZE);
    b.f.nodes[0]
        .lnet
        .md_attach(
            me,
            MdSpec::new(
                Payload::single(reply.clone()),
                MdOptions::OP_PUT,
                Threshold::Count(1),
            ),
            Unlink::Unlink,
        )
        .expect("md");
    let send = |b: &mut Bed, magic: u32| {
        let req = SrpcMsg::new(
            1,
            Body::PingReq {
                rpyid: 0x77,
                magic,
                seq: 5,
                time_sec: 1,
                time_nsec: 2,
            },
        )
        .emit_in(ByteOrder::Big);
        let md = b.f.nodes[0]
            .lnet
            .md_bind(
                MdSpec::new(
                    Payload::single(IoBuf::from_vec(req.to_vec())),
                    MdOptions::NONE,
                    Threshold::Count(1),
                ),
                Unlink::Unlink,
            )
            .expect("bind");
        let now = b.f.now;
        b.f.nodes[0]
            .lnet
            .put(
                now,
                None,
                md,
                AckReq::NoAck,
                pid(1),
                50,
                u64::from(service::PING),
                0,
                0,
            )
            .expect("put");
        b.run();
    };
    send(&mut b, 0x1234);
    assert!(
        !b.other[0].iter().any(|e| e.kind == EventKind::Put),
        "bad magic: no reply"
    );
    send(&mut b, LST_PING_TEST_MAGIC);
    assert!(b.other[0].iter().any(|e| e.kind == EventKind::Put));
    let (m, order) = SrpcMsg::parse(&reply.to_vec().expect("free")).expect("reply");
    assert_eq!(order, ByteOrder::Little);
    assert_eq!(
        m.body,
        Body::PingReply {
            status: 0,
            magic: LST_PING_TEST_MAGIC,
            seq: 5
        }
    );
    assert_eq!(b.st(1).rpc_counters().rpcs_rcvd, 2);
    assert_eq!(b.st(1).rpc_counters().rpcs_dropped, 1);
    let _ = (wire::SRPC_MSG_MAGIC, Nid::ANY, ProcessId::ANY);
}

#[test]
fn test_rpcs_to_a_dead_server_expire() {
    let p = Params {
        rpc_timeout: 5,
        ..Params::default()
    };
    let mut b = Bed::with_params(3, p);
    b.session(0, "s", false);
    b.group(0, "c", &[1]);
    b.group(0, "s", &[2]);
    let added = b.add_test(0, spec(TestType::Ping, -1, 2));
    assert!(added.iter().all(NodeEntry::ok));
    b.f.dead.insert(2);
    b.run_batch(0, "batch");
    let q = b.nodes(
        0,
        ConsoleRequest::Query {
            key: KEY,
            batch: "batch".into(),
            test: 1,
            server: false,
            timeout: 5,
        },
    );
    assert!(
        matches!(q[0].reply, Some(Body::BatchReply { active: 2, .. })),
        "both units wait for their reply: {q:?}"
    );
    b.advance(Duration::from_secs(6));
    let c = b.stat(0, "c").remove(0);
    let (fw, rpc, _) = c.stat().expect("client");
    assert_eq!(rpc.rpcs_expired, 2, "{rpc:?}");
    assert_eq!(fw.ping_errors, 2, "stop_onerr: one error per unit");
    assert_eq!(fw.active_batches, 0);
}

#[test]
fn one_server_buffer_serves_many_units_in_turn() {
    let p = Params {
        brw_srv_workitems: 1,
        ..Params::default()
    };
    let mut b = Bed::with_params(3, p);
    let t = TestType::Brw {
        write: false,
        size: 12345,
        check: brw_check::SIMPLE,
        offset: 8,
    };
    let (c, s) = run_test(&mut b, t, 3, 4);
    assert_eq!(c.stat().expect("client").0.brw_errors, 0);
    assert_eq!(s.stat().expect("server").1.bulk_put, 12 * 12345);
    assert_eq!(b.st(2).bulk_buffers_allocated(), 1);
}

#[test]
fn brw_without_bulk_len_counts_in_pages() {
    let mut b = Bed::new(3);
    b.lst(
        0,
        ConsoleRequest::NewSession {
            key: KEY,
            name: "v0".into(),
            timeout: 0,
            force: false,
            features: 0,
        },
    )
    .expect("new_session");
    b.group(0, "c", &[1]);
    b.group(0, "s", &[2]);
    // 5000 bytes round up to two pages without BULK_LEN.
    let added = b.add_test(0, spec(brw(true, 5000, brw_check::FULL), 2, 1));
    assert!(added.iter().all(NodeEntry::ok), "{added:?}");
    b.run_batch(0, "batch");
    let s = b.stat(0, "s").remove(0);
    assert_eq!(s.stat().expect("server").1.bulk_get, 2 * 8192);
    let c = b.stat(0, "c").remove(0);
    assert_eq!(c.stat().expect("client").0.brw_errors, 0);
}

#[test]
fn taken_over_session_lingers_as_zombie_until_units_end() {
    let p = Params {
        rpc_timeout: 10,
        ..Params::default()
    };
    let mut b = Bed::with_params(4, p);
    b.session(0, "a", false);
    b.group(0, "c", &[1]);
    b.group(0, "s", &[2]);
    let added = b.add_test(0, spec(TestType::Ping, -1, 3));
    assert!(added.iter().all(NodeEntry::ok));
    // The server goes silent: the client's three units wait for replies.
    b.f.dead.insert(2);
    b.run_batch(0, "batch");
    // Another console takes node 1 over.
    b.session(3, "b", true);
    let e = b.group(3, "g", &[1]);
    assert_eq!(e[0].state, NodeState::Active, "{e:?}");
    let (fw, _, _) = b.stat(3, "g")[0].stat().expect("stat");
    assert_eq!(fw.zombie_sessions, 1, "{fw:?}");
    assert_eq!(fw.active_batches, 0, "the new session runs nothing");
    // The old units end when their RPCs expire; the zombie goes.
    b.advance(Duration::from_secs(11));
    let (fw, rpc, _) = b.stat(3, "g")[0].stat().expect("stat");
    assert_eq!(fw.zombie_sessions, 0, "{fw:?}");
    assert_eq!(rpc.rpcs_expired, 3);
    // The first console now finds node 1 busy.
    let q = b.nodes(
        0,
        ConsoleRequest::Query {
            key: KEY,
            batch: "batch".into(),
            test: 0,
            server: false,
            timeout: 5,
        },
    );
    assert_eq!(q[0].state, NodeState::Busy);
    assert_eq!(q[0].fw_errno, errno::ESRCH);
}

#[test]
fn console_node_can_be_a_client_and_a_server() {
    let mut b = Bed::new(2);
    b.session(0, "self", false);
    let c = b.group(0, "c", &[0]);
    assert_eq!(c[0].state, NodeState::Active, "MKSN to ourselves: {c:?}");
    b.group(0, "s", &[0, 1]);
    let mut t = spec(brw(false, 65536, brw_check::FULL), 4, 2);
    t.span = 2;
    let added = b.add_test(0, t);
    assert_eq!(added.len(), 3, "two servers, one client");
    assert!(added.iter().all(NodeEntry::ok), "{added:?}");
    b.run_batch(0, "batch");
    let s = b.stat(0, "s");
    for e in &s {
        let (_, rpc, _) = e.stat().expect("stat");
        assert_eq!(rpc.bulk_put, 2 * 4 * 65536, "{}: {rpc:?}", e.id);
    }
    assert_eq!(s[0].stat().expect("stat").0.brw_errors, 0);
}

/// Sends one raw request from node `from` to node `to` and returns the reply
/// (or `None` when none came).
fn raw_rpc(b: &mut Bed, from: usize, to: usize, svc: u32, msg: SrpcMsg) -> Option<SrpcMsg> {
    let bytes = msg.emit();
    raw_bytes(b, from, to, svc, bytes.to_vec())
}

fn raw_bytes(b: &mut Bed, from: usize, to: usize, svc: u32, bytes: Vec<u8>) -> Option<SrpcMsg> {
    let rpyid = 0x9000 + b.other[from].len() as u64 + u64::from(svc) * 0x100;
    let mut bytes = bytes;
    bytes[24..32].copy_from_slice(&rpyid.to_le_bytes());
    let me = b.f.nodes[from]
        .lnet
        .me_attach(52, pid(to), rpyid, 0, Unlink::Unlink, InsPos::After)
        .expect("me");
    let reply = IoBuf::zeroed(SRPC_MSG_SIZE);
    let rmd = b.f.nodes[from]
        .lnet
        .md_attach(
            me,
            MdSpec::new(
                Payload::single(reply.clone()),
                MdOptions::OP_PUT,
                Threshold::Count(1),
            ),
            Unlink::Unlink,
        )
        .expect("md");
    let md = b.f.nodes[from]
        .lnet
        .md_bind(
            MdSpec::new(
                Payload::single(IoBuf::from_vec(bytes)),
                MdOptions::NONE,
                Threshold::Count(1),
            ),
            Unlink::Unlink,
        )
        .expect("bind");
    let now = b.f.now;
    let portal = if svc < 10 { 51 } else { 50 };
    b.f.nodes[from]
        .lnet
        .put(
            now,
            None,
            md,
            AckReq::NoAck,
            pid(to),
            portal,
            u64::from(svc),
            0,
            0,
        )
        .expect("put");
    let before = b.other[from].len();
    b.run();
    let got = b.other[from][before..]
        .iter()
        .any(|e| e.kind == EventKind::Put && e.md == rmd);
    if !got {
        let _ = b.f.nodes[from].lnet.md_unlink(rmd);
        b.run();
        return None;
    }
    Some(
        SrpcMsg::parse(&reply.to_vec().expect("free"))
            .expect("reply")
            .0,
    )
}

#[test]
fn framework_validates_requests() {
    let mut b = Bed::new(2);
    let sid = wire::Sid {
        nid: nid(0).to_nid4().expect("nid4"),
        stamp: 42,
    };
    let status = |m: Option<SrpcMsg>| m.expect("a reply").body.status().expect("status");
    // RMSN and STAT without a session.
    let r = raw_rpc(
        &mut b,
        0,
        1,
        service::REMOVE_SESSION,
        SrpcMsg::new(1, Body::RmsnReq { rpyid: 0, sid }),
    );
    assert_eq!(status(r), errno::ESRCH as u32);
    let stat = |sid| {
        SrpcMsg::new(
            1,
            Body::StatReq {
                rpyid: 0,
                sid,
                stype: 0,
            },
        )
    };
    assert_eq!(
        status(raw_rpc(
            &mut b,
            0,
            1,
            service::QUERY_STAT,
            stat(wire::Sid::NONE)
        )),
        errno::EINVAL as u32
    );
    assert_eq!(
        status(raw_rpc(&mut b, 0, 1, service::QUERY_STAT, stat(sid))),
        errno::ESRCH as u32
    );
    // MKSN with an unknown feature bit, then a good one.
    let mksn = |feats| {
        SrpcMsg::new(
            feats,
            Body::MksnReq {
                rpyid: 0,
                sid,
                force: 0,
                name: "raw".into(),
            },
        )
    };
    let r = raw_rpc(&mut b, 0, 1, service::MAKE_SESSION, mksn(3)).expect("reply");
    assert_eq!(r.body.status(), Some(errno::EPROTO as u32));
    assert_eq!(r.ses_feats, 1, "reply carries the known features");
    assert_eq!(
        status(raw_rpc(&mut b, 0, 1, service::MAKE_SESSION, mksn(1))),
        0
    );
    // A framework request with other features than the session's.
    assert_eq!(
        status(raw_rpc(&mut b, 0, 1, service::QUERY_STAT, {
            let mut m = stat(sid);
            m.ses_feats = 0;
            m
        })),
        errno::EPROTO as u32
    );
    assert_eq!(
        status(raw_rpc(&mut b, 0, 1, service::QUERY_STAT, stat(sid))),
        0
    );
    // TEST validation.
    let test = |svc: u32, concur: u32, is_client: u8, ndest: u32| {
        SrpcMsg::new(
            1,
            Body::TestReq {
                rpyid: 0,
                bulkid: 0,
                sid,
                bid: 1,
                service: svc,
                loop_count: 1,
                concur,
                is_client,
                stop_onerr: 1,
                ndest,
                params: wire::TestParams::Ping { size: 0, flags: 0 },
            },
        )
    };
    assert_eq!(
        status(raw_rpc(
            &mut b,
            0,
            1,
            service::TEST,
            test(service::PING, 0, 0, 0)
        )),
        errno::EINVAL as u32
    );
    assert_eq!(
        status(raw_rpc(
            &mut b,
            0,
            1,
            service::TEST,
            test(service::PING, 2000, 0, 0)
        )),
        errno::EINVAL as u32
    );
    assert_eq!(
        status(raw_rpc(
            &mut b,
            0,
            1,
            service::TEST,
            test(service::PING, 1, 1, 0)
        )),
        errno::EINVAL as u32
    );
    assert_eq!(
        status(raw_rpc(
            &mut b,
            0,
            1,
            service::TEST,
            test(service::DEBUG, 1, 0, 0)
        )),
        errno::EINVAL as u32
    );
    assert_eq!(
        status(raw_rpc(&mut b, 0, 1, service::TEST, test(99, 1, 0, 0))),
        errno::ENOENT as u32
    );
    assert_eq!(
        status(raw_rpc(
            &mut b,
            0,
            1,
            service::TEST,
            test(service::PING, 1, 0, 0)
        )),
        0
    );
    // BATCH on an unknown batch id.
    let batch = SrpcMsg::new(
        1,
        Body::BatchReq {
            rpyid: 0,
            sid,
            bid: 7,
            opc: 3,
            testidx: 0,
            arg: 0,
        },
    );
    assert_eq!(
        status(raw_rpc(&mut b, 0, 1, service::BATCH, batch)),
        errno::ENOENT as u32
    );
    // BRW: bad length, and a wrong message version.
    let brw = |len| {
        SrpcMsg::new(
            1,
            Body::BrwReq {
                rpyid: 0,
                bulkid: 1,
                rw: 1,
                len,
                flags: 1,
            },
        )
    };
    assert_eq!(
        status(raw_rpc(&mut b, 0, 1, service::BRW, brw(0))),
        errno::EINVAL as u32
    );
    assert_eq!(
        status(raw_rpc(&mut b, 0, 1, service::BRW, brw((1 << 20) + 1))),
        errno::EINVAL as u32
    );
    let mut v2 = brw(4096);
    v2.version = 2;
    assert_eq!(
        status(raw_rpc(&mut b, 0, 1, service::BRW, v2)),
        errno::EPROTO as u32
    );
    // Without BULK_LEN a length must be whole pages.
    let mut v0 = brw(100);
    v0.ses_feats = 0;
    assert_eq!(
        status(raw_rpc(&mut b, 0, 1, service::BRW, v0)),
        errno::EINVAL as u32
    );
    // Requests of the wrong type for the service, or short, are dropped.
    assert!(raw_rpc(&mut b, 0, 1, service::PING, brw(4096)).is_none());
    let mut short = brw(4096).emit().to_vec();
    short.truncate(100);
    short.resize(100, 0);
    let dropped_before = b.st(1).rpc_counters().rpcs_rcvd;
    let _ = raw_bytes(&mut b, 0, 1, service::BRW, {
        let mut v = short;
        v.resize(120, 0);
        v
    });
    assert_eq!(b.st(1).rpc_counters().rpcs_rcvd, dropped_before + 1);
}

mod random_ops {
    use super::*;
    use proptest::prelude::*;

    #[derive(Clone, Debug)]
    enum Op {
        Lst(usize, ConsoleRequest),
        Advance(u64),
        Kill(usize),
        Revive(usize),
    }

    fn group_name() -> impl Strategy<Value = String> {
        prop_oneof![Just("a".to_string()), Just("b".to_string())]
    }

    fn key() -> impl Strategy<Value = u32> {
        prop_oneof![9 => Just(KEY), 1 => Just(KEY + 1)]
    }

    fn request() -> impl Strategy<Value = ConsoleRequest> {
        let nodes = proptest::collection::vec(0usize..3, 1..3)
            .prop_map(|v| v.into_iter().map(pid).collect::<Vec<_>>());
        prop_oneof![
            (key(), any::<bool>()).prop_map(|(key, force)| ConsoleRequest::NewSession {
                key,
                name: "p".into(),
                timeout: 0,
                force,
                features: 1,
            }),
            key().prop_map(|key| ConsoleRequest::EndSession { key }),
            (key(), group_name(), nodes.clone())
                .prop_map(|(key, name, nodes)| ConsoleRequest::AddGroup { key, name, nodes }),
            (key(), group_name()).prop_map(|(key, name)| ConsoleRequest::DelGroup { key, name }),
            (key(), group_name(), 0u8..3, nodes.clone()).prop_map(|(key, name, a, n)| {
                ConsoleRequest::UpdateGroup {
                    key,
                    name,
                    action: match a {
                        0 => UpdateAction::Refresh,
                        1 => UpdateAction::Clean(NodeState::Down.bit()),
                        _ => UpdateAction::Remove(n),
                    },
                }
            }),
            (key(), group_name()).prop_map(|(key, g)| ConsoleRequest::Ping {
                key,
                targets: Targets::Group(g),
                timeout: 3,
            }),
            (
                key(),
                group_name(),
                group_name(),
                1i32..3,
                1u32..3,
                any::<bool>()
            )
                .prop_map(|(key, from, to, loop_count, concurrency, ping)| {
                    ConsoleRequest::AddTest {
                        key,
                        spec: TestSpec {
                            batch: "batch".into(),
                            loop_count,
                            concurrency,
                            dist: 1,
                            span: 1,
                            from,
                            to,
                            test: if ping {
                                TestType::Ping
                            } else {
                                brw(loop_count == 1, 4096, brw_check::FULL)
                            },
                        },
                    }
                }),
            key().prop_map(|key| ConsoleRequest::Run {
                key,
                batch: "batch".into(),
                timeout: 0,
            }),
            (key(), any::<bool>()).prop_map(|(key, force)| ConsoleRequest::Stop {
                key,
                batch: "batch".into(),
                force,
            }),
            key().prop_map(|key| ConsoleRequest::Query {
                key,
                batch: "batch".into(),
                test: 0,
                server: false,
                timeout: 3,
            }),
            (key(), group_name()).prop_map(|(key, g)| ConsoleRequest::Stat {
                key,
                targets: Targets::Group(g),
                timeout: 3,
            }),
            key().prop_map(|key| ConsoleRequest::ListGroup { key, name: None }),
            key().prop_map(|key| ConsoleRequest::ListBatch { key, name: None }),
            Just(ConsoleRequest::ShowSession),
        ]
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            8 => (0usize..2, request()).prop_map(|(i, r)| Op::Lst(i, r)),
            1 => (0u64..60).prop_map(Op::Advance),
            1 => (1usize..3).prop_map(Op::Kill),
            1 => (1usize..3).prop_map(Op::Revive),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]
        /// Any sequence of commands from two consoles, with time passing and
        /// nodes going silent, finishes every command without a panic, and
        /// once everything is reachable again a ping gives each console a
        /// view of its nodes that matches the nodes.
        #[test]
        fn random_console_sequences_finish(ops in proptest::collection::vec(op(), 1..14)) {
            let p = Params { rpc_timeout: 5, session_timeout: 40, ..Params::default() };
            let mut b = Bed::with_params(3, p);
            b.session(0, "zero", false);
            b.group(0, "a", &[1, 2]);
            b.session(1, "one", false);
            b.group(1, "a", &[0, 2]);
            for op in ops {
                match op {
                    Op::Lst(i, r) => {
                        let _ = b.lst(i, r);
                    }
                    Op::Advance(s) => b.advance(Duration::from_secs(s)),
                    Op::Kill(n) => {
                        b.f.dead.insert(n);
                    }
                    Op::Revive(n) => {
                        b.f.dead.remove(&n);
                        b.f.fail_lost();
                        b.run();
                    }
                }
            }
            // Revive everyone, let RPCs drain, and check the views agree.
            b.f.dead.clear();
            b.f.fail_lost();
            b.advance(Duration::from_secs(70));
            for c in 0..2 {
                let Ok(ConsoleReply::Session(info)) = b.lst(c, ConsoleRequest::ShowSession) else {
                    continue;
                };
                // A ping refreshes the console's view from the nodes' replies.
                let Ok(ConsoleReply::Nodes(entries)) = b.lst(c, ConsoleRequest::Ping {
                    key: KEY,
                    targets: Targets::Session,
                    timeout: 3,
                }) else {
                    continue;
                };
                for e in entries {
                    let n = (0..3).find(|i| pid(*i) == e.id).expect("known node");
                    let on_node = b.st(n).node_session().map(|s| s.0);
                    match e.state {
                        NodeState::Active => prop_assert_eq!(on_node, Some(info.sid)),
                        NodeState::Busy => {
                            prop_assert!(on_node.is_some() && on_node != Some(info.sid))
                        }
                        NodeState::Unknown => prop_assert_eq!(on_node, None),
                        NodeState::Down => prop_assert!(false, "{} down with every node up", e.id),
                    }
                }
            }
        }
    }
}

mod random_requests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
        /// Random requests (right magic, right or random type, random body,
        /// either byte order) to every service: the node never panics,
        /// counts each, and every server RPC ends.
        #[test]
        fn random_requests_never_wedge_a_node(
            reqs in proptest::collection::vec(
                (prop::sample::select(vec![0u32, 1, 2, 3, 4, 5, 11, 12]),
                 any::<bool>(), any::<bool>(),
                 proptest::collection::vec(any::<u8>(), 136..=136)),
                1..12),
        ) {
            let mut b = Bed::new(2);
            let mut sent = 0;
            for (svc, right_type, swap, body) in reqs {
                let mut m = vec![0u8; SRPC_MSG_SIZE];
                let ty = if right_type {
                    wire::service_request_type(svc).unwrap_or(0)
                } else {
                    u32::from(body[0]) % 20
                };
                let w32 = |v: u32| if swap { v.to_be_bytes() } else { v.to_le_bytes() };
                m[0..4].copy_from_slice(&w32(wire::SRPC_MSG_MAGIC));
                m[4..8].copy_from_slice(&w32(1));
                m[8..12].copy_from_slice(&w32(ty));
                m[20..24].copy_from_slice(&w32(u32::from(body[1] & 1)));
                m[24..].copy_from_slice(&body);
                let _ = raw_bytes(&mut b, 0, 1, svc, m);
                sent += 1;
            }
            b.f.fail_lost();
            b.advance(Duration::from_secs(120));
            prop_assert_eq!(b.st(1).rpc_counters().rpcs_rcvd, sent);
            prop_assert_eq!(b.st(1).rpcs_in_flight().1, 0, "no server RPC left");
        }
    }
}
