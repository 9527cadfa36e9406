//! The processing-node runner seam: consume a group's partitions, run a
//! chain over each polled batch of records, commit only once the chain says
//! its outputs are written, and leave the group on shutdown (SIGTERM).
//!
//! The chain is a trait object so the `processors` crate (alert decoding,
//! filters, writers) can plug in without this crate knowing it; the
//! `starlog process pipeline.yaml` command builds a [`NodeRunner`] from the
//! pipeline's `source` and its processor chain.
//!
//! Guarantee: at-least-once. A record's offset is committed only after
//! `process` returned `Ok` for the batch containing it, and `process` must
//! return only when the chain's writers hold the outputs durably. If
//! `process` fails, nothing of that batch is committed and the runner stops
//! with the error; a restart re-delivers the batch.

use std::future::Future;
use std::time::Duration;

use futures::future::BoxFuture;
use tracing::{info, warn};

use crate::consumer::{Consumer, ConsumerConfig};
use crate::error::{ClientError, Result};
use crate::records::ConsumerRecord;

/// Why a chain could not process a batch.
#[derive(Debug, thiserror::Error)]
#[error("chain failed at {topic}/{partition} offset {offset}: {reason}")]
pub struct ChainError {
    /// Topic of the record at fault.
    pub topic: String,
    /// Partition of the record at fault.
    pub partition: i32,
    /// Offset of the record at fault.
    pub offset: i64,
    /// What went wrong.
    pub reason: String,
}

/// A processing chain over polled records.
pub trait RecordChain: Send {
    /// Processes `records` (in offset order per partition) and returns once
    /// every output written for them is durable.
    fn process<'a>(
        &'a mut self,
        records: &'a [ConsumerRecord],
    ) -> BoxFuture<'a, Result<(), ChainError>>;
}

/// What a finished run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunStats {
    /// Records given to the chain.
    pub records: u64,
    /// Successful commits.
    pub commits: u64,
}

/// Runner errors.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The Kafka side failed.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The chain failed; the batch was not committed.
    #[error(transparent)]
    Chain(#[from] ChainError),
}

/// Called after every commit with the records between the committed
/// positions and the high watermarks of the assigned partitions.
pub type LagObserver = Box<dyn Fn(i64) + Send + Sync>;

/// Consumes `topics` as a member of the configured group and drives a chain.
pub struct NodeRunner {
    consumer: Consumer,
    poll_timeout: Duration,
    lag: Option<LagObserver>,
}

impl std::fmt::Debug for NodeRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeRunner")
            .field("consumer", &self.consumer)
            .field("poll_timeout", &self.poll_timeout)
            .field("lag", &self.lag.is_some())
            .finish()
    }
}

impl NodeRunner {
    /// A runner over `topics`; auto-commit is turned off (the runner commits).
    pub fn new(mut config: ConsumerConfig, topics: &[&str]) -> Result<Self> {
        if config.group_id.is_none() {
            return Err(ClientError::Config(
                "a processing node needs a group_id".into(),
            ));
        }
        config.enable_auto_commit = false;
        let mut consumer = Consumer::new(config)?;
        consumer.subscribe(topics)?;
        Ok(Self {
            consumer,
            poll_timeout: Duration::from_millis(500),
            lag: None,
        })
    }

    /// Reports the lag of the assigned partitions after every commit.
    #[must_use]
    pub fn with_lag_observer(mut self, observer: LagObserver) -> Self {
        self.lag = Some(observer);
        self
    }

    fn report_lag(&self) {
        if let Some(report) = &self.lag {
            let lag = self
                .consumer
                .assignment()
                .iter()
                .map(|tp| {
                    let position = self.consumer.position(tp).unwrap_or(0);
                    (self.consumer.high_watermark(tp) - position).max(0)
                })
                .sum();
            report(lag);
        }
    }

    /// The consumer (assignment, positions) for inspection.
    pub fn consumer(&self) -> &Consumer {
        &self.consumer
    }

    /// Runs until `shutdown` completes, then commits what is done and
    /// leaves the group.
    pub async fn run<C, S>(mut self, chain: &mut C, shutdown: S) -> Result<RunStats, NodeError>
    where
        C: RecordChain + ?Sized,
        S: Future<Output = ()>,
    {
        let mut stats = RunStats::default();
        tokio::pin!(shutdown);
        let result = loop {
            let records = tokio::select! {
                biased;
                _ = &mut shutdown => break Ok(()),
                r = self.consumer.poll(self.poll_timeout) => r,
            };
            let records = match records {
                Ok(r) => r,
                Err(e) => break Err(NodeError::from(e)),
            };
            if records.is_empty() {
                continue;
            }
            // Not cancelled by shutdown: a batch is processed and committed
            // whole, so outputs and commits stay in step.
            if let Err(e) = chain.process(&records).await {
                break Err(NodeError::from(e));
            }
            stats.records += records.len() as u64;
            match self.consumer.commit_sync().await {
                Ok(()) => {
                    stats.commits += 1;
                    self.report_lag();
                }
                // A rebalance took the partitions: the next owner resumes
                // from the last commit (at-least-once).
                Err(e) => warn!(error = %e, "commit after chain failed"),
            }
        };
        info!(
            records = stats.records,
            commits = stats.commits,
            "processing node stops; leaving group"
        );
        let leave = self.consumer.close().await;
        result?;
        leave?;
        Ok(stats)
    }
}

/// Completes on SIGTERM or Ctrl-C (for `run`'s `shutdown`).
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(e) => {
                warn!(error = %e, "no SIGTERM handler; waiting for Ctrl-C only");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
