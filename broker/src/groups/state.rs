//! The classic group state machine's states and their wire names.
//!
//! ```text
//! Empty --join--> PreparingRebalance --all joined / timeout--> CompletingRebalance
//!   ^                    ^                                           | leader SyncGroup
//!   |                    +------------ join / leave / expiry --------+--> Stable
//!   +-- last member gone (rebalance completes with no members)
//! Dead: deleted or evicted; never visible in the registry.
//! ```

/// State of a consumer group, as reported by DescribeGroups and ListGroups.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GroupState {
    /// No members; may still have committed offsets.
    Empty,
    /// Waiting for members to (re)join.
    PreparingRebalance,
    /// Everyone joined; waiting for the leader's assignment.
    CompletingRebalance,
    /// Assignment distributed; members heartbeat.
    Stable,
    /// Removed.
    Dead,
}

impl GroupState {
    /// All states, in the order Kafka lists them.
    #[cfg(test)]
    pub const ALL: [GroupState; 5] = [
        GroupState::PreparingRebalance,
        GroupState::CompletingRebalance,
        GroupState::Stable,
        GroupState::Dead,
        GroupState::Empty,
    ];

    /// The name Kafka uses on the wire.
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }

    /// Parses a wire name, ignoring ASCII case (as Kafka's ListGroups filter does).
    #[cfg(test)]
    pub fn parse(name: &str) -> Option<GroupState> {
        Self::ALL
            .into_iter()
            .find(|s| s.name().eq_ignore_ascii_case(name))
    }
}

#[cfg(test)]
mod tests {
    use super::GroupState;

    #[test]
    fn names_round_trip_case_insensitively() {
        for state in GroupState::ALL {
            assert_eq!(GroupState::parse(state.name()), Some(state));
            assert_eq!(
                GroupState::parse(&state.name().to_ascii_lowercase()),
                Some(state)
            );
        }
        assert_eq!(GroupState::parse("Rebalancing"), None);
        assert_eq!(GroupState::parse(""), None);
    }
}
