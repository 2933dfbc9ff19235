//! The one place that finds or builds the workspace's binaries and plugins
//! for integration tests.
//!
//! `lnetd`, `lnetctl`/`lst`/`lctl`, `liblnd_sock.so`, `liblnd_fault.so` and
//! `liblnd_vnd.so` belong
//! to other packages than most tests that run them, so cargo does not build
//! them for those tests. The first call for one runs `cargo build` for it
//! into the current build's target directory and profile (a no-op when it
//! is fresh; cargo does not hold its build lock while tests run) and
//! returns its path in the profile directory, where lnetd also looks for
//! plugins. Each is built once per test process.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::profile_dir;

/// A `cargo` command (the one running these tests when there is one).
pub fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// Runs `cargo build --quiet ARGS` into the current build's target
/// directory and profile; panics with the command to run by hand when it
/// fails.
pub fn cargo_build(args: &[&str]) {
    let dir = profile_dir();
    let mut cmd = cargo();
    cmd.args(["build", "--quiet"])
        .args(args)
        .arg("--target-dir")
        .arg(dir.parent().expect("the profile directory has a parent"));
    if dir.ends_with("release") {
        cmd.arg("--release");
    }
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        status.success(),
        "cannot build: run `cargo build {}` to see why",
        args.join(" ")
    );
}

/// Builds once (per `slot`) and returns `file` in the profile directory,
/// checked to exist.
fn built(slot: &'static OnceLock<PathBuf>, args: &[&str], file: &str) -> &'static Path {
    slot.get_or_init(|| {
        cargo_build(args);
        let path = profile_dir().join(file);
        assert!(
            path.is_file(),
            "{} missing after `cargo build {}`",
            path.display(),
            args.join(" ")
        );
        path
    })
}

/// The `lnetd` daemon.
pub fn lnetd() -> &'static Path {
    static P: OnceLock<PathBuf> = OnceLock::new();
    built(&P, &["-p", "lnetd", "--bin", "lnetd"], "lnetd")
}

/// `lnetctl` (built with `lst`).
pub fn lnetctl() -> &'static Path {
    static P: OnceLock<PathBuf> = OnceLock::new();
    built(&P, &["-p", "lnetctl", "--bins"], "lnetctl")
}

/// `lst` (built with `lnetctl`).
pub fn lst() -> &'static Path {
    static P: OnceLock<PathBuf> = OnceLock::new();
    built(&P, &["-p", "lnetctl", "--bins"], "lst")
}

/// `lctl` (built with `lnetctl`).
pub fn lctl() -> &'static Path {
    static P: OnceLock<PathBuf> = OnceLock::new();
    built(&P, &["-p", "lnetctl", "--bins"], "lctl")
}

/// The TCP LND plugin, `liblnd_sock.so`.
pub fn sock_plugin() -> &'static Path {
    static P: OnceLock<PathBuf> = OnceLock::new();
    built(&P, &["-p", "lnd-sock", "--lib"], "liblnd_sock.so")
}

/// The fault filter plugin, `liblnd_fault.so` (lnetd loads it from its
/// plugin path on the first `lnetctl fault` command).
pub fn fault_plugin() -> &'static Path {
    static P: OnceLock<PathBuf> = OnceLock::new();
    built(&P, &["-p", "lnd-fault", "--lib"], "liblnd_fault.so")
}

/// The vendor example plugin (`plugins/vendor-lnd`), `liblnd_vnd.so`.
pub fn vendor_plugin() -> &'static Path {
    static P: OnceLock<PathBuf> = OnceLock::new();
    built(&P, &["-p", "vendor-lnd", "--lib"], "liblnd_vnd.so")
}
