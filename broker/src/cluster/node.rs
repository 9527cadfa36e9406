//! This broker's membership in its Raft cluster: [`Cluster`] (what the
//! other cluster modules share), start-up (the inter-broker listener, the
//! driver thread, the metadata group, the applier), whether the broker is in
//! touch with its peers, and shutdown.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use starlog_replication::{DriverConfig, NodeId, ReplicationError};
use starlog_storage::LogConfig;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};

use super::applied_security::{Bootstrap, SecurityOutcomes};
use super::config::{ClusterSettings, PeerSettings};
use super::driver_loop;
use super::inbox::{Inbox, Input};
use super::metadata::{ClusterState, METADATA_GROUP, METADATA_TOPIC};
use super::transport::{self, Faults, TcpTransport};
use super::view::ClusterView;
use crate::security::{read_state, Policy, StoreError, SECURITY_FILE};
use crate::topics::TopicRegistry;

/// How often the transport's received-frames counter is sampled.
const HEARD_SAMPLE: Duration = Duration::from_millis(100);

/// A broker that heard from no peer for this long, and knows no
/// controller, is cut off.
const HEARD_RECENTLY: Duration = Duration::from_millis(1500);

/// What a broker joins its cluster with: its id, the `cluster:` settings,
/// where its partition directories live and the log configuration every
/// topic starts from.
#[derive(Debug, Clone)]
pub struct Start {
    /// This broker's node id.
    pub node_id: i32,
    /// The `cluster:` section.
    pub settings: ClusterSettings,
    /// The data directory (one sub-directory per partition group).
    pub data_dir: PathBuf,
    /// The log configuration every topic starts from.
    pub base: LogConfig,
    /// Mutual TLS between brokers (`cluster.tls`), loaded.
    pub tls: Option<Arc<transport::PeerTls>>,
    /// The policy around the ACLs (the `security:` section).
    pub policy: Policy,
}

/// A broker's membership in its Raft cluster.
#[derive(Debug)]
pub(crate) struct Cluster {
    /// This broker's node id.
    pub(super) node: i32,
    /// The `cluster:` section.
    pub(super) settings: ClusterSettings,
    /// Statuses published by the driver loop.
    pub(super) view: Arc<ClusterView>,
    /// The inter-broker fault switch and transport counters.
    pub(super) faults: Arc<Faults>,
    pub(super) inbox: Inbox,
    pub(super) state: Mutex<ClusterState>,
    pub(super) applied: watch::Sender<u64>,
    /// Tokens of the offset commands applied lately (their proposers wait for them).
    pub(super) tokens: Mutex<std::collections::VecDeque<u64>>,
    /// The `as_of` of the newest metadata checkpoint applied or loaded, and
    /// when this broker last proposed one.
    pub(super) checkpoints: Mutex<(i64, Option<std::time::Instant>)>,
    /// When a frame from a peer last arrived (sampled from the transport's counter).
    pub(super) heard: Mutex<(u64, std::time::Instant)>,
    /// What the security commands applied lately did (their proposers wait
    /// for them), and how many times the users and ACLs changed.
    pub(super) security: SecurityOutcomes,
    /// Users and ACLs of this broker's `__meta/security.json`, to propose
    /// until the cluster has some (see `security.rs`).
    pub(super) bootstrap: Mutex<Bootstrap>,
    pub(super) data_dir: PathBuf,
    pub(super) base: LogConfig,
    pub(super) thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

/// Why the cluster part of a broker could not start.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The inter-broker listener could not bind.
    #[error("cannot listen for peers on {addr}: {source}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// The metadata group could not be opened.
    #[error("cannot open the cluster metadata log: {0}")]
    Metadata(ReplicationError),
    /// The driver thread could not be started.
    #[error("cannot start the raft driver thread: {0}")]
    Thread(std::io::Error),
    /// The configuration has no cluster section, or this node is not in it.
    #[error("cluster configuration: {0}")]
    Config(String),
    /// The users and ACLs written before the first start could not be read.
    #[error("cannot read the bootstrap users and ACLs: {0}")]
    Security(StoreError),
}

impl Cluster {
    /// Binds the inter-broker listener, starts the driver loop, opens the
    /// metadata group and starts applying it to `topics`.
    pub(super) async fn start(
        start: Start,
        topics: Arc<TopicRegistry>,
        shutdown: watch::Receiver<bool>,
    ) -> Result<Arc<Self>, ClusterError> {
        let Start {
            node_id: me_id,
            settings,
            data_dir,
            base,
            tls,
            policy: _,
        } = start;
        let me = settings
            .me(me_id)
            .cloned()
            .ok_or_else(|| ClusterError::Config(format!("node {me_id} is not a peer")))?;
        let node = node_id(me_id);
        // A name (`starlog-1.starlog:9093`) binds every interface.
        let bind = me.raft.bind_addr();
        let listener = TcpListener::bind(bind)
            .await
            .map_err(|source| ClusterError::Bind { addr: bind, source })?;
        let faults = Arc::new(Faults::default());
        let view = Arc::new(ClusterView::default());
        let peers: Vec<(NodeId, super::peer_addr::PeerAddr)> = settings
            .peers
            .iter()
            .filter(|p| p.id != me_id)
            .map(|p| (node_id(p.id), p.raft.clone()))
            .collect();
        let runtime = tokio::runtime::Handle::current();
        let names = settings
            .peers
            .iter()
            .map(|p| (node_id(p.id), p.host.clone()))
            .collect();
        let transport = TcpTransport::start(
            &peers,
            Arc::clone(&faults),
            &runtime,
            &shutdown,
            tls.clone(),
            names,
        );
        let (inbox, inputs) = std::sync::mpsc::channel();
        let driver_config = DriverConfig {
            election_tick: settings.election_ticks,
            heartbeat_tick: settings.heartbeat_ticks,
            skip_data_sync: !settings.sync_data,
            ..DriverConfig::new(node)
        };
        let thread_view = Arc::clone(&view);
        let tick = settings.tick();
        let thread = std::thread::Builder::new()
            .name("raft-driver".into())
            .spawn(move || driver_loop::run(driver_config, transport, inputs, thread_view, tick))
            .map_err(ClusterError::Thread)?;
        tokio::spawn(transport::listen(
            listener,
            inbox.clone(),
            Arc::clone(&faults),
            tls,
            shutdown.clone(),
        ));
        let file = read_state(&data_dir.join("__meta").join(SECURITY_FILE))
            .map_err(ClusterError::Security)?;
        let (applied, _) = watch::channel(0);
        let state = ClusterState::new(&settings.peers);
        let cluster = Arc::new(Self {
            node: me_id,
            settings,
            view,
            faults,
            inbox,
            state: Mutex::new(state),
            applied,
            tokens: Mutex::new(std::collections::VecDeque::new()),
            checkpoints: Mutex::new((0, None)),
            heard: Mutex::new((0, std::time::Instant::now())),
            security: SecurityOutcomes::default(),
            bootstrap: Mutex::new(Bootstrap::new(file)),
            data_dir,
            base,
            thread: Mutex::new(Some(thread)),
        });
        // A joining broker starts with the others as the group's voters and
        // waits to be added; the founders start with all of them.
        let voters = cluster
            .settings
            .peers
            .iter()
            .filter(|p| !(cluster.settings.join && p.id == cluster.node))
            .map(|p| node_id(p.id))
            .collect();
        cluster.publish_membership();
        let meta_config = LogConfig {
            retention_ms: None,
            retention_bytes: None,
            ..cluster.base.clone()
        };
        let meta = cluster
            .open_group(
                METADATA_GROUP,
                METADATA_TOPIC,
                0,
                meta_config,
                voters,
                false,
            )
            .await
            .map_err(ClusterError::Metadata)?;
        tokio::spawn(Arc::clone(&cluster).sample_peer_traffic(shutdown.clone()));
        tokio::spawn(Arc::clone(&cluster).apply_loop(topics, meta, shutdown));
        tracing::info!(node = me_id, raft = %me.raft, peers = cluster.settings.peers.len(), "joined the raft cluster");
        Ok(cluster)
    }

    /// The brokers of the cluster now (configured, added, not removed).
    pub fn brokers(&self) -> Vec<PeerSettings> {
        self.state.lock().brokers.values().cloned().collect()
    }

    /// Notes when frames from peers last arrived, every [`HEARD_SAMPLE`].
    pub(super) async fn sample_peer_traffic(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let mut every = tokio::time::interval(HEARD_SAMPLE);
        loop {
            tokio::select! {
                _ = every.tick() => {}
                _ = shutdown.changed() => return,
            }
            let now = self
                .faults
                .received
                .load(std::sync::atomic::Ordering::Relaxed);
            let mut heard = self.heard.lock();
            if now != heard.0 {
                *heard = (now, std::time::Instant::now());
            }
        }
    }

    /// Whether this broker is in touch with the cluster: it knows the
    /// controller, or (during a controller election) it heard from a peer
    /// within [`HEARD_RECENTLY`]. A broker that is neither is cut off, and
    /// its view of the leaders may be stale.
    pub fn in_touch(&self) -> bool {
        self.controller().is_some() || self.heard.lock().1.elapsed() < HEARD_RECENTLY
    }

    /// Waits (at most `limit`) until [`Cluster::in_touch`]; false if not.
    pub async fn wait_in_touch(&self, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        while !self.in_touch() {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        true
    }

    /// The broker that leads the metadata group (the controller), if known.
    pub fn controller(&self) -> Option<i32> {
        self.view
            .leader(METADATA_GROUP)
            .and_then(|(l, _)| i32::try_from(l).ok())
    }

    /// Stops the driver loop after syncing every group.
    pub async fn shutdown(&self) {
        let (reply, rx) = oneshot::channel();
        if self.inbox.send(Input::Shutdown { reply }).is_ok() {
            let _ = rx.await;
        }
        let thread = self.thread.lock().take();
        if let Some(t) = thread {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
    }
}

#[cfg(test)]
impl Cluster {
    /// A cluster member with no driver thread, listener or applier: its
    /// inputs arrive on the returned receiver, and tests set its state and
    /// view directly.
    pub(super) fn detached(
        node: i32,
        peers: Vec<PeerSettings>,
    ) -> (Arc<Self>, std::sync::mpsc::Receiver<Input>) {
        let (inbox, inputs) = std::sync::mpsc::channel();
        let settings = ClusterSettings {
            peers,
            ..ClusterSettings::default()
        };
        let cluster = Arc::new(Self {
            node,
            state: Mutex::new(ClusterState::new(&settings.peers)),
            settings,
            view: Arc::new(ClusterView::default()),
            faults: Arc::new(Faults::default()),
            inbox,
            applied: watch::channel(0).0,
            tokens: Mutex::new(std::collections::VecDeque::new()),
            checkpoints: Mutex::new((0, None)),
            heard: Mutex::new((0, std::time::Instant::now())),
            security: SecurityOutcomes::default(),
            bootstrap: Mutex::new(Bootstrap::new(Default::default())),
            data_dir: PathBuf::new(),
            base: LogConfig::default(),
            thread: Mutex::new(None),
        });
        (cluster, inputs)
    }
}

/// A Kafka broker id as a Raft node id (validated to be at least 1).
pub(super) fn node_id(id: i32) -> NodeId {
    NodeId::try_from(id).unwrap_or(0)
}
