//! The coordinator object shared by all connection tasks, and the helpers the
//! request handlers have in common.
//!
//! The request handlers themselves are `impl GroupCoordinator` blocks in one
//! module per API (`join.rs`, `sync.rs`, ...). Each takes the decoded request
//! and its API version and returns the response to encode at that version.

use std::sync::Arc;
use std::time::Duration;

use super::backend::GroupBackend;
use super::clock::Clock;
use super::config::GroupConfig;
use super::error::GroupError;
use super::registry::Registry;

/// Extra time a parked JoinGroup/SyncGroup waits past the group's own deadline
/// before giving up on its own (a safety net; the group's timer task answers
/// every parked request at the deadline).
pub(super) const WAIT_SLACK: Duration = Duration::from_secs(5);

/// The classic consumer-group coordinator (single node: this broker is the
/// coordinator of every group). `Send + Sync`; share it as `Arc`.
pub struct GroupCoordinator {
    pub(super) backend: Arc<dyn GroupBackend>,
    pub(super) config: Arc<GroupConfig>,
    pub(super) registry: Registry,
    pub(super) clock: Clock,
}

impl std::fmt::Debug for GroupCoordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCoordinator")
            .field("config", &self.config)
            .field("groups", &self.registry.ids().len())
            .finish_non_exhaustive()
    }
}

impl GroupCoordinator {
    /// A coordinator over `backend`. Groups start empty; groups that only have
    /// committed offsets in the backend are reported as Empty.
    pub fn new(backend: Arc<dyn GroupBackend>, config: GroupConfig) -> Arc<Self> {
        let config = Arc::new(config);
        let clock = Clock::new();
        Arc::new(Self {
            backend,
            registry: Registry::new(Arc::clone(&config), clock),
            config,
            clock,
        })
    }

    /// The settings in force.
    pub fn config(&self) -> &GroupConfig {
        &self.config
    }

    /// INVALID_GROUP_ID for an empty or oversized group id.
    pub(super) fn check_group_id(&self, group: &str) -> Result<(), GroupError> {
        if group.is_empty() {
            return Err(GroupError::InvalidGroupId {
                group: String::new(),
                reason: "empty",
            });
        }
        if group.len() > self.config.max_group_id_bytes {
            let mut shown: String = group.chars().take(64).collect();
            shown.push('…');
            return Err(GroupError::InvalidGroupId {
                group: shown,
                reason: "too long",
            });
        }
        Ok(())
    }

    /// Runs a backend call on the blocking pool (offset-store calls may fsync).
    pub(super) async fn blocking<T: Send + 'static>(
        &self,
        call: impl FnOnce(&dyn GroupBackend) -> T + Send + 'static,
    ) -> Result<T, String> {
        let backend = Arc::clone(&self.backend);
        tokio::task::spawn_blocking(move || call(backend.as_ref()))
            .await
            .map_err(|e| format!("offset store task failed: {e}"))
    }
}

/// Converts a wire string to an owned `String`.
pub(super) fn owned(s: &kafka_protocol::protocol::StrBytes) -> String {
    s.as_str().to_owned()
}

/// Converts an owned string to a wire string.
pub(super) fn wire(s: impl Into<String>) -> kafka_protocol::protocol::StrBytes {
    kafka_protocol::protocol::StrBytes::from_string(s.into())
}
