//! The one place that finds or builds the workspace's binaries and plugins
//! for integration tests: `lnetd`, `lnetctl`/`lst`/`lctl`,
//! `liblnd_sock.so`, `liblnd_fault.so`, `liblnd_o2ib.so` and
//! `liblnd_vnd.so`. They belong to other packages than most tests that run
//! them, so cargo does not build them for those tests: the first call
//! builds the whole workspace into a target directory of its own
//! ([`bin_dir`]; [`lnd_test_host::bins`] says why), where lnetd also looks
//! for plugins.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use lnd_test_host::bins::built;
pub use lnd_test_host::bins::{bin_dir, cargo};

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
