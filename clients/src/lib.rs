//! `starlog-clients`: an async Kafka client on `tokio` and `kafka-protocol`.
//!
//! Used by the mirror (against the upstream Kafka cluster and Starlog), the
//! benchmarks and standalone processing nodes. It talks to any Kafka
//! cluster, not only Starlog.
//!
//! Layers, bottom up:
//! - `transport` (TCP or TLS), `sasl` (PLAIN, SCRAM), `connection` (one
//!   pipelined connection with version negotiation), `versions`;
//! - `cluster`: metadata cache, connection pool, coordinators;
//! - `records` (encoder, and the decoder to records on `starlog-wire`'s
//!   batch layout and codecs), `partitioner`: bytes of record batches;
//! - the clients: [`Producer`], [`Consumer`], [`Admin`];
//! - `node`: the processing-node runner seam (consume → chain → commit);
//! - `registry`: the schema-registry HTTP client.
//!
//! Bytes stay bytes where a caller wants them: values are `Bytes` end to
//! end, and the consumer hands out whole record batches for mirroring.

pub mod address;
pub mod admin;
pub mod cluster;
mod compression;
pub mod config;
pub mod connection;
pub mod consumer;
pub mod error;
pub mod node;
pub mod partitioner;
pub mod pipeline;
pub mod producer;
pub mod records;
pub mod registry;
pub mod sasl;
pub mod transport;
pub mod versions;

pub use admin::Admin;
pub use compression::Compression;
pub use config::{ClientConfig, SaslConfig, SaslMechanism, TlsConfig};
pub use consumer::{Consumer, ConsumerConfig, OffsetReset};
pub use error::{ClientError, Result};
pub use producer::{
    Acks, DeliveryFuture, Producer, ProducerConfig, ProducerRecord, RecordMetadata,
};
pub use records::{ConsumerRecord, Header, RawBatch, TimestampType};

/// A topic and partition.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    /// Topic name.
    pub topic: String,
    /// Partition number.
    pub partition: i32,
}

impl TopicPartition {
    /// A topic-partition.
    pub fn new(topic: impl Into<String>, partition: i32) -> Self {
        Self {
            topic: topic.into(),
            partition,
        }
    }
}

impl std::fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.topic, self.partition)
    }
}
