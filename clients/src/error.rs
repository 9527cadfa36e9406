//! The one error type of the client.
//!
//! Every variant names what was at fault (broker address, API, topic,
//! partition, offset) so a log line is enough to find it. Errors are `Clone`
//! because one failure (a lost connection, a refused batch) is reported to
//! every waiter at once: each pending request, each record's delivery future.
//! I/O errors are therefore shared behind an `Arc`.

use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::ApiKey;
use kafka_protocol::ResponseError;

/// Result alias of this crate.
pub type Result<T, E = ClientError> = std::result::Result<T, E>;

/// Everything that can go wrong talking to a Kafka cluster.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    /// The TCP connection could not be opened.
    #[error("connecting to {addr}: {source}")]
    Connect {
        /// `host:port` dialed.
        addr: String,
        /// The socket error.
        #[source]
        source: Arc<std::io::Error>,
    },
    /// Opening the connection (TCP, TLS, SASL, ApiVersions) took too long.
    #[error("connecting to {addr}: no ready connection after {after:?}")]
    ConnectTimeout {
        /// `host:port` dialed.
        addr: String,
        /// The configured limit.
        after: Duration,
    },
    /// The TLS layer failed (handshake, certificate, configuration).
    #[error("TLS with {addr}: {reason}")]
    Tls {
        /// `host:port` of the peer.
        addr: String,
        /// What failed.
        reason: String,
    },
    /// SASL authentication failed or the server could not prove itself.
    #[error("SASL {mechanism} with {addr} failed: {reason}")]
    Sasl {
        /// `host:port` of the peer.
        addr: String,
        /// `PLAIN`, `SCRAM-SHA-512`, ...
        mechanism: String,
        /// What failed.
        reason: String,
    },
    /// The broker closed the connection; `mid_response` tells whether it did
    /// so in the middle of a response frame.
    #[error("connection to {addr} closed by the broker{}", if *.mid_response { " in the middle of a response" } else { "" })]
    ConnectionClosed {
        /// `host:port` of the broker.
        addr: String,
        /// True when part of a frame had been read.
        mid_response: bool,
    },
    /// Reading or writing the socket failed.
    #[error("I/O with {addr}: {source}")]
    Io {
        /// `host:port` of the broker.
        addr: String,
        /// The socket error.
        #[source]
        source: Arc<std::io::Error>,
    },
    /// A request got no response in time.
    #[error("{api:?} request to {addr} got no response within {after:?}")]
    Timeout {
        /// `host:port` of the broker.
        addr: String,
        /// The API called.
        api: ApiKey,
        /// The limit that passed.
        after: Duration,
    },
    /// The broker's bytes could not be decoded as the expected response.
    #[error("{api:?} response from {addr} is garbage: {reason}")]
    Garbage {
        /// `host:port` of the broker.
        addr: String,
        /// The API whose response was expected.
        api: ApiKey,
        /// What did not decode.
        reason: String,
    },
    /// A response frame larger than the configured limit was announced.
    #[error("{addr} announced a {size}-byte response frame (limit {limit})")]
    FrameTooLarge {
        /// `host:port` of the broker.
        addr: String,
        /// The announced size.
        size: i64,
        /// `max_response_bytes`.
        limit: usize,
    },
    /// No version of an API is served by both sides.
    #[error("{addr} serves no version of {api:?} this client speaks")]
    UnsupportedApi {
        /// `host:port` of the broker.
        addr: String,
        /// The API.
        api: ApiKey,
    },
    /// The broker answered with a Kafka error code.
    #[error("{context}: {error}")]
    Broker {
        /// Which request and which resource (topic/partition, group).
        context: String,
        /// The Kafka error.
        error: ResponseError,
    },
    /// None of the bootstrap or known brokers could be reached.
    #[error("no broker reachable (tried {tried:?}): {last}")]
    NoBrokerAvailable {
        /// Addresses tried.
        tried: Vec<String>,
        /// The last failure.
        last: String,
    },
    /// A topic is unknown to the cluster after a metadata refresh.
    #[error("topic {topic} does not exist")]
    UnknownTopic {
        /// The topic.
        topic: String,
    },
    /// A partition number outside the topic.
    #[error("{topic} has no partition {partition}")]
    UnknownPartition {
        /// The topic.
        topic: String,
        /// The partition asked for.
        partition: i32,
    },
    /// A partition has no leader now.
    #[error("{topic}/{partition} has no leader")]
    NoLeader {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
    },
    /// A fetched record batch is malformed.
    #[error("record batch of {topic}/{partition} at offset {offset}: {reason}")]
    CorruptBatch {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// The batch's base offset (or the fetch offset when unknown).
        offset: i64,
        /// What is wrong.
        reason: String,
    },
    /// A request could not be encoded (a client bug or an absurd input).
    #[error("encoding {what}: {reason}")]
    Encode {
        /// What was being encoded.
        what: String,
        /// Why it failed.
        reason: String,
    },
    /// The configuration is unusable.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A record is larger than the configured limit.
    #[error("record of {size} bytes for {topic} exceeds the limit of {limit} bytes")]
    RecordTooLarge {
        /// The topic.
        topic: String,
        /// The record's encoded size estimate.
        size: usize,
        /// `max_request_bytes`.
        limit: usize,
    },
    /// A record could not be delivered within the delivery timeout.
    #[error("record for {topic}/{partition} not delivered within {after:?}: {last}")]
    DeliveryTimeout {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// `delivery_timeout`.
        after: Duration,
        /// The last error seen while retrying.
        last: String,
    },
    /// A batch sent as bytes (`Producer::send_batch`) failed in a way that
    /// leaves its outcome unknown, or a batch queued after it was failed
    /// because of that.
    #[error("raw batch for {topic}/{partition} failed (outcome unknown; later batches of the partition are not sent): {reason}")]
    RawBatchFailed {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// What happened.
        reason: String,
    },
    /// The producer or consumer was closed.
    #[error("the {0} is closed")]
    Closed(&'static str),
    /// No committed offset exists and `auto_offset_reset` is `none`.
    #[error("{topic}/{partition} has no committed offset and auto.offset.reset is none")]
    NoOffset {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
    },
    /// Group membership failed.
    #[error("group {group}: {reason}")]
    Group {
        /// The group id.
        group: String,
        /// What failed.
        reason: String,
    },
    /// A wrong use of the API (e.g. commit without a group).
    #[error("{0}")]
    Usage(String),
}

impl ClientError {
    /// The Kafka error code, if the broker sent one.
    pub fn response_error(&self) -> Option<ResponseError> {
        match self {
            Self::Broker { error, .. } => Some(*error),
            _ => None,
        }
    }

    /// True when the same request may succeed if sent again (after a
    /// metadata refresh and a backoff).
    pub fn is_retriable(&self) -> bool {
        match self {
            Self::Connect { .. }
            | Self::ConnectTimeout { .. }
            | Self::ConnectionClosed { .. }
            | Self::Io { .. }
            | Self::Timeout { .. }
            | Self::NoBrokerAvailable { .. }
            | Self::NoLeader { .. }
            | Self::UnknownTopic { .. } => true,
            Self::Broker { error, .. } => {
                error.is_retriable()
                    || matches!(
                        error,
                        ResponseError::NotLeaderOrFollower
                            | ResponseError::UnknownTopicOrPartition
                            | ResponseError::LeaderNotAvailable
                            | ResponseError::NotCoordinator
                            | ResponseError::CoordinatorNotAvailable
                            | ResponseError::CoordinatorLoadInProgress
                            | ResponseError::NotEnoughReplicas
                            | ResponseError::NotEnoughReplicasAfterAppend
                            | ResponseError::RequestTimedOut
                            | ResponseError::KafkaStorageError
                    )
            }
            _ => false,
        }
    }

    /// True when cached metadata (leaders, coordinators) may be stale.
    pub fn invalidates_metadata(&self) -> bool {
        match self {
            Self::Connect { .. }
            | Self::ConnectTimeout { .. }
            | Self::ConnectionClosed { .. }
            | Self::Io { .. }
            | Self::Timeout { .. }
            | Self::NoLeader { .. }
            | Self::UnknownTopic { .. } => true,
            Self::Broker { error, .. } => matches!(
                error,
                ResponseError::NotLeaderOrFollower
                    | ResponseError::UnknownTopicOrPartition
                    | ResponseError::LeaderNotAvailable
                    | ResponseError::NotCoordinator
                    | ResponseError::CoordinatorNotAvailable
                    | ResponseError::FencedLeaderEpoch
                    | ResponseError::UnknownLeaderEpoch
            ),
            _ => false,
        }
    }

    pub(crate) fn broker(context: impl Into<String>, code: i16) -> Option<Self> {
        ResponseError::try_from_code(code).map(|error| Self::Broker {
            context: context.into(),
            error,
        })
    }
}

/// Turns a Kafka error code into `Ok(())` or a [`ClientError::Broker`].
pub(crate) fn check(code: i16, context: impl FnOnce() -> String) -> Result<()> {
    match ResponseError::try_from_code(code) {
        None => Ok(()),
        Some(error) => Err(ClientError::Broker {
            context: context(),
            error,
        }),
    }
}
