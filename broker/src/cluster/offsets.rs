//! Consumer-group offsets in a cluster: commits go through the metadata
//! Raft group and every broker stores them in its own metadata store, so a
//! new coordinator (the next controller) finds them after a failover.
//!
//! [`ClusterBackend`] is the group coordinator's backend in cluster mode. Its
//! offset-store calls run on the blocking pool (see `GroupBackend`), where
//! they wait for their command to be committed and applied here.

use std::sync::Arc;

use starlog_storage::CommittedOffset;

use super::metadata::MetaCommand;
use super::node::Cluster;
use crate::groups::GroupBackend;
use crate::topics::TopicRegistry;

/// The group coordinator's backend in cluster mode (see the module docs).
#[derive(Debug)]
pub(super) struct ClusterBackend {
    cluster: Arc<Cluster>,
    topics: Arc<TopicRegistry>,
    runtime: tokio::runtime::Handle,
}

impl ClusterBackend {
    /// A backend proposing through `cluster` and reading `topics`' metadata store.
    pub(super) fn new(cluster: Arc<Cluster>, topics: Arc<TopicRegistry>) -> Self {
        Self {
            cluster,
            topics,
            runtime: tokio::runtime::Handle::current(),
        }
    }

    fn replicate(&self, make: impl FnOnce(u64) -> MetaCommand) -> Result<(), String> {
        let token = rand_token();
        let cmd = make(token);
        self.runtime
            .block_on(self.cluster.propose_offsets(cmd, token))
    }
}

/// A random token naming a command, so its proposer can see it applied.
pub(super) fn rand_token() -> u64 {
    let b = *uuid::Uuid::new_v4().as_bytes();
    u64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
}

impl GroupBackend for ClusterBackend {
    fn commit_offsets(&self, group: &str, offsets: &[CommittedOffset]) -> Result<(), String> {
        self.replicate(|token| MetaCommand::CommitOffsets {
            group: group.to_string(),
            offsets: offsets.to_vec(),
            token,
        })
    }

    fn committed_offsets(&self, group: &str) -> Vec<CommittedOffset> {
        self.topics.meta().committed_offsets(group)
    }

    fn groups_with_offsets(&self) -> Vec<String> {
        self.topics.meta().groups()
    }

    fn delete_offsets(&self, group: &str, partitions: &[(String, i32)]) -> Result<(), String> {
        self.replicate(|token| MetaCommand::DeleteOffsets {
            group: group.to_string(),
            partitions: partitions.to_vec(),
            token,
        })
    }

    fn delete_group(&self, group: &str) -> Result<(), String> {
        self.replicate(|token| MetaCommand::DeleteGroup {
            group: group.to_string(),
            token,
        })
    }

    fn partition_count(&self, topic: &str) -> Option<i32> {
        self.topics.get(topic).map(|t| t.partition_count())
    }
}
