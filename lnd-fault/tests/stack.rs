//! The fault filter stacked on an LND through lnd-api's filter extension:
//! what the inner LND and the engine see under each kind of rule.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lnd_api::abi_stable::std_types::ROption;
use lnd_api::hdr::{PutBody, BODY_SIZE};
use lnd_api::{
    errno, lnd_type, Completion, FilterHandle, Hdr, Host, HostHandle, IoBuf, Lnd, LndError,
    LndHandle, LndNi, LndNiHandle, LogLevel, MsgToken, MsgType, NetId, NetTunables, NiConfig,
    NiInfo, NiStarted, Nid, Payload, PayloadSpan, RxAction, RxToken, TxMsg, WireHandle,
};
use lnd_fault::FaultFilter;

const TCP: NetId = NetId::new(lnd_type::SOCKLND, 0);

fn nid(a: u32) -> Nid {
    Nid::new4(TCP, a)
}

#[derive(Default)]
struct Log(Mutex<Vec<String>>);

impl Log {
    fn push(&self, s: String) {
        self.0.lock().expect("log").push(s);
    }
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().expect("log"))
    }
    fn len(&self) -> usize {
        self.0.lock().expect("log").len()
    }
}

/// The wrapped LND: records sends and receive actions; keeps its host.
struct Inner {
    log: Arc<Log>,
    host: Arc<Mutex<Option<HostHandle>>>,
}

impl Lnd for Inner {
    fn startup(&self, cfg: NiConfig, host: HostHandle) -> Result<NiStarted, LndError> {
        *self.host.lock().expect("host") = Some(host);
        Ok(NiStarted {
            info: NiInfo {
                nid: Nid::new4(cfg.net, 2),
                interfaces: Vec::new().into(),
                tunables: NetTunables::UNSET,
                lnd_tunables: Vec::new().into(),
                timeout_secs: 50,
            },
            ni: LndNiHandle::new(InnerNi(self.log.clone())),
        })
    }
}

struct InnerNi(Arc<Log>);

impl LndNi for InnerNi {
    fn send(&self, tx: TxMsg) -> Result<(), LndError> {
        let (tx, p) = tx.split_payload();
        self.send_span(tx, p)
    }
    fn send_span(&self, tx: TxMsg, payload: PayloadSpan) -> Result<(), LndError> {
        self.0
            .push(format!("lnd send {} ({} bytes)", tx.token.0, payload.len()));
        Ok(())
    }
    fn recv(&self, rx: RxAction) -> Result<(), LndError> {
        self.0.push(format!(
            "lnd recv {} {} rlen {}{}",
            rx.rx.0,
            if matches!(rx.msg, ROption::RSome(_)) {
                "deliver"
            } else {
                "discard"
            },
            rx.rlen,
            if rx.delayed { " delayed" } else { "" }
        ));
        Ok(())
    }
    fn shutdown(&self) {
        self.0.push("lnd shutdown".into());
    }
}

/// The engine.
struct Engine(Arc<Log>);

impl Host for Engine {
    fn parse(&self, hdr: Hdr, _: Nid, rx: RxToken, _: bool) -> Result<(), LndError> {
        self.0.push(format!("engine parse {}", rx.0));
        if hdr.payload_length == 666 {
            return Err(LndError::new(errno::EPROTO, "bad header"));
        }
        Ok(())
    }
    fn finalize(&self, msg: MsgToken, status: Completion) {
        self.0.push(format!(
            "engine finalize {} {} {}",
            msg.0,
            status.errno,
            status.health.name()
        ));
    }
    fn notify(&self, _: Nid, _: bool) {}
    fn link_state(&self, _: bool) {}
    fn log(&self, _: LogLevel, _: &str) {}
}

fn hdr(t: MsgType, src: u32, portal: u32) -> Hdr {
    let body: [u8; BODY_SIZE] = PutBody {
        ack_wmd: WireHandle::NONE,
        match_bits: 0,
        hdr_data: 0,
        ptl_index: portal,
        offset: 0,
    }
    .to_body();
    Hdr {
        dest_nid: nid(2),
        src_nid: nid(src),
        dest_pid: 12345,
        src_pid: 12345,
        msg_type: t,
        payload_length: 8,
        body,
    }
}

fn tx(token: u64) -> (TxMsg, PayloadSpan) {
    (
        TxMsg {
            token: MsgToken(token),
            hdr: Hdr {
                src_nid: nid(2),
                dest_nid: nid(3),
                ..hdr(MsgType::PUT, 2, 4)
            },
            target: nid(3),
            target_pid: 12345,
            payload: Payload::new(),
            rx: ROption::RNone,
        },
        PayloadSpan::from(IoBuf::from_vec(vec![7; 8])),
    )
}

/// A node: the fault filter on a virtual clock, wrapping one NI of `Inner`.
struct Node {
    filter: FaultFilter,
    clock: Arc<AtomicU64>,
    ni: LndNiHandle,
    lnd_host: HostHandle,
    log: Arc<Log>,
}

impl Node {
    fn new() -> Node {
        let clock = Arc::new(AtomicU64::new(1_000_000));
        let c = clock.clone();
        let filter = FaultFilter::with_clock(
            7,
            Arc::new(move || Duration::from_millis(c.load(Ordering::SeqCst))),
            false,
        );
        let log = Arc::new(Log::default());
        let host = Arc::new(Mutex::new(None));
        let lnd = LndHandle::new(Inner {
            log: log.clone(),
            host: host.clone(),
        });
        let started = FilterHandle::new(filter.clone())
            .startup(&lnd, cfg(), HostHandle::new(Engine(log.clone())))
            .expect("startup");
        assert_eq!(started.info.nid, nid(2));
        let lnd_host = host.lock().expect("host").clone().expect("started");
        Node {
            filter,
            clock,
            ni: started.ni,
            lnd_host,
            log,
        }
    }

    fn ctl(&self, cmd: &str, arg: &str) -> String {
        self.filter.control(cmd, arg).expect("control")
    }

    fn advance(&self, ms: u64) {
        self.clock.fetch_add(ms, Ordering::SeqCst);
        self.filter.poll();
    }

    fn send(&self, token: u64) {
        let (tx, p) = tx(token);
        self.ni.send_span(tx, p).expect("send");
    }

    fn arrive(&self, rx: u64, t: MsgType, src: u32) {
        self.lnd_host
            .parse(hdr(t, src, 4), nid(src), RxToken(rx), false)
            .expect("parse");
    }
}

fn cfg() -> NiConfig {
    NiConfig {
        net: TCP,
        interfaces: Vec::new().into(),
        tunables: NetTunables::UNSET,
        lnd_tunables: Vec::new().into(),
        params: Vec::new().into(),
        pid: 12345,
    }
}

#[test]
fn without_rules_everything_passes() {
    let n = Node::new();
    n.send(1);
    n.arrive(10, MsgType::PUT, 3);
    assert_eq!(
        n.log.take(),
        vec!["lnd send 1 (8 bytes)".to_string(), "engine parse 10".into()]
    );
}

#[test]
fn receive_drops_discard_the_payload_and_count() {
    let n = Node::new();
    n.ctl(
        "drop_add",
        "src=0.0.0.3@tcp dst=<?> rate=1 local_nid=0.0.0.2@tcp",
    );
    n.arrive(10, MsgType::PUT, 3);
    n.arrive(11, MsgType::GET, 4); // another source
    n.send(1); // not on the send path
    assert_eq!(
        n.log.take(),
        vec![
            "lnd recv 10 discard rlen 8".to_string(),
            "engine parse 11".into(),
            "lnd send 1 (8 bytes)".into(),
        ]
    );
    assert!(n
        .ctl("drop_show", "")
        .contains("      ds_dropped: 1\n      fs_count: 1\n      fs_put: 1\n"));
    // A rule for another local NI does not act here.
    n.ctl("drop_del", "all");
    n.ctl("drop_add", "src=<?> dst=<?> rate=1 local_nid=10.0.0.9@tcp");
    n.arrive(12, MsgType::PUT, 3);
    assert_eq!(n.log.take(), vec!["engine parse 12".to_string()]);
}

#[test]
fn health_drops_fail_the_send_with_the_status() {
    let n = Node::new();
    // 1 << 8: remote_dropped.
    n.ctl("drop_add", "src=<?> dst=<?> rate=1 health_mask=0x100");
    n.send(1);
    n.arrive(10, MsgType::PUT, 3); // health rules never act on receive
    assert_eq!(
        n.log.take(),
        vec![
            "engine finalize 1 -5 remote_dropped".to_string(),
            "engine parse 10".into(),
        ]
    );
}

#[test]
fn delayed_sends_and_receives_continue_in_order_when_due() {
    let n = Node::new();
    n.ctl("delay_add", "src=<?> dst=<?> rate=1 latency=2");
    n.send(1);
    n.advance(500);
    n.arrive(10, MsgType::PUT, 3);
    n.send(2);
    assert_eq!(n.log.len(), 0, "all held");
    assert_eq!(
        n.filter.next_due(),
        Some(Duration::from_millis(1_000_000 + 2000))
    );
    n.advance(1499);
    assert_eq!(n.log.len(), 0, "not yet due");
    n.advance(1);
    assert_eq!(n.log.take(), vec!["lnd send 1 (8 bytes)".to_string()]);
    n.advance(500);
    assert_eq!(
        n.log.take(),
        vec!["engine parse 10".to_string(), "lnd send 2 (8 bytes)".into()]
    );
    assert!(n.ctl("delay_show", "").contains("      ls_delayed: 3\n"));
}

#[test]
fn deleting_a_delay_rule_releases_at_once() {
    let n = Node::new();
    n.ctl("delay_add", "src=<?> dst=<?> rate=1 latency=100");
    n.send(1);
    n.arrive(10, MsgType::GET, 3);
    assert_eq!(n.ctl("delay_del", "src=<?> dst=<?>"), "1");
    assert_eq!(
        n.log.take(),
        vec!["lnd send 1 (8 bytes)".to_string(), "engine parse 10".into()]
    );
    // No rule left: the data path is direct again.
    n.send(2);
    assert_eq!(n.log.take(), vec!["lnd send 2 (8 bytes)".to_string()]);
}

#[test]
fn a_delayed_header_the_engine_refuses_is_discarded() {
    let n = Node::new();
    n.ctl("delay_add", "src=<?> dst=<?> rate=1 latency=1");
    let mut h = hdr(MsgType::PUT, 3, 4);
    h.payload_length = 666;
    n.lnd_host
        .parse(h, nid(3), RxToken(20), false)
        .expect("taken");
    n.advance(1000);
    assert_eq!(
        n.log.take(),
        vec![
            "engine parse 20".to_string(),
            "lnd recv 20 discard rlen 666 delayed".into()
        ]
    );
}

#[test]
fn shutdown_cancels_what_the_ni_holds() {
    let n = Node::new();
    n.ctl("delay_add", "src=<?> dst=<?> rate=1 latency=100");
    n.send(1);
    n.arrive(10, MsgType::PUT, 3);
    n.ni.shutdown();
    assert_eq!(
        n.log.take(),
        vec![
            "engine finalize 1 -125 local_aborted".to_string(),
            "lnd recv 10 discard rlen 8 delayed".into(),
            "lnd shutdown".into(),
        ]
    );
    assert!(n.filter.next_due().is_none());
}

#[test]
fn clear_drops_every_rule_and_releases_held_messages() {
    let n = Node::new();
    n.ctl("delay_add", "src=<?> dst=<?> rate=1 latency=100");
    n.ctl("drop_add", "src=<?> dst=<?> rate=1");
    n.send(1);
    n.ctl("clear", "");
    assert_eq!(n.ctl("drop_show", ""), "");
    assert_eq!(n.ctl("delay_show", ""), "");
    n.arrive(10, MsgType::PUT, 3);
    assert_eq!(
        n.log.take(),
        vec!["lnd send 1 (8 bytes)".to_string(), "engine parse 10".into()]
    );
}

/// The plugin as built: loaded from its `.so`, offering the filter
/// extension, with its own delay thread on the real clock.
#[test]
fn the_plugin_so_offers_the_filter_and_releases_delays_on_its_own() {
    let so = lnd_test_host::bins::built("liblnd_fault.so");
    let plugin = lnd_api::load_plugin(&so).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(plugin.name(), "lnd-fault");
    assert!(plugin.net_types().is_empty());
    assert!(plugin.offers_filter());
    let e = plugin.new_lnd("tcp").err().expect("no LND");
    assert!(e.message.contains("provides no network type"), "{e}");
    let filter = plugin.ni_filter().expect("layout").expect("offered");

    let log = Arc::new(Log::default());
    let host = Arc::new(Mutex::new(None));
    let lnd = LndHandle::new(Inner {
        log: log.clone(),
        host: host.clone(),
    });
    let started = filter
        .startup(&lnd, cfg(), HostHandle::new(Engine(log.clone())))
        .expect("startup");
    filter
        .ctl("delay_add", "src=<?> dst=<?> rate=1 latency=1")
        .expect("add");
    let e = filter
        .ctl("drop_add", "src=<?> dst=<?>")
        .expect_err("no rate");
    assert_eq!(e.errno, errno::EINVAL);
    let t0 = Instant::now();
    for token in 1..=3 {
        let (tx, p) = tx(token);
        started.ni.send_span(tx, p).expect("send");
    }
    // Held (unless this thread was descheduled past the latency).
    let held = log.len();
    if t0.elapsed() < Duration::from_millis(900) {
        assert_eq!(held, 0, "held");
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while log.len() < 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        t0.elapsed() >= Duration::from_secs(1),
        "held for the latency"
    );
    assert_eq!(
        log.take(),
        vec![
            "lnd send 1 (8 bytes)".to_string(),
            "lnd send 2 (8 bytes)".into(),
            "lnd send 3 (8 bytes)".into(),
        ]
    );
    assert!(filter
        .ctl("delay_show", "")
        .expect("show")
        .contains("      ls_delayed: 3\n"));
    filter.ctl("delay_del", "all").expect("del");
    started.ni.shutdown();
}

#[test]
fn network_types_named_by_the_host_parse_and_print_by_name() {
    let f = FaultFilter::with_clock(1, Arc::new(Duration::default), false);
    let e = f
        .control("drop_add", "src=*@vnd dst=<?> rate=1")
        .expect_err("vnd unknown yet");
    assert_eq!(e.errno, errno::EINVAL);
    f.control("net_types", "vnd=240").expect("names");
    f.control("drop_add", "src=*@vnd dst=7@vnd1 rate=1")
        .expect("add");
    let show = f.control("drop_show", "").expect("show");
    assert!(
        show.contains("      fa_src: 4294967295@vnd\n      fa_dst: 7@vnd1\n"),
        "{show}"
    );
    // As lnetctl writes a NID of a type it printed without its name.
    f.control("drop_add", "src=ffffffff@<240:0> dst=<?> rate=1")
        .expect("add");
    assert!(f.control("drop_show", "").expect("show").starts_with(
        "fault:\n-     rule_type: drop\n      fa_src: 4294967295@vnd\n      fa_dst: <?>\n"
    ));
    let e = f.control("net_types", "vnd").expect_err("malformed");
    assert!(e.message.contains("NAME=TYPE"), "{e}");
}
