//! Arbitrary bytes from a peer's inter-broker connection: the frame decoder
//! must answer with an error, never panic or allocate without bound, and a
//! frame it accepts must encode and decode again. (Byte equality is not a
//! property here: rust-protobuf keeps unknown fields in a hash map, so their
//! order on re-encoding varies.)
#![no_main]

use libfuzzer_sys::fuzz_target;
use starlog_replication::{decode_frame, encode_frame};

fuzz_target!(|data: &[u8]| {
    if let Ok(envelopes) = decode_frame(data) {
        let again = decode_frame(&encode_frame(&envelopes)).expect("a re-encoded frame decodes");
        assert_eq!(again.len(), envelopes.len());
        for (a, b) in again.iter().zip(&envelopes) {
            assert_eq!(a.group, b.group);
        }
    }
});
