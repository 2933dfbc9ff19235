//! Replies as upstream lnetctl prints them: every show and error of
//! lnetctl.md, built as a [`Yaml`] tree and rendered by [`crate::yaml`].

use lnd_api::{NetId, Nid};

use crate::errno::strerror;
use crate::proto::{
    GlobalInfo, LatencyInfo, MsgCounts, NetInfo, NiInfo, PingOutcome, PluginInfo, StatsInfo,
};
use crate::yaml::{self, Style, Yaml};

/// Network types beyond lnd-api's table (name, LND type), as
/// [`crate::Client::net_types`] returns them.
pub type NetTypes = [(String, u8)];

fn extra_ref(extra: &NetTypes) -> Vec<(&str, u8)> {
    extra.iter().map(|(n, t)| (n.as_str(), *t)).collect()
}

fn nid_text(n: &Nid, extra: &[(&str, u8)]) -> String {
    n.display_with(extra).to_string()
}

fn net_text(n: NetId, extra: &[(&str, u8)]) -> String {
    n.display_with(extra).to_string()
}

/// The NL-style error block (lnetctl.md §1.8 b): `flag` is the operation
/// (`add`, `del`, `show`, `manage`, `configure`), `object` the object name,
/// `errno` the positive errno (printed negated).
pub fn nl_error(flag: &str, object: &str, errno: i32, descr: &str) -> String {
    let doc = Yaml::pairs([(
        flag,
        Yaml::Seq(vec![Yaml::pairs([
            (object, Yaml::s("")),
            ("errno", Yaml::s(-errno.abs())),
            (
                "descr",
                Yaml::Scalar(descr.to_string(), Style::TaggedDouble),
            ),
        ])]),
    )]);
    yaml::nl_document(&doc, 6)
}

/// The classic (cYAML) error block (lnetctl.md §1.8 a); `errno` is printed as
/// given (signed).
pub fn cy_error(cmd: &str, entity: &str, errno: i32, descr: &str) -> String {
    let doc = Yaml::pairs([(
        cmd,
        Yaml::Seq(vec![Yaml::pairs([(
            entity,
            Yaml::pairs([
                ("errno", Yaml::s(errno)),
                ("descr", Yaml::Scalar(descr.to_string(), Style::Raw)),
            ]),
        )])]),
    )]);
    yaml::cy(&doc)
}

/// A NI's `statistics` block (`net show -v`, `peer show -v`): the send,
/// receive and drop counts, then the put_egress, get_rtt and put_ack
/// latencies.
pub(crate) fn statistics(counts: [u64; 3], lat: [&LatencyInfo; 3]) -> Yaml {
    let mut st = Yaml::map();
    for (k, v) in ["send_count", "recv_count", "drop_count"]
        .into_iter()
        .zip(counts)
    {
        st.push(k, Yaml::s(v));
    }
    for (prefix, l) in ["put_egress", "get_rtt", "put_ack"].into_iter().zip(lat) {
        st.push(&format!("{prefix}_samples"), Yaml::s(l.samples));
        st.push(&format!("{prefix}_min_nsec"), Yaml::s(l.min_nsec));
        st.push(&format!("{prefix}_max_nsec"), Yaml::s(l.max_nsec));
        st.push(&format!("{prefix}_avg_nsec"), Yaml::s(l.avg_nsec));
    }
    st
}

/// The `sent_stats`, `received_stats` and `dropped_stats` blocks (`-v 2`).
pub(crate) fn msg_stats(m: &mut Yaml, [sent, received, dropped]: [&MsgCounts; 3]) {
    for (k, c) in [
        ("sent_stats", sent),
        ("received_stats", received),
        ("dropped_stats", dropped),
    ] {
        m.push(
            k,
            Yaml::pairs([
                ("put", Yaml::s(c.put)),
                ("get", Yaml::s(c.get)),
                ("reply", Yaml::s(c.reply)),
                ("ack", Yaml::s(c.ack)),
                ("hello", Yaml::s(c.hello)),
            ]),
        );
    }
}

fn cpt_list(cpts: &[u32]) -> String {
    let v: Vec<String> = cpts.iter().map(u32::to_string).collect();
    format!("[{}]", v.join(","))
}

fn ni_yaml(ni: &NiInfo, is_lo: bool, level: u32, extra: &[(&str, u8)]) -> Yaml {
    let mut m = Yaml::map();
    m.push("nid", Yaml::s(nid_text(&ni.nid, extra)));
    m.push(
        "status",
        Yaml::s(if ni.up || is_lo { "up" } else { "down" }),
    );
    if !ni.interfaces.is_empty() {
        let ifs = ni
            .interfaces
            .iter()
            .enumerate()
            .map(|(i, n)| (i.to_string(), Yaml::s(n)))
            .collect();
        m.push("interfaces", Yaml::Map(ifs));
    }
    if level >= 1 {
        m.push(
            "statistics",
            statistics(
                [ni.send_count, ni.recv_count, ni.drop_count],
                [&ni.put_egress, &ni.get_rtt, &ni.put_ack],
            ),
        );
    }
    if level >= 4 {
        m.push(
            "udsp info",
            Yaml::pairs([
                ("net priority", Yaml::s(ni.net_priority)),
                ("nid priority", Yaml::s(ni.nid_priority)),
            ]),
        );
    }
    if level >= 2 {
        msg_stats(&mut m, [&ni.sent, &ni.received, &ni.dropped]);
        let h = &ni.health;
        m.push(
            "health stats",
            Yaml::pairs([
                ("fatal_error", Yaml::s(h.fatal_error)),
                ("health value", Yaml::s(h.value)),
                ("interrupts", Yaml::s(h.interrupts)),
                ("dropped", Yaml::s(h.dropped)),
                ("aborted", Yaml::s(h.aborted)),
                ("no route", Yaml::s(h.no_route)),
                ("timeouts", Yaml::s(h.timeouts)),
                ("error", Yaml::s(h.error)),
                ("ping_count", Yaml::s(h.ping_count)),
                ("next_ping", Yaml::s(h.next_ping)),
            ]),
        );
    }
    if level >= 1 {
        let t = &ni.tunables;
        m.push(
            "tunables",
            Yaml::pairs([
                ("peer_timeout", Yaml::s(t.peer_timeout)),
                ("peer_credits", Yaml::s(t.peer_credits)),
                ("peer_buffer_credits", Yaml::s(t.peer_buffer_credits)),
                ("credits", Yaml::s(t.credits)),
            ]),
        );
        if !is_lo && !ni.lnd_tunables.is_empty() {
            let lt = ni
                .lnd_tunables
                .iter()
                .map(|(k, v)| (k.clone(), Yaml::s(v)))
                .collect();
            m.push("lnd tunables", Yaml::Map(lt));
        }
        m.push("dev cpt", Yaml::s(ni.dev_cpt));
        m.push("CPT", Yaml::Scalar(cpt_list(&ni.cpts), Style::Double));
    }
    m
}

/// `net show` at verbosity `level` (lnetctl.md §3.1: levels ≥ 4 behave like
/// 4, level 3 like 2).
pub fn net_show(nets: &[NetInfo], level: u32, extra: &NetTypes) -> String {
    let extra = extra_ref(extra);
    let level = match level {
        3 => 2,
        l => l.min(4),
    };
    let items = nets
        .iter()
        .map(|n| {
            let is_lo = n.name == "lo";
            Yaml::pairs([
                ("net type", Yaml::s(&n.name)),
                (
                    "local NI(s)",
                    Yaml::Seq(
                        n.nis
                            .iter()
                            .map(|ni| ni_yaml(ni, is_lo, level, &extra))
                            .collect(),
                    ),
                ),
            ])
        })
        .collect();
    yaml::nl(&Yaml::pairs([("net", Yaml::Seq(items))]), 6)
}

/// `plugin show [--name NAME] [-v]` (lnetctl.md §2.20); empty when there
/// are no plugins; an unknown name is an error (errno, descr).
pub fn plugin_show_named(
    plugins: &[PluginInfo],
    name: Option<&str>,
    verbose: bool,
    extra: &NetTypes,
) -> Result<String, (i32, String)> {
    match name {
        None => Ok(plugin_show(plugins, verbose, extra)),
        Some(n) => {
            let one: Vec<PluginInfo> = plugins.iter().filter(|p| p.name == n).cloned().collect();
            if one.is_empty() {
                Err((crate::errno::ENOENT, "plugin not found".to_string()))
            } else {
                Ok(plugin_show(&one, verbose, extra))
            }
        }
    }
}

/// `plugin show [-v]` (lnetctl.md §2.20); empty when there are no plugins.
pub fn plugin_show(plugins: &[PluginInfo], verbose: bool, extra: &NetTypes) -> String {
    if plugins.is_empty() {
        return String::new();
    }
    let extra = extra_ref(extra);
    let items = plugins
        .iter()
        .map(|p| {
            let mut m = Yaml::map();
            m.push("name", Yaml::s(&p.name));
            if verbose {
                m.push("version", Yaml::s(&p.version));
                m.push("abi version", Yaml::s(&p.abi_version));
            }
            if p.net_types.len() == 1 {
                m.push("lnd", Yaml::s(&p.net_types[0]));
            } else {
                m.push("lnd", Yaml::Flow(p.net_types.clone()));
            }
            if let Some(path) = &p.path {
                m.push("path", Yaml::s(path));
            }
            m.push("builtin", Yaml::s(p.builtin));
            m.push("state", Yaml::s(&p.state));
            let mut nets: Vec<String> = Vec::new();
            for nid in &p.nis {
                let n = net_text(nid.net(), &extra);
                if !nets.contains(&n) {
                    nets.push(n);
                }
            }
            m.push("nets", Yaml::Flow(nets));
            if verbose {
                m.push(
                    "NIs",
                    Yaml::Flow(p.nis.iter().map(|n| nid_text(n, &extra)).collect()),
                );
                if p.state == "inactive" {
                    m.push(
                        "note",
                        Yaml::s("unloaded; its code stays mapped until lnetd exits"),
                    );
                }
            }
            m
        })
        .collect();
    yaml::nl(&Yaml::pairs([("plugin", Yaml::Seq(items))]), 6)
}

/// `ping` output (lnetctl.md §2.12): the successes under `ping:`, then the
/// failures under `manage:`, indent 2. Returns the text and whether any
/// target failed.
pub fn ping(outcomes: &[PingOutcome], extra: &NetTypes) -> (String, bool) {
    ping_like("ping", outcomes, extra)
}

fn ping_like(what: &str, outcomes: &[PingOutcome], extra: &NetTypes) -> (String, bool) {
    let extra = extra_ref(extra);
    let mut ok = Vec::new();
    let mut failed = Vec::new();
    for o in outcomes {
        match &o.result {
            Ok(p) => ok.push(Yaml::pairs([
                ("primary nid", Yaml::s(nid_text(&p.primary_nid, &extra))),
                ("Multi-Rail", Yaml::s(p.multi_rail)),
                (
                    "peer_ni",
                    Yaml::Seq(
                        p.nids
                            .iter()
                            .filter(|n| **n != Nid::LO_0)
                            .map(|n| Yaml::pairs([("nid", Yaml::s(nid_text(n, &extra)))]))
                            .collect(),
                    ),
                ),
            ])),
            Err(e) => failed.push(Yaml::pairs([
                (what, Yaml::s("")),
                ("errno", Yaml::s(-e.errno.abs())),
                (
                    "descr",
                    Yaml::s(format!(
                        "failed to {what} {}: {}",
                        nid_text(&o.target, &extra),
                        strerror(e.errno.abs())
                    )),
                ),
            ])),
        }
    }
    let mut out = String::new();
    let any_failed = !failed.is_empty();
    if !ok.is_empty() {
        out.push_str(&yaml::nl(&Yaml::pairs([(what, Yaml::Seq(ok))]), 2));
    }
    if any_failed {
        out.push_str(&yaml::nl(&Yaml::pairs([("manage", Yaml::Seq(failed))]), 2));
    }
    (out, any_failed)
}

/// `discover` output (lnetctl.md §2.13): as `ping`, under `discover:`.
pub fn discover(outcomes: &[PingOutcome], extra: &NetTypes) -> (String, bool) {
    ping_like("discover", outcomes, extra)
}

/// `stats show` (lnetctl.md §2.10, cY-style).
pub fn stats(s: &StatsInfo) -> String {
    let fields: [(&str, u64); 26] = [
        ("msgs_alloc", s.msgs_alloc),
        ("msgs_max", s.msgs_max),
        ("rst_alloc", s.rst_alloc),
        ("errors", s.errors),
        ("send_count", s.send_count),
        ("resend_count", s.resend_count),
        ("response_timeout_count", s.response_timeout_count),
        ("local_interrupt_count", s.local_interrupt_count),
        ("local_dropped_count", s.local_dropped_count),
        ("local_aborted_count", s.local_aborted_count),
        ("local_no_route_count", s.local_no_route_count),
        ("local_timeout_count", s.local_timeout_count),
        ("local_error_count", s.local_error_count),
        ("remote_dropped_count", s.remote_dropped_count),
        ("remote_error_count", s.remote_error_count),
        ("remote_timeout_count", s.remote_timeout_count),
        ("network_timeout_count", s.network_timeout_count),
        ("failed_resends", s.failed_resends),
        ("successful_resends", s.successful_resends),
        ("recv_count", s.recv_count),
        ("route_count", s.route_count),
        ("drop_count", s.drop_count),
        ("send_length", s.send_length),
        ("recv_length", s.recv_length),
        ("route_length", s.route_length),
        ("drop_length", s.drop_length),
    ];
    let m = fields
        .iter()
        .map(|(k, v)| ((*k).to_string(), Yaml::s(v)))
        .collect();
    yaml::cy(&Yaml::pairs([("statistics", Yaml::Map(m))]))
}

fn ni_backup_yaml(ni: &NiInfo) -> Yaml {
    let mut m = Yaml::map();
    if !ni.interfaces.is_empty() {
        let ifs = ni
            .interfaces
            .iter()
            .enumerate()
            .map(|(i, n)| (i.to_string(), Yaml::s(n)))
            .collect();
        m.push("interfaces", Yaml::Map(ifs));
    }
    let t = &ni.tunables;
    m.push(
        "tunables",
        Yaml::pairs([
            ("peer_timeout", Yaml::s(t.peer_timeout)),
            ("peer_credits", Yaml::s(t.peer_credits)),
            ("peer_buffer_credits", Yaml::s(t.peer_buffer_credits)),
            ("credits", Yaml::s(t.credits)),
        ]),
    );
    // Read-only LND keys are state, not configuration.
    let lt: Vec<(String, Yaml)> = ni
        .lnd_tunables
        .iter()
        .filter(|(k, _)| k != "timeout" && k != "traffic_class_num")
        .map(|(k, v)| (k.clone(), Yaml::s(v)))
        .collect();
    if !lt.is_empty() {
        m.push("lnd tunables", Yaml::Map(lt));
    }
    m.push("CPT", Yaml::Scalar(cpt_list(&ni.cpts), Style::Double));
    m
}

/// The `net:` section of `export --backup` (lnetctl.md §3.1 backup mode):
/// no `lo`, no state; empty when only `lo` exists.
pub fn net_backup(nets: &[NetInfo]) -> String {
    let items: Vec<Yaml> = nets
        .iter()
        .filter(|n| n.name != "lo" && !n.nis.is_empty())
        .map(|n| {
            Yaml::pairs([
                ("net type", Yaml::s(&n.name)),
                (
                    "local NI(s)",
                    Yaml::Seq(n.nis.iter().map(ni_backup_yaml).collect()),
                ),
            ])
        })
        .collect();
    if items.is_empty() {
        return String::new();
    }
    yaml::nl(&Yaml::pairs([("net", Yaml::Seq(items))]), 6)
}

/// What `export` writes (lnetctl.md §4.1), section by section. The
/// NL-style sections come first, then one cY-style tree. Areas that add
/// objects fill their own field: peers (`peer`), routes (`route`),
/// router buffers (`routing`), UDSP rules (`udsp`).
#[derive(Clone, Debug, Default)]
pub struct Export {
    /// `net:` (rendered by [`net_show`] at level 2 or [`net_backup`]).
    pub net: String,
    /// `route:` (NL-style), empty when there are no routes.
    pub route: String,
    /// `peer:` (NL-style), empty when there are no peers.
    pub peer: String,
    /// `routing:` and `buffers:` entries (cY-style), when pools exist.
    pub routing: Vec<(String, Yaml)>,
    /// `global:`.
    pub global: GlobalInfo,
    /// `udsp:` (cY-style sequence), `None` when there are no rules.
    pub udsp: Option<Yaml>,
}

/// Renders an [`Export`] in upstream's order.
pub fn export(e: &Export) -> String {
    let mut out = String::new();
    out.push_str(&e.net);
    out.push_str(&e.route);
    out.push_str(&e.peer);
    let mut tree: Vec<(String, Yaml)> = e.routing.clone();
    tree.push(("global".to_string(), global_tree(&e.global)));
    if let Some(u) = &e.udsp {
        tree.push(("udsp".to_string(), u.clone()));
    }
    out.push_str(&yaml::cy(&Yaml::Map(tree)));
    out
}

/// The `global:` tree (lnetctl.md §2.9), for `global show` and `export`.
pub fn global_tree(g: &GlobalInfo) -> Yaml {
    let fields: [(&str, i64); 13] = [
        ("numa_range", g.numa_range),
        ("max_interfaces", g.max_interfaces),
        ("discovery", g.discovery),
        ("drop_asym_route", g.drop_asym_route),
        ("retry_count", g.retry_count),
        ("transaction_timeout", g.transaction_timeout),
        ("health_sensitivity", g.health_sensitivity),
        ("recovery_interval", g.recovery_interval),
        ("router_sensitivity", g.router_sensitivity),
        ("lnd_timeout", g.lnd_timeout),
        ("response_tracking", g.response_tracking),
        ("recovery_limit", g.recovery_limit),
        ("max_recovery_ping_interval", g.max_recovery_ping_interval),
    ];
    Yaml::Map(
        fields
            .iter()
            .map(|(k, v)| ((*k).to_string(), Yaml::s(v)))
            .collect(),
    )
}

/// `global show` (lnetctl.md §2.9, cY-style).
pub fn global(g: &GlobalInfo) -> String {
    yaml::cy(&Yaml::pairs([("global", global_tree(g))]))
}

#[cfg(test)]
mod tests;
