//! Engine benchmarks: ME matching on a long list, PUT+ACK round trips between
//! two engines through the in-memory pump, and heap allocations per message
//! (engine alone, engines with the pump; the node runtime with the `lo` LND:
//! lnetd's `benches/node.rs`).
//! Run with `cargo bench -p lnet-core --bench engine`.

#![allow(missing_docs)]

#[path = "../tests/pump/mod.rs"]
mod pump;

#[path = "../tests/alloc_paths/mod.rs"]
mod alloc_paths;

use std::alloc::System;
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use lnet_core::lnd_api::hdr::PutBody;
use lnet_core::lnd_api::{Completion, Hdr, IoBuf, Payload, RxToken, WireHandle};
use lnet_core::{
    AckReq, Config, InsPos, Instant, LndOp, Lnet, MdOptions, MdSpec, ProcessId, Threshold, Unlink,
};
use pump::{ni_info, nid, pid, Fabric, TCP};
use stats_alloc::{StatsAlloc, INSTRUMENTED_SYSTEM};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const MES: u64 = 10_000;

/// An engine whose portal 7 holds 10 000 MEs; the matching one is last.
fn matching_engine(ignore_bits: u64) -> (Lnet, lnet_core::NiId) {
    let now = Instant::from_secs(1);
    let mut l = Lnet::new(Config::new(12345, 1, 0), now);
    let ni = l.ni_add(now, TCP, &ni_info(nid(0), 256, 8)).expect("ni");
    for bits in 0..MES {
        // With ignore bits every ME lives on the one list searched in order;
        // without, each sits in the bucket of its exact bits.
        let me = l
            .me_attach(
                7,
                ProcessId::ANY,
                bits << 8,
                ignore_bits,
                Unlink::Retain,
                InsPos::After,
            )
            .expect("me");
        // MANAGE_REMOTE: every PUT lands at offset 0, so each one is received.
        let spec = MdSpec::new(
            Payload::single(IoBuf::zeroed(64)),
            MdOptions::OP_PUT | MdOptions::MANAGE_REMOTE,
            Threshold::Infinite,
        );
        l.md_attach(me, spec, Unlink::Retain).expect("md");
    }
    (l, ni)
}

fn put_hdr(bits: u64) -> Hdr {
    let body = PutBody {
        ack_wmd: WireHandle::NONE,
        match_bits: bits,
        hdr_data: 0,
        ptl_index: 7,
        offset: 0,
    };
    Hdr::put(nid(0), nid(1), 12345, 12345, 64, body)
}

/// One incoming PUT: parse, match, receive, finalize.
fn receive_one(l: &mut Lnet, ni: lnet_core::NiId, hdr: Hdr) {
    let now = Instant::from_secs(1);
    l.handle_rx(now, ni, hdr, nid(1), RxToken(1), false)
        .expect("parse");
    while let Some(op) = l.poll_lnd() {
        if let LndOp::Recv { rx, .. } = op {
            if let Some(m) = rx.msg.into_option() {
                l.handle_done(now, m, Completion::OK);
            }
        }
    }
    let mut got = 0;
    while let Some(ev) = l.poll_event() {
        black_box(&ev);
        got += 1;
    }
    assert_eq!(got, 1, "every PUT is received and reported");
}

fn bench_matching(c: &mut Criterion) {
    let mut g = c.benchmark_group("match_10000_mes");
    g.throughput(Throughput::Elements(1));
    let (mut l, ni) = matching_engine(0);
    let last = (MES - 1) << 8;
    g.bench_function("exact_bits_hashed", |b| {
        b.iter(|| receive_one(&mut l, ni, put_hdr(black_box(last))))
    });
    let (mut l, ni) = matching_engine(0xff);
    g.bench_function("ignore_bits_list_walk", |b| {
        b.iter(|| receive_one(&mut l, ni, put_hdr(black_box(last | 0x5))))
    });
    g.finish();
}

fn target(f: &mut Fabric, len: usize) {
    let me = f.nodes[1]
        .lnet
        .me_attach(4, ProcessId::ANY, 1, 0, Unlink::Retain, InsPos::After)
        .expect("me");
    let spec = MdSpec::new(
        Payload::single(IoBuf::zeroed(len)),
        MdOptions::OP_PUT | MdOptions::MANAGE_REMOTE,
        Threshold::Infinite,
    );
    f.nodes[1]
        .lnet
        .md_attach(me, spec, Unlink::Retain)
        .expect("md");
}

fn round_trip(f: &mut Fabric, src: &Payload) {
    let spec = MdSpec::new(src.clone(), MdOptions::NONE, Threshold::Count(2));
    let md = f.nodes[0].lnet.md_bind(spec, Unlink::Unlink).expect("bind");
    let now = f.now;
    f.nodes[0]
        .lnet
        .put(now, None, md, AckReq::Ack, pid(1), 4, 1, 0, 0)
        .expect("put");
    f.run();
    f.nodes[0].events.clear();
    f.nodes[1].events.clear();
}

fn bench_put_ack(c: &mut Criterion) {
    let mut g = c.benchmark_group("put_ack_round_trip");
    g.throughput(Throughput::Elements(1));
    for len in [0usize, 4096, 1 << 20] {
        let mut f = Fabric::new(2);
        target(&mut f, len.max(1));
        let src = Payload::single(IoBuf::zeroed(len));
        g.bench_function(format!("{len}B"), |b| b.iter(|| round_trip(&mut f, &src)));
    }
    g.finish();
}

/// Heap allocations per message on the steady-state paths (after a warm-up,
/// so slabs, queues and maps have their capacity): the engine alone and
/// two engines with the pump. The floor
/// is one allocation per payload-bearing hand-over to an LND (the fragment
/// list of `lnd_api::Payload`, an `RVec` in the frozen ABI); `tests/alloc.rs`
/// asserts these numbers.
fn allocations_per_message(_c: &mut Criterion) {
    let (warmup, n) = (200, 2000);
    let report = |what: &str, step: &mut dyn FnMut()| {
        let s = alloc_paths::measure(GLOBAL, warmup, n, step);
        eprintln!(
            "{what}: allocations per message: {} ({} reallocations, {:.0} bytes)",
            s.allocations, s.reallocations, s.bytes
        );
    };
    for len in [0usize, 4096] {
        report(
            &format!("engine alone, PUT receive {len} B"),
            &mut alloc_paths::engine_put_receive(len),
        );
    }
    // The 10 000-ME portal of the matching benchmark.
    let (mut l, ni) = matching_engine(0);
    let last = (MES - 1) << 8;
    report(
        "engine alone, PUT receive 64 B, 10 000 exact-bits MEs",
        &mut || receive_one(&mut l, ni, put_hdr(last)),
    );
    for len in [0usize, 4096, 1 << 20] {
        report(
            &format!("engines + pump, PUT+ACK round trip {len} B (per round trip)"),
            &mut alloc_paths::engine_put_ack(len),
        );
        report(
            &format!("engines + pump, GET+REPLY round trip {len} B (per round trip)"),
            &mut alloc_paths::engine_get_reply(len),
        );
    }
    report(
        "engines + pump, PUT+ACK to a Multi-Rail peer, 16 x 4096 B (per round trip)",
        &mut alloc_paths::engine_put_ack_mr(16 * 4096, 16),
    );
    report(
        "engines + pump, PUT+ACK into a use-once ME+MD 4096 B, the application's MD Payload included (per round trip)",
        &mut alloc_paths::engine_put_ack_use_once_me(4096),
    );
    let s = alloc_paths::measure(
        GLOBAL,
        20,
        100,
        &mut alloc_paths::engine_put_ack_window(4096, 64),
    );
    eprintln!(
        "engines + pump, 64 PUT+ACK round trips in flight 4096 B: allocations per message: {} (per round trip)",
        s.allocations / 64.0
    );
}

criterion_group!(
    benches,
    bench_matching,
    bench_put_ack,
    allocations_per_message
);
criterion_main!(benches);
