//! Peers, discovery and recovery queues: the requests of `lnetctl peer
//! add|del|show|list|set`, `discover` and `debug recovery` (lnetctl.md §2.6,
//! §2.13, §2.17), their replies, and their YAML (§3.2, §3.3).

pub use lnd_api::Nid;
use serde::{Deserialize, Serialize};

use crate::proto::{ErrorReply, LatencyInfo, MsgCounts, PingInfo, PingOutcome};
use crate::render::{msg_stats, statistics, NetTypes};
use crate::serde_ids::serde_nid;
use crate::yaml::{self, Yaml};

/// A peer request ([`crate::proto::Op::Peer`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum PeerRequest {
    /// `peer add --prim_nid P [--nid LIST] [--non_mr] [--lock_prim]`.
    Add {
        /// The primary NID.
        #[serde(with = "serde_nid")]
        primary: Nid,
        /// The other NIDs (ranges expanded).
        #[serde(with = "serde_nid::vec")]
        nids: Vec<Nid>,
        /// False with `--non_mr`.
        multi_rail: bool,
        /// `--lock_prim` (or `--force`).
        lock_prim: bool,
    },
    /// `peer del --prim_nid P [--nid LIST] [--force]`.
    Del {
        /// The primary NID.
        #[serde(with = "serde_nid")]
        primary: Nid,
        /// NIDs to remove (empty: the peer).
        #[serde(with = "serde_nid::vec")]
        nids: Vec<Nid>,
        /// `--force` (or `--lock_prim`).
        force: bool,
    },
    /// `peer show [--nid N]` and `peer list`: the peers (the one containing
    /// `nid` when given).
    Show {
        /// Only the peer containing this NID.
        #[serde(with = "serde_nid::opt", default)]
        nid: Option<Nid>,
    },
    /// `peer set --health V --nid N | --all`.
    SetHealth {
        /// The peer NI (None: all).
        #[serde(with = "serde_nid::opt", default)]
        nid: Option<Nid>,
        /// Health value (clamped to 0..=1000).
        value: u32,
    },
    /// `peer set --state N --nid N` (debugging).
    SetState {
        /// A NID of the peer.
        #[serde(with = "serde_nid")]
        nid: Nid,
        /// The state bitmask.
        state: u32,
    },
    /// `discover [--force] NID...`.
    Discover {
        /// The NIDs, ranges expanded.
        #[serde(with = "serde_nid::vec")]
        nids: Vec<Nid>,
        /// `--force`.
        force: bool,
    },
    /// `debug recovery --local | --peer`.
    Recovery {
        /// The local NI queue (else the peer NI queue).
        local: bool,
    },
}

/// The answer to a [`PeerRequest`] ([`crate::proto::ReplyBody::Peer`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum PeerReply {
    /// Done.
    Done,
    /// The peers, in listing order.
    Peers(Vec<PeerInfo>),
    /// One outcome per `discover` target, in order.
    Discover(Vec<PingOutcome>),
    /// A recovery queue, in queue order.
    Recovery(#[serde(with = "serde_nid::vec")] Vec<Nid>),
}

/// One peer as `peer show` prints it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerInfo {
    /// Primary NID.
    #[serde(with = "serde_nid")]
    pub primary: Nid,
    /// `Multi-Rail`.
    pub multi_rail: bool,
    /// `peer state` (lnetctl.md §5.4).
    pub state: u32,
    /// Its NIs in peer order (§5.2).
    pub nis: Vec<PeerNiInfo>,
}

/// One peer NI as `peer show -v` prints it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)] // the fields are upstream's keys (lnetctl.md §3.2)
pub struct PeerNiInfo {
    #[serde(with = "serde_nid")]
    pub nid: Nid,
    /// `up`, `down` or `NA`.
    pub state: String,
    pub max_ni_tx_credits: i32,
    pub available_tx_credits: i32,
    pub min_tx_credits: i32,
    pub tx_q_num_of_buf: u64,
    pub available_rtr_credits: i32,
    pub min_rtr_credits: i32,
    pub refcount: u32,
    pub send_count: u64,
    pub recv_count: u64,
    pub drop_count: u64,
    pub put_egress: LatencyInfo,
    pub get_rtt: LatencyInfo,
    pub put_ack: LatencyInfo,
    pub sent: MsgCounts,
    pub received: MsgCounts,
    pub dropped: MsgCounts,
    pub health_value: u32,
    /// `dropped` (REMOTE_DROPPED).
    pub health_dropped: u64,
    /// `timeout` (REMOTE_TIMEOUT).
    pub health_timeout: u64,
    /// `error` (REMOTE_ERROR).
    pub health_error: u64,
    /// `network timeout` (NETWORK_TIMEOUT).
    pub health_network_timeout: u64,
    pub ping_count: u64,
    /// Seconds.
    pub next_ping: u64,
    /// UDSP priority of its peer net (-1: no rule, as upstream prints it).
    pub net_priority: i32,
    /// UDSP priority of the peer NI (-1: no rule).
    pub nid_priority: i32,
    /// Preferred gateways (UDSP router rules).
    #[serde(with = "serde_nid::vec", default)]
    pub pref_gateways: Vec<Nid>,
    /// Preferred local NIDs (UDSP NID-pair rules, or the single-rail
    /// preference).
    #[serde(with = "serde_nid::vec", default)]
    pub pref_nids: Vec<Nid>,
}

fn nid_text(n: &Nid, extra: &NetTypes) -> String {
    let names: Vec<(&str, u8)> = extra.iter().map(|(n, t)| (n.as_str(), *t)).collect();
    let s = n.display_with(&names).to_string();
    s
}

impl PeerNiInfo {
    /// A peer NI with every counter at zero, `state: NA`, full health.
    pub fn new(nid: Nid) -> PeerNiInfo {
        PeerNiInfo {
            nid,
            state: "NA".into(),
            max_ni_tx_credits: 0,
            available_tx_credits: 0,
            min_tx_credits: 0,
            tx_q_num_of_buf: 0,
            available_rtr_credits: 0,
            min_rtr_credits: 0,
            refcount: 1,
            send_count: 0,
            recv_count: 0,
            drop_count: 0,
            put_egress: LatencyInfo::default(),
            get_rtt: LatencyInfo::default(),
            put_ack: LatencyInfo::default(),
            sent: MsgCounts::default(),
            received: MsgCounts::default(),
            dropped: MsgCounts::default(),
            health_value: 1000,
            health_dropped: 0,
            health_timeout: 0,
            health_error: 0,
            health_network_timeout: 0,
            ping_count: 0,
            next_ping: 0,
            net_priority: -1,
            nid_priority: -1,
            pref_gateways: Vec::new(),
            pref_nids: Vec::new(),
        }
    }
}

fn peer_ni_yaml(ni: &PeerNiInfo, level: u32, backup: bool, extra: &NetTypes) -> Yaml {
    let mut m = Yaml::map();
    m.push("nid", Yaml::s(nid_text(&ni.nid, extra)));
    if backup {
        return m;
    }
    if level >= 4 {
        let mut u = Yaml::pairs([
            ("net priority", Yaml::s(ni.net_priority)),
            ("nid priority", Yaml::s(ni.nid_priority)),
        ]);
        for (key, list) in [
            ("Preferred gateway NIDs", &ni.pref_gateways),
            ("Preferred source NIDs", &ni.pref_nids),
        ] {
            if !list.is_empty() {
                let items = list
                    .iter()
                    .enumerate()
                    .map(|(i, n)| (format!("NID-{i}"), Yaml::s(nid_text(n, extra))))
                    .collect();
                u.push(key, Yaml::Map(items));
            }
        }
        m.push("udsp info", u);
    }
    m.push("state", Yaml::s(&ni.state));
    if level >= 1 {
        m.push("max_ni_tx_credits", Yaml::s(ni.max_ni_tx_credits));
        m.push("available_tx_credits", Yaml::s(ni.available_tx_credits));
        m.push("min_tx_credits", Yaml::s(ni.min_tx_credits));
        m.push("tx_q_num_of_buf", Yaml::s(ni.tx_q_num_of_buf));
        m.push("available_rtr_credits", Yaml::s(ni.available_rtr_credits));
        m.push("min_rtr_credits", Yaml::s(ni.min_rtr_credits));
        m.push("refcount", Yaml::s(ni.refcount));
        m.push(
            "statistics",
            statistics(
                [ni.send_count, ni.recv_count, ni.drop_count],
                [&ni.put_egress, &ni.get_rtt, &ni.put_ack],
            ),
        );
    }
    if level >= 2 {
        msg_stats(&mut m, [&ni.sent, &ni.received, &ni.dropped]);
        m.push(
            "health stats",
            Yaml::pairs([
                ("health value", Yaml::s(ni.health_value)),
                ("dropped", Yaml::s(ni.health_dropped)),
                ("timeout", Yaml::s(ni.health_timeout)),
                ("error", Yaml::s(ni.health_error)),
                ("network timeout", Yaml::s(ni.health_network_timeout)),
                ("ping_count", Yaml::s(ni.ping_count)),
                ("next_ping", Yaml::s(ni.next_ping)),
            ]),
        );
    }
    m
}

fn peer_yaml(p: &PeerInfo, level: u32, backup: bool, extra: &NetTypes) -> Yaml {
    let mut m = Yaml::map();
    m.push("primary nid", Yaml::s(nid_text(&p.primary, extra)));
    m.push("Multi-Rail", Yaml::s(p.multi_rail));
    if level >= 3 && !backup {
        m.push("peer state", Yaml::s(p.state));
    }
    m.push(
        "peer ni",
        Yaml::Seq(
            p.nis
                .iter()
                .filter(|n| n.nid != Nid::LO_0)
                .map(|n| peer_ni_yaml(n, level, backup, extra))
                .collect(),
        ),
    );
    m
}

/// `peer show` at verbosity `level` (0..=4; higher is 4), NL-style indent 6
/// (lnetctl.md §3.2). No peers: nothing.
pub fn show(peers: &[PeerInfo], level: u32, extra: &NetTypes) -> String {
    if peers.is_empty() {
        return String::new();
    }
    let level = level.min(4);
    let items = peers
        .iter()
        .map(|p| peer_yaml(p, level, false, extra))
        .collect();
    yaml::nl(&Yaml::pairs([("peer", Yaml::Seq(items))]), 6)
}

/// The `peer:` section of `export --backup`: primary, Multi-Rail and NIDs
/// only (lnetctl.md §3.2, backup mode), as a YAML value for the export
/// document.
pub fn backup_section(peers: &[PeerInfo], extra: &NetTypes) -> Yaml {
    Yaml::Seq(peers.iter().map(|p| peer_yaml(p, 0, true, extra)).collect())
}

/// `peer list` (lnetctl.md §3.3).
pub fn list(peers: &[PeerInfo], extra: &NetTypes) -> String {
    if peers.is_empty() {
        return String::new();
    }
    let items = peers
        .iter()
        .map(|p| Yaml::pairs([("nid", Yaml::s(nid_text(&p.primary, extra)))]))
        .collect();
    yaml::nl(&Yaml::pairs([("peer list", Yaml::Seq(items))]), 6)
}

/// `debug recovery --local|--peer` (lnetctl.md §2.17): `Local NI recovery:`
/// or `Peer NI recovery:` then `nid-<i>: <nid>` at indent 6. Empty queue:
/// nothing.
pub fn recovery(local: bool, nids: &[Nid], extra: &NetTypes) -> String {
    if nids.is_empty() {
        return String::new();
    }
    let mut out = String::from(if local {
        "Local NI recovery:\n"
    } else {
        "Peer NI recovery:\n"
    });
    for (i, n) in nids.iter().enumerate() {
        out.push_str(&format!("      nid-{i}: {}\n", nid_text(n, extra)));
    }
    out
}

/// The outcome of one discover target, built from the peer it found.
pub fn discover_outcome(target: Nid, result: Result<&PeerInfo, ErrorReply>) -> PingOutcome {
    PingOutcome {
        target,
        result: result.map(|p| PingInfo {
            primary_nid: p.primary,
            pid: 12345,
            multi_rail: p.multi_rail,
            nids: p.nis.iter().map(|n| n.nid).collect(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nid(s: &str) -> Nid {
        s.parse().expect("nid")
    }

    fn peer(prim: &str, nids: &[&str], state: u32) -> PeerInfo {
        PeerInfo {
            primary: nid(prim),
            multi_rail: true,
            state,
            nis: nids
                .iter()
                .map(|n| PeerNiInfo {
                    max_ni_tx_credits: 8,
                    available_tx_credits: 8,
                    min_tx_credits: 7,
                    available_rtr_credits: 8,
                    min_rtr_credits: 8,
                    refcount: 4,
                    ..PeerNiInfo::new(nid(n))
                })
                .collect(),
        }
    }

    #[test]
    fn show_level_0_and_list_match_upstream() {
        let p = peer(
            "192.168.122.11@tcp",
            &["192.168.122.11@tcp", "192.168.122.11@tcp1"],
            0,
        );
        assert_eq!(
            show(std::slice::from_ref(&p), 0, &[]),
            "peer:\n\
             -     primary nid: 192.168.122.11@tcp\n\
             \x20     Multi-Rail: True\n\
             \x20     peer ni:\n\
             \x20     -     nid: 192.168.122.11@tcp\n\
             \x20           state: NA\n\
             \x20     -     nid: 192.168.122.11@tcp1\n\
             \x20           state: NA\n"
                .replace("True", "true")
        );
        assert_eq!(
            list(&[p], &[]),
            "peer list:\n-     nid: 192.168.122.11@tcp\n"
        );
        assert_eq!(show(&[], 2, &[]), "");
    }

    #[test]
    fn show_level_3_has_the_state_and_level_1_the_credits() {
        let p = peer("1.1.1.1@tcp", &["1.1.1.1@tcp"], 1_048_585);
        let s3 = show(std::slice::from_ref(&p), 3, &[]);
        assert!(
            s3.contains("      Multi-Rail: true\n      peer state: 1048585\n"),
            "{s3}"
        );
        assert!(s3.contains("            health stats:\n                  health value: 1000\n"));
        let s1 = show(&[p], 1, &[]);
        assert!(!s1.contains("peer state"));
        assert!(s1.contains(
            "            state: NA\n            max_ni_tx_credits: 8\n            available_tx_credits: 8\n            min_tx_credits: 7\n"
        ), "{s1}");
        assert!(!s1.contains("sent_stats"));
    }

    #[test]
    fn show_level_4_has_the_udsp_info() {
        let mut p = peer("1.1.1.1@tcp", &["1.1.1.1@tcp", "1.1.1.2@tcp"], 0);
        p.nis[0].nid_priority = 0;
        p.nis[0].net_priority = 3;
        p.nis[0].pref_gateways = vec![nid("10.0.0.3@tcp")];
        p.nis[0].pref_nids = vec![nid("10.0.0.1@tcp"), nid("10.0.0.5@tcp")];
        let s4 = show(&[p], 4, &[]);
        assert!(
            s4.contains(
                "      -     nid: 1.1.1.1@tcp\n\
                 \x20           udsp info:\n\
                 \x20                 net priority: 3\n\
                 \x20                 nid priority: 0\n\
                 \x20                 Preferred gateway NIDs:\n\
                 \x20                       NID-0: 10.0.0.3@tcp\n\
                 \x20                 Preferred source NIDs:\n\
                 \x20                       NID-0: 10.0.0.1@tcp\n\
                 \x20                       NID-1: 10.0.0.5@tcp\n\
                 \x20           state: NA\n"
            ),
            "{s4}"
        );
        assert!(
            s4.contains(
                "      -     nid: 1.1.1.2@tcp\n\
                 \x20           udsp info:\n\
                 \x20                 net priority: -1\n\
                 \x20                 nid priority: -1\n\
                 \x20           state: NA\n"
            ),
            "{s4}"
        );
    }

    #[test]
    fn recovery_queue_lines() {
        assert_eq!(
            recovery(true, &[nid("192.168.122.10@tcp"), nid("192.168.122.10@tcp1")], &[]),
            "Local NI recovery:\n      nid-0: 192.168.122.10@tcp\n      nid-1: 192.168.122.10@tcp1\n"
        );
        assert_eq!(recovery(false, &[], &[]), "");
    }
}
