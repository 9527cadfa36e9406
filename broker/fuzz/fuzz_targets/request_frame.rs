//! Fuzzes the request decoder: any bytes a client can send as one frame
//! must decode or be refused, never panic or abort.
//!
//! Run from `broker/`: `cargo fuzz run request_frame` (see broker/fuzz/README.md).

#![no_main]

use libfuzzer_sys::fuzz_target;

/// The `starlog` binary's allocator: an absurd element count decoded from
/// the frame must fail in the decoder, not abort the process.
#[global_allocator]
static GLOBAL: starlog_alloc::GuardedAllocator = starlog_alloc::GuardedAllocator;

fuzz_target!(|data: &[u8]| {
    let _ = starlog_broker::parse_frame(bytes::Bytes::copy_from_slice(data));
});
