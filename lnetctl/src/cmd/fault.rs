//! `lnetctl fault drop|delay add|del|show|reset` (lnetctl.md §2.19): the
//! words go to liblnetconfig's getopt_long emulation (unknown options warn
//! and parsing goes on, as upstream), the request to lnetd, which hands it
//! to the fault plugin.

use std::path::Path;

use clap::Args;
use liblnetconfig::fault::{help, parse, FaultKind};
use liblnetconfig::{Client, Error};

use crate::out;

/// The words after `fault`, as given.
#[derive(Args, Debug)]
pub(crate) struct FaultWords {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, num_args = 0..)]
    words: Vec<String>,
}

/// Runs `fault …`; returns the rc.
pub(crate) fn run(a: &FaultWords, socket: &Path) -> i32 {
    let w = &a.words;
    let kind = match w.first().map(String::as_str) {
        Some("drop") => FaultKind::Drop,
        Some("delay") => FaultKind::Delay,
        _ => {
            out::stdout(&format!(
                "{}{}",
                help(FaultKind::Drop, ""),
                help(FaultKind::Delay, "")
            ));
            return -1;
        }
    };
    let sub = match w.get(1).map(String::as_str) {
        Some(s @ ("add" | "del" | "show" | "reset")) => s,
        _ => {
            out::stdout(&help(kind, ""));
            return -1;
        }
    };
    let rest = &w[2..];
    // `<sub> -h` alone: help, rc 1; too few words: help, rc -22 (§1.3).
    if rest.len() == 1 && matches!(rest[0].as_str(), "-h" | "--help") {
        out::stdout(&help(kind, sub));
        return 1;
    }
    let min_rest = if sub == "show" { 0 } else { 1 };
    if rest.len() < min_rest {
        out::stdout(&help(kind, sub));
        return -22;
    }
    let extra = Client::connect(socket)
        .and_then(|mut c| c.net_types())
        .unwrap_or_default();
    let extra: Vec<(&str, u8)> = extra.iter().map(|(n, t)| (n.as_str(), *t)).collect();
    let args = match parse(kind, sub, rest, &extra) {
        Ok(a) => a,
        Err(e) => {
            for l in &e.stderr {
                out::stderr(&format!("{l}\n"));
            }
            return e.rc;
        }
    };
    for l in &args.warnings {
        out::stderr(&format!("{l}\n"));
    }
    let req = args.request;
    match Client::connect(socket).and_then(|mut c| c.fault(req.clone())) {
        Ok(text) => {
            out::stdout(&text);
            0
        }
        Err(e @ Error::Daemon { .. }) => {
            let msg = match &e {
                Error::Daemon { message, .. } => message.clone(),
                _ => e.to_string(),
            };
            out::stdout(&format!("{}\n", req.failure_line(&msg)));
            -e.errno()
        }
        Err(e) => {
            out::stdout(&format!("{}\n", req.failure_line(&e.to_string())));
            -e.errno()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rc(words: &str) -> i32 {
        let a = FaultWords {
            words: words.split_whitespace().map(str::to_string).collect(),
        };
        run(&a, Path::new("/nonexistent/lnetctl-fault-test.sock"))
    }

    #[test]
    fn return_codes_before_the_daemon_is_asked() {
        assert_eq!(rc("drop add -s * -d * -r 1 -m foo"), -1);
        assert_eq!(rc("drop add -s 1.2.3.4@nonet -d * -r 1"), -22);
        assert_eq!(rc("delay add -s * -d * -r 1"), -1, "latency 0");
        assert_eq!(rc("drop add -h"), 1);
        assert_eq!(rc("drop reset"), -22, "too few words");
        assert_eq!(rc("drop del"), -22, "too few words");
        assert_eq!(rc("drop del -x"), -1, "neither --all nor a pair");
        assert_eq!(rc("drip add"), -1);
        assert_eq!(rc("drop frob"), -1);
        // Well-formed: the daemon is asked; none runs here.
        assert_eq!(rc("drop show"), -100);
        assert_eq!(rc("drop reset x"), -100);
    }
}
