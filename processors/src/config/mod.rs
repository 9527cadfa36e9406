//! Pipelines described in YAML, validated when loaded.
//!
//! ```yaml
//! component:
//!   type: processing-node          # or: in-broker
//!   name: solar-system-to-file     # optional; defaults to the source group or topic
//!   source: { topic: ztf-buffer, group: solar-system-to-db }
//!   input:                         # optional; default format: auto
//!     format: avro                 # auto | ocf | confluent | avro (bare)
//!     schema:                      # for bare Avro: the named schema and its files
//!       name: ztf.alert
//!       files: [schema/cutout.avsc, schema/candidate.avsc, schema/prv_candidate.avsc, schema/alert.avsc]
//!   dead_letter: { topic: ztf-buffer-dead-letter }   # optional; this is the default
//!   processors:
//!     - class: SolarSystemFilter
//!       params: { action: include, targets: [4826] }
//!     - class: KafkaTopicWriter
//!       params: { topic: solar-system }
//! ```
//!
//! Loading ([`PipelineSpec::from_yaml_str`], [`PipelineSpec::from_file`])
//! checks everything that can be checked without the runner: classes,
//! parameter names, types and ranges, expression syntax, schema files. Each
//! fault is reported with its YAML path. Building
//! ([`PipelineSpec::build`]) opens catalogs and files and wires in what the
//! runner injects through [`BuildContext`]; its errors carry paths too.

pub mod params;
pub mod pipeline_spec;
pub mod registry;

use std::path::PathBuf;

pub use params::Params;
pub use pipeline_spec::{ChainSpec, ComponentKind, InputSpec, PipelineSpec, SourceSpec};
pub use registry::{BuildContext, ProcessorRegistry, ProcessorSpec};

/// A configuration fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A value at `path` is wrong.
    #[error("{path}: {message}")]
    Invalid {
        /// YAML path, e.g. `component.processors[1].params.radius`.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// The pipeline file could not be read.
    #[error("cannot read pipeline file {file}: {source}")]
    Read {
        /// The file.
        file: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The text is not YAML.
    #[error("{origin}: not valid YAML: {reason}")]
    Syntax {
        /// File name or other origin.
        origin: String,
        /// Parser message, with line and column.
        reason: String,
    },
}

impl ConfigError {
    /// The YAML path of an [`ConfigError::Invalid`] fault.
    #[must_use]
    pub fn path(&self) -> Option<&str> {
        match self {
            Self::Invalid { path, .. } => Some(path),
            _ => None,
        }
    }
}
