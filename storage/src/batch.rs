//! Kafka record batch v2 header: decoding, validation and the two in-place patches the log makes.
//!
//! The log stores batches exactly as the producer sent them. It only needs the fixed 61-byte
//! header to assign offsets, build indexes and find batch boundaries, so records are never
//! decoded here (compressed batches stay compressed). The CRC-32C covers the bytes from
//! `attributes` (byte 21) to the end, which is why the log may rewrite `baseOffset` (byte 0) and
//! `partitionLeaderEpoch` (byte 12) without recomputing it.

/// Size of the fixed v2 batch header.
pub const BATCH_HEADER_LEN: usize = 61;
/// Bytes before the part counted by `batchLength` (`baseOffset` + `batchLength`).
pub const LOG_OVERHEAD: usize = 12;
/// The only supported `magic` value.
pub const MAGIC_V2: i8 = 2;

const OFF_BASE_OFFSET: usize = 0;
const OFF_BATCH_LENGTH: usize = 8;
const OFF_LEADER_EPOCH: usize = 12;
const OFF_MAGIC: usize = 16;
const OFF_CRC: usize = 17;
const OFF_ATTRIBUTES: usize = 21;
const OFF_LAST_OFFSET_DELTA: usize = 23;
const OFF_BASE_TIMESTAMP: usize = 27;
const OFF_MAX_TIMESTAMP: usize = 35;
const OFF_PRODUCER_ID: usize = 43;
const OFF_PRODUCER_EPOCH: usize = 51;
const OFF_BASE_SEQUENCE: usize = 53;
const OFF_RECORD_COUNT: usize = 57;

/// What is wrong with a record batch. Positions are relative to the start of the batch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BatchError {
    /// Fewer bytes than the 61-byte header.
    #[error("truncated header: {available} bytes, need {BATCH_HEADER_LEN}")]
    TruncatedHeader {
        /// Bytes available.
        available: usize,
    },
    /// `batchLength` is smaller than the rest of the header.
    #[error("batchLength {batch_length} is smaller than the header ({min})")]
    LengthTooSmall {
        /// Declared `batchLength`.
        batch_length: i32,
        /// Smallest valid value.
        min: i32,
    },
    /// `batchLength` says the batch continues past the available bytes.
    #[error(
        "batchLength {batch_length} declares {declared} bytes but only {available} are present"
    )]
    TruncatedBatch {
        /// Declared `batchLength`.
        batch_length: i32,
        /// Total bytes the batch should occupy (`batchLength` + 12).
        declared: usize,
        /// Bytes available.
        available: usize,
    },
    /// `magic` is not 2.
    #[error("unsupported magic {magic} (only record batch v2 is accepted)")]
    BadMagic {
        /// The magic byte found.
        magic: i8,
    },
    /// Stored CRC-32C does not match the bytes.
    #[error("CRC-32C mismatch: header says {stored:#010x}, bytes give {computed:#010x}")]
    CrcMismatch {
        /// CRC in the header.
        stored: u32,
        /// CRC of the bytes.
        computed: u32,
    },
    /// `recordCount` does not match `lastOffsetDelta + 1` (or is not positive).
    #[error("recordCount {record_count} does not match lastOffsetDelta {last_offset_delta} (expected recordCount = lastOffsetDelta + 1 >= 1)")]
    RecordCountMismatch {
        /// Declared record count.
        record_count: i32,
        /// Declared last offset delta.
        last_offset_delta: i32,
    },
}

/// Decoded fixed header of a v2 record batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    /// First offset of the batch.
    pub base_offset: i64,
    /// Bytes after the `batchLength` field.
    pub batch_length: i32,
    /// Leader epoch (Raft term) that wrote the batch.
    pub partition_leader_epoch: i32,
    /// Always 2 after successful parsing.
    pub magic: i8,
    /// CRC-32C of bytes 21..end.
    pub crc: u32,
    /// Compression (bits 0-2), timestamp type (bit 3), transactional (bit 4), control (bit 5).
    pub attributes: i16,
    /// Offset of the last record relative to `base_offset`.
    pub last_offset_delta: i32,
    /// Timestamp of the first record.
    pub base_timestamp: i64,
    /// Largest timestamp in the batch.
    pub max_timestamp: i64,
    /// Idempotent producer id, or -1.
    pub producer_id: i64,
    /// Idempotent producer epoch, or -1.
    pub producer_epoch: i16,
    /// Sequence of the first record, or -1.
    pub base_sequence: i32,
    /// Number of records.
    pub record_count: i32,
}

impl BatchHeader {
    /// Total bytes the batch occupies (`batchLength` + 12). Only meaningful after parsing, which
    /// guarantees `batch_length` is at least 49.
    pub fn total_len(&self) -> usize {
        // batch_length >= 49 was checked by parse_batch_header, so the cast is lossless.
        LOG_OVERHEAD + self.batch_length.unsigned_abs() as usize
    }

    /// Offset of the last record of the batch.
    pub fn last_offset(&self) -> i64 {
        self.base_offset + i64::from(self.last_offset_delta)
    }

    /// Compression codec id (0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd).
    pub fn compression(&self) -> u8 {
        (self.attributes & 0x07) as u8
    }

    /// True when the batch timestamps are `LogAppendTime`.
    pub fn is_log_append_time(&self) -> bool {
        self.attributes & 0x08 != 0
    }

    /// True for transactional batches.
    pub fn is_transactional(&self) -> bool {
        self.attributes & 0x10 != 0
    }

    /// True for control batches (transaction markers).
    pub fn is_control(&self) -> bool {
        self.attributes & 0x20 != 0
    }
}

fn be_i64(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(a)
}

fn be_i32(b: &[u8], at: usize) -> i32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    i32::from_be_bytes(a)
}

fn be_u32(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_be_bytes(a)
}

fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}

/// Decodes the 61-byte v2 header at the start of `buf`.
///
/// Checks only what the header alone can tell: enough bytes for the header, `magic == 2`, and a
/// `batchLength` that covers at least the header. It does not require the whole batch to be
/// present and does not check the CRC (see [`validate_batch`]).
pub fn parse_batch_header(buf: &[u8]) -> Result<BatchHeader, BatchError> {
    if buf.len() < BATCH_HEADER_LEN {
        return Err(BatchError::TruncatedHeader {
            available: buf.len(),
        });
    }
    let batch_length = be_i32(buf, OFF_BATCH_LENGTH);
    let min = (BATCH_HEADER_LEN - LOG_OVERHEAD) as i32;
    if batch_length < min {
        return Err(BatchError::LengthTooSmall { batch_length, min });
    }
    let magic = buf[OFF_MAGIC] as i8;
    if magic != MAGIC_V2 {
        return Err(BatchError::BadMagic { magic });
    }
    Ok(BatchHeader {
        base_offset: be_i64(buf, OFF_BASE_OFFSET),
        batch_length,
        partition_leader_epoch: be_i32(buf, OFF_LEADER_EPOCH),
        magic,
        crc: be_u32(buf, OFF_CRC),
        attributes: be_i16(buf, OFF_ATTRIBUTES),
        last_offset_delta: be_i32(buf, OFF_LAST_OFFSET_DELTA),
        base_timestamp: be_i64(buf, OFF_BASE_TIMESTAMP),
        max_timestamp: be_i64(buf, OFF_MAX_TIMESTAMP),
        producer_id: be_i64(buf, OFF_PRODUCER_ID),
        producer_epoch: be_i16(buf, OFF_PRODUCER_EPOCH),
        base_sequence: be_i32(buf, OFF_BASE_SEQUENCE),
        record_count: be_i32(buf, OFF_RECORD_COUNT),
    })
}

/// Validates the complete batch at the start of `buf` (which may hold more bytes after it).
///
/// On top of [`parse_batch_header`]: the whole batch is present, its CRC-32C matches, and
/// `recordCount == lastOffsetDelta + 1 >= 1`. That last rule holds for every batch a producer
/// sends (compressed or not); batches thinned by log compaction would violate it, and Starlog
/// does not compact.
pub fn validate_batch(buf: &[u8]) -> Result<BatchHeader, BatchError> {
    let header = parse_batch_header(buf)?;
    let declared = header.total_len();
    if declared > buf.len() {
        return Err(BatchError::TruncatedBatch {
            batch_length: header.batch_length,
            declared,
            available: buf.len(),
        });
    }
    let computed = crc32c::crc32c(&buf[OFF_ATTRIBUTES..declared]);
    if computed != header.crc {
        return Err(BatchError::CrcMismatch {
            stored: header.crc,
            computed,
        });
    }
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

/// Rewrites `baseOffset` and `partitionLeaderEpoch` of the batch at the start of `batch`.
/// Neither field is covered by the CRC. `batch` must hold at least the header.
pub(crate) fn patch_header(batch: &mut [u8], base_offset: i64, leader_epoch: i32) {
    batch[OFF_BASE_OFFSET..OFF_BASE_OFFSET + 8].copy_from_slice(&base_offset.to_be_bytes());
    batch[OFF_LEADER_EPOCH..OFF_LEADER_EPOCH + 4].copy_from_slice(&leader_epoch.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minimal_batch() -> Vec<u8> {
        let mut b = vec![0u8; BATCH_HEADER_LEN];
        b[OFF_BATCH_LENGTH..OFF_BATCH_LENGTH + 4].copy_from_slice(&49i32.to_be_bytes());
        b[OFF_MAGIC] = 2;
        b[OFF_RECORD_COUNT..OFF_RECORD_COUNT + 4].copy_from_slice(&1i32.to_be_bytes());
        let crc = crc32c::crc32c(&b[OFF_ATTRIBUTES..]);
        b[OFF_CRC..OFF_CRC + 4].copy_from_slice(&crc.to_be_bytes());
        b
    }

    #[test]
    fn minimal_batch_validates() {
        let h = validate_batch(&minimal_batch()).unwrap();
        assert_eq!(h.total_len(), BATCH_HEADER_LEN);
        assert_eq!(h.record_count, 1);
        assert_eq!(h.last_offset(), 0);
    }

    #[test]
    fn patch_keeps_crc_valid() {
        let mut b = minimal_batch();
        patch_header(&mut b, 1234, 7);
        let h = validate_batch(&b).unwrap();
        assert_eq!(h.base_offset, 1234);
        assert_eq!(h.partition_leader_epoch, 7);
    }

    #[test]
    fn short_buffer_is_truncated_header() {
        let b = minimal_batch();
        assert_eq!(
            parse_batch_header(&b[..60]),
            Err(BatchError::TruncatedHeader { available: 60 })
        );
    }
}
