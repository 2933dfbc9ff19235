//! The acceptor (`lnet/lnet/acceptor.c`, `spec/wire.md` §4): one listener
//! per (NI address, port), shared by every NI of this process on that
//! address, dispatching each connection on the NID of its connection request.
//!
//! `accept=secure` drops a connection from an unprivileged source port
//! before reading anything; `accept=none` runs no listener.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, LazyLock, Mutex, Weak};
use std::time::Duration;

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

fn remove_from(reg: &mut HashMap<SocketAddr, Listener>, key: &SocketAddr, nid: &Nid) {
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
        }
    }
}

/// Stops serving `ni` (the listener closes with its last NI).
pub fn unregister(ni: &NiInner) {
    let mut reg = lock(&LISTENERS);
    for port in ports(ni) {
        remove_from(&mut reg, &SocketAddr::new(ni.addr, port), &ni.local.nid);
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

async fn accept_loop(listener: tokio::net::TcpListener, key: SocketAddr) {
    loop {
        match listener.accept().await {
            Ok((s, from)) => {
                tokio::spawn(handle(s, from, key));
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

async fn handle(mut s: TcpStream, from: SocketAddr, key: SocketAddr) {
    let Some(first) = any_ni(&key) else { return };
    if first.params.accept == AcceptMode::Secure && from.port() > net::MAX_RESERVED_PORT {
        first.log_ni(
            LogLevel::WARN,
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
            first.log_ni(
                LogLevel::WARN,
                &format!("acceptor {key}: {from}: {e}; closing"),
            );
            return;
        }
        Ok(Err(e)) => {
            first.log_ni(
                LogLevel::WARN,
                &format!("acceptor {key}: bad connection request from {from}: {e}; closing"),
            );
            return;
        }
        Err(_) => {
            first.log_ni(
                LogLevel::WARN,
                &format!(
                    "acceptor {key}: no connection request from {from} within {} s; closing",
                    t.as_secs()
                ),
            );
            return;
        }
    };
    let Some(ni) = find_ni(&key, &req.nid) else {
        first.log_ni(
            LogLevel::WARN,
            &format!(
                "acceptor {key}: {from} asked for {}, which is not an NI on this address; closing",
                req.nid
            ),
        );
        return;
    };
    ni.accept(s, from);
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
