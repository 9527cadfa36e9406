//! `starlog-mirror`: mirrors an upstream Kafka alert stream into the local
//! Starlog buffer, once.
//!
//! The upstream (ZTF, Rubin) allows one connection per community broker,
//! so the buffer reads it once and everything local reads the buffer. On
//! the way the mirror
//! - merges and renames topics by regex rules (`ztf_(\d{8})_programid(\d)`
//!   → `ztf-buffer`: one continuous topic instead of one per night);
//! - re-partitions to the local parallelism (by key, else by a hash of the
//!   alert id read from the Avro body, else by a hash of the value);
//! - rewrites Confluent schema ids from the upstream registry's to the
//!   local registry's (each id resolved and registered once);
//! - applies a bad-input policy (dead-letter / skip / stop) to records it
//!   cannot mirror as configured, never losing one silently;
//! - writes every upstream record exactly once, across `kill -9` and
//!   restarts (see [`engine`] and [`checkpoint`]).
//!
//! Module map: [`config`] (YAML), [`engine`] (the loop; the pure byte-level
//! schema-id rewrite and Confluent framing are `starlog-wire`'s, shared with
//! the broker's server-side rule),
//! [`registry`] (HTTP registry client and id cache), [`partitioning`],
//! [`alert_id`], [`body_check`], [`passthrough`], [`provenance`], [`tracker`],
//! [`checkpoint`], [`recovery`], [`progress`], [`summary`], [`status`]
//! (live counters for the broker's `/metrics`).

pub mod alert_id;
pub mod body_check;
pub mod checkpoint;
pub mod config;
pub mod engine;
pub mod error;
pub mod partitioning;
pub mod passthrough;
pub mod progress;
pub mod provenance;
pub mod recovery;
pub mod registry;
pub mod status;
pub mod summary;
pub mod tracker;
mod yaml;

pub use config::{BadInputPolicy, MirrorConfig, Partitioning, SchemaIds, StartFrom, TopicRule};
pub use engine::{run, run_with_status};
pub use error::{ConfigError, MirrorError};
pub use status::{MirrorStatus, StatusView, TopicStatus};
pub use summary::{Summary, TopicCounts};
