//! Helpers specific to the broker's integration tests: a raw Kafka-protocol
//! client for byte-level tests and a one-shot HTTP request; the test broker
//! and the test data come from `starlog-testkit`.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[allow(unused_imports)] // each test binary uses a part
pub use starlog_testkit::{alert_files, testdata_dir, TestBroker};

/// A raw Kafka-protocol connection for byte-level tests.
pub struct RawClient {
    pub stream: TcpStream,
    correlation: i32,
}

impl RawClient {
    pub async fn connect(addr: SocketAddr) -> Self {
        Self {
            stream: TcpStream::connect(addr).await.expect("connect"),
            correlation: 0,
        }
    }

    /// Sends a request and decodes its response.
    pub async fn call(&mut self, request: RequestKind, key: ApiKey, version: i16) -> ResponseKind {
        self.correlation += 1;
        let header = RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation)
            .with_client_id(Some(StrBytes::from_static_str("raw-test")));
        let mut body = BytesMut::new();
        header
            .encode(&mut body, key.request_header_version(version))
            .expect("header encodes");
        request.encode(&mut body, version).expect("request encodes");
        self.send_frame(&body).await;
        let mut frame = self.read_frame().await.expect("a response frame");
        let rh = ResponseHeader::decode(&mut frame, key.response_header_version(version))
            .expect("response header");
        assert_eq!(rh.correlation_id, self.correlation, "correlation id echoed");
        ResponseKind::decode(key, &mut frame, version).expect("response decodes")
    }

    /// Sends bytes as one size-prefixed frame.
    pub async fn send_frame(&mut self, body: &[u8]) {
        let mut buf = BytesMut::with_capacity(body.len() + 4);
        buf.put_i32(i32::try_from(body.len()).expect("frame fits"));
        buf.put_slice(body);
        self.stream.write_all(&buf).await.expect("write");
    }

    /// Announces a frame of `len` bytes and sends its body for as long as the
    /// broker reads it: a broker that refuses the size may close the
    /// connection before the body is written, so a failed write is expected.
    pub async fn send_oversize_frame(&mut self, len: usize) {
        let size = i32::try_from(len).expect("frame size fits");
        if self.stream.write_all(&size.to_be_bytes()).await.is_err() {
            return;
        }
        let _ = self.stream.write_all(&vec![0u8; len]).await;
    }

    /// Reads one response frame, or None when the broker closed the connection.
    pub async fn read_frame(&mut self) -> Option<Bytes> {
        let size = tokio::time::timeout(Duration::from_secs(20), self.stream.read_i32())
            .await
            .expect("broker answers or closes within 20 s")
            .ok()?;
        let mut frame = vec![0u8; usize::try_from(size).ok()?];
        self.stream.read_exact(&mut frame).await.ok()?;
        Some(Bytes::from(frame))
    }

    /// True when the broker closed the connection (EOF) within 20 s.
    pub async fn is_closed_by_broker(&mut self) -> bool {
        let mut b = [0u8; 1];
        matches!(
            tokio::time::timeout(Duration::from_secs(20), self.stream.read(&mut b)).await,
            Ok(Ok(0)) | Ok(Err(_))
        )
    }
}

/// One HTTP/1.1 request with `Connection: close`; returns (status, JSON body).
pub async fn http(
    base: &str,
    method: &str,
    path: &str,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    let host = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(host)
        .await
        .expect("connect registry");
    let payload = body.map(|b| b.to_string()).unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/vnd.schemaregistry.v1+json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{payload}",
        payload.len()
    );
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.expect("read");
    let text = String::from_utf8(response).expect("utf8 response");
    let (head, body) = text.split_once("\r\n\r\n").expect("http response");
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status code");
    let body = if body.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_str(body).unwrap_or(serde_json::Value::String(body.to_string()))
    };
    (status, body)
}

/// A Kafka listener on a free loopback port: `name`, `security`, and on a
/// SASL listener all three mechanisms (SCRAM-SHA-512, SCRAM-SHA-256, PLAIN).
pub fn listener(
    name: &str,
    security: starlog_broker::listener::SecurityProtocol,
) -> starlog_broker::listener::ListenerSettings {
    let mut l = starlog_broker::listener::ListenerSettings::plaintext(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        None,
    );
    l.name = name.to_string();
    l.security = security;
    if security.sasl() {
        l.sasl_mechanisms = vec![
            "SCRAM-SHA-512".into(),
            "SCRAM-SHA-256".into(),
            "PLAIN".into(),
        ];
    }
    l
}

/// A test binary that starts a broker here decodes outside bytes as the
/// binaries do, so it declares the same guarded global allocator.
#[global_allocator]
static GLOBAL: starlog_alloc::GuardedAllocator = starlog_alloc::GuardedAllocator;

/// The file names (without `.avro`) of the `fink-alert-simulator` ZTF
/// alerts that have a solar-system association, from `testdata/manifest.csv`:
/// what a SolarSystemFilter `include` chain must pass, computed without it.
pub fn solar_system_ids() -> std::collections::HashSet<String> {
    let text = std::fs::read_to_string(testdata_dir().join("manifest.csv")).expect("manifest.csv");
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("header").split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).expect("column");
    let (file_col, ss_col) = (col("file"), col("ssnamenr"));
    lines
        .map(|l| l.split(',').collect::<Vec<_>>())
        .filter(|c| {
            c[file_col].starts_with("ztf/alerts/fink-alert-simulator/") && !c[ss_col].is_empty()
        })
        .filter_map(|c| {
            c[file_col]
                .rsplit('/')
                .next()
                .map(|f| f.trim_end_matches(".avro").to_string())
        })
        .collect()
}
