//! DeleteGroups: removing empty groups and their committed offsets.
//!
//! Only a group without members may be deleted (NON_EMPTY_GROUP otherwise). A
//! group is removed from memory first, so no member can join the doomed
//! generation; a join arriving afterwards simply starts a new group.

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse};

use super::coordinator::{owned, GroupCoordinator};
use super::error::GroupError;
use super::state::GroupState;

impl GroupCoordinator {
    /// Handles DeleteGroups (v0-v2).
    pub async fn delete_groups(
        &self,
        req: DeleteGroupsRequest,
        _version: i16,
    ) -> DeleteGroupsResponse {
        let mut response = DeleteGroupsResponse::default();
        for group_id in req.groups_names {
            let group = owned(&group_id);
            let mut result = DeletableGroupResult::default();
            result.group_id = group_id;
            if let Err(error) = self.delete_one(&group).await {
                tracing::debug!(%error, "DeleteGroups entry refused");
                result.error_code = error.code();
            } else {
                tracing::info!(group = %group, "group deleted");
            }
            response.results.push(result);
        }
        response
    }

    async fn delete_one(&self, group: &str) -> Result<(), GroupError> {
        self.check_group_id(group)?;
        let in_memory = self.registry.remove_if(group, |g| {
            if g.state == GroupState::Empty {
                Ok(())
            } else {
                Err(GroupError::NonEmptyGroup {
                    group: group.to_owned(),
                    state: g.state.name(),
                })
            }
        });
        if let Some(Err(error)) = in_memory {
            return Err(error);
        }
        let group_id = group.to_owned();
        let storage_error = |reason| GroupError::Storage {
            group: group.to_owned(),
            operation: "delete group",
            reason,
        };
        let existed_in_storage = self
            .blocking(move |backend| {
                if backend.committed_offsets(&group_id).is_empty() {
                    Ok(false)
                } else {
                    backend.delete_group(&group_id).map(|()| true)
                }
            })
            .await
            .and_then(|r| r)
            .map_err(storage_error)?;
        if in_memory.is_none() && !existed_in_storage {
            return Err(GroupError::GroupNotFound {
                group: group.to_owned(),
            });
        }
        Ok(())
    }
}
