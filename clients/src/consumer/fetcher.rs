//! One Fetch request to one leader for a set of partitions.
//!
//! The consumer keeps at most one fetch in flight per leader and starts the
//! next one as soon as the previous results are handed out, so the network
//! works while the caller processes. Each target carries the partition's
//! seek epoch; a result whose epoch is stale (the caller seeked, paused or
//! lost the partition meanwhile) is dropped by the consumer.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{FetchRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use crate::cluster::Cluster;
use crate::error::{ClientError, Result};
use crate::TopicPartition;

/// A partition to fetch.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub tp: TopicPartition,
    pub offset: i64,
    pub epoch: u64,
}

/// What came back for one partition.
#[derive(Debug)]
pub(crate) struct Fetched {
    pub target: Target,
    pub error: Option<ResponseError>,
    pub records: Bytes,
    pub high_watermark: i64,
}

/// Result of one fetch request.
#[derive(Debug)]
pub(crate) struct Outcome {
    pub leader: i32,
    pub targets: Vec<Target>,
    pub result: Result<Vec<Fetched>>,
}

/// Fetch sizes and waits.
#[derive(Debug, Clone)]
pub(crate) struct FetchLimits {
    pub max_wait: Duration,
    pub min_bytes: i32,
    pub max_bytes: i32,
    pub partition_max_bytes: i32,
}

pub(crate) async fn fetch(
    cluster: Arc<Cluster>,
    leader: i32,
    targets: Vec<Target>,
    limits: FetchLimits,
) -> Outcome {
    let result = run(&cluster, leader, &targets, &limits).await;
    if let Err(e) = &result {
        for t in &targets {
            cluster.invalidate(&t.tp.topic);
        }
        tracing::debug!(leader, error = %e, "fetch failed");
        // Do not spin against a dead broker.
        cluster.backoff().await;
    }
    Outcome {
        leader,
        targets,
        result,
    }
}

async fn run(
    cluster: &Arc<Cluster>,
    leader: i32,
    targets: &[Target],
    limits: &FetchLimits,
) -> Result<Vec<Fetched>> {
    let conn = cluster.connection_to(leader).await?;
    let mut topics: Vec<FetchTopic> = Vec::new();
    for t in targets {
        let p = FetchPartition::default()
            .with_partition(t.tp.partition)
            .with_fetch_offset(t.offset)
            .with_partition_max_bytes(limits.partition_max_bytes);
        match topics.iter_mut().find(|x| x.topic.0.as_str() == t.tp.topic) {
            Some(x) => x.partitions.push(p),
            None => topics.push(
                FetchTopic::default()
                    .with_topic(TopicName(StrBytes::from_string(t.tp.topic.clone())))
                    .with_partitions(vec![p]),
            ),
        }
    }
    let wait = i32::try_from(limits.max_wait.as_millis()).unwrap_or(i32::MAX);
    let req = FetchRequest::default()
        .with_max_wait_ms(wait)
        .with_min_bytes(limits.min_bytes)
        .with_max_bytes(limits.max_bytes)
        .with_topics(topics);
    let resp = conn.call_extra(&req, limits.max_wait).await?;
    if let Some(e) = ClientError::broker(format!("fetch from broker {leader}"), resp.error_code) {
        return Err(e);
    }
    let mut out = Vec::with_capacity(targets.len());
    for t in targets {
        let p = resp
            .responses
            .iter()
            .filter(|r| r.topic.0.as_str() == t.tp.topic)
            .flat_map(|r| r.partitions.iter())
            .find(|p| p.partition_index == t.tp.partition);
        match p {
            Some(p) => out.push(Fetched {
                target: t.clone(),
                error: ResponseError::try_from_code(p.error_code),
                records: p.records.clone().unwrap_or_default(),
                high_watermark: p.high_watermark,
            }),
            // Not answered (a broker may omit partitions): fetch again later.
            None => out.push(Fetched {
                target: t.clone(),
                error: None,
                records: Bytes::new(),
                high_watermark: -1,
            }),
        }
    }
    Ok(out)
}
