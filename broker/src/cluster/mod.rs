//! Replication in the broker: the Raft cluster a broker joins when its
//! YAML has a `cluster:` section.
//!
//! * [`driver_loop`] owns the replication crate's `Driver` on its own thread:
//!   every partition group and the metadata group, one fsync per partition
//!   per turn.
//! * [`transport`] carries Raft frames between brokers over TCP, with a
//!   fault switch for tests.
//! * [`metadata`] is the metadata group's command log; the applier here
//!   turns committed commands into topics, each partition a Raft group with
//!   a [`Partition`] over its log.
//! * [`view`] is what Metadata, Produce, Fetch and `/metrics` read: leaders,
//!   terms, commit indexes, replica lag.
//!
//! Each partition has its own replicas (the topic's replication factor, up
//! to the cluster size), placed round the brokers; leaders are spread by
//! letting each partition's preferred replica campaign first. Leaders
//! announce themselves in the metadata log, so a broker that does not host
//! a partition still names its leader. Reassignment changes a partition's
//! replicas in the metadata log; the group's leader then adds the new ones
//! as learners, promotes them once caught up, and removes the old ones,
//! which delete their copy.

pub mod config;
pub mod driver_loop;
pub mod http;
pub mod metadata;
pub mod metrics;
pub mod offsets;
pub mod transport;
pub mod view;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::ResponseError;
use parking_lot::Mutex;
use starlog_replication::{DriverConfig, GroupId, GroupSpec, NodeId, ReplicationError};
use starlog_storage::{FlushPolicy, LogConfig};
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};

pub use config::{ClusterSettings, PeerSettings};
pub use driver_loop::{Inbox, Input};
pub use view::ClusterView;

use crate::config::BrokerConfig;
use crate::partition::{Partition, Replica};
use crate::topics::{validate_topic_name, Topic, TopicError, TopicRegistry};
use metadata::{Change, ClusterState, MetaCommand, METADATA_GROUP, METADATA_TOPIC};
use transport::{Faults, TcpTransport};
use view::Membership;

/// Offset-command tokens remembered after they are applied.
const RECENT_TOKENS: usize = 4096;

/// How often the transport's received-frames counter is sampled.
const HEARD_SAMPLE: Duration = Duration::from_millis(100);

/// A broker that heard from no peer for this long, and knows no
/// controller, is cut off.
const HEARD_RECENTLY: Duration = Duration::from_millis(1500);

/// How often the applier checks whether groups moved off this broker can close.
const HOSTING_EVERY: Duration = Duration::from_millis(500);

/// How long CreateTopics waits for the metadata group to commit and apply.
const CREATE_WAIT: Duration = Duration::from_secs(15);

/// A broker's membership in its Raft cluster.
#[derive(Debug)]
pub struct Cluster {
    /// This broker's node id.
    pub node: i32,
    /// The `cluster:` section.
    pub settings: ClusterSettings,
    /// Statuses published by the driver loop.
    pub view: Arc<ClusterView>,
    /// The inter-broker fault switch and transport counters.
    pub faults: Arc<Faults>,
    inbox: Inbox,
    state: Mutex<ClusterState>,
    applied: watch::Sender<u64>,
    /// Tokens of the offset commands applied lately (their proposers wait for them).
    tokens: Mutex<std::collections::VecDeque<u64>>,
    /// The `as_of` of the newest metadata checkpoint applied or loaded, and
    /// when this broker last proposed one.
    checkpoints: Mutex<(i64, Option<std::time::Instant>)>,
    /// When a frame from a peer last arrived (sampled from the transport's counter).
    heard: Mutex<(u64, std::time::Instant)>,
    data_dir: PathBuf,
    base: LogConfig,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
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
}

impl Cluster {
    /// Binds the inter-broker listener, starts the driver loop, opens the
    /// metadata group and starts applying it to `topics`.
    pub async fn start(
        config: &BrokerConfig,
        topics: Arc<TopicRegistry>,
        shutdown: watch::Receiver<bool>,
    ) -> Result<Arc<Self>, ClusterError> {
        let settings = config
            .cluster
            .clone()
            .ok_or_else(|| ClusterError::Config("no `cluster:` section".into()))?;
        let me = settings.me(config.node_id).cloned().ok_or_else(|| {
            ClusterError::Config(format!("node {} is not a peer", config.node_id))
        })?;
        let node = node_id(config.node_id);
        let listener = TcpListener::bind(me.raft)
            .await
            .map_err(|source| ClusterError::Bind {
                addr: me.raft,
                source,
            })?;
        let faults = Arc::new(Faults::default());
        let view = Arc::new(ClusterView::default());
        let peers: Vec<(NodeId, std::net::SocketAddr)> = settings
            .peers
            .iter()
            .filter(|p| p.id != config.node_id)
            .map(|p| (node_id(p.id), p.raft))
            .collect();
        let runtime = tokio::runtime::Handle::current();
        let transport = TcpTransport::start(&peers, Arc::clone(&faults), &runtime, &shutdown);
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
            shutdown.clone(),
        ));
        let (applied, _) = watch::channel(0);
        let state = ClusterState::new(&settings.peers);
        let cluster = Arc::new(Self {
            node: config.node_id,
            settings,
            view,
            faults,
            inbox,
            state: Mutex::new(state),
            applied,
            tokens: Mutex::new(std::collections::VecDeque::new()),
            checkpoints: Mutex::new((0, None)),
            heard: Mutex::new((0, std::time::Instant::now())),
            data_dir: config.data_dir.clone(),
            base: config.base_log_config(),
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
        tracing::info!(node = config.node_id, raft = %me.raft, peers = cluster.settings.peers.len(), "joined the raft cluster");
        Ok(cluster)
    }

    /// Opens a Raft group on this broker and the served partition over it.
    async fn open_group(
        &self,
        group: GroupId,
        topic: &str,
        partition: i32,
        log_config: LogConfig,
        voters: Vec<NodeId>,
        campaign: bool,
    ) -> Result<Arc<Partition>, ReplicationError> {
        let spec = GroupSpec {
            group,
            dir: self.data_dir.join(format!("{topic}-{partition}")),
            topic: topic.to_string(),
            partition,
            log_config: LogConfig {
                // The driver syncs once per turn; the log itself never waits.
                flush: FlushPolicy::Never,
                ..log_config
            },
            bootstrap_voters: voters,
        };
        let (reply, rx) = oneshot::channel();
        self.inbox
            .send(Input::AddGroup {
                spec,
                campaign,
                reply,
            })
            .map_err(|_| ReplicationError::Abandoned { group })?;
        let (log, hw) = rx
            .await
            .map_err(|_| ReplicationError::Abandoned { group })??;
        let partition = Arc::new(Partition::replicated(
            log,
            hw,
            Replica {
                group,
                inbox: self.inbox.clone(),
                view: Arc::clone(&self.view),
                commit_wait: Duration::from_millis(self.settings.max_commit_wait_ms),
            },
        ));
        self.inbox
            .send(Input::Attach {
                group,
                partition: Arc::clone(&partition),
            })
            .map_err(|_| ReplicationError::Abandoned { group })?;
        Ok(partition)
    }

    /// Reads the committed metadata log from the start and applies every
    /// command, then follows its high watermark. Each time it has caught
    /// up, and every [`HOSTING_EVERY`], it opens and closes this broker's
    /// partition groups to match the placement.
    async fn apply_loop(
        self: Arc<Self>,
        topics: Arc<TopicRegistry>,
        meta: Arc<Partition>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut hw = meta.subscribe();
        let mut next = 0;
        let mut every = tokio::time::interval(HOSTING_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            // The log starts after what this broker applied (a fresh start on
            // a trimmed log, or a snapshot installed underneath): load the
            // checkpoint the log now starts at.
            let start = meta.log().log_start_offset();
            if next < start {
                if !self
                    .load_checkpoint(&topics, &meta, start, &mut shutdown)
                    .await
                {
                    return;
                }
                next = start;
            }
            while next < meta.high_watermark() {
                let before = next;
                for (offset, cmd) in read_commands(&meta, next).await {
                    next = next.max(offset + 1);
                    match cmd {
                        Ok(cmd) => self.apply(&topics, &cmd).await,
                        Err(e) => {
                            tracing::error!(offset, error = %e, "undecodable cluster metadata command skipped")
                        }
                    }
                }
                if next == before {
                    tracing::error!(
                        offset = next,
                        "cluster metadata log does not advance; waiting for more"
                    );
                    break;
                }
            }
            self.publish_placement();
            self.reconcile_hosting(&topics).await;
            self.applied.send_replace(u64::try_from(next).unwrap_or(0));
            self.maybe_checkpoint(&topics, next);
            tokio::select! {
                changed = hw.changed() => if changed.is_err() { return },
                _ = every.tick() => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    async fn apply(&self, topics: &TopicRegistry, cmd: &MetaCommand) {
        if let Some(token) = cmd.token() {
            self.apply_offsets(topics, cmd).await;
            let mut tokens = self.tokens.lock();
            tokens.push_back(token);
            while tokens.len() > RECENT_TOKENS {
                tokens.pop_front();
            }
            return;
        }
        if let MetaCommand::Checkpoint { as_of, .. } = cmd {
            // Committed and applied here: the log before it can go.
            self.checkpoints.lock().0 = *as_of;
            let _ = self.inbox.send(Input::Compact {
                group: METADATA_GROUP,
                offset: *as_of,
            });
            tracing::info!(
                as_of,
                "cluster metadata checkpoint applied; trimming the log before it"
            );
            return;
        }
        let change = self.state.lock().apply(cmd);
        match change {
            Change::None => {}
            Change::Membership => {
                self.publish_membership();
                let ids: Vec<i32> = self.brokers().iter().map(|b| b.id).collect();
                tracing::info!(brokers = ?ids, "cluster membership changed");
            }
            Change::Topic(name, assignment) => {
                let replicas: Vec<&Vec<i32>> =
                    assignment.partitions.iter().map(|p| &p.replicas).collect();
                tracing::info!(topic = %name, ?replicas, "replicated topic created");
            }
            Change::Placement => tracing::info!("partition replicas reassigned"),
            Change::Leader => {}
        }
    }

    /// Writes an offset command into this broker's metadata store.
    async fn apply_offsets(&self, topics: &TopicRegistry, cmd: &MetaCommand) {
        let meta = Arc::clone(topics.meta());
        let cmd = cmd.clone();
        let written = tokio::task::spawn_blocking(move || match &cmd {
            MetaCommand::CommitOffsets { group, offsets, .. } => meta
                .commit_offsets(group, offsets)
                .map_err(|e| format!("group {group}: {e}")),
            MetaCommand::DeleteOffsets {
                group, partitions, ..
            } => meta
                .delete_offsets(group, partitions)
                .map_err(|e| format!("group {group}: {e}")),
            MetaCommand::DeleteGroup { group, .. } => meta
                .delete_group(group)
                .map_err(|e| format!("group {group}: {e}")),
            _ => Ok(()),
        })
        .await;
        match written {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "cannot store replicated group offsets"),
            Err(e) => tracing::error!(error = %e, "offset store task failed"),
        }
    }

    /// Proposes an offset command and waits until this broker applied it.
    pub async fn propose_offsets(&self, cmd: MetaCommand, token: u64) -> Result<(), String> {
        self.propose_until(&cmd, || self.tokens.lock().contains(&token).then_some(()))
            .await
            .map_err(|e| e.to_string())
    }

    /// Hands the membership to the driver loop (it reconciles every group).
    fn publish_membership(&self) {
        let state = self.state.lock();
        self.view.set_membership(Membership {
            members: state
                .brokers
                .values()
                .map(|p| (node_id(p.id), p.raft))
                .collect(),
            removed: state.removed.iter().map(|&id| node_id(id)).collect(),
        });
    }

    /// The brokers of the cluster now (configured, added, not removed).
    pub fn brokers(&self) -> Vec<PeerSettings> {
        self.state.lock().brokers.values().cloned().collect()
    }

    /// Adds a broker to the cluster (from any member) and waits until this
    /// broker has applied it; the leaders then add it to every group.
    pub async fn add_broker(&self, peer: PeerSettings) -> Result<(), String> {
        let id = peer.id;
        if id < 1 {
            return Err(format!("{id} is not a node id (at least 1)"));
        }
        if self.state.lock().removed.contains(&id) {
            return Err(format!(
                "broker {id} was removed; a new broker needs a new id"
            ));
        }
        self.propose_until(&MetaCommand::AddBroker { peer }, || {
            self.state.lock().brokers.contains_key(&id).then_some(())
        })
        .await
        .map_err(|e| e.to_string())
    }

    /// Removes a broker from the cluster; the leaders then remove it from
    /// every group (moving leadership off it first).
    pub async fn remove_broker(&self, id: i32) -> Result<(), String> {
        let (known, left) = {
            let s = self.state.lock();
            (s.brokers.contains_key(&id), s.brokers.len())
        };
        if !known {
            return Err(format!("broker {id} is not a member"));
        }
        if left <= 1 {
            return Err("the last broker cannot be removed".into());
        }
        self.propose_until(&MetaCommand::RemoveBroker { id }, || {
            self.state.lock().removed.contains(&id).then_some(())
        })
        .await
        .map_err(|e| e.to_string())
    }

    /// Forwards `cmd` to the metadata group and waits (bounded) until
    /// `applied` finds its effect in what this broker has applied.
    async fn propose_until<T>(
        &self,
        cmd: &MetaCommand,
        applied: impl Fn() -> Option<T>,
    ) -> Result<T, ProposeError> {
        let records = metadata::encode(cmd).map_err(ProposeError::Unavailable)?;
        let mut changes = self.applied.subscribe();
        let (reply, rx) = oneshot::channel();
        let stopped = || ProposeError::Unavailable("the raft driver stopped".into());
        self.inbox
            .send(Input::Forward {
                group: METADATA_GROUP,
                records,
                reply,
            })
            .map_err(|_| stopped())?;
        rx.await
            .map_err(|_| stopped())?
            .map_err(|e| ProposeError::Unavailable(e.to_string()))?;
        tokio::time::timeout(CREATE_WAIT, async {
            loop {
                if let Some(found) = applied() {
                    return Some(found);
                }
                if changes.changed().await.is_err() {
                    return None;
                }
            }
        })
        .await
        .ok()
        .flatten()
        .ok_or(ProposeError::Timeout)
    }

    /// On the controller, proposes a checkpoint of the state as of `next`
    /// once the log holds [`ClusterSettings::metadata_checkpoint_records`]
    /// records after the last one (at most one proposal per 10 s).
    fn maybe_checkpoint(&self, topics: &TopicRegistry, next: i64) {
        if self.view.leader_term(METADATA_GROUP).is_none() {
            return;
        }
        {
            let mut c = self.checkpoints.lock();
            let due = next - c.0 >= self.settings.metadata_checkpoint_records;
            let recent = c.1.is_some_and(|at| at.elapsed() < Duration::from_secs(10));
            if !due || recent {
                return;
            }
            c.1 = Some(std::time::Instant::now());
        }
        let store = topics.meta();
        let offsets = store
            .groups()
            .into_iter()
            .map(|g| {
                let o = store.committed_offsets(&g);
                (g, o)
            })
            .collect();
        let cmd = MetaCommand::Checkpoint {
            as_of: next,
            state: self.state.lock().image(),
            offsets,
        };
        let records = match metadata::encode(&cmd) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "cannot encode a cluster metadata checkpoint");
                return;
            }
        };
        let (reply, _) = oneshot::channel();
        let _ = self.inbox.send(Input::Forward {
            group: METADATA_GROUP,
            records,
            reply,
        });
        tracing::info!(as_of = next, "cluster metadata checkpoint proposed");
    }

    /// Reads the metadata log from `start` until it finds the checkpoint as
    /// of `start`, and replaces this broker's state and group offsets with
    /// it. False when shutting down first.
    async fn load_checkpoint(
        &self,
        topics: &TopicRegistry,
        meta: &Partition,
        start: i64,
        shutdown: &mut watch::Receiver<bool>,
    ) -> bool {
        let mut hw = meta.subscribe();
        let mut pos = start;
        loop {
            while pos < meta.high_watermark() {
                let before = pos;
                for (offset, cmd) in read_commands(meta, pos).await {
                    pos = pos.max(offset + 1);
                    let Ok(MetaCommand::Checkpoint {
                        as_of,
                        state,
                        offsets,
                    }) = cmd
                    else {
                        continue;
                    };
                    if as_of != start {
                        continue;
                    }
                    match ClusterState::from_image(&state) {
                        Ok(s) => {
                            self.install(topics, s, offsets, as_of).await;
                            return true;
                        }
                        Err(e) => {
                            tracing::error!(offset, error = %e, "unreadable cluster metadata checkpoint")
                        }
                    }
                }
                if pos == before {
                    break;
                }
            }
            tracing::warn!(
                start,
                "the cluster metadata log starts at {start}; waiting for its checkpoint"
            );
            tokio::select! {
                changed = hw.changed() => if changed.is_err() { return false },
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = shutdown.changed() => return false,
            }
        }
    }

    /// Replaces the state and every group's committed offsets with a checkpoint's.
    async fn install(
        &self,
        topics: &TopicRegistry,
        state: ClusterState,
        offsets: BTreeMap<String, Vec<starlog_storage::CommittedOffset>>,
        as_of: i64,
    ) {
        *self.state.lock() = state;
        self.checkpoints.lock().0 = as_of;
        let store = Arc::clone(topics.meta());
        let written = tokio::task::spawn_blocking(move || {
            for g in store.groups() {
                if !offsets.contains_key(&g) {
                    store
                        .delete_group(&g)
                        .map_err(|e| format!("group {g}: {e}"))?;
                }
            }
            for (g, list) in &offsets {
                store
                    .delete_group(g)
                    .map_err(|e| format!("group {g}: {e}"))?;
                store
                    .commit_offsets(g, list)
                    .map_err(|e| format!("group {g}: {e}"))?;
            }
            Ok::<_, String>(offsets.len())
        })
        .await;
        match written {
            Ok(Ok(groups)) => {
                tracing::info!(as_of, groups, "cluster metadata loaded from its checkpoint")
            }
            Ok(Err(e)) => {
                tracing::error!(as_of, error = %e, "cannot store the checkpoint's group offsets")
            }
            Err(e) => tracing::error!(error = %e, "checkpoint offset task failed"),
        }
        self.publish_membership();
    }

    /// Hands the driver loop where every group's replicas belong and the
    /// leaders announced so far.
    fn publish_placement(&self) {
        let state = self.state.lock();
        let targets = state
            .topics
            .values()
            .flat_map(|t| &t.partitions)
            .map(|p| (p.group, p.replicas.iter().map(|&r| node_id(r)).collect()))
            .collect();
        let announced = state
            .leaders
            .iter()
            .map(|(&g, l)| {
                let ids = |v: &[i32]| v.iter().map(|&r| node_id(r)).collect();
                let a = view::Announced {
                    leader: node_id(l.leader),
                    term: l.term,
                    replicas: ids(&l.replicas),
                    isr: ids(&l.isr),
                };
                (g, a)
            })
            .collect();
        self.view
            .set_placement(view::Placement { targets, announced });
    }

    /// Opens the groups of partitions placed on this broker and closes
    /// (and deletes) those it no longer replicates once their group has let
    /// it go; serves every topic of the metadata log, hosted here or not.
    async fn reconcile_hosting(&self, topics: &TopicRegistry) {
        let assignments = self.state.lock().topics.clone();
        for (name, assignment) in assignments {
            let current = topics.get(&name);
            let mut slots = current
                .as_ref()
                .map(|t| t.partitions.clone())
                .unwrap_or_default();
            slots.resize(assignment.partitions.len(), None);
            let mut changed = current.is_none();
            let log_config = match topics.log_config_for(&assignment.configs) {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(topic = %name, error = %e, "cannot open replicated topic");
                    continue;
                }
            };
            for (index, (slot, p)) in slots.iter_mut().zip(&assignment.partitions).enumerate() {
                let index = i32::try_from(index).unwrap_or(i32::MAX);
                let wanted = p.replicas.contains(&self.node);
                match (slot.is_some(), wanted) {
                    (false, true) => {
                        // Every broker opens a group with its first voters (a
                        // broker placed on it later among them or not); the
                        // log replays later changes, and the leader adds it.
                        let voters = p.initial.iter().map(|&r| node_id(r)).collect();
                        let preferred = p.initial.first() == Some(&self.node);
                        let opened = self
                            .open_group(
                                p.group,
                                &name,
                                index,
                                log_config.clone(),
                                voters,
                                preferred,
                            )
                            .await;
                        match opened {
                            Ok(partition) => {
                                *slot = Some(partition);
                                changed = true;
                            }
                            Err(e) => {
                                tracing::error!(topic = %name, partition = index, error = %e, "cannot open replicated partition")
                            }
                        }
                    }
                    (true, false) if self.released(p.group) => {
                        match self.close_group(p.group, &name, index).await {
                            Ok(()) => {
                                *slot = None;
                                changed = true;
                                tracing::info!(topic = %name, partition = index, "replica moved off this broker; its copy is deleted");
                            }
                            Err(e) => {
                                tracing::error!(topic = %name, partition = index, error = %e, "cannot close a partition moved off this broker")
                            }
                        }
                    }
                    _ => {}
                }
            }
            if changed {
                topics.insert_replicated(Arc::new(Topic {
                    name: name.clone(),
                    id: assignment.id,
                    partitions: slots,
                    configs: assignment.configs.clone(),
                }));
            }
        }
    }

    /// Whether `group` no longer counts this broker among its replicas: its
    /// own copy of the configuration says so, or the leader announced one
    /// without it (a replica removed before it saw its removal).
    fn released(&self, group: GroupId) -> bool {
        let me = node_id(self.node);
        let local = self.view.status(group);
        if let Some(s) = &local {
            if !s.voters.contains(&me) && !s.learners.contains(&me) {
                return true;
            }
        }
        let term = local.map_or(0, |s| s.term);
        self.view
            .announced(group)
            .is_some_and(|a| a.term >= term && !a.replicas.contains(&me))
    }

    /// Closes a group this broker no longer replicates and deletes its directory.
    async fn close_group(&self, group: GroupId, topic: &str, partition: i32) -> Result<(), String> {
        let (reply, rx) = oneshot::channel();
        self.inbox
            .send(Input::RemoveGroup { group, reply })
            .map_err(|_| "the raft driver stopped".to_string())?;
        rx.await
            .map_err(|_| "the raft driver stopped".to_string())?
            .map_err(|e| e.to_string())?;
        let dir = self.data_dir.join(format!("{topic}-{partition}"));
        let gone = self
            .data_dir
            .join(format!("{topic}-{partition}.{group}.moved"));
        tokio::task::spawn_blocking(move || {
            std::fs::rename(&dir, &gone)
                .and_then(|()| std::fs::remove_dir_all(&gone))
                .map_err(|e| format!("cannot delete {}: {e}", dir.display()))
        })
        .await
        .map_err(|e| e.to_string())?
    }

    /// Describes a replicated partition for Metadata: the leader and term
    /// this broker knows best (its own group's, or the last announced), the
    /// replicas and the in-sync replicas.
    pub fn leadership(&self, topic: &str, index: i32) -> Option<view::Leadership> {
        let (group, target) = {
            let s = self.state.lock();
            let p = s
                .topics
                .get(topic)?
                .partitions
                .get(usize::try_from(index).ok()?)?;
            (p.group, p.replicas.iter().map(|&r| node_id(r)).collect())
        };
        let mut l = view::Leadership::of(
            self.view.status(group).as_ref(),
            self.view.announced(group).as_ref(),
            target,
        );
        // A leader this broker cannot connect to (killed, typically) is not
        // named: the client keeps asking until the new one is elected,
        // instead of waiting for its next periodic refresh.
        if l.leader.is_some_and(|n| self.faults.unreachable(n)) {
            l.leader = None;
        }
        Some(l)
    }

    /// The replicas a reassignment asks for, checked against what this
    /// broker has applied (`None`: the replicas the group has now).
    fn check_reassignment(
        &self,
        topic: &str,
        partition: i32,
        replicas: Option<&[i32]>,
    ) -> Result<Vec<i32>, TopicError> {
        let s = self.state.lock();
        let t = s.topics.get(topic).ok_or_else(|| {
            TopicError::new(
                ResponseError::UnknownTopicOrPartition,
                format!("topic {topic} does not exist"),
            )
        })?;
        let p = usize::try_from(partition)
            .ok()
            .and_then(|i| t.partitions.get(i))
            .ok_or_else(|| {
                TopicError::new(
                    ResponseError::UnknownTopicOrPartition,
                    format!("topic {topic} has no partition {partition}"),
                )
            })?;
        let replicas = match replicas {
            Some(r) => r.to_vec(),
            None => {
                let current = s.leaders.get(&p.group).map(|l| l.replicas.clone());
                match current {
                    Some(c) if sorted(&c) != sorted(&p.replicas) => c,
                    _ => {
                        return Err(TopicError::new(
                            ResponseError::NoReassignmentInProgress,
                            format!("{topic}-{partition} is not moving"),
                        ))
                    }
                }
            }
        };
        s.check_replicas(&replicas).map_err(|e| {
            TopicError::new(
                ResponseError::InvalidReplicaAssignment,
                format!("{topic}-{partition}: {e}"),
            )
        })?;
        Ok(replicas)
    }

    /// Moves a partition's replicas (from any broker): waits until this
    /// broker has applied the new placement; the replicas move afterwards.
    /// `None` cancels a move in progress: the partition keeps the replicas
    /// its group has now.
    pub async fn reassign(
        &self,
        topic: &str,
        partition: i32,
        replicas: Option<Vec<i32>>,
    ) -> Result<(), TopicError> {
        // A broker or topic created through another broker a moment ago may
        // not be applied here yet: look again as the metadata log advances.
        let mut changes = self.applied.subscribe();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        let replicas = loop {
            match self.check_reassignment(topic, partition, replicas.as_deref()) {
                Ok(r) => break r,
                Err(e) if tokio::time::Instant::now() >= deadline => return Err(e),
                Err(_) => {
                    let _ = tokio::time::timeout_at(deadline, changes.changed()).await;
                }
            }
        };
        let cmd = MetaCommand::Reassign {
            topic: topic.to_string(),
            partition,
            replicas: replicas.clone(),
        };
        self.propose_until(&cmd, || {
            let s = self.state.lock();
            let p = s
                .topics
                .get(topic)?
                .partitions
                .get(usize::try_from(partition).ok()?)?;
            (p.replicas == replicas).then_some(())
        })
        .await
        .map_err(|e| {
            let code = match e {
                ProposeError::Unavailable(_) => ResponseError::NotController,
                ProposeError::Timeout => ResponseError::RequestTimedOut,
            };
            TopicError::new(code, format!("{topic}-{partition}: {e}"))
        })
    }

    /// Every partition whose replicas are moving: (topic, partition, the
    /// replicas it has now, the replicas to have).
    pub fn reassignments(&self) -> Vec<Reassignment> {
        let s = self.state.lock();
        let mut out = Vec::new();
        for (name, t) in &s.topics {
            for (i, p) in t.partitions.iter().enumerate() {
                let now = s
                    .leaders
                    .get(&p.group)
                    .map_or_else(|| p.initial.clone(), |l| l.replicas.clone());
                if sorted(&now) != sorted(&p.replicas) {
                    out.push(Reassignment {
                        topic: name.clone(),
                        partition: i32::try_from(i).unwrap_or(i32::MAX),
                        current: now,
                        target: p.replicas.clone(),
                    });
                }
            }
        }
        out
    }

    /// Creates a topic through the metadata group (from any broker) and
    /// waits until it is open here.
    pub async fn create_topic(
        &self,
        topics: &TopicRegistry,
        request: NewTopic<'_>,
    ) -> Result<Arc<Topic>, TopicError> {
        let NewTopic {
            name,
            partitions,
            replication_factor,
            configs,
            validate_only,
            max_partitions,
        } = request;
        validate_topic_name(name)?;
        let n = self.state.lock().brokers.len();
        if partitions < 1 || partitions > max_partitions {
            return Err(TopicError::new(
                ResponseError::InvalidPartitions,
                format!(
                    "topic {name}: partition count {partitions} is outside 1..={max_partitions}"
                ),
            ));
        }
        let factor = match replication_factor {
            -1 => self.settings.default_replication_factor.min(n),
            f => match usize::try_from(f) {
                Ok(f) if (1..=n).contains(&f) => f,
                _ => {
                    return Err(TopicError::new(
                        ResponseError::InvalidReplicationFactor,
                        format!("topic {name}: replication factor {replication_factor} is outside 1..={n} (the cluster has {n} brokers), or -1 for the default"),
                    ))
                }
            },
        };
        topics.log_config_for(&configs)?;
        if let Some(t) = topics.get(name) {
            return Err(TopicError::new(
                ResponseError::TopicAlreadyExists,
                format!("topic {} already exists", t.name),
            ));
        }
        if validate_only {
            return Ok(Arc::new(Topic {
                name: name.to_string(),
                id: [0; 16],
                partitions: Vec::new(),
                configs,
            }));
        }
        let replicas = self
            .state
            .lock()
            .place(usize::try_from(partitions).unwrap_or(0), factor);
        let id = uuid::Uuid::new_v4();
        let cmd = MetaCommand::CreateTopic {
            name: name.to_string(),
            id: id.to_string(),
            replicas,
            configs,
        };
        let found = self.propose_until(&cmd, || topics.get(name)).await;
        match found {
            Ok(t) if t.id == *id.as_bytes() => Ok(t),
            Ok(t) => Err(TopicError::new(
                ResponseError::TopicAlreadyExists,
                format!(
                    "topic {} was created concurrently by another request",
                    t.name
                ),
            )),
            Err(ProposeError::Unavailable(why)) => Err(TopicError::new(
                ResponseError::NotController,
                format!(
                    "topic {name}: the cluster metadata group cannot take it now ({why}); retry"
                ),
            )),
            Err(ProposeError::Timeout) => Err(TopicError::new(
                ResponseError::RequestTimedOut,
                format!(
                    "topic {name}: not committed by the cluster within {} s",
                    CREATE_WAIT.as_secs()
                ),
            )),
        }
    }

    /// Notes when frames from peers last arrived, every [`HEARD_SAMPLE`].
    async fn sample_peer_traffic(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
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

/// Why a command forwarded to the metadata group did not take effect here.
#[derive(Debug, thiserror::Error)]
enum ProposeError {
    /// The group could not take it (no leader known, driver stopped, bad command).
    #[error("the metadata group cannot take it now ({0}); retry")]
    Unavailable(String),
    /// Accepted, but not applied here in time.
    #[error("not committed within {} s; retry", CREATE_WAIT.as_secs())]
    Timeout,
}

/// A partition whose replicas are moving.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Reassignment {
    /// Topic.
    pub topic: String,
    /// Partition index.
    pub partition: i32,
    /// The replicas its group has now (as its leader last announced).
    pub current: Vec<i32>,
    /// The replicas it is moving to.
    pub target: Vec<i32>,
}

/// A CreateTopics (or auto-create) request for [`Cluster::create_topic`].
#[derive(Debug, Clone)]
pub struct NewTopic<'a> {
    /// Topic name.
    pub name: &'a str,
    /// Partition count.
    pub partitions: i32,
    /// Replicas per partition: 1 up to the cluster size, or -1 for the default.
    pub replication_factor: i16,
    /// Config overrides.
    pub configs: BTreeMap<String, String>,
    /// Check only.
    pub validate_only: bool,
    /// Upper bound on the partition count.
    pub max_partitions: i32,
}

/// The committed metadata commands from `from` on (up to 1 MiB of them);
/// an unreadable log is retried, an unreadable batch logged and skipped.
async fn read_commands(meta: &Partition, from: i64) -> Vec<metadata::Decoded> {
    let read = loop {
        match meta.read(from, 1 << 20).await {
            Ok(r) => break r,
            Err(e) => {
                tracing::error!(offset = from, error = %e, "cannot read the cluster metadata log; retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    let mut out = Vec::new();
    for chunk in read.chunks {
        match metadata::decode(chunk) {
            Ok(c) => out.extend(c),
            Err(e) => {
                tracing::error!(offset = from, error = %e, "unreadable batch in the cluster metadata log")
            }
        }
    }
    out
}

fn sorted(v: &[i32]) -> Vec<i32> {
    let mut v = v.to_vec();
    v.sort_unstable();
    v
}

/// A Kafka broker id as a Raft node id (validated to be at least 1).
fn node_id(id: i32) -> NodeId {
    NodeId::try_from(id).unwrap_or(0)
}
