//! The accepting side of lnd-sock end to end, as the acceptor and the NI
//! read a new connection: the connection request (incremental decoder, as
//! `acceptor::read_connreq` feeds it), then the hello (`HelloDecoder`, as
//! `hello::read_hello`), judged by the passive handshake state machine for a
//! privileged or an unprivileged source port, and answered; and the same
//! hello as the answer an active handshake reads. Never panics; every
//! answer we send parses back as our own hello; a userspace peer's identity
//! comes from the socket, never from the bytes.
//!
//! Input: byte 0 picks the source port (odd: unprivileged), byte 1 whether
//! the NI accepts; the rest is the stream.
#![no_main]

use std::net::SocketAddr;

use libfuzzer_sys::fuzz_target;
use lnd_api::{NetId, Nid};
use lnd_sock::hello::{Handshake, LocalId, PeerId, LNET_PID_USERFLAG, MAX_TRANSMIT};
use lnd_sock::wire::{ConnReqDecoder, ConnType, HelloDecoder, HelloRepr};

const NET: NetId = NetId::new(2, 0);

fn local() -> LocalId {
    LocalId {
        nid: Nid::new4(NET, u32::from_be_bytes([10, 0, 0, 1])),
        pid: 12345,
        incarnation: 77,
    }
}

/// Feeds `data` to a decoder the way the async drivers do (`want` bytes at
/// a time); gives the value and the bytes consumed, or `None`.
macro_rules! drive {
    ($data:expr, $d:expr) => {{
        let data: &[u8] = $data;
        let mut off = 0;
        loop {
            let w = $d.want();
            if w == 0 || off + w > data.len() {
                break None;
            }
            match $d.feed(&data[off..off + w]) {
                Ok(Some(v)) => break Some((v, off + w)),
                Ok(None) => off += w,
                Err(_) => break None,
            }
        }
    }};
}

fn check_answer(hs: &mut Handshake) {
    let mut out = [0u8; MAX_TRANSMIT];
    let n = hs.poll_transmit(&mut out).expect("answer fits");
    if n > 0 {
        let (h, _) = HelloRepr::parse(&out[..n]).expect("our answer parses");
        assert_eq!(h.src_nid, local().nid);
        assert_eq!(h.src_pid, local().pid);
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let port = if data[0] & 1 == 1 { 40000 } else { 1021 };
    let accept = data[1] & 1 == 1;
    let stream = &data[2..];
    let from = SocketAddr::from(([10, 0, 0, 9], port));

    // Connection request.
    let mut cr = ConnReqDecoder::new();
    let Some((req, used)) = drive!(stream, cr) else {
        return;
    };
    let _ = req.nid;
    let rest = &stream[used..];

    // Hello, read and judged by the passive side.
    let mut hd = HelloDecoder::new();
    let mut hs = Handshake::passive(local(), from);
    let Some((hello, _)) = drive!(rest, hd) else {
        // Not understood: the acceptor answers with our hello, type NONE.
        if hs.refuse_unknown().is_ok() {
            check_answer(&mut hs);
        }
        return;
    };
    match hs.handle_hello(&hello, hd.endian()) {
        Ok(p) => {
            if port > 1023 {
                assert!(p.userspace);
                assert_eq!(p.peer.pid & LNET_PID_USERFLAG, LNET_PID_USERFLAG);
                assert_eq!(p.peer.nid, Nid::new4(NET, u32::from_be_bytes([10, 0, 0, 9])));
            } else {
                assert_eq!(p.peer.nid, hello.src_nid);
            }
            assert_eq!(p.peer.nid.net(), NET);
            assert!(p.ctype != ConnType::None);
            hs.answer(accept).expect("answer after a judged hello");
            check_answer(&mut hs);
            assert_eq!(hs.is_established(), accept);
        }
        Err(_) => check_answer(&mut hs),
    }

    // The same hello as an active side's answer. The NI connects only to
    // NIDs with an IP address, offering V4 to a large (IPv6) NID and V3
    // otherwise (`NiInner::connect_round`).
    let version = match hello.src_nid.addr_len() {
        4 => 3,
        16 => 4,
        _ => return,
    };
    let peer = PeerId {
        nid: hello.src_nid,
        pid: hello.src_pid,
    };
    let mut act = Handshake::active(local(), peer, ConnType::Control, version);
    let mut out = [0u8; MAX_TRANSMIT];
    let _ = act.poll_transmit(&mut out).expect("request and hello fit");
    if act.handle_hello(&hello, hd.endian()).is_ok() {
        assert!(act.is_established());
    }
});
