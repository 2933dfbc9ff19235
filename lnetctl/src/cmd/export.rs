//! `lnetctl export [--backup] [FILE]` (lnetctl.md §2.14, §4.1).

use std::path::Path;

use clap::Args;
use liblnetconfig::peer::{self as lpeer, PeerReply, PeerRequest};
use liblnetconfig::render::{self, Export};
use liblnetconfig::yaml::{self, Yaml};

use crate::out;

/// `export` options.
#[derive(Args, Debug)]
pub(crate) struct ExportArgs {
    /// Only what re-creates the configuration (no state, no statistics).
    #[arg(short, long)]
    backup: bool,
    /// Write here instead of stdout (created or truncated).
    file: Option<String>,
}

/// `export -h` (rc 0).
pub(crate) const HELP: &str = "export > FILE.yaml : export configuration\n\
\t--backup: export only what's necessary for reconfig\n\
\t--help: display this help\n";

/// Collects every section the daemon has; `None` (error printed) when the
/// daemon cannot be asked.
pub(crate) fn collect(socket: &Path, backup: bool) -> Result<Export, i32> {
    let mut c = super::connect(socket, "show", "export")?;
    let global = c
        .global()
        .map_err(|e| out::client_error(&e, "show", "export"))?;
    // Not configured: no nets to export, only the global block.
    let nets = c.net_show(None).unwrap_or_default();
    let extra = c.net_types().unwrap_or_default();
    let net = if backup {
        render::net_backup(&nets)
    } else if nets.is_empty() {
        String::new()
    } else {
        render::net_show(&nets, 2, &extra)
    };
    let udsp = liblnetconfig::udsp::tree(&c.udsp_show(None).unwrap_or_default());
    // Routes: full export with state and type, backup without (§3.4).
    let routes = c.route_show().unwrap_or_default();
    let route = liblnetconfig::route::route_export_text(&routes, backup, &extra);
    // Peers: level 3 (peer state, credits, statistics) or the backup form.
    let peers = match c.peer(PeerRequest::Show { nid: None }) {
        Ok(PeerReply::Peers(p)) => p,
        _ => Vec::new(),
    };
    let peer = if peers.is_empty() {
        String::new()
    } else if backup {
        yaml::nl(
            &Yaml::pairs([("peer", lpeer::backup_section(&peers, &extra))]),
            6,
        )
    } else {
        lpeer::show(&peers, 3, &extra)
    };
    // Router buffer pools, only once routing was ever enabled.
    let routing =
        liblnetconfig::route::routing_tree(c.routing_show().ok().flatten().as_ref(), backup);
    Ok(Export {
        net,
        route,
        peer,
        routing,
        global,
        udsp,
    })
}

/// Runs `export`.
pub(crate) fn run(a: &ExportArgs, socket: &Path) -> i32 {
    let e = match collect(socket, a.backup) {
        Ok(e) => e,
        Err(rc) => return rc,
    };
    let text = render::export(&e);
    match &a.file {
        None => {
            out::stdout(&text);
            0
        }
        Some(f) => match std::fs::write(f, text) {
            Ok(()) => 0,
            Err(err) => {
                out::stderr(&format!("lnetctl export: cannot write '{f}': {err}\n"));
                -1
            }
        },
    }
}
