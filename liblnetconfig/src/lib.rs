//! # liblnetconfig: the control API of user-space LNet
//!
//! The typed, versioned request/response protocol spoken over lnetd's control
//! socket ([`proto`], JSON lines), its only client ([`Client`]), the
//! validation that turns command-line words into requests ([`args`],
//! [`nidlist`]), the selftest (`lst`) protocol types, parsers and printers
//! ([`lst`]), and the printers that render replies exactly as upstream
//! lnetctl does ([`render`] over the one YAML printer, [`yaml`]).
//!
//! Depends on serde (serde-saphyr reads `import` documents) and lnd-api's
//! NID types only; must never depend on
//! lnet-core or any LND crate (lnet-core depends on this crate for the
//! protocol types).

#![forbid(unsafe_code)]

pub mod args;
mod client;
pub mod daemon;
pub mod errno;
pub mod fault;
pub mod global;
pub mod import;
pub mod lctl;
pub mod lst;
pub mod nidlist;
pub mod peer;
pub mod proto;
pub mod render;
pub mod route;
mod serde_ids;
pub mod term;
pub mod udsp;
pub mod yaml;

pub use client::{Client, Error, DEFAULT_SOCKET, SOCKET_ENV};
