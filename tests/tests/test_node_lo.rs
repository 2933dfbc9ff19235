//! `lnet-test-node` without namespaces (no root needed): an application with
//! LNet in-process is configured through its control socket by `lnetctl`
//! and moves data through `0@lo` with the application API; `lnetctl`
//! sees the same node (ping, net show) as the application uses.

use std::time::Duration;

use lnet_tests::test_node::{field, TestNode};

const EXE: &str = env!("CARGO_BIN_EXE_lnet-test-node");
const T: Duration = Duration::from_secs(20);

#[test]
fn an_embedded_node_is_configured_by_lnetctl_and_moves_data_through_lo() {
    let n = TestNode::start_here(EXE, "N", &[]);
    // Before `lnet configure` the application has no LNet.
    let r = n.cmd("put 0@lo 40 0x1 8", T);
    assert!(r.starts_with("fail put LNet is not configured"), "{r}");
    n.lnetctl_ok(&["lnet", "configure"]);
    let ping = n.lnetctl_ok(&["ping", "0@lo"]);
    assert!(ping.starts_with("ping:\n- primary nid: 0@lo\n"), "{ping}");
    // GETs read a buffer no PUT writes into.
    n.cmd_ok(&format!("serve 42 0x80 {}", 1 << 20), T);
    for (i, size) in [0usize, 1, 4096, 65536, 1 << 20].into_iter().enumerate() {
        let mb = 0x10 + i as u64;
        n.cmd_ok(&format!("serve 40 {mb:#x} {}", 1 << 20), T);
        let r = n.cmd_ok(&format!("put 0@lo 40 {mb:#x} {size}"), T);
        assert_eq!(field(&r, "mlength"), Some(size.to_string().as_str()), "{r}");
        let ev = n.expect(
            |l| l.starts_with("event put") && l.contains(&format!("mb={mb:#x} ")),
            T,
        );
        assert_eq!(
            ev,
            format!(
                "event put from=0@lo mb={mb:#x} rlength={size} mlength={size} offset=0 \
                 hdr_data={size} status=0 data=ok"
            )
        );
        let r = n.cmd_ok(&format!("get 0@lo 42 0x80 {size}"), T);
        assert!(r.contains(&format!(" mlength={size} data=ok ")), "{r}");
    }
    // Nothing matches: the PUT is dropped by the target and no ACK comes;
    // a PUT without ACK completes at its SEND.
    let r = n.cmd_ok("put 0@lo 41 0x99 16 noack", T);
    assert!(r.starts_with("ok put size=16"), "{r}");
    // Bad input is refused with the engine's message.
    let r = n.cmd("serve 64 0x1 8", T);
    assert!(
        r.starts_with("fail serve portal 64: index out of range"),
        "{r}"
    );
    let r = n.cmd("frobnicate", T);
    assert!(r.starts_with("fail frobnicate unknown command"), "{r}");
    // `lnet unconfigure` takes LNet away from the application too.
    n.lnetctl_ok(&["lnet", "unconfigure"]);
    let r = n.cmd("put 0@lo 40 0x10 8", T);
    assert!(r.starts_with("fail put LNet is not configured"), "{r}");
}

#[test]
fn a_plugin_parameter_no_plugin_declares_or_refuses_stops_the_node_with_why() {
    let plugins = lnet_tests::bins::sock_plugin()
        .parent()
        .expect("plugin dir")
        .to_path_buf();
    let dir = lnet_tests::TempDir::new("test-node-params");
    let run = |param: &str| {
        let out = std::process::Command::new(EXE)
            .arg("--socket")
            .arg(dir.join("lnet.sock"))
            .arg("--plugin-path")
            .arg(&plugins)
            .args(["--param", param])
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run lnet-test-node");
        assert!(!out.status.success(), "{param}: the node started");
        assert!(out.stdout.is_empty(), "{param}: {:?}", out.stdout);
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    // A misspelt name: the modules found are listed, the TCP LND's among them.
    let e = run("ksocklnd.tx_bufer_size=262144");
    let found = e
        .strip_prefix(
            "lnet-test-node: --param ksocklnd.tx_bufer_size=262144: no plugin in the plugin \
             path declares this parameter (plugin modules found: ",
        )
        .unwrap_or_else(|| panic!("{e}"));
    assert!(
        found
            .split(')')
            .next()
            .is_some_and(|m| m.split(", ").any(|m| m == "ksocklnd")),
        "{e}"
    );
    let e = run("kfrobnlnd.tx_buffer_size=1");
    assert!(
        e.starts_with(
            "lnet-test-node: --param kfrobnlnd.tx_buffer_size=1: no plugin in the plugin path \
             declares this parameter"
        ),
        "{e}"
    );
    // A value the plugin refuses: its own check says why.
    let e = run("ksocklnd.tx_buffer_size=lots");
    assert!(
        e.starts_with(
            "lnet-test-node: --param ksocklnd.tx_buffer_size=lots: bad value for parameter \
             tx_buffer_size of ksocklnd: \"lots\" is not an integer"
        ),
        "{e}"
    );
    assert!(!dir.join("lnet.sock").exists(), "no socket was served");
}
