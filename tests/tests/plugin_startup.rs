//! Issue 11 item 4: no plugin load and no LND `startup` under the node's
//! lock. A test plugin (`tests/fixtures/slow_lnd.rs`, network type `slo`)
//! holds its load and its NI start-up until the test lets them go; meanwhile
//! a ping over `0@lo` and `net show` keep answering, a second `net add` of
//! the same NI is refused and the plugin cannot be unloaded. A start-up that
//! calls the host (on the plugin's earlier NI, from another thread) finishes
//! instead of deadlocking.

use std::path::PathBuf;
use std::time::Duration;

use lnd_api::Nid;
use lnet_tests::plugin_build::slow_plugin;
use lnet_tests::slow_lnd::{slo, slo_nid, wait_file, within};
use lnet_tests::TempDir;
use lnetd::host::PluginParam;
use lnetd::node::{Node, NodeConfig};

fn ping_lo(node: &Node) -> lnetd::node::PingReply {
    let n = node.clone();
    let r = within(
        "a ping of 0@lo",
        || {},
        move || n.ping(Nid::LO_0, None, None, Duration::from_secs(30)),
    );
    r.expect("0@lo answers")
}

#[test]
fn slow_plugin_load_and_startup_stall_only_their_own_request() {
    let so = slow_plugin();
    let gates = TempDir::new("slow-lnd");
    let gate = |f: &str| gates.join(f);
    let plugin_dir: PathBuf = so.parent().expect("plugin dir").to_path_buf();
    let node = Node::start(NodeConfig {
        plugin_path: vec![plugin_dir],
        plugin_params: vec![PluginParam {
            module: "kslolnd".into(),
            name: "gate_dir".into(),
            value: gates.path().display().to_string(),
        }],
        pid: 12345,
        ..NodeConfig::default()
    })
    .expect("node starts");
    let release = |f: PathBuf| move || drop(std::fs::remove_file(f));

    // 1. `plugin load` of a slow library: the node answers meanwhile.
    std::fs::write(gate("load.hold"), b"").expect("hold");
    let (n, path) = (node.clone(), so.clone());
    let load = std::thread::spawn(move || n.plugin_load(&path));
    wait_file(&gate("load.entered"));
    assert_eq!(ping_lo(&node).primary_nid, Nid::LO_0);
    let n = node.clone();
    let nets = within("net show", release(gate("load.hold")), move || n.nets());
    assert_eq!(nets.len(), 1, "lo only: {nets:?}");
    std::fs::remove_file(gate("load.hold")).expect("release");
    let info = load.join().expect("load thread").expect("plugin loads");
    assert_eq!(info.name, "slow-lnd");

    // 2. A slow NI start-up: ping and net show answer, the same NI cannot
    //    be added twice, the plugin cannot be unloaded.
    std::fs::write(gate("startup.hold"), b"").expect("hold");
    let n = node.clone();
    let add = std::thread::spawn(move || n.net_add(slo("a")));
    wait_file(&gate("startup.1.entered"));
    assert_eq!(ping_lo(&node).primary_nid, Nid::LO_0);
    let n = node.clone();
    let nets = within("net show", release(gate("startup.hold")), move || n.nets());
    assert!(
        nets.iter().all(|n| n.name != "slo"),
        "an NI still starting is not shown: {nets:?}"
    );
    let n = node.clone();
    let again = within(
        "a second net add",
        release(gate("startup.hold")),
        move || n.net_add(slo("a")),
    );
    let e = again.expect_err("the same NI twice");
    assert_eq!(e.errno(), lnd_api::errno::EEXIST, "{e}");
    assert!(e.to_string().contains("already has an NI on a"), "{e}");
    let n = node.clone();
    let unload = within("plugin unload", release(gate("startup.hold")), move || {
        n.plugin_unload("slow-lnd")
    });
    let e = unload.expect_err("in use by the starting NI");
    assert_eq!(e.errno(), lnd_api::errno::EBUSY, "{e}");
    std::fs::remove_file(gate("startup.hold")).expect("release");
    let nids = add.join().expect("add thread").expect("the NI starts");
    assert_eq!(nids.len(), 1);
    assert_eq!(nids[0], slo_nid(1));

    // 3. A start-up that calls the host on the earlier NI (from another
    //    thread, waiting for it) finishes.
    let n = node.clone();
    let nids = within(
        "a start-up that calls the host",
        || {},
        move || n.net_add(slo("b")),
    )
    .expect("the second NI starts");
    assert_eq!(nids[0], slo_nid(2));
    let nets = node.nets();
    let slo_net = nets.iter().find(|n| n.name == "slo").expect("slo shown");
    let shown: Vec<Nid> = slo_net.nis.iter().map(|n| n.nid).collect();
    assert_eq!(shown, [slo_nid(1), slo_nid(2)]);
    // The node's primary NID is now its first NI's.
    assert_eq!(ping_lo(&node).primary_nid, slo_nid(1));
    node.shutdown();
}
