//! Socket options the safe wrappers an LND uses (`socket2`, `nix`) do not
//! offer; the system call needs `unsafe`, which LND crates forbid. Plain
//! Rust helpers for a plugin's own code: nothing here crosses the ABI.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// `SOL_SOCKET` on Linux.
const SOL_SOCKET: i32 = 1;
/// `SO_RCVLOWAT` on Linux.
const SO_RCVLOWAT: i32 = 18;

extern "C" {
    // libc's setsockopt(2) wrapper (std links libc).
    fn setsockopt(fd: i32, level: i32, name: i32, value: *const std::ffi::c_void, len: u32) -> i32;
}

/// Sets `SO_RCVLOWAT` of a stream socket: readiness (poll, epoll) and a
/// blocking receive wait until `bytes` are queued (at least 1). Linux caps
/// it at half the receive buffer and, on TCP, grows an unlocked receive
/// buffer to hold it; a receive window that would close before it is
/// reached still reports the socket readable, so it cannot stall a stream.
pub fn set_rcvlowat(fd: BorrowedFd<'_>, bytes: usize) -> io::Result<()> {
    let v: i32 = bytes.clamp(1, i32::MAX as usize) as i32;
    // SAFETY: `fd` is a descriptor borrowed for the call; `v` lives across
    // it and its size is the length passed; the kernel only reads it.
    let r = unsafe {
        setsockopt(
            fd.as_raw_fd(),
            SOL_SOCKET,
            SO_RCVLOWAT,
            (&v as *const i32).cast(),
            std::mem::size_of::<i32>() as u32,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::AsFd;
    use std::time::Duration;

    #[test]
    fn a_receive_waits_for_the_low_water_mark() {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let mut tx = TcpStream::connect(l.local_addr().expect("addr")).expect("connect");
        let (mut rx, _) = l.accept().expect("accept");
        set_rcvlowat(rx.as_fd(), 3000).expect("set");
        rx.set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        let t = std::thread::spawn(move || {
            for _ in 0..3 {
                tx.write_all(&[7u8; 1000]).expect("write");
                std::thread::sleep(Duration::from_millis(20));
            }
            tx
        });
        // A blocking read with the mark set returns all three writes at once.
        let mut buf = [0u8; 4000];
        let n = rx.read(&mut buf).expect("read");
        assert_eq!(n, 3000);
        assert!(buf[..n].iter().all(|&b| b == 7));
        drop(t.join().expect("writer"));
        set_rcvlowat(rx.as_fd(), 0).expect("0 reads as 1");
    }

    #[test]
    fn a_descriptor_that_is_no_socket_is_refused() {
        let f = std::fs::File::open("/dev/null").expect("open");
        let e = set_rcvlowat(f.as_fd(), 10).expect_err("not a socket");
        assert_eq!(e.raw_os_error(), Some(88), "ENOTSOCK: {e}");
    }
}
