//! # lnd-api: the stable ABI between LNet and its network drivers
//!
//! This is the only crate a vendor needs to build an LND (a network driver)
//! that LNet loads at run time as a shared object. It depends on `abi_stable`
//! alone and must never depend on another crate of this project or on tokio.
//!
//! Layers, from the wire up:
//! * [`nid`]: NIDs and networks, in the kernel's 20-byte `struct lnet_nid` form.
//! * [`hdr`]: the LNet message header, as LNDs frame it.
//! * [`mem`]: payload memory shared by pointer and length ([`IoBuf`],
//!   [`Payload`], and since 1.1 [`PayloadSpan`]).
//! * [`params`]: the module parameters a plugin declares (lnd-api 1.2).
//! * [`types`]: the plain values exchanged (messages, completions, errors, tunables).
//! * [`lnd`]: the contract: [`Lnd`] and [`LndNi`] (what a plugin implements),
//!   [`Host`] (what LNet gives it), and their FFI-safe forms. Read its docs:
//!   who owns a message, when it must be finished, from which threads calls come.
//! * [`filter`]: stacking, since 1.1: the extension [`NI_FILTER`] through
//!   which a filter plugin (lnd-fault) wraps the NIs of any other LND.
//! * [`entry`]: helpers for a plugin's own entry code (net-type checks, NI
//!   incarnations); plain Rust, outside the ABI.
//! * [`sock`]: socket options the safe socket crates lack (`SO_RCVLOWAT`);
//!   plain Rust, outside the ABI.
//! * [`module`]: the root module a plugin exports ([`export_lnd_plugin!`]),
//!   loading with version and layout checks ([`load_plugin`]), and named
//!   layout-checked extensions ([`extension`]), the only way this ABI grows.
//!
//! The base interface is frozen at 1.0.0 (abi_stable refuses a plugin whose
//! vtables are shorter than the host's, so nothing is appended to them); new
//! capabilities arrive as named, layout-checked extensions, so a newer host
//! still loads an older plugin. 1.1.0 added the extension [`SPAN_IO`]: LND
//! objects whose NIs take payloads as [`PayloadSpan`]s
//! ([`LndNi::send_span`], [`LndNi::recv_span`]); every plugin exported with
//! [`export_lnd_plugin!`] offers it. 1.2.0 added the extension [`PARAMS`]:
//! the plugin's module parameters ([`ParamDecl`]: module, name, type,
//! default, range, help), which the host checks and hands over at load and
//! at NI start-up ([`params`]). 1.3.0 added the extension [`GET_SINK`]: an
//! LND asks (`get_sink_min` in [`export_lnd_plugin!`]) for a GET's sink MD with the GET, to
//! have the REPLY's data put straight into it; and write borrows of
//! payload memory became per range ([`mem`]). `abi_stable` is re-exported:
//! plugins use this copy.

pub use abi_stable;

pub mod clock;
pub mod entry;
pub mod filter;
pub mod hash;
pub mod hdr;
pub mod lnd;
pub mod mem;
pub mod module;
pub mod nid;
pub mod params;
pub mod sock;
pub mod types;

pub use filter::{FilterHandle, FilterNi, FilterNiHandle, NiFilter, NI_FILTER};
pub use hdr::{Hdr, MsgType, WireHandle};
pub use lnd::{
    GetSink, Host, HostFfiArc, HostHandle, Lnd, LndFfiBox, LndHandle, LndNi, LndNiFfiArc,
    LndNiHandle, LndNiSpanFfiArc, LndSpanFfiBox, NiStarted, SpanIo, GET_SINK, SPAN_IO,
};
pub use mem::{BufMut, BufRef, Busy, IoBuf, Payload, PayloadSpan, Piece, PAGE_SIZE};
pub use module::{extension, load_plugin, LndModRef, LoadError, LoadedPlugin, ABI_VERSION};
pub use nid::{lnd_type, NetId, Nid};
pub use params::{LndParams, ParamDecl, ParamError, ParamType, PARAMS};
pub use types::{
    errno, tunable, Completion, HealthStatus, LndError, LogLevel, MsgToken, NetTunables,
    NetTypeDesc, NiConfig, NiInfo, PeerAliveness, RxAction, RxToken, Tunable, TxMsg,
};
