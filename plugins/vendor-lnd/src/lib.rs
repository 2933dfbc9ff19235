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
//!
//! ## Payloads: `send_span`/`recv_span` (lnd-api 1.1)
//!
//! The host hands payloads over as [`PayloadSpan`]s: a window (offset, length)
//! into the MD's fragment list, shared by reference count, so a message costs
//! the host no allocation. This LND implements [`LndNi::send_span`] and
//! [`LndNi::recv_span`] as its real data path: a send keeps the sender's span
//! with the message until the receiver's `recv_span` copies it, piece by piece,
//! into the receiver's span ([`PayloadSpan::copy_to`]), then both sides are
//! finalized. Holding a span holds the MD's memory, which is what the contract
//! asks (valid until `finalize`), without copying anything.
//!
//! [`LndNi::send`] and [`LndNi::recv`] (the lnd-api 1.0 methods, still
//! required by the trait, and what a host built against lnd-api 1.0 calls)
//! are thin wrappers that split their `Payload` off as a span and take the
//! same path. A plugin that implements only those keeps working: the
//! trait's default `send_span`/`recv_span` make a `Payload` and call them;
//! for a plugin built against lnd-api 1.0, which has no span interface at
//! all, the host does the same.

#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;

use lnd_api::abi_stable::std_types::ROption;
use lnd_api::{
    errno, Completion, HealthStatus, HostHandle, Lnd, LndError, LndNi, LndNiHandle, LogLevel,
    NetId, NetTunables, NiConfig, NiInfo, NiStarted, Nid, ParamDecl, PayloadSpan, RxAction,
    RxToken, Tunable, TxMsg,
};

/// The LND type number this example claims (outside upstream's table).
pub const VND_LND_TYPE: u8 = 0xF0;

lnd_api::export_lnd_plugin! {
    name: "vendor-lnd",
    version: env!("CARGO_PKG_VERSION"),
    net_types: [("vnd", VND_LND_TYPE)],
    new_lnd: new_lnd,
    params: &PARAMS,
    set_params: set_params,
}

/// This LND's module parameters (lnd-api 1.2): `options kvndlnd timeout=N`
/// or `lnetd --param timeout=N`. The host checks values against this table
/// before the plugin sees them.
static PARAMS: [ParamDecl; 1] = [ParamDecl::int(
    "kvndlnd",
    "timeout",
    "50",
    1,
    86400,
    "LND timeout of vnd NIs in seconds (net show -v: lnd tunables timeout)",
)];

/// `timeout` in force: the declared default until the host gives a value.
static TIMEOUT_SECS: AtomicU32 = AtomicU32::new(50);

/// Called once at load with the values given for [`PARAMS`], checked and in
/// canonical form (decimal); NIs started afterwards use them.
fn set_params(values: &[Tunable]) -> Result<(), LndError> {
    for v in values {
        match v.name.as_str() {
            "timeout" => {
                let secs = v.value.as_str().parse::<u32>().map_err(|_| {
                    LndError::new(errno::EINVAL, format!("bad timeout {:?}", v.value))
                })?;
                TIMEOUT_SECS.store(secs, Ordering::Relaxed);
            }
            other => {
                return Err(LndError::new(
                    errno::EINVAL,
                    format!("vendor-lnd has no parameter {other}"),
                ))
            }
        }
    }
    Ok(())
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

/// A message on its way: what the sender handed over, kept until the
/// receiver's `recv_span` has taken the payload.
struct InFlight {
    /// The sending NI (it finalizes `tx.token`).
    from: Arc<NiState>,
    /// The message; its `payload` field is empty (the bytes are in `payload`).
    tx: TxMsg,
    /// The sender's payload: a window into its MD's memory, not a copy. It
    /// keeps that memory alive until the message is finalized.
    payload: PayloadSpan,
}

struct NiState {
    nid: Nid,
    host: HostHandle,
    /// Messages for this NI's worker thread; `None` once shut down. The
    /// thread ends when the last sender is gone.
    queue: Mutex<Option<Sender<InFlight>>>,
    /// Received messages whose header went to the host, waiting for
    /// `recv_span`, by receive token.
    pending: Mutex<HashMap<u64, InFlight>>,
    next_rx: AtomicU64,
}

impl Lnd for VendorLnd {
    fn startup(&self, cfg: NiConfig, host: HostHandle) -> Result<NiStarted, LndError> {
        let addr = fabric().next_addr.fetch_add(1, Ordering::Relaxed) + 1;
        let net = NetId::new(VND_LND_TYPE, cfg.net.num);
        let nid = Nid::new4(net, addr);
        let (tx, rx) = channel::<InFlight>();
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
                for msg in rx {
                    worker.deliver(msg);
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
        let timeout = TIMEOUT_SECS.load(Ordering::Relaxed);
        let info = NiInfo {
            nid,
            interfaces: cfg.interfaces.clone(),
            tunables,
            lnd_tunables: vec![Tunable::new("timeout", timeout)].into(),
            timeout_secs: timeout,
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
    /// On the worker thread: hand the header to the host; `recv_span`
    /// follows, inside `parse` or later from another thread.
    fn deliver(&self, msg: InFlight) {
        let rx = self.next_rx.fetch_add(1, Ordering::Relaxed);
        let (hdr, src, token) = (msg.tx.hdr, msg.from.nid, msg.tx.token);
        let from = Arc::clone(&msg.from);
        // Parked before `parse`: the host may call `recv_span` inside it.
        lock(&self.pending).insert(rx, msg);
        // No lock of ours is held while the host runs.
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
    /// The real send path: queue the message, with its payload span, to the
    /// target NI's worker thread. Nothing is copied here; the span keeps the
    /// sender's memory until the receiver takes it and we finalize.
    fn send_span(&self, tx: TxMsg, payload: PayloadSpan) -> Result<(), LndError> {
        let target = lock(&fabric().nis).get(&tx.target).cloned();
        let Some(target) = target else {
            return Err(LndError::new(
                errno::EHOSTUNREACH,
                format!("no vnd NI {:?} in this process", tx.target),
            ));
        };
        let queue = lock(&target.queue).clone();
        let msg = InFlight {
            from: Arc::clone(&self.0),
            tx,
            payload,
        };
        // An `Err` means we took nothing: the host completes the message and
        // we must not finalize it (the span is dropped with `msg`).
        match queue {
            Some(q) => q
                .send(msg)
                .map_err(|_| LndError::new(errno::ENETDOWN, "the target vnd NI is shutting down")),
            None => Err(LndError::new(
                errno::ENETDOWN,
                "the target vnd NI is shut down",
            )),
        }
    }

    /// The real receive path: copy the sender's span into the receiver's
    /// (`payload.len()` is mlen; the sender may have sent more, `rlen`, and
    /// the rest is dropped), then finalize both messages.
    fn recv_span(&self, rx: RxAction, payload: PayloadSpan) -> Result<(), LndError> {
        let p = lock(&self.0.pending).remove(&rx.rx.0).ok_or_else(|| {
            LndError::new(
                errno::EINVAL,
                format!("vnd: unknown receive token {}", rx.rx.0),
            )
        })?;
        let mut status = Completion::OK;
        // `msg: None` means discard: nothing to copy and nothing to finalize
        // on this side; the sender is still done.
        if let ROption::RSome(msg) = rx.msg {
            // Piece by piece from the sender's fragments into the receiver's,
            // with no intermediate buffer; it stops at the shorter of the two.
            // A `Busy` (the memory borrowed elsewhere) or a short copy fails
            // the message rather than delivering part of it silently.
            let copied = p.payload.copy_to(&payload);
            if !matches!(copied, Ok(n) if n == payload.len()) {
                status = Completion::failed(errno::EIO, HealthStatus::LOCAL_ERROR);
            }
            self.0.host.finalize(msg, status);
        }
        p.from.host.finalize(p.tx.token, status);
        Ok(())
    }

    /// lnd-api 1.0's send, for a host that still calls it: its payload is a
    /// fragment list of its own. Wrapping that list in a span copies no
    /// bytes (it allocates only the shared list's count) and takes the real
    /// path. A host of lnd-api 1.1 calls `send_span` directly.
    fn send(&self, tx: TxMsg) -> Result<(), LndError> {
        let (tx, payload) = tx.split_payload();
        self.send_span(tx, payload)
    }

    /// lnd-api 1.0's recv, wrapped the same way.
    fn recv(&self, rx: RxAction) -> Result<(), LndError> {
        let (rx, payload) = rx.split_payload();
        self.recv_span(rx, payload)
    }

    fn shutdown(&self) {
        lock(&fabric().nis).remove(&self.0.nid);
        // Dropping our sender stops the worker once it has delivered what
        // was already queued (a send racing with this one may still queue).
        drop(lock(&self.0.queue).take());
        // Messages that never got their `recv_span`: give them back to
        // their senders (collected first: no lock held while calling the host).
        let pending: Vec<InFlight> = lock(&self.0.pending).drain().map(|(_, p)| p).collect();
        for p in pending {
            p.from.host.finalize(
                p.tx.token,
                Completion::failed(errno::ECANCELED, HealthStatus::REMOTE_DROPPED),
            );
        }
    }
}
