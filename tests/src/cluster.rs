//! Real lnetd nodes in network namespaces, joined by veth pairs, with fault
//! rules switched on and off per node or per NI through the control socket
//! (issue 14 item 5). Root only: [`Cluster::new`] panics otherwise, saying
//! so (the tests using it are `#[ignore]`d with the reason and run by
//! `scripts/test.sh` as root).
//!
//! ```no_run
//! # use lnet_tests::cluster::Cluster;
//! let mut c = Cluster::new("demo");
//! let a = c.add_node("a");
//! let b = c.add_node("b");
//! let (ia, ib) = c.link(a, b);
//! let na = c[a].net_add("tcp", &[&ia]);
//! let nb = c[b].net_add("tcp", &[&ib]);
//! // One NI of node b loses every GET it receives (lnetctl's own words).
//! c[b].fault_on(&nb[0]).drop(&["-s", "*", "-d", "*", "-r", "1", "-m", "GET"]).unwrap();
//! assert!(c[a].ping(&nb[0], 2).is_err());
//! c[b].fault().off();
//! c[a].ping(&nb[0], 5).unwrap();
//! # let _ = na;
//! ```
//!
//! * Every node is one `lnetd --foreground` in a namespace of its own
//!   ([`crate::netns::NetNs`]), guarded by [`crate::daemon::Daemon`], with
//!   its control socket in a [`crate::TempDir`] and this build's directory
//!   as plugin path (the TCP LND and lnd-fault are built on first use).
//!   Nets are configured with this build's `lnetctl`, as an admin would.
//! * [`Cluster::link`] joins two nodes with a veth pair on a /24 of its
//!   own (`10.77.<link>.1` and `.2`): two links between the same nodes
//!   give them two interfaces each (Multi-Rail).
//! * [`Node::fault`] and [`Node::fault_on`] give a [`Faults`]: rules in
//!   the words of `lnetctl fault drop|delay add` (parsed by liblnetconfig
//!   as lnetctl parses them, sent on the control socket, so the first one
//!   loads and stacks lnd-fault); `fault_on(nid)` adds `--local_nid NID`,
//!   which lnd-fault matches against the NI a message is received or sent
//!   on. [`Faults::del_drop`], [`Faults::del_delay`] and [`Faults::reset`]
//!   are `fault … del` and `reset`; [`Faults::off`] deletes every rule of
//!   the node.
//! * Names carry the process id and a per-process counter (tests of one
//!   binary run at once); dropping the cluster kills the daemons, then
//!   deletes the namespaces (and the links in them), also on panic.

use std::ops::Index;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use liblnetconfig::fault::{parse, FaultAction, FaultKind, FaultRequest};
use liblnetconfig::Client;

use crate::daemon::Daemon;
use crate::netns::{need_root, End, NetNs, Veth};
use crate::TempDir;

/// lnetd nodes in namespaces and the links between them.
pub struct Cluster {
    // Dropped in this order: daemons and namespaces, then the links (gone
    // with their namespaces already; the guards just make sure).
    nodes: Vec<Node>,
    links: Vec<Veth>,
    tag: String,
}

/// One lnetd in a namespace of its own.
pub struct Node {
    name: String,
    daemon: Daemon,
    ns: NetNs,
    // Holds the control socket; removed after the daemon is gone.
    _dir: TempDir,
}

impl Cluster {
    /// An empty cluster. Namespaces need root: when not root this panics
    /// with what to do ([`need_root`]), so a test asked to run never passes
    /// without running. `tag` (a few letters) goes into the names of
    /// namespaces and links.
    pub fn new(tag: &str) -> Cluster {
        need_root();
        static N: AtomicU32 = AtomicU32::new(0);
        let tag = format!(
            "{}{}{}",
            tag.chars().take(3).collect::<String>(),
            std::process::id() % 100_000,
            N.fetch_add(1, Ordering::Relaxed)
        );
        // lnetd, lnetctl, the TCP LND and lnd-fault of this build.
        crate::bins::lnetd();
        crate::bins::lnetctl();
        crate::bins::sock_plugin();
        crate::bins::fault_plugin();
        Cluster {
            nodes: Vec::new(),
            links: Vec::new(),
            tag,
        }
    }

    /// Starts a node (lnetd in a new namespace, `lnet configure` done, no
    /// net yet); its index.
    pub fn add_node(&mut self, name: &str) -> usize {
        let i = self.nodes.len();
        let ns = NetNs::new(&format!("lc{}n{i}", self.tag))
            .unwrap_or_else(|e| panic!("{name}: namespace: {e}"));
        let dir = TempDir::new(&format!("cluster-{name}"));
        let mut cmd = ns.command(crate::bins::lnetd());
        cmd.arg("--plugin-path")
            .arg(crate::bins::bin_dir())
            .env_remove("LNET_PLUGIN_PATH")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let daemon = Daemon::spawn(cmd, dir.socket(), &[]);
        let node = Node {
            name: name.to_string(),
            daemon,
            ns,
            _dir: dir,
        };
        node.lnetctl_ok(&["lnet", "configure"]);
        self.nodes.push(node);
        i
    }

    /// Joins nodes `a` and `b` with a veth pair on a /24 of its own
    /// (`10.77.<link>.1` on `a`, `.2` on `b`), up; the interface names on
    /// `a` and on `b`.
    pub fn link(&mut self, a: usize, b: usize) -> (String, String) {
        let k = self.links.len();
        assert!(k < 250, "at most 250 links");
        let (ia, ib) = (format!("l{}{k}a", self.tag), format!("l{}{k}b", self.tag));
        assert!(
            ia.len() <= 15,
            "interface name {ia} too long: shorten the tag"
        );
        let (ca, cb) = (format!("10.77.{k}.1/24"), format!("10.77.{k}.2/24"));
        let v = Veth::new(
            End {
                ns: &self.nodes[a].ns,
                ifname: &ia,
                cidr: &ca,
            },
            End {
                ns: &self.nodes[b].ns,
                ifname: &ib,
                cidr: &cb,
            },
        )
        .unwrap_or_else(|e| panic!("link {a}-{b}: {e}"));
        self.links.push(v);
        (ia, ib)
    }

    /// The nodes.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }
}

impl Index<usize> for Cluster {
    type Output = Node;
    fn index(&self, i: usize) -> &Node {
        &self.nodes[i]
    }
}

impl Node {
    /// Its name in messages.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its namespace.
    pub fn ns(&self) -> &NetNs {
        &self.ns
    }

    /// Its control socket.
    pub fn socket(&self) -> &Path {
        self.daemon.socket()
    }

    /// lnetd's PID.
    pub fn pid(&self) -> u32 {
        self.daemon.pid()
    }

    /// A control-socket client.
    pub fn client(&self) -> Client {
        Client::connect(self.socket())
            .unwrap_or_else(|e| panic!("{}: control socket: {e}", self.name))
    }

    /// Runs this build's `lnetctl --socket SOCKET ARGS`.
    pub fn lnetctl(&self, args: &[&str]) -> Output {
        Command::new(crate::bins::lnetctl())
            .arg("--socket")
            .arg(self.socket())
            .args(args)
            .env_remove("LNET_SOCKET")
            .output()
            .unwrap_or_else(|e| panic!("{}: cannot run lnetctl: {e}", self.name))
    }

    /// As [`Node::lnetctl`]; panics unless it succeeds; its stdout.
    #[track_caller]
    pub fn lnetctl_ok(&self, args: &[&str]) -> String {
        let o = self.lnetctl(args);
        assert!(
            o.status.success(),
            "{}: lnetctl {args:?}: {:?}\nstdout:\n{}\nstderr:\n{}",
            self.name,
            o.status,
            crate::text(&o.stdout),
            crate::text(&o.stderr)
        );
        crate::text(&o.stdout)
    }

    /// `lnetctl net add --net NET --if IF1,IF2…`; the NIDs of the node's
    /// NIs on `net` afterwards, in `net show` order.
    pub fn net_add(&self, net: &str, ifaces: &[&str]) -> Vec<String> {
        self.lnetctl_ok(&["net", "add", "--net", net, "--if", &ifaces.join(",")]);
        self.nids()
            .into_iter()
            .filter(|n| n.ends_with(&format!("@{net}")))
            .collect()
    }

    /// The NIDs of its NIs but `0@lo`, in `net show` order.
    pub fn nids(&self) -> Vec<String> {
        self.lnetctl_ok(&["net", "show"])
            .lines()
            .filter_map(|l| l.trim_start_matches([' ', '-']).strip_prefix("nid: "))
            .filter(|n| *n != "0@lo")
            .map(str::to_string)
            .collect()
    }

    /// `lnetctl set NAME VALUE`.
    pub fn set(&self, name: &str, value: &str) {
        self.lnetctl_ok(&["set", name, value]);
    }

    /// `lnetctl discover NID` (so that rules added afterwards see no
    /// discovery traffic).
    pub fn discover(&self, nid: &str) -> String {
        self.lnetctl_ok(&["discover", nid])
    }

    /// `lnetctl ping --timeout SECS NID`: its output, or what it printed
    /// when it failed.
    pub fn ping(&self, nid: &str, secs: u32) -> Result<String, String> {
        let o = self.lnetctl(&["ping", "--timeout", &secs.to_string(), nid]);
        let out = crate::text(&o.stdout);
        if o.status.success() && out.contains("primary nid:") && !out.contains("errno:") {
            Ok(out)
        } else {
            Err(format!(
                "{out}{}(status {:?})",
                crate::text(&o.stderr),
                o.status.code()
            ))
        }
    }

    /// A counter of `lnetctl stats show` (`send_count`, `resend_count`,
    /// `response_timeout_count`…).
    pub fn stat(&self, key: &str) -> u64 {
        let out = self.lnetctl_ok(&["stats", "show"]);
        yaml_u64(&out, key).unwrap_or_else(|| panic!("{}: no {key} in\n{out}", self.name))
    }

    /// A counter of NI `nid` in `lnetctl net show -v 3`: `KEY` is the first
    /// line with that key in the NI's item (`send_count`, `health value`,
    /// `dropped`…), `SECTION/KEY` the first after the `SECTION:` line
    /// (`sent_stats/get`, `received_stats/put`, `dropped_stats/get`).
    pub fn ni_stat(&self, nid: &str, key: &str) -> u64 {
        let out = self.lnetctl_ok(&["net", "show", "-v", "3"]);
        stat_of(&out, nid, key).unwrap_or_else(|e| panic!("{}: {e}", self.name))
    }

    /// A counter of peer NI `nid` in `lnetctl peer show -v 3` (`health
    /// value`, `dropped`, `error`, `sent_stats/get`…, as [`Node::ni_stat`]).
    pub fn peer_ni_stat(&self, nid: &str, key: &str) -> u64 {
        let out = self.lnetctl_ok(&["peer", "show", "-v", "3"]);
        stat_of(&out, nid, key).unwrap_or_else(|e| panic!("{}: {e}", self.name))
    }

    /// Fault rules on the whole node.
    pub fn fault(&self) -> Faults<'_> {
        Faults {
            node: self,
            local_nid: None,
        }
    }

    /// Fault rules on its NI `nid` only (`--local_nid NID`).
    pub fn fault_on<'a>(&'a self, nid: &str) -> Faults<'a> {
        Faults {
            node: self,
            local_nid: Some(nid.to_string()),
        }
    }
}

/// `KEY` or `SECTION/KEY` of the item of NI `nid` in `net show` or `peer
/// show` output.
fn stat_of(out: &str, nid: &str, key: &str) -> Result<u64, String> {
    let block = ni_block(out, nid).ok_or_else(|| format!("no NI {nid} in\n{out}"))?;
    let (part, k) = match key.split_once('/') {
        Some((section, k)) => {
            let at = block
                .find(&format!(" {section}:\n"))
                .ok_or_else(|| format!("no {section} for {nid} in\n{block}"))?;
            (&block[at..], k)
        }
        None => (block, key),
    };
    yaml_u64(part, k).ok_or_else(|| format!("no {key} for {nid} in\n{block}"))
}

/// The text of NI `nid`'s item in `net show` or `peer show` output (its
/// `- nid: NID` line up to the next NI's).
fn ni_block<'a>(out: &'a str, nid: &str) -> Option<&'a str> {
    let is_item = |l: &str, want: Option<&str>| {
        l.trim_start().starts_with('-')
            && l.trim_start_matches([' ', '-'])
                .strip_prefix("nid: ")
                .is_some_and(|n| want.is_none_or(|w| n == w))
    };
    let mut at = 0;
    let mut start = None;
    for l in out.split_inclusive('\n') {
        let line = l.trim_end();
        match start {
            None if is_item(line, Some(nid)) => start = Some(at),
            Some(s) if is_item(line, None) => return Some(&out[s..at]),
            _ => {}
        }
        at += l.len();
    }
    start.map(|s| &out[s..])
}

/// The first `key: N` (any indentation) of YAML text.
fn yaml_u64(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let l = l.trim_start_matches([' ', '-']);
        l.strip_prefix(key)?.strip_prefix(':')?.trim().parse().ok()
    })
}

/// Fault rules of one node, or of one of its NIs.
pub struct Faults<'a> {
    node: &'a Node,
    local_nid: Option<String>,
}

impl Faults<'_> {
    fn call(&self, kind: FaultKind, sub: &str, words: &[&str]) -> Result<String, String> {
        let mut w: Vec<String> = words.iter().map(|s| s.to_string()).collect();
        if sub == "add" {
            if let Some(n) = &self.local_nid {
                w.extend(["--local_nid".to_string(), n.clone()]);
            }
        }
        let mut c = self.node.client();
        let extra = c.net_types().unwrap_or_default();
        let extra: Vec<(&str, u8)> = extra.iter().map(|(n, t)| (n.as_str(), *t)).collect();
        let args = parse(kind, sub, &w, &extra)
            .map_err(|e| format!("fault {} {sub} {w:?}: {:?}", kind.name(), e.stderr))?;
        c.fault(args.request)
            .map_err(|e| format!("{}: fault {} {sub} {w:?}: {e}", self.node.name, kind.name()))
    }

    /// `fault drop add WORDS` (`-s`, `-d`, `-r`, `-i`, `-e`, `-m`…).
    pub fn drop(&self, words: &[&str]) -> Result<(), String> {
        self.call(FaultKind::Drop, "add", words).map(|_| ())
    }

    /// `fault delay add WORDS` (`-l` for the latency).
    pub fn delay(&self, words: &[&str]) -> Result<(), String> {
        self.call(FaultKind::Delay, "add", words).map(|_| ())
    }

    /// `fault drop del WORDS` (`-s NID -d NID`, or `-a`): the number of
    /// rules deleted.
    pub fn del_drop(&self, words: &[&str]) -> Result<u32, String> {
        let n = self.call(FaultKind::Drop, "del", words)?;
        Ok(n.trim().parse().unwrap_or(0))
    }

    /// `fault delay del WORDS`: held messages of the deleted rules are
    /// released at once; the number of rules deleted.
    pub fn del_delay(&self, words: &[&str]) -> Result<u32, String> {
        let n = self.call(FaultKind::Delay, "del", words)?;
        Ok(n.trim().parse().unwrap_or(0))
    }

    /// `fault drop reset` and `fault delay reset`: every rule's counters
    /// to zero (and its random targets re-armed).
    pub fn reset(&self) {
        for kind in [FaultKind::Drop, FaultKind::Delay] {
            self.call(kind, "reset", &["x"])
                .unwrap_or_else(|e| panic!("{e}"));
        }
    }

    /// Deletes every drop and delay rule of the node (held messages are
    /// released at once); deleting none is not an error here.
    pub fn off(&self) {
        let mut c = self.node.client();
        for kind in [FaultKind::Drop, FaultKind::Delay] {
            let req = FaultRequest {
                kind,
                action: FaultAction::Del {
                    src: None,
                    dst: None,
                },
            };
            match c.fault(req) {
                Ok(_) => {}
                Err(e) if e.errno() == lnd_api::errno::ENOENT => {}
                Err(e) => panic!("{}: fault {} del --all: {e}", self.node.name, kind.name()),
            }
        }
    }

    /// `fault drop show`, as lnetctl prints it.
    pub fn show_drop(&self) -> String {
        self.call(FaultKind::Drop, "show", &[])
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// `fault delay show`, as lnetctl prints it.
    pub fn show_delay(&self) -> String {
        self.call(FaultKind::Delay, "show", &[])
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// The drop rules' counters, newest first: one `(key, value)` list per
    /// rule (`ds_dropped`, `fs_count`, `fs_get`…, as `show` prints them).
    pub fn drop_rules(&self) -> Vec<RuleShow> {
        RuleShow::parse(&self.show_drop())
    }

    /// The delay rules' counters, newest first.
    pub fn delay_rules(&self) -> Vec<RuleShow> {
        RuleShow::parse(&self.show_delay())
    }
}

/// One rule of `fault … show`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RuleShow(pub Vec<(String, String)>);

impl RuleShow {
    /// Splits `show` output into rules.
    pub fn parse(text: &str) -> Vec<RuleShow> {
        let mut rules: Vec<RuleShow> = Vec::new();
        for l in text.lines() {
            if l == "fault:" {
                continue;
            }
            if l.starts_with('-') {
                rules.push(RuleShow::default());
            }
            let kv = l.trim_start_matches('-').trim();
            if let (Some(r), Some((k, v))) = (rules.last_mut(), kv.split_once(": ")) {
                r.0.push((k.to_string(), v.to_string()));
            }
        }
        rules
    }

    /// A field's text.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// A counter (`ds_dropped`, `fs_get`…); panics if it is missing.
    pub fn n(&self, key: &str) -> u64 {
        self.get(key)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no counter {key} in {self:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn show_output_splits_into_rules() {
        let r = RuleShow::parse(
            "fault:\n-     rule_type: drop\n      fa_src: <?>\n      ds_dropped: 3\n\
             -     rule_type: delay\n      ls_delayed: 1\n",
        );
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].get("fa_src"), Some("<?>"));
        assert_eq!(r[0].n("ds_dropped"), 3);
        assert_eq!(r[1].n("ls_delayed"), 1);
        assert!(RuleShow::parse("").is_empty());
    }

    #[test]
    fn counters_of_one_ni() {
        let out = "net:\n-     net type: tcp\n      local NI(s):\n      -     nid: 10.0.0.1@tcp\n\
                   \x20           statistics:\n                  send_count: 5\n\
                   \x20     -     nid: 10.0.0.2@tcp\n            statistics:\n\
                   \x20                 send_count: 7\n";
        assert_eq!(
            yaml_u64(ni_block(out, "10.0.0.2@tcp").expect("ni"), "send_count"),
            Some(7)
        );
        assert_eq!(
            yaml_u64(ni_block(out, "10.0.0.1@tcp").expect("ni"), "send_count"),
            Some(5)
        );
        assert!(ni_block(out, "10.0.0.3@tcp").is_none());
        let peers = "peer:\n-     primary nid: 10.0.0.9@tcp\n      peer ni:\n      -     nid: 10.0.0.9@tcp\n\
                     \x20           health stats:\n                  health value: 900\n";
        assert_eq!(stat_of(peers, "10.0.0.9@tcp", "health value"), Ok(900));
    }
}
