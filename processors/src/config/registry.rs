//! Processor classes by name, and what the runner injects when building.
//!
//! A class is a parse function: it reads and validates its `params` (at
//! load) and returns a [`ProcessorSpec`], which can build any number of
//! processor instances (one per partition task, say) sharing heavy state
//! such as a loaded catalog. Other crates add classes with
//! [`ProcessorRegistry::register`].

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use super::{ConfigError, Params};
use crate::decode::{SchemaRegistry, SchemaSource};
use crate::processor::CandidateProcessor;
use crate::sink::TopicSink;

/// A validated processor configuration, ready to build instances.
pub trait ProcessorSpec: Send + Sync + fmt::Debug {
    /// Builds one processor. `path` is the step's YAML path, for errors.
    ///
    /// # Errors
    /// [`ConfigError`] when a resource (file, catalog, sink) is unavailable.
    fn build(
        &self,
        ctx: &BuildContext,
        path: &str,
    ) -> Result<Box<dyn CandidateProcessor>, ConfigError>;
}

/// Parses a class's `params` into a spec.
pub type ParseFn =
    Arc<dyn Fn(&mut Params<'_>) -> Result<Box<dyn ProcessorSpec>, ConfigError> + Send + Sync>;

/// What only the runner can provide.
#[derive(Clone, Default)]
pub struct BuildContext {
    /// The Kafka producing side (writers, dead letters).
    pub topic_sink: Option<Arc<dyn TopicSink>>,
    /// Resolves Confluent schema ids of the input.
    pub schema_source: Option<Arc<dyn SchemaSource>>,
    /// Registers output schemas (Avro `KafkaTopicWriter`).
    pub schema_registry: Option<Arc<dyn SchemaRegistry>>,
}

impl fmt::Debug for BuildContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BuildContext")
            .field("topic_sink", &self.topic_sink.is_some())
            .field("schema_source", &self.schema_source.is_some())
            .field("schema_registry", &self.schema_registry.is_some())
            .finish()
    }
}

impl BuildContext {
    /// Uses `sink` for Kafka output.
    #[must_use]
    pub fn with_sink(mut self, sink: Arc<dyn TopicSink>) -> Self {
        self.topic_sink = Some(sink);
        self
    }

    /// Uses one registry both to resolve input ids and to register output schemas.
    #[must_use]
    pub fn with_registry<R: SchemaRegistry + 'static>(mut self, registry: Arc<R>) -> Self {
        self.schema_source = Some(registry.clone());
        self.schema_registry = Some(registry);
        self
    }
}

/// Processor classes by name.
#[derive(Clone, Default)]
pub struct ProcessorRegistry {
    classes: BTreeMap<String, ParseFn>,
}

impl fmt::Debug for ProcessorRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.classes.keys()).finish()
    }
}

impl ProcessorRegistry {
    /// No classes.
    #[must_use]
    pub fn empty() -> Self {
        Self::default()
    }

    /// The built-in classes (see [`crate::builtins`]).
    #[must_use]
    pub fn with_builtins() -> Self {
        let mut r = Self::empty();
        crate::builtins::register_all(&mut r);
        r
    }

    /// Adds (or replaces) a class.
    pub fn register<F>(&mut self, class: impl Into<String>, parse: F)
    where
        F: Fn(&mut Params<'_>) -> Result<Box<dyn ProcessorSpec>, ConfigError>
            + Send
            + Sync
            + 'static,
    {
        self.classes.insert(class.into(), Arc::new(parse));
    }

    /// Known class names, sorted.
    #[must_use]
    pub fn class_names(&self) -> Vec<&str> {
        self.classes.keys().map(String::as_str).collect()
    }

    /// The parse function of `class`.
    #[must_use]
    pub fn get(&self, class: &str) -> Option<&ParseFn> {
        self.classes.get(class)
    }
}
