//! End to end for routing (issue 13): `route add|del|show`, `routing show`,
//! `set routing|*_buffers` and the router start-up parameters, with the real
//! `lnetd` and `lnetctl` (helpers as in `e2e.rs`).
//!
//! lnetd and the vendor plugin come from `lnet_tests::bins`, every daemon is
//! owned by `lnet_tests::daemon::Daemon` (killed on drop) and temporary
//! directories are `lnet_tests::TempDir`.

use std::path::Path;
use std::process::Output;

use lnet_tests::bins::vendor_plugin;
use lnet_tests::daemon::Daemon;
use lnet_tests::{ok, text, TempDir};

const LNETCTL: &str = env!("CARGO_BIN_EXE_lnetctl");

fn lnetctl(socket: &Path, args: &[&str]) -> Output {
    lnet_tests::lnetctl_on(Path::new(LNETCTL), socket, args)
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
    let _d = Daemon::start(
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
    let _d = Daemon::start(&sock, &[]);
    ok(&lnetctl(&sock, &["lnet", "configure"]));
    assert_eq!(ok(&lnetctl(&sock, &["routing", "show"])), "");
    assert_eq!(ok(&lnetctl(&sock, &["route", "show"])), "");
    ok(&lnetctl(&sock, &["set", "routing", "1"]));
    let r = ok(&lnetctl(&sock, &["routing", "show"]));
    assert!(r.contains("    - enable: 3\n"), "starting: {r}");
    assert!(r.contains("buffers:\n    tiny: 2048\n    small: 16384\n    large: 1024\n"));
}
