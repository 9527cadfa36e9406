//! The site file: a deployment described as components.
//!
//! ```yaml
//! name: demo                        # the site's name (run folder, service names)
//! components:
//!   - type: kafka-buffer            # a broker, or a Raft cluster of `instances` brokers
//!     name: alerts
//!     instances: 3
//!     listeners: { host: 127.0.0.1, kafka: 19092, raft: 19192, http: 18081 }
//!     topics:
//!       - { name: ztf-buffer, partitions: 4, replication: 3 }
//!   - type: testdata                # fills a topic from alert files, once
//!     name: ztf-samples
//!     buffer: alerts
//!     topic: ztf-buffer
//!     samples: ztf
//!   - type: processing-node         # a pipeline (the component format of examples/pipelines)
//!     name: bright
//!     buffer: alerts
//!     instances: 2
//!     pipeline: { file: pipelines/bright-transients.yaml }
//! ```
//!
//! [`Site::load`] parses and checks everything that needs no processor
//! classes: unknown keys, types and ranges, names, references between
//! components (a node reading a topic its buffer does not have, a
//! replication above the buffer's instances, ...), each fault with its
//! YAML path. [`Site::check_pipelines`] then loads every node's pipeline
//! with a processor class registry. `deploy/README.md` ("The site file")
//! documents every key.

mod model;
mod parse;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde_yaml::Value as Yaml;
use starlog_processors::config::{ConfigError, PipelineSpec, ProcessorRegistry};

pub use model::{
    AlertFiles, Framing, KafkaBuffer, Listeners, Mirror, NamedSchema, PipelineSource, Placement,
    ProcessingNode, Retention, SampleSet, Storage, TestData, TopicSpec, Upstream,
};
pub use parse::COMPONENT_TYPES;

/// A fault in a site file.
#[derive(Debug, thiserror::Error)]
pub enum SiteError {
    /// A value at `path` is wrong.
    #[error("{path}: {message}")]
    Invalid {
        /// YAML path, e.g. `components[2].topics[0].replication`.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// The file could not be read.
    #[error("cannot read site file {file}: {source}")]
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

impl SiteError {
    /// The YAML path of an [`SiteError::Invalid`] fault.
    #[must_use]
    pub fn path(&self) -> Option<&str> {
        match self {
            Self::Invalid { path, .. } => Some(path),
            _ => None,
        }
    }
}

impl From<ConfigError> for SiteError {
    fn from(e: ConfigError) -> Self {
        match e {
            ConfigError::Invalid { path, message } => Self::Invalid { path, message },
            ConfigError::Read { file, source } => Self::Read { file, source },
            ConfigError::Syntax { origin, reason } => Self::Syntax { origin, reason },
        }
    }
}

/// A checked site.
#[derive(Debug, Clone, PartialEq)]
pub struct Site {
    /// The site's name.
    pub name: String,
    /// The folder relative paths of the site file are resolved against
    /// (the site file's folder).
    pub base_dir: PathBuf,
    /// `kafka-buffer` components, in file order.
    pub buffers: Vec<KafkaBuffer>,
    /// `processing-node` components, in file order.
    pub nodes: Vec<ProcessingNode>,
    /// `mirror` components, in file order.
    pub mirrors: Vec<Mirror>,
    /// `testdata` components, in file order.
    pub testdata: Vec<TestData>,
    /// Component name → its YAML path (`components[i]`).
    paths: BTreeMap<String, String>,
}

impl Site {
    /// Reads and checks a site file; relative paths in it are resolved
    /// against its folder.
    ///
    /// # Errors
    /// [`SiteError`]: the first fault, with its YAML path.
    pub fn load(path: impl AsRef<Path>) -> Result<Site, SiteError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| SiteError::Read {
            file: path.to_owned(),
            source,
        })?;
        let base = path.parent().map_or_else(PathBuf::new, Path::to_owned);
        Self::from_yaml_str(&text, &path.display().to_string(), &base)
    }

    /// Parses and checks a site from YAML text.
    ///
    /// # Errors
    /// [`SiteError`]: the first fault, with its YAML path.
    pub fn from_yaml_str(text: &str, origin: &str, base_dir: &Path) -> Result<Site, SiteError> {
        let doc: Yaml = serde_yaml::from_str(text).map_err(|e| SiteError::Syntax {
            origin: origin.to_owned(),
            reason: e.to_string(),
        })?;
        let site = parse::site(&doc, base_dir)?;
        site.cross_check()?;
        Ok(site)
    }

    /// The buffer named `name`.
    #[must_use]
    pub fn buffer(&self, name: &str) -> Option<&KafkaBuffer> {
        self.buffers.iter().find(|b| b.name == name)
    }

    /// The YAML path of the component named `name` (`components[i]`).
    #[must_use]
    pub fn component_path(&self, name: &str) -> Option<&str> {
        self.paths.get(name).map(String::as_str)
    }

    fn at(&self, name: &str) -> String {
        self.paths
            .get(name)
            .cloned()
            .unwrap_or_else(|| "components".to_owned())
    }

    /// The checks across components.
    fn cross_check(&self) -> Result<(), SiteError> {
        let invalid = |path: String, message: String| SiteError::Invalid { path, message };
        let buffer_at = |owner: &str, name: &str| -> Result<&KafkaBuffer, SiteError> {
            self.buffer(name).ok_or_else(|| {
                let known: Vec<&str> = self.buffers.iter().map(|b| b.name.as_str()).collect();
                invalid(
                    format!("{}.buffer", self.at(owner)),
                    format!(
                        "no kafka-buffer component is named {name:?} (buffers: {})",
                        if known.is_empty() {
                            "none".to_owned()
                        } else {
                            known.join(", ")
                        }
                    ),
                )
            })
        };
        let topic_in = |buffer: &KafkaBuffer, topic: &str, path: String| {
            if buffer.topics.iter().any(|t| t.name == topic) {
                Ok(())
            } else {
                let known: Vec<&str> = buffer.topics.iter().map(|t| t.name.as_str()).collect();
                Err(invalid(
                    path,
                    format!(
                        "buffer {:?} has no topic {topic:?} (its topics: {}); list it under the buffer's topics",
                        buffer.name,
                        if known.is_empty() { "none".to_owned() } else { known.join(", ") }
                    ),
                ))
            }
        };
        for b in &self.buffers {
            let at = self.at(&b.name);
            let mut seen = HashMap::new();
            for (i, t) in b.topics.iter().enumerate() {
                if let Some(first) = seen.insert(t.name.as_str(), i) {
                    return Err(invalid(
                        format!("{at}.topics[{i}].name"),
                        format!(
                            "topic {:?} is already listed at {at}.topics[{first}]",
                            t.name
                        ),
                    ));
                }
            }
        }
        self.check_ports()?;
        for n in &self.nodes {
            let at = self.at(&n.name);
            let b = buffer_at(&n.name, &n.buffer)?;
            let topic_path = match n.pipeline {
                PipelineSource::File(_) => format!("{at}.pipeline.file"),
                PipelineSource::Inline(_) => format!("{at}.pipeline.source.topic"),
            };
            topic_in(b, &n.source_topic, topic_path)?;
            if n.placement == Placement::InBroker && b.instances > 1 {
                return Err(invalid(
                    format!("{at}.placement"),
                    format!(
                        "buffer {:?} has {} instances, and in-broker chains are not cluster-aware yet \
                         (each broker would run the chain on its own replicas): place it on a \
                         single-instance buffer, or run it standalone",
                        b.name, b.instances
                    ),
                ));
            }
        }
        for m in &self.mirrors {
            let at = self.at(&m.name);
            buffer_at(&m.name, &m.buffer)?;
            if let Upstream::Buffer(up) = &m.upstream {
                if self.buffer(up).is_none() {
                    return Err(invalid(
                        format!("{at}.upstream.buffer"),
                        format!("no kafka-buffer component is named {up:?}"),
                    ));
                }
                if *up == m.buffer {
                    return Err(invalid(
                        format!("{at}.upstream.buffer"),
                        "a mirror cannot read the buffer it writes into".to_owned(),
                    ));
                }
            }
        }
        for t in &self.testdata {
            let at = self.at(&t.name);
            let b = buffer_at(&t.name, &t.buffer)?;
            topic_in(b, &t.topic, format!("{at}.topic"))?;
            if t.framing == Framing::Confluent && !b.registry {
                return Err(invalid(
                    format!("{at}.framing"),
                    format!(
                        "confluent framing registers the schema in the buffer's registry, and buffer {:?} has `registry: false`",
                        b.name
                    ),
                ));
            }
        }
        Ok(())
    }

    /// On the local platform every instance takes its base ports plus its
    /// ordinal: no two buffers on one host may overlap.
    fn check_ports(&self) -> Result<(), SiteError> {
        let mut taken: HashMap<(String, u16), String> = HashMap::new();
        for b in &self.buffers {
            let at = self.at(&b.name);
            for i in 0..b.instances {
                let ports = [
                    ("kafka", b.listeners.kafka_port(i)),
                    ("raft", b.listeners.raft_port(i)),
                    ("http", b.listeners.http_port(i)),
                ];
                for (which, port) in ports {
                    if which == "raft" && b.instances == 1 {
                        continue;
                    }
                    let key = (b.listeners.host.clone(), port);
                    let me = format!("{} instance {i} {which}", b.name);
                    if let Some(other) = taken.insert(key, me) {
                        return Err(SiteError::Invalid {
                            path: format!("{at}.listeners.{which}"),
                            message: format!(
                                "port {port} of instance {i} is also {other}'s (instance i uses each port + i)"
                            ),
                        });
                    }
                }
            }
        }
        Ok(())
    }

    /// Loads every node's pipeline with `registry`'s processor classes
    /// (unknown classes, parameters, expressions, schema files).
    ///
    /// # Errors
    /// The first fault, with its YAML path (inside the site file, or the
    /// pipeline file's own path after the file's name).
    pub fn check_pipelines(&self, registry: &ProcessorRegistry) -> Result<(), SiteError> {
        for n in &self.nodes {
            self.pipeline_spec(n, registry)?;
        }
        Ok(())
    }

    /// A node's pipeline, loaded with `registry`.
    ///
    /// # Errors
    /// As [`Site::check_pipelines`].
    pub fn pipeline_spec(
        &self,
        node: &ProcessingNode,
        registry: &ProcessorRegistry,
    ) -> Result<PipelineSpec, SiteError> {
        let at = format!("{}.pipeline", self.at(&node.name));
        let want = match node.placement {
            Placement::InBroker => "in-broker",
            Placement::Standalone { .. } => "processing-node",
        };
        match &node.pipeline {
            PipelineSource::File(file) => {
                let resolved = self.base_dir.join(file);
                let spec = PipelineSpec::from_file(&resolved, registry).map_err(|e| {
                    SiteError::Invalid {
                        path: format!("{at}.file"),
                        message: e.to_string(),
                    }
                })?;
                // The placement decides where it runs: the file's own
                // `type` is replaced when the site runs it.
                Ok(spec)
            }
            PipelineSource::Inline(component) => {
                let mut component = component.clone();
                if let Yaml::Mapping(m) = &mut component {
                    let key = Yaml::String("type".to_owned());
                    if !m.contains_key(&key) {
                        m.insert(key, Yaml::String(want.to_owned()));
                    }
                }
                let spec = PipelineSpec::from_node(&component, &at, &self.base_dir, registry)?;
                check_kind(&spec, want, &format!("{at}.type"))?;
                Ok(spec)
            }
        }
    }

    /// A node's pipeline as a standalone YAML document (`component: ...`)
    /// with its `type` set from the placement, for `starlog process` or a
    /// broker's `pipelines:` entry. Relative paths inside stay relative to
    /// [`Site::base_dir`] (file pipelines: to the pipeline file's folder).
    ///
    /// # Errors
    /// The pipeline file cannot be read or is not YAML.
    pub fn pipeline_document(&self, node: &ProcessingNode) -> Result<Yaml, SiteError> {
        let want = match node.placement {
            Placement::InBroker => "in-broker",
            Placement::Standalone { .. } => "processing-node",
        };
        let mut component = match &node.pipeline {
            PipelineSource::File(file) => {
                let resolved = self.base_dir.join(file);
                let text =
                    std::fs::read_to_string(&resolved).map_err(|source| SiteError::Read {
                        file: resolved.clone(),
                        source,
                    })?;
                let doc: Yaml = serde_yaml::from_str(&text).map_err(|e| SiteError::Syntax {
                    origin: resolved.display().to_string(),
                    reason: e.to_string(),
                })?;
                doc.get("component").cloned().unwrap_or(doc)
            }
            PipelineSource::Inline(c) => c.clone(),
        };
        if let Yaml::Mapping(m) = &mut component {
            m.insert(
                Yaml::String("type".to_owned()),
                Yaml::String(want.to_owned()),
            );
        }
        let mut doc = serde_yaml::Mapping::new();
        doc.insert(Yaml::String("component".to_owned()), component);
        Ok(Yaml::Mapping(doc))
    }
}

fn check_kind(spec: &PipelineSpec, want: &str, path: &str) -> Result<(), SiteError> {
    let is = match spec.kind {
        starlog_processors::config::ComponentKind::InBroker => "in-broker",
        starlog_processors::config::ComponentKind::ProcessingNode => "processing-node",
    };
    if is == want {
        Ok(())
    } else {
        Err(SiteError::Invalid {
            path: path.to_owned(),
            message: format!(
                "the pipeline says type {is}, and the node's placement makes it {want}"
            ),
        })
    }
}
