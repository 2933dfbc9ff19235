//! dist/lnet.service works: its ExecStart/ExecStartPost/ExecStop lines,
//! run as written (binaries and paths substituted, `${VAR}`/`$VAR` expanded
//! as systemd does), start lnetd, configure LNet, import the YAML, and stop.

use std::collections::HashMap;
use std::process::Command;
use std::time::{Duration, Instant};

use lnet_tests::bins::lnetd as lnetd_bin;
use lnet_tests::daemon::{wait_answer, Daemon};
use lnet_tests::TempDir;

const LNETCTL: &str = env!("CARGO_BIN_EXE_lnetctl");
const UNIT: &str = include_str!("../../dist/lnet.service");

/// The unit's command lines as argument vectors, systemd-expanded.
fn exec_lines(key: &str, env: &HashMap<String, String>) -> Vec<Vec<String>> {
    let lnetd = lnetd_bin();
    UNIT.lines()
        .filter_map(|l| l.strip_prefix(&format!("{key}=")))
        .map(|cmd| {
            let mut argv = Vec::new();
            for w in cmd.split_whitespace() {
                if let Some(v) = w.strip_prefix("${").and_then(|w| w.strip_suffix('}')) {
                    argv.push(env.get(v).cloned().unwrap_or_default());
                } else if let Some(v) = w.strip_prefix('$') {
                    // $VAR: split into words, none when empty.
                    let val = env.get(v).cloned().unwrap_or_default();
                    argv.extend(val.split_whitespace().map(str::to_string));
                } else {
                    argv.push(match w {
                        "/usr/sbin/lnetd" => lnetd.to_string_lossy().into_owned(),
                        "/usr/sbin/lnetctl" => LNETCTL.to_string(),
                        other => other.to_string(),
                    });
                }
            }
            argv
        })
        .collect()
}

fn run(argv: &[String]) -> std::process::Output {
    Command::new(&argv[0])
        .args(&argv[1..])
        .env_remove("LNET_SOCKET")
        .output()
        .expect("run a unit command")
}

#[test]
fn lnet_service_starts_imports_and_stops() {
    let dir = TempDir::new("dist");
    let socket = dir.join("lnetctl.sock");
    let conf = dir.join("lnet.conf");
    let yaml = "global:\n    numa_range: 0\n    max_interfaces: 4096\n    discovery: 1\n    drop_asym_route: 0\n    retry_count: 1\n    transaction_timeout: 120\n    health_sensitivity: 100\n    recovery_interval: 1\n    router_sensitivity: 100\n    lnd_timeout: 59\n    response_tracking: 3\n    recovery_limit: 0\n    max_recovery_ping_interval: 900\nudsp:\n    - idx: 0\n      src: tcp\n      action:\n          priority: 1\n";
    std::fs::write(&conf, yaml).expect("write conf");
    let mut env: HashMap<String, String> = UNIT
        .lines()
        .filter_map(|l| l.strip_prefix("Environment="))
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert!(env.contains_key("LNET_CONFIG") && env.contains_key("LNET_SOCKET"));
    env.insert("LNET_SOCKET".into(), socket.to_string_lossy().into_owned());
    env.insert("LNET_CONFIG".into(), conf.to_string_lossy().into_owned());

    let start = exec_lines("ExecStart", &env);
    let post = exec_lines("ExecStartPost", &env);
    assert_eq!(
        (start.len(), post.len()),
        (1, 2),
        "the unit's command lines"
    );
    let mut daemon = None;
    for argv in start.iter().chain(&post) {
        let out = run(argv);
        // lnetd forks (Type=forking): whatever happens next, it is killed
        // when the test ends.
        daemon.get_or_insert_with(|| Daemon::adopt(&socket, wait_answer(&socket)));
        assert!(
            out.status.success(),
            "{argv:?}: {:?}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // The imported configuration is what the node now exports.
    let out = Command::new(LNETCTL)
        .arg("--socket")
        .arg(&socket)
        .args(["export", "--backup"])
        .output()
        .expect("export");
    assert_eq!(String::from_utf8_lossy(&out.stdout), yaml);

    for argv in exec_lines("ExecStop", &env) {
        let out = run(&argv);
        assert!(out.status.success(), "{argv:?}: {:?}", out.status);
    }
    // ExecStop tears LNet down and leaves lnetd loaded, as upstream leaves
    // the module; then systemd sends the service's processes SIGTERM, on
    // which lnetd unconfigures (already done), removes its socket and exits.
    let out = Command::new(LNETCTL)
        .arg("--socket")
        .arg(&socket)
        .args(["net", "show"])
        .output()
        .expect("net show");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("LNet stack down"),
        "LNet unconfigured by ExecStop"
    );
    let pid = wait_answer(&socket);
    let kill = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(kill.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    while socket.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!socket.exists(), "lnetd stopped and removed its socket");
    drop(daemon);
}
