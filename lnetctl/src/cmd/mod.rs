//! One module per object, each a clap `Args`/`Subcommand` plus `run()`:
//! build the request with liblnetconfig, send it, print the reply.

pub(crate) mod export;
pub(crate) mod fault;
pub(crate) mod global;
pub(crate) mod import;
pub(crate) mod lnet;
pub(crate) mod net;
pub(crate) mod peer;
pub(crate) mod ping;
pub(crate) mod plugin;
pub(crate) mod route;
pub(crate) mod set;
pub(crate) mod stats;
pub(crate) mod udsp;
pub(crate) mod util;

use std::path::Path;

use liblnetconfig::Client;

/// Connects, or prints why not (flag/object name the NL block) and returns the rc.
pub(crate) fn connect(socket: &Path, flag: &str, object: &str) -> Result<Client, i32> {
    Client::connect(socket).map_err(|e| crate::out::client_error(&e, flag, object))
}
