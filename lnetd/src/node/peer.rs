//! Peers, discovery and recovery queues on a running node: what `lnetctl
//! peer`, `discover` and `debug recovery` ask (lnetctl.md §2.6, §2.13,
//! §2.17), over the engine's peer API.

use std::time::Duration;

use liblnetconfig::peer::{PeerInfo, PeerNiInfo};
use liblnetconfig::proto::{LatencyInfo, MsgCounts};
use lnd_api::{errno, Nid};
use lnet_core::stats::{LatencyStats, TypeCounts};
use lnet_core::{Lnet, PeerError};

use super::{not_running, Node, NodeError};

fn peer_err(e: PeerError) -> NodeError {
    NodeError::failed(e.errno(), e.to_string())
}

fn latency(l: &LatencyStats) -> LatencyInfo {
    LatencyInfo {
        samples: l.samples,
        min_nsec: l.min_nsec,
        max_nsec: l.max_nsec,
        avg_nsec: l.avg_nsec(),
    }
}

fn counts(c: &TypeCounts) -> MsgCounts {
    MsgCounts {
        put: c.put,
        get: c.get,
        reply: c.reply,
        ack: c.ack,
        hello: c.hello,
    }
}

/// The peers as `peer show` prints them (the one containing `nid` if given).
fn peer_infos(l: &Lnet, nid: Option<Nid>) -> Vec<PeerInfo> {
    let routing = l.tunables().routing;
    let one = |p: lnet_core::PeerView<'_>| PeerInfo {
        primary: p.primary_nid(),
        multi_rail: p.multi_rail(),
        state: p.state(),
        nis: p
            .peer_nis()
            .map(|n| {
                let local = l
                    .nis()
                    .find(|ni| ni.net() == n.nid().net())
                    .map(|ni| ni.tunables().peer_timeout);
                let s = n.stats();
                let h = &s.health;
                let rtr = l.peer_ni_rtr_credits(&n.nid());
                // up/down only where aliveness is tracked: a gateway's NIs,
                // or this node routes and the net has a peer_timeout
                // (lnetctl.md §3.2).
                let tracked =
                    l.is_gateway(&n.nid()) || matches!(local, Some(t) if routing && t > 0);
                let state = match (tracked, n.is_up()) {
                    (false, _) => "NA",
                    (true, true) => "up",
                    (true, false) => "down",
                };
                let max = if local.is_some() {
                    n.max_tx_credits()
                } else {
                    0
                };
                PeerNiInfo {
                    state: state.into(),
                    max_ni_tx_credits: max,
                    available_tx_credits: n.tx_credits(),
                    min_tx_credits: n.min_tx_credits(),
                    tx_q_num_of_buf: n.txqnob(),
                    // Router credits once it forwarded through us; until
                    // then at their maximum.
                    available_rtr_credits: rtr.map_or(max, |c| c.credits),
                    min_rtr_credits: rtr.map_or(max, |c| c.min_credits),
                    refcount: 1 + u32::try_from(n.queued()).unwrap_or(u32::MAX),
                    send_count: s.sent.total(),
                    recv_count: s.received.total(),
                    drop_count: s.dropped.total(),
                    put_egress: latency(&s.put_egress),
                    get_rtt: latency(&s.get_rtt),
                    put_ack: latency(&s.put_ack),
                    sent: counts(&s.sent),
                    received: counts(&s.received),
                    dropped: counts(&s.dropped),
                    health_value: n.health_value(),
                    health_dropped: h.remote_dropped,
                    health_timeout: h.remote_timeout,
                    health_error: h.remote_error,
                    health_network_timeout: h.network_timeout,
                    ping_count: u64::from(n.ping_count()),
                    next_ping: n.next_ping().map_or(0, |t| t.0 / 1_000_000_000),
                    // Upstream prints the u32 priorities cast to int: -1
                    // when no rule sets them.
                    net_priority: n.net_priority() as i32,
                    nid_priority: n.sel_priority() as i32,
                    pref_gateways: l.peer_ni_pref_gateways(&n.nid()),
                    pref_nids: n.pref_nids().to_vec(),
                    ..PeerNiInfo::new(n.nid())
                }
            })
            .collect(),
    };
    match nid {
        Some(n) => l.peer(&n).map(one).into_iter().collect(),
        None => l.peers().map(one).collect(),
    }
}

impl Node {
    /// `peer add` (lnetctl.md §2.6): see [`Lnet::peer_add_nids`].
    pub fn peer_add(
        &self,
        primary: Nid,
        nids: &[Nid],
        multi_rail: bool,
        lock_prim: bool,
    ) -> Result<(), NodeError> {
        self.inner.with(|st, _| {
            if st.stopping {
                return Err(not_running());
            }
            st.lnet
                .peer_add_nids(primary, nids, multi_rail, lock_prim)
                .map_err(peer_err)
        })
    }

    /// `peer del` (lnetctl.md §2.6): see [`Lnet::peer_del_nids`].
    pub fn peer_del(&self, primary: Nid, nids: &[Nid], force: bool) -> Result<(), NodeError> {
        self.inner.with(|st, now| {
            st.lnet
                .peer_del_nids(now, primary, nids, force)
                .map_err(peer_err)
        })
    }

    /// `peer show [--nid N]` / `peer list`: the peers in listing order, or
    /// the one containing `nid` (ENOENT when there is none).
    pub fn peer_show(&self, nid: Option<Nid>) -> Result<Vec<PeerInfo>, NodeError> {
        let st = self.inner.lock();
        let v = peer_infos(&st.lnet, nid);
        match nid {
            Some(n) if v.is_empty() => Err(NodeError::failed(
                errno::ENOENT,
                format!("cannot find peer {n}"),
            )),
            _ => Ok(v),
        }
    }

    /// `peer set --health V --nid N | --all`.
    pub fn peer_set_health(&self, nid: Option<Nid>, value: u32) -> Result<(), NodeError> {
        self.inner.with(|st, now| match nid {
            Some(n) => st.lnet.peer_ni_set_health(now, &n, value).map_err(peer_err),
            None => {
                st.lnet.peer_set_health_all(now, value);
                Ok(())
            }
        })
    }

    /// `net set --health V --nid N | --all` (clamped to 0..=1000; below
    /// 1000 the NI is pinged back to health, semantics §8.6).
    pub fn ni_set_health(&self, nid: Option<Nid>, value: u32) -> Result<(), NodeError> {
        self.inner.with(|st, now| match nid {
            Some(n) => {
                let Some(ni) = st.lnet.ni_by_nid(&n) else {
                    return Err(NodeError::failed(
                        errno::ENOENT,
                        format!("{n} is not a local NI (see \"lnetctl net show\")"),
                    ));
                };
                st.lnet
                    .ni_set_health(now, ni, value)
                    .map_err(|e| NodeError::failed(e.errno(), e.to_string()))
            }
            None => {
                st.lnet.ni_set_health_all(now, value);
                Ok(())
            }
        })
    }

    /// `peer set --state N --nid N`.
    pub fn peer_set_state(&self, nid: Nid, state: u32) -> Result<(), NodeError> {
        self.inner
            .with(|st, _| st.lnet.peer_set_state(&nid, state).map_err(peer_err))
    }

    /// `discover [--force] NID` (semantics §9): waits for the discovery and
    /// returns the peer as discovered.
    pub fn discover(&self, nid: Nid, force: bool) -> Result<PeerInfo, NodeError> {
        let (id, timeout) = self.inner.with(|st, now| {
            if st.stopping {
                return Err(not_running());
            }
            let t = st.lnet.tunables().transaction_timeout;
            st.lnet
                .discover(now, nid, force)
                .map(|id| (id, t))
                .map_err(|e| NodeError::failed(e.errno(), e.to_string()))
        })?;
        let mut st = self.inner.lock();
        // A ping and a push, each bounded by the transaction timeout; this
        // guard only protects against a runtime bug.
        let guard = std::time::Instant::now() + Duration::from_secs(2 * u64::from(timeout) + 5);
        loop {
            if let Some(r) = st.discovers.remove(&id) {
                return match r {
                    Ok(prim) => {
                        if prim == Nid::LO_0 || st.lnet.is_local_nid(&prim) {
                            return Ok(PeerInfo {
                                primary: prim,
                                multi_rail: true,
                                state: 0,
                                nis: Vec::new(),
                            });
                        }
                        peer_infos(&st.lnet, Some(prim)).pop().ok_or_else(|| {
                            NodeError::failed(errno::ENOENT, format!("peer {prim}: gone"))
                        })
                    }
                    Err(e) => Err(NodeError::failed(
                        e.abs(),
                        format!("failed to discover {nid}"),
                    )),
                };
            }
            if st.stopping {
                return Err(not_running());
            }
            let left = guard.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return Err(NodeError::failed(
                    errno::ETIMEDOUT,
                    format!("discover {nid}: no answer"),
                ));
            }
            st = self
                .inner
                .changed
                .wait_timeout(st, left.min(Duration::from_secs(1)))
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        }
    }

    /// `debug recovery --local | --peer`: the NIDs on the local NI or peer
    /// NI recovery queue, in queue order.
    pub fn recovery_queue(&self, local: bool) -> Vec<Nid> {
        let st = self.inner.lock();
        if local {
            st.lnet
                .local_recovery_queue()
                .into_iter()
                .map(|(n, _)| n)
                .collect()
        } else {
            st.lnet
                .peer_recovery_queue()
                .into_iter()
                .map(|(n, _)| n)
                .collect()
        }
    }
}
