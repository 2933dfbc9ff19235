//! lnd-api's compatibility promise, across the real ABI boundary: "the base
//! interface is frozen at lnd-api 1.0.0 and grows only through named,
//! layout-checked extensions: a newer host still loads an older plugin".
//!
//! The example vendor plugin exactly as it was released against lnd-api
//! 1.0.0 (both sources taken from commit [`LND_API_1_0_0`] with `git
//! archive`), built out of tree against that lnd-api, loads into this LNet
//! and carries PUTs, GETs and a selftest brw between two nodes in this
//! process (the vendor LND's fabric is process-local), byte for byte. It
//! lacks the lnd-api 1.1 extension `lnd-api.span-io.v1`, so the host drives
//! its 1.0 objects and hands it a `Payload` per message. The current vendor
//! plugin offers the extension and takes `PayloadSpan`s; it runs the same
//! traffic. And the other way round: a minimal host built against lnd-api
//! 1.0.0 (`tests/fixtures/old_host.rs`) loads the current plugin and moves
//! PUTs through it.
//!
//! The memory is fragmented on both sides (fragments of 1, 4095, 3 and 65536
//! bytes, each its own allocation), and PUTs and GETs address a window in the
//! middle of the target MD (MANAGE_REMOTE with a remote offset), so payloads
//! are windows that start and end inside fragments.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use lnd_api::{IoBuf, NetTunables, Nid, Payload, Tunable};
use lnet_core::{AckReq, EventKind, MdEvent, MdOptions, MdSpec, Threshold, Unlink};
use lnet_selftest::wire::brw_check;
use lnet_selftest::{Targets, TestType};
use lnet_tests::lst::{add_test, nodes, session, wait_idle};
use lnet_tests::pattern::pattern;
use lnet_tests::plugin_build::{
    build_old_host, build_vendor_plugin, released_1_0_so as released_so, Interface, LND_API_1_0_0,
    LND_API_1_1_0, RELEASED_1_0_NAME as OLD_NAME, RELEASED_1_0_NET as OLD_NET,
};
use lnetd::host::PluginState;
use lnetd::node::{EqHandle, LstRequest, MatchSpec, NetAdd, Node, NodeConfig, Target};

const PORTAL: u32 = 11;
const T: Duration = Duration::from_secs(30);
/// Where PUTs and GETs land in the target MD: inside its second fragment.
const OFFSET: usize = 517;
/// Target MD bytes after the window, which must stay untouched.
const TAIL: usize = 33;
/// Payload sizes: empty, one byte, a page, the LNet MTU (1 MiB).
const SIZES: [usize; 4] = [0, 1, 4096, 1 << 20];

/// The vendor plugin as released against lnd-api 1.1.0 (renamed likewise).
fn released_1_1_so() -> &'static Path {
    static SO: OnceLock<PathBuf> = OnceLock::new();
    SO.get_or_init(|| {
        build_vendor_plugin(
            "released-1.1.0",
            Interface::Released(LND_API_1_1_0),
            "vendor-lnd-1-1",
            "vmid",
        )
        .so
    })
}

fn current_so() -> &'static Path {
    static SO: OnceLock<PathBuf> = OnceLock::new();
    SO.get_or_init(|| build_vendor_plugin("same", Interface::Same, "vendor-lnd", "vnd").so)
}

/// A node that loads the plugin `so` explicitly (as `lnetctl plugin load`
/// does) and adds one NI of `net`.
fn start(so: &Path, net: &str) -> (Node, Nid) {
    let node = Node::start(NodeConfig {
        plugin_path: Vec::new(),
        params: vec![("rpc_timeout".into(), "30".into())],
        pid: lnet_core::LNET_PID_LUSTRE,
        ..NodeConfig::default()
    })
    .expect("node starts");
    // Display, not Debug: the loader's message with its filtered Error:
    // lines (the Debug form carries abi_stable's whole layout report).
    node.plugin_load(so)
        .unwrap_or_else(|e| panic!("the plugin does not load: {e}"));
    let nids = node
        .net_add(NetAdd {
            net: net.into(),
            interfaces: vec!["fab0".into()],
            tunables: NetTunables::UNSET,
            lnd_tunables: Vec::new(),
        })
        .unwrap_or_else(|e| panic!("net add {net}: {e}"));
    (node, nids[0])
}

/// What `plugin show` says of the plugin `name`: (version, abi_version,
/// net types, state, NIs).
fn show(node: &Node, name: &str) -> (String, String, Vec<String>, PluginState, Vec<Nid>) {
    let p = node
        .plugins()
        .into_iter()
        .find(|p| p.info.name == name)
        .unwrap_or_else(|| panic!("plugin show lists {name}"));
    (
        p.info.version,
        p.info.abi_version,
        p.info.net_types,
        p.info.state,
        p.nis,
    )
}

/// `data` as an MD's memory: fragments of 1, 4095, 3 and 65536 bytes in
/// turn, each its own allocation (so that every fragment can be borrowed on
/// its own).
fn fragments(data: &[u8]) -> Vec<IoBuf> {
    let mut out = Vec::new();
    let mut rest = data;
    for n in [1usize, 4095, 3, 65536].into_iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (head, tail) = rest.split_at(n.min(rest.len()));
        out.push(IoBuf::from_vec(head.to_vec()));
        rest = tail;
    }
    out
}

fn payload(frags: &[IoBuf]) -> Payload {
    frags.iter().cloned().collect()
}

/// The bytes of a fragmented memory, in order.
fn bytes(frags: &[IoBuf]) -> Vec<u8> {
    frags
        .iter()
        .flat_map(|f| f.to_vec().expect("the MD is idle"))
        .collect()
}

/// The first differing byte, for a readable failure on megabyte buffers.
fn same_bytes(got: &[u8], want: &[u8], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    if let Some(i) = got.iter().zip(want).position(|(g, w)| g != w) {
        panic!(
            "{what}: byte {i} of {} is {} instead of {}",
            want.len(),
            got[i],
            want[i]
        );
    }
}

/// Waits for events until each of `kinds` came (in any order) or one failed.
fn events_until(eq: &EqHandle, kinds: &[EventKind]) -> Vec<MdEvent> {
    let mut out: Vec<MdEvent> = Vec::new();
    loop {
        let ev = eq
            .wait(T)
            .unwrap_or_else(|| panic!("no event after {out:?}"));
        out.push(ev);
        if ev.status != 0 || kinds.iter().all(|k| out.iter().any(|e| e.kind == *k)) {
            return out;
        }
    }
}

fn event(evs: &[MdEvent], kind: EventKind) -> MdEvent {
    *evs.iter()
        .find(|e| e.kind == kind)
        .unwrap_or_else(|| panic!("no {kind:?} in {evs:?}"))
}

/// For each size: a PUT from `a` into a window in the middle of an MD of
/// `b`, then a GET of the same window back into a fresh MD of `a`; every
/// byte is checked, and the bytes around the window stay untouched. Then a
/// PUT longer than its target MD, truncated on the receiving side (the LND
/// gets a receive buffer shorter than what was sent).
fn put_and_get(a: &Node, b: &Node, b_nid: Nid) {
    let (a_eq, b_eq) = (a.eq_alloc(), b.eq_alloc());
    for (i, size) in SIZES.into_iter().enumerate() {
        let mb = 0x100 + i as u64;
        let data = pattern(mb, size);

        // The target: zeroes around the window; one PUT and one GET, then
        // it unlinks itself.
        let target = fragments(&vec![0; OFFSET + size + TAIL]);
        let spec = MdSpec::new(
            payload(&target),
            MdOptions::OP_PUT | MdOptions::OP_GET | MdOptions::MANAGE_REMOTE,
            Threshold::Count(2),
        );
        b.md_attach(MatchSpec::new(PORTAL, mb), spec, Unlink::Unlink, &b_eq)
            .expect("attach the target MD");
        let to = Target {
            offset: OFFSET as u32,
            ..Target::new(b_nid, PORTAL, mb)
        };

        let spec = MdSpec::new(
            payload(&fragments(&data)),
            MdOptions::NONE,
            Threshold::Count(2),
        );
        let md = a.md_bind(spec, Unlink::Unlink, &a_eq).expect("bind");
        a.put(md, AckReq::Ack, to, 0x5eed).expect("put");
        let evs = events_until(&a_eq, &[EventKind::Send, EventKind::Ack]);
        assert!(evs.iter().all(|e| e.status == 0), "size {size}: {evs:?}");
        assert_eq!(event(&evs, EventKind::Ack).mlength as usize, size);
        let ev = b_eq.wait(T).expect("PUT event");
        assert_eq!(
            (ev.kind, ev.status, ev.mlength, ev.rlength, ev.offset),
            (EventKind::Put, 0, size as u32, size as u32, OFFSET as u32),
            "size {size}"
        );
        assert_eq!(ev.hdr_data, 0x5eed);
        let mut want = vec![0; OFFSET];
        want.extend_from_slice(&data);
        want.resize(OFFSET + size + TAIL, 0);
        same_bytes(&bytes(&target), &want, &format!("PUT of {size}"));

        let sink = fragments(&vec![0; size]);
        let spec = MdSpec::new(payload(&sink), MdOptions::NONE, Threshold::Count(2));
        let md = a.md_bind(spec, Unlink::Unlink, &a_eq).expect("bind");
        a.get(md, to).expect("get");
        let evs = events_until(&a_eq, &[EventKind::Send, EventKind::Reply]);
        assert!(evs.iter().all(|e| e.status == 0), "size {size}: {evs:?}");
        assert_eq!(event(&evs, EventKind::Reply).mlength as usize, size);
        let ev = b_eq.wait(T).expect("GET event");
        assert_eq!(
            (ev.kind, ev.status, ev.mlength, ev.offset, ev.unlinked),
            (EventKind::Get, 0, size as u32, OFFSET as u32, true),
            "size {size}"
        );
        same_bytes(&bytes(&sink), &data, &format!("GET of {size}"));
    }

    // Truncated: 10000 bytes sent, 4096 land, the rest is dropped.
    let mb = 0x200;
    let data = pattern(mb, 10_000);
    let target = fragments(&[0; 4096]);
    let spec = MdSpec::new(
        payload(&target),
        MdOptions::OP_PUT | MdOptions::TRUNCATE,
        Threshold::Count(1),
    );
    b.md_attach(MatchSpec::new(PORTAL, mb), spec, Unlink::Unlink, &b_eq)
        .expect("attach");
    let spec = MdSpec::new(
        payload(&fragments(&data)),
        MdOptions::NONE,
        Threshold::Count(2),
    );
    let md = a.md_bind(spec, Unlink::Unlink, &a_eq).expect("bind");
    a.put(md, AckReq::Ack, Target::new(b_nid, PORTAL, mb), 0)
        .expect("put");
    let evs = events_until(&a_eq, &[EventKind::Send, EventKind::Ack]);
    assert!(evs.iter().all(|e| e.status == 0), "{evs:?}");
    assert_eq!(event(&evs, EventKind::Ack).mlength, 4096);
    let ev = b_eq.wait(T).expect("PUT event");
    assert_eq!(
        (ev.kind, ev.status, ev.mlength, ev.rlength),
        (EventKind::Put, 0, 4096, 10_000)
    );
    same_bytes(&bytes(&target), &data[..4096], "truncated PUT");
    assert!(a_eq.is_empty() && b_eq.is_empty());
}

const KEY: u32 = 1010;

/// A selftest batch from `a` to `b` with full data checks: brw writes of
/// 64 KiB (the server fetches them with a bulk GET) and brw reads of 12 KiB
/// at offset 64 in the client's first page (the server PUTs them).
fn brw(a: &Node, a_nid: Nid, b: &Node, b_nid: Nid) {
    const LOOPS: i32 = 10;
    const UNITS: u32 = 2;
    session(a, KEY, "compat", a_nid, b_nid);
    for (write, size, offset) in [(true, 65536, 0), (false, 12288, 64)] {
        let brw = TestType::Brw {
            write,
            size,
            check: brw_check::FULL,
            offset,
        };
        add_test(a, KEY, "batch", LOOPS, UNITS, brw);
    }
    let (srv0, _) = b.selftest_counters();
    nodes(a.lst(LstRequest::Run {
        key: KEY,
        batch: "batch".into(),
        timeout: 0,
    }));
    wait_idle(a, KEY, "batch", Duration::from_secs(60));
    let c = nodes(a.lst(LstRequest::Stat {
        key: KEY,
        targets: Targets::Group("c".into()),
        timeout: 30,
    }));
    let (fw, rpc, _) = c[0].stat().expect("client stats");
    assert_eq!(fw.brw_errors, 0, "{fw:?}");
    assert_eq!(rpc.rpcs_dropped, 0, "{rpc:?}");
    let (srv, _) = b.selftest_counters();
    let n = LOOPS as u64 * u64::from(UNITS);
    assert_eq!(srv.bulk_get - srv0.bulk_get, n * 65536, "writes fetched");
    assert_eq!(srv.bulk_put - srv0.bulk_put, n * 12288, "reads sent");
    assert_eq!(srv.rpcs_dropped, 0);
    nodes(a.lst(LstRequest::EndSession { key: KEY }));
}

/// Two nodes on the plugin's fabric; `plugin show` on both says what the
/// plugin was built against.
fn two_nodes(so: &Path, name: &str, net: &str, version: &str, abi: &str) -> [(Node, Nid); 2] {
    [start(so, net), start(so, net)].map(|(node, nid)| {
        let (v, a, types, state, nis) = show(&node, name);
        assert_eq!(
            (v.as_str(), a.as_str(), types, state, nis),
            (
                version,
                abi,
                vec![net.to_string()],
                PluginState::Active,
                vec![nid]
            ),
            "plugin show of {name}"
        );
        (node, nid)
    })
}

/// The promise itself: the 1.0.0 plugin loads, has no span interface (the
/// host makes a fragment list per message for it), and carries everything.
#[test]
fn a_plugin_built_against_lnd_api_1_0_0_carries_puts_gets_and_brw() {
    assert_ne!(
        lnd_api::ABI_VERSION,
        "1.0.0",
        "this host must be newer than the plugin"
    );
    let loaded = lnd_api::load_plugin(released_so()).expect("the 1.0.0 plugin passes the checks");
    assert!(!loaded.offers_spans(), "1.0.0 had no span interface");
    assert_eq!(loaded.param_decls().map(<[_]>::len), Ok(0), "no parameters");
    loaded.set_params(&[]).expect("nothing to hand over");
    let [(a, a_nid), (b, b_nid)] = two_nodes(released_so(), OLD_NAME, OLD_NET, "0.3.1", "1.0.0");
    put_and_get(&a, &b, b_nid);
    brw(&a, a_nid, &b, b_nid);
    a.shutdown();
    b.shutdown();
}

/// A plugin built against lnd-api 1.1.0 (span I/O, before the parameter
/// extension) loads, takes spans, declares no parameters (a value meant for
/// it is refused), and carries PUTs and GETs.
#[test]
fn a_plugin_built_against_lnd_api_1_1_0_loads_without_parameters() {
    let loaded = lnd_api::load_plugin(released_1_1_so()).expect("the 1.1.0 plugin loads");
    assert!(loaded.offers_spans(), "1.1.0 has the span interface");
    assert_eq!(loaded.param_decls().map(<[_]>::len), Ok(0), "no parameters");
    loaded.set_params(&[]).expect("nothing to hand over");
    let e = loaded
        .set_params(&[Tunable::new("timeout", 5)])
        .expect_err("it has no parameters");
    assert!(
        e.message.contains("vendor-lnd-1-1 declares no parameters"),
        "{e:?}"
    );
    let [(a, _), (b, b_nid)] = two_nodes(
        released_1_1_so(),
        "vendor-lnd-1-1",
        "vmid",
        "0.4.0",
        "1.1.0",
    );
    put_and_get(&a, &b, b_nid);
    a.shutdown();
    b.shutdown();
}

/// The other direction: a host built against lnd-api 1.0.0 (its loader and
/// its interface, from the same commit) loads today's vendor plugin and
/// moves PUTs of 0 B to 300 KB between two of its NIs, byte for byte. The
/// plugin's 1.0 objects serve it (a 1.0 host never asks for the span
/// extension); they hand each message on to the plugin's span path.
#[test]
fn a_host_built_against_lnd_api_1_0_0_loads_the_current_plugin() {
    let host = build_old_host(LND_API_1_0_0);
    let out = std::process::Command::new(&host)
        .arg(current_so())
        .arg("vnd")
        .output()
        .expect("run the old host");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout,
        format!(
            "vendor-lnd built against lnd-api {}\nok {} bytes\n",
            lnd_api::ABI_VERSION,
            1 + 4096 + 300_000
        )
    );
}

#[test]
fn the_current_vendor_plugin_carries_puts_gets_and_brw() {
    let version = "0.4.0";
    let loaded = lnd_api::load_plugin(current_so()).expect("loads");
    assert!(loaded.offers_spans(), "built against this lnd-api: spans");
    let decls = loaded.param_decls().expect("its parameter table");
    let d: Vec<_> = decls
        .iter()
        .map(|d| (d.module(), d.name(), d.default(), d.min, d.max))
        .collect();
    assert_eq!(d, [("kvndlnd", "timeout", "50", 1, 86400)]);
    assert!(decls[0].check("0").is_err(), "below its range");
    let [(a, a_nid), (b, b_nid)] = two_nodes(
        current_so(),
        "vendor-lnd",
        "vnd",
        version,
        lnd_api::ABI_VERSION,
    );
    put_and_get(&a, &b, b_nid);
    brw(&a, a_nid, &b, b_nid);
    a.shutdown();
    b.shutdown();
}
