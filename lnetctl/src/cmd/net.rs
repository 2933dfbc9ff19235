//! `lnetctl net add|del|show` (lnetctl.md §2.2–§2.4, §3.1).

use std::path::Path;

use clap::{Args, Subcommand};
use liblnetconfig::args::{self, NetAddArgs};
use liblnetconfig::render;

use crate::out;

/// `net` sub-commands.
#[derive(Subcommand, Debug)]
#[allow(clippy::large_enum_variant)] // parsed once per process
pub(crate) enum NetCmd {
    /// Add a network interface.
    #[command(override_help = "net add: add a network interface\n\
\t--net: net name (e.g. tcp0)\n\
\t--if: physical interface (e.g. eth0)\n\
\t--nid: bring up NI based on the address of the specified LNet NID (not supported yet)\n\
\t--ip2net: specify networks based on IP address patterns (not supported yet)\n\
\t--peer-timeout: time to wait before declaring a peer dead\n\
\t--peer-credits: define the max number of inflight messages\n\
\t--peer-buffer-credits: the number of buffer credits per peer\n\
\t--credits: Network Interface credits\n\
\t--cpt: CPU Partitions configured net uses (e.g. [0,1]) (not supported yet)\n\
\t--conns-per-peer: number of connections per peer\n\
\t--skip-mr-route-setup: do not add linux route for the ni\n\
\t--auth-key: Network authorization key (kfilnd only; not supported)\n\
\t--traffic-class: Traffic class (kfilnd only; not supported)\n\
\t--tos: IP's Type of Service (-1..255, -1 = LND default)\n")]
    Add(AddArgs),
    /// Delete a network.
    #[command(override_help = "net del: delete a network\n\
\t--net: net name (e.g. tcp0)\n\
\t--nid: shutdown NI based on the address of the specified LNet NID (not supported yet)\n\
\t--if: physical interface (e.g. eth0) (not supported yet)\n")]
    Del(DelArgs),
    /// Show networks.
    #[command(override_help = "net show: show networks\n\
\t--net: net name (e.g. tcp0) to filter on\n\
\t--verbose: display detailed output per network. Optional argument of '2' outputs more stats\n")]
    Show(ShowArgs),
}

/// `net add` options; values are kept as text and validated by liblnetconfig.
#[derive(Args, Debug)]
pub(crate) struct AddArgs {
    #[arg(short = 'n', long)]
    net: Option<String>,
    #[arg(short = 'i', long = "if")]
    interfaces: Option<String>,
    #[arg(short = 't', long, allow_negative_numbers = true)]
    peer_timeout: Option<String>,
    #[arg(short = 'c', long, allow_negative_numbers = true)]
    peer_credits: Option<String>,
    #[arg(short = 'b', long, allow_negative_numbers = true)]
    peer_buffer_credits: Option<String>,
    #[arg(short = 'r', long, allow_negative_numbers = true)]
    credits: Option<String>,
    #[arg(short = 'm', long, allow_negative_numbers = true)]
    conns_per_peer: Option<String>,
    #[arg(long, allow_negative_numbers = true)]
    tos: Option<String>,
    /// Accepted for compatibility: this LNet sets up no Linux routes.
    #[arg(short = 'k', long)]
    skip_mr_route_setup: bool,
    /// Not supported yet (refused with a message, never ignored).
    #[arg(long)]
    nid: Option<String>,
    /// Not supported yet.
    #[arg(short = 'p', long)]
    ip2net: Option<String>,
    /// Not supported yet.
    #[arg(short = 's', long)]
    cpt: Option<String>,
    /// kfilnd only; not supported.
    #[arg(short = 'a', long)]
    auth_key: Option<String>,
    /// kfilnd only; not supported.
    #[arg(short = 'T', long)]
    traffic_class: Option<String>,
}

/// `net del` options.
#[derive(Args, Debug)]
pub(crate) struct DelArgs {
    #[arg(short = 'n', long)]
    net: Option<String>,
    /// Not supported yet (refused with a message, never ignored).
    #[arg(long)]
    nid: Option<String>,
    /// Not supported yet.
    #[arg(short = 'i', long = "if")]
    interfaces: Option<String>,
}

/// Refuses an option this LNet does not implement yet, naming it.
fn unsupported(flag: &str, option: &str, instead: &str) -> i32 {
    out::nl_error(
        flag,
        "net",
        liblnetconfig::errno::EOPNOTSUPP,
        &format!("{option} is not supported by this LNet yet; {instead}"),
        out::RC_EINVAL,
    )
}

/// `net show` options.
#[derive(Args, Debug)]
pub(crate) struct ShowArgs {
    #[arg(short = 'n', long)]
    net: Option<String>,
    /// `-v` alone is level 1; `-v N` level N; any other next word is
    /// consumed and means level 1 (lnetctl.md §1.2 point 6).
    #[arg(short = 'v', long, num_args = 0..=1, default_missing_value = "1")]
    verbose: Option<String>,
}

impl ShowArgs {
    /// The verbosity level requested.
    pub(crate) fn level(&self) -> u32 {
        match &self.verbose {
            None => 0,
            Some(v) => v.parse::<u32>().unwrap_or(1),
        }
    }
}

/// Runs a `net` sub-command.
pub(crate) fn run(cmd: &NetCmd, socket: &Path) -> i32 {
    match cmd {
        NetCmd::Add(a) => {
            let _ = a.skip_mr_route_setup;
            let given = [
                (a.nid.is_some(), "--nid"),
                (a.ip2net.is_some(), "--ip2net"),
                (a.cpt.is_some(), "--cpt"),
                (a.auth_key.is_some(), "--auth-key"),
                (a.traffic_class.is_some(), "--traffic-class"),
            ];
            if let Some((_, opt)) = given.iter().find(|(g, _)| *g) {
                return unsupported("add", opt, "use --net NET --if IF[,IF]");
            }
            let req = match args::net_add(&NetAddArgs {
                net: a.net.clone(),
                interfaces: a.interfaces.clone(),
                peer_timeout: a.peer_timeout.clone(),
                peer_credits: a.peer_credits.clone(),
                peer_buffer_credits: a.peer_buffer_credits.clone(),
                credits: a.credits.clone(),
                conns_per_peer: a.conns_per_peer.clone(),
                tos: a.tos.clone(),
            }) {
                Ok(r) => r,
                Err(e) => return out::arg_error(e),
            };
            let mut c = match super::connect(socket, "add", "net") {
                Ok(c) => c,
                Err(rc) => return rc,
            };
            match c.net_add(req) {
                Ok(_) => 0,
                Err(e) => out::client_error(&e, "add", "net"),
            }
        }
        NetCmd::Del(a) => {
            if a.nid.is_some() || a.interfaces.is_some() {
                let opt = if a.nid.is_some() { "--nid" } else { "--if" };
                return unsupported("del", opt, "delete the whole net with --net NET");
            }
            let net = match args::net_del(a.net.as_deref()) {
                Ok(n) => n,
                Err(e) => return out::arg_error(e),
            };
            let mut c = match super::connect(socket, "del", "net") {
                Ok(c) => c,
                Err(rc) => return rc,
            };
            match c.net_del(net) {
                Ok(()) => 0,
                Err(e) => out::client_error(&e, "del", "net"),
            }
        }
        NetCmd::Show(a) => {
            let filter = match a.net.as_deref().map(|n| args::net(n, "show")).transpose() {
                Ok(f) => f,
                Err(e) => return out::arg_error(e),
            };
            let mut c = match super::connect(socket, "show", "net") {
                Ok(c) => c,
                Err(rc) => return rc,
            };
            match c.net_show(filter).and_then(|n| Ok((n, c.net_types()?))) {
                Ok((nets, extra)) => {
                    out::stdout(&render::net_show(&nets, a.level(), &extra));
                    0
                }
                Err(e) => out::client_error(&e, "show", "net"),
            }
        }
    }
}
