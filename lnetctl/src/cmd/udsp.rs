//! `lnetctl udsp add|del|show` (lnetctl.md §2.16).

use std::path::Path;

use clap::{Args, Subcommand};
use liblnetconfig::args::ArgError;
use liblnetconfig::errno::strerror;
use liblnetconfig::{udsp, Client, Error};

use crate::out;

/// `udsp` sub-commands.
#[derive(Subcommand, Debug)]
pub(crate) enum UdspCmd {
    /// Add a rule.
    #[command(override_help = ADD_HELP)]
    Add(AddArgs),
    /// Delete a rule, or all.
    #[command(override_help = "udsp del: delete a User Defined Selection Policy\n\
\t--all: delete all policies\n\
\t--idx n: the index of the policy to delete\n")]
    Del(DelArgs),
    /// Show the rules.
    #[command(override_help = "udsp show: show User Defined Selection Policies\n\
\t--idx n: show the policy at this index\n")]
    Show(ShowArgs),
}

const ADD_HELP: &str = "udsp add: add a User Defined Selection Policy\n\
\t--src nid|net: source NID or network (local NIs)\n\
\t--dst nid: destination NID or network (peer NIs)\n\
\t--rte nid: router NID or network (gateways)\n\
\t--priority p: priority, 0 is the highest\n\
\t--idx n: insert the policy at this index (default: append)\n";

/// `udsp add` options.
#[derive(Args, Debug)]
pub(crate) struct AddArgs {
    #[arg(short, long)]
    src: Option<String>,
    #[arg(short, long)]
    dst: Option<String>,
    #[arg(short, long)]
    rte: Option<String>,
    #[arg(short, long, allow_negative_numbers = true)]
    priority: Option<String>,
    #[arg(short, long, allow_negative_numbers = true)]
    idx: Option<String>,
}

/// `udsp del` options.
#[derive(Args, Debug)]
pub(crate) struct DelArgs {
    #[arg(short, long)]
    all: bool,
    #[arg(short, long, allow_negative_numbers = true)]
    idx: Option<String>,
}

/// `udsp show` options.
#[derive(Args, Debug)]
pub(crate) struct ShowArgs {
    #[arg(short, long, allow_negative_numbers = true)]
    idx: Option<String>,
}

fn daemon_failure(e: &Error, what: &str) -> i32 {
    match e {
        Error::Daemon { errno, .. } => out::arg_error(ArgError::Classic {
            cmd: "add",
            entity: "udsp",
            errno: -errno,
            descr: format!("\"cannot {what} udsp: {}\"", strerror(*errno)),
            rc: -errno,
        }),
        other => out::client_error(other, "add", "udsp"),
    }
}

/// Runs a `udsp` sub-command.
pub(crate) fn run(cmd: &UdspCmd, socket: &Path) -> i32 {
    match cmd {
        UdspCmd::Add(a) => {
            let rule = match udsp::add_rule(
                a.src.as_deref(),
                a.dst.as_deref(),
                a.rte.as_deref(),
                a.priority.as_deref(),
            ) {
                Ok(Some(r)) => r,
                Ok(None) => {
                    out::stdout(ADD_HELP);
                    return 0;
                }
                Err(e) => return out::arg_error(e),
            };
            let idx = match a.idx.as_deref().map(|i| udsp::number(i, "index")) {
                Some(Err(e)) => return out::arg_error(e),
                Some(Ok(i)) => Some(i),
                None => None,
            };
            match Client::connect(socket).and_then(|mut c| c.udsp_add(rule, idx)) {
                Ok(()) => 0,
                Err(e) => daemon_failure(&e, "add"),
            }
        }
        UdspCmd::Del(a) => {
            let idx = match (a.all, a.idx.as_deref()) {
                (false, None) => {
                    return out::arg_error(ArgError::Plain("Must specify --idx or --all".into()))
                }
                (true, Some(_)) => {
                    return out::arg_error(ArgError::Plain(
                        "Cannot combine --all with --idx".into(),
                    ))
                }
                (true, None) => None,
                (false, Some(i)) => match udsp::number(i, "index") {
                    Ok(i) => Some(i),
                    Err(e) => return out::arg_error(e),
                },
            };
            match Client::connect(socket).and_then(|mut c| c.udsp_del(idx)) {
                Ok(()) => 0,
                Err(e) => daemon_failure(&e, "del"),
            }
        }
        UdspCmd::Show(a) => {
            let idx = match a.idx.as_deref().map(|i| udsp::number(i, "index")) {
                Some(Err(e)) => return out::arg_error(e),
                Some(Ok(i)) => Some(i),
                None => None,
            };
            match Client::connect(socket).and_then(|mut c| c.udsp_show(idx)) {
                Ok(rules) => {
                    out::stdout(&udsp::show(&rules));
                    0
                }
                Err(e) => daemon_failure(&e, "show"),
            }
        }
    }
}
