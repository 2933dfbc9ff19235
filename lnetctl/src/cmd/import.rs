//! `lnetctl import [--add|--del|--show|--exec] [FILE]` (lnetctl.md §2.15,
//! §4.2): each top-level section of the document, in order, becomes
//! requests; the first failure stops the import (earlier sections stay).

use std::io::Read;
use std::path::Path;

use clap::Args;
use liblnetconfig::errno::strerror;
use liblnetconfig::import::{self, ImportError, Node};
use liblnetconfig::proto::NiDelRequest;
use liblnetconfig::{global, render, Client};

use crate::out;

/// `import` options.
#[derive(Args, Debug)]
pub(crate) struct ImportArgs {
    /// Configure what the document describes (the default).
    #[arg(short, long)]
    add: bool,
    /// Delete what the document describes.
    #[arg(short, long)]
    del: bool,
    /// Show what the document describes.
    #[arg(short, long)]
    show: bool,
    /// Execute ping/discover sections.
    #[arg(short, long)]
    exec: bool,
    /// Upstream's older import path; accepted.
    #[arg(short, long)]
    old_api: bool,
    /// The document (stdin when absent).
    file: Option<String>,
}

/// `import -h` (rc 0).
pub(crate) const HELP: &str = "import FILE\n\
import < FILE : import a file\n\
\t--add: add configuration\n\
\t--del: delete configuration\n\
\t--show: show configuration\n\
\t--exec: execute command\n\
\t--old-api: use the older import path (accepted; same result here)\n\
\t--help: display this help\n\
If no command option is given then --add is assumed by default\n";

/// What to do with each section.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Action {
    Add,
    Del,
    Show,
    Exec,
}

impl Action {
    fn flag(self) -> &'static str {
        match self {
            Action::Add => "add",
            Action::Del => "del",
            Action::Show => "show",
            Action::Exec => "manage",
        }
    }
}

fn fail(action: Action, e: &ImportError) -> i32 {
    out::nl_error(action.flag(), "import", e.errno, &e.descr, out::RC_EINVAL)
}

/// Runs `import`.
pub(crate) fn run(a: &ImportArgs, socket: &Path) -> i32 {
    let action = if a.del {
        Action::Del
    } else if a.show {
        Action::Show
    } else if a.exec {
        Action::Exec
    } else {
        Action::Add
    };
    // Upstream finds FILE only after at most one option word (§7.5).
    let options = [a.add, a.del, a.show, a.exec, a.old_api]
        .iter()
        .filter(|x| **x)
        .count();
    let text = match a.file.as_deref().filter(|_| options < 2) {
        Some(f) => match std::fs::read_to_string(f) {
            Ok(t) => t,
            Err(e) => {
                let errno = e.raw_os_error().unwrap_or(liblnetconfig::errno::EIO);
                out::stderr(&render::cy_error(
                    "yaml",
                    "builder",
                    -1,
                    &format!("cannot open '{f}': {}", strerror(errno)),
                ));
                return -errno;
            }
        },
        None => {
            let mut t = String::new();
            if let Err(e) = std::io::stdin().read_to_string(&mut t) {
                out::stderr(&format!("Parser error: cannot read stdin: {e}\n"));
                return out::RC_EINVAL;
            }
            t
        }
    };
    let doc = match import::parse(&text) {
        Ok(d) => d,
        Err(line) => {
            out::stderr(&format!("{line}\n"));
            return out::RC_EINVAL;
        }
    };
    if doc.is_empty() {
        return 0;
    }
    let mut c = match super::connect(socket, action.flag(), "import") {
        Ok(c) => c,
        Err(rc) => return rc,
    };
    for (key, node) in &doc {
        let rc = section(&mut c, action, key, node);
        if rc != 0 {
            return rc;
        }
    }
    0
}

/// One top-level section; each kind of section is one arm (areas that add
/// objects add theirs: `peer`, `route`, `routing`, `buffers`, `udsp`, ...).
fn section(c: &mut Client, action: Action, key: &str, node: &Node) -> i32 {
    let not_here = |what: &str| {
        fail(
            action,
            &ImportError {
                errno: liblnetconfig::errno::EOPNOTSUPP,
                descr: format!("'{what}' sections are not supported by this lnetctl yet"),
            },
        )
    };
    match (key, action) {
        ("net", _) => nets(c, action, node),
        ("global", Action::Exec) => invalid(action, key),
        ("global", _) => globals(c, action, node),
        ("numa", Action::Exec) => invalid(action, key),
        ("numa", _) => numa(c, action, node),
        ("peer" | "route" | "routing" | "buffers", Action::Exec) => invalid(action, key),
        ("udsp", _) => udsp(c, action, node),
        ("ip2nets", _) => ip2nets(c, action, node),
        ("peer" | "route" | "routing" | "buffers", _) => not_here(key),
        ("ping", Action::Exec) => ping(c, node),
        ("discover", Action::Exec) => not_here(key),
        _ => invalid(action, key),
    }
}

fn invalid(action: Action, key: &str) -> i32 {
    fail(
        action,
        &ImportError {
            errno: liblnetconfig::errno::EINVAL,
            descr: format!("invalid key '{key}'"),
        },
    )
}

fn nets(c: &mut Client, action: Action, node: &Node) -> i32 {
    let blocks = match import::net_blocks(node) {
        Ok(b) => b,
        Err(e) => return fail(action, &e),
    };
    for b in blocks {
        for w in &b.warnings {
            out::stderr(&format!("{w}\n"));
        }
        let net = b.request.net.clone();
        let res = match action {
            Action::Add | Action::Exec => c.net_add(b.request).map(|_| ()),
            Action::Del if b.request.interfaces.is_empty() => c.net_del(net.clone()),
            Action::Del => c.ni_del(NiDelRequest {
                net: Some(net.clone()),
                interfaces: b.request.interfaces,
                nids: Vec::new(),
            }),
            Action::Show => match c.net_show(Some(net.clone())) {
                Ok(n) => {
                    let extra = c.net_types().unwrap_or_default();
                    out::stdout(&render::net_show(&n, 5, &extra));
                    Ok(())
                }
                Err(e) => Err(e),
            },
        };
        if let Err(e) = res {
            let descr = match (&e, action) {
                (liblnetconfig::Error::Daemon { message, .. }, Action::Add) => {
                    format!("Failed to configure NI on net '{net}' rc = -22: {message}")
                }
                _ => e.to_string(),
            };
            return out::nl_error(action.flag(), "net", e.errno(), &descr, out::RC_EINVAL);
        }
    }
    0
}

fn globals(c: &mut Client, action: Action, node: &Node) -> i32 {
    let entries = match import::global_entries(node) {
        Ok(e) => e,
        Err(e) => return fail(action, &e),
    };
    for (t, v) in entries {
        let value = match (action, t.name) {
            (Action::Show, _) => continue,
            (Action::Del, "numa_range") => 0,
            (Action::Del, "max_interfaces") => 4096,
            (Action::Del, "discovery") => 1,
            (Action::Del, _) => continue,
            _ => v,
        };
        let rc = super::set::apply(c, t, &value.to_string());
        if rc != 0 {
            return rc;
        }
    }
    0
}

fn numa(c: &mut Client, action: Action, node: &Node) -> i32 {
    let v = match import::numa_range(node) {
        Ok(v) => v,
        Err(e) => return fail(action, &e),
    };
    let value = match action {
        Action::Show => return 0,
        Action::Del => 0,
        _ => v,
    };
    match global::tunable("numa_range") {
        Some(t) => super::set::apply(c, t, &value.to_string()),
        None => out::RC_EINVAL,
    }
}

fn udsp(c: &mut Client, action: Action, node: &Node) -> i32 {
    let mut rules = match import::udsp_rules(node) {
        Ok(r) => r,
        Err(e) => return fail(action, &e),
    };
    // Deleting renumbers the later rules: delete from the highest index.
    if action == Action::Del {
        rules.sort_by_key(|(i, _)| std::cmp::Reverse(*i));
    }
    for (idx, rule) in rules {
        let res = match action {
            Action::Add | Action::Exec => c.udsp_add(rule, Some(idx)),
            Action::Del => c.udsp_del(Some(idx)),
            Action::Show => c.udsp_show(Some(idx)).map(|r| {
                out::stdout(&liblnetconfig::udsp::show(&r));
            }),
        };
        if let Err(e) = res {
            return out::nl_error(
                action.flag(),
                "import",
                e.errno(),
                &e.to_string(),
                out::RC_EINVAL,
            );
        }
    }
    0
}

/// `ip2nets:`: rules in order; a rule that matches no interface is
/// skipped, a net already configured by an earlier rule is skipped (first
/// match wins); no rule applied is an error.
fn ip2nets(c: &mut Client, action: Action, node: &Node) -> i32 {
    let blocks = match import::ip2nets_blocks(node) {
        Ok(b) => b,
        Err(e) => return fail(action, &e),
    };
    let mut done: Vec<String> = Vec::new();
    for b in blocks {
        for w in &b.warnings {
            out::stderr(&format!("{w}\n"));
        }
        let net = b.request.net.clone();
        if done.contains(&net) {
            continue;
        }
        let res = match action {
            Action::Add | Action::Exec => c.net_add(b.request).map(|_| ()),
            Action::Del => c.net_del(net.clone()),
            Action::Show => c.net_show(Some(net.clone())).map(|n| {
                let extra = c.net_types().unwrap_or_default();
                out::stdout(&render::net_show(&n, 5, &extra));
            }),
        };
        match res {
            Ok(()) => done.push(net),
            // This rule matches none of this node's interfaces.
            Err(liblnetconfig::Error::Daemon { errno, .. })
                if errno == liblnetconfig::errno::ENOENT => {}
            Err(e) => {
                return out::nl_error(
                    action.flag(),
                    "net",
                    e.errno(),
                    &e.to_string(),
                    out::RC_EINVAL,
                )
            }
        }
    }
    if done.is_empty() {
        return fail(
            action,
            &ImportError {
                errno: liblnetconfig::errno::EINVAL,
                descr: "No ip2nets rules applied".into(),
            },
        );
    }
    0
}

/// `ping:` under `--exec`: pings the NIDs; the result is not printed, a
/// failed target fails the import.
fn ping(c: &mut Client, node: &Node) -> i32 {
    let (nids, timeout_ms, source) = match import::ping_section(node) {
        Ok(p) => p,
        Err(e) => return fail(Action::Exec, &e),
    };
    let extra = c.net_types().unwrap_or_default();
    let mut req = match liblnetconfig::args::ping(&nids, source.as_deref(), None, &extra) {
        Ok(r) => r,
        Err(e) => return out::arg_error(e),
    };
    req.timeout_ms = timeout_ms.filter(|t| *t > 0);
    match c.ping(req) {
        Ok(outcomes) => match outcomes.iter().find_map(|o| o.result.as_ref().err()) {
            None => 0,
            Some(e) => out::nl_error("manage", "ping", e.errno, &e.message, -1),
        },
        Err(e) => out::client_error(&e, "manage", "ping"),
    }
}
