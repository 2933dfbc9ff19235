//! End to end: `lst` against two real lnetd processes that reach each other
//! over the TCP LND (lnd-sock) on loopback addresses 127.0.0.1 and
//! 127.0.0.2, configured with `lnetctl` only. Ping and brw tests run for
//! real; misuse gets upstream's messages.
//!
//! lnetd and the lnd-sock plugin belong to other packages: the first test
//! builds them into this target directory (a no-op when fresh). lnetd
//! finds `liblnd_sock.so` next to itself when `net add --net tcp` needs it.
//! Every daemon is owned by a guard that kills it on drop.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use liblnetconfig::Client;

const LST: &str = env!("CARGO_BIN_EXE_lst");
const LNETCTL: &str = env!("CARGO_BIN_EXE_lnetctl");

/// Builds lnetd and the sock plugin next to lnetctl; lnetd's path.
fn lnetd_bin() -> &'static Path {
    static LNETD: OnceLock<PathBuf> = OnceLock::new();
    LNETD.get_or_init(|| {
        let bin_dir = Path::new(LNETCTL).parent().expect("bin dir");
        // Two builds: `--bin lnetd` would filter lnd-sock's library out.
        for args in [
            &["-p", "lnetd", "--bin", "lnetd"][..],
            &["-p", "lnd-sock", "--lib"][..],
        ] {
            let mut cmd = Command::new(env!("CARGO"));
            cmd.args(["build", "--quiet"])
                .args(args)
                .arg("--target-dir")
                .arg(bin_dir.parent().expect("target dir"));
            if bin_dir.ends_with("release") {
                cmd.arg("--release");
            }
            let st = cmd.status().expect("run cargo build");
            assert!(
                st.success(),
                "cannot build lnetd and lnd-sock: run `cargo build -p lnetd -p lnd-sock`"
            );
        }
        assert!(
            bin_dir.join("liblnd_sock.so").is_file(),
            "no liblnd_sock.so"
        );
        bin_dir.join("lnetd")
    })
}

/// A temporary directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!(
            "lst-e2e-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("temp dir");
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One lnetd, killed on drop.
struct Daemon {
    child: Child,
    socket: PathBuf,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port nobody listens on now (both daemons bind it on their own address).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Starts lnetd, then `lnet configure` and `net add --net tcp --if ADDR`.
fn node(dir: &TempDir, name: &str, addr: &str, port: u16) -> Daemon {
    let socket = dir.0.join(format!("{name}.sock"));
    let child = Command::new(lnetd_bin())
        .arg("--socket")
        .arg(&socket)
        .arg("--foreground")
        .arg("--param")
        .arg(format!("accept_port={port}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn lnetd");
    let d = Daemon { child, socket };
    let deadline = Instant::now() + Duration::from_secs(20);
    while Client::connect(&d.socket)
        .and_then(|mut c| c.hello())
        .is_err()
    {
        assert!(Instant::now() < deadline, "lnetd {name} does not answer");
        std::thread::sleep(Duration::from_millis(20));
    }
    ok(&lnetctl(&d.socket, &["lnet", "configure"]));
    ok(&lnetctl(
        &d.socket,
        &["net", "add", "--net", "tcp", "--if", addr],
    ));
    d
}

fn lnetctl(socket: &Path, args: &[&str]) -> Output {
    Command::new(LNETCTL)
        .arg("--socket")
        .arg(socket)
        .args(args)
        .output()
        .expect("run lnetctl")
}

/// Runs `lst` on `socket` with `LST_SESSION=key` (unset for `None`).
fn lst(socket: &Path, key: Option<&str>, args: &[&str]) -> Output {
    let mut c = Command::new(LST);
    c.arg("--socket").arg(socket).args(args);
    c.env_remove("LST_FEATURES").env_remove("LNET_SOCKET");
    match key {
        Some(k) => c.env("LST_SESSION", k),
        None => c.env_remove("LST_SESSION"),
    };
    c.output().expect("run lst")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[track_caller]
fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "failed: {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// The number after `label` in a stat line (`[R] Avg: 12.5 ...`).
fn figure(block: &str, line_start: &str, label: &str) -> f64 {
    let line = block
        .lines()
        .find(|l| l.starts_with(line_start))
        .unwrap_or_else(|| panic!("no line {line_start} in\n{block}"));
    let rest = &line[line.find(label).expect("label") + label.len()..];
    rest.split_whitespace()
        .next()
        .and_then(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("no number after {label} in {line}"))
}

#[test]
fn ping_and_brw_between_two_daemons() {
    let dir = TempDir::new("run");
    let port = free_port();
    let a = node(&dir, "a", "127.0.0.1", port);
    let _b = node(&dir, "b", "127.0.0.2", port);
    let s = a.socket.as_path();
    let key = Some("4242");

    assert_eq!(
        ok(&lst(s, key, &["new_session", "--timeout", "120", "e2e"])),
        "SESSION: e2e FEATURES: 1 TIMEOUT: 120 FORCE: No\n"
    );
    let show = ok(&lst(s, None, &["show_session"]));
    assert!(
        show.starts_with("e2e ID: ")
            && show.ends_with("@127.0.0.1@tcp, KEY: 4242 FEATURES: 1 NODES: 0\n"),
        "{show}"
    );
    assert_eq!(
        ok(&lst(s, key, &["add_group", "servers", "127.0.0.2@tcp"])),
        "127.0.0.2@tcp are added to session\n"
    );
    assert_eq!(
        ok(&lst(s, key, &["add_group", "clients", "127.0.0.[1]@tcp"])),
        "127.0.0.[1]@tcp are added to session\n"
    );
    assert_eq!(
        ok(&lst(s, key, &["list_group", "servers", "clients"])),
        "\tACTIVE\tBUSY\tDOWN\tUNKNOWN\tTOTAL\n\t1\t0\t0\t0\t1\tservers\n\t1\t0\t0\t0\t1\tclients\n"
    );
    assert_eq!(
        ok(&lst(s, key, &["ping", "--group", "servers"])),
        "\t12345-127.0.0.2@tcp: Active [session: e2e id: 127.0.0.1@tcp]\n"
    );
    ok(&lst(s, key, &["add_batch", "bulk"]));
    assert_eq!(
        ok(&lst(
            s,
            key,
            &[
                "add_test",
                "--batch",
                "bulk",
                "--concurrency",
                "2",
                "--from",
                "clients",
                "--to",
                "servers",
                "brw",
                "write",
                "size=1M",
                "check=simple"
            ]
        )),
        "Test was added successfully\n"
    );
    assert_eq!(
        ok(&lst(
            s,
            key,
            &["add_test", "--batch", "bulk", "--from", "clients", "--to", "servers", "ping"]
        )),
        "Test was added successfully\n"
    );
    let lb = ok(&lst(s, key, &["list_batch", "bulk"]));
    assert!(
        lb.starts_with("Batch: bulk Tests: 2 State: 176\n")
            && lb.contains("\tTest 1(brw) (loop: -1, concurrency: 2)\n")
            && lb.contains("\tTest 2(ping) (loop: -1, concurrency: 1)\n"),
        "{lb}"
    );
    assert_eq!(ok(&lst(s, key, &["run", "bulk"])), "bulk is running now\n");
    assert_eq!(
        ok(&lst(s, key, &["query", "bulk"])),
        "bulk [0] is running\n"
    );
    assert_eq!(
        ok(&lst(s, key, &["query", "bulk", "--all"])),
        "12345-127.0.0.1@tcp [Active]: Running\n"
    );
    assert_eq!(
        ok(&lst(s, key, &["ping", "--nodes", "127.0.0.[1-2]@tcp"])),
        "\t12345-127.0.0.1@tcp: Active [session: e2e id: 127.0.0.1@tcp]\n\
         \t12345-127.0.0.2@tcp: Active [session: e2e id: 127.0.0.1@tcp]\n"
    );
    assert_eq!(
        ok(&lst(s, key, &["list_batch"])),
        "1) batch\n2) bulk\nTotal 2 batches\n"
    );
    assert_eq!(
        ok(&lst(s, key, &["list_batch", "bulk", "--server", "--all"])),
        "\t12345-127.0.0.2@tcp: Active\nTotal 1 nodes\n"
    );

    let st = ok(&lst(
        s,
        key,
        &["stat", "--count", "1", "--delay", "1", "servers"],
    ));
    assert!(
        st.starts_with("[LNet Rates of servers]\n[R] Avg: ")
            && st.contains("\n[LNet Bandwidth of servers]\n[R] Avg: ")
            && st.contains(" MiB/s Min: "),
        "{st}"
    );
    assert_eq!(st.lines().count(), 6, "one report: {st}");
    let recv_bw = figure(
        &st[st.find("[LNet Bandwidth").expect("bw")..],
        "[R] Avg:",
        "Avg:",
    );
    assert!(recv_bw > 1.0, "servers receive the writes: {st}");
    let rate = figure(&st, "[R] Avg:", "Avg:");
    assert!(rate > 2.0, "{st}");
    // --mbs and column selection.
    let st = ok(&lst(
        s,
        key,
        &[
            "stat", "--count", "1", "--delay", "1", "--bw", "--write", "--max", "--mbs", "clients",
        ],
    ));
    assert!(
        st.starts_with("[LNet Bandwidth of clients]\n[W] Max: ") && st.ends_with(" MB/s  \n"),
        "{st}"
    );

    let stop = ok(&lst(s, key, &["stop", "bulk"]));
    assert!(stop.ends_with("Batch is stopped\n"), "{stop}");
    assert_eq!(
        ok(&lst(s, key, &["query", "bulk"])),
        "bulk [0] is stopped\n"
    );
    let errs = lst(s, key, &["show_error", "servers", "clients"]);
    assert_eq!(
        ok(&errs),
        "servers:\nTotal 0 error nodes in servers\nclients:\nTotal 0 error nodes in clients\n"
    );
    // A read test with full data checking runs clean too.
    ok(&lst(s, key, &["add_batch", "rd"]));
    ok(&lst(
        s,
        key,
        &[
            "add_test",
            "--batch",
            "rd",
            "--loop",
            "50",
            "--from",
            "clients",
            "--to",
            "servers",
            "brw",
            "read",
            "size=64k",
            "check=full",
        ],
    ));
    ok(&lst(s, key, &["run", "rd"]));
    let deadline = Instant::now() + Duration::from_secs(60);
    while ok(&lst(s, key, &["query", "rd"])) != "rd [0] is stopped\n" {
        assert!(Instant::now() < deadline, "50 reads did not finish");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        ok(&lst(s, key, &["show_error", "--session", "clients"])),
        "clients:\nTotal 0 error nodes in clients\n"
    );
    assert_eq!(ok(&lst(s, key, &["end_session"])), "session is ended\n");
}

#[test]
fn misuse_gets_upstreams_messages() {
    let dir = TempDir::new("misuse");
    let port = free_port();
    let a = node(&dir, "a", "127.0.0.1", port);
    let s = a.socket.as_path();

    let out = lst(s, None, &["new_session", "x"]);
    assert_eq!(out.status.code(), Some(255));
    assert_eq!(
        text(&out.stderr),
        "Can't find env LST_SESSION or value is not valid\n"
    );
    let out = lst(s, Some("1"), &["show_session"]);
    assert_eq!(text(&out.stderr), "No session exists\n");
    assert_eq!(out.status.code(), Some(255));
    let out = lst(s, Some("1"), &["add_group", "g", "127.0.0.1@tcp"]);
    assert_eq!(text(&out.stderr), "No session exists\n");

    ok(&lst(s, Some("1"), &["new_session", "first"]));
    // Without a command, lst reads commands from standard input.
    let mut child = Command::new(LST)
        .env("LNET_SOCKET", s)
        .env("LST_SESSION", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("lst");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin
            .write_all(b"show_session\n\nlist_group\nquit\nlist_batch\n")
            .expect("write");
    }
    let out = child.wait_with_output().expect("lst");
    let t = text(&out.stdout);
    assert!(
        t.starts_with("first ID: ") && t.ends_with("NODES: 0\nTotal 0 groups\n"),
        "{t}"
    );
    let out = lst(s, Some("1"), &["new_session", "second"]);
    assert_eq!(text(&out.stderr), "Session already exists\n");
    let out = lst(s, Some("2"), &["list_group"]);
    assert_eq!(text(&out.stderr), "Unmatched session key or not root\n");
    let out = lst(s, Some("1"), &["list_group", "nope"]);
    assert_eq!(text(&out.stderr), "Can't find nope in current session\n");
    let out = lst(s, Some("1"), &["run", "nobatch"]);
    assert_eq!(text(&out.stderr), "Can't find nobatch in current session\n");
    let out = lst(
        s,
        Some("1"),
        &["add_test", "--from", "a", "--to", "b", "brw", "size=2M"],
    );
    assert!(
        text(&out.stderr).starts_with("Size exceed limitation: 2097152 bytes"),
        "{}",
        text(&out.stderr)
    );
    let out = lst(
        s,
        Some("1"),
        &["add_test", "--from", "nope", "--to", "nope", "ping"],
    );
    assert_eq!(text(&out.stderr), "Can't find nope in current session\n");
    let out = lst(s, Some("1"), &["add_group", "bad", "127.0.0.[5-2]@tcp"]);
    assert_eq!(
        text(&out.stderr),
        "Syntax error in \"127.0.0.[5-2]@tcp\"\nIgnore invalid id list 127.0.0.[5-2]@tcp\n"
    );
    // A node where nobody listens: the RPC fails, the node is Down.
    let out = lst(s, Some("1"), &["add_group", "ghost", "127.0.0.3@tcp"]);
    assert_eq!(out.status.code(), Some(254), "-2: RPC errors");
    let err = text(&out.stderr);
    assert!(
        err.starts_with("create session RPC failed on 12345-127.0.0.3@tcp: "),
        "{err}"
    );
    assert_eq!(
        ok(&lst(s, Some("1"), &["list_group", "--down", "ghost"])),
        "Group [ ghost ]\n\t12345-127.0.0.3@tcp: Down\nTotal 1 nodes [ ghost ]\n"
    );
    let out = lst(s, Some("1"), &["add_group", "ghost", "127.0.0.4@tcp"]);
    assert_eq!(text(&out.stderr), "Group ghost already exists\n");
    let out = lst(s, Some("1"), &["update_group", "ghost", "--refresh"]);
    assert_eq!(out.status.code(), Some(254));
    assert!(
        text(&out.stderr).starts_with("Updating group RPC failed on 12345-127.0.0.3@tcp: "),
        "{}",
        text(&out.stderr)
    );
    let out = lst(
        s,
        Some("1"),
        &["update_group", "ghost", "--refresh", "--clean", "down"],
    );
    assert_eq!(out.status.code(), Some(255));
    assert!(text(&out.stderr).contains("Usage: lst update_group"));
    ok(&lst(
        s,
        Some("1"),
        &["update_group", "ghost", "--clean", "invalid"],
    ));
    assert_eq!(
        ok(&lst(s, Some("1"), &["list_group", "ghost"])),
        "\tACTIVE\tBUSY\tDOWN\tUNKNOWN\tTOTAL\n\t0\t0\t0\t0\t0\tghost\n"
    );
    assert_eq!(
        ok(&lst(s, Some("1"), &["del_group", "ghost"])),
        "Group is deleted\n"
    );
    let out = lst(s, Some("1"), &["del_group", "ghost"]);
    assert_eq!(text(&out.stderr), "Can't find ghost in current session\n");
    let out = lst(s, Some("1"), &["stat", "--timeout", "0", "ghost"]);
    assert_eq!(text(&out.stderr), "Invalid timeout or delay value\n");
    let out = lst(s, Some("1"), &["bogus"]);
    assert_eq!(out.status.code(), Some(255));
    let out = Command::new(LST)
        .args(["--socket"])
        .arg(s)
        .args(["show_session"])
        .env("LST_FEATURES", "2")
        .output()
        .expect("lst");
    assert_eq!(
        text(&out.stderr),
        "Unsupported session features 2, only support these features so far: 1\n"
    );
    assert_eq!(
        ok(&lst(s, Some("3"), &["new_session", "--force", "third"])),
        "SESSION: third FEATURES: 1 TIMEOUT: 300 FORCE: Yes\n"
    );
    let out = lst(s, Some("1"), &["end_session"]);
    assert_eq!(text(&out.stderr), "Unmatched session key or not root\n");
    assert_eq!(
        ok(&lst(s, Some("3"), &["end_session"])),
        "session is ended\n"
    );
}
