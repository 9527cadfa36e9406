//! What the rest of the broker knows about replication: the statuses the
//! driver loop last published, one per Raft group on this broker.

use std::collections::HashMap;

use parking_lot::RwLock;
use starlog_replication::{GroupId, GroupStatus, NodeId, Role};

/// A follower more than this many Raft entries behind the leader is out of
/// the in-sync replica set.
pub(super) const ISR_MAX_LAG_ENTRIES: u64 = 1_000;

/// The latest published statuses (see the module docs).
#[derive(Debug, Default)]
pub(crate) struct ClusterView {
    statuses: RwLock<HashMap<GroupId, GroupStatus>>,
    membership: RwLock<Membership>,
    placement: RwLock<Placement>,
}

/// Where each group's replicas belong, and the leaders announced in the
/// metadata log, as of the last command this broker applied.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Placement {
    /// Each partition group's replicas to have (the driver loop moves the
    /// groups it leads towards them).
    pub targets: HashMap<GroupId, Vec<NodeId>>,
    /// Each partition group's last announced leader, term, replicas and
    /// in-sync replicas.
    pub announced: HashMap<GroupId, Announced>,
}

/// A partition group's leader as announced in the metadata log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Announced {
    /// Leader.
    pub leader: NodeId,
    /// Its term.
    pub term: u64,
    /// Voters and learners.
    pub replicas: Vec<NodeId>,
    /// In-sync replicas.
    pub isr: Vec<NodeId>,
}

/// Who belongs to the cluster, as the metadata log says (the driver loop
/// moves every group it leads towards it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Membership {
    /// Members and their inter-broker addresses.
    pub members: Vec<(NodeId, super::peer_addr::PeerAddr)>,
    /// Brokers removed from the cluster.
    pub removed: Vec<NodeId>,
}

impl ClusterView {
    /// Replaces every status (the driver loop calls this).
    pub fn publish(&self, statuses: Vec<GroupStatus>) {
        let map = statuses.into_iter().map(|s| (s.group, s)).collect();
        *self.statuses.write() = map;
    }

    /// Replaces the membership (the metadata applier calls this).
    pub fn set_membership(&self, m: Membership) {
        *self.membership.write() = m;
    }

    /// Replaces the placement (the metadata applier calls this once it has
    /// caught up with the metadata log).
    pub fn set_placement(&self, p: Placement) {
        *self.placement.write() = p;
    }

    /// The current placement.
    pub fn placement(&self) -> Placement {
        self.placement.read().clone()
    }

    /// The announced leader of one group.
    pub fn announced(&self, group: GroupId) -> Option<Announced> {
        self.placement.read().announced.get(&group).cloned()
    }

    /// The current membership.
    pub fn membership(&self) -> Membership {
        self.membership.read().clone()
    }

    /// This broker's term when it leads `group`.
    pub fn leader_term(&self, group: GroupId) -> Option<u64> {
        let s = self.statuses.read();
        let st = s.get(&group)?;
        (st.role == Role::Leader && st.failed.is_none()).then_some(st.term)
    }

    /// The leader of `group` as this broker knows it, with the term.
    pub fn leader(&self, group: GroupId) -> Option<(NodeId, u64)> {
        let s = self.statuses.read();
        let st = s.get(&group)?;
        st.leader.map(|l| (l, st.term))
    }

    /// One group's status.
    pub fn status(&self, group: GroupId) -> Option<GroupStatus> {
        self.statuses.read().get(&group).cloned()
    }

    /// Every status, by group id.
    pub fn all(&self) -> Vec<GroupStatus> {
        let mut v: Vec<_> = self.statuses.read().values().cloned().collect();
        v.sort_by_key(|s| s.group);
        v
    }
}

/// What Metadata says of a replicated partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leadership {
    /// The leader, if one is known.
    pub leader: Option<NodeId>,
    /// The leader's term (Kafka's leader epoch); -1 when unknown.
    pub epoch: i32,
    /// Voters and learners (the replicas to have when nothing is known).
    pub replicas: Vec<NodeId>,
    /// In-sync replicas.
    pub isr: Vec<NodeId>,
}

impl Leadership {
    /// Combines this broker's own status of the group (if it hosts it) with
    /// the leader last announced in the metadata log: the newer term wins,
    /// and a leader's own view of its in-sync replicas beats any other.
    pub fn of(
        local: Option<&GroupStatus>,
        announced: Option<&Announced>,
        target: Vec<NodeId>,
    ) -> Self {
        let epoch = |term: u64| i32::try_from(term).unwrap_or(i32::MAX);
        let replicas_of = |s: &GroupStatus| {
            let mut r: Vec<NodeId> = s.voters.iter().chain(&s.learners).copied().collect();
            r.sort_unstable();
            r
        };
        if let Some(s) = local.filter(|s| s.role == Role::Leader && s.failed.is_none()) {
            return Self {
                leader: Some(s.node),
                epoch: epoch(s.term),
                replicas: replicas_of(s),
                isr: s.in_sync_replicas(ISR_MAX_LAG_ENTRIES),
            };
        }
        let local = local.filter(|s| s.leader.is_some() && s.failed.is_none());
        match (local, announced) {
            (Some(s), a) if a.is_none_or(|a| s.term > a.term) => Self {
                leader: s.leader,
                epoch: epoch(s.term),
                replicas: replicas_of(s),
                isr: s.voters.clone(),
            },
            (_, Some(a)) => Self {
                leader: Some(a.leader),
                epoch: epoch(a.term),
                replicas: a.replicas.clone(),
                isr: a.isr.clone(),
            },
            (_, None) => Self {
                leader: None,
                epoch: -1,
                replicas: target,
                isr: Vec::new(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use starlog_replication::{ReplicaState, ReplicaStatus};

    fn status(node: NodeId, role: Role, leader: Option<NodeId>, term: u64) -> GroupStatus {
        GroupStatus {
            group: GroupId(1),
            topic: "t".into(),
            partition: 0,
            node,
            role,
            leader,
            term,
            commit_index: 0,
            applied_index: 0,
            first_index: 1,
            last_index: 0,
            persisted_index: 0,
            high_watermark: 0,
            log_start_offset: 0,
            log_end_offset: 0,
            voters: vec![1, 2, 3],
            learners: vec![4],
            replicas: Vec::new(),
            failed: None,
        }
    }

    fn announced(leader: NodeId, term: u64) -> Announced {
        Announced {
            leader,
            term,
            replicas: vec![1, 2],
            isr: vec![1],
        }
    }

    #[test]
    fn the_newer_term_names_the_leader() {
        let follower = status(2, Role::Follower, Some(1), 5);
        // Own view newer than the announcement.
        let l = Leadership::of(Some(&follower), Some(&announced(3, 4)), vec![9]);
        assert_eq!(
            (l.leader, l.epoch, l.replicas),
            (Some(1), 5, vec![1, 2, 3, 4])
        );
        // Announcement as new as the own view: it also knows the ISR.
        let l = Leadership::of(Some(&follower), Some(&announced(1, 5)), vec![9]);
        assert_eq!((l.leader, l.epoch, l.isr), (Some(1), 5, vec![1]));
        // Not hosted here: the announcement alone.
        let l = Leadership::of(None, Some(&announced(2, 7)), vec![9]);
        assert_eq!((l.leader, l.epoch, l.replicas), (Some(2), 7, vec![1, 2]));
        // Nothing known: no leader, the placement's replicas.
        let l = Leadership::of(None, None, vec![9]);
        assert_eq!((l.leader, l.epoch, l.replicas), (None, -1, vec![9]));
        // The leader itself answers with its own status.
        let leader = status(1, Role::Leader, Some(1), 8);
        let l = Leadership::of(Some(&leader), Some(&announced(3, 7)), vec![9]);
        assert_eq!((l.leader, l.epoch), (Some(1), 8));
    }

    fn replica(node: NodeId, lag_entries: u64, recently_active: bool) -> ReplicaStatus {
        ReplicaStatus {
            node,
            matched_index: 0,
            next_index: 1,
            lag_entries,
            matched_offset: Some(0),
            lag_offsets: Some(0),
            state: ReplicaState::Replicate,
            recently_active,
        }
    }

    #[test]
    fn a_leaders_own_isr_leaves_out_lagging_and_silent_followers() {
        let mut leader = status(1, Role::Leader, Some(1), 6);
        leader.replicas = vec![
            replica(1, 0, true),
            replica(2, ISR_MAX_LAG_ENTRIES, true),
            replica(3, ISR_MAX_LAG_ENTRIES + 1, true),
            replica(4, 0, false),
        ];
        let l = Leadership::of(Some(&leader), None, vec![9]);
        assert_eq!((l.leader, l.epoch), (Some(1), 6));
        assert_eq!(l.isr, vec![1, 2]);
    }

    #[test]
    fn a_failed_group_or_a_follower_without_a_leader_defers_to_the_announcement() {
        // A leader whose group failed (its disk, typically) names nobody itself.
        let mut failed = status(1, Role::Leader, Some(1), 9);
        failed.failed = Some("disk".into());
        let l = Leadership::of(Some(&failed), Some(&announced(2, 7)), vec![9]);
        assert_eq!((l.leader, l.epoch, l.isr), (Some(2), 7, vec![1]));
        let l = Leadership::of(Some(&failed), None, vec![9]);
        assert_eq!((l.leader, l.epoch), (None, -1));
        // A follower in an election (no leader known) at a newer term.
        let electing = status(2, Role::Candidate, None, 10);
        let l = Leadership::of(Some(&electing), Some(&announced(3, 7)), vec![9]);
        assert_eq!((l.leader, l.epoch), (Some(3), 7));
        // A follower's own view names the voters as in sync (it cannot know
        // better, and an announcement as new is preferred, as tested above).
        let follower = status(2, Role::Follower, Some(1), 8);
        let l = Leadership::of(Some(&follower), Some(&announced(3, 7)), vec![9]);
        assert_eq!((l.leader, l.epoch, l.isr), (Some(1), 8, vec![1, 2, 3]));
    }
}
