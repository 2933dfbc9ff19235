//! Ping / push buffer (`lnet_ping_info`) parser: never panics on any bytes in
//! either byte order, and a buffer that parses re-emits to bytes that parse to
//! the same info (and re-emit identically).
#![no_main]

use libfuzzer_sys::fuzz_target;
use lnet_core::wire::{PingInfo, PingInfoError, LNET_INTERFACES_MAX_DEFAULT};

fuzz_target!(|data: &[u8]| {
    for max in [LNET_INTERFACES_MAX_DEFAULT, 2] {
        match PingInfo::parse(data, max) {
            Ok(info) => {
                let bytes = info.to_vec().expect("a parsed info re-emits");
                assert_eq!(bytes.len(), info.buffer_len());
                let again = PingInfo::parse(&bytes, max).expect("a re-emitted info parses");
                assert_eq!(again, info);
                assert_eq!(
                    again.to_vec().expect("emit"),
                    bytes,
                    "re-emit is not stable"
                );
            }
            Err(PingInfoError::Truncated { received, needed }) => {
                assert!(received < needed, "truncation must ask for more bytes");
                assert_eq!(received, data.len());
            }
            Err(_) => {}
        }
    }
});
