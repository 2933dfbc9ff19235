//! `lctl net_drop_add|del|list|reset` and `net_delay_…`: liblnetconfig's
//! fault parser in lctl's dialect, the same request as `lnetctl fault`, and
//! upstream lctl's words around the answer.

use std::path::Path;

use liblnetconfig::fault::{parse_lctl, FaultAction, FaultKind};
use liblnetconfig::lctl::{list_text, parse_show};
use liblnetconfig::{Client, Error};

use crate::{stderr, stdout};

/// `ENOENT`: a `del` that matched no rule.
const ENOENT: i32 = 2;

/// Runs `cmd` (`net_drop_add` …) with its option words; returns the rc.
pub(crate) fn run(cmd: &str, words: &[String], socket: &Path) -> i32 {
    let (kind, sub) = match cmd.split_once('_').and_then(|(_, r)| r.split_once('_')) {
        Some(("drop", s)) => (FaultKind::Drop, s),
        Some(("delay", s)) => (FaultKind::Delay, s),
        _ => return -1,
    };
    let name = kind.name();
    let types = Client::connect(socket)
        .and_then(|mut c| c.net_types())
        .unwrap_or_default();
    let extra: Vec<(&str, u8)> = types.iter().map(|(n, t)| (n.as_str(), *t)).collect();
    let action_sub = if sub == "list" { "show" } else { sub };
    let args = match parse_lctl(cmd, kind, action_sub, words, &extra) {
        Ok(a) => a,
        Err(e) => {
            for l in &e.stderr {
                stderr(&format!("{l}\n"));
            }
            return e.rc;
        }
    };
    let req = args.request;
    let answer = Client::connect(socket).and_then(|mut c| c.fault(req.clone()));
    match (&req.action, answer) {
        (FaultAction::Add(r), Ok(_)) => {
            stdout(&format!(
                "Added {name} rule {}->{} (1/{})\n",
                r.src.display_with(&extra),
                r.dst.display_with(&extra),
                r.rate
            ));
            0
        }
        (FaultAction::Add(r), Err(e)) => {
            stderr(&format!(
                "add {name} rule {}->{} failed: {}\n",
                r.src.display_with(&extra),
                r.dst.display_with(&extra),
                message(&e)
            ));
            -1
        }
        (FaultAction::Del { .. }, Ok(text)) => {
            let n: u64 = text.trim().parse().unwrap_or(0);
            stdout(&format!("Removed {n} {name} rules\n"));
            0
        }
        // Nothing matched: upstream's kernel answers a count of 0.
        (FaultAction::Del { .. }, Err(Error::Daemon { errno: ENOENT, .. })) => {
            stdout(&format!("Removed 0 {name} rules\n"));
            0
        }
        (FaultAction::Del { src, dst }, Err(e)) => {
            let end = |n: Option<_>| match n {
                None => "all".to_string(),
                Some(n) => liblnetconfig::fault::rule_nid_text(n, &extra),
            };
            stderr(&format!(
                "remove {name} rule {}->{} failed: {}\n",
                end(*src),
                end(*dst),
                message(&e)
            ));
            -1
        }
        (FaultAction::Show, Ok(text)) => {
            stdout(&list_text(kind, &parse_show(&text)));
            0
        }
        (FaultAction::Show, Err(e)) => {
            // Upstream prints the title, stops at the first failed read
            // and prints the count; say why on stderr.
            stderr(&format!("lctl: {cmd}: {}\n", message(&e)));
            stdout(&list_text(kind, &[]));
            0
        }
        (FaultAction::Reset, Ok(_)) => 0,
        (FaultAction::Reset, Err(e)) => {
            stderr(&format!("failed to reset {name} stats: {}\n", message(&e)));
            -1
        }
    }
}

/// The daemon's message, or how to reach it.
fn message(e: &Error) -> String {
    e.to_string()
}
