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

use cmd::export::ExportArgs;
use cmd::global::GlobalCmd;
use cmd::import::ImportArgs;
use cmd::lnet::LnetCmd;
use cmd::net::NetCmd;
use cmd::ping::PingArgs;
use cmd::plugin::PluginCmd;
use cmd::route::{RouteCmd, RoutingCmd};
use cmd::set::SetCmd;
use cmd::stats::StatsCmd;
use cmd::udsp::UdspCmd;

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
    /// stats show|reset.
    #[command(subcommand, infer_long_args = true)]
    Stats(StatsCmd),
    /// set <tunable> <value>.
    #[command(subcommand, infer_long_args = true)]
    Set(SetCmd),
    /// global show.
    #[command(subcommand, infer_long_args = true)]
    Global(GlobalCmd),
    /// export [--backup] [FILE].
    #[command(infer_long_args = true, override_help = cmd::export::HELP)]
    Export(ExportArgs),
    /// import [--add|--del|--show|--exec] [FILE].
    #[command(infer_long_args = true, override_help = cmd::import::HELP)]
    Import(ImportArgs),
    /// udsp add|del|show.
    #[command(subcommand, infer_long_args = true)]
    Udsp(UdspCmd),
    /// fault drop|delay add|del|show|reset (words parsed as upstream does).
    #[command(disable_help_flag = true)]
    Fault(cmd::fault::FaultWords),
    /// peer add|del|show|list|set.
    #[command(subcommand, infer_long_args = true)]
    Peer(cmd::peer::PeerCmd),
    /// discover [--force] NID...
    #[command(
        infer_long_args = true,
        override_help = "discover nid[,nid,...]\n\t --force: force discovery\n\t --help: display this help\n"
    )]
    Discover(cmd::peer::DiscoverArgs),
    /// debug recovery.
    #[command(subcommand, infer_long_args = true)]
    Debug(cmd::peer::DebugCmd),
    /// route add|del|show.
    #[command(subcommand, infer_long_args = true)]
    Route(RouteCmd),
    /// routing show.
    #[command(subcommand, infer_long_args = true)]
    Routing(RoutingCmd),
    /// service-id: the InfiniBand service id of o2iblnd's service port.
    #[command(
        name = "service-id",
        override_help = "service-id: Calculate IB Lustre service ID\n"
    )]
    ServiceId(cmd::util::ServiceIdArgs),
    /// cpt-of-nid NID...: the CPU partition of each NID.
    #[command(name = "cpt-of-nid", override_help = cmd::util::CPT_OF_NID_HELP)]
    CptOfNid(cmd::util::CptOfNidArgs),
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
    let words: Vec<String> = command_args(args)
        .into_iter()
        .filter(|a| !a.starts_with('-'))
        .map(str::to_string)
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

/// The words after the program name without the global `--socket PATH`.
fn command_args(args: &[OsString]) -> Vec<&str> {
    let mut out = Vec::new();
    let mut skip = false;
    for a in args.iter().skip(1).filter_map(|a| a.to_str()) {
        if skip {
            skip = false;
        } else if a == "--socket" {
            skip = true;
        } else if !a.starts_with("--socket=") {
            out.push(a);
        }
    }
    out
}

/// Whether the command words (options skipped) start with `path`.
fn words_are(args: &[OsString], path: &[&str]) -> bool {
    let words: Vec<&str> = command_args(args)
        .into_iter()
        .filter(|a| !a.starts_with('-'))
        .collect();
    words.len() >= path.len() && words[..path.len()] == *path
}

/// Maps clap's refusals onto upstream's behaviour (lnetctl.md §1.1–§1.3).
fn clap_failure(e: &clap::Error, args: &[OsString]) -> i32 {
    match e.kind() {
        ErrorKind::DisplayHelp => {
            out::stdout(&subcommand_help(args));
            // `ping -h` (and discover, import, export) returns 0; every
            // other sub-command's -h returns 1.
            let word = command_args(args).first().copied().unwrap_or_default();
            i32::from(!matches!(word, "ping" | "discover" | "import" | "export"))
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
        ErrorKind::MissingRequiredArgument if words_are(args, &["set"]) => {
            // `set <tunable>` without its value: the help, rc -22; upstream
            // looks up the wrong help for max_recovery_ping_interval (§7.13).
            let is_mrpi = args.iter().any(|a| a == "max_recovery_ping_interval");
            if !is_mrpi {
                out::stdout(&subcommand_help(args));
            }
            out::RC_EINVAL
        }
        ErrorKind::UnknownArgument | ErrorKind::InvalidValue | ErrorKind::NoEquals
            if words_are(args, &["net", "set"]) =>
        {
            out::stderr(&liblnetconfig::render::cy_error(
                "net",
                "set",
                -22,
                "\"Invalid option or missing argument\"",
            ));
            out::RC_EINVAL
        }
        ErrorKind::UnknownArgument => {
            // Upstream prints the sub-command's help and returns 0, except
            // `lnet configure`, which returns 0 silently.
            if !words_are(args, &["lnet", "configure"]) {
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

/// The generic commands handled before the command table (lnetctl.md §1.1).
const GENERIC: &[&str] = &[
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
];

/// Upstream's command table order (then ours); `--list-commands` prints the
/// ones this build registers.
const ORDER: &[&str] = &[
    "lnet",
    "route",
    "net",
    "routing",
    "set",
    "import",
    "export",
    "stats",
    "debug",
    "global",
    "peer",
    "ping",
    "discover",
    "service-id",
    "udsp",
    "fault",
    "setup-mrrouting",
    "setup-sysctl",
    "cpt-of-nid",
    "plugin",
];

/// The names `--list-commands` prints: the generic ones, then every
/// registered command in upstream's order (unknown ones last, by name).
fn command_names() -> Vec<String> {
    let cli = Cli::command();
    let mut registered: Vec<String> = cli
        .get_subcommands()
        .map(|c| c.get_name().to_string())
        .collect();
    registered.sort_by_key(|n| {
        (
            ORDER.iter().position(|o| o == n).unwrap_or(usize::MAX),
            n.clone(),
        )
    });
    GENERIC
        .iter()
        .map(|s| (*s).to_string())
        .chain(registered)
        .collect()
}

/// `--list-commands`: 4 columns of 19 characters and a space.
fn list_commands() -> String {
    liblnetconfig::term::columns(&command_names())
}

/// `help COMMAND`: `<command>: <command> {sub | sub...}` on stderr.
fn command_help(name: &str) -> Option<String> {
    let cli = Cli::command();
    let c = cli.find_subcommand(name)?;
    let subs: Vec<&str> = c.get_subcommands().map(|s| s.get_name()).collect();
    Some(if subs.is_empty() {
        format!("{name}: {name}\n")
    } else {
        format!("{name}: {name} {{{} | help}}\n", subs.join(" | "))
    })
}

/// The generic commands (`word`, then the words after it); `None` for
/// anything else.
fn generic(word: &str, rest: &[&str]) -> Option<i32> {
    match word {
        "help" | "--help" => {
            if let Some(name) = rest.first() {
                return Some(match command_help(name) {
                    Some(h) => {
                        out::stderr(&h);
                        0
                    }
                    None => {
                        out::stderr(&format!(
                            "lnetctl: '{name}' is not a valid command. See 'lnetctl --list-commands'.\n"
                        ));
                        -1
                    }
                });
            }
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
        "quit" | "exit" | "ignore_errors" | "--ignore_errors" => Some(0),
        _ => None,
    }
}

/// Line mode only: a command word (and a sub-command word) may be any unique
/// case-insensitive prefix (lnetctl.md §1.1).
fn expand_words(words: &[&str]) -> Vec<String> {
    fn pick(cmd: &clap::Command, w: &str) -> Option<String> {
        let lw = w.to_ascii_lowercase();
        let names: Vec<&str> = cmd
            .get_subcommands()
            .map(clap::Command::get_name)
            .filter(|n| n.to_ascii_lowercase().starts_with(&lw))
            .collect();
        match names.as_slice() {
            [one] => Some((*one).to_string()),
            many => many
                .iter()
                .find(|n| n.eq_ignore_ascii_case(w))
                .map(|n| (*n).to_string()),
        }
    }
    let cli = Cli::command();
    let mut out: Vec<String> = words.iter().map(|w| (*w).to_string()).collect();
    if let Some(first) = words.first().filter(|w| !w.starts_with('-')) {
        if let Some(top) = pick(&cli, first) {
            out[0] = top.clone();
            if let (Some(second), Some(sub)) = (words.get(1), cli.find_subcommand(&top)) {
                if !second.starts_with('-') {
                    if let Some(s) = pick(sub, second) {
                        out[1] = s;
                    }
                }
            }
        }
    }
    out
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
        args.extend(expand_words(&words).iter().map(OsString::from));
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
    let words = command_args(&args);
    if let Some(rc) = words.first().and_then(|w| generic(w, &words[1..])) {
        return rc;
    }
    // At the sub-command level the generic table is searched first
    // (`lnetctl net help` is the generic help), except -h/--help.
    if let Some(w) = words.get(1).filter(|w| !w.starts_with('-')) {
        if Cli::command().find_subcommand(words[0]).is_some() {
            if let Some(rc) = generic(w, &[]) {
                return rc;
            }
        }
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
        Cmd::Set(c) => cmd::set::run(c, socket),
        Cmd::Global(c) => cmd::global::run(c, socket),
        Cmd::Export(a) => cmd::export::run(a, socket),
        Cmd::Import(a) => cmd::import::run(a, socket),
        Cmd::Udsp(c) => cmd::udsp::run(c, socket),
        Cmd::Fault(a) => cmd::fault::run(a, socket),
        Cmd::Peer(c) => cmd::peer::run(c, socket),
        Cmd::Discover(a) => cmd::peer::discover(a, socket),
        Cmd::Debug(c) => cmd::peer::debug(c, socket),
        Cmd::Route(c) => cmd::route::run(c, socket),
        Cmd::Routing(c) => cmd::route::run_routing(c, socket),
        Cmd::ServiceId(_) => cmd::util::run_service_id(socket),
        Cmd::CptOfNid(a) => cmd::util::cpt_of_nid(a, socket),
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
        assert!(l.ends_with("plugin              \n"), "{l}");
        assert_eq!(generic("version", &[]), Some(0));
        assert_eq!(generic("net", &[]), None);
        assert_eq!(generic("help", &["net"]), Some(0));
        assert_eq!(generic("help", &["bogus"]), Some(-1));
        assert!(
            l.contains(
                "ignore_errors       lnet                route               \n\
                 net                 routing             set"
            ),
            "upstream order: {l}"
        );
    }

    #[test]
    fn line_mode_abbreviations() {
        assert_eq!(expand_words(&["NE", "sh", "-v"]), ["net", "show", "-v"]);
        assert_eq!(expand_words(&["glo", "s"]), ["global", "show"]);
        // `s` is ambiguous at the top (set, stats): left as is.
        assert_eq!(expand_words(&["s", "x"]), ["s", "x"]);
        assert_eq!(expand_words(&["net", "--net"]), ["net", "--net"]);
    }

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }
}
