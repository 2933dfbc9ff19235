//! # lnd-o2ib: the verbs LND, as an LNet LND plugin
//!
//! A user-space re-implementation of the kernel's `ko2iblnd` that speaks its
//! protocol (`spec/wire.md` §7) over a small verbs interface of its own
//! ([`verbs`]) with a software provider ([`soft`]: RC queue pairs over TCP)
//! so that the LND runs and is tested on machines without RDMA hardware.
//! Built as a `cdylib` (the plugin) and an `rlib` (for tests). It depends on
//! `lnd-api` (and may use tokio, socket2 and libloading) and must never
//! depend on lnet-core or another LND.
//!
//! Layers, from the wire up:
//! * [`wire`]: checked views and `Repr`s of `kib_msg` (every message type,
//!   both byte orders, the checksum rule) and of the reject private data.
//! * [`verbs`]: the verbs subset o2iblnd uses (MRs with keys, CQs, RC QPs,
//!   SEND / RDMA READ / RDMA WRITE, the CM exchange with private data).
//! * [`soft`]: the software provider, with real verbs failure modes.
//! * [`regcache`]: MD memory registered once, not per message.
//! * [`ni`]: one NI: connections (CONNREQ/CONNACK, rejects, races), credits,
//!   IMMEDIATE and RDMA PUT flows, NOOPs, timeouts, keepalive.
//! * [`params`]: ko2iblnd's module parameters.
//! * [`sys`]: rdma-core opened at run time (the only `unsafe` code): the
//!   probe that says why an interface cannot be served by the `rdma`
//!   provider, the bindings checked against rdma-core's headers
//!   ([`sys::ffi`]) and the `rdma` provider's verbs ([`sys::rdma`]: rdma_cm
//!   connections with o2iblnd's private data, PD/CQ/QP, MRs, posts, CQ
//!   polling), behind the same [`verbs::VerbsQp`] / [`verbs::VerbsCq`]
//!   traits as `soft`. The NI runs on either (`ni::provider`).
//!
//! Threads: per NI a CQ poller (on rdma it only ticks) and an acceptor, per
//! connection attempt a short-lived thread, per QP of the soft provider a
//! reader and a writer, per connection of the rdma provider a thread
//! serving its CQ.
//! Host callbacks never run with one of our locks held.

#![deny(unsafe_code)]

pub mod ni;
pub mod params;
pub mod regcache;
pub mod soft;
#[allow(unsafe_code)]
pub mod sys;
pub mod verbs;
pub mod wire;

use std::net::Ipv4Addr;
use std::sync::atomic::AtomicU64;
use std::time::{SystemTime, UNIX_EPOCH};

use lnd_api::abi_stable::std_types::{RString, RVec};
use lnd_api::{
    errno, lnd_type, HostHandle, Lnd, LndError, LndNiHandle, NiConfig, NiInfo, NiStarted, Nid,
};

use crate::ni::{NiInner, O2ibNi};
use crate::params::{ProviderKind, Tunables};

/// The network type this LND provides.
pub const NET_TYPE: &str = "o2ib";

/// An NI incarnation: wall-clock microseconds at start-up (as the kernel's
/// `ibm_srcstamp`), strictly increasing within the process.
fn incarnation() -> u64 {
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(1);
    lnd_api::entry::next_incarnation(&LAST, now)
}

/// The o2ib LND (`the_o2iblnd`).
#[derive(Debug, Default)]
pub struct O2ibLnd;

impl Lnd for O2ibLnd {
    fn startup(&self, cfg: NiConfig, host: HostHandle) -> Result<NiStarted, LndError> {
        lnd_api::entry::check_lnd_type(cfg.net, lnd_type::O2IBLND, "lnd-o2ib", NET_TYPE)?;
        let net_name = cfg.net.to_string();
        if cfg.interfaces.len() != 1 {
            return Err(LndError::new(
                errno::EINVAL,
                format!(
                    "cannot add net {net_name}: name exactly one interface with --if (got {})",
                    cfg.interfaces.len()
                ),
            ));
        }
        let tun = Tunables::resolve(&cfg.lnd_tunables, &cfg.params, &cfg.tunables)?;
        let ifname = cfg.interfaces[0].as_str().to_string();
        // `--if ib0` (an interface name, as for the kernel o2iblnd) or its
        // IPv4 address.
        let addr: Ipv4Addr = match ifname.parse() {
            Ok(a) => a,
            Err(_) => match sys::if_ipv4(&ifname) {
                Ok(Some(a)) => a,
                Ok(None) => {
                    return Err(LndError::new(
                        errno::ENODEV,
                        format!(
                            "cannot add net {net_name}: interface {ifname:?} does not exist or \
                             has no IPv4 address (check \"ip -4 addr show {ifname}\")"
                        ),
                    ))
                }
                Err(e) => {
                    return Err(LndError::new(
                        errno::ENODEV,
                        format!(
                            "cannot add net {net_name}: cannot look interface {ifname:?} up \
                             ({e}); give its IPv4 address with --if"
                        ),
                    ))
                }
            },
        };
        // `provider` unset: rdma where a device exists, else soft.
        let want_rdma = match tun.provider {
            Some(ProviderKind::Rdma) => true,
            Some(ProviderKind::Soft) => false,
            None => sys::devices().is_ok(),
        };
        let (provider, with) = if want_rdma {
            let refused = |e: &dyn std::fmt::Display| {
                LndError::new(
                    errno::ENODEV,
                    format!("cannot add net {net_name} on {ifname} with provider rdma: {e}"),
                )
            };
            sys::probe(addr).map_err(|e| refused(&e))?;
            let lib = sys::rdma::RdmaLib::open().map_err(|e| refused(&e))?;
            (ProviderKind::Rdma, ni::StartWith::Rdma(lib))
        } else {
            (ProviderKind::Soft, ni::StartWith::Soft)
        };
        let nid = Nid::new4(cfg.net, u32::from(addr));
        let timeout = tun.get("timeout") as u32;
        let info = NiInfo {
            nid,
            interfaces: RVec::from(vec![RString::from(ifname)]),
            tunables: tun.fill(cfg.tunables),
            lnd_tunables: RVec::from(tun.report(provider)),
            timeout_secs: timeout,
        };
        let ni = NiInner::start(host, nid, addr, tun, incarnation(), with)?;
        Ok(NiStarted {
            info,
            ni: LndNiHandle::new(O2ibNi(ni)),
        })
    }
}

/// The plugin's constructor (`new_lnd` of the root module).
pub fn new_lnd(net_type: &str) -> Result<O2ibLnd, LndError> {
    lnd_api::entry::check_net_type("lnd-o2ib", NET_TYPE, net_type).map(|()| O2ibLnd)
}

lnd_api::export_lnd_plugin! {
    name: "lnd-o2ib",
    version: env!("CARGO_PKG_VERSION"),
    net_types: [("o2ib", 5)],
    new_lnd: new_lnd,
    // A GET's sink MD comes with the GET when it is too big for an
    // IMMEDIATE REPLY: the peer RDMA-writes the REPLY's data into it.
    get_sink_min: GET_SINK_MIN,
    params: &crate::params::DECLS,
}

/// The smallest GET sink the NIs take with the GET (lnd-api's GET_SINK):
/// what does not fit an IMMEDIATE REPLY (3976 bytes), where an optimized
/// GET starts. An in-process host wraps [`O2ibLnd`] with
/// `LndHandle::new(O2ibLnd).with_get_sink_min(Some(GET_SINK_MIN))`.
pub const GET_SINK_MIN: u32 = ni::GET_SINK_MIN;
