//! OffsetDelete: removing committed offsets of some partitions of a group.
//!
//! As in Kafka: allowed freely for a group without members; for an active
//! "consumer" group only for topics no member subscribes to
//! (GROUP_SUBSCRIBED_TO_TOPIC otherwise); refused (NON_EMPTY_GROUP) for active
//! groups of other protocol types, whose metadata the coordinator cannot read.
//! When a member's subscription cannot be parsed, every topic is treated as
//! subscribed: refusing a delete is recoverable, deleting a live position is not.

use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::{OffsetDeleteRequest, OffsetDeleteResponse};
use std::collections::{HashMap, HashSet};

use super::coordinator::{owned, GroupCoordinator};
use super::error::GroupError;
use super::group::Group;
use super::state::GroupState;

/// Which topics of a group may lose their offsets.
enum Deletable {
    /// The group has no members.
    Everything,
    /// Active consumer group: everything but these topics.
    Unsubscribed(HashSet<String>),
    /// Active consumer group whose subscriptions are unreadable.
    Nothing,
}

impl Group {
    fn deletable(&self) -> Result<Deletable, GroupError> {
        if self.state == GroupState::Empty {
            return Ok(Deletable::Everything);
        }
        if self.protocol_type.as_deref() != Some("consumer") {
            return Err(GroupError::NonEmptyGroup {
                group: self.id.clone(),
                state: self.state.name(),
            });
        }
        Ok(self
            .subscribed_topics()
            .map_or(Deletable::Nothing, Deletable::Unsubscribed))
    }
}

impl GroupCoordinator {
    /// Handles OffsetDelete (v0).
    pub async fn offset_delete(
        &self,
        req: OffsetDeleteRequest,
        _version: i16,
    ) -> OffsetDeleteResponse {
        let group = owned(&req.group_id);
        let mut response = OffsetDeleteResponse::default();
        let deletable = match self.group_deletable(&group).await {
            Ok(d) => d,
            Err(error) => {
                tracing::debug!(%error, "OffsetDelete refused");
                response.error_code = error.code();
                return response;
            }
        };

        let mut counts: HashMap<String, Option<i32>> = HashMap::new();
        let mut eligible: Vec<(String, i32)> = Vec::new();
        // Per requested partition: Some(error) if refused, None if eligible.
        let mut verdicts: Vec<Vec<Option<GroupError>>> = Vec::with_capacity(req.topics.len());
        for topic in &req.topics {
            let name = owned(&topic.name);
            let count = *counts
                .entry(name.clone())
                .or_insert_with(|| self.backend.partition_count(&name));
            let mut topic_verdicts = Vec::with_capacity(topic.partitions.len());
            for partition in &topic.partitions {
                let index = partition.partition_index;
                let subscribed = match &deletable {
                    Deletable::Everything => false,
                    Deletable::Unsubscribed(topics) => topics.contains(&name),
                    Deletable::Nothing => true,
                };
                let verdict = if !count.is_some_and(|c| (0..c).contains(&index)) {
                    Some(GroupError::UnknownTopicOrPartition {
                        topic: name.clone(),
                        partition: index,
                    })
                } else if subscribed {
                    Some(GroupError::SubscribedToTopic {
                        group: group.clone(),
                        topic: name.clone(),
                    })
                } else {
                    eligible.push((name.clone(), index));
                    None
                };
                topic_verdicts.push(verdict);
            }
            verdicts.push(topic_verdicts);
        }

        let stored = if eligible.is_empty() {
            Ok(())
        } else {
            let group_id = group.clone();
            self.blocking(move |backend| backend.delete_offsets(&group_id, &eligible))
                .await
                .and_then(|r| r)
                .map_err(|reason| GroupError::Storage {
                    group: group.clone(),
                    operation: "delete offsets",
                    reason,
                })
        };
        if let Err(error) = &stored {
            tracing::warn!(%error, "OffsetDelete failed");
        }

        response.topics = req
            .topics
            .iter()
            .zip(verdicts)
            .map(|(topic, topic_verdicts)| {
                let mut out = OffsetDeleteResponseTopic::default();
                out.name = topic.name.clone();
                out.partitions = topic
                    .partitions
                    .iter()
                    .zip(topic_verdicts)
                    .map(|(partition, verdict)| {
                        let mut p = OffsetDeleteResponsePartition::default();
                        p.partition_index = partition.partition_index;
                        p.error_code = match (verdict, &stored) {
                            (Some(error), _) => error.code(),
                            (None, Err(error)) => error.code(),
                            (None, Ok(())) => 0,
                        };
                        p
                    })
                    .collect();
                out
            })
            .collect();
        response
    }

    async fn group_deletable(&self, group: &str) -> Result<Deletable, GroupError> {
        self.check_group_id(group)?;
        if let Some(result) = self.registry.with_group(group, |g| g.deletable()) {
            return result;
        }
        let group_id = group.to_owned();
        let has_offsets = self
            .blocking(move |backend| !backend.committed_offsets(&group_id).is_empty())
            .await
            .map_err(|reason| GroupError::Storage {
                group: group.to_owned(),
                operation: "read committed offsets",
                reason,
            })?;
        if has_offsets {
            Ok(Deletable::Everything)
        } else {
            Err(GroupError::GroupNotFound {
                group: group.to_owned(),
            })
        }
    }
}
