//! `lnetctl stats show` (lnetctl.md §2.10).

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
}

/// Runs `stats show`: failures in the classic block, cmd `show`, entity `statistics`.
pub(crate) fn run(cmd: &StatsCmd, socket: &Path) -> i32 {
    match cmd {
        StatsCmd::Show => match Client::connect(socket).and_then(|mut c| c.stats()) {
            Ok(s) => {
                out::stdout(&render::stats(&s));
                0
            }
            Err(e @ Error::Daemon { .. }) => {
                let errno = e.errno();
                out::stderr(&render::cy_error(
                    "show",
                    "statistics",
                    -errno,
                    &format!("\"cannot get lnet statistics: {}\"", strerror(errno)),
                ));
                -errno
            }
            Err(e) => out::client_error(&e, "show", "statistics"),
        },
    }
}
