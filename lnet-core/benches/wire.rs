//! Wire format benchmarks: LNet header encode/decode (classic and large NID)
//! and ping buffer parsing. Run with `cargo bench -p lnet-core --bench wire`.

#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use lnd_api::nid::{NetId, Nid};
use lnet_core::wire::{
    Hdr, NiStatus, PingInfo, PutBody, WireHandle, HDR_NID16_SIZE, HDR_NID4_SIZE,
    LNET_INTERFACES_MAX_DEFAULT, LNET_NI_STATUS_UP, LNET_PID_LUSTRE, LNET_PING_FEAT_DISCOVERY,
    LNET_PING_FEAT_MULTI_RAIL,
};

fn put_hdr(dest: Nid, src: Nid) -> Hdr {
    Hdr::put(
        dest,
        src,
        LNET_PID_LUSTRE,
        LNET_PID_LUSTRE,
        4096,
        PutBody {
            ack_wmd: WireHandle {
                interface_cookie: 1,
                object_cookie: 2,
            },
            match_bits: 0x1234,
            hdr_data: 0,
            ptl_index: 4,
            offset: 0,
        },
    )
}

fn headers(c: &mut Criterion) {
    let tcp = NetId::new(2, 0);
    let h4 = put_hdr(Nid::new4(tcp, 0xC0A8_0114), Nid::new4(tcp, 0xC0A8_010A));
    let mut b4 = [0u8; HDR_NID4_SIZE];
    h4.encode_nid4(&mut b4).expect("classic nids");

    let mut a = [0u8; 16];
    a[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
    a[15] = 1;
    let h16 = put_hdr(
        Nid::new16(NetId::new(2, 1), a),
        Nid::new16(NetId::new(2, 1), a),
    );
    let mut b16 = [0u8; HDR_NID16_SIZE];
    h16.encode_nid16(&mut b16);

    c.bench_function("hdr_nid4_encode", |b| {
        let mut out = [0u8; HDR_NID4_SIZE];
        b.iter(|| black_box(&h4).encode_nid4(black_box(&mut out)))
    });
    c.bench_function("hdr_nid4_decode", |b| {
        b.iter(|| Hdr::decode_nid4(black_box(&b4)))
    });
    c.bench_function("hdr_nid16_encode", |b| {
        let mut out = [0u8; HDR_NID16_SIZE];
        b.iter(|| black_box(&h16).encode_nid16(black_box(&mut out)))
    });
    c.bench_function("hdr_nid16_decode", |b| {
        b.iter(|| Hdr::decode_nid16(black_box(&b16)))
    });
}

fn ping_info(c: &mut Criterion) {
    let tcp = NetId::new(2, 0);
    let mut nis: Vec<NiStatus> = (1..=4)
        .map(|i| NiStatus::new(Nid::new4(tcp, 0x0A00_0000 + i), LNET_NI_STATUS_UP))
        .collect();
    let small = PingInfo::new(
        LNET_PID_LUSTRE,
        LNET_PING_FEAT_MULTI_RAIL | LNET_PING_FEAT_DISCOVERY,
        3,
        &nis,
    )
    .to_vec()
    .expect("emit");
    let mut a = [0u8; 16];
    a[0] = 0xfd;
    for i in 0..4u8 {
        a[15] = i;
        nis.push(NiStatus::new(
            Nid::new16(NetId::new(2, 1), a),
            LNET_NI_STATUS_UP,
        ));
    }
    let large = PingInfo::new(LNET_PID_LUSTRE, LNET_PING_FEAT_MULTI_RAIL, 3, &nis)
        .to_vec()
        .expect("emit");

    c.bench_function("ping_info_parse_4_classic", |b| {
        b.iter(|| PingInfo::parse(black_box(&small), LNET_INTERFACES_MAX_DEFAULT))
    });
    c.bench_function("ping_info_parse_4_classic_4_large", |b| {
        b.iter(|| PingInfo::parse(black_box(&large), LNET_INTERFACES_MAX_DEFAULT))
    });
}

criterion_group!(benches, headers, ping_info);
criterion_main!(benches);
