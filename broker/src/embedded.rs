//! The embedding API: a Rust program or test starts a whole broker in its
//! own process with a builder (data directory, listeners, configuration,
//! what is plugged in) and gets back its bound addresses and a shutdown
//! handle — `EmbeddedKafka` without a JVM or a container.
//!
//! ```no_run
//! # async fn demo() -> Result<(), starlog_broker::StartError> {
//! let broker = starlog_broker::Embedded::builder()
//!     .data_dir("/tmp/starlog-embedded")
//!     .listen(([127, 0, 0, 1], 0).into())
//!     .start()
//!     .await?;
//! println!("bootstrap: {}", broker.kafka_addr());
//! broker.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! It is a thin layer over [`Server::start_with`]: the builder only settles
//! the configuration.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::config::BrokerConfig;
use crate::extensions::Extensions;
use crate::server::{Server, StartError};

/// Where an embedded broker is started from: [`Embedded::builder`].
#[derive(Debug, Clone, Copy)]
pub struct Embedded;

impl Embedded {
    /// A builder with the default configuration, except that the Kafka
    /// listener and the HTTP listener (when on) bind `127.0.0.1:0` so that
    /// brokers started side by side never collide.
    pub fn builder() -> EmbeddedBuilder {
        EmbeddedBuilder::default()
    }
}

/// Settles an embedded broker's configuration; [`EmbeddedBuilder::start`]
/// starts it. The data directory and listener addresses set here win over
/// those of [`EmbeddedBuilder::config`], whatever the order of the calls.
#[derive(Debug, Clone)]
pub struct EmbeddedBuilder {
    config: BrokerConfig,
    extensions: Extensions,
    data_dir: Option<PathBuf>,
    listen: Option<SocketAddr>,
    http_listen: Option<SocketAddr>,
}

impl Default for EmbeddedBuilder {
    fn default() -> Self {
        let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
        let mut config = BrokerConfig {
            listen: loopback,
            ..BrokerConfig::default()
        };
        config.schema_registry.listen = loopback;
        Self {
            config,
            extensions: Extensions::default(),
            data_dir: None,
            listen: None,
            http_listen: None,
        }
    }
}

impl EmbeddedBuilder {
    /// The whole configuration (for example read with
    /// [`BrokerConfig::from_yaml`]); replaces the builder's default one.
    pub fn config(mut self, config: BrokerConfig) -> Self {
        self.config = config;
        self
    }

    /// The directory the logs and metadata live in (created if absent).
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.data_dir = Some(dir.into());
        self
    }

    /// The Kafka listener's address (port 0: any free port).
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = Some(addr);
        self
    }

    /// Turns the HTTP listener (`/metrics`, `/cluster/*`, the schema
    /// registry when enabled) on at `addr` (port 0: any free port).
    pub fn http_listen(mut self, addr: SocketAddr) -> Self {
        self.http_listen = Some(addr);
        self
    }

    /// What is plugged in (the schema-id rule's upstream registry client,
    /// the runner of configured mirrors).
    pub fn extensions(mut self, extensions: Extensions) -> Self {
        self.extensions = extensions;
        self
    }

    /// The configuration [`EmbeddedBuilder::start`] starts the broker with.
    pub fn settled_config(&self) -> BrokerConfig {
        let mut config = self.config.clone();
        if let Some(dir) = &self.data_dir {
            config.data_dir.clone_from(dir);
        }
        if let Some(addr) = self.listen {
            config.listen = addr;
        }
        if let Some(addr) = self.http_listen {
            config.set_http_listen(addr);
        }
        config
    }

    /// Opens the data directory, binds the listeners and starts serving.
    pub async fn start(self) -> Result<EmbeddedBroker, StartError> {
        let config = self.settled_config();
        let server = Server::start_with(config.clone(), self.extensions).await?;
        Ok(EmbeddedBroker { server, config })
    }
}

/// A broker running in this process; stop it with
/// [`EmbeddedBroker::shutdown`] (dropping it leaves its tasks running on
/// the runtime until the runtime ends).
#[derive(Debug)]
pub struct EmbeddedBroker {
    server: Server,
    config: BrokerConfig,
}

impl EmbeddedBroker {
    /// The Kafka listener's bound address.
    pub fn kafka_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    /// `host:port` of the Kafka listener, as clients take it.
    pub fn bootstrap(&self) -> String {
        self.kafka_addr().to_string()
    }

    /// The HTTP listener's bound address, when it is on.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.server.http_addr()
    }

    /// The schema registry's bound address, when it is enabled and the
    /// HTTP listener is on.
    pub fn registry_addr(&self) -> Option<SocketAddr> {
        self.server.registry_addr()
    }

    /// The configuration it was started with (as requested: port 0 stays
    /// 0 here; the bound addresses are above).
    pub fn config(&self) -> &BrokerConfig {
        &self.config
    }

    /// The running server (pipelines' status, broker state).
    pub fn server(&self) -> &Server {
        &self.server
    }

    /// Stops accepting, lets in-flight requests finish, flushes every log.
    pub async fn shutdown(self) {
        self.server.shutdown().await;
    }
}
