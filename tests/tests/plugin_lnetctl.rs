//! Issue #2 point 7 through the user's tools: the example vendor plugin,
//! built from a clean directory against lnd-api alone, is loaded with
//! `lnetctl plugin load` into a running lnetd and shown by `plugin show`; a
//! second copy built against a deliberately changed interface is refused
//! with the loader's message, and the daemon keeps serving.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use lnet_tests::daemon::Daemon;
use lnet_tests::plugin_build::{build_vendor_plugin, Interface};
use lnet_tests::{text, TempDir};

/// The directory holding this build's lnetd and lnetctl (built on first
/// use).
fn bin_dir() -> PathBuf {
    lnet_tests::bins::lnetctl();
    lnet_tests::bins::lnetd()
        .parent()
        .expect("the build directory")
        .to_path_buf()
}

/// lnetd on a private socket, with no plugin path from the environment.
fn start_daemon(bin: &Path, dir: &TempDir) -> Daemon {
    let mut cmd = Command::new(bin.join("lnetd"));
    cmd.env_remove("LNET_PLUGIN_PATH")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    Daemon::spawn(cmd, dir.socket(), &[])
}

fn lnetctl(bin: &Path, d: &Daemon, args: &[&str]) -> Output {
    Command::new(bin.join("lnetctl"))
        .arg("--socket")
        .arg(d.socket())
        .args(args)
        .output()
        .expect("run lnetctl")
}

#[test]
fn vendor_plugin_from_a_clean_directory_through_lnetctl() {
    let good = build_vendor_plugin("same", Interface::Same, "vendor-lnd", "vnd");
    let changed = build_vendor_plugin("changed", Interface::ChangedLayout, "changed-lnd", "chg");
    let bin = bin_dir();
    let dir = TempDir::new("plugin-lnetctl");
    let d = start_daemon(&bin, &dir);
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
