//! The fixed 61-byte header of a v2 record batch: field offsets, decoding, validation, and the
//! in-place patches (base offset and leader epoch, which the CRC does not cover; producer
//! fields, which it does).
//!
//! The CRC-32C covers the bytes from `attributes` (byte 21) to the end of the batch, which is
//! why a log may rewrite `baseOffset` (byte 0) and `partitionLeaderEpoch` (byte 12) without
//! recomputing it.

use crate::compression::Compression;

/// Size of the fixed v2 batch header.
pub const BATCH_HEADER_LEN: usize = 61;
/// Bytes before the part counted by `batchLength` (`baseOffset` + `batchLength`).
pub const LOG_OVERHEAD: usize = 12;
/// The only supported `magic` value.
pub const MAGIC_V2: i8 = 2;

pub(crate) const BASE_OFFSET_AT: usize = 0;
pub(crate) const BATCH_LENGTH_AT: usize = 8;
pub(crate) const LEADER_EPOCH_AT: usize = 12;
pub(crate) const MAGIC_AT: usize = 16;
pub(crate) const CRC_AT: usize = 17;
pub(crate) const ATTRIBUTES_AT: usize = 21;
pub(crate) const LAST_OFFSET_DELTA_AT: usize = 23;
pub(crate) const BASE_TIMESTAMP_AT: usize = 27;
pub(crate) const MAX_TIMESTAMP_AT: usize = 35;
pub(crate) const PRODUCER_ID_AT: usize = 43;
pub(crate) const PRODUCER_EPOCH_AT: usize = 51;
pub(crate) const BASE_SEQUENCE_AT: usize = 53;
pub(crate) const RECORD_COUNT_AT: usize = 57;

/// Attribute bit of `LogAppendTime` timestamps.
const ATTR_LOG_APPEND_TIME: i16 = 0x08;
/// Attribute bit of transactional batches.
const ATTR_TRANSACTIONAL: i16 = 0x10;
/// Attribute bit of control batches (transaction markers).
const ATTR_CONTROL: i16 = 0x20;

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
    /// `batchLength` does not account for exactly the bytes given (a batch handed over alone).
    #[error("batchLength {batch_length} does not match the {given} bytes given")]
    LengthMismatch {
        /// Declared `batchLength`.
        batch_length: i32,
        /// Bytes given.
        given: usize,
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
    /// `recordCount` is negative.
    #[error("recordCount {record_count} is negative")]
    NegativeRecordCount {
        /// Declared record count.
        record_count: i32,
    },
    /// Attribute bits 0-2 name no codec.
    #[error("attributes {attributes:#x} name no compression codec (bits 0-2)")]
    UnknownCompression {
        /// The attributes field.
        attributes: i16,
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
    /// Always 2 after [`parse_batch_header`]; anything after [`BatchHeader::read`].
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

/// The first 61 bytes of `buf` as a fixed array, if there are that many.
fn fixed(buf: &[u8]) -> Result<&[u8; BATCH_HEADER_LEN], BatchError> {
    buf.first_chunk::<BATCH_HEADER_LEN>()
        .ok_or(BatchError::TruncatedHeader {
            available: buf.len(),
        })
}

fn be<const N: usize>(h: &[u8; BATCH_HEADER_LEN], at: usize) -> [u8; N] {
    let mut a = [0u8; N];
    // `at + N <= 61` for every field offset above, so the range is in bounds.
    if let Some(s) = h.get(at..at + N) {
        a.copy_from_slice(s);
    }
    a
}

impl BatchHeader {
    /// Reads the 13 header fields at the start of `buf` without judging them (any magic, any
    /// length). Only fails when `buf` is shorter than the header.
    pub fn read(buf: &[u8]) -> Result<Self, BatchError> {
        let h = fixed(buf)?;
        Ok(Self {
            base_offset: i64::from_be_bytes(be(h, BASE_OFFSET_AT)),
            batch_length: i32::from_be_bytes(be(h, BATCH_LENGTH_AT)),
            partition_leader_epoch: i32::from_be_bytes(be(h, LEADER_EPOCH_AT)),
            magic: i8::from_be_bytes(be(h, MAGIC_AT)),
            crc: u32::from_be_bytes(be(h, CRC_AT)),
            attributes: i16::from_be_bytes(be(h, ATTRIBUTES_AT)),
            last_offset_delta: i32::from_be_bytes(be(h, LAST_OFFSET_DELTA_AT)),
            base_timestamp: i64::from_be_bytes(be(h, BASE_TIMESTAMP_AT)),
            max_timestamp: i64::from_be_bytes(be(h, MAX_TIMESTAMP_AT)),
            producer_id: i64::from_be_bytes(be(h, PRODUCER_ID_AT)),
            producer_epoch: i16::from_be_bytes(be(h, PRODUCER_EPOCH_AT)),
            base_sequence: i32::from_be_bytes(be(h, BASE_SEQUENCE_AT)),
            record_count: i32::from_be_bytes(be(h, RECORD_COUNT_AT)),
        })
    }

    /// Total bytes the batch occupies (`batchLength` + 12). Meaningful after
    /// [`parse_batch_header`], which guarantees `batch_length` is at least 49.
    pub fn total_len(&self) -> usize {
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

    /// The codec of the records section, if the attributes name a known one.
    pub fn codec(&self) -> Option<Compression> {
        Compression::from_attributes(self.attributes)
    }

    /// True when the batch timestamps are `LogAppendTime`.
    pub fn is_log_append_time(&self) -> bool {
        self.attributes & ATTR_LOG_APPEND_TIME != 0
    }

    /// True for transactional batches.
    pub fn is_transactional(&self) -> bool {
        self.attributes & ATTR_TRANSACTIONAL != 0
    }

    /// True for control batches (transaction markers).
    pub fn is_control(&self) -> bool {
        self.attributes & ATTR_CONTROL != 0
    }
}

/// Decodes the 61-byte v2 header at the start of `buf`.
///
/// Checks only what the header alone can tell: enough bytes for the header, a `batchLength`
/// that covers at least the header, and `magic == 2`. It does not require the whole batch to
/// be present and does not check the CRC (see [`validate_batch`]).
pub fn parse_batch_header(buf: &[u8]) -> Result<BatchHeader, BatchError> {
    let h = BatchHeader::read(buf)?;
    let min = (BATCH_HEADER_LEN - LOG_OVERHEAD) as i32;
    if h.batch_length < min {
        return Err(BatchError::LengthTooSmall {
            batch_length: h.batch_length,
            min,
        });
    }
    if h.magic != MAGIC_V2 {
        return Err(BatchError::BadMagic { magic: h.magic });
    }
    Ok(h)
}

/// Rewrites `baseOffset` and `partitionLeaderEpoch` of the batch at the start of `batch`.
/// Neither field is covered by the CRC.
pub fn patch_base_offset_and_epoch(
    batch: &mut [u8],
    base_offset: i64,
    leader_epoch: i32,
) -> Result<(), BatchError> {
    let available = batch.len();
    let h = batch
        .first_chunk_mut::<BATCH_HEADER_LEN>()
        .ok_or(BatchError::TruncatedHeader { available })?;
    h[BASE_OFFSET_AT..BASE_OFFSET_AT + 8].copy_from_slice(&base_offset.to_be_bytes());
    h[LEADER_EPOCH_AT..LEADER_EPOCH_AT + 4].copy_from_slice(&leader_epoch.to_be_bytes());
    Ok(())
}

/// Rewrites the producer id, epoch and base sequence of the batch at the start of `batch`.
/// These fields are covered by the CRC: call [`crate::recompute_crc`] afterwards.
pub fn patch_producer(
    batch: &mut [u8],
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
) -> Result<(), BatchError> {
    let available = batch.len();
    let h = batch
        .first_chunk_mut::<BATCH_HEADER_LEN>()
        .ok_or(BatchError::TruncatedHeader { available })?;
    h[PRODUCER_ID_AT..PRODUCER_ID_AT + 8].copy_from_slice(&producer_id.to_be_bytes());
    h[PRODUCER_EPOCH_AT..PRODUCER_EPOCH_AT + 2].copy_from_slice(&producer_epoch.to_be_bytes());
    h[BASE_SEQUENCE_AT..BASE_SEQUENCE_AT + 4].copy_from_slice(&base_sequence.to_be_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn minimal_batch() -> Vec<u8> {
        let mut b = vec![0u8; BATCH_HEADER_LEN];
        b[BATCH_LENGTH_AT..BATCH_LENGTH_AT + 4].copy_from_slice(&49i32.to_be_bytes());
        b[MAGIC_AT] = 2;
        b[RECORD_COUNT_AT..RECORD_COUNT_AT + 4].copy_from_slice(&1i32.to_be_bytes());
        let crc = crc32c::crc32c(&b[ATTRIBUTES_AT..]);
        b[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
        b
    }

    #[test]
    fn minimal_batch_validates() {
        let h = crate::validate_batch(&minimal_batch()).unwrap();
        assert_eq!(h.total_len(), BATCH_HEADER_LEN);
        assert_eq!(h.record_count, 1);
        assert_eq!(h.last_offset(), 0);
    }

    #[test]
    fn patch_keeps_crc_valid() {
        let mut b = minimal_batch();
        patch_base_offset_and_epoch(&mut b, 1234, 7).unwrap();
        let h = crate::validate_batch(&b).unwrap();
        assert_eq!(h.base_offset, 1234);
        assert_eq!(h.partition_leader_epoch, 7);
    }

    #[test]
    fn producer_patch_needs_a_new_crc() {
        let mut b = minimal_batch();
        patch_producer(&mut b, 9, 2, 40).unwrap();
        assert!(matches!(
            crate::validate_batch(&b),
            Err(BatchError::CrcMismatch { .. })
        ));
        crate::recompute_crc(&mut b).unwrap();
        let h = crate::validate_batch(&b).unwrap();
        assert_eq!(
            (h.producer_id, h.producer_epoch, h.base_sequence),
            (9, 2, 40)
        );
    }

    #[test]
    fn short_buffer_is_truncated_header() {
        let b = minimal_batch();
        assert_eq!(
            parse_batch_header(&b[..60]),
            Err(BatchError::TruncatedHeader { available: 60 })
        );
        let mut short = b[..60].to_vec();
        assert_eq!(
            patch_base_offset_and_epoch(&mut short, 1, 1),
            Err(BatchError::TruncatedHeader { available: 60 })
        );
        assert_eq!(
            patch_producer(&mut short, 1, 1, 1),
            Err(BatchError::TruncatedHeader { available: 60 })
        );
    }

    #[test]
    fn attribute_bits() {
        let mut b = minimal_batch();
        b[ATTRIBUTES_AT + 1] = 0x3c; // zstd, log-append time, transactional, control
        let h = BatchHeader::read(&b).unwrap();
        assert_eq!(h.compression(), 4);
        assert_eq!(h.codec(), Some(Compression::Zstd));
        assert!(h.is_log_append_time() && h.is_transactional() && h.is_control());
        b[ATTRIBUTES_AT + 1] = 0x07;
        assert_eq!(BatchHeader::read(&b).unwrap().codec(), None);
    }
}
