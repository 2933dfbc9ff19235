//! End to end: the real `lnetd` and `lnetctl` binaries on a temporary socket.
//!
//! `lnetd` is a binary of another package (lnetd), so cargo does not
//! build it for this test. The first test that needs it runs
//! `cargo build -p lnetd --bin lnetd` into the same target directory
//! (a no-op when it is fresh; cargo does not hold its build lock while tests
//! run) and takes the `lnetd` sitting next to `lnetctl`, which is also where
//! `lnetctl lnet configure` looks for it. Every daemon a test starts is owned
//! by a guard that kills it on drop, so a failing test leaves no process
//! behind; temporary directories are removed the same way.

use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use liblnetconfig::Client;

const LNETCTL: &str = env!("CARGO_BIN_EXE_lnetctl");

/// The freshly built lnetd next to lnetctl.
fn lnetd_bin() -> &'static Path {
    static LNETD: OnceLock<PathBuf> = OnceLock::new();
    LNETD.get_or_init(|| {
        let bin_dir = Path::new(LNETCTL)
            .parent()
            .expect("lnetctl has a directory");
        let target_dir = bin_dir.parent().expect("target directory");
        let mut cmd = Command::new(env!("CARGO"));
        cmd.args(["build", "--quiet", "-p", "lnetd", "--bin", "lnetd"])
            .arg("--target-dir")
            .arg(target_dir);
        if bin_dir.ends_with("release") {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("run cargo build for lnetd");
        assert!(
            status.success(),
            "cannot build lnetd: run `cargo build -p lnetd --bin lnetd` to see why"
        );
        let lnetd = bin_dir.join("lnetd");
        assert!(
            lnetd.is_file(),
            "{} missing after the build: run `cargo build -p lnetd --bin lnetd`",
            lnetd.display()
        );
        lnetd
    })
}

/// The vendor example plugin (`plugins/vendor-lnd`), built like lnetd.
fn vendor_plugin() -> &'static Path {
    static SO: OnceLock<PathBuf> = OnceLock::new();
    SO.get_or_init(|| {
        let bin_dir = Path::new(LNETCTL)
            .parent()
            .expect("lnetctl has a directory");
        let mut cmd = Command::new(env!("CARGO"));
        cmd.args(["build", "--quiet", "-p", "vendor-lnd", "--lib"])
            .arg("--target-dir")
            .arg(bin_dir.parent().expect("target directory"));
        if bin_dir.ends_with("release") {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("run cargo build for vendor-lnd");
        assert!(
            status.success(),
            "cannot build vendor-lnd: run `cargo build -p vendor-lnd`"
        );
        let so = bin_dir.join("libvendor_lnd.so");
        assert!(so.is_file(), "{} missing after the build", so.display());
        so
    })
}

/// A temporary directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!(
            "lnetctl-e2e-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("temp dir");
        TempDir(p)
    }

    fn socket(&self) -> PathBuf {
        self.0.join("lnetctl.sock")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Kills a daemon on drop: our child, or (for one started detached by
/// `lnetctl lnet configure`) the pid learnt from its hello, and only while
/// that pid still answers on the socket (never a recycled pid).
struct Guard {
    child: Option<Child>,
    pid: Option<(u32, PathBuf)>,
}

impl Guard {
    fn pid(&self) -> u32 {
        self.child
            .as_ref()
            .map(Child::id)
            .or(self.pid.as_ref().map(|p| p.0))
            .expect("a daemon")
    }

    /// Waits for our child to exit; its status.
    fn wait_exit(&mut self, within: Duration) -> std::process::ExitStatus {
        let child = self.child.as_mut().expect("our child");
        let deadline = Instant::now() + within;
        loop {
            if let Some(st) = child.try_wait().expect("try_wait") {
                self.child = None;
                return st;
            }
            assert!(
                Instant::now() < deadline,
                "lnetd did not exit in {within:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        } else if let Some((pid, socket)) = self.pid.take() {
            let still_ours = Client::connect(&socket)
                .and_then(|mut c| c.hello())
                .is_ok_and(|i| i.pid == pid);
            if !still_ours {
                return;
            }
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Waits until something answers a hello on `socket`; its pid.
fn wait_answer(socket: &Path) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(mut c) = Client::connect(socket) {
            if let Ok(info) = c.hello() {
                return info.pid;
            }
        }
        assert!(
            Instant::now() < deadline,
            "nothing answers on {}",
            socket.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Starts `lnetd --foreground` on `socket`, waits until it answers.
fn start_lnetd(socket: &Path, extra: &[&str]) -> Guard {
    let child = Command::new(lnetd_bin())
        .arg("--socket")
        .arg(socket)
        .arg("--foreground")
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn lnetd");
    let guard = Guard {
        child: Some(child),
        pid: None,
    };
    wait_answer(socket);
    guard
}

fn lnetctl(socket: &Path, args: &[&str]) -> Output {
    Command::new(LNETCTL)
        .arg("--socket")
        .arg(socket)
        .args(args)
        .env_remove("LNET_SOCKET")
        .output()
        .expect("run lnetctl")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[track_caller]
fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "lnetctl failed: {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

#[test]
fn not_running_says_how_to_start() {
    let dir = TempDir::new("none");
    let sock = dir.socket();
    let out = lnetctl(&sock, &["net", "show"]);
    assert_eq!(out.status.code(), Some(156), "-ENETDOWN & 0xff");
    assert_eq!(
        text(&out.stderr),
        format!(
            "lnetctl: LNet is not running on {0}: start it with \"lnetctl lnet configure\" (or \
             run lnetd --socket {0})\n",
            sock.display()
        )
    );
    assert!(out.stdout.is_empty());
    // unconfigure with nothing running is a success (LNet is not configured).
    assert_eq!(
        lnetctl(&sock, &["lnet", "unconfigure"]).status.code(),
        Some(0)
    );
}

#[test]
fn unconfigured_daemon_reports_stack_down() {
    let dir = TempDir::new("down");
    let sock = dir.socket();
    let _d = start_lnetd(&sock, &[]);
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&sock).expect("socket").permissions(),
    );
    assert_eq!(mode & 0o777, 0o600, "control socket mode");
    let out = lnetctl(&sock, &["net", "show"]);
    assert_eq!(out.status.code(), Some(234), "NL errors return -22");
    assert_eq!(
        text(&out.stderr),
        "---\nshow:\n-     net:\n      errno: -100\n      descr: ! \"LNet stack down\"\n...\n"
    );
}

#[test]
fn bad_parameters_stop_the_start() {
    let dir = TempDir::new("param");
    let out = Command::new(lnetd_bin())
        .arg("--socket")
        .arg(dir.socket())
        .args(["--foreground", "--param", "lnet_health_sensitivity=2000"])
        .output()
        .expect("run lnetd");
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("lnet_health_sensitivity") && err.contains("out of range"),
        "{err}"
    );
    assert!(!dir.socket().exists(), "no socket left behind");
}

#[test]
fn second_daemon_refused_stale_socket_replaced() {
    let dir = TempDir::new("two");
    let sock = dir.socket();
    // A stale socket file nobody answers on.
    drop(UnixListener::bind(&sock).expect("stale socket"));
    let mut d = start_lnetd(&sock, &[]);
    for extra in [&["--foreground"][..], &[][..]] {
        let out = Command::new(lnetd_bin())
            .arg("--socket")
            .arg(&sock)
            .args(extra)
            .output()
            .expect("run second lnetd");
        assert_eq!(out.status.code(), Some(1), "second lnetd {extra:?}");
        let err = text(&out.stderr);
        assert!(err.contains("already running on"), "{err}");
    }
    assert_eq!(wait_answer(&sock), d.pid(), "the first one still answers");
    // SIGTERM: orderly stop, exit 0, socket removed.
    let st = Command::new("kill")
        .args(["-TERM", &d.pid().to_string()])
        .status()
        .expect("kill");
    assert!(st.success());
    assert_eq!(d.wait_exit(Duration::from_secs(10)).code(), Some(0));
    assert!(!sock.exists(), "socket removed on SIGTERM");
}

#[test]
fn unconfigure_stops_lnetd_and_removes_the_socket() {
    let dir = TempDir::new("unconf");
    let sock = dir.socket();
    let mut d = start_lnetd(&sock, &[]);
    let out = lnetctl(&sock, &["lnet", "unconfigure"]);
    assert_eq!(ok(&out), "");
    assert!(!sock.exists(), "socket gone when lnetctl returns");
    assert_eq!(d.wait_exit(Duration::from_secs(10)).code(), Some(0));
}

#[test]
fn other_users_are_refused() {
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| text(&o.stdout).trim() == "0");
    let have_setpriv = Command::new("setpriv").arg("--version").output().is_ok();
    if !is_root || !have_setpriv {
        eprintln!("skipped: needs root and setpriv to run lnetctl as another user");
        return;
    }
    let dir = TempDir::new("creds");
    let sock = dir.socket();
    let _d = start_lnetd(&sock, &[]);
    // Open the file mode so the daemon's own credential check is what refuses.
    std::fs::set_permissions(&sock, std::os::unix::fs::PermissionsExt::from_mode(0o666))
        .expect("chmod");
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", LNETCTL])
        .arg("--socket")
        .arg(&sock)
        .args(["net", "show"])
        .output()
        .expect("run lnetctl as nobody");
    assert_eq!(out.status.code(), Some(234));
    let err = text(&out.stderr);
    assert!(
        err.contains("errno: -13")
            && err.contains("permission denied")
            && err.contains("uid 65534"),
        "{err}"
    );
}

#[test]
fn bad_requests_fail_before_sending() {
    let dir = TempDir::new("args");
    let sock = dir.socket();
    // Nothing listens: these fail on their arguments first.
    let out = lnetctl(&sock, &["net", "add", "--if", "eth0"]);
    assert_eq!(out.status.code(), Some(234));
    assert_eq!(
        text(&out.stdout),
        "missing mandatory parameters in NI config: 'network'\n"
    );
    let out = lnetctl(
        &sock,
        &[
            "net",
            "add",
            "--net",
            "tcp",
            "--if",
            "eth0",
            "--conns-per-peer",
            "200",
        ],
    );
    assert_eq!(out.status.code(), Some(255));
    assert_eq!(
        text(&out.stderr),
        "ni:\n    - add:\n          errno: -1\n          descr: invalid conns-per-peer value (valid range 0-127)\n"
    );
    let out = lnetctl(&sock, &["ping", "1.2.3.4.5@tcp"]);
    assert_eq!(out.status.code(), Some(234));
    assert!(
        text(&out.stderr)
            .contains("descr: ! \"\\\"Unable to parse nidlist: invalid NID in nidstr\\\"\""),
        "{}",
        text(&out.stderr)
    );
    let out = lnetctl(&sock, &["bogus"]);
    assert_eq!(out.status.code(), Some(255));
    assert_eq!(
        text(&out.stderr),
        "lnetctl: 'bogus' is not a valid command. See 'lnetctl --list-commands'.\n"
    );
}

#[test]
fn line_mode_stops_at_the_first_failure() {
    use std::io::Write;
    let dir = TempDir::new("lines");
    let sock = dir.socket();
    let mut child = Command::new(LNETCTL)
        .env("LNET_SOCKET", &sock)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run lnetctl");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"version\n\nnet show\nversion\n")
        .expect("write");
    let out = child.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(156), "rc of the failing net show");
    assert_eq!(
        text(&out.stdout),
        format!("lnetctl {}\n", env!("CARGO_PKG_VERSION")),
        "stops before the second version"
    );
    assert!(text(&out.stderr).contains("LNet is not running"));
}

/// `lnetctl lnet configure` starts lnetd (found next to lnetctl) when none
/// answers, configures LNet, and everything the runtime shows follows.
#[test]
fn configure_net_show_ping_plugin_show() {
    let dir = TempDir::new("conf");
    let sock = dir.socket();
    lnetd_bin();
    let out = lnetctl(&sock, &["lnet", "configure"]);
    // Whatever happened, a daemon may now run: own it before asserting.
    let _d = Client::connect(&sock)
        .ok()
        .and_then(|mut c| c.hello().ok())
        .map(|i| Guard {
            child: None,
            pid: Some((i.pid, sock.clone())),
        });
    assert!(_d.is_some(), "lnet configure started no lnetd");
    ok(&out);
    // Idempotent.
    ok(&lnetctl(&sock, &["lnet", "configure"]));

    let show = ok(&lnetctl(&sock, &["net", "show"]));
    assert_eq!(
        show,
        "net:\n-     net type: lo\n      local NI(s):\n      -     nid: 0@lo\n            status: up\n"
    );
    let v = ok(&lnetctl(&sock, &["net", "show", "-v"]));
    assert!(v.starts_with("net:\n-     net type: lo\n      local NI(s):\n      -     nid: 0@lo\n            status: up\n            statistics:\n                  send_count: "), "{v}");
    assert!(
        v.contains("            tunables:\n") && v.contains("            CPT: \""),
        "{v}"
    );
    let out = lnetctl(&sock, &["net", "show", "--net", "tcp9"]);
    assert_eq!(out.status.code(), Some(234));
    assert!(
        text(&out.stderr).contains("errno: -3"),
        "{}",
        text(&out.stderr)
    );

    let ping = ok(&lnetctl(&sock, &["ping", "0@lo"]));
    assert!(
        ping.starts_with("ping:\n- primary nid: 0@lo\n  Multi-Rail: "),
        "{ping}"
    );
    assert!(ping.contains("\n  peer_ni:"), "{ping}");

    // A target that cannot be reached is reported after the successes; rc -1.
    let out = lnetctl(&sock, &["ping", "10.9.9.9@tcp", "0@lo", "--timeout", "2"]);
    assert_eq!(out.status.code(), Some(255));
    let ping = text(&out.stdout);
    assert!(ping.starts_with("ping:\n- primary nid: "), "{ping}");
    assert!(
        ping.contains("manage:\n- ping:\n  errno: -")
            && ping.contains("  descr: 'failed to ping 10.9.9.9@tcp: "),
        "{ping}"
    );
    let out = lnetctl(&sock, &["net", "show", "--net", "foo"]);
    assert_eq!(out.status.code(), Some(234));
    assert!(
        text(&out.stderr).contains("errno: -2\n      descr: ! \"cannot parse net 'foo'\""),
        "{}",
        text(&out.stderr)
    );
    let stats = ok(&lnetctl(&sock, &["stats", "show"]));
    assert!(
        stats.starts_with("statistics:\n    msgs_alloc: "),
        "{stats}"
    );
    assert!(stats.ends_with("    drop_length: 0\n"), "{stats}");

    let plugins = ok(&lnetctl(&sock, &["plugin", "show"]));
    assert!(plugins.starts_with("plugin:\n-     name: "), "{plugins}");
    assert!(plugins.contains("      builtin: true\n"), "{plugins}");
    let out = lnetctl(&sock, &["plugin", "load", "/nonexistent/libnope.so"]);
    assert_eq!(out.status.code(), Some(234));
    assert!(
        text(&out.stderr).starts_with("---\nadd:\n-     plugin:\n      errno: -2\n"),
        "{}",
        text(&out.stderr)
    );

    ok(&lnetctl(&sock, &["lnet", "unconfigure"]));
    assert!(!sock.exists());
}

/// Plugins: load by path, show, a net of the plugin's own type, unload
/// refused while in use, `--force`, and the "code stays mapped" notice.
#[test]
fn plugin_load_show_unload() {
    let so = vendor_plugin();
    let dir = TempDir::new("plugin");
    let sock = dir.socket();
    let _d = start_lnetd(&sock, &[]);
    ok(&lnetctl(&sock, &["lnet", "configure"]));
    ok(&lnetctl(
        &sock,
        &["plugin", "load", so.to_str().expect("utf-8 path")],
    ));
    let out = lnetctl(&sock, &["plugin", "load", so.to_str().expect("utf-8 path")]);
    assert_eq!(out.status.code(), Some(234), "loading the same file twice");
    assert!(
        text(&out.stderr).contains("errno: -17"),
        "{}",
        text(&out.stderr)
    );
    let show = ok(&lnetctl(
        &sock,
        &["plugin", "show", "--name", "vendor-lnd", "-v"],
    ));
    assert!(
        show.starts_with("plugin:\n-     name: vendor-lnd\n      version: ")
            && show.contains(&format!("      path: {}\n", so.display()))
            && show.contains("      builtin: false\n      state: active\n"),
        "{show}"
    );
    ok(&lnetctl(
        &sock,
        &["net", "add", "--net", "vnd", "--if", "fabric0"],
    ));
    let nets = ok(&lnetctl(&sock, &["net", "show", "--net", "vnd"]));
    assert!(
        nets.starts_with("net:\n-     net type: vnd\n      local NI(s):\n      -     nid: "),
        "{nets}"
    );
    assert!(nets.contains("@vnd\n"), "plugin NIDs print by name: {nets}");
    let show = ok(&lnetctl(&sock, &["plugin", "show", "--name", "vendor-lnd"]));
    assert!(show.contains("      nets: [ vnd ]\n"), "{show}");
    let out = lnetctl(&sock, &["plugin", "unload", "vendor-lnd"]);
    assert_eq!(out.status.code(), Some(234), "in use");
    assert!(
        text(&out.stderr).contains("errno: -16"),
        "{}",
        text(&out.stderr)
    );
    let msg = ok(&lnetctl(
        &sock,
        &["plugin", "unload", "vendor-lnd", "--force"],
    ));
    assert!(msg.contains("its code stays mapped"), "{msg}");
    let show = ok(&lnetctl(&sock, &["plugin", "show", "--name", "vendor-lnd"]));
    assert!(show.contains("      state: inactive\n"), "{show}");
    let out = lnetctl(&sock, &["net", "show", "--net", "vnd"]);
    assert_eq!(out.status.code(), Some(234), "the net went with --force");
}
