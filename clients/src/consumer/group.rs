//! Classic consumer-group membership: JoinGroup, SyncGroup (the leader runs
//! the assignor), Heartbeat on a background task, LeaveGroup.
//!
//! The heartbeat task only reports; it never changes the assignment. When
//! the coordinator says a rebalance started (or that we are no longer a
//! member) it raises `rejoin`, and the consumer's next `poll` rejoins, so
//! assignment changes happen on the caller's task, between polls, where
//! commits and revocations are safe.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    ApiKey, GroupId, HeartbeatRequest, JoinGroupRequest, LeaveGroupRequest, SyncGroupRequest,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use tracing::{debug, info};

use super::assignor::{AssignorKind, Member};
use super::protocol::{
    decode_assignment, decode_subscription, encode_assignment, encode_subscription, Subscription,
};
use crate::cluster::Cluster;
use crate::error::{ClientError, Result};
use crate::TopicPartition;

/// Timing of the membership.
#[derive(Debug, Clone)]
pub(crate) struct GroupTiming {
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
    pub heartbeat_interval: Duration,
}

/// This member's state in its group.
#[derive(Debug)]
pub(crate) struct Membership {
    pub group: String,
    pub member_id: String,
    pub generation: i32,
    pub protocol: Option<AssignorKind>,
    pub joined: bool,
    pub rejoin: Arc<AtomicBool>,
    forget_member: Arc<AtomicBool>,
    heartbeat: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for Membership {
    fn drop(&mut self) {
        self.stop_heartbeat();
    }
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_owned())
}

impl Membership {
    pub fn new(group: &str) -> Self {
        Self {
            group: group.to_owned(),
            member_id: String::new(),
            generation: -1,
            protocol: None,
            joined: false,
            rejoin: Arc::new(AtomicBool::new(false)),
            forget_member: Arc::new(AtomicBool::new(false)),
            heartbeat: None,
        }
    }

    /// True when the next poll must (re)join.
    pub fn needs_join(&self) -> bool {
        !self.joined || self.rejoin.load(Ordering::Acquire)
    }

    /// Asks for a rejoin at the next poll.
    pub fn request_rejoin(&self) {
        self.rejoin.store(true, Ordering::Release);
    }

    pub fn stop_heartbeat(&mut self) {
        if let Some(h) = self.heartbeat.take() {
            h.abort();
        }
    }

    fn err(&self, reason: impl Into<String>) -> ClientError {
        ClientError::Group {
            group: self.group.clone(),
            reason: reason.into(),
        }
    }

    /// Joins (or rejoins) and returns the partitions assigned to us.
    pub async fn join(
        &mut self,
        cluster: &Arc<Cluster>,
        timing: &GroupTiming,
        assignors: &[AssignorKind],
        topics: &[String],
        owned: &[TopicPartition],
    ) -> Result<Vec<TopicPartition>> {
        self.stop_heartbeat();
        if self.forget_member.swap(false, Ordering::AcqRel) {
            self.member_id.clear();
            self.generation = -1;
        }
        self.rejoin.store(false, Ordering::Release);
        let meta = encode_subscription(&Subscription {
            topics: topics.to_vec(),
            owned: owned.to_vec(),
            generation: self.generation,
        });
        let ms = |d: Duration| i32::try_from(d.as_millis()).unwrap_or(i32::MAX);
        let mut last: Option<ClientError> = None;
        // Bounded: each attempt waits at most a rebalance timeout.
        for attempt in 0..30u32 {
            if attempt > 0 {
                cluster.backoff().await;
            }
            let conn = match cluster.coordinator(&self.group).await {
                Ok(c) => c,
                Err(e) => {
                    last = Some(e);
                    continue;
                }
            };
            let jv = conn.version(ApiKey::JoinGroup)?;
            let req = JoinGroupRequest::default()
                .with_group_id(GroupId(s(&self.group)))
                .with_session_timeout_ms(ms(timing.session_timeout))
                .with_rebalance_timeout_ms(if jv >= 1 {
                    ms(timing.rebalance_timeout)
                } else {
                    -1
                })
                .with_member_id(s(&self.member_id))
                .with_protocol_type(s("consumer"))
                .with_protocols(
                    assignors
                        .iter()
                        .map(|a| {
                            JoinGroupRequestProtocol::default()
                                .with_name(s(a.name()))
                                .with_metadata(meta.clone())
                        })
                        .collect(),
                );
            let resp = match conn.call_extra(&req, timing.rebalance_timeout).await {
                Ok(r) => r,
                Err(e) => {
                    if e.invalidates_metadata() {
                        cluster.forget_coordinator(&self.group);
                    }
                    last = Some(e);
                    continue;
                }
            };
            match ResponseError::try_from_code(resp.error_code) {
                None => {}
                Some(ResponseError::MemberIdRequired) => {
                    self.member_id = resp.member_id.to_string();
                    continue;
                }
                Some(ResponseError::UnknownMemberId) => {
                    self.member_id.clear();
                    continue;
                }
                Some(
                    e @ (ResponseError::NotCoordinator
                    | ResponseError::CoordinatorNotAvailable
                    | ResponseError::CoordinatorLoadInProgress),
                ) => {
                    cluster.forget_coordinator(&self.group);
                    last = Some(self.err(format!("JoinGroup: {e}")));
                    continue;
                }
                Some(ResponseError::RebalanceInProgress) => continue,
                Some(e) => return Err(self.err(format!("JoinGroup: {e}"))),
            }
            self.member_id = resp.member_id.to_string();
            self.generation = resp.generation_id;
            let protocol = resp
                .protocol_name
                .as_ref()
                .and_then(|p| AssignorKind::from_name(p.as_str()))
                .ok_or_else(|| {
                    self.err(format!(
                        "coordinator chose unknown protocol {:?}",
                        resp.protocol_name
                    ))
                })?;
            self.protocol = Some(protocol);
            let assignments = if resp.leader.as_str() == self.member_id && !resp.skip_assignment {
                let members: Vec<Member> = resp
                    .members
                    .iter()
                    .map(|m| {
                        let sub = decode_subscription(&m.metadata).unwrap_or_else(|e| {
                            debug!(member = %m.member_id, error = %e, "undecodable subscription; treated as empty");
                            Subscription { topics: vec![], owned: vec![], generation: -1 }
                        });
                        Member {
                            id: m.member_id.to_string(),
                            topics: sub.topics,
                            owned: sub.owned,
                            generation: sub.generation,
                        }
                    })
                    .collect();
                let mut counts = HashMap::new();
                let mut all_topics: Vec<&String> =
                    members.iter().flat_map(|m| m.topics.iter()).collect();
                all_topics.sort();
                all_topics.dedup();
                for t in all_topics {
                    match cluster.topic(t, false).await {
                        Ok(info) => {
                            counts.insert(t.clone(), info.partition_count());
                        }
                        Err(e) => debug!(topic = %t, error = %e, "subscribed topic not assignable"),
                    }
                }
                let plan = protocol.assign(&members, &counts);
                info!(group = %self.group, generation = self.generation, ?protocol, members = members.len(), "leader assigned partitions");
                plan.into_iter()
                    .map(|(id, tps)| {
                        SyncGroupRequestAssignment::default()
                            .with_member_id(s(&id))
                            .with_assignment(encode_assignment(&tps))
                    })
                    .collect()
            } else {
                Vec::new()
            };
            let sv = conn.version(ApiKey::SyncGroup)?;
            let sync = SyncGroupRequest::default()
                .with_group_id(GroupId(s(&self.group)))
                .with_generation_id(self.generation)
                .with_member_id(s(&self.member_id))
                .with_protocol_type((sv >= 5).then(|| s("consumer")))
                .with_protocol_name((sv >= 5).then(|| s(protocol.name())))
                .with_assignments(assignments);
            let resp = match conn.call_extra(&sync, timing.rebalance_timeout).await {
                Ok(r) => r,
                Err(e) => {
                    last = Some(e);
                    continue;
                }
            };
            match ResponseError::try_from_code(resp.error_code) {
                None => {}
                Some(ResponseError::RebalanceInProgress) => continue,
                Some(ResponseError::UnknownMemberId | ResponseError::IllegalGeneration) => {
                    self.member_id.clear();
                    continue;
                }
                Some(
                    e @ (ResponseError::NotCoordinator | ResponseError::CoordinatorNotAvailable),
                ) => {
                    cluster.forget_coordinator(&self.group);
                    last = Some(self.err(format!("SyncGroup: {e}")));
                    continue;
                }
                Some(e) => return Err(self.err(format!("SyncGroup: {e}"))),
            }
            let assigned = decode_assignment(&resp.assignment)
                .map_err(|e| self.err(format!("assignment: {e}")))?;
            self.joined = true;
            self.start_heartbeat(Arc::clone(cluster), timing.heartbeat_interval);
            info!(group = %self.group, member = %self.member_id, generation = self.generation, partitions = assigned.len(), "joined group");
            return Ok(assigned);
        }
        Err(last.unwrap_or_else(|| self.err("could not join (rebalance kept restarting)")))
    }

    fn start_heartbeat(&mut self, cluster: Arc<Cluster>, interval: Duration) {
        let group = self.group.clone();
        let member = self.member_id.clone();
        let generation = self.generation;
        let rejoin = Arc::clone(&self.rejoin);
        let forget = Arc::clone(&self.forget_member);
        self.heartbeat = Some(tokio::spawn(async move {
            let req = HeartbeatRequest::default()
                .with_group_id(GroupId(s(&group)))
                .with_generation_id(generation)
                .with_member_id(s(&member));
            loop {
                tokio::time::sleep(interval).await;
                let res = async {
                    let conn = cluster.coordinator(&group).await?;
                    conn.call(&req).await
                }
                .await;
                match res {
                    Ok(r) => match ResponseError::try_from_code(r.error_code) {
                        None => {}
                        Some(ResponseError::RebalanceInProgress) => {
                            rejoin.store(true, Ordering::Release);
                            return;
                        }
                        Some(
                            ResponseError::UnknownMemberId
                            | ResponseError::IllegalGeneration
                            | ResponseError::FencedInstanceId,
                        ) => {
                            forget.store(true, Ordering::Release);
                            rejoin.store(true, Ordering::Release);
                            return;
                        }
                        Some(
                            ResponseError::NotCoordinator | ResponseError::CoordinatorNotAvailable,
                        ) => {
                            cluster.forget_coordinator(&group);
                        }
                        Some(e) => debug!(%group, error = %e, "heartbeat error"),
                    },
                    Err(e) => {
                        debug!(%group, error = %e, "heartbeat failed");
                        if e.invalidates_metadata() {
                            cluster.forget_coordinator(&group);
                        }
                    }
                }
            }
        }));
    }

    /// Leaves the group (best effort, bounded by the request timeout).
    pub async fn leave(&mut self, cluster: &Arc<Cluster>) -> Result<()> {
        self.stop_heartbeat();
        if !self.joined || self.member_id.is_empty() {
            return Ok(());
        }
        self.joined = false;
        let conn = cluster.coordinator(&self.group).await?;
        let req = if conn.version(ApiKey::LeaveGroup)? >= 3 {
            LeaveGroupRequest::default()
                .with_group_id(GroupId(s(&self.group)))
                .with_members(vec![
                    MemberIdentity::default().with_member_id(s(&self.member_id))
                ])
        } else {
            LeaveGroupRequest::default()
                .with_group_id(GroupId(s(&self.group)))
                .with_member_id(s(&self.member_id))
        };
        let resp = conn.call(&req).await?;
        crate::error::check(resp.error_code, || format!("LeaveGroup {}", self.group))?;
        info!(group = %self.group, member = %self.member_id, "left group");
        Ok(())
    }
}
