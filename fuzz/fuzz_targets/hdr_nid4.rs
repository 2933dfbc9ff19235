//! Classic LNet header (`lnet_hdr_nid4`) decoder: never panics, and a header
//! that decodes re-encodes to exactly the same 72 bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lnd_api::hdr::{Hdr, HdrNid4, HDR_NID4_SIZE};

fuzz_target!(|data: &[u8]| {
    // The view over any length, including short buffers.
    if let Ok(view) = HdrNid4::new_checked(data) {
        let _ = Hdr::parse_nid4(&view);
    }
    let Some(bytes) = data.get(..HDR_NID4_SIZE) else {
        return;
    };
    let mut buf = [0u8; HDR_NID4_SIZE];
    buf.copy_from_slice(bytes);

    if let Ok(hdr) = Hdr::decode_nid4(&buf) {
        let mut out = [0u8; HDR_NID4_SIZE];
        hdr.encode_nid4(&mut out)
            .expect("a decoded classic header re-encodes");
        assert_eq!(out, buf, "classic header round trip changed the bytes");
        assert_eq!(Hdr::decode_nid4(&out), Ok(hdr));
    }
    if let Ok(hello) = Hdr::decode_hello_v1(&buf) {
        let mut out = [0u8; HDR_NID4_SIZE];
        hello
            .encode_nid4(&mut out)
            .expect("a decoded hello re-encodes");
        assert_eq!(out, buf, "hello round trip changed the bytes");
    }
});
