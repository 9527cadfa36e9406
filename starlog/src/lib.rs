//! The `starlog` binary's composition of the crates: what it plugs into
//! the broker library (the in-broker mirrors with the mirror engine, a
//! cluster member's in-broker pipelines with the clients' processing node,
//! the schema-id rule's upstream registry client from the clients) and the
//! `starlog cluster` commands' HTTP calls. `main.rs` is the CLI.

pub mod cluster_cli;
pub mod mirror_task;
pub mod pipeline_task;
pub mod upstream;

use std::sync::Arc;

use starlog_broker::Extensions;

/// What the broker gets plugged in: the mirror engine for the `mirrors:`
/// section, the clients' registry client for the schema-id rule, the
/// processor classes of [`processors`] for in-broker pipelines, and the
/// clients' processing node to run them as group members in cluster mode.
pub fn extensions() -> Extensions {
    Extensions {
        upstream_registry: Some(Arc::new(upstream::Upstream::default())),
        mirrors: Some(Arc::new(mirror_task::Mirrors)),
        processors: Some(processors()),
        pipelines: Some(Arc::new(pipeline_task::Pipelines)),
    }
}

/// The processor classes a pipeline run by this binary may name: the
/// processors crate's built-ins and the `sinks` crate's writers and
/// notifiers (the same set in-broker and in `starlog process`).
#[must_use]
pub fn processors() -> starlog_processors::config::ProcessorRegistry {
    starlog_sinks::registry()
}
