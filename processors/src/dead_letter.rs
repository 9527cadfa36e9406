//! The dead-letter path: messages that cannot be decoded into alerts.
//!
//! The design's promise is that bad input loses nothing and stops nothing:
//! the original bytes go, unchanged, to a dead-letter topic, with the reason
//! and the source coordinates in headers, and the chain goes on with the
//! next message.

use std::sync::Arc;

use crate::sink::{SinkError, TopicSink};

/// Header carrying the human-readable reason.
pub const REASON_HEADER: &str = "starlog.error";
/// Header carrying the source topic.
pub const TOPIC_HEADER: &str = "starlog.source.topic";
/// Header carrying the source partition (decimal).
pub const PARTITION_HEADER: &str = "starlog.source.partition";
/// Header carrying the source offset (decimal).
pub const OFFSET_HEADER: &str = "starlog.source.offset";

/// Where undecodable messages go.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    topic: String,
    sink: Option<Arc<dyn TopicSink>>,
}

impl DeadLetter {
    /// Sends to `topic` through `sink`; with no sink, dead letters are only
    /// logged and counted (the message stays in its source topic).
    #[must_use]
    pub fn new(topic: impl Into<String>, sink: Option<Arc<dyn TopicSink>>) -> Self {
        DeadLetter {
            topic: topic.into(),
            sink,
        }
    }

    /// The dead-letter topic.
    #[must_use]
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Sends the original message with the reason.
    ///
    /// # Errors
    /// The sink's error (the runner must then retry the message).
    pub fn send(
        &self,
        source: &crate::input::InputRecord<'_>,
        reason: &str,
    ) -> Result<(), SinkError> {
        tracing::warn!(
            topic = source.topic,
            partition = source.partition,
            offset = source.offset,
            dead_letter_topic = %self.topic,
            %reason,
            "message sent to the dead-letter topic"
        );
        let Some(sink) = &self.sink else {
            return Ok(());
        };
        let partition = source.partition.to_string();
        let offset = source.offset.to_string();
        let mut headers: Vec<(&str, &[u8])> = source.headers.to_vec();
        headers.push((REASON_HEADER, reason.as_bytes()));
        headers.push((TOPIC_HEADER, source.topic.as_bytes()));
        headers.push((PARTITION_HEADER, partition.as_bytes()));
        headers.push((OFFSET_HEADER, offset.as_bytes()));
        sink.send(&self.topic, source.key, source.value, &headers)
    }

    /// Flushes the sink.
    ///
    /// # Errors
    /// The sink's error.
    pub fn flush(&self) -> Result<(), SinkError> {
        self.sink.as_ref().map_or(Ok(()), |s| s.flush())
    }
}
