//! socklnd decoders (lnd-sock `wire`): the acceptor connection request, the
//! hellos V1–V4 and the 24-byte message header never panic on any bytes, and
//! what decodes re-encodes to something that decodes to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lnd_sock::wire::{
    ConnReq, ConnReqDecoder, ConnReqRepr, Endian, HelloDecoder, HelloRepr, MsgHdr, MsgHdrRepr,
    ZcAcked, CONNREQ16_SIZE, HELLO_V4_SIZE, MSG_HDR_SIZE,
};

fuzz_target!(|data: &[u8]| {
    // Connection request: one-shot view and the incremental decoder agree.
    let whole = ConnReq::new_checked(data).and_then(|v| ConnReqRepr::parse(&v));
    let mut d = ConnReqDecoder::new();
    let mut off = 0;
    let mut inc = None;
    while d.want() > 0 && off + d.want() <= data.len() {
        let w = d.want();
        match d.feed(&data[off..off + w]) {
            Ok(Some(r)) => {
                inc = Some(r);
                break;
            }
            Ok(None) => off += w,
            Err(_) => break,
        }
    }
    if let (Ok(a), Some(b)) = (&whole, &inc) {
        assert_eq!(a, b, "connreq decoders disagree");
    }
    if let Some(r) = inc {
        let mut out = [0u8; CONNREQ16_SIZE];
        let n = r.emit(Endian::Little, &mut out).expect("room");
        let v = ConnReq::new_checked(&out[..n]).expect("own connreq");
        assert_eq!(ConnReqRepr::parse(&v).expect("own connreq"), r);
    }

    // Hello: decode, re-encode (fixed part), decode again.
    if let Ok((h, e)) = HelloRepr::parse(data) {
        let mut out = [0u8; HELLO_V4_SIZE];
        if let Ok(n) = h.emit(e, &mut out) {
            let (h2, e2) = HelloRepr::parse(&out[..n]).expect("own hello");
            assert_eq!(e2, if h.version == 1 { Endian::Little } else { e });
            assert_eq!((h2.version, h2.src_nid, h2.src_pid, h2.ctype), (h.version, h.src_nid, h.src_pid, h.ctype));
            assert_eq!(h2.src_incarnation, h.src_incarnation);
        }
    }
    let mut d = HelloDecoder::new();
    let mut off = 0;
    while d.want() > 0 && off + d.want() <= data.len() {
        let w = d.want();
        match d.feed(&data[off..off + w]) {
            Ok(Some(_)) | Err(_) => break,
            Ok(None) => off += w,
        }
    }

    // Message header in both orders.
    for e in [Endian::Little, Endian::Big] {
        if let Ok(h) = MsgHdr::new_checked(data, e).and_then(|v| MsgHdrRepr::parse(&v)) {
            let _ = ZcAcked::of(&h);
            let mut out = [0u8; MSG_HDR_SIZE];
            h.emit(e, &mut out);
            assert_eq!(&out[..], &data[..MSG_HDR_SIZE], "message header round trip");
        }
    }
});
