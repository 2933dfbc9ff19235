//! End to end: the real `lnetd` and `lnetctl` binaries on a temporary socket.
//!
//! `lnetd` is a binary of another package (lnetd), so cargo does not
//! build it for this test: `lnet_tests::bins` builds it on first use (into
//! a target directory of its own). Every daemon a test starts is owned
//! by `lnet_tests::daemon::Daemon`, which kills it on drop, so a failing
//! test leaves no process behind; temporary directories are removed the
//! same way (`lnet_tests::TempDir`).

use std::os::unix::net::UnixListener;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use liblnetconfig::Client;
use lnet_tests::bins::{lnetd as lnetd_bin, sock_plugin, vendor_plugin};
use lnet_tests::daemon::{wait_answer, Daemon};
use lnet_tests::expected::GLOBAL_DEFAULTS;
use lnet_tests::{ok, text, TempDir};

const LNETCTL: &str = env!("CARGO_BIN_EXE_lnetctl");

fn lnetctl(socket: &Path, args: &[&str]) -> Output {
    lnet_tests::lnetctl_on(Path::new(LNETCTL), socket, args)
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
    let _d = Daemon::start(&sock, &[]);
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
    let mut d = Daemon::start(&sock, &[]);
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

/// The lines of `net show -v` for the vendor plugin's NI that carry its
/// LND tunables (the vendor LND reports its `timeout` parameter there).
fn vnd_lnd_tunables(sock: &Path) -> String {
    let show = ok(&lnetctl(sock, &["net", "show", "--net", "vnd", "-v"]));
    let at = show
        .find("            lnd tunables:\n")
        .unwrap_or_else(|| panic!("no lnd tunables in {show}"));
    show[at..].lines().take(2).collect::<Vec<_>>().join("\n")
}

/// The path names of the files mapped into process `pid`.
fn mapped_files(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/maps")).expect("read /proc/PID/maps")
}

/// Issue 10 items 4, 5 and 6 through lnetctl: a vendor plugin parameter
/// given with `--param` reaches the plugin (net show -v shows it as its LND
/// tunable); `net add --net vnd` finds the plugin by name in the plugin
/// path and never opens the other libraries there; `lnet unconfigure`
/// leaves lnetd running unconfigured, and `lnet configure` on the same
/// process brings LNet back with the same start-up parameters; SIGTERM tears
/// down and removes the socket.
#[test]
fn unconfigure_keeps_lnetd_and_its_parameters() {
    let so = vendor_plugin();
    let dir = TempDir::new("life");
    let sock = dir.socket();
    // Libraries that are not named as a plugin of any type, one of them a
    // working copy of the vendor plugin whose name even contains "vnd".
    let plugins = dir.join("plugins");
    std::fs::create_dir_all(&plugins).expect("plugin dir");
    for n in ["libvnd_extra.so", "libunrelated.so"] {
        std::fs::copy(so, plugins.join(n)).expect("copy a library");
    }
    let plugin_dir = plugins.to_str().expect("utf-8");
    let mut d = Daemon::start(
        &sock,
        &["--plugin-path", plugin_dir, "--param", "timeout=33"],
    );
    let pid = d.pid();
    ok(&lnetctl(&sock, &["lnet", "configure"]));
    ok(&lnetctl(
        &sock,
        &["net", "add", "--net", "vnd", "--if", "fab0"],
    ));
    let want = "            lnd tunables:\n                  timeout: 33";
    assert_eq!(vnd_lnd_tunables(&sock), want);
    let out = lnetctl(&sock, &["net", "add", "--net", "gni", "--if", "x"]);
    assert!(!out.status.success(), "no plugin provides gni");
    let maps = mapped_files(pid);
    assert!(maps.contains("/liblnd_vnd.so"), "{maps}");
    for n in ["libvnd_extra.so", "libunrelated.so"] {
        assert!(!maps.contains(n), "{n} was opened:\n{maps}");
    }

    let out = lnetctl(&sock, &["lnet", "unconfigure"]);
    assert_eq!(ok(&out), "");
    assert!(sock.exists(), "the socket stays");
    assert_eq!(wait_answer(&sock), pid, "the same lnetd answers");
    let out = lnetctl(&sock, &["net", "show"]);
    assert_eq!(
        text(&out.stderr),
        "---\nshow:\n-     net:\n      errno: -100\n      descr: ! \"LNet stack down\"\n...\n"
    );
    // Unconfiguring an unconfigured LNet succeeds too.
    assert_eq!(ok(&lnetctl(&sock, &["lnet", "unconfigure"])), "");

    ok(&lnetctl(&sock, &["lnet", "configure"]));
    assert_eq!(wait_answer(&sock), pid, "configured on the same process");
    let nets = ok(&lnetctl(&sock, &["net", "show"]));
    assert!(
        nets.starts_with("net:\n-     net type: lo\n") && !nets.contains("vnd"),
        "only lo after configure: {nets}"
    );
    ok(&lnetctl(
        &sock,
        &["net", "add", "--net", "vnd", "--if", "fab0"],
    ));
    assert_eq!(
        vnd_lnd_tunables(&sock),
        want,
        "the start-up parameter is kept"
    );

    let st = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(st.success());
    assert_eq!(d.wait_exit(Duration::from_secs(20)).code(), Some(0));
    assert!(!sock.exists(), "socket removed on SIGTERM");
}

/// Plugin parameters are checked against the plugin's declaration at start:
/// a bad value or an unknown name stops lnetd with a message naming it;
/// `--config` lines `options MODULE NAME=VALUE` reach that module.
#[test]
fn plugin_parameters_are_checked_at_start() {
    let dir = TempDir::new("pparam");
    // A plugin path with the vendor plugin alone: o2ib declares a `timeout`
    // of its own, which a flat `--param timeout=` would reach as well.
    let plugins = dir.join("plugins");
    std::fs::create_dir(&plugins).expect("mkdir");
    std::fs::copy(vendor_plugin(), plugins.join("liblnd_vnd.so")).expect("copy the plugin");
    let run = |args: &[&str]| {
        Command::new(lnetd_bin())
            .arg("--socket")
            .arg(dir.socket())
            .arg("--foreground")
            .arg("--plugin-path")
            .arg(&plugins)
            .args(args)
            .env_remove("LNET_PLUGIN_PATH")
            .output()
            .expect("run lnetd")
    };
    let out = run(&["--param", "timeout=0"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains(
            "bad value for parameter timeout of kvndlnd: \"0\" is out of range: an integer \
             in 1..86400 (--param)"
        ),
        "{err}"
    );
    let conf = dir.join("lnet.conf");
    std::fs::write(&conf, "options kvndlnd nosuch=1\n").expect("write");
    let out = run(&["--config", conf.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!(
            "unknown parameter nosuch of module kvndlnd ({}:1)",
            conf.display()
        )),
        "{err}"
    );
    let out = run(&["--param", "nosuch_at_all=1"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("unknown parameter nosuch_at_all (--param)") && err.contains("kvndlnd"),
        "{err}"
    );
    assert!(!dir.socket().exists(), "no socket left behind");

    std::fs::write(&conf, "options kvndlnd timeout=41\n").expect("write");
    let sock = dir.socket();
    let _d = Daemon::start(&sock, &["--config", conf.to_str().expect("utf-8")]);
    ok(&lnetctl(&sock, &["lnet", "configure"]));
    ok(&lnetctl(
        &sock,
        &["net", "add", "--net", "vnd", "--if", "fab0"],
    ));
    assert_eq!(
        vnd_lnd_tunables(&sock),
        "            lnd tunables:\n                  timeout: 41"
    );
}

/// A port for a test's acceptor on 127.0.0.1, apart from other tests'.
fn test_port(offset: u32) -> String {
    (20000 + (std::process::id() * 7 + offset) % 30000).to_string()
}

/// `cpu_pattern` binds every thread of lnetd to the CPUs it names, the
/// LND's threads (started later, with the start-up network) included; a
/// pattern naming a CPU the machine does not have (4095: there is no such
/// test host) stops lnetd at start with a message that says so.
#[test]
fn cpu_pattern_binds_every_thread() {
    sock_plugin();
    let allowed = |status: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
            .map(|v| v.trim().to_string())
            .expect("Cpus_allowed_list")
    };
    let ours = allowed(&std::fs::read_to_string("/proc/self/status").expect("status"));
    // The last CPU this test may run on ("0-1" -> 1, "3" -> 3).
    let cpu = ours.rsplit([',', '-']).next().expect("a CPU").to_string();
    let dir = TempDir::new("cpt");
    let sock = dir.socket();
    let port = format!("accept_port={}", test_port(3));
    let pattern = format!("cpu_pattern=0[{cpu}]");
    let d = Daemon::start(
        &sock,
        &[
            "--param",
            &pattern,
            "--param",
            "config_on_load=1",
            "--param",
            "networks=tcp9(lo)",
            "--param",
            &port,
        ],
    );
    let nets = ok(&lnetctl(&sock, &["net", "show"]));
    assert!(nets.contains("nid: 127.0.0.1@tcp9"), "{nets}");
    let tasks = std::fs::read_dir(format!("/proc/{}/task", d.pid())).expect("tasks");
    let mut names = Vec::new();
    for t in tasks.flatten() {
        let status = std::fs::read_to_string(t.path().join("status")).expect("task status");
        let name = status.lines().next().unwrap_or_default().to_string();
        assert_eq!(allowed(&status), cpu, "{name}");
        names.push(name);
    }
    assert!(
        names.iter().any(|n| n.contains("lnd-sock")),
        "the LND's thread is among them: {names:?}"
    );
    let out = Command::new(lnetd_bin())
        .args(["--foreground", "--socket"])
        .arg(dir.join("bad.sock"))
        .args(["--param", "cpu_pattern=0[4095]"])
        .output()
        .expect("run lnetd");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad value for parameter cpu_pattern")
            && err.contains("CPU 4095 is not one lnetd may run on"),
        "{err}"
    );
}

/// Start-up networks: `config_on_load=1` with `networks=` configures at
/// start; `lnet unconfigure` then `lnet configure --all` brings them back
/// from the kept parameters, plain `lnet configure` only `lo`. lnd-sock's own
/// parameter (`ksocklnd sock_timeout`) reaches it: `net show -v` shows it as
/// the LND timeout. (`ip2nets=` matches the addresses of non-loopback
/// interfaces, as upstream: `ip2nets_and_nid_in_a_namespace` tests it on veths.)
#[test]
fn start_up_networks_survive_unconfigure() {
    // networks=tcp9 and sock_timeout= need the TCP plugin next to lnetd.
    sock_plugin();
    let dir = TempDir::new("startup");
    let sock = dir.socket();
    let port = format!("accept_port={}", test_port(0));
    let d = Daemon::start(
        &sock,
        &[
            "--param",
            "config_on_load=1",
            "--param",
            "networks=tcp9(lo)",
            "--param",
            "sock_timeout=65",
            "--param",
            &port,
            "--param",
            "accept=all",
        ],
    );
    let nets = |sock: &Path| ok(&lnetctl(sock, &["net", "show"]));
    let tcp9 = "-     net type: tcp9\n      local NI(s):\n      -     nid: 127.0.0.1@tcp9\n";
    assert!(nets(&sock).contains(tcp9), "{}", nets(&sock));
    let v = ok(&lnetctl(&sock, &["net", "show", "--net", "tcp9", "-v"]));
    assert!(
        v.contains("            lnd tunables:\n                  conns_per_peer: 1\n                  timeout: 65\n"),
        "{v}"
    );
    ok(&lnetctl(&sock, &["lnet", "unconfigure"]));
    ok(&lnetctl(&sock, &["lnet", "configure"]));
    assert!(!nets(&sock).contains("tcp9"), "{}", nets(&sock));
    ok(&lnetctl(&sock, &["lnet", "unconfigure"]));
    ok(&lnetctl(&sock, &["lnet", "configure", "--all"]));
    assert!(nets(&sock).contains(tcp9), "{}", nets(&sock));
    assert_eq!(wait_answer(&sock), d.pid());
}

#[test]
#[ignore = "needs root and setpriv (util-linux) to run lnetctl as another user"]
fn other_users_are_refused() {
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| text(&o.stdout).trim() == "0");
    let have_setpriv = Command::new("setpriv").arg("--version").output().is_ok();
    // Asked to run (`--ignored`), it runs or fails: never a silent pass.
    assert!(
        is_root && have_setpriv,
        "other_users_are_refused needs root and setpriv to run lnetctl as another user: run \
         it as root, as scripts/test.sh does"
    );
    let dir = TempDir::new("creds");
    let sock = dir.socket();
    let _d = Daemon::start(&sock, &[]);
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
    // lnetctl and lnetd side by side, as installed.
    let bin = dir.join("bin");
    std::fs::create_dir(&bin).expect("mkdir");
    let ctl = bin.join("lnetctl");
    if std::fs::hard_link(LNETCTL, &ctl).is_err() {
        std::fs::copy(LNETCTL, &ctl).expect("copy lnetctl");
    }
    std::os::unix::fs::symlink(lnetd_bin(), bin.join("lnetd")).expect("link lnetd");
    let out = lnet_tests::lnetctl_on(&ctl, &sock, &["lnet", "configure"]);
    // Whatever happened, a daemon may now run: own it before asserting.
    let _d = Client::connect(&sock)
        .ok()
        .and_then(|mut c| c.hello().ok())
        .map(|i| Daemon::adopt(&sock, i.pid));
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
    // (No tcp net: it fails at once; the timeout is 0@lo's, room for a
    // loaded machine.)
    let out = lnetctl(&sock, &["ping", "10.9.9.9@tcp", "0@lo", "--timeout", "30"]);
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

    // lnetd stays, unconfigured (the guard stops it).
    ok(&lnetctl(&sock, &["lnet", "unconfigure"]));
    assert!(sock.exists());
    let out = lnetctl(&sock, &["net", "show"]);
    assert!(text(&out.stderr).contains("LNet stack down"));
}

/// Plugins: load by path, show, a net of the plugin's own type, unload
/// refused while in use, `--force`, and the "code stays mapped" notice.
#[test]
fn plugin_load_show_unload() {
    let so = vendor_plugin();
    let dir = TempDir::new("plugin");
    let sock = dir.socket();
    let _d = Daemon::start(&sock, &[]);
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

/// `set <tunable>` and `global show` (lnetctl.md §2.8, §2.9), before and
/// after `lnet configure`, with upstream's error blocks and exit codes.
#[test]
fn set_and_global_show() {
    let dir = TempDir::new("global");
    let sock = dir.socket();
    let _d = Daemon::start(&sock, &[]);
    // Readable and writable before LNet is configured, as with a loaded
    // module; `lnet configure` keeps what was set.
    assert_eq!(ok(&lnetctl(&sock, &["global", "show"])), GLOBAL_DEFAULTS);
    ok(&lnetctl(&sock, &["set", "recovery_limit", "30"]));
    assert_eq!(
        lnetctl(&sock, &["set", "retry_count", "151"]).status.code(),
        Some(195)
    );
    let with_limit = GLOBAL_DEFAULTS.replace("recovery_limit: 0", "recovery_limit: 30");
    assert_eq!(ok(&lnetctl(&sock, &["global", "show"])), with_limit);
    ok(&lnetctl(&sock, &["lnet", "configure"]));
    assert_eq!(ok(&lnetctl(&sock, &["global", "show", "-v"])), with_limit);
    ok(&lnetctl(&sock, &["set", "recovery_limit", "0"]));
    assert_eq!(ok(&lnetctl(&sock, &["global", "show"])), GLOBAL_DEFAULTS);

    ok(&lnetctl(&sock, &["set", "retry_count", "3"]));
    ok(&lnetctl(&sock, &["set", "discovery", "0"]));
    ok(&lnetctl(&sock, &["set", "max_interfaces", "8"]));
    ok(&lnetctl(&sock, &["set", "numa_range", "0x10"]));
    let g = ok(&lnetctl(&sock, &["global", "show"]));
    assert!(
        g.contains("    numa_range: 16\n    max_interfaces: 4096\n    discovery: 0\n")
            && g.contains("    retry_count: 3\n")
            && g.contains("    lnd_timeout: 37\n"),
        "{g}"
    );

    // A value the daemon refuses: -61 (exit 195), classic block, no change.
    let out = lnetctl(&sock, &["set", "retry_count", "200"]);
    assert_eq!(out.status.code(), Some(195));
    assert_eq!(
        text(&out.stderr),
        "add:\n    - retry_count:\n          errno: -61\n          descr: \"cannot configure retry count: Invalid argument\"\n"
    );
    // Client-side checks: -22 (234); parse errors -1 (255).
    let out = lnetctl(&sock, &["set", "response_tracking", "5"]);
    assert_eq!(out.status.code(), Some(234));
    assert!(text(&out.stderr).contains("descr: \"Valid values are: 0, 1, 2, or 3\""));
    let out = lnetctl(&sock, &["set", "transaction_timeout", "x"]);
    assert_eq!(out.status.code(), Some(255));
    assert_eq!(
        text(&out.stderr),
        "parser:\n    - set:\n          errno: -1\n          descr: cannot parse transaction timeout value\n"
    );
    // The value is mandatory: help and -22.
    let out = lnetctl(&sock, &["set", "recovery_limit"]);
    assert_eq!(out.status.code(), Some(234));
    assert!(text(&out.stdout).starts_with("set recovery_limit: "));
    let g = ok(&lnetctl(&sock, &["global", "show"]));
    assert!(
        g.contains("    retry_count: 3\n    transaction_timeout: 150\n"),
        "{g}"
    );

    // Health off forces retries off; then retries cannot come back.
    ok(&lnetctl(&sock, &["set", "health_sensitivity", "0"]));
    let g = ok(&lnetctl(&sock, &["global", "show"]));
    assert!(g.contains("    retry_count: 0\n"), "{g}");
    assert_eq!(
        lnetctl(&sock, &["set", "retry_count", "1"]).status.code(),
        Some(195)
    );

    // Every key of global show but lnd_timeout is a `set` sub-command.
    for line in GLOBAL_DEFAULTS.lines().skip(1) {
        let (k, v) = line.trim().split_once(": ").expect("key: value");
        if k == "lnd_timeout" || k == "retry_count" {
            continue;
        }
        ok(&lnetctl(&sock, &["set", k, v]));
    }
    let g = ok(&lnetctl(&sock, &["global", "show"]));
    assert_eq!(
        g,
        GLOBAL_DEFAULTS
            .replace("retry_count: 2", "retry_count: 0")
            .replace("lnd_timeout: 49", "lnd_timeout: 149")
    );

    // stats reset zeroes the counters.
    ok(&lnetctl(&sock, &["ping", "0@lo"]));
    let s = ok(&lnetctl(&sock, &["stats", "show"]));
    assert!(!s.contains("    send_count: 0\n"), "{s}");
    ok(&lnetctl(&sock, &["stats", "reset"]));
    let v = ok(&lnetctl(&sock, &["net", "show", "-v"]));
    assert!(
        v.contains("            statistics:\n                  send_count: 0\n                  recv_count: 0\n"),
        "per-NI statistics are reset too: {v}"
    );
    let s = ok(&lnetctl(&sock, &["stats", "show"]));
    assert!(
        s.contains("    send_count: 0\n") && s.contains("    recv_count: 0\n"),
        "{s}"
    );
}

fn write(dir: &TempDir, name: &str, body: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, body).expect("write file");
    p.to_str().expect("utf-8 path").to_string()
}

/// `export --backup` of a node, imported on a fresh node, exports the same
/// bytes; a bad document changes nothing and names what is wrong.
#[test]
fn export_import_round_trip() {
    let so = vendor_plugin().to_str().expect("utf-8 path");
    let dir = TempDir::new("export");
    let a = dir.join("a.sock");
    let b = dir.join("b.sock");
    let _da = Daemon::start(&a, &[]);
    let _db = Daemon::start(&b, &[]);
    for s in [&a, &b] {
        ok(&lnetctl(s, &["lnet", "configure"]));
        ok(&lnetctl(s, &["plugin", "load", so]));
    }
    // A fresh node exports only its global block.
    assert_eq!(ok(&lnetctl(&a, &["export", "--backup"])), GLOBAL_DEFAULTS);

    ok(&lnetctl(
        &a,
        &[
            "net",
            "add",
            "--net",
            "vnd",
            "--if",
            "fabric0,fabric1",
            "--peer-cr",
            "16",
            "--credits",
            "512",
        ],
    ));
    ok(&lnetctl(
        &a,
        &["net", "add", "--net", "vnd1", "--if", "fabric2"],
    ));
    ok(&lnetctl(&a, &["set", "retry_count", "1"]));
    ok(&lnetctl(&a, &["set", "recovery_limit", "60"]));
    ok(&lnetctl(
        &a,
        &["udsp", "add", "--src", "vnd", "--prio", "1"],
    ));
    ok(&lnetctl(
        &a,
        &["udsp", "add", "--dst", "vnd1", "--idx", "0"],
    ));
    let exported = ok(&lnetctl(&a, &["export", "-b"]));
    assert!(
        exported.starts_with("net:\n-     net type: vnd\n      local NI(s):\n      -     interfaces:\n                  0: fabric0\n            tunables:\n"),
        "{exported}"
    );
    assert!(
        exported.contains("                  credits: 512\n"),
        "{exported}"
    );
    assert!(
        exported.ends_with(
            "    max_recovery_ping_interval: 900\nudsp:\n    - idx: 0\n      dst: vnd1\n      action:\n          priority: 0\n    - idx: 1\n      src: vnd\n      action:\n          priority: 1\n"
        ),
        "{exported}"
    );
    assert!(
        !exported.contains("nid:") && !exported.contains("timeout: 4"),
        "{exported}"
    );
    let file = write(&dir, "lnet.conf", &exported);
    ok(&lnetctl(
        &a,
        &[
            "export",
            "--backup",
            &dir.join("again.conf").to_string_lossy(),
        ],
    ));
    assert_eq!(
        std::fs::read_to_string(dir.join("again.conf")).expect("export FILE"),
        exported
    );

    ok(&lnetctl(&b, &["import", &file]));
    assert_eq!(
        ok(&lnetctl(&b, &["export", "--backup"])),
        exported,
        "byte for byte"
    );
    // Importing it again: the NIs exist; the error names the net.
    let out = lnetctl(&b, &["import", "--add", &file]);
    assert_eq!(out.status.code(), Some(234));
    assert!(
        text(&out.stderr).contains("Failed to configure NI on net 'vnd' rc = -22"),
        "{}",
        text(&out.stderr)
    );
    // --del removes what the document lists.
    ok(&lnetctl(&b, &["import", "--del", &file]));
    let left = ok(&lnetctl(&b, &["export", "--backup"]));
    assert!(!left.contains("net:") && !left.contains("udsp:"), "{left}");

    // A bad document: earlier sections apply, the bad key stops the rest.
    let before = ok(&lnetctl(&b, &["global", "show"]));
    let bad = write(
        &dir,
        "bad.conf",
        "global:\n    numa_range: 2\nbogus:\n    x: 1\nglobal:\n    retry_count: 0\n",
    );
    let out = lnetctl(&b, &["import", &bad]);
    assert_eq!(out.status.code(), Some(234));
    assert_eq!(
        text(&out.stderr),
        "---\nadd:\n-     import:\n      errno: -22\n      descr: ! \"invalid key 'bogus'\"\n...\n"
    );
    let after = ok(&lnetctl(&b, &["global", "show"]));
    assert_eq!(after, before.replace("numa_range: 0", "numa_range: 2"));
    // Bad values and YAML name what is wrong; nothing changes.
    let bad = write(
        &dir,
        "bad2.conf",
        "net:\n  - net type: vnd\n    tunables:\n      credits: lots\n",
    );
    let out = lnetctl(&b, &["import", &bad]);
    assert_eq!(out.status.code(), Some(234));
    assert!(text(&out.stderr).contains("invalid value 'lots' for key 'credits'"));
    let bad = write(&dir, "bad3.conf", "net: [\n");
    let out = lnetctl(&b, &["import", &bad]);
    assert_eq!(out.status.code(), Some(234));
    assert!(
        text(&out.stderr).starts_with("Parser error: "),
        "{}",
        text(&out.stderr)
    );
    let out = lnetctl(&b, &["import", "/nonexistent/lnet.conf"]);
    assert_eq!(out.status.code(), Some(254));
    assert_eq!(
        text(&out.stderr),
        "yaml:\n    - builder:\n          errno: -1\n          descr: cannot open '/nonexistent/lnet.conf': No such file or directory\n"
    );
    assert_eq!(ok(&lnetctl(&b, &["global", "show"])), after);

    // --exec runs ping sections; other commands' sections are invalid there.
    let ping = write(
        &dir,
        "ping.yaml",
        "ping:\n    nids: [ 0@lo ]\n    timeout: 2000\n",
    );
    ok(&lnetctl(&b, &["import", "--exec", &ping]));
    let out = lnetctl(&b, &["import", "--exec", &bad]);
    assert_eq!(out.status.code(), Some(234), "a YAML error");
    let glob = write(&dir, "g.yaml", "global:\n    numa_range: 1\n");
    let out = lnetctl(&b, &["import", "--exec", &glob]);
    assert!(
        text(&out.stderr).contains("invalid key 'global'"),
        "{}",
        text(&out.stderr)
    );
    let out = lnetctl(&b, &["import", &ping]);
    assert!(
        text(&out.stderr).contains("invalid key 'ping'"),
        "{}",
        text(&out.stderr)
    );
}

/// `net del --if` / `--nid`, `net set`, `udsp` errors, end to end.
#[test]
fn net_del_set_and_udsp() {
    let so = vendor_plugin().to_str().expect("utf-8 path");
    let dir = TempDir::new("netdel");
    let sock = dir.socket();
    let _d = Daemon::start(&sock, &[]);
    ok(&lnetctl(&sock, &["lnet", "configure"]));
    ok(&lnetctl(&sock, &["plugin", "load", so]));
    ok(&lnetctl(
        &sock,
        &[
            "net",
            "add",
            "--net",
            "vnd",
            "--if",
            "fabric0,fabric1,fabric2",
        ],
    ));
    let show = ok(&lnetctl(&sock, &["net", "show", "--net", "vnd"]));
    let nids: Vec<String> = show
        .lines()
        .filter_map(|l| {
            l.trim()
                .strip_prefix("-     nid: ")
                .or_else(|| l.trim().strip_prefix("nid: "))
        })
        .map(str::to_string)
        .collect();
    assert_eq!(nids.len(), 3, "{show}");
    ok(&lnetctl(
        &sock,
        &["net", "del", "--net", "vnd", "--if", "fabric1"],
    ));
    ok(&lnetctl(&sock, &["net", "del", "--nid", &nids[2]]));
    let show = ok(&lnetctl(&sock, &["net", "show", "--net", "vnd"]));
    assert!(show.contains(&format!("nid: {}\n", nids[0])), "{show}");
    assert!(
        !show.contains(&nids[1]) && !show.contains(&nids[2]),
        "{show}"
    );
    let out = lnetctl(&sock, &["net", "del", "--net", "vnd", "--if", "fabric9"]);
    assert_eq!(out.status.code(), Some(234));
    assert!(
        text(&out.stderr).contains("errno: -19"),
        "{}",
        text(&out.stderr)
    );
    let out = lnetctl(&sock, &["net", "del", "--net", "vnd", "--nid", &nids[0]]);
    assert_eq!(out.status.code(), Some(234));
    assert_eq!(text(&out.stdout), "--net is invalid with --nid option\n");
    let out = lnetctl(&sock, &["net", "del"]);
    assert_eq!(
        text(&out.stdout),
        "missing mandatory parameters in NI config: 'network'\n"
    );

    // net set: argument checks are upstream's.
    let out = lnetctl(&sock, &["net", "set", "--lnd-timeout", "5"]);
    assert_eq!(out.status.code(), Some(234));
    assert!(text(&out.stderr).contains("\"Specified --lnd-timeout without --net option\""));
    let out = lnetctl(&sock, &["net", "set", "--conns-per-peer", "200", "--all"]);
    assert_eq!(out.status.code(), Some(255));
    ok(&lnetctl(
        &sock,
        &["net", "set", "--conns-per-peer", "-1", "--all"],
    ));
    let out = lnetctl(&sock, &["net", "set", "--net", "lo", "--lnd-timeout", "5"]);
    assert_eq!(out.status.code(), Some(234));
    assert!(
        text(&out.stderr).contains("Net lo does not accept a LND timeout"),
        "{}",
        text(&out.stderr)
    );

    // udsp: nothing to show, rules, and upstream's refusals.
    assert_eq!(ok(&lnetctl(&sock, &["udsp", "show"])), "");
    ok(&lnetctl(
        &sock,
        &["udsp", "add", "--src", "vnd0", "--priority", "2"],
    ));
    ok(&lnetctl(
        &sock,
        &["udsp", "add", "--dst", "1.1.1.1@tcp", "--priority", "1"],
    ));
    assert_eq!(
        ok(&lnetctl(&sock, &["udsp", "show", "--idx", "1"])),
        "udsp:\n    - idx: 1\n      dst: 1.1.1.1@tcp\n      action:\n          priority: 1\n"
    );
    // The engine applied them: the net rule is the NI's net priority, and a
    // NID rule inserted first gives that NI its own priority.
    ok(&lnetctl(
        &sock,
        &[
            "udsp",
            "add",
            "--src",
            &nids[0],
            "--priority",
            "5",
            "--idx",
            "0",
        ],
    ));
    let v4 = ok(&lnetctl(&sock, &["net", "show", "--net", "vnd", "-v", "4"]));
    assert!(
        v4.contains("            udsp info:\n                  net priority: 2\n                  nid priority: 5\n"),
        "{v4}"
    );
    ok(&lnetctl(&sock, &["udsp", "del", "--idx", "0"]));
    let v4 = ok(&lnetctl(&sock, &["net", "show", "--net", "vnd", "-v", "4"]));
    assert!(
        v4.contains("            udsp info:\n                  net priority: 2\n                  nid priority: -1\n"),
        "{v4}"
    );
    // A net name no LND provides cannot be a rule.
    let out = lnetctl(&sock, &["udsp", "add", "--src", "nonet", "--priority", "1"]);
    assert_ne!(out.status.code(), Some(0));
    let out = lnetctl(&sock, &["udsp", "del", "--idx", "7"]);
    assert_eq!(out.status.code(), Some(254));
    assert!(text(&out.stderr).contains("descr: \"cannot del udsp: No such file or directory\""));
    let out = lnetctl(&sock, &["udsp", "del"]);
    assert_eq!(text(&out.stdout), "Must specify --idx or --all\n");
    let out = lnetctl(&sock, &["udsp", "add", "--src", "tcp", "--rte", "tcp"]);
    assert_eq!(out.status.code(), Some(234));
    ok(&lnetctl(&sock, &["udsp", "del", "--all"]));
    assert_eq!(ok(&lnetctl(&sock, &["udsp", "show"])), "");
}

/// A network namespace (the shared guard) with veth interfaces inside it.
struct Netns(lnet_tests::netns::NetNs);

impl Netns {
    fn new(tag: &str, ifs: &[(&str, &str)]) -> Netns {
        let name = format!("lnetcli{tag}{}", std::process::id());
        let ns = lnet_tests::netns::NetNs::new(&name).expect("create the namespace");
        let ip = |args: &[&str]| ns.ip(args).expect("ip in the namespace");
        for (ifname, addr) in ifs {
            // A veth pair inside the namespace: both ends up, so it has carrier.
            let peer = format!("{ifname}p");
            ip(&["link", "add", ifname, "type", "veth", "peer", "name", &peer]);
            ip(&["addr", "add", addr, "dev", ifname]);
            ip(&["link", "set", &peer, "up"]);
            ip(&["link", "set", ifname, "up"]);
        }
        Netns(ns)
    }

    /// Starts lnetd inside the namespace.
    fn lnetd(&self, socket: &Path, extra: &[&str]) -> Daemon {
        let mut cmd = self.0.command(lnetd_bin());
        cmd.stdout(Stdio::null()).stderr(Stdio::null());
        Daemon::spawn(cmd, socket, extra)
    }
}

fn interfaces_of(sock: &Path, net: &str) -> Vec<String> {
    ok(&lnetctl(sock, &["net", "show", "--net", net]))
        .lines()
        .filter_map(|l| l.trim().strip_prefix("0: "))
        .map(str::to_string)
        .collect()
}

/// ip2nets (`net add --ip2net`, an `ip2nets:` import, the `ip2nets=`
/// start-up parameter) and `net add --nid`, matched against the interfaces
/// of the daemon's network namespace. Needs root (`ip netns`).
#[test]
#[ignore = "needs root: creates a network namespace with veth interfaces"]
fn ip2nets_and_nid_in_a_namespace() {
    let ns = Netns::new(
        "ip2n",
        &[
            ("dm1", "10.77.1.1/24"),
            ("dm2", "10.77.2.1/24"),
            ("dm3", "10.78.3.1/24"),
        ],
    );
    let dir = TempDir::new("ip2nets");
    let sock = dir.socket();
    let _d = ns.lnetd(&sock, &[]);
    ok(&lnetctl(&sock, &["lnet", "configure"]));

    ok(&lnetctl(
        &sock,
        &["net", "add", "--ip2net", "tcp1 10.77.2.*; tcp1 10.77.*.*"],
    ));
    assert_eq!(interfaces_of(&sock, "tcp1"), ["dm2"], "first match wins");
    ok(&lnetctl(
        &sock,
        &[
            "net",
            "add",
            "--ip2net",
            "tcp4(dm3) 10.77.*.*; tcp4 10.[77-78].[1,3].*",
        ],
    ));
    assert_eq!(interfaces_of(&sock, "tcp4"), ["dm1", "dm3"]);
    ok(&lnetctl(&sock, &["net", "add", "--nid", "10.77.1.1@tcp"]));
    let show = ok(&lnetctl(&sock, &["net", "show", "--net", "tcp"]));
    assert!(show.contains("      -     nid: 10.77.1.1@tcp\n"), "{show}");
    assert_eq!(interfaces_of(&sock, "tcp"), ["dm1"]);
    let out = lnetctl(&sock, &["net", "add", "--nid", "10.9.9.9@tcp2"]);
    assert_eq!(out.status.code(), Some(234));
    assert!(
        text(&out.stderr).contains("errno: -19"),
        "{}",
        text(&out.stderr)
    );
    let out = lnetctl(
        &sock,
        &["net", "add", "--net", "tcp5", "--if", "dm1", "--cpt", "[1]"],
    );
    assert_eq!(out.status.code(), Some(234));
    assert!(
        text(&out.stderr).contains("errno: -34"),
        "{}",
        text(&out.stderr)
    );

    let conf = "ip2nets:\n  - net-spec: tcp2\n    interfaces:\n        0: dm9\n  - net-spec: tcp2\n    ip-range:\n        0: 10.78.*.*\n  - net-spec: tcp2\n    ip-range:\n        0: \"*.*.*.*\"\n";
    let f = write(&dir, "ip2nets.yaml", conf);
    ok(&lnetctl(&sock, &["import", &f]));
    assert_eq!(interfaces_of(&sock, "tcp2"), ["dm3"]);
    let f = write(
        &dir,
        "none.yaml",
        "ip2nets:\n  - net-spec: tcp3\n    ip-range:\n        0: 192.168.250.*\n",
    );
    let out = lnetctl(&sock, &["import", &f]);
    assert_eq!(out.status.code(), Some(234));
    assert!(
        text(&out.stderr).contains("No ip2nets rules applied"),
        "{}",
        text(&out.stderr)
    );
    ok(&lnetctl(&sock, &["lnet", "unconfigure"]));

    // The start-up parameter, applied by `lnet configure --all`.
    let dir2 = TempDir::new("ip2nets-param");
    let sock2 = dir2.socket();
    let _d2 = ns.lnetd(&sock2, &["--param", "ip2nets=tcp7 10.78.3.*"]);
    ok(&lnetctl(&sock2, &["lnet", "configure", "--all"]));
    assert_eq!(interfaces_of(&sock2, "tcp7"), ["dm3"]);
    ok(&lnetctl(&sock2, &["lnet", "unconfigure"]));
}
