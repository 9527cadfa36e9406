//! ListOffsets: earliest (-2), latest (-1), and the first offset at or after
//! a timestamp.
//!
//! Storage answers timestamp lookups at batch granularity; the broker then
//! looks inside that one batch (decompressing it if needed) to return the
//! exact first record whose timestamp is at or after the target.

use bytes::Bytes;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
use kafka_protocol::records::RecordBatchDecoder;
use kafka_protocol::ResponseError;

use starlog_security::AclOperation;

use super::access::Access;
use crate::broker::Broker;
use crate::partition::Partition;

/// Kafka's "earliest" sentinel.
pub const EARLIEST: i64 = -2;
/// Kafka's "latest" sentinel.
pub const LATEST: i64 = -1;

/// Handles a ListOffsets request. A topic the principal may not Describe
/// answers TOPIC_AUTHORIZATION_FAILED on each of its partitions.
pub async fn handle(
    broker: &Broker,
    req: ListOffsetsRequest,
    version: i16,
    access: &Access<'_>,
) -> ListOffsetsResponse {
    let mut topics = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let describable = access.topic(AclOperation::Describe, &t.name.0);
        let topic = if describable {
            broker.topics.get(&t.name.0)
        } else {
            None
        };
        let missing = if describable {
            ResponseError::UnknownTopicOrPartition
        } else {
            ResponseError::TopicAuthorizationFailed
        };
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for p in t.partitions {
            let base =
                ListOffsetsPartitionResponse::default().with_partition_index(p.partition_index);
            let found = topic
                .as_ref()
                .ok_or(missing)
                .and_then(|t| t.lookup(p.partition_index));
            let Ok(partition) = found else {
                let code = found.err().unwrap_or(missing);
                partitions.push(
                    base.with_error_code(code.code())
                        .with_offset(-1)
                        .with_timestamp(-1),
                );
                continue;
            };
            if let Some(code) = partition.leader_error() {
                partitions.push(
                    base.with_error_code(code.code())
                        .with_offset(-1)
                        .with_timestamp(-1),
                );
                continue;
            }
            let (offset, timestamp) = match p.timestamp {
                EARLIEST => (partition.log().log_start_offset(), -1),
                LATEST => (partition.high_watermark(), -1),
                ts if ts < 0 => {
                    partitions.push(
                        base.with_error_code(ResponseError::UnsupportedVersion.code())
                            .with_offset(-1)
                            .with_timestamp(-1),
                    );
                    continue;
                }
                ts => match by_timestamp(partition, ts).await {
                    Ok(found) => found,
                    Err(code) => {
                        partitions.push(
                            base.with_error_code(code.code())
                                .with_offset(-1)
                                .with_timestamp(-1),
                        );
                        continue;
                    }
                },
            };
            // The leader epoch field exists from v4 on (older versions
            // cannot encode it).
            let epoch = partition.leader_epoch();
            let base = base.with_offset(offset).with_timestamp(timestamp);
            partitions.push(if version >= 4 {
                base.with_leader_epoch(epoch)
            } else {
                base
            });
        }
        topics.push(
            ListOffsetsTopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions),
        );
    }
    ListOffsetsResponse::default().with_topics(topics)
}

/// First (offset, timestamp) at or after `ts`, or (-1, -1) when none.
async fn by_timestamp(partition: &Partition, ts: i64) -> Result<(i64, i64), ResponseError> {
    let log = std::sync::Arc::clone(partition.log());
    let hw = partition.high_watermark();
    let found = tokio::task::spawn_blocking(
        move || -> Result<Option<(i64, i64, Option<Bytes>)>, String> {
            let Some((offset, batch_ts)) =
                log.offset_for_timestamp(ts).map_err(|e| e.to_string())?
            else {
                return Ok(None);
            };
            if offset >= hw {
                return Ok(None);
            }
            let read = log.read(offset, 1, hw).map_err(|e| e.to_string())?;
            Ok(Some((offset, batch_ts, read.chunks.into_iter().next())))
        },
    )
    .await
    .map_err(|_| ResponseError::UnknownServerError)?
    .map_err(|e| {
        tracing::warn!(error = %e, "timestamp lookup failed");
        ResponseError::KafkaStorageError
    })?;
    let Some((offset, batch_ts, batch)) = found else {
        return Ok((-1, -1));
    };
    Ok(batch
        .and_then(|b| first_record_at_or_after(b, ts, offset))
        .unwrap_or((offset, batch_ts)))
}

/// Looks inside one stored batch (compressed or not) for the first record
/// with a timestamp at or after `ts` and an offset at or after `from`.
fn first_record_at_or_after(mut batch: Bytes, ts: i64, from: i64) -> Option<(i64, i64)> {
    let set = RecordBatchDecoder::decode(&mut batch).ok()?;
    set.records
        .iter()
        .find(|r| r.timestamp >= ts && r.offset >= from)
        .map(|r| (r.offset, r.timestamp))
}
