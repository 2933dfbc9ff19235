//! lnd-o2ib against a raw peer that speaks the protocol by hand over the
//! soft provider: a big-endian peer (CONNACK, IMMEDIATE and PUT_ACK in its
//! byte order) and a bad rkey injected in a PUT_ACK.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use lnd_api::hdr::GetBody;
use lnd_api::{Hdr, HealthStatus, IoBuf, Nid, PayloadSpan, WireHandle};
use lnd_o2ib::soft::{SoftCq, SoftDevice, SoftListener, SoftQp};
use lnd_o2ib::verbs::{Access, RecvWr, SendOp, SendWr, Sge, WcOpcode, WcStatus};
use lnd_o2ib::wire::{
    Body, ConnParams, Endian, Msg, MsgRepr, RdmaDesc, RdmaFrag, MSG_SIZE, VERSION_2,
};
use support::*;

const T: Duration = Duration::from_secs(30);
const STAMP: u64 = 0x1122_3344_5566_7788;

/// A raw o2ib peer on 127.0.0.3 that sends in big-endian.
struct Raw {
    nid4: u64,
    dev: SoftDevice,
    cq: SoftCq,
    qp: SoftQp,
    peer: u64,
    peer_stamp: u64,
    rx: PayloadSpan,
    tx: PayloadSpan,
    _mrs: Vec<lnd_o2ib::soft::SoftMr>,
    keys: (u32, u32),
}

impl Raw {
    /// Accepts one connection from the NI (which it answers big-endian).
    fn accept(l: &SoftListener) -> Raw {
        let nid4 = Nid::new4(O2IB, 0x7f00_0003).to_nid4().expect("nid4");
        let dev = SoftDevice::new();
        let cq = SoftCq::new();
        let deadline = Instant::now() + T;
        let r = loop {
            if let Some(r) = l.get_request().expect("listen") {
                break r;
            }
            assert!(Instant::now() < deadline, "no connection request");
            std::thread::sleep(Duration::from_millis(5));
        };
        let req = MsgRepr::decode(&r.private_data).expect("CONNREQ");
        let Body::ConnReq(cp) = req.body else {
            panic!("not a CONNREQ: {req:?}")
        };
        assert_eq!(cp.max_frags, 257);
        assert_eq!(cp.max_msg_size, 4096);
        assert_eq!(req.dst_nid, nid4);
        assert_eq!(req.dst_stamp, 0, "first CONNREQ knows no incarnation");
        let ack = MsgRepr {
            version: VERSION_2,
            credits: 0,
            src_nid: nid4,
            src_stamp: STAMP,
            dst_nid: req.src_nid,
            dst_stamp: req.src_stamp,
            body: Body::ConnAck(ConnParams {
                queue_depth: cp.queue_depth,
                max_frags: 257,
                max_msg_size: 4096,
            }),
        };
        let mut b = [0u8; 56];
        ack.emit(Endian::Big, &mut b).expect("emit");
        let rx = PayloadSpan::from(IoBuf::zeroed(4 * MSG_SIZE));
        let tx = PayloadSpan::from(IoBuf::zeroed(4 * MSG_SIZE));
        let rmr = dev.reg_mr(rx.clone(), Access::LOCAL_WRITE);
        let tmr = dev.reg_mr(tx.clone(), Access(0));
        let keys = (rmr.lkey(), tmr.lkey());
        let qp = r
            .accept(&dev, &cq, &b, &mut |qp| {
                for i in 0..4 {
                    qp.post_recv(RecvWr {
                        wr_id: i,
                        sge: Sge {
                            addr: i * MSG_SIZE as u64,
                            length: MSG_SIZE as u32,
                            lkey: keys.0,
                        },
                    })
                    .expect("post recv");
                }
            })
            .expect("accept");
        Raw {
            nid4,
            dev,
            cq,
            qp,
            peer: req.src_nid,
            peer_stamp: req.src_stamp,
            rx,
            tx,
            _mrs: vec![rmr, tmr],
            keys,
        }
    }

    /// The next message received (big or little endian as sent).
    fn recv(&self) -> MsgRepr {
        let deadline = Instant::now() + T;
        loop {
            for w in self.cq.poll(8) {
                if w.opcode == WcOpcode::Recv {
                    assert_eq!(w.status, WcStatus::Success);
                    let mut b = vec![0u8; w.byte_len as usize];
                    self.rx
                        .read_at(w.wr_id as usize * MSG_SIZE, &mut b)
                        .expect("read");
                    let m = Msg::new_checked(&b[..]).expect("view");
                    assert_eq!(m.endian(), Endian::NATIVE, "the NI sends in its own order");
                    return MsgRepr::parse(&m).expect("valid message");
                }
            }
            assert!(Instant::now() < deadline, "nothing received");
            self.cq.wait(Duration::from_millis(50));
        }
    }

    /// Sends `m` big-endian, with `inline` after it for an IMMEDIATE.
    fn send(&self, m: &MsgRepr, inline: &[u8]) {
        let mut b = vec![0u8; MSG_SIZE];
        let n = m.emit(Endian::Big, &mut b).expect("emit");
        b[120..120 + inline.len()].copy_from_slice(inline);
        self.tx.write_at(0, &b[..n]).expect("write");
        self.qp
            .post_send(SendWr {
                wr_id: 100,
                op: SendOp::Send,
                sge: vec![Sge {
                    addr: 0,
                    length: n as u32,
                    lkey: self.keys.1,
                }],
            })
            .expect("send");
    }

    fn msg(&self, credits: u8, body: Body) -> MsgRepr {
        MsgRepr {
            version: VERSION_2,
            credits,
            src_nid: self.nid4,
            src_stamp: STAMP,
            dst_nid: self.peer,
            dst_stamp: self.peer_stamp,
            body,
        }
    }
}

fn setup() -> (TestNi, SoftListener, Nid) {
    setup_mode(RecvMode::Sync)
}

fn setup_mode(mode: RecvMode) -> (TestNi, SoftListener, Nid) {
    let port = test_port();
    let l = SoftListener::bind(SocketAddr::from(([127, 0, 0, 3], port))).expect("listen");
    l.set_nonblocking(true).expect("nb");
    let a = start("A", config(O2IB, "127.0.0.1", &params(port), &[]), mode).expect("start A");
    (a, l, Nid::new4(O2IB, 0x7f00_0003))
}

#[test]
fn big_endian_peer_connects_and_sends_immediate() {
    let (a, l, raw_nid) = setup();
    let (t, m) = put(&a, raw_nid, b"hello");
    a.ni.send(m).expect("send");
    let raw = Raw::accept(&l);
    let got = raw.recv();
    let Body::Immediate { hdr, payload_len } = got.body else {
        panic!("not IMMEDIATE: {got:?}")
    };
    assert_eq!(payload_len, 5);
    assert_eq!(hdr.payload_length, 5);
    assert_eq!(got.dst_stamp, STAMP, "the CONNACK's incarnation is quoted");
    assert!(a.host.wait_sent(&[t], T)[0].is_ok());

    // A big-endian IMMEDIATE back, returning the credit.
    let data = pattern(3000, 9);
    let (tok, back) = put(&a, a.nid(), &data);
    let mut h = back.hdr;
    h.src_nid = raw_nid;
    h.dest_nid = a.nid();
    raw.send(
        &raw.msg(
            1,
            Body::Immediate {
                hdr: h,
                payload_len: data.len(),
            },
        ),
        &data,
    );
    let r = a.host.wait_received(1, T);
    assert_eq!(r[0].from, raw_nid);
    assert_eq!(token_of(&r[0].hdr), tok);
    assert!(r[0].data == data, "payload differs");
    assert!(r[0].status.is_ok());
}

#[test]
fn bad_rkey_in_put_ack_fails_the_put_with_remote_error() {
    let (a, l, raw_nid) = setup();
    let data = pattern(100_000, 1);
    let (t, m) = put(&a, raw_nid, &data);
    a.ni.send(m).expect("send");
    let raw = Raw::accept(&l);
    let got = raw.recv();
    let Body::PutReq { cookie, .. } = got.body else {
        panic!("not PUT_REQ: {got:?}")
    };
    // A sink buffer exists, but the PUT_ACK names another key.
    let sink = PayloadSpan::from(IoBuf::zeroed(data.len()));
    let mr = raw.dev.reg_mr(
        sink.clone(),
        Access::LOCAL_WRITE.union(Access::REMOTE_WRITE),
    );
    raw.send(
        &raw.msg(
            0,
            Body::PutAck {
                src_cookie: cookie,
                dst_cookie: 77,
                rd: RdmaDesc {
                    key: mr.rkey() ^ 0x5a5a,
                    frags: vec![RdmaFrag {
                        nob: data.len() as u32,
                        addr: 0,
                    }],
                },
            },
        ),
        &[],
    );
    let c = a.host.wait_sent(&[t], T);
    assert!(!c[0].is_ok());
    assert_eq!(c[0].health, HealthStatus::REMOTE_ERROR, "{:?}", c[0]);
    assert!(sink.to_payload().frags()[0]
        .to_vec()
        .expect("b")
        .iter()
        .all(|b| *b == 0));
    a.host.wait_log("remote access error", T);
}

#[test]
fn optimized_get_from_a_big_endian_peer_is_answered_by_rdma_write() {
    let len = 200_000;
    let (a, l, raw_nid) = setup_mode(RecvMode::Reply { len, seed: 5 });
    // A message from A brings the connection up.
    let (t, m) = put(&a, raw_nid, b"up");
    a.ni.send(m).expect("send");
    let raw = Raw::accept(&l);
    assert!(matches!(raw.recv().body, Body::Immediate { .. }));
    assert!(a.host.wait_sent(&[t], T)[0].is_ok());
    let sink = PayloadSpan::from(IoBuf::zeroed(len));
    let mr = raw.dev.reg_mr(
        sink.clone(),
        Access::LOCAL_WRITE.union(Access::REMOTE_WRITE),
    );
    let hdr = Hdr::get(
        a.nid(),
        raw_nid,
        PID,
        PID,
        GetBody {
            return_wmd: WireHandle::NONE,
            match_bits: 42,
            ptl_index: 4,
            src_offset: 0,
            sink_length: len as u32,
        },
    );
    raw.send(
        &raw.msg(
            1,
            Body::GetReq {
                hdr,
                cookie: 0xC00C1E,
                rd: RdmaDesc {
                    key: mr.rkey(),
                    frags: vec![RdmaFrag {
                        nob: len as u32,
                        addr: 0,
                    }],
                },
            },
        ),
        &[],
    );
    let done = raw.recv();
    let Body::GetDone(c) = done.body else {
        panic!("not GET_DONE: {done:?}")
    };
    assert_eq!(c.cookie, 0xC00C1E);
    assert_eq!(c.status, len as i32);
    let got = sink.to_payload().frags()[0].to_vec().expect("bytes");
    assert!(got == pattern(len, 5), "RDMA-written data differs");
    let r = a.host.wait_received(1, T);
    assert_eq!(r[0].hdr.msg_type, lnd_api::MsgType::GET);
}

#[test]
fn optimized_get_to_a_big_endian_peer_takes_the_rdma_write_and_get_done() {
    let (sink, have) = (300_000usize, 250_001usize);
    let (a, l, raw_nid) = setup();
    let (t, m) = get(&a, raw_nid, sink);
    a.ni.send(m).expect("send GET");
    let raw = Raw::accept(&l);
    let got = raw.recv();
    let Body::GetReq { hdr, cookie, rd } = got.body else {
        panic!("not GET_REQ: {got:?}")
    };
    assert_eq!(hdr.msg_type, lnd_api::MsgType::GET);
    assert_eq!(GetBody::from_body(&hdr.body).sink_length as usize, sink);
    assert_eq!(rd.total_nob() as usize, sink, "the sink's descriptor");
    // RDMA WRITE the data the target has into the initiator's sink.
    let data = pattern(have, 77);
    let src = PayloadSpan::from(IoBuf::from_vec(data.clone()));
    let mr = raw.dev.reg_mr(src, Access(0));
    raw.qp
        .post_send(SendWr {
            wr_id: 200,
            op: SendOp::Write {
                remote_addr: rd.frags[0].addr,
                rkey: rd.key,
            },
            sge: vec![Sge {
                addr: 0,
                length: have as u32,
                lkey: mr.lkey(),
            }],
        })
        .expect("post write");
    let deadline = Instant::now() + T;
    'write: loop {
        for w in raw.cq.poll(8) {
            if w.wr_id == 200 {
                assert_eq!(w.status, WcStatus::Success, "RDMA WRITE");
                break 'write;
            }
        }
        assert!(Instant::now() < deadline, "RDMA WRITE never completed");
        raw.cq.wait(Duration::from_millis(50));
    }
    raw.send(
        &raw.msg(
            1,
            Body::GetDone(lnd_o2ib::wire::CompletionBody {
                cookie,
                status: have as i32,
            }),
        ),
        &[],
    );
    assert!(a.host.wait_sent(&[t], T)[0].is_ok());
    let r = a.host.wait_received(1, T);
    assert_eq!(r[0].hdr.msg_type, lnd_api::MsgType::REPLY);
    assert_eq!(reply_token(&r[0].hdr), t);
    assert_eq!(r[0].from, raw_nid);
    assert_eq!(r[0].hdr.src_nid, raw_nid);
    assert_eq!(r[0].hdr.payload_length as usize, have);
    assert!(r[0].data == data, "REPLY differs");
}
