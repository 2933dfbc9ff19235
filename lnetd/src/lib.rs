//! # lnetd: the LNet node runtime
//!
//! Everything around the sans-IO engine (`lnet-core`) and selftest
//! (`lnet-selftest`) that needs threads, clocks, sockets or the control
//! protocol, as a library an application can embed, and the `lnetd` daemon
//! built on it (`src/bin/lnetd.rs`). Layers:
//! * [`host`]: the plugin host: loads LND plugins by path (lnd-api's stable
//!   ABI) and registers the network types they provide.
//! * [`lo`] (`lnet/lnet/lo.c`): the built-in loopback LND that serves `0@lo`.
//! * [`node`]: the node runtime: one engine behind a mutex, its LNDs, a timer
//!   thread, selftest, and the application API ([`node::Node::md_attach`],
//!   [`node::Node::put`], ...) with event queues.
//! * [`ctl`]: the control-socket server `lnetctl` and `lst` talk to
//!   (liblnetconfig's protocol).
//!
//! May depend on lnet-core, lnet-selftest, lnd-api, liblnetconfig, nix and a
//! tracing subscriber; must never depend on an LND crate (STYLE.md §2).

#![forbid(unsafe_code)]

pub mod cpt;
#[allow(missing_docs)]
pub mod ctl;
#[allow(missing_docs)]
pub mod host;
pub mod lo;
#[allow(missing_docs)]
pub mod node;

pub use lo::{LoLnd, LoNi};
