//! Where tests find the workspace's binaries and plugins: built with one
//! `cargo build --workspace` into a target directory of their own,
//! [`bin_dir`] (`target/nested/<profile>`), once per test process (a no-op
//! when it is fresh; cargo does not hold its build lock while tests run).
//! `scripts/test.sh` builds that directory before the tests.
//!
//! A directory of their own, because a plugin crate (lnd-sock, lnd-fault,
//! lnd-o2ib) is both a `cdylib` and an `rlib`, and cargo names such a
//! crate's outputs without a hash. A `cargo build` of one into the test
//! build's target directory resolves features without the
//! dev-dependencies a `cargo test` adds, and writes over the rlib the test
//! build linked its crates against: the next doc test of those crates then
//! fails to compile (E0460), and the next `cargo test` rebuilds them. One
//! command for every binary also means one build, not one per package set.
//!
//! lnet-tests' `bins` names each binary; this module is here, with lnd-api
//! as its only dependency, so that the plugin crates' own tests use it too.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The name of the target directory, inside the test build's, that the
/// binaries and plugins are built into.
pub const NESTED_TARGET: &str = "nested";

/// The test build's profile directory (`target/debug` for `cargo test`):
/// the test executable lives in its `deps`.
fn test_profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    exe.parent()
        .and_then(Path::parent)
        .expect("the test executable is in <target>/<profile>/deps")
        .to_path_buf()
}

/// Where the binaries and plugins are: the test build's profile (`debug`
/// or `release`) in the [`NESTED_TARGET`] directory of its target
/// directory.
pub fn bin_dir() -> PathBuf {
    let profile = test_profile_dir();
    let name = profile
        .file_name()
        .expect("the profile directory has a name");
    profile
        .parent()
        .expect("the profile directory has a parent")
        .join(NESTED_TARGET)
        .join(name)
}

/// A `cargo` command (the one running these tests when there is one).
pub fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// Runs `cargo build --quiet --workspace` into [`bin_dir`], once per
/// process; panics with the command to run by hand when it fails.
pub fn build_all() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let dir = bin_dir();
        let target = dir.parent().expect("bin_dir has a parent");
        let mut cmd = cargo();
        cmd.args(["build", "--quiet", "--workspace", "--target-dir"])
            .arg(target);
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
            target.display()
        );
    });
}

/// `file` (a binary or a plugin's `.so`) in [`bin_dir`], built, checked to
/// exist.
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
