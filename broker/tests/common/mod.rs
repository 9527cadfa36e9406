//! Helpers shared by the broker's integration tests: a broker on a loopback
//! port with its own temporary data directory, a raw Kafka-protocol client
//! for byte-level tests, and the real alert files of the repository's
//! `testdata/`.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use starlog_broker::{BrokerConfig, Extensions, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A broker serving from a temporary directory on 127.0.0.1.
pub struct TestBroker {
    pub server: Option<Server>,
    pub dir: tempfile::TempDir,
    pub config: BrokerConfig,
    /// What is plugged in (kept for restarts).
    pub extensions: Extensions,
}

impl TestBroker {
    /// Starts a broker with the test defaults (no initial rebalance delay).
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Starts a broker after `tweak` adjusts its configuration.
    pub async fn start_with(tweak: impl FnOnce(&mut BrokerConfig)) -> Self {
        Self::start_extended(Extensions::default(), tweak).await
    }

    /// Starts a broker with `extensions` plugged in, after `tweak` adjusts
    /// its configuration.
    pub async fn start_extended(
        extensions: Extensions,
        tweak: impl FnOnce(&mut BrokerConfig),
    ) -> Self {
        // RUST_LOG=debug shows the broker's log lines in failing tests.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = BrokerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir: dir.path().join("data"),
            ..BrokerConfig::default()
        };
        config.schema_registry.listen = SocketAddr::from(([127, 0, 0, 1], 0));
        config.groups.initial_rebalance_delay_ms = 0;
        tweak(&mut config);
        let server = Server::start_with(config.clone(), extensions.clone())
            .await
            .expect("broker starts");
        Self {
            server: Some(server),
            dir,
            config,
            extensions,
        }
    }

    /// `host:port` for clients.
    pub fn bootstrap(&self) -> String {
        self.addr().to_string()
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.server.as_ref().expect("running").local_addr()
    }

    /// The schema registry's base URL.
    pub fn registry_url(&self) -> String {
        let addr = self
            .server
            .as_ref()
            .and_then(|s| s.registry_addr())
            .expect("registry enabled");
        format!("http://{addr}")
    }

    /// Stops the broker gracefully and starts it again on the same ports and data.
    pub async fn restart(&mut self) {
        let addr = self.addr();
        let registry = self.server.as_ref().and_then(|s| s.registry_addr());
        if let Some(s) = self.server.take() {
            s.shutdown().await;
        }
        let mut config = self.config.clone();
        config.listen = addr;
        if let Some(r) = registry {
            config.schema_registry.listen = r;
        }
        self.server = Some(
            Server::start_with(config, self.extensions.clone())
                .await
                .expect("broker restarts"),
        );
    }

    /// Stops the broker.
    pub async fn stop(mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown().await;
        }
    }
}

/// The repository's `testdata/` folder (real alert files; see its README).
pub fn testdata_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata")
}

/// Every `.avro` file under `sub` of the test data, sorted by path.
pub fn alert_files(sub: &str) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "avro") {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    walk(&testdata_dir().join(sub), &mut out);
    out.sort();
    assert!(!out.is_empty(), "no alert files under testdata/{sub}");
    out
}

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

/// A test binary that starts a broker here decodes outside bytes as the
/// binaries do, so it declares the same guarded global allocator.
#[global_allocator]
static GLOBAL: starlog_alloc::GuardedAllocator = starlog_alloc::GuardedAllocator;
