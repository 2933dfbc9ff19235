//! Bad input against a live acceptor and live connections: each case closes
//! that one connection with a logged reason; the NI and its other peers
//! carry on.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use lnd_api::hdr::HDR_NID4_SIZE;
use lnd_api::{Hdr, MsgType, Nid};
use lnd_sock::wire::{
    ConnReqRepr, ConnType, Endian, HelloRepr, MsgHdrRepr, MsgKind, HELLO_V2_SIZE, HELLO_V4_SIZE,
    LNET_PROTO_MAGIC, LNET_PROTO_TCP_MAGIC, MSG_HDR_SIZE,
};
use support::*;

const T: Duration = Duration::from_secs(20);
const RAW_IP: [u8; 4] = [127, 0, 0, 3];

struct Bed {
    a: TestNi,
    b: TestNi,
    port: u16,
}

fn bed(extra: &[(&str, &str)]) -> Bed {
    let port = test_port();
    let mut p = params(port);
    p.retain(|(k, _)| *k != "accept");
    p.push(("accept", "all".to_string()));
    for (k, v) in extra {
        p.push((k, v.to_string()));
    }
    let a = start("A", config(TCP, "127.0.0.1", &p, &[]), RecvMode::Sync).expect("A");
    let b = start("B", config(TCP, "127.0.0.2", &p, &[]), RecvMode::Sync).expect("B");
    Bed { a, b, port }
}

/// A raw connection from a source address of its own (127.0.3.N): the
/// acceptor logs one line per peer address per interval, and each case here
/// waits for its own line.
fn raw(port: u16) -> TcpStream {
    static N: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(1);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    raw_at(port, [127, 0, 3, n])
}

fn raw_at(port: u16, ip: [u8; 4]) -> TcpStream {
    let s =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    s.bind(&SocketAddr::from((ip, 0)).into()).expect("bind");
    s.connect(&SocketAddr::from(([127, 0, 0, 2], port)).into())
        .expect("connect");
    let s: TcpStream = s.into();
    s.set_read_timeout(Some(T)).expect("timeout");
    s
}

fn raw_nid() -> Nid {
    Nid::new4(TCP, u32::from_be_bytes(RAW_IP))
}

fn hello(to: Nid, ctype: ConnType, version: u32) -> Vec<u8> {
    let h = HelloRepr {
        version,
        src_nid: raw_nid(),
        dst_nid: to,
        src_pid: PID,
        dst_pid: 0,
        src_incarnation: 42,
        dst_incarnation: 0,
        ctype: ctype.to_wire(),
        nips: 0,
    };
    let mut b = [0u8; HELLO_V4_SIZE];
    let n = h.emit(Endian::Little, &mut b).expect("room");
    b[..n].to_vec()
}

/// A raw peer that completed the handshake as a userspace peer.
fn handshake(bed: &Bed, ctype: ConnType) -> TcpStream {
    let mut s = raw_at(bed.port, RAW_IP);
    let mut m = connreq(bed.b.nid());
    m.extend(hello(bed.b.nid(), ctype, 3));
    s.write_all(&m).expect("write");
    let mut ans = [0u8; HELLO_V2_SIZE];
    s.read_exact(&mut ans).expect("answer");
    let (h, _) = HelloRepr::parse(&ans).expect("hello");
    assert_eq!(h.src_nid, bed.b.nid());
    assert_eq!(Some(h.ctype), ctype.inverse().map(ConnType::to_wire));
    s
}

fn lnet_msg(to: Nid, payload_len: u32, zc_req: u64, zc_ack: u64) -> Vec<u8> {
    let mut out = [0u8; MSG_HDR_SIZE];
    MsgHdrRepr {
        kind: MsgKind::Lnet,
        csum: 0,
        zc_req,
        zc_ack,
    }
    .emit(Endian::Little, &mut out);
    let mut v = out.to_vec();
    let hdr = Hdr {
        dest_nid: to,
        src_nid: raw_nid(),
        dest_pid: PID,
        src_pid: PID,
        msg_type: MsgType::PUT,
        payload_length: payload_len,
        body: [0; 40],
    };
    let mut hb = [0u8; HDR_NID4_SIZE];
    if payload_len <= lnd_api::hdr::MAX_PAYLOAD {
        hdr.encode_nid4(&mut hb).expect("encode");
    } else {
        let ok = Hdr {
            payload_length: 1,
            ..hdr
        };
        ok.encode_nid4(&mut hb).expect("encode");
        hb[28..32].copy_from_slice(&payload_len.to_le_bytes());
    }
    v.extend_from_slice(&hb);
    v
}

fn still_works(bed: &Bed) {
    let d = pattern(70_000, 5);
    let (t, m) = put(&bed.a, bed.b.nid(), &d);
    bed.a.ni.send(m).expect("send");
    assert!(bed.a.host.wait_sent(&[t], T)[0].is_ok());
    let deadline = std::time::Instant::now() + T;
    loop {
        if bed
            .b
            .host
            .received()
            .iter()
            .any(|r| token_of(&r.hdr) == t && r.data == d)
        {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "A's message lost");
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn bad_connection_requests() {
    let bed = bed(&[]);
    // Random bytes.
    let mut s = raw(bed.port);
    s.write_all(&pattern(64, 99)).expect("write");
    assert!(read_to_close(&mut s).is_empty());
    bed.b.host.wait_log("bad connection request", T);
    // Truncated: 6 bytes of a valid request, then the peer closes.
    let mut s = raw(bed.port);
    s.write_all(&connreq(bed.b.nid())[..6]).expect("write");
    s.shutdown(std::net::Shutdown::Write).expect("shutdown");
    assert!(read_to_close(&mut s).is_empty());
    bed.b.host.wait_log("read failed", T);
    // A V1 hello where the request belongs: wrong magic.
    let mut s = raw(bed.port);
    s.write_all(&LNET_PROTO_TCP_MAGIC.to_le_bytes())
        .expect("write");
    assert!(read_to_close(&mut s).is_empty());
    bed.b.host.wait_log("bad magic 0xeebc0ded", T);
    // The unified-protocol probe gets {magic, 1, 0}.
    let mut s = raw(bed.port);
    s.write_all(&LNET_PROTO_MAGIC.to_be_bytes()).expect("write");
    assert_eq!(read_to_close(&mut s), ConnReqRepr::version_answer());
    // An unknown acceptor version gets the same answer.
    let mut s = raw(bed.port);
    let mut m = connreq(bed.b.nid());
    m[4] = 7;
    s.write_all(&m).expect("write");
    assert_eq!(read_to_close(&mut s), ConnReqRepr::version_answer());
    bed.b.host.wait_log("unsupported acceptor version 7", T);
    // A NID that is not served here.
    let mut s = raw(bed.port);
    s.write_all(&connreq(raw_nid())).expect("write");
    assert!(read_to_close(&mut s).is_empty());
    bed.b.host.wait_log("which is not an NI on this address", T);
    still_works(&bed);
    bed.a.shutdown();
    bed.b.shutdown();
}

#[test]
fn bad_hellos() {
    let bed = bed(&[]);
    // Unknown protocol version: we answer with our hello, type NONE.
    let mut s = raw(bed.port);
    let mut m = connreq(bed.b.nid());
    let mut h = hello(bed.b.nid(), ConnType::Control, 3);
    h[4] = 9;
    m.extend(h);
    s.write_all(&m).expect("write");
    let got = read_to_close(&mut s);
    let (ans, _) = HelloRepr::parse(&got).expect("our hello");
    assert_eq!((ans.version, ans.ctype), (3, -1));
    bed.b
        .host
        .wait_log("unknown socklnd protocol version 0x9", T);
    // Truncated hello.
    let mut s = raw(bed.port);
    let mut m = connreq(bed.b.nid());
    m.extend(&hello(bed.b.nid(), ConnType::Control, 3)[..30]);
    s.write_all(&m).expect("write");
    s.shutdown(std::net::Shutdown::Write).expect("shutdown");
    assert!(read_to_close(&mut s).is_empty());
    // Wrong magic after a good request.
    let mut s = raw(bed.port);
    let mut m = connreq(bed.b.nid());
    m.extend(pattern(56, 3));
    s.write_all(&m).expect("write");
    let got = read_to_close(&mut s);
    assert_eq!(HelloRepr::parse(&got).expect("our hello").0.ctype, -1);
    // A hello addressed to another NID.
    let mut s = raw(bed.port);
    let mut m = connreq(bed.b.nid());
    m.extend(hello(bed.a.nid(), ConnType::Control, 3));
    s.write_all(&m).expect("write");
    let got = read_to_close(&mut s);
    assert_eq!(HelloRepr::parse(&got).expect("our hello").0.ctype, -1);
    bed.b.host.wait_log("addressed to 127.0.0.1@tcp", T);
    // An invalid connection type.
    let mut s = raw(bed.port);
    let mut m = connreq(bed.b.nid());
    let mut h = hello(bed.b.nid(), ConnType::Control, 3);
    h[48] = 9;
    m.extend(h);
    s.write_all(&m).expect("write");
    let got = read_to_close(&mut s);
    assert_eq!(HelloRepr::parse(&got).expect("our hello").0.ctype, -1);
    bed.b.host.wait_log("invalid connection type 9", T);
    still_works(&bed);
    bed.a.shutdown();
    bed.b.shutdown();
}

#[test]
fn bad_messages_on_live_connections() {
    let bed = bed(&[]);
    // Payload over 1 MiB.
    let mut s = handshake(&bed, ConnType::Control);
    s.write_all(&lnet_msg(bed.b.nid(), (1 << 20) + 1, 0, 0))
        .expect("write");
    assert!(read_to_close(&mut s).is_empty());
    bed.b.host.wait_log("payload", T);
    // Unknown socklnd message type.
    let mut s = handshake(&bed, ConnType::Control);
    let mut m = lnet_msg(bed.b.nid(), 0, 0, 0);
    m[0] = 0xC7;
    s.write_all(&m).expect("write");
    assert!(read_to_close(&mut s).is_empty());
    bed.b.host.wait_log("unknown type 0xc7", T);
    // A ZC ACK of a cookie we never asked for.
    let mut s = handshake(&bed, ConnType::Control);
    s.write_all(&lnet_msg(bed.b.nid(), 0, 0, 12345))
        .expect("write");
    assert!(read_to_close(&mut s).is_empty());
    bed.b.host.wait_log("unknown cookie", T);
    // A HELLO type inside the data stream.
    let mut s = handshake(&bed, ConnType::Control);
    let mut m = lnet_msg(bed.b.nid(), 0, 0, 0);
    m[MSG_HDR_SIZE + 24] = 4;
    s.write_all(&m).expect("write");
    assert!(read_to_close(&mut s).is_empty());
    bed.b.host.wait_log("bad LNet header", T);
    // Closed mid-payload: the receive is finalized with an error.
    let before = bed.b.host.received().len();
    let mut s = handshake(&bed, ConnType::BulkOut);
    let mut m = lnet_msg(bed.b.nid(), 5000, 0, 0);
    m.extend(pattern(100, 1));
    s.write_all(&m).expect("write");
    drop(s);
    let got = bed.b.host.wait_received(before + 1, T);
    let r = &got[before];
    assert!(!r.status.is_ok(), "{:?}", r.status);
    // The userspace peer's identity replaced the header's.
    assert_eq!(r.hdr.src_nid, raw_nid());
    assert_ne!(r.hdr.src_pid & 0x8000_0000, 0);
    still_works(&bed);
    bed.a.shutdown();
    bed.b.shutdown();
}

#[test]
fn zero_copy_request_is_acknowledged_and_keepalive_sent() {
    let bed = bed(&[("keepalive", "1")]);
    // We announce BULK_OUT, so B's side is BULK_IN: it carries keepalives.
    let mut s = handshake(&bed, ConnType::BulkOut);
    let mut m = lnet_msg(bed.b.nid(), 20_000, 77, 0);
    m.extend(pattern(20_000, 8));
    s.write_all(&m).expect("write");
    let mut noop = [0u8; MSG_HDR_SIZE];
    s.read_exact(&mut noop).expect("ZC ACK");
    let v = lnd_sock::wire::MsgHdr::new_checked(&noop, Endian::Little).expect("24 bytes");
    let h = MsgHdrRepr::parse(&v).expect("valid");
    assert_eq!((h.kind, h.zc_req, h.zc_ack), (MsgKind::Noop, 0, 77));
    // Then silence: a keepalive NOOP {0, 1} within a few seconds.
    s.read_exact(&mut noop).expect("keepalive");
    let v = lnd_sock::wire::MsgHdr::new_checked(&noop, Endian::Little).expect("24 bytes");
    assert_eq!(MsgHdrRepr::parse(&v).expect("valid"), MsgHdrRepr::KEEPALIVE);
    let got = bed.b.host.wait_received(1, T);
    assert_eq!(got[0].data, pattern(20_000, 8));
    bed.a.shutdown();
    bed.b.shutdown();
}

#[test]
fn stalled_message_times_out() {
    let bed = bed(&[("sock_timeout", "1")]);
    let mut s = handshake(&bed, ConnType::Control);
    let m = lnet_msg(bed.b.nid(), 100, 0, 0);
    s.write_all(&m[..40]).expect("write");
    let t0 = std::time::Instant::now();
    assert!(read_to_close(&mut s).is_empty());
    // Closed after about a second; the bound leaves a loaded machine room
    // and is still far below the default timeout.
    assert!(t0.elapsed() < Duration::from_secs(20), "{:?}", t0.elapsed());
    bed.b.host.wait_log("sock_timeout", T);
    still_works(&bed);
    bed.a.shutdown();
    bed.b.shutdown();
}

#[test]
fn secure_acceptor_drops_unprivileged_ports() {
    let port = test_port();
    let mut p = params(port);
    p.retain(|(k, _)| *k != "accept");
    let b = start("B", config(TCP, "127.0.0.2", &p, &[]), RecvMode::Sync).expect("B");
    let mut s = raw(port);
    let mut m = connreq(b.nid());
    m.extend(hello(b.nid(), ConnType::Control, 3));
    let _ = s.write_all(&m);
    assert!(read_to_close(&mut s).is_empty());
    b.host.wait_log("source port is not privileged", T);
    assert!(b.host.received().is_empty());
    b.shutdown();
}
