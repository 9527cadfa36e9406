//! Per-partition replication status: what `starlog cluster status`, metrics and `Metadata`
//! (leader, in-sync replicas) need, as plain data.

use crate::ids::{GroupId, NodeId};

/// This node's role in a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Follows a leader (or waits for one).
    Follower,
    /// Asking whether an election could succeed (pre-vote), without bumping the term.
    PreCandidate,
    /// Running an election.
    Candidate,
    /// The leader: accepts proposals.
    Leader,
}

/// How the leader is replicating to one replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplicaState {
    /// Finding the last matching entry (after a restart, a conflict or a rejection).
    Probe,
    /// Streaming entries.
    Replicate,
    /// Would need a snapshot (not supported yet: the replica is behind the log's start).
    Snapshot,
}

/// One replica as seen by the leader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaStatus {
    /// Replica's node id.
    pub node: NodeId,
    /// Highest Raft index known to match the leader's log.
    pub matched_index: u64,
    /// Next index the leader will send.
    pub next_index: u64,
    /// Leader's last index minus `matched_index`.
    pub lag_entries: u64,
    /// Kafka offset after the matched entries; `None` when the replica is behind the leader's
    /// log start (it would need a snapshot, which is not supported yet).
    pub matched_offset: Option<i64>,
    /// Leader's log end offset minus `matched_offset` (records behind); `None` as above.
    pub lag_offsets: Option<i64>,
    /// Replication state.
    pub state: ReplicaState,
    /// Heard from within the last election timeout.
    pub recently_active: bool,
}

/// Replication status of one group on this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupStatus {
    /// Group.
    pub group: GroupId,
    /// Topic of the partition log.
    pub topic: String,
    /// Partition number.
    pub partition: i32,
    /// This node.
    pub node: NodeId,
    /// This node's role.
    pub role: Role,
    /// The leader this node knows of.
    pub leader: Option<NodeId>,
    /// Current term.
    pub term: u64,
    /// Commit index.
    pub commit_index: u64,
    /// Applied index.
    pub applied_index: u64,
    /// First Raft index still in the log.
    pub first_index: u64,
    /// Last Raft index (durable or not).
    pub last_index: u64,
    /// Last Raft index known durable.
    pub persisted_index: u64,
    /// Kafka high watermark: consumers read below it.
    pub high_watermark: i64,
    /// Kafka log start offset.
    pub log_start_offset: i64,
    /// Kafka log end offset (may include uncommitted records).
    pub log_end_offset: i64,
    /// Voters of the current configuration, sorted.
    pub voters: Vec<NodeId>,
    /// Learners (non-voting replicas) of the current configuration, sorted.
    pub learners: Vec<NodeId>,
    /// Per-replica progress; only on the leader (empty elsewhere).
    pub replicas: Vec<ReplicaStatus>,
    /// Why the group stopped, if it did.
    pub failed: Option<String>,
}

impl GroupStatus {
    /// Replicas (the leader included) whose lag is at most `max_lag_entries` and which were
    /// heard from recently: Kafka's in-sync replica set. Empty when this node is not the leader.
    pub fn in_sync_replicas(&self, max_lag_entries: u64) -> Vec<NodeId> {
        self.replicas
            .iter()
            .filter(|r| {
                r.node == self.node || (r.recently_active && r.lag_entries <= max_lag_entries)
            })
            .map(|r| r.node)
            .collect()
    }
}
