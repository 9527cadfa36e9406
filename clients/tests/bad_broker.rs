//! A fake broker (a TcpListener in the test) that misbehaves: closes the
//! connection in the middle of a response, sends garbage, a wrong
//! correlation id, an absurd frame size, Kafka error codes, or nothing at
//! all. Every case must end in a typed error (or a successful retry) within
//! a bounded time, never a hang or a panic.
//!
//! The Kafka codec pre-allocates arrays from the element count a response
//! claims; decoding garbage may therefore ask for a huge (never touched)
//! allocation. Binaries that talk to untrusted brokers install the guarded
//! global allocator of `starlog-alloc` (the `starlog` binary does); this
//! test binary declares the same one in `common`.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use common::bounded;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsResponse, BrokerId, MetadataResponse, RequestHeader, ResponseHeader,
    TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use kafka_protocol::ResponseError;
use starlog_clients::cluster::Cluster;
use starlog_clients::connection::Connection;
use starlog_clients::versions::CLIENT_RANGES;
use starlog_clients::{ClientConfig, ClientError, Producer, ProducerConfig, ProducerRecord};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How the fake answers a request.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Misbehave {
    /// Proper ApiVersions and Metadata answers.
    Proper,
    /// Half a frame, then close.
    CloseMidResponse,
    /// Close before answering.
    CloseBeforeResponse,
    /// Right correlation id, random body.
    Garbage,
    /// A different correlation id.
    WrongCorrelation,
    /// A frame size over the client's limit.
    HugeFrame,
    /// Read and never answer.
    Silent,
    /// ApiVersions with an error code.
    ApiVersionsError,
    /// Proper ApiVersions; Metadata names the topic with an error code.
    TopicError,
}

struct Fake {
    addr: String,
    connections: Arc<AtomicUsize>,
}

/// Serves connections: the first `bad_connections` misbehave as `first`,
/// later ones as `then`.
async fn fake(first: Misbehave, bad_connections: usize, then: Misbehave) -> Fake {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let connections = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&connections);
    let advertised = listener.local_addr().unwrap();
    tokio::spawn(async move {
        // Bounded: a test opens a handful of connections.
        for _ in 0..50 {
            let Ok((sock, _)) = listener.accept().await else {
                return;
            };
            let n = counter.fetch_add(1, Ordering::SeqCst);
            let mode = if n < bad_connections { first } else { then };
            tokio::spawn(serve(sock, mode, advertised.port()));
        }
    });
    Fake { addr, connections }
}

async fn read_frame(sock: &mut TcpStream) -> Option<Bytes> {
    let size = sock.read_i32().await.ok()?;
    let mut buf = vec![0u8; usize::try_from(size).ok()?];
    sock.read_exact(&mut buf).await.ok()?;
    Some(Bytes::from(buf))
}

async fn send(sock: &mut TcpStream, body: &[u8]) {
    let mut out = BytesMut::new();
    out.put_i32(i32::try_from(body.len()).unwrap());
    out.put_slice(body);
    let _ = sock.write_all(&out).await;
}

fn response<T: Encodable>(key: ApiKey, version: i16, correlation: i32, body: &T) -> Bytes {
    let mut out = BytesMut::new();
    ResponseHeader::default()
        .with_correlation_id(correlation)
        .encode(&mut out, key.response_header_version(version))
        .unwrap();
    body.encode(&mut out, version).unwrap();
    out.freeze()
}

async fn serve(mut sock: TcpStream, mode: Misbehave, port: u16) {
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..100 {
        let Some(mut frame) = read_frame(&mut sock).await else {
            return;
        };
        let key = ApiKey::try_from(i16::from_be_bytes([frame[0], frame[1]])).unwrap();
        let version = i16::from_be_bytes([frame[2], frame[3]]);
        let header =
            RequestHeader::decode(&mut frame, key.request_header_version(version)).unwrap();
        let c = header.correlation_id;
        match mode {
            Misbehave::CloseMidResponse => {
                let mut out = BytesMut::new();
                out.put_i32(100);
                out.put_i32(c);
                out.put_slice(&[0u8; 10]);
                let _ = sock.write_all(&out).await;
                return;
            }
            Misbehave::CloseBeforeResponse => return,
            Misbehave::Garbage => {
                let mut body = BytesMut::new();
                body.put_i32(c);
                for _ in 0..64 {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    body.put_u8(seed as u8);
                }
                send(&mut sock, &body).await;
            }
            Misbehave::WrongCorrelation => {
                let mut body = BytesMut::new();
                body.put_i32(c.wrapping_add(1000));
                body.put_slice(&[0u8; 16]);
                send(&mut sock, &body).await;
            }
            Misbehave::HugeFrame => {
                let _ = sock.write_all(&i32::MAX.to_be_bytes()).await;
            }
            Misbehave::Silent => {}
            Misbehave::ApiVersionsError | Misbehave::Proper | Misbehave::TopicError => {
                if key == ApiKey::ApiVersions {
                    let mut resp = ApiVersionsResponse::default().with_api_keys(
                        CLIENT_RANGES
                            .iter()
                            .map(|(k, lo, hi)| {
                                ApiVersion::default()
                                    .with_api_key(*k as i16)
                                    .with_min_version(*lo)
                                    .with_max_version(*hi)
                            })
                            .collect(),
                    );
                    if mode == Misbehave::ApiVersionsError {
                        resp =
                            resp.with_error_code(ResponseError::ClusterAuthorizationFailed.code());
                    }
                    send(&mut sock, &response(key, version, c, &resp)).await;
                } else if key == ApiKey::Metadata {
                    let code = if mode == Misbehave::TopicError {
                        ResponseError::TopicAuthorizationFailed.code()
                    } else {
                        0
                    };
                    let resp = MetadataResponse::default()
                        .with_brokers(vec![MetadataResponseBroker::default()
                            .with_node_id(BrokerId(1))
                            .with_host(StrBytes::from_static_str("127.0.0.1"))
                            .with_port(i32::from(port))])
                        .with_controller_id(BrokerId(1))
                        .with_topics(vec![MetadataResponseTopic::default()
                            .with_name(Some(TopicName(StrBytes::from_static_str("t"))))
                            .with_error_code(code)
                            .with_partitions(vec![MetadataResponsePartition::default()
                                .with_partition_index(0)
                                .with_leader_id(BrokerId(1))])]);
                    send(&mut sock, &response(key, version, c, &resp)).await;
                }
                // Anything else: no answer (the client's timeout handles it).
            }
        }
    }
}

fn config(addr: &str) -> ClientConfig {
    let mut c = ClientConfig::new(addr);
    c.request_timeout = Duration::from_millis(500);
    c.connect_timeout = Duration::from_secs(2);
    c.retry_backoff = Duration::from_millis(20);
    c
}

#[tokio::test]
async fn close_in_the_middle_of_a_response_is_a_typed_error() {
    common::init_tracing();
    let f = fake(Misbehave::CloseMidResponse, 100, Misbehave::Proper).await;
    let e = bounded(10, Connection::open(&f.addr, &config(&f.addr)))
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            ClientError::ConnectionClosed {
                mid_response: true,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.is_retriable());
}

#[tokio::test]
async fn close_before_the_response_is_a_typed_error() {
    let f = fake(Misbehave::CloseBeforeResponse, 100, Misbehave::Proper).await;
    let e = bounded(10, Connection::open(&f.addr, &config(&f.addr)))
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            ClientError::ConnectionClosed {
                mid_response: false,
                ..
            }
        ),
        "{e}"
    );
}

#[tokio::test]
async fn garbage_is_a_typed_error() {
    let f = fake(Misbehave::Garbage, 100, Misbehave::Proper).await;
    let e = bounded(10, Connection::open(&f.addr, &config(&f.addr)))
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            ClientError::Garbage {
                api: ApiKey::ApiVersions,
                ..
            }
        ),
        "{e}"
    );
}

#[tokio::test]
async fn a_wrong_correlation_id_is_a_typed_error() {
    let f = fake(Misbehave::WrongCorrelation, 100, Misbehave::Proper).await;
    let e = bounded(10, Connection::open(&f.addr, &config(&f.addr)))
        .await
        .unwrap_err();
    assert!(
        matches!(e, ClientError::Garbage { ref reason, .. } if reason.contains("correlation id")),
        "{e}"
    );
}

#[tokio::test]
async fn an_absurd_frame_size_is_refused_without_allocating_it() {
    let f = fake(Misbehave::HugeFrame, 100, Misbehave::Proper).await;
    let e = bounded(10, Connection::open(&f.addr, &config(&f.addr)))
        .await
        .unwrap_err();
    assert!(
        matches!(e, ClientError::FrameTooLarge { size, .. } if size == i64::from(i32::MAX)),
        "{e}"
    );
}

#[tokio::test]
async fn a_silent_broker_times_out() {
    let f = fake(Misbehave::Silent, 100, Misbehave::Proper).await;
    let e = bounded(10, Connection::open(&f.addr, &config(&f.addr)))
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            ClientError::Timeout {
                api: ApiKey::ApiVersions,
                ..
            } | ClientError::ConnectTimeout { .. }
        ),
        "{e}"
    );
}

#[tokio::test]
async fn error_codes_become_typed_broker_errors() {
    let f = fake(Misbehave::ApiVersionsError, 100, Misbehave::Proper).await;
    let e = bounded(10, Connection::open(&f.addr, &config(&f.addr)))
        .await
        .unwrap_err();
    assert_eq!(
        e.response_error(),
        Some(ResponseError::ClusterAuthorizationFailed),
        "{e}"
    );

    let f = fake(Misbehave::TopicError, 100, Misbehave::Proper).await;
    let cluster = Cluster::new(config(&f.addr)).unwrap();
    let e = bounded(10, cluster.topic("t", false)).await.unwrap_err();
    assert_eq!(
        e.response_error(),
        Some(ResponseError::TopicAuthorizationFailed),
        "{e}"
    );
    assert!(!e.is_retriable());
}

#[tokio::test]
async fn a_request_the_broker_ignores_times_out() {
    // Proper handshake, but Produce/InitProducerId are never answered.
    let f = fake(Misbehave::Proper, 0, Misbehave::Proper).await;
    let conn = bounded(10, Connection::open(&f.addr, &config(&f.addr)))
        .await
        .unwrap();
    let req = kafka_protocol::messages::FindCoordinatorRequest::default()
        .with_key(StrBytes::from_static_str("g"));
    let e = bounded(10, conn.call(&req)).await.unwrap_err();
    assert!(
        matches!(
            e,
            ClientError::Timeout {
                api: ApiKey::FindCoordinator,
                ..
            }
        ),
        "{e}"
    );
}

#[tokio::test]
async fn metadata_retries_past_a_connection_that_dies_mid_response() {
    let f = fake(Misbehave::CloseMidResponse, 1, Misbehave::Proper).await;
    let cluster = Cluster::new(config(&f.addr)).unwrap();
    let info = bounded(10, cluster.topic("t", false)).await.unwrap();
    assert_eq!(info.name, "t");
    assert!(
        f.connections.load(Ordering::SeqCst) >= 2,
        "a second connection was opened"
    );
}

#[tokio::test]
async fn a_producer_whose_broker_never_acknowledges_fails_its_deliveries_in_time() {
    // The handshake and metadata work, but produce requests are never
    // answered: the producer retries (each attempt times out) until the
    // delivery timeout, then fails the delivery with a typed error.
    let f = fake(Misbehave::Proper, 0, Misbehave::Proper).await;
    let mut cfg = ProducerConfig::new(&f.addr);
    cfg.client = config(&f.addr);
    cfg.idempotence = false;
    cfg.acks = starlog_clients::Acks::Leader;
    cfg.delivery_timeout = Duration::from_secs(2);
    let p = Producer::new(cfg).unwrap();
    let delivery = bounded(10, p.send(ProducerRecord::new("t").value("x")))
        .await
        .unwrap();
    let e = bounded(20, delivery).await.unwrap_err();
    assert!(
        matches!(e, ClientError::DeliveryTimeout { ref topic, partition: 0, .. } if topic == "t"),
        "{e}"
    );
}

#[tokio::test]
async fn nothing_listening_is_a_connect_error() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    drop(l);
    let e = bounded(10, Connection::open(&addr, &config(&addr)))
        .await
        .unwrap_err();
    assert!(matches!(e, ClientError::Connect { .. }), "{e}");
    let cluster = Cluster::new(config(&addr)).unwrap();
    let e = bounded(10, cluster.any_connection()).await.unwrap_err();
    assert!(
        matches!(e, ClientError::NoBrokerAvailable { ref tried, .. } if tried == &vec![addr.clone()]),
        "{e}"
    );
}
