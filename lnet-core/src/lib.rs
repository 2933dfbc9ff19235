//! # lnet-core: the LNet engine (lnet.ko without its threads)
//!
//! The engine ([`Lnet`]) is a deterministic state machine (see `docs/engine-api.md`):
//! it is given time and inputs, and polled for outputs. It never opens a socket,
//! spawns, sleeps, locks or reads the clock. Selftest sits on top of it in the
//! `lnet-selftest` crate; the node runtime that loads LND plugins, drives the
//! engine from real threads and serves the control socket is the `lnetd` crate.
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
//! * [`router`] (router.c): routes, gateway choice and aliveness, router
//!   buffer pools and forwarding.
//! * [`event`]: MD events and ping results. [`ping`]: the ping target and
//!   initiator. [`stats`]: counters.
//! * [`nid`] (nidstrings.c): NIDs, NID ranges, config strings; [`wire`]
//!   (lnet-idl.h): the wire formats.
//!
//! ## Decisions where `docs/engine-api.md` leaves room (upstream's choice unless noted)
//!
//! * Outputs of [`Lnet::poll_event`] are [`Event::Md`] (an [`MdEvent`], the
//!   kernel's `struct lnet_event`) and [`Event::PingDone`].
//! * [`Lnet::put`] / [`Lnet::get`] fail synchronously only for bad arguments
//!   or an unusable MD (no events then); once committed, every failure (no
//!   route: `-EHOSTUNREACH`, cancelled, timed out) arrives as the SEND event's
//!   status, as `LNetPut` does.
//! * A destination that is one of our NIDs, or `0@lo`, goes through the `lo`
//!   NI with no credits; its header carries that NID as source and destination.
//! * Routing ([`router`], router.c): a request to a net with no local NI
//!   goes to the best alive gateway (or fails with `-EHOSTUNREACH` when there
//!   is none); with routing enabled a message for another node is received
//!   into a router buffer and forwarded, else dropped (counted).
//! * A REPLY built from a GET carries the GET's receive token in
//!   [`lnd_api::TxMsg::rx`] (the kernel passes `msg_private` to `lnd_send`).
//!   A GET parsed with `rdma_req` is answered through [`LndOp::Recv`] whose
//!   message token is the REPLY; the LND finalizes it when the data moved.
//! * A PUT made to wait on a lazy portal produces [`LndOp::EagerRecv`]
//!   (advisory: the runtime only logs its errors; the message waits either way).
//! * Messages waiting for credits are dropped when their deadline passes, by
//!   timer (the kernel checks only when a credit frees up).
//! * Health values follow the completion table of semantics §8.3. Resends
//!   (§8.4) happen at once inside the completion (there is no monitor thread
//!   to wait for), for PUTs and GETs only (responses are not resent); a send
//!   the LND refused synchronously cannot be told apart from a later failure
//!   (the contract reports both through `handle_done`) and may be resent.
//!   Peer NIs blamed for a failure are pinged back to health (§8.6: backoff
//!   2^n s up to `max_recovery_ping_interval`, `recovery_limit`). A local
//!   NI below full health ([`Lnet::local_recovery_queue`]) is pinged at its
//!   own NID through its own LND (not loopback), with the same backoff; each
//!   REPLY adds `health_sensitivity`. Health 0 marks the NI DOWN in the
//!   ping buffer until it is back at 1000 (§8.1).
//! * Response tracking (§8.5) follows `response_tracking`; on expiry the MD
//!   is unlinked (the user sees `-ETIMEDOUT` or UNLINK) and counted.
//! * [`Lnet::ping`]: sink of 1040 bytes, retried once with the size the reply
//!   announces when it was truncated; PID `LNET_PID_ANY` means 12345; the
//!   result is reported once, later completions of that ping are ignored.
//! * Selection is deterministic without randomness (ties go to the NI / peer
//!   NI first in configuration order, as in the kernel); `Config::seed` is
//!   kept for jitter in later features.
//! * [`Lnet::md_count`] / [`Lnet::me_count`] include the MDs and MEs of the
//!   ping and push targets (two of each).
//! * Discovery ([`discovery`], §9) runs as upstream's does, also when it is
//!   disabled here (the first PUT or GET to a peer then costs one ping): a
//!   request to a peer that is not up to date waits on the peer while it is
//!   pinged (and pushed to, if Multi-Rail). The queue of peers is worked
//!   through at the end of every engine call (from `flush`), never inside a
//!   completion. A change of our ping buffer (NI added, deleted, up or down)
//!   is pushed to the Multi-Rail peers on the next engine call.
//! * Configured peers ([`Lnet::peer_add_nids`], [`Lnet::peer_del_nids`],
//!   §9.6, lnetctl.md §2.6) live in `peer_cfg`; discovery only updates the
//!   statuses of their NIDs. `lock_prim_nid` of the upper layer
//!   (`LNetAddPeer`) is not modelled beyond `--lock_prim`.
//! * A push from a peer is ACKed, recorded ([`PeerView::pushed_info`]) and
//!   merged like a ping reply (§9.4, §9.5).
//! * In steady state a message allocates no heap memory but the fragment
//!   list (`lnd_api::Payload`) each LND operation carrying data owns:
//!   messages keep a span of their MD, not a payload, and the timers are an
//!   indexed heap (`docs/engine-api.md`, "Heap allocations on the message
//!   path"; asserted by `tests/alloc.rs`).
//!
//! Must not depend on threads, clocks, sockets, serde, liblnetconfig, clap,
//! nix or a tracing subscriber (STYLE.md §2, enforced by
//! `scripts/check-deps.sh`): those belong to `lnetd`.

#![forbid(unsafe_code)]

pub mod credits;
pub mod discovery;
pub mod event;
pub mod hash;
pub mod md;
pub mod me;
pub mod msg;
pub mod ni;
#[allow(missing_docs)]
pub mod nid;
pub mod peer;
mod peer_cfg;
pub mod ping;
pub mod ptl;
pub mod recv;
pub mod router;
pub mod send;
pub mod stats;
pub mod time;
pub mod udsp;
#[allow(missing_docs)]
pub mod wire;

pub use lnd_api;

pub use discovery::DiscoverId;
pub use event::{Event, EventKind, MdEvent};
pub use md::{ApiError, MdHandle, MdOptions, MdSpec, Threshold, Unlink, MAX_PAYLOAD};
pub use me::MeHandle;
pub use ni::{Config, GlobalTunables, LndOp, Lnet, NiError, NiId, NiState, NiView};
pub use nid::{ProcessId, LNET_PID_ANY, LNET_PID_LUSTRE};
pub use peer::{PeerError, PeerNiId, PeerNiView, PeerState, PeerView};
pub use ping::{PingError, PingId};
pub use ptl::{InsPos, MAX_PORTALS};
pub use recv::ParseError;
pub use router::{
    PoolKind, PoolView, RouteError, RouteView, RouterConfig, RoutingState, RtrCreditsView,
};
pub use send::AckReq;
pub use stats::{Counters, HealthCounts, LatencyStats, MsgStats, TypeCounts};
pub use time::{Duration, Instant};
pub use udsp::{UdspAdded, UdspError, UdspRule};
