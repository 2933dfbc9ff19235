//! Test support: the shared test-double `Host` ([`lnd_test_host`])
//! and helpers to start NIs of lnd-sock on loopback addresses, and to speak
//! its wire protocol by hand.
#![allow(dead_code, unreachable_pub, missing_docs)]

use std::time::Duration;

use lnd_api::{LndError, LndNiHandle, NetId, NiConfig, Nid};

pub use lnd_test_host::*;
pub use lnet_tests::netns::is_root;

pub const TCP: NetId = NetId::new(2, 0);

/// Starts an NI of lnd-sock with a fresh double.
pub fn start(name: &str, cfg: NiConfig, mode: RecvMode) -> Result<TestNi, LndError> {
    start_with(&lnd_sock::SockLnd, name, cfg, mode)
}

/// Parameters for a loopback test: the port, a short socket timeout, and
/// `accept=all` when not root (privileged source ports need root).
pub fn params(port: u16) -> Vec<(&'static str, String)> {
    let mut v = vec![
        ("accept_port", port.to_string()),
        ("sock_timeout", "5".to_string()),
        ("min_reconnectms", "100".to_string()),
    ];
    if !is_root() {
        v.push(("accept", "all".to_string()));
    }
    v
}

/// Waits until `ni` lists `n` connections; returns the list.
pub fn wait_conns(ni: &LndNiHandle, n: usize, t: Duration) -> String {
    wait_conn_entries(ni, "type:", n, t)
}

// Raw peers speaking the wire protocol by hand.

use lnd_sock::wire::{ConnReqRepr, Endian};
use std::io::Read;
use std::net::TcpStream;

/// Reads until EOF (or reset); returns what came before.
pub fn read_to_close(s: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return out,
            Err(e) => panic!("connection not closed: {e}"),
        }
    }
}

pub fn connreq(to: Nid) -> Vec<u8> {
    let mut b = [0u8; 28];
    let n = ConnReqRepr::to(to)
        .emit(Endian::Little, &mut b)
        .expect("room");
    b[..n].to_vec()
}
