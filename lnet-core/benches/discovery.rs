//! Discovery at scale (issue #12 item 6): N engines with 4 NIs each on the
//! in-memory pump; node 0 discovers every other node at once (a ping and a
//! push each; every target learns node 0 back from its push). Prints the
//! wall time and the net heap bytes a peer with 4 peer NIs costs (both
//! sides of every discovery hold one such peer), for N = 250, 500, 1000,
//! so the per-peer cost can be seen to stay flat; criterion times N = 200.
//! Run with `cargo bench -p lnet-core --bench discovery`.

#![allow(missing_docs)]

#[path = "../tests/pump/mod.rs"]
mod pump;

use std::alloc::System;
use std::time::Instant as WallInstant;

use criterion::{criterion_group, criterion_main, Criterion};
use lnet_core::lnd_api::Nid;
use lnet_core::Event;
use pump::{nid, Fabric, TCP};
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// N nodes with 4 NIs each.
fn fabric(n: usize) -> Fabric {
    let mut f = Fabric::new(n);
    for i in 0..n {
        for k in 1..4u32 {
            f.add_ni(i, Nid::new4(TCP, 0x0b00_0000 + (i as u32) * 4 + k));
        }
    }
    f
}

/// Node 0 discovers nodes 1..n; returns how many succeeded.
fn discover_all(f: &mut Fabric) -> usize {
    let n = f.nodes.len();
    let now = f.now;
    for j in 1..n {
        f.nodes[0]
            .lnet
            .discover(now, nid(j), false)
            .expect("discover");
    }
    f.run();
    f.take_events(0)
        .iter()
        .filter(|e| matches!(e, Event::DiscoverDone { result: Ok(_), .. }))
        .count()
}

fn report() {
    println!("discovery at scale: node 0 discovers N-1 nodes with 4 NIs each");
    println!(
        "{:>6} {:>10} {:>14} {:>16}",
        "N", "ok", "time (ms)", "bytes per peer"
    );
    for n in [250usize, 500, 1000] {
        let mut f = fabric(n);
        let region = Region::new(GLOBAL);
        let t = WallInstant::now();
        let ok = discover_all(&mut f);
        let ms = t.elapsed().as_secs_f64() * 1e3;
        let s = region.change();
        let net =
            s.bytes_allocated as i64 - s.bytes_deallocated as i64 + s.bytes_reallocated as i64;
        // Node 0 holds n-1 peers and each target one (node 0).
        let peers = 2 * (n as i64 - 1);
        assert_eq!(ok, n - 1, "every discovery succeeded");
        let peer0 = f.nodes[0].lnet.peer(&nid(1)).expect("peer");
        assert_eq!(peer0.peer_nis().count(), 4, "all 4 NIDs merged");
        println!("{n:>6} {ok:>10} {ms:>14.1} {:>16}", net / peers);
    }
}

fn bench(c: &mut Criterion) {
    report();
    let mut g = c.benchmark_group("discovery");
    g.sample_size(10);
    g.bench_function("node 0 discovers 199 nodes with 4 NIs", |b| {
        b.iter_batched(
            || fabric(200),
            |mut f| assert_eq!(discover_all(&mut f), 199),
            criterion::BatchSize::LargeInput,
        )
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
