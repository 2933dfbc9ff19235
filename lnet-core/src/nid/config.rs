//! The `networks=`, `ip2nets=` and `routes=` module parameters
//! (`lnet/lnet/config.c`).

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use super::expr::parse_expr_list;
use super::list::parse_ipv4_range;
use super::{
    known_names, lnd_type, parse_decimal, AddrRange, NetId, Nid, NidError, NumExprList, RangeExpr,
    MAX_PARAM_LEN, MAX_ROUTES,
};

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
        Self::parse_with(s, &[])
    }

    /// Parses a `networks=` string that may also name the network types of
    /// `extra` (name, LND type), the types plugins provide (see
    /// [`NetId::parse_with`]). Such a network prints as `<type:num>`, which
    /// this parser reads back.
    pub fn parse_with(s: &str, extra: &[(&str, u8)]) -> Result<Self, NidError> {
        parse_networks(s, extra).map_err(|reason| NidError::Networks {
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

/// Whether a network's type is built in or one of `extra`.
fn is_known(net: NetId, extra: &[(&str, u8)]) -> bool {
    net.lnd_info().is_some() || extra.iter().any(|(_, t)| *t == net.lnd_type)
}

/// The error for a network of a type neither built in nor in `extra`.
fn unknown_type(name: &str, extra: &[(&str, u8)]) -> String {
    let mut known = known_names();
    for (n, _) in extra {
        known.push_str(", ");
        known.push_str(n);
    }
    format!("network \"{name}\" is not of a known type (known: {known})")
}

/// Checks that no interface is given twice for one network.
fn check_duplicate_ifaces(entries: &[NetSpec]) -> Result<(), String> {
    for (k, e) in entries.iter().enumerate() {
        for (j, iface) in e.interfaces.iter().enumerate() {
            let earlier = entries[..k]
                .iter()
                .filter(|x| x.net == e.net)
                .flat_map(|x| x.interfaces.iter())
                .chain(e.interfaces[..j].iter());
            if earlier.into_iter().any(|i| i.name == iface.name) {
                return Err(format!(
                    "interface {} is given twice for network {}",
                    iface.name, e.net
                ));
            }
        }
    }
    Ok(())
}

fn parse_networks(s: &str, extra: &[(&str, u8)]) -> Result<Networks, String> {
    if s.len() > MAX_PARAM_LEN {
        return Err(format!("longer than {MAX_PARAM_LEN} characters"));
    }
    let mut entries: Vec<NetSpec> = Vec::new();
    let mut rest = s.trim_start();
    while !rest.is_empty() {
        // `<type:num>` is one token, the form unknown types print in.
        let end = match rest.strip_prefix('<') {
            Some(r) => r.find('>').map_or(rest.len(), |i| i + 2),
            None => rest.find(is_name_end).unwrap_or(rest.len()),
        };
        let (name, after) = rest.split_at(end);
        if name.is_empty() {
            let c = after.chars().next().unwrap_or(' ');
            return Err(format!("expected a network name, found \"{c}\""));
        }
        let net = NetId::parse_with(name, extra).map_err(|e| e.kind.to_string())?;
        if !is_known(net, extra) {
            return Err(unknown_type(name, extra));
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
        entries.push(NetSpec {
            net,
            interfaces,
            cpts,
        });
    }
    if entries.is_empty() {
        return Err("no networks (expected e.g. tcp0(eth0) or o2ib1(ib0)[0,1])".to_owned());
    }
    // The same net twice adds NIs to it; an interface may appear once.
    check_duplicate_ifaces(&entries)?;
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
        Self::parse_with(s, &[])
    }

    /// Parses an `ip2nets=` string whose networks may also be of the types
    /// of `extra` (see [`Networks::parse_with`]).
    pub fn parse_with(s: &str, extra: &[(&str, u8)]) -> Result<Self, NidError> {
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
            let networks = Networks::parse_with(nets_s, extra).map_err(|e| match e {
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
        check_duplicate_ifaces(&out.entries).map_err(|why| NidError::Ip2Nets {
            input: self.to_string(),
            reason: format!("the matching entries give networks=\"{out}\": {why}"),
        })?;
        Ok(out)
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
        Self::parse_with(s, &[])
    }

    /// Parses a `routes=` string whose nets and gateways may also be of the
    /// types of `extra` (see [`NetId::parse_with`], [`Nid::parse_with`]).
    pub fn parse_with(s: &str, extra: &[(&str, u8)]) -> Result<Self, NidError> {
        let err = |reason: String| NidError::Routes {
            input: s.to_owned(),
            reason,
        };
        if s.len() > MAX_PARAM_LEN {
            return Err(err(format!("longer than {MAX_PARAM_LEN} characters")));
        }
        let mut routes = Vec::new();
        for entry in split_entries(s) {
            parse_route_entry(entry, extra, &mut routes)
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
fn parse_route_entry(
    entry: &str,
    extra: &[(&str, u8)],
    out: &mut Vec<RouteSpec>,
) -> Result<(), String> {
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
        let net = NetId::parse_with(&n, extra).map_err(|e| e.to_string())?;
        if !is_known(net, extra) {
            return Err(unknown_type(&n, extra));
        }
        if net.lnd_type == lnd_type::LOLND {
            return Err("cannot route to the loopback network lo".to_owned());
        }
        nets.push(net);
    }
    let mut gateways = Vec::new();
    for &tok in rest {
        for g in expand_brackets(tok)? {
            gateways.push(parse_gateway(&g, extra)?);
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
fn parse_gateway(g: &str, extra: &[(&str, u8)]) -> Result<(Nid, u32), String> {
    // The priority's ':' comes after the '@' (IPv6 addresses have colons)
    // and after a numeric network `<type:num>`.
    let mut from = g.find('@').unwrap_or(0);
    if g[from..].starts_with("@<") {
        from += g[from..].find('>').unwrap_or(0);
    }
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
    let nid = Nid::parse_with(nid_s, extra).map_err(|e| format!("gateway {e}"))?;
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
