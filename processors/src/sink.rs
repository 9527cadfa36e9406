//! The Kafka producing side, injected by whoever runs the chain.
//!
//! Writers and the dead-letter path send records through a [`TopicSink`].
//! The broker implements it by appending to its own partitions (in-broker
//! chains); the clients crate implements it with its producer (standalone
//! processing nodes). `send` may enqueue; `flush` must not return until
//! everything sent before it is durable, because the runner commits its
//! input position right after a successful flush.
//!
//! [`MemoryTopicSink`] keeps records in memory, for tests and examples.

use std::fmt;

use parking_lot::Mutex;

/// Why a record could not be sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SinkError {
    /// The topic does not exist and cannot be created.
    #[error("topic {topic} does not exist")]
    UnknownTopic {
        /// The topic.
        topic: String,
    },
    /// The record is larger than the topic accepts.
    #[error("record of {size} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Record size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The producer or broker cannot take records now.
    #[error("unavailable: {reason}")]
    Unavailable {
        /// Why.
        reason: String,
    },
}

/// A record header: key and value bytes.
pub type Header<'a> = (&'a str, &'a [u8]);

/// Produces records to Kafka topics.
pub trait TopicSink: Send + Sync + fmt::Debug {
    /// Sends one record (may only enqueue it).
    ///
    /// # Errors
    /// [`SinkError`] when the record is refused.
    fn send(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        value: &[u8],
        headers: &[Header<'_>],
    ) -> Result<(), SinkError>;

    /// Returns once every record sent so far is durable.
    ///
    /// # Errors
    /// [`SinkError`] when some record could not be delivered.
    fn flush(&self) -> Result<(), SinkError> {
        Ok(())
    }
}

/// A record captured by [`MemoryTopicSink`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentRecord {
    /// Topic.
    pub topic: String,
    /// Key.
    pub key: Option<Vec<u8>>,
    /// Value.
    pub value: Vec<u8>,
    /// Headers.
    pub headers: Vec<(String, Vec<u8>)>,
}

impl SentRecord {
    /// The value of the first header named `key`.
    #[must_use]
    pub fn header(&self, key: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_slice())
    }
}

/// An in-memory sink; can be told to fail, to test failure paths.
#[derive(Debug, Default)]
pub struct MemoryTopicSink {
    records: Mutex<Vec<SentRecord>>,
    fail_with: Mutex<Option<SinkError>>,
}

impl MemoryTopicSink {
    /// An empty sink.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Every record sent so far.
    #[must_use]
    pub fn records(&self) -> Vec<SentRecord> {
        self.records.lock().clone()
    }

    /// Records sent to `topic`.
    #[must_use]
    pub fn records_for(&self, topic: &str) -> Vec<SentRecord> {
        self.records
            .lock()
            .iter()
            .filter(|r| r.topic == topic)
            .cloned()
            .collect()
    }

    /// Makes every following `send` fail with `error` (or succeed again with `None`).
    pub fn fail_with(&self, error: Option<SinkError>) {
        *self.fail_with.lock() = error;
    }
}

impl TopicSink for MemoryTopicSink {
    fn send(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        value: &[u8],
        headers: &[Header<'_>],
    ) -> Result<(), SinkError> {
        if let Some(e) = self.fail_with.lock().clone() {
            return Err(e);
        }
        self.records.lock().push(SentRecord {
            topic: topic.to_owned(),
            key: key.map(<[u8]>::to_vec),
            value: value.to_vec(),
            headers: headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.to_vec()))
                .collect(),
        });
        Ok(())
    }
}
