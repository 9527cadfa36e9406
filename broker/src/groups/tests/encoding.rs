//! Every response the coordinator builds encodes at every version of its API
//! (the encoder refuses fields a version does not have, so this catches
//! version-dependent fields set at the wrong versions).

use kafka_protocol::messages::*;
use kafka_protocol::ResponseError;

use super::support::*;

#[tokio::test(start_paused = true)]
async fn join_and_sync_responses_encode_at_every_version() {
    let (c, _) = setup(config());
    for version in 0..=9i16 {
        let group = format!("join-v{version}");
        // Error path.
        let mut bad = join_request(&group, "", RANGE);
        bad.session_timeout_ms = 1;
        let refused = join(&c, bad, version, "a").await;
        assert_eq!(
            refused.error_code,
            code(ResponseError::InvalidSessionTimeout)
        );
        // Success path (static member from v5, so the leader's list carries an instance id).
        let mut req = join_request(&group, "", RANGE);
        if version >= 5 {
            req.group_instance_id = Some(s("instance"));
        }
        let mut joined = join(&c, req.clone(), version, "a").await;
        if joined.error_code == code(ResponseError::MemberIdRequired) {
            req.member_id = joined.member_id.clone();
            joined = join(&c, req, version, "a").await;
        }
        assert_eq!(joined.error_code, 0, "v{version}");
        assert_eq!(joined.members.len(), 1);
        let member = joined.member_id.as_str().to_owned();
        if version <= 5 {
            let sync_version = version;
            let assignments: Vec<(&str, &[u8])> = vec![(member.as_str(), b"x")];
            let synced = sync(
                &c,
                sync_request(&group, &member, joined.generation_id, &assignments),
                sync_version,
            )
            .await;
            assert_eq!(synced.error_code, 0);
            assert_eq!(synced.assignment.as_ref(), b"x");
            let refused = sync(&c, sync_request(&group, "ghost", 1, &[]), sync_version).await;
            assert_eq!(refused.error_code, code(ResponseError::UnknownMemberId));
        }
    }
}

#[tokio::test(start_paused = true)]
async fn heartbeat_and_leave_responses_encode_at_every_version() {
    let (c, _) = setup(config());
    let (leader, follower, generation) = stable_pair(&c, "g").await;
    for version in 0..=4i16 {
        let mut req = HeartbeatRequest::default();
        req.group_id = GroupId(s("g"));
        req.member_id = s(&leader);
        req.generation_id = generation;
        let response = c.heartbeat(req, version).await;
        assert_encodes(&response, version);
        assert_eq!(response.error_code, 0);
    }
    for version in 0..=5i16 {
        let response = leave(&c, "g", &["ghost"], version).await;
        if version >= 3 {
            assert_eq!(
                response.members[0].error_code,
                code(ResponseError::UnknownMemberId)
            );
        } else {
            assert_eq!(response.error_code, code(ResponseError::UnknownMemberId));
        }
    }
    assert_eq!(leave(&c, "g", &[&follower], 0).await.error_code, 0);
}

#[tokio::test(start_paused = true)]
async fn offset_responses_encode_at_every_version() {
    let (c, _) = setup(config());
    for version in 2..=9i16 {
        let mut req = OffsetCommitRequest::default();
        req.group_id = GroupId(s("g"));
        let mut t = offset_commit_request::OffsetCommitRequestTopic::default();
        t.name = TopicName(s("alerts"));
        for partition in [0, 99] {
            let mut p = offset_commit_request::OffsetCommitRequestPartition::default();
            p.partition_index = partition;
            p.committed_offset = i64::from(version);
            t.partitions.push(p);
        }
        req.topics.push(t);
        let response = c.offset_commit(req, version).await;
        assert_encodes(&response, version);
        let codes: Vec<i16> = response.topics[0]
            .partitions
            .iter()
            .map(|p| p.error_code)
            .collect();
        assert_eq!(codes, vec![0, code(ResponseError::UnknownTopicOrPartition)]);
    }
    for version in 1..=9i16 {
        let mut req = OffsetFetchRequest::default();
        if version >= 8 {
            let mut g = offset_fetch_request::OffsetFetchRequestGroup::default();
            g.group_id = GroupId(s("g"));
            let mut t = offset_fetch_request::OffsetFetchRequestTopics::default();
            t.name = TopicName(s("alerts"));
            t.partition_indexes = vec![0, 1];
            g.topics = Some(vec![t]);
            req.groups.push(g);
        } else {
            req.group_id = GroupId(s("g"));
            let mut t = offset_fetch_request::OffsetFetchRequestTopic::default();
            t.name = TopicName(s("alerts"));
            t.partition_indexes = vec![0, 1];
            req.topics = Some(vec![t]);
        }
        let response = c.offset_fetch(req, version).await;
        assert_encodes(&response, version);
        let offsets: Vec<i64> = if version >= 8 {
            response.groups[0].topics[0]
                .partitions
                .iter()
                .map(|p| p.committed_offset)
                .collect()
        } else {
            response.topics[0]
                .partitions
                .iter()
                .map(|p| p.committed_offset)
                .collect()
        };
        assert_eq!(offsets, vec![9, -1], "v{version}");
    }
}

#[tokio::test(start_paused = true)]
async fn admin_responses_encode_at_every_version() {
    let (c, _) = setup(config());
    stable_pair(&c, "g").await;
    commit(&c, "offsets-only", "", -1, &[("alerts", 0, 1)]).await;
    for version in 0..=6i16 {
        let mut req = DescribeGroupsRequest::default();
        req.groups = vec![GroupId(s("g")), GroupId(s("missing")), GroupId(s(""))];
        req.include_authorized_operations = version >= 3;
        let response = c.describe_groups(req, version).await;
        assert_encodes(&response, version);
        assert_eq!(response.groups[0].members.len(), 2);
    }
    for version in 0..=5i16 {
        let response = c.list_groups(ListGroupsRequest::default(), version).await;
        assert_encodes(&response, version);
        assert_eq!(response.groups.len(), 2);
    }
    for version in 0..=2i16 {
        let mut req = DeleteGroupsRequest::default();
        req.groups_names = vec![GroupId(s("g")), GroupId(s("missing"))];
        let response = c.delete_groups(req, version).await;
        assert_encodes(&response, version);
        assert_eq!(
            response.results[0].error_code,
            code(ResponseError::NonEmptyGroup)
        );
    }
}
