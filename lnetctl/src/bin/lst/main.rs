//! # lst: the LNet selftest front end
//!
//! Upstream's `lst` commands (selftest.md §2) against the selftest console
//! of the local lnetd, through liblnetconfig (`--socket` / `LNET_SOCKET`
//! like lnetctl). The session key is `$LST_SESSION`, the features
//! `$LST_FEATURES`. Each command builds an [`LstRequest`], sends it and
//! prints the reply with liblnetconfig's `lst::render`; `stop`, `query`
//! and `stat` loop here, as upstream's tool does. No LNet logic here.
//!
//! Depends on clap and liblnetconfig only; must never depend on lnet-core.

#![forbid(unsafe_code)]

mod cli;
mod cmd;

use std::ffi::OsString;
use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::Parser;

use cli::Cli;
use liblnetconfig::lst::args;

pub(crate) use liblnetconfig::term::{stderr, stdout};

/// The names `lst --list-commands` and `lst help` show.
fn commands() -> String {
    let mut out = String::new();
    let names: Vec<&str> = cli::USAGES
        .iter()
        .map(|(c, _)| *c)
        .chain(["help", "--list-commands"])
        .collect();
    for (i, c) in names.iter().enumerate() {
        out.push_str(&format!("{c:<19} "));
        if i % 4 == 3 {
            out.push('\n');
        }
    }
    if names.len() % 4 != 0 {
        out.push('\n');
    }
    out
}

/// `help [COMMAND]`.
fn help(word: Option<&str>) -> i32 {
    match word {
        Some(w) => match cli::usage(w) {
            Some(u) => {
                stdout(&format!("{u}\n"));
                0
            }
            None => {
                stderr(&format!("lst: no such command {w}; try lst help\n"));
                -1
            }
        },
        None => {
            stdout(&format!(
                "usage: lst COMMAND [OPTIONS] [ARGS]\n\
                 Without a command, commands are read from standard input.\n\
                 The session key is $LST_SESSION (any non-zero integer); lnetd's socket is \
                 --socket or $LNET_SOCKET.\nCommands:\n{}",
                commands()
            ));
            0
        }
    }
}

/// A command line clap refused: its reason and the command's usage; rc -1.
fn parse_failure(e: &clap::Error, args: &[OsString]) -> i32 {
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            stdout(&e.render().to_string());
            0
        }
        ErrorKind::InvalidSubcommand => {
            let word = args
                .iter()
                .skip(1)
                .filter_map(|a| a.to_str())
                .find(|a| !a.starts_with('-'))
                .unwrap_or("");
            stderr(&format!(
                "lst: '{word}' is not a valid command. See 'lst --list-commands'.\n"
            ));
            -1
        }
        ErrorKind::MissingSubcommand | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            help(None);
            -1
        }
        _ => {
            let reason = e.render().to_string();
            let first = reason
                .lines()
                .next()
                .unwrap_or("")
                .trim_start_matches("error: ");
            let cmd = args
                .iter()
                .skip(1)
                .filter_map(|a| a.to_str())
                .find(|a| cli::usage(a).is_some());
            stderr(&format!("lst: {first}\n"));
            if let Some(u) = cmd.and_then(cli::usage) {
                stderr(&format!("{u}\n"));
            }
            -1
        }
    }
}

/// Runs one command line (`args[0]` is the program name).
fn run(args: Vec<OsString>) -> i32 {
    let first = args.get(1).and_then(|a| a.to_str());
    match first {
        None => return interactive(),
        Some("help") => return help(args.get(2).and_then(|a| a.to_str())),
        Some("--list-commands") => {
            stdout(&commands());
            return 0;
        }
        _ => {}
    }
    let cli = match Cli::try_parse_from(&args) {
        Ok(c) => c,
        Err(e) => return parse_failure(&e, &args),
    };
    let features = match args::session_features(std::env::var("LST_FEATURES").ok().as_deref()) {
        Ok(f) => f,
        Err(msg) => {
            stderr(&format!("{msg}\n"));
            return -1;
        }
    };
    let ctx = cmd::Ctx {
        socket: cli.socket,
        key: args::session_key(std::env::var("LST_SESSION").ok().as_deref()),
        features,
    };
    cmd::run(&ctx, cli.cmd)
}

/// `lst` alone: one command per line from stdin, an `lst > ` prompt on a
/// terminal; `quit`/`exit` or end of input stop.
fn interactive() -> i32 {
    use std::io::{BufRead, IsTerminal};
    let stdin = std::io::stdin();
    let tty = stdin.is_terminal();
    let mut lines = stdin.lock().lines();
    let mut rc = 0;
    loop {
        if tty {
            stdout("lst > ");
        }
        let Some(Ok(line)) = lines.next() else {
            return rc;
        };
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.first().copied() {
            None => continue,
            Some("quit" | "exit") => return rc,
            Some(_) => {}
        }
        let mut args = vec![OsString::from("lst")];
        args.extend(words.iter().map(OsString::from));
        rc = run(args);
    }
}

fn main() -> ExitCode {
    let rc = run(std::env::args_os().collect());
    // Like upstream's `return rc` from main: -1 exits 255.
    ExitCode::from((rc & 0xff) as u8)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;
    use cli::Cmd;

    fn parse(words: &[&str]) -> Result<Cli, clap::Error> {
        let mut v = vec!["lst"];
        v.extend_from_slice(words);
        Cli::try_parse_from(v)
    }

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
        // Every sub-command has a usage line, and every usage line a command.
        let cmd = Cli::command();
        let names: Vec<&str> = cmd.get_subcommands().map(|s| s.get_name()).collect();
        for n in &names {
            assert!(cli::usage(n).is_some(), "no usage for {n}");
        }
        assert_eq!(names.len(), cli::USAGES.len());
    }

    #[test]
    fn getopt_like_forms() {
        let c = parse(&[
            "add_test",
            "--batch",
            "bulk",
            "--loop",
            "-1",
            "--conc",
            "8",
            "--dist=4:2",
            "--from",
            "c",
            "--to",
            "s",
            "brw",
            "write",
            "size=1M",
            "check=simple",
        ])
        .expect("parses");
        let Cmd::AddTest(a) = c.cmd else {
            panic!("add_test")
        };
        assert_eq!(a.batch.as_deref(), Some("bulk"));
        assert_eq!(a.loop_count.as_deref(), Some("-1"));
        assert_eq!(a.concurrency.as_deref(), Some("8"));
        assert_eq!(a.distribute.as_deref(), Some("4:2"));
        assert_eq!(a.test, ["brw", "write", "size=1M", "check=simple"]);
        // Short options, options after positionals.
        let c = parse(&["add_test", "brw", "-f", "c", "-t", "s", "-c", "2", "read"])
            .expect("interleaved");
        let Cmd::AddTest(a) = c.cmd else {
            panic!("add_test")
        };
        assert_eq!((a.from.as_deref(), a.to.as_deref()), (Some("c"), Some("s")));
        assert_eq!(a.test, ["brw", "read"]);
        let c = parse(&[
            "stat",
            "--bw",
            "--count",
            "2",
            "--delay",
            "1",
            "servers",
            "10.0.0.[1-2]@tcp",
        ])
        .expect("stat");
        let Cmd::Stat(s) = c.cmd else { panic!("stat") };
        assert!(s.bw && !s.rate && !s.mbs);
        assert_eq!(s.count.as_deref(), Some("2"));
        assert_eq!(s.targets, ["servers", "10.0.0.[1-2]@tcp"]);
        let c = parse(&["new_session", "--timeout", "600", "--force", "rw_test"]).expect("ns");
        let Cmd::NewSession(n) = c.cmd else {
            panic!("new_session")
        };
        assert!(n.force);
        assert_eq!(n.name.as_deref(), Some("rw_test"));
        let c = parse(&["ping", "--batch", "b", "--server", "--socket", "/tmp/x"]).expect("ping");
        assert_eq!(c.socket, std::path::PathBuf::from("/tmp/x"));
        let c = parse(&["query", "bulk", "--loop", "3", "-a"]).expect("query");
        let Cmd::Query(q) = c.cmd else {
            panic!("query")
        };
        assert_eq!(q.loop_count.as_deref(), Some("3"));
        assert!(q.active && !q.idle);
        assert_eq!(q.batch, ["bulk"]);
    }

    #[test]
    fn refusals_name_the_usage() {
        let rc = |w: &[&str]| {
            let mut v = vec!["lst"];
            v.extend_from_slice(w);
            let args: Vec<OsString> = v.iter().map(OsString::from).collect();
            match Cli::try_parse_from(&args) {
                Ok(_) => i32::MIN,
                Err(e) => parse_failure(&e, &args),
            }
        };
        assert_eq!(rc(&["bogus"]), -1);
        assert_eq!(rc(&["add_group", "g"]), -1, "needs an ID list");
        assert_eq!(rc(&["stat"]), -1, "needs a target");
        assert_eq!(rc(&["new_session", "--bogus"]), -1);
        assert_eq!(rc(&["stat", "--help"]), 0);
        assert_eq!(help(Some("stat")), 0);
        assert_eq!(help(Some("nope")), -1);
        assert!(cli::usage("add_test")
            .expect("usage")
            .starts_with("Usage: lst add_test [--batch BATCH]"));
        let c = commands();
        assert!(c.starts_with("new_session         end_session"), "{c}");
        assert_eq!(c.lines().next().map(str::len), Some(80));
    }
}
