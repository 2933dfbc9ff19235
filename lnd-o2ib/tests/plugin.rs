//! The cdylib as LNet loads it: through lnd-api's loader (version and layout
//! checks), its root module (`lnd-o2ib`, network type `o2ib` = 5), and an NI
//! started through the FFI boundary exchanging messages with an NI of the
//! rlib in this process.

mod support;

use std::path::PathBuf;
use std::time::Duration;

use lnd_api::{load_plugin, HostHandle};
use support::*;

/// The cdylib, built now (`cargo test` builds the rlib for this test, not
/// the `.so`); see [`lnd_test_host::bins`].
fn so_path() -> PathBuf {
    lnd_test_host::bins::built("liblnd_o2ib.so")
}

#[test]
fn loads_declares_ko2iblnd_and_serves_through_the_ffi_boundary() {
    let so = so_path();
    assert!(so.exists(), "{} not built", so.display());
    let p = load_plugin(&so).expect("the plugin loads");
    assert_eq!(p.name(), "lnd-o2ib");
    let types: Vec<(String, u8)> = p
        .net_types()
        .iter()
        .map(|t| (t.name.to_string(), t.lnd_type))
        .collect();
    assert_eq!(types, [("o2ib".to_string(), 5)]);
    // lnd-api 1.3's GET_SINK: sinks too big for an IMMEDIATE REPLY.
    assert_eq!(p.get_sink_min(), Some(3977));
    assert_eq!(p.new_lnd("o2ib").expect("o2ib").get_sink_min(), Some(3977));
    let decls = p.param_decls().expect("declares its parameters");
    assert!(decls.iter().all(|d| d.module() == "ko2iblnd"));
    for n in [
        "peer_credits",
        "peer_credits_hiw",
        "concurrent_sends",
        "map_on_demand",
        "fmr_pool_size",
        "provider",
    ] {
        assert!(decls.iter().any(|d| d.name() == n), "{n} not declared");
    }
    assert!(p.new_lnd("tcp").is_err());
    let lnd = p.new_lnd("o2ib").expect("o2ib LND");

    let port = test_port();
    let params = params(port);
    let host = TestHost::new("B(ffi)", RecvMode::Sync);
    let started = lnd
        .startup(
            config(O2IB, "127.0.0.2", &params, &[("provider", "soft")]),
            HostHandle::new(host.clone()),
        )
        .expect("startup through FFI");
    host.set_ni(started.ni.clone());
    let b = TestNi {
        host,
        ni: started.ni,
        info: started.info,
    };
    assert_eq!(b.nid().to_string(), "127.0.0.2@o2ib");
    let tun: Vec<(String, String)> = b
        .info
        .lnd_tunables
        .iter()
        .map(|t| (t.name.to_string(), t.value.to_string()))
        .collect();
    for (k, v) in [
        ("peer_credits_hiw", "4"),
        ("concurrent_sends", "8"),
        ("map_on_demand", "1"),
        ("fmr_pool_size", "512"),
        ("provider", "soft"),
    ] {
        assert!(
            tun.contains(&(k.to_string(), v.to_string())),
            "{k}={v} not in {tun:?}"
        );
    }
    let a = start("A", config(O2IB, "127.0.0.1", &params, &[]), RecvMode::Sync).expect("A");
    let t = Duration::from_secs(30);
    let d = pattern(100_000, 3);
    let (tok, m) = put(&a, b.nid(), &d);
    a.ni.send(m).expect("send");
    assert!(a.host.wait_sent(&[tok], t)[0].is_ok());
    assert!(b.host.wait_received(1, t)[0].data == d);
    let d2 = pattern(10, 4);
    let (tok2, m2) = put(&b, a.nid(), &d2);
    b.ni.send(m2).expect("send");
    assert!(b.host.wait_sent(&[tok2], t)[0].is_ok());
    assert_eq!(a.host.wait_received(1, t)[0].data, d2);
    b.shutdown();
    a.shutdown();
}
