//! End to end, two real lnetd on 127.0.0.1 and 127.0.0.2 (TCP LND),
//! configured with `lnetctl`:
//! * lnetd's OpenMetrics endpoint (`metrics_address=`, a Unix socket on one
//!   node, a loopback TCP port on the other) is scraped over HTTP/1.1 and
//!   its answer parsed by an independent OpenMetrics parser, Python's
//!   `prometheus_client.openmetrics.parser` (Debian python3-prometheus-client,
//!   installed by `scripts/setup.sh`). When the parser is missing the test
//!   fails as root or under CI (where setup.sh can install it) and says so;
//!   elsewhere it says it skipped the parser check.
//! * `accept_port_bulk=`: the bulk connections (BULK_IN/BULK_OUT typed
//!   connections) go to the peer's second listener, the CONTROL one to
//!   `accept_port`, as upstream socklnd since 2.16 (read from
//!   `/proc/net/tcp`).

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use lnet_tests::daemon::Daemon;
use lnet_tests::{ok, TempDir};

const LNETCTL: &str = env!("CARGO_BIN_EXE_lnetctl");
const DEADLINE: Duration = Duration::from_secs(60);

fn lnetctl(socket: &Path, args: &[&str]) -> Output {
    lnet_tests::lnetctl_on(Path::new(LNETCTL), socket, args)
}

/// lnetd with `params`, then `lnet configure` and `net add --net tcp --if ADDR`.
fn node(dir: &TempDir, name: &str, addr: &str, params: &[String]) -> Daemon {
    lnet_tests::bins::sock_plugin();
    let mut args: Vec<&str> = vec!["--param", "accept=all"];
    for p in params {
        args.extend(["--param", p.as_str()]);
    }
    let d = Daemon::start(dir.join(format!("{name}.sock")), &args);
    ok(&lnetctl(d.socket(), &["lnet", "configure"]));
    ok(&lnetctl(
        d.socket(),
        &["net", "add", "--net", "tcp", "--if", addr],
    ));
    d
}

/// One HTTP/1.1 exchange on `stream`: (status line, headers, body).
fn http(mut stream: impl Read + Write, request: &str) -> (String, String, String) {
    stream.write_all(request.as_bytes()).expect("send request");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read answer");
    let raw = String::from_utf8(raw).expect("UTF-8 answer");
    let (head, body) = raw.split_once("\r\n\r\n").expect("a head and a body");
    let (status, headers) = head.split_once("\r\n").unwrap_or((head, ""));
    (status.to_string(), headers.to_string(), body.to_string())
}

const GET: &str =
    "GET /metrics HTTP/1.1\r\nHost: localhost\r\nAccept: application/openmetrics-text\r\n\r\n";

fn scrape_unix(path: &Path) -> String {
    let (status, headers, body) = http(UnixStream::connect(path).expect("connect"), GET);
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(
        headers.contains(
            "Content-Type: application/openmetrics-text; version=1.0.0; charset=utf-8\r\n"
        ),
        "{headers}"
    );
    assert!(
        headers.contains(&format!("Content-Length: {}\r\n", body.len())),
        "{headers}"
    );
    body
}

/// A Python that can import the OpenMetrics parser: Debian's first (the
/// apt package installs there), then whatever `python3` is on the PATH.
fn python_with_parser() -> Option<&'static str> {
    ["/usr/bin/python3", "python3"].into_iter().find(|py| {
        Command::new(py)
            .args(["-c", "import prometheus_client.openmetrics.parser"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

/// The parser's view of `text`, one line per item: `TYPE family type` and
/// `SAMPLE name{k="v",...} value` with labels sorted; the parser raises on
/// anything that is not valid OpenMetrics (`# EOF` missing, a counter sample
/// without `_total`, interleaved families, bad escapes...).
fn parse(py: &str, text: &str) -> String {
    const SCRIPT: &str = r#"
import sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
for f in text_string_to_metric_families(sys.stdin.read()):
    print("TYPE %s %s" % (f.name, f.type))
    for s in f.samples:
        labels = ",".join('%s="%s"' % (k, v) for k, v in sorted(s.labels.items()))
        print("SAMPLE %s{%s} %g" % (s.name, labels, s.value))
"#;
    let mut child = Command::new(py)
        .args(["-c", SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start python");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("feed the parser");
    let out = child.wait_with_output().expect("parser ran");
    assert!(
        out.status.success(),
        "the OpenMetrics parser refused the scrape: {}\n--- scrape ---\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8")
}

/// The value of the sample `key` (`name{labels}` as [`parse`] prints it).
fn value(parsed: &str, key: &str) -> f64 {
    parsed
        .lines()
        .find_map(|l| {
            l.strip_prefix("SAMPLE ")?
                .strip_prefix(key)?
                .strip_prefix(' ')
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no sample {key} in:\n{parsed}"))
}

fn parser_or_explain() -> Option<&'static str> {
    let py = python_with_parser();
    if py.is_none() {
        let root = nix_is_root();
        let ci = std::env::var_os("CI").is_some();
        assert!(
            !(root || ci),
            "python3 with prometheus_client (Debian python3-prometheus-client) is missing: \
             run scripts/setup.sh as root"
        );
        eprintln!(
            "metrics: OpenMetrics parser missing and not root: parser check skipped \
             (scripts/setup.sh installs python3-prometheus-client)"
        );
    }
    py
}

fn nix_is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

#[test]
fn metrics_endpoint_scraped_and_parsed() {
    let dir = TempDir::new("metrics");
    let port = lnet_tests::free_port();
    let msock = dir.join("metrics.sock");
    let a_params = [
        format!("accept_port={port}"),
        format!("metrics_address=unix:{}", msock.display()),
    ];
    // Before lnet configure: the endpoint answers, LNet is not configured.
    let a = {
        lnet_tests::bins::sock_plugin();
        let mut args: Vec<&str> = vec!["--param", "accept=all"];
        for p in &a_params {
            args.extend(["--param", p.as_str()]);
        }
        Daemon::start(dir.join("a.sock"), &args)
    };
    let body = scrape_unix(&msock);
    assert!(body.contains("\nlnet_configured 0\n# EOF\n"), "{body}");
    ok(&lnetctl(a.socket(), &["lnet", "configure"]));
    ok(&lnetctl(
        a.socket(),
        &["net", "add", "--net", "tcp", "--if", "127.0.0.1"],
    ));
    let mport = lnet_tests::free_port();
    let b = node(
        &dir,
        "b",
        "127.0.0.2",
        &[
            format!("accept_port={port}"),
            format!("metrics_address=127.0.0.1:{mport}"),
        ],
    );
    ok(&lnetctl(a.socket(), &["ping", "127.0.0.2@tcp"]));
    ok(&lnetctl(
        a.socket(),
        &[
            "route",
            "add",
            "--net",
            "tcp7",
            "--gateway",
            "127.0.0.2@tcp",
        ],
    ));

    let body = scrape_unix(&msock);
    assert!(body.ends_with("\n# EOF\n"), "{body}");
    // HEAD: the same head, no body; other paths and methods are refused.
    let (status, headers, rest) = http(
        UnixStream::connect(&msock).expect("connect"),
        "HEAD /metrics HTTP/1.1\r\n\r\n",
    );
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(headers.contains("Content-Type: application/openmetrics-text"));
    assert_eq!(rest, "");
    let (status, _, _) = http(
        UnixStream::connect(&msock).expect("connect"),
        "GET /nothing HTTP/1.1\r\n\r\n",
    );
    assert_eq!(status, "HTTP/1.1 404 Not Found");
    let (status, headers, _) = http(
        UnixStream::connect(&msock).expect("connect"),
        "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
    );
    assert_eq!(status, "HTTP/1.1 405 Method Not Allowed");
    assert!(headers.ends_with("Allow: GET, HEAD"), "{headers}");
    // B's endpoint on loopback TCP.
    let (status, _, b_body) = http(
        std::net::TcpStream::connect(("127.0.0.1", mport)).expect("connect to B's metrics"),
        GET,
    );
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(b_body.ends_with("\n# EOF\n"), "{b_body}");

    let Some(py) = parser_or_explain() else {
        return;
    };
    let p = parse(py, &body);
    for t in [
        "TYPE lnet_configured gauge",
        "TYPE lnet_sent_messages counter",
        "TYPE lnet_ni_sent_messages counter",
        "TYPE lnet_ni_health_value gauge",
        "TYPE lnet_peer_ni_sent_messages counter",
        "TYPE lnet_peer_ni_health_events counter",
        "TYPE lnet_route_up gauge",
        "TYPE lnet_health_events counter",
    ] {
        assert!(p.lines().any(|l| l == t), "{t} missing:\n{p}");
    }
    assert_eq!(value(&p, "lnet_configured{}"), 1.0);
    // The ping: a GET out of A's NI to B, the REPLY back.
    let ni = r#"net="tcp",nid="127.0.0.1@tcp""#;
    assert!(
        value(
            &p,
            &format!("lnet_ni_sent_messages_total{{{ni},type=\"get\"}}")
        ) >= 1.0
    );
    assert!(
        value(
            &p,
            &format!("lnet_ni_received_messages_total{{{ni},type=\"reply\"}}")
        ) >= 1.0
    );
    assert_eq!(value(&p, &format!("lnet_ni_up{{{ni}}}")), 1.0);
    assert_eq!(value(&p, &format!("lnet_ni_health_value{{{ni}}}")), 1000.0);
    assert_eq!(
        value(
            &p,
            &format!("lnet_ni_health_events_total{{event=\"timeout\",{ni}}}")
        ),
        0.0
    );
    assert_eq!(value(&p, r#"lnet_ni_up{net="lo",nid="0@lo"}"#), 1.0);
    let peer = r#"net="tcp",nid="127.0.0.2@tcp",peer="127.0.0.2@tcp""#;
    assert!(
        value(
            &p,
            &format!("lnet_peer_ni_sent_messages_total{{{peer},type=\"get\"}}")
        ) >= 1.0
    );
    assert_eq!(
        value(&p, &format!("lnet_peer_ni_health_value{{{peer}}}")),
        1000.0
    );
    assert_eq!(
        value(
            &p,
            r#"lnet_route_priority{gateway="127.0.0.2@tcp",net="tcp7"}"#
        ),
        0.0
    );
    assert!(value(&p, "lnet_sent_messages_total{}") >= 1.0);
    assert!(value(&p, "lnet_received_messages_total{}") >= 1.0);
    assert_eq!(
        value(&p, r#"lnet_health_events_total{event="remote_timeout"}"#),
        0.0
    );
    // B saw the ping arrive.
    let pb = parse(py, &b_body);
    assert!(
        value(
            &pb,
            r#"lnet_ni_received_messages_total{net="tcp",nid="127.0.0.2@tcp",type="get"}"#
        ) >= 1.0
    );
    drop(b);
    drop(a);
}

/// `(local, remote, state)` of every IPv4 TCP socket (`/proc/net/tcp`).
fn tcp_sockets() -> Vec<(String, String, String)> {
    fn addr(hex: &str) -> String {
        let (ip, port) = hex.split_once(':').unwrap_or(("0", "0"));
        let ip = u32::from_str_radix(ip, 16).unwrap_or(0).to_le_bytes();
        let port = u16::from_str_radix(port, 16).unwrap_or(0);
        format!("{}.{}.{}.{}:{port}", ip[0], ip[1], ip[2], ip[3])
    }
    std::fs::read_to_string("/proc/net/tcp")
        .expect("/proc/net/tcp")
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            Some((addr(f.get(1)?), addr(f.get(2)?), (*f.get(3)?).to_string()))
        })
        .collect()
}

#[test]
fn bulk_connections_go_to_accept_port_bulk() {
    let dir = TempDir::new("bulkport");
    let (port, bulk) = (lnet_tests::free_port(), lnet_tests::free_port());
    let params = [
        format!("accept_port={port}"),
        format!("accept_port_bulk={bulk}"),
    ];
    let a = node(&dir, "a", "127.0.0.1", &params);
    let b = node(&dir, "b", "127.0.0.2", &params);
    // B listens on both ports of its own address.
    let listening = |addr: &str| {
        tcp_sockets()
            .iter()
            .any(|(l, _, st)| l == addr && st == "0A")
    };
    assert!(listening(&format!("127.0.0.2:{port}")));
    assert!(listening(&format!("127.0.0.2:{bulk}")));
    ok(&lnetctl(a.socket(), &["ping", "127.0.0.2@tcp"]));
    // A's connection round to B: CONTROL to accept_port, then one BULK_IN
    // and one BULK_OUT (conns_per_peer 1 on lo) to accept_port_bulk.
    let to = |p: u16| {
        let remote = format!("127.0.0.2:{p}");
        tcp_sockets()
            .iter()
            .filter(|(l, r, st)| l.starts_with("127.0.0.1:") && *r == remote && st == "01")
            .count()
    };
    let deadline = Instant::now() + DEADLINE;
    while (to(port), to(bulk)) != (1, 2) {
        assert!(
            Instant::now() < deadline,
            "connections from A to B's accept_port {port}: {}, to accept_port_bulk {bulk}: {} \
             (want 1 and 2)",
            to(port),
            to(bulk)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(b);
    drop(a);
}

/// A metrics address lnetd cannot serve stops the start, says why, and
/// leaves no control socket behind.
#[test]
fn bad_metrics_address_stops_the_start() {
    let dir = TempDir::new("badmetrics");
    let sock = dir.join("ctl.sock");
    let not_a_socket = dir.join("m.sock");
    std::fs::write(&not_a_socket, "x").expect("a plain file");
    for (value, says) in [
        (
            "10.1.2.3:9808".to_string(),
            "is not a loopback address".to_string(),
        ),
        (
            format!("unix:{}", not_a_socket.display()),
            "exists and is not a socket".to_string(),
        ),
    ] {
        let out = Command::new(lnet_tests::bins::lnetd())
            .arg("--socket")
            .arg(&sock)
            .arg("--foreground")
            .args(["--param", &format!("metrics_address={value}")])
            .output()
            .expect("run lnetd");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{value}: started");
        assert!(
            err.contains("metrics_address") || err.contains("metrics endpoint"),
            "{err}"
        );
        assert!(err.contains(&says), "{value}: {err}");
        assert!(!sock.exists(), "{value}: control socket left behind");
    }
}
