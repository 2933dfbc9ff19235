//! What the NI needs of a verbs provider, for both providers: memory
//! registrations described the same way ([`Reg`]: the local pieces as
//! SGEs, the remote view as one key over fragments), a connection's QP as
//! a [`VerbsQp`](crate::verbs::VerbsQp), and where its completions are waited for.
//!
//! The soft provider registers a span as one zero-based region (offsets
//! from 0 under one key) and has one CQ per NI, whose completions the NI's
//! handler takes on the QP thread that made them.
//! The rdma provider registers each contiguous piece at its own virtual
//! address (one MR per piece, or the device's implicit on-demand-paging MR
//! for a multi-piece span that a peer must reach under one key) and has a
//! CQ per connection, all on the device's one completion channel, and the
//! established connections' rdma_cm ids on its one CM channel: the NI's
//! poller serves them all (as a kernel o2iblnd scheduler serves its
//! connections' CQs), handing every completion and CM event to the same
//! NI code as on soft.

use std::sync::atomic::{AtomicU64, Ordering};

use lnd_api::PayloadSpan;

use crate::soft::{SoftCq, SoftDevice, SoftMr};
use crate::sys::rdma::{DeviceLimits, RdmaDevice, RdmaMr, MAX_WR_SGE};
use crate::verbs::{Access, Sge, VerbsError};
use crate::wire::RdmaFrag;

/// The NI's device: which provider, with its per-NI objects.
pub(crate) enum Provider {
    /// The soft provider: its device and the NI's one CQ.
    Soft {
        /// Protection domain and key table.
        dev: SoftDevice,
        /// Every QP's completions and CM events.
        cq: SoftCq,
    },
    /// The rdma provider: the device (PD, completion and CM channels) the
    /// listener is bound on; each connection has its own CQ on the
    /// device's channel.
    Rdma {
        /// The device's PD, shared by every QP and MR of the NI.
        dev: RdmaDevice,
        /// `ibv_reg_mr` calls made (the soft device counts its own).
        regs: AtomicU64,
    },
}

/// What keeps a registration alive.
enum Keep {
    Soft(#[allow(dead_code)] SoftMr),
    Rdma(#[allow(dead_code)] Vec<RdmaMr>),
}

/// A registration of a span as the NI uses it.
pub(crate) struct Reg {
    /// The memory of an implicit-MR registration, held while registered
    /// (the peer may write there while keys are out); an MR (soft or
    /// rdma) holds its memory itself, and only there, so that the last
    /// holder can be told.
    mem: Option<PayloadSpan>,
    /// The MRs.
    _keep: Keep,
    /// Whether the memory is held by this registration alone when
    /// `mem` has no other holder (soft: through its key table).
    soft: Option<(SoftDevice, u32)>,
    /// The key a peer uses (one for every fragment).
    pub(crate) rkey: u32,
    /// The span's bytes in order as local SGEs (address, length, lkey).
    pub(crate) local: Vec<Sge>,
}

impl Reg {
    /// The remote view of the first `nob` bytes: fragments at the
    /// addresses a peer writes to under [`Reg::rkey`].
    pub(crate) fn remote(&self, nob: usize) -> Vec<RdmaFrag> {
        self.sges(0, nob)
            .into_iter()
            .map(|s| RdmaFrag {
                nob: s.length,
                addr: s.addr,
            })
            .collect()
    }

    /// SGEs covering bytes `off..off + n` of the span (one per piece the
    /// range touches).
    pub(crate) fn sges(&self, off: usize, n: usize) -> Vec<Sge> {
        let (mut at, end) = (0usize, off + n);
        let mut out = Vec::new();
        for s in &self.local {
            let (lo, hi) = (at, at + s.length as usize);
            at = hi;
            let (a, b) = (lo.max(off), hi.min(end));
            if a < b {
                out.push(Sge {
                    addr: s.addr + (a - lo) as u64,
                    length: (b - a) as u32,
                    lkey: s.lkey,
                });
            }
            if at >= end {
                break;
            }
        }
        out
    }

    /// Whether the memory's owner let it go (the registration is its last
    /// holder): a cached registration may then be dropped.
    pub(crate) fn orphaned(&self) -> bool {
        match &self.soft {
            Some((dev, key)) => dev.mr_orphaned(*key),
            None => match &self._keep {
                // Each MR holds the span too: unique among the MRs' shared
                // copy and ours means nobody else holds it.
                Keep::Rdma(mrs) if !mrs.is_empty() => mrs[0].memory().is_unique(),
                _ => self.mem.as_ref().is_none_or(PayloadSpan::is_unique),
            },
        }
    }
}

impl Provider {
    /// Registers `mem` with `access`. A span a peer reaches (`REMOTE_*`)
    /// gets one key over all its pieces; a local one (sources of RDMA
    /// WRITEs and SENDs, receive buffers) may have a key per piece.
    pub(crate) fn register(&self, mem: &PayloadSpan, access: Access) -> Result<Reg, VerbsError> {
        match self {
            Provider::Soft { dev, .. } => {
                let mr = dev.reg_mr(mem.clone(), access);
                let key = mr.lkey();
                Ok(Reg {
                    mem: None,
                    soft: Some((dev.clone(), key)),
                    rkey: mr.rkey(),
                    local: vec![Sge {
                        addr: 0,
                        length: mem.len() as u32,
                        lkey: key,
                    }],
                    _keep: Keep::Soft(mr),
                })
            }
            Provider::Rdma { dev, regs, .. } => {
                let remote =
                    access.contains(Access::REMOTE_WRITE) || access.contains(Access::REMOTE_READ);
                let lens: Vec<u32> = mem.pieces().map(|p| p.len() as u32).collect();
                let (mrs, rkey, local) = if remote && lens.len() > 1 {
                    let (mrs, desc) =
                        dev.register(mem, access, crate::wire::MAX_RDMA_FRAGS as usize)?;
                    let lkey = dev.implicit_mr().map_err(VerbsError::Device)?.0;
                    let local = desc
                        .frags
                        .iter()
                        .map(|f| Sge {
                            addr: f.addr,
                            length: f.nob,
                            lkey,
                        })
                        .collect();
                    (mrs, desc.key, local)
                } else {
                    let mrs = dev.reg_mr(mem, access)?;
                    let local = mrs
                        .iter()
                        .zip(&lens)
                        .map(|(m, &n)| Sge {
                            addr: m.addr(),
                            length: n,
                            lkey: m.lkey(),
                        })
                        .collect();
                    let rkey = mrs.first().map(RdmaMr::rkey).unwrap_or(0);
                    (mrs, rkey, local)
                };
                regs.fetch_add(mrs.len() as u64, Ordering::Relaxed);
                Ok(Reg {
                    mem: mrs.is_empty().then(|| mem.clone()),
                    soft: None,
                    rkey,
                    local,
                    _keep: Keep::Rdma(mrs),
                })
            }
        }
    }

    /// The device's limits (rdma: `ibv_query_device`; soft: none).
    pub(crate) fn limits(&self) -> Option<DeviceLimits> {
        match self {
            Provider::Soft { .. } => None,
            Provider::Rdma { dev, .. } => Some(dev.limits()),
        }
    }

    /// SGEs per work request: [`MAX_WR_SGE`], within the device's
    /// `max_sge`.
    pub(crate) fn wr_sge(&self) -> u32 {
        self.limits()
            .map_or(MAX_WR_SGE, |l| l.max_sge.clamp(1, MAX_WR_SGE))
    }

    /// Registrations made so far (`ibv_reg_mr` calls).
    pub(crate) fn registrations(&self) -> u64 {
        match self {
            Provider::Soft { dev, .. } => dev.registrations(),
            Provider::Rdma { regs, .. } => regs.load(Ordering::Relaxed),
        }
    }
}
