//! End to end: `export` and `import` of routes, peers, routing and router
//! buffers (issues 13, 16 item 2, 12 item 1; lnetctl.md §4.1, §4.2), with
//! the real `lnetd` and `lnetctl` (helpers as in `e2e.rs`).
//!
//! The nodes use the vendor plugin's `vnd` nets: gateways and peers need
//! not answer for what is configured to be exported and imported.

use std::path::Path;
use std::process::{Command, Output};

use lnet_tests::bins::vendor_plugin;
use lnet_tests::daemon::Daemon;
use lnet_tests::expected::GLOBAL_DEFAULTS;
use lnet_tests::{ok, text, TempDir};

const LNETCTL: &str = env!("CARGO_BIN_EXE_lnetctl");

fn lnetctl(socket: &Path, args: &[&str]) -> Output {
    lnet_tests::lnetctl_on(Path::new(LNETCTL), socket, args)
}

fn write(dir: &TempDir, name: &str, body: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, body).expect("write file");
    p.to_str().expect("utf-8 path").to_string()
}

/// A configured node with the vendor plugin and nets `vnd` and `vnd1`.
fn node(sock: &Path) -> Daemon {
    let d = Daemon::start(sock, &["--param", "alive_router_check_interval=0"]);
    let so = vendor_plugin().to_str().expect("utf-8 path");
    ok(&lnetctl(sock, &["lnet", "configure"]));
    ok(&lnetctl(sock, &["plugin", "load", so]));
    d
}

fn nets(sock: &Path) {
    ok(&lnetctl(
        sock,
        &["net", "add", "--net", "vnd", "--if", "fabric0"],
    ));
    ok(&lnetctl(
        sock,
        &["net", "add", "--net", "vnd1", "--if", "fabric2"],
    ));
}

const NETS: &str = "net:
-     net type: vnd
      local NI(s):
      -     interfaces:
                  0: fabric0
            tunables:
                  peer_timeout: 180
                  peer_credits: 8
                  peer_buffer_credits: 0
                  credits: 256
            CPT: \"[0]\"
-     net type: vnd1
      local NI(s):
      -     interfaces:
                  0: fabric2
            tunables:
                  peer_timeout: 180
                  peer_credits: 8
                  peer_buffer_credits: 0
                  credits: 256
            CPT: \"[0]\"
";

/// What `export --backup` prints after the configuration of the test: the
/// routes (gateway peers come with them), the configured peers, routing and
/// buffers, in upstream's section order.
const ROUTES_PEERS: &str = "route:
-     net: tcp1
      gateway: 2@vnd
      hop: 2
      priority: 1
-     net: tcp2
      gateway: 3@vnd1
      hop: -1
      priority: 0
      health_sensitivity: 500
peer:
-     primary nid: 5@vnd
      Multi-Rail: true
      peer ni:
      -     nid: 5@vnd
      -     nid: 6@vnd
      -     nid: 7@vnd1
-     primary nid: 2@vnd
      Multi-Rail: false
      peer ni:
      -     nid: 2@vnd
-     primary nid: 3@vnd1
      Multi-Rail: false
      peer ni:
      -     nid: 3@vnd1
-     primary nid: 8@vnd
      Multi-Rail: false
      peer ni:
      -     nid: 8@vnd
routing:
    enable: 3
buffers:
    tiny: 64
    small: 128
    large: 16
";

/// The export of a router with routes and peers, imported on a fresh node,
/// exports the same bytes; the full export imports too; `--show` prints
/// what the document names; `--del` removes routes and peers.
#[test]
fn routes_peers_routing_round_trip() {
    let dir = TempDir::new("rexport");
    let a = dir.join("a.sock");
    let b = dir.join("b.sock");
    let c = dir.join("c.sock");
    let _da = node(&a);
    let _db = node(&b);
    let _dc = node(&c);
    nets(&a);
    // Peers and routes interleaved: the export lists peers in creation
    // order, gateways among them.
    for args in [
        &[
            "peer",
            "add",
            "--prim_nid",
            "5@vnd",
            "--nid",
            "6@vnd,7@vnd1",
        ][..],
        &[
            "route",
            "add",
            "--net",
            "tcp1",
            "--gateway",
            "2@vnd",
            "--hop",
            "2",
            "--priority",
            "1",
        ],
        &[
            "route",
            "add",
            "--net",
            "tcp2",
            "--gateway",
            "3@vnd1",
            "--health_sensitivity",
            "500",
        ],
        &["peer", "add", "--prim_nid", "8@vnd", "--non_mr"],
        // (buffer sizes take effect while routing is on, lnetctl.md §2.8)
        &["set", "routing", "1"],
        &["set", "tiny_buffers", "64"],
        &["set", "small_buffers", "128"],
        &["set", "large_buffers", "16"],
    ] {
        ok(&lnetctl(&a, args));
    }
    let exported = ok(&lnetctl(&a, &["export", "--backup"]));
    assert_eq!(exported, format!("{NETS}{ROUTES_PEERS}{GLOBAL_DEFAULTS}"));

    // A gateway's peer NIs have a state (alive until checked: the checker
    // is off here); other peers' NA (lnetctl.md §3.2).
    let peers = ok(&lnetctl(&a, &["peer", "show"]));
    assert!(
        peers.contains(
            "-     primary nid: 2@vnd\n      Multi-Rail: false\n      peer ni:\n      \
             -     nid: 2@vnd\n            state: up\n"
        ) && peers.contains("      -     nid: 5@vnd\n            state: NA\n"),
        "{peers}"
    );

    // The full export: route state and type, peer state and statistics,
    // the pools per CPT.
    let full = ok(&lnetctl(&a, &["export"]));
    assert!(
        full.contains("      priority: 1\n      state: ")
            && full.contains("      type: single-hop\n-     net: tcp2\n"),
        "{full}"
    );
    assert!(
        full.contains("-     primary nid: 5@vnd\n      Multi-Rail: true\n      peer state: ")
            && full.contains("            available_rtr_credits: "),
        "{full}"
    );
    assert!(
        full.contains(
            "routing:\n    - cpt[0]:\n          tiny:\n              npages: 0\n              nbuffers: 64\n"
        ) && full.contains("    - enable: 3\nbuffers:\n    tiny: 64\n    small: 128\n    large: 16\nglobal:\n"),
        "{full}"
    );

    // Imported on a fresh node: the same export, byte for byte.
    let file = write(&dir, "lnet.conf", &exported);
    ok(&lnetctl(&b, &["import", &file]));
    assert_eq!(ok(&lnetctl(&b, &["export", "--backup"])), exported);
    // The gateway peers are gateways there too: they cannot go while
    // routes use them... and the routes are there.
    assert_eq!(
        ok(&lnetctl(&b, &["route", "show"])),
        "route:\n-     net: tcp1\n      gateway: 2@vnd\n-     net: tcp2\n      gateway: 3@vnd1\n"
    );

    // The full export imports as well (read-only keys skipped, `lo` too).
    let full_file = write(&dir, "full.yaml", &full);
    let out = lnetctl(&c, &["import", &full_file]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stderr), "", "no warning for read-only keys");
    assert_eq!(ok(&lnetctl(&c, &["export", "--backup"])), exported);

    // --show prints what the document names, changes nothing.
    let shown = ok(&lnetctl(&b, &["import", "--show", &file]));
    assert!(
        shown.contains(
            "route:\n-     net: tcp1\n      gateway: 2@vnd\n      hop: 2\n      priority: 1\n      state: "
        ),
        "{shown}"
    );
    assert!(
        shown.contains(
            "-     primary nid: 2@vnd\n      Multi-Rail: false\n      peer ni:\n      -     nid: 2@vnd\n"
        ),
        "{shown}"
    );
    assert_eq!(ok(&lnetctl(&b, &["export", "--backup"])), exported);

    // --del removes nets, routes and peers and puts the buffers back to
    // their defaults; routing is applied as given (upstream).
    ok(&lnetctl(&b, &["import", "--del", &file]));
    assert_eq!(
        ok(&lnetctl(&b, &["export", "--backup"])),
        format!("routing:\n    enable: 3\nbuffers:\n    tiny: 2048\n    small: 16384\n    large: 1024\n{GLOBAL_DEFAULTS}")
    );
}

/// A failing item is named with why; what came before it stays, nothing
/// after it is applied (peer sections are applied before the routes when
/// adding).
#[test]
fn partial_import_names_the_failing_item() {
    let dir = TempDir::new("rimport");
    let b = dir.join("b.sock");
    let _db = node(&b);
    nets(&b);
    let doc = write(
        &dir,
        "bad-route.yaml",
        "route:
-     net: tcp1
      gateway: 2@vnd
-     net: tcp2
      gateway: 10.0.0.1@tcp
-     net: tcp3
      gateway: 3@vnd
peer:
-     primary nid: 5@vnd
global:
    numa_range: 4
",
    );
    let out = lnetctl(&b, &["import", &doc]);
    assert_eq!(out.status.code(), Some(234));
    assert_eq!(
        text(&out.stderr),
        "---\nadd:\n-     route:\n      errno: -113\n      descr: ! \"failed to add route to \
         'tcp2' via '10.0.0.1@tcp': No interface configured on the same net as gateway\"\n...\n"
    );
    assert_eq!(
        ok(&lnetctl(&b, &["route", "show"])),
        "route:\n-     net: tcp1\n      gateway: 2@vnd\n",
        "the route before stays, nothing after"
    );
    assert!(ok(&lnetctl(&b, &["global", "show"])).contains("    numa_range: 0\n"));
    // The peer section went first (export order, see import.rs `add_order`).
    assert_eq!(
        ok(&lnetctl(&b, &["peer", "list"])),
        "peer list:\n-     nid: 5@vnd\n-     nid: 2@vnd\n"
    );

    // A peer with a bad Multi-Rail word: nothing of it is created.
    let doc = write(
        &dir,
        "bad-peer.yaml",
        "peer:
-     primary nid: 5@vnd
      Multi-Rail: maybe
      peer ni:
      -     nid: 6@vnd
",
    );
    let out = lnetctl(&b, &["import", &doc]);
    assert_eq!(out.status.code(), Some(234));
    assert_eq!(
        text(&out.stderr),
        "---\nadd:\n-     import:\n      errno: -22\n      descr: ! \"invalid MR flag param\"\n...\n"
    );
    assert_eq!(
        ok(&lnetctl(&b, &["peer", "list"])),
        "peer list:\n-     nid: 5@vnd\n-     nid: 2@vnd\n"
    );

    // A peer NID configured in another peer: the daemon's refusal, named.
    ok(&lnetctl(
        &b,
        &["peer", "add", "--prim_nid", "5@vnd", "--nid", "6@vnd"],
    ));
    let doc = write(
        &dir,
        "dup-peer.yaml",
        "peer:
-     primary nid: 7@vnd
      Multi-Rail: True
      peer ni:
      -     nid: 7@vnd
      -     nid: 6@vnd
",
    );
    let out = lnetctl(&b, &["import", &doc]);
    assert_eq!(out.status.code(), Some(234));
    let e = text(&out.stderr);
    assert!(
        e.contains("errno: -17\n") && e.contains("failed to add peer '7@vnd': "),
        "{e}"
    );
    assert_eq!(
        ok(&lnetctl(&b, &["peer", "list"])),
        "peer list:\n-     nid: 5@vnd\n-     nid: 2@vnd\n"
    );

    // Bad routing and buffers values name the key.
    let doc = write(&dir, "bad-routing.yaml", "routing:\n    enable: 7\n");
    let out = lnetctl(&b, &["import", &doc]);
    assert_eq!(out.status.code(), Some(234));
    assert!(
        text(&out.stderr).contains("invalid value '7' for key 'enable'"),
        "{}",
        text(&out.stderr)
    );
    let doc = write(
        &dir,
        "bad-buffers.yaml",
        "buffers:\n    tiny: 8\n    huge: 1\n",
    );
    let out = lnetctl(&b, &["import", &doc]);
    assert!(
        text(&out.stderr).contains("invalid key 'huge' in 'buffers'"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(
        ok(&lnetctl(&b, &["routing", "show"])),
        "",
        "routing never enabled"
    );
}

/// `import --old-api` (lnetctl.md §4.2): a net block's `local NI(s)` items
/// one at a time with their own tunables (or the block's); an unknown
/// section is the classic `yaml`/`helper` block; `--exec` runs `ping` and
/// `discover` sections with the old keys.
#[test]
fn old_api_import() {
    let dir = TempDir::new("oldapi");
    let b = dir.join("b.sock");
    let _db = node(&b);
    let doc = write(
        &dir,
        "old.yaml",
        "net:
    - net type: vnd
      tunables:
          peer_credits: 32
      local NI(s):
        - interfaces:
              0: fabric0
          tunables:
              peer_credits: 16
        - interfaces:
              0: fabric1
        - nid: 9@vnd
peer:
    - primary nid: 5@vnd
      Multi-Rail: True
      peer ni:
        - nid: 6@vnd
",
    );
    ok(&lnetctl(&b, &["import", "--old-api", &doc]));
    let e = ok(&lnetctl(&b, &["export", "--backup"]));
    assert!(
        e.starts_with(
            "net:
-     net type: vnd
      local NI(s):
      -     interfaces:
                  0: fabric0
            tunables:
                  peer_timeout: 180
                  peer_credits: 16
                  peer_buffer_credits: 0
                  credits: 256
            CPT: \"[0]\"
      -     interfaces:
                  0: fabric1
            tunables:
                  peer_timeout: 180
                  peer_credits: 32
                  peer_buffer_credits: 0
                  credits: 256
            CPT: \"[0]\"
peer:
-     primary nid: 5@vnd
      Multi-Rail: true
      peer ni:
      -     nid: 5@vnd
      -     nid: 6@vnd
global:
"
        ),
        "{e}"
    );
    // Multi-Rail must be True or False on the old path.
    let bad = write(
        &dir,
        "mr.yaml",
        "peer:\n    - primary nid: 7@vnd\n      Multi-Rail: 1\n",
    );
    let out = lnetctl(&b, &["import", "-o", &bad]);
    assert_eq!(out.status.code(), Some(234));
    assert!(
        text(&out.stderr).contains("Multi-Rail must be set to 'True' or 'False' found '1'"),
        "{}",
        text(&out.stderr)
    );
    // An unknown section: nothing applied, the classic block.
    let bad = write(
        &dir,
        "bogus.yaml",
        "global:\n    numa_range: 3\nbogus:\n    x: 1\n",
    );
    let out = lnetctl(&b, &["import", "--old-api", &bad]);
    assert_eq!(out.status.code(), Some(234));
    assert_eq!(
        text(&out.stderr),
        "yaml:\n    - helper:\n          errno: -2\n          descr: \"call back for 'bogus' not found\"\n"
    );
    assert!(ok(&lnetctl(&b, &["global", "show"])).contains("    numa_range: 0\n"));
    // --exec: discover sections, both key sets.
    let disc = write(&dir, "disc.yaml", "discover:\n    nids: [ 0@lo ]\n");
    ok(&lnetctl(&b, &["import", "--exec", &disc]));
    let disc = write(
        &dir,
        "disc-old.yaml",
        "discover:\n  - primary nid: 0@lo\n    force: 1\n",
    );
    let out = Command::new(LNETCTL)
        .arg("--socket")
        .arg(&b)
        .args(["import", "--exec", "--old-api", "/dev/null"])
        .stdin(std::fs::File::open(&disc).expect("doc"))
        .env_remove("LNET_SOCKET")
        .output()
        .expect("run lnetctl");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}
