//! `lctl get_param|set_param|list_param` over the module parameters of
//! lnetctl.md §5.9 that lnetd reports at run time: each is read from the
//! daemon (`global show`) and a writable one is changed the way `lnetctl
//! set` changes it. Names are `MODULE.PARAM` (`lnet.lnet_retry_count`);
//! `/sys/module/MODULE/parameters/PARAM` and `MODULE/PARAM` are accepted,
//! and shell patterns (`lnet.*retry*`) match as lctl's do.

use std::path::Path;

use liblnetconfig::proto::GlobalInfo;
use liblnetconfig::Client;

use crate::{stderr, stdout};

/// A parameter the daemon reports: its `lnet` name, the `lnetctl set`
/// tunable that writes it (None: read-only), and how to read it.
struct Param {
    name: &'static str,
    set: Option<&'static str>,
    get: fn(&GlobalInfo) -> i64,
    /// The value written is the tunable's (`lnet_peer_discovery_disabled`
    /// is `discovery` inverted).
    invert: bool,
}

const fn rw(name: &'static str, set: &'static str, get: fn(&GlobalInfo) -> i64) -> Param {
    Param {
        name,
        set: Some(set),
        get,
        invert: false,
    }
}

const PARAMS: &[Param] = &[
    Param {
        name: "lnet_numa_range",
        set: None,
        get: |g| g.numa_range,
        invert: false,
    },
    rw("lnet_health_sensitivity", "health_sensitivity", |g| {
        g.health_sensitivity
    }),
    rw("lnet_recovery_interval", "recovery_interval", |g| {
        g.recovery_interval
    }),
    rw("lnet_recovery_limit", "recovery_limit", |g| {
        g.recovery_limit
    }),
    rw(
        "lnet_max_recovery_ping_interval",
        "max_recovery_ping_interval",
        |g| g.max_recovery_ping_interval,
    ),
    rw("lnet_interfaces_max", "max_interfaces", |g| {
        g.max_interfaces
    }),
    Param {
        name: "lnet_peer_discovery_disabled",
        set: Some("discovery"),
        get: |g| i64::from(g.discovery == 0),
        invert: true,
    },
    rw("lnet_drop_asym_route", "drop_asym_route", |g| {
        g.drop_asym_route
    }),
    rw("lnet_transaction_timeout", "transaction_timeout", |g| {
        g.transaction_timeout
    }),
    rw("lnet_retry_count", "retry_count", |g| g.retry_count),
    rw("lnet_response_tracking", "response_tracking", |g| {
        g.response_tracking
    }),
    rw("router_sensitivity_percentage", "router_sensitivity", |g| {
        g.router_sensitivity
    }),
    Param {
        name: "lnet_lnd_timeout",
        set: None,
        get: |g| g.lnd_timeout,
        invert: false,
    },
];

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

/// The reported parameters whose full name matches `pattern`.
fn matching(pattern: &str) -> Vec<&'static Param> {
    let pat = canonical(pattern);
    PARAMS
        .iter()
        .filter(|p| glob(pat.as_bytes(), format!("lnet.{}", p.name).as_bytes()))
        .collect()
}

fn global(socket: &Path) -> Result<GlobalInfo, i32> {
    Client::connect(socket)
        .and_then(|mut c| c.global())
        .map_err(|e| {
            stderr(&format!("error: get_param: cannot read from lnetd: {e}\n"));
            -e.errno()
        })
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

/// `get_param [-n] [-N] NAME...`: `name=value` lines (`-n`: the values,
/// `-N`: the names).
pub(crate) fn get(args: &[String], socket: &Path) -> i32 {
    let (f, names) = match flags("get_param", args, "nNF") {
        Ok(x) => x,
        Err(rc) => return rc,
    };
    if names.is_empty() {
        stdout(&format!(
            "{}\n",
            liblnetconfig::lctl::command_help("get_param").unwrap_or_default()
        ));
        return -22;
    }
    let mut rc = 0;
    let mut g = None;
    for arg in names {
        let found = matching(arg);
        if found.is_empty() {
            rc = not_found("get_param", arg);
            continue;
        }
        if f.contains('N') {
            for p in found {
                stdout(&format!("lnet.{}\n", p.name));
            }
            continue;
        }
        if g.is_none() {
            match global(socket) {
                Ok(v) => g = Some(v),
                Err(e) => return e,
            }
        }
        let gi = g.as_ref().expect("read above");
        for p in found {
            let v = (p.get)(gi);
            if f.contains('n') {
                stdout(&format!("{v}\n"));
            } else {
                stdout(&format!("lnet.{}={v}\n", p.name));
            }
        }
    }
    rc
}

/// `set_param [-n] NAME=VALUE...`: writable parameters change the running
/// value (`lnetctl set`); read-only ones are refused, naming the start-up
/// parameter to use.
pub(crate) fn set(args: &[String], socket: &Path) -> i32 {
    let (f, items) = match flags("set_param", args, "n") {
        Ok(x) => x,
        Err(rc) => return rc,
    };
    if items.is_empty() {
        stdout(&format!(
            "{}\n",
            liblnetconfig::lctl::command_help("set_param").unwrap_or_default()
        ));
        return -22;
    }
    let mut rc = 0;
    for item in items {
        let Some((name, value)) = item.split_once('=') else {
            stderr(&format!(
                "error: set_param: setting {item}: Invalid argument (expected NAME=VALUE)\n"
            ));
            rc = -22;
            continue;
        };
        let found = matching(name);
        if found.is_empty() {
            let c = canonical(name);
            if let Some((m, p)) = STARTUP
                .iter()
                .find(|(m, p)| glob(c.as_bytes(), format!("{m}.{p}").as_bytes()))
            {
                stderr(&format!(
                    "error: set_param: {m}.{p} is read-only: it is fixed when lnetd starts; \
                     give lnetd --param {p}=VALUE (or {p}= in its --config file)\n"
                ));
                rc = -13;
            } else {
                rc = not_found("set_param", name);
            }
            continue;
        }
        for p in found {
            let Some(tunable) = p.set else {
                let instead = if p.name == "lnet_lnd_timeout" {
                    "it follows lnet_transaction_timeout and lnet_retry_count \
                     (lnetctl net set --lnd-timeout for one net)"
                        .to_string()
                } else {
                    format!(
                        "lnetctl set numa_range VALUE changes it (or lnetd --param {}=VALUE at start-up)",
                        p.name
                    )
                };
                stderr(&format!(
                    "error: set_param: lnet.{} is read-only: {instead}\n",
                    p.name
                ));
                rc = -13;
                continue;
            };
            let Some(v) = liblnetconfig::args::strtol(value) else {
                stderr(&format!(
                    "error: set_param: setting lnet.{}={value}: Invalid argument\n",
                    p.name
                ));
                rc = -22;
                continue;
            };
            let v = if p.invert { i64::from(v == 0) } else { v };
            match Client::connect(socket).and_then(|mut c| c.global_set(tunable, v)) {
                Ok(()) => {
                    if !f.contains('n') {
                        stdout(&format!("lnet.{}={value}\n", p.name));
                    }
                }
                Err(e) => {
                    stderr(&format!(
                        "error: set_param: setting lnet.{}={value}: {e}\n",
                        p.name
                    ));
                    rc = -e.errno();
                }
            }
        }
    }
    rc
}

/// `list_param [-F] [PATTERN...]`: the names (`-F`: `=` after writable
/// ones); no pattern lists them all.
pub(crate) fn list(args: &[String], _socket: &Path) -> i32 {
    let (f, pats) = match flags("list_param", args, "FR") {
        Ok(x) => x,
        Err(rc) => return rc,
    };
    let all = ["*".to_string()];
    let pats = if pats.is_empty() { &all[..] } else { pats };
    let mut rc = 0;
    for pat in pats {
        // `lnet` alone (a module) lists its parameters, as a directory.
        let pat = if matches!(canonical(pat).as_str(), "lnet" | "lnet.") {
            "lnet.*".to_string()
        } else {
            pat.clone()
        };
        let found = matching(&pat);
        if found.is_empty() {
            rc = not_found("list_param", &pat);
        }
        for p in found {
            let mark = if f.contains('F') && p.set.is_some() {
                "="
            } else {
                ""
            };
            stdout(&format!("lnet.{}{mark}\n", p.name));
        }
    }
    rc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_patterns() {
        assert_eq!(
            canonical("/sys/module/lnet/parameters/lnet_retry_count"),
            "lnet.lnet_retry_count"
        );
        assert_eq!(canonical("lnet/lnet_retry_count"), "lnet.lnet_retry_count");
        let names = |p: &str| matching(p).iter().map(|p| p.name).collect::<Vec<_>>();
        assert_eq!(names("lnet.lnet_retry_count"), ["lnet_retry_count"]);
        assert_eq!(
            names("lnet.*recovery*"),
            [
                "lnet_recovery_interval",
                "lnet_recovery_limit",
                "lnet_max_recovery_ping_interval"
            ]
        );
        assert_eq!(names("lnet.lnet_re[st]*").len(), 4);
        assert_eq!(names("*").len(), PARAMS.len());
        assert!(names("lnet.nosuch").is_empty());
        assert!(glob(b"a?c", b"abc") && !glob(b"a[!b]c", b"abc"));
    }
}
