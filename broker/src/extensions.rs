//! What a program that starts a broker plugs into it: the interfaces the
//! broker defines so that it needs neither the Kafka client nor the mirror.
//!
//! The `starlog` binary implements them: [`UpstreamRegistry`] with the
//! clients' schema-registry client (for the server-side schema-id rule),
//! [`MirrorLauncher`] with the mirror engine (the `mirrors:` section of
//! the YAML) and [`PipelineLauncher`] with the clients' processing node
//! (in-broker pipelines of a cluster member, run as consumer-group
//! members). A broker started without them refuses what needs them: a
//! produce to a topic with a schema-id rule (`INVALID_RECORD`), a
//! configuration with mirrors, a cluster configuration with pipelines (at
//! start).

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;

use parking_lot::Mutex;
use starlog_processors::config::{PipelineSpec, ProcessorRegistry};

use crate::pipelines::PipelineStatus;

/// A boxed error from an extension.
pub type ExtensionError = Box<dyn std::error::Error + Send + Sync>;

/// A boxed future, as the traits here return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Schemas from upstream Confluent-compatible registries, by URL (a topic's
/// `starlog.schema.upstream.registry`) and id.
pub trait UpstreamRegistry: Send + Sync + std::fmt::Debug {
    /// The Avro schema text registered under `id` at the registry `url`.
    fn schema_text<'a>(
        &'a self,
        url: &'a str,
        id: u32,
    ) -> BoxFuture<'a, Result<String, ExtensionError>>;
}

/// The broker's own listeners, for tasks that talk to it.
#[derive(Debug, Clone)]
pub struct LocalAddrs {
    /// The Kafka listener in-broker clients use: the first SASL_PLAINTEXT
    /// one (with [`LocalAddrs::login`]), else the first PLAINTEXT one
    /// (as `User:ANONYMOUS`), else the first listener.
    pub kafka: SocketAddr,
    /// The schema registry, when enabled.
    pub registry: Option<SocketAddr>,
    /// The login of in-broker clients on `kafka` when it is a SASL listener
    /// (`User:starlog-internal`, this run's random password).
    pub login: Option<LocalLogin>,
}

/// A SASL login for an in-broker client.
#[derive(Clone)]
pub struct LocalLogin {
    /// The SASL mechanism (`SCRAM-SHA-512`).
    pub mechanism: String,
    /// The user name.
    pub username: String,
    /// The password (never logged).
    pub password: String,
}

impl std::fmt::Debug for LocalLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalLogin")
            .field("mechanism", &self.mechanism)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// Starts the in-broker mirrors named in the configuration's `mirrors:`
/// list (paths to mirror YAML files; the broker keeps them as opaque paths).
pub trait MirrorLauncher: Send + Sync + std::fmt::Debug {
    /// Reads and checks every configured mirror, before anything listens
    /// (`paths` relative to `base_dir`, the broker config's folder).
    fn prepare(
        &self,
        paths: &[PathBuf],
        base_dir: &Path,
    ) -> Result<Vec<PreparedTask>, ExtensionError>;
}

/// Starts a prepared task once the listeners are bound.
pub type StartFn = Box<dyn FnOnce(LocalAddrs) -> RunningTask + Send>;

/// A task (an in-broker mirror) read and checked, not started yet.
pub struct PreparedTask {
    /// Its name, in logs and `/metrics` labels.
    pub name: String,
    /// Its live counters, rendered on `/metrics`.
    pub counters: Arc<dyn MirrorCountersSource>,
    /// Starts it (on the broker's runtime).
    pub start: StartFn,
}

impl std::fmt::Debug for PreparedTask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreparedTask")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// Stops a running task and resolves once it has ended.
pub type StopFn = Box<dyn FnOnce() -> BoxFuture<'static, ()> + Send>;

/// A running task (an in-broker mirror, or a pipeline of a cluster
/// member); the broker stops it first on shutdown, while it still serves
/// the task's last writes.
pub struct RunningTask {
    /// Its name.
    pub name: String,
    /// Stops it and waits for it.
    pub stop: StopFn,
}

impl std::fmt::Debug for RunningTask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningTask")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// One in-broker mirror's counters as `/metrics` shows them: the view the
/// broker defines, so that it needs no mirror type (the `starlog` binary
/// fills it from the mirror's live status).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MirrorCounters {
    /// Whether a run is going on.
    pub running: bool,
    /// Runs started.
    pub runs: u64,
    /// Checkpoints written, all runs.
    pub checkpoints: u64,
    /// Per upstream topic, by name.
    pub topics: Vec<(String, MirrorTopicCounters)>,
}

/// One upstream topic of an in-broker mirror, counted over all runs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MirrorTopicCounters {
    /// The local topic it is written to.
    pub target: String,
    /// Upstream records handled.
    pub read: u64,
    /// Records written to the target and acknowledged.
    pub written: u64,
    /// Records whose schema id was rewritten.
    pub rewritten: u64,
    /// Records copied inside whole upstream batches, as bytes.
    pub passed_through: u64,
    /// Records sent to the dead-letter topic.
    pub dead_lettered: u64,
    /// Records dropped by the skip policy.
    pub skipped: u64,
    /// Records found in the target after a restart and not written again.
    pub already_present: u64,
    /// Value bytes written to the target.
    pub value_bytes: u64,
    /// Upstream records not read yet, over the topic's partitions.
    pub lag: i64,
}

/// Live counters of something the embedding program runs in the broker
/// (an in-broker mirror), read on every scrape.
pub trait MirrorCountersSource: Send + Sync + std::fmt::Debug {
    /// A copy of the counters now.
    fn counters(&self) -> MirrorCounters;
}

/// An in-broker pipeline's live counters, shared with `/metrics`.
pub type SharedPipelineStatus = Arc<Mutex<PipelineStatus>>;

/// Runs an in-broker pipeline of a cluster member
/// (the cluster's `PipelineHosting::GroupMember`): a
/// member of the pipeline's consumer group through this broker's own Kafka
/// listener (with [`LocalAddrs::login`] when it is SASL), producing its
/// outputs through the cluster and committing its positions as the group's
/// offsets once the outputs are acknowledged.
pub trait PipelineLauncher: Send + Sync + std::fmt::Debug {
    /// Builds the pipeline of `spec` and starts it once the listeners are
    /// bound, as a member of `group`; it keeps `status` up to date (the
    /// `starlog_pipeline_*` families of `/metrics`). A pipeline this
    /// launcher cannot run is refused here, with its YAML path.
    fn start(
        &self,
        spec: &PipelineSpec,
        group: &str,
        status: SharedPipelineStatus,
        local: &LocalAddrs,
    ) -> Result<RunningTask, ExtensionError>;
}

/// Everything plugged into a broker at start ([`crate::Server::start_with`]).
#[derive(Debug, Clone, Default)]
pub struct Extensions {
    /// The schema-id rule's source of upstream schemas.
    pub upstream_registry: Option<Arc<dyn UpstreamRegistry>>,
    /// Runs the configured `mirrors:`.
    pub mirrors: Option<Arc<dyn MirrorLauncher>>,
    /// The processor classes in-broker pipelines may name; `None` is the
    /// processors crate's built-ins alone (the `starlog` binary adds the
    /// `sinks` crate's writers and notifiers).
    pub processors: Option<ProcessorRegistry>,
    /// Runs the configured `pipelines:` of a cluster member (a broker
    /// alone runs them itself).
    pub pipelines: Option<Arc<dyn PipelineLauncher>>,
}
