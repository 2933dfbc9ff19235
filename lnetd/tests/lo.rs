//! The built-in loopback LND driven the way the node runtime drives an LND:
//! the engine behind a mutex, LND calls made after the lock is released, so
//! `recv` runs from inside `parse` (synchronously) or later (delayed).

use std::sync::{Arc, Mutex};

use lnet_core::lnd_api::{
    Completion, Hdr, Host, HostHandle, IoBuf, LndError, LndNiHandle, LogLevel, MsgToken, NetId,
    NetTunables, NiConfig, Nid, Payload, RxToken,
};
use lnet_core::{
    AckReq, Config, Duration, Event, EventKind, InsPos, Instant, LndOp, Lnet, MdOptions, MdSpec,
    NiId, ProcessId, Threshold, Unlink,
};
use lnetd::host::BuiltinLnd;

struct Shared {
    lnet: Mutex<Lnet>,
    lo: Mutex<Option<LndNiHandle>>,
    events: Mutex<Vec<Event>>,
    /// The name of the thread of each `finalize`, in order.
    finalizers: Mutex<Vec<String>>,
    now: Instant,
}

impl Shared {
    /// Drains the engine's outputs (under the lock), then runs the LND ops (without it).
    fn drain_and_run(&self, mut g: std::sync::MutexGuard<'_, Lnet>) {
        let mut ops = Vec::new();
        while let Some(op) = g.poll_lnd() {
            ops.push(op);
        }
        while let Some(ev) = g.poll_event() {
            self.events.lock().expect("events").push(ev);
        }
        drop(g);
        let lo = self.lo.lock().expect("lo").clone().expect("lo started");
        for op in ops {
            match op {
                LndOp::Send { ni, tx, payload } => {
                    assert_eq!(ni, NiId::LO);
                    let token = tx.token;
                    if lo.send_span(tx, payload).is_err() {
                        let g = self.lnet.lock().expect("engine");
                        let mut g = g;
                        g.handle_done(
                            self.now,
                            token,
                            Completion::failed(5, lnet_core::lnd_api::HealthStatus::LOCAL_ERROR),
                        );
                        self.drain_and_run(g);
                    }
                }
                LndOp::Recv { rx, payload, .. } => {
                    let msg = rx.msg.into_option();
                    if lo.recv_span(rx, payload).is_err() {
                        if let Some(m) = msg {
                            let mut g = self.lnet.lock().expect("engine");
                            g.handle_done(
                                self.now,
                                m,
                                Completion::failed(
                                    5,
                                    lnet_core::lnd_api::HealthStatus::LOCAL_ERROR,
                                ),
                            );
                            self.drain_and_run(g);
                        }
                    }
                }
                LndOp::EagerRecv { rx, .. } => {
                    lo.eager_recv(rx).expect("lo eager_recv succeeds");
                }
                _ => {}
            }
        }
    }
}

struct TestHost(Arc<Shared>);

impl Host for TestHost {
    fn parse(&self, hdr: Hdr, from: Nid, rx: RxToken, rdma_req: bool) -> Result<(), LndError> {
        let mut g = self.0.lnet.lock().expect("engine");
        let r = g.handle_rx(self.0.now, NiId::LO, hdr, from, rx, rdma_req);
        self.0.drain_and_run(g);
        r.map_err(|e| LndError::new(e.errno(), e.to_string()))
    }
    fn finalize(&self, msg: MsgToken, status: Completion) {
        let name = std::thread::current().name().unwrap_or("").to_string();
        self.0.finalizers.lock().expect("finalizers").push(name);
        let mut g = self.0.lnet.lock().expect("engine");
        g.handle_done(self.0.now, msg, status);
        self.0.drain_and_run(g);
    }
    fn notify(&self, _peer: Nid, _alive: bool) {}
    fn link_state(&self, _up: bool) {}
    fn log(&self, _level: LogLevel, _msg: &str) {}
}

fn setup() -> Arc<Shared> {
    let now = Instant::from_secs(1);
    let shared = Arc::new(Shared {
        lnet: Mutex::new(Lnet::new(Config::new(12345, 7, 0), now)),
        lo: Mutex::new(None),
        events: Mutex::new(Vec::new()),
        finalizers: Mutex::new(Vec::new()),
        now,
    });
    let b = inventory::iter::<BuiltinLnd>
        .into_iter()
        .find(|b| b.name == "lo")
        .expect("lo is registered as a built-in LND");
    assert_eq!(b.net_types, &[("lo", 9u8)]);
    let lnd = (b.new_lnd)("lo").expect("lo LND");
    let cfg = NiConfig {
        net: NetId::LO,
        interfaces: Default::default(),
        tunables: NetTunables::UNSET,
        lnd_tunables: Default::default(),
        params: Default::default(),
        pid: 12345,
    };
    let started = lnd
        .startup(cfg, HostHandle::new(TestHost(shared.clone())))
        .expect("startup");
    assert_eq!(started.info.nid, Nid::LO_0);
    *shared.lo.lock().expect("lo") = Some(started.ni);
    shared
}

fn run_put(shared: &Arc<Shared>, portal: u32, data: &[u8]) {
    let mut g = shared.lnet.lock().expect("engine");
    let (p, len) = (Payload::single(IoBuf::from_vec(data.to_vec())), data.len());
    let _ = len;
    let md = g
        .md_bind(
            MdSpec::new(p, MdOptions::NONE, Threshold::Count(2)),
            Unlink::Unlink,
        )
        .expect("bind");
    let target = ProcessId {
        nid: Nid::LO_0,
        pid: 12345,
    };
    g.put(shared.now, None, md, AckReq::Ack, target, portal, 5, 0, 0)
        .expect("put");
    shared.drain_and_run(g);
}

fn kinds(shared: &Arc<Shared>) -> Vec<EventKind> {
    shared
        .events
        .lock()
        .expect("events")
        .drain(..)
        .filter_map(|e| match e {
            Event::Md(m) => Some(m.kind),
            _ => None,
        })
        .collect()
}

#[test]
fn lo_recv_inside_parse_copies_and_completes_both_sides() {
    let shared = setup();
    let sinks = attach_sinks(&shared, 3, 1, 1000);
    let sink = &sinks[0];
    let data: Vec<u8> = (0..1000).map(|i| (i * 7) as u8).collect();
    run_put(&shared, 3, &data);
    assert_eq!(sink.to_vec().expect("free"), data);
    let mut k = kinds(&shared);
    k.sort_by_key(|k| *k as u32);
    assert_eq!(k, vec![EventKind::Put, EventKind::Ack, EventKind::Send]);
    let g = shared.lnet.lock().expect("engine");
    assert_eq!(g.stats().msgs_alloc, 0, "every message finalized");
    assert_eq!(g.stats().stale_tokens, 0);
}

#[test]
fn lo_delayed_recv_after_lazy_portal_wait() {
    let shared = setup();
    {
        let mut g = shared.lnet.lock().expect("engine");
        g.set_lazy_portal(9, true);
    }
    let data = vec![0xA5u8; 300];
    run_put(&shared, 9, &data);
    assert!(
        kinds(&shared).is_empty(),
        "the PUT waits on the lazy portal"
    );
    assert_eq!(
        shared.lnet.lock().expect("engine").stats().msgs_alloc,
        2,
        "the PUT sent and the PUT waiting"
    );
    let sinks = attach_sinks(&shared, 9, 1, 300);
    let sink = &sinks[0];
    // The attach matched the waiting PUT: its recv is queued, run it.
    shared.drain_and_run(shared.lnet.lock().expect("engine"));
    assert_eq!(sink.to_vec().expect("free"), data);
    let mut k = kinds(&shared);
    k.sort_by_key(|k| *k as u32);
    assert_eq!(k, vec![EventKind::Put, EventKind::Ack, EventKind::Send]);
    assert_eq!(shared.lnet.lock().expect("engine").stats().msgs_alloc, 0);
}

#[test]
fn lo_ping_of_0_at_lo_through_the_real_lnd() {
    let shared = setup();
    let mut g = shared.lnet.lock().expect("engine");
    let id = g
        .ping(
            shared.now,
            ProcessId {
                nid: Nid::LO_0,
                pid: 12345,
            },
            None,
            Duration::from_secs(1),
        )
        .expect("ping");
    shared.drain_and_run(g);
    let evs = shared.events.lock().expect("events").clone();
    assert!(
        evs.iter()
            .any(|e| matches!(e, Event::PingDone { id: i, result: Ok(_) } if *i == id)),
        "{evs:?}"
    );
}

#[test]
fn lo_shutdown_finalizes_pending_sends() {
    let shared = setup();
    {
        let mut g = shared.lnet.lock().expect("engine");
        g.set_lazy_portal(9, true);
    }
    run_put(&shared, 9, &[1, 2, 3]);
    let lo = shared.lo.lock().expect("lo").clone().expect("lo");
    lo.shutdown();
    let evs = shared.events.lock().expect("events").clone();
    let send = evs
        .iter()
        .find_map(|e| match e {
            Event::Md(m) if m.kind == EventKind::Send => Some(*m),
            _ => None,
        })
        .expect("the send completes at shutdown");
    assert!(send.status < 0);
}

/// Attaches `n` MDs over new `len`-byte sinks on `portal` (match bits 5,
/// one PUT each, in order) and returns the sinks.
fn attach_sinks(shared: &Arc<Shared>, portal: u32, n: usize, len: usize) -> Vec<IoBuf> {
    let mut g = shared.lnet.lock().expect("engine");
    (0..n)
        .map(|_| {
            let sink = IoBuf::zeroed(len);
            let me = g
                .me_attach(portal, ProcessId::ANY, 5, 0, Unlink::Unlink, InsPos::After)
                .expect("me");
            g.md_attach(
                me,
                MdSpec::new(
                    Payload::single(sink.clone()),
                    MdOptions::OP_PUT,
                    Threshold::Count(1),
                ),
                Unlink::Unlink,
            )
            .expect("md");
            sink
        })
        .collect()
}

/// Waits (up to 60 s: a loaded machine) until `n` MD events have come, then
/// takes them.
fn wait_kinds(shared: &Arc<Shared>, n: usize) -> Vec<EventKind> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut got = Vec::new();
    while got.len() < n && std::time::Instant::now() < deadline {
        got.extend(kinds(shared));
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    got
}

#[test]
fn lo_large_payload_is_copied_by_a_copy_thread_receive_first() {
    let shared = setup();
    let len = 1 << 20;
    assert!(len >= lnetd::lo::OFFLOAD_MIN);
    let sinks = attach_sinks(&shared, 4, 1, len);
    let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
    run_put(&shared, 4, &data);
    let k = wait_kinds(&shared, 3);
    assert_eq!(sinks[0].to_vec().expect("free"), data);
    // The receive (PUT) is finalized before the send (SEND); the ACK comes
    // from the receive's completion.
    let pos = |kind| k.iter().position(|x| *x == kind);
    assert!(pos(EventKind::Put) < pos(EventKind::Send), "{k:?}");
    let mut sorted = k.clone();
    sorted.sort_by_key(|k| *k as u32);
    assert_eq!(
        sorted,
        vec![EventKind::Put, EventKind::Ack, EventKind::Send]
    );
    // The copy and both of its finalizes ran on a copy thread, not on the
    // thread that made the PUT; so did the ACK (4 bytes: copied inline),
    // sent by the engine as the receive completed on that thread.
    let names = shared.finalizers.lock().expect("finalizers").clone();
    assert_eq!(names, ["lnet-lo-copy"; 4], "{names:?}");
    let g = shared.lnet.lock().expect("engine");
    assert_eq!(g.stats().msgs_alloc, 0, "every message finalized");
    assert_eq!(g.stats().stale_tokens, 0);
}

#[test]
fn lo_many_large_payloads_in_flight_arrive_intact() {
    let shared = setup();
    let (n, len) = (24, 256 << 10);
    let sinks = attach_sinks(&shared, 6, n, len);
    let datas: Vec<Vec<u8>> = (0..n).map(|i| vec![i as u8 + 1; len]).collect();
    for d in &datas {
        run_put(&shared, 6, d);
    }
    let mut k = wait_kinds(&shared, 3 * n);
    k.sort_by_key(|k| *k as u32);
    let mut want = [EventKind::Put, EventKind::Ack, EventKind::Send].repeat(n);
    want.sort_by_key(|k| *k as u32);
    assert_eq!(k, want);
    for (i, (sink, d)) in sinks.iter().zip(&datas).enumerate() {
        assert!(sink.to_vec().expect("free") == *d, "sink {i} holds PUT {i}");
    }
    assert_eq!(shared.lnet.lock().expect("engine").stats().msgs_alloc, 0);
}

#[test]
fn lo_shutdown_completes_the_copies_in_flight() {
    let shared = setup();
    let (n, len) = (8, 1 << 20);
    let sinks = attach_sinks(&shared, 7, n, len);
    let data = vec![0x3cu8; len];
    for _ in 0..n {
        run_put(&shared, 7, &data);
    }
    let lo = shared.lo.lock().expect("lo").clone().expect("lo");
    lo.shutdown();
    // Once shutdown returns, every copy handed over is done and finalized.
    let mut k = kinds(&shared);
    k.retain(|k| *k != EventKind::Ack);
    assert_eq!(
        k.iter().filter(|k| **k == EventKind::Put).count(),
        n,
        "{k:?}"
    );
    assert_eq!(
        k.iter().filter(|k| **k == EventKind::Send).count(),
        n,
        "{k:?}"
    );
    for sink in &sinks {
        assert!(sink.to_vec().expect("free") == data);
    }
}
