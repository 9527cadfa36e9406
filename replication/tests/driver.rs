//! The driver on a fault-free in-memory network: group commit, dense offsets with control
//! entries invisible, proposal refusals, membership changes, compaction with a lagging
//! follower caught up by a snapshot, restarts, and real ZTF alerts replicated byte for byte.

// Test helpers outside #[test] functions unwrap too: a panic is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;

use bytes::Bytes;
use common::batches::{batch, one, read_range};
use common::mem_cluster::{Cluster, NetFaults};
use starlog_replication::eraftpb::{ConfChangeSingle, ConfChangeType, ConfChangeV2};
use starlog_replication::{
    CrashPoint, GroupId, MembershipStep, ReplicaState, ReplicationError, Role,
};

const G1: GroupId = GroupId(1);
const G2: GroupId = GroupId(2);

/// Steps until `group` has a leader everybody follows.
fn elect(c: &mut Cluster, group: GroupId) -> u64 {
    for _ in 0..300 {
        c.step(0.8);
        if let Some(l) = c.leader(group) {
            let all = c
                .node_ids()
                .into_iter()
                .filter(|&n| c.is_up(n))
                .all(|n| c.driver(n).unwrap().status(group).unwrap().leader == Some(l));
            if all {
                return l;
            }
        }
    }
    panic!("no leader for {group}");
}

fn run(c: &mut Cluster, steps: usize) {
    for _ in 0..steps {
        c.step(0.8);
    }
}

#[test]
fn group_commit_syncs_each_partition_once_per_turn_whatever_the_number_of_proposals() {
    let mut c = Cluster::new(7, 3, 2, NetFaults::NONE);
    let l1 = elect(&mut c, G1);
    // Put both leaders on the same node.
    if c.leader(G2) != Some(l1) {
        c.driver_mut(l1).unwrap().campaign(G2).unwrap();
    }
    for _ in 0..300 {
        c.step(0.8);
        if c.leader(G2) == Some(l1) && c.driver(l1).unwrap().status(G2).unwrap().commit_index > 0 {
            break;
        }
    }
    assert_eq!(c.leader(G2), Some(l1));
    run(&mut c, 5);
    let driver = c.driver_mut(l1).unwrap();
    let mut proposals = Vec::new();
    for i in 0..20u8 {
        for g in [G1, G2] {
            proposals.push(driver.propose(g, one(&[i; 100])).unwrap());
        }
    }
    let stats = driver.run_turn();
    assert_eq!(stats.groups_ready, 2);
    assert_eq!(
        stats.syncs, 2,
        "40 proposals on 2 partitions must cost 2 syncs: {stats:?}"
    );
    // Appends of both groups for each follower travel in one frame per peer.
    assert_eq!(stats.sends, 2, "{stats:?}");
    assert_eq!(
        stats.messages, 80,
        "one append per proposal and follower: {stats:?}"
    );
}

#[test]
fn offsets_are_dense_terms_are_epochs_and_control_entries_are_invisible() {
    let mut c = Cluster::new(11, 3, 1, NetFaults::NONE);
    let leader = elect(&mut c, G1);
    for i in 0..10 {
        c.propose(G1, leader, 1, 1 + i % 3);
        c.step(0.8);
    }
    // A leader change adds another empty entry (a control entry) to the Raft log.
    let other = c.node_ids().into_iter().find(|&n| n != leader).unwrap();
    c.driver_mut(leader)
        .unwrap()
        .transfer_leader(G1, other)
        .unwrap();
    run(&mut c, 30);
    let new_leader = c.leader(G1).unwrap();
    for _ in 0..5 {
        c.propose(G1, new_leader, 1, 2);
        c.step(0.8);
    }
    c.converge_and_verify(500);
    assert_eq!(c.acked.len(), 15);
    for id in c.node_ids() {
        let d = c.driver(id).unwrap();
        let st = d.status(G1).unwrap();
        let log = d.log(G1).unwrap();
        let batches = read_range(&log, 0, st.high_watermark);
        assert_eq!(batches.len(), 15, "node {id}: one batch per data entry");
        let mut next = 0;
        for b in &batches {
            assert_eq!(b.base_offset, next, "node {id}: offsets are dense");
            assert!(!b.values.is_empty());
            next += b.values.len() as i64;
            let index = d
                .store(G1)
                .unwrap()
                .translator()
                .index_of_offset(b.base_offset)
                .unwrap();
            let term = d.store(G1).unwrap().translator().term(index).unwrap();
            assert_eq!(
                i64::from(b.leader_epoch),
                term as i64,
                "epoch is the raft term"
            );
        }
        assert_eq!(st.high_watermark, next);
        assert_eq!(st.log_end_offset, next);
        // 15 data entries + at least two leaders' empty entries.
        assert!(
            st.last_index >= 17,
            "node {id}: last index {}",
            st.last_index
        );
        assert!(d.store(G1).unwrap().translator().controls().count() >= 2);
    }
}

#[test]
fn followers_refuse_proposals_and_name_the_leader() {
    let mut c = Cluster::new(3, 3, 1, NetFaults::NONE);
    let leader = elect(&mut c, G1);
    let follower = c.node_ids().into_iter().find(|&n| n != leader).unwrap();
    let err = c
        .driver_mut(follower)
        .unwrap()
        .propose(G1, one(b"x"))
        .unwrap_err();
    assert!(
        matches!(err, ReplicationError::NotLeader { leader: Some(l), .. } if l == leader),
        "{err}"
    );
    let err = c
        .driver_mut(leader)
        .unwrap()
        .propose(GroupId(99), one(b"x"))
        .unwrap_err();
    assert!(
        matches!(err, ReplicationError::UnknownGroup { .. }),
        "{err}"
    );
}

#[test]
fn invalid_records_are_refused_before_reaching_any_log() {
    let config = starlog_storage::LogConfig {
        max_batch_bytes: 4096,
        ..starlog_storage::LogConfig::default()
    };
    let mut c = Cluster::with_config(5, 3, 1, NetFaults::NONE, config);
    let leader = elect(&mut c, G1);
    run(&mut c, 5);
    let before = c.driver(leader).unwrap().status(G1).unwrap();
    let d = c.driver_mut(leader).unwrap();
    let mut bad_crc = batch(0, &[b"value"]);
    let n = bad_crc.len();
    bad_crc[n - 2] ^= 1;
    let err = d.propose(G1, Bytes::from(bad_crc)).unwrap_err();
    assert!(
        matches!(err, ReplicationError::InvalidRecords { batch_index: 0, .. }),
        "{err}"
    );
    let mut trailing = batch(0, &[b"ok"]);
    trailing.extend_from_slice(&[0, 0, 0]);
    let err = d.propose(G1, Bytes::from(trailing)).unwrap_err();
    assert!(
        matches!(err, ReplicationError::InvalidRecords { batch_index: 1, .. }),
        "{err}"
    );
    let err = d.propose(G1, Bytes::new()).unwrap_err();
    assert!(
        matches!(err, ReplicationError::EmptyProposal { .. }),
        "{err}"
    );
    let err = d
        .propose(G1, Bytes::from(batch(0, &[&[7u8; 5000]])))
        .unwrap_err();
    assert!(
        matches!(err, ReplicationError::BatchTooLarge { max: 4096, .. }),
        "{err}"
    );
    run(&mut c, 10);
    let after = c.driver(leader).unwrap().status(G1).unwrap();
    assert_eq!(after.last_index, before.last_index);
    assert_eq!(after.log_end_offset, before.log_end_offset);
}

#[test]
fn acknowledged_data_survives_a_restart_of_every_node() {
    let mut c = Cluster::new(21, 3, 2, NetFaults::NONE);
    let l1 = elect(&mut c, G1);
    let l2 = elect(&mut c, G2);
    for i in 0..30 {
        c.propose(G1, l1, 1, 1 + i % 2);
        c.propose(G2, l2, 1 + i % 2, 1);
        c.step(0.8);
    }
    for id in c.node_ids() {
        c.crash_next.push((
            id,
            if id % 2 == 0 {
                CrashPoint::BeforeSync
            } else {
                CrashPoint::AfterSync
            },
        ));
    }
    c.step(0.8);
    for id in c.node_ids() {
        c.start(id);
    }
    c.converge_and_verify(1000);
    assert!(c.acked.len() >= 50, "only {} acknowledged", c.acked.len());
}

#[test]
fn a_joining_replica_catches_up_and_a_removed_one_stops_following() {
    let mut c = Cluster::new(31, 3, 1, NetFaults::NONE);
    let leader = elect(&mut c, G1);
    for i in 0..12 {
        c.propose(G1, leader, 1, 1 + i % 3);
        c.step(0.8);
    }
    let new = c.add_joining_node();
    let change = |t: ConfChangeType, node: u64| {
        let mut cc = ConfChangeV2::default();
        let mut single = ConfChangeSingle::default();
        single.set_change_type(t);
        single.node_id = node;
        cc.changes = vec![single].into();
        cc
    };
    c.driver_mut(leader)
        .unwrap()
        .propose_conf_change(G1, change(ConfChangeType::AddLearnerNode, new))
        .unwrap();
    run(&mut c, 40);
    c.driver_mut(leader)
        .unwrap()
        .propose_conf_change(G1, change(ConfChangeType::AddNode, new))
        .unwrap();
    run(&mut c, 40);
    for _ in 0..5 {
        c.propose(G1, leader, 1, 1);
        c.step(0.8);
    }
    c.converge_and_verify(500);
    let st = c.driver(new).unwrap().status(G1).unwrap();
    assert_eq!(st.voters, vec![1, 2, 3, 4]);
    let leader_st = c.driver(leader).unwrap().status(G1).unwrap();
    assert_eq!(st.high_watermark, leader_st.high_watermark);
    assert_eq!(leader_st.in_sync_replicas(0), vec![1, 2, 3, 4]);

    // Remove a follower other than the new node; the others carry on without it.
    let gone = c
        .node_ids()
        .into_iter()
        .find(|&n| n != leader && n != new)
        .unwrap();
    c.driver_mut(leader)
        .unwrap()
        .propose_conf_change(G1, change(ConfChangeType::RemoveNode, gone))
        .unwrap();
    run(&mut c, 40);
    let hw_gone = c.driver(gone).unwrap().high_watermark(G1).unwrap();
    for _ in 0..5 {
        c.propose(G1, leader, 1, 1);
        c.step(0.8);
    }
    c.converge_and_verify(500);
    let leader_st = c.driver(leader).unwrap().status(G1).unwrap();
    assert!(!leader_st.voters.contains(&gone));
    assert!(leader_st.high_watermark > hw_gone);
    // Membership survives a restart (the configuration is in the raft state file).
    c.crash(leader, CrashPoint::AfterSync);
    c.start(leader);
    let st = c.driver(leader).unwrap().status(G1).unwrap();
    assert_eq!(st.voters, leader_st.voters);
}

#[test]
fn reconciling_adds_a_learner_promotes_it_once_caught_up_then_removes_the_old_leader() {
    let mut c = Cluster::new(37, 3, 1, NetFaults::NONE);
    let first = elect(&mut c, G1);
    for i in 0..20 {
        c.propose(G1, first, 1, 1 + i % 3);
        c.step(0.8);
    }
    let new = c.add_joining_node();
    // Move the group off its first leader onto the new node.
    let target: Vec<u64> = c.node_ids().into_iter().filter(|&n| n != first).collect();
    let removed = [first];
    let mut steps = Vec::new();
    for _ in 0..2_000 {
        if let Some(l) = c.leader(G1) {
            if let Some(step) = c
                .driver_mut(l)
                .unwrap()
                .reconcile_membership(G1, &target, &removed)
                .unwrap()
            {
                steps.push(step);
            }
            let st = c.driver(l).unwrap().status(G1).unwrap();
            if st.voters == target && st.learners.is_empty() {
                break;
            }
        }
        c.step(0.8);
    }
    let l = c.leader(G1).expect("a leader");
    let st = c.driver(l).unwrap().status(G1).unwrap();
    assert_eq!(
        (st.voters.clone(), st.learners.clone()),
        (target.clone(), vec![])
    );
    assert_ne!(l, first, "leadership moved off the removed node");
    // The order: learner first, promoted once caught up, the old leader
    // hands over before it is removed.
    assert_eq!(steps[0], MembershipStep::AddLearner(new), "{steps:?}");
    assert_eq!(steps[1], MembershipStep::Promote(new), "{steps:?}");
    assert!(
        matches!(steps[2], MembershipStep::TransferLeader(to) if to != first),
        "{steps:?}"
    );
    assert_eq!(
        *steps.last().unwrap(),
        MembershipStep::Remove(first),
        "{steps:?}"
    );
    // Nothing more to do, and the new replica holds everything.
    assert_eq!(
        c.driver_mut(l)
            .unwrap()
            .reconcile_membership(G1, &target, &removed)
            .unwrap(),
        None
    );
    c.converge_and_verify(500);
}

/// Steps (every node ticking each step) until a node other than `old` leads
/// `group`; `None` if none does within `steps`.
fn new_leader_within(c: &mut Cluster, group: GroupId, old: u64, steps: usize) -> Option<u64> {
    for _ in 0..steps {
        c.step(1.0);
        if let Some(l) = c.leader(group).filter(|&l| l != old && c.is_up(l)) {
            return Some(l);
        }
    }
    None
}

#[test]
fn followers_of_a_leader_known_to_be_gone_elect_another_without_waiting_out_the_timeout() {
    for suspect in [false, true] {
        let mut c = Cluster::new(41, 3, 1, NetFaults::NONE);
        let old = elect(&mut c, G1);
        for _ in 0..5 {
            c.propose(G1, old, 1, 1);
            c.step(0.8);
        }
        c.converge_and_verify(200);
        c.crash(old, CrashPoint::AfterSync);
        if suspect {
            for n in c.node_ids().into_iter().filter(|&n| n != old) {
                assert_eq!(c.driver_mut(n).unwrap().suspect_leader(old), 1);
                assert_eq!(
                    c.driver_mut(n).unwrap().suspect_leader(n),
                    0,
                    "not its own leader"
                );
            }
        }
        // The election timeout is 10 ticks: only suspicion elects within 6.
        let elected = new_leader_within(&mut c, G1, old, 6);
        assert_eq!(elected.is_some(), suspect, "suspect {suspect}: {elected:?}");
        if suspect {
            c.propose(G1, elected.unwrap(), 1, 1);
            c.start(old);
            c.converge_and_verify(500);
        }
    }
}

#[test]
fn an_idle_healthy_group_keeps_every_replica_in_sync_between_quorum_checks() {
    let mut c = Cluster::new(43, 3, 1, NetFaults::NONE);
    let leader = elect(&mut c, G1);
    c.propose(G1, leader, 1, 1);
    c.converge_and_verify(200);
    // raft-rs clears its activity flags at every quorum check (each
    // election timeout); a status read right after one must not drop
    // healthy followers from the in-sync replicas.
    for step in 0..120 {
        c.step(1.0);
        let st = c.driver(leader).unwrap().status(G1).unwrap();
        assert_eq!(
            st.in_sync_replicas(0),
            vec![1, 2, 3],
            "step {step}: {:?}",
            st.replicas
        );
    }
    // A follower that stops answering leaves the set once the timeout passes.
    let gone = c.node_ids().into_iter().find(|&n| n != leader).unwrap();
    c.crash(gone, CrashPoint::AfterSync);
    run(&mut c, 60);
    let st = c.driver(leader).unwrap().status(G1).unwrap();
    assert!(!st.in_sync_replicas(0).contains(&gone), "{:?}", st.replicas);
}

#[test]
fn a_follower_behind_the_compacted_window_catches_up_through_a_snapshot() {
    let mut c = Cluster::new(41, 3, 1, NetFaults::NONE);
    let leader = elect(&mut c, G1);
    let lagging = c.node_ids().into_iter().find(|&n| n != leader).unwrap();
    c.crash(lagging, CrashPoint::AfterSync);
    for _ in 0..20 {
        c.propose(G1, leader, 1, 2);
        c.step(0.8);
    }
    run(&mut c, 10);
    let hw = c.driver(leader).unwrap().high_watermark(G1).unwrap();
    assert_eq!(hw, 40);
    // Retention: forget everything before offset 20 (and segments below it).
    let start = c.driver_mut(leader).unwrap().compact(G1, 20).unwrap();
    assert_eq!(start, 20);
    let st = c.driver(leader).unwrap().status(G1).unwrap();
    assert!(st.first_index > 1);
    assert_eq!(st.log_start_offset, 20);
    c.start(lagging);
    for _ in 0..10 {
        c.propose(G1, leader, 1, 1);
        c.step(0.8);
    }
    run(&mut c, 60);
    let st = c.driver(leader).unwrap().status(G1).unwrap();
    assert_eq!(st.high_watermark, 50, "the majority kept committing");
    let follower = st.replicas.iter().find(|r| r.node == lagging).unwrap();
    assert_eq!(follower.state, ReplicaState::Replicate, "{follower:?}");
    assert_eq!(follower.lag_offsets, Some(0), "{follower:?}");
    assert!(st.in_sync_replicas(10).contains(&lagging));
    // The snapshot restarted the follower's log at the leader's window start; what follows
    // is byte-identical to the leader's.
    let lagging_status = c.driver(lagging).unwrap().status(G1).unwrap();
    assert_eq!(lagging_status.high_watermark, 50);
    assert_eq!(lagging_status.log_start_offset, 20);
    let mine = read_range(&c.driver(lagging).unwrap().log(G1).unwrap(), 20, 50);
    let theirs = read_range(&c.driver(leader).unwrap().log(G1).unwrap(), 20, 50);
    assert_eq!(mine, theirs);
    // It survives its own restart with the new window.
    c.crash(lagging, CrashPoint::AfterSync);
    c.start(lagging);
    let reopened = c.driver(lagging).unwrap().status(G1).unwrap();
    assert_eq!(reopened.log_start_offset, 20);
    assert!(reopened.last_index >= lagging_status.last_index);
    // The compacted leader reopens with the same window and high watermark.
    let before = c.driver(leader).unwrap().status(G1).unwrap();
    c.crash(leader, CrashPoint::AfterSync);
    c.start(leader);
    let after = c.driver(leader).unwrap().status(G1).unwrap();
    assert_eq!(after.first_index, before.first_index);
    assert_eq!(after.last_index, before.last_index);
    assert_eq!(after.log_start_offset, 20);
    assert_eq!(after.role, Role::Follower);
}

fn alert_files() -> Vec<PathBuf> {
    let root = common::testdata_dir().join("ztf/alerts");
    let mut out = Vec::new();
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "avro") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn real_ztf_alerts_are_replicated_byte_for_byte() {
    let files = alert_files();
    assert!(
        files.len() >= 24,
        "expected the ZTF sample alerts, found {}",
        files.len()
    );
    let alerts: Vec<Vec<u8>> = files
        .iter()
        .take(24)
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    let config = starlog_storage::LogConfig {
        segment_bytes: 256 * 1024,
        ..starlog_storage::LogConfig::default()
    };
    let net = NetFaults {
        drop: 0.02,
        duplicate: 0.02,
        max_delay: 2,
    };
    let mut c = Cluster::with_config(51, 3, 1, net, config);
    let leader = elect(&mut c, G1);
    let mut ids = Vec::new();
    for pair in alerts.chunks(2) {
        ids.push(c.propose_values(G1, leader, 1, pair.len(), pair));
        run(&mut c, 3);
    }
    c.converge_and_verify(1000);
    assert_eq!(c.acked.len(), 12);
    for node in c.node_ids() {
        let log = c.driver(node).unwrap().log(G1).unwrap();
        let hw = c.driver(node).unwrap().high_watermark(G1).unwrap();
        let values: Vec<Vec<u8>> = read_range(&log, 0, hw)
            .into_iter()
            .flat_map(|b| b.values)
            .collect();
        assert_eq!(values.len(), alerts.len(), "node {node}");
        for (v, a) in values.iter().zip(&alerts) {
            assert_eq!(&v[18..], a.as_slice(), "node {node}: alert bytes differ");
        }
    }
}

#[test]
fn a_checkpoint_lets_a_restarted_node_expose_its_high_watermark_at_once() {
    let mut c = Cluster::new(61, 3, 1, NetFaults::NONE);
    let leader = elect(&mut c, G1);
    for _ in 0..8 {
        c.propose(G1, leader, 1, 2);
        c.step(0.8);
    }
    c.converge_and_verify(300);
    let follower = c.node_ids().into_iter().find(|&n| n != leader).unwrap();
    let hw = c.driver(follower).unwrap().high_watermark(G1).unwrap();
    assert_eq!(hw, 16);
    // Without a checkpoint the restarted node only knows an old commit index.
    c.crash(follower, CrashPoint::AfterSync);
    c.start(follower);
    let before = c.driver(follower).unwrap().high_watermark(G1).unwrap();
    assert!(before < hw, "{before}");
    c.converge_and_verify(300);
    assert_eq!(c.driver_mut(follower).unwrap().checkpoint(), 1);
    assert_eq!(
        c.driver_mut(follower).unwrap().checkpoint(),
        0,
        "nothing moved since"
    );
    c.crash(follower, CrashPoint::AfterSync);
    c.start(follower);
    assert_eq!(c.driver(follower).unwrap().high_watermark(G1).unwrap(), hw);
}
