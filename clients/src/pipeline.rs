//! The standalone processing node: a `processors` pipeline driven by a
//! [`NodeRunner`] as a consumer-group member, its writers producing through
//! this crate's [`Producer`].
//!
//! The chain runs on the blocking pool (alert decoding and cross-matching
//! are CPU work); its Kafka output is sent with the producer and
//! [`TopicSink::flush`] waits for every delivery, so the runner commits a
//! batch's offsets only once its outputs are acknowledged (at-least-once).
//!
//! [`PipelineNode`] is the same node built from an already loaded
//! [`PipelineSpec`] and a full [`ClientConfig`] (SASL), run once per group
//! membership and reporting its counters to a [`PipelineObserver`]: what
//! a broker hosting a pipeline in cluster mode runs.

use std::path::Path;
use std::sync::Arc;

use futures::future::BoxFuture;
use parking_lot::Mutex;
use starlog_processors::config::{BuildContext, PipelineSpec, ProcessorRegistry};
use starlog_processors::pipeline::PipelineCounters;
use starlog_processors::sink::Header;
use starlog_processors::{InputRecord, Pipeline, RecordOutcome, SinkError, TopicSink};
use tokio::runtime::Handle;

use crate::config::ClientConfig;
use crate::consumer::ConsumerConfig;
use crate::node::{ChainError, NodeError, NodeRunner, RecordChain, RunStats};
use crate::producer::{DeliveryFuture, Producer, ProducerConfig, ProducerRecord};
use crate::records::ConsumerRecord;

/// A [`TopicSink`] over the async producer, for code running on a blocking thread.
pub struct ProducerSink {
    producer: Arc<Producer>,
    runtime: Handle,
    pending: Mutex<Vec<DeliveryFuture>>,
}

impl std::fmt::Debug for ProducerSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProducerSink")
            .field("pending", &self.pending.lock().len())
            .finish_non_exhaustive()
    }
}

impl ProducerSink {
    /// A sink producing with `producer`; must be used off the async runtime's threads.
    pub fn new(producer: Arc<Producer>, runtime: Handle) -> Self {
        Self {
            producer,
            runtime,
            pending: Mutex::new(Vec::new()),
        }
    }
}

fn unavailable(e: impl std::fmt::Display) -> SinkError {
    SinkError::Unavailable {
        reason: e.to_string(),
    }
}

impl TopicSink for ProducerSink {
    fn send(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        value: &[u8],
        headers: &[Header<'_>],
    ) -> Result<(), SinkError> {
        let mut record = ProducerRecord::new(topic).value(bytes::Bytes::copy_from_slice(value));
        if let Some(k) = key {
            record = record.key(bytes::Bytes::copy_from_slice(k));
        }
        for (k, v) in headers {
            record = record.header(*k, bytes::Bytes::copy_from_slice(v));
        }
        let delivery = self
            .runtime
            .block_on(self.producer.send(record))
            .map_err(unavailable)?;
        self.pending.lock().push(delivery);
        Ok(())
    }

    fn flush(&self) -> Result<(), SinkError> {
        let pending = std::mem::take(&mut *self.pending.lock());
        if pending.is_empty() {
            return Ok(());
        }
        self.runtime.block_on(async {
            self.producer.flush().await.map_err(unavailable)?;
            for delivery in pending {
                delivery.await.map_err(unavailable)?;
            }
            Ok(())
        })
    }
}

/// A pipeline as a [`RecordChain`].
#[derive(Debug)]
pub struct PipelineChain {
    pipeline: Arc<Mutex<Pipeline>>,
    observer: Option<Arc<dyn PipelineObserver>>,
}

impl PipelineChain {
    /// Wraps a built pipeline.
    pub fn new(pipeline: Pipeline) -> Self {
        Self {
            pipeline: Arc::new(Mutex::new(pipeline)),
            observer: None,
        }
    }

    /// Reports the pipeline's counters to `observer` after every batch.
    #[must_use]
    pub fn with_observer(mut self, observer: Arc<dyn PipelineObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// The pipeline (counters, closing).
    pub fn pipeline(&self) -> &Arc<Mutex<Pipeline>> {
        &self.pipeline
    }
}

fn handle_all(pipeline: &mut Pipeline, records: &[ConsumerRecord]) -> Result<(), ChainError> {
    let fail = |r: &ConsumerRecord, reason: String| ChainError {
        topic: r.topic.clone(),
        partition: r.partition,
        offset: r.offset,
        reason,
    };
    for r in records {
        let headers: Vec<Header<'_>> = r
            .headers
            .iter()
            .map(|h| (h.key.as_str(), h.value.as_deref().unwrap_or_default()))
            .collect();
        let input = InputRecord {
            topic: &r.topic,
            partition: r.partition,
            offset: r.offset,
            key: r.key.as_deref(),
            value: r.value.as_deref().unwrap_or_default(),
            headers: &headers,
        };
        if let RecordOutcome::Failed(e) = pipeline.handle(&input) {
            return Err(fail(r, e.to_string()));
        }
    }
    if let Some(last) = records.last() {
        pipeline
            .flush()
            .map_err(|e| fail(last, format!("flushing outputs: {e}")))?;
    }
    Ok(())
}

impl RecordChain for PipelineChain {
    fn process<'a>(
        &'a mut self,
        records: &'a [ConsumerRecord],
    ) -> BoxFuture<'a, Result<(), ChainError>> {
        let pipeline = Arc::clone(&self.pipeline);
        let observer = self.observer.clone();
        let records = records.to_vec();
        Box::pin(async move {
            let first = records
                .first()
                .map(|r| (r.topic.clone(), r.partition, r.offset));
            tokio::task::spawn_blocking(move || {
                let mut pipeline = pipeline.lock();
                let outcome = handle_all(&mut pipeline, &records);
                if let Some(o) = &observer {
                    o.counters(&pipeline.counters());
                }
                outcome
            })
            .await
            .map_err(|e| {
                let (topic, partition, offset) = first.unwrap_or_default();
                ChainError {
                    topic,
                    partition,
                    offset,
                    reason: format!("chain task failed: {e}"),
                }
            })?
        })
    }
}

/// Why a processing node could not run.
#[derive(Debug, thiserror::Error)]
pub enum ProcessNodeError {
    /// The pipeline file is invalid (the message names the YAML path).
    #[error("{0}")]
    Config(String),
    /// Consuming, producing or the chain failed.
    #[error(transparent)]
    Node(#[from] NodeError),
    /// The Kafka client could not be set up.
    #[error(transparent)]
    Client(#[from] crate::error::ClientError),
}

/// Runs the pipeline in `file` against `bootstrap` until `shutdown`: joins
/// the pipeline's group (its `source.group`, or `starlog-node-<name>`),
/// processes, commits after the outputs are acknowledged, and leaves the
/// group cleanly. `registry` holds the classes the file may name
/// (`ProcessorRegistry::with_builtins()`, or with the `sinks` crate's).
pub async fn run_pipeline_file(
    file: &Path,
    registry: &ProcessorRegistry,
    bootstrap: &str,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<RunStats, ProcessNodeError> {
    let spec = PipelineSpec::from_file(file, registry)
        .map_err(|e| ProcessNodeError::Config(e.to_string()))?;
    let group = spec
        .source
        .group
        .clone()
        .unwrap_or_else(|| format!("starlog-node-{}", spec.name));
    let node = PipelineNode::new(&spec, ClientConfig::new(bootstrap), &group)?;
    let outcome = node.run(shutdown).await;
    node.close().await;
    let stats = outcome?;
    tracing::info!(
        records = stats.records,
        commits = stats.commits,
        "processing node stopped"
    );
    Ok(stats)
}

/// What a [`PipelineNode`] reports while it runs.
pub trait PipelineObserver: Send + Sync + std::fmt::Debug {
    /// The pipeline's counters, after every batch (on the chain's thread).
    fn counters(&self, counters: &PipelineCounters);
    /// Records between the committed positions and the high watermarks of
    /// the partitions this member is assigned, after every commit.
    fn lag(&self, lag: i64);
}

/// A processing node built from a loaded [`PipelineSpec`]: its chain
/// (writers producing with acks=all through this crate's producer) and the
/// consumer settings of its group. [`PipelineNode::run`] is one group
/// membership; it can be run again after an error (the chain is kept, the
/// next member resumes from the committed positions).
#[derive(Debug)]
pub struct PipelineNode {
    name: String,
    topic: String,
    consumer: ConsumerConfig,
    producer: Arc<Producer>,
    chain: Mutex<Option<PipelineChain>>,
    observer: Option<Arc<dyn PipelineObserver>>,
}

impl PipelineNode {
    /// Builds the chain of `spec` with outputs produced through `client`
    /// (bootstrap, SASL, TLS), as a member of `group`. The chain gets no
    /// schema registry: a `KafkaTopicWriter` with `format: avro` is refused
    /// here, with its YAML path.
    pub fn new(
        spec: &PipelineSpec,
        client: ClientConfig,
        group: &str,
    ) -> Result<Self, ProcessNodeError> {
        let producer = Arc::new(Producer::new(ProducerConfig {
            client: client.clone(),
            ..ProducerConfig::default()
        })?);
        let sink = Arc::new(ProducerSink::new(Arc::clone(&producer), Handle::current()));
        let ctx = BuildContext::default().with_sink(sink);
        let pipeline = spec
            .build(&ctx)
            .map_err(|e| ProcessNodeError::Config(e.to_string()))?;
        let mut consumer = ConsumerConfig {
            client,
            ..ConsumerConfig::default()
        };
        consumer.group_id = Some(group.to_owned());
        consumer.auto_offset_reset = crate::consumer::OffsetReset::Earliest;
        Ok(Self {
            name: spec.name.clone(),
            topic: spec.source.topic.clone(),
            consumer,
            producer,
            chain: Mutex::new(Some(PipelineChain::new(pipeline))),
            observer: None,
        })
    }

    /// The group's session, heartbeat and rebalance timeouts (the
    /// consumer's defaults otherwise): how soon a dead member's partitions
    /// are taken over.
    #[must_use]
    pub fn with_group_timeouts(
        mut self,
        session: std::time::Duration,
        heartbeat: std::time::Duration,
        rebalance: std::time::Duration,
    ) -> Self {
        self.consumer.session_timeout = session;
        self.consumer.heartbeat_interval = heartbeat;
        self.consumer.rebalance_timeout = rebalance;
        self
    }

    /// Reports counters and lag to `observer`.
    #[must_use]
    pub fn with_observer(mut self, observer: Arc<dyn PipelineObserver>) -> Self {
        if let Some(chain) = self.chain.get_mut().take() {
            *self.chain.get_mut() = Some(chain.with_observer(Arc::clone(&observer)));
        }
        self.observer = Some(observer);
        self
    }

    /// Joins the group, processes until `shutdown` (or an error), commits
    /// after the outputs are acknowledged, and leaves the group.
    pub async fn run(
        &self,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<RunStats, ProcessNodeError> {
        let Some(mut chain) = self.chain.lock().take() else {
            return Err(ProcessNodeError::Config(format!(
                "pipeline {} is already running",
                self.name
            )));
        };
        let outcome = async {
            let mut runner = NodeRunner::new(self.consumer.clone(), &[self.topic.as_str()])?;
            if let Some(o) = &self.observer {
                let o = Arc::clone(o);
                runner = runner.with_lag_observer(Box::new(move |lag| o.lag(lag)));
            }
            tracing::info!(pipeline = %self.name, group = ?self.consumer.group_id, topic = %self.topic, "pipeline joins its group");
            Ok::<_, ProcessNodeError>(runner.run(&mut chain, shutdown).await?)
        }
        .await;
        *self.chain.lock() = Some(chain);
        outcome
    }

    /// Closes the chain's writers and the producer (after the last run).
    pub async fn close(mut self) {
        if let Some(chain) = self.chain.get_mut().take() {
            let closing = Arc::clone(chain.pipeline());
            let closed = tokio::task::spawn_blocking(move || closing.lock().close()).await;
            if !matches!(closed, Ok(Ok(()))) {
                tracing::warn!(pipeline = %self.name, "closing the pipeline's writers failed");
            }
        }
        if let Err(e) = self.producer.close().await {
            tracing::warn!(error = %e, "closing the producer failed");
        }
    }
}
