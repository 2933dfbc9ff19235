//! Links of the simulated fabric: how a transmission between two NIs
//! behaves ([`LinkParams`]) and when links are cut ([`Cut`]).

use lnet_core::lnd_api::{HealthStatus, Nid};
use lnet_core::{Duration, Instant};

/// How a link carries messages in one direction (the fabric sets both
/// directions of a pair alike).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LinkParams {
    /// Fixed one-way delay.
    pub latency: Duration,
    /// Extra delay drawn uniformly from `0..=jitter` per message.
    pub jitter: Duration,
    /// Probability that a message is lost (its sender's LND gives it up
    /// after its timeout).
    pub loss: f64,
    /// The health status a randomly lost message is finalized with
    /// (`NETWORK_TIMEOUT`, as socklnd; `REMOTE_DROPPED`, `LOCAL_DROPPED`, ...
    /// play `lnetctl fault drop --health_error`). Timeouts carry
    /// `-ETIMEDOUT`, the others `-EIO`. Cuts always time out.
    pub loss_status: HealthStatus,
    /// Probability that a message arrives twice (the copy a little later).
    pub duplicate: f64,
    /// Probability that a message's payload is damaged; the receiving LND
    /// detects it (as with socklnd checksums) and fails the receive with
    /// `-EIO`. Messages without payload are never damaged.
    pub corrupt: f64,
    /// Bytes per second; `None` is infinitely fast. Messages on one link
    /// are serialized one after the other.
    pub bandwidth: Option<u64>,
    /// Largest payload the link takes; a bigger send is refused at once
    /// (`EMSGSIZE`).
    pub mtu: Option<u32>,
    /// Messages on the link arrive in the order they were sent, as on one
    /// TCP connection (jitter then only delays, it never reorders).
    pub fifo: bool,
}

impl Default for LinkParams {
    fn default() -> Self {
        LinkParams {
            latency: Duration::from_micros(5),
            jitter: Duration::ZERO,
            loss: 0.0,
            loss_status: HealthStatus::NETWORK_TIMEOUT,
            duplicate: 0.0,
            corrupt: 0.0,
            bandwidth: None,
            mtu: None,
            fifo: true,
        }
    }
}

impl LinkParams {
    /// A perfect link with the default 5 µs latency.
    pub fn new() -> LinkParams {
        LinkParams::default()
    }
    /// Sets the one-way latency.
    pub fn latency(mut self, d: Duration) -> Self {
        self.latency = d;
        self
    }
    /// Sets the jitter.
    pub fn jitter(mut self, d: Duration) -> Self {
        self.jitter = d;
        self
    }
    /// Sets the loss probability.
    pub fn loss(mut self, p: f64) -> Self {
        self.loss = p;
        self
    }
    /// Sets the health status of randomly lost messages.
    pub fn loss_status(mut self, h: HealthStatus) -> Self {
        self.loss_status = h;
        self
    }
    /// Sets the duplication probability.
    pub fn duplicate(mut self, p: f64) -> Self {
        self.duplicate = p;
        self
    }
    /// Sets the corruption probability.
    pub fn corrupt(mut self, p: f64) -> Self {
        self.corrupt = p;
        self
    }
    /// Sets the bandwidth (bytes per second).
    pub fn bandwidth(mut self, bytes_per_sec: u64) -> Self {
        self.bandwidth = Some(bytes_per_sec);
        self
    }
    /// Sets the MTU (largest payload).
    pub fn mtu(mut self, bytes: u32) -> Self {
        self.mtu = Some(bytes);
        self
    }
    /// Lets jitter reorder messages.
    pub fn unordered(mut self) -> Self {
        self.fifo = false;
        self
    }
}

/// Identifies a cut made with [`crate::sim::Fabric::partition`] or
/// [`crate::sim::Fabric::cut_link`], to heal it later.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct CutId(pub(crate) usize);

/// What a cut separates.
#[derive(Clone, Debug)]
pub(crate) enum CutScope {
    /// Every NI of the nodes on one side from every NI of the other.
    Nodes(Vec<usize>, Vec<usize>),
    /// The two NIs with these NIDs.
    Link(Nid, Nid),
}

/// A partition, active during `[from, until)`.
#[derive(Clone, Debug)]
pub(crate) struct Cut {
    pub(crate) scope: CutScope,
    pub(crate) from: Instant,
    pub(crate) until: Option<Instant>,
}

impl Cut {
    /// Whether the cut separates `(a_node, a_nid)` from `(b_node, b_nid)` at `t`
    /// (in either direction).
    pub(crate) fn blocks(&self, t: Instant, a: (usize, Nid), b: (usize, Nid)) -> bool {
        if t < self.from || self.until.is_some_and(|u| t >= u) {
            return false;
        }
        match &self.scope {
            CutScope::Nodes(x, y) => {
                (x.contains(&a.0) && y.contains(&b.0)) || (y.contains(&a.0) && x.contains(&b.0))
            }
            CutScope::Link(x, y) => (*x == a.1 && *y == b.1) || (*y == a.1 && *x == b.1),
        }
    }
}

/// What one direction of a link has carried.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Sends the LND accepted on this link.
    pub sent: u64,
    /// Messages handed to the receiving LNet (duplicates included).
    pub delivered: u64,
    /// Messages lost (random loss, cut, or nobody at the address).
    pub lost: u64,
    /// Extra copies delivered.
    pub duplicated: u64,
    /// Messages whose payload was damaged.
    pub corrupted: u64,
    /// Sends refused at once (over the MTU).
    pub refused: u64,
    /// Most sends owned by the sending LND at the same time on this link.
    pub max_in_flight: u64,
}

/// The mutable state of one direction of a link.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct LinkRun {
    /// When the last message sent on it arrives (FIFO links).
    pub(crate) last_arrival: Instant,
    /// When the link finishes serializing what it was given (bandwidth).
    pub(crate) busy_until: Instant,
    /// Sends owned by the sending LND now.
    pub(crate) in_flight: u64,
    pub(crate) stats: LinkStats,
}
