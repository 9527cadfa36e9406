//! Users and ACLs in a 3-process cluster: written with `starlog acls add` /
//! `starlog users set --config` into broker 1's data directory before the
//! cluster first starts, proposed to the metadata group, applied by every
//! broker (brokers 2 and 3 never had the file) and enforced by each of them
//! on its plaintext listener, where every client is `User:ANONYMOUS` and no
//! ACL means no (`allow_everyone_if_no_acl_found: false`): each broker lists
//! only the topics the ACLs let it describe, and a produce to the read-only
//! topic is refused by each partition's leader with nothing stored; all of
//! it still so after `kill -9` of the three.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/cli.rs"]
mod cli;

use std::collections::BTreeSet;

use std::sync::Arc;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord};
use starlog_testkit::cluster::{ClusterSpec, Node, NodeHook, SpawnedCluster};

const BIN: &str = env!("CARGO_BIN_EXE_starlog");

/// The ACLs broker 1's file holds, as `/cluster/status` prints them.
/// (Describe on the cluster lets the harness read `/cluster/status`
/// anonymously.)
const ACLS: [&str; 6] = [
    "Allow User:ANONYMOUS Read on Topic:Literal:alerts from *",
    "Allow User:ANONYMOUS Describe on Topic:Literal:alerts from *",
    "Allow User:ANONYMOUS Write on Topic:Literal:open from *",
    "Allow User:ANONYMOUS Describe on Topic:Literal:open from *",
    "Allow User:ANONYMOUS Create on Cluster:Literal:kafka-cluster from *",
    "Allow User:ANONYMOUS Describe on Cluster:Literal:kafka-cluster from *",
];

/// `starlog ARGS --config node.yaml` with `stdin`; its error when it fails.
fn cli(node: &Node, args: &[&str], stdin: &str) -> Result<(), String> {
    let config = node.config.display().to_string();
    let mut all = args.to_vec();
    all.extend(["--config", &config]);
    cli::starlog(&all, stdin).map(|_| ())
}

/// Broker 1's users and ACLs, written offline before its first start.
fn bootstrap(node: &Node) -> Result<(), String> {
    if node.id != 1 {
        return Ok(());
    }
    let anon = "User:ANONYMOUS";
    cli(
        node,
        &[
            "acls",
            "add",
            "--allow-principal",
            anon,
            "--operation",
            "Read",
            "--operation",
            "Describe",
            "--topic",
            "alerts",
        ],
        "",
    )?;
    cli(
        node,
        &[
            "acls",
            "add",
            "--allow-principal",
            anon,
            "--operation",
            "Write",
            "--operation",
            "Describe",
            "--topic",
            "open",
        ],
        "",
    )?;
    cli(
        node,
        &[
            "acls",
            "add",
            "--allow-principal",
            anon,
            "--operation",
            "Create",
            "--operation",
            "Describe",
            "--cluster",
        ],
        "",
    )?;
    cli(
        node,
        &["users", "set", "admin", "--password-stdin"],
        "admin-secret\n",
    )
}

fn start() -> SpawnedCluster {
    let mut spec = ClusterSpec::new("cluster-security", 3, BIN);
    spec.ready_timeout = Duration::from_secs(30);
    spec.extra_yaml = "security: { allow_everyone_if_no_acl_found: false }\n".into();
    spec.node_log = "warn,starlog_broker=info".into();
    spec.before_first_start = Some(NodeHook(Arc::new(bootstrap)));
    SpawnedCluster::start(spec).unwrap_or_else(|e| panic!("{e}"))
}

/// Waits until every broker has applied the bootstrap users and ACLs.
fn wait_replicated(c: &SpawnedCluster) {
    let want: BTreeSet<String> = ACLS.iter().map(|s| (*s).to_string()).collect();
    c.wait_until(Duration::from_secs(30), "every broker has the ACLs", |c| {
        c.ids().into_iter().all(|id| {
            c.status(id).is_ok_and(|s| {
                s.security.acls.iter().cloned().collect::<BTreeSet<_>>() == want
                    && s.security.users == vec!["admin (SCRAM-SHA-512)".to_string()]
            })
        })
    })
    .unwrap_or_else(|e| panic!("{e}"));
}

fn producer(bootstrap: &str) -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("message.timeout.ms", "20000")
        .set("request.timeout.ms", "5000")
        .set("topic.metadata.refresh.interval.ms", "1000")
        .create()
        .expect("producer")
}

/// Sends one record to `topic`/`partition` through `bootstrap`: its offset,
/// or the error.
async fn send(bootstrap: &str, topic: &str, partition: i32) -> Result<i64, KafkaError> {
    let p = producer(bootstrap);
    p.send(
        FutureRecord::to(topic)
            .partition(partition)
            .key("k")
            .payload("v"),
        Duration::from_secs(20),
    )
    .await
    .map(|d| d.offset)
    .map_err(|(e, _)| e)
}

/// The leader of each partition of `topic`, as broker 1 reports it.
fn leaders(c: &SpawnedCluster, topic: &str, partitions: i32) -> Vec<Option<i32>> {
    (0..partitions)
        .map(|p| c.leader_of(topic, p).map(|(id, _)| id))
        .collect()
}

/// Each partition's high watermark on every broker hosting it.
fn high_watermarks(c: &SpawnedCluster, topic: &str) -> Vec<i64> {
    c.ids()
        .into_iter()
        .filter_map(|id| c.status(id).ok())
        .flat_map(|s| {
            s.groups
                .into_iter()
                .filter(|g| g.topic == topic)
                .map(|g| g.high_watermark)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The topics broker `id` lists to an anonymous client (Metadata, answered
/// by that broker).
fn listed_by(c: &SpawnedCluster, id: i32) -> BTreeSet<String> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set(
            "bootstrap.servers",
            format!("127.0.0.1:{}", c.node(id).unwrap().kafka),
        )
        .create()
        .unwrap();
    let md = consumer
        .fetch_metadata(None, Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("metadata from broker {id}: {e}"));
    md.topics().iter().map(|t| t.name().to_string()).collect()
}

/// Every broker lists only the topics the ACLs let anonymous clients
/// describe; every partition of the read-only topic refuses a produce
/// (with `distinct`, each led by another broker), nothing is stored; the
/// writable one takes it.
async fn check_enforced(c: &SpawnedCluster, distinct: bool) {
    for id in c.ids() {
        let listed = listed_by(c, id);
        assert_eq!(
            listed,
            BTreeSet::from(["alerts".to_string(), "open".to_string()]),
            "broker {id} lists"
        );
    }
    let what = if distinct {
        "alerts' three partitions have three different leaders"
    } else {
        "alerts' three partitions have leaders"
    };
    c.wait_until(Duration::from_secs(30), what, |c| {
        let l = leaders(c, "alerts", 3);
        l.iter().all(Option::is_some) && (!distinct || l.iter().collect::<BTreeSet<_>>().len() == 3)
    })
    .unwrap_or_else(|e| panic!("{e}"));
    for partition in 0..3 {
        for id in c.ids() {
            let bootstrap = format!("127.0.0.1:{}", c.node(id).unwrap().kafka);
            let r = send(&bootstrap, "alerts", partition).await;
            assert!(
                matches!(
                    r,
                    Err(KafkaError::MessageProduction(
                        RDKafkaErrorCode::TopicAuthorizationFailed
                    ))
                ),
                "a produce to alerts-{partition} through broker {id} (leader {:?}) was not refused: {r:?}",
                c.leader_of("alerts", partition)
            );
        }
    }
    let hws = high_watermarks(c, "alerts");
    assert_eq!(hws.len(), 9, "three replicas of three partitions: {hws:?}");
    assert!(hws.iter().all(|&h| h == 0), "something was stored: {hws:?}");
    for id in c.ids() {
        let bootstrap = format!("127.0.0.1:{}", c.node(id).unwrap().kafka);
        let offset = send(&bootstrap, "open", 0).await;
        assert!(offset.is_ok(), "open through broker {id}: {offset:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acls_written_before_the_first_start_are_replicated_enforced_and_survive_kill_9() {
    let mut c = start();
    wait_replicated(&c);
    // Brokers 2 and 3 had no file: they got the users and ACLs from the
    // metadata log.
    for id in [2, 3] {
        let file = c.node(id).unwrap().data.join("__meta/security.json");
        assert!(!file.exists(), "{} exists", file.display());
    }

    // Create on the cluster is allowed: the topics are made anonymously.
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", c.bootstrap())
        .create()
        .unwrap();
    let topics = [
        NewTopic::new("alerts", 3, TopicReplication::Fixed(3)),
        NewTopic::new("open", 1, TopicReplication::Fixed(3)),
        // No ACL names it: nobody but a super user may see it.
        NewTopic::new("hidden", 1, TopicReplication::Fixed(3)),
    ];
    let created = admin
        .create_topics(
            &topics,
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(20))),
        )
        .await
        .unwrap();
    for r in created {
        assert!(r.is_ok(), "{r:?}");
    }
    c.wait_until(Duration::from_secs(30), "hidden is replicated", |c| {
        c.ids().into_iter().all(|id| {
            c.status(id)
                .is_ok_and(|s| s.groups.iter().any(|g| g.topic == "hidden"))
        })
    })
    .unwrap_or_else(|e| panic!("{e}"));
    check_enforced(&c, true).await;

    // kill -9 of all three, and back.
    for id in c.ids() {
        c.kill9(id).unwrap_or_else(|e| panic!("{e}"));
    }
    for id in c.ids() {
        c.spawn(id).unwrap_or_else(|e| panic!("{e}"));
    }
    c.wait_until(Duration::from_secs(30), "a controller again", |c| {
        c.ids()
            .into_iter()
            .all(|id| c.status(id).is_ok_and(|s| s.controller.is_some()))
    })
    .unwrap_or_else(|e| panic!("{e}"));
    wait_replicated(&c);
    check_enforced(&c, false).await;
    c.stop().unwrap_or_else(|e| panic!("{e}"));
}
