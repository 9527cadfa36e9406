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
use crate::broker::Broker;
use crate::clock::now_ms;
use crate::cluster;
use crate::config::BrokerConfig;
use crate::connection;
use crate::control::{Mode, PipelineHosting, SingleBroker};
use crate::extensions::{ExtensionError, Extensions, LocalAddrs, RunningTask};
use crate::groups::{GroupConfig, GroupCoordinator};
use crate::listener::{Endpoints, ListenerSettings};
use crate::peer::Peer;
use crate::pipelines::{self, PipelineEnv, PipelineStatus, RunningPipeline};
use crate::registry::{self, SchemaStore};
use crate::security::{TlsReloader, TLS_POLL_INTERVAL};
use crate::session::{ListenerAuth, Session};
use crate::topics::TopicRegistry;
use crate::{http, metrics};
use starlog_processors::config::ProcessorRegistry;
use starlog_security::tls::ServerTls;

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
    /// A listener's TLS certificate, key or CA could not be loaded.
    #[error("TLS of the {listener} listener: {source}")]
    Tls {
        /// The listener (`http`, `inter-broker`, a Kafka listener's name).
        listener: String,
        /// The file at fault and why.
        source: Box<starlog_security::tls::TlsError>,
    },
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
    listener_addrs: Vec<(String, SocketAddr)>,
    http_addr: Option<SocketAddr>,
    registry_addr: Option<SocketAddr>,
    pipelines: Vec<RunningPipeline>,
    /// Pipelines run as group members (cluster mode), with their counters.
    hosted: Vec<(Arc<parking_lot::Mutex<PipelineStatus>>, RunningTask)>,
    mirrors: Vec<RunningTask>,
    shutdown: watch::Sender<bool>,
    tasks: JoinSet<()>,
    tls: Arc<TlsReloader>,
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
        let listeners = bind_listeners(&config).await?;
        let addr = listeners[0].addr;
        let mut endpoints = Endpoints::default();
        for l in &listeners {
            let (host, port) = l.settings.advertised(l.addr.port());
            endpoints.insert(&l.settings.name, &host, port);
        }
        let group_config = GroupConfig {
            min_session_timeout_ms: config.groups.min_session_timeout_ms,
            max_session_timeout_ms: config.groups.max_session_timeout_ms,
            initial_rebalance_delay_ms: config.groups.initial_rebalance_delay_ms,
            ..GroupConfig::default()
        };
        let (shutdown, _) = watch::channel(false);
        // Every TLS configuration of this broker, reloaded when its files
        // change and on `Server::reload_tls` (SIGHUP).
        let tls = Arc::new(TlsReloader::new());
        for l in &listeners {
            if let Some(t) = &l.tls {
                tls.register(&l.settings.name, Arc::clone(t));
            }
        }
        // The mode is picked here, once: a broker alone, or a member of a
        // cluster (where committed offsets, users and ACLs are replicated
        // through the metadata group).
        let Mode {
            control,
            backend,
            security,
        } = match &config.cluster {
            Some(settings) => {
                let peer_tls = match &settings.tls {
                    Some(t) => {
                        let loaded =
                            cluster::PeerTls::load(t, &config.base_dir).map_err(|source| {
                                StartError::Tls {
                                    listener: "inter-broker".into(),
                                    source: Box::new(source),
                                }
                            })?;
                        tls.register("inter-broker", Arc::clone(&loaded.server));
                        Some(Arc::new(loaded))
                    }
                    None => None,
                };
                let start = cluster::Start {
                    node_id: config.node_id,
                    settings: settings.clone(),
                    data_dir: config.data_dir.clone(),
                    base: config.base_log_config(),
                    tls: peer_tls,
                    policy: config.security.policy(),
                };
                cluster::start(
                    start,
                    endpoints.clone(),
                    Arc::clone(&topics),
                    shutdown.subscribe(),
                )
                .await
                .map_err(|e| StartError::Cluster(e.to_string()))?
            }
            None => Mode {
                control: Arc::new(SingleBroker::new(config.node_id, endpoints.clone())),
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
        let internal = crate::security::InternalLogin::generate()
            .map_err(|e| storage_err(format!("the internal login: {e}")))?;
        let mut broker = Broker::new(config, topics, groups, schemas, control, security, internal);
        broker.schema_rule = broker
            .schema_rule
            .take()
            .map(|r| r.with_upstream(extensions.upstream_registry.clone()));
        let broker = Arc::new(broker);
        let mut tasks = JoinSet::new();
        let schemas = broker.schemas.clone();
        let (pipelines, to_host) =
            start_pipelines(&broker, schemas.clone(), &shutdown, &extensions)?;
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
                let settings = broker.config.http.clone().unwrap_or_default();
                let http_tls = match &settings.tls {
                    Some(t) => {
                        let loaded =
                            ServerTls::load(t, &broker.config.base_dir).map_err(|source| {
                                StartError::Tls {
                                    listener: "http".into(),
                                    source: Box::new(source),
                                }
                            })?;
                        let loaded = Arc::new(loaded);
                        tls.register("http", Arc::clone(&loaded));
                        Some(loaded)
                    }
                    None => None,
                };
                let listener = TcpListener::bind(listen).await.map_err(bind_err)?;
                let bound = listener.local_addr().map_err(bind_err)?;
                let statuses = pipelines
                    .iter()
                    .map(|p| Arc::clone(&p.status))
                    .chain(to_host.iter().map(|h| Arc::clone(&h.status)))
                    .collect();
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
                let router = http::secured(
                    router,
                    http::AuthState {
                        broker: Arc::clone(&broker),
                        authentication: settings.authentication,
                        anonymous_read: settings.anonymous_read,
                    },
                );
                let https = http_tls.is_some();
                tasks.spawn(http::serve(
                    listener,
                    http_tls,
                    router,
                    shutdown.subscribe(),
                ));
                tracing::info!(addr = %bound, tls = https, authentication = ?settings.authentication, registry = schemas.is_some(), "HTTP listener listening (/metrics; /cluster/* in cluster mode; the registry when enabled)");
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
        let listener_addrs = listeners
            .iter()
            .map(|l| (l.settings.name.clone(), l.addr))
            .collect();
        let (local_kafka, login) = in_broker_listener(&listeners, &broker);
        // One bound on connections across all listeners.
        let permits = Arc::new(Semaphore::new(broker.config.limits.max_connections));
        for l in listeners {
            tracing::info!(listener = %l.settings.name, addr = %l.addr, security = l.settings.security.name(), mechanisms = ?l.auth.mechanisms, "Kafka listener listening");
            tasks.spawn(accept_loop(
                Arc::clone(&broker),
                l,
                Arc::clone(&permits),
                shutdown.subscribe(),
            ));
        }
        tasks.spawn(retention_loop(Arc::clone(&broker), shutdown.subscribe()));
        tasks.spawn(Arc::clone(&tls).watch(TLS_POLL_INTERVAL, shutdown.subscribe()));
        let reaper = broker.groups.spawn_session_reaper();
        let mut stop = shutdown.subscribe();
        tasks.spawn(async move {
            let _ = stop.changed().await;
            reaper.abort();
        });
        tracing::info!(%addr, data_dir = %broker.config.data_dir.display(), "starlog broker listening");
        let local = LocalAddrs {
            kafka: local_kafka,
            registry: registry_addr,
            login,
        };
        let mut hosted = Vec::new();
        for h in to_host {
            // Checked at start_pipelines: group-member hosting has a launcher.
            let Some(launcher) = &extensions.pipelines else {
                break;
            };
            let task = launcher
                .start(&h.spec, &h.group, Arc::clone(&h.status), &local)
                .map_err(|e| StartError::Pipeline(format!("{}: {e}", h.at)))?;
            tracing::info!(pipeline = %h.spec.name, group = %h.group, "in-broker pipeline runs as a member of its group");
            hosted.push((h.status, task));
        }
        let mirrors = mirrors
            .into_iter()
            .map(|m| (m.start)(local.clone()))
            .collect();
        Ok(Self {
            broker,
            addr,
            listener_addrs,
            http_addr,
            registry_addr,
            pipelines,
            hosted,
            mirrors,
            shutdown,
            tasks,
            tls,
        })
    }

    /// Re-reads the PEM files of every TLS listener (what `SIGHUP` does);
    /// the listeners whose files did not load, which keep their previous
    /// certificate.
    pub fn reload_tls(&self) -> Vec<(String, starlog_security::tls::TlsError)> {
        self.tls.reload_all()
    }

    /// The broker's TLS configurations (reloaded on change and by
    /// [`Server::reload_tls`]).
    pub fn tls_reloader(&self) -> &Arc<TlsReloader> {
        &self.tls
    }

    /// The first Kafka listener's bound address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The bound address of the Kafka listener named `name`.
    pub fn listener_addr(&self, name: &str) -> Option<SocketAddr> {
        self.listener_addrs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, a)| *a)
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
            .map(|p| &p.status)
            .chain(self.hosted.iter().map(|(status, _)| status))
            .map(|status| status.lock().clone())
            .collect()
    }

    /// The broker state.
    pub fn broker(&self) -> &Arc<Broker> {
        &self.broker
    }

    /// Stops accepting, waits for in-flight requests, flushes every log.
    pub async fn shutdown(mut self) {
        // Hosted pipelines and mirrors first: their last writes, commits
        // and checkpoints need the listener.
        for (_, p) in std::mem::take(&mut self.hosted) {
            (p.stop)().await;
        }
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

/// A pipeline of a cluster member, loaded, to start as a group member
/// once the listeners are bound.
struct HostedPipeline {
    /// Where it is configured (`pipelines[i]`).
    at: String,
    spec: starlog_processors::config::PipelineSpec,
    group: String,
    status: Arc<parking_lot::Mutex<PipelineStatus>>,
}

/// Loads the configured pipelines: a broker alone starts them (local
/// runners); a cluster member returns them to be started as group members
/// by the [`PipelineLauncher`](crate::extensions::PipelineLauncher), and
/// refuses them when none is plugged in.
fn start_pipelines(
    broker: &Arc<Broker>,
    schemas: Option<Arc<SchemaStore>>,
    shutdown: &watch::Sender<bool>,
    extensions: &Extensions,
) -> Result<(Vec<RunningPipeline>, Vec<HostedPipeline>), StartError> {
    let builtins;
    let registry = match &extensions.processors {
        Some(registry) => registry,
        None => {
            builtins = ProcessorRegistry::with_builtins();
            &builtins
        }
    };
    let hosting = broker.control.pipeline_hosting();
    if hosting == PipelineHosting::GroupMember
        && !broker.config.pipelines.is_empty()
        && extensions.pipelines.is_none()
    {
        return Err(StartError::Pipeline(
            "the configuration lists pipelines and this broker is a cluster member, \
             where pipelines run as consumer-group members, but this program runs \
             none (the `starlog` binary does)"
                .into(),
        ));
    }
    let env = PipelineEnv {
        topics: Arc::clone(&broker.topics),
        schemas,
        default_partitions: broker.config.topics.default_partitions,
        max_partitions: broker.config.topics.max_partitions,
    };
    let mut running = Vec::new();
    let mut hosted = Vec::new();
    for (i, node) in broker.config.pipelines.iter().enumerate() {
        let spec = pipelines::load_spec(node, i, &broker.config.base_dir, registry)
            .map_err(StartError::Pipeline)?;
        match hosting {
            PipelineHosting::Local => {
                let p = pipelines::start(
                    &spec,
                    &env,
                    tokio::runtime::Handle::current(),
                    shutdown.subscribe(),
                )
                .map_err(StartError::Pipeline)?;
                running.push(p);
            }
            PipelineHosting::GroupMember => {
                let group = pipelines::runner::group_name(&spec);
                let status = Arc::new(parking_lot::Mutex::new(PipelineStatus {
                    name: spec.name.clone(),
                    group: group.clone(),
                    source: spec.source.topic.clone(),
                    ..PipelineStatus::default()
                }));
                hosted.push(HostedPipeline {
                    at: format!("pipelines[{i}]"),
                    spec,
                    group,
                    status,
                });
            }
        }
    }
    Ok((running, hosted))
}

/// How long shutdown waits for open connections to finish their request.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// A Kafka listener, bound.
struct BoundListener {
    settings: ListenerSettings,
    listener: TcpListener,
    addr: SocketAddr,
    auth: Arc<ListenerAuth>,
    tls: Option<Arc<ServerTls>>,
}

/// Binds every Kafka listener (and loads its certificates) before anything
/// else starts, so a bad address or certificate stops the start cleanly.
async fn bind_listeners(config: &BrokerConfig) -> Result<Vec<BoundListener>, StartError> {
    let mut bound = Vec::new();
    for settings in config.kafka_listeners() {
        let bind_err = |source| StartError::Bind {
            addr: settings.listen,
            source,
        };
        let tls = match &settings.tls {
            Some(t) => Some(Arc::new(ServerTls::load(t, &config.base_dir).map_err(
                |source| StartError::Tls {
                    listener: settings.name.clone(),
                    source: Box::new(source),
                },
            )?)),
            None => None,
        };
        let listener = TcpListener::bind(settings.listen).await.map_err(bind_err)?;
        let addr = listener.local_addr().map_err(bind_err)?;
        let auth = Arc::new(ListenerAuth {
            name: Arc::from(settings.name.as_str()),
            sasl: settings.security.sasl(),
            mechanisms: settings.mechanisms(),
            reauthentication: (settings.reauthentication_ms > 0)
                .then(|| Duration::from_millis(settings.reauthentication_ms)),
        });
        bound.push(BoundListener {
            settings,
            listener,
            addr,
            auth,
            tls,
        });
    }
    Ok(bound)
}

/// The listener in-broker clients (mirrors) use, and their login there:
/// the first SASL_PLAINTEXT listener as `User:starlog-internal`, else the
/// first PLAINTEXT one (as `User:ANONYMOUS`), else the first listener.
fn in_broker_listener(
    listeners: &[BoundListener],
    broker: &Broker,
) -> (SocketAddr, Option<crate::extensions::LocalLogin>) {
    use crate::listener::SecurityProtocol;
    let local = |l: &BoundListener| {
        if l.addr.ip().is_unspecified() {
            SocketAddr::from(([127, 0, 0, 1], l.addr.port()))
        } else {
            l.addr
        }
    };
    if let Some(l) = listeners
        .iter()
        .find(|l| l.settings.security == SecurityProtocol::SaslPlaintext)
        .filter(|l| {
            l.auth
                .mechanisms
                .iter()
                .any(|m| m == crate::security::INTERNAL_MECHANISM.name())
        })
    {
        let login = crate::extensions::LocalLogin {
            mechanism: crate::security::INTERNAL_MECHANISM.name().to_string(),
            username: crate::security::INTERNAL_USER.to_string(),
            password: broker.internal.password().to_string(),
        };
        return (local(l), Some(login));
    }
    let l = listeners
        .iter()
        .find(|l| l.settings.security == SecurityProtocol::Plaintext)
        .unwrap_or(&listeners[0]);
    (local(l), None)
}

/// Runs one connection of a listener: the TLS handshake (on SSL and
/// SASL_SSL listeners, with the client certificate's principal when it
/// sent one), then the Kafka protocol.
async fn run_connection(
    broker: Arc<Broker>,
    stream: tokio::net::TcpStream,
    addr: SocketAddr,
    auth: Arc<ListenerAuth>,
    tls: Option<Arc<ServerTls>>,
    stop: watch::Receiver<bool>,
) {
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(peer = %addr, error = %e, "cannot set TCP_NODELAY");
    }
    let mut peer = Peer::anonymous(addr, Arc::clone(&auth.name));
    let Some(tls) = tls else {
        connection::serve(broker, stream, Session::new(auth, peer), stop).await;
        return;
    };
    let stream = match crate::security::tls_accept(&tls, stream).await {
        Ok((stream, principal)) => {
            if let Some(p) = principal {
                peer.principal = p;
            }
            stream
        }
        Err(e) => {
            tracing::warn!(peer = %addr, listener = %auth.name, error = %e, "closing connection");
            return;
        }
    };
    connection::serve(broker, stream, Session::new(auth, peer), stop).await;
}

async fn accept_loop(
    broker: Arc<Broker>,
    bound: BoundListener,
    permits: Arc<Semaphore>,
    mut shutdown: watch::Receiver<bool>,
) {
    let BoundListener {
        listener,
        auth,
        tls,
        ..
    } = bound;
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
                    let (auth, tls) = (Arc::clone(&auth), tls.clone());
                    connections.spawn(async move {
                        run_connection(broker, stream, addr, auth, tls, stop).await;
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
