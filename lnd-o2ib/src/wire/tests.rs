//! Golden bytes from `spec/wire.md` §7 and the decoder's rejections.

use super::*;
use lnd_api::hdr::PutBody;
use lnd_api::{NetId, Nid, WireHandle};

/// 192.168.1.10@o2ib and 192.168.1.20@o2ib as classic NIDs.
const A: u64 = 0x0005_0000_C0A8_010A;
const B: u64 = 0x0005_0000_C0A8_0114;

fn connreq() -> MsgRepr {
    MsgRepr {
        version: VERSION_2,
        credits: 0,
        src_nid: A,
        src_stamp: 0x0102_0304_0506_0708,
        dst_nid: B,
        dst_stamp: 0,
        body: Body::ConnReq(ConnParams {
            queue_depth: 8,
            max_frags: 257,
            max_msg_size: 4096,
        }),
    }
}

/// A CONNREQ as the spec's table lays it out, little-endian.
const CONNREQ_LE: [u8; 56] = [
    0x91, 0x1b, 0xe9, 0x0b, // magic
    0x12, 0x00, // version
    0xc0, // type
    0x00, // credits
    0x38, 0x00, 0x00, 0x00, // nob = 56
    0x00, 0x00, 0x00, 0x00, // cksum
    0x0a, 0x01, 0xa8, 0xc0, 0x00, 0x00, 0x05, 0x00, // srcnid
    0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01, // srcstamp
    0x14, 0x01, 0xa8, 0xc0, 0x00, 0x00, 0x05, 0x00, // dstnid
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // dststamp
    0x08, 0x00, // queue_depth
    0x01, 0x01, // max_frags = 257
    0x00, 0x10, 0x00, 0x00, // max_msg_size = 4096
];

#[test]
fn connreq_golden_little_endian() {
    let mut out = [0u8; 64];
    let n = connreq().emit(Endian::Little, &mut out).expect("emit");
    assert_eq!(n, CONN_MSG_SIZE);
    assert_eq!(&out[..n], &CONNREQ_LE[..]);
    assert_eq!(MsgRepr::decode(&CONNREQ_LE).expect("parse"), connreq());
}

#[test]
fn connreq_golden_big_endian() {
    let mut be = [0u8; 56];
    let n = connreq().emit(Endian::Big, &mut be).expect("emit");
    assert_eq!(n, 56);
    assert_eq!(&be[..8], &[0x0b, 0xe9, 0x1b, 0x91, 0x00, 0x12, 0xc0, 0x00]);
    assert_eq!(&be[8..12], &[0, 0, 0, 0x38]);
    assert_eq!(
        &be[16..24],
        &[0x00, 0x05, 0x00, 0x00, 0xc0, 0xa8, 0x01, 0x0a]
    );
    assert_eq!(
        &be[48..56],
        &[0x00, 0x08, 0x01, 0x01, 0x00, 0x00, 0x10, 0x00]
    );
    let v = Msg::new_checked(&be[..]).expect("view");
    assert_eq!(v.endian(), Endian::Big);
    assert_eq!(MsgRepr::parse(&v).expect("parse"), connreq());
}

fn put_hdr(len: u32) -> Hdr {
    let net = NetId::new(lnd_api::lnd_type::O2IBLND, 0);
    Hdr::put(
        Nid::new4(net, 0xC0A8_0114),
        Nid::new4(net, 0xC0A8_010A),
        12345,
        12345,
        len,
        PutBody {
            ack_wmd: WireHandle::NONE,
            match_bits: 0x1234,
            hdr_data: 0,
            ptl_index: 4,
            offset: 0,
        },
    )
}

fn base(body: Body) -> MsgRepr {
    MsgRepr {
        version: VERSION_2,
        credits: 3,
        src_nid: A,
        src_stamp: 11,
        dst_nid: B,
        dst_stamp: 22,
        body,
    }
}

#[test]
fn immediate_layout_and_payload() {
    let m = base(Body::Immediate {
        hdr: put_hdr(5),
        payload_len: 5,
    });
    let mut out = [0u8; 256];
    let n = m.emit(Endian::Little, &mut out).expect("emit");
    assert_eq!(n, 125);
    out[120..125].copy_from_slice(b"hello");
    assert_eq!(out[6], 0xd1);
    assert_eq!(out[7], 3);
    // The LNet header sits at 48, little-endian: dest_nid first.
    assert_eq!(&out[48..56], &[0x14, 0x01, 0xa8, 0xc0, 0, 0, 5, 0]);
    assert_eq!(&out[72..80], &[1, 0, 0, 0, 5, 0, 0, 0]); // type PUT, length 5
    let v = Msg::new_checked(&out[..n]).expect("view");
    assert_eq!(v.immediate_payload(), b"hello");
    assert_eq!(MsgRepr::parse(&v).expect("parse"), m);
}

#[test]
fn immediate_longer_than_its_header_says_is_refused() {
    let m = base(Body::Immediate {
        hdr: put_hdr(2),
        payload_len: 5,
    });
    let mut out = [0u8; 256];
    let n = m.emit(Endian::Little, &mut out).expect("emit");
    assert_eq!(
        MsgRepr::decode(&out[..n]),
        Err(Error::ImmediateLength { hdr: 2, inline: 5 })
    );
}

#[test]
fn every_type_round_trips_in_both_orders() {
    let rd = RdmaDesc {
        key: 0xdead_beef,
        frags: vec![
            RdmaFrag {
                nob: 4096,
                addr: 0x1000,
            },
            RdmaFrag {
                nob: 100,
                addr: 0xffff_0000_1234_5678,
            },
        ],
    };
    let c = CompletionBody {
        cookie: 0x0102_0304_0506_0708,
        status: -61,
    };
    let cp = ConnParams {
        queue_depth: 16,
        max_frags: 257,
        max_msg_size: 4096,
    };
    let all = [
        (base(Body::ConnReq(cp)), 56),
        (base(Body::ConnAck(cp)), 56),
        (base(Body::Noop), 48),
        (
            base(Body::Immediate {
                hdr: put_hdr(0),
                payload_len: 0,
            }),
            120,
        ),
        (
            base(Body::PutReq {
                hdr: put_hdr(1 << 20),
                cookie: 7,
            }),
            128,
        ),
        (base(Body::PutNak(c)), 60),
        (
            base(Body::PutAck {
                src_cookie: 7,
                dst_cookie: 9,
                rd: rd.clone(),
            }),
            72 + 24,
        ),
        (base(Body::PutDone(c)), 60),
        (
            base(Body::GetReq {
                hdr: put_hdr(0),
                cookie: 5,
                rd: rd.clone(),
            }),
            136 + 24,
        ),
        (base(Body::GetDone(c)), 60),
    ];
    for (m, size) in all {
        for e in [Endian::Little, Endian::Big] {
            let mut out = [0u8; 512];
            let n = m.emit(e, &mut out).expect("emit");
            assert_eq!(n, size, "{:?}", m.body);
            let v = Msg::new_checked(&out[..n]).expect("view");
            assert_eq!(v.endian(), e);
            assert_eq!(MsgRepr::parse(&v).expect("parse"), m, "{e:?}");
        }
    }
}

#[test]
fn completion_cookies_are_not_flipped() {
    let c = CompletionBody {
        cookie: 0x0102_0304_0506_0708,
        status: 4096,
    };
    let m = base(Body::GetDone(c));
    let (mut le, mut be) = ([0u8; 60], [0u8; 60]);
    m.emit(Endian::Little, &mut le).expect("emit");
    m.emit(Endian::Big, &mut be).expect("emit");
    // Cookie bytes identical in both orders; status flipped.
    assert_eq!(le[48..56], be[48..56]);
    assert_eq!(&le[56..60], &[0x00, 0x10, 0, 0]);
    assert_eq!(&be[56..60], &[0, 0, 0x10, 0x00]);
}

#[test]
fn rdma_frag_addr_is_at_a_misaligned_offset() {
    let m = base(Body::PutAck {
        src_cookie: 1,
        dst_cookie: 2,
        rd: RdmaDesc {
            key: 0x11223344,
            frags: vec![RdmaFrag {
                nob: 0x55,
                addr: 0x0807_0605_0403_0201,
            }],
        },
    });
    let mut out = [0u8; 128];
    let n = m.emit(Endian::Little, &mut out).expect("emit");
    assert_eq!(n, 84);
    assert_eq!(&out[64..72], &[0x44, 0x33, 0x22, 0x11, 1, 0, 0, 0]);
    assert_eq!(&out[72..76], &[0x55, 0, 0, 0]);
    assert_eq!(&out[76..84], &[1, 2, 3, 4, 5, 6, 7, 8]);
}

#[test]
fn checksum_rule_signed_chars_and_zero_as_one() {
    assert_eq!(cksum(&[], None), 1);
    assert_eq!(cksum(&[0, 0], None), 1);
    assert_eq!(cksum(&[1], None), 1);
    assert_eq!(cksum(&[1, 2], None), 4);
    // 0xff is -1 as a signed char: 0 rotated + (-1) = 0xffffffff.
    assert_eq!(cksum(&[0xff], None), 0xffff_ffff);
    // Then rotating all-ones and adding 1 wraps to 0, sent as 1.
    assert_eq!(cksum(&[0xff, 0x01], None), 1);
    // 0x80 is -128: 1 rotated to 2, plus -128.
    assert_eq!(cksum(&[0x01, 0x80], None), 2u32.wrapping_sub(128));
    let mut out = CONNREQ_LE;
    seal_cksum(Endian::Little, &mut out);
    let sum = u32::from_le_bytes([out[12], out[13], out[14], out[15]]);
    assert_ne!(sum, 0);
    assert_eq!(sum, cksum(&CONNREQ_LE, None));
    assert_eq!(MsgRepr::decode(&out).expect("valid"), connreq());
    out[50] ^= 1;
    assert!(matches!(
        MsgRepr::decode(&out),
        Err(Error::BadChecksum { .. })
    ));
}

#[test]
fn checksum_verified_on_byte_swapped_message() {
    let mut be = [0u8; 56];
    connreq().emit(Endian::Big, &mut be).expect("emit");
    seal_cksum(Endian::Big, &mut be);
    assert_eq!(MsgRepr::decode(&be).expect("valid"), connreq());
}

#[test]
fn decoder_rejections() {
    assert!(matches!(
        MsgRepr::decode(&CONNREQ_LE[..5]),
        Err(Error::Truncated { need: 6, .. })
    ));
    let mut b = CONNREQ_LE;
    b[0] = 0;
    assert!(matches!(MsgRepr::decode(&b), Err(Error::BadMagic(_))));
    let mut b = CONNREQ_LE;
    b[..4].copy_from_slice(&LNET_PROTO_MAGIC.to_le_bytes());
    assert_eq!(MsgRepr::decode(&b), Err(Error::ProtoMagic));
    let mut b = CONNREQ_LE;
    b[4] = 0x13;
    assert_eq!(MsgRepr::decode(&b), Err(Error::BadVersion(0x13)));
    assert!(matches!(
        MsgRepr::decode(&CONNREQ_LE[..40]),
        Err(Error::Truncated { need: 48, .. })
    ));
    // nob larger than received
    assert!(matches!(
        MsgRepr::decode(&CONNREQ_LE[..50]),
        Err(Error::BadNob { nob: 56, have: 50 })
    ));
    // nob shorter than the type's fixed part
    let mut b = CONNREQ_LE;
    b[8] = 50;
    assert!(matches!(
        MsgRepr::decode(&b),
        Err(Error::ShortForType { need: 56, .. })
    ));
    let mut b = CONNREQ_LE;
    b[6] = 0xd8;
    assert_eq!(MsgRepr::decode(&b), Err(Error::UnknownType(0xd8)));
    let mut b = CONNREQ_LE;
    b[16..24].fill(0xff);
    assert_eq!(MsgRepr::decode(&b), Err(Error::AnySrcNid));
}

#[test]
fn rdma_descriptor_counts_are_checked() {
    let m = base(Body::PutAck {
        src_cookie: 1,
        dst_cookie: 2,
        rd: RdmaDesc {
            key: 1,
            frags: vec![RdmaFrag { nob: 1, addr: 1 }],
        },
    });
    let mut out = [0u8; 128];
    let n = m.emit(Endian::Little, &mut out).expect("emit");
    for bad in [0u32, 258, u32::MAX] {
        let mut b = out;
        b[68..72].copy_from_slice(&bad.to_le_bytes());
        assert_eq!(MsgRepr::decode(&b[..n]), Err(Error::BadFragCount(bad)));
    }
    // Two fragments announced, one present.
    let mut b = out;
    b[68] = 2;
    assert!(matches!(
        MsgRepr::decode(&b[..n]),
        Err(Error::ShortForType { need: 96, .. })
    ));
    // Emitting an empty descriptor is refused.
    let m = base(Body::PutAck {
        src_cookie: 1,
        dst_cookie: 2,
        rd: RdmaDesc::default(),
    });
    assert!(matches!(
        m.emit(Endian::Little, &mut out),
        Err(Error::Invalid(_))
    ));
}

#[test]
fn emit_refuses_short_buffers_and_oversized_messages() {
    let mut out = [0u8; 55];
    assert_eq!(
        connreq().emit(Endian::Little, &mut out),
        Err(Error::NoRoom { need: 56, have: 55 })
    );
    let m = base(Body::Immediate {
        hdr: put_hdr(3977),
        payload_len: 3977,
    });
    let mut big = vec![0u8; 8192];
    assert!(matches!(
        m.emit(Endian::Little, &mut big),
        Err(Error::Invalid(_))
    ));
}

#[test]
fn reject_golden_and_short_v1() {
    let r = RejRepr {
        version: VERSION_2,
        why: RejectReason::MSG_QUEUE_SIZE,
        incarnation: Some(0x1122),
        cp: Some(ConnParams {
            queue_depth: 8,
            max_frags: 257,
            max_msg_size: 4096,
        }),
    };
    let mut out = [0u8; 24];
    r.emit(Endian::Little, &mut out).expect("emit");
    assert_eq!(
        out,
        [
            0x91, 0x1b, 0xe9, 0x0b, 0x12, 0x00, 0x07, 0x00, 0x22, 0x11, 0, 0, 0, 0, 0, 0, 0x08,
            0x00, 0x01, 0x01, 0x00, 0x10, 0x00, 0x00
        ]
    );
    assert_eq!(RejRepr::parse(&out), Ok((r, Endian::Little)));
    let mut be = [0u8; 24];
    r.emit(Endian::Big, &mut be).expect("emit");
    assert_eq!(RejRepr::parse(&be), Ok((r, Endian::Big)));
    let (short, _) = RejRepr::parse(&out[..8]).expect("short");
    assert_eq!(short.why, RejectReason::MSG_QUEUE_SIZE);
    assert_eq!(short.incarnation, None);
    assert!(RejRepr::parse(&out[..7]).is_err());
    for (v, n) in [
        (1, "CONN_RACE"),
        (2, "NO_RESOURCES"),
        (3, "FATAL"),
        (4, "CONN_UNCOMPAT"),
        (5, "CONN_STALE"),
        (6, "RDMA_FRAGS"),
        (7, "MSG_QUEUE_SIZE"),
        (8, "INVALID_SRV_ID"),
        (9, "EARLY"),
    ] {
        assert_eq!(RejectReason(v).name(), n);
    }
}

#[test]
fn nid_hash_reads_the_address_from_big_endian_storage() {
    let h = nid_hash(A);
    if cfg!(target_endian = "little") {
        assert_eq!(h, 0x0005_0000 ^ 0x0A01_A8C0);
    }
    assert_ne!(nid_hash(A), nid_hash(B));
}

#[test]
fn decoder_never_panics_on_mutations() {
    // Every truncation and single-byte corruption of every message type.
    let mut seeds = vec![CONNREQ_LE.to_vec()];
    let m = base(Body::GetReq {
        hdr: put_hdr(0),
        cookie: 5,
        rd: RdmaDesc {
            key: 1,
            frags: vec![RdmaFrag { nob: 1, addr: 2 }; 3],
        },
    });
    let mut out = vec![0u8; 512];
    let n = m.emit(Endian::Big, &mut out).expect("emit");
    seeds.push(out[..n].to_vec());
    for s in seeds {
        for cut in 0..=s.len() {
            let _ = MsgRepr::decode(&s[..cut]);
            let _ = RejRepr::parse(&s[..cut]);
        }
        for i in 0..s.len() {
            for v in [0u8, 1, 0x7f, 0x80, 0xff] {
                let mut b = s.clone();
                b[i] = v;
                if let Ok(r) = MsgRepr::decode(&b) {
                    let mut o = vec![0u8; MSG_SIZE];
                    let e = Msg::new_checked(&b[..]).expect("view").endian();
                    if let Ok(k) = r.emit(e, &mut o) {
                        assert_eq!(MsgRepr::decode(&o[..k]).expect("own"), r);
                    }
                }
            }
        }
    }
}

#[test]
fn fuzz_seed_corpus_decodes() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/o2ib_msg");
    let mut n = 0;
    for ent in std::fs::read_dir(&dir).expect("corpus dir") {
        let p = ent.expect("entry").path();
        let b = std::fs::read(&p).expect("seed");
        let name = p
            .file_name()
            .and_then(|s| s.to_str())
            .unwrap_or("")
            .to_string();
        if name.len() == 40 && name.bytes().all(|c| c.is_ascii_hexdigit()) {
            // An input the fuzzer found (named by its SHA-1): it need not
            // decode, only not panic.
            let _ = MsgRepr::decode(&b);
            let _ = RejRepr::parse(&b);
            continue;
        }
        if name.starts_with("rej_") {
            RejRepr::parse(&b).unwrap_or_else(|e| panic!("{name}: {e}"));
        } else {
            MsgRepr::decode(&b).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        n += 1;
    }
    assert!(n >= 20, "{n} named seeds");
}
