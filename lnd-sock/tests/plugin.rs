//! The cdylib as LNet loads it: through lnd-api's loader (version and layout
//! checks), its root module (`lnd-sock`, network type `tcp` = 2), and an NI
//! started through the FFI boundary exchanging messages with an NI of the
//! rlib in this process.

mod support;

use std::path::PathBuf;
use std::time::Duration;

use lnd_api::{load_plugin, HostHandle};
use support::*;

/// The cdylib, built now (`cargo test` builds the rlib for this test, not
/// the `.so`); see [`lnet_tests::bins`].
fn so_path() -> PathBuf {
    lnet_tests::bins::sock_plugin().to_path_buf()
}

#[test]
fn loads_and_serves_through_the_ffi_boundary() {
    let so = so_path();
    assert!(so.exists(), "{} not built", so.display());
    let p = load_plugin(&so).expect("the plugin loads");
    assert_eq!(p.name(), "lnd-sock");
    assert_eq!(p.abi_version(), lnd_api::ABI_VERSION);
    let types: Vec<(String, u8)> = p
        .net_types()
        .iter()
        .map(|t| (t.name.to_string(), t.lnd_type))
        .collect();
    assert_eq!(types, [("tcp".to_string(), 2)]);
    assert!(p.new_lnd("o2ib").is_err());
    let lnd = p.new_lnd("tcp").expect("tcp LND");

    let port = test_port();
    let params = params(port);
    // B: the plugin copy, through the FFI boundary.
    let host = TestHost::new("B(ffi)", RecvMode::Sync);
    let started = lnd
        .startup(
            config(TCP, "127.0.0.2", &params, &[]),
            HostHandle::new(host.clone()),
        )
        .expect("startup through FFI");
    host.set_ni(started.ni.clone());
    let b = TestNi {
        host,
        ni: started.ni,
        info: started.info,
    };
    assert_eq!(b.nid().to_string(), "127.0.0.2@tcp");
    let names: Vec<String> = b
        .info
        .lnd_tunables
        .iter()
        .map(|t| t.name.to_string())
        .collect();
    assert_eq!(names, ["conns_per_peer", "timeout", "tos"]);
    // A: the rlib copy.
    let a = start("A", config(TCP, "127.0.0.1", &params, &[]), RecvMode::Sync).expect("A");
    let t = Duration::from_secs(20);
    let d = pattern(100_000, 3);
    let (tok, m) = put(&a, b.nid(), &d);
    a.ni.send(m).expect("send");
    assert!(a.host.wait_sent(&[tok], t)[0].is_ok());
    let got = b.host.wait_received(1, t);
    assert_eq!(got[0].data, d);
    let d2 = pattern(10, 4);
    let (tok2, m2) = put(&b, a.nid(), &d2);
    b.ni.send(m2).expect("send");
    assert!(b.host.wait_sent(&[tok2], t)[0].is_ok());
    assert_eq!(a.host.wait_received(1, t)[0].data, d2);
    // Errors cross the boundary with their errno and text.
    let e = lnd
        .startup(
            config(TCP, "eth9", &params, &[]),
            HostHandle::new(TestHost::new("X", RecvMode::Sync)),
        )
        .err()
        .expect("no such interface");
    assert_eq!(e.errno, lnd_api::errno::ENODEV);
    assert!(e.message.contains("eth9 does not exist"));
    b.shutdown();
    a.shutdown();
}
