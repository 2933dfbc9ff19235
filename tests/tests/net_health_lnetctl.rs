//! `lnetctl net set --health` and `debug recovery --local` against a
//! running lnetd with an NI of the example vendor plugin (lnetctl.md §2.5,
//! §2.17; semantics §8.1, §8.6): the value is clamped, 0 makes the NI `down`
//! in `net show`, the NI is on the local recovery queue, and its recovery
//! pings (to itself, through its LND) bring it back to 1000 and `up`.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use lnet_tests::daemon::Daemon;
use lnet_tests::{text, TempDir};

struct Ctl {
    d: Daemon,
}

impl Ctl {
    fn run(&self, args: &[&str]) -> Output {
        Command::new(lnet_tests::bins::lnetctl())
            .arg("--socket")
            .arg(self.d.socket())
            .args(args)
            .output()
            .expect("run lnetctl")
    }

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

fn start(dir: &TempDir) -> (Ctl, String) {
    let mut cmd = Command::new(lnet_tests::bins::lnetd());
    cmd.env_remove("LNET_PLUGIN_PATH")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let c = Ctl {
        d: Daemon::spawn(cmd, dir.socket(), &[]),
    };
    c.ok(&["lnet", "configure"]);
    let so = lnet_tests::bins::vendor_plugin();
    c.ok(&["plugin", "load", so.to_str().expect("utf-8 path")]);
    c.ok(&["net", "add", "--net", "vnd", "--if", "fab0"]);
    let show = c.ok(&["net", "show", "--net", "vnd"]);
    let nid = show
        .lines()
        .find_map(|l| l.split_once("nid: ").map(|(_, n)| n.trim()))
        .unwrap_or_else(|| panic!("no NID in {show}"))
        .to_string();
    (c, nid)
}

fn health_and_status(c: &Ctl, nid: &str) -> (u32, String) {
    let show = c.ok(&["net", "show", "--net", "vnd", "-v", "2"]);
    let at = show
        .find(nid)
        .unwrap_or_else(|| panic!("{nid} not in {show}"));
    let ni = &show[at..];
    let status = ni
        .lines()
        .find_map(|l| l.trim().strip_prefix("status: "))
        .expect("status")
        .to_string();
    let health = ni
        .lines()
        .find_map(|l| l.trim().strip_prefix("health value: "))
        .unwrap_or_else(|| panic!("no health value in {ni}"))
        .parse()
        .expect("a number");
    (health, status)
}

#[test]
fn net_set_health_and_local_recovery_through_lnetctl() {
    let dir = TempDir::new("net-health");
    let (c, nid) = start(&dir);
    assert_eq!(health_and_status(&c, &nid), (1000, "up".into()));
    assert_eq!(c.ok(&["debug", "recovery", "--local"]), "");

    // Without --nid or --all: refused, nothing changes.
    let o = c.run(&["net", "set", "--health", "0"]);
    assert_eq!(o.status.code(), Some(234), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("--health needs --nid NID or --all"),
        "{}",
        text(&o.stderr)
    );
    // A NID that is not ours: the daemon says so.
    let o = c.run(&["net", "set", "--health", "0", "--nid", "9.9.9.9@tcp"]);
    assert_eq!(o.status.code(), Some(234));
    assert!(
        text(&o.stderr).contains("is not a local NI"),
        "{}",
        text(&o.stderr)
    );
    // Not a number, or -1: "not given", success and nothing changes.
    c.ok(&["net", "set", "--health", "abc", "--nid", &nid]);
    c.ok(&["net", "set", "--health", "-1", "--all"]);
    assert_eq!(health_and_status(&c, &nid), (1000, "up".into()));

    // 0: down, on the local recovery queue (it takes ten successful pings,
    // at least a second apart, to be back at 1000).
    c.ok(&["net", "set", "--health", "0", "--nid", &nid]);
    let (h, status) = health_and_status(&c, &nid);
    assert_eq!(status, "down", "health {h}");
    assert!(h < 1000);
    assert_eq!(
        c.ok(&["debug", "recovery", "--local"]),
        format!("Local NI recovery:\n      nid-0: {nid}\n")
    );
    // Its recovery pings go through its own LND and raise it back to 1000
    // and up; then it leaves the queue.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (h, status) = health_and_status(&c, &nid);
        if h == 1000 && status == "up" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not recovered after 120 s: health {h}, {status}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // The monitor's next pass (within a second) takes it off the queue.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !c.ok(&["debug", "recovery", "--local"]).is_empty() {
        assert!(Instant::now() < deadline, "still queued at 1000");
        std::thread::sleep(Duration::from_millis(200));
    }

    // Above 1000 is clamped; --all sets every NI.
    c.ok(&["net", "set", "--health", "5000", "--all"]);
    assert_eq!(health_and_status(&c, &nid), (1000, "up".into()));
    c.ok(&["net", "set", "--all", "--health", "300"]);
    let (h, status) = health_and_status(&c, &nid);
    assert!((300..1000).contains(&h), "{h}");
    assert_eq!(status, "up", "only 0 makes it down");
}
