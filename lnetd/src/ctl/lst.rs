//! `lst` requests on the control socket: liblnetconfig's selftest protocol
//! types to and from the console's own ([`lnet_selftest::console`]).
//! Only translation; the console does the work ([`Node::lst`]).

use liblnetconfig::lst::{
    LstBatch, LstCounters, LstDetail, LstFwCounters, LstGroup, LstGroupNode, LstLnetCounters,
    LstNode, LstNodeState, LstReply, LstRequest, LstRpcCounters, LstSession, LstSid, LstTargets,
    LstTestKind, LstTestSpec, LstUpdate,
};
use liblnetconfig::proto::{Reply, ReplyBody};

use crate::node::Node;
use lnet_core::nid::ProcessId;
use lnet_selftest::wire::{Body, Sid};
use lnet_selftest::{
    BatchInfo, ConsoleReply, ConsoleRequest, GroupInfo, NodeEntry, NodeState, SessionInfo, Targets,
    TestSpec, TestType, UpdateAction,
};

/// Runs one `lst` request on the node's console.
pub(super) fn handle(node: &Node, req: LstRequest) -> Reply {
    match console_request(req) {
        Err(msg) => Reply::err(lnd_api::errno::EINVAL, msg),
        Ok(req) => match node.lst(req) {
            Ok(r) => Reply::ok(ReplyBody::Lst(reply(r))),
            Err(e) => super::node_err(e),
        },
    }
}

fn ids(nids: Vec<lnd_api::Nid>) -> Vec<ProcessId> {
    nids.into_iter().map(ProcessId::lustre).collect()
}

fn targets(t: LstTargets) -> Result<Targets, String> {
    Ok(match t {
        LstTargets::Session => Targets::Session,
        LstTargets::Group(g) => Targets::Group(g),
        LstTargets::Batch { name, server } => Targets::Batch { name, server },
        LstTargets::Nodes(n) => Targets::Nodes(ids(n)),
        other => return Err(format!("lst target {other:?} not supported by this lnetd")),
    })
}

fn test_spec(t: LstTestSpec) -> Result<TestSpec, String> {
    let test = match t.kind {
        LstTestKind::Ping => TestType::Ping,
        LstTestKind::Brw {
            write,
            size,
            check,
            offset,
        } => TestType::Brw {
            write,
            size,
            check,
            offset,
        },
        other => return Err(format!("lst test {other:?} not supported by this lnetd")),
    };
    Ok(TestSpec {
        batch: t.batch,
        loop_count: t.loop_count,
        concurrency: t.concurrency,
        dist: t.dist,
        span: t.span,
        from: t.from,
        to: t.to,
        test,
    })
}

/// The console's request for a protocol request.
pub(super) fn console_request(r: LstRequest) -> Result<ConsoleRequest, String> {
    Ok(match r {
        LstRequest::NewSession {
            key,
            name,
            timeout,
            force,
            features,
        } => ConsoleRequest::NewSession {
            key,
            name,
            timeout,
            force,
            features,
        },
        LstRequest::EndSession { key } => ConsoleRequest::EndSession { key },
        LstRequest::ShowSession => ConsoleRequest::ShowSession,
        LstRequest::AddGroup { key, name, nodes } => ConsoleRequest::AddGroup {
            key,
            name,
            nodes: ids(nodes),
        },
        LstRequest::DelGroup { key, name } => ConsoleRequest::DelGroup { key, name },
        LstRequest::UpdateGroup { key, name, action } => ConsoleRequest::UpdateGroup {
            key,
            name,
            action: match action {
                LstUpdate::Refresh => UpdateAction::Refresh,
                LstUpdate::Clean(m) => UpdateAction::Clean(m),
                LstUpdate::Remove(n) => UpdateAction::Remove(ids(n)),
                other => {
                    return Err(format!(
                        "update_group {other:?} not supported by this lnetd"
                    ))
                }
            },
        },
        LstRequest::ListGroup { key, name } => ConsoleRequest::ListGroup { key, name },
        LstRequest::Ping {
            key,
            targets: t,
            timeout,
        } => ConsoleRequest::Ping {
            key,
            targets: targets(t)?,
            timeout,
        },
        LstRequest::AddBatch { key, name } => ConsoleRequest::AddBatch { key, name },
        LstRequest::ListBatch { key, name } => ConsoleRequest::ListBatch { key, name },
        LstRequest::AddTest { key, test } => ConsoleRequest::AddTest {
            key,
            spec: test_spec(test)?,
        },
        LstRequest::Run {
            key,
            batch,
            timeout,
        } => ConsoleRequest::Run {
            key,
            batch,
            timeout,
        },
        LstRequest::Stop { key, batch, force } => ConsoleRequest::Stop { key, batch, force },
        LstRequest::Query {
            key,
            batch,
            test,
            server,
            timeout,
        } => ConsoleRequest::Query {
            key,
            batch,
            test,
            server,
            timeout,
        },
        LstRequest::Stat {
            key,
            targets: t,
            timeout,
        } => ConsoleRequest::Stat {
            key,
            targets: targets(t)?,
            timeout,
        },
        other => return Err(format!("lst request {other:?} not supported by this lnetd")),
    })
}

fn sid(s: Sid) -> LstSid {
    LstSid {
        nid: s.nid,
        stamp: s.stamp,
    }
}

fn state(s: NodeState) -> LstNodeState {
    match s {
        NodeState::Active => LstNodeState::Active,
        NodeState::Busy => LstNodeState::Busy,
        NodeState::Down => LstNodeState::Down,
        NodeState::Unknown => LstNodeState::Unknown,
    }
}

fn detail(b: Option<Body>) -> LstDetail {
    match b {
        Some(Body::MksnReply { name, timeout, .. } | Body::DebugReply { name, timeout, .. }) => {
            LstDetail::Session { name, timeout }
        }
        Some(Body::BatchReply { active, .. }) => LstDetail::Batch { active },
        Some(Body::StatReply { fw, rpc, lnet, .. }) => LstDetail::Stat(LstCounters {
            fw: LstFwCounters {
                running_ms: fw.running_ms,
                active_batches: fw.active_batches,
                zombie_sessions: fw.zombie_sessions,
                brw_errors: fw.brw_errors,
                ping_errors: fw.ping_errors,
            },
            rpc: LstRpcCounters {
                errors: rpc.errors,
                rpcs_sent: rpc.rpcs_sent,
                rpcs_rcvd: rpc.rpcs_rcvd,
                rpcs_dropped: rpc.rpcs_dropped,
                rpcs_expired: rpc.rpcs_expired,
                bulk_get: rpc.bulk_get,
                bulk_put: rpc.bulk_put,
            },
            lnet: LstLnetCounters {
                msgs_alloc: lnet.msgs_alloc,
                msgs_max: lnet.msgs_max,
                errors: lnet.errors,
                send_count: lnet.send_count,
                recv_count: lnet.recv_count,
                route_count: lnet.route_count,
                drop_count: lnet.drop_count,
                send_length: lnet.send_length,
                recv_length: lnet.recv_length,
                route_length: lnet.route_length,
                drop_length: lnet.drop_length,
            },
        }),
        _ => LstDetail::None,
    }
}

fn node_entry(e: NodeEntry) -> LstNode {
    LstNode {
        nid: e.id.nid,
        state: state(e.state),
        rpc_errno: e.rpc_errno.abs(),
        fw_errno: e.fw_errno.abs(),
        sid: sid(e.sid),
        detail: detail(e.reply),
    }
}

fn session(s: SessionInfo) -> LstSession {
    LstSession {
        name: s.name,
        sid: sid(s.sid),
        key: s.key,
        features: s.features,
        timeout: s.timeout,
        force: s.force,
        nodes: s.nodes,
    }
}

fn group(g: GroupInfo) -> LstGroup {
    LstGroup {
        name: g.name,
        nodes: g
            .nodes
            .into_iter()
            .map(|(id, st)| LstGroupNode {
                nid: id.nid,
                state: state(st),
            })
            .collect(),
    }
}

fn kind(t: TestType) -> LstTestKind {
    match t {
        TestType::Ping => LstTestKind::Ping,
        TestType::Brw {
            write,
            size,
            check,
            offset,
        } => LstTestKind::Brw {
            write,
            size,
            check,
            offset,
        },
    }
}

fn batch(b: BatchInfo) -> LstBatch {
    LstBatch {
        name: b.name,
        running: b.running,
        tests: b
            .tests
            .into_iter()
            .map(|t| LstTestSpec {
                batch: t.spec.batch,
                loop_count: t.spec.loop_count,
                concurrency: t.spec.concurrency,
                dist: t.spec.dist,
                span: t.spec.span,
                from: t.spec.from,
                to: t.spec.to,
                kind: kind(t.spec.test),
            })
            .collect(),
    }
}

/// The protocol reply for a console reply.
pub(super) fn reply(r: ConsoleReply) -> LstReply {
    match r {
        ConsoleReply::Session(s) => LstReply::Session(session(s)),
        ConsoleReply::Done => LstReply::Done,
        ConsoleReply::Nodes(n) => LstReply::Nodes(n.into_iter().map(node_entry).collect()),
        ConsoleReply::Groups(g) => LstReply::Groups(g.into_iter().map(group).collect()),
        ConsoleReply::Batches(b) => LstReply::Batches(b.into_iter().map(batch).collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lnet_selftest::wire::{LnetCountersCommon, SfwCounters};

    fn nid(s: &str) -> lnd_api::Nid {
        s.parse().expect("nid")
    }

    #[test]
    fn requests_translate() {
        let r = console_request(LstRequest::AddTest {
            key: 7,
            test: LstTestSpec {
                batch: "b".into(),
                loop_count: -1,
                concurrency: 4,
                dist: 2,
                span: 1,
                from: "c".into(),
                to: "s".into(),
                kind: LstTestKind::Brw {
                    write: true,
                    size: 1 << 20,
                    check: 2,
                    offset: 8,
                },
            },
        })
        .expect("translates");
        let ConsoleRequest::AddTest { key, spec } = r else {
            panic!("add_test")
        };
        assert_eq!(key, 7);
        assert_eq!((spec.concurrency, spec.dist, spec.span), (4, 2, 1));
        assert_eq!(
            spec.test,
            TestType::Brw {
                write: true,
                size: 1 << 20,
                check: 2,
                offset: 8
            }
        );
        let r = console_request(LstRequest::Stat {
            key: 7,
            targets: LstTargets::Nodes(vec![nid("10.0.0.1@tcp")]),
            timeout: 5,
        })
        .expect("translates");
        assert_eq!(
            r,
            ConsoleRequest::Stat {
                key: 7,
                targets: Targets::Nodes(vec![ProcessId::lustre(nid("10.0.0.1@tcp"))]),
                timeout: 5
            }
        );
    }

    #[test]
    fn replies_translate() {
        let e = NodeEntry {
            id: ProcessId::lustre(nid("10.0.0.2@tcp")),
            state: NodeState::Down,
            rpc_errno: -110,
            sid: Sid::NONE,
            fw_errno: 0,
            reply: None,
        };
        let n = node_entry(e);
        assert_eq!(n.rpc_errno, 110, "positive errnos on the wire");
        assert_eq!(n.state, LstNodeState::Down);
        assert_eq!(n.sid, LstSid::NONE);
        let d = detail(Some(Body::StatReply {
            status: 0,
            sid: Sid::NONE,
            fw: SfwCounters {
                running_ms: 5,
                ..Default::default()
            },
            rpc: Default::default(),
            lnet: LnetCountersCommon {
                recv_length: 9,
                ..Default::default()
            },
        }));
        let LstDetail::Stat(c) = d else {
            panic!("stat")
        };
        assert_eq!((c.fw.running_ms, c.lnet.recv_length), (5, 9));
        assert_eq!(
            detail(Some(Body::BatchReply {
                status: 0,
                sid: Sid::NONE,
                active: 3,
                time: 0
            })),
            LstDetail::Batch { active: 3 }
        );
    }
}
