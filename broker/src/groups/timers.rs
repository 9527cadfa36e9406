//! Everything that happens to a group because time passed: session expiry,
//! expiry of member ids handed out with MEMBER_ID_REQUIRED, the end of the
//! initial rebalance delay, the rebalance timeout and the SyncGroup timeout.
//!
//! `Group::poll` applies whatever is due at `now` and returns the next instant
//! it needs to run again; the group's timer task (`driver.rs`) just sleeps
//! until then or until a request wakes it. Keeping the logic in one synchronous
//! function keeps it testable and free of races between many timers.

use tokio::time::Instant;

use super::error::GroupError;
use super::group::Group;
use super::state::GroupState;

impl Group {
    /// Applies every deadline that has passed; returns the next deadline.
    pub(super) fn poll(&mut self, now: Instant) -> Option<Instant> {
        if self.is_dead() {
            return None;
        }
        self.expire_pending(now);
        self.expire_sessions(now);
        self.advance_rebalance(now);
        self.expire_pending_sync(now);
        // The caller is the timer task itself: it is about to use the result.
        self.timers_changed = false;
        self.next_deadline()
    }

    fn expire_pending(&mut self, now: Instant) {
        let before = self.pending.len();
        let group = &self.id;
        self.pending.retain(|member, deadline| {
            let keep = *deadline > now;
            if !keep {
                tracing::info!(group = %group, member = %member, "member id not used in time; forgotten");
            }
            keep
        });
        if self.pending.len() != before {
            self.try_complete_join(now);
        }
    }

    fn expire_sessions(&mut self, now: Instant) {
        let mut expired = Vec::new();
        for member in self.members.values_mut() {
            if member.session_deadline > now {
                continue;
            }
            if member.is_parked() {
                // Waiting in JoinGroup/SyncGroup counts as alive.
                member.touch(now);
            } else {
                expired.push(member.id.clone());
            }
        }
        for member in expired {
            tracing::info!(group = %self.id, member = %member, "session expired; member removed");
            let error = GroupError::unknown_member(&self.id, &member);
            self.remove_member(&member, &error, now);
        }
    }

    fn advance_rebalance(&mut self, now: Instant) {
        if self.state != GroupState::PreparingRebalance {
            return;
        }
        let Some(mut deadlines) = self.rebalance else {
            return;
        };
        if deadlines.initial_until.is_some_and(|until| until <= now) {
            deadlines.initial_until = None;
            self.rebalance = Some(deadlines);
            if self.try_complete_join(now) {
                return;
            }
        }
        if deadlines.deadline <= now {
            tracing::info!(group = %self.id, "rebalance timeout; completing join with the members present");
            self.complete_join(now);
        }
    }

    fn expire_pending_sync(&mut self, now: Instant) {
        let due = self.sync_deadline.is_some_and(|d| d <= now);
        if !due {
            return;
        }
        self.sync_deadline = None;
        if !matches!(
            self.state,
            GroupState::CompletingRebalance | GroupState::Stable
        ) {
            self.pending_sync.clear();
            return;
        }
        let laggards: Vec<String> = self.pending_sync.drain().collect();
        for member in laggards {
            tracing::info!(group = %self.id, member = %member, "no SyncGroup within the rebalance timeout; member removed");
            let error = GroupError::unknown_member(&self.id, &member);
            self.remove_member(&member, &error, now);
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        let sessions = self.members.values().map(|m| m.session_deadline);
        let pending = self.pending.values().copied();
        let rebalance = self.rebalance.iter().flat_map(|r| {
            r.initial_until
                .into_iter()
                .chain(std::iter::once(r.deadline))
        });
        sessions
            .chain(pending)
            .chain(rebalance)
            .chain(self.sync_deadline)
            .min()
    }
}
