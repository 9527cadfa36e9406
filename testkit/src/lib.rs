//! Test support for Starlog, shared by the tests of every crate and by
//! `starlog-bench` (never linked into the `starlog` binary):
//!
//! - [`TestBroker`]: a broker in this process on 127.0.0.1 with its own
//!   temporary data directory, started with the broker library's embedding
//!   API ([`starlog_broker::Embedded`]);
//! - [`free_port`] / [`try_free_port`]: loopback ports for brokers started
//!   as processes;
//! - [`testdata_dir`] / [`alert_files`]: the repository's `testdata/`;
//! - [`cluster`]: clusters of `starlog serve` processes on loopback (the
//!   one harness of the cluster tests and `starlog-bench cluster`);
//! - [`ClusterStatus`]: the typed `GET /cluster/status` document;
//! - [`pki`]: a test CA and the certificates it signs, as PEM files.
//!
//! A test binary that starts a broker declares the guarded global allocator
//! itself (`starlog_alloc::GuardedAllocator`): a library never does.

mod broker;
pub mod cluster;
mod data;
pub mod pki;
mod ports;

pub use broker::{init_tracing, TestBroker};
pub use data::{alert_files, testdata_dir};
pub use ports::{free_port, try_free_port};
pub use starlog_broker::cluster::{ClusterStatus, GroupState, PeerState, ReplicaState};
