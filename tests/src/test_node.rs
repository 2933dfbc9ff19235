//! Driving `lnet-test-node` processes (an application with LNet in-process,
//! see `src/bin/lnet-test-node.rs`) and the `lnetctl` that configures them.
//!
//! [`TestNode`] owns one node process: it writes commands to its standard
//! input and collects its standard output line by line on a reader thread,
//! so a test waits for the line it expects with a time limit, whatever else
//! (events) came in between. Dropping it kills the process by PID and
//! removes its socket directory, also when the test fails.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::netns::NetNs;
use crate::TempDir;

/// `lnetctl` and `liblnd_sock.so` of this build (see [`crate::bins`]).
/// Returns lnetctl's path.
pub fn lnetctl_bin() -> &'static Path {
    crate::bins::sock_plugin();
    crate::bins::lnetctl()
}

/// Output lines of a node, in order, with the index of the first unread one.
#[derive(Default)]
struct Lines {
    lines: Vec<String>,
    taken: Vec<bool>,
    closed: bool,
}

/// One `lnet-test-node` process in a namespace.
pub struct TestNode {
    name: String,
    child: Option<Child>,
    stdin: Mutex<Option<ChildStdin>>,
    out: Arc<(Mutex<Lines>, Condvar)>,
    stderr: Arc<Mutex<String>>,
    /// Holds the socket; removed on drop.
    _dir: TempDir,
    socket: PathBuf,
}

impl TestNode {
    /// Starts `exe` (the lnet-test-node binary) inside `ns` with its control
    /// socket in a fresh directory under the system's temp dir, and waits
    /// for `ready`. `params` are module parameters (`NAME=VALUE`).
    pub fn start(exe: impl AsRef<Path>, ns: &NetNs, name: &str, params: &[&str]) -> TestNode {
        Self::start_in(exe.as_ref(), Some(ns), name, params)
    }

    /// As [`TestNode::start`], in the test's own network namespace (no
    /// root needed; loopback only).
    pub fn start_here(exe: impl AsRef<Path>, name: &str, params: &[&str]) -> TestNode {
        Self::start_in(exe.as_ref(), None, name, params)
    }

    fn start_in(exe: &Path, ns: Option<&NetNs>, name: &str, params: &[&str]) -> TestNode {
        let dir = TempDir::new(&format!("test-node-{name}"));
        let socket = dir.join("lnet.sock");
        let plugin_dir = lnetctl_bin().parent().expect("bin dir").to_path_buf();
        let mut cmd = match ns {
            Some(ns) => ns.command(exe),
            None => Command::new(exe),
        };
        cmd.arg("--socket")
            .arg(&socket)
            .arg("--plugin-path")
            .arg(&plugin_dir)
            .args(["--wait", "30"]);
        for p in params {
            cmd.args(["--param", p]);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{name}: cannot start {}: {e}", exe.display()));
        let out = Arc::new((Mutex::new(Lines::default()), Condvar::new()));
        let stdout = child.stdout.take().expect("piped stdout");
        {
            let out = out.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    let (m, cv) = &*out;
                    let mut l = m.lock().unwrap_or_else(|p| p.into_inner());
                    l.lines.push(line);
                    l.taken.push(false);
                    cv.notify_all();
                }
                let (m, cv) = &*out;
                m.lock().unwrap_or_else(|p| p.into_inner()).closed = true;
                cv.notify_all();
            });
        }
        let stderr = Arc::new(Mutex::new(String::new()));
        {
            let stderr = stderr.clone();
            let pipe = child.stderr.take().expect("piped stderr");
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines() {
                    let Ok(line) = line else { break };
                    let mut s = stderr.lock().unwrap_or_else(|p| p.into_inner());
                    s.push_str(&line);
                    s.push('\n');
                }
            });
        }
        let stdin = Mutex::new(child.stdin.take());
        let node = TestNode {
            name: name.to_string(),
            child: Some(child),
            stdin,
            out,
            stderr,
            _dir: dir,
            socket,
        };
        node.expect(|l| l == "ready", Duration::from_secs(20));
        node
    }

    /// The node's name in messages.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The control socket.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Runs `lnetctl --socket SOCKET ARGS` (outside the namespace: the
    /// socket is a file).
    pub fn lnetctl(&self, args: &[&str]) -> Output {
        Command::new(lnetctl_bin())
            .arg("--socket")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("run lnetctl")
    }

    /// Runs lnetctl and panics unless it succeeds; returns its stdout.
    pub fn lnetctl_ok(&self, args: &[&str]) -> String {
        let o = self.lnetctl(args);
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        assert!(
            o.status.success(),
            "{}: lnetctl {} failed ({}):\n{text}{}\nnode stderr:\n{}",
            self.name,
            args.join(" "),
            o.status,
            String::from_utf8_lossy(&o.stderr),
            self.stderr()
        );
        text
    }

    /// Runs this build's `lst` against the node's control socket with
    /// selftest session key `session` (`LST_SESSION`).
    pub fn lst(&self, session: u32, args: &[&str]) -> Output {
        Command::new(crate::bins::lst())
            .arg("--socket")
            .arg(self.socket())
            .args(args)
            .env("LST_SESSION", session.to_string())
            .env_remove("LST_FEATURES")
            .env_remove("LNET_SOCKET")
            .output()
            .expect("run lst")
    }

    /// Runs `lst` ([`TestNode::lst`]) and panics unless it succeeds;
    /// returns its stdout.
    #[track_caller]
    pub fn lst_ok(&self, session: u32, args: &[&str]) -> String {
        let out = self.lst(session, args);
        let (o, e) = (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        );
        assert!(
            out.status.success(),
            "lst {args:?}: {:?}\n{o}\n{e}",
            out.status
        );
        o
    }

    /// Makes selftest session `name` (key `session`, `--timeout 300`) with
    /// groups `servers` and `clients` of one NID each and a batch `bulk` of
    /// `brw write size=1M check=simple` at concurrency `concurrency` from the
    /// clients to the servers, and runs it.
    #[track_caller]
    pub fn lst_run_brw_write_1m(
        &self,
        session: u32,
        name: &str,
        client: &str,
        server: &str,
        concurrency: u32,
    ) {
        let concurrency = concurrency.to_string();
        self.lst_ok(session, &["new_session", "--timeout", "300", name]);
        self.lst_ok(session, &["add_group", "servers", server]);
        self.lst_ok(session, &["add_group", "clients", client]);
        self.lst_ok(session, &["add_batch", "bulk"]);
        self.lst_ok(
            session,
            &[
                "add_test",
                "--batch",
                "bulk",
                "--concurrency",
                &concurrency,
                "--from",
                "clients",
                "--to",
                "servers",
                "brw",
                "write",
                "size=1M",
                "check=simple",
            ],
        );
        self.lst_ok(session, &["run", "bulk"]);
    }

    /// A `key: N` figure from `lnetctl stats show`.
    pub fn stat(&self, key: &str) -> u64 {
        let s = self.lnetctl_ok(&["stats", "show"]);
        s.lines()
            .find_map(|l| l.trim().strip_prefix(&format!("{key}: ")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {key} in {s}"))
    }

    /// `lnet configure` and `net add --net NET --if IFACE`.
    pub fn configure(&self, net: &str, iface: &str) {
        self.lnetctl_ok(&["lnet", "configure"]);
        self.lnetctl_ok(&["net", "add", "--net", net, "--if", iface]);
    }

    /// What the node wrote on standard error so far.
    pub fn stderr(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Sends one command line.
    pub fn send(&self, cmd: &str) {
        let mut guard = self.stdin.lock().unwrap_or_else(|p| p.into_inner());
        let stdin = guard.as_mut().expect("node stdin open");
        if let Err(e) = writeln!(stdin, "{cmd}").and_then(|()| stdin.flush()) {
            panic!(
                "{}: cannot send {cmd:?}: {e}\nstderr:\n{}",
                self.name,
                self.stderr()
            );
        }
    }

    /// Waits at most `t` for the first unread line that satisfies `pred`,
    /// marks it read and returns it; panics with everything seen otherwise.
    pub fn expect(&self, pred: impl Fn(&str) -> bool, t: Duration) -> String {
        self.try_expect(&pred, t).unwrap_or_else(|| {
            let l = self.out.0.lock().unwrap_or_else(|p| p.into_inner());
            panic!(
                "{}: no expected line within {t:?}; output so far:\n{}\nstderr:\n{}",
                self.name,
                l.lines.join("\n"),
                self.stderr()
            )
        })
    }

    /// As [`TestNode::expect`], `None` on timeout (or when the output ended).
    pub fn try_expect(&self, pred: &dyn Fn(&str) -> bool, t: Duration) -> Option<String> {
        let deadline = Instant::now() + t;
        let (m, cv) = &*self.out;
        let mut l = m.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            let found = (0..l.lines.len()).find(|&i| !l.taken[i] && pred(&l.lines[i]));
            if let Some(i) = found {
                l.taken[i] = true;
                return Some(l.lines[i].clone());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || l.closed {
                return None;
            }
            l = cv
                .wait_timeout(l, left)
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        }
    }

    /// Sends `cmd` and returns its result line (`ok WORD ...` or `fail WORD
    /// ...`, WORD being the command's first word).
    pub fn cmd(&self, cmd: &str, t: Duration) -> String {
        self.send(cmd);
        let word = cmd
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string();
        let ok = format!("ok {word}");
        let fail = format!("fail {word}");
        self.expect(|l| l.starts_with(&ok) || l.starts_with(&fail), t)
    }

    /// As [`TestNode::cmd`], panicking unless the result is `ok`.
    pub fn cmd_ok(&self, cmd: &str, t: Duration) -> String {
        let r = self.cmd(cmd, t);
        assert!(
            r.starts_with("ok "),
            "{}: {cmd:?} -> {r}\nstderr:\n{}",
            self.name,
            self.stderr()
        );
        r
    }

    /// SIGKILLs the process and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        *self.stdin.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        // The socket directory goes with `dir`.
        self.kill();
    }
}

/// The value of `key=` in a result line (`ms=12` → `12`).
pub fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
}

/// PUTs then GETs of each size in `sizes` (at most 1 MiB) from `from` to
/// `to`, each command within `t`, match bits from `base` up: every PUT's
/// event on `to` must name `from_nid` and carry the pattern byte for byte
/// (`data=ok`); every GET must bring back the whole of what it asked, and
/// its event on `to` name `from_nid`.
pub fn transfers(
    from: &TestNode,
    to: &TestNode,
    from_nid: &str,
    to_nid: &str,
    base: u64,
    sizes: &[usize],
    t: Duration,
) {
    for (i, &size) in sizes.iter().enumerate() {
        let mb = base + i as u64;
        to.cmd_ok(&format!("serve 40 {mb:#x} {}", 1 << 20), t);
        let r = from.cmd_ok(&format!("put {to_nid} 40 {mb:#x} {size}"), t);
        assert_eq!(field(&r, "mlength"), Some(size.to_string().as_str()), "{r}");
        let ev = to.expect(
            |l| l.starts_with("event put") && l.contains(&format!("mb={mb:#x} ")),
            t,
        );
        assert_eq!(
            ev,
            format!(
                "event put from={from_nid} mb={mb:#x} rlength={size} mlength={size} offset=0 \
                 hdr_data={size} status=0 data=ok"
            )
        );
    }
    let mb = base + 0x100;
    to.cmd_ok(&format!("serve 41 {mb:#x} {}", 1 << 20), t);
    for &size in sizes {
        let r = from.cmd_ok(&format!("get {to_nid} 41 {mb:#x} {size}"), t);
        assert!(
            r.starts_with(&format!("ok get size={size} mlength={size} data=ok ")),
            "{r}"
        );
        let ev = to.expect(
            |l| l.starts_with("event get") && l.contains(&format!("mb={mb:#x} ")),
            t,
        );
        assert_eq!(
            ev,
            format!(
                "event get from={from_nid} mb={mb:#x} rlength={size} mlength={size} offset=0 \
                 hdr_data=0 status=0"
            )
        );
    }
}
