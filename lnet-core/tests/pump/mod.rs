//! An in-memory fabric for engine tests and benchmarks: N engines, each with
//! one `tcp` NI `10.0.0.<i+1>@tcp`, plus their `0@lo`. Each engine is driven
//! through its [`Stack`] (`lnet_selftest::stack`), the loop lnetd's node
//! runtime and the simulated fabric run too: the pump takes every
//! `LndOp::Send` into the destination engine's `handle_rx` and answers each
//! `LndOp::Recv` by copying the sender's payload and finalizing both sides,
//! as an LND would. Selftest runs on a node once enabled
//! ([`Fabric::enable_selftest`]).

#![allow(dead_code, unreachable_pub, missing_docs)]

use std::collections::{HashMap, HashSet};

use lnet_core::lnd_api::{
    Completion, HealthStatus, IoBuf, NetId, NetTunables, NiInfo, Nid, Payload, PayloadSpan,
    RxToken, TxMsg,
};
use lnet_core::{Config, Duration, Event, Instant, LndOp, Lnet, MdEvent, NiId, ProcessId};
use lnet_selftest::stack::{Stack, StackEvent};
use lnet_selftest::{ConsoleError, ConsoleReply, Params, TxnId};

pub const TCP: NetId = NetId::new(2, 0);

/// The wall clock when a fabric starts (its virtual `now` is 1000 s).
pub const WALL: Duration = Duration::from_secs(1_700_000_000);

pub fn nid(i: usize) -> Nid {
    Nid::new4(TCP, 0x0a00_0001 + i as u32)
}

pub fn pid(i: usize) -> ProcessId {
    ProcessId {
        nid: nid(i),
        pid: 12345,
    }
}

pub fn ni_info(n: Nid, credits: i32, peer_credits: i32) -> NiInfo {
    NiInfo {
        nid: n,
        interfaces: Default::default(),
        tunables: NetTunables {
            peer_timeout: 180,
            peer_credits,
            peer_buffer_credits: 0,
            credits,
        },
        lnd_tunables: Default::default(),
        timeout_secs: 0,
    }
}

pub struct Node {
    pub lnet: Lnet,
    /// Selftest and the routing of the engine's outputs.
    pub stack: Stack,
    pub ni: NiId,
    pub nid: Nid,
    /// Every NI of the node but `0@lo`.
    pub nis: Vec<(NiId, Nid)>,
    pub events: Vec<Event>,
    /// Finished selftest console commands.
    pub console_done: Vec<(TxnId, Result<ConsoleReply, ConsoleError>)>,
}

pub struct Fabric {
    pub nodes: Vec<Node>,
    pub now: Instant,
    /// rx token -> (sending node, message)
    pending: HashMap<u64, (usize, TxMsg, PayloadSpan)>,
    next_rx: u64,
    /// Nodes that lose everything sent to them (the sends never complete).
    pub dead: HashSet<usize>,
    /// Sends swallowed by dead nodes.
    pub lost: Vec<(usize, TxMsg, PayloadSpan)>,
    /// When set, sends are not delivered until `release` is called.
    pub hold: bool,
    /// Nodes whose timers do not run (a node that stopped scheduling).
    pub frozen: HashSet<usize>,
    /// Sends to these NIDs fail at once with this health status (an LND error).
    pub fail_to: HashMap<Nid, HealthStatus>,
    held: Vec<(usize, Nid, TxMsg, PayloadSpan)>,
}

impl Fabric {
    pub fn new(n: usize) -> Fabric {
        Fabric::with_credits(n, 256, 8)
    }

    pub fn with_credits(n: usize, credits: i32, peer_credits: i32) -> Fabric {
        let now = Instant::from_secs(1000);
        let nodes = (0..n)
            .map(|i| {
                let mut lnet = Lnet::new(Config::new(12345, 0x1000 + i as u64, i as u64), now);
                let ni = lnet
                    .ni_add(now, TCP, &ni_info(nid(i), credits, peer_credits))
                    .expect("ni_add");
                Node {
                    lnet,
                    stack: Stack::new(now, WALL),
                    ni,
                    nid: nid(i),
                    nis: vec![(ni, nid(i))],
                    events: Vec::new(),
                    console_done: Vec::new(),
                }
            })
            .collect();
        Fabric {
            nodes,
            now,
            pending: HashMap::new(),
            next_rx: 1,
            dead: HashSet::new(),
            lost: Vec::new(),
            hold: false,
            frozen: HashSet::new(),
            fail_to: HashMap::new(),
            held: Vec::new(),
        }
    }

    /// Runs until no engine has anything to do.
    pub fn run(&mut self) {
        loop {
            let mut progress = false;
            for i in 0..self.nodes.len() {
                let now = self.now;
                loop {
                    let n = &mut self.nodes[i];
                    let Some(op) = n.stack.poll_lnd(&mut n.lnet, now) else {
                        break;
                    };
                    progress = true;
                    self.exec(i, op);
                }
                let n = &mut self.nodes[i];
                while let Some(ev) = n.stack.poll_event(&mut n.lnet, now) {
                    match ev {
                        StackEvent::Engine(e) => n.events.push(e),
                        StackEvent::App { event, .. } => n.events.push(Event::Md(event)),
                        StackEvent::Console { txn, result } => n.console_done.push((txn, result)),
                        _ => {}
                    }
                }
            }
            if !progress {
                break;
            }
        }
    }

    /// Starts selftest on node `i` (posts its request buffers).
    pub fn enable_selftest(&mut self, i: usize, params: Params) {
        let now = self.now;
        let n = &mut self.nodes[i];
        n.stack.enable_selftest(&mut n.lnet, now, params);
        self.run();
    }

    /// Delivers held sends and stops holding.
    pub fn release(&mut self) {
        self.hold = false;
        self.deliver_held();
    }

    fn node_of(&self, n: &Nid) -> Option<(usize, NiId)> {
        self.nodes.iter().enumerate().find_map(|(i, x)| {
            x.nis
                .iter()
                .find(|(_, nid)| nid == n)
                .map(|(ni, _)| (i, *ni))
        })
    }

    /// Adds an NI with `nid` to node `i`.
    pub fn add_ni(&mut self, i: usize, n: Nid) -> NiId {
        let now = self.now;
        let ni = self.nodes[i]
            .lnet
            .ni_add(now, n.net(), &ni_info(n, 256, 8))
            .expect("ni_add");
        self.nodes[i].nis.push((ni, n));
        ni
    }

    /// Adds a node with these NIs (any nets); returns its index.
    pub fn add_node(&mut self, nis: &[Nid]) -> usize {
        let i = self.nodes.len();
        let now = self.now;
        let mut lnet = Lnet::new(Config::new(12345, 0x1000 + i as u64, i as u64), now);
        let nis: Vec<(NiId, Nid)> = nis
            .iter()
            .map(|n| {
                let ni = lnet
                    .ni_add(now, n.net(), &ni_info(*n, 256, 8))
                    .expect("ni_add");
                (ni, *n)
            })
            .collect();
        self.nodes.push(Node {
            lnet,
            stack: Stack::new(now, WALL),
            ni: nis[0].0,
            nid: nis[0].1,
            nis,
            events: Vec::new(),
            console_done: Vec::new(),
        });
        i
    }

    fn exec(&mut self, i: usize, op: LndOp) {
        match op {
            LndOp::Send { ni, tx, payload } => {
                if ni == NiId::LO {
                    let rx = self.next_rx;
                    self.next_rx += 1;
                    let hdr = tx.hdr;
                    let token = tx.token;
                    self.pending.insert(rx, (i, tx, payload));
                    let now = self.now;
                    if self.nodes[i]
                        .lnet
                        .handle_rx(now, NiId::LO, hdr, Nid::LO_0, RxToken(rx), false)
                        .is_err()
                    {
                        self.pending.remove(&rx);
                        self.nodes[i].lnet.handle_done(
                            now,
                            token,
                            Completion::failed(71, HealthStatus::REMOTE_ERROR),
                        );
                    }
                } else if self.hold {
                    let from = self.nodes[i].lnet.ni(ni).expect("sending NI").nid();
                    self.held.push((i, from, tx, payload));
                } else {
                    let from = self.nodes[i].lnet.ni(ni).expect("sending NI").nid();
                    self.deliver(i, from, tx, payload);
                }
            }
            LndOp::Recv { rx, payload, .. } => {
                let Some((s, tx, src)) = self.pending.remove(&rx.rx.0) else {
                    panic!("recv for unknown rx token {}", rx.rx.0);
                };
                let now = self.now;
                if let Some(m) = rx.msg.into_option() {
                    let n = copy(&src, &payload);
                    assert_eq!(n, payload.len(), "mlen bytes delivered");
                    assert!(payload.len() <= rx.rlen as usize);
                    self.nodes[i].lnet.handle_done(now, m, Completion::OK);
                }
                self.nodes[s]
                    .lnet
                    .handle_done(now, tx.token, Completion::OK);
            }
            _ => {}
        }
    }

    /// Delivers the sends held so far and keeps holding (what they cause,
    /// a REPLY or an ACK, is held in turn, unless `hold` is off).
    pub fn deliver_held(&mut self) {
        let held = std::mem::take(&mut self.held);
        for (i, from, tx, payload) in held {
            self.deliver(i, from, tx, payload);
        }
        self.run();
    }

    /// Fails every held send as its LND would, with `errno` and `status`
    /// (hold stays on); returns (node, source NID, target NID) of each.
    pub fn fail_held(&mut self, errno: i32, status: HealthStatus) -> Vec<(usize, Nid, Nid)> {
        let held = std::mem::take(&mut self.held);
        let now = self.now;
        let mut out = Vec::new();
        for (i, from, tx, _) in held {
            out.push((i, from, tx.target));
            self.nodes[i]
                .lnet
                .handle_done(now, tx.token, Completion::failed(errno, status));
        }
        self.run();
        out
    }

    /// Sends not yet delivered (`hold`).
    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// The held sends as (node, source NID, next hop), in order.
    #[allow(dead_code)]
    pub fn held_paths(&self) -> Vec<(usize, Nid, Nid)> {
        self.held
            .iter()
            .map(|(i, from, tx, _)| (*i, *from, tx.target))
            .collect()
    }

    fn deliver(&mut self, i: usize, from: Nid, tx: TxMsg, payload: PayloadSpan) {
        let now = self.now;
        if let Some(h) = self.fail_to.get(&tx.target) {
            let c = Completion::failed(5, *h);
            self.nodes[i].lnet.handle_done(now, tx.token, c);
            return;
        }
        let Some((j, ni)) = self
            .node_of(&tx.target)
            .filter(|(j, _)| !self.dead.contains(j))
        else {
            self.lost.push((i, tx, payload));
            return;
        };
        let rx = self.next_rx;
        self.next_rx += 1;
        let (hdr, token) = (tx.hdr, tx.token);
        self.pending.insert(rx, (i, tx, payload));
        if self.nodes[j]
            .lnet
            .handle_rx(now, ni, hdr, from, RxToken(rx), false)
            .is_err()
        {
            self.pending.remove(&rx);
            self.nodes[i].lnet.handle_done(
                now,
                token,
                Completion::failed(71, HealthStatus::REMOTE_ERROR),
            );
        }
    }

    /// Fails every lost send with a network timeout (as an LND would).
    pub fn fail_lost(&mut self) {
        let now = self.now;
        for (i, tx, _) in std::mem::take(&mut self.lost) {
            self.nodes[i].lnet.handle_done(
                now,
                tx.token,
                Completion::failed(110, HealthStatus::NETWORK_TIMEOUT),
            );
        }
        self.run();
    }

    /// Moves the clock and runs the timers that are due (the engine's and
    /// selftest's), except on the nodes in `frozen`.
    pub fn advance(&mut self, d: Duration) {
        self.now = self.now.saturating_add(d);
        for (i, n) in self.nodes.iter_mut().enumerate() {
            if self.frozen.contains(&i) {
                continue;
            }
            if n.stack.poll_timeout(&n.lnet).is_some_and(|t| t <= self.now) {
                n.stack.handle_timeout(&mut n.lnet, self.now);
            }
        }
        self.run();
    }

    /// Runs discovery of node `to` from node `from` to completion (§9),
    /// so later sends go out at once; returns the peer's primary NID.
    pub fn discover(&mut self, from: usize, to: usize) -> Nid {
        let now = self.now;
        let id = self.nodes[from]
            .lnet
            .discover(now, nid(to), false)
            .expect("discover");
        let hold = std::mem::replace(&mut self.hold, false);
        self.run();
        self.hold = hold;
        let mut found = None;
        self.nodes[from].events.retain(|e| match e {
            Event::DiscoverDone { id: i, result, .. } if *i == id => {
                found = Some(*result);
                false
            }
            _ => true,
        });
        found
            .expect("discovery finished")
            .expect("discovery succeeded")
    }

    pub fn md_events(&mut self, i: usize) -> Vec<MdEvent> {
        let evs = std::mem::take(&mut self.nodes[i].events);
        evs.into_iter()
            .filter_map(|e| match e {
                Event::Md(m) => Some(m),
                _ => None,
            })
            .collect()
    }

    pub fn take_events(&mut self, i: usize) -> Vec<Event> {
        std::mem::take(&mut self.nodes[i].events)
    }
}

/// Copies as an LND would (through a buffer if both share memory).
pub fn copy(src: &PayloadSpan, dst: &PayloadSpan) -> usize {
    match src.copy_to(dst) {
        Ok(n) => n,
        Err(_) => {
            let n = src.len().min(dst.len());
            let mut tmp = vec![0u8; n];
            src.read_at(0, &mut tmp).expect("read");
            dst.write_at(0, &tmp).expect("write")
        }
    }
}

/// A buffer filled with a pattern that depends on `seed`.
pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 8) as u8)
        .collect()
}

pub fn buf(v: Vec<u8>) -> (IoBuf, Payload) {
    let b = IoBuf::from_vec(v);
    (b.clone(), Payload::single(b))
}
