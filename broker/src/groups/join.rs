//! JoinGroup: entering a group and (re)joining for a rebalance.
//!
//! New members of JoinGroup v4+ first get MEMBER_ID_REQUIRED with a generated
//! id (`{client_id}-{uuid}`) and rejoin with it, so a client whose response was
//! lost does not leave a ghost member behind. A JoinGroup that must wait for
//! the rest of the group parks on a oneshot channel (see `member.rs`) and is
//! answered when the join phase completes.
//!
//! Static membership (`group_instance_id`, v5+) is accepted in a simplified
//! form: a rejoin under a known instance id with an empty member id replaces
//! (fences) the old member, then rebalances like a dynamic join; Kafka would
//! skip that rebalance when nothing changed.

use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{JoinGroupRequest, JoinGroupResponse};
use kafka_protocol::protocol::StrBytes;
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::coordinator::{owned, wire, GroupCoordinator, WAIT_SLACK};
use super::error::GroupError;
use super::group::Group;
use super::member::{JoinOutcome, Member};
use super::protocol::Protocol;
use super::state::GroupState;

/// A validated JoinGroup.
#[derive(Debug)]
pub(super) struct JoinArgs {
    pub(super) member_id: String,
    pub(super) instance_id: Option<String>,
    pub(super) client_id: String,
    pub(super) client_host: String,
    pub(super) session_timeout: Duration,
    pub(super) rebalance_timeout: Duration,
    pub(super) protocol_type: String,
    pub(super) protocols: Vec<Protocol>,
    /// JoinGroup v4+: a new member first gets MEMBER_ID_REQUIRED.
    pub(super) require_known_member_id: bool,
    pub(super) max_group_size: usize,
}

/// Either the answer, or a parked request and when to stop waiting for it.
#[derive(Debug)]
pub(super) enum JoinStep {
    Done(JoinOutcome),
    Wait(oneshot::Receiver<JoinOutcome>, Instant),
}

impl Group {
    pub(super) fn join(&mut self, args: JoinArgs, now: Instant) -> JoinStep {
        if args.member_id.is_empty() {
            self.join_new(args, now)
        } else {
            self.join_known(args, now)
        }
    }

    fn full(&self, max: usize) -> Option<GroupError> {
        (self.size() >= max).then(|| GroupError::GroupFull {
            group: self.id.clone(),
            limit: max,
            what: "members",
        })
    }

    fn join_new(&mut self, args: JoinArgs, now: Instant) -> JoinStep {
        if !self.supports(None, &args.protocol_type, &args.protocols) {
            return JoinStep::Done(Err(GroupError::inconsistent(
                &self.id,
                "",
                "protocol type or assignors incompatible with the group",
            )));
        }
        let member_id = format!("{}-{}", args.client_id, uuid::Uuid::new_v4());
        if let Some(instance) = &args.instance_id {
            if let Some(old) = self.static_members.get(instance).cloned() {
                tracing::info!(group = %self.id, instance = %instance, old = %old, new = %member_id, "static member replaced");
                let error = GroupError::FencedInstance {
                    group: self.id.clone(),
                    instance: instance.clone(),
                    owner: member_id.clone(),
                    member: old.clone(),
                };
                self.detach_member(&old, &error);
                if self.state == GroupState::PreparingRebalance {
                    self.try_complete_join(now);
                }
            } else if let Some(error) = self.full(args.max_group_size) {
                return JoinStep::Done(Err(error));
            }
            return self.add_and_wait(member_id, args, now);
        }
        if let Some(error) = self.full(args.max_group_size) {
            return JoinStep::Done(Err(error));
        }
        if args.require_known_member_id {
            self.pending
                .insert(member_id.clone(), now + args.session_timeout);
            self.timers_changed = true;
            return JoinStep::Done(Err(GroupError::MemberIdRequired {
                group: self.id.clone(),
                member: member_id,
            }));
        }
        self.add_and_wait(member_id, args, now)
    }

    fn join_known(&mut self, args: JoinArgs, now: Instant) -> JoinStep {
        let id = args.member_id.clone();
        if let Err(error) = self.check_fenced(&id, args.instance_id.as_deref()) {
            return JoinStep::Done(Err(error));
        }
        if self.pending.contains_key(&id) {
            if !self.supports(None, &args.protocol_type, &args.protocols) {
                return JoinStep::Done(Err(GroupError::inconsistent(
                    &self.id,
                    &id,
                    "protocol type or assignors incompatible with the group",
                )));
            }
            self.pending.remove(&id);
            return self.add_and_wait(id, args, now);
        }
        let Some(member) = self.members.get(&id) else {
            return JoinStep::Done(Err(GroupError::unknown_member(&self.id, &id)));
        };
        let unchanged = member.protocols == args.protocols;
        if !self.supports(Some(&id), &args.protocol_type, &args.protocols) {
            return JoinStep::Done(Err(GroupError::inconsistent(
                &self.id,
                &id,
                "protocol type or assignors incompatible with the group",
            )));
        }
        match self.state {
            GroupState::PreparingRebalance => self.update_and_wait(args, now),
            GroupState::CompletingRebalance if unchanged => {
                // The member missed its JoinGroup response; hand it out again.
                JoinStep::Done(Ok(self.current_join_result(&id)))
            }
            GroupState::Stable if unchanged && !self.is_leader(&id) => {
                JoinStep::Done(Ok(self.current_join_result(&id)))
            }
            GroupState::CompletingRebalance | GroupState::Stable => self.update_and_wait(args, now),
            GroupState::Empty | GroupState::Dead => {
                JoinStep::Done(Err(GroupError::unknown_member(&self.id, &id)))
            }
        }
    }

    fn add_and_wait(&mut self, member_id: String, args: JoinArgs, now: Instant) -> JoinStep {
        let mut member = Member {
            id: member_id,
            instance_id: args.instance_id,
            client_id: args.client_id,
            client_host: args.client_host,
            session_timeout: args.session_timeout,
            rebalance_timeout: args.rebalance_timeout,
            protocols: args.protocols,
            assignment: bytes::Bytes::new(),
            join_waiter: None,
            sync_waiter: None,
            session_deadline: now + args.session_timeout,
        };
        let rx = member.park_join(&self.id);
        tracing::info!(group = %self.id, member = %member.id, client = %member.client_id, "member joined");
        self.insert_member(member, &args.protocol_type);
        if self.state == GroupState::PreparingRebalance {
            self.extend_initial_delay(now);
        } else {
            self.prepare_rebalance(now);
        }
        self.try_complete_join(now);
        JoinStep::Wait(rx, self.join_wait_until(now))
    }

    fn update_and_wait(&mut self, args: JoinArgs, now: Instant) -> JoinStep {
        let alone = self.members.len() == 1;
        let group = self.id.clone();
        let Some(member) = self.members.get_mut(&args.member_id) else {
            return JoinStep::Done(Err(GroupError::unknown_member(&group, &args.member_id)));
        };
        let old_protocols = std::mem::replace(&mut member.protocols, args.protocols);
        member.session_timeout = args.session_timeout;
        member.rebalance_timeout = args.rebalance_timeout;
        member.touch(now);
        let rx = member.park_join(&group);
        let new_protocols = member.protocols.clone();
        self.count_protocols(&old_protocols, false);
        self.count_protocols(&new_protocols, true);
        // The session timeout may have shrunk.
        self.timers_changed = true;
        if alone {
            self.protocol_type = Some(args.protocol_type);
        }
        if self.state != GroupState::PreparingRebalance {
            self.prepare_rebalance(now);
        }
        self.try_complete_join(now);
        JoinStep::Wait(rx, self.join_wait_until(now))
    }

    fn join_wait_until(&self, now: Instant) -> Instant {
        self.rebalance.map_or(now, |r| r.deadline) + WAIT_SLACK
    }
}

impl GroupCoordinator {
    /// Handles JoinGroup (v0-v9). Waits, without holding any lock, until the
    /// group's join phase completes.
    pub async fn join_group(
        &self,
        req: JoinGroupRequest,
        version: i16,
        client_id: &str,
        client_host: &str,
    ) -> JoinGroupResponse {
        let request_member = owned(&req.member_id);
        let group = owned(&req.group_id);
        let step = match self.start_join(req, version, client_id, client_host) {
            Ok(step) => step,
            Err(error) => JoinStep::Done(Err(error)),
        };
        let outcome = match step {
            JoinStep::Done(outcome) => outcome,
            JoinStep::Wait(rx, until) => match tokio::time::timeout_at(until, rx).await {
                Ok(Ok(outcome)) => outcome,
                // The group dropped the request without an answer (it was
                // removed); the member must start over.
                Ok(Err(_)) => Err(GroupError::unknown_member(&group, &request_member)),
                Err(_) => Err(GroupError::rebalancing(&group)),
            },
        };
        if let Err(error) = &outcome {
            tracing::debug!(%error, "JoinGroup refused");
        }
        join_response(outcome, version, request_member)
    }

    fn start_join(
        &self,
        req: JoinGroupRequest,
        version: i16,
        client_id: &str,
        client_host: &str,
    ) -> Result<JoinStep, GroupError> {
        let group = owned(&req.group_id);
        self.check_group_id(&group)?;
        let min = self.config.min_session_timeout_ms;
        let max = self.config.max_session_timeout_ms;
        if req.session_timeout_ms < min || req.session_timeout_ms > max {
            return Err(GroupError::InvalidSessionTimeout {
                group,
                timeout_ms: req.session_timeout_ms,
                min_ms: min,
                max_ms: max,
            });
        }
        let member_id = owned(&req.member_id);
        if req.protocol_type.is_empty() || req.protocols.is_empty() {
            return Err(GroupError::inconsistent(
                &group,
                &member_id,
                "empty protocol type or protocol list",
            ));
        }
        if req.protocols.len() > self.config.max_protocols_per_member {
            return Err(GroupError::inconsistent(
                &group,
                &member_id,
                "too many protocols",
            ));
        }
        let session_timeout = millis(req.session_timeout_ms);
        // v0 has no rebalance timeout: it is the session timeout.
        let rebalance_timeout = if version == 0 || req.rebalance_timeout_ms <= 0 {
            session_timeout
        } else {
            millis(req.rebalance_timeout_ms)
        };
        let args = JoinArgs {
            member_id: member_id.clone(),
            instance_id: req.group_instance_id.as_ref().map(owned),
            client_id: client_id.to_owned(),
            client_host: client_host.to_owned(),
            session_timeout,
            rebalance_timeout,
            protocol_type: owned(&req.protocol_type),
            protocols: req
                .protocols
                .iter()
                .map(|p| Protocol {
                    name: owned(&p.name),
                    metadata: p.metadata.clone(),
                })
                .collect(),
            require_known_member_id: version >= 4,
            max_group_size: self.config.max_group_size,
        };
        let now = Instant::now();
        if member_id.is_empty() {
            self.registry
                .with_group_or_create(&group, |g| g.join(args, now))
        } else {
            self.registry
                .with_group(&group, |g| g.join(args, now))
                .ok_or_else(|| GroupError::unknown_member(&group, &member_id))
        }
    }
}

fn millis(ms: i32) -> Duration {
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

fn join_response(outcome: JoinOutcome, version: i16, request_member: String) -> JoinGroupResponse {
    let mut response = JoinGroupResponse::default();
    match outcome {
        Ok(success) => {
            response.generation_id = success.generation;
            if version >= 7 {
                response.protocol_type = Some(wire(success.protocol_type));
            }
            response.protocol_name = Some(wire(success.protocol_name));
            response.leader = wire(success.leader);
            response.member_id = wire(success.member_id);
            response.members = success
                .members
                .into_iter()
                .map(|m| {
                    let mut member = JoinGroupResponseMember::default();
                    member.member_id = wire(m.member_id);
                    if version >= 5 {
                        member.group_instance_id = m.instance_id.map(wire);
                    }
                    member.metadata = m.metadata;
                    member
                })
                .collect();
        }
        Err(error) => {
            response.error_code = error.code();
            response.generation_id = -1;
            response.member_id = match error {
                GroupError::MemberIdRequired { member, .. } => wire(member),
                _ => wire(request_member),
            };
            // Nullable from v7; a plain (non-null) string before.
            response.protocol_name = if version >= 7 {
                None
            } else {
                Some(StrBytes::default())
            };
        }
    }
    response
}
