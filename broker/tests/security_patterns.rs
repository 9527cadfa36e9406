//! The ways the community brokers run Kafka, on Starlog, with the clients
//! their users have (confluent-kafka, kafka-python, kcat, librdkafka):
//!
//! - **Rubin**: each community broker has a SCRAM user with read-only ACLs
//!   on the alert topics, and its consumer group ids must start with the
//!   user name (a prefixed group ACL);
//! - **Lasair**: a public listener without login where `User:*` may read
//!   the topics with the `lasair_` prefix and nothing else, next to a SASL
//!   listener for its own services.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use common::{listener, TestBroker};
use rdkafka::config::ClientConfig as RdConfig;
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use starlog_broker::listener::SecurityProtocol;
use starlog_broker::security::LocalSecurityStore;
use starlog_broker::BrokerConfig;
use starlog_security::{
    AclBinding, AclEntry, AclOperation, PatternType, Permission, Principal, ResourcePattern,
    ResourceType, ScramCredential, ScramMechanism, SecurityChange,
};
use starlog_testkit::pki::TestCa;

const ADMIN_PW: &str = "admin-pw-7";
const READER_PW: &str = "rubin-reader-pw-3";

fn allow(who: &str, kind: ResourceType, name: &str, pattern: PatternType) -> AclBinding {
    AclBinding {
        pattern: ResourcePattern {
            resource_type: kind,
            name: name.into(),
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

struct Site {
    broker: TestBroker,
    ca: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Site {
    fn addr(&self, listener: &str) -> SocketAddr {
        self.broker.server().listener_addr(listener).unwrap()
    }

    fn stored(&self, topic: &str) -> i64 {
        self.broker
            .server()
            .broker()
            .topics
            .get(topic)
            .map_or(0, |t| t.hosted().map(|(_, p)| p.high_watermark()).sum())
    }
}

/// Listeners `internal` (SASL_PLAINTEXT), `secure` (SASL_SSL) and `public`
/// (PLAINTEXT); users `admin` (super user) and `reader`; nothing allowed
/// without an ACL; the Rubin and Lasair ACLs.
async fn site() -> Site {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("site test CA").unwrap();
    let ca_pem = ca.write_cert(&dir.path().join("ca.pem")).unwrap();
    let leaf = ca.write_leaf(dir.path(), "broker", "broker").unwrap();
    let broker = TestBroker::start_with(move |c| {
        c.listen = BrokerConfig::default().listen;
        let mut secure = listener("secure", SecurityProtocol::SaslSsl);
        secure.tls = Some(
            serde_yaml::from_str(&format!(
                "{{ cert: {}, key: {} }}",
                leaf.cert.display(),
                leaf.key.display()
            ))
            .unwrap(),
        );
        c.listeners = vec![
            listener("internal", SecurityProtocol::SaslPlaintext),
            secure,
            listener("public", SecurityProtocol::Plaintext),
        ];
        c.security.super_users = vec![Principal::user("admin")];
        c.security.allow_everyone_if_no_acl_found = false;
        let store =
            LocalSecurityStore::open(&c.data_dir.join("__meta"), c.security.policy()).unwrap();
        for (user, pw) in [("admin", ADMIN_PW), ("reader", READER_PW)] {
            for m in ScramMechanism::ALL {
                store
                    .change_now(&SecurityChange::SetCredential {
                        user: user.into(),
                        credential: ScramCredential::new(m, pw, 4096).unwrap(),
                    })
                    .unwrap();
            }
        }
        store
            .change_now(&SecurityChange::CreateAcls {
                acls: vec![
                    // Rubin: read-only on the alert topics, groups named after the user.
                    allow(
                        "User:reader",
                        ResourceType::Topic,
                        "alerts-",
                        PatternType::Prefixed,
                    ),
                    allow(
                        "User:reader",
                        ResourceType::Group,
                        "reader",
                        PatternType::Prefixed,
                    ),
                    // Lasair: everyone reads lasair_*.
                    allow(
                        "User:*",
                        ResourceType::Topic,
                        "lasair_",
                        PatternType::Prefixed,
                    ),
                ],
            })
            .unwrap();
    })
    .await;
    let site = Site {
        broker,
        ca: ca_pem,
        _dir: dir,
    };
    // The admin fills the topics over SASL.
    let mut admin = RdConfig::new();
    admin
        .set("bootstrap.servers", site.addr("internal").to_string())
        .set("security.protocol", "SASL_PLAINTEXT")
        .set("sasl.mechanism", "SCRAM-SHA-512")
        .set("sasl.username", "admin")
        .set("sasl.password", ADMIN_PW)
        .set("message.timeout.ms", "10000");
    let producer: FutureProducer = admin.create().unwrap();
    for topic in ["alerts-ztf", "lasair_2_sn"] {
        for i in 0..20 {
            producer
                .send(
                    FutureRecord::<(), _>::to(topic).payload(&format!("{topic} {i}")),
                    Duration::from_secs(10),
                )
                .await
                .unwrap_or_else(|(e, _)| panic!("admin produce: {e}"));
        }
    }
    assert_eq!(site.stored("alerts-ztf"), 20);
    site
}

fn python(client: &str, action: &str, conf: serde_json::Value) -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/sasl_patterns.py");
    let out = Command::new("python3")
        .args([script, client, action, &conf.to_string()])
        .output()
        .expect("python3 runs (scripts/test installs kafka-python and confluent-kafka)");
    assert!(
        out.status.success(),
        "{client} {action} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

async fn python_async(
    client: &'static str,
    action: &'static str,
    conf: serde_json::Value,
) -> String {
    tokio::task::spawn_blocking(move || python(client, action, conf))
        .await
        .unwrap()
}

fn kcat(args: Vec<String>) -> (bool, String, String) {
    let out = Command::new("kcat")
        .args(&args)
        .output()
        .expect("kcat runs (scripts/test installs it)");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn kcat_async(args: Vec<String>) -> (bool, String, String) {
    tokio::task::spawn_blocking(move || kcat(args))
        .await
        .unwrap()
}

/// The offset `group` committed on `topic` partition 0, read as the admin.
fn committed(site: &Site, group: &str, topic: &str) -> Option<i64> {
    let mut c = RdConfig::new();
    c.set("bootstrap.servers", site.addr("internal").to_string())
        .set("security.protocol", "SASL_PLAINTEXT")
        .set("sasl.mechanism", "SCRAM-SHA-512")
        .set("sasl.username", "admin")
        .set("sasl.password", ADMIN_PW)
        .set("group.id", group);
    let consumer: BaseConsumer = c.create().unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(topic, 0);
    let got = consumer
        .committed_offsets(tpl, Duration::from_secs(10))
        .unwrap();
    match got.elements()[0].offset() {
        Offset::Offset(o) => Some(o),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rubin_pattern_read_only_user_and_group_prefix() {
    let site = site().await;
    let conf = |protocol: &str, addr: SocketAddr, group: &str| {
        serde_json::json!({
            "bootstrap": addr.to_string(), "protocol": protocol, "mechanism": "SCRAM-SHA-512",
            "user": "reader", "password": READER_PW, "ca": site.ca.display().to_string(),
            "topic": "alerts-ztf", "n": 20, "group": group,
        })
    };
    // confluent-kafka over SASL_SSL, a group named after the user: reads and commits.
    let out = python_async(
        "confluent",
        "consume",
        conf("SASL_SSL", site.addr("secure"), "reader-night-1"),
    )
    .await;
    assert_eq!(out, "consumed 20");
    let c = tokio::task::block_in_place(|| committed(&site, "reader-night-1", "alerts-ztf"));
    assert_eq!(c, Some(20));
    // A group outside the user's prefix: refused, nothing committed.
    let out = python_async(
        "confluent",
        "consume",
        conf("SASL_SSL", site.addr("secure"), "lasair-steal"),
    )
    .await;
    assert!(
        out.starts_with("refused GROUP_AUTHORIZATION_FAILED"),
        "{out}"
    );
    let c = tokio::task::block_in_place(|| committed(&site, "lasair-steal", "alerts-ztf"));
    assert_eq!(c, None);
    // kafka-python over SASL_PLAINTEXT: reads with its own group.
    let out = python_async(
        "kafka-python",
        "consume",
        conf("SASL_PLAINTEXT", site.addr("internal"), "reader-kp"),
    )
    .await;
    assert_eq!(out, "consumed 20");
    // Read-only: kafka-python's produce is refused and nothing is appended.
    let mut produce = conf("SASL_PLAINTEXT", site.addr("internal"), "unused");
    produce["n"] = 3.into();
    let out = python_async("kafka-python", "produce", produce).await;
    assert!(out.starts_with("refused TopicAuthorizationFailed"), "{out}");
    assert_eq!(site.stored("alerts-ztf"), 20);
    // kcat (SCRAM-SHA-256) reads the topic; a topic outside the ACLs is refused.
    let sasl = |user: &str, pw: &str| {
        vec![
            "-b".to_string(),
            site.addr("internal").to_string(),
            "-X".into(),
            "security.protocol=SASL_PLAINTEXT".into(),
            "-X".into(),
            "sasl.mechanisms=SCRAM-SHA-256".into(),
            "-X".into(),
            format!("sasl.username={user}"),
            "-X".into(),
            format!("sasl.password={pw}"),
        ]
    };
    let mut args = sasl("reader", READER_PW);
    args.extend(["-C", "-t", "alerts-ztf", "-o", "beginning", "-e", "-q"].map(String::from));
    let (ok, stdout, stderr) = kcat_async(args).await;
    assert!(ok, "{stderr}");
    assert_eq!(stdout.lines().count(), 20);
    // A wrong password: kcat fails with an authentication error.
    let mut args = sasl("reader", "wrong");
    args.extend(["-L", "-m", "5"].map(String::from));
    let (ok, _, stderr) = kcat_async(args).await;
    assert!(!ok);
    assert!(stderr.contains("uthentication"), "{stderr}");
    site.broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lasair_pattern_an_anonymous_listener_reads_one_prefix_and_nothing_else() {
    let site = site().await;
    let public = site.addr("public").to_string();
    let consume = |topic: &str| {
        [
            "-b",
            &public,
            "-C",
            "-t",
            topic,
            "-o",
            "beginning",
            "-e",
            "-q",
            "-m",
            "5",
        ]
        .map(String::from)
        .to_vec()
    };
    let (ok, stdout, stderr) = kcat_async(consume("lasair_2_sn")).await;
    assert!(ok, "{stderr}");
    assert_eq!(stdout.lines().count(), 20);
    let (ok, stdout, stderr) = kcat_async(consume("alerts-ztf")).await;
    assert!(
        !ok || stdout.is_empty(),
        "an anonymous client read alerts-ztf: {stdout}"
    );
    assert!(stderr.to_lowercase().contains("authoriz"), "{stderr}");
    // Metadata on the public listener lists only what anyone may describe,
    // and names only public endpoints.
    let (ok, stdout, stderr) =
        kcat_async(["-b", &public, "-L", "-m", "5"].map(String::from).to_vec()).await;
    assert!(ok, "{stderr}");
    assert!(stdout.contains("lasair_2_sn"), "{stdout}");
    assert!(!stdout.contains("alerts-ztf"), "{stdout}");
    assert!(stdout.contains(&public), "{stdout}");
    assert!(
        !stdout.contains(&site.addr("internal").to_string()),
        "{stdout}"
    );
    // Writing is refused, anonymously, with every client.
    let out = python_async(
        "kafka-python",
        "produce",
        serde_json::json!({"bootstrap": public, "protocol": "PLAINTEXT", "topic": "lasair_2_sn", "n": 2}),
    )
    .await;
    assert!(out.starts_with("refused TopicAuthorizationFailed"), "{out}");
    let out = python_async(
        "confluent",
        "produce",
        serde_json::json!({"bootstrap": site.addr("public").to_string(), "protocol": "PLAINTEXT", "topic": "lasair_2_sn", "n": 2}),
    )
    .await;
    assert!(
        out.starts_with("refused TOPIC_AUTHORIZATION_FAILED"),
        "{out}"
    );
    assert_eq!(site.stored("lasair_2_sn"), 20);
    site.broker.stop().await;
}
