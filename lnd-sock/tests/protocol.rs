//! Protocol versions and connection rules against scripted raw peers:
//! V1 framing, V2 checksums, V4 over IPv6, incarnations, duplicates, and
//! zero-copy requests between two NIs.

mod support;

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::Duration;

use lnd_api::hdr::{HDR_NID16_SIZE, HDR_NID4_SIZE};
use lnd_api::{Hdr, MsgType, Nid};
use lnd_sock::wire::{
    csum_update, ConnType, Endian, HelloRepr, MsgHdrRepr, MsgKind, HELLO_V1_SIZE, HELLO_V2_SIZE,
    HELLO_V4_SIZE, MSG_HDR_SIZE,
};
use support::*;

const T: Duration = Duration::from_secs(20);

fn ni(addr: &str, extra: &[(&str, &str)]) -> (TestNi, u16) {
    let port = test_port();
    let mut p = params(port);
    p.retain(|(k, _)| *k != "accept");
    p.push(("accept", "all".to_string()));
    for (k, v) in extra {
        p.push((k, v.to_string()));
    }
    (
        start("B", config(TCP, addr, &p, &[]), RecvMode::Sync).expect("start"),
        port,
    )
}

fn raw(src: IpAddr, src_port: u16, dst: SocketAddr) -> std::io::Result<TcpStream> {
    let dom = if src.is_ipv6() {
        socket2::Domain::IPV6
    } else {
        socket2::Domain::IPV4
    };
    let s = socket2::Socket::new(dom, socket2::Type::STREAM, None)?;
    s.set_reuse_address(true)?;
    s.bind(&SocketAddr::new(src, src_port).into())?;
    s.connect(&dst.into())?;
    let s: TcpStream = s.into();
    s.set_read_timeout(Some(T))?;
    Ok(s)
}

/// A raw socket from a privileged port (root only).
fn raw_privileged(src: IpAddr, dst: SocketAddr) -> Option<TcpStream> {
    if !is_root() {
        return None;
    }
    (600..1000u16).rev().find_map(|p| raw(src, p, dst).ok())
}

fn hello(src: Nid, dst: Nid, ctype: ConnType, version: u32, inc: u64, e: Endian) -> Vec<u8> {
    let h = HelloRepr {
        version,
        src_nid: src,
        dst_nid: dst,
        src_pid: PID,
        dst_pid: 0,
        src_incarnation: inc,
        dst_incarnation: 0,
        ctype: ctype.to_wire(),
        nips: 0,
    };
    let mut b = [0u8; HELLO_V4_SIZE];
    let n = h.emit(e, &mut b).expect("room");
    b[..n].to_vec()
}

fn put_hdr(src: Nid, dst: Nid, len: u32) -> Hdr {
    Hdr {
        dest_nid: dst,
        src_nid: src,
        dest_pid: PID,
        src_pid: PID,
        msg_type: MsgType::PUT,
        payload_length: len,
        body: [0; 40],
    }
}

fn ksh(csum: u32, zc_req: u64, e: Endian) -> [u8; MSG_HDR_SIZE] {
    let mut b = [0u8; MSG_HDR_SIZE];
    MsgHdrRepr {
        kind: MsgKind::Lnet,
        csum,
        zc_req,
        zc_ack: 0,
    }
    .emit(e, &mut b);
    b
}

fn v4nid(a: [u8; 4]) -> Nid {
    Nid::new4(TCP, u32::from_be_bytes(a))
}

#[test]
fn v1_peer_gets_v1_hello_and_bare_framing() {
    let (b, port) = ni("127.0.0.2", &[]);
    let me = v4nid([127, 0, 0, 4]);
    let mut s = raw(
        [127, 0, 0, 4].into(),
        0,
        SocketAddr::from(([127, 0, 0, 2], port)),
    )
    .expect("connect");
    let mut m = connreq(b.nid());
    m.extend(hello(me, b.nid(), ConnType::Control, 1, 7, Endian::Little));
    s.write_all(&m).expect("write");
    let mut ans = [0u8; HELLO_V1_SIZE];
    s.read_exact(&mut ans).expect("V1 answer");
    let (h, _) = HelloRepr::parse(&ans).expect("V1 hello");
    assert_eq!((h.version, h.src_nid, h.ctype), (1, b.nid(), 1));
    // A bare LNet header and payload, no socklnd header.
    let data = pattern(300, 1);
    let mut hb = [0u8; HDR_NID4_SIZE];
    put_hdr(me, b.nid(), 300)
        .encode_nid4(&mut hb)
        .expect("encode");
    s.write_all(&hb).expect("write");
    s.write_all(&data).expect("write");
    let got = b.host.wait_received(1, T);
    assert_eq!(got[0].data, data);
    assert_eq!(got[0].hdr.src_nid, me);
    // B answers over the same connection (the peer is a userspace one).
    let peer_pid = got[0].hdr.src_pid;
    assert_ne!(peer_pid & 0x8000_0000, 0);
    let (tok, mut msg) = put(&b, me, &pattern(1000, 2));
    msg.target_pid = peer_pid;
    b.ni.send(msg).expect("send");
    assert!(b.host.wait_sent(&[tok], T)[0].is_ok());
    let mut hb = [0u8; HDR_NID4_SIZE];
    s.read_exact(&mut hb).expect("header");
    let h = Hdr::decode_nid4(&hb).expect("valid header");
    assert_eq!((h.src_nid, h.payload_length), (b.nid(), 1000));
    let mut pl = vec![0u8; 1000];
    s.read_exact(&mut pl).expect("payload");
    assert_eq!(pl, pattern(1000, 2));
    b.shutdown();
}

#[test]
fn v2_checksums_are_verified() {
    let (b, port) = ni("127.0.0.2", &[]);
    let me = v4nid([127, 0, 0, 5]);
    let mut s = raw(
        [127, 0, 0, 5].into(),
        0,
        SocketAddr::from(([127, 0, 0, 2], port)),
    )
    .expect("connect");
    let mut m = connreq(b.nid());
    // A big-endian V2 peer.
    m.extend(hello(me, b.nid(), ConnType::Control, 2, 7, Endian::Big));
    s.write_all(&m).expect("write");
    let mut ans = [0u8; HELLO_V2_SIZE];
    s.read_exact(&mut ans).expect("answer");
    assert_eq!(HelloRepr::parse(&ans).expect("hello").0.version, 2);
    let frame = |csum_ok: bool, seed: u8| {
        let data = pattern(2000, seed);
        let mut hb = [0u8; HDR_NID4_SIZE];
        put_hdr(me, b.nid(), 2000)
            .encode_nid4(&mut hb)
            .expect("encode");
        let zero = ksh(0, 0, Endian::Big);
        let c = csum_update(csum_update(csum_update(0xFFFF_FFFF, &zero), &hb), &data);
        let mut v = ksh(if csum_ok { c } else { c ^ 1 }, 0, Endian::Big).to_vec();
        v.extend_from_slice(&hb);
        v.extend_from_slice(&data);
        (v, data)
    };
    let (good, data) = frame(true, 1);
    s.write_all(&good).expect("write");
    let got = b.host.wait_received(1, T);
    assert!(got[0].status.is_ok());
    assert_eq!(got[0].data, data);
    let (bad, _) = frame(false, 2);
    s.write_all(&bad).expect("write");
    let got = b.host.wait_received(2, T);
    assert_eq!(got[1].status.errno, -lnd_api::errno::EIO);
    assert!(read_to_close(&mut s).is_empty());
    b.host.wait_log("checksum mismatch", T);
    b.shutdown();
}

#[test]
fn v4_over_ipv6_loopback() {
    let (b, port) = ni("::1", &[]);
    let lo6: [u8; 16] = std::net::Ipv6Addr::LOCALHOST.octets();
    assert_eq!(b.nid(), Nid::new16(TCP, lo6));
    let mut s = raw(
        std::net::Ipv6Addr::LOCALHOST.into(),
        0,
        SocketAddr::new(std::net::Ipv6Addr::LOCALHOST.into(), port),
    )
    .expect("connect");
    let mut m = connreq(b.nid());
    assert_eq!(m.len(), 28, "a large NID needs acceptor version 2");
    m.extend(hello(
        b.nid(),
        b.nid(),
        ConnType::BulkOut,
        4,
        9,
        Endian::Little,
    ));
    s.write_all(&m).expect("write");
    let mut ans = [0u8; HELLO_V4_SIZE];
    s.read_exact(&mut ans).expect("answer");
    let (h, _) = HelloRepr::parse(&ans).expect("V4 hello");
    assert_eq!((h.version, h.ctype), (4, ConnType::BulkIn.to_wire()));
    let data = pattern(50_000, 4);
    let mut v = ksh(0, 0, Endian::Little).to_vec();
    let mut hb = [0u8; HDR_NID16_SIZE];
    put_hdr(b.nid(), b.nid(), 50_000).encode_nid16(&mut hb);
    v.extend_from_slice(&hb);
    v.extend_from_slice(&data);
    s.write_all(&v).expect("write");
    let got = b.host.wait_received(1, T);
    assert_eq!(got[0].data, data);
    let peer_pid = got[0].hdr.src_pid;
    let (tok, mut msg) = put(&b, b.nid(), &pattern(3000, 5));
    msg.target_pid = peer_pid;
    b.ni.send(msg).expect("send");
    assert!(b.host.wait_sent(&[tok], T)[0].is_ok());
    let mut head = [0u8; MSG_HDR_SIZE + HDR_NID16_SIZE];
    s.read_exact(&mut head).expect("header");
    assert_eq!(head[0], 0xC1);
    let mut hb = [0u8; HDR_NID16_SIZE];
    hb.copy_from_slice(&head[MSG_HDR_SIZE..]);
    let h = Hdr::decode_nid16(&hb).expect("valid");
    assert_eq!((h.src_nid, h.payload_length), (b.nid(), 3000));
    let mut pl = vec![0u8; 3000];
    s.read_exact(&mut pl).expect("payload");
    assert_eq!(pl, pattern(3000, 5));
    b.shutdown();
}

#[test]
#[ignore = "needs root: privileged source ports (scripts/test.sh runs it as root)"]
fn new_incarnation_closes_old_connections_and_duplicates_are_refused() {
    let (b, port) = ni("127.0.0.2", &[]);
    let src: IpAddr = [127, 0, 0, 6].into();
    let me = v4nid([127, 0, 0, 6]);
    let to = SocketAddr::from(([127, 0, 0, 2], port));
    assert!(
        is_root(),
        "this test needs root (privileged source ports): run it as root, as scripts/test.sh does"
    );
    let mut s1 = raw_privileged(src, to).expect("port");
    let shake = |s: &mut TcpStream, inc: u64| -> HelloRepr {
        let mut m = connreq(b.nid());
        m.extend(hello(
            me,
            b.nid(),
            ConnType::Control,
            3,
            inc,
            Endian::Little,
        ));
        s.write_all(&m).expect("write");
        let mut ans = [0u8; HELLO_V2_SIZE];
        s.read_exact(&mut ans).expect("answer");
        HelloRepr::parse(&ans).expect("hello").0
    };
    assert_eq!(shake(&mut s1, 42).ctype, 1);
    // Same incarnation, second CONTROL: a duplicate, refused with NONE.
    let mut s2 = raw_privileged(src, to).expect("port");
    assert_eq!(shake(&mut s2, 42).ctype, -1);
    assert!(read_to_close(&mut s2).is_empty());
    // The peer "restarted": the old connection is closed, the new one lives.
    let mut s3 = raw_privileged(src, to).expect("port");
    assert_eq!(shake(&mut s3, 43).ctype, 1);
    assert!(read_to_close(&mut s1).is_empty());
    b.host.wait_log("restarted", T);
    let list = b.ni.ctl("conn_list", "").expect("list");
    assert_eq!(list.matches("type: control").count(), 1, "{list}");
    b.shutdown();
}

#[test]
fn zero_copy_requests_between_two_nis() {
    let port = test_port();
    let mut p = params(port);
    p.push(("zc_request", "1".to_string()));
    p.push(("zc_min_payload", "4096".to_string()));
    let a = start("A", config(TCP, "127.0.0.1", &p, &[]), RecvMode::Sync).expect("A");
    let b = start("B", config(TCP, "127.0.0.2", &p, &[]), RecvMode::Sync).expect("B");
    let mut toks = Vec::new();
    for i in 0..6u8 {
        let (t, m) = put(&a, b.nid(), &pattern(10_000 * (i as usize + 1), i));
        a.ni.send(m).expect("send");
        toks.push(t);
    }
    assert!(a.host.wait_sent(&toks, T).iter().all(|c| c.is_ok()));
    assert_eq!(b.host.wait_received(6, T).len(), 6);
    a.shutdown();
    b.shutdown();
}

#[test]
fn disconnect_then_reconnect() {
    let port = test_port();
    let p = params(port);
    let a = start("A", config(TCP, "127.0.0.1", &p, &[]), RecvMode::Sync).expect("A");
    let b = start("B", config(TCP, "127.0.0.2", &p, &[]), RecvMode::Sync).expect("B");
    let (t, m) = put(&a, b.nid(), b"one");
    a.ni.send(m).expect("send");
    assert!(a.host.wait_sent(&[t], T)[0].is_ok());
    // The bulk connections follow the first one: wait for all three.
    wait_conns(&a.ni, 3, T);
    let out =
        a.ni.ctl("disconnect", &b.nid().to_string())
            .expect("disconnect");
    assert!(out.contains("closed: 3"), "{out}");
    assert!(a.ni.ctl("bogus", "").is_err());
    let (t, m) = put(&a, b.nid(), b"two");
    a.ni.send(m).expect("send");
    assert!(a.host.wait_sent(&[t], T)[0].is_ok());
    b.host.wait_received(2, T);
    a.shutdown();
    b.shutdown();
}

#[test]
fn v2_with_checksums_between_two_nis() {
    let port = test_port();
    let mut p = params(port);
    p.push(("protocol", "2".to_string()));
    p.push(("enable_csum", "1".to_string()));
    let a = start("A", config(TCP, "127.0.0.1", &p, &[]), RecvMode::Sync).expect("A");
    let b = start("B", config(TCP, "127.0.0.2", &p, &[]), RecvMode::Sync).expect("B");
    let mut toks = Vec::new();
    let mut sent = Vec::new();
    for (i, n) in [0usize, 1, 4096, 300_000].into_iter().enumerate() {
        let d = pattern(n, i as u8);
        let (t, m) = put(&a, b.nid(), &d);
        a.ni.send(m).expect("send");
        toks.push(t);
        sent.push(d);
    }
    assert!(a.host.wait_sent(&toks, T).iter().all(|c| c.is_ok()));
    let got = b.host.wait_received(4, T);
    for d in &sent {
        assert!(got.iter().any(|r| r.status.is_ok() && r.data == *d));
    }
    let list = a.ni.ctl("conn_list", "").expect("list");
    assert!(list.contains("protocol: 2"), "{list}");
    assert!(!b.host.logs().iter().any(|(_, l)| l.contains("checksum")));
    a.shutdown();
    b.shutdown();
}
