//! Issue #2 point 7 through the user's tools: the example vendor plugin,
//! built from a clean directory against lnd-api alone, is loaded with
//! `lnetctl plugin load` into a running lnetd and shown by `plugin show`; a
//! second copy built against a deliberately changed interface is refused
//! with the loader's message, and the daemon keeps serving.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use lnet_tests::plugin_build::{build_vendor_plugin, Interface};

/// Builds lnetd and lnetctl into this build's target directory (a no-op
/// when fresh) and returns the directory holding them.
fn bin_dir() -> PathBuf {
    let dir = lnet_tests::profile_dir();
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.args([
        "build", "--quiet", "-p", "lnetd", "--bin", "lnetd", "-p", "lnetctl", "--bin", "lnetctl",
    ])
    .arg("--target-dir")
    .arg(dir.parent().expect("target directory"));
    if dir.ends_with("release") {
        cmd.arg("--release");
    }
    assert!(
        cmd.status().expect("cargo build").success(),
        "cannot build lnetd and lnetctl"
    );
    dir
}

/// lnetd in the foreground on a private socket, killed on drop.
struct Daemon {
    child: Child,
    dir: PathBuf,
}

impl Daemon {
    fn start(bin: &Path) -> Daemon {
        let dir = lnet_tests::target_dir().join(format!("plugin-lnetctl-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let child = Command::new(bin.join("lnetd"))
            .arg("--foreground")
            .arg("--socket")
            .arg(dir.join("lnetctl.sock"))
            .env_remove("LNET_PLUGIN_PATH")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn lnetd");
        let d = Daemon { child, dir };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !d.socket().exists() {
            assert!(Instant::now() < deadline, "lnetd did not create its socket");
            std::thread::sleep(Duration::from_millis(20));
        }
        d
    }

    fn socket(&self) -> PathBuf {
        self.dir.join("lnetctl.sock")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn lnetctl(bin: &Path, d: &Daemon, args: &[&str]) -> Output {
    Command::new(bin.join("lnetctl"))
        .arg("--socket")
        .arg(d.socket())
        .args(args)
        .output()
        .expect("run lnetctl")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn vendor_plugin_from_a_clean_directory_through_lnetctl() {
    let good = build_vendor_plugin("same", Interface::Same, "vendor-lnd", "vnd");
    let changed = build_vendor_plugin("changed", Interface::ChangedLayout, "changed-lnd", "chg");
    let bin = bin_dir();
    let d = Daemon::start(&bin);
    let out = lnetctl(&bin, &d, &["lnet", "configure"]);
    assert!(out.status.success(), "configure: {}", text(&out.stderr));

    let out = lnetctl(
        &bin,
        &d,
        &["plugin", "load", good.so.to_str().expect("utf-8")],
    );
    assert!(out.status.success(), "load: {}", text(&out.stderr));
    let show = text(&lnetctl(&bin, &d, &["plugin", "show"]).stdout);
    assert!(
        show.contains("-     name: vendor-lnd\n      lnd: vnd\n"),
        "{show}"
    );
    assert!(
        show.contains(&format!(
            "      path: {}\n",
            good.so.canonicalize().expect("path").display()
        )),
        "{show}"
    );

    let out = lnetctl(
        &bin,
        &d,
        &["plugin", "load", changed.so.to_str().expect("utf-8")],
    );
    assert_eq!(
        out.status.code(),
        Some(234),
        "refused with rc -22: {}",
        text(&out.stderr)
    );
    let err = text(&out.stderr);
    assert!(
        err.starts_with("---\nadd:\n-     plugin:\n      errno: -71\n"),
        "{err}"
    );
    assert!(
        err.contains(&format!("cannot load plugin {}", changed.so.display())),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "it was built against lnd-api {}, but its interface types differ",
            lnd_api::ABI_VERSION
        )),
        "{err}"
    );
    assert!(
        err.contains("Error: mismatched type at NiInfo.timeout_secs"),
        "{err}"
    );

    // Nothing changed and the daemon keeps serving.
    assert_eq!(text(&lnetctl(&bin, &d, &["plugin", "show"]).stdout), show);
    let ping = lnetctl(&bin, &d, &["ping", "0@lo"]);
    assert!(ping.status.success(), "{}", text(&ping.stderr));
    assert!(
        text(&ping.stdout).starts_with("ping:\n- primary nid: 0@lo\n"),
        "{}",
        text(&ping.stdout)
    );
    let out = lnetctl(&bin, &d, &["net", "add", "--net", "vnd", "--if", "fab0"]);
    assert!(out.status.success(), "net add vnd: {}", text(&out.stderr));
    let nets = text(&lnetctl(&bin, &d, &["net", "show", "--net", "vnd"]).stdout);
    assert!(nets.contains("@vnd\n"), "{nets}");
}
