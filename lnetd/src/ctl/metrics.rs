//! The OpenMetrics endpoint (issue 16 item 7; no upstream equivalent): a
//! small HTTP/1.1 server on its own thread that answers `GET /metrics` with
//! the node's counters in the OpenMetrics text format (Prometheus naming:
//! `lnet_` prefix, counters ending in `_total`, labels `nid`, `net`, ...),
//! terminated by `# EOF`.
//!
//! Off by default; lnetd's module parameter `metrics_address` turns it on
//! and names where it listens: a Unix socket path (`/run/lnet/metrics.sock`
//! or `unix:/run/lnet/metrics.sock`) or a loopback `ADDRESS:PORT`
//! (`127.0.0.1:9808`, `[::1]:9808`, `localhost:9808`). The endpoint has no
//! authentication, so other addresses are refused.
//!
//! Families (labels in brackets; `type` is put/get/reply/ack/hello):
//! * node: `lnet_configured`, `lnet_messages_allocated`,
//!   `lnet_messages_allocated_max`, counters `lnet_{sent,received,routed,
//!   dropped}_{messages,bytes}_total`, `lnet_errors_total`,
//!   `lnet_resends{,_succeeded,_failed}_total`, `lnet_response_timeouts_total`,
//!   `lnet_health_events_total{event}` (the `stats show` health counts);
//! * local NIs {nid, net}: `lnet_ni_up`, `lnet_ni_health_value`,
//!   `lnet_ni_credits`, `lnet_ni_tx_credits`, `lnet_ni_min_tx_credits`,
//!   `lnet_ni_{sent,received,dropped}_messages_total{type}`,
//!   `lnet_ni_health_events_total{event}`;
//! * peer NIs {peer, nid, net}: `lnet_peer_ni_up` (-1 unknown),
//!   `lnet_peer_ni_health_value`, `lnet_peer_ni_tx_credits`,
//!   `lnet_peer_ni_min_tx_credits`, `lnet_peer_ni_tx_queued_bytes`,
//!   `lnet_peer_ni_{sent,received,dropped}_messages_total{type}`,
//!   `lnet_peer_ni_health_events_total{event}`;
//! * routes {net, gateway}: `lnet_route_up`, `lnet_route_hops`,
//!   `lnet_route_priority`.
//!
//! Bounded: at most [`MAX_CLIENTS`] connections are served at once (more get
//! `503` at once), a request must arrive within [`IO_TIMEOUT`] and fit in
//! [`MAX_REQUEST`] bytes, and every connection is closed after one answer.

use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::os::fd::AsFd;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use liblnetconfig::proto::{MsgCounts, NiInfo};

use super::{net_info, stats, NodeSlot, StopHandle, STOP_POLL};
use crate::node::Node;

/// Connections served at the same time; more are answered `503`.
pub const MAX_CLIENTS: usize = 8;
/// How long a client may take to send its request (and to read the answer).
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest request head (request line and headers) read.
pub const MAX_REQUEST: usize = 8192;
/// The content type of the answer (OpenMetrics 1.0 text format).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Where the endpoint listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MetricsAddr {
    /// A Unix stream socket at this path.
    Unix(PathBuf),
    /// A TCP loopback address.
    Tcp(SocketAddr),
}

impl MetricsAddr {
    /// Parses the value of `metrics_address`; `Ok(None)` for the empty value
    /// (endpoint off). The error says what is wrong and what to write.
    pub fn parse(value: &str) -> Result<Option<MetricsAddr>, String> {
        let v = value.trim();
        if v.is_empty() {
            return Ok(None);
        }
        let usage = "give a Unix socket path (/run/lnet/metrics.sock) or a loopback \
                     ADDRESS:PORT (127.0.0.1:9808, [::1]:9808, localhost:9808)";
        if let Some(path) = v.strip_prefix("unix:").or(v.starts_with('/').then_some(v)) {
            if !path.starts_with('/') {
                return Err(format!(
                    "{v:?}: the Unix socket path must be absolute; {usage}"
                ));
            }
            return Ok(Some(MetricsAddr::Unix(PathBuf::from(path))));
        }
        let addrs: Vec<SocketAddr> = match v.to_socket_addrs() {
            Ok(a) => a.collect(),
            Err(e) => return Err(format!("{v:?} is not an address: {e}; {usage}")),
        };
        match addrs.iter().find(|a| a.ip().is_loopback()) {
            Some(a) if addrs.iter().all(|a| a.ip().is_loopback()) => Ok(Some(MetricsAddr::Tcp(*a))),
            _ => Err(format!(
                "{v:?} is not a loopback address: the metrics endpoint has no \
                 authentication; {usage} (and a proxy for remote scrapers)"
            )),
        }
    }
}

impl std::fmt::Display for MetricsAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MetricsAddr::Unix(p) => write!(f, "unix:{}", p.display()),
            MetricsAddr::Tcp(a) => write!(f, "{a}"),
        }
    }
}

enum Listener {
    Unix(UnixListener, PathBuf),
    Tcp(TcpListener),
}

/// A bound endpoint, not yet serving.
pub struct MetricsServer {
    listener: Listener,
    addr: MetricsAddr,
}

/// A serving endpoint; [`MetricsHandle::join`] waits for its thread (it ends
/// once the control server is stopped) and removes its Unix socket.
pub struct MetricsHandle {
    thread: JoinHandle<()>,
}

impl MetricsHandle {
    /// Waits until the endpoint has stopped.
    pub fn join(self) {
        if self.thread.join().is_err() {
            tracing::error!("the metrics thread panicked");
        }
    }
}

impl MetricsServer {
    /// Binds the endpoint. A stale Unix socket file (nobody answers on it) is
    /// replaced; a live one or a non-socket file is refused.
    pub fn bind(addr: &MetricsAddr) -> io::Result<MetricsServer> {
        let ctx = |what: &str, e: io::Error| io::Error::new(e.kind(), format!("{what}: {e}"));
        let listener = match addr {
            MetricsAddr::Tcp(a) => Listener::Tcp(
                TcpListener::bind(a).map_err(|e| ctx(&format!("cannot listen on {a}"), e))?,
            ),
            MetricsAddr::Unix(p) => {
                clear_stale(p)?;
                if let Some(dir) = p.parent().filter(|d| !d.exists()) {
                    std::fs::create_dir_all(dir).map_err(|e| {
                        ctx(&format!("cannot create directory {}", dir.display()), e)
                    })?;
                }
                let l = UnixListener::bind(p)
                    .map_err(|e| ctx(&format!("cannot bind {}", p.display()), e))?;
                // Owner and group may scrape (connecting needs write access).
                std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o660))
                    .map_err(|e| ctx(&format!("cannot chmod {}", p.display()), e))?;
                Listener::Unix(l, p.clone())
            }
        };
        match &listener {
            Listener::Unix(l, _) => l.set_nonblocking(true)?,
            Listener::Tcp(l) => l.set_nonblocking(true)?,
        }
        Ok(MetricsServer {
            listener,
            addr: addr.clone(),
        })
    }

    /// The bound address (for a TCP port 0, the port the kernel chose).
    pub fn local_addr(&self) -> MetricsAddr {
        match &self.listener {
            Listener::Tcp(l) => l
                .local_addr()
                .map_or_else(|_| self.addr.clone(), MetricsAddr::Tcp),
            Listener::Unix(_, p) => MetricsAddr::Unix(p.clone()),
        }
    }

    /// Serves the node of `slot` on a thread until `stop` is stopped.
    pub fn spawn(self, slot: NodeSlot, stop: StopHandle) -> io::Result<MetricsHandle> {
        let thread = std::thread::Builder::new()
            .name("lnetd-metrics".into())
            .spawn(move || self.serve(&slot, &stop))?;
        Ok(MetricsHandle { thread })
    }

    fn serve(self, slot: &NodeSlot, stop: &StopHandle) {
        tracing::info!(address = %self.local_addr(), "metrics endpoint ready");
        let active = Arc::new(AtomicUsize::new(0));
        while !stop.is_stopped() {
            let accepted: io::Result<Box<dyn Conn>> = match &self.listener {
                Listener::Tcp(l) => l.accept().map(|(s, _)| Box::new(s) as Box<dyn Conn>),
                Listener::Unix(l, _) => l.accept().map(|(s, _)| Box::new(s) as Box<dyn Conn>),
            };
            match accepted {
                Ok(conn) => {
                    if active.fetch_add(1, Ordering::SeqCst) >= MAX_CLIENTS {
                        active.fetch_sub(1, Ordering::SeqCst);
                        refuse(conn);
                        continue;
                    }
                    let slot = slot.clone();
                    let act = active.clone();
                    let spawned = std::thread::Builder::new()
                        .name("lnetd-metrics-conn".into())
                        .spawn(move || {
                            serve_one(conn, &slot);
                            act.fetch_sub(1, Ordering::SeqCst);
                        });
                    if let Err(e) = spawned {
                        active.fetch_sub(1, Ordering::SeqCst);
                        tracing::error!("cannot start a metrics connection thread: {e}");
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    stop.wait_for(match &self.listener {
                        Listener::Tcp(l) => l.as_fd(),
                        Listener::Unix(l, _) => l.as_fd(),
                    })
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    tracing::error!("accept on the metrics endpoint failed: {e}");
                    std::thread::sleep(STOP_POLL);
                }
            }
        }
        if let Listener::Unix(_, p) = &self.listener {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Refuses a live socket or a non-socket at `p`; removes a stale socket.
fn clear_stale(p: &Path) -> io::Result<()> {
    match std::fs::symlink_metadata(p) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
        Ok(m) if !m.file_type().is_socket() => Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!(
                "{} exists and is not a socket; remove it or choose another metrics_address",
                p.display()
            ),
        )),
        Ok(_) => match UnixStream::connect(p) {
            Ok(_) => Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!(
                    "another process serves {}; stop it or choose another metrics_address",
                    p.display()
                ),
            )),
            Err(_) => std::fs::remove_file(p),
        },
    }
}

/// How long the accept thread spends on a refused client at most.
const REFUSE_TIMEOUT: Duration = Duration::from_millis(100);

/// Answers `503` on the accept thread: write, end our side, then drain what
/// the client sent (briefly) so closing does not reset the answer away.
fn refuse(mut conn: Box<dyn Conn>) {
    if conn.setup(REFUSE_TIMEOUT).is_err() {
        return;
    }
    if respond(&mut conn, 503, "text/plain", b"too many clients\n", true).is_err() {
        return;
    }
    let _ = conn.shutdown_write();
    let mut sink = [0u8; 1024];
    let mut left = MAX_REQUEST;
    while left > 0 {
        match conn.read(&mut sink) {
            Ok(n) if n > 0 => left = left.saturating_sub(n),
            _ => break,
        }
    }
}

/// A client connection of either kind.
trait Conn: Read + Write + Send {
    /// Blocking, with `timeout` on reads and writes.
    fn setup(&mut self, timeout: Duration) -> io::Result<()>;
    /// Ends our sending side.
    fn shutdown_write(&self) -> io::Result<()>;
}

impl Conn for std::net::TcpStream {
    fn setup(&mut self, timeout: Duration) -> io::Result<()> {
        self.set_nonblocking(false)?;
        self.set_read_timeout(Some(timeout))?;
        self.set_write_timeout(Some(timeout))
    }
    fn shutdown_write(&self) -> io::Result<()> {
        self.shutdown(std::net::Shutdown::Write)
    }
}

impl Conn for UnixStream {
    fn setup(&mut self, timeout: Duration) -> io::Result<()> {
        self.set_nonblocking(false)?;
        self.set_read_timeout(Some(timeout))?;
        self.set_write_timeout(Some(timeout))
    }
    fn shutdown_write(&self) -> io::Result<()> {
        self.shutdown(std::net::Shutdown::Write)
    }
}

fn serve_one(mut conn: Box<dyn Conn>, slot: &NodeSlot) {
    if conn.setup(IO_TIMEOUT).is_err() {
        return;
    }
    let head = match read_head(&mut conn) {
        Ok(h) => h,
        Err(e) => {
            if e.kind() == io::ErrorKind::InvalidData {
                let _ = respond(&mut conn, 400, "text/plain", b"bad request\n", true);
            }
            return;
        }
    };
    let line = head.lines().next().unwrap_or_default();
    let mut words = line.split(' ');
    let (method, target, version) = (words.next(), words.next(), words.next());
    let (Some(method), Some(target), Some(version)) = (method, target, version) else {
        let _ = respond(&mut conn, 400, "text/plain", b"bad request line\n", true);
        return;
    };
    if !version.starts_with("HTTP/1.") {
        let _ = respond(&mut conn, 505, "text/plain", b"HTTP/1.x only\n", true);
        return;
    }
    let path = target.split('?').next().unwrap_or_default();
    let body_wanted = match method {
        "GET" => true,
        "HEAD" => false,
        _ => {
            let _ = respond(&mut conn, 405, "text/plain", b"GET or HEAD only\n", true);
            return;
        }
    };
    if path != "/metrics" && path != "/" {
        let _ = respond(&mut conn, 404, "text/plain", b"see /metrics\n", body_wanted);
        return;
    }
    let text = render(slot.get().as_deref());
    let _ = respond(&mut conn, 200, CONTENT_TYPE, text.as_bytes(), body_wanted);
}

/// Reads up to the blank line that ends the request head, all of it within
/// [`IO_TIMEOUT`] (a client trickling bytes does not keep its slot).
fn read_head(conn: &mut Box<dyn Conn>) -> io::Result<String> {
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 512];
    let deadline = std::time::Instant::now() + IO_TIMEOUT;
    loop {
        if std::time::Instant::now() > deadline {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "request head not received in time",
            ));
        }
        let n = conn.read(&mut chunk)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "closed before the request ended",
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = find_end(&buf) {
            buf.truncate(end);
            return String::from_utf8(buf)
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "not UTF-8"));
        }
        if buf.len() > MAX_REQUEST {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "request head too long",
            ));
        }
    }
}

fn find_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4)
        .position(|w| w == b"\r\n\r\n")
        .or_else(|| buf.windows(2).position(|w| w == b"\n\n"))
}

fn respond(
    conn: &mut Box<dyn Conn>,
    status: u16,
    ctype: &str,
    body: &[u8],
    with_body: bool,
) -> io::Result<()> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        503 => "Service Unavailable",
        _ => "HTTP Version Not Supported",
    };
    let mut head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n\
         Connection: close\r\n",
        body.len()
    );
    if status == 405 {
        head.push_str("Allow: GET, HEAD\r\n");
    }
    head.push_str("\r\n");
    conn.write_all(head.as_bytes())?;
    if with_body {
        conn.write_all(body)?;
    }
    conn.flush()
}

/// One metric family being written.
struct Family<'a> {
    out: &'a mut String,
    name: &'static str,
    counter: bool,
}

impl Family<'_> {
    /// One sample; `labels` as (name, value) pairs.
    fn sample(&mut self, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.out.push_str(self.name);
        if self.counter {
            self.out.push_str("_total");
        }
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", escape(v));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }
}

/// Starts a family: `# TYPE` and `# HELP` lines.
fn family<'a>(out: &'a mut String, name: &'static str, counter: bool, help: &str) -> Family<'a> {
    let kind = if counter { "counter" } else { "gauge" };
    let _ = writeln!(out, "# TYPE {name} {kind}");
    let _ = writeln!(out, "# HELP {name} {help}");
    Family { out, name, counter }
}

/// Label value escaping of the text format.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

const MSG_TYPES: [&str; 5] = ["put", "get", "reply", "ack", "hello"];

fn by_type(c: &MsgCounts) -> [u64; 5] {
    [c.put, c.get, c.reply, c.ack, c.hello]
}

/// The node's metrics in the OpenMetrics text format (`None`: LNet not
/// configured, only `lnet_configured 0`).
pub fn render(node: Option<&Node>) -> String {
    let mut out = String::with_capacity(4096);
    family(
        &mut out,
        "lnet_configured",
        false,
        "Whether LNet is configured (lnetctl lnet configure).",
    )
    .sample(&[], u8::from(node.is_some()));
    if let Some(node) = node {
        render_node(&mut out, node);
    }
    out.push_str("# EOF\n");
    out
}

fn render_node(out: &mut String, node: &Node) {
    let s = stats(&node.stats());
    family(out, "lnet_messages_allocated", false, "Messages in flight.").sample(&[], s.msgs_alloc);
    family(
        out,
        "lnet_messages_allocated_max",
        false,
        "Most messages in flight at once.",
    )
    .sample(&[], s.msgs_max);
    for (name, help, v) in [
        ("lnet_errors", "Messages that failed.", s.errors),
        ("lnet_sent_messages", "Messages sent.", s.send_count),
        ("lnet_received_messages", "Messages received.", s.recv_count),
        ("lnet_routed_messages", "Messages forwarded.", s.route_count),
        ("lnet_dropped_messages", "Messages dropped.", s.drop_count),
        ("lnet_sent_bytes", "Payload bytes sent.", s.send_length),
        (
            "lnet_received_bytes",
            "Payload bytes received.",
            s.recv_length,
        ),
        (
            "lnet_routed_bytes",
            "Payload bytes forwarded.",
            s.route_length,
        ),
        (
            "lnet_dropped_bytes",
            "Payload bytes dropped.",
            s.drop_length,
        ),
        ("lnet_resends", "Messages resent.", s.resend_count),
        (
            "lnet_resends_succeeded",
            "Resends that succeeded.",
            s.successful_resends,
        ),
        (
            "lnet_resends_failed",
            "Resends that failed.",
            s.failed_resends,
        ),
        (
            "lnet_response_timeouts",
            "Responses (ACK, REPLY) that did not arrive in time.",
            s.response_timeout_count,
        ),
    ] {
        family(out, name, true, help).sample(&[], v);
    }
    let mut f = family(
        out,
        "lnet_health_events",
        true,
        "Health events by kind (lnetctl stats show).",
    );
    for (event, v) in [
        ("local_interrupt", s.local_interrupt_count),
        ("local_dropped", s.local_dropped_count),
        ("local_aborted", s.local_aborted_count),
        ("local_no_route", s.local_no_route_count),
        ("local_timeout", s.local_timeout_count),
        ("local_error", s.local_error_count),
        ("remote_dropped", s.remote_dropped_count),
        ("remote_error", s.remote_error_count),
        ("remote_timeout", s.remote_timeout_count),
        ("network_timeout", s.network_timeout_count),
    ] {
        f.sample(&[("event", event)], v);
    }
    render_nis(out, node);
    render_peers(out, node);
    render_routes(out, node);
}

fn render_nis(out: &mut String, node: &Node) {
    let extra = node.extra_net_types();
    let names: Vec<(&str, u8)> = extra.iter().map(|(n, t)| (n.as_str(), *t)).collect();
    let nis: Vec<(String, String, NiInfo)> = node
        .nets()
        .into_iter()
        .map(net_info)
        .flat_map(|n| {
            let net = n.name;
            n.nis.into_iter().map(move |ni| (net.clone(), ni))
        })
        .map(|(net, ni)| (ni.nid.display_with(&names).to_string(), net, ni))
        .collect();
    type Get = fn(&NiInfo) -> i64;
    let gauges: [(&'static str, &str, Get); 5] = [
        ("lnet_ni_up", "Whether the NI is up (1) or down (0).", |n| {
            i64::from(n.up)
        }),
        ("lnet_ni_health_value", "The NI's health value.", |n| {
            i64::from(n.health.value)
        }),
        (
            "lnet_ni_credits",
            "The NI's send credits (credits tunable).",
            |n| i64::from(n.tunables.credits),
        ),
        (
            "lnet_ni_tx_credits",
            "The NI's available send credits.",
            |n| n.tx_credits,
        ),
        (
            "lnet_ni_min_tx_credits",
            "The lowest the NI's send credits went.",
            |n| n.min_tx_credits,
        ),
    ];
    for (name, help, get) in gauges {
        let mut f = family(out, name, false, help);
        for (nid, net, ni) in &nis {
            f.sample(&[("nid", nid.as_str()), ("net", net.as_str())], get(ni));
        }
    }
    type Counts = fn(&NiInfo) -> &MsgCounts;
    let counts: [(&'static str, &str, Counts); 3] = [
        (
            "lnet_ni_sent_messages",
            "Messages sent by the NI, by type.",
            |n| &n.sent,
        ),
        (
            "lnet_ni_received_messages",
            "Messages received by the NI, by type.",
            |n| &n.received,
        ),
        (
            "lnet_ni_dropped_messages",
            "Messages the NI dropped, by type.",
            |n| &n.dropped,
        ),
    ];
    for (name, help, get) in counts {
        let mut f = family(out, name, true, help);
        for (nid, net, ni) in &nis {
            for (t, v) in MSG_TYPES.iter().zip(by_type(get(ni))) {
                f.sample(
                    &[("nid", nid.as_str()), ("net", net.as_str()), ("type", t)],
                    v,
                );
            }
        }
    }
    let mut f = family(
        out,
        "lnet_ni_health_events",
        true,
        "Local health events of the NI by kind.",
    );
    for (nid, net, ni) in &nis {
        let h = &ni.health;
        for (event, v) in [
            ("interrupt", h.interrupts),
            ("dropped", h.dropped),
            ("aborted", h.aborted),
            ("no_route", h.no_route),
            ("timeout", h.timeouts),
            ("error", h.error),
        ] {
            f.sample(
                &[
                    ("nid", nid.as_str()),
                    ("net", net.as_str()),
                    ("event", event),
                ],
                v,
            );
        }
    }
}

fn render_peers(out: &mut String, node: &Node) {
    let Ok(peers) = node.peer_show(None) else {
        return;
    };
    let extra = node.extra_net_types();
    let names: Vec<(&str, u8)> = extra.iter().map(|(n, t)| (n.as_str(), *t)).collect();
    struct Row {
        peer: String,
        nid: String,
        net: String,
        ni: liblnetconfig::peer::PeerNiInfo,
    }
    let rows: Vec<Row> = peers
        .into_iter()
        .flat_map(|p| {
            let peer = p.primary.display_with(&names).to_string();
            let names = &names;
            p.nis.into_iter().map(move |ni| Row {
                peer: peer.clone(),
                nid: ni.nid.display_with(names).to_string(),
                net: ni.nid.net().display_with(names).to_string(),
                ni,
            })
        })
        .collect();
    type Get = fn(&liblnetconfig::peer::PeerNiInfo) -> i64;
    let gauges: [(&'static str, &str, Get); 5] = [
        (
            "lnet_peer_ni_up",
            "Whether the peer NI is up (1), down (0) or unknown (-1).",
            |n| match n.state.as_str() {
                "up" => 1,
                "down" => 0,
                _ => -1,
            },
        ),
        (
            "lnet_peer_ni_health_value",
            "The peer NI's health value.",
            |n| i64::from(n.health_value),
        ),
        (
            "lnet_peer_ni_tx_credits",
            "The peer NI's available send credits.",
            |n| i64::from(n.available_tx_credits),
        ),
        (
            "lnet_peer_ni_min_tx_credits",
            "The lowest the peer NI's send credits went.",
            |n| i64::from(n.min_tx_credits),
        ),
        (
            "lnet_peer_ni_tx_queued_bytes",
            "Bytes queued for the peer NI waiting for credits.",
            |n| i64::try_from(n.tx_q_num_of_buf).unwrap_or(i64::MAX),
        ),
    ];
    for (name, help, get) in gauges {
        let mut f = family(out, name, false, help);
        for r in &rows {
            f.sample(
                &[("peer", &r.peer), ("nid", &r.nid), ("net", &r.net)]
                    .map(|(k, v)| (k, v.as_str())),
                get(&r.ni),
            );
        }
    }
    type Counts = fn(&liblnetconfig::peer::PeerNiInfo) -> &MsgCounts;
    let counts: [(&'static str, &str, Counts); 3] = [
        (
            "lnet_peer_ni_sent_messages",
            "Messages sent to the peer NI, by type.",
            |n| &n.sent,
        ),
        (
            "lnet_peer_ni_received_messages",
            "Messages received from the peer NI, by type.",
            |n| &n.received,
        ),
        (
            "lnet_peer_ni_dropped_messages",
            "Messages to or from the peer NI dropped, by type.",
            |n| &n.dropped,
        ),
    ];
    for (name, help, get) in counts {
        let mut f = family(out, name, true, help);
        for r in &rows {
            for (t, v) in MSG_TYPES.iter().zip(by_type(get(&r.ni))) {
                f.sample(
                    &[
                        ("peer", r.peer.as_str()),
                        ("nid", r.nid.as_str()),
                        ("net", r.net.as_str()),
                        ("type", t),
                    ],
                    v,
                );
            }
        }
    }
    let mut f = family(
        out,
        "lnet_peer_ni_health_events",
        true,
        "Remote health events of the peer NI by kind.",
    );
    for r in &rows {
        for (event, v) in [
            ("dropped", r.ni.health_dropped),
            ("timeout", r.ni.health_timeout),
            ("error", r.ni.health_error),
            ("network_timeout", r.ni.health_network_timeout),
        ] {
            f.sample(
                &[
                    ("peer", r.peer.as_str()),
                    ("nid", r.nid.as_str()),
                    ("net", r.net.as_str()),
                    ("event", event),
                ],
                v,
            );
        }
    }
}

fn render_routes(out: &mut String, node: &Node) {
    let extra = node.extra_net_types();
    let names: Vec<(&str, u8)> = extra.iter().map(|(n, t)| (n.as_str(), *t)).collect();
    let routes: Vec<(String, String, bool, i64, u32)> = node
        .with_engine(|l, _| l.routes())
        .into_iter()
        .map(|r| {
            (
                r.net.display_with(&names).to_string(),
                r.gateway.display_with(&names).to_string(),
                r.alive,
                r.hops.map_or(-1, i64::from),
                r.priority,
            )
        })
        .collect();
    let mut f = family(
        out,
        "lnet_route_up",
        false,
        "Whether the route (remote net through gateway) is up (1) or down (0).",
    );
    for (net, gw, up, _, _) in &routes {
        f.sample(
            &[("net", net.as_str()), ("gateway", gw.as_str())],
            u8::from(*up),
        );
    }
    let mut f = family(
        out,
        "lnet_route_hops",
        false,
        "The route's hop count (-1: undefined).",
    );
    for (net, gw, _, hops, _) in &routes {
        f.sample(&[("net", net.as_str()), ("gateway", gw.as_str())], hops);
    }
    let mut f = family(out, "lnet_route_priority", false, "The route's priority.");
    for (net, gw, _, _, prio) in &routes {
        f.sample(&[("net", net.as_str()), ("gateway", gw.as_str())], prio);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert_eq!(MetricsAddr::parse(" ").expect("empty"), None);
        assert_eq!(
            MetricsAddr::parse("/run/lnet/m.sock").expect("path"),
            Some(MetricsAddr::Unix(PathBuf::from("/run/lnet/m.sock")))
        );
        assert_eq!(
            MetricsAddr::parse("unix:/run/m.sock").expect("unix:"),
            Some(MetricsAddr::Unix(PathBuf::from("/run/m.sock")))
        );
        assert_eq!(
            MetricsAddr::parse("127.0.0.1:9808").expect("v4"),
            Some(MetricsAddr::Tcp("127.0.0.1:9808".parse().expect("addr")))
        );
        assert_eq!(
            MetricsAddr::parse("[::1]:9808").expect("v6"),
            Some(MetricsAddr::Tcp("[::1]:9808".parse().expect("addr")))
        );
        let e = MetricsAddr::parse("0.0.0.0:9808").expect_err("wildcard");
        assert!(e.contains("not a loopback address"), "{e}");
        let e = MetricsAddr::parse("unix:run/m.sock").expect_err("relative");
        assert!(e.contains("must be absolute"), "{e}");
        let e = MetricsAddr::parse("9808").expect_err("no host");
        assert!(e.contains("is not an address"), "{e}");
    }

    #[test]
    fn unconfigured_is_one_gauge_and_eof() {
        assert_eq!(
            render(None),
            "# TYPE lnet_configured gauge\n\
             # HELP lnet_configured Whether LNet is configured (lnetctl lnet configure).\n\
             lnet_configured 0\n# EOF\n"
        );
    }

    #[test]
    fn label_values_are_escaped() {
        let mut out = String::new();
        family(&mut out, "lnet_x", true, "x").sample(&[("a", "q\"b\\n\nz")], 3);
        assert!(
            out.ends_with("lnet_x_total{a=\"q\\\"b\\\\n\\nz\"} 3\n"),
            "{out}"
        );
    }

    /// More than MAX_CLIENTS connections at once: the extra one gets 503 at
    /// once (the idle ones hold their slots); once they go, scrapes work.
    #[test]
    fn clients_are_bounded() {
        use std::net::TcpStream;
        let dir = std::env::temp_dir().join(format!("lnet-metrics-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let ctl = super::super::CtlServer::bind(&dir.join("ctl.sock"), Default::default())
            .expect("ctl socket");
        let addr = MetricsAddr::Tcp("127.0.0.1:0".parse().expect("addr"));
        let m = MetricsServer::bind(&addr).expect("bind");
        let MetricsAddr::Tcp(at) = m.local_addr() else {
            panic!("tcp");
        };
        let stop = ctl.stop_handle();
        let h = m.spawn(ctl.node_slot(), stop.clone()).expect("spawn");
        let get = |s: &mut TcpStream| -> String {
            s.write_all(b"GET /metrics HTTP/1.1\r\n\r\n").expect("send");
            let mut r = String::new();
            s.read_to_string(&mut r).expect("read");
            r
        };
        let first = get(&mut TcpStream::connect(at).expect("connect"));
        assert!(first.starts_with("HTTP/1.1 200 OK\r\n"), "{first}");
        assert!(first.ends_with("lnet_configured 0\n# EOF\n"), "{first}");
        let idle: Vec<TcpStream> = (0..MAX_CLIENTS)
            .map(|_| TcpStream::connect(at).expect("connect"))
            .collect();
        // Each idle connection is taken in turn; the extra one is refused.
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let r = get(&mut TcpStream::connect(at).expect("connect"));
            if r.starts_with("HTTP/1.1 503 Service Unavailable\r\n") {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "never refused: {r}");
        }
        drop(idle);
        loop {
            let r = get(&mut TcpStream::connect(at).expect("connect"));
            if r.starts_with("HTTP/1.1 200 OK\r\n") {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "slots not freed: {r}");
            std::thread::sleep(Duration::from_millis(20));
        }
        // With a free slot, an idle client is dropped after IO_TIMEOUT (not kept forever).
        let started = std::time::Instant::now();
        let mut one = TcpStream::connect(at).expect("connect");
        one.set_read_timeout(Some(Duration::from_secs(120)))
            .expect("timeout");
        let mut rest = Vec::new();
        let closed = one.read_to_end(&mut rest);
        assert!(
            closed.is_ok() || closed.is_err_and(|e| e.kind() == io::ErrorKind::ConnectionReset),
            "the server kept an idle client"
        );
        assert!(
            started.elapsed() >= IO_TIMEOUT,
            "closed before the timeout: {:?}",
            started.elapsed()
        );
        stop.stop();
        h.join();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
