//! What the rest of the broker knows about replication: the statuses the
//! driver loop last published, one per Raft group on this broker.

use std::collections::HashMap;
use std::net::SocketAddr;

use parking_lot::RwLock;
use starlog_replication::{GroupId, GroupStatus, NodeId, Role};

/// The latest published statuses (see the module docs).
#[derive(Debug, Default)]
pub struct ClusterView {
    statuses: RwLock<HashMap<GroupId, GroupStatus>>,
    membership: RwLock<Membership>,
}

/// Who belongs to the cluster, as the metadata log says (the driver loop
/// moves every group it leads towards it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Membership {
    /// Members and their inter-broker addresses.
    pub members: Vec<(NodeId, SocketAddr)>,
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
