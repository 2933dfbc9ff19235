//! Off means free: with the fault filter stacked and no rule (and with a
//! rule that never matches the traffic), the data path allocates nothing
//! per message.

use std::alloc::System;
use std::sync::{Arc, Mutex};

use lnd_api::abi_stable::std_types::ROption;
use lnd_api::{
    lnd_type, Completion, FilterHandle, Hdr, Host, HostHandle, IoBuf, Lnd, LndError, LndHandle,
    LndNi, LndNiHandle, LogLevel, MsgToken, MsgType, NetId, NetTunables, NiConfig, NiInfo,
    NiStarted, Nid, Payload, PayloadSpan, RxAction, RxToken, TxMsg,
};
use lnd_fault::FaultFilter;
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};

// One test only in this file: the allocator counts the whole process.
#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const TCP: NetId = NetId::new(lnd_type::SOCKLND, 0);

struct Inner(Arc<Mutex<Option<HostHandle>>>);
struct InnerNi;
struct Engine;

impl Lnd for Inner {
    fn startup(&self, cfg: NiConfig, host: HostHandle) -> Result<NiStarted, LndError> {
        *self.0.lock().expect("host") = Some(host);
        Ok(NiStarted {
            info: NiInfo {
                nid: Nid::new4(cfg.net, 2),
                interfaces: Vec::new().into(),
                tunables: NetTunables::UNSET,
                lnd_tunables: Vec::new().into(),
                timeout_secs: 50,
            },
            ni: LndNiHandle::new(InnerNi),
        })
    }
}

impl LndNi for InnerNi {
    fn send(&self, _: TxMsg) -> Result<(), LndError> {
        Ok(())
    }
    fn send_span(&self, _: TxMsg, _: PayloadSpan) -> Result<(), LndError> {
        Ok(())
    }
    fn recv(&self, _: RxAction) -> Result<(), LndError> {
        Ok(())
    }
    fn recv_span(&self, _: RxAction, _: PayloadSpan) -> Result<(), LndError> {
        Ok(())
    }
    fn shutdown(&self) {}
}

impl Host for Engine {
    fn parse(&self, _: Hdr, _: Nid, _: RxToken, _: bool) -> Result<(), LndError> {
        Ok(())
    }
    fn finalize(&self, _: MsgToken, _: Completion) {}
    fn notify(&self, _: Nid, _: bool) {}
    fn link_state(&self, _: bool) {}
    fn log(&self, _: LogLevel, _: &str) {}
}

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
    let host = Arc::new(Mutex::new(None));
    let lnd = LndHandle::new(Inner(host.clone()));
    let cfg = NiConfig {
        net: TCP,
        interfaces: Vec::new().into(),
        tunables: NetTunables::UNSET,
        lnd_tunables: Vec::new().into(),
        params: Vec::new().into(),
        pid: 1,
    };
    let started = FilterHandle::new(filter.clone())
        .startup(&lnd, cfg, HostHandle::new(Engine))
        .expect("startup");
    let lnd_host = host.lock().expect("host").clone().expect("started");
    let span = PayloadSpan::from(IoBuf::from_vec(vec![0; 4096]));
    let hdr = Hdr {
        dest_nid: Nid::new4(TCP, 3),
        src_nid: Nid::new4(TCP, 2),
        dest_pid: 0,
        src_pid: 0,
        msg_type: MsgType::PUT,
        payload_length: 4096,
        body: [0; lnd_api::hdr::BODY_SIZE],
    };
    let traffic = || {
        for i in 0..1000 {
            let tx = TxMsg {
                token: MsgToken(i),
                hdr,
                target: hdr.dest_nid,
                target_pid: 0,
                payload: Payload::new(),
                rx: ROption::RNone,
            };
            started.ni.send_span(tx, span.clone()).expect("send");
            lnd_host
                .parse(hdr, hdr.src_nid, RxToken(i), false)
                .expect("parse");
            lnd_host.finalize(MsgToken(i), Completion::OK);
        }
    };
    // The counter sees allocations of this thread.
    assert!(count(|| drop(std::hint::black_box(vec![1u8; 16]))) > 0);
    let none = count(traffic);
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
    let unmatched = count(traffic);
    assert_eq!(unmatched, 0, "rules that do not match");
    println!(
        "off-free: allocations over 1000 messages (send, header, completion): {none} with no \
         rule, {unmatched} with three rules that do not match"
    );
}
