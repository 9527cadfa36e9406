//! Helpers shared by the client's integration tests: a Starlog broker on a
//! loopback port with its own temporary data directory (the same small
//! helper as the broker's tests), client configurations pointing at it, and
//! the real alert files of the repository's `testdata/`.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use starlog_broker::{BrokerConfig, Server};
use starlog_clients::{ClientConfig, ConsumerConfig, OffsetReset, ProducerConfig};

/// A broker serving from a temporary directory on 127.0.0.1.
pub struct TestBroker {
    pub server: Option<Server>,
    pub dir: tempfile::TempDir,
    pub config: BrokerConfig,
}

impl TestBroker {
    /// Starts a broker with the test defaults (no initial rebalance delay).
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Starts a broker after `tweak` adjusts its configuration.
    pub async fn start_with(tweak: impl FnOnce(&mut BrokerConfig)) -> Self {
        init_tracing();
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = BrokerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir: dir.path().join("data"),
            ..BrokerConfig::default()
        };
        config.groups.initial_rebalance_delay_ms = 0;
        // The client tests need no schema registry (and its fixed port
        // would collide between tests running in parallel).
        config.schema_registry.enabled = false;
        tweak(&mut config);
        let server = Server::start(config.clone()).await.expect("broker starts");
        Self {
            server: Some(server),
            dir,
            config,
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

    /// Stops the broker gracefully and starts it again on the same port and data.
    pub async fn restart(&mut self) {
        let addr = self.addr();
        if let Some(s) = self.server.take() {
            s.shutdown().await;
        }
        let mut config = self.config.clone();
        config.listen = addr;
        self.server = Some(Server::start(config).await.expect("broker restarts"));
    }

    /// Stops the broker.
    pub async fn stop(mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown().await;
        }
    }

    /// Client options with short timeouts for tests.
    pub fn client(&self) -> ClientConfig {
        let mut c = ClientConfig::new(&self.bootstrap());
        c.client_id = "clients-test".into();
        c.request_timeout = Duration::from_secs(10);
        c.connect_timeout = Duration::from_secs(5);
        c.retry_backoff = Duration::from_millis(50);
        c
    }

    /// Producer options (idempotent, acks=all, short linger).
    pub fn producer(&self) -> ProducerConfig {
        ProducerConfig {
            client: self.client(),
            linger: Duration::from_millis(2),
            delivery_timeout: Duration::from_secs(30),
            ..ProducerConfig::default()
        }
    }

    /// Consumer options reading from the start, with fast group timings.
    pub fn consumer(&self, group: Option<&str>) -> ConsumerConfig {
        ConsumerConfig {
            client: self.client(),
            group_id: group.map(str::to_owned),
            auto_offset_reset: OffsetReset::Earliest,
            session_timeout: Duration::from_secs(10),
            rebalance_timeout: Duration::from_secs(10),
            heartbeat_interval: Duration::from_millis(300),
            fetch_max_wait: Duration::from_millis(100),
            ..ConsumerConfig::default()
        }
    }
}

/// RUST_LOG=debug shows client and broker logs in failing tests.
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
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

/// Real alert payloads (whole OCF files as message values).
pub fn alerts(sub: &str, n: usize) -> Vec<bytes::Bytes> {
    alert_files(sub)
        .into_iter()
        .take(n)
        .map(|p| bytes::Bytes::from(std::fs::read(&p).expect("read alert")))
        .collect()
}

/// Runs `f` with a hard time limit so no test can hang.
pub async fn bounded<T>(secs: u64, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(secs), f)
        .await
        .expect("test step finished within its time limit")
}

/// A test binary that starts a broker here decodes outside bytes as the
/// binaries do, so it declares the same guarded global allocator.
#[global_allocator]
static GLOBAL: starlog_alloc::GuardedAllocator = starlog_alloc::GuardedAllocator;
