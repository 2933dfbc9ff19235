//! Optimized GETs with the sink MD handed over (lnd-api 1.3's GET_SINK):
//! the target RDMA-writes the REPLY's data straight into the initiator's
//! MD, which the REPLY's receive then names, so nothing is copied at
//! `recv`. The initiator's host here does what LNet does with an LND that
//! asks for sinks: it passes the MD with the GET and receives the REPLY
//! into the same MD.

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use lnd_api::abi_stable::std_types::ROption;
use lnd_api::hdr::GetBody;
use lnd_api::{
    errno, Completion, Hdr, HostHandle, IoBuf, LndError, LndHandle, LndNiHandle, LogLevel,
    MsgToken, MsgType, Nid, Payload, PayloadSpan, RxAction, RxToken, TxMsg, WireHandle,
};
use lnd_o2ib::O2ibLnd;
use support::*;

const T: Duration = Duration::from_secs(30);
/// REPLY receive tokens: the GET's token with this bit.
const REPLY_BIT: u64 = 1 << 50;

#[derive(Default)]
struct St {
    ni: Option<LndNiHandle>,
    /// GET token -> the sink MD the REPLY lands in.
    sinks: HashMap<u64, PayloadSpan>,
    /// Finalized tokens.
    done: HashMap<u64, Completion>,
}

/// The initiator's host: REPLYs are received into their GET's MD.
#[derive(Clone, Default)]
struct Initiator(Arc<(Mutex<St>, Condvar)>);

impl Initiator {
    fn st(&self) -> std::sync::MutexGuard<'_, St> {
        self.0 .0.lock().unwrap_or_else(|p| p.into_inner())
    }
    fn wait(&self, tok: u64) -> Completion {
        let deadline = Instant::now() + T;
        let mut st = self.st();
        loop {
            if let Some(c) = st.done.get(&tok) {
                return *c;
            }
            assert!(Instant::now() < deadline, "token {tok:#x} never finalized");
            st = self
                .0
                 .1
                .wait_timeout(st, Duration::from_millis(50))
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}

impl lnd_api::Host for Initiator {
    fn parse(&self, hdr: Hdr, _from: Nid, rx: RxToken, _rdma: bool) -> Result<(), LndError> {
        if hdr.msg_type != MsgType::REPLY {
            return Err(LndError::new(
                errno::EPROTO,
                "the initiator takes REPLYs only",
            ));
        }
        let tok = reply_token(&hdr);
        let (ni, sink) = {
            let st = self.st();
            (st.ni.clone(), st.sinks.get(&tok).cloned())
        };
        let (Some(ni), Some(sink)) = (ni, sink) else {
            return Err(LndError::new(errno::EPROTO, "REPLY for an unknown GET"));
        };
        let mlen = (hdr.payload_length as usize).min(sink.len());
        let window = sink.sub(0, mlen).expect("inside the MD");
        ni.recv_span(
            RxAction {
                rx,
                msg: ROption::RSome(MsgToken(tok | REPLY_BIT)),
                payload: Payload::new(),
                rlen: hdr.payload_length,
                delayed: false,
            },
            window,
        )
    }
    fn finalize(&self, msg: MsgToken, status: Completion) {
        self.st().done.insert(msg.0, status);
        self.0 .1.notify_all();
    }
    fn notify(&self, _: Nid, _: bool) {}
    fn link_state(&self, _: bool) {}
    fn log(&self, _: LogLevel, _: &str) {}
}

fn get_tx(from: Nid, to: Nid, token: u64, sink: usize) -> TxMsg {
    let hdr = Hdr::get(
        to,
        from,
        PID,
        PID,
        GetBody {
            return_wmd: WireHandle {
                interface_cookie: 0x1f,
                object_cookie: token,
            },
            match_bits: token,
            ptl_index: 4,
            src_offset: 0,
            sink_length: sink as u32,
        },
    );
    TxMsg {
        token: MsgToken(token),
        hdr,
        target: to,
        target_pid: PID,
        payload: Payload::new(),
        rx: ROption::RNone,
    }
}

fn stat(ni: &LndNiHandle, name: &str) -> u64 {
    let s = ni.ctl("stats", "").expect("stats");
    s.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {s}"))
}

/// An MD of `len` bytes in three fragments, all 0xee.
fn md(len: usize) -> PayloadSpan {
    let p: Payload = fragments(len).into_iter().collect();
    p.write_at(0, &vec![0xee; len]).expect("fresh");
    PayloadSpan::from(p)
}

fn bytes(s: &PayloadSpan) -> Vec<u8> {
    let mut v = vec![0; s.len()];
    s.read_at(0, &mut v).expect("free");
    v
}

#[test]
fn the_reply_lands_in_the_gets_md_with_no_copy() {
    // What the plugin declares (tests/plugin.rs checks the .so offers it).
    assert_eq!(lnd_o2ib::GET_SINK_MIN, 3977);
    let lnd = LndHandle::new(O2ibLnd).with_get_sink_min(Some(lnd_o2ib::GET_SINK_MIN));
    let port = test_port();
    let p = params(port);
    let host = Initiator::default();
    let a = lnd
        .startup(
            config(O2IB, "127.0.0.1", &p, &[]),
            HostHandle::new(host.clone()),
        )
        .expect("start A");
    host.st().ni = Some(a.ni.clone());
    let (a_ni, a_nid) = (a.ni, a.info.nid);
    let b = start("B", config(O2IB, "127.0.0.2", &p, &[]), RecvMode::Sync).expect("start B");

    // (sink, bytes B has): the last REPLY is shorter than its sink.
    let cases = [
        (3977, 3977),
        (4096, 4096),
        (65536, 65536),
        (1 << 20, 1 << 20),
        (300_000, 123_457),
    ];
    let mut next = 1u64;
    for (i, &(sink, have)) in cases.iter().enumerate() {
        let seed = 70 + i as u8;
        b.host.set_mode(RecvMode::Reply { len: have, seed });
        let tok = next;
        next += 1;
        let m = md(sink);
        host.st().sinks.insert(tok, m.clone());
        a_ni.send_span(get_tx(a_nid, b.nid(), tok, sink), m.clone())
            .expect("send GET with its sink");
        assert!(host.wait(tok).is_ok(), "GET of {sink}");
        assert!(host.wait(tok | REPLY_BIT).is_ok(), "REPLY of {sink}");
        let got = bytes(&m);
        assert!(
            got[..have] == pattern(have, seed)[..],
            "REPLY of {have} differs"
        );
        assert!(
            got[have..].iter().all(|&b| b == 0xee),
            "past the REPLY touched"
        );
    }
    assert_eq!(stat(&a_ni, "rdma_gets"), 5);
    assert_eq!(stat(&a_ni, "rdma_gets_direct"), 5);
    assert_eq!(stat(&a_ni, "rdma_gets_copied"), 0, "no staging copy");

    // The same MD again: its registration is found in the cache.
    let m = md(65536);
    let regs = stat(&a_ni, "registrations");
    for _ in 0..3 {
        b.host.set_mode(RecvMode::Reply {
            len: 65536,
            seed: 9,
        });
        let tok = next;
        next += 1;
        host.st().sinks.insert(tok, m.clone());
        a_ni.send_span(get_tx(a_nid, b.nid(), tok, 65536), m.clone())
            .expect("send GET");
        assert!(host.wait(tok | REPLY_BIT).is_ok());
    }
    assert_eq!(stat(&a_ni, "registrations"), regs + 1, "registered once");
    assert!(bytes(&m) == pattern(65536, 9));

    // A host without GET_SINK (no payload with the GET): the REPLY goes
    // through a staging buffer and is copied into the MD at `recv`.
    b.host.set_mode(RecvMode::Reply {
        len: 50_000,
        seed: 3,
    });
    let tok = next;
    next += 1;
    let m = md(50_000);
    host.st().sinks.insert(tok, m.clone());
    a_ni.send_span(get_tx(a_nid, b.nid(), tok, 50_000), PayloadSpan::new())
        .expect("send GET without its sink");
    assert!(host.wait(tok | REPLY_BIT).is_ok());
    assert!(bytes(&m) == pattern(50_000, 3));
    assert_eq!(stat(&a_ni, "rdma_gets_copied"), 1);
    assert_eq!(stat(&a_ni, "rdma_gets_direct"), 8);

    // A sink shorter than the header's sink_length is the host's error.
    let e = a_ni
        .send_span(
            get_tx(a_nid, b.nid(), next, 10_000),
            PayloadSpan::from(IoBuf::zeroed(9_999)),
        )
        .expect_err("short sink refused");
    assert_eq!(e.errno, errno::EINVAL);
    assert!(e.message.contains("sink of 9999 bytes"), "{e}");

    a_ni.shutdown();
    b.shutdown();
}
