//! The coordinator's view of the rest of the broker.
//!
//! Group membership lives in memory (clients rejoin after a restart, as they do
//! after any coordinator failover), but committed offsets must survive crashes
//! and topic existence is owned by the broker's metadata. Both are reached
//! through this trait so the coordinator can be tested without a broker and so
//! the storage layout stays the storage crate's business.

use super::CommittedOffset;

/// What the coordinator needs from the rest of the broker: durable offsets and
/// topic existence.
///
/// All methods are synchronous. The coordinator calls the offset-store methods
/// (`commit_offsets`, `committed_offsets`, `groups_with_offsets`,
/// `delete_offsets`, `delete_group`) from `tokio::task::spawn_blocking`, so they
/// may do disk I/O and fsync. `partition_count` is called directly from async
/// code and must not block (a metadata-cache lookup).
pub trait GroupBackend: Send + Sync + 'static {
    /// Stores `offsets` for `group`, replacing earlier commits of the same
    /// partitions. The offsets must be durable when this returns `Ok`.
    fn commit_offsets(&self, group: &str, offsets: &[CommittedOffset]) -> Result<(), String>;
    /// Every committed offset of `group` (empty when none).
    fn committed_offsets(&self, group: &str) -> Vec<CommittedOffset>;
    /// Ids of all groups that have at least one committed offset.
    fn groups_with_offsets(&self) -> Vec<String>;
    /// Removes the committed offsets of the listed (topic, partition) pairs.
    fn delete_offsets(&self, group: &str, partitions: &[(String, i32)]) -> Result<(), String>;
    /// Removes every committed offset of `group`.
    fn delete_group(&self, group: &str) -> Result<(), String>;
    /// Number of partitions of `topic`; `None` when the topic does not exist.
    fn partition_count(&self, topic: &str) -> Option<i32>;
}
