//! `lnetctl stats show|reset` (lnetctl.md §2.10).

use std::path::Path;

use clap::Subcommand;
use liblnetconfig::errno::strerror;
use liblnetconfig::{render, Client, Error};

use crate::out;

/// `stats` sub-commands.
#[derive(Subcommand, Debug)]
pub(crate) enum StatsCmd {
    /// Show LNet's global counters.
    #[command(override_help = "stats show: show LNET statistics\n")]
    Show,
    /// Zero every counter.
    #[command(override_help = "stats reset: reset LNET statistics\n")]
    Reset,
}

fn failed(e: Error, what: &str) -> i32 {
    match e {
        e @ Error::Daemon { .. } => {
            let errno = e.errno();
            out::stderr(&render::cy_error(
                "show",
                "statistics",
                -errno,
                &format!("\"cannot {what} lnet statistics: {}\"", strerror(errno)),
            ));
            -errno
        }
        e => out::client_error(&e, "show", "statistics"),
    }
}

/// Runs `stats show`: failures in the classic block, cmd `show`, entity `statistics`.
pub(crate) fn run(cmd: &StatsCmd, socket: &Path) -> i32 {
    match cmd {
        StatsCmd::Show => match Client::connect(socket).and_then(|mut c| c.stats()) {
            Ok(s) => {
                out::stdout(&render::stats(&s));
                0
            }
            Err(e) => failed(e, "get"),
        },
        StatsCmd::Reset => match Client::connect(socket).and_then(|mut c| c.stats_reset()) {
            Ok(()) => 0,
            Err(e) => failed(e, "reset"),
        },
    }
}
