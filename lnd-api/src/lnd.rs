//! The LND contract: what a plugin implements ([`Lnd`], [`LndNi`]) and what the
//! host gives it ([`HostHandle`]).
//!
//! # Contract
//!
//! * **Objects.** A plugin's root module makes one [`Lnd`] per network type
//!   when the host first needs it. [`Lnd::startup`] brings up one NI and
//!   returns its [`NiInfo`] and an [`LndNi`] object that serves that NI until
//!   [`LndNi::shutdown`].
//! * **Who owns a message.** A send belongs to the LND from a successful
//!   [`LndNi::send`] until the LND calls [`HostHandle::finalize`] with its
//!   token, exactly once, after it no longer needs the payload. A failed `send`
//!   (an `Err`) means the LND took nothing: the host completes the message and
//!   the LND must not finalize it. The same holds for a receive from
//!   [`LndNi::recv`] with `msg: Some(token)`.
//! * **Receiving.** The LND reads a header and calls [`HostHandle::parse`]
//!   with a receive token of its choosing. When `parse` returns `Ok`, the host
//!   calls [`LndNi::recv`] exactly once for that token, either before `parse`
//!   returns (the usual case, on the same thread) or later from another thread
//!   (`delayed`). The LND must not read the payload until `recv` says where it
//!   goes. `parse` returning `Err` is a protocol error: the LND closes that
//!   connection and `recv` will not come.
//! * **Memory.** Payloads point at the MD's memory (no copies) and stay
//!   valid until the message is finalized. Since lnd-api 1.1 the host calls
//!   [`LndNi::send_span`] and [`LndNi::recv_span`], whose payload is a
//!   [`crate::PayloadSpan`] (a window into the MD's shared fragment list, no
//!   allocation per message); `TxMsg::payload` and `RxAction::payload` are
//!   then empty. Their defaults make a [`crate::Payload`] fragment list and
//!   call [`LndNi::send`] and [`LndNi::recv`], so an LND that implements only
//!   those works unchanged. A plugin built against lnd-api 1.0 has no span
//!   methods at all: the host finds the [`SPAN_IO`] extension missing and
//!   makes the fragment list itself.
//! * **A GET's sink** (lnd-api 1.3, extension [`GET_SINK`]). An LND that
//!   asks for it (`get_sink_min` in [`crate::export_lnd_plugin!`], or
//!   [`LndHandle::with_get_sink_min`] in process) gets, with a GET it is to send whose sink
//!   (the window of the MD the REPLY will land in: the MD from offset 0,
//!   `sink_length` bytes) is at least that long, the sink as `send_span`'s
//!   payload; `hdr.payload_length` stays 0 and nothing of it is sent as the
//!   GET's payload. The LND may have the REPLY's data written straight into
//!   it (o2iblnd's optimized GET: the peer RDMA-writes it) until the REPLY
//!   is handed to the host; the host's `recv_span` for that REPLY then
//!   names a prefix of the same memory ([`crate::PayloadSpan::same_memory`]),
//!   which needs no copy. Hosts without the extension, and every other LND,
//!   send GETs with an empty payload as before.
//! * **Threads.** Each plugin runs its own threads (and its own runtime, if
//!   it wants one); no runtime is shared with the host. The host may call any
//!   `LndNi` method from any thread, including from inside a host callback
//!   made by the LND (`parse` may call `recv`, `finalize` may call `send`), so
//!   an LND must not hold its own locks while it calls the host.
//!   [`LndNi::send`] and [`LndNi::recv`] must not block on the network.
//! * **Panics.** Every entry point in both directions runs inside
//!   `catch_unwind`; a panic becomes an [`LndError`] (`EFAULT`) or, where no
//!   error can be returned, is logged and dropped. LNDs still must not panic on
//!   any input.
//! * **Shutdown.** After [`LndNi::shutdown`] returns, the LND has finalized
//!   every message it owned for that NI (with an error) and makes no more
//!   callbacks for it.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use abi_stable::sabi_trait;
use abi_stable::sabi_trait::prelude::TD_Opaque;
use abi_stable::std_types::{RArc, RBox, RResult, RStr, RString};
use abi_stable::StableAbi;

use crate::hdr::Hdr;
use crate::mem::PayloadSpan;
use crate::nid::Nid;
use crate::types::{
    Completion, LndError, LogLevel, MsgToken, NiConfig, NiInfo, PeerAliveness, RxAction, RxToken,
    TxMsg,
};

/// One LND (one network type) as a plugin implements it (`struct lnet_lnd`).
pub trait Lnd: Send + Sync + 'static {
    /// Brings up one NI (`lnd_startup`): choose the interface, fill unset
    /// tunables, start serving. `host` is the NI's callback object.
    fn startup(&self, cfg: NiConfig, host: HostHandle) -> Result<NiStarted, LndError>;

    /// An LND-wide control command; the answer is text (YAML) for the user.
    fn ctl(&self, cmd: &str, arg: &str) -> Result<String, LndError> {
        let _ = arg;
        Err(LndError::unsupported(&format!("control command {cmd:?}")))
    }
}

/// The name under which a plugin built against lnd-api 1.3 or later offers
/// [`GetSink`]: its NIs take a GET's sink as `send_span`'s payload (see the
/// module docs). [`crate::export_lnd_plugin!`] offers it when given
/// `get_sink_min`.
pub const GET_SINK: &str = "lnd-api.get-sink.v1";

/// The lnd-api 1.3 extension [`GET_SINK`].
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq)]
pub struct GetSink {
    /// The smallest sink, in bytes, the LND wants handed over; a GET with a
    /// smaller one comes with an empty payload.
    pub min_len: u32,
}

/// One NI served by an LND.
pub trait LndNi: Send + Sync + 'static {
    /// Transmits a message (`lnd_send`); must not block.
    fn send(&self, tx: TxMsg) -> Result<(), LndError>;

    /// Delivers or discards a parsed message's payload (`lnd_recv`).
    fn recv(&self, rx: RxAction) -> Result<(), LndError>;

    /// Transmits a message whose payload is `payload`; `tx.payload` is
    /// empty (lnd-api 1.1; what the host calls). The default makes a
    /// fragment list (one heap allocation) and calls [`LndNi::send`].
    fn send_span(&self, tx: TxMsg, payload: PayloadSpan) -> Result<(), LndError> {
        self.send(TxMsg {
            payload: payload.to_payload(),
            ..tx
        })
    }

    /// Delivers or discards a parsed message's payload into `payload` (mlen
    /// is `payload.len()`); `rx.payload` is empty (lnd-api 1.1; what the
    /// host calls). The default makes a fragment list and calls
    /// [`LndNi::recv`].
    fn recv_span(&self, rx: RxAction, payload: PayloadSpan) -> Result<(), LndError> {
        self.recv(RxAction {
            payload: payload.to_payload(),
            ..rx
        })
    }

    /// The host is about to make a received message wait (`lnd_eager_recv`):
    /// free scarce resources now. The default keeps them (unsupported).
    fn eager_recv(&self, rx: RxToken) -> Result<(), LndError> {
        let _ = rx;
        Err(LndError::unsupported("eager_recv"))
    }

    /// The host marked this peer NI down.
    fn notify_peer_down(&self, peer: Nid) {
        let _ = peer;
    }

    /// What the LND knows about a peer's aliveness.
    fn query(&self, peer: Nid) -> PeerAliveness {
        let _ = peer;
        PeerAliveness::UNKNOWN
    }

    /// An NI control command (list or close connections, ...).
    fn ctl(&self, cmd: &str, arg: &str) -> Result<String, LndError> {
        let _ = arg;
        Err(LndError::unsupported(&format!("control command {cmd:?}")))
    }

    /// Closes everything, finalizes every owned message with an error, stops
    /// calling back (`lnd_shutdown`).
    fn shutdown(&self);
}

/// The host's services to one NI of an LND; implemented by LNet.
pub trait Host: Send + Sync + 'static {
    /// A header arrived from `from` (the previous hop); see the module docs.
    fn parse(&self, hdr: Hdr, from: Nid, rx: RxToken, rdma_req: bool) -> Result<(), LndError>;
    /// A message the LND owned is finished.
    fn finalize(&self, msg: MsgToken, status: Completion);
    /// A peer was seen alive or found dead (`lnet_notify`).
    fn notify(&self, peer: Nid, alive: bool);
    /// The NI's link went up or down.
    fn link_state(&self, up: bool);
    /// A log line from the LND.
    fn log(&self, level: LogLevel, msg: &str);
}

/// What [`Lnd::startup`] returns.
pub struct NiStarted {
    /// The NI as it came up.
    pub info: NiInfo,
    /// The object serving it.
    pub ni: LndNiHandle,
}

// ---------------------------------------------------------------------------
// FFI-safe trait objects. The 1.0.0 ones are frozen: abi_stable refuses a
// plugin whose vtables have fewer entries than the host's, so appending a
// method would shut out every older plugin. lnd-api 1.1 adds its methods as
// new objects offered through the named extension [`SPAN_IO`]; a host finds
// it missing in a 1.0 plugin and uses the 1.0 objects.
// ---------------------------------------------------------------------------

/// FFI form of [`Lnd`] (lnd-api 1.0).
#[sabi_trait]
pub trait LndFfi: Send + Sync {
    /// See [`Lnd::startup`].
    fn startup(&self, cfg: NiConfig, host: HostFfiArc) -> RResult<NiStartedFfi, LndError>;
    /// See [`Lnd::ctl`].
    #[sabi(last_prefix_field)]
    fn ctl(&self, cmd: RStr<'_>, arg: RStr<'_>) -> RResult<RString, LndError>;
}

/// FFI form of [`LndNi`] (lnd-api 1.0).
#[sabi_trait]
pub trait LndNiFfi: Send + Sync {
    /// See [`LndNi::send`].
    fn send(&self, tx: TxMsg) -> RResult<(), LndError>;
    /// See [`LndNi::recv`].
    fn recv(&self, rx: RxAction) -> RResult<(), LndError>;
    /// See [`LndNi::eager_recv`].
    fn eager_recv(&self, rx: RxToken) -> RResult<(), LndError>;
    /// See [`LndNi::notify_peer_down`].
    fn notify_peer_down(&self, peer: Nid);
    /// See [`LndNi::query`].
    fn query(&self, peer: Nid) -> PeerAliveness;
    /// See [`LndNi::ctl`].
    fn ctl(&self, cmd: RStr<'_>, arg: RStr<'_>) -> RResult<RString, LndError>;
    /// See [`LndNi::shutdown`].
    #[sabi(last_prefix_field)]
    fn shutdown(&self);
}

/// FFI form of [`Host`].
#[sabi_trait]
pub trait HostFfi: Send + Sync {
    /// See [`Host::parse`].
    fn parse(&self, hdr: Hdr, from: Nid, rx: RxToken, rdma_req: bool) -> RResult<(), LndError>;
    /// See [`Host::finalize`].
    fn finalize(&self, msg: MsgToken, status: Completion);
    /// See [`Host::notify`].
    fn notify(&self, peer: Nid, alive: bool);
    /// See [`Host::link_state`].
    fn link_state(&self, up: bool);
    /// See [`Host::log`].
    #[sabi(last_prefix_field)]
    fn log(&self, level: LogLevel, msg: RStr<'_>);
}

/// The name under which a plugin built against lnd-api 1.1 or later offers
/// [`SpanIo`] (every plugin exported with [`crate::export_lnd_plugin!`] does).
pub const SPAN_IO: &str = "lnd-api.span-io.v1";

/// The lnd-api 1.1 extension [`SPAN_IO`]: a constructor of LND objects
/// whose NIs take payloads as [`PayloadSpan`]s.
#[repr(C)]
#[derive(StableAbi)]
pub struct SpanIo {
    /// Makes the LND object for one of the module's `net_types` (by name).
    pub new_lnd: extern "C" fn(net_type: RStr<'_>) -> RResult<LndSpanFfiBox, LndError>,
}

/// FFI form of [`Lnd`] (lnd-api 1.1, through [`SpanIo`]).
#[sabi_trait]
pub trait LndSpanFfi: Send + Sync {
    /// See [`Lnd::startup`].
    fn startup(&self, cfg: NiConfig, host: HostFfiArc) -> RResult<NiStartedSpanFfi, LndError>;
    /// See [`Lnd::ctl`].
    #[sabi(last_prefix_field)]
    fn ctl(&self, cmd: RStr<'_>, arg: RStr<'_>) -> RResult<RString, LndError>;
}

/// FFI form of [`LndNi`] (lnd-api 1.1): payloads as [`PayloadSpan`]s.
#[sabi_trait]
pub trait LndNiSpanFfi: Send + Sync {
    /// See [`LndNi::send_span`].
    fn send_span(&self, tx: TxMsg, payload: PayloadSpan) -> RResult<(), LndError>;
    /// See [`LndNi::recv_span`].
    fn recv_span(&self, rx: RxAction, payload: PayloadSpan) -> RResult<(), LndError>;
    /// See [`LndNi::eager_recv`].
    fn eager_recv(&self, rx: RxToken) -> RResult<(), LndError>;
    /// See [`LndNi::notify_peer_down`].
    fn notify_peer_down(&self, peer: Nid);
    /// See [`LndNi::query`].
    fn query(&self, peer: Nid) -> PeerAliveness;
    /// See [`LndNi::ctl`].
    fn ctl(&self, cmd: RStr<'_>, arg: RStr<'_>) -> RResult<RString, LndError>;
    /// See [`LndNi::shutdown`].
    #[sabi(last_prefix_field)]
    fn shutdown(&self);
}

/// Owned FFI [`Lnd`] object (lnd-api 1.0).
pub type LndFfiBox = LndFfi_TO<'static, RBox<()>>;
/// Shared FFI [`LndNi`] object (lnd-api 1.0).
pub type LndNiFfiArc = LndNiFfi_TO<'static, RArc<()>>;
/// Owned FFI [`Lnd`] object (lnd-api 1.1).
pub type LndSpanFfiBox = LndSpanFfi_TO<'static, RBox<()>>;
/// Shared FFI [`LndNi`] object (lnd-api 1.1).
pub type LndNiSpanFfiArc = LndNiSpanFfi_TO<'static, RArc<()>>;
/// Shared FFI [`Host`] object.
pub type HostFfiArc = HostFfi_TO<'static, RArc<()>>;

/// FFI form of [`NiStarted`] (lnd-api 1.0).
#[repr(C)]
#[derive(StableAbi)]
pub struct NiStartedFfi {
    /// The NI as it came up.
    pub info: NiInfo,
    /// The object serving it.
    pub ni: LndNiFfiArc,
}

/// FFI form of [`NiStarted`] (lnd-api 1.1).
#[repr(C)]
#[derive(StableAbi)]
pub struct NiStartedSpanFfi {
    /// The NI as it came up.
    pub info: NiInfo,
    /// The object serving it.
    pub ni: LndNiSpanFfiArc,
}

pub(crate) fn guard<R>(
    what: &str,
    f: impl FnOnce() -> Result<R, LndError>,
) -> RResult<R, LndError> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r.into(),
        Err(p) => RResult::RErr(LndError::panicked(what, &*p)),
    }
}

pub(crate) fn guard_unit(what: &str, f: impl FnOnce()) {
    if let Err(p) = catch_unwind(AssertUnwindSafe(f)) {
        // Nowhere to return the error: report it on the host's log stream.
        let e = LndError::panicked(what, &*p);
        std::io::Write::write_all(&mut std::io::stderr(), format!("lnd-api: {e}\n").as_bytes())
            .ok();
    }
}

/// An NI handle the plugin returned from `startup` but still shares (or one
/// of the other form): serves it through the handle, which converts.
struct SharedNi(LndNiHandle);

impl LndNiFfi for SharedNi {
    fn send(&self, tx: TxMsg) -> RResult<(), LndError> {
        self.0.send(tx).into()
    }
    fn recv(&self, rx: RxAction) -> RResult<(), LndError> {
        self.0.recv(rx).into()
    }
    fn eager_recv(&self, rx: RxToken) -> RResult<(), LndError> {
        self.0.eager_recv(rx).into()
    }
    fn notify_peer_down(&self, peer: Nid) {
        self.0.notify_peer_down(peer)
    }
    fn query(&self, peer: Nid) -> PeerAliveness {
        self.0.query(peer)
    }
    fn ctl(&self, cmd: RStr<'_>, arg: RStr<'_>) -> RResult<RString, LndError> {
        self.0
            .ctl(cmd.as_str(), arg.as_str())
            .map(RString::from)
            .into()
    }
    fn shutdown(&self) {
        self.0.shutdown()
    }
}

impl LndNiSpanFfi for SharedNi {
    fn send_span(&self, tx: TxMsg, payload: PayloadSpan) -> RResult<(), LndError> {
        self.0.send_span(tx, payload).into()
    }
    fn recv_span(&self, rx: RxAction, payload: PayloadSpan) -> RResult<(), LndError> {
        self.0.recv_span(rx, payload).into()
    }
    fn eager_recv(&self, rx: RxToken) -> RResult<(), LndError> {
        self.0.eager_recv(rx).into()
    }
    fn notify_peer_down(&self, peer: Nid) {
        self.0.notify_peer_down(peer)
    }
    fn query(&self, peer: Nid) -> PeerAliveness {
        self.0.query(peer)
    }
    fn ctl(&self, cmd: RStr<'_>, arg: RStr<'_>) -> RResult<RString, LndError> {
        self.0
            .ctl(cmd.as_str(), arg.as_str())
            .map(RString::from)
            .into()
    }
    fn shutdown(&self) {
        self.0.shutdown()
    }
}

/// The 1.0 object behind an NI handle.
fn ni_ffi(h: LndNiHandle) -> LndNiFfiArc {
    match Arc::try_unwrap(h.0) {
        Ok(NiObj::V10(ni)) => ni,
        Ok(other) => {
            LndNiFfi_TO::from_ptr(RArc::new(SharedNi(LndNiHandle(Arc::new(other)))), TD_Opaque)
        }
        Err(shared) => LndNiFfi_TO::from_ptr(RArc::new(SharedNi(LndNiHandle(shared))), TD_Opaque),
    }
}

/// The 1.1 object behind an NI handle.
pub(crate) fn ni_span_ffi(h: LndNiHandle) -> LndNiSpanFfiArc {
    match Arc::try_unwrap(h.0) {
        Ok(NiObj::Span(ni)) => ni,
        Ok(other) => {
            LndNiSpanFfi_TO::from_ptr(RArc::new(SharedNi(LndNiHandle(Arc::new(other)))), TD_Opaque)
        }
        Err(shared) => {
            LndNiSpanFfi_TO::from_ptr(RArc::new(SharedNi(LndNiHandle(shared))), TD_Opaque)
        }
    }
}

/// A host object still shared by its creator: forwards.
struct SharedHost(Arc<HostFfiArc>);

impl HostFfi for SharedHost {
    fn parse(&self, hdr: Hdr, from: Nid, rx: RxToken, rdma_req: bool) -> RResult<(), LndError> {
        self.0.parse(hdr, from, rx, rdma_req)
    }
    fn finalize(&self, msg: MsgToken, status: Completion) {
        self.0.finalize(msg, status)
    }
    fn notify(&self, peer: Nid, alive: bool) {
        self.0.notify(peer, alive)
    }
    fn link_state(&self, up: bool) {
        self.0.link_state(up)
    }
    fn log(&self, level: LogLevel, msg: RStr<'_>) {
        self.0.log(level, msg)
    }
}

pub(crate) fn unwrap_host(h: HostHandle) -> HostFfiArc {
    Arc::try_unwrap(h.0)
        .unwrap_or_else(|shared| HostFfi_TO::from_ptr(RArc::new(SharedHost(shared)), TD_Opaque))
}

/// Adapts a plain [`Lnd`] to its FFI forms, catching panics.
pub(crate) struct LndShim<T>(pub(crate) T);

impl<T: Lnd> LndFfi for LndShim<T> {
    fn startup(&self, cfg: NiConfig, host: HostFfiArc) -> RResult<NiStartedFfi, LndError> {
        guard("lnd startup", || {
            let s = self.0.startup(cfg, HostHandle(Arc::new(host)))?;
            Ok(NiStartedFfi {
                info: s.info,
                ni: ni_ffi(s.ni),
            })
        })
    }
    fn ctl(&self, cmd: RStr<'_>, arg: RStr<'_>) -> RResult<RString, LndError> {
        guard("lnd ctl", || {
            self.0.ctl(cmd.as_str(), arg.as_str()).map(RString::from)
        })
    }
}

impl<T: Lnd> LndSpanFfi for LndShim<T> {
    fn startup(&self, cfg: NiConfig, host: HostFfiArc) -> RResult<NiStartedSpanFfi, LndError> {
        guard("lnd startup", || {
            let s = self.0.startup(cfg, HostHandle(Arc::new(host)))?;
            Ok(NiStartedSpanFfi {
                info: s.info,
                ni: ni_span_ffi(s.ni),
            })
        })
    }
    fn ctl(&self, cmd: RStr<'_>, arg: RStr<'_>) -> RResult<RString, LndError> {
        guard("lnd ctl", || {
            self.0.ctl(cmd.as_str(), arg.as_str()).map(RString::from)
        })
    }
}

struct LndNiShim<T>(T);

impl<T: LndNi> LndNiSpanFfi for LndNiShim<T> {
    fn send_span(&self, tx: TxMsg, payload: PayloadSpan) -> RResult<(), LndError> {
        guard("lnd send", || self.0.send_span(tx, payload))
    }
    fn recv_span(&self, rx: RxAction, payload: PayloadSpan) -> RResult<(), LndError> {
        guard("lnd recv", || self.0.recv_span(rx, payload))
    }
    fn eager_recv(&self, rx: RxToken) -> RResult<(), LndError> {
        guard("lnd eager_recv", || self.0.eager_recv(rx))
    }
    fn notify_peer_down(&self, peer: Nid) {
        guard_unit("lnd notify_peer_down", || self.0.notify_peer_down(peer))
    }
    fn query(&self, peer: Nid) -> PeerAliveness {
        match guard("lnd query", || Ok(self.0.query(peer))) {
            RResult::ROk(a) => a,
            RResult::RErr(_) => PeerAliveness::UNKNOWN,
        }
    }
    fn ctl(&self, cmd: RStr<'_>, arg: RStr<'_>) -> RResult<RString, LndError> {
        guard("lnd ctl", || {
            self.0.ctl(cmd.as_str(), arg.as_str()).map(RString::from)
        })
    }
    fn shutdown(&self) {
        guard_unit("lnd shutdown", || self.0.shutdown())
    }
}

struct HostShim<T>(T);

impl<T: Host> HostFfi for HostShim<T> {
    fn parse(&self, hdr: Hdr, from: Nid, rx: RxToken, rdma_req: bool) -> RResult<(), LndError> {
        guard("host parse", || self.0.parse(hdr, from, rx, rdma_req))
    }
    fn finalize(&self, msg: MsgToken, status: Completion) {
        guard_unit("host finalize", || self.0.finalize(msg, status))
    }
    fn notify(&self, peer: Nid, alive: bool) {
        guard_unit("host notify", || self.0.notify(peer, alive))
    }
    fn link_state(&self, up: bool) {
        guard_unit("host link_state", || self.0.link_state(up))
    }
    fn log(&self, level: LogLevel, msg: RStr<'_>) {
        guard_unit("host log", || self.0.log(level, msg.as_str()))
    }
}

/// An LND object of either interface version.
pub(crate) enum LndObj {
    /// From a plugin built against lnd-api 1.0.
    V10(LndFfiBox),
    /// lnd-api 1.1 (built-in LNDs, and plugins that offer [`SPAN_IO`]).
    Span(LndSpanFfiBox),
}

/// The host-side handle of an LND object (possibly from a plugin), and
/// whether its NIs take a GET's sink ([`GET_SINK`]: the smallest sink).
pub struct LndHandle(pub(crate) LndObj, pub(crate) Option<u32>);

impl LndHandle {
    /// Wraps a Rust [`Lnd`] (a built-in LND, or the plugin side of the export).
    pub fn new<T: Lnd>(lnd: T) -> Self {
        LndHandle(
            LndObj::Span(LndSpanFfi_TO::from_value(LndShim(lnd), TD_Opaque)),
            None,
        )
    }

    /// The same handle, its NIs taking GET sinks of at least `min` bytes
    /// ([`GET_SINK`]; what a plugin declares with `get_sink_min` in
    /// [`crate::export_lnd_plugin!`]), for an LND wrapped in process.
    pub fn with_get_sink_min(self, min: Option<u32>) -> Self {
        LndHandle(self.0, min)
    }

    /// [`GET_SINK`]: `Some(n)` when its NIs take, with a GET whose sink is
    /// at least `n` bytes, the sink as `send_span`'s payload (the host
    /// should then pass it); `None` for every LND without the extension,
    /// which gets GETs with an empty payload.
    pub fn get_sink_min(&self) -> Option<u32> {
        self.1
    }

    /// Whether its NIs take payloads as spans (lnd-api 1.1) rather than as
    /// fragment lists that the host makes per message (a 1.0 plugin).
    pub fn takes_spans(&self) -> bool {
        matches!(self.0, LndObj::Span(_))
    }

    /// See [`Lnd::startup`].
    pub fn startup(&self, cfg: NiConfig, host: HostHandle) -> Result<NiStarted, LndError> {
        let host = unwrap_host(host);
        match &self.0 {
            LndObj::V10(l) => l.startup(cfg, host).into_result().map(|s| NiStarted {
                info: s.info,
                ni: LndNiHandle(Arc::new(NiObj::V10(s.ni))),
            }),
            LndObj::Span(l) => l.startup(cfg, host).into_result().map(|s| NiStarted {
                info: s.info,
                ni: LndNiHandle(Arc::new(NiObj::Span(s.ni))),
            }),
        }
    }

    /// See [`Lnd::ctl`].
    pub fn ctl(&self, cmd: &str, arg: &str) -> Result<String, LndError> {
        let r = match &self.0 {
            LndObj::V10(l) => l.ctl(cmd.into(), arg.into()),
            LndObj::Span(l) => l.ctl(cmd.into(), arg.into()),
        };
        r.into_result().map(String::from)
    }
}

/// An NI object of either interface version.
pub(crate) enum NiObj {
    /// From a plugin built against lnd-api 1.0.
    V10(LndNiFfiArc),
    /// lnd-api 1.1.
    Span(LndNiSpanFfiArc),
}

/// A shared handle of an NI object of an LND. Every method works with
/// either interface version: it converts between [`crate::Payload`] and
/// [`PayloadSpan`] where the LND's version needs it.
#[derive(Clone)]
pub struct LndNiHandle(pub(crate) Arc<NiObj>);

impl LndNiHandle {
    /// Wraps a Rust [`LndNi`].
    pub fn new<T: LndNi>(ni: T) -> Self {
        LndNiHandle(Arc::new(NiObj::Span(LndNiSpanFfi_TO::from_ptr(
            RArc::new(LndNiShim(ni)),
            TD_Opaque,
        ))))
    }
    /// See [`LndNi::send`].
    pub fn send(&self, tx: TxMsg) -> Result<(), LndError> {
        match &*self.0 {
            NiObj::V10(ni) => ni.send(tx),
            NiObj::Span(ni) => {
                let (tx, payload) = tx.split_payload();
                ni.send_span(tx, payload)
            }
        }
        .into_result()
    }
    /// See [`LndNi::recv`].
    pub fn recv(&self, rx: RxAction) -> Result<(), LndError> {
        match &*self.0 {
            NiObj::V10(ni) => ni.recv(rx),
            NiObj::Span(ni) => {
                let (rx, payload) = rx.split_payload();
                ni.recv_span(rx, payload)
            }
        }
        .into_result()
    }
    /// See [`LndNi::send_span`]; an LND built against lnd-api 1.0 gets
    /// [`LndNi::send`] with a fragment list made here (one allocation).
    pub fn send_span(&self, tx: TxMsg, payload: PayloadSpan) -> Result<(), LndError> {
        match &*self.0 {
            NiObj::V10(ni) => ni.send(TxMsg {
                payload: payload.to_payload(),
                ..tx
            }),
            NiObj::Span(ni) => ni.send_span(tx, payload),
        }
        .into_result()
    }
    /// See [`LndNi::recv_span`]; an LND built against lnd-api 1.0 gets
    /// [`LndNi::recv`] with a fragment list made here (one allocation).
    pub fn recv_span(&self, rx: RxAction, payload: PayloadSpan) -> Result<(), LndError> {
        match &*self.0 {
            NiObj::V10(ni) => ni.recv(RxAction {
                payload: payload.to_payload(),
                ..rx
            }),
            NiObj::Span(ni) => ni.recv_span(rx, payload),
        }
        .into_result()
    }
    /// See [`LndNi::eager_recv`].
    pub fn eager_recv(&self, rx: RxToken) -> Result<(), LndError> {
        match &*self.0 {
            NiObj::V10(ni) => ni.eager_recv(rx),
            NiObj::Span(ni) => ni.eager_recv(rx),
        }
        .into_result()
    }
    /// See [`LndNi::notify_peer_down`].
    pub fn notify_peer_down(&self, peer: Nid) {
        match &*self.0 {
            NiObj::V10(ni) => ni.notify_peer_down(peer),
            NiObj::Span(ni) => ni.notify_peer_down(peer),
        }
    }
    /// See [`LndNi::query`].
    pub fn query(&self, peer: Nid) -> PeerAliveness {
        match &*self.0 {
            NiObj::V10(ni) => ni.query(peer),
            NiObj::Span(ni) => ni.query(peer),
        }
    }
    /// See [`LndNi::ctl`].
    pub fn ctl(&self, cmd: &str, arg: &str) -> Result<String, LndError> {
        match &*self.0 {
            NiObj::V10(ni) => ni.ctl(cmd.into(), arg.into()),
            NiObj::Span(ni) => ni.ctl(cmd.into(), arg.into()),
        }
        .into_result()
        .map(String::from)
    }
    /// See [`LndNi::shutdown`].
    pub fn shutdown(&self) {
        match &*self.0 {
            NiObj::V10(ni) => ni.shutdown(),
            NiObj::Span(ni) => ni.shutdown(),
        }
    }
}

/// The LND-side handle of the host's callbacks for one NI; cheap to clone and
/// usable from any thread.
#[derive(Clone)]
pub struct HostHandle(pub(crate) Arc<HostFfiArc>);

impl HostHandle {
    /// Wraps a Rust [`Host`] (the host side, or a test double).
    pub fn new<T: Host>(host: T) -> Self {
        HostHandle(Arc::new(HostFfi_TO::from_ptr(
            RArc::new(HostShim(host)),
            TD_Opaque,
        )))
    }
    /// See [`Host::parse`].
    pub fn parse(&self, hdr: Hdr, from: Nid, rx: RxToken, rdma_req: bool) -> Result<(), LndError> {
        self.0.parse(hdr, from, rx, rdma_req).into_result()
    }
    /// See [`Host::finalize`].
    pub fn finalize(&self, msg: MsgToken, status: Completion) {
        self.0.finalize(msg, status)
    }
    /// See [`Host::notify`].
    pub fn notify(&self, peer: Nid, alive: bool) {
        self.0.notify(peer, alive)
    }
    /// See [`Host::link_state`].
    pub fn link_state(&self, up: bool) {
        self.0.link_state(up)
    }
    /// See [`Host::log`].
    pub fn log(&self, level: LogLevel, msg: &str) {
        self.0.log(level, msg.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{NetTunables, RxAction};
    use crate::NetId;

    struct Panicky;

    impl Lnd for Panicky {
        fn startup(&self, _cfg: NiConfig, _host: HostHandle) -> Result<NiStarted, LndError> {
            panic!("startup exploded")
        }
    }

    struct PanickyNi;

    impl LndNi for PanickyNi {
        fn send(&self, _tx: TxMsg) -> Result<(), LndError> {
            panic!("send exploded")
        }
        fn recv(&self, _rx: RxAction) -> Result<(), LndError> {
            Ok(())
        }
        fn shutdown(&self) {
            panic!("shutdown exploded")
        }
    }

    struct PanickyHost;

    impl Host for PanickyHost {
        fn parse(&self, _: Hdr, _: Nid, _: RxToken, _: bool) -> Result<(), LndError> {
            panic!("parse exploded")
        }
        fn finalize(&self, _: MsgToken, _: Completion) {
            panic!("finalize exploded")
        }
        fn notify(&self, _: Nid, _: bool) {}
        fn link_state(&self, _: bool) {}
        fn log(&self, _: LogLevel, _: &str) {}
    }

    fn cfg() -> NiConfig {
        NiConfig {
            net: NetId::new(crate::lnd_type::SOCKLND, 0),
            interfaces: Vec::new().into(),
            tunables: NetTunables::UNSET,
            lnd_tunables: Vec::new().into(),
            params: Vec::new().into(),
            pid: 12345,
        }
    }

    #[test]
    fn panics_in_lnd_entry_points_become_errors() {
        let lnd = LndHandle::new(Panicky);
        let e = lnd
            .startup(cfg(), HostHandle::new(PanickyHost))
            .err()
            .expect("error, not unwind");
        assert_eq!(e.errno, crate::errno::EFAULT);
        assert!(
            e.message.contains("lnd startup panicked: startup exploded"),
            "{e}"
        );
        let ni = LndNiHandle::new(PanickyNi);
        let tx = TxMsg {
            token: MsgToken(1),
            hdr: Hdr {
                dest_nid: Nid::LO_0,
                src_nid: Nid::LO_0,
                dest_pid: 0,
                src_pid: 0,
                msg_type: crate::MsgType::GET,
                payload_length: 0,
                body: [0; crate::hdr::BODY_SIZE],
            },
            target: Nid::LO_0,
            target_pid: 0,
            payload: crate::Payload::new(),
            rx: abi_stable::std_types::ROption::RNone,
        };
        let e = ni.send(tx).expect_err("error, not unwind");
        assert!(e.message.contains("send exploded"), "{e}");
        ni.shutdown(); // caught and reported, not propagated
    }

    #[test]
    fn an_lnd_asks_for_get_sinks_through_its_handle() {
        assert_eq!(LndHandle::new(Panicky).get_sink_min(), None);
        let h = LndHandle::new(Panicky).with_get_sink_min(Some(4097));
        assert_eq!(h.get_sink_min(), Some(4097));
        assert!(h.takes_spans());
        // What the export macro offers.
        static EXT: Option<GetSink> = Some(GetSink { min_len: 4097 });
        assert!(crate::module::get_sink_extension(GET_SINK, &EXT).is_some());
        assert!(crate::module::get_sink_extension(SPAN_IO, &EXT).is_none());
        assert!(crate::module::get_sink_extension(GET_SINK, &None).is_none());
    }

    #[test]
    fn panics_in_host_callbacks_become_errors() {
        let host = HostHandle::new(PanickyHost);
        let hdr = Hdr {
            dest_nid: Nid::LO_0,
            src_nid: Nid::LO_0,
            dest_pid: 0,
            src_pid: 0,
            msg_type: crate::MsgType::PUT,
            payload_length: 0,
            body: [0; crate::hdr::BODY_SIZE],
        };
        let e = host
            .parse(hdr, Nid::LO_0, RxToken(1), false)
            .expect_err("error, not unwind");
        assert!(
            e.message.contains("host parse panicked: parse exploded"),
            "{e}"
        );
        host.finalize(MsgToken(1), Completion::OK); // caught
    }
}
