//! OffsetFetch: reading committed positions, for one group (v1-v7) or several
//! (v8+).
//!
//! A partition without a commit answers offset -1 (the client then applies its
//! `auto.offset.reset`); a null topic list returns every committed partition.
//! There are no transactional offsets, so `require_stable` never has anything
//! to wait for. The v9 member id / epoch fields belong to the new consumer
//! protocol and are ignored for classic groups.

use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{OffsetFetchRequest, OffsetFetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use std::collections::{BTreeMap, HashMap};

use super::coordinator::{owned, wire, GroupCoordinator};
use super::error::GroupError;
use super::CommittedOffset;

/// One partition's answer.
#[derive(Debug)]
struct Position {
    partition: i32,
    committed: Option<CommittedOffset>,
}

type TopicPositions = Vec<(String, Vec<Position>)>;

impl GroupCoordinator {
    /// Handles OffsetFetch (v1-v9).
    pub async fn offset_fetch(&self, req: OffsetFetchRequest, version: i16) -> OffsetFetchResponse {
        let mut response = OffsetFetchResponse::default();
        if version >= 8 {
            for requested in req.groups {
                let topics = requested.topics.map(|ts| {
                    ts.into_iter()
                        .map(|t| (owned(&t.name), t.partition_indexes))
                        .collect::<Vec<_>>()
                });
                let group = owned(&requested.group_id);
                let result = self.fetch_group(&group, topics).await;
                let mut out = OffsetFetchResponseGroup::default();
                out.group_id = requested.group_id;
                match result {
                    Ok(positions) => {
                        out.topics = positions
                            .into_iter()
                            .map(|(name, parts)| {
                                let mut t = OffsetFetchResponseTopics::default();
                                t.name = TopicName(wire(name));
                                t.partitions = parts.into_iter().map(partitions_v8).collect();
                                t
                            })
                            .collect();
                    }
                    Err(error) => out.error_code = error.code(),
                }
                response.groups.push(out);
            }
            return response;
        }

        let group = owned(&req.group_id);
        let topics: Option<Vec<(String, Vec<i32>)>> = req.topics.as_ref().map(|ts| {
            ts.iter()
                .map(|t| (owned(&t.name), t.partition_indexes.clone()))
                .collect()
        });
        match self.fetch_group(&group, topics.clone()).await {
            Ok(positions) => {
                response.topics = positions
                    .into_iter()
                    .map(|(name, parts)| {
                        let mut t = OffsetFetchResponseTopic::default();
                        t.name = TopicName(wire(name));
                        t.partitions = parts
                            .into_iter()
                            .map(|p| partition_v1(p, version))
                            .collect();
                        t
                    })
                    .collect();
            }
            Err(error) if version >= 2 => response.error_code = error.code(),
            Err(error) => {
                // v1 has no top-level error: report it on every requested partition.
                response.topics = topics
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(name, partitions)| {
                        let mut t = OffsetFetchResponseTopic::default();
                        t.name = TopicName(wire(name));
                        t.partitions = partitions
                            .into_iter()
                            .map(|index| {
                                let mut p = OffsetFetchResponsePartition::default();
                                p.partition_index = index;
                                p.committed_offset = -1;
                                p.metadata = Some(StrBytes::default());
                                p.error_code = error.code();
                                p
                            })
                            .collect();
                        t
                    })
                    .collect();
            }
        }
        response
    }

    /// Committed positions of `group` for `topics` (`None`: all committed).
    async fn fetch_group(
        &self,
        group: &str,
        topics: Option<Vec<(String, Vec<i32>)>>,
    ) -> Result<TopicPositions, GroupError> {
        self.check_group_id(group)?;
        let group_id = group.to_owned();
        let committed = self
            .blocking(move |backend| backend.committed_offsets(&group_id))
            .await
            .map_err(|reason| GroupError::Storage {
                group: group.to_owned(),
                operation: "read committed offsets",
                reason,
            })?;
        let Some(topics) = topics else {
            let mut by_topic: BTreeMap<String, Vec<Position>> = BTreeMap::new();
            for offset in committed {
                by_topic
                    .entry(offset.topic.clone())
                    .or_default()
                    .push(Position {
                        partition: offset.partition,
                        committed: Some(offset),
                    });
            }
            for positions in by_topic.values_mut() {
                positions.sort_by_key(|p| p.partition);
            }
            return Ok(by_topic.into_iter().collect());
        };
        let index: HashMap<(String, i32), CommittedOffset> = committed
            .into_iter()
            .map(|o| ((o.topic.clone(), o.partition), o))
            .collect();
        Ok(topics
            .into_iter()
            .map(|(name, partitions)| {
                let positions = partitions
                    .into_iter()
                    .map(|partition| Position {
                        partition,
                        committed: index.get(&(name.clone(), partition)).cloned(),
                    })
                    .collect();
                (name, positions)
            })
            .collect())
    }
}

fn partition_v1(position: Position, version: i16) -> OffsetFetchResponsePartition {
    let mut p = OffsetFetchResponsePartition::default();
    p.partition_index = position.partition;
    p.committed_offset = position.committed.as_ref().map_or(-1, |c| c.offset);
    if version >= 5 {
        p.committed_leader_epoch = position.committed.as_ref().map_or(-1, |c| c.leader_epoch);
    }
    p.metadata = Some(wire(
        position
            .committed
            .and_then(|c| c.metadata)
            .unwrap_or_default(),
    ));
    p
}

fn partitions_v8(position: Position) -> OffsetFetchResponsePartitions {
    let mut p = OffsetFetchResponsePartitions::default();
    p.partition_index = position.partition;
    p.committed_offset = position.committed.as_ref().map_or(-1, |c| c.offset);
    p.committed_leader_epoch = position.committed.as_ref().map_or(-1, |c| c.leader_epoch);
    p.metadata = Some(wire(
        position
            .committed
            .and_then(|c| c.metadata)
            .unwrap_or_default(),
    ));
    p
}
