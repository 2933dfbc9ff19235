//! What `lctl` (upstream's Lustre control tool) prints for its LNet
//! commands: the text of `net_drop_list`/`net_delay_list`, `ping` and the
//! command table with its usage lines. The options are read by the same
//! parser as `lnetctl fault` ([`crate::fault::parse_lctl`]) and the requests
//! are the same, so both tools reach one rule table.

use crate::fault::FaultKind;
use crate::proto::GlobalInfo;

/// An lnet module parameter that is a global tunable: its name, the
/// `lnetctl set` tunable that writes it (None: read-only), and how to read
/// it from `global show`.
pub struct RuntimeParam {
    /// The parameter (`lnet_retry_count`).
    pub name: &'static str,
    /// The `lnetctl set` tunable that writes it; None: read-only.
    pub set: Option<&'static str>,
    /// Its value in a `global show` reply.
    pub get: fn(&GlobalInfo) -> i64,
    /// The value written is the tunable's (`lnet_peer_discovery_disabled`
    /// is `discovery` inverted).
    pub invert: bool,
}

const fn rw(name: &'static str, set: &'static str, get: fn(&GlobalInfo) -> i64) -> RuntimeParam {
    RuntimeParam {
        name,
        set: Some(set),
        get,
        invert: false,
    }
}

/// The lnet module parameters that are global tunables at run time (lnetctl
/// `set`/`global show`), as `/sys/module/lnet/parameters` names them.
pub const RUNTIME_PARAMS: &[RuntimeParam] = &[
    RuntimeParam {
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
    RuntimeParam {
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
    RuntimeParam {
        name: "lnet_lnd_timeout",
        set: None,
        get: |g| g.lnd_timeout,
        invert: false,
    },
];

/// One rule as `fault … show` reports it (the NL-style text of the fault
/// plugin), with what lctl's list line needs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListedRule {
    /// `fa_src`, as printed.
    pub src: String,
    /// `fa_dst`, as printed.
    pub dst: String,
    /// `fa_ptl_mask`.
    pub ptl_mask: u64,
    /// `fa_msg_mask`.
    pub msg_mask: u32,
    /// `da_rate` / `la_rate`.
    pub rate: u64,
    /// `da_interval` / `la_interval`.
    pub interval: u64,
    /// `la_latency` (delay rules).
    pub latency: u64,
    /// `ds_dropped` / `ls_delayed`.
    pub fired: u64,
    /// `fs_count`.
    pub count: u64,
    /// `fs_put`.
    pub put: u64,
    /// `fs_ack`.
    pub ack: u64,
    /// `fs_get`.
    pub get: u64,
    /// `fs_reply`.
    pub reply: u64,
}

/// Reads the rules out of `fault drop|delay show` text, in its order;
/// unknown keys are skipped.
pub fn parse_show(text: &str) -> Vec<ListedRule> {
    let mut out: Vec<ListedRule> = Vec::new();
    for line in text.lines() {
        let t = line.trim_start();
        let t = match t.strip_prefix('-') {
            Some(rest) => {
                out.push(ListedRule::default());
                rest.trim_start()
            }
            None => t,
        };
        let Some((k, v)) = t.split_once(':') else {
            continue;
        };
        let Some(r) = out.last_mut() else {
            continue;
        };
        let v = v.trim();
        let n = || v.parse::<u64>().unwrap_or(0);
        match k {
            "fa_src" => r.src = v.to_string(),
            "fa_dst" => r.dst = v.to_string(),
            "fa_ptl_mask" => r.ptl_mask = n(),
            "fa_msg_mask" => r.msg_mask = u32::try_from(n()).unwrap_or(u32::MAX),
            "da_rate" | "la_rate" => r.rate = n(),
            "da_interval" | "la_interval" => r.interval = n(),
            "la_latency" => r.latency = n(),
            "ds_dropped" | "ls_delayed" => r.fired = n(),
            "fs_count" => r.count = n(),
            "fs_put" => r.put = n(),
            "fs_ack" => r.ack = n(),
            "fs_get" => r.get = n(),
            "fs_reply" => r.reply = n(),
            _ => {}
        }
    }
    out
}

/// C's `%#jx`: `0` for zero, else `0x` and lower-case hex.
fn alt_hex(v: u64) -> String {
    if v == 0 {
        "0".to_string()
    } else {
        format!("{v:#x}")
    }
}

/// `lctl net_drop_list` / `net_delay_list`: a title, one line per rule,
/// and the count.
pub fn list_text(kind: FaultKind, rules: &[ListedRule]) -> String {
    let mut out = format!("LNet {} rules:\n", kind.name());
    for r in rules {
        let head = match kind {
            FaultKind::Drop => format!("(1/{} | {})", r.rate, r.interval),
            FaultKind::Delay => format!("(1/{} | {}, latency {})", r.rate, r.interval, r.latency),
        };
        out.push_str(&format!(
            "{}->{} {head} ptl {}, msg {:x}, {}/{}, PUT {}, ACK {}, GET {}, REP {}\n",
            r.src,
            r.dst,
            alt_hex(r.ptl_mask),
            r.msg_mask,
            r.fired,
            r.count,
            r.put,
            r.ack,
            r.get,
            r.reply
        ));
    }
    out.push_str(&format!("found total {}\n", rules.len()));
    out
}

/// The LNet commands of lctl's table, in its order, with their help (what
/// `lctl help CMD` prints after `CMD: `). Other lctl commands are Lustre's
/// (devices, llog, pools…) and have no meaning without a file system.
pub const COMMANDS: &[(&str, &str)] = &[
    (
        "--net",
        "run <command> after selecting network <net>\nusage: --net <tcp/o2ib/...> <command>",
    ),
    ("network", "configure LNET\nusage: network up|down"),
    ("net", "configure LNET\nusage: net up|down"),
    ("list_nids", "list local NIDs\nusage: list_nids [all]"),
    ("which_nid", "choose a NID\nusage: which_nid NID [NID...]"),
    (
        "ping",
        "Check LNET connectivity\nusage: ping nid [timeout] [pid]",
    ),
    (
        "net_drop_add",
        "Add LNet drop rule\n\
         usage: net_drop_add <-s | --source NID>\n\
         \t\t      <-d | --dest NID>\n\
         \t\t      <<-r | --rate DROP_RATE> |\n\
         \t\t      <-i | --interval SECONDS>>\n\
         \t\t      [<-p | --portal> PORTAL...]\n\
         \t\t      [<-m | --message> <PUT|ACK|GET|REPLY>...]\n\
         \t\t      [< -e | --health_error]\n",
    ),
    (
        "net_drop_del",
        "remove LNet drop rule\n\
         usage: net_drop_del <[-a | --all] |\n\
         \t\t      <-s | --source NID>\n\
         \t\t      <-d | --dest NID>>\n",
    ),
    (
        "net_drop_reset",
        "reset drop rule stats\nusage: net_drop_reset",
    ),
    (
        "net_drop_list",
        "list LNet drop rules\nusage: net_drop_list",
    ),
    (
        "net_delay_add",
        "Add LNet delay rule\n\
         usage: net_delay_add <-s | --source NID>\n\
         \t\t       <-d | --dest NID>\n\
         \t\t       <<-r | --rate DROP_RATE> |\n\
         \t\t\t<-i | --interval SECONDS>>\n\
         \t\t       <-l | --latency SECONDS>\n\
         \t\t       [<-p | --portal> PORTAL...]\n\
         \t\t       [<-m | --message> <PUT|ACK|GET|REPLY>...]\n",
    ),
    (
        "net_delay_del",
        "remove LNet delay rule\n\
         usage: net_delay_del <[-a | --all] |\n\
         \t\t       <-s | --source NID>\n\
         \t\t       <-d | --dest NID>>\n",
    ),
    (
        "net_delay_reset",
        "reset delay rule stats\nusage: net_delay_reset",
    ),
    (
        "net_delay_list",
        "list LNet delay rules\nusage: net_delay_list",
    ),
    (
        "get_param",
        "get the Lustre or LNET parameter\n\
         usage: get_param [-n|-N] <param_path1 param_path2 ...>\n\
         Get the value of Lustre or LNET parameter from the specified path.\n\
         The path can contain shell-style filename patterns.\n\
         \x20 -n  Print only the value and not parameter name.\n\
         \x20 -N  Print only matched parameter names and not the values.\n\
         \x20     (Especially useful when using patterns.)\n",
    ),
    (
        "set_param",
        "set the Lustre or LNET parameter\n\
         usage: set_param [-n] <param_path1=value1 param_path2=value2 ...>\n\
         Set the value of the Lustre or LNET parameter at the specified path.\n\
         \x20 -n  Disable printing of the key name when printing values.\n",
    ),
    (
        "list_param",
        "list the Lustre or LNET parameter name\n\
         usage: list_param [-F] <param_path1 param_path2 ...>\n\
         List the name of Lustre or LNET parameter from the specified path.\n\
         \x20 -F  Add '=' for writeable files.\n",
    ),
];

/// The help of lctl command `name`.
pub fn command_help(name: &str) -> Option<&'static str> {
    COMMANDS.iter().find(|(n, _)| *n == name).map(|(_, h)| *h)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DROP_SHOW: &str = "fault:\n\
-     rule_type: drop\n\
      fa_src: 255.255.255.255@tcp\n\
      fa_dst: 192.168.122.10@tcp\n\
      fa_ptl_mask: 0\n\
      fa_msg_mask: 4\n\
      da_rate: 1\n\
      da_interval: 0\n\
      ds_dropped: 3\n\
      fs_count: 3\n\
      fs_put: 0\n\
      fs_ack: 0\n\
      fs_get: 3\n\
      fs_reply: 0\n\
-     rule_type: drop\n\
      fa_src: <?>\n\
      fa_dst: 10.0.0.1@tcp\n\
      fa_local_nid: 10.0.0.2@tcp\n\
      fa_ptl_mask: 16\n\
      fa_msg_mask: 15\n\
      da_rate: 0\n\
      da_interval: 10\n\
      ds_dropped: 0\n\
      fs_count: 7\n\
      fs_put: 4\n\
      fs_ack: 1\n\
      fs_get: 1\n\
      fs_reply: 1\n";

    #[test]
    fn drop_list_is_upstreams_text() {
        let rules = parse_show(DROP_SHOW);
        assert_eq!(rules.len(), 2);
        assert_eq!(
            list_text(FaultKind::Drop, &rules),
            "LNet drop rules:\n\
             255.255.255.255@tcp->192.168.122.10@tcp (1/1 | 0) ptl 0, msg 4, 3/3, PUT 0, ACK 0, GET 3, REP 0\n\
             <?>->10.0.0.1@tcp (1/0 | 10) ptl 0x10, msg f, 0/7, PUT 4, ACK 1, GET 1, REP 1\n\
             found total 2\n"
        );
        assert_eq!(
            list_text(FaultKind::Delay, &[]),
            "LNet delay rules:\nfound total 0\n"
        );
    }

    #[test]
    fn delay_list_has_the_latency() {
        let show = "fault:\n-     rule_type: delay\n      fa_src: <?>\n      fa_dst: <?>\n      \
                    fa_ptl_mask: 0\n      fa_msg_mask: 15\n      la_rate: 2\n      la_interval: 0\n      \
                    la_latency: 5\n      ls_delayed: 1\n      fs_count: 2\n      fs_put: 2\n      \
                    fs_ack: 0\n      fs_get: 0\n      fs_reply: 0\n";
        assert_eq!(
            list_text(FaultKind::Delay, &parse_show(show)),
            "LNet delay rules:\n<?>-><?> (1/2 | 0, latency 5) ptl 0, msg f, 1/2, PUT 2, ACK 0, GET 0, REP 0\n\
             found total 1\n"
        );
    }
}
