//! NID range lists (`cfs_parse_nidlist()`) and UDSP NID descriptors
//! (`cfs_parse_nid_parts()`).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use super::expr::parse_expr_list;
use super::{
    known_names, lnd_name, lnd_type, parse_decimal, AddrFormat, LndInfo, NetId, Nid, NidError,
    NumExprList, RangeExpr, LNDS, MAX_EXPAND, MAX_NIDLIST_LEN, MAX_PARAM_LEN,
};

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
        if s.len() > MAX_NIDLIST_LEN {
            return Err(err(format!("longer than {MAX_NIDLIST_LEN} characters")));
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
    /// An IP network gives every address in it, network and broadcast
    /// addresses included. Repeats are kept. Fails, allocating nothing, when
    /// the list has a `*@net` item or names more than `limit` NIDs (or more
    /// than [`MAX_EXPAND`], whatever the limit).
    pub fn expand(&self, limit: usize) -> Result<Vec<Nid>, NidError> {
        let limit = limit.min(MAX_EXPAND);
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

/// `cfs_ip_addr_parse()`: four octet lists separated by dots.
pub(crate) fn parse_ipv4_range(s: &str) -> Result<AddrRange, String> {
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
// NID descriptors (UDSP)
// ---------------------------------------------------------------------------

/// A NID descriptor of a UDSP rule (`cfs_parse_nid_parts()` in
/// `lib/libcfs/nidstrings.c`, semantics.md §12): an LND type, the network
/// numbers, and optionally an address range. `tcp` (number 0 only), `tcp1`,
/// `tcp[1-3]`, `tcp*` (every number), `10.1.1.*@tcp`, `[1-4]@gni[0,2]`.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct NidDescr {
    lnd_type: u8,
    nums: Option<NumExprList>,
    addr: Option<AddrRange>,
}

impl NidDescr {
    /// Parses a descriptor.
    pub fn parse(s: &str) -> Result<Self, NidError> {
        Self::parse_with(s, &[])
    }

    /// Parses a descriptor that may name the network types plugins provide
    /// (`extra`: name, LND type; their addresses are numbers).
    pub fn parse_with(s: &str, extra: &[(&str, u8)]) -> Result<Self, NidError> {
        parse_descr(s, extra).map_err(|reason| NidError::NidList {
            input: s.to_owned(),
            reason,
        })
    }

    /// The LND type.
    pub fn lnd_type(&self) -> u8 {
        self.lnd_type
    }

    /// The network numbers; `None` when none was written (number 0 only).
    pub fn net_nums(&self) -> Option<&NumExprList> {
        self.nums.as_ref()
    }

    /// The address range; `None` for a net-only descriptor ("net rule").
    pub fn addr_range(&self) -> Option<&AddrRange> {
        self.addr.as_ref()
    }

    /// Whether `net` matches (`cfs_match_net()`): same LND type, and a number
    /// in the list (or 0 when the descriptor has no number).
    pub fn matches_net(&self, net: NetId) -> bool {
        net.lnd_type == self.lnd_type
            && match &self.nums {
                None => net.num == 0,
                Some(l) => l.matches(u32::from(net.num)),
            }
    }

    /// Whether `nid` matches: its network does and, when the descriptor has
    /// an address range, its address is in it (`cfs_match_nid_net()`); a
    /// net-only descriptor matches every NID of a matching network.
    pub fn matches_nid(&self, nid: &Nid) -> bool {
        !nid.is_any()
            && self.matches_net(nid.net())
            && self.addr.as_ref().is_none_or(|a| a.matches_addr(nid))
    }
}

impl fmt::Display for NidDescr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(a) = &self.addr {
            write!(f, "{a}@")?;
        }
        match lnd_name(self.lnd_type) {
            Some(n) => f.write_str(n)?,
            None => write!(f, "<{}>", self.lnd_type)?,
        }
        match &self.nums {
            None => Ok(()),
            Some(l) => l.fmt(f),
        }
    }
}

impl FromStr for NidDescr {
    type Err = NidError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        NidDescr::parse(s)
    }
}

fn parse_descr(s: &str, extra: &[(&str, u8)]) -> Result<NidDescr, String> {
    if s.len() > MAX_PARAM_LEN {
        return Err(format!("longer than {MAX_PARAM_LEN} characters"));
    }
    let (addr_s, net_s) = match s.split_once('@') {
        Some((a, n)) => (Some(a), n),
        None => (None, s),
    };
    let builtin = LNDS
        .iter()
        .filter(|i| net_s.starts_with(i.name))
        .map(|i| (i.name.len(), i.lnd_type, i.addr_format));
    let plugin = extra
        .iter()
        .filter(|(n, _)| net_s.starts_with(n))
        .map(|(n, t)| (n.len(), *t, AddrFormat::Number));
    let Some((name_len, lnd_type, addr_format)) =
        builtin.chain(plugin).max_by_key(|(len, _, _)| *len)
    else {
        return Err(format!(
            "\"{net_s}\" does not start with a known network type (known: {})",
            known_names()
        ));
    };
    let info = DescrType {
        lnd_type,
        addr_format,
    };
    let rest = &net_s[name_len..];
    let nums = if rest.is_empty() {
        None
    } else {
        if info.lnd_type == lnd_type::LOLND {
            return Err("the loopback network \"lo\" takes no number".to_owned());
        }
        Some(
            parse_expr_list(rest, 0, u32::from(u16::MAX), true)
                .map_err(|r| format!("network number {r}"))?,
        )
    };
    let addr = match addr_s {
        None => None,
        Some("") => return Err("address range before \"@\" is empty".to_owned()),
        Some(a) => Some(match info.addr_format {
            AddrFormat::Ip => parse_ipv4_range(a)?,
            _ => AddrRange::Number(
                parse_expr_list(a, 0, u32::MAX, true).map_err(|r| format!("address {r}"))?,
            ),
        }),
    };
    Ok(NidDescr {
        lnd_type: info.lnd_type,
        nums,
        addr,
    })
}

/// The network type a descriptor names.
struct DescrType {
    lnd_type: u8,
    addr_format: AddrFormat,
}
