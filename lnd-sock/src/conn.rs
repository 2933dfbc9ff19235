//! One established connection: its shared state ([`Conn`]), its transmit
//! queue, and the reader and writer tasks that move messages over any byte
//! stream (the socket seam, [`Seam`]).
//!
//! Ownership: a send is a [`TxGuard`] from `LndNi::send_span` until it is
//! completed; dropping a guard that was not completed finalizes the message
//! with an error, so every owned message is finalized exactly once even when
//! a task is cancelled. A guard is never dropped while one of our locks is
//! held (queues are drained into a local list first), because finalizing
//! calls the host. The same holds for receives ([`RxGuard`]).
//!
//! The reader follows `spec/wire.md` §5.8: header → `parse` → wait for `recv`
//! (which may come inside `parse`) → payload straight into the given
//! span's pieces → skip `rlen - mlen` → finalize → ZC ACK if asked.
//!
//! Payloads are [`PayloadSpan`]s (lnd-api 1.1): windows into the MD's
//! shared fragment list. A message keeps its span next to its `TxMsg` or
//! `RxAction` (whose own `payload` field is empty and unused), and the data
//! path walks the span's pieces, so a message allocates nothing for its
//! payload.

use std::cell::Cell;
use std::collections::{HashMap, VecDeque};
use std::ffi::c_long;
use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use lnd_api::hdr::{HDR_NID16_SIZE, HDR_NID4_SIZE, MAX_PAYLOAD};
use lnd_api::{
    errno, BufMut, BufRef, Completion, Hdr, HealthStatus, HostHandle, LogLevel, MsgToken,
    PayloadSpan, RxAction, RxToken, TxMsg,
};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::{watch, Notify};
use tokio::time::{timeout_at, Instant};

use crate::hello::{PeerHello, PeerId};
use crate::wire::{
    csum_update, ConnType, Endian, MsgHdr, MsgHdrRepr, MsgKind, ZcAcked, KSOCK_PROTO_V1,
    KSOCK_PROTO_V2, KSOCK_PROTO_V4, MSG_HDR_SIZE, ZC_COOKIE_KEEPALIVE,
};

/// `ESHUTDOWN`: the NI is shutting down.
pub const ESHUTDOWN: i32 = 108;

/// The socket seam: anything that splits into a reader and a writer.
/// `TcpStream` in production, an in-memory duplex in tests.
pub trait Seam: Send + 'static {
    /// The read half.
    type R: AsyncRead + ReadNow + Unpin + Send + 'static;
    /// The write half.
    type W: AsyncWrite + Unpin + Send + 'static;
    /// Splits the stream.
    fn split(self) -> (Self::R, Self::W);
    /// A second handle on the socket under `w` for non-blocking writes
    /// from any thread ([`Conn::enqueue`]'s direct path), if it has one.
    fn direct(_w: &Self::W) -> Option<std::net::TcpStream> {
        None
    }
}

impl Seam for tokio::net::TcpStream {
    type R = tokio::net::tcp::OwnedReadHalf;
    type W = tokio::net::tcp::OwnedWriteHalf;
    fn split(self) -> (Self::R, Self::W) {
        self.into_split()
    }
    fn direct(w: &Self::W) -> Option<std::net::TcpStream> {
        // The same open socket (shared O_NONBLOCK), a new descriptor.
        socket2::SockRef::from(w.as_ref())
            .try_clone()
            .ok()
            .map(Into::into)
    }
}

/// A read that does not wait: one non-blocking `recv` on the socket, past
/// the runtime's readiness bookkeeping (which only learns of new data when
/// it polls epoll). `WouldBlock` when nothing is there.
pub trait ReadNow {
    /// Reads what is there now, up to `buf.len()` bytes.
    fn read_now(&self, buf: &mut [u8]) -> io::Result<usize>;
    /// Asks the socket to report itself readable only once `bytes` are
    /// queued (`SO_RCVLOWAT`; 1 is the usual). `Unsupported` when the
    /// stream has no such option.
    fn set_lowat(&self, _bytes: usize) -> io::Result<()> {
        Err(io::ErrorKind::Unsupported.into())
    }
    /// Whether [`ReadNow::try_read_vectored`] and [`ReadNow::readable`]
    /// work (a socket); otherwise a payload is read piece by piece.
    const VECTORED: bool = false;
    /// One vectored read of what is there now, into `bufs` in order;
    /// `WouldBlock` (and the runtime's readiness cleared) when nothing is.
    fn try_read_vectored(&self, _bufs: &mut [io::IoSliceMut<'_>]) -> io::Result<usize> {
        Err(io::ErrorKind::Unsupported.into())
    }
    /// Waits until the stream is readable (past its low-water mark).
    fn readable(&self) -> impl std::future::Future<Output = io::Result<()>> + Send {
        std::future::ready(Err(io::ErrorKind::Unsupported.into()))
    }
    /// Whether a byte (or the end of the stream) is there to read now,
    /// asking the socket itself (not the runtime's readiness, which may be
    /// stale); `None` when the stream cannot tell.
    fn ready_now(&self) -> Option<bool> {
        None
    }
}

impl ReadNow for tokio::net::tcp::OwnedReadHalf {
    fn read_now(&self, buf: &mut [u8]) -> io::Result<usize> {
        use std::io::Read;
        let sock = socket2::SockRef::from(self.as_ref());
        (&*sock).read(buf)
    }
    fn set_lowat(&self, bytes: usize) -> io::Result<()> {
        use std::os::fd::AsFd;
        lnd_api::sock::set_rcvlowat(self.as_ref().as_fd(), bytes)
    }
    const VECTORED: bool = true;
    fn try_read_vectored(&self, bufs: &mut [io::IoSliceMut<'_>]) -> io::Result<usize> {
        tokio::net::tcp::OwnedReadHalf::try_read_vectored(self, bufs)
    }
    fn readable(&self) -> impl std::future::Future<Output = io::Result<()>> + Send {
        tokio::net::tcp::OwnedReadHalf::readable(self)
    }
    fn ready_now(&self) -> Option<bool> {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        use std::os::fd::AsFd;
        // `poll`, not a peeking `recv`: TCP answers it without the socket's
        // lock, which a peeking `recv` takes, and which the peer's delivery
        // into this socket (on the other CPU, over loopback) then waits for.
        let mut fds = [PollFd::new(self.as_ref().as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::ZERO) {
            Ok(0) => Some(false),
            // Data, the end of the stream or an error: for the read to see.
            Ok(_) => Some(true),
            Err(nix::errno::Errno::EINTR) => Some(false),
            Err(_) => Some(true),
        }
    }
}

impl<T> ReadNow for tokio::io::ReadHalf<T> {
    /// In-memory streams have no socket: always wait through the runtime.
    fn read_now(&self, _buf: &mut [u8]) -> io::Result<usize> {
        Err(io::ErrorKind::WouldBlock.into())
    }
}

impl Seam for tokio::io::DuplexStream {
    type R = tokio::io::ReadHalf<tokio::io::DuplexStream>;
    type W = tokio::io::WriteHalf<tokio::io::DuplexStream>;
    fn split(self) -> (Self::R, Self::W) {
        tokio::io::split(self)
    }
}

/// Locks a mutex, recovering from poisoning (a panic elsewhere must not
/// wedge the data path; the state stays consistent because no code path
/// panics between related updates).
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A send the LND owns: the message and its payload (`tx.payload` is not
/// used); finalizes the message with `LOCAL_INTERRUPT` if dropped without
/// [`TxGuard::complete`].
pub struct TxGuard {
    tx: Option<(TxMsg, PayloadSpan)>,
    host: HostHandle,
    /// The connection writing it, whose close reason a drop reports.
    conn: Option<Arc<Conn>>,
}

impl TxGuard {
    /// Takes ownership of `tx`, whose payload is `payload`.
    pub fn new(tx: TxMsg, payload: PayloadSpan, host: HostHandle) -> Self {
        TxGuard {
            tx: Some((tx, payload)),
            host,
            conn: None,
        }
    }
    /// Binds the guard to the connection now writing it.
    fn attach(&mut self, c: &Arc<Conn>) {
        self.conn = Some(c.clone());
    }
    /// The message and its payload.
    pub fn msg(&self) -> Option<(&TxMsg, &PayloadSpan)> {
        self.tx.as_ref().map(|(t, p)| (t, p))
    }
    /// Bytes on the wire for `hdr_len`-byte headers.
    pub fn wire_len(&self, hdr_len: usize) -> usize {
        MSG_HDR_SIZE + hdr_len + self.tx.as_ref().map_or(0, |(_, p)| p.len())
    }
    /// Takes the message back without finalizing it (a refused send).
    pub fn disarm(mut self) -> Option<(TxMsg, PayloadSpan)> {
        self.tx.take()
    }
    /// Finalizes with `c`.
    pub fn complete(mut self, c: Completion) {
        self.finalize(c);
    }
    /// Lets go of the payload, then finalizes (once) with `c`.
    fn finalize(&mut self, c: Completion) {
        if let Some((tx, payload)) = self.tx.take() {
            drop(payload);
            self.host.finalize(tx.token, c);
        }
    }
}

impl Drop for TxGuard {
    fn drop(&mut self) {
        if self.tx.is_some() {
            let status = self
                .conn
                .take()
                .and_then(|c| c.close_status())
                .unwrap_or(Completion::failed(ESHUTDOWN, HealthStatus::LOCAL_INTERRUPT));
            self.finalize(status);
        }
    }
}

/// A receive the LND owns (`recv` with a message): its token and where its
/// payload goes; finalizes with an error if dropped before it completes.
pub struct RxGuard {
    msg: Option<(MsgToken, PayloadSpan)>,
    host: HostHandle,
    /// The connection it arrived on, whose close reason a drop reports.
    conn: Option<Arc<Conn>>,
}

impl RxGuard {
    /// The payload's destination (`None` once completed).
    fn payload(&self) -> Option<&PayloadSpan> {
        self.msg.as_ref().map(|(_, p)| p)
    }
    fn complete(mut self, c: Completion) {
        self.finalize(c);
    }
    /// Lets go of the payload, then finalizes (once) with `c`.
    fn finalize(&mut self, c: Completion) {
        if let Some((m, payload)) = self.msg.take() {
            drop(payload);
            self.host.finalize(m, c);
        }
    }
}

impl Drop for RxGuard {
    fn drop(&mut self) {
        if self.msg.is_some() {
            let health = self
                .conn
                .take()
                .and_then(|c| c.close_status())
                .map_or(HealthStatus::LOCAL_INTERRUPT, |s| s.health);
            self.finalize(Completion::failed(errno::EIO, health));
        }
    }
}

/// Why a connection closed, and what its unfinished sends become.
#[derive(Clone, Debug)]
pub struct CloseReason {
    /// For the log.
    pub text: String,
    /// For the sends that were queued or in flight.
    pub status: Completion,
}

impl CloseReason {
    /// A reason with a status.
    pub fn new(text: impl Into<String>, errno: i32, health: HealthStatus) -> Self {
        CloseReason {
            text: text.into(),
            status: Completion::failed(errno, health),
        }
    }
    /// The NI is shutting down.
    pub fn shutdown() -> Self {
        Self::new("NI shutdown", ESHUTDOWN, HealthStatus::LOCAL_INTERRUPT)
    }
    /// From an I/O error on the socket. A connection the peer closed or
    /// reset is `REMOTE_DROPPED`, as ksocklnd classifies `-ECONNRESET`: the
    /// sends it still held never reached the peer NI, and LNet resends them
    /// to another NID of a Multi-Rail peer (a peer NI whose link went down
    /// closes its connections; their sends were lost as `REMOTE_ERROR`).
    pub fn io(what: &str, e: &io::Error) -> Self {
        let (no, h) = match e.kind() {
            io::ErrorKind::TimedOut => (errno::ETIMEDOUT, HealthStatus::NETWORK_TIMEOUT),
            io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset => {
                (errno::ECONNRESET, HealthStatus::REMOTE_DROPPED)
            }
            io::ErrorKind::ConnectionAborted | io::ErrorKind::BrokenPipe => {
                (errno::ECONNABORTED, HealthStatus::REMOTE_ERROR)
            }
            _ => (errno::EIO, HealthStatus::REMOTE_ERROR),
        };
        Self::new(format!("{what}: {e}"), no, h)
    }
    /// No progress within the socket timeout.
    pub fn timeout(what: &str, t: Duration) -> Self {
        Self::new(
            format!("{what}: no progress for {} s (sock_timeout)", t.as_secs()),
            errno::ETIMEDOUT,
            HealthStatus::NETWORK_TIMEOUT,
        )
    }
    /// The peer broke the protocol.
    pub fn proto(text: impl Into<String>) -> Self {
        Self::new(text, errno::EPROTO, HealthStatus::REMOTE_ERROR)
    }
}

/// The transmit side of a connection.
///
/// One writer at a time owns the socket's write side (`writing`): the
/// thread of a send that found the connection idle (the direct path of
/// [`Conn::enqueue`]) or the writer task. An owner takes the queued sends
/// in batches (up to [`BATCH_FRAMES`] frames and [`BATCH_BYTES`] bytes,
/// under one lock), writes each batch with vectored writes that cover
/// several frames at once, completes the frames each write finished
/// together, and only lets go with the lock held, after seeing the queue
/// empty; a send never overtakes a queued one because the direct path is
/// taken only when nothing is queued or half written.
#[derive(Default)]
struct TxQueue {
    /// LNET messages in order.
    items: VecDeque<TxGuard>,
    /// Their bytes on the wire (for "fewest queued bytes" selection).
    bytes: usize,
    /// Closed: push nothing more.
    closed: bool,
    /// Peer ZC requests to acknowledge (at most [`ACKS_MAX`]: the reader
    /// waits for room, see [`Conn::queue_ack`]).
    acks: VecDeque<u64>,
    /// Someone owns the write side (a direct sender or the writer task).
    writing: bool,
    /// Frames taken off `items` and not yet written whole, in order. The
    /// owner of the write side holds them while it writes; a direct sender
    /// whose socket filled up leaves them here for the writer task, which
    /// finishes them before anything else. Otherwise empty, keeping its
    /// room for the next owner (no allocation per batch).
    inflight: VecDeque<Frame>,
    /// A direct sender's socket failed: the writer task reports it.
    failed: Option<CloseReason>,
    /// The socket for direct writes (taken by the owner while it writes).
    sock: Option<std::net::TcpStream>,
}

/// Receive rendezvous between the reader and `LndNi::recv`.
#[derive(Default)]
struct RxSlot {
    /// The token the reader is waiting on, if any.
    expect: Option<u64>,
    /// The action `recv` delivered, and where its payload goes.
    action: Option<(RxAction, PayloadSpan)>,
}

/// A zero-copy request cookie of ours, from before its frame is written
/// until the peer acknowledges it (the ACK may beat the writer).
// Boxing the guard would allocate per message.
#[allow(clippy::large_enum_variant)]
enum ZcSlot {
    /// The frame is being written; the writer holds the send.
    Writing,
    /// Acknowledged while still being written.
    Acked,
    /// Written; waiting for the ACK since the instant given.
    Waiting(TxGuard, Instant),
}

/// Per-connection knobs taken from the NI's parameters.
#[derive(Clone, Copy, Debug)]
pub struct ConnCfg {
    /// `sock_timeout`.
    pub sock_timeout: Duration,
    /// `keepalive` (0 off).
    pub keepalive: Duration,
    /// Ask for ZC ACKs on payloads of at least this size (`None`: never).
    pub zc_min_payload: Option<usize>,
    /// `enable_csum`: checksum LNET messages on V2 connections.
    pub csum: bool,
    /// `rx_spin_us`: how long the reader polls for the rest of a payload
    /// in flight before it sleeps (see `read_spinning`).
    pub rx_spin: Duration,
    /// `rx_poll_us`: the most a reader polls for the next message before it
    /// sleeps (see [`IdlePoll`]).
    pub rx_poll: Duration,
    /// `rx_lowat`: a reader that sleeps for the rest of a large payload
    /// is woken once it is all there (or as much as the socket holds),
    /// not at every segment (see `read_spinning`).
    pub rx_lowat: bool,
}

/// One established connection (`ksock_conn`).
pub struct Conn {
    /// NI-unique id; the high half of receive tokens.
    pub id: u32,
    /// The peer (key of the peer table).
    pub peer: PeerId,
    /// Our type for this connection.
    pub ctype: ConnType,
    /// Protocol version.
    pub version: u32,
    /// The peer's byte order.
    pub endian: Endian,
    /// The peer's incarnation.
    pub incarnation: u64,
    /// A userspace peer: src NID/PID of its headers are overwritten.
    pub userspace: bool,
    /// Whether we connected (true) or accepted (false).
    pub active: bool,
    /// Socket addresses, when known.
    pub addrs: Option<(SocketAddr, SocketAddr)>,
    cfg: ConnCfg,
    host: HostHandle,
    q: Mutex<TxQueue>,
    wake: Notify,
    /// Signalled when the writer sent queued ZC ACKs.
    ack_room: Notify,
    rx: Mutex<RxSlot>,
    rx_wake: Notify,
    close_tx: watch::Sender<Option<CloseReason>>,
    /// Set with `close_tx` (read per send without its lock).
    closed: AtomicBool,
    /// Milliseconds since `origin` when bytes last arrived.
    last_rx_ms: AtomicU64,
    origin: Instant,
    zc_next: AtomicU64,
    zc_pending: Mutex<HashMap<u64, ZcSlot>>,
    zc_counts: ZcCounts,
}

/// Zero-copy traffic of one connection (`conn_list` prints it).
#[derive(Default)]
struct ZcCounts {
    /// Our LNET messages sent with a ZC request (a cookie of ours).
    requests: AtomicU64,
    /// Cookies of ours the peer acknowledged.
    acked: AtomicU64,
    /// Cookies of the peer's we acknowledged (piggy-backed or in a NOOP).
    acks_sent: AtomicU64,
    /// LNET frames written whole by the sending thread (the direct path).
    direct: AtomicU64,
    /// LNET frames written whole (by either writer).
    frames: AtomicU64,
    /// Vectored writes of LNET frames that moved bytes (several frames
    /// share one when sends queue behind each other).
    writes: AtomicU64,
    /// Socket reads that moved payload bytes of large messages (past the
    /// read buffer): one per wake-up with `rx_lowat`.
    payload_reads: AtomicU64,
}

/// [`Conn::zc_counts`]: zero-copy requests and ACKs on one connection.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ZcStats {
    /// Our messages sent with a ZC request.
    pub requests: u64,
    /// Our requests the peer acknowledged.
    pub acked: u64,
    /// The peer's requests we acknowledged.
    pub acks_sent: u64,
}

/// Room for the socklnd header and the larger LNet header.
const HEAD_MAX: usize = MSG_HDR_SIZE + HDR_NID16_SIZE;
/// Slices per vectored write (headers and payload pieces of several
/// frames; the kernel takes up to 1024): room for a frame of LNET_MTU in
/// 4 KiB pages (an MD's kiov: 257 slices) and the headers of a few more.
/// Each slice costs 64 bytes of the writer's stack.
const IOV_BATCH: usize = 272;
/// Slices of a write of small frames (see [`with_iov`]).
const IOV_SMALL: usize = 32;
/// Slices of a write of one small message (its head and a payload piece or
/// two): the arrays of a ping-sized write stay a few words long.
const IOV_TINY: usize = 4;
/// Frames an owner of the write side takes off the queue at once.
const BATCH_FRAMES: usize = 16;
/// An owner stops taking frames once the batch holds this many bytes (so
/// one large frame goes alone, small ones go many to a write).
const BATCH_BYTES: usize = 256 * 1024;
/// Bytes of the discard buffer.
const SCRATCH: usize = 16 * 1024;

/// The reader's buffer: holds a few dozen small messages.
const READ_BUF: usize = 16 * 1024;

/// After a frame whose payload is at least this size, the writer and the
/// reader yield to the other tasks of their worker, so replies and new
/// requests interleave with a queue of bulk transfers instead of waiting
/// behind all of them (which lets the pipeline run dry between bursts).
/// The reader also writes what it corked before it yields. Not after a
/// 64 KiB payload: reading one takes a few µs, and the yield and the write
/// cost a TCP segment and a poll of the runtime's I/O driver each time
/// (`brw write` of 64 KiB over a veth pair: 6.2–6.4 segments per RPC with
/// a 64 KiB threshold, 5.1–5.9 with this one, 7.7 % more MiB/s; see
/// bench/README, twelfth session).
const YIELD_AFTER: usize = 256 * 1024;
/// Initial room of a connection's send and ACK queues.
const TX_QUEUE_INITIAL: usize = 64;
/// Bound of a connection's queue of ZC ACKs to send: a reader with an ACK
/// to queue past it waits until the writer sends some (back-pressure on a
/// peer that asks for ACKs faster than it reads them).
pub const ACKS_MAX: usize = 256;
/// Keepalive NOOPs are not repeated faster than this.
const KEEPALIVE_REPEAT: Duration = Duration::from_secs(10);

impl Conn {
    /// A connection from a finished handshake.
    pub fn new(
        id: u32,
        p: &PeerHello,
        active: bool,
        addrs: Option<(SocketAddr, SocketAddr)>,
        cfg: ConnCfg,
        host: HostHandle,
    ) -> Arc<Conn> {
        let (close_tx, _) = watch::channel(None);
        let now = Instant::now();
        Arc::new(Conn {
            id,
            peer: p.peer,
            ctype: p.ctype,
            version: p.version,
            endian: p.endian,
            incarnation: p.incarnation,
            userspace: p.userspace,
            active,
            addrs,
            cfg,
            host,
            // Sized up front: with the direct path the queue may first be
            // used long after start-up, and growing it then would allocate
            // in the data path.
            q: Mutex::new(TxQueue {
                items: VecDeque::with_capacity(TX_QUEUE_INITIAL),
                acks: VecDeque::with_capacity(TX_QUEUE_INITIAL),
                inflight: VecDeque::with_capacity(BATCH_FRAMES),
                ..TxQueue::default()
            }),
            wake: Notify::new(),
            ack_room: Notify::new(),
            rx: Mutex::new(RxSlot::default()),
            rx_wake: Notify::new(),
            close_tx,
            closed: AtomicBool::new(false),
            last_rx_ms: AtomicU64::new(0),
            origin: now,
            zc_next: AtomicU64::new(2),
            zc_pending: Mutex::new(HashMap::new()),
            zc_counts: ZcCounts::default(),
        })
    }

    /// Size of the LNet header on this connection.
    pub fn hdr_len(&self) -> usize {
        if self.version == KSOCK_PROTO_V4 {
            HDR_NID16_SIZE
        } else {
            HDR_NID4_SIZE
        }
    }

    /// Zero-copy requests and ACKs so far.
    pub fn zc_counts(&self) -> ZcStats {
        let c = &self.zc_counts;
        ZcStats {
            requests: c.requests.load(Ordering::Relaxed),
            acked: c.acked.load(Ordering::Relaxed),
            acks_sent: c.acks_sent.load(Ordering::Relaxed),
        }
    }

    /// LNET frames written whole on the sending thread (the direct path of
    /// [`Conn::enqueue`]), not by the writer task.
    pub fn direct_frames(&self) -> u64 {
        self.zc_counts.direct.load(Ordering::Relaxed)
    }

    /// LNET frames written whole, and the vectored writes that carried
    /// them (fewer writes than frames: sends queued behind each other were
    /// coalesced).
    pub fn tx_writes(&self) -> (u64, u64) {
        let c = &self.zc_counts;
        (
            c.frames.load(Ordering::Relaxed),
            c.writes.load(Ordering::Relaxed),
        )
    }

    /// Socket reads that brought payload bytes straight into receive
    /// buffers (what came with a header in the read buffer is not counted).
    pub fn payload_reads(&self) -> u64 {
        self.zc_counts.payload_reads.load(Ordering::Relaxed)
    }

    /// Bytes queued for transmission.
    pub fn queued_bytes(&self) -> usize {
        lock(&self.q).bytes
    }

    /// Whether the connection was closed.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Seconds since bytes last arrived.
    pub fn idle(&self) -> Duration {
        let now = self.origin.elapsed().as_millis() as u64;
        Duration::from_millis(now.saturating_sub(self.last_rx_ms.load(Ordering::Relaxed)))
    }

    fn touch(&self) {
        self.touch_at(Instant::now());
    }

    /// [`Conn::touch`] with a time the caller already read (one clock read
    /// per received message).
    fn touch_at(&self, now: Instant) {
        self.last_rx_ms.store(
            now.saturating_duration_since(self.origin).as_millis() as u64,
            Ordering::Relaxed,
        );
    }

    /// Queues a send; gives it back when the connection is closed.
    ///
    /// When nobody is writing and nothing is queued, the frame is written
    /// here, on the calling thread, with non-blocking vectored writes (the
    /// direct path: no other thread or task is woken); what the socket does
    /// not take at once, and whatever was queued behind it meanwhile, is
    /// left to the writer task.
    ///
    /// The direct path finalizes the send (a host callback) on this thread:
    /// never call this with a lock of ours held; [`Conn::enqueue_queued`]
    /// is for that.
    // Giving the guard back by value is the point (boxing would allocate per message).
    #[allow(clippy::result_large_err)]
    pub fn enqueue(&self, g: TxGuard) -> Result<(), TxGuard> {
        self.enqueue_inner(g, true)
    }

    /// Queues a send for the writer task only (no direct write, no host
    /// callback): safe with locks held. Gives it back when closed.
    #[allow(clippy::result_large_err)]
    pub fn enqueue_queued(&self, g: TxGuard) -> Result<(), TxGuard> {
        self.enqueue_inner(g, false)
    }

    #[allow(clippy::result_large_err)]
    fn enqueue_inner(&self, g: TxGuard, may_write: bool) -> Result<(), TxGuard> {
        // This connection's reader, on this thread, still holds complete
        // messages: the send waits for the others their handling makes, and
        // they go out together when it drains its buffer ([`Conn::uncork`]).
        let corked = may_write && is_corked(self);
        let (sock, batch, ack) = {
            let mut q = lock(&self.q);
            if q.closed {
                return Err(g);
            }
            // A batch's worth is written at once (the queue keeps its room).
            let corked = corked && q.items.len() + 1 < BATCH_FRAMES;
            let direct = may_write
                && !corked
                && !q.writing
                && q.inflight.is_empty()
                && q.failed.is_none()
                && q.sock.is_some();
            if direct && !q.items.is_empty() {
                // Sends queued with nobody writing them (corked by this
                // thread's reader, or the writer task not yet running): this
                // one goes behind them and the caller writes them all, in
                // order, rather than waking the writer task.
                q.bytes += g.wire_len(self.hdr_len());
                q.items.push_back(g);
                q.writing = true;
                let sock = q.sock.take();
                let batch = std::mem::take(&mut q.inflight);
                drop(q);
                if let Some(sock) = sock {
                    self.write_direct(sock, batch, None);
                }
                return Ok(());
            }
            if !direct {
                q.bytes += g.wire_len(self.hdr_len());
                q.items.push_back(g);
                let idle = !q.writing;
                drop(q);
                if idle && !corked {
                    self.wake.notify_one();
                }
                return Ok(());
            }
            q.writing = true;
            let ack = self.pop_ack(&mut q);
            (q.sock.take(), std::mem::take(&mut q.inflight), ack)
        };
        if let Some(sock) = sock {
            self.write_direct(sock, batch, Some((g, ack)));
        }
        Ok(())
    }

    /// Writes what this connection's reader left queued while it was
    /// corked: on this thread, with the direct path's vectored writes, when
    /// nobody else owns the write side (an owner writes the queue before it
    /// lets go); to the writer task when the direct path cannot be taken.
    fn uncork(&self) {
        let (sock, batch) = {
            let mut q = lock(&self.q);
            if q.closed || q.writing || q.items.is_empty() {
                return;
            }
            let sock = match q.sock.take() {
                Some(s) if q.inflight.is_empty() && q.failed.is_none() => s,
                other => {
                    q.sock = other;
                    drop(q);
                    self.wake.notify_one();
                    return;
                }
            };
            q.writing = true;
            (sock, std::mem::take(&mut q.inflight))
        };
        self.write_direct(sock, batch, None);
    }

    /// The peer's ZC cookie the next LNET frame acknowledges (0: none).
    fn pop_ack(&self, q: &mut TxQueue) -> u64 {
        if self.version == KSOCK_PROTO_V1 {
            0
        } else {
            q.acks.pop_front().unwrap_or(0)
        }
    }

    /// Moves the next sends of the queue into `staged` (the owner of the
    /// write side calls it, lock held): up to [`BATCH_FRAMES`] frames with
    /// those of `batch`, stopping once they hold [`BATCH_BYTES`].
    fn take_batch(&self, q: &mut TxQueue, staged: &mut Staged, batch: &VecDeque<Frame>) {
        let hlen = self.hdr_len();
        let mut bytes: usize = batch.iter().map(|f| f.total() - f.done).sum();
        while staged.len() + batch.len() < BATCH_FRAMES && bytes < BATCH_BYTES {
            let Some(g) = q.items.pop_front() else { break };
            let n = g.wire_len(hlen);
            q.bytes = q.bytes.saturating_sub(n);
            bytes += n;
            let ack = self.pop_ack(q);
            staged.push(g, ack);
        }
    }

    /// The direct path: writes `first` (the caller's own send, and the
    /// peer's ZC cookie it acknowledges) or, without one (uncorking), the
    /// queue's first batch; then what was queued behind it, batch by batch, on this
    /// thread until the queue is empty or the socket is full; then lets go
    /// of the write side (to the writer task when work is left). `batch` is
    /// the connection's (empty) in-flight list, whose room it reuses.
    fn write_direct(
        &self,
        sock: std::net::TcpStream,
        mut batch: VecDeque<Frame>,
        first: Option<(TxGuard, u64)>,
    ) {
        let mut staged: Option<Staged> = None;
        match first {
            Some((g, ack)) => {
                if let Some(f) = prepare_frame(self, g, ack) {
                    batch.push_back(f);
                }
            }
            None => {
                // Uncorking: the queue's first batch.
                let mut q = lock(&self.q);
                let st = staged.get_or_insert_with(Staged::default);
                self.take_batch(&mut q, st, &batch);
            }
        }
        loop {
            if let Some(st) = staged.as_mut() {
                st.prepare_into(self, &mut batch, None);
            }
            match write_now(self, &sock, &mut batch) {
                Ok(true) => {}
                Ok(false) => return self.let_go(sock, batch, None),
                Err(why) => return self.let_go(sock, batch, Some(why)),
            }
            let mut q = lock(&self.q);
            if !q.closed && !q.items.is_empty() {
                // Others queued behind: their sends go out in batches.
                let st = staged.get_or_insert_with(Staged::default);
                self.take_batch(&mut q, st, &batch);
                continue;
            }
            drop(q);
            return self.let_go(sock, batch, None);
        }
    }

    /// A direct sender lets go of the write side and the socket, with the
    /// lock held, so nothing queued is left behind unannounced: frames the
    /// socket did not take (and `failed`, the socket's error) go to the
    /// writer task, which is woken when it has work.
    fn let_go(
        &self,
        sock: std::net::TcpStream,
        mut batch: VecDeque<Frame>,
        failed: Option<CloseReason>,
    ) {
        let mut q = lock(&self.q);
        q.writing = false;
        if q.closed {
            drop(q);
            let _ = sock.shutdown(std::net::Shutdown::Both);
            let why = self.closed_reason();
            for f in batch.drain(..) {
                finish_frame(self, f, Err(FrameError::Closed(why.clone())));
            }
            return;
        }
        let wake = !batch.is_empty()
            || failed.is_some()
            || !q.items.is_empty()
            || (!q.acks.is_empty() && self.version != KSOCK_PROTO_V1);
        if let Some(why) = failed {
            q.failed.get_or_insert(why);
        }
        q.sock = Some(sock);
        q.inflight = batch;
        drop(q);
        if wake {
            self.wake.notify_one();
        }
    }

    /// The close reason, or a shutdown.
    fn closed_reason(&self) -> CloseReason {
        self.close_reason().unwrap_or_else(CloseReason::shutdown)
    }

    /// Queues a ZC ACK for the writer; waits while [`ACKS_MAX`] are queued
    /// (the reader stops reading, so a peer asking for ACKs it does not read
    /// is held back by TCP instead of growing our queue).
    async fn queue_ack(&self, cookie: u64) {
        loop {
            {
                let mut q = lock(&self.q);
                if q.closed {
                    return;
                }
                if q.acks.len() < ACKS_MAX {
                    q.acks.push_back(cookie);
                    let idle = !q.writing;
                    drop(q);
                    if idle {
                        self.wake.notify_one();
                    }
                    return;
                }
            }
            self.wake.notify_one();
            // The writer signals `ack_room` as it sends ACKs.
            let _ = timeout_at(
                Instant::now() + Duration::from_millis(100),
                self.ack_room.notified(),
            )
            .await;
        }
    }

    /// ZC ACKs queued to send.
    pub fn queued_acks(&self) -> usize {
        lock(&self.q).acks.len()
    }

    /// Closes the connection: no more sends are taken; queued and
    /// unacknowledged sends fail with `why.status`; the tasks stop. Returns
    /// false when it was already closed.
    pub fn close(&self, why: CloseReason) -> bool {
        let mut first = false;
        self.close_tx.send_if_modified(|v| {
            if v.is_none() {
                *v = Some(why.clone());
                self.closed.store(true, Ordering::Release);
                first = true;
                true
            } else {
                false
            }
        });
        if !first {
            return false;
        }
        let (drained, inflight): (Vec<TxGuard>, Vec<TxGuard>) = {
            let mut q = lock(&self.q);
            q.closed = true;
            q.bytes = 0;
            q.acks.clear();
            if let Some(s) = q.sock.take() {
                let _ = s.shutdown(std::net::Shutdown::Both);
            }
            (
                q.items.drain(..).collect(),
                q.inflight.drain(..).map(|f| f.g).collect(),
            )
        };
        let zc: Vec<TxGuard> = lock(&self.zc_pending)
            .drain()
            .filter_map(|(_, slot)| match slot {
                ZcSlot::Waiting(g, _) => Some(g),
                ZcSlot::Writing | ZcSlot::Acked => None,
            })
            .collect();
        let rx = {
            let mut s = lock(&self.rx);
            s.expect = None;
            s.action.take()
        };
        self.wake.notify_one();
        self.rx_wake.notify_one();
        self.ack_room.notify_waiters();
        // Finalize outside every lock.
        for g in inflight.into_iter().chain(drained).chain(zc) {
            g.complete(why.status);
        }
        if let Some((a, payload)) = rx {
            drop(payload);
            if let Some(m) = a.msg.into_option() {
                self.host
                    .finalize(m, Completion::failed(errno::EIO, why.status.health));
            }
        }
        true
    }

    /// The status unfinished sends get, once closed.
    pub fn close_status(&self) -> Option<Completion> {
        self.close_tx.borrow().as_ref().map(|r| r.status)
    }

    /// The close reason, once closed.
    pub fn close_reason(&self) -> Option<CloseReason> {
        self.close_tx.borrow().clone()
    }

    async fn closed(&self) {
        let mut rx = self.close_tx.subscribe();
        let _ = rx.wait_for(|v| v.is_some()).await;
    }

    /// `LndNi::recv_span` for a token of this connection: the first
    /// `payload.len()` bytes (mlen) go into `payload` (`a.payload` is not
    /// used). Gives the action back when the token is not awaiting it.
    pub fn deliver(&self, seq: u64, a: RxAction, payload: PayloadSpan) -> Result<(), RxAction> {
        {
            let mut s = lock(&self.rx);
            if s.expect != Some(seq) || s.action.is_some() {
                return Err(a);
            }
            s.action = Some((a, payload));
        }
        self.rx_wake.notify_one();
        Ok(())
    }

    fn next_zc_cookie(&self) -> u64 {
        loop {
            let c = self.zc_next.fetch_add(1, Ordering::Relaxed);
            if c > ZC_COOKIE_KEEPALIVE {
                return c;
            }
        }
    }

    /// Completes the sends acknowledged by `ack`; false on an unknown cookie.
    fn handle_zc_ack(&self, ack: ZcAcked) -> bool {
        let cookies = match ack {
            ZcAcked::None | ZcAcked::Keepalive => return true,
            ZcAcked::One(c) => [c, 0],
            ZcAcked::Pair(a, b) => [a, b],
            ZcAcked::Range(a, b) => return self.ack_range(a, b),
        };
        // At most two sends complete: no list to allocate.
        let mut done: [Option<TxGuard>; 2] = [None, None];
        let mut known = 0;
        let ok = {
            let mut p = lock(&self.zc_pending);
            cookies
                .iter()
                .zip(&mut done)
                .filter(|(c, _)| **c != 0)
                .fold(true, |ok, (c, d)| {
                    let k = Self::ack_one(&mut p, *c, d);
                    known += u64::from(k);
                    k & ok
                })
        };
        self.zc_counts.acked.fetch_add(known, Ordering::Relaxed);
        for g in done.into_iter().flatten() {
            g.complete(Completion::OK);
        }
        ok
    }

    /// Completes the sends whose cookies lie in `a..=b`; false when none
    /// does. Walks our (few) outstanding cookies, not the range a peer chose.
    fn ack_range(&self, a: u64, b: u64) -> bool {
        let mut done: Vec<TxGuard> = Vec::new();
        let mut any = false;
        lock(&self.zc_pending).retain(|c, slot| {
            if !(a..=b).contains(c) {
                return true;
            }
            any = true;
            self.zc_counts.acked.fetch_add(1, Ordering::Relaxed);
            match std::mem::replace(slot, ZcSlot::Acked) {
                ZcSlot::Waiting(g, _) => {
                    done.push(g);
                    false
                }
                // Acknowledged while still being written: stays, as Acked.
                ZcSlot::Writing | ZcSlot::Acked => true,
            }
        });
        for g in done {
            g.complete(Completion::OK);
        }
        any
    }

    /// Marks one cookie acknowledged, putting a send it completes in
    /// `done`; false when the cookie is not ours.
    fn ack_one(p: &mut HashMap<u64, ZcSlot>, c: u64, done: &mut Option<TxGuard>) -> bool {
        match p.remove(&c) {
            Some(ZcSlot::Waiting(g, _)) => {
                *done = Some(g);
                true
            }
            Some(ZcSlot::Writing) | Some(ZcSlot::Acked) => {
                p.insert(c, ZcSlot::Acked);
                true
            }
            None => false,
        }
    }
}

/// What the reader and writer tell their NI.
pub trait ConnOwner: Send + Sync + 'static {
    /// Hands a received header to LNet (`parse`); `Err` closes.
    fn parse(&self, conn: &Arc<Conn>, hdr: Hdr, rx: RxToken) -> Result<(), String>;
    /// The connection must close (a task saw an error); removes it.
    fn conn_failed(&self, conn: &Arc<Conn>, why: CloseReason);
    /// A task of the connection ended.
    fn task_done(&self);
    /// Logs.
    fn log(&self, level: LogLevel, msg: &str);
}

/// Starts the reader and writer of `conn` on the current runtime.
pub fn start<S: Seam, O: ConnOwner>(conn: Arc<Conn>, s: S, owner: Arc<O>) {
    let (r, w) = s.split();
    if let Some(sock) = S::direct(&w) {
        let mut q = lock(&conn.q);
        if !q.closed {
            q.sock = Some(sock);
        }
    }
    let (c1, o1) = (conn.clone(), owner.clone());
    tokio::spawn(async move {
        let why = unless_closed(&c1, read_loop(&c1, &o1, r)).await;
        if let Some(why) = why {
            // What the reader corked before it failed (replies to messages
            // it handled whole) goes out before the close, as it would have.
            c1.uncork();
            o1.conn_failed(&c1, why);
        }
        o1.task_done();
    });
    tokio::spawn(async move {
        let why = unless_closed(&conn, write_loop(&conn, w)).await;
        if let Some(why) = why {
            owner.conn_failed(&conn, why);
        }
        owner.task_done();
    });
}

/// Runs `task` (a connection's reader or writer) until it ends or the
/// connection closes (then `None`), whichever comes first: a close is seen
/// before the task is polled again.
///
/// The close is watched through a waker of its own: its future is polled
/// only when that waker fired (or the task's waker changed), not each time
/// the task wakes for its socket. `tokio::select!` polled both on every
/// wake-up, one message each at low rates: about 300 instructions per
/// message for a watch that fires once per connection (issue 17).
async fn unless_closed<F>(conn: &Conn, task: F) -> Option<CloseReason>
where
    F: std::future::Future<Output = Option<CloseReason>>,
{
    use std::future::Future;
    use std::task::{Context, Poll, Waker};
    let gate = Arc::new(CloseGate {
        fired: AtomicBool::new(true),
        task: Mutex::new(None),
    });
    let gate_waker = Waker::from(Arc::clone(&gate));
    let mut task_waker: Option<Waker> = None;
    let mut closed = std::pin::pin!(conn.closed());
    let mut task = std::pin::pin!(task);
    std::future::poll_fn(move |cx| {
        if !task_waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            *lock(&gate.task) = Some(cx.waker().clone());
            task_waker = Some(cx.waker().clone());
            gate.fired.store(true, Ordering::Relaxed);
        }
        // Cleared before the poll: a close during it fires the gate again.
        if gate.fired.swap(false, Ordering::AcqRel)
            && closed
                .as_mut()
                .poll(&mut Context::from_waker(&gate_waker))
                .is_ready()
        {
            return Poll::Ready(None);
        }
        task.as_mut().poll(cx)
    })
    .await
}

/// The waker of [`unless_closed`]'s close watch: notes that it fired and
/// wakes the task.
struct CloseGate {
    fired: AtomicBool,
    task: Mutex<Option<std::task::Waker>>,
}

impl std::task::Wake for CloseGate {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.fired.store(true, Ordering::Release);
        if let Some(w) = lock(&self.task).as_ref() {
            w.wake_by_ref();
        }
    }
}

// ---------------------------------------------------------------------------
// Writer
// ---------------------------------------------------------------------------

/// An LNET frame being written: the send, its socklnd and LNet headers,
/// and how much of it went out (a direct sender may leave the rest to the
/// writer task; a write that ends inside it leaves the rest to the next).
struct Frame {
    g: TxGuard,
    head: [u8; HEAD_MAX],
    head_len: usize,
    /// Bytes of head and payload written so far.
    done: usize,
    /// Our ZC cookie (0: none).
    zc: u64,
    /// The peer's cookie acknowledged in the header (0: none).
    ack: u64,
}

impl Frame {
    fn total(&self) -> usize {
        self.head_len + self.g.msg().map_or(0, |(_, p)| p.len())
    }
}

/// Builds the frame of `g` (headers, checksum, ZC cookie); completes `g`
/// with an error and returns `None` when it cannot be sent.
fn prepare_frame(conn: &Conn, g: TxGuard, ack: u64) -> Option<Frame> {
    let v1 = conn.version == KSOCK_PROTO_V1;
    let (tx, payload) = g.msg()?;
    let zc = match conn.cfg.zc_min_payload {
        Some(min) if !v1 && payload.len() >= min => conn.next_zc_cookie(),
        _ => 0,
    };
    let mut head = [0u8; HEAD_MAX];
    let n = match frame_head(conn, tx, zc, ack, &mut head) {
        Ok(n) if conn.cfg.csum && conn.version == KSOCK_PROTO_V2 => {
            match v2_csum(&head[..n], payload) {
                Some(c) => {
                    Endian::Little.put_csum(&mut head, c);
                    n
                }
                None => {
                    g.complete(Completion::failed(errno::EBUSY, HealthStatus::LOCAL_ERROR));
                    return None;
                }
            }
        }
        Ok(n) => n,
        Err(e) => {
            conn.host.log(
                LogLevel::ERROR,
                &format!("cannot send to {}: {e}", conn.peer),
            );
            g.complete(Completion::failed(errno::EINVAL, HealthStatus::LOCAL_ERROR));
            return None;
        }
    };
    if zc != 0 {
        // Before the frame goes out: the ACK may come back before the
        // writer looks again.
        lock(&conn.zc_pending).insert(zc, ZcSlot::Writing);
    }
    Some(Frame {
        g,
        head,
        head_len: n,
        done: 0,
        zc,
        ack,
    })
}

/// Sends taken off the queue under one lock, waiting to become frames
/// outside it (preparing one may complete it: a host call).
struct Staged {
    items: [Option<(TxGuard, u64)>; BATCH_FRAMES],
    n: usize,
}

impl Default for Staged {
    fn default() -> Self {
        Staged {
            items: std::array::from_fn(|_| None),
            n: 0,
        }
    }
}

impl Staged {
    fn len(&self) -> usize {
        self.n
    }
    /// Adds a send and the cookie its frame acknowledges (room is checked
    /// by the caller: at most [`BATCH_FRAMES`]).
    fn push(&mut self, g: TxGuard, ack: u64) {
        self.items[self.n] = Some((g, ack));
        self.n += 1;
    }
    /// Builds the frames, in order, at the end of `batch`; binds them to
    /// `attach` (the writer task's connection) when given.
    fn prepare_into(
        &mut self,
        conn: &Conn,
        batch: &mut VecDeque<Frame>,
        attach: Option<&Arc<Conn>>,
    ) {
        let mut acks = false;
        for slot in &mut self.items[..self.n] {
            let Some((mut g, ack)) = slot.take() else {
                continue;
            };
            acks |= ack != 0;
            if let Some(c) = attach {
                g.attach(c);
            }
            if let Some(f) = prepare_frame(conn, g, ack) {
                batch.push_back(f);
            }
        }
        self.n = 0;
        if acks {
            // The reader may be waiting for room in the ACK queue.
            conn.ack_room.notify_one();
        }
    }
}

/// What one slice of a vectored write covers.
#[derive(Clone, Copy)]
enum Seg {
    /// The unwritten rest of frame `i`'s headers.
    Head(usize),
    /// Borrowed payload piece `g`, from byte `skip` of it.
    Piece(usize, usize),
}

/// Calls `w` with the unwritten part of `batch` as slices: for each frame
/// in order, its headers' rest and its payload pieces borrowed straight
/// from the MD, up to [`IOV_BATCH`] slices. A frame whose memory cannot be
/// borrowed ends the list before it; when it is the first, that is the
/// error.
fn with_iov<R>(
    batch: &VecDeque<Frame>,
    w: impl FnOnce(&[IoSlice<'_>]) -> R,
) -> Result<R, FrameError> {
    // Small frames need few slices: the arrays on the stack are sized to
    // what this write can use (filling 272 empty slots would cost more
    // than the write of a small message does).
    let mut need = 0;
    for f in batch {
        need += 1 + f.g.msg().map_or(0, |(_, p)| p.pieces().count());
        if need > IOV_SMALL {
            return with_iov_n::<IOV_BATCH, R>(batch, w);
        }
    }
    if need <= IOV_TINY {
        return with_iov_n::<IOV_TINY, R>(batch, w);
    }
    with_iov_n::<IOV_SMALL, R>(batch, w)
}

/// [`with_iov`] with up to `N` slices.
fn with_iov_n<const N: usize, R>(
    batch: &VecDeque<Frame>,
    w: impl FnOnce(&[IoSlice<'_>]) -> R,
) -> Result<R, FrameError> {
    let mut guards: [Option<BufRef<'_>>; N] = std::array::from_fn(|_| None);
    let mut segs = [Seg::Head(0); N];
    let (mut n, mut ng) = (0, 0);
    'frames: for (i, f) in batch.iter().enumerate() {
        let Some((_, payload)) = f.g.msg() else {
            // Not reached: a frame keeps its send until it is finished.
            if i == 0 {
                return Err(FrameError::Busy);
            }
            break;
        };
        let (n0, ng0) = (n, ng);
        if f.done < f.head_len {
            if n == N {
                break;
            }
            segs[n] = Seg::Head(i);
            n += 1;
        }
        let mut skip = f.done.saturating_sub(f.head_len);
        for p in payload.pieces() {
            if n == N {
                break 'frames;
            }
            if skip >= p.len() {
                skip -= p.len();
                continue;
            }
            match p.borrow() {
                Ok(g) => guards[ng] = Some(g),
                Err(_) if i == 0 => {
                    return Err(if f.done > 0 {
                        FrameError::BusyAfterStart
                    } else {
                        FrameError::Busy
                    })
                }
                Err(_) => {
                    // Written once the frames before it are out.
                    for g in &mut guards[ng0..ng] {
                        *g = None;
                    }
                    n = n0;
                    break 'frames;
                }
            }
            segs[n] = Seg::Piece(ng, skip);
            skip = 0;
            ng += 1;
            n += 1;
        }
    }
    let mut iov: [IoSlice<'_>; N] = [IoSlice::new(&[]); N];
    for (slot, seg) in iov.iter_mut().zip(&segs[..n]) {
        *slot = match *seg {
            Seg::Head(i) => {
                let f = &batch[i];
                IoSlice::new(&f.head[f.done..f.head_len])
            }
            Seg::Piece(g, skip) => match &guards[g] {
                Some(b) => {
                    let b: &[u8] = b;
                    IoSlice::new(&b[skip..])
                }
                None => IoSlice::new(&[]),
            },
        };
    }
    Ok(w(&iov[..n]))
}

/// Counts `k` bytes written against the frames of `batch`, in order.
fn advance(batch: &mut VecDeque<Frame>, mut k: usize) {
    for f in batch.iter_mut() {
        if k == 0 {
            break;
        }
        let step = k.min(f.total() - f.done);
        f.done += step;
        k -= step;
    }
}

/// Completes the frames at the front of `batch` that are written whole
/// (everything one write finished, reported together, no lock held).
fn finish_written(conn: &Conn, batch: &mut VecDeque<Frame>, direct: bool) {
    let n = batch.iter().take_while(|f| f.done == f.total()).count();
    // Counted before the completions, which a caller may be waiting for.
    let c = &conn.zc_counts;
    c.frames.fetch_add(n as u64, Ordering::Relaxed);
    if direct {
        c.direct.fetch_add(n as u64, Ordering::Relaxed);
    }
    for f in batch.drain(..n) {
        finish_frame(conn, f, Ok(()));
    }
}

/// Writes as much of `batch` as the socket takes now (non-blocking),
/// completing each frame once written; true when all of it went out,
/// false when the socket is full. A frame whose memory is busy fails
/// alone; the reason to close the connection is the error.
fn write_now(
    conn: &Conn,
    sock: &std::net::TcpStream,
    batch: &mut VecDeque<Frame>,
) -> Result<bool, CloseReason> {
    use std::io::Write;
    while !batch.is_empty() {
        match with_iov(batch, |iov| (&*sock).write_vectored(iov)) {
            Ok(Ok(0)) => {
                return Err(CloseReason::io(
                    "write",
                    &io::Error::from(io::ErrorKind::WriteZero),
                ))
            }
            Ok(Ok(k)) => {
                conn.zc_counts.writes.fetch_add(1, Ordering::Relaxed);
                advance(batch, k);
                finish_written(conn, batch, true);
            }
            Ok(Err(e)) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
            Ok(Err(e)) => return Err(CloseReason::io("write", &e)),
            Err(e) => fail_first(conn, batch, e)?,
        }
    }
    Ok(true)
}

/// The first frame of `batch` could not be written ([`with_iov`]'s error):
/// completes it; the reason to close, if the stream is now out of step.
fn fail_first(conn: &Conn, batch: &mut VecDeque<Frame>, e: FrameError) -> Result<(), CloseReason> {
    match batch.pop_front() {
        Some(f) => finish_frame(conn, f, Err(e)).map_or(Ok(()), Err),
        None => Ok(()),
    }
}

/// Writes `batch` through the writer task's stream, each write making
/// progress within `t`, completing each frame once written. On an error
/// the unwritten frames stay in `batch`.
async fn write_batch<W: AsyncWrite + Unpin>(
    conn: &Conn,
    w: &mut W,
    batch: &mut VecDeque<Frame>,
    t: Duration,
) -> Result<(), CloseReason> {
    while !batch.is_empty() {
        let fut = std::future::poll_fn(|cx| {
            match with_iov(batch, |iov| {
                std::pin::Pin::new(&mut *w).poll_write_vectored(cx, iov)
            }) {
                Err(e) => std::task::Poll::Ready(Err(e)),
                Ok(std::task::Poll::Pending) => std::task::Poll::Pending,
                Ok(std::task::Poll::Ready(r)) => std::task::Poll::Ready(Ok(r)),
            }
        });
        match tokio::time::timeout(t, fut).await {
            Ok(Ok(Ok(0))) => {
                return Err(CloseReason::io(
                    "write",
                    &io::Error::from(io::ErrorKind::WriteZero),
                ))
            }
            Ok(Ok(Ok(k))) => {
                conn.zc_counts.writes.fetch_add(1, Ordering::Relaxed);
                advance(batch, k);
                finish_written(conn, batch, false);
            }
            Ok(Ok(Err(e))) if e.kind() == io::ErrorKind::Interrupted => {}
            Ok(Ok(Err(e))) => return Err(CloseReason::io("write", &e)),
            Ok(Err(e)) => fail_first(conn, batch, e)?,
            Err(_) => return Err(CloseReason::timeout("write", t)),
        }
    }
    Ok(())
}

/// After a frame was written (or failed): counts, ZC bookkeeping and the
/// send's completion; the reason to close the connection, if any.
fn finish_frame(conn: &Conn, f: Frame, r: Result<(), FrameError>) -> Option<CloseReason> {
    let Frame { g, zc, ack, .. } = f;
    if r.is_ok() {
        let c = &conn.zc_counts;
        c.acks_sent
            .fetch_add(u64::from(ack != 0), Ordering::Relaxed);
        c.requests.fetch_add(u64::from(zc != 0), Ordering::Relaxed);
    }
    if zc != 0 && r.is_err() {
        lock(&conn.zc_pending).remove(&zc);
    }
    match r {
        Ok(()) if zc != 0 => {
            let mut p = lock(&conn.zc_pending);
            match p.remove(&zc) {
                Some(ZcSlot::Writing) if !conn.is_closed() => {
                    p.insert(zc, ZcSlot::Waiting(g, Instant::now()));
                }
                Some(ZcSlot::Acked) => {
                    drop(p);
                    g.complete(Completion::OK);
                }
                // Closed meanwhile (the close drained the map).
                _ => {
                    drop(p);
                    let st = conn
                        .close_status()
                        .unwrap_or(Completion::failed(ESHUTDOWN, HealthStatus::LOCAL_INTERRUPT));
                    g.complete(st);
                }
            }
            None
        }
        Ok(()) => {
            g.complete(Completion::OK);
            None
        }
        Err(FrameError::Busy) => {
            conn.host.log(
                LogLevel::ERROR,
                &format!(
                    "send to {}: payload memory is in use by a writer",
                    conn.peer
                ),
            );
            g.complete(Completion::failed(errno::EBUSY, HealthStatus::LOCAL_ERROR));
            None
        }
        Err(FrameError::BusyAfterStart) => {
            g.complete(Completion::failed(errno::EBUSY, HealthStatus::LOCAL_ERROR));
            Some(CloseReason::new(
                "payload memory became busy mid-message",
                errno::EIO,
                HealthStatus::LOCAL_ERROR,
            ))
        }
        Err(FrameError::Closed(why)) => {
            g.complete(why.status);
            Some(why)
        }
    }
}

enum Work {
    /// The in-flight frames (from a direct sender) and sends taken off the
    /// queue.
    Batch(VecDeque<Frame>),
    Noop(MsgHdrRepr),
}

async fn write_loop<W: AsyncWrite + Unpin>(conn: &Arc<Conn>, mut w: W) -> Option<CloseReason> {
    let t = conn.cfg.sock_timeout;
    let v1 = conn.version == KSOCK_PROTO_V1;
    let keepalive_on = !conn.cfg.keepalive.is_zero() && !v1 && conn.ctype == ConnType::BulkIn;
    let mut next_keepalive = Instant::now() + conn.cfg.keepalive;
    let mut staged = Staged::default();
    loop {
        let work = {
            let mut q = lock(&conn.q);
            if q.closed {
                return None;
            }
            if let Some(why) = q.failed.take() {
                return Some(why);
            }
            if q.writing {
                // A direct sender owns the write side; it wakes us if it
                // leaves work.
                None
            } else if !q.inflight.is_empty() || !q.items.is_empty() {
                q.writing = true;
                let batch = std::mem::take(&mut q.inflight);
                conn.take_batch(&mut q, &mut staged, &batch);
                Some(Work::Batch(batch))
            } else if !q.acks.is_empty() && !v1 {
                q.writing = true;
                let a = q.acks.pop_front().unwrap_or(0);
                // Two at once as a pair (`cookies[0] > cookies[1]`).
                let (c0, c1) = match q.acks.front().copied() {
                    Some(b) if b != a => {
                        q.acks.pop_front();
                        (a.max(b), a.min(b))
                    }
                    _ => (0, a),
                };
                Some(Work::Noop(MsgHdrRepr {
                    kind: MsgKind::Noop,
                    csum: 0,
                    zc_req: c0,
                    zc_ack: c1,
                }))
            } else {
                None
            }
        };
        let Some(work) = work else {
            // Idle: wait for work, the keepalive deadline or a ZC timeout check.
            let tick = if keepalive_on {
                next_keepalive
            } else {
                Instant::now() + t
            };
            tokio::select! {
                _ = conn.wake.notified() => {}
                _ = tokio::time::sleep_until(tick) => {
                    if let Some(why) = zc_overdue(conn) {
                        return Some(why);
                    }
                    if keepalive_on && Instant::now() >= next_keepalive {
                        if conn.idle() >= conn.cfg.keepalive && take_idle_writer(conn) {
                            let mut h = [0u8; MSG_HDR_SIZE];
                            MsgHdrRepr::KEEPALIVE.emit(Endian::Little, &mut h);
                            let r = write_all_timed(&mut w, &h, t).await;
                            lock(&conn.q).writing = false;
                            if let Err(why) = r {
                                return Some(why);
                            }
                            next_keepalive = Instant::now() + KEEPALIVE_REPEAT;
                        } else {
                            next_keepalive = Instant::now()
                                + conn.cfg.keepalive.saturating_sub(conn.idle());
                        }
                    }
                }
            }
            continue;
        };
        let mut bulk = false;
        match work {
            Work::Noop(h) => {
                conn.ack_room.notify_one();
                let mut b = [0u8; MSG_HDR_SIZE];
                h.emit(Endian::Little, &mut b);
                if let Err(why) = write_all_timed(&mut w, &b, t).await {
                    return Some(why);
                }
                let n = u64::from(h.zc_req != 0) + u64::from(h.zc_ack != 0);
                conn.zc_counts.acks_sent.fetch_add(n, Ordering::Relaxed);
                lock(&conn.q).writing = false;
            }
            Work::Batch(mut batch) => {
                for f in batch.iter_mut() {
                    // Frames a direct sender left: a drop reports the close.
                    f.g.attach(conn);
                }
                staged.prepare_into(conn, &mut batch, Some(conn));
                bulk = batch.iter().any(|f| f.total() >= YIELD_AFTER);
                if let Err(why) = write_batch(conn, &mut w, &mut batch, t).await {
                    for f in batch.drain(..) {
                        finish_frame(conn, f, Err(FrameError::Closed(why.clone())));
                    }
                    return Some(why);
                }
                let mut q = lock(&conn.q);
                q.writing = false;
                // Its room serves the next owner.
                q.inflight = batch;
            }
        }
        if bulk {
            tokio::task::yield_now().await;
        }
    }
}

/// Takes the write side when nobody holds it (for a keepalive).
fn take_idle_writer(conn: &Conn) -> bool {
    let mut q = lock(&conn.q);
    if q.writing || q.closed {
        return false;
    }
    q.writing = true;
    true
}

fn zc_overdue(conn: &Conn) -> Option<CloseReason> {
    let t = conn.cfg.sock_timeout;
    let p = lock(&conn.zc_pending);
    let late = p
        .values()
        .any(|s| matches!(s, ZcSlot::Waiting(_, at) if at.elapsed() >= t));
    late.then(|| CloseReason::timeout("zero-copy ACK", t))
}

/// Writes the socklnd header (not in V1) and the LNet header into `head`.
fn frame_head(
    conn: &Conn,
    tx: &TxMsg,
    zc_req: u64,
    zc_ack: u64,
    head: &mut [u8; HEAD_MAX],
) -> Result<usize, String> {
    let mut off = 0;
    if conn.version != KSOCK_PROTO_V1 {
        let h = MsgHdrRepr {
            kind: MsgKind::Lnet,
            csum: 0,
            zc_req,
            zc_ack,
        };
        let mut b = [0u8; MSG_HDR_SIZE];
        h.emit(Endian::Little, &mut b);
        head[..MSG_HDR_SIZE].copy_from_slice(&b);
        off = MSG_HDR_SIZE;
    }
    if conn.version == KSOCK_PROTO_V4 {
        let mut b = [0u8; HDR_NID16_SIZE];
        tx.hdr.encode_nid16(&mut b);
        head[off..off + HDR_NID16_SIZE].copy_from_slice(&b);
        Ok(off + HDR_NID16_SIZE)
    } else {
        let mut b = [0u8; HDR_NID4_SIZE];
        tx.hdr.encode_nid4(&mut b).map_err(|e| e.to_string())?;
        head[off..off + HDR_NID4_SIZE].copy_from_slice(&b);
        Ok(off + HDR_NID4_SIZE)
    }
}

/// The V2 checksum of a frame whose socklnd header (`head[..24]`, checksum
/// 0) and LNet header are in `head`, and whose payload is `payload`.
fn v2_csum(head: &[u8], payload: &PayloadSpan) -> Option<u32> {
    let mut c = csum_update(0xFFFF_FFFF, head);
    for p in payload.pieces() {
        c = csum_update(c, &p.borrow().ok()?);
    }
    // A sum of 0 goes out as 0, which receivers take as "not checksummed".
    Some(c)
}

enum FrameError {
    /// The payload could not be borrowed; nothing was written.
    Busy,
    /// The payload could not be borrowed after part of the frame went out.
    BusyAfterStart,
    /// The socket failed.
    Closed(CloseReason),
}

async fn write_all_timed<W: AsyncWrite + Unpin>(
    w: &mut W,
    b: &[u8],
    t: Duration,
) -> Result<(), CloseReason> {
    match tokio::time::timeout(t, w.write_all(b)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(CloseReason::io("write", &e)),
        Err(_) => Err(CloseReason::timeout("write", t)),
    }
}

// ---------------------------------------------------------------------------
// Reader
// ---------------------------------------------------------------------------

/// Reads exactly `buf.len()` bytes by `deadline`.
async fn read_by<R: AsyncRead + Unpin>(
    r: &mut R,
    buf: &mut [u8],
    deadline: Instant,
    t: Duration,
    what: &str,
) -> Result<(), CloseReason> {
    match timeout_at(deadline, r.read_exact(buf)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(CloseReason::io(what, &e)),
        Err(_) => Err(CloseReason::timeout(what, t)),
    }
}

/// The receive this thread's reader is handing to LNet (`parse`).
struct InlineRx {
    /// The address of the reader's owner (the NI), told apart from another
    /// NI's connection with the same token.
    owner: usize,
    token: u64,
    /// LNet's `recv` for it, when it came on this thread inside `parse`.
    action: Option<(RxAction, PayloadSpan)>,
}

thread_local! {
    /// The receive a reader on this thread awaits inside `parse`: LNet's
    /// `recv` for it, made on the same thread before `parse` returns (the
    /// usual case), is left here with no lock, lookup or wake-up.
    static INLINE_RX: std::cell::RefCell<Option<InlineRx>> = const { std::cell::RefCell::new(None) };
}

/// `LndNi::recv_span`'s fast path: takes the action when this thread's
/// reader awaits exactly this token of the NI at `owner` (an address, see
/// [`owner_addr`]); gives it back otherwise (the caller then finds the
/// connection by the token).
// Giving the action back by value is the point (boxing would allocate per message).
#[allow(clippy::result_large_err)]
pub fn deliver_inline(
    owner: usize,
    a: RxAction,
    payload: PayloadSpan,
) -> Result<(), (RxAction, PayloadSpan)> {
    INLINE_RX.with(|c| {
        let Ok(mut c) = c.try_borrow_mut() else {
            return Err((a, payload));
        };
        match c.as_mut() {
            Some(i) if i.owner == owner && i.token == a.rx.0 && i.action.is_none() => {
                i.action = Some((a, payload));
                Ok(())
            }
            _ => Err((a, payload)),
        }
    })
}

thread_local! {
    /// The connection (its address) whose reader, on this thread, is handing
    /// LNet a message while its read buffer holds more bytes (0: none).
    /// Sends on it made meanwhile on this thread are queued instead of
    /// written ([`Conn::enqueue`]), and written together, in one vectored
    /// write, once the reader has no complete message left to handle
    /// ([`Conn::uncork`]): a burst of requests read at once gets its replies
    /// in one write, not one each.
    static CORKED: Cell<usize> = const { Cell::new(0) };
}

/// Whether `conn`'s reader is on this thread with more messages to handle.
fn is_corked(conn: &Conn) -> bool {
    CORKED.with(Cell::get) == conn as *const Conn as usize
}

/// Runs `f` with `conn` corked on this thread when `cork` (and as it was
/// otherwise); restores the previous state even when `f` unwinds.
fn corked<T>(conn: &Conn, cork: bool, f: impl FnOnce() -> T) -> T {
    struct Restore(usize);
    impl Drop for Restore {
        fn drop(&mut self) {
            CORKED.with(|c| c.set(self.0));
        }
    }
    if !cork {
        return f();
    }
    let _restore = Restore(CORKED.with(|c| c.replace(conn as *const Conn as usize)));
    f()
}

/// The address that identifies a reader's owner for [`deliver_inline`].
pub fn owner_addr<O>(owner: &Arc<O>) -> usize {
    Arc::as_ptr(owner) as *const () as usize
}

/// Calls `parse` with this thread's inline receive armed for `token`;
/// returns its result and the action LNet gave meanwhile on this thread.
fn parse_inline<O: ConnOwner>(
    owner: &Arc<O>,
    conn: &Arc<Conn>,
    hdr: Hdr,
    token: RxToken,
) -> (Result<(), String>, Option<(RxAction, PayloadSpan)>) {
    let armed = InlineRx {
        owner: owner_addr(owner),
        token: token.0,
        action: None,
    };
    INLINE_RX.with(|c| *c.borrow_mut() = Some(armed));
    let r = owner.parse(conn, hdr, token);
    let action = INLINE_RX.with(|c| c.borrow_mut().take().and_then(|i| i.action));
    (r, action)
}

/// [`read_by`] from the read buffer when it already holds the bytes (a
/// burst of small messages, or the rest of a header): no timer is made.
async fn read_buffered<R: AsyncRead + Unpin>(
    r: &mut BufReader<R>,
    buf: &mut [u8],
    deadline: Instant,
    t: Duration,
) -> Result<(), CloseReason> {
    let held = r.buffer();
    if held.len() >= buf.len() {
        buf.copy_from_slice(&held[..buf.len()]);
        r.consume(buf.len());
        return Ok(());
    }
    read_by(r, buf, deadline, t, "read").await
}

async fn read_loop<R: AsyncRead + ReadNow + Unpin, O: ConnOwner>(
    conn: &Arc<Conn>,
    owner: &Arc<O>,
    r: R,
) -> Option<CloseReason> {
    let t = conn.cfg.sock_timeout;
    let mut scratch = vec![0u8; SCRATCH];
    let mut seq: u64 = 0;
    // Headers and small payloads come out of one buffered read (a batch of
    // small messages costs one syscall, not four each); a large payload
    // bypasses the buffer and goes straight into the matched MD.
    let mut r = BufReader::with_capacity(READ_BUF, r);
    // Sends on this connection were queued while corked (see [`CORKED`]):
    // they are written before the reader may wait for anything.
    let mut pending = false;
    // Whether a message of the burst now in the buffer was handed LNet
    // already: the first one's sends go out at once, so the peer has work
    // while this side handles the rest, whose sends are corked.
    let mut burst = false;
    let mut idle = IdlePoll::new(conn.cfg.rx_poll);
    loop {
        // Idle until the first byte of the next message; then the whole
        // message must arrive within sock_timeout.
        uncork_if(conn, &mut pending, r.buffer().is_empty());
        let gap = r.buffer().is_empty().then(Instant::now);
        if gap.is_some() {
            idle.poll(r.get_mut()).await;
        }
        let mut first = [0u8; 1];
        match r.read(&mut first).await {
            Ok(0) => {
                return Some(CloseReason::new(
                    "connection closed by peer",
                    errno::ECONNRESET,
                    HealthStatus::REMOTE_DROPPED,
                ))
            }
            Ok(_) => {}
            Err(e) => return Some(CloseReason::io("read", &e)),
        }
        // One clock read per message: the idle mark, the deadline of the
        // rest of the message and of LNet's `recv` all start here.
        let arrived = Instant::now();
        if let Some(since) = gap {
            idle.learn(arrived - since, arrived);
        }
        conn.touch_at(arrived);
        let deadline = arrived + t;
        let mut ksh = MsgHdrRepr {
            kind: MsgKind::Lnet,
            csum: 0,
            zc_req: 0,
            zc_ack: 0,
        };
        let mut raw_ksh = [0u8; MSG_HDR_SIZE];
        let mut hdr_first = true;
        if conn.version != KSOCK_PROTO_V1 {
            raw_ksh[0] = first[0];
            uncork_if(conn, &mut pending, r.buffer().len() < MSG_HDR_SIZE - 1);
            if let Err(why) = read_buffered(&mut r, &mut raw_ksh[1..], deadline, t).await {
                return Some(why);
            }
            hdr_first = false;
            ksh = match MsgHdr::new_checked(&raw_ksh, conn.endian)
                .and_then(|v| MsgHdrRepr::parse(&v))
            {
                Ok(h) => h,
                Err(e) => return Some(CloseReason::proto(e.to_string())),
            };
            let acked = ZcAcked::of(&ksh);
            if !conn.handle_zc_ack(acked) {
                return Some(CloseReason::proto(format!(
                    "zero-copy ACK of unknown cookie ({acked:?})"
                )));
            }
            if ksh.kind == MsgKind::Noop {
                continue;
            }
        }
        // The LNet header.
        let hlen = conn.hdr_len();
        let mut hb = [0u8; HDR_NID16_SIZE];
        let off = if hdr_first {
            hb[0] = first[0];
            1
        } else {
            0
        };
        uncork_if(conn, &mut pending, r.buffer().len() < hlen - off);
        if let Err(why) = read_buffered(&mut r, &mut hb[off..hlen], deadline, t).await {
            return Some(why);
        }
        let decoded = if hlen == HDR_NID16_SIZE {
            Hdr::decode_nid16(&hb)
        } else {
            let mut a = [0u8; HDR_NID4_SIZE];
            a.copy_from_slice(&hb[..HDR_NID4_SIZE]);
            Hdr::decode_nid4(&a)
        };
        let mut hdr = match decoded {
            Ok(h) => h,
            Err(e) => return Some(CloseReason::proto(format!("bad LNet header: {e}"))),
        };
        let plen = hdr.payload_length;
        if plen > MAX_PAYLOAD {
            return Some(CloseReason::proto(format!(
                "payload length {plen} exceeds LNET_MTU ({MAX_PAYLOAD})"
            )));
        }
        if conn.userspace {
            hdr.src_nid = conn.peer.nid;
            hdr.src_pid = conn.peer.pid;
        }
        // Hand it to LNet and wait for recv.
        seq = seq.wrapping_add(1) & 0xFFFF_FFFF;
        {
            let mut s = lock(&conn.rx);
            s.expect = Some(seq);
            s.action = None;
        }
        let token = RxToken((conn.id as u64) << 32 | seq);
        // LNet must answer (`recv`) within sock_timeout: a host that never
        // does would otherwise hold the connection silently forever.
        let recv_deadline = deadline;
        // More than this message's payload read already: sends it causes
        // wait for those of the next ones.
        let cork = burst && r.buffer().len() > plen as usize;
        pending |= cork;
        let (parsed, inline) = corked(conn, cork, || parse_inline(owner, conn, hdr, token));
        if let Err(e) = parsed {
            lock(&conn.rx).expect = None;
            return Some(CloseReason::proto(format!("LNet refused the header: {e}")));
        }
        // LNet almost always answers inside `parse`, on this thread (the
        // action is then `inline`); only a delayed receive (a PUT waiting on
        // a lazy portal, a fault filter's delay) is waited for.
        let mut waited = false;
        let (action, payload) = if let Some(a) = inline {
            lock(&conn.rx).expect = None;
            a
        } else {
            loop {
                {
                    let mut s = lock(&conn.rx);
                    if let Some(a) = s.action.take() {
                        s.expect = None;
                        break a;
                    }
                }
                waited = true;
                uncork_if(conn, &mut pending, true);
                if timeout_at(recv_deadline, conn.rx_wake.notified())
                    .await
                    .is_err()
                {
                    let late = {
                        let mut s = lock(&conn.rx);
                        match s.action.take() {
                            Some(a) => {
                                s.expect = None;
                                Some(a)
                            }
                            None => {
                                // A recv from now on finds the token stale.
                                s.expect = None;
                                None
                            }
                        }
                    };
                    if let Some(a) = late {
                        break a;
                    }
                    owner.log(
                        LogLevel::WARN,
                        &format!(
                            "{} from {} ({} bytes, receive token {:#x}) not received by LNet \
                         within {} s (sock_timeout); closing the connection",
                            hdr.msg_type.name(),
                            conn.peer,
                            plen,
                            token.0,
                            t.as_secs()
                        ),
                    );
                    return Some(CloseReason::timeout(
                        "waiting for LNet to receive a message",
                        t,
                    ));
                }
            }
        };
        // The payload's time runs from the receive when it was waited for.
        let deadline = if waited { Instant::now() + t } else { deadline };
        // A discard (no message) reads nothing into memory.
        let guard = RxGuard {
            msg: action.msg.into_option().map(|m| (m, payload)),
            host: conn.host.clone(),
            conn: Some(conn.clone()),
        };
        let mut csum = if ksh.csum != 0 && conn.version == KSOCK_PROTO_V2 {
            let mut z = raw_ksh;
            z[4..8].fill(0);
            Some(csum_update(csum_update(0xFFFF_FFFF, &z), &hb[..hlen]))
        } else {
            None
        };
        let empty = PayloadSpan::new();
        let payload = guard.payload().unwrap_or(&empty);
        uncork_if(conn, &mut pending, r.buffer().len() < plen as usize);
        let r_payload = read_payload(
            conn,
            &mut r,
            payload,
            plen as usize,
            &mut scratch,
            deadline,
            &mut csum,
        )
        .await;
        let status = match r_payload {
            Ok(s) => s,
            Err(why) => {
                guard.complete(Completion::failed(errno::EIO, why.status.health));
                return Some(why);
            }
        };
        if plen as usize > READ_BUF {
            // A payload that may have taken a while: bytes arrived until now.
            conn.touch();
        }
        if let Some(c) = csum {
            if c != ksh.csum {
                guard.complete(Completion::failed(errno::EIO, HealthStatus::REMOTE_ERROR));
                return Some(CloseReason::proto(format!(
                    "checksum mismatch ({c:#x} computed, {:#x} sent)",
                    ksh.csum
                )));
            }
        }
        // The reply or next request this message causes waits for those of
        // the next messages already read.
        let more = !r.buffer().is_empty();
        let cork = burst && more;
        burst = more;
        pending |= cork;
        corked(conn, cork, || guard.complete(status));
        if ksh.zc_req != 0 {
            uncork_if(conn, &mut pending, true);
            conn.queue_ack(ksh.zc_req).await;
        }
        if plen as usize >= YIELD_AFTER {
            uncork_if(conn, &mut pending, true);
            // As the writer does: let the tasks this message woke (a reply
            // to send, the next request) run before the next bulk payload.
            tokio::task::yield_now().await;
        }
    }
}

/// Writes the sends the reader corked on `conn` when `now` (the reader is
/// about to wait, or has no complete message left).
#[inline]
fn uncork_if(conn: &Conn, pending: &mut bool, now: bool) {
    if *pending && now {
        *pending = false;
        conn.uncork();
    }
}

/// Reads a payload of `plen` bytes: the first `mlen = min(plen, payload.len())`
/// straight into the span's pieces, the rest into `scratch`. One piece (a
/// contiguous buffer, a router buffer) is read by [`read_spinning`];
/// several (an MD's pages) by [`read_group`], up to [`RX_IOV`] at once
/// with vectored reads, as many as can be borrowed: a busy piece is tried
/// again alone and, still busy, skipped (the message fails with EBUSY).
/// Returns the message's status (not OK when the memory was busy).
async fn read_payload<R: AsyncRead + ReadNow + Unpin>(
    conn: &Conn,
    r: &mut BufReader<R>,
    payload: &PayloadSpan,
    plen: usize,
    scratch: &mut [u8],
    deadline: Instant,
    csum: &mut Option<u32>,
) -> Result<Completion, CloseReason> {
    let cfg = &conn.cfg;
    let t = cfg.sock_timeout;
    let spin = cfg.rx_spin;
    let mlen = payload.len().min(plen);
    let mut status = Completion::OK;
    let mut left = mlen;
    let mut pieces = payload.pieces().peekable();
    while left > 0 {
        let Some(p) = pieces.next() else { break };
        let n = p.len().min(left);
        // Exactly this piece's bytes (the flag covers its whole allocation).
        let g = match p.borrow_mut() {
            Ok(g) => g,
            Err(_) => {
                // Keep the stream in step, fail the message.
                status = Completion::failed(errno::EBUSY, HealthStatus::LOCAL_ERROR);
                skip(r, n, scratch, deadline, t).await?;
                *csum = None;
                left -= n;
                continue;
            }
        };
        if !R::VECTORED || n >= left || pieces.peek().is_none() {
            let mut g = g;
            let reads = read_spinning(r, &mut g[..n], spin, cfg.rx_lowat, deadline, t).await?;
            conn.zc_counts
                .payload_reads
                .fetch_add(reads, Ordering::Relaxed);
            if let Some(c) = csum.as_mut() {
                *c = csum_update(*c, &g[..n]);
            }
            left -= n;
            continue;
        }
        // Several pieces (an MD's pages): as many as can be borrowed now,
        // up to RX_IOV, filled by vectored reads.
        let mut group: [Option<(BufMut<'_>, usize)>; RX_IOV] = std::array::from_fn(|_| None);
        group[0] = Some((g, n));
        let (mut k, mut taken) = (1, n);
        while k < RX_IOV && taken < left {
            let Some(q) = pieces.peek() else { break };
            // A piece busy now is tried again alone (after this group's
            // borrows end): it fails the message only if still busy then.
            let Ok(h) = q.borrow_mut() else { break };
            let m = q.len().min(left - taken);
            group[k] = Some((h, m));
            pieces.next();
            k += 1;
            taken += m;
        }
        let reads = read_group(r, &mut group[..k], cfg.rx_lowat, deadline, t).await?;
        conn.zc_counts
            .payload_reads
            .fetch_add(reads, Ordering::Relaxed);
        if let Some(c) = csum.as_mut() {
            for (g, m) in group[..k].iter().flatten() {
                *c = csum_update(*c, &g[..*m]);
            }
        }
        left -= taken;
    }
    if plen > mlen {
        // Truncated or discarded: no checksum to verify.
        *csum = None;
        skip(r, plen - mlen, scratch, deadline, t).await?;
    }
    Ok(status)
}

/// Polling for the next message before sleeping (`rx_poll_us`). On a host
/// where a sleeping thread is woken through an interrupt to a halted vCPU
/// (tens of µs each on some hypervisors), a peer that answers within a few
/// µs pays that wake-up on every message: its write wakes our reader. A
/// reader that polls its socket instead is found running, and the write
/// wakes nobody. The poll is adaptive and bounded, as hybrid polling is:
/// - it polls only when the last gap between two messages of this
///   connection was shorter than `max`, and then for at most twice that
///   gap (a connection whose messages come far apart never polls);
/// - each round asks the socket (`poll`), then gives the CPU to any
///   other thread that waits for it (`sched_yield`: on a busy machine the
///   peer we wait for may be that thread) and, every few rounds, to the
///   runtime's other tasks (other connections), whose I/O driver is polled
///   without sleeping;
/// - a round that took much longer than a round takes, during which the
///   kernel switched this thread out for another one (its involuntary
///   context switches rose), means the machine is busy: polling is then off
///   for [`IdlePoll::OFF_FIRST`], since on a busy machine a wake-up is
///   cheap and a poller only takes CPU from the others; each such
///   preemption that follows within [`IdlePoll::CALM`] polls doubles that
///   (up to [`IdlePoll::OFF_MAX`]), so that a machine that stays busy is
///   hardly polled on at all. A long round without a switch is the vCPU
///   itself held up by the hypervisor, which says nothing about the other
///   threads here: polling goes on. The penalty is a time, not a number of
///   messages, so that what a busy spell taught does not outlast it by
///   seconds once messages come fewer and farther apart;
/// - a poll that found nothing sleeps as before, and the gap it measured
///   sets the next budget.
pub struct IdlePoll {
    max: Duration,
    budget: Duration,
    /// No polling before this (after a preemption).
    off_until: Option<Instant>,
    /// How long the next preemption turns polling off.
    penalty: Duration,
    /// Polls since the last preemption.
    calm: u32,
    /// The calling thread's involuntary context switches so far.
    switches: fn() -> c_long,
}

impl IdlePoll {
    /// How long polling is off after a poll round was preempted (the first
    /// time; see [`IdlePoll::OFF_MAX`]).
    pub const OFF_FIRST: Duration = Duration::from_millis(20);
    /// The longest polling stays off after repeated preemptions.
    pub const OFF_MAX: Duration = Duration::from_millis(1280);
    /// Polls without a preemption after which the penalty is back to
    /// [`IdlePoll::OFF_FIRST`].
    pub const CALM: u32 = 4096;
    /// A round longer than this may have been preempted (a round is a
    /// `poll` and a `sched_yield`: a few µs).
    const PREEMPTED: Duration = Duration::from_micros(40);

    /// A poller of at most `max` per gap (zero: never polls).
    pub fn new(max: Duration) -> Self {
        Self::with_switches(max, involuntary_switches)
    }

    fn with_switches(max: Duration, switches: fn() -> c_long) -> Self {
        IdlePoll {
            max,
            budget: Duration::ZERO,
            off_until: None,
            penalty: Self::OFF_FIRST,
            calm: 0,
            switches,
        }
    }

    /// Polls `r` until a byte is there or the budget is spent; whether it
    /// found one.
    pub async fn poll<R: ReadNow>(&mut self, r: &mut R) -> bool {
        if self.budget.is_zero() {
            return false;
        }
        let start = Instant::now();
        let until = start + self.budget;
        let mut last = start;
        // Read once the first question found nothing (a byte already there
        // costs no system call more).
        let mut switched_at = None;
        for round in 0u32.. {
            let ready = match r.ready_now() {
                // A stream that cannot tell is never polled.
                None => return false,
                Some(ready) => ready,
            };
            if ready {
                self.calm += 1;
                if self.calm >= Self::CALM {
                    self.calm = 0;
                    self.penalty = Self::OFF_FIRST;
                }
                return true;
            }
            let switched = *switched_at.get_or_insert_with(self.switches);
            // This round's time, the yields of the one before included.
            let now = Instant::now();
            if now - last > Self::PREEMPTED && (self.switches)() > switched {
                self.off_until = Some(now + self.penalty);
                self.penalty = (self.penalty * 2).min(Self::OFF_MAX);
                self.calm = 0;
                self.budget = Duration::ZERO;
                return false;
            }
            if now >= until {
                return false;
            }
            last = now;
            std::thread::yield_now();
            if round % 4 == 3 {
                tokio::task::yield_now().await;
            }
        }
        false
    }

    /// The gap from the end of the previous message to the first byte of
    /// this one, which came at `now`: the next poll's budget.
    pub fn learn(&mut self, gap: Duration, now: Instant) {
        if let Some(t) = self.off_until {
            if now < t {
                self.budget = Duration::ZERO;
                return;
            }
            self.off_until = None;
        }
        self.budget = if gap < self.max {
            (gap * 2 + Duration::from_micros(2)).min(self.max)
        } else {
            Duration::ZERO
        };
    }
}

/// The calling thread's involuntary context switches so far (0 if the
/// kernel will not say: then no round counts as preempted).
fn involuntary_switches() -> c_long {
    use nix::sys::resource::{getrusage, UsageWho};
    getrusage(UsageWho::RUSAGE_THREAD)
        .map(|u| u.involuntary_context_switches())
        .unwrap_or(0)
}

/// Reads exactly `buf.len()` payload bytes. On a fast path the rest of a
/// message in flight arrives in segments microseconds apart, sooner than a
/// sleeping thread is woken: the reader polls the socket for up to `spin`
/// (`rx_spin_us`) between segments (as busy-polling transports do) and only
/// then sleeps until the socket is readable, so the sender rarely pays for
/// waking it (on loopback and veth that is on the sender's critical path).
/// Polling stops for the rest of the payload once it arrives slower than
/// about 1 GB/s (one byte per nanosecond since the first `spin`): on a slow
/// link it would burn a core for a trickle.
///
/// With `lowat` (`rx_lowat`, the default), a rest of at least
/// [`LOWAT_MIN`] bytes is not polled for: the reader sets the socket's
/// `SO_RCVLOWAT` to it (at most [`LOWAT_MAX`]) and sleeps, is woken once it
/// is all there (or the socket's buffer is full), and one `recv` takes it,
/// instead of a wake-up or an empty poll per arriving segment (a router
/// polling a 1 MiB payload in on a quiet host made about 350 system calls
/// per MiB; it now makes about 10, as a user-space relay does). Polling
/// still serves shorter rests. The mark goes back to 1 before the next
/// header is read.
async fn read_spinning<R: AsyncRead + ReadNow + Unpin>(
    r: &mut BufReader<R>,
    buf: &mut [u8],
    spin: Duration,
    lowat: bool,
    deadline: Instant,
    t: Duration,
) -> Result<u64, CloseReason> {
    let mut mark = 0;
    let r_ = read_marked(r, buf, spin, lowat, &mut mark, deadline, t).await;
    if mark > 0 {
        // Headers and small payloads are read at any size again.
        if let Err(e) = r.get_ref().set_lowat(1) {
            return Err(CloseReason::io("set SO_RCVLOWAT", &e));
        }
    }
    r_
}

/// The bytes of a piece at least this long may be waited for as a whole
/// (`rx_lowat`); a shorter rest is read as it comes.
const LOWAT_MIN: usize = 32 * 1024;
/// The most bytes a reader asks to be woken for (LNET_MTU): the kernel
/// grows the receive buffer to hold them, or caps the mark at half a
/// locked (`rx_buffer_size`) one.
const LOWAT_MAX: usize = 1 << 20;

/// [`read_spinning`]'s loop; `mark` is the low-water mark it set (0: none).
/// Returns the socket reads that moved bytes.
async fn read_marked<R: AsyncRead + ReadNow + Unpin>(
    r: &mut BufReader<R>,
    buf: &mut [u8],
    spin: Duration,
    lowat: bool,
    mark: &mut usize,
    deadline: Instant,
    t: Duration,
) -> Result<u64, CloseReason> {
    const WHAT: &str = "read payload";
    // What the buffer already holds; then it is empty whenever bytes are
    // still missing, so reading the socket directly keeps the order.
    let held = r.buffer();
    let mut done = held.len().min(buf.len());
    buf[..done].copy_from_slice(&held[..done]);
    r.consume(done);
    if done == buf.len() {
        // A small message comes whole out of the buffered read.
        return Ok(0);
    }
    let mut reads = 0;
    let start = std::time::Instant::now();
    let first = done;
    let mut progress = start;
    let mut polling = !spin.is_zero();
    while done < buf.len() {
        match r.get_ref().read_now(&mut buf[done..]) {
            Ok(0) => return Err(CloseReason::io(WHAT, &io::ErrorKind::UnexpectedEof.into())),
            Ok(n) => {
                done += n;
                reads += 1;
                if polling {
                    progress = std::time::Instant::now();
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                let rest = buf.len() - done;
                // A rest worth a low-water mark is waited for whole:
                // polling would only take it in pieces sooner.
                let whole = lowat && rest >= LOWAT_MIN;
                if polling && !whole {
                    let since = start.elapsed();
                    polling = since < spin || (done - first) as u128 >= since.as_nanos();
                }
                if polling && !whole && progress.elapsed() < spin {
                    if Instant::now() >= deadline {
                        return Err(CloseReason::timeout(WHAT, t));
                    }
                    std::hint::spin_loop();
                    continue;
                }
                if whole && (*mark == 0 || rest < *mark) {
                    // Woken once the rest is there. A mark left above
                    // what is still to come would wait for the next
                    // message's bytes: it follows the rest down.
                    let want = rest.min(LOWAT_MAX);
                    match r.get_ref().set_lowat(want) {
                        Ok(()) => *mark = want,
                        Err(e) if e.kind() == io::ErrorKind::Unsupported => {}
                        Err(e) => return Err(CloseReason::io("set SO_RCVLOWAT", &e)),
                    }
                } else if *mark > rest {
                    // Below LOWAT_MIN now: read the rest as it comes.
                    if let Err(e) = r.get_ref().set_lowat(1) {
                        return Err(CloseReason::io("set SO_RCVLOWAT", &e));
                    }
                    *mark = 0;
                }
                let n = match timeout_at(deadline, r.read(&mut buf[done..])).await {
                    Ok(Ok(0)) => {
                        return Err(CloseReason::io(WHAT, &io::ErrorKind::UnexpectedEof.into()))
                    }
                    Ok(Ok(n)) => n,
                    Ok(Err(e)) => return Err(CloseReason::io(WHAT, &e)),
                    Err(_) => return Err(CloseReason::timeout(WHAT, t)),
                };
                done += n;
                reads += 1;
                if polling {
                    progress = std::time::Instant::now();
                }
            }
            Err(e) => return Err(CloseReason::io(WHAT, &e)),
        }
    }
    Ok(reads)
}

/// Counts `n` bytes read into `group` from piece `i`, byte `off` on.
fn advance_group(
    group: &[Option<(BufMut<'_>, usize)>],
    mut n: usize,
    i: &mut usize,
    off: &mut usize,
) {
    while n > 0 && *i < group.len() {
        let m = group[*i].as_ref().map_or(0, |(_, m)| *m);
        let step = n.min(m - *off);
        *off += step;
        n -= step;
        if *off == m {
            *i += 1;
            *off = 0;
        }
    }
}

/// Payload pieces one vectored read fills at most (an MD's 4 KiB pages:
/// 256 KiB a read).
const RX_IOV: usize = 64;

/// Reads exactly the first `m` bytes of each piece of `group` (pieces of
/// one payload, in order, borrowed for writing) with vectored reads of the
/// socket: what the read buffer holds first, then one `readv` for what is
/// there, and when nothing is, a sleep until the socket is readable (with
/// `lowat` and a rest of at least [`LOWAT_MIN`], woken once it is all
/// there, as [`read_spinning`]). Returns the socket reads that moved bytes.
async fn read_group<R: AsyncRead + ReadNow + Unpin>(
    r: &mut BufReader<R>,
    group: &mut [Option<(BufMut<'_>, usize)>],
    lowat: bool,
    deadline: Instant,
    t: Duration,
) -> Result<u64, CloseReason> {
    const WHAT: &str = "read payload";
    // (piece, bytes of it filled)
    let (mut i, mut off) = (0, 0);
    let mut rest: usize = group.iter().flatten().map(|(_, m)| *m).sum();
    // What the read buffer already holds.
    while rest > 0 && !r.buffer().is_empty() {
        let Some((g, m)) = group[i].as_mut() else {
            break;
        };
        let held = r.buffer();
        let n = held.len().min(*m - off);
        g[off..off + n].copy_from_slice(&held[..n]);
        r.consume(n);
        rest -= n;
        advance_group(group, n, &mut i, &mut off);
    }
    let mut mark = 0;
    let mut reads = 0;
    let res = loop {
        if rest == 0 {
            break Ok(());
        }
        let got = {
            let mut iov: [io::IoSliceMut<'_>; RX_IOV] =
                std::array::from_fn(|_| io::IoSliceMut::new(&mut []));
            let mut k = 0;
            for (j, slot) in group.iter_mut().enumerate().skip(i) {
                if let Some((g, m)) = slot.as_mut() {
                    let from = if j == i { off } else { 0 };
                    iov[k] = io::IoSliceMut::new(&mut g[from..*m]);
                    k += 1;
                }
            }
            r.get_ref().try_read_vectored(&mut iov[..k])
        };
        match got {
            Ok(0) => break Err(CloseReason::io(WHAT, &io::ErrorKind::UnexpectedEof.into())),
            Ok(n) => {
                reads += 1;
                rest -= n;
                advance_group(group, n, &mut i, &mut off);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if lowat && rest >= LOWAT_MIN && (mark == 0 || rest < mark) {
                    let want = rest.min(LOWAT_MAX);
                    match r.get_ref().set_lowat(want) {
                        Ok(()) => mark = want,
                        Err(e) if e.kind() == io::ErrorKind::Unsupported => {}
                        Err(e) => break Err(CloseReason::io("set SO_RCVLOWAT", &e)),
                    }
                } else if mark > rest {
                    if let Err(e) = r.get_ref().set_lowat(1) {
                        break Err(CloseReason::io("set SO_RCVLOWAT", &e));
                    }
                    mark = 0;
                }
                match timeout_at(deadline, r.get_ref().readable()).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => break Err(CloseReason::io(WHAT, &e)),
                    Err(_) => break Err(CloseReason::timeout(WHAT, t)),
                }
            }
            Err(e) => break Err(CloseReason::io(WHAT, &e)),
        }
    };
    if mark > 0 {
        if let Err(e) = r.get_ref().set_lowat(1) {
            return Err(CloseReason::io("set SO_RCVLOWAT", &e));
        }
    }
    res.map(|()| reads)
}

async fn skip<R: AsyncRead + Unpin>(
    r: &mut R,
    mut n: usize,
    scratch: &mut [u8],
    deadline: Instant,
    t: Duration,
) -> Result<(), CloseReason> {
    while n > 0 {
        let k = n.min(scratch.len());
        read_by(r, &mut scratch[..k], deadline, t, "skip payload").await?;
        n -= k;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    //! The reader and writer over an in-memory stream (the seam), fed
    //! scripted and random frames.

    use super::*;
    use crate::fuzzing::{conn, conn_with, lnet, receive_into, run, Counts, Owner, H, NET};
    use lnd_api::abi_stable::std_types::ROption;
    use lnd_api::hdr::HDR_NID4_SIZE;
    use lnd_api::{IoBuf, MsgToken, MsgType, Nid, Payload};
    use proptest::prelude::*;
    use tokio::io::duplex;

    /// A stream whose socket says "a byte is there" from the `ready_at`-th
    /// question on, counting the questions.
    struct Ready {
        asked: std::cell::Cell<u32>,
        ready_at: u32,
    }

    impl ReadNow for Ready {
        fn read_now(&self, _buf: &mut [u8]) -> io::Result<usize> {
            Err(io::ErrorKind::WouldBlock.into())
        }
        fn ready_now(&self) -> Option<bool> {
            let n = self.asked.get() + 1;
            self.asked.set(n);
            Some(n >= self.ready_at)
        }
    }

    /// Switch counters for the poller: a thread never switched out, and
    /// one switched out whenever asked (every long round is a preemption).
    fn never_switched() -> c_long {
        0
    }
    fn always_switched() -> c_long {
        static N: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);
        N.fetch_add(1, Ordering::Relaxed).into()
    }

    #[test]
    fn idle_poll_budget_follows_the_last_gap() {
        let us = Duration::from_micros;
        let now = Instant::now();
        let mut p = IdlePoll::new(us(100));
        assert_eq!(p.budget, Duration::ZERO, "no poll before a gap is known");
        p.learn(us(10), now);
        assert_eq!(p.budget, us(22), "twice the gap, and a little");
        p.learn(us(70), now);
        assert_eq!(p.budget, us(100), "at most rx_poll_us");
        p.learn(us(100), now);
        assert_eq!(
            p.budget,
            Duration::ZERO,
            "messages that far apart are slept for"
        );
        let mut off = IdlePoll::new(Duration::ZERO);
        off.learn(Duration::ZERO, now);
        assert_eq!(off.budget, Duration::ZERO, "rx_poll_us=0 never polls");
    }

    #[test]
    fn idle_poll_stops_when_data_comes_and_when_the_budget_is_spent() {
        let rt = runtime(1);
        rt.block_on(async {
            let mut p = IdlePoll::with_switches(Duration::from_secs(5), never_switched);
            p.learn(Duration::from_secs(1), Instant::now());
            // Data on the third question.
            let mut r = Ready {
                asked: 0.into(),
                ready_at: 3,
            };
            assert!(p.poll(&mut r).await);
            assert_eq!(r.asked.get(), 3, "asked until the byte was there");
            // Nothing ever comes: the budget ends it.
            let mut p = IdlePoll::with_switches(Duration::from_millis(1), never_switched);
            p.learn(Duration::from_micros(200), Instant::now());
            let mut never = Ready {
                asked: 0.into(),
                ready_at: u32::MAX,
            };
            let t0 = Instant::now();
            assert!(!p.poll(&mut never).await);
            assert!(t0.elapsed() >= Duration::from_micros(400));
            // A stream that cannot tell (in memory): no poll at all.
            struct Blind;
            impl ReadNow for Blind {
                fn read_now(&self, _buf: &mut [u8]) -> io::Result<usize> {
                    Err(io::ErrorKind::WouldBlock.into())
                }
            }
            assert!(!p.poll(&mut Blind).await);
        });
    }

    #[test]
    fn a_preempted_poll_turns_polling_off_for_a_while() {
        let us = Duration::from_micros;
        let t0 = Instant::now();
        let mut p = IdlePoll::new(us(100));
        p.off_until = Some(t0 + IdlePoll::OFF_FIRST);
        p.learn(us(10), t0);
        assert_eq!(p.budget, Duration::ZERO);
        p.learn(us(10), t0 + IdlePoll::OFF_FIRST - us(1));
        assert_eq!(p.budget, Duration::ZERO, "still off");
        p.learn(us(10), t0 + IdlePoll::OFF_FIRST);
        assert_eq!(p.budget, us(22), "back on");
        assert_eq!(p.off_until, None);
    }

    /// A stream whose every question takes longer than a poll round may.
    struct Slow;

    impl ReadNow for Slow {
        fn read_now(&self, _buf: &mut [u8]) -> io::Result<usize> {
            Err(io::ErrorKind::WouldBlock.into())
        }
        fn ready_now(&self) -> Option<bool> {
            std::thread::sleep(Duration::from_millis(1));
            Some(false)
        }
    }

    #[test]
    fn repeated_preemptions_turn_polling_off_for_longer_and_calm_resets_it() {
        let rt = runtime(1);
        let mut p = IdlePoll::with_switches(Duration::from_secs(1), always_switched);
        let mut now = Instant::now();
        // How long each preempted poll turned polling off.
        let mut offs = Vec::new();
        for _ in 0..9 {
            p.learn(Duration::from_millis(100), now);
            let before = Instant::now();
            assert!(!rt.block_on(p.poll(&mut Slow)));
            let after = Instant::now();
            let until = p.off_until.expect("off after a preemption");
            // The window starts inside the poll (at the long round).
            assert!(until >= before && until <= after + IdlePoll::OFF_MAX);
            offs.push(p.penalty);
            p.learn(Duration::from_millis(100), until - Duration::from_micros(1));
            assert_eq!(p.budget, Duration::ZERO, "off until the window ends");
            now = until;
        }
        let first = IdlePoll::OFF_FIRST;
        assert_eq!(
            offs,
            [2, 4, 8, 16, 32, 64, 64, 64, 64].map(|k| first * k),
            "each preemption doubles the next window, up to OFF_MAX"
        );
        assert_eq!(IdlePoll::OFF_MAX, first * 64);
        // Calm: enough polls that found their byte at once.
        for _ in 0..IdlePoll::CALM {
            p.learn(Duration::from_millis(100), now);
            let mut r = Ready {
                asked: 0.into(),
                ready_at: 1,
            };
            assert!(rt.block_on(p.poll(&mut r)));
        }
        assert_eq!(p.penalty, first, "the penalty starts over");
        p.learn(Duration::from_millis(100), now);
        let before = Instant::now();
        assert!(!rt.block_on(p.poll(&mut Slow)));
        let until = p.off_until.expect("off again");
        assert!(until >= before + first && until <= Instant::now() + first);
    }

    #[test]
    fn a_long_round_without_a_switch_is_not_a_preemption() {
        // The vCPU held up by the hypervisor: the round is long, but no
        // other thread ran here. The poll goes on until its budget is spent.
        let rt = runtime(1);
        let mut p = IdlePoll::with_switches(Duration::from_secs(1), never_switched);
        p.learn(Duration::from_millis(3), Instant::now());
        let t0 = Instant::now();
        assert!(!rt.block_on(p.poll(&mut Slow)));
        assert!(t0.elapsed() >= Duration::from_millis(6), "the whole budget");
        assert_eq!(p.off_until, None, "not turned off");
        assert_eq!(p.penalty, IdlePoll::OFF_FIRST);
        p.learn(Duration::from_millis(3), Instant::now());
        assert_eq!(p.budget, Duration::from_micros(6002), "still polls");
    }

    #[test]
    fn the_count_is_the_calling_thread_s_involuntary_switches() {
        // The kernel's own count for this thread lies between two reads.
        let proc_count = || -> c_long {
            let status = std::fs::read_to_string("/proc/thread-self/status").expect("status");
            status
                .lines()
                .find_map(|l| l.strip_prefix("nonvoluntary_ctxt_switches:"))
                .and_then(|v| v.trim().parse().ok())
                .expect("nonvoluntary_ctxt_switches")
        };
        let a = involuntary_switches();
        let k = proc_count();
        let b = involuntary_switches();
        assert!(a <= k && k <= b, "{a} <= {k} <= {b}");
    }

    #[test]
    fn frames_in_order_then_eof() {
        let counts = Arc::new(Counts::default());
        let mut input = lnet(0, 0, 0);
        input.extend(lnet(100, 0, 0));
        let mut noop = [0u8; MSG_HDR_SIZE];
        MsgHdrRepr::KEEPALIVE.emit(Endian::Little, &mut noop);
        input.extend(noop);
        input.extend(lnet(3000, 99, 0)); // asks for a ZC ACK
        let back = run(input, &counts, Duration::from_secs(10));
        assert_eq!(counts.parsed.load(Ordering::SeqCst), 3);
        assert_eq!(counts.finalized_rx.load(Ordering::SeqCst), 3);
        // The ZC ACK came back as a NOOP {0, 99}.
        assert_eq!(back.len(), MSG_HDR_SIZE);
        let v = MsgHdr::new_checked(&back, Endian::Little).expect("24 bytes");
        let h = MsgHdrRepr::parse(&v).expect("valid");
        assert_eq!((h.kind, h.zc_req, h.zc_ack), (MsgKind::Noop, 0, 99));
    }

    #[test]
    fn queued_sends_fail_once_when_the_peer_goes() {
        let counts = Arc::new(Counts::default());
        let rt = runtime(1);
        rt.block_on(async {
            let (ours, theirs) = duplex(1024);
            let c = conn(&counts);
            start(c.clone(), ours, Arc::new(Owner(counts.clone())));
            let host = HostHandle::new(H(counts.clone()));
            for i in 0..5u64 {
                let (tx, payload) = put_msg(i, 100_000);
                assert!(c.enqueue(TxGuard::new(tx, payload, host.clone())).is_ok());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            drop(theirs); // the peer vanishes with a full pipe
            while counts.tasks_done.load(Ordering::SeqCst) < 2 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        });
        assert_eq!(counts.finalized_tx.load(Ordering::SeqCst), 5);
    }

    /// A connection that asks for ZC acks of payloads of 1000 bytes or more.
    fn zc_conn(counts: &Arc<Counts>) -> Arc<Conn> {
        conn_with(
            counts,
            ConnCfg {
                sock_timeout: Duration::from_secs(5),
                keepalive: Duration::ZERO,
                zc_min_payload: Some(1000),
                csum: false,
                rx_spin: Duration::from_micros(50),
                rx_poll: Duration::ZERO,
                rx_lowat: true,
            },
        )
    }

    /// A PUT of `len` zero bytes from NID 1 to NID 2, with token `i`.
    fn put_msg(i: u64, len: u32) -> (TxMsg, PayloadSpan) {
        let hdr = Hdr {
            dest_nid: Nid::new4(NET, 2),
            src_nid: Nid::new4(NET, 1),
            dest_pid: 12345,
            src_pid: 12345,
            msg_type: MsgType::PUT,
            payload_length: len,
            body: [0; 40],
        };
        let tx = TxMsg {
            token: MsgToken(i),
            hdr,
            target: Nid::new4(NET, 2),
            target_pid: 12345,
            payload: Payload::new(),
            rx: ROption::RNone,
        };
        (tx, PayloadSpan::from(IoBuf::zeroed(len as usize)))
    }

    /// A NOOP frame header carrying `zc_req` and `zc_ack` (a ZC ACK).
    fn noop(zc_req: u64, zc_ack: u64) -> [u8; MSG_HDR_SIZE] {
        let mut b = [0u8; MSG_HDR_SIZE];
        MsgHdrRepr {
            kind: MsgKind::Noop,
            csum: 0,
            zc_req,
            zc_ack,
        }
        .emit(Endian::Little, &mut b);
        b
    }

    #[test]
    fn our_zc_request_completes_only_on_the_ack() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let counts = Arc::new(Counts::default());
        let rt = runtime(1);
        rt.block_on(async {
            let (ours, mut theirs) = duplex(1 << 20);
            let c = zc_conn(&counts);
            start(c.clone(), ours, Arc::new(Owner(counts.clone())));
            let host = HostHandle::new(H(counts.clone()));
            let (tx, payload) = put_msg(1, 5000);
            assert!(c.enqueue(TxGuard::new(tx, payload, host)).is_ok());
            let mut frame = vec![0u8; MSG_HDR_SIZE + 72 + 5000];
            theirs.read_exact(&mut frame).await.expect("frame");
            let v = MsgHdr::new_checked(&frame, Endian::Little).expect("24 bytes");
            let h = MsgHdrRepr::parse(&v).expect("valid");
            assert_eq!((h.kind, h.zc_req), (MsgKind::Lnet, 2), "first cookie is 2");
            tokio::time::sleep(Duration::from_millis(50)).await;
            assert_eq!(
                counts.finalized_tx.load(Ordering::SeqCst),
                0,
                "not before the ACK"
            );
            let ack = noop(0, 2);
            theirs.write_all(&ack).await.expect("ack");
            while counts.finalized_tx.load(Ordering::SeqCst) == 0 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            // A second ACK of the same cookie is now unknown: protocol error.
            theirs.write_all(&ack).await.expect("ack");
            while !c.is_closed() {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            assert!(c
                .close_reason()
                .is_some_and(|r| r.text.contains("unknown cookie")));
        });
        assert_eq!(counts.finalized_tx.load(Ordering::SeqCst), 1);
    }

    /// Our ZC sends acknowledged by a pair and by a range complete once
    /// each; a range that covers none of our cookies is a protocol error.
    #[test]
    fn zc_acks_by_pair_and_range_complete_each_send_once() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let counts = Arc::new(Counts::default());
        let rt = runtime(1);
        rt.block_on(async {
            let (ours, mut theirs) = duplex(1 << 20);
            let c = zc_conn(&counts);
            start(c.clone(), ours, Arc::new(Owner(counts.clone())));
            let host = HostHandle::new(H(counts.clone()));
            for i in 0..4u64 {
                let (tx, payload) = put_msg(i, 2000);
                assert!(c.enqueue(TxGuard::new(tx, payload, host.clone())).is_ok());
            }
            let mut cookies = Vec::new();
            for _ in 0..4 {
                let mut frame = vec![0u8; MSG_HDR_SIZE + 72 + 2000];
                theirs.read_exact(&mut frame).await.expect("frame");
                let v = MsgHdr::new_checked(&frame, Endian::Little).expect("24 bytes");
                cookies.push(MsgHdrRepr::parse(&v).expect("valid").zc_req);
            }
            assert_eq!(cookies, [2, 3, 4, 5]);
            let wait_for = |n| {
                let counts = counts.clone();
                async move {
                    while counts.finalized_tx.load(Ordering::SeqCst) < n {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                }
            };
            // A pair ({3, 2}: the first is the larger), then a range ({4, 9}).
            theirs.write_all(&noop(3, 2)).await.expect("pair");
            wait_for(2).await;
            theirs.write_all(&noop(4, 9)).await.expect("range");
            wait_for(4).await;
            theirs.write_all(&noop(20, 30)).await.expect("stray range");
            while !c.is_closed() {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            assert!(c
                .close_reason()
                .is_some_and(|r| r.text.contains("unknown cookie")));
        });
        assert_eq!(counts.finalized_tx.load(Ordering::SeqCst), 4);
    }

    /// Receives into full-size buffers and keeps them, to check their bytes;
    /// with a span in `first`, the first message goes into it instead.
    struct Keep(Owner, Mutex<Vec<IoBuf>>, Option<PayloadSpan>);
    impl ConnOwner for Keep {
        fn parse(&self, conn: &Arc<Conn>, hdr: Hdr, rx: RxToken) -> Result<(), String> {
            if let Some(first) = &self.2 {
                if self.0 .0.parsed.load(Ordering::SeqCst) == 0 {
                    return receive_into(&self.0 .0, conn, &hdr, rx, first.clone());
                }
            }
            let buf = IoBuf::zeroed(hdr.payload_length as usize);
            lock(&self.1).push(buf.clone());
            receive_into(&self.0 .0, conn, &hdr, rx, PayloadSpan::from(buf))
        }
        fn conn_failed(&self, conn: &Arc<Conn>, why: CloseReason) {
            self.0.conn_failed(conn, why);
        }
        fn task_done(&self) {
            self.0.task_done();
        }
        fn log(&self, level: LogLevel, msg: &str) {
            self.0.log(level, msg);
        }
    }

    /// Over a real TCP socket: a large payload that arrives in pieces, with
    /// gaps shorter than the reader's polling window and much longer ones
    /// (it sleeps and is woken), then a burst of small messages in one
    /// segment (served from the read buffer). Every byte lands in place.
    #[test]
    fn tcp_payloads_in_pieces_and_small_bursts_arrive_intact() {
        let counts = Arc::new(Counts::default());
        let rt = runtime(2);
        let keep = Arc::new(Keep(Owner(counts.clone()), Mutex::new(Vec::new()), None));
        rt.block_on(async {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let addr = l.local_addr().expect("addr");
            let mut peer = tokio::net::TcpStream::connect(addr).await.expect("connect");
            let (ours, _) = l.accept().await.expect("accept");
            let c = conn(&counts);
            start(c.clone(), ours, keep.clone());
            let big = lnet(300_000, 0, 0);
            let gaps = [0u64, 5, 20, 3000, 0, 40, 8000, 1];
            let piece = big.len() / gaps.len() + 1;
            for (chunk, gap) in big.chunks(piece).zip(gaps) {
                peer.write_all(chunk).await.expect("write");
                peer.flush().await.expect("flush");
                std::thread::sleep(Duration::from_micros(gap));
            }
            let mut burst = Vec::new();
            for len in [0u32, 1, 100, 4000, 17, 20_000, 3] {
                burst.extend(lnet(len, 0, 0));
            }
            peer.write_all(&burst).await.expect("write burst");
            peer.write_all(&lnet(70_000, 0, 0))
                .await
                .expect("write last");
            let t0 = std::time::Instant::now();
            while counts.finalized_rx.load(Ordering::SeqCst) < 9 {
                assert!(
                    t0.elapsed() < Duration::from_secs(10),
                    "messages not all delivered"
                );
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            drop(peer);
            while counts.tasks_done.load(Ordering::SeqCst) < 2 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        });
        assert_eq!(counts.parsed.load(Ordering::SeqCst), 9);
        let bufs = lock(&keep.1);
        let lens: Vec<usize> = bufs.iter().map(IoBuf::len).collect();
        assert_eq!(lens, [300_000, 0, 1, 100, 4000, 17, 20_000, 3, 70_000]);
        for b in bufs.iter() {
            let want: Vec<u8> = (0..b.len()).map(|i| i as u8).collect();
            assert!(
                b.to_vec().expect("free") == want,
                "payload of {} bytes corrupted",
                b.len()
            );
        }
    }

    /// Over a real TCP socket with `rx_lowat` (the default): a 1 MiB
    /// payload whose rest comes in 16 pieces 20 ms apart, then a small
    /// message with nothing after it. Returns the connection's payload
    /// reads and the received lengths; every byte is checked. With
    /// `rcvbuf`, our socket's receive buffer is locked to it first.
    fn lowat_case(rcvbuf: Option<usize>) -> (u64, Vec<usize>) {
        let counts = Arc::new(Counts::default());
        let rt = runtime(2);
        let keep = Arc::new(Keep(Owner(counts.clone()), Mutex::new(Vec::new()), None));
        // A stuck read would close only after 60 s; the test waits 30.
        let cfg = ConnCfg {
            sock_timeout: Duration::from_secs(60),
            keepalive: Duration::ZERO,
            zc_min_payload: None,
            csum: false,
            rx_spin: Duration::from_micros(50),
            rx_poll: Duration::ZERO,
            rx_lowat: true,
        };
        let c = conn_with(&counts, cfg);
        rt.block_on(async {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let addr = l.local_addr().expect("addr");
            let mut peer = tokio::net::TcpStream::connect(addr).await.expect("connect");
            let (ours, _) = l.accept().await.expect("accept");
            if let Some(n) = rcvbuf {
                socket2::SockRef::from(&ours)
                    .set_recv_buffer_size(n)
                    .expect("rcvbuf");
            }
            start(c.clone(), ours, keep.clone());
            let big = lnet(1 << 20, 0, 0);
            for chunk in big.chunks(big.len() / 16 + 1) {
                peer.write_all(chunk).await.expect("write");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            peer.write_all(&lnet(10, 0, 0)).await.expect("write small");
            let t0 = std::time::Instant::now();
            while counts.finalized_rx.load(Ordering::SeqCst) < 2 {
                assert!(
                    t0.elapsed() < Duration::from_secs(30),
                    "the message behind the large one was not delivered ({} of 2)",
                    counts.finalized_rx.load(Ordering::SeqCst)
                );
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            drop(peer);
            while counts.tasks_done.load(Ordering::SeqCst) < 2 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        });
        let bufs = lock(&keep.1);
        for b in bufs.iter() {
            let want: Vec<u8> = (0..b.len()).map(|i| i as u8).collect();
            assert!(
                b.to_vec().expect("free") == want,
                "payload of {} bytes corrupted",
                b.len()
            );
        }
        (c.payload_reads(), bufs.iter().map(IoBuf::len).collect())
    }

    /// The reader sleeps until the rest of a large payload is there (the
    /// socket's low-water mark): a few reads for 16 pieces, where a reader
    /// woken at every piece makes 15 or more; and the mark is back to 1
    /// for what follows (a small message alone behind it arrives).
    #[test]
    fn a_large_payload_in_pieces_is_read_whole_and_what_follows_arrives() {
        let (reads, lens) = lowat_case(None);
        assert_eq!(lens, [1 << 20, 10]);
        assert!(
            (1..=8).contains(&reads),
            "{reads} reads for a 1 MiB payload in 16 pieces"
        );
    }

    /// With a locked receive buffer smaller than the payload (the kernel
    /// caps the mark at half of it), the reader is woken as it fills and
    /// the mark follows the rest down: nothing stalls.
    #[test]
    fn a_small_locked_receive_buffer_does_not_stall_the_low_water_mark() {
        let (reads, lens) = lowat_case(Some(64 * 1024));
        assert_eq!(lens, [1 << 20, 10]);
        assert!(reads >= 2, "{reads} reads through a 128 KiB buffer");
    }

    /// Over a real TCP socket: a 1 MiB payload received into 256 pages of
    /// 4 KiB (an MD's kiov), sent in 16 pieces 10 ms apart, then a 3-page
    /// window whose middle page is borrowed elsewhere, then a small
    /// message. The pages are filled by vectored reads of up to 64 pages
    /// (a few reads, not one per page); the busy page fails its message
    /// with EBUSY, its bytes skipped, the pages around it filled; what
    /// follows arrives intact.
    #[test]
    fn pages_are_filled_by_vectored_reads_and_a_busy_page_keeps_the_stream_in_step() {
        const PAGE: usize = 4096;
        let counts = Arc::new(Counts::default());
        let statuses = Arc::new(Mutex::new(Vec::new()));
        let pages: Vec<IoBuf> = (0..256).map(|_| IoBuf::zeroed(PAGE)).collect();
        let first = PayloadSpan::from(pages.iter().cloned().collect::<Payload>());
        let owner = Arc::new(Keep(
            Owner(counts.clone()),
            Mutex::new(Vec::new()),
            Some(first),
        ));
        let (a, busy, c) = (
            IoBuf::zeroed(PAGE),
            IoBuf::zeroed(PAGE),
            IoBuf::zeroed(PAGE),
        );
        let trio = PayloadSpan::from(
            [a.clone(), busy.clone(), c.clone()]
                .into_iter()
                .collect::<Payload>(),
        );
        let held = busy.borrow().expect("free");
        let rt = runtime(2);
        let cfg = ConnCfg {
            sock_timeout: Duration::from_secs(60),
            keepalive: Duration::ZERO,
            zc_min_payload: None,
            csum: false,
            rx_spin: Duration::from_micros(50),
            rx_poll: Duration::ZERO,
            rx_lowat: true,
        };
        let host = HostHandle::new(Statuses(statuses.clone()));
        let conn = Conn::new(7, &crate::fuzzing::peer(), false, None, cfg, host);
        /// The second message goes into `trio`, the others as `Keep` does.
        struct Second(Arc<Keep>, PayloadSpan);
        impl ConnOwner for Second {
            fn parse(&self, conn: &Arc<Conn>, hdr: Hdr, rx: RxToken) -> Result<(), String> {
                let k = &self.0;
                if k.0 .0.parsed.load(Ordering::SeqCst) == 1 {
                    return receive_into(&k.0 .0, conn, &hdr, rx, self.1.clone());
                }
                k.parse(conn, hdr, rx)
            }
            fn conn_failed(&self, conn: &Arc<Conn>, why: CloseReason) {
                self.0.conn_failed(conn, why);
            }
            fn task_done(&self) {
                self.0.task_done();
            }
            fn log(&self, level: LogLevel, msg: &str) {
                self.0.log(level, msg);
            }
        }
        let second = Arc::new(Second(owner.clone(), trio));
        rt.block_on(async {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let addr = l.local_addr().expect("addr");
            let mut peer = tokio::net::TcpStream::connect(addr).await.expect("connect");
            let (ours, _) = l.accept().await.expect("accept");
            start(conn.clone(), ours, second.clone());
            let big = lnet(1 << 20, 0, 0);
            for chunk in big.chunks(big.len() / 16 + 1) {
                peer.write_all(chunk).await.expect("write");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            let mut rest = lnet(3 * PAGE as u32, 0, 0);
            rest.extend(lnet(100, 0, 0));
            peer.write_all(&rest).await.expect("write");
            let t0 = std::time::Instant::now();
            while lock(&statuses).len() < 3 {
                assert!(
                    t0.elapsed() < Duration::from_secs(30),
                    "{} of 3 messages finished",
                    lock(&statuses).len()
                );
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            drop(peer);
            while counts.tasks_done.load(Ordering::SeqCst) < 2 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        });
        drop(held);
        let busy_status = Completion::failed(errno::EBUSY, HealthStatus::LOCAL_ERROR);
        let got: Vec<Completion> = lock(&statuses).iter().map(|(_, c)| *c).collect();
        assert_eq!(got, [Completion::OK, busy_status, Completion::OK]);
        let sent: Vec<u8> = (0..1 << 20).map(|i| i as u8).collect();
        for (i, p) in pages.iter().enumerate() {
            assert!(
                p.to_vec().expect("free") == sent[i * PAGE..(i + 1) * PAGE],
                "page {i} of the 1 MiB payload"
            );
        }
        let reads = conn.payload_reads();
        assert!(
            (1..=40).contains(&reads),
            "{reads} reads for 1 MiB in 256 pages (and 2 pages of 4 KiB)"
        );
        assert!(a.to_vec().expect("free") == sent[..PAGE]);
        assert!(busy.to_vec().expect("free").iter().all(|&x| x == 0));
        assert!(c.to_vec().expect("free") == sent[2 * PAGE..3 * PAGE]);
        let kept: Vec<usize> = lock(&owner.1).iter().map(IoBuf::len).collect();
        assert_eq!(kept, [100]);
    }

    /// Records completions (token, status), shared with the test.
    struct Statuses(Arc<Mutex<Vec<(u64, Completion)>>>);
    impl lnd_api::Host for Statuses {
        fn parse(&self, _: Hdr, _: Nid, _: RxToken, _: bool) -> Result<(), lnd_api::LndError> {
            Ok(())
        }
        fn finalize(&self, m: MsgToken, c: Completion) {
            lock(&self.0).push((m.0, c));
        }
        fn notify(&self, _: Nid, _: bool) {}
        fn link_state(&self, _: bool) {}
        fn log(&self, _: LogLevel, _: &str) {}
    }

    /// A receive window whose middle piece is borrowed elsewhere: the
    /// pieces around it are filled, its bytes are skipped, the message
    /// fails with EBUSY, and the next messages arrive intact (the stream
    /// stays in step).
    #[test]
    fn a_busy_piece_fails_the_receive_and_keeps_the_stream_in_step() {
        let counts = Arc::new(Counts::default());
        let statuses = Arc::new(Mutex::new(Vec::new()));
        let (a, busy, c) = (
            IoBuf::zeroed(1000),
            IoBuf::zeroed(1000),
            IoBuf::zeroed(2000),
        );
        let whole: Payload = [a.clone(), busy.clone(), c.clone()].into_iter().collect();
        // a[500..], all of busy, c[..1500].
        let window = PayloadSpan::from(whole).sub(500, 3000).expect("in bounds");
        let owner = Arc::new(Keep(
            Owner(counts.clone()),
            Mutex::new(Vec::new()),
            Some(window),
        ));
        let held = busy.borrow().expect("free");
        let rt = runtime(1);
        rt.block_on(async {
            use tokio::io::AsyncWriteExt;
            let (ours, mut theirs) = duplex(1 << 16);
            let cfg = ConnCfg {
                sock_timeout: Duration::from_secs(5),
                keepalive: Duration::ZERO,
                zc_min_payload: None,
                csum: false,
                rx_spin: Duration::from_micros(50),
                rx_poll: Duration::ZERO,
                rx_lowat: true,
            };
            let host = HostHandle::new(Statuses(statuses.clone()));
            let conn = Conn::new(7, &crate::fuzzing::peer(), false, None, cfg, host);
            start(conn, ours, owner.clone());
            let mut input = lnet(3000, 0, 0);
            input.extend(lnet(100, 0, 0));
            input.extend(lnet(5000, 0, 0));
            theirs.write_all(&input).await.expect("write");
            while lock(&statuses).len() < 3 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            drop(theirs);
            while counts.tasks_done.load(Ordering::SeqCst) < 2 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        });
        drop(held);
        let busy_status = Completion::failed(errno::EBUSY, HealthStatus::LOCAL_ERROR);
        let got: Vec<Completion> = lock(&statuses).iter().map(|(_, c)| *c).collect();
        assert_eq!(got, [busy_status, Completion::OK, Completion::OK]);
        let sent: Vec<u8> = (0..3000).map(|i| i as u8).collect();
        let a = a.to_vec().expect("free");
        assert!(
            a[..500].iter().all(|&x| x == 0),
            "written before the window"
        );
        assert!(a[500..] == sent[..500]);
        assert!(busy.to_vec().expect("free").iter().all(|&x| x == 0));
        let c = c.to_vec().expect("free");
        assert!(c[..1500] == sent[1500..]);
        assert!(
            c[1500..].iter().all(|&x| x == 0),
            "written after the window"
        );
        for b in lock(&owner.1).iter() {
            let want: Vec<u8> = (0..b.len()).map(|i| i as u8).collect();
            assert!(b.to_vec().expect("free") == want, "{} bytes", b.len());
        }
    }

    /// The direct path over a real socket: four threads send at once, large
    /// payloads fill the socket (partial writes left to the writer task)
    /// while small ones queue behind; every frame arrives whole and each
    /// thread's frames in the order it sent them; every send completes
    /// once; and some frames went out on the sending thread.
    #[test]
    fn direct_writes_keep_each_senders_order_and_every_byte() {
        use std::io::Read;
        const THREADS: u64 = 4;
        const EACH: u64 = 60;
        let counts = Arc::new(Counts::default());
        let rt = runtime(2);
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = l.local_addr().expect("addr");
        let peer = std::net::TcpStream::connect(addr).expect("connect");
        let (ours, _) = l.accept().expect("accept");
        ours.set_nonblocking(true).expect("nonblocking");
        let c = conn(&counts);
        let hlen = c.hdr_len();
        {
            let _g = rt.enter();
            let s = tokio::net::TcpStream::from_std(ours).expect("tokio socket");
            start(c.clone(), s, Arc::new(Owner(counts.clone())));
        }
        // Sizes cycle through empty, small and larger than a socket buffer.
        let size = |i: u64| [0usize, 100, 4000, 700_000, 17, 65_536][(i % 6) as usize];
        let senders: Vec<_> = (0..THREADS)
            .map(|t| {
                let c = c.clone();
                let host = HostHandle::new(H(counts.clone()));
                std::thread::spawn(move || {
                    for i in 0..EACH {
                        let n = size(i);
                        let (mut tx, _) = put_msg(t << 16 | i, n as u32);
                        tx.hdr.body[..8].copy_from_slice(&(t << 16 | i).to_le_bytes());
                        let data: Vec<u8> = (0..n).map(|k| (k as u64 + t + i) as u8).collect();
                        let buf = IoBuf::from_vec(data);
                        assert!(c
                            .enqueue(TxGuard::new(tx, PayloadSpan::from(buf), host.clone()))
                            .is_ok());
                    }
                })
            })
            .collect();
        let mut r = std::io::BufReader::new(peer);
        let mut next = [0u64; THREADS as usize];
        for _ in 0..THREADS * EACH {
            let mut head = vec![0u8; MSG_HDR_SIZE + hlen];
            r.read_exact(&mut head).expect("frame head");
            let mut h = [0u8; HDR_NID4_SIZE];
            h.copy_from_slice(&head[MSG_HDR_SIZE..]);
            let hdr = Hdr::decode_nid4(&h).expect("LNet header");
            let id = u64::from_le_bytes(hdr.body[..8].try_into().expect("8 bytes"));
            let (t, i) = (id >> 16, id & 0xFFFF);
            assert_eq!(i, next[t as usize], "thread {t}: frame {i} out of order");
            next[t as usize] += 1;
            let n = hdr.payload_length as usize;
            assert_eq!(n, size(i));
            let mut p = vec![0u8; n];
            r.read_exact(&mut p).expect("payload");
            assert!(
                p.iter()
                    .enumerate()
                    .all(|(k, &b)| b == (k as u64 + t + i) as u8),
                "payload of thread {t} frame {i} corrupted"
            );
        }
        for s in senders {
            s.join().expect("sender");
        }
        let t0 = std::time::Instant::now();
        while counts.finalized_tx.load(Ordering::SeqCst) < (THREADS * EACH) as usize {
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "sends not completed"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(
            counts.finalized_tx.load(Ordering::SeqCst),
            (THREADS * EACH) as usize
        );
        assert!(c.direct_frames() > 0, "no frame took the direct path");
        assert_eq!(c.queued_bytes(), 0);
        c.close(CloseReason::shutdown());
        drop(rt);
    }

    /// A peer that asks for ZC ACKs and never reads them: the ACK queue
    /// stops at its bound and the reader stops reading (the peer is held
    /// back by TCP), nothing is dropped; once the peer reads, every
    /// message is received and every cookie acknowledged.
    #[test]
    fn zc_ack_queue_is_bounded_by_back_pressure() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        const N: u64 = 3000;
        let counts = Arc::new(Counts::default());
        let rt = runtime(1);
        rt.block_on(async {
            let (ours, theirs) = duplex(1024);
            let (mut their_r, mut their_w) = tokio::io::split(theirs);
            let c = conn(&counts);
            start(c.clone(), ours, Arc::new(Owner(counts.clone())));
            let flood = tokio::spawn(async move {
                for i in 0..N {
                    their_w
                        .write_all(&lnet(0, 100 + i, 0))
                        .await
                        .expect("write");
                }
                their_w
            });
            // Let it run into the bound.
            let mut last = usize::MAX;
            loop {
                tokio::time::sleep(Duration::from_millis(50)).await;
                let p = counts.parsed.load(Ordering::SeqCst);
                assert!(c.queued_acks() <= ACKS_MAX, "ACK queue past its bound");
                if p == last {
                    break;
                }
                last = p;
            }
            assert!(
                (last as u64) < N,
                "the reader kept reading while ACKs piled up"
            );
            assert_eq!(c.queued_acks(), ACKS_MAX);
            // Now read everything: every cookie comes back once.
            let mut acked = std::collections::BTreeSet::new();
            let mut b = [0u8; MSG_HDR_SIZE];
            while (acked.len() as u64) < N {
                tokio::time::timeout(Duration::from_secs(30), their_r.read_exact(&mut b))
                    .await
                    .expect("ACKs in time")
                    .expect("read");
                let v = MsgHdr::new_checked(&b, Endian::Little).expect("24 bytes");
                let h = MsgHdrRepr::parse(&v).expect("valid");
                assert_eq!(h.kind, MsgKind::Noop);
                for k in [h.zc_req, h.zc_ack] {
                    if k != 0 {
                        assert!(acked.insert(k), "cookie {k} acknowledged twice");
                    }
                }
            }
            assert_eq!(acked, (100..100 + N).collect());
            let _w = flood.await.expect("flood");
            assert_eq!(counts.parsed.load(Ordering::SeqCst) as u64, N);
            c.close(CloseReason::shutdown());
        });
    }

    /// Answers every received message with a send on the same connection,
    /// from inside its `finalize` (as LNet's selftest server replies), and
    /// counts the sends it completes.
    struct Echo(Arc<Counts>, Arc<std::sync::OnceLock<std::sync::Weak<Conn>>>);
    impl lnd_api::Host for Echo {
        fn parse(&self, _: Hdr, _: Nid, _: RxToken, _: bool) -> Result<(), lnd_api::LndError> {
            Ok(())
        }
        fn finalize(&self, m: MsgToken, _: Completion) {
            if m.0 < 1 << 40 {
                self.0.finalized_tx.fetch_add(1, Ordering::SeqCst);
                return;
            }
            self.0.finalized_rx.fetch_add(1, Ordering::SeqCst);
            let Some(c) = self.1.get().and_then(std::sync::Weak::upgrade) else {
                return;
            };
            let i = m.0 & 0xFFFF;
            let (mut tx, _) = put_msg(i, 8);
            tx.hdr.body[..8].copy_from_slice(&i.to_le_bytes());
            let payload = PayloadSpan::from(IoBuf::from_vec(i.to_le_bytes().to_vec()));
            let host = HostHandle::new(H(self.0.clone()));
            assert!(c.enqueue(TxGuard::new(tx, payload, host)).is_ok());
        }
        fn notify(&self, _: Nid, _: bool) {}
        fn link_state(&self, _: bool) {}
        fn log(&self, _: LogLevel, _: &str) {}
    }

    /// A burst of requests read at once is answered in order, every reply
    /// whole, in a few vectored writes instead of one per reply: after the
    /// first reply, the reader corks the connection while its buffer holds
    /// more messages.
    #[test]
    fn a_burst_read_at_once_is_answered_in_one_write() {
        use std::io::{Read, Write};
        const N: u64 = 40;
        let counts = Arc::new(Counts::default());
        let rt = runtime(2);
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = l.local_addr().expect("addr");
        let mut peer = std::net::TcpStream::connect(addr).expect("connect");
        let (ours, _) = l.accept().expect("accept");
        ours.set_nonblocking(true).expect("nonblocking");
        let slot = Arc::new(std::sync::OnceLock::new());
        let c = Conn::new(
            7,
            &crate::fuzzing::peer(),
            false,
            None,
            ConnCfg {
                sock_timeout: Duration::from_secs(30),
                ..conn(&counts).cfg
            },
            HostHandle::new(Echo(counts.clone(), slot.clone())),
        );
        assert!(slot.set(Arc::downgrade(&c)).is_ok());
        let hlen = c.hdr_len();
        {
            let _g = rt.enter();
            let s = tokio::net::TcpStream::from_std(ours).expect("tokio socket");
            start(c.clone(), s, Arc::new(Owner(counts.clone())));
        }
        // One write: the reader's first read holds the whole burst.
        let mut burst = Vec::new();
        for _ in 0..N {
            burst.extend(lnet(0, 0, 0));
        }
        peer.write_all(&burst).expect("write burst");
        peer.set_read_timeout(Some(Duration::from_secs(60)))
            .expect("timeout");
        for i in 0..N {
            let mut head = vec![0u8; MSG_HDR_SIZE + hlen];
            peer.read_exact(&mut head).expect("reply head");
            let mut h = [0u8; HDR_NID4_SIZE];
            h.copy_from_slice(&head[MSG_HDR_SIZE..]);
            let hdr = Hdr::decode_nid4(&h).expect("LNet header");
            assert_eq!(hdr.body[..8], i.to_le_bytes(), "reply {i} out of order");
            assert_eq!(hdr.payload_length, 8);
            let mut p = [0u8; 8];
            peer.read_exact(&mut p).expect("reply payload");
            assert_eq!(p, i.to_le_bytes(), "reply {i} payload");
        }
        let t0 = std::time::Instant::now();
        while counts.finalized_tx.load(Ordering::SeqCst) < N as usize {
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "replies not completed"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        let (frames, writes) = c.tx_writes();
        assert_eq!(frames, N);
        // Without corking each reply is its own write; corked, the first
        // reply goes at once (the peer has work meanwhile) and then a batch
        // (16 frames) goes in one.
        assert!(writes <= 4, "{N} replies took {writes} writes");
        assert_eq!(counts.finalized_rx.load(Ordering::SeqCst), N as usize);
        assert_eq!(c.queued_bytes(), 0);
        c.close(CloseReason::shutdown());
        drop(rt);
    }

    /// A runtime for a test: the current thread alone (`workers` 1), or
    /// that many worker threads.
    fn runtime(workers: usize) -> tokio::runtime::Runtime {
        let mut b = if workers == 1 {
            tokio::runtime::Builder::new_current_thread()
        } else {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(workers);
            b
        };
        b.enable_all().build().expect("runtime")
    }

    /// A loopback TCP pair: ours (non-blocking, for the runtime) and the
    /// peer's blocking end.
    fn tcp_pair() -> (std::net::TcpStream, std::net::TcpStream) {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let peer = std::net::TcpStream::connect(l.local_addr().expect("addr")).expect("connect");
        let (ours, _) = l.accept().expect("accept");
        ours.set_nonblocking(true).expect("nonblocking");
        (ours, peer)
    }

    /// Reads `n` LNET frames (V3, NID4 headers) from `r`: the id in the
    /// first 8 bytes of each header's body, and the payload.
    fn read_frames_from(r: &std::net::TcpStream, n: usize) -> Vec<(u64, Vec<u8>)> {
        use std::io::Read;
        let mut r = std::io::BufReader::new(r);
        let mut out = Vec::new();
        for _ in 0..n {
            let mut head = [0u8; MSG_HDR_SIZE + HDR_NID4_SIZE];
            r.read_exact(&mut head).expect("frame head");
            let mut h = [0u8; HDR_NID4_SIZE];
            h.copy_from_slice(&head[MSG_HDR_SIZE..]);
            let hdr = Hdr::decode_nid4(&h).expect("LNet header");
            let id = u64::from_le_bytes(hdr.body[..8].try_into().expect("8 bytes"));
            let mut p = vec![0u8; hdr.payload_length as usize];
            r.read_exact(&mut p).expect("payload");
            out.push((id, p));
        }
        out
    }

    /// A PUT with id `i` whose payload is `frags`, concatenated.
    fn put_frags(i: u64, frags: Vec<IoBuf>) -> (TxMsg, PayloadSpan) {
        let whole: Payload = frags.into_iter().collect();
        let span = PayloadSpan::from(whole);
        let (mut tx, _) = put_msg(i, span.len() as u32);
        tx.hdr.body[..8].copy_from_slice(&i.to_le_bytes());
        (tx, span)
    }

    /// The bytes of message `i`, piece `k` (`len` bytes).
    fn pattern(i: u64, k: usize, len: usize) -> Vec<u8> {
        (0..len)
            .map(|j| (j as u64 * 7 + i * 13 + k as u64) as u8)
            .collect()
    }

    /// Sends queued behind each other go out many to a vectored write:
    /// 200 messages of 0 to 6 pieces each, and every 50th of 300 pieces
    /// (more than one write's slices: a write ends inside its payload),
    /// arrive whole and in order, each completes once, and the writes
    /// that carried them are far fewer than the frames (about 100 KiB in
    /// all, so the socket buffers take them without the peer's help).
    #[test]
    fn queued_sends_share_vectored_writes_and_keep_order() {
        const N: u64 = 200;
        let counts = Arc::new(Counts::default());
        let rt = runtime(1);
        let (ours, peer) = tcp_pair();
        let c = conn(&counts);
        let host = HostHandle::new(H(counts.clone()));
        let lens = |i: u64| -> Vec<usize> {
            if i % 50 == 25 {
                return vec![7; 300];
            }
            (0..(i % 7) as usize)
                .map(|k| [1usize, 100, 17, 300, 3, 60][(i as usize + k) % 6])
                .collect()
        };
        let mut want = Vec::new();
        {
            let _g = rt.enter();
            let s = tokio::net::TcpStream::from_std(ours).expect("tokio socket");
            start(c.clone(), s, Arc::new(Owner(counts.clone())));
            // Queued before the writer task first runs (this runtime runs
            // tasks only inside block_on).
            for i in 0..N {
                let frags: Vec<IoBuf> = lens(i)
                    .into_iter()
                    .enumerate()
                    .map(|(k, n)| IoBuf::from_vec(pattern(i, k, n)))
                    .collect();
                want.push((
                    i,
                    frags
                        .iter()
                        .flat_map(|b| b.to_vec().expect("free"))
                        .collect::<Vec<u8>>(),
                ));
                let (tx, span) = put_frags(i, frags);
                assert!(c
                    .enqueue_queued(TxGuard::new(tx, span, host.clone()))
                    .is_ok());
            }
        }
        let reader = std::thread::spawn(move || (read_frames_from(&peer, N as usize), peer));
        rt.block_on(async {
            let t0 = std::time::Instant::now();
            while counts.finalized_tx.load(Ordering::SeqCst) < N as usize {
                assert!(
                    t0.elapsed() < Duration::from_secs(30),
                    "sends not completed"
                );
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        });
        let (got, _peer) = reader.join().expect("reader");
        assert!(got == want, "frames reordered or corrupted");
        assert_eq!(counts.finalized_tx.load(Ordering::SeqCst), N as usize);
        let (frames, writes) = c.tx_writes();
        assert_eq!(frames, N);
        // 16 frames a batch: 13 batches when the socket takes each whole.
        assert!(
            writes >= N / BATCH_FRAMES as u64 && writes <= N / 4,
            "{writes} writes for {frames} frames"
        );
        assert_eq!(c.direct_frames(), 0);
        c.close(CloseReason::shutdown());
        drop(rt);
    }

    /// In a batch, a send whose memory is being written elsewhere fails
    /// alone with EBUSY: the frames before it go out (the write stops
    /// short of it), the ones after it too, in order, and the stream
    /// stays in step.
    #[test]
    fn a_busy_send_in_a_batch_fails_alone() {
        let counts = Arc::new(Counts::default());
        let done = Arc::new(Mutex::new(Vec::new()));
        let rt = runtime(1);
        let (ours, peer) = tcp_pair();
        let c = conn(&counts);
        let host = HostHandle::new(Statuses(done.clone()));
        let busy = IoBuf::from_vec(pattern(1, 0, 500));
        let held = busy.borrow_mut().expect("free");
        {
            let _g = rt.enter();
            let s = tokio::net::TcpStream::from_std(ours).expect("tokio socket");
            start(c.clone(), s, Arc::new(Owner(counts.clone())));
            for i in 0..4u64 {
                let frags = if i == 1 {
                    vec![IoBuf::from_vec(pattern(i, 0, 10)), busy.clone()]
                } else {
                    vec![IoBuf::from_vec(pattern(i, 0, 300))]
                };
                let (tx, span) = put_frags(i, frags);
                assert!(c
                    .enqueue_queued(TxGuard::new(tx, span, host.clone()))
                    .is_ok());
            }
        }
        // The peer stays connected until the end (its close would close ours).
        let reader = std::thread::spawn(move || (read_frames_from(&peer, 3), peer));
        rt.block_on(async {
            let t0 = std::time::Instant::now();
            while lock(&done).len() < 4 {
                assert!(
                    t0.elapsed() < Duration::from_secs(30),
                    "sends not completed"
                );
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        });
        drop(held);
        let (got, _peer) = reader.join().expect("reader");
        let ids: Vec<u64> = got.iter().map(|(i, _)| *i).collect();
        assert_eq!(ids, [0, 2, 3]);
        for (i, p) in &got {
            assert!(*p == pattern(*i, 0, 300), "payload of {i} corrupted");
        }
        let busy_status = Completion::failed(errno::EBUSY, HealthStatus::LOCAL_ERROR);
        assert_eq!(
            *lock(&done),
            [
                (0, Completion::OK),
                (1, busy_status),
                (2, Completion::OK),
                (3, Completion::OK)
            ]
        );
        assert!(!c.is_closed(), "a busy send closed the connection");
        c.close(CloseReason::shutdown());
        drop(rt);
    }

    /// The reader and the writer watch the close through a waker of their
    /// own (`unless_closed`): after the reader was woken for many messages
    /// (its close watch not polled each time), a close still ends both
    /// tasks. The stream is in memory and stays open, so the close alone
    /// ends them (a socket's shutdown would end the reader by itself), and
    /// the reader takes no message after it.
    #[test]
    fn a_close_ends_both_tasks_after_traffic() {
        use tokio::io::AsyncWriteExt;
        const N: usize = 20;
        let counts = Arc::new(Counts::default());
        let rt = runtime(2);
        let (ours, mut peer) = tokio::io::duplex(1 << 16);
        let c = conn_with(
            &counts,
            ConnCfg {
                sock_timeout: Duration::from_secs(60),
                ..conn(&counts).cfg
            },
        );
        {
            let _g = rt.enter();
            start(c.clone(), ours, Arc::new(Owner(counts.clone())));
        }
        let wait = |what: &str, done: &dyn Fn() -> bool| {
            let t0 = std::time::Instant::now();
            while !done() {
                assert!(t0.elapsed() < Duration::from_secs(60), "{what}");
                std::thread::sleep(Duration::from_millis(1));
            }
        };
        // One message at a time, each sent after the last was taken: the
        // reader waits and wakes once per message.
        for i in 0..N {
            rt.block_on(peer.write_all(&lnet(0, 0, 0)))
                .expect("write message");
            wait("message not received", &|| {
                counts.finalized_rx.load(Ordering::SeqCst) > i
            });
        }
        assert_eq!(counts.tasks_done.load(Ordering::SeqCst), 0);
        assert!(c.close(CloseReason::shutdown()));
        wait("a task did not end on close", &|| {
            counts.tasks_done.load(Ordering::SeqCst) == 2
        });
        // Ended by the close, not by a failure of their own.
        assert_eq!(counts.failed.load(Ordering::SeqCst), 0);
        // Both ends of the stream were let go with their tasks.
        assert!(rt.block_on(peer.write_all(&lnet(0, 0, 0))).is_err());
        assert_eq!(counts.parsed.load(Ordering::SeqCst), N);
        drop(peer);
        drop(rt);
    }

    /// A peer that stops reading: the direct sender fills the socket and
    /// leaves the rest of its batch to the writer task, later sends queue;
    /// a close then completes every send exactly once (those not written
    /// with the close status), none twice, none lost.
    #[test]
    fn a_close_completes_half_written_batches_once() {
        const N: u64 = 40;
        let done = Arc::new(Mutex::new(Vec::new()));
        let counts = Arc::new(Counts::default());
        let rt = runtime(1);
        let (ours, peer) = tcp_pair();
        let c = conn(&counts);
        let host = HostHandle::new(Statuses(done.clone()));
        {
            let _g = rt.enter();
            let s = tokio::net::TcpStream::from_std(ours).expect("tokio socket");
            start(c.clone(), s, Arc::new(Owner(counts.clone())));
            for i in 0..N {
                let (tx, span) = put_frags(i, vec![IoBuf::zeroed(1 << 20)]);
                assert!(c.enqueue(TxGuard::new(tx, span, host.clone())).is_ok());
            }
        }
        // 40 MiB do not fit in the socket buffers: some are left over.
        assert!(c.queued_bytes() > 0, "everything fit in the socket");
        rt.block_on(async {
            // The writer task runs and waits for room that never comes.
            tokio::time::sleep(Duration::from_millis(100)).await;
            assert!(c.close(CloseReason::shutdown()));
            let t0 = std::time::Instant::now();
            while lock(&done).len() < N as usize {
                assert!(
                    t0.elapsed() < Duration::from_secs(30),
                    "sends not completed"
                );
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        });
        drop(peer);
        let got = lock(&done).clone();
        let mut ids: Vec<u64> = got.iter().map(|(i, _)| *i).collect();
        ids.sort_unstable();
        assert_eq!(
            ids,
            (0..N).collect::<Vec<_>>(),
            "a send completed twice or never"
        );
        let shut = CloseReason::shutdown().status;
        let failed = got.iter().filter(|(_, st)| *st == shut).count();
        let ok = got.iter().filter(|(_, st)| *st == Completion::OK).count();
        assert_eq!(ok + failed, N as usize);
        assert!(failed > 0, "no send was cut by the close");
        // The written ones are a prefix: order is kept.
        assert!(got
            .iter()
            .filter(|(_, st)| *st == Completion::OK)
            .all(|(i, _)| (*i as usize) < ok));
        drop(rt);
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]
        /// Random frames, garbage and truncation: never a panic, every
        /// parsed message finalized exactly once, the connection closed.
        #[test]
        fn random_streams(parts in proptest::collection::vec((0u8..5, 0u32..5000, any::<u64>(), proptest::collection::vec(any::<u8>(), 0..64)), 0..8), cut in any::<prop::sample::Index>()) {
            let mut input = Vec::new();
            for (kind, len, cookie, junk) in &parts {
                match kind {
                    0 => input.extend(lnet(*len, 0, 0)),
                    1 => input.extend(lnet(*len, *cookie, 0)),
                    2 => {
                        let mut n = [0u8; MSG_HDR_SIZE];
                        MsgHdrRepr { kind: MsgKind::Noop, csum: 0, zc_req: 0, zc_ack: *cookie }.emit(Endian::Little, &mut n);
                        input.extend(n);
                    }
                    3 => input.extend(junk),
                    _ => {
                        // A header announcing more than LNET_MTU (no payload follows).
                        let mut m = lnet(0, 0, 0);
                        let bad = (1u32 << 20) + 1 + *len;
                        m[MSG_HDR_SIZE + 28..MSG_HDR_SIZE + 32].copy_from_slice(&bad.to_le_bytes());
                        input.extend(m);
                    }
                }
            }
            if !input.is_empty() {
                let at = cut.index(input.len() + 1);
                input.truncate(at);
            }
            let counts = Arc::new(Counts::default());
            run(input, &counts, Duration::from_millis(5));
            prop_assert_eq!(counts.parsed.load(Ordering::SeqCst), counts.finalized_rx.load(Ordering::SeqCst));
        }
    }
}
