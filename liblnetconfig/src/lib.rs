//! # liblnetconfig: the control API of user-space LNet
//!
//! The typed, versioned request/response protocol spoken over lnetd's control
//! socket ([`proto`], JSON lines), its only client ([`Client`]), the
//! validation that turns command-line words into requests ([`args`],
//! [`nidlist`]), and the printers that render replies exactly as upstream
//! lnetctl does ([`render`] over the one YAML printer, [`yaml`]).
//!
//! Depends on serde and lnd-api's NID types only; must never depend on
//! lnet-core or any LND crate (lnet-core depends on this crate for the
//! protocol types).

#![forbid(unsafe_code)]

pub mod args;
mod client;
pub mod daemon;
pub mod errno;
mod nidfmt;
pub mod nidlist;
pub mod proto;
pub mod render;
pub mod yaml;

pub use client::{Client, Error, DEFAULT_SOCKET, SOCKET_ENV};

/// Text forms of networks and NIDs used by the protocol and the printers.
pub mod names {
    use lnd_api::{NetId, Nid};

    /// `tcp1`, `lo`.
    pub fn net(n: NetId) -> String {
        crate::nidfmt::net_to_string(n)
    }

    /// `10.0.0.1@tcp`.
    pub fn nid(n: &Nid) -> String {
        crate::nidfmt::nid_to_string(n)
    }

    /// Strict NID parse (no host names).
    pub fn parse_nid(s: &str) -> Option<Nid> {
        crate::nidfmt::parse_nid(s)
    }

    /// Net parse (`tcp`, `tcp1`, `lo`).
    pub fn parse_net(s: &str) -> Option<NetId> {
        crate::nidfmt::parse_net(s)
    }
}
