//! Fuzzes the record batch v2 header decoder and whole-batch validator: they must never panic,
//! and whatever they accept must be self-consistent.
#![no_main]

use libfuzzer_sys::fuzz_target;
use starlog_storage::{parse_batch_header, validate_batch, BATCH_HEADER_LEN, MAGIC_V2};

fuzz_target!(|data: &[u8]| {
    if let Ok(h) = parse_batch_header(data) {
        assert!(data.len() >= BATCH_HEADER_LEN);
        assert_eq!(h.magic, MAGIC_V2);
        assert!(h.total_len() >= BATCH_HEADER_LEN);
        let _ = (
            h.last_offset(),
            h.compression(),
            h.is_control(),
            h.is_transactional(),
        );
    }
    if let Ok(h) = validate_batch(data) {
        assert!(h.total_len() <= data.len());
        assert_eq!(
            i64::from(h.record_count),
            i64::from(h.last_offset_delta) + 1
        );
        assert_eq!(crc32c::crc32c(&data[21..h.total_len()]), h.crc);
    }
});
