//! User Defined Selection Policies in the engine (semantics.md §12,
//! `lnet/lnet/udsp.c`): the ordered rule list and what it sets on local
//! nets and NIs, peer nets and peer NIs, which path selection (§6, §7.4,
//! §7.5) then reads.
//!
//! # How rules are applied
//!
//! The attributes a rule sets (selection priorities, preferred local NIDs,
//! preferred gateways) are always **recomputed from the whole rule list**:
//! each object is reset to the defaults (lowest priority, no UDSP
//! preference) and the rules are applied from the last to the first, so the
//! rule with the lowest index wins where several match. This happens when a
//! rule is added or deleted (all objects), when a local NI is added (all
//! objects: a NID-pair rule may now name it), and when a peer NI is created
//! (that peer NI and its peer net). Deleting a rule therefore gives every
//! object what the remaining rules say (upstream reverts only what the
//! deleted rule set, which can leave an object without the priority another
//! rule gives it until the next change).
//!
//! Preferred gateways are kept as the rule's router descriptor and matched
//! against each route's gateway when a route is chosen (its configured NID
//! or its peer's primary NID), so routes and gateways added after the rule,
//! and a gateway whose primary NID discovery changed, are covered.

use std::sync::Arc;

use lnd_api::{errno, NetId, Nid};

use crate::ni::{Lnet, NiId};
use crate::nid::NidDescr;
use crate::peer::PeerNiId;

/// The lowest selection priority (the default, "no rule").
pub const PRIORITY_NONE: u32 = u32::MAX;

/// One UDSP rule (`struct lnet_udsp`).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct UdspRule {
    /// Local descriptor (`--src`).
    pub src: Option<NidDescr>,
    /// Peer descriptor (`--dst`).
    pub dst: Option<NidDescr>,
    /// Router descriptor (`--rte`).
    pub rte: Option<NidDescr>,
    /// The PRIORITY action (0 is the highest); `None` for the preference
    /// rules (`--src` with `--dst`, `--dst` with `--rte`).
    pub priority: Option<u32>,
}

impl UdspRule {
    /// A rule; [`Lnet::udsp_add`] checks the combination.
    pub fn new(
        src: Option<NidDescr>,
        dst: Option<NidDescr>,
        rte: Option<NidDescr>,
        priority: Option<u32>,
    ) -> UdspRule {
        UdspRule {
            src,
            dst,
            rte,
            priority,
        }
    }

    fn same_descriptors(&self, o: &UdspRule) -> bool {
        self.src == o.src && self.dst == o.dst && self.rte == o.rte
    }
}

/// What a rule does, once checked.
#[derive(Clone, Debug)]
enum Kind {
    /// `--src` only: local net (net-only descriptor) or local NI priority.
    SrcPriority(NidDescr, u32),
    /// `--dst` only: peer net (net-only descriptor) or peer NI priority.
    DstPriority(NidDescr, u32),
    /// `--dst` and `--src`: local NIs matching src preferred for peer NIs
    /// matching dst.
    Pair { dst: NidDescr, src: NidDescr },
    /// `--dst` and `--rte`: gateways matching rte preferred for peer NIs
    /// matching dst.
    Router { dst: NidDescr, rte: Arc<NidDescr> },
}

/// A stored rule: as given, and what it does.
#[derive(Clone, Debug)]
pub(crate) struct Stored {
    rule: UdspRule,
    kind: Kind,
}

/// Errors of `udsp add|del`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UdspError {
    /// The combination of descriptors is not a rule.
    #[error("{0}")]
    Invalid(&'static str),
    /// The same rule (same descriptors, same action) exists.
    #[error("the same rule exists at index {0}")]
    Exists(u32),
    /// No rule at that index.
    #[error("no rule at index {0}")]
    NoSuchRule(u32),
}

impl UdspError {
    /// The errno upstream reports (positive).
    pub fn errno(&self) -> i32 {
        match self {
            UdspError::Invalid(_) => errno::EINVAL,
            UdspError::Exists(_) => 114, // EALREADY
            UdspError::NoSuchRule(_) => errno::ENOENT,
        }
    }
}

/// What `udsp add` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UdspAdded {
    /// A new rule now at this index.
    Inserted(u32),
    /// The rule at this index had the same descriptors: its priority was
    /// replaced.
    Updated(u32),
}

fn check(rule: &UdspRule) -> Result<Kind, UdspError> {
    match (&rule.src, &rule.dst, &rule.rte) {
        (Some(_), Some(_), Some(_)) => Err(UdspError::Invalid(
            "The combination of src, dst and rte is not supported",
        )),
        (Some(_), None, Some(_)) => Err(UdspError::Invalid("src and rte cannot be combined")),
        (None, None, None) => Err(UdspError::Invalid(
            "a rule needs at least one of src, dst or rte",
        )),
        (None, None, Some(_)) => Err(UdspError::Invalid(
            "a router (rte) rule needs a destination (dst)",
        )),
        (Some(s), None, None) => Ok(Kind::SrcPriority(s.clone(), rule.priority.unwrap_or(0))),
        (None, Some(d), None) => Ok(Kind::DstPriority(d.clone(), rule.priority.unwrap_or(0))),
        (Some(s), Some(d), None) => Ok(Kind::Pair {
            dst: d.clone(),
            src: s.clone(),
        }),
        (None, Some(d), Some(r)) => Ok(Kind::Router {
            dst: d.clone(),
            rte: Arc::new(r.clone()),
        }),
    }
}

/// A net-only descriptor ("net rule": no address range).
fn is_net_rule(d: &NidDescr) -> bool {
    d.addr_range().is_none()
}

impl Lnet {
    /// `udsp add`: inserts the rule at `idx` (appends when `None` or past
    /// the end) and applies the rule list again. A rule with the same
    /// descriptors and another priority gets the new priority; with the same
    /// priority it is [`UdspError::Exists`] (upstream's EALREADY).
    pub fn udsp_add(&mut self, rule: UdspRule, idx: Option<u32>) -> Result<UdspAdded, UdspError> {
        let mut kind = check(&rule)?;
        if let Some(i) = self
            .udsp
            .iter()
            .position(|s| s.rule.same_descriptors(&rule))
        {
            let old = &mut self.udsp[i];
            let (old_p, new_p) = (old.rule.priority, rule.priority);
            if old_p == new_p || old_p.is_none() || new_p.is_none() {
                return Err(UdspError::Exists(i as u32));
            }
            old.rule.priority = new_p;
            match &mut kind {
                Kind::SrcPriority(_, p) | Kind::DstPriority(_, p) => *p = new_p.unwrap_or(0),
                _ => {}
            }
            old.kind = kind;
            self.udsp_apply_all();
            return Ok(UdspAdded::Updated(i as u32));
        }
        let at = idx.map_or(self.udsp.len(), |i| (i as usize).min(self.udsp.len()));
        self.udsp.insert(at, Stored { rule, kind });
        self.peers.udsp_on = true;
        self.udsp_apply_all();
        Ok(UdspAdded::Inserted(at as u32))
    }

    /// `udsp del --idx N`, or every rule (`--all`) with `None`; later rules
    /// move down one index. What the rules set is recomputed.
    pub fn udsp_del(&mut self, idx: Option<u32>) -> Result<(), UdspError> {
        match idx {
            None => self.udsp.clear(),
            Some(i) if (i as usize) < self.udsp.len() => {
                self.udsp.remove(i as usize);
            }
            Some(i) => return Err(UdspError::NoSuchRule(i)),
        }
        self.peers.udsp_on = !self.udsp.is_empty();
        self.udsp_apply_all();
        Ok(())
    }

    /// The rules in index order.
    pub fn udsp_rules(&self) -> impl Iterator<Item = &UdspRule> {
        self.udsp.iter().map(|s| &s.rule)
    }

    /// The gateways a peer NI prefers (router rules, §12): the primary NIDs
    /// of the current routes' gateways its rule matches, in route order,
    /// without duplicates. Empty without a router rule.
    pub fn peer_ni_pref_gateways(&self, nid: &Nid) -> Vec<Nid> {
        let Some(rte) = self
            .peers
            .lookup(nid)
            .and_then(|id| self.peers.get(id))
            .and_then(|p| p.pref_rte.clone())
        else {
            return Vec::new();
        };
        let mut out: Vec<Nid> = Vec::new();
        for gw in self.route_gateways() {
            let prim = self.peers.primary_of(gw);
            if (rte.matches_nid(&gw) || rte.matches_nid(&prim)) && !out.contains(&prim) {
                out.push(prim);
            }
        }
        out
    }

    /// Whether the gateway `gw` is on the preferred-router list of the peer
    /// NI `dest` (criterion 1 of §7.4). No allocation: selection calls it.
    pub(crate) fn udsp_gateway_preferred(&self, dest: Option<PeerNiId>, gw: &Nid) -> bool {
        let Some(rte) = dest
            .and_then(|d| self.peers.get(d))
            .and_then(|p| p.pref_rte.as_deref())
        else {
            return false;
        };
        rte.matches_nid(gw) || rte.matches_nid(&self.peers.primary_of(*gw))
    }

    /// Applies the rules to peer NIs created since the last call (by
    /// traffic, `peer add` or discovery). Cheap when there is nothing to do.
    pub(crate) fn udsp_settle(&mut self) {
        if self.peers.udsp_fresh.is_empty() {
            return;
        }
        let fresh = std::mem::take(&mut self.peers.udsp_fresh);
        for id in &fresh {
            self.udsp_apply_peer_ni(*id);
        }
        // Keep the list's capacity for the next ones.
        let mut fresh = fresh;
        fresh.clear();
        if self.peers.udsp_fresh.is_empty() {
            self.peers.udsp_fresh = fresh;
        }
    }

    /// Recomputes what the rules set on every local NI and peer NI.
    pub(crate) fn udsp_apply_all(&mut self) {
        self.peers.udsp_fresh.clear();
        for i in 1..self.nis.len() {
            self.udsp_apply_ni(NiId(i as u32));
        }
        let ids: Vec<PeerNiId> = self
            .peers
            .by_nid
            .values()
            .copied()
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        for id in ids {
            self.udsp_apply_peer_ni(id);
        }
    }

    /// Local NI: NI priority (NID rules) and local net priority (net rules)
    /// from the `--src`-only rules.
    pub(crate) fn udsp_apply_ni(&mut self, id: NiId) {
        let Some((nid, net)) = self.ni_ref(id).map(|n| (n.nid, n.net)) else {
            return;
        };
        if net == NetId::LO {
            return;
        }
        let (mut ni_prio, mut net_prio) = (PRIORITY_NONE, PRIORITY_NONE);
        for s in self.udsp.iter().rev() {
            if let Kind::SrcPriority(d, p) = &s.kind {
                if is_net_rule(d) {
                    if d.matches_net(net) {
                        net_prio = *p;
                    }
                } else if d.matches_nid(&nid) {
                    ni_prio = *p;
                }
            }
        }
        if let Some(n) = self.ni_mut(id) {
            n.sel_priority = ni_prio;
            n.net_priority = net_prio;
        }
    }

    /// Peer NI: its priority, its peer net's priority, its UDSP preferred
    /// local NIDs and its router rule.
    pub(crate) fn udsp_apply_peer_ni(&mut self, id: PeerNiId) {
        let Some((nid, peer)) = self.peers.get(id).map(|p| (p.nid, p.peer)) else {
            return;
        };
        let net = nid.net();
        let mut ni_prio = PRIORITY_NONE;
        let mut net_prio = PRIORITY_NONE;
        let mut pref: Option<Vec<Nid>> = None;
        let mut rte: Option<Arc<NidDescr>> = None;
        for s in self.udsp.iter().rev() {
            match &s.kind {
                Kind::SrcPriority(..) => {}
                Kind::DstPriority(d, p) => {
                    if is_net_rule(d) {
                        if d.matches_net(net) {
                            net_prio = *p;
                        }
                    } else if d.matches_nid(&nid) {
                        ni_prio = *p;
                    }
                }
                Kind::Pair { dst, src } => {
                    if dst.matches_nid(&nid) {
                        let locals: Vec<Nid> = self
                            .nis
                            .iter()
                            .flatten()
                            .filter(|n| n.net != NetId::LO && src.matches_nid(&n.nid))
                            .map(|n| n.nid)
                            .collect();
                        // As upstream: no local NI matching leaves the list.
                        if !locals.is_empty() {
                            pref = Some(locals);
                        }
                    }
                }
                Kind::Router { dst, rte: r } => {
                    if dst.matches_nid(&nid) {
                        rte = Some(r.clone());
                    }
                }
            }
        }
        if let Some(p) = self.peers.get_mut(id) {
            p.sel_priority = ni_prio;
            p.pref_rte = rte;
            match pref {
                Some(list) => {
                    p.pref_nids = list;
                    p.pref_udsp = true;
                }
                None if p.pref_udsp => {
                    p.pref_nids.clear();
                    p.pref_udsp = false;
                }
                None => {}
            }
        }
        if let Some(p) = self.peers.peers.get_mut(peer.idx, peer.gen) {
            if let Some(pn) = p.nets.iter_mut().find(|n| n.net == net) {
                pn.sel_priority = net_prio;
            }
        }
    }
}
