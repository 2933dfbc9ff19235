//! Names: NIDs, networks, process IDs, NID ranges and the module-parameter
//! syntaxes built from them.
//!
//! The NID and network types themselves ([`Nid`], [`NetId`]) live in
//! `lnd-api`, with their text forms (`libcfs_strnid()`/`libcfs_nidstr_r()` in
//! `lnet/lnet/nidstrings.c`); they are re-exported here. This module adds:
//!
//! * [`ProcessId`] (`struct lnet_processid`), printed `12345-10.0.0.1@tcp`;
//! * [`NumExprList`], the numeric expression lists of CPT lists and NID
//!   ranges (`[0-3/2,5]`, `cfs_expr_list_parse()`);
//! * [`NidList`], a parsed NID range list (`cfs_parse_nidlist()`):
//!   `192.168.0.[1-10/2]@tcp 10.0.0.0/8@o2ib *@gni`, with matching
//!   (`cfs_match_nid()`), canonical printing (`cfs_print_nidlist()`) and
//!   bounded expansion into NIDs;
//! * the `networks=`, `ip2nets=` and `routes=` module parameters
//!   (`lnet_parse_networks()`, `lnet_match_networks()`, `lnet_parse_routes()`
//!   in `lnet/lnet/config.c`): [`Networks`], [`Ip2Nets`], [`Routes`].
//!
//! Every parser takes untrusted text: it never panics, bounds what it
//! allocates, and its error names the offending part. Every `Display` prints
//! a form its parser reads back to an equal value.

#![warn(missing_docs)]

use std::fmt;
use std::str::FromStr;

mod config;
mod expr;
mod list;

pub use config::{
    IfaceSpec, Ip2Nets, Ip2NetsEntry, Ipv4Pattern, NetNis, NetSpec, Networks, NiSpec, RouteSpec,
    Routes,
};
pub use expr::{NumExprList, RangeExpr};
pub use list::{AddrRange, NetRange, NidDescr, NidList, NidMask};

pub use lnd_api::nid::{
    lnd_name, lnd_type, AddrFormat, LndInfo, NetId, Nid, NidParseError, NidParseErrorKind,
    NidParseTarget, LNDS,
};

/// The wildcard PID (`LNET_PID_ANY`), printed `LNET_PID_ANY`.
pub const LNET_PID_ANY: u32 = u32::MAX;
/// The PID of kernel LNet and Lustre (`LNET_PID_LUSTRE`): use it for every
/// normal peer.
pub const LNET_PID_LUSTRE: u32 = 12345;
/// Marks a user-space peer (`LNET_PID_USERFLAG`): socklnd gives a peer that
/// connected from an unprivileged port the PID `port | LNET_PID_USERFLAG`.
pub const LNET_PID_USERFLAG: u32 = 0x8000_0000;
/// Reserved high bits of a PID (`LNET_PID_RESERVED`).
pub const LNET_PID_RESERVED: u32 = 0xF000_0000;

/// Default bound of [`NidList::expand`] callers that have no better one:
/// the number of NIDs a peer may have (`LNET_MAX_NIDS_PER_PEER`).
pub const LNET_MAX_NIDS_PER_PEER: usize = 128;

/// Most NIDs [`NidList::expand`] produces whatever limit it is given, so
/// that a careless limit cannot exhaust memory.
pub const MAX_EXPAND: usize = 1 << 20;

/// Longest NID range list [`NidList::parse`] accepts.
pub const MAX_NIDLIST_LEN: usize = 64 << 10;

/// Most routes one `routes=` string may expand to.
pub const MAX_ROUTES: usize = 4096;

/// Longest string the parsers of this module accept (the kernel refuses
/// module-parameter strings over 4 KiB, `LNET_SINGLE_TEXTBUF_NOB`).
pub const MAX_PARAM_LEN: usize = 4096;

/// Errors of this module. Each names the string and the offending part.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NidError {
    /// A NID or network.
    #[error(transparent)]
    Nid(#[from] NidParseError),
    /// A process ID (`12345-10.0.0.1@tcp`).
    #[error("invalid process ID \"{input}\": {reason}")]
    ProcessId {
        /// The whole input.
        input: String,
        /// What is wrong, naming the offending part.
        reason: String,
    },
    /// A numeric expression list (`[0-3/2,5]`).
    #[error("invalid numeric expression \"{input}\": {reason}")]
    Expr {
        /// The whole input.
        input: String,
        /// What is wrong, naming the offending part.
        reason: String,
    },
    /// A NID range list.
    #[error("invalid nidlist \"{input}\": {reason}")]
    NidList {
        /// The whole input.
        input: String,
        /// What is wrong, naming the offending item.
        reason: String,
    },
    /// A NID range list too large (or unbounded) to expand.
    #[error("cannot expand nidlist \"{list}\": {reason}")]
    Expand {
        /// The list, in canonical form.
        list: String,
        /// Why.
        reason: String,
    },
    /// The `networks=` string.
    #[error("invalid networks=\"{input}\": {reason}")]
    Networks {
        /// The whole input.
        input: String,
        /// What is wrong, naming the offending part.
        reason: String,
    },
    /// The `ip2nets=` string.
    #[error("invalid ip2nets=\"{input}\": {reason}")]
    Ip2Nets {
        /// The whole input.
        input: String,
        /// What is wrong, naming the offending entry or pattern.
        reason: String,
    },
    /// No `ip2nets=` entry matches a local address.
    #[error(
        "ip2nets=\"{input}\" matches none of the local IPv4 addresses [{addrs}] \
         (check the address patterns, or use networks= instead)"
    )]
    Ip2NetsNoMatch {
        /// The `ip2nets=` string.
        input: String,
        /// The local addresses tried, comma separated.
        addrs: String,
    },
    /// The `routes=` string.
    #[error("invalid routes=\"{input}\": {reason}")]
    Routes {
        /// The whole input.
        input: String,
        /// What is wrong, naming the offending entry or token.
        reason: String,
    },
}

// ---------------------------------------------------------------------------
// Process IDs
// ---------------------------------------------------------------------------

/// A process: a NID and a PID (`struct lnet_processid`).
///
/// Printed `[U]<pid>-<nid>` (`libcfs_idstr()`): `12345-10.0.0.1@tcp`,
/// `U1023-10.0.0.1@tcp` for a user-space peer ([`LNET_PID_USERFLAG`] set),
/// `LNET_PID_ANY-10.0.0.1@tcp` for the wildcard PID.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct ProcessId {
    /// The NID.
    pub nid: Nid,
    /// The PID (`lnet_pid_t`).
    pub pid: u32,
}

impl ProcessId {
    /// `LNET_PID_ANY-<?>`: any process on any node.
    pub const ANY: ProcessId = ProcessId {
        nid: Nid::ANY,
        pid: LNET_PID_ANY,
    };

    /// A process ID.
    pub const fn new(nid: Nid, pid: u32) -> Self {
        ProcessId { nid, pid }
    }

    /// The Lustre process on `nid` (PID [`LNET_PID_LUSTRE`]).
    pub const fn lustre(nid: Nid) -> Self {
        ProcessId {
            nid,
            pid: LNET_PID_LUSTRE,
        }
    }

    /// Whether the PID marks a user-space peer ([`LNET_PID_USERFLAG`]).
    pub const fn is_userspace(&self) -> bool {
        self.pid != LNET_PID_ANY && self.pid & LNET_PID_USERFLAG != 0
    }
}

impl fmt::Display for ProcessId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.pid == LNET_PID_ANY {
            write!(f, "LNET_PID_ANY-{}", self.nid)
        } else if self.pid & LNET_PID_USERFLAG != 0 {
            write!(f, "U{}-{}", self.pid & !LNET_PID_USERFLAG, self.nid)
        } else {
            write!(f, "{}-{}", self.pid, self.nid)
        }
    }
}

impl FromStr for ProcessId {
    type Err = NidError;

    /// Parses `12345-10.0.0.1@tcp`, `U1023-10.0.0.1@tcp`,
    /// `LNET_PID_ANY-10.0.0.1@tcp`, or a bare NID, which gets
    /// [`LNET_PID_LUSTRE`] (as `libcfs_strid()`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason: String| NidError::ProcessId {
            input: s.to_owned(),
            reason,
        };
        let Some((pid, nid)) = s.split_once('-') else {
            let nid = s.parse::<Nid>().map_err(|e| err(e.to_string()))?;
            return Ok(ProcessId::lustre(nid));
        };
        let pid = if pid == "LNET_PID_ANY" {
            LNET_PID_ANY
        } else if let Some(user) = pid.strip_prefix('U') {
            match parse_decimal(user) {
                Some(p) if p & LNET_PID_USERFLAG == 0 => p | LNET_PID_USERFLAG,
                _ => {
                    return Err(err(format!(
                        "user PID \"{pid}\" is not U followed by a decimal number below 2147483648"
                    )))
                }
            }
        } else {
            parse_decimal(pid).ok_or_else(|| {
                err(format!(
                    "PID \"{pid}\" is not a decimal number up to 4294967295, U<number> or LNET_PID_ANY"
                ))
            })?
        };
        let nid = nid.parse::<Nid>().map_err(|e| err(e.to_string()))?;
        Ok(ProcessId { nid, pid })
    }
}

/// Parses a NID where a wildcard is allowed: `*` (and `<?>`) give
/// [`Nid::ANY`] (`libcfs_stranynid()`).
pub fn parse_any_nid(s: &str) -> Result<Nid, NidError> {
    if s == "*" {
        return Ok(Nid::ANY);
    }
    Ok(s.parse::<Nid>()?)
}

// ---------------------------------------------------------------------------
// Numbers
// ---------------------------------------------------------------------------

/// A non-empty run of ASCII decimal digits that fits a u32.
pub(crate) fn parse_decimal(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// A number the way the kernel's `kstrtouint(s, 0, ..)` reads it: `0x`/`0X`
/// hex, a leading `0` octal, otherwise decimal.
pub(crate) fn parse_uint_base0(s: &str) -> Option<u32> {
    let (digits, radix) = if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        (h, 16)
    } else if s.len() > 1 && s.starts_with('0') {
        (&s[1..], 8)
    } else {
        (s, 10)
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    u32::from_str_radix(digits, radix).ok()
}

/// The names of all known LND types, comma separated.
pub(crate) fn known_names() -> String {
    LNDS.iter().map(|i| i.name).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests;
