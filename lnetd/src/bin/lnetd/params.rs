//! lnetd's module parameters (`--param NAME=VALUE`, `--config FILE`): the
//! names, defaults and ranges of the lnet, libcfs and lnet_selftest module
//! parameters (semantics.md §13) in one flat namespace, and those the
//! plugins in the plugin path declare (lnd-api's parameter extension:
//! ksocklnd, ko2iblnd, a vendor's). An unknown name or a bad value stops the
//! start with a message naming it.

use std::path::Path;

use lnd_api::ParamDecl;
use lnetd::host::{PluginDecls, PluginParam};

/// What values a parameter takes.
#[derive(Clone, Copy)]
enum Kind {
    /// An integer (C `strtol` base 0) within bounds.
    Int(i64, i64),
    /// Free text.
    Str,
    /// A `networks=`, `ip2nets=` or `routes=` string, checked by lnet-core's
    /// parsers (semantics.md §15).
    Syntax(fn(&str) -> Result<(), String>),
    /// One of these words.
    Choice(&'static [&'static str]),
    /// Accepted and ignored, with a warning (deprecated upstream).
    Deprecated,
    /// Read-only: derived from others, never set directly (the text says
    /// from what).
    Derived(&'static str),
}

const ANY: (i64, i64) = (i64::MIN, i64::MAX);
const NONNEG: (i64, i64) = (0, i32::MAX as i64);
const POS: (i64, i64) = (1, i32::MAX as i64);
const BOOL: (i64, i64) = (0, 1);

const fn int(r: (i64, i64)) -> Kind {
    Kind::Int(r.0, r.1)
}

/// Every parameter lnetd knows, by module (semantics.md §13).
const PARAMS: &[(&str, Kind)] = &[
    // lnet (§13.1)
    ("networks", Kind::Syntax(check_networks)),
    ("ip2nets", Kind::Syntax(check_ip2nets)),
    ("routes", Kind::Syntax(check_routes)),
    ("forwarding", Kind::Choice(&["", "enabled", "disabled"])),
    ("lnet_transaction_timeout", int(POS)),
    ("lnet_retry_count", int(NONNEG)),
    ("lnet_health_sensitivity", Kind::Int(0, 1000)),
    ("lnet_recovery_interval", Kind::Deprecated),
    ("lnet_recovery_limit", int(NONNEG)),
    ("lnet_max_recovery_ping_interval", int(POS)),
    ("lnet_response_tracking", Kind::Int(0, 3)),
    ("lnet_peer_discovery_disabled", int(ANY)),
    ("lnet_drop_asym_route", int(BOOL)),
    ("lnet_numa_range", int(NONNEG)),
    ("lnet_interfaces_max", int(ANY)),
    ("lock_prim_nid", int(BOOL)),
    ("portal_rotor", Kind::Int(0, 3)),
    ("rnet_htable_size", int(POS)),
    ("local_nid_dist_zero", int(BOOL)),
    ("use_tcp_bonding", Kind::Deprecated),
    ("config_on_load", int(BOOL)),
    ("enable_sysctl_setup", int(BOOL)),
    (
        "lnet_lnd_timeout",
        Kind::Derived(
            "(lnet_transaction_timeout - 1) / (lnet_retry_count + 1), at least 1: set those \
             (or ksocklnd's sock_timeout, lnetctl net set --lnd-timeout)",
        ),
    ),
    ("cpu_npartitions", int(NONNEG)),
    ("cpu_pattern", Kind::Syntax(check_cpu_pattern)),
    // router (§13.2)
    ("tiny_router_buffers", int(NONNEG)),
    ("small_router_buffers", int(NONNEG)),
    ("large_router_buffers", int(NONNEG)),
    ("peer_buffer_credits", int(NONNEG)),
    ("auto_down", int(BOOL)),
    ("check_routers_before_use", int(BOOL)),
    ("avoid_asym_router_failure", int(BOOL)),
    ("alive_router_check_interval", int(ANY)),
    ("dead_router_check_interval", Kind::Deprecated),
    ("live_router_check_interval", Kind::Deprecated),
    ("router_ping_timeout", int(NONNEG)),
    ("router_sensitivity_percentage", Kind::Int(0, 100)),
    // acceptor (§13.3)
    ("accept", Kind::Choice(&["secure", "all", "none"])),
    ("accept_port", Kind::Int(1, 65535)),
    ("accept_port_bulk", Kind::Int(1, 65535)),
    ("accept_backlog", int(POS)),
    ("accept_timeout", int(POS)),
    // lnetd's own: the OpenMetrics endpoint (off when empty)
    ("metrics_address", Kind::Syntax(check_metrics_address)),
    // lnetd's own: one file per module parameter under this directory
    // (off when not given; lctl get_param reads the same values)
    ("params_dir", Kind::Str),
    // lnet_selftest (selftest.md §6)
    ("session_timeout", int(NONNEG)),
    ("rpc_timeout", int(NONNEG)),
    ("brw_srv_workitems", int(POS)),
    ("ping_srv_workitems", int(POS)),
    ("brw_inject_errors", int(NONNEG)),
];

fn check_networks(v: &str) -> Result<(), String> {
    lnet_core::nid::Networks::parse(v)
        .map(drop)
        .map_err(|e| e.to_string())
}

fn check_ip2nets(v: &str) -> Result<(), String> {
    lnet_core::nid::Ip2Nets::parse(v)
        .map(drop)
        .map_err(|e| e.to_string())
}

fn check_routes(v: &str) -> Result<(), String> {
    lnet_core::nid::Routes::parse(v)
        .map(drop)
        .map_err(|e| e.to_string())
}

/// `cpu_pattern`: partitions of CPUs (or of NUMA nodes after `N`) this
/// machine has and lnetd may run on ([`lnetd::cpt::parse_pattern`]).
fn check_cpu_pattern(v: &str) -> Result<(), String> {
    lnetd::cpt::on_this_machine(v).map(drop)
}

fn check_metrics_address(v: &str) -> Result<(), String> {
    lnetd::ctl::metrics::MetricsAddr::parse(v).map(drop)
}

/// Parameters lnetd accepts (scripts and modprobe files set them) but whose
/// subject does not exist in a user-space LNet: a value other than these
/// harmless ones is logged at start as having no effect, never silently
/// dropped. (name, values without effect to warn about none, why).
const NO_EFFECT: &[(&str, &[&str], &str)] = &[
    (
        "portal_rotor",
        &["3"],
        "lnetd runs one CPU partition, so there is no partition to spread PUTs over",
    ),
    (
        "rnet_htable_size",
        &["128"],
        "remote nets are kept in a growing hash map, not a fixed-size table",
    ),
    (
        "local_nid_dist_zero",
        &["1"],
        "own NIDs are always at distance 0 (lnetd's API has no LNetDist caller that \
         could see another value)",
    ),
    (
        "enable_sysctl_setup",
        &["0"],
        "there are no kernel LNet sysctls to tune (lnetctl setup-sysctl is not applicable either)",
    ),
    (
        "cpu_npartitions",
        &["0", "1"],
        "lnetd runs one CPU partition (CPT 0); run one lnetd per NUMA node instead",
    ),
];

/// The warning for a value of a [`NO_EFFECT`] parameter that would matter
/// upstream.
fn no_effect(name: &str, value: &str, origin: &str) -> Option<String> {
    let (_, harmless, why) = NO_EFFECT.iter().find(|(n, _, _)| *n == name)?;
    let same = |h: &&str| match (strtol(h), strtol(value)) {
        (Some(a), Some(b)) => a == b,
        _ => h.trim() == value.trim(),
    };
    if harmless.iter().any(same) {
        return None;
    }
    Some(format!(
        "parameter {name}={value} has no effect in lnetd ({origin}): {why}"
    ))
}

/// lnetd's own modules (the others are the plugins').
const MODULES: &[&str] = &["lnet", "libcfs", "lnet_selftest"];

/// C `strtol(s, 0)` over the whole string.
fn strtol(s: &str) -> Option<i64> {
    liblnetconfig::args::strtol(s)
}

/// Whether lnetd itself knows the parameter.
fn is_own(name: &str) -> bool {
    PARAMS.iter().any(|(n, _)| *n == name)
}

/// Checks one of lnetd's own `NAME=VALUE`; returns the warning to log for
/// deprecated names.
fn check(name: &str, value: &str, origin: &str) -> Result<Option<String>, String> {
    let Some((_, kind)) = PARAMS.iter().find(|(n, _)| *n == name) else {
        return Err(format!("unknown parameter {name} ({origin})"));
    };
    match kind {
        Kind::Str => Ok(None),
        Kind::Syntax(_) if value.trim().is_empty() => Ok(None),
        Kind::Syntax(f) => f(value)
            .map(|()| None)
            .map_err(|e| format!("bad value for parameter {name} ({origin}): {e}")),
        Kind::Derived(from) => Err(format!(
            "parameter {name} cannot be set ({origin}): it is derived as {from}"
        )),
        Kind::Deprecated => Ok(Some(format!(
            "parameter {name} is deprecated and has no effect ({origin})"
        ))),
        Kind::Choice(words) => {
            if words.contains(&value) {
                Ok(None)
            } else {
                Err(format!(
                    "bad value for parameter {name}: {value:?} ({origin}); use one of: {}",
                    words
                        .iter()
                        .map(|w| if w.is_empty() { "\"\"" } else { w })
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            }
        }
        Kind::Int(lo, hi) => match strtol(value) {
            Some(v) if v >= *lo && v <= *hi => Ok(None),
            Some(_) => Err(format!(
                "bad value for parameter {name}: {value} is out of range ({origin}); {}",
                range_text(*lo, *hi)
            )),
            None => Err(format!(
                "bad value for parameter {name}: {value:?} is not an integer ({origin})"
            )),
        },
    }
}

fn range_text(lo: i64, hi: i64) -> String {
    match (lo, hi) {
        (lo, hi) if hi >= i64::from(i32::MAX) => format!("it must be at least {lo}"),
        (lo, hi) => format!("valid range {lo}..{hi}"),
    }
}

/// Module parameters after validation, in the order given (later wins).
pub(crate) struct Params {
    /// lnetd's own (lnet, libcfs, lnet_selftest).
    pub(crate) values: Vec<(String, String)>,
    /// The plugins' (checked against their declarations, canonical).
    pub(crate) plugin_values: Vec<PluginParam>,
    pub(crate) warnings: Vec<String>,
    plugins: PluginDecls,
}

impl Params {
    /// No parameters yet; plugin parameters are checked against `plugins`.
    pub(crate) fn new(plugins: PluginDecls) -> Self {
        Params {
            values: Vec::new(),
            plugin_values: Vec::new(),
            warnings: Vec::new(),
            plugins,
        }
    }

    /// Adds `NAME=VALUE` from `--param` (every module that has NAME).
    pub(crate) fn add(&mut self, item: &str, origin: &str) -> Result<(), String> {
        self.add_to(None, item, origin)
    }

    /// Adds `NAME=VALUE` for `module` (an `options` line), or for every
    /// module that has NAME; `origin` is for messages.
    fn add_to(&mut self, module: Option<&str>, item: &str, origin: &str) -> Result<(), String> {
        let Some((name, value)) = item.split_once('=') else {
            return Err(format!(
                "bad parameter {item:?} ({origin}); write NAME=VALUE, e.g. networks=tcp0(eth0)"
            ));
        };
        let name = name.trim();
        let value = unquote(value.trim());
        let own_module = module.is_none_or(|m| MODULES.contains(&m));
        if own_module && is_own(name) {
            if let Some(w) = check(name, &value, origin)? {
                self.warnings.push(w);
            }
            if let Some(w) = no_effect(name, &value, origin) {
                self.warnings.push(w);
            }
            self.values.retain(|(n, _)| n != name);
            self.values.push((name.to_string(), value));
            return Ok(());
        }
        if let Some(m) = module.filter(|m| MODULES.contains(m)) {
            return Err(format!(
                "unknown parameter {name} of module {m} ({origin}); see the module parameters of \
                 lnet (lnetctl.md §5.9)"
            ));
        }
        let decls: Vec<&'static ParamDecl> = self
            .plugins
            .get()?
            .iter()
            .copied()
            .filter(|d| d.name() == name && module.is_none_or(|m| d.module() == m))
            .collect();
        if decls.is_empty() {
            let modules = self.plugins.modules();
            let known = if modules.is_empty() {
                "no plugin module found".to_string()
            } else {
                format!("plugin modules found: {}", modules.join(", "))
            };
            let what = match module {
                Some(m) if !modules.contains(&m) => {
                    format!("options for unknown module {m} ({origin})")
                }
                Some(m) => format!("unknown parameter {name} of module {m} ({origin})"),
                None => format!(
                    "unknown parameter {name} ({origin}): not a parameter of lnet, libcfs or \
                     lnet_selftest, nor of a plugin"
                ),
            };
            return Err(format!("{what}; {known}; {}", self.plugins.searched()));
        }
        for d in decls {
            let v = d.check(&value).map_err(|e| format!("{e} ({origin})"))?;
            self.plugin_values
                .retain(|p| !(p.module == d.module() && p.name == name));
            self.plugin_values.push(PluginParam {
                module: d.module().to_string(),
                name: name.to_string(),
                value: v,
            });
        }
        Ok(())
    }

    /// The value of a parameter, if given.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.values
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Checks between parameters (semantics.md §13.1).
    pub(crate) fn check_consistency(&self) -> Result<(), String> {
        let num = |n: &str, d: i64| self.get(n).and_then(strtol).unwrap_or(d);
        let timeout = num("lnet_transaction_timeout", 150);
        let retry = num("lnet_retry_count", 2);
        let sensitivity = num("lnet_health_sensitivity", 100);
        if self.get("lnet_retry_count").is_some() && retry >= timeout {
            return Err(format!(
                "bad value for parameter lnet_retry_count: {retry} must be less than \
                 lnet_transaction_timeout ({timeout})"
            ));
        }
        if sensitivity == 0 && self.get("lnet_retry_count").is_some() && retry != 0 {
            return Err(
                "bad value for parameter lnet_retry_count: it must be 0 when \
                 lnet_health_sensitivity is 0 (health disabled)"
                    .to_string(),
            );
        }
        Ok(())
    }

    /// Reads a modprobe-style file: `options MODULE NAME=VALUE ...` lines,
    /// `#` comments, `\` continuations; other directives are refused.
    pub(crate) fn read_config(&mut self, path: &Path) -> Result<(), String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read config file {}: {e}", path.display()))?;
        self.parse_config(&text, &path.display().to_string())
    }

    fn parse_config(&mut self, text: &str, file: &str) -> Result<(), String> {
        let mut logical = String::new();
        let mut start_line = 0;
        for (i, raw) in text.lines().enumerate() {
            if logical.is_empty() {
                start_line = i + 1;
            }
            let line = raw.split('#').next().unwrap_or_default();
            if let Some(cont) = line.trim_end().strip_suffix('\\') {
                logical.push_str(cont);
                logical.push(' ');
                continue;
            }
            logical.push_str(line);
            let full = std::mem::take(&mut logical);
            let words = split_words(&full);
            let origin = format!("{file}:{start_line}");
            match words.first().map(String::as_str) {
                None => {}
                Some("options") => {
                    let module = words
                        .get(1)
                        .ok_or_else(|| format!("{origin}: \"options\" without a module name"))?;
                    for w in &words[2..] {
                        self.add_to(Some(module), w, &origin)?;
                    }
                }
                Some(other) => {
                    return Err(format!(
                        "{origin}: unsupported directive {other:?}; only \"options MODULE \
                         NAME=VALUE ...\" lines are read"
                    ))
                }
            }
        }
        Ok(())
    }
}

/// Splits on blanks, keeping double-quoted runs together (`networks="tcp0(eth0) "`).
fn split_words(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in s.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                cur.push(c);
            }
            c if c.is_whitespace() && !quoted => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn unquote(v: &str) -> String {
    v.strip_prefix('"')
        .and_then(|x| x.strip_suffix('"'))
        .unwrap_or(v)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Declarations as two plugins would offer them.
    static DECLS: [ParamDecl; 5] = [
        ParamDecl::int("ksocklnd", "sock_timeout", "50", 0, 86400, "h"),
        ParamDecl::int("ksocklnd", "tos", "-1", -1, 255, "h"),
        ParamDecl::int("ksocklnd", "rx_spin_us", "50", 0, 10_000, "h"),
        ParamDecl::bool("ksocklnd", "zc_request", "0", "h"),
        ParamDecl::int("kvndlnd", "sock_timeout", "50", 1, 100, "h"),
    ];

    fn params() -> Params {
        Params::new(PluginDecls::fixed(&DECLS))
    }

    fn plugin(p: &Params) -> Vec<(&str, &str, &str)> {
        p.plugin_values
            .iter()
            .map(|v| (v.module.as_str(), v.name.as_str(), v.value.as_str()))
            .collect()
    }

    #[test]
    fn names_and_values() {
        let mut p = params();
        p.add("networks=tcp0(eth0)", "--param").expect("ok");
        let e = p.add("networks=tcp0(eth0", "--param").expect_err("syntax");
        assert!(e.starts_with("bad value for parameter networks"), "{e}");
        let e = p.add("networks=foo0(eth0)", "--param").expect_err("type");
        assert!(e.contains("networks") && e.contains("foo0"), "{e}");
        p.add("routes=o2ib1 1 10.0.0.[1-2]@tcp:0", "--param")
            .expect("routes ok");
        p.add("accept_port=0x3dc", "--param").expect("hex ok");
        p.add("lnet_health_sensitivity=1000", "--param")
            .expect("ok");
        p.add("forwarding=enabled", "--param").expect("ok");
        p.add("tos=-1", "--param").expect("a plugin's");
        p.add("rx_spin_us=0", "--param").expect("lnd-sock's own");
        p.add("zc_request=y", "--param").expect("lnd-sock's own");
        let e = p.add("rx_spin_us=10001", "--param").expect_err("range");
        assert_eq!(
            e,
            "bad value for parameter rx_spin_us of ksocklnd: \"10001\" is out of range: an \
             integer in 0..10000 (--param)"
        );
        let e = p.add("bogus=1", "--param").expect_err("unknown");
        assert!(
            e.starts_with(
                "unknown parameter bogus (--param): not a parameter of lnet, libcfs or \
                 lnet_selftest, nor of a plugin; plugin modules found: ksocklnd, kvndlnd"
            ),
            "{e}"
        );
        let e = p.add("accept_port=70000", "--param").expect_err("range");
        assert!(
            e.contains("accept_port") && e.contains("out of range"),
            "{e}"
        );
        let e = p
            .add("lnet_health_sensitivity=abc", "--param")
            .expect_err("int");
        assert!(e.contains("not an integer"), "{e}");
        let e = p.add("forwarding=maybe", "--param").expect_err("choice");
        assert!(e.contains("enabled"), "{e}");
        let e = p.add("networks", "--param").expect_err("no =");
        assert!(e.contains("NAME=VALUE"), "{e}");
        p.add("use_tcp_bonding=1", "--param")
            .expect("deprecated ok");
        assert_eq!(p.warnings.len(), 1);
        // Accepted, no effect here: said at start, never silently dropped.
        p.add("portal_rotor=0x3", "--param").expect("default");
        p.add("cpu_npartitions=1", "--param")
            .expect("one partition");
        assert_eq!(p.warnings.len(), 1);
        p.add("cpu_npartitions=4", "--param").expect("accepted");
        assert_eq!(
            p.warnings.last().map(String::as_str),
            Some(
                "parameter cpu_npartitions=4 has no effect in lnetd (--param): lnetd runs one CPU \
                 partition (CPT 0); run one lnetd per NUMA node instead"
            )
        );
        let e = p
            .add("lnet_lnd_timeout=30", "--param")
            .expect_err("derived");
        assert!(
            e.contains("cannot be set") && e.contains("lnet_transaction_timeout"),
            "{e}"
        );
        p.add("portal_rotor=1", "--param").expect("accepted");
        assert!(
            p.warnings
                .last()
                .is_some_and(|w| w.starts_with("parameter portal_rotor=1 has no effect")),
            "{:?}",
            p.warnings
        );
        assert_eq!(p.get("accept_port"), Some("0x3dc"));
        assert_eq!(p.get("tos"), None, "a plugin's parameter is not lnet's");
        assert_eq!(
            plugin(&p),
            [
                ("ksocklnd", "tos", "-1"),
                ("ksocklnd", "rx_spin_us", "0"),
                ("ksocklnd", "zc_request", "1"),
            ]
        );
    }

    /// `--param NAME=VALUE` goes to every module that declares NAME, and must
    /// suit each; an `options` line to its module only.
    #[test]
    fn flat_names_reach_every_module_options_lines_one() {
        let mut p = params();
        p.add("sock_timeout=0x20", "--param").expect("both take 32");
        assert_eq!(
            plugin(&p),
            [
                ("ksocklnd", "sock_timeout", "32"),
                ("kvndlnd", "sock_timeout", "32")
            ]
        );
        let e = p
            .add("sock_timeout=0", "--param")
            .expect_err("kvndlnd: 1..100");
        assert!(e.contains("of kvndlnd"), "{e}");
        let mut p = params();
        p.parse_config("options ksocklnd sock_timeout=0\n", "f.conf")
            .expect("ksocklnd takes 0");
        assert_eq!(plugin(&p), [("ksocklnd", "sock_timeout", "0")]);
        let e = p
            .parse_config("options kvndlnd tos=3\n", "f.conf")
            .expect_err("not kvndlnd's");
        assert!(
            e.starts_with("unknown parameter tos of module kvndlnd (f.conf:1)"),
            "{e}"
        );
        let e = p
            .parse_config("options lnet tos=3\n", "f.conf")
            .expect_err("not lnet's");
        assert!(e.starts_with("unknown parameter tos of module lnet"), "{e}");
    }

    #[test]
    fn consistency() {
        let mut p = params();
        p.add("lnet_transaction_timeout=5", "x").expect("ok");
        p.add("lnet_retry_count=5", "x").expect("ok");
        assert!(p.check_consistency().is_err());
        let mut p = params();
        p.add("lnet_health_sensitivity=0", "x").expect("ok");
        p.add("lnet_retry_count=1", "x").expect("ok");
        assert!(p.check_consistency().is_err());
        let mut p = params();
        p.add("lnet_health_sensitivity=0", "x").expect("ok");
        assert!(p.check_consistency().is_ok());
    }

    #[test]
    fn modprobe_file() {
        let mut p = params();
        p.parse_config(
            "# comment\n\noptions lnet networks=\"tcp0(eth0) \" \\\n  accept_port=988 # trailing\noptions ksocklnd sock_timeout=65\n",
            "f.conf",
        )
        .expect("parses");
        assert_eq!(p.get("networks"), Some("tcp0(eth0) "));
        assert_eq!(p.get("accept_port"), Some("988"));
        assert_eq!(plugin(&p), [("ksocklnd", "sock_timeout", "65")]);
        let e = p
            .parse_config("options lnet nope=1\n", "f.conf")
            .expect_err("unknown");
        assert!(e.contains("nope") && e.contains("f.conf:1"), "{e}");
        let e = p
            .parse_config("\ninstall lnet /bin/true\n", "f.conf")
            .expect_err("directive");
        assert!(e.contains("f.conf:2"), "{e}");
        let e = p
            .parse_config("options foo x=1\n", "f.conf")
            .expect_err("module");
        assert!(
            e.starts_with(
                "options for unknown module foo (f.conf:1); plugin modules found: \
                 ksocklnd, kvndlnd"
            ),
            "{e}"
        );
    }
}
