//! Periodic housekeeping: expiring committed offsets of groups without
//! members (Kafka's offsets retention) and dropping long-idle empty groups
//! from memory so that the group table stays bounded.
//!
//! Sessions and rebalances are not handled here: each group's timer task does
//! that at the exact deadline (`driver.rs`).

use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::time::Instant;

use super::coordinator::GroupCoordinator;
use super::error::GroupError;
use super::state::GroupState;

/// What one maintenance pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MaintenanceReport {
    /// Empty groups dropped from memory.
    pub groups_evicted: usize,
    /// Committed offsets removed by retention.
    pub offsets_expired: usize,
}

impl GroupCoordinator {
    /// Starts the housekeeping task: every `maintenance_interval_ms` it expires
    /// offsets past `offsets_retention_ms` and evicts idle empty groups. The
    /// task ends when the coordinator is dropped.
    pub fn spawn_maintenance(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let weak: Weak<Self> = Arc::downgrade(self);
        let period = Duration::from_millis(self.config.maintenance_interval_ms.max(1));
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval_at(Instant::now() + period, period);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                let Some(coordinator) = weak.upgrade() else {
                    return;
                };
                let report = coordinator.run_maintenance().await;
                if report != MaintenanceReport::default() {
                    tracing::info!(
                        evicted = report.groups_evicted,
                        expired = report.offsets_expired,
                        "group maintenance"
                    );
                }
            }
        })
    }

    /// The same task as [`Self::spawn_maintenance`], under the name the broker's
    /// server calls. Sessions themselves need no reaper: each group's timer
    /// task expires members at their exact deadline.
    pub fn spawn_session_reaper(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        self.spawn_maintenance()
    }

    /// One housekeeping pass (what the maintenance task runs each period).
    pub async fn run_maintenance(&self) -> MaintenanceReport {
        let mut report = MaintenanceReport {
            groups_evicted: self.evict_idle_groups(),
            offsets_expired: 0,
        };
        if let Some(retention_ms) = self.config.offsets_retention_ms {
            report.offsets_expired = self.expire_offsets(retention_ms).await;
        }
        report
    }

    fn evict_idle_groups(&self) -> usize {
        let idle = Duration::from_millis(self.config.empty_group_idle_ms);
        let now = Instant::now();
        let mut evicted = 0;
        for id in self.registry.ids() {
            let removed = self.registry.remove_if(&id, |g| {
                if g.state == GroupState::Empty
                    && g.pending.is_empty()
                    && g.state_since + idle <= now
                {
                    Ok(())
                } else {
                    Err(GroupError::NonEmptyGroup {
                        group: id.clone(),
                        state: g.state.name(),
                    })
                }
            });
            if matches!(removed, Some(Ok(()))) {
                tracing::debug!(group = %id, "idle empty group evicted from memory");
                evicted += 1;
            }
        }
        evicted
    }

    /// Removes offsets of member-less groups committed more than
    /// `retention_ms` ago and older than the moment the group became empty.
    async fn expire_offsets(&self, retention_ms: u64) -> usize {
        let retention = i64::try_from(retention_ms).unwrap_or(i64::MAX);
        let now_ms = self.clock.wall_ms();
        let groups = match self.blocking(|backend| backend.groups_with_offsets()).await {
            Ok(groups) => groups,
            Err(reason) => {
                tracing::warn!(%reason, "offset retention: listing groups failed");
                return 0;
            }
        };
        let mut expired = 0;
        for group in groups {
            // None: not in memory (no members since startup or eviction).
            let empty_since = self.registry.with_group(&group, |g| {
                (g.state == GroupState::Empty).then_some(g.empty_since_ms)
            });
            let empty_since_ms = match empty_since {
                Some(None) => continue, // active group: its offsets are in use
                Some(Some(ms)) => ms,
                None => i64::MIN,
            };
            let group_id = group.clone();
            let result = self
                .blocking(move |backend| {
                    let stale: Vec<(String, i32)> = backend
                        .committed_offsets(&group_id)
                        .into_iter()
                        .filter(|o| {
                            o.commit_timestamp_ms
                                .max(empty_since_ms)
                                .saturating_add(retention)
                                <= now_ms
                        })
                        .map(|o| (o.topic, o.partition))
                        .collect();
                    if stale.is_empty() {
                        return Ok(0);
                    }
                    backend
                        .delete_offsets(&group_id, &stale)
                        .map(|()| stale.len())
                })
                .await
                .and_then(|r| r);
            match result {
                Ok(count) => expired += count,
                Err(reason) => {
                    tracing::warn!(group = %group, %reason, "offset retention: delete failed")
                }
            }
        }
        expired
    }
}
