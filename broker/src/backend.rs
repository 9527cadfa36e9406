//! What the group coordinator needs from the broker: durable offsets in the
//! metadata store, and which topics and partitions exist.

use std::sync::Arc;

use starlog_storage::CommittedOffset;

use crate::groups::GroupBackend;
use crate::topics::TopicRegistry;

/// The broker's implementation of [`GroupBackend`].
#[derive(Debug)]
pub struct MetaBackend {
    topics: Arc<TopicRegistry>,
}

impl MetaBackend {
    /// A backend over this registry and its metadata store.
    pub fn new(topics: Arc<TopicRegistry>) -> Self {
        Self { topics }
    }
}

impl GroupBackend for MetaBackend {
    fn commit_offsets(&self, group: &str, offsets: &[CommittedOffset]) -> Result<(), String> {
        self.topics
            .meta()
            .commit_offsets(group, offsets)
            .map_err(|e| e.to_string())
    }

    fn committed_offsets(&self, group: &str) -> Vec<CommittedOffset> {
        self.topics.meta().committed_offsets(group)
    }

    fn groups_with_offsets(&self) -> Vec<String> {
        self.topics.meta().groups()
    }

    fn delete_offsets(&self, group: &str, partitions: &[(String, i32)]) -> Result<(), String> {
        self.topics
            .meta()
            .delete_offsets(group, partitions)
            .map_err(|e| e.to_string())
    }

    fn delete_group(&self, group: &str) -> Result<(), String> {
        self.topics
            .meta()
            .delete_group(group)
            .map_err(|e| e.to_string())
    }

    fn partition_count(&self, topic: &str) -> Option<i32> {
        self.topics.get(topic).map(|t| t.partition_count())
    }
}
