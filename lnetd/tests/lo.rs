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
    let sink = IoBuf::zeroed(1000);
    {
        let mut g = shared.lnet.lock().expect("engine");
        let me = g
            .me_attach(3, ProcessId::ANY, 5, 0, Unlink::Unlink, InsPos::After)
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
    }
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
    let sink = IoBuf::zeroed(300);
    {
        let mut g = shared.lnet.lock().expect("engine");
        assert_eq!(g.stats().msgs_alloc, 2, "the PUT sent and the PUT waiting");
        let me = g
            .me_attach(9, ProcessId::ANY, 5, 0, Unlink::Unlink, InsPos::After)
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
        shared.drain_and_run(g);
    }
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
