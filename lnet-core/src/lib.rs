//! # lnet-core: LNet in user space
//!
//! The engine ([`Lnet`]) is a deterministic state machine (see `docs/engine-api.md`):
//! it is given time and inputs, and polled for outputs. It never opens a socket,
//! spawns, sleeps, locks or reads the clock. Around it, the node runtime
//! ([`node`]) loads LND plugins ([`host`]), drives the engine from real threads,
//! and serves the control socket ([`ctl`]) that `lnetctl` talks to.
//!
//! Must not depend on tokio (in the protocol logic), socket2, ibverbs or clap.

#![forbid(unsafe_code)]
#![allow(missing_docs)] // removed once every module is written

pub mod credits;
pub mod ctl;
pub mod event;
pub mod host;
pub mod lo;
pub mod md;
pub mod me;
pub mod msg;
pub mod ni;
pub mod nid;
pub mod node;
pub mod peer;
pub mod ping;
pub mod ptl;
pub mod recv;
pub mod send;
pub mod stats;
pub mod time;
pub mod wire;
