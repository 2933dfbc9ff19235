//! `lnetctl ping [--source NID] [--timeout S] NID...` (lnetctl.md §2.12).

use std::path::Path;

use clap::Args;
use liblnetconfig::{args, render, Client};

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
    // The daemon names the network types its plugins add (`1@vnd`); the
    // arguments are checked even when nobody answers.
    let mut client = Client::connect(socket);
    let extra = match client.as_mut() {
        Ok(c) => match c.net_types() {
            Ok(t) => t,
            Err(e) => return out::client_error(&e, "manage", "ping"),
        },
        Err(_) => Vec::new(),
    };
    let req = match args::ping(&a.nids, a.source.as_deref(), a.timeout.as_deref(), &extra) {
        Ok(r) => r,
        Err(e) => return out::arg_error(e),
    };
    let mut c = match client {
        Ok(c) => c,
        Err(e) => return out::client_error(&e, "manage", "ping"),
    };
    match c.ping(req) {
        Ok(outcomes) => {
            let (text, failed) = render::ping(&outcomes, &extra);
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
