//! The one place that finds or builds the workspace's binaries and plugins
//! for integration tests.
//!
//! `lnetd`, `lnetctl`/`lst`/`lctl`, `liblnd_sock.so`, `liblnd_fault.so`,
//! `liblnd_o2ib.so` and `liblnd_vnd.so` belong to other packages than most
//! tests that run them, so cargo does not build them for those tests. The
//! first call for one runs `cargo build --workspace` into a target
//! directory of its own, [`bin_dir`] (a no-op when it is fresh; cargo does
//! not hold its build lock while tests run), and returns its path there,
//! where lnetd also looks for plugins.
//!
//! A directory of their own, because a plugin crate is both a `cdylib` and
//! an `rlib`, and cargo names such a crate's outputs without a hash: a
//! build with other features (a `cargo build` resolves features without
//! the dev-dependencies a `cargo test` adds) would write over the
//! `liblnd_fault.rlib` the test build linked its crates against. The next
//! doc test of those crates then failed to compile (E0460), and the next
//! `cargo test` rebuilt them. One command (the whole workspace) for every
//! binary also means one build, not one per package set.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::profile_dir;

/// A `cargo` command (the one running these tests when there is one).
pub fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// The name of the target directory, inside the current build's, that
/// the binaries and plugins are built into (`scripts/test.sh` builds them
/// there before the tests run).
pub const NESTED_TARGET: &str = "nested";

/// Where the binaries and plugins are: the current profile's directory
/// (`debug` or `release`) in the [`NESTED_TARGET`] directory of the current
/// build's target directory.
pub fn bin_dir() -> PathBuf {
    let profile = profile_dir();
    let name = profile
        .file_name()
        .expect("the profile directory has a name");
    profile
        .parent()
        .expect("the profile directory has a parent")
        .join(NESTED_TARGET)
        .join(name)
}

/// Runs `cargo build --quiet --workspace` into [`bin_dir`], once per
/// process; panics with the command to run by hand when it fails.
pub fn build_all() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let dir = bin_dir();
        let mut cmd = cargo();
        cmd.args(["build", "--quiet", "--workspace"])
            .arg("--target-dir")
            .arg(dir.parent().expect("bin_dir has a parent"));
        if dir.ends_with("release") {
            cmd.arg("--release");
        }
        let status = cmd
            .status()
            .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
        assert!(
            status.success(),
            "cannot build the workspace's binaries and plugins: run `cargo build --workspace \
             --target-dir {}` to see why",
            dir.parent().expect("bin_dir has a parent").display()
        );
    });
}

/// `file` in [`bin_dir`], built, checked to exist.
pub fn built(file: &str) -> PathBuf {
    build_all();
    let path = bin_dir().join(file);
    assert!(
        path.is_file(),
        "{} missing after `cargo build --workspace`",
        path.display()
    );
    path
}

/// [`built`], kept for the process.
fn built_once(slot: &'static OnceLock<PathBuf>, file: &str) -> &'static Path {
    slot.get_or_init(|| built(file))
}

/// The `lnetd` daemon.
pub fn lnetd() -> &'static Path {
    static P: OnceLock<PathBuf> = OnceLock::new();
    built_once(&P, "lnetd")
}

/// `lnetctl`.
pub fn lnetctl() -> &'static Path {
    static P: OnceLock<PathBuf> = OnceLock::new();
    built_once(&P, "lnetctl")
}

/// `lst`.
pub fn lst() -> &'static Path {
    static P: OnceLock<PathBuf> = OnceLock::new();
    built_once(&P, "lst")
}

/// `lctl`.
pub fn lctl() -> &'static Path {
    static P: OnceLock<PathBuf> = OnceLock::new();
    built_once(&P, "lctl")
}

/// The TCP LND plugin, `liblnd_sock.so`.
pub fn sock_plugin() -> &'static Path {
    static P: OnceLock<PathBuf> = OnceLock::new();
    built_once(&P, "liblnd_sock.so")
}

/// The fault filter plugin, `liblnd_fault.so` (lnetd loads it from its
/// plugin path on the first `lnetctl fault` command).
pub fn fault_plugin() -> &'static Path {
    static P: OnceLock<PathBuf> = OnceLock::new();
    built_once(&P, "liblnd_fault.so")
}

/// The o2ib LND plugin, `liblnd_o2ib.so`.
pub fn o2ib_plugin() -> &'static Path {
    static P: OnceLock<PathBuf> = OnceLock::new();
    built_once(&P, "liblnd_o2ib.so")
}

/// The vendor example plugin (`plugins/vendor-lnd`), `liblnd_vnd.so`.
pub fn vendor_plugin() -> &'static Path {
    static P: OnceLock<PathBuf> = OnceLock::new();
    built_once(&P, "liblnd_vnd.so")
}
