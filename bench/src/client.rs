//! The seam between the load generator and a Kafka client library.
//!
//! The runner only needs three things from a client: send a stamped record
//! and later learn when it was acknowledged, read records as they arrive in a
//! consumer group, and create a topic. Keeping that behind `LoadClient`,
//! `LoadProducer` and `LoadConsumer` lets the librdkafka implementation
//! (`rdkafka_client`) be swapped for the Starlog Rust client (`clients/`)
//! once it exists, and lets the same workload be driven by either against
//! any broker. The traits are synchronous and object-safe: an async client
//! implements them by running its own runtime, as librdkafka runs its own
//! threads.

use std::time::{Duration, Instant};

use crate::error::BenchError;
use crate::stamp::Stamp;

/// Delivery guarantee asked of the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Acks {
    /// Fire and forget (no acknowledgement: latency is enqueue-to-send).
    #[value(name = "0")]
    None,
    /// The leader has written it.
    #[value(name = "1")]
    Leader,
    /// Every in-sync replica has it (the durable setting; the default).
    #[value(name = "all")]
    All,
}

/// Producer settings common to every client.
#[derive(Debug, Clone)]
pub struct ProducerSettings {
    /// `acks`.
    pub acks: Acks,
    /// `none`, `gzip`, `snappy`, `lz4` or `zstd`.
    pub compression: String,
    /// Idempotent producer.
    pub idempotent: bool,
    /// Client-specific `key=value` settings, applied last.
    pub extra: Vec<(String, String)>,
}

/// Consumer settings common to every client.
#[derive(Debug, Clone, Default)]
pub struct ConsumerSettings {
    /// Client-specific `key=value` settings, applied last.
    pub extra: Vec<(String, String)>,
}

/// A record to send.
#[derive(Debug, Clone, Copy)]
pub struct OutRecord<'a> {
    /// The topic.
    pub topic: &'a str,
    /// The value.
    pub value: &'a [u8],
    /// The bench headers.
    pub stamp: Stamp,
}

/// What `send` did with a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendOutcome {
    /// Queued for sending; a `Delivery` will follow.
    Queued,
    /// The client's queue is full: drain deliveries and send again.
    QueueFull,
}

/// The fate of one sent record.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The record's sequence number.
    pub seq: u64,
    /// When the client learned the outcome.
    pub at: Instant,
    /// `(partition, offset)` on success, the reason on failure.
    pub result: Result<(i32, i64), String>,
}

/// A record read by a consumer, borrowed from the client's buffers.
#[derive(Debug, Clone, Copy)]
pub struct Received<'a> {
    /// The topic.
    pub topic: &'a str,
    /// The partition.
    pub partition: i32,
    /// The offset.
    pub offset: i64,
    /// The value (empty when null).
    pub value: &'a [u8],
    /// The `starlog-bench-seq` header's value, if present.
    pub seq_header: Option<&'a [u8]>,
    /// The `starlog-bench-sent-ns` header's value, if present.
    pub sent_header: Option<&'a [u8]>,
    /// The `starlog-source` header's value (in-broker chain outputs), if present.
    pub source_header: Option<&'a [u8]>,
}

/// Sends records and reports their acknowledgements.
pub trait LoadProducer: Send {
    /// Hands one record to the client without blocking.
    fn send(&mut self, record: OutRecord<'_>) -> Result<SendOutcome, BenchError>;
    /// Moves finished deliveries into `out`, waiting up to `wait` for the first.
    fn drain(&mut self, out: &mut Vec<Delivery>, wait: Duration);
    /// Sends everything queued, waiting up to `timeout`.
    fn flush(&mut self, timeout: Duration) -> Result<(), BenchError>;
}

/// A member of one consumer group, subscribed to one topic.
pub trait LoadConsumer: Send {
    /// The group id.
    fn group(&self) -> &str;
    /// Waits until the group has assigned this member its partitions.
    fn wait_assigned(&mut self, timeout: Duration) -> Result<(), BenchError>;
    /// Waits up to `timeout` for records and hands each to `sink`; returns
    /// how many it handed over.
    fn poll(
        &mut self,
        timeout: Duration,
        sink: &mut dyn FnMut(Received<'_>) -> Result<(), BenchError>,
    ) -> Result<usize, BenchError>;
}

/// Makes producers and consumers for one bootstrap address.
pub trait LoadClient: Send + Sync {
    /// A short name for reports (`librdkafka 2.12.1`).
    fn name(&self) -> String;
    /// The bootstrap address.
    fn bootstrap(&self) -> &str;
    /// Creates `topic` with `partitions` partitions (replication factor as the client was built, 1 by default).
    fn create_topic(
        &self,
        topic: &str,
        partitions: i32,
        timeout: Duration,
    ) -> Result<(), BenchError>;
    /// A new producer.
    fn producer(&self, settings: &ProducerSettings) -> Result<Box<dyn LoadProducer>, BenchError>;
    /// A new consumer in `group`, subscribed to `topic`, reading from the start.
    fn consumer(
        &self,
        group: &str,
        topic: &str,
        settings: &ConsumerSettings,
    ) -> Result<Box<dyn LoadConsumer>, BenchError>;
}
