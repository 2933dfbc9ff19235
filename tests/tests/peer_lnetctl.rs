//! `lnetctl peer add|del|show|list|set`, `discover` and `debug recovery`
//! against a running lnetd (lnetctl.md §2.6, §2.13, §2.17, §3.2, §3.3): the
//! YAML key for key, the refusals' error blocks and return codes.

use lnet_tests::daemon::Daemon;
use lnet_tests::{text, TempDir};

#[test]
fn peer_commands_through_lnetctl() {
    let dir = TempDir::new("peer-lnetctl");
    let d = Daemon::start_clean(dir.socket(), &[]);
    let run = |args: &[&str]| d.lnetctl(args);
    let out = run(&["lnet", "configure"]);
    assert!(out.status.success(), "configure: {}", text(&out.stderr));

    // No peers: no output, rc 0.
    let out = run(&["peer", "show"]);
    assert!(out.status.success());
    assert_eq!(text(&out.stdout), "");

    let out = run(&[
        "peer",
        "add",
        "--prim_nid",
        "1.1.1.1@tcp",
        "--nid",
        "1.1.1.[2-3]@tcp,5@gni",
        "--lock_prim",
    ]);
    assert!(out.status.success(), "add: {}", text(&out.stderr));
    let out = run(&["peer", "add", "--prim_nid", "6.6.6.6@o2ib", "--non_mr"]);
    assert!(out.status.success(), "add: {}", text(&out.stderr));
    assert_eq!(
        text(&run(&["peer", "show"]).stdout),
        "peer:\n\
         -     primary nid: 1.1.1.1@tcp\n\
         \x20     Multi-Rail: true\n\
         \x20     peer ni:\n\
         \x20     -     nid: 1.1.1.1@tcp\n\
         \x20           state: NA\n\
         \x20     -     nid: 1.1.1.2@tcp\n\
         \x20           state: NA\n\
         \x20     -     nid: 1.1.1.3@tcp\n\
         \x20           state: NA\n\
         \x20     -     nid: 5@gni\n\
         \x20           state: NA\n\
         -     primary nid: 6.6.6.6@o2ib\n\
         \x20     Multi-Rail: false\n\
         \x20     peer ni:\n\
         \x20     -     nid: 6.6.6.6@o2ib\n\
         \x20           state: NA\n"
    );
    assert_eq!(
        text(&run(&["peer", "list"]).stdout),
        "peer list:\n-     nid: 1.1.1.1@tcp\n-     nid: 6.6.6.6@o2ib\n"
    );
    // -v 3 of the peer containing a non-primary NID: the state bits.
    let v3 = text(&run(&["peer", "show", "--nid", "1.1.1.3@tcp", "-v", "3"]).stdout);
    assert!(
        v3.contains("      Multi-Rail: true\n      peer state: 1048585\n"),
        "{v3}"
    );
    assert!(
        v3.contains("                  health value: 1000\n"),
        "{v3}"
    );

    // Refusals: a NID of another configured peer (EEXIST), MR mismatch
    // (EPERM), unknown peer (ENOENT), not the primary (ENODEV).
    let out = run(&[
        "peer",
        "add",
        "--prim_nid",
        "9.9.9.9@tcp",
        "--nid",
        "1.1.1.2@tcp",
    ]);
    assert_eq!(out.status.code(), Some(234), "rc -22");
    assert!(
        text(&out.stderr).contains("errno: -17"),
        "{}",
        text(&out.stderr)
    );
    let out = run(&[
        "peer",
        "add",
        "--prim_nid",
        "6.6.6.6@o2ib",
        "--nid",
        "6.6.6.7@o2ib",
    ]);
    assert!(
        text(&out.stderr).contains("errno: -1\n"),
        "{}",
        text(&out.stderr)
    );
    let out = run(&["peer", "del", "--prim_nid", "1.1.1.2@tcp"]);
    assert!(
        text(&out.stderr).contains("errno: -19"),
        "{}",
        text(&out.stderr)
    );
    let out = run(&["peer", "show", "--nid", "7.7.7.7@tcp"]);
    assert_eq!(out.status.code(), Some(234));
    assert!(
        text(&out.stderr).contains("cannot find peer"),
        "{}",
        text(&out.stderr)
    );

    // Locked primary: del without --force keeps the primary.
    let out = run(&["peer", "del", "--prim_nid", "1.1.1.1@tcp"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v0 = text(&run(&["peer", "show", "--nid", "1.1.1.1@tcp"]).stdout);
    assert_eq!(
        v0.matches("- nid:").count() + v0.matches("-     nid:").count(),
        1,
        "{v0}"
    );

    // peer set --health puts it on the recovery queue.
    let out = run(&["peer", "set", "--nid", "1.1.1.1@tcp", "--health", "200"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&run(&["debug", "recovery", "--peer"]).stdout),
        "Peer NI recovery:\n      nid-0: 1.1.1.1@tcp\n"
    );
    assert_eq!(text(&run(&["debug", "recovery", "--local"]).stdout), "");
    assert_eq!(run(&["debug", "recovery"]).status.code(), Some(234));

    // discover 0@lo succeeds and lists no peer NI.
    let out = run(&["discover", "0@lo"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "discover:\n- primary nid: 0@lo\n  Multi-Rail: true\n  peer_ni: []\n"
    );
    let out = run(&["discover"]);
    assert_eq!(text(&out.stdout), "Missing nid argument\n");

    let out = run(&["peer", "del", "--prim_nid", "1.1.1.1@tcp", "--force"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&run(&["peer", "list"]).stdout),
        "peer list:\n-     nid: 6.6.6.6@o2ib\n"
    );
}
