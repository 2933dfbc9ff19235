//! lnetd processes for tests: one guard that owns a daemon (or a process
//! serving the same control socket) and kills it on drop, also when the test
//! fails, so no test leaves a process behind.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use liblnetconfig::Client;

/// How long a daemon may take to answer on its socket (a loaded machine
/// runs many test binaries at once).
pub const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A daemon killed on drop: our child, or one started detached (by
/// `lnetctl lnet configure`) that we adopted by the PID its hello gave,
/// killed only while that PID still answers on the socket (never a
/// recycled PID).
#[derive(Debug)]
pub struct Daemon {
    child: Option<Child>,
    adopted: Option<u32>,
    socket: PathBuf,
}

impl Daemon {
    /// Starts `lnetd --socket SOCKET --foreground ARGS` (this build's lnetd,
    /// output discarded) and waits until it answers a hello.
    pub fn start(socket: impl Into<PathBuf>, args: &[&str]) -> Daemon {
        let mut cmd = Command::new(crate::bins::lnetd());
        cmd.stdout(Stdio::null()).stderr(Stdio::null());
        Daemon::spawn(cmd, socket, args)
    }

    /// As [`Daemon::start`], with no plugin path from the environment
    /// (`LNET_PLUGIN_PATH` removed): lnetd looks for plugins in its own
    /// directory, the profile directory the [`crate::bins`] plugins are
    /// built into.
    pub fn start_clean(socket: impl Into<PathBuf>, args: &[&str]) -> Daemon {
        let mut cmd = Command::new(crate::bins::lnetd());
        cmd.env_remove("LNET_PLUGIN_PATH")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        Daemon::spawn(cmd, socket, args)
    }

    /// As [`Daemon::start`] with a prepared command (a program, its
    /// environment, a namespace, where its output goes): `--socket SOCKET
    /// --foreground ARGS` are added.
    pub fn spawn(mut cmd: Command, socket: impl Into<PathBuf>, args: &[&str]) -> Daemon {
        let socket = socket.into();
        let child = cmd
            .arg("--socket")
            .arg(&socket)
            .arg("--foreground")
            .args(args)
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        let mut d = Daemon {
            child: Some(child),
            adopted: None,
            socket,
        };
        // As wait_answer, but a daemon that exits (a refused parameter, a
        // busy socket) fails the test at once with its status, instead of
        // after START_TIMEOUT.
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if Client::connect(&d.socket)
                .and_then(|mut c| c.hello())
                .is_ok()
            {
                return d;
            }
            if let Some(st) = d.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                d.child = None;
                panic!(
                    "{cmd:?} exited with {st} before answering on {}",
                    d.socket.display()
                );
            }
            assert!(
                Instant::now() < deadline,
                "nothing answers on {} after {START_TIMEOUT:?}",
                d.socket.display()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Takes charge of daemon `pid` that answered on `socket` (one started
    /// detached): it is killed on drop if it still answers there with that
    /// PID.
    pub fn adopt(socket: impl Into<PathBuf>, pid: u32) -> Daemon {
        Daemon {
            child: None,
            adopted: Some(pid),
            socket: socket.into(),
        }
    }

    /// The daemon's PID.
    pub fn pid(&self) -> u32 {
        match (&self.child, self.adopted) {
            (Some(c), _) => c.id(),
            (None, Some(pid)) => pid,
            (None, None) => panic!("the daemon on {} has exited", self.socket.display()),
        }
    }

    /// Its control socket.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Runs this build's `lnetctl --socket SOCKET ARGS` against the daemon
    /// (built on first use); its output.
    pub fn lnetctl(&self, args: &[&str]) -> Output {
        crate::lnetctl_on(crate::bins::lnetctl(), &self.socket, args)
    }

    /// Waits at most `within` for our child to exit; its status.
    pub fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let child = self
            .child
            .as_mut()
            .expect("wait_exit is for a daemon this guard started");
        let st = crate::wait_for(
            &format!("the daemon on {} to exit", self.socket.display()),
            within,
            || {
                child
                    .try_wait()
                    .expect("try_wait")
                    .ok_or("still running".into())
            },
        );
        self.child = None;
        st
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        } else if let Some(pid) = self.adopted.take() {
            let still_ours = Client::connect(&self.socket)
                .and_then(|mut c| c.hello())
                .is_ok_and(|i| i.pid == pid);
            if still_ours {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .stderr(Stdio::null())
                    .status();
            }
        }
    }
}

/// Waits until something answers a hello on `socket` (at most
/// [`START_TIMEOUT`]); its PID.
pub fn wait_answer(socket: &Path) -> u32 {
    wait_answer_within(socket, START_TIMEOUT)
}

/// Waits at most `within` until something answers a hello on `socket`;
/// its PID.
pub fn wait_answer_within(socket: &Path, within: Duration) -> u32 {
    crate::wait_for(
        &format!("an answer on {}", socket.display()),
        within,
        || {
            Client::connect(socket)
                .and_then(|mut c| c.hello())
                .map(|info| info.pid)
                .map_err(|e| e.to_string())
        },
    )
}
