//! Issue 11 item 4, the fault filter: stacking the filter on an NI (its
//! `attach` and `bind`, plugin code) runs without the node's lock. The test
//! plugin (`tests/fixtures/slow_lnd.rs`, network type `slo`) also offers a
//! filter, which `fault` commands load as the fault filter; its wrap of an
//! NI waits until the test lets it go, then calls the host for that NI from
//! another thread and waits for the call. Meanwhile a ping over `0@lo` and
//! `net show` keep answering, and each wrap finishes instead of
//! deadlocking: for an NI running when the filter is loaded, and for one
//! added afterwards.

use std::path::{Path, PathBuf};
use std::time::Duration;

use lnd_api::Nid;
use lnet_tests::plugin_build::slow_plugin;
use lnet_tests::slow_lnd::{slo, slo_nid, wait_file, within};
use lnet_tests::TempDir;
use lnetd::host::PluginParam;
use lnetd::node::{Node, NodeConfig};

/// `0@lo` answers and `net show` lists the `slo` NIDs `want`, each within
/// the deadline (`hold` is released if not, so nothing stays stuck).
fn node_answers(node: &Node, hold: &Path, want: &[Nid]) {
    let release = |f: PathBuf| move || drop(std::fs::remove_file(f));
    let n = node.clone();
    let ping = within("a ping of 0@lo", release(hold.to_path_buf()), move || {
        n.ping(Nid::LO_0, None, None, Duration::from_secs(30))
    });
    assert_eq!(ping.expect("0@lo answers").primary_nid, want[0]);
    let n = node.clone();
    let nets = within("net show", release(hold.to_path_buf()), move || n.nets());
    let slo_net = nets.iter().find(|n| n.name == "slo").expect("slo shown");
    let shown: Vec<Nid> = slo_net.nis.iter().map(|n| n.nid).collect();
    assert_eq!(shown, want);
}

#[test]
fn a_slow_filter_wrap_that_calls_the_host_stalls_only_its_own_request() {
    let so = slow_plugin();
    let gates = TempDir::new("slow-filter");
    let gate = |f: &str| gates.join(f);
    let plugin_dir: PathBuf = so.parent().expect("plugin dir").to_path_buf();
    let node = Node::start(NodeConfig {
        plugin_path: vec![plugin_dir.clone()],
        plugin_params: vec![PluginParam {
            module: "kslolnd".into(),
            name: "gate_dir".into(),
            value: gates.path().display().to_string(),
        }],
        pid: 12345,
        ..NodeConfig::default()
    })
    .expect("node starts");
    let first = node.net_add(slo("a")).expect("an NI of the slow LND");
    assert_eq!(first, [slo_nid(1)]);

    // 1. The first `fault` command loads the filter and stacks it on the
    //    running NI: a slow wrap, which then calls the host.
    std::fs::write(gate("wrap.hold"), b"").expect("hold");
    let (n, path) = (node.clone(), vec![plugin_dir.clone()]);
    let fault = std::thread::spawn(move || n.fault_ctl(&path, "show", ""));
    wait_file(&gate("wrap.1.entered"));
    node_answers(&node, &gate("wrap.hold"), &[slo_nid(1)]);
    std::fs::remove_file(gate("wrap.hold")).expect("release");
    let out = within("the fault command", || {}, move || fault.join())
        .expect("fault thread")
        .expect("the filter answers");
    assert_eq!(out, "slow-lnd filter: show\n");

    // 2. An NI added once the filter is loaded is wrapped as it starts,
    //    before the engine knows it: the same slow wrap.
    std::fs::write(gate("wrap.hold"), b"").expect("hold");
    let n = node.clone();
    let add = std::thread::spawn(move || n.net_add(slo("b")));
    wait_file(&gate("wrap.2.entered"));
    node_answers(&node, &gate("wrap.hold"), &[slo_nid(1)]);
    std::fs::remove_file(gate("wrap.hold")).expect("release");
    let nids = within("net add under the filter", || {}, move || add.join())
        .expect("add thread")
        .expect("the second NI starts");
    assert_eq!(nids, [slo_nid(2)]);
    node_answers(&node, &gate("wrap.hold"), &[slo_nid(1), slo_nid(2)]);

    // 3. Each NI was wrapped once: another command wraps nothing.
    let n = node.clone();
    let path = vec![plugin_dir];
    within(
        "a second fault command",
        || {},
        move || n.fault_ctl(&path, "show", ""),
    )
    .expect("the filter answers");
    assert!(!gate("wrap.3.entered").exists(), "an NI wrapped twice");
    node.shutdown();
}
