//! One member of a group, and what a waiting JoinGroup / SyncGroup receives.
//!
//! A member's pending JoinGroup or SyncGroup request is represented by the
//! sending half of a oneshot channel stored on the member: whoever completes
//! the rebalance (another member's request, the group's timer task) sends the
//! outcome, and the waiting request task builds the response at its own API
//! version. Nobody holds a lock while waiting.

use bytes::Bytes;
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::error::GroupError;
use super::protocol::Protocol;

/// What a completed JoinGroup hands to one member.
#[derive(Clone, Debug)]
pub(super) struct JoinSuccess {
    pub(super) generation: i32,
    pub(super) protocol_type: String,
    pub(super) protocol_name: String,
    pub(super) leader: String,
    pub(super) member_id: String,
    /// Every member with its metadata for the chosen protocol; only the leader
    /// gets this, followers get an empty list.
    pub(super) members: Vec<JoinedMember>,
}

/// One entry of the member list the leader receives.
#[derive(Clone, Debug)]
pub(super) struct JoinedMember {
    pub(super) member_id: String,
    pub(super) instance_id: Option<String>,
    pub(super) metadata: Bytes,
}

/// What a completed SyncGroup hands to one member.
#[derive(Clone, Debug)]
pub(super) struct SyncSuccess {
    pub(super) assignment: Bytes,
    pub(super) protocol_type: String,
    pub(super) protocol_name: String,
}

pub(super) type JoinOutcome = Result<JoinSuccess, GroupError>;
pub(super) type SyncOutcome = Result<SyncSuccess, GroupError>;

/// A joined member of a group.
#[derive(Debug)]
pub(super) struct Member {
    pub(super) id: String,
    pub(super) instance_id: Option<String>,
    pub(super) client_id: String,
    pub(super) client_host: String,
    pub(super) session_timeout: Duration,
    pub(super) rebalance_timeout: Duration,
    pub(super) protocols: Vec<Protocol>,
    /// The leader's assignment for this member in the current generation.
    pub(super) assignment: Bytes,
    /// Set while a JoinGroup of this member waits for the rebalance to complete.
    pub(super) join_waiter: Option<oneshot::Sender<JoinOutcome>>,
    /// Set while a SyncGroup of this member waits for the leader's assignment.
    pub(super) sync_waiter: Option<oneshot::Sender<SyncOutcome>>,
    /// The member is expired when this passes without a heartbeat (unless it
    /// is waiting in JoinGroup or SyncGroup).
    pub(super) session_deadline: Instant,
}

impl Member {
    pub(super) fn supports(&self, protocol: &str) -> bool {
        self.protocols.iter().any(|p| p.name == protocol)
    }

    /// The member's metadata for `protocol` (empty if it does not offer it).
    pub(super) fn metadata_for(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|p| p.name == protocol)
            .map(|p| p.metadata.clone())
            .unwrap_or_default()
    }

    pub(super) fn is_awaiting_join(&self) -> bool {
        self.join_waiter.is_some()
    }

    /// True while a request of this member is parked in the coordinator and its
    /// connection still listens: such a member is not expired (as in Kafka,
    /// where members awaiting join or sync are kept alive).
    pub(super) fn is_parked(&self) -> bool {
        let join = self.join_waiter.as_ref().is_some_and(|tx| !tx.is_closed());
        let sync = self.sync_waiter.as_ref().is_some_and(|tx| !tx.is_closed());
        join || sync
    }

    pub(super) fn touch(&mut self, now: Instant) {
        self.session_deadline = now + self.session_timeout;
    }

    /// Sends `error` to any parked request of this member.
    pub(super) fn fail_waiters(&mut self, error: &GroupError) {
        if let Some(tx) = self.join_waiter.take() {
            // A closed receiver means the request is gone; nothing to tell.
            let _ = tx.send(Err(error.clone()));
        }
        if let Some(tx) = self.sync_waiter.take() {
            let _ = tx.send(Err(error.clone()));
        }
    }

    /// Parks a new JoinGroup of this member, replacing (and failing) an older one.
    pub(super) fn park_join(&mut self, group: &str) -> oneshot::Receiver<JoinOutcome> {
        let (tx, rx) = oneshot::channel();
        if let Some(old) = self.join_waiter.replace(tx) {
            let _ = old.send(Err(GroupError::rebalancing(group)));
        }
        rx
    }

    /// Parks a new SyncGroup of this member, replacing (and failing) an older one.
    pub(super) fn park_sync(&mut self, group: &str) -> oneshot::Receiver<SyncOutcome> {
        let (tx, rx) = oneshot::channel();
        if let Some(old) = self.sync_waiter.replace(tx) {
            let _ = old.send(Err(GroupError::rebalancing(group)));
        }
        rx
    }
}
