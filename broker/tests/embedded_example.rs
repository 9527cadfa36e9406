//! The embedding API's example (`examples/embedded.rs`) runs: a broker
//! started in-process with the builder, on free loopback ports, takes a
//! record and serves it back, then shuts down and frees its port.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../examples/embedded.rs"]
#[allow(dead_code)]
mod embedded;

use std::net::SocketAddr;

#[tokio::test]
async fn the_embedded_example_produces_fetches_and_shuts_down() {
    let outcome = embedded::run().await.expect("the example runs");
    assert_eq!(outcome.kafka_addr.ip(), std::net::Ipv4Addr::LOCALHOST);
    assert_ne!(outcome.kafka_addr.port(), 0, "the bound port, not 0");
    let http = outcome.http_addr.expect("the HTTP listener is on");
    assert_ne!(http.port(), 0);
    assert_eq!(outcome.offset, 0);
    assert_eq!(outcome.fetched.as_deref(), Some(embedded::VALUE.as_bytes()));
    // Shut down: nothing listens on the Kafka port any more.
    assert!(tokio::net::TcpStream::connect(outcome.kafka_addr)
        .await
        .is_err());
}

#[tokio::test]
async fn builder_settings_win_over_the_given_config() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = starlog_broker::BrokerConfig::default();
    config.schema_registry.enabled = false;
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    let broker = starlog_broker::Embedded::builder()
        .listen(loopback)
        .data_dir(dir.path().join("d"))
        .config(config)
        .start()
        .await
        .unwrap();
    assert_ne!(
        broker.kafka_addr().port(),
        9092,
        "listen() won over the config's 9092"
    );
    assert_eq!(broker.config().data_dir, dir.path().join("d"));
    assert!(dir.path().join("d").is_dir(), "data directory created");
    assert_eq!(
        broker.registry_addr(),
        None,
        "registry off in the given config"
    );
    assert_eq!(broker.http_addr(), None, "no HTTP listener asked for");
    broker.shutdown().await;
}

#[global_allocator]
static GLOBAL: starlog_alloc::GuardedAllocator = starlog_alloc::GuardedAllocator;
