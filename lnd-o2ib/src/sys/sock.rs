//! Socket calls std lacks, for the soft provider: a receive and a send that
//! do not wait (`MSG_DONTWAIT`) on an otherwise blocking socket. Setting
//! `O_NONBLOCK` instead would change every clone of the descriptor (they
//! share one open file), the soft QP's reader's and writer's included.

use std::io;
use std::mem::MaybeUninit;
use std::net::TcpStream;

use socket2::SockRef;

/// `MSG_DONTWAIT` (`<bits/socket.h>`: the same value on every Linux
/// architecture).
const MSG_DONTWAIT: std::ffi::c_int = 0x40;
/// `MSG_NOSIGNAL`: a closed peer is an `EPIPE` error, not a `SIGPIPE`.
const MSG_NOSIGNAL: std::ffi::c_int = 0x4000;

/// Receives what is there now into `buf`, without waiting: the bytes
/// read (0: the peer closed), or `WouldBlock` when nothing is there.
pub fn recv_now(s: &TcpStream, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `[MaybeUninit<u8>]` has the layout of `[u8]`, and recv(2)
    // only writes initialized bytes into it, so `buf` stays initialized.
    let uninit = unsafe { &mut *(buf as *mut [u8] as *mut [MaybeUninit<u8>]) };
    SockRef::from(s).recv_with_flags(uninit, MSG_DONTWAIT)
}

/// Sends what the socket takes now of `bufs`, without waiting: the bytes
/// sent (maybe fewer than given), or `WouldBlock` when it takes none.
pub fn send_now(s: &TcpStream, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
    SockRef::from(s).send_vectored_with_flags(bufs, MSG_DONTWAIT | MSG_NOSIGNAL)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn recv_now_does_not_wait_and_reads_what_is_there() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let mut w = TcpStream::connect(l.local_addr().expect("addr")).expect("connect");
        let (r, _) = l.accept().expect("accept");
        let mut b = [0u8; 8];
        let e = recv_now(&r, &mut b).expect_err("nothing there");
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        w.write_all(b"abc").expect("write");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let n = loop {
            match recv_now(&r, &mut b) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    assert!(std::time::Instant::now() < deadline, "never came");
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
                Err(e) => panic!("{e}"),
            }
        };
        assert_eq!(&b[..n], b"abc");
        // The socket itself still blocks (its clones are untouched).
        r.set_read_timeout(Some(std::time::Duration::from_millis(50)))
            .expect("timeout");
        let e = std::io::Read::read(&mut &r, &mut b).expect_err("blocks, then times out");
        assert!(matches!(
            e.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
        ));
        drop(w);
        assert_eq!(recv_now(&r, &mut b).expect("eof"), 0);
    }

    #[test]
    fn send_now_takes_what_fits_then_would_block() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let w = TcpStream::connect(l.local_addr().expect("addr")).expect("connect");
        let (_r, _) = l.accept().expect("accept");
        let n = send_now(&w, &[io::IoSlice::new(b"ab"), io::IoSlice::new(b"c")]).expect("send");
        assert_eq!(n, 3);
        // Nobody reads: the buffers fill and a send takes nothing.
        let big = vec![0u8; 1 << 20];
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            match send_now(&w, &[io::IoSlice::new(&big)]) {
                Ok(_) => assert!(std::time::Instant::now() < deadline, "never full"),
                Err(e) => {
                    assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
                    break;
                }
            }
        }
    }
}
