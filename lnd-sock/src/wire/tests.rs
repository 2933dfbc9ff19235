//! Byte-exact fixtures written from the tables of `spec/wire.md` §4–§5.

use super::*;
use lnd_api::NetId;

const TCP: NetId = NetId::new(2, 0);

fn nid(a: u8, b: u8, c: u8, d: u8) -> Nid {
    Nid::new4(TCP, u32::from_be_bytes([a, b, c, d]))
}

#[test]
fn connreq_v1_fixture_both_orders() {
    let r = ConnReqRepr::to(nid(192, 168, 1, 10));
    assert_eq!(r.version, 1);
    let mut le = [0u8; CONNREQ16_SIZE];
    assert_eq!(r.emit(Endian::Little, &mut le).expect("room"), 16);
    assert_eq!(
        &le[..16],
        &[
            0x00, 0x71, 0xCE, 0xAC, // magic 0xACCE7100 LE
            0x01, 0x00, 0x00, 0x00, // version 1
            0x0A, 0x01, 0xA8, 0xC0, 0x00, 0x00, 0x02, 0x00, // 192.168.1.10@tcp
        ]
    );
    let mut be = [0u8; CONNREQ16_SIZE];
    r.emit(Endian::Big, &mut be).expect("room");
    assert_eq!(
        &be[..16],
        &[
            0xAC, 0xCE, 0x71, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x02, 0x00, 0x00, 0xC0, 0xA8,
            0x01, 0x0A,
        ]
    );
    for b in [&le[..16], &be[..16]] {
        let v = ConnReq::new_checked(b).expect("valid");
        assert_eq!(ConnReqRepr::parse(&v).expect("valid"), r);
        let mut d = ConnReqDecoder::new();
        assert_eq!(d.want(), 4);
        assert_eq!(d.feed(&b[..4]), Ok(None));
        assert_eq!(d.want(), 4);
        assert_eq!(d.feed(&b[4..8]), Ok(None));
        assert_eq!(d.want(), 8);
        assert_eq!(d.feed(&b[8..16]), Ok(Some(r)));
    }
    assert_eq!(
        ConnReq::new_checked(&be[..16]).expect("ok").endian(),
        Endian::Big
    );
}

#[test]
fn connreq_v2_fixture_large_nid() {
    let n = Nid::new16(
        NetId::new(2, 1),
        [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
    );
    let r = ConnReqRepr::to(n);
    assert_eq!(r.version, 2);
    let mut b = [0u8; CONNREQ16_SIZE];
    assert_eq!(r.emit(Endian::Little, &mut b).expect("room"), 28);
    let mut want = vec![0x00, 0x71, 0xCE, 0xAC, 0x02, 0x00, 0x00, 0x00];
    want.extend_from_slice(&[0x0C, 0x02, 0x00, 0x01, 0x20, 0x01, 0x0D, 0xB8]);
    want.extend_from_slice(&[0; 11]);
    want.push(1);
    assert_eq!(&b[..], &want[..]);
    let mut d = ConnReqDecoder::new();
    d.feed(&b[..4]).expect("magic");
    d.feed(&b[4..8]).expect("version");
    assert_eq!(d.want(), 20);
    assert_eq!(d.feed(&b[8..]), Ok(Some(r)));
    // Big-endian sender: magic and version swapped, the raw NID is not.
    let mut be = [0u8; CONNREQ16_SIZE];
    r.emit(Endian::Big, &mut be).expect("room");
    assert_eq!(&be[..8], &[0xAC, 0xCE, 0x71, 0x00, 0, 0, 0, 2]);
    assert_eq!(&be[8..], &b[8..]);
    let v = ConnReq::new_checked(&be).expect("valid");
    assert_eq!(v.endian(), Endian::Big);
    assert_eq!(ConnReqRepr::parse(&v), Ok(r));
}

#[test]
fn connreq_refusals() {
    let mut d = ConnReqDecoder::new();
    assert_eq!(
        d.feed(&0x4572_6963u32.to_be_bytes()),
        Err(WireError::ConnReqProbe)
    );
    let mut d = ConnReqDecoder::new();
    assert_eq!(
        d.feed(&LNET_PROTO_TCP_MAGIC.to_le_bytes()),
        Err(WireError::ConnReqMagic {
            value: LNET_PROTO_TCP_MAGIC
        })
    );
    let mut d = ConnReqDecoder::new();
    d.feed(&LNET_PROTO_ACCEPTOR_MAGIC.to_le_bytes())
        .expect("magic");
    assert_eq!(
        d.feed(&7u32.to_le_bytes()),
        Err(WireError::ConnReqVersion { version: 7 })
    );
    assert_eq!(
        ConnReqRepr::version_answer(),
        [0x00, 0x71, 0xCE, 0xAC, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    );
    assert!(matches!(
        ConnReq::new_checked(&[0x00, 0x71, 0xCE, 0xAC, 1, 0, 0, 0, 1, 2]),
        Err(WireError::Truncated { need: 16, .. })
    ));
}

fn hello_v3() -> HelloRepr {
    HelloRepr {
        version: 3,
        src_nid: nid(192, 168, 1, 10),
        dst_nid: nid(192, 168, 1, 20),
        src_pid: 12345,
        dst_pid: 0,
        src_incarnation: 0x0102_0304_0506_0708,
        dst_incarnation: 0,
        ctype: ConnType::BulkIn.to_wire(),
        nips: 0,
    }
}

#[test]
fn hello_v3_fixture_le() {
    let h = hello_v3();
    let mut b = [0u8; HELLO_V4_SIZE];
    assert_eq!(h.emit(Endian::Little, &mut b).expect("room"), 56);
    let want: [u8; 56] = [
        0x63, 0x69, 0x72, 0x45, // magic 0x45726963
        0x03, 0x00, 0x00, 0x00, // version 3
        0x0A, 0x01, 0xA8, 0xC0, 0x00, 0x00, 0x02, 0x00, // src 192.168.1.10@tcp
        0x14, 0x01, 0xA8, 0xC0, 0x00, 0x00, 0x02, 0x00, // dst 192.168.1.20@tcp
        0x39, 0x30, 0x00, 0x00, // src_pid 12345
        0x00, 0x00, 0x00, 0x00, // dst_pid
        0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01, // src incarnation
        0, 0, 0, 0, 0, 0, 0, 0, // dst incarnation
        0x02, 0x00, 0x00, 0x00, // ctype BULK_IN
        0x00, 0x00, 0x00, 0x00, // nips
    ];
    assert_eq!(&b[..56], &want[..]);
    assert_eq!(HelloRepr::parse(&want), Ok((h, Endian::Little)));
}

#[test]
fn hello_v3_fixture_be_with_ips() {
    // A byte-swapped V2 sender listing two IPs (deprecated, still accepted).
    let mut want: Vec<u8> = vec![
        0x45, 0x72, 0x69, 0x63, // magic, big-endian
        0x00, 0x00, 0x00, 0x02, // version 2
        0x00, 0x02, 0x00, 0x00, 0xC0, 0xA8, 0x01, 0x0A, // src
        0x00, 0x02, 0x00, 0x00, 0xC0, 0xA8, 0x01, 0x14, // dst
        0x00, 0x00, 0x30, 0x39, // src_pid
        0x00, 0x00, 0x00, 0x00, // dst_pid
        0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, // incarnation
        0, 0, 0, 0, 0, 0, 0, 0, // dst incarnation
        0xFF, 0xFF, 0xFF, 0xFF, // ctype NONE
        0x00, 0x00, 0x00, 0x02, // nips 2
    ];
    want.extend_from_slice(&[0xC0, 0xA8, 0x01, 0x0A, 0x0A, 0x00, 0x00, 0x01]);
    let (h, e) = HelloRepr::parse(&want).expect("valid");
    assert_eq!(e, Endian::Big);
    assert_eq!(h.version, 2);
    assert_eq!(h.src_nid, nid(192, 168, 1, 10));
    assert_eq!(h.src_pid, 12345);
    assert_eq!(h.src_incarnation, 0x0102_0304_0506_0708);
    assert_eq!(h.ctype, -1);
    assert_eq!(h.nips, 2);
    // Our own emission of the same hello in big-endian gives the fixed part.
    let mut b = [0u8; HELLO_V4_SIZE];
    let mut mine = h;
    mine.nips = 0;
    mine.emit(Endian::Big, &mut b).expect("room");
    assert_eq!(&b[..52], &want[..52]);
    // A zero IP is refused.
    let mut bad = want.clone();
    bad[60..64].fill(0);
    assert_eq!(HelloRepr::parse(&bad), Err(WireError::HelloZeroIp));
    // Too many IPs.
    let mut bad = want.clone();
    bad[52..56].copy_from_slice(&17u32.to_be_bytes());
    assert_eq!(
        HelloRepr::parse(&bad),
        Err(WireError::HelloIps { value: 17 })
    );
}

#[test]
fn hello_v4_fixture_both_orders() {
    let a6 = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    let mut b6 = a6;
    b6[15] = 2;
    let net = NetId::new(2, 1);
    let h = HelloRepr {
        version: 4,
        src_nid: Nid::new16(net, a6),
        dst_nid: Nid::new16(net, b6),
        src_pid: 12345,
        dst_pid: 0,
        src_incarnation: 0x1122_3344_5566_7788,
        dst_incarnation: 0,
        ctype: ConnType::Control.to_wire(),
        nips: 0,
    };
    let mut le = [0u8; HELLO_V4_SIZE];
    assert_eq!(h.emit(Endian::Little, &mut le).expect("room"), 80);
    let mut want = vec![0x63, 0x69, 0x72, 0x45, 0x04, 0, 0, 0];
    want.extend_from_slice(&[0x0C, 0x02, 0x00, 0x01]);
    want.extend_from_slice(&a6);
    want.extend_from_slice(&[0x0C, 0x02, 0x00, 0x01]);
    want.extend_from_slice(&b6);
    want.extend_from_slice(&[0x39, 0x30, 0, 0, 0, 0, 0, 0]);
    want.extend_from_slice(&[0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11]);
    want.extend_from_slice(&[0; 8]);
    want.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(&le[..], &want[..]);
    assert_eq!(HelloRepr::parse(&le), Ok((h, Endian::Little)));
    let mut be = [0u8; HELLO_V4_SIZE];
    h.emit(Endian::Big, &mut be).expect("room");
    assert_eq!(&be[..8], &[0x45, 0x72, 0x69, 0x63, 0, 0, 0, 4]);
    assert_eq!(&be[8..48], &le[8..48], "raw NIDs are not swapped");
    assert_eq!(&be[48..52], &[0, 0, 0x30, 0x39]);
    assert_eq!(&be[72..76], &[0, 0, 0, 1]);
    assert_eq!(HelloRepr::parse(&be), Ok((h, Endian::Big)));
}

#[test]
fn hello_v1_fixture() {
    let h = HelloRepr {
        version: 1,
        dst_nid: Nid::ANY,
        ..hello_v3()
    };
    let mut b = [0u8; HELLO_V4_SIZE];
    assert_eq!(h.emit(Endian::Big, &mut b).expect("room"), 72);
    let mut want = vec![0xED, 0x0D, 0xBC, 0xEE, 0x01, 0x00, 0x00, 0x00];
    want.extend_from_slice(&[0x0A, 0x01, 0xA8, 0xC0, 0x00, 0x00, 0x02, 0x00]);
    want.extend_from_slice(&[0, 0, 0, 0, 0x39, 0x30, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0]);
    want.extend_from_slice(&[0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01]);
    want.extend_from_slice(&[2, 0, 0, 0]);
    want.extend_from_slice(&[0; 28]);
    assert_eq!(&b[..72], &want[..], "V1 is little-endian whatever asked");
    assert_eq!(HelloRepr::parse(&want), Ok((h, Endian::Little)));
    // With one IP announced and listed.
    let mut w2 = want.clone();
    w2[28] = 4;
    w2.extend_from_slice(&0x0A00_0001u32.to_le_bytes());
    assert_eq!(HelloRepr::parse(&w2).expect("valid").0.nips, 1);
    // Wrong minor version.
    let mut bad = want.clone();
    bad[6] = 1;
    assert_eq!(
        HelloRepr::parse(&bad),
        Err(WireError::HelloVersion {
            version: 0x0001_0001
        })
    );
    // Not a HELLO type.
    let mut bad = want.clone();
    bad[24] = 1;
    assert_eq!(
        HelloRepr::parse(&bad),
        Err(WireError::HelloV1Type { value: 1 })
    );
}

#[test]
fn hello_unknown_version_and_magic() {
    let mut b = [0u8; HELLO_V4_SIZE];
    let mut h = hello_v3();
    h.version = 3;
    h.emit(Endian::Little, &mut b).expect("room");
    b[4] = 9;
    let mut d = HelloDecoder::new();
    assert_eq!(d.feed(&b[..4]), Ok(None));
    assert!(d.magic_seen());
    assert_eq!(
        d.feed(&b[4..8]),
        Err(WireError::HelloVersion { version: 9 })
    );
    assert_eq!(d.want(), 0);
    assert_eq!(
        HelloRepr::parse(&[1, 2, 3, 4, 5, 6, 7, 8]),
        Err(WireError::HelloMagic { value: 0x0403_0201 })
    );
    assert!(matches!(
        HelloRepr::parse(&b[..20]),
        Err(WireError::HelloVersion { .. })
    ));
    b[4] = 3;
    assert!(matches!(
        HelloRepr::parse(&b[..20]),
        Err(WireError::Truncated { need: 48, .. })
    ));
}

#[test]
fn msg_hdr_fixtures() {
    let h = MsgHdrRepr {
        kind: MsgKind::Lnet,
        csum: 0,
        zc_req: 0x0102_0304_0506_0708,
        zc_ack: 2,
    };
    let mut le = [0u8; MSG_HDR_SIZE];
    h.emit(Endian::Little, &mut le);
    assert_eq!(
        le,
        [
            0xC1, 0, 0, 0, 0, 0, 0, 0, 0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01, 2, 0, 0, 0,
            0, 0, 0, 0
        ]
    );
    let mut be = [0u8; MSG_HDR_SIZE];
    h.emit(Endian::Big, &mut be);
    assert_eq!(
        be,
        [
            0, 0, 0, 0xC1, 0, 0, 0, 0, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0, 0, 0, 0,
            0, 0, 0, 2
        ]
    );
    for (b, e) in [(le, Endian::Little), (be, Endian::Big)] {
        let v = MsgHdr::new_checked(&b, e).expect("long enough");
        assert_eq!(MsgHdrRepr::parse(&v), Ok(h));
    }
    let mut k = [0u8; MSG_HDR_SIZE];
    MsgHdrRepr::KEEPALIVE.emit(Endian::Little, &mut k);
    assert_eq!(
        k,
        [0xC0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0]
    );
    let mut bad = le;
    bad[0] = 0xC2;
    let v = MsgHdr::new_checked(&bad, Endian::Little).expect("long enough");
    assert_eq!(
        MsgHdrRepr::parse(&v),
        Err(WireError::MsgType { value: 0xC2 })
    );
    assert!(MsgHdr::new_checked(&le[..23], Endian::Little).is_err());
}

#[test]
fn zc_ack_forms() {
    let noop = |a, b| MsgHdrRepr {
        kind: MsgKind::Noop,
        csum: 0,
        zc_req: a,
        zc_ack: b,
    };
    assert_eq!(ZcAcked::of(&noop(0, 0)), ZcAcked::None);
    assert_eq!(ZcAcked::of(&noop(0, 1)), ZcAcked::Keepalive);
    assert_eq!(ZcAcked::of(&noop(0, 7)), ZcAcked::One(7));
    assert_eq!(ZcAcked::of(&noop(3, 7)), ZcAcked::Range(3, 7));
    assert_eq!(ZcAcked::of(&noop(9, 7)), ZcAcked::Pair(9, 7));
    let lnet = MsgHdrRepr {
        kind: MsgKind::Lnet,
        ..noop(5, 9)
    };
    assert_eq!(ZcAcked::of(&lnet), ZcAcked::One(9));
}

#[test]
fn non_canonical_classic_nids_are_refused() {
    // Found by fuzzing: a top byte of 0xFF made a NID of the ANY type that
    // is not LNET_NID_ANY.
    let mut b = [0u8; CONNREQ16_SIZE];
    ConnReqRepr::to(nid(192, 168, 1, 10))
        .emit(Endian::Little, &mut b)
        .expect("room");
    b[14] = 0xFF;
    b[15] = 0xFF;
    let v = ConnReq::new_checked(&b[..16]).expect("shape is fine");
    assert_eq!(
        ConnReqRepr::parse(&v),
        Err(WireError::BadNid { field: "acr_nid" })
    );
    b[8..16].fill(0xFF);
    let v = ConnReq::new_checked(&b[..16]).expect("shape is fine");
    assert_eq!(ConnReqRepr::parse(&v).expect("ANY").nid, Nid::ANY);
    let mut h = [0u8; HELLO_V4_SIZE];
    hello_v3().emit(Endian::Little, &mut h).expect("room");
    h[15] = 1;
    assert_eq!(
        HelloRepr::parse(&h[..56]),
        Err(WireError::BadNid {
            field: "kshm_src_nid"
        })
    );
}

#[test]
fn conn_type_inverse() {
    assert_eq!(ConnType::BulkIn.inverse(), Some(ConnType::BulkOut));
    assert_eq!(ConnType::BulkOut.inverse(), Some(ConnType::BulkIn));
    assert_eq!(ConnType::Control.inverse(), Some(ConnType::Control));
    assert_eq!(ConnType::Any.inverse(), Some(ConnType::Any));
    assert_eq!(ConnType::None.inverse(), None);
    for v in -1..=3 {
        assert_eq!(ConnType::from_wire(v).map(ConnType::to_wire), Some(v));
    }
    assert_eq!(ConnType::from_wire(4), None);
}

#[test]
fn csum_matches_crc32_without_final_inversion() {
    // zlib crc32("123456789") = 0xCBF43926; socklnd's value is its complement.
    assert_eq!(csum_update(0xFFFF_FFFF, b"123456789"), !0xCBF4_3926u32);
    let split = csum_update(csum_update(0xFFFF_FFFF, b"1234"), b"56789");
    assert_eq!(split, !0xCBF4_3926u32);
}

mod prop {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = HelloRepr::parse(&bytes);
            let _ = ConnReq::new_checked(&bytes).map(|v| ConnReqRepr::parse(&v));
            let _ = MsgHdr::new_checked(&bytes, Endian::Big).map(|v| MsgHdrRepr::parse(&v));
            let mut d = ConnReqDecoder::new();
            let mut off = 0;
            while d.want() > 0 && off + d.want() <= bytes.len() {
                let w = d.want();
                match d.feed(&bytes[off..off + w]) {
                    Ok(Some(_)) | Err(_) => break,
                    Ok(None) => off += w,
                }
            }
        }

        #[test]
        fn hello_roundtrip(v in 2u32..=4, pid: u32, inc: u64, ct in -1i32..=3, a: u32, b: u32, big: bool) {
            let e = if big { Endian::Big } else { Endian::Little };
            let h = HelloRepr {
                version: v,
                src_nid: Nid::new4(TCP, a),
                dst_nid: Nid::new4(TCP, b),
                src_pid: pid,
                dst_pid: 0,
                src_incarnation: inc,
                dst_incarnation: 0,
                ctype: ct,
                nips: 0,
            };
            let mut buf = [0u8; HELLO_V4_SIZE];
            let n = h.emit(e, &mut buf).expect("room");
            prop_assert_eq!(HelloRepr::parse(&buf[..n]), Ok((h, e)));
        }
    }
}
