//! End to end: `lst` against two real lnetd processes that reach each other
//! over the TCP LND (lnd-sock) on loopback addresses 127.0.0.1 and
//! 127.0.0.2, configured with `lnetctl` only. Ping and brw tests run for
//! real; misuse gets upstream's messages.
//!
//! lnetd and the lnd-sock plugin belong to other packages: `lnet_tests::bins`
//! builds them into this target directory on first use (a no-op when
//! fresh). lnetd finds `liblnd_sock.so` next to itself when `net add --net
//! tcp` needs it. Every daemon is owned by `lnet_tests::daemon::Daemon`,
//! which kills it on drop.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use lnet_tests::daemon::Daemon;
use lnet_tests::{ok, text, wait_for, TempDir};

const LST: &str = env!("CARGO_BIN_EXE_lst");
const LNETCTL: &str = env!("CARGO_BIN_EXE_lnetctl");

/// Starts lnetd, then `lnet configure` and `net add --net tcp --if ADDR`.
fn node(dir: &TempDir, name: &str, addr: &str, port: u16) -> Daemon {
    // lnetd finds the TCP LND next to itself.
    lnet_tests::bins::sock_plugin();
    let port = format!("accept_port={port}");
    let d = Daemon::start(dir.join(format!("{name}.sock")), &["--param", &port]);
    ok(&lnetctl(d.socket(), &["lnet", "configure"]));
    ok(&lnetctl(
        d.socket(),
        &["net", "add", "--net", "tcp", "--if", addr],
    ));
    d
}

fn lnetctl(socket: &Path, args: &[&str]) -> Output {
    lnet_tests::lnetctl_on(Path::new(LNETCTL), socket, args)
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
    let port = lnet_tests::free_port();
    let a = node(&dir, "a", "127.0.0.1", port);
    let _b = node(&dir, "b", "127.0.0.2", port);
    let s = a.socket();
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

    // Sampled again while a one-second report falls in a pause (the start
    // of the batch, or a loaded machine).
    wait_for(
        "servers to receive the writes",
        Duration::from_secs(120),
        || {
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
            let rate = figure(&st, "[R] Avg:", "Avg:");
            if recv_bw > 1.0 && rate > 2.0 {
                Ok(())
            } else {
                Err(st)
            }
        },
    );
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
    // One line per interval, for a person watching a long run.
    let st = ok(&lst(
        s,
        key,
        &["stat", "--count", "2", "--delay", "1", "--line", "servers"],
    ));
    assert_eq!(st.lines().count(), 2, "{st}");
    for l in st.lines() {
        assert!(
            l.len() > 9
                && l.as_bytes()[2] == b':'
                && l[9..].starts_with("servers: ")
                && l.contains(" msg/s ")
                && l.contains(" MiB/s  send ")
                && l.contains("  errors "),
            "{l}"
        );
    }

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
    let port = lnet_tests::free_port();
    let a = node(&dir, "a", "127.0.0.1", port);
    let s = a.socket();

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

/// The `recv_count` of the NI `nid` in `net show -v` output.
fn ni_recv_count(show: &str, nid: &str) -> u64 {
    let at = show
        .find(&format!("nid: {nid}\n"))
        .unwrap_or_else(|| panic!("no NI {nid} in\n{show}"));
    let rest = &show[at..];
    let line = rest
        .lines()
        .find(|l| l.trim_start().starts_with("recv_count: "))
        .expect("recv_count");
    line.trim_start()["recv_count: ".len()..]
        .parse()
        .expect("number")
}

/// UDSP end to end (issue 16 item 5): node a knows node b as a Multi-Rail
/// peer with two NIDs; `udsp add --dst 127.0.0.4@tcp --priority 0` on a
/// sends everything to that NID, `udsp del` spreads it again. Counted on
/// b's NIs with `net show -v`.
#[test]
fn udsp_steers_pings_to_the_preferred_peer_nid() {
    let dir = TempDir::new("udsp");
    let port = lnet_tests::free_port();
    let a = node(&dir, "a", "127.0.0.1", port);
    let b = node(&dir, "b", "127.0.0.2", port);
    ok(&lnetctl(
        b.socket(),
        &["net", "add", "--net", "tcp", "--if", "127.0.0.4"],
    ));
    let (sa, sb) = (a.socket(), b.socket());
    ok(&lnetctl(
        sa,
        &[
            "peer",
            "add",
            "--prim_nid",
            "127.0.0.2@tcp",
            "--nid",
            "127.0.0.4@tcp",
        ],
    ));
    ok(&lnetctl(
        sa,
        &["udsp", "add", "--dst", "127.0.0.4@tcp", "--priority", "0"],
    ));
    let v4 = ok(&lnetctl(sa, &["peer", "show", "-v", "4"]));
    assert!(
        v4.contains("nid: 127.0.0.4@tcp\n            udsp info:\n                  net priority: -1\n                  nid priority: 0\n"),
        "{v4}"
    );
    let pings = |n: usize| {
        for _ in 0..n {
            ok(&lnetctl(sa, &["ping", "127.0.0.2@tcp"]));
        }
    };
    pings(1); // discovery settles
    let counts = || {
        let v = ok(&lnetctl(sb, &["net", "show", "-v"]));
        (
            ni_recv_count(&v, "127.0.0.2@tcp"),
            ni_recv_count(&v, "127.0.0.4@tcp"),
        )
    };
    let before = counts();
    pings(10);
    let after = counts();
    assert_eq!(
        after.0, before.0,
        "nothing to 127.0.0.2@tcp: {before:?} {after:?}"
    );
    assert!(after.1 >= before.1 + 10, "{before:?} {after:?}");
    ok(&lnetctl(sa, &["udsp", "del", "--idx", "0"]));
    let before = counts();
    pings(10);
    let after = counts();
    assert!(
        after.0 > before.0 && after.1 > before.1,
        "both NIDs again: {before:?} {after:?}"
    );
}
