//! # vendor-lnd: an LND plugin built the way a vendor builds one
//!
//! It depends on `lnd-api` alone and builds to `libvendor_lnd.so`, which
//! `lnetctl plugin load` (or `net add --net vnd`) loads at run time.
//!
//! The network it drives is a process-local fabric: every NI of network type
//! `vnd` in one LNet process gets the next address (`1@vnd`, `2@vnd`, ...), and
//! messages between them are moved by a worker thread per NI. Small as it is,
//! it follows the whole contract of `lnd_api::lnd`: the plugin owns its
//! threads, a send belongs to the LND until it finalizes it, a received header
//! goes to the host through `parse`, and the payload moves only when `recv`
//! says where (inline or delayed), straight from the sender's memory into the
//! receiver's.

#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;

use lnd_api::{
    errno, Completion, HealthStatus, HostHandle, Lnd, LndError, LndNi, LndNiHandle, LogLevel,
    NetId, NetTunables, NiConfig, NiInfo, NiStarted, Nid, RxAction, RxToken, Tunable, TxMsg,
};

/// The LND type number this example claims (outside upstream's table).
pub const VND_LND_TYPE: u8 = 0xF0;

lnd_api::export_lnd_plugin! {
    name: "vendor-lnd",
    version: env!("CARGO_PKG_VERSION"),
    net_types: [("vnd", VND_LND_TYPE)],
    new_lnd: new_lnd,
}

fn new_lnd(net_type: &str) -> Result<VendorLnd, LndError> {
    if net_type != "vnd" {
        return Err(LndError::new(
            errno::EINVAL,
            format!("vendor-lnd does not provide network type {net_type}"),
        ));
    }
    Ok(VendorLnd)
}

/// The process-wide fabric: NIs by NID.
#[derive(Default)]
struct Fabric {
    nis: Mutex<HashMap<Nid, Arc<NiState>>>,
    next_addr: AtomicU32,
}

fn fabric() -> &'static Fabric {
    static FABRIC: OnceLock<Fabric> = OnceLock::new();
    FABRIC.get_or_init(Fabric::default)
}

/// The LND object for network type `vnd`.
struct VendorLnd;

/// Work for an NI's worker thread.
enum Work {
    /// A message from another NI of the fabric.
    Deliver { from: Arc<NiState>, tx: TxMsg },
    /// Stop the thread.
    Stop,
}

/// A received message waiting for `recv`.
struct Pending {
    from: Arc<NiState>,
    tx: TxMsg,
}

struct NiState {
    nid: Nid,
    host: HostHandle,
    queue: Mutex<Option<Sender<Work>>>,
    pending: Mutex<HashMap<u64, Pending>>,
    next_rx: AtomicU64,
}

impl Lnd for VendorLnd {
    fn startup(&self, cfg: NiConfig, host: HostHandle) -> Result<NiStarted, LndError> {
        let addr = fabric().next_addr.fetch_add(1, Ordering::Relaxed) + 1;
        let net = NetId::new(VND_LND_TYPE, cfg.net.num);
        let nid = Nid::new4(net, addr);
        let (tx, rx) = channel::<Work>();
        let ni = Arc::new(NiState {
            nid,
            host,
            queue: Mutex::new(Some(tx)),
            pending: Mutex::new(HashMap::new()),
            next_rx: AtomicU64::new(1),
        });
        let worker = Arc::clone(&ni);
        thread::Builder::new()
            .name(format!("vnd-{addr}"))
            .spawn(move || {
                while let Ok(Work::Deliver { from, tx }) = rx.recv() {
                    worker.deliver(from, tx);
                }
            })
            .map_err(|e| {
                LndError::new(errno::ENOMEM, format!("cannot start the vnd worker: {e}"))
            })?;
        lock(&fabric().nis).insert(nid, Arc::clone(&ni));
        let t = cfg.tunables;
        let tunables = NetTunables {
            peer_timeout: if t.peer_timeout >= 0 {
                t.peer_timeout
            } else {
                180
            },
            peer_credits: if t.peer_credits > 0 {
                t.peer_credits
            } else {
                8
            },
            peer_buffer_credits: if t.peer_buffer_credits > 0 {
                t.peer_buffer_credits
            } else {
                0
            },
            credits: if t.credits > 0 { t.credits } else { 256 },
        };
        let info = NiInfo {
            nid,
            interfaces: cfg.interfaces.clone(),
            tunables,
            lnd_tunables: vec![Tunable::new("timeout", 50)].into(),
            timeout_secs: 50,
        };
        Ok(NiStarted {
            info,
            ni: LndNiHandle::new(NiRef(ni)),
        })
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A poisoned lock only means another thread panicked while holding it;
    // the maps stay consistent (every update is a single insert or remove).
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl NiState {
    /// On the worker thread: hand the header to the host; `recv` follows.
    fn deliver(&self, from: Arc<NiState>, tx: TxMsg) {
        let rx = self.next_rx.fetch_add(1, Ordering::Relaxed);
        let (hdr, src) = (tx.hdr, from.nid);
        let token = tx.token;
        lock(&self.pending).insert(
            rx,
            Pending {
                from: Arc::clone(&from),
                tx,
            },
        );
        if let Err(e) = self.host.parse(hdr, src, RxToken(rx), false) {
            self.host.log(
                LogLevel::WARN,
                &format!("vnd: header from {src:?} refused: {e}"),
            );
            if lock(&self.pending).remove(&rx).is_some() {
                from.host.finalize(
                    token,
                    Completion::failed(errno::EPROTO, HealthStatus::REMOTE_ERROR),
                );
            }
        }
    }
}

/// The NI object handed to the host.
struct NiRef(Arc<NiState>);

impl LndNi for NiRef {
    fn send(&self, tx: TxMsg) -> Result<(), LndError> {
        let target = lock(&fabric().nis).get(&tx.target).cloned();
        let Some(target) = target else {
            return Err(LndError::new(
                errno::EHOSTUNREACH,
                format!("no vnd NI {:?} in this process", tx.target),
            ));
        };
        let queue = lock(&target.queue).clone();
        match queue {
            Some(q) => q
                .send(Work::Deliver {
                    from: Arc::clone(&self.0),
                    tx,
                })
                .map_err(|_| LndError::new(errno::ENETDOWN, "the target vnd NI is shutting down")),
            None => Err(LndError::new(
                errno::ENETDOWN,
                "the target vnd NI is shut down",
            )),
        }
    }

    fn recv(&self, rx: RxAction) -> Result<(), LndError> {
        let p = lock(&self.0.pending).remove(&rx.rx.0).ok_or_else(|| {
            LndError::new(
                errno::EINVAL,
                format!("vnd: unknown receive token {}", rx.rx.0),
            )
        })?;
        let mut status = Completion::OK;
        if let lnd_api::abi_stable::std_types::ROption::RSome(msg) = rx.msg {
            let mlen = rx.payload.len();
            let copied =
                p.tx.payload
                    .sub(0, mlen.min(p.tx.payload.len()))
                    .map(|src| src.copy_to(&rx.payload));
            if !matches!(copied, Some(Ok(n)) if n == mlen) {
                status = Completion::failed(errno::EIO, HealthStatus::LOCAL_ERROR);
            }
            self.0.host.finalize(msg, status);
        }
        p.from.host.finalize(p.tx.token, status);
        Ok(())
    }

    fn shutdown(&self) {
        lock(&fabric().nis).remove(&self.0.nid);
        if let Some(q) = lock(&self.0.queue).take() {
            let _ = q.send(Work::Stop);
        }
        let pending: Vec<Pending> = lock(&self.0.pending).drain().map(|(_, p)| p).collect();
        for p in pending {
            p.from.host.finalize(
                p.tx.token,
                Completion::failed(errno::ECANCELED, HealthStatus::REMOTE_DROPPED),
            );
        }
    }
}
