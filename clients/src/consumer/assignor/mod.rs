//! Partition assignors run by the group leader: `range` (eager, the Java
//! default) and `cooperative-sticky` (incremental: members keep what they
//! own, and a partition moves in two rebalances, first revoked, then
//! assigned, so it is never consumed by two members at once).

pub mod cooperative_sticky;
pub mod range;

use std::collections::{BTreeMap, HashMap};

use crate::TopicPartition;

/// Which assignor; the group picks one that every member offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssignorKind {
    /// `range`.
    Range,
    /// `cooperative-sticky`.
    CooperativeSticky,
}

impl AssignorKind {
    /// The protocol name in JoinGroup.
    pub fn name(self) -> &'static str {
        match self {
            Self::Range => "range",
            Self::CooperativeSticky => "cooperative-sticky",
        }
    }

    /// The assignor of a protocol name.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "range" => Some(Self::Range),
            "cooperative-sticky" => Some(Self::CooperativeSticky),
            _ => None,
        }
    }

    /// True when members keep their partitions across a rebalance.
    pub fn is_cooperative(self) -> bool {
        self == Self::CooperativeSticky
    }

    /// Runs the assignor.
    pub fn assign(
        self,
        members: &[Member],
        partitions: &HashMap<String, i32>,
    ) -> BTreeMap<String, Vec<TopicPartition>> {
        match self {
            Self::Range => range::assign(members, partitions),
            Self::CooperativeSticky => cooperative_sticky::assign(members, partitions),
        }
    }
}

/// A group member as the leader sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Member id.
    pub id: String,
    /// Subscribed topics.
    pub topics: Vec<String>,
    /// Partitions it owns now.
    pub owned: Vec<TopicPartition>,
    /// Generation of that ownership.
    pub generation: i32,
}
