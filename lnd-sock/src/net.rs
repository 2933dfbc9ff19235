//! The TCP edge: privileged-port connects (`lnet_connect()` in
//! `lnet/lnet/acceptor.c`), listeners, and socket options through socket2
//! (`ksocknal_lib_setup_sock()`).

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use socket2::{SockRef, TcpKeepalive};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

use crate::params::{NiTunables, Params};

/// Lowest privileged source port tried (`LNET_ACCEPTOR_MIN_RESERVED_PORT`).
pub const MIN_RESERVED_PORT: u16 = 512;
/// Highest privileged source port tried (`LNET_ACCEPTOR_MAX_RESERVED_PORT`).
pub const MAX_RESERVED_PORT: u16 = 1023;

fn socket_for(ip: &IpAddr) -> io::Result<TcpSocket> {
    match ip {
        IpAddr::V4(_) => TcpSocket::new_v4(),
        IpAddr::V6(_) => TcpSocket::new_v6(),
    }
}

async fn connect_from(local: SocketAddr, peer: SocketAddr) -> io::Result<TcpStream> {
    let s = socket_for(&local.ip())?;
    s.set_reuseaddr(true)?;
    s.bind(local)?;
    s.connect(peer).await
}

/// Connects from `local` to `peer`: from a privileged port (1023 down to
/// 512, skipping ports in use) when `privileged`, falling back to an
/// ephemeral port when binding one is not permitted. The whole attempt
/// must finish within `t`.
pub async fn connect(
    local: IpAddr,
    peer: SocketAddr,
    privileged: bool,
    t: Duration,
) -> io::Result<TcpStream> {
    let fut = async {
        if privileged {
            for port in (MIN_RESERVED_PORT..=MAX_RESERVED_PORT).rev() {
                match connect_from(SocketAddr::new(local, port), peer).await {
                    Ok(s) => return Ok(s),
                    Err(e)
                        if e.kind() == io::ErrorKind::AddrInUse
                            || e.kind() == io::ErrorKind::AddrNotAvailable =>
                    {
                        continue
                    }
                    Err(e) if e.kind() == io::ErrorKind::PermissionDenied => break,
                    Err(e) => return Err(e),
                }
            }
        }
        connect_from(SocketAddr::new(local, 0), peer).await
    };
    match tokio::time::timeout(t, fut).await {
        Ok(r) => r,
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("connect to {peer} timed out after {} s", t.as_secs()),
        )),
    }
}

/// Binds and listens on `addr` with `backlog`.
pub fn listen(addr: SocketAddr, backlog: i32) -> io::Result<TcpListener> {
    let s = socket_for(&addr.ip())?;
    s.set_reuseaddr(true)?;
    s.bind(addr)?;
    s.listen(backlog.max(1) as u32)
}

/// Applies socklnd's options to an established connection: TCP_NODELAY
/// unless `nagle`, no lingering, buffer sizes when set, TCP keepalive, ToS.
pub fn setup(s: &TcpStream, p: &Params, t: &NiTunables) -> io::Result<()> {
    let r = SockRef::from(s);
    r.set_nodelay(!p.nagle)?;
    r.set_linger(None)?;
    if p.tx_buffer_size > 0 {
        r.set_send_buffer_size(p.tx_buffer_size)?;
    }
    if p.rx_buffer_size > 0 {
        r.set_recv_buffer_size(p.rx_buffer_size)?;
    }
    if p.keepalive_idle > 0 && p.keepalive_count > 0 && p.keepalive_intvl > 0 {
        let ka = TcpKeepalive::new()
            .with_time(Duration::from_secs(p.keepalive_idle as u64))
            .with_interval(Duration::from_secs(p.keepalive_intvl as u64))
            .with_retries(p.keepalive_count);
        r.set_tcp_keepalive(&ka)?;
    }
    if t.tos >= 0 {
        if s.peer_addr()?.is_ipv6() {
            r.set_tclass_v6(t.tos as u32)?;
        } else {
            r.set_tos(t.tos as u32)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn connect_binds_a_privileged_port_when_root() {
        let l = listen("127.0.0.1:0".parse().expect("addr"), 8).expect("listen");
        let at = l.local_addr().expect("bound");
        let s = connect(
            "127.0.0.1".parse().expect("ip"),
            at,
            true,
            Duration::from_secs(5),
        )
        .await
        .expect("connect");
        let port = s.local_addr().expect("local").port();
        if nix::unistd::Uid::effective().is_root() {
            assert!(
                (MIN_RESERVED_PORT..=MAX_RESERVED_PORT).contains(&port),
                "{port}"
            );
        } else {
            assert!(port > MAX_RESERVED_PORT);
        }
        let p = Params {
            tx_buffer_size: 256 * 1024,
            rx_buffer_size: 128 * 1024,
            ..Params::default()
        };
        let t = NiTunables {
            conns_per_peer: 1,
            tos: 0x10,
        };
        setup(&s, &p, &t).expect("options");
        let r = SockRef::from(&s);
        assert!(r.nodelay().expect("nodelay"));
        assert_eq!(r.tos().expect("tos"), 0x10);
        // Linux doubles the value asked for (bookkeeping overhead).
        assert!(r.send_buffer_size().expect("sndbuf") >= 256 * 1024);
        assert!(r.recv_buffer_size().expect("rcvbuf") >= 128 * 1024);
        assert!(r.keepalive().expect("keepalive"));
        let unpriv = connect(
            "127.0.0.1".parse().expect("ip"),
            at,
            false,
            Duration::from_secs(5),
        )
        .await
        .expect("connect");
        assert!(unpriv.local_addr().expect("local").port() > MAX_RESERVED_PORT);
    }
}
