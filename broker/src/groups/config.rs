//! Coordinator settings and the hard bounds that keep one client from
//! exhausting the broker's memory.

use std::time::Duration;

/// Settings of the group coordinator. `Default` gives Kafka's defaults where
/// Kafka has one.
#[derive(Clone, Debug)]
pub struct GroupConfig {
    /// Smallest session timeout a member may ask for (Kafka's
    /// `group.min.session.timeout.ms`, 6000).
    pub min_session_timeout_ms: i32,
    /// Largest session timeout a member may ask for (Kafka's
    /// `group.max.session.timeout.ms`, 1800000).
    pub max_session_timeout_ms: i32,
    /// How long the first rebalance of an empty group waits for more members
    /// (Kafka's `group.initial.rebalance.delay.ms`, 3000). Each new member that
    /// arrives during the delay extends it, bounded by the rebalance timeout.
    pub initial_rebalance_delay_ms: u64,
    /// Committed offsets of a group that has no members expire after this long
    /// (Kafka's `offsets.retention.minutes`, 7 days). `None` keeps them forever.
    /// Expiry runs in [`super::GroupCoordinator::spawn_maintenance`].
    pub offsets_retention_ms: Option<u64>,
    /// Most members (joined or awaiting their member id) one group may hold;
    /// further joins get `GROUP_MAX_SIZE_REACHED`.
    pub max_group_size: usize,
    /// Most groups kept in memory; joins that would create one more get
    /// `GROUP_MAX_SIZE_REACHED`.
    pub max_groups: usize,
    /// Longest accepted group id, in bytes; longer ids get `INVALID_GROUP_ID`.
    pub max_group_id_bytes: usize,
    /// Most assignor protocols one member may offer in a JoinGroup.
    pub max_protocols_per_member: usize,
    /// Longest offset-commit metadata string (Kafka's
    /// `offset.metadata.max.bytes`, 4096); longer gets `OFFSET_METADATA_TOO_LARGE`.
    pub max_offset_metadata_bytes: usize,
    /// An empty group with no activity for this long is dropped from memory
    /// (its committed offsets stay in the backend).
    pub empty_group_idle_ms: u64,
    /// Period of the maintenance task (offset expiry, idle group eviction).
    pub maintenance_interval_ms: u64,
}

impl Default for GroupConfig {
    fn default() -> Self {
        Self {
            min_session_timeout_ms: 6_000,
            max_session_timeout_ms: 1_800_000,
            initial_rebalance_delay_ms: 3_000,
            offsets_retention_ms: Some(7 * 24 * 60 * 60 * 1000),
            max_group_size: 10_000,
            max_groups: 100_000,
            max_group_id_bytes: 1_024,
            max_protocols_per_member: 64,
            max_offset_metadata_bytes: 4_096,
            empty_group_idle_ms: 10 * 60 * 1000,
            maintenance_interval_ms: 60 * 1000,
        }
    }
}

impl GroupConfig {
    pub(super) fn initial_rebalance_delay(&self) -> Duration {
        Duration::from_millis(self.initial_rebalance_delay_ms)
    }
}
