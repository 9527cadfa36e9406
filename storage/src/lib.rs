//! Starlog storage: the segmented, crash-safe partition log and the metadata store.
//!
//! * [`PartitionLog`] stores Kafka record batches (magic v2) exactly as produced, in segment
//!   files with sparse offset and time indexes, and serves Fetch-ready byte ranges. It recovers
//!   from torn writes on open, truncates for Raft, applies retention, and group-commits
//!   fdatasyncs according to a [`FlushPolicy`].
//! * [`MetaStore`] keeps topics, per-topic configs and consumer-group offsets durable.
//!
//! Everything is synchronous and `Send + Sync`; async callers use `spawn_blocking`.
//!
//! The v2 batch header (decode, validate, patch) is `starlog-wire`'s; `BatchHeader`,
//! `BatchError`, `parse_batch_header` and `validate_batch` are re-exported from it.
//!
//! Module map: `config` (LogConfig and topic config
//! mapping), `index` (sparse indexes), `segment` (one segment file), `recovery` (scanning
//! segment bytes), `durability` (group commit), `checkpoint` (persisted log start), `clean_shutdown` (skip the active scan after a clean close),
//! `partition_log` (the log), `retention` (the background retention task), `meta_store` (metadata), `fsutil`/`mmap` (crash-safe file helpers).

mod checkpoint;
mod clean_shutdown;
mod config;
mod durability;
mod error;
mod fsutil;
mod index;
mod meta_store;
mod mmap;
mod partition_log;
mod recovery;
mod retention;
mod segment;

pub use config::{
    log_config_from_topic_configs, FlushPolicy, LogConfig, DEFAULT_FLUSH_INTERVAL,
    FLUSH_POLICY_KEY, MAX_SEGMENT_BYTES,
};
pub use error::StorageError;
pub use meta_store::{CommittedOffset, MetaStore, TopicMeta};
pub use partition_log::{
    AppendInfo, DurabilityTicket, PartitionLog, ReadResult, RecoveredTail, RetentionOutcome,
};
pub use retention::{run_retention_once, Clock, RetentionPass, RetentionWorker, SystemClock};
pub use starlog_wire::{
    parse_batch_header, validate_batch, BatchError, BatchHeader, BATCH_HEADER_LEN, MAGIC_V2,
};
