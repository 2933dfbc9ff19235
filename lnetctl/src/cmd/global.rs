//! `lnetctl global show` (lnetctl.md §2.9).

use std::path::Path;

use clap::{Args, Subcommand};
use liblnetconfig::{render, Client};

use crate::out;

/// `global` sub-commands.
#[derive(Subcommand, Debug)]
pub(crate) enum GlobalCmd {
    /// Show the global tunables.
    #[command(override_help = "global show: show global variables\n")]
    Show(ShowArgs),
}

/// Extra words are ignored (`global show -v` works), as upstream.
#[derive(Args, Debug)]
pub(crate) struct ShowArgs {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    _ignored: Vec<String>,
}

/// Runs `global show`.
pub(crate) fn run(cmd: &GlobalCmd, socket: &Path) -> i32 {
    match cmd {
        GlobalCmd::Show(_) => match Client::connect(socket).and_then(|mut c| c.global()) {
            Ok(g) => {
                out::stdout(&render::global(&g));
                0
            }
            Err(e) => out::client_error(&e, "show", "global"),
        },
    }
}
