//! ListGroups: every group the coordinator knows, including groups that exist
//! only through committed offsets (reported Empty with no protocol type, as
//! Kafka reports groups of standalone consumers).

use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{GroupId, ListGroupsRequest, ListGroupsResponse};
use std::collections::BTreeMap;

use super::coordinator::{owned, wire, GroupCoordinator};
use super::error::GroupError;
use super::state::GroupState;

/// The only group type this coordinator runs (KIP-848 calls it "classic").
const GROUP_TYPE: &str = "classic";

impl GroupCoordinator {
    /// Handles ListGroups (v0-v5), with the v4 states filter and v5 types filter.
    pub async fn list_groups(&self, req: ListGroupsRequest, version: i16) -> ListGroupsResponse {
        let mut response = ListGroupsResponse::default();
        // group id -> (protocol type, state)
        let mut groups: BTreeMap<String, (String, GroupState)> = BTreeMap::new();
        for id in self.registry.ids() {
            let summary = self.registry.with_group(&id, |g| {
                (g.protocol_type.clone().unwrap_or_default(), g.state)
            });
            if let Some(summary) = summary {
                groups.insert(id, summary);
            }
        }
        match self.blocking(|backend| backend.groups_with_offsets()).await {
            Ok(with_offsets) => {
                for id in with_offsets {
                    groups
                        .entry(id)
                        .or_insert((String::new(), GroupState::Empty));
                }
            }
            Err(reason) => {
                let error = GroupError::Storage {
                    group: String::new(),
                    operation: "list groups with offsets",
                    reason,
                };
                tracing::warn!(%error, "ListGroups failed");
                response.error_code = error.code();
                return response;
            }
        }

        let states: Vec<String> = if version >= 4 {
            req.states_filter.iter().map(owned).collect()
        } else {
            Vec::new()
        };
        let types: Vec<String> = if version >= 5 {
            req.types_filter.iter().map(owned).collect()
        } else {
            Vec::new()
        };
        if !types.is_empty() && !types.iter().any(|t| t.eq_ignore_ascii_case(GROUP_TYPE)) {
            return response;
        }
        response.groups = groups
            .into_iter()
            .filter(|(_, (_, state))| {
                states.is_empty() || states.iter().any(|s| s.eq_ignore_ascii_case(state.name()))
            })
            .map(|(id, (protocol_type, state))| {
                let mut listed = ListedGroup::default();
                listed.group_id = GroupId(wire(id));
                listed.protocol_type = wire(protocol_type);
                if version >= 4 {
                    listed.group_state = wire(state.name());
                }
                if version >= 5 {
                    listed.group_type = wire(GROUP_TYPE);
                }
                listed
            })
            .collect();
        response
    }
}
