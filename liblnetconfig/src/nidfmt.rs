//! Temporary NID/net text conversions, until `lnd_api::Nid`/`NetId` get their
//! own `Display`/`FromStr` (being written on another branch). Kept private and
//! small: classic dotted-quad and numeric addresses, IPv6 printing, `0@lo`.
// TODO(nid branch): replace with lnd_api's Display/FromStr and delete this file.

use std::net::{Ipv4Addr, Ipv6Addr};

use lnd_api::{lnd_type, NetId, Nid};

/// LND names and type numbers (nidstrings.c `libcfs_netstrfns`), whether the
/// address is an IP address.
const TYPES: &[(&str, u8, bool)] = &[
    ("tcp", lnd_type::SOCKLND, true),
    ("o2ib", lnd_type::O2IBLND, true),
    ("lo", lnd_type::LOLND, false),
    ("gni", lnd_type::GNILND, false),
    ("gip", lnd_type::GNIIPLND, true),
    ("ptlf", lnd_type::PTL4LND, false),
    ("kfi", lnd_type::KFILND, false),
    ("efa", lnd_type::EFALND, true),
    ("bxi3f", lnd_type::BXI3LND, false),
];

fn type_name(t: u8) -> Option<(&'static str, bool)> {
    TYPES.iter().find(|x| x.1 == t).map(|x| (x.0, x.2))
}

/// `tcp`, `tcp1`, `lo`, or `<type:num>` for an unknown type.
pub(crate) fn net_to_string(net: NetId) -> String {
    match type_name(net.lnd_type) {
        Some((n, _)) if net.num == 0 => n.to_string(),
        Some((n, _)) => format!("{n}{}", net.num),
        None => format!("<{}:{}>", net.lnd_type, net.num),
    }
}

/// Parses `tcp`, `tcp1`, `o2ib3`, `lo`; `None` for anything else.
pub(crate) fn parse_net(s: &str) -> Option<NetId> {
    let s = s.trim();
    for (name, t, _) in TYPES {
        if let Some(rest) = s.strip_prefix(name) {
            if rest.is_empty() {
                return Some(NetId::new(*t, 0));
            }
            if *t == lnd_type::LOLND || !rest.bytes().all(|b| b.is_ascii_digit()) {
                continue;
            }
            return rest.parse::<u16>().ok().map(|n| NetId::new(*t, n));
        }
    }
    None
}

/// `10.0.0.1@tcp`, `0@lo`, `12@gni1`, `<?>`.
pub(crate) fn nid_to_string(nid: &Nid) -> String {
    if nid.is_any() {
        return "<?>".to_string();
    }
    let net = net_to_string(nid.net());
    let ip = type_name(nid.lnd_type).is_some_and(|t| t.1);
    let addr = match (nid.addr4(), ip) {
        (Some(a), true) => Ipv4Addr::from(a).to_string(),
        (Some(a), false) => a.to_string(),
        (None, _) => Ipv6Addr::from(nid.addr).to_string(),
    };
    format!("{addr}@{net}")
}

/// Parses a NID strictly (no host names): dotted quad or IPv6 for IP LNDs,
/// decimal/hex for numeric LNDs, `0@lo`.
pub(crate) fn parse_nid(s: &str) -> Option<Nid> {
    let s = s.trim();
    if s == "<?>" {
        return Some(Nid::ANY);
    }
    let (addr, net) = s.rsplit_once('@')?;
    let net = parse_net(net)?;
    let ip = type_name(net.lnd_type).is_some_and(|t| t.1);
    if net.lnd_type == lnd_type::LOLND {
        return (addr == "0").then_some(Nid::LO_0);
    }
    if ip {
        if let Ok(a) = addr.parse::<Ipv4Addr>() {
            return Some(Nid::new4(net, u32::from(a)));
        }
        return addr
            .parse::<Ipv6Addr>()
            .ok()
            .map(|a| Nid::new16(net, a.octets()));
    }
    let v = if let Some(h) = addr.strip_prefix("0x").or_else(|| addr.strip_prefix("0X")) {
        u32::from_str_radix(h, 16).ok()?
    } else {
        addr.parse::<u32>().ok()?
    };
    Some(Nid::new4(net, v))
}

/// Serde as text, for NIDs in the control protocol.
pub(crate) mod serde_nid {
    use super::*;
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(n: &Nid, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&nid_to_string(n))
    }
    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Nid, D::Error> {
        let s = String::deserialize(d)?;
        parse_nid(&s).ok_or_else(|| D::Error::custom(format!("invalid NID {s:?}")))
    }

    /// `Option<Nid>` as an optional string.
    pub(crate) mod opt {
        use super::*;
        pub(crate) fn serialize<S: Serializer>(n: &Option<Nid>, s: S) -> Result<S::Ok, S::Error> {
            match n {
                Some(n) => s.serialize_some(&nid_to_string(n)),
                None => s.serialize_none(),
            }
        }
        pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Option<Nid>, D::Error> {
            match Option::<String>::deserialize(d)? {
                None => Ok(None),
                Some(s) => parse_nid(&s)
                    .map(Some)
                    .ok_or_else(|| D::Error::custom(format!("invalid NID {s:?}"))),
            }
        }
    }

    /// `Vec<Nid>` as a list of strings.
    pub(crate) mod vec {
        use super::*;
        use serde::ser::SerializeSeq;
        pub(crate) fn serialize<S: Serializer>(v: &[Nid], s: S) -> Result<S::Ok, S::Error> {
            let mut seq = s.serialize_seq(Some(v.len()))?;
            for n in v {
                seq.serialize_element(&nid_to_string(n))?;
            }
            seq.end()
        }
        pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Nid>, D::Error> {
            Vec::<String>::deserialize(d)?
                .iter()
                .map(|s| parse_nid(s).ok_or_else(|| D::Error::custom(format!("invalid NID {s:?}"))))
                .collect()
        }
    }
}

/// Serde as text, for networks in the control protocol.
pub(crate) mod serde_net {
    use super::*;
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(n: &NetId, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&net_to_string(*n))
    }
    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<NetId, D::Error> {
        let s = String::deserialize(d)?;
        parse_net(&s).ok_or_else(|| D::Error::custom(format!("invalid net {s:?}")))
    }

    /// `Option<NetId>`.
    pub(crate) mod opt {
        use super::*;
        pub(crate) fn serialize<S: Serializer>(n: &Option<NetId>, s: S) -> Result<S::Ok, S::Error> {
            match n {
                Some(n) => s.serialize_some(&net_to_string(*n)),
                None => s.serialize_none(),
            }
        }
        pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Option<NetId>, D::Error> {
            match Option::<String>::deserialize(d)? {
                None => Ok(None),
                Some(s) => parse_net(&s)
                    .map(Some)
                    .ok_or_else(|| D::Error::custom(format!("invalid net {s:?}"))),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for s in [
            "0@lo",
            "10.0.0.1@tcp",
            "192.168.1.2@tcp1",
            "12@gni",
            "2001:db8::1@tcp",
        ] {
            let n = parse_nid(s).expect("parses");
            assert_eq!(nid_to_string(&n), s);
        }
        assert_eq!(parse_nid("1@lo"), None);
        assert_eq!(parse_nid("10.0.0.1@foo"), None);
        assert_eq!(net_to_string(parse_net("tcp0").expect("net")), "tcp");
        assert_eq!(parse_net("lo1"), None);
    }
}
