//! The mirror's errors. Each names what it is about: the YAML path, the
//! topic/partition/offset, the registry, the checkpoint.

use starlog_clients::ClientError;

use crate::registry::RegistryError;

/// A fault in the configuration file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {reason}")]
    Read {
        /// File path.
        path: String,
        /// The OS error.
        reason: String,
    },
    /// The text is not YAML.
    #[error("not valid YAML: {reason}")]
    Yaml {
        /// The parser's message (with line and column).
        reason: String,
    },
    /// A value is wrong.
    #[error("{path}: {message}")]
    Invalid {
        /// YAML path, e.g. `topics[0].partitions`.
        path: String,
        /// What is wrong.
        message: String,
    },
}

impl ConfigError {
    /// The YAML path of an [`ConfigError::Invalid`] fault.
    pub fn path(&self) -> Option<&str> {
        match self {
            Self::Invalid { path, .. } => Some(path),
            _ => None,
        }
    }
}

/// Why a mirror run ended with an error.
#[derive(Debug, thiserror::Error)]
pub enum MirrorError {
    /// The configuration is wrong.
    #[error("configuration: {0}")]
    Config(#[from] ConfigError),
    /// A client call failed for good.
    #[error("{context}: {source}")]
    Client {
        /// What the mirror was doing.
        context: String,
        /// The client error.
        #[source]
        source: ClientError,
    },
    /// A registry could not be set up or used.
    #[error("{context}: {source}")]
    Registry {
        /// What the mirror was doing.
        context: String,
        /// The registry error.
        #[source]
        source: RegistryError,
    },
    /// A record was refused and the policy is `stop`.
    #[error("bad input at {topic}/{partition} offset {offset}: {reason} (policy: stop)")]
    BadInput {
        /// Upstream topic.
        topic: String,
        /// Upstream partition.
        partition: i32,
        /// Upstream offset.
        offset: i64,
        /// Why the record was refused.
        reason: String,
    },
    /// An upstream batch is corrupt (not a per-record problem).
    #[error("corrupt upstream batch at {topic}/{partition} offset {offset}: {reason}")]
    CorruptUpstream {
        /// Upstream topic.
        topic: String,
        /// Upstream partition.
        partition: i32,
        /// Base offset of the batch.
        offset: i64,
        /// What is wrong.
        reason: String,
    },
    /// The local checkpoint cannot be trusted or written.
    #[error("checkpoint of group {group}: {reason}")]
    Checkpoint {
        /// The mirror's consumer group.
        group: String,
        /// What is wrong.
        reason: String,
    },
    /// A target topic exists with a layout the configuration contradicts.
    #[error("target topic {topic}: {reason}")]
    Target {
        /// The topic.
        topic: String,
        /// What is wrong.
        reason: String,
    },
    /// A produce failed after the producer's retries.
    #[error("producing to {topic}/{partition} failed: {source}")]
    Produce {
        /// Target topic.
        topic: String,
        /// Target partition.
        partition: i32,
        /// The client error.
        #[source]
        source: ClientError,
    },
}

impl MirrorError {
    /// Wraps a client error with what was being done.
    pub fn client(context: impl Into<String>, source: ClientError) -> Self {
        Self::Client {
            context: context.into(),
            source,
        }
    }
}
