//! Identifiers shared by every module: a broker's Raft node id and a partition's Raft group id.
//!
//! Group ids are plain numbers assigned by the cluster metadata (one per topic partition), so a
//! transport frame names its group in 8 bytes instead of a topic name.

use std::fmt;

/// A broker's id in every Raft group it belongs to (never 0: raft-rs reserves it).
pub type NodeId = u64;

/// One Raft group: a replicated partition (or the cluster metadata group).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GroupId(pub u64);

impl fmt::Display for GroupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "group {}", self.0)
    }
}
