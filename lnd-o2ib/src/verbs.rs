//! The small verbs interface the LND is written against, shared by the
//! providers (`soft` here, `rdma` over rdma-core).
//!
//! It is the subset of verbs o2iblnd uses: a device (protection domain) on
//! which memory is registered with keys ([`Access`], `lkey`/`rkey`),
//! completion queues ([`Wc`], [`WcStatus`]), reliable-connected queue pairs
//! that post SEND / RDMA WRITE / RDMA READ work requests ([`SendWr`]) and
//! receives ([`RecvWr`]), and the connection exchange with private data (what
//! rdma_cm carries: a CONNREQ in the request, a CONNACK in the accept, a
//! `kib_rej` in a reject).
//!
//! Addresses in a scatter/gather entry ([`Sge`]) and in an RDMA work request
//! are offsets from the start of the registered region (zero-based, as
//! `IBV_ACCESS_ZERO_BASED`): what the LND puts in `rf_addr`.

use std::fmt;

/// Access rights of a memory registration (`IBV_ACCESS_*`).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash, Default)]
pub struct Access(pub u32);

impl Access {
    /// `IBV_ACCESS_LOCAL_WRITE`: receives and READ responses may land here.
    pub const LOCAL_WRITE: Access = Access(1);
    /// `IBV_ACCESS_REMOTE_WRITE`: the peer may RDMA-WRITE here.
    pub const REMOTE_WRITE: Access = Access(2);
    /// `IBV_ACCESS_REMOTE_READ`: the peer may RDMA-READ from here.
    pub const REMOTE_READ: Access = Access(4);

    /// Both sets.
    pub const fn union(self, o: Access) -> Access {
        Access(self.0 | o.0)
    }
    /// Whether every right of `o` is in `self`.
    pub const fn contains(self, o: Access) -> bool {
        self.0 & o.0 == o.0
    }
}

/// A scatter/gather entry: `length` bytes at offset `addr` of the region
/// registered under `lkey`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Sge {
    /// Offset in the region.
    pub addr: u64,
    /// Bytes.
    pub length: u32,
    /// The region's local key.
    pub lkey: u32,
}

/// What a send work request does.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum SendOp {
    /// `IBV_WR_SEND`: consumes one receive at the peer.
    Send,
    /// `IBV_WR_RDMA_WRITE` to `remote_addr` under `rkey`.
    Write {
        /// Remote offset.
        remote_addr: u64,
        /// Remote key.
        rkey: u32,
    },
    /// `IBV_WR_RDMA_READ` from `remote_addr` under `rkey`.
    Read {
        /// Remote offset.
        remote_addr: u64,
        /// Remote key.
        rkey: u32,
    },
}

/// A send work request (`ibv_send_wr`, signaled).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct SendWr {
    /// Returned in the completion.
    pub wr_id: u64,
    /// What to do.
    pub op: SendOp,
    /// Local memory: gathered for SEND/WRITE, scattered for READ.
    pub sge: Vec<Sge>,
}

/// A receive work request (`ibv_recv_wr`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct RecvWr {
    /// Returned in the completion.
    pub wr_id: u64,
    /// Where the message lands.
    pub sge: Sge,
}

/// Completion status (`enum ibv_wc_status`, the values o2iblnd meets).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub enum WcStatus {
    /// `IBV_WC_SUCCESS`.
    Success,
    /// `IBV_WC_LOC_LEN_ERR`: a received message is longer than the buffer.
    LocLenErr,
    /// `IBV_WC_LOC_PROT_ERR`: a local key or range is wrong.
    LocProtErr,
    /// `IBV_WC_WR_FLUSH_ERR`: flushed because the QP is in the error state.
    WrFlushErr,
    /// `IBV_WC_REM_INV_REQ_ERR`: the peer found the request invalid.
    RemInvReqErr,
    /// `IBV_WC_REM_ACCESS_ERR`: bad rkey, out of bounds, or no right.
    RemAccessErr,
    /// `IBV_WC_REM_OP_ERR`: the peer could not complete it.
    RemOpErr,
    /// `IBV_WC_RETRY_EXC_ERR`: transport retries exhausted (peer gone).
    RetryExcErr,
    /// `IBV_WC_RNR_RETRY_EXC_ERR`: the peer had no receive posted.
    RnrRetryExcErr,
}

impl WcStatus {
    /// `ibv_wc_status_str()`'s text.
    pub const fn as_str(self) -> &'static str {
        match self {
            WcStatus::Success => "success",
            WcStatus::LocLenErr => "local length error",
            WcStatus::LocProtErr => "local protection error",
            WcStatus::WrFlushErr => "Work Request Flushed Error",
            WcStatus::RemInvReqErr => "remote invalid request error",
            WcStatus::RemAccessErr => "remote access error",
            WcStatus::RemOpErr => "remote operation error",
            WcStatus::RetryExcErr => "transport retry counter exceeded",
            WcStatus::RnrRetryExcErr => "RNR retry counter exceeded",
        }
    }
}

impl fmt::Display for WcStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a completion completes.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub enum WcOpcode {
    /// A SEND.
    Send,
    /// An RDMA WRITE.
    RdmaWrite,
    /// An RDMA READ.
    RdmaRead,
    /// A receive.
    Recv,
}

/// A work completion (`ibv_wc`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Wc {
    /// The work request's id.
    pub wr_id: u64,
    /// How it ended.
    pub status: WcStatus,
    /// Its kind (for a flushed WR, what was posted).
    pub opcode: WcOpcode,
    /// Bytes received (receives) or transferred.
    pub byte_len: u32,
    /// The QP it belongs to.
    pub qp_num: u32,
}

/// Connection-manager events of a QP, delivered through its CQ.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum CmEvent {
    /// `RDMA_CM_EVENT_DISCONNECTED`: the connection is gone (peer closed,
    /// link lost, or we disconnected).
    Disconnected {
        /// The QP.
        qp_num: u32,
    },
    /// `RDMA_CM_EVENT_TIMEWAIT_EXIT`: the QP left the time-wait state; its
    /// resources may go (o2iblnd then drops the connection's last ref).
    TimewaitExit {
        /// The QP.
        qp_num: u32,
    },
    /// `RDMA_CM_EVENT_DEVICE_REMOVAL`: the HCA is going away; every
    /// connection on it is lost.
    DeviceRemoved {
        /// The QP.
        qp_num: u32,
    },
}

/// Why a verbs call failed (synchronously).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum VerbsError {
    /// The peer rejected the connection; its private data (a `kib_rej`).
    Rejected(Vec<u8>),
    /// No answer or no route (`RDMA_CM_EVENT_UNREACHABLE` / address error).
    Unreachable(String),
    /// A bad argument (private data too long, empty SGE list, ...).
    Invalid(String),
    /// The device or library is missing, or an operation failed.
    Device(String),
}

impl fmt::Display for VerbsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VerbsError::Rejected(p) => {
                write!(f, "connection rejected ({} bytes of private data)", p.len())
            }
            VerbsError::Unreachable(s) => write!(f, "peer unreachable: {s}"),
            VerbsError::Invalid(s) => write!(f, "invalid verbs request: {s}"),
            VerbsError::Device(s) => f.write_str(s),
        }
    }
}

impl std::error::Error for VerbsError {}

/// The queue-pair verbs both providers offer (`soft`: [`crate::soft::SoftQp`];
/// `rdma`: [`crate::sys::rdma::RdmaQp`]).
pub trait VerbsQp: Send + Sync {
    /// The QP number (completions name it).
    fn qp_num(&self) -> u32;
    /// `ibv_post_send` of one signaled work request.
    fn post_send(&self, wr: SendWr) -> Result<(), VerbsError>;
    /// `ibv_post_recv` of one receive.
    fn post_recv(&self, wr: RecvWr) -> Result<(), VerbsError>;
    /// `rdma_disconnect`: the QP goes to the error state, the rest flushed.
    fn disconnect(&self);
}

/// The completion-queue verbs both providers offer.
pub trait VerbsCq: Send + Sync {
    /// `ibv_poll_cq`: up to `max` completions.
    fn poll(&self, max: usize) -> Vec<Wc>;
    /// Waits at most `t` for a completion (or a CM event of the
    /// connection); whether one is there.
    fn wait(&self, t: std::time::Duration) -> bool;
    /// The next CM event of the connection(s) the CQ serves, once
    /// established (`Disconnected`, `TimewaitExit`, `DeviceRemoved`).
    fn poll_event(&self) -> Option<CmEvent>;
}

/// Largest private data of a connect request over rdma_cm (TCP port space).
pub const MAX_REQ_PRIVATE_DATA: usize = 56;
/// Largest private data of an accept (CM REP).
pub const MAX_REP_PRIVATE_DATA: usize = 196;
/// Largest private data of a reject (CM REJ).
pub const MAX_REJ_PRIVATE_DATA: usize = 148;
