//! Building a v2 record batch for the producer with `kafka_protocol`'s
//! `RecordBatchEncoder`.
//!
//! The encoder starts a new batch whenever `offset - sequence` changes
//! between consecutive records, so we give record `i` the sequence
//! `base_sequence + i` (idempotent) or `i - 1` (plain: the batch's base
//! sequence is then -1, "no sequence"). Either way one call yields exactly
//! one batch, encoded once; retries resend these same bytes.

use bytes::{Bytes, BytesMut};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType, NO_PARTITION_LEADER_EPOCH,
};

use super::Header;
use crate::compression::Compression;

/// A record waiting in the producer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingRecord {
    /// Key, possibly null.
    pub key: Option<Bytes>,
    /// Value, possibly null.
    pub value: Option<Bytes>,
    /// Headers; a repeated key keeps only its last value (codec limit).
    pub headers: Vec<Header>,
    /// Create time in milliseconds.
    pub timestamp: i64,
}

impl PendingRecord {
    /// Upper bound of the record's encoded size (before compression).
    pub fn size_estimate(&self) -> usize {
        let h: usize = self
            .headers
            .iter()
            .map(|h| h.key.len() + h.value.as_ref().map_or(0, Bytes::len) + 10)
            .sum();
        self.key.as_ref().map_or(0, Bytes::len) + self.value.as_ref().map_or(0, Bytes::len) + h + 40
    }
}

/// Producer identity and sequence of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchMeta {
    /// Producer id, -1 for a plain producer.
    pub producer_id: i64,
    /// Producer epoch, -1 for a plain producer.
    pub producer_epoch: i16,
    /// Sequence of the first record, -1 for a plain producer.
    pub base_sequence: i32,
}

impl BatchMeta {
    /// No producer id, no sequence.
    pub fn plain() -> Self {
        Self {
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
        }
    }
}

/// Encodes `records` as one batch with base offset 0.
pub fn encode_batch(
    records: &[PendingRecord],
    codec: Compression,
    meta: BatchMeta,
) -> Result<Bytes, String> {
    if records.is_empty() {
        return Err("empty batch".into());
    }
    let kp: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, r)| {
            // Batches are capped far below 2^31 records.
            let i = i as i32;
            let sequence = if meta.base_sequence >= 0 {
                meta.base_sequence.wrapping_add(i)
            } else {
                i - 1
            };
            let mut headers = IndexMap::with_capacity(r.headers.len());
            for h in &r.headers {
                headers.insert(StrBytes::from_string(h.key.clone()), h.value.clone());
            }
            Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: NO_PARTITION_LEADER_EPOCH,
                producer_id: meta.producer_id,
                producer_epoch: meta.producer_epoch,
                timestamp_type: TimestampType::Creation,
                offset: i64::from(i),
                sequence,
                timestamp: r.timestamp,
                key: r.key.clone(),
                value: r.value.clone(),
                headers,
            }
        })
        .collect();
    let size: usize = records
        .iter()
        .map(PendingRecord::size_estimate)
        .sum::<usize>()
        + starlog_wire::BATCH_HEADER_LEN;
    let mut buf = BytesMut::with_capacity(size);
    RecordBatchEncoder::encode(
        &mut buf,
        kp.iter(),
        &RecordEncodeOptions {
            version: 2,
            compression: crate::compression::to_kp(codec),
        },
    )
    .map_err(|e| e.to_string())?;
    Ok(buf.freeze())
}
