//! `lnetctl import [--add|--del|--show|--exec] [FILE]` (lnetctl.md §2.15,
//! §4.2): each top-level section of the document, in order, becomes
//! requests; the first failure stops the import (earlier sections stay).

use std::io::Read;
use std::path::Path;

use clap::Args;
use liblnetconfig::errno::strerror;
use liblnetconfig::import::{self, ImportError, Node};
use liblnetconfig::peer::{Nid, PeerReply, PeerRequest};
use liblnetconfig::proto::NiDelRequest;
use liblnetconfig::route::{self, RouteAddRequest, RouteDelRequest};
use liblnetconfig::{global, render, Client};

use crate::out;

/// `import` options.
#[derive(Args, Debug)]
pub(crate) struct ImportArgs {
    /// Configure what the document describes (the default).
    #[arg(short, long)]
    add: bool,
    /// Delete what the document describes.
    #[arg(short, long)]
    del: bool,
    /// Show what the document describes.
    #[arg(short, long)]
    show: bool,
    /// Execute ping/discover sections.
    #[arg(short, long)]
    exec: bool,
    /// Upstream's older import path; accepted.
    #[arg(short, long)]
    old_api: bool,
    /// The document (stdin when absent).
    file: Option<String>,
}

/// `import -h` (rc 0).
pub(crate) const HELP: &str = "import FILE\n\
import < FILE : import a file\n\
\t--add: add configuration\n\
\t--del: delete configuration\n\
\t--show: show configuration\n\
\t--exec: execute command\n\
\t--old-api: use the older import path (net NIs one item at a time)\n\
\t--help: display this help\n\
If no command option is given then --add is assumed by default\n";

/// What to do with each section.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Action {
    Add,
    Del,
    Show,
    Exec,
}

impl Action {
    fn flag(self) -> &'static str {
        match self {
            Action::Add => "add",
            Action::Del => "del",
            Action::Show => "show",
            Action::Exec => "manage",
        }
    }
}

fn fail(action: Action, e: &ImportError) -> i32 {
    out::nl_error(action.flag(), "import", e.errno, &e.descr, out::RC_EINVAL)
}

/// Runs `import`.
pub(crate) fn run(a: &ImportArgs, socket: &Path) -> i32 {
    let action = if a.del {
        Action::Del
    } else if a.show {
        Action::Show
    } else if a.exec {
        Action::Exec
    } else {
        Action::Add
    };
    // Upstream finds FILE only after at most one option word (§7.5).
    let options = [a.add, a.del, a.show, a.exec, a.old_api]
        .iter()
        .filter(|x| **x)
        .count();
    let text = match a.file.as_deref().filter(|_| options < 2) {
        Some(f) => match std::fs::read_to_string(f) {
            Ok(t) => t,
            Err(e) => {
                let errno = e.raw_os_error().unwrap_or(liblnetconfig::errno::EIO);
                out::stderr(&render::cy_error(
                    "yaml",
                    "builder",
                    -1,
                    &format!("cannot open '{f}': {}", strerror(errno)),
                ));
                return -errno;
            }
        },
        None => {
            let mut t = String::new();
            if let Err(e) = std::io::stdin().read_to_string(&mut t) {
                out::stderr(&format!("Parser error: cannot read stdin: {e}\n"));
                return out::RC_EINVAL;
            }
            t
        }
    };
    let doc = match import::parse(&text) {
        Ok(d) => d,
        Err(line) => {
            out::stderr(&format!("{line}\n"));
            return out::RC_EINVAL;
        }
    };
    if doc.is_empty() {
        return 0;
    }
    if a.old_api {
        // Upstream's older path names an unknown section before anything
        // is applied... as it walks the document: here, up front.
        if let Some((key, _)) = doc.iter().find(|(k, _)| !known(action, k)) {
            out::stderr(&render::cy_error(
                "yaml",
                "helper",
                -2,
                &format!("\"call back for '{key}' not found\""),
            ));
            return out::RC_EINVAL;
        }
    }
    let mut c = match super::connect(socket, action.flag(), "import") {
        Ok(c) => c,
        Err(rc) => return rc,
    };
    for (key, node) in add_order(action, &doc) {
        let rc = section(&mut c, action, key, node, a.old_api);
        if rc != 0 {
            return rc;
        }
    }
    0
}

/// The sections in the order they are applied: document order, except that
/// when adding, `peer:` sections go just before the first `route:` section.
/// An export lists every peer, gateways included, in creation order; creating
/// them before the routes that would otherwise create the gateways gives the
/// same peer order as on the exported node, whatever order peers and routes
/// were configured in there (the routes then use the configured gateways).
fn add_order(action: Action, doc: &[(String, Node)]) -> Vec<(&str, &Node)> {
    let all = doc.iter().map(|(k, n)| (k.as_str(), n));
    let first_route = doc.iter().position(|(k, _)| k == "route");
    let (Action::Add, Some(at)) = (action, first_route) else {
        return all.collect();
    };
    let peers = doc[at..]
        .iter()
        .filter(|(k, _)| k == "peer")
        .map(|(k, n)| (k.as_str(), n));
    let before = doc[..at].iter().map(|(k, n)| (k.as_str(), n));
    let rest = doc[at..]
        .iter()
        .filter(|(k, _)| k != "peer")
        .map(|(k, n)| (k.as_str(), n));
    before.chain(peers).chain(rest).collect()
}

/// Whether a top-level key has a handler for `action`.
fn known(action: Action, key: &str) -> bool {
    match action {
        Action::Exec => matches!(key, "net" | "ip2nets" | "udsp" | "ping" | "discover"),
        _ => matches!(
            key,
            "net"
                | "ip2nets"
                | "route"
                | "peer"
                | "routing"
                | "buffers"
                | "numa"
                | "global"
                | "udsp"
        ),
    }
}

/// One top-level section; each kind of section is one arm.
fn section(c: &mut Client, action: Action, key: &str, node: &Node, old_api: bool) -> i32 {
    match (key, action) {
        ("net", _) => nets(c, action, node, old_api),
        ("global", Action::Exec) => invalid(action, key),
        ("global", _) => globals(c, action, node),
        ("numa", Action::Exec) => invalid(action, key),
        ("numa", _) => numa(c, action, node),
        ("peer" | "route" | "routing" | "buffers", Action::Exec) => invalid(action, key),
        ("udsp", _) => udsp(c, action, node),
        ("ip2nets", _) => ip2nets(c, action, node),
        ("route", _) => routes(c, action, node),
        ("peer", _) => peers(c, action, node, old_api),
        ("routing", _) => routing(c, action, node),
        ("buffers", _) => buffers(c, action, node),
        ("ping", Action::Exec) => ping(c, node, old_api),
        ("discover", Action::Exec) => discover(c, node, old_api),
        _ => invalid(action, key),
    }
}

fn invalid(action: Action, key: &str) -> i32 {
    fail(
        action,
        &ImportError {
            errno: liblnetconfig::errno::EINVAL,
            descr: format!("invalid key '{key}'"),
        },
    )
}

fn nets(c: &mut Client, action: Action, node: &Node, old_api: bool) -> i32 {
    let blocks = if old_api {
        import::net_blocks_old_api(node)
    } else {
        import::net_blocks(node)
    };
    let blocks = match blocks {
        Ok(b) => b,
        Err(e) => return fail(action, &e),
    };
    for b in blocks {
        for w in &b.warnings {
            out::stderr(&format!("{w}\n"));
        }
        let net = b.request.net.clone();
        let res = match action {
            Action::Add | Action::Exec => c.net_add(b.request).map(|_| ()),
            Action::Del if b.request.interfaces.is_empty() => c.net_del(net.clone()),
            Action::Del => c.ni_del(NiDelRequest {
                net: Some(net.clone()),
                interfaces: b.request.interfaces,
                nids: Vec::new(),
            }),
            Action::Show => match c.net_show(Some(net.clone())) {
                Ok(n) => {
                    let extra = c.net_types().unwrap_or_default();
                    out::stdout(&render::net_show(&n, 5, &extra));
                    Ok(())
                }
                Err(e) => Err(e),
            },
        };
        if let Err(e) = res {
            let descr = match (&e, action) {
                (liblnetconfig::Error::Daemon { message, .. }, Action::Add) => {
                    format!("Failed to configure NI on net '{net}' rc = -22: {message}")
                }
                _ => e.to_string(),
            };
            return out::nl_error(action.flag(), "net", e.errno(), &descr, out::RC_EINVAL);
        }
    }
    0
}

fn globals(c: &mut Client, action: Action, node: &Node) -> i32 {
    let entries = match import::global_entries(node) {
        Ok(e) => e,
        Err(e) => return fail(action, &e),
    };
    for (t, v) in entries {
        let value = match (action, t.name) {
            (Action::Show, _) => continue,
            (Action::Del, "numa_range") => 0,
            (Action::Del, "max_interfaces") => 4096,
            (Action::Del, "discovery") => 1,
            (Action::Del, _) => continue,
            _ => v,
        };
        let rc = super::set::apply(c, t, &value.to_string());
        if rc != 0 {
            return rc;
        }
    }
    0
}

fn numa(c: &mut Client, action: Action, node: &Node) -> i32 {
    let v = match import::numa_range(node) {
        Ok(v) => v,
        Err(e) => return fail(action, &e),
    };
    let value = match action {
        Action::Show => return 0,
        Action::Del => 0,
        _ => v,
    };
    match global::tunable("numa_range") {
        Some(t) => super::set::apply(c, t, &value.to_string()),
        None => out::RC_EINVAL,
    }
}

fn udsp(c: &mut Client, action: Action, node: &Node) -> i32 {
    let mut rules = match import::udsp_rules(node) {
        Ok(r) => r,
        Err(e) => return fail(action, &e),
    };
    // Deleting renumbers the later rules: delete from the highest index.
    if action == Action::Del {
        rules.sort_by_key(|(i, _)| std::cmp::Reverse(*i));
    }
    for (idx, rule) in rules {
        let res = match action {
            Action::Add | Action::Exec => c.udsp_add(rule, Some(idx)),
            Action::Del => c.udsp_del(Some(idx)),
            Action::Show => c.udsp_show(Some(idx)).map(|r| {
                out::stdout(&liblnetconfig::udsp::show(&r));
            }),
        };
        if let Err(e) = res {
            return out::nl_error(
                action.flag(),
                "import",
                e.errno(),
                &e.to_string(),
                out::RC_EINVAL,
            );
        }
    }
    0
}

/// `ip2nets:`: rules in order; a rule that matches no interface is
/// skipped, a net already configured by an earlier rule is skipped (first
/// match wins); no rule applied is an error.
fn ip2nets(c: &mut Client, action: Action, node: &Node) -> i32 {
    let blocks = match import::ip2nets_blocks(node) {
        Ok(b) => b,
        Err(e) => return fail(action, &e),
    };
    let mut done: Vec<String> = Vec::new();
    for b in blocks {
        for w in &b.warnings {
            out::stderr(&format!("{w}\n"));
        }
        let net = b.request.net.clone();
        if done.contains(&net) {
            continue;
        }
        let res = match action {
            Action::Add | Action::Exec => c.net_add(b.request).map(|_| ()),
            Action::Del => c.net_del(net.clone()),
            Action::Show => c.net_show(Some(net.clone())).map(|n| {
                let extra = c.net_types().unwrap_or_default();
                out::stdout(&render::net_show(&n, 5, &extra));
            }),
        };
        match res {
            Ok(()) => done.push(net),
            // This rule matches none of this node's interfaces.
            Err(liblnetconfig::Error::Daemon { errno, .. })
                if errno == liblnetconfig::errno::ENOENT => {}
            Err(e) => {
                return out::nl_error(
                    action.flag(),
                    "net",
                    e.errno(),
                    &e.to_string(),
                    out::RC_EINVAL,
                )
            }
        }
    }
    if done.is_empty() {
        return fail(
            action,
            &ImportError {
                errno: liblnetconfig::errno::EINVAL,
                descr: "No ip2nets rules applied".into(),
            },
        );
    }
    0
}

/// `ping:` under `--exec`: pings the NIDs; the result is not printed, a
/// failed target fails the import.
fn ping(c: &mut Client, node: &Node, old_api: bool) -> i32 {
    let sec = match import::exec_section(node, old_api) {
        Ok(p) => p,
        Err(e) => return fail(Action::Exec, &e),
    };
    let extra = c.net_types().unwrap_or_default();
    let mut req = match liblnetconfig::args::ping(&sec.nids, sec.source.as_deref(), None, &extra) {
        Ok(r) => r,
        Err(e) => return out::arg_error(e),
    };
    req.timeout_ms = sec.timeout_ms.filter(|t| *t > 0);
    match c.ping(req) {
        Ok(outcomes) => match outcomes.iter().find_map(|o| o.result.as_ref().err()) {
            None => 0,
            Some(e) => out::nl_error("manage", "ping", e.errno, &e.message, -1),
        },
        Err(e) => out::client_error(&e, "manage", "ping"),
    }
}

/// `discover:` under `--exec`: discovers the NIDs (`force` as `discover
/// --force`); the result is not printed, a failed target fails the import.
fn discover(c: &mut Client, node: &Node, old_api: bool) -> i32 {
    let sec = match import::exec_section(node, old_api) {
        Ok(p) => p,
        Err(e) => return fail(Action::Exec, &e),
    };
    let extra = c.net_types().unwrap_or_default();
    let nids = match liblnetconfig::nidlist::expand(&sec.nids, &extra) {
        Ok(n) => n,
        Err(e) => return out::nl_error("manage", "discover", e.errno, &e.message, out::RC_EINVAL),
    };
    match c.peer(PeerRequest::Discover {
        nids,
        force: sec.force,
    }) {
        Ok(PeerReply::Discover(outcomes)) => {
            match outcomes.iter().find_map(|o| o.result.as_ref().err()) {
                None => 0,
                Some(e) => out::nl_error("manage", "discover", e.errno, &e.message, -1),
            }
        }
        Ok(_) => out::nl_error("manage", "discover", 71, "unexpected reply", out::RC_EINVAL),
        Err(e) => out::client_error(&e, "manage", "discover"),
    }
}

fn extra_types(c: &mut Client) -> Vec<(String, u8)> {
    c.net_types().unwrap_or_default()
}

/// `route:`: `--add` adds each route (the checks of `route add`), `--del`
/// deletes each, `--show` prints the routes each entry names. The first
/// failure stops the import and names the route.
fn routes(c: &mut Client, action: Action, node: &Node) -> i32 {
    let entries = match import::route_entries(node) {
        Ok(e) => e,
        Err(e) => return fail(action, &e),
    };
    let extra = extra_types(c);
    let mut shown = Vec::new();
    for e in &entries {
        let item_fail = |errno: i32, why: &str| {
            let verb = match action {
                Action::Del => "delete",
                Action::Show => "show",
                _ => "add",
            };
            out::nl_error(
                action.flag(),
                "route",
                errno,
                &format!("failed to {verb} {}: {why}", e.name()),
                out::RC_EINVAL,
            )
        };
        let net = match liblnetconfig::args::net(&e.net, action.flag()) {
            Ok(n) => n,
            Err(_) => return item_fail(liblnetconfig::errno::EINVAL, "cannot parse remote net"),
        };
        let Some(gw) = liblnetconfig::nidlist::parse_client_nid(&e.gateway, &extra) else {
            return item_fail(liblnetconfig::errno::ENODEV, "cannot parse gateway");
        };
        let res = match action {
            Action::Add | Action::Exec => {
                // The numbers come from YAML: the checks of `route add`.
                if e.hop != -1 && !(1..=255).contains(&e.hop) {
                    return item_fail(
                        liblnetconfig::errno::EINVAL,
                        "invalid hop count must be between 1 and 255",
                    );
                }
                if e.priority < 0 {
                    return item_fail(
                        liblnetconfig::errno::EINVAL,
                        "invalid priority, must not be negative",
                    );
                }
                if e.health_sensitivity
                    .is_some_and(|s| !(0..=1000).contains(&s))
                {
                    return item_fail(
                        liblnetconfig::errno::EINVAL,
                        "invalid health sensitivity, must be between 0 and 1000",
                    );
                }
                c.route_add(RouteAddRequest {
                    net: net.clone(),
                    gateways: vec![gw],
                    hop: e.hop,
                    priority: e.priority,
                    health_sensitivity: e.health_sensitivity,
                })
            }
            Action::Del => c.route_del(RouteDelRequest {
                net: Some(net.clone()),
                gateways: vec![gw],
            }),
            Action::Show => c.route_show().map(|all| {
                for r in all {
                    if r.net == net && r.gateway == gw && !shown.contains(&r) {
                        shown.push(r);
                    }
                }
            }),
        };
        if let Err(err) = res {
            let why = match &err {
                liblnetconfig::Error::Daemon { message, .. } => message.clone(),
                other => other.to_string(),
            };
            return item_fail(err.errno(), &why);
        }
    }
    if action == Action::Show {
        out::stdout(&route::route_show(
            &shown,
            &route::RouteFilter::default(),
            true,
            &extra,
        ));
    }
    0
}

/// `peer:`: `--add` is `peer add --prim_nid P --nid <listed NIDs>` (non-MR
/// with `Multi-Rail: False`), `--del` deletes the listed NIDs (the whole
/// peer when the primary is listed or no NIDs are), `--show` prints the
/// listed peers. The first failure stops the import and names the peer.
fn peers(c: &mut Client, action: Action, node: &Node, old_api: bool) -> i32 {
    let entries = match import::peer_entries(node, old_api) {
        Ok(e) => e,
        Err(e) => return fail(action, &e),
    };
    let extra = extra_types(c);
    let names: Vec<(&str, u8)> = extra.iter().map(|(n, t)| (n.as_str(), *t)).collect();
    let mut shown = Vec::new();
    for e in &entries {
        let item_fail = |errno: i32, why: &str| {
            let verb = match action {
                Action::Del => "delete",
                Action::Show => "show",
                _ => "add",
            };
            out::nl_error(
                action.flag(),
                "peer",
                errno,
                &format!("failed to {verb} peer '{}': {why}", e.primary),
                out::RC_EINVAL,
            )
        };
        let Ok(primary) = Nid::parse_with(&e.primary, &names) else {
            return item_fail(liblnetconfig::errno::EINVAL, "unsupported primary NID");
        };
        let mut nids = Vec::new();
        for t in &e.nids {
            match Nid::parse_with(t, &names) {
                Ok(n) if n == primary => {}
                Ok(n) => nids.push(n),
                Err(_) => {
                    return item_fail(
                        liblnetconfig::errno::EINVAL,
                        &format!("unsupported secondary NID '{t}'"),
                    )
                }
            }
        }
        let listed_primary = e
            .nids
            .iter()
            .any(|t| Nid::parse_with(t, &names).is_ok_and(|n| n == primary));
        let res = match action {
            Action::Add | Action::Exec => c.peer(PeerRequest::Add {
                primary,
                nids,
                multi_rail: e.multi_rail.unwrap_or(true),
                lock_prim: false,
            }),
            Action::Del => c.peer(PeerRequest::Del {
                primary,
                nids: if listed_primary || e.nids.is_empty() {
                    Vec::new()
                } else {
                    nids
                },
                force: false,
            }),
            Action::Show => c
                .peer(PeerRequest::Show { nid: Some(primary) })
                .inspect(|r| {
                    if let PeerReply::Peers(p) = r {
                        shown.extend(p.iter().cloned());
                    }
                }),
        };
        if let Err(err) = res {
            let why = match &err {
                liblnetconfig::Error::Daemon { message, .. } => message.clone(),
                other => other.to_string(),
            };
            return item_fail(err.errno(), &why);
        }
    }
    if action == Action::Show {
        out::stdout(&liblnetconfig::peer::show(&shown, 0, &extra));
    }
    0
}

/// `routing: {enable: N}`: applied as given for every action (upstream).
fn routing(c: &mut Client, action: Action, node: &Node) -> i32 {
    let enable = match import::routing_enable(node) {
        Ok(e) => e,
        Err(e) => return fail(action, &e),
    };
    match c.routing_set(enable) {
        Ok(()) => 0,
        Err(e) => out::nl_error(
            action.flag(),
            "routing",
            e.errno(),
            &format!(
                "cannot {} routing: {e}",
                if enable { "enable" } else { "disable" }
            ),
            out::RC_EINVAL,
        ),
    }
}

/// `buffers: {tiny, small, large}`: `--add` sets the router buffer totals
/// (0 = default), `--del` puts them back to the defaults, `--show` prints
/// nothing (as `global:`).
fn buffers(c: &mut Client, action: Action, node: &Node) -> i32 {
    let entries = match import::buffers_entries(node) {
        Ok(e) => e,
        Err(e) => return fail(action, &e),
    };
    for (pool, n) in entries {
        let value = match action {
            Action::Show => continue,
            Action::Del => 0,
            _ => n,
        };
        if let Err(e) = c.router_buffers_set(pool, value) {
            return out::nl_error(
                action.flag(),
                "buffers",
                e.errno(),
                &format!("cannot configure {pool}_buffers {value}: {e}"),
                out::RC_EINVAL,
            );
        }
    }
    0
}
