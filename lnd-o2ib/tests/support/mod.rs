//! Test support: the shared test-double `Host` ([`lnd_test_host`])
//! and helpers to start NIs of lnd-o2ib (soft provider) on loopback
//! addresses.
#![allow(dead_code, unreachable_pub, missing_docs)]

use std::time::Duration;

use lnd_api::{LndError, LndNiHandle, NetId, NiConfig};

pub use lnd_test_host::*;

pub const O2IB: NetId = NetId::new(5, 0);
pub const TCP: NetId = NetId::new(2, 0);

/// Starts an NI of lnd-o2ib with a fresh double.
pub fn start(name: &str, cfg: NiConfig, mode: RecvMode) -> Result<TestNi, LndError> {
    start_with(&lnd_o2ib::O2ibLnd, name, cfg, mode)
}

/// Parameters for a loopback test: the service port, a short timeout.
pub fn params(port: u16) -> Vec<(&'static str, String)> {
    vec![("service", port.to_string()), ("timeout", "30".to_string())]
}

/// Waits until `ni` lists `n` connections; returns the list.
pub fn wait_conns(ni: &LndNiHandle, n: usize, t: Duration) -> String {
    wait_conn_entries(ni, "- nid:", n, t)
}
