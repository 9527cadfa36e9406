//! The `component` section: source, input format, dead letters, processors.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use apache_avro::Schema;
use serde_yaml::Value as Yaml;

use super::params::{expected, join};
use super::registry::{BuildContext, ProcessorRegistry, ProcessorSpec};
use super::{ConfigError, Params};
use crate::chain::Chain;
use crate::dead_letter::DeadLetter;
use crate::decode::{named_schema, AlertDecoder, InputFormat};
use crate::pipeline::Pipeline;

/// Where the chain runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ComponentKind {
    /// A standalone node, member of a consumer group.
    ProcessingNode,
    /// Inside the broker, next to the partitions.
    InBroker,
}

/// What the chain reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceSpec {
    /// Input topic.
    pub topic: String,
    /// Consumer group (and committed-position name).
    pub group: Option<String>,
}

/// How input messages are framed.
#[derive(Debug, Clone)]
pub struct InputSpec {
    /// The framing.
    pub format: InputFormat,
    /// The schema of bare Avro bodies.
    pub bare_schema: Option<Arc<Schema>>,
}

/// One validated step.
#[derive(Debug)]
struct StepSpec {
    class: String,
    label: String,
    path: String,
    spec: Box<dyn ProcessorSpec>,
}

/// The validated `processors` list.
#[derive(Debug, Default)]
pub struct ChainSpec {
    steps: Vec<StepSpec>,
}

impl ChainSpec {
    /// Validates a `processors` list found at `path`.
    ///
    /// # Errors
    /// The first fault, with its YAML path.
    pub fn from_node(
        node: &Yaml,
        path: &str,
        base_dir: &Path,
        registry: &ProcessorRegistry,
    ) -> Result<Self, ConfigError> {
        let Yaml::Sequence(items) = node else {
            return Err(expected(path, "a list of processors", node));
        };
        if items.is_empty() {
            return Err(ConfigError::Invalid {
                path: path.to_owned(),
                message: "expected at least one processor".to_owned(),
            });
        }
        let mut steps = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let step_path = format!("{path}[{i}]");
            let mut step = Params::new(step_path.clone(), Some(item), base_dir)?;
            if item.is_null() {
                return Err(expected(&step_path, "a mapping with a class", item));
            }
            let class = step.required_str("class", "a processor class name")?;
            let label = step
                .optional_str("name", "a step name")?
                .unwrap_or_else(|| class.clone());
            let parse = registry.get(&class).ok_or_else(|| ConfigError::Invalid {
                path: join(&step_path, "class"),
                message: format!(
                    "unknown processor class {class:?} (known: {})",
                    registry.class_names().join(", ")
                ),
            })?;
            let params_node = step.get("params");
            step.finish()?;
            let mut params = Params::new(join(&step_path, "params"), params_node, base_dir)?;
            let spec = parse(&mut params)?;
            params.finish()?;
            steps.push(StepSpec {
                class,
                label,
                path: step_path,
                spec,
            });
        }
        Ok(ChainSpec { steps })
    }

    /// The classes of the steps, in order.
    #[must_use]
    pub fn classes(&self) -> Vec<&str> {
        self.steps.iter().map(|s| s.class.as_str()).collect()
    }

    /// Builds a chain.
    ///
    /// # Errors
    /// The first step that cannot be built, with its YAML path.
    pub fn build(&self, ctx: &BuildContext) -> Result<Chain, ConfigError> {
        let mut chain = Chain::new();
        for s in &self.steps {
            chain.push(s.label.clone(), s.spec.build(ctx, &s.path)?);
        }
        Ok(chain)
    }
}

/// A validated pipeline.
#[derive(Debug)]
pub struct PipelineSpec {
    /// The pipeline's name.
    pub name: String,
    /// Where it runs.
    pub kind: ComponentKind,
    /// What it reads.
    pub source: SourceSpec,
    /// Input framing.
    pub input: InputSpec,
    /// Where undecodable messages go.
    pub dead_letter_topic: String,
    /// The processors.
    pub chain: ChainSpec,
    /// YAML path of the component (for build errors).
    path: String,
}

impl PipelineSpec {
    /// Loads a pipeline file; relative paths in it are resolved against its directory.
    ///
    /// # Errors
    /// [`ConfigError`].
    pub fn from_file(file: &Path, registry: &ProcessorRegistry) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(file).map_err(|source| ConfigError::Read {
            file: file.to_owned(),
            source,
        })?;
        let base = file.parent().map_or_else(PathBuf::new, Path::to_owned);
        Self::from_yaml_str(&text, &file.display().to_string(), &base, registry)
    }

    /// Loads a pipeline from YAML text. The document is either
    /// `component: {...}` or the component mapping itself.
    ///
    /// # Errors
    /// [`ConfigError`].
    pub fn from_yaml_str(
        text: &str,
        origin: &str,
        base_dir: &Path,
        registry: &ProcessorRegistry,
    ) -> Result<Self, ConfigError> {
        let doc: Yaml = serde_yaml::from_str(text).map_err(|e| ConfigError::Syntax {
            origin: origin.to_owned(),
            reason: e.to_string(),
        })?;
        match doc.get("component") {
            Some(component) => {
                let mut top = Params::new("", Some(&doc), base_dir)?;
                top.get("component");
                top.finish()?;
                Self::from_node(component, "component", base_dir, registry)
            }
            None => Self::from_node(&doc, "", base_dir, registry),
        }
    }

    /// Validates a component mapping found at `path` (for configurations
    /// that embed pipelines, such as the broker's).
    ///
    /// # Errors
    /// [`ConfigError`].
    pub fn from_node(
        node: &Yaml,
        path: &str,
        base_dir: &Path,
        registry: &ProcessorRegistry,
    ) -> Result<Self, ConfigError> {
        if !node.is_mapping() {
            return Err(expected(
                if path.is_empty() { "(document)" } else { path },
                "a component mapping",
                node,
            ));
        }
        let mut c = Params::new(path, Some(node), base_dir)?;
        let kind = match c
            .choice("type", &["processing-node", "in-broker"], None)?
            .as_str()
        {
            "in-broker" => ComponentKind::InBroker,
            _ => ComponentKind::ProcessingNode,
        };
        let name = c.optional_str("name", "a pipeline name")?;
        let source = {
            let node = c.get("source");
            let mut s = Params::new(c.path_of("source"), node, base_dir)?;
            if node.is_none() {
                return Err(c.error("source", "missing, expected a mapping with a topic"));
            }
            let topic = s.required_str("topic", "a topic name")?;
            let group = s.optional_str("group", "a consumer group name")?;
            s.finish()?;
            SourceSpec { topic, group }
        };
        let input = {
            let node = c.get("input");
            let mut i = Params::new(c.path_of("input"), node, base_dir)?;
            let format: InputFormat = i
                .choice("format", &InputFormat::NAMES, Some("auto"))?
                .parse()
                .unwrap_or_default();
            let schema_path = i.path_of("schema");
            let bare_schema = match i.get("schema") {
                None => None,
                Some(node) => Some(Arc::new(load_bare_schema(node, &schema_path, base_dir)?)),
            };
            i.finish()?;
            if format == InputFormat::Bare && bare_schema.is_none() {
                return Err(ConfigError::Invalid {
                    path: join(&c.path_of("input"), "schema"),
                    message: "missing, format avro (bare) needs a schema: { name, files }"
                        .to_owned(),
                });
            }
            InputSpec {
                format,
                bare_schema,
            }
        };
        let dead_letter_topic = {
            let node = c.get("dead_letter");
            let mut d = Params::new(c.path_of("dead_letter"), node, base_dir)?;
            let topic = d.optional_str("topic", "a topic name")?;
            d.finish()?;
            topic.unwrap_or_else(|| format!("{}-dead-letter", source.topic))
        };
        let processors_path = c.path_of("processors");
        let processors = c
            .get("processors")
            .ok_or_else(|| c.error("processors", "missing, expected a list of processors"))?;
        let chain = ChainSpec::from_node(processors, &processors_path, base_dir, registry)?;
        c.finish()?;
        let name = name
            .or_else(|| source.group.clone())
            .unwrap_or_else(|| source.topic.clone());
        Ok(PipelineSpec {
            name,
            kind,
            source,
            input,
            dead_letter_topic,
            chain,
            path: path.to_owned(),
        })
    }

    /// Builds a runnable pipeline.
    ///
    /// # Errors
    /// [`ConfigError`] with the YAML path of the part that cannot be built.
    pub fn build(&self, ctx: &BuildContext) -> Result<Pipeline, ConfigError> {
        let mut decoder = AlertDecoder::new(self.input.format);
        if let Some(source) = &ctx.schema_source {
            decoder = decoder.with_schema_source(Arc::clone(source));
        } else if self.input.format == InputFormat::Confluent {
            return Err(ConfigError::Invalid {
                path: join(&join(&self.path, "input"), "format"),
                message: "confluent input needs a schema registry, and the runner provided none"
                    .to_owned(),
            });
        }
        if let Some(schema) = &self.input.bare_schema {
            decoder = decoder.with_bare_schema(Arc::clone(schema));
        }
        let chain = self.chain.build(ctx)?;
        let dead_letter = DeadLetter::new(self.dead_letter_topic.clone(), ctx.topic_sink.clone());
        Ok(Pipeline::new(
            self.name.clone(),
            decoder,
            chain,
            dead_letter,
        ))
    }
}

fn load_bare_schema(node: &Yaml, path: &str, base_dir: &Path) -> Result<Schema, ConfigError> {
    let mut s = Params::new(path, Some(node), base_dir)?;
    let name = s.required_str(
        "name",
        "the full name of the top-level schema, e.g. ztf.alert",
    )?;
    let files_path = s.path_of("files");
    let files = s
        .optional_str_list("files", "a schema file path")?
        .filter(|f| !f.is_empty())
        .ok_or_else(|| s.error("files", "missing, expected a list of .avsc files"))?;
    s.finish()?;
    let files: Vec<PathBuf> = files.iter().map(|f| base_dir.join(f)).collect();
    named_schema::from_files(&files, &name)
        .map(|(schema, _)| schema)
        .map_err(|e| ConfigError::Invalid {
            path: files_path,
            message: e.to_string(),
        })
}
