//! Selftest RPC decoder (`lnet_selftest::wire::SrpcMsg::parse`,
//! `parse_dests`): never panics on any bytes, and a message that parses
//! re-emits in the sender's order to bytes that parse to the same type.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lnet_selftest::wire::{parse_dests, ByteOrder, SrpcMsg};

fuzz_target!(|data: &[u8]| {
    if let Ok((m, order)) = SrpcMsg::parse(data) {
        let again = SrpcMsg::parse(&m.emit_in(order)).expect("re-emitted message parses");
        assert_eq!(again.0.body.msg_type(), m.body.msg_type());
        assert_eq!(again.1, order);
    }
    let _ = parse_dests(data, data.len() / 12, ByteOrder::Big);
});
