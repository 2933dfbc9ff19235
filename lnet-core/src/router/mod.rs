//! Routing: route entries, gateway selection and aliveness, the router
//! checker, router buffer pools and forwarding (`lnet/lnet/router.c`, the
//! forwarding parts of `lib-move.c`; semantics §5.2, §6, §7, §13.2).
//!
//! # Route table
//!
//! A route ([`RouteView`]) is a remote net, a gateway NID on one of our local
//! nets, a hop count and a priority. [`Lnet::route_add`] refuses what the
//! kernel refuses (§7.1) and inserts the route at a random position among the
//! routes to its net (the engine's seeded RNG), so that nodes with the same
//! configuration spread over their gateways. [`Lnet::route_del`] deletes by
//! net and/or gateway (any NID of the gateway's peer).
//!
//! # Choosing a gateway (§7.4, §7.5)
//!
//! A message to a net with no local NI goes to a gateway: among the alive
//! routes of the remote net, lower priority value, then fewer hops (undefined
//! counts as 1), then the gateway's best peer NI on a local net (healthier,
//! fewer queued bytes, more credits), then round robin (the chosen route's
//! sequence becomes the highest plus one). A Multi-Rail destination with no
//! local net is first narrowed to its best peer net that has a route.
//!
//! # Aliveness (§7.2, §7.3, §7.8)
//!
//! Every gateway is checked every `alive_router_check_interval` seconds
//! (§7.3). With discovery on, the check is a discovery of the gateway peer
//! (FORCE_PING + FORCE_PUSH + RTR_DISCOVERY): a ping of the gateway's NID on
//! our net with `router_ping_timeout`, then our push, so the gateway learns
//! us as a Multi-Rail peer and pushes its ping buffer back whenever one of
//! its NIs changes (§9.7). With discovery off, it is an internal ping.
//! Whatever brings a gateway's ping buffer — a check's reply, any discovery
//! ping reply, or a push (not older than the buffer already applied) —
//! marks it alive and recomputes its routes at once: down if the gateway
//! reports routing disabled or has no UP NI on the route's local net; a
//! route is single-hop when the buffer lists a NID on the remote net, and
//! then, with `avoid_asym_router_failure`, up only if one of those NIDs is
//! UP. So a gateway whose far NI comes up after our check is used again as
//! soon as its push lands, not one interval later. A failed check (or any
//! failed discovery of a gateway peer) marks the gateway dead, its peer NIs
//! down and all its routes down. An LND "peer down" notification about a
//! gateway NID does the same; "peer up" marks it alive. A message routed by
//! a gateway marks it alive.
//!
//! # Forwarding (§5.2, §7.6)
//!
//! A message not for this node, with routing enabled, takes a router credit
//! of its previous-hop peer NI (`peer_buffer_credits`) and a credit of the
//! buffer pool its size selects (tiny: 0 bytes, small: up to 4096, large: up
//! to 1 MiB); a negative count queues it (FIFO; the LND gets `eager_recv`
//! first). With both credits it is received into a pool buffer
//! ([`crate::LndOp::Recv`] into the buffer's span), then sent on from the
//! same buffer ([`crate::LndOp::Send`] with a span of it: the payload is not
//! copied a second time) with its header unchanged: the original source NID
//! stays. When the send completes the buffer goes back to its pool (the
//! first waiter gets it), then the router credit (the first waiter of that
//! peer NI tries for a buffer).
//!
//! The pools' buffers are allocated when routing is enabled, all of them
//! (`tiny_router_buffers`, `small_router_buffers`, `large_router_buffers`;
//! 1 MiB large buffers are zero-filled allocations the OS maps lazily), and
//! again when a size is set while routing is on: growing allocates the
//! difference at once, shrinking frees free buffers at once and buffers in
//! use as they come back. Forwarding only takes and returns buffers: it
//! allocates nothing (`tests/alloc.rs`). When routing is off (after
//! STOPPING) the buffers are freed and the pools show 0 buffers; `lnetctl
//! set *_buffers` meanwhile succeeds with no effect (lnetctl.md §2.8), and
//! the next enable sizes the pools from the start-up parameters.

use std::collections::HashMap;
use std::fmt;

use lnd_api::{errno, lnd_type, Completion, Hdr, HealthStatus, NetId, Nid};

use crate::msg::MsgId;
use crate::ni::{Lnet, NiId, NiState, Timer};
use crate::peer::{PeerId, PeerNiId, PeerState};
use crate::ping::{PingError, PingId, PingInfo};
use crate::send::{NoPath, Path};
use crate::time::{Duration, Instant};

mod forward;

use forward::{Fwd, Pool, RtrCredits};

/// Bytes in a router buffer page.
pub(super) const PAGE: u32 = 4096;
/// Pages of a large router buffer (1 MiB, `LNET_MTU`).
const LARGE_PAGES: u32 = 256;
/// Default pool sizes (totals over all CPU partitions).
const TINY_DEFAULT: u32 = 2048;
const SMALL_DEFAULT: u32 = 16384;
const LARGE_DEFAULT: u32 = 1024;

/// Ranking of a remote peer net (§7.5); greater is better.
type PeerNetKey = (u32, std::cmp::Reverse<u32>, std::cmp::Reverse<u64>);
/// Ranking of a remote peer NI (§6.5 without preferences); greater is better.
type RemotePeerNiKey = (u32, std::cmp::Reverse<u32>, i32, std::cmp::Reverse<u64>);
/// Ranking of a gateway's peer NI (§7.4 step 4); greater is better.
type GatewayNiKey = (u32, std::cmp::Reverse<u64>, i32);

/// Router tunables (semantics §13.2), with the module parameters' names and
/// units.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RouterConfig {
    /// `tiny_router_buffers` (0 = 2048).
    pub tiny_router_buffers: u32,
    /// `small_router_buffers` (0 = 16384).
    pub small_router_buffers: u32,
    /// `large_router_buffers` (0 = 1024).
    pub large_router_buffers: u32,
    /// `peer_buffer_credits` (0 = the net's, else its `peer_credits`).
    pub peer_buffer_credits: i32,
    /// `auto_down`: honour LND "peer down" notifications.
    pub auto_down: bool,
    /// `check_routers_before_use`: routes start down until checked.
    pub check_routers_before_use: bool,
    /// `avoid_asym_router_failure`.
    pub avoid_asym_router_failure: bool,
    /// `alive_router_check_interval`, seconds (60; ≤ 0 disables the checker).
    pub alive_router_check_interval: i64,
    /// `router_ping_timeout`, seconds (50).
    pub router_ping_timeout: u32,
}

impl Default for RouterConfig {
    fn default() -> Self {
        RouterConfig {
            tiny_router_buffers: 0,
            small_router_buffers: 0,
            large_router_buffers: 0,
            peer_buffer_credits: 0,
            auto_down: true,
            check_routers_before_use: false,
            avoid_asym_router_failure: true,
            alive_router_check_interval: 60,
            router_ping_timeout: 50,
        }
    }
}

/// The routing switch (§7.7; `routing show`'s `enable` value).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum RoutingState {
    /// Not forwarding (0).
    Disabled,
    /// Forwarding; RTE_DISABLED clear in the ping buffer (1).
    Enabled,
    /// Turning off: RTE_DISABLED set, buffers draining (2).
    Stopping,
    /// Turning on: buffers allocated and forwarding, RTE_DISABLED still set
    /// until peers had time to check us (3).
    Starting,
}

impl RoutingState {
    /// The number `routing show` prints.
    pub fn code(self) -> u32 {
        match self {
            RoutingState::Disabled => 0,
            RoutingState::Enabled => 1,
            RoutingState::Stopping => 2,
            RoutingState::Starting => 3,
        }
    }
    fn forwards(self) -> bool {
        matches!(self, RoutingState::Enabled | RoutingState::Starting)
    }
}

/// The three router buffer pools.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum PoolKind {
    /// No payload (0 pages).
    Tiny,
    /// Up to one page.
    Small,
    /// Up to 1 MiB (256 pages).
    Large,
}

impl PoolKind {
    const ALL: [PoolKind; 3] = [PoolKind::Tiny, PoolKind::Small, PoolKind::Large];
    fn for_len(len: u32) -> PoolKind {
        if len == 0 {
            PoolKind::Tiny
        } else if len <= PAGE {
            PoolKind::Small
        } else {
            PoolKind::Large
        }
    }
    fn idx(self) -> usize {
        self as usize
    }
    /// Pages per buffer (`rbp_npages`).
    pub fn npages(self) -> u32 {
        match self {
            PoolKind::Tiny => 0,
            PoolKind::Small => 1,
            PoolKind::Large => LARGE_PAGES,
        }
    }
}

/// Errors of route and routing management; the text is lnetctl's `descr`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RouteError {
    /// The remote net is the loopback net.
    #[error("setting @lo not allowed")]
    Loopback,
    /// The remote net is `LNET_NET_ANY`.
    #[error("setting LNET_NET_ANY not allowed")]
    NetAny,
    /// The gateway NID is unusable (ANY, `0@lo`).
    #[error("cannot parse gateway")]
    BadGateway(Nid),
    /// The gateway is on the remote net itself, or is one of our NIDs.
    #[error("invalid settings for route creation")]
    InvalidSettings(Nid),
    /// Hops outside 1..=255.
    #[error("invalid hop count must be between 1 and 255")]
    Hops(u32),
    /// `health_sensitivity` outside 0..=1000.
    #[error("invalid health sensitivity, must be between 0 and 1000")]
    Sensitivity(u32),
    /// The route exists, or its net is local.
    #[error("Route already exists or the specified network is local")]
    Exists {
        /// The remote net.
        net: NetId,
        /// The gateway.
        gateway: Nid,
    },
    /// No local NI on the gateway's net.
    #[error("No interface configured on the same net as gateway")]
    GatewayUnreachable(Nid),
    /// Nothing matched a deletion.
    #[error("failed to delete route")]
    NotFound,
    /// A buffer count is negative.
    #[error("tiny, small and large must be >= 0")]
    Buffers,
}

impl RouteError {
    /// The errno upstream reports (positive).
    pub fn errno(&self) -> i32 {
        match self {
            RouteError::Loopback => 13, // EACCES
            RouteError::BadGateway(_) => errno::ENODEV,
            RouteError::Exists { .. } => errno::EEXIST,
            RouteError::GatewayUnreachable(_) => errno::EHOSTUNREACH,
            RouteError::NotFound => errno::ENOENT,
            RouteError::Buffers => 34, // ERANGE
            RouteError::NetAny
            | RouteError::InvalidSettings(_)
            | RouteError::Hops(_)
            | RouteError::Sensitivity(_) => errno::EINVAL,
        }
    }
}

/// A route entry (`struct lnet_route`).
#[derive(Debug, Clone)]
struct Route {
    net: NetId,
    gateway: Nid,
    hops: Option<u32>,
    priority: u32,
    /// `--health_sensitivity` as given (`None`: the global one).
    health_sensitivity: Option<u32>,
    /// Cached aliveness from the last check (`lr_alive`).
    alive: bool,
    /// The gateway's last ping listed a NID on the remote net.
    single_hop: Option<bool>,
    /// Round-robin sequence (`lr_seq`).
    seq: u64,
}

/// What we know of a gateway (`lp_alive`, its last ping reply).
#[derive(Debug)]
struct Gateway {
    nid: Nid,
    alive: bool,
    /// Its ping buffer said routing is disabled.
    rte_disabled: bool,
    /// The NIDs and UP flags of its last ping reply.
    nis: Vec<(Nid, bool)>,
    ping: Option<PingId>,
    /// The sequence number of the ping buffer `nis` came from (a push older
    /// than it is stale).
    seq: u32,
    next_ping: Instant,
    checked: bool,
}

/// The engine's routing state.
#[derive(Debug)]
pub(crate) struct Router {
    cfg: RouterConfig,
    state: RoutingState,
    state_since: Instant,
    routes: Vec<Route>,
    gateways: Vec<Gateway>,
    /// Whether the pools were ever set up (`routing show` prints nothing before).
    pools_exist: bool,
    pools: [Pool; 3],
    /// Forwarding state by message slab index.
    fwd: Vec<Option<Fwd>>,
    rtr_credits: HashMap<PeerNiId, RtrCredits>,
    rng: u64,
    /// When each local net last received a ping (a portal-0 GET) from
    /// another node while this node routes (`net_last_alive`, §7.7).
    net_alive: Vec<(NetId, Instant)>,
    /// When the checker's timer is armed.
    tick_at: Option<Instant>,
}

impl Router {
    pub(crate) fn new(seed: u64) -> Router {
        Router {
            cfg: RouterConfig::default(),
            state: RoutingState::Disabled,
            state_since: Instant::ZERO,
            routes: Vec::new(),
            gateways: Vec::new(),
            pools_exist: false,
            pools: [
                Pool::new(PoolKind::Tiny),
                Pool::new(PoolKind::Small),
                Pool::new(PoolKind::Large),
            ],
            fwd: Vec::new(),
            rtr_credits: HashMap::new(),
            rng: seed ^ 0x9E37_79B9_7F4A_7C15,
            net_alive: Vec::new(),
            tick_at: None,
        }
    }

    fn next_rand(&mut self) -> u64 {
        // xorshift64*
        let mut x = self.rng.max(1);
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn gateway(&self, nid: &Nid) -> Option<&Gateway> {
        self.gateways.iter().find(|g| g.nid == *nid)
    }

    fn gateway_mut(&mut self, nid: &Nid) -> Option<&mut Gateway> {
        self.gateways.iter_mut().find(|g| g.nid == *nid)
    }

    fn fwd(&self, id: MsgId) -> Option<&Fwd> {
        self.fwd
            .get(id.idx as usize)?
            .as_ref()
            .filter(|f| f.gen == id.gen)
    }

    fn fwd_mut(&mut self, id: MsgId) -> Option<&mut Fwd> {
        self.fwd
            .get_mut(id.idx as usize)?
            .as_mut()
            .filter(|f| f.gen == id.gen)
    }

    fn pool_total(&self, k: PoolKind) -> u32 {
        let (v, d) = match k {
            PoolKind::Tiny => (self.cfg.tiny_router_buffers, TINY_DEFAULT),
            PoolKind::Small => (self.cfg.small_router_buffers, SMALL_DEFAULT),
            PoolKind::Large => (self.cfg.large_router_buffers, LARGE_DEFAULT),
        };
        if v == 0 {
            d
        } else {
            v
        }
    }
}

/// A read-only view of a route for `route show`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RouteView {
    /// The remote net.
    pub net: NetId,
    /// The gateway NID.
    pub gateway: Nid,
    /// Hops (`None` = undefined, shown as -1).
    pub hops: Option<u32>,
    /// Priority (lower is preferred).
    pub priority: u32,
    /// Health sensitivity of the route.
    pub health_sensitivity: u32,
    /// Whether the route is up (§7.2).
    pub alive: bool,
    /// Whether the gateway reported the remote net not directly attached
    /// (`multi-hop`); `false` until known or when single-hop.
    pub multi_hop: bool,
    /// Whether `health_sensitivity` was given when the route was added
    /// (else it follows the global one).
    pub health_sensitivity_given: bool,
}

/// A read-only view of one router buffer pool for `routing show`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PoolView {
    /// Which pool.
    pub kind: PoolKind,
    /// Pages per buffer.
    pub npages: u32,
    /// Buffers of the pool.
    pub nbuffers: u32,
    /// Free buffers minus waiters (negative = messages waiting).
    pub credits: i32,
    /// Low-water mark of `credits`.
    pub min_credits: i32,
}

/// Router credits of a peer NI (`peer show -v`: `rtr_credits`, `min_rtr_credits`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RtrCreditsView {
    /// Credits left (negative = messages waiting).
    pub credits: i32,
    /// Low-water mark.
    pub min_credits: i32,
    /// The `peer_buffer_credits` it started with.
    pub max_credits: i32,
}

impl fmt::Display for RouteView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} via {}", self.net, self.gateway)
    }
}

impl Lnet {
    // ------------------------------------------------------------------
    // Configuration
    // ------------------------------------------------------------------

    /// The router tunables in force.
    pub fn router_config(&self) -> &RouterConfig {
        &self.router.cfg
    }

    /// Sets the router tunables (start-up parameters, `set *_buffers`). Pool
    /// sizes take effect at once if the pools exist.
    pub fn set_router_config(&mut self, now: Instant, cfg: RouterConfig) {
        self.router.cfg = cfg;
        self.resize_pools(now);
        self.router_arm(now);
    }

    /// Applies the router module parameters (semantics §13.2, §7.7):
    /// `tiny_router_buffers`, `small_router_buffers`, `large_router_buffers`,
    /// `peer_buffer_credits`, `auto_down`, `check_routers_before_use`,
    /// `avoid_asym_router_failure`, `alive_router_check_interval`,
    /// `router_ping_timeout`, and `forwarding` (`enabled` turns routing on at
    /// once, `disabled` off; empty leaves it to `routes=`). Other names are
    /// ignored. The error names the parameter and the value.
    pub fn router_params(
        &mut self,
        now: Instant,
        params: &[(String, String)],
    ) -> Result<(), String> {
        let mut c = self.router.cfg.clone();
        let mut forwarding = None;
        for (name, value) in params {
            let v = value.trim();
            let int = || -> Result<i64, String> {
                v.parse::<i64>().map_err(|_| {
                    format!("bad value for parameter {name}: {value:?} is not an integer")
                })
            };
            let nonneg = || -> Result<u32, String> {
                let x = int()?;
                u32::try_from(x)
                    .map_err(|_| format!("bad value for parameter {name}: {x} must be >= 0"))
            };
            match name.as_str() {
                "tiny_router_buffers" => c.tiny_router_buffers = nonneg()?,
                "small_router_buffers" => c.small_router_buffers = nonneg()?,
                "large_router_buffers" => c.large_router_buffers = nonneg()?,
                "peer_buffer_credits" => c.peer_buffer_credits = nonneg()? as i32,
                "auto_down" => c.auto_down = int()? != 0,
                "check_routers_before_use" => c.check_routers_before_use = int()? != 0,
                "avoid_asym_router_failure" => c.avoid_asym_router_failure = int()? != 0,
                "alive_router_check_interval" => c.alive_router_check_interval = int()?,
                "router_ping_timeout" => c.router_ping_timeout = nonneg()?,
                "forwarding" => {
                    forwarding = match v {
                        "" => None,
                        "enabled" => Some(true),
                        "disabled" => Some(false),
                        _ => {
                            return Err(format!(
                        "bad value for parameter forwarding: {value:?} (use enabled or disabled)"
                    ))
                        }
                    }
                }
                _ => {}
            }
        }
        self.set_router_config(now, c);
        if let Some(on) = forwarding {
            self.set_routing(now, on, true);
        }
        Ok(())
    }

    /// `lnetctl set tiny_buffers|small_buffers|large_buffers N`: a total
    /// over all CPU partitions, 0 = the default. Negative counts are refused.
    /// While routing is off (disabled or stopping) it succeeds with no effect
    /// (lnetctl.md §2.8, as upstream): the next enable uses the start-up
    /// sizes.
    pub fn set_router_buffers(
        &mut self,
        now: Instant,
        kind: PoolKind,
        total: i64,
    ) -> Result<(), RouteError> {
        if total < 0 {
            return Err(RouteError::Buffers);
        }
        let v = u32::try_from(total).map_err(|_| RouteError::Buffers)?;
        if !self.router.state.forwards() {
            return Ok(());
        }
        let mut cfg = self.router.cfg.clone();
        match kind {
            PoolKind::Tiny => cfg.tiny_router_buffers = v,
            PoolKind::Small => cfg.small_router_buffers = v,
            PoolKind::Large => cfg.large_router_buffers = v,
        }
        self.set_router_config(now, cfg);
        Ok(())
    }

    /// Sizes the pools from the tunables and allocates their buffers (only
    /// while routing forwards; otherwise the sizes apply at the next
    /// `routing enable`). Waiters a bigger pool can serve get a buffer now.
    fn resize_pools(&mut self, now: Instant) {
        if !self.router.state.forwards() {
            return;
        }
        for k in PoolKind::ALL {
            let n = self.router.pool_total(k).max(1);
            self.router.pools[k.idx()].resize(n);
            loop {
                let pool = &mut self.router.pools[k.idx()];
                if pool.free.is_empty() {
                    break;
                }
                let Some(w) = pool.queue.pop_front() else {
                    break;
                };
                self.fwd_recv(now, w);
            }
        }
    }

    /// Routing is off: the pools' buffers are freed (those in use as they
    /// come back) and `routing show` shows empty pools.
    fn release_pools(&mut self) {
        for p in &mut self.router.pools {
            p.release_all();
        }
    }

    /// The routing state (`routing show`'s `enable`).
    pub fn routing_state(&self) -> RoutingState {
        self.router.state
    }

    /// Turns forwarding on or off (`lnetctl set routing 1|0`, `forwarding=`).
    /// At start-up (`immediate`) the switch is at once; at run time enabling
    /// goes through STARTING and disabling through STOPPING for
    /// `alive_router_check_interval + router_ping_timeout` seconds (§7.7).
    pub fn set_routing(&mut self, now: Instant, enable: bool, immediate: bool) {
        let st = self.router.state;
        if enable {
            if matches!(st, RoutingState::Enabled | RoutingState::Starting) {
                return;
            }
            self.router.pools_exist = true;
            self.router.state = if immediate {
                RoutingState::Enabled
            } else {
                RoutingState::Starting
            };
            // The buffers are allocated now, all of them (§7.7).
            self.resize_pools(now);
        } else {
            if matches!(st, RoutingState::Disabled | RoutingState::Stopping) {
                return;
            }
            self.router.state = if immediate {
                RoutingState::Disabled
            } else {
                RoutingState::Stopping
            };
            self.drop_waiting_forwards(now);
            if immediate {
                self.release_pools();
            }
        }
        self.router.state_since = now;
        self.advertise_routing();
        self.router_ni_status(now);
        self.router_arm(now);
    }

    /// Keeps the ping buffer's RTE_DISABLED in step with the switch.
    fn advertise_routing(&mut self) {
        let on = self.router.state == RoutingState::Enabled;
        if self.cfg.tunables.routing != on {
            self.cfg.tunables.routing = on;
            self.ping_target_update();
        }
    }

    fn switch_delay(&self) -> Duration {
        let c = &self.router.cfg;
        Duration::from_secs(
            c.alive_router_check_interval.max(0) as u64 + u64::from(c.router_ping_timeout),
        )
    }

    /// Router buffer pools for `routing show` (one CPU partition); `None`
    /// before routing was ever enabled.
    pub fn router_pools(&self) -> Option<[PoolView; 3]> {
        if !self.router.pools_exist {
            return None;
        }
        Some(PoolKind::ALL.map(|k| {
            let p = &self.router.pools[k.idx()];
            PoolView {
                kind: k,
                npages: k.npages(),
                nbuffers: p.nbuffers,
                credits: p.credits,
                min_credits: p.min_credits,
            }
        }))
    }

    /// Router buffers that exist now (allocated, free or in use), by pool.
    pub fn router_buffers_allocated(&self) -> [u32; 3] {
        PoolKind::ALL.map(|k| self.router.pools[k.idx()].allocated)
    }

    /// The router credits of a peer NI, once it forwarded through us.
    pub fn peer_ni_rtr_credits(&self, nid: &Nid) -> Option<RtrCreditsView> {
        let id = self.peers.lookup(nid)?;
        self.router.rtr_credits.get(&id).map(|c| RtrCreditsView {
            credits: c.credits,
            min_credits: c.min_credits,
            max_credits: c.max_credits,
        })
    }

    // ------------------------------------------------------------------
    // Route table
    // ------------------------------------------------------------------

    /// Adds a route (`lnetctl route add`, `lnet_add_route`, §7.1). `hops`
    /// `None` is "undefined" (-1); `health_sensitivity` `None` is the
    /// global one.
    pub fn route_add(
        &mut self,
        now: Instant,
        net: NetId,
        gateway: Nid,
        hops: Option<u32>,
        priority: u32,
        health_sensitivity: Option<u32>,
    ) -> Result<(), RouteError> {
        if net == NetId::LO {
            return Err(RouteError::Loopback);
        }
        if net.lnd_type == lnd_type::ANY {
            return Err(RouteError::NetAny);
        }
        if gateway.is_any() || gateway == Nid::LO_0 {
            return Err(RouteError::BadGateway(gateway));
        }
        if gateway.net() == net || self.is_local_nid(&gateway) {
            return Err(RouteError::InvalidSettings(gateway));
        }
        if let Some(h) = hops {
            if !(1..=255).contains(&h) {
                return Err(RouteError::Hops(h));
            }
        }
        let sens = health_sensitivity.unwrap_or(self.cfg.tunables.health_sensitivity);
        if sens > 1000 {
            return Err(RouteError::Sensitivity(sens));
        }
        if self.net_is_local(net) {
            return Err(RouteError::Exists { net, gateway });
        }
        if !self.net_is_local(gateway.net()) {
            return Err(RouteError::GatewayUnreachable(gateway));
        }
        let gw_pni = self.peer_ni_for(gateway);
        let gw_peer = self.peers.get(gw_pni).map(|p| p.peer);
        let dup = self.router.routes.iter().any(|r| {
            r.net == net
                && (r.gateway == gateway
                    || self
                        .peers
                        .lookup(&r.gateway)
                        .and_then(|id| self.peers.get(id))
                        .map(|p| p.peer)
                        == gw_peer)
        });
        if dup {
            return Err(RouteError::Exists { net, gateway });
        }
        let checked_first = self.router.cfg.check_routers_before_use;
        if self.router.gateway(&gateway).is_none() {
            self.router.gateways.push(Gateway {
                nid: gateway,
                alive: !checked_first,
                rte_disabled: false,
                nis: Vec::new(),
                ping: None,
                seq: 0,
                next_ping: now,
                checked: false,
            });
        } else if let Some(g) = self.router.gateway_mut(&gateway) {
            // Adding a route forces an immediate check of the gateway.
            g.next_ping = now;
        }
        let route = Route {
            net,
            gateway,
            hops,
            priority,
            health_sensitivity,
            alive: !checked_first,
            single_hop: None,
            seq: 0,
        };
        // A random position among the routes to this net.
        let same: Vec<usize> = (0..self.router.routes.len())
            .filter(|i| self.router.routes[*i].net == net)
            .collect();
        let pos = if same.is_empty() {
            self.router.routes.len()
        } else {
            let k = (self.router.next_rand() % (same.len() as u64 + 1)) as usize;
            if k == same.len() {
                same[k - 1] + 1
            } else {
                same[k]
            }
        };
        self.router.routes.insert(pos, route);
        // Apply what we know of the gateway already.
        self.gateway_recompute(&gateway);
        self.router_arm(now);
        self.router_check(now);
        self.flush(now);
        Ok(())
    }

    /// Deletes routes (`lnetctl route del`): by net and/or gateway; a gateway
    /// NID stands for its whole peer. At least one must be given.
    pub fn route_del(
        &mut self,
        net: Option<NetId>,
        gateway: Option<Nid>,
    ) -> Result<(), RouteError> {
        let gw_peer = gateway.and_then(|g| {
            self.peers
                .lookup(&g)
                .and_then(|id| self.peers.get(id))
                .map(|p| p.peer)
        });
        let matches = |l: &Lnet, r: &Route| -> bool {
            if net.is_some_and(|n| n != r.net) {
                return false;
            }
            match gateway {
                None => net.is_some(),
                Some(g) => {
                    r.gateway == g
                        || (gw_peer.is_some()
                            && l.peers
                                .lookup(&r.gateway)
                                .and_then(|id| l.peers.get(id))
                                .map(|p| p.peer)
                                == gw_peer)
                }
            }
        };
        let before = self.router.routes.len();
        let keep: Vec<bool> = self
            .router
            .routes
            .iter()
            .map(|r| !matches(self, r))
            .collect();
        let mut it = keep.iter();
        self.router.routes.retain(|_| *it.next().unwrap_or(&true));
        if self.router.routes.len() == before {
            return Err(RouteError::NotFound);
        }
        // Gateways with no route left are forgotten (a ping in flight is
        // ignored when it completes).
        let routes = &self.router.routes;
        self.router
            .gateways
            .retain(|g| routes.iter().any(|r| r.gateway == g.nid));
        Ok(())
    }

    /// All routes, remote net by remote net (in order of first route), then
    /// in selection order within a net.
    pub fn routes(&self) -> Vec<RouteView> {
        let mut nets: Vec<NetId> = Vec::new();
        for r in &self.router.routes {
            if !nets.contains(&r.net) {
                nets.push(r.net);
            }
        }
        let mut out = Vec::with_capacity(self.router.routes.len());
        for n in nets {
            for r in self.router.routes.iter().filter(|r| r.net == n) {
                out.push(RouteView {
                    net: r.net,
                    gateway: r.gateway,
                    hops: r.hops,
                    priority: r.priority,
                    health_sensitivity: r
                        .health_sensitivity
                        .unwrap_or(self.cfg.tunables.health_sensitivity),
                    alive: self.route_alive(r),
                    multi_hop: r.single_hop == Some(false),
                    health_sensitivity_given: r.health_sensitivity.is_some(),
                });
            }
        }
        out
    }

    /// The gateway NIDs of the routes, in route order (may repeat).
    pub(crate) fn route_gateways(&self) -> impl Iterator<Item = Nid> + '_ {
        self.router.routes.iter().map(|r| r.gateway)
    }

    /// The health sensitivity for failures of a peer NI that belongs to a
    /// gateway (semantics §8.1, §8.3; upstream keeps it on the gateway peer,
    /// `lp_health_sensitivity`): the highest `--health_sensitivity` given to
    /// the routes through that gateway's peer, else the global one. `None`
    /// when the peer NI is no gateway's. Gateways' health is tracked even
    /// when they have a single NID; it ranks gateways (§7.4 step 4).
    pub(crate) fn gateway_health_sensitivity(&self, pni: PeerNiId) -> Option<u32> {
        let peer = self.peers.get(pni)?.peer;
        let mut gateway = false;
        let mut sens: Option<u32> = None;
        for r in &self.router.routes {
            let same = self
                .peers
                .lookup(&r.gateway)
                .and_then(|id| self.peers.get(id))
                .is_some_and(|p| p.peer == peer);
            if same {
                gateway = true;
                if let Some(s) = r.health_sensitivity {
                    sens = Some(sens.map_or(s, |b| b.max(s)));
                }
            }
        }
        gateway.then(|| sens.unwrap_or(self.cfg.tunables.health_sensitivity))
    }

    /// Whether `nid` belongs to a gateway: a peer some route of this node
    /// goes through (`peer show` then reports its NIs `up`/`down`).
    pub fn is_gateway(&self, nid: &Nid) -> bool {
        self.peers
            .lookup(nid)
            .is_some_and(|id| self.gateway_health_sensitivity(id).is_some())
    }

    /// Whether the gateway NID is alive as far as routing knows.
    pub fn gateway_alive(&self, nid: &Nid) -> Option<bool> {
        self.router.gateway(nid).map(|g| g.alive)
    }

    /// Applies a `routes=` module parameter: routes through one of our own
    /// NIDs make this node a router (the return value: whether any did),
    /// EEXIST and EHOSTUNREACH are tolerated; other errors stop.
    pub fn routes_apply(
        &mut self,
        now: Instant,
        routes: &crate::nid::Routes,
    ) -> Result<bool, RouteError> {
        let mut router = false;
        for r in &routes.routes {
            if self.is_local_nid(&r.gateway) {
                router = true;
                continue;
            }
            match self.route_add(now, r.net, r.gateway, r.hops, r.priority, None) {
                Ok(())
                | Err(RouteError::Exists { .. })
                | Err(RouteError::GatewayUnreachable(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(router)
    }

    fn net_is_local(&self, net: NetId) -> bool {
        net != NetId::LO
            && self
                .nis
                .iter()
                .flatten()
                .any(|n| n.net == net && n.state == NiState::Active)
    }

    fn route_alive(&self, r: &Route) -> bool {
        self.router
            .gateway(&r.gateway)
            .is_some_and(|g| g.alive && !g.rte_disabled)
            && r.alive
    }

    /// The distance through routes (§6.8): shortest hops + 1.
    pub(crate) fn route_dist(&self, nid: &Nid) -> Option<(u32, u32)> {
        self.router
            .routes
            .iter()
            .filter(|r| r.net == nid.net())
            .map(|r| r.hops.unwrap_or(1) + 1)
            .min()
            .map(|d| (d, 0))
    }

    // ------------------------------------------------------------------
    // Selection (§7.4, §7.5)
    // ------------------------------------------------------------------

    /// Whether a destination needs a gateway: no local NI on its net and,
    /// for a Multi-Rail peer, none on any of its nets.
    pub(crate) fn needs_route(&mut self, dest: Nid) -> bool {
        if self.net_is_local(dest.net()) {
            return false;
        }
        if self.router.routes.is_empty() {
            return false;
        }
        let Some(peer) = self
            .peers
            .lookup(&dest)
            .and_then(|id| self.peers.get(id))
            .and_then(|p| self.peers.peer(p.peer))
        else {
            return true;
        };
        if !peer.multi_rail {
            return true;
        }
        !peer.nets.iter().any(|pn| {
            self.nis
                .iter()
                .flatten()
                .any(|n| n.net == pn.net && n.state == NiState::Active && n.net != NetId::LO)
        })
    }

    /// A routed path to `dest` (source NI `src` if fixed): the final
    /// destination peer NI (best peer net with a route for a Multi-Rail
    /// peer), then the best route and gateway peer NI.
    pub(crate) fn select_routed(&mut self, dest: Nid, src: Option<NiId>) -> Result<Path, NoPath> {
        let dest_pni = self.peer_ni_for(dest);
        let final_pni = self.remote_peer_ni(dest_pni).unwrap_or(dest_pni);
        let final_nid = self.peers.get(final_pni).map_or(dest, |p| p.nid);
        let src_net = src.and_then(|n| self.ni_ref(n)).map(|n| n.net);
        let Some((ri, gw_pni)) = self.select_route(final_nid.net(), src_net, final_pni) else {
            self.counters.health.local_no_route += 1;
            return Err(NoPath(Completion::failed(
                errno::EHOSTUNREACH,
                HealthStatus::LOCAL_NO_ROUTE,
            )));
        };
        let max = self
            .router
            .routes
            .iter()
            .filter(|r| r.net == final_nid.net())
            .map(|r| r.seq)
            .max()
            .unwrap_or(0);
        self.router.routes[ri].seq = max + 1;
        let gw_nid = self.peers.get(gw_pni).map_or(Nid::ANY, |p| p.nid);
        let ni = match src {
            Some(n) => n,
            None => self
                .best_ni_on(gw_nid.net(), None)
                .ok_or(NoPath(Completion::failed(
                    errno::EHOSTUNREACH,
                    HealthStatus::LOCAL_NO_ROUTE,
                )))?,
        };
        self.bump_seq(ni, gw_pni);
        // The final destination is bumped as well (§6.6): its peer, peer
        // net and peer NI sequences.
        if let Some((peer, net)) = self.peers.get(final_pni).map(|p| (p.peer, p.nid.net())) {
            let mut seq = None;
            if let Some(p) = self.peers.peers.get_mut(peer.idx, peer.gen) {
                p.seq += 1;
                seq = Some(p.seq);
                if let Some(pn) = p.nets.iter_mut().find(|n| n.net == net) {
                    pn.seq = p.seq;
                }
            }
            if let (Some(s), Some(p)) = (seq, self.peers.get_mut(final_pni)) {
                p.seq = s;
            }
        }
        let src_nid = self.ni_ref(ni).map_or(Nid::ANY, |n| n.nid);
        Ok(Path {
            ni,
            peer_ni: Some(gw_pni),
            src_nid,
            dest_nid: final_nid,
            next_hop: gw_nid,
        })
    }

    /// §7.5: for a Multi-Rail destination, its best peer net that has a
    /// route, and the best peer NI on it.
    fn remote_peer_ni(&self, dest_pni: PeerNiId) -> Option<PeerNiId> {
        let peer = self.peers.peer(self.peers.get(dest_pni)?.peer)?;
        if !peer.multi_rail {
            return None;
        }
        let mut best: Option<(usize, PeerNetKey)> = None;
        for (i, pn) in peer.nets.iter().enumerate() {
            if !self
                .router
                .routes
                .iter()
                .any(|r| r.net == pn.net && self.route_alive(r))
            {
                continue;
            }
            let health = pn
                .peer_nis
                .iter()
                .filter_map(|id| self.peers.get(*id))
                .map(|p| p.health_value)
                .max()
                .unwrap_or(0);
            let key = (
                health,
                std::cmp::Reverse(pn.sel_priority),
                std::cmp::Reverse(pn.seq),
            );
            if best.as_ref().is_none_or(|(_, k)| key > *k) {
                best = Some((i, key));
            }
        }
        let (i, _) = best?;
        let mut chosen: Option<(PeerNiId, RemotePeerNiKey)> = None;
        for &id in &peer.nets[i].peer_nis {
            let Some(p) = self.peers.get(id) else {
                continue;
            };
            let key = (
                p.health_value,
                std::cmp::Reverse(p.sel_priority),
                p.tx_credits,
                std::cmp::Reverse(p.seq),
            );
            if chosen.as_ref().is_none_or(|(_, k)| key > *k) {
                chosen = Some((id, key));
            }
        }
        chosen.map(|(id, _)| id)
    }

    /// The best alive route to `net` and its gateway's peer NI (§7.4).
    fn select_route(
        &self,
        net: NetId,
        src_net: Option<NetId>,
        dest: PeerNiId,
    ) -> Option<(usize, PeerNiId)> {
        type Key = (
            bool,
            std::cmp::Reverse<u32>,
            std::cmp::Reverse<u32>,
            u32,
            std::cmp::Reverse<u64>,
            i32,
            std::cmp::Reverse<u64>,
        );
        let mut best: Option<(usize, PeerNiId, Key)> = None;
        for (i, r) in self.router.routes.iter().enumerate() {
            if r.net != net || !self.route_alive(r) {
                continue;
            }
            let Some(gw) = self.peers.lookup(&r.gateway) else {
                continue;
            };
            let Some(peer) = self.peers.get(gw).and_then(|p| self.peers.peer(p.peer)) else {
                continue;
            };
            // The gateway's best peer NI on a local net (the allowed one).
            let mut gbest: Option<(PeerNiId, GatewayNiKey)> = None;
            for pn in &peer.nets {
                if src_net.is_some_and(|s| s != pn.net) || !self.net_is_local(pn.net) {
                    continue;
                }
                for &id in &pn.peer_nis {
                    let Some(p) = self.peers.get(id) else {
                        continue;
                    };
                    if !p.up {
                        continue;
                    }
                    let k = (p.health_value, std::cmp::Reverse(p.txqnob), p.tx_credits);
                    if gbest.as_ref().is_none_or(|(_, bk)| k > *bk) {
                        gbest = Some((id, k));
                    }
                }
            }
            let Some((gpni, gk)) = gbest else { continue };
            let key = (
                // 1. A gateway the destination prefers (UDSP router rule).
                self.udsp_gateway_preferred(Some(dest), &r.gateway),
                std::cmp::Reverse(r.priority),
                std::cmp::Reverse(r.hops.unwrap_or(1)),
                gk.0,
                gk.1,
                gk.2,
                std::cmp::Reverse(r.seq),
            );
            if best.as_ref().is_none_or(|(_, _, k)| key > *k) {
                best = Some((i, gpni, key));
            }
        }
        best.map(|(i, g, _)| (i, g))
    }

    // ------------------------------------------------------------------
    // Aliveness (§7.2, §7.3, §7.8)
    // ------------------------------------------------------------------

    /// Arms the checker's one-second timer when there is something to check.
    fn router_arm(&mut self, now: Instant) {
        let needed = (self.router.cfg.alive_router_check_interval > 0
            && !self.router.gateways.is_empty())
            || self.router.state != RoutingState::Disabled;
        if needed && self.router.tick_at.is_none() {
            let at = now.saturating_add(Duration::from_secs(1));
            self.router.tick_at = Some(at);
            self.arm(at, Timer::Router);
        }
    }

    /// The checker's tick (`lnet_check_routers`, the routing switch).
    pub(crate) fn router_tick(&mut self, now: Instant) {
        self.router.tick_at = None;
        match self.router.state {
            RoutingState::Starting if now.since(self.router.state_since) >= self.switch_delay() => {
                self.router.state = RoutingState::Enabled;
                self.router.state_since = now;
                self.advertise_routing();
            }
            RoutingState::Stopping => {
                let d = self.switch_delay();
                let since = now.since(self.router.state_since);
                let busy = self.router.fwd.iter().any(|f| f.is_some());
                if (since >= d && !busy) || since >= d * 3 {
                    self.router.state = RoutingState::Disabled;
                    self.router.state_since = now;
                    self.release_pools();
                }
            }
            _ => {}
        }
        self.router_ni_status(now);
        self.router_check(now);
        self.router_arm(now);
    }

    /// A ping (portal-0 GET) from another node arrived on `ni`: on a router
    /// its net is alive, and its NIs are up again at once (§7.6).
    fn router_net_heard(&mut self, now: Instant, ni: NiId) {
        if self.router.state != RoutingState::Enabled {
            return;
        }
        let Some(net) = self.ni_ref(ni).map(|n| n.net) else {
            return;
        };
        match self.router.net_alive.iter_mut().find(|(n, _)| *n == net) {
            Some(e) => e.1 = now,
            None => self.router.net_alive.push((net, now)),
        }
        self.router_ni_status(now);
    }

    /// The routing switch's NI status check (`lnet_update_ni_status_locked`,
    /// §7.7): while routing is ENABLED, the NIs of a net that heard no ping
    /// from another node for `router_ping_timeout +
    /// alive_router_check_interval` are DOWN in the ping buffer (and in `net
    /// show`), the others UP; a net's clock starts when routing is enabled.
    /// Otherwise no NI is marked. A change bumps the ping buffer's sequence
    /// (peers are pushed the new buffer by discovery).
    fn router_ni_status(&mut self, now: Instant) {
        let enabled = self.router.state == RoutingState::Enabled;
        let timeout = self.switch_delay();
        let since = self.router.state_since;
        let mut changed = false;
        for slot in 0..self.nis.len() {
            let Some(n) = self.nis[slot].as_ref() else {
                continue;
            };
            if n.net == NetId::LO {
                continue;
            }
            let down = enabled && {
                let heard = self
                    .router
                    .net_alive
                    .iter()
                    .find(|(net, _)| *net == n.net)
                    .map_or(since, |(_, t)| (*t).max(since));
                now >= heard.saturating_add(timeout)
            };
            if let Some(n) = self.nis[slot].as_mut() {
                if n.rtr_down != down {
                    n.rtr_down = down;
                    changed = true;
                }
            }
        }
        if changed {
            self.ping_target_update();
        }
    }

    /// Checks every gateway whose time has come (§7.3): with discovery on,
    /// by discovering it (a forced ping and push, the ping to the gateway's
    /// NID on our net, `router_ping_timeout`); with discovery off, by an
    /// internal ping.
    fn router_check(&mut self, now: Instant) {
        let interval = self.router.cfg.alive_router_check_interval;
        if interval <= 0 {
            return;
        }
        let timeout = Duration::from_secs(u64::from(self.router.cfg.router_ping_timeout.max(1)));
        let discovery = !self.cfg.tunables.peer_discovery_disabled;
        for i in 0..self.router.gateways.len() {
            let g = &self.router.gateways[i];
            if g.ping.is_some() || now < g.next_ping {
                continue;
            }
            let nid = g.nid;
            let Some(src) = self
                .best_ni_on(nid.net(), None)
                .and_then(|n| self.ni_ref(n))
                .map(|n| n.nid)
            else {
                continue;
            };
            let gw_peer = self.peer_of_nid(&nid);
            if discovery
                && gw_peer
                    .and_then(|p| self.peers.peer(p))
                    .is_some_and(|p| p.state.has(PeerState::RTR_DISCOVERY))
            {
                // Its router discovery is still running.
                continue;
            }
            let next = now.saturating_add(Duration::from_secs(interval as u64));
            if let Some(g) = self.router.gateways.get_mut(i) {
                g.next_ping = next;
            }
            if discovery {
                let peer = match gw_peer {
                    Some(p) => p,
                    None => {
                        let pni = self.peer_ni_for(nid);
                        match self.peers.get(pni) {
                            Some(p) => p.peer,
                            None => continue,
                        }
                    }
                };
                if let Some(p) = self.peers.peers.get_mut(peer.idx, peer.gen) {
                    p.state.set(
                        PeerState::FORCE_PING | PeerState::FORCE_PUSH | PeerState::RTR_DISCOVERY,
                    );
                    p.disc.ping_to = Some((nid, timeout));
                }
                self.discovery_queue(peer);
                continue;
            }
            let ping = self.ping_internal_timeout(now, nid, src, timeout);
            if let Some(g) = self.router.gateways.iter_mut().find(|g| g.nid == nid) {
                if g.ping.is_none() && ping.is_some() {
                    g.ping = ping;
                }
            }
        }
    }

    /// The gateways (route gateway NIDs) that belong to `peer`.
    fn gateways_of(&self, peer: PeerId) -> Vec<Nid> {
        self.router
            .gateways
            .iter()
            .map(|g| g.nid)
            .filter(|g| self.peer_of_nid(g) == Some(peer))
            .collect()
    }

    /// A ping reply (`push` false) or a push (`push` true) of `peer` came in
    /// through discovery: if the peer is a gateway, its routes are
    /// recomputed from the buffer at once (§7.2) — so a gateway whose far
    /// interface comes up is used again when its push lands, not at the next
    /// check. A push older than the buffer already applied is ignored.
    pub(crate) fn router_gateway_info(&mut self, peer: PeerId, info: &PingInfo, push: bool) {
        for nid in self.gateways_of(peer) {
            let Some(i) = self.router.gateways.iter().position(|g| g.nid == nid) else {
                continue;
            };
            if push && info.seq < self.router.gateways[i].seq {
                continue;
            }
            if !push {
                self.router.gateways[i].checked = true;
            }
            self.gateway_apply_info(i, info);
            self.gateway_recompute(&nid);
        }
    }

    /// Discovery of a gateway peer finished (`lnet_router_discovery_complete`,
    /// §9.3): it was checked; on error it is dead and all its routes go down.
    pub(crate) fn router_discovery_done(&mut self, peer: PeerId, err: i32) {
        for nid in self.gateways_of(peer) {
            if let Some(g) = self.router.gateway_mut(&nid) {
                g.checked = true;
            }
            if err != 0 {
                tracing::debug!("router {nid}: discovery failed ({err}); its routes go down");
                self.gateway_down(nid);
            }
        }
    }

    /// Records a gateway's ping buffer: alive, routing flag, NIDs and their
    /// UP flags; every route through it up until recomputed.
    fn gateway_apply_info(&mut self, i: usize, info: &PingInfo) {
        let Some(g) = self.router.gateways.get_mut(i) else {
            return;
        };
        let nid = g.nid;
        g.alive = true;
        g.seq = info.seq;
        g.rte_disabled = info.features & crate::wire::LNET_PING_FEAT_RTE_DISABLED != 0;
        g.nis.clear();
        for s in info.nis.iter().chain(info.large_nis.iter()) {
            if s.nid != Nid::LO_0 {
                g.nis
                    .push((s.nid, s.status != crate::wire::LNET_NI_STATUS_DOWN));
            }
        }
        for r in self.router.routes.iter_mut().filter(|r| r.gateway == nid) {
            r.alive = true;
        }
    }

    /// An internal ping finished; returns whether it was a router ping.
    pub(crate) fn router_ping_done(
        &mut self,
        id: PingId,
        result: &Result<PingInfo, PingError>,
    ) -> bool {
        let Some(i) = self.router.gateways.iter().position(|g| g.ping == Some(id)) else {
            return false;
        };
        let nid = self.router.gateways[i].nid;
        self.router.gateways[i].ping = None;
        self.router.gateways[i].checked = true;
        match result {
            Ok(info) => self.gateway_apply_info(i, info),
            Err(e) => {
                tracing::debug!("router {nid}: {e}; its routes go down");
                self.gateway_down(nid);
            }
        }
        self.gateway_recompute(&nid);
        true
    }

    /// A gateway is dead: all its peer NIs down, all its routes down.
    fn gateway_down(&mut self, nid: Nid) {
        if let Some(g) = self.router.gateway_mut(&nid) {
            g.alive = false;
        }
        for r in self.router.routes.iter_mut().filter(|r| r.gateway == nid) {
            r.alive = false;
        }
        let pnis: Vec<PeerNiId> = self
            .peers
            .lookup(&nid)
            .and_then(|id| self.peers.get(id))
            .and_then(|p| self.peers.peer(p.peer))
            .map(|p| {
                p.nets
                    .iter()
                    .flat_map(|n| n.peer_nis.iter().copied())
                    .collect()
            })
            .unwrap_or_default();
        for id in pnis {
            if let Some(p) = self.peers.get_mut(id) {
                p.up = false;
            }
        }
    }

    /// Recomputes a gateway's routes from its last ping reply (§7.2).
    fn gateway_recompute(&mut self, nid: &Nid) {
        let avoid_asym = self.router.cfg.avoid_asym_router_failure;
        let Some(g) = self.router.gateway(nid) else {
            return;
        };
        if g.nis.is_empty() {
            return;
        }
        let (alive, rte_disabled) = (g.alive, g.rte_disabled);
        let nis = g.nis.clone();
        for r in self.router.routes.iter_mut().filter(|r| r.gateway == *nid) {
            if !alive || rte_disabled {
                r.alive = false;
                continue;
            }
            let local_up = nis.iter().any(|(n, up)| n.net() == nid.net() && *up);
            if !local_up {
                r.alive = false;
                continue;
            }
            let remote: Vec<bool> = nis
                .iter()
                .filter(|(n, _)| n.net() == r.net)
                .map(|(_, up)| *up)
                .collect();
            let single = !remote.is_empty();
            if single && r.hops.is_some_and(|h| h > 1) {
                tracing::warn!(
                    "route {} via {}: declared {} hops but the gateway is on that net",
                    r.net,
                    r.gateway,
                    r.hops.unwrap_or(1)
                );
            }
            r.single_hop = Some(single);
            r.alive = !(avoid_asym && single) || remote.iter().any(|up| *up);
        }
    }

    /// An LND notification about a peer NI (§7.8): a gateway goes down or
    /// comes back with it.
    pub(crate) fn router_notify(&mut self, peer: Nid, alive: bool) {
        if !alive && !self.router.cfg.auto_down {
            return;
        }
        let Some(pni) = self.peers.lookup(&peer) else {
            return;
        };
        let gw_peer = self.peers.get(pni).map(|p| p.peer);
        let gws: Vec<Nid> = self
            .router
            .gateways
            .iter()
            .map(|g| g.nid)
            .filter(|g| {
                *g == peer
                    || self
                        .peers
                        .lookup(g)
                        .and_then(|id| self.peers.get(id))
                        .map(|p| p.peer)
                        == gw_peer
            })
            .collect();
        for g in gws {
            if alive {
                if let Some(gw) = self.router.gateway_mut(&g) {
                    gw.alive = true;
                }
                for r in self.router.routes.iter_mut().filter(|r| r.gateway == g) {
                    r.alive = true;
                }
                self.gateway_recompute(&g);
            } else {
                self.gateway_down(g);
            }
        }
    }

    /// A message arrived from `from` with source `src` on another net: it
    /// came through a gateway (§7.6). Returns whether to drop it
    /// (`drop_asym_route`, for messages to us only).
    pub(crate) fn rx_via_router(
        &mut self,
        now: Instant,
        ni: NiId,
        hdr: &Hdr,
        from: Nid,
        for_me: bool,
    ) -> bool {
        if for_me
            && hdr.msg_type == lnd_api::MsgType::GET
            && hdr.body_get().ptl_index == 0
            && !self.is_local_nid(&hdr.src_nid)
        {
            self.router_net_heard(now, ni);
        }
        let src_net = hdr.src_nid.net();
        if src_net == from.net() || src_net == NetId::LO {
            return false;
        }
        let from_peer = self
            .peers
            .lookup(&from)
            .and_then(|id| self.peers.get(id))
            .map(|p| p.peer);
        let same_peer = |l: &Lnet, g: &Nid| {
            *g == from
                || (from_peer.is_some()
                    && l.peers
                        .lookup(g)
                        .and_then(|id| l.peers.get(id))
                        .map(|p| p.peer)
                        == from_peer)
        };
        if for_me && self.cfg.tunables.drop_asym_route {
            let has = self
                .router
                .routes
                .iter()
                .any(|r| r.net == src_net && same_peer(self, &r.gateway));
            if !has {
                return true;
            }
        }
        // A gateway that routed a message to us is alive.
        let gws: Vec<Nid> = self
            .router
            .gateways
            .iter()
            .filter(|g| !g.alive && same_peer(self, &g.nid))
            .map(|g| g.nid)
            .collect();
        for g in gws {
            if let Some(gw) = self.router.gateway_mut(&g) {
                gw.alive = true;
            }
            for r in self
                .router
                .routes
                .iter_mut()
                .filter(|r| r.gateway == g && r.net == src_net)
            {
                r.alive = true;
            }
        }
        false
    }
}
