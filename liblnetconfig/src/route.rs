//! Routes and routing (issue 13; lnetctl.md §2.7, §2.8, §2.11, §3.4): the
//! protocol types of `route add|del|show`, `routing show`, `set routing`
//! and `set tiny_buffers|small_buffers|large_buffers`, the client calls, the
//! command-line checks and the printers.

use lnd_api::Nid;
use serde::{Deserialize, Serialize};

use crate::args::{strtol, ArgError};
use crate::client::{Client, Error};
use crate::errno::EINVAL;
use crate::proto::{Op, ReplyBody};
use crate::render::NetTypes;
use crate::serde_ids::serde_nid;
use crate::yaml::{cy, nl, Yaml};

/// `route add`: one route per gateway (the range expanded by the client).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteAddRequest {
    /// The remote net (`tcp1`).
    pub net: String,
    /// The gateways, in order.
    #[serde(with = "serde_nid::vec")]
    pub gateways: Vec<Nid>,
    /// Hops, -1 = undefined.
    pub hop: i64,
    /// Priority (0 when not given).
    pub priority: i64,
    /// Health sensitivity (`None`: the global one).
    #[serde(default)]
    pub health_sensitivity: Option<i64>,
}

/// `route del`: by net and/or gateways.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteDelRequest {
    /// The remote net.
    #[serde(default)]
    pub net: Option<String>,
    /// The gateways (empty: any).
    #[serde(with = "serde_nid::vec", default)]
    pub gateways: Vec<Nid>,
}

/// One route as `route show` prints it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteInfo {
    /// The remote net.
    pub net: String,
    /// The gateway.
    #[serde(with = "serde_nid")]
    pub gateway: Nid,
    /// Hops, -1 = undefined.
    pub hop: i64,
    /// Priority.
    pub priority: u32,
    /// Health sensitivity.
    pub health_sensitivity: u32,
    /// Route aliveness.
    pub up: bool,
    /// The gateway reported the net not directly attached.
    pub multi_hop: bool,
    /// `health_sensitivity` was given to `route add` (then `route show -v`
    /// and `export` print it, after `priority`; upstream has no such key).
    #[serde(default)]
    pub health_sensitivity_given: bool,
}

/// One router buffer pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolInfo {
    /// Pages per buffer.
    pub npages: u32,
    /// Buffers.
    pub nbuffers: u32,
    /// Free buffers minus waiters.
    pub credits: i32,
    /// Low-water mark.
    pub mincredits: i32,
}

/// `routing show`: tiny, small and large pools per CPT, and the state
/// (0 disabled, 1 enabled, 2 stopping, 3 starting).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoutingInfo {
    /// `[tiny, small, large]` of each CPT.
    pub cpts: Vec<[PoolInfo; 3]>,
    /// The routing state.
    pub enable: u32,
}

impl Client {
    fn unexpected_reply(&self, op: &'static str) -> Error {
        Error::UnexpectedReply {
            socket: self.socket().to_path_buf(),
            op,
        }
    }

    /// `route add`.
    pub fn route_add(&mut self, req: RouteAddRequest) -> Result<(), Error> {
        match self.call(Op::RouteAdd(req))? {
            ReplyBody::Done => Ok(()),
            _ => Err(self.unexpected_reply("route add")),
        }
    }

    /// `route del`.
    pub fn route_del(&mut self, req: RouteDelRequest) -> Result<(), Error> {
        match self.call(Op::RouteDel(req))? {
            ReplyBody::Done => Ok(()),
            _ => Err(self.unexpected_reply("route del")),
        }
    }

    /// `route show`: every route.
    pub fn route_show(&mut self) -> Result<Vec<RouteInfo>, Error> {
        match self.call(Op::RouteShow)? {
            ReplyBody::Routes(r) => Ok(r),
            _ => Err(self.unexpected_reply("route show")),
        }
    }

    /// `routing show`: `None` before routing was ever enabled.
    pub fn routing_show(&mut self) -> Result<Option<RoutingInfo>, Error> {
        match self.call(Op::RoutingShow)? {
            ReplyBody::Routing(r) => Ok(r),
            _ => Err(self.unexpected_reply("routing show")),
        }
    }

    /// `set routing 0|1`.
    pub fn routing_set(&mut self, enable: bool) -> Result<(), Error> {
        match self.call(Op::RoutingSet { enable })? {
            ReplyBody::Done => Ok(()),
            _ => Err(self.unexpected_reply("set routing")),
        }
    }

    /// `set tiny_buffers|small_buffers|large_buffers N` (`pool`: `tiny`,
    /// `small` or `large`).
    pub fn router_buffers_set(&mut self, pool: &str, value: i64) -> Result<(), Error> {
        let op = Op::RouterBuffersSet {
            pool: pool.to_string(),
            value,
        };
        match self.call(op)? {
            ReplyBody::Done => Ok(()),
            _ => Err(self.unexpected_reply("set buffers")),
        }
    }
}

/// The words of `route add|del` as given.
#[derive(Clone, Debug, Default)]
pub struct RouteArgs<'a> {
    /// `--net`.
    pub net: Option<&'a str>,
    /// `--gateway` (a NID range).
    pub gateway: Option<&'a str>,
    /// `--hop` / `--hop-count`.
    pub hop: Option<&'a str>,
    /// `--priority`.
    pub priority: Option<&'a str>,
    /// `--health_sensitivity`.
    pub health_sensitivity: Option<&'a str>,
}

/// `missing mandatory parameters:'net , gateway'` and its variants (stdout, -22).
fn missing(net: bool, gw: bool) -> Result<(), ArgError> {
    let what = match (net, gw) {
        (true, true) => "'net , gateway'",
        (true, false) => "'net'",
        (false, true) => "'gateway'",
        (false, false) => return Ok(()),
    };
    Err(ArgError::Plain(format!(
        "missing mandatory parameters:{what}"
    )))
}

fn gateways(text: &str, flag: &'static str, extra: &NetTypes) -> Result<Vec<Nid>, ArgError> {
    crate::nidlist::expand(&[text.to_string()], extra).map_err(|e| ArgError::Nl {
        flag,
        object: "route",
        errno: -e.errno,
        descr: e.message,
        rc: -e.errno,
    })
}

/// Validates `route add` (lnetctl.md §2.7): non-numeric hop and priority are
/// ignored as upstream does; hop must be -1 or 1..255, priority ≥ 0.
pub fn route_add(a: &RouteArgs<'_>, extra: &NetTypes) -> Result<RouteAddRequest, ArgError> {
    missing(a.net.is_none(), a.gateway.is_none())?;
    let net = crate::args::net(a.net.unwrap_or_default(), "add")?;
    let gateways = gateways(a.gateway.unwrap_or_default(), "add", extra)?;
    let hop = a.hop.and_then(strtol).unwrap_or(-1);
    let priority = a.priority.and_then(strtol).unwrap_or(0);
    let nl = |descr: &str| ArgError::Nl {
        flag: "add",
        object: "route",
        errno: -EINVAL,
        descr: descr.to_string(),
        rc: -EINVAL,
    };
    if hop != -1 && !(1..=255).contains(&hop) {
        return Err(nl("invalid hop count must be between 1 and 255"));
    }
    if priority < 0 {
        return Err(nl("invalid priority, must not be negative"));
    }
    let health_sensitivity = a.health_sensitivity.and_then(strtol);
    if health_sensitivity.is_some_and(|s| !(0..=1000).contains(&s)) {
        return Err(nl("invalid health sensitivity, must be between 0 and 1000"));
    }
    Ok(RouteAddRequest {
        net,
        gateways,
        hop,
        priority,
        health_sensitivity,
    })
}

/// Validates `route del`.
pub fn route_del(a: &RouteArgs<'_>, extra: &NetTypes) -> Result<RouteDelRequest, ArgError> {
    missing(a.net.is_none(), a.gateway.is_none())?;
    let net = match a.net {
        Some(n) => Some(crate::args::net(n, "del")?),
        None => None,
    };
    let gateways = match a.gateway {
        Some(g) => gateways(g, "del", extra)?,
        None => Vec::new(),
    };
    Ok(RouteDelRequest { net, gateways })
}

/// `route show` filters (all given must match).
#[derive(Clone, Debug, Default)]
pub struct RouteFilter {
    /// `--net`.
    pub net: Option<String>,
    /// `--gateway`.
    pub gateway: Option<Nid>,
    /// `--hop`.
    pub hop: Option<i64>,
    /// `--priority`.
    pub priority: Option<i64>,
}

impl RouteFilter {
    fn matches(&self, r: &RouteInfo) -> bool {
        self.net.as_ref().is_none_or(|n| *n == r.net)
            && self.gateway.is_none_or(|g| g == r.gateway)
            && self.hop.is_none_or(|h| h == r.hop)
            && self.priority.is_none_or(|p| p == i64::from(r.priority))
    }
}

fn route_item(r: &RouteInfo, verbose: bool, extra: &NetTypes) -> Yaml {
    let mut m = Yaml::map();
    m.push("net", Yaml::s(&r.net));
    m.push("gateway", Yaml::s(gw_text(&r.gateway, extra)));
    if verbose {
        m.push("hop", Yaml::s(r.hop));
        m.push("priority", Yaml::s(r.priority));
        if r.health_sensitivity_given {
            m.push("health_sensitivity", Yaml::s(r.health_sensitivity));
        }
        m.push("state", Yaml::s(if r.up { "up" } else { "down" }));
        m.push(
            "type",
            Yaml::s(if r.multi_hop {
                "multi-hop"
            } else {
                "single-hop"
            }),
        );
    }
    m
}

/// `route show [-v]` (lnetctl.md §3.4): NL-style; nothing when no route
/// matches.
pub fn route_show(
    routes: &[RouteInfo],
    filter: &RouteFilter,
    verbose: bool,
    extra: &NetTypes,
) -> String {
    let items: Vec<Yaml> = routes
        .iter()
        .filter(|r| filter.matches(r))
        .map(|r| route_item(r, verbose, extra))
        .collect();
    if items.is_empty() {
        return String::new();
    }
    let mut doc = Yaml::map();
    doc.push("route", Yaml::Seq(items));
    nl(&doc, 6)
}

/// The `route:` section of `export` (`backup`: without state and type).
pub fn route_export(routes: &[RouteInfo], backup: bool, extra: &NetTypes) -> Yaml {
    Yaml::Seq(
        routes
            .iter()
            .map(|r| {
                let mut m = Yaml::map();
                m.push("net", Yaml::s(&r.net));
                m.push("gateway", Yaml::s(gw_text(&r.gateway, extra)));
                m.push("hop", Yaml::s(r.hop));
                m.push("priority", Yaml::s(r.priority));
                if r.health_sensitivity_given {
                    m.push("health_sensitivity", Yaml::s(r.health_sensitivity));
                }
                if !backup {
                    m.push("state", Yaml::s(if r.up { "up" } else { "down" }));
                    m.push(
                        "type",
                        Yaml::s(if r.multi_hop {
                            "multi-hop"
                        } else {
                            "single-hop"
                        }),
                    );
                }
                m
            })
            .collect(),
    )
}

fn pool_yaml(p: &PoolInfo) -> Yaml {
    Yaml::pairs([
        ("npages", Yaml::s(p.npages)),
        ("nbuffers", Yaml::s(p.nbuffers)),
        ("credits", Yaml::s(p.credits)),
        ("mincredits", Yaml::s(p.mincredits)),
    ])
}

/// `routing show` (lnetctl.md §2.11): cY-style; nothing when the pools were
/// never set up.
pub fn routing_show(info: Option<&RoutingInfo>) -> String {
    routing_export(info, false).unwrap_or_default()
}

fn gw_text(n: &Nid, extra: &NetTypes) -> String {
    let e: Vec<(&str, u8)> = extra.iter().map(|(n, t)| (n.as_str(), *t)).collect();
    let text = n.display_with(&e).to_string();
    text
}

/// The `routing:` and `buffers:` entries of `export` (lnetctl.md §4.1), for
/// its cY-style tree; empty when the pools were never set up. Full: the
/// `routing show` form; backup: `routing: {enable}` and the buffer counts.
pub fn routing_tree(info: Option<&RoutingInfo>, backup: bool) -> Vec<(String, Yaml)> {
    let Some(info) = info else {
        return Vec::new();
    };
    let sum = |k: usize| info.cpts.iter().map(|p| p[k].nbuffers).sum::<u32>();
    let routing = if backup {
        Yaml::pairs([("enable", Yaml::s(info.enable))])
    } else {
        let mut items: Vec<Yaml> = info
            .cpts
            .iter()
            .enumerate()
            .map(|(i, pools)| {
                let mut cpt = Yaml::map();
                cpt.push(
                    &format!("cpt[{i}]"),
                    Yaml::pairs([
                        ("tiny", pool_yaml(&pools[0])),
                        ("small", pool_yaml(&pools[1])),
                        ("large", pool_yaml(&pools[2])),
                    ]),
                );
                cpt
            })
            .collect();
        items.push(Yaml::pairs([("enable", Yaml::s(info.enable))]));
        Yaml::Seq(items)
    };
    vec![
        ("routing".to_string(), routing),
        (
            "buffers".to_string(),
            Yaml::pairs([
                ("tiny", Yaml::s(sum(0))),
                ("small", Yaml::s(sum(1))),
                ("large", Yaml::s(sum(2))),
            ]),
        ),
    ]
}

/// The `routing:` and `buffers:` part of `export`, rendered alone (see
/// [`routing_tree`]); `None` when the pools were never set up.
pub fn routing_export(info: Option<&RoutingInfo>, backup: bool) -> Option<String> {
    let tree = routing_tree(info, backup);
    if tree.is_empty() {
        return None;
    }
    Some(cy(&Yaml::Map(tree)))
}

/// The `route:` section of `export` rendered NL-style (indent 6); empty
/// when there are no routes.
pub fn route_export_text(routes: &[RouteInfo], backup: bool, extra: &NetTypes) -> String {
    if routes.is_empty() {
        return String::new();
    }
    nl(
        &Yaml::pairs([("route", route_export(routes, backup, extra))]),
        6,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nid(s: &str) -> Nid {
        s.parse().expect("nid")
    }

    fn routes() -> Vec<RouteInfo> {
        vec![
            RouteInfo {
                net: "tcp1".into(),
                gateway: nid("192.168.122.20@tcp"),
                hop: -1,
                priority: 0,
                health_sensitivity: 100,
                up: true,
                multi_hop: false,
                health_sensitivity_given: false,
            },
            RouteInfo {
                net: "o2ib1".into(),
                gateway: nid("192.168.122.21@tcp"),
                hop: 2,
                priority: 3,
                health_sensitivity: 100,
                up: false,
                multi_hop: true,
                health_sensitivity_given: false,
            },
        ]
    }

    #[test]
    fn route_show_plain_and_verbose() {
        let none: Vec<(String, u8)> = Vec::new();
        assert_eq!(
            route_show(&routes(), &RouteFilter::default(), false, &none),
            "route:\n-     net: tcp1\n      gateway: 192.168.122.20@tcp\n\
             -     net: o2ib1\n      gateway: 192.168.122.21@tcp\n"
        );
        let f = RouteFilter {
            net: Some("o2ib1".into()),
            ..RouteFilter::default()
        };
        assert_eq!(
            route_show(&routes(), &f, true, &none),
            "route:\n-     net: o2ib1\n      gateway: 192.168.122.21@tcp\n      hop: 2\n      \
             priority: 3\n      state: down\n      type: multi-hop\n"
        );
        let f = RouteFilter {
            hop: Some(7),
            ..RouteFilter::default()
        };
        assert_eq!(route_show(&routes(), &f, true, &none), "");
    }

    #[test]
    fn a_given_health_sensitivity_is_shown_and_exported() {
        let none: Vec<(String, u8)> = Vec::new();
        let mut r = routes();
        r[0].health_sensitivity = 700;
        r[0].health_sensitivity_given = true;
        let one = &r[..1];
        assert_eq!(
            route_show(one, &RouteFilter::default(), true, &none),
            "route:\n-     net: tcp1\n      gateway: 192.168.122.20@tcp\n      hop: -1\n      \
             priority: 0\n      health_sensitivity: 700\n      state: up\n      type: single-hop\n"
        );
        assert_eq!(
            route_export_text(one, true, &none),
            "route:\n-     net: tcp1\n      gateway: 192.168.122.20@tcp\n      hop: -1\n      \
             priority: 0\n      health_sensitivity: 700\n"
        );
        // Not given: upstream's keys only.
        assert!(!route_export_text(&routes(), false, &none).contains("health_sensitivity"));
        assert_eq!(route_export_text(&[], true, &none), "");
    }

    #[test]
    fn routing_show_matches_the_spec() {
        let p = |npages, n| PoolInfo {
            npages,
            nbuffers: n,
            credits: n as i32,
            mincredits: n as i32,
        };
        let info = RoutingInfo {
            cpts: vec![[p(0, 2048), p(1, 16384), p(256, 1024)]],
            enable: 1,
        };
        assert_eq!(
            routing_show(Some(&info)),
            "routing:\n    - cpt[0]:\n          tiny:\n              npages: 0\n              \
             nbuffers: 2048\n              credits: 2048\n              mincredits: 2048\n          \
             small:\n              npages: 1\n              nbuffers: 16384\n              \
             credits: 16384\n              mincredits: 16384\n          large:\n              \
             npages: 256\n              nbuffers: 1024\n              credits: 1024\n              \
             mincredits: 1024\n    - enable: 1\nbuffers:\n    tiny: 2048\n    small: 16384\n    \
             large: 1024\n"
        );
        assert_eq!(routing_show(None), "");
        assert_eq!(
            routing_export(Some(&info), true).expect("pools"),
            "routing:\n    enable: 1\nbuffers:\n    tiny: 2048\n    small: 16384\n    large: 1024\n"
        );
        let none: Vec<(String, u8)> = Vec::new();
        let t = nl(
            &Yaml::pairs([("route", route_export(&routes(), true, &none))]),
            6,
        );
        assert_eq!(
            t,
            "route:\n-     net: tcp1\n      gateway: 192.168.122.20@tcp\n      hop: -1\n      \
             priority: 0\n-     net: o2ib1\n      gateway: 192.168.122.21@tcp\n      hop: 2\n      \
             priority: 3\n"
        );
    }

    #[test]
    fn route_add_checks_like_upstream() {
        let none: Vec<(String, u8)> = Vec::new();
        let a = RouteArgs {
            net: None,
            gateway: None,
            ..RouteArgs::default()
        };
        match route_add(&a, &none) {
            Err(ArgError::Plain(m)) => {
                assert_eq!(m, "missing mandatory parameters:'net , gateway'")
            }
            other => panic!("{other:?}"),
        }
        let a = RouteArgs {
            net: Some("tcp1"),
            gateway: Some("10.0.0.[1-2]@tcp"),
            hop: Some("x"),
            priority: Some("4"),
            ..RouteArgs::default()
        };
        let r = route_add(&a, &none).expect("ok");
        assert_eq!(r.gateways, vec![nid("10.0.0.1@tcp"), nid("10.0.0.2@tcp")]);
        assert_eq!((r.hop, r.priority), (-1, 4));
        let a = RouteArgs {
            net: Some("tcp1"),
            gateway: Some("10.0.0.1@tcp"),
            hop: Some("256"),
            ..RouteArgs::default()
        };
        match route_add(&a, &none) {
            Err(ArgError::Nl { descr, rc, .. }) => {
                assert_eq!(descr, "invalid hop count must be between 1 and 255");
                assert_eq!(rc, -22);
            }
            other => panic!("{other:?}"),
        }
    }
}
