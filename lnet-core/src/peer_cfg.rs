//! Configured peers: `lnetctl peer add|del|set` (`lnet_add_peer_ni()`,
//! `lnet_del_peer_ni()` in `lnet/lnet/peer.c`, semantics §9.6, lnetctl.md
//! §2.6).
//!
//! A configured peer (state bit CONFIGURED) keeps the NIDs it was given:
//! discovery may only update their statuses. A NID belongs to one peer; a
//! NID owned by a peer that traffic or discovery created is moved into the
//! configured peer (that peer goes when it is left empty). A locked primary
//! NID (`--lock_prim`, LOCK_PRIMARY) is never replaced by discovery, and
//! `peer del` without `--force` then removes only the other NIDs.

use lnd_api::{errno, Completion, HealthStatus, NetId, Nid};

use crate::msg::MsgId;
use crate::ni::Lnet;
use crate::peer::{PeerError, PeerId, PeerNet, PeerNiId, PeerState};
use crate::time::Instant;

impl Lnet {
    /// Adds a peer (`lnetctl peer add --prim_nid P --nid N1,N2`) as a
    /// Multi-Rail or single-rail configured peer, primary not locked. See
    /// [`Lnet::peer_add_nids`].
    pub fn peer_add(
        &mut self,
        primary: Nid,
        nids: &[Nid],
        multi_rail: bool,
    ) -> Result<(), PeerError> {
        self.peer_add_nids(primary, nids, multi_rail, false)
    }

    /// `lnetctl peer add --prim_nid P [--nid LIST] [--non_mr] [--lock_prim]`
    /// (lnetctl.md §2.6): creates the configured peer of `primary`, or adds
    /// `nids` to it when it exists. NIDs already in the peer are accepted
    /// silently; NIDs of peers created by traffic or discovery are moved in.
    ///
    /// Refusals (nothing changes, a primary created by this call is removed):
    /// * `primary` or a NID is `LNET_NID_ANY`, `0@lo` or one of ours:
    ///   [`PeerError::BadNid`] (EINVAL);
    /// * `primary` is a non-primary NID of another configured peer, or a NID
    ///   belongs to another configured peer: [`PeerError::NidInUse`] (EEXIST);
    /// * the configured peer exists with the other Multi-Rail setting, or a
    ///   non-Multi-Rail peer is given more NIDs: [`PeerError::MultiRail`]
    ///   (EPERM).
    pub fn peer_add_nids(
        &mut self,
        primary: Nid,
        nids: &[Nid],
        multi_rail: bool,
        lock_prim: bool,
    ) -> Result<(), PeerError> {
        for n in std::iter::once(&primary).chain(nids) {
            if n.is_any() || n.net() == NetId::LO || self.is_local_nid(n) {
                return Err(PeerError::BadNid(*n));
            }
        }
        let existing = self.peer_of_nid(&primary);
        if let Some(pid) = existing {
            let Some(p) = self.peers.peer(pid) else {
                return Err(PeerError::Unknown(primary));
            };
            if p.state.has(PeerState::CONFIGURED) {
                if p.primary_nid != primary {
                    return Err(PeerError::NidInUse {
                        nid: primary,
                        owner: p.primary_nid,
                    });
                }
                if p.multi_rail != multi_rail {
                    return Err(PeerError::MultiRail {
                        primary,
                        multi_rail: p.multi_rail,
                    });
                }
            }
        }
        let extra = nids.iter().any(|n| *n != primary);
        if !multi_rail && extra {
            return Err(PeerError::MultiRail {
                primary,
                multi_rail: false,
            });
        }
        // Every NID: free, in this peer, or owned by a non-configured peer.
        for n in nids {
            if let Some(owner) = self.peer_of_nid(n) {
                if Some(owner) == existing {
                    continue;
                }
                if let Some(o) = self.peers.peer(owner) {
                    if o.state.has(PeerState::CONFIGURED) {
                        return Err(PeerError::NidInUse {
                            nid: *n,
                            owner: o.primary_nid,
                        });
                    }
                }
            }
        }
        // The primary first: its peer becomes the configured peer (a peer
        // created by traffic or discovery is taken over as it is).
        let pni = self.peer_ni_for(primary);
        let Some(peer) = self.peers.get(pni).map(|p| p.peer) else {
            return Err(PeerError::Unknown(primary));
        };
        for n in nids {
            if *n == primary {
                continue;
            }
            match self.peers.lookup(n) {
                Some(old) if self.peers.get(old).map(|p| p.peer) == Some(peer) => {}
                Some(old) => self.move_peer_ni(old, peer),
                None => {
                    let c = self.peer_credits_on(n.net());
                    self.peers.add_ni(peer, *n, c);
                }
            }
        }
        self.peers.lock_seq += 1;
        let lock_seq = self.peers.lock_seq;
        let mut pnis = Vec::new();
        if let Some(p) = self.peers.peers.get_mut(peer.idx, peer.gen) {
            p.multi_rail = multi_rail;
            p.configured = true;
            p.primary_nid = primary;
            p.state.set(PeerState::CONFIGURED);
            p.state.assign(PeerState::MULTI_RAIL, multi_rail);
            if lock_prim && p.lock_seq == 0 {
                p.state.set(PeerState::LOCK_PRIMARY);
                p.lock_seq = lock_seq;
            }
            // Our view of its NIDs changed: discovery looks again.
            p.state.clear(PeerState::NIDS_UPTODATE);
            pnis = p
                .nets
                .iter()
                .flat_map(|n| n.peer_nis.iter().copied())
                .collect();
        }
        self.peers.primary_first(peer);
        if multi_rail {
            // A Multi-Rail peer has no single preferred NI (§6.7).
            for id in pnis {
                if let Some(pn) = self.peers.get_mut(id) {
                    // UDSP NID-pair preferences stay (§12).
                    if !pn.pref_udsp {
                        pn.pref_nids.clear();
                    }
                }
            }
        }
        Ok(())
    }

    /// Deletes a peer (`lnetctl peer del --prim_nid P`), lock or not. See
    /// [`Lnet::peer_del_nids`].
    pub fn peer_del(&mut self, now: Instant, primary: Nid) -> Result<(), PeerError> {
        self.peer_del_nids(now, primary, &[], true)
    }

    /// `lnetctl peer del --prim_nid P [--nid LIST] [--force]` (lnetctl.md
    /// §2.6). Without NIDs, or when `primary` is among them, the whole peer
    /// goes; else each listed NID leaves it. A peer whose primary is locked
    /// loses only its other NIDs unless `force`. Messages waiting on a
    /// deleted peer NI take another of the peer's NIs, or fail with
    /// `-ENETDOWN` when none is left.
    ///
    /// Errors: `primary` unknown, or a NID not in the peer: [`PeerError::Unknown`]
    /// (ENOENT); `primary` not the peer's primary NID: [`PeerError::NotPrimary`]
    /// (ENODEV).
    pub fn peer_del_nids(
        &mut self,
        now: Instant,
        primary: Nid,
        nids: &[Nid],
        force: bool,
    ) -> Result<(), PeerError> {
        let peer = self
            .peer_of_nid(&primary)
            .ok_or(PeerError::Unknown(primary))?;
        let (actual, locked) = self
            .peers
            .peer(peer)
            .map(|p| (p.primary_nid, p.state.has(PeerState::LOCK_PRIMARY)))
            .ok_or(PeerError::Unknown(primary))?;
        if actual != primary {
            return Err(PeerError::NotPrimary {
                nid: primary,
                primary: actual,
            });
        }
        let whole = nids.is_empty() || nids.contains(&primary);
        if whole && (force || !locked) {
            self.peer_remove(now, peer, errno::ENETDOWN);
            self.flush(now);
            return Ok(());
        }
        let targets: Vec<Nid> = if whole {
            // Locked primary, no force: everything but the primary.
            self.peer_nids(peer)
                .into_iter()
                .filter(|n| *n != primary)
                .collect()
        } else {
            nids.to_vec()
        };
        for n in &targets {
            if self.peer_of_nid(n) != Some(peer) {
                return Err(PeerError::Unknown(*n));
            }
        }
        for n in targets {
            if let Some(id) = self.peers.lookup(&n) {
                self.peer_ni_remove(now, id);
            }
        }
        if let Some(p) = self.peers.peers.get_mut(peer.idx, peer.gen) {
            p.state.clear(PeerState::NIDS_UPTODATE);
        }
        self.flush(now);
        Ok(())
    }

    /// Sets the health of every peer NI (`lnetctl peer set --health V --all`).
    pub fn peer_set_health_all(&mut self, now: Instant, value: u32) {
        let nids: Vec<Nid> = self.peers.nis.iter().map(|(_, _, p)| p.nid).collect();
        for n in nids {
            let _ = self.peer_ni_set_health(now, &n, value);
        }
    }

    /// Overwrites the state bitmask of the peer owning `nid` (`lnetctl peer
    /// set --state`, a debugging aid; lnetctl.md §5.4). The Multi-Rail bit
    /// is the peer's Multi-Rail setting.
    pub fn peer_set_state(&mut self, nid: &Nid, state: u32) -> Result<(), PeerError> {
        let peer = self.peer_of_nid(nid).ok_or(PeerError::Unknown(*nid))?;
        let p = self
            .peers
            .peers
            .get_mut(peer.idx, peer.gen)
            .ok_or(PeerError::Unknown(*nid))?;
        p.state = PeerState(state);
        p.multi_rail = p.state.has(PeerState::MULTI_RAIL);
        p.configured = p.state.has(PeerState::CONFIGURED);
        if !p.state.has(PeerState::LOCK_PRIMARY) {
            p.lock_seq = 0;
        }
        Ok(())
    }

    /// The peer owning `nid`.
    pub(crate) fn peer_of_nid(&self, nid: &Nid) -> Option<PeerId> {
        self.peers.get(self.peers.lookup(nid)?).map(|p| p.peer)
    }

    /// A peer's NIDs in listing order.
    pub(crate) fn peer_nids(&self, peer: PeerId) -> Vec<Nid> {
        self.peers.peer(peer).map_or_else(Vec::new, |p| {
            p.nets
                .iter()
                .flat_map(|n| n.peer_nis.iter())
                .filter_map(|id| self.peers.get(*id).map(|x| x.nid))
                .collect()
        })
    }

    /// Moves a peer NI into peer `to`. Its old peer loses it; an old peer
    /// left empty goes (its messages parked for discovery move along); one
    /// that lost its primary NID takes its first remaining NID as primary.
    pub(crate) fn move_peer_ni(&mut self, id: PeerNiId, to: PeerId) {
        let Some((old_peer, nid)) = self.peers.get(id).map(|p| (p.peer, p.nid)) else {
            return;
        };
        if old_peer == to {
            return;
        }
        self.peers.detach_ni(old_peer, id);
        if let Some(p) = self.peers.get_mut(id) {
            p.peer = to;
        }
        self.peers.attach_ni(to, id, nid);
        let empty = self.peers.peer(old_peer).is_some_and(|p| p.nets.is_empty());
        if empty {
            let parked = self
                .peers
                .peers
                .get_mut(old_peer.idx, old_peer.gen)
                .map(|p| std::mem::take(&mut p.disc.parked))
                .unwrap_or_default();
            let waiters = self
                .peers
                .peers
                .get_mut(old_peer.idx, old_peer.gen)
                .map(|p| std::mem::take(&mut p.disc.waiters))
                .unwrap_or_default();
            if let Some(p) = self.peers.peers.get_mut(to.idx, to.gen) {
                p.disc.parked.extend(parked);
                p.disc.waiters.extend(waiters);
            }
            self.peer_forget(old_peer);
        } else if self
            .peers
            .peer(old_peer)
            .is_some_and(|p| p.primary_nid == nid)
        {
            let first = self.peer_nids(old_peer).first().copied();
            if let (Some(first), Some(p)) =
                (first, self.peers.peers.get_mut(old_peer.idx, old_peer.gen))
            {
                p.primary_nid = first;
            }
        }
    }

    /// Removes one peer NI from its peer; its waiting messages are re-routed
    /// (or failed). A peer left empty goes.
    pub(crate) fn peer_ni_remove(&mut self, now: Instant, id: PeerNiId) {
        let Some(peer) = self.peers.get(id).map(|p| p.peer) else {
            return;
        };
        self.peers.detach_ni(peer, id);
        self.peers.recovery.remove(&id);
        let Some(pn) = self.peers.nis.remove(id.idx, id.gen) else {
            return;
        };
        self.peers.by_nid.remove(&pn.nid);
        let empty = self.peers.peer(peer).is_some_and(|p| p.nets.is_empty());
        if empty {
            self.peer_remove(now, peer, errno::ENETDOWN);
        } else if self
            .peers
            .peer(peer)
            .is_some_and(|p| p.primary_nid == pn.nid)
        {
            let first = self.peer_nids(peer).first().copied();
            if let (Some(first), Some(p)) = (first, self.peers.peers.get_mut(peer.idx, peer.gen)) {
                p.primary_nid = first;
            }
        }
        self.reroute(now, pn.queue.into_iter().collect());
    }

    /// Removes a peer and its peer NIs; messages waiting on them, or parked
    /// for its discovery, fail with `-err`; discover waiters are told.
    pub(crate) fn peer_remove(&mut self, now: Instant, peer: PeerId, err: i32) {
        let Some(mut p) = self.peers.peers.remove(peer.idx, peer.gen) else {
            return;
        };
        self.discovery_forget(&p.disc);
        self.peers.order.retain(|x| *x != peer);
        self.peers.disc_queue.retain(|x| *x != peer);
        let fail = Completion::failed(err, HealthStatus::LOCAL_ABORTED);
        for id in p.nets.iter().flat_map(|n| n.peer_nis.iter()) {
            self.peers.recovery.remove(id);
            if let Some(pn) = self.peers.nis.remove(id.idx, id.gen) {
                self.peers.by_nid.remove(&pn.nid);
                for m in pn.queue {
                    self.unpeer_msg(m);
                    self.finalize(now, m, fail);
                }
            }
        }
        for m in std::mem::take(&mut p.disc.parked) {
            self.finalize(now, m, fail);
        }
        for w in std::mem::take(&mut p.disc.waiters) {
            self.discover_report(w, p.primary_nid, Err(-err));
        }
    }

    /// Drops an empty peer object (its NIs already moved elsewhere).
    fn peer_forget(&mut self, peer: PeerId) {
        if let Some(p) = self.peers.peers.remove(peer.idx, peer.gen) {
            self.peers.order.retain(|x| *x != peer);
            self.peers.disc_queue.retain(|x| *x != peer);
            self.discovery_forget(&p.disc);
        }
    }

    /// A message waiting for a peer NI credit leaves that peer NI's queue
    /// without a credit (the peer NI is going away).
    fn unpeer_msg(&mut self, m: MsgId) {
        if let Some(msg) = self.msgs.get_mut(m.idx, m.gen) {
            let d = msg.deadline;
            msg.peer_credit = false;
            msg.peer_ni = None;
            msg.state = crate::msg::MsgState::New;
            self.disarm(d, crate::ni::Timer::Msg(m));
        }
    }

    /// Messages that lost their peer NI select a path again (original
    /// destination and source), or fail with `-ENETDOWN`.
    pub(crate) fn reroute(&mut self, now: Instant, msgs: Vec<MsgId>) {
        for m in msgs {
            self.unpeer_msg(m);
            self.resume_msg(now, m, errno::ENETDOWN);
        }
    }

    /// Runs path selection for a message that has none yet (re-routed or
    /// parked for discovery) and posts it; `err` is the errno if it must
    /// fail instead (0: select a path).
    pub(crate) fn resume_msg(&mut self, now: Instant, m: MsgId, err: i32) {
        let Some(msg) = self.msgs.get(m.idx, m.gen) else {
            return;
        };
        if err != 0 && err != errno::ENETDOWN {
            self.finalize(now, m, Completion::failed(err, HealthStatus::LOCAL_ABORTED));
            return;
        }
        let (dest, src, md) = (msg.orig_dest, msg.src_param, msg.md);
        match self.select_path(dest, src) {
            Ok(p) => {
                if let Some(md) = md {
                    if let Some(t) = self.rspt.get_mut(&md) {
                        t.1 = p.peer_ni;
                    }
                }
                self.post_on_path(now, m, p)
            }
            Err(crate::send::NoPath(c)) => self.finalize(now, m, c),
        }
    }
}

impl crate::peer::PeerTable {
    /// Takes a peer NI out of its peer's nets (dropping a net left empty).
    pub(crate) fn detach_ni(&mut self, peer: PeerId, id: PeerNiId) {
        if let Some(p) = self.peers.get_mut(peer.idx, peer.gen) {
            for n in p.nets.iter_mut() {
                n.peer_nis.retain(|x| *x != id);
            }
            p.nets.retain(|n| !n.peer_nis.is_empty());
        }
    }

    /// Puts a peer NI at the end of its net in `peer` (§5.2).
    pub(crate) fn attach_ni(&mut self, peer: PeerId, id: PeerNiId, nid: Nid) {
        if self.udsp_on {
            // A new peer net may have been made: the rules apply to it.
            self.udsp_fresh.push(id);
        }
        if let Some(p) = self.peers.get_mut(peer.idx, peer.gen) {
            let net = nid.net();
            match p.nets.iter_mut().find(|n| n.net == net) {
                Some(pn) => pn.peer_nis.push(id),
                None => p.nets.push(PeerNet {
                    net,
                    peer_nis: vec![id],
                    seq: 0,
                    sel_priority: u32::MAX,
                }),
            }
        }
    }

    /// Moves the primary NID's net to the front, and the primary to the
    /// front of its net (lnetctl.md §5.2).
    pub(crate) fn primary_first(&mut self, peer: PeerId) {
        let Some(p) = self.peers.get(peer.idx, peer.gen) else {
            return;
        };
        let prim = p.primary_nid;
        let Some(pid) = self.by_nid.get(&prim).copied() else {
            return;
        };
        let Some(p) = self.peers.get_mut(peer.idx, peer.gen) else {
            return;
        };
        if let Some(i) = p.nets.iter().position(|n| n.net == prim.net()) {
            let net = p.nets.remove(i);
            p.nets.insert(0, net);
            let list = &mut p.nets[0].peer_nis;
            if let Some(j) = list.iter().position(|x| *x == pid) {
                let x = list.remove(j);
                list.insert(0, x);
            }
        }
    }
}
