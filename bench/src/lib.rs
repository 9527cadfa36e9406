//! `starlog-bench`: does Starlog meet the alert-stream requirement, and how
//! does it compare with another Kafka-compatible broker on the same machine?
//!
//! The requirement is 1,000 alerts/s sustained and 10,000 alerts/s stretch,
//! each a 40-100 KB Avro record, with consumers reading in real time and
//! nothing acknowledged lost. This crate replays the real alerts of the
//! repository's `testdata/` (or synthetic values) at a fixed rate or flat
//! out, against any bootstrap address, with K consumer groups, and reports
//! throughput, HdrHistogram latencies (produce and end-to-end), the broker
//! process's CPU and peak memory, whether every acknowledged message reached
//! every group intact, and all of it as a fraction of the machine's own
//! measured limits. A side-by-side mode runs Starlog and a peer A B A B.
//!
//! Module map:
//! - `client`: the `LoadClient` / `LoadProducer` / `LoadConsumer` seam;
//!   `rdkafka_client` implements it on librdkafka (the Starlog Rust client
//!   plugs in here later).
//! - `workload`, `payload`, `pacer`, `stamp`: what is sent, how fast, and
//!   the headers that make each message checkable and timeable.
//! - `run`: one run (topic, groups, producer) → `results::RunResult`.
//! - `ledger`, `stats`: delivery verdicts and latency/rate arithmetic.
//! - `target`, `spawned`, `proc_stats`: the broker under test, as a process
//!   we start per run or one already running, and its `/proc` figures.
//! - `security`: librdkafka's SASL/TLS settings, and a spawned Starlog
//!   with a secured listener (test CA, server certificate, SCRAM user);
//!   `security_cost`: plaintext against secured, pair by pair, and the
//!   issue 14 targets.
//! - `compare`: A B A B alternation, per-pair ratios, min/median/max.
//! - `limits`, `machine`: the machine's ceilings and description.
//! - `report`, `progress`: Markdown/JSON output, the progress bar.
//! - `chain`, `chain_output`, `pipeline_metrics`: Starlog's in-broker chain
//!   (the YAML that runs it, its output read live and checked against the
//!   inputs, its end-to-end latency, the broker's `/metrics` counters).
//! - `cluster`, `replication`, `failover`: Starlog Raft clusters started as
//!   N processes, RF N against RF 1 throughput A B A B, and leader failover
//!   (kill -9 to the first acknowledged produce).

pub mod broker_http;
pub mod chain;
pub mod chain_output;
pub mod client;
pub mod cluster;
pub mod compare;
pub mod error;
pub mod failover;
pub mod ledger;
pub mod limits;
pub mod machine;
pub mod pacer;
pub mod payload;
pub mod pipeline_metrics;
pub mod proc_stats;
pub mod progress;
pub mod rdkafka_client;
pub mod replication;
pub mod report;
pub mod results;
pub mod run;
pub mod security;
pub mod security_cost;
pub mod spawned;
pub mod stamp;
pub mod stats;
pub mod target;
pub mod workload;

pub use error::BenchError;
