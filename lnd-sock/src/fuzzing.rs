//! Test and fuzzing support: a connection driven over an in-memory stream
//! with a counting host double. Compiled for `cargo test` and under
//! `cfg(fuzzing)` only (the fuzz targets reach it as `lnd_sock::fuzzing`).
#![allow(missing_docs)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use lnd_api::abi_stable::std_types::ROption;
use lnd_api::hdr::HDR_NID4_SIZE;
use lnd_api::{
    Completion, Hdr, Host, HostHandle, IoBuf, LndError, LogLevel, MsgToken, MsgType, NetId, Nid,
    Payload, PayloadSpan, RxAction, RxToken,
};
use tokio::io::{duplex, AsyncReadExt, AsyncWriteExt};

use crate::conn::{start, CloseReason, Conn, ConnCfg, ConnOwner};
use crate::hello::{PeerHello, PeerId};
use crate::wire::{ConnType, Endian, MsgHdrRepr, MsgKind, MSG_HDR_SIZE};

pub const NET: NetId = NetId::new(2, 0);

#[derive(Default)]
pub struct Counts {
    pub finalized_rx: AtomicUsize,
    pub finalized_tx: AtomicUsize,
    pub parsed: AtomicUsize,
    pub failed: AtomicUsize,
    pub tasks_done: AtomicUsize,
}

pub struct H(pub Arc<Counts>);
impl Host for H {
    fn parse(&self, _: Hdr, _: Nid, _: RxToken, _: bool) -> Result<(), LndError> {
        Ok(())
    }
    fn finalize(&self, m: MsgToken, _: Completion) {
        if m.0 >= 1 << 40 {
            self.0.finalized_rx.fetch_add(1, Ordering::SeqCst);
        } else {
            self.0.finalized_tx.fetch_add(1, Ordering::SeqCst);
        }
    }
    fn notify(&self, _: Nid, _: bool) {}
    fn link_state(&self, _: bool) {}
    fn log(&self, _: LogLevel, _: &str) {}
}

/// Counts a parsed header and answers it at once, receiving into `payload`
/// (mlen is its length), as `recv_span` does.
pub fn receive_into(
    counts: &Counts,
    conn: &Arc<Conn>,
    hdr: &Hdr,
    rx: RxToken,
    payload: PayloadSpan,
) -> Result<(), String> {
    let n = counts.parsed.fetch_add(1, Ordering::SeqCst) as u64;
    let a = RxAction {
        rx,
        msg: ROption::RSome(MsgToken(1 << 40 | n)),
        payload: Payload::new(),
        rlen: hdr.payload_length,
        delayed: false,
    };
    conn.deliver(rx.0 & 0xFFFF_FFFF, a, payload)
        .map_err(|_| "deliver refused".to_string())
}

/// Receives into half the announced length (the rest is skipped).
pub struct Owner(pub Arc<Counts>);
impl ConnOwner for Owner {
    fn parse(&self, conn: &Arc<Conn>, hdr: Hdr, rx: RxToken) -> Result<(), String> {
        let half = IoBuf::zeroed(hdr.payload_length as usize / 2);
        receive_into(&self.0, conn, &hdr, rx, PayloadSpan::from(half))
    }
    fn conn_failed(&self, conn: &Arc<Conn>, why: CloseReason) {
        self.0.failed.fetch_add(1, Ordering::SeqCst);
        conn.close(why);
    }
    fn task_done(&self) {
        self.0.tasks_done.fetch_add(1, Ordering::SeqCst);
    }
    fn log(&self, _: LogLevel, _: &str) {}
}

pub fn peer() -> PeerHello {
    PeerHello {
        peer: PeerId {
            nid: Nid::new4(NET, 2),
            pid: 12345,
        },
        userspace: false,
        incarnation: 1,
        version: 3,
        ctype: ConnType::Control,
        endian: Endian::Little,
    }
}

pub fn conn(counts: &Arc<Counts>) -> Arc<Conn> {
    conn_with(
        counts,
        ConnCfg {
            sock_timeout: Duration::from_secs(5),
            keepalive: Duration::ZERO,
            zc_min_payload: None,
            csum: false,
            rx_spin: Duration::from_micros(50),
            rx_poll: Duration::ZERO,
            rx_lowat: true,
        },
    )
}

pub fn conn_with(counts: &Arc<Counts>, cfg: ConnCfg) -> Arc<Conn> {
    Conn::new(
        7,
        &peer(),
        false,
        None,
        cfg,
        HostHandle::new(H(counts.clone())),
    )
}

pub fn lnet(len: u32, zc_req: u64, zc_ack: u64) -> Vec<u8> {
    let mut k = [0u8; MSG_HDR_SIZE];
    MsgHdrRepr {
        kind: MsgKind::Lnet,
        csum: 0,
        zc_req,
        zc_ack,
    }
    .emit(Endian::Little, &mut k);
    let mut v = k.to_vec();
    let h = Hdr {
        dest_nid: Nid::new4(NET, 1),
        src_nid: Nid::new4(NET, 2),
        dest_pid: 12345,
        src_pid: 12345,
        msg_type: MsgType::PUT,
        payload_length: len,
        body: [0; 40],
    };
    let mut b = [0u8; HDR_NID4_SIZE];
    h.encode_nid4(&mut b).expect("encode");
    v.extend_from_slice(&b);
    v.extend((0..len).map(|i| i as u8));
    v
}

/// Runs a connection over `input`; returns what it wrote back.
pub fn run(input: Vec<u8>, counts: &Arc<Counts>, answer_wait: Duration) -> Vec<u8> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let (ours, mut theirs) = duplex(1 << 16);
        let c = conn(counts);
        start(c.clone(), ours, Arc::new(Owner(counts.clone())));
        let _ = tokio::time::timeout(Duration::from_secs(10), theirs.write_all(&input)).await;
        // Give the connection time to answer (ZC ACKs) before EOF.
        let mut back = vec![0u8; 4096];
        let n = match tokio::time::timeout(answer_wait, theirs.read(&mut back)).await {
            Ok(Ok(n)) => n,
            _ => 0,
        };
        back.truncate(n);
        let _ = theirs.shutdown().await;
        let mut rest = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(10), theirs.read_to_end(&mut rest)).await;
        back.extend(rest);
        while counts.tasks_done.load(Ordering::SeqCst) < 2 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert!(c.is_closed());
        back
    })
}

/// Fuzz entry: any bytes as the stream of an established V3 connection.
/// Never panics; every parsed message is finalized exactly once.
pub fn stream(input: &[u8]) {
    let counts = Arc::new(Counts::default());
    run(input.to_vec(), &counts, Duration::from_millis(1));
    assert_eq!(
        counts.parsed.load(Ordering::SeqCst),
        counts.finalized_rx.load(Ordering::SeqCst),
        "a parsed message was not finalized exactly once"
    );
}
