//! lnetd's module parameters (`--param NAME=VALUE`, `--config FILE`): the
//! names, defaults and ranges of the lnet, libcfs, ksocklnd and ko2iblnd
//! module parameters (semantics.md §13), in one flat namespace. An unknown
//! name or a bad value stops the start with a message naming it.

use std::path::Path;

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
    ("cpu_npartitions", int(NONNEG)),
    ("cpu_pattern", Kind::Str),
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
    // ksocklnd (§13.5); credits/peer_credits/peer_timeout are shared with ko2iblnd
    ("sock_timeout", int(NONNEG)),
    ("credits", int(POS)),
    ("peer_credits", int(POS)),
    ("peer_timeout", int(NONNEG)),
    ("nscheds", int(NONNEG)),
    ("nconnds", int(POS)),
    ("nconnds_max", int(POS)),
    ("min_reconnectms", int(POS)),
    ("max_reconnectms", int(POS)),
    ("eager_ack", int(NONNEG)),
    ("typed_conns", int(BOOL)),
    ("min_bulk", int(NONNEG)),
    ("tx_buffer_size", int(NONNEG)),
    ("rx_buffer_size", int(NONNEG)),
    ("nagle", int(BOOL)),
    ("round_robin", int(BOOL)),
    ("keepalive", int(ANY)),
    ("keepalive_idle", int(NONNEG)),
    ("keepalive_count", int(NONNEG)),
    ("keepalive_intvl", int(NONNEG)),
    ("enable_csum", int(BOOL)),
    ("inject_csum_error", int(BOOL)),
    ("nonblk_zcack", int(BOOL)),
    ("zc_min_payload", int(NONNEG)),
    ("zc_recv", int(BOOL)),
    ("zc_recv_min_nfrags", int(NONNEG)),
    ("conns_per_peer", Kind::Int(0, 255)),
    ("skip_mr_route_setup", int(BOOL)),
    ("tos", Kind::Int(-1, 255)),
    // lnd-sock's own (see lnd-sock/README.md)
    ("zc_request", int(BOOL)),
    ("rx_spin_us", Kind::Int(0, 10_000)),
    // ko2iblnd (§13.6)
    ("service", Kind::Int(1, 65535)),
    ("cksum", int(BOOL)),
    ("timeout", int(NONNEG)),
    ("ntx", int(POS)),
    ("peer_credits_hiw", int(NONNEG)),
    ("ipif_name", Kind::Str),
    ("retry_count", Kind::Int(0, 7)),
    ("rnr_retry_count", Kind::Int(0, 7)),
    ("ib_mtu", Kind::Int(0, 4096)),
    ("concurrent_sends", int(NONNEG)),
    ("map_on_demand", int(NONNEG)),
    ("fmr_pool_size", int(NONNEG)),
    ("fmr_flush_trigger", int(NONNEG)),
    ("fmr_cache", int(BOOL)),
    ("dev_failover", int(BOOL)),
    ("require_privileged_port", int(BOOL)),
    ("use_privileged_port", int(BOOL)),
    ("wrq_sge", int(POS)),
    ("use_fastreg_gaps", int(BOOL)),
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

/// Modules whose `options` lines `--config` reads.
const MODULES: &[&str] = &["lnet", "libcfs", "ksocklnd", "ko2iblnd", "lnet_selftest"];

/// C `strtol(s, 0)` over the whole string.
fn strtol(s: &str) -> Option<i64> {
    liblnetconfig::args::strtol(s)
}

/// Checks one `NAME=VALUE`; returns the warning to log for deprecated names.
fn check(name: &str, value: &str, origin: &str) -> Result<Option<String>, String> {
    let Some((_, kind)) = PARAMS.iter().find(|(n, _)| *n == name) else {
        return Err(format!(
            "unknown parameter {name} ({origin}); see the module parameters of lnet, ksocklnd \
             and ko2iblnd"
        ));
    };
    match kind {
        Kind::Str => Ok(None),
        Kind::Syntax(_) if value.trim().is_empty() => Ok(None),
        Kind::Syntax(f) => f(value)
            .map(|()| None)
            .map_err(|e| format!("bad value for parameter {name} ({origin}): {e}")),
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
#[derive(Debug, Default)]
pub(crate) struct Params {
    pub(crate) values: Vec<(String, String)>,
    pub(crate) warnings: Vec<String>,
}

impl Params {
    /// Adds `NAME=VALUE` from `origin` (for messages).
    pub(crate) fn add(&mut self, item: &str, origin: &str) -> Result<(), String> {
        let Some((name, value)) = item.split_once('=') else {
            return Err(format!(
                "bad parameter {item:?} ({origin}); write NAME=VALUE, e.g. networks=tcp0(eth0)"
            ));
        };
        let name = name.trim();
        let value = unquote(value.trim());
        if let Some(w) = check(name, &value, origin)? {
            self.warnings.push(w);
        }
        self.values.retain(|(n, _)| n != name);
        self.values.push((name.to_string(), value));
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
                    if !MODULES.contains(&module.as_str()) {
                        return Err(format!(
                            "{origin}: options for unknown module {module}; lnetd reads options \
                             for {}",
                            MODULES.join(", ")
                        ));
                    }
                    for w in &words[2..] {
                        self.add(w, &origin)?;
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

    #[test]
    fn names_and_values() {
        let mut p = Params::default();
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
        p.add("tos=-1", "--param").expect("ok");
        p.add("rx_spin_us=0", "--param").expect("lnd-sock's own");
        p.add("zc_request=1", "--param").expect("lnd-sock's own");
        let e = p.add("rx_spin_us=10001", "--param").expect_err("range");
        assert!(
            e.contains("rx_spin_us") && e.contains("out of range"),
            "{e}"
        );
        let e = p.add("bogus=1", "--param").expect_err("unknown");
        assert!(e.contains("unknown parameter bogus"), "{e}");
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
        assert_eq!(p.get("accept_port"), Some("0x3dc"));
    }

    #[test]
    fn consistency() {
        let mut p = Params::default();
        p.add("lnet_transaction_timeout=5", "x").expect("ok");
        p.add("lnet_retry_count=5", "x").expect("ok");
        assert!(p.check_consistency().is_err());
        let mut p = Params::default();
        p.add("lnet_health_sensitivity=0", "x").expect("ok");
        p.add("lnet_retry_count=1", "x").expect("ok");
        assert!(p.check_consistency().is_err());
        let mut p = Params::default();
        p.add("lnet_health_sensitivity=0", "x").expect("ok");
        assert!(p.check_consistency().is_ok());
    }

    #[test]
    fn modprobe_file() {
        let mut p = Params::default();
        p.parse_config(
            "# comment\n\noptions lnet networks=\"tcp0(eth0) \" \\\n  accept_port=988 # trailing\noptions ksocklnd sock_timeout=65\n",
            "f.conf",
        )
        .expect("parses");
        assert_eq!(p.get("networks"), Some("tcp0(eth0) "));
        assert_eq!(p.get("accept_port"), Some("988"));
        assert_eq!(p.get("sock_timeout"), Some("65"));
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
        assert!(e.contains("unknown module foo"), "{e}");
    }
}
