//! o2iblnd decoders (lnd-o2ib `wire`): `kib_msg` (every type, either byte
//! order, checksum) and the reject private data never panic on any bytes,
//! and what decodes re-encodes to bytes that decode to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lnd_o2ib::wire::{Msg, MsgRepr, RejRepr, IMMEDIATE_PAYLOAD_OFFSET, MSG_SIZE, REJ_SIZE};

fuzz_target!(|data: &[u8]| {
    if let Ok(v) = Msg::new_checked(data) {
        assert!(v.nob() as usize <= data.len());
        if let Ok(r) = MsgRepr::parse(&v) {
            let mut out = vec![0u8; MSG_SIZE];
            if let Ok(n) = r.emit(v.endian(), &mut out) {
                // Bytes after a type's body are allowed (and dropped); an
                // IMMEDIATE's inline payload is all of the rest.
                assert!(n <= v.nob() as usize);
                if matches!(r.body, lnd_o2ib::wire::Body::Immediate { .. }) {
                    assert_eq!(n, v.nob() as usize);
                    out[IMMEDIATE_PAYLOAD_OFFSET..n]
                        .copy_from_slice(&data[IMMEDIATE_PAYLOAD_OFFSET..n]);
                }
                let again = MsgRepr::decode(&out[..n]).expect("own message decodes");
                assert_eq!(again, r);
            }
        }
    }
    if let Ok((r, e)) = RejRepr::parse(data) {
        let mut out = [0u8; REJ_SIZE];
        r.emit(e, &mut out).expect("room");
        let (again, e2) = RejRepr::parse(&out).expect("own reject");
        assert_eq!(e2, e);
        assert_eq!(again.why, r.why);
        assert_eq!(again.version, r.version);
        if r.cp.is_some() {
            assert_eq!(again, r);
        }
    }
});
