//! Fuzzes the batch walk and the header decoders with arbitrary bytes: they must never panic,
//! whatever they accept must be self-consistent, and the schema-id rewrite of an accepted
//! batch must give a batch whose CRC verifies.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use starlog_wire::{
    batches, parse_batch_header, rewrite_batch, schema_ids, validate_batch, verify_crc,
    BatchHeader, BatchRewrite, RewriteOptions, BATCH_HEADER_LEN, MAGIC_V2,
};

fuzz_target!(|data: &[u8]| {
    let _ = BatchHeader::read(data);
    if let Ok(h) = parse_batch_header(data) {
        assert!(data.len() >= BATCH_HEADER_LEN);
        assert_eq!(h.magic, MAGIC_V2);
        assert!(h.total_len() >= BATCH_HEADER_LEN);
    }
    if let Ok(h) = validate_batch(data) {
        assert!(h.total_len() <= data.len());
        assert!(verify_crc(&data[..h.total_len()]).is_ok());
    }
    let mut end = 0;
    for step in batches(data) {
        let Ok(b) = step else { break };
        assert_eq!(b.at, end);
        assert_eq!(b.header.total_len(), b.bytes.len());
        end += b.bytes.len();
        let opts = RewriteOptions {
            require_framing: false,
            max_decompressed: 1 << 20,
        };
        let _ = schema_ids(b.bytes, &opts);
        let map = |id: u32| Some(id.wrapping_add(1));
        if let Ok(BatchRewrite::Rewritten { bytes, .. }) =
            rewrite_batch(&Bytes::copy_from_slice(b.bytes), &map, &opts)
        {
            assert!(verify_crc(&bytes).is_ok());
        }
    }
    assert!(end <= data.len());
});
