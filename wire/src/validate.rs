//! Whole-batch validation: the header's fields, the batch present in full, its CRC, and
//! the record count agreeing with the last offset delta.

use crate::crc;
use crate::header::{parse_batch_header, BatchError, BatchHeader};

/// Validates the complete batch at the start of `buf` (which may hold more bytes after it).
///
/// On top of [`parse_batch_header`]: the whole batch is present, its CRC-32C matches, and
/// `recordCount == lastOffsetDelta + 1 >= 1`. That last rule holds for every batch a producer
/// sends (compressed or not); batches thinned by log compaction would violate it, and Starlog
/// does not compact.
pub fn validate_batch(buf: &[u8]) -> Result<BatchHeader, BatchError> {
    let header = parse_batch_header(buf)?;
    let declared = header.total_len();
    let batch = buf.get(..declared).ok_or(BatchError::TruncatedBatch {
        batch_length: header.batch_length,
        declared,
        available: buf.len(),
    })?;
    crc::verify_crc(batch)?;
    if header.record_count < 1
        || i64::from(header.record_count) != i64::from(header.last_offset_delta) + 1
    {
        return Err(BatchError::RecordCountMismatch {
            record_count: header.record_count,
            last_offset_delta: header.last_offset_delta,
        });
    }
    Ok(header)
}
