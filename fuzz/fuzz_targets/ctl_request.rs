//! Control-socket request decoder (`liblnetconfig::proto::decode_request`):
//! never panics on any bytes, and a request that decodes re-encodes to a
//! line that decodes to the same request.
#![no_main]

use libfuzzer_sys::fuzz_target;
use liblnetconfig::proto::{decode_request, encode_request};

fuzz_target!(|data: &[u8]| {
    if let Ok(req) = decode_request(data) {
        let line = encode_request(&req);
        let again = decode_request(&line[..line.len() - 1]).expect("a re-encoded request decodes");
        assert_eq!(again, req);
    }
});
