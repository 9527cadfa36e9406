//! [`TestBroker`]: a broker in this process for tests.

use std::net::SocketAddr;
use std::time::Duration;

use starlog_broker::{BrokerConfig, Embedded, EmbeddedBroker, Extensions, Server};
use starlog_clients::{ClientConfig, ConsumerConfig, OffsetReset, ProducerConfig};

/// A broker serving from a temporary directory on 127.0.0.1: the Kafka
/// listener and the HTTP listener (with the schema registry) on free ports,
/// no initial rebalance delay. It panics when the broker cannot start: it
/// is for tests.
#[derive(Debug)]
pub struct TestBroker {
    /// The running broker (`None` after [`TestBroker::stop`] began).
    pub server: Option<EmbeddedBroker>,
    /// Its temporary directory (the data is in `data/` under it).
    pub dir: tempfile::TempDir,
    /// The configuration it was started with.
    pub config: BrokerConfig,
    /// What is plugged in (kept for restarts).
    pub extensions: Extensions,
}

/// RUST_LOG=debug shows the broker's and clients' log lines in failing
/// tests.
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

fn started(result: Result<EmbeddedBroker, starlog_broker::StartError>) -> EmbeddedBroker {
    match result {
        Ok(b) => b,
        Err(e) => panic!("the test broker did not start: {e}"),
    }
}

impl TestBroker {
    /// Starts a broker with the test defaults.
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Starts a broker after `tweak` adjusts its configuration.
    pub async fn start_with(tweak: impl FnOnce(&mut BrokerConfig)) -> Self {
        Self::start_extended(Extensions::default(), tweak).await
    }

    /// Starts a broker with `extensions` plugged in (the `starlog` binary's
    /// are `starlog::extensions()`), after `tweak` adjusts its
    /// configuration.
    pub async fn start_extended(
        extensions: Extensions,
        tweak: impl FnOnce(&mut BrokerConfig),
    ) -> Self {
        init_tracing();
        let dir = match tempfile::tempdir() {
            Ok(d) => d,
            Err(e) => panic!("no temporary directory: {e}"),
        };
        let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
        let mut config = BrokerConfig {
            listen: loopback,
            data_dir: dir.path().join("data"),
            ..BrokerConfig::default()
        };
        config.schema_registry.listen = loopback;
        config.groups.initial_rebalance_delay_ms = 0;
        tweak(&mut config);
        let server = started(
            Embedded::builder()
                .config(config.clone())
                .extensions(extensions.clone())
                .start()
                .await,
        );
        Self {
            server: Some(server),
            dir,
            config,
            extensions,
        }
    }

    fn running(&self) -> &EmbeddedBroker {
        match &self.server {
            Some(s) => s,
            None => panic!("the test broker is stopped"),
        }
    }

    /// The running server (pipelines' status, the broker's state).
    pub fn server(&self) -> &Server {
        self.running().server()
    }

    /// `host:port` for clients.
    pub fn bootstrap(&self) -> String {
        self.addr().to_string()
    }

    /// The Kafka listener's bound address.
    pub fn addr(&self) -> SocketAddr {
        self.running().kafka_addr()
    }

    /// The schema registry's base URL.
    pub fn registry_url(&self) -> String {
        match self.running().registry_addr() {
            Some(addr) => format!("http://{addr}"),
            None => panic!("the test broker's schema registry is off"),
        }
    }

    /// Stops the broker gracefully and starts it again on the same ports
    /// and data.
    pub async fn restart(&mut self) {
        let addr = self.addr();
        let registry = self.running().registry_addr();
        if let Some(s) = self.server.take() {
            s.shutdown().await;
        }
        let mut config = self.config.clone();
        config.listen = addr;
        if let Some(r) = registry {
            config.schema_registry.listen = r;
        }
        self.server = Some(started(
            Embedded::builder()
                .config(config)
                .extensions(self.extensions.clone())
                .start()
                .await,
        ));
    }

    /// Stops the broker.
    pub async fn stop(mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown().await;
        }
    }

    /// `starlog-clients` options with short timeouts for tests.
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
