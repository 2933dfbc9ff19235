#![allow(dead_code)]
//! End to end for routing (issue 13): `route add|del|show`, `routing show`,
//! `set routing|*_buffers` and the router start-up parameters, with the real
//! `lnetd` and `lnetctl` (helpers as in `e2e.rs`).
//!
//! `lnetd` is a binary of another package (lnetd), so cargo does not
//! build it for this test. The first test that needs it runs
//! `cargo build -p lnetd --bin lnetd` into the same target directory
//! (a no-op when it is fresh; cargo does not hold its build lock while tests
//! run) and takes the `lnetd` sitting next to `lnetctl`, which is also where
//! `lnetctl lnet configure` looks for it. Every daemon a test starts is owned
//! by a guard that kills it on drop, so a failing test leaves no process
//! behind; temporary directories are removed the same way.

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

fn err_text(out: &Output) -> String {
    text(&out.stderr)
}

#[track_caller]
fn refused(out: &Output, errno: i32, descr: &str) {
    assert_eq!(out.status.code(), Some(234), "rc -22: {}", err_text(out));
    let e = err_text(out);
    assert!(
        e.contains(&format!("errno: {errno}\n")) && e.contains(&format!("descr: ! \"{descr}\"")),
        "{e}"
    );
}

#[test]
fn routes_and_routing_through_lnetctl() {
    let so = vendor_plugin();
    let dir = TempDir::new("route");
    let sock = dir.socket();
    let _d = start_lnetd(
        &sock,
        &[
            "--param",
            "forwarding=enabled",
            "--param",
            "tiny_router_buffers=64",
            "--param",
            "small_router_buffers=128",
            "--param",
            "large_router_buffers=16",
            "--param",
            "alive_router_check_interval=0",
        ],
    );
    ok(&lnetctl(&sock, &["lnet", "configure"]));
    assert_eq!(
        ok(&lnetctl(&sock, &["routing", "show"])),
        "routing:\n    - cpt[0]:\n          tiny:\n              npages: 0\n              \
         nbuffers: 64\n              credits: 64\n              mincredits: 64\n          \
         small:\n              npages: 1\n              nbuffers: 128\n              \
         credits: 128\n              mincredits: 128\n          large:\n              \
         npages: 256\n              nbuffers: 16\n              credits: 16\n              \
         mincredits: 16\n    - enable: 1\nbuffers:\n    tiny: 64\n    small: 128\n    \
         large: 16\n"
    );
    ok(&lnetctl(
        &sock,
        &["plugin", "load", so.to_str().expect("utf-8")],
    ));
    ok(&lnetctl(
        &sock,
        &["net", "add", "--net", "vnd", "--if", "fabric0"],
    ));

    // Missing parameters: a plain line on stdout, rc -22.
    let out = lnetctl(&sock, &["route", "add", "--hop", "2"]);
    assert_eq!(out.status.code(), Some(234));
    assert_eq!(
        text(&out.stdout),
        "missing mandatory parameters:'net , gateway'\n"
    );

    // A gateway range: one route per gateway (their order within the net is
    // randomised, as upstream's).
    ok(&lnetctl(
        &sock,
        &[
            "route",
            "add",
            "--net",
            "tcp1",
            "--gateway",
            "[2-3]@vnd",
            "--hop",
            "2",
            "--priority",
            "1",
        ],
    ));
    let show = ok(&lnetctl(&sock, &["route", "show"]));
    assert!(
        show.starts_with("route:\n-     net: tcp1\n      gateway: "),
        "{show}"
    );
    assert!(show.contains("      gateway: 2@vnd\n") && show.contains("      gateway: 3@vnd\n"));
    assert_eq!(show.lines().count(), 5, "{show}");
    let v = ok(&lnetctl(
        &sock,
        &["route", "show", "--gateway", "3@vnd", "-v"],
    ));
    assert_eq!(
        v,
        "route:\n-     net: tcp1\n      gateway: 3@vnd\n      hop: 2\n      priority: 1\n      \
         state: up\n      type: single-hop\n"
    );

    // The refusals, with the daemon's messages.
    refused(
        &lnetctl(
            &sock,
            &["route", "add", "--net", "tcp1", "--gateway", "2@vnd"],
        ),
        -17,
        "Route already exists or the specified network is local",
    );
    refused(
        &lnetctl(
            &sock,
            &["route", "add", "--net", "vnd", "--gateway", "9@vnd"],
        ),
        -22,
        "invalid settings for route creation",
    );
    refused(
        &lnetctl(
            &sock,
            &["route", "add", "--net", "vnd", "--gateway", "10.0.0.1@tcp"],
        ),
        -17,
        "Route already exists or the specified network is local",
    );
    refused(
        &lnetctl(
            &sock,
            &["route", "add", "--net", "tcp2", "--gateway", "10.0.0.1@tcp"],
        ),
        -113,
        "No interface configured on the same net as gateway",
    );
    refused(
        &lnetctl(
            &sock,
            &[
                "route",
                "add",
                "--net",
                "tcp2",
                "--gateway",
                "4@vnd",
                "--hop",
                "300",
            ],
        ),
        -22,
        "invalid hop count must be between 1 and 255",
    );
    // Nothing changed.
    assert_eq!(ok(&lnetctl(&sock, &["route", "show"])).lines().count(), 5);

    // Delete by gateway, then by net; a second delete finds nothing.
    ok(&lnetctl(
        &sock,
        &["route", "del", "--net", "tcp1", "--gateway", "2@vnd"],
    ));
    assert_eq!(
        ok(&lnetctl(&sock, &["route", "show"])),
        "route:\n-     net: tcp1\n      gateway: 3@vnd\n"
    );
    // Both are mandatory on the command line, as upstream's.
    let out = lnetctl(&sock, &["route", "del", "--net", "tcp1"]);
    assert_eq!(
        text(&out.stdout),
        "missing mandatory parameters:'gateway'\n"
    );
    ok(&lnetctl(
        &sock,
        &["route", "del", "--net", "tcp1", "--gateway", "[2-3]@vnd"],
    ));
    assert_eq!(ok(&lnetctl(&sock, &["route", "show"])), "");
    refused(
        &lnetctl(
            &sock,
            &["route", "del", "--net", "tcp1", "--gateway", "3@vnd"],
        ),
        -2,
        "failed to delete route",
    );

    // set *_buffers and routing.
    ok(&lnetctl(&sock, &["set", "tiny_buffers", "32"]));
    let r = ok(&lnetctl(&sock, &["routing", "show"]));
    assert!(r.contains("    tiny: 32\n"), "{r}");
    let out = lnetctl(&sock, &["set", "small_buffers", "-5"]);
    assert_eq!(out.status.code(), Some(-34i32 & 0xff));
    assert!(err_text(&out).contains("tiny, small and large must be >= 0"));
    let out = lnetctl(&sock, &["set", "routing", "2"]);
    assert_eq!(out.status.code(), Some(255));
    assert!(err_text(&out).contains("cannot parse routing value"));
    ok(&lnetctl(&sock, &["set", "routing", "0"]));
    let r = ok(&lnetctl(&sock, &["routing", "show"]));
    assert!(r.contains("    - enable: 2\n"), "stopping: {r}");
}

#[test]
fn routing_show_prints_nothing_before_routing_was_enabled() {
    let dir = TempDir::new("routing");
    let sock = dir.socket();
    let _d = start_lnetd(&sock, &[]);
    ok(&lnetctl(&sock, &["lnet", "configure"]));
    assert_eq!(ok(&lnetctl(&sock, &["routing", "show"])), "");
    assert_eq!(ok(&lnetctl(&sock, &["route", "show"])), "");
    ok(&lnetctl(&sock, &["set", "routing", "1"]));
    let r = ok(&lnetctl(&sock, &["routing", "show"]));
    assert!(r.contains("    - enable: 3\n"), "starting: {r}");
    assert!(r.contains("buffers:\n    tiny: 2048\n    small: 16384\n    large: 1024\n"));
}
