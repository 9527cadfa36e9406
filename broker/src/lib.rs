//! The Starlog broker: a Kafka-wire-compatible server over `starlog-storage`,
//! as a library (the `starlog` binary crate runs it, with the mirror and the
//! clients plugged in through [`extensions`]).
//!
//! A request travels `server` (accept) → `connection` (framing, limits) →
//! `dispatch` (header, version check, decode) → `handlers::*` (the API's
//! semantics) → `partition` / `topics` (state) → `starlog_storage` (bytes on
//! disk). Consumer groups live in `groups`.

pub mod api_versions;
pub mod backend;
pub mod batch;
pub mod broker;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod connection;
pub mod control;
pub mod dispatch;
pub mod embedded;
pub mod errors;
pub mod extensions;
pub mod groups;
pub mod handlers;
pub mod http;
pub mod metrics;
pub mod partition;
pub mod pipelines;
pub mod producer_state;
pub mod registry;
pub mod replicator;
pub mod schema_rule;
pub mod server;
pub mod topic_configs;
pub mod topics;
pub mod watermark;

pub use config::BrokerConfig;
pub use embedded::{Embedded, EmbeddedBroker, EmbeddedBuilder};
pub use extensions::Extensions;
pub use server::{Server, StartError};

/// The embedded default configuration, with every key documented (what
/// `starlog default-config` prints).
pub const DEFAULT_CONFIG_YAML: &str = include_str!("../starlog.default.yaml");

/// The unit tests decode garbage as the `starlog` binary does, so they use
/// its guarded allocator (a library never declares one for its users).
#[cfg(test)]
#[global_allocator]
static GLOBAL: starlog_alloc::GuardedAllocator = starlog_alloc::GuardedAllocator;
