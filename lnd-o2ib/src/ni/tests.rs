//! The NI's flows against a QP that only records what is posted: the test
//! plays the HCA (it decides when each work request completes, and how).

use super::*;
use crate::verbs::{RecvWr, WcOpcode};
use crate::wire::{Msg, RdmaFrag};
use lnd_api::{Hdr, LndNiHandle, Payload};
use lnd_test_host::{RecvMode, TestHost};

const T: Duration = Duration::from_secs(30);
const QPN: u32 = 4242;
const PID: u32 = 12345;

/// A QP that records the send work requests posted on it.
#[derive(Default)]
struct RecQp {
    sends: Mutex<Vec<SendWr>>,
}

impl VerbsQp for RecQp {
    fn qp_num(&self) -> u32 {
        QPN
    }
    fn post_send(&self, wr: SendWr) -> Result<(), VerbsError> {
        lock(&self.sends).push(wr);
        Ok(())
    }
    fn post_recv(&self, _wr: RecvWr) -> Result<(), VerbsError> {
        Ok(())
    }
    fn disconnect(&self) {}
}

struct Rig {
    ni: Arc<NiInner>,
    host: TestHost,
    qp: Arc<RecQp>,
    rx: PayloadSpan,
    tx: PayloadSpan,
    me: Nid,
    peer: Nid,
    peer_stamp: u64,
}

fn rig() -> Rig {
    let host = TestHost::new("o2ib-ni", RecvMode::Sync);
    let tun =
        crate::params::Tunables::resolve(&[], &[], &lnd_api::NetTunables::UNSET).expect("defaults");
    let net = lnd_api::NetId::new(lnd_api::lnd_type::O2IBLND, 0);
    let (me, peer) = (Nid::new4(net, 0x0a00_0001), Nid::new4(net, 0x0a00_0002));
    let peer_stamp = 2222;
    let prov = Provider::Soft {
        dev: SoftDevice::new(),
        cq: SoftCq::new(),
    };
    let ni = NiInner::run_on(HostHandle::new(host.clone()), me, tun, 1111, prov, None).expect("NI");
    host.set_ni(LndNiHandle::new(O2ibNi(ni.clone())));
    let qp = Arc::new(RecQp::default());
    let cp = wire::ConnParams {
        queue_depth: 8,
        max_frags: 256,
        max_msg_size: MSG_SIZE as u32,
    };
    let (rx, tx) = ni.attach_qp_for_test(qp.clone(), peer.to_nid4().expect("nid4"), peer_stamp, cp);
    Rig {
        ni,
        host,
        qp,
        rx,
        tx,
        me,
        peer,
        peer_stamp,
    }
}

impl Rig {
    /// Send work request `n` (from 1), waited for.
    fn nth(&self, n: usize) -> SendWr {
        let deadline = Instant::now() + T;
        loop {
            if let Some(w) = lock(&self.qp.sends).get(n - 1) {
                return w.clone();
            }
            assert!(Instant::now() < deadline, "send {n} never posted");
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    fn posted(&self) -> usize {
        lock(&self.qp.sends).len()
    }

    /// The message a SEND carried (soft registrations are zero-based: the
    /// SGE's address is the offset in the send buffers).
    fn sent_msg(&self, w: &SendWr) -> MsgRepr {
        assert_eq!(w.op, SendOp::Send, "{w:?}");
        let mut b = vec![0u8; w.sge[0].length as usize];
        self.tx
            .read_at(w.sge[0].addr as usize, &mut b)
            .expect("send slot");
        MsgRepr::parse(&Msg::new_checked(&b[..]).expect("kib_msg")).expect("parses")
    }

    /// The peer's message `body` lands in receive buffer `idx`.
    fn receive(&self, idx: usize, body: Body) {
        let m = MsgRepr {
            version: VERSION_2,
            credits: 0,
            src_nid: self.peer.to_nid4().expect("nid4"),
            src_stamp: self.peer_stamp,
            dst_nid: self.me.to_nid4().expect("nid4"),
            dst_stamp: 1111,
            body,
        };
        let mut b = vec![0u8; MSG_SIZE];
        let n = m.emit(Endian::NATIVE, &mut b).expect("emit");
        self.rx
            .write_at(idx * MSG_SIZE, &b[..n])
            .expect("rx buffer");
        self.complete(
            WR_RX | idx as u64,
            WcStatus::Success,
            WcOpcode::Recv,
            n as u32,
        );
    }

    fn complete(&self, wr_id: u64, status: WcStatus, opcode: WcOpcode, byte_len: u32) {
        self.ni.on_wc(Wc {
            wr_id,
            status,
            opcode,
            byte_len,
            qp_num: QPN,
        });
    }

    /// A PUT of `len` bytes to the peer (RDMA: PUT_REQ first); its cookie.
    fn put(&self, token: u64, len: usize) -> u64 {
        let payload: Payload = [IoBuf::zeroed(len)].into_iter().collect();
        let tx = TxMsg {
            token: MsgToken(token),
            hdr: Hdr {
                dest_nid: self.peer,
                src_nid: self.me,
                dest_pid: PID,
                src_pid: PID,
                msg_type: MsgType::PUT,
                payload_length: len as u32,
                body: [0; 40],
            },
            target: self.peer,
            target_pid: PID,
            payload,
            rx: ROption::RNone,
        };
        let n = self.posted();
        LndNi::send(&O2ibNi(self.ni.clone()), tx).expect("send");
        let w = self.nth(n + 1);
        let Body::PutReq { cookie, .. } = self.sent_msg(&w).body else {
            panic!("not a PUT_REQ: {w:?}");
        };
        self.complete(w.wr_id, WcStatus::Success, WcOpcode::Send, 0);
        cookie
    }
}

fn put_ack(src_cookie: u64, dst_cookie: u64, len: u32) -> Body {
    Body::PutAck {
        src_cookie,
        dst_cookie,
        rd: RdmaDesc {
            key: 0x4242,
            frags: vec![RdmaFrag { nob: len, addr: 0 }],
        },
    }
}

#[test]
fn put_done_is_posted_behind_the_writes_and_the_put_ends_when_both_completed() {
    let r = rig();
    let cookie = r.put(7, 8000);
    let before = r.posted();
    r.receive(0, put_ack(cookie, 99, 8000));
    // The WRITE and, right behind it before any completion, PUT_DONE.
    let w = r.nth(before + 1);
    assert!(
        matches!(
            w.op,
            SendOp::Write {
                rkey: 0x4242,
                remote_addr: 0
            }
        ),
        "{w:?}"
    );
    let d = r.nth(before + 2);
    assert_eq!(
        r.sent_msg(&d).body,
        Body::PutDone(CompletionBody {
            cookie: 99,
            status: 8000
        })
    );
    assert_eq!(
        r.host.sent_count(7),
        0,
        "finalized before its RDMA completed"
    );
    // The done message's completion alone does not end the PUT.
    r.complete(d.wr_id, WcStatus::Success, WcOpcode::Send, 0);
    assert_eq!(r.host.sent_count(7), 0);
    r.complete(w.wr_id, WcStatus::Success, WcOpcode::RdmaWrite, 8000);
    assert!(r.host.wait_sent(&[7], T)[0].is_ok());
    assert_eq!(r.counters.rdma_puts(), 1);
}

#[test]
fn a_failed_write_fails_the_put_once_and_its_flushed_done_message_changes_nothing() {
    let r = rig();
    let cookie = r.put(8, 6000);
    let before = r.posted();
    r.receive(1, put_ack(cookie, 5, 6000));
    let (w, d) = (r.nth(before + 1), r.nth(before + 2));
    assert!(matches!(r.sent_msg(&d).body, Body::PutDone(_)));
    r.complete(w.wr_id, WcStatus::RemAccessErr, WcOpcode::RdmaWrite, 0);
    let c = r.host.wait_sent(&[8], T)[0];
    assert_eq!(c.health, HealthStatus::REMOTE_ERROR, "{c:?}");
    // The QP is in error: the done message behind the WRITE is flushed.
    r.complete(d.wr_id, WcStatus::WrFlushErr, WcOpcode::Send, 0);
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(r.host.sent_count(8), 1, "finalized twice");
    assert_eq!(r.counters.rdma_puts(), 0);
}

impl std::ops::Deref for Rig {
    type Target = NiInner;
    fn deref(&self) -> &NiInner {
        &self.ni
    }
}

impl Counters {
    fn rdma_puts(&self) -> u64 {
        self.rdma_puts.load(Ordering::Relaxed)
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        self.ni.shutdown();
    }
}
