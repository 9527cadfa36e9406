//! Listeners, SASL and TLS on the Kafka port, with real clients
//! (librdkafka through `rdkafka`, built with OpenSSL) and byte-level ones:
//! each mechanism logs in and round-trips records; a wrong password, an
//! unknown user, a replayed SCRAM nonce, garbage SASL frames, requests
//! before login, a plaintext client on a TLS port and an expired client
//! certificate are refused and leave nothing behind; Metadata answers with
//! the endpoints of the listener the client came in on; a login lasts
//! `reauthentication_ms` and is renewed on the same connection (KIP-368).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use common::{listener, RawClient, TestBroker};
use kafka_protocol::messages::{
    ApiKey, MetadataRequest, RequestKind, ResponseKind, SaslAuthenticateRequest,
    SaslHandshakeRequest,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use rdkafka::config::ClientConfig as RdConfig;
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::Message as _;
use starlog_broker::listener::SecurityProtocol;
use starlog_broker::security::LocalSecurityStore;
use starlog_broker::BrokerConfig;
use starlog_security::tls::TlsSettings;
use starlog_security::{Principal, ScramCredential, ScramMechanism, SecurityChange};
use starlog_testkit::pki::{LeafFiles, TestCa};

const ADMIN_PW: &str = "admin-secret-1";
const READER_PW: &str = "reader-secret-2";

fn tls(files: &LeafFiles) -> TlsSettings {
    serde_yaml::from_str(&format!(
        "{{ cert: {}, key: {} }}",
        files.cert.display(),
        files.key.display()
    ))
    .unwrap()
}

/// Users `admin` (a super user) and `reader`, with both SCRAM mechanisms,
/// written into the data directory before the first start (the offline
/// bootstrap `starlog users set` uses).
fn seed_users(config: &BrokerConfig) {
    let store = LocalSecurityStore::open(&config.data_dir.join("__meta"), config.security.policy())
        .unwrap();
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
}

/// A broker with an `internal` SASL_PLAINTEXT listener, a `public`
/// PLAINTEXT one and, when `pki` is given, a `secure` SASL_SSL one; users
/// seeded; everything allowed when no ACL matches (ACL checks have their
/// own tests).
/// A test CA and its certificate's file, in `dir`.
struct Pki {
    ca: TestCa,
    ca_pem: std::path::PathBuf,
    dir: std::path::PathBuf,
}

impl Pki {
    fn new(dir: &Path, name: &str) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let ca = TestCa::new(&format!("{name} test CA")).unwrap();
        let ca_pem = ca.write_cert(&dir.join(format!("{name}-ca.pem"))).unwrap();
        Self {
            ca,
            ca_pem,
            dir: dir.to_path_buf(),
        }
    }

    /// A certificate for 127.0.0.1 with subject `CN=cn,O=Starlog Test`.
    fn leaf(&self, cn: &str) -> LeafFiles {
        self.ca.write_leaf(&self.dir, cn, cn).unwrap()
    }

    /// One that expired a month ago.
    fn expired(&self, cn: &str) -> LeafFiles {
        self.ca
            .write_leaf_valid(&self.dir, &format!("expired-{cn}"), cn, -400, -30)
            .unwrap()
    }
}

async fn broker(pki: Option<&Pki>, tweak: impl FnOnce(&mut BrokerConfig)) -> TestBroker {
    let server_cert = pki.map(|p| p.leaf("broker"));
    TestBroker::start_with(move |c| {
        c.listen = BrokerConfig::default().listen;
        c.listeners = vec![
            listener("internal", SecurityProtocol::SaslPlaintext),
            listener("public", SecurityProtocol::Plaintext),
        ];
        if let Some(files) = &server_cert {
            let mut secure = listener("secure", SecurityProtocol::SaslSsl);
            secure.tls = Some(tls(files));
            c.listeners.push(secure);
        }
        c.security.super_users = vec![Principal::user("admin")];
        tweak(c);
        seed_users(c);
    })
    .await
}

fn addr(b: &TestBroker, listener: &str) -> SocketAddr {
    b.server().listener_addr(listener).expect("listener bound")
}

fn sasl_config(bootstrap: SocketAddr, mechanism: &str, user: &str, pw: &str) -> RdConfig {
    let mut c = RdConfig::new();
    c.set("bootstrap.servers", bootstrap.to_string())
        .set("security.protocol", "SASL_PLAINTEXT")
        .set("sasl.mechanism", mechanism)
        .set("sasl.username", user)
        .set("sasl.password", pw)
        .set("message.timeout.ms", "8000")
        .set("socket.timeout.ms", "8000");
    c
}

async fn produce(config: &RdConfig, topic: &str, n: usize) -> Result<(), String> {
    let producer: FutureProducer = config.create().map_err(|e| e.to_string())?;
    for i in 0..n {
        let payload = format!("record {i}");
        producer
            .send(
                FutureRecord::<(), _>::to(topic).payload(&payload),
                Duration::from_secs(8),
            )
            .await
            .map_err(|(e, _)| e.to_string())?;
    }
    Ok(())
}

fn consume_all(config: &RdConfig, topic: &str, n: usize) -> Vec<String> {
    let mut c = config.clone();
    c.set("group.id", format!("reader-{topic}"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false");
    let consumer: BaseConsumer = c.create().unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let mut got = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while got.len() < n && std::time::Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            got.push(String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned());
        }
    }
    got
}

/// Records in a topic's partition 0, read from the broker's own state
/// (no client, so no login and no ACL in the way).
fn stored_records(b: &TestBroker, topic: &str) -> i64 {
    match b.server().broker().topics.get(topic) {
        None => 0,
        Some(t) => t.hosted().map(|(_, p)| p.high_watermark()).sum(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_mechanism_logs_in_and_round_trips_records() {
    let b = broker(None, |_| {}).await;
    let internal = addr(&b, "internal");
    for mechanism in ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] {
        let topic = format!("round-trip-{}", mechanism.to_lowercase());
        let config = sasl_config(internal, mechanism, "reader", READER_PW);
        produce(&config, &topic, 20)
            .await
            .unwrap_or_else(|e| panic!("{mechanism}: {e}"));
        let got = tokio::task::spawn_blocking({
            let (config, topic) = (config.clone(), topic.clone());
            move || consume_all(&config, &topic, 20)
        })
        .await
        .unwrap();
        assert_eq!(got.len(), 20, "{mechanism}");
        assert_eq!(got[0], "record 0", "{mechanism}");
        assert_eq!(stored_records(&b, &topic), 20, "{mechanism}");
    }
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_or_unknown_user_is_refused_and_leaves_nothing() {
    let b = broker(None, |_| {}).await;
    let internal = addr(&b, "internal");
    for (mechanism, user, pw) in [
        ("SCRAM-SHA-512", "reader", "not-the-password"),
        ("SCRAM-SHA-256", "nobody", READER_PW),
        ("PLAIN", "reader", "not-the-password"),
        ("PLAIN", "nobody", "x"),
    ] {
        let topic = format!("refused-{}-{user}", mechanism.to_lowercase());
        let config = sasl_config(internal, mechanism, user, pw);
        let err = produce(&config, &topic, 1)
            .await
            .expect_err("a refused login cannot produce");
        assert!(
            err.contains("Authentication")
                || err.contains("authentication")
                || err.contains("timed out"),
            "{mechanism} {user}: {err}"
        );
        assert_eq!(stored_records(&b, &topic), 0, "{mechanism} {user}");
        assert!(
            b.server().broker().topics.get(&topic).is_none(),
            "{topic} was not created"
        );
    }
    b.stop().await;
}

/// A Metadata v9 request frame (without its length prefix), for sending
/// when no answer is expected.
fn metadata_frame() -> bytes::BytesMut {
    use kafka_protocol::protocol::Encodable;
    let mut body = bytes::BytesMut::new();
    kafka_protocol::messages::RequestHeader::default()
        .with_request_api_key(ApiKey::Metadata as i16)
        .with_request_api_version(9)
        .with_correlation_id(1)
        .encode(&mut body, ApiKey::Metadata.request_header_version(9))
        .unwrap();
    MetadataRequest::default().encode(&mut body, 9).unwrap();
    body
}

fn metadata_request() -> RequestKind {
    RequestKind::Metadata(MetadataRequest::default().with_topics(None))
}

async fn handshake(c: &mut RawClient, mechanism: &str, version: i16) -> i16 {
    let r = c
        .call(
            RequestKind::SaslHandshake(
                SaslHandshakeRequest::default()
                    .with_mechanism(StrBytes::from_string(mechanism.into())),
            ),
            ApiKey::SaslHandshake,
            version,
        )
        .await;
    let ResponseKind::SaslHandshake(r) = r else {
        panic!("not a handshake response")
    };
    r.error_code
}

async fn authenticate(c: &mut RawClient, token: &[u8]) -> (i16, Bytes, i64) {
    let r = c
        .call(
            RequestKind::SaslAuthenticate(
                SaslAuthenticateRequest::default().with_auth_bytes(Bytes::copy_from_slice(token)),
            ),
            ApiKey::SaslAuthenticate,
            1,
        )
        .await;
    let ResponseKind::SaslAuthenticate(r) = r else {
        panic!("not an authenticate response")
    };
    (r.error_code, r.auth_bytes, r.session_lifetime_ms)
}

fn plain_token(user: &str, pw: &str) -> Vec<u8> {
    format!("\0{user}\0{pw}").into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_answers_with_the_endpoints_of_the_clients_listener() {
    let b = broker(None, |c| {
        c.listeners[1].advertised = Some("alerts.example.org".into());
    })
    .await;
    let (internal, public) = (addr(&b, "internal"), addr(&b, "public"));
    let mut p = RawClient::connect(public).await;
    let ResponseKind::Metadata(m) = p.call(metadata_request(), ApiKey::Metadata, 9).await else {
        panic!()
    };
    assert_eq!(m.brokers.len(), 1);
    assert_eq!(m.brokers[0].host.as_str(), "alerts.example.org");
    assert_eq!(m.brokers[0].port, i32::from(public.port()));
    let mut i = RawClient::connect(internal).await;
    assert_eq!(handshake(&mut i, "PLAIN", 1).await, 0);
    let (code, _, _) = authenticate(&mut i, &plain_token("reader", READER_PW)).await;
    assert_eq!(code, 0);
    let ResponseKind::Metadata(m) = i.call(metadata_request(), ApiKey::Metadata, 9).await else {
        panic!()
    };
    assert_eq!(m.brokers[0].host.as_str(), "127.0.0.1");
    assert_eq!(
        m.brokers[0].port,
        i32::from(internal.port()),
        "never the public port"
    );
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_before_login_and_garbage_sasl_frames_close_the_connection() {
    let b = broker(None, |_| {}).await;
    let internal = addr(&b, "internal");
    // A request before login: closed without an answer.
    let mut c = RawClient::connect(internal).await;
    c.send_frame(&metadata_frame()).await;
    assert!(
        c.is_closed_by_broker().await,
        "Metadata before login must close"
    );
    // ApiVersions is answered before login.
    let mut c = RawClient::connect(internal).await;
    let r = c
        .call(
            RequestKind::ApiVersions(Default::default()),
            ApiKey::ApiVersions,
            3,
        )
        .await;
    assert!(matches!(r, ResponseKind::ApiVersions(v) if v.error_code == 0));
    // An unknown mechanism: the enabled ones are listed, then closed.
    assert_eq!(
        handshake(&mut c, "GSSAPI", 1).await,
        ResponseError::UnsupportedSaslMechanism.code()
    );
    assert!(c.is_closed_by_broker().await);
    // Garbage in the exchange, for each mechanism: SASL_AUTHENTICATION_FAILED, then closed.
    for (mechanism, garbage) in [
        ("SCRAM-SHA-512", &b"\xff\xfe garbage"[..]),
        ("SCRAM-SHA-256", &b"n,,n=,r="[..]),
        ("PLAIN", &b"no-nuls-here"[..]),
    ] {
        let mut c = RawClient::connect(internal).await;
        assert_eq!(handshake(&mut c, mechanism, 1).await, 0);
        let (code, _, _) = authenticate(&mut c, garbage).await;
        assert_eq!(
            code,
            ResponseError::SaslAuthenticationFailed.code(),
            "{mechanism}"
        );
        assert!(c.is_closed_by_broker().await, "{mechanism}");
    }
    // A SaslAuthenticate with no handshake: ILLEGAL_SASL_STATE, closed.
    let mut c = RawClient::connect(internal).await;
    let (code, _, _) = authenticate(&mut c, b"x").await;
    assert_eq!(code, ResponseError::IllegalSaslState.code());
    assert!(c.is_closed_by_broker().await);
    // Random bytes as a frame: closed.
    let mut c = RawClient::connect(internal).await;
    c.send_frame(&[0x13, 0x37, 0, 0, 0xde, 0xad]).await;
    assert!(c.is_closed_by_broker().await);
    // A frame larger than the bound before login: closed.
    let mut c = RawClient::connect(internal).await;
    c.send_oversize_frame(600 * 1024).await;
    assert!(c.is_closed_by_broker().await);
    // The broker still serves a proper client.
    let config = sasl_config(internal, "SCRAM-SHA-512", "reader", READER_PW);
    produce(&config, "after-garbage", 1).await.unwrap();
    assert_eq!(stored_records(&b, "after-garbage"), 1);
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_scram_nonce_is_refused() {
    use starlog_security::scram::ScramClient;
    let b = broker(None, |_| {}).await;
    let internal = addr(&b, "internal");
    // A complete, successful exchange, recorded.
    let mut c = RawClient::connect(internal).await;
    assert_eq!(handshake(&mut c, "SCRAM-SHA-512", 1).await, 0);
    let mut scram = ScramClient::new(ScramMechanism::Sha512, "reader", READER_PW).unwrap();
    let first = scram.client_first();
    let (code, server_first, _) = authenticate(&mut c, first.as_bytes()).await;
    assert_eq!(code, 0);
    let final_msg = scram
        .handle_server_first(std::str::from_utf8(&server_first).unwrap())
        .unwrap();
    let (code, server_final, _) = authenticate(&mut c, final_msg.as_bytes()).await;
    assert_eq!(code, 0);
    scram
        .verify_server_final(std::str::from_utf8(&server_final).unwrap())
        .unwrap();
    // Replayed on a new connection: the server's nonce differs, so the
    // recorded client-final (and its proof) is refused.
    let mut c = RawClient::connect(internal).await;
    assert_eq!(handshake(&mut c, "SCRAM-SHA-512", 1).await, 0);
    let (code, _, _) = authenticate(&mut c, first.as_bytes()).await;
    assert_eq!(code, 0);
    let (code, _, _) = authenticate(&mut c, final_msg.as_bytes()).await;
    assert_eq!(code, ResponseError::SaslAuthenticationFailed.code());
    assert!(c.is_closed_by_broker().await);
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_lasts_reauthentication_ms_and_is_renewed_on_the_connection() {
    let b = broker(None, |c| c.listeners[0].reauthentication_ms = 1_000).await;
    let internal = addr(&b, "internal");
    let mut c = RawClient::connect(internal).await;
    assert_eq!(handshake(&mut c, "PLAIN", 1).await, 0);
    let (code, _, lifetime) = authenticate(&mut c, &plain_token("reader", READER_PW)).await;
    assert_eq!(
        (code, lifetime),
        (0, 1_000),
        "the session lifetime is told to the client"
    );
    assert!(matches!(
        c.call(metadata_request(), ApiKey::Metadata, 9).await,
        ResponseKind::Metadata(_)
    ));
    // Re-authenticated on the same connection before the end: still served.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(handshake(&mut c, "SCRAM-SHA-256", 1).await, 0);
    let mut scram =
        starlog_security::scram::ScramClient::new(ScramMechanism::Sha256, "reader", READER_PW)
            .unwrap();
    let (code, sf, _) = authenticate(&mut c, scram.client_first().as_bytes()).await;
    assert_eq!(code, 0);
    let fin = scram
        .handle_server_first(std::str::from_utf8(&sf).unwrap())
        .unwrap();
    let (code, _, lifetime) = authenticate(&mut c, fin.as_bytes()).await;
    assert_eq!((code, lifetime), (0, 1_000));
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(
        matches!(
            c.call(metadata_request(), ApiKey::Metadata, 9).await,
            ResponseKind::Metadata(_)
        ),
        "1.2 s after the first login, 0.6 s after the second: still in its session"
    );
    // Re-authenticating as another user is refused.
    assert_eq!(handshake(&mut c, "PLAIN", 1).await, 0);
    let (code, _, _) = authenticate(&mut c, &plain_token("admin", ADMIN_PW)).await;
    assert_eq!(code, ResponseError::SaslAuthenticationFailed.code());
    assert!(c.is_closed_by_broker().await);
    // A session left to expire: the next request closes the connection.
    let mut c = RawClient::connect(internal).await;
    assert_eq!(handshake(&mut c, "PLAIN", 1).await, 0);
    assert_eq!(
        authenticate(&mut c, &plain_token("reader", READER_PW))
            .await
            .0,
        0
    );
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    c.send_frame(&metadata_frame()).await;
    assert!(
        c.is_closed_by_broker().await,
        "an expired session is closed"
    );
    // librdkafka re-authenticates by itself (KIP-368) and keeps producing.
    let config = sasl_config(internal, "SCRAM-SHA-512", "reader", READER_PW);
    let producer: FutureProducer = config.create().unwrap();
    for i in 0..30 {
        producer
            .send(
                FutureRecord::<(), _>::to("reauth").payload(&format!("r{i}")),
                Duration::from_secs(8),
            )
            .await
            .unwrap_or_else(|(e, _)| panic!("record {i}: {e}"));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(stored_records(&b, "reauth"), 30);
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sasl_v0_handshake_then_raw_tokens() {
    let b = broker(None, |_| {}).await;
    let mut c = RawClient::connect(addr(&b, "internal")).await;
    assert_eq!(handshake(&mut c, "PLAIN", 0).await, 0);
    c.send_frame(&plain_token("reader", READER_PW)).await;
    let answer = c.read_frame().await.expect("a raw answer to the token");
    assert!(answer.is_empty(), "PLAIN's final server message is empty");
    assert!(matches!(
        c.call(metadata_request(), ApiKey::Metadata, 9).await,
        ResponseKind::Metadata(_)
    ));
    // A wrong password in v0 closes the connection (v0 has no error response).
    let mut c = RawClient::connect(addr(&b, "internal")).await;
    assert_eq!(handshake(&mut c, "PLAIN", 0).await, 0);
    c.send_frame(&plain_token("reader", "wrong")).await;
    assert!(c.is_closed_by_broker().await);
    b.stop().await;
}

fn ssl_config(bootstrap: SocketAddr, ca: &Path) -> RdConfig {
    let mut c = RdConfig::new();
    c.set("bootstrap.servers", bootstrap.to_string())
        .set("ssl.ca.location", ca.display().to_string())
        .set("message.timeout.ms", "8000")
        .set("socket.timeout.ms", "8000");
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sasl_ssl_round_trips_and_a_plaintext_client_on_the_tls_port_gets_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path(), "kafka");
    let b = broker(Some(&pki), |_| {}).await;
    let secure = addr(&b, "secure");
    for mechanism in ["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"] {
        let mut config = ssl_config(secure, &pki.ca_pem);
        config
            .set("security.protocol", "SASL_SSL")
            .set("sasl.mechanism", mechanism)
            .set("sasl.username", "reader")
            .set("sasl.password", READER_PW);
        let topic = format!("tls-{}", mechanism.to_lowercase());
        produce(&config, &topic, 10)
            .await
            .unwrap_or_else(|e| panic!("{mechanism}: {e}"));
        let got = tokio::task::spawn_blocking({
            let topic = topic.clone();
            move || consume_all(&config, &topic, 10)
        })
        .await
        .unwrap();
        assert_eq!(got.len(), 10, "{mechanism}");
    }
    // A plaintext (SASL) client on the TLS port: no handshake, no records.
    let plain = sasl_config(secure, "SCRAM-SHA-512", "reader", READER_PW);
    assert!(produce(&plain, "plaintext-on-tls", 1).await.is_err());
    assert_eq!(stored_records(&b, "plaintext-on-tls"), 0);
    // A raw Kafka frame on the TLS port is closed, not answered.
    let mut raw = RawClient::connect(secure).await;
    raw.send_frame(&[0, 18, 0, 3, 0, 0, 0, 1, 0, 0]).await;
    assert!(raw.read_frame().await.is_none());
    // A client that does not trust the broker's CA refuses it.
    let other = Pki::new(&dir.path().join("other"), "other");
    let mut wrong_ca = ssl_config(secure, &other.ca_pem);
    wrong_ca
        .set("security.protocol", "SASL_SSL")
        .set("sasl.mechanism", "PLAIN")
        .set("sasl.username", "reader")
        .set("sasl.password", READER_PW);
    assert!(produce(&wrong_ca, "untrusted", 1).await.is_err());
    assert_eq!(stored_records(&b, "untrusted"), 0);
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_takes_the_principal_from_the_certificate_and_refuses_an_expired_one() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path(), "kafka");
    let server = pki.leaf("broker");
    let ca = pki.ca_pem.clone();
    let b = TestBroker::start_with(move |c| {
        c.listen = BrokerConfig::default().listen;
        let mut l = listener("mtls", SecurityProtocol::Ssl);
        l.tls = Some(
            serde_yaml::from_str(&format!(
                "{{ cert: {}, key: {}, client_ca: {}, client_auth: required, principal: cn }}",
                server.cert.display(),
                server.key.display(),
                ca.display()
            ))
            .unwrap(),
        );
        c.listeners = vec![l];
        // Only alice may write, and only to her topic.
        c.security.allow_everyone_if_no_acl_found = false;
        seed_users(c);
        let store =
            LocalSecurityStore::open(&c.data_dir.join("__meta"), c.security.policy()).unwrap();
        let acl = |op: &str, kind: &str, name: &str| -> starlog_security::AclBinding {
            serde_json::from_value(serde_json::json!({
                "pattern": {"resource_type": kind, "name": name, "pattern_type": "LITERAL"},
                "entry": {"principal": "User:alice", "host": "*", "operation": op, "permission": "ALLOW"}
            }))
            .unwrap()
        };
        store
            .change_now(&SecurityChange::CreateAcls {
                acls: vec![
                    acl("ALL", "TOPIC", "alice-topic"),
                    acl("CREATE", "CLUSTER", "kafka-cluster"),
                    acl("IDEMPOTENT_WRITE", "CLUSTER", "kafka-cluster"),
                ],
            })
            .unwrap();
    })
    .await;
    let mtls = addr(&b, "mtls");
    let client = |files: &LeafFiles| {
        let mut c = ssl_config(mtls, &pki.ca_pem);
        c.set("security.protocol", "SSL")
            .set("ssl.certificate.location", files.cert.display().to_string())
            .set("ssl.key.location", files.key.display().to_string());
        c
    };
    let alice = pki.leaf("alice");
    produce(&client(&alice), "alice-topic", 5).await.unwrap();
    assert_eq!(stored_records(&b, "alice-topic"), 5);
    // Bob's certificate is valid, but he is User:bob: not allowed.
    let bob = pki.leaf("bob");
    assert!(produce(&client(&bob), "alice-topic", 1).await.is_err());
    assert_eq!(stored_records(&b, "alice-topic"), 5);
    // An expired certificate (of alice) fails the handshake.
    let expired = pki.expired("alice");
    assert!(produce(&client(&expired), "alice-topic", 1).await.is_err());
    // No certificate at all, on a listener that requires one.
    assert!(produce(
        &ssl_config(mtls, &pki.ca_pem)
            .set("security.protocol", "SSL")
            .clone(),
        "alice-topic",
        1
    )
    .await
    .is_err());
    assert_eq!(stored_records(&b, "alice-topic"), 5);
    b.stop().await;
}
