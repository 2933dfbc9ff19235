//! Match entries (`struct lnet_me`, `lnet/lnet/lib-me.c`).
//!
//! An ME sits on a portal's match list and says which incoming PUT/GET it
//! accepts (match id, match bits, ignore bits); the MD attached to it says where
//! the data goes. An ME without an MD never matches.

use std::fmt;

use crate::md::{ApiError, MdHandle, Unlink};
use crate::ni::Lnet;
use crate::nid::ProcessId;
use crate::ptl::{InsPos, PortalKind, MAX_PORTALS};

/// Handle of an ME: slab index and generation.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct MeHandle {
    pub(crate) idx: u32,
    pub(crate) gen: u32,
}

impl fmt::Display for MeHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "me {:#x}",
            (u64::from(self.gen) << 32) | u64::from(self.idx)
        )
    }
}

/// An ME (`struct lnet_me`).
#[derive(Debug)]
pub(crate) struct Me {
    pub(crate) portal: u32,
    pub(crate) match_id: ProcessId,
    pub(crate) match_bits: u64,
    pub(crate) ignore_bits: u64,
    pub(crate) unlink: Unlink,
    pub(crate) md: Option<MdHandle>,
}

impl Lnet {
    /// Attaches a match entry to a portal (`LNetMEAttach`).
    ///
    /// The first ME ever attached fixes the portal's match type: unique (no
    /// ignore bits, specific NID and PID) or wildcard; an ME of the other kind
    /// is refused with EPERM afterwards.
    pub fn me_attach(
        &mut self,
        portal: u32,
        match_id: ProcessId,
        match_bits: u64,
        ignore_bits: u64,
        unlink: Unlink,
        pos: InsPos,
    ) -> Result<MeHandle, ApiError> {
        if portal >= MAX_PORTALS {
            return Err(ApiError::InvalidPortal { portal });
        }
        let kind = PortalKind::of(&match_id, ignore_bits);
        let ptl = &mut self.portals[portal as usize];
        match ptl.kind {
            None => ptl.kind = Some(kind),
            Some(k) if k != kind => {
                return Err(ApiError::PortalTypeConflict {
                    portal,
                    kind: k.name(),
                })
            }
            Some(_) => {}
        }
        let me = Me {
            portal,
            match_id,
            match_bits,
            ignore_bits,
            unlink,
            md: None,
        };
        let (idx, gen) = self.mes.insert(me);
        let h = MeHandle { idx, gen };
        self.portals[portal as usize].insert(h, match_bits, ignore_bits, pos);
        Ok(h)
    }

    /// Unlinks an ME (`LNetMEUnlink`); an attached MD is unlinked too (aborted:
    /// an idle one gets an UNLINK event now, a busy one reports `unlinked` on
    /// its last event).
    pub fn me_unlink(&mut self, me: MeHandle) -> Result<(), ApiError> {
        let Some(m) = self.mes.get(me.idx, me.gen) else {
            return Err(ApiError::UnknownMe { me });
        };
        match m.md {
            Some(md) => {
                // Unlinking the MD frees the ME too when its policy is UNLINK;
                // make sure it goes regardless.
                let r = self.md_unlink(md);
                debug_assert!(r.is_ok(), "an ME's MD is live");
                self.me_free(me);
            }
            None => self.me_free(me),
        }
        Ok(())
    }

    /// Removes an ME from its portal and frees it.
    pub(crate) fn me_free(&mut self, me: MeHandle) {
        if let Some(m) = self.mes.remove(me.idx, me.gen) {
            if let Some(p) = self.portals.get_mut(m.portal as usize) {
                p.remove(me, m.match_bits, m.ignore_bits);
            }
        }
    }

    /// `lnet_ptl_detach_md` + the ME's unlink policy.
    pub(crate) fn me_detach_md(&mut self, me: MeHandle) {
        let Some(m) = self.mes.get_mut(me.idx, me.gen) else {
            return;
        };
        m.md = None;
        if m.unlink == Unlink::Unlink {
            self.me_free(me);
        }
    }

    /// Number of MEs that exist.
    pub fn me_count(&self) -> usize {
        self.mes.len()
    }
}
