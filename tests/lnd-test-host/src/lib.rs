//! A test-double [`Host`] for driving one LND directly, shared by the
//! loopback tests of lnd-sock and lnd-o2ib: it answers `parse` by calling
//! `recv` (or `recv_span`) into its own buffers, synchronously, later from
//! another thread, or when the test says so ([`RecvMode`]); it records
//! receives, send completions, peer notifications and log lines, and waits
//! for them with generous deadlines. Also: NI start-up ([`start_with`]),
//! fragment lists, PUT/GET messages and their tokens.
//!
//! What is specific to one LND (its `start`, its parameters, its raw-wire
//! helpers) stays in that crate's `tests/support/mod.rs`.
//!
//! Set `LND_TEST_LOG` (or the older `LND_SOCK_TEST_LOG` /
//! `LND_O2IB_TEST_LOG`) to see the LND's log lines on standard error.

pub mod bins;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use lnd_api::abi_stable::std_types::{ROption, RString, RVec};
use lnd_api::hdr::{GetBody, ReplyBody};
use lnd_api::WireHandle;
use lnd_api::{
    Completion, Hdr, Host, HostHandle, IoBuf, Lnd, LndError, LndNiHandle, LogLevel, MsgToken,
    MsgType, NetId, NetTunables, NiConfig, NiInfo, Nid, Payload, PayloadSpan, RxAction, RxToken,
    Tunable, TxMsg,
};

/// The process id of every test NI and message.
pub const PID: u32 = 12345;

/// How the double answers `parse`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecvMode {
    /// `recv` inside `parse`.
    Sync,
    /// `recv` from another thread after a pause.
    Delayed(Duration),
    /// `recv` only when the test says so (`release`).
    Hold,
    /// `recv` with no message: discard.
    Discard,
    /// `recv_span` inside `parse` into a window `offset` bytes into a larger
    /// list of many fragments ([`many_fragments`]), `short` bytes shorter
    /// than the payload (mlen < rlen; 0 for all of it). The bytes around
    /// the window hold [`AROUND`].
    Window {
        /// Where the window starts in the fragment list.
        offset: usize,
        /// How many bytes of the payload the window leaves out.
        short: usize,
    },
    /// Answer an optimized GET (`rdma_req`) as LNet does: `recv_span`
    /// with a REPLY token and `len` bytes of `pattern(len, seed)` as the
    /// source; the REPLY's completion lands in the sent map.
    Reply {
        /// The bytes the REPLY carries at most.
        len: usize,
        /// The seed of their [`pattern`].
        seed: u8,
    },
}

/// What the bytes around a window hold.
pub const AROUND: u8 = 0xEE;
/// Bytes after a window in its fragment list.
pub const TAIL: usize = 11;

/// A message the double received (finalized), or discarded.
#[derive(Clone, Debug)]
pub struct Received {
    /// Its header.
    pub hdr: Hdr,
    /// The peer it came from.
    pub from: Nid,
    /// Its payload as delivered.
    pub data: Vec<u8>,
    /// In `Window` mode: the bytes of the fragment list around the window.
    pub around: Vec<u8>,
    /// The status `finalize` gave.
    pub status: Completion,
}

struct PendingRx {
    hdr: Hdr,
    from: Nid,
    bufs: Vec<IoBuf>,
    /// The window (offset, length) in `bufs` that the payload went to.
    window: Option<(usize, usize)>,
}

#[derive(Default)]
struct State {
    ni: Option<LndNiHandle>,
    mode: Option<RecvMode>,
    pending: HashMap<u64, PendingRx>,
    held: Vec<(RxToken, u64, u32)>,
    received: Vec<Received>,
    sent: HashMap<u64, Completion>,
    sent_order: Vec<u64>,
    logs: Vec<(LogLevel, String)>,
    notifies: Vec<(Nid, bool)>,
    links: Vec<bool>,
}

/// The state behind a [`TestHost`].
pub struct Double {
    st: Mutex<State>,
    cv: Condvar,
    next: AtomicU64,
    /// The name in failure messages and log lines.
    pub name: String,
}

/// The test-double host of one NI.
#[derive(Clone)]
pub struct TestHost(pub Arc<Double>);

impl TestHost {
    /// A double named `name` answering in `mode`; it learns its NI from
    /// [`TestHost::set_ni`].
    pub fn new(name: &str, mode: RecvMode) -> Self {
        TestHost(Arc::new(Double {
            st: Mutex::new(State {
                mode: Some(mode),
                ..State::default()
            }),
            cv: Condvar::new(),
            next: AtomicU64::new(1),
            name: name.to_string(),
        }))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.st.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Gives the double the NI it answers for.
    pub fn set_ni(&self, ni: LndNiHandle) {
        self.lock().ni = Some(ni);
    }

    /// Changes how the double answers from now on.
    pub fn set_mode(&self, m: RecvMode) {
        self.lock().mode = Some(m);
    }

    fn ni(&self) -> LndNiHandle {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(n) = self.lock().ni.clone() {
                return n;
            }
            assert!(Instant::now() < deadline, "NI handle never set");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Waits until `f` holds on the state, or panics after `t`.
    fn wait<R>(&self, t: Duration, what: &str, mut f: impl FnMut(&State) -> Option<R>) -> R {
        let deadline = Instant::now() + t;
        let mut st = self.lock();
        loop {
            if let Some(r) = f(&st) {
                return r;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            // What the LND logged is what says why (a refused handshake, a
            // closed connection): shown with the timeout.
            assert!(
                !left.is_zero(),
                "{}: timed out waiting for {what}; the LND logged:\n{:#?}",
                self.0.name,
                st.logs
            );
            st = self
                .0
                .cv
                .wait_timeout(st, left.min(Duration::from_millis(50)))
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        }
    }

    /// Waits for `n` received messages (all received so far).
    pub fn wait_received(&self, n: usize, t: Duration) -> Vec<Received> {
        self.wait(t, &format!("{n} received messages"), |s| {
            (s.received.len() >= n).then(|| s.received.clone())
        })
    }

    /// The messages received so far.
    pub fn received(&self) -> Vec<Received> {
        self.lock().received.clone()
    }

    /// Waits for the send completions of `tokens`, in their order.
    pub fn wait_sent(&self, tokens: &[u64], t: Duration) -> Vec<Completion> {
        self.wait(t, &format!("{} send completions", tokens.len()), |s| {
            tokens
                .iter()
                .map(|k| s.sent.get(k).copied())
                .collect::<Option<Vec<_>>>()
        })
    }

    /// How many times `token` was finalized as sent (1 unless the LND
    /// finalizes twice).
    pub fn sent_count(&self, token: u64) -> usize {
        self.lock()
            .sent_order
            .iter()
            .filter(|k| **k == token)
            .count()
    }

    /// The LND's log lines so far.
    pub fn logs(&self) -> Vec<(LogLevel, String)> {
        self.lock().logs.clone()
    }

    /// Waits for a log line containing `needle`; returns it.
    pub fn wait_log(&self, needle: &str, t: Duration) -> String {
        self.wait(t, &format!("a log line containing {needle:?}"), |s| {
            s.logs
                .iter()
                .find(|(_, l)| l.contains(needle))
                .map(|(_, l)| l.clone())
        })
    }

    /// The peer notifications so far (peer, alive).
    pub fn notifies(&self) -> Vec<(Nid, bool)> {
        self.lock().notifies.clone()
    }

    /// Waits until the NI's link state reports show `n` states (a repeated
    /// report, which LNet ignores, counts once); returns them in order.
    pub fn wait_links(&self, n: usize, t: Duration) -> Vec<bool> {
        self.wait(t, &format!("{n} link states"), |s| {
            let mut v = s.links.clone();
            v.dedup();
            (v.len() >= n).then_some(v)
        })
    }

    /// Waits for a notification that `peer` is `alive` (or dead).
    pub fn wait_notify(&self, peer: Nid, alive: bool, t: Duration) {
        self.wait(t, "a peer notification", |s| {
            s.notifies.contains(&(peer, alive)).then_some(())
        })
    }

    /// How many receives `RecvMode::Hold` keeps waiting.
    pub fn held(&self) -> usize {
        self.lock().held.len()
    }

    /// Delivers held receives.
    pub fn release(&self) -> Vec<Result<(), LndError>> {
        let held = std::mem::take(&mut self.lock().held);
        let ni = self.ni();
        held.into_iter()
            .map(|(rx, msg, rlen)| {
                let payload = self.payload_of(msg);
                ni.recv(RxAction {
                    rx,
                    msg: ROption::RSome(MsgToken(msg)),
                    payload,
                    rlen,
                    delayed: true,
                })
            })
            .collect()
    }

    fn payload_of(&self, msg: u64) -> Payload {
        let st = self.lock();
        st.pending
            .get(&msg)
            .map(|p| p.bufs.iter().cloned().collect())
            .unwrap_or_default()
    }
}

/// Splits `len` bytes into many fragments of uneven sizes (1 byte to 30 KB,
/// more than 16 in a few hundred KB).
pub fn many_fragments(len: usize) -> Vec<IoBuf> {
    const SIZES: [usize; 7] = [1, 13, 4096, 2, 30_000, 512, 7];
    let mut v = Vec::new();
    let mut left = len;
    for n in SIZES.iter().cycle() {
        if left == 0 {
            break;
        }
        let n = (*n).min(left);
        v.push(IoBuf::zeroed(n));
        left -= n;
    }
    v
}

/// A span over `len` bytes of [`many_fragments`], all `fill`; and the
/// fragments.
pub fn filled_span(len: usize, fill: u8) -> (PayloadSpan, Vec<IoBuf>) {
    let bufs = many_fragments(len);
    let p: Payload = bufs.iter().cloned().collect();
    p.write_at(0, &vec![fill; len]).expect("fresh buffers");
    (PayloadSpan::from(p), bufs)
}

/// Splits `len` bytes into up to three fragments of unequal sizes.
pub fn fragments(len: usize) -> Vec<IoBuf> {
    if len < 3 {
        return vec![IoBuf::zeroed(len)];
    }
    let a = len / 3 + 1;
    let b = len / 5;
    vec![
        IoBuf::zeroed(a),
        IoBuf::zeroed(b),
        IoBuf::zeroed(len - a - b),
    ]
}

impl Host for TestHost {
    fn parse(&self, hdr: Hdr, from: Nid, rx: RxToken, rdma: bool) -> Result<(), LndError> {
        let msg = self.0.next.fetch_add(1, Ordering::Relaxed) | 1 << 40;
        let rlen = hdr.payload_length;
        let bufs = fragments(rlen as usize);
        let payload: Payload = bufs.iter().cloned().collect();
        let mode = self.lock().mode.unwrap_or(RecvMode::Sync);
        if let (RecvMode::Reply { len, seed }, MsgType::GET, false) = (mode, hdr.msg_type, rdma) {
            // A GET that came IMMEDIATE: received (no payload), then
            // answered by a REPLY sent with the GET's token, as LNet does.
            let ni = self.ni();
            let r = ni.recv(RxAction {
                rx,
                msg: ROption::RSome(MsgToken(msg)),
                payload: Payload::new(),
                rlen: 0,
                delayed: false,
            });
            assert!(r.is_ok(), "recv of a GET failed: {r:?}");
            let get = GetBody::from_body(&hdr.body);
            let n = len.min(get.sink_length as usize);
            let reply = Hdr::reply(
                hdr.src_nid,
                hdr.dest_nid,
                hdr.src_pid,
                PID,
                n as u32,
                ReplyBody {
                    dst_wmd: get.return_wmd,
                },
            );
            let tok = self.0.next.fetch_add(1, Ordering::Relaxed) | 1 << 41;
            let r = ni.send(TxMsg {
                token: MsgToken(tok),
                hdr: reply,
                target: from,
                target_pid: hdr.src_pid,
                payload: Payload::single(IoBuf::from_vec(pattern(n, seed))),
                rx: ROption::RSome(rx),
            });
            assert!(r.is_ok(), "send of a REPLY failed: {r:?}");
            return Ok(());
        }
        if let RecvMode::Reply { len, seed } = mode {
            let src = PayloadSpan::from(IoBuf::from_vec(pattern(len, seed)));
            let a = RxAction {
                rx,
                msg: ROption::RSome(MsgToken(msg)),
                payload: Payload::new(),
                rlen: len as u32,
                delayed: false,
            };
            let r = self.ni().recv_span(a, src);
            assert!(r.is_ok(), "recv_span of a REPLY failed: {r:?}");
            let mut st = self.lock();
            st.received.push(Received {
                hdr,
                from,
                data: Vec::new(),
                around: Vec::new(),
                status: Completion::OK,
            });
            self.0.cv.notify_all();
            return Ok(());
        }
        if let RecvMode::Window { offset, short } = mode {
            let mlen = rlen as usize - short.min(rlen as usize);
            let (whole, bufs) = filled_span(offset + mlen + TAIL, AROUND);
            let window = whole.sub(offset, mlen).expect("inside the list");
            let pending = PendingRx {
                hdr,
                from,
                bufs,
                window: Some((offset, mlen)),
            };
            self.lock().pending.insert(msg, pending);
            let a = RxAction {
                rx,
                msg: ROption::RSome(MsgToken(msg)),
                payload: Payload::new(),
                rlen,
                delayed: false,
            };
            let r = self.ni().recv_span(a, window);
            assert!(r.is_ok(), "recv_span inside parse failed: {r:?}");
            return Ok(());
        }
        let pending = PendingRx {
            hdr,
            from,
            bufs,
            window: None,
        };
        self.lock().pending.insert(msg, pending);
        let ni = self.ni();
        match mode {
            RecvMode::Sync => {
                let r = ni.recv(RxAction {
                    rx,
                    msg: ROption::RSome(MsgToken(msg)),
                    payload,
                    rlen,
                    delayed: false,
                });
                assert!(r.is_ok(), "recv inside parse failed: {r:?}");
            }
            RecvMode::Discard => {
                self.lock().pending.remove(&msg);
                let r = ni.recv(RxAction {
                    rx,
                    msg: ROption::RNone,
                    payload: Payload::new(),
                    rlen,
                    delayed: false,
                });
                assert!(r.is_ok(), "discard failed: {r:?}");
                // Count discards as received with no data.
                let mut st = self.lock();
                st.received.push(Received {
                    hdr,
                    from,
                    data: Vec::new(),
                    around: Vec::new(),
                    status: Completion::OK,
                });
                self.0.cv.notify_all();
            }
            RecvMode::Delayed(d) => {
                std::thread::spawn(move || {
                    std::thread::sleep(d);
                    let _ = ni.recv(RxAction {
                        rx,
                        msg: ROption::RSome(MsgToken(msg)),
                        payload,
                        rlen,
                        delayed: true,
                    });
                });
            }
            RecvMode::Hold => {
                self.lock().held.push((rx, msg, rlen));
                self.0.cv.notify_all();
            }
            RecvMode::Window { .. } | RecvMode::Reply { .. } => unreachable!("answered above"),
        }
        Ok(())
    }

    fn finalize(&self, msg: MsgToken, status: Completion) {
        let mut st = self.lock();
        if let Some(p) = st.pending.remove(&msg.0) {
            let mut data = Vec::new();
            for b in &p.bufs {
                data.extend_from_slice(&b.to_vec().expect("buffer free after finalize"));
            }
            let mut around = Vec::new();
            if let Some((off, len)) = p.window {
                around.extend_from_slice(&data[..off]);
                around.extend_from_slice(&data[off + len..]);
                data = data[off..off + len].to_vec();
            }
            st.received.push(Received {
                hdr: p.hdr,
                from: p.from,
                data,
                around,
                status,
            });
        } else {
            st.sent.insert(msg.0, status);
            st.sent_order.push(msg.0);
        }
        self.0.cv.notify_all();
    }

    fn notify(&self, peer: Nid, alive: bool) {
        self.lock().notifies.push((peer, alive));
        self.0.cv.notify_all();
    }

    fn link_state(&self, up: bool) {
        self.lock().links.push(up);
        self.0.cv.notify_all();
    }

    fn log(&self, level: LogLevel, msg: &str) {
        if LOG_VARS.iter().any(|v| std::env::var_os(v).is_some()) {
            eprintln!("[{}] {msg}", self.0.name);
        }
        self.lock().logs.push((level, msg.to_string()));
        self.0.cv.notify_all();
    }
}

/// The variables that show the LND's log lines on standard error.
const LOG_VARS: [&str; 3] = ["LND_TEST_LOG", "LND_SOCK_TEST_LOG", "LND_O2IB_TEST_LOG"];

/// Waits until `ni`'s `conn_list` holds `n` connections, each counted by
/// one `marker` (the key every connection's entry has, as the LND prints
/// it: `"type:"`, `"- nid:"`); returns the list.
pub fn wait_conn_entries(ni: &LndNiHandle, marker: &str, n: usize, t: Duration) -> String {
    let deadline = Instant::now() + t;
    loop {
        let list = ni.ctl("conn_list", "").expect("conn_list");
        if list.matches(marker).count() >= n {
            return list;
        }
        assert!(
            Instant::now() < deadline,
            "{n} connections never came:\n{list}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A started NI with its double.
pub struct TestNi {
    /// Its double.
    pub host: TestHost,
    /// The NI.
    pub ni: LndNiHandle,
    /// What start-up answered.
    pub info: NiInfo,
}

impl TestNi {
    /// The NI's NID.
    pub fn nid(&self) -> Nid {
        self.info.nid
    }
    /// Shuts the NI down.
    pub fn shutdown(&self) {
        self.ni.shutdown();
    }
}

/// A port for this test, distinct across the tests of this process and
/// unlikely to collide with other processes.
pub fn test_port() -> u16 {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    // 16 ports per test binary, below the ephemeral range (32768..).
    let base = 20000 + (std::process::id() % 790) as u16 * 16;
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    assert!(n < 16, "more than 16 ports in one test binary");
    base + n
}

/// The configuration of one NI on `net` over `iface`: LND parameters
/// (`params`) and LND tunables (`lnd_tun`), the generic tunables unset.
pub fn config(
    net: NetId,
    iface: &str,
    params: &[(&str, String)],
    lnd_tun: &[(&str, &str)],
) -> NiConfig {
    NiConfig {
        net,
        interfaces: RVec::from(vec![RString::from(iface)]),
        tunables: NetTunables::UNSET,
        lnd_tunables: lnd_tun.iter().map(|(k, v)| Tunable::new(*k, v)).collect(),
        params: params.iter().map(|(k, v)| Tunable::new(*k, v)).collect(),
        pid: PID,
    }
}

/// Starts an NI of `lnd` with a fresh double named `name` answering in
/// `mode`.
pub fn start_with(
    lnd: &impl Lnd,
    name: &str,
    cfg: NiConfig,
    mode: RecvMode,
) -> Result<TestNi, LndError> {
    let host = TestHost::new(name, mode);
    let s = lnd.startup(cfg, HostHandle::new(host.clone()))?;
    host.set_ni(s.ni.clone());
    Ok(TestNi {
        host,
        ni: s.ni,
        info: s.info,
    })
}

static TOKENS: AtomicU64 = AtomicU64::new(1);

/// A PUT of `data` (in several fragments) from `from` to `to`; returns the token.
pub fn put(from: &TestNi, to: Nid, data: &[u8]) -> (u64, TxMsg) {
    let bufs = fragments(data.len());
    let payload: Payload = bufs.into_iter().collect();
    payload.write_at(0, data).expect("fresh buffers");
    let (token, mut tx) = put_msg(from, to, data.len());
    tx.payload = payload;
    (token, tx)
}

/// A PUT of `data` for `send_span`: the message (its `payload` empty) and
/// a span `offset` bytes into a larger list of [`many_fragments`] that
/// holds `data` there and `around` elsewhere ([`TAIL`] bytes after it).
pub fn put_span(
    from: &TestNi,
    to: Nid,
    data: &[u8],
    offset: usize,
    around: u8,
) -> (u64, TxMsg, PayloadSpan) {
    let (whole, _) = filled_span(offset + data.len() + TAIL, around);
    whole.write_at(offset, data).expect("fresh buffers");
    let window = whole.sub(offset, data.len()).expect("inside the list");
    let (token, tx) = put_msg(from, to, data.len());
    (token, tx, window)
}

/// A PUT header of `len` bytes from `from` to `to` with an empty payload;
/// returns the token (also its match bits).
fn put_msg(from: &TestNi, to: Nid, len: usize) -> (u64, TxMsg) {
    let token = TOKENS.fetch_add(1, Ordering::Relaxed);
    let mut body = [0u8; 40];
    body[16..24].copy_from_slice(&token.to_le_bytes()); // match bits: the token
    let hdr = Hdr {
        dest_nid: to,
        src_nid: from.nid(),
        dest_pid: PID,
        src_pid: PID,
        msg_type: MsgType::PUT,
        payload_length: len as u32,
        body,
    };
    (
        token,
        TxMsg {
            token: MsgToken(token),
            hdr,
            target: to,
            target_pid: PID,
            payload: Payload::new(),
            rx: ROption::RNone,
        },
    )
}

/// A GET from `from` to `to` for a sink of `sink` bytes; returns the
/// token, which the REPLY carries back in its `dst_wmd` ([`reply_token`]).
pub fn get(from: &TestNi, to: Nid, sink: usize) -> (u64, TxMsg) {
    let token = TOKENS.fetch_add(1, Ordering::Relaxed);
    let hdr = Hdr::get(
        to,
        from.nid(),
        PID,
        PID,
        GetBody {
            return_wmd: WireHandle {
                interface_cookie: 0x1f,
                object_cookie: token,
            },
            match_bits: token,
            ptl_index: 4,
            src_offset: 0,
            sink_length: sink as u32,
        },
    );
    (
        token,
        TxMsg {
            token: MsgToken(token),
            hdr,
            target: to,
            target_pid: PID,
            payload: Payload::new(),
            rx: ROption::RNone,
        },
    )
}

/// The GET token a received REPLY answers.
pub fn reply_token(h: &Hdr) -> u64 {
    ReplyBody::from_body(&h.body).dst_wmd.object_cookie
}

/// Match bits of a received PUT (the sender's token).
pub fn token_of(h: &Hdr) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&h.body[16..24]);
    u64::from_le_bytes(a)
}

/// Deterministic test bytes.
pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 8) as u8)
        .collect()
}
