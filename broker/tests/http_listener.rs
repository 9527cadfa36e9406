//! The HTTP listener has its own key (`http:`): `/metrics` stays up when the
//! schema registry is off, a configuration with only `schema_registry:`
//! behaves as it always did, and `http.listen` wins when both are set.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{http, TestBroker};
use starlog_broker::BrokerConfig;

/// A test broker whose HTTP settings come from `yaml` (loopback, port 0).
async fn broker_with(yaml: &str) -> TestBroker {
    let parsed = BrokerConfig::from_yaml(yaml).expect("valid config");
    TestBroker::start_with(|c| {
        c.schema_registry = parsed.schema_registry;
        c.http = parsed.http;
    })
    .await
}

fn server(b: &TestBroker) -> &starlog_broker::Server {
    b.server()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_off_with_http_listen_keeps_metrics() {
    let b = broker_with("schema_registry: { enabled: false }\nhttp: { listen: 127.0.0.1:0 }").await;
    let addr = server(&b).http_addr().expect("HTTP listener on");
    assert_eq!(server(&b).registry_addr(), None, "no registry to offer");
    let url = format!("http://{addr}");
    let (status, body) = http(&url, "GET", "/metrics", None).await;
    assert_eq!(status, 200, "{body}");
    let text = body.as_str().expect("Prometheus text");
    assert!(text.contains("# TYPE "), "{text}");
    let (status, _) = http(&url, "GET", "/subjects", None).await;
    assert_eq!(status, 404, "registry routes are not mounted");
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_style_config_is_unchanged() {
    // Registry on, no `http:`: one listener at schema_registry.listen with both.
    let b = broker_with("schema_registry: { enabled: true, listen: 127.0.0.1:0 }").await;
    let addr = server(&b).http_addr().expect("HTTP listener on");
    assert_eq!(server(&b).registry_addr(), Some(addr));
    let url = format!("http://{addr}");
    let (status, body) = http(&url, "GET", "/subjects", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, serde_json::json!([]));
    let (status, _) = http(&url, "GET", "/metrics", None).await;
    assert_eq!(status, 200);
    b.stop().await;

    // Registry off, no `http:`: no HTTP listener at all, as before.
    let b = broker_with("schema_registry: { enabled: false, listen: 127.0.0.1:0 }").await;
    assert_eq!(server(&b).http_addr(), None);
    assert_eq!(server(&b).registry_addr(), None);
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_listen_wins_when_both_are_set() {
    // schema_registry.listen names an address already taken: the broker
    // would fail to start if it bound there.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_addr = taken.local_addr().unwrap();
    let b = broker_with(&format!(
        "schema_registry: {{ enabled: true, listen: {taken_addr} }}\nhttp: {{ listen: 127.0.0.1:0 }}"
    ))
    .await;
    let addr = server(&b).http_addr().expect("HTTP listener on");
    assert_ne!(addr, taken_addr);
    assert_eq!(server(&b).registry_addr(), Some(addr));
    let url = format!("http://{addr}");
    let (status, _) = http(&url, "GET", "/subjects", None).await;
    assert_eq!(status, 200, "registry routes on the http.listen address");
    let (status, _) = http(&url, "GET", "/metrics", None).await;
    assert_eq!(status, 200);
    b.stop().await;
    drop(taken);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_disabled_turns_the_listener_off() {
    let b = broker_with(
        "schema_registry: { enabled: true, listen: 127.0.0.1:0 }\nhttp: { enabled: false }",
    )
    .await;
    assert_eq!(server(&b).http_addr(), None);
    assert_eq!(server(&b).registry_addr(), None);
    b.stop().await;
}
