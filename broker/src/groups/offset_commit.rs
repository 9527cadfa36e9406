//! OffsetCommit: storing consumer positions durably.
//!
//! Who may commit follows Kafka: a member of the current generation (its
//! session is refreshed), or a "simple" client (generation -1, empty member id)
//! when the group has no members. The response is sent only after the backend
//! reports the offsets durable; a backend failure is KAFKA_STORAGE_ERROR, which
//! clients retry, never a silent success.

use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse};
use std::collections::HashMap;
use tokio::time::Instant;

use super::coordinator::{owned, GroupCoordinator};
use super::error::GroupError;
use super::group::Group;
use super::state::GroupState;
use super::CommittedOffset;

impl Group {
    /// Whether this commit is allowed in the group's current state.
    pub(super) fn validate_commit(
        &mut self,
        member_id: &str,
        instance: Option<&str>,
        generation: i32,
        now: Instant,
    ) -> Result<(), GroupError> {
        if generation < 0 && member_id.is_empty() && instance.is_none() {
            // A simple (standalone) consumer: only while nobody is a member.
            return if self.state == GroupState::Empty {
                Ok(())
            } else {
                Err(GroupError::unknown_member(&self.id, member_id))
            };
        }
        self.check_fenced(member_id, instance)?;
        let current = self.generation;
        let state = self.state;
        let group = self.id.clone();
        let Some(member) = self.members.get_mut(member_id) else {
            return Err(GroupError::unknown_member(&group, member_id));
        };
        if generation != current {
            return Err(GroupError::IllegalGeneration {
                group,
                member: member_id.to_owned(),
                sent: generation,
                current,
            });
        }
        member.touch(now);
        if state == GroupState::CompletingRebalance {
            // The member has its new generation but not its assignment yet.
            return Err(GroupError::rebalancing(&group));
        }
        Ok(())
    }
}

/// Where one requested partition stands while the commit is processed.
enum Slot {
    Refused(GroupError),
    Accepted,
}

impl GroupCoordinator {
    /// Handles OffsetCommit (v2-v9). Answers only after the offsets are durable.
    pub async fn offset_commit(
        &self,
        req: OffsetCommitRequest,
        version: i16,
    ) -> OffsetCommitResponse {
        let group = owned(&req.group_id);
        let member = owned(&req.member_id);
        let instance = req.group_instance_id.as_ref().map(owned);
        let generation = req.generation_id_or_member_epoch;

        let group_check = self.check_group_id(&group).and_then(|()| {
            let now = Instant::now();
            self.registry
                .with_group(&group, |g| {
                    g.validate_commit(&member, instance.as_deref(), generation, now)
                })
                .unwrap_or_else(|| {
                    if generation < 0 {
                        // No such group: a simple consumer may commit (the
                        // offsets make the group exist, as an Empty group).
                        Ok(())
                    } else {
                        Err(GroupError::IllegalGeneration {
                            group: group.clone(),
                            member: member.clone(),
                            sent: generation,
                            current: -1,
                        })
                    }
                })
        });
        if let Err(error) = &group_check {
            tracing::debug!(%error, "OffsetCommit refused");
        }

        let commit_ms = self.clock.wall_ms();
        let mut partition_counts: HashMap<String, Option<i32>> = HashMap::new();
        let mut to_store: Vec<CommittedOffset> = Vec::new();
        let mut slots: Vec<Vec<Slot>> = Vec::with_capacity(req.topics.len());
        for topic in &req.topics {
            let name = owned(&topic.name);
            let count = *partition_counts
                .entry(name.clone())
                .or_insert_with(|| self.backend.partition_count(&name));
            let mut topic_slots = Vec::with_capacity(topic.partitions.len());
            for partition in &topic.partitions {
                let index = partition.partition_index;
                let slot = if !count.is_some_and(|c| (0..c).contains(&index)) {
                    Slot::Refused(GroupError::UnknownTopicOrPartition {
                        topic: name.clone(),
                        partition: index,
                    })
                } else if let Err(error) = &group_check {
                    Slot::Refused(error.clone())
                } else if let Some(len) = partition
                    .committed_metadata
                    .as_ref()
                    .map(|m| m.len())
                    .filter(|len| *len > self.config.max_offset_metadata_bytes)
                {
                    Slot::Refused(GroupError::MetadataTooLarge {
                        group: group.clone(),
                        topic: name.clone(),
                        partition: index,
                        len,
                        max: self.config.max_offset_metadata_bytes,
                    })
                } else {
                    to_store.push(CommittedOffset {
                        topic: name.clone(),
                        partition: index,
                        offset: partition.committed_offset,
                        leader_epoch: if version >= 6 {
                            partition.committed_leader_epoch
                        } else {
                            -1
                        },
                        metadata: partition.committed_metadata.as_ref().map(owned),
                        commit_timestamp_ms: commit_ms,
                    });
                    Slot::Accepted
                };
                topic_slots.push(slot);
            }
            slots.push(topic_slots);
        }

        let stored = if to_store.is_empty() {
            Ok(())
        } else {
            let group_id = group.clone();
            let count = to_store.len();
            let result = self
                .blocking(move |backend| backend.commit_offsets(&group_id, &to_store))
                .await
                .and_then(|r| r);
            match result {
                Ok(()) => {
                    tracing::debug!(group = %group, partitions = count, "offsets committed");
                    Ok(())
                }
                Err(reason) => {
                    let error = GroupError::Storage {
                        group: group.clone(),
                        operation: "commit offsets",
                        reason,
                    };
                    tracing::warn!(%error, "OffsetCommit failed");
                    Err(error)
                }
            }
        };

        let mut response = OffsetCommitResponse::default();
        response.topics = req
            .topics
            .iter()
            .zip(slots)
            .map(|(topic, topic_slots)| {
                let mut out = OffsetCommitResponseTopic::default();
                out.name = topic.name.clone();
                out.partitions = topic
                    .partitions
                    .iter()
                    .zip(topic_slots)
                    .map(|(partition, slot)| {
                        let mut p = OffsetCommitResponsePartition::default();
                        p.partition_index = partition.partition_index;
                        p.error_code = match (slot, &stored) {
                            (Slot::Refused(error), _) => error.code(),
                            (Slot::Accepted, Err(error)) => error.code(),
                            (Slot::Accepted, Ok(())) => 0,
                        };
                        p
                    })
                    .collect();
                out
            })
            .collect();
        response
    }
}
