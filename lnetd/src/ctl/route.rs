//! The control server's routing requests (issue 13): `route add|del|show`,
//! `routing show`, `set routing`, `set *_buffers`, over [`crate::router`].

use liblnetconfig::errno::{EINVAL, ENOENT};
use liblnetconfig::proto::{Reply, ReplyBody};
use liblnetconfig::route::{PoolInfo, RouteAddRequest, RouteDelRequest, RouteInfo, RoutingInfo};
use lnd_api::NetId;

use crate::node::Node;
use lnet_core::router::{PoolKind, RouteError};

/// Resolves a net name the client sent (`tcp1`, or a plugin's own type).
fn net_id(node: &Node, name: &str) -> Option<NetId> {
    if let Ok(n) = name.parse::<NetId>() {
        return Some(n);
    }
    let extra = node.extra_net_types();
    let e: Vec<(&str, u8)> = extra.iter().map(|(n, t)| (n.as_str(), *t)).collect();
    NetId::parse_with(name, &e).ok()
}

fn route_err(e: &RouteError) -> Reply {
    Reply::err(e.errno(), e.to_string())
}

/// `route add`: one route per gateway, stopping at the first refusal (the
/// routes added before it stay, as upstream's one request per gateway).
pub(super) fn add(node: &Node, req: RouteAddRequest) -> Reply {
    let Some(net) = net_id(node, &req.net) else {
        return Reply::err(EINVAL, "cannot parse remote net");
    };
    let hops = match req.hop {
        -1 => None,
        h if (1..=255).contains(&h) => Some(h as u32),
        _ => return Reply::err(EINVAL, "invalid hop count must be between 1 and 255"),
    };
    let Ok(priority) = u32::try_from(req.priority) else {
        return Reply::err(EINVAL, "invalid priority, must not be negative");
    };
    let sens = match req.health_sensitivity.map(u32::try_from) {
        None => None,
        Some(Ok(s)) => Some(s),
        Some(Err(_)) => {
            return Reply::err(
                EINVAL,
                "invalid health sensitivity, must be between 0 and 1000",
            )
        }
    };
    if req.gateways.is_empty() {
        return Reply::err(EINVAL, "missing mandatory parameter: gateway");
    }
    for gw in req.gateways {
        let r = node.with_engine(|l, now| l.route_add(now, net, gw, hops, priority, sens));
        if let Err(e) = r {
            return route_err(&e);
        }
    }
    Reply::ok(ReplyBody::Done)
}

/// `route del`: by net and/or gateways; nothing deleted → ENOENT.
pub(super) fn del(node: &Node, req: RouteDelRequest) -> Reply {
    let net = match req.net.as_deref() {
        None => None,
        Some(n) => match net_id(node, n) {
            Some(n) => Some(n),
            None => return Reply::err(EINVAL, "cannot parse remote net"),
        },
    };
    if net.is_none() && req.gateways.is_empty() {
        return Reply::err(EINVAL, "missing mandatory parameter: network");
    }
    let mut deleted = false;
    if req.gateways.is_empty() {
        deleted = node.with_engine(|l, _| l.route_del(net, None)).is_ok();
    }
    for gw in req.gateways {
        deleted |= node.with_engine(|l, _| l.route_del(net, Some(gw))).is_ok();
    }
    if deleted {
        Reply::ok(ReplyBody::Done)
    } else {
        Reply::err(ENOENT, "failed to delete route")
    }
}

/// `route show`: every route (the client filters).
pub(super) fn show(node: &Node) -> Reply {
    let extra = node.extra_net_types();
    let e: Vec<(&str, u8)> = extra.iter().map(|(n, t)| (n.as_str(), *t)).collect();
    let routes = node.with_engine(|l, _| l.routes());
    Reply::ok(ReplyBody::Routes(
        routes
            .into_iter()
            .map(|r| RouteInfo {
                net: r.net.display_with(&e).to_string(),
                gateway: r.gateway,
                hop: r.hops.map_or(-1, i64::from),
                priority: r.priority,
                health_sensitivity: r.health_sensitivity,
                up: r.alive,
                multi_hop: r.multi_hop,
                health_sensitivity_given: r.health_sensitivity_given,
            })
            .collect(),
    ))
}

/// `routing show`.
pub(super) fn routing_show(node: &Node) -> Reply {
    let (pools, state) = node.with_engine(|l, _| (l.router_pools(), l.routing_state()));
    let info = pools.map(|p| RoutingInfo {
        cpts: vec![p.map(|v| PoolInfo {
            npages: v.npages,
            nbuffers: v.nbuffers,
            credits: v.credits,
            mincredits: v.min_credits,
        })],
        enable: state.code(),
    });
    Reply::ok(ReplyBody::Routing(info))
}

/// `set routing 0|1` (at run time: through STARTING / STOPPING).
pub(super) fn routing_set(node: &Node, enable: bool) -> Reply {
    node.with_engine(|l, now| l.set_routing(now, enable, false));
    Reply::ok(ReplyBody::Done)
}

/// `set tiny_buffers|small_buffers|large_buffers N`.
pub(super) fn buffers_set(node: &Node, pool: &str, value: i64) -> Reply {
    let kind = match pool {
        "tiny" => PoolKind::Tiny,
        "small" => PoolKind::Small,
        "large" => PoolKind::Large,
        other => return Reply::err(EINVAL, format!("no router buffer pool {other:?}")),
    };
    match node.with_engine(|l, now| l.set_router_buffers(now, kind, value)) {
        Ok(()) => Reply::ok(ReplyBody::Done),
        Err(e) => route_err(&e),
    }
}
