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
//! Threads: the plugin owns `nscheds` schedulers (ksocklnd's scheduler
//! threads; by default as many as ksocklnd starts, see [`auto_scheds`]),
//! threads named `lnd-sock` that each run a single-threaded tokio runtime,
//! created at the first NI start-up; nothing assumes an ambient runtime.
//! Each connection goes to the scheduler of its peer's other connections,
//! or for a new peer to the one with the fewest connections, and stays
//! there: its reader and writer run on that one thread and never migrate,
//! so a message is read, handed to LNet and its reply written without a
//! hand-off, however many schedulers there are. The first scheduler also runs the acceptor,
//! connects, handshakes and the link watch. Host callbacks (`parse`,
//! `finalize`, `notify`, `log`) come from those threads, or from the host's
//! own thread inside `send_span` (a send written directly, see
//! [`conn::Conn::enqueue`]), never with one of our locks held.

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

static SCHEDS: OnceLock<Result<Scheds, String>> = OnceLock::new();

/// Schedulers to start (`nscheds`; 0: [`auto_scheds`]). A connection's
/// messages run to completion on its one thread (read, LNet, the reply's
/// direct write) whatever the count; more serve many peers in parallel.
static NSCHEDS: AtomicUsize = AtomicUsize::new(0);

/// ksocklnd's count of scheduler threads when `nscheds` is 0, for `cpus`
/// CPUs: half of them (the other half is left to the layers above), at
/// least three, never more than there are.
fn auto_scheds(cpus: usize) -> usize {
    (cpus / 2).max(3).min(cpus).clamp(1, params::NSCHEDS_MAX)
}

/// The CPUs this process may run on (its affinity, e.g. `cpu_pattern`'s).
fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The scheduler threads: each a single-threaded runtime and the number of
/// connections it runs.
struct Scheds {
    rts: Vec<tokio::runtime::Handle>,
    conns: Arc<[AtomicUsize]>,
}

/// Starts `n` scheduler threads, each building and then driving its own
/// runtime for the life of the process (plugin code stays mapped).
fn start_scheds(n: usize) -> Result<Scheds, String> {
    let mut rts = Vec::with_capacity(n);
    for i in 0..n {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("lnd-sock".into())
            .spawn(move || {
                match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => {
                        let _ = tx.send(Ok(rt.handle().clone()));
                        rt.block_on(std::future::pending::<()>());
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e.to_string()));
                    }
                }
            })
            .map_err(|e| format!("scheduler thread {i}: {e}"))?;
        let rt = rx
            .recv()
            .map_err(|_| format!("scheduler thread {i} ended at start-up"))??;
        rts.push(rt);
    }
    let conns = (0..n).map(|_| AtomicUsize::new(0)).collect();
    Ok(Scheds { rts, conns })
}

fn scheds() -> Result<&'static Scheds, LndError> {
    SCHEDS
        .get_or_init(|| {
            start_scheds(match NSCHEDS.load(Ordering::Relaxed) {
                0 => auto_scheds(cpus()),
                n => n,
            })
        })
        .as_ref()
        .map_err(|e| {
            LndError::new(
                errno::ENOMEM,
                format!("lnd-sock: cannot start its scheduler threads: {e}"),
            )
        })
}

/// The first scheduler's runtime: the acceptor, connects, handshakes, the
/// link watch and other NI tasks run there (started once, never shut down).
pub fn runtime() -> Result<tokio::runtime::Handle, LndError> {
    Ok(scheds()?.rts[0].clone())
}

/// Every scheduler's runtime, the first one first.
pub fn schedulers() -> Result<Vec<tokio::runtime::Handle>, LndError> {
    Ok(scheds()?.rts.clone())
}

/// A connection's place on a scheduler: counted there until dropped.
#[derive(Debug)]
pub struct SchedSlot {
    rt: tokio::runtime::Handle,
    index: usize,
    conns: Arc<[AtomicUsize]>,
}

impl SchedSlot {
    /// The scheduler's runtime.
    pub fn runtime(&self) -> &tokio::runtime::Handle {
        &self.rt
    }

    /// Which scheduler (0-based).
    pub fn index(&self) -> usize {
        self.index
    }
}

impl Drop for SchedSlot {
    fn drop(&mut self) {
        self.conns[self.index].fetch_sub(1, Ordering::Relaxed);
    }
}

/// A scheduler for a new connection, counted there until the slot drops:
/// `prefer` (the one its peer's other connections run on) when there is
/// such a scheduler, else the one with the fewest connections (the first
/// of equals), as ksocklnd chooses.
pub fn scheduler_for_conn(prefer: Option<usize>) -> Result<SchedSlot, LndError> {
    let s = scheds()?;
    let index = choose_sched(&s.conns, prefer);
    s.conns[index].fetch_add(1, Ordering::Relaxed);
    Ok(SchedSlot {
        rt: s.rts[index].clone(),
        index,
        conns: s.conns.clone(),
    })
}

/// `prefer` if it names a scheduler, else the one with the fewest
/// connections (the first of equals).
fn choose_sched(conns: &[AtomicUsize], prefer: Option<usize>) -> usize {
    prefer.filter(|&i| i < conns.len()).unwrap_or_else(|| {
        (0..conns.len())
            .min_by_key(|&i| conns[i].load(Ordering::Relaxed))
            .unwrap_or(0)
    })
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
        if SCHEDS.get().is_none() {
            NSCHEDS.store(params.nscheds, Ordering::Relaxed);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(n: &[usize]) -> Arc<[AtomicUsize]> {
        n.iter().map(|&c| AtomicUsize::new(c)).collect()
    }

    #[test]
    fn nscheds_0_starts_half_the_cpus_at_least_three_at_most_all() {
        let got: Vec<usize> = [1, 2, 3, 4, 6, 8, 16, 64, 1024]
            .into_iter()
            .map(auto_scheds)
            .collect();
        assert_eq!(got, [1, 2, 3, 3, 3, 4, 8, 32, params::NSCHEDS_MAX]);
    }

    #[test]
    fn a_new_peer_goes_to_the_scheduler_with_fewest_connections() {
        assert_eq!(choose_sched(&counts(&[0, 0]), None), 0, "first of equals");
        assert_eq!(choose_sched(&counts(&[3, 1, 2]), None), 1);
        assert_eq!(choose_sched(&counts(&[2, 2, 0]), None), 2);
    }

    #[test]
    fn a_peers_next_connection_joins_its_others() {
        assert_eq!(
            choose_sched(&counts(&[5, 0]), Some(0)),
            0,
            "busier, but the peer's"
        );
        assert_eq!(
            choose_sched(&counts(&[1, 0]), Some(7)),
            1,
            "a scheduler that does not exist is not preferred"
        );
    }

    #[test]
    fn a_connection_leaves_its_schedulers_count_when_its_slot_drops() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let conns = counts(&[0, 0]);
        let take = |prefer| {
            let index = choose_sched(&conns, prefer);
            conns[index].fetch_add(1, Ordering::Relaxed);
            SchedSlot {
                rt: rt.handle().clone(),
                index,
                conns: conns.clone(),
            }
        };
        let a = take(None);
        let b = take(None);
        let a2 = take(Some(a.index()));
        assert_eq!((a.index(), b.index(), a2.index()), (0, 1, 0));
        drop(a);
        drop(a2);
        assert_eq!(conns[0].load(Ordering::Relaxed), 0);
        assert_eq!(
            take(None).index(),
            0,
            "the emptied scheduler is chosen again"
        );
    }
}
