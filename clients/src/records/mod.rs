//! Kafka record batches (format v2): the record types users see, the
//! encoder the producer uses and the decoder the consumer uses.
//!
//! The consumer-side decoder is our own rather than the codec crate's: it
//! reads broker bytes, so it checks every length against what is there,
//! verifies the CRC-32C, bounds decompression, and hands keys and values
//! out as zero-copy slices of the fetched (or decompressed) buffer.

pub mod decode;
pub mod encode;

use bytes::Bytes;

/// One record header. Kafka allows repeated keys; order is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Header key (UTF-8 by convention; invalid UTF-8 is replaced).
    pub key: String,
    /// Header value, possibly null.
    pub value: Option<Bytes>,
}

impl Header {
    /// A header with a value.
    pub fn new(key: impl Into<String>, value: impl Into<Bytes>) -> Self {
        Self {
            key: key.into(),
            value: Some(value.into()),
        }
    }
}

/// Whether a timestamp was set by the producer or by the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampType {
    /// `CreateTime`: set by the producer.
    Create,
    /// `LogAppendTime`: set by the broker.
    LogAppend,
}

/// A record read from a partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerRecord {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Offset in the partition.
    pub offset: i64,
    /// Timestamp in milliseconds since the epoch.
    pub timestamp: i64,
    /// Who set the timestamp.
    pub timestamp_type: TimestampType,
    /// Key, possibly null.
    pub key: Option<Bytes>,
    /// Value, possibly null (a tombstone).
    pub value: Option<Bytes>,
    /// Headers in wire order.
    pub headers: Vec<Header>,
    /// Partition leader epoch of the batch, -1 when unknown.
    pub leader_epoch: i32,
}

/// A whole record batch as stored by the broker, for callers that move
/// batches without decoding them (the mirror).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawBatch {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Offset of the first record of the batch.
    pub base_offset: i64,
    /// Offset of the last record of the batch.
    pub last_offset: i64,
    /// Records in the batch (from the header).
    pub record_count: i32,
    /// Codec of the records section.
    pub compression: crate::compression::Compression,
    /// The batch bytes, from the base offset field to the end, unchanged.
    pub bytes: Bytes,
}
