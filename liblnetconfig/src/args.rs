//! Raw command-line values become validated requests here, before anything
//! is sent (lnetctl.md §2): lnetctl only collects the words.

use lnd_api::Nid;

use crate::errno::{EINVAL, ENOENT};
use crate::nidlist;
use crate::proto::{NetAddRequest, PingRequest};

/// A request that cannot be built, with upstream's way of reporting it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ArgError {
    /// A bare line on stdout (lnetctl.md §1.8 c); rc -22.
    Plain(String),
    /// A classic (cYAML) block on stderr.
    Classic {
        /// Top key (`ni`, `add`...).
        cmd: &'static str,
        /// Entity key.
        entity: &'static str,
        /// Signed errno printed.
        errno: i32,
        /// Message.
        descr: String,
        /// Return code.
        rc: i32,
    },
    /// An NL-style block on stderr; rc -22 unless said otherwise.
    Nl {
        /// Operation flag.
        flag: &'static str,
        /// Object name.
        object: &'static str,
        /// Positive errno.
        errno: i32,
        /// Message.
        descr: String,
        /// Return code.
        rc: i32,
    },
    /// Nothing printed, only a return code (`ping --source` with a bad NID).
    Silent(i32),
}

/// C `strtol(s, &end, 0)` with a full-string check: decimal, `0x` hex,
/// leading-`0` octal, optional sign; `None` on trailing garbage or overflow.
pub fn strtol(s: &str) -> Option<i64> {
    let t = s.trim_start();
    let (neg, t) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let (radix, digits) = if let Some(h) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        (16, h)
    } else if t.len() > 1 && t.starts_with('0') {
        (8, &t[1..])
    } else {
        (10, t)
    };
    if digits.is_empty() {
        return None;
    }
    let v = i64::from_str_radix(digits, radix).ok()?;
    Some(if neg { -v } else { v })
}

/// Checks the shape of a `--net` value (`tcp1`, `o2ib`, or a plugin's own
/// type such as `vnd2`: only lnetd knows the types its plugins provide, so it
/// resolves the name); `flag` is the NL operation for the error.
pub fn net(text: &str, flag: &'static str) -> Result<String, ArgError> {
    let t = text.trim();
    let well_formed = !t.is_empty()
        && t.len() <= 64
        && (t
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            || t.parse::<lnd_api::NetId>().is_ok());
    if well_formed {
        return Ok(t.to_string());
    }
    Err(ArgError::Nl {
        flag,
        object: "net",
        errno: ENOENT,
        descr: format!("cannot parse net '{text}'"),
        rc: -EINVAL,
    })
}

/// The raw words of `net add`.
#[derive(Clone, Debug, Default)]
pub struct NetAddArgs {
    /// `--net`.
    pub net: Option<String>,
    /// `--if`.
    pub interfaces: Option<String>,
    /// `--peer-timeout`.
    pub peer_timeout: Option<String>,
    /// `--peer-credits`.
    pub peer_credits: Option<String>,
    /// `--peer-buffer-credits`.
    pub peer_buffer_credits: Option<String>,
    /// `--credits`.
    pub credits: Option<String>,
    /// `--conns-per-peer`.
    pub conns_per_peer: Option<String>,
    /// `--tos`.
    pub tos: Option<String>,
    /// `--nid`: a comma list of NIDs of one net.
    pub nid: Option<String>,
    /// `--cpt`: a CPT expression (`[0,1]`).
    pub cpt: Option<String>,
    /// Network types plugins provide (for `--nid` on their nets).
    pub net_types: Vec<(String, u8)>,
    /// `--ip2net`: a legacy ip2nets string.
    pub ip2net: Option<String>,
}

/// Splits on `sep` outside parentheses and brackets.
fn split_outside(s: &str, sep: char) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0i32, 0usize);
    for (i, c) in s.char_indices() {
        match c {
            '(' | '[' => depth += 1,
            ')' | ']' => depth -= 1,
            c if c == sep && depth == 0 => {
                out.push(&s[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

/// Parses a legacy ip2nets string (`tcp(eth0) 192.168.0.[2,4]; tcp
/// 192.168.0.*`, semantics.md §15.2): one rule per network of each entry,
/// entries separated by `;` or newlines, `#` comments.
pub fn ip2net_rules(text: &str) -> Result<Vec<crate::proto::Ip2NetsRule>, ArgError> {
    let bad = |why: String| ArgError::Nl {
        flag: "add",
        object: "net",
        errno: EINVAL,
        descr: format!("cannot setup ip2nets: {why}"),
        rc: -EINVAL,
    };
    let mut rules = Vec::new();
    for entry in text.split([';', '\n']) {
        let entry = entry.split('#').next().unwrap_or("").trim();
        if entry.is_empty() {
            continue;
        }
        let mut tokens = entry.split_whitespace();
        let nets = tokens.next().unwrap_or("");
        let ranges: Vec<String> = tokens.map(str::to_string).collect();
        for n in split_outside(nets, ',') {
            let (name, ifs) = match n.split_once('(') {
                Some((name, rest)) => {
                    let inner = rest
                        .strip_suffix(')')
                        .ok_or_else(|| bad(format!("unbalanced parentheses in '{n}'")))?;
                    let ifs = split_outside(inner, ',')
                        .into_iter()
                        .map(|i| i.trim().to_string())
                        .collect::<Vec<_>>();
                    (name, ifs)
                }
                None => (n, Vec::new()),
            };
            let name = net(name, "add").map_err(|_| bad(format!("invalid network '{name}'")))?;
            rules.push(crate::proto::Ip2NetsRule {
                net: name,
                interfaces: ifs,
                ip_ranges: ranges.clone(),
            });
        }
    }
    if rules.is_empty() {
        return Err(bad(format!("no rule in '{text}'")));
    }
    Ok(rules)
}

fn int_opt(v: &Option<String>, keep: impl Fn(i64) -> bool) -> Option<i32> {
    v.as_deref()
        .and_then(strtol)
        .and_then(|x| i32::try_from(x).ok())
        .filter(|x| keep(i64::from(*x)))
}

/// Parses a CPT expression (`[0,1]`, `[0-3]`, `[0-7/2]`, `[1,3-5]`,
/// lnetctl.md §1.9): values ascending in the order written, duplicates
/// dropped. `None` when malformed (`[1-0]`, `[]`).
pub fn cpt_expr(text: &str) -> Option<Vec<u32>> {
    let inner = text.trim().strip_prefix('[')?.strip_suffix(']')?;
    let mut out: Vec<u32> = Vec::new();
    for el in inner.split(',') {
        let el = el.trim();
        let (range, step) = match el.split_once('/') {
            Some((r, st)) => (r, st.trim().parse::<u32>().ok().filter(|s| *s > 0)?),
            None => (el, 1),
        };
        let (a, b) = match range.split_once('-') {
            Some((a, b)) => (a.trim().parse::<u32>().ok()?, b.trim().parse::<u32>().ok()?),
            None => {
                let v = range.trim().parse::<u32>().ok()?;
                (v, v)
            }
        };
        if a > b || b > 4095 {
            return None;
        }
        for v in (a..=b).step_by(step as usize) {
            if !out.contains(&v) {
                out.push(v);
            }
        }
    }
    (!out.is_empty()).then_some(out)
}

/// Splits an `--if` list on commas outside brackets into names and their
/// own CPT lists (`eth0[0,1]`).
/// An interface name and its own CPT list.
type IfCpts = (String, Option<Vec<u32>>);

fn interfaces(list: &str) -> Result<Vec<IfCpts>, ArgError> {
    let bad = || ArgError::Classic {
        cmd: "add",
        entity: "ni",
        errno: -EINVAL,
        descr: "bad interface list".to_string(),
        rc: -EINVAL,
    };
    let mut items = Vec::new();
    let mut depth = 0i32;
    let mut cur = String::new();
    for c in list.chars() {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            ',' if depth == 0 => {
                items.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        if !(0..=1).contains(&depth) {
            return Err(bad());
        }
        cur.push(c);
    }
    if depth != 0 {
        return Err(bad());
    }
    items.push(cur);
    let mut out = Vec::new();
    for item in items {
        let item = item.trim();
        let (name, cpts) = match item.find('[') {
            Some(at) => (&item[..at], Some(cpt_expr(&item[at..]).ok_or_else(bad)?)),
            None => (item, None),
        };
        if name.is_empty() || name.len() >= 128 || name.contains(']') {
            return Err(bad());
        }
        out.push((name.to_string(), cpts));
    }
    Ok(out)
}

/// The interface names of an `--if` list (CPT brackets dropped).
pub fn interface_names(list: &str) -> Result<Vec<String>, ArgError> {
    Ok(interfaces(list)?.into_iter().map(|(n, _)| n).collect())
}

/// C `atoi`: optional sign and leading digits; 0 when there are none.
pub fn atoi(s: &str) -> i64 {
    let t = s.trim_start();
    let (neg, t) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let digits: String = t
        .chars()
        .take_while(char::is_ascii_digit)
        .take(18)
        .collect();
    let v = digits.parse::<i64>().unwrap_or(0);
    if neg {
        -v
    } else {
        v
    }
}

/// Parses a `--nid` list: strict NIDs (no host names), all of one net.
pub fn nid_list(list: &str, extra: &[(String, u8)]) -> Result<Vec<Nid>, ArgError> {
    let bad = |why: &str| ArgError::Classic {
        cmd: "add",
        entity: "ni",
        errno: -EINVAL,
        descr: format!("bad NID list{why}"),
        rc: -EINVAL,
    };
    let extra: Vec<(&str, u8)> = extra.iter().map(|(n, t)| (n.as_str(), *t)).collect();
    let mut out: Vec<Nid> = Vec::new();
    for item in list.split(',') {
        let nid = Nid::parse_with(item.trim(), &extra).map_err(|_| bad(""))?;
        if out.first().is_some_and(|f| f.net() != nid.net()) {
            return Err(bad(": all NIDs of one 'net add' must be on the same net"));
        }
        out.push(nid);
    }
    Ok(out)
}

/// Validates `net add` (lnetctl.md §2.2, client-side checks in upstream's order).
pub fn net_add(a: &NetAddArgs) -> Result<NetAddRequest, ArgError> {
    if a.nid.is_some() && a.net.is_some() {
        return Err(ArgError::Plain("--net is invalid with --nid option".into()));
    }
    if a.net.is_none() && a.nid.is_none() && a.ip2net.is_none() {
        return Err(ArgError::Plain(
            "missing mandatory parameters in NI config: 'network'".into(),
        ));
    }
    let conns_per_peer = match &a.conns_per_peer {
        None => None,
        Some(v) => match strtol(v) {
            Some(x) if x <= 127 && x >= i64::from(i32::MIN) => {
                Some(i32::try_from(x).unwrap_or(0)).filter(|x| *x > 0)
            }
            _ => {
                return Err(ArgError::Classic {
                    cmd: "ni",
                    entity: "add",
                    errno: -1,
                    descr: "invalid conns-per-peer value (valid range 0-127)".into(),
                    rc: -1,
                })
            }
        },
    };
    let tos = match &a.tos {
        None => None,
        Some(v) => match strtol(v) {
            Some(x) if (-1..=255).contains(&x) => Some(x as i32).filter(|x| *x >= 0),
            _ => {
                return Err(ArgError::Classic {
                    cmd: "ni",
                    entity: "add",
                    errno: -EINVAL,
                    descr: "Invalid ToS argument".into(),
                    rc: -EINVAL,
                })
            }
        },
    };
    let cpts = match &a.cpt {
        None => None,
        Some(c) => Some(cpt_expr(c).ok_or_else(|| ArgError::Classic {
            cmd: "add",
            entity: "ni",
            errno: -EINVAL,
            descr: format!("bad CPT expression '{c}' (e.g. [0,1])"),
            rc: -EINVAL,
        })?),
    };
    let ip2nets = match &a.ip2net {
        Some(t) => ip2net_rules(t)?,
        None => Vec::new(),
    };
    let (net, ifs, nids) = match (&a.net, &a.nid) {
        _ if !ip2nets.is_empty() => (ip2nets[0].net.clone(), Vec::new(), Vec::new()),
        (_, Some(list)) => {
            let nids = nid_list(list, &a.net_types)?;
            let extra: Vec<(&str, u8)> =
                a.net_types.iter().map(|(n, t)| (n.as_str(), *t)).collect();
            let net = nids
                .first()
                .map(|n| n.net().display_with(&extra).to_string())
                .unwrap_or_default();
            (net, Vec::new(), nids)
        }
        (Some(net_text), None) => {
            let Some(if_list) = &a.interfaces else {
                return Err(ArgError::Plain(
                    "creating a local NI needs at least one interface".into(),
                ));
            };
            let ifs = interfaces(if_list)?;
            (net(net_text, "add")?, ifs, Vec::new())
        }
        (None, None) => {
            return Err(ArgError::Plain(
                "missing mandatory parameters in NI config: 'network'".into(),
            ))
        }
    };
    Ok(NetAddRequest {
        net,
        interfaces: ifs.iter().map(|(n, _)| n.clone()).collect(),
        peer_timeout: int_opt(&a.peer_timeout, |x| x >= 0),
        peer_credits: int_opt(&a.peer_credits, |x| x > 0),
        peer_buffer_credits: int_opt(&a.peer_buffer_credits, |x| x > 0),
        credits: int_opt(&a.credits, |x| x > 0),
        conns_per_peer,
        tos,
        nids,
        cpts,
        interface_cpts: ifs.into_iter().map(|(_, c)| c).collect(),
        ip2nets,
    })
}

/// Validates `net del --net NET`.
pub fn net_del(net_text: Option<&str>) -> Result<String, ArgError> {
    let Some(t) = net_text else {
        return Err(ArgError::Plain(
            "missing mandatory parameters in NI config: 'network'".into(),
        ));
    };
    net(t, "del")
}

/// Validates `ping [--source NID] [--timeout S] NID...` (lnetctl.md §2.12).
/// `extra` names the network types plugins provide.
pub fn ping(
    targets: &[String],
    source: Option<&str>,
    timeout: Option<&str>,
    extra: &crate::render::NetTypes,
) -> Result<PingRequest, ArgError> {
    let names: Vec<(&str, u8)> = extra.iter().map(|(n, t)| (n.as_str(), *t)).collect();
    let source = match source {
        None => None,
        Some(s) => Some(Nid::parse_with(s, &names).map_err(|_| ArgError::Silent(-EINVAL))?),
    };
    // atol: leading digits, anything else ignored; 1 s (the default), <= 0
    // and >= 180 s are not sent.
    let secs = timeout.map(|t| {
        let t = t.trim_start();
        let end = t
            .char_indices()
            .find(|(i, c)| !(c.is_ascii_digit() || (*i == 0 && (*c == '-' || *c == '+'))))
            .map_or(t.len(), |(i, _)| i);
        t[..end].parse::<i64>().unwrap_or(0)
    });
    let timeout_ms = secs
        .filter(|s| *s != 1 && *s > 0 && *s < 180)
        .map(|s| s as u64 * 1000);
    let targets: Vec<Nid> = nidlist::expand(targets, extra).map_err(|e| ArgError::Nl {
        flag: "manage",
        object: "ping",
        errno: e.errno,
        descr: e.message,
        rc: -EINVAL,
    })?;
    Ok(PingRequest {
        targets,
        source,
        timeout_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strtol_like_c() {
        assert_eq!(strtol("12"), Some(12));
        assert_eq!(strtol("-1"), Some(-1));
        assert_eq!(strtol("0x10"), Some(16));
        assert_eq!(strtol("010"), Some(8));
        assert_eq!(strtol("0"), Some(0));
        assert_eq!(strtol("12a"), None);
        assert_eq!(strtol(""), None);
        assert_eq!(strtol("99999999999999999999"), None);
    }

    fn add(net: Option<&str>, ifs: Option<&str>) -> NetAddArgs {
        NetAddArgs {
            net: net.map(Into::into),
            interfaces: ifs.map(Into::into),
            ..NetAddArgs::default()
        }
    }

    #[test]
    fn net_add_checks() {
        assert_eq!(
            net_add(&add(None, Some("eth0"))),
            Err(ArgError::Plain(
                "missing mandatory parameters in NI config: 'network'".into()
            ))
        );
        assert_eq!(
            net_add(&add(Some("tcp"), None)),
            Err(ArgError::Plain(
                "creating a local NI needs at least one interface".into()
            ))
        );
        assert!(matches!(
            net_add(&add(Some("tcp 1"), Some("eth0"))),
            Err(ArgError::Nl {
                flag: "add",
                object: "net",
                ..
            })
        ));
        let mut a = add(Some("tcp1"), Some("eth0,eth1"));
        a.peer_timeout = Some("-1".into());
        a.peer_credits = Some("16".into());
        a.credits = Some("junk".into());
        a.conns_per_peer = Some("-1".into());
        a.tos = Some("0x10".into());
        let r = net_add(&a).expect("valid");
        assert_eq!(r.interfaces, ["eth0", "eth1"]);
        assert_eq!(r.peer_timeout, None);
        assert_eq!(r.peer_credits, Some(16));
        assert_eq!(r.credits, None, "unparsable values are silently ignored");
        assert_eq!(r.conns_per_peer, None, "negative = not given");
        assert_eq!(r.tos, Some(16));
        a.conns_per_peer = Some("128".into());
        assert!(matches!(
            net_add(&a),
            Err(ArgError::Classic {
                rc: -1,
                errno: -1,
                ..
            })
        ));
        a.conns_per_peer = None;
        a.tos = Some("256".into());
        assert!(matches!(
            net_add(&a),
            Err(ArgError::Classic { rc: -22, .. })
        ));
        let r = net_add(&add(Some("tcp"), Some("eth0[0,1],eth1"))).expect("brackets");
        assert_eq!(r.interfaces, ["eth0", "eth1"]);
        assert_eq!(r.interface_cpts, [Some(vec![0, 1]), None]);
        for bad in ["eth0[0,1", "eth0]", "eth0[1-0]", "eth0[]", ",eth0"] {
            assert!(
                matches!(
                    net_add(&add(Some("tcp"), Some(bad))),
                    Err(ArgError::Classic {
                        rc: -22,
                        entity: "ni",
                        ..
                    })
                ),
                "{bad}"
            );
        }
        let mut n = add(None, None);
        n.nid = Some("10.0.0.1@tcp1,10.0.0.2@tcp1".into());
        n.cpt = Some("[0]".into());
        let r = net_add(&n).expect("--nid");
        assert_eq!(r.net, "tcp1");
        assert_eq!(r.nids.len(), 2);
        assert_eq!(r.cpts, Some(vec![0]));
        n.net = Some("tcp1".into());
        assert_eq!(
            net_add(&n),
            Err(ArgError::Plain("--net is invalid with --nid option".into()))
        );
        n.net = None;
        n.nid = Some("10.0.0.1@tcp,10.0.0.2@tcp1".into());
        assert!(matches!(net_add(&n), Err(ArgError::Classic { .. })));
        n.nid = Some("1@tcp".into());
        assert!(matches!(net_add(&n), Err(ArgError::Classic { .. })));
    }

    #[test]
    fn cpt_expressions() {
        assert_eq!(cpt_expr("[0,1]"), Some(vec![0, 1]));
        assert_eq!(cpt_expr("[0-3]"), Some(vec![0, 1, 2, 3]));
        assert_eq!(cpt_expr("[0-7/2]"), Some(vec![0, 2, 4, 6]));
        assert_eq!(cpt_expr("[1,3-5]"), Some(vec![1, 3, 4, 5]));
        assert_eq!(cpt_expr("[1-0]"), None);
        assert_eq!(cpt_expr("[]"), None);
        assert_eq!(cpt_expr("0,1"), None);
    }

    #[test]
    fn ping_args() {
        let t = |s: &str| vec![s.to_string()];
        let r = ping(&t("0@lo"), None, Some("1"), &[]).expect("valid");
        assert_eq!(r.timeout_ms, None, "the default is not sent");
        let r = ping(&t("0@lo"), None, Some("5"), &[]).expect("valid");
        assert_eq!(r.timeout_ms, Some(5000));
        let r = ping(&t("0@lo"), None, Some("200"), &[]).expect("valid");
        assert_eq!(r.timeout_ms, None);
        assert_eq!(
            ping(&t("0@lo"), Some("x@tcp"), None, &[]),
            Err(ArgError::Silent(-22))
        );
        assert!(matches!(
            ping(&t("1@tcp"), None, None, &[]),
            Err(ArgError::Nl {
                flag: "manage",
                object: "ping",
                ..
            })
        ));
    }
}
