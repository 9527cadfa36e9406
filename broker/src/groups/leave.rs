//! LeaveGroup: members leaving voluntarily (v0-v2 one member, v3+ a batch).
//!
//! A departure starts a rebalance for the remaining members at once instead of
//! waiting for the session timeout to notice.

use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{LeaveGroupRequest, LeaveGroupResponse};
use tokio::time::Instant;

use super::coordinator::{owned, wire, GroupCoordinator};
use super::error::GroupError;
use super::group::Group;

impl Group {
    /// Removes one member (by member id, or by instance id when the member id
    /// is empty), or forgets a member id handed out with MEMBER_ID_REQUIRED.
    pub(super) fn leave(
        &mut self,
        member_id: &str,
        instance: Option<&str>,
        now: Instant,
    ) -> Result<(), GroupError> {
        let id = if member_id.is_empty() {
            instance
                .and_then(|i| self.static_members.get(i).cloned())
                .ok_or_else(|| GroupError::unknown_member(&self.id, member_id))?
        } else {
            self.check_fenced(member_id, instance)?;
            member_id.to_owned()
        };
        if self.pending.remove(&id).is_some() {
            self.try_complete_join(now);
            return Ok(());
        }
        let error = GroupError::unknown_member(&self.id, &id);
        if !self.remove_member(&id, &error, now) {
            return Err(error);
        }
        tracing::info!(group = %self.id, member = %id, "member left");
        Ok(())
    }
}

impl GroupCoordinator {
    /// Handles LeaveGroup (v0-v5).
    pub async fn leave_group(&self, req: LeaveGroupRequest, version: i16) -> LeaveGroupResponse {
        let group = owned(&req.group_id);
        let leaving: Vec<(String, Option<String>)> = if version >= 3 {
            req.members
                .iter()
                .map(|m| (owned(&m.member_id), m.group_instance_id.as_ref().map(owned)))
                .collect()
        } else {
            vec![(owned(&req.member_id), None)]
        };
        let mut response = LeaveGroupResponse::default();
        if let Err(error) = self.check_group_id(&group) {
            tracing::debug!(%error, "LeaveGroup refused");
            response.error_code = error.code();
            return response;
        }
        let now = Instant::now();
        let results: Vec<Result<(), GroupError>> = self
            .registry
            .with_group(&group, |g| {
                leaving
                    .iter()
                    .map(|(member, instance)| g.leave(member, instance.as_deref(), now))
                    .collect()
            })
            .unwrap_or_else(|| {
                leaving
                    .iter()
                    .map(|(member, _)| Err(GroupError::unknown_member(&group, member)))
                    .collect()
            });
        if version >= 3 {
            response.members = leaving
                .into_iter()
                .zip(&results)
                .map(|((member_id, instance), result)| {
                    let mut member = MemberResponse::default();
                    member.member_id = wire(member_id);
                    member.group_instance_id = instance.map(wire);
                    member.error_code = result.as_ref().err().map_or(0, GroupError::code);
                    member
                })
                .collect();
        } else if let Some(Err(error)) = results.first() {
            response.error_code = error.code();
        }
        for error in results.iter().filter_map(|r| r.as_ref().err()) {
            tracing::debug!(%error, "LeaveGroup member refused");
        }
        response
    }
}
