//! Certificate rotation: every [`ServerTls`] of the broker (the Kafka
//! listeners', the HTTP listener's, the inter-broker listener's) is
//! registered in one [`TlsReloader`], which re-reads their PEM files when
//! they change on disk (polled) and on demand (`SIGHUP`, through
//! `Server::reload_tls`). A reload swaps the configuration new connections
//! get; open connections keep theirs. A file that does not load leaves the
//! old configuration in place and is logged.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use starlog_security::tls::{ServerTls, TlsError};
use tokio::sync::watch;

/// How often the files are checked for changes.
pub const TLS_POLL_INTERVAL: Duration = Duration::from_secs(10);

/// The broker's TLS configurations, by the name of what serves them.
#[derive(Debug, Default)]
pub struct TlsReloader {
    entries: Mutex<Vec<(String, Arc<ServerTls>)>>,
}

impl TlsReloader {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a configuration (`name`: the listener, as logged).
    pub fn register(&self, name: impl Into<String>, tls: Arc<ServerTls>) {
        self.entries.lock().push((name.into(), tls));
    }

    /// How many configurations are registered.
    pub fn len(&self) -> usize {
        self.entries.lock().len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.entries.lock().is_empty()
    }

    fn snapshot(&self) -> Vec<(String, Arc<ServerTls>)> {
        self.entries.lock().clone()
    }

    /// Re-reads every configuration's files; the failures, by name (each
    /// keeps its old configuration).
    pub fn reload_all(&self) -> Vec<(String, TlsError)> {
        let mut failed = Vec::new();
        for (name, tls) in self.snapshot() {
            match tls.reload() {
                Ok(()) => tracing::info!(listener = %name, "TLS certificate and key reloaded"),
                Err(e) => {
                    tracing::error!(listener = %name, error = %e, "TLS reload failed; keeping the previous certificate");
                    failed.push((name, e));
                }
            }
        }
        failed
    }

    /// Reloads the configurations whose files changed; how many were
    /// swapped.
    pub fn reload_changed(&self) -> usize {
        let mut swapped = 0;
        for (name, tls) in self.snapshot() {
            match tls.reload_if_changed() {
                Ok(true) => {
                    swapped += 1;
                    tracing::info!(listener = %name, "TLS files changed: certificate and key reloaded");
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::error!(listener = %name, error = %e, "TLS files changed but do not load; keeping the previous certificate")
                }
            }
        }
        swapped
    }

    /// Polls the files every `every` until `shutdown` flips.
    pub async fn watch(self: Arc<Self>, every: Duration, mut shutdown: watch::Receiver<bool>) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = shutdown.changed() => return,
            }
            if self.is_empty() {
                continue;
            }
            let me = Arc::clone(&self);
            // File reads and key parsing: off the async workers.
            if tokio::task::spawn_blocking(move || me.reload_changed())
                .await
                .is_err()
            {
                tracing::error!("TLS reload task failed");
            }
        }
    }
}
