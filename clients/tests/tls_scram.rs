//! TLS + SASL (SCRAM-SHA-512, PLAIN) against a local terminator started in
//! the test: it accepts TLS (a certificate made with rcgen), answers
//! ApiVersions and the SASL exchange itself — verifying the SCRAM client
//! proof per RFC 5802 with its own HMAC code, independent of the client's —
//! and then pipes the authenticated connection to a real Starlog broker
//! (which advertises the terminator's port). The terminator's own HMAC code
//! keeps this an independent check of the client's SCRAM (the broker's
//! server side shares the client's primitives in `starlog-security`); the
//! broker's own SASL and TLS listeners are tested with librdkafka and the
//! Python clients in `broker/tests/security_sasl.rs`.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use bytes::{BufMut, Bytes, BytesMut};
use common::{bounded, TestBroker};
use hmac::{Hmac, Mac};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsResponse, RequestHeader, ResponseHeader, SaslAuthenticateRequest,
    SaslAuthenticateResponse, SaslHandshakeRequest, SaslHandshakeResponse,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use kafka_protocol::ResponseError;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sha2::{Digest, Sha512};
use starlog_clients::{
    ClientError, Consumer, Producer, ProducerRecord, SaslConfig, SaslMechanism, TlsConfig,
    TopicPartition,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const USER: &str = "alert-reader";
const PASSWORD: &str = "correct horse battery staple";
const ITERATIONS: u32 = 4096;
const SALT: &[u8] = b"starlog-test-salt";

fn hmac512(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut m = <Hmac<Sha512> as Mac>::new_from_slice(key).unwrap();
    m.update(data);
    m.finalize().into_bytes().to_vec()
}

/// The server's stored credential (RFC 5802 section 3).
struct Credential {
    stored_key: Vec<u8>,
    server_key: Vec<u8>,
}

fn credential(password: &str) -> Credential {
    // Hi() = PBKDF2-HMAC-SHA-512 with one block.
    let mut salt1 = SALT.to_vec();
    salt1.extend_from_slice(&[0, 0, 0, 1]);
    let mut u = hmac512(password.as_bytes(), &salt1);
    let mut salted = u.clone();
    for _ in 1..ITERATIONS {
        u = hmac512(password.as_bytes(), &u);
        salted.iter_mut().zip(&u).for_each(|(a, b)| *a ^= b);
    }
    let client_key = hmac512(&salted, b"Client Key");
    Credential {
        stored_key: Sha512::digest(&client_key).to_vec(),
        server_key: hmac512(&salted, b"Server Key"),
    }
}

/// How the terminator behaves after a correct proof.
#[derive(Clone, Copy, PartialEq)]
enum ServerMode {
    Honest,
    /// Accepts every proof and sends a wrong signature (an impostor).
    Impostor,
}

struct Terminator {
    port: u16,
    ca_pem: String,
}

fn field<'a>(msg: &'a str, key: &str) -> Option<&'a str> {
    msg.split(',').find_map(|p| p.strip_prefix(key))
}

async fn read_frame<S: AsyncRead + Unpin>(s: &mut S) -> Option<Bytes> {
    let n = s.read_i32().await.ok()?;
    let mut b = vec![0u8; usize::try_from(n).ok()?];
    s.read_exact(&mut b).await.ok()?;
    Some(Bytes::from(b))
}

async fn reply<S: AsyncWrite + Unpin, T: Encodable>(
    s: &mut S,
    key: ApiKey,
    v: i16,
    c: i32,
    body: &T,
) {
    let mut out = BytesMut::new();
    ResponseHeader::default()
        .with_correlation_id(c)
        .encode(&mut out, key.response_header_version(v))
        .unwrap();
    body.encode(&mut out, v).unwrap();
    let mut framed = BytesMut::new();
    framed.put_i32(i32::try_from(out.len()).unwrap());
    framed.put_slice(&out);
    let _ = s.write_all(&framed).await;
}

/// Binds the terminator; `start` must be called once the broker runs.
async fn bind() -> (TcpListener, u16) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    (l, port)
}

fn start(listener: TcpListener, broker: std::net::SocketAddr, mode: ServerMode) -> Terminator {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let ca_pem = ck.cert.pem();
    let cert: CertificateDer<'static> = ck.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.signing_key.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        for _ in 0..50 {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                session(tls, broker, mode).await;
            });
        }
    });
    Terminator { port, ca_pem }
}

/// Handles the pre-authentication requests, then pipes to the broker.
async fn session<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    broker: std::net::SocketAddr,
    mode: ServerMode,
) {
    let cred = credential(PASSWORD);
    let mut mechanism = String::new();
    let mut first_bare = String::new();
    let mut server_first = String::new();
    let mut nonce = String::new();
    for _ in 0..10 {
        let Some(mut frame) = read_frame(&mut s).await else {
            return;
        };
        let key = ApiKey::try_from(i16::from_be_bytes([frame[0], frame[1]])).unwrap();
        let v = i16::from_be_bytes([frame[2], frame[3]]);
        let h = RequestHeader::decode(&mut frame, key.request_header_version(v)).unwrap();
        let c = h.correlation_id;
        match key {
            ApiKey::ApiVersions => {
                let mut keys: Vec<ApiVersion> = starlog_broker::api_versions::SUPPORTED
                    .iter()
                    .map(|s| {
                        ApiVersion::default()
                            .with_api_key(s.key as i16)
                            .with_min_version(s.min)
                            .with_max_version(s.max)
                    })
                    .collect();
                keys.push(
                    ApiVersion::default()
                        .with_api_key(ApiKey::SaslAuthenticate as i16)
                        .with_min_version(0)
                        .with_max_version(2),
                );
                reply(
                    &mut s,
                    key,
                    v,
                    c,
                    &ApiVersionsResponse::default().with_api_keys(keys),
                )
                .await;
            }
            ApiKey::SaslHandshake => {
                let req = SaslHandshakeRequest::decode(&mut frame, v).unwrap();
                mechanism = req.mechanism.to_string();
                let ok = mechanism == "SCRAM-SHA-512" || mechanism == "PLAIN";
                let resp = SaslHandshakeResponse::default()
                    .with_error_code(if ok {
                        0
                    } else {
                        ResponseError::UnsupportedSaslMechanism.code()
                    })
                    .with_mechanisms(vec![
                        StrBytes::from_static_str("SCRAM-SHA-512"),
                        StrBytes::from_static_str("PLAIN"),
                    ]);
                reply(&mut s, key, v, c, &resp).await;
                if !ok {
                    return;
                }
            }
            ApiKey::SaslAuthenticate => {
                let req = SaslAuthenticateRequest::decode(&mut frame, v).unwrap();
                let msg = String::from_utf8(req.auth_bytes.to_vec()).unwrap_or_default();
                let fail = |why: &str| {
                    SaslAuthenticateResponse::default()
                        .with_error_code(ResponseError::SaslAuthenticationFailed.code())
                        .with_error_message(Some(StrBytes::from_string(why.to_owned())))
                };
                if mechanism == "PLAIN" {
                    let ok = msg == format!("\0{USER}\0{PASSWORD}");
                    let resp = if ok {
                        SaslAuthenticateResponse::default()
                    } else {
                        fail("bad user or password")
                    };
                    reply(&mut s, key, v, c, &resp).await;
                    if ok {
                        break;
                    }
                    return;
                }
                if server_first.is_empty() {
                    // client-first: "n,,n=user,r=nonce"
                    let Some(bare) = msg.strip_prefix("n,,") else {
                        return;
                    };
                    first_bare = bare.to_owned();
                    if field(bare, "n=") != Some(USER) {
                        reply(&mut s, key, v, c, &fail("unknown user")).await;
                        return;
                    }
                    nonce = format!("{}server-nonce-42", field(bare, "r=").unwrap_or_default());
                    server_first = format!("r={nonce},s={},i={ITERATIONS}", B64.encode(SALT));
                    let resp = SaslAuthenticateResponse::default()
                        .with_auth_bytes(Bytes::from(server_first.clone()));
                    reply(&mut s, key, v, c, &resp).await;
                } else {
                    // client-final: "c=biws,r=nonce,p=proof"
                    let (without_proof, proof) = msg.rsplit_once(",p=").unwrap_or((&msg, ""));
                    let auth_message = format!("{first_bare},{server_first},{without_proof}");
                    let proof = B64.decode(proof).unwrap_or_default();
                    let client_signature = hmac512(&cred.stored_key, auth_message.as_bytes());
                    let client_key: Vec<u8> = proof
                        .iter()
                        .zip(&client_signature)
                        .map(|(a, b)| a ^ b)
                        .collect();
                    let valid = field(without_proof, "r=") == Some(nonce.as_str())
                        && proof.len() == client_signature.len()
                        && Sha512::digest(&client_key).as_slice() == cred.stored_key.as_slice();
                    let signature = match mode {
                        ServerMode::Honest => hmac512(&cred.server_key, auth_message.as_bytes()),
                        ServerMode::Impostor => vec![7u8; 64],
                    };
                    if !valid && mode == ServerMode::Honest {
                        reply(&mut s, key, v, c, &fail("invalid proof")).await;
                        return;
                    }
                    let resp = SaslAuthenticateResponse::default()
                        .with_auth_bytes(Bytes::from(format!("v={}", B64.encode(signature))));
                    reply(&mut s, key, v, c, &resp).await;
                    break;
                }
            }
            _ => return, // nothing else before authentication
        }
    }
    let Ok(mut upstream) = TcpStream::connect(broker).await else {
        return;
    };
    let _ = tokio::io::copy_bidirectional(&mut s, &mut upstream).await;
}

/// A broker behind a terminator; returns both.
async fn setup(mode: ServerMode) -> (TestBroker, Terminator) {
    let (listener, port) = bind().await;
    let broker = TestBroker::start_with(|c| {
        c.advertised_host = Some("127.0.0.1".into());
        c.advertised_port = Some(port);
    })
    .await;
    let t = start(listener, broker.addr(), mode);
    (broker, t)
}

fn secure(
    broker: &TestBroker,
    t: &Terminator,
    mechanism: SaslMechanism,
    password: &str,
) -> starlog_clients::ClientConfig {
    let mut c = broker.client();
    c.bootstrap = vec![format!("127.0.0.1:{}", t.port)];
    c.tls = Some(TlsConfig {
        server_name: Some("localhost".into()),
        ..TlsConfig::with_ca_pem(t.ca_pem.clone().into_bytes())
    });
    c.sasl = Some(SaslConfig {
        mechanism,
        username: USER.into(),
        password: password.into(),
    });
    c
}

async fn round_trip(client: starlog_clients::ClientConfig, broker: &TestBroker, topic: &str) {
    let mut pc = broker.producer();
    pc.client = client.clone();
    let p = Producer::new(pc).unwrap();
    for i in 0..20 {
        p.send(
            ProducerRecord::new(topic)
                .partition(0)
                .value(format!("{i}")),
        )
        .await
        .unwrap();
    }
    p.flush().await.unwrap();
    let mut cc = broker.consumer(None);
    cc.client = client;
    let mut c = Consumer::new(cc).unwrap();
    c.assign(&[TopicPartition::new(topic, 0)]).unwrap();
    let mut got = Vec::new();
    bounded(30, async {
        while got.len() < 20 {
            got.extend(c.poll(Duration::from_millis(100)).await.unwrap());
        }
    })
    .await;
    let values: Vec<String> = got
        .iter()
        .map(|r| String::from_utf8_lossy(r.value.as_ref().unwrap()).into_owned())
        .collect();
    assert_eq!(values, (0..20).map(|i| i.to_string()).collect::<Vec<_>>());
    // Every connection went through the terminator (the advertised port).
    let via = p.cluster().config().bootstrap[0].clone();
    assert!(
        p.cluster().brokers().values().all(|a| *a == via),
        "{:?}",
        p.cluster().brokers()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scram_sha512_over_tls_produces_and_consumes() {
    let (broker, t) = setup(ServerMode::Honest).await;
    round_trip(
        secure(&broker, &t, SaslMechanism::ScramSha512, PASSWORD),
        &broker,
        "secure",
    )
    .await;
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_over_tls_produces_and_consumes() {
    let (broker, t) = setup(ServerMode::Honest).await;
    round_trip(
        secure(&broker, &t, SaslMechanism::Plain, PASSWORD),
        &broker,
        "plain",
    )
    .await;
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_is_refused_by_the_server() {
    let (broker, t) = setup(ServerMode::Honest).await;
    for mech in [SaslMechanism::ScramSha512, SaslMechanism::Plain] {
        let cfg = secure(&broker, &t, mech, "wrong password");
        let addr = cfg.bootstrap[0].clone();
        let e = bounded(
            20,
            starlog_clients::connection::Connection::open(&addr, &cfg),
        )
        .await
        .unwrap_err();
        assert!(
            matches!(e, ClientError::Sasl { ref reason, .. } if reason.contains("SaslAuthenticationFailed")),
            "{mech:?}: {e}"
        );
    }
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_cannot_prove_the_credential_is_refused() {
    let (broker, t) = setup(ServerMode::Impostor).await;
    let cfg = secure(&broker, &t, SaslMechanism::ScramSha512, PASSWORD);
    let addr = cfg.bootstrap[0].clone();
    let e = bounded(
        20,
        starlog_clients::connection::Connection::open(&addr, &cfg),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(e, ClientError::Sasl { ref reason, .. } if reason.contains("signature")),
        "{e}"
    );
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_certificate_is_a_tls_error() {
    let (broker, t) = setup(ServerMode::Honest).await;
    let mut cfg = secure(&broker, &t, SaslMechanism::ScramSha512, PASSWORD);
    let other = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    cfg.tls = Some(TlsConfig {
        server_name: Some("localhost".into()),
        ..TlsConfig::with_ca_pem(other.cert.pem().into_bytes())
    });
    let addr = cfg.bootstrap[0].clone();
    let e = bounded(
        20,
        starlog_clients::connection::Connection::open(&addr, &cfg),
    )
    .await
    .unwrap_err();
    assert!(matches!(e, ClientError::Tls { .. }), "{e}");
    // And the right CA with the wrong name.
    let mut cfg = secure(&broker, &t, SaslMechanism::ScramSha512, PASSWORD);
    if let Some(tls) = cfg.tls.as_mut() {
        tls.server_name = Some("upstream.example".into());
    }
    let e = bounded(
        20,
        starlog_clients::connection::Connection::open(&addr, &cfg),
    )
    .await
    .unwrap_err();
    assert!(matches!(e, ClientError::Tls { .. }), "{e}");
    broker.stop().await;
}
