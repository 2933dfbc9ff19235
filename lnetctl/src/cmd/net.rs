//! `lnetctl net add|del|show|set` (lnetctl.md §2.2–§2.5, §3.1).

use std::path::Path;

use clap::{Args, Subcommand};
use liblnetconfig::args::{self, NetAddArgs};
use liblnetconfig::proto::{NetSetRequest, NiDelRequest};
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
\t--nid: bring up NI based on the address of the specified LNet NID\n\
\t--ip2net: specify networks based on IP address patterns\n\
\t--peer-timeout: time to wait before declaring a peer dead\n\
\t--peer-credits: define the max number of inflight messages\n\
\t--peer-buffer-credits: the number of buffer credits per peer\n\
\t--credits: Network Interface credits\n\
\t--cpt: CPU Partitions configured net uses (e.g. [0,1])\n\
\t--conns-per-peer: number of connections per peer\n\
\t--skip-mr-route-setup: do not add linux route for the ni\n\
\t--auth-key: Network authorization key (kfilnd only; not supported)\n\
\t--traffic-class: Traffic class (kfilnd only; not supported)\n\
\t--tos: IP's Type of Service (-1..255, -1 = LND default)\n")]
    Add(AddArgs),
    /// Delete a network.
    #[command(override_help = "net del: delete a network\n\
\t--net: net name (e.g. tcp0)\n\
\t--nid: shutdown NI based on the address of the specified LNet NID\n\
\t--if: physical interface (e.g. eth0)\n")]
    Del(DelArgs),
    /// Show networks.
    #[command(override_help = "net show: show networks\n\
\t--net: net name (e.g. tcp0) to filter on\n\
\t--verbose: display detailed output per network. Optional argument of '2' outputs more stats\n")]
    Show(ShowArgs),
    /// Change NI or LND parameters.
    #[command(override_help = "net set: set LNet NI parameters\n\
\t--nid: NI NID to set the value on\n\
\t--net: network to set the LND timeout of (with --lnd-timeout)\n\
\t--lnd-timeout: LND timeout in seconds of the LND of --net (0 = follow the global lnd_timeout)\n\
\t--health: specify health value to set\n\
\t--conns-per-peer: number of connections per peer\n\
\t--all: set all NIs\n")]
    Set(SetArgs),
}

/// `net set` options.
#[derive(Args, Debug)]
pub(crate) struct SetArgs {
    #[arg(short = 'n', long)]
    nid: Option<String>,
    #[arg(short = 'i', long)]
    net: Option<String>,
    #[arg(short = 'l', long, allow_negative_numbers = true)]
    lnd_timeout: Option<String>,
    #[arg(short = 't', long, allow_negative_numbers = true)]
    health: Option<String>,
    #[arg(short = 'm', long, allow_negative_numbers = true)]
    conns_per_peer: Option<String>,
    #[arg(short = 'a', long)]
    all: bool,
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
    #[arg(long)]
    nid: Option<String>,
    #[arg(short = 'p', long)]
    ip2net: Option<String>,
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
    #[arg(long)]
    nid: Option<String>,
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
        NetCmd::Add(a) => add(a, socket),
        NetCmd::Del(a) => del(a, socket),
        NetCmd::Set(a) => set(a, socket),
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

fn add(a: &AddArgs, socket: &Path) -> i32 {
    let _ = a.skip_mr_route_setup;
    let given = [
        (a.auth_key.is_some(), "--auth-key"),
        (a.traffic_class.is_some(), "--traffic-class"),
    ];
    if let Some((_, opt)) = given.iter().find(|(g, _)| *g) {
        return unsupported("add", opt, "use --net NET --if IF[,IF] or --nid NID");
    }
    // NIDs on a plugin's net need the daemon's names for its types.
    let net_types = match (&a.nid, liblnetconfig::Client::connect(socket)) {
        (Some(_), Ok(mut c)) => c.net_types().unwrap_or_default(),
        _ => Vec::new(),
    };
    let req = match args::net_add(&NetAddArgs {
        net: a.net.clone(),
        interfaces: a.interfaces.clone(),
        peer_timeout: a.peer_timeout.clone(),
        peer_credits: a.peer_credits.clone(),
        peer_buffer_credits: a.peer_buffer_credits.clone(),
        credits: a.credits.clone(),
        conns_per_peer: a.conns_per_peer.clone(),
        tos: a.tos.clone(),
        nid: a.nid.clone(),
        cpt: a.cpt.clone(),
        net_types,
        ip2net: a.ip2net.clone(),
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

fn del(a: &DelArgs, socket: &Path) -> i32 {
    if a.nid.is_some() && a.net.is_some() {
        return out::arg_error(args::ArgError::Plain(
            "--net is invalid with --nid option".into(),
        ));
    }
    let mut c = match super::connect(socket, "del", "net") {
        Ok(c) => c,
        Err(rc) => return rc,
    };
    let res = match (&a.nid, &a.interfaces) {
        (Some(list), _) => {
            let extra = c.net_types().unwrap_or_default();
            match args::nid_list(list, &extra) {
                Ok(nids) => c.ni_del(NiDelRequest {
                    net: None,
                    interfaces: Vec::new(),
                    nids,
                }),
                Err(e) => return out::arg_error(e),
            }
        }
        (None, Some(ifs)) => {
            let net = match args::net_del(a.net.as_deref()) {
                Ok(n) => n,
                Err(e) => return out::arg_error(e),
            };
            let interfaces = match args::interface_names(ifs) {
                Ok(i) => i,
                Err(e) => return out::arg_error(e),
            };
            c.ni_del(NiDelRequest {
                net: Some(net),
                interfaces,
                nids: Vec::new(),
            })
        }
        (None, None) => match args::net_del(a.net.as_deref()) {
            Ok(net) => c.net_del(net),
            Err(e) => return out::arg_error(e),
        },
    };
    match res {
        Ok(()) => 0,
        Err(e) => out::client_error(&e, "del", "net"),
    }
}

fn set(a: &SetArgs, socket: &Path) -> i32 {
    let classic = |cmd: &'static str, entity: &'static str, errno: i32, descr: String| {
        out::arg_error(args::ArgError::Classic {
            cmd,
            entity,
            errno,
            descr,
            rc: if errno == -1 { -1 } else { out::RC_EINVAL },
        })
    };
    if a.all && a.nid.is_some() {
        return out::RC_EINVAL;
    }
    // Upstream's parse_long: a value that does not parse, or -1, means "not
    // given"; others are clamped to 0..1000 as the kernel does.
    let health = a
        .health
        .as_deref()
        .and_then(args::strtol)
        .filter(|v| *v != -1)
        .map(|v| v.clamp(0, 1000) as u32);
    if health.is_some() && !a.all && a.nid.is_none() {
        return out::nl_error(
            "set",
            "net",
            liblnetconfig::errno::EINVAL,
            "--health needs --nid NID or --all",
            out::RC_EINVAL,
        );
    }
    let mut req = NetSetRequest {
        net: None,
        lnd_timeout: None,
        nid: None,
        all: a.all,
        conns_per_peer: None,
        health,
    };
    if let Some(t) = &a.lnd_timeout {
        let v = args::atoi(t);
        if v < 0 {
            return classic(
                "net",
                "set",
                -22,
                format!("\"Invalid LND timeout value '{t}', must be >= 0\""),
            );
        }
        let Some(net) = &a.net else {
            return classic(
                "net",
                "set",
                -22,
                "\"Specified --lnd-timeout without --net option\"".into(),
            );
        };
        if args::net(net, "set").is_err() {
            return classic(
                "net",
                "set",
                -22,
                format!("\"Invalid network type: {net}\""),
            );
        }
        req.net = Some(net.clone());
        req.lnd_timeout = u32::try_from(v).ok();
    }
    if let Some(cpp) = &a.conns_per_peer {
        match args::strtol(cpp) {
            Some(v) if v <= 127 => req.conns_per_peer = u32::try_from(v).ok(),
            _ => {
                return classic(
                    "net",
                    "set",
                    -1,
                    "invalid conns-per-peer value (valid range 0-127)".into(),
                )
            }
        }
    }
    if req.lnd_timeout.is_none() && req.conns_per_peer.is_none() && req.health.is_none() {
        return 0;
    }
    let mut c = match super::connect(socket, "set", "net") {
        Ok(c) => c,
        Err(rc) => return rc,
    };
    if let Some(n) = &a.nid {
        let extra = c.net_types().unwrap_or_default();
        match liblnetconfig::nidlist::parse_client_nid(n, &extra) {
            Some(nid) => req.nid = Some(nid),
            None => {
                return out::nl_error(
                    "set",
                    "net",
                    liblnetconfig::errno::EINVAL,
                    &format!("cannot parse NID '{n}'"),
                    out::RC_EINVAL,
                )
            }
        }
    }
    if req.health.is_some() && !req.all && req.nid.is_none() {
        return out::nl_error("set", "net", 22, "--nid or --all needed", out::RC_EINVAL);
    }
    if req.conns_per_peer.is_some() && !req.all && req.nid.is_none() {
        return classic(
            "net",
            "set",
            -22,
            "\"--conns-per-peer needs --all or --nid NID\"".into(),
        );
    }
    match c.net_set(req) {
        Ok(()) => 0,
        Err(liblnetconfig::Error::Daemon { errno, message })
            if message.contains("does not accept a LND timeout") =>
        {
            classic("set", "lnd_timeout", -errno, format!("\"{message}\""))
        }
        Err(e) => out::client_error(&e, "set", "net"),
    }
}
