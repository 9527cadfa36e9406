//! OffsetCommit / OffsetFetch / OffsetDelete and offset retention.

use kafka_protocol::messages::offset_delete_request::{
    OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::{GroupId, OffsetDeleteRequest, OffsetFetchRequest, TopicName};
use kafka_protocol::ResponseError;
use std::sync::Arc;
use std::time::Duration;

use super::support::*;
use crate::groups::subscription::tests::encode_subscription;
use crate::groups::GroupConfig;

const NONE: i16 = 0;

#[tokio::test(start_paused = true)]
async fn commit_then_fetch_round_trips_and_is_stored_durably_in_the_backend() {
    let (c, backend) = setup(config());
    let (leader, _, generation) = stable_pair(&c, "g").await;
    let results = commit(
        &c,
        "g",
        &leader,
        generation,
        &[("alerts", 0, 100), ("alerts", 3, 7), ("ztf-buffer", 1, 42)],
    )
    .await;
    assert!(results.iter().all(|(_, _, e)| *e == NONE), "{results:?}");
    let stored = backend.offset("g", "alerts", 3).unwrap();
    assert_eq!(stored.offset, 7);
    assert_eq!(stored.leader_epoch, 7);
    assert_eq!(stored.metadata.as_deref(), Some("meta"));
    assert!(
        stored.commit_timestamp_ms > 1_600_000_000_000,
        "wall-clock ms: {}",
        stored.commit_timestamp_ms
    );

    let (error, fetched) = fetch(
        &c,
        "g",
        Some(&[("alerts", &[0, 1, 3]), ("ztf-buffer", &[1])]),
    )
    .await;
    assert_eq!(error, NONE);
    assert_eq!(
        fetched,
        vec![
            ("alerts".to_owned(), 0, 100, "meta".to_owned(), NONE),
            ("alerts".to_owned(), 1, -1, String::new(), NONE),
            ("alerts".to_owned(), 3, 7, "meta".to_owned(), NONE),
            ("ztf-buffer".to_owned(), 1, 42, "meta".to_owned(), NONE),
        ]
    );
    // A later commit replaces the position.
    commit(&c, "g", &leader, generation, &[("alerts", 0, 150)]).await;
    let (_, again) = fetch(&c, "g", Some(&[("alerts", &[0])])).await;
    assert_eq!(again[0].2, 150);
}

#[tokio::test(start_paused = true)]
async fn fetch_without_topics_returns_every_committed_partition_and_unknown_groups_give_minus_one()
{
    let (c, _) = setup(config());
    assert_eq!(
        commit(
            &c,
            "simple",
            "",
            -1,
            &[("ztf-buffer", 0, 5), ("alerts", 2, 9)]
        )
        .await[0]
            .2,
        NONE
    );
    let (error, all) = fetch(&c, "simple", None).await;
    assert_eq!(error, NONE);
    let positions: Vec<(String, i32, i64)> =
        all.into_iter().map(|(t, p, o, _, _)| (t, p, o)).collect();
    assert_eq!(
        positions,
        vec![("alerts".to_owned(), 2, 9), ("ztf-buffer".to_owned(), 0, 5)]
    );

    let (error, none) = fetch(
        &c,
        "never-seen",
        Some(&[("alerts", &[0]), ("no-such-topic", &[0])]),
    )
    .await;
    assert_eq!(error, NONE);
    assert!(
        none.iter()
            .all(|(_, _, offset, _, e)| *offset == -1 && *e == NONE),
        "{none:?}"
    );
    let (_, empty) = fetch(&c, "never-seen", None).await;
    assert!(empty.is_empty());
}

#[tokio::test(start_paused = true)]
async fn standalone_commits_are_accepted_only_while_the_group_has_no_members() {
    let (c, backend) = setup(config());
    assert_eq!(
        commit(&c, "g", "", -1, &[("alerts", 0, 1)]).await[0].2,
        NONE
    );
    stable_pair(&c, "g").await;
    let refused = commit(&c, "g", "", -1, &[("alerts", 0, 2)]).await;
    assert_eq!(refused[0].2, code(ResponseError::UnknownMemberId));
    assert_eq!(backend.offset("g", "alerts", 0).unwrap().offset, 1);
}

#[tokio::test(start_paused = true)]
async fn commits_from_stale_generations_or_unknown_members_are_rejected() {
    let (c, backend) = setup(config());
    let (leader, follower, generation) = stable_pair(&c, "g").await;
    let stale = commit(&c, "g", &leader, generation - 1, &[("alerts", 0, 10)]).await;
    assert_eq!(stale[0].2, code(ResponseError::IllegalGeneration));
    let unknown = commit(&c, "g", "intruder", generation, &[("alerts", 0, 10)]).await;
    assert_eq!(unknown[0].2, code(ResponseError::UnknownMemberId));
    let no_group = commit(&c, "other", "someone", 3, &[("alerts", 0, 10)]).await;
    assert_eq!(no_group[0].2, code(ResponseError::IllegalGeneration));
    assert!(backend.offset("g", "alerts", 0).is_none());
    assert!(backend.offset("other", "alerts", 0).is_none());

    // During PreparingRebalance the current generation may still commit
    // (consumers commit before giving partitions up) ...
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
    assert_eq!(
        commit(&c, "g", &follower, generation, &[("alerts", 1, 11)]).await[0].2,
        NONE
    );
    // ... but in CompletingRebalance the new generation must wait for its assignment.
    let (l, _f) = tokio::join!(
        join(&c, join_request("g", &leader, RANGE), 5, "a"),
        join(&c, join_request("g", &follower, RANGE), 5, "b"),
    );
    let _ = third.await.unwrap();
    let early = commit(&c, "g", &leader, l.generation_id, &[("alerts", 1, 12)]).await;
    assert_eq!(early[0].2, code(ResponseError::RebalanceInProgress));
    assert_eq!(backend.offset("g", "alerts", 1).unwrap().offset, 11);
}

#[tokio::test(start_paused = true)]
async fn unknown_topics_and_partitions_are_refused_per_partition() {
    let (c, backend) = setup(config());
    let results = commit(
        &c,
        "g",
        "",
        -1,
        &[
            ("alerts", 0, 1),
            ("alerts", 4, 1),
            ("alerts", -1, 1),
            ("nope", 0, 1),
        ],
    )
    .await;
    let codes: Vec<i16> = results.iter().map(|r| r.2).collect();
    let unknown = code(ResponseError::UnknownTopicOrPartition);
    assert_eq!(codes, vec![NONE, unknown, unknown, unknown]);
    assert!(backend.offset("g", "alerts", 0).is_some());
    assert!(backend.offset("g", "alerts", 4).is_none());
    assert!(backend.offset("g", "nope", 0).is_none());
}

#[tokio::test(start_paused = true)]
async fn a_failing_offset_store_is_reported_and_nothing_is_acknowledged() {
    let (c, backend) = setup(config());
    backend.set_failing(true);
    let results = commit(&c, "g", "", -1, &[("alerts", 0, 1), ("alerts", 1, 1)]).await;
    assert!(
        results
            .iter()
            .all(|r| r.2 == code(ResponseError::KafkaStorageError)),
        "{results:?}"
    );
    let (_, fetched) = fetch(&c, "g", Some(&[("alerts", &[0])])).await;
    assert_eq!(fetched[0].2, -1);
    backend.set_failing(false);
    assert_eq!(
        commit(&c, "g", "", -1, &[("alerts", 0, 1)]).await[0].2,
        NONE
    );
}

#[tokio::test(start_paused = true)]
async fn oversized_commit_metadata_is_refused() {
    let (c, backend) = setup(GroupConfig {
        max_offset_metadata_bytes: 8,
        ..config()
    });
    let mut req = kafka_protocol::messages::OffsetCommitRequest::default();
    req.group_id = GroupId(s("g"));
    let mut topic =
        kafka_protocol::messages::offset_commit_request::OffsetCommitRequestTopic::default();
    topic.name = TopicName(s("alerts"));
    for (partition, metadata) in [(0, "short"), (1, "much too long")] {
        let mut p =
            kafka_protocol::messages::offset_commit_request::OffsetCommitRequestPartition::default(
            );
        p.partition_index = partition;
        p.committed_offset = 3;
        p.committed_metadata = Some(s(metadata));
        topic.partitions.push(p);
    }
    req.topics.push(topic);
    let response = c.offset_commit(req, 2).await;
    assert_encodes(&response, 2);
    let codes: Vec<i16> = response.topics[0]
        .partitions
        .iter()
        .map(|p| p.error_code)
        .collect();
    assert_eq!(
        codes,
        vec![NONE, code(ResponseError::OffsetMetadataTooLarge)]
    );
    assert!(backend.offset("g", "alerts", 0).is_some());
    assert!(backend.offset("g", "alerts", 1).is_none());
    // Before v6 there is no leader epoch: stored as -1.
    assert_eq!(backend.offset("g", "alerts", 0).unwrap().leader_epoch, -1);
}

#[tokio::test(start_paused = true)]
async fn offset_fetch_v8_answers_several_groups() {
    let (c, _) = setup(config());
    commit(&c, "g1", "", -1, &[("alerts", 0, 10)]).await;
    commit(&c, "g2", "", -1, &[("alerts", 0, 20)]).await;
    let mut req = OffsetFetchRequest::default();
    for (group, topics) in [("g1", true), ("g2", false), ("", false)] {
        let mut g = OffsetFetchRequestGroup::default();
        g.group_id = GroupId(s(group));
        g.topics = topics.then(|| {
            let mut t = OffsetFetchRequestTopics::default();
            t.name = TopicName(s("alerts"));
            t.partition_indexes = vec![0, 1];
            vec![t]
        });
        if !topics {
            g.topics = None;
        }
        req.groups.push(g);
    }
    req.require_stable = true;
    let response = c.offset_fetch(req, 8).await;
    assert_encodes(&response, 8);
    assert_eq!(response.groups.len(), 3);
    let g1 = &response.groups[0];
    assert_eq!(g1.error_code, NONE);
    let offsets: Vec<(i32, i64)> = g1.topics[0]
        .partitions
        .iter()
        .map(|p| (p.partition_index, p.committed_offset))
        .collect();
    assert_eq!(offsets, vec![(0, 10), (1, -1)]);
    assert_eq!(
        response.groups[1].topics[0].partitions[0].committed_offset,
        20
    );
    assert_eq!(
        response.groups[2].error_code,
        code(ResponseError::InvalidGroupId)
    );
}

#[tokio::test(start_paused = true)]
async fn offset_fetch_errors_go_top_level_from_v2_and_per_partition_in_v1() {
    let (c, _) = setup(config());
    let mut req = OffsetFetchRequest::default();
    let mut t = kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic::default();
    t.name = TopicName(s("alerts"));
    t.partition_indexes = vec![0];
    req.topics = Some(vec![t]);
    let v1 = c.offset_fetch(req.clone(), 1).await;
    assert_encodes(&v1, 1);
    assert_eq!(
        v1.topics[0].partitions[0].error_code,
        code(ResponseError::InvalidGroupId)
    );
    let v3 = c.offset_fetch(req, 3).await;
    assert_encodes(&v3, 3);
    assert_eq!(v3.error_code, code(ResponseError::InvalidGroupId));
    assert!(v3.topics.is_empty());
}

fn delete_request(group: &str, partitions: &[(&str, i32)]) -> OffsetDeleteRequest {
    let mut req = OffsetDeleteRequest::default();
    req.group_id = GroupId(s(group));
    for (topic, partition) in partitions {
        let mut p = OffsetDeleteRequestPartition::default();
        p.partition_index = *partition;
        match req.topics.iter_mut().find(|t| t.name.as_str() == *topic) {
            Some(t) => t.partitions.push(p),
            None => {
                let mut t = OffsetDeleteRequestTopic::default();
                t.name = TopicName(s(topic));
                t.partitions.push(p);
                req.topics.push(t);
            }
        }
    }
    req
}

fn delete_codes(
    response: &kafka_protocol::messages::OffsetDeleteResponse,
) -> Vec<(String, i32, i16)> {
    response
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| (t.name.as_str().to_owned(), p.partition_index, p.error_code))
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn offset_delete_removes_offsets_of_groups_without_members() {
    let (c, backend) = setup(config());
    commit(&c, "g", "", -1, &[("alerts", 0, 1), ("alerts", 1, 1)]).await;
    let response = c
        .offset_delete(delete_request("g", &[("alerts", 0), ("nope", 0)]), 0)
        .await;
    assert_encodes(&response, 0);
    assert_eq!(response.error_code, NONE);
    assert_eq!(
        delete_codes(&response),
        vec![
            ("alerts".to_owned(), 0, NONE),
            (
                "nope".to_owned(),
                0,
                code(ResponseError::UnknownTopicOrPartition)
            )
        ]
    );
    assert!(backend.offset("g", "alerts", 0).is_none());
    assert!(backend.offset("g", "alerts", 1).is_some());

    let unknown = c
        .offset_delete(delete_request("never", &[("alerts", 0)]), 0)
        .await;
    assert_eq!(unknown.error_code, code(ResponseError::GroupIdNotFound));
}

#[tokio::test(start_paused = true)]
async fn offset_delete_spares_topics_an_active_consumer_group_subscribes_to() {
    let (c, backend) = setup(config());
    let subscription = encode_subscription(&["alerts"], &[0, 0, 0, 0]);
    let joined = join_new(&c, "g", "a", &[("range", &subscription)]).await;
    let member = joined.member_id.as_str().to_owned();
    let synced = sync(&c, sync_request("g", &member, 1, &[]), 5).await;
    assert_eq!(synced.error_code, NONE);
    commit(
        &c,
        "g",
        &member,
        1,
        &[("alerts", 0, 5), ("ztf-buffer", 0, 5)],
    )
    .await;
    let response = c
        .offset_delete(delete_request("g", &[("alerts", 0), ("ztf-buffer", 0)]), 0)
        .await;
    assert_eq!(response.error_code, NONE);
    assert_eq!(
        delete_codes(&response),
        vec![
            (
                "alerts".to_owned(),
                0,
                code(ResponseError::GroupSubscribedToTopic)
            ),
            ("ztf-buffer".to_owned(), 0, NONE)
        ]
    );
    assert!(backend.offset("g", "alerts", 0).is_some());
    assert!(backend.offset("g", "ztf-buffer", 0).is_none());
}

#[tokio::test(start_paused = true)]
async fn offset_delete_in_active_groups_with_unreadable_or_foreign_metadata_is_refused() {
    let (c, backend) = setup(config());
    // Garbage consumer metadata: every topic counts as subscribed.
    let joined = join_new(&c, "garbled", "a", &[("range", b"\xff\x00garbage")]).await;
    let member = joined.member_id.as_str().to_owned();
    sync(&c, sync_request("garbled", &member, 1, &[]), 5).await;
    commit(&c, "garbled", &member, 1, &[("ztf-buffer", 0, 5)]).await;
    let response = c
        .offset_delete(delete_request("garbled", &[("ztf-buffer", 0)]), 0)
        .await;
    assert_eq!(
        delete_codes(&response)[0].2,
        code(ResponseError::GroupSubscribedToTopic)
    );
    assert!(backend.offset("garbled", "ztf-buffer", 0).is_some());

    // Another protocol type: the coordinator cannot tell, the group must be empty.
    let mut req = join_request("connect", "", RANGE);
    req.protocol_type = s("connect");
    let first = join(&c, req.clone(), 5, "w").await;
    req.member_id = first.member_id.clone();
    assert_eq!(join(&c, req, 5, "w").await.error_code, NONE);
    let refused = c
        .offset_delete(delete_request("connect", &[("alerts", 0)]), 0)
        .await;
    assert_eq!(refused.error_code, code(ResponseError::NonEmptyGroup));
}

#[tokio::test(start_paused = true)]
async fn a_failing_offset_store_fails_offset_delete() {
    let (c, backend) = setup(config());
    commit(&c, "g", "", -1, &[("alerts", 0, 1)]).await;
    backend.set_failing(true);
    let response = c
        .offset_delete(delete_request("g", &[("alerts", 0)]), 0)
        .await;
    assert_eq!(
        delete_codes(&response)[0].2,
        code(ResponseError::KafkaStorageError)
    );
    assert!(backend.offset("g", "alerts", 0).is_some());
}

#[tokio::test(start_paused = true)]
async fn offsets_of_member_less_groups_expire_after_the_retention_but_active_groups_keep_theirs() {
    let (c, backend) = setup(GroupConfig {
        offsets_retention_ms: Some(3_600_000),
        ..config()
    });
    commit(&c, "idle", "", -1, &[("alerts", 0, 1)]).await;
    let (leader, follower, generation) = stable_pair(&c, "busy").await;
    commit(&c, "busy", &leader, generation, &[("alerts", 0, 1)]).await;
    let heartbeats = {
        let c = Arc::clone(&c);
        tokio::spawn(async move {
            for _ in 0..2_000 {
                tokio::time::sleep(Duration::from_secs(3)).await;
                assert_eq!(heartbeat(&c, "busy", &leader, generation).await, NONE);
                assert_eq!(heartbeat(&c, "busy", &follower, generation).await, NONE);
            }
        })
    };

    tokio::time::sleep(Duration::from_secs(1800)).await;
    assert_eq!(c.run_maintenance().await.offsets_expired, 0);
    // A fresh commit in the meantime restarts that partition's clock.
    commit(&c, "idle", "", -1, &[("alerts", 1, 1)]).await;
    tokio::time::sleep(Duration::from_secs(1801)).await;
    let report = c.run_maintenance().await;
    assert_eq!(report.offsets_expired, 1);
    assert!(backend.offset("idle", "alerts", 0).is_none());
    assert!(backend.offset("idle", "alerts", 1).is_some());
    // The active group's offsets are in use: they never expire.
    assert!(backend.offset("busy", "alerts", 0).is_some());
    assert!(
        !heartbeats.is_finished(),
        "heartbeats failed: the busy group lost a member"
    );
    heartbeats.abort();
}

#[tokio::test(start_paused = true)]
async fn committing_keeps_a_members_session_alive() {
    let (c, _) = setup(config());
    let (leader, follower, generation) = stable_pair(&c, "g").await;
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_secs(4)).await;
        assert_eq!(heartbeat(&c, "g", &leader, generation).await, NONE);
        assert_eq!(
            commit(&c, "g", &follower, generation, &[("alerts", 0, 1)]).await[0].2,
            NONE
        );
    }
}
