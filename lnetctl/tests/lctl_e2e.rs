//! `lctl` on a real lnetd: fault rules added by either tool show in the
//! other and are deleted/reset by either (lnetctl.md §2.19, last point);
//! a malformed option prints upstream lctl's message and changes nothing;
//! `list_nids`, `which_nid`, `ping`, `get_param`/`set_param`/`list_param`
//! read and write the daemon's state; exit statuses are upstream's.

use std::path::Path;
use std::process::{Command, Output};

use lnet_tests::daemon::Daemon;
use lnet_tests::{text, TempDir};

const LCTL: &str = env!("CARGO_BIN_EXE_lctl");
const LNETCTL: &str = env!("CARGO_BIN_EXE_lnetctl");

fn run(bin: &str, socket: &Path, args: &[&str]) -> Output {
    Command::new(bin)
        .arg("--socket")
        .arg(socket)
        .args(args)
        .env_remove("LNET_SOCKET")
        .output()
        .expect("run")
}

/// Runs; checks exit 0 and an empty stderr; returns stdout.
fn ok(bin: &str, socket: &Path, args: &[&str]) -> String {
    let o = run(bin, socket, args);
    assert!(
        o.status.success() && o.stderr.is_empty(),
        "{bin} {args:?}: {:?} stderr {}",
        o.status.code(),
        text(&o.stderr)
    );
    text(&o.stdout)
}

#[test]
fn fault_rules_are_shared_with_lnetctl() {
    lnet_tests::bins::fault_plugin();
    let dir = TempDir::new("lctl-fault");
    let s = dir.socket();
    let _d = Daemon::start_clean(&s, &[]);
    ok(LNETCTL, &s, &["lnet", "configure"]);
    assert_eq!(
        ok(LCTL, &s, &["net_drop_list"]),
        "LNet drop rules:\nfound total 0\n"
    );
    assert_eq!(
        ok(
            LCTL,
            &s,
            &[
                "net_drop_add",
                "-s",
                "*@tcp",
                "-d",
                "10.0.0.2@tcp",
                "-r",
                "3",
                "-m",
                "GET"
            ]
        ),
        "Added drop rule 255.255.255.255@tcp->10.0.0.2@tcp (1/3)\n"
    );
    // lnetctl sees lctl's rule.
    let show = ok(LNETCTL, &s, &["fault", "drop", "show"]);
    assert!(
        show.contains("      fa_src: 255.255.255.255@tcp\n      fa_dst: 10.0.0.2@tcp\n")
            && show.contains("      fa_msg_mask: 4\n      da_rate: 3\n"),
        "{show}"
    );
    // lctl sees lnetctl's (two-word form), newest first as upstream.
    ok(
        LNETCTL,
        &s,
        &[
            "fault", "drop", "add", "-s", "*", "-d", "*", "-i", "10", "-p", "4",
        ],
    );
    // A portal mask without --message matches PUT and GET (mask 6).
    let got = ok(LCTL, &s, &["net_drop", "list"]);
    assert_eq!(
        got,
        "LNet drop rules:\n\
         <?>-><?> (1/0 | 10) ptl 0x10, msg 6, 0/0, PUT 0, ACK 0, GET 0, REP 0\n\
         255.255.255.255@tcp->10.0.0.2@tcp (1/3 | 0) ptl 0, msg 4, 0/0, PUT 0, ACK 0, GET 0, REP 0\n\
         found total 2\n"
    );

    // A malformed option: upstream lctl's lines, exit 1, nothing changes.
    let o = run(
        LCTL,
        &s,
        &["net_drop_add", "-s", "*", "-d", "*", "-r", "1", "--bogus"],
    );
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        text(&o.stderr),
        "net_drop_add: unrecognized option '--bogus'\n\
         error: net_drop_add: option '--bogus' unrecognized\n"
    );
    assert!(o.stdout.is_empty());
    let o = run(
        LCTL,
        &s,
        &["net_drop_add", "-s", "1.2.3@nonet", "-d", "*", "-r", "1"],
    );
    assert_eq!(
        (o.status.code(), text(&o.stderr)),
        (Some(1), "Invalid NID : 1.2.3@nonet\n".into())
    );
    let o = run(LCTL, &s, &["net_drop_add"]);
    assert_eq!(
        (o.status.code(), text(&o.stderr)),
        (
            Some(1),
            "Failed, please provide source, destination and rate of rule\n".into()
        )
    );
    assert_eq!(ok(LCTL, &s, &["net_drop_list"]), got, "nothing changed");

    // Delete by either tool.
    assert_eq!(
        ok(
            LCTL,
            &s,
            &["net_drop_del", "-s", "*@tcp", "-d", "10.0.0.2@tcp"]
        ),
        "Removed 1 drop rules\n"
    );
    let show = ok(LNETCTL, &s, &["fault", "drop", "show"]);
    assert!(
        show.contains("fa_src: <?>") && !show.contains("10.0.0.2"),
        "{show}"
    );
    assert_eq!(
        ok(LCTL, &s, &["net_drop_del", "*"]),
        "Removed 1 drop rules\n"
    );
    assert_eq!(ok(LNETCTL, &s, &["fault", "drop", "show"]), "");
    assert_eq!(
        ok(LCTL, &s, &["net_drop_del", "-a"]),
        "Removed 0 drop rules\n"
    );

    // Delay rules: lctl adds, lnetctl shows, lctl resets, lnetctl deletes.
    assert_eq!(
        ok(
            LCTL,
            &s,
            &[
                "net_delay",
                "add",
                "-s",
                "*",
                "-d",
                "*@tcp",
                "--interval",
                "5",
                "-l",
                "2"
            ]
        ),
        "Added delay rule <?>->255.255.255.255@tcp (1/0)\n"
    );
    let show = ok(LNETCTL, &s, &["fault", "delay", "show"]);
    assert!(
        show.contains("      la_interval: 5\n      la_latency: 2\n"),
        "{show}"
    );
    let list = ok(LCTL, &s, &["net_delay_list"]);
    assert!(
        list.starts_with(
            "LNet delay rules:\n<?>->255.255.255.255@tcp (1/0 | 5, latency 2) ptl 0, msg "
        ) && list.ends_with(", 0/0, PUT 0, ACK 0, GET 0, REP 0\nfound total 1\n"),
        "{list}"
    );
    assert_eq!(ok(LCTL, &s, &["net_delay_reset"]), "");
    ok(LNETCTL, &s, &["fault", "delay", "del", "--all"]);
    assert_eq!(
        ok(LCTL, &s, &["net_delay_list"]),
        "LNet delay rules:\nfound total 0\n"
    );
}

#[test]
fn nids_ping_and_parameters() {
    let dir = TempDir::new("lctl-misc");
    let s = dir.socket();
    let _d = Daemon::start_clean(&s, &[]);
    assert_eq!(ok(LCTL, &s, &["network", "up"]), "LNET configured\n");
    // `network up` brings up the start-up networks (lnetd's default: tcp
    // on the first interface, when there is one), as a module load does.
    let nids: Vec<String> = ok(LNETCTL, &s, &["net", "show"])
        .lines()
        .filter_map(|l| l.trim().strip_prefix("-     nid: ").map(str::to_string))
        .filter(|n| n != "0@lo")
        .collect();
    let mut want = String::new();
    for n in &nids {
        want.push_str(n);
        want.push('\n');
    }
    assert_eq!(ok(LCTL, &s, &["list_nids"]), want);
    assert_eq!(ok(LCTL, &s, &["list_nids", "all"]), format!("0@lo\n{want}"));
    assert_eq!(
        ok(LCTL, &s, &["which_nid", "10.9.9.9@tcp9", "0@lo"]),
        "0@lo\n"
    );
    let o = run(LCTL, &s, &["which_nid", "10.9.9.9@tcp9"]);
    assert_eq!(
        (o.status.code(), text(&o.stderr)),
        (Some(1), "No reachable NID\n".into())
    );
    let o = run(LCTL, &s, &["which_nid", "bogus"]);
    assert_eq!(
        (o.status.code(), text(&o.stderr)),
        (Some(1), "Can't parse NID bogus\n".into())
    );
    let ping = ok(LCTL, &s, &["ping", "0@lo"]);
    assert!(
        ping.lines().next().is_some_and(|l| l.ends_with("-0@lo")),
        "{ping}"
    );
    let o = run(LCTL, &s, &["ping", "nonsense"]);
    assert_eq!(o.status.code(), Some(22));
    assert_eq!(text(&o.stderr), "Invalid NID argument \"nonsense\"\n");

    // Parameters: the daemon's values, written as `lnetctl set` writes.
    assert_eq!(
        ok(LCTL, &s, &["get_param", "lnet.lnet_retry_count"]),
        "lnet.lnet_retry_count=2\n"
    );
    assert_eq!(
        ok(LCTL, &s, &["set_param", "lnet.lnet_retry_count=3"]),
        "lnet.lnet_retry_count=3\n"
    );
    assert!(ok(LNETCTL, &s, &["global", "show"]).contains("    retry_count: 3\n"));
    assert_eq!(
        ok(
            LCTL,
            &s,
            &[
                "get_param",
                "-n",
                "/sys/module/lnet/parameters/lnet_retry_count"
            ]
        ),
        "3\n"
    );
    ok(
        LCTL,
        &s,
        &["set_param", "-n", "lnet.lnet_peer_discovery_disabled=1"],
    );
    assert!(ok(LNETCTL, &s, &["global", "show"]).contains("    discovery: 0\n"));
    assert_eq!(
        ok(
            LCTL,
            &s,
            &[
                "get_param",
                "lnet.*discovery*",
                "lnet.lnet_transaction_timeout"
            ]
        ),
        "lnet.lnet_peer_discovery_disabled=1\nlnet.lnet_transaction_timeout=150\n"
    );
    let names = ok(LCTL, &s, &["list_param", "-F", "lnet.*recovery*"]);
    assert_eq!(
        names,
        "lnet.lnet_recovery_interval=\nlnet.lnet_recovery_limit=\nlnet.lnet_max_recovery_ping_interval=\n"
    );
    // Read-only ones are refused with what to use instead; nothing changes.
    let o = run(LCTL, &s, &["set_param", "lnet.accept_port=1000"]);
    assert_eq!(o.status.code(), Some(13));
    assert!(
        text(&o.stderr).contains("lnetd --param accept_port=VALUE"),
        "{}",
        text(&o.stderr)
    );
    let o = run(LCTL, &s, &["set_param", "lnet.lnet_lnd_timeout=3"]);
    assert_eq!(o.status.code(), Some(13));
    let o = run(
        LCTL,
        &s,
        &["set_param", "lnet.lnet_health_sensitivity=5000"],
    );
    assert_ne!(o.status.code(), Some(0), "out of range");
    assert_eq!(
        ok(
            LCTL,
            &s,
            &["get_param", "-n", "lnet.lnet_health_sensitivity"]
        ),
        "100\n"
    );
    let o = run(LCTL, &s, &["get_param", "lnet.nosuch"]);
    assert_eq!(o.status.code(), Some(2));

    assert_eq!(ok(LCTL, &s, &["network", "down"]), "LNET ready to unload\n");
}

#[test]
fn unknown_commands_and_help() {
    let sock = Path::new("/nonexistent/lctl-help.sock");
    let o = run(LCTL, sock, &["frobnicate"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        text(&o.stderr),
        "lctl: 'frobnicate' is not a valid command. See 'lctl --list-commands'.\n"
    );
    let o = run(LCTL, sock, &["--net", "tcp", "route_list"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stderr).contains("use lnetctl route show"));
    let o = run(LCTL, sock, &["--net", "nonet!", "route_list"]);
    assert_eq!(
        (o.status.code(), text(&o.stderr)),
        (Some(1), "Can't parse net nonet!\n".into())
    );
    let o = run(LCTL, sock, &["route_list"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stderr).contains("use lnetctl route show"));
    let o = run(LCTL, sock, &["help", "net_drop_del"]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(
        text(&o.stderr),
        "net_drop_del: remove LNet drop rule\nusage: net_drop_del <[-a | --all] |\n\
         \t\t      <-s | --source NID>\n\t\t      <-d | --dest NID>>\n\n"
    );
    assert!(ok(LCTL, sock, &["--help"]).starts_with("usage: lctl [COMMAND]"));
    let o = run(LCTL, sock, &["network"]);
    assert_eq!(o.status.code(), Some(4), "CMD_HELP");
    assert_eq!(text(&o.stdout), "configure LNET\nusage: network up|down\n");
    let o = run(LCTL, sock, &["get_param"]);
    assert_eq!(o.status.code(), Some(4), "CMD_HELP");
    let o = run(LCTL, sock, &["net_drop"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stderr).starts_with("'net_drop' incomplete command."));
}

/// Start-up and plugin parameters: the values lnetd uses (given, or the
/// plugin's declared default), under their module names; refused writes
/// name what to use instead.
#[test]
fn startup_and_plugin_parameters() {
    lnet_tests::bins::sock_plugin();
    let dir = TempDir::new("lctl-params");
    let s = dir.socket();
    let port = (21000 + (std::process::id() * 11) % 29000).to_string();
    let port_param = format!("accept_port={port}");
    let pdir = dir.path().join("params");
    let pdir_param = format!("params_dir={}", pdir.display());
    let file = |m: &str, n: &str| std::fs::read_to_string(pdir.join(m).join(n)).ok();
    let _d = Daemon::start_clean(
        &s,
        &[
            "--param",
            "networks=tcp9(lo)",
            "--param",
            "sock_timeout=65",
            "--param",
            &port_param,
            "--param",
            "accept=all",
            "--param",
            &pdir_param,
        ],
    );
    // The parameter files exist from the start.
    assert_eq!(file("lnet", "lnet_retry_count").as_deref(), Some("2\n"));
    assert_eq!(file("lnet", "networks").as_deref(), Some("tcp9(lo)\n"));
    assert_eq!(
        file("ksocklnd", "sock_timeout"),
        None,
        "no plugin loaded yet"
    );
    assert_eq!(ok(LCTL, &s, &["net", "up"]), "LNET configured\n");
    assert_eq!(file("ksocklnd", "sock_timeout").as_deref(), Some("65\n"));
    ok(LCTL, &s, &["set_param", "-n", "lnet.lnet_retry_count=4"]);
    assert_eq!(file("lnet", "lnet_retry_count").as_deref(), Some("4\n"));
    assert_eq!(ok(LCTL, &s, &["list_nids"]), "127.0.0.1@tcp9\n");
    assert_eq!(
        ok(LCTL, &s, &["which_nid", "127.0.0.5@tcp9", "127.0.0.1@tcp9"]),
        "127.0.0.1@tcp9\n"
    );
    assert_eq!(
        ok(
            LCTL,
            &s,
            &[
                "get_param",
                "ksocklnd.sock_timeout",
                "ksocklnd.peer_credits",
                "lnet.accept_port",
                "lnet.accept"
            ]
        ),
        format!(
            "ksocklnd.sock_timeout=65\nksocklnd.peer_credits=8\nlnet.accept_port={port}\nlnet.accept=all\n"
        )
    );
    assert_eq!(
        ok(
            LCTL,
            &s,
            &[
                "get_param",
                "lnet.networks",
                "lnet.routes",
                "lnet.config_on_load",
                "lnet.lock_prim_nid"
            ]
        ),
        "lnet.networks=tcp9(lo)\nlnet.routes=\nlnet.config_on_load=0\nlnet.lock_prim_nid=1\n"
    );
    // Not given: upstream's defaults; the bulk port follows accept_port.
    assert_eq!(
        ok(
            LCTL,
            &s,
            &[
                "get_param",
                "lnet.accept_port_bulk",
                "lnet.accept_backlog",
                "lnet.accept_timeout",
                "lnet.rnet_htable_size",
                "libcfs.cpu_npartitions",
                "libcfs.cpu_pattern"
            ]
        ),
        format!(
            "lnet.accept_port_bulk={port}\nlnet.accept_backlog=127\nlnet.accept_timeout=5\n\
             lnet.rnet_htable_size=128\nlibcfs.cpu_npartitions=0\nlibcfs.cpu_pattern=N\n"
        )
    );
    // Router parameters: the values in force.
    assert_eq!(
        ok(
            LCTL,
            &s,
            &[
                "get_param",
                "lnet.router_ping_timeout",
                "lnet.alive_router_check_interval"
            ]
        ),
        "lnet.router_ping_timeout=50\nlnet.alive_router_check_interval=60\n"
    );
    // `lnetctl set tiny_buffers` sizes the pools; the module parameter
    // keeps its start-up value, as upstream's does.
    ok(LNETCTL, &s, &["set", "tiny_buffers", "2048"]);
    assert_eq!(
        ok(LCTL, &s, &["get_param", "-n", "lnet.tiny_router_buffers"]),
        "0\n"
    );
    let names = ok(LCTL, &s, &["list_param", "ksocklnd"]);
    assert!(
        names.lines().count() > 10 && names.contains("ksocklnd.conns_per_peer\n"),
        "{names}"
    );
    let o = run(LCTL, &s, &["set_param", "ksocklnd.sock_timeout=10"]);
    assert_eq!(o.status.code(), Some(13));
    assert!(
        text(&o.stderr).contains("--lnd-timeout"),
        "{}",
        text(&o.stderr)
    );
    assert_eq!(
        ok(
            LCTL,
            &s,
            &[
                "get_param",
                "-n",
                "/sys/module/ksocklnd/parameters/sock_timeout"
            ]
        ),
        "65\n"
    );
    // LNet down: the plugins' files go, the kept tunables stay.
    assert_eq!(ok(LCTL, &s, &["net", "down"]), "LNET ready to unload\n");
    assert_eq!(file("ksocklnd", "sock_timeout"), None);
    assert_eq!(file("lnet", "lnet_retry_count").as_deref(), Some("4\n"));
}

/// Commands from stdin: an unknown one is reported and the run goes on
/// (upstream's line mode); the first failing command ends a non-interactive
/// run with its status unless `ignore_errors` came first.
#[test]
fn line_mode() {
    use std::io::Write;
    use std::process::Stdio;
    let sock = Path::new("/nonexistent/lctl-lines.sock");
    let feed = |input: &str| {
        let mut child = Command::new(LCTL)
            .arg("--socket")
            .arg(sock)
            .env_remove("LNET_SOCKET")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn lctl");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write");
        child.wait_with_output().expect("lctl ends")
    };
    let o = feed("frobnicate\nversion\nnet_drop_add\nversion\n");
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        text(&o.stderr),
        "No such command. Try --list-commands to see available commands.\n\
         Failed, please provide source, destination and rate of rule\n"
    );
    assert_eq!(text(&o.stdout).lines().count(), 1, "stopped at the failure");
    let o = feed("ignore_errors\nnet_drop_add\nversion\n");
    assert_eq!(o.status.code(), Some(1), "the first failure's status");
    assert_eq!(text(&o.stdout).lines().count(), 1, "went on");
}
