//! The cluster's logic without processes: the metadata log applied in
//! order, and the cluster's `Control` answers (leadership, controller and
//! coordinator, refusals, reassignment and topic-creation checks, forwarding
//! to the metadata group) on a member with no driver thread, whose inputs a
//! test reads.

use std::collections::BTreeMap;
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::BrokerId;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use starlog_replication::{GroupId, GroupStatus, ReplicationError, Role};
use starlog_storage::CommittedOffset;

use super::config::PeerSettings;
use super::control::{ClusterControl, LEADER_WAIT};
use super::inbox::Input;
use super::metadata::{self, ClusterState, MetaCommand, METADATA_GROUP};
use super::node::Cluster;
use crate::control::{AdminChange, Control, Leadership, NewTopic, Reassignment};

fn peer(id: i32) -> PeerSettings {
    PeerSettings {
        id,
        host: format!("broker{id}"),
        port: 9000 + u16::try_from(id).unwrap(),
        raft: format!("127.0.0.1:{}", 7000 + id).parse().unwrap(),
        listeners: Vec::new(),
    }
}

/// The listener the tests' clients come in on.
const LISTENER: &str = "PLAINTEXT";

fn peers(n: i32) -> Vec<PeerSettings> {
    (1..=n).map(peer).collect()
}

fn create(state: &ClusterState, name: &str, partitions: usize, factor: usize) -> MetaCommand {
    MetaCommand::CreateTopic {
        name: name.to_string(),
        id: uuid::Uuid::new_v4().to_string(),
        replicas: state.place(partitions, factor),
        configs: BTreeMap::new(),
    }
}

/// A metadata log of every kind of command, as the applier reads it back
/// (each command through the batch codec).
fn command_log() -> Vec<MetaCommand> {
    let founders = ClusterState::new(&peers(3));
    let cmds = [
        create(&founders, "alerts", 3, 2),
        MetaCommand::AddBroker { peer: peer(4) },
        MetaCommand::Reassign {
            topic: "alerts".into(),
            partition: 0,
            replicas: vec![4, 2],
        },
        MetaCommand::Leader {
            group: 1,
            leader: 2,
            term: 3,
            replicas: vec![1, 2, 4],
            isr: vec![1, 2],
        },
        MetaCommand::CommitOffsets {
            group: "g".into(),
            offsets: vec![CommittedOffset {
                topic: "alerts".into(),
                partition: 0,
                offset: 7,
                leader_epoch: -1,
                metadata: None,
                commit_timestamp_ms: 0,
            }],
            token: 1,
        },
        MetaCommand::RemoveBroker { id: 1 },
        create(&founders, "alerts", 9, 1),
        MetaCommand::CreateTopic {
            name: "late".into(),
            id: uuid::Uuid::new_v4().to_string(),
            replicas: vec![vec![4], vec![2]],
            configs: BTreeMap::from([("retention.ms".into(), "1000".into())]),
        },
    ];
    cmds.iter()
        .map(|c| {
            let decoded = metadata::decode(metadata::encode(c).unwrap()).unwrap();
            assert_eq!(decoded.len(), 1);
            decoded.into_iter().next().unwrap().1.unwrap()
        })
        .collect()
}

fn image(s: &ClusterState) -> String {
    serde_json::to_string(&s.image()).unwrap()
}

#[test]
fn every_broker_applying_the_metadata_log_in_order_derives_the_same_state() {
    let log = command_log();
    let mut a = ClusterState::new(&peers(3));
    let mut b = ClusterState::new(&peers(3));
    for c in &log {
        a.apply(c);
    }
    for c in &log {
        b.apply(c);
    }
    assert_eq!(image(&a), image(&b));
    // A broker that loads a checkpoint taken half-way, then applies the
    // rest, ends in the same state too.
    let mut early = ClusterState::new(&peers(3));
    for c in &log[..4] {
        early.apply(c);
    }
    let mut c = ClusterState::from_image(&early.image()).unwrap();
    for cmd in &log[4..] {
        c.apply(cmd);
    }
    assert_eq!(image(&a), image(&c));

    // What that state is: the first CreateTopic of a name won; broker 4
    // joined and 1 left (its replicas went elsewhere); the move of
    // alerts-0 and the announced leader are recorded.
    assert_eq!(a.topics.len(), 2);
    assert_eq!(a.topics["alerts"].partitions.len(), 3);
    assert_eq!(a.brokers.keys().copied().collect::<Vec<_>>(), vec![2, 3, 4]);
    assert!(a.removed.contains(&1));
    for p in a.topics.values().flat_map(|t| &t.partitions) {
        assert!(!p.replicas.contains(&1), "{p:?}");
    }
    assert_eq!(a.topics["alerts"].partitions[0].replicas, vec![4, 2]);
    assert_eq!(a.leaders[&GroupId(1)].leader, 2);
    let groups: Vec<u64> = a
        .topics
        .values()
        .flat_map(|t| t.partitions.iter().map(|p| p.group.0))
        .collect();
    assert_eq!(groups, vec![1, 2, 3, 4, 5]);
}

/// A member (node `node` of `n`) with no driver, and its control.
fn member(node: i32, n: i32) -> (Arc<Cluster>, ClusterControl, Receiver<Input>) {
    let (cluster, inputs) = Cluster::detached(node, peers(n));
    let mut me = crate::listener::Endpoints::default();
    me.insert(LISTENER, &format!("me{node}"), 1234);
    let control = ClusterControl {
        cluster: Arc::clone(&cluster),
        me,
    };
    (cluster, control, inputs)
}

fn status(group: u64, node: u64, role: Role, leader: Option<u64>, term: u64) -> GroupStatus {
    GroupStatus {
        group: GroupId(group),
        topic: "t".into(),
        partition: 0,
        node,
        role,
        leader,
        term,
        commit_index: 0,
        applied_index: 0,
        first_index: 1,
        last_index: 0,
        persisted_index: 0,
        high_watermark: 0,
        log_start_offset: 0,
        log_end_offset: 0,
        voters: vec![1, 2, 3],
        learners: Vec::new(),
        replicas: Vec::new(),
        failed: None,
    }
}

#[test]
fn metadata_names_a_reachable_leader_and_nothing_for_an_unknown_partition() {
    let (cluster, control, _inputs) = member(1, 3);
    let cmd = MetaCommand::CreateTopic {
        name: "alerts".into(),
        id: uuid::Uuid::new_v4().to_string(),
        replicas: vec![vec![2, 3, 1]],
        configs: BTreeMap::new(),
    };
    cluster.state.lock().apply(&cmd);
    // Hosted here, no leader known yet: the placement's replicas, no leader.
    assert_eq!(
        control.leadership("alerts", 0),
        Some(Leadership {
            leader: None,
            epoch: -1,
            replicas: vec![2, 3, 1],
            isr: Vec::new(),
        })
    );
    assert_eq!(control.leadership("alerts", 1), None);
    assert_eq!(control.leadership("nope", 0), None);
    // A follower here knows broker 2 leads in term 4.
    cluster
        .view
        .publish(vec![status(1, 1, Role::Follower, Some(2), 4)]);
    let l = control.leadership("alerts", 0).unwrap();
    assert_eq!((l.leader, l.epoch, l.replicas), (Some(2), 4, vec![1, 2, 3]));
    // Broker 2 refuses connections (killed): not named, so clients ask
    // again until the new leader is elected.
    cluster.faults.set_reachable(2, false);
    let l = control.leadership("alerts", 0).unwrap();
    assert_eq!((l.leader, l.epoch), (None, 4));
    assert_eq!(control.leader_wait(), LEADER_WAIT);
}

#[test]
fn the_controller_coordinates_groups_and_is_advertised() {
    let (cluster, control, _inputs) = member(1, 3);
    assert_eq!(control.brokers(LISTENER).len(), 3);
    assert_eq!(
        control.brokers(LISTENER)[1],
        (BrokerId(2), StrBytes::from_static_str("broker2"), 9002)
    );
    // No controller known: -1, and this broker names itself as coordinator.
    assert_eq!(control.controller(), BrokerId(-1));
    let me = control.coordinator(LISTENER).unwrap();
    assert_eq!(me.0, BrokerId(1));
    assert_eq!(me.1.as_str(), "me1");
    assert!(!control.coordinates());
    // Broker 3 leads the metadata group.
    cluster.view.publish(vec![status(
        METADATA_GROUP.0,
        1,
        Role::Follower,
        Some(3),
        2,
    )]);
    assert_eq!(control.controller(), BrokerId(3));
    assert_eq!(
        control.coordinator(LISTENER),
        Some((BrokerId(3), StrBytes::from_static_str("broker3"), 9003))
    );
    assert!(!control.coordinates());
    cluster
        .view
        .publish(vec![status(METADATA_GROUP.0, 1, Role::Leader, Some(1), 3)]);
    assert!(control.coordinates());
    assert_eq!(control.reported_replication_factor(), 3);
}

#[test]
fn clients_are_given_the_endpoints_of_their_own_listener() {
    let mut ps = peers(3);
    for p in &mut ps[..2] {
        p.listeners = vec![
            super::config::PeerListener {
                name: "internal".into(),
                host: format!("int{}", p.id),
                port: 9100,
            },
            super::config::PeerListener {
                name: "public".into(),
                host: format!("pub{}", p.id),
                port: 9200,
            },
        ];
    }
    let (cluster, _inputs) = Cluster::detached(1, ps);
    let control = ClusterControl {
        cluster,
        me: crate::listener::Endpoints::default(),
    };
    let public = control.brokers("public");
    assert_eq!(
        public,
        vec![
            (BrokerId(1), StrBytes::from_static_str("pub1"), 9200),
            (BrokerId(2), StrBytes::from_static_str("pub2"), 9200),
            // broker 3 lists no listeners: host:port for every listener
            (BrokerId(3), StrBytes::from_static_str("broker3"), 9003),
        ]
    );
    assert!(control
        .brokers("internal")
        .iter()
        .all(|(_, h, _)| !h.starts_with("pub")));
    // A listener the listing peers lack leaves them out.
    assert_eq!(control.brokers("other").len(), 1);
}

#[tokio::test]
async fn a_member_in_touch_answers_metadata() {
    let (_cluster, control, _inputs) = member(1, 3);
    // It heard from its peers a moment ago (as it starts).
    assert!(control.wait_in_touch(Duration::from_millis(10)).await);
}

#[test]
fn the_changes_a_cluster_does_not_make_are_refused_with_a_reason() {
    let (_cluster, control, _inputs) = member(1, 3);
    let (code, message) = control.refuses(AdminChange::DeleteTopics).unwrap();
    assert_eq!(code, ResponseError::InvalidRequest);
    assert_eq!(
        message,
        "deleting topics is not supported on a replicated cluster yet"
    );
    let (_, message) = control.refuses(AdminChange::AddPartitions).unwrap();
    assert_eq!(
        message,
        "adding partitions is not supported on a replicated cluster yet"
    );
    let (_, message) = control
        .refuses(AdminChange::AlterConfigs { topic: "t" })
        .unwrap();
    assert!(
        message.starts_with("topic t: altering configs"),
        "{message}"
    );
    assert!(control.check_reassignments().is_ok());
    assert!(control.check_replication_factor("t", 7).is_ok());
}

#[tokio::test]
async fn reassignments_are_listed_and_checked_before_anything_is_proposed() {
    let (cluster, control, inputs) = member(1, 3);
    {
        let mut s = cluster.state.lock();
        s.apply(&MetaCommand::CreateTopic {
            name: "alerts".into(),
            id: uuid::Uuid::new_v4().to_string(),
            replicas: vec![vec![1, 2, 3], vec![2, 3, 1]],
            configs: BTreeMap::new(),
        });
        s.apply(&MetaCommand::Reassign {
            topic: "alerts".into(),
            partition: 1,
            replicas: vec![3, 1, 2],
        });
        s.apply(&MetaCommand::Reassign {
            topic: "alerts".into(),
            partition: 0,
            replicas: vec![1, 2],
        });
    }
    // Partition 1 only changed its order; partition 0 is moving.
    assert_eq!(
        control.reassignments(),
        vec![Reassignment {
            topic: "alerts".into(),
            partition: 0,
            current: vec![1, 2, 3],
            target: vec![1, 2],
        }]
    );
    let refused = |r: Result<(), (ResponseError, String)>| r.unwrap_err().0;
    // A smaller replica set when the request does not allow it.
    let r = control.reassign("alerts", 1, Some(vec![1, 2]), false).await;
    assert_eq!(refused(r), ResponseError::InvalidReplicationFactor);
    // A broker that is not a member.
    let r = control
        .reassign("alerts", 1, Some(vec![1, 9, 2]), true)
        .await;
    assert_eq!(refused(r), ResponseError::InvalidReplicaAssignment);
    // Cancelling a partition that is not moving.
    let r = control.reassign("alerts", 1, None, true).await;
    assert_eq!(refused(r), ResponseError::NoReassignmentInProgress);
    let r = control.reassign("nope", 0, Some(vec![1]), true).await;
    assert_eq!(refused(r), ResponseError::UnknownTopicOrPartition);
    assert!(inputs.try_recv().is_err(), "nothing was proposed");
}

#[tokio::test]
async fn topic_creation_is_checked_here_then_forwarded_to_the_metadata_group() {
    let dir = tempfile::tempdir().unwrap();
    let meta = Arc::new(starlog_storage::MetaStore::open(&dir.path().join("__meta")).unwrap());
    let topics = crate::topics::TopicRegistry::open(dir.path(), Default::default(), meta).unwrap();
    let (_cluster, control, inputs) = member(1, 3);
    let request = |factor: i16, partitions: i32| NewTopic {
        name: "alerts",
        partitions,
        replication_factor: factor,
        configs: BTreeMap::new(),
        validate_only: false,
        max_partitions: 100,
    };
    let code =
        |r: Result<Arc<crate::topics::Topic>, crate::topics::TopicError>| r.unwrap_err().code;
    let r = control.create_topic(&topics, request(4, 1)).await;
    assert_eq!(code(r), ResponseError::InvalidReplicationFactor);
    let r = control.create_topic(&topics, request(2, 0)).await;
    assert_eq!(code(r), ResponseError::InvalidPartitions);
    assert!(inputs.try_recv().is_err(), "nothing was proposed");

    // A valid request goes to the metadata group as a CreateTopic placed
    // on two of the three brokers; the group has no leader to take it.
    let driver = std::thread::spawn(move || match inputs.recv().unwrap() {
        Input::Forward {
            group,
            records,
            reply,
        } => {
            let _ = reply.send(Err(ReplicationError::NotLeader {
                group,
                leader: None,
            }));
            (group, metadata::decode(records).unwrap())
        }
        other => panic!("unexpected input {other:?}"),
    });
    let r = control.create_topic(&topics, request(2, 3)).await;
    assert_eq!(code(r), ResponseError::NotController);
    let (group, decoded) = driver.join().unwrap();
    assert_eq!(group, METADATA_GROUP);
    let Ok(MetaCommand::CreateTopic { name, replicas, .. }) = &decoded[0].1 else {
        panic!("{decoded:?}");
    };
    assert_eq!(name, "alerts");
    assert_eq!(replicas.len(), 3);
    assert!(replicas.iter().all(|r| r.len() == 2), "{replicas:?}");
}
