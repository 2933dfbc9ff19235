//! Selftest on in-process [`Node`]s, driven with [`Node::lst`] as `lst`
//! drives lnetd: sessions with groups `c` (clients) and `s` (servers),
//! tests, and waiting for a batch to go idle.

use std::time::Duration;

use lnet_core::lnd_api::{NetTunables, Nid};
use lnet_core::ProcessId;
use lnet_selftest::wire::Body;
use lnet_selftest::{NodeEntry, TestSpec, TestType};
use lnetd::node::{LstReply, LstRequest, NetAdd, Node, NodeConfig, NodeError};

/// A node (PID 12345, the selftest `params`) with one NI on the vendor
/// plugin's process-local fabric (`vnd`; the plugin is built once per test
/// process). A session needs a NID other than 0@lo; messages to the node's
/// own NID take the lo LND.
pub fn vnd_node(params: Vec<(String, String)>) -> (Node, Nid) {
    let node = Node::start(NodeConfig {
        plugin_path: vec![crate::plugin_build::vendor_plugin_dir()],
        params,
        pid: 12345,
        ..NodeConfig::default()
    })
    .expect("node starts");
    let nids = node
        .net_add(NetAdd {
            net: "vnd".into(),
            interfaces: vec!["fab0".into()],
            tunables: NetTunables::UNSET,
            lnd_tunables: Vec::new(),
        })
        .expect("net add vnd");
    (node, nids[0])
}

/// The node entries of a console reply; panics on anything else.
pub fn nodes(r: Result<LstReply, NodeError>) -> Vec<NodeEntry> {
    match r {
        Ok(LstReply::Nodes(n)) => n,
        other => panic!("expected node entries, got {other:?}"),
    }
}

/// A new session `name` with key `key` on `node`, group `c` = `client` and
/// group `s` = `server`; returns the entries of both `add_group`s.
pub fn session(node: &Node, key: u32, name: &str, client: Nid, server: Nid) -> [Vec<NodeEntry>; 2] {
    node.lst(LstRequest::NewSession {
        key,
        name: name.into(),
        timeout: 0,
        force: false,
        features: 1,
    })
    .expect("new_session");
    [("c", client), ("s", server)].map(|(g, n)| {
        nodes(node.lst(LstRequest::AddGroup {
            key,
            name: g.into(),
            nodes: vec![ProcessId::lustre(n)],
        }))
    })
}

/// Adds `test` from `c` to `s` to `batch` (distribution 1:1), `loop_count`
/// times (-1: until stopped), `concurrency` at once; asserts every node
/// took it.
pub fn add_test(
    node: &Node,
    key: u32,
    batch: &str,
    loop_count: i32,
    concurrency: u32,
    test: TestType,
) {
    let added = nodes(node.lst(LstRequest::AddTest {
        key,
        spec: TestSpec {
            batch: batch.into(),
            loop_count,
            concurrency,
            dist: 1,
            span: 1,
            from: "c".into(),
            to: "s".into(),
            test,
        },
    }));
    assert!(added.iter().all(NodeEntry::ok), "{added:?}");
}

/// Test instances of `batch` still active on its clients.
pub fn active(node: &Node, key: u32, batch: &str) -> u32 {
    let q = nodes(node.lst(LstRequest::Query {
        key,
        batch: batch.into(),
        test: 0,
        server: false,
        timeout: 30,
    }));
    match q[0].reply {
        Some(Body::BatchReply { active, .. }) => active,
        _ => panic!("query of {batch} failed: {q:?}"),
    }
}

/// Waits until `batch` has nothing active, for at most `within`.
pub fn wait_idle(node: &Node, key: u32, batch: &str, within: Duration) {
    crate::wait_for(
        &format!("batch {batch} to go idle"),
        within,
        || match active(node, key, batch) {
            0 => Ok(()),
            n => Err(format!("{n} test instance(s) active")),
        },
    );
}
