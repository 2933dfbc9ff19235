//! Choosing an NI's interface and address (`lnet_inet_enumerate()` and
//! `ksocknal_startup()`'s interface pick in upstream).
//!
//! The choice is a pure function over a snapshot of the host's addresses
//! ([`IfAddr`]), read with `getifaddrs(3)` through `nix` ([`snapshot`]).

use std::net::IpAddr;

use lnd_api::{errno, LndError};

/// One address of one interface (an interface without addresses appears
/// once with `addr: None`, so that its existence is known).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IfAddr {
    /// Interface name, with the address label if any (`eth0:1`).
    pub name: String,
    /// `IFF_UP`.
    pub up: bool,
    /// `IFF_RUNNING`: the link is operationally up (carrier, RFC 2863
    /// operstate UP or UNKNOWN).
    pub running: bool,
    /// `IFF_LOOPBACK`.
    pub loopback: bool,
    /// The address, if this entry has one.
    pub addr: Option<IpAddr>,
    /// Prefix length of the address.
    pub prefix: u8,
}

/// The chosen interface and address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chosen {
    /// The interface name as reported.
    pub name: String,
    /// The NI's address.
    pub addr: IpAddr,
}

/// Reads the host's interfaces and addresses.
pub fn snapshot() -> Result<Vec<IfAddr>, LndError> {
    use nix::net::if_::InterfaceFlags;
    let it = nix::ifaddrs::getifaddrs().map_err(|e| {
        LndError::new(
            e as i32,
            format!("cannot list network interfaces (getifaddrs): {e}"),
        )
    })?;
    let mut out = Vec::new();
    for a in it {
        let up = a.flags.contains(InterfaceFlags::IFF_UP);
        let running = a.flags.contains(InterfaceFlags::IFF_RUNNING);
        let loopback = a.flags.contains(InterfaceFlags::IFF_LOOPBACK);
        let addr = a.address.as_ref().and_then(|s| {
            s.as_sockaddr_in()
                .map(|v| IpAddr::V4(v.ip()))
                .or_else(|| s.as_sockaddr_in6().map(|v| IpAddr::V6(v.ip())))
        });
        let prefix = a
            .netmask
            .as_ref()
            .and_then(|s| {
                s.as_sockaddr_in()
                    .map(|v| u32::from(v.ip()).count_ones() as u8)
                    .or_else(|| {
                        s.as_sockaddr_in6()
                            .map(|v| u128::from(v.ip()).count_ones() as u8)
                    })
            })
            .unwrap_or(0);
        out.push(IfAddr {
            name: a.interface_name,
            up,
            running,
            loopback,
            addr,
            prefix,
        });
    }
    Ok(out)
}

/// Link speed of an interface in Mb/s (`/sys/class/net/IF/speed`), if known.
pub fn link_speed_mbps(name: &str) -> Option<u64> {
    let base = name.split(':').next().unwrap_or(name);
    let s = std::fs::read_to_string(format!("/sys/class/net/{base}/speed")).ok()?;
    s.trim()
        .parse::<i64>()
        .ok()
        .filter(|v| *v > 0)
        .map(|v| v as u64)
}

fn in_prefix(net: &IpAddr, prefix: u8, a: &IpAddr) -> bool {
    match (net, a) {
        (IpAddr::V4(n), IpAddr::V4(x)) => {
            let m = if prefix == 0 {
                0
            } else {
                u32::MAX << (32 - prefix.min(32) as u32)
            };
            u32::from(*n) & m == u32::from(*x) & m
        }
        (IpAddr::V6(n), IpAddr::V6(x)) => {
            let m = if prefix == 0 {
                0
            } else {
                u128::MAX << (128 - prefix.min(128) as u32)
            };
            u128::from(*n) & m == u128::from(*x) & m
        }
        _ => false,
    }
}

/// Picks the interface and address for an NI of `net_name`.
///
/// * `wanted` names an interface: its first IPv4 address, else its first
///   IPv6 address. It must exist and be up.
/// * `wanted` is an IP address (how `--nid A@NET` reaches the LND): the
///   interface that owns it, or a loopback interface whose prefix holds it
///   (any `127.x.y.z` is usable on `lo`).
/// * `None`: the first up, non-loopback interface with an IPv4 address.
pub fn choose(list: &[IfAddr], net_name: &str, wanted: Option<&str>) -> Result<Chosen, LndError> {
    let Some(w) = wanted else {
        return list
            .iter()
            .find(|a| a.up && !a.loopback && matches!(a.addr, Some(IpAddr::V4(_))))
            .and_then(|a| {
                Some(Chosen {
                    name: a.name.clone(),
                    addr: a.addr?,
                })
            })
            .ok_or_else(|| {
                LndError::new(
                    errno::ENODEV,
                    format!(
                        "cannot add net {net_name}: no interface is up with an IPv4 address; \
                         name one with --if (list interfaces with \"ip -br addr\")"
                    ),
                )
            });
    };
    if let Ok(ip) = w.parse::<IpAddr>() {
        let owner = list
            .iter()
            .find(|a| a.addr == Some(ip))
            .or_else(|| {
                list.iter()
                    .find(|a| a.loopback && a.addr.is_some_and(|n| in_prefix(&n, a.prefix, &ip)))
            })
            .ok_or_else(|| {
                LndError::new(
                    errno::ENODEV,
                    format!(
                        "cannot add net {net_name}: no interface has address {ip} \
                         (list addresses with \"ip -br addr\")"
                    ),
                )
            })?;
        if !owner.up {
            return Err(down(net_name, &owner.name));
        }
        return Ok(Chosen {
            name: owner.name.clone(),
            addr: ip,
        });
    }
    let entries: Vec<&IfAddr> = list.iter().filter(|a| a.name == w).collect();
    if entries.is_empty() {
        return Err(LndError::new(
            errno::ENODEV,
            format!(
                "cannot add net {net_name}: interface {w} does not exist \
                 (list interfaces with \"ip -br link\")"
            ),
        ));
    }
    if !entries.iter().any(|a| a.up) {
        return Err(down(net_name, w));
    }
    let pick = entries
        .iter()
        .find_map(|a| a.addr.filter(IpAddr::is_ipv4))
        .or_else(|| entries.iter().find_map(|a| a.addr.filter(IpAddr::is_ipv6)));
    match pick {
        Some(addr) => Ok(Chosen {
            name: w.to_string(),
            addr,
        }),
        None => Err(LndError::new(
            errno::ENODEV,
            format!(
                "cannot add net {net_name}: interface {w} has no IPv4 or IPv6 address \
                 (add one with \"ip addr add ADDR dev {w}\")"
            ),
        )),
    }
}

fn down(net_name: &str, ifname: &str) -> LndError {
    LndError::new(
        errno::ENETDOWN,
        format!(
            "cannot add net {net_name}: interface {ifname} is down \
             (bring it up with \"ip link set {ifname} up\")"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(name: &str, up: bool, lo: bool, addr: Option<&str>, prefix: u8) -> IfAddr {
        IfAddr {
            name: name.into(),
            up,
            running: up,
            loopback: lo,
            addr: addr.map(|a| a.parse().expect("ip")),
            prefix,
        }
    }

    fn host() -> Vec<IfAddr> {
        vec![
            e("lo", true, true, None, 0),
            e("lo", true, true, Some("127.0.0.1"), 8),
            e("lo", true, true, Some("::1"), 128),
            e("eth0", true, false, None, 0),
            e("eth0", true, false, Some("fd00::2"), 64),
            e("eth0", true, false, Some("192.0.2.2"), 24),
            e("eth0:1", true, false, Some("192.0.2.9"), 24),
            e("eth1", false, false, Some("10.1.0.1"), 16),
            e("eth2", true, false, None, 0),
            e("eth3", true, false, Some("fd01::3"), 64),
        ]
    }

    #[test]
    fn default_is_first_up_non_loopback_ipv4() {
        let c = choose(&host(), "tcp", None).expect("found");
        assert_eq!(c.name, "eth0");
        assert_eq!(c.addr.to_string(), "192.0.2.2");
    }

    #[test]
    fn named_interface_prefers_ipv4_then_ipv6() {
        assert_eq!(
            choose(&host(), "tcp", Some("eth0"))
                .expect("ok")
                .addr
                .to_string(),
            "192.0.2.2"
        );
        assert_eq!(
            choose(&host(), "tcp", Some("eth0:1"))
                .expect("ok")
                .addr
                .to_string(),
            "192.0.2.9"
        );
        assert_eq!(
            choose(&host(), "tcp", Some("eth3"))
                .expect("ok")
                .addr
                .to_string(),
            "fd01::3"
        );
    }

    #[test]
    fn errors_are_clear() {
        let e9 = choose(&host(), "tcp1", Some("eth9")).expect_err("missing");
        assert_eq!(e9.errno, errno::ENODEV);
        assert_eq!(
            e9.message.as_str(),
            "cannot add net tcp1: interface eth9 does not exist (list interfaces with \"ip -br link\")"
        );
        let e2 = choose(&host(), "tcp", Some("eth2")).expect_err("no address");
        assert_eq!(e2.errno, errno::ENODEV);
        assert!(e2.message.contains("has no IPv4 or IPv6 address"));
        let e1 = choose(&host(), "tcp", Some("eth1")).expect_err("down");
        assert_eq!(e1.errno, errno::ENETDOWN);
        let none = choose(&host()[..3], "tcp", None).expect_err("only lo");
        assert_eq!(none.errno, errno::ENODEV);
    }

    #[test]
    fn address_selects_its_interface_and_any_loopback_address() {
        let c = choose(&host(), "tcp", Some("192.0.2.9")).expect("owned");
        assert_eq!(c.name, "eth0:1");
        let c = choose(&host(), "tcp", Some("127.0.0.2")).expect("loopback /8");
        assert_eq!(
            (c.name.as_str(), c.addr.to_string().as_str()),
            ("lo", "127.0.0.2")
        );
        assert!(choose(&host(), "tcp", Some("10.9.9.9")).is_err());
    }

    #[test]
    fn real_snapshot_has_loopback() {
        let s = snapshot().expect("getifaddrs");
        assert!(s.iter().any(|a| a.loopback), "{s:?}");
    }
}
