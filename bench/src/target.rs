//! The broker under test: started fresh for each run, or already running.
//!
//! A side-by-side comparison must treat Starlog and the peer alike, so both
//! are `BrokerTarget`s: `start` gives a `RunningBroker` with a bootstrap
//! address and (when known) a process id to sample, and `stop` ends it. A
//! spawned broker (`spawned::CommandTarget`) gets a fresh data directory per
//! run, so no run reads another's data; an external one (`ExternalBroker`)
//! is simply used as it is. Tests plug in in-process brokers the same way.

use crate::error::BenchError;

/// Something that can provide a broker for one run.
pub trait BrokerTarget: Send {
    /// A short name for reports (`starlog`, `tansu`).
    fn name(&self) -> &str;
    /// Starts (or reuses) a broker and waits until it accepts connections.
    fn start(&mut self) -> Result<Box<dyn RunningBroker>, BenchError>;
}

/// A broker serving one run.
pub trait RunningBroker: Send {
    /// `host:port` for clients.
    fn bootstrap(&self) -> String;
    /// The process to sample for CPU and memory, when known.
    fn pid(&self) -> Option<u32>;
    /// `host:port` of the broker's HTTP listener (`/metrics`), when known.
    fn http_addr(&self) -> Option<String> {
        None
    }
    /// Client properties (librdkafka's names) a client needs to reach it,
    /// e.g. `security.protocol` and the SASL login; none for plaintext.
    fn client_config(&self) -> Vec<(String, String)> {
        Vec::new()
    }
    /// How it was started (the command line, or `external`).
    fn describe(&self) -> String;
    /// Stops it (a no-op for an external broker).
    fn stop(self: Box<Self>) -> Result<(), BenchError>;
}

/// A broker someone else started.
#[derive(Debug, Clone)]
pub struct ExternalBroker {
    name: String,
    bootstrap: String,
    pid: Option<u32>,
    client_config: Vec<(String, String)>,
}

impl ExternalBroker {
    /// A broker at `bootstrap`, optionally with its process id for sampling.
    pub fn new(name: impl Into<String>, bootstrap: impl Into<String>, pid: Option<u32>) -> Self {
        Self {
            name: name.into(),
            bootstrap: bootstrap.into(),
            pid,
            client_config: Vec::new(),
        }
    }

    /// Clients reach it with these properties (see
    /// `RunningBroker::client_config`).
    #[must_use]
    pub fn with_client_config(mut self, config: Vec<(String, String)>) -> Self {
        self.client_config = config;
        self
    }
}

impl BrokerTarget for ExternalBroker {
    fn name(&self) -> &str {
        &self.name
    }

    fn start(&mut self) -> Result<Box<dyn RunningBroker>, BenchError> {
        Ok(Box::new(self.clone()))
    }
}

impl RunningBroker for ExternalBroker {
    fn bootstrap(&self) -> String {
        self.bootstrap.clone()
    }

    fn pid(&self) -> Option<u32> {
        self.pid
    }

    fn client_config(&self) -> Vec<(String, String)> {
        self.client_config.clone()
    }

    fn describe(&self) -> String {
        format!("external broker at {}", self.bootstrap)
    }

    fn stop(self: Box<Self>) -> Result<(), BenchError> {
        Ok(())
    }
}
