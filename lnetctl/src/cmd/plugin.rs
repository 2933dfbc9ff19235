//! `lnetctl plugin load|unload|show` (lnetctl.md §2.20, ours).

use std::path::Path;

use clap::{Args, Subcommand};
use liblnetconfig::render;

use crate::out;

/// `plugin` sub-commands.
#[derive(Subcommand, Debug)]
pub(crate) enum PluginCmd {
    /// Load an LND plugin into lnetd.
    #[command(override_help = "plugin load: load an LND plugin into lnetd\n\
\tPATH|NAME: the plugin's .so, or a bare name looked up in lnetd's plugin path\n")]
    Load(LoadArgs),
    /// Deactivate a plugin that no NI uses; its code stays mapped.
    #[command(
        override_help = "plugin unload: deactivate an LND plugin no NI uses (its code stays mapped)\n\
\tNAME: the plugin's name (see plugin show)\n\
\t--force: first delete the nets that use it\n"
    )]
    Unload(UnloadArgs),
    /// Show the plugins.
    #[command(override_help = "plugin show: show LND plugins\n\
\t--name: only this plugin\n\
\t--verbose: also show versions and the NIs using each plugin\n")]
    Show(ShowArgs),
}

/// `plugin load` arguments.
#[derive(Args, Debug)]
pub(crate) struct LoadArgs {
    /// Path to the plugin's `.so`, or a bare name.
    path: String,
}

/// `plugin unload` arguments.
#[derive(Args, Debug)]
pub(crate) struct UnloadArgs {
    /// The plugin's name.
    name: String,
    /// First delete the nets that use it.
    #[arg(short = 'f', long)]
    force: bool,
}

/// `plugin show` options.
#[derive(Args, Debug)]
pub(crate) struct ShowArgs {
    #[arg(short = 'n', long)]
    name: Option<String>,
    #[arg(short = 'v', long)]
    verbose: bool,
}

/// A path as lnetd must see it: absolute (lnetd runs elsewhere); a bare name
/// that is not a file here is sent as is, for lnetd's plugin path.
fn plugin_arg(arg: &str) -> String {
    let p = Path::new(arg);
    if arg.contains('/') || p.is_file() {
        std::path::absolute(p).map_or_else(|_| arg.to_string(), |a| a.display().to_string())
    } else {
        arg.to_string()
    }
}

/// Runs a `plugin` sub-command.
pub(crate) fn run(cmd: &PluginCmd, socket: &Path) -> i32 {
    let (flag, what) = match cmd {
        PluginCmd::Load(_) => ("add", "plugin"),
        PluginCmd::Unload(_) => ("del", "plugin"),
        PluginCmd::Show(_) => ("show", "plugin"),
    };
    let mut c = match super::connect(socket, flag, what) {
        Ok(c) => c,
        Err(rc) => return rc,
    };
    match cmd {
        PluginCmd::Load(a) => match c.plugin_load(plugin_arg(&a.path)) {
            Ok(_) => 0,
            Err(e) => out::client_error(&e, flag, what),
        },
        PluginCmd::Unload(a) => match c.plugin_unload(a.name.clone(), a.force) {
            Ok(p) => {
                out::stdout(&format!(
                    "plugin {} unloaded: no new NI can use it; its code stays mapped in lnetd \
                     until lnetd exits (to upgrade, load the new build from a new path)\n",
                    p.name
                ));
                0
            }
            Err(e) => out::client_error(&e, flag, what),
        },
        PluginCmd::Show(a) => match c.plugin_show().and_then(|l| Ok((l, c.net_types()?))) {
            Ok((list, extra)) => {
                match render::plugin_show_named(&list, a.name.as_deref(), a.verbose, &extra) {
                    Ok(text) => {
                        out::stdout(&text);
                        0
                    }
                    Err((errno, descr)) => out::nl_error(flag, what, errno, &descr, out::RC_EINVAL),
                }
            }
            Err(e) => out::client_error(&e, flag, what),
        },
    }
}
