//! # lnet-core: LNet in user space
//!
//! The engine ([`Lnet`]) is a deterministic state machine (see `docs/engine-api.md`):
//! it is given time and inputs, and polled for outputs. It never opens a socket,
//! spawns, sleeps, locks or reads the clock. Around it, the node runtime
//! ([`node`]) loads LND plugins ([`host`]), drives the engine from real threads,
//! and serves the control socket ([`ctl`]) that `lnetctl` talks to.
//!
//! Layers of the engine, following Lustre's file split:
//! * [`time`]: the caller's clock ([`Instant`]).
//! * [`ni`] (api-ni.c): the engine itself, its configuration, local NIs, the
//!   outputs ([`LndOp`], [`Event`]) and timers.
//! * [`peer`] (peer.c): peers, peer nets, peer NIs.
//! * [`md`], [`me`], [`ptl`] (lib-md.c, lib-me.c, lib-ptl.c): memory
//!   descriptors, match entries, portals and matching.
//! * [`msg`] (lib-msg.c): messages and their completion (`finalize`).
//! * [`send`], [`recv`], [`credits`] (lib-move.c): PUT/GET/ACK/REPLY, path
//!   selection, `parse`, send credits.
//! * [`event`]: MD events and ping results. [`ping`]: the ping target and
//!   initiator. [`stats`]: counters. [`lo`]: the loopback LND.
//!
//! Must not depend on tokio (in the protocol logic), socket2, ibverbs or clap.

#![forbid(unsafe_code)]

pub mod credits;
#[allow(missing_docs)]
pub mod ctl;
pub mod event;
#[allow(missing_docs)]
pub mod host;
pub mod lo;
pub mod md;
pub mod me;
pub mod msg;
pub mod ni;
#[allow(missing_docs)]
pub mod nid;
#[allow(missing_docs)]
pub mod node;
pub mod peer;
pub mod ping;
pub mod ptl;
pub mod recv;
pub mod selftest;
pub mod send;
pub mod stats;
pub mod time;
#[allow(missing_docs)]
pub mod wire;

pub use lnd_api;

pub use event::{Event, EventKind, MdEvent};
pub use lo::{LoLnd, LoNi};
pub use md::{ApiError, MdHandle, MdOptions, MdSpec, Threshold, Unlink, MAX_PAYLOAD};
pub use me::MeHandle;
pub use ni::{Config, GlobalTunables, LndOp, Lnet, NiError, NiId, NiState, NiView};
pub use nid::{ProcessId, LNET_PID_ANY, LNET_PID_LUSTRE};
pub use peer::{PeerError, PeerNiId, PeerNiView, PeerView};
pub use ping::{PingError, PingId};
pub use ptl::{InsPos, MAX_PORTALS};
pub use recv::ParseError;
pub use send::AckReq;
pub use stats::{Counters, HealthCounts, MsgStats, TypeCounts};
pub use time::{Duration, Instant};
