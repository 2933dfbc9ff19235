//! # lnd-o2ib: the verbs LND
//!
//! o2iblnd's protocol (`spec/wire.md` §7) over a small verbs interface of
//! its own. It depends on `lnd-api`, tokio, socket2 and libloading and must
//! never depend on lnet-core or another LND.
//!
//! Layers, from the wire up:
//! * [`wire`]: checked views and `Repr`s of `kib_msg` (every message type,
//!   both byte orders, the checksum rule) and of the reject private data.

#![deny(unsafe_code)]

pub mod soft;
pub mod verbs;
pub mod wire;
