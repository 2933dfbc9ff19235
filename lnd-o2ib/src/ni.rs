//! One o2iblnd NI over either verbs provider (`ni::provider`): peers,
//! connections set up with CONNREQ/CONNACK in the CM private data, the
//! credit rules of `spec/wire.md` §7.4, IMMEDIATE and RDMA PUT flows,
//! NOOPs, timeouts and keepalive, and the registration cache.
//!
//! Threads: a poller (the once-a-tick timeout, keepalive and cache sweep;
//! on soft the CM events, while completions are handled on the soft QP's
//! thread that made them, through the CQ's handler; on rdma every
//! connection's CQ through the device's one completion channel, and the CM
//! events, as o2iblnd's schedulers serve their connections), an acceptor,
//! and a short-lived thread per active connection attempt. Host callbacks are
//! made with no lock of ours held: work is collected under the lock as
//! `Action`s and carried out after.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use lnd_api::abi_stable::std_types::ROption;
use lnd_api::hdr::{GetBody, ReplyBody};
use lnd_api::{
    errno, Completion, HealthStatus, HostHandle, IoBuf, LndError, LndNi, LogLevel, MsgToken,
    MsgType, Nid, Payload, PayloadSpan, PeerAliveness, RxAction, RxToken, TxMsg,
};

use crate::params::Tunables;
use crate::regcache::RegCache;
use crate::soft::{SoftCq, SoftDevice, SoftListener};
use crate::verbs::{
    Access, CmEvent, RecvWr, SendOp, SendWr, Sge, VerbsCq, VerbsError, VerbsQp, Wc, WcStatus,
};
use crate::wire::{
    self, msg_type, nid_hash, Body, CompletionBody, ConnParams, Endian, Msg, MsgRepr, RdmaDesc,
    RejRepr, RejectReason, IMMEDIATE_PAYLOAD_OFFSET, MAX_IMMEDIATE_PAYLOAD, MAX_RDMA_FRAGS,
    MSG_SIZE, VERSION_2,
};
use provider::{Provider, Reg};

mod connect;
pub(crate) mod provider;
#[cfg(test)]
mod tests;

/// Consecutive connection races after which the lower NID is let through.
const MAX_CONN_RACES: u32 = 20;
/// Most NOOPs in flight on a V2 connection.
const MAX_NOOPS: u32 = 2;
/// wr_id kinds (top byte).
const WR_RX: u64 = 1 << 56;
const WR_TX: u64 = 2 << 56;
const WR_RDMA: u64 = 3 << 56;
const WR_MASK: u64 = 0xff << 56;
/// `-ENODATA`: a GET_REQ that matched nothing (GET_DONE status).
const ENODATA: i32 = 61;
/// Largest sink an optimized GET is sent for (`LNET_MTU`); larger ones go
/// IMMEDIATE and the target answers with an RDMA PUT of the REPLY.
const MAX_GET_SINK: usize = 1 << 20;
/// Idle staging buffers kept registered for optimized GETs.
const MAX_IDLE_STAGING: usize = 16;
/// The smallest GET sink we ask the host for (lnd-api's GET_SINK): what
/// does not fit an IMMEDIATE REPLY, which is where an optimized GET starts.
pub(crate) const GET_SINK_MIN: u32 = MAX_IMMEDIATE_PAYLOAD as u32 + 1;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Something to do once our locks are released.
enum Action {
    Finalize(MsgToken, Completion),
    /// A REPLY that came by RDMA into a staging buffer (optimized GET):
    /// handed to the host after the GET's own completion.
    ParseReply {
        hdr: lnd_api::Hdr,
        from: Nid,
        tok: u64,
    },
    Notify(Nid, bool),
    Log(LogLevel, String),
}

/// An LNet message waiting for credits on a connection.
struct LnetTx {
    token: MsgToken,
    hdr: lnd_api::Hdr,
    payload: PayloadSpan,
    deadline: Instant,
    /// A GET sent as GET_REQ (optimized GET): the sink's length.
    get_sink: Option<usize>,
    /// The GET's sink MD window, when the host handed it over (lnd-api's
    /// GET_SINK): the REPLY's data is RDMA-written straight into it.
    sink_md: Option<PayloadSpan>,
}

/// Where an optimized GET's REPLY data is written by the peer.
struct SinkBuf {
    buf: PayloadSpan,
    /// A staging buffer of ours (the host gave no sink): copied into the
    /// MD at `recv`, then back to the pool.
    staged: bool,
}

/// A message for the peer that needs no credit.
enum NoCred {
    Completion {
        t: u8,
        cookie: u64,
        status: i32,
        /// Finalized when the completion's send completes (PUT_DONE).
        then: Option<MsgToken>,
    },
    PutAck {
        src_cookie: u64,
        dst_cookie: u64,
        rd: RdmaDesc,
    },
    /// The PUT_DONE / GET_DONE of an RDMA we are the source of, posted
    /// right behind its WRITEs as upstream's `kiblnd_init_rdma` chains it
    /// (the QP's order lands the data first): no round trip between the
    /// last WRITE's completion and the done message.
    RdmaDone {
        t: u8,
        dst_cookie: u64,
        nob: u32,
        /// The `active` entry it completes with the WRITEs.
        src_cookie: u64,
    },
}

/// What a posted send slot does when it completes.
enum SlotUse {
    Free,
    /// An IMMEDIATE: finalize on completion.
    Immediate(MsgToken),
    /// A PUT_REQ whose source waits for PUT_ACK/PUT_NAK (in `active`).
    PutReq,
    /// A GET_REQ whose initiator waits for GET_DONE (in `gets`).
    GetReq,
    /// A completion or PUT_ACK; may finalize a message.
    NoCred(Option<MsgToken>),
    /// The done message of the RDMA in `active` under this cookie.
    RdmaDone(u64),
    Noop,
}

/// A PUT we are the source of, waiting for the sink.
struct ActivePut {
    token: MsgToken,
    payload: PayloadSpan,
    deadline: Instant,
    /// Set once PUT_ACK came: the sink's cookie, the parts still in flight
    /// (its WRITEs and the done message behind them) and the bytes.
    rdma: Option<(u64, u32, u32)>,
    /// Registration key held (released when done).
    reg: Option<u32>,
    /// The completion sent when the data moved: PUT_DONE, or GET_DONE for
    /// an optimized GET we are the target of.
    done: u8,
}

/// A GET we sent as GET_REQ, waiting for GET_DONE: the peer RDMA-writes
/// the REPLY's data into `buf` (registered under `reg`).
struct ActiveGet {
    token: MsgToken,
    hdr: lnd_api::Hdr,
    buf: SinkBuf,
    reg: u32,
    sink: usize,
    deadline: Instant,
}

/// A PUT we are the sink of, waiting for PUT_DONE.
struct SinkPut {
    token: Option<MsgToken>,
    reg: u32,
    deadline: Instant,
}

struct ConnSt {
    credits: u32,
    outstanding: u32,
    reserved: u32,
    noops: u32,
    posted: u32,
    slots: Vec<SlotUse>,
    free: Vec<usize>,
    nocred: VecDeque<NoCred>,
    queue: VecDeque<LnetTx>,
    active: HashMap<u64, ActivePut>,
    sinks: HashMap<u64, SinkPut>,
    gets: HashMap<u64, ActiveGet>,
    last_tx: Instant,
    last_rx: Instant,
    closed: bool,
}

/// One connection (`kib_conn`).
pub(crate) struct Conn {
    qp: Arc<dyn VerbsQp>,
    peer: u64,
    /// The peer's incarnation (on rdma's active side, set from the CONNACK
    /// after the connection was made to post its receives).
    peer_stamp: AtomicU64,
    qd: u32,
    max_frags: u32,
    rx_buf: PayloadSpan,
    /// Where receive buffer `i` is, as the HCA sees it.
    rx_sge: Vec<Sge>,
    tx_buf: PayloadSpan,
    /// Where send slot `i` is.
    tx_sge: Vec<Sge>,
    _regs: [Reg; 2],
    st: Mutex<ConnSt>,
}

struct PeerSt {
    conn: Option<Arc<Conn>>,
    connecting: bool,
    /// Messages waiting for a connection.
    waiting: Vec<LnetTx>,
    /// The peer's incarnation, once known.
    stamp: u64,
    races: u32,
    last_alive: Option<Instant>,
}

/// What `recv` must do with a received message.
enum RxKind {
    Immediate,
    PutReq {
        cookie: u64,
    },
    GetReq {
        cookie: u64,
        rd: RdmaDesc,
    },
    /// The REPLY of a GET we sent as GET_REQ: `nob` bytes in `buf`.
    Staged {
        buf: SinkBuf,
        nob: usize,
    },
}

struct RxRef {
    conn: Arc<Conn>,
    idx: usize,
    kind: RxKind,
}

#[derive(Default)]
struct NiSt {
    peers: HashMap<u64, PeerSt>,
    conns: HashMap<u32, Arc<Conn>>,
    rxs: HashMap<u64, RxRef>,
}

/// Counters shown by `ctl("stats")`.
#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) noops_sent: AtomicU64,
    pub(crate) noops_received: AtomicU64,
    pub(crate) immediate_sent: AtomicU64,
    pub(crate) rdma_puts: AtomicU64,
    pub(crate) rdma_gets: AtomicU64,
    /// Optimized GETs whose REPLY data the peer wrote into the host's MD
    /// itself (no copy at `recv`).
    pub(crate) rdma_gets_direct: AtomicU64,
    /// Optimized GETs whose REPLY data was copied at `recv`: from a staging
    /// buffer (the host gave no sink), or from the sink into another
    /// window than the sink's.
    pub(crate) rdma_gets_copied: AtomicU64,
    pub(crate) conns_rejected: AtomicU64,
}

/// The shared state of one NI.
pub(crate) struct NiInner {
    pub(crate) host: HostHandle,
    pub(crate) nid: Nid,
    nid4: u64,
    stamp: u64,
    pub(crate) tun: Tunables,
    dev: Provider,
    st: Mutex<NiSt>,
    pub(crate) cache: Mutex<RegCache>,
    shutting_down: AtomicBool,
    next_cookie: AtomicU64,
    pub(crate) counters: Counters,
    timeout: Duration,
    keepalive: Duration,
    cksum: bool,
    listener: Mutex<Option<Listener>>,
    /// Idle registered staging buffers for optimized GETs.
    staging: Mutex<Vec<PayloadSpan>>,
    /// Fault injection (`ctl inject_bad_rkey N`): the next N RDMA
    /// descriptors we hand out (PUT_ACK, GET_REQ) carry a wrong rkey.
    bad_rkeys: std::sync::atomic::AtomicU32,
}

impl Conn {
    fn peer_stamp(&self) -> u64 {
        self.peer_stamp.load(Ordering::Relaxed)
    }
}

/// The NI's listener, of its provider.
pub(crate) enum Listener {
    Soft(SoftListener),
    Rdma(crate::sys::rdma::RdmaListener),
}

/// Which provider an NI starts on.
pub(crate) enum StartWith {
    Soft,
    /// rdma-core's entry points (opened by the caller, or a test's table).
    Rdma(Arc<crate::sys::rdma::RdmaLib>),
}

/// The NI object handed to the host.
pub struct O2ibNi(pub(crate) Arc<NiInner>);

impl NiInner {
    /// Starts an NI: listener on `addr:service`, poller and acceptor.
    pub(crate) fn start(
        host: HostHandle,
        nid: Nid,
        addr: Ipv4Addr,
        tun: Tunables,
        stamp: u64,
        with: StartWith,
    ) -> Result<Arc<NiInner>, LndError> {
        let service = tun.get("service") as u16;
        let sa = SocketAddr::new(IpAddr::V4(addr), service);
        let cannot = |e: VerbsError| {
            LndError::new(errno::EINVAL, format!("cannot add net {}: {e}", nid.net()))
        };
        let (listener, dev) = match with {
            StartWith::Soft => {
                let l = SoftListener::bind(sa).map_err(cannot)?;
                let _ = l.set_nonblocking(true);
                let dev = Provider::Soft {
                    dev: SoftDevice::new(),
                    cq: SoftCq::new(),
                };
                (Listener::Soft(l), dev)
            }
            StartWith::Rdma(lib) => {
                let backlog = 256;
                let l = crate::sys::rdma::RdmaListener::bind(
                    &lib,
                    std::net::SocketAddrV4::new(addr, service),
                    backlog,
                )
                .map_err(cannot)?;
                // The device the address is on, with the NI's PD.
                let dev = Provider::Rdma {
                    dev: l.device().map_err(cannot)?,
                    regs: AtomicU64::new(0),
                };
                (Listener::Rdma(l), dev)
            }
        };
        let limits = dev.limits();
        let ni = Self::run_on(host, nid, tun, stamp, dev, Some(listener))?;
        if let Some(l) = limits {
            ni.log(
                LogLevel::INFO,
                &format!(
                    "RDMA device at {addr}: {l}; {} SGEs per work request",
                    ni.dev.wr_sge()
                ),
            );
        }
        Ok(ni)
    }

    /// Starts an NI on `dev` with `listener` (none: no acceptor): its
    /// poller and acceptor threads.
    pub(crate) fn run_on(
        host: HostHandle,
        nid: Nid,
        tun: Tunables,
        stamp: u64,
        dev: Provider,
        listener: Option<Listener>,
    ) -> Result<Arc<NiInner>, LndError> {
        let nid4 = nid.to_nid4().unwrap_or(wire::NID4_ANY);
        let has_listener = listener.is_some();
        let cache = RegCache::new(tun.get("fmr_pool_size") as usize);
        let ni = Arc::new(NiInner {
            host,
            nid,
            nid4,
            stamp,
            timeout: Duration::from_secs(tun.get("timeout") as u64),
            keepalive: Duration::from_secs(tun.get("keepalive") as u64),
            cksum: tun.get("cksum") != 0,
            tun,
            dev,
            st: Mutex::new(NiSt::default()),
            cache: Mutex::new(cache),
            shutting_down: AtomicBool::new(false),
            next_cookie: AtomicU64::new(1),
            counters: Counters::default(),
            listener: Mutex::new(listener),
            staging: Mutex::new(Vec::new()),
            bad_rkeys: std::sync::atomic::AtomicU32::new(0),
        });
        if let Provider::Soft { cq, .. } = &ni.dev {
            // Completions are handled on the soft QP's thread that made
            // them (no hand-off to the poller per completion, as a kernel
            // o2iblnd handles them in its CQ callback's scheduler).
            let w = Arc::downgrade(&ni);
            cq.set_handler(Box::new(move |wc| {
                if let Some(ni) = w.upgrade() {
                    ni.on_wc(wc);
                }
            }));
        }
        let n = ni.clone();
        std::thread::Builder::new()
            .name("o2ib-poll".into())
            .spawn(move || n.poller())
            .map_err(|e| LndError::new(errno::ENOMEM, format!("o2ib poller thread: {e}")))?;
        if has_listener {
            let n = ni.clone();
            std::thread::Builder::new()
                .name("o2ib-accept".into())
                .spawn(move || n.acceptor())
                .map_err(|e| LndError::new(errno::ENOMEM, format!("o2ib acceptor thread: {e}")))?;
        }
        Ok(ni)
    }

    fn down(&self) -> bool {
        self.shutting_down.load(Ordering::Relaxed)
    }

    fn run(&self, actions: Vec<Action>) {
        for a in actions {
            match a {
                Action::Finalize(t, c) => self.host.finalize(t, c),
                Action::ParseReply { hdr, from, tok } => {
                    if self.host.parse(hdr, from, RxToken(tok), false).is_err() {
                        if let Some(RxRef {
                            kind: RxKind::Staged { buf, .. },
                            ..
                        }) = lock(&self.st).rxs.remove(&tok)
                        {
                            self.put_staging(buf);
                        }
                    }
                }
                Action::Notify(n, up) => self.host.notify(n, up),
                Action::Log(l, m) => self.host.log(l, &format!("o2ib {}: {m}", self.nid)),
            }
        }
    }

    fn log(&self, l: LogLevel, m: &str) {
        self.host.log(l, &format!("o2ib {}: {m}", self.nid));
    }

    fn peer_sockaddr(&self, peer: u64) -> SocketAddr {
        let a = Ipv4Addr::from(peer as u32);
        SocketAddr::new(IpAddr::V4(a), self.tun.get("service") as u16)
    }

    // -----------------------------------------------------------------
    // Sending
    // -----------------------------------------------------------------

    fn send(self: &Arc<Self>, tx: TxMsg, payload: PayloadSpan) -> Result<(), LndError> {
        if self.down() {
            return Err(LndError::new(errno::ENETDOWN, "o2ib NI is shutting down"));
        }
        let Some(peer) = tx.target.to_nid4() else {
            return Err(LndError::new(
                errno::EINVAL,
                format!("o2ib cannot send to {}: no classic NID", tx.target),
            ));
        };
        // A GET's payload, when there is one, is its sink (lnd-api's
        // GET_SINK): where the REPLY's data goes, not bytes to send.
        let (payload, sink_md) = if tx.hdr.msg_type == MsgType::GET && !payload.is_empty() {
            let sink = GetBody::from_body(&tx.hdr.body).sink_length as usize;
            match payload.sub(0, sink) {
                Some(s) => (PayloadSpan::new(), Some(s)),
                None => {
                    return Err(LndError::new(
                        errno::EINVAL,
                        format!(
                            "GET sink of {} bytes but the header asks for {sink}",
                            payload.len()
                        ),
                    ))
                }
            }
        } else {
            (payload, None)
        };
        if payload.len() != tx.hdr.payload_length as usize {
            return Err(LndError::new(
                errno::EINVAL,
                format!(
                    "payload of {} bytes but header says {}",
                    payload.len(),
                    tx.hdr.payload_length
                ),
            ));
        }
        // `tx.rx` (a REPLY's GET) needs nothing here: an optimized GET
        // (GET_REQ) is answered through `recv`, so a REPLY that comes
        // through `send` answers an IMMEDIATE GET and goes out normally.
        //
        // A GET goes as GET_REQ when its REPLY would not fit an IMMEDIATE,
        // as the kernel decides, but only to its final destination and when
        // we originate it (a router's peer could not answer it for another
        // node).
        let get_sink = (tx.hdr.msg_type == MsgType::GET
            && tx.target == tx.hdr.dest_nid
            && tx.hdr.src_nid == self.nid)
            .then(|| GetBody::from_body(&tx.hdr.body).sink_length as usize)
            .filter(|&n| n > MAX_IMMEDIATE_PAYLOAD && n <= MAX_GET_SINK);
        let ltx = LnetTx {
            token: tx.token,
            hdr: tx.hdr,
            payload,
            deadline: Instant::now() + self.timeout,
            sink_md: sink_md.filter(|_| get_sink.is_some()),
            get_sink,
        };
        self.send_ltx(peer, ltx);
        Ok(())
    }

    /// Queues a message on the peer's connection, or for one being made.
    fn send_ltx(self: &Arc<Self>, peer: u64, ltx: LnetTx) {
        let mut actions = Vec::new();
        let mut st = lock(&self.st);
        let p = st.peers.entry(peer).or_insert_with(|| PeerSt {
            conn: None,
            connecting: false,
            waiting: Vec::new(),
            stamp: 0,
            races: 0,
            last_alive: None,
        });
        if let Some(c) = p.conn.clone() {
            drop(st);
            {
                let mut cs = lock(&c.st);
                if cs.closed {
                    // Closed under us: start over (it is no longer the
                    // peer's connection).
                    drop(cs);
                    return self.send_ltx(peer, ltx);
                }
                cs.queue.push_back(ltx);
            }
            self.check_sends(&c, &mut actions);
        } else {
            p.waiting.push(ltx);
            if !p.connecting {
                p.connecting = true;
                let stamp = p.stamp;
                drop(st);
                self.spawn_connect(
                    peer,
                    stamp,
                    self.tun.queue_depth(),
                    MAX_RDMA_FRAGS as u16,
                    0,
                );
            }
        }
        self.run(actions);
    }

    fn make_msg(&self, c: &Conn, credits: u32, body: Body) -> MsgRepr {
        MsgRepr {
            version: VERSION_2,
            credits: credits.min(255) as u8,
            src_nid: self.nid4,
            src_stamp: self.stamp,
            dst_nid: c.peer,
            dst_stamp: c.peer_stamp(),
            body,
        }
    }

    /// Posts what the credit rules allow (`kiblnd_check_sends_locked()`).
    fn check_sends(self: &Arc<Self>, c: &Arc<Conn>, actions: &mut Vec<Action>) {
        let concurrent = self.tun.get("concurrent_sends") as u32;
        let hiw = self.tun.get("peer_credits_hiw") as u32;
        let mut posts: Vec<(usize, usize)> = Vec::new();
        let mut st = lock(&c.st);
        if st.closed {
            return;
        }
        loop {
            if st.posted >= concurrent || st.free.is_empty() {
                break;
            }
            let outstanding = st.outstanding;
            let (repr, use_, payload) = if let Some(nc) = st.nocred.pop_front() {
                match nc {
                    NoCred::Completion {
                        t,
                        cookie,
                        status,
                        then,
                    } => {
                        let body = CompletionBody { cookie, status };
                        let b = match t {
                            msg_type::PUT_NAK => Body::PutNak(body),
                            msg_type::PUT_DONE => Body::PutDone(body),
                            _ => Body::GetDone(body),
                        };
                        (
                            self.make_msg(c, outstanding, b),
                            SlotUse::NoCred(then),
                            None,
                        )
                    }
                    NoCred::RdmaDone {
                        t,
                        dst_cookie,
                        nob,
                        src_cookie,
                    } => {
                        let body = CompletionBody {
                            cookie: dst_cookie,
                            status: nob as i32,
                        };
                        let b = if t == msg_type::PUT_DONE {
                            Body::PutDone(body)
                        } else {
                            Body::GetDone(body)
                        };
                        (
                            self.make_msg(c, outstanding, b),
                            SlotUse::RdmaDone(src_cookie),
                            None,
                        )
                    }
                    NoCred::PutAck {
                        src_cookie,
                        dst_cookie,
                        rd,
                    } => (
                        self.make_msg(
                            c,
                            outstanding,
                            Body::PutAck {
                                src_cookie,
                                dst_cookie,
                                rd,
                            },
                        ),
                        SlotUse::NoCred(None),
                        None,
                    ),
                }
            } else if let Some(front) = st.queue.front() {
                let len = front.payload.len();
                let immediate = match front.hdr.msg_type {
                    MsgType::PUT | MsgType::REPLY => len <= MAX_IMMEDIATE_PAYLOAD,
                    MsgType::GET => front.get_sink.is_none(),
                    _ => true,
                };
                if st.credits == 0 || (!immediate && st.reserved == 0) {
                    if !self.maybe_noop(&mut st, hiw) {
                        break;
                    }
                    let r = self.make_msg(c, st.outstanding, Body::Noop);
                    (r, SlotUse::Noop, None)
                } else {
                    let Some(t) = st.queue.pop_front() else { break };
                    st.credits -= 1;
                    if immediate {
                        let r = self.make_msg(
                            c,
                            outstanding,
                            Body::Immediate {
                                hdr: t.hdr,
                                payload_len: len,
                            },
                        );
                        (r, SlotUse::Immediate(t.token), Some(t.payload))
                    } else if let Some(sink) = t.get_sink {
                        // Optimized GET: the peer RDMA-writes the REPLY's
                        // data into the GET's sink MD, registered (through
                        // the cache) as it is; the REPLY is parsed at
                        // GET_DONE. Only a host without lnd-api's GET_SINK
                        // leaves us a registered staging buffer instead.
                        let buf = match t.sink_md {
                            Some(md) => SinkBuf {
                                buf: md,
                                staged: false,
                            },
                            None => SinkBuf {
                                buf: self.take_staging(sink),
                                staged: true,
                            },
                        };
                        let reg = lock(&self.cache).get(
                            &self.dev,
                            &buf.buf,
                            Access::LOCAL_WRITE.union(Access::REMOTE_WRITE),
                        );
                        let desc = self.desc(c, reg, sink);
                        let Some((key, rd)) = desc else {
                            self.put_staging(buf);
                            st.credits += 1;
                            actions.push(Action::Finalize(
                                t.token,
                                Completion::failed(errno::ENOMEM, HealthStatus::LOCAL_ERROR),
                            ));
                            continue;
                        };
                        st.reserved -= 1;
                        let cookie = self.next_cookie.fetch_add(1, Ordering::Relaxed);
                        let r = self.make_msg(
                            c,
                            outstanding,
                            Body::GetReq {
                                hdr: t.hdr,
                                cookie,
                                rd,
                            },
                        );
                        st.gets.insert(
                            cookie,
                            ActiveGet {
                                token: t.token,
                                hdr: t.hdr,
                                buf,
                                reg: key,
                                sink,
                                deadline: t.deadline,
                            },
                        );
                        (r, SlotUse::GetReq, None)
                    } else {
                        st.reserved -= 1;
                        let cookie = self.next_cookie.fetch_add(1, Ordering::Relaxed);
                        let r = self.make_msg(c, outstanding, Body::PutReq { hdr: t.hdr, cookie });
                        st.active.insert(
                            cookie,
                            ActivePut {
                                token: t.token,
                                payload: t.payload,
                                deadline: t.deadline,
                                rdma: None,
                                reg: None,
                                done: msg_type::PUT_DONE,
                            },
                        );
                        (r, SlotUse::PutReq, None)
                    }
                }
            } else if self.maybe_noop(&mut st, hiw) {
                (
                    self.make_msg(c, st.outstanding, Body::Noop),
                    SlotUse::Noop,
                    None,
                )
            } else {
                break;
            };
            let Some(slot) = st.free.pop() else { break };
            // Frame into the slot.
            let mut buf = [0u8; MSG_SIZE];
            let nob = match repr.emit(Endian::NATIVE, &mut buf) {
                Ok(n) => n,
                Err(e) => {
                    st.free.push(slot);
                    if let SlotUse::Immediate(t) = use_ {
                        actions.push(Action::Finalize(
                            t,
                            Completion::failed(errno::EPROTO, HealthStatus::LOCAL_ERROR),
                        ));
                    }
                    actions.push(Action::Log(LogLevel::ERROR, e.to_string()));
                    continue;
                }
            };
            if let Some(p) = &payload {
                if p.read_at(0, &mut buf[IMMEDIATE_PAYLOAD_OFFSET..nob]).ok()
                    != Some(nob - IMMEDIATE_PAYLOAD_OFFSET)
                {
                    st.free.push(slot);
                    if let SlotUse::Immediate(t) = use_ {
                        actions.push(Action::Finalize(
                            t,
                            Completion::failed(errno::EBUSY, HealthStatus::LOCAL_ERROR),
                        ));
                    }
                    continue;
                }
            }
            if self.cksum {
                wire::seal_cksum(Endian::NATIVE, &mut buf[..nob]);
            }
            if matches!(use_, SlotUse::Noop) {
                st.noops += 1;
                self.counters.noops_sent.fetch_add(1, Ordering::Relaxed);
            }
            if matches!(use_, SlotUse::Immediate(_)) {
                self.counters.immediate_sent.fetch_add(1, Ordering::Relaxed);
            }
            st.outstanding -= repr.credits as u32;
            let _ = c.tx_buf.write_at(slot * MSG_SIZE, &buf[..nob]);
            st.slots[slot] = use_;
            st.posted += 1;
            st.last_tx = Instant::now();
            posts.push((slot, nob));
        }
        drop(st);
        for (slot, nob) in posts {
            let _ = c.qp.post_send(SendWr {
                wr_id: WR_TX | slot as u64,
                op: SendOp::Send,
                sge: vec![Sge {
                    length: nob as u32,
                    ..c.tx_sge[slot]
                }],
            });
        }
    }

    /// Whether a NOOP is due: credits to return at the high-water mark (or
    /// a keepalive is due) and fewer than 2 NOOPs in flight.
    fn maybe_noop(&self, st: &mut ConnSt, hiw: u32) -> bool {
        if st.noops >= MAX_NOOPS {
            return false;
        }
        let keepalive_due = !self.keepalive.is_zero() && st.last_tx.elapsed() >= self.keepalive;
        st.outstanding >= hiw.max(1) || keepalive_due
    }

    // -----------------------------------------------------------------
    // Completions
    // -----------------------------------------------------------------

    fn poller(self: Arc<Self>) {
        let mut last_tick = Instant::now();
        loop {
            if self.down() && lock(&self.st).conns.is_empty() {
                return;
            }
            match &self.dev {
                Provider::Soft { cq, .. } => {
                    self.serve_cq(cq, Duration::from_millis(100));
                }
                Provider::Rdma { dev, .. } => {
                    // Every connection's CQ and CM events, through the
                    // device (one completion channel, one CM channel).
                    self.serve_cq(dev, Duration::from_millis(100));
                }
            }
            if last_tick.elapsed() >= Duration::from_millis(200) {
                last_tick = Instant::now();
                self.tick();
            }
            if self.down() {
                // Drain until every conn is closed.
                let conns: Vec<_> = lock(&self.st).conns.values().cloned().collect();
                for c in conns {
                    self.close_conn(&c, errno::ENETDOWN, "NI shut down");
                }
            }
        }
    }

    /// Waits at most `t` on `cq`, then handles its completions and CM
    /// events; whether anything came.
    fn serve_cq(self: &Arc<Self>, cq: &dyn VerbsCq, t: Duration) -> bool {
        let mut any = cq.wait(t);
        for wc in cq.poll(64) {
            any = true;
            self.on_wc(wc);
        }
        while let Some(ev) = cq.poll_event() {
            any = true;
            self.on_cm_event(ev);
        }
        any
    }

    /// A CM event after set-up: the connection is gone.
    fn on_cm_event(&self, ev: CmEvent) {
        let (qp_num, why) = match ev {
            CmEvent::Disconnected { qp_num } => (qp_num, "disconnected"),
            CmEvent::TimewaitExit { qp_num } => (qp_num, "time-wait exit"),
            CmEvent::DeviceRemoved { qp_num } => (qp_num, "RDMA device removed"),
        };
        let c = lock(&self.st).conns.get(&qp_num).cloned();
        if let Some(c) = c {
            self.close_conn(&c, errno::ECONNRESET, why);
        }
    }

    fn conn_of(&self, qp_num: u32) -> Option<Arc<Conn>> {
        lock(&self.st).conns.get(&qp_num).cloned()
    }

    fn on_wc(self: &Arc<Self>, wc: Wc) {
        let Some(c) = self.conn_of(wc.qp_num) else {
            return;
        };
        let mut actions = Vec::new();
        match wc.wr_id & WR_MASK {
            WR_RX => self.on_rx(&c, wc, &mut actions),
            WR_TX => self.on_tx_done(&c, wc, &mut actions),
            WR_RDMA => self.on_rdma_done(&c, wc, &mut actions),
            _ => {}
        }
        self.run(actions);
    }

    fn fail_health(status: WcStatus) -> HealthStatus {
        match status {
            WcStatus::RemAccessErr | WcStatus::RemInvReqErr | WcStatus::RemOpErr => {
                HealthStatus::REMOTE_ERROR
            }
            WcStatus::LocProtErr | WcStatus::LocLenErr => HealthStatus::LOCAL_ERROR,
            _ => HealthStatus::REMOTE_DROPPED,
        }
    }

    fn on_tx_done(self: &Arc<Self>, c: &Arc<Conn>, wc: Wc, actions: &mut Vec<Action>) {
        let slot = (wc.wr_id & !WR_MASK) as usize;
        let use_ = {
            let mut st = lock(&c.st);
            let Some(s) = st.slots.get_mut(slot) else {
                return;
            };
            let u = std::mem::replace(s, SlotUse::Free);
            st.free.push(slot);
            st.posted = st.posted.saturating_sub(1);
            if matches!(u, SlotUse::Noop) {
                st.noops = st.noops.saturating_sub(1);
            }
            u
        };
        if wc.status != WcStatus::Success {
            let h = Self::fail_health(wc.status);
            match use_ {
                SlotUse::Immediate(t) | SlotUse::NoCred(Some(t)) => {
                    actions.push(Action::Finalize(t, Completion::failed(errno::EIO, h)))
                }
                SlotUse::RdmaDone(k) => self.rdma_failed(c, k, h, actions),
                _ => {}
            }
            if wc.status != WcStatus::WrFlushErr {
                self.close_conn_h(c, errno::EIO, &format!("send failed: {}", wc.status), h);
            }
            return;
        }
        match use_ {
            SlotUse::Immediate(t) | SlotUse::NoCred(Some(t)) => {
                actions.push(Action::Finalize(t, Completion::OK))
            }
            SlotUse::RdmaDone(k) => self.rdma_part_done(c, k, actions),
            _ => {}
        }
        self.check_sends(c, actions);
    }

    /// An RDMA we are the source of failed (one of its WRITEs or its done
    /// message): its message fails once; the other parts' completions
    /// then find nothing.
    fn rdma_failed(&self, c: &Arc<Conn>, cookie: u64, h: HealthStatus, actions: &mut Vec<Action>) {
        let ap = lock(&c.st).active.remove(&cookie);
        if let Some(ap) = ap {
            if let Some(k) = ap.reg {
                lock(&self.cache).release(k);
            }
            actions.push(Action::Finalize(
                ap.token,
                Completion::failed(errno::EIO, h),
            ));
        }
    }

    /// One part of an RDMA we are the source of completed (a WRITE or the
    /// done message); the message is finalized when the last one did.
    fn rdma_part_done(&self, c: &Arc<Conn>, cookie: u64, actions: &mut Vec<Action>) {
        let ap = {
            let mut st = lock(&c.st);
            let Some(ap) = st.active.get_mut(&cookie) else {
                return;
            };
            let Some((_, left, _)) = ap.rdma.as_mut() else {
                return;
            };
            *left = left.saturating_sub(1);
            if *left > 0 {
                return;
            }
            st.active.remove(&cookie)
        };
        if let Some(ap) = ap {
            if let Some(k) = ap.reg {
                lock(&self.cache).release(k);
            }
            self.counters.rdma_puts.fetch_add(1, Ordering::Relaxed);
            actions.push(Action::Finalize(ap.token, Completion::OK));
        }
    }

    fn on_rdma_done(self: &Arc<Self>, c: &Arc<Conn>, wc: Wc, actions: &mut Vec<Action>) {
        let cookie = wc.wr_id & !WR_MASK;
        if wc.status != WcStatus::Success {
            let h = Self::fail_health(wc.status);
            self.rdma_failed(c, cookie, h, actions);
            if wc.status != WcStatus::WrFlushErr {
                self.close_conn_h(c, errno::EIO, &format!("RDMA failed: {}", wc.status), h);
            }
            return;
        }
        self.rdma_part_done(c, cookie, actions);
    }

    fn on_rx(self: &Arc<Self>, c: &Arc<Conn>, wc: Wc, actions: &mut Vec<Action>) {
        let idx = (wc.wr_id & !WR_MASK) as usize;
        if wc.status != WcStatus::Success {
            if wc.status != WcStatus::WrFlushErr {
                self.close_conn(c, errno::EIO, &format!("receive failed: {}", wc.status));
            }
            return;
        }
        let mut bytes = [0u8; MSG_SIZE];
        let n = (wc.byte_len as usize).min(MSG_SIZE);
        if c.rx_buf.read_at(idx * MSG_SIZE, &mut bytes[..n]).ok() != Some(n) {
            self.close_conn(c, errno::EIO, "receive buffer busy");
            return;
        }
        let r = match Msg::new_checked(&bytes[..n]).and_then(|m| MsgRepr::parse(&m)) {
            Ok(r) => r,
            Err(e) => {
                self.close_conn(c, errno::EPROTO, &format!("bad message: {e}"));
                return;
            }
        };
        if r.src_nid != c.peer
            || r.dst_nid != self.nid4
            || r.src_stamp != c.peer_stamp()
            || r.dst_stamp != self.stamp
        {
            self.close_conn(c, errno::ESTALE, "stale message");
            return;
        }
        {
            let mut st = lock(&c.st);
            st.last_rx = Instant::now();
            if st.credits + r.credits as u32 > c.qd {
                drop(st);
                self.close_conn(
                    c,
                    errno::EPROTO,
                    &format!(
                        "bad credits: {} returned over queue depth {}",
                        r.credits, c.qd
                    ),
                );
                return;
            }
            st.credits += r.credits as u32;
        }
        if let Some(p) = lock(&self.st).peers.get_mut(&c.peer) {
            p.last_alive = Some(Instant::now());
        }
        let from = Nid::from_nid4(c.peer);
        match r.body {
            Body::Noop => {
                self.counters.noops_received.fetch_add(1, Ordering::Relaxed);
                self.repost(c, idx, Credit::None, actions);
            }
            Body::Immediate { hdr, .. } => {
                let tok = self.new_rx(c, idx, RxKind::Immediate);
                if self.host.parse(hdr, from, RxToken(tok), false).is_err() {
                    lock(&self.st).rxs.remove(&tok);
                    self.repost(c, idx, Credit::Peer, actions);
                }
            }
            Body::PutReq { hdr, cookie } => {
                let tok = self.new_rx(c, idx, RxKind::PutReq { cookie });
                if self.host.parse(hdr, from, RxToken(tok), true).is_err() {
                    lock(&self.st).rxs.remove(&tok);
                    lock(&c.st).nocred.push_back(NoCred::Completion {
                        t: msg_type::PUT_NAK,
                        cookie,
                        status: -errno::EPROTO,
                        then: None,
                    });
                    self.repost(c, idx, Credit::Peer, actions);
                }
            }
            Body::PutAck {
                src_cookie,
                dst_cookie,
                rd,
            } => {
                self.repost(c, idx, Credit::Reserved, actions);
                self.start_rdma_put(c, src_cookie, dst_cookie, rd, actions);
            }
            Body::PutNak(cb) => {
                self.repost(c, idx, Credit::Reserved, actions);
                let ap = lock(&c.st).active.remove(&cb.cookie);
                match ap {
                    Some(ap) => actions.push(Action::Finalize(
                        ap.token,
                        if cb.status < 0 {
                            Completion::failed(cb.status, HealthStatus::REMOTE_ERROR)
                        } else {
                            Completion::OK
                        },
                    )),
                    None => self.close_conn(c, errno::EPROTO, "unmatched PUT_NAK"),
                }
            }
            Body::PutDone(cb) => {
                let sink = lock(&c.st).sinks.remove(&cb.cookie);
                self.repost(c, idx, Credit::Peer, actions);
                match sink {
                    Some(s) => {
                        lock(&self.cache).release(s.reg);
                        if let Some(t) = s.token {
                            actions.push(Action::Finalize(
                                t,
                                if cb.status < 0 {
                                    Completion::failed(cb.status, HealthStatus::REMOTE_ERROR)
                                } else {
                                    Completion::OK
                                },
                            ));
                        }
                    }
                    None => self.close_conn(c, errno::EPROTO, "unmatched PUT_DONE"),
                }
            }
            Body::GetReq { hdr, cookie, rd } => {
                // An optimized GET: the host answers through `recv` with
                // the REPLY's token and the source data; we RDMA-WRITE it
                // into `rd` and send GET_DONE.
                let tok = self.new_rx(c, idx, RxKind::GetReq { cookie, rd });
                if self.host.parse(hdr, from, RxToken(tok), true).is_err() {
                    lock(&self.st).rxs.remove(&tok);
                    lock(&c.st).nocred.push_back(NoCred::Completion {
                        t: msg_type::GET_DONE,
                        cookie,
                        status: -errno::EPROTO,
                        then: None,
                    });
                    self.repost(c, idx, Credit::Peer, actions);
                }
            }
            Body::GetDone(cb) => {
                self.repost(c, idx, Credit::Reserved, actions);
                let g = lock(&c.st).gets.remove(&cb.cookie);
                let Some(g) = g else {
                    self.close_conn(c, errno::EPROTO, "GET_DONE for a GET_REQ we never sent");
                    return;
                };
                lock(&self.cache).release(g.reg);
                if cb.status < 0 {
                    // The target's error (-ENODATA: nothing matched); the
                    // network is fine, as the kernel reports it.
                    self.put_staging(g.buf);
                    actions.push(Action::Finalize(
                        g.token,
                        Completion {
                            errno: cb.status,
                            health: HealthStatus::OK,
                        },
                    ));
                    return;
                }
                let nob = cb.status as usize;
                if nob > g.sink {
                    self.put_staging(g.buf);
                    actions.push(Action::Finalize(
                        g.token,
                        Completion::failed(errno::EPROTO, HealthStatus::REMOTE_ERROR),
                    ));
                    self.close_conn(
                        c,
                        errno::EPROTO,
                        &format!("GET_DONE of {nob} bytes for a sink of {}", g.sink),
                    );
                    return;
                }
                self.counters.rdma_gets.fetch_add(1, Ordering::Relaxed);
                // The REPLY the target would have sent (`lnet_create_reply_msg`
                // in the kernel): from the GET's target to us, for the GET's
                // return MD, `nob` bytes long.
                let get = GetBody::from_body(&g.hdr.body);
                let hdr = lnd_api::Hdr::reply(
                    g.hdr.src_nid,
                    g.hdr.dest_nid,
                    g.hdr.src_pid,
                    g.hdr.dest_pid,
                    nob as u32,
                    ReplyBody {
                        dst_wmd: get.return_wmd,
                    },
                );
                let tok = self.new_rx(c, idx, RxKind::Staged { buf: g.buf, nob });
                actions.push(Action::Finalize(g.token, Completion::OK));
                actions.push(Action::ParseReply { hdr, from, tok });
            }
            Body::ConnReq(_) | Body::ConnAck(_) => {
                self.close_conn(c, errno::EPROTO, "connection message on an open connection");
            }
        }
    }

    fn new_rx(&self, c: &Arc<Conn>, idx: usize, kind: RxKind) -> u64 {
        let tok = self.next_cookie.fetch_add(1, Ordering::Relaxed);
        lock(&self.st).rxs.insert(
            tok,
            RxRef {
                conn: c.clone(),
                idx,
                kind,
            },
        );
        tok
    }

    fn repost(
        self: &Arc<Self>,
        c: &Arc<Conn>,
        idx: usize,
        credit: Credit,
        actions: &mut Vec<Action>,
    ) {
        if lock(&c.st).closed {
            return;
        }
        self.post_rx(c, idx);
        {
            let mut st = lock(&c.st);
            match credit {
                Credit::Peer => st.outstanding += 1,
                Credit::Reserved => st.reserved += 1,
                Credit::None => {}
            }
        }
        self.check_sends(c, actions);
    }

    /// PUT_ACK arrived: RDMA-WRITE the payload into the sink's fragments.
    fn start_rdma_put(
        self: &Arc<Self>,
        c: &Arc<Conn>,
        src_cookie: u64,
        dst_cookie: u64,
        rd: RdmaDesc,
        actions: &mut Vec<Action>,
    ) {
        let (payload, done) = {
            let st = lock(&c.st);
            match st.active.get(&src_cookie) {
                Some(ap) if ap.rdma.is_none() => (ap.payload.clone(), ap.done),
                _ => {
                    drop(st);
                    self.close_conn(c, errno::EPROTO, "unmatched PUT_ACK");
                    return;
                }
            }
        };
        let nob = payload.len();
        let total = rd.total_nob();
        if total < nob as u64 || rd.frags.len() as u32 > c.max_frags {
            // The sink offered less than we must send.
            let ap = lock(&c.st).active.remove(&src_cookie);
            lock(&c.st).nocred.push_back(NoCred::Completion {
                t: done,
                cookie: dst_cookie,
                status: -errno::EMSGSIZE,
                then: ap.map(|a| a.token),
            });
            self.check_sends(c, actions);
            return;
        }
        let (lkey, reg) = match lock(&self.cache).get(&self.dev, &payload, Access(0)) {
            Ok(Some(x)) => x,
            Ok(None) | Err(_) => {
                let ap = lock(&c.st).active.remove(&src_cookie);
                lock(&c.st).nocred.push_back(NoCred::Completion {
                    t: done,
                    cookie: dst_cookie,
                    status: -errno::ENOMEM,
                    then: ap.map(|a| a.token),
                });
                self.check_sends(c, actions);
                return;
            }
        };
        // One WRITE per remote fragment, gathering the local pieces it
        // meets (a further WRITE per `wr_sge` of them).
        let per_wr = self.dev.wr_sge().max(1) as usize;
        let mut wrs = Vec::new();
        let mut off = 0u64;
        for f in &rd.frags {
            if off >= nob as u64 {
                break;
            }
            let n = (f.nob as u64).min(nob as u64 - off);
            let mut at = 0u64;
            for sges in reg.sges(off as usize, n as usize).chunks(per_wr) {
                wrs.push(SendWr {
                    wr_id: WR_RDMA | src_cookie,
                    op: SendOp::Write {
                        remote_addr: f.addr + at,
                        rkey: rd.key,
                    },
                    sge: sges.to_vec(),
                });
                at += sges.iter().map(|s| s.length as u64).sum::<u64>();
            }
            off += n;
        }
        if wrs.is_empty() {
            // A 0-byte RDMA PUT cannot happen (those go IMMEDIATE), but
            // answer it anyway.
            let ap = lock(&c.st).active.remove(&src_cookie);
            lock(&self.cache).release(lkey);
            lock(&c.st).nocred.push_back(NoCred::Completion {
                t: done,
                cookie: dst_cookie,
                status: 0,
                then: ap.map(|a| a.token),
            });
            self.check_sends(c, actions);
            return;
        }
        {
            let mut st = lock(&c.st);
            if let Some(ap) = st.active.get_mut(&src_cookie) {
                // The WRITEs and the done message.
                ap.rdma = Some((dst_cookie, wrs.len() as u32 + 1, nob as u32));
                ap.reg = Some(lkey);
            }
        }
        for w in wrs {
            let _ = c.qp.post_send(w);
        }
        // The done message goes right behind the WRITEs (a queue of its
        // own that needs no credit); the peer sees it after the data.
        lock(&c.st).nocred.push_back(NoCred::RdmaDone {
            t: done,
            dst_cookie,
            nob: nob as u32,
            src_cookie,
        });
        self.check_sends(c, actions);
    }

    // -----------------------------------------------------------------
    // recv
    // -----------------------------------------------------------------

    fn recv(self: &Arc<Self>, rx: RxAction, payload: PayloadSpan) -> Result<(), LndError> {
        let Some(r) = lock(&self.st).rxs.remove(&rx.rx.0) else {
            return Err(LndError::new(
                errno::EINVAL,
                format!("o2ib: unknown receive token {}", rx.rx.0),
            ));
        };
        let c = r.conn;
        let msg: Option<MsgToken> = match rx.msg {
            ROption::RSome(t) => Some(t),
            ROption::RNone => None,
        };
        let mut actions = Vec::new();
        match r.kind {
            RxKind::Immediate => {
                if let Some(t) = msg {
                    let mlen = payload.len();
                    let mut tmp = vec![0u8; mlen];
                    let ok = c
                        .rx_buf
                        .read_at(r.idx * MSG_SIZE + IMMEDIATE_PAYLOAD_OFFSET, &mut tmp)
                        .ok()
                        == Some(mlen)
                        && payload.write_at(0, &tmp).ok() == Some(mlen);
                    actions.push(Action::Finalize(
                        t,
                        if ok {
                            Completion::OK
                        } else {
                            Completion::failed(errno::EIO, HealthStatus::LOCAL_ERROR)
                        },
                    ));
                }
                self.repost(&c, r.idx, Credit::Peer, &mut actions);
            }
            RxKind::Staged { buf, nob } => {
                if let Some(t) = msg {
                    let mlen = payload.len().min(nob);
                    let src = buf.buf.sub(0, mlen);
                    let dst = payload.sub(0, mlen);
                    let ok = match (src, dst) {
                        // The peer wrote the data where the host wants it.
                        (Some(src), Some(dst)) if !buf.staged && src.same_memory(&dst) => {
                            self.counters
                                .rdma_gets_direct
                                .fetch_add(1, Ordering::Relaxed);
                            true
                        }
                        (Some(src), Some(dst)) => {
                            self.counters
                                .rdma_gets_copied
                                .fetch_add(1, Ordering::Relaxed);
                            src.copy_to(&dst).ok() == Some(mlen)
                        }
                        _ => false,
                    };
                    actions.push(Action::Finalize(
                        t,
                        if ok {
                            Completion::OK
                        } else {
                            Completion::failed(errno::EIO, HealthStatus::LOCAL_ERROR)
                        },
                    ));
                }
                self.put_staging(buf);
            }
            RxKind::GetReq { cookie, rd } => {
                // The GET_REQ's buffer is consumed: return its credit.
                self.repost(&c, r.idx, Credit::Peer, &mut actions);
                match msg {
                    // No match: -ENODATA, as the kernel answers.
                    None => lock(&c.st).nocred.push_back(NoCred::Completion {
                        t: msg_type::GET_DONE,
                        cookie,
                        status: -ENODATA,
                        then: None,
                    }),
                    Some(t) if payload.is_empty() => {
                        lock(&c.st).nocred.push_back(NoCred::Completion {
                            t: msg_type::GET_DONE,
                            cookie,
                            status: 0,
                            then: Some(t),
                        })
                    }
                    Some(t) => {
                        let key = self.next_cookie.fetch_add(1, Ordering::Relaxed);
                        lock(&c.st).active.insert(
                            key,
                            ActivePut {
                                token: t,
                                payload,
                                deadline: Instant::now() + self.timeout,
                                rdma: None,
                                reg: None,
                                done: msg_type::GET_DONE,
                            },
                        );
                        self.start_rdma_put(&c, key, cookie, rd, &mut actions);
                    }
                }
                self.check_sends(&c, &mut actions);
            }
            RxKind::PutReq { cookie } => {
                let mlen = payload.len();
                let reg = if mlen == 0 || msg.is_none() {
                    None
                } else {
                    let reg = lock(&self.cache).get(
                        &self.dev,
                        &payload,
                        Access::LOCAL_WRITE.union(Access::REMOTE_WRITE),
                    );
                    self.desc(&c, reg, mlen)
                };
                match reg {
                    None => {
                        let status = if mlen == 0 || msg.is_none() {
                            0
                        } else {
                            -errno::ENOMEM
                        };
                        lock(&c.st).nocred.push_back(NoCred::Completion {
                            t: msg_type::PUT_NAK,
                            cookie,
                            status,
                            then: None,
                        });
                        if let Some(t) = msg {
                            actions.push(Action::Finalize(
                                t,
                                if status == 0 {
                                    Completion::OK
                                } else {
                                    Completion::failed(status, HealthStatus::LOCAL_ERROR)
                                },
                            ));
                        }
                        self.repost(&c, r.idx, Credit::Peer, &mut actions);
                    }
                    Some((key, rd)) => {
                        let dst = self.next_cookie.fetch_add(1, Ordering::Relaxed);
                        {
                            let mut st = lock(&c.st);
                            st.sinks.insert(
                                dst,
                                SinkPut {
                                    token: msg,
                                    reg: key,
                                    deadline: Instant::now() + self.timeout,
                                },
                            );
                            st.nocred.push_back(NoCred::PutAck {
                                src_cookie: cookie,
                                dst_cookie: dst,
                                rd,
                            });
                        }
                        // The buffer stays reserved for the PUT_DONE.
                        self.repost(&c, r.idx, Credit::None, &mut actions);
                    }
                }
            }
        }
        self.run(actions);
        Ok(())
    }

    // -----------------------------------------------------------------
    // Closing, timeouts
    // -----------------------------------------------------------------

    fn close_conn(&self, c: &Arc<Conn>, err: i32, why: &str) {
        self.close_conn_h(c, err, why, HealthStatus::REMOTE_DROPPED)
    }

    /// Closes a connection: the QP is disconnected, messages that left us
    /// fail with `h`, messages still queued with `LOCAL_ERROR`.
    fn close_conn_h(&self, c: &Arc<Conn>, err: i32, why: &str, h: HealthStatus) {
        let mut actions = Vec::new();
        {
            let mut st = lock(&c.st);
            if st.closed {
                return;
            }
            st.closed = true;
            for t in st.queue.drain(..) {
                actions.push(Action::Finalize(
                    t.token,
                    Completion::failed(err, HealthStatus::LOCAL_ERROR),
                ));
            }
            for nc in st.nocred.drain(..) {
                if let NoCred::Completion { then: Some(t), .. } = nc {
                    actions.push(Action::Finalize(t, Completion::failed(err, h)));
                }
            }
            for (_, ap) in st.active.drain() {
                if let Some(k) = ap.reg {
                    lock(&self.cache).release(k);
                }
                actions.push(Action::Finalize(ap.token, Completion::failed(err, h)));
            }
            for (_, g) in st.gets.drain() {
                lock(&self.cache).release(g.reg);
                actions.push(Action::Finalize(g.token, Completion::failed(err, h)));
            }
            for (_, s) in st.sinks.drain() {
                lock(&self.cache).release(s.reg);
                if let Some(t) = s.token {
                    actions.push(Action::Finalize(t, Completion::failed(err, h)));
                }
            }
            for s in st.slots.iter_mut() {
                match std::mem::replace(s, SlotUse::Free) {
                    SlotUse::Immediate(t) | SlotUse::NoCred(Some(t)) => {
                        actions.push(Action::Finalize(t, Completion::failed(err, h)))
                    }
                    _ => {}
                }
            }
        }
        c.qp.disconnect();
        let peer = Nid::from_nid4(c.peer);
        {
            let mut st = lock(&self.st);
            st.conns.remove(&c.qp.qp_num());
            if let Some(p) = st.peers.get_mut(&c.peer) {
                if p.conn.as_ref().is_some_and(|x| Arc::ptr_eq(x, c)) {
                    p.conn = None;
                }
            }
            // Receives the host has not taken yet stay valid tokens; their
            // recv finds the conn closed and only finalizes.
        }
        actions.insert(
            0,
            Action::Log(
                LogLevel::WARN,
                format!("closing connection to {peer}: {why} (error -{})", err.abs()),
            ),
        );
        actions.push(Action::Notify(peer, false));
        self.run(actions);
    }

    fn tick(self: &Arc<Self>) {
        let now = Instant::now();
        let conns: Vec<Arc<Conn>> = lock(&self.st).conns.values().cloned().collect();
        for c in conns {
            let timed_out = {
                let st = lock(&c.st);
                st.queue.iter().any(|t| t.deadline <= now)
                    || st.active.values().any(|a| a.deadline <= now)
                    || st.sinks.values().any(|s| s.deadline <= now)
                    || st.gets.values().any(|g| g.deadline <= now)
            };
            if timed_out {
                self.close_conn_h(
                    &c,
                    errno::ETIMEDOUT,
                    "timed out",
                    HealthStatus::NETWORK_TIMEOUT,
                );
                continue;
            }
            let mut actions = Vec::new();
            self.check_sends(&c, &mut actions);
            self.run(actions);
        }
        // Messages waiting for a connection that never came.
        let mut actions = Vec::new();
        {
            let mut st = lock(&self.st);
            for p in st.peers.values_mut() {
                let (late, keep): (Vec<_>, Vec<_>) =
                    p.waiting.drain(..).partition(|t| t.deadline <= now);
                p.waiting = keep;
                for t in late {
                    actions.push(Action::Finalize(
                        t.token,
                        Completion::failed(errno::ETIMEDOUT, HealthStatus::LOCAL_TIMEOUT),
                    ));
                }
            }
        }
        self.run(actions);
        lock(&self.cache).sweep();
    }

    /// The RDMA descriptor of the first `nob` bytes of a registration the
    /// cache gave (`reg`), with the id to release it by; `None` (the
    /// registration released, a failure logged) when it failed or has
    /// more fragments than the connection takes.
    fn desc(
        &self,
        c: &Conn,
        reg: Result<Option<(u32, Arc<Reg>)>, VerbsError>,
        nob: usize,
    ) -> Option<(u32, RdmaDesc)> {
        let (id, reg) = match reg {
            Ok(Some(x)) => x,
            Ok(None) => return None,
            Err(e) => {
                self.log(LogLevel::WARN, &format!("cannot register memory: {e}"));
                return None;
            }
        };
        let frags = reg.remote(nob);
        if frags.len() > c.max_frags as usize {
            lock(&self.cache).release(id);
            self.log(
                LogLevel::WARN,
                &format!(
                    "memory of {} fragments, more than the connection's {}",
                    frags.len(),
                    c.max_frags
                ),
            );
            return None;
        }
        Some((
            id,
            RdmaDesc {
                key: self.advertised_key(reg.rkey),
                frags,
            },
        ))
    }

    /// The rkey put in an RDMA descriptor for registration `key`: itself,
    /// or a wrong one while `inject_bad_rkey` has some left.
    fn advertised_key(&self, key: u32) -> u32 {
        let left = self
            .bad_rkeys
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
        if left.is_ok() {
            key ^ 0x5a5a_0000
        } else {
            key
        }
    }

    /// A staging buffer of at least `len` bytes for an optimized GET's
    /// sink: an idle one of the size class (already registered, found in
    /// the registration cache), or a new one.
    fn take_staging(&self, len: usize) -> PayloadSpan {
        let class = len.next_power_of_two().max(MSG_SIZE);
        let mut pool = lock(&self.staging);
        match pool.iter().position(|b| b.len() == class) {
            Some(i) => pool.swap_remove(i),
            None => PayloadSpan::from(IoBuf::zeroed(class)),
        }
    }

    /// Returns a staging buffer to the pool (dropped beyond a few idle ones:
    /// its registration then goes at the next cache sweep); a host's sink
    /// MD is only let go.
    fn put_staging(&self, buf: SinkBuf) {
        if !buf.staged {
            return;
        }
        let mut pool = lock(&self.staging);
        if pool.len() < MAX_IDLE_STAGING {
            pool.push(buf.buf);
        }
    }

    fn shutdown(&self) {
        self.shutting_down.store(true, Ordering::Relaxed);
        // Stop listening: connection attempts are refused from now on.
        lock(&self.listener).take();
        let conns: Vec<Arc<Conn>> = lock(&self.st).conns.values().cloned().collect();
        for c in &conns {
            self.close_conn_h(
                c,
                errno::ENETDOWN,
                "NI shut down",
                HealthStatus::LOCAL_INTERRUPT,
            );
        }
        let mut actions = Vec::new();
        {
            let mut st = lock(&self.st);
            for p in st.peers.values_mut() {
                for t in p.waiting.drain(..) {
                    actions.push(Action::Finalize(
                        t.token,
                        Completion::failed(errno::ENETDOWN, HealthStatus::LOCAL_INTERRUPT),
                    ));
                }
            }
            st.rxs.clear();
        }
        self.run(actions);
        self.wake_poller();
    }

    /// Wakes the poller out of its wait.
    fn wake_poller(&self) {
        match &self.dev {
            Provider::Soft { cq, .. } => cq.kick(),
            Provider::Rdma { dev, .. } => dev.wake(),
        }
    }

    fn ctl(&self, cmd: &str, arg: &str) -> Result<String, LndError> {
        match cmd {
            "inject_bad_rkey" => {
                let n: u32 = arg.trim().parse().map_err(|_| {
                    LndError::new(
                        errno::EINVAL,
                        format!("inject_bad_rkey takes a count of descriptors, not {arg:?}"),
                    )
                })?;
                self.bad_rkeys.store(n, Ordering::Relaxed);
                Ok(format!("inject_bad_rkey: {n}\n"))
            }
            "conn_list" => {
                let st = lock(&self.st);
                let mut out = String::from("conns:\n");
                for c in st.conns.values() {
                    let s = lock(&c.st);
                    out.push_str(&format!(
                        "  - nid: {}\n    queue_depth: {}\n    max_frags: {}\n    credits: {}\n    outstanding_credits: {}\n    reserved_credits: {}\n",
                        Nid::from_nid4(c.peer), c.qd, c.max_frags, s.credits, s.outstanding, s.reserved
                    ));
                }
                Ok(out)
            }
            "stats" => {
                let k = &self.counters;
                let cache = lock(&self.cache);
                Ok(format!(
                    "noops_sent: {}\nnoops_received: {}\nimmediate_sent: {}\nrdma_puts: {}\nrdma_gets: {}\nrdma_gets_direct: {}\nrdma_gets_copied: {}\nconns_rejected: {}\nregistrations: {}\ncache_hits: {}\ncache_entries: {}\n",
                    k.noops_sent.load(Ordering::Relaxed),
                    k.noops_received.load(Ordering::Relaxed),
                    k.immediate_sent.load(Ordering::Relaxed),
                    k.rdma_puts.load(Ordering::Relaxed),
                    k.rdma_gets.load(Ordering::Relaxed),
                    k.rdma_gets_direct.load(Ordering::Relaxed),
                    k.rdma_gets_copied.load(Ordering::Relaxed),
                    k.conns_rejected.load(Ordering::Relaxed),
                    self.dev.registrations(),
                    cache.hits(),
                    cache.len(),
                ))
            }
            // The device's limits the connections are sized to (rdma:
            // `ibv_query_device`) and the SGEs per work request.
            "device" => Ok(match self.dev.limits() {
                None => format!("provider: soft\nwr_sge: {}\n", self.dev.wr_sge()),
                Some(l) => format!(
                    "provider: rdma\nmax_qp_wr: {}\nmax_sge: {}\nmax_cqe: {}\nmax_mr_size: {}\nwr_sge: {}\n",
                    l.max_qp_wr,
                    l.max_sge,
                    l.max_cqe,
                    l.max_mr_size,
                    self.dev.wr_sge()
                ),
            }),
            _ => Err(LndError::unsupported(&format!("control command {cmd:?}"))),
        }
    }
}

enum Credit {
    None,
    Peer,
    Reserved,
}

impl LndNi for O2ibNi {
    fn send(&self, tx: TxMsg) -> Result<(), LndError> {
        let (tx, payload) = tx.split_payload();
        self.0.send(tx, payload)
    }
    fn recv(&self, rx: RxAction) -> Result<(), LndError> {
        let (rx, payload) = rx.split_payload();
        self.0.recv(rx, payload)
    }
    fn send_span(&self, tx: TxMsg, payload: PayloadSpan) -> Result<(), LndError> {
        self.0.send(tx, payload)
    }
    fn recv_span(&self, rx: RxAction, payload: PayloadSpan) -> Result<(), LndError> {
        self.0.recv(rx, payload)
    }
    fn query(&self, peer: Nid) -> PeerAliveness {
        let Some(p4) = peer.to_nid4() else {
            return PeerAliveness::UNKNOWN;
        };
        let st = lock(&self.0.st);
        match st.peers.get(&p4) {
            None => PeerAliveness::UNKNOWN,
            Some(p) => PeerAliveness {
                alive: ROption::RSome(p.conn.is_some()),
                last_alive_secs_ago: p.last_alive.map(|t| t.elapsed().as_secs()).into(),
            },
        }
    }
    fn ctl(&self, cmd: &str, arg: &str) -> Result<String, LndError> {
        self.0.ctl(cmd, arg)
    }
    fn shutdown(&self) {
        self.0.shutdown()
    }
}
