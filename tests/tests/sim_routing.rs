//! Routing on the simulated fabric (issue 13): client — tcp — router — tcp1 —
//! server, PUT/GET byte-exact through the router with the original source
//! NID kept; router buffer credits queueing and coming back; two routers with
//! one failing (traffic continues through the other, every message
//! accounted, the dead router comes back); two hops; the route table's
//! refusals; `drop_asym_route`; with discovery on, a router whose far NI
//! comes up after the client's check pushes the change and the route comes
//! up at once (with discovery off, at the next check).

use lnet_core::lnd_api::{NetId, Nid};
use lnet_core::{
    AckReq, Duration, EventKind, GlobalTunables, Instant, Lnet, MdOptions, PeerState, PoolKind,
    RouteError, RouterConfig, RoutingState, Threshold,
};
use lnet_tests::sim::{pattern, seed_from_env, Fabric, LinkParams, NiSpec, NodeSpec, TCP, TCP1};

const TCP2: NetId = NetId::new(2, 2);

/// Router tunables with the checker off (so `settle` can go idle) unless
/// `interval` is given.
fn rcfg(interval: i64) -> RouterConfig {
    let mut c = RouterConfig::default();
    c.alive_router_check_interval = interval;
    c.router_ping_timeout = 10;
    c
}

fn enable_router(f: &mut Fabric, node: usize, cfg: RouterConfig) {
    f.call(node, |l, now| {
        l.set_router_config(now, cfg);
        l.set_routing(now, true, true);
    });
}

fn route(f: &mut Fabric, node: usize, net: NetId, gw: Nid, prio: u32) {
    f.call(node, |l, now| l.route_add(now, net, gw, None, prio, None))
        .unwrap_or_else(|e| panic!("route add {net} via {gw} on n{node}: {e}"));
}

/// The routed peers discovered first (§9.2: their pings and pushes cross
/// the routers), then every node's counters and the links' start from zero:
/// the scenarios count their own traffic.
fn discovered_through_routes(f: &mut Fabric, pairs: &[(usize, usize)]) {
    for &(a, b) in pairs {
        let nid = f.nid(b, 0);
        f.discover(a, nid, false)
            .unwrap_or_else(|e| panic!("n{a} discovers {nid} through its route: {e}"));
    }
    // The pushes that answer (not `settle`: a router checker never idles).
    f.run_for(Duration::from_secs(1));
    for n in 0..f.node_count() {
        f.call(n, |l, _| l.stats_reset());
    }
    f.reset_link_stats();
}

/// client(0) 10.0.0.1@tcp — router(1) 10.0.0.2@tcp / 10.1.0.2@tcp1 —
/// server(2) 10.1.0.3@tcp1, routes both ways.
fn one_router(seed: u64, interval: i64) -> Fabric {
    one_router_cfg(seed, rcfg(interval))
}

/// As [`one_router`] with the router's configuration given (peer buffer
/// credits apply to the peer NIs made after it is set, so before discovery).
fn one_router_cfg(seed: u64, cfg: RouterConfig) -> Fabric {
    let mut f = Fabric::new(seed_from_env(seed));
    f.set_default_link(LinkParams::new().latency(Duration::from_micros(20)));
    let c = f.add_node(NodeSpec::new().ni(NiSpec::tcp([10, 0, 0, 1])));
    let r = f.add_node(
        NodeSpec::new()
            .ni(NiSpec::tcp([10, 0, 0, 2]))
            .ni(NiSpec::new(TCP1, [10, 1, 0, 2])),
    );
    let s = f.add_node(NodeSpec::new().ni(NiSpec::new(TCP1, [10, 1, 0, 3])));
    enable_router(&mut f, r, cfg.clone());
    for n in [c, s] {
        f.call(n, |l, now| l.set_router_config(now, cfg.clone()));
    }
    let (rc, rs) = (f.nid(r, 0), f.nid(r, 1));
    route(&mut f, c, TCP1, rc, 0);
    route(&mut f, s, TCP, rs, 0);
    discovered_through_routes(&mut f, &[(c, s), (s, c)]);
    f
}

#[test]
fn put_and_get_through_a_router_are_byte_exact_and_keep_the_source() {
    let mut f = one_router(1301, 0);
    let (c, r, s) = (0, 1, 2);
    for (i, len) in [0usize, 17, 4096, 4097, 1 << 20].into_iter().enumerate() {
        let data = pattern(len, i as u8);
        let bits = 0x100 + i as u64;
        let (_, sink) = f.post(s, 7, bits, len, MdOptions::OP_PUT, Threshold::Count(1));
        let (md, _) = f.bind(c, &data, Threshold::Count(2));
        f.put(c, md, AckReq::Ack, f.pid(s), 7, bits, 0x55)
            .expect("put");
        f.settle();
        assert_eq!(sink.to_vec().expect("free"), data, "PUT of {len} bytes");
        let srv = f.take_md_events(s);
        assert_eq!(srv.len(), 1);
        assert_eq!(srv[0].kind, EventKind::Put);
        assert_eq!(srv[0].status, 0);
        // The server sees the client's NID as initiator and source, the
        // router as the previous hop.
        assert_eq!(srv[0].initiator.nid, f.nid(c, 0));
        assert_eq!(srv[0].source.nid, f.nid(c, 0));
        assert_eq!(srv[0].sender, f.nid(r, 1));
        let cli: Vec<(EventKind, i32)> = f
            .take_md_events(c)
            .iter()
            .map(|e| (e.kind, e.status))
            .collect();
        assert_eq!(cli, vec![(EventKind::Send, 0), (EventKind::Ack, 0)]);
    }
    // GET back through the router.
    for (i, len) in [0usize, 100, 8192, 1 << 20].into_iter().enumerate() {
        let data = pattern(len, 0x40 + i as u8);
        let bits = 0x200 + i as u64;
        let md = f.call(s, |l, _| {
            let me = l
                .me_attach(
                    9,
                    lnet_core::ProcessId::ANY,
                    bits,
                    0,
                    lnet_core::Unlink::Unlink,
                    lnet_core::InsPos::After,
                )
                .expect("me");
            l.md_attach(
                me,
                lnet_core::MdSpec::new(
                    lnet_core::lnd_api::Payload::single(lnet_core::lnd_api::IoBuf::from_vec(
                        data.clone(),
                    )),
                    MdOptions::OP_GET,
                    Threshold::Count(1),
                ),
                lnet_core::Unlink::Unlink,
            )
            .expect("md")
        });
        let _ = md;
        let (gmd, sink) = f.bind(c, &vec![0; len], Threshold::Count(2));
        f.get(c, gmd, f.pid(s), 9, bits).expect("get");
        f.settle();
        assert_eq!(sink.to_vec().expect("free"), data, "GET of {len} bytes");
        let cli: Vec<(EventKind, i32, u32)> = f
            .take_md_events(c)
            .iter()
            .map(|e| (e.kind, e.status, e.mlength))
            .collect();
        assert_eq!(
            cli,
            vec![
                (EventKind::Send, 0, len as u32),
                (EventKind::Reply, 0, len as u32)
            ]
        );
        f.take_md_events(s);
    }
    // Every forwarded message went through the router's counters and gave
    // its buffer and credits back.
    let (routed, pools, drops) = f.inspect(r, |l| {
        (
            l.stats().route_count,
            l.router_pools(),
            l.stats().drop_count,
        )
    });
    // 5 PUTs + 5 ACKs + 4 GETs + 4 REPLYs.
    assert_eq!(routed, 18);
    assert_eq!(drops, 0);
    for p in pools.expect("pools exist") {
        assert_eq!(
            p.credits, p.nbuffers as i32,
            "{:?} pool credits back",
            p.kind
        );
        assert!(
            p.min_credits < p.nbuffers as i32,
            "{:?} pool was used",
            p.kind
        );
    }
    let cred = f.inspect(r, |l| l.peer_ni_rtr_credits(&Nid::new4(TCP, 0x0a00_0001)));
    let cred = cred.expect("client forwarded through the router");
    assert_eq!(cred.credits, cred.max_credits);
}

#[test]
fn router_buffers_are_a_fixed_pool_whose_negative_credits_queue() {
    let mut f = one_router(1302, 0);
    let (c, r, s) = (0, 1, 2);
    // Two small buffers, peer_buffer_credits 16: 6 PUTs of 1000 bytes wait
    // for buffers, never more than 2 exist.
    let mut cfg = rcfg(0);
    cfg.small_router_buffers = 2;
    cfg.peer_buffer_credits = 16;
    f.call(r, |l, now| l.set_router_config(now, cfg));
    let n = 6;
    let mut sinks = Vec::new();
    for i in 0..n {
        let (_, sink) = f.post(s, 5, i, 1000, MdOptions::OP_PUT, Threshold::Count(1));
        sinks.push(sink);
    }
    for i in 0..n {
        let (md, _) = f.bind(c, &pattern(1000, i as u8), Threshold::Count(1));
        f.put(c, md, AckReq::NoAck, f.pid(s), 5, i, 0).expect("put");
    }
    f.settle();
    for (i, s) in sinks.iter().enumerate() {
        assert_eq!(s.to_vec().expect("free"), pattern(1000, i as u8));
    }
    let pools = f.inspect(r, |l| l.router_pools()).expect("pools");
    let small = pools[1];
    assert_eq!(small.kind, PoolKind::Small);
    assert_eq!(small.nbuffers, 2);
    assert_eq!(small.credits, 2);
    assert!(
        small.min_credits < 0,
        "messages waited: {}",
        small.min_credits
    );
    assert_eq!(f.inspect(r, |l| l.router_buffers_allocated())[1], 2);
    assert_eq!(f.inspect(r, |l| l.stats().route_count), n);
}

#[test]
fn peer_buffer_credits_limit_one_previous_hop() {
    let mut cfg = rcfg(0);
    cfg.peer_buffer_credits = 1;
    let mut f = one_router_cfg(1303, cfg);
    let (c, r, s) = (0, 1, 2);
    let n = 5;
    let mut sinks = Vec::new();
    for i in 0..n {
        sinks.push(
            f.post(s, 5, i, 64, MdOptions::OP_PUT, Threshold::Count(1))
                .1,
        );
    }
    for i in 0..n {
        let (md, _) = f.bind(c, &pattern(64, i as u8), Threshold::Count(1));
        f.put(c, md, AckReq::NoAck, f.pid(s), 5, i, 0).expect("put");
    }
    f.settle();
    for (i, s) in sinks.iter().enumerate() {
        assert_eq!(s.to_vec().expect("free"), pattern(64, i as u8));
    }
    let cred = f
        .inspect(r, |l| l.peer_ni_rtr_credits(&f.nid(c, 0)))
        .expect("router credits of the client");
    assert_eq!(cred.max_credits, 1);
    assert_eq!(cred.credits, 1);
    assert!(cred.min_credits < 0, "min {}", cred.min_credits);
}

#[test]
fn without_routing_a_router_drops_what_is_not_for_it() {
    let mut f = one_router(1304, 0);
    let (c, r, s) = (0, 1, 2);
    f.call(r, |l, now| l.set_routing(now, false, true));
    assert_eq!(f.inspect(r, |l| l.routing_state()), RoutingState::Disabled);
    let (md, _) = f.bind(c, b"hello", Threshold::Count(1));
    f.put(c, md, AckReq::NoAck, f.pid(s), 5, 1, 0).expect("put");
    f.settle();
    assert_eq!(f.inspect(r, |l| l.stats().drop_count), 1);
    assert_eq!(f.inspect(r, |l| l.stats().route_count), 0);
}

#[test]
fn no_route_fails_with_ehostunreach() {
    let mut f = one_router(1305, 0);
    let (c, _r, _s) = (0, 1, 2);
    let (md, _) = f.bind(c, b"x", Threshold::Count(1));
    let far = lnet_core::ProcessId::lustre(Nid::new4(TCP2, 0x0a02_0001));
    f.put(c, md, AckReq::NoAck, far, 5, 1, 0).expect("put");
    f.settle();
    let ev = f.take_md_events(c);
    assert_eq!(ev[0].kind, EventKind::Send);
    assert_eq!(ev[0].status, -113);
}

#[test]
fn route_add_refuses_what_the_spec_refuses() {
    let mut f = one_router(1306, 0);
    let c = 0;
    let rc = f.nid(1, 0);
    let add = |f: &mut Fabric, net: NetId, gw: Nid, hops: Option<u32>| {
        f.call(c, |l: &mut Lnet, now: Instant| {
            l.route_add(now, net, gw, hops, 0, None)
        })
    };
    // Duplicate.
    let e = add(&mut f, TCP1, rc, None).expect_err("duplicate");
    assert!(matches!(e, RouteError::Exists { .. }));
    assert_eq!(e.errno(), 17);
    assert_eq!(
        e.to_string(),
        "Route already exists or the specified network is local"
    );
    // To a local net.
    let e = add(&mut f, TCP, Nid::new4(TCP1, 0x0a01_0009), None).expect_err("local net");
    assert_eq!(e.errno(), 17);
    // Gateway on no local net.
    let e = add(&mut f, TCP2, Nid::new4(TCP1, 0x0a01_0002), None).expect_err("no local net");
    assert!(matches!(e, RouteError::GatewayUnreachable(_)));
    assert_eq!(e.errno(), 113);
    assert_eq!(
        e.to_string(),
        "No interface configured on the same net as gateway"
    );
    // Hops out of range, loopback.
    let e = add(&mut f, TCP2, rc, Some(0)).expect_err("hops");
    assert_eq!(e.to_string(), "invalid hop count must be between 1 and 255");
    let e = add(&mut f, NetId::LO, rc, None).expect_err("lo");
    assert_eq!(e.to_string(), "setting @lo not allowed");
    // Nothing changed.
    assert_eq!(f.inspect(c, |l| l.routes().len()), 1);
    // Delete: by gateway, then nothing left to delete.
    f.call(c, |l, _| l.route_del(None, Some(rc))).expect("del");
    assert!(f.inspect(c, |l| l.routes().is_empty()));
    let e = f
        .call(c, |l, _| l.route_del(Some(TCP1), None))
        .expect_err("gone");
    assert_eq!(e.to_string(), "failed to delete route");
}

/// client(0) tcp — r1(1), r2(2) — tcp1 — server(3), routes through both.
fn two_routers(seed: u64, interval: i64) -> Fabric {
    let mut f = Fabric::new(seed_from_env(seed));
    f.set_default_link(LinkParams::new().latency(Duration::from_micros(20)));
    let c = f.add_node(NodeSpec::new().ni(NiSpec::tcp([10, 0, 0, 1]).timeout(5)));
    let r1 = f.add_node(
        NodeSpec::new()
            .ni(NiSpec::tcp([10, 0, 0, 2]).timeout(5))
            .ni(NiSpec::new(TCP1, [10, 1, 0, 2]).timeout(5)),
    );
    let r2 = f.add_node(
        NodeSpec::new()
            .ni(NiSpec::tcp([10, 0, 0, 3]).timeout(5))
            .ni(NiSpec::new(TCP1, [10, 1, 0, 3]).timeout(5)),
    );
    let s = f.add_node(NodeSpec::new().ni(NiSpec::new(TCP1, [10, 1, 0, 9]).timeout(5)));
    for r in [r1, r2] {
        enable_router(&mut f, r, rcfg(interval));
    }
    for n in [c, s] {
        f.call(n, |l, now| l.set_router_config(now, rcfg(interval)));
    }
    for r in [r1, r2] {
        let (a, b) = (f.nid(r, 0), f.nid(r, 1));
        route(&mut f, c, TCP1, a, 0);
        route(&mut f, s, TCP, b, 0);
    }
    discovered_through_routes(&mut f, &[(c, s), (s, c)]);
    f
}

#[test]
fn two_routers_share_the_load_round_robin() {
    let mut f = two_routers(1307, 0);
    let (c, r1, r2, s) = (0, 1, 2, 3);
    let n = 20u64;
    for i in 0..n {
        f.post(s, 5, i, 32, MdOptions::OP_PUT, Threshold::Count(1));
        let (md, _) = f.bind(c, &pattern(32, i as u8), Threshold::Count(1));
        f.put(c, md, AckReq::NoAck, f.pid(s), 5, i, 0).expect("put");
        f.settle();
    }
    let a = f.inspect(r1, |l| l.stats().route_count);
    let b = f.inspect(r2, |l| l.stats().route_count);
    assert_eq!(a + b, n);
    assert_eq!(a, n / 2, "round robin: r1 {a}, r2 {b}");
    let ok = f
        .take_md_events(s)
        .iter()
        .filter(|e| e.kind == EventKind::Put && e.status == 0)
        .count();
    assert_eq!(ok as u64, n);
}

#[test]
fn priority_and_hops_order_the_gateways() {
    let mut f = two_routers(1308, 0);
    let (c, r1, r2, s) = (0, 1, 2, 3);
    // r1 gets a worse priority on the client: everything goes through r2.
    let g1 = f.nid(r1, 0);
    f.call(c, |l, _| l.route_del(Some(TCP1), Some(g1)))
        .expect("del");
    route(&mut f, c, TCP1, g1, 5);
    for i in 0..6 {
        f.post(s, 5, i, 8, MdOptions::OP_PUT, Threshold::Count(1));
        let (md, _) = f.bind(c, b"8 bytes!", Threshold::Count(1));
        f.put(c, md, AckReq::NoAck, f.pid(s), 5, i, 0).expect("put");
    }
    f.settle();
    assert_eq!(f.inspect(r1, |l| l.stats().route_count), 0);
    assert_eq!(f.inspect(r2, |l| l.stats().route_count), 6);
    let shown = f.inspect(c, |l| l.routes());
    assert_eq!(shown.len(), 2);
    assert!(shown.iter().all(|r| r.net == TCP1 && r.alive));
    assert_eq!(
        shown.iter().find(|r| r.gateway == g1).map(|r| r.priority),
        Some(5)
    );
}

#[test]
fn a_failing_router_is_avoided_and_comes_back() {
    // Checker on: gateways pinged every 10 s, ping timeout 10 s.
    let mut f = two_routers(1309, 10);
    let (c, r1, r2, s) = (0, 1, 2, 3);
    f.run_for(Duration::from_secs(2));
    let g1 = f.nid(r1, 0);
    assert_eq!(f.inspect(c, |l| l.gateway_alive(&g1)), Some(true));
    // r1 is cut off from everyone from now on.
    let t0 = f.now();
    let cut_a = f.partition(&[r1], &[c, r2, s], t0, None);
    let mut sent = 0u64;
    let mut sinks = Vec::new();
    // Traffic every 2 s for 60 s of virtual time.
    for i in 0..30u64 {
        let (_, sink) = f.post(s, 5, i, 256, MdOptions::OP_PUT, Threshold::Count(1));
        sinks.push((i, sink));
        let (md, _) = f.bind(c, &pattern(256, i as u8), Threshold::Count(1));
        f.put(c, md, AckReq::NoAck, f.pid(s), 5, i, 0).expect("put");
        sent += 1;
        f.run_for(Duration::from_secs(2));
    }
    f.run_for(Duration::from_secs(60));
    // Every PUT is accounted: delivered, or failed on the client with an
    // error (those that went to r1 before the checker noticed).
    let cev = f.take_md_events(c);
    let failed: Vec<u64> = cev
        .iter()
        .filter(|e| e.kind == EventKind::Send && e.status != 0)
        .map(|e| e.match_bits)
        .collect();
    let sends = cev.iter().filter(|e| e.kind == EventKind::Send).count() as u64;
    assert_eq!(sends, sent, "one SEND event per PUT");
    let delivered: Vec<u64> = f
        .take_md_events(s)
        .iter()
        .filter(|e| e.kind == EventKind::Put && e.status == 0)
        .map(|e| e.match_bits)
        .collect();
    assert_eq!(delivered.len() + failed.len(), sent as usize);
    for (i, sink) in &sinks {
        if delivered.contains(i) {
            assert_eq!(sink.to_vec().expect("free"), pattern(256, *i as u8));
        }
    }
    assert!(
        failed.len() <= 4,
        "only messages sent before the router was found dead fail: {failed:?}"
    );
    // Later messages all went through r2.
    assert_eq!(f.inspect(c, |l| l.gateway_alive(&g1)), Some(false));
    let routes = f.inspect(c, |l| l.routes());
    assert!(
        !routes
            .iter()
            .find(|r| r.gateway == g1)
            .expect("r1 route")
            .alive
    );
    // r1 comes back: its route goes up at the next check and it carries
    // traffic again.
    let now = f.now();
    f.heal(cut_a, now);
    f.run_for(Duration::from_secs(25));
    assert_eq!(f.inspect(c, |l| l.gateway_alive(&g1)), Some(true));
    let before = f.inspect(r1, |l| l.stats().route_count);
    for i in 100..110u64 {
        f.post(s, 5, i, 16, MdOptions::OP_PUT, Threshold::Count(1));
        let (md, _) = f.bind(c, &pattern(16, i as u8), Threshold::Count(1));
        f.put(c, md, AckReq::NoAck, f.pid(s), 5, i, 0).expect("put");
        f.run_for(Duration::from_millis(10));
    }
    f.run_for(Duration::from_secs(5));
    assert!(f.inspect(r1, |l| l.stats().route_count) > before);
    let ok = f
        .take_md_events(s)
        .iter()
        .filter(|e| e.kind == EventKind::Put && e.status == 0)
        .count();
    assert_eq!(ok, 10);
    assert!(f.hanging().is_empty(), "{:?}", f.hanging());
}

#[test]
fn a_router_with_its_far_interface_down_is_avoided_asymmetric_failure() {
    let mut f = two_routers(1310, 10);
    let (c, r1, r2, s) = (0, 1, 2, 3);
    f.run_for(Duration::from_secs(2));
    // r1's tcp1 interface goes down: its ping buffer says so.
    f.set_ni_link(r1, 1, false);
    f.run_for(Duration::from_secs(15));
    let g1 = f.nid(r1, 0);
    let routes = f.inspect(c, |l| l.routes());
    let r1route = routes.iter().find(|r| r.gateway == g1).expect("route");
    assert!(!r1route.alive, "r1's route is down: its tcp1 NI is down");
    assert_eq!(f.inspect(c, |l| l.gateway_alive(&g1)), Some(true));
    for i in 0..6u64 {
        f.post(s, 5, i, 16, MdOptions::OP_PUT, Threshold::Count(1));
        let (md, _) = f.bind(c, b"0123456789abcdef", Threshold::Count(1));
        f.put(c, md, AckReq::NoAck, f.pid(s), 5, i, 0).expect("put");
    }
    f.run_for(Duration::from_secs(2));
    assert_eq!(f.inspect(r1, |l| l.stats().route_count), 0);
    assert_eq!(f.inspect(r2, |l| l.stats().route_count), 6);
    // Without avoid_asym_router_failure the route stays up.
    let mut cfg = rcfg(10);
    cfg.avoid_asym_router_failure = false;
    f.call(c, |l, now| l.set_router_config(now, cfg));
    f.run_for(Duration::from_secs(15));
    let routes = f.inspect(c, |l| l.routes());
    assert!(
        routes
            .iter()
            .find(|r| r.gateway == g1)
            .expect("route")
            .alive
    );
}

#[test]
fn lnd_peer_down_notification_takes_a_gateway_down() {
    let mut f = two_routers(1311, 0);
    let (c, r1) = (0, 1);
    let g1 = f.nid(r1, 0);
    let ni = f.ni(c, 0);
    f.call(c, |l, now| l.handle_notify(now, ni, g1, false));
    assert_eq!(f.inspect(c, |l| l.gateway_alive(&g1)), Some(false));
    assert!(
        !f.inspect(c, |l| l.routes())
            .iter()
            .find(|r| r.gateway == g1)
            .expect("route")
            .alive
    );
    f.call(c, |l, now| l.handle_notify(now, ni, g1, true));
    assert_eq!(f.inspect(c, |l| l.gateway_alive(&g1)), Some(true));
}

#[test]
fn two_hops_client_r1_r2_server() {
    // client 10.0.0.1@tcp — r1 (tcp, tcp1) — r2 (tcp1, tcp2) — server 10.2.0.9@tcp2
    let mut f = Fabric::new(seed_from_env(1312));
    f.set_default_link(LinkParams::new().latency(Duration::from_micros(20)));
    let c = f.add_node(NodeSpec::new().ni(NiSpec::tcp([10, 0, 0, 1])));
    let r1 = f.add_node(
        NodeSpec::new()
            .ni(NiSpec::tcp([10, 0, 0, 2]))
            .ni(NiSpec::new(TCP1, [10, 1, 0, 2])),
    );
    let r2 = f.add_node(
        NodeSpec::new()
            .ni(NiSpec::new(TCP1, [10, 1, 0, 3]))
            .ni(NiSpec::new(TCP2, [10, 2, 0, 3])),
    );
    let s = f.add_node(NodeSpec::new().ni(NiSpec::new(TCP2, [10, 2, 0, 9])));
    for r in [r1, r2] {
        enable_router(&mut f, r, rcfg(0));
    }
    for n in [c, s] {
        f.call(n, |l, now| l.set_router_config(now, rcfg(0)));
    }
    let (r1a, r1b, r2a, r2b) = (f.nid(r1, 0), f.nid(r1, 1), f.nid(r2, 0), f.nid(r2, 1));
    f.call(c, |l, now| l.route_add(now, TCP2, r1a, Some(2), 0, None))
        .expect("route");
    route(&mut f, r1, TCP2, r2a, 0);
    route(&mut f, r2, TCP, r1b, 0);
    f.call(s, |l, now| l.route_add(now, TCP, r2b, Some(2), 0, None))
        .expect("route");
    discovered_through_routes(&mut f, &[(c, s), (s, c)]);
    let data = pattern(300_000, 3);
    let (_, sink) = f.post(s, 5, 1, data.len(), MdOptions::OP_PUT, Threshold::Count(1));
    let (md, _) = f.bind(c, &data, Threshold::Count(2));
    f.put(c, md, AckReq::Ack, f.pid(s), 5, 1, 0).expect("put");
    f.settle();
    assert_eq!(sink.to_vec().expect("free"), data);
    let ev = f.take_md_events(s);
    assert_eq!(ev[0].initiator.nid, f.nid(c, 0));
    assert_eq!(ev[0].sender, r2b);
    let kinds: Vec<EventKind> = f.take_md_events(c).iter().map(|e| e.kind).collect();
    assert_eq!(kinds, vec![EventKind::Send, EventKind::Ack]);
    // PUT and ACK went through both routers.
    assert_eq!(f.inspect(r1, |l| l.stats().route_count), 2);
    assert_eq!(f.inspect(r2, |l| l.stats().route_count), 2);
    assert_eq!(f.inspect(c, |l| l.dist(&f.nid(s, 0))), Ok((3, 0)));
}

#[test]
fn drop_asym_route_drops_what_comes_through_an_unknown_gateway() {
    let mut f = one_router(1313, 0);
    let (c, r, s) = (0, 1, 2);
    // The server has no route back through the router (deleted), and
    // drop_asym_route is set: the client's PUT is dropped at the server.
    let rs = f.nid(r, 1);
    f.call(s, |l, _| l.route_del(None, Some(rs))).expect("del");
    let mut t = GlobalTunables::default();
    t.drop_asym_route = true;
    f.call(s, |l, _| l.set_tunables(t)).expect("tunables");
    let (_, sink) = f.post(s, 5, 1, 4, MdOptions::OP_PUT, Threshold::Count(1));
    let (md, _) = f.bind(c, b"asym", Threshold::Count(1));
    f.put(c, md, AckReq::NoAck, f.pid(s), 5, 1, 0).expect("put");
    f.settle();
    assert_eq!(sink.to_vec().expect("free"), vec![0; 4]);
    assert_eq!(f.inspect(s, |l| l.stats().drop_count), 1);
    assert!(f.take_md_events(s).is_empty());
}

#[test]
fn routing_disable_at_run_time_stops_forwarding_and_advertises_it() {
    let mut f = one_router(1314, 0);
    let r = 1;
    // 60 + 50 s: the switch takes 110 s each way.
    f.call(r, |l, now| {
        l.set_router_config(now, RouterConfig::default())
    });
    f.call(r, |l, now| l.set_routing(now, false, false));
    assert_eq!(f.inspect(r, |l| l.routing_state()), RoutingState::Stopping);
    assert!(
        !f.inspect(r, |l| l.tunables().routing),
        "RTE_DISABLED is set at once"
    );
    f.run_for(Duration::from_secs(200));
    assert_eq!(f.inspect(r, |l| l.routing_state()), RoutingState::Disabled);
    f.call(r, |l, now| l.set_routing(now, true, false));
    assert_eq!(f.inspect(r, |l| l.routing_state()), RoutingState::Starting);
    f.run_for(Duration::from_secs(100));
    assert!(!f.inspect(r, |l| l.tunables().routing));
    f.run_for(Duration::from_secs(20));
    assert_eq!(f.inspect(r, |l| l.routing_state()), RoutingState::Enabled);
    assert!(f.inspect(r, |l| l.tunables().routing));
}

#[test]
fn a_multi_rail_peer_with_no_local_net_is_reached_over_its_routed_nets() {
    // client tcp — r1 — tcp1 — server — tcp2 — r2 — tcp client; the server
    // is a Multi-Rail peer with a NID on tcp1 and one on tcp2 (§7.5).
    let mut f = Fabric::new(seed_from_env(1315));
    f.set_default_link(LinkParams::new().latency(Duration::from_micros(20)));
    let c = f.add_node(NodeSpec::new().ni(NiSpec::tcp([10, 0, 0, 1])));
    let r1 = f.add_node(
        NodeSpec::new()
            .ni(NiSpec::tcp([10, 0, 0, 2]))
            .ni(NiSpec::new(TCP1, [10, 1, 0, 2])),
    );
    let r2 = f.add_node(
        NodeSpec::new()
            .ni(NiSpec::tcp([10, 0, 0, 3]))
            .ni(NiSpec::new(TCP2, [10, 2, 0, 3])),
    );
    let s = f.add_node(
        NodeSpec::new()
            .ni(NiSpec::new(TCP1, [10, 1, 0, 9]))
            .ni(NiSpec::new(TCP2, [10, 2, 0, 9])),
    );
    for r in [r1, r2] {
        enable_router(&mut f, r, rcfg(0));
    }
    for n in [c, s] {
        f.call(n, |l, now| l.set_router_config(now, rcfg(0)));
    }
    let (g1, g2) = (f.nid(r1, 0), f.nid(r2, 0));
    route(&mut f, c, TCP1, g1, 0);
    route(&mut f, c, TCP2, g2, 0);
    let (s1, s2) = (f.nid(s, 0), f.nid(s, 1));
    let (h1, h2) = (f.nid(r1, 1), f.nid(r2, 1));
    route(&mut f, s, TCP, h1, 0);
    route(&mut f, s, TCP, h2, 0);
    f.call(c, |l, _| l.peer_add(s1, &[s2], true))
        .expect("peer add");
    discovered_through_routes(&mut f, &[(c, s)]);
    let send = |f: &mut Fabric, i: u64| {
        f.post(s, 5, i, 8, MdOptions::OP_PUT, Threshold::Count(1));
        let (md, _) = f.bind(c, b"mr-route", Threshold::Count(1));
        f.put(c, md, AckReq::NoAck, f.pid(s), 5, i, 0).expect("put");
        f.settle();
    };
    for i in 0..8 {
        send(&mut f, i);
    }
    let (a, b) = (
        f.inspect(r1, |l| l.stats().route_count),
        f.inspect(r2, |l| l.stats().route_count),
    );
    assert_eq!((a, b), (4, 4), "both peer nets used in turn");
    // The route to tcp1 goes down: everything reaches the server over tcp2.
    let ni = f.ni(c, 0);
    f.call(c, |l, now| l.handle_notify(now, ni, g1, false));
    for i in 8..14 {
        send(&mut f, i);
    }
    assert_eq!(f.inspect(r1, |l| l.stats().route_count), 4);
    assert_eq!(f.inspect(r2, |l| l.stats().route_count), 10);
    let evs = f.take_md_events(s);
    assert_eq!(evs.iter().filter(|e| e.status == 0).count(), 14);
    assert!(evs[8..].iter().all(|e| e.target.nid == s2));
}

#[test]
fn routes_parameter_adds_routes_and_names_this_node_a_router() {
    let mut f = one_router(1316, 0);
    let (c, r) = (0, 1);
    let routes: lnet_core::nid::Routes = "tcp2 2 10.0.0.[2,7]@tcp:3; tcp1 10.0.0.2@tcp"
        .parse()
        .expect("routes=");
    let router = f
        .call(c, |l, now| l.routes_apply(now, &routes))
        .expect("apply");
    assert!(!router);
    let shown = f.inspect(c, |l| l.routes());
    // tcp1 via 10.0.0.2@tcp existed already (EEXIST tolerated).
    assert_eq!(shown.len(), 3);
    let tcp2: Vec<_> = shown.iter().filter(|r| r.net == TCP2).collect();
    assert_eq!(tcp2.len(), 2);
    assert!(tcp2.iter().all(|r| r.hops == Some(2) && r.priority == 3));
    // On the router, its own NID as gateway makes it a router.
    let own: lnet_core::nid::Routes = "tcp5 10.0.0.2@tcp".parse().expect("routes=");
    assert_eq!(f.call(r, |l, now| l.routes_apply(now, &own)), Ok(true));
    assert!(f.inspect(r, |l| l.routes()).is_empty());
}

#[test]
fn deleting_the_receiving_ni_drops_forwards_waiting_for_router_credits() {
    let mut cfg = rcfg(0);
    cfg.peer_buffer_credits = 1;
    let mut f = one_router_cfg(1317, cfg);
    let (c, r, s) = (0, 1, 2);
    // The server's link is cut: forwarded PUTs sit at the router's LND
    // until they time out, the others wait for the client's router credit.
    let t = f.now();
    f.partition(&[r], &[s], t, None);
    for i in 0..4 {
        let (md, _) = f.bind(c, b"wait", Threshold::Count(1));
        f.put(c, md, AckReq::NoAck, f.pid(s), 5, i, 0).expect("put");
    }
    f.run_for(Duration::from_millis(5));
    let cred = f
        .inspect(r, |l| l.peer_ni_rtr_credits(&f.nid(c, 0)))
        .expect("credits");
    assert!(
        cred.credits < 0,
        "messages wait for router credits: {cred:?}"
    );
    f.del_ni(r, 0).expect("net del");
    f.settle();
    assert!(f.hanging().is_empty());
}

#[test]
fn router_buffers_exist_from_routing_enable_and_follow_the_sizes() {
    // A node with two nets, routing off: no pools.
    let mut f = Fabric::new(seed_from_env(1316));
    let r = f.add_node(
        NodeSpec::new()
            .ni(NiSpec::tcp([10, 0, 0, 2]))
            .ni(NiSpec::new(TCP1, [10, 1, 0, 2])),
    );
    let mut cfg = rcfg(0);
    cfg.tiny_router_buffers = 8;
    cfg.small_router_buffers = 16;
    cfg.large_router_buffers = 4;
    f.call(r, |l, now| l.set_router_config(now, cfg.clone()));
    assert_eq!(f.inspect(r, |l| l.router_pools()), None);
    assert_eq!(f.inspect(r, |l| l.router_buffers_allocated()), [0, 0, 0]);
    // Enabling allocates every buffer at once, before any traffic.
    f.call(r, |l, now| l.set_routing(now, true, false));
    assert_eq!(f.inspect(r, |l| l.router_buffers_allocated()), [8, 16, 4]);
    let pools = f.inspect(r, |l| l.router_pools()).expect("pools");
    assert_eq!(
        pools.map(|p| (p.nbuffers, p.credits, p.min_credits)),
        [(8, 8, 8), (16, 16, 16), (4, 4, 4)]
    );
    // Growing allocates the difference at once; shrinking frees at once.
    cfg.small_router_buffers = 32;
    cfg.large_router_buffers = 2;
    f.call(r, |l, now| l.set_router_config(now, cfg.clone()));
    assert_eq!(f.inspect(r, |l| l.router_buffers_allocated()), [8, 32, 2]);
    let pools = f.inspect(r, |l| l.router_pools()).expect("pools");
    assert_eq!(
        pools.map(|p| (p.nbuffers, p.credits)),
        [(8, 8), (32, 32), (2, 2)]
    );
    f.call(r, |l, now| l.set_router_buffers(now, PoolKind::Tiny, 3))
        .expect("set tiny");
    assert_eq!(f.inspect(r, |l| l.router_buffers_allocated())[0], 3);
    // Disabling: once stopped, the buffers are freed and the pools show none.
    f.call(r, |l, now| l.set_routing(now, false, false));
    assert_eq!(f.inspect(r, |l| l.router_buffers_allocated()), [3, 32, 2]);
    // (checker interval 0 + ping timeout 10 s: stopped after 10 s)
    f.run_for(Duration::from_secs(30));
    assert_eq!(f.inspect(r, |l| l.routing_state()), RoutingState::Disabled);
    assert_eq!(f.inspect(r, |l| l.router_buffers_allocated()), [0, 0, 0]);
    let pools = f
        .inspect(r, |l| l.router_pools())
        .expect("pools stay listed");
    assert_eq!(
        pools.map(|p| (p.nbuffers, p.credits)),
        [(0, 0), (0, 0), (0, 0)]
    );
    // `set large_buffers` while routing is off: success, no effect
    // (lnetctl.md §2.8); the next enable allocates the configured sizes.
    f.call(r, |l, now| l.set_router_buffers(now, PoolKind::Large, 5))
        .expect("set large");
    assert_eq!(f.inspect(r, |l| l.router_buffers_allocated()), [0, 0, 0]);
    f.call(r, |l, now| l.set_routing(now, true, true));
    assert_eq!(f.inspect(r, |l| l.router_buffers_allocated()), [3, 32, 2]);
    let pools = f.inspect(r, |l| l.router_pools()).expect("pools");
    assert_eq!(
        pools.map(|p| (p.nbuffers, p.credits)),
        [(3, 3), (32, 32), (2, 2)]
    );
}

/// The gateway peer NI's health after the client's traffic (0..=1000).
fn gateway_health(f: &Fabric, node: usize, gw: Nid) -> u32 {
    f.inspect(node, |l| {
        l.peer(&gw)
            .and_then(|p| {
                p.peer_nis()
                    .find(|n| n.nid() == gw)
                    .map(|n| n.health_value())
            })
            .expect("gateway peer NI")
    })
}

#[test]
fn a_routes_health_sensitivity_is_its_gateways() {
    // Two routers; the client's route through r1 has health_sensitivity
    // 1000 (one failure takes its gateway to 0), through r2 the global 100.
    for sens in [Some(1000), None] {
        let mut f = Fabric::new(seed_from_env(1317));
        f.set_default_link(LinkParams::new().latency(Duration::from_micros(20)));
        let c = f.add_node(NodeSpec::new().ni(NiSpec::tcp([10, 0, 0, 1]).timeout(5)));
        let mut routers = Vec::new();
        for a in [2, 3] {
            routers.push(
                f.add_node(
                    NodeSpec::new()
                        .ni(NiSpec::tcp([10, 0, 0, a]).timeout(5))
                        .ni(NiSpec::new(TCP1, [10, 1, 0, a]).timeout(5)),
                ),
            );
        }
        let s = f.add_node(NodeSpec::new().ni(NiSpec::new(TCP1, [10, 1, 0, 9]).timeout(5)));
        for &r in &routers {
            enable_router(&mut f, r, rcfg(0));
        }
        for n in [c, s] {
            f.call(n, |l, now| l.set_router_config(now, rcfg(0)));
        }
        let (g1, g2) = (f.nid(routers[0], 0), f.nid(routers[1], 0));
        f.call(c, |l, now| l.route_add(now, TCP1, g1, None, 0, sens))
            .expect("route via r1");
        f.call(c, |l, now| l.route_add(now, TCP1, g2, None, 0, None))
            .expect("route via r2");
        for &r in &routers {
            let gw = f.nid(r, 1);
            route(&mut f, s, TCP, gw, 0);
        }
        // Discovery first (its ping and push cross a router too), then the
        // counters start from zero.
        discovered_through_routes(&mut f, &[(c, s)]);
        let shown = f.inspect(c, |l| l.routes());
        let r1 = shown.iter().find(|r| r.gateway == g1).expect("r1 route");
        assert_eq!(r1.health_sensitivity, sens.unwrap_or(100));
        // r1 is cut off from the client: the PUT it is given times out.
        let (t0, cn) = (f.now(), f.nid(c, 0));
        f.cut_link(cn, g1, t0, None);
        for i in 0..4u64 {
            f.post(s, 5, i, 64, MdOptions::OP_PUT, Threshold::Count(1));
            let (md, _) = f.bind(c, &pattern(64, i as u8), Threshold::Count(1));
            f.put(c, md, AckReq::NoAck, f.pid(s), 5, i, 0).expect("put");
            f.run_for(Duration::from_secs(10));
        }
        let failed = f
            .take_md_events(c)
            .iter()
            .filter(|e| e.kind == EventKind::Send && e.status != 0)
            .count();
        assert_eq!(failed, 1, "one PUT went to r1 before its health fell");
        // The gateway's health fell by its route's sensitivity, and
        // selection now prefers the healthier gateway: everything else
        // went through r2.
        // Each failure (the PUT, then the recovery pings that cross the cut,
        // §8.6) costs the gateway its route's sensitivity.
        let h = gateway_health(&f, c, g1);
        match sens {
            Some(_) => assert_eq!(h, 0),
            None => assert!(
                (1..1000).contains(&h) && (1000 - h) % 100 == 0,
                "health {h}: lowered 100 per failure"
            ),
        }
        assert_eq!(gateway_health(&f, c, g2), 1000);
        assert_eq!(f.inspect(routers[1], |l| l.stats().route_count), 3);
    }
}

/// Whether node `node`'s NI `k` is up (its ping-buffer status, `net show`).
fn ni_up(f: &Fabric, node: usize, k: usize) -> bool {
    let nid = f.nid(node, k);
    f.inspect(node, |l| {
        let view = l.nis().find(|n| n.nid() == nid).map(|n| n.is_up());
        let ping = l
            .ping_info()
            .and_then(|p| p.nis.iter().find(|s| s.nid == nid).map(|s| s.is_up()));
        assert_eq!(view, ping, "net show and the ping buffer agree");
        view.expect("the NI")
    })
}

#[test]
fn a_routers_nets_unheard_for_a_while_are_marked_down() {
    // Router r: checker interval 0, ping timeout 10 s, so a net that hears
    // no ping for 10 s has its NIs marked down (§7.7). The client pings r
    // on tcp every 5 s; nobody pings it on tcp1 at first.
    let mut f = one_router(1318, 0);
    let (c, r, s) = (0, 1, 2);
    f.call(c, |l, now| l.set_router_config(now, rcfg(5)));
    assert!(ni_up(&f, r, 0) && ni_up(&f, r, 1), "up when routing starts");
    f.run_for(Duration::from_secs(30));
    assert!(ni_up(&f, r, 0), "tcp hears the client's pings");
    assert!(!ni_up(&f, r, 1), "tcp1 heard nobody");
    // The client sees r's tcp1 NI down in r's ping reply: with
    // avoid_asym_router_failure its route to tcp1 is down.
    let g = f.nid(r, 0);
    let alive = |f: &Fabric| {
        f.inspect(c, |l| {
            l.routes()
                .iter()
                .find(|x| x.gateway == g)
                .expect("route")
                .alive
        })
    };
    assert!(!alive(&f));
    // The server starts checking its gateway (r on tcp1): the net is heard,
    // its NI comes up at once, and the client's route follows at its next
    // check.
    f.call(s, |l, now| l.set_router_config(now, rcfg(5)));
    f.run_for(Duration::from_secs(12));
    assert!(ni_up(&f, r, 1));
    assert!(alive(&f));
    // The server stops checking and is cut off from the router (connected,
    // it would be pushed r's tcp1 status going DOWN, count it as a peer NI
    // failure and recovery-ping it, which revives the net, §8.6, §9.5):
    // tcp1 is unheard again and goes down.
    f.call(s, |l, now| l.set_router_config(now, rcfg(0)));
    let now = f.now();
    f.partition(&[s], &[r], now, None);
    f.run_for(Duration::from_secs(30));
    assert!(!ni_up(&f, r, 1));
    // Routing off: no NI is marked any more.
    f.call(r, |l, now| l.set_routing(now, false, true));
    assert!(ni_up(&f, r, 0) && ni_up(&f, r, 1));
}

/// client(0) — router(1) — server(2) as in [`one_router`], but the router's
/// tcp1 interface is down when the client first checks it (a veth whose
/// carrier comes up after the NI started, bench S4). Checker every 30 s,
/// `router_ping_timeout` 50 s (so the router's own unheard-net marking,
/// after 80 s, stays out of the way).
fn router_far_ni_late(seed: u64, discovery: bool) -> Fabric {
    let mut f = Fabric::new(seed_from_env(seed));
    f.set_default_link(LinkParams::new().latency(Duration::from_micros(20)));
    let mut t = GlobalTunables::default();
    t.peer_discovery_disabled = !discovery;
    let c = f.add_node(
        NodeSpec::new()
            .tunables(t.clone())
            .ni(NiSpec::tcp([10, 0, 0, 1])),
    );
    let r = f.add_node(
        NodeSpec::new()
            .tunables(t.clone())
            .ni(NiSpec::tcp([10, 0, 0, 2]))
            .ni(NiSpec::new(TCP1, [10, 1, 0, 2])),
    );
    f.add_node(
        NodeSpec::new()
            .tunables(t)
            .ni(NiSpec::new(TCP1, [10, 1, 0, 3])),
    );
    // The router's far NI starts without carrier.
    f.set_ni_link(r, 1, false);
    let mut cfg = rcfg(30);
    cfg.router_ping_timeout = 50;
    enable_router(&mut f, r, cfg.clone());
    f.call(c, |l, now| l.set_router_config(now, cfg));
    let g = f.nid(r, 0);
    route(&mut f, c, TCP1, g, 0);
    // The first check sees tcp1 down: with avoid_asym_router_failure the
    // route is down, the gateway itself alive.
    f.run_for(Duration::from_secs(5));
    assert_eq!(f.inspect(c, |l| l.gateway_alive(&g)), Some(true));
    assert!(!route_up(&f, c, g), "the router's tcp1 NI is down");
    f
}

fn route_up(f: &Fabric, node: usize, gw: Nid) -> bool {
    f.inspect(node, |l| {
        l.routes()
            .iter()
            .find(|x| x.gateway == gw)
            .expect("route")
            .alive
    })
}

#[test]
fn with_discovery_a_routers_late_interface_is_pushed_and_its_route_comes_up_at_once() {
    let mut f = router_far_ni_late(1319, true);
    let (c, r) = (0, 1);
    let g = f.nid(r, 0);
    // The check was a discovery of the gateway: the client knows both of
    // its NIDs, and the router knows the client (it was pushed to).
    let nids = f.inspect(c, |l| {
        l.peer(&g)
            .map(|p| p.peer_nis().map(|x| x.nid()).collect::<Vec<_>>())
    });
    assert_eq!(nids, Some(vec![g, f.nid(r, 1)]));
    let state = f.inspect(c, |l| l.peer(&g).expect("gateway").state());
    assert_ne!(state & PeerState::RTR_DISCOVERED, 0, "state {state:#x}");
    assert_eq!(state & PeerState::RTR_DISCOVERY, 0, "state {state:#x}");
    let cn = f.nid(c, 0);
    assert!(
        f.inspect(r, |l| l
            .peer(&cn)
            .is_some_and(|p| p.multi_rail() && p.discovered())),
        "the client pushed to the router"
    );
    // Carrier comes up: the router pushes its new ping buffer to the
    // client, whose route follows at once, long before the next check.
    let before = f.link_stats(g, f.nid(c, 0)).sent;
    f.set_ni_link(r, 1, true);
    f.run_for(Duration::from_secs(1));
    assert!(route_up(&f, c, g), "pushed: the route is up within 1 s");
    assert!(
        f.link_stats(g, f.nid(c, 0)).sent > before,
        "the router sent its push"
    );
    // And it goes down the same way when the carrier goes again.
    f.set_ni_link(r, 1, false);
    f.run_for(Duration::from_secs(1));
    assert!(!route_up(&f, c, g), "pushed: the route is down within 1 s");
    assert_eq!(f.inspect(c, |l| l.gateway_alive(&g)), Some(true));
}

#[test]
fn without_discovery_a_routers_late_interface_is_seen_at_the_next_check() {
    let mut f = router_far_ni_late(1320, false);
    let (c, r) = (0, 1);
    let g = f.nid(r, 0);
    f.set_ni_link(r, 1, true);
    f.run_for(Duration::from_secs(5));
    assert!(!route_up(&f, c, g), "no push without discovery");
    // The next router ping (30 s after the first) sees it.
    f.run_for(Duration::from_secs(25));
    assert!(route_up(&f, c, g), "up at the next check");
}
