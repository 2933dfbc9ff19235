//! lnetd: the LNet daemon, one LNet instance per process (what loading the
//! lnet kernel module is upstream), configured through its control socket by
//! `lnetctl`.
//!
//! ```text
//! lnetd [--socket PATH] [--plugin-path DIR]... [--foreground] [--log-level LEVEL]
//!       [--log-file FILE] [--param NAME=VALUE]... [--config FILE]...
//!       [--max-clients N] [--client-timeout SECS]
//! ```
//!
//! Without `--foreground` it re-executes itself detached (new process group,
//! stdin/stdout on /dev/null, standard error appended to the log file) and
//! returns once the control socket answers. Its standard error is its log.

#![forbid(unsafe_code)]

#[path = "lnetd/params.rs"]
mod params;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use lnetd::ctl::{ClientLimits, CtlServer};
use lnetd::host::PluginDecls;
use lnetd::node::NodeConfig;
use nix::sys::signal::{SigSet, Signal};
use params::Params;

/// `LNET_PID_LUSTRE`.
const LNET_PID: u32 = 12345;

/// How long the launching process waits for the daemon to answer.
const START_TIMEOUT: Duration = Duration::from_secs(20);

const USAGE: &str = "\
usage: lnetd [OPTIONS]

The LNet daemon: one LNet instance, configured with lnetctl through a control socket.

Options:
  --socket PATH        control socket (env LNET_SOCKET; default /run/lnet/lnetctl.sock)
  --plugin-path DIR    directory searched for LND plugins; repeatable
                       (env LNET_PLUGIN_PATH, colon-separated; lnetd's own directory is
                       always searched last)
  --foreground, -f     stay in the foreground (default: detach once the socket answers)
  --log-level LEVEL    error, warn, info (default), debug, trace, or a tracing filter
  --log-file FILE      where a detached lnetd writes its log (default: SOCKET.log)
  --param NAME=VALUE   a module parameter of lnet (networks=tcp0(eth0), accept_port=988,
                       config_on_load=1, ...) or of the plugins in the plugin path (ksocklnd
                       sock_timeout=65 ...; every plugin module that has NAME); repeatable,
                       wins over --config. metrics_address=/run/lnet/metrics.sock (or
                       127.0.0.1:9808) serves OpenMetrics on GET /metrics;
                       params_dir=DIR keeps DIR/MODULE/NAME files with the parameter values;
                       cpu_pattern=\"0[2,3]\" binds lnetd's threads to CPUs 2 and 3
  --config FILE        modprobe-style file: lines \"options MODULE NAME=VALUE ...\" for lnet,
                       libcfs, lnet_selftest or a plugin's module (ksocklnd); repeatable
  --max-clients N      control clients served at once (default 64); at the cap the
                       longest-idle one is closed, or the newcomer refused if none is idle
  --client-timeout SECS
                       time a client has to send a whole request line once it started
                       one, and to take a reply (default 10)
  --help, -h           this text
  --version, -V        the version
";

/// The command line, validated.
struct Opts {
    socket: PathBuf,
    plugin_path: Vec<PathBuf>,
    foreground: bool,
    log_level: Option<String>,
    log_file: Option<PathBuf>,
    params: Params,
    limits: ClientLimits,
}

enum Action {
    Run(Box<Opts>),
    Help,
    Version,
}

fn parse_args(args: &[OsString]) -> Result<Action, String> {
    let mut socket: Option<PathBuf> = None;
    let mut plugin_dirs: Vec<PathBuf> = Vec::new();
    let mut foreground = false;
    let mut log_level = None;
    let mut log_file = None;
    let mut param_items: Vec<String> = Vec::new();
    let mut configs: Vec<PathBuf> = Vec::new();
    let mut limits = ClientLimits::default();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let text = arg
            .to_str()
            .ok_or_else(|| format!("argument {arg:?} is not valid UTF-8"))?;
        let (name, inline) = match text.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n, Some(v.to_string())),
            _ => (text, None),
        };
        let mut value = |what: &str| -> Result<String, String> {
            match &inline {
                Some(v) => Ok(v.clone()),
                None => it
                    .next()
                    .and_then(|v| v.to_str())
                    .map(str::to_string)
                    .ok_or_else(|| format!("option {name} needs {what}")),
            }
        };
        match name {
            "--socket" | "-s" => socket = Some(PathBuf::from(value("a path")?)),
            "--plugin-path" | "-p" => plugin_dirs.push(PathBuf::from(value("a directory")?)),
            "--foreground" | "-f" => foreground = true,
            "--log-level" => log_level = Some(value("a level")?),
            "--log-file" => log_file = Some(PathBuf::from(value("a file")?)),
            "--param" | "-o" => param_items.push(value("NAME=VALUE")?),
            "--config" | "-c" => configs.push(PathBuf::from(value("a file")?)),
            "--max-clients" => {
                let v = value("a number")?;
                limits.max_clients = v
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=65536).contains(n))
                    .ok_or_else(|| {
                        format!("bad --max-clients {v:?}: give a number from 1 to 65536")
                    })?;
            }
            "--client-timeout" => {
                let v = value("seconds")?;
                let secs = v
                    .parse::<u64>()
                    .ok()
                    .filter(|n| (1..=3600).contains(n))
                    .ok_or_else(|| {
                        format!("bad --client-timeout {v:?}: give seconds from 1 to 3600")
                    })?;
                limits.line_timeout = Duration::from_secs(secs);
            }
            "--help" | "-h" => return Ok(Action::Help),
            "--version" | "-V" => return Ok(Action::Version),
            other => return Err(format!("unknown option {other}; see lnetd --help")),
        }
    }
    let socket = socket
        .or_else(|| std::env::var_os(liblnetconfig::SOCKET_ENV).map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(liblnetconfig::DEFAULT_SOCKET));
    let socket = std::path::absolute(&socket)
        .map_err(|e| format!("bad socket path {}: {e}", socket.display()))?;
    let plugin_path = plugin_path(plugin_dirs);
    let mut params = Params::new(PluginDecls::from_path(plugin_path.clone()));
    for c in &configs {
        params.read_config(c)?;
    }
    for p in &param_items {
        params.add(p, "--param")?;
    }
    params.check_consistency()?;
    Ok(Action::Run(Box::new(Opts {
        socket,
        plugin_path,
        foreground,
        log_level,
        log_file,
        params,
        limits,
    })))
}

/// `--plugin-path` dirs, then `LNET_PLUGIN_PATH`, then lnetd's own directory
/// (so a cargo target directory works as is). Relative dirs are made absolute.
fn plugin_path(mut dirs: Vec<PathBuf>) -> Vec<PathBuf> {
    if let Some(env) = std::env::var_os("LNET_PLUGIN_PATH") {
        dirs.extend(std::env::split_paths(&env).filter(|p| !p.as_os_str().is_empty()));
    }
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        dirs.push(dir);
    }
    let mut out: Vec<PathBuf> = Vec::new();
    for d in dirs {
        let d = std::path::absolute(&d).unwrap_or(d);
        if !out.contains(&d) {
            out.push(d);
        }
    }
    out
}

fn init_logging(level: Option<&str>) -> Result<(), String> {
    use tracing_subscriber::EnvFilter;
    let filter = match level {
        Some(l) => EnvFilter::try_new(l).map_err(|e| format!("bad --log-level {l:?}: {e}"))?,
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(filter)
        .try_init()
        .map_err(|e| format!("cannot set up logging: {e}"))
}

/// `cpu_pattern`: binds lnetd's threads to the CPUs of its partitions
/// before any NI (and LND thread) starts; an empty pattern or `N` binds
/// nothing.
fn bind_cpus(pattern: &str) -> Result<(), String> {
    let (cpus, warning) = lnetd::cpt::on_this_machine(pattern)
        .map_err(|e| format!("bad value for parameter cpu_pattern: {e}"))?;
    if let Some(w) = warning {
        tracing::warn!("{w}");
    }
    if let Some(cpus) = cpus {
        lnetd::cpt::bind_process(&cpus)?;
        tracing::info!(cpus = %lnetd::cpt::show_list(&cpus), "cpu_pattern: threads bound");
    }
    Ok(())
}

/// The daemon proper: bind, configure on load if asked, serve until stopped.
fn run_foreground(opts: Opts) -> Result<(), String> {
    // SIGTERM and SIGINT are blocked before any thread exists (in main;
    // every thread inherits the mask) and taken synchronously by one thread
    // with sigwait: no signal handler, no unsafe code.
    let stop_signals = stop_signals();
    init_logging(opts.log_level.as_deref())?;
    for w in &opts.params.warnings {
        tracing::warn!("{w}");
    }
    if let Some(pattern) = opts.params.get("cpu_pattern") {
        bind_cpus(pattern)?;
    }
    // config_on_load=1: configured at start with the start-up networks, as
    // after a module load (lnetctl.md §5.1); otherwise `lnet configure --all`
    // applies them.
    let config_on_load = opts
        .params
        .get("config_on_load")
        .and_then(liblnetconfig::args::strtol)
        == Some(1);
    let metrics = match opts.params.get("metrics_address") {
        Some(v) => lnetd::ctl::metrics::MetricsAddr::parse(v)
            .map_err(|e| format!("bad value for parameter metrics_address: {e}"))?,
        None => None,
    };
    let cfg = NodeConfig {
        plugin_path: opts.plugin_path.clone(),
        params: opts.params.values,
        plugin_params: opts.params.plugin_values,
        tunables: None,
        pid: LNET_PID,
    };
    let server = CtlServer::bind(&opts.socket, cfg).map_err(|e| e.to_string())?;
    let metrics = match metrics {
        Some(addr) => {
            let started = lnetd::ctl::metrics::MetricsServer::bind(&addr)
                .map_err(|e| format!("cannot start the metrics endpoint ({addr}): {e}"))
                .and_then(|m| {
                    m.spawn(server.node_slot(), server.stop_handle())
                        .map_err(|e| format!("cannot start the metrics thread: {e}"))
                });
            match started {
                Ok(h) => Some(h),
                Err(msg) => {
                    // Leave no control socket behind: stop before serving.
                    server.stop_handle().stop();
                    server.serve();
                    return Err(msg);
                }
            }
        }
        None => None,
    };
    let stop = server.stop_handle();
    std::thread::Builder::new()
        .name("lnetd-signals".into())
        .spawn(move || match stop_signals.wait() {
            Ok(sig) => {
                tracing::info!(signal = %sig, "stopping");
                stop.stop();
            }
            Err(e) => tracing::error!("waiting for signals failed: {e}"),
        })
        .map_err(|e| format!("cannot start the signal thread: {e}"))?;
    tracing::info!(
        pid = std::process::id(),
        socket = %opts.socket.display(),
        plugin_path = ?opts.plugin_path,
        "lnetd starting"
    );
    server.set_client_limits(opts.limits);
    if config_on_load {
        if let Err(e) = server.configure(true) {
            // Like a module load that fails on its networks: stop the start.
            let msg = format!("LNet configure error: {e}");
            tracing::error!("{msg}");
            server.stop_handle().stop();
            server.serve();
            if let Some(m) = metrics {
                m.join();
            }
            return Err(msg);
        }
    }
    server.serve();
    if let Some(m) = metrics {
        m.join();
    }
    Ok(())
}

/// Starts a detached copy of ourselves with `--foreground` and waits until
/// its socket answers (or it dies).
fn launch_detached(opts: &Opts, args: &[OsString]) -> Result<(), String> {
    if let Ok(mut c) = liblnetconfig::Client::connect(&opts.socket) {
        if c.hello().is_ok() {
            return Err(lnetd::ctl::CtlError::AlreadyRunning {
                socket: opts.socket.clone(),
            }
            .to_string());
        }
    }
    let log = opts.log_file.clone().unwrap_or_else(|| {
        let mut s = opts.socket.clone().into_os_string();
        s.push(".log");
        PathBuf::from(s)
    });
    if let Some(dir) = log.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let log_fd = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .map_err(|e| format!("cannot open log file {}: {e}", log.display()))?;
    let exe = std::env::current_exe().map_err(|e| format!("cannot find my own executable: {e}"))?;
    let mut cmd = Command::new(exe);
    cmd.args(args)
        .arg("--foreground")
        .arg("--socket")
        .arg(&opts.socket)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log_fd));
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start the daemon: {e}"))?;
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!(
                "lnetd exited during start-up ({status}); see its log {}:\n{}",
                log.display(),
                log_tail(&log)
            ));
        }
        if let Ok(mut c) = liblnetconfig::Client::connect(&opts.socket) {
            if c.hello().is_ok() {
                eprintln!(
                    "lnetd: started (pid {}) on {}; log in {}",
                    child.id(),
                    opts.socket.display(),
                    log.display()
                );
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            return Err(format!(
                "lnetd (pid {}) did not answer on {} within {}s; see its log {}",
                child.id(),
                opts.socket.display(),
                START_TIMEOUT.as_secs(),
                log.display()
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(10)..].join("\n")
}

/// SIGTERM and SIGINT.
fn stop_signals() -> SigSet {
    let mut s = SigSet::empty();
    s.add(Signal::SIGTERM);
    s.add(Signal::SIGINT);
    s
}

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    // Blocked before anything else runs: reading the parameters may open
    // plugins, and a thread one of them starts must inherit the mask (see
    // run_foreground). The launcher of a detached lnetd unblocks them again.
    if let Err(e) = stop_signals().thread_block() {
        eprintln!("lnetd: cannot block SIGTERM/SIGINT: {e}");
        return ExitCode::FAILURE;
    }
    let result = match parse_args(&args) {
        Ok(Action::Help) => {
            print!("{USAGE}");
            Ok(())
        }
        Ok(Action::Version) => {
            println!("lnetd {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Ok(Action::Run(opts)) if opts.foreground => run_foreground(*opts),
        Ok(Action::Run(opts)) => stop_signals()
            .thread_unblock()
            .map_err(|e| format!("cannot unblock SIGTERM/SIGINT: {e}"))
            .and_then(|()| launch_detached(&opts, &args)),
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lnetd: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn options() {
        let Ok(Action::Run(o)) = parse_args(&args(&[
            "--socket=/tmp/x.sock",
            "--plugin-path",
            "/opt/p",
            "-f",
            "--param",
            "networks=tcp0(eth0)",
            "--log-level",
            "debug",
        ])) else {
            panic!("parses");
        };
        assert_eq!(o.socket, PathBuf::from("/tmp/x.sock"));
        assert_eq!(o.plugin_path[0], PathBuf::from("/opt/p"));
        assert!(o.foreground);
        assert_eq!(o.params.get("networks"), Some("tcp0(eth0)"));
        assert_eq!(o.log_level.as_deref(), Some("debug"));
        assert_eq!(o.limits, ClientLimits::default());
        let Ok(Action::Run(o)) = parse_args(&args(&["--max-clients", "8", "--client-timeout=3"]))
        else {
            panic!("parses");
        };
        assert_eq!(
            o.limits,
            ClientLimits {
                max_clients: 8,
                line_timeout: Duration::from_secs(3)
            }
        );
        // The executable's own directory is always searched.
        let exe_dir = std::env::current_exe()
            .expect("exe")
            .parent()
            .expect("dir")
            .to_path_buf();
        assert!(o.plugin_path.contains(&exe_dir));
    }

    #[test]
    fn refusals_name_the_culprit() {
        let e = parse_args(&args(&["--param", "nosuch=1"]))
            .err()
            .expect("refused");
        assert!(e.contains("nosuch"), "{e}");
        let e = parse_args(&args(&["--bogus"])).err().expect("refused");
        assert!(e.contains("--bogus"), "{e}");
        let e = parse_args(&args(&["--socket"])).err().expect("refused");
        assert!(e.contains("--socket"), "{e}");
        for bad in [["--max-clients", "0"], ["--client-timeout", "x"]] {
            let e = parse_args(&args(&bad)).err().expect("refused");
            assert!(e.contains(bad[0]) && e.contains(bad[1]), "{e}");
        }
        let e = parse_args(&args(&["--config", "/nonexistent/lnet.conf"]))
            .err()
            .expect("refused");
        assert!(e.contains("/nonexistent/lnet.conf"), "{e}");
    }
}
