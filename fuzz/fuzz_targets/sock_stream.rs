//! lnd-sock's connection reader (`conn`) over any byte stream after an
//! established V3 handshake: never panics, closes the connection, and
//! finalizes every message it handed to LNet exactly once.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    lnd_sock::fuzzing::stream(data);
});
