//! The `starlog` binary's composition of the crates: what it plugs into
//! the broker library (the in-broker mirrors with the mirror engine, the
//! schema-id rule's upstream registry client from the clients) and the
//! `starlog cluster` commands' HTTP calls. `main.rs` is the CLI.

pub mod cluster_cli;
pub mod mirror_task;
pub mod upstream;

use std::sync::Arc;

use starlog_broker::Extensions;

/// What the broker gets plugged in: the mirror engine for the `mirrors:`
/// section, the clients' registry client for the schema-id rule.
pub fn extensions() -> Extensions {
    Extensions {
        upstream_registry: Some(Arc::new(upstream::Upstream::default())),
        mirrors: Some(Arc::new(mirror_task::Mirrors)),
    }
}
