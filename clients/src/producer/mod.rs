//! The producer: `send` returns a delivery future; a background sender
//! task batches, compresses and ships records.
//!
//! `send` picks the partition (explicit, murmur2 of the key, or sticky),
//! waits for buffer space (back-pressure, bounded by `buffer_memory`) and
//! appends to the partition's open batch. Values are `Bytes` and are not
//! copied until the batch is encoded. Delivery futures resolve to the
//! record's partition and offset once the broker acknowledged it (or with
//! offset -1 for `acks = 0`), or to the error that ended its retries.

mod accumulator;
mod delivery;
mod sender;

pub use delivery::{DeliveryFuture, RecordMetadata};

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::{oneshot, Notify, Semaphore};

use crate::cluster::Cluster;
use crate::compression::Compression;
use crate::config::ClientConfig;
use crate::error::{ClientError, Result};
use crate::partitioner::partition_for_key;
use crate::records::encode::PendingRecord;
use crate::records::Header;
use crate::TopicPartition;
use accumulator::Accumulator;

/// Acknowledgement level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acks {
    /// `acks=0`: fire and forget.
    None,
    /// `acks=1`: the leader wrote it.
    Leader,
    /// `acks=all`: every in-sync replica has it.
    All,
}

impl Acks {
    fn wire(self) -> i16 {
        match self {
            Self::None => 0,
            Self::Leader => 1,
            Self::All => -1,
        }
    }
}

/// Producer options (Java names in parentheses).
#[derive(Debug, Clone)]
pub struct ProducerConfig {
    /// Connection options.
    pub client: ClientConfig,
    /// (`acks`) default `All`.
    pub acks: Acks,
    /// (`enable.idempotence`) default true; needs `acks = All`.
    pub idempotence: bool,
    /// (`linger.ms`) how long a batch waits for more records; default 5 ms.
    pub linger: Duration,
    /// (`batch.size`) bytes that close a batch; default 16 KiB.
    pub batch_size: usize,
    /// (`compression.type`) default none.
    pub compression: Compression,
    /// (`max.in.flight.requests.per.connection`) batches in flight per
    /// partition; at most 5 with idempotence.
    pub max_in_flight_per_partition: usize,
    /// (`retries`) attempts after the first.
    pub retries: u32,
    /// (`delivery.timeout.ms`) upper bound from `send` to resolution.
    pub delivery_timeout: Duration,
    /// (`buffer.memory`) bytes of records held before `send` waits.
    pub buffer_memory: usize,
    /// (`max.request.size`) largest produce request; also the largest record.
    pub max_request_size: usize,
    /// Ask the broker to create unknown topics (Metadata auto-create).
    pub auto_create_topics: bool,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        Self {
            client: ClientConfig::default(),
            acks: Acks::All,
            idempotence: true,
            linger: Duration::from_millis(5),
            batch_size: 16 * 1024,
            compression: Compression::None,
            max_in_flight_per_partition: 5,
            retries: u32::MAX,
            delivery_timeout: Duration::from_secs(120),
            buffer_memory: 64 * 1024 * 1024,
            max_request_size: 4 * 1024 * 1024,
            auto_create_topics: true,
        }
    }
}

impl ProducerConfig {
    /// Defaults with this bootstrap list.
    pub fn new(bootstrap: &str) -> Self {
        Self {
            client: ClientConfig::new(bootstrap),
            ..Self::default()
        }
    }

    fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(ClientError::Config(m.to_owned()));
        if self.idempotence && self.acks != Acks::All {
            return bad("idempotence needs acks = All (set idempotence = false for acks 0 or 1)");
        }
        if self.idempotence && !(1..=5).contains(&self.max_in_flight_per_partition) {
            return bad("idempotence allows 1 to 5 batches in flight per partition");
        }
        if self.max_in_flight_per_partition == 0 {
            return bad("max_in_flight_per_partition must be at least 1");
        }
        if self.batch_size == 0 || self.max_request_size < 1024 {
            return bad("batch_size must be positive and max_request_size at least 1 KiB");
        }
        if self.buffer_memory < self.max_request_size {
            return bad("buffer_memory must be at least max_request_size");
        }
        if self.buffer_memory > u32::MAX as usize {
            return bad("buffer_memory must be below 4 GiB");
        }
        Ok(())
    }

    fn idempotent(&self) -> bool {
        self.idempotence && self.acks == Acks::All
    }
}

/// A record to send.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProducerRecord {
    /// Topic.
    pub topic: String,
    /// Partition; `None` lets the partitioner choose.
    pub partition: Option<i32>,
    /// Key, possibly null.
    pub key: Option<Bytes>,
    /// Value, possibly null.
    pub value: Option<Bytes>,
    /// Headers.
    pub headers: Vec<Header>,
    /// Create time in ms; `None` means now.
    pub timestamp: Option<i64>,
}

impl ProducerRecord {
    /// A record for `topic` with no key and no value yet.
    pub fn new(topic: impl Into<String>) -> Self {
        Self {
            topic: topic.into(),
            ..Self::default()
        }
    }
    /// Sets the key.
    pub fn key(mut self, key: impl Into<Bytes>) -> Self {
        self.key = Some(key.into());
        self
    }
    /// Sets the value.
    pub fn value(mut self, value: impl Into<Bytes>) -> Self {
        self.value = Some(value.into());
        self
    }
    /// Adds a header.
    pub fn header(mut self, key: impl Into<String>, value: impl Into<Bytes>) -> Self {
        self.headers.push(Header::new(key, value));
        self
    }
    /// Sets the partition.
    pub fn partition(mut self, p: i32) -> Self {
        self.partition = Some(p);
        self
    }
    /// Sets the timestamp.
    pub fn timestamp(mut self, ms: i64) -> Self {
        self.timestamp = Some(ms);
        self
    }
}

pub(crate) struct Shared {
    pub cluster: Arc<Cluster>,
    pub config: ProducerConfig,
    pub acc: Mutex<Accumulator>,
    pub wake: Notify,
    pub idle: Notify,
    pub buffer: Arc<Semaphore>,
    pub closed: AtomicBool,
    pub producer_id: Mutex<Option<(i64, i16)>>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProducerShared").finish_non_exhaustive()
    }
}

/// An async Kafka producer. Clone it freely; all clones share one sender.
#[derive(Debug, Clone)]
pub struct Producer {
    shared: Arc<Shared>,
    _sender: Arc<SenderGuard>,
}

#[derive(Debug)]
struct SenderGuard(tokio::task::JoinHandle<()>);

impl Drop for SenderGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Producer {
    /// Starts a producer (no connection is made before the first send).
    pub fn new(config: ProducerConfig) -> Result<Self> {
        config.validate()?;
        let cluster = Cluster::new(config.client.clone())?;
        let shared = Arc::new(Shared {
            cluster,
            buffer: Arc::new(Semaphore::new(config.buffer_memory)),
            config,
            acc: Mutex::new(Accumulator::default()),
            wake: Notify::new(),
            idle: Notify::new(),
            closed: AtomicBool::new(false),
            producer_id: Mutex::new(None),
        });
        let handle = tokio::spawn(sender::run(Arc::clone(&shared)));
        Ok(Self {
            shared,
            _sender: Arc::new(SenderGuard(handle)),
        })
    }

    /// The cluster handle (metadata, connections).
    pub fn cluster(&self) -> &Arc<Cluster> {
        &self.shared.cluster
    }

    /// The idempotent producer id and epoch, once assigned.
    pub fn producer_id(&self) -> Option<(i64, i16)> {
        *self.shared.producer_id.lock()
    }

    /// Queues a record; the returned future resolves on acknowledgement.
    /// Waits while the buffer is full.
    pub async fn send(&self, record: ProducerRecord) -> Result<DeliveryFuture> {
        if self.shared.closed.load(Ordering::Acquire) {
            return Err(ClientError::Closed("producer"));
        }
        let cfg = &self.shared.config;
        let pending = PendingRecord {
            key: record.key,
            value: record.value,
            headers: record.headers,
            timestamp: record.timestamp.unwrap_or_else(now_ms),
        };
        let size = pending.size_estimate();
        if size + starlog_wire::BATCH_HEADER_LEN > cfg.max_request_size {
            return Err(ClientError::RecordTooLarge {
                topic: record.topic,
                size,
                limit: cfg.max_request_size,
            });
        }
        let cluster = &self.shared.cluster;
        let partition = match (record.partition, &pending.key) {
            (Some(p), _) => {
                let count = cluster
                    .partition_count(&record.topic, cfg.auto_create_topics)
                    .await?;
                if !(0..count).contains(&p) {
                    return Err(ClientError::UnknownPartition {
                        topic: record.topic,
                        partition: p,
                    });
                }
                p
            }
            (None, Some(k)) => {
                let count = cluster
                    .partition_count(&record.topic, cfg.auto_create_topics)
                    .await?;
                partition_for_key(k, count)
            }
            (None, None) => {
                let info = cluster.topic(&record.topic, cfg.auto_create_topics).await?;
                let avail: Vec<i32> = info.available().map(|p| p.partition).collect();
                self.shared.acc.lock().sticky.partition(
                    &record.topic,
                    info.partition_count(),
                    &avail,
                )
            }
        };
        // Size fits in u32: buffer_memory < 4 GiB and size < max_request_size.
        let permits = self
            .shared
            .buffer
            .acquire_many(size as u32)
            .await
            .map_err(|_| ClientError::Closed("producer"))?;
        permits.forget();
        let (tx, rx) = oneshot::channel();
        let tp = TopicPartition::new(record.topic, partition);
        let wake = {
            let mut acc = self.shared.acc.lock();
            acc.append(tp, pending, tx, cfg.batch_size, cfg.idempotent())
        };
        if wake {
            self.shared.wake.notify_one();
        }
        Ok(DeliveryFuture { rx })
    }

    /// Queues a whole v2 record batch, as bytes, for `partition` of
    /// `topic` (the mirror's pass-through). The bytes are sent unchanged
    /// (the broker sets the base offset and leader epoch); the producer id
    /// fields are the caller's, so the batch is not idempotent. To keep
    /// order without sequence numbers it is sent alone: once everything
    /// queued before it for the partition has resolved, and nothing after
    /// it is sent until it resolves. It is retried only when the broker
    /// said it did not take it; when its outcome is unknown it fails with
    /// [`ClientError::RawBatchFailed`], and so does every later batch of
    /// the partition (nothing lands behind a batch that may be missing).
    /// The delivery resolves to the batch's base offset.
    pub async fn send_batch(
        &self,
        topic: &str,
        partition: i32,
        batch: Bytes,
    ) -> Result<DeliveryFuture> {
        if self.shared.closed.load(Ordering::Acquire) {
            return Err(ClientError::Closed("producer"));
        }
        let cfg = &self.shared.config;
        let bad = |reason: String| ClientError::Encode {
            what: format!("raw batch for {topic}/{partition}"),
            reason,
        };
        let header = crate::records::decode::BatchHeader::read(&batch)
            .map_err(|_| bad("shorter than a batch header".into()))?;
        if header.magic != starlog_wire::MAGIC_V2 {
            return Err(bad(format!("magic {} (only v2 batches)", header.magic)));
        }
        let declared =
            usize::try_from(header.batch_length).unwrap_or(0) + starlog_wire::LOG_OVERHEAD;
        if declared != batch.len() {
            return Err(bad(format!(
                "length field says {declared} bytes, {} given",
                batch.len()
            )));
        }
        if batch.len() > cfg.max_request_size {
            return Err(ClientError::RecordTooLarge {
                topic: topic.to_owned(),
                size: batch.len(),
                limit: cfg.max_request_size,
            });
        }
        let count = self
            .shared
            .cluster
            .partition_count(topic, cfg.auto_create_topics)
            .await?;
        if !(0..count).contains(&partition) {
            return Err(ClientError::UnknownPartition {
                topic: topic.to_owned(),
                partition,
            });
        }
        // Size fits in u32: buffer_memory < 4 GiB and size < max_request_size.
        let permits = self
            .shared
            .buffer
            .acquire_many(batch.len() as u32)
            .await
            .map_err(|_| ClientError::Closed("producer"))?;
        permits.forget();
        let (tx, rx) = oneshot::channel();
        let tp = TopicPartition::new(topic, partition);
        self.shared
            .acc
            .lock()
            .append_raw(tp, batch, header.max_timestamp, tx, cfg.idempotent());
        self.shared.wake.notify_one();
        Ok(DeliveryFuture { rx })
    }

    /// Sends every queued record now and waits until all are resolved.
    pub async fn flush(&self) -> Result<()> {
        self.shared.acc.lock().flushing += 1;
        self.shared.wake.notify_one();
        loop {
            let idle = self.shared.idle.notified();
            tokio::pin!(idle);
            idle.as_mut().enable();
            if self.shared.acc.lock().outstanding == 0 {
                break;
            }
            // The sender notifies `idle` when the count reaches zero; the
            // periodic re-check only guards against a missed wake-up.
            let _ = tokio::time::timeout(Duration::from_millis(200), idle).await;
        }
        self.shared.acc.lock().flushing -= 1;
        Ok(())
    }

    /// Flushes and stops accepting records.
    pub async fn close(&self) -> Result<()> {
        self.flush().await?;
        self.shared.closed.store(true, Ordering::Release);
        Ok(())
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
