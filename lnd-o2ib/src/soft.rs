//! The `soft` verbs provider: reliable-connected queue pairs, memory
//! registration with keys, SEND/RECV, RDMA READ/WRITE, completion queues and
//! the connection exchange with private data, in user space over TCP.
//!
//! One TCP connection carries one QP. Each QP has a reader thread (the
//! "NIC" responder: it checks keys and bounds, moves bytes into registered
//! memory, answers) and a writer thread fed by a queue, so a responder never
//! blocks on its own transmit path. Every work request that reaches the
//! peer is acknowledged in order (RC semantics): a SEND/WRITE completes on
//! its ACK, a READ on its response.
//!
//! The data path avoids hand-offs between threads: a CQ with a handler
//! ([`SoftCq::set_handler`]) runs it on the thread that made the
//! completion (the reader, for receives and acknowledged sends); a small
//! frame that finds the writer asleep with nothing queued is sent by the
//! posting thread itself without waiting (the writer gets only what the
//! socket did not take); the writer writes everything queued as one batch
//! with vectored writes, leaving out ACKs a later answer covers; the
//! reader polls the socket for up to [`RX_SPIN`] for the rest of an RDMA
//! WRITE in flight before it sleeps. RDMA WRITE data goes from the
//! requester's registered memory to the socket and from the socket into
//! the responder's, with no staging copy.
//!
//! Failure modes are those of real verbs: a bad rkey, an access out of the
//! registered bounds or without the right gives `REM_ACCESS_ERR` at the
//! requester and moves both QPs to the error state; a bad lkey gives
//! `LOC_PROT_ERR`; a SEND with no receive posted waits the RNR time and
//! then fails `RNR_RETRY_EXC_ERR`; a lost connection fails what is in
//! flight with `RETRY_EXC_ERR`; after an error every other posted request
//! (receives included) completes with `WR_FLUSH_ERR`, and requests posted
//! later too.
//!
//! Frames (little-endian): a 32-byte header `{op u8, pad[3], a u32, b u64,
//! c u64, len u32, pad u32}` followed by `len` bytes of data.

use std::collections::{HashMap, VecDeque};
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use lnd_api::PayloadSpan;

use crate::verbs::{
    Access, CmEvent, RecvWr, SendOp, SendWr, Sge, VerbsError, Wc, WcOpcode, WcStatus,
    MAX_REJ_PRIVATE_DATA, MAX_REP_PRIVATE_DATA, MAX_REQ_PRIVATE_DATA,
};

const OP_CM_REQ: u8 = 1;
const OP_CM_REP: u8 = 2;
const OP_CM_REJ: u8 = 3;
const OP_SEND: u8 = 4;
const OP_WRITE: u8 = 5;
const OP_READ_REQ: u8 = 6;
const OP_READ_RESP: u8 = 7;
const OP_ACK: u8 = 8;
const OP_NAK: u8 = 9;
const OP_DISCONNECT: u8 = 10;
const OP_CM_RTU: u8 = 11;
const FRAME_HDR: usize = 32;
/// Largest single transfer (an RDMA of 1 MiB plus slack).
const MAX_XFER: u32 = 16 << 20;
/// How long the reader polls the socket for more of an RDMA WRITE's data
/// in flight, since the last bytes came, before it sleeps in a blocking
/// read (as lnd-sock's `rx_spin_us`, 50 by default): the rest of a frame
/// on a fast path comes sooner than a sleeping thread is woken, and the
/// sender, which wakes the reader on loopback, then rarely pays for it.
const RX_SPIN: Duration = Duration::from_micros(50);

/// NAK reasons.
const NAK_ACCESS: u32 = 1;
const NAK_INV_REQ: u32 = 2;
const NAK_RNR: u32 = 3;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[derive(Clone, Copy, Default, Debug)]
struct FrameHdr {
    op: u8,
    a: u32,
    b: u64,
    c: u64,
    len: u32,
}

impl FrameHdr {
    fn encode(&self) -> [u8; FRAME_HDR] {
        let mut h = [0u8; FRAME_HDR];
        h[0] = self.op;
        h[4..8].copy_from_slice(&self.a.to_le_bytes());
        h[8..16].copy_from_slice(&self.b.to_le_bytes());
        h[16..24].copy_from_slice(&self.c.to_le_bytes());
        h[24..28].copy_from_slice(&self.len.to_le_bytes());
        h
    }
    fn decode(h: &[u8; FRAME_HDR]) -> FrameHdr {
        let u32_at = |o: usize| u32::from_le_bytes([h[o], h[o + 1], h[o + 2], h[o + 3]]);
        let u64_at = |o: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&h[o..o + 8]);
            u64::from_le_bytes(a)
        };
        FrameHdr {
            op: h[0],
            a: u32_at(4),
            b: u64_at(8),
            c: u64_at(16),
            len: u32_at(24),
        }
    }
}

fn read_frame(s: &mut TcpStream) -> std::io::Result<(FrameHdr, Vec<u8>)> {
    let mut h = [0u8; FRAME_HDR];
    s.read_exact(&mut h)?;
    let f = FrameHdr::decode(&h);
    if f.len > MAX_XFER {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("soft verbs frame of {} bytes", f.len),
        ));
    }
    let mut data = vec![0u8; f.len as usize];
    s.read_exact(&mut data)?;
    Ok((f, data))
}

/// `read_exact` that polls the socket (`MSG_DONTWAIT`) for up to
/// [`RX_SPIN`] since the last progress before it sleeps in a blocking
/// read.
fn read_spinning(s: &mut TcpStream, buf: &mut [u8]) -> std::io::Result<()> {
    let mut done = 0;
    let mut progress = Instant::now();
    while done < buf.len() {
        let n = match crate::sys::sock::recv_now(s, &mut buf[done..]) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if progress.elapsed() < RX_SPIN {
                    std::hint::spin_loop();
                    continue;
                }
                match s.read(&mut buf[done..]) {
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                }
            }
            Err(e) => return Err(e),
        };
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        done += n;
        progress = Instant::now();
    }
    Ok(())
}

fn write_frame(s: &mut TcpStream, f: FrameHdr, data: &[u8]) -> std::io::Result<()> {
    let f = FrameHdr {
        len: data.len() as u32,
        ..f
    };
    s.write_all(&f.encode())?;
    s.write_all(data)
}

/// Largest frame data a posting thread sends itself (see
/// [`SoftQp::enqueue`]): messages and acknowledgments, not bulk.
const DIRECT_MAX: usize = 8192;

/// Most iovecs one `writev` takes (`IOV_MAX`).
const IOV_MAX: usize = 1024;

/// Writes a batch of queued frames in order with vectored writes, up to a
/// `Close` (then `Ok(true)`: the writer ends). An ACK followed in the batch
/// by another ACK, a NAK or a READ response is left out: those acknowledge
/// every earlier request too (RC acknowledgments are cumulative). Memory
/// of an RDMA WRITE that its owner writes meanwhile fails the QP with
/// `LOC_PROT_ERR` (after the frames before it); a broken connection with
/// `RETRY_EXC_ERR`.
fn write_batch(s: &mut TcpStream, batch: &VecDeque<TxItem>) -> Result<bool, WcStatus> {
    let end = batch
        .iter()
        .position(|i| matches!(i, TxItem::Close))
        .unwrap_or(batch.len());
    let close = end < batch.len();
    // Which ACKs a later frame of the batch makes redundant.
    let mut skip = vec![false; end];
    let mut acked_later = false;
    for (k, item) in batch.iter().take(end).enumerate().rev() {
        if let TxItem::Frame(f, _) = item {
            if f.op == OP_ACK && acked_later {
                skip[k] = true;
            }
            if matches!(f.op, OP_ACK | OP_NAK | OP_READ_RESP) {
                acked_later = true;
            }
        }
    }
    let mut hdrs: Vec<[u8; FRAME_HDR]> = Vec::with_capacity(end);
    let mut guards = Vec::new();
    let mut failed = None;
    for (k, item) in batch.iter().take(end).enumerate() {
        match item {
            TxItem::Raw(_) => {}
            TxItem::Frame(f, d) if !skip[k] => hdrs.push(
                FrameHdr {
                    len: d.len() as u32,
                    ..*f
                }
                .encode(),
            ),
            TxItem::Gather(f, spans) => {
                let n0 = guards.len();
                let mut len = 0usize;
                for span in spans {
                    for p in span.pieces() {
                        match p.borrow() {
                            Ok(b) => {
                                len += b.len();
                                guards.push(b);
                            }
                            Err(_) => {
                                failed = Some(k);
                                break;
                            }
                        }
                    }
                }
                if failed.is_some() {
                    guards.truncate(n0);
                    break;
                }
                hdrs.push(
                    FrameHdr {
                        len: len as u32,
                        ..*f
                    }
                    .encode(),
                );
            }
            _ => {}
        }
    }
    let upto = failed.unwrap_or(end);
    let mut iov: Vec<std::io::IoSlice<'_>> = Vec::with_capacity(hdrs.len() * 2 + guards.len());
    let (mut h, mut g) = (hdrs.iter(), guards.iter());
    for (k, item) in batch.iter().take(upto).enumerate() {
        match item {
            TxItem::Raw(d) => iov.push(std::io::IoSlice::new(d)),
            TxItem::Frame(_, d) if !skip[k] => {
                iov.extend(h.next().map(|x| std::io::IoSlice::new(x)));
                if !d.is_empty() {
                    iov.push(std::io::IoSlice::new(d));
                }
            }
            TxItem::Gather(_, spans) => {
                iov.extend(h.next().map(|x| std::io::IoSlice::new(x)));
                for _ in spans.iter().flat_map(|x| x.pieces()) {
                    iov.extend(g.next().map(|b| std::io::IoSlice::new(b)));
                }
            }
            _ => {}
        }
    }
    write_all_vectored(s, &mut iov).map_err(|_| WcStatus::RetryExcErr)?;
    if failed.is_some() {
        return Err(WcStatus::LocProtErr);
    }
    Ok(close)
}

/// `write_all` over iovecs, at most [`IOV_MAX`] per call.
fn write_all_vectored(
    s: &mut TcpStream,
    mut iov: &mut [std::io::IoSlice<'_>],
) -> std::io::Result<()> {
    // No slice is empty (headers are 32 bytes, empty data is left out), so
    // a zero-byte write means the connection is gone.
    while !iov.is_empty() {
        let n = iov.len().min(IOV_MAX);
        match s.write_vectored(&iov[..n]) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(w) => std::io::IoSlice::advance_slices(&mut iov, w),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Device and memory registration
// ---------------------------------------------------------------------------

struct MrEntry {
    mem: PayloadSpan,
    access: Access,
}

struct DevInner {
    /// Registered regions by key (lkey == rkey here, as on many HCAs).
    mrs: Mutex<HashMap<u32, MrEntry>>,
    next_key: AtomicU32,
    next_qpn: AtomicU32,
    registrations: AtomicU64,
    /// How long a SEND waits for a receive before `RNR_RETRY_EXC_ERR`.
    rnr_wait: Mutex<Duration>,
}

/// A soft "HCA" with its protection domain. Cheap to clone.
#[derive(Clone)]
pub struct SoftDevice(Arc<DevInner>);

impl Default for SoftDevice {
    fn default() -> Self {
        Self::new()
    }
}

impl SoftDevice {
    /// A new device with an empty key table.
    pub fn new() -> Self {
        // Keys start at a value derived from the clock so that two devices
        // (two processes) do not hand out the same keys.
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0x1234);
        SoftDevice(Arc::new(DevInner {
            mrs: Mutex::new(HashMap::new()),
            next_key: AtomicU32::new((seed & 0x00ff_ff00) | 0x100),
            next_qpn: AtomicU32::new(0x10 + (seed & 0xfff)),
            registrations: AtomicU64::new(0),
            rnr_wait: Mutex::new(Duration::from_secs(2)),
        }))
    }

    /// Registers `mem` (`ibv_reg_mr`): offsets 0..len under the new keys.
    pub fn reg_mr(&self, mem: PayloadSpan, access: Access) -> SoftMr {
        let key = self.0.next_key.fetch_add(1, Ordering::Relaxed);
        let len = mem.len() as u64;
        lock(&self.0.mrs).insert(key, MrEntry { mem, access });
        self.0.registrations.fetch_add(1, Ordering::Relaxed);
        SoftMr {
            key,
            len,
            dev: Arc::downgrade(&self.0),
        }
    }

    /// Registrations made so far (`ibv_reg_mr` calls).
    pub fn registrations(&self) -> u64 {
        self.0.registrations.load(Ordering::Relaxed)
    }

    /// Regions currently registered.
    pub fn registered(&self) -> usize {
        lock(&self.0.mrs).len()
    }

    /// Whether the region under `key` is held by its registration alone:
    /// the memory's owner let it go, so the registration may be dropped
    /// (a registration cache's invalidation test). Unknown keys count.
    pub fn mr_orphaned(&self, key: u32) -> bool {
        lock(&self.0.mrs)
            .get(&key)
            .is_none_or(|e| e.mem.is_unique())
    }

    /// Sets the receive-not-ready wait (`rnr_retry_count` × RNR timer).
    pub fn set_rnr_wait(&self, d: Duration) {
        *lock(&self.0.rnr_wait) = d;
    }

    fn rnr_wait(&self) -> Duration {
        *lock(&self.0.rnr_wait)
    }

    /// Resolves `len` bytes at `addr` under `key` with `need` rights.
    fn resolve(&self, key: u32, addr: u64, len: u64, need: Access) -> Option<PayloadSpan> {
        let mrs = lock(&self.0.mrs);
        let e = mrs.get(&key)?;
        if !e.access.contains(need) {
            return None;
        }
        let end = addr.checked_add(len)?;
        if end > e.mem.len() as u64 {
            return None;
        }
        e.mem.sub(addr as usize, len as usize)
    }

    /// Gathers the bytes of a local SGE list (for SEND and WRITE).
    fn gather(&self, sge: &[Sge]) -> Option<Vec<u8>> {
        let total: u64 = sge.iter().map(|s| s.length as u64).sum();
        let mut out = vec![0u8; total as usize];
        let mut off = 0;
        for s in sge {
            let span = self.resolve(s.lkey, s.addr, s.length as u64, Access(0))?;
            let n = dma(|| span.read_at(0, &mut out[off..off + s.length as usize])).ok()?;
            if n != s.length as usize {
                return None;
            }
            off += n;
        }
        Some(out)
    }

    /// The memory of a local SGE list, for an RDMA WRITE sent from it
    /// without a staging copy; `None` on a bad key or range.
    fn spans(&self, sge: &[Sge]) -> Option<Vec<PayloadSpan>> {
        sge.iter()
            .map(|s| self.resolve(s.lkey, s.addr, s.length as u64, Access(0)))
            .collect()
    }

    /// Scatters `data` into a local SGE list (for receives and READ
    /// responses); `None` on a bad key or range.
    fn scatter(&self, sge: &[Sge], data: &[u8]) -> Option<()> {
        let mut off = 0;
        for s in sge {
            if off >= data.len() {
                break;
            }
            let n = (s.length as usize).min(data.len() - off);
            let span = self.resolve(s.lkey, s.addr, n as u64, Access::LOCAL_WRITE)?;
            dma(|| span.write_at(0, &data[off..off + n])).ok()?;
            off += n;
        }
        (off == data.len()).then_some(())
    }
}

/// Longest a DMA waits for memory the CPU side holds (an LND or the
/// application copying into or checking the same buffer).
const DMA_BUSY_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// A memory access by the "HCA": a real one reads and writes memory
/// whatever the CPU does with it, so memory borrowed elsewhere for a moment
/// (another LND landing a PUT in the same MD) is waited for, not failed;
/// only memory held longer than [`DMA_BUSY_WAIT`] fails the access.
fn dma<T>(mut f: impl FnMut() -> Result<T, lnd_api::mem::Busy>) -> Result<T, lnd_api::mem::Busy> {
    let mut deadline = None;
    loop {
        match f() {
            Ok(v) => return Ok(v),
            Err(e) => {
                let d = *deadline.get_or_insert_with(|| std::time::Instant::now() + DMA_BUSY_WAIT);
                if std::time::Instant::now() >= d {
                    return Err(e);
                }
                std::thread::sleep(std::time::Duration::from_micros(50));
            }
        }
    }
}

/// A memory registration; dropping it deregisters (`ibv_dereg_mr`): later
/// accesses with its keys fail.
pub struct SoftMr {
    key: u32,
    len: u64,
    dev: Weak<DevInner>,
}

impl SoftMr {
    /// The local key.
    pub fn lkey(&self) -> u32 {
        self.key
    }
    /// The remote key.
    pub fn rkey(&self) -> u32 {
        self.key
    }
    /// Registered bytes.
    pub fn len(&self) -> u64 {
        self.len
    }
    /// Whether the region is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Drop for SoftMr {
    fn drop(&mut self) {
        if let Some(d) = self.dev.upgrade() {
            lock(&d.mrs).remove(&self.key);
        }
    }
}

// ---------------------------------------------------------------------------
// Completion queue
// ---------------------------------------------------------------------------

#[derive(Default)]
struct CqState {
    wcs: VecDeque<Wc>,
    events: VecDeque<CmEvent>,
    /// Threads sleeping in [`SoftCq::wait`]: a completion wakes them only
    /// when there are some (no wake-up system call per completion while
    /// the poller is busy).
    waiters: u32,
}

/// What a CQ hands each completion to, on the thread that made it (see
/// [`SoftCq::set_handler`]).
pub type WcHandler = Box<dyn Fn(Wc) + Send + Sync>;

#[derive(Default)]
struct CqInner {
    st: Mutex<CqState>,
    cv: Condvar,
    handler: std::sync::OnceLock<WcHandler>,
}

thread_local! {
    /// Whether this thread is a soft QP's own (its reader or writer): only
    /// there does a CQ's handler run; a completion made in a caller's
    /// `post_send`, `post_recv` or `disconnect` (a flush) is queued for
    /// the CQ's poller, so no caller is called back from inside its post.
    static NIC_THREAD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    /// Whether this thread runs a CQ's handler now.
    static IN_HANDLER: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    /// Completions this thread made while running a handler (a post on a
    /// QP in the error state completes at once): handled by this thread
    /// right after, in order, without re-entering the handler.
    static DEFERRED: std::cell::RefCell<VecDeque<(SoftCq, Wc)>> =
        const { std::cell::RefCell::new(VecDeque::new()) };
}

/// Clears [`IN_HANDLER`] however the handler ends.
struct HandlerGuard;

impl Drop for HandlerGuard {
    fn drop(&mut self) {
        IN_HANDLER.with(|f| f.set(false));
    }
}

/// A completion queue (with the CM events of its QPs). Cheap to clone.
#[derive(Clone, Default)]
pub struct SoftCq(Arc<CqInner>);

impl SoftCq {
    /// An empty CQ.
    pub fn new() -> Self {
        Self::default()
    }

    /// Hands completions to `h` on the QP thread that makes them (the
    /// reader for receives and acknowledged sends) instead of queuing
    /// them for [`SoftCq::poll`]: no hand-off and wake-up of a polling
    /// thread per completion. A completion made while the handler runs
    /// on the same thread is handled after it returns; one made in a
    /// caller's post (a flush) is still queued. Set once; `false` when a
    /// handler was already set. CM events stay queued.
    pub fn set_handler(&self, h: WcHandler) -> bool {
        self.0.handler.set(h).is_ok()
    }

    fn push(&self, wc: Wc) {
        if let Some(h) = self
            .0
            .handler
            .get()
            .filter(|_| NIC_THREAD.with(|f| f.get()))
        {
            if IN_HANDLER.with(|f| f.replace(true)) {
                DEFERRED.with(|d| d.borrow_mut().push_back((self.clone(), wc)));
                return;
            }
            let _g = HandlerGuard;
            h(wc);
            while let Some((cq, wc)) = DEFERRED.with(|d| d.borrow_mut().pop_front()) {
                match cq.0.handler.get() {
                    Some(h) => h(wc),
                    None => cq.queue(wc),
                }
            }
            return;
        }
        self.queue(wc);
    }

    fn queue(&self, wc: Wc) {
        let mut st = lock(&self.0.st);
        st.wcs.push_back(wc);
        let wake = st.waiters > 0;
        drop(st);
        if wake {
            self.0.cv.notify_all();
        }
    }

    fn event(&self, e: CmEvent) {
        let mut st = lock(&self.0.st);
        st.events.push_back(e);
        let wake = st.waiters > 0;
        drop(st);
        if wake {
            self.0.cv.notify_all();
        }
    }

    /// Takes up to `max` completions (`ibv_poll_cq`).
    pub fn poll(&self, max: usize) -> Vec<Wc> {
        let mut st = lock(&self.0.st);
        let n = max.min(st.wcs.len());
        st.wcs.drain(..n).collect()
    }

    /// Takes the next CM event.
    pub fn poll_event(&self) -> Option<CmEvent> {
        lock(&self.0.st).events.pop_front()
    }

    /// Waits until a completion or an event is there, or `t` passed
    /// (`ibv_req_notify_cq` + `ibv_get_cq_event`).
    pub fn wait(&self, t: Duration) -> bool {
        let deadline = Instant::now() + t;
        let mut st = lock(&self.0.st);
        loop {
            if !st.wcs.is_empty() || !st.events.is_empty() {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            st.waiters += 1;
            st = self
                .0
                .cv
                .wait_timeout(st, left)
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
            st.waiters -= 1;
        }
    }

    /// Wakes a waiter (used to stop a poller).
    pub fn kick(&self) {
        self.0.cv.notify_all();
    }
}

// ---------------------------------------------------------------------------
// Queue pair
// ---------------------------------------------------------------------------

/// QP state (the part of `enum ibv_qp_state` that matters here).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum QpState {
    /// Connected, ready to send.
    Rts,
    /// In error: everything posted completes flushed.
    Error,
}

struct Outstanding {
    psn: u64,
    wr_id: u64,
    opcode: WcOpcode,
    len: u32,
    /// For a READ: where the response lands.
    sge: Vec<Sge>,
}

struct QpState_ {
    state: QpState,
    next_psn: u64,
    outstanding: VecDeque<Outstanding>,
    recvs: VecDeque<RecvWr>,
    disconnected: bool,
    /// The reader waiting for a receive to be posted (RNR): only then
    /// does a post wake it.
    recv_waiters: u32,
}

/// The transmit queue and whether the writer sleeps on it.
#[derive(Default)]
struct TxQueue {
    items: VecDeque<TxItem>,
    /// The writer is (about to be) asleep: the next item wakes it.
    writer_asleep: bool,
}

enum TxItem {
    Frame(FrameHdr, Vec<u8>),
    /// The rest of a frame a thread began to send itself (see
    /// [`SoftQp::enqueue`]): bytes as they go on the wire.
    Raw(Vec<u8>),
    /// A frame whose data is registered memory, written piece by piece.
    Gather(FrameHdr, Vec<PayloadSpan>),
    Close,
}

struct QpInner {
    qp_num: u32,
    dev: SoftDevice,
    cq: SoftCq,
    st: Mutex<QpState_>,
    recv_cv: Condvar,
    tx: Mutex<TxQueue>,
    tx_cv: Condvar,
    stream: TcpStream,
    closing: AtomicBool,
}

/// A reliable-connected queue pair over one TCP connection.
#[derive(Clone)]
pub struct SoftQp(Arc<QpInner>);

impl SoftQp {
    /// Makes the QP (receives may be posted) without starting its NIC
    /// threads: the CM exchange still owns the stream.
    fn create(dev: SoftDevice, cq: SoftCq, stream: TcpStream) -> std::io::Result<SoftQp> {
        stream.set_nodelay(true)?;
        let qp = SoftQp(Arc::new(QpInner {
            qp_num: dev.0.next_qpn.fetch_add(1, Ordering::Relaxed),
            dev,
            cq,
            st: Mutex::new(QpState_ {
                state: QpState::Rts,
                next_psn: 1,
                outstanding: VecDeque::new(),
                recvs: VecDeque::new(),
                disconnected: false,
                recv_waiters: 0,
            }),
            recv_cv: Condvar::new(),
            tx: Mutex::new(TxQueue::default()),
            tx_cv: Condvar::new(),
            stream,
            closing: AtomicBool::new(false),
        }));
        Ok(qp)
    }

    /// Starts the NIC threads: the connection is established.
    fn run(&self) -> std::io::Result<()> {
        let qp = self;
        qp.0.stream.set_read_timeout(None)?;
        let rd = qp.0.stream.try_clone()?;
        let wr = qp.0.stream.try_clone()?;
        let q = qp.clone();
        std::thread::Builder::new()
            .name("o2ib-soft-rx".into())
            .spawn(move || q.reader(rd))?;
        let q = qp.clone();
        std::thread::Builder::new()
            .name("o2ib-soft-tx".into())
            .spawn(move || q.writer(wr))?;
        Ok(())
    }

    /// The QP number.
    pub fn qp_num(&self) -> u32 {
        self.0.qp_num
    }

    /// The current state.
    pub fn state(&self) -> QpState {
        lock(&self.0.st).state
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.0.stream.peer_addr().ok()
    }

    /// Queues a frame for the writer; wakes it only when it sleeps (one
    /// wake-up per batch it writes, not per frame). A small frame that
    /// finds the writer asleep with nothing queued is sent by this thread
    /// itself, without waiting (under the queue's lock, so in order): no
    /// wake-up of the writer for an ACK or a SEND, the most common case.
    /// What the socket does not take at once is queued for the writer.
    fn enqueue(&self, item: TxItem) {
        let mut q = lock(&self.0.tx);
        let item = match item {
            TxItem::Frame(f, d)
                if q.items.is_empty() && q.writer_asleep && d.len() <= DIRECT_MAX =>
            {
                let h = FrameHdr {
                    len: d.len() as u32,
                    ..f
                }
                .encode();
                let iov = [std::io::IoSlice::new(&h), std::io::IoSlice::new(&d)];
                let total = h.len() + d.len();
                match crate::sys::sock::send_now(&self.0.stream, &iov) {
                    Ok(n) if n == total => return,
                    Ok(n) if n > 0 => {
                        let mut rest = Vec::with_capacity(total - n);
                        rest.extend(h.iter().chain(d.iter()).skip(n));
                        TxItem::Raw(rest)
                    }
                    // Nothing taken (full, or broken: the writer finds out
                    // and fails the QP).
                    _ => TxItem::Frame(f, d),
                }
            }
            other => other,
        };
        q.items.push_back(item);
        let wake = std::mem::replace(&mut q.writer_asleep, false);
        drop(q);
        if wake {
            self.0.tx_cv.notify_one();
        }
    }

    fn wc(&self, wr_id: u64, status: WcStatus, opcode: WcOpcode, byte_len: u32) {
        self.0.cq.push(Wc {
            wr_id,
            status,
            opcode,
            byte_len,
            qp_num: self.0.qp_num,
        });
    }

    /// Posts a send work request (`ibv_post_send`). On a QP in the error
    /// state it completes with `WR_FLUSH_ERR`.
    pub fn post_send(&self, wr: SendWr) -> Result<(), VerbsError> {
        let opcode = match wr.op {
            SendOp::Send => WcOpcode::Send,
            SendOp::Write { .. } => WcOpcode::RdmaWrite,
            SendOp::Read { .. } => WcOpcode::RdmaRead,
        };
        let len: u64 = wr.sge.iter().map(|s| s.length as u64).sum();
        if len > MAX_XFER as u64 {
            return Err(VerbsError::Invalid(format!(
                "work request of {len} bytes exceeds {MAX_XFER}"
            )));
        }
        let mut st = lock(&self.0.st);
        if st.state == QpState::Error {
            drop(st);
            self.wc(wr.wr_id, WcStatus::WrFlushErr, opcode, 0);
            return Ok(());
        }
        let gathered = match wr.op {
            SendOp::Write { .. } => self.0.dev.spans(&wr.sge),
            _ => Some(Vec::new()),
        };
        let data = match wr.op {
            SendOp::Write { .. } if gathered.is_some() => Vec::new(),
            SendOp::Send | SendOp::Write { .. } => match self.0.dev.gather(&wr.sge) {
                Some(d) => d,
                None => {
                    // A bad lkey or range: the WR fails and the QP goes
                    // to the error state, as on an HCA.
                    let flushed = self.to_error(&mut st);
                    drop(st);
                    self.wc(wr.wr_id, WcStatus::LocProtErr, opcode, 0);
                    self.flush(flushed);
                    return Ok(());
                }
            },
            SendOp::Read { .. } => Vec::new(),
        };
        let psn = st.next_psn;
        st.next_psn += 1;
        st.outstanding.push_back(Outstanding {
            psn,
            wr_id: wr.wr_id,
            opcode,
            len: len as u32,
            sge: if matches!(wr.op, SendOp::Read { .. }) {
                wr.sge.clone()
            } else {
                Vec::new()
            },
        });
        drop(st);
        let f = match wr.op {
            SendOp::Send => FrameHdr {
                op: OP_SEND,
                c: psn,
                ..FrameHdr::default()
            },
            SendOp::Write { remote_addr, rkey } => FrameHdr {
                op: OP_WRITE,
                a: rkey,
                b: remote_addr,
                c: psn,
                len: 0,
            },
            SendOp::Read { remote_addr, rkey } => FrameHdr {
                op: OP_READ_REQ,
                a: rkey,
                b: remote_addr,
                c: psn,
                len: 0,
            },
        };
        // A READ request announces its length in `b`'s companion: reuse the
        // data field as an 8-byte length.
        let item = match (wr.op, gathered) {
            (SendOp::Read { .. }, _) => TxItem::Frame(f, len.to_le_bytes().to_vec()),
            (SendOp::Write { .. }, Some(spans)) => TxItem::Gather(f, spans),
            _ => TxItem::Frame(f, data),
        };
        self.enqueue(item);
        Ok(())
    }

    /// Posts a receive (`ibv_post_recv`).
    pub fn post_recv(&self, wr: RecvWr) -> Result<(), VerbsError> {
        let mut st = lock(&self.0.st);
        if st.state == QpState::Error {
            drop(st);
            self.wc(wr.wr_id, WcStatus::WrFlushErr, WcOpcode::Recv, 0);
            return Ok(());
        }
        st.recvs.push_back(wr);
        let wake = st.recv_waiters > 0;
        drop(st);
        if wake {
            self.0.recv_cv.notify_all();
        }
        Ok(())
    }

    /// Disconnects (`rdma_disconnect`): the QP goes to the error state,
    /// what is posted is flushed, both sides get `Disconnected`.
    pub fn disconnect(&self) {
        self.enqueue(TxItem::Frame(
            FrameHdr {
                op: OP_DISCONNECT,
                ..FrameHdr::default()
            },
            Vec::new(),
        ));
        self.enqueue(TxItem::Close);
        self.lost(WcStatus::WrFlushErr);
    }

    /// Moves to the error state; returns what must be flushed.
    fn to_error(&self, st: &mut QpState_) -> (Vec<Outstanding>, Vec<RecvWr>) {
        st.state = QpState::Error;
        if st.recv_waiters > 0 {
            self.0.recv_cv.notify_all();
        }
        (
            st.outstanding.drain(..).collect(),
            st.recvs.drain(..).collect(),
        )
    }

    fn flush(&self, (out, recvs): (Vec<Outstanding>, Vec<RecvWr>)) {
        for o in out {
            self.wc(o.wr_id, WcStatus::WrFlushErr, o.opcode, 0);
        }
        for r in recvs {
            self.wc(r.wr_id, WcStatus::WrFlushErr, WcOpcode::Recv, 0);
        }
    }

    /// The connection is gone: in-flight sends fail with `first` (the
    /// oldest) and flush, receives flush, `Disconnected` is reported once.
    fn lost(&self, first: WcStatus) {
        let mut st = lock(&self.0.st);
        let (mut out, recvs) = self.to_error(&mut st);
        let report = !st.disconnected;
        st.disconnected = true;
        drop(st);
        if !out.is_empty() {
            let o = out.remove(0);
            self.wc(o.wr_id, first, o.opcode, 0);
        }
        // Later in-flight WRs: transport failure too (they were on the
        // wire), as an HCA reports each with its own retry error.
        for o in out {
            self.wc(o.wr_id, first, o.opcode, 0);
        }
        self.flush((Vec::new(), recvs));
        if report {
            self.0.closing.store(true, Ordering::Relaxed);
            self.enqueue(TxItem::Close);
            self.0.cq.event(CmEvent::Disconnected {
                qp_num: self.0.qp_num,
            });
        }
    }

    /// The QP's transmit thread: takes every frame queued so far as one
    /// batch and writes it with vectored writes (headers, small frames and
    /// the registered memory of RDMA WRITEs, no staging copy), so a burst
    /// of frames costs one wake-up and about one system call.
    fn writer(&self, mut s: TcpStream) {
        NIC_THREAD.with(|f| f.set(true));
        let mut batch: VecDeque<TxItem> = VecDeque::new();
        loop {
            {
                let mut q = lock(&self.0.tx);
                while q.items.is_empty() {
                    q.writer_asleep = true;
                    q = self.0.tx_cv.wait(q).unwrap_or_else(|p| p.into_inner());
                }
                q.writer_asleep = false;
                std::mem::swap(&mut q.items, &mut batch);
            }
            let r = write_batch(&mut s, &batch);
            batch.clear();
            match r {
                Ok(false) => {}
                Ok(true) => {
                    let _ = s.flush();
                    let _ = s.shutdown(Shutdown::Both);
                    return;
                }
                Err(st) => {
                    self.lost(st);
                    let _ = s.shutdown(Shutdown::Both);
                    return;
                }
            }
        }
    }

    fn nak(&self, psn: u64, why: u32) {
        self.enqueue(TxItem::Frame(
            FrameHdr {
                op: OP_NAK,
                a: why,
                c: psn,
                ..FrameHdr::default()
            },
            Vec::new(),
        ));
    }

    fn ack(&self, psn: u64) {
        self.enqueue(TxItem::Frame(
            FrameHdr {
                op: OP_ACK,
                c: psn,
                ..FrameHdr::default()
            },
            Vec::new(),
        ));
    }

    /// Responder error: NAK the request, then the QP goes to error.
    fn responder_error(&self, psn: u64, why: u32) {
        self.nak(psn, why);
        let mut st = lock(&self.0.st);
        let flushed = self.to_error(&mut st);
        drop(st);
        self.flush(flushed);
    }

    /// An RDMA WRITE's data goes from the socket straight into the
    /// registered memory, piece by piece (no staging copy). Returns `None`
    /// when the connection broke, else the next frame's header when it was
    /// read already; a bad key, range or right (or memory held elsewhere
    /// past [`DMA_BUSY_WAIT`]) drains the bytes and NAKs. A WRITE that
    /// landed is acknowledged at once unless the next request is there
    /// already (RC acknowledgments are cumulative: its ACK, NAK or READ
    /// response acknowledges the WRITE too, as the PUT_DONE / GET_DONE sent
    /// right behind an RDMA's WRITEs always is).
    fn write_in_place(&self, s: &mut TcpStream, f: FrameHdr) -> Option<Option<[u8; FRAME_HDR]>> {
        let span = self
            .0
            .dev
            .resolve(f.a, f.b, f.len as u64, Access::REMOTE_WRITE);
        let mut ok = span.is_some();
        let mut left = f.len as usize;
        if let Some(span) = &span {
            for p in span.pieces() {
                match dma(|| p.borrow_mut()) {
                    Ok(mut b) => {
                        if read_spinning(s, &mut b).is_err() {
                            return None;
                        }
                    }
                    Err(_) => {
                        ok = false;
                        break;
                    }
                }
                left -= p.len();
            }
        }
        // Whatever was not placed is read and dropped.
        if left > 0 {
            let mut scratch = [0u8; 16384];
            while left > 0 {
                let n = left.min(scratch.len());
                if s.read_exact(&mut scratch[..n]).is_err() {
                    return None;
                }
                left -= n;
            }
        }
        if !ok {
            self.responder_error(f.c, NAK_ACCESS);
            return Some(None);
        }
        let mut h = [0u8; FRAME_HDR];
        match crate::sys::sock::recv_now(s, &mut h) {
            Ok(FRAME_HDR) => {
                if !matches!(FrameHdr::decode(&h).op, OP_SEND | OP_WRITE | OP_READ_REQ) {
                    self.ack(f.c);
                }
                Some(Some(h))
            }
            Ok(n) if n > 0 => {
                self.ack(f.c);
                s.read_exact(&mut h[n..]).ok().map(|_| Some(h))
            }
            _ => {
                // Nothing there yet (or the connection is going: the next
                // read finds out).
                self.ack(f.c);
                Some(None)
            }
        }
    }

    fn reader(&self, mut s: TcpStream) {
        NIC_THREAD.with(|f| f.set(true));
        let mut next = None;
        loop {
            let h = match next.take() {
                Some(h) => h,
                None => {
                    let mut h = [0u8; FRAME_HDR];
                    if s.read_exact(&mut h).is_err() {
                        self.lost(WcStatus::RetryExcErr);
                        return;
                    }
                    h
                }
            };
            let f = FrameHdr::decode(&h);
            if f.len > MAX_XFER {
                self.lost(WcStatus::RetryExcErr);
                return;
            }
            let in_error = lock(&self.0.st).state == QpState::Error;
            if f.op == OP_WRITE && !in_error {
                match self.write_in_place(&mut s, f) {
                    Some(h) => next = h,
                    None => {
                        self.lost(WcStatus::RetryExcErr);
                        return;
                    }
                }
                continue;
            }
            let mut data = vec![0u8; f.len as usize];
            if s.read_exact(&mut data).is_err() {
                self.lost(WcStatus::RetryExcErr);
                return;
            }
            if lock(&self.0.st).state == QpState::Error
                && !matches!(f.op, OP_DISCONNECT | OP_ACK | OP_NAK | OP_READ_RESP)
            {
                // A QP in error drops incoming requests.
                continue;
            }
            match f.op {
                OP_SEND => self.on_send(f.c, &data),
                OP_WRITE => {
                    match self
                        .0
                        .dev
                        .resolve(f.a, f.b, data.len() as u64, Access::REMOTE_WRITE)
                    {
                        Some(span) if dma(|| span.write_at(0, &data)).ok() == Some(data.len()) => {
                            self.ack(f.c)
                        }
                        _ => self.responder_error(f.c, NAK_ACCESS),
                    }
                }
                OP_READ_REQ => {
                    let len = data
                        .get(..8)
                        .map(|b| {
                            let mut a = [0u8; 8];
                            a.copy_from_slice(b);
                            u64::from_le_bytes(a)
                        })
                        .unwrap_or(u64::MAX);
                    let out = (len <= MAX_XFER as u64)
                        .then(|| self.0.dev.resolve(f.a, f.b, len, Access::REMOTE_READ))
                        .flatten()
                        .and_then(|span| {
                            let mut v = vec![0u8; len as usize];
                            (dma(|| span.read_at(0, &mut v)).ok() == Some(len as usize))
                                .then_some(v)
                        });
                    match out {
                        Some(v) => self.enqueue(TxItem::Frame(
                            FrameHdr {
                                op: OP_READ_RESP,
                                c: f.c,
                                ..FrameHdr::default()
                            },
                            v,
                        )),
                        None => self.responder_error(f.c, NAK_ACCESS),
                    }
                }
                OP_ACK => self.on_ack(f.c, None),
                OP_READ_RESP => self.on_ack(f.c, Some(&data)),
                OP_NAK => self.on_nak(f.c, f.a),
                OP_DISCONNECT => {
                    self.lost(WcStatus::RetryExcErr);
                    return;
                }
                _ => {
                    self.lost(WcStatus::RetryExcErr);
                    return;
                }
            }
        }
    }

    fn on_send(&self, psn: u64, data: &[u8]) {
        let deadline = Instant::now() + self.0.dev.rnr_wait();
        let mut st = lock(&self.0.st);
        let wr = loop {
            if st.state == QpState::Error {
                return;
            }
            if let Some(w) = st.recvs.pop_front() {
                break w;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                drop(st);
                // Receive not ready: the requester gives up after its RNR
                // retries. The responder QP stays usable.
                self.nak(psn, NAK_RNR);
                return;
            }
            st.recv_waiters += 1;
            st = self
                .0
                .recv_cv
                .wait_timeout(st, left)
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
            st.recv_waiters -= 1;
        };
        drop(st);
        if data.len() > wr.sge.length as usize {
            self.wc(wr.wr_id, WcStatus::LocLenErr, WcOpcode::Recv, 0);
            self.responder_error(psn, NAK_INV_REQ);
            return;
        }
        if self.0.dev.scatter(&[wr.sge], data).is_none() {
            self.wc(wr.wr_id, WcStatus::LocProtErr, WcOpcode::Recv, 0);
            self.responder_error(psn, NAK_INV_REQ);
            return;
        }
        self.wc(
            wr.wr_id,
            WcStatus::Success,
            WcOpcode::Recv,
            data.len() as u32,
        );
        self.ack(psn);
    }

    fn on_ack(&self, psn: u64, read: Option<&[u8]>) {
        let mut done = Vec::new();
        let mut st = lock(&self.0.st);
        while let Some(o) = st.outstanding.front() {
            if o.psn > psn {
                break;
            }
            if let Some(o) = st.outstanding.pop_front() {
                done.push(o);
            }
        }
        drop(st);
        for o in done {
            if o.psn == psn {
                if let Some(data) = read {
                    if o.opcode != WcOpcode::RdmaRead
                        || data.len() != o.len as usize
                        || self.0.dev.scatter(&o.sge, data).is_none()
                    {
                        let mut st = lock(&self.0.st);
                        let flushed = self.to_error(&mut st);
                        drop(st);
                        self.wc(o.wr_id, WcStatus::LocProtErr, o.opcode, 0);
                        self.flush(flushed);
                        return;
                    }
                }
            }
            self.wc(o.wr_id, WcStatus::Success, o.opcode, o.len);
        }
    }

    fn on_nak(&self, psn: u64, why: u32) {
        let status = match why {
            NAK_ACCESS => WcStatus::RemAccessErr,
            NAK_RNR => WcStatus::RnrRetryExcErr,
            NAK_INV_REQ => WcStatus::RemInvReqErr,
            _ => WcStatus::RemOpErr,
        };
        // Earlier requests were acknowledged implicitly (RC order).
        self.on_ack(psn.saturating_sub(1), None);
        let mut st = lock(&self.0.st);
        let (mut out, recvs) = self.to_error(&mut st);
        drop(st);
        if let Some(pos) = out.iter().position(|o| o.psn == psn) {
            let o = out.remove(pos);
            self.wc(o.wr_id, status, o.opcode, 0);
        }
        self.flush((out, recvs));
    }
}

impl Drop for QpInner {
    fn drop(&mut self) {
        let _ = self.stream.shutdown(Shutdown::Both);
    }
}

// ---------------------------------------------------------------------------
// Connection exchange
// ---------------------------------------------------------------------------

fn cm_timeout() -> Duration {
    Duration::from_secs(10)
}

/// Connects to a listener (`rdma_connect`) with `private_data` (≤ 56
/// bytes: a CONNREQ). Returns the QP and the accept's private data (a
/// CONNACK), or [`VerbsError::Rejected`] with the reject's private data.
/// `prepare` sees the QP and the accept's private data before the
/// connection is established (the CM's RTU): the moment to post receives,
/// or to refuse (`false`: the connection is dropped).
pub fn connect(
    dev: &SoftDevice,
    cq: &SoftCq,
    to: SocketAddr,
    private_data: &[u8],
    timeout: Duration,
    prepare: &mut dyn FnMut(&SoftQp, &[u8]) -> bool,
) -> Result<(SoftQp, Vec<u8>), VerbsError> {
    if private_data.len() > MAX_REQ_PRIVATE_DATA {
        return Err(VerbsError::Invalid(format!(
            "{} bytes of connect private data (at most {MAX_REQ_PRIVATE_DATA})",
            private_data.len()
        )));
    }
    let mut s = TcpStream::connect_timeout(&to, timeout)
        .map_err(|e| VerbsError::Unreachable(format!("{to}: {e}")))?;
    s.set_read_timeout(Some(timeout))
        .and_then(|_| s.set_nodelay(true))
        .and_then(|_| {
            write_frame(
                &mut s,
                FrameHdr {
                    op: OP_CM_REQ,
                    ..FrameHdr::default()
                },
                private_data,
            )
        })
        .map_err(|e| VerbsError::Unreachable(format!("{to}: {e}")))?;
    let (f, data) =
        read_frame(&mut s).map_err(|e| VerbsError::Unreachable(format!("{to}: {e}")))?;
    match f.op {
        OP_CM_REP => {
            let dev_err = |e: std::io::Error| VerbsError::Device(format!("soft QP to {to}: {e}"));
            let qp = SoftQp::create(dev.clone(), cq.clone(), s).map_err(dev_err)?;
            if !prepare(&qp, &data) {
                let _ = qp.0.stream.shutdown(Shutdown::Both);
                return Err(VerbsError::Invalid(format!("{to}: accept refused")));
            }
            let mut w = qp.0.stream.try_clone().map_err(dev_err)?;
            write_frame(
                &mut w,
                FrameHdr {
                    op: OP_CM_RTU,
                    ..FrameHdr::default()
                },
                &[],
            )
            .map_err(|e| VerbsError::Unreachable(format!("{to}: {e}")))?;
            qp.run().map_err(dev_err)?;
            Ok((qp, data))
        }
        OP_CM_REJ => Err(VerbsError::Rejected(data)),
        op => Err(VerbsError::Unreachable(format!(
            "{to}: unexpected CM message {op}"
        ))),
    }
}

/// A listening endpoint (`rdma_listen`).
pub struct SoftListener {
    l: TcpListener,
}

/// A connection request waiting for [`ConnRequest::accept`] or
/// [`ConnRequest::reject`]; dropping it rejects with no private data.
pub struct ConnRequest {
    s: Option<TcpStream>,
    /// The request's private data (a CONNREQ).
    pub private_data: Vec<u8>,
    /// The requester's address (its source port is the CM's).
    pub peer: SocketAddr,
}

impl SoftListener {
    /// Listens on `addr` (port 0 picks one).
    pub fn bind(addr: SocketAddr) -> Result<SoftListener, VerbsError> {
        let l = TcpListener::bind(addr)
            .map_err(|e| VerbsError::Device(format!("cannot listen on {addr}: {e}")))?;
        Ok(SoftListener { l })
    }

    /// The bound address.
    pub fn local_addr(&self) -> Result<SocketAddr, VerbsError> {
        self.l
            .local_addr()
            .map_err(|e| VerbsError::Device(e.to_string()))
    }

    /// Stops accepting: wakes a blocked [`SoftListener::get_request`].
    pub fn set_nonblocking(&self, nb: bool) -> Result<(), VerbsError> {
        self.l
            .set_nonblocking(nb)
            .map_err(|e| VerbsError::Device(e.to_string()))
    }

    /// Waits for the next request (`RDMA_CM_EVENT_CONNECT_REQUEST`).
    /// `Ok(None)` when non-blocking and nothing is there, or when a
    /// connection died before its request arrived.
    pub fn get_request(&self) -> Result<Option<ConnRequest>, VerbsError> {
        let (mut s, peer) = match self.l.accept() {
            Ok(x) => x,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(None),
            Err(e) => return Err(VerbsError::Device(format!("accept: {e}"))),
        };
        let _ = s.set_nonblocking(false);
        if s.set_read_timeout(Some(cm_timeout())).is_err() {
            return Ok(None);
        }
        match read_frame(&mut s) {
            Ok((f, data)) if f.op == OP_CM_REQ && data.len() <= MAX_REQ_PRIVATE_DATA => {
                Ok(Some(ConnRequest {
                    s: Some(s),
                    private_data: data,
                    peer,
                }))
            }
            _ => Ok(None),
        }
    }
}

impl ConnRequest {
    /// Accepts (`rdma_accept`) with `private_data` (a CONNACK). `prepare`
    /// sees the QP before the accept is sent (post receives there); the
    /// QP is returned once the requester confirmed (the CM's RTU).
    pub fn accept(
        mut self,
        dev: &SoftDevice,
        cq: &SoftCq,
        private_data: &[u8],
        prepare: &mut dyn FnMut(&SoftQp),
    ) -> Result<SoftQp, VerbsError> {
        if private_data.len() > MAX_REP_PRIVATE_DATA {
            return Err(VerbsError::Invalid(format!(
                "{} bytes of accept private data",
                private_data.len()
            )));
        }
        let Some(s) = self.s.take() else {
            return Err(VerbsError::Invalid("request already answered".into()));
        };
        let peer = self.peer;
        let dev_err = |e: std::io::Error| VerbsError::Device(format!("soft QP from {peer}: {e}"));
        let mut w = s.try_clone().map_err(dev_err)?;
        let qp = SoftQp::create(dev.clone(), cq.clone(), s).map_err(dev_err)?;
        prepare(&qp);
        let unreachable = |e: std::io::Error| VerbsError::Unreachable(format!("{peer}: {e}"));
        write_frame(
            &mut w,
            FrameHdr {
                op: OP_CM_REP,
                ..FrameHdr::default()
            },
            private_data,
        )
        .map_err(unreachable)?;
        w.set_read_timeout(Some(cm_timeout()))
            .map_err(unreachable)?;
        match read_frame(&mut w) {
            Ok((f, _)) if f.op == OP_CM_RTU => {}
            Ok((f, _)) => {
                return Err(VerbsError::Unreachable(format!(
                    "{peer}: CM message {} instead of RTU",
                    f.op
                )))
            }
            Err(e) => return Err(unreachable(e)),
        }
        qp.run().map_err(dev_err)?;
        Ok(qp)
    }

    /// Rejects (`rdma_reject`) with `private_data` (a `kib_rej`).
    pub fn reject(mut self, private_data: &[u8]) {
        let n = private_data.len().min(MAX_REJ_PRIVATE_DATA);
        if let Some(mut s) = self.s.take() {
            let _ = write_frame(
                &mut s,
                FrameHdr {
                    op: OP_CM_REJ,
                    ..FrameHdr::default()
                },
                &private_data[..n],
            );
        }
    }
}

impl Drop for ConnRequest {
    fn drop(&mut self) {
        if let Some(mut s) = self.s.take() {
            let _ = write_frame(
                &mut s,
                FrameHdr {
                    op: OP_CM_REJ,
                    ..FrameHdr::default()
                },
                &[],
            );
        }
    }
}

#[cfg(test)]
mod tests;

impl crate::verbs::VerbsQp for SoftQp {
    fn qp_num(&self) -> u32 {
        SoftQp::qp_num(self)
    }
    fn post_send(&self, wr: SendWr) -> Result<(), VerbsError> {
        SoftQp::post_send(self, wr)
    }
    fn post_recv(&self, wr: RecvWr) -> Result<(), VerbsError> {
        SoftQp::post_recv(self, wr)
    }
    fn disconnect(&self) {
        SoftQp::disconnect(self)
    }
}

impl crate::verbs::VerbsCq for SoftCq {
    fn poll(&self, max: usize) -> Vec<Wc> {
        SoftCq::poll(self, max)
    }
    fn wait(&self, t: Duration) -> bool {
        SoftCq::wait(self, t)
    }
    fn poll_event(&self) -> Option<CmEvent> {
        SoftCq::poll_event(self)
    }
}
