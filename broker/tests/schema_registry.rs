//! The schema registry: Confluent's Python client against it (with real
//! alerts through the broker), and its promises checked over plain HTTP —
//! ids stable across restarts, the same schema the same id, Confluent error
//! codes for bad requests.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;

use common::{http, TestBroker};
use serde_json::{json, Value};

fn record(name: &str, extra: &[Value]) -> String {
    let mut fields = vec![json!({"name": "id", "type": "long"})];
    fields.extend_from_slice(extra);
    json!({"type": "record", "name": name, "namespace": "starlog.test", "fields": fields})
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_are_stable_across_restarts_and_deduplicated() {
    let mut broker = TestBroker::start().await;
    let url = broker.registry_url();
    let a = record("a", &[]);
    let b = record("b", &[]);
    let (status, r) = http(
        &url,
        "POST",
        "/subjects/s1/versions",
        Some(json!({ "schema": a })),
    )
    .await;
    assert_eq!(status, 200, "{r}");
    let id_a = r["id"].as_u64().unwrap();
    // Same schema, other subject, other whitespace: same id.
    let spaced = serde_json::to_string_pretty(&serde_json::from_str::<Value>(&a).unwrap()).unwrap();
    let (_, r) = http(
        &url,
        "POST",
        "/subjects/s2/versions",
        Some(json!({ "schema": spaced })),
    )
    .await;
    assert_eq!(r["id"].as_u64().unwrap(), id_a);
    let (_, r) = http(
        &url,
        "POST",
        "/subjects/s3/versions",
        Some(json!({ "schema": b })),
    )
    .await;
    let id_b = r["id"].as_u64().unwrap();
    assert_ne!(id_a, id_b);

    broker.restart().await;
    let url = broker.registry_url();
    let (status, r) = http(&url, "GET", &format!("/schemas/ids/{id_b}"), None).await;
    assert_eq!(status, 200);
    assert_eq!(r["schema"].as_str().unwrap(), b);
    let (_, r) = http(
        &url,
        "POST",
        "/subjects/s1/versions",
        Some(json!({ "schema": a })),
    )
    .await;
    assert_eq!(
        r["id"].as_u64().unwrap(),
        id_a,
        "re-registration after restart keeps the id"
    );
    let c = record("c", &[]);
    let (_, r) = http(
        &url,
        "POST",
        "/subjects/s4/versions",
        Some(json!({ "schema": c })),
    )
    .await;
    assert!(r["id"].as_u64().unwrap() > id_b, "ids are never reused");
    let (_, r) = http(&url, "GET", "/subjects", None).await;
    assert_eq!(r, json!(["s1", "s2", "s3", "s4"]));
    let (_, r) = http(&url, "GET", "/subjects/s1/versions/latest", None).await;
    assert_eq!(
        (r["version"].as_i64(), r["id"].as_u64()),
        (Some(1), Some(id_a))
    );
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_confluent_error_codes() {
    let broker = TestBroker::start().await;
    let url = broker.registry_url();
    let cases: Vec<(&str, String, Option<Value>, u16, u64)> = vec![
        (
            "POST",
            "/subjects/x/versions".into(),
            Some(json!({"schema": "{not json"})),
            422,
            42201,
        ),
        (
            "POST",
            "/subjects/x/versions".into(),
            Some(json!({"schema": "{\"type\":\"nope\"}"})),
            422,
            42201,
        ),
        (
            "POST",
            "/subjects/x/versions".into(),
            Some(json!({"schema": record("p", &[]), "schemaType": "PROTOBUF"})),
            422,
            42201,
        ),
        (
            "POST",
            "/subjects/x/versions".into(),
            Some(json!({"no_schema": 1})),
            422,
            422,
        ),
        ("GET", "/subjects/missing/versions".into(), None, 404, 40401),
        ("GET", "/schemas/ids/424242".into(), None, 404, 40403),
        (
            "GET",
            "/subjects/missing/versions/0".into(),
            None,
            422,
            42202,
        ),
        (
            "PUT",
            "/config".into(),
            Some(json!({"compatibility": "SIDEWAYS"})),
            422,
            42203,
        ),
        ("GET", "/config/missing".into(), None, 404, 40408),
    ];
    for (method, path, body, status, code) in cases {
        let (got, r) = http(&url, method, &path, body).await;
        assert_eq!(
            (got, r["error_code"].as_u64()),
            (status, Some(code)),
            "{method} {path}: {r}"
        );
        assert!(r["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    // Nothing was registered by the refused requests.
    let (_, r) = http(&url, "GET", "/subjects", None).await;
    assert_eq!(r, json!([]));
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compatibility_levels_are_enforced() {
    let broker = TestBroker::start().await;
    let url = broker.registry_url();
    let v1 = record("evolving", &[]);
    let v2_required = record("evolving", &[json!({"name": "mag", "type": "double"})]);
    let v2_default = record(
        "evolving",
        &[json!({"name": "mag", "type": "double", "default": 0.0})],
    );
    http(
        &url,
        "POST",
        "/subjects/e/versions",
        Some(json!({ "schema": v1 })),
    )
    .await;
    let (status, r) = http(
        &url,
        "POST",
        "/subjects/e/versions",
        Some(json!({ "schema": v2_required })),
    )
    .await;
    assert_eq!(
        (status, r["error_code"].as_u64()),
        (409, Some(409)),
        "BACKWARD refuses a new required field"
    );
    let (_, r) = http(
        &url,
        "POST",
        "/compatibility/subjects/e/versions/latest",
        Some(json!({ "schema": v2_default })),
    )
    .await;
    assert_eq!(r["is_compatible"], json!(true));
    let (status, _) = http(
        &url,
        "POST",
        "/subjects/e/versions",
        Some(json!({ "schema": v2_default })),
    )
    .await;
    assert_eq!(status, 200);
    // FORWARD: old readers must read new data; removing a field without default breaks that.
    http(
        &url,
        "PUT",
        "/config/e",
        Some(json!({"compatibility": "FORWARD"})),
    )
    .await;
    let (_, r) = http(&url, "GET", "/config/e", None).await;
    assert_eq!(r["compatibilityLevel"], "FORWARD");
    let (status, _) = http(
        &url,
        "POST",
        "/subjects/e/versions",
        Some(json!({ "schema": v2_required })),
    )
    .await;
    assert_eq!(status, 200, "adding a required field is forward compatible");
    let (_, r) = http(&url, "GET", "/subjects/e/versions", None).await;
    assert_eq!(r, json!([1, 2, 3]));
    // Soft delete hides versions; the ids keep resolving.
    let (_, ids) = http(&url, "GET", "/subjects/e/versions/1", None).await;
    let (_, deleted) = http(&url, "DELETE", "/subjects/e", None).await;
    assert_eq!(deleted, json!([1, 2, 3]));
    let (status, _) = http(&url, "GET", "/subjects/e/versions", None).await;
    assert_eq!(status, 404);
    let (status, _) = http(&url, "GET", &format!("/schemas/ids/{}", ids["id"]), None).await;
    assert_eq!(status, 200);
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confluent_python_client_serializes_real_alerts_through_starlog() {
    let ok = Command::new("python3")
        .args([
            "-c",
            "import confluent_kafka.schema_registry.avro, fastavro",
        ])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "confluent-kafka and fastavro are not installed: run scripts/test, which installs them"
    );
    let broker = TestBroker::start().await;
    let bs = broker.bootstrap();
    let url = broker.registry_url();
    // Real ZTF alerts of one schema version (kowalski 2023-10-12, ZTF 4.01).
    let files: Vec<String> = common::alert_files("ztf/alerts/kowalski/20231012")
        .into_iter()
        .take(8)
        .map(|p| p.display().to_string())
        .collect();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/python/schema_registry_roundtrip.py"
    );
    let out = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .arg(script)
            .arg(&bs)
            .arg(&url)
            .args(&files)
            .output()
            .expect("python3")
    })
    .await
    .expect("join");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "confluent-kafka registry test failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("registry ok: 8 alerts"), "{stdout}");
    broker.stop().await;
}
