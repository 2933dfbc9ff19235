//! # The simulated fabric
//!
//! A deterministic test bed for the engine ([`lnet_core::Lnet`]): N nodes in
//! one process, each an engine with its own `0@lo` (served by the engine's
//! `lo` LND) and one or more NIs served by a simulated LND, all driven by a
//! virtual clock and one seeded RNG. Nothing sleeps and nothing is
//! scheduled by the OS, so a scenario covering minutes of LNet time runs in
//! milliseconds and replays exactly from its seed.
//!
//! ## What is real and what is simulated
//!
//! * The engines are the real engine, driven exactly as the node runtime
//!   (`lnetd::node`) drives it, through the same stack
//!   (`lnet_selftest::stack::Stack`): every input goes through the engine
//!   under its lock, then the stack's `poll_lnd` / `poll_event` are drained
//!   and the LND operations are executed after the lock is released;
//!   synchronous LND failures are fed back with `handle_done`, operations
//!   for an NI that is gone with `handle_unsent`. `handle_timeout` is called
//!   when the clock reaches the stack's `poll_timeout` (the engine's and
//!   selftest's timers).
//! * Selftest runs on a node once [`Fabric::enable_selftest`] is called;
//!   [`Fabric::lst`] runs a console command in virtual time.
//! * The LND is simulated, but it is an [`lnet_core::lnd_api::Lnd`] with
//!   [`lnet_core::lnd_api::LndNi`]s, wrapped by `LndHandle::new` /
//!   `LndNiHandle::new` like a plugin, and it talks to the engine only
//!   through its `HostHandle` (`parse`, `finalize`). It fills unset net
//!   tunables (credits 256, peer_credits 8, peer_timeout 180) and reports its
//!   timeout (LND tunable `timeout`, default 50 s, like `sock_timeout`).
//! * A send becomes an arrival event on the wire queue after the link's
//!   serialization time, latency and jitter. On arrival the receiving LND
//!   calls `parse`; the engine answers with `recv` (inside `parse`, or later
//!   with `delayed` for a PUT parked on a lazy portal), which copies the
//!   payload into the matched MD's memory (`Payload::copy_to`) and finalizes
//!   the receive. The sender's send is finalized OK once the receiver has
//!   taken the payload, so a parked message keeps its sender's credits. A
//!   lost message (random loss, a cut link, nobody at the address) is
//!   finalized on the sender after the LND timeout with `-ETIMEDOUT` /
//!   `NETWORK_TIMEOUT`, as socklnd does for output that made no progress.
//! * Events on the queue are ordered by time, ties by insertion order;
//!   engine timers due at the same instant run after the wire events, nodes
//!   in index order.
//!
//! ## Writing a scenario
//!
//! ```
//! use lnet_core::{AckReq, Duration, EventKind, MdOptions, Threshold};
//! use lnet_tests::sim::{seed_from_env, Fabric, LinkParams, NiSpec, NodeSpec};
//!
//! // 1. A fabric with a seed (LNET_SIM_SEED overrides the default) and nodes.
//! let mut f = Fabric::new(seed_from_env(1));
//! f.set_default_link(LinkParams::new().latency(Duration::from_micros(20)));
//! let a = f.add_node(NodeSpec::new().ni(NiSpec::tcp([10, 0, 0, 1])));
//! let b = f.add_node(NodeSpec::new().ni(NiSpec::tcp([10, 0, 0, 2])));
//!
//! // 2. Set up MDs and start operations (each call runs the engine at the
//! //    virtual time and executes what it asks its LNDs to do).
//! let (_, sink) = f.post(b, 4, 0x11, 8, MdOptions::OP_PUT, Threshold::Count(1));
//! let (md, _) = f.bind(a, b"8 bytes!", Threshold::Count(2));
//! f.put(a, md, AckReq::Ack, f.pid(b), 4, 0x11, 0).expect("put");
//!
//! // 3. Run virtual time: until nothing is scheduled (and check nothing
//! //    was left hanging), or up to a time.
//! f.settle();
//!
//! // 4. Check data, events, counters.
//! assert_eq!(sink.to_vec().expect("free"), b"8 bytes!");
//! let kinds: Vec<EventKind> = f.take_md_events(a).iter().map(|e| e.kind).collect();
//! assert!(kinds.contains(&EventKind::Ack));
//! assert_eq!(f.take_md_events(b)[0].kind, EventKind::Put);
//! ```
//!
//! ## Tools
//!
//! * Faults: [`LinkParams`] (latency, jitter, loss and the health status
//!   lost messages report, duplicate, corrupt, bandwidth, MTU, FIFO or not) for one pair of NIs with
//!   [`Fabric::set_link`] or for all with [`Fabric::set_default_link`];
//!   partitions between groups of nodes ([`Fabric::partition`]) or between
//!   two NIs ([`Fabric::cut_link`]) from a given time, ended at a given time
//!   (`until`, or [`Fabric::heal`]); an interface going down and up with
//!   [`Fabric::set_ni_link`]; `lnetctl net del` with [`Fabric::del_ni`].
//! * Fault rules (`lnetctl fault drop|delay`): NIs marked [`NiSpec::fault`]
//!   are stacked under their node's lnd-fault filter, as lnetd stacks it on
//!   a plugin's NIs; [`Fabric::fault`] sets the node's rules (on the
//!   virtual clock, from the seed; held messages are released by `step`).
//! * Time: [`Fabric::settle`] runs until idle and fails if anything is left
//!   hanging (a message in an engine, a send owned by an LND, a `recv` that
//!   never came); [`Fabric::run_until`] / [`Fabric::run_for`] stop at a time,
//!   to look at the state in the middle; [`Fabric::step`] runs one instant.
//! * Engines: [`Fabric::call`] for commands (`put`, `get`, `ping`,
//!   `peer_add`, MD/ME calls; [`Fabric::post`], [`Fabric::bind`],
//!   [`Fabric::put`], [`Fabric::get`] are shortcuts), [`Fabric::inspect`] for
//!   counters, credits, peers, health.
//! * Results: [`Fabric::take_events`] / [`Fabric::take_md_events`] per node;
//!   [`Fabric::link_stats`] per link direction; [`Fabric::max_in_flight`]
//!   per NI; [`Fabric::trace`], the ordered list of everything that happened
//!   (sends and their fate, arrivals, receives, completions, events), to
//!   compare two runs or to read when a scenario fails.
//!
//! Tips: give every test its own default seed and take it through
//! [`seed_from_env`]; assert on what must hold for any seed (a test run with
//! `LNET_SIM_SEED=...` must still pass); a buffer that takes several PUTs
//! needs `MANAGE_REMOTE` (with the PUT's offset) or a large enough
//! locally-managed MD.
//!
//! When a test panics, the fabric prints `sim seed: N (rerun with
//! LNET_SIM_SEED=N)`, and before it its whole trace when `LNET_SIM_TRACE`
//! is set. A broken contract seen by the LND or the runtime glue (a `recv`
//! for an unknown token or with the wrong `delayed` flag, an engine panic
//! inside a callback, which the ABI shims would otherwise swallow) fails the
//! test at the next step.

mod link;
mod lnd;
mod node;
mod rng;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};

use lnd_fault::FaultFilter;
use lnet_core::lnd_api::{
    lnd_type, FilterHandle, HostHandle, IoBuf, LndHandle, NetId, NetTunables, NiConfig, Nid,
    Payload, Tunable,
};
use lnet_core::{
    AckReq, ApiError, Config, Duration, Event, GlobalTunables, InsPos, Instant, Lnet, MdEvent,
    MdHandle, MdOptions, MdSpec, NiId, ProcessId, Threshold, Unlink, LNET_PID_LUSTRE,
};
use lnet_selftest::stack::Stack;
use lnet_selftest::{ConsoleError, ConsoleReply, ConsoleRequest, Params, Selftest, TxnId};
use lnetd::LoLnd;

pub use link::{CutId, LinkParams, LinkStats};

/// The wall clock (since the Unix epoch) when a fabric's virtual clock
/// starts: selftest's session ids and stamps count from it.
pub const WALL: Duration = Duration::from_secs(1_700_000_000);
pub use lnd::DEFAULT_LND_TIMEOUT;
pub use rng::{seed_from_env, Rng, SeedGuard, SEED_ENV};

use link::{Cut, CutScope};
use lnd::{lock, Shared, SimLnd};
use node::{NodeCell, NodeState, SimHost};

/// The `tcp` network (socklnd's type number, so NIDs print as `@tcp`).
pub const TCP: NetId = NetId::new(lnd_type::SOCKLND, 0);
/// The `tcp1` network.
pub const TCP1: NetId = NetId::new(lnd_type::SOCKLND, 1);

/// A node to add: its PID, global tunables and NIs.
#[derive(Clone, Debug)]
pub struct NodeSpec {
    /// LNet PID (12345).
    pub pid: u32,
    /// Global tunables (`transaction_timeout`, `retry_count`, ...).
    pub tunables: GlobalTunables,
    /// The NIs, in configuration order.
    pub nis: Vec<NiSpec>,
}

impl Default for NodeSpec {
    fn default() -> Self {
        NodeSpec {
            pid: LNET_PID_LUSTRE,
            tunables: GlobalTunables::default(),
            nis: Vec::new(),
        }
    }
}

impl NodeSpec {
    /// A node with default tunables and no NI yet.
    pub fn new() -> NodeSpec {
        NodeSpec::default()
    }
    /// Adds an NI.
    pub fn ni(mut self, ni: NiSpec) -> Self {
        self.nis.push(ni);
        self
    }
    /// Replaces the global tunables.
    pub fn tunables(mut self, t: GlobalTunables) -> Self {
        self.tunables = t;
        self
    }
}

/// An NI to bring up through the sim LND (`lnetctl net add`).
#[derive(Clone, Debug)]
pub struct NiSpec {
    /// Its network.
    pub net: NetId,
    /// Its IPv4 address (the NID is `addr@net`).
    pub addr: [u8; 4],
    /// Net tunables; unset ones (-1) are filled by the LND.
    pub tunables: NetTunables,
    /// LND tunables: `timeout` (seconds), `sim_notify` (0 or 1, see
    /// [`NiSpec::notify_dead_peers`]).
    pub lnd_tunables: Vec<(String, String)>,
    /// Stacked under the node's fault filter (see [`NiSpec::fault`]).
    pub fault: bool,
}

impl NiSpec {
    /// An NI on `net` with address `addr`, LND defaults.
    pub fn new(net: NetId, addr: [u8; 4]) -> NiSpec {
        NiSpec {
            net,
            addr,
            tunables: NetTunables::UNSET,
            lnd_tunables: Vec::new(),
            fault: false,
        }
    }
    /// An NI on `tcp`.
    pub fn tcp(addr: [u8; 4]) -> NiSpec {
        NiSpec::new(TCP, addr)
    }
    /// Sets `credits` and `peer_credits`.
    pub fn credits(mut self, credits: i32, peer_credits: i32) -> Self {
        self.tunables.credits = credits;
        self.tunables.peer_credits = peer_credits;
        self
    }
    /// Makes the LND report a peer dead (`notify(peer, false)`) when it gives
    /// a send to it up, as socklnd does once its connections failed.
    pub fn notify_dead_peers(mut self) -> Self {
        self.lnd_tunables
            .push(("sim_notify".to_string(), "1".to_string()));
        self
    }

    /// Wraps this NI with the node's fault filter (lnd-fault, stacked
    /// through lnd-api's filter extension as lnetd stacks it on a plugin's
    /// NIs); its rules are set with [`Fabric::fault`]. Rules act on the
    /// wrapped NIs of the node only, so marking one NI of two turns faults
    /// on for that NI alone.
    pub fn fault(mut self) -> Self {
        self.fault = true;
        self
    }

    /// Sets the LND timeout, seconds.
    pub fn timeout(mut self, secs: u32) -> Self {
        self.lnd_tunables
            .push(("timeout".to_string(), secs.to_string()));
        self
    }
}

/// Why the fabric could not do something asked of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimError(pub String);

impl fmt::Display for SimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SimError {}

/// The simulated fabric: nodes, links, a virtual clock and a seeded RNG
/// (see the module docs).
pub struct Fabric {
    shared: Arc<Shared>,
    nodes: Vec<Arc<NodeCell>>,
    /// Per node: its sim NIs (engine id, NID), in configuration order.
    nis: Vec<Vec<(NiId, Nid)>>,
    guard: SeedGuard,
    next_cut: usize,
    cut_ids: BTreeMap<usize, usize>,
    /// Per node: its fault filter, when one of its NIs is wrapped.
    faults: Vec<Option<FaultFilter>>,
}

impl fmt::Debug for Fabric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fabric")
            .field("seed", &self.guard.seed())
            .field("now", &self.now())
            .field("nodes", &self.nis)
            .finish_non_exhaustive()
    }
}

/// Environment variable: when set, a fabric dropped during a panic prints
/// its whole trace (just before the seed line).
pub const TRACE_ENV: &str = "LNET_SIM_TRACE";

impl Drop for Fabric {
    fn drop(&mut self) {
        if std::thread::panicking() && std::env::var_os(TRACE_ENV).is_some() {
            eprintln!("sim trace ({} lines):", self.shared.trace_lines().len());
            for l in self.shared.trace_lines() {
                eprintln!("  {l}");
            }
        }
    }
}

/// Where the virtual clock starts.
pub const START: Instant = Instant::from_secs(1);

impl Fabric {
    /// An empty fabric at [`START`] whose randomness comes from `seed`
    /// (take it from [`seed_from_env`] so it can be replayed).
    pub fn new(seed: u64) -> Fabric {
        Fabric {
            shared: Arc::new(Shared::new(seed, START)),
            nodes: Vec::new(),
            nis: Vec::new(),
            guard: SeedGuard::new(seed),
            next_cut: 0,
            cut_ids: BTreeMap::new(),
            faults: Vec::new(),
        }
    }

    /// The seed.
    pub fn seed(&self) -> u64 {
        self.guard.seed()
    }

    /// The virtual time.
    pub fn now(&self) -> Instant {
        self.shared.now()
    }

    /// Adds a node; panics with the reason if it cannot be set up.
    pub fn add_node(&mut self, spec: NodeSpec) -> usize {
        self.try_add_node(spec)
            .unwrap_or_else(|e| panic!("cannot add a node to the fabric: {e}"))
    }

    /// Adds a node: an engine, its `0@lo` through the `lo` LND, then each NI
    /// started through the sim LND and registered with `ni_add`, as the
    /// runtime does for `lnetctl net add`.
    pub fn try_add_node(&mut self, spec: NodeSpec) -> Result<usize, SimError> {
        let idx = self.nodes.len();
        let now = self.now();
        spec.tunables
            .validate()
            .map_err(|e| SimError(format!("node {idx}: {e}")))?;
        let engine_seed = lock(&self.shared.wire).rng.next_u64();
        let mut cfg = Config::new(spec.pid, 0x1000 + idx as u64, engine_seed);
        cfg.tunables = spec.tunables.clone();
        let cell = Arc::new(NodeCell {
            idx,
            shared: Arc::clone(&self.shared),
            state: Mutex::new(NodeState {
                lnet: Lnet::new(cfg, now),
                stack: Stack::new(now, WALL),
                lnds: BTreeMap::new(),
                events: Vec::new(),
                console_done: Vec::new(),
            }),
        });
        let host = |cell: &Arc<NodeCell>, slot: &Arc<OnceLock<NiId>>, name: String| {
            HostHandle::new(SimHost {
                node: Arc::downgrade(cell),
                ni: Arc::clone(slot),
                shared: Arc::clone(&self.shared),
                name,
            })
        };
        // 0@lo, served by the engine's own lo LND.
        let lo_slot = Arc::new(OnceLock::new());
        let _ = lo_slot.set(NiId::LO);
        let lo_cfg = NiConfig {
            net: NetId::LO,
            interfaces: Default::default(),
            tunables: NetTunables::UNSET,
            lnd_tunables: Default::default(),
            params: Default::default(),
            pid: spec.pid,
        };
        let lo = LndHandle::new(LoLnd)
            .startup(lo_cfg, host(&cell, &lo_slot, format!("n{idx} 0@lo")))
            .map_err(|e| SimError(format!("node {idx}: lo LND: {e}")))?;
        lock(&cell.state).lnds.insert(NiId::LO, lo.ni);
        // The sim NIs.
        let lnd = LndHandle::new(SimLnd {
            shared: Arc::clone(&self.shared),
            node: idx,
        });
        // The fault filter, on the virtual clock, seeded from the fabric's
        // seed (without drawing from the wire's generator, so scenarios
        // without faults replay as before); released by `step`.
        let fault = spec.nis.iter().any(|n| n.fault).then(|| {
            let shared = Arc::clone(&self.shared);
            FaultFilter::with_clock(
                self.seed() ^ 0x9E37_79B9_7F4A_7C15u64.wrapping_mul(idx as u64 + 1),
                Arc::new(move || Duration::from_nanos(shared.now().as_nanos())),
                false,
            )
        });
        let stack = fault.clone().map(FilterHandle::new);
        let mut nis = Vec::new();
        for (k, ni) in spec.nis.iter().enumerate() {
            let iface = format!("sim{idx}.{k}");
            lock(&self.shared.wire)
                .ifaces
                .insert(iface.clone(), (idx, u32::from_be_bytes(ni.addr)));
            let slot = Arc::new(OnceLock::new());
            let ni_cfg = NiConfig {
                net: ni.net,
                interfaces: vec![iface.as_str().into()].into(),
                tunables: ni.tunables,
                lnd_tunables: ni
                    .lnd_tunables
                    .iter()
                    .map(|(k, v)| Tunable::new(k.clone(), v))
                    .collect::<Vec<_>>()
                    .into(),
                params: Default::default(),
                pid: spec.pid,
            };
            let ni_host = host(&cell, &slot, format!("n{idx} {iface}"));
            let started = match (&stack, ni.fault) {
                (Some(f), true) => f.startup(&lnd, ni_cfg, ni_host),
                _ => lnd.startup(ni_cfg, ni_host),
            };
            let started = match started {
                Ok(s) => s,
                Err(e) => {
                    self.abandon(&cell);
                    return Err(SimError(format!("node {idx}: NI {k}: {e}")));
                }
            };
            let info = started.info.clone();
            match cell.with(|l, now| l.ni_add(now, ni.net, &info)) {
                Ok(id) => {
                    let _ = slot.set(id);
                    lock(&cell.state).lnds.insert(id, started.ni);
                    nis.push((id, info.nid));
                }
                Err(e) => {
                    started.ni.shutdown();
                    self.abandon(&cell);
                    return Err(SimError(format!("node {idx}: NI {k}: {e}")));
                }
            }
        }
        self.nodes.push(cell);
        self.nis.push(nis);
        self.faults.push(fault);
        self.shared.trace(format!(
            "n{idx} up: {}",
            self.nis[idx]
                .iter()
                .map(|(_, n)| n.to_string())
                .collect::<Vec<_>>()
                .join(" ")
        ));
        self.check();
        Ok(idx)
    }

    /// Adds an NI to a running node as `lnetctl net add` does: started
    /// through the sim LND and registered with `ni_add` (the engine rebuilds
    /// its ping buffer and pushes it to its Multi-Rail peers). Returns the
    /// NI's index for [`Fabric::nid`]. NIs under a fault filter are only
    /// set up by [`Fabric::add_node`].
    pub fn add_ni(&mut self, node: usize, ni: NiSpec) -> Result<usize, SimError> {
        if ni.fault {
            return Err(SimError(format!(
                "node {node}: an NI with a fault filter is only added with the node"
            )));
        }
        let cell = Arc::clone(self.cell(node));
        let k = self.nis[node].len();
        let iface = format!("sim{node}.{k}");
        {
            let mut wire = lock(&self.shared.wire);
            if wire.ifaces.contains_key(&iface) {
                return Err(SimError(format!("node {node}: interface {iface} exists")));
            }
            wire.ifaces
                .insert(iface.clone(), (node, u32::from_be_bytes(ni.addr)));
        }
        let slot = Arc::new(OnceLock::new());
        let pid = cell.with(|l, _| l.pid());
        let ni_cfg = NiConfig {
            net: ni.net,
            interfaces: vec![iface.as_str().into()].into(),
            tunables: ni.tunables,
            lnd_tunables: ni
                .lnd_tunables
                .iter()
                .map(|(k, v)| Tunable::new(k.clone(), v))
                .collect::<Vec<_>>()
                .into(),
            params: Default::default(),
            pid,
        };
        let host = HostHandle::new(SimHost {
            node: Arc::downgrade(&cell),
            ni: Arc::clone(&slot),
            shared: Arc::clone(&self.shared),
            name: format!("n{node} {iface}"),
        });
        let lnd = LndHandle::new(SimLnd {
            shared: Arc::clone(&self.shared),
            node,
        });
        let fail = |shared: &Shared, e: String| {
            lock(&shared.wire).ifaces.remove(&iface);
            SimError(format!("node {node}: NI {k}: {e}"))
        };
        let started = lnd
            .startup(ni_cfg, host)
            .map_err(|e| fail(&self.shared, e.to_string()))?;
        let info = started.info.clone();
        match cell.with(|l, now| l.ni_add(now, ni.net, &info)) {
            Ok(id) => {
                let _ = slot.set(id);
                lock(&cell.state).lnds.insert(id, started.ni);
                self.nis[node].push((id, info.nid));
            }
            Err(e) => {
                started.ni.shutdown();
                return Err(fail(&self.shared, e.to_string()));
            }
        }
        self.shared.trace(format!("n{node} net add {}", info.nid));
        self.check();
        Ok(k)
    }

    /// Removes a node's `k`-th NI as `lnetctl net del` does: the engine
    /// forgets it (failing what waits for its credits), then its LND shuts
    /// down and finalizes every send it owned. Its address then answers
    /// nobody (messages to it are lost).
    pub fn del_ni(&mut self, node: usize, k: usize) -> Result<(), SimError> {
        let id = self.ni(node, k);
        let lnd = self.cell(node).with_state(|st, now| {
            st.lnet
                .ni_del(now, id)
                .map(|()| st.lnds.remove(&id))
                .map_err(|e| SimError(format!("node {node}: NI {k}: {e}")))
        })?;
        if let Some(lnd) = lnd {
            lnd.shutdown();
        }
        self.check();
        Ok(())
    }

    /// Undoes a node that failed to come up: its LNDs stop, its interfaces go.
    fn abandon(&self, cell: &NodeCell) {
        let lnds = std::mem::take(&mut lock(&cell.state).lnds);
        for lnd in lnds.values() {
            lnd.shutdown();
        }
        let prefix = format!("sim{}.", cell.idx);
        lock(&self.shared.wire)
            .ifaces
            .retain(|name, _| !name.starts_with(&prefix));
    }

    /// Takes the interface of a node's `k`-th NI down or up now: its LND
    /// reports the link state to the engine (`link_state`), refuses sends
    /// (`ENETDOWN`) and hears nothing while down.
    pub fn set_ni_link(&mut self, node: usize, k: usize, up: bool) {
        let nid = self.nid(node, k);
        if !lnd::set_link_up(&self.shared, nid, up) {
            panic!("node {node} NI {k} ({nid}) is not running");
        }
        self.check();
    }

    /// Number of nodes.
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    fn cell(&self, node: usize) -> &Arc<NodeCell> {
        self.nodes.get(node).unwrap_or_else(|| {
            panic!(
                "node {node} does not exist (the fabric has {} nodes)",
                self.nodes.len()
            )
        })
    }

    /// The NID of a node's `k`-th sim NI.
    pub fn nid(&self, node: usize, k: usize) -> Nid {
        self.ni_entry(node, k).1
    }

    /// The engine's id of a node's `k`-th sim NI.
    pub fn ni(&self, node: usize, k: usize) -> NiId {
        self.ni_entry(node, k).0
    }

    fn ni_entry(&self, node: usize, k: usize) -> (NiId, Nid) {
        self.cell(node);
        *self.nis[node]
            .get(k)
            .unwrap_or_else(|| panic!("node {node} has no NI {k}"))
    }

    /// `{first NID, 12345}`: the usual target for a node.
    pub fn pid(&self, node: usize) -> ProcessId {
        ProcessId::lustre(self.nid(node, 0))
    }

    // ----- links -----------------------------------------------------------

    /// Sets the parameters of every link without its own.
    pub fn set_default_link(&mut self, p: LinkParams) {
        lock(&self.shared.wire).default_link = p;
    }

    /// Sets the link between two NIs (both directions).
    pub fn set_link(&mut self, a: Nid, b: Nid, p: LinkParams) {
        let mut w = lock(&self.shared.wire);
        w.links.insert((a, b), p);
        w.links.insert((b, a), p);
    }

    /// Cuts every link between the nodes of `a` and those of `b` from
    /// `from`, until `until` (or [`Fabric::heal`]). A message is lost if the
    /// cut is in force when it is sent or when it would arrive.
    pub fn partition(
        &mut self,
        a: &[usize],
        b: &[usize],
        from: Instant,
        until: Option<Instant>,
    ) -> CutId {
        self.add_cut(CutScope::Nodes(a.to_vec(), b.to_vec()), from, until)
    }

    /// Cuts the link between two NIs (as [`Fabric::partition`]).
    pub fn cut_link(&mut self, a: Nid, b: Nid, from: Instant, until: Option<Instant>) -> CutId {
        self.add_cut(CutScope::Link(a, b), from, until)
    }

    fn add_cut(&mut self, scope: CutScope, from: Instant, until: Option<Instant>) -> CutId {
        let mut w = lock(&self.shared.wire);
        let id = self.next_cut;
        self.next_cut += 1;
        self.cut_ids.insert(id, w.cuts.len());
        w.cuts.push(Cut { scope, from, until });
        drop(w);
        self.shared.trace(format!(
            "cut {id} from {}{}",
            lnd::fmt_time(from),
            until.map_or(String::new(), |u| format!(" until {}", lnd::fmt_time(u)))
        ));
        CutId(id)
    }

    /// Ends a cut at `at`.
    pub fn heal(&mut self, cut: CutId, at: Instant) {
        let Some(&i) = self.cut_ids.get(&cut.0) else {
            panic!("{cut:?} was not made by this fabric");
        };
        lock(&self.shared.wire).cuts[i].until = Some(at);
        self.shared
            .trace(format!("cut {} heals at {}", cut.0, lnd::fmt_time(at)));
    }

    /// What the link from `from` to `to` has carried.
    pub fn link_stats(&self, from: Nid, to: Nid) -> LinkStats {
        lock(&self.shared.wire)
            .runs
            .get(&(from, to))
            .map(|r| r.stats)
            .unwrap_or_default()
    }

    /// Forgets what links carried so far ([`Fabric::link_stats`],
    /// [`Fabric::max_in_flight`]), e.g. after discovery, so a scenario counts
    /// only its own traffic.
    pub fn reset_link_stats(&mut self) {
        let mut w = lock(&self.shared.wire);
        for r in w.runs.values_mut() {
            r.stats = LinkStats::default();
        }
        for e in w.eps.iter_mut() {
            e.max_owned = 0;
        }
    }

    /// What all links together have carried (`max_in_flight` is the largest
    /// of any one link).
    pub fn total_link_stats(&self) -> LinkStats {
        let w = lock(&self.shared.wire);
        let mut t = LinkStats::default();
        for r in w.runs.values() {
            let s = r.stats;
            t.sent += s.sent;
            t.delivered += s.delivered;
            t.lost += s.lost;
            t.duplicated += s.duplicated;
            t.corrupted += s.corrupted;
            t.refused += s.refused;
            t.max_in_flight = t.max_in_flight.max(s.max_in_flight);
        }
        t
    }

    /// The most sends the LND of a node's `k`-th NI owned at the same time
    /// (what the NI's `credits` should bound).
    pub fn max_in_flight(&self, node: usize, k: usize) -> usize {
        let nid = self.nid(node, k);
        lock(&self.shared.wire)
            .ep_by_nid(&nid)
            .map_or(0, |e| e.max_owned)
    }

    // ----- driving ---------------------------------------------------------

    /// Calls the engine of `node` at the virtual time (an application
    /// command such as `put`, or an inspection that needs `&mut`), then
    /// executes what it asks of its LNDs, as the runtime does.
    pub fn call<R>(&mut self, node: usize, f: impl FnOnce(&mut Lnet, Instant) -> R) -> R {
        let r = self.cell(node).with(f);
        self.check();
        r
    }

    /// Looks at the engine of `node` (no time passes, nothing is executed).
    pub fn inspect<R>(&self, node: usize, f: impl FnOnce(&Lnet) -> R) -> R {
        f(&lock(&self.cell(node).state).lnet)
    }

    /// The fault filter of `node` (`lnetctl fault` for that node): rules
    /// are added, deleted, listed and reset with its `control` call (see
    /// `lnd_fault::ctl`) and act on the NIs marked [`NiSpec::fault`], on
    /// the virtual clock and from the fabric's seed. Panics if none of the
    /// node's NIs is marked.
    pub fn fault(&self, node: usize) -> &FaultFilter {
        self.faults
            .get(node)
            .and_then(Option::as_ref)
            .unwrap_or_else(|| panic!("node {node} has no NI marked NiSpec::fault"))
    }

    /// When the next held message of a fault filter is due.
    fn fault_due(&self) -> Option<Instant> {
        self.faults
            .iter()
            .flatten()
            .filter_map(FaultFilter::next_due)
            .map(|d| Instant(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)))
            .min()
    }

    /// When the next thing is due: a wire event, a held message or an
    /// engine timer.
    pub fn next_due(&self) -> Option<Instant> {
        let net = lock(&self.shared.wire).next_at();
        let net = match (net, self.fault_due()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let timers = self
            .nodes
            .iter()
            .filter_map(|n| {
                let st = lock(&n.state);
                st.stack.poll_timeout(&st.lnet)
            })
            .min();
        match (net, timers) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Advances the clock to the next due thing and runs it: all wire events
    /// due then (in order), then the engine timers due then. Returns `false`
    /// when nothing is scheduled.
    pub fn step(&mut self) -> bool {
        let Some(t) = self.next_due() else {
            return false;
        };
        let now = self.now().max(t);
        self.shared.set_now(now);
        loop {
            let ev = lock(&self.shared.wire).pop_due(now);
            let Some(ev) = ev else { break };
            lnd::process(&self.shared, ev);
            self.check();
        }
        if self.fault_due().is_some_and(|d| d <= now) {
            for f in self.faults.iter().flatten() {
                f.poll();
            }
            self.check();
        }
        for cell in &self.nodes {
            let due = {
                let st = lock(&cell.state);
                st.stack.poll_timeout(&st.lnet).is_some_and(|d| d <= now)
            };
            if due {
                cell.with_state(|st, now| st.stack.handle_timeout(&mut st.lnet, now));
                let again = {
                    let st = lock(&cell.state);
                    st.stack.poll_timeout(&st.lnet)
                };
                if again.is_some_and(|d| d <= now) {
                    self.shared.violation(format!(
                        "n{}: poll_timeout is {again:?} right after handle_timeout({now:?}) (the timer would spin)",
                        cell.idx
                    ));
                }
            }
        }
        self.check();
        true
    }

    /// Runs everything due up to `t`, then sets the clock to `t`.
    pub fn run_until(&mut self, t: Instant) {
        while self.next_due().is_some_and(|d| d <= t) {
            self.step();
        }
        if t > self.now() {
            self.shared.set_now(t);
        }
    }

    /// Runs for `d` of virtual time.
    pub fn run_for(&mut self, d: Duration) {
        let t = self.now().saturating_add(d);
        self.run_until(t);
    }

    /// Runs until nothing is scheduled or `limit` of virtual time has passed;
    /// returns whether the fabric went idle.
    pub fn run_until_idle(&mut self, limit: Duration) -> bool {
        let end = self.now().saturating_add(limit);
        loop {
            match self.next_due() {
                None => return true,
                Some(t) if t > end => return false,
                Some(_) => {
                    self.step();
                }
            }
        }
    }

    /// Runs until the fabric is idle and checks that nothing was left
    /// hanging: no message in any engine, no send owned by an LND, no parsed
    /// message waiting for `recv`. Panics otherwise, or if activity goes on
    /// for more than an hour of virtual time.
    ///
    /// Idle means nothing is scheduled, or nothing is in flight and the only
    /// things left are engine timers more than [`Fabric::quiet_window`]
    /// after the last activity (a trace line): periodic timers that do
    /// nothing do not keep a fabric busy, while a response tracker expiring
    /// `transaction_timeout` after the last message still runs.
    pub fn settle(&mut self) {
        let start = self.now();
        let limit = start.saturating_add(Duration::from_secs(3600));
        let quiet = self.quiet_window();
        let mut last_activity = start;
        let mut lines = self.shared.trace_len();
        while let Some(next) = self.next_due() {
            let wire_empty =
                lock(&self.shared.wire).next_at().is_none() && self.fault_due().is_none();
            if wire_empty && next > last_activity.saturating_add(quiet) && self.hanging().is_empty()
            {
                break;
            }
            if next > limit {
                panic!(
                    "the fabric did not go idle within an hour of virtual time after {}: next due {}; in flight: {}",
                    lnd::fmt_time(start),
                    lnd::fmt_time(next),
                    self.hanging().join("; ")
                );
            }
            self.step();
            let n = self.shared.trace_len();
            if n != lines {
                lines = n;
                last_activity = self.now();
            }
        }
        let hanging = self.hanging();
        assert!(
            hanging.is_empty(),
            "idle fabric with work left: {}",
            hanging.join("; ")
        );
    }

    /// Twice the longest `transaction_timeout` of the nodes (300 s by
    /// default): how long [`Fabric::settle`] lets timers run with nothing
    /// happening.
    pub fn quiet_window(&self) -> Duration {
        let secs = self
            .nodes
            .iter()
            .map(|n| lock(&n.state).lnet.tunables().transaction_timeout)
            .max()
            .unwrap_or(150);
        Duration::from_secs(2 * u64::from(secs))
    }

    /// What is still in flight somewhere (empty when all is done).
    pub fn hanging(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (i, cell) in self.nodes.iter().enumerate() {
            let n = lock(&cell.state).lnet.stats().msgs_alloc;
            if n > 0 {
                out.push(format!("n{i}: {n} messages in the engine"));
            }
        }
        let w = lock(&self.shared.wire);
        if w.owned_sends() > 0 {
            out.push(format!("{} sends owned by LNDs", w.owned_sends()));
        }
        if w.pending_recvs() > 0 {
            out.push(format!(
                "{} parsed messages waiting for recv",
                w.pending_recvs()
            ));
        }
        out
    }

    /// Fails the test on any contract violation recorded since the last check.
    fn check(&self) {
        let v = self.shared.take_violations();
        if !v.is_empty() {
            panic!("simulated fabric: contract violated:\n  {}", v.join("\n  "));
        }
    }

    // ----- results ---------------------------------------------------------

    /// Starts selftest on `node` (the `lnet_selftest` module loaded): it
    /// posts its request buffers, and from then on its MD events, timers and
    /// console commands run in the node's stack.
    pub fn enable_selftest(&mut self, node: usize, params: Params) {
        self.cell(node)
            .with_state(|st, now| st.stack.enable_selftest(&mut st.lnet, now, params));
        self.check();
    }

    /// Starts an `lst` console command on `node`; its result comes with
    /// [`Fabric::take_console_done`] once virtual time has run far enough.
    pub fn console(&mut self, node: usize, req: ConsoleRequest) -> TxnId {
        let txn = self
            .cell(node)
            .with_state(|st, now| st.stack.console(&mut st.lnet, now, req));
        self.check();
        txn
    }

    /// Takes the console commands of `node` that finished.
    pub fn take_console_done(
        &mut self,
        node: usize,
    ) -> Vec<(TxnId, Result<ConsoleReply, ConsoleError>)> {
        std::mem::take(&mut lock(&self.cell(node).state).console_done)
    }

    /// Runs an `lst` console command on `node` and virtual time until it
    /// finishes (a command waits at most twice the 30 s transaction
    /// timeout); panics if it never does.
    pub fn lst(&mut self, node: usize, req: ConsoleRequest) -> Result<ConsoleReply, ConsoleError> {
        let txn = self.console(node, req);
        let end = self.now().saturating_add(Duration::from_secs(120));
        loop {
            {
                let mut st = lock(&self.cell(node).state);
                if let Some(k) = st.console_done.iter().position(|(t, _)| *t == txn) {
                    return st.console_done.remove(k).1;
                }
            }
            match self.next_due() {
                Some(t) if t <= end => {
                    self.step();
                }
                _ => panic!(
                    "lst command {txn:?} on node {node} did not finish within 120 s of virtual time"
                ),
            }
        }
    }

    /// Looks at the selftest of `node` (panics if it was not enabled).
    pub fn inspect_selftest<R>(&self, node: usize, f: impl FnOnce(&Selftest) -> R) -> R {
        let st = lock(&self.cell(node).state);
        f(st.stack.selftest().unwrap_or_else(|| {
            panic!("selftest is not enabled on node {node} (Fabric::enable_selftest)")
        }))
    }

    /// Takes the events `node`'s engine produced so far.
    pub fn take_events(&mut self, node: usize) -> Vec<Event> {
        std::mem::take(&mut lock(&self.cell(node).state).events)
    }

    /// Runs `lnetctl discover [--force] NID` on `node` (semantics §9) until
    /// it reports, running virtual time; returns the peer's primary NID or
    /// the negative errno. Other events of `node` are kept.
    pub fn discover(&mut self, node: usize, nid: Nid, force: bool) -> Result<Nid, i32> {
        let id = self
            .call(node, |l, now| l.discover(now, nid, force))
            .expect("discover accepted");
        let limit = self.now().saturating_add(Duration::from_secs(3600));
        loop {
            let done = {
                let mut st = lock(&self.cell(node).state);
                let pos = st
                    .events
                    .iter()
                    .position(|e| matches!(e, Event::DiscoverDone { id: i, .. } if *i == id));
                pos.map(|i| st.events.remove(i))
            };
            if let Some(Event::DiscoverDone { result, .. }) = done {
                return result;
            }
            match self.next_due() {
                Some(t) if t <= limit => {
                    self.step();
                }
                _ => panic!("discover {nid} from n{node}: no result"),
            }
        }
    }

    /// Every node discovers every other node's first NID (so that later
    /// sends leave at once, §9.2).
    pub fn discover_all(&mut self) {
        let n = self.node_count();
        for a in 0..n {
            for b in 0..n {
                if a != b {
                    let nid = self.nid(b, 0);
                    self.discover(a, nid, false)
                        .unwrap_or_else(|e| panic!("n{a} discovers {nid}: {e}"));
                }
            }
        }
        // The pushes discovery answers with.
        self.settle();
    }

    /// Takes the MD events of `node` (other events are dropped).
    pub fn take_md_events(&mut self, node: usize) -> Vec<MdEvent> {
        self.take_events(node)
            .into_iter()
            .filter_map(|e| match e {
                Event::Md(m) => Some(m),
                _ => None,
            })
            .collect()
    }

    /// Everything that happened, in order, one line each.
    pub fn trace(&self) -> Vec<String> {
        self.shared.trace_lines()
    }

    /// Adds a line of the test's own to the trace.
    pub fn note(&self, line: &str) {
        self.shared.trace(format!("note: {line}"));
    }

    // ----- scenario helpers ------------------------------------------------

    /// Posts a buffer of `len` zero bytes on `portal` for `match_bits` from
    /// anyone (an ME at the end of the list and its MD, both auto-unlinked).
    pub fn post(
        &mut self,
        node: usize,
        portal: u32,
        match_bits: u64,
        len: usize,
        options: MdOptions,
        threshold: Threshold,
    ) -> (MdHandle, IoBuf) {
        let buf = IoBuf::zeroed(len);
        let b = buf.clone();
        let md = self.call(node, move |l, _| {
            let me = l
                .me_attach(
                    portal,
                    ProcessId::ANY,
                    match_bits,
                    0,
                    Unlink::Unlink,
                    InsPos::After,
                )
                .expect("me_attach");
            l.md_attach(
                me,
                MdSpec::new(Payload::single(b), options, threshold),
                Unlink::Unlink,
            )
            .expect("md_attach")
        });
        (md, buf)
    }

    /// Binds a free-floating MD over a copy of `data` (to PUT from, or GET
    /// into when `data` is zeros).
    pub fn bind(&mut self, node: usize, data: &[u8], threshold: Threshold) -> (MdHandle, IoBuf) {
        let buf = IoBuf::from_vec(data.to_vec());
        let b = buf.clone();
        let md = self.call(node, move |l, _| {
            l.md_bind(
                MdSpec::new(Payload::single(b), MdOptions::NONE, threshold),
                Unlink::Unlink,
            )
            .expect("md_bind")
        });
        (md, buf)
    }

    /// `LNetPut` of the whole MD from `node`.
    #[allow(clippy::too_many_arguments)]
    pub fn put(
        &mut self,
        node: usize,
        md: MdHandle,
        ack: AckReq,
        target: ProcessId,
        portal: u32,
        match_bits: u64,
        hdr_data: u64,
    ) -> Result<(), ApiError> {
        self.call(node, |l, now| {
            l.put(now, None, md, ack, target, portal, match_bits, 0, hdr_data)
        })
    }

    /// `LNetGet` into the whole MD from `node`.
    pub fn get(
        &mut self,
        node: usize,
        md: MdHandle,
        target: ProcessId,
        portal: u32,
        match_bits: u64,
    ) -> Result<(), ApiError> {
        self.call(node, |l, now| {
            l.get(now, None, md, target, portal, match_bits, 0)
        })
    }
}

/// A buffer of `len` bytes whose content depends on `salt` and on the
/// position (so misplaced or shifted bytes show).
pub fn pattern(len: usize, salt: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(salt) ^ (i >> 8) as u8 ^ (i >> 16) as u8)
        .collect()
}
