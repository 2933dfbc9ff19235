//! `lnetctl fault` on a real lnetd (lnetctl.md §2.19): the first `fault`
//! command loads lnd-fault from the plugin path (lnetd's directory) and
//! stacks it on the running NI of a vendor plugin; rules are added, shown
//! (exact YAML), reset and deleted; errors print as upstream's do.

use std::process::Output;

use lnet_tests::daemon::Daemon;
use lnet_tests::plugin_build::{build_vendor_plugin, Interface};
use lnet_tests::{text, TempDir};

struct Ctl<'a> {
    d: &'a Daemon,
}

impl Ctl<'_> {
    fn run(&self, args: &[&str]) -> Output {
        self.d.lnetctl(args)
    }

    /// Runs; checks rc 0 and nothing on stderr; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            o.status.success() && o.stderr.is_empty(),
            "lnetctl {args:?}: rc {:?}, stderr {}",
            o.status.code(),
            text(&o.stderr)
        );
        text(&o.stdout)
    }
}

const DROP_RULE: &str = "fault:
-     rule_type: drop
      fa_src: 4294967295@vnd
      fa_dst: <?>
      fa_ptl_mask: 0
      fa_msg_mask: 4
      da_rate: 1
      da_interval: 0
      ds_dropped: 0
      fs_count: 0
      fs_put: 0
      fs_ack: 0
      fs_get: 0
      fs_reply: 0
";

#[test]
fn fault_rules_through_lnetctl() {
    let vnd = build_vendor_plugin("same", Interface::Same, "vendor-lnd", "vnd");
    // lnetd loads the fault plugin from its own directory, where this
    // build's plugins are.
    lnet_tests::bins::fault_plugin();
    let dir = TempDir::new("fault-lnetctl");
    let d = Daemon::start_clean(dir.socket(), &[]);
    let c = Ctl { d: &d };
    c.ok(&["lnet", "configure"]);
    c.ok(&["plugin", "load", vnd.so.to_str().expect("utf-8")]);
    c.ok(&["net", "add", "--net", "vnd", "--if", "fab0"]);

    // The first fault command loads the plugin from lnetd's directory.
    assert_eq!(c.ok(&["fault", "drop", "show"]), "");
    let plugins = c.ok(&["plugin", "show"]);
    assert!(plugins.contains("-     name: lnd-fault\n"), "{plugins}");

    c.ok(&[
        "fault", "drop", "add", "-s", "*@vnd", "-d", "*", "-r", "1", "-m", "GET",
    ]);
    assert_eq!(c.ok(&["fault", "drop", "show"]), DROP_RULE);
    c.ok(&[
        "fault",
        "delay",
        "add",
        "--source",
        "*",
        "--dest",
        "*",
        "--interval",
        "5",
        "--latency",
        "2",
        "-p",
        "4",
    ]);
    assert_eq!(
        c.ok(&["fault", "delay", "show"]),
        "fault:
-     rule_type: delay
      fa_src: <?>
      fa_dst: <?>
      fa_ptl_mask: 16
      fa_msg_mask: 6
      la_rate: 0
      la_interval: 5
      la_latency: 2
      ls_delayed: 0
      fs_count: 0
      fs_put: 0
      fs_ack: 0
      fs_get: 0
      fs_reply: 0
"
    );
    c.ok(&["fault", "drop", "reset", "x"]);

    // Errors as upstream prints them.
    let o = c.run(&["fault", "drop", "del", "-s", "1.2.3.4@tcp", "-d", "*"]);
    assert_eq!(o.status.code(), Some(254), "rc -ENOENT");
    assert_eq!(
        text(&o.stdout),
        "failed to delete drop rule: No such file or directory\n"
    );
    let o = c.run(&["fault", "drop", "add", "-s", "*", "-d", "*"]);
    assert_eq!(o.status.code(), Some(255));
    assert_eq!(
        text(&o.stderr),
        "please provide either drop rate or interval but not both at the same time.\n"
    );
    let o = c.run(&[
        "fault",
        "drop",
        "add",
        "-s",
        "nonsense@@",
        "-d",
        "*",
        "-r",
        "1",
    ]);
    assert_eq!(o.status.code(), Some(234));
    assert_eq!(text(&o.stderr), "Invalid NID: nonsense@@\n");
    let o = c.run(&[
        "fault", "delay", "add", "-s", "*", "-d", "*", "-r", "1", "-i", "5", "-l", "1",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert_eq!(text(&o.stderr), "Unrecognized option ?\n");

    // An NI added after the plugin is stacked too, and the rules outlive it.
    c.ok(&["net", "add", "--net", "vnd1", "--if", "fab1"]);
    c.ok(&["net", "del", "--net", "vnd1"]);
    assert_eq!(c.ok(&["fault", "drop", "show"]), DROP_RULE);

    // del --all, then nothing to show.
    c.ok(&["fault", "drop", "del", "--all"]);
    c.ok(&["fault", "delay", "del", "-a"]);
    assert_eq!(c.ok(&["fault", "drop", "show"]), "");
    assert_eq!(c.ok(&["fault", "delay", "show"]), "");
    c.ok(&["lnet", "unconfigure"]);
}
