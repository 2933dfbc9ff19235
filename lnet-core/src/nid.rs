//! (to be written)
//!
//! Minimal `ProcessId` added by the engine helper until the NID helper lands
//! its full version (Display, parsing).

pub use lnd_api::{NetId, Nid};

/// The well-known PID of kernel LNet and Lustre (`LNET_PID_LUSTRE`).
pub const LNET_PID_LUSTRE: u32 = 12345;
/// Any PID (`LNET_PID_ANY`).
pub const LNET_PID_ANY: u32 = u32::MAX;

/// A process: NID and PID (`struct lnet_processid`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct ProcessId {
    /// The NID.
    pub nid: Nid,
    /// The PID.
    pub pid: u32,
}

impl ProcessId {
    /// Any NID, any PID.
    pub const ANY: ProcessId = ProcessId {
        nid: Nid::ANY,
        pid: LNET_PID_ANY,
    };
}

impl std::fmt::Display for ProcessId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{:?}", self.pid, self.nid)
    }
}
