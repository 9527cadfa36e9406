//! Users and ACLs in a 3-broker TLS cluster: brokers replicate over mutual
//! TLS under the cluster CA and their clients log in with SCRAM-SHA-512 over
//! SASL_SSL. The administrator is set offline on broker 1 before the first
//! start; logged in on broker 2, it creates a user and its ACLs online
//! (`starlog users set` / `starlog acls add --bootstrap-server`, through
//! Kafka's AlterUserScramCredentials and CreateAcls); broker 3 lets that
//! user log in and read, and every broker refuses its writes; after
//! `kill -9` of all three, the user, its password and its ACLs still hold.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/cli.rs"]
mod cli;

use std::path::Path;

use std::sync::Arc;
use std::time::Duration;

use cli::starlog;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::Message;
use starlog_testkit::cluster::{ClusterSpec, NodeHook, SpawnedCluster};
use starlog_testkit::pki::TestCa;

const BIN: &str = env!("CARGO_BIN_EXE_starlog");
const ADMIN_PW: &str = "cluster-admin-pw";
const READER_PW: &str = "cluster-reader-pw";

fn start(pki: &Path) -> SpawnedCluster {
    let ca = TestCa::new("cluster security ca").unwrap();
    ca.write_cert(&pki.join("ca.pem")).unwrap();
    for n in 1..=3 {
        ca.write_leaf(pki, &format!("node{n}"), &format!("broker-{n}"))
            .unwrap();
    }
    let d = pki.display();
    let mut spec = ClusterSpec::new("cluster-security-tls", 3, BIN);
    spec.ready_timeout = Duration::from_secs(40);
    spec.node_log = "warn,starlog_broker=info".into();
    spec.cluster_yaml = format!(
        "  tls: {{ cert: {d}/node{{node}}.pem, key: {d}/node{{node}}.key, ca: {d}/ca.pem, \
         principal: cn, broker_principals: [User:broker-1, User:broker-2, User:broker-3] }}\n"
    );
    spec.listener_yaml = Some(format!(
        "security: SASL_SSL, sasl_mechanisms: [SCRAM-SHA-512], \
         tls: {{ cert: {d}/node{{node}}.pem, key: {d}/node{{node}}.key }}"
    ));
    spec.extra_yaml =
        "security: { super_users: [User:admin], allow_everyone_if_no_acl_found: false }\n\
         http: { anonymous_read: true }\n"
            .into();
    spec.before_first_start = Some(NodeHook(Arc::new(|node| {
        if node.id != 1 {
            return Ok(());
        }
        let config = node.config.display().to_string();
        starlog(
            &[
                "users",
                "set",
                "admin",
                "--mechanism",
                "SCRAM-SHA-512",
                "--password-stdin",
                "--config",
                &config,
            ],
            &format!("{ADMIN_PW}\n"),
        )
        .map(|_| ())
    })));
    SpawnedCluster::start(spec).unwrap_or_else(|e| panic!("{e}"))
}

fn client(c: &SpawnedCluster, id: i32, pki: &Path, user: &str, password: &str) -> ClientConfig {
    let mut cfg = ClientConfig::new();
    cfg.set(
        "bootstrap.servers",
        format!("127.0.0.1:{}", c.node(id).unwrap().kafka),
    )
    .set("security.protocol", "SASL_SSL")
    .set("ssl.ca.location", pki.join("ca.pem").display().to_string())
    .set("sasl.mechanism", "SCRAM-SHA-512")
    .set("sasl.username", user)
    .set("sasl.password", password)
    .set("message.timeout.ms", "20000")
    .set("request.timeout.ms", "5000");
    cfg
}

async fn send(cfg: &ClientConfig, topic: &str, partition: i32) -> Result<i64, KafkaError> {
    let p: FutureProducer = cfg.create().unwrap();
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

/// What `cfg`'s user reads from `topic` with consumer group `group`.
fn read(cfg: &ClientConfig, topic: &str, group: &str, want: usize) -> usize {
    let mut cfg = cfg.clone();
    cfg.set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false");
    let consumer: BaseConsumer = cfg.create().unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let mut got = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(40);
    while got < want && std::time::Instant::now() < deadline {
        if let Some(m) = consumer.poll(Duration::from_millis(200)) {
            match m {
                Ok(m) => {
                    assert_eq!(m.topic(), topic);
                    got += 1;
                }
                Err(e) => panic!("{group} reading {topic}: {e}"),
            }
        }
    }
    got
}

fn wait_users(c: &SpawnedCluster, want: &[&str]) {
    let want: Vec<String> = want
        .iter()
        .map(|u| format!("{u} (SCRAM-SHA-512)"))
        .collect();
    c.wait_until(Duration::from_secs(30), "every broker has the users", |c| {
        c.ids()
            .into_iter()
            .all(|id| c.status(id).is_ok_and(|s| s.security.users == want))
    })
    .unwrap_or_else(|e| panic!("{e}"));
}

async fn check_reader(c: &SpawnedCluster, pki: &Path, round: &str) {
    // The reader logs in on every broker; its writes are refused by each,
    // and nothing is stored.
    for id in c.ids() {
        let r = send(&client(c, id, pki, "reader", READER_PW), "alerts", 0).await;
        assert!(
            matches!(
                r,
                Err(KafkaError::MessageProduction(
                    RDKafkaErrorCode::TopicAuthorizationFailed
                ))
            ),
            "{round}: a reader's produce through broker {id}: {r:?}"
        );
    }
    // It reads what the admin wrote, through broker 3, in its own group.
    let cfg = client(c, 3, pki, "reader", READER_PW);
    let got = tokio::task::block_in_place(|| read(&cfg, "alerts", &format!("reader-{round}"), 10));
    assert_eq!(got, 10, "{round}");
    // A wrong password is refused.
    let r = send(&client(c, 1, pki, "reader", "wrong"), "alerts", 0).await;
    assert!(r.is_err(), "{round}: a wrong password produced: {r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_and_acls_made_on_one_broker_of_a_tls_cluster_hold_on_the_others_and_after_kill_9() {
    let pki_dir = tempfile::tempdir().unwrap();
    let pki = pki_dir.path();
    let mut c = start(pki);
    wait_users(&c, &["admin"]);

    // The admin, on broker 1, makes the topic and fills it.
    let admin1 = client(&c, 1, pki, "admin", ADMIN_PW);
    let admin: AdminClient<DefaultClientContext> = admin1.create().unwrap();
    let created = admin
        .create_topics(
            &[NewTopic::new("alerts", 1, TopicReplication::Fixed(3))],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(20))),
        )
        .await
        .unwrap();
    assert!(created.iter().all(Result::is_ok), "{created:?}");
    for _ in 0..10 {
        send(&admin1, "alerts", 0).await.unwrap();
    }

    // The admin, logged in on broker 2, makes the reader and its ACLs online.
    let b2 = format!("127.0.0.1:{}", c.node(2).unwrap().kafka);
    let ca = pki.join("ca.pem").display().to_string();
    let online = |extra: &[&str]| {
        let mut v: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        v.extend(
            [
                "--bootstrap-server",
                &b2,
                "--sasl-mechanism",
                "SCRAM-SHA-512",
                "--user",
                "admin",
                "--ca",
                &ca,
                "--password-stdin",
            ]
            .map(String::from),
        );
        v
    };
    let args = online(&["users", "set", "reader", "--mechanism", "SCRAM-SHA-512"]);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    starlog(&refs, &format!("{ADMIN_PW}\n{READER_PW}\n")).unwrap();
    for acl in [
        &[
            "acls",
            "add",
            "--allow-principal",
            "User:reader",
            "--operation",
            "Read",
            "--topic",
            "alerts",
        ][..],
        &[
            "acls",
            "add",
            "--allow-principal",
            "User:reader",
            "--operation",
            "Read",
            "--group",
            "reader-",
            "--resource-pattern-type",
            "prefixed",
        ][..],
    ] {
        let args = online(acl);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        starlog(&refs, &format!("{ADMIN_PW}\n")).unwrap();
    }
    wait_users(&c, &["admin", "reader"]);
    check_reader(&c, pki, "first").await;

    // kill -9 of all three, and back.
    for id in c.ids() {
        c.kill9(id).unwrap_or_else(|e| panic!("{e}"));
    }
    for id in c.ids() {
        c.spawn(id).unwrap_or_else(|e| panic!("{e}"));
    }
    c.wait_until(Duration::from_secs(40), "a controller again", |c| {
        c.ids()
            .into_iter()
            .all(|id| c.status(id).is_ok_and(|s| s.controller.is_some()))
    })
    .unwrap_or_else(|e| panic!("{e}"));
    wait_users(&c, &["admin", "reader"]);
    check_reader(&c, pki, "after-kill").await;
    c.stop().unwrap_or_else(|e| panic!("{e}"));
}
