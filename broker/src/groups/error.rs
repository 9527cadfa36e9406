//! Why a group request was refused, and the Kafka error code each reason maps to.
//!
//! Handlers produce a [`GroupError`] (which names the group, member, topic or
//! partition at fault, for logs) and only turn it into a wire code when the
//! response is built, so the mapping to Kafka codes lives in one place.

use kafka_protocol::ResponseError;

/// A refused group operation.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GroupError {
    /// Empty or oversized group id.
    #[error("invalid group id {group:?}: {reason}")]
    InvalidGroupId {
        /// The offending id (truncated for logs).
        group: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Session timeout outside the configured range.
    #[error("group {group}: session timeout {timeout_ms} ms is outside [{min_ms}, {max_ms}]")]
    InvalidSessionTimeout {
        /// Group id.
        group: String,
        /// Requested timeout.
        timeout_ms: i32,
        /// Smallest allowed.
        min_ms: i32,
        /// Largest allowed.
        max_ms: i32,
    },
    /// The member id is not (or no longer) part of the group.
    #[error("group {group}: member {member:?} is unknown")]
    UnknownMember {
        /// Group id.
        group: String,
        /// Member id as sent.
        member: String,
    },
    /// The request carries another generation than the group's current one.
    #[error("group {group}: member {member:?} sent generation {sent}, current is {current}")]
    IllegalGeneration {
        /// Group id.
        group: String,
        /// Member id as sent.
        member: String,
        /// Generation in the request.
        sent: i32,
        /// Generation of the group.
        current: i32,
    },
    /// A rebalance is under way; the member must rejoin.
    #[error("group {group} is rebalancing")]
    RebalanceInProgress {
        /// Group id.
        group: String,
    },
    /// The member's protocol type or assignors do not fit the group.
    #[error("group {group}: member {member:?} protocols are inconsistent: {reason}")]
    InconsistentProtocol {
        /// Group id.
        group: String,
        /// Member id as sent.
        member: String,
        /// What does not match.
        reason: &'static str,
    },
    /// A new member got its id and must rejoin with it (JoinGroup v4+).
    #[error("group {group}: new member must rejoin with member id {member}")]
    MemberIdRequired {
        /// Group id.
        group: String,
        /// The member id to rejoin with.
        member: String,
    },
    /// The group, or the coordinator's group table, is at its size limit.
    #[error("group {group}: limit of {limit} {what} reached")]
    GroupFull {
        /// Group id.
        group: String,
        /// The bound that was hit.
        limit: usize,
        /// "members" or "groups".
        what: &'static str,
    },
    /// A static member (group.instance.id) is now owned by another member id.
    #[error("group {group}: instance {instance:?} belongs to member {owner:?}, not {member:?}")]
    FencedInstance {
        /// Group id.
        group: String,
        /// The group instance id.
        instance: String,
        /// Member id that owns the instance.
        owner: String,
        /// Member id as sent.
        member: String,
    },
    /// The operation needs an empty group.
    #[error("group {group} is not empty (state {state})")]
    NonEmptyGroup {
        /// Group id.
        group: String,
        /// Its current state name.
        state: &'static str,
    },
    /// No such group (no members and no committed offsets).
    #[error("group {group} does not exist")]
    GroupNotFound {
        /// Group id.
        group: String,
    },
    /// The topic does not exist or the partition is out of range.
    #[error("unknown topic or partition {topic}-{partition}")]
    UnknownTopicOrPartition {
        /// Topic name.
        topic: String,
        /// Partition index.
        partition: i32,
    },
    /// Commit metadata longer than allowed.
    #[error("group {group}: commit metadata for {topic}-{partition} is {len} bytes, max {max}")]
    MetadataTooLarge {
        /// Group id.
        group: String,
        /// Topic name.
        topic: String,
        /// Partition index.
        partition: i32,
        /// Metadata length.
        len: usize,
        /// Allowed length.
        max: usize,
    },
    /// OffsetDelete of a topic an active consumer group subscribes to.
    #[error("group {group} is subscribed to topic {topic}")]
    SubscribedToTopic {
        /// Group id.
        group: String,
        /// Topic name.
        topic: String,
    },
    /// The offset store failed.
    #[error("group {group}: offset store failed to {operation}: {reason}")]
    Storage {
        /// Group id.
        group: String,
        /// What was attempted.
        operation: &'static str,
        /// The backend's message.
        reason: String,
    },
}

impl GroupError {
    /// The Kafka error code sent for this refusal.
    pub fn code(&self) -> i16 {
        let error = match self {
            GroupError::InvalidGroupId { .. } => ResponseError::InvalidGroupId,
            GroupError::InvalidSessionTimeout { .. } => ResponseError::InvalidSessionTimeout,
            GroupError::UnknownMember { .. } => ResponseError::UnknownMemberId,
            GroupError::IllegalGeneration { .. } => ResponseError::IllegalGeneration,
            GroupError::RebalanceInProgress { .. } => ResponseError::RebalanceInProgress,
            GroupError::InconsistentProtocol { .. } => ResponseError::InconsistentGroupProtocol,
            GroupError::MemberIdRequired { .. } => ResponseError::MemberIdRequired,
            GroupError::GroupFull { .. } => ResponseError::GroupMaxSizeReached,
            GroupError::FencedInstance { .. } => ResponseError::FencedInstanceId,
            GroupError::NonEmptyGroup { .. } => ResponseError::NonEmptyGroup,
            GroupError::GroupNotFound { .. } => ResponseError::GroupIdNotFound,
            GroupError::UnknownTopicOrPartition { .. } => ResponseError::UnknownTopicOrPartition,
            GroupError::MetadataTooLarge { .. } => ResponseError::OffsetMetadataTooLarge,
            GroupError::SubscribedToTopic { .. } => ResponseError::GroupSubscribedToTopic,
            // Retriable: the client retries the commit instead of treating it as done.
            GroupError::Storage { .. } => ResponseError::KafkaStorageError,
        };
        error.code()
    }

    pub(super) fn unknown_member(group: &str, member: &str) -> Self {
        GroupError::UnknownMember {
            group: group.to_owned(),
            member: member.to_owned(),
        }
    }

    pub(super) fn rebalancing(group: &str) -> Self {
        GroupError::RebalanceInProgress {
            group: group.to_owned(),
        }
    }

    pub(super) fn inconsistent(group: &str, member: &str, reason: &'static str) -> Self {
        GroupError::InconsistentProtocol {
            group: group.to_owned(),
            member: member.to_owned(),
            reason,
        }
    }
}
