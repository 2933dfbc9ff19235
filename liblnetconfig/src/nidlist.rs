//! Client-side NID-range expansion (lnetctl.md §1.9): `6.6.[6-7].[0-4/2]@tcp`,
//! comma-separated items, host names resolved, for `ping` (and later
//! `discover`, `peer add`, `route add`).

use std::net::{Ipv4Addr, ToSocketAddrs};

use lnd_api::Nid;

use crate::errno::{EINVAL, ERANGE};

/// Why a NID list did not expand; `message` is upstream's text (quotes included).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct NidListError {
    /// Positive errno (EINVAL or ERANGE).
    pub errno: i32,
    /// The message.
    pub message: String,
}

fn err(errno: i32, what: &str) -> NidListError {
    NidListError {
        errno,
        message: format!("\"Unable to parse nidlist: {what}\""),
    }
}

/// Splits on commas that are not inside brackets.
fn split_items(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            ',' if depth <= 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out.into_iter().filter(|x| !x.is_empty()).collect()
}

/// Parses one bracket body: `1,2,3-4,0-8/2`, values ascending as written.
fn expand_bracket(body: &str, hex: bool) -> Result<Vec<u64>, NidListError> {
    let mut vals = Vec::new();
    let radix = if hex { 16 } else { 10 };
    let num = |t: &str, after: char| -> Result<u64, NidListError> {
        if t.is_empty() || !t.chars().all(|c| c.is_digit(radix)) {
            if t.chars().any(|c| !c.is_digit(radix)) {
                return Err(err(EINVAL, "invalid character in range"));
            }
            return Err(err(ERANGE, &format!("range needs number after {after}")));
        }
        u64::from_str_radix(t, radix).map_err(|_| err(ERANGE, "range is wrong order"))
    };
    for (i, elem) in body.split(',').enumerate() {
        if elem.is_empty() {
            return Err(if i == 0 {
                err(EINVAL, "invalid character in range")
            } else {
                err(ERANGE, "range needs number after ,")
            });
        }
        let (range, step) = match elem.split_once('/') {
            Some((r, s)) => (r, Some(num(s, '/')?)),
            None => (elem, None),
        };
        let (lo, hi) = match range.split_once('-') {
            Some((a, b)) => (num(a, ',')?, num(b, '-')?),
            None => {
                let v = num(range, ',')?;
                (v, v)
            }
        };
        if lo > hi {
            return Err(err(ERANGE, "range is wrong order"));
        }
        let step = step.unwrap_or(1).max(1);
        let mut v = lo;
        while v <= hi {
            vals.push(v);
            if vals.len() > 1 << 16 {
                return Err(err(ERANGE, "range is wrong order"));
            }
            v += step;
        }
    }
    Ok(vals)
}

/// Expands one item with brackets into its NID texts (leftmost bracket slowest).
fn expand_item(item: &str) -> Result<Vec<String>, NidListError> {
    let hex = item.contains(':');
    let mut parts: Vec<Vec<String>> = Vec::new();
    let mut rest = item;
    while let Some(open) = rest.find(['[', ']']) {
        if rest.as_bytes()[open] == b']' {
            return Err(err(EINVAL, "improper bracket ordering"));
        }
        parts.push(vec![rest[..open].to_string()]);
        let after = &rest[open + 1..];
        let close = after
            .find(']')
            .ok_or_else(|| err(EINVAL, "incomplete bracket set"))?;
        let body = &after[..close];
        if body.contains('[') {
            return Err(err(EINVAL, "invalid character in range"));
        }
        let vals = expand_bracket(body, hex)?;
        parts.push(
            vals.iter()
                .map(|v| if hex { format!("{v:x}") } else { v.to_string() })
                .collect(),
        );
        rest = &after[close + 1..];
    }
    if rest.contains(']') {
        return Err(err(EINVAL, "improper bracket ordering"));
    }
    parts.push(vec![rest.to_string()]);
    let mut out = vec![String::new()];
    for p in parts {
        let mut next = Vec::with_capacity(out.len() * p.len());
        for prefix in &out {
            for s in &p {
                next.push(format!("{prefix}{s}"));
            }
        }
        out = next;
    }
    Ok(out)
}

/// Parses one NID the way the client does: a strict NID, or a host name
/// (an address starting with a letter) resolved to its first IPv4 address.
/// `extra` names the network types plugins provide (`vnd`).
pub fn parse_client_nid(s: &str, extra: &crate::render::NetTypes) -> Option<Nid> {
    let extra: Vec<(&str, u8)> = extra.iter().map(|(n, t)| (n.as_str(), *t)).collect();
    if let Ok(n) = Nid::parse_with(s, &extra) {
        return Some(n);
    }
    let (addr, net) = s.rsplit_once('@')?;
    let net = lnd_api::NetId::parse_with(net, &extra).ok()?;
    if !addr.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return None;
    }
    let ip = (addr, 0u16)
        .to_socket_addrs()
        .ok()?
        .find_map(|a| match a.ip() {
            std::net::IpAddr::V4(v4) => Some(v4),
            std::net::IpAddr::V6(_) => None,
        })?;
    if ip == Ipv4Addr::LOCALHOST {
        return None;
    }
    Some(Nid::new4(net, u32::from(ip)))
}

/// Expands the words of a NID list into NIDs, in order (lnetctl.md §1.9);
/// `extra` names the network types plugins provide.
pub fn expand(words: &[String], extra: &crate::render::NetTypes) -> Result<Vec<Nid>, NidListError> {
    let mut out = Vec::new();
    for word in words {
        if word.contains('*') {
            return Err(NidListError {
                errno: EINVAL,
                message: "asterisk not allowed in nidstring".into(),
            });
        }
        if word.contains("<?>") {
            return Err(err(EINVAL, "LNET_ANY_NID is unsupported"));
        }
        if !word.contains('@') {
            return Err(err(EINVAL, "no valid NIDs in string"));
        }
        for item in split_items(word) {
            let texts = if item.contains(['[', ']']) {
                expand_item(item)?
            } else {
                vec![item.to_string()]
            };
            for t in texts {
                let nid = parse_client_nid(&t, extra)
                    .ok_or_else(|| err(EINVAL, "invalid NID in nidstr"))?;
                out.push(nid);
            }
        }
    }
    if out.is_empty() {
        return Err(NidListError {
            errno: crate::errno::ENOENT,
            message: "Unable to parse nidlist: did not expand to any nids".into(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(s: &str) -> Vec<String> {
        expand(&[s.to_string()], &[])
            .expect("expands")
            .iter()
            .map(Nid::to_string)
            .collect()
    }

    #[test]
    fn spec_examples() {
        assert_eq!(
            texts("6.6.[6-7].[0-4/2]@tcp"),
            [
                "6.6.6.0@tcp",
                "6.6.6.2@tcp",
                "6.6.6.4@tcp",
                "6.6.7.0@tcp",
                "6.6.7.2@tcp",
                "6.6.7.4@tcp"
            ]
        );
        assert_eq!(texts("[6-12/4]@gni"), ["6@gni", "10@gni"]);
        assert_eq!(
            texts("5.5.5.[1,2,3-4]@o2ib"),
            [
                "5.5.5.1@o2ib",
                "5.5.5.2@o2ib",
                "5.5.5.3@o2ib",
                "5.5.5.4@o2ib"
            ]
        );
        assert_eq!(
            texts("[15-16/3].[17-19/4].[1].[5-20/5]@tcp"),
            [
                "15.17.1.5@tcp",
                "15.17.1.10@tcp",
                "15.17.1.15@tcp",
                "15.17.1.20@tcp"
            ]
        );
        assert_eq!(texts("0@lo,10.0.0.1@tcp1"), ["0@lo", "10.0.0.1@tcp1"]);
    }

    #[test]
    fn errors() {
        let e = |s: &str| expand(&[s.to_string()], &[]).expect_err(s);
        assert_eq!(
            e("1.1.1.*@tcp").message,
            "asterisk not allowed in nidstring"
        );
        assert!(e("<?>").message.contains("LNET_ANY_NID"));
        assert!(e("10.0.0.1").message.contains("no valid NIDs"));
        assert!(e("10.0.0.[1@tcp")
            .message
            .contains("incomplete bracket set"));
        assert!(e("10.0.0.]1[@tcp")
            .message
            .contains("improper bracket ordering"));
        assert_eq!(e("10.0.0.[1-]@tcp").errno, ERANGE);
        assert_eq!(
            e("10.0.0.[3-1]@tcp").message,
            "\"Unable to parse nidlist: range is wrong order\""
        );
        assert!(e("10.0.0.[a]@tcp").message.contains("invalid character"));
        assert!(e("1@tcp").message.contains("invalid NID in nidstr"));
        assert!(e("256.256.256.256@tcp").message.contains("invalid NID"));
    }
}
