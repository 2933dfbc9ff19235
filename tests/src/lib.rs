//! Test support for the workspace's integration tests: locating the build
//! tree, building plugins out of tree the way a vendor does, the simulated
//! fabric ([`sim`]), network-namespace guards ([`netns`]), test data
//! ([`pattern`]), selftest on in-process nodes ([`lst`]) and the driver of
//! `lnet-test-node` processes ([`test_node`]).

use std::path::{Path, PathBuf};
use std::process::Command;

pub mod lst;
pub mod netns;
pub mod pattern;
pub mod plugin_build;
pub mod sim;
pub mod test_node;

/// The workspace root (the directory holding the top `Cargo.toml`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// The cargo target directory of this build (honours `CARGO_TARGET_DIR`).
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) => {
            let d = PathBuf::from(d);
            if d.is_absolute() {
                d
            } else {
                workspace_root().join(d)
            }
        }
        None => workspace_root().join("target"),
    }
}

/// The directory of the binaries and cdylibs of the current profile
/// (`target/debug` for `cargo test`).
pub fn profile_dir() -> PathBuf {
    // The test executable lives in target/<profile>/deps.
    let exe = std::env::current_exe().expect("current exe");
    exe.parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| target_dir().join("debug"))
}

/// Runs a command, returning stdout, or panics with everything it printed.
pub fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    if !out.status.success() {
        panic!(
            "{cmd:?} failed with {}\nstdout:\n{}\nstderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8_lossy(&out.stdout).into_owned()
}
