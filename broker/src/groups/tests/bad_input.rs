//! Garbage and hostile input: every path answers with an error code, none panics.

use kafka_protocol::messages::*;
use kafka_protocol::ResponseError;
use proptest::prelude::*;
use std::sync::Arc;

use super::support::*;
use crate::groups::{GroupConfig, GroupCoordinator};

const INVALID_GROUP: ResponseError = ResponseError::InvalidGroupId;

#[tokio::test(start_paused = true)]
async fn empty_and_oversized_group_ids_are_invalid_everywhere() {
    let (c, backend) = setup(GroupConfig {
        max_group_id_bytes: 16,
        ..config()
    });
    for group in ["", "a-group-id-longer-than-sixteen-bytes"] {
        assert_eq!(
            join(&c, join_request(group, "", RANGE), 5, "a")
                .await
                .error_code,
            code(INVALID_GROUP)
        );
        assert_eq!(
            sync(&c, sync_request(group, "m", 1, &[]), 5)
                .await
                .error_code,
            code(INVALID_GROUP)
        );
        assert_eq!(heartbeat(&c, group, "m", 1).await, code(INVALID_GROUP));
        assert_eq!(
            leave(&c, group, &["m"], 5).await.error_code,
            code(INVALID_GROUP)
        );
        assert_eq!(
            leave(&c, group, &["m"], 1).await.error_code,
            code(INVALID_GROUP)
        );
        let committed = commit(&c, group, "", -1, &[("alerts", 0, 1)]).await;
        assert_eq!(committed[0].2, code(INVALID_GROUP));
        assert_eq!(
            fetch(&c, group, Some(&[("alerts", &[0])])).await.0,
            code(INVALID_GROUP)
        );
        let mut delete_offsets = OffsetDeleteRequest::default();
        delete_offsets.group_id = GroupId(s(group));
        assert_eq!(
            c.offset_delete(delete_offsets, 0).await.error_code,
            code(INVALID_GROUP)
        );
        let mut delete = DeleteGroupsRequest::default();
        delete.groups_names = vec![GroupId(s(group))];
        assert_eq!(
            c.delete_groups(delete, 1).await.results[0].error_code,
            code(INVALID_GROUP)
        );
    }
    assert!(backend.groups_with_offsets_for_test().is_empty());
    assert_eq!(c.registry.len(), 0);
}

#[tokio::test(start_paused = true)]
async fn session_timeouts_outside_the_configured_range_are_refused() {
    let (c, _) = setup(config());
    for timeout in [i32::MIN, -1, 0, 5_999, 1_800_001, i32::MAX] {
        let mut req = join_request("g", "", RANGE);
        req.session_timeout_ms = timeout;
        let response = join(&c, req, 5, "a").await;
        assert_eq!(
            response.error_code,
            code(ResponseError::InvalidSessionTimeout),
            "timeout {timeout}"
        );
        assert_eq!(response.generation_id, -1);
    }
    assert_eq!(c.registry.len(), 0, "refused joins create no group");
    for timeout in [6_000, 1_800_000] {
        let mut req = join_request(&format!("g{timeout}"), "", RANGE);
        req.session_timeout_ms = timeout;
        assert_eq!(
            join(&c, req, 3, "a").await.error_code,
            0,
            "timeout {timeout}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn absurd_rebalance_timeouts_fall_back_to_the_session_timeout() {
    let (c, _) = setup(config());
    for timeout in [i32::MIN, -1, 0] {
        let mut req = join_request(&format!("g{timeout}"), "", RANGE);
        req.rebalance_timeout_ms = timeout;
        assert_eq!(join(&c, req, 3, "a").await.error_code, 0);
    }
}

#[tokio::test(start_paused = true)]
async fn empty_protocol_lists_types_and_too_many_protocols_are_inconsistent() {
    let (c, _) = setup(GroupConfig {
        max_protocols_per_member: 3,
        ..config()
    });
    let inconsistent = code(ResponseError::InconsistentGroupProtocol);
    assert_eq!(
        join(&c, join_request("g", "", &[]), 5, "a")
            .await
            .error_code,
        inconsistent
    );
    let mut no_type = join_request("g", "", RANGE);
    no_type.protocol_type = s("");
    assert_eq!(join(&c, no_type, 5, "a").await.error_code, inconsistent);
    let many: Vec<(&str, &[u8])> = vec![("a", b""), ("b", b""), ("c", b""), ("d", b"")];
    assert_eq!(
        join(&c, join_request("g", "", &many), 5, "a")
            .await
            .error_code,
        inconsistent
    );
}

#[tokio::test(start_paused = true)]
async fn unknown_member_ids_are_refused() {
    let (c, _) = setup(config());
    let unknown = code(ResponseError::UnknownMemberId);
    // Unknown group with a member id: no group is created.
    let response = join(&c, join_request("g", "made-up", RANGE), 5, "a").await;
    assert_eq!(response.error_code, unknown);
    assert_eq!(response.member_id.as_str(), "made-up");
    assert_eq!(c.registry.len(), 0);
    // Existing group, unknown member.
    stable_pair(&c, "g").await;
    assert_eq!(
        join(&c, join_request("g", "made-up", RANGE), 5, "a")
            .await
            .error_code,
        unknown
    );
    assert_eq!(heartbeat(&c, "g", "made-up", 2).await, unknown);
    assert_eq!(heartbeat(&c, "g", "", 2).await, unknown);
    assert_eq!(heartbeat(&c, "nope", "made-up", 2).await, unknown);
}

#[tokio::test(start_paused = true)]
async fn groups_and_the_group_table_are_bounded() {
    let (c, _) = setup(GroupConfig {
        max_group_size: 2,
        max_groups: 2,
        ..config()
    });
    let full = code(ResponseError::GroupMaxSizeReached);
    // Pending member ids count: two handed out, the third is refused.
    assert_eq!(
        join(&c, join_request("g", "", RANGE), 5, "a")
            .await
            .error_code,
        code(ResponseError::MemberIdRequired)
    );
    assert_eq!(
        join(&c, join_request("g", "", RANGE), 5, "b")
            .await
            .error_code,
        code(ResponseError::MemberIdRequired)
    );
    assert_eq!(
        join(&c, join_request("g", "", RANGE), 5, "c")
            .await
            .error_code,
        full
    );
    assert_eq!(
        join(&c, join_request("g", "", RANGE), 3, "c")
            .await
            .error_code,
        full
    );
    assert_eq!(
        join(&c, join_request("h", "", RANGE), 3, "x")
            .await
            .error_code,
        0
    );
    assert_eq!(
        join(&c, join_request("i", "", RANGE), 3, "y")
            .await
            .error_code,
        full
    );
}

#[tokio::test(start_paused = true)]
async fn sync_and_commit_with_wrong_or_negative_generations_are_refused() {
    let (c, _) = setup(config());
    let (leader, _, generation) = stable_pair(&c, "g").await;
    for bad in [i32::MIN, -1, 0, generation + 1, i32::MAX] {
        let r = sync(&c, sync_request("g", &leader, bad, &[]), 5).await;
        assert_eq!(
            r.error_code,
            code(ResponseError::IllegalGeneration),
            "generation {bad}"
        );
        assert_eq!(
            heartbeat(&c, "g", &leader, bad).await,
            code(ResponseError::IllegalGeneration)
        );
        assert_eq!(
            commit(&c, "g", &leader, bad, &[("alerts", 0, 1)]).await[0].2,
            code(ResponseError::IllegalGeneration)
        );
    }
}

#[derive(Debug, Clone)]
enum Op {
    Join {
        group: usize,
        member: usize,
        session: i32,
        rebalance: i32,
        protocols: Vec<(String, Vec<u8>)>,
        version: i16,
        instance: Option<String>,
    },
    Sync {
        group: usize,
        member: usize,
        generation: i32,
        version: i16,
        assign: Vec<(usize, Vec<u8>)>,
    },
    Heartbeat {
        group: usize,
        member: usize,
        generation: i32,
        version: i16,
    },
    Leave {
        group: usize,
        members: Vec<usize>,
        version: i16,
    },
    Commit {
        group: usize,
        member: usize,
        generation: i32,
        partition: i32,
        version: i16,
    },
    Fetch {
        group: usize,
        version: i16,
    },
    Describe {
        group: usize,
        version: i16,
    },
    Delete {
        group: usize,
    },
    Sleep {
        ms: u64,
    },
}

const GROUPS: [&str; 3] = ["", "g", "h"];

fn member_strategy() -> impl Strategy<Value = usize> {
    0usize..6
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let protocols = proptest::collection::vec(
        (
            prop_oneof![
                Just("range".to_owned()),
                Just("roundrobin".to_owned()),
                "[a-z]{0,3}"
            ],
            proptest::collection::vec(any::<u8>(), 0..8),
        ),
        0..3,
    );
    prop_oneof![
        (
            0usize..3,
            member_strategy(),
            prop_oneof![Just(10_000), any::<i32>()],
            any::<i32>(),
            protocols,
            0i16..=9,
            proptest::option::of("[a-z]{1,2}")
        )
            .prop_map(
                |(group, member, session, rebalance, protocols, version, instance)| Op::Join {
                    group,
                    member,
                    session,
                    rebalance,
                    protocols,
                    version,
                    instance
                }
            ),
        (
            0usize..3,
            member_strategy(),
            -2i32..4,
            0i16..=5,
            proptest::collection::vec(
                (
                    member_strategy(),
                    proptest::collection::vec(any::<u8>(), 0..4)
                ),
                0..3
            )
        )
            .prop_map(|(group, member, generation, version, assign)| Op::Sync {
                group,
                member,
                generation,
                version,
                assign
            }),
        (0usize..3, member_strategy(), -2i32..4, 0i16..=4).prop_map(
            |(group, member, generation, version)| Op::Heartbeat {
                group,
                member,
                generation,
                version
            }
        ),
        (
            0usize..3,
            proptest::collection::vec(member_strategy(), 0..3),
            0i16..=5
        )
            .prop_map(|(group, members, version)| Op::Leave {
                group,
                members,
                version
            }),
        (0usize..3, member_strategy(), -2i32..4, -2i32..6, 2i16..=9).prop_map(
            |(group, member, generation, partition, version)| Op::Commit {
                group,
                member,
                generation,
                partition,
                version
            }
        ),
        (0usize..3, 1i16..=9).prop_map(|(group, version)| Op::Fetch { group, version }),
        (0usize..3, 0i16..=6).prop_map(|(group, version)| Op::Describe { group, version }),
        (0usize..3).prop_map(|group| Op::Delete { group }),
        (0u64..40_000).prop_map(|ms| Op::Sleep { ms }),
    ]
}

/// Runs one operation; parked requests run as tasks so the sequence goes on.
async fn run(c: &Arc<GroupCoordinator>, known: &mut Vec<String>, op: Op) {
    let member_id = |known: &Vec<String>, i: usize| {
        known.get(i).cloned().unwrap_or_else(|| {
            if i == 0 {
                String::new()
            } else {
                format!("junk-{i}")
            }
        })
    };
    match op {
        Op::Join {
            group,
            member,
            session,
            rebalance,
            protocols,
            version,
            instance,
        } => {
            let protocols: Vec<(&str, &[u8])> = protocols
                .iter()
                .map(|(n, m)| (n.as_str(), m.as_slice()))
                .collect();
            let mut req = join_request(GROUPS[group], &member_id(known, member), &protocols);
            req.session_timeout_ms = session;
            req.rebalance_timeout_ms = rebalance;
            if version >= 5 {
                req.group_instance_id = instance.map(|i| s(&i));
            }
            let c = Arc::clone(c);
            let response = tokio::spawn(async move { join(&c, req, version, "fuzz").await });
            tokio::task::yield_now().await;
            if response.is_finished() {
                let response = response.await.unwrap();
                if !response.member_id.is_empty()
                    && !known.contains(&response.member_id.as_str().to_owned())
                {
                    known.push(response.member_id.as_str().to_owned());
                }
            }
        }
        Op::Sync {
            group,
            member,
            generation,
            version,
            assign,
        } => {
            let assign: Vec<(String, Vec<u8>)> = assign
                .into_iter()
                .map(|(m, a)| (member_id(known, m), a))
                .collect();
            let assign: Vec<(&str, &[u8])> = assign
                .iter()
                .map(|(m, a)| (m.as_str(), a.as_slice()))
                .collect();
            let req = sync_request(
                GROUPS[group],
                &member_id(known, member),
                generation,
                &assign,
            );
            let c = Arc::clone(c);
            tokio::spawn(async move { sync(&c, req, version).await });
            tokio::task::yield_now().await;
        }
        Op::Heartbeat {
            group,
            member,
            generation,
            version,
        } => {
            let mut req = HeartbeatRequest::default();
            req.group_id = GroupId(s(GROUPS[group]));
            req.member_id = s(&member_id(known, member));
            req.generation_id = generation;
            assert_encodes(&c.heartbeat(req, version).await, version);
        }
        Op::Leave {
            group,
            members,
            version,
        } => {
            let ids: Vec<String> = members.into_iter().map(|m| member_id(known, m)).collect();
            let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
            leave(c, GROUPS[group], &ids, version).await;
        }
        Op::Commit {
            group,
            member,
            generation,
            partition,
            version,
        } => {
            let mut req = OffsetCommitRequest::default();
            req.group_id = GroupId(s(GROUPS[group]));
            req.member_id = s(&member_id(known, member));
            req.generation_id_or_member_epoch = generation;
            let mut t = offset_commit_request::OffsetCommitRequestTopic::default();
            t.name = TopicName(s("alerts"));
            let mut p = offset_commit_request::OffsetCommitRequestPartition::default();
            p.partition_index = partition;
            p.committed_offset = 1;
            t.partitions.push(p);
            req.topics.push(t);
            let response = c.offset_commit(req, version).await;
            assert_encodes(&response, version);
            assert_eq!(response.topics[0].partitions.len(), 1);
        }
        Op::Fetch { group, version } => {
            let mut req = OffsetFetchRequest::default();
            if version >= 8 {
                let mut g = offset_fetch_request::OffsetFetchRequestGroup::default();
                g.group_id = GroupId(s(GROUPS[group]));
                g.topics = None;
                req.groups.push(g);
            } else {
                req.group_id = GroupId(s(GROUPS[group]));
                req.topics = if version >= 2 { None } else { Some(Vec::new()) };
            }
            assert_encodes(&c.offset_fetch(req, version).await, version);
        }
        Op::Describe { group, version } => {
            let mut req = DescribeGroupsRequest::default();
            req.groups = vec![GroupId(s(GROUPS[group]))];
            assert_encodes(&c.describe_groups(req, version).await, version);
        }
        Op::Delete { group } => {
            let mut req = DeleteGroupsRequest::default();
            req.groups_names = vec![GroupId(s(GROUPS[group]))];
            assert_encodes(&c.delete_groups(req, 2).await, 2);
        }
        Op::Sleep { ms } => tokio::time::sleep(std::time::Duration::from_millis(ms)).await,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    /// Random request sequences never panic, every answer encodes at its
    /// version, and afterwards the coordinator still serves a normal group.
    #[test]
    fn random_request_sequences_never_break_the_coordinator(ops in proptest::collection::vec(op_strategy(), 1..40)) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build().unwrap();
        runtime.block_on(async move {
            let (c, _) = setup(config());
            let mut known = Vec::new();
            for op in ops {
                run(&c, &mut known, op).await;
            }
            let fresh = join_new(&c, "after-fuzz", "z", RANGE).await;
            assert_eq!(fresh.error_code, 0);
            assert_eq!(fresh.generation_id, 1);
        });
    }
}
