//! Time-driven behaviour under tokio's paused clock: session expiry, pending
//! member expiry, rebalance and sync timeouts. No real sleeps.

use kafka_protocol::ResponseError;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::{sleep, Instant};

use super::support::*;
use crate::groups::GroupConfig;

#[tokio::test(start_paused = true)]
async fn a_member_that_stops_heartbeating_is_expired_and_the_rest_rebalance() {
    let (c, _) = setup(config());
    let (leader, follower, generation) = stable_pair(&c, "g").await;
    let start = Instant::now();
    // The leader heartbeats every 3 s; the follower (session 10 s) is silent.
    let mut answer = 0;
    for _ in 0..10 {
        sleep(Duration::from_secs(3)).await;
        answer = heartbeat(&c, "g", &leader, generation).await;
        if answer != 0 {
            break;
        }
    }
    assert_eq!(answer, code(ResponseError::RebalanceInProgress));
    let noticed = start.elapsed();
    assert!(
        noticed > Duration::from_secs(9) && noticed <= Duration::from_secs(12),
        "{noticed:?}"
    );
    assert_eq!(
        heartbeat(&c, "g", &follower, generation).await,
        code(ResponseError::UnknownMemberId)
    );
    let l = join(&c, join_request("g", &leader, RANGE), 5, "a").await;
    assert_eq!(l.generation_id, generation + 1);
    assert_eq!(l.members.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn heartbeats_keep_members_alive_indefinitely() {
    let (c, _) = setup(config());
    let (leader, follower, generation) = stable_pair(&c, "g").await;
    for _ in 0..40 {
        sleep(Duration::from_secs(3)).await;
        assert_eq!(heartbeat(&c, "g", &leader, generation).await, 0);
        assert_eq!(heartbeat(&c, "g", &follower, generation).await, 0);
    }
}

#[tokio::test(start_paused = true)]
async fn an_unused_member_id_expires_after_the_session_timeout() {
    let (c, _) = setup(config());
    let first = join(&c, join_request("g", "", RANGE), 5, "a").await;
    assert_eq!(first.error_code, code(ResponseError::MemberIdRequired));
    sleep(Duration::from_secs(11)).await;
    let late = join(
        &c,
        join_request("g", first.member_id.as_str(), RANGE),
        5,
        "a",
    )
    .await;
    assert_eq!(late.error_code, code(ResponseError::UnknownMemberId));
}

#[tokio::test(start_paused = true)]
async fn an_outstanding_member_id_holds_the_join_phase_until_it_expires() {
    let (c, _) = setup(config());
    let a = join_new(&c, "g", "a", RANGE).await;
    let a_id = a.member_id.as_str().to_owned();
    // b gets its member id but never comes back.
    let b = join(&c, join_request("g", "", RANGE), 5, "b").await;
    assert_eq!(b.error_code, code(ResponseError::MemberIdRequired));
    let start = Instant::now();
    // a (the leader) rejoins, which starts a rebalance that waits for b.
    let again = join(&c, join_request("g", &a_id, &[("range", b"new")]), 5, "a").await;
    assert_eq!(again.error_code, 0);
    assert_eq!(again.generation_id, 2);
    assert_eq!(again.members.len(), 1);
    assert_eq!(start.elapsed(), Duration::from_secs(10));
}

#[tokio::test(start_paused = true)]
async fn members_that_do_not_rejoin_are_dropped_at_the_rebalance_timeout() {
    let (c, _) = setup(config());
    let (leader, follower, generation) = stable_pair(&c, "g").await;
    let start = Instant::now();
    let leader_join = {
        let c = Arc::clone(&c);
        let id = leader.clone();
        tokio::spawn(
            async move { join(&c, join_request("g", &id, &[("range", b"v2")]), 5, "a").await },
        )
    };
    // The follower keeps heartbeating (so its session lives) but never rejoins.
    let mut answers = Vec::new();
    while !leader_join.is_finished() && start.elapsed() < Duration::from_secs(60) {
        sleep(Duration::from_secs(3)).await;
        answers.push(heartbeat(&c, "g", &follower, generation).await);
    }
    let l = leader_join.await.unwrap();
    assert_eq!(l.error_code, 0);
    assert_eq!(l.generation_id, generation + 1);
    assert_eq!(l.members.len(), 1);
    // The rebalance timeout of the members is 30 s.
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_secs(30) && waited <= Duration::from_secs(33),
        "{waited:?}"
    );
    assert!(answers.contains(&code(ResponseError::RebalanceInProgress)));
    assert_eq!(
        heartbeat(&c, "g", &follower, generation).await,
        code(ResponseError::UnknownMemberId)
    );
}

#[tokio::test(start_paused = true)]
async fn a_member_waiting_in_join_group_is_not_expired_by_its_session_timeout() {
    let (c, _) = setup(config());
    let (leader, follower, generation) = stable_pair(&c, "g").await;
    // The leader rejoins with the shortest session (6 s); the follower is gone
    // silently, so the join waits ~10 s for its session to expire.
    let mut req = join_request("g", &leader, RANGE);
    req.session_timeout_ms = 6_000;
    let start = Instant::now();
    let l = join(&c, req, 5, "a").await;
    assert!(
        start.elapsed() >= Duration::from_secs(6),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(l.error_code, 0);
    assert_eq!(l.generation_id, generation + 1);
    assert_eq!(l.members.len(), 1);
    assert_eq!(
        heartbeat(&c, "g", &follower, generation).await,
        code(ResponseError::UnknownMemberId)
    );
}

#[tokio::test(start_paused = true)]
async fn a_leader_that_never_syncs_is_removed_and_waiting_followers_are_told_to_rejoin() {
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
    // The leader stays alive (heartbeats are fine in CompletingRebalance) but
    // never sends its SyncGroup.
    let heartbeats = {
        let c = Arc::clone(&c);
        let id = leader_id.clone();
        tokio::spawn(async move {
            let mut answers = Vec::new();
            for _ in 0..20 {
                sleep(Duration::from_secs(3)).await;
                let answer = heartbeat(&c, "g", &id, 1).await;
                answers.push(answer);
                if answer != 0 {
                    break;
                }
            }
            answers
        })
    };
    let start = Instant::now();
    let parked = sync(
        &c,
        sync_request("g", follower.member_id.as_str(), 1, &[]),
        5,
    )
    .await;
    assert_eq!(parked.error_code, code(ResponseError::RebalanceInProgress));
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_secs(29) && waited <= Duration::from_secs(31),
        "{waited:?}"
    );
    let answers = heartbeats.await.unwrap();
    assert_eq!(
        answers.last(),
        Some(&code(ResponseError::UnknownMemberId)),
        "{answers:?}"
    );
    assert!(
        answers[..answers.len() - 1].iter().all(|a| *a == 0),
        "{answers:?}"
    );
    // The follower now forms the group alone.
    let f = join(
        &c,
        join_request("g", follower.member_id.as_str(), RANGE),
        3,
        "b",
    )
    .await;
    assert_eq!(f.generation_id, 2);
    assert_eq!(f.leader, f.member_id);
}

#[tokio::test(start_paused = true)]
async fn a_member_whose_join_request_was_abandoned_still_expires() {
    let (c, _) = setup(config());
    let (leader, follower, generation) = stable_pair(&c, "g").await;
    // The follower's connection drops while its rejoin is parked.
    let abandoned = {
        let c = Arc::clone(&c);
        let id = follower.clone();
        tokio::spawn(
            async move { join(&c, join_request("g", &id, &[("range", b"new")]), 5, "b").await },
        )
    };
    wait_for_heartbeat(
        &c,
        "g",
        &leader,
        generation,
        ResponseError::RebalanceInProgress,
    )
    .await;
    abandoned.abort();
    let _ = abandoned.await;
    // The leader rejoins; the follower counts as joined (Kafka semantics), so
    // the generation completes with both, and the follower then expires.
    let l = join(&c, join_request("g", &leader, RANGE), 5, "a").await;
    assert_eq!(l.generation_id, generation + 1);
    assert_eq!(l.members.len(), 2);
    let synced = sync(&c, sync_request("g", &leader, generation + 1, &[]), 5).await;
    assert_eq!(synced.error_code, 0);
    let mut answer = 0;
    for _ in 0..10 {
        sleep(Duration::from_secs(3)).await;
        answer = heartbeat(&c, "g", &leader, generation + 1).await;
        if answer != 0 {
            break;
        }
    }
    assert_eq!(answer, code(ResponseError::RebalanceInProgress));
    assert_eq!(
        heartbeat(&c, "g", &follower, generation + 1).await,
        code(ResponseError::UnknownMemberId)
    );
}
