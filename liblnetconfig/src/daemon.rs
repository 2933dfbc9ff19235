//! Starting lnetd for `lnetctl lnet configure` when nobody answers on the socket.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::Error;

/// The environment variable naming the lnetd executable to start.
pub const LNETD_ENV: &str = "LNETD";

/// Finds lnetd: `$LNETD`, else next to the running executable (so a cargo
/// target directory works as is), else in `PATH`.
pub fn find_lnetd() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(LNETD_ENV) {
        return Some(PathBuf::from(p));
    }
    let sibling = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|d| d.join("lnetd")));
    if let Some(s) = sibling.filter(|s| s.is_file()) {
        return Some(s);
    }
    std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|d| d.join("lnetd"))
            .find(|p| p.is_file())
    })
}

/// Starts a detached lnetd on `socket` and returns once it answers there
/// (lnetd itself waits for that before returning), passing the socket and,
/// as plugin path, the client's own directory (`LNET_PLUGIN_PATH` is
/// inherited).
pub fn start(socket: &Path) -> Result<(), Error> {
    let Some(lnetd) = find_lnetd() else {
        return Err(Error::Start {
            socket: socket.to_path_buf(),
            detail: format!(
                "lnetd not found next to lnetctl nor in PATH; set {LNETD_ENV}=/path/to/lnetd or \
                 run lnetd --socket {}",
                socket.display()
            ),
        });
    };
    let mut cmd = Command::new(&lnetd);
    cmd.arg("--socket").arg(socket);
    // Plugins built or installed next to the client are found too (lnetd
    // also searches LNET_PLUGIN_PATH, inherited, and its own directory).
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        cmd.arg("--plugin-path").arg(dir);
    }
    let out = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| Error::Start {
            socket: socket.to_path_buf(),
            detail: format!("cannot run {}: {e}", lnetd.display()),
        })?;
    if out.status.success() {
        return Ok(());
    }
    let msg = String::from_utf8_lossy(&out.stderr).trim().to_string();
    Err(Error::Start {
        socket: socket.to_path_buf(),
        detail: format!("{} failed ({}): {msg}", lnetd.display(), out.status),
    })
}
