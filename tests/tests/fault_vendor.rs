//! Fault rules on the NIs of the vendor plugin *as released against lnd-api
//! 1.0.0* (no extension of any kind): lnetd stacks lnd-fault on them all the
//! same, and pings between two in-process nodes show each rule acting.

use std::path::Path;
use std::time::{Duration, Instant};

use lnd_api::{NetTunables, Nid};
use lnet_tests::plugin_build::{released_1_0_so as released_so, RELEASED_1_0_NET as OLD_NET};
use lnet_tests::wait_for;
use lnetd::node::{NetAdd, Node, NodeConfig};

/// The directory holding `liblnd_fault.so` of this build (built on first
/// use).
fn fault_dir() -> &'static Path {
    lnet_tests::bins::fault_plugin()
        .parent()
        .expect("the build directory")
}

fn start() -> (Node, Nid) {
    let node = Node::start(NodeConfig {
        plugin_path: vec![fault_dir().to_path_buf()],
        params: Vec::new(),
        pid: lnet_core::LNET_PID_LUSTRE,
        ..NodeConfig::default()
    })
    .expect("node starts");
    node.plugin_load(released_so())
        .unwrap_or_else(|e| panic!("the plugin does not load: {e}"));
    let nids = node
        .net_add(NetAdd {
            net: OLD_NET.into(),
            interfaces: vec!["fab0".into()],
            tunables: NetTunables::UNSET,
            lnd_tunables: Vec::new(),
        })
        .unwrap_or_else(|e| panic!("net add: {e}"));
    (node, nids[0])
}

fn ctl(node: &Node, cmd: &str, arg: &str) -> String {
    node.fault_ctl(&[fault_dir().to_path_buf()], cmd, arg)
        .unwrap_or_else(|e| panic!("fault {cmd} {arg}: {e}"))
}

fn ping(from: &Node, to: Nid, secs: u64) -> Result<Duration, String> {
    let t0 = Instant::now();
    from.ping(to, None, None, Duration::from_secs(secs))
        .map(|_| t0.elapsed())
        .map_err(|e| e.to_string())
}

#[test]
fn rules_act_on_the_nis_of_a_1_0_plugin() {
    let loaded = lnd_api::load_plugin(released_so()).expect("loads");
    assert!(!loaded.offers_spans() && !loaded.offers_filter());
    let (a, _a_nid) = start();
    let (b, b_nid) = start();
    ping(&a, b_nid, 30).expect("no rule: the ping answers");

    // A receive drop at b: the ping never answers; b counts it.
    ctl(&b, "drop_add", "src=<?> dst=<?> rate=1 msg_mask=0x4");
    let e = ping(&a, b_nid, 2).expect_err("dropped at b");
    assert!(!e.is_empty());
    // (The ping gave up after 2 s: on a loaded machine b may drop the GET
    // later still.)
    let show = wait_for("b to drop the GET", Duration::from_secs(60), || {
        let show = ctl(&b, "drop_show", "");
        if show.contains("      ds_dropped: 1\n") {
            Ok(show)
        } else {
            Err(show)
        }
    });
    assert!(show.contains("      fs_get: 1\n"), "{show}");
    ctl(&b, "drop_del", "all");
    ping(&a, b_nid, 30).expect("rule deleted");

    // A health error on send at a: the ping fails at once, no resend.
    ctl(&a, "drop_add", "src=<?> dst=<?> rate=1 health_mask=0x20");
    let t0 = Instant::now();
    ping(&a, b_nid, 30).expect_err("send failed");
    assert!(
        t0.elapsed() < Duration::from_secs(25),
        "failed, not timed out"
    );
    ctl(&a, "drop_del", "all");

    // A delay at a: the ping answers, a second late at least. (The rule
    // names b: a's NI, hurt by the failure above, pings itself to recover,
    // and those GETs are not this test's.)
    ctl(
        &a,
        "delay_add",
        &format!("src=<?> dst={b_nid} rate=1 latency=1 msg_mask=0x4"),
    );
    let took = ping(&a, b_nid, 30).expect("delayed, answered");
    assert!(took >= Duration::from_secs(1), "{took:?}");
    let show = ctl(&a, "delay_show", "");
    assert!(show.contains("      ls_delayed: 1\n"), "{show}");

    a.shutdown();
    b.shutdown();
}
