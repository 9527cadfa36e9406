//! The HTTP listener over TLS with basic authentication against the SCRAM
//! users, anonymous reads, and ACL checks on the registry, `/metrics` and
//! `/cluster`, with the clients crate's HTTPS client (hyper over rustls)
//! trusting the test CA.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Duration;

use starlog_broker::BrokerConfig;
use starlog_clients::config::TlsConfig;
use starlog_clients::registry::http::{HttpClient, Response};
use starlog_clients::registry::BaseUrl;
use starlog_security::{
    AclBinding, AclEntry, AclOperation, PatternType, Permission, Principal, ResourcePattern,
    ResourceType, ScramCredential, ScramMechanism, SecurityChange,
};
use starlog_testkit::pki::TestCa;
use starlog_testkit::TestBroker;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SCHEMA: &str = r#"{"type":"record","name":"Alert","fields":[{"name":"id","type":"long"}]}"#;

/// A broker whose HTTP listener serves TLS with `extra` HTTP settings
/// (YAML flow-mapping entries), no ACL meaning "refused", `User:admin` a
/// super user, and users alice (SCRAM-SHA-512) and admin (SCRAM-SHA-256).
async fn broker(dir: &Path, ca: &TestCa, extra: &str) -> TestBroker {
    let server = ca.write_leaf(dir, "server", "localhost").unwrap();
    let yaml = format!(
        "http: {{ listen: 127.0.0.1:0, tls: {{ cert: {}, key: {} }}, {extra} }}\n\
         security: {{ super_users: [User:admin], allow_everyone_if_no_acl_found: false }}\n",
        server.cert.display(),
        server.key.display()
    );
    let parsed = BrokerConfig::from_yaml(&yaml).expect("valid config");
    let b = TestBroker::start_with(|c| {
        c.http = parsed.http;
        c.security = parsed.security;
    })
    .await;
    for (user, mechanism, password) in [
        ("alice", ScramMechanism::Sha512, "alice-secret"),
        ("admin", ScramMechanism::Sha256, "admin-secret"),
    ] {
        let credential = ScramCredential::new(mechanism, password, 4096).unwrap();
        b.server()
            .broker()
            .security
            .change(SecurityChange::SetCredential {
                user: user.into(),
                credential,
            })
            .await
            .unwrap();
    }
    b
}

fn client(b: &TestBroker, ca: &TestCa, auth: Option<(&str, &str)>) -> HttpClient {
    let addr = b.server().http_addr().unwrap();
    let base = BaseUrl::parse(&format!("https://{addr}")).unwrap();
    HttpClient::new(
        base,
        auth,
        Some(TlsConfig::with_ca_pem(ca.cert_pem())),
        Duration::from_secs(10),
    )
}

fn text(r: &Response) -> String {
    String::from_utf8_lossy(&r.body).into_owned()
}

async fn register(c: &HttpClient, subject: &str) -> Response {
    let body = serde_json::json!({ "schema": SCHEMA }).to_string();
    c.post_json(&format!("/subjects/{subject}/versions"), body.as_bytes())
        .await
        .unwrap()
}

/// The raw head of a GET over TLS (to see the headers).
async fn raw_head(b: &TestBroker, ca_dir: &Path, path: &str) -> String {
    let addr = b.server().http_addr().unwrap();
    let config = starlog_security::tls::client_config(
        &starlog_security::tls::ClientTlsSettings {
            ca: ca_dir.join("ca.pem"),
            cert: None,
            key: None,
        },
        ca_dir,
    )
    .unwrap();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = tokio_rustls::rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .unwrap();
    tls.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut out = Vec::new();
    let _ = tls.read_to_end(&mut out).await;
    let text = String::from_utf8_lossy(&out).into_owned();
    text.split("\r\n\r\n")
        .next()
        .unwrap_or_default()
        .to_string()
}

fn allow(principal: &str, kind: ResourceType, name: &str, op: AclOperation) -> SecurityChange {
    SecurityChange::CreateAcls {
        acls: vec![AclBinding {
            pattern: ResourcePattern {
                resource_type: kind,
                name: name.into(),
                pattern_type: PatternType::Literal,
            },
            entry: AclEntry {
                principal: Principal::parse(principal).unwrap(),
                host: "*".into(),
                operation: op,
                permission: Permission::Allow,
            },
        }],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_over_tls_checks_users_and_acls() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("http test ca").unwrap();
    ca.write_cert(&dir.path().join("ca.pem")).unwrap();
    let b = broker(dir.path(), &ca, "authentication: basic").await;
    let addr = b.server().http_addr().unwrap();

    // A plain-HTTP client on the TLS port gets no answer.
    let plain = HttpClient::new(
        BaseUrl::parse(&format!("http://{addr}")).unwrap(),
        None,
        None,
        Duration::from_secs(5),
    );
    assert!(plain.get("/subjects").await.is_err());

    // No credentials, a wrong password, an unknown user: 401 with a
    // Basic challenge.
    let anonymous = client(&b, &ca, None);
    let r = anonymous.get("/subjects").await.unwrap();
    assert_eq!(r.status, 401, "{}", text(&r));
    let head = raw_head(&b, dir.path(), "/subjects").await;
    assert!(head.starts_with("HTTP/1.1 401"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("www-authenticate: basic realm=\"starlog\""),
        "{head}"
    );
    let wrong = client(&b, &ca, Some(("alice", "not-her-password")));
    assert_eq!(wrong.get("/subjects").await.unwrap().status, 401);
    let unknown = client(&b, &ca, Some(("mallory", "alice-secret")));
    assert_eq!(unknown.get("/subjects").await.unwrap().status, 401);
    let r = register(&anonymous, "alerts-value").await;
    assert_eq!(r.status, 401);

    // alice: reads the registry, but may not describe the cluster nor
    // write the subject of a topic she has no Write on.
    let alice = client(&b, &ca, Some(("alice", "alice-secret")));
    let r = alice.get("/subjects").await.unwrap();
    assert_eq!(r.status, 200, "{}", text(&r));
    assert_eq!(text(&r), "[]");
    let r = alice.get("/metrics").await.unwrap();
    assert_eq!(r.status, 403, "{}", text(&r));
    let r = register(&alice, "alerts-value").await;
    assert_eq!(r.status, 403, "{}", text(&r));
    assert!(text(&r).contains("User:alice"), "{}", text(&r));
    // Nothing was registered.
    let admin = client(&b, &ca, Some(("admin", "admin-secret")));
    let r = admin.get("/subjects").await.unwrap();
    assert_eq!((r.status, text(&r).as_str()), (200, "[]"));

    // Write on topic `alerts`: her registration of `alerts-value` now
    // goes through; `other-value` still does not.
    b.server()
        .broker()
        .security
        .change(allow(
            "User:alice",
            ResourceType::Topic,
            "alerts",
            AclOperation::Write,
        ))
        .await
        .unwrap();
    let r = register(&alice, "alerts-value").await;
    assert_eq!(r.status, 200, "{}", text(&r));
    let r = register(&alice, "other-value").await;
    assert_eq!(r.status, 403, "{}", text(&r));
    let r = admin.get("/subjects").await.unwrap();
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&r.body).unwrap(),
        serde_json::json!(["alerts-value"])
    );

    // The super user reads the metrics; Describe on the cluster lets alice.
    let r = admin.get("/metrics").await.unwrap();
    assert_eq!(r.status, 200, "{}", text(&r));
    b.server()
        .broker()
        .security
        .change(allow(
            "User:alice",
            ResourceType::Cluster,
            "kafka-cluster",
            AclOperation::Describe,
        ))
        .await
        .unwrap();
    assert_eq!(alice.get("/metrics").await.unwrap().status, 200);
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_read_lets_gets_through_but_not_writes() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("http test ca").unwrap();
    let b = broker(
        dir.path(),
        &ca,
        "authentication: basic, anonymous_read: true",
    )
    .await;
    let admin = client(&b, &ca, Some(("admin", "admin-secret")));
    assert_eq!(register(&admin, "alerts-value").await.status, 200);

    let anonymous = client(&b, &ca, None);
    let r = anonymous.get("/subjects").await.unwrap();
    assert_eq!(r.status, 200, "{}", text(&r));
    let r = anonymous.get("/schemas/ids/1").await.unwrap();
    assert_eq!(r.status, 200, "{}", text(&r));
    assert_eq!(anonymous.get("/metrics").await.unwrap().status, 200);
    // Writes still need credentials, and wrong ones are still refused.
    assert_eq!(register(&anonymous, "alerts-value").await.status, 401);
    let wrong = client(&b, &ca, Some(("admin", "nope")));
    assert_eq!(wrong.get("/subjects").await.unwrap().status, 401);
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_served_certificate_is_reloaded() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("http test ca").unwrap();
    let b = broker(dir.path(), &ca, "authentication: none").await;
    // Default policy aside (no ACL: refused), anonymous may read the
    // registry: it needs no ACL.
    let anonymous = client(&b, &ca, None);
    assert_eq!(anonymous.get("/subjects").await.unwrap().status, 200);
    assert_eq!(anonymous.get("/metrics").await.unwrap().status, 403);

    // Replace the certificate with one from another CA and reload: a client
    // trusting the first CA is refused, one trusting the second is served.
    let other = TestCa::new("second ca").unwrap();
    other.write_leaf(dir.path(), "server", "localhost").unwrap();
    let failed = b.server().reload_tls();
    assert!(failed.is_empty(), "{failed:?}");
    assert!(anonymous.get("/subjects").await.is_err());
    let second = client(&b, &other, None);
    assert_eq!(second.get("/subjects").await.unwrap().status, 200);

    // A broken key: the reload fails and the listener keeps serving.
    std::fs::write(dir.path().join("server.key"), "garbage").unwrap();
    let failed = b.server().reload_tls();
    assert_eq!(failed.len(), 1);
    assert!(
        failed[0].1.to_string().contains("server.key"),
        "{}",
        failed[0].1
    );
    assert_eq!(second.get("/subjects").await.unwrap().status, 200);
    b.stop().await;
}
