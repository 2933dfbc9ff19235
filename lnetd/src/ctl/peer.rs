//! `Op::Peer`: peers, discovery and recovery queues (lnetctl.md §2.6, §2.13,
//! §2.17) on [`Node`]'s peer methods.

use liblnetconfig::peer::{discover_outcome, PeerReply, PeerRequest};
use liblnetconfig::proto::{ErrorReply, Reply, ReplyBody};

use crate::node::{Node, NodeError};

fn err(e: NodeError) -> Reply {
    match e {
        NodeError::Failed { errno, message } => Reply::err(errno, message),
        e => Reply::err(liblnetconfig::errno::EINVAL, e.to_string()),
    }
}

fn done(r: Result<(), NodeError>) -> Reply {
    match r {
        Ok(()) => Reply::ok(ReplyBody::Peer(PeerReply::Done)),
        Err(e) => err(e),
    }
}

pub(super) fn handle(node: &Node, req: PeerRequest) -> Reply {
    match req {
        PeerRequest::Add {
            primary,
            nids,
            multi_rail,
            lock_prim,
        } => done(node.peer_add(primary, &nids, multi_rail, lock_prim)),
        PeerRequest::Del {
            primary,
            nids,
            force,
        } => done(node.peer_del(primary, &nids, force)),
        PeerRequest::Show { nid } => match node.peer_show(nid) {
            Ok(p) => Reply::ok(ReplyBody::Peer(PeerReply::Peers(p))),
            Err(e) => err(e),
        },
        PeerRequest::SetHealth { nid, value } => done(node.peer_set_health(nid, value)),
        PeerRequest::SetState { nid, state } => done(node.peer_set_state(nid, state)),
        PeerRequest::Discover { nids, force } => {
            let out = nids
                .iter()
                .map(|n| match node.discover(*n, force) {
                    Ok(p) => discover_outcome(*n, Ok(&p)),
                    Err(NodeError::Failed { errno, message }) => discover_outcome(
                        *n,
                        Err(ErrorReply {
                            errno: -errno.abs(),
                            message,
                        }),
                    ),
                    Err(e) => discover_outcome(
                        *n,
                        Err(ErrorReply {
                            errno: -liblnetconfig::errno::EINVAL,
                            message: e.to_string(),
                        }),
                    ),
                })
                .collect();
            Reply::ok(ReplyBody::Peer(PeerReply::Discover(out)))
        }
        PeerRequest::Recovery { local } => Reply::ok(ReplyBody::Peer(PeerReply::Recovery(
            node.recovery_queue(local),
        ))),
        _ => Reply::err(
            liblnetconfig::errno::EOPNOTSUPP,
            "peer request not supported by this lnetd",
        ),
    }
}
