//! `lctl get_param|set_param|list_param` over the module parameters of
//! lnetctl.md §5.9 that lnetd reports: the run-time lnet tunables (`global
//! show`; a writable one is changed the way `lnetctl set` changes it), the
//! lnet/libcfs parameters lnetd was started with, and every parameter the
//! loaded plugins declare (ksocklnd, ko2iblnd, a vendor's) with the value in
//! use (`ParamShow`). Names are `MODULE.PARAM` (`lnet.lnet_retry_count`,
//! `ksocklnd.sock_timeout`); `/sys/module/MODULE/parameters/PARAM` and
//! `MODULE/PARAM` are accepted, and shell patterns (`lnet.*retry*`) match as
//! lctl's do. Values always come from the daemon, never from a table here.

use std::path::Path;

use liblnetconfig::lctl::{RuntimeParam as Param, RUNTIME_PARAMS as PARAMS};
#[cfg(test)]
use liblnetconfig::proto::GlobalInfo;
use liblnetconfig::{Client, Error};

use crate::{stderr, stdout};

/// The §5.9 parameters fixed at start-up: set_param names the lnetd
/// option to use instead.
const STARTUP: &[(&str, &str)] = &[
    ("lnet", "networks"),
    ("lnet", "ip2nets"),
    ("lnet", "routes"),
    ("lnet", "forwarding"),
    ("lnet", "config_on_load"),
    ("lnet", "lock_prim_nid"),
    ("lnet", "tiny_router_buffers"),
    ("lnet", "small_router_buffers"),
    ("lnet", "large_router_buffers"),
    ("lnet", "peer_buffer_credits"),
    ("lnet", "auto_down"),
    ("lnet", "check_routers_before_use"),
    ("lnet", "avoid_asym_router_failure"),
    ("lnet", "alive_router_check_interval"),
    ("lnet", "router_ping_timeout"),
    ("lnet", "rnet_htable_size"),
    ("lnet", "accept"),
    ("lnet", "accept_port"),
    ("lnet", "accept_port_bulk"),
    ("lnet", "accept_backlog"),
    ("lnet", "accept_timeout"),
    ("lnet", "enable_sysctl_setup"),
    ("libcfs", "cpu_npartitions"),
    ("libcfs", "cpu_pattern"),
];

/// `MODULE.PARAM` from any accepted spelling.
fn canonical(arg: &str) -> String {
    let t = arg.trim_start_matches('/');
    let t = t.strip_prefix("sys/module/").unwrap_or(t);
    let t = t.replacen("/parameters/", ".", 1);
    t.replace('/', ".")
}

/// Shell-style matching (`*`, `?`, `[...]`), as fnmatch without flags.
fn glob(pat: &[u8], s: &[u8]) -> bool {
    match pat.first() {
        None => s.is_empty(),
        Some(b'*') => (0..=s.len()).any(|i| glob(&pat[1..], &s[i..])),
        Some(b'?') => !s.is_empty() && glob(&pat[1..], &s[1..]),
        Some(b'[') => {
            let Some(end) = pat.iter().skip(1).position(|&c| c == b']').map(|p| p + 1) else {
                return s.first() == Some(&b'[') && glob(&pat[1..], &s[1..]);
            };
            let Some(&c) = s.first() else {
                return false;
            };
            let set = &pat[1..end];
            let (neg, set) = match set.first() {
                Some(b'!' | b'^') => (true, &set[1..]),
                _ => (false, set),
            };
            let mut hit = false;
            let mut i = 0;
            while i < set.len() {
                if i + 2 < set.len() && set[i + 1] == b'-' {
                    hit |= set[i] <= c && c <= set[i + 2];
                    i += 3;
                } else {
                    hit |= set[i] == c;
                    i += 1;
                }
            }
            hit != neg && glob(&pat[end + 1..], &s[1..])
        }
        Some(&c) => s.first() == Some(&c) && glob(&pat[1..], &s[1..]),
    }
}

/// One parameter as lctl shows it: `MODULE.NAME`, the value lnetd uses,
/// and the run-time tunable behind it (None: fixed at start-up or load).
struct Entry {
    full: String,
    value: String,
    tunable: Option<&'static Param>,
}

/// Every parameter lnetd reports, the run-time ones first.
fn entries(cmd: &str, socket: &Path) -> Result<Vec<Entry>, i32> {
    let report = |e: Error| {
        stderr(&format!("error: {cmd}: cannot read from lnetd: {e}\n"));
        -e.errno()
    };
    let mut c = Client::connect(socket).map_err(report)?;
    let g = c.global().map_err(report)?;
    let mut out: Vec<Entry> = PARAMS
        .iter()
        .map(|p| Entry {
            full: format!("lnet.{}", p.name),
            value: (p.get)(&g).to_string(),
            tunable: Some(p),
        })
        .collect();
    match c.params() {
        Ok(list) => {
            for v in list {
                let full = format!("{}.{}", v.module, v.name);
                if !out.iter().any(|e| e.full == full) {
                    out.push(Entry {
                        full,
                        value: v.value,
                        tunable: None,
                    });
                }
            }
        }
        // An lnetd without the request: the run-time ones only.
        Err(Error::Daemon { .. }) => {}
        Err(e) => return Err(report(e)),
    }
    Ok(out)
}

/// The entries whose full name matches `pattern`.
fn matching<'a>(pattern: &str, all: &'a [Entry]) -> Vec<&'a Entry> {
    let pat = canonical(pattern);
    // A module alone (`lnet`, `ksocklnd/`) names all of its parameters.
    let pat = if pat.contains(['.', '*', '?', '[']) {
        pat
    } else {
        format!("{pat}.*")
    };
    let pat = if pat.ends_with('.') {
        format!("{pat}*")
    } else {
        pat
    };
    all.iter()
        .filter(|e| glob(pat.as_bytes(), e.full.as_bytes()))
        .collect()
}

/// Splits the leading `-x` flags off; unknown ones are refused.
fn flags<'a>(cmd: &str, args: &'a [String], known: &str) -> Result<(String, &'a [String]), i32> {
    let mut set = String::new();
    let mut i = 0;
    while let Some(a) = args.get(i).filter(|a| a.starts_with('-') && a.len() > 1) {
        for c in a[1..].chars() {
            if !known.contains(c) {
                stderr(&format!("error: {cmd}: option '-{c}' not supported here\n"));
                return Err(-22);
            }
            set.push(c);
        }
        i += 1;
    }
    Ok((set, &args[i..]))
}

/// A name nothing matched: upstream's wording.
fn not_found(cmd: &str, arg: &str) -> i32 {
    stderr(&format!(
        "error: {cmd}: param_path '{arg}': No such file or directory\n"
    ));
    -2
}

/// What `get_param`, `set_param` and `list_param` start with: the flags
/// (among `known`), the operands (the usage when `operands` are required and
/// there are none) and the parameters lnetd has; `Err` is the exit status.
fn prepare<'a>(
    cmd: &str,
    args: &'a [String],
    known: &str,
    operands: bool,
    socket: &Path,
) -> Result<(String, &'a [String], Vec<Entry>), i32> {
    let (f, rest) = flags(cmd, args, known)?;
    if operands && rest.is_empty() {
        return Err(usage(cmd));
    }
    Ok((f, rest, entries(cmd, socket)?))
}

/// No operand: the usage on stdout, upstream's CMD_HELP (exit status 4).
fn usage(cmd: &str) -> i32 {
    stdout(&format!(
        "{}\n",
        liblnetconfig::lctl::command_help(cmd).unwrap_or_default()
    ));
    crate::util::CMD_HELP
}

/// `get_param [-n] [-N] NAME...`: `name=value` lines (`-n`: the values,
/// `-N`: the names).
pub(crate) fn get(args: &[String], socket: &Path) -> i32 {
    let (f, names, all) = match prepare("get_param", args, "nNF", true, socket) {
        Ok(x) => x,
        Err(rc) => return rc,
    };
    let mut rc = 0;
    let mut out = String::new();
    for arg in names {
        let found = matching(arg, &all);
        if found.is_empty() {
            rc = not_found("get_param", arg);
        }
        for e in found {
            if f.contains('N') {
                out.push_str(&format!("{}\n", e.full));
            } else if f.contains('n') {
                out.push_str(&format!("{}\n", e.value));
            } else {
                out.push_str(&format!("{}={}\n", e.full, e.value));
            }
        }
    }
    stdout(&out);
    rc
}

/// Why `full` cannot be written, and what to use instead.
fn read_only(full: &str) -> String {
    let (module, name) = full.split_once('.').unwrap_or(("", full));
    let instead = match (module, name) {
        ("lnet", "lnet_lnd_timeout") => "it follows lnet_transaction_timeout and \
             lnet_retry_count (lnetctl net set --net NET --lnd-timeout for one net)"
            .to_string(),
        ("lnet", "lnet_numa_range") => "lnetctl set numa_range VALUE changes it".to_string(),
        (_, "conns_per_peer") => "lnetctl net set --all --conns-per-peer VALUE changes the \
             running NIs; lnetd --param conns_per_peer=VALUE the default"
            .to_string(),
        (_, "sock_timeout" | "timeout") => "lnetctl net set --net NET --lnd-timeout VALUE \
             changes a running net; lnetd --param NAME=VALUE the default"
            .replace("NAME", name),
        ("lnet" | "libcfs" | "lnet_selftest" | "lnetd", _) => format!(
            "it is fixed when lnetd starts; give lnetd --param {name}=VALUE (or {name}= in its \
             --config file)"
        ),
        (m, _) => format!(
            "{m} reads it when its plugin loads; give lnetd --param {name}=VALUE (or `options \
             {m} {name}=VALUE` in its --config file)"
        ),
    };
    format!("{full} is read-only: {instead}")
}

/// `set_param [-n] NAME=VALUE...`: writable parameters change the running
/// value (`lnetctl set`); read-only ones are refused, naming what to use.
pub(crate) fn set(args: &[String], socket: &Path) -> i32 {
    let (f, items, all) = match prepare("set_param", args, "n", true, socket) {
        Ok(x) => x,
        Err(rc) => return rc,
    };
    let mut rc = 0;
    for item in items {
        let Some((name, value)) = item.split_once('=') else {
            stderr(&format!(
                "error: set_param: setting {item}: Invalid argument (expected NAME=VALUE)\n"
            ));
            rc = -22;
            continue;
        };
        let found = matching(name, &all);
        if found.is_empty() {
            // A start-up parameter lnetd was not given: still refused with
            // what to do.
            let c = canonical(name);
            match STARTUP
                .iter()
                .find(|(m, p)| glob(c.as_bytes(), format!("{m}.{p}").as_bytes()))
            {
                Some((m, p)) => {
                    stderr(&format!(
                        "error: set_param: {}\n",
                        read_only(&format!("{m}.{p}"))
                    ));
                    rc = -13;
                }
                None => rc = not_found("set_param", name),
            }
            continue;
        }
        for e in found {
            let Some(tunable) = e.tunable.and_then(|p| p.set.map(|s| (p, s))) else {
                stderr(&format!("error: set_param: {}\n", read_only(&e.full)));
                rc = -13;
                continue;
            };
            let (p, set_name) = tunable;
            let Some(v) = liblnetconfig::args::strtol(value) else {
                stderr(&format!(
                    "error: set_param: setting {}={value}: Invalid argument\n",
                    e.full
                ));
                rc = -22;
                continue;
            };
            let v = if p.invert { i64::from(v == 0) } else { v };
            match Client::connect(socket).and_then(|mut c| c.global_set(set_name, v)) {
                Ok(()) => {
                    if !f.contains('n') {
                        stdout(&format!("{}={value}\n", e.full));
                    }
                }
                Err(err) => {
                    stderr(&format!(
                        "error: set_param: setting {}={value}: {err}\n",
                        e.full
                    ));
                    rc = -err.errno();
                }
            }
        }
    }
    rc
}

/// `list_param [-F] [PATTERN...]`: the names (`-F`: `=` after writable
/// ones); no pattern lists them all.
pub(crate) fn list(args: &[String], socket: &Path) -> i32 {
    let (f, pats, all) = match prepare("list_param", args, "FR", false, socket) {
        Ok(x) => x,
        Err(rc) => return rc,
    };
    let star = ["*".to_string()];
    let pats = if pats.is_empty() { &star[..] } else { pats };
    let mut rc = 0;
    let mut out = String::new();
    for pat in pats {
        let found = matching(pat, &all);
        if found.is_empty() {
            rc = not_found("list_param", pat);
        }
        for e in found {
            let writable = e.tunable.is_some_and(|p| p.set.is_some());
            let mark = if f.contains('F') && writable { "=" } else { "" };
            out.push_str(&format!("{}{mark}\n", e.full));
        }
    }
    stdout(&out);
    rc
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<Entry> {
        let g = GlobalInfo::default();
        let mut v: Vec<Entry> = PARAMS
            .iter()
            .map(|p| Entry {
                full: format!("lnet.{}", p.name),
                value: (p.get)(&g).to_string(),
                tunable: Some(p),
            })
            .collect();
        v.push(Entry {
            full: "ksocklnd.sock_timeout".into(),
            value: "50".into(),
            tunable: None,
        });
        v
    }

    #[test]
    fn names_and_patterns() {
        assert_eq!(
            canonical("/sys/module/lnet/parameters/lnet_retry_count"),
            "lnet.lnet_retry_count"
        );
        assert_eq!(canonical("lnet/lnet_retry_count"), "lnet.lnet_retry_count");
        let all = sample();
        let names = |p: &str| {
            matching(p, &all)
                .iter()
                .map(|e| e.full.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(names("lnet.lnet_retry_count"), ["lnet.lnet_retry_count"]);
        assert_eq!(
            names("lnet.*recovery*"),
            [
                "lnet.lnet_recovery_interval",
                "lnet.lnet_recovery_limit",
                "lnet.lnet_max_recovery_ping_interval"
            ]
        );
        assert_eq!(
            names("lnet.lnet_re[st]*"),
            ["lnet.lnet_retry_count", "lnet.lnet_response_tracking"]
        );
        assert_eq!(names("*").len(), PARAMS.len() + 1);
        assert_eq!(names("ksocklnd"), ["ksocklnd.sock_timeout"]);
        assert_eq!(
            names("/sys/module/ksocklnd/parameters/sock_timeout").len(),
            1
        );
        assert!(names("lnet.nosuch").is_empty());
        assert!(glob(b"a?c", b"abc") && !glob(b"a[!b]c", b"abc"));
        assert!(read_only("lnet.accept_port").contains("lnetd --param accept_port=VALUE"));
        assert!(read_only("ksocklnd.conns_per_peer").contains("--conns-per-peer"));
    }
}
