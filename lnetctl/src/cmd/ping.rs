//! `lnetctl ping [--source NID] [--timeout S] NID...` (lnetctl.md §2.12).

use std::path::Path;

use clap::Args;
use liblnetconfig::{args, render};

use crate::out;

/// `ping` arguments.
#[derive(Args, Debug)]
pub(crate) struct PingArgs {
    /// NIDs or NID ranges (`10.0.0.[1-4]@tcp`), possibly comma-separated.
    #[arg(required = true)]
    nids: Vec<String>,
    /// Force the local NI used.
    #[arg(short = 's', long)]
    source: Option<String>,
    /// Seconds to wait for each reply.
    #[arg(short = 't', long, allow_negative_numbers = true)]
    timeout: Option<String>,
}

/// Runs `ping`; rc -1 when any target failed.
pub(crate) fn run(a: &PingArgs, socket: &Path) -> i32 {
    let req = match args::ping(&a.nids, a.source.as_deref(), a.timeout.as_deref()) {
        Ok(r) => r,
        Err(e) => return out::arg_error(e),
    };
    let mut c = match super::connect(socket, "manage", "ping") {
        Ok(c) => c,
        Err(rc) => return rc,
    };
    match c.ping(req) {
        Ok(outcomes) => {
            let (text, failed) = render::ping(&outcomes);
            out::stdout(&text);
            if failed {
                -1
            } else {
                0
            }
        }
        Err(e) => out::client_error(&e, "manage", "ping"),
    }
}
