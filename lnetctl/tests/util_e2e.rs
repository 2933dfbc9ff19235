//! `debug nidlist`, `cpt-of-nid` and `service-id` against a real lnetd
//! (lnetctl.md §2.17, §2.18): exact output, streams and exit statuses.

use std::path::Path;
use std::process::{Command, Output};

use lnet_tests::daemon::Daemon;
use lnet_tests::{ok, text, TempDir};

const LNETCTL: &str = env!("CARGO_BIN_EXE_lnetctl");

fn lnetctl(socket: &Path, args: &[&str]) -> Output {
    Command::new(LNETCTL)
        .arg("--socket")
        .arg(socket)
        .args(args)
        .env_remove("LNET_SOCKET")
        .output()
        .expect("run lnetctl")
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
