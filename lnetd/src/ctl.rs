//! The control-socket server: lnetd's (or an embedding application's) side of
//! the liblnetconfig protocol.
//!
//! [`CtlServer::bind`] creates the socket (mode 0600, refusing to start when
//! another daemon answers on it, replacing a stale file nobody answers on);
//! [`CtlServer::serve`] accepts connections, checks each peer's credentials
//! (root or the daemon's own uid), reads JSON-line requests, calls the
//! [`Node`] and writes one reply per request. It returns after a stop
//! ([`StopHandle::stop`]: lnetd's SIGTERM/SIGINT), once every NI is shut down
//! and the socket is removed.
//!
//! Clients are bounded ([`ClientLimits`], lnetd's `--max-clients` and
//! `--client-timeout`): at most `max_clients` connections at once, each
//! served by one thread. A request line must be complete within
//! `line_timeout` of its first byte (a client that sends half a line and
//! waits gets an `ETIMEDOUT` reply and is closed), and a reply must be taken
//! within the same time. A connection waiting for its next request costs a
//! thread but no deadline; when a new client arrives at the cap, the
//! connection idle the longest is closed to make room, and if none is idle
//! (every one is running a request or sending one) the newcomer gets an
//! `EBUSY` reply and is closed at once.
//!
//! The daemon starts unconfigured, like a freshly loaded lnet module
//! (lnetctl.md §5.1): `lnet configure` starts the [`Node`], `lnet
//! unconfigure` shuts it down and returns the daemon to that state (the
//! start-up parameters kept), ready for the next `lnet configure`.

mod config;
mod debug;
mod lst;
pub mod metrics;
mod params_dir;
mod peer;
mod route;

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use liblnetconfig::errno::{EACCES, EBUSY, ENETDOWN, ENOENT, EOPNOTSUPP, ESRCH, ETIMEDOUT};
use liblnetconfig::proto::{
    self, DaemonInfo, ErrorReply, HealthInfo, LatencyInfo, MsgCounts, NetAddRequest, NetInfo,
    NiInfo, Op, PingInfo, PingOutcome, PingRequest, PluginInfo, Reply, ReplyBody, StatsInfo,
    TunablesInfo,
};
use lnd_api::NetTunables;

use crate::node::{
    LatencyStats, NetAdd, NetShow, NiShow, Node, NodeConfig, NodeError, PluginShow, TypeCounts,
};

/// How long a ping waits when the request names no timeout: the upper bound
/// of lnetctl.md §2.12 (the LNet transaction timeout normally ends it first).
const DEFAULT_PING_TIMEOUT: Duration = Duration::from_secs(180);

/// How often the accept loop looks at the stop flag.
const STOP_POLL: Duration = Duration::from_millis(50);

/// How long an accept loop sleeps in `poll` at most: a wake-up without a
/// connection or a stop, as a guard (a stop also wakes it at once).
const IDLE_WAIT: Duration = Duration::from_secs(5);

/// How often a refusal at the client cap is logged (with a count of the
/// refusals since the last line).
const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Limits on control clients (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientLimits {
    /// Connections served at once (lnetd `--max-clients`).
    pub max_clients: usize,
    /// How long a request line may take once its first byte arrived, and a
    /// reply to be taken (lnetd `--client-timeout`).
    pub line_timeout: Duration,
}

impl ClientLimits {
    /// The default cap: far above what lnetctl, lst and a few monitoring
    /// scripts use at once, far below what a machine's threads allow.
    pub const DEFAULT_MAX_CLIENTS: usize = 64;
    /// The default line timeout, seconds.
    pub const DEFAULT_LINE_TIMEOUT_SECS: u64 = 10;
}

impl ClientLimits {
    /// At least one client and a millisecond.
    fn sane(self) -> Self {
        ClientLimits {
            max_clients: self.max_clients.max(1),
            line_timeout: self.line_timeout.max(Duration::from_millis(1)),
        }
    }
}

impl Default for ClientLimits {
    fn default() -> Self {
        ClientLimits {
            max_clients: Self::DEFAULT_MAX_CLIENTS,
            line_timeout: Duration::from_secs(Self::DEFAULT_LINE_TIMEOUT_SECS),
        }
    }
}

/// A served connection, for the accept loop: whether it waits for its next
/// request (since when) and a handle to close it.
struct ClientEntry {
    idle_since: Option<Instant>,
    /// Shut down to make room: its thread is on its way out and still holds
    /// its slot until it has left (`forget_client`).
    closing: bool,
    stream: UnixStream,
}

/// The connections being served, by id.
#[derive(Default)]
struct Clients {
    map: HashMap<u64, ClientEntry>,
    /// Refusals at the cap not yet logged, and when the last line was.
    refused: u64,
    last_refusal_log: Option<Instant>,
}

/// Module parameters that only `lnet configure --all` (or `config_on_load`)
/// applies.
const STARTUP_NETWORK_PARAMS: &[&str] = &["networks", "ip2nets", "routes"];

/// Why the control socket could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CtlError {
    /// Another daemon answers on the socket.
    #[error(
        "lnetd is already running on {}: stop it first (kill -TERM its pid; lnetctl --socket {} \
         lnet unconfigure only unconfigures LNet) or give another --socket",
        socket.display(),
        socket.display()
    )]
    AlreadyRunning {
        /// The socket.
        socket: PathBuf,
    },
    /// Something that is not a socket sits at the path.
    #[error(
        "cannot create control socket {}: the path exists and is not a socket; remove it or \
         give another --socket",
        socket.display()
    )]
    NotASocket {
        /// The path.
        socket: PathBuf,
    },
    /// An I/O failure while setting the socket up.
    #[error("cannot create control socket {}: {what}: {source}", socket.display())]
    Io {
        /// The socket.
        socket: PathBuf,
        /// The step that failed.
        what: &'static str,
        /// The error.
        #[source]
        source: io::Error,
    },
}

/// State shared by the accept loop, connection threads and stop handles.
struct Shared {
    node: RwLock<Option<Arc<Node>>>,
    node_cfg: NodeConfig,
    socket: PathBuf,
    /// Device and inode of our socket file, so we never remove another's.
    socket_id: (u64, u64),
    own_uid: u32,
    stop: AtomicBool,
    /// Readable once a stop was asked for ([`StopHandle::stop`] writes a
    /// byte into `stop_tx`; nobody reads it): what the accept loops wait on
    /// beside their listener, so that an idle daemon does not wake up to
    /// look at `stop`.
    stop_rx: UnixStream,
    stop_tx: UnixStream,
    /// The global tunables the next `lnet configure` starts with: those of
    /// the last configuration, kept by `lnet unconfigure` (lnetctl.md §2.1),
    /// with what `set` changed while LNet was not configured.
    kept_tunables: Mutex<Option<lnet_core::ni::GlobalTunables>>,
    limits: Mutex<ClientLimits>,
    clients: Mutex<Clients>,
    /// Signalled when a client's thread leaves (its slot is free).
    client_left: Condvar,
    next_client: AtomicU64,
    /// Held by `lnet configure` while it starts the node and its start-up
    /// networks (the node slot is written only at the end, so control
    /// requests keep being answered meanwhile).
    configuring: Mutex<()>,
}

impl Shared {
    fn limits(&self) -> ClientLimits {
        *self.limits.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Stops a running [`CtlServer::serve`] from another thread (signal handler
/// thread, embedding application).
#[derive(Clone)]
pub struct StopHandle(Arc<Shared>);

impl StopHandle {
    /// Asks the server to shut LNet down, remove the socket and return.
    pub fn stop(&self) {
        self.0.stop.store(true, Ordering::SeqCst);
        // Non-blocking: a full buffer means a byte is already there.
        let _ = (&self.0.stop_tx).write(&[1]);
    }

    /// Waits until `listener` may have a connection to accept, a stop was
    /// asked for, or [`IDLE_WAIT`] passed (a signal: sooner).
    pub(crate) fn wait_for(&self, listener: std::os::fd::BorrowedFd<'_>) {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        use std::os::fd::AsFd;
        let mut fds = [
            PollFd::new(listener, PollFlags::POLLIN),
            PollFd::new(self.0.stop_rx.as_fd(), PollFlags::POLLIN),
        ];
        let t = PollTimeout::try_from(IDLE_WAIT).unwrap_or(PollTimeout::MAX);
        if let Err(e) = poll(&mut fds, t) {
            if e != nix::errno::Errno::EINTR {
                tracing::error!("poll on an accept loop failed: {e}");
                std::thread::sleep(STOP_POLL);
            }
        }
    }

    /// Whether a stop was asked for.
    pub fn is_stopped(&self) -> bool {
        self.0.stop.load(Ordering::SeqCst)
    }
}

/// The node a server runs, for the application that embeds the server
/// (DESIGN.md: an application with LNet in-process gets the same control
/// socket). The node exists from `lnet configure` to `lnet unconfigure`.
#[derive(Clone)]
pub struct NodeSlot(Arc<Shared>);

impl NodeSlot {
    /// The node, if LNet is configured.
    pub fn get(&self) -> Option<Arc<Node>> {
        self.0
            .node
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// The control-socket server of one LNet instance.
pub struct CtlServer {
    listener: UnixListener,
    shared: Arc<Shared>,
}

/// Whether a peer with `peer_uid` may use a daemon running as `own_uid`:
/// root and the daemon's own user may; anyone else gets the returned refusal.
pub fn check_peer(peer_uid: u32, own_uid: u32, socket: &Path) -> Result<(), ErrorReply> {
    if peer_uid == 0 || peer_uid == own_uid {
        return Ok(());
    }
    Err(ErrorReply {
        errno: EACCES,
        message: format!(
            "permission denied: lnetd on {} accepts requests from root and uid {own_uid} only, \
             not from uid {peer_uid}; run lnetctl as one of them",
            socket.display()
        ),
    })
}

fn io_err(socket: &Path, what: &'static str) -> impl FnOnce(io::Error) -> CtlError {
    let socket = socket.to_path_buf();
    move |source| CtlError::Io {
        socket,
        what,
        source,
    }
}

/// Clears the way for a new socket at `socket`: refuses when a daemon answers
/// there or when a non-socket file sits there; removes a stale socket file.
fn clear_stale(socket: &Path) -> Result<(), CtlError> {
    match std::fs::symlink_metadata(socket) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err(socket, "cannot inspect the path")(e)),
        Ok(m) if !m.file_type().is_socket() => Err(CtlError::NotASocket {
            socket: socket.to_path_buf(),
        }),
        Ok(_) => match UnixStream::connect(socket) {
            Ok(_) => Err(CtlError::AlreadyRunning {
                socket: socket.to_path_buf(),
            }),
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                tracing::warn!(socket = %socket.display(), "replacing stale control socket");
                std::fs::remove_file(socket)
                    .map_err(io_err(socket, "cannot remove the stale socket"))
            }
            Err(e) => Err(io_err(socket, "cannot check whether a daemon answers")(e)),
        },
    }
}

/// Binds a listener at `socket` with mode 0600 and no window where it is
/// reachable with a wider mode: bind in a private 0700 directory, chmod,
/// then hard-link into place (which fails if the name was taken meanwhile).
fn bind_private(socket: &Path) -> Result<UnixListener, CtlError> {
    let parent = match socket.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !parent.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(&parent)
            .map_err(io_err(socket, "cannot create its directory"))?;
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let tmp_dir = parent.join(format!(".lnetd-{}-{nanos}", std::process::id()));
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&tmp_dir)
        .map_err(io_err(
            socket,
            "cannot create a private directory next to it",
        ))?;
    let tmp = tmp_dir.join("sock");
    let result = (|| {
        let listener = UnixListener::bind(&tmp).map_err(io_err(socket, "bind failed"))?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))
            .map_err(io_err(socket, "cannot set mode 0600"))?;
        std::fs::hard_link(&tmp, socket).map_err(|e| {
            if e.kind() == io::ErrorKind::AlreadyExists {
                CtlError::AlreadyRunning {
                    socket: socket.to_path_buf(),
                }
            } else {
                io_err(socket, "cannot move it into place")(e)
            }
        })?;
        Ok(listener)
    })();
    let _ = std::fs::remove_file(&tmp);
    let _ = std::fs::remove_dir(&tmp_dir);
    result
}

impl CtlServer {
    /// Creates the control socket at `socket` for a node started (at `lnet
    /// configure`) with `node_cfg`, with the default [`ClientLimits`].
    pub fn bind(socket: &Path, node_cfg: NodeConfig) -> Result<CtlServer, CtlError> {
        Self::bind_with_limits(socket, node_cfg, ClientLimits::default())
    }

    /// As [`CtlServer::bind`] with the given client limits (`max_clients`
    /// at least 1).
    pub fn bind_with_limits(
        socket: &Path,
        node_cfg: NodeConfig,
        limits: ClientLimits,
    ) -> Result<CtlServer, CtlError> {
        let limits = limits.sane();
        clear_stale(socket)?;
        let listener = bind_private(socket)?;
        listener
            .set_nonblocking(true)
            .map_err(io_err(socket, "cannot make it non-blocking"))?;
        let m = std::fs::metadata(socket).map_err(io_err(socket, "cannot stat it"))?;
        let (stop_rx, stop_tx) = UnixStream::pair()
            .and_then(|(r, t)| t.set_nonblocking(true).map(|()| (r, t)))
            .map_err(io_err(socket, "cannot make the stop wake-up"))?;
        let server = CtlServer {
            listener,
            shared: Arc::new(Shared {
                node: RwLock::new(None),
                node_cfg,
                socket: socket.to_path_buf(),
                socket_id: (m.dev(), m.ino()),
                own_uid: nix::unistd::getuid().as_raw(),
                stop: AtomicBool::new(false),
                stop_rx,
                stop_tx,
                kept_tunables: Mutex::new(None),
                limits: Mutex::new(limits),
                clients: Mutex::new(Clients::default()),
                client_left: Condvar::new(),
                next_client: AtomicU64::new(1),
                configuring: Mutex::new(()),
            }),
        };
        // The start-up values, before any request.
        params_dir::refresh(&server.shared);
        Ok(server)
    }

    /// Changes the client limits (lnetd's `--max-clients`,
    /// `--client-timeout`); connections already served keep theirs until
    /// their next request.
    pub fn set_client_limits(&self, limits: ClientLimits) {
        *self
            .shared
            .limits
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = limits.sane();
    }

    /// The socket path.
    pub fn socket(&self) -> &Path {
        &self.shared.socket
    }

    /// A handle that stops [`CtlServer::serve`].
    pub fn stop_handle(&self) -> StopHandle {
        StopHandle(self.shared.clone())
    }

    /// The node this server runs (once configured), for an embedding
    /// application.
    pub fn node_slot(&self) -> NodeSlot {
        NodeSlot(self.shared.clone())
    }

    /// `lnet configure [--all]` from inside the daemon (`config_on_load=1`).
    pub fn configure(&self, all: bool) -> Result<(), NodeError> {
        let r = configure(&self.shared, all);
        params_dir::refresh(&self.shared);
        r
    }

    /// Serves until stopped; then shuts LNet down and removes the socket.
    pub fn serve(self) {
        tracing::info!(socket = %self.shared.socket.display(), "control socket ready");
        let stop = self.stop_handle();
        while !self.shared.stop.load(Ordering::SeqCst) {
            match self.listener.accept() {
                Ok((stream, _)) => admit(&self.shared, stream),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    stop.wait_for(std::os::fd::AsFd::as_fd(&self.listener))
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    tracing::error!("accept on control socket failed: {e}");
                    std::thread::sleep(STOP_POLL);
                }
            }
        }
        unconfigure(&self.shared);
        remove_socket(&self.shared);
        tracing::info!("lnetd stopped");
    }
}

/// Serves a new connection on a thread of its own if the cap allows (closing
/// the longest-idle connection to make room), or refuses it with `EBUSY`.
fn admit(shared: &Arc<Shared>, mut stream: UnixStream) {
    let limits = shared.limits();
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_write_timeout(Some(limits.line_timeout));
    let id = shared.next_client.fetch_add(1, Ordering::Relaxed);
    let admitted = {
        let mut c = shared
            .clients
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if c.map.len() >= limits.max_clients {
            let oldest = c
                .map
                .iter()
                .filter(|(_, e)| !e.closing)
                .filter_map(|(id, e)| e.idle_since.map(|t| (t, *id)))
                .min();
            if let Some((since, old)) = oldest {
                if let Some(e) = c.map.get_mut(&old) {
                    // Its thread sees the end of its stream and leaves; the
                    // slot stays taken until it has, so the threads serving
                    // clients never outnumber the cap.
                    e.closing = true;
                    let _ = e.stream.shutdown(std::net::Shutdown::Both);
                    tracing::info!(
                        idle_secs = since.elapsed().as_secs(),
                        max_clients = limits.max_clients,
                        "control socket: at the client cap, closed the longest-idle client"
                    );
                }
            }
            // Wait for a closing client's thread to leave (it was idle, so
            // it leaves at once; bounded in case it had just begun a request).
            let deadline = Instant::now() + limits.line_timeout;
            while c.map.len() >= limits.max_clients && c.map.values().any(|e| e.closing) {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                c = shared
                    .client_left
                    .wait_timeout(c, left)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
        }
        if c.map.len() >= limits.max_clients {
            c.refused += 1;
            let now = Instant::now();
            if c.last_refusal_log
                .is_none_or(|t| now.duration_since(t) >= REFUSAL_LOG_INTERVAL)
            {
                tracing::warn!(
                    refused = c.refused,
                    max_clients = limits.max_clients,
                    "control socket: clients refused, every served client is busy"
                );
                c.refused = 0;
                c.last_refusal_log = Some(now);
            }
            false
        } else {
            match stream.try_clone() {
                Ok(handle) => {
                    c.map.insert(
                        id,
                        ClientEntry {
                            idle_since: Some(Instant::now()),
                            closing: false,
                            stream: handle,
                        },
                    );
                    true
                }
                Err(e) => {
                    tracing::warn!("control connection: {e}");
                    return;
                }
            }
        }
    };
    if !admitted {
        let _ = write_reply(
            &mut stream,
            &Reply::err(
                EBUSY,
                format!(
                    "lnetd is busy: it serves at most {} control clients at once (lnetd \
                     --max-clients) and every one is running or sending a request; try again",
                    limits.max_clients
                ),
            ),
        );
        return;
    }
    let conn = Arc::clone(shared);
    let spawned = std::thread::Builder::new()
        .name("lnetd-ctl".into())
        .spawn(move || {
            serve_connection(&conn, id, stream);
            forget_client(&conn, id);
        });
    if let Err(e) = spawned {
        tracing::error!("cannot start a control connection thread: {e}");
        forget_client(shared, id);
    }
}

fn forget_client(shared: &Shared, id: u64) {
    shared
        .clients
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .map
        .remove(&id);
    shared.client_left.notify_all();
}

/// Marks connection `id` as waiting for its next request (or not). A
/// connection already idle keeps the time it became so: it is idle from its
/// admission, not from when its thread first came to wait (later, on a
/// loaded machine), so the longest-idle one is the one evicted.
fn set_idle(shared: &Shared, id: u64, idle: bool) {
    let mut c = shared
        .clients
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if let Some(e) = c.map.get_mut(&id) {
        if !idle {
            e.idle_since = None;
        } else if e.idle_since.is_none() {
            e.idle_since = Some(Instant::now());
        }
    }
}

/// Removes our socket file, unless another daemon's socket took its name.
fn remove_socket(shared: &Shared) {
    if let Ok(m) = std::fs::symlink_metadata(&shared.socket) {
        if (m.dev(), m.ino()) == shared.socket_id {
            if let Err(e) = std::fs::remove_file(&shared.socket) {
                tracing::warn!(socket = %shared.socket.display(), "cannot remove socket: {e}");
            }
        }
    }
}

fn configure(shared: &Shared, all: bool) -> Result<(), NodeError> {
    // One configure at a time; the slot is written once the node is up, so
    // a slow plugin start-up does not hold every other request.
    let _one = shared
        .configuring
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if shared
        .node
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .is_some()
    {
        return Ok(());
    }
    let mut cfg = shared.node_cfg.clone();
    cfg.tunables = shared
        .kept_tunables
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    if !all {
        cfg.params
            .retain(|(k, _)| !STARTUP_NETWORK_PARAMS.contains(&k.as_str()));
    }
    let node = Node::start(cfg)?;
    if all {
        if let Err(e) = apply_startup_networks(&node, &shared.node_cfg.params) {
            node.shutdown();
            return Err(e);
        }
    }
    tracing::info!(all, "LNet configured");
    *shared.node.write().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(node));
    Ok(())
}

/// `lnet configure --all`: brings up the nets of `networks=` (default: `tcp`
/// on the first up, non-loopback interface), as upstream's
/// `lnet_parse_networks()` at module load (semantics.md §15.1).
fn apply_startup_networks(node: &Node, params: &[(String, String)]) -> Result<(), NodeError> {
    let get = |name: &str| {
        params
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    };
    let einval =
        |e: lnet_core::nid::NidError| NodeError::failed(lnd_api::errno::EINVAL, e.to_string());
    let networks = match (get("networks"), get("ip2nets")) {
        (Some(_), Some(_)) => {
            return Err(NodeError::failed(
                lnd_api::errno::EINVAL,
                "start-up parameters networks= and ip2nets= are both given; give one of them",
            ))
        }
        (Some(v), None) => Some(lnet_core::nid::Networks::parse(v).map_err(einval)?),
        // The entries that match an address of one of this node's
        // interfaces, each on the interface that owns the address
        // (semantics.md §15.2), as `net add --ip2net` resolves them.
        (None, Some(v)) => {
            config::startup_ip2nets(node, v)?;
            None
        }
        (None, None) => {
            let iface = first_up_interface(Path::new("/sys/class/net"))?;
            Some(
                lnet_core::nid::Networks::parse(&format!("tcp({iface})"))
                    .map_err(|e| NodeError::failed(lnd_api::errno::EINVAL, e.to_string()))?,
            )
        }
    };
    for n in networks.iter().flat_map(|n| n.nets()) {
        let mut interfaces = Vec::new();
        for ni in n.nis {
            if ni.cpts.is_some() {
                tracing::warn!(net = %n.net, "networks=: CPT lists are ignored (no CPU partitions)");
            }
            match ni.interface {
                Some(i) => interfaces.push(i),
                None => interfaces.push(first_up_interface(Path::new("/sys/class/net"))?),
            }
        }
        let net = n.net.to_string();
        node.net_add(NetAdd {
            net: net.clone(),
            interfaces,
            tunables: NetTunables::UNSET,
            lnd_tunables: Vec::new(),
        })
        .map_err(|e| NodeError::failed(e.errno(), format!("networks=: net {net}: {e}")))?;
    }
    if let Some(r) = get("routes") {
        node.apply_routes_param(r, get("forwarding").is_none())?;
    }
    Ok(())
}

/// The first interface (by index) that is up and not loopback, read from
/// `sysfs` (`/sys/class/net/*/{operstate,ifindex,flags}`).
fn first_up_interface(sysfs: &Path) -> Result<String, NodeError> {
    const IFF_LOOPBACK: u64 = 0x8;
    let read = |p: PathBuf| std::fs::read_to_string(p).unwrap_or_default();
    let mut up: Vec<(u64, String)> = Vec::new();
    if let Ok(dir) = std::fs::read_dir(sysfs) {
        for e in dir.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let base = sysfs.join(&name);
            let flags = read(base.join("flags"));
            let flags = u64::from_str_radix(flags.trim().trim_start_matches("0x"), 16).unwrap_or(0);
            if flags & IFF_LOOPBACK != 0 || name == "lo" {
                continue;
            }
            if read(base.join("operstate")).trim() != "up" {
                continue;
            }
            let index = read(base.join("ifindex"))
                .trim()
                .parse()
                .unwrap_or(u64::MAX);
            up.push((index, name));
        }
    }
    up.sort();
    up.into_iter().next().map(|(_, n)| n).ok_or_else(|| {
        NodeError::failed(
            ENETDOWN,
            "no interface is up besides loopback, for the default networks=tcp; give              networks=tcp(IFACE)",
        )
    })
}

fn unconfigure(shared: &Shared) {
    // After a configure in progress, not under it.
    let _one = shared
        .configuring
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    let node = shared
        .node
        .write()
        .unwrap_or_else(PoisonError::into_inner)
        .take();
    if let Some(node) = node {
        *shared
            .kept_tunables
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(node.global_tunables());
        // Fault rules go with LNet; held messages are released first.
        node.fault_clear();
        node.shutdown();
        tracing::info!("LNet unconfigured");
    }
}

fn write_reply(stream: &mut UnixStream, reply: &Reply) -> io::Result<()> {
    stream.write_all(&proto::encode_reply(reply))
}

/// What reading one request line gave.
enum Line {
    /// A line (without its newline); `complete` is false when the stream
    /// ended after it without a newline.
    Got { line: Vec<u8>, complete: bool },
    /// The stream ended (or failed) before a byte of a new request.
    Closed,
    /// Longer than the protocol allows.
    TooLong(usize),
    /// The line was not complete within the line timeout.
    TimedOut(usize),
}

/// Reads one request line: waits without a deadline for its first byte
/// (the connection is idle meanwhile, see [`admit`]), then gives the rest
/// `line_timeout` in all.
fn read_line(shared: &Shared, id: u64, reader: &mut BufReader<UnixStream>) -> Line {
    let limit = proto::MAX_REQUEST_LEN + 1;
    set_idle(shared, id, true);
    let _ = reader.get_ref().set_read_timeout(None);
    let first = loop {
        match reader.fill_buf() {
            Ok([]) => break None,
            Ok(_) => break Some(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                tracing::debug!("control connection: {e}");
                break None;
            }
        }
    };
    set_idle(shared, id, false);
    if first.is_none() {
        return Line::Closed;
    }
    let deadline = Instant::now() + shared.limits().line_timeout;
    let mut line = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Line::TimedOut(line.len());
        }
        let _ = reader.get_ref().set_read_timeout(Some(left));
        let buf = match reader.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Line::TimedOut(line.len())
            }
            Err(e) => {
                tracing::debug!("control connection: {e}");
                return Line::Closed;
            }
        };
        if buf.is_empty() {
            return Line::Got {
                line,
                complete: false,
            };
        }
        let (take, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (buf.len(), false),
        };
        line.extend_from_slice(&buf[..take]);
        reader.consume(take);
        if done {
            line.pop();
            if line.len() >= limit {
                return Line::TooLong(line.len());
            }
            return Line::Got {
                line,
                complete: true,
            };
        }
        if line.len() >= limit {
            return Line::TooLong(line.len());
        }
    }
}

fn serve_connection(shared: &Shared, id: u64, stream: UnixStream) {
    let mut writer = match stream.try_clone() {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!("control connection: {e}");
            return;
        }
    };
    let peer_uid =
        match nix::sys::socket::getsockopt(&stream, nix::sys::socket::sockopt::PeerCredentials) {
            Ok(c) => c.uid(),
            Err(e) => {
                tracing::warn!("control connection: cannot read peer credentials: {e}");
                let _ = write_reply(
                    &mut writer,
                    &Reply::err(EACCES, "permission denied: cannot read your credentials"),
                );
                return;
            }
        };
    if let Err(refusal) = check_peer(peer_uid, shared.own_uid, &shared.socket) {
        tracing::warn!(peer_uid, "control connection refused");
        let _ = write_reply(
            &mut writer,
            &Reply {
                version: proto::PROTOCOL_VERSION,
                result: Err(refusal),
            },
        );
        return;
    }
    let mut reader = BufReader::new(stream);
    loop {
        let (line, complete) = match read_line(shared, id, &mut reader) {
            Line::Got { line, complete } => (line, complete),
            Line::Closed => return,
            Line::TooLong(n) => {
                let _ = write_reply(&mut writer, &proto::DecodeError::TooLong(n).to_reply());
                return;
            }
            Line::TimedOut(n) => {
                tracing::debug!(bytes = n, "control connection: request line timed out");
                let _ = write_reply(
                    &mut writer,
                    &Reply::err(
                        ETIMEDOUT,
                        format!(
                            "request not complete within {} s of its first byte ({n} bytes \
                             without a newline); connection closed",
                            shared.limits().line_timeout.as_secs_f64()
                        ),
                    ),
                );
                return;
            }
        };
        let reply = match proto::decode_request(&line) {
            Ok(req) => {
                let refresh = params_dir::changes(&req.op);
                let reply = handle(shared, req.op);
                if refresh && reply.result.is_ok() {
                    params_dir::refresh(shared);
                }
                reply
            }
            Err(e) => {
                tracing::debug!("bad control request: {e}");
                e.to_reply()
            }
        };
        let written = write_reply(&mut writer, &reply);
        if written.is_err() || !complete {
            return;
        }
    }
}

fn node_err(e: NodeError) -> Reply {
    Reply::err(e.errno(), e.to_string())
}

fn not_configured() -> Reply {
    Reply::err(
        ENETDOWN,
        "LNet is not configured (run lnetctl lnet configure first)",
    )
}

/// Handles one request.
fn handle(shared: &Shared, op: Op) -> Reply {
    let node = shared
        .node
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let op = match config::handle(shared, node.as_deref(), op) {
        Ok(reply) => return reply,
        Err(op) => op,
    };
    match op {
        Op::Hello => Reply::ok(ReplyBody::Hello(DaemonInfo {
            pid: std::process::id(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            configured: node.is_some(),
            net_types: node
                .as_ref()
                .map(|n| n.extra_net_types())
                .unwrap_or_default(),
        })),
        Op::Configure { all } => match configure(shared, all) {
            Ok(()) => Reply::ok(ReplyBody::Done),
            Err(e) => node_err(e),
        },
        Op::Unconfigure => {
            // As rmmod-less upstream: LNet goes, the daemon (the loaded
            // module) stays with its start-up parameters.
            drop(node);
            unconfigure(shared);
            Reply::ok(ReplyBody::Done)
        }
        Op::NetShow { net } => match node {
            None => Reply::err(ENETDOWN, "LNet stack down"),
            Some(node) => {
                let nets: Vec<NetInfo> = node
                    .nets()
                    .into_iter()
                    .filter(|n| net.as_ref().is_none_or(|f| *f == n.name))
                    .map(net_info)
                    .collect();
                match &net {
                    Some(f) if nets.iter().all(|n| n.nis.is_empty()) => {
                        if known_net_name(&node, f) {
                            Reply::err(ESRCH, "Network is down")
                        } else {
                            Reply::err(ENOENT, format!("cannot parse net '{f}'"))
                        }
                    }
                    _ => Reply::ok(ReplyBody::Nets(nets)),
                }
            }
        },
        Op::DebugNidlist { list, nid } => debug::nidlist(node.as_deref(), &list, nid.as_deref()),
        Op::CptOfNid { nids } => debug::cpt_of_nid(node.as_deref(), &nids),
        Op::ServicePort => debug::service_port(node.as_deref()),
        Op::DebugPeer { nid } => debug::peer(node.as_deref(), nid),
        Op::StatsShow => match node {
            None => not_configured(),
            Some(node) => Reply::ok(ReplyBody::Stats(stats(&node.stats()))),
        },
        Op::ParamShow => Reply::ok(ReplyBody::Params(param_values(
            &shared.node_cfg,
            node.as_deref(),
        ))),
        Op::PluginShow => match node {
            None => not_configured(),
            Some(node) => Reply::ok(ReplyBody::Plugins(
                node.plugins().into_iter().map(plugin_show).collect(),
            )),
        },
        op => match node {
            None => not_configured(),
            Some(node) => handle_configured(shared, &node, op),
        },
    }
}

fn handle_configured(shared: &Shared, node: &Node, op: Op) -> Reply {
    match op {
        Op::NetAdd(req) => match node.net_add(net_add(req)) {
            Ok(nids) => Reply::ok(ReplyBody::NetAdded(nids)),
            Err(e) => node_err(e),
        },
        Op::NetDel { net } => match node.net_del(&net) {
            Ok(()) => Reply::ok(ReplyBody::Done),
            Err(e) => node_err(e),
        },
        Op::PluginLoad { path } => match resolve_plugin(&shared.node_cfg.plugin_path, &path) {
            Err(e) => Reply::err(e.errno, e.message),
            Ok(p) => match node.plugin_load(&p) {
                Ok(info) => Reply::ok(ReplyBody::Plugin(plugin_info(info, Vec::new()))),
                Err(e) => node_err(e),
            },
        },
        Op::PluginUnload { name, force } => match plugin_unload(node, &name, force) {
            Ok(info) => Reply::ok(ReplyBody::Plugin(plugin_info(info, Vec::new()))),
            Err(e) => node_err(e),
        },
        Op::Ping(req) => Reply::ok(ReplyBody::Ping(ping(node, req))),
        Op::Lst(req) => lst::handle(node, req),
        Op::Fault(req) => {
            let (cmd, arg) = req.plugin_call();
            match node.fault_ctl(&shared.node_cfg.plugin_path, &cmd, &arg) {
                Ok(text) => Reply::ok(ReplyBody::Fault(text)),
                Err(e) => node_err(e),
            }
        }
        Op::Peer(req) => peer::handle(node, req),
        Op::RouteAdd(req) => route::add(node, req),
        Op::RouteDel(req) => route::del(node, req),
        Op::RouteShow => route::show(node),
        Op::RoutingShow => route::routing_show(node),
        Op::RoutingSet { enable } => route::routing_set(node, enable),
        Op::RouterBuffersSet { pool, value } => route::buffers_set(node, &pool, value),
        _ => Reply::err(EOPNOTSUPP, "request not supported by this lnetd"),
    }
}

/// `lctl get_param`: the router parameters in force (when LNet is
/// configured), the other lnet and libcfs parameters given at start-up (as
/// given), then each loaded plugin's declared parameters (given or default).
/// `accept_port`'s default (upstream's 988).
pub const DEFAULT_ACCEPT_PORT: &str = "988";

/// Start-up parameters whose consumers are not lnetd's own code (the
/// acceptor of lnd-sock reads `accept*`; one CPU partition runs whatever
/// `cpu_*` say), with upstream's defaults (`spec/lnetctl.md` §5.9), as
/// `lctl get_param` reports them when not given. `lnet-tests` checks the
/// acceptor's against lnd-sock's own defaults.
pub const STARTUP_DEFAULTS: [(&str, &str, &str); 8] = [
    ("lnet", "accept", "secure"),
    ("lnet", "accept_port", DEFAULT_ACCEPT_PORT),
    ("lnet", "accept_backlog", "127"),
    ("lnet", "accept_timeout", "5"),
    ("lnet", "rnet_htable_size", "128"),
    ("lnet", "enable_sysctl_setup", "0"),
    ("libcfs", "cpu_npartitions", "0"),
    ("libcfs", "cpu_pattern", "N"),
];

fn param_values(cfg: &NodeConfig, node: Option<&Node>) -> Vec<liblnetconfig::proto::ParamValue> {
    use liblnetconfig::proto::ParamValue;
    let mut out: Vec<ParamValue> = Vec::new();
    if let Some(node) = node {
        let c = node.with_engine(|l, _| l.router_config().clone());
        let given = |name: &str| cfg.params.iter().any(|(n, _)| n == name);
        for (name, value) in [
            ("tiny_router_buffers", c.tiny_router_buffers.to_string()),
            ("small_router_buffers", c.small_router_buffers.to_string()),
            ("large_router_buffers", c.large_router_buffers.to_string()),
            ("peer_buffer_credits", c.peer_buffer_credits.to_string()),
            ("auto_down", u8::from(c.auto_down).to_string()),
            (
                "check_routers_before_use",
                u8::from(c.check_routers_before_use).to_string(),
            ),
            (
                "avoid_asym_router_failure",
                u8::from(c.avoid_asym_router_failure).to_string(),
            ),
            (
                "alive_router_check_interval",
                c.alive_router_check_interval.to_string(),
            ),
            ("router_ping_timeout", c.router_ping_timeout.to_string()),
        ] {
            out.push(ParamValue {
                module: "lnet".to_string(),
                name: name.to_string(),
                value,
                given: given(name),
            });
        }
    }
    // The start-up strings and switches lnetd reads as empty / off when
    // not given.
    for (name, unset) in [
        ("networks", ""),
        ("ip2nets", ""),
        ("routes", ""),
        ("forwarding", ""),
        ("config_on_load", "0"),
    ] {
        let given = cfg.params.iter().find(|(n, _)| n == name);
        out.push(ParamValue {
            module: "lnet".to_string(),
            name: name.to_string(),
            value: given.map_or(unset, |(_, v)| v.as_str()).to_string(),
            given: given.is_some(),
        });
    }
    // Read by others (the acceptor of a socket LND, the CPU partitions),
    // reported with upstream's defaults when not given; `accept_port_bulk`
    // follows `accept_port`.
    let port = cfg
        .params
        .iter()
        .find(|(n, _)| n == "accept_port")
        .map_or(DEFAULT_ACCEPT_PORT, |(_, v)| v.as_str());
    for (module, name, unset) in
        STARTUP_DEFAULTS
            .iter()
            .copied()
            .chain([("lnet", "accept_port_bulk", port)])
    {
        if !cfg.params.iter().any(|(n, _)| n == name) {
            out.push(ParamValue {
                module: module.to_string(),
                name: name.to_string(),
                value: unset.to_string(),
                given: false,
            });
        }
    }
    if let Some(node) = node {
        let t = node.global_tunables();
        out.push(ParamValue {
            module: "lnet".to_string(),
            name: "lock_prim_nid".to_string(),
            value: u8::from(t.lock_prim_nid).to_string(),
            given: cfg.params.iter().any(|(n, _)| n == "lock_prim_nid"),
        });
    }
    let rest = cfg
        .params
        .iter()
        .filter(|(name, _)| !out.iter().any(|v| v.name == *name))
        .map(|(name, value)| ParamValue {
            module: match name.as_str() {
                "cpu_npartitions" | "cpu_pattern" => "libcfs",
                "session_timeout" | "rpc_timeout" | "brw_srv_workitems" | "ping_srv_workitems"
                | "brw_inject_errors" => "lnet_selftest",
                "metrics_address" | "params_dir" => "lnetd",
                _ => "lnet",
            }
            .to_string(),
            name: name.clone(),
            value: value.clone(),
            given: true,
        })
        .collect::<Vec<_>>();
    out.extend(rest);
    if let Some(node) = node {
        for (module, name, value, given) in node.plugin_param_values() {
            out.push(ParamValue {
                module,
                name,
                value,
                given,
            });
        }
    }
    out
}

/// `plugin unload NAME [--force]`: with `force`, first deletes the nets
/// whose NIs the plugin serves (lnetctl.md §2.20).
fn plugin_unload(
    node: &Node,
    name: &str,
    force: bool,
) -> Result<crate::host::PluginInfo, NodeError> {
    if force {
        let nets: Vec<lnd_api::NetId> = node
            .plugins()
            .into_iter()
            .filter(|p| p.info.name == name)
            .flat_map(|p| p.nis)
            .map(|nid| nid.net())
            .collect();
        for n in node.nets().into_iter().filter(|n| nets.contains(&n.net)) {
            tracing::info!(net = %n.name, plugin = name, "plugin unload --force: deleting net");
            node.net_del(&n.name)?;
        }
    }
    node.plugin_unload(name)
}

fn ping(node: &Node, req: PingRequest) -> Vec<PingOutcome> {
    let timeout = req
        .timeout_ms
        .map_or(DEFAULT_PING_TIMEOUT, Duration::from_millis);
    req.targets
        .iter()
        .map(|&target| PingOutcome {
            target,
            result: node
                .ping(target, None, req.source, timeout)
                .map(|r| PingInfo {
                    primary_nid: r.primary_nid,
                    pid: r.pid,
                    multi_rail: r.multi_rail,
                    nids: r.nids.into_iter().map(|(n, _)| n).collect(),
                })
                .map_err(|e| ErrorReply {
                    errno: e.errno(),
                    message: e.to_string(),
                }),
        })
        .collect()
}

/// A plugin argument: a path (absolute, as lnetctl sends paths), or a bare
/// name looked up in the plugin path as `lib<name>.so`, `lib<name>lnd.so`,
/// `liblnd_<name>.so`.
fn resolve_plugin(plugin_path: &[PathBuf], arg: &str) -> Result<PathBuf, ErrorReply> {
    if arg.contains('/') {
        return Ok(PathBuf::from(arg));
    }
    let stem = arg.trim_end_matches(".so");
    let names = [
        arg.to_string(),
        format!("lib{stem}.so"),
        format!("lib{stem}lnd.so"),
        format!("liblnd_{}.so", stem.replace('-', "_")),
        format!("lib{}.so", stem.replace('-', "_")),
    ];
    for dir in plugin_path {
        for n in &names {
            let p = dir.join(n);
            if p.is_file() {
                return Ok(p);
            }
        }
    }
    let dirs: Vec<String> = plugin_path
        .iter()
        .map(|d| d.display().to_string())
        .collect();
    Err(ErrorReply {
        errno: ENOENT,
        message: format!(
            "cannot open plugin {arg}: no lib{stem}.so or lib{stem}lnd.so in the plugin path ({}); \
             give the path of the .so or add its directory with lnetd --plugin-path",
            dirs.join(":")
        ),
    })
}

fn net_add(r: NetAddRequest) -> NetAdd {
    let mut lnd_tunables = Vec::new();
    if let Some(c) = r.conns_per_peer {
        lnd_tunables.push(("conns_per_peer".to_string(), c.to_string()));
    }
    if let Some(t) = r.tos {
        lnd_tunables.push(("tos".to_string(), t.to_string()));
    }
    NetAdd {
        net: r.net,
        interfaces: r.interfaces,
        tunables: NetTunables {
            peer_timeout: r.peer_timeout.unwrap_or(-1),
            peer_credits: r.peer_credits.unwrap_or(-1),
            peer_buffer_credits: r.peer_buffer_credits.unwrap_or(-1),
            credits: r.credits.unwrap_or(-1),
        },
        lnd_tunables,
    }
}

fn stats(c: &lnet_core::stats::Counters) -> StatsInfo {
    let h = &c.health;
    StatsInfo {
        msgs_alloc: c.msgs_alloc,
        msgs_max: c.msgs_max,
        rst_alloc: c.rst_alloc,
        errors: c.errors,
        send_count: c.send_count,
        resend_count: c.resend_count,
        response_timeout_count: c.response_timeout_count,
        local_interrupt_count: h.local_interrupt,
        local_dropped_count: h.local_dropped,
        local_aborted_count: h.local_aborted,
        local_no_route_count: h.local_no_route,
        local_timeout_count: h.local_timeout,
        local_error_count: h.local_error,
        remote_dropped_count: h.remote_dropped,
        remote_error_count: h.remote_error,
        remote_timeout_count: h.remote_timeout,
        network_timeout_count: h.network_timeout,
        failed_resends: c.failed_resends,
        successful_resends: c.successful_resends,
        recv_count: c.recv_count,
        route_count: c.route_count,
        drop_count: c.drop_count,
        send_length: c.send_length,
        recv_length: c.recv_length,
        route_length: c.route_length,
        drop_length: c.drop_length,
    }
}

fn latency(l: LatencyStats) -> LatencyInfo {
    LatencyInfo {
        samples: l.samples,
        min_nsec: l.min_nsec,
        max_nsec: l.max_nsec,
        avg_nsec: l.avg_nsec,
    }
}

fn counts(c: TypeCounts) -> MsgCounts {
    MsgCounts {
        put: c.put,
        get: c.get,
        reply: c.reply,
        ack: c.ack,
        hello: c.hello,
    }
}

fn ni_info(ni: NiShow) -> NiInfo {
    let h = ni.health;
    NiInfo {
        nid: ni.nid,
        up: ni.up,
        interfaces: ni.interfaces,
        send_count: ni.send_count,
        recv_count: ni.recv_count,
        drop_count: ni.drop_count,
        put_egress: latency(ni.put_egress),
        get_rtt: latency(ni.get_rtt),
        put_ack: latency(ni.put_ack),
        sent: counts(ni.sent),
        received: counts(ni.received),
        dropped: counts(ni.dropped),
        health: HealthInfo {
            fatal_error: h.fatal_error,
            value: h.value,
            interrupts: h.interrupts,
            dropped: h.dropped,
            aborted: h.aborted,
            no_route: h.no_route,
            timeouts: h.timeouts,
            error: h.error,
            ping_count: h.ping_count,
            next_ping: h.next_ping,
        },
        net_priority: ni.net_priority,
        nid_priority: ni.nid_priority,
        tunables: TunablesInfo {
            peer_timeout: ni.tunables.peer_timeout,
            peer_credits: ni.tunables.peer_credits,
            peer_buffer_credits: ni.tunables.peer_buffer_credits,
            credits: ni.tunables.credits,
        },
        lnd_tunables: ni.lnd_tunables,
        dev_cpt: ni.dev_cpt,
        cpts: ni.cpts,
        tx_credits: ni.tx_credits,
        min_tx_credits: ni.min_tx_credits,
    }
}

/// Whether `name` names a network type LNet knows (`tcp3`), or one of a
/// loaded plugin's types followed by a number (`vnd2`).
fn known_net_name(node: &Node, name: &str) -> bool {
    if name.parse::<lnd_api::NetId>().is_ok() {
        return true;
    }
    node.plugins().iter().any(|p| {
        p.info.net_types.iter().any(|t| {
            name.strip_prefix(t.as_str())
                .is_some_and(|rest| rest.bytes().all(|b| b.is_ascii_digit()))
        })
    })
}

fn net_info(n: NetShow) -> NetInfo {
    NetInfo {
        name: n.name,
        nis: n.nis.into_iter().map(ni_info).collect(),
    }
}

fn plugin_info(i: crate::host::PluginInfo, nis: Vec<lnd_api::Nid>) -> PluginInfo {
    PluginInfo {
        name: i.name,
        version: i.version,
        abi_version: i.abi_version,
        net_types: i.net_types,
        path: i.path.map(|p| p.display().to_string()),
        builtin: i.builtin,
        state: i.state.as_str().to_string(),
        nis,
    }
}

fn plugin_show(p: PluginShow) -> PluginInfo {
    plugin_info(p.info, p.nis)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn credentials() {
        let s = Path::new("/run/lnet/lnetctl.sock");
        assert!(check_peer(0, 1000, s).is_ok(), "root may");
        assert!(check_peer(1000, 1000, s).is_ok(), "the daemon's user may");
        assert!(check_peer(0, 0, s).is_ok());
        let e = check_peer(1001, 1000, s).expect_err("another user may not");
        assert_eq!(e.errno, EACCES);
        assert!(e.message.contains("uid 1001") && e.message.contains("uid 1000"));
        assert!(
            check_peer(1000, 0, s).is_err(),
            "non-root against a root daemon"
        );
    }

    fn temp_socket(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("lnet-ctl-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        dir.join("ctl.sock")
    }

    #[test]
    fn socket_mode_stale_and_busy() {
        let sock = temp_socket("bind");
        // A stale socket file (nobody answers) is replaced.
        drop(UnixListener::bind(&sock).expect("stale"));
        let server = CtlServer::bind(&sock, NodeConfig::default()).expect("replaces stale");
        let mode = std::fs::metadata(&sock)
            .expect("exists")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        // A second server on a socket that answers is refused.
        let e = CtlServer::bind(&sock, NodeConfig::default())
            .err()
            .expect("busy");
        assert!(matches!(e, CtlError::AlreadyRunning { .. }), "{e}");
        assert!(e.to_string().contains("already running"));
        // Serve, answer a hello, stop: the socket is removed.
        let stop = server.stop_handle();
        let t = std::thread::spawn(move || server.serve());
        let mut c = liblnetconfig::Client::connect(&sock).expect("connect");
        let info = c.hello().expect("hello");
        assert!(!info.configured);
        assert_eq!(info.pid, std::process::id());
        let e = c.net_show(None).expect_err("not configured");
        assert_eq!(e.errno(), ENETDOWN);
        assert_eq!(e.to_string(), "LNet stack down");
        stop.stop();
        t.join().expect("server thread");
        assert!(!sock.exists(), "socket removed on stop");
        let _ = std::fs::remove_dir_all(sock.parent().expect("dir"));
    }

    /// An idle control socket costs no wake-ups: the accept loop sleeps in
    /// `poll` until a client or a stop comes (it used to look at the stop
    /// flag 20 times a second), and a stop ends it at once.
    #[test]
    fn an_idle_server_sleeps_until_a_client_or_a_stop() {
        let sock = temp_socket("idle");
        let server = CtlServer::bind(&sock, NodeConfig::default()).expect("bind");
        let stop = server.stop_handle();
        let (tx, rx) = std::sync::mpsc::channel();
        let t = std::thread::spawn(move || {
            // "PID/task/TID": this thread's entry in /proc.
            let me = std::fs::read_link("/proc/thread-self").expect("thread-self");
            tx.send(std::path::Path::new("/proc").join(me).join("status"))
                .expect("send");
            server.serve()
        });
        let status = rx.recv().expect("thread's status file");
        let voluntary = || {
            let s = std::fs::read_to_string(&status).expect("status");
            s.lines()
                .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
                .and_then(|v| v.trim().parse::<u64>().ok())
                .expect("voluntary_ctxt_switches")
        };
        // Served once (a hello), then idle.
        let mut c = liblnetconfig::Client::connect(&sock).expect("connect");
        drop(c.global());
        drop(c);
        std::thread::sleep(Duration::from_millis(300));
        let v0 = voluntary();
        std::thread::sleep(Duration::from_secs(2));
        let woke = voluntary() - v0;
        assert!(woke <= 2, "an idle accept loop woke {woke} times in 2 s");
        let t0 = Instant::now();
        stop.stop();
        t.join().expect("server thread");
        assert!(t0.elapsed() < Duration::from_secs(4), "{:?}", t0.elapsed());
        assert!(!sock.exists(), "socket removed on stop");
        let _ = std::fs::remove_dir_all(sock.parent().expect("dir"));
    }

    #[test]
    fn not_a_socket_is_refused() {
        let sock = temp_socket("file");
        std::fs::write(&sock, b"x").expect("file");
        let e = CtlServer::bind(&sock, NodeConfig::default())
            .err()
            .expect("refused");
        assert!(matches!(e, CtlError::NotASocket { .. }));
        assert!(sock.exists(), "never deletes a file that is not a socket");
        let _ = std::fs::remove_dir_all(sock.parent().expect("dir"));
    }

    #[test]
    fn garbage_and_wrong_version_get_error_replies() {
        let sock = temp_socket("garbage");
        let server = CtlServer::bind(&sock, NodeConfig::default()).expect("bind");
        let stop = server.stop_handle();
        let t = std::thread::spawn(move || server.serve());
        let mut s = UnixStream::connect(&sock).expect("connect");
        s.write_all(b"\xff\x00garbage\n{\"version\":99,\"op\":\"hello\"}\n")
            .expect("write");
        let mut r = BufReader::new(s);
        for want in [liblnetconfig::errno::EINVAL, liblnetconfig::errno::EPROTO] {
            let mut line = Vec::new();
            r.read_until(b'\n', &mut line).expect("reply");
            // Replies carry our version, so decode_reply accepts them.
            let reply = proto::decode_reply(&line).expect("decodes");
            let err = reply.result.expect_err("refused");
            assert_eq!(err.errno, want, "{}", err.message);
        }
        stop.stop();
        t.join().expect("server thread");
        let _ = std::fs::remove_dir_all(sock.parent().expect("dir"));
    }

    /// Polls `f` until it holds, failing after a generous deadline.
    fn wait_until(what: &str, f: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !f() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn reply_of(s: &UnixStream) -> Option<Reply> {
        let mut line = Vec::new();
        s.set_read_timeout(Some(Duration::from_secs(60)))
            .expect("timeout");
        let n = BufReader::new(s)
            .read_until(b'\n', &mut line)
            .expect("read");
        (n > 0).then(|| proto::decode_reply(&line).expect("decodes"))
    }

    /// A client is idle from its admission: its thread coming to wait for
    /// the first request later (a loaded machine) does not make it look
    /// younger than the clients admitted after it, or the wrong one would
    /// be evicted at the cap. A request makes it busy; the next wait starts
    /// a new idle time.
    #[test]
    fn a_client_stays_idle_since_its_admission() {
        let sock = temp_socket("idle");
        let server = CtlServer::bind(&sock, NodeConfig::default()).expect("bind");
        let shared = Arc::clone(&server.shared);
        let (ours, _theirs) = UnixStream::pair().expect("pair");
        let admitted = Instant::now();
        shared.clients.lock().expect("clients").map.insert(
            7,
            ClientEntry {
                idle_since: Some(admitted),
                closing: false,
                stream: ours,
            },
        );
        let since = || shared.clients.lock().expect("clients").map[&7].idle_since;
        std::thread::sleep(Duration::from_millis(2));
        set_idle(&shared, 7, true);
        assert_eq!(since(), Some(admitted), "still idle since its admission");
        set_idle(&shared, 7, false);
        assert_eq!(since(), None, "busy with a request");
        set_idle(&shared, 7, true);
        assert!(
            since().is_some_and(|t| t > admitted),
            "idle again, from now"
        );
        drop(server);
        let _ = std::fs::remove_dir_all(sock.parent().expect("dir"));
    }

    /// The cap, the line timeout and the eviction of the longest-idle
    /// client, watched through the server's own table of clients.
    #[test]
    fn clients_are_capped_half_lines_time_out_idle_ones_make_room() {
        let sock = temp_socket("cap");
        let limits = ClientLimits {
            max_clients: 4,
            line_timeout: Duration::from_secs(2),
        };
        let server =
            CtlServer::bind_with_limits(&sock, NodeConfig::default(), limits).expect("bind");
        let shared = Arc::clone(&server.shared);
        let stop = server.stop_handle();
        let t = std::thread::spawn(move || server.serve());
        let table = |idle: bool| {
            let c = shared.clients.lock().expect("clients");
            c.map
                .values()
                .filter(|e| e.idle_since.is_some() == idle)
                .count()
        };
        // Four clients each send half a line: all four slots busy.
        let half: Vec<UnixStream> = (0..4)
            .map(|_| {
                let mut s = UnixStream::connect(&sock).expect("connect");
                s.write_all(b"{\"version\":").expect("write");
                s
            })
            .collect();
        wait_until("four busy clients", || table(false) == 4);
        // A fifth is refused at once with EBUSY, and closed.
        let extra = UnixStream::connect(&sock).expect("connect");
        let r = reply_of(&extra).expect("a refusal");
        let e = r.result.expect_err("refused");
        assert_eq!(e.errno, EBUSY, "{}", e.message);
        assert!(
            e.message.contains("at most 4 control clients"),
            "{}",
            e.message
        );
        assert!(reply_of(&extra).is_none(), "closed after the refusal");
        // The half lines time out: ETIMEDOUT, then closed.
        for s in &half {
            let r = reply_of(s).expect("a timeout reply");
            let e = r.result.expect_err("timed out");
            assert_eq!(e.errno, ETIMEDOUT, "{}", e.message);
            assert!(reply_of(s).is_none(), "closed after the timeout");
        }
        wait_until("no clients", || table(true) + table(false) == 0);
        // Four idle clients fill the cap; a fifth is served, and the one
        // idle the longest is closed to make room.
        let idle: Vec<UnixStream> = (0..4)
            .map(|i| {
                let s = UnixStream::connect(&sock).expect("connect");
                wait_until("the idle client registered", || table(true) == i + 1);
                s
            })
            .collect();
        let mut c = liblnetconfig::Client::connect(&sock).expect("connect");
        assert!(!c.hello().expect("served at the cap").configured);
        assert!(
            reply_of(&idle[0]).is_none(),
            "the longest-idle client is closed"
        );
        for s in &idle[1..] {
            s.set_nonblocking(true).expect("nonblocking");
            let mut b = [0u8; 1];
            let r = (&*s).read(&mut b);
            assert!(
                matches!(&r, Err(e) if e.kind() == io::ErrorKind::WouldBlock),
                "the others stay open: {r:?}"
            );
        }
        stop.stop();
        t.join().expect("server thread");
        let _ = std::fs::remove_dir_all(sock.parent().expect("dir"));
    }

    #[test]
    fn default_interface_is_the_first_up_non_loopback() {
        let sock = temp_socket("sysfs");
        let sys = sock.parent().expect("dir").join("net");
        for (name, idx, state, flags) in [
            ("lo", 1, "unknown", "0x9"),
            ("eth1", 3, "up", "0x1003"),
            ("eth0", 2, "down", "0x1002"),
            ("eth2", 4, "up", "0x1003"),
        ] {
            let d = sys.join(name);
            std::fs::create_dir_all(&d).expect("dir");
            std::fs::write(d.join("ifindex"), format!("{idx}\n")).expect("write");
            std::fs::write(d.join("operstate"), format!("{state}\n")).expect("write");
            std::fs::write(d.join("flags"), format!("{flags}\n")).expect("write");
        }
        assert_eq!(first_up_interface(&sys).expect("found"), "eth1");
        std::fs::write(sys.join("eth1/operstate"), "down\n").expect("write");
        std::fs::write(sys.join("eth2/operstate"), "down\n").expect("write");
        let e = first_up_interface(&sys).expect_err("none up");
        assert_eq!(e.errno(), ENETDOWN);
        let _ = std::fs::remove_dir_all(sock.parent().expect("dir"));
    }

    #[test]
    fn plugin_names_resolve_in_the_path() {
        let sock = temp_socket("plug");
        let dir = sock.parent().expect("dir").to_path_buf();
        std::fs::write(dir.join("liblnd_sock.so"), b"").expect("file");
        let got = resolve_plugin(std::slice::from_ref(&dir), "sock").expect("found");
        assert_eq!(got, dir.join("liblnd_sock.so"));
        assert_eq!(
            resolve_plugin(&[], "/abs/x.so").expect("path"),
            PathBuf::from("/abs/x.so")
        );
        let e = resolve_plugin(std::slice::from_ref(&dir), "nope").expect_err("missing");
        assert!(e.message.contains("libnope.so"), "{}", e.message);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
