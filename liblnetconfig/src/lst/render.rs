//! Everything `lst` prints, in upstream `lst.c`'s formats (selftest.md §2,
//! §5). Each function returns the text; the ones that write to both
//! streams return an [`Out`].

use super::stat::{Spread, StatResult};
use super::{
    LstBatch, LstDetail, LstGroup, LstNode, LstNodeState, LstSession, LstTestSpec, LST_BATCH_IDLE,
    LST_BATCH_RUNNING, LST_PID,
};
use crate::errno::strerror;
use lnd_api::Nid;

/// Text for standard output and standard error.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Out {
    /// For stdout.
    pub out: String,
    /// For stderr.
    pub err: String,
}

/// The title of node count tables.
pub const NODES_TITLE: &str = "\tACTIVE\tBUSY\tDOWN\tUNKNOWN\tTOTAL\n";

fn id_text(nid: &Nid) -> String {
    format!("{LST_PID}-{nid}")
}

/// `strerror` of a positive errno, with upstream's wording for the errnos
/// selftest adds.
pub fn errno_text(errno: i32) -> String {
    match errno.abs() {
        74 => "Bad message".to_string(),
        108 => "Cannot send after transport endpoint shutdown".to_string(),
        n => strerror(n),
    }
}

/// `new_session`'s line.
pub fn new_session(name: &str, features: u32, timeout: u32, force: bool) -> String {
    format!(
        "SESSION: {name} FEATURES: {features:x} TIMEOUT: {timeout} FORCE: {}\n",
        if force { "Yes" } else { "No" }
    )
}

/// `show_session`'s line.
pub fn show_session(s: &LstSession) -> String {
    format!(
        "{} ID: {}@{}, KEY: {} FEATURES: {:x} NODES: {}\n",
        s.name,
        s.sid.stamp as u64,
        s.sid.console_nid(),
        s.key,
        s.features,
        s.nodes
    )
}

/// Per-node failures of a transaction (`lst_print_transerr`), for stderr:
/// `OP RPC failed on ID: ERR` or `operation OP failed on ID: ERR`.
pub fn trans_errors(nodes: &[LstNode], op: &str) -> String {
    let mut s = String::new();
    for n in nodes {
        if n.rpc_errno != 0 {
            s += &format!(
                "{op} RPC failed on {}: {}\n",
                n.id_text(),
                errno_text(n.rpc_errno)
            );
        } else if n.fw_errno != 0 {
            s += &format!(
                "operation {op} failed on {}: {}\n",
                n.id_text(),
                errno_text(n.fw_errno)
            );
        }
    }
    s
}

/// Whether any node of a transaction failed.
pub fn any_failed(nodes: &[LstNode]) -> bool {
    nodes.iter().any(|n| !n.ok())
}

/// The `[RPC]` / `[FWK]` summary of a session-ending transaction (`what`:
/// "session" for `end_session`, "end session" for `del_group`), for stderr.
pub fn session_rpc_errors(nodes: &[LstNode], what: &str) -> String {
    let mut s = String::new();
    let rpc: Vec<&LstNode> = nodes.iter().filter(|n| n.rpc_errno != 0).collect();
    if let Some(first) = rpc.first() {
        s += &format!(
            "[RPC] Failed to send {} {what} RPCs: {}\n",
            rpc.len(),
            errno_text(first.rpc_errno)
        );
    }
    let fwk: Vec<&LstNode> = nodes
        .iter()
        .filter(|n| n.rpc_errno == 0 && n.fw_errno != 0)
        .collect();
    if let Some(first) = fwk.first() {
        s += &format!(
            "[FWK] Failed to end session on {} nodes: {}\n",
            fwk.len(),
            errno_text(first.fw_errno)
        );
    }
    s
}

/// `ping`'s lines: `\t12345-NID: State [session: NAME id: NID]`.
pub fn ping(nodes: &[LstNode]) -> String {
    let mut s = String::new();
    for n in nodes {
        let session = match n.state {
            LstNodeState::Active | LstNodeState::Busy => match (&n.detail, n.rpc_errno) {
                (LstDetail::Session { name, .. }, 0) => name.as_str(),
                _ => "Unknown",
            },
            _ => "<NULL>",
        };
        s += &format!(
            "\t{}: {} [session: {session} id: {}]\n",
            n.id_text(),
            n.state.name(),
            n.sid.console_nid()
        );
    }
    s
}

/// Names as `list_group` / `list_batch` list them without arguments.
pub fn names<'a>(names: impl IntoIterator<Item = &'a str>, what: &str) -> String {
    let mut s = String::new();
    let mut n = 0;
    for (i, name) in names.into_iter().enumerate() {
        s += &format!("{}) {name}\n", i + 1);
        n = i + 1;
    }
    s += &format!("Total {n} {what}\n");
    s
}

/// Counts by state: active, busy, down, unknown, total.
pub fn counts<'a>(states: impl IntoIterator<Item = &'a LstNodeState>) -> [usize; 5] {
    let mut c = [0usize; 5];
    for st in states {
        let i = match st {
            LstNodeState::Active => 0,
            LstNodeState::Busy => 1,
            LstNodeState::Down => 2,
            LstNodeState::Unknown => 3,
        };
        c[i] += 1;
        c[4] += 1;
    }
    c
}

fn count_row(c: [usize; 5]) -> String {
    format!("\t{}\t{}\t{}\t{}\t{}", c[0], c[1], c[2], c[3], c[4])
}

/// One row of `list_group`'s count table.
pub fn group_row(g: &LstGroup) -> String {
    format!(
        "{}\t{}\n",
        count_row(counts(g.nodes.iter().map(|n| &n.state))),
        g.name
    )
}

/// `list_group` with state flags: the group's nodes whose state bit is in
/// `mask` (all with `--all`).
pub fn group_verbose(g: &LstGroup, mask: u32) -> String {
    let mut s = format!("Group [ {} ]\n", g.name);
    if g.nodes.is_empty() {
        s += &format!("No nodes found [ {} ]\n", g.name);
        return s;
    }
    let mut c = 0;
    for n in g.nodes.iter().filter(|n| n.state.bit() & mask != 0) {
        s += &format!("\t{}: {}\n", id_text(&n.nid), n.state.name());
        c += 1;
    }
    s += &format!("Total {c} nodes [ {} ]\n", g.name);
    s
}

/// The nodes of a test's (or batch's) client or server groups, each once,
/// with their states.
pub fn test_nodes<'a>(
    tests: impl IntoIterator<Item = &'a LstTestSpec>,
    groups: &'a [LstGroup],
    server: bool,
) -> Vec<(Nid, LstNodeState)> {
    let mut out: Vec<(Nid, LstNodeState)> = Vec::new();
    for t in tests {
        let name = if server { &t.to } else { &t.from };
        if let Some(g) = groups.iter().find(|g| g.name == *name) {
            for n in &g.nodes {
                if !out.iter().any(|(id, _)| *id == n.nid) {
                    out.push((n.nid, n.state));
                }
            }
        }
    }
    out
}

fn client_server_rows(tests: &[&LstTestSpec], groups: &[LstGroup]) -> String {
    let cli = test_nodes(tests.iter().copied(), groups, false);
    let srv = test_nodes(tests.iter().copied(), groups, true);
    format!(
        "{NODES_TITLE}client{}\nserver{}\n",
        count_row(counts(cli.iter().map(|(_, s)| s))),
        count_row(counts(srv.iter().map(|(_, s)| s)))
    )
}

/// `list_batch BATCH [--test I]` without state flags: the batch line (or the
/// test line) and client/server count tables, then each following test.
pub fn batch_summary(b: &LstBatch, test: u32, groups: &[LstGroup]) -> String {
    let mut s = String::new();
    let from = if test == 0 {
        let state = if b.running {
            LST_BATCH_RUNNING
        } else {
            LST_BATCH_IDLE
        };
        s += &format!(
            "Batch: {} Tests: {} State: {state}\n",
            b.name,
            b.tests.len()
        );
        let all: Vec<&LstTestSpec> = b.tests.iter().collect();
        s += &client_server_rows(&all, groups);
        1
    } else {
        test
    };
    for (i, t) in b.tests.iter().enumerate().skip(from as usize - 1) {
        s += &format!(
            "\tTest {}({}) (loop: {}, concurrency: {})\n",
            i + 1,
            t.kind.name(),
            t.loop_count,
            t.concurrency
        );
        s += &client_server_rows(&[t], groups);
        if test != 0 {
            break;
        }
    }
    s
}

/// `list_batch` with `--active` / `--invalid` / `--all`: the nodes.
pub fn batch_nodes(nodes: &[(Nid, LstNodeState)], active: bool, invalid: bool) -> String {
    let mut s = String::new();
    let mut c = 0;
    for (nid, st) in nodes {
        let show = if *st == LstNodeState::Active {
            active
        } else {
            invalid
        };
        if show {
            s += &format!("\t{}: {}\n", id_text(nid), st.name());
            c += 1;
        }
    }
    s += &format!("Total {c} nodes\n");
    s
}

/// Query totals: (rpc failures, running, idle, framework failures).
pub fn query_counts(nodes: &[LstNode]) -> (usize, usize, usize, usize) {
    let (mut rpc, mut run, mut idle, mut fail) = (0, 0, 0, 0);
    for n in nodes {
        if n.rpc_errno != 0 {
            rpc += 1;
        } else if n.fw_errno != 0 {
            fail += 1;
        } else if matches!(n.detail, LstDetail::Batch { active } if active > 0) {
            run += 1;
        } else {
            idle += 1;
        }
    }
    (rpc, run, idle, fail)
}

/// One `query` line: `B [I] is running` / `is stopped` /
/// `stopped: a , running: b, failed: c`, after `x of y nodes are unknown, `.
pub fn query_summary(batch: &str, test: u32, nodes: &[LstNode]) -> String {
    let (rpc, run, idle, fail) = query_counts(nodes);
    let mut s = format!("{batch} [{test}] ");
    if rpc != 0 {
        s += &format!("{rpc} of {} nodes are unknown, ", nodes.len());
    }
    if rpc == 0 && run == 0 && fail == 0 {
        s += "is stopped\n";
    } else if rpc == 0 && idle == 0 && fail == 0 {
        s += "is running\n";
    } else {
        s += &format!("stopped: {idle} , running: {run}, failed: {fail}\n");
    }
    s
}

/// `query` with `--active` / `--idle` / `--error` / `--all`: one line per
/// node, `12345-NID [State]: Running|Idle|ERR`.
pub fn query_verbose(nodes: &[LstNode], active: bool, idle: bool, error: bool) -> String {
    let mut s = String::new();
    for n in nodes {
        let running = matches!(n.detail, LstDetail::Batch { active } if active > 0);
        if (!running && active) || (running && idle) || (n.fw_errno == 0 && error) {
            continue;
        }
        let what = if n.rpc_errno != 0 {
            errno_text(n.rpc_errno)
        } else if n.fw_errno != 0 {
            errno_text(n.fw_errno)
        } else if running {
            "Running".to_string()
        } else {
            "Idle".to_string()
        };
        s += &format!("{} [{}]: {what}\n", n.id_text(), n.state.name());
    }
    s
}

/// Which tables and columns `stat` prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatView {
    /// `--bw` / `--rate`: 1 bandwidth only, 2 rates only, else both.
    pub bwrt: u8,
    /// `--read` / `--write`: 1 receive only, 2 send only, else both.
    pub rdwr: u8,
    /// Columns: bit 0 avg, bit 1 min, bit 2 max.
    pub columns: u8,
    /// `--mbs`.
    pub mbs: bool,
}

impl Default for StatView {
    fn default() -> Self {
        StatView {
            bwrt: 0,
            rdwr: 0,
            columns: 7,
            mbs: false,
        }
    }
}

/// One `stat` block for target `name` (selftest.md §5): `Failed to stat on
/// N nodes` first when some failed, then the tables; nothing for the
/// first sample (no previous one).
pub fn stat(name: &str, r: &StatResult, v: StatView) -> Out {
    let mut o = Out::default();
    if r.changed {
        o.err += "Group is changed, re-run stat\n";
    }
    if r.failed > 0 {
        o.out += &format!("Failed to stat on {} nodes\n", r.failed);
    }
    if r.nodes == 0 {
        return o;
    }
    let units = if v.mbs { "MB/s  " } else { "MiB/s " };
    let tables: &[bool] = match v.bwrt {
        1 => &[true],
        2 => &[false],
        _ => &[false, true],
    };
    let dirs: &[bool] = match v.rdwr {
        1 => &[false],
        2 => &[true],
        _ => &[false, true],
    };
    for &bw in tables {
        o.out += &format!(
            "[LNet {} of {name}]\n",
            if bw { "Bandwidth" } else { "Rates" }
        );
        for &send in dirs {
            let sp: &Spread = match (bw, send) {
                (false, false) => &r.recv_rate,
                (false, true) => &r.send_rate,
                (true, false) => &r.recv_bw,
                (true, true) => &r.send_bw,
            };
            o.out += if send { "[W] " } else { "[R] " };
            let cols = [("Avg", sp.avg, 1u8), ("Min", sp.min, 2), ("Max", sp.max, 4)];
            for (label, val, bit) in cols {
                if v.columns & bit == 0 {
                    continue;
                }
                let val = f64::from(val);
                if bw {
                    o.out += &format!("{label}: {val:<8.2} {units}");
                } else if bit == 4 {
                    o.out += &format!("{label}: {val:<8.0} RPC/s");
                } else {
                    o.out += &format!("{label}: {val:<8.0} RPC/s ");
                }
            }
            o.out += "\n";
        }
    }
    o
}

/// `show_error` for one target: `NAME:` then, on stderr, the nodes with
/// errors, then `Total N error nodes in NAME`. `show_rpc` is false with
/// `--session`.
pub fn show_error(name: &str, nodes: &[LstNode], show_rpc: bool) -> Out {
    let mut o = Out {
        out: format!("{name}:\n"),
        err: String::new(),
    };
    let mut ecount = 0;
    for n in nodes {
        if n.rpc_errno != 0 {
            ecount += 1;
            o.err += &format!("RPC failure, can't show error on {}\n", n.id_text());
            continue;
        }
        if n.fw_errno != 0 {
            ecount += 1;
            o.err += &format!("Framework failure, can't show error on {}\n", n.id_text());
            continue;
        }
        let Some(c) = n.counters() else { continue };
        let test_errors = c.fw.brw_errors != 0 || c.fw.ping_errors != 0;
        if !test_errors && (c.rpc.errors == 0 || !show_rpc) {
            continue;
        }
        ecount += 1;
        o.err += &format!(
            "{}: [Session {} brw errors, {} ping errors]{}",
            n.id_text(),
            c.fw.brw_errors,
            c.fw.ping_errors,
            if show_rpc { ' ' } else { '\n' }
        );
        if show_rpc {
            o.err += &format!(
                "[RPC: {} errors, {} dropped, {} expired]\n",
                c.rpc.errors, c.rpc.rpcs_dropped, c.rpc.rpcs_expired
            );
        }
    }
    o.out += &format!("Total {ecount} error nodes in {name}\n");
    o
}

#[cfg(test)]
mod tests {
    use super::super::stat::compute;
    use super::super::{
        LstCounters, LstFwCounters, LstGroupNode, LstLnetCounters, LstRpcCounters, LstSid,
        LstTestKind,
    };
    use super::*;

    fn nid(s: &str) -> Nid {
        s.parse().expect("nid")
    }

    fn entry(ip: &str, state: LstNodeState, rpc: i32, fw: i32, detail: LstDetail) -> LstNode {
        LstNode {
            nid: nid(ip),
            state,
            rpc_errno: rpc,
            fw_errno: fw,
            sid: if state == LstNodeState::Active {
                LstSid {
                    nid: nid("192.168.1.1@tcp").to_nid4().expect("nid4"),
                    stamp: 5,
                }
            } else {
                LstSid::NONE
            },
            detail,
        }
    }

    #[test]
    fn session_lines() {
        assert_eq!(
            new_session("rw_test", 1, 300, false),
            "SESSION: rw_test FEATURES: 1 TIMEOUT: 300 FORCE: No\n"
        );
        let s = LstSession {
            name: "rw".into(),
            sid: LstSid {
                nid: nid("192.168.1.1@tcp").to_nid4().expect("nid4"),
                stamp: 1_700_000_000_123,
            },
            key: 4321,
            features: 1,
            timeout: 300,
            force: true,
            nodes: 6,
        };
        assert_eq!(
            show_session(&s),
            "rw ID: 1700000000123@192.168.1.1@tcp, KEY: 4321 FEATURES: 1 NODES: 6\n"
        );
    }

    #[test]
    fn transaction_errors_and_ping() {
        let nodes = vec![
            entry("10.0.0.1@tcp", LstNodeState::Active, 0, 0, LstDetail::None),
            entry("10.0.0.2@tcp", LstNodeState::Down, 110, 0, LstDetail::None),
            entry("10.0.0.3@tcp", LstNodeState::Busy, 0, 16, LstDetail::None),
        ];
        assert_eq!(
            trans_errors(&nodes, "create session"),
            "create session RPC failed on 12345-10.0.0.2@tcp: Connection timed out\n\
             operation create session failed on 12345-10.0.0.3@tcp: Device or resource busy\n"
        );
        assert!(any_failed(&nodes));
        assert_eq!(
            session_rpc_errors(&nodes, "session"),
            "[RPC] Failed to send 1 session RPCs: Connection timed out\n\
             [FWK] Failed to end session on 1 nodes: Device or resource busy\n"
        );
        let sess = |n: &str| LstDetail::Session {
            name: n.into(),
            timeout: 100,
        };
        let pinged = vec![
            entry("10.0.0.1@tcp", LstNodeState::Active, 0, 0, sess("rw")),
            entry("10.0.0.2@tcp", LstNodeState::Down, 110, 0, LstDetail::None),
            entry("10.0.0.3@tcp", LstNodeState::Unknown, 0, 0, sess("")),
        ];
        assert_eq!(
            ping(&pinged),
            "\t12345-10.0.0.1@tcp: Active [session: rw id: 192.168.1.1@tcp]\n\
             \t12345-10.0.0.2@tcp: Down [session: <NULL> id: <?>]\n\
             \t12345-10.0.0.3@tcp: Unknown [session: <NULL> id: <?>]\n"
        );
    }

    fn groups() -> Vec<LstGroup> {
        let gn = |s: &str, st| LstGroupNode {
            nid: nid(s),
            state: st,
        };
        vec![
            LstGroup {
                name: "clients".into(),
                nodes: vec![
                    gn("10.0.0.1@tcp", LstNodeState::Active),
                    gn("10.0.0.2@tcp", LstNodeState::Down),
                ],
            },
            LstGroup {
                name: "servers".into(),
                nodes: vec![gn("10.0.0.3@tcp", LstNodeState::Active)],
            },
            LstGroup {
                name: "empty".into(),
                nodes: vec![],
            },
        ]
    }

    #[test]
    fn group_listings() {
        let g = groups();
        assert_eq!(
            names(g.iter().map(|g| g.name.as_str()), "groups"),
            "1) clients\n2) servers\n3) empty\nTotal 3 groups\n"
        );
        assert_eq!(names([], "batches"), "Total 0 batches\n");
        assert_eq!(
            format!("{NODES_TITLE}{}", group_row(&g[0])),
            "\tACTIVE\tBUSY\tDOWN\tUNKNOWN\tTOTAL\n\t1\t0\t1\t0\t2\tclients\n"
        );
        assert_eq!(
            group_verbose(&g[0], 0xF),
            "Group [ clients ]\n\t12345-10.0.0.1@tcp: Active\n\t12345-10.0.0.2@tcp: Down\n\
             Total 2 nodes [ clients ]\n"
        );
        assert_eq!(
            group_verbose(&g[0], LstNodeState::Down.bit()),
            "Group [ clients ]\n\t12345-10.0.0.2@tcp: Down\nTotal 1 nodes [ clients ]\n"
        );
        assert_eq!(
            group_verbose(&g[2], 0xF),
            "Group [ empty ]\nNo nodes found [ empty ]\n"
        );
    }

    #[test]
    fn batch_listings() {
        let g = groups();
        let t = |kind, conc| LstTestSpec {
            batch: "bulk".into(),
            loop_count: -1,
            concurrency: conc,
            dist: 1,
            span: 1,
            from: "clients".into(),
            to: "servers".into(),
            kind,
        };
        let b = LstBatch {
            name: "bulk".into(),
            running: true,
            tests: vec![
                t(
                    LstTestKind::Brw {
                        write: true,
                        size: 1 << 20,
                        check: 1,
                        offset: 0,
                    },
                    8,
                ),
                t(LstTestKind::Ping, 2),
            ],
        };
        let rows = "\tACTIVE\tBUSY\tDOWN\tUNKNOWN\tTOTAL\n\
                    client\t1\t0\t1\t0\t2\nserver\t1\t0\t0\t0\t1\n";
        assert_eq!(
            batch_summary(&b, 0, &g),
            format!(
                "Batch: bulk Tests: 2 State: 177\n{rows}\
                 \tTest 1(brw) (loop: -1, concurrency: 8)\n{rows}\
                 \tTest 2(ping) (loop: -1, concurrency: 2)\n{rows}"
            )
        );
        assert_eq!(
            batch_summary(&b, 2, &g),
            format!("\tTest 2(ping) (loop: -1, concurrency: 2)\n{rows}")
        );
        let cli = test_nodes(&b.tests, &g, false);
        assert_eq!(
            batch_nodes(&cli, false, true),
            "\t12345-10.0.0.2@tcp: Down\nTotal 1 nodes\n"
        );
        assert_eq!(
            batch_nodes(&cli, true, true),
            "\t12345-10.0.0.1@tcp: Active\n\t12345-10.0.0.2@tcp: Down\nTotal 2 nodes\n"
        );
    }

    #[test]
    fn query_lines() {
        let q = |active| LstDetail::Batch { active };
        let running = vec![
            entry("10.0.0.1@tcp", LstNodeState::Active, 0, 0, q(3)),
            entry("10.0.0.2@tcp", LstNodeState::Active, 0, 0, q(1)),
        ];
        assert_eq!(query_summary("bulk", 0, &running), "bulk [0] is running\n");
        let idle = vec![entry("10.0.0.1@tcp", LstNodeState::Active, 0, 0, q(0))];
        assert_eq!(query_summary("bulk", 1, &idle), "bulk [1] is stopped\n");
        let mixed = vec![
            entry("10.0.0.1@tcp", LstNodeState::Active, 0, 0, q(0)),
            entry("10.0.0.2@tcp", LstNodeState::Active, 0, 0, q(2)),
            entry("10.0.0.3@tcp", LstNodeState::Down, 110, 0, LstDetail::None),
            entry("10.0.0.4@tcp", LstNodeState::Active, 0, 2, LstDetail::None),
        ];
        assert_eq!(
            query_summary("b", 0, &mixed),
            "b [0] 1 of 4 nodes are unknown, stopped: 1 , running: 1, failed: 1\n"
        );
        assert_eq!(
            query_verbose(&mixed, false, false, false),
            "12345-10.0.0.1@tcp [Active]: Idle\n12345-10.0.0.2@tcp [Active]: Running\n\
             12345-10.0.0.3@tcp [Down]: Connection timed out\n\
             12345-10.0.0.4@tcp [Active]: No such file or directory\n"
        );
        assert_eq!(
            query_verbose(&mixed, true, false, false),
            "12345-10.0.0.2@tcp [Active]: Running\n"
        );
        assert_eq!(
            query_verbose(&mixed, false, false, true),
            "12345-10.0.0.4@tcp [Active]: No such file or directory\n"
        );
    }

    fn stat_node(ip: &str, ms: u32, c: u32, len: u64) -> LstNode {
        entry(
            ip,
            LstNodeState::Active,
            0,
            0,
            LstDetail::Stat(LstCounters {
                fw: LstFwCounters {
                    running_ms: ms,
                    ..Default::default()
                },
                rpc: LstRpcCounters::default(),
                lnet: LstLnetCounters {
                    recv_count: c,
                    send_count: c / 10,
                    recv_length: len,
                    send_length: len / 5000,
                    ..Default::default()
                },
            }),
        )
    }

    #[test]
    fn stat_blocks_are_upstreams() {
        let prev = vec![
            stat_node("10.0.0.3@tcp", 1000, 0, 0),
            stat_node("10.0.0.4@tcp", 1000, 0, 0),
        ];
        let cur = vec![
            stat_node("10.0.0.3@tcp", 3000, 6200, 3_271_557_120),
            stat_node("10.0.0.4@tcp", 3000, 6280, 3_292_528_640),
        ];
        let r = compute(&prev, &cur, false);
        let o = stat("servers", &r, StatView::default());
        assert_eq!(o.err, "");
        assert_eq!(
            o.out,
            "[LNet Rates of servers]\n\
             [R] Avg: 3120     RPC/s Min: 3100     RPC/s Max: 3140     RPC/s\n\
             [W] Avg: 312      RPC/s Min: 310      RPC/s Max: 314      RPC/s\n\
             [LNet Bandwidth of servers]\n\
             [R] Avg: 1565.00  MiB/s Min: 1560.00  MiB/s Max: 1570.00  MiB/s \n\
             [W] Avg: 0.31     MiB/s Min: 0.31     MiB/s Max: 0.31     MiB/s \n"
        );
        let o = stat(
            "servers",
            &compute(&prev, &cur, true),
            StatView {
                bwrt: 1,
                rdwr: 1,
                columns: 1,
                mbs: true,
            },
        );
        assert_eq!(
            o.out,
            "[LNet Bandwidth of servers]\n[R] Avg: 1641.02  MB/s  \n"
        );
        let o = stat(
            "c",
            &r,
            StatView {
                bwrt: 2,
                rdwr: 2,
                columns: 4,
                mbs: false,
            },
        );
        assert_eq!(o.out, "[LNet Rates of c]\n[W] Max: 314      RPC/s\n");
        // One node failed, the group changed: both are reported.
        let mut bad = cur.clone();
        bad[0].rpc_errno = 110;
        bad.push(stat_node("10.0.0.5@tcp", 3000, 0, 0));
        let o = stat("servers", &compute(&prev, &bad, false), StatView::default());
        assert_eq!(o.err, "Group is changed, re-run stat\n");
        assert!(o
            .out
            .starts_with("Failed to stat on 1 nodes\n[LNet Rates of servers]\n"));
        // Nothing to print when no node contributed.
        let o = stat(
            "x",
            &compute(&prev[..1], &bad[..1], false),
            StatView::default(),
        );
        assert_eq!(o.out, "Failed to stat on 1 nodes\n");
    }

    #[test]
    fn show_error_lists_only_nodes_with_errors() {
        let with = |brw, ping, rpc_errors| {
            LstDetail::Stat(LstCounters {
                fw: LstFwCounters {
                    brw_errors: brw,
                    ping_errors: ping,
                    ..Default::default()
                },
                rpc: LstRpcCounters {
                    errors: rpc_errors,
                    rpcs_dropped: 1,
                    rpcs_expired: 2,
                    ..Default::default()
                },
                lnet: LstLnetCounters::default(),
            })
        };
        let nodes = vec![
            entry("10.0.0.1@tcp", LstNodeState::Active, 0, 0, with(0, 0, 0)),
            entry("10.0.0.2@tcp", LstNodeState::Active, 0, 0, with(3, 0, 5)),
            entry("10.0.0.3@tcp", LstNodeState::Active, 0, 0, with(0, 0, 4)),
            entry("10.0.0.4@tcp", LstNodeState::Down, 110, 0, LstDetail::None),
        ];
        let o = show_error("clients", &nodes, true);
        assert_eq!(o.out, "clients:\nTotal 3 error nodes in clients\n");
        assert_eq!(
            o.err,
            "12345-10.0.0.2@tcp: [Session 3 brw errors, 0 ping errors] \
             [RPC: 5 errors, 1 dropped, 2 expired]\n\
             12345-10.0.0.3@tcp: [Session 0 brw errors, 0 ping errors] \
             [RPC: 4 errors, 1 dropped, 2 expired]\n\
             RPC failure, can't show error on 12345-10.0.0.4@tcp\n"
        );
        let o = show_error("clients", &nodes, false);
        assert_eq!(o.out, "clients:\nTotal 2 error nodes in clients\n");
        assert_eq!(
            o.err,
            "12345-10.0.0.2@tcp: [Session 3 brw errors, 0 ping errors]\n\
             RPC failure, can't show error on 12345-10.0.0.4@tcp\n"
        );
    }
}
