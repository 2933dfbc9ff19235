//! # lnd-sock: socklnd over TCP, as an LNet LND plugin
//!
//! A user-space re-implementation of the kernel's `ksocklnd` that speaks its
//! wire protocol (`spec/wire.md` §4–§5), so a capture decodes as LNet and a
//! kernel peer could talk to it. Built as a `cdylib` (the plugin LNet loads
//! with `lnetctl plugin load` or from its plugin path) and as an `rlib` (for
//! tests). It depends on `lnd-api`, tokio and socket2 (+ nix for
//! `getifaddrs`) and must never depend on lnet-core or another LND.
//!
//! Layers, from the wire up:
//! * [`wire`]: checked views and `Repr`s of the acceptor connection request,
//!   the hellos V1–V4 and the 24-byte message header; incremental decoders.
//! * [`hello`]: the handshake as an explicit state machine, and its async
//!   driver over any byte stream.
//! * [`conn`]: one connection: transmit queue, reader and writer tasks over
//!   the socket seam ([`conn::Seam`]), receive rendezvous with `recv`, ZC
//!   ACKs, keepalive NOOPs, timeouts.
//! * [`ni`]: one NI: peers, typed connections (`conns_per_peer`), connection
//!   races, incarnations, send dispatch, shutdown.
//! * [`acceptor`]: listeners shared per address and port, `accept=secure`.
//! * [`net`]: privileged-port connects and socket options (socket2).
//! * [`params`] and [`iface`]: module parameters, tunables, the interface.
//! * [`link`]: the interface's link state, watched through rtnetlink and
//!   reported to LNet (`link_state`); a link going down closes the NI's
//!   connections.
//!
//! Threads: the plugin owns one tokio runtime (`nscheds` worker threads
//! named `lnd-sock`, one by default), created at the first NI start-up; nothing assumes an ambient
//! runtime. Host callbacks (`parse`, `finalize`, `notify`, `log`) come from
//! those threads, or from the host's own thread inside `send_span` (a send
//! written directly, see [`conn::Conn::enqueue`]), never with one of our
//! locks held.

#![forbid(unsafe_code)]

pub mod acceptor;
pub mod conn;
#[cfg(any(test, fuzzing))]
pub mod fuzzing;
pub mod hello;
pub mod iface;
pub mod link;
pub mod net;
pub mod ni;
pub mod params;
pub mod wire;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use lnd_api::abi_stable::std_types::{RString, RVec};
use lnd_api::{
    errno, lnd_type, HostHandle, Lnd, LndError, LndNiHandle, NiConfig, NiInfo, NiStarted,
};

use crate::hello::{nid_of_addr, LocalId};
use crate::ni::{NiInner, SockNi};
use crate::params::{NiTunables, Params};

/// The network type this LND provides.
pub const NET_TYPE: &str = "tcp";

static RUNTIME: OnceLock<Result<tokio::runtime::Runtime, String>> = OnceLock::new();

/// Worker threads the runtime starts with (`nscheds`, 0 read as 1): one
/// thread runs a message to completion (read, LNet, the reply's direct
/// write) without handing it to another; more serve many busy peers.
static WORKERS: AtomicUsize = AtomicUsize::new(1);

/// The plugin's own runtime (created once, never shut down: plugin code
/// stays mapped for the life of the process).
pub fn runtime() -> Result<tokio::runtime::Handle, LndError> {
    let r = RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(WORKERS.load(Ordering::Relaxed).max(1))
            .thread_name("lnd-sock")
            .enable_all()
            .build()
            .map_err(|e| e.to_string())
    });
    match r {
        Ok(rt) => Ok(rt.handle().clone()),
        Err(e) => Err(LndError::new(
            errno::ENOMEM,
            format!("lnd-sock: cannot start its runtime: {e}"),
        )),
    }
}

/// An NI incarnation: wall-clock nanoseconds at start-up, strictly
/// increasing within the process (so a quick restart is still seen).
fn incarnation() -> u64 {
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1);
    lnd_api::entry::next_incarnation(&LAST, now)
}

/// The socket LND (`the_ksocklnd`).
#[derive(Debug, Default)]
pub struct SockLnd;

impl Lnd for SockLnd {
    fn startup(&self, cfg: NiConfig, host: HostHandle) -> Result<NiStarted, LndError> {
        lnd_api::entry::check_lnd_type(cfg.net, lnd_type::SOCKLND, "lnd-sock", NET_TYPE)?;
        let net_name = cfg.net.to_string();
        if cfg.interfaces.len() > 1 {
            return Err(LndError::new(
                errno::EINVAL,
                format!(
                    "cannot add net {net_name}: one interface per NI (got {})",
                    cfg.interfaces.len()
                ),
            ));
        }
        let params = Params::from_list(&cfg.params)?;
        let list = iface::snapshot()?;
        let wanted = cfg.interfaces.first().map(|s| s.as_str());
        let chosen = iface::choose(&list, &net_name, wanted)?;
        let tun = NiTunables::resolve(
            &cfg.lnd_tunables,
            &params,
            iface::link_speed_mbps(&chosen.name),
        )?;
        let sock = std::net::SocketAddr::new(chosen.addr, params.accept_port);
        let nid = nid_of_addr(cfg.net, &sock).ok_or_else(|| {
            LndError::new(
                errno::EINVAL,
                format!(
                    "cannot add net {net_name}: no NID for address {}",
                    chosen.addr
                ),
            )
        })?;
        if RUNTIME.get().is_none() {
            WORKERS.store(params.nscheds.max(1), Ordering::Relaxed);
        }
        let rt = runtime()?;
        let local = LocalId {
            nid,
            pid: cfg.pid,
            incarnation: incarnation(),
        };
        let timeout = params.timeout_secs();
        let info = NiInfo {
            nid,
            interfaces: RVec::from(vec![RString::from(chosen.name.clone())]),
            tunables: params.fill(cfg.tunables),
            lnd_tunables: RVec::from(tun.report(timeout)),
            timeout_secs: timeout,
        };
        let ni: Arc<NiInner> = NiInner::new(
            host,
            local,
            chosen.addr,
            chosen.name,
            net_name,
            params,
            tun,
            rt.clone(),
        );
        acceptor::register(&ni, &rt)?;
        link::watch(&ni);
        ni.log_ni(
            lnd_api::LogLevel::INFO,
            &format!(
                "up on {} ({}), accept={:?} port {}",
                ni.ifname, ni.addr, ni.params.accept, ni.params.accept_port
            ),
        );
        Ok(NiStarted {
            info,
            ni: LndNiHandle::new(SockNi(ni)),
        })
    }
}

/// The plugin's constructor (`new_lnd` of the root module).
pub fn new_lnd(net_type: &str) -> Result<SockLnd, LndError> {
    lnd_api::entry::check_net_type("lnd-sock", NET_TYPE, net_type).map(|()| SockLnd)
}

lnd_api::export_lnd_plugin! {
    name: "lnd-sock",
    version: env!("CARGO_PKG_VERSION"),
    net_types: [("tcp", 2)],
    new_lnd: new_lnd,
    params: &crate::params::DECLS,
}
