//! Fuzzes the request decoder: any bytes a client can send as one frame
//! must decode or be refused, never panic or abort.
//!
//! Run from `broker/`: `cargo fuzz run request_frame` (see broker/fuzz/README.md).

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = starlog_broker::dispatch::parse_frame(bytes::Bytes::copy_from_slice(data));
});
