//! Control requests of lnetctl's configuration commands (issue 16): `set`,
//! `global show`, `stats reset`, `net del --nid/--if`, `net set`, `udsp`.
//! [`handle`] answers the requests it knows and hands the others back.

use std::net::Ipv4Addr;
use std::path::Path;

use liblnetconfig::errno::{EINVAL, ENODEV, ENOENT, ERANGE};
use liblnetconfig::proto::{GlobalInfo, Ip2NetsRule, NetAddRequest, Op, Reply, ReplyBody};
use lnet_core::nid::Ipv4Pattern;

use super::{node_err, not_configured, Shared};
use crate::node::Node;
use lnet_core::ni::{Config, GlobalTunables};

/// `global show`'s values.
fn global_info(t: &GlobalTunables) -> GlobalInfo {
    GlobalInfo {
        numa_range: i64::from(t.numa_range),
        max_interfaces: i64::from(t.max_interfaces),
        discovery: i64::from(!t.peer_discovery_disabled),
        drop_asym_route: i64::from(t.drop_asym_route),
        retry_count: i64::from(t.retry_count),
        transaction_timeout: i64::from(t.transaction_timeout),
        health_sensitivity: i64::from(t.health_sensitivity),
        recovery_interval: 1,
        router_sensitivity: i64::from(t.router_sensitivity),
        lnd_timeout: i64::from(t.lnd_timeout()),
        response_tracking: i64::from(t.response_tracking),
        recovery_limit: i64::from(t.recovery_limit),
        max_recovery_ping_interval: i64::from(t.max_recovery_ping_interval),
    }
}

/// The tunables an unconfigured daemon will start with: its parameters,
/// then what `set` changed since.
fn startup_tunables(shared: &Shared) -> GlobalTunables {
    let pending = shared
        .kept_tunables
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    if let Some(t) = pending {
        return t;
    }
    let mut cfg = Config::default();
    match crate::node::config::startup_config(&mut cfg, &shared.node_cfg.params) {
        Ok(()) => cfg.tunables,
        Err(_) => GlobalTunables::default(),
    }
}

/// `set` while LNet is not configured (a loaded module): checked now,
/// applied by `lnet configure`.
fn set_pending(shared: &Shared, name: &str, value: i64) -> Reply {
    let mut t = startup_tunables(shared);
    match crate::node::config::apply_global(&mut t, name, value) {
        Ok(()) => {
            *shared
                .kept_tunables
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(t);
            Reply::ok(ReplyBody::Done)
        }
        Err(e) => node_err(e),
    }
}

/// Answers `op` if it is one of these commands; `Err(op)` otherwise (the
/// request moves on to the other handlers, once per request).
#[allow(clippy::result_large_err)]
pub(super) fn handle(shared: &Shared, node: Option<&Node>, op: Op) -> Result<Reply, Op> {
    let need = |f: &dyn Fn(&Node) -> Reply| match node {
        None => not_configured(),
        Some(n) => f(n),
    };
    let done = |r: Result<(), crate::node::NodeError>| match r {
        Ok(()) => Reply::ok(ReplyBody::Done),
        Err(e) => node_err(e),
    };
    Ok(match op {
        Op::NetAdd(req) => need(&|n| net_add(n, req.clone())),
        Op::GlobalShow => {
            let t = node.map_or_else(|| startup_tunables(shared), Node::global_tunables);
            Reply::ok(ReplyBody::Global(global_info(&t)))
        }
        Op::GlobalSet(req) => match node {
            None => set_pending(shared, &req.name, req.value),
            Some(n) => done(n.global_set(&req.name, req.value)),
        },
        Op::StatsReset => need(&|n| {
            n.stats_reset();
            Reply::ok(ReplyBody::Done)
        }),
        Op::NiDel(req) => need(&|n| done(n.ni_del(req.net.as_deref(), &req.interfaces, &req.nids))),
        Op::NetSet(req) => need(&|n| {
            if let (Some(net), Some(s)) = (&req.net, req.lnd_timeout) {
                if let Err(e) = n.lnd_timeout_set(net, s) {
                    return node_err(e);
                }
            }
            if let Some(c) = req.conns_per_peer {
                if !req.all && req.nid.is_none() {
                    return Reply::err(EINVAL, "--conns-per-peer needs --all or --nid NID");
                }
                if let Err(e) = n.conns_per_peer_set(req.nid, c) {
                    return node_err(e);
                }
            }
            if let Some(h) = req.health {
                if !req.all && req.nid.is_none() {
                    return Reply::err(EINVAL, "--health needs --all or --nid NID");
                }
                let nid = if req.all { None } else { req.nid };
                if let Err(e) = n.ni_set_health(nid, h) {
                    return node_err(e);
                }
            }
            Reply::ok(ReplyBody::Done)
        }),
        Op::UdspAdd { rule, idx } => need(&|n| done(n.udsp_add(rule.clone(), idx))),
        Op::UdspDel { idx } => need(&|n| done(n.udsp_del(idx))),
        Op::UdspShow { idx } => match node {
            // No LNet, no rules: `udsp show` prints nothing.
            None => Reply::ok(ReplyBody::Udsp(Vec::new())),
            Some(n) => {
                let rules = n
                    .udsp_rules()
                    .into_iter()
                    .filter(|(i, _)| idx.is_none_or(|x| x == *i))
                    .collect();
                Reply::ok(ReplyBody::Udsp(rules))
            }
        },
        other => return Err(other),
    })
}

/// This process's interfaces: name (with its address label), whether it is
/// up, its IPv4 addresses, in the kernel's order.
fn local_interfaces() -> Vec<(String, bool, Vec<Ipv4Addr>)> {
    use nix::net::if_::InterfaceFlags;
    let mut out: Vec<(String, bool, Vec<Ipv4Addr>)> = Vec::new();
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
        return out;
    };
    for a in addrs {
        let up = a.flags.contains(InterfaceFlags::IFF_UP)
            && !a.flags.contains(InterfaceFlags::IFF_LOOPBACK);
        let v4 = a
            .address
            .as_ref()
            .and_then(|s| s.as_sockaddr_in())
            .map(|s| s.ip());
        match out.iter_mut().find(|(n, _, _)| *n == a.interface_name) {
            Some(e) => e.2.extend(v4),
            None => out.push((a.interface_name, up, v4.into_iter().collect())),
        }
    }
    out
}

/// The interfaces an ip2nets rule resolves to (lnetctl.md §4.3): listed
/// ones must all be up (and match a range, if any); ranges alone select
/// every up interface with a matching address; neither: the first up one.
fn resolve_rule(
    rule: &Ip2NetsRule,
    ifs: &[(String, bool, Vec<Ipv4Addr>)],
) -> Result<Vec<String>, String> {
    let mut pats = Vec::new();
    for r in &rule.ip_ranges {
        if r.contains(':') {
            // IPv6 ranges need large-NID NIs: never match here.
            continue;
        }
        pats.push(Ipv4Pattern::parse(r).map_err(|e| format!("invalid ip-range '{r}': {e}"))?);
    }
    let matches = |addrs: &[Ipv4Addr]| pats.iter().any(|p| addrs.iter().any(|a| p.matches(*a)));
    if !rule.interfaces.is_empty() {
        let ok = rule.interfaces.iter().all(|name| {
            ifs.iter().any(|(n, up, addrs)| {
                n == name && *up && (rule.ip_ranges.is_empty() || matches(addrs))
            })
        });
        return Ok(if ok {
            rule.interfaces.clone()
        } else {
            Vec::new()
        });
    }
    if rule.ip_ranges.is_empty() {
        return Ok(ifs
            .iter()
            .find(|(_, up, a)| *up && !a.is_empty())
            .map(|(n, _, _)| vec![n.clone()])
            .unwrap_or_default());
    }
    Ok(ifs
        .iter()
        .filter(|(_, up, addrs)| *up && matches(addrs))
        .map(|(n, _, _)| n.clone())
        .collect())
}

/// `net add` with `--nid`, `--cpt`, `--ip2net` and interface-less requests
/// resolved here, then the node's `net_add`.
fn net_add(node: &Node, mut req: NetAddRequest) -> Reply {
    // One CPU partition: CPT 0 only.
    let cpts = req.cpts.iter().chain(req.interface_cpts.iter().flatten());
    if cpts.flatten().any(|c| *c >= 1) {
        return Reply::err(
            ERANGE,
            "invalid CPT set: this node has one CPU partition (CPT 0)",
        );
    }
    if !req.ip2nets.is_empty() {
        let ifs = local_interfaces();
        let rules = std::mem::take(&mut req.ip2nets);
        let mut nids = Vec::new();
        let mut done: Vec<String> = Vec::new();
        for rule in &rules {
            if done.contains(&rule.net) {
                continue;
            }
            let interfaces = match resolve_rule(rule, &ifs) {
                Ok(i) => i,
                Err(e) => return Reply::err(EINVAL, format!("cannot setup ip2nets: {e}")),
            };
            if interfaces.is_empty() {
                continue;
            }
            let mut one = req.clone();
            one.net = rule.net.clone();
            one.interfaces = interfaces;
            one.interface_cpts = Vec::new();
            match node.net_add(super::net_add(one)) {
                Ok(n) => nids.extend(n),
                Err(e) => return node_err(e),
            }
            done.push(rule.net.clone());
        }
        if done.is_empty() {
            return Reply::err(
                ENOENT,
                "No ip2nets rules applied: no rule matches an up interface of this node",
            );
        }
        return Reply::ok(ReplyBody::NetAdded(nids));
    }
    if !req.nids.is_empty() {
        let ifs = local_interfaces();
        for nid in std::mem::take(&mut req.nids) {
            let Some(a) = nid.addr4() else {
                return Reply::err(EINVAL, format!("unsupported NID {nid}: give an IPv4 NID"));
            };
            let ip = Ipv4Addr::from(a);
            match ifs.iter().find(|(_, _, addrs)| addrs.contains(&ip)) {
                Some((name, _, _)) => req.interfaces.push(name.clone()),
                None => {
                    return Reply::err(
                        ENODEV,
                        format!("cannot add LNet NI: no local interface has address {ip} ({nid})"),
                    )
                }
            }
        }
    }
    if req.interfaces.is_empty() {
        match super::first_up_interface(Path::new("/sys/class/net")) {
            Ok(i) => req.interfaces.push(i),
            Err(e) => return node_err(e),
        }
    }
    match node.net_add(super::net_add(req)) {
        Ok(nids) => Reply::ok(ReplyBody::NetAdded(nids)),
        Err(e) => node_err(e),
    }
}

/// The `ip2nets=` start-up parameter (`lnet configure --all`,
/// `config_on_load`): the same rules as `net add --ip2net`.
pub(super) fn startup_ip2nets(node: &Node, text: &str) -> Result<(), crate::node::NodeError> {
    use crate::node::NodeError;
    let rules = liblnetconfig::args::ip2net_rules(text).map_err(|e| {
        let why = match e {
            liblnetconfig::args::ArgError::Nl { descr, .. } => descr,
            other => format!("{other:?}"),
        };
        NodeError::failed(EINVAL, format!("ip2nets=\"{text}\": {why}"))
    })?;
    let req = NetAddRequest {
        net: rules[0].net.clone(),
        interfaces: Vec::new(),
        peer_timeout: None,
        peer_credits: None,
        peer_buffer_credits: None,
        credits: None,
        conns_per_peer: None,
        tos: None,
        nids: Vec::new(),
        cpts: None,
        interface_cpts: Vec::new(),
        ip2nets: rules,
    };
    match net_add(node, req).result {
        Ok(_) => Ok(()),
        Err(e) => Err(NodeError::failed(
            e.errno,
            format!("ip2nets=\"{text}\": {}", e.message),
        )),
    }
}
