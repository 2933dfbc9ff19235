//! Large-NID LNet header (`lnet_hdr_nid16`) decoder: never panics, and a
//! header that decodes re-encodes to bytes that decode to the same header
//! (and re-encode identically).
#![no_main]

use libfuzzer_sys::fuzz_target;
use lnd_api::hdr::{Hdr, HdrNid16, HDR_NID16_SIZE};

/// Whether raw NID bytes are in the form the decoder keeps verbatim.
fn canonical_nid(raw: &[u8]) -> bool {
    raw[1] != 0xFF && (raw[0] != 0 || raw[8..20].iter().all(|&x| x == 0))
}

fuzz_target!(|data: &[u8]| {
    if let Ok(view) = HdrNid16::new_checked(data) {
        let _ = Hdr::parse_nid16(&view);
    }
    let Some(bytes) = data.get(..HDR_NID16_SIZE) else {
        return;
    };
    let mut buf = [0u8; HDR_NID16_SIZE];
    buf.copy_from_slice(bytes);

    if let Ok(hdr) = Hdr::decode_nid16(&buf) {
        let mut out = [0u8; HDR_NID16_SIZE];
        hdr.encode_nid16(&mut out);
        let again = Hdr::decode_nid16(&out).expect("a re-encoded header decodes");
        assert_eq!(again, hdr);
        let mut out2 = [0u8; HDR_NID16_SIZE];
        again.encode_nid16(&mut out2);
        assert_eq!(out2, out, "large header re-encoding is not stable");
        // Only the ANY marker and the unused address words of 4-byte NIDs
        // are normalised; everything else is kept verbatim.
        if canonical_nid(&buf[0..20]) && canonical_nid(&buf[20..40]) {
            assert_eq!(out, buf, "large header round trip changed the bytes");
        }
        // A header whose NIDs have a classic form also round-trips classic.
        let mut c = [0u8; 72];
        if hdr.encode_nid4(&mut c).is_ok() {
            assert_eq!(Hdr::decode_nid4(&c), Ok(hdr));
        }
    }
});
