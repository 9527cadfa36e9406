//! Fuzzes the Confluent framing of one value: classification never panics, a framed value
//! keeps its body when its id is replaced, and an unframed one is left as it is.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use starlog_wire::{body, framing, with_id, Framing, FRAME_LEN};

fuzz_target!(|data: &[u8]| {
    let value = Bytes::copy_from_slice(data);
    match framing(Some(&value)) {
        Framing::Framed { id } => {
            assert!(value.len() >= FRAME_LEN);
            let new = with_id(&value, id ^ 1);
            assert_eq!(framing(Some(&new)), Framing::Framed { id: id ^ 1 });
            assert_eq!(body(&new), body(&value));
        }
        _ => assert_eq!(with_id(&value, 7), value),
    }
});
