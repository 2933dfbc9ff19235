//! The fault filter stacked on a do-nothing LND under a do-nothing engine,
//! and the traffic the "off means free" tests drive through it
//! (`alloc.rs`, `off_free.rs`): whatever the traffic costs is the filter's.
#![allow(dead_code, unreachable_pub, missing_docs)]

use std::sync::{Arc, Mutex};

use lnd_api::abi_stable::std_types::ROption;
use lnd_api::{
    lnd_type, Completion, FilterHandle, Hdr, Host, HostHandle, IoBuf, Lnd, LndError, LndHandle,
    LndNi, LndNiHandle, LogLevel, MsgToken, MsgType, NetId, NetTunables, NiConfig, NiInfo,
    NiStarted, Nid, Payload, PayloadSpan, RxAction, RxToken, TxMsg,
};
use lnd_fault::FaultFilter;

pub const TCP: NetId = NetId::new(lnd_type::SOCKLND, 0);

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

/// The filter stacked on a do-nothing LND, under a do-nothing engine, with
/// the message the traffic repeats (made once, so that the traffic itself
/// allocates nothing).
pub struct Stack {
    ni: LndNiHandle,
    lnd_host: HostHandle,
    span: PayloadSpan,
    hdr: Hdr,
}

/// Stacks `filter` on a do-nothing LND (one NI on [`TCP`]).
pub fn stack(filter: &FaultFilter) -> Stack {
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
    Stack {
        ni: started.ni,
        lnd_host,
        span: PayloadSpan::from(IoBuf::from_vec(vec![0; 4096])),
        hdr: Hdr {
            dest_nid: Nid::new4(TCP, 3),
            src_nid: Nid::new4(TCP, 2),
            dest_pid: 0,
            src_pid: 0,
            msg_type: MsgType::PUT,
            payload_length: 4096,
            body: [0; lnd_api::hdr::BODY_SIZE],
        },
    }
}

/// `n` messages: a 4 KiB PUT sent, a header received, a completion.
pub fn traffic(s: &Stack, n: u64) {
    let hdr = s.hdr;
    for i in 0..n {
        let tx = TxMsg {
            token: MsgToken(i),
            hdr,
            target: hdr.dest_nid,
            target_pid: 0,
            payload: Payload::new(),
            rx: ROption::RNone,
        };
        s.ni.send_span(tx, s.span.clone()).expect("send");
        s.lnd_host
            .parse(hdr, hdr.src_nid, RxToken(i), false)
            .expect("parse");
        s.lnd_host.finalize(MsgToken(i), Completion::OK);
    }
}
