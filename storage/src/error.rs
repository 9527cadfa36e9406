//! Typed errors of the storage crate.
//!
//! Every variant names what is at fault (topic, partition, offset, file, config key) so that a
//! log line or a Kafka error mapping in the broker can be precise without string parsing.

use std::path::PathBuf;

use starlog_wire::BatchError;

/// Everything that can go wrong in `starlog-storage`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// An I/O call failed on a file or directory.
    #[error("I/O error during {op} on {path}: {source}")]
    Io {
        /// What we were doing ("open", "write", "fdatasync", ...).
        op: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying OS error.
        #[source]
        source: std::io::Error,
    },

    /// A record batch handed to `append` is malformed; nothing was stored.
    #[error("invalid record batch for {topic}-{partition} (batch #{batch_index} at byte {position} of the request): {fault}")]
    InvalidBatch {
        /// Topic of the partition the batch was appended to.
        topic: String,
        /// Partition the batch was appended to.
        partition: i32,
        /// Index of the faulty batch among the batches of the request (0-based).
        batch_index: usize,
        /// Byte position of the faulty batch inside the request's records.
        position: usize,
        /// What is wrong with it.
        #[source]
        fault: BatchError,
    },

    /// A single batch is larger than `max_batch_bytes` (Kafka's `max.message.bytes`).
    #[error("record batch of {size} bytes for {topic}-{partition} exceeds max batch size {max}")]
    BatchTooLarge {
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
        /// Size of the batch in bytes.
        size: usize,
        /// Configured maximum.
        max: u32,
    },

    /// `append` was called with no batch at all.
    #[error("empty records for {topic}-{partition}: at least one record batch is required")]
    EmptyRecords {
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
    },

    /// An offset outside `[log_start_offset, log_end_offset]`.
    #[error("offset {offset} out of range for {topic}-{partition} (log start {log_start_offset}, log end {log_end_offset})")]
    OffsetOutOfRange {
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
        /// The offset asked for.
        offset: i64,
        /// First offset still stored.
        log_start_offset: i64,
        /// Next offset to be assigned.
        log_end_offset: i64,
    },

    /// Offsets would overflow `i64` (or a segment's 32-bit relative offsets).
    #[error("offset overflow in {topic}-{partition} at offset {offset}")]
    OffsetOverflow {
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
        /// Offset at which the overflow happens.
        offset: i64,
    },

    /// A topic config value cannot be used.
    #[error("invalid value {value:?} for topic config {key}: {reason}")]
    InvalidConfig {
        /// Config key (e.g. `retention.ms`).
        key: String,
        /// Offending value.
        value: String,
        /// Why it is rejected.
        reason: String,
    },

    /// A file on disk is not what it should be and cannot be repaired automatically.
    #[error("corrupt file {path} at byte {position}: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Byte position of the problem.
        position: u64,
        /// What is wrong.
        reason: String,
    },

    /// The metadata store could not encode or decode its state.
    #[error("metadata store {path}: {source}")]
    MetaEncoding {
        /// The file being read or written.
        path: PathBuf,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },

    /// An invariant of the log did not hold (a bug, never bad input): the operation was refused
    /// before it could store or publish anything inconsistent. Logged at error level where it
    /// is detected; see ARCHITECTURE.md's Invariants.
    #[error("invariant violated in {path} at offset {offset}: {invariant} ({detail})")]
    InvariantViolated {
        /// Which invariant (a fixed phrase, e.g. "append starts at the segment's end").
        invariant: &'static str,
        /// The segment file (its directory names the topic and partition).
        path: PathBuf,
        /// The offset at fault.
        offset: i64,
        /// The values that disagree.
        detail: String,
    },

    /// A previous fsync failed; the log refuses writes because durability of earlier data is unknown.
    #[error("log {topic}-{partition} is poisoned after a failed fsync: {reason}")]
    Poisoned {
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
        /// The original failure.
        reason: String,
    },
}

impl StorageError {
    /// Builds an [`StorageError::Io`] for `path`.
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            op,
            path: path.into(),
            source,
        }
    }
}
