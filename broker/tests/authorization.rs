//! Authorization with real clients, over plaintext (every client is
//! `User:ANONYMOUS`) and with `allow_everyone_if_no_acl_found: false`:
//!
//! * ACLs seeded before the first start (the offline bootstrap path,
//!   `LocalSecurityStore::change_now` on the data directory), then
//!   librdkafka, kafka-python and raw requests see Kafka's refusals, and a
//!   super user's view afterwards shows that nothing was appended,
//!   committed, created, deleted, altered or moved;
//! * with `super_users: [User:ANONYMOUS]`, confluent-kafka's and
//!   kafka-python's admin clients create, describe and delete ACLs and
//!   (confluent-kafka) alter and describe SCRAM credentials; a restart
//!   without the super user enforces them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use common::{RawClient, TestBroker};
use kafka_protocol::messages::alter_configs_request::{AlterConfigsResource, AlterableConfig};
use kafka_protocol::messages::alter_partition_reassignments_request::{
    ReassignablePartition, ReassignableTopic,
};
use kafka_protocol::messages::alter_user_scram_credentials_request::{
    ScramCredentialDeletion, ScramCredentialUpsertion,
};
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_user_scram_credentials_request::UserName;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource as IncrementalResource, AlterableConfig as IncrementalConfig,
};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_delete_request::{
    OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::{
    AlterConfigsRequest, AlterPartitionReassignmentsRequest, AlterUserScramCredentialsRequest,
    ApiKey, BrokerId, CreateAclsRequest, DeleteRecordsRequest, DescribeAclsRequest,
    DescribeConfigsRequest, DescribeUserScramCredentialsRequest, GroupId,
    IncrementalAlterConfigsRequest, ListPartitionReassignmentsRequest, MetadataRequest,
    OffsetCommitRequest, RequestKind, ResponseKind, TopicName,
};
use kafka_protocol::messages::{
    DeleteAclsRequest, DeleteGroupsRequest, DescribeClusterRequest, DescribeGroupsRequest,
    FindCoordinatorRequest, InitProducerIdRequest, ListGroupsRequest, OffsetDeleteRequest,
    OffsetFetchRequest, ProducerId,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use rdkafka::admin::{
    AdminClient, AdminOptions, AlterConfig, NewPartitions, NewTopic, ResourceSpecifier,
    TopicReplication,
};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::Message;
use starlog_broker::security::{read_state, LocalSecurityStore, SECURITY_FILE};
use starlog_broker::BrokerConfig;
use starlog_security::{
    AclBinding, AclEntry, AclOperation, PatternType, Permission, Principal, ResourcePattern,
    ResourceType, ScramMechanism, SecurityChange,
};

const TIMEOUT: Duration = Duration::from_secs(30);
const TOPIC_REFUSED: i16 = 29;
const GROUP_REFUSED: i16 = 30;
const CLUSTER_REFUSED: i16 = 31;

fn allow(kind: ResourceType, name: &str, pattern: PatternType, op: AclOperation) -> AclBinding {
    AclBinding {
        pattern: ResourcePattern {
            resource_type: kind,
            name: name.into(),
            pattern_type: pattern,
        },
        entry: AclEntry {
            principal: Principal::anonymous(),
            host: "*".into(),
            operation: op,
            permission: Permission::Allow,
        },
    }
}

/// The offline bootstrap: ACLs written to the data directory before the
/// broker has ever started.
fn seed(config: &BrokerConfig, acls: Vec<AclBinding>) {
    let store = LocalSecurityStore::open(&config.data_dir.join("__meta"), config.security.policy())
        .expect("open the security store");
    store
        .change_now(&SecurityChange::CreateAcls { acls })
        .expect("seed ACLs");
}

/// A broker that refuses what no ACL allows; `User:ANONYMOUS` is a super
/// user when `admin`.
async fn secured(acls: Vec<AclBinding>, admin: bool) -> TestBroker {
    TestBroker::start_with(move |c| {
        c.security.allow_everyone_if_no_acl_found = false;
        if admin {
            c.security.super_users = vec![Principal::anonymous()];
        }
        seed(c, acls);
    })
    .await
}

/// Restarts the broker with or without `User:ANONYMOUS` as a super user.
async fn restart_as(broker: &mut TestBroker, admin: bool) {
    broker.config.security.super_users = if admin {
        vec![Principal::anonymous()]
    } else {
        Vec::new()
    };
    broker.restart().await;
}

fn admin_client(bootstrap: &str) -> AdminClient<DefaultClientContext> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin")
}

fn producer(bootstrap: &str, idempotent: bool) -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set(
            "enable.idempotence",
            if idempotent { "true" } else { "false" },
        )
        .set("acks", "all")
        .set("message.timeout.ms", "20000")
        .create()
        .expect("producer")
}

fn consumer(bootstrap: &str, group: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("consumer")
}

/// Sum of the high watermarks of a topic's partitions.
fn end_offsets(c: &BaseConsumer, topic: &str, partitions: i32) -> Vec<i64> {
    (0..partitions)
        .map(|p| c.fetch_watermarks(topic, p, TIMEOUT).expect("watermarks").1)
        .collect()
}

fn metadata_topics(c: &BaseConsumer) -> BTreeSet<String> {
    c.fetch_metadata(None, TIMEOUT)
        .expect("metadata")
        .topics()
        .iter()
        .map(|t| t.name().to_string())
        .collect()
}

/// A librdkafka client context that records the errors it reports.
#[derive(Default)]
struct Recorder {
    errors: std::sync::Mutex<Vec<RDKafkaErrorCode>>,
}

impl Recorder {
    fn seen(&self, code: RDKafkaErrorCode) -> bool {
        self.errors.lock().unwrap().contains(&code)
    }
}

impl ClientContext for Recorder {
    fn error(&self, error: KafkaError, reason: &str) {
        if let Some(code) = error.rdkafka_error_code() {
            self.errors.lock().unwrap().push(code);
        }
        eprintln!("librdkafka error: {error}: {reason}");
    }
}

impl ConsumerContext for Recorder {}

/// Commits `offsets` in `group` with librdkafka and expects the group
/// refused. librdkafka cannot even find the group's coordinator
/// (FindCoordinator answers GROUP_AUTHORIZATION_FAILED, reported as a
/// client error), so the commit itself fails.
fn commit_refused(bootstrap: &str, group: &str, offsets: &TopicPartitionList) {
    let c: BaseConsumer<Recorder> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create_with_context(Recorder::default())
        .expect("consumer");
    let refused = c.commit(offsets, CommitMode::Sync);
    assert!(
        matches!(refused, Err(KafkaError::ConsumerCommit(_))),
        "{group}: {refused:?}"
    );
    // librdkafka hands the error to the context or returns it from poll.
    let deadline = std::time::Instant::now() + TIMEOUT;
    while !c.context().seen(RDKafkaErrorCode::GroupAuthorizationFailed)
        && std::time::Instant::now() < deadline
    {
        if let Some(Err(e)) = c.poll(Duration::from_millis(100)) {
            c.context().error(e, "from poll");
        }
    }
    assert!(
        c.context().seen(RDKafkaErrorCode::GroupAuthorizationFailed),
        "{group}: librdkafka reports GROUP_AUTHORIZATION_FAILED"
    );
}

fn python(args: &[&str]) -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/authorization.py");
    let out = Command::new("python3")
        .arg(script)
        .args(args)
        .output()
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "authorization.py {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

async fn python_async(args: Vec<String>) -> String {
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        python(&args)
    })
    .await
    .expect("join")
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

/// The read-only pattern: ANONYMOUS reads `alerts-*`, writes `own`, uses
/// groups `anon-*`, and nothing else (no cluster rights).
fn read_only_acls() -> Vec<AclBinding> {
    use AclOperation::{Read, Write};
    use PatternType::{Literal, Prefixed};
    vec![
        allow(ResourceType::Topic, "alerts-", Prefixed, Read),
        allow(ResourceType::Topic, "own", Literal, Write),
        allow(ResourceType::Topic, "own", Literal, Read),
        allow(ResourceType::Group, "anon-", Prefixed, Read),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_change_nothing_for_librdkafka_kafka_python_and_raw_requests() {
    let mut broker = secured(read_only_acls(), true).await;
    let bs = broker.bootstrap();

    // As a super user: the topics and some alerts.
    let admin = admin_client(&bs);
    let opts = AdminOptions::new().operation_timeout(Some(TIMEOUT));
    let created = admin
        .create_topics(
            &[
                NewTopic::new("alerts-ztf", 2, TopicReplication::Fixed(1)),
                NewTopic::new("own", 1, TopicReplication::Fixed(1)),
                NewTopic::new("private", 1, TopicReplication::Fixed(1)),
            ],
            &opts,
        )
        .await
        .expect("create topics");
    assert!(created.iter().all(Result::is_ok), "{created:?}");
    let p = producer(&bs, true);
    for i in 0..10 {
        let key = format!("k{i}");
        p.send(
            FutureRecord::to("alerts-ztf")
                .key(&key)
                .payload("alert")
                .partition(i % 2),
            TIMEOUT,
        )
        .await
        .expect("super user produces");
    }
    p.send(
        FutureRecord::<str, str>::to("private").payload("x"),
        TIMEOUT,
    )
    .await
    .expect("super user produces");
    drop(p);
    drop(admin);

    restart_as(&mut broker, false).await;
    let bs = broker.bootstrap();
    let viewer = consumer(&bs, "anon-viewer");
    let before = end_offsets(&viewer, "alerts-ztf", 2);
    assert_eq!(before.iter().sum::<i64>(), 10);

    // Metadata lists only what ANONYMOUS may describe.
    assert_eq!(
        metadata_topics(&viewer),
        BTreeSet::from(["alerts-ztf".to_string(), "own".to_string()])
    );

    // Produce to a read-only topic: refused, nothing appended.
    let p = producer(&bs, false);
    let refused = p
        .send(
            FutureRecord::to("alerts-ztf").key("k").payload("forged"),
            TIMEOUT,
        )
        .await;
    match refused {
        Err((KafkaError::MessageProduction(code), _)) => {
            assert_eq!(code, RDKafkaErrorCode::TopicAuthorizationFailed)
        }
        other => panic!("produce to a read-only topic: {other:?}"),
    }
    assert_eq!(end_offsets(&viewer, "alerts-ztf", 2), before);

    // An idempotent producer gets an id (Write on some topic) and writes `own`.
    let p = producer(&bs, true);
    p.send(FutureRecord::to("own").key("k").payload("mine"), TIMEOUT)
        .await
        .expect("writes its own topic");
    drop(p);

    // Fetch is allowed: all ten alerts, and a commit in an `anon-` group.
    let reader = consumer(&bs, "anon-readers");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("alerts-ztf", 0, Offset::Beginning)
        .unwrap();
    tpl.add_partition_offset("alerts-ztf", 1, Offset::Beginning)
        .unwrap();
    reader.assign(&tpl).expect("assign");
    let mut got = 0;
    let deadline = std::time::Instant::now() + TIMEOUT;
    while got < 10 && std::time::Instant::now() < deadline {
        if let Some(m) = reader.poll(Duration::from_millis(200)) {
            let m = m.expect("fetch allowed");
            assert_eq!(m.payload(), Some(&b"alert"[..]));
            got += 1;
        }
    }
    assert_eq!(got, 10);
    let mut commit = TopicPartitionList::new();
    commit
        .add_partition_offset("alerts-ztf", 0, Offset::Offset(2))
        .unwrap();
    reader
        .commit(&commit, CommitMode::Sync)
        .expect("commit in an allowed group");

    // A commit for a group outside the prefix: refused.
    commit_refused(&bs, "other-group", &commit);
    drop(reader);

    // Admin changes: refused per topic.
    let admin = admin_client(&bs);
    let results = admin
        .delete_topics(&["private"], &opts)
        .await
        .expect("delete topics answered");
    assert_eq!(
        results,
        vec![Err((
            "private".to_string(),
            RDKafkaErrorCode::TopicAuthorizationFailed
        ))]
    );
    let results = admin
        .create_partitions(&[NewPartitions::new("alerts-ztf", 4)], &opts)
        .await
        .expect("create partitions answered");
    assert_eq!(
        results,
        vec![Err((
            "alerts-ztf".to_string(),
            RDKafkaErrorCode::TopicAuthorizationFailed
        ))]
    );
    // rdkafka's alter_configs drops each resource's error code (it answers
    // Ok for every resource), so the refusal is asserted on raw requests
    // below; the super user's view at the end shows nothing was altered.
    admin
        .alter_configs(
            &[
                AlterConfig::new(ResourceSpecifier::Topic("alerts-ztf"))
                    .set("retention.ms", "1000"),
            ],
            &opts,
        )
        .await
        .expect("alter configs answered");
    let results = admin
        .create_topics(
            &[NewTopic::new("alerts-new", 1, TopicReplication::Fixed(1))],
            &opts,
        )
        .await
        .expect("create topics answered");
    assert_eq!(
        results,
        vec![Err((
            "alerts-new".to_string(),
            RDKafkaErrorCode::TopicAuthorizationFailed
        ))]
    );
    drop(admin);

    // Raw requests: reassignment, DeleteRecords, a named and an
    // auto-created topic in Metadata, the ACL and user APIs.
    let mut raw = RawClient::connect(broker.addr()).await;
    let reassign = AlterPartitionReassignmentsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![ReassignableTopic::default()
            .with_name(TopicName(s("alerts-ztf")))
            .with_partitions(vec![ReassignablePartition::default()
                .with_partition_index(0)
                .with_replicas(Some(vec![BrokerId(1)]))])]);
    match raw
        .call(
            RequestKind::AlterPartitionReassignments(reassign),
            ApiKey::AlterPartitionReassignments,
            0,
        )
        .await
    {
        ResponseKind::AlterPartitionReassignments(r) => {
            assert_eq!(r.error_code, CLUSTER_REFUSED);
            assert!(r.responses.is_empty());
        }
        other => panic!("{other:?}"),
    }
    match raw
        .call(
            RequestKind::ListPartitionReassignments(ListPartitionReassignmentsRequest::default()),
            ApiKey::ListPartitionReassignments,
            0,
        )
        .await
    {
        ResponseKind::ListPartitionReassignments(r) => assert_eq!(r.error_code, CLUSTER_REFUSED),
        other => panic!("{other:?}"),
    }
    let delete = DeleteRecordsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![DeleteRecordsTopic::default()
            .with_name(TopicName(s("alerts-ztf")))
            .with_partitions(vec![DeleteRecordsPartition::default()
                .with_partition_index(0)
                .with_offset(-1)])]);
    match raw
        .call(RequestKind::DeleteRecords(delete), ApiKey::DeleteRecords, 2)
        .await
    {
        ResponseKind::DeleteRecords(r) => {
            assert_eq!(r.topics[0].partitions[0].error_code, TOPIC_REFUSED)
        }
        other => panic!("{other:?}"),
    }
    let named = MetadataRequest::default()
        .with_topics(Some(
            ["private", "alerts-ztf", "never-made", "alerts-auto"]
                .iter()
                .map(|t| MetadataRequestTopic::default().with_name(Some(TopicName(s(t)))))
                .collect(),
        ))
        .with_allow_auto_topic_creation(true)
        .with_include_topic_authorized_operations(true);
    match raw
        .call(RequestKind::Metadata(named), ApiKey::Metadata, 9)
        .await
    {
        ResponseKind::Metadata(r) => {
            let codes: Vec<(String, i16, i32)> = r
                .topics
                .iter()
                .map(|t| {
                    (
                        t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default(),
                        t.error_code,
                        t.topic_authorized_operations,
                    )
                })
                .collect();
            // Read (3) and the Describe (8) it implies on `alerts-*`.
            let read_describe = (1 << 3) | (1 << 8);
            assert_eq!(
                codes,
                vec![
                    ("private".into(), TOPIC_REFUSED, i32::MIN),
                    ("alerts-ztf".into(), 0, read_describe),
                    ("never-made".into(), TOPIC_REFUSED, i32::MIN),
                    // Describable (Read on `alerts-*`) but not creatable.
                    ("alerts-auto".into(), TOPIC_REFUSED, i32::MIN),
                ]
            );
        }
        other => panic!("{other:?}"),
    }
    match raw
        .call(
            RequestKind::DescribeAcls(
                DescribeAclsRequest::default()
                    .with_resource_name_filter(None)
                    .with_principal_filter(None)
                    .with_host_filter(None)
                    .with_resource_type_filter(1)
                    .with_pattern_type_filter(1)
                    .with_operation(1)
                    .with_permission_type(1),
            ),
            ApiKey::DescribeAcls,
            1,
        )
        .await
    {
        ResponseKind::DescribeAcls(r) => {
            assert_eq!(r.error_code, CLUSTER_REFUSED);
            assert!(r.resources.is_empty(), "no ACL shown to a refused client");
        }
        other => panic!("{other:?}"),
    }
    match raw
        .call(
            RequestKind::CreateAcls(CreateAclsRequest::default().with_creations(vec![
                AclCreation::default()
                    .with_resource_type(2)
                    .with_resource_name(s("private"))
                    .with_resource_pattern_type(3)
                    .with_principal(s("User:ANONYMOUS"))
                    .with_host(s("*"))
                    .with_operation(2)
                    .with_permission_type(3),
            ])),
            ApiKey::CreateAcls,
            1,
        )
        .await
    {
        ResponseKind::CreateAcls(r) => assert_eq!(r.results[0].error_code, CLUSTER_REFUSED),
        other => panic!("{other:?}"),
    }
    // Configs: Read on a topic implies neither DescribeConfigs nor
    // AlterConfigs; the broker's own need the cluster's.
    let alter =
        AlterConfigsRequest::default().with_resources(vec![AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(s("alerts-ztf"))
            .with_configs(vec![AlterableConfig::default()
                .with_name(s("retention.ms"))
                .with_value(Some(s("1000")))])]);
    match raw
        .call(RequestKind::AlterConfigs(alter), ApiKey::AlterConfigs, 1)
        .await
    {
        ResponseKind::AlterConfigs(r) => assert_eq!(r.responses[0].error_code, TOPIC_REFUSED),
        other => panic!("{other:?}"),
    }
    let incremental = IncrementalAlterConfigsRequest::default().with_resources(vec![
        IncrementalResource::default()
            .with_resource_type(2)
            .with_resource_name(s("alerts-ztf"))
            .with_configs(vec![IncrementalConfig::default()
                .with_name(s("retention.ms"))
                .with_config_operation(0)
                .with_value(Some(s("1000")))]),
        IncrementalResource::default()
            .with_resource_type(4)
            .with_resource_name(s("1")),
    ]);
    match raw
        .call(
            RequestKind::IncrementalAlterConfigs(incremental),
            ApiKey::IncrementalAlterConfigs,
            1,
        )
        .await
    {
        ResponseKind::IncrementalAlterConfigs(r) => {
            let codes: Vec<i16> = r.responses.iter().map(|r| r.error_code).collect();
            assert_eq!(codes, vec![TOPIC_REFUSED, CLUSTER_REFUSED]);
        }
        other => panic!("{other:?}"),
    }
    let describe = DescribeConfigsRequest::default().with_resources(vec![
        DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(s("alerts-ztf"))
            .with_configuration_keys(None),
        DescribeConfigsResource::default()
            .with_resource_type(4)
            .with_resource_name(s("1"))
            .with_configuration_keys(None),
    ]);
    match raw
        .call(
            RequestKind::DescribeConfigs(describe),
            ApiKey::DescribeConfigs,
            4,
        )
        .await
    {
        ResponseKind::DescribeConfigs(r) => {
            let codes: Vec<(i16, usize)> = r
                .results
                .iter()
                .map(|r| (r.error_code, r.configs.len()))
                .collect();
            assert_eq!(codes, vec![(TOPIC_REFUSED, 0), (CLUSTER_REFUSED, 0)]);
        }
        other => panic!("{other:?}"),
    }

    // OffsetCommit itself: a group outside the prefix, and an allowed group
    // with a topic ANONYMOUS may not read.
    for (group, topic, code) in [
        ("other-group", "alerts-ztf", GROUP_REFUSED),
        ("anon-raw", "private", TOPIC_REFUSED),
    ] {
        let commit = OffsetCommitRequest::default()
            .with_group_id(GroupId(s(group)))
            .with_generation_id_or_member_epoch(-1)
            .with_topics(vec![OffsetCommitRequestTopic::default()
                .with_name(TopicName(s(topic)))
                .with_partitions(vec![OffsetCommitRequestPartition::default()
                    .with_partition_index(0)
                    .with_committed_offset(1)])]);
        match raw
            .call(RequestKind::OffsetCommit(commit), ApiKey::OffsetCommit, 8)
            .await
        {
            ResponseKind::OffsetCommit(r) => {
                assert_eq!(r.topics.len(), 1);
                assert_eq!(r.topics[0].name.0.as_str(), topic);
                assert_eq!(
                    r.topics[0].partitions[0].error_code, code,
                    "{group}/{topic}"
                );
            }
            other => panic!("{other:?}"),
        }
    }
    drop(raw);

    // kafka-python sees the same refusals.
    let out = python_async(vec!["enforced".into(), bs.clone()]).await;
    assert!(out.contains("authorization ok: enforced"), "{out}");

    // A super user's view: nothing appended, committed, created, deleted,
    // altered or moved.
    restart_as(&mut broker, true).await;
    let bs = broker.bootstrap();
    let viewer = consumer(&bs, "anon-viewer");
    assert_eq!(end_offsets(&viewer, "alerts-ztf", 2), before);
    assert_eq!(end_offsets(&viewer, "own", 1), vec![1]);
    assert_eq!(end_offsets(&viewer, "private", 1), vec![1]);
    let md = viewer.fetch_metadata(None, TIMEOUT).expect("metadata");
    let names: BTreeSet<String> = md.topics().iter().map(|t| t.name().to_string()).collect();
    assert_eq!(
        names,
        BTreeSet::from(["alerts-ztf".into(), "own".into(), "private".into()]),
        "nothing created or deleted"
    );
    let partitions = md
        .topics()
        .iter()
        .find(|t| t.name() == "alerts-ztf")
        .map(|t| t.partitions().len());
    assert_eq!(partitions, Some(2), "no partition added");
    let low = viewer
        .fetch_watermarks("alerts-ztf", 0, TIMEOUT)
        .expect("watermarks")
        .0;
    assert_eq!(low, 0, "no record deleted");
    let admin = admin_client(&bs);
    let configs = admin
        .describe_configs(&[ResourceSpecifier::Topic("alerts-ztf")], &opts)
        .await
        .expect("describe configs");
    let retention = configs[0]
        .as_ref()
        .expect("described")
        .get("retention.ms")
        .and_then(|e| e.value.clone());
    assert_ne!(retention.as_deref(), Some("1000"), "config not altered");
    for group in ["other-group", "py-other", "anon-raw"] {
        let c = consumer(&bs, group);
        let mut asked = TopicPartitionList::new();
        asked.add_partition("alerts-ztf", 0);
        let committed = c.committed_offsets(asked, TIMEOUT).expect("offset fetch");
        assert_eq!(
            committed.elements()[0].offset(),
            Offset::Invalid,
            "{group}: nothing committed"
        );
    }
    let c = consumer(&bs, "anon-readers");
    let mut asked = TopicPartitionList::new();
    asked.add_partition("alerts-ztf", 0);
    let committed = c.committed_offsets(asked, TIMEOUT).expect("offset fetch");
    assert_eq!(committed.elements()[0].offset(), Offset::Offset(2));
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_clients_manage_acls_and_users_and_a_restart_enforces_them() {
    let mut broker = secured(Vec::new(), true).await;
    let bs = broker.bootstrap();
    let admin = admin_client(&bs);
    let opts = AdminOptions::new().operation_timeout(Some(TIMEOUT));
    let created = admin
        .create_topics(
            &[
                NewTopic::new("granted", 1, TopicReplication::Fixed(1)),
                NewTopic::new("hidden", 1, TopicReplication::Fixed(1)),
            ],
            &opts,
        )
        .await
        .expect("create topics");
    assert!(created.iter().all(Result::is_ok), "{created:?}");
    drop(admin);

    // confluent-kafka: ACLs and SCRAM users; kafka-python: ACLs.
    let out = python_async(vec!["confluent-admin".into(), bs.clone()]).await;
    assert!(out.contains("authorization ok: confluent-admin"), "{out}");
    let out = python_async(vec!["kafka-python-admin".into(), bs.clone()]).await;
    assert!(
        out.contains("authorization ok: kafka-python-admin"),
        "{out}"
    );

    // Stored as Kafka stores them: salted and hashed, the password nowhere.
    let file = broker.config.data_dir.join("__meta").join(SECURITY_FILE);
    let text = std::fs::read_to_string(&file).expect("security file");
    assert!(!text.contains("alice-secret"));
    let state = read_state(&file).expect("state");
    let alice = state
        .credential("alice", ScramMechanism::Sha512)
        .expect("alice's SCRAM-SHA-512 credential");
    assert_eq!(alice.iterations, 8192);
    assert!(alice.verify_password("alice-secret"));
    assert!(!alice.verify_password("alice-secreT"));
    assert!(state.credential("bob", ScramMechanism::Sha256).is_none());

    // Without the super user, the ACLs made through the admin clients rule.
    restart_as(&mut broker, false).await;
    let bs = broker.bootstrap();
    let c = consumer(&bs, "fink-1");
    assert_eq!(
        metadata_topics(&c),
        BTreeSet::from(["granted".to_string()]),
        "Read on `granted` only (the Write on `hidden` was deleted)"
    );
    drop(c);
    let mut raw = RawClient::connect(broker.addr()).await;
    // Describe on the cluster was granted: users and ACLs can be read ...
    match raw
        .call(
            RequestKind::DescribeUserScramCredentials(
                DescribeUserScramCredentialsRequest::default()
                    .with_users(Some(vec![UserName::default().with_name(s("alice"))])),
            ),
            ApiKey::DescribeUserScramCredentials,
            0,
        )
        .await
    {
        ResponseKind::DescribeUserScramCredentials(r) => {
            assert_eq!(r.error_code, 0);
            assert_eq!(r.results.len(), 1);
            assert_eq!(r.results[0].error_code, 0);
            let infos: Vec<(i8, i32)> = r.results[0]
                .credential_infos
                .iter()
                .map(|i| (i.mechanism, i.iterations))
                .collect();
            assert_eq!(infos, vec![(2, 8192)]);
        }
        other => panic!("{other:?}"),
    }
    match raw
        .call(
            RequestKind::DescribeAcls(
                DescribeAclsRequest::default()
                    .with_resource_name_filter(None)
                    .with_principal_filter(None)
                    .with_host_filter(None)
                    .with_resource_type_filter(1)
                    .with_pattern_type_filter(1)
                    .with_operation(1)
                    .with_permission_type(1),
            ),
            ApiKey::DescribeAcls,
            2,
        )
        .await
    {
        ResponseKind::DescribeAcls(r) => {
            assert_eq!(r.error_code, 0, "{:?}", r.error_message);
            let names: BTreeSet<String> = r
                .resources
                .iter()
                .map(|r| r.resource_name.to_string())
                .collect();
            assert_eq!(
                names,
                BTreeSet::from([
                    "granted".to_string(),
                    "kafka-cluster".to_string(),
                    "fink-".to_string(),
                    "py-group".to_string(),
                ])
            );
        }
        other => panic!("{other:?}"),
    }
    // ... but not changed (no Alter on the cluster).
    match raw
        .call(
            RequestKind::AlterUserScramCredentials(
                AlterUserScramCredentialsRequest::default().with_deletions(vec![
                    ScramCredentialDeletion::default()
                        .with_name(s("alice"))
                        .with_mechanism(2),
                ]),
            ),
            ApiKey::AlterUserScramCredentials,
            0,
        )
        .await
    {
        ResponseKind::AlterUserScramCredentials(r) => {
            assert_eq!(r.results.len(), 1);
            assert_eq!(r.results[0].error_code, CLUSTER_REFUSED);
        }
        other => panic!("{other:?}"),
    }
    drop(raw);
    let state = read_state(&file).expect("state");
    assert!(
        state.credential("alice", ScramMechanism::Sha512).is_some(),
        "a refused deletion deletes nothing"
    );

    // The group ACL made by confluent-kafka (`User:*` reads `fink-*`) lets a
    // commit through; a group outside it is refused.
    let mut commit = TopicPartitionList::new();
    commit
        .add_partition_offset("granted", 0, Offset::Offset(0))
        .unwrap();
    consumer(&bs, "fink-1")
        .commit(&commit, CommitMode::Sync)
        .expect("commit in fink-*");
    commit_refused(&bs, "boom-1", &commit);
    broker.stop().await;
}

/// One raw call, its response of the expected kind.
macro_rules! call {
    ($raw:expr, $kind:ident, $req:expr, $version:expr) => {
        match $raw
            .call(RequestKind::$kind($req), ApiKey::$kind, $version)
            .await
        {
            ResponseKind::$kind(r) => r,
            other => panic!("{other:?}"),
        }
    };
}

fn commit_request(group: &str, offsets: &[(&str, i64)]) -> OffsetCommitRequest {
    OffsetCommitRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(
            offsets
                .iter()
                .map(|(topic, offset)| {
                    OffsetCommitRequestTopic::default()
                        .with_name(TopicName(s(topic)))
                        .with_partitions(vec![OffsetCommitRequestPartition::default()
                            .with_partition_index(0)
                            .with_committed_offset(*offset)])
                })
                .collect(),
        )
}

fn upsertion(user: &str, mechanism: i8, iterations: i32) -> ScramCredentialUpsertion {
    ScramCredentialUpsertion::default()
        .with_name(s(user))
        .with_mechanism(mechanism)
        .with_iterations(iterations)
        .with_salt(bytes::Bytes::from_static(b"0123456789abcdef"))
        .with_salted_password(bytes::Bytes::from(vec![7u8; 64]))
}

/// The per-item answers of the group, coordinator, producer-id, cluster,
/// ACL and user APIs, as Kafka gives them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_item_is_answered_as_kafka_answers_it() {
    use AclOperation::Read;
    use PatternType::Prefixed;
    let mut broker = secured(
        vec![
            allow(ResourceType::Topic, "alerts-", Prefixed, Read),
            allow(ResourceType::Group, "anon-", Prefixed, Read),
        ],
        true,
    )
    .await;
    let admin = admin_client(&broker.bootstrap());
    let opts = AdminOptions::new().operation_timeout(Some(TIMEOUT));
    let created = admin
        .create_topics(
            &[
                NewTopic::new("alerts-ztf", 1, TopicReplication::Fixed(1)),
                NewTopic::new("private", 1, TopicReplication::Fixed(1)),
            ],
            &opts,
        )
        .await
        .expect("create topics");
    assert!(created.iter().all(Result::is_ok), "{created:?}");
    drop(admin);

    // As a super user: offsets (a commit at an offset past the end is
    // accepted, as Kafka does), and the user and ACL APIs' own errors.
    let mut raw = RawClient::connect(broker.addr()).await;
    for (group, offsets) in [
        ("anon-g", &[("alerts-ztf", 3), ("private", 1)][..]),
        ("secret-g", &[("alerts-ztf", 2)][..]),
    ] {
        let r = call!(raw, OffsetCommit, commit_request(group, offsets), 8);
        assert!(
            r.topics.iter().all(|t| t.partitions[0].error_code == 0),
            "{r:?}"
        );
    }
    let alter = AlterUserScramCredentialsRequest::default()
        .with_upsertions(vec![
            upsertion("eve", 2, 4096),
            upsertion("eve", 1, 4096),
            upsertion("frank", 7, 4096),
            upsertion("", 2, 4096),
            upsertion("gina", 2, 10_000_000),
            upsertion("gina-low", 2, 100),
            upsertion("hank", 2, 4096),
        ])
        .with_deletions(vec![ScramCredentialDeletion::default()
            .with_name(s("ivy"))
            .with_mechanism(2)]);
    let r = call!(raw, AlterUserScramCredentials, alter, 0);
    let got: Vec<(String, i16)> = r
        .results
        .iter()
        .map(|r| (r.user.to_string(), r.error_code))
        .collect();
    assert_eq!(
        got,
        vec![
            ("ivy".into(), ResponseError::ResourceNotFound.code()),
            ("eve".into(), ResponseError::DuplicateResource.code()),
            (
                "frank".into(),
                ResponseError::UnsupportedSaslMechanism.code()
            ),
            ("".into(), ResponseError::UnacceptableCredential.code()),
            ("gina".into(), ResponseError::UnacceptableCredential.code()),
            (
                "gina-low".into(),
                ResponseError::UnacceptableCredential.code()
            ),
            ("hank".into(), 0),
        ]
    );
    let describe = DescribeUserScramCredentialsRequest::default().with_users(Some(
        ["hank", "hank", "nobody"]
            .iter()
            .map(|u| UserName::default().with_name(s(u)))
            .collect(),
    ));
    let r = call!(raw, DescribeUserScramCredentials, describe, 0);
    let got: Vec<(String, i16)> = r
        .results
        .iter()
        .map(|r| (r.user.to_string(), r.error_code))
        .collect();
    assert_eq!(
        got,
        vec![
            ("hank".into(), ResponseError::DuplicateResource.code()),
            ("nobody".into(), ResponseError::ResourceNotFound.code()),
        ]
    );
    let r = call!(
        raw,
        DescribeUserScramCredentials,
        DescribeUserScramCredentialsRequest::default().with_users(None),
        0
    );
    let users: Vec<String> = r.results.iter().map(|r| r.user.to_string()).collect();
    assert_eq!(
        users,
        vec!["hank".to_string()],
        "refused users stored nothing"
    );
    let creation = |name: &str| {
        AclCreation::default()
            .with_resource_type(4)
            .with_resource_name(s(name))
            .with_resource_pattern_type(3)
            .with_principal(s("User:ops"))
            .with_host(s("*"))
            .with_operation(8)
            .with_permission_type(3)
    };
    let r = call!(
        raw,
        CreateAcls,
        CreateAclsRequest::default()
            .with_creations(vec![creation("not-the-cluster"), creation("kafka-cluster")]),
        1
    );
    let codes: Vec<i16> = r.results.iter().map(|r| r.error_code).collect();
    assert_eq!(codes, vec![ResponseError::InvalidRequest.code(), 0]);
    let r = call!(
        raw,
        DeleteAcls,
        DeleteAclsRequest::default().with_filters(vec![DeleteAclsFilter::default()
            .with_resource_type_filter(4)
            .with_resource_name_filter(None)
            .with_pattern_type_filter(1)
            .with_principal_filter(Some(s("User:ops")))
            .with_host_filter(None)
            .with_operation(1)
            .with_permission_type(1)]),
        1
    );
    assert_eq!(r.filter_results[0].error_code, 0);
    assert_eq!(r.filter_results[0].matching_acls.len(), 1);
    drop(raw);

    restart_as(&mut broker, false).await;
    let mut raw = RawClient::connect(broker.addr()).await;

    // FindCoordinator: Describe on the group; transactional ids refused.
    let r = call!(
        raw,
        FindCoordinator,
        FindCoordinatorRequest::default().with_key(s("secret-g")),
        3
    );
    assert_eq!(r.error_code, ResponseError::GroupAuthorizationFailed.code());
    let r = call!(
        raw,
        FindCoordinator,
        FindCoordinatorRequest::default().with_coordinator_keys(vec![s("anon-g"), s("secret-g")]),
        4
    );
    let codes: Vec<i16> = r.coordinators.iter().map(|c| c.error_code).collect();
    assert_eq!(
        codes,
        vec![0, ResponseError::GroupAuthorizationFailed.code()]
    );
    let r = call!(
        raw,
        FindCoordinator,
        FindCoordinatorRequest::default()
            .with_key_type(1)
            .with_key(s("txn")),
        3
    );
    assert_eq!(
        r.error_code,
        ResponseError::TransactionalIdAuthorizationFailed.code()
    );

    // InitProducerId: no IdempotentWrite on the cluster, no Write anywhere.
    let r = call!(
        raw,
        InitProducerId,
        InitProducerIdRequest::default()
            .with_transactional_id(None)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1),
        4
    );
    assert_eq!(
        r.error_code,
        ResponseError::ClusterAuthorizationFailed.code()
    );
    assert_eq!(r.producer_id.0, -1);

    // DescribeCluster answers; its authorized operations need Describe.
    let r = call!(
        raw,
        DescribeCluster,
        DescribeClusterRequest::default().with_include_cluster_authorized_operations(true),
        0
    );
    assert_eq!(r.error_code, 0);
    assert_eq!(r.cluster_authorized_operations, 0);

    // ListGroups: only the describable; DescribeGroups / DeleteGroups per group.
    let r = call!(raw, ListGroups, ListGroupsRequest::default(), 4);
    let groups: Vec<String> = r.groups.iter().map(|g| g.group_id.to_string()).collect();
    assert_eq!(groups, vec!["anon-g".to_string()]);
    let r = call!(
        raw,
        DescribeGroups,
        DescribeGroupsRequest::default()
            .with_groups(vec![GroupId(s("secret-g")), GroupId(s("anon-g"))])
            .with_include_authorized_operations(true),
        5
    );
    let got: Vec<(String, i16, i32)> = r
        .groups
        .iter()
        .map(|g| {
            (
                g.group_id.to_string(),
                g.error_code,
                g.authorized_operations,
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (
                "secret-g".into(),
                ResponseError::GroupAuthorizationFailed.code(),
                i32::MIN
            ),
            // Read (3) and the Describe (8) it implies; no Delete (6).
            ("anon-g".into(), 0, (1 << 3) | (1 << 8)),
        ]
    );
    let r = call!(
        raw,
        DeleteGroups,
        DeleteGroupsRequest::default()
            .with_groups_names(vec![GroupId(s("secret-g")), GroupId(s("anon-g"))]),
        2
    );
    let codes: Vec<i16> = r.results.iter().map(|g| g.error_code).collect();
    assert_eq!(
        codes,
        vec![ResponseError::GroupAuthorizationFailed.code(); 2]
    );
    let r = call!(
        raw,
        OffsetDelete,
        OffsetDeleteRequest::default()
            .with_group_id(GroupId(s("anon-g")))
            .with_topics(vec![OffsetDeleteRequestTopic::default()
                .with_name(TopicName(s("alerts-ztf")))
                .with_partitions(vec![
                    OffsetDeleteRequestPartition::default().with_partition_index(0)
                ])]),
        0
    );
    assert_eq!(r.error_code, ResponseError::GroupAuthorizationFailed.code());

    // OffsetFetch, one group (v5, v1) and several (v8).
    let r = call!(
        raw,
        OffsetFetch,
        OffsetFetchRequest::default()
            .with_group_id(GroupId(s("anon-g")))
            .with_topics(None),
        5
    );
    let got: Vec<(String, i64)> = r
        .topics
        .iter()
        .map(|t| (t.name.to_string(), t.partitions[0].committed_offset))
        .collect();
    assert_eq!(got, vec![("alerts-ztf".into(), 3)], "private left out");
    let r = call!(
        raw,
        OffsetFetch,
        OffsetFetchRequest::default()
            .with_group_id(GroupId(s("secret-g")))
            .with_topics(Some(vec![OffsetFetchRequestTopic::default()
                .with_name(TopicName(s("alerts-ztf")))
                .with_partition_indexes(vec![0])])),
        1
    );
    assert_eq!(
        r.topics[0].partitions[0].error_code,
        ResponseError::GroupAuthorizationFailed.code()
    );
    let named = Some(
        ["private", "alerts-ztf"]
            .iter()
            .map(|t| {
                OffsetFetchRequestTopics::default()
                    .with_name(TopicName(s(t)))
                    .with_partition_indexes(vec![0])
            })
            .collect(),
    );
    let r = call!(
        raw,
        OffsetFetch,
        OffsetFetchRequest::default().with_groups(vec![
            OffsetFetchRequestGroup::default()
                .with_group_id(GroupId(s("anon-g")))
                .with_topics(None),
            OffsetFetchRequestGroup::default()
                .with_group_id(GroupId(s("secret-g")))
                .with_topics(None),
            OffsetFetchRequestGroup::default()
                .with_group_id(GroupId(s("anon-g")))
                .with_topics(named),
        ]),
        8
    );
    /// Per topic: name, error, committed offset of partition 0.
    type Topics = Vec<(String, i16, i64)>;
    let got: Vec<(String, i16, Topics)> = r
        .groups
        .iter()
        .map(|g| {
            (
                g.group_id.to_string(),
                g.error_code,
                g.topics
                    .iter()
                    .map(|t| {
                        (
                            t.name.to_string(),
                            t.partitions[0].error_code,
                            t.partitions[0].committed_offset,
                        )
                    })
                    .collect(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("anon-g".into(), 0, vec![("alerts-ztf".into(), 0, 3)]),
            (
                "secret-g".into(),
                ResponseError::GroupAuthorizationFailed.code(),
                vec![]
            ),
            (
                "anon-g".into(),
                0,
                vec![
                    (
                        "private".into(),
                        ResponseError::TopicAuthorizationFailed.code(),
                        -1
                    ),
                    ("alerts-ztf".into(), 0, 3),
                ]
            ),
        ]
    );

    // Metadata v0, every topic: only the describable one.
    let r = call!(
        raw,
        Metadata,
        MetadataRequest::default().with_topics(Some(Vec::new())),
        0
    );
    let names: Vec<String> = r
        .topics
        .iter()
        .map(|t| t.name.as_ref().map(|n| n.to_string()).unwrap_or_default())
        .collect();
    assert_eq!(names, vec!["alerts-ztf".to_string()]);
    drop(raw);

    // The refused DeleteGroups and OffsetDelete deleted nothing.
    restart_as(&mut broker, true).await;
    let mut raw = RawClient::connect(broker.addr()).await;
    for (group, offset) in [("secret-g", 2), ("anon-g", 3)] {
        let r = call!(
            raw,
            OffsetFetch,
            OffsetFetchRequest::default()
                .with_group_id(GroupId(s(group)))
                .with_topics(Some(vec![OffsetFetchRequestTopic::default()
                    .with_name(TopicName(s("alerts-ztf")))
                    .with_partition_indexes(vec![0])])),
            5
        );
        assert_eq!(
            r.topics[0].partitions[0].committed_offset, offset,
            "{group}"
        );
    }
    broker.stop().await;
}
