//! Network namespaces and veth pairs as RAII guards, for tests with real
//! processes on real (virtual) links. Root only: [`is_root`] tells a test to
//! print a skip line and pass.
//!
//! Everything is done with `ip` (iproute2): `ip netns add/del`, `ip link add
//! ... type veth`, and processes start inside a namespace with `ip netns exec
//! NAME PROGRAM`, which execs the program (the child's PID is the program's,
//! so killing it by PID kills the program). Guards delete what they made on
//! drop, also when the test panics; a leftover namespace of a crashed run
//! with the same name is deleted before reuse.
//!
//! The one copy for every test crate (lnd-sock's namespace test uses it
//! too). Give every namespace and link a name with the process id in it:
//! other tests run at the same time.

use std::process::{Child, Command, Stdio};

/// Whether this process runs as root (network namespaces need it).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

/// Asked to run (`--ignored`), a root-only test runs or fails, never passes
/// silently: panics with what to do when this process is not root.
pub fn need_root() {
    assert!(
        is_root(),
        "this test needs root (it creates network namespaces or binds privileged ports): \
         run it as root, as scripts/test.sh does"
    );
}

/// Runs `ip ARGS`; the error names the command and quotes `ip`'s complaint.
pub fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip").args(args).output().map_err(|e| {
        format!(
            "cannot run ip {}: {e} (is iproute2 installed?)",
            args.join(" ")
        )
    })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// A network namespace with its loopback up, deleted on drop (with every
/// link inside it).
#[derive(Debug)]
pub struct NetNs {
    name: String,
}

impl NetNs {
    /// Creates namespace `name` (deleting a leftover of that name first).
    pub fn new(name: &str) -> Result<NetNs, String> {
        let _ = ip(&["netns", "del", name]);
        ip(&["netns", "add", name])?;
        let ns = NetNs {
            name: name.to_string(),
        };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `ip -n NAME ARGS`.
    pub fn ip(&self, args: &[&str]) -> Result<(), String> {
        let mut v = vec!["-n", self.name.as_str()];
        v.extend_from_slice(args);
        ip(&v)
    }

    /// A command that runs `program` inside the namespace.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).arg(program);
        c
    }

    /// Starts `cmd` (program, arguments, environment) inside the
    /// namespace, with its standard output and error piped.
    pub fn spawn(&self, cmd: &Command) -> std::io::Result<Child> {
        let mut c = self.command(cmd.get_program());
        c.args(cmd.get_args());
        for (k, v) in cmd.get_envs() {
            match v {
                Some(v) => c.env(k, v),
                None => c.env_remove(k),
            };
        }
        c.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.name]);
    }
}

/// One end of a veth pair: its namespace, interface name and address.
#[derive(Clone, Copy, Debug)]
pub struct End<'a> {
    /// The namespace.
    pub ns: &'a NetNs,
    /// Interface name (at most 15 bytes).
    pub ifname: &'a str,
    /// Address with prefix length, `10.1.2.1/24`.
    pub cidr: &'a str,
}

impl<'a> From<(&'a NetNs, &'a str, &'a str)> for End<'a> {
    /// `(namespace, interface name, address/prefix)`.
    fn from((ns, ifname, cidr): (&'a NetNs, &'a str, &'a str)) -> End<'a> {
        End { ns, ifname, cidr }
    }
}

impl<'a> From<(&'a NetNs, &'a String, &'a str)> for End<'a> {
    /// `(namespace, interface name, address/prefix)`.
    fn from((ns, ifname, cidr): (&'a NetNs, &'a String, &'a str)) -> End<'a> {
        End {
            ns,
            ifname: ifname.as_str(),
            cidr,
        }
    }
}

/// A veth pair with one end in each namespace, addressed and up. Deleting
/// either namespace deletes the pair; drop also deletes it directly.
#[derive(Debug)]
pub struct Veth {
    a: String,
    ns_a: String,
}

impl Veth {
    /// Creates the pair in the root namespace, moves each end into its
    /// namespace, addresses it and brings it up.
    pub fn new<'a>(a: impl Into<End<'a>>, b: impl Into<End<'a>>) -> Result<Veth, String> {
        let (a, b) = (a.into(), b.into());
        let _ = ip(&["link", "del", a.ifname]);
        ip(&[
            "link", "add", a.ifname, "type", "veth", "peer", "name", b.ifname,
        ])?;
        let v = Veth {
            a: a.ifname.to_string(),
            ns_a: a.ns.name.clone(),
        };
        for e in [a, b] {
            ip(&["link", "set", e.ifname, "netns", &e.ns.name])?;
            e.ns.ip(&["addr", "add", e.cidr, "dev", e.ifname])?;
            e.ns.ip(&["link", "set", e.ifname, "up"])?;
        }
        Ok(v)
    }

    /// Takes the first end's link down or up (the peer sees carrier loss).
    pub fn set_up(&self, up: bool) -> Result<(), String> {
        ip(&[
            "-n",
            &self.ns_a,
            "link",
            "set",
            &self.a,
            if up { "up" } else { "down" },
        ])
    }
}

impl Drop for Veth {
    fn drop(&mut self) {
        let _ = ip(&["-n", &self.ns_a, "link", "del", &self.a]);
        let _ = ip(&["link", "del", &self.a]);
    }
}
