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

// ---- users and ACLs through the metadata log ----

use starlog_security::{
    AclBinding, AclEntry, AclFilter, AclOperation, ChangeOutcome, PatternType, Permission,
    Principal, ResourcePattern, ResourceType, ScramCredential, ScramMechanism, SecurityChange,
    SecurityState, SECURITY_FORMAT_VERSION,
};

use super::applied_security::Bootstrap;
use super::metadata::Change;
use super::security::ClusterSecurityStore;
use crate::security::{Policy, SecurityStore};

fn read_acl(who: &str, topic: &str, pattern: PatternType) -> AclBinding {
    AclBinding {
        pattern: ResourcePattern {
            resource_type: ResourceType::Topic,
            name: topic.into(),
            pattern_type: pattern,
        },
        entry: AclEntry {
            principal: Principal::parse(who).unwrap(),
            host: "*".into(),
            operation: AclOperation::Read,
            permission: Permission::Allow,
        },
    }
}

fn credential(password: &str) -> ScramCredential {
    ScramCredential::new(ScramMechanism::Sha512, password, 4096).unwrap()
}

/// Through the batch codec, as the applier reads it back.
fn logged(cmd: &MetaCommand) -> MetaCommand {
    let decoded = metadata::decode(metadata::encode(cmd).unwrap()).unwrap();
    decoded.into_iter().next().unwrap().1.unwrap()
}

fn security(change: SecurityChange, token: u64) -> MetaCommand {
    logged(&MetaCommand::security(&change, token).unwrap())
}

fn bootstrap_file(users: &[&str], acls: Vec<AclBinding>) -> SecurityState {
    let mut file = SecurityState::default();
    for u in users {
        file.apply(&SecurityChange::SetCredential {
            user: (*u).into(),
            credential: credential("bootstrap-pw"),
        });
    }
    file.apply(&SecurityChange::CreateAcls { acls });
    file
}

#[test]
fn security_commands_applied_in_order_or_from_a_checkpoint_give_the_same_state() {
    let alerts = read_acl("User:alice", "alerts-", PatternType::Prefixed);
    let private = read_acl("User:*", "private", PatternType::Literal);
    let log = vec![
        create(&ClusterState::new(&peers(3)), "alerts", 1, 3),
        logged(&MetaCommand::security_bootstrap(&bootstrap_file(&["admin"], vec![])).unwrap()),
        security(
            SecurityChange::SetCredential {
                user: "alice".into(),
                credential: credential("pw-a"),
            },
            1,
        ),
        security(
            SecurityChange::CreateAcls {
                acls: vec![alerts.clone(), private.clone()],
            },
            2,
        ),
        security(
            SecurityChange::DeleteAcls {
                filters: vec![AclFilter {
                    name: Some("private".into()),
                    ..AclFilter::any()
                }],
            },
            3,
        ),
        // A second bootstrap: the cluster has had users and ACLs, so it
        // takes neither.
        logged(
            &MetaCommand::security_bootstrap(&bootstrap_file(
                &["mallory"],
                vec![read_acl("User:mallory", "alerts-", PatternType::Prefixed)],
            ))
            .unwrap(),
        ),
        security(
            SecurityChange::DeleteCredential {
                user: "admin".into(),
                mechanism: ScramMechanism::Sha512,
            },
            4,
        ),
    ];
    let mut a = ClusterState::new(&peers(3));
    let mut b = ClusterState::new(&peers(3));
    let changes: Vec<Change> = log.iter().map(|c| a.apply(c)).collect();
    for c in &log {
        b.apply(c);
    }
    assert_eq!(image(&a), image(&b));
    assert_eq!(changes[1], Change::SecurityBootstrap(Ok((1, 0))));
    assert_eq!(
        changes[4],
        Change::Security {
            token: 3,
            outcome: Ok(ChangeOutcome::Deleted(vec![vec![private.clone()]]))
        }
    );
    assert_eq!(changes[5], Change::SecurityBootstrap(Ok((0, 0))));
    // Alice is the only user (admin was deleted, mallory never taken);
    // only her ACL is left.
    assert_eq!(a.security.users.keys().collect::<Vec<_>>(), vec!["alice"]);
    assert!(a
        .security
        .credential("alice", ScramMechanism::Sha512)
        .is_some_and(|c| c.verify_password("pw-a")));
    assert_eq!(a.security.acls, vec![alerts.clone()]);
    assert!(a.security_seen.users && a.security_seen.acls);

    // From a checkpoint taken at every point, then the rest of the log.
    for cut in 0..=log.len() {
        let mut early = ClusterState::new(&peers(3));
        for c in &log[..cut] {
            early.apply(c);
        }
        let json = serde_json::to_string(&early.image()).unwrap();
        let mut c = ClusterState::from_image(&serde_json::from_str(&json).unwrap()).unwrap();
        for cmd in &log[cut..] {
            c.apply(cmd);
        }
        assert_eq!(image(&a), image(&c), "checkpoint after {cut} commands");
    }

    // Users all deleted: a later bootstrap still takes none (the cluster
    // had users), so a file left in a data directory never resurrects them.
    a.apply(&security(
        SecurityChange::DeleteCredential {
            user: "alice".into(),
            mechanism: ScramMechanism::Sha512,
        },
        5,
    ));
    assert!(a.security.users.is_empty());
    let again = a.apply(&logged(
        &MetaCommand::security_bootstrap(&bootstrap_file(&["admin"], vec![])).unwrap(),
    ));
    assert_eq!(again, Change::SecurityBootstrap(Ok((0, 0))));
    assert!(a.security.users.is_empty());
}

#[test]
fn a_checkpoint_image_without_users_and_acls_still_loads() {
    let mut s = ClusterState::new(&peers(3));
    s.apply(&create(&s.clone(), "alerts", 2, 2));
    let mut doc = serde_json::to_value(s.image()).unwrap();
    let obj = doc.as_object_mut().unwrap();
    assert!(obj.remove("security").is_some());
    assert!(obj.remove("security_seen").is_some());
    // As a checkpoint written before users and ACLs were replicated.
    let old: metadata::ClusterImage = serde_json::from_value(doc.clone()).unwrap();
    let loaded = ClusterState::from_image(&old).unwrap();
    assert_eq!(loaded.topics, s.topics);
    assert_eq!(loaded.security, SecurityState::default());
    let cmd: MetaCommand = serde_json::from_value(serde_json::json!({
        "op": "checkpoint", "as_of": 3, "state": doc, "offsets": {}
    }))
    .unwrap();
    assert!(matches!(cmd, MetaCommand::Checkpoint { as_of: 3, .. }));
    // And the bootstrap is still taken by such a cluster.
    let mut loaded = loaded;
    let took = loaded.apply(&logged(
        &MetaCommand::security_bootstrap(&bootstrap_file(
            &["admin"],
            vec![read_acl("User:ANONYMOUS", "alerts", PatternType::Literal)],
        ))
        .unwrap(),
    ));
    assert_eq!(took, Change::SecurityBootstrap(Ok((1, 1))));
}

#[test]
fn a_security_command_of_a_newer_format_is_refused_identically_everywhere() {
    let newer = SECURITY_FORMAT_VERSION + 1;
    // A change this build cannot even parse, and one it could: both refused
    // for their version, naming it.
    let unknown = logged(&MetaCommand::Security {
        version: newer,
        change: serde_json::json!({ "change": "rotate_everything", "how": 7 }),
        token: 9,
    });
    let known_shape = logged(&MetaCommand::Security {
        version: newer,
        change: serde_json::to_value(SecurityChange::CreateAcls {
            acls: vec![read_acl("User:*", "alerts", PatternType::Literal)],
        })
        .unwrap(),
        token: 10,
    });
    let bootstrap = logged(&MetaCommand::SecurityBootstrap {
        version: newer,
        state: serde_json::to_value(bootstrap_file(&["admin"], vec![])).unwrap(),
    });
    let mut a = ClusterState::new(&peers(3));
    let mut b = ClusterState::new(&peers(3));
    for cmd in [&unknown, &known_shape, &bootstrap] {
        let (x, y) = (a.apply(cmd), b.apply(cmd));
        assert_eq!(x, y);
        let why = match x {
            Change::Security {
                outcome: Err(why), ..
            }
            | Change::SecurityBootstrap(Err(why)) => why,
            other => panic!("applied: {other:?}"),
        };
        assert!(
            why.contains(&format!("format version {newer}")) && why.contains("upgrade"),
            "{why}"
        );
    }
    assert_eq!(a.security, SecurityState::default());
    assert!(!a.security_seen.users && !a.security_seen.acls);
    // A checkpoint whose users and ACLs are of a newer format is not loaded.
    let mut image = a.image();
    image.security.version = newer;
    let err = ClusterState::from_image(&image).unwrap_err();
    assert!(err.contains(&format!("format version {newer}")), "{err}");
}

/// Applies what `inputs` receives as the applier would (forwarded
/// metadata commands), until `stop` is set.
fn fake_metadata_group(
    cluster: Arc<Cluster>,
    inputs: Receiver<Input>,
    topics: Arc<crate::topics::TopicRegistry>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<()> {
    let runtime = tokio::runtime::Handle::current();
    std::thread::spawn(move || {
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            let Ok(input) = inputs.recv_timeout(Duration::from_millis(20)) else {
                continue;
            };
            let Input::Forward {
                group,
                records,
                reply,
            } = input
            else {
                continue;
            };
            assert_eq!(group, METADATA_GROUP);
            let _ = reply.send(Ok(()));
            for (_, cmd) in metadata::decode(records).unwrap() {
                runtime.block_on(cluster.apply(&topics, &cmd.unwrap()));
                cluster.applied.send_modify(|n| *n += 1);
            }
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cluster_store_proposes_changes_and_answers_from_the_applied_state() {
    let dir = tempfile::tempdir().unwrap();
    let meta = Arc::new(starlog_storage::MetaStore::open(&dir.path().join("__meta")).unwrap());
    let topics =
        Arc::new(crate::topics::TopicRegistry::open(dir.path(), Default::default(), meta).unwrap());
    let (cluster, inputs) = Cluster::detached(2, peers(3));
    let policy = Policy {
        super_users: vec![Principal::user("admin")],
        allow_everyone_if_no_acl_found: false,
    };
    let store = ClusterSecurityStore::new(Arc::clone(&cluster), policy);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let group = fake_metadata_group(
        Arc::clone(&cluster),
        inputs,
        Arc::clone(&topics),
        Arc::clone(&stop),
    );
    let anon = Principal::anonymous();
    let can_read = |store: &ClusterSecurityStore| {
        store.authorizer().authorize(
            &anon,
            "127.0.0.1",
            AclOperation::Read,
            ResourceType::Topic,
            "alerts",
        )
    };
    assert!(!can_read(&store), "no ACL, and no ACL means no");
    let acl = read_acl("User:ANONYMOUS", "alerts", PatternType::Literal);
    let out = store
        .change(SecurityChange::CreateAcls {
            acls: vec![acl.clone(), acl.clone()],
        })
        .await
        .unwrap();
    assert_eq!(out, ChangeOutcome::Created(vec![Ok(true), Ok(false)]));
    assert!(can_read(&store), "the authorizer follows the applied state");
    let out = store
        .change(SecurityChange::SetCredential {
            user: "alice".into(),
            credential: credential("pw-alice"),
        })
        .await
        .unwrap();
    assert_eq!(out, ChangeOutcome::Credential(true));
    assert!(store
        .credential("alice", ScramMechanism::Sha512)
        .is_some_and(|c| c.verify_password("pw-alice")));
    assert_eq!(store.credential("alice", ScramMechanism::Sha256), None);
    assert_eq!(store.state().acls, vec![acl]);
    let status = super::http::status_document(&cluster);
    assert_eq!(status.security.users, vec!["alice (SCRAM-SHA-512)"]);
    assert_eq!(
        status.security.acls,
        vec!["Allow User:ANONYMOUS Read on Topic:Literal:alerts from *"]
    );
    assert!(!serde_json::to_string(&status)
        .unwrap()
        .contains("stored_key"));
    // A metadata group that cannot take it: a typed error.
    let (cluster2, inputs2) = Cluster::detached(1, peers(3));
    let store2 = ClusterSecurityStore::new(
        Arc::clone(&cluster2),
        Policy {
            super_users: vec![],
            allow_everyone_if_no_acl_found: true,
        },
    );
    let refuse = std::thread::spawn(move || {
        if let Ok(Input::Forward { group, reply, .. }) = inputs2.recv() {
            let _ = reply.send(Err(ReplicationError::NotLeader {
                group,
                leader: None,
            }));
        }
    });
    let err = store2
        .change(SecurityChange::CreateAcls { acls: vec![] })
        .await
        .unwrap_err();
    assert!(
        matches!(err, crate::security::StoreError::NotCommitted(_)),
        "{err}"
    );
    refuse.join().unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    group.join().unwrap();
}

#[test]
fn a_broker_with_a_bootstrap_file_proposes_it_until_the_cluster_has_users_and_acls() {
    let (cluster, inputs) = Cluster::detached(1, peers(3));
    let file = bootstrap_file(
        &["admin"],
        vec![read_acl("User:ANONYMOUS", "alerts", PatternType::Literal)],
    );
    *cluster.bootstrap.lock() = Bootstrap::new(file.clone());
    // No controller known yet: nothing proposed.
    cluster.maybe_bootstrap_security();
    assert!(inputs.try_recv().is_err());
    cluster.view.publish(vec![status(
        METADATA_GROUP.0,
        1,
        Role::Follower,
        Some(3),
        2,
    )]);
    cluster.maybe_bootstrap_security();
    let Ok(Input::Forward { group, records, .. }) = inputs.try_recv() else {
        panic!("nothing proposed");
    };
    assert_eq!(group, METADATA_GROUP);
    let cmd = metadata::decode(records).unwrap().remove(0).1.unwrap();
    assert_eq!(cmd, MetaCommand::security_bootstrap(&file).unwrap());
    // Not again at once; applied, it is not needed any more.
    cluster.maybe_bootstrap_security();
    assert!(inputs.try_recv().is_err());
    cluster.state.lock().apply(&cmd);
    cluster.maybe_bootstrap_security();
    assert!(inputs.try_recv().is_err());
    assert_eq!(
        cluster.state.lock().security.acls,
        file.acls,
        "the file's ACLs are the cluster's"
    );
}
