//! The site's components as typed values (what [`super::Site::load`]
//! returns once the YAML has been checked).

use std::collections::BTreeMap;
use std::path::PathBuf;

/// A `kafka-buffer` component: a Starlog broker, or a Raft cluster of
/// `instances` brokers, and the topics it holds.
#[derive(Debug, Clone, PartialEq)]
pub struct KafkaBuffer {
    /// Component name (letters, digits, `-`; unique in the site).
    pub name: String,
    /// Brokers (1: a single unreplicated broker; more: one Raft cluster).
    pub instances: u16,
    /// Where the brokers listen.
    pub listeners: Listeners,
    /// Where the brokers keep their data.
    pub storage: Storage,
    /// The default retention of the buffer's topics.
    pub retention: Retention,
    /// Topics created when the site comes up.
    pub topics: Vec<TopicSpec>,
    /// Whether the brokers serve the Confluent-compatible schema registry.
    pub registry: bool,
}

/// A buffer's ports. On the local platform, instance `i` (0-based) uses
/// each port plus `i`; the renderers give every container the same ports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listeners {
    /// Host name or IP the local platform binds and advertises (default `127.0.0.1`).
    pub host: String,
    /// Kafka listener port of the first instance (default 9092).
    pub kafka: u16,
    /// Raft listener port of the first instance (default 9192; clusters only).
    pub raft: u16,
    /// HTTP listener port of the first instance (`/metrics`, `/cluster/*`,
    /// the registry; default 8081).
    pub http: u16,
}

impl Listeners {
    fn port(base: u16, instance: u16) -> u16 {
        base.saturating_add(instance)
    }

    /// The Kafka port of instance `i` on the local platform.
    #[must_use]
    pub fn kafka_port(&self, instance: u16) -> u16 {
        Self::port(self.kafka, instance)
    }

    /// The Raft port of instance `i` on the local platform.
    #[must_use]
    pub fn raft_port(&self, instance: u16) -> u16 {
        Self::port(self.raft, instance)
    }

    /// The HTTP port of instance `i` on the local platform.
    #[must_use]
    pub fn http_port(&self, instance: u16) -> u16 {
        Self::port(self.http, instance)
    }
}

impl Default for Listeners {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".to_owned(),
            kafka: 9092,
            raft: 9192,
            http: 8081,
        }
    }
}

/// Where a buffer's brokers keep their data.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Storage {
    /// The local platform's data folder for the buffer (instance `i` in
    /// `<data_dir>/<i>`); relative to the run folder; default `data/<buffer>`.
    pub data_dir: Option<PathBuf>,
    /// Volume size for the renderers (e.g. `10Gi`).
    pub size: Option<String>,
    /// fsync policy (`always`, `never` or milliseconds), the broker's `log.flush`.
    pub flush: Option<String>,
}

/// Default retention of a buffer's topics (the broker's `log.retention_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Age after which whole segments are deleted; -1 keeps them forever.
    pub ms: i64,
    /// Size cap per partition; -1 for none.
    pub bytes: i64,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            ms: 604_800_000,
            bytes: -1,
        }
    }
}

/// A topic of a buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSpec {
    /// Topic name.
    pub name: String,
    /// Partitions.
    pub partitions: u32,
    /// Replicas of each partition (at most the buffer's instances).
    pub replication: u16,
    /// Topic configs, Kafka's names (`retention.ms`, `cleanup.policy`, ...).
    pub configs: BTreeMap<String, String>,
}

/// Where a processing node's chain runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// Standalone processes (`starlog process`), members of one consumer group.
    Standalone {
        /// Copies of the node.
        instances: u16,
    },
    /// Inside the brokers of the named buffer, next to the partitions.
    InBroker,
}

/// A processing node's pipeline: the component format of
/// `examples/pipelines/*.yaml`.
#[derive(Debug, Clone, PartialEq)]
pub enum PipelineSource {
    /// A pipeline file (resolved against the site file's folder).
    File(PathBuf),
    /// The component mapping itself, written in the site file.
    Inline(serde_yaml::Value),
}

/// A `processing-node` component.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessingNode {
    /// Component name.
    pub name: String,
    /// The buffer it reads from and writes to (its bootstrap, or the
    /// brokers that run it in-broker).
    pub buffer: String,
    /// Standalone with instances, or in-broker.
    pub placement: Placement,
    /// The chain.
    pub pipeline: PipelineSource,
    /// The topic the pipeline reads (its `source.topic`).
    pub source_topic: String,
}

/// Where a mirror reads from.
#[derive(Debug, Clone, PartialEq)]
pub enum Upstream {
    /// Another buffer of this site.
    Buffer(String),
    /// An outside Kafka cluster: the mirror YAML's `upstream:` mapping
    /// (bootstrap, client_id, tls, sasl, registry).
    External(serde_yaml::Value),
}

/// A `mirror` component: copies an upstream stream into a buffer of the site.
#[derive(Debug, Clone, PartialEq)]
pub struct Mirror {
    /// Component name (also the mirror's name: its checkpoint group).
    pub name: String,
    /// Where it reads.
    pub upstream: Upstream,
    /// The buffer it writes into.
    pub buffer: String,
    /// The rest of the mirror YAML (`topics`, `start`, `bad_input`, ...),
    /// as in `examples/mirror.yaml`.
    pub rules: serde_yaml::Mapping,
}

/// Which alert files a `testdata` component sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlertFiles {
    /// The shipped samples under the repository's `testdata/` (`ztf` or `lsst`).
    Samples(SampleSet),
    /// Files and folders of Avro container files (resolved against the site file's folder).
    Paths(Vec<PathBuf>),
}

/// The shipped sample sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SampleSet {
    /// `testdata/ztf/alerts`.
    Ztf,
    /// `testdata/lsst/alerts`.
    Lsst,
}

impl SampleSet {
    /// The folder under `testdata/`.
    #[must_use]
    pub fn folder(self) -> &'static str {
        match self {
            Self::Ztf => "ztf/alerts",
            Self::Lsst => "lsst/alerts",
        }
    }
}

/// How each alert is framed in its message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// One Avro object container file per message (ZTF).
    Ocf,
    /// Confluent framing: magic 0, the schema id from the registry, the
    /// Avro body (Rubin).
    Confluent,
    /// The bare Avro body of a static schema named in the configuration.
    Schemaless,
    /// The bare Avro body, the writer schema's JSON in the message key (Fink's streams).
    SchemaKey,
}

impl Framing {
    /// The names used in YAML and on the command line.
    pub const NAMES: [&'static str; 4] = ["ocf", "confluent", "schemaless", "schema-key"];

    /// Its name.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Ocf => "ocf",
            Self::Confluent => "confluent",
            Self::Schemaless => "schemaless",
            Self::SchemaKey => "schema-key",
        }
    }

    /// Parses a name of [`Self::NAMES`].
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "ocf" => Some(Self::Ocf),
            "confluent" => Some(Self::Confluent),
            "schemaless" => Some(Self::Schemaless),
            "schema-key" => Some(Self::SchemaKey),
            _ => None,
        }
    }
}

/// A named Avro schema and the `.avsc` files that define it (dependencies first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedSchema {
    /// Full name of the record, e.g. `ztf.alert`.
    pub name: String,
    /// The files (resolved against the site file's folder).
    pub files: Vec<PathBuf>,
}

/// A `testdata` component: fills a topic from alert files, once.
#[derive(Debug, Clone, PartialEq)]
pub struct TestData {
    /// Component name.
    pub name: String,
    /// The buffer holding the topic.
    pub buffer: String,
    /// The topic to fill.
    pub topic: String,
    /// The alert files.
    pub files: AlertFiles,
    /// The framing.
    pub framing: Framing,
    /// Messages per second; `None` sends flat out.
    pub rate: Option<f64>,
    /// Messages to send (cycling over the files); `None` sends each file once.
    pub count: Option<u64>,
    /// Registry subject (confluent framing); default `<topic>-value`.
    pub subject: Option<String>,
    /// The static schema (schemaless framing).
    pub schema: Option<NamedSchema>,
}
