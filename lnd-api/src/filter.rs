//! Stacking: a filter plugin that wraps the NIs of other LNDs (the named
//! extension [`NI_FILTER`], lnd-api 1.1).
//!
//! A filter sits between the engine and the NI of any LND, the way smoltcp's
//! `FaultInjector<D>` wraps any device: the engine talks to the filter's NI
//! object, which talks to the inner LND's; the inner LND calls the filter's
//! host object, which calls the engine. The inner LND knows nothing of it, so
//! an LND built against lnd-api 1.0 (without any extension) is wrapped like
//! any other: the host does the wrapping.
//!
//! # Contract
//!
//! * **Offer.** A filter plugin offers [`NiFilterExt`] under the name
//!   [`NI_FILTER`] (with [`offer_filter`] from the `extensions:` function of
//!   [`crate::export_lnd_plugin!`]). The host finds it with
//!   [`crate::LoadedPlugin::ni_filter`], which checks its layout, and keeps
//!   one [`FilterHandle`] for the plugin's life.
//! * **Wrapping one NI** ([`FilterHandle::startup`]): the host calls
//!   [`NiFilter::attach`] with the NI's network and the engine's callbacks
//!   for it; the filter returns a [`FilterNi`]. The host starts the inner
//!   LND with [`FilterNi::inner_host`] as its callbacks, then calls
//!   [`FilterNi::bind`] with the NID the NI came up with and the inner NI
//!   object; what `bind` returns is the NI object the engine uses. If the
//!   inner startup fails, the host calls [`FilterNi::abort`] instead.
//! * **Send path.** The wrapping NI's `send_span` sees every send before the
//!   inner LND. It may pass it on (call the inner `send_span`), *drop* it
//!   (take it and `finalize` its token with a failed [`Completion`] carrying
//!   the health status to inject, so the engine's health, resend and
//!   recovery logic react as to a real failure; finalizing from inside
//!   `send_span` is allowed), or *hold* it and pass it on later from another
//!   thread. It must not return `Err` to mean "dropped": an `Err` is a
//!   synchronous refusal, which the engine never resends.
//! * **Receive path.** The filter's host object sees every received header
//!   (`parse`) before the engine. It may pass it on (call the engine's
//!   `parse`), *drop* it (return `Ok` and itself call the inner NI's
//!   `recv_span` with `msg: None`, so the inner LND skips the payload), or
//!   *hold* it (return `Ok`, call the engine's `parse` later; the engine's
//!   `recv` then comes `delayed`, which the contract already allows). A
//!   held header that the engine then refuses is discarded the same way.
//! * **Everything else** (`recv_span`, `eager_recv`, `query`,
//!   `notify_peer_down`, `ctl`; `finalize`, `notify`, `link_state`, `log`)
//!   is forwarded unchanged. On `shutdown` the filter finalizes every held
//!   send with `ECANCELED`, discards every held receive, then shuts the
//!   inner NI down.
//! * **Cost.** With no filter loaded the host starts NIs directly: nothing
//!   changes. With a filter and no rule, each call costs one more indirect
//!   call and the filter must not allocate.
//! * **Control.** [`NiFilter::ctl`] is the filter's own control call (the
//!   fault plugin's rule table), reached through [`FilterHandle::ctl`].

use std::sync::Arc;

use abi_stable::sabi_trait;
use abi_stable::sabi_trait::prelude::TD_Opaque;
use abi_stable::std_types::{RBox, RResult, RStr, RString};
use abi_stable::StableAbi;

use crate::lnd::{
    guard, guard_unit, ni_span_ffi, unwrap_host, HostFfiArc, HostHandle, LndHandle, LndNiHandle,
    LndNiSpanFfiArc, NiObj, NiStarted,
};
use crate::module::{extension, Extension, ExtensionError, LoadedPlugin};
use crate::nid::{NetId, Nid};
use crate::types::{LndError, NiConfig};

/// The name under which a filter plugin offers [`NiFilterExt`].
pub const NI_FILTER: &str = "lnd-api.ni-filter.v1";

/// A filter, as a plugin implements it: one object for the plugin's life.
pub trait NiFilter: Send + Sync + 'static {
    /// An NI of `net` is about to start under another LND; `host` is the
    /// engine's callbacks for it.
    fn attach(&self, net: NetId, host: HostHandle) -> Result<FilterNiHandle, LndError>;

    /// The filter's control call; the answer is text for the user.
    fn ctl(&self, cmd: &str, arg: &str) -> Result<String, LndError> {
        let _ = arg;
        Err(LndError::unsupported(&format!(
            "filter control command {cmd:?}"
        )))
    }
}

/// The filter's half of one wrapped NI.
pub trait FilterNi: Send + Sync + 'static {
    /// The callbacks the inner LND gets instead of the engine's.
    fn inner_host(&self) -> HostHandle;

    /// The inner NI came up as `nid`: returns the NI object the engine uses.
    /// When it fails, the inner NI is shut down (in the FFI form, the
    /// filter does it; [`FilterNiHandle`] does it for a Rust filter).
    fn bind(&self, nid: Nid, inner: LndNiHandle) -> Result<LndNiHandle, LndError>;

    /// The inner NI failed to start: forget it.
    fn abort(&self) {}
}

// ---------------------------------------------------------------------------
// FFI forms.
// ---------------------------------------------------------------------------

/// FFI form of [`NiFilter`].
#[sabi_trait]
pub trait NiFilterFfi: Send + Sync {
    /// See [`NiFilter::attach`].
    fn attach(&self, net: NetId, host: HostFfiArc) -> RResult<FilterNiFfiBox, LndError>;
    /// See [`NiFilter::ctl`].
    #[sabi(last_prefix_field)]
    fn ctl(&self, cmd: RStr<'_>, arg: RStr<'_>) -> RResult<RString, LndError>;
}

/// FFI form of [`FilterNi`].
#[sabi_trait]
pub trait FilterNiFfi: Send + Sync {
    /// See [`FilterNi::inner_host`].
    fn inner_host(&self) -> HostFfiArc;
    /// See [`FilterNi::bind`].
    fn bind(&self, nid: Nid, inner: LndNiSpanFfiArc) -> RResult<LndNiSpanFfiArc, LndError>;
    /// See [`FilterNi::abort`].
    #[sabi(last_prefix_field)]
    fn abort(&self);
}

/// Owned FFI [`NiFilter`] object.
pub type NiFilterFfiBox = NiFilterFfi_TO<'static, RBox<()>>;
/// Owned FFI [`FilterNi`] object.
pub type FilterNiFfiBox = FilterNiFfi_TO<'static, RBox<()>>;

/// The extension [`NI_FILTER`]: a constructor of the plugin's filter.
#[repr(C)]
#[derive(StableAbi)]
pub struct NiFilterExt {
    /// Makes the filter object (the host calls it once).
    pub new_filter: extern "C" fn() -> RResult<NiFilterFfiBox, LndError>,
}

/// For a plugin's `extensions:` function: offers `value` when `name` is
/// [`NI_FILTER`].
pub fn offer_filter(name: &str, value: &'static NiFilterExt) -> Option<Extension> {
    (name == NI_FILTER).then(|| Extension::new(value))
}

/// For a plugin's [`NiFilterExt::new_filter`]: calls `ctor` inside
/// `catch_unwind` and wraps the filter in its FFI form.
pub fn new_filter_shim<F: NiFilter>(
    ctor: fn() -> Result<F, LndError>,
) -> RResult<NiFilterFfiBox, LndError> {
    match std::panic::catch_unwind(ctor) {
        Ok(Ok(f)) => RResult::ROk(NiFilterFfi_TO::from_value(FilterShim(f), TD_Opaque)),
        Ok(Err(e)) => RResult::RErr(e),
        Err(p) => RResult::RErr(LndError::panicked("filter constructor", &*p)),
    }
}

struct FilterShim<T>(T);

impl<T: NiFilter> NiFilterFfi for FilterShim<T> {
    fn attach(&self, net: NetId, host: HostFfiArc) -> RResult<FilterNiFfiBox, LndError> {
        guard("filter attach", || {
            self.0.attach(net, HostHandle(Arc::new(host))).map(|h| h.0)
        })
    }
    fn ctl(&self, cmd: RStr<'_>, arg: RStr<'_>) -> RResult<RString, LndError> {
        guard("filter ctl", || {
            self.0.ctl(cmd.as_str(), arg.as_str()).map(RString::from)
        })
    }
}

struct FilterNiShim<T>(T);

impl<T: FilterNi> FilterNiFfi for FilterNiShim<T> {
    fn inner_host(&self) -> HostFfiArc {
        // No error to return from here: a panic is a bug in the filter; the
        // catch in `FilterHandle::startup` (attach) does not cover it, so
        // keep this call trivial in filters.
        unwrap_host(self.0.inner_host())
    }
    fn bind(&self, nid: Nid, inner: LndNiSpanFfiArc) -> RResult<LndNiSpanFfiArc, LndError> {
        guard("filter bind", || {
            let inner = LndNiHandle(Arc::new(NiObj::Span(inner)));
            let keep = inner.clone();
            match self.0.bind(nid, inner) {
                Ok(ni) => Ok(ni_span_ffi(ni)),
                Err(e) => {
                    // Do not leave the inner NI running behind the engine's back.
                    keep.shutdown();
                    Err(e)
                }
            }
        })
    }
    fn abort(&self) {
        guard_unit("filter abort", || self.0.abort())
    }
}

/// What [`NiFilter::attach`] returns: the filter's half of one NI.
pub struct FilterNiHandle(FilterNiFfiBox);

impl FilterNiHandle {
    /// Wraps a Rust [`FilterNi`].
    pub fn new<T: FilterNi>(f: T) -> Self {
        FilterNiHandle(FilterNiFfi_TO::from_value(FilterNiShim(f), TD_Opaque))
    }
}

/// The host's handle of a filter (from a plugin, or a Rust [`NiFilter`]).
pub struct FilterHandle(NiFilterFfiBox);

impl FilterHandle {
    /// Wraps a Rust [`NiFilter`] (a built-in filter, or a test's).
    pub fn new<T: NiFilter>(f: T) -> Self {
        FilterHandle(NiFilterFfi_TO::from_value(FilterShim(f), TD_Opaque))
    }

    /// Starts an NI of `lnd` (of either interface version) under this
    /// filter: see the module docs. The returned NI object is the filter's.
    pub fn startup(
        &self,
        lnd: &LndHandle,
        cfg: NiConfig,
        host: HostHandle,
    ) -> Result<NiStarted, LndError> {
        let session = self.0.attach(cfg.net, unwrap_host(host)).into_result()?;
        let inner_host = HostHandle(Arc::new(session.inner_host()));
        let started = match lnd.startup(cfg, inner_host) {
            Ok(s) => s,
            Err(e) => {
                session.abort();
                return Err(e);
            }
        };
        let nid = started.info.nid;
        // A failed `bind` has shut the inner NI down (see `FilterNi::bind`).
        let ni = session.bind(nid, ni_span_ffi(started.ni)).into_result()?;
        Ok(NiStarted {
            info: started.info,
            ni: LndNiHandle(Arc::new(NiObj::Span(ni))),
        })
    }

    /// Stacks the filter on an NI that is already running (the filter was
    /// loaded after the NI came up): `engine` is the engine's callbacks for
    /// it (an object that does not forward back here), `inner` the NI's LND
    /// object. Returns the callbacks the host must route the LND's calls to
    /// from now on, and the NI object the engine must use from now on. The
    /// host still owns `inner`: the filter cannot shut it down, so the host
    /// shuts the returned NI down first, then `inner`.
    pub fn wrap_running(
        &self,
        net: NetId,
        nid: Nid,
        engine: HostHandle,
        inner: LndNiHandle,
    ) -> Result<(HostHandle, LndNiHandle), LndError> {
        let session = self.0.attach(net, unwrap_host(engine)).into_result()?;
        let inner_host = HostHandle(Arc::new(session.inner_host()));
        let unowned = LndNiHandle::new(Unowned(inner));
        let ni = session.bind(nid, ni_span_ffi(unowned)).into_result()?;
        Ok((inner_host, LndNiHandle(Arc::new(NiObj::Span(ni)))))
    }

    /// See [`NiFilter::ctl`].
    pub fn ctl(&self, cmd: &str, arg: &str) -> Result<String, LndError> {
        self.0
            .ctl(cmd.into(), arg.into())
            .into_result()
            .map(String::from)
    }
}

/// An NI the host still owns, lent to a filter: everything but `shutdown`.
struct Unowned(LndNiHandle);

impl crate::lnd::LndNi for Unowned {
    fn send(&self, tx: crate::types::TxMsg) -> Result<(), LndError> {
        self.0.send(tx)
    }
    fn recv(&self, rx: crate::types::RxAction) -> Result<(), LndError> {
        self.0.recv(rx)
    }
    fn send_span(
        &self,
        tx: crate::types::TxMsg,
        payload: crate::mem::PayloadSpan,
    ) -> Result<(), LndError> {
        self.0.send_span(tx, payload)
    }
    fn recv_span(
        &self,
        rx: crate::types::RxAction,
        payload: crate::mem::PayloadSpan,
    ) -> Result<(), LndError> {
        self.0.recv_span(rx, payload)
    }
    fn eager_recv(&self, rx: crate::types::RxToken) -> Result<(), LndError> {
        self.0.eager_recv(rx)
    }
    fn notify_peer_down(&self, peer: Nid) {
        self.0.notify_peer_down(peer)
    }
    fn query(&self, peer: Nid) -> crate::types::PeerAliveness {
        self.0.query(peer)
    }
    fn ctl(&self, cmd: &str, arg: &str) -> Result<String, LndError> {
        self.0.ctl(cmd, arg)
    }
    fn shutdown(&self) {}
}

impl std::fmt::Debug for FilterHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FilterHandle")
    }
}

impl LoadedPlugin {
    /// The plugin's filter, if it offers [`NI_FILTER`]: `Ok(None)` when it
    /// does not (an ordinary LND), `Err` when it offers it with another
    /// layout or its constructor fails.
    pub fn ni_filter(&self) -> Result<Option<FilterHandle>, LndError> {
        match extension::<NiFilterExt>(self.module, NI_FILTER) {
            Ok(ext) => (ext.new_filter)()
                .into_result()
                .map(|f| Some(FilterHandle(f))),
            Err(ExtensionError::Missing) => Ok(None),
            Err(ExtensionError::Layout(e)) => Err(LndError::new(
                crate::errno::EPROTO,
                format!(
                    "plugin {} offers {NI_FILTER} with another layout than this LNet's; rebuild \
                     it against lnd-api {}: {e}",
                    self.name(),
                    crate::ABI_VERSION
                ),
            )),
        }
    }

    /// Whether the plugin offers [`NI_FILTER`] (with any layout).
    pub fn offers_filter(&self) -> bool {
        !matches!(
            extension::<NiFilterExt>(self.module, NI_FILTER),
            Err(ExtensionError::Missing)
        )
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Mutex, OnceLock};

    use abi_stable::std_types::ROption;

    use super::*;
    use crate::hdr::{Hdr, MsgType, BODY_SIZE};
    use crate::lnd::{Host, Lnd, LndFfi_TO, LndNi, LndObj, LndShim};
    use crate::mem::PayloadSpan;
    use crate::types::{
        Completion, HealthStatus, LogLevel, MsgToken, NetTunables, NiInfo, RxAction, RxToken, TxMsg,
    };

    #[derive(Default)]
    struct Log(Mutex<Vec<String>>);

    impl Log {
        fn push(&self, s: String) {
            self.0.lock().expect("log").push(s);
        }
        fn take(&self) -> Vec<String> {
            std::mem::take(&mut *self.0.lock().expect("log"))
        }
    }

    /// The LND being wrapped: records what reaches it, keeps its host.
    struct Inner {
        log: Arc<Log>,
        host: Arc<Mutex<Option<HostHandle>>>,
    }

    impl Lnd for Inner {
        fn startup(&self, cfg: NiConfig, host: HostHandle) -> Result<NiStarted, LndError> {
            *self.host.lock().expect("host") = Some(host);
            Ok(NiStarted {
                info: NiInfo {
                    nid: Nid::new4(cfg.net, 7),
                    interfaces: Vec::new().into(),
                    tunables: NetTunables::UNSET,
                    lnd_tunables: Vec::new().into(),
                    timeout_secs: 50,
                },
                ni: LndNiHandle::new(InnerNi(self.log.clone())),
            })
        }
    }

    struct InnerNi(Arc<Log>);

    impl LndNi for InnerNi {
        fn send(&self, tx: TxMsg) -> Result<(), LndError> {
            self.0
                .push(format!("lnd send {} len {}", tx.token.0, tx.payload.len()));
            Ok(())
        }
        fn recv(&self, rx: RxAction) -> Result<(), LndError> {
            self.0.push(format!(
                "lnd recv {} deliver {}",
                rx.rx.0,
                matches!(rx.msg, ROption::RSome(_))
            ));
            Ok(())
        }
        fn shutdown(&self) {
            self.0.push("lnd shutdown".into());
        }
    }

    /// The engine.
    struct Engine(Arc<Log>);

    impl Host for Engine {
        fn parse(&self, hdr: Hdr, _: Nid, rx: RxToken, _: bool) -> Result<(), LndError> {
            self.0
                .push(format!("engine parse {} len {}", rx.0, hdr.payload_length));
            Ok(())
        }
        fn finalize(&self, msg: MsgToken, status: Completion) {
            self.0.push(format!(
                "engine finalize {} {} {}",
                msg.0,
                status.errno,
                status.health.name()
            ));
        }
        fn notify(&self, _: Nid, _: bool) {}
        fn link_state(&self, _: bool) {}
        fn log(&self, _: LogLevel, _: &str) {}
    }

    /// A filter: odd send tokens fail with REMOTE_DROPPED, headers with a
    /// payload length of 7 are dropped, everything else passes.
    struct OddFilter(Arc<Log>);

    struct Shared {
        engine: HostHandle,
        inner: OnceLock<LndNiHandle>,
        log: Arc<Log>,
    }

    struct OddNi(Arc<Shared>);
    struct OddHost(Arc<Shared>);

    impl NiFilter for OddFilter {
        fn attach(&self, net: NetId, host: HostHandle) -> Result<FilterNiHandle, LndError> {
            self.0.push(format!("attach {}", net.to_u32()));
            Ok(FilterNiHandle::new(OddNi(Arc::new(Shared {
                engine: host,
                inner: OnceLock::new(),
                log: self.0.clone(),
            }))))
        }
        fn ctl(&self, cmd: &str, arg: &str) -> Result<String, LndError> {
            Ok(format!("{cmd}={arg}"))
        }
    }

    impl FilterNi for OddNi {
        fn inner_host(&self) -> HostHandle {
            HostHandle::new(OddHost(self.0.clone()))
        }
        fn bind(&self, nid: Nid, inner: LndNiHandle) -> Result<LndNiHandle, LndError> {
            self.0
                .log
                .push(format!("bind {}", nid.addr4().unwrap_or(0)));
            self.0
                .inner
                .set(inner)
                .map_err(|_| LndError::new(crate::errno::EEXIST, "bound twice"))?;
            Ok(LndNiHandle::new(OddNi(self.0.clone())))
        }
    }

    impl LndNi for OddNi {
        fn send(&self, tx: TxMsg) -> Result<(), LndError> {
            let (tx, p) = tx.split_payload();
            self.send_span(tx, p)
        }
        fn send_span(&self, tx: TxMsg, payload: PayloadSpan) -> Result<(), LndError> {
            if tx.token.0 % 2 == 1 {
                self.0.engine.finalize(
                    tx.token,
                    Completion::failed(-crate::errno::EIO, HealthStatus::REMOTE_DROPPED),
                );
                return Ok(());
            }
            self.0.inner.get().expect("bound").send_span(tx, payload)
        }
        fn recv(&self, rx: RxAction) -> Result<(), LndError> {
            self.0.inner.get().expect("bound").recv(rx)
        }
        fn recv_span(&self, rx: RxAction, payload: PayloadSpan) -> Result<(), LndError> {
            self.0.inner.get().expect("bound").recv_span(rx, payload)
        }
        fn shutdown(&self) {
            self.0.inner.get().expect("bound").shutdown()
        }
    }

    impl Host for OddHost {
        fn parse(&self, hdr: Hdr, from: Nid, rx: RxToken, rdma: bool) -> Result<(), LndError> {
            if hdr.payload_length == 7 {
                let discard = RxAction {
                    rx,
                    msg: ROption::RNone,
                    payload: crate::Payload::new(),
                    rlen: hdr.payload_length,
                    delayed: false,
                };
                return self
                    .0
                    .inner
                    .get()
                    .expect("bound")
                    .recv_span(discard, PayloadSpan::new());
            }
            self.0.engine.parse(hdr, from, rx, rdma)
        }
        fn finalize(&self, msg: MsgToken, status: Completion) {
            self.0.engine.finalize(msg, status)
        }
        fn notify(&self, peer: Nid, alive: bool) {
            self.0.engine.notify(peer, alive)
        }
        fn link_state(&self, up: bool) {
            self.0.engine.link_state(up)
        }
        fn log(&self, level: LogLevel, msg: &str) {
            self.0.engine.log(level, msg)
        }
    }

    fn hdr(len: u32) -> Hdr {
        Hdr {
            dest_nid: Nid::LO_0,
            src_nid: Nid::LO_0,
            dest_pid: 0,
            src_pid: 0,
            msg_type: MsgType::PUT,
            payload_length: len,
            body: [0; BODY_SIZE],
        }
    }

    fn tx(token: u64) -> TxMsg {
        TxMsg {
            token: MsgToken(token),
            hdr: hdr(3),
            target: Nid::LO_0,
            target_pid: 0,
            payload: crate::Payload::single(crate::IoBuf::from_vec(vec![1, 2, 3])),
            rx: ROption::RNone,
        }
    }

    fn cfg() -> NiConfig {
        NiConfig {
            net: NetId::new(crate::lnd_type::SOCKLND, 3),
            interfaces: Vec::new().into(),
            tunables: NetTunables::UNSET,
            lnd_tunables: Vec::new().into(),
            params: Vec::new().into(),
            pid: 12345,
        }
    }

    fn run(lnd_of: fn(Inner) -> LndHandle) {
        let log = Arc::new(Log::default());
        let inner_host = Arc::new(Mutex::new(None));
        let lnd = lnd_of(Inner {
            log: log.clone(),
            host: inner_host.clone(),
        });
        let filter = FilterHandle::new(OddFilter(log.clone()));
        assert_eq!(filter.ctl("a", "b").expect("ctl"), "a=b");
        let s = filter
            .startup(&lnd, cfg(), HostHandle::new(Engine(log.clone())))
            .expect("startup");
        assert_eq!(s.info.nid, Nid::new4(cfg().net, 7));
        let tcp3 = NetId::new(crate::lnd_type::SOCKLND, 3).to_u32();
        assert_eq!(log.take(), vec![format!("attach {tcp3}"), "bind 7".into()]);

        // Sends: through the filter, to the inner LND or failed with health.
        s.ni.send(tx(2)).expect("send 2");
        s.ni.send(tx(3)).expect("send 3");
        s.ni.send_span(tx(4), PayloadSpan::new()).expect("send 4");
        assert_eq!(
            log.take(),
            vec![
                "lnd send 2 len 3".to_string(),
                "engine finalize 3 -5 remote_dropped".into(),
                "lnd send 4 len 0".into(),
            ]
        );

        // Receives: the inner LND's host is the filter's.
        let h = inner_host.lock().expect("host").clone().expect("started");
        h.parse(hdr(5), Nid::LO_0, RxToken(10), false)
            .expect("parse");
        h.parse(hdr(7), Nid::LO_0, RxToken(11), false)
            .expect("parse");
        h.finalize(MsgToken(12), Completion::OK);
        s.ni.recv_span(
            RxAction {
                rx: RxToken(10),
                msg: ROption::RSome(MsgToken(13)),
                payload: crate::Payload::new(),
                rlen: 5,
                delayed: false,
            },
            PayloadSpan::new(),
        )
        .expect("recv");
        s.ni.shutdown();
        assert_eq!(
            log.take(),
            vec![
                "engine parse 10 len 5".to_string(),
                "lnd recv 11 deliver false".into(),
                "engine finalize 12 0 ok".into(),
                "lnd recv 10 deliver true".into(),
                "lnd shutdown".into(),
            ]
        );
    }

    #[test]
    fn filter_wraps_a_span_lnd() {
        run(LndHandle::new);
    }

    #[test]
    fn filter_wraps_a_1_0_lnd() {
        run(|i| {
            let h = LndHandle(
                LndObj::V10(LndFfi_TO::from_value(LndShim(i), TD_Opaque)),
                None,
            );
            assert!(!h.takes_spans());
            h
        });
    }

    #[test]
    fn a_running_ni_is_wrapped_and_stays_the_hosts() {
        let log = Arc::new(Log::default());
        let lnd = LndHandle::new(Inner {
            log: log.clone(),
            host: Arc::new(Mutex::new(None)),
        });
        let engine = HostHandle::new(Engine(log.clone()));
        let started = lnd.startup(cfg(), engine.clone()).expect("startup");
        let filter = FilterHandle::new(OddFilter(log.clone()));
        let (lnd_host, ni) = filter
            .wrap_running(cfg().net, started.info.nid, engine, started.ni.clone())
            .expect("wrapped");
        log.take();
        ni.send(tx(2)).expect("send");
        ni.send(tx(3)).expect("send");
        lnd_host
            .parse(hdr(7), Nid::LO_0, RxToken(5), false)
            .expect("parse");
        lnd_host
            .parse(hdr(1), Nid::LO_0, RxToken(6), false)
            .expect("parse");
        // The filter's shutdown does not reach the LND's NI: the host's.
        ni.shutdown();
        assert_eq!(
            log.take(),
            vec![
                "lnd send 2 len 3".to_string(),
                "engine finalize 3 -5 remote_dropped".into(),
                "lnd recv 5 deliver false".into(),
                "engine parse 6 len 1".into(),
            ]
        );
        started.ni.shutdown();
        assert_eq!(log.take(), vec!["lnd shutdown".to_string()]);
    }

    struct FailingLnd;

    impl Lnd for FailingLnd {
        fn startup(&self, _: NiConfig, _: HostHandle) -> Result<NiStarted, LndError> {
            Err(LndError::new(crate::errno::ENODEV, "no such interface"))
        }
    }

    struct AbortFilter(Arc<Log>);
    struct AbortNi(Arc<Log>);

    impl NiFilter for AbortFilter {
        fn attach(&self, _: NetId, _: HostHandle) -> Result<FilterNiHandle, LndError> {
            Ok(FilterNiHandle::new(AbortNi(self.0.clone())))
        }
    }

    impl FilterNi for AbortNi {
        fn inner_host(&self) -> HostHandle {
            HostHandle::new(Engine(self.0.clone()))
        }
        fn bind(&self, _: Nid, _: LndNiHandle) -> Result<LndNiHandle, LndError> {
            Err(LndError::new(crate::errno::EINVAL, "no"))
        }
        fn abort(&self) {
            self.0.push("abort".into());
        }
    }

    #[test]
    fn failed_inner_startup_aborts_and_failed_bind_shuts_the_inner_ni_down() {
        let log = Arc::new(Log::default());
        let f = FilterHandle::new(AbortFilter(log.clone()));
        let e = f
            .startup(
                &LndHandle::new(FailingLnd),
                cfg(),
                HostHandle::new(Engine(log.clone())),
            )
            .err()
            .expect("fails");
        assert_eq!(e.errno, crate::errno::ENODEV);
        assert_eq!(log.take(), vec!["abort".to_string()]);
        let lnd = LndHandle::new(Inner {
            log: log.clone(),
            host: Arc::new(Mutex::new(None)),
        });
        let e = f
            .startup(&lnd, cfg(), HostHandle::new(Engine(log.clone())))
            .err()
            .expect("fails");
        assert_eq!(e.errno, crate::errno::EINVAL);
        assert_eq!(log.take(), vec!["lnd shutdown".to_string()]);
    }
}
