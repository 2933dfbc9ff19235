//! Golden outputs: the exact samples of lnetctl.md.

use super::*;
use crate::proto::{ErrorReply, HealthInfo, PingInfo, TunablesInfo};

fn nid(s: &str) -> lnd_api::Nid {
    s.parse().expect("test NID")
}

fn lo_ni() -> NiInfo {
    NiInfo {
        nid: lnd_api::Nid::LO_0,
        up: true,
        interfaces: vec![],
        send_count: 0,
        recv_count: 0,
        drop_count: 0,
        put_egress: LatencyInfo::default(),
        get_rtt: LatencyInfo::default(),
        put_ack: LatencyInfo::default(),
        sent: MsgCounts::default(),
        received: MsgCounts::default(),
        dropped: MsgCounts::default(),
        health: HealthInfo {
            value: 1000,
            ..HealthInfo::default()
        },
        net_priority: -1,
        nid_priority: -1,
        tunables: TunablesInfo::default(),
        lnd_tunables: vec![],
        dev_cpt: -1,
        cpts: vec![0, 1],
        tx_credits: 0,
        min_tx_credits: 0,
    }
}

fn tcp_ni() -> NiInfo {
    NiInfo {
        nid: nid("192.168.122.10@tcp"),
        up: true,
        interfaces: vec!["eth0".into()],
        send_count: 12,
        recv_count: 12,
        drop_count: 0,
        put_egress: LatencyInfo {
            samples: 2,
            min_nsec: 20113,
            max_nsec: 35002,
            avg_nsec: 27557,
        },
        get_rtt: LatencyInfo {
            samples: 10,
            min_nsec: 61021,
            max_nsec: 142200,
            avg_nsec: 80466,
        },
        put_ack: LatencyInfo::default(),
        sent: MsgCounts {
            put: 2,
            get: 10,
            ..MsgCounts::default()
        },
        received: MsgCounts {
            get: 10,
            reply: 10,
            ack: 2,
            ..MsgCounts::default()
        },
        dropped: MsgCounts::default(),
        health: HealthInfo {
            value: 1000,
            ..HealthInfo::default()
        },
        net_priority: -1,
        nid_priority: -1,
        tunables: TunablesInfo {
            peer_timeout: 180,
            peer_credits: 8,
            peer_buffer_credits: 0,
            credits: 256,
        },
        lnd_tunables: vec![
            ("conns_per_peer".into(), "1".into()),
            ("timeout".into(), "49".into()),
            ("tos".into(), "-1".into()),
        ],
        dev_cpt: 0,
        cpts: vec![0, 1],
        tx_credits: 256,
        min_tx_credits: 256,
    }
}

fn sample_nets() -> Vec<NetInfo> {
    vec![
        NetInfo {
            name: "lo".into(),
            nis: vec![lo_ni()],
        },
        NetInfo {
            name: "tcp".into(),
            nis: vec![tcp_ni()],
        },
    ]
}

const LEVEL1: &str = "\
net:
-     net type: lo
      local NI(s):
      -     nid: 0@lo
            status: up
            statistics:
                  send_count: 0
                  recv_count: 0
                  drop_count: 0
                  put_egress_samples: 0
                  put_egress_min_nsec: 0
                  put_egress_max_nsec: 0
                  put_egress_avg_nsec: 0
                  get_rtt_samples: 0
                  get_rtt_min_nsec: 0
                  get_rtt_max_nsec: 0
                  get_rtt_avg_nsec: 0
                  put_ack_samples: 0
                  put_ack_min_nsec: 0
                  put_ack_max_nsec: 0
                  put_ack_avg_nsec: 0
            tunables:
                  peer_timeout: 0
                  peer_credits: 0
                  peer_buffer_credits: 0
                  credits: 0
            dev cpt: -1
            CPT: \"[0,1]\"
-     net type: tcp
      local NI(s):
      -     nid: 192.168.122.10@tcp
            status: up
            interfaces:
                  0: eth0
            statistics:
                  send_count: 12
                  recv_count: 12
                  drop_count: 0
                  put_egress_samples: 2
                  put_egress_min_nsec: 20113
                  put_egress_max_nsec: 35002
                  put_egress_avg_nsec: 27557
                  get_rtt_samples: 10
                  get_rtt_min_nsec: 61021
                  get_rtt_max_nsec: 142200
                  get_rtt_avg_nsec: 80466
                  put_ack_samples: 0
                  put_ack_min_nsec: 0
                  put_ack_max_nsec: 0
                  put_ack_avg_nsec: 0
            tunables:
                  peer_timeout: 180
                  peer_credits: 8
                  peer_buffer_credits: 0
                  credits: 256
            lnd tunables:
                  conns_per_peer: 1
                  timeout: 49
                  tos: -1
            dev cpt: 0
            CPT: \"[0,1]\"
";

const LEVEL2_TCP_EXTRA: &str = "            sent_stats:
                  put: 2
                  get: 10
                  reply: 0
                  ack: 0
                  hello: 0
            received_stats:
                  put: 0
                  get: 10
                  reply: 10
                  ack: 2
                  hello: 0
            dropped_stats:
                  put: 0
                  get: 0
                  reply: 0
                  ack: 0
                  hello: 0
            health stats:
                  fatal_error: 0
                  health value: 1000
                  interrupts: 0
                  dropped: 0
                  aborted: 0
                  no route: 0
                  timeouts: 0
                  error: 0
                  ping_count: 0
                  next_ping: 0
";

#[test]
fn net_show_level_0() {
    let want = "\
net:
-     net type: lo
      local NI(s):
      -     nid: 0@lo
            status: up
-     net type: tcp
      local NI(s):
      -     nid: 192.168.122.10@tcp
            status: up
            interfaces:
                  0: eth0
";
    assert_eq!(net_show(&sample_nets(), 0, &[]), want);
}

#[test]
fn net_show_level_1_is_the_spec_sample() {
    assert_eq!(net_show(&sample_nets(), 1, &[]), LEVEL1);
}

#[test]
fn net_show_level_2_adds_stats_after_statistics() {
    // Level 2 = the level-1 sample with the four blocks after `statistics`.
    let lo_extra = LEVEL2_TCP_EXTRA
        .replace("put: 2\n", "put: 0\n")
        .replace("get: 10\n", "get: 0\n")
        .replace("reply: 10\n", "reply: 0\n")
        .replace("ack: 2\n", "ack: 0\n");
    let anchor = "                  put_ack_avg_nsec: 0\n";
    let mut parts = LEVEL1.split(anchor);
    let want = format!(
        "{}{anchor}{lo_extra}{}{anchor}{LEVEL2_TCP_EXTRA}{}",
        parts.next().expect("lo part"),
        parts.next().expect("tcp part"),
        parts.next().expect("tail"),
    );
    let out = net_show(&sample_nets(), 2, &[]);
    assert_eq!(out, want);
    assert_eq!(net_show(&sample_nets(), 3, &[]), out, "level 3 = level 2");
}

#[test]
fn net_show_level_4_inserts_udsp_info_after_statistics() {
    let out = net_show(&sample_nets(), 4, &[]);
    let want = "                  put_ack_avg_nsec: 0
            udsp info:
                  net priority: -1
                  nid priority: -1
            sent_stats:
";
    assert_eq!(out.matches(want).count(), 2, "{out}");
    assert_eq!(net_show(&sample_nets(), 9, &[]), out, "levels above 4 = 4");
}

#[test]
fn net_show_down_ni_and_two_interfaces() {
    let mut ni = tcp_ni();
    ni.up = false;
    ni.interfaces = vec!["test1pg".into()];
    ni.nid = nid("10.1.2.3@tcp");
    let nets = vec![NetInfo {
        name: "tcp".into(),
        nis: vec![tcp_ni(), ni],
    }];
    let out = net_show(&nets, 0, &[]);
    assert!(out.ends_with(
        "      -     nid: 10.1.2.3@tcp\n            status: down\n            interfaces:\n                  0: test1pg\n"
    ));
}

#[test]
fn ping_success_and_failure() {
    let outcomes = vec![
        PingOutcome {
            target: nid("192.168.122.11@tcp"),
            result: Ok(PingInfo {
                primary_nid: nid("192.168.122.11@tcp"),
                pid: 12345,
                multi_rail: true,
                nids: vec![
                    lnd_api::Nid::LO_0,
                    nid("192.168.122.11@tcp"),
                    nid("192.168.122.11@tcp1"),
                ],
            }),
        },
        PingOutcome {
            target: nid("10.9.9.9@tcp"),
            result: Err(ErrorReply {
                errno: 110,
                message: "ping 10.9.9.9@tcp timed out".into(),
            }),
        },
    ];
    let (out, failed) = ping(&outcomes, &[]);
    assert!(failed);
    assert_eq!(
        out,
        "\
ping:
- primary nid: 192.168.122.11@tcp
  Multi-Rail: true
  peer_ni:
  - nid: 192.168.122.11@tcp
  - nid: 192.168.122.11@tcp1
manage:
- ping:
  errno: -110
  descr: 'failed to ping 10.9.9.9@tcp: Connection timed out'
"
    );
    let (out, failed) = ping(&outcomes[..1], &[]);
    assert!(!failed);
    assert!(!out.contains("manage"));
}

#[test]
fn nl_error_shape() {
    assert_eq!(
        nl_error("add", "net", 22, "cannot parse net '<255:65535>'"),
        "---\nadd:\n-     net:\n      errno: -22\n      descr: ! \"cannot parse net '<255:65535>'\"\n...\n"
    );
}

#[test]
fn cy_error_shape() {
    assert_eq!(
        cy_error(
            "ni",
            "add",
            -1,
            "invalid conns-per-peer value (valid range 0-127)"
        ),
        "ni:\n    - add:\n          errno: -1\n          descr: invalid conns-per-peer value (valid range 0-127)\n"
    );
}

#[test]
fn stats_sample() {
    let s = StatsInfo {
        msgs_max: 3,
        send_count: 110,
        recv_count: 110,
        send_length: 5280,
        recv_length: 5280,
        ..StatsInfo::default()
    };
    let want = "\
statistics:
    msgs_alloc: 0
    msgs_max: 3
    rst_alloc: 0
    errors: 0
    send_count: 110
    resend_count: 0
    response_timeout_count: 0
    local_interrupt_count: 0
    local_dropped_count: 0
    local_aborted_count: 0
    local_no_route_count: 0
    local_timeout_count: 0
    local_error_count: 0
    remote_dropped_count: 0
    remote_error_count: 0
    remote_timeout_count: 0
    network_timeout_count: 0
    failed_resends: 0
    successful_resends: 0
    recv_count: 110
    route_count: 0
    drop_count: 0
    send_length: 5280
    recv_length: 5280
    route_length: 0
    drop_length: 0
";
    assert_eq!(stats(&s), want);
}

#[test]
fn plugin_show_shape() {
    let p = PluginInfo {
        name: "socklnd".into(),
        version: "0.1.0".into(),
        abi_version: "1.0.0".into(),
        net_types: vec!["tcp".into()],
        path: Some("/usr/lib64/lnet/plugins/libsocklnd.so".into()),
        builtin: false,
        state: "active".into(),
        nis: vec![
            nid("10.0.0.1@tcp"),
            nid("10.0.0.1@tcp1"),
            nid("10.0.0.2@tcp1"),
        ],
    };
    assert_eq!(
        plugin_show(std::slice::from_ref(&p), false, &[]),
        "\
plugin:
-     name: socklnd
      lnd: tcp
      path: /usr/lib64/lnet/plugins/libsocklnd.so
      builtin: false
      state: active
      nets: [ tcp, tcp1 ]
"
    );
    let lo = PluginInfo {
        name: "lo".into(),
        version: "0.1.0".into(),
        abi_version: "1.0.0".into(),
        net_types: vec!["lo".into()],
        path: None,
        builtin: true,
        state: "active".into(),
        nis: vec![lnd_api::Nid::LO_0],
    };
    let mut gone = p.clone();
    gone.state = "inactive".into();
    gone.nis.clear();
    assert_eq!(
        plugin_show(&[lo, gone], true, &[]),
        "\
plugin:
-     name: lo
      version: 0.1.0
      abi version: 1.0.0
      lnd: lo
      builtin: true
      state: active
      nets: [ lo ]
      NIs: [ 0@lo ]
-     name: socklnd
      version: 0.1.0
      abi version: 1.0.0
      lnd: tcp
      path: /usr/lib64/lnet/plugins/libsocklnd.so
      builtin: false
      state: inactive
      nets: []
      NIs: []
      note: unloaded; its code stays mapped until lnetd exits
"
    );
    assert_eq!(plugin_show(&[], true, &[]), "");
}

#[test]
fn plugin_net_types_print_by_name() {
    let vnd = lnd_api::NetId::new(0xF0, 2);
    let mut ni = lo_ni();
    ni.nid = lnd_api::Nid::new4(vnd, 7);
    let nets = vec![NetInfo {
        name: "vnd2".into(),
        nis: vec![ni],
    }];
    let extra = vec![("vnd".to_string(), 0xF0)];
    let out = net_show(&nets, 0, &extra);
    assert!(out.contains("      -     nid: 7@vnd2\n"), "{out}");
    let out = net_show(&nets, 0, &[]);
    assert!(out.contains("nid: 7@<240:2>"), "{out}");
}

/// `global show` of a node with every tunable at its default (also the
/// tail of an export).
const GLOBAL_DEFAULTS: &str = "global:
    numa_range: 0
    max_interfaces: 4096
    discovery: 1
    drop_asym_route: 0
    retry_count: 2
    transaction_timeout: 150
    health_sensitivity: 100
    recovery_interval: 1
    router_sensitivity: 100
    lnd_timeout: 49
    response_tracking: 3
    recovery_limit: 0
    max_recovery_ping_interval: 900
";

#[test]
fn global_show_defaults_golden() {
    assert_eq!(global(&GlobalInfo::default()), GLOBAL_DEFAULTS);
}

#[test]
fn export_backup_golden() {
    let mut ni = tcp_ni();
    ni.lnd_tunables = vec![
        ("conns_per_peer".into(), "1".into()),
        ("timeout".into(), "49".into()),
        ("tos".into(), "-1".into()),
    ];
    let nets = vec![
        NetInfo {
            name: "lo".into(),
            nis: vec![lo_ni()],
        },
        NetInfo {
            name: "tcp".into(),
            nis: vec![ni],
        },
    ];
    let e = Export {
        net: net_backup(&nets),
        global: GlobalInfo::default(),
        ..Export::default()
    };
    assert_eq!(
        export(&e),
        format!(
            "net:
-     net type: tcp
      local NI(s):
      -     interfaces:
                  0: eth0
            tunables:
                  peer_timeout: 180
                  peer_credits: 8
                  peer_buffer_credits: 0
                  credits: 256
            lnd tunables:
                  conns_per_peer: 1
                  tos: -1
            CPT: \"[0,1]\"
{GLOBAL_DEFAULTS}"
        )
    );
    // A freshly configured node: just the global block.
    assert!(net_backup(&nets[..1]).is_empty());
}
