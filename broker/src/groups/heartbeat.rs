//! Heartbeat: keeps a member's session alive and tells it when to rejoin.

use kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse};
use tokio::time::Instant;

use super::coordinator::{owned, GroupCoordinator};
use super::error::GroupError;
use super::group::Group;
use super::state::GroupState;

impl Group {
    /// Resets the member's session timer. REBALANCE_IN_PROGRESS while a join
    /// phase is open, so the member rejoins; in CompletingRebalance the member
    /// already has its JoinGroup answer and may heartbeat normally.
    pub(super) fn heartbeat(
        &mut self,
        member_id: &str,
        instance: Option<&str>,
        generation: i32,
        now: Instant,
    ) -> Result<(), GroupError> {
        self.check_fenced(member_id, instance)?;
        let current = self.generation;
        let state = self.state;
        let group = self.id.clone();
        let member = match (state, self.members.get_mut(member_id)) {
            (GroupState::Empty | GroupState::Dead, _) | (_, None) => {
                return Err(GroupError::unknown_member(&group, member_id));
            }
            (_, Some(member)) => member,
        };
        if generation != current {
            return Err(GroupError::IllegalGeneration {
                group,
                member: member_id.to_owned(),
                sent: generation,
                current,
            });
        }
        member.touch(now);
        if state == GroupState::PreparingRebalance {
            return Err(GroupError::rebalancing(&group));
        }
        Ok(())
    }
}

impl GroupCoordinator {
    /// Handles Heartbeat (v0-v4).
    pub async fn heartbeat(&self, req: HeartbeatRequest, _version: i16) -> HeartbeatResponse {
        let group = owned(&req.group_id);
        let member = owned(&req.member_id);
        let instance = req.group_instance_id.as_ref().map(owned);
        let result = self.check_group_id(&group).and_then(|()| {
            let now = Instant::now();
            self.registry
                .with_group(&group, |g| {
                    g.heartbeat(&member, instance.as_deref(), req.generation_id, now)
                })
                .unwrap_or_else(|| Err(GroupError::unknown_member(&group, &member)))
        });
        let mut response = HeartbeatResponse::default();
        if let Err(error) = result {
            tracing::debug!(%error, "Heartbeat refused");
            response.error_code = error.code();
        }
        response
    }
}
