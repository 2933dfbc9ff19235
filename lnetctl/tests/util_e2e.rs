//! `debug nidlist`, `cpt-of-nid` and `service-id` against a real lnetd
//! (lnetctl.md §2.17, §2.18): exact output, streams and exit statuses.

use std::path::Path;
use std::process::{Command, Output};

use lnet_tests::daemon::Daemon;
use lnet_tests::{ok, text, TempDir};

const LNETCTL: &str = env!("CARGO_BIN_EXE_lnetctl");

fn lnetctl(socket: &Path, args: &[&str]) -> Output {
    lnet_tests::lnetctl_on(Path::new(LNETCTL), socket, args)
}

/// (stdout, stderr, exit status).
fn run(socket: &Path, args: &[&str]) -> (String, String, i32) {
    let o = lnetctl(socket, args);
    (
        text(&o.stdout),
        text(&o.stderr),
        o.status.code().expect("exit status"),
    )
}

#[test]
fn debug_nidlist_cpt_of_nid_service_id() {
    let dir = TempDir::new("util");
    let d = Daemon::start(dir.socket(), &[]);
    let s = d.socket();
    // debug nidlist needs no configured LNet.
    assert_eq!(
        run(
            s,
            &[
                "debug",
                "nidlist",
                "192.168.0.[1-10/2]@tcp 10.[1,3].0.*@o2ib1 *@gni",
                "192.168.0.3@tcp"
            ]
        ),
        (
            "nidlist parsed to: 192.168.0.[1-10/2]@tcp 10.[1,3].0.[0-255]@o2ib1 *@gni\n\
             192.168.0.3@tcp matches nidlist 192.168.0.[1-10/2]@tcp 10.[1,3].0.*@o2ib1 *@gni\n"
                .to_string(),
            String::new(),
            0
        )
    );
    assert_eq!(
        run(
            s,
            &[
                "debug",
                "nidlist",
                "192.168.0.[1-10/2]@tcp",
                "192.168.0.4@tcp"
            ]
        )
        .0,
        "nidlist parsed to: 192.168.0.[1-10/2]@tcp\n\
         192.168.0.4@tcp does not match nidlist 192.168.0.[1-10/2]@tcp\n"
    );
    assert_eq!(
        run(s, &["debug", "nidlist"]),
        (String::new(), "Missing nidlist argument\n".to_string(), 234)
    );
    assert_eq!(
        run(s, &["debug", "nidlist", "a@tcp", "b", "c"]),
        (String::new(), "Too many arguments\n".to_string(), 234)
    );
    let (out, err, rc) = run(s, &["debug", "nidlist", "10.0.0.[1-300]@tcp"]);
    assert_eq!((out.as_str(), rc), ("", 234));
    assert!(
        err.starts_with("invalid nidlist \"10.0.0.[1-300]@tcp\": ") && err.contains("300"),
        "{err}"
    );
    let (_, err, rc) = run(s, &["debug", "nidlist", "*@tcp", "nonsense"]);
    assert_eq!(rc, 234);
    assert!(err.contains("nonsense"), "{err}");

    // cpt-of-nid: LNet must be up.
    let (out, err, rc) = run(s, &["cpt-of-nid", "192.168.122.10@tcp"]);
    assert_eq!((out.as_str(), rc), ("", 234));
    assert_eq!(
        err,
        "---\nshow:\n-     cpt-of-nid:\n      errno: -100\n      descr: ! \"Network is down\"\n...\n"
    );
    ok(&lnetctl(s, &["lnet", "configure"]));
    assert_eq!(
        run(s, &["cpt-of-nid", "192.168.122.10@tcp", "0@lo"]),
        (
            "cpt-of-nid:\n- nid: 192.168.122.10@tcp\n  cpt: 0\n- nid: 0@lo\n  cpt: 0\n".to_string(),
            String::new(),
            0
        )
    );
    let (out, err, rc) = run(s, &["cpt-of-nid", "1.2.3.4@tcp", "bad@@tcp"]);
    assert_eq!((out.as_str(), rc), ("", 234));
    assert!(
        err.starts_with("---\nshow:\n-     cpt-of-nid:\n      errno: -22\n")
            && err.contains("bad@@tcp"),
        "{err}"
    );
    let (out, _, rc) = run(s, &["cpt-of-nid"]);
    assert_eq!(rc, 234);
    assert!(
        out.starts_with("cpt-of-nid: Calculate the CPTs associated with NIDs\n"),
        "{out}"
    );

    // service-id without an o2ib plugin loaded (tests/tests/o2ib_lnetctl.rs
    // covers the loaded case).
    assert_eq!(
        run(s, &["service-id"]),
        (
            String::new(),
            "error:\n    msg: \"cannot get service port: No such file or directory (-2)\"\n"
                .to_string(),
            254
        )
    );
}

/// `debug peer --nid` (lnetctl.md §2.17): prints nothing, lnetd writes the
/// peer's state to its log; upstream's classic blocks for misuse.
#[test]
fn debug_peer_writes_the_log() {
    lnet_tests::bins::sock_plugin();
    let dir = TempDir::new("dbgpeer");
    let log = dir.join("lnetd.log");
    let mut cmd = Command::new(lnet_tests::bins::lnetd());
    cmd.stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"));
    let port = format!("accept_port={}", lnet_tests::free_port());
    let d = Daemon::spawn(cmd, dir.socket(), &["--param", &port]);
    let s = d.socket();
    ok(&lnetctl(s, &["lnet", "configure"]));
    ok(&lnetctl(
        s,
        &["net", "add", "--net", "tcp", "--if", "127.0.0.1"],
    ));
    ok(&lnetctl(
        s,
        &[
            "peer",
            "add",
            "--prim_nid",
            "127.0.0.9@tcp",
            "--nid",
            "127.0.0.10@tcp",
        ],
    ));
    assert_eq!(
        run(s, &["debug", "peer", "--nid", "127.0.0.10@tcp"]),
        (String::new(), String::new(), 0)
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("debug peer 127.0.0.10@tcp") && text.contains("127.0.0.9@tcp") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "not logged:\n{text}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(
        run(s, &["debug", "peer"]),
        (
            String::new(),
            "debug:\n    - peer:\n          errno: -22\n          descr: --nid must be specified\n"
                .to_string(),
            234
        )
    );
    let (_, err, rc) = run(s, &["debug", "peer", "--nid", "bogus"]);
    assert_eq!(rc, 234);
    assert!(
        err.contains("descr: \"badly formatted primary NID: bogus\""),
        "{err}"
    );
    let (_, err, rc) = run(s, &["debug", "peer", "--nid", "127.0.0.77@tcp"]);
    assert_eq!(rc, 234);
    assert!(
        err.contains("errno: -2\n") && err.contains("127.0.0.77@tcp"),
        "{err}"
    );
}
