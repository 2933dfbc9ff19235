//! `lctl network|net up|down`, `list_nids`, `which_nid` and `ping`: the
//! lnetctl requests behind them, upstream lctl's text around the answers.

use std::path::Path;

use liblnetconfig::errno::strerror;
use liblnetconfig::fault::rule_nid_text;
use liblnetconfig::proto::PingRequest;
use liblnetconfig::{Client, Error};

use crate::{stderr, stdout};

const EINVAL: i32 = 22;
/// Upstream parser's "print the usage" return code (exit status 4).
pub(crate) const CMD_HELP: i32 = 4;

/// The network types the daemon's plugins add (for parsing and printing).
fn net_types(socket: &Path) -> Vec<(String, u8)> {
    Client::connect(socket)
        .and_then(|mut c| c.net_types())
        .unwrap_or_default()
}

/// `network up|down|configure|unconfigure`, or `network NET` (selects the
/// net later commands of a script apply to; only checked here).
pub(crate) fn network(cmd: &str, args: &[String], socket: &Path) -> i32 {
    if args.is_empty() || args.len() > 2 {
        // Upstream's CMD_HELP: the usage on stdout, rc 4.
        stdout(&format!(
            "{}\n",
            liblnetconfig::lctl::command_help(cmd).unwrap_or_default()
        ));
        return CMD_HELP;
    }
    match args[0].as_str() {
        "down" | "unconfigure" => match Client::connect(socket).and_then(|mut c| c.unconfigure()) {
            Ok(()) => {
                stdout("LNET ready to unload\n");
                0
            }
            Err(e) => {
                let errno = e.errno();
                stdout(&format!("LNET unconfigure error {errno}: {e}\n"));
                -errno
            }
        },
        "up" | "configure" => {
            // Like a module load: the start-up networks (networks=,
            // ip2nets=) come up, as `lnetctl lnet configure --all`.
            match Client::connect(socket).and_then(|mut c| c.configure(true)) {
                Ok(()) => {
                    stdout("LNET configured\n");
                    0
                }
                Err(e) => {
                    let errno = e.errno();
                    stderr(&format!("LNET configure error {errno}: {e}\n"));
                    -errno
                }
            }
        }
        net => {
            let types = net_types(socket);
            let extra: Vec<(&str, u8)> = types.iter().map(|(n, t)| (n.as_str(), *t)).collect();
            if lnd_net_ok(net, &extra) {
                0
            } else {
                stderr(&format!("Can't parse net {net}\n"));
                -1
            }
        }
    }
}

fn lnd_net_ok(net: &str, extra: &[(&str, u8)]) -> bool {
    liblnetconfig::fault::parse_rule_nid(&format!("*@{net}"), extra).is_some()
}

/// `list_nids [all]`: the local NIDs, `0@lo` only with `all`.
pub(crate) fn list_nids(cmd: &str, args: &[String], socket: &Path) -> i32 {
    let all = args.len() == 1 && args[0] == "all";
    if args.len() > 1 {
        stderr(&format!("usage: {cmd} [all]\n"));
        return 0;
    }
    let types = net_types(socket);
    let extra: Vec<(&str, u8)> = types.iter().map(|(n, t)| (n.as_str(), *t)).collect();
    match Client::connect(socket).and_then(|mut c| c.net_show(None)) {
        Ok(nets) => {
            let mut out = String::new();
            for ni in nets.iter().flat_map(|n| &n.nis) {
                let text = rule_nid_text(ni.nid, &extra);
                if all || text != "0@lo" {
                    out.push_str(&text);
                    out.push('\n');
                }
            }
            stdout(&out);
            0
        }
        Err(e) => {
            let errno = e.errno();
            stderr(&format!("IOC_LIBCFS_GET_NI error {errno}: {e}\n"));
            -1
        }
    }
}

/// `which_nid NID...`: the nearest of the NIDs (a local NID, then one on a
/// local net, then the fewest hops through a router); ties go to the first.
pub(crate) fn which_nid(cmd: &str, args: &[String], socket: &Path) -> i32 {
    if args.is_empty() {
        stderr(&format!("usage: {cmd} NID [NID...]\n"));
        return 0;
    }
    let types = net_types(socket);
    let extra: Vec<(&str, u8)> = types.iter().map(|(n, t)| (n.as_str(), *t)).collect();
    let mut nids = Vec::new();
    for a in args {
        match liblnetconfig::fault::parse_rule_nid(a, &extra).filter(|n| !n.is_any()) {
            Some(n) if !a.starts_with('*') => nids.push((a, n)),
            _ => {
                stderr(&format!("Can't parse NID {a}\n"));
                return -1;
            }
        }
    }
    let (nets, routes) =
        match Client::connect(socket).and_then(|mut c| Ok((c.net_show(None)?, c.route_show()?))) {
            Ok(x) => x,
            Err(e) => {
                stderr(&format!("Can't get distance to {}: {e}\n", args[0]));
                return -1;
            }
        };
    let local: Vec<_> = nets.iter().flat_map(|n| &n.nis).map(|ni| ni.nid).collect();
    let mut best: Option<(u64, usize, &String)> = None;
    for (text, nid) in &nids {
        let dist = if let Some(order) = local.iter().position(|l| l == nid) {
            Some((0, order))
        } else if local.iter().any(|l| l.net() == nid.net()) {
            Some((1, 0))
        } else {
            let net = rule_nid_text(*nid, &extra);
            let net = net.rsplit('@').next().unwrap_or_default().to_string();
            routes
                .iter()
                .filter(|r| r.net == net)
                .map(|r| u64::try_from(r.hop).unwrap_or(1).max(1) + 1)
                .min()
                .map(|d| (d, 0))
        };
        if let Some((d, o)) = dist {
            if best.is_none_or(|(bd, bo, _)| d < bd || (d == bd && o < bo)) {
                best = Some((d, o, text));
            }
        }
    }
    match best {
        Some((_, _, text)) => {
            let nid = liblnetconfig::fault::parse_rule_nid(text, &extra).expect("parsed above");
            stdout(&format!("{}\n", rule_nid_text(nid, &extra)));
            0
        }
        None => {
            stderr("No reachable NID\n");
            -1
        }
    }
}

/// `ping [PID-]NID [timeout] [pid]`: the peer's NIDs as `PID-NID`, its
/// `0@lo` first; a failure is `failed to ping X: why` and -errno.
pub(crate) fn ping(cmd: &str, args: &[String], socket: &Path) -> i32 {
    let Some(target) = args.first() else {
        stderr(&format!("usage: {cmd} id [timeout (secs)]\n"));
        return -EINVAL;
    };
    let types = net_types(socket);
    let extra: Vec<(&str, u8)> = types.iter().map(|(n, t)| (n.as_str(), *t)).collect();
    // `12345-NID` (or `u12345-NID`) names a process; the PID is not used:
    // lnetd answers pings for its one LNet process.
    let nid_text = match target.split_once('-') {
        Some((pid, rest))
            if !pid.is_empty()
                && pid
                    .trim_start_matches(['u', 'U'])
                    .chars()
                    .all(|c| c.is_ascii_digit()) =>
        {
            rest
        }
        _ => target.as_str(),
    };
    let Some(nid) = liblnetconfig::fault::parse_rule_nid(nid_text, &extra)
        .filter(|n| !n.is_any() && !nid_text.starts_with('*'))
    else {
        stderr(&format!("Invalid NID argument \"{target}\"\n"));
        return -EINVAL;
    };
    let timeout_ms = match args.get(1) {
        Some(t) => {
            let secs = leading_int(t);
            if secs > 120 {
                stderr(&format!("Timeout {t} is to large\n"));
                return -EINVAL;
            }
            u64::try_from(secs).unwrap_or(0).max(1) * 1000
        }
        None => 1000,
    };
    let req = PingRequest {
        targets: vec![nid],
        source: None,
        timeout_ms: Some(timeout_ms),
    };
    let fail = |why: String, errno: i32| {
        stdout(&format!("failed to ping {target}: {why}\n"));
        -errno
    };
    match Client::connect(socket).and_then(|mut c| c.ping(req)) {
        Ok(outcomes) => match outcomes.into_iter().next().map(|o| o.result) {
            Some(Ok(info)) => {
                let mut out = format!("{}-0@lo\n", info.pid);
                for n in &info.nids {
                    out.push_str(&format!("{}-{}\n", info.pid, rule_nid_text(*n, &extra)));
                }
                stdout(&out);
                0
            }
            Some(Err(e)) => fail(strerror(e.errno), e.errno),
            None => fail(strerror(EINVAL), EINVAL),
        },
        Err(e @ Error::Daemon { .. }) => fail(e.to_string(), e.errno()),
        Err(e) => fail(e.to_string(), e.errno()),
    }
}

/// C `atol`: the leading integer, 0 when there is none.
fn leading_int(s: &str) -> i64 {
    let t = s.trim_start();
    let (neg, digits) = match t.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let n: i64 = digits
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap_or(0);
    if neg {
        -n
    } else {
        n
    }
}
