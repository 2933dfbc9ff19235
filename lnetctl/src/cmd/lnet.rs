//! `lnetctl lnet configure|unconfigure` (lnetctl.md §2.1).

use std::path::Path;

use clap::{Args, Subcommand};
use liblnetconfig::{daemon, Client, Error};

use crate::out;

/// `lnet` sub-commands.
#[derive(Subcommand, Debug)]
pub(crate) enum LnetCmd {
    /// Bring LNet up (starts lnetd for the socket when none runs).
    #[command(
        override_help = "lnet configure: configure lnet\n\t--all: load NI configuration from module parameters\n\t--large: start LNet with large NIDs\n"
    )]
    Configure(ConfigureArgs),
    /// Shut LNet down (every NI); lnetd stays for the next `lnet configure`.
    #[command(override_help = "lnet unconfigure: unconfigure lnet\n")]
    Unconfigure,
}

/// `lnet configure` options.
#[derive(Args, Debug)]
pub(crate) struct ConfigureArgs {
    /// Also bring up the start-up networks (`networks=`, `ip2nets=`, `routes=`).
    #[arg(short, long)]
    all: bool,
    /// Large (IPv6-capable) NIDs; this LNet always handles them, so it is accepted as is.
    #[arg(short, long)]
    large: bool,
}

fn configure_error(e: &Error) -> i32 {
    match e {
        Error::Daemon { errno, message } => out::nl_error(
            "configure",
            "lnet",
            *errno,
            &format!("LNet configure error: {message}"),
            -errno,
        ),
        other => out::nl_error(
            "configure",
            "lnet",
            other.errno(),
            &format!("LNet configure error: {other}"),
            -other.errno(),
        ),
    }
}

/// Runs `lnet configure` / `lnet unconfigure`.
pub(crate) fn run(cmd: &LnetCmd, socket: &Path) -> i32 {
    match cmd {
        LnetCmd::Configure(a) => {
            let _ = a.large;
            let client = match Client::connect(socket) {
                Ok(c) => Ok(c),
                Err(Error::NotRunning { .. }) => {
                    daemon::start(socket).and_then(|()| Client::connect(socket))
                }
                Err(e) => Err(e),
            };
            match client.and_then(|mut c| c.configure(a.all)) {
                Ok(()) => 0,
                Err(e) => configure_error(&e),
            }
        }
        LnetCmd::Unconfigure => match Client::connect(socket) {
            // Nothing runs: LNet is not configured, which is what was asked.
            Err(Error::NotRunning { .. }) => 0,
            Err(e) => configure_error(&e),
            Ok(mut c) => match c.unconfigure() {
                Ok(()) => 0,
                Err(e) => configure_error(&e),
            },
        },
    }
}
