//! In-process Starlog brokers for the bench's tests: each on 127.0.0.1:0
//! with its own temporary data directory and no schema registry, served by
//! a tokio runtime owned by the test while the bench runs on the test's own
//! thread, exactly as it runs against a separate process.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use starlog_bench::target::{BrokerTarget, RunningBroker};
use starlog_bench::BenchError;
use starlog_broker::config::{FlushNamed, FlushSetting};
use starlog_broker::{BrokerConfig, Server};

/// A Starlog broker in this process.
pub struct InProcess {
    pub runtime: Arc<tokio::runtime::Runtime>,
    server: Option<Server>,
    _dir: tempfile::TempDir,
    name: String,
}

fn runtime() -> Arc<tokio::runtime::Runtime> {
    Arc::new(
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap(),
    )
}

/// Starts a broker with `flush` as its fsync policy.
pub fn start(runtime: Arc<tokio::runtime::Runtime>, name: &str, flush: FlushSetting) -> InProcess {
    let dir = tempfile::tempdir().unwrap();
    let mut config = BrokerConfig {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        data_dir: dir.path().join("data"),
        ..BrokerConfig::default()
    };
    config.groups.initial_rebalance_delay_ms = 0;
    config.schema_registry.enabled = false;
    config.log.flush = flush;
    let server = runtime.block_on(Server::start(config)).unwrap();
    InProcess {
        runtime,
        server: Some(server),
        _dir: dir,
        name: name.to_string(),
    }
}

/// A broker with the default 5 ms group commit.
pub fn start_default() -> InProcess {
    start(runtime(), "starlog", FlushSetting::IntervalMs(5))
}

impl InProcess {
    pub fn bootstrap_addr(&self) -> String {
        self.server.as_ref().unwrap().local_addr().to_string()
    }
}

impl RunningBroker for InProcess {
    fn bootstrap(&self) -> String {
        self.bootstrap_addr()
    }

    fn pid(&self) -> Option<u32> {
        // In-process: the sample includes the load generator's own threads.
        Some(std::process::id())
    }

    fn describe(&self) -> String {
        format!("in-process {}", self.name)
    }

    fn stop(mut self: Box<Self>) -> Result<(), BenchError> {
        if let Some(s) = self.server.take() {
            self.runtime.block_on(s.shutdown());
        }
        Ok(())
    }
}

/// A target that starts a fresh in-process broker per run and logs each start.
pub struct InProcessTarget {
    pub name: String,
    pub flush: FlushSetting,
    pub starts: Arc<Mutex<Vec<String>>>,
    runtime: Arc<tokio::runtime::Runtime>,
}

impl InProcessTarget {
    pub fn new(name: &str, flush: FlushSetting, starts: Arc<Mutex<Vec<String>>>) -> Self {
        Self {
            name: name.to_string(),
            flush,
            starts,
            runtime: runtime(),
        }
    }
}

impl BrokerTarget for InProcessTarget {
    fn name(&self) -> &str {
        &self.name
    }

    fn start(&mut self) -> Result<Box<dyn RunningBroker>, BenchError> {
        self.starts.lock().unwrap().push(self.name.clone());
        Ok(Box::new(start(
            Arc::clone(&self.runtime),
            &self.name,
            self.flush,
        )))
    }
}

/// `FlushSetting::Named(Always)`: fsync before every acknowledgement.
pub fn flush_always() -> FlushSetting {
    FlushSetting::Named(FlushNamed::Always)
}

/// A test binary that starts a broker here decodes outside bytes as the
/// binaries do, so it declares the same guarded global allocator.
#[global_allocator]
static GLOBAL: starlog_alloc::GuardedAllocator = starlog_alloc::GuardedAllocator;
