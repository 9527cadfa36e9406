//! The broker files of the repository's `examples/` load with the broker's
//! configuration loader (and the site example starts, with its pipeline),
//! so they cannot rot.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use common::http;
use starlog_broker::{BrokerConfig, Server};

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(name)
}

fn load(name: &str) -> BrokerConfig {
    let file = example(name);
    BrokerConfig::load(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_site_example_loads_and_starts_with_its_pipeline() {
    let mut config = load("broker.yaml");
    assert_eq!(config.http_listen(), Some("0.0.0.0:8081".parse().unwrap()));
    assert!(config.schema_registry.enabled);
    assert_eq!(config.topics.default_partitions, 16);
    assert_eq!(config.log.retention_ms, 604_800_000);
    assert_eq!(config.pipelines.len(), 1);
    assert!(config.cluster.is_none());

    // The same file on loopback ports and a temporary directory.
    let dir = tempfile::tempdir().unwrap();
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    config.listen = loopback;
    config.set_http_listen(loopback);
    config.data_dir = dir.path().join("data");
    config.validate().unwrap();
    let server = Server::start(config).await.expect("the example starts");
    let names: Vec<String> = server
        .pipeline_status()
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(names, ["solar-system-bright"]);
    let url = format!("http://{}", server.http_addr().expect("HTTP on"));
    let (status, body) = http(&url, "GET", "/metrics", None).await;
    assert_eq!(status, 200);
    let text = body.as_str().expect("Prometheus text");
    assert!(
        text.contains("pipeline=\"solar-system-bright\",source=\"ztf-buffer\""),
        "{text}"
    );
    let (status, _) = http(&url, "GET", "/subjects", None).await;
    assert_eq!(status, 200, "the registry is on");
    server.shutdown().await;
}

#[test]
fn the_cluster_examples_agree_on_peers_and_differ_in_node_id() {
    let configs: Vec<BrokerConfig> = (1..=3)
        .map(|n| load(&format!("cluster/broker-{n}.yaml")))
        .collect();
    let first = configs[0].cluster.as_ref().expect("a cluster section");
    assert_eq!(first.peers.len(), 3);
    for c in &configs {
        let cluster = c.cluster.as_ref().expect("a cluster section");
        assert_eq!(cluster.peers, first.peers, "node {}", c.node_id);
        assert_eq!(cluster.default_replication_factor, 3);
        assert!(!cluster.join, "a fresh cluster, not a join");
        // Its Kafka listener is the one its peers advertise for it.
        let me = cluster.me(c.node_id).expect("node_id among the peers");
        assert_eq!(c.listen.port(), me.port, "node {}", c.node_id);
    }
    let distinct =
        |f: &dyn Fn(&BrokerConfig) -> String| configs.iter().map(f).collect::<BTreeSet<_>>().len();
    assert_eq!(distinct(&|c| c.node_id.to_string()), 3, "node ids");
    assert_eq!(distinct(&|c| c.listen.to_string()), 3, "Kafka listeners");
    assert_eq!(
        distinct(&|c| format!("{:?}", c.http_listen())),
        3,
        "HTTP listeners"
    );
    assert_eq!(
        distinct(&|c| c.data_dir.display().to_string()),
        3,
        "data dirs"
    );
    let raft: BTreeSet<_> = first.peers.iter().map(|p| p.raft.clone()).collect();
    assert_eq!(raft.len(), 3, "Raft listeners");
}

/// The security example: its listeners and policy load as written; on
/// loopback ports, with a certificate made for the test, the administrator
/// set offline logs in on `internal` and writes, while an anonymous client
/// of `public` is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_security_example_loads_and_enforces_its_policy() {
    use rdkafka::config::ClientConfig as RdConfig;
    use rdkafka::producer::{FutureProducer, FutureRecord};
    use starlog_broker::listener::SecurityProtocol;
    use starlog_broker::security::LocalSecurityStore;
    use starlog_security::{Principal, ScramCredential, ScramMechanism, SecurityChange};

    let mut config = load("security/broker.yaml");
    let names: Vec<&str> = config.listeners.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["internal", "public", "secure"]);
    assert_eq!(
        config.listeners[0].security,
        SecurityProtocol::SaslPlaintext
    );
    assert_eq!(config.listeners[0].mechanisms().len(), 3);
    assert_eq!(config.listeners[2].security, SecurityProtocol::SaslSsl);
    assert_eq!(config.security.super_users, [Principal::user("admin")]);
    assert!(!config.security.allow_everyone_if_no_acl_found);

    let dir = tempfile::tempdir().unwrap();
    let ca = starlog_testkit::pki::TestCa::new("example CA").unwrap();
    let leaf = ca.write_leaf(dir.path(), "broker", "broker").unwrap();
    for l in &mut config.listeners {
        l.listen = SocketAddr::from(([127, 0, 0, 1], 0));
        if let Some(t) = &mut l.tls {
            t.cert = leaf.cert.clone();
            t.key = leaf.key.clone();
        }
    }
    config.set_http_listen(SocketAddr::from(([127, 0, 0, 1], 0)));
    config.data_dir = dir.path().join("data");
    config.validate().unwrap();
    // `starlog users set admin` before the first start.
    LocalSecurityStore::open(&config.data_dir.join("__meta"), config.security.policy())
        .unwrap()
        .change_now(&SecurityChange::SetCredential {
            user: "admin".into(),
            credential: ScramCredential::new(ScramMechanism::Sha512, "example-pw", 4096).unwrap(),
        })
        .unwrap();
    let server = Server::start(config).await.expect("the example starts");
    let send = |c: &RdConfig| {
        let p: FutureProducer = c.create().unwrap();
        async move {
            p.send(
                FutureRecord::<(), _>::to("example-topic").payload("x"),
                std::time::Duration::from_secs(8),
            )
            .await
            .map_err(|(e, _)| e.to_string())
        }
    };
    let mut admin = RdConfig::new();
    admin
        .set(
            "bootstrap.servers",
            server.listener_addr("internal").unwrap().to_string(),
        )
        .set("security.protocol", "SASL_PLAINTEXT")
        .set("sasl.mechanism", "SCRAM-SHA-512")
        .set("sasl.username", "admin")
        .set("sasl.password", "example-pw");
    send(&admin).await.expect("the administrator writes");
    let mut anonymous = RdConfig::new();
    anonymous
        .set(
            "bootstrap.servers",
            server.listener_addr("public").unwrap().to_string(),
        )
        .set("message.timeout.ms", "5000");
    let refused = send(&anonymous)
        .await
        .expect_err("an anonymous client cannot write");
    assert!(
        refused.contains("authoriz") || refused.contains("Authoriz"),
        "{refused}"
    );
    let url = format!("http://{}", server.http_addr().unwrap());
    let (status, _) = http(&url, "GET", "/subjects", None).await;
    assert_eq!(status, 200, "anonymous reads of the registry");
    let (status, _) = http(
        &url,
        "POST",
        "/subjects/example-topic-value/versions",
        Some(serde_json::json!({"schema": "\"string\""})),
    )
    .await;
    assert_eq!(status, 401, "writes need a login");
    server.shutdown().await;
}
