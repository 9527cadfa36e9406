//! Starting and stopping a broker: open storage, bind the listener, accept
//! connections, run retention, and shut down gracefully (stop accepting,
//! let in-flight requests finish, flush every log).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use starlog_storage::MetaStore;

use crate::backend::MetaBackend;
use crate::broker::{self, Broker};
use crate::clock::now_ms;
use crate::cluster;
use crate::config::BrokerConfig;
use crate::connection;
use crate::control::{Mode, SingleBroker};
use crate::dispatch::Peer;
use crate::extensions::{ExtensionError, Extensions, LocalAddrs, RunningTask};
use crate::groups::{GroupConfig, GroupCoordinator};
use crate::pipelines::{self, PipelineEnv, PipelineStatus, RunningPipeline};
use crate::registry::{self, SchemaStore};
use crate::topics::TopicRegistry;
use crate::{http, metrics};

/// Why the broker could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The data directory or metadata store could not be opened.
    #[error("cannot open data directory {path}: {reason}")]
    Storage {
        /// The directory.
        path: String,
        /// The cause.
        reason: String,
    },
    /// A pipeline in the configuration is invalid or could not start.
    #[error("pipeline: {0}")]
    Pipeline(String),
    /// The schema registry's state could not be opened.
    #[error("cannot open the schema registry: {0}")]
    Registry(String),
    /// A configured mirror could not be read, or this program cannot run
    /// mirrors (no [`MirrorLauncher`](crate::extensions::MirrorLauncher)).
    #[error("{0}")]
    Mirror(ExtensionError),
    /// The Raft cluster could not be joined.
    #[error("cluster: {0}")]
    Cluster(String),
    /// The listener could not bind.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
}

/// A running broker.
#[derive(Debug)]
pub struct Server {
    broker: Arc<Broker>,
    addr: SocketAddr,
    http_addr: Option<SocketAddr>,
    registry_addr: Option<SocketAddr>,
    pipelines: Vec<RunningPipeline>,
    mirrors: Vec<RunningTask>,
    shutdown: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

impl Server {
    /// Opens storage, binds the listener and starts serving, with nothing
    /// plugged in (see [`Server::start_with`]).
    pub async fn start(config: BrokerConfig) -> Result<Self, StartError> {
        Self::start_with(config, Extensions::default()).await
    }

    /// Opens storage, binds the listener and starts serving, with the
    /// schema-id rule's upstream registry client and the runner of the
    /// configured mirrors that `extensions` supplies.
    pub async fn start_with(
        config: BrokerConfig,
        extensions: Extensions,
    ) -> Result<Self, StartError> {
        let data_dir = config.data_dir.clone();
        let storage_err = |reason: String| StartError::Storage {
            path: data_dir.display().to_string(),
            reason,
        };
        std::fs::create_dir_all(&data_dir).map_err(|e| storage_err(e.to_string()))?;
        let meta = Arc::new(
            MetaStore::open(&data_dir.join("__meta")).map_err(|e| storage_err(e.to_string()))?,
        );
        let topics = Arc::new(
            TopicRegistry::open(&data_dir, config.base_log_config(), meta)
                .map_err(|e| storage_err(e.to_string()))?,
        );
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| StartError::Bind {
                    addr: config.listen,
                    source,
                })?;
        let addr = listener.local_addr().map_err(|source| StartError::Bind {
            addr: config.listen,
            source,
        })?;
        let group_config = GroupConfig {
            min_session_timeout_ms: config.groups.min_session_timeout_ms,
            max_session_timeout_ms: config.groups.max_session_timeout_ms,
            initial_rebalance_delay_ms: config.groups.initial_rebalance_delay_ms,
            ..GroupConfig::default()
        };
        let (shutdown, _) = watch::channel(false);
        // The mode is picked here, once: a broker alone, or a member of a
        // cluster (where committed offsets, users and ACLs are replicated
        // through the metadata group).
        let (host, port) = broker::advertised(&config, addr.port());
        let Mode {
            control,
            backend,
            security,
        } = match &config.cluster {
            Some(settings) => {
                let start = cluster::Start {
                    node_id: config.node_id,
                    settings: settings.clone(),
                    data_dir: config.data_dir.clone(),
                    base: config.base_log_config(),
                    policy: config.security.policy(),
                };
                let me = (
                    kafka_protocol::messages::BrokerId(config.node_id),
                    host,
                    port,
                );
                cluster::start(start, me, Arc::clone(&topics), shutdown.subscribe())
                    .await
                    .map_err(|e| StartError::Cluster(e.to_string()))?
            }
            None => Mode {
                control: Arc::new(SingleBroker::new(config.node_id, host, port)),
                backend: Arc::new(MetaBackend::new(Arc::clone(&topics))),
                security: Arc::new(
                    crate::security::LocalSecurityStore::open(
                        &data_dir.join("__meta"),
                        config.security.policy(),
                    )
                    .map_err(|e| storage_err(e.to_string()))?,
                ),
            },
        };
        let groups = GroupCoordinator::new(backend, group_config);
        let schemas = if config.schema_registry.enabled {
            Some(Arc::new(
                SchemaStore::open(&data_dir.join("__meta").join("schemas.json"))
                    .map_err(|e| StartError::Registry(e.to_string()))?,
            ))
        } else {
            None
        };
        let mut broker = Broker::new(
            config,
            topics,
            groups,
            schemas,
            control,
            security,
            addr.port(),
        );
        broker.schema_rule = broker
            .schema_rule
            .take()
            .map(|r| r.with_upstream(extensions.upstream_registry.clone()));
        let broker = Arc::new(broker);
        let mut tasks = JoinSet::new();
        let schemas = broker.schemas.clone();
        let pipelines = start_pipelines(&broker, schemas.clone(), &shutdown)?;
        let mirrors = match (&extensions.mirrors, broker.config.mirrors.is_empty()) {
            (_, true) => Vec::new(),
            (Some(launcher), false) => launcher
                .prepare(&broker.config.mirrors, &broker.config.base_dir)
                .map_err(StartError::Mirror)?,
            (None, false) => {
                return Err(StartError::Mirror(
                    "the configuration lists mirrors, but this program runs none \
                     (the `starlog` binary does)"
                        .into(),
                ))
            }
        };
        let mirror_statuses = mirrors
            .iter()
            .map(|m| (m.name.clone(), Arc::clone(&m.counters)))
            .collect();
        let http_addr = match broker.config.http_listen() {
            Some(listen) => {
                let bind_err = |source| StartError::Bind {
                    addr: listen,
                    source,
                };
                let listener = TcpListener::bind(listen).await.map_err(bind_err)?;
                let bound = listener.local_addr().map_err(bind_err)?;
                let statuses = pipelines.iter().map(|p| Arc::clone(&p.status)).collect();
                let mut router = match &schemas {
                    Some(store) => registry::http::router(Arc::clone(store)),
                    None => axum::Router::new(),
                };
                router = router.merge(metrics::router_with_mirrors(
                    Arc::clone(&broker),
                    statuses,
                    mirror_statuses,
                ));
                if let Some(routes) = broker.control.http_routes() {
                    router = router.merge(routes);
                }
                tasks.spawn(http::serve(listener, router, shutdown.subscribe()));
                tracing::info!(addr = %bound, registry = schemas.is_some(), "HTTP listener listening (/metrics; /cluster/* in cluster mode; the registry when enabled)");
                Some(bound)
            }
            None => {
                if schemas.is_some() {
                    tracing::warn!("the schema registry is enabled but the HTTP listener is off (http.enabled: false): its API is not served");
                }
                None
            }
        };
        let registry_addr = http_addr.filter(|_| schemas.is_some());
        tasks.spawn(accept_loop(
            Arc::clone(&broker),
            listener,
            shutdown.subscribe(),
        ));
        tasks.spawn(retention_loop(Arc::clone(&broker), shutdown.subscribe()));
        let reaper = broker.groups.spawn_session_reaper();
        let mut stop = shutdown.subscribe();
        tasks.spawn(async move {
            let _ = stop.changed().await;
            reaper.abort();
        });
        tracing::info!(%addr, data_dir = %broker.config.data_dir.display(), "starlog broker listening");
        let local = LocalAddrs {
            kafka: addr,
            registry: registry_addr,
        };
        let mirrors = mirrors.into_iter().map(|m| (m.start)(local)).collect();
        Ok(Self {
            broker,
            addr,
            http_addr,
            registry_addr,
            pipelines,
            mirrors,
            shutdown,
            tasks,
        })
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The HTTP listener's bound address (`/metrics`, `/cluster/*`, and
    /// the registry's routes when it is enabled), when it is on.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_addr
    }

    /// The schema registry's bound address (the HTTP listener's), when the
    /// registry is enabled and the listener is on.
    pub fn registry_addr(&self) -> Option<SocketAddr> {
        self.registry_addr
    }

    /// Counters of the in-broker pipelines.
    pub fn pipeline_status(&self) -> Vec<PipelineStatus> {
        self.pipelines
            .iter()
            .map(|p| p.status.lock().clone())
            .collect()
    }

    /// The broker state.
    pub fn broker(&self) -> &Arc<Broker> {
        &self.broker
    }

    /// Stops accepting, waits for in-flight requests, flushes every log.
    pub async fn shutdown(mut self) {
        // Mirrors first: their last writes and checkpoint need the listener.
        for m in std::mem::take(&mut self.mirrors) {
            (m.stop)().await;
        }
        let _ = self.shutdown.send(true);
        while self.tasks.join_next().await.is_some() {}
        let pipelines = std::mem::take(&mut self.pipelines);
        if tokio::task::spawn_blocking(move || {
            pipelines.into_iter().for_each(RunningPipeline::join)
        })
        .await
        .is_err()
        {
            tracing::error!("waiting for pipelines failed during shutdown");
        }
        self.broker.control.shutdown().await;
        let broker = Arc::clone(&self.broker);
        let flushed = tokio::task::spawn_blocking(move || {
            for topic in broker.topics.all() {
                for (i, p) in topic.hosted() {
                    if let Err(e) = p.log().flush() {
                        tracing::error!(topic = %topic.name, partition = i, error = %e, "flush on shutdown failed");
                    }
                }
            }
        })
        .await;
        if flushed.is_err() {
            tracing::error!("flush task failed during shutdown");
        }
        tracing::info!("starlog broker stopped");
    }
}

fn start_pipelines(
    broker: &Arc<Broker>,
    schemas: Option<Arc<SchemaStore>>,
    shutdown: &watch::Sender<bool>,
) -> Result<Vec<RunningPipeline>, StartError> {
    let env = PipelineEnv {
        topics: Arc::clone(&broker.topics),
        schemas,
        default_partitions: broker.config.topics.default_partitions,
        max_partitions: broker.config.topics.max_partitions,
    };
    let mut running = Vec::new();
    for (i, node) in broker.config.pipelines.iter().enumerate() {
        let spec =
            pipelines::load_spec(node, i, &broker.config.base_dir).map_err(StartError::Pipeline)?;
        let p = pipelines::start(
            &spec,
            &env,
            tokio::runtime::Handle::current(),
            shutdown.subscribe(),
        )
        .map_err(StartError::Pipeline)?;
        running.push(p);
    }
    Ok(running)
}

/// How long shutdown waits for open connections to finish their request.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

async fn accept_loop(
    broker: Arc<Broker>,
    listener: TcpListener,
    mut shutdown: watch::Receiver<bool>,
) {
    let permits = Arc::new(Semaphore::new(broker.config.limits.max_connections));
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, addr)) => {
                    let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
                        tracing::warn!(peer = %addr, "closing connection: too many connections");
                        continue;
                    };
                    let broker = Arc::clone(&broker);
                    let stop = shutdown.clone();
                    connections.spawn(async move {
                        connection::serve(broker, stream, Peer::anonymous(addr, std::sync::Arc::from("default")), stop).await;
                        drop(permit);
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            _ = shutdown.changed() => break,
        }
    }
    drop(listener);
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            open = connections.len(),
            "connections still open after drain timeout; closing them"
        );
        connections.abort_all();
    }
}

async fn retention_loop(broker: Arc<Broker>, mut shutdown: watch::Receiver<bool>) {
    let every = Duration::from_millis(broker.config.log.retention_check_interval_ms.max(100));
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.changed() => return,
        }
        let b = Arc::clone(&broker);
        let ran = tokio::task::spawn_blocking(move || run_retention(&b, now_ms())).await;
        if ran.is_err() {
            tracing::error!("retention task failed");
        }
    }
}

/// One retention pass over every partition.
pub fn run_retention(broker: &Broker, now: i64) {
    for topic in broker.topics.all() {
        for (i, p) in topic.hosted() {
            match p.apply_retention(now) {
                Ok(Some(outcome)) if outcome.segments_deleted > 0 => tracing::info!(
                    topic = %topic.name,
                    partition = i,
                    segments = outcome.segments_deleted,
                    bytes = outcome.bytes_deleted,
                    log_start = outcome.new_log_start_offset,
                    "retention deleted segments"
                ),
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(topic = %topic.name, partition = i, error = %e, "retention failed")
                }
            }
        }
    }
}
