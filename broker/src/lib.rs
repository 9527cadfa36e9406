//! The Starlog broker: a Kafka-wire-compatible server over `starlog-storage`,
//! as a library (the `starlog` binary crate runs it, with the mirror and the
//! clients plugged in through [`extensions`]).
//!
//! A request travels `server` (accept) → `connection` (framing, limits) →
//! `dispatch` (header, version check, decode) → `handlers::*` (the API's
//! semantics) → `partition` / `topics` (state) → `starlog_storage` (bytes on
//! disk). Consumer groups live in `groups`.

// The public surface: the embedding API and the configuration, what a
// program plugs in, the cluster settings and status document, the
// supported API versions. Everything else is private.
pub mod api_versions;
pub mod cluster;
pub mod config;
pub mod extensions;

mod backend;
mod batch;
mod broker;
mod clock;
mod connection;
mod control;
mod dispatch;
mod embedded;
mod errors;
mod frame;
mod groups;
mod handlers;
mod http;
pub mod listener;
// `metrics::router` is used by its unit tests only; the module is being
// rewritten on `prometheus-client`.
#[allow(dead_code)]
mod metrics;
mod partition;
mod peer;
mod pipelines;
mod producer_state;
mod registry;
mod replicator;
mod schema_rule;
pub mod security;
mod server;
mod session;
mod topic_configs;
mod topics;
mod watermark;

pub use config::BrokerConfig;
pub use control::Reassignment;
/// The request decoder, for the fuzz target (`broker/fuzz`).
pub use dispatch::parse_frame;
pub use embedded::{Embedded, EmbeddedBroker, EmbeddedBuilder};
pub use extensions::Extensions;
pub use pipelines::sink::{parse_source_header, SOURCE_HEADER};
pub use pipelines::PipelineStatus;
pub use server::{Server, StartError};

/// The embedded default configuration, with every key documented (what
/// `starlog default-config` prints).
pub const DEFAULT_CONFIG_YAML: &str = include_str!("../starlog.default.yaml");

/// The unit tests decode garbage as the `starlog` binary does, so they use
/// its guarded allocator (a library never declares one for its users).
#[cfg(test)]
#[global_allocator]
static GLOBAL: starlog_alloc::GuardedAllocator = starlog_alloc::GuardedAllocator;
