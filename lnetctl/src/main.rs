//! # lnetctl: configure and inspect user-space LNet
//!
//! Same grammar as upstream (`lnetctl net add --net tcp1 --if eth0`). Each
//! command module ([`cmd`]) turns its arguments into a liblnetconfig request,
//! sends it over lnetd's control socket and prints the reply through the one
//! printer ([`out`], over liblnetconfig's YAML renderers). No LNet logic here.
//!
//! Depends on clap and liblnetconfig only; must never depend on lnet-core.

#![forbid(unsafe_code)]

mod cmd;
mod out;

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{CommandFactory, Parser, Subcommand};

use cmd::route::{RouteCmd, RoutingCmd};
use cmd::{lnet::LnetCmd, net::NetCmd, ping::PingArgs, plugin::PluginCmd, stats::StatsCmd};

/// The command line.
#[derive(Parser, Debug)]
#[command(
    name = "lnetctl",
    version,
    about = "configure and inspect LNet",
    infer_long_args = true,
    disable_help_subcommand = true
)]
struct Cli {
    /// lnetd's control socket.
    #[arg(long, global = true, env = liblnetconfig::SOCKET_ENV,
          default_value = liblnetconfig::DEFAULT_SOCKET)]
    socket: PathBuf,
    #[command(subcommand)]
    cmd: Cmd,
}

/// Top-level commands.
#[derive(Subcommand, Debug)]
#[allow(clippy::large_enum_variant)] // parsed once per process
enum Cmd {
    /// lnet configure|unconfigure.
    #[command(subcommand, infer_long_args = true)]
    Lnet(LnetCmd),
    /// net add|del|show.
    #[command(subcommand, infer_long_args = true)]
    Net(NetCmd),
    /// plugin load|unload|show.
    #[command(subcommand, infer_long_args = true)]
    Plugin(PluginCmd),
    /// ping NID...
    #[command(
        infer_long_args = true,
        override_help = "ping nid[,nid,...]\n\t --source: source nid\n\t --timeout: ping timeout\n\t --help: display this help\n"
    )]
    Ping(PingArgs),
    /// stats show.
    #[command(subcommand, infer_long_args = true)]
    Stats(StatsCmd),
    /// route add|del|show.
    #[command(subcommand, infer_long_args = true)]
    Route(RouteCmd),
    /// routing show.
    #[command(subcommand, infer_long_args = true)]
    Routing(RoutingCmd),
    /// set routing|tiny_buffers|small_buffers|large_buffers VALUE (the
    /// routing tunables; see cmd::route::run_set).
    Set {
        /// The tunable.
        name: String,
        /// Its value.
        #[arg(allow_negative_numbers = true)]
        value: String,
    },
}

/// Upstream quirk (lnetctl.md §1.2 point 6): `--verbose=N` means level 1.
fn preprocess(args: Vec<OsString>) -> Vec<OsString> {
    args.into_iter()
        .map(|a| match a.to_str() {
            Some(s) if s.starts_with("--verbose=") => OsString::from("--verbose"),
            _ => a,
        })
        .collect()
}

/// The help of the sub-command the words name (for unknown options).
fn subcommand_help(args: &[OsString]) -> String {
    let mut cur = Cli::command();
    let words: Vec<String> = args
        .iter()
        .skip(1)
        .filter_map(|a| a.to_str().map(str::to_string))
        .filter(|a| !a.starts_with('-'))
        .collect();
    for w in words.iter().take(2) {
        match cur.find_subcommand(w).cloned() {
            Some(s) => cur = s,
            None => break,
        }
    }
    // A group (`lnetctl net`) prints the help of each of its sub-commands.
    let subs: Vec<String> = cur
        .get_subcommands_mut()
        .map(|s| s.render_help().to_string())
        .collect();
    if subs.is_empty() || words.is_empty() {
        cur.render_help().to_string()
    } else {
        subs.concat()
    }
}

/// Maps clap's refusals onto upstream's behaviour (lnetctl.md §1.1–§1.3).
fn clap_failure(e: &clap::Error, args: &[OsString]) -> i32 {
    match e.kind() {
        ErrorKind::DisplayHelp => {
            out::stdout(&e.render().to_string());
            // `ping -h` returns 0; every other sub-command's -h returns 1.
            let is_ping = args.get(1).and_then(|a| a.to_str()) == Some("ping");
            i32::from(!is_ping)
        }
        ErrorKind::DisplayVersion => {
            out::stdout(&format!("lnetctl {}\n", env!("CARGO_PKG_VERSION")));
            0
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand | ErrorKind::MissingSubcommand => {
            out::stdout(&subcommand_help(args));
            out::RC_EINVAL
        }
        ErrorKind::InvalidSubcommand => {
            let word = match e.get(ContextKind::InvalidSubcommand) {
                Some(ContextValue::String(s)) => s.clone(),
                _ => String::new(),
            };
            out::stderr(&format!(
                "lnetctl: '{word}' is not a valid command. See 'lnetctl --list-commands'.\n"
            ));
            -1
        }
        ErrorKind::UnknownArgument => {
            // Upstream prints the sub-command's help and returns 0, except
            // `lnet configure`, which returns 0 silently.
            let words: Vec<&str> = args.iter().filter_map(|a| a.to_str()).collect();
            if !(words.contains(&"lnet") && words.contains(&"configure")) {
                out::stdout(&subcommand_help(args));
            }
            0
        }
        _ => {
            out::stderr(&e.render().to_string());
            out::RC_EINVAL
        }
    }
}

/// The generic commands handled before the command table (lnetctl.md §1.1),
/// then this lnetctl's commands in upstream's order.
const LIST: &[&str] = &[
    "quit",
    "exit",
    "help",
    "--help",
    "version",
    "--version",
    "list-commands",
    "--list-commands",
    "--ignore_errors",
    "ignore_errors",
    "lnet",
    "route",
    "net",
    "routing",
    "set",
    "stats",
    "ping",
    "plugin",
];

/// `--list-commands`: 4 columns of 19 characters and a space.
fn list_commands() -> String {
    let mut out = String::new();
    for (i, c) in LIST.iter().enumerate() {
        out.push_str(&format!("{c:<19} "));
        if i % 4 == 3 {
            out.push('\n');
        }
    }
    if LIST.len() % 4 != 0 {
        out.push('\n');
    }
    out
}

/// The generic commands; `None` for anything else.
fn generic(word: &str) -> Option<i32> {
    match word {
        "help" => {
            out::stdout(
                "usage: lnetctl [COMMAND] [OPTIONS]... [ARGS]\n\
                 Without any parameters, interactive mode is invoked\n\
                 Try 'lnetctl help <COMMAND>', or 'lnetctl --list-commands' for a list of commands.\n",
            );
            Some(0)
        }
        "version" | "--version" => {
            out::stdout(&format!("lnetctl {}\n", env!("CARGO_PKG_VERSION")));
            Some(0)
        }
        "list-commands" | "--list-commands" => {
            out::stdout(&list_commands());
            Some(0)
        }
        _ => None,
    }
}

/// `lnetctl` alone: one command per line from stdin (lnetctl.md §1.1), a
/// `> ` prompt on a terminal. Off a terminal, the first failing command
/// ends the run with its rc unless `ignore_errors` was given.
fn interactive() -> i32 {
    use std::io::{BufRead, IsTerminal};
    let stdin = std::io::stdin();
    let tty = stdin.is_terminal();
    let mut ignore_errors = false;
    let mut lines = stdin.lock().lines();
    loop {
        if tty {
            out::stdout("> ");
        }
        let Some(Ok(line)) = lines.next() else {
            return 0;
        };
        let words: Vec<&str> = line.split([' ', '\t']).filter(|w| !w.is_empty()).collect();
        match words.first().copied() {
            None => continue,
            Some("quit" | "exit") => return 0,
            Some("ignore_errors" | "--ignore_errors") => {
                ignore_errors = true;
                continue;
            }
            Some(_) => {}
        }
        let mut args = vec![OsString::from("lnetctl")];
        args.extend(words.iter().map(OsString::from));
        let rc = run(args);
        if rc != 0 && !tty && !ignore_errors {
            return rc;
        }
    }
}

fn run(args: Vec<OsString>) -> i32 {
    if args.len() == 1 {
        return interactive();
    }
    if let Some(rc) = args.get(1).and_then(|a| a.to_str()).and_then(generic) {
        return rc;
    }
    let args = preprocess(args);
    let cli = match Cli::try_parse_from(&args) {
        Ok(c) => c,
        Err(e) => return clap_failure(&e, &args),
    };
    let socket = cli.socket.as_path();
    match &cli.cmd {
        Cmd::Lnet(c) => cmd::lnet::run(c, socket),
        Cmd::Net(c) => cmd::net::run(c, socket),
        Cmd::Plugin(c) => cmd::plugin::run(c, socket),
        Cmd::Ping(a) => cmd::ping::run(a, socket),
        Cmd::Stats(c) => cmd::stats::run(c, socket),
        Cmd::Route(c) => cmd::route::run(c, socket),
        Cmd::Routing(c) => cmd::route::run_routing(c, socket),
        Cmd::Set { name, value } => cmd::route::run_set(name, value, socket).unwrap_or_else(|| {
            out::stderr(&format!("set: unknown tunable {name:?}\n"));
            out::RC_EINVAL
        }),
    }
}

fn main() -> ExitCode {
    let rc = run(std::env::args_os().collect());
    // The process exit status is rc & 0xff (-22 → 234, -1 → 255).
    ExitCode::from((rc & 0xff) as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(words: &[&str]) -> Result<Cli, clap::Error> {
        let mut v = vec!["lnetctl"];
        v.extend_from_slice(words);
        Cli::try_parse_from(preprocess(v.iter().map(OsString::from).collect()))
    }

    fn show_level(words: &[&str]) -> (u32, Option<String>) {
        match parse(words).expect("parses").cmd {
            Cmd::Net(NetCmd::Show(s)) => (
                s.level(),
                format!("{s:?}").contains("net: Some").then(|| "net".into()),
            ),
            other => panic!("not net show: {other:?}"),
        }
    }

    #[test]
    fn verbose_levels() {
        assert_eq!(show_level(&["net", "show"]).0, 0);
        assert_eq!(show_level(&["net", "show", "-v"]).0, 1);
        assert_eq!(show_level(&["net", "show", "-v", "2"]).0, 2);
        assert_eq!(show_level(&["net", "show", "--verbose", "4"]).0, 4);
        assert_eq!(
            show_level(&["net", "show", "--verbose=3"]).0,
            1,
            "attached value ignored"
        );
        // A non-integer word after -v is consumed: level 1, no filter.
        assert_eq!(show_level(&["net", "show", "-v", "tcp"]), (1, None));
        // A word starting with '-' is not consumed.
        let (lvl, net) = show_level(&["net", "show", "-v", "--net", "tcp"]);
        assert_eq!((lvl, net.as_deref()), (1, Some("net")));
    }

    #[test]
    fn getopt_like_parsing() {
        // Unique prefixes of long options.
        let c = parse(&[
            "net", "add", "--ne", "tcp", "--if", "eth0", "--peer-t", "-1",
        ])
        .expect("prefixes");
        let Cmd::Net(NetCmd::Add(a)) = c.cmd else {
            panic!("net add")
        };
        let d = format!("{a:?}");
        assert!(
            d.contains("net: Some(\"tcp\")") && d.contains("peer_timeout: Some(\"-1\")"),
            "{d}"
        );
        // --opt=value, short clusters, negative values.
        let c = parse(&[
            "net",
            "add",
            "-ntcp1",
            "--if=eth0,eth1",
            "--tos",
            "-1",
            "--conns-per-peer=-1",
        ])
        .expect("forms");
        let Cmd::Net(NetCmd::Add(a)) = c.cmd else {
            panic!("net add")
        };
        let d = format!("{a:?}");
        assert!(
            d.contains("\"tcp1\"")
                && d.contains("\"eth0,eth1\"")
                && d.contains("tos: Some(\"-1\")"),
            "{d}"
        );
        // Options and positionals interleaved.
        let c = parse(&["ping", "10.0.0.1@tcp", "--timeout", "5", "0@lo"]).expect("permutation");
        let Cmd::Ping(p) = c.cmd else { panic!("ping") };
        let d = format!("{p:?}");
        assert!(
            d.contains("\"10.0.0.1@tcp\", \"0@lo\"") && d.contains("Some(\"5\")"),
            "{d}"
        );
        // Global --socket anywhere, and the environment.
        let c = parse(&["net", "show", "--socket", "/tmp/s"]).expect("socket");
        assert_eq!(c.socket, PathBuf::from("/tmp/s"));
    }

    fn rc_of(words: &[&str]) -> i32 {
        let mut v = vec!["lnetctl"];
        v.extend_from_slice(words);
        let args = preprocess(v.iter().map(OsString::from).collect());
        match Cli::try_parse_from(&args) {
            Ok(_) => i32::MIN,
            Err(e) => clap_failure(&e, &args),
        }
    }

    #[test]
    fn exit_statuses() {
        assert_eq!(rc_of(&["bogus"]), -1, "unknown command");
        assert_eq!(rc_of(&["net"]), -22, "group without sub-command");
        assert_eq!(rc_of(&["net", "add", "-h"]), 1, "-h");
        assert_eq!(rc_of(&["ping", "-h"]), 0, "ping -h");
        assert_eq!(rc_of(&["net", "show", "--bogus"]), 0, "unknown option");
        assert_eq!(rc_of(&["lnet", "configure", "--bogus"]), 0);
        assert_eq!((-22i32 & 0xff) as u8, 234);
    }

    #[test]
    fn help_tokens_are_upstreams() {
        let mut c = Cli::command();
        let add = c
            .find_subcommand_mut("net")
            .and_then(|n| n.find_subcommand_mut("add"))
            .expect("net add")
            .render_help()
            .to_string();
        for tok in [
            "--net:",
            "--if:",
            "--peer-timeout:",
            "--peer-credits:",
            "--peer-buffer-credits:",
            "--credits:",
            "--conns-per-peer:",
            "--tos:",
        ] {
            assert!(add.contains(&format!("\t{tok}")), "{tok} missing in {add}");
        }
    }

    #[test]
    fn list_commands_columns() {
        let l = list_commands();
        let first = l.lines().next().expect("a line");
        assert_eq!(first.len(), 80);
        assert!(first.starts_with("quit                exit                help"));
        assert!(l.ends_with("plugin              \n"));
        assert_eq!(generic("version"), Some(0));
        assert_eq!(generic("net"), None);
    }

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }
}
