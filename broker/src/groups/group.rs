//! One group's in-memory state and its membership bookkeeping.
//!
//! A `Group` is only touched under its own mutex (see `registry.rs`), by
//! request handlers and by the group's timer task; every method here is
//! synchronous and never waits. The rebalance transitions are in
//! `rebalance.rs`, the per-request logic in the request modules, the deadline
//! handling in `timers.rs`.

use kafka_protocol::indexmap::IndexMap;
use std::collections::{HashMap, HashSet};
use std::time::Duration;
use tokio::time::Instant;

use super::clock::Clock;
use super::error::GroupError;
use super::member::{JoinSuccess, JoinedMember, Member};
use super::protocol::Protocol;
use super::state::GroupState;
use super::subscription::subscribed_topics;

/// Deadlines of a rebalance in the PreparingRebalance state.
#[derive(Clone, Copy, Debug)]
pub(super) struct RebalanceDeadlines {
    /// The join phase completes at this instant with whoever has rejoined.
    pub(super) deadline: Instant,
    /// The first rebalance of an empty group waits until here for more members.
    pub(super) initial_until: Option<Instant>,
}

/// A classic consumer group.
#[derive(Debug)]
pub(crate) struct Group {
    pub(super) id: String,
    pub(super) state: GroupState,
    /// When the group entered its current state.
    pub(super) state_since: Instant,
    /// Wall-clock ms when the group last became Empty (for offset retention).
    pub(super) empty_since_ms: i64,
    pub(super) generation: i32,
    pub(super) protocol_type: Option<String>,
    pub(super) protocol_name: Option<String>,
    pub(super) leader: Option<String>,
    /// Members in join order; the first is the leader when one must be picked.
    pub(super) members: IndexMap<String, Member>,
    /// Member ids handed out with MEMBER_ID_REQUIRED and their expiry.
    pub(super) pending: HashMap<String, Instant>,
    /// group.instance.id -> member id, for static members.
    pub(super) static_members: HashMap<String, String>,
    /// Members of the current generation that have not sent SyncGroup yet.
    pub(super) pending_sync: HashSet<String>,
    /// When the members in `pending_sync` are removed.
    pub(super) sync_deadline: Option<Instant>,
    pub(super) rebalance: Option<RebalanceDeadlines>,
    pub(super) initial_delay: Duration,
    pub(super) clock: Clock,
    /// How many members offer each protocol name (for O(protocols) checks of
    /// a joining member against the group).
    protocol_support: HashMap<String, usize>,
    /// Set when a deadline was added or moved earlier: the registry then wakes
    /// the group's timer task (other changes need no wake-up; the task finds
    /// them at its next deadline).
    pub(super) timers_changed: bool,
}

impl Group {
    pub(super) fn new(id: String, now: Instant, clock: Clock, initial_delay: Duration) -> Self {
        Self {
            id,
            state: GroupState::Empty,
            state_since: now,
            empty_since_ms: clock.wall_ms_at(now),
            generation: 0,
            protocol_type: None,
            protocol_name: None,
            leader: None,
            members: IndexMap::new(),
            pending: HashMap::new(),
            static_members: HashMap::new(),
            pending_sync: HashSet::new(),
            sync_deadline: None,
            rebalance: None,
            initial_delay,
            clock,
            protocol_support: HashMap::new(),
            timers_changed: false,
        }
    }

    pub(super) fn transition(&mut self, state: GroupState, now: Instant) {
        if self.state != state {
            tracing::debug!(group = %self.id, from = self.state.name(), to = state.name(), generation = self.generation, "group state change");
            self.state = state;
            self.state_since = now;
            if state == GroupState::Empty {
                self.empty_since_ms = self.clock.wall_ms_at(now);
            }
        }
    }

    pub(super) fn is_dead(&self) -> bool {
        self.state == GroupState::Dead
    }

    /// Joined plus pending members: what the size bound counts.
    pub(super) fn size(&self) -> usize {
        self.members.len() + self.pending.len()
    }

    pub(super) fn is_leader(&self, member: &str) -> bool {
        self.leader.as_deref() == Some(member)
    }

    /// FENCED_INSTANCE_ID when `instance` is owned by another member id.
    pub(super) fn check_fenced(
        &self,
        member: &str,
        instance: Option<&str>,
    ) -> Result<(), GroupError> {
        let Some(instance) = instance else {
            return Ok(());
        };
        match self.static_members.get(instance) {
            Some(owner) if owner != member => Err(GroupError::FencedInstance {
                group: self.id.clone(),
                instance: instance.to_owned(),
                owner: owner.clone(),
                member: member.to_owned(),
            }),
            _ => Ok(()),
        }
    }

    /// Whether a member offering `protocols` of `protocol_type` may be in the
    /// group: the type matches and at least one protocol is supported by every
    /// other member. `exclude` is the member itself when it rejoins.
    pub(super) fn supports(
        &self,
        exclude: Option<&str>,
        protocol_type: &str,
        protocols: &[Protocol],
    ) -> bool {
        if protocol_type.is_empty() || protocols.is_empty() {
            return false;
        }
        let excluded = exclude.and_then(|id| self.members.get(id));
        let others = self.members.len() - usize::from(excluded.is_some());
        if others == 0 {
            return true;
        }
        if self.protocol_type.as_deref() != Some(protocol_type) {
            return false;
        }
        protocols.iter().any(|p| {
            let all = self.protocol_support.get(&p.name).copied().unwrap_or(0);
            let own = usize::from(excluded.is_some_and(|m| m.supports(&p.name)));
            all - own == others
        })
    }

    /// Counts (`add`) or uncounts a member's protocols in `protocol_support`.
    pub(super) fn count_protocols(&mut self, protocols: &[Protocol], add: bool) {
        let mut seen: HashSet<&str> = HashSet::with_capacity(protocols.len());
        for protocol in protocols {
            if !seen.insert(&protocol.name) {
                continue;
            }
            if add {
                *self
                    .protocol_support
                    .entry(protocol.name.clone())
                    .or_insert(0) += 1;
            } else if let Some(count) = self.protocol_support.get_mut(&protocol.name) {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    self.protocol_support.remove(&protocol.name);
                }
            }
        }
    }

    /// Adds a member (the caller then starts or advances a rebalance).
    pub(super) fn insert_member(&mut self, member: Member, protocol_type: &str) {
        if self.members.is_empty() {
            self.protocol_type = Some(protocol_type.to_owned());
        }
        if self.leader.is_none() {
            self.leader = Some(member.id.clone());
        }
        if let Some(instance) = &member.instance_id {
            self.static_members
                .insert(instance.clone(), member.id.clone());
        }
        self.count_protocols(&member.protocols, true);
        self.members.insert(member.id.clone(), member);
        self.timers_changed = true;
    }

    /// Removes a member's bookkeeping without any state transition, failing
    /// its parked requests with `error`. Returns false when it was not a member.
    pub(super) fn detach_member(&mut self, member_id: &str, error: &GroupError) -> bool {
        let Some(mut member) = self.members.shift_remove(member_id) else {
            return false;
        };
        member.fail_waiters(error);
        self.count_protocols(&member.protocols, false);
        if let Some(instance) = &member.instance_id {
            if self.static_members.get(instance).map(String::as_str) == Some(member_id) {
                self.static_members.remove(instance);
            }
        }
        self.pending_sync.remove(member_id);
        if self.pending_sync.is_empty() {
            self.sync_deadline = None;
        }
        if self.is_leader(member_id) {
            self.leader = self.members.keys().next().cloned();
        }
        true
    }

    /// Removes a member and moves the group on: a stable or completing group
    /// starts a rebalance, a preparing one may now complete its join phase.
    pub(super) fn remove_member(
        &mut self,
        member_id: &str,
        error: &GroupError,
        now: Instant,
    ) -> bool {
        if !self.detach_member(member_id, error) {
            return false;
        }
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.prepare_rebalance(now);
                // With nobody left to wait for, the group empties right away.
                self.try_complete_join(now);
            }
            GroupState::PreparingRebalance => {
                self.try_complete_join(now);
            }
            GroupState::Empty | GroupState::Dead => {}
        }
        true
    }

    /// The JoinGroup answer for `member_id` in the current generation.
    pub(super) fn current_join_result(&self, member_id: &str) -> JoinSuccess {
        let protocol_name = self.protocol_name.clone().unwrap_or_default();
        let members = if self.is_leader(member_id) {
            self.members
                .values()
                .map(|m| JoinedMember {
                    member_id: m.id.clone(),
                    instance_id: m.instance_id.clone(),
                    metadata: m.metadata_for(&protocol_name),
                })
                .collect()
        } else {
            Vec::new()
        };
        JoinSuccess {
            generation: self.generation,
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            protocol_name,
            leader: self.leader.clone().unwrap_or_default(),
            member_id: member_id.to_owned(),
            members,
        }
    }

    /// Topics the members subscribe to, from their "consumer" protocol
    /// metadata; `None` when any member's metadata cannot be read (callers then
    /// assume every topic is subscribed).
    pub(super) fn subscribed_topics(&self) -> Option<HashSet<String>> {
        let mut topics = HashSet::new();
        for member in self.members.values() {
            let metadata = match &self.protocol_name {
                Some(name) => member.metadata_for(name),
                None => member.protocols.first()?.metadata.clone(),
            };
            topics.extend(subscribed_topics(&metadata)?);
        }
        Some(topics)
    }
}
