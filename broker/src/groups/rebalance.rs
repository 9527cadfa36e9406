//! The rebalance transitions: starting a join phase, completing it into a new
//! generation, and distributing the leader's assignment.
//!
//! Semantics follow Kafka's classic GroupCoordinator: a join phase completes as
//! soon as every known member has rejoined and no member id handed out with
//! MEMBER_ID_REQUIRED is still outstanding, or when the largest rebalance
//! timeout among the members passes; members that did not rejoin by then are
//! removed. The first rebalance of an empty group additionally waits
//! `initial_rebalance_delay_ms` so that a fleet of consumers starting together
//! lands in one generation instead of one rebalance per member.

use std::time::Duration;
use tokio::time::Instant;

use super::error::GroupError;
use super::group::{Group, RebalanceDeadlines};
use super::member::{JoinSuccess, JoinedMember, SyncSuccess};
use super::protocol::{select_protocol, Protocol};
use super::state::GroupState;

impl Group {
    fn max_rebalance_timeout(&self) -> Duration {
        self.members
            .values()
            .map(|m| m.rebalance_timeout)
            .max()
            .unwrap_or(Duration::ZERO)
    }

    /// Enters PreparingRebalance (from Empty, Stable or CompletingRebalance).
    /// Parked SyncGroups of the abandoned generation get REBALANCE_IN_PROGRESS.
    pub(super) fn prepare_rebalance(&mut self, now: Instant) {
        if self.state == GroupState::PreparingRebalance || self.is_dead() {
            return;
        }
        let error = GroupError::rebalancing(&self.id);
        for member in self.members.values_mut() {
            if let Some(tx) = member.sync_waiter.take() {
                // The request may have gone away meanwhile; nothing to tell then.
                let _ = tx.send(Err(error.clone()));
            }
        }
        self.pending_sync.clear();
        self.sync_deadline = None;
        let from_empty = self.state == GroupState::Empty;
        let timeout = self.max_rebalance_timeout();
        self.rebalance = Some(if from_empty && !self.initial_delay.is_zero() {
            RebalanceDeadlines {
                deadline: now + timeout.max(self.initial_delay),
                initial_until: Some(now + self.initial_delay),
            }
        } else {
            RebalanceDeadlines {
                deadline: now + timeout,
                initial_until: None,
            }
        });
        self.timers_changed = true;
        tracing::info!(group = %self.id, generation = self.generation, members = self.members.len(), "preparing rebalance");
        self.transition(GroupState::PreparingRebalance, now);
    }

    /// A member joined while the initial delay runs: wait one more delay, but
    /// never past the rebalance deadline.
    pub(super) fn extend_initial_delay(&mut self, now: Instant) {
        let delay = self.initial_delay;
        if let Some(deadlines) = self.rebalance.as_mut() {
            if let Some(until) = deadlines.initial_until.as_mut() {
                *until = (now + delay).min(deadlines.deadline).max(*until);
            }
        }
    }

    /// Completes the join phase if everyone is in and the initial delay (if
    /// any) is over. Returns whether it completed.
    pub(super) fn try_complete_join(&mut self, now: Instant) -> bool {
        if self.state != GroupState::PreparingRebalance {
            return false;
        }
        if let Some(RebalanceDeadlines {
            initial_until: Some(until),
            ..
        }) = self.rebalance
        {
            if now < until {
                return false;
            }
        }
        let everyone =
            self.members.values().all(|m| m.is_awaiting_join()) && self.pending.is_empty();
        if everyone {
            self.complete_join(now);
        }
        everyone
    }

    /// Ends the join phase: drops members that did not rejoin, starts the next
    /// generation, picks the protocol and answers every parked JoinGroup.
    pub(super) fn complete_join(&mut self, now: Instant) {
        let missing: Vec<String> = self
            .members
            .values()
            .filter(|m| !m.is_awaiting_join())
            .map(|m| m.id.clone())
            .collect();
        for member in &missing {
            tracing::info!(group = %self.id, member = %member, "member did not rejoin in time; removed");
            let error = GroupError::unknown_member(&self.id, member);
            self.detach_member(member, &error);
        }
        self.rebalance = None;
        self.generation = if self.generation == i32::MAX {
            1
        } else {
            self.generation + 1
        };

        let protocol = {
            let mut preferences: Vec<&[Protocol]> = Vec::with_capacity(self.members.len());
            if let Some(leader) = self.leader.as_ref().and_then(|l| self.members.get(l)) {
                preferences.push(&leader.protocols);
            }
            for member in self.members.values() {
                if !self.is_leader(&member.id) {
                    preferences.push(&member.protocols);
                }
            }
            select_protocol(&preferences)
        };
        let Some(protocol) = protocol else {
            // Join validation keeps one protocol common to all members, so this
            // only happens with no members left; otherwise fail everyone.
            let ids: Vec<String> = self.members.keys().cloned().collect();
            for id in ids {
                let error =
                    GroupError::inconsistent(&self.id, &id, "no protocol common to all members");
                self.detach_member(&id, &error);
            }
            self.protocol_name = None;
            self.leader = None;
            tracing::info!(group = %self.id, generation = self.generation, "rebalance completed with no members");
            self.transition(GroupState::Empty, now);
            return;
        };

        if !self
            .leader
            .as_ref()
            .is_some_and(|l| self.members.contains_key(l))
        {
            self.leader = self.members.keys().next().cloned();
        }
        self.protocol_name = Some(protocol.clone());
        self.transition(GroupState::CompletingRebalance, now);
        self.pending_sync = self.members.keys().cloned().collect();
        self.sync_deadline = Some(now + self.max_rebalance_timeout());
        self.timers_changed = true;

        let leader = self.leader.clone().unwrap_or_default();
        let protocol_type = self.protocol_type.clone().unwrap_or_default();
        let member_list: Vec<JoinedMember> = self
            .members
            .values()
            .map(|m| JoinedMember {
                member_id: m.id.clone(),
                instance_id: m.instance_id.clone(),
                metadata: m.metadata_for(&protocol),
            })
            .collect();
        let generation = self.generation;
        for member in self.members.values_mut() {
            member.touch(now);
            let Some(tx) = member.join_waiter.take() else {
                continue;
            };
            let members = if member.id == leader {
                member_list.clone()
            } else {
                Vec::new()
            };
            let _ = tx.send(Ok(JoinSuccess {
                generation,
                protocol_type: protocol_type.clone(),
                protocol_name: protocol.clone(),
                leader: leader.clone(),
                member_id: member.id.clone(),
                members,
            }));
        }
        tracing::info!(group = %self.id, generation, protocol = %protocol, leader = %leader, members = self.members.len(), "rebalance join phase completed");
    }

    /// Stores the leader's assignment (members it left out get an empty one),
    /// makes the group Stable and answers every parked SyncGroup.
    pub(super) fn install_assignment(
        &mut self,
        assignments: Vec<(String, bytes::Bytes)>,
        now: Instant,
    ) {
        for member in self.members.values_mut() {
            member.assignment = bytes::Bytes::new();
        }
        for (member_id, assignment) in assignments {
            if let Some(member) = self.members.get_mut(&member_id) {
                member.assignment = assignment;
            }
        }
        self.transition(GroupState::Stable, now);
        let protocol_type = self.protocol_type.clone().unwrap_or_default();
        let protocol_name = self.protocol_name.clone().unwrap_or_default();
        for member in self.members.values_mut() {
            if let Some(tx) = member.sync_waiter.take() {
                let _ = tx.send(Ok(SyncSuccess {
                    assignment: member.assignment.clone(),
                    protocol_type: protocol_type.clone(),
                    protocol_name: protocol_name.clone(),
                }));
            }
        }
        tracing::info!(group = %self.id, generation = self.generation, "group stable");
    }
}
