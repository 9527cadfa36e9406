//! JoinGroup / SyncGroup / Heartbeat / LeaveGroup: the rebalance protocol.

use kafka_protocol::ResponseError;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

use super::support::*;
use crate::groups::GroupConfig;

#[tokio::test(start_paused = true)]
async fn concurrent_joins_share_a_generation_and_the_leader_gets_every_member() {
    // Kafka's default initial delay: members starting together form one generation.
    let (c, _) = setup(GroupConfig::default());
    let start = Instant::now();
    let (a, b) = tokio::join!(
        join(&c, join_request("g", "", &[("range", b"meta-a")]), 3, "a"),
        join(&c, join_request("g", "", &[("range", b"meta-b")]), 3, "b"),
    );
    assert!(
        start.elapsed() >= Duration::from_millis(3_000),
        "answered before the initial delay"
    );
    assert_eq!((a.error_code, b.error_code), (0, 0));
    assert_eq!(a.generation_id, 1);
    assert_eq!(b.generation_id, 1);
    assert_eq!(a.leader, b.leader);
    assert_eq!(a.protocol_name.as_ref().map(|n| n.as_str()), Some("range"));
    let (leader, follower) = if a.leader == a.member_id {
        (a, b)
    } else {
        (b, a)
    };
    assert!(follower.members.is_empty());
    let mut listed: Vec<(String, Vec<u8>)> = leader
        .members
        .iter()
        .map(|m| (m.member_id.as_str().to_owned(), m.metadata.to_vec()))
        .collect();
    listed.sort();
    let mut expected = vec![
        (
            leader.member_id.as_str().to_owned(),
            if leader.member_id.starts_with("a-") {
                b"meta-a".to_vec()
            } else {
                b"meta-b".to_vec()
            },
        ),
        (
            follower.member_id.as_str().to_owned(),
            if follower.member_id.starts_with("a-") {
                b"meta-a".to_vec()
            } else {
                b"meta-b".to_vec()
            },
        ),
    ];
    expected.sort();
    assert_eq!(listed, expected);
}

#[tokio::test(start_paused = true)]
async fn a_member_arriving_during_the_initial_delay_extends_it() {
    let (c, _) = setup(GroupConfig::default());
    let start = Instant::now();
    let first = {
        let c = Arc::clone(&c);
        tokio::spawn(async move { join(&c, join_request("g", "", RANGE), 3, "a").await })
    };
    tokio::time::sleep(Duration::from_millis(2_000)).await;
    let second = join(&c, join_request("g", "", RANGE), 3, "b").await;
    let first = first.await.unwrap();
    // 2 s in, the second member restarted the 3 s delay.
    assert_eq!(start.elapsed(), Duration::from_millis(5_000));
    assert_eq!(first.generation_id, 1);
    assert_eq!(second.generation_id, 1);
    assert_eq!(first.leader, second.leader);
}

#[tokio::test(start_paused = true)]
async fn member_id_required_then_rejoin_at_v4_and_later() {
    let (c, _) = setup(config());
    for version in [4, 5, 7, 9] {
        let group = format!("g{version}");
        let first = join(&c, join_request(&group, "", RANGE), version, "client-1").await;
        assert_eq!(first.error_code, code(ResponseError::MemberIdRequired));
        assert_eq!(first.generation_id, -1);
        let id = first.member_id.as_str().to_owned();
        assert!(
            id.starts_with("client-1-") && id.len() > "client-1-".len() + 30,
            "{id}"
        );
        let second = join(&c, join_request(&group, &id, RANGE), version, "client-1").await;
        assert_eq!(second.error_code, 0);
        assert_eq!(second.member_id.as_str(), id);
        assert_eq!(second.generation_id, 1);
        assert_eq!(second.leader.as_str(), id);
        assert_eq!(second.members.len(), 1);
        let protocol_type = second.protocol_type.as_ref().map(|t| t.as_str().to_owned());
        if version >= 7 {
            assert_eq!(protocol_type.as_deref(), Some("consumer"));
        } else {
            assert_eq!(protocol_type, None);
        }
    }
    // Before v4 a new member is admitted directly.
    let direct = join(&c, join_request("old", "", RANGE), 3, "legacy").await;
    assert_eq!(direct.error_code, 0);
    assert!(direct.member_id.starts_with("legacy-"));
}

#[tokio::test(start_paused = true)]
async fn member_ids_are_unique() {
    let (c, _) = setup(config());
    let mut seen = std::collections::HashSet::new();
    for _ in 0..50 {
        let r = join(&c, join_request("g", "", RANGE), 5, "same-client").await;
        assert!(seen.insert(r.member_id.as_str().to_owned()));
    }
}

#[tokio::test(start_paused = true)]
async fn sync_hands_each_member_its_assignment_even_when_followers_come_first() {
    let (c, _) = setup(GroupConfig::default());
    let (a, b) = tokio::join!(
        join(&c, join_request("g", "", RANGE), 3, "a"),
        join(&c, join_request("g", "", RANGE), 3, "b"),
    );
    let (leader, follower) = if a.leader == a.member_id {
        (a, b)
    } else {
        (b, a)
    };
    let leader_id = leader.member_id.as_str().to_owned();
    let follower_id = follower.member_id.as_str().to_owned();
    let follower_sync = {
        let c = Arc::clone(&c);
        let id = follower_id.clone();
        tokio::spawn(async move { sync(&c, sync_request("g", &id, 1, &[]), 5).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        !follower_sync.is_finished(),
        "follower must wait for the leader"
    );
    let assignments: Vec<(&str, &[u8])> = vec![
        (&follower_id, b"partitions-of-b"),
        (&leader_id, b"partitions-of-a"),
    ];
    let leader_sync = sync(&c, sync_request("g", &leader_id, 1, &assignments), 5).await;
    let follower_sync = follower_sync.await.unwrap();
    assert_eq!(leader_sync.error_code, 0);
    assert_eq!(follower_sync.error_code, 0);
    assert_eq!(leader_sync.assignment.as_ref(), b"partitions-of-a");
    assert_eq!(follower_sync.assignment.as_ref(), b"partitions-of-b");
    assert_eq!(
        follower_sync.protocol_name.as_ref().map(|p| p.as_str()),
        Some("range")
    );
    assert_eq!(
        follower_sync.protocol_type.as_ref().map(|p| p.as_str()),
        Some("consumer")
    );
    // A late SyncGroup in Stable gets the stored assignment at once.
    let again = sync(&c, sync_request("g", &follower_id, 1, &[]), 3).await;
    assert_eq!(again.assignment.as_ref(), b"partitions-of-b");
    assert_eq!(heartbeat(&c, "g", &follower_id, 1).await, 0);
}

#[tokio::test(start_paused = true)]
async fn a_member_the_leader_left_out_gets_an_empty_assignment() {
    let (c, _) = setup(config());
    let (leader, follower, generation) = stable_pair(&c, "g").await;
    // Rebalance again; this time the leader assigns only itself.
    let rejoin_follower = {
        let c = Arc::clone(&c);
        let id = follower.clone();
        tokio::spawn(async move {
            join(&c, join_request("g", &id, &[("range", b"changed")]), 5, "b").await
        })
    };
    wait_for_heartbeat(
        &c,
        "g",
        &leader,
        generation,
        ResponseError::RebalanceInProgress,
    )
    .await;
    let l = join(&c, join_request("g", &leader, RANGE), 5, "a").await;
    let f = rejoin_follower.await.unwrap();
    assert_eq!(l.generation_id, generation + 1);
    assert_eq!(f.generation_id, generation + 1);
    let changed = l
        .members
        .iter()
        .find(|m| m.member_id.as_str() == follower)
        .unwrap();
    assert_eq!(changed.metadata.as_ref(), b"changed");
    let own: Vec<(&str, &[u8])> = vec![(leader.as_str(), b"all")];
    let (sl, sf) = tokio::join!(
        sync(&c, sync_request("g", &leader, generation + 1, &own), 5),
        sync(&c, sync_request("g", &follower, generation + 1, &[]), 5)
    );
    assert_eq!((sl.error_code, sf.error_code), (0, 0));
    assert_eq!(sl.assignment.as_ref(), b"all");
    assert!(sf.assignment.is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_third_member_makes_heartbeats_ask_for_a_rejoin_and_everyone_moves_to_the_next_generation(
) {
    let (c, _) = setup(config());
    let (leader, follower, generation) = stable_pair(&c, "g").await;
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
        heartbeat(&c, "g", &follower, generation).await,
        code(ResponseError::RebalanceInProgress)
    );
    // A SyncGroup of the old generation is told the same.
    let stale = sync(&c, sync_request("g", &follower, generation, &[]), 5).await;
    assert_eq!(stale.error_code, code(ResponseError::RebalanceInProgress));

    let (l, f) = tokio::join!(
        join(&c, join_request("g", &leader, RANGE), 5, "a"),
        join(&c, join_request("g", &follower, RANGE), 5, "b"),
    );
    let t = third.await.unwrap();
    for r in [&l, &f, &t] {
        assert_eq!(r.error_code, 0);
        assert_eq!(r.generation_id, generation + 1);
        assert_eq!(r.leader.as_str(), leader);
    }
    assert_eq!(l.members.len(), 3);
    // The old generation is now illegal.
    assert_eq!(
        heartbeat(&c, "g", &follower, generation).await,
        code(ResponseError::IllegalGeneration)
    );
    // Heartbeats of the new generation are fine while awaiting the assignment.
    assert_eq!(heartbeat(&c, "g", &follower, generation + 1).await, 0);
}

#[tokio::test(start_paused = true)]
async fn follower_rejoin_with_unchanged_metadata_does_not_rebalance_but_leader_rejoin_does() {
    let (c, _) = setup(config());
    let (leader, follower, generation) = stable_pair(&c, "g").await;
    let again = join(&c, join_request("g", &follower, RANGE), 5, "b").await;
    assert_eq!(again.error_code, 0);
    assert_eq!(again.generation_id, generation);
    assert!(again.members.is_empty());
    assert_eq!(heartbeat(&c, "g", &leader, generation).await, 0);

    let leader_rejoin = {
        let c = Arc::clone(&c);
        let id = leader.clone();
        tokio::spawn(async move { join(&c, join_request("g", &id, RANGE), 5, "a").await })
    };
    wait_for_heartbeat(
        &c,
        "g",
        &follower,
        generation,
        ResponseError::RebalanceInProgress,
    )
    .await;
    let f = join(&c, join_request("g", &follower, RANGE), 5, "b").await;
    let l = leader_rejoin.await.unwrap();
    assert_eq!(f.generation_id, generation + 1);
    assert_eq!(l.generation_id, generation + 1);
}

#[tokio::test(start_paused = true)]
async fn leave_triggers_a_rebalance_for_the_rest() {
    let (c, _) = setup(config());
    let (leader, follower, generation) = stable_pair(&c, "g").await;
    let left = leave(&c, "g", &[&follower], 4).await;
    assert_eq!(left.error_code, 0);
    assert_eq!(left.members.len(), 1);
    assert_eq!(left.members[0].error_code, 0);
    assert_eq!(
        heartbeat(&c, "g", &leader, generation).await,
        code(ResponseError::RebalanceInProgress)
    );
    assert_eq!(
        heartbeat(&c, "g", &follower, generation).await,
        code(ResponseError::UnknownMemberId)
    );
    let l = join(&c, join_request("g", &leader, RANGE), 5, "a").await;
    assert_eq!(l.generation_id, generation + 1);
    assert_eq!(l.members.len(), 1);
    assert_eq!(l.members[0].member_id.as_str(), leader);
}

#[tokio::test(start_paused = true)]
async fn the_leader_leaving_hands_leadership_to_a_remaining_member() {
    let (c, _) = setup(config());
    let (leader, follower, generation) = stable_pair(&c, "g").await;
    assert_eq!(leave(&c, "g", &[&leader], 1).await.error_code, 0);
    let f = join(&c, join_request("g", &follower, RANGE), 5, "b").await;
    assert_eq!(f.generation_id, generation + 1);
    assert_eq!(f.leader.as_str(), follower);
    assert_eq!(f.members.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn last_member_leaving_empties_the_group() {
    let (c, _) = setup(config());
    let r = join_new(&c, "g", "a", RANGE).await;
    let id = r.member_id.as_str().to_owned();
    assert_eq!(leave(&c, "g", &[&id], 0).await.error_code, 0);
    let described = c
        .describe_groups(
            {
                let mut req = kafka_protocol::messages::DescribeGroupsRequest::default();
                req.groups = vec![kafka_protocol::messages::GroupId(s("g"))];
                req
            },
            5,
        )
        .await;
    assert_eq!(described.groups[0].group_state.as_str(), "Empty");
    assert!(described.groups[0].members.is_empty());
}

#[tokio::test(start_paused = true)]
async fn leave_reports_unknown_members_per_member_or_top_level_by_version() {
    let (c, _) = setup(config());
    let (leader, _follower, _) = stable_pair(&c, "g").await;
    let batch = leave(&c, "g", &["nobody", &leader], 3).await;
    assert_eq!(batch.error_code, 0);
    let codes: Vec<(String, i16)> = batch
        .members
        .iter()
        .map(|m| (m.member_id.as_str().to_owned(), m.error_code))
        .collect();
    assert_eq!(
        codes,
        vec![
            ("nobody".to_owned(), code(ResponseError::UnknownMemberId)),
            (leader.clone(), 0)
        ]
    );
    assert_eq!(
        leave(&c, "g", &["nobody"], 2).await.error_code,
        code(ResponseError::UnknownMemberId)
    );
    assert_eq!(
        leave(&c, "no-such-group", &["x"], 0).await.error_code,
        code(ResponseError::UnknownMemberId)
    );
    let unknown_group = leave(&c, "no-such-group", &["x"], 5).await;
    assert_eq!(
        unknown_group.members[0].error_code,
        code(ResponseError::UnknownMemberId)
    );
}

#[tokio::test(start_paused = true)]
async fn leaving_with_a_pending_member_id_forgets_it() {
    let (c, _) = setup(config());
    let first = join(&c, join_request("g", "", RANGE), 5, "a").await;
    let id = first.member_id.as_str().to_owned();
    assert_eq!(leave(&c, "g", &[&id], 3).await.members[0].error_code, 0);
    let rejoin = join(&c, join_request("g", &id, RANGE), 5, "a").await;
    assert_eq!(rejoin.error_code, code(ResponseError::UnknownMemberId));
}

#[tokio::test(start_paused = true)]
async fn protocol_selection_follows_the_members_votes() {
    let config = GroupConfig {
        initial_rebalance_delay_ms: 1_000,
        ..config()
    };
    let (c, _) = setup(config);
    let (a, b, third) = tokio::join!(
        join(
            &c,
            join_request("g", "", &[("range", b"a-range"), ("roundrobin", b"a-rr")]),
            3,
            "a"
        ),
        join(
            &c,
            join_request("g", "", &[("roundrobin", b"b-rr"), ("range", b"b-range")]),
            3,
            "b"
        ),
        join(
            &c,
            join_request(
                "g",
                "",
                &[("cooperative-sticky", b"c-cs"), ("roundrobin", b"c-rr")]
            ),
            3,
            "c"
        ),
    );
    for r in [&a, &b, &third] {
        assert_eq!(r.error_code, 0);
        assert_eq!(
            r.protocol_name.as_ref().map(|p| p.as_str()),
            Some("roundrobin")
        );
        assert_eq!(r.generation_id, 1);
    }
    let leader = [&a, &b, &third]
        .into_iter()
        .find(|r| r.leader == r.member_id)
        .unwrap();
    let mut metadata: Vec<Vec<u8>> = leader.members.iter().map(|m| m.metadata.to_vec()).collect();
    metadata.sort();
    assert_eq!(
        metadata,
        vec![b"a-rr".to_vec(), b"b-rr".to_vec(), b"c-rr".to_vec()]
    );

    // A member supporting none of the group's protocols is refused.
    let d = join(&c, join_request("g", "", &[("range", b"d")]), 3, "d").await;
    assert_eq!(d.error_code, code(ResponseError::InconsistentGroupProtocol));
    // So is another protocol type.
    let mut other_type = join_request("g", "", &[("roundrobin", b"e")]);
    other_type.protocol_type = s("connect");
    let e = join(&c, other_type, 3, "e").await;
    assert_eq!(e.error_code, code(ResponseError::InconsistentGroupProtocol));
}

#[tokio::test(start_paused = true)]
async fn sync_errors_unknown_member_wrong_generation_and_protocol_mismatch() {
    let (c, _) = setup(config());
    let (leader, follower, generation) = stable_pair(&c, "g").await;
    let unknown = sync(&c, sync_request("g", "ghost", generation, &[]), 5).await;
    assert_eq!(unknown.error_code, code(ResponseError::UnknownMemberId));
    let wrong_generation = sync(&c, sync_request("g", &follower, generation + 5, &[]), 5).await;
    assert_eq!(
        wrong_generation.error_code,
        code(ResponseError::IllegalGeneration)
    );
    let mut wrong_protocol = sync_request("g", &leader, generation, &[]);
    wrong_protocol.protocol_name = Some(s("roundrobin"));
    wrong_protocol.protocol_type = Some(s("consumer"));
    assert_eq!(
        sync(&c, wrong_protocol, 5).await.error_code,
        code(ResponseError::InconsistentGroupProtocol)
    );
    let mut wrong_type = sync_request("g", &leader, generation, &[]);
    wrong_type.protocol_type = Some(s("connect"));
    assert_eq!(
        sync(&c, wrong_type, 5).await.error_code,
        code(ResponseError::InconsistentGroupProtocol)
    );
    let no_group = sync(&c, sync_request("nope", &leader, generation, &[]), 5).await;
    assert_eq!(no_group.error_code, code(ResponseError::UnknownMemberId));
}

#[tokio::test(start_paused = true)]
async fn a_member_that_missed_its_join_response_gets_it_again() {
    let (c, _) = setup(config());
    let (leader, _follower, generation) = stable_pair(&c, "g").await;
    // Force CompletingRebalance: a rebalance in which both rejoin.
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
    let (l, f) = tokio::join!(
        join(&c, join_request("g", &leader, RANGE), 5, "a"),
        join(&c, join_request("g", &_follower, RANGE), 5, "b"),
    );
    let _ = third.await.unwrap();
    assert_eq!(l.generation_id, generation + 1);
    // The follower rejoins with the same metadata before anyone synced.
    let again = join(&c, join_request("g", &_follower, RANGE), 5, "b").await;
    assert_eq!(again.error_code, 0);
    assert_eq!(again.generation_id, f.generation_id);
    assert_eq!(again.leader, f.leader);
}

#[tokio::test(start_paused = true)]
async fn static_members_are_accepted_and_a_restarted_instance_replaces_the_old_one() {
    let (c, _) = setup(config());
    let mut req = join_request("g", "", RANGE);
    req.group_instance_id = Some(s("worker-1"));
    // Static members get their id without MEMBER_ID_REQUIRED.
    let first = join(&c, req.clone(), 5, "w").await;
    assert_eq!(first.error_code, 0);
    let old_id = first.member_id.as_str().to_owned();
    assert_eq!(
        first.members[0]
            .group_instance_id
            .as_ref()
            .map(|i| i.as_str()),
        Some("worker-1")
    );

    // The same instance comes back with a new process (empty member id).
    let second = join(&c, req, 5, "w").await;
    assert_eq!(second.error_code, 0);
    assert_ne!(second.member_id.as_str(), old_id);
    assert_eq!(second.members.len(), 1);
    assert_eq!(second.generation_id, first.generation_id + 1);

    // The old incarnation is fenced.
    let mut hb = kafka_protocol::messages::HeartbeatRequest::default();
    hb.group_id = kafka_protocol::messages::GroupId(s("g"));
    hb.member_id = s(&old_id);
    hb.generation_id = second.generation_id;
    hb.group_instance_id = Some(s("worker-1"));
    let response = c.heartbeat(hb, 4).await;
    assert_eq!(response.error_code, code(ResponseError::FencedInstanceId));
}

#[tokio::test(start_paused = true)]
async fn protocol_compatibility_follows_members_changing_and_leaving() {
    let (c, _) = setup(config());
    let inconsistent = code(ResponseError::InconsistentGroupProtocol);
    let a = join_new(&c, "g", "a", &[("range", b"1")]).await;
    let a_id = a.member_id.as_str().to_owned();
    // The only member switches assignor: the group now speaks roundrobin.
    let switched = join(
        &c,
        join_request("g", &a_id, &[("roundrobin", b"2")]),
        5,
        "a",
    )
    .await;
    assert_eq!(switched.error_code, 0);
    assert_eq!(
        switched.protocol_name.as_ref().map(|p| p.as_str()),
        Some("roundrobin")
    );
    assert_eq!(
        join(&c, join_request("g", "", &[("range", b"x")]), 5, "b")
            .await
            .error_code,
        inconsistent
    );
    let b = join(
        &c,
        join_request("g", "", &[("range", b"x"), ("roundrobin", b"y")]),
        5,
        "b",
    )
    .await;
    assert_eq!(b.error_code, code(ResponseError::MemberIdRequired));
    // Once the member left, anything goes again.
    assert_eq!(leave(&c, "g", &[&a_id], 3).await.members[0].error_code, 0);
    assert_eq!(
        leave(&c, "g", &[b.member_id.as_str()], 3).await.members[0].error_code,
        0
    );
    let mut other = join_request("g", "", &[("sticky", b"z")]);
    other.protocol_type = s("connect");
    assert_eq!(join(&c, other, 3, "c").await.error_code, 0);
}
