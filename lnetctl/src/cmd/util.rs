//! `debug nidlist`, `cpt-of-nid` and `service-id` (lnetctl.md §2.17,
//! §2.18). lnetd parses and answers (lnetctl holds no LNet logic).

use std::path::Path;

use clap::Args;
use liblnetconfig::proto::{Op, ReplyBody};
use liblnetconfig::yaml::{self, Yaml};
use liblnetconfig::Error;

use crate::out;

/// `debug nidlist NIDLIST [NID]`: words as given (counted as upstream does).
#[derive(Args, Debug)]
pub(crate) struct NidlistArgs {
    #[arg(trailing_var_arg = true)]
    words: Vec<String>,
}

fn unexpected(flag: &str, object: &str) -> i32 {
    out::nl_error(flag, object, 71, "unexpected reply", out::RC_EINVAL)
}

/// Runs `debug nidlist`.
pub(crate) fn nidlist(a: &NidlistArgs, socket: &Path) -> i32 {
    let (list, nid) = match a.words.as_slice() {
        [] => {
            out::stderr("Missing nidlist argument\n");
            return out::RC_EINVAL;
        }
        [l] => (l.clone(), None),
        [l, n] => (l.clone(), Some(n.clone())),
        _ => {
            out::stderr("Too many arguments\n");
            return out::RC_EINVAL;
        }
    };
    let mut c = match super::connect(socket, "show", "nidlist") {
        Ok(c) => c,
        Err(rc) => return rc,
    };
    match c.call(Op::DebugNidlist {
        list: list.clone(),
        nid,
    }) {
        Ok(ReplyBody::Nidlist { canonical, matched }) => {
            let mut text = format!("nidlist parsed to: {canonical}\n");
            if let Some((nid, m)) = matched {
                let verb = if m { "matches" } else { "does not match" };
                text.push_str(&format!("{nid} {verb} nidlist {list}\n"));
            }
            out::stdout(&text);
            0
        }
        Ok(_) => unexpected("show", "nidlist"),
        Err(Error::Daemon { errno, message }) => {
            out::stderr(&format!("{message}\n"));
            -errno.abs()
        }
        Err(e) => out::client_error(&e, "show", "nidlist"),
    }
}

/// `debug peer --nid NID`.
#[derive(Args, Debug)]
pub(crate) struct DebugPeerArgs {
    #[arg(short = 'k', long)]
    nid: Option<String>,
}

fn debug_peer_error(errno: i32, descr: String) -> i32 {
    out::arg_error(liblnetconfig::args::ArgError::Classic {
        cmd: "debug",
        entity: "peer",
        errno,
        descr,
        rc: out::RC_EINVAL,
    })
}

/// Runs `debug peer`: lnetd logs the peer's state; nothing is printed.
pub(crate) fn debug_peer(a: &DebugPeerArgs, socket: &Path) -> i32 {
    let Some(text) = a.nid.as_deref() else {
        return debug_peer_error(-22, "--nid must be specified".into());
    };
    let mut c = match super::connect(socket, "show", "peer") {
        Ok(c) => c,
        Err(rc) => return rc,
    };
    let extra = c.net_types().unwrap_or_default();
    let names: Vec<(&str, u8)> = extra.iter().map(|(n, t)| (n.as_str(), *t)).collect();
    let Ok(nid) = liblnetconfig::peer::Nid::parse_with(text, &names) else {
        return debug_peer_error(-22, format!("\"badly formatted primary NID: {text}\""));
    };
    match c.call(Op::DebugPeer { nid }) {
        Ok(_) => 0,
        Err(Error::Daemon { errno, message }) => {
            debug_peer_error(-errno.abs(), format!("\"{message}\""))
        }
        Err(e) => out::client_error(&e, "show", "peer"),
    }
}

/// `cpt-of-nid NID...`.
#[derive(Args, Debug)]
pub(crate) struct CptOfNidArgs {
    #[arg(trailing_var_arg = true)]
    nids: Vec<String>,
}

/// The reply of `cpt-of-nid` (NL-style, indent 2).
pub(crate) fn render_cpts(cpts: &[(String, u32)]) -> String {
    let items = cpts
        .iter()
        .map(|(nid, cpt)| Yaml::pairs([("nid", Yaml::s(nid)), ("cpt", Yaml::s(cpt))]))
        .collect();
    yaml::nl(&Yaml::pairs([("cpt-of-nid", Yaml::Seq(items))]), 2)
}

/// Runs `cpt-of-nid`.
pub(crate) fn cpt_of_nid(a: &CptOfNidArgs, socket: &Path) -> i32 {
    if a.nids.is_empty() {
        out::stdout(CPT_OF_NID_HELP);
        return out::RC_EINVAL;
    }
    let mut c = match super::connect(socket, "show", "cpt-of-nid") {
        Ok(c) => c,
        Err(rc) => return rc,
    };
    match c.call(Op::CptOfNid {
        nids: a.nids.clone(),
    }) {
        Ok(ReplyBody::Cpts(cpts)) => {
            out::stdout(&render_cpts(&cpts));
            0
        }
        Ok(_) => unexpected("show", "cpt-of-nid"),
        Err(e) => out::client_error(&e, "show", "cpt-of-nid"),
    }
}

/// `cpt-of-nid`'s help (upstream's command-table text).
pub(crate) const CPT_OF_NID_HELP: &str =
    "cpt-of-nid: Calculate the CPTs associated with NIDs\n usage:\n\tlnetctl cpt-of-nid nid[ nid ...]\n";

/// `service-id`: no options.
#[derive(Args, Debug)]
pub(crate) struct ServiceIdArgs {}

/// `RDMA_PS_TCP`, the RDMA port space o2iblnd's service lives in.
const RDMA_PS_TCP: u64 = 0x0106;

/// The InfiniBand service id of o2iblnd's service `port`, as upstream prints
/// it: `(RDMA_PS_TCP << 16) + port` converted to big-endian, printed as a
/// host integer (so on x86 the bytes read reversed).
pub(crate) fn service_id(port: u16) -> u64 {
    ((RDMA_PS_TCP << 16) + u64::from(port)).to_be()
}

/// Runs `service-id`.
pub(crate) fn run_service_id(socket: &Path) -> i32 {
    let mut c = match super::connect(socket, "show", "service_id") {
        Ok(c) => c,
        Err(rc) => return rc,
    };
    match c.call(Op::ServicePort) {
        Ok(ReplyBody::ServicePort(port)) => {
            out::stdout(&format!(
                "service_id:\n    value: 0x{:x}\n",
                service_id(port)
            ));
            0
        }
        Ok(_) => unexpected("show", "service_id"),
        Err(Error::Daemon { errno, message }) => {
            let errno = errno.abs();
            out::stderr(&format!(
                "error:\n    msg: \"cannot get service port: {message} (-{errno})\"\n"
            ));
            -errno
        }
        Err(e) => out::client_error(&e, "show", "service_id"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpt_of_nid_is_nl_indent_2() {
        assert_eq!(
            render_cpts(&[
                ("192.168.122.10@tcp".into(), 0),
                ("10.0.0.1@o2ib".into(), 0)
            ]),
            "cpt-of-nid:\n- nid: 192.168.122.10@tcp\n  cpt: 0\n- nid: 10.0.0.1@o2ib\n  cpt: 0\n"
        );
    }

    #[test]
    fn service_id_of_the_default_port() {
        // 0x0106_03db (RDMA_PS_TCP, port 987) in network byte order.
        assert_eq!(service_id(987), u64::from_be(0x0000_0000_0106_03db));
        if cfg!(target_endian = "little") {
            assert_eq!(format!("0x{:x}", service_id(987)), "0xdb03060100000000");
        }
    }
}
