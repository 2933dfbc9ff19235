//! `debug nidlist`, `cpt-of-nid` and `service-id` (lnetctl.md §2.17,
//! §2.18): small questions the daemon answers with its own parsers and
//! plugins.

use liblnetconfig::errno::{EINVAL, ENETDOWN, ENOENT};
use liblnetconfig::proto::{Reply, ReplyBody};
use lnd_api::Nid;
use lnet_core::nid::NidList;

use crate::node::Node;

/// lnetd runs one CPU partition (`net show` prints `CPT: "[0]"`), so every
/// NID maps to partition 0, as upstream's `lnet_cpt_of_nid()` with a
/// single partition.
const CPT_NUMBER: u32 = 1;

/// `debug nidlist LIST [NID]`: the canonical form of a server-style NID
/// range list and whether `nid` matches it. Needs no configured LNet.
pub(super) fn nidlist(node: Option<&Node>, list: &str, nid: Option<&str>) -> Reply {
    let parsed = match NidList::parse(list) {
        Ok(l) => l,
        Err(e) => return Reply::err(EINVAL, e.to_string()),
    };
    let matched = match nid {
        None => None,
        Some(text) => match parse_nid(node, text) {
            Ok(n) => Some((text.trim().to_string(), parsed.matches(&n))),
            Err(m) => return Reply::err(EINVAL, m),
        },
    };
    Reply::ok(ReplyBody::Nidlist {
        canonical: parsed.to_string(),
        matched,
    })
}

/// Parses `text` with the node's plugin net types; the error is the message.
fn parse_nid(node: Option<&Node>, text: &str) -> Result<Nid, String> {
    let extra = node.map(Node::extra_net_types).unwrap_or_default();
    let names: Vec<(&str, u8)> = extra.iter().map(|(n, t)| (n.as_str(), *t)).collect();
    Nid::parse_with(text.trim(), &names).map_err(|e| e.to_string())
}

/// `cpt-of-nid NID...`: the CPU partition of each NID; LNet must be up.
pub(super) fn cpt_of_nid(node: Option<&Node>, nids: &[String]) -> Reply {
    let Some(node) = node else {
        return Reply::err(ENETDOWN, "Network is down");
    };
    let mut out = Vec::with_capacity(nids.len());
    for text in nids {
        let nid = match parse_nid(Some(node), text) {
            Ok(n) => n,
            Err(m) => return Reply::err(EINVAL, m),
        };
        let extra = node.extra_net_types();
        let names: Vec<(&str, u8)> = extra.iter().map(|(n, t)| (n.as_str(), *t)).collect();
        out.push((nid.display_with(&names).to_string(), cpt_of(&nid)));
    }
    Reply::ok(ReplyBody::Cpts(out))
}

/// The partition of `nid` among [`CPT_NUMBER`] partitions.
fn cpt_of(_nid: &Nid) -> u32 {
    // With one partition there is nothing to hash.
    CPT_NUMBER - 1
}

/// `service-id`: the o2ib LND's `service` parameter, when an o2ib plugin is
/// loaded (upstream reads `/sys/module/ko2iblnd/parameters/service`, which
/// exists only while ko2iblnd is loaded).
pub(super) fn service_port(node: Option<&Node>) -> Reply {
    let value = node.and_then(|n| n.plugin_param_of_type("o2ib", "service"));
    match value.as_deref().map(str::trim).map(str::parse::<u16>) {
        Some(Ok(port)) => Reply::ok(ReplyBody::ServicePort(port)),
        Some(Err(_)) => Reply::err(
            EINVAL,
            format!("bad o2ib service parameter {:?}", value.unwrap_or_default()),
        ),
        None => Reply::err(ENOENT, "No such file or directory"),
    }
}

/// `debug peer --nid NID`: writes everything lnetd knows about the peer
/// owning `nid` to its log (upstream dumps it to the kernel debug log) and
/// answers nothing.
pub(super) fn peer(node: Option<&Node>, nid: Nid) -> Reply {
    let Some(node) = node else {
        return Reply::err(ENETDOWN, "LNet stack down");
    };
    match node.peer_show(Some(nid)) {
        Ok(peers) => {
            for p in peers {
                tracing::info!(
                    primary = %p.primary,
                    multi_rail = p.multi_rail,
                    state = p.state,
                    "debug peer {nid}"
                );
                for ni in &p.nis {
                    tracing::info!(primary = %p.primary, "debug peer NI {ni:?}");
                }
            }
            Reply::ok(ReplyBody::Done)
        }
        Err(crate::node::NodeError::Failed { errno, message }) => Reply::err(errno, message),
        Err(e) => Reply::err(EINVAL, e.to_string()),
    }
}
