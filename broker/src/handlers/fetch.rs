//! Fetch: whole stored batches as bytes, with long polling.
//!
//! A fetch that cannot be satisfied yet (`min_bytes`) subscribes to the
//! high-watermark channels of its partitions *before* reading, then sleeps
//! until one of them moves or `max_wait_ms` passes — woken by appends, not by
//! a spinning timer. Responses honour `max_bytes` and `partition_max_bytes`;
//! as in KIP-74, the first batch is returned whole even when it is larger.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{FetchRequest, FetchResponse, TopicName};
use kafka_protocol::ResponseError;
use tokio::sync::watch;
use tokio::time::Instant;

use starlog_security::AclOperation;

use super::access::Access;
use crate::broker::Broker;
use crate::errors::append_error_code;
use crate::partition::Partition;

struct Wanted {
    partition: Result<Arc<Partition>, ResponseError>,
    index: i32,
    offset: i64,
    max_bytes: usize,
}

struct WantedTopic {
    name: TopicName,
    partitions: Vec<Wanted>,
}

fn to_usize(v: i32) -> usize {
    usize::try_from(v).unwrap_or(0)
}

/// Handles a Fetch request. A topic the principal may not Read answers
/// TOPIC_AUTHORIZATION_FAILED on each of its partitions.
pub async fn handle(
    broker: &Broker,
    req: FetchRequest,
    version: i16,
    access: &Access<'_>,
) -> FetchResponse {
    let cap = broker.config.limits.max_fetch_wait_ms;
    let wait = Duration::from_millis(u64::try_from(req.max_wait_ms).unwrap_or(0).min(cap));
    let deadline = Instant::now() + wait;
    let min_bytes = to_usize(req.min_bytes);
    let max_bytes = if version >= 3 {
        to_usize(req.max_bytes)
    } else {
        usize::MAX
    };
    let wanted: Vec<WantedTopic> = req
        .topics
        .into_iter()
        .map(|t| {
            let readable = access.topic(AclOperation::Read, &t.topic.0);
            let topic = if readable {
                broker.topics.get(&t.topic.0)
            } else {
                None
            };
            let missing = if readable {
                ResponseError::UnknownTopicOrPartition
            } else {
                ResponseError::TopicAuthorizationFailed
            };
            WantedTopic {
                name: t.topic,
                partitions: t
                    .partitions
                    .into_iter()
                    .map(|p| Wanted {
                        partition: topic
                            .as_ref()
                            .ok_or(missing)
                            .and_then(|t| t.lookup(p.partition).cloned()),
                        index: p.partition,
                        offset: p.fetch_offset,
                        max_bytes: to_usize(p.partition_max_bytes),
                    })
                    .collect(),
            }
        })
        .collect();

    loop {
        let mut receivers: Vec<watch::Receiver<i64>> = wanted
            .iter()
            .flat_map(|t| t.partitions.iter())
            .filter_map(|w| w.partition.as_ref().ok().map(|p| p.subscribe()))
            .collect();
        for rx in &mut receivers {
            rx.borrow_and_update();
        }
        let (responses, bytes, errors) = read_all(&wanted, max_bytes).await;
        if bytes >= min_bytes || errors || receivers.is_empty() || Instant::now() >= deadline {
            return FetchResponse::default().with_responses(responses);
        }
        let changed =
            futures::future::select_all(receivers.iter_mut().map(|rx| Box::pin(rx.changed())));
        if tokio::time::timeout_at(deadline, changed).await.is_err() {
            // Deadline: answer with whatever is there now.
            let (responses, _, _) = read_all(&wanted, max_bytes).await;
            return FetchResponse::default().with_responses(responses);
        }
    }
}

async fn read_all(
    wanted: &[WantedTopic],
    max_bytes: usize,
) -> (Vec<FetchableTopicResponse>, usize, bool) {
    let mut used = 0usize;
    let mut errors = false;
    let mut topics = Vec::with_capacity(wanted.len());
    for t in wanted {
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for w in &t.partitions {
            let budget = max_bytes.saturating_sub(used).min(w.max_bytes);
            let data = read_one(w, budget, used > 0).await;
            if data.error_code != 0 {
                errors = true;
            }
            used += data.records.as_ref().map_or(0, Bytes::len);
            partitions.push(data);
        }
        topics.push(
            FetchableTopicResponse::default()
                .with_topic(t.name.clone())
                .with_partitions(partitions),
        );
    }
    (topics, used, errors)
}

fn empty(index: i32, code: ResponseError) -> PartitionData {
    PartitionData::default()
        .with_partition_index(index)
        .with_error_code(code.code())
        .with_high_watermark(-1)
        .with_last_stable_offset(-1)
        .with_log_start_offset(-1)
        .with_records(Some(Bytes::new()))
}

async fn read_one(w: &Wanted, budget: usize, strict: bool) -> PartitionData {
    let partition = match &w.partition {
        Ok(p) => p,
        Err(code) => return empty(w.index, *code),
    };
    if let Some(code) = partition.leader_error() {
        return empty(w.index, code);
    }
    let hw = partition.high_watermark();
    let start = partition.log().log_start_offset();
    let base = PartitionData::default()
        .with_partition_index(w.index)
        .with_high_watermark(hw)
        .with_last_stable_offset(hw)
        .with_log_start_offset(start)
        .with_records(Some(Bytes::new()));
    if w.offset < start || w.offset > hw {
        return base.with_error_code(ResponseError::OffsetOutOfRange.code());
    }
    if w.offset == hw || budget == 0 {
        return base;
    }
    match partition.fetch(w.offset, budget).await {
        Ok(read) => {
            let total: usize = read.chunks.iter().map(Bytes::len).sum();
            if strict && total > budget {
                // Only the first non-empty partition may exceed the budget.
                return base;
            }
            base.with_records(Some(concat(read.chunks, total)))
        }
        Err(e) => {
            tracing::warn!(partition = w.index, offset = w.offset, error = %e, "fetch read failed");
            base.with_error_code(append_error_code(&e).code())
        }
    }
}

fn concat(mut chunks: Vec<Bytes>, total: usize) -> Bytes {
    if chunks.len() == 1 {
        return chunks.pop().unwrap_or_default();
    }
    let mut buf = BytesMut::with_capacity(total);
    for c in chunks {
        buf.extend_from_slice(&c);
    }
    buf.freeze()
}
