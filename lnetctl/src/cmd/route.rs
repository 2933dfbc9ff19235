//! `lnetctl route add|del|show`, `routing show`, and the routing part of
//! `set` (`routing`, `tiny_buffers`, `small_buffers`, `large_buffers`)
//! (lnetctl.md §2.7, §2.8, §2.11, §3.4; issue 13).

use std::path::Path;

use clap::{Args, Subcommand};
use liblnetconfig::args::strtol;
use liblnetconfig::render;
use liblnetconfig::route::{self, RouteArgs, RouteFilter};

use crate::out;

/// `route` sub-commands.
#[derive(Subcommand, Debug)]
pub(crate) enum RouteCmd {
    /// Add a route.
    #[command(override_help = "route add: add a route\n\
\t--net: net name (e.g. tcp0)\n\
\t--gateway: gateway nid (e.g. 10.1.1.2@tcp)\n\
\t--hop|hop-count: number to final destination (1 <= hops <= 255)\n\
\t--priority: priority of route (0 - highest prio\n\
\t--health_sensitivity: gateway health sensitivity (>= 0)\n")]
    Add(RouteAddArgs),
    /// Delete a route.
    #[command(override_help = "route del: delete a route\n\
\t--net: net name (e.g. tcp0)\n\
\t--gateway: gateway nid (e.g. 10.1.1.2@tcp)\n")]
    Del(RouteDelArgs),
    /// Show routes.
    #[command(override_help = "route show: show routes\n\
\t--net: net name (e.g. tcp0) to filter on\n\
\t--gateway: gateway nid (e.g. 10.1.1.2@tcp) to filter on\n\
\t--hop|hop-count: number to final destination (1 <= hops <= 255) to filter on\n\
\t--priority: priority of route (0 - highest prio to filter on\n\
\t--verbose: display detailed output per route\n")]
    Show(RouteShowArgs),
}

/// `route add` options, as text (non-numeric hop/priority are ignored).
#[derive(Args, Debug)]
pub(crate) struct RouteAddArgs {
    #[arg(short = 'n', long)]
    net: Option<String>,
    #[arg(short = 'g', long)]
    gateway: Option<String>,
    #[arg(
        short = 'c',
        long = "hop",
        visible_alias = "hop-count",
        allow_negative_numbers = true
    )]
    hop: Option<String>,
    #[arg(short = 'p', long, allow_negative_numbers = true)]
    priority: Option<String>,
    #[arg(
        short = 's',
        long = "health_sensitivity",
        allow_negative_numbers = true
    )]
    health_sensitivity: Option<String>,
}

/// `route del` options.
#[derive(Args, Debug)]
pub(crate) struct RouteDelArgs {
    #[arg(short = 'n', long)]
    net: Option<String>,
    #[arg(short = 'g', long)]
    gateway: Option<String>,
}

/// `route show` options.
#[derive(Args, Debug)]
pub(crate) struct RouteShowArgs {
    #[arg(short = 'n', long)]
    net: Option<String>,
    #[arg(short = 'g', long)]
    gateway: Option<String>,
    #[arg(
        short = 'c',
        long = "hop",
        visible_alias = "hop-count",
        allow_negative_numbers = true
    )]
    hop: Option<String>,
    #[arg(short = 'p', long, allow_negative_numbers = true)]
    priority: Option<String>,
    #[arg(short = 'v', long)]
    verbose: bool,
}

/// `routing` sub-commands.
#[derive(Subcommand, Debug)]
pub(crate) enum RoutingCmd {
    /// Show router buffers.
    #[command(override_help = "routing show: show routing information\n")]
    Show,
}

/// Runs `route add|del|show`.
pub(crate) fn run(cmd: &RouteCmd, socket: &Path) -> i32 {
    let (flag, words) = match cmd {
        RouteCmd::Add(a) => (
            "add",
            RouteArgs {
                net: a.net.as_deref(),
                gateway: a.gateway.as_deref(),
                hop: a.hop.as_deref(),
                priority: a.priority.as_deref(),
                health_sensitivity: a.health_sensitivity.as_deref(),
            },
        ),
        RouteCmd::Del(a) => (
            "del",
            RouteArgs {
                net: a.net.as_deref(),
                gateway: a.gateway.as_deref(),
                ..RouteArgs::default()
            },
        ),
        RouteCmd::Show(a) => return show(a, socket),
    };
    let mut c = match super::connect(socket, flag, "route") {
        Ok(c) => c,
        Err(rc) => return rc,
    };
    let extra = c.net_types().unwrap_or_default();
    let r = if flag == "add" {
        match route::route_add(&words, &extra) {
            Ok(req) => c.route_add(req),
            Err(e) => return out::arg_error(e),
        }
    } else {
        match route::route_del(&words, &extra) {
            Ok(req) => c.route_del(req),
            Err(e) => return out::arg_error(e),
        }
    };
    match r {
        Ok(()) => 0,
        Err(e) => out::client_error(&e, flag, "route"),
    }
}

fn show(a: &RouteShowArgs, socket: &Path) -> i32 {
    let mut c = match super::connect(socket, "show", "route") {
        Ok(c) => c,
        Err(rc) => return rc,
    };
    let extra = c.net_types().unwrap_or_default();
    let net = match a
        .net
        .as_deref()
        .map(|n| liblnetconfig::args::net(n, "show"))
        .transpose()
    {
        Ok(n) => n,
        Err(e) => return out::arg_error(e),
    };
    let gateway = match a.gateway.as_deref() {
        None => None,
        Some(g) => match liblnetconfig::nidlist::parse_client_nid(g, &extra) {
            Some(n) => Some(n),
            None => {
                return out::nl_error("show", "route", -22, "cannot parse gateway", -22);
            }
        },
    };
    let filter = RouteFilter {
        net,
        gateway,
        hop: a.hop.as_deref().and_then(strtol),
        priority: a.priority.as_deref().and_then(strtol),
    };
    match c.route_show() {
        Ok(routes) => {
            out::stdout(&route::route_show(&routes, &filter, a.verbose, &extra));
            0
        }
        Err(e) => out::client_error(&e, "show", "route"),
    }
}

/// Runs `routing show`: nothing before routing was ever enabled.
pub(crate) fn run_routing(cmd: &RoutingCmd, socket: &Path) -> i32 {
    match cmd {
        RoutingCmd::Show => {
            let mut c = match liblnetconfig::Client::connect(socket) {
                Ok(c) => c,
                Err(e) => return out::client_error(&e, "show", "routing"),
            };
            match c.routing_show() {
                Ok(info) => {
                    out::stdout(&route::routing_show(info.as_ref()));
                    0
                }
                Err(e) => {
                    let errno = e.errno();
                    out::stderr(&render::cy_error(
                        "show",
                        "routing",
                        -errno,
                        &format!("\"cannot get routing information: {e}\""),
                    ));
                    -errno
                }
            }
        }
    }
}

/// The routing tunables of `set` (lnetctl.md §2.8): `routing`,
/// `tiny_buffers`, `small_buffers`, `large_buffers`. `None` for another
/// name (the caller handles it); otherwise the rc.
pub(crate) fn run_set(name: &str, value: &str, socket: &Path) -> Option<i32> {
    let pool = match name {
        "routing" => None,
        "tiny_buffers" => Some("tiny"),
        "small_buffers" => Some("small"),
        "large_buffers" => Some("large"),
        _ => return None,
    };
    let v = strtol(value);
    let Some(pool) = pool else {
        let Some(v @ (0 | 1)) = v else {
            out::stderr(&render::cy_error(
                "parser",
                "set",
                -1,
                "cannot parse routing value.\nmust be 0 for disable or 1 for enable",
            ));
            return Some(-1);
        };
        let (cmd, verb) = if v == 1 {
            ("add", "enable")
        } else {
            ("del", "disable")
        };
        let r = liblnetconfig::Client::connect(socket).and_then(|mut c| c.routing_set(v == 1));
        return Some(match r {
            Ok(()) => 0,
            Err(e) => {
                let errno = e.errno();
                out::stderr(&render::cy_error(
                    cmd,
                    "routing",
                    -errno,
                    &format!("\"cannot {verb} routing {e}\""),
                ));
                -errno
            }
        });
    };
    let Some(v) = v else {
        out::stderr(&render::cy_error(
            "parser",
            "set",
            -1,
            &format!("cannot parse {name} value"),
        ));
        return Some(-1);
    };
    if v < -1 {
        out::stderr(&render::cy_error(
            "add",
            "buf",
            -34,
            "\"tiny, small and large must be >= 0\"",
        ));
        return Some(-34);
    }
    let r = liblnetconfig::Client::connect(socket)
        .and_then(|mut c| c.router_buffers_set(pool, v.max(0)));
    Some(match r {
        Ok(()) => 0,
        Err(e) => {
            let errno = e.errno();
            out::stderr(&render::cy_error(
                "add",
                "buf",
                -errno,
                &format!("\"cannot configure {name}: {e}\""),
            ));
            -errno
        }
    })
}
