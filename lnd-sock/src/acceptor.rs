//! The acceptor (`lnet/lnet/acceptor.c`, `spec/wire.md` §4): one listener
//! per (NI address, port), shared by every NI of this process on that
//! address, dispatching each connection on the NID of its connection request.
//!
//! `accept=secure` drops a connection from an unprivileged source port
//! before reading anything; `accept=none` runs no listener.
//!
//! Under a flood: at most `accept_max_handshakes` connections per listener
//! are in the handshake (connection request, then the NI's hello) at once;
//! a connection past that is closed at once. Warnings about bad connections
//! are rate-limited ([`HandshakeSlot::log_bad`]): one line per peer address per
//! [`BAD_LOG_INTERVAL`], then a line with how many were not logged.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex, Weak};
use std::time::{Duration, Instant};

use lnd_api::{errno, LndError, LogLevel, Nid};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::AbortHandle;

use crate::conn::lock;
use crate::net;
use crate::ni::NiInner;
use crate::params::AcceptMode;
use crate::wire::{ConnReqDecoder, ConnReqRepr, WireError, CONNREQ16_SIZE};

struct Listener {
    /// NIs served on this address, by NID.
    nis: Vec<(Nid, Weak<NiInner>)>,
    /// The accept loop.
    task: AbortHandle,
}

static LISTENERS: LazyLock<Mutex<HashMap<SocketAddr, Listener>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// The ports an NI listens on.
fn ports(ni: &NiInner) -> Vec<u16> {
    let p = &ni.params;
    if p.accept_port_bulk == p.accept_port {
        vec![p.accept_port]
    } else {
        vec![p.accept_port, p.accept_port_bulk]
    }
}

/// Serves `ni` on its address and ports (starting a listener where none runs).
pub fn register(ni: &Arc<NiInner>, rt: &tokio::runtime::Handle) -> Result<(), LndError> {
    if ni.params.accept == AcceptMode::None {
        return Ok(());
    }
    let mut done: Vec<SocketAddr> = Vec::new();
    for port in ports(ni) {
        let key = SocketAddr::new(ni.addr, port);
        let mut reg = lock(&LISTENERS);
        if let Some(l) = reg.get_mut(&key) {
            if l.nis
                .iter()
                .any(|(n, w)| *n == ni.local.nid && w.strong_count() > 0)
            {
                drop(reg);
                rollback(ni, &done);
                return Err(LndError::new(
                    errno::EEXIST,
                    format!(
                        "cannot add net {}: NID {} is already served on {key}",
                        ni.net_name, ni.local.nid
                    ),
                ));
            }
            l.nis.push((ni.local.nid, Arc::downgrade(ni)));
            done.push(key);
            continue;
        }
        let listener = {
            let _enter = rt.enter();
            net::listen(key, ni.params.accept_backlog)
        };
        let listener = match listener {
            Ok(l) => l,
            Err(e) => {
                drop(reg);
                rollback(ni, &done);
                return Err(LndError::new(
                    e.raw_os_error().unwrap_or(errno::EIO),
                    format!(
                        "cannot add net {}: cannot listen on {key}: {e} (another LNet or \
                         service owns the port? set accept_port, or accept=none)",
                        ni.net_name
                    ),
                ));
            }
        };
        let task = rt.spawn(accept_loop(listener, key)).abort_handle();
        reg.insert(
            key,
            Listener {
                nis: vec![(ni.local.nid, Arc::downgrade(ni))],
                task,
            },
        );
        done.push(key);
    }
    Ok(())
}

fn rollback(ni: &NiInner, keys: &[SocketAddr]) {
    let mut reg = lock(&LISTENERS);
    for k in keys {
        remove_from(&mut reg, k, &ni.local.nid);
    }
}

/// Stops serving `nid` on `key`; gives the listener's accept task when it
/// was the last NI there (aborted: its socket closes once the task is gone).
fn remove_from(
    reg: &mut HashMap<SocketAddr, Listener>,
    key: &SocketAddr,
    nid: &Nid,
) -> Option<AbortHandle> {
    let empty = match reg.get_mut(key) {
        Some(l) => {
            l.nis.retain(|(n, w)| n != nid && w.strong_count() > 0);
            l.nis.is_empty()
        }
        None => false,
    };
    if empty {
        if let Some(l) = reg.remove(key) {
            l.task.abort();
            return Some(l.task);
        }
    }
    None
}

/// Stops serving `ni` (the listener closes with its last NI). Returns once
/// the listening sockets it closed are closed, so that an NI started on the
/// same address right after binds its port.
pub fn unregister(ni: &NiInner) {
    let stopped: Vec<AbortHandle> = {
        let mut reg = lock(&LISTENERS);
        ports(ni)
            .into_iter()
            .filter_map(|port| {
                remove_from(&mut reg, &SocketAddr::new(ni.addr, port), &ni.local.nid)
            })
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while stopped.iter().any(|t| !t.is_finished()) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Any live NI on `key`, for logging and parameters before dispatch.
fn any_ni(key: &SocketAddr) -> Option<Arc<NiInner>> {
    lock(&LISTENERS)
        .get(key)
        .and_then(|l| l.nis.iter().find_map(|(_, w)| w.upgrade()))
}

fn find_ni(key: &SocketAddr, nid: &Nid) -> Option<Arc<NiInner>> {
    lock(&LISTENERS).get(key).and_then(|l| {
        l.nis
            .iter()
            .find(|(n, _)| n == nid)
            .and_then(|(_, w)| w.upgrade())
    })
}

/// How often a peer address's bad connections are logged (the rest are
/// counted, and the count logged once the interval has passed).
pub const BAD_LOG_INTERVAL: Duration = Duration::from_secs(10);
/// Peer addresses the rate limiter tracks; bad connections from further
/// addresses are counted together.
const BAD_LOG_ADDRS: usize = 1024;

#[derive(Default)]
struct BadLog {
    /// Per address: when a line was last logged, connections not logged since.
    by_addr: HashMap<IpAddr, (Instant, u64)>,
    /// Not logged because the table was full.
    others: u64,
}

/// What a listener's connections share: the handshakes in progress and the
/// rate limiter of its warnings.
#[derive(Default)]
struct Shared {
    busy: AtomicUsize,
    bad: Mutex<BadLog>,
}

impl Shared {
    /// Logs a warning about a bad or refused connection from `from`, at most
    /// one line per peer address per [`BAD_LOG_INTERVAL`]; the others are
    /// counted and the count logged later (by [`Shared::flush`]).
    fn log_bad(&self, ni: &NiInner, from: IpAddr, msg: &str) {
        let now = Instant::now();
        let log = {
            let mut b = lock(&self.bad);
            let full = b.by_addr.len() >= BAD_LOG_ADDRS;
            match b.by_addr.get_mut(&from) {
                Some((at, n)) if now.duration_since(*at) < BAD_LOG_INTERVAL => {
                    *n += 1;
                    None
                }
                Some((at, n)) => {
                    let missed = std::mem::take(n);
                    let since = now.duration_since(*at);
                    *at = now;
                    Some((missed, since))
                }
                None if full => {
                    b.others += 1;
                    None
                }
                None => {
                    b.by_addr.insert(from, (now, 0));
                    Some((0, Duration::ZERO))
                }
            }
        };
        match log {
            Some((0, _)) => ni.log_ni(LogLevel::WARN, msg),
            Some((missed, since)) => ni.log_ni(
                LogLevel::WARN,
                &format!(
                    "{msg} ({missed} more bad connection(s) from {from} in the last {} s were \
                     not logged)",
                    since.as_secs()
                ),
            ),
            None => {}
        }
    }

    /// Logs the counts of bad connections not logged for an interval, and
    /// forgets quiet addresses.
    fn flush(&self, ni: &NiInner, key: &SocketAddr) {
        let now = Instant::now();
        let mut lines = Vec::new();
        {
            let mut b = lock(&self.bad);
            b.by_addr.retain(|addr, (at, n)| {
                if now.duration_since(*at) < BAD_LOG_INTERVAL {
                    return true;
                }
                if *n > 0 {
                    lines.push(format!(
                        "acceptor {key}: {n} more bad connection(s) from {addr} in the last {} s \
                         were not logged",
                        now.duration_since(*at).as_secs()
                    ));
                }
                false
            });
            if b.others > 0 && b.by_addr.len() < BAD_LOG_ADDRS {
                lines.push(format!(
                    "acceptor {key}: {} bad connection(s) from further addresses were not logged",
                    std::mem::take(&mut b.others)
                ));
            }
        }
        for l in lines {
            ni.log_ni(LogLevel::WARN, &l);
        }
    }
}

/// A place among a listener's handshakes in progress, given back when
/// dropped; also the way to the listener's rate-limited warnings.
pub struct HandshakeSlot(Arc<Shared>);

impl HandshakeSlot {
    /// Logs a warning about a bad connection from `from`, rate-limited per
    /// peer address (one line per [`BAD_LOG_INTERVAL`], then a count).
    pub fn log_bad(&self, ni: &NiInner, from: IpAddr, msg: &str) {
        self.0.log_bad(ni, from, msg);
    }
}

impl Drop for HandshakeSlot {
    fn drop(&mut self) {
        self.0.busy.fetch_sub(1, Ordering::AcqRel);
    }
}

async fn accept_loop(listener: tokio::net::TcpListener, key: SocketAddr) {
    let shared = Arc::new(Shared::default());
    let mut tick = tokio::time::interval(BAD_LOG_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = tick.tick() => {
                if let Some(ni) = any_ni(&key) {
                    shared.flush(&ni, &key);
                }
                continue;
            }
        };
        match accepted {
            Ok((s, from)) => {
                let Some(ni) = any_ni(&key) else { continue };
                let cap = ni.params.accept_max_handshakes;
                if shared.busy.load(Ordering::Acquire) >= cap {
                    // Closed before anything is read: the flood costs one
                    // accept and one close.
                    drop(s);
                    shared.log_bad(
                        &ni,
                        from.ip(),
                        &format!(
                            "acceptor {key}: refusing connection from {from}: {cap} connections \
                             already in the handshake (accept_max_handshakes)"
                        ),
                    );
                    continue;
                }
                shared.busy.fetch_add(1, Ordering::AcqRel);
                let slot = HandshakeSlot(shared.clone());
                tokio::spawn(handle(s, from, key, slot));
            }
            Err(e) => {
                if let Some(ni) = any_ni(&key) {
                    ni.log_ni(
                        LogLevel::WARN,
                        &format!("acceptor {key}: accept failed: {e}"),
                    );
                }
                // Out of descriptors and the like: do not spin.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn handle(mut s: TcpStream, from: SocketAddr, key: SocketAddr, slot: HandshakeSlot) {
    let Some(first) = any_ni(&key) else { return };
    let ip = from.ip();
    if first.params.accept == AcceptMode::Secure && from.port() > net::MAX_RESERVED_PORT {
        slot.log_bad(
            &first,
            ip,
            &format!(
                "acceptor {key}: refusing connection from {from}: source port is not \
                 privileged (accept=secure; set accept=all to allow it)"
            ),
        );
        return;
    }
    let t = first.params.accept_timeout;
    let req = match tokio::time::timeout(t, read_connreq(&mut s)).await {
        Ok(Ok(r)) => r,
        Ok(Err(ReqError::Wire(
            e @ (WireError::ConnReqProbe | WireError::ConnReqVersion { .. }),
        ))) => {
            // Tell the peer which version we speak, then close.
            let ans = ConnReqRepr::version_answer();
            let _ = tokio::time::timeout(t, s.write_all(&ans)).await;
            slot.log_bad(&first, ip, &format!("acceptor {key}: {from}: {e}; closing"));
            return;
        }
        Ok(Err(e)) => {
            slot.log_bad(
                &first,
                ip,
                &format!("acceptor {key}: bad connection request from {from}: {e}; closing"),
            );
            return;
        }
        Err(_) => {
            slot.log_bad(
                &first,
                ip,
                &format!(
                    "acceptor {key}: no connection request from {from} within {} s; closing",
                    t.as_secs()
                ),
            );
            return;
        }
    };
    let Some(ni) = find_ni(&key, &req.nid) else {
        slot.log_bad(
            &first,
            ip,
            &format!(
                "acceptor {key}: {from} asked for {}, which is not an NI on this address; closing",
                req.nid
            ),
        );
        return;
    };
    ni.accept(s, from, slot);
}

enum ReqError {
    Io(std::io::Error),
    Wire(WireError),
}

impl std::fmt::Display for ReqError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReqError::Io(e) => write!(f, "read failed: {e}"),
            ReqError::Wire(e) => e.fmt(f),
        }
    }
}

async fn read_connreq(s: &mut TcpStream) -> Result<ConnReqRepr, ReqError> {
    let mut d = ConnReqDecoder::new();
    let mut b = [0u8; CONNREQ16_SIZE];
    loop {
        let w = d.want();
        s.read_exact(&mut b[..w]).await.map_err(ReqError::Io)?;
        if let Some(r) = d.feed(&b[..w]).map_err(ReqError::Wire)? {
            return Ok(r);
        }
    }
}
