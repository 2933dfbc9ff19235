//! The soft provider against itself on loopback: data movement and every
//! failure mode an HCA reports.

use super::*;
use lnd_api::IoBuf;

const T: Duration = Duration::from_secs(20);

struct Pair {
    da: SoftDevice,
    db: SoftDevice,
    ca: SoftCq,
    cb: SoftCq,
    a: SoftQp,
    b: SoftQp,
}

fn pair() -> Pair {
    let da = SoftDevice::new();
    let db = SoftDevice::new();
    let (ca, cb) = (SoftCq::new(), SoftCq::new());
    let l = SoftListener::bind("127.0.0.1:0".parse().expect("addr")).expect("listen");
    let to = l.local_addr().expect("addr");
    let db2 = db.clone();
    let cb2 = cb.clone();
    let th = std::thread::spawn(move || {
        let r = l.get_request().expect("req").expect("some");
        assert_eq!(r.private_data, b"connreq");
        r.accept(&db2, &cb2, b"connack", &mut |_| {})
            .expect("accept")
    });
    let (a, pd) = connect(&da, &ca, to, b"connreq", T, &mut |_, _| true).expect("connect");
    assert_eq!(pd, b"connack");
    let b = th.join().expect("join");
    Pair {
        da,
        db,
        ca,
        cb,
        a,
        b,
    }
}

fn wait_wc(cq: &SoftCq) -> Wc {
    let deadline = Instant::now() + T;
    loop {
        if let Some(w) = cq.poll(1).pop() {
            return w;
        }
        assert!(Instant::now() < deadline, "no completion");
        cq.wait(Duration::from_millis(100));
    }
}

fn wait_event(cq: &SoftCq) -> CmEvent {
    let deadline = Instant::now() + T;
    loop {
        if let Some(e) = cq.poll_event() {
            return e;
        }
        assert!(Instant::now() < deadline, "no event");
        cq.wait(Duration::from_millis(100));
    }
}

fn buf(bytes: &[u8]) -> PayloadSpan {
    PayloadSpan::from(IoBuf::from_vec(bytes.to_vec()))
}

fn rw() -> Access {
    Access::LOCAL_WRITE
        .union(Access::REMOTE_WRITE)
        .union(Access::REMOTE_READ)
}

#[test]
fn send_recv_write_read_move_bytes() {
    let p = pair();
    let rx = buf(&[0u8; 64]);
    let rx_mr = p.db.reg_mr(rx.clone(), Access::LOCAL_WRITE);
    p.b.post_recv(RecvWr {
        wr_id: 7,
        sge: Sge {
            addr: 0,
            length: 64,
            lkey: rx_mr.lkey(),
        },
    })
    .expect("post recv");
    let tx = buf(b"xxhello");
    let tx_mr = p.da.reg_mr(tx.clone(), Access(0));
    p.a.post_send(SendWr {
        wr_id: 1,
        op: SendOp::Send,
        sge: vec![Sge {
            addr: 2,
            length: 5,
            lkey: tx_mr.lkey(),
        }],
    })
    .expect("post");
    let w = wait_wc(&p.cb);
    assert_eq!(
        (w.wr_id, w.status, w.opcode, w.byte_len),
        (7, WcStatus::Success, WcOpcode::Recv, 5)
    );
    let mut got = [0u8; 5];
    rx.read_at(0, &mut got).expect("read");
    assert_eq!(&got, b"hello");
    let w = wait_wc(&p.ca);
    assert_eq!(
        (w.wr_id, w.status, w.opcode),
        (1, WcStatus::Success, WcOpcode::Send)
    );

    // RDMA WRITE of 1 MiB from two gather entries, then READ it back.
    let n = 1 << 20;
    let src: Vec<u8> = (0..n).map(|i| (i * 7 % 251) as u8).collect();
    let src_span = buf(&src);
    let src_mr = p.da.reg_mr(src_span, Access(0));
    let sink = buf(&vec![0u8; n]);
    let sink_mr = p.db.reg_mr(sink.clone(), rw());
    p.a.post_send(SendWr {
        wr_id: 2,
        op: SendOp::Write {
            remote_addr: 0,
            rkey: sink_mr.rkey(),
        },
        sge: vec![
            Sge {
                addr: 0,
                length: 1000,
                lkey: src_mr.lkey(),
            },
            Sge {
                addr: 1000,
                length: (n - 1000) as u32,
                lkey: src_mr.lkey(),
            },
        ],
    })
    .expect("post write");
    let w = wait_wc(&p.ca);
    assert_eq!(
        (w.wr_id, w.status, w.byte_len),
        (2, WcStatus::Success, n as u32)
    );
    assert_eq!(sink.to_payload().frags()[0].to_vec().expect("bytes"), src);

    let back = buf(&vec![0u8; 4096]);
    let back_mr = p.da.reg_mr(back.clone(), Access::LOCAL_WRITE);
    p.a.post_send(SendWr {
        wr_id: 3,
        op: SendOp::Read {
            remote_addr: 4096,
            rkey: sink_mr.rkey(),
        },
        sge: vec![Sge {
            addr: 0,
            length: 4096,
            lkey: back_mr.lkey(),
        }],
    })
    .expect("post read");
    let w = wait_wc(&p.ca);
    assert_eq!(
        (w.wr_id, w.status, w.opcode),
        (3, WcStatus::Success, WcOpcode::RdmaRead)
    );
    let mut got = vec![0u8; 4096];
    back.read_at(0, &mut got).expect("read");
    assert_eq!(got, src[4096..8192]);
    assert_eq!(p.da.registrations(), 3);
}

#[test]
fn bad_rkey_is_a_remote_access_error_and_flushes_the_rest() {
    let p = pair();
    let src = buf(&[1u8; 100]);
    let src_mr = p.da.reg_mr(src, Access(0));
    let sge = vec![Sge {
        addr: 0,
        length: 100,
        lkey: src_mr.lkey(),
    }];
    // A receive on the responder is flushed when its QP goes to error.
    let rbuf = buf(&[0u8; 100]);
    let rmr = p.db.reg_mr(rbuf, Access::LOCAL_WRITE);
    p.b.post_recv(RecvWr {
        wr_id: 50,
        sge: Sge {
            addr: 0,
            length: 100,
            lkey: rmr.lkey(),
        },
    })
    .expect("recv");
    for (id, key) in [(1, 0xdead_beef_u32), (2, 0xdead_beef)] {
        p.a.post_send(SendWr {
            wr_id: id,
            op: SendOp::Write {
                remote_addr: 0,
                rkey: key,
            },
            sge: sge.clone(),
        })
        .expect("post");
    }
    let w = wait_wc(&p.ca);
    assert_eq!((w.wr_id, w.status), (1, WcStatus::RemAccessErr));
    let w = wait_wc(&p.ca);
    assert_eq!((w.wr_id, w.status), (2, WcStatus::WrFlushErr));
    assert_eq!(p.a.state(), QpState::Error);
    let w = wait_wc(&p.cb);
    assert_eq!((w.wr_id, w.status), (50, WcStatus::WrFlushErr));
    // Posting on a QP in error completes flushed.
    p.a.post_send(SendWr {
        wr_id: 3,
        op: SendOp::Send,
        sge,
    })
    .expect("post");
    let w = wait_wc(&p.ca);
    assert_eq!((w.wr_id, w.status), (3, WcStatus::WrFlushErr));
}

#[test]
fn out_of_bounds_no_right_and_deregistered_keys_fail() {
    for case in 0..3 {
        let p = pair();
        let src = buf(&[1u8; 100]);
        let src_mr = p.da.reg_mr(src, Access(0));
        let sink = buf(&[0u8; 64]);
        let access = if case == 1 { Access::REMOTE_READ } else { rw() };
        let sink_mr = p.db.reg_mr(sink.clone(), access);
        let rkey = sink_mr.rkey();
        if case == 2 {
            drop(sink_mr); // the memory went away: its key is invalid
        }
        let len = if case == 0 { 100 } else { 10 };
        p.a.post_send(SendWr {
            wr_id: 9,
            op: SendOp::Write {
                remote_addr: 0,
                rkey,
            },
            sge: vec![Sge {
                addr: 0,
                length: len,
                lkey: src_mr.lkey(),
            }],
        })
        .expect("post");
        let w = wait_wc(&p.ca);
        assert_eq!(
            (w.wr_id, w.status),
            (9, WcStatus::RemAccessErr),
            "case {case}"
        );
        assert_eq!(
            sink.to_payload().frags()[0].to_vec().expect("b"),
            vec![0u8; 64]
        );
    }
}

#[test]
fn bad_lkey_is_a_local_protection_error() {
    let p = pair();
    p.a.post_send(SendWr {
        wr_id: 4,
        op: SendOp::Send,
        sge: vec![Sge {
            addr: 0,
            length: 10,
            lkey: 0x4242,
        }],
    })
    .expect("post");
    let w = wait_wc(&p.ca);
    assert_eq!((w.wr_id, w.status), (4, WcStatus::LocProtErr));
    assert_eq!(p.a.state(), QpState::Error);
}

#[test]
fn receive_not_ready_fails_after_the_rnr_wait() {
    let p = pair();
    p.db.set_rnr_wait(Duration::from_millis(200));
    let src = buf(&[1u8; 10]);
    let mr = p.da.reg_mr(src, Access(0));
    p.a.post_send(SendWr {
        wr_id: 5,
        op: SendOp::Send,
        sge: vec![Sge {
            addr: 0,
            length: 10,
            lkey: mr.lkey(),
        }],
    })
    .expect("post");
    let w = wait_wc(&p.ca);
    assert_eq!((w.wr_id, w.status), (5, WcStatus::RnrRetryExcErr));
}

#[test]
fn a_receive_posted_within_the_rnr_wait_is_used() {
    let p = pair();
    // Far longer than the pause below, even on a loaded machine.
    p.db.set_rnr_wait(Duration::from_secs(30));
    let src = buf(&[1u8; 10]);
    let mr = p.da.reg_mr(src, Access(0));
    p.a.post_send(SendWr {
        wr_id: 5,
        op: SendOp::Send,
        sge: vec![Sge {
            addr: 0,
            length: 10,
            lkey: mr.lkey(),
        }],
    })
    .expect("post");
    std::thread::sleep(Duration::from_millis(50));
    let rb = buf(&[0u8; 16]);
    let rmr = p.db.reg_mr(rb, Access::LOCAL_WRITE);
    p.b.post_recv(RecvWr {
        wr_id: 6,
        sge: Sge {
            addr: 0,
            length: 16,
            lkey: rmr.lkey(),
        },
    })
    .expect("recv");
    assert_eq!(wait_wc(&p.ca).status, WcStatus::Success);
    assert_eq!(wait_wc(&p.cb).byte_len, 10);
}

#[test]
fn message_longer_than_the_receive_is_a_length_error() {
    let p = pair();
    let src = buf(&[1u8; 100]);
    let mr = p.da.reg_mr(src, Access(0));
    let rb = buf(&[0u8; 16]);
    let rmr = p.db.reg_mr(rb, Access::LOCAL_WRITE);
    p.b.post_recv(RecvWr {
        wr_id: 6,
        sge: Sge {
            addr: 0,
            length: 16,
            lkey: rmr.lkey(),
        },
    })
    .expect("recv");
    p.a.post_send(SendWr {
        wr_id: 5,
        op: SendOp::Send,
        sge: vec![Sge {
            addr: 0,
            length: 100,
            lkey: mr.lkey(),
        }],
    })
    .expect("post");
    assert_eq!(wait_wc(&p.cb).status, WcStatus::LocLenErr);
    assert_eq!(wait_wc(&p.ca).status, WcStatus::RemInvReqErr);
}

#[test]
fn lost_connection_fails_in_flight_and_flushes_receives() {
    let p = pair();
    let rb = buf(&[0u8; 16]);
    let rmr = p.da.reg_mr(rb, Access::LOCAL_WRITE);
    p.a.post_recv(RecvWr {
        wr_id: 60,
        sge: Sge {
            addr: 0,
            length: 16,
            lkey: rmr.lkey(),
        },
    })
    .expect("recv");
    // The peer's "NIC" dies: its socket is shut, no answers come.
    let _ = p.b.0.stream.shutdown(Shutdown::Both);
    let src = buf(&[1u8; 10]);
    let mr = p.da.reg_mr(src, Access(0));
    p.a.post_send(SendWr {
        wr_id: 5,
        op: SendOp::Send,
        sge: vec![Sge {
            addr: 0,
            length: 10,
            lkey: mr.lkey(),
        }],
    })
    .expect("post");
    assert_eq!(
        wait_event(&p.ca),
        CmEvent::Disconnected {
            qp_num: p.a.qp_num()
        }
    );
    let mut got: Vec<(u64, WcStatus)> = (0..2)
        .map(|_| {
            let w = wait_wc(&p.ca);
            (w.wr_id, w.status)
        })
        .collect();
    got.sort_by_key(|x| x.0);
    // The send either was on the wire (retry exceeded) or posted after the
    // loss (flushed); the receive is flushed.
    assert_eq!(got[1], (60, WcStatus::WrFlushErr));
    assert_eq!(got[0].0, 5);
    assert!(matches!(
        got[0].1,
        WcStatus::RetryExcErr | WcStatus::WrFlushErr
    ));
    assert_eq!(p.a.state(), QpState::Error);
}

#[test]
fn disconnect_is_seen_by_both_sides() {
    let p = pair();
    p.a.disconnect();
    assert!(matches!(wait_event(&p.ca), CmEvent::Disconnected { .. }));
    assert!(matches!(wait_event(&p.cb), CmEvent::Disconnected { .. }));
    assert_eq!(p.b.state(), QpState::Error);
}

#[test]
fn reject_carries_private_data_and_limits_hold() {
    let dev = SoftDevice::new();
    let cq = SoftCq::new();
    let l = SoftListener::bind("127.0.0.1:0".parse().expect("addr")).expect("listen");
    let to = l.local_addr().expect("addr");
    let th = std::thread::spawn(move || {
        let r = l.get_request().expect("req").expect("some");
        r.reject(b"rejected!");
    });
    assert_eq!(
        connect(&dev, &cq, to, b"hi", T, &mut |_, _| true).err(),
        Some(VerbsError::Rejected(b"rejected!".to_vec()))
    );
    th.join().expect("join");
    assert!(matches!(
        connect(&dev, &cq, to, &[0u8; 57], T, &mut |_, _| true),
        Err(VerbsError::Invalid(_))
    ));
    // Nobody listening any more.
    assert!(matches!(
        connect(&dev, &cq, to, b"x", T, &mut |_, _| true),
        Err(VerbsError::Unreachable(_))
    ));
}

/// A real HCA writes memory whatever the CPU does with it: memory another
/// thread holds for a moment (another LND landing a PUT in the same MD) is
/// waited for, not failed with a remote access error.
#[test]
fn rdma_write_into_memory_held_for_a_moment_waits_for_it() {
    let p = pair();
    let src = buf(&[7u8; 5000]);
    let src_mr = p.da.reg_mr(src, Access(0));
    let dst_buf = IoBuf::zeroed(5000);
    let dst = PayloadSpan::from(dst_buf.clone());
    let dst_mr = p.db.reg_mr(dst.clone(), rw());
    let (held_tx, held_rx) = std::sync::mpsc::channel();
    let holder = std::thread::spawn(move || {
        let b = dst_buf.borrow_mut().expect("free");
        held_tx.send(()).expect("send");
        std::thread::sleep(Duration::from_millis(200));
        drop(b);
    });
    held_rx.recv().expect("held");
    p.a.post_send(SendWr {
        wr_id: 9,
        op: SendOp::Write {
            remote_addr: 0,
            rkey: dst_mr.rkey(),
        },
        sge: vec![Sge {
            addr: 0,
            length: 5000,
            lkey: src_mr.lkey(),
        }],
    })
    .expect("post");
    let w = wait_wc(&p.ca);
    assert_eq!((w.wr_id, w.status), (9, WcStatus::Success));
    holder.join().expect("holder");
    let mut got = vec![0u8; 5000];
    dst.read_at(0, &mut got).expect("read");
    assert!(got.iter().all(|b| *b == 7));
}

/// lnd-api 1.3's per-range write guards: another writer (another LND landing
/// a message in the same MD) holding one part of an allocation for as long
/// as it likes does not delay an RDMA WRITE into another part; a WRITE
/// into the held part still fails (after the HCA's wait) with a remote
/// access error.
#[test]
fn rdma_write_beside_memory_written_elsewhere_proceeds() {
    let p = pair();
    let src = buf(&[9u8; 31_000]);
    let src_mr = p.da.reg_mr(src, Access(0));
    // One allocation of 62 000 bytes, registered whole.
    let whole = IoBuf::zeroed(62_000);
    let dst = PayloadSpan::from(whole.clone());
    let dst_mr = p.db.reg_mr(dst.clone(), rw());
    // The lower half is written elsewhere for the whole test.
    let lower = whole.slice(0..31_000).expect("in bounds");
    let held = lower.borrow_mut().expect("free");
    let write = |wr_id: u64, remote_addr: u64| {
        p.a.post_send(SendWr {
            wr_id,
            op: SendOp::Write {
                remote_addr,
                rkey: dst_mr.rkey(),
            },
            sge: vec![Sge {
                addr: 0,
                length: 31_000,
                lkey: src_mr.lkey(),
            }],
        })
        .expect("post");
        wait_wc(&p.ca)
    };
    let w = write(1, 31_000);
    assert_eq!((w.wr_id, w.status), (1, WcStatus::Success));
    let w = write(2, 0);
    assert_eq!((w.wr_id, w.status), (2, WcStatus::RemAccessErr));
    drop(held);
    let mut got = vec![0u8; 62_000];
    dst.read_at(0, &mut got).expect("read");
    assert!(got[31_000..].iter().all(|b| *b == 9), "upper half written");
    assert!(got[..31_000].iter().all(|b| *b == 0), "held half untouched");
}

#[test]
fn a_handler_gets_completions_on_the_qp_thread_in_order_never_nested() {
    let p = pair();
    // (thread name, wr_id) of each completion b's handler saw; the depth
    // of handler calls on the stack.
    let seen: Arc<Mutex<Vec<(String, u64)>>> = Arc::default();
    let depth = Arc::new(AtomicU32::new(0));
    let (s2, d2, cb2) = (seen.clone(), depth.clone(), p.cb.clone());
    assert!(p.cb.set_handler(Box::new(move |wc| {
        assert_eq!(d2.fetch_add(1, Ordering::SeqCst), 0, "handler re-entered");
        let name = std::thread::current().name().unwrap_or("").to_string();
        lock(&s2).push((name, wc.wr_id));
        if wc.wr_id < 100 {
            // A completion made while the handler runs (as a post on a
            // QP in error completes at once): handled right after.
            cb2.push(Wc {
                wr_id: wc.wr_id + 100,
                ..wc
            });
        }
        d2.fetch_sub(1, Ordering::SeqCst);
    })));
    assert!(!p.cb.set_handler(Box::new(|_| {})), "set twice");
    let rx = buf(&[0u8; 64 * 3]);
    let rx_mr = p.db.reg_mr(rx, Access::LOCAL_WRITE);
    for i in 0..3u64 {
        p.b.post_recv(RecvWr {
            wr_id: 10 + i,
            sge: Sge {
                addr: i * 64,
                length: 64,
                lkey: rx_mr.lkey(),
            },
        })
        .expect("post recv");
    }
    let tx = buf(b"abc");
    let tx_mr = p.da.reg_mr(tx, Access(0));
    for i in 0..3u64 {
        p.a.post_send(SendWr {
            wr_id: i,
            op: SendOp::Send,
            sge: vec![Sge {
                addr: i,
                length: 1,
                lkey: tx_mr.lkey(),
            }],
        })
        .expect("post");
    }
    for _ in 0..3 {
        assert_eq!(wait_wc(&p.ca).status, WcStatus::Success);
    }
    let deadline = Instant::now() + T;
    while lock(&seen).len() < 6 {
        assert!(Instant::now() < deadline, "handler saw {:?}", lock(&seen));
        std::thread::sleep(Duration::from_millis(10));
    }
    let got = lock(&seen).clone();
    let ids: Vec<u64> = got.iter().map(|x| x.1).collect();
    assert_eq!(ids, [10, 110, 11, 111, 12, 112]);
    assert!(
        got.iter().all(|x| x.0 == "o2ib-soft-rx"),
        "not on the QP's reader: {got:?}"
    );
    // Nothing was queued for a poller.
    assert!(p.cb.poll(16).is_empty());
    // A flush made in a caller's post is queued for the poller, never
    // handed to the handler on the caller's thread.
    p.b.disconnect();
    p.b.post_recv(RecvWr {
        wr_id: 55,
        sge: Sge {
            addr: 0,
            length: 64,
            lkey: rx_mr.lkey(),
        },
    })
    .expect("post recv");
    let w = wait_wc(&p.cb);
    assert_eq!((w.wr_id, w.status), (55, WcStatus::WrFlushErr));
    assert!(lock(&seen).iter().all(|x| x.1 != 55), "{:?}", lock(&seen));
}

/// Reads frames off `s` until EOF: (op, c, data).
fn frames_until_eof(s: &mut TcpStream) -> Vec<(u8, u64, Vec<u8>)> {
    let mut out = Vec::new();
    while let Ok((f, d)) = read_frame(s) {
        out.push((f.op, f.c, d));
    }
    out
}

#[test]
fn a_batch_is_written_in_order_without_the_acks_a_later_answer_covers() {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let mut w = TcpStream::connect(l.local_addr().expect("addr")).expect("connect");
    let (mut r, _) = l.accept().expect("accept");
    r.set_read_timeout(Some(T)).expect("timeout");
    let frame = |op, c| FrameHdr {
        op,
        c,
        ..FrameHdr::default()
    };
    let reg = buf(b"registered");
    // The rest of a frame another thread began to send: bytes as they are.
    let mut raw = FrameHdr {
        len: 2,
        ..frame(OP_SEND, 6)
    }
    .encode()
    .to_vec();
    raw.extend(b"hi");
    let batch: VecDeque<TxItem> = [
        TxItem::Raw(raw[5..].to_vec()),
        TxItem::Frame(frame(OP_ACK, 1), Vec::new()),
        TxItem::Frame(frame(OP_SEND, 7), b"req".to_vec()),
        TxItem::Frame(frame(OP_ACK, 2), Vec::new()),
        TxItem::Gather(
            frame(OP_WRITE, 8),
            vec![reg.sub(0, 4).expect("sub"), reg.sub(4, 6).expect("sub")],
        ),
        TxItem::Frame(frame(OP_READ_RESP, 3), b"data".to_vec()),
        TxItem::Frame(frame(OP_ACK, 4), Vec::new()),
        TxItem::Frame(frame(OP_ACK, 5), Vec::new()),
        TxItem::Close,
        TxItem::Frame(frame(OP_ACK, 6), Vec::new()),
    ]
    .into_iter()
    .collect();
    w.write_all(&raw[..5]).expect("first bytes");
    assert_eq!(write_batch(&mut w, &batch), Ok(true), "ends at Close");
    drop(w);
    let got = frames_until_eof(&mut r);
    assert_eq!(
        got,
        [
            (OP_SEND, 6, b"hi".to_vec()),
            (OP_SEND, 7, b"req".to_vec()),
            (OP_WRITE, 8, b"registered".to_vec()),
            (OP_READ_RESP, 3, b"data".to_vec()),
            (OP_ACK, 5, Vec::new()),
        ]
    );
}

#[test]
fn a_batch_stops_at_memory_its_owner_writes() {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let mut w = TcpStream::connect(l.local_addr().expect("addr")).expect("connect");
    let (mut r, _) = l.accept().expect("accept");
    r.set_read_timeout(Some(T)).expect("timeout");
    let held = buf(b"held");
    let frame = |op, c| FrameHdr {
        op,
        c,
        ..FrameHdr::default()
    };
    let batch: VecDeque<TxItem> = [
        TxItem::Frame(frame(OP_SEND, 1), b"before".to_vec()),
        TxItem::Gather(frame(OP_WRITE, 2), vec![held.clone()]),
        TxItem::Frame(frame(OP_SEND, 3), b"after".to_vec()),
    ]
    .into_iter()
    .collect();
    let piece = held.pieces().next().expect("piece");
    let g = piece.borrow_mut().expect("owner writes");
    assert_eq!(write_batch(&mut w, &batch), Err(WcStatus::LocProtErr));
    drop(g);
    drop(w);
    assert_eq!(frames_until_eof(&mut r), [(OP_SEND, 1, b"before".to_vec())]);
}

#[test]
fn a_write_followed_by_a_send_completes_both_in_order() {
    // The SEND right behind the WRITE (as a done message behind an RDMA)
    // may acknowledge both; both complete, the WRITE first, data in place.
    let p = pair();
    let rx = buf(&[0u8; 64]);
    let rx_mr = p.db.reg_mr(rx, Access::LOCAL_WRITE);
    let sink = buf(&vec![0u8; 300_000]);
    let sink_mr = p.db.reg_mr(sink.clone(), rw());
    let src: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
    let src_mr = p.da.reg_mr(buf(&src), Access(0));
    for round in 0..20u64 {
        p.b.post_recv(RecvWr {
            wr_id: 100 + round,
            sge: Sge {
                addr: 0,
                length: 64,
                lkey: rx_mr.lkey(),
            },
        })
        .expect("post recv");
        p.a.post_send(SendWr {
            wr_id: 2 * round,
            op: SendOp::Write {
                remote_addr: 0,
                rkey: sink_mr.rkey(),
            },
            sge: vec![Sge {
                addr: 0,
                length: src.len() as u32,
                lkey: src_mr.lkey(),
            }],
        })
        .expect("post write");
        p.a.post_send(SendWr {
            wr_id: 2 * round + 1,
            op: SendOp::Send,
            sge: vec![Sge {
                addr: 0,
                length: 8,
                lkey: src_mr.lkey(),
            }],
        })
        .expect("post send");
        let w = wait_wc(&p.ca);
        assert_eq!(
            (w.wr_id, w.status, w.opcode),
            (2 * round, WcStatus::Success, WcOpcode::RdmaWrite)
        );
        let w = wait_wc(&p.ca);
        assert_eq!(
            (w.wr_id, w.status, w.opcode),
            (2 * round + 1, WcStatus::Success, WcOpcode::Send)
        );
        let w = wait_wc(&p.cb);
        assert_eq!((w.wr_id, w.status), (100 + round, WcStatus::Success));
    }
    let mut got = vec![0u8; src.len()];
    sink.read_at(0, &mut got).expect("read");
    assert!(got == src, "WRITE data differs");
}
