//! In-broker pipelines: processor chains from the broker's YAML, run next to
//! the partitions they read.
//!
//! Each pipeline runs on its own thread (`runner`), woken by appends to its
//! source topic, so a slow chain never blocks produce. Writers append to
//! local partitions through `sink::BrokerSink`; Confluent-framed input and
//! Avro output schemas resolve against the broker's own registry
//! (`schemas`). Positions are committed like a consumer group's
//! (`starlog-pipeline-<name>` unless the source names a group), after the
//! outputs are durable; a restart resumes there, and outputs written after
//! the last commit are recognised and not written twice.
//!
//! That is a broker alone (`PipelineHosting::Local`). A cluster member
//! (`PipelineHosting::GroupMember`) only loads the specs here
//! ([`load_spec`]) and hands them to the program's `PipelineLauncher`
//! (`extensions.rs`), which runs each as a member of the pipeline's
//! consumer group ([`runner::group_name`]) through this broker's listener.

pub mod runner;
pub mod schemas;
pub mod sink;

use std::path::Path;
use std::sync::Arc;

use parking_lot::Mutex;
use serde_yaml::Value as Yaml;
use starlog_processors::config::{BuildContext, PipelineSpec, ProcessorRegistry};
use tokio::runtime::Handle;
use tokio::sync::watch;

pub use runner::PipelineStatus;

use crate::registry::SchemaStore;
use crate::topics::TopicRegistry;
use runner::{group_name, Runner};
use schemas::LocalSchemas;
use sink::BrokerSink;

/// A running pipeline.
#[derive(Debug)]
pub struct RunningPipeline {
    /// Its live counters.
    pub status: Arc<Mutex<PipelineStatus>>,
    thread: std::thread::JoinHandle<()>,
}

impl RunningPipeline {
    /// Waits for the thread to finish (after shutdown was signalled).
    pub fn join(self) {
        if self.thread.join().is_err() {
            tracing::error!("an in-broker pipeline thread panicked");
        }
    }
}

/// Loads one `pipelines[i]` entry: `{ file: path }` or an inline component.
pub fn load_spec(
    node: &Yaml,
    index: usize,
    base_dir: &Path,
    registry: &ProcessorRegistry,
) -> Result<PipelineSpec, String> {
    let path = format!("pipelines[{index}]");
    if let Some(file) = node.get("file") {
        let file = file
            .as_str()
            .ok_or_else(|| format!("{path}.file: expected a path to a pipeline YAML file"))?;
        return PipelineSpec::from_file(&base_dir.join(file), registry).map_err(|e| e.to_string());
    }
    PipelineSpec::from_node(node, &path, base_dir, registry).map_err(|e| e.to_string())
}

/// What pipelines need from the broker.
#[derive(Debug, Clone)]
pub struct PipelineEnv {
    /// Topics to read and write.
    pub topics: Arc<TopicRegistry>,
    /// The local schema registry, when enabled.
    pub schemas: Option<Arc<SchemaStore>>,
    /// Partitions of auto-created output topics.
    pub default_partitions: i32,
    /// Upper bound for created topics.
    pub max_partitions: i32,
}

/// Builds and starts one pipeline.
pub fn start(
    spec: &PipelineSpec,
    env: &PipelineEnv,
    runtime: Handle,
    shutdown: watch::Receiver<bool>,
) -> Result<RunningPipeline, String> {
    let sink = Arc::new(BrokerSink::new(
        Arc::clone(&env.topics),
        &spec.source.topic,
        env.default_partitions,
        env.max_partitions,
        runtime.clone(),
    ));
    let mut ctx = BuildContext::default().with_sink(sink.clone());
    if let Some(store) = &env.schemas {
        let local = Arc::new(LocalSchemas(Arc::clone(store)));
        ctx.schema_source = Some(local.clone());
        ctx.schema_registry = Some(local);
    }
    let pipeline = spec.build(&ctx).map_err(|e| e.to_string())?;
    let group = group_name(spec);
    let status = Arc::new(Mutex::new(PipelineStatus {
        name: spec.name.clone(),
        group: group.clone(),
        source: spec.source.topic.clone(),
        ..PipelineStatus::default()
    }));
    let runner = Runner {
        spec_name: spec.name.clone(),
        group,
        source: spec.source.topic.clone(),
        pipeline,
        sink,
        topics: Arc::clone(&env.topics),
        runtime,
        status: Arc::clone(&status),
        shutdown,
    };
    let thread = std::thread::Builder::new()
        .name(format!("pipeline-{}", spec.name))
        .spawn(move || runner.run())
        .map_err(|e| format!("cannot start a thread for pipeline {}: {e}", spec.name))?;
    Ok(RunningPipeline { status, thread })
}
