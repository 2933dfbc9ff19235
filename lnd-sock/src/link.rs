//! The link state of an NI's interface (ksocklnd's netdev notifier,
//! `ksocknal_handle_link_state_change()` in upstream).
//!
//! Each NI on a non-loopback address runs one watcher task. It listens on
//! an rtnetlink socket subscribed to link and address changes
//! (`RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR`) and, after each
//! burst of notifications, re-reads the interfaces with `getifaddrs(3)`
//! ([`crate::iface::snapshot`]). Both are answered by the kernel for the
//! network namespace the process runs in, unlike `/sys/class/net`, which
//! shows the namespace `/sys` was mounted from. The link is usable
//! ([`link_up`]) while the interface is up (`IFF_UP`), running (`IFF_RUNNING`:
//! carrier, operstate UP or UNKNOWN) and still holds the NI's address, as
//! upstream sets `ni_fatal_error_on` when the device goes down, loses its
//! carrier or its address.
//!
//! On a change the watcher tells LNet ([`lnd_api::Host::link_state`]): LNet
//! marks the NI down (`net show` status `down`, `fatal_error` 1), selects
//! other NIs and stops recovery pings until the link returns. Going down, it
//! also closes the NI's connections at once and fails the sends waiting for
//! a connection: their queued and in-flight sends finish with `-ENETDOWN` /
//! `LOCAL_ABORTED`, so LNet lowers the NI's health and resends them through
//! another NI now rather than after `sock_timeout`. While the link is down
//! no connection is attempted from the NI: a send with no live connection
//! (one LNet pinned to this NI's NID) fails the same way at once. A connect
//! that fails in a way a dead local link explains (`ENETUNREACH`,
//! `ENETDOWN`, `EHOSTUNREACH`, `EADDRNOTAVAIL`, `ETIMEDOUT`) before the
//! watcher saw the change looks at the interface: down, it is the same
//! local abort, not the peer's fault ([`crate::ni::unreachable_status`]).
//! Upstream ksocklnd only marks the NI (`ni_fatal_error_on`) and leaves its
//! sends to fail by themselves; ending them at once as local failures is
//! this LND's choice, so that `lst brw` over Multi-Rail survives a cut.
//! Coming back, LNet's recovery pings restore the health.
//!
//! When the netlink socket cannot be opened the watcher says so in the log
//! and polls every [`POLL`]; with it, it still re-reads every [`RECHECK`]
//! in case notifications were lost, and every [`POLL`] while the link is
//! down, repeating the report (a link down at start-up may be reported
//! before LNet has registered the NI).

use std::io;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

use lnd_api::{errno, HealthStatus, LogLevel};
use nix::sys::socket::{self, AddressFamily, NetlinkAddr, SockFlag, SockProtocol};
use tokio::net::UnixDatagram;

use crate::conn::CloseReason;
use crate::iface::{self, IfAddr};
use crate::ni::NiInner;

/// Interval of the re-read without netlink.
pub const POLL: Duration = Duration::from_secs(1);
/// Interval of the safety re-read with netlink.
pub const RECHECK: Duration = Duration::from_secs(5);

/// rtnetlink multicast groups (`linux/rtnetlink.h`).
const RTMGRP_LINK: u32 = 0x1;
const RTMGRP_IPV4_IFADDR: u32 = 0x10;
const RTMGRP_IPV6_IFADDR: u32 = 0x100;

fn base(name: &str) -> &str {
    name.split(':').next().unwrap_or(name)
}

/// Whether an NI on interface `ifname` (an address label such as `eth0:1`
/// counts as its device) with address `addr` can use its link in `list`:
/// the device is up and running and holds `addr`.
pub fn link_up(list: &[IfAddr], ifname: &str, addr: IpAddr) -> bool {
    let dev = base(ifname);
    list.iter()
        .any(|a| base(&a.name) == dev && a.addr == Some(addr) && a.up && a.running)
}

/// Why the link is not usable, for the log.
pub fn why_down(list: &[IfAddr], ifname: &str, addr: IpAddr) -> String {
    let dev = base(ifname);
    let entries: Vec<&IfAddr> = list.iter().filter(|a| base(&a.name) == dev).collect();
    if entries.is_empty() {
        return format!("interface {dev} is gone");
    }
    if !entries.iter().any(|a| a.up) {
        return format!("interface {dev} is down");
    }
    if !entries.iter().any(|a| a.running) {
        return format!("interface {dev} has no carrier");
    }
    format!("interface {dev} no longer has address {addr}")
}

/// Opens a non-blocking rtnetlink socket subscribed to link and address
/// changes.
fn open() -> io::Result<OwnedFd> {
    let fd = socket::socket(
        AddressFamily::Netlink,
        socket::SockType::Raw,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        SockProtocol::NetlinkRoute,
    )?;
    let groups = RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR;
    socket::bind(fd.as_raw_fd(), &NetlinkAddr::new(0, groups))?;
    Ok(fd)
}

/// Starts the watcher of `ni`'s link (nothing for a loopback address: its
/// interface is never reported down).
pub fn watch(ni: &Arc<NiInner>) {
    if ni.addr.is_loopback() {
        return;
    }
    let me = Arc::clone(ni);
    ni.spawn(run(me));
}

/// The netlink socket as tokio sees it. tokio's only generic fd wrapper
/// (`AsyncFd::register`) is `unsafe`, which this crate forbids; a datagram
/// socket type that owns the fd gives the same readiness (epoll) and its
/// `try_recv` is a plain `recv(2)`, which is all a netlink socket needs.
/// Nothing else (addresses, send) is ever called on it.
fn to_async(fd: OwnedFd) -> io::Result<UnixDatagram> {
    UnixDatagram::from_std(std::os::unix::net::UnixDatagram::from(fd))
}

/// Waits until the socket has something, then reads everything it has.
/// `Err` when the socket is unusable.
async fn drain(sock: &UnixDatagram, buf: &mut [u8]) -> io::Result<()> {
    sock.readable().await?;
    loop {
        match sock.try_recv(buf) {
            Ok(_) => continue,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            // The kernel dropped notifications: the re-read covers them.
            Err(e) if e.raw_os_error() == Some(nix::libc::ENOBUFS) => continue,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

async fn run(ni: Arc<NiInner>) {
    let mut sock = match open().and_then(to_async) {
        Ok(s) => Some(s),
        Err(e) => {
            ni.log_ni(
                LogLevel::WARN,
                &format!(
                    "cannot watch the link of {} through netlink ({e}): polling it every {} s",
                    ni.ifname,
                    POLL.as_secs()
                ),
            );
            None
        }
    };
    let mut buf = vec![0u8; 16 * 1024];
    // Start-up chose an interface that was up: LNet starts with the link up.
    let mut up = true;
    loop {
        match iface::snapshot() {
            Ok(list) => {
                let now_up = link_up(&list, &ni.ifname, ni.addr);
                if now_up != up {
                    up = now_up;
                    report(&ni, up, &why_down(&list, &ni.ifname, ni.addr));
                } else if !up {
                    // Again while down (LNet ignores a repeat): a report made
                    // while LNet was still registering the NI (a link already
                    // down at start-up) is not lost.
                    ni.host.link_state(false);
                }
            }
            Err(e) => ni.log_ni(
                LogLevel::WARN,
                &format!("cannot read the state of {}: {e}", ni.ifname),
            ),
        }
        match &sock {
            Some(fd) => {
                match tokio::time::timeout(if up { RECHECK } else { POLL }, drain(fd, &mut buf))
                    .await
                {
                    Ok(Ok(())) | Err(_) => {}
                    Ok(Err(e)) => {
                        ni.log_ni(
                            LogLevel::WARN,
                            &format!(
                                "netlink watch of {} failed ({e}): polling it every {} s",
                                ni.ifname,
                                POLL.as_secs()
                            ),
                        );
                        sock = None;
                    }
                }
            }
            None => tokio::time::sleep(POLL).await,
        }
    }
}

/// Tells LNet; going down, closes the NI's connections.
fn report(ni: &NiInner, up: bool, why: &str) {
    if up {
        ni.log_ni(
            LogLevel::WARN,
            &format!(
                "link up on {} ({}): the NI is usable again",
                ni.ifname, ni.addr
            ),
        );
        ni.link_is_up_again();
        ni.host.link_state(true);
        return;
    }
    ni.log_ni(
        LogLevel::WARN,
        &format!("link down: {why}: the NI is down and its connections are closed"),
    );
    ni.link_went_down(&CloseReason::new(
        format!("link down ({why})"),
        errno::ENETDOWN,
        HealthStatus::LOCAL_ABORTED,
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(name: &str, up: bool, running: bool, addr: Option<&str>) -> IfAddr {
        IfAddr {
            name: name.into(),
            up,
            running,
            loopback: false,
            addr: addr.map(|a| a.parse().expect("ip")),
            prefix: 24,
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn up_running_and_holding_the_address_is_up() {
        let l = vec![
            e("eth0", true, true, None),
            e("eth0", true, true, Some("10.0.0.1")),
        ];
        assert!(link_up(&l, "eth0", ip("10.0.0.1")));
        // An address label is its device.
        let l = vec![e("eth0:1", true, true, Some("10.0.0.9"))];
        assert!(link_up(&l, "eth0:1", ip("10.0.0.9")));
    }

    #[test]
    fn down_no_carrier_lost_address_or_gone_is_down_with_the_reason() {
        let a = ip("10.0.0.1");
        let cases = [
            (
                vec![e("eth0", false, false, Some("10.0.0.1"))],
                "interface eth0 is down",
            ),
            (
                vec![e("eth0", true, false, Some("10.0.0.1"))],
                "interface eth0 has no carrier",
            ),
            (
                vec![e("eth0", true, true, Some("10.0.0.2"))],
                "interface eth0 no longer has address 10.0.0.1",
            ),
            (
                vec![e("eth1", true, true, Some("10.0.0.1"))],
                "interface eth0 is gone",
            ),
        ];
        for (l, why) in cases {
            assert!(!link_up(&l, "eth0", a), "{l:?}");
            assert_eq!(why_down(&l, "eth0", a), why);
        }
    }

    #[test]
    fn netlink_socket_opens_unprivileged() {
        // Subscribing to rtnetlink groups needs no privilege.
        open().expect("rtnetlink socket");
    }
}
