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

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

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

// ---------------------------------------------------------------------------
// Numbers
// ---------------------------------------------------------------------------

/// A non-empty run of ASCII decimal digits that fits a u32.
fn parse_decimal(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// A number the way the kernel's `kstrtouint(s, 0, ..)` reads it: `0x`/`0X`
/// hex, a leading `0` octal, otherwise decimal.
fn parse_uint_base0(s: &str) -> Option<u32> {
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

// ---------------------------------------------------------------------------
// Numeric expression lists
// ---------------------------------------------------------------------------

/// One element of a [`NumExprList`]: `lo`, `lo-hi` or `lo-hi/stride`
/// (`struct cfs_range_expr`). Invariant: `lo <= hi`, `stride >= 1`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct RangeExpr {
    lo: u32,
    hi: u32,
    stride: u32,
}

impl RangeExpr {
    /// `lo-hi/stride`; `None` unless `lo <= hi` and `stride >= 1`.
    pub const fn new(lo: u32, hi: u32, stride: u32) -> Option<Self> {
        if lo > hi || stride == 0 {
            None
        } else if lo == hi {
            Some(RangeExpr::single(lo))
        } else {
            Some(RangeExpr { lo, hi, stride })
        }
    }

    /// The single value `v`.
    pub const fn single(v: u32) -> Self {
        RangeExpr {
            lo: v,
            hi: v,
            stride: 1,
        }
    }

    /// Lowest value.
    pub const fn lo(&self) -> u32 {
        self.lo
    }

    /// Highest bound (the highest value when `(hi - lo)` is a multiple of the stride).
    pub const fn hi(&self) -> u32 {
        self.hi
    }

    /// Step between values.
    pub const fn stride(&self) -> u32 {
        self.stride
    }

    /// Whether `v` is one of the values: `lo <= v <= hi` and `(v - lo) % stride == 0`.
    pub const fn matches(&self, v: u32) -> bool {
        v >= self.lo && v <= self.hi && (v - self.lo) % self.stride == 0
    }

    /// Highest value.
    pub const fn max(&self) -> u32 {
        self.hi - (self.hi - self.lo) % self.stride
    }

    /// Number of values.
    pub const fn count(&self) -> u64 {
        (self.hi - self.lo) as u64 / self.stride as u64 + 1
    }

    /// The values, ascending.
    pub fn values(&self) -> impl Iterator<Item = u32> + Clone {
        let (lo, stride) = (self.lo as u64, self.stride as u64);
        (0..self.count()).map(move |i| (lo + i * stride) as u32)
    }

    /// Writes the element; `bracketed` when inside a `[...]` list already.
    fn write(&self, f: &mut fmt::Formatter<'_>, bracketed: bool) -> fmt::Result {
        let (open, close) = if bracketed { ("", "") } else { ("[", "]") };
        if self.lo == self.hi {
            write!(f, "{}", self.lo)
        } else if self.stride == 1 {
            write!(f, "{open}{}-{}{close}", self.lo, self.hi)
        } else {
            write!(f, "{open}{}-{}/{}{close}", self.lo, self.hi, self.stride)
        }
    }
}

/// A numeric expression list (`struct cfs_expr_list`): `n`, `*`, or
/// `[e1,e2,...]` with each element `n`, `a-b`, `a-b/s` or `*` (semantics.md
/// §14.3). Used for the octets and numbers of NID ranges and for CPT lists.
///
/// Numbers are read as the kernel's `kstrtouint(.., 0, ..)` does (`0x` hex,
/// leading-`0` octal); `*` is the whole allowed range. Printed as
/// `cfs_expr_list_print()` does: one element without brackets unless it is a
/// range (`5`, `[1-4]`, `[0-7/2]`), several in brackets (`[1,3-5]`).
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct NumExprList {
    exprs: Vec<RangeExpr>,
}

impl NumExprList {
    /// The list of one element.
    pub fn from_expr(e: RangeExpr) -> Self {
        NumExprList { exprs: vec![e] }
    }

    /// A list of elements; `None` when `exprs` is empty.
    pub fn from_exprs(exprs: Vec<RangeExpr>) -> Option<Self> {
        (!exprs.is_empty()).then_some(NumExprList { exprs })
    }

    /// Parses a list whose values may be any u32.
    pub fn parse(s: &str) -> Result<Self, NidError> {
        Self::parse_bounded(s, 0, u32::MAX)
    }

    /// Parses a list whose values must lie in `min..=max` (`*` means all of it).
    pub fn parse_bounded(s: &str, min: u32, max: u32) -> Result<Self, NidError> {
        parse_expr_list(s, min, max, true).map_err(|reason| NidError::Expr {
            input: s.to_owned(),
            reason,
        })
    }

    /// The elements, in the order written.
    pub fn exprs(&self) -> &[RangeExpr] {
        &self.exprs
    }

    /// Whether `v` matches any element (`cfs_expr_list_match()`).
    pub fn matches(&self, v: u32) -> bool {
        self.exprs.iter().any(|e| e.matches(v))
    }

    /// Number of values, counting repeats (saturating).
    pub fn count(&self) -> u64 {
        self.exprs
            .iter()
            .fold(0u64, |n, e| n.saturating_add(e.count()))
    }

    /// Highest value of any element.
    pub fn max_value(&self) -> u32 {
        self.exprs.iter().map(RangeExpr::max).max().unwrap_or(0)
    }

    /// The values, element by element in the order written, each element
    /// ascending (`cfs_expr_list_values()`); repeats are kept.
    pub fn values(&self) -> impl Iterator<Item = u32> + Clone + '_ {
        self.exprs.iter().flat_map(|e| e.values())
    }

    /// Writes the list always in brackets (`[5]`, `[0-3]`, `[1,3]`), the form
    /// CPT lists take in `networks=`.
    pub fn fmt_bracketed(&self) -> impl fmt::Display + '_ {
        Bracketed(self)
    }
}

struct Bracketed<'a>(&'a NumExprList);

impl fmt::Display for Bracketed<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (i, e) in self.0.exprs.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            e.write(f, true)?;
        }
        f.write_str("]")
    }
}

impl fmt::Display for NumExprList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.exprs.as_slice() {
            [one] => one.write(f, false),
            _ => Bracketed(self).fmt(f),
        }
    }
}

impl FromStr for NumExprList {
    type Err = NidError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        NumExprList::parse(s)
    }
}

/// `cfs_expr_list_parse()`: `s` is `n`, `*` or `[e,...]`; with `allow_star`
/// false, `*` is refused (CPT lists, where the bound is not known yet).
fn parse_expr_list(s: &str, min: u32, max: u32, allow_star: bool) -> Result<NumExprList, String> {
    let s = s.trim();
    if let Some(inner) = s.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        let mut exprs = Vec::new();
        for item in inner.split(',') {
            exprs.push(parse_range_expr(item.trim(), min, max, true, allow_star)?);
        }
        return Ok(NumExprList { exprs });
    }
    if s.starts_with('[') || s.ends_with(']') {
        return Err(format!("\"{s}\" has unbalanced brackets"));
    }
    Ok(NumExprList {
        exprs: vec![parse_range_expr(s, min, max, false, allow_star)?],
    })
}

/// `cfs_range_expr_parse()`.
fn parse_range_expr(
    s: &str,
    min: u32,
    max: u32,
    bracketed: bool,
    allow_star: bool,
) -> Result<RangeExpr, String> {
    let num = |t: &str| -> Result<u32, String> {
        let t = t.trim();
        let v = parse_uint_base0(t).ok_or_else(|| {
            if t.is_empty() {
                format!("element \"{s}\" is missing a number")
            } else {
                format!("\"{t}\" in \"{s}\" is not a number")
            }
        })?;
        if v < min || v > max {
            return Err(format!("{v} in \"{s}\" is out of range {min}..{max}"));
        }
        Ok(v)
    };
    if s.is_empty() {
        return Err("empty element (write numbers between the commas)".to_owned());
    }
    if s == "*" {
        if !allow_star {
            return Err("\"*\" is not allowed here; write the values, e.g. [0-3]".to_owned());
        }
        return Ok(RangeExpr {
            lo: min,
            hi: max,
            stride: 1,
        });
    }
    if let Some(v) = parse_uint_base0(s) {
        if v < min || v > max {
            return Err(format!("{v} is out of range {min}..{max}"));
        }
        return Ok(RangeExpr::single(v));
    }
    if !bracketed {
        return Err(format!(
            "\"{s}\" is not a number; ranges go in brackets, e.g. [1-4] or [0-6/2]"
        ));
    }
    let Some((lo, rest)) = s.split_once('-') else {
        return Err(format!(
            "\"{s}\" is not a number or a range a-b or a-b/step"
        ));
    };
    let lo = num(lo)?;
    let (hi, stride) = match rest.split_once('/') {
        Some((hi, st)) => {
            let st = st.trim();
            let stride = parse_uint_base0(st)
                .filter(|&v| v >= 1)
                .ok_or_else(|| format!("step \"{st}\" in \"{s}\" is not a number of at least 1"))?;
            (num(hi)?, stride)
        }
        None => (num(rest)?, 1),
    };
    RangeExpr::new(lo, hi, stride)
        .ok_or_else(|| format!("range \"{s}\" is in the wrong order ({lo} > {hi})"))
}

// ---------------------------------------------------------------------------
// NID range lists
// ---------------------------------------------------------------------------

/// An IP network given by address and prefix length in a [`NidList`]
/// (`struct nidmask`): `10.0.0.0/8@tcp`, `fd00::/64@tcp1`, `fd00::1@tcp`
/// (an IPv6 address alone is a /128).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct NidMask {
    addr: IpAddr,
    prefix_len: u8,
}

impl NidMask {
    /// A mask; `None` unless the prefix length is 1..=32 (IPv4) or 1..=128 (IPv6).
    pub fn new(addr: IpAddr, prefix_len: u8) -> Option<Self> {
        let max = if addr.is_ipv4() { 32 } else { 128 };
        (1..=max)
            .contains(&prefix_len)
            .then_some(NidMask { addr, prefix_len })
    }

    /// The address as written (not masked).
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length.
    pub fn prefix_len(&self) -> u8 {
        self.prefix_len
    }

    /// Whether a NID address is in this network: IPv4 masks match 4-byte
    /// addresses, IPv6 masks 16-byte ones (`libcfs_ip_in_netmask()`).
    pub fn matches_addr(&self, nid: &Nid) -> bool {
        match self.addr {
            IpAddr::V4(a) => match nid.addr4() {
                Some(n) if nid.addr_len() == 4 => {
                    let m = u32::MAX << (32 - u32::from(self.prefix_len));
                    n & m == u32::from(a) & m
                }
                _ => false,
            },
            IpAddr::V6(a) => {
                if nid.addr_len() != 16 {
                    return false;
                }
                let m = u128::MAX << (128 - u32::from(self.prefix_len));
                u128::from_be_bytes(nid.addr) & m == u128::from(a) & m
            }
        }
    }

    /// Number of addresses in the network.
    fn count(&self) -> u128 {
        let bits = if self.addr.is_ipv4() { 32 } else { 128 };
        1u128 << (bits - u32::from(self.prefix_len))
    }

    /// The `i`th address of the network, as a NID on `net`.
    fn nth(&self, net: NetId, i: u128) -> Nid {
        match self.addr {
            IpAddr::V4(a) => {
                let m = u32::MAX << (32 - u32::from(self.prefix_len));
                Nid::new4(net, (u32::from(a) & m) | i as u32)
            }
            IpAddr::V6(a) => {
                let m = u128::MAX << (128 - u32::from(self.prefix_len));
                Nid::new16(net, ((u128::from(a) & m) | i).to_be_bytes())
            }
        }
    }
}

impl fmt::Display for NidMask {
    /// `10.0.0.0/8`, `fd00::/64`; the prefix is omitted only for an IPv6 /128.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.addr {
            IpAddr::V6(a) if self.prefix_len == 128 => write!(f, "{a}"),
            a => write!(f, "{a}/{}", self.prefix_len),
        }
    }
}

/// An address range of a [`NidList`] entry (`struct addrrange`).
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub enum AddrRange {
    /// Four octet lists of an IPv4 address (`192.168.[0-3].*`), values 0..=255.
    Ipv4(Box<[NumExprList; 4]>),
    /// One list of 32-bit numbers (`[0-255/16]` on `kfi`).
    Number(NumExprList),
}

impl AddrRange {
    /// Whether a NID's address is in the range: IPv4 ranges octet by octet
    /// (`cfs_ip_addr_match()`), numeric ranges as a whole
    /// (`libcfs_num_match()`); 16-byte addresses never match.
    pub fn matches_addr(&self, nid: &Nid) -> bool {
        let Some(a) = nid.addr4().filter(|_| nid.addr_len() == 4) else {
            return false;
        };
        match self {
            AddrRange::Ipv4(o) => o
                .iter()
                .zip(a.to_be_bytes())
                .all(|(l, b)| l.matches(u32::from(b))),
            AddrRange::Number(l) => l.matches(a),
        }
    }

    /// Number of addresses (saturating; repeats counted).
    fn count(&self) -> u128 {
        match self {
            AddrRange::Ipv4(o) => o.iter().map(|l| u128::from(l.count())).product(),
            AddrRange::Number(l) => u128::from(l.count()),
        }
    }

    /// Appends the addresses to `out` as NIDs on `net`, the leftmost octet
    /// varying slowest.
    fn expand_into(&self, net: NetId, out: &mut Vec<Nid>) {
        match self {
            AddrRange::Number(l) => out.extend(l.values().map(|a| Nid::new4(net, a))),
            AddrRange::Ipv4(o) => {
                for a in o[0].values() {
                    for b in o[1].values() {
                        for c in o[2].values() {
                            for d in o[3].values() {
                                out.push(Nid::new4(net, (a << 24) | (b << 16) | (c << 8) | d));
                            }
                        }
                    }
                }
            }
        }
    }
}

impl fmt::Display for AddrRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AddrRange::Number(l) => l.fmt(f),
            AddrRange::Ipv4(o) => write!(f, "{}.{}.{}.{}", o[0], o[1], o[2], o[3]),
        }
    }
}

/// The ranges of one network in a [`NidList`] (`struct nidrange`): all the
/// items naming that network, merged.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct NetRange {
    net: NetId,
    all: bool,
    masks: Vec<NidMask>,
    addrs: Vec<AddrRange>,
}

impl NetRange {
    /// The network.
    pub fn net(&self) -> NetId {
        self.net
    }

    /// Whether every NID of the network matches (`*@net`).
    pub fn is_all(&self) -> bool {
        self.all
    }

    /// The IP networks, in the order written.
    pub fn masks(&self) -> &[NidMask] {
        &self.masks
    }

    /// The address ranges, in the order written.
    pub fn addr_ranges(&self) -> &[AddrRange] {
        &self.addrs
    }

    /// Whether `nid` is on this network and in one of its ranges.
    pub fn matches(&self, nid: &Nid) -> bool {
        nid.net() == self.net
            && !nid.is_any()
            && (self.all
                || self.masks.iter().any(|m| m.matches_addr(nid))
                || self.addrs.iter().any(|a| a.matches_addr(nid)))
    }

    /// Number of NIDs, `None` for `*@net`.
    fn count(&self) -> Option<u128> {
        if self.all {
            return None;
        }
        let m = self
            .masks
            .iter()
            .fold(0u128, |n, m| n.saturating_add(m.count()));
        Some(
            self.addrs
                .iter()
                .fold(m, |n, a| n.saturating_add(a.count())),
        )
    }
}

impl fmt::Display for NetRange {
    /// `cfs_print_nidlist()` for one network: `*@net`, or each mask then each
    /// address range followed by `@net`, space separated.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.all {
            return write!(f, "*@{}", self.net);
        }
        let items = self.masks.iter().map(|m| m as &dyn fmt::Display);
        let items = items.chain(self.addrs.iter().map(|a| a as &dyn fmt::Display));
        for (i, item) in items.enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{item}@{}", self.net)?;
        }
        Ok(())
    }
}

/// A NID range list (`cfs_parse_nidlist()`, semantics.md §14.2): items
/// separated by spaces, each `<addrrange>@<net>` where the address range is
///
/// * `*`: every NID of the network;
/// * an IPv4 range, four octet lists: `192.168.0.[1-10/2]`, `10.[1,3].0.*`;
/// * a number list on a numeric LND: `[0-255/16]@kfi`, `12@gni`;
/// * an IP network: `192.168.0.0/24` (IPv4 needs the prefix length),
///   `fd00::/64`, or an IPv6 address alone (a /128).
///
/// Items of the same network are merged into one [`NetRange`]; `*` absorbs
/// the others. Printed canonically as `cfs_print_nidlist()` does (networks
/// in order of first appearance; per network masks first, then ranges), and
/// an IPv4 `/32` is read as the address itself.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct NidList {
    nets: Vec<NetRange>,
}

impl NidList {
    /// Parses a NID range list.
    pub fn parse(s: &str) -> Result<Self, NidError> {
        let err = |reason: String| NidError::NidList {
            input: s.to_owned(),
            reason,
        };
        if s.len() > MAX_PARAM_LEN {
            return Err(err(format!("longer than {MAX_PARAM_LEN} characters")));
        }
        let mut list = NidList { nets: Vec::new() };
        for item in s.split_ascii_whitespace() {
            list.add_item(item)
                .map_err(|r| err(format!("item \"{item}\": {r}")))?;
        }
        if list.nets.is_empty() {
            return Err(err(
                "no items (expected e.g. 192.168.0.[1-10]@tcp or *@o2ib)".to_owned(),
            ));
        }
        Ok(list)
    }

    /// The per-network ranges, in order of first appearance.
    pub fn nets(&self) -> &[NetRange] {
        &self.nets
    }

    /// Whether `nid` matches any item (`cfs_match_nid()`). [`Nid::ANY`]
    /// never matches.
    pub fn matches(&self, nid: &Nid) -> bool {
        self.nets.iter().any(|r| r.matches(nid))
    }

    /// Number of NIDs the list names (repeats counted, saturating), or
    /// `None` when it has a `*@net` item.
    pub fn count(&self) -> Option<u128> {
        self.nets
            .iter()
            .try_fold(0u128, |n, r| Some(n.saturating_add(r.count()?)))
    }

    /// The NIDs the list names, network by network, per network masks first
    /// then ranges, each range with its leftmost part varying slowest
    /// (`6.6.[6-7].[0-4/2]@tcp` gives 6.6.6.0, 6.6.6.2, 6.6.6.4, 6.6.7.0, ...).
    /// Repeats are kept. Fails, allocating nothing, when the list has a
    /// `*@net` item or names more than `limit` NIDs.
    pub fn expand(&self, limit: usize) -> Result<Vec<Nid>, NidError> {
        let err = |reason: String| NidError::Expand {
            list: self.to_string(),
            reason,
        };
        let Some(n) = self.count() else {
            return Err(err("\"*@<net>\" names every NID of a network".to_owned()));
        };
        if n > limit as u128 {
            return Err(err(format!(
                "names {n} NIDs, more than the limit of {limit}"
            )));
        }
        let mut out = Vec::with_capacity(n as usize);
        for r in &self.nets {
            for m in &r.masks {
                out.extend((0..m.count()).map(|i| m.nth(r.net, i)));
            }
            for a in &r.addrs {
                a.expand_into(r.net, &mut out);
            }
        }
        Ok(out)
    }

    /// The range of `net`, created at the end if absent.
    fn net_range(&mut self, net: NetId) -> &mut NetRange {
        let i = match self.nets.iter().position(|r| r.net == net) {
            Some(i) => i,
            None => {
                self.nets.push(NetRange {
                    net,
                    all: false,
                    masks: Vec::new(),
                    addrs: Vec::new(),
                });
                self.nets.len() - 1
            }
        };
        &mut self.nets[i]
    }

    /// `parse_nidrange()`: one `<addrrange>@<net>` item.
    fn add_item(&mut self, item: &str) -> Result<(), String> {
        let Some((addr, net_s)) = item.split_once('@') else {
            return Err("missing \"@<net>\" (e.g. 10.0.0.[1-4]@tcp)".to_owned());
        };
        let net = net_s.parse::<NetId>().map_err(|e| e.kind.to_string())?;
        let Some(info) = net.lnd_info() else {
            return Err(format!(
                "network \"{net_s}\" is not of a known type (known: {})",
                known_names()
            ));
        };
        if addr.is_empty() {
            return Err("address range before \"@\" is empty".to_owned());
        }
        if addr == "*" {
            let r = self.net_range(net);
            r.all = true;
            r.masks.clear();
            r.addrs.clear();
            return Ok(());
        }
        let slash_outside = addr.rfind('/').is_some_and(|i| !addr[i..].contains(']'));
        let range = if addr.contains(':') || slash_outside {
            if info.addr_format != AddrFormat::Ip {
                return Err(format!(
                    "IP networks are not allowed on {} (it has numeric addresses)",
                    info.name
                ));
            }
            match parse_nidmask(addr, info)? {
                Ok(mask) => {
                    let r = self.net_range(net);
                    if !r.all {
                        r.masks.push(mask);
                    }
                    return Ok(());
                }
                Err(exact) => exact,
            }
        } else {
            match info.addr_format {
                AddrFormat::Ip => parse_ipv4_range(addr)?,
                _ => AddrRange::Number(
                    parse_expr_list(addr, 0, u32::MAX, true).map_err(|r| format!("address {r}"))?,
                ),
            }
        };
        let r = self.net_range(net);
        if !r.all {
            r.addrs.push(range);
        }
        Ok(())
    }
}

impl fmt::Display for NidList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.nets.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            r.fmt(f)?;
        }
        Ok(())
    }
}

impl FromStr for NidList {
    type Err = NidError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        NidList::parse(s)
    }
}

/// The names of all known LND types, comma separated.
fn known_names() -> String {
    LNDS.iter().map(|i| i.name).collect::<Vec<_>>().join(", ")
}

/// `cfs_ip_addr_parse()`: four octet lists separated by dots.
fn parse_ipv4_range(s: &str) -> Result<AddrRange, String> {
    let parts: Vec<&str> = s.split('.').collect();
    if parts.len() != 4 {
        return Err(format!(
            "address range \"{s}\" does not have four octets (e.g. 192.168.0.[1-10])"
        ));
    }
    let mut octets = Vec::with_capacity(4);
    for p in parts {
        octets.push(parse_expr_list(p, 0, 255, true).map_err(|r| format!("octet {r}"))?);
    }
    let octets: [NumExprList; 4] = octets.try_into().map_err(|_| "four octets".to_owned())?;
    Ok(AddrRange::Ipv4(Box::new(octets)))
}

/// `parse_nidmask()`. An IPv4 /32 is returned as the exact address range
/// (`Ok(Err(range))`), the form `cfs_print_nidlist()` prints it in.
fn parse_nidmask(s: &str, info: &LndInfo) -> Result<Result<NidMask, AddrRange>, String> {
    let (addr, len) = match s.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (s, None),
    };
    let ip: IpAddr = if addr.contains(':') {
        let a =
            Ipv6Addr::from_str(addr).map_err(|_| format!("\"{addr}\" is not an IPv6 address"))?;
        if !info.ipv6 {
            return Err(format!(
                "IPv6 address \"{addr}\" on {}, which takes IPv4 only",
                info.name
            ));
        }
        IpAddr::V6(a)
    } else {
        IpAddr::V4(
            Ipv4Addr::from_str(addr).map_err(|_| format!("\"{addr}\" is not an IPv4 address"))?,
        )
    };
    let max: u8 = if ip.is_ipv4() { 32 } else { 128 };
    let prefix_len = match len {
        None if ip.is_ipv4() => {
            return Err(format!(
                "IPv4 network \"{s}\" needs a prefix length (e.g. {addr}/24)"
            ))
        }
        None => 128,
        Some(l) => parse_decimal(l)
            .and_then(|v| u8::try_from(v).ok())
            .filter(|v| (1..=max).contains(v))
            .ok_or_else(|| format!("prefix length \"{l}\" is not a number from 1 to {max}"))?,
    };
    match ip {
        IpAddr::V4(a) if prefix_len == 32 => {
            let o = a
                .octets()
                .map(|b| NumExprList::from_expr(RangeExpr::single(u32::from(b))));
            Ok(Err(AddrRange::Ipv4(Box::new(o))))
        }
        _ => Ok(Ok(NidMask {
            addr: ip,
            prefix_len,
        })),
    }
}

// ---------------------------------------------------------------------------
// networks=
// ---------------------------------------------------------------------------

/// One interface of a [`NetSpec`]: `eth0` or `eth0[0,1]`.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct IfaceSpec {
    /// Interface name.
    pub name: String,
    /// CPU partitions of this NI, if given.
    pub cpts: Option<NumExprList>,
}

/// One entry of `networks=`: `<net>[(<iface>[<cpts>],...)][<cpts>]`.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct NetSpec {
    /// The network.
    pub net: NetId,
    /// The interfaces, empty when none is given (the LND picks one).
    pub interfaces: Vec<IfaceSpec>,
    /// CPU partitions for the NIs that have none of their own.
    pub cpts: Option<NumExprList>,
}

/// One NI to start, resolved from [`Networks`].
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct NiSpec {
    /// The interface; `None`: the LND chooses the first suitable one.
    pub interface: Option<String>,
    /// The CPU partitions; `None`: the LND's NUMA default.
    pub cpts: Option<NumExprList>,
}

/// The NIs of one network, resolved from [`Networks`].
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct NetNis {
    /// The network.
    pub net: NetId,
    /// Its NIs, in the order given.
    pub nis: Vec<NiSpec>,
}

/// The `networks=` module parameter (semantics.md §15.1,
/// `lnet_parse_networks()`): `tcp0(eth0,eth1)[0],o2ib1(ib0[1])`.
///
/// Entries are kept as written; [`Networks::nets`] merges them into NIs per
/// network. Parsing checks everything `lnet_parse_networks()` checks: known
/// network types, balanced `()` and `[]`, non-empty interface names, no
/// interface twice on a network, and valid CPT lists (`*` is refused: write
/// the partitions). Whitespace around tokens is allowed; anything left over
/// after an entry is an error (the kernel skips it silently).
#[derive(Clone, PartialEq, Eq, Hash, Debug, Default)]
pub struct Networks {
    /// The entries, in the order written, `lo` included.
    pub entries: Vec<NetSpec>,
}

impl Networks {
    /// Parses a `networks=` string.
    pub fn parse(s: &str) -> Result<Self, NidError> {
        parse_networks(s).map_err(|reason| NidError::Networks {
            input: s.to_owned(),
            reason,
        })
    }

    /// The NIs to start, grouped by network in order of first appearance:
    /// `lo` is dropped (it always exists), an entry without interfaces gives
    /// one NI without interface, and a net-level CPT list applies to the
    /// interfaces that have none.
    pub fn nets(&self) -> Vec<NetNis> {
        let mut out: Vec<NetNis> = Vec::new();
        for e in self
            .entries
            .iter()
            .filter(|e| e.net.lnd_type != lnd_type::LOLND)
        {
            let nis: Vec<NiSpec> = if e.interfaces.is_empty() {
                vec![NiSpec {
                    interface: None,
                    cpts: e.cpts.clone(),
                }]
            } else {
                e.interfaces
                    .iter()
                    .map(|i| NiSpec {
                        interface: Some(i.name.clone()),
                        cpts: i.cpts.clone().or_else(|| e.cpts.clone()),
                    })
                    .collect()
            };
            match out.iter_mut().find(|n| n.net == e.net) {
                Some(n) => n.nis.extend(nis),
                None => out.push(NetNis { net: e.net, nis }),
            }
        }
        out
    }

    /// Checks every CPT list against the number of CPU partitions.
    pub fn check_cpts(&self, ncpt: u32) -> Result<(), NidError> {
        for e in &self.entries {
            let lists = e
                .cpts
                .iter()
                .chain(e.interfaces.iter().filter_map(|i| i.cpts.as_ref()));
            for l in lists {
                if l.max_value() >= ncpt {
                    return Err(NidError::Networks {
                        input: self.to_string(),
                        reason: format!(
                            "CPT list {} of {} names partition {}, but there are only {ncpt} (0..{})",
                            l.fmt_bracketed(),
                            e.net,
                            l.max_value(),
                            ncpt.saturating_sub(1)
                        ),
                    });
                }
            }
        }
        Ok(())
    }
}

impl fmt::Display for NetSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.net)?;
        if !self.interfaces.is_empty() {
            f.write_str("(")?;
            for (i, iface) in self.interfaces.iter().enumerate() {
                if i > 0 {
                    f.write_str(",")?;
                }
                f.write_str(&iface.name)?;
                if let Some(c) = &iface.cpts {
                    write!(f, "{}", c.fmt_bracketed())?;
                }
            }
            f.write_str(")")?;
        }
        if let Some(c) = &self.cpts {
            write!(f, "{}", c.fmt_bracketed())?;
        }
        Ok(())
    }
}

impl fmt::Display for Networks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.entries.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            e.fmt(f)?;
        }
        Ok(())
    }
}

impl FromStr for Networks {
    type Err = NidError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Networks::parse(s)
    }
}

/// Characters that end a network or interface name.
fn is_name_end(c: char) -> bool {
    c.is_whitespace() || ":()[],".contains(c)
}

/// A bracketed CPT list at the start of `s` (which starts with `[`):
/// returns the list and the rest after `]`.
fn take_cpts<'a>(s: &'a str, owner: &str) -> Result<(NumExprList, &'a str), String> {
    let Some(end) = s.find(']') else {
        return Err(format!("\"[\" after {owner} is not closed by \"]\""));
    };
    let l = parse_expr_list(&s[..=end], 0, u32::MAX, false)
        .map_err(|r| format!("CPT list \"{}\" of {owner}: {r}", &s[..=end]))?;
    Ok((l, &s[end + 1..]))
}

fn parse_networks(s: &str) -> Result<Networks, String> {
    if s.len() > MAX_PARAM_LEN {
        return Err(format!("longer than {MAX_PARAM_LEN} characters"));
    }
    let mut entries: Vec<NetSpec> = Vec::new();
    let mut rest = s.trim_start();
    while !rest.is_empty() {
        let end = rest.find(is_name_end).unwrap_or(rest.len());
        let (name, after) = rest.split_at(end);
        if name.is_empty() {
            let c = after.chars().next().unwrap_or(' ');
            return Err(format!("expected a network name, found \"{c}\""));
        }
        let net = name.parse::<NetId>().map_err(|e| e.kind.to_string())?;
        if net.lnd_info().is_none() {
            return Err(format!(
                "network \"{name}\" is not of a known type (known: {})",
                known_names()
            ));
        }
        rest = after.trim_start();
        let mut interfaces = Vec::new();
        if let Some(r) = rest.strip_prefix('(') {
            let Some(close) = r.find(')') else {
                return Err(format!("\"(\" after {name} is not closed by \")\""));
            };
            interfaces = parse_ifaces(&r[..close], net)?;
            rest = r[close + 1..].trim_start();
        }
        let mut cpts = None;
        if rest.starts_with('[') {
            let (l, r) = take_cpts(rest, name)?;
            cpts = Some(l);
            rest = r.trim_start();
        }
        match rest.chars().next() {
            None => {}
            Some(',') => rest = rest[1..].trim_start(),
            Some(c) => {
                let junk: String = rest.chars().take_while(|&c| c != ',').collect();
                return Err(if ":()[]".contains(c) {
                    format!("unexpected \"{c}\" after {name} (in \"{junk}\")")
                } else {
                    format!("unexpected \"{junk}\" after {name} (entries are separated by \",\")")
                });
            }
        }
        // The same net twice adds NIs to it; an interface may appear once.
        for iface in &interfaces {
            let dup = entries
                .iter()
                .filter(|e| e.net == net)
                .flat_map(|e| e.interfaces.iter())
                .any(|i| i.name == iface.name);
            if dup {
                return Err(format!(
                    "interface {} is given twice for network {net}",
                    iface.name
                ));
            }
        }
        entries.push(NetSpec {
            net,
            interfaces,
            cpts,
        });
    }
    if entries.is_empty() {
        return Err("no networks (expected e.g. tcp0(eth0) or o2ib1(ib0)[0,1])".to_owned());
    }
    Ok(Networks { entries })
}

/// Splits at the commas that are not inside `[...]`.
fn split_outside_brackets(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0u32, 0);
    for (i, c) in s.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

/// The interface list between `(` and `)`.
fn parse_ifaces(list: &str, net: NetId) -> Result<Vec<IfaceSpec>, String> {
    let mut out: Vec<IfaceSpec> = Vec::new();
    for item in split_outside_brackets(list) {
        let item = item.trim();
        let end = item.find(is_name_end).unwrap_or(item.len());
        let (name, after) = item.split_at(end);
        if name.is_empty() {
            return Err(format!("empty interface name in \"({list})\" of {net}"));
        }
        let after = after.trim_start();
        let cpts = if after.starts_with('[') {
            let (l, r) = take_cpts(after, name)?;
            if !r.trim().is_empty() {
                return Err(format!(
                    "unexpected \"{}\" after interface {name}",
                    r.trim()
                ));
            }
            Some(l)
        } else if after.is_empty() {
            None
        } else {
            return Err(format!("unexpected \"{after}\" after interface {name}"));
        };
        if out.iter().any(|i| i.name == name) {
            return Err(format!("interface {name} is given twice for network {net}"));
        }
        out.push(IfaceSpec {
            name: name.to_owned(),
            cpts,
        });
    }
    Ok(out)
}

// ---------------------------------------------------------------------------
// ip2nets=
// ---------------------------------------------------------------------------

/// An IPv4 address pattern of `ip2nets=`: four octet lists
/// (`192.168.[0-3].*`).
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Ipv4Pattern {
    octets: Box<[NumExprList; 4]>,
}

impl Ipv4Pattern {
    /// Parses `a.b.c.d` with each part a numeric expression list over 0..=255.
    pub fn parse(s: &str) -> Result<Self, NidError> {
        match parse_ipv4_range(s) {
            Ok(AddrRange::Ipv4(octets)) => Ok(Ipv4Pattern { octets }),
            Ok(AddrRange::Number(_)) => Err(NidError::Expr {
                input: s.to_owned(),
                reason: "not an IPv4 pattern".to_owned(),
            }),
            Err(reason) => Err(NidError::Expr {
                input: s.to_owned(),
                reason,
            }),
        }
    }

    /// Whether `addr` matches octet by octet.
    pub fn matches(&self, addr: Ipv4Addr) -> bool {
        self.octets
            .iter()
            .zip(addr.octets())
            .all(|(l, b)| l.matches(u32::from(b)))
    }

    /// The octet lists.
    pub fn octets(&self) -> &[NumExprList; 4] {
        &self.octets
    }
}

impl fmt::Display for Ipv4Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let o = &self.octets;
        write!(f, "{}.{}.{}.{}", o[0], o[1], o[2], o[3])
    }
}

/// One entry of `ip2nets=`: networks and the address patterns that select them.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Ip2NetsEntry {
    /// The networks, `networks=` syntax without spaces.
    pub networks: Networks,
    /// The patterns; the entry applies if any matches a local address.
    pub patterns: Vec<Ipv4Pattern>,
}

/// The `ip2nets=` module parameter (semantics.md §15.2,
/// `lnet_match_networks()`): entries separated by `;` or newlines, `#`
/// comments to the end of the entry, each `<networks> <pattern> ...`:
/// `tcp(eth0) 192.168.0.*; o2ib 10.[0-3].*.*`.
#[derive(Clone, PartialEq, Eq, Hash, Debug, Default)]
pub struct Ip2Nets {
    /// The entries, in order.
    pub entries: Vec<Ip2NetsEntry>,
}

/// Splits a `;`/newline separated parameter into entries with `#` comments
/// removed and whitespace trimmed, skipping empty ones (`lnet_str2tbs_sep()`).
fn split_entries(s: &str) -> impl Iterator<Item = &str> {
    s.split([';', '\n', '\r'])
        .map(|e| e.split('#').next().unwrap_or("").trim())
        .filter(|e| !e.is_empty())
}

impl Ip2Nets {
    /// Parses an `ip2nets=` string.
    pub fn parse(s: &str) -> Result<Self, NidError> {
        let err = |reason: String| NidError::Ip2Nets {
            input: s.to_owned(),
            reason,
        };
        if s.len() > MAX_PARAM_LEN {
            return Err(err(format!("longer than {MAX_PARAM_LEN} characters")));
        }
        let mut entries = Vec::new();
        for entry in split_entries(s) {
            let mut tokens = entry.split_whitespace();
            let nets_s = tokens.next().unwrap_or("");
            let networks = Networks::parse(nets_s).map_err(|e| match e {
                NidError::Networks { reason, .. } => {
                    err(format!("networks \"{nets_s}\": {reason}"))
                }
                other => err(other.to_string()),
            })?;
            for (i, a) in networks.entries.iter().enumerate() {
                if networks.entries[..i].iter().any(|b| b.net == a.net) {
                    return Err(err(format!(
                        "network {} appears twice in entry \"{entry}\"",
                        a.net
                    )));
                }
            }
            let mut patterns = Vec::new();
            for t in tokens {
                let p = parse_ipv4_range(t).map_err(|r| err(format!("pattern \"{t}\": {r}")))?;
                if let AddrRange::Ipv4(octets) = p {
                    patterns.push(Ipv4Pattern { octets });
                }
            }
            if patterns.is_empty() {
                return Err(err(format!(
                    "entry \"{entry}\" has no IP address pattern (e.g. {nets_s} 192.168.0.*)"
                )));
            }
            entries.push(Ip2NetsEntry { networks, patterns });
        }
        if entries.is_empty() {
            return Err(err("no entries".to_owned()));
        }
        Ok(Ip2Nets { entries })
    }

    /// The `networks=` value for a node with the local IPv4 addresses
    /// `addrs`: the networks of every matching entry, in order. Fails when no
    /// entry matches.
    pub fn select(&self, addrs: &[Ipv4Addr]) -> Result<Networks, NidError> {
        let mut out = Networks::default();
        for e in &self.entries {
            if e.patterns
                .iter()
                .any(|p| addrs.iter().any(|a| p.matches(*a)))
            {
                out.entries.extend(e.networks.entries.iter().cloned());
            }
        }
        if out.entries.is_empty() {
            return Err(NidError::Ip2NetsNoMatch {
                input: self.to_string(),
                addrs: addrs
                    .iter()
                    .map(|a| a.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        // As the kernel, check the concatenation as one networks= string (an
        // interface matched by two entries is given twice).
        let text = out.to_string();
        Networks::parse(&text).map_err(|e| {
            let why = match e {
                NidError::Networks { reason, .. } => reason,
                other => other.to_string(),
            };
            NidError::Ip2Nets {
                input: self.to_string(),
                reason: format!("the matching entries give networks=\"{text}\": {why}"),
            }
        })
    }
}

impl fmt::Display for Ip2Nets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.entries.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{}", e.networks)?;
            for p in &e.patterns {
                write!(f, " {p}")?;
            }
        }
        Ok(())
    }
}

impl FromStr for Ip2Nets {
    type Err = NidError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ip2Nets::parse(s)
    }
}

// ---------------------------------------------------------------------------
// routes=
// ---------------------------------------------------------------------------

/// One route of `routes=`: remote network, hop count, gateway, priority.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct RouteSpec {
    /// The remote network reached through the gateway.
    pub net: NetId,
    /// Hop count 1..=255; `None` when not given (`LNET_UNDEFINED_HOPS`,
    /// ordered as 1).
    pub hops: Option<u32>,
    /// The gateway (router) NID.
    pub gateway: Nid,
    /// Route priority, lower is preferred (0 when not given).
    pub priority: u32,
}

impl fmt::Display for RouteSpec {
    /// `o2ib1 1 10.0.0.1@tcp:2`; hops and a zero priority are omitted when unset.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.net)?;
        if let Some(h) = self.hops {
            write!(f, " {h}")?;
        }
        write!(f, " {}", self.gateway)?;
        if self.priority != 0 {
            write!(f, ":{}", self.priority)?;
        }
        Ok(())
    }
}

/// The `routes=` module parameter (semantics.md §15.3,
/// `lnet_parse_routes()`): entries separated by `;` or newlines, `#`
/// comments, each `<net> [<hops>] <gateway>[:<priority>] ...`, where nets and
/// gateways may hold bracket expansions (`o2ib[1-2]`, `192.168.0.[1-4]@tcp`,
/// `[a,b]` substitutes the strings). Parsed into the list of routes it
/// names, one per (net, gateway) pair, in order; printed one route per entry.
///
/// Differences from the kernel: a priority belongs to its own gateway (the
/// kernel applies the last one parsed to the whole entry); a `:` separates
/// the priority only after the `@`, so IPv6 gateways work; a range need not
/// end on a step; a gateway may not be `<?>`. Whether a gateway is one of
/// our own NIDs (which makes this node a router) is for the caller to check.
#[derive(Clone, PartialEq, Eq, Hash, Debug, Default)]
pub struct Routes {
    /// The routes, in the order written.
    pub routes: Vec<RouteSpec>,
}

impl Routes {
    /// Parses a `routes=` string; at most [`MAX_ROUTES`] routes.
    pub fn parse(s: &str) -> Result<Self, NidError> {
        let err = |reason: String| NidError::Routes {
            input: s.to_owned(),
            reason,
        };
        if s.len() > MAX_PARAM_LEN {
            return Err(err(format!("longer than {MAX_PARAM_LEN} characters")));
        }
        let mut routes = Vec::new();
        for entry in split_entries(s) {
            parse_route_entry(entry, &mut routes)
                .map_err(|r| err(format!("entry \"{entry}\": {r}")))?;
        }
        if routes.is_empty() {
            return Err(err(
                "no routes (expected e.g. o2ib1 192.168.0.1@tcp)".to_owned()
            ));
        }
        Ok(Routes { routes })
    }
}

impl fmt::Display for Routes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.routes.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            r.fmt(f)?;
        }
        Ok(())
    }
}

impl FromStr for Routes {
    type Err = NidError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Routes::parse(s)
    }
}

/// `lnet_parse_route()`: one entry, appended to `out`.
fn parse_route_entry(entry: &str, out: &mut Vec<RouteSpec>) -> Result<(), String> {
    let tokens: Vec<&str> = entry.split_whitespace().collect();
    let Some((&net_tok, mut rest)) = tokens.split_first() else {
        return Ok(());
    };
    let mut hops = None;
    if let Some((&t, r)) = rest.split_first() {
        if t.bytes().all(|b| b.is_ascii_digit()) {
            match parse_decimal(t) {
                Some(h @ 1..=255) => hops = Some(h),
                _ => return Err(format!("hop count \"{t}\" is not from 1 to 255")),
            }
            rest = r;
        }
    }
    if rest.is_empty() {
        return Err(
            "no gateway (expected <net> [<hops>] <gateway NID>[:<priority>] ...)".to_owned(),
        );
    }
    let mut nets = Vec::new();
    for n in expand_brackets(net_tok)? {
        let net = n.parse::<NetId>().map_err(|e| e.to_string())?;
        if net.lnd_info().is_none() {
            return Err(format!(
                "network \"{n}\" is not of a known type (known: {})",
                known_names()
            ));
        }
        if net.lnd_type == lnd_type::LOLND {
            return Err("cannot route to the loopback network lo".to_owned());
        }
        nets.push(net);
    }
    let mut gateways = Vec::new();
    for &tok in rest {
        for g in expand_brackets(tok)? {
            gateways.push(parse_gateway(&g)?);
        }
    }
    if out.len() as u128 + nets.len() as u128 * gateways.len() as u128 > MAX_ROUTES as u128 {
        return Err(format!("names more than {MAX_ROUTES} routes"));
    }
    for &net in &nets {
        for &(gateway, priority) in &gateways {
            out.push(RouteSpec {
                net,
                hops,
                gateway,
                priority,
            });
        }
    }
    Ok(())
}

/// `<nid>[:<priority>]`; the `:` is looked for after the `@`.
fn parse_gateway(g: &str) -> Result<(Nid, u32), String> {
    let from = g.find('@').unwrap_or(0);
    let (nid_s, prio) = match g[from..].find(':') {
        Some(i) => (&g[..from + i], Some(&g[from + i + 1..])),
        None => (g, None),
    };
    let priority = match prio {
        None => 0,
        Some(p) => parse_decimal(p).ok_or_else(|| {
            format!(
                "priority \"{p}\" of gateway \"{nid_s}\" is not a decimal number up to 4294967295"
            )
        })?,
    };
    let nid = nid_s.parse::<Nid>().map_err(|e| format!("gateway {e}"))?;
    if nid.is_any() {
        return Err(format!("gateway \"{nid_s}\" is the ANY NID"));
    }
    if nid.net().lnd_type == lnd_type::LOLND {
        return Err(format!("gateway \"{nid_s}\" is a loopback NID"));
    }
    Ok((nid, priority))
}

/// `lnet_str2tbs_expand()`, repeated until no bracket is left: each `[...]`
/// holds comma-separated items, `a-b` or `a-b/s` ranges (decimal) or strings
/// substituted as they are. At most [`MAX_ROUTES`] results.
fn expand_brackets(tok: &str) -> Result<Vec<String>, String> {
    let mut done = Vec::new();
    let mut todo = vec![tok.to_owned()];
    while let Some(s) = todo.pop() {
        let Some(open) = s.find('[') else {
            done.push(s);
            continue;
        };
        let Some(len) = s[open..].find(']') else {
            return Err(format!("\"[\" in \"{tok}\" is not closed by \"]\""));
        };
        let close = open + len;
        let (head, tail) = (&s[..open], &s[close + 1..]);
        let mut items = Vec::new();
        for item in s[open + 1..close].split(',') {
            if item.is_empty() {
                return Err(format!(
                    "empty item in \"{}\" of \"{tok}\"",
                    &s[open..=close]
                ));
            }
            match parse_plain_range(item) {
                Some(Ok(r)) => {
                    if done.len() as u64 + todo.len() as u64 + items.len() as u64 + r.count()
                        > MAX_ROUTES as u64
                    {
                        return Err(format!("\"{tok}\" expands to more than {MAX_ROUTES} names"));
                    }
                    items.extend(r.values().map(|v| v.to_string()));
                }
                Some(Err(why)) => return Err(format!("range \"{item}\" in \"{tok}\": {why}")),
                None => items.push(item.to_owned()),
            }
        }
        if done.len() + todo.len() + items.len() > MAX_ROUTES {
            return Err(format!("\"{tok}\" expands to more than {MAX_ROUTES} names"));
        }
        // Push in reverse so that results come out in the order written.
        todo.extend(items.iter().rev().map(|i| format!("{head}{i}{tail}")));
    }
    Ok(done)
}

/// `a-b` or `a-b/s` in decimal: `None` when `item` is not shaped like a range
/// (it is then a literal string), `Some(Err)` when it is but is invalid.
fn parse_plain_range(item: &str) -> Option<Result<RangeExpr, String>> {
    let (lo, rest) = item.split_once('-')?;
    let (hi, stride) = match rest.split_once('/') {
        Some((h, s)) => (h, Some(s)),
        None => (rest, None),
    };
    let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    if !digits(lo) || !digits(hi) || !stride.is_none_or(digits) {
        return None;
    }
    let (Some(lo), Some(hi)) = (parse_decimal(lo), parse_decimal(hi)) else {
        return Some(Err("number too large".to_owned()));
    };
    let stride = match stride.map(parse_decimal) {
        None => 1,
        Some(Some(s)) if s >= 1 => s,
        Some(_) => return Some(Err("step must be a number of at least 1".to_owned())),
    };
    Some(RangeExpr::new(lo, hi, stride).ok_or_else(|| format!("wrong order ({lo} > {hi})")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn nid(s: &str) -> Nid {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn list(s: &str) -> NidList {
        NidList::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn strs(nids: &[Nid]) -> Vec<String> {
        nids.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn process_ids() {
        let p: ProcessId = "12345-192.168.1.10@tcp".parse().expect("parses");
        assert_eq!(p, ProcessId::lustre(nid("192.168.1.10@tcp")));
        assert_eq!(p.to_string(), "12345-192.168.1.10@tcp");
        let u = ProcessId::new(nid("10.0.0.1@tcp"), 1023 | LNET_PID_USERFLAG);
        assert!(u.is_userspace());
        assert_eq!(u.to_string(), "U1023-10.0.0.1@tcp");
        assert_eq!("U1023-10.0.0.1@tcp".parse::<ProcessId>().ok(), Some(u));
        let a = ProcessId::new(nid("0@lo"), LNET_PID_ANY);
        assert_eq!(a.to_string(), "LNET_PID_ANY-0@lo");
        assert_eq!("LNET_PID_ANY-0@lo".parse::<ProcessId>().ok(), Some(a));
        assert_eq!(ProcessId::ANY.to_string(), "LNET_PID_ANY-<?>");
        assert_eq!(
            "10.0.0.1@o2ib".parse::<ProcessId>().ok(),
            Some(ProcessId::lustre(nid("10.0.0.1@o2ib")))
        );
        assert_eq!(
            "7-2001:db8::1@tcp".parse::<ProcessId>().ok(),
            Some(ProcessId::new(nid("2001:db8::1@tcp"), 7))
        );
        let e = |s: &str| {
            s.parse::<ProcessId>()
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        assert!(e("x-1.2.3.4@tcp").contains("PID \"x\" is not a decimal number"));
        assert!(e("U2147483648-1.2.3.4@tcp").contains("user PID"));
        assert!(e("12345-1.2.3.400@tcp").starts_with(
            "invalid process ID \"12345-1.2.3.400@tcp\": invalid NID \"1.2.3.400@tcp\""
        ));
        assert!(e("-1.2.3.4@tcp").contains("PID \"\""));
    }

    #[test]
    fn expression_lists() {
        let l = NumExprList::parse("[0-3/2,5]").expect("parses");
        assert_eq!(l.values().collect::<Vec<_>>(), [0, 2, 5]);
        assert!(l.matches(2) && l.matches(5) && !l.matches(1) && !l.matches(4));
        assert_eq!(l.to_string(), "[0-3/2,5]");
        assert_eq!(l.max_value(), 5);
        assert_eq!(
            NumExprList::parse("[ 1 - 4 ]")
                .map(|l| l.to_string())
                .ok()
                .as_deref(),
            Some("[1-4]")
        );
        assert_eq!(
            NumExprList::parse("[7]")
                .map(|l| l.to_string())
                .ok()
                .as_deref(),
            Some("7")
        );
        assert_eq!(
            NumExprList::parse("0x10")
                .map(|l| l.to_string())
                .ok()
                .as_deref(),
            Some("16")
        );
        assert_eq!(
            NumExprList::parse("010")
                .map(|l| l.to_string())
                .ok()
                .as_deref(),
            Some("8")
        );
        let star = NumExprList::parse_bounded("*", 0, 255).expect("parses");
        assert_eq!(star.to_string(), "[0-255]");
        assert_eq!(star.count(), 256);
        assert_eq!(
            NumExprList::parse("[0-7/2]")
                .expect("parses")
                .fmt_bracketed()
                .to_string(),
            "[0-7/2]"
        );
        assert_eq!(
            NumExprList::parse("5")
                .expect("parses")
                .fmt_bracketed()
                .to_string(),
            "[5]"
        );
        let e = |s: &str| {
            NumExprList::parse_bounded(s, 0, 255)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        assert!(e("[1-0]").contains("wrong order"));
        assert!(e("[]").contains("empty element"));
        assert!(e("[1,]").contains("empty element"));
        assert!(e("[1-4/0]").contains("step \"0\""));
        assert!(e("[1-300]").contains("300 in \"1-300\" is out of range 0..255"));
        assert!(e("1-4").contains("ranges go in brackets"));
        assert!(e("[1-4").contains("unbalanced"));
        assert!(e("[a]").contains("\"a\" is not a number"));
        assert!(e("[1-]").contains("missing a number"));
        assert!(e("08").contains("not a number"));
        assert_eq!(RangeExpr::new(1, 10, 4).map(|r| r.max()), Some(9));
    }

    #[test]
    fn nidlist_examples_of_semantics_md_14_2() {
        let l = list("192.168.0.[1-10/2]@tcp");
        let all: Vec<_> = (0..=12)
            .map(|d| nid(&format!("192.168.0.{d}@tcp")))
            .collect();
        let m: Vec<_> = all
            .iter()
            .filter(|n| l.matches(n))
            .map(|n| n.addr4().unwrap_or(0) & 0xFF)
            .collect();
        assert_eq!(m, [1, 3, 5, 7, 9]);
        assert!(!l.matches(&nid("192.168.0.1@tcp1")));
        assert!(!l.matches(&nid("192.168.0.1@o2ib")));

        let l = list("10.[1,3].0.*@o2ib1");
        assert!(l.matches(&nid("10.3.0.77@o2ib1")));
        assert!(!l.matches(&nid("10.2.0.77@o2ib1")));
        assert_eq!(l.to_string(), "10.[1,3].0.[0-255]@o2ib1");

        let l = list("*@o2ib");
        assert!(l.matches(&nid("1.2.3.4@o2ib")) && l.matches(&nid("fd00::1@o2ib")));
        assert!(!l.matches(&nid("1.2.3.4@o2ib1")) && !l.matches(&Nid::ANY));

        let l = list("[0-255/16]@kfi");
        assert!(
            l.matches(&nid("32@kfi")) && !l.matches(&nid("33@kfi")) && !l.matches(&nid("256@kfi"))
        );

        let l = list("192.168.0.0/24@tcp");
        assert!(l.matches(&nid("192.168.0.200@tcp")) && !l.matches(&nid("192.168.1.1@tcp")));
        assert_eq!(l.to_string(), "192.168.0.0/24@tcp");

        let l = list("fd00::/64@tcp1");
        assert!(l.matches(&nid("fd00::abcd@tcp1")));
        assert!(!l.matches(&nid("fd00:0:0:1::1@tcp1")));
        assert!(
            !l.matches(&nid("253.0.0.0@tcp1")),
            "IPv6 masks match 16-byte addresses only"
        );

        let l = list("2001:db8::1@tcp");
        assert!(l.matches(&nid("2001:db8::1@tcp")) && !l.matches(&nid("2001:db8::2@tcp")));
        assert_eq!(l.to_string(), "2001:db8::1@tcp");

        // A 16-byte NID never matches an IPv4 range or a /8.
        assert!(!list("*.*.*.*@tcp 0.0.0.0/1@tcp 128.0.0.0/1@tcp").matches(&nid("::1@tcp")));
        assert!(list("0@lo").matches(&Nid::LO_0));
    }

    #[test]
    fn nidlist_merges_and_prints_canonically() {
        let l = list("  1.2.3.4@tcp   10.0.0.0/8@tcp 5@gni 1.2.3.5/32@tcp [6-7]@gni ");
        assert_eq!(l.nets().len(), 2);
        assert_eq!(
            l.to_string(),
            "10.0.0.0/8@tcp 1.2.3.4@tcp 1.2.3.5@tcp 5@gni [6-7]@gni"
        );
        assert_eq!(list(&l.to_string()), l);
        let l = list("1.2.3.4@tcp *@tcp 5.6.7.8@tcp 1@gni");
        assert_eq!(l.to_string(), "*@tcp 1@gni");
        assert!(l.nets()[0].is_all());
        assert_eq!(
            list("0x10@kfi 010.1.1.1@tcp").to_string(),
            "16@kfi 8.1.1.1@tcp"
        );
    }

    #[test]
    fn nidlist_errors_name_the_item() {
        let e = |s: &str| {
            NidList::parse(s)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        assert_eq!(
            e("1.2.3.4@tcp 10.0.0.[1-300]@tcp"),
            "invalid nidlist \"1.2.3.4@tcp 10.0.0.[1-300]@tcp\": item \"10.0.0.[1-300]@tcp\": octet 300 in \"1-300\" is out of range 0..255"
        );
        assert!(e("1.2.3.4").contains("missing \"@<net>\""));
        assert!(e("1.2.3@tcp").contains("does not have four octets"));
        assert!(e("1.2.3.4@foo").contains("unknown network type \"foo\""));
        assert!(e("1@<20:1>").contains("not of a known type"));
        assert!(e("10.0.0.0@tcp/8").contains("unknown network type \"tcp/8\""));
        assert!(e("10.0.0.0/33@tcp").contains("prefix length \"33\""));
        assert!(e("10.0.0.0/0@tcp").contains("prefix length \"0\""));
        assert!(e("fd00::/129@tcp").contains("prefix length"));
        assert!(e("fd00::/64@gip").contains("takes IPv4 only"));
        assert!(e("fd00::/64@gni").contains("numeric addresses"));
        assert!(e("1.2.3.4@tcp@tcp").contains("network"));
        assert!(e("@tcp").contains("empty"));
        assert!(e("").contains("no items"));
        assert!(e("   ").contains("no items"));
        assert!(e("[1-2@kfi").contains("unbalanced"));
        assert!(e("x.y::z/3@tcp").contains("not an IPv6 address"));
        assert!(e("1.2.3.256/8@tcp").contains("not an IPv4 address"));
    }

    #[test]
    fn nidlist_expansion_orders_like_lnetctl_and_is_bounded() {
        let x = |s: &str| strs(&list(s).expand(LNET_MAX_NIDS_PER_PEER).expect("expands"));
        assert_eq!(
            x("6.6.[6-7].[0-4/2]@tcp"),
            [
                "6.6.6.0@tcp",
                "6.6.6.2@tcp",
                "6.6.6.4@tcp",
                "6.6.7.0@tcp",
                "6.6.7.2@tcp",
                "6.6.7.4@tcp"
            ]
        );
        assert_eq!(x("[6-12/4]@gni"), ["6@gni", "10@gni"]);
        assert_eq!(
            x("5.5.5.[1,2,3-4]@o2ib"),
            [
                "5.5.5.1@o2ib",
                "5.5.5.2@o2ib",
                "5.5.5.3@o2ib",
                "5.5.5.4@o2ib"
            ]
        );
        assert_eq!(
            x("[15-16/3].[17-19/4].[1].[5-20/5]@tcp"),
            [
                "15.17.1.5@tcp",
                "15.17.1.10@tcp",
                "15.17.1.15@tcp",
                "15.17.1.20@tcp"
            ]
        );
        assert_eq!(x("10.0.0.4/30@tcp").len(), 4);
        assert_eq!(x("10.0.0.4/30@tcp")[3], "10.0.0.7@tcp");
        assert_eq!(
            x("fd00::/126@tcp"),
            ["fd00::@tcp", "fd00::1@tcp", "fd00::2@tcp", "fd00::3@tcp"]
        );

        let big = list("*.*.*.*@tcp");
        assert_eq!(big.count(), Some(1 << 32));
        let e = big.expand(1000).expect_err("too many").to_string();
        assert_eq!(
            e,
            "cannot expand nidlist \"[0-255].[0-255].[0-255].[0-255]@tcp\": names 4294967296 NIDs, more than the limit of 1000"
        );
        assert!(list("fd00::/8@tcp").expand(usize::MAX).is_err());
        assert!(list("[0-4294967295]@gni").expand(10).is_err());
        assert!(list("*@tcp")
            .expand(10)
            .expect_err("unbounded")
            .to_string()
            .contains("every NID"));
        assert_eq!(
            list("1.1.1.[1-129]@tcp").expand(128).map(|v| v.len()).ok(),
            None
        );
        assert_eq!(
            list("1.1.1.[1-128]@tcp").expand(128).map(|v| v.len()).ok(),
            Some(128)
        );
    }

    #[test]
    fn networks_parameter() {
        let n = Networks::parse("tcp0(eth0,eth1)[0],o2ib1(ib0)").expect("parses");
        assert_eq!(n.entries.len(), 2);
        assert_eq!(n.to_string(), "tcp(eth0,eth1)[0],o2ib1(ib0)");
        let nets = n.nets();
        assert_eq!(nets[0].net, NetId::new(lnd_type::SOCKLND, 0));
        assert_eq!(nets[0].nis.len(), 2);
        assert_eq!(nets[0].nis[1].interface.as_deref(), Some("eth1"));
        assert_eq!(
            nets[0].nis[1]
                .cpts
                .as_ref()
                .map(|c| c.to_string())
                .as_deref(),
            Some("0")
        );
        assert_eq!(nets[1].net, NetId::new(lnd_type::O2IBLND, 1));
        assert_eq!(nets[1].nis[0].cpts, None);

        // semantics.md §15.1 example.
        let n = Networks::parse("tcp0(eth0,eth1),o2ib(ib0)[0,1]").expect("parses");
        let nets = n.nets();
        assert_eq!(
            nets[1].nis[0]
                .cpts
                .as_ref()
                .map(|c| c.values().collect::<Vec<_>>()),
            Some(vec![0, 1])
        );

        // Interface CPTs win over the net's; lo is dropped; a net given twice merges.
        let n = Networks::parse(" tcp ( eth0 [1] , eth1 ) [0-1] , lo, tcp(eth2), gni[3]")
            .expect("parses");
        assert_eq!(n.to_string(), "tcp(eth0[1],eth1)[0-1],lo,tcp(eth2),gni[3]");
        let nets = n.nets();
        assert_eq!(nets.len(), 2);
        let cpts: Vec<String> = nets[0]
            .nis
            .iter()
            .map(|ni| ni.cpts.as_ref().map(|c| c.to_string()).unwrap_or_default())
            .collect();
        assert_eq!(cpts, ["1", "[0-1]", ""]);
        assert_eq!(
            nets[1].nis,
            [NiSpec {
                interface: None,
                cpts: Some(NumExprList::parse("3").expect("3"))
            }]
        );
        assert!(n.check_cpts(4).is_ok());
        assert!(n
            .check_cpts(2)
            .expect_err("3 >= 2")
            .to_string()
            .contains("partition 3"));
        assert_eq!(
            Networks::parse("tcp,")
                .map(|n| n.to_string())
                .ok()
                .as_deref(),
            Some("tcp")
        );

        let e = |s: &str| {
            Networks::parse(s)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        assert_eq!(
            e("tcp0(eth0,eth1)[0],o2ib1(ib0"),
            "invalid networks=\"tcp0(eth0,eth1)[0],o2ib1(ib0\": \"(\" after o2ib1 is not closed by \")\""
        );
        assert!(e("foo(eth0)").contains("unknown network type \"foo\""));
        assert!(e("tcp(eth0,eth0)").contains("interface eth0 is given twice for network tcp"));
        assert!(e("tcp(eth0),tcp(eth0)").contains("interface eth0 is given twice"));
        assert!(e("tcp()").contains("empty interface name"));
        assert!(e("tcp(eth0,)").contains("empty interface name"));
        assert!(e("tcp(eth 0)").contains("unexpected \"0\" after interface eth"));
        assert!(e("tcp[0").contains("not closed by \"]\""));
        assert!(e("tcp[x]").contains("CPT list \"[x]\" of tcp"));
        assert!(e("tcp[*]").contains("not allowed"));
        assert!(e("tcp(eth0)(eth1)").contains("unexpected \"(\" after tcp"));
        assert!(e("tcp junk").contains("unexpected \"junk\" after tcp"));
        assert!(e("tcp:1").contains("unexpected \":\""));
        assert!(e(",tcp").contains("expected a network name, found \",\""));
        assert!(e("<20:1>").contains("unknown network type \"<20\""));
        assert!(e("").contains("no networks"));
    }

    #[test]
    fn ip2nets_parameter() {
        let s = "tcp(eth0) 192.168.0.* # office\n o2ib 10.[0-3].*.* 172.16.0.1; tcp1 10.0.0.*";
        let i = Ip2Nets::parse(s).expect("parses");
        assert_eq!(i.entries.len(), 3);
        assert_eq!(i.to_string(), "tcp(eth0) 192.168.0.[0-255]; o2ib 10.[0-3].[0-255].[0-255] 172.16.0.1; tcp1 10.0.0.[0-255]");
        assert_eq!(Ip2Nets::parse(&i.to_string()).ok(), Some(i.clone()));
        let a = |s: &str| s.parse::<Ipv4Addr>().expect("address");
        let sel = i.select(&[a("127.0.0.1"), a("10.0.0.5")]).expect("matches");
        assert_eq!(sel.to_string(), "o2ib,tcp1");
        let sel = i.select(&[a("192.168.0.9")]).expect("matches");
        assert_eq!(sel.to_string(), "tcp(eth0)");
        let e = i.select(&[a("8.8.8.8")]).expect_err("no match").to_string();
        assert!(e.contains("matches none of the local IPv4 addresses [8.8.8.8]"));
        let dup = Ip2Nets::parse("tcp(eth0) 10.*.*.*; tcp(eth0) 10.0.*.*").expect("parses");
        assert!(dup
            .select(&[a("10.0.0.1")])
            .expect_err("dup")
            .to_string()
            .contains("interface eth0 is given twice"));

        let e = |s: &str| {
            Ip2Nets::parse(s)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        assert!(e("tcp,tcp 10.*.*.*").contains("network tcp appears twice"));
        assert!(e("tcp").contains("has no IP address pattern"));
        assert!(e("tcp 10.*.*").contains("pattern \"10.*.*\""));
        assert!(e("tcp 10.*.*.300").contains("300 is out of range"));
        assert!(e("foo 10.*.*.*").contains("networks \"foo\""));
        assert!(e("# nothing").contains("no entries"));
        assert!(Ipv4Pattern::parse("10.0.[0-1].*")
            .expect("pattern")
            .matches(a("10.0.1.9")));
    }

    #[test]
    fn routes_parameter() {
        let r = Routes::parse("o2ib1 1 192.168.0.[1-3]@tcp; tcp2 10.0.0.1@o2ib").expect("parses");
        assert_eq!(
            r.to_string(),
            "o2ib1 1 192.168.0.1@tcp; o2ib1 1 192.168.0.2@tcp; o2ib1 1 192.168.0.3@tcp; tcp2 10.0.0.1@o2ib"
        );
        assert_eq!(r.routes[3].hops, None);
        assert_eq!(r.routes[0].hops, Some(1));

        // semantics.md §15.3 example, plus priorities, brackets on nets and IPv6.
        let r = Routes::parse("o2ib1 1 10.0.0.[1-2]@tcp:0; tcp2 192.168.1.1@o2ib").expect("parses");
        assert_eq!(r.routes.len(), 3);
        let r = Routes::parse("o2ib[1-2] 3 10.0.0.1@tcp:5 fd00::1@tcp1:7\n# comment\ngni 1@kfi")
            .expect("parses");
        assert_eq!(
            r.to_string(),
            "o2ib1 3 10.0.0.1@tcp:5; o2ib1 3 fd00::1@tcp1:7; o2ib2 3 10.0.0.1@tcp:5; o2ib2 3 fd00::1@tcp1:7; gni 1@kfi"
        );
        assert_eq!(Routes::parse(&r.to_string()).ok(), Some(r));
        let r = Routes::parse("tcp[1,3] [a,b].0.0.1@o2ib")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(r.contains("\"a.0.0.1@o2ib\""), "{r}");
        let r = Routes::parse("tcp[1,3] 1.[2,3].0.[1-2]@o2ib").expect("parses");
        assert_eq!(
            r.routes
                .iter()
                .filter(|x| x.net == NetId::new(2, 1))
                .map(|x| x.gateway.to_string())
                .collect::<Vec<_>>(),
            [
                "1.2.0.1@o2ib",
                "1.2.0.2@o2ib",
                "1.3.0.1@o2ib",
                "1.3.0.2@o2ib"
            ]
        );

        let e = |s: &str| {
            Routes::parse(s)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        assert_eq!(
            e("o2ib1 0 10.0.0.1@tcp"),
            "invalid routes=\"o2ib1 0 10.0.0.1@tcp\": entry \"o2ib1 0 10.0.0.1@tcp\": hop count \"0\" is not from 1 to 255"
        );
        assert!(e("o2ib1 256 10.0.0.1@tcp").contains("hop count \"256\""));
        assert!(e("o2ib1 1").contains("no gateway"));
        assert!(e("o2ib1").contains("no gateway"));
        assert!(e("lo 10.0.0.1@tcp").contains("loopback network"));
        assert!(e("o2ib 0@lo").contains("loopback NID"));
        assert!(e("o2ib <?>").contains("ANY NID"));
        assert!(e("o2ib 10.0.0.1@tcp:x").contains("priority \"x\""));
        assert!(e("o2ib 10.0.0.300@tcp").contains("address \"10.0.0.300\" is not an IPv4 address"));
        assert!(e("foo 10.0.0.1@tcp").contains("unknown network type \"foo\""));
        assert!(e("o2ib 10.0.0.[1-2@tcp").contains("not closed"));
        assert!(e("o2ib 10.0.0.[2-1]@tcp").contains("wrong order"));
        assert!(e("o2ib 10.0.0.[1-4/0]@tcp").contains("step"));
        assert!(e("o2ib 10.0.0.[1,,2]@tcp").contains("empty item"));
        assert!(e("o2ib[0-99] 10.0.[0-255].[0-255]@tcp").contains("more than 4096"));
        assert!(e("o2ib 1.1.[0-4294967295].1@tcp").contains("more than 4096"));
        assert!(e("").contains("no routes"));
    }

    // --- property tests -------------------------------------------------

    fn any_nid() -> impl Strategy<Value = Nid> {
        let ip = (
            0usize..4,
            any::<u16>(),
            any::<u32>(),
            any::<[u8; 16]>(),
            any::<bool>(),
        )
            .prop_map(|(i, num, a4, a16, v6)| {
                let t = [
                    lnd_type::SOCKLND,
                    lnd_type::O2IBLND,
                    lnd_type::EFALND,
                    lnd_type::GNIIPLND,
                ][i];
                if v6 && t != lnd_type::GNIIPLND {
                    Nid::new16(NetId::new(t, num), a16)
                } else {
                    Nid::new4(NetId::new(t, num), a4)
                }
            });
        let num = (0usize..4, any::<u16>(), any::<u32>()).prop_map(|(i, num, a)| {
            let t = [
                lnd_type::GNILND,
                lnd_type::KFILND,
                lnd_type::PTL4LND,
                lnd_type::BXI3LND,
            ][i];
            Nid::new4(NetId::new(t, num), a)
        });
        prop_oneof![4 => ip, 2 => num, 1 => Just(Nid::LO_0), 1 => Just(Nid::ANY)]
    }

    fn expr_text(max: u32) -> impl Strategy<Value = String> {
        let one = prop_oneof![
            (0..=max).prop_map(|v| v.to_string()),
            (0..=max, 0..=max).prop_map(|(a, b)| format!("{}-{}", a.min(b), a.max(b))),
            (0..=max, 0..=max, 1..=max.max(1)).prop_map(|(a, b, s)| format!(
                "{}-{}/{s}",
                a.min(b),
                a.max(b)
            )),
            Just("*".to_owned()),
        ];
        prop_oneof![
            (0..=max).prop_map(|v| v.to_string()),
            Just("*".to_owned()),
            prop::collection::vec(one, 1..4).prop_map(|v| format!("[{}]", v.join(","))),
        ]
    }

    fn net_text() -> impl Strategy<Value = String> {
        (
            prop::sample::select(vec![
                "tcp", "o2ib", "efa", "gip", "gni", "kfi", "ptlf", "bxi3f", "lo",
            ]),
            0u16..4,
        )
            .prop_map(|(n, num)| {
                if n == "lo" || num == 0 {
                    n.to_owned()
                } else {
                    format!("{n}{num}")
                }
            })
    }

    fn nidlist_item() -> impl Strategy<Value = String> {
        (
            net_text(),
            any::<u8>(),
            expr_text(255),
            expr_text(255),
            expr_text(255),
            expr_text(255),
            expr_text(100_000),
            any::<[u8; 16]>(),
            any::<u32>(),
        )
            .prop_map(|(net, kind, a, b, c, d, n, v6, v4)| {
                let info = LndInfo::by_name(net.trim_end_matches(|c: char| c.is_ascii_digit()));
                let ip = info.is_some_and(|i| i.addr_format == AddrFormat::Ip);
                let v6ok = info.is_some_and(|i| i.ipv6);
                let addr = match kind % 5 {
                    0 => "*".to_owned(),
                    1 | 2 if ip => format!("{a}.{b}.{c}.{d}"),
                    3 if ip => format!("{}/{}", Ipv4Addr::from(v4), 1 + kind % 32),
                    4 if v6ok => format!("{}/{}", Ipv6Addr::from(v6), 1 + kind % 128),
                    _ if ip => format!("{a}.{b}.{c}.{d}"),
                    _ => n,
                };
                format!("{addr}@{net}")
            })
    }

    proptest! {
        #[test]
        fn process_id_display_parses_back(nid in any_nid(), pid in any::<u32>()) {
            let p = ProcessId::new(nid, pid);
            let s = p.to_string();
            prop_assert_eq!(s.parse::<ProcessId>().ok(), Some(p), "{}", s);
        }

        #[test]
        fn expr_list_display_parses_back(t in expr_text(1000)) {
            let l = NumExprList::parse_bounded(&t, 0, 1000).expect("generated lists are valid");
            prop_assert_eq!(NumExprList::parse_bounded(&l.to_string(), 0, 1000).ok(), Some(l.clone()));
            prop_assert_eq!(NumExprList::parse_bounded(&l.fmt_bracketed().to_string(), 0, 1000).ok(), Some(l));
        }

        #[test]
        fn nidlist_display_parses_back(items in prop::collection::vec(nidlist_item(), 1..6)) {
            let text = items.join(" ");
            let l = NidList::parse(&text).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let s = l.to_string();
            prop_assert_eq!(NidList::parse(&s).ok(), Some(l), "{} -> {}", text, s);
        }

        #[test]
        fn nidlist_matches_what_it_expands_to(item in nidlist_item(), probe in any_nid()) {
            let l = NidList::parse(&item).map_err(|e| TestCaseError::fail(e.to_string()))?;
            if let Ok(nids) = l.expand(512) {
                prop_assert!(nids.iter().all(|n| l.matches(n)), "{}", item);
                if !nids.contains(&probe) {
                    prop_assert!(!l.matches(&probe), "{} matches {}", item, probe);
                }
            }
        }

        #[test]
        fn networks_display_parses_back(
            entries in prop::collection::vec(
                (net_text(), prop::collection::vec(("[a-z]{1,4}[0-9]", prop::option::of(expr_text(7))), 0..3), prop::option::of(expr_text(7))),
                1..4,
            )
        ) {
            let text: Vec<String> = entries.iter().enumerate().map(|(k, (net, ifs, cpts))| {
                let mut s = net.clone();
                if !ifs.is_empty() {
                    let ifs: Vec<String> = ifs.iter().enumerate().map(|(j, (n, c))| {
                        let c = c.as_ref().filter(|c| *c != "*").map(|c| if c.starts_with('[') { c.clone() } else { format!("[{c}]") });
                        format!("{n}x{k}y{j}{}", c.unwrap_or_default())
                    }).collect();
                    s += &format!("({})", ifs.join(","));
                }
                if let Some(c) = cpts.as_ref().filter(|c| *c != "*" && !c.contains('*')) {
                    s += &if c.starts_with('[') { c.clone() } else { format!("[{c}]") };
                }
                s
            }).collect();
            let text = text.join(",");
            match Networks::parse(&text) {
                Ok(n) => prop_assert_eq!(Networks::parse(&n.to_string()).ok(), Some(n), "{}", text),
                // Only "*" inside an interface's CPT list is refused.
                Err(e) => prop_assert!(text.contains('*'), "{}: {}", text, e),
            }
        }

        #[test]
        fn routes_display_parses_back(
            routes in prop::collection::vec((any_nid(), 0usize..4, 0u16..3, prop::option::of(1u32..=255), any::<u32>()), 1..5)
        ) {
            let routes: Vec<RouteSpec> = routes
                .into_iter()
                .filter(|(g, ..)| !g.is_any() && g.net().lnd_type != lnd_type::LOLND)
                .map(|(gateway, t, num, hops, priority)| {
                    let t = [lnd_type::SOCKLND, lnd_type::O2IBLND, lnd_type::GNILND, lnd_type::KFILND][t];
                    RouteSpec { net: NetId::new(t, num), hops, gateway, priority }
                })
                .collect();
            prop_assume!(!routes.is_empty());
            let r = Routes { routes };
            let s = r.to_string();
            prop_assert_eq!(Routes::parse(&s).ok(), Some(r), "{}", s);
        }

        #[test]
        fn parsers_never_panic(s in ".{0,60}") {
            let _ = s.parse::<ProcessId>();
            let _ = NumExprList::parse(&s);
            let _ = NidList::parse(&s).map(|l| l.expand(64));
            let _ = Networks::parse(&s).map(|n| n.nets());
            let _ = Ip2Nets::parse(&s).map(|i| i.select(&[Ipv4Addr::LOCALHOST]));
            let _ = Routes::parse(&s);
        }

        #[test]
        fn nidish_strings_never_panic(s in "[0-9a-f.:*@,/ ()\\[\\]<>?x;#-]{0,30}(tcp|o2ib|gni|lo|kfi)?[0-9]{0,3}") {
            let _ = s.parse::<ProcessId>();
            let _ = NumExprList::parse(&s);
            if let Ok(l) = NidList::parse(&s) {
                let _ = l.expand(64);
                prop_assert_eq!(NidList::parse(&l.to_string()).ok(), Some(l));
            }
            let _ = Networks::parse(&s);
            let _ = Ip2Nets::parse(&s);
            if let Ok(r) = Routes::parse(&s) {
                prop_assert_eq!(Routes::parse(&r.to_string()).ok(), Some(r));
            }
        }
    }
}
