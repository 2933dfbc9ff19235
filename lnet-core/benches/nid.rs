//! NID parse and print, and NID-list matching.

// `criterion_group!` generates an undocumented function.
#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use lnet_core::nid::{Nid, NidList, ProcessId};

fn nid_parse_print(c: &mut Criterion) {
    let mut g = c.benchmark_group("nid");
    for s in [
        "192.168.122.10@tcp",
        "10.0.0.1@o2ib1",
        "2001:db8::1@tcp1",
        "12345@gni",
        "0@lo",
    ] {
        let nid: Nid = s.parse().expect("benchmark NID parses");
        g.bench_function(format!("parse {s}"), |b| {
            b.iter(|| black_box(s).parse::<Nid>())
        });
        g.bench_function(format!("print {s}"), |b| {
            b.iter(|| black_box(nid).to_string())
        });
    }
    let pid: ProcessId = "12345-192.168.122.10@tcp"
        .parse()
        .expect("benchmark process ID parses");
    g.bench_function("parse process id", |b| {
        b.iter(|| black_box("12345-192.168.122.10@tcp").parse::<ProcessId>())
    });
    g.bench_function("print process id", |b| {
        b.iter(|| black_box(pid).to_string())
    });
    g.finish();
}

fn nidlist_match(c: &mut Criterion) {
    let mut g = c.benchmark_group("nidlist");
    let text = "192.168.[0-3].[1-254/2]@tcp 10.0.0.0/8@tcp 172.16.*.*@o2ib1 \
                fd00::/64@tcp1 [0-1023/4,2000-3000]@gni *@kfi";
    let list = NidList::parse(text).expect("benchmark nidlist parses");
    g.bench_function("parse", |b| b.iter(|| NidList::parse(black_box(text))));
    g.bench_function("print", |b| b.iter(|| black_box(&list).to_string()));
    let probes: Vec<Nid> = [
        "192.168.2.101@tcp",
        "192.168.2.100@tcp",
        "10.20.30.40@tcp",
        "172.16.5.5@o2ib1",
        "fd00::42@tcp1",
        "2500@gni",
        "7@kfi",
        "1.2.3.4@o2ib",
    ]
    .iter()
    .map(|s| s.parse().expect("benchmark NID parses"))
    .collect();
    g.bench_function("match 8 NIDs", |b| {
        b.iter(|| probes.iter().filter(|n| list.matches(black_box(n))).count())
    });
    g.finish();
}

criterion_group!(benches, nid_parse_print, nidlist_match);
criterion_main!(benches);
