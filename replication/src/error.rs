//! [`ReplicationError`]: every failure of the replication layer, naming the group, partition,
//! file, index or offset at fault.

use std::path::PathBuf;

use starlog_storage::{BatchError, StorageError};

use crate::ids::{GroupId, NodeId};
use crate::translator::TranslatorError;

/// A replication failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReplicationError {
    /// The partition log failed.
    #[error("{group} ({topic}-{partition}): storage: {source}")]
    Storage {
        /// Group.
        group: GroupId,
        /// Topic of the partition log.
        topic: String,
        /// Partition number.
        partition: i32,
        /// What storage said.
        #[source]
        source: StorageError,
    },
    /// raft-rs refused an operation.
    #[error("{group}: raft: {source}")]
    Raft {
        /// Group.
        group: GroupId,
        /// What raft-rs said.
        #[source]
        source: raft::Error,
    },
    /// The Raft state file could not be read or written.
    #[error("raft state file {}: {op}: {source}", path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// File.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The Raft state file is not a valid state file.
    #[error("raft state file {}: corrupt at byte {position}: {reason}", path.display())]
    CorruptState {
        /// File.
        path: PathBuf,
        /// Byte position of the problem.
        position: usize,
        /// What is wrong.
        reason: String,
    },
    /// The Raft log and the partition log disagree (index ↔ offset translation).
    #[error("{group} ({topic}-{partition}): raft index/offset translation: {source}")]
    Translation {
        /// Group.
        group: GroupId,
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
        /// The inconsistency.
        #[source]
        source: TranslatorError,
    },
    /// The partition log does not look like a Raft log (written outside this layer, or damaged).
    #[error("{group} ({topic}-{partition}): {reason}")]
    Inconsistent {
        /// Group.
        group: GroupId,
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
        /// What does not match.
        reason: String,
    },
    /// A proposal was sent to a replica that is not the leader.
    #[error("{group}: not the leader (leader: {leader:?})")]
    NotLeader {
        /// Group.
        group: GroupId,
        /// The leader this node knows of, if any.
        leader: Option<NodeId>,
    },
    /// No such group on this node.
    #[error("{group}: unknown on this node")]
    UnknownGroup {
        /// Group.
        group: GroupId,
    },
    /// The group was already added.
    #[error("{group}: already added")]
    DuplicateGroup {
        /// Group.
        group: GroupId,
    },
    /// The group stopped after an earlier failure (raft-rs must not be driven after a storage
    /// error); it needs to be reopened.
    #[error("{group}: stopped after a failure: {reason}")]
    GroupFailed {
        /// Group.
        group: GroupId,
        /// The first failure.
        reason: String,
    },
    /// The proposed records are not valid Kafka v2 batches.
    #[error("{group}: invalid records: batch {batch_index} at byte {position}: {fault}")]
    InvalidRecords {
        /// Group.
        group: GroupId,
        /// Index of the bad batch in the proposal.
        batch_index: usize,
        /// Its byte position in the proposal.
        position: usize,
        /// What is wrong.
        #[source]
        fault: BatchError,
    },
    /// A batch is larger than the partition's `max_batch_bytes`.
    #[error("{group}: batch {batch_index} is {size} bytes, more than the limit {max}")]
    BatchTooLarge {
        /// Group.
        group: GroupId,
        /// Index of the batch in the proposal.
        batch_index: usize,
        /// Its size.
        size: usize,
        /// The limit.
        max: u32,
    },
    /// A proposal without any batch.
    #[error("{group}: empty proposal")]
    EmptyProposal {
        /// Group.
        group: GroupId,
    },
    /// The proposal's index was committed with another leader's entry: it is not in the log.
    #[error("{group}: proposal at index {index} (term {proposed_term}) was replaced by an entry of term {committed_term}")]
    Superseded {
        /// Group.
        group: GroupId,
        /// Raft index the proposal had.
        index: u64,
        /// Term it was proposed in.
        proposed_term: u64,
        /// Term of the entry that was committed there.
        committed_term: u64,
    },
    /// The driver or group went away before the proposal's fate was known.
    #[error("{group}: proposal abandoned before its outcome was known (group removed or driver stopped)")]
    Abandoned {
        /// Group.
        group: GroupId,
    },
    /// A transport frame could not be decoded.
    #[error("transport frame: {reason} at byte {position}")]
    Frame {
        /// Byte position in the frame.
        position: usize,
        /// What is wrong.
        reason: String,
    },
}
