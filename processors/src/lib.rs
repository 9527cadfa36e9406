//! Alert processing for Starlog: the alert model, processor chains, the
//! built-in filters and writers, and the YAML pipeline configuration.
//!
//! This crate knows nothing of sockets or segments (see the design's
//! "Processing model"): it sees message bytes and [`Candidate`]s. The two
//! runners — inside the broker, fed by partition appends, and the standalone
//! processing node, a consumer-group member — live in the `broker` and
//! `clients` crates and drive a [`Pipeline`] through the same seam:
//!
//! 1. load a [`config::PipelineSpec`] from YAML (every fault reported with its
//!    YAML path, at load time);
//! 2. build a [`Pipeline`] with a [`config::BuildContext`] that injects what
//!    only the runner has: a [`TopicSink`] for Kafka output and dead letters,
//!    and a schema registry;
//! 3. feed it [`InputRecord`]s; after [`Pipeline::flush`] succeeds, commit the
//!    input position.
//!
//! Module map: [`candidate`] (the alert model), [`decode`] (bytes →
//! candidates), [`processor`] and [`chain`] (the processing contract),
//! [`pipeline`] (decoder + chain + dead letters), [`config`] (YAML),
//! [`builtins`] (the processors), [`sky`] (angular distance, zone index,
//! catalogs), [`expr`] (the filter expression language), [`output`] (what
//! writers emit), [`sink`] (the injected Kafka producing side).

pub mod avro_value;
pub mod builtins;
pub mod candidate;
pub mod chain;
pub mod config;
pub mod dead_letter;
pub mod decode;
pub mod expr;
pub mod input;
pub mod output;
pub mod pipeline;
pub mod processor;
pub mod sink;
pub mod sky;

pub use candidate::{
    AlertFamily, Annotation, Candidate, CandidateMatch, CutoutKind, Detection, ObjectId,
};
pub use chain::Chain;
pub use decode::{AlertDecoder, DecodeError, InputFormat};
pub use pipeline::{ChainRun, InputRecord, Pipeline, RecordOutcome};
pub use processor::{CandidateProcessor, ProcessError, Response};
pub use sink::{SinkError, TopicSink};
