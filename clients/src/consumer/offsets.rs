//! Offsets kept by the cluster: committing and reading a group's committed
//! offsets (OffsetCommit / OffsetFetch to the coordinator) and looking up
//! log offsets by time (ListOffsets to each leader).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::{
    ApiKey, BrokerId, GroupId, ListOffsetsRequest, OffsetCommitRequest, OffsetFetchRequest,
    TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use crate::cluster::Cluster;
use crate::error::{ClientError, Result};
use crate::TopicPartition;

/// ListOffsets timestamp for the log start.
pub const EARLIEST: i64 = -2;
/// ListOffsets timestamp for the log end.
pub const LATEST: i64 = -1;

fn name(t: &str) -> TopicName {
    TopicName(StrBytes::from_string(t.to_owned()))
}

fn by_topic<T: Clone>(items: &[(TopicPartition, T)]) -> BTreeMap<String, Vec<(i32, T)>> {
    let mut m: BTreeMap<String, Vec<(i32, T)>> = BTreeMap::new();
    for (tp, v) in items {
        m.entry(tp.topic.clone())
            .or_default()
            .push((tp.partition, v.clone()));
    }
    m
}

/// Commits `offsets` (the next offset to read) for `group`. Use generation
/// -1 and an empty member id outside group membership.
pub async fn commit(
    cluster: &Arc<Cluster>,
    group: &str,
    generation: i32,
    member_id: &str,
    offsets: &[(TopicPartition, i64)],
) -> Result<()> {
    if offsets.is_empty() {
        return Ok(());
    }
    let mut last = None;
    for attempt in 0..5u32 {
        if attempt > 0 {
            cluster.backoff().await;
        }
        let conn = match cluster.coordinator(group).await {
            Ok(c) => c,
            Err(e) => {
                last = Some(e);
                continue;
            }
        };
        let v = conn.version(ApiKey::OffsetCommit)?;
        let topics = by_topic(offsets)
            .into_iter()
            .map(|(t, ps)| {
                OffsetCommitRequestTopic::default()
                    .with_name(name(&t))
                    .with_partitions(
                        ps.into_iter()
                            .map(|(p, o)| {
                                OffsetCommitRequestPartition::default()
                                    .with_partition_index(p)
                                    .with_committed_offset(o)
                            })
                            .collect(),
                    )
            })
            .collect();
        let mut req = OffsetCommitRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(group.to_owned())))
            .with_topics(topics);
        if v >= 1 {
            req = req
                .with_generation_id_or_member_epoch(generation)
                .with_member_id(StrBytes::from_string(member_id.to_owned()));
        }
        let resp = match conn.call(&req).await {
            Ok(r) => r,
            Err(e) => {
                if e.invalidates_metadata() {
                    cluster.forget_coordinator(group);
                }
                last = Some(e);
                continue;
            }
        };
        let mut retry = None;
        for t in &resp.topics {
            for p in &t.partitions {
                if let Some(error) = ResponseError::try_from_code(p.error_code) {
                    let e = ClientError::Broker {
                        context: format!(
                            "commit of {}/{} for group {group}",
                            t.name.0, p.partition_index
                        ),
                        error,
                    };
                    if matches!(
                        error,
                        ResponseError::NotCoordinator | ResponseError::CoordinatorNotAvailable
                    ) {
                        cluster.forget_coordinator(group);
                    }
                    if e.is_retriable() {
                        retry = Some(e);
                    } else {
                        return Err(e);
                    }
                }
            }
        }
        match retry {
            None => return Ok(()),
            Some(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or(ClientError::Group {
        group: group.to_owned(),
        reason: "commit failed".into(),
    }))
}

/// The committed offsets of `tps` for `group` (-1 when none).
pub async fn fetch_committed(
    cluster: &Arc<Cluster>,
    group: &str,
    tps: &[TopicPartition],
) -> Result<HashMap<TopicPartition, i64>> {
    let items: Vec<(TopicPartition, ())> = tps.iter().map(|tp| (tp.clone(), ())).collect();
    let topics: Vec<OffsetFetchRequestTopic> = by_topic(&items)
        .into_iter()
        .map(|(t, ps)| {
            OffsetFetchRequestTopic::default()
                .with_name(name(&t))
                .with_partition_indexes(ps.into_iter().map(|(p, ())| p).collect())
        })
        .collect();
    let req = OffsetFetchRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.to_owned())))
        .with_topics(Some(topics));
    let mut last = None;
    for attempt in 0..5u32 {
        if attempt > 0 {
            cluster.backoff().await;
        }
        let res = async {
            let conn = cluster.coordinator(group).await?;
            let resp = conn.call(&req).await?;
            crate::error::check(resp.error_code, || format!("OffsetFetch for group {group}"))?;
            let mut out = HashMap::new();
            for t in &resp.topics {
                for p in &t.partitions {
                    crate::error::check(p.error_code, || {
                        format!("OffsetFetch {}/{}", t.name.0, p.partition_index)
                    })?;
                    out.insert(
                        TopicPartition::new(t.name.0.to_string(), p.partition_index),
                        p.committed_offset,
                    );
                }
            }
            Ok::<_, ClientError>(out)
        }
        .await;
        match res {
            Ok(o) => return Ok(o),
            Err(e) if e.is_retriable() => {
                if e.invalidates_metadata() || e.response_error().is_some() {
                    cluster.forget_coordinator(group);
                }
                last = Some(e);
            }
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or(ClientError::Group {
        group: group.to_owned(),
        reason: "offset fetch failed".into(),
    }))
}

/// Log offsets of `tps` at `timestamp` (`EARLIEST`, `LATEST` or a time in
/// ms: the first offset with a timestamp at or after it, -1 when none).
pub async fn list_offsets(
    cluster: &Arc<Cluster>,
    requests: &[(TopicPartition, i64)],
) -> Result<HashMap<TopicPartition, i64>> {
    let mut out = HashMap::new();
    let mut todo: Vec<(TopicPartition, i64)> = requests.to_vec();
    let mut last = None;
    for attempt in 0..10u32 {
        if todo.is_empty() {
            return Ok(out);
        }
        if attempt > 0 {
            cluster.backoff().await;
        }
        let mut by_leader: HashMap<i32, Vec<(TopicPartition, i64)>> = HashMap::new();
        let mut retry = Vec::new();
        for (tp, ts) in todo.drain(..) {
            match cluster.leader(&tp.topic, tp.partition).await {
                Ok(l) => by_leader.entry(l).or_default().push((tp, ts)),
                Err(e) if e.is_retriable() => {
                    last = Some(e);
                    retry.push((tp, ts));
                }
                Err(e) => return Err(e),
            }
        }
        for (leader, items) in by_leader {
            let topics = by_topic(&items)
                .into_iter()
                .map(|(t, ps)| {
                    ListOffsetsTopic::default()
                        .with_name(name(&t))
                        .with_partitions(
                            ps.into_iter()
                                .map(|(p, ts)| {
                                    ListOffsetsPartition::default()
                                        .with_partition_index(p)
                                        .with_timestamp(ts)
                                })
                                .collect(),
                        )
                })
                .collect();
            let req = ListOffsetsRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_topics(topics);
            let resp = async {
                let conn = cluster.connection_to(leader).await?;
                conn.call(&req).await
            }
            .await;
            let resp = match resp {
                Ok(r) => r,
                Err(e) => {
                    for (tp, _) in &items {
                        cluster.invalidate(&tp.topic);
                    }
                    last = Some(e);
                    retry.extend(items);
                    continue;
                }
            };
            for (tp, ts) in items {
                let p = resp
                    .topics
                    .iter()
                    .filter(|t| t.name.0.as_str() == tp.topic)
                    .flat_map(|t| t.partitions.iter())
                    .find(|p| p.partition_index == tp.partition);
                let Some(p) = p else {
                    last = Some(ClientError::Garbage {
                        addr: format!("broker {leader}"),
                        api: ApiKey::ListOffsets,
                        reason: format!("no result for {tp}"),
                    });
                    retry.push((tp, ts));
                    continue;
                };
                match ClientError::broker(format!("ListOffsets {tp}"), p.error_code) {
                    None => {
                        out.insert(tp, p.offset);
                    }
                    Some(e) if e.is_retriable() => {
                        cluster.invalidate(&tp.topic);
                        last = Some(e);
                        retry.push((tp, ts));
                    }
                    Some(e) => return Err(e),
                }
            }
        }
        todo = retry;
    }
    if todo.is_empty() {
        return Ok(out);
    }
    Err(last.unwrap_or(ClientError::NoBrokerAvailable {
        tried: vec![],
        last: "ListOffsets".into(),
    }))
}
