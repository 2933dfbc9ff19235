//! Control requests of lnetctl's configuration commands (issue 16): `set`,
//! `global show`, `stats reset`, `net del --nid/--if`, `net set`, `udsp`.
//! [`handle`] answers the requests it knows and hands the others back.

use liblnetconfig::errno::EINVAL;
use liblnetconfig::proto::{GlobalInfo, Op, Reply, ReplyBody};

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

/// The tunables an unconfigured daemon would start with (its parameters).
fn startup_tunables(shared: &Shared) -> GlobalTunables {
    let mut cfg = Config::default();
    match crate::node::config::startup_config(&mut cfg, &shared.node_cfg.params) {
        Ok(()) => cfg.tunables,
        Err(_) => GlobalTunables::default(),
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
        Op::GlobalShow => {
            let t = node.map_or_else(|| startup_tunables(shared), Node::global_tunables);
            Reply::ok(ReplyBody::Global(global_info(&t)))
        }
        Op::GlobalSet(req) => need(&|n| done(n.global_set(&req.name, req.value))),
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
