//! DescribeGroups / ListGroups / DeleteGroups and in-memory housekeeping.

use kafka_protocol::messages::{
    DeleteGroupsRequest, DescribeGroupsRequest, DescribeGroupsResponse, GroupId, ListGroupsRequest,
};
use kafka_protocol::ResponseError;
use std::sync::Arc;
use std::time::Duration;

use super::support::*;
use crate::groups::{GroupConfig, GroupCoordinator};

async fn describe(c: &GroupCoordinator, groups: &[&str], version: i16) -> DescribeGroupsResponse {
    let mut req = DescribeGroupsRequest::default();
    req.groups = groups.iter().map(|g| GroupId(s(g))).collect();
    let response = c.describe_groups(req, version).await;
    assert_encodes(&response, version);
    response
}

async fn list(
    c: &GroupCoordinator,
    states: &[&str],
    types: &[&str],
    version: i16,
) -> Vec<(String, String, String)> {
    let mut req = ListGroupsRequest::default();
    req.states_filter = states.iter().map(|x| s(x)).collect();
    req.types_filter = types.iter().map(|x| s(x)).collect();
    let response = c.list_groups(req, version).await;
    assert_encodes(&response, version);
    assert_eq!(response.error_code, 0);
    response
        .groups
        .iter()
        .map(|g| {
            (
                g.group_id.as_str().to_owned(),
                g.protocol_type.as_str().to_owned(),
                g.group_state.as_str().to_owned(),
            )
        })
        .collect()
}

async fn delete(c: &GroupCoordinator, groups: &[&str]) -> Vec<i16> {
    let mut req = DeleteGroupsRequest::default();
    req.groups_names = groups.iter().map(|g| GroupId(s(g))).collect();
    let response = c.delete_groups(req, 2).await;
    assert_encodes(&response, 2);
    response.results.iter().map(|r| r.error_code).collect()
}

#[tokio::test(start_paused = true)]
async fn describe_a_stable_group_shows_members_metadata_and_assignments() {
    let (c, _) = setup(config());
    let (leader, follower, _) = stable_pair(&c, "g").await;
    let response = describe(&c, &["g"], 5).await;
    let g = &response.groups[0];
    assert_eq!(g.error_code, 0);
    assert_eq!(g.group_state.as_str(), "Stable");
    assert_eq!(g.protocol_type.as_str(), "consumer");
    assert_eq!(g.protocol_data.as_str(), "range");
    assert_eq!(g.authorized_operations, i32::MIN);
    // (member id, client id, host, metadata, assignment)
    type Row = (String, String, String, Vec<u8>, Vec<u8>);
    let mut members: Vec<Row> = g
        .members
        .iter()
        .map(|m| {
            (
                m.member_id.as_str().to_owned(),
                m.client_id.as_str().to_owned(),
                m.client_host.as_str().to_owned(),
                m.member_metadata.to_vec(),
                m.member_assignment.to_vec(),
            )
        })
        .collect();
    members.sort();
    assert_eq!(
        members,
        vec![
            (
                leader,
                "a".to_owned(),
                "/127.0.0.1".to_owned(),
                b"m".to_vec(),
                b"L".to_vec()
            ),
            (
                follower,
                "b".to_owned(),
                "/127.0.0.1".to_owned(),
                b"m".to_vec(),
                b"F".to_vec()
            ),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn describe_during_a_rebalance_hides_metadata_and_protocol() {
    let (c, _) = setup(config());
    let (leader, _, generation) = stable_pair(&c, "g").await;
    let third = {
        let c = Arc::clone(&c);
        tokio::spawn(async move { join_new(&c, "g", "c", RANGE).await })
    };
    wait_for_heartbeat(
        &c,
        "g",
        &leader,
        generation,
        ResponseError::RebalanceInProgress,
    )
    .await;
    let response = describe(&c, &["g"], 3).await;
    let g = &response.groups[0];
    assert_eq!(g.group_state.as_str(), "PreparingRebalance");
    assert_eq!(g.protocol_data.as_str(), "");
    assert_eq!(g.members.len(), 3);
    assert!(g
        .members
        .iter()
        .all(|m| m.member_metadata.is_empty() && m.member_assignment.is_empty()));
    third.abort();
}

#[tokio::test(start_paused = true)]
async fn describe_unknown_offsets_only_and_invalid_groups() {
    let (c, _) = setup(config());
    commit(&c, "offsets-only", "", -1, &[("alerts", 0, 1)]).await;
    let v5 = describe(&c, &["missing", "offsets-only", ""], 5).await;
    assert_eq!(
        (v5.groups[0].error_code, v5.groups[0].group_state.as_str()),
        (0, "Dead")
    );
    assert_eq!(
        (v5.groups[1].error_code, v5.groups[1].group_state.as_str()),
        (0, "Empty")
    );
    assert_eq!(v5.groups[2].error_code, code(ResponseError::InvalidGroupId));
    let v6 = describe(&c, &["missing"], 6).await;
    assert_eq!(
        v6.groups[0].error_code,
        code(ResponseError::GroupIdNotFound)
    );
    assert!(v6.groups[0]
        .error_message
        .as_ref()
        .is_some_and(|m| m.contains("missing")));

    let mut req = DescribeGroupsRequest::default();
    req.groups = vec![GroupId(s("offsets-only"))];
    req.include_authorized_operations = true;
    let with_ops = c.describe_groups(req, 3).await;
    assert_encodes(&with_ops, 3);
    assert_eq!(
        with_ops.groups[0].authorized_operations,
        (1 << 3) | (1 << 6) | (1 << 8)
    );
}

#[tokio::test(start_paused = true)]
async fn list_groups_includes_offset_only_groups_and_applies_filters() {
    let (c, _) = setup(config());
    stable_pair(&c, "active").await;
    commit(&c, "standalone", "", -1, &[("alerts", 0, 1)]).await;
    let all = list(&c, &[], &[], 5).await;
    assert_eq!(
        all,
        vec![
            (
                "active".to_owned(),
                "consumer".to_owned(),
                "Stable".to_owned()
            ),
            ("standalone".to_owned(), String::new(), "Empty".to_owned()),
        ]
    );
    let stable = list(&c, &["Stable"], &[], 4).await;
    assert_eq!(stable.len(), 1);
    assert_eq!(stable[0].0, "active");
    let empty = list(&c, &["empty"], &[], 4).await;
    assert_eq!(empty.len(), 1);
    assert_eq!(empty[0].0, "standalone");
    assert!(list(&c, &[], &["consumer"], 5).await.is_empty());
    assert_eq!(list(&c, &[], &["Classic"], 5).await.len(), 2);
    // Before v4 filters do not exist and no state is sent.
    let v0 = list(&c, &[], &[], 0).await;
    assert_eq!(v0.len(), 2);
    assert!(v0.iter().all(|(_, _, state)| state.is_empty()));
}

#[tokio::test(start_paused = true)]
async fn delete_groups_refuses_active_groups_and_removes_empty_ones_with_their_offsets() {
    let (c, backend) = setup(config());
    let (leader, follower, _) = stable_pair(&c, "active").await;
    commit(&c, "standalone", "", -1, &[("alerts", 0, 1)]).await;
    assert_eq!(
        delete(&c, &["active", "standalone", "missing", ""]).await,
        vec![
            code(ResponseError::NonEmptyGroup),
            0,
            code(ResponseError::GroupIdNotFound),
            code(ResponseError::InvalidGroupId)
        ]
    );
    assert!(backend.offset("standalone", "alerts", 0).is_none());
    assert_eq!(list(&c, &[], &[], 3).await.len(), 1);

    // Once everyone left, the group can go.
    leave(&c, "active", &[&leader, &follower], 3).await;
    assert_eq!(delete(&c, &["active"]).await, vec![0]);
    assert!(list(&c, &[], &[], 3).await.is_empty());
    assert_eq!(
        describe(&c, &["active"], 5).await.groups[0]
            .group_state
            .as_str(),
        "Dead"
    );
    // And a new group of that name starts from scratch.
    let fresh = join_new(&c, "active", "a", RANGE).await;
    assert_eq!(fresh.generation_id, 1);
}

#[tokio::test(start_paused = true)]
async fn delete_groups_reports_a_failing_offset_store() {
    let (c, backend) = setup(config());
    commit(&c, "standalone", "", -1, &[("alerts", 0, 1)]).await;
    backend.set_failing(true);
    assert_eq!(
        delete(&c, &["standalone"]).await,
        vec![code(ResponseError::KafkaStorageError)]
    );
    assert!(backend.offset("standalone", "alerts", 0).is_some());
}

#[tokio::test(start_paused = true)]
async fn idle_empty_groups_are_evicted_from_memory_but_active_ones_stay() {
    let (c, _) = setup(GroupConfig {
        empty_group_idle_ms: 60_000,
        ..config()
    });
    let r = join_new(&c, "g", "a", RANGE).await;
    leave(&c, "g", &[r.member_id.as_str()], 3).await;
    assert_eq!(c.registry.len(), 1);
    assert_eq!(c.run_maintenance().await.groups_evicted, 0);
    tokio::time::sleep(Duration::from_secs(61)).await;
    assert_eq!(c.run_maintenance().await.groups_evicted, 1);
    assert_eq!(c.registry.len(), 0);
    assert_eq!(
        describe(&c, &["g"], 5).await.groups[0].group_state.as_str(),
        "Dead"
    );
}

#[tokio::test(start_paused = true)]
async fn the_maintenance_task_runs_periodically_and_stops_with_the_coordinator() {
    let (c, _) = setup(GroupConfig {
        empty_group_idle_ms: 1_000,
        maintenance_interval_ms: 5_000,
        ..config()
    });
    let task = c.spawn_session_reaper();
    let r = join_new(&c, "g", "a", RANGE).await;
    leave(&c, "g", &[r.member_id.as_str()], 3).await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(
        c.registry.len(),
        0,
        "the periodic pass evicted the idle group"
    );
    drop(c);
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("maintenance task ends once the coordinator is gone")
        .unwrap();
}
