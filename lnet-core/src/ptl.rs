//! Portals and matching (`struct lnet_portal`, `lnet/lnet/lib-ptl.c`).
//!
//! 64 portals; each keeps its MEs in two ordered lists: those with ignore
//! bits (searched first) and the rest, hashed by match bits (an ME without
//! ignore bits only matches its exact bits, so the bucket of the incoming bits
//! holds every candidate). The kernel hashes unique portals by match bits, NID
//! and PID and spreads wildcard ones over CPU partitions; the result of a match
//! is the same (semantics §2.1, §2.4).

use std::collections::VecDeque;

use crate::hash::FastMap;

use lnd_api::Nid;

use crate::md::{MdHandle, MdOptions, MdTable};
use crate::me::{Me, MeHandle};
use crate::msg::{GenSlab, MsgId};
use crate::ni::Lnet;
use crate::nid::ProcessId;

/// Number of portals (`MAX_PORTALS`).
pub const MAX_PORTALS: u32 = 64;

/// Most emptied match lists a portal keeps for reuse.
const SPARE_LISTS_MAX: usize = 64;

/// Where a new ME goes on its list (`LNET_INS_BEFORE` / `LNET_INS_AFTER`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum InsPos {
    /// At the head.
    Before,
    /// At the tail.
    After,
    /// At the tail of the CPU-local list (`LNET_INS_LOCAL`; one list here).
    Local,
}

/// A portal's match type, fixed by its first ME.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum PortalKind {
    Unique,
    Wildcard,
}

impl PortalKind {
    pub(crate) fn of(id: &ProcessId, ignore_bits: u64) -> PortalKind {
        if ignore_bits == 0 && !id.nid.is_any() && id.pid != crate::nid::LNET_PID_ANY {
            PortalKind::Unique
        } else {
            PortalKind::Wildcard
        }
    }
    pub(crate) fn name(self) -> &'static str {
        match self {
            PortalKind::Unique => "unique",
            PortalKind::Wildcard => "wildcard",
        }
    }
}

/// One portal (`struct lnet_portal`).
#[derive(Debug, Default)]
pub(crate) struct Portal {
    pub(crate) lazy: bool,
    pub(crate) kind: Option<PortalKind>,
    /// MEs with ignore bits, in list order.
    ignore: VecDeque<MeHandle>,
    /// MEs without ignore bits, by match bits, in list order.
    exact: FastMap<u64, VecDeque<MeHandle>>,
    /// Emptied lists of `exact`, kept for the next match bits: a use-once ME
    /// per operation (each with its own bits) allocates no list.
    spare: Vec<VecDeque<MeHandle>>,
    /// PUTs waiting for an MD (lazy portal), in arrival order.
    pub(crate) delayed: VecDeque<MsgId>,
}

impl Portal {
    pub(crate) fn insert(&mut self, me: MeHandle, bits: u64, ignore: u64, pos: InsPos) {
        let list = if ignore != 0 {
            &mut self.ignore
        } else {
            // hashbrown reuses the tombstones of removed keys by rehashing
            // in place only while the live keys fit in half its capacity;
            // past that it grows (allocates) on an insert even when the
            // number of live keys does not grow. With a fresh match bits
            // per RPC (selftest's reply and bulk MEs) that happened at a
            // load-dependent moment in steady state. Keeping the capacity
            // at least twice the live keys makes it grow only when the live
            // keys reach a new high.
            let want = 2 * (self.exact.len() + 1);
            if self.exact.capacity() < want {
                self.exact.reserve(want - self.exact.len());
            }
            let spare = &mut self.spare;
            self.exact
                .entry(bits)
                .or_insert_with(|| spare.pop().unwrap_or_default())
        };
        match pos {
            InsPos::Before => list.push_front(me),
            InsPos::After | InsPos::Local => list.push_back(me),
        }
    }

    pub(crate) fn remove(&mut self, me: MeHandle, bits: u64, ignore: u64) {
        if ignore != 0 {
            remove_one(&mut self.ignore, me);
        } else if let Some(l) = self.exact.get_mut(&bits) {
            remove_one(l, me);
            if l.is_empty() {
                if let Some(l) = self.exact.remove(&bits) {
                    if self.spare.len() < SPARE_LISTS_MAX {
                        self.spare.push(l);
                    }
                }
            }
        }
    }

    fn candidates(&self, bits: u64) -> impl Iterator<Item = &MeHandle> {
        self.ignore
            .iter()
            .chain(self.exact.get(&bits).into_iter().flatten())
    }
}

/// Removes `me` (on a list at most once) from `list`. A matched ME is
/// usually at the head (use-once MEs are matched in list order: selftest's
/// hundreds of posted request buffers of one service share one list), so
/// this is O(1) where `retain` walked the whole list for every message.
fn remove_one(list: &mut VecDeque<MeHandle>, me: MeHandle) {
    if let Some(i) = list.iter().position(|h| *h == me) {
        list.remove(i);
    }
}

/// The operation being matched.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum MatchOp {
    Put,
    Get,
}

/// What an incoming request asks for (`struct lnet_match_info`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct MatchInfo {
    pub(crate) op: MatchOp,
    pub(crate) initiator: ProcessId,
    pub(crate) portal: u32,
    pub(crate) match_bits: u64,
    pub(crate) rlength: u32,
    pub(crate) roffset: u32,
}

/// Result of matching (`LNET_MATCHMD_*`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum MatchResult {
    /// Committed to this MD: deliver `mlength` bytes at `offset`.
    Matched {
        md: MdHandle,
        offset: u32,
        mlength: u32,
    },
    /// Nothing matched.
    None,
    /// A matching MD refused it (too long, no TRUNCATE): drop, look no further.
    Drop,
}

/// `lnet_try_match_md` without the commit: checks one ME.
fn try_me(
    me: &Me,
    mds: &MdTable,
    info: &MatchInfo,
    same_peer: &dyn Fn(Nid, Nid) -> bool,
) -> Option<MatchResult> {
    let h = me.md?;
    let md = mds.get(h.idx, h.gen)?;
    if md.zombie || md.exhausted() {
        return None;
    }
    let op = match info.op {
        MatchOp::Put => MdOptions::OP_PUT,
        MatchOp::Get => MdOptions::OP_GET,
    };
    if !md.options.contains(op) {
        return None;
    }
    if (me.match_bits ^ info.match_bits) & !me.ignore_bits != 0 {
        return None;
    }
    if me.match_id.pid != crate::nid::LNET_PID_ANY && me.match_id.pid != info.initiator.pid {
        return None;
    }
    if !me.match_id.nid.is_any()
        && me.match_id.nid != info.initiator.nid
        && !same_peer(me.match_id.nid, info.initiator.nid)
    {
        return None;
    }
    // A requested offset past the end leaves no space (and points at the end).
    let offset = if md.options.contains(MdOptions::MANAGE_REMOTE) {
        info.roffset.min(md.length)
    } else {
        md.offset
    };
    let space = if md.options.contains(MdOptions::MAX_SIZE) {
        md.max_size
    } else {
        md.length.saturating_sub(offset)
    };
    let space = space.min(md.length.saturating_sub(offset));
    let mlength = if info.rlength <= space {
        info.rlength
    } else if md.options.contains(MdOptions::TRUNCATE) {
        space
    } else {
        return Some(MatchResult::Drop);
    };
    Some(MatchResult::Matched {
        md: h,
        offset,
        mlength,
    })
}

/// Walks a portal's candidates; first hit wins.
pub(crate) fn find_match(
    ptl: &Portal,
    mes: &GenSlab<Me>,
    mds: &MdTable,
    info: &MatchInfo,
    same_peer: &dyn Fn(Nid, Nid) -> bool,
) -> MatchResult {
    for h in ptl.candidates(info.match_bits) {
        let Some(me) = mes.get(h.idx, h.gen) else {
            continue;
        };
        if let Some(r) = try_me(me, mds, info, same_peer) {
            return r;
        }
    }
    MatchResult::None
}

/// Checks one specific MD (for delayed messages against a newly attached MD).
pub(crate) fn match_one(
    me: &Me,
    mds: &MdTable,
    info: &MatchInfo,
    same_peer: &dyn Fn(Nid, Nid) -> bool,
) -> MatchResult {
    try_me(me, mds, info, same_peer).unwrap_or(MatchResult::None)
}

impl Lnet {
    /// Marks a portal lazy or not (`LNetSetLazyPortal` / `LNetClearLazyPortal`).
    /// Clearing the flag drops every PUT waiting on the portal.
    pub fn set_lazy_portal(&mut self, portal: u32, lazy: bool) {
        let Some(p) = self.portals.get_mut(portal as usize) else {
            return;
        };
        p.lazy = lazy;
        if !lazy {
            let waiting: Vec<MsgId> = p.delayed.drain(..).collect();
            for id in waiting {
                self.drop_delayed(id);
            }
        }
    }

    /// Matches a request and commits it to the MD found (`lnet_ptl_match_md`).
    pub(crate) fn match_md(&mut self, info: &MatchInfo) -> MatchResult {
        let Some(ptl) = self.portals.get(info.portal as usize) else {
            return MatchResult::Drop;
        };
        let peers = &self.peers;
        let same_peer = |a: Nid, b: Nid| peers.same_peer(a, b);
        let r = find_match(ptl, &self.mes, &self.mds, info, &same_peer);
        if let MatchResult::Matched {
            md,
            offset,
            mlength,
        } = r
        {
            self.commit_match(md, offset, mlength);
        }
        r
    }

    /// Attaches the matched message to the MD: threshold−1, ref+1, offset
    /// moves; an exhausted auto-unlink MD starts unlinking now.
    pub(crate) fn commit_match(&mut self, h: MdHandle, offset: u32, mlength: u32) {
        let Some(md) = self.mds.get_mut(h.idx, h.gen) else {
            return;
        };
        md.attach_msg();
        md.offset = offset.saturating_add(mlength);
        if md.exhausted() && md.auto_unlink {
            self.md_start_unlink(h);
        }
    }

    /// After an MD was attached: match it against the PUTs waiting on the
    /// portal, in arrival order (`lnet_ptl_attach_md`).
    pub(crate) fn ptl_match_delayed(&mut self, portal: u32, md: MdHandle) {
        let Some(p) = self.portals.get(portal as usize) else {
            return;
        };
        if p.delayed.is_empty() {
            return;
        }
        let waiting: Vec<MsgId> = p.delayed.iter().copied().collect();
        for id in waiting {
            let Some(info) = self.delayed_match_info(id) else {
                continue;
            };
            let Some(me_h) = self.mds.get(md.idx, md.gen).and_then(|m| m.me) else {
                break;
            };
            let Some(me) = self.mes.get(me_h.idx, me_h.gen) else {
                break;
            };
            let peers = &self.peers;
            let same_peer = |a: Nid, b: Nid| peers.same_peer(a, b);
            match match_one(me, &self.mds, &info, &same_peer) {
                MatchResult::None => continue,
                MatchResult::Drop => {
                    self.portals[portal as usize].delayed.retain(|x| *x != id);
                    self.drop_delayed(id);
                }
                MatchResult::Matched {
                    md,
                    offset,
                    mlength,
                } => {
                    self.portals[portal as usize].delayed.retain(|x| *x != id);
                    self.commit_match(md, offset, mlength);
                    self.deliver_delayed(id, md, offset, mlength);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::md::Unlink;
    use crate::md::{Md, MdOwner, Threshold};
    use lnd_api::{IoBuf, NetId};

    fn md(len: u32, options: MdOptions) -> Md {
        Md {
            memory: IoBuf::zeroed(len as usize).into(),
            length: len,
            options,
            threshold: Threshold::Infinite,
            max_size: 0,
            user_ptr: 0,
            offset: 0,
            refcount: 0,
            me: None,
            auto_unlink: false,
            zombie: false,
            aborted: false,
            owner: MdOwner::User,
            sent: None,
        }
    }

    fn info(bits: u64, rlength: u32) -> MatchInfo {
        MatchInfo {
            op: MatchOp::Put,
            initiator: ProcessId {
                nid: Nid::new4(NetId::new(2, 0), 7),
                pid: 12345,
            },
            portal: 1,
            match_bits: bits,
            rlength,
            roffset: 0,
        }
    }

    fn setup(
        entries: &[(u64, u64, u32, MdOptions)],
    ) -> (Portal, GenSlab<Me>, MdTable, Vec<MdHandle>) {
        let (mut ptl, mut mes, mut mds) =
            (Portal::default(), GenSlab::default(), MdTable::default());
        let mut handles = Vec::new();
        for &(bits, ignore, len, opts) in entries {
            let (i, g) = mds.insert(md(len, opts));
            let h = MdHandle { idx: i, gen: g };
            let me = Me {
                portal: 1,
                match_id: ProcessId::ANY,
                match_bits: bits,
                ignore_bits: ignore,
                unlink: Unlink::Retain,
                md: Some(h),
            };
            let (mi, mg) = mes.insert(me);
            ptl.insert(MeHandle { idx: mi, gen: mg }, bits, ignore, InsPos::After);
            handles.push(h);
        }
        (ptl, mes, mds, handles)
    }

    #[test]
    fn portal_kind_is_unique_only_for_exact_process_and_bits() {
        let p = ProcessId {
            nid: Nid::new4(NetId::new(2, 0), 1),
            pid: 12345,
        };
        assert_eq!(PortalKind::of(&p, 0), PortalKind::Unique);
        assert_eq!(PortalKind::of(&p, 1), PortalKind::Wildcard);
        assert_eq!(
            PortalKind::of(
                &ProcessId {
                    pid: crate::nid::LNET_PID_ANY,
                    ..p
                },
                0
            ),
            PortalKind::Wildcard
        );
        assert_eq!(PortalKind::of(&ProcessId::ANY, 0), PortalKind::Wildcard);
    }

    #[test]
    fn exhausted_mds_are_skipped_and_the_next_candidate_matches() {
        let (ptl, mes, mut mds, h) =
            setup(&[(5, 0, 8, MdOptions::OP_PUT), (5, 0, 8, MdOptions::OP_PUT)]);
        if let Some(m) = mds.get_mut(h[0].idx, h[0].gen) {
            m.threshold = Threshold::Count(0);
        }
        let r = find_match(&ptl, &mes, &mds, &info(5, 4), &|_, _| false);
        assert_eq!(
            r,
            MatchResult::Matched {
                md: h[1],
                offset: 0,
                mlength: 4
            }
        );
    }

    #[test]
    fn removed_mes_leave_no_empty_buckets() {
        let (mut ptl, mut mes, _mds, _h) = setup(&[(5, 0, 8, MdOptions::OP_PUT)]);
        let (idx, gen, _) = mes
            .iter()
            .next()
            .map(|(i, g, m)| (i, g, m.match_bits))
            .expect("one ME");
        ptl.remove(MeHandle { idx, gen }, 5, 0);
        assert!(ptl.exact.is_empty());
        mes.remove(idx, gen);
    }

    /// Selftest's pattern: every RPC attaches MEs with fresh match bits and
    /// removes them when done, about 16 live at a time. Once warmed up, the
    /// exact-match index must never grow again (its growth was a
    /// load-dependent heap allocation in steady state).
    #[test]
    fn churn_of_fresh_match_bits_never_regrows_the_index() {
        const LIVE: u64 = 16;
        let mut ptl = Portal::default();
        let mut mes: GenSlab<Me> = GenSlab::default();
        let mut live = std::collections::VecDeque::new();
        let mut capacity_after_warmup = None;
        for bits in 0..200_000u64 {
            if live.len() as u64 == LIVE {
                let (h, b) = live.pop_front().expect("a live ME");
                ptl.remove(h, b, 0);
            }
            let (idx, gen) = mes.insert(Me {
                portal: 1,
                match_id: ProcessId::ANY,
                match_bits: bits,
                ignore_bits: 0,
                unlink: Unlink::Retain,
                md: None,
            });
            let h = MeHandle { idx, gen };
            ptl.insert(h, bits, 0, InsPos::After);
            live.push_back((h, bits));
            if bits == 1_000 {
                capacity_after_warmup = Some(ptl.exact.capacity());
            }
            if let Some(c) = capacity_after_warmup {
                assert_eq!(ptl.exact.capacity(), c, "index regrew at insert {bits}");
            }
        }
    }

    #[test]
    fn zero_length_requests_match_an_empty_md() {
        let (ptl, mes, mds, h) = setup(&[(1, 0, 0, MdOptions::OP_PUT)]);
        let r = find_match(&ptl, &mes, &mds, &info(1, 0), &|_, _| false);
        assert_eq!(
            r,
            MatchResult::Matched {
                md: h[0],
                offset: 0,
                mlength: 0
            }
        );
        assert_eq!(
            find_match(&ptl, &mes, &mds, &info(1, 1), &|_, _| false),
            MatchResult::Drop
        );
        assert_eq!(
            find_match(&ptl, &mes, &mds, &info(2, 0), &|_, _| false),
            MatchResult::None
        );
    }
}
