//! # lctl: upstream's `lctl` LNet commands against user-space LNet
//!
//! The LNet part of Lustre's control tool, as LNet test scripts use it:
//! fault injection (`net_drop_add`… and the two-word `net_drop add`…),
//! `list_nids`, `which_nid`, `ping`, `network up|down`, and the module
//! parameters (`get_param`, `set_param`, `list_param`; [`param`]). Every
//! command goes through lnetd's control socket (`--socket` /
//! `$LNET_SOCKET`, like lnetctl and lst); options are read by the same
//! liblnetconfig parsers as lnetctl's, so both tools reach the same state.
//! The process exit status is upstream's: `-rc` for a negative rc.
//!
//! Depends on liblnetconfig only; must never depend on lnet-core.

#![forbid(unsafe_code)]

mod fault;
mod param;
mod util;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use liblnetconfig::lctl::{command_help, COMMANDS};

pub(crate) use liblnetconfig::term::{stderr, stdout};

/// Upstream lctl commands that have no LNet meaning here, or whose job
/// lnetctl does: what to run instead.
const ELSEWHERE: &[(&str, &str)] = &[
    ("route_list", "lnetctl route show"),
    ("show_route", "lnetctl route show"),
    ("add_route", "lnetctl route add --net NET --gateway NID"),
    ("del_route", "lnetctl route del --net NET --gateway NID"),
    (
        "set_route",
        "lnetctl route show -v (router health is tracked by LNet)",
    ),
    ("peer_list", "lnetctl peer show"),
    ("add_peer", "lnetctl peer add --prim_nid NID"),
    ("del_peer", "lnetctl peer del --prim_nid NID"),
    ("conn_list", "lnetctl net show -v"),
    ("interface_list", "lnetctl net show -v"),
    ("add_interface", "lnetctl net add --net NET --if IFACE"),
    ("del_interface", "lnetctl net del --net NET --if IFACE"),
    ("disconnect", "lnetctl net del / net add"),
    ("push", "lnetctl discover NID"),
    ("mynid", "lnetctl net add --net NET --nid NID"),
    (
        "fail",
        "lctl net_drop_add -s NID -d NID -r 1 (or lnetctl fault drop add)",
    ),
    (
        "replace_nids",
        "lnetctl peer commands (no Lustre devices here)",
    ),
    ("debug_kernel", "lnetd's log (RUST_LOG / --log-level)"),
    ("dk", "lnetd's log (RUST_LOG / --log-level)"),
    ("lustre_build_version", "lnetctl --version"),
];

/// Runs one command (`words[0]` and its arguments); returns its rc.
fn run_words(words: &[String], socket: &Path, state: &mut State) -> i32 {
    let Some(cmd) = words.first() else {
        return 0;
    };
    let args = &words[1..];
    match cmd.as_str() {
        "help" | "--help" => help(args),
        "version" | "--version" => {
            stdout(&format!("lctl {}\n", env!("CARGO_PKG_VERSION")));
            0
        }
        "list-commands" | "--list-commands" => {
            stdout(&list_commands());
            0
        }
        "quit" | "exit" => {
            state.done = true;
            0
        }
        "ignore_errors" | "--ignore_errors" => {
            state.ignore_errors = true;
            0
        }
        "net_drop" | "net_delay" => match args.first().map(String::as_str) {
            Some(sub @ ("add" | "del" | "list" | "reset")) => {
                let full = format!("{cmd}_{sub}");
                fault::run(&full, &args[1..], socket)
            }
            _ => {
                stderr(&format!(
                    "'{cmd}' incomplete command.  Use '{cmd} x' where x is one of:\n\tadd del reset list \n"
                ));
                -1
            }
        },
        c if c.starts_with("net_drop_") || c.starts_with("net_delay_") => {
            if command_help(c).is_some() {
                fault::run(c, args, socket)
            } else {
                not_a_command(c)
            }
        }
        // `--net NET COMMAND...`: the net is checked, then the command runs
        // (none of the commands here is per-net).
        "--net" => {
            if args.len() < 2 {
                stdout(&format!("{}\n", command_help("--net").unwrap_or_default()));
                return util::CMD_HELP;
            }
            match util::network("network", &args[..1], socket) {
                0 => run_words(&args[1..], socket, state),
                rc => rc,
            }
        }
        "network" | "net" => util::network(cmd, args, socket),
        "list_nids" => util::list_nids(cmd, args, socket),
        "which_nid" => util::which_nid(cmd, args, socket),
        "ping" => util::ping(cmd, args, socket),
        "get_param" => param::get(args, socket),
        "set_param" => param::set(args, socket),
        "list_param" => param::list(args, socket),
        c => match ELSEWHERE.iter().find(|(n, _)| *n == c) {
            Some((_, instead)) => {
                stderr(&format!(
                    "lctl: '{c}' is not supported by user-space LNet; use {instead}\n"
                ));
                -1
            }
            None => not_a_command(c),
        },
    }
}

/// Whether `w` names a command this lctl runs or refuses with advice.
fn is_known(w: &str) -> bool {
    const GENERIC: &[&str] = &[
        "help",
        "--help",
        "version",
        "--version",
        "list-commands",
        "--list-commands",
        "quit",
        "exit",
        "ignore_errors",
        "--ignore_errors",
        "net_drop",
        "net_delay",
        "--net",
    ];
    GENERIC.contains(&w) || command_help(w).is_some() || ELSEWHERE.iter().any(|(n, _)| *n == w)
}

fn not_a_command(c: &str) -> i32 {
    stderr(&format!(
        "lctl: '{c}' is not a valid command. See 'lctl --list-commands'.\n"
    ));
    -1
}

/// `help [COMMAND]`.
fn help(args: &[String]) -> i32 {
    if args.is_empty() {
        stdout(
            "usage: lctl [COMMAND] [OPTIONS]... [ARGS]\n\
             Without any parameters, interactive mode is invoked\n\
             Try 'lctl help <COMMAND>', or 'lctl --list-commands' for a list of commands.\n",
        );
        return 0;
    }
    let name = args.concat();
    match command_help(&name) {
        Some(h) => stderr(&format!("{name}: {h}\n")),
        None => stderr(&format!(
            "lctl: '{name}' is not a valid command. See 'lctl --list-commands'.\n"
        )),
    }
    0
}

/// `--list-commands`: the generic commands, then the LNet ones, 4 columns.
fn list_commands() -> String {
    let generic = [
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
    let mut out = String::new();
    for (title, names) in [
        ("", generic.to_vec()),
        (
            "===== network config =====",
            COMMANDS.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
        ),
    ] {
        if !title.is_empty() {
            out.push_str(&format!("\n{title}\n"));
        }
        out.push_str(&liblnetconfig::term::columns(&names));
    }
    out
}

/// What a run of commands carries from one to the next.
#[derive(Default)]
struct State {
    done: bool,
    ignore_errors: bool,
}

/// `lctl` alone: one command per line from stdin, a `lctl > ` prompt on a
/// terminal; off a terminal the first failure stops the run (its rc)
/// unless `ignore_errors` was given.
fn interactive(socket: &Path) -> i32 {
    use std::io::{BufRead, IsTerminal};
    let stdin = std::io::stdin();
    let tty = stdin.is_terminal();
    let mut state = State::default();
    let mut saved = 0;
    let mut lines = stdin.lock().lines();
    while !state.done {
        if tty {
            stdout("lctl > ");
        }
        let Some(Ok(line)) = lines.next() else {
            break;
        };
        let words: Vec<String> = line.split_whitespace().map(str::to_string).collect();
        let known = words.first().is_none_or(|w| is_known(w));
        let rc = if known {
            run_words(&words, socket, &mut state)
        } else {
            // Line mode: upstream's parser says so and goes on (rc 0).
            stderr("No such command. Try --list-commands to see available commands.\n");
            0
        };
        if rc != 0 && !tty {
            if saved == 0 {
                saved = rc;
            }
            if !state.ignore_errors {
                break;
            }
        }
    }
    saved
}

/// Splits off the global `--socket PATH` / `--socket=PATH` (before the
/// command); the rest are the command words.
fn split_socket(args: Vec<String>) -> (PathBuf, Vec<String>) {
    let mut socket = std::env::var_os(liblnetconfig::SOCKET_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(liblnetconfig::DEFAULT_SOCKET));
    let mut rest = Vec::new();
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        if rest.is_empty() && a == "--socket" {
            if let Some(p) = it.next() {
                socket = PathBuf::from(p);
            }
        } else if let Some(p) = a.strip_prefix("--socket=").filter(|_| rest.is_empty()) {
            socket = PathBuf::from(p);
        } else {
            rest.push(a);
        }
    }
    (socket, rest)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|a: OsString| a.to_string_lossy().into_owned())
        .collect();
    let (socket, words) = split_socket(args);
    let rc = if words.is_empty() {
        interactive(&socket)
    } else {
        run_words(&words, &socket, &mut State::default())
    };
    // Upstream: `return rc < 0 ? -rc : rc`, then the low byte.
    let status = if rc < 0 { rc.wrapping_neg() } else { rc };
    ExitCode::from((status & 0xff) as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_option_comes_before_the_command() {
        let (s, w) = split_socket(
            ["--socket", "/tmp/x.sock", "net_drop_list"]
                .map(String::from)
                .to_vec(),
        );
        assert_eq!(
            (s, w),
            (
                PathBuf::from("/tmp/x.sock"),
                vec!["net_drop_list".to_string()]
            )
        );
        let (s, w) = split_socket(
            ["--socket=/a", "ping", "--socket"]
                .map(String::from)
                .to_vec(),
        );
        assert_eq!(s, PathBuf::from("/a"));
        assert_eq!(w, ["ping", "--socket"]);
    }

    #[test]
    fn list_commands_has_every_lnet_command() {
        let l = list_commands();
        assert!(
            l.starts_with("quit                exit                help"),
            "{l}"
        );
        for (c, _) in COMMANDS {
            assert!(l.contains(c), "{c} missing: {l}");
        }
    }
}
