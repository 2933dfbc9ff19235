//! Test support for the workspace's integration tests, shared by every test
//! crate as a dev-dependency: locating the build tree and building the
//! workspace's binaries and plugins on first use ([`bins`]), the daemon
//! guard ([`daemon`]), lnetd nodes in namespaces with fault rules per node
//! or NI ([`cluster`]), temporary directories ([`tempdir`]),
//! network-namespace and veth guards ([`netns`]), building plugins out of
//! tree the way a vendor does ([`plugin_build`]), the simulated fabric
//! ([`sim`]), test data ([`pattern`]), selftest on in-process nodes
//! ([`lst`]), the driver of `lnet-test-node` processes ([`test_node`]),
//! output several crates expect ([`expected`]), and polling a condition
//! with a deadline ([`wait_for`], [`wait_until`]).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

pub mod bins;
pub mod cluster;
pub mod daemon;
pub mod expected;
pub mod lst;
pub mod netns;
pub mod pattern;
pub mod plugin_build;
pub mod sim;
pub mod slow_lnd;
pub mod tempdir;
pub mod test_node;

pub use tempdir::TempDir;

/// Runs `lnetctl --socket SOCKET ARGS` with the binary at `bin` (a test
/// crate's own `CARGO_BIN_EXE_lnetctl`, or [`bins::lnetctl`]), without the
/// caller's `LNET_SOCKET`; its output.
pub fn lnetctl_on(bin: &Path, socket: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new(bin);
    cmd.arg("--socket")
        .arg(socket)
        .args(args)
        .env_remove("LNET_SOCKET");
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

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

/// A command's output bytes as text (lossy).
pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Asserts that a command (`lnetctl`, `lst`...) succeeded and returns its
/// standard output; panics with its status and both outputs otherwise.
#[track_caller]
pub fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "command failed: {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// How often [`wait_for`] and [`wait_until`] look again.
pub const POLL: Duration = Duration::from_millis(50);

/// Polls `f` until it returns `Ok`, every [`POLL`], for at most `within`;
/// returns what it gave. `Err` says how things stand (it ends the panic
/// message when the deadline passes). For a state that an action brings
/// about in the background (threads exiting, counters moving, a route
/// coming back): read it with a deadline, never once right after the action.
/// Deadlines are generous: a 2-core machine running the whole suite can
/// deschedule a process for seconds.
#[track_caller]
pub fn wait_for<T>(what: &str, within: Duration, mut f: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + within;
    loop {
        match f() {
            Ok(v) => return v,
            Err(now) => assert!(
                Instant::now() < deadline,
                "gave up after {within:?} waiting for {what}: {now}"
            ),
        }
        std::thread::sleep(POLL);
    }
}

/// [`wait_for`] with a yes/no condition.
#[track_caller]
pub fn wait_until(what: &str, within: Duration, mut f: impl FnMut() -> bool) {
    wait_for(what, within, || {
        if f() {
            Ok(())
        } else {
            Err("the condition never held".into())
        }
    });
}

/// A TCP port for a test's lnetd acceptor (`accept_port=`), free on every
/// local address when this returns.
///
/// The port is taken below the kernel's ephemeral range
/// (`net.ipv4.ip_local_port_range`), so no outgoing connection on the machine
/// can be given it as a source port between this check and lnetd's bind, and
/// from a sequence that differs per process and per call, so two tests
/// running at once do not pick the same one. Ports 20000 and up are left to
/// tests that derive a port from their process id.
pub fn free_port() -> u16 {
    use std::net::{Ipv4Addr, TcpListener};
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32768)
        .min(20000);
    let (base, span) = (10000u32, low.saturating_sub(10000).max(1));
    let seed = std::process::id().wrapping_mul(2654435761);
    for _ in 0..span {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = base + seed.wrapping_add(n.wrapping_mul(7919)) % span;
        let Ok(port) = u16::try_from(port) else {
            continue;
        };
        if TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)).is_ok() {
            return port;
        }
    }
    panic!("no free TCP port between {base} and {}", base + span)
}
