//! Off means free: with the fault filter stacked and no rule (and with a
//! rule that never matches the traffic), the data path allocates nothing
//! per message.

use std::alloc::System;
use std::sync::Arc;

use lnd_fault::FaultFilter;
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};

mod common;
use common::{stack, traffic};

// One test only in this file: the allocator counts the whole process.
#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Allocations during `f` (1000 messages), the least of three runs: the
/// counter is process-wide and the test harness's own thread may allocate
/// now and then; an allocation per message would show in every run.
fn count(f: impl Fn()) -> usize {
    f(); // warm up
    (0..3)
        .map(|_| {
            let region = Region::new(GLOBAL);
            f();
            let c = region.change();
            c.allocations + c.reallocations
        })
        .min()
        .unwrap_or(usize::MAX)
}

#[test]
fn no_allocation_per_message_without_a_matching_rule() {
    let filter = FaultFilter::with_clock(1, Arc::new(std::time::Duration::default), false);
    let s = stack(&filter);
    let messages = || traffic(&s, 1000);
    // The counter sees allocations of this thread.
    assert!(count(|| drop(std::hint::black_box(vec![1u8; 16]))) > 0);
    let none = count(messages);
    assert_eq!(none, 0, "no rule");
    // Rules that never match this traffic (another source net).
    filter
        .control("drop_add", "src=*@tcp9 dst=<?> rate=1")
        .expect("add");
    filter
        .control("delay_add", "src=*@tcp9 dst=<?> rate=1 latency=1")
        .expect("add");
    filter
        .control("drop_add", "src=*@tcp9 dst=<?> rate=1 health_mask=0x20")
        .expect("add");
    let unmatched = count(messages);
    assert_eq!(unmatched, 0, "rules that do not match");
    println!(
        "off-free: allocations over 1000 messages (send, header, completion): {none} with no \
         rule, {unmatched} with three rules that do not match"
    );
}
