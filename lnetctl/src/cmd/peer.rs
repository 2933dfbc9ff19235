//! `lnetctl peer add|del|show|list|set`, `discover [--force] NID...` and
//! `debug recovery --local|--peer` (lnetctl.md §2.6, §2.13, §2.17).

use std::path::Path;

use clap::{Args, Subcommand};
use liblnetconfig::nidlist;
use liblnetconfig::peer::{self as lpeer, Nid, PeerReply, PeerRequest};
use liblnetconfig::{render, Client};

use crate::out;

/// `peer` sub-commands.
#[derive(Subcommand, Debug)]
pub(crate) enum PeerCmd {
    /// Add a peer or NIDs to it.
    #[command(override_help = "peer add: add a peer\n\
\t--prim_nid: primary NID of the peer.\n\
\t--nid: one or more peer NIDs\n\
\t--non_mr: create this peer as not Multi-Rail capable\n\
\t--ip2nets: specify a range of nids per peer\n\
\t--lock_prim: lock primary nid\n")]
    Add(AddArgs),
    /// Delete a peer or NIDs from it.
    #[command(override_help = "peer del: delete a peer\n\
\t--prim_nid: Primary NID of the peer.\n\
\t--nid: list of NIDs to remove. If none provided,\n\
\t       peer is deleted\n\
\t--force: force-delete locked primary NID\n")]
    Del(DelArgs),
    /// Show peers.
    #[command(override_help = "peer show: show peer information\n\
\t--nid: NID of peer to filter on.\n\
\t--verbose: display detailed output per peer. Optional argument of '2' outputs more stats\n")]
    Show(ShowArgs),
    /// List the peers' primary NIDs.
    #[command(override_help = "peer list: list all peers\n")]
    List,
    /// Set peer NI health or state.
    #[command(override_help = "peer set: set peer parameters\n\
\t--nid: Peer NI NID to set the\n\
\t--health: specify health value to set\n\
\t--all: set all peer_nis values to the one specified\n\
\t--state: set peer state (DANGEROUS: for test/debug only)\n")]
    Set(SetArgs),
}

/// `peer add` options.
#[derive(Args, Debug)]
pub(crate) struct AddArgs {
    #[arg(short = 'k', long = "prim_nid")]
    prim_nid: Option<String>,
    #[arg(short = 'n', long)]
    nid: Option<String>,
    #[arg(short = 'm', long = "non_mr")]
    non_mr: bool,
    #[arg(short = 'l', long = "lock_prim")]
    lock_prim: bool,
    /// Upstream sets the same request flag as --lock_prim.
    #[arg(short = 'f', long)]
    force: bool,
    #[arg(short = 'i', long)]
    ip2nets: Option<String>,
}

/// `peer del` options.
#[derive(Args, Debug)]
pub(crate) struct DelArgs {
    #[arg(short = 'k', long = "prim_nid")]
    prim_nid: Option<String>,
    #[arg(short = 'n', long)]
    nid: Option<String>,
    #[arg(short = 'f', long)]
    force: bool,
    /// Upstream sets the same request flag as --force.
    #[arg(short = 'l', long = "lock_prim")]
    lock_prim: bool,
}

/// `peer show` options.
#[derive(Args, Debug)]
pub(crate) struct ShowArgs {
    #[arg(short = 'n', long)]
    nid: Option<String>,
    /// `-v` alone is level 1; `--verbose=N` means level 1 (lnetctl.md §1.2).
    #[arg(short = 'v', long, num_args = 0..=1, default_missing_value = "1")]
    verbose: Option<String>,
}

/// `peer set` options.
#[derive(Args, Debug)]
pub(crate) struct SetArgs {
    #[arg(short = 'n', long)]
    nid: Option<String>,
    #[arg(short = 't', long, allow_negative_numbers = true)]
    health: Option<String>,
    #[arg(short = 'a', long)]
    all: bool,
    #[arg(short = 's', long, allow_negative_numbers = true)]
    state: Option<String>,
}

/// `discover` arguments.
#[derive(Args, Debug)]
pub(crate) struct DiscoverArgs {
    /// NIDs or NID ranges.
    nids: Vec<String>,
    /// Discover even if the peer is up to date.
    #[arg(short = 'f', long)]
    force: bool,
}

/// `debug` sub-commands of this module.
#[derive(Subcommand, Debug)]
pub(crate) enum DebugCmd {
    /// Show the local NI or peer NI recovery queue.
    #[command(override_help = "debug recovery: display recovery queues\n\
\t--local: list local NIs in recovery\n\
\t--peer: list peer NIs in recovery\n")]
    Recovery(RecoveryArgs),
    /// Dump a peer's state to lnetd's log.
    #[command(override_help = "debug peer: show peer debug info\n\t--nid: peer's NID\n")]
    Peer(crate::cmd::util::DebugPeerArgs),
    /// Parse a NID range list and match a NID against it.
    #[command(override_help = "debug nidlist: debug nidlist parsing\n")]
    Nidlist(crate::cmd::util::NidlistArgs),
}

/// `debug recovery` options.
#[derive(Args, Debug)]
pub(crate) struct RecoveryArgs {
    #[arg(short = 'l', long)]
    local: bool,
    #[arg(short = 'p', long)]
    peer: bool,
}

fn connect(socket: &Path, flag: &str, object: &str) -> Result<(Client, Vec<(String, u8)>), i32> {
    let mut c = Client::connect(socket).map_err(|e| out::client_error(&e, flag, object))?;
    let extra = c
        .net_types()
        .map_err(|e| out::client_error(&e, flag, object))?;
    Ok((c, extra))
}

fn parse_nid(text: &str, extra: &[(String, u8)]) -> Option<Nid> {
    let names: Vec<(&str, u8)> = extra.iter().map(|(n, t)| (n.as_str(), *t)).collect();
    Nid::parse_with(text, &names).ok()
}

/// `--nid` of `peer add|del`: a comma-separated list of NIDs and ranges.
fn nid_list(text: Option<&str>, extra: &[(String, u8)], flag: &str) -> Result<Vec<Nid>, i32> {
    let Some(t) = text else {
        return Ok(Vec::new());
    };
    let words: Vec<String> = vec![t.to_string()];
    nidlist::expand(&words, extra).map_err(|e| {
        out::stdout(&format!("can't parse nidrange: \"{t}\"\n"));
        out::nl_error(flag, "peer", e.errno, &e.message, out::RC_EINVAL)
    })
}

fn simple(c: &mut Client, req: PeerRequest, flag: &str) -> i32 {
    match c.peer(req) {
        Ok(_) => 0,
        Err(e) => out::client_error(&e, flag, "peer"),
    }
}

/// Runs a `peer` sub-command.
pub(crate) fn run(cmd: &PeerCmd, socket: &Path) -> i32 {
    match cmd {
        PeerCmd::Add(a) => add(a, socket),
        PeerCmd::Del(a) => del(a, socket),
        PeerCmd::Show(a) => show(a, socket),
        PeerCmd::List => list(socket),
        PeerCmd::Set(a) => set(a, socket),
    }
}

fn add(a: &AddArgs, socket: &Path) -> i32 {
    let (mut c, extra) = match connect(socket, "add", "peer") {
        Ok(x) => x,
        Err(rc) => return rc,
    };
    let nids = match nid_list(a.nid.as_deref(), &extra, "add") {
        Ok(n) => n,
        Err(rc) => return rc,
    };
    let Some(prim_text) = a.prim_nid.as_deref() else {
        return out::nl_error("add", "peer", 42, "no configuration", out::RC_EINVAL);
    };
    let Some(primary) = parse_nid(prim_text, &extra) else {
        return out::nl_error("add", "peer", 22, "unsupported primary NID", out::RC_EINVAL);
    };
    simple(
        &mut c,
        PeerRequest::Add {
            primary,
            nids,
            multi_rail: !a.non_mr,
            lock_prim: a.lock_prim || a.force,
        },
        "add",
    )
}

fn del(a: &DelArgs, socket: &Path) -> i32 {
    let (mut c, extra) = match connect(socket, "del", "peer") {
        Ok(x) => x,
        Err(rc) => return rc,
    };
    let nids = match nid_list(a.nid.as_deref(), &extra, "del") {
        Ok(n) => n,
        Err(rc) => return rc,
    };
    let Some(prim_text) = a.prim_nid.as_deref() else {
        return out::nl_error("del", "peer", 42, "no configuration", out::RC_EINVAL);
    };
    let Some(primary) = parse_nid(prim_text, &extra) else {
        return out::nl_error("del", "peer", 22, "missing primary NID", out::RC_EINVAL);
    };
    simple(
        &mut c,
        PeerRequest::Del {
            primary,
            nids,
            force: a.force || a.lock_prim,
        },
        "del",
    )
}

fn show(a: &ShowArgs, socket: &Path) -> i32 {
    let (mut c, extra) = match connect(socket, "show", "peer") {
        Ok(x) => x,
        Err(rc) => return rc,
    };
    let level = match &a.verbose {
        None => 0,
        Some(v) => v.parse::<u32>().unwrap_or(1),
    };
    let nid = match a.nid.as_deref() {
        None => None,
        Some(t) => match parse_nid(t, &extra) {
            Some(n) => Some(n),
            None => return out::nl_error("show", "peer", 2, "cannot find peer", out::RC_EINVAL),
        },
    };
    match c.peer(PeerRequest::Show { nid }) {
        Ok(PeerReply::Peers(p)) => {
            out::stdout(&lpeer::show(&p, level, &extra));
            0
        }
        Ok(_) => out::nl_error("show", "peer", 71, "unexpected reply", out::RC_EINVAL),
        Err(liblnetconfig::Error::Daemon { errno, .. }) if errno.abs() == 2 => {
            out::nl_error("show", "peer", 2, "cannot find peer", out::RC_EINVAL)
        }
        Err(e) => out::client_error(&e, "show", "peer"),
    }
}

fn list(socket: &Path) -> i32 {
    let (mut c, extra) = match connect(socket, "show", "peer") {
        Ok(x) => x,
        Err(rc) => return rc,
    };
    match c.peer(PeerRequest::Show { nid: None }) {
        Ok(PeerReply::Peers(p)) => {
            out::stdout(&lpeer::list(&p, &extra));
            0
        }
        Ok(_) => out::nl_error("show", "peer", 71, "unexpected reply", out::RC_EINVAL),
        Err(e) => out::client_error(&e, "show", "peer"),
    }
}

fn set(a: &SetArgs, socket: &Path) -> i32 {
    let (mut c, extra) = match connect(socket, "set", "peer") {
        Ok(x) => x,
        Err(rc) => return rc,
    };
    let nid = match a.nid.as_deref() {
        None => None,
        Some(t) => match parse_nid(t, &extra) {
            Some(n) => Some(n),
            None => {
                return out::nl_error("set", "peer", 22, "invalid NID", out::RC_EINVAL);
            }
        },
    };
    if let Some(s) = a.state.as_deref() {
        let (Some(nid), Ok(state)) = (nid, s.parse::<u32>()) else {
            return out::nl_error(
                "set",
                "peer",
                22,
                "--state needs --nid and a number",
                out::RC_EINVAL,
            );
        };
        return simple(&mut c, PeerRequest::SetState { nid, state }, "set");
    }
    let Some(h) = a.health.as_deref() else {
        return 0;
    };
    let Ok(value) = h.parse::<i64>() else {
        return out::nl_error("set", "peer", 22, "invalid health value", out::RC_EINVAL);
    };
    let value = value.clamp(0, 1000) as u32;
    if nid.is_none() && !a.all {
        return out::nl_error("set", "peer", 22, "--nid or --all needed", out::RC_EINVAL);
    }
    simple(
        &mut c,
        PeerRequest::SetHealth {
            nid: if a.all { None } else { nid },
            value,
        },
        "set",
    )
}

/// Runs `discover [--force] NID...`: rc -1 when a target failed.
pub(crate) fn discover(a: &DiscoverArgs, socket: &Path) -> i32 {
    if a.nids.is_empty() {
        out::stdout("Missing nid argument\n");
        return -1;
    }
    let (mut c, extra) = match connect(socket, "manage", "discover") {
        Ok(x) => x,
        Err(rc) => return rc,
    };
    let nids = match nidlist::expand(&a.nids, &extra) {
        Ok(n) => n,
        Err(e) => return out::nl_error("manage", "discover", e.errno, &e.message, out::RC_EINVAL),
    };
    match c.peer(PeerRequest::Discover {
        nids,
        force: a.force,
    }) {
        Ok(PeerReply::Discover(outcomes)) => {
            let (text, failed) = render::discover(&outcomes, &extra);
            out::stdout(&text);
            if failed {
                -1
            } else {
                0
            }
        }
        Ok(_) => out::nl_error("manage", "discover", 71, "unexpected reply", out::RC_EINVAL),
        Err(e) => out::client_error(&e, "manage", "discover"),
    }
}

/// Runs `debug recovery --local|--peer`: neither option is rc -22, no output.
pub(crate) fn debug(cmd: &DebugCmd, socket: &Path) -> i32 {
    let a = match cmd {
        DebugCmd::Recovery(a) => a,
        DebugCmd::Nidlist(a) => return crate::cmd::util::nidlist(a, socket),
        DebugCmd::Peer(a) => return crate::cmd::util::debug_peer(a, socket),
    };
    if !a.local && !a.peer {
        return out::RC_EINVAL;
    }
    let (mut c, extra) = match connect(socket, "show", "recovery") {
        Ok(x) => x,
        Err(rc) => return rc,
    };
    match c.peer(PeerRequest::Recovery { local: a.local }) {
        Ok(PeerReply::Recovery(nids)) => {
            out::stdout(&lpeer::recovery(a.local, &nids, &extra));
            0
        }
        Ok(_) => out::nl_error("show", "recovery", 71, "unexpected reply", out::RC_EINVAL),
        Err(e) => out::client_error(&e, "show", "recovery"),
    }
}
