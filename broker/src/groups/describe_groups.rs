//! DescribeGroups: state, protocol and members of groups.
//!
//! As in Kafka, member metadata and assignments are included only while the
//! group is Stable (before that they belong to a generation in flux), and the
//! protocol name is reported only then. An unknown group is "Dead" with no
//! error up to v5; v6 answers GROUP_ID_NOT_FOUND (KIP-1043).

use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::{DescribeGroupsRequest, DescribeGroupsResponse};

use super::coordinator::{owned, wire, GroupCoordinator};
use super::error::GroupError;
use super::group::Group;
use super::state::GroupState;

/// Kafka's ACL operation codes for a group resource (READ, DELETE, DESCRIBE):
/// without an authorizer every client may do all of them.
const GROUP_OPERATIONS: i32 = (1 << 3) | (1 << 6) | (1 << 8);

impl Group {
    fn describe(&self, described: &mut DescribedGroup, version: i16) {
        described.group_state = wire(self.state.name());
        described.protocol_type = wire(self.protocol_type.clone().unwrap_or_default());
        let stable = self.state == GroupState::Stable;
        let protocol = if stable {
            self.protocol_name.clone().unwrap_or_default()
        } else {
            String::new()
        };
        described.members = self
            .members
            .values()
            .map(|m| {
                let mut member = DescribedGroupMember::default();
                member.member_id = wire(m.id.clone());
                if version >= 4 {
                    member.group_instance_id = m.instance_id.clone().map(wire);
                }
                member.client_id = wire(m.client_id.clone());
                member.client_host = wire(m.client_host.clone());
                if stable {
                    member.member_metadata = m.metadata_for(&protocol);
                    member.member_assignment = m.assignment.clone();
                }
                member
            })
            .collect();
        described.protocol_data = wire(protocol);
    }
}

impl GroupCoordinator {
    /// Handles DescribeGroups (v0-v6).
    pub async fn describe_groups(
        &self,
        req: DescribeGroupsRequest,
        version: i16,
    ) -> DescribeGroupsResponse {
        let mut response = DescribeGroupsResponse::default();
        for group_id in req.groups {
            let group = owned(&group_id);
            let mut described = DescribedGroup::default();
            described.group_id = group_id;
            if version >= 3 && req.include_authorized_operations {
                described.authorized_operations = GROUP_OPERATIONS;
            }
            if let Err(error) = self.describe_one(&group, &mut described, version).await {
                tracing::debug!(%error, "DescribeGroups entry refused");
                described.error_code = error.code();
                described.group_state = wire(GroupState::Dead.name());
                if version >= 6 {
                    described.error_message = Some(wire(error.to_string()));
                }
            }
            response.groups.push(described);
        }
        response
    }

    async fn describe_one(
        &self,
        group: &str,
        described: &mut DescribedGroup,
        version: i16,
    ) -> Result<(), GroupError> {
        self.check_group_id(group)?;
        if self
            .registry
            .with_group(group, |g| g.describe(described, version))
            .is_some()
        {
            return Ok(());
        }
        let group_id = group.to_owned();
        let has_offsets = self
            .blocking(move |backend| !backend.committed_offsets(&group_id).is_empty())
            .await
            .map_err(|reason| GroupError::Storage {
                group: group.to_owned(),
                operation: "read committed offsets",
                reason,
            })?;
        if has_offsets {
            described.group_state = wire(GroupState::Empty.name());
            Ok(())
        } else if version >= 6 {
            Err(GroupError::GroupNotFound {
                group: group.to_owned(),
            })
        } else {
            described.group_state = wire(GroupState::Dead.name());
            Ok(())
        }
    }
}
