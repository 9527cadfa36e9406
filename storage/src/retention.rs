//! The background retention task: periodically applies retention to every open log.
//!
//! The decision itself lives in [`PartitionLog::apply_retention`], which takes the current time
//! as an argument; this module only supplies time (through [`Clock`], so tests inject one) and
//! a thread that calls it every period until stopped. The set of logs is asked for on every
//! pass (the broker creates and deletes partitions while the task runs).

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::{Condvar, Mutex};

use crate::error::StorageError;
use crate::partition_log::{PartitionLog, RetentionOutcome};

/// Source of "now" in milliseconds since the Unix epoch.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Current time in ms since the epoch.
    fn now_ms(&self) -> i64;
}

/// The system wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0)
    }
}

/// Result of retention on one log.
#[derive(Debug)]
pub struct RetentionPass {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// What was deleted, or why it failed.
    pub outcome: Result<RetentionOutcome, StorageError>,
}

/// Applies retention to each log at `now_ms`. Failures are returned per log, not fatal.
pub fn run_retention_once(logs: &[Arc<PartitionLog>], now_ms: i64) -> Vec<RetentionPass> {
    logs.iter()
        .map(|log| RetentionPass {
            topic: log.topic().to_owned(),
            partition: log.partition(),
            outcome: log.apply_retention(now_ms),
        })
        .collect()
}

type LogSource = Box<dyn Fn() -> Vec<Arc<PartitionLog>> + Send>;

/// A thread that runs retention every `period`. Stops (and joins) on [`RetentionWorker::stop`]
/// or drop.
#[derive(Debug)]
pub struct RetentionWorker {
    stop: Arc<(Mutex<bool>, Condvar)>,
    handle: Option<JoinHandle<()>>,
}

impl RetentionWorker {
    /// Starts the thread. `logs` is called on every pass to get the current logs.
    pub fn spawn(
        period: Duration,
        clock: Arc<dyn Clock>,
        logs: impl Fn() -> Vec<Arc<PartitionLog>> + Send + 'static,
    ) -> std::io::Result<Self> {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let stop2 = Arc::clone(&stop);
        let logs: LogSource = Box::new(logs);
        let handle = std::thread::Builder::new()
            .name("starlog-retention".to_owned())
            .spawn(move || {
                let (flag, cv) = &*stop2;
                loop {
                    {
                        let mut stopped = flag.lock();
                        if !*stopped {
                            cv.wait_for(&mut stopped, period);
                        }
                        if *stopped {
                            return;
                        }
                    }
                    for pass in run_retention_once(&logs(), clock.now_ms()) {
                        if let Err(e) = pass.outcome {
                            tracing::error!(topic = %pass.topic, partition = pass.partition, error = %e, "retention failed");
                        }
                    }
                }
            })?;
        Ok(Self {
            stop,
            handle: Some(handle),
        })
    }

    /// Stops the thread and waits for it.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        let (flag, cv) = &*self.stop;
        *flag.lock() = true;
        cv.notify_all();
        if let Some(h) = self.handle.take() {
            if h.join().is_err() {
                tracing::error!("retention thread panicked");
            }
        }
    }
}

impl Drop for RetentionWorker {
    fn drop(&mut self) {
        self.shutdown();
    }
}
