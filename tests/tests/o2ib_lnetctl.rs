//! lnd-o2ib through the user's tools: two lnetd on loopback addresses load
//! `liblnd_o2ib.so` by name at `lnetctl net add --net o2ib`, show ko2iblnd's
//! tunables in `net show -v`, ping each other over the soft verbs provider,
//! and refuse an interface the provider cannot serve without changing
//! anything.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Builds lnetd, lnetctl and the o2ib plugin (see [`lnet_tests::bins`]);
/// lnetd finds the plugin in its own directory.
fn bin_dir() -> PathBuf {
    lnet_tests::bins::o2ib_plugin();
    lnet_tests::bins::bin_dir()
}

/// lnetd in the foreground on a private socket, killed on drop.
struct Daemon {
    child: Child,
    dir: PathBuf,
}

impl Daemon {
    fn start(bin: &Path, name: &str, service: u16) -> Daemon {
        let dir =
            lnet_tests::target_dir().join(format!("o2ib-lnetctl-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let child = Command::new(bin.join("lnetd"))
            .arg("--foreground")
            .arg("--socket")
            .arg(dir.join("lnetctl.sock"))
            .arg("--param")
            .arg(format!("service={service}"))
            .env_remove("LNET_PLUGIN_PATH")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn lnetd");
        let d = Daemon { child, dir };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !d.dir.join("lnetctl.sock").exists() {
            assert!(Instant::now() < deadline, "lnetd did not create its socket");
            std::thread::sleep(Duration::from_millis(20));
        }
        d
    }

    fn ctl(&self, bin: &Path, args: &[&str]) -> Output {
        Command::new(bin.join("lnetctl"))
            .arg("--socket")
            .arg(self.dir.join("lnetctl.sock"))
            .args(args)
            .output()
            .expect("run lnetctl")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn net_add_o2ib_autoloads_the_plugin_and_two_nodes_ping() {
    let bin = bin_dir();
    // A service port of this run (not 987: no root needed, no clash).
    let service = 40000 + (std::process::id() % 5000) as u16;
    let a = Daemon::start(&bin, "a", service);
    let b = Daemon::start(&bin, "b", service);
    // service-id needs ko2iblnd (here: the o2ib plugin) loaded.
    let out = a.ctl(&bin, &["service-id"]);
    assert_eq!(
        text(&out.stderr),
        "error:\n    msg: \"cannot get service port: No such file or directory (-2)\"\n"
    );
    assert_eq!(out.status.code(), Some(254));
    for (d, ip) in [(&a, "127.0.0.1"), (&b, "127.0.0.2")] {
        let out = d.ctl(&bin, &["lnet", "configure"]);
        assert!(out.status.success(), "configure: {}", text(&out.stderr));
        let out = d.ctl(&bin, &["net", "add", "--net", "o2ib", "--if", ip]);
        assert!(out.status.success(), "net add o2ib: {}", text(&out.stderr));
    }
    let show = text(&a.ctl(&bin, &["net", "show", "-v", "--net", "o2ib"]).stdout);
    assert!(
        show.contains("-     nid: 127.0.0.1@o2ib\n            status: up\n"),
        "{show}"
    );
    for line in [
        "            lnd tunables:\n                  peer_credits_hiw: 4\n                  map_on_demand: 1\n                  concurrent_sends: 8\n                  fmr_pool_size: 512\n",
        "                  provider: soft\n",
        "                  peer_credits: 8\n",
    ] {
        assert!(show.contains(line), "{line:?} not in:\n{show}");
    }
    // The IB service id of the service port: (RDMA_PS_TCP << 16) + port in
    // network byte order, printed as a host integer (upstream's htobe64).
    let out = a.ctl(&bin, &["service-id"]);
    assert!(out.status.success(), "service-id: {}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        format!(
            "service_id:\n    value: 0x{:x}\n",
            ((0x0106u64 << 16) + u64::from(service)).to_be()
        )
    );
    let plugins = text(&a.ctl(&bin, &["plugin", "show"]).stdout);
    assert!(
        plugins.contains("-     name: lnd-o2ib\n      lnd: o2ib\n"),
        "{plugins}"
    );

    for (d, peer) in [(&a, "127.0.0.2@o2ib"), (&b, "127.0.0.1@o2ib")] {
        let out = d.ctl(&bin, &["ping", peer]);
        assert!(out.status.success(), "ping {peer}: {}", text(&out.stderr));
        assert!(
            text(&out.stdout).starts_with(&format!("ping:\n- primary nid: {peer}\n")),
            "{}",
            text(&out.stdout)
        );
    }

    // An interface the soft provider cannot serve: refused, nothing changes.
    let out = a.ctl(&bin, &["net", "add", "--net", "o2ib1", "--if", "ib0"]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("errno: -19"), "{err}");
    assert!(err.contains("cannot add net o2ib1"), "{err}");
    let after = text(&a.ctl(&bin, &["net", "show", "-v", "--net", "o2ib"]).stdout);
    assert_eq!(
        after.lines().filter(|l| l.contains("nid:")).count(),
        show.lines().filter(|l| l.contains("nid:")).count()
    );
    let nets = text(&a.ctl(&bin, &["net", "show"]).stdout);
    assert!(!nets.contains("o2ib1"), "{nets}");
}
