//! SyncGroup: the leader hands in the assignment, every member gets its part.
//!
//! Followers that arrive before the leader park until the leader's SyncGroup
//! installs the assignment (or a new rebalance starts, which answers them with
//! REBALANCE_IN_PROGRESS). The coordinator never reads the assignment bytes.

use bytes::Bytes;
use kafka_protocol::messages::{SyncGroupRequest, SyncGroupResponse};
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::coordinator::{owned, wire, GroupCoordinator, WAIT_SLACK};
use super::error::GroupError;
use super::group::Group;
use super::member::{SyncOutcome, SyncSuccess};
use super::state::GroupState;

/// A validated SyncGroup.
#[derive(Debug)]
pub(super) struct SyncArgs {
    pub(super) member_id: String,
    pub(super) instance_id: Option<String>,
    pub(super) generation: i32,
    pub(super) protocol_type: Option<String>,
    pub(super) protocol_name: Option<String>,
    pub(super) assignments: Vec<(String, Bytes)>,
}

/// Either the answer, or a parked request and when to stop waiting for it.
#[derive(Debug)]
pub(super) enum SyncStep {
    Done(SyncOutcome),
    Wait(oneshot::Receiver<SyncOutcome>, Instant),
}

impl Group {
    pub(super) fn sync(&mut self, args: SyncArgs, now: Instant) -> SyncStep {
        match self.try_sync(args, now) {
            Ok(step) => step,
            Err(error) => SyncStep::Done(Err(error)),
        }
    }

    fn try_sync(&mut self, args: SyncArgs, now: Instant) -> Result<SyncStep, GroupError> {
        let id = args.member_id;
        self.check_fenced(&id, args.instance_id.as_deref())?;
        if !self.members.contains_key(&id) {
            return Err(GroupError::unknown_member(&self.id, &id));
        }
        if args.generation != self.generation {
            return Err(GroupError::IllegalGeneration {
                group: self.id.clone(),
                member: id,
                sent: args.generation,
                current: self.generation,
            });
        }
        if args.protocol_type.is_some() && args.protocol_type != self.protocol_type {
            return Err(GroupError::inconsistent(
                &self.id,
                &id,
                "protocol type differs from the group's",
            ));
        }
        if args.protocol_name.is_some() && args.protocol_name != self.protocol_name {
            return Err(GroupError::inconsistent(
                &self.id,
                &id,
                "protocol name differs from the group's",
            ));
        }
        let group = self.id.clone();
        let leader = self.is_leader(&id);
        let state = self.state;
        let Some(member) = self.members.get_mut(&id) else {
            return Err(GroupError::unknown_member(&group, &id));
        };
        member.touch(now);
        match state {
            GroupState::PreparingRebalance => Err(GroupError::rebalancing(&group)),
            GroupState::CompletingRebalance => {
                let rx = member.park_sync(&group);
                self.mark_synced(&id);
                let until = self.sync_deadline.unwrap_or(now) + WAIT_SLACK;
                if leader {
                    self.install_assignment(args.assignments, now);
                }
                Ok(SyncStep::Wait(rx, until))
            }
            GroupState::Stable => {
                let assignment = member.assignment.clone();
                self.mark_synced(&id);
                Ok(SyncStep::Done(Ok(SyncSuccess {
                    assignment,
                    protocol_type: self.protocol_type.clone().unwrap_or_default(),
                    protocol_name: self.protocol_name.clone().unwrap_or_default(),
                })))
            }
            GroupState::Empty | GroupState::Dead => Err(GroupError::unknown_member(&group, &id)),
        }
    }

    fn mark_synced(&mut self, member: &str) {
        self.pending_sync.remove(member);
        if self.pending_sync.is_empty() {
            self.sync_deadline = None;
        }
    }
}

impl GroupCoordinator {
    /// Handles SyncGroup (v0-v5). Followers wait, without holding any lock,
    /// for the leader's assignment.
    pub async fn sync_group(&self, req: SyncGroupRequest, version: i16) -> SyncGroupResponse {
        let group = owned(&req.group_id);
        let member_id = owned(&req.member_id);
        let step = match self.check_group_id(&group) {
            Err(error) => SyncStep::Done(Err(error)),
            Ok(()) => {
                let args = SyncArgs {
                    member_id: member_id.clone(),
                    instance_id: req.group_instance_id.as_ref().map(owned),
                    generation: req.generation_id,
                    protocol_type: req.protocol_type.as_ref().map(owned),
                    protocol_name: req.protocol_name.as_ref().map(owned),
                    assignments: req
                        .assignments
                        .iter()
                        .map(|a| (owned(&a.member_id), a.assignment.clone()))
                        .collect(),
                };
                let now = Instant::now();
                self.registry
                    .with_group(&group, |g| g.sync(args, now))
                    .unwrap_or_else(|| {
                        SyncStep::Done(Err(GroupError::unknown_member(&group, &member_id)))
                    })
            }
        };
        let outcome = match step {
            SyncStep::Done(outcome) => outcome,
            SyncStep::Wait(rx, until) => match tokio::time::timeout_at(until, rx).await {
                Ok(Ok(outcome)) => outcome,
                Ok(Err(_)) => Err(GroupError::unknown_member(&group, &member_id)),
                Err(_) => Err(GroupError::rebalancing(&group)),
            },
        };
        let mut response = SyncGroupResponse::default();
        match outcome {
            Ok(success) => {
                response.assignment = success.assignment;
                if version >= 5 {
                    response.protocol_type = Some(wire(success.protocol_type));
                    response.protocol_name = Some(wire(success.protocol_name));
                }
            }
            Err(error) => {
                tracing::debug!(%error, "SyncGroup refused");
                response.error_code = error.code();
            }
        }
        response
    }
}
